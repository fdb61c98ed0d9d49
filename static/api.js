// HTTP calls to the streamchat API, and the text shown when one fails.

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const KEY_STORAGE = 'streamchat.key';

/**
 * fetch() with the API key the server asked for. When a request comes back 401 the page asks
 * for a key once, keeps it in this browser (localStorage), and sends the request again.
 * @param {string} url @param {RequestInit} [init]
 */
async function call(url, init = {}) {
  const send = () => {
    const key = localStorage.getItem(KEY_STORAGE);
    const headers = { ...(init.headers || {}) };
    if (key) headers.Authorization = `Bearer ${key}`;
    return fetch(url, { ...init, headers });
  };
  const res = await send();
  if (res.status !== 401) return res;
  const key = window.prompt('This server needs an API key (it stays in this browser):');
  if (!key || !key.trim()) return res;
  localStorage.setItem(KEY_STORAGE, key.trim());
  return send();
}

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
  const res = await call('/v1/sessions', {
    method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ title: 'Chat' }),
  });
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

/** The stored session, or null when the server no longer has it. @param {string} sid */
export async function getSession(sid) {
  const res = await call(path(sid), { cache: 'no-store' });
  if (res.ok) return res.json();
  if (res.status !== 404) throw new Error(await errorText(res));
  return null;
}

/**
 * Send a user message; the response streams the assistant reply as SSE.
 * @param {string} sid @param {string} content @param {AbortSignal} signal
 */
export const postMessage = (sid, content, signal) => call(path(sid, 'messages'), {
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
  const res = await call(path(sid, 'messages', mid, 'stream'),
    { headers, cache: 'no-store', signal });
  if (res.ok) return res;
  const err = new Error(await errorText(res));
  err.retryable = res.status >= 500;
  throw err;
}

/** @param {string} sid @param {string} mid */
export const cancelMessage = (sid, mid) =>
  call(path(sid, 'messages', mid, 'cancel'), { method: 'POST' });
