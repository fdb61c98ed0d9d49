// One assistant reply on the page, from the user's turn to its terminal event, and the one
// reconnect policy: whatever broke (network, server, a phone asleep, a WebSocket that never
// opened), the reply is resumed after the last event seen, so no text is lost or shown twice.
import * as api from './api.js';
import { ApiError } from './api.js';
import { ConnectionLost, WebSocketUnavailable, fallBack, setState, transport } from './connection.js';
import { LiveReasoning } from './reasoning.js';
import * as view from './view.js';

const MAX_BACKOFF_MS = 10000;

/**
 * @typedef {object} Turn
 * @property {string} sid
 * @property {string|null} mid the reply's id, once the server names it
 * @property {number} lastSeq the last numbered event shown (-1: none)
 * @property {HTMLElement} bubble
 * @property {view.LiveText} live
 * @property {LiveReasoning|null} thought its reasoning, from the first `reasoning` event
 * @property {boolean} done a `done` or `error` event arrived
 * @property {boolean} stopRequested
 * @property {AbortController} ctrl
 * @property {number} sentAt when the user's turn was sent (performance.now)
 */

/** @type {Turn|null} the reply being streamed in view; at most one at a time */
let active = null;
export const activeTurn = () => active;

/** Called when a reply ends, with its turn and its final event data (or the error). */
let onEnded = (_turn, _result) => {};
export function onTurnEnded(fn) { onEnded = fn; }

/** @param {Turn} turn @param {import('./connection.js').ReplyEvent} ev */
function handle(turn, ev) {
  if (ev.seq != null) {
    if (ev.seq <= turn.lastSeq) return; // seen already (a resume replays from `after`)
    turn.lastSeq = ev.seq;
  }
  const d = ev.data || {};
  if (d.message_id && !turn.mid) {
    turn.mid = d.message_id;
    turn.bubble.parentElement.dataset.id = turn.mid;
    if (turn.stopRequested) stop(turn);
  }
  switch (ev.type) {
    case 'queued': {
      const ahead = Number(d.position) || 0;
      view.setWaiting(turn.bubble, ahead ? `Waiting · ${ahead} ahead` : 'Waiting · next');
      break;
    }
    case 'prefill': view.setWaiting(turn.bubble, 'Reading your message…'); break;
    case 'start': view.setModel(d.model); break;
    case 'reasoning':
      if (!turn.thought) {
        view.setWaiting(turn.bubble, null);
        turn.thought = new LiveReasoning(turn.bubble);
      }
      turn.thought.append(d.text || '');
      break;
    case 'token':
      if (!turn.live.text) view.setWaiting(turn.bubble, null);
      turn.thought?.end(); // the answer has started
      turn.live.append(d.text || '');
      break;
    case 'done':
      turn.done = true;
      turn.thought?.end();
      turn.live.end();
      view.setStats(turn.bubble, d);
      view.announce(`Reply ${d.finish_reason === 'cancelled' ? 'stopped' : 'finished'}: ${turn.live.text}`);
      break;
    case 'error':
      turn.done = true;
      turn.thought?.end();
      turn.live.end();
      view.setWaiting(turn.bubble, null);
      view.showError(turn.bubble, d.message || d.code || 'The reply failed.');
      view.announce(`The reply failed: ${d.message || d.code}`);
      break;
  }
}

/** Resolves after the backoff, or as soon as the network or the page comes back. */
function waitToRetry(attempt, signal) {
  const ms = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      removeEventListener('online', done);
      document.removeEventListener('visibilitychange', visible);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const visible = () => { if (document.visibilityState === 'visible') done(); };
    const timer = setTimeout(() => { if (navigator.onLine) done(); }, ms); // offline: wait for 'online'
    addEventListener('online', done);
    document.addEventListener('visibilitychange', visible);
    signal.addEventListener('abort', done);
  });
}

/**
 * The connection broke before the server named the reply: did it take the message? The
 * session tells: a user turn we did not know of, with our text, and the reply after it.
 * @param {Turn} turn @param {Set<string>} known @param {string} content
 */
async function findReply(turn, known, content) {
  const session = await api.getSession(turn.sid);
  const msgs = session?.messages || [];
  const i = msgs.findIndex((m) => m.role === 'user' && !known.has(m.id) && m.content === content);
  return i >= 0 && msgs[i + 1] ? msgs[i + 1].id : null;
}

/** @param {Turn} turn @param {() => Promise<void>} first */
async function follow(turn, first, body, known) {
  const sink = (ev) => handle(turn, ev);
  let call = first, attempt = 0;
  for (;;) {
    try {
      await call();
      setState('connected');
      return;
    } catch (err) {
      if (turn.ctrl.signal.aborted || turn.done) return;
      if (err instanceof WebSocketUnavailable && await fallBack()) {
        // Nothing went out on a socket that never opened: send the same turn over SSE.
      } else if (!(err instanceof ConnectionLost || err instanceof WebSocketUnavailable
                   || (err instanceof ApiError && err.retryable))) {
        throw err;
      } else {
        setState('reconnecting');
        await waitToRetry(attempt++, turn.ctrl.signal);
        if (turn.ctrl.signal.aborted) return;
      }
      if (!turn.mid && body) {
        turn.mid = await findReply(turn, known, body.content).catch(() => null);
      }
      const t = transport();
      call = turn.mid
        ? () => t.resume(turn.sid, turn.mid, turn.lastSeq, sink, turn.ctrl.signal)
        : () => t.start(turn.sid, body, sink, turn.ctrl.signal); // it was never taken: send again
    }
  }
}

/**
 * Stream one reply into `bubble`: a new user turn (`body` = {content, replaces?}) or, with
 * `mid`, a reply already in flight (e.g. after a reload). Throws ApiError when the server
 * refuses the turn (the caller puts the text back); resolves when the reply has ended.
 * @param {{sid: string, bubble: HTMLElement, body?: object|null, mid?: string|null, known?: Set<string>}} opts
 */
export async function run({ sid, bubble, body = null, mid = null, known = new Set() }) {
  /** @type {Turn} */
  const turn = { sid, mid, lastSeq: -1, bubble, live: new view.LiveText(bubble), thought: null,
    done: false, stopRequested: false, ctrl: new AbortController(), sentAt: performance.now() };
  active = turn;
  view.setBusy(true);
  const sink = (ev) => handle(turn, ev);
  let failure = null;
  try {
    const t = transport();
    const first = mid
      ? () => t.resume(sid, mid, -1, sink, turn.ctrl.signal)
      : () => t.start(sid, body, sink, turn.ctrl.signal);
    await follow(turn, first, body, known);
  } catch (err) {
    failure = err;
    if (!(err instanceof ApiError) || turn.mid) {
      view.showError(bubble, err.message || String(err));
    }
  } finally {
    if (!turn.done) {
      turn.thought?.end();
      turn.live.end();
      if (turn.ctrl.signal.aborted && !view.hasError(bubble)) view.setStats(bubble, { finish_reason: 'cancelled' });
    }
    if (active === turn) { active = null; view.setBusy(false); }
    onEnded(turn, failure);
  }
  if (failure instanceof ApiError && !turn.mid) throw failure;
}

/** Ask the server to stop the reply; its stream then ends with `done` (cancelled). */
export async function stop(turn) {
  turn.stopRequested = true;
  view.setStopping();
  if (!turn.mid) return; // stopped as soon as the server names the reply
  try {
    await transport().cancel(turn.sid, turn.mid);
  } catch { /* the stream itself will tell */ }
  setTimeout(() => { if (!turn.done) turn.ctrl.abort(); }, 4000);
}

/**
 * Stop showing the reply (the person switched conversations). It is still followed, off the
 * page, to its end: a reply nobody follows is stopped by the server after its grace period.
 */
export function detach(turn) {
  if (active === turn) { active = null; view.setBusy(false); }
}
