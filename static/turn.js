// Streaming one assistant reply: its events, reconnecting with Last-Event-ID, and Stop.
import * as api from './api.js';
import { readEvents } from './sse.js';
import { sid, createSession } from './session.js';
import { pollReady } from './ready.js';
import * as view from './view.js';

const MAX_RETRIES = 3;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @typedef {object} Turn
 * @property {string|null} mid message id, known once the `start` event names it
 * @property {string|null} lastId id of the last event handled, for Last-Event-ID
 * @property {HTMLElement} bubble
 * @property {Text} text where tokens are appended
 * @property {boolean} done a `done` or `error` event arrived
 * @property {boolean} stopRequested
 * @property {AbortController} ctrl
 */

/** @type {Turn|null} the reply being streamed; at most one at a time */
let active = null;
export const activeTurn = () => active;

/** @param {Turn} turn @param {import('./sse.js').SseEvent} ev */
function handleEvent(turn, ev) {
  if (ev.id != null) {
    if (turn.lastId != null && Number(ev.id) <= Number(turn.lastId)) return; // seen already
    turn.lastId = ev.id;
  }
  const d = ev.data || {};
  if (ev.event === 'queued') { // progress carries no id: it never moves lastId
    const ahead = Number(d.position) || 0;
    view.setWaiting(turn.bubble, ahead ? `Waiting · ${ahead} ahead` : 'Waiting · next');
  } else if (ev.event === 'prefill') {
    view.setWaiting(turn.bubble, 'Reading your message…');
  } else if (ev.event === 'start') {
    turn.mid = d.message_id || turn.mid;
    view.setModel(d.model);
    if (turn.stopRequested) cancel(turn);
  } else if (ev.event === 'token') {
    if (!turn.text.length) view.setWaiting(turn.bubble, null);
    view.appendText(turn.text, d.text || '');
  } else if (ev.event === 'done') {
    turn.done = true;
    view.setStats(turn.bubble, d);
  } else if (ev.event === 'error') {
    turn.done = true;
    view.setWaiting(turn.bubble, null);
    view.showError(turn.bubble, d.message || d.code || 'The reply failed.');
  }
}

// Read a reply stream to its end, resuming with Last-Event-ID if the connection breaks.
async function follow(turn, res) {
  let failures = 0;
  for (;;) {
    try {
      res = res || await api.openStream(sid, turn.mid, turn.lastId, turn.ctrl.signal);
      for await (const ev of readEvents(res)) {
        handleEvent(turn, ev);
        failures = 0; // progress: the retry budget is for consecutive failures
      }
      if (turn.done) return;
      throw Object.assign(new Error('The connection closed before the reply finished.'), { retryable: true });
    } catch (err) {
      if (turn.ctrl.signal.aborted || turn.done) return;
      // TypeError is what fetch and stream reads throw on network failure.
      const retryable = err.retryable || err instanceof TypeError;
      if (!turn.mid || !retryable || failures >= MAX_RETRIES) throw err;
      failures += 1;
      res = null;
      await sleep(400 * failures);
    }
  }
}

/**
 * Stream one assistant reply into `bubble`: either a new message (`content`) or resume `mid`.
 * @param {HTMLElement} bubble @param {string|null} content @param {string|null} mid
 */
export async function run(bubble, content, mid = null) {
  const text = view.startStreaming(bubble);
  /** @type {Turn} */
  const turn = { mid, lastId: null, bubble, text, done: false, stopRequested: false, ctrl: new AbortController() };
  active = turn;
  view.setBusy(true);
  try {
    let res = null;
    if (content != null) {
      if (!sid) await createSession();
      res = await api.postMessage(sid, content, turn.ctrl.signal);
      if (!res.ok) {
        view.showError(bubble, await api.errorText(res));
        if (res.status === 503) pollReady();
        return;
      }
    }
    await follow(turn, res);
  } catch (err) {
    if (!turn.ctrl.signal.aborted) view.showError(bubble, err.message || String(err));
  } finally {
    view.endStreaming(bubble);
    if (!turn.done && turn.ctrl.signal.aborted && !view.hasError(bubble)) {
      view.setStats(bubble, { finish_reason: 'cancelled' });
    }
    if (active === turn) { active = null; view.setBusy(false); }
  }
}

/** Ask the server to stop the reply; it then ends the stream itself. @param {Turn} turn */
export async function cancel(turn) {
  turn.stopRequested = true;
  view.setStopping();
  if (!turn.mid) return; // cancelled as soon as the start event names the message
  try {
    await api.cancelMessage(sid, turn.mid);
  } catch { /* the stream itself will tell */ }
  // The stream should end with a `done` (finish_reason "cancelled"); don't wait forever.
  setTimeout(() => { if (!turn.done) turn.ctrl.abort(); }, 4000);
}
