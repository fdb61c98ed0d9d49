// HTTP calls to the streamchat API (docs/API.md), the API key, and the errors they fail with.

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const KEY_STORAGE = 'streamchat.key';

/** A failed call: its HTTP status, the contract's error code, and when to retry (seconds). */
export class ApiError extends Error {
  /** @param {string} message @param {number} status @param {string} [code] @param {number|null} [retryAfter] */
  constructor(message, status, code = '', retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
  /** Worth trying again by itself: the server or the network failed, not the request. */
  get retryable() { return this.status >= 500 && this.status !== 503; }
}

/** @returns {string|null} the key kept in this browser */
export function apiKey() {
  try { return localStorage.getItem(KEY_STORAGE) || pageKey; } catch { return pageKey; }
}

/** Keep `key` in this browser (private mode: for this page only). @param {string} key */
let pageKey = null;
export function setKey(key) {
  pageKey = key;
  try { localStorage.setItem(KEY_STORAGE, key); } catch { /* private mode */ }
}

/** @type {() => Promise<string|null>} asks the person for a key; the page sets it */
let askForKey = async () => null;
export function onKeyNeeded(ask) { askForKey = ask; }
let asking = null; // one question at a time, however many calls got a 401
let declined = false; // the person said no: not asked again until they choose to

/**
 * fetch() with the API key. A 401 asks for a key (once for all the calls that got it), keeps
 * it in this browser, and sends the request again.
 * @param {string} url @param {RequestInit} [init]
 */
async function call(url, init = {}) {
  const send = () => {
    const key = apiKey();
    const headers = { ...(init.headers || {}) };
    if (key) headers.Authorization = `Bearer ${key}`;
    return fetch(url, { cache: 'no-store', ...init, headers });
  };
  const res = await send();
  if (res.status !== 401 || declined) return res;
  asking = asking || askForKey().finally(() => { asking = null; });
  const key = await asking;
  if (!key) { declined = true; return res; }
  setKey(key);
  return send();
}

/** The error a failed response carries (`{"error": {"message", "code"}}`), as an ApiError. */
export async function failure(res) {
  const body = await res.json().catch(() => null);
  const message = body?.error?.message || `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
  const retry = Number(res.headers.get('Retry-After'));
  return new ApiError(message, res.status, body?.error?.code || '', Number.isFinite(retry) && retry > 0 ? retry : null);
}

/** @param {Promise<Response>} pending @returns {Promise<any>} the JSON body, or throws ApiError */
async function json(pending) {
  const res = await pending;
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

/** @param {...string} parts */
const path = (...parts) => '/v1/sessions' + parts.map((p) => '/' + encodeURIComponent(p)).join('');

/** @returns {Promise<Response>} 200 when ready, 503 while starting up or draining */
export const getReady = () => fetch('/ready', { cache: 'no-store' });

/** @returns {Promise<{id: string}[]>} the models /v1/models lists (the base model first) */
export const listModels = async () => (await json(call('/v1/models'))).data;

/** @returns {Promise<{id, created, title, messages}[]>} newest first */
export const listSessions = async () => (await json(call(path()))).data;

/** @param {object} [fields] title, system, params, model */
export const createSession = (fields = {}) =>
  json(call(path(), { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(fields) }));

/** The stored session, or null when the server does not have it. @param {string} sid */
export async function getSession(sid) {
  const res = await call(path(sid));
  if (res.status === 404) return null;
  if (!res.ok) throw await failure(res);
  return res.json();
}

/** Change a session's title, system prompt, params or model. @param {string} sid @param {object} fields */
export const updateSession = (sid, fields) =>
  json(call(path(sid), { method: 'PATCH', headers: JSON_HEADERS, body: JSON.stringify(fields) }));

/** @param {string} sid */
export const deleteSession = (sid) => json(call(path(sid), { method: 'DELETE' }));

/**
 * Send a user turn (`{content, replaces?}`); the response streams the reply as SSE.
 * @param {string} sid @param {object} body @param {AbortSignal} signal
 */
export async function postMessage(sid, body, signal) {
  const res = await call(path(sid, 'messages'), {
    method: 'POST', headers: { ...JSON_HEADERS, Accept: 'text/event-stream' },
    body: JSON.stringify(body), signal,
  });
  if (!res.ok) throw await failure(res);
  return res;
}

/**
 * Open (or reopen) the SSE stream of a reply, after the last event seen.
 * @param {string} sid @param {string} mid @param {number} after @param {AbortSignal} signal
 */
export async function openStream(sid, mid, after, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (after >= 0) headers['Last-Event-ID'] = String(after);
  const res = await call(path(sid, 'messages', mid, 'stream'), { headers, signal });
  if (!res.ok) throw await failure(res);
  return res;
}

/** @param {string} sid @param {string} mid */
export const cancelMessage = (sid, mid) => json(call(path(sid, 'messages', mid, 'cancel'), { method: 'POST' }));
