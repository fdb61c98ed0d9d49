// The conversation on the page: message rows, reply stats, errors, the banner, the connection
// state, and the Send/Stop button. Model text goes through render.js (sanitized Markdown) or
// textContent, never straight into innerHTML.
import { renderMarkdown, copyText } from './render.js';

const $ = (sel) => document.querySelector(sel);
export const ui = {
  list: $('#messages'), prompt: $('#prompt'), send: $('#send'), form: $('#composer'),
  connection: $('#connection'), model: $('#model'), title: $('#chat-title'),
  banner: $('#banner'), announcer: $('#announcer'), editing: $('#editing'),
};

// Only follow new output if the reader hasn't scrolled up to read something earlier.
const nearBottom = () => ui.list.scrollHeight - ui.list.scrollTop - ui.list.clientHeight < 80;
export function scrollDown(force = false) {
  if (force || nearBottom()) ui.list.scrollTop = ui.list.scrollHeight;
}
/** @param {string} tag @param {string} className @param {string} [text] */
export function el(tag, className, text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** What a screen reader calls each kind of row (items.js makes the last three). */
const ROW_LABELS = { user: 'You said', assistant: 'Assistant replied', call: 'Assistant called a tool',
  tool: 'Tool output', instructions: 'Instructions' };

/**
 * Append a message row; returns its bubble. The row's `dataset.id` is the message id, once known.
 * @param {'user'|'assistant'|'notice'|'call'|'tool'|'instructions'} role @param {string} [text] @param {string} [id]
 */
export function addRow(role, text = '', id = '') {
  const stick = nearBottom();
  const row = el('article', `row ${role}`);
  if (id) row.dataset.id = id;
  if (ROW_LABELS[role]) row.setAttribute('aria-label', ROW_LABELS[role]);
  const bubble = el('div', `msg ${role}`);
  if (role === 'assistant' && text) renderMarkdown(bubble, text, true);
  else bubble.textContent = text;
  row.append(bubble);
  ui.list.append(row);
  scrollDown(stick);
  return bubble;
}
export const notice = (text) => addRow('notice', text);
export const clearRows = () => ui.list.replaceChildren();

/** A reply being streamed: its text is re-rendered at most once a frame. */
export class LiveText {
  /** @param {HTMLElement} bubble */
  constructor(bubble) {
    this.bubble = bubble;
    this.text = '';
    this.frame = 0;
    bubble.replaceChildren();
    bubble.classList.add('streaming');
  }
  /** @param {string} chunk */
  append(chunk) {
    this.text += chunk;
    this.frame ||= requestAnimationFrame(() => { this.frame = 0; this.paint(false); });
  }
  reset() { this.text = ''; this.paint(false); }
  /** @param {boolean} final */
  paint(final) {
    const stick = nearBottom();
    renderMarkdown(this.bubble, this.text, final);
    scrollDown(stick);
  }
  end() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.bubble.classList.remove('streaming');
    this.paint(true);
  }
}

/** The line under a bubble: waiting text, stats, and the row's actions. */
function footer(bubble) {
  const row = bubble.parentElement;
  return row.querySelector('.stats') || row.appendChild(el('div', 'stats'));
}

/**
 * Where a reply stands before its first token: "Waiting · 3 ahead" while it is queued,
 * "Reading your message…" once the engine has it; cleared by the first token.
 * @param {HTMLElement} bubble @param {string|null} text
 */
export function setWaiting(bubble, text) {
  const row = bubble.parentElement;
  const current = row.querySelector('.stats');
  if (!text) { if (current?.classList.contains('waiting')) current.remove(); return; }
  const stick = nearBottom();
  const line = footer(bubble);
  line.classList.add('waiting');
  line.textContent = text;
  scrollDown(stick);
}

/** Time to first token, speed and tokens, from a `done` event or a stored reply. */
export function setStats(bubble, data) {
  const stick = nearBottom();
  const line = footer(bubble);
  line.classList.remove('waiting');
  const parts = [], u = data.usage || {}, t = data.timings || {};
  if (t.ttft_ms != null) parts.push(`TTFT ${Math.round(t.ttft_ms)} ms`);
  if (t.tokens_per_s != null) parts.push(`${t.tokens_per_s.toFixed(1)} tok/s`);
  if (u.completion_tokens != null) parts.push(`${u.completion_tokens} tokens`);
  if (u.prompt_tokens != null) {
    parts.push(`prompt ${u.prompt_tokens}${u.cached_tokens ? ` (${u.cached_tokens} cached)` : ''}`);
  }
  if (t.queue_ms >= 100) parts.push(`queued ${(t.queue_ms / 1000).toFixed(1)} s`);
  if (data.finish_reason === 'cancelled') parts.push('stopped');
  else if (data.finish_reason === 'length') parts.push('length limit');
  line.textContent = parts.join(' · ');
  scrollDown(stick);
}

/** Keeps any partial text, then says what went wrong. */
export function showError(bubble, message) {
  const stick = nearBottom();
  bubble.classList.remove('streaming');
  bubble.classList.add('error');
  bubble.append(el('p', 'error-note', message || 'Something went wrong.'));
  scrollDown(stick);
}
export const hasError = (bubble) => bubble.classList.contains('error');

/**
 * Buttons under a row (copy, regenerate, edit), replacing any it had.
 * @param {HTMLElement} bubble @param {{label: string, text: string, onClick: Function}[]} actions
 */
export function setActions(bubble, actions) {
  const row = bubble.parentElement, stick = nearBottom();
  row.querySelector('.actions')?.remove();
  if (!actions.length) return;
  const bar = el('div', 'actions');
  for (const a of actions) {
    const b = el('button', 'ghost small', a.text);
    b.type = 'button';
    b.setAttribute('aria-label', a.label);
    b.addEventListener('click', () => a.onClick(b));
    bar.append(b);
  }
  row.append(bar);
  scrollDown(stick);
}
export const copyAction = (bubble, text) =>
  ({ label: 'Copy reply', text: 'Copy', onClick: (b) => copyText(b, text) });
export const clearActions = () => ui.list.querySelectorAll('.actions').forEach((a) => a.remove());

/** Screen readers hear a reply once, when it is complete, not token by token. */
export function announce(text) {
  ui.announcer.textContent = '';
  setTimeout(() => { ui.announcer.textContent = text; }, 50);
}

/**
 * A message above the composer that stays until it is dismissed or expires: a full queue,
 * a server starting up, a missing key. `retryAfter` counts down.
 * @param {string|null} text @param {{retryAfter?: number|null, action?: {text: string, onClick: Function}}} [opts]
 */
let bannerTimer = null;
export function banner(text, opts = {}) {
  clearInterval(bannerTimer);
  ui.banner.replaceChildren();
  ui.banner.hidden = !text;
  if (!text) return;
  const message = el('span', '', text);
  ui.banner.append(message);
  if (opts.retryAfter) {
    const until = Date.now() + opts.retryAfter * 1000;
    const when = el('span', 'retry');
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) { clearInterval(bannerTimer); when.textContent = ' You can try again now.'; return; }
      when.textContent = ` Try again in ${left} s.`;
    };
    tick();
    bannerTimer = setInterval(tick, 1000);
    ui.banner.append(when);
  }
  if (opts.action) {
    const b = el('button', 'ghost small', opts.action.text);
    b.type = 'button';
    b.addEventListener('click', () => opts.action.onClick());
    ui.banner.append(b);
  }
  const close = el('button', 'ghost small dismiss', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss message');
  close.addEventListener('click', () => banner(null));
  ui.banner.append(close);
}

const STATE_TEXT = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…',
  offline: 'Offline', loading: 'Starting up…', down: 'Server unreachable' };
/** @param {string} state */
export function setConnection(state) {
  ui.connection.dataset.state = state;
  ui.connection.querySelector('.label').textContent = STATE_TEXT[state] || state;
}
export const setModel = (name) => { if (name) ui.model.textContent = name; };
export const setTitle = (title) => { ui.title.textContent = title || 'New chat'; document.title = `${title || 'New chat'} · streamchat`; };

/** The Send button turns into Stop while a reply streams. */
export function setBusy(busy) {
  ui.send.classList.toggle('stop', busy);
  ui.send.textContent = busy ? 'Stop' : 'Send';
  ui.send.setAttribute('aria-label', busy ? 'Stop generating' : 'Send message');
  ui.send.disabled = false;
  ui.list.setAttribute('aria-busy', String(busy));
}
// Stop was pressed: no second press until the reply has ended.
export const setStopping = () => { ui.send.disabled = true; };

/** "Editing your message" above the composer while an edit is pending. */
export function setEditing(on) { ui.editing.hidden = !on; }
