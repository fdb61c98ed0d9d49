// HTTP calls to the streamchat API, and the text shown when one fails.

const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** @param {...string} parts */
const path = (...parts) => '/v1/sessions/' + parts.map(encodeURIComponent).join('/');

/** The message a failed response carries, or its status line. @param {Response} res */
export async function errorText(res) {
  const body = await res.json().catch(() => null); // errors are {"error": {"message", ...}}
  return body?.error?.message || `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
}

/** @returns {Promise<Response>} 200 when ready, 503 while starting up or draining */
export const getReady = () => fetch('/ready', { cache: 'no-store' });

export async function createSession() {
  const res = await fetch('/v1/sessions', {
    method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ title: 'Chat' }),
  });
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

/** The stored session, or null when the server no longer has it. @param {string} sid */
export async function getSession(sid) {
  const res = await fetch(path(sid), { cache: 'no-store' });
  if (res.ok) return res.json();
  if (res.status !== 404) throw new Error(await errorText(res));
  return null;
}

/**
 * Send a user message; the response streams the assistant reply as SSE.
 * @param {string} sid @param {string} content @param {AbortSignal} signal
 */
export const postMessage = (sid, content, signal) => fetch(path(sid, 'messages'), {
  method: 'POST', headers: { ...JSON_HEADERS, Accept: 'text/event-stream' },
  body: JSON.stringify({ content }), signal,
});

/**
 * Open (or reopen) the stream of an existing message, resuming after the last event seen.
 * Throws with `retryable` set for server-side (5xx) failures.
 * @param {string} sid @param {string} mid @param {string|null} lastId @param {AbortSignal} signal
 */
export async function openStream(sid, mid, lastId, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (lastId != null) headers['Last-Event-ID'] = String(lastId);
  const res = await fetch(path(sid, 'messages', mid, 'stream'),
    { headers, cache: 'no-store', signal });
  if (res.ok) return res;
  const err = new Error(await errorText(res));
  err.retryable = res.status >= 500;
  throw err;
}

/** @param {string} sid @param {string} mid */
export const cancelMessage = (sid, mid) =>
  fetch(path(sid, 'messages', mid, 'cancel'), { method: 'POST' });
