// How replies reach the page: over the session's WebSocket, or over SSE where a WebSocket
// cannot connect. Both transports answer the same two calls, each ending when the reply's
// stream ends:
//   start(sid, body, sink, signal)         send a user turn and stream its reply
//   resume(sid, mid, after, sink, signal)  stream a reply's events after `after`
// and hand every event to `sink` as {type, seq, data} (`seq` null for progress). They reject
// with ApiError when the server refused the request, or with ConnectionLost when the network
// or the server went away; what to do then (reconnect, resume) is turn.js's one policy.
import * as api from './api.js';
import { ApiError } from './api.js';
import { readEvents } from './sse.js';

/** The stream broke: the network, the server, or a sleeping phone. Worth resuming. */
export class ConnectionLost extends Error {}

/** @typedef {{type: string, seq: number|null, data: any}} ReplyEvent */
/** @typedef {(ev: ReplyEvent) => void} Sink */

const TERMINAL = new Set(['done', 'error']);
const PING_EVERY_MS = 30000; // keeps idle sockets open through proxies that time them out
const OPEN_TIMEOUT_MS = 8000;

// -- connection state, for the header ---------------------------------------------------

/** @type {Set<(state: string) => void>} */
const watchers = new Set();
let state = 'connecting';
/** @param {(state: 'connecting'|'connected'|'reconnecting'|'offline') => void} fn */
export function onState(fn) { watchers.add(fn); fn(state); }
export function setState(next) {
  if (!navigator.onLine) next = 'offline';
  if (next === state) return;
  state = next;
  for (const fn of watchers) fn(state);
}
addEventListener('offline', () => setState('offline'));
// Back online: the socket of the open conversation is opened again if it closed meanwhile
// ("connecting" until it is, or until readiness says the server answers, for SSE).
addEventListener('online', () => {
  setState('connecting');
  current.prepare(prepared);
});
let prepared = null; // the open conversation's id

// -- SSE ----------------------------------------------------------------------------------

/** @param {Response} res @param {Sink} sink */
async function pumpSse(res, sink) {
  setState('connected');
  try {
    for await (const ev of readEvents(res)) {
      sink({ type: ev.event, seq: ev.id == null ? null : Number(ev.id), data: ev.data });
      if (TERMINAL.has(ev.event)) return;
    }
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
  }
  throw new ConnectionLost('The stream closed before the reply finished.');
}

/** fetch() failing with a TypeError is the network, not the server. */
function lost(err) {
  if (err instanceof TypeError) throw new ConnectionLost(err.message);
  throw err;
}

export const sse = {
  name: 'sse',
  async start(sid, body, sink, signal) {
    const res = await api.postMessage(sid, body, signal).catch(lost);
    await pumpSse(res, sink);
  },
  async resume(sid, mid, after, sink, signal) {
    const res = await api.openStream(sid, mid, after, signal).catch(lost);
    await pumpSse(res, sink);
  },
  async cancel(sid, mid) { await api.cancelMessage(sid, mid); },
  prepare(sid) { prepared = sid; },
};

// -- WebSocket ------------------------------------------------------------------------------

/** The WebSocket could not be opened at all, though the server answers HTTP: use SSE. */
export class WebSocketUnavailable extends Error {}

/** One socket per session, opened ahead of the first message so that it costs no handshake. */
class SessionSocket {
  /** @param {string} sid */
  constructor(sid) {
    this.sid = sid;
    /** @type {WebSocket|null} */ this.ws = null;
    /** @type {Promise<WebSocket>|null} */ this.opening = null;
    /** @type {{sink: Sink, mid: string|null, resolve: Function, reject: Function}|null} */
    this.follower = null;
    this.pinger = null;
  }

  /** @returns {Promise<WebSocket>} */
  open() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { setState('connected'); return Promise.resolve(this.ws); }
    if (this.opening) return this.opening;
    this.opening = new Promise((resolve, reject) => {
      const url = new URL(`/v1/sessions/${encodeURIComponent(this.sid)}/ws`, location.href);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      // A browser cannot set headers on a WebSocket: the key rides as a subprotocol.
      const key = api.apiKey();
      let ws;
      try {
        ws = new WebSocket(url, key ? ['streamchat', `bearer.${key}`] : ['streamchat']);
      } catch (err) { // blocked outright (a policy, an extension)
        this.opening = null;
        reject(new WebSocketUnavailable(err.message));
        return;
      }
      const timer = setTimeout(() => ws.close(), OPEN_TIMEOUT_MS);
      let opened = false;
      ws.onopen = () => {
        opened = true;
        clearTimeout(timer);
        this.ws = ws;
        this.opening = null;
        setState('connected');
        this.pinger = setInterval(() => this.sendFrame({ type: 'ping' }), PING_EVERY_MS);
        resolve(ws);
      };
      ws.onmessage = (e) => this.frame(e.data);
      ws.onclose = (e) => {
        clearTimeout(timer);
        clearInterval(this.pinger);
        if (this.ws === ws) this.ws = null;
        if (!opened) { this.opening = null; reject(closeError(e, false)); return; }
        const follower = this.follower;
        this.follower = null;
        follower?.reject(closeError(e, true));
      };
    });
    return this.opening;
  }

  sendFrame(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  /** @param {string} raw */
  frame(raw) {
    let f;
    try { f = JSON.parse(raw); } catch { return; }
    const follower = this.follower;
    if (!follower || f.type === 'pong') return;
    if (f.type === 'error' && !f.message_id) { // the frame we sent was refused
      this.follower = null;
      follower.reject(new ApiError(f.message || f.code, (f.status || 4500) - 4000, f.code, f.retry_after ?? null));
      return;
    }
    if (follower.mid && f.message_id && f.message_id !== follower.mid) return; // an older reply's
    follower.mid = f.message_id || follower.mid;
    const { type, seq, message_id, ...data } = f;
    follower.sink({ type, seq: seq ?? null, data: { message_id, ...data } });
    if (TERMINAL.has(type)) { this.follower = null; follower.resolve(); }
  }

  /** Send `frame` and follow the reply it is about until its terminal frame. */
  async follow(frame, mid, sink, signal) {
    await this.open();
    if (signal?.aborted) throw signal.reason;
    this.follower?.reject(new DOMException('replaced', 'AbortError'));
    return new Promise((resolve, reject) => {
      const follower = { sink, mid, resolve, reject };
      this.follower = follower;
      signal?.addEventListener('abort', () => {
        if (this.follower === follower) this.follower = null;
        reject(signal.reason);
      }, { once: true });
      if (!this.sendFrame(frame)) reject(new ConnectionLost('The socket closed.'));
    });
  }

  close() {
    this.follower = null;
    clearInterval(this.pinger);
    this.ws?.close(1000);
    this.ws = null;
  }
}

/** Why a socket closed, as the error its caller can act on. @param {CloseEvent} e */
function closeError(e, wasOpen) {
  if (e.code === 4404) return new ApiError('This conversation no longer exists.', 404, 'session_not_found');
  if (e.code === 1008) return new ApiError(e.reason || 'The server refused the connection.', 401, 'unauthorized');
  if (e.code === 1012) return new ConnectionLost('The server is restarting.');
  return wasOpen ? new ConnectionLost('The connection closed.') : new WebSocketUnavailable('WebSocket failed');
}

/** @type {Map<string, SessionSocket>} */
const sockets = new Map();
const socketOf = (sid) => {
  let s = sockets.get(sid);
  if (!s) { s = new SessionSocket(sid); sockets.set(sid, s); }
  return s;
};

export const websocket = {
  name: 'ws',
  start(sid, body, sink, signal) {
    return socketOf(sid).follow({ type: 'message', ...body }, null, sink, signal);
  },
  resume(sid, mid, after, sink, signal) {
    return socketOf(sid).follow({ type: 'resume', message_id: mid, after }, mid, sink, signal);
  },
  async cancel(sid, mid) {
    if (!socketOf(sid).sendFrame({ type: 'cancel', message_id: mid })) await api.cancelMessage(sid, mid);
  },
  /** Open the session's socket now, and close the others that follow nothing. */
  prepare(sid) {
    prepared = sid;
    for (const [other, s] of sockets) {
      if (other !== sid && !s.follower) { s.close(); sockets.delete(other); }
    }
    if (sid) socketOf(sid).open().catch(() => {});
  },
};

// -- which one --------------------------------------------------------------------------

const FORCED = new URLSearchParams(location.search).get('transport'); // ?transport=sse to test
let current = FORCED === 'sse' || typeof WebSocket === 'undefined' ? sse : websocket;

/** The transport replies use now. */
export const transport = () => current;

/**
 * A WebSocket that never opened: if the server still answers HTTP, something between (a proxy,
 * a firewall) blocks WebSockets, and SSE is used from now on; if not, the network is down.
 * @returns {Promise<boolean>} whether the page switched to SSE
 */
export async function fallBack() {
  if (current === sse || FORCED === 'ws') return false;
  try {
    const res = await fetch('/health', { cache: 'no-store' });
    if (!res.ok) return false;
  } catch {
    return false;
  }
  console.info('streamchat: WebSocket unavailable, streaming over SSE');
  current = sse;
  return true;
}
