// DOM rendering: message rows, stats, errors, the status dot, model name and Send/Stop button.
// Model text only ever goes through textContent / Text nodes, never innerHTML.

const $ = (sel) => document.querySelector(sel);
export const ui = {
  list: $('#messages'), prompt: $('#prompt'), send: $('#send'), form: $('#composer'),
  status: $('#status'), model: $('#model'), newChat: $('#new-chat'),
};

// Only follow new output if the reader hasn't scrolled up to read something earlier.
const nearBottom = () => ui.list.scrollHeight - ui.list.scrollTop - ui.list.clientHeight < 80;
export function scrollDown(force = false) {
  if (force || nearBottom()) ui.list.scrollTop = ui.list.scrollHeight;
}
function div(className, text = '') {
  const el = document.createElement('div');
  el.className = className;
  el.textContent = text;
  return el;
}

/** Append a message row; returns its bubble. @param {string} role user | assistant | notice */
export function addRow(role, text = '') {
  const stick = nearBottom();
  const row = div(`row ${role}`), msg = div(`msg ${role}`, text);
  row.append(msg);
  ui.list.append(row);
  scrollDown(stick);
  return msg;
}
export const notice = (text) => addRow('notice', text);
export const clearRows = () => ui.list.replaceChildren();

/** Empty `bubble` for a reply being streamed; returns the Text node that tokens go into. */
export function startStreaming(bubble) {
  const text = document.createTextNode('');
  bubble.replaceChildren(text);
  bubble.classList.add('streaming');
  return text;
}
/** @param {Text} text @param {string} chunk */
export function appendText(text, chunk) {
  const stick = nearBottom();
  text.appendData(chunk);
  scrollDown(stick);
}
export const endStreaming = (bubble) => bubble.classList.remove('streaming');
export const hasError = (bubble) => bubble.classList.contains('error');

/**
 * Where a reply stands before its first token, under its bubble: "Waiting · 3 ahead" while it
 * is queued, "Reading your message…" once the engine has it; cleared by the first token.
 * @param {HTMLElement} bubble @param {string|null} text
 */
export function setWaiting(bubble, text) {
  const row = bubble.parentElement;
  let el = row.querySelector('.stats');
  if (!text) { if (el && el.classList.contains('waiting')) el.remove(); return; }
  const stick = nearBottom();
  el = el || row.appendChild(div('stats'));
  el.classList.add('waiting');
  el.textContent = text;
  scrollDown(stick);
}

export function setStats(bubble, data) {
  const row = bubble.parentElement, stick = nearBottom();
  const el = row.querySelector('.stats') || row.appendChild(div('stats'));
  el.classList.remove('waiting');
  const parts = [], u = data.usage || {}, t = data.timings || {};
  if (u.completion_tokens != null) parts.push(`${u.completion_tokens} tokens`);
  if (t.ttft_ms != null) parts.push(`TTFT ${Math.round(t.ttft_ms)} ms`);
  if (t.tokens_per_s != null) parts.push(`${Math.round(t.tokens_per_s)} tok/s`);
  if (data.finish_reason === 'cancelled') parts.push('stopped');
  else if (data.finish_reason === 'length') parts.push('length limit');
  el.textContent = parts.join(' · ');
  scrollDown(stick);
}
export function showError(bubble, message) { // keeps any partial text, then the error itself
  const stick = nearBottom();
  bubble.classList.remove('streaming');
  bubble.classList.add('error');
  if (bubble.textContent) bubble.append('\n');
  bubble.append(div('error-note', message || 'Something went wrong.'));
  scrollDown(stick);
}

/**
 * Replace the rows with a stored conversation. Returns the reply still in flight, if any
 * (e.g. the page was reloaded mid-stream), so the caller can follow it again.
 * @returns {{m: object, bubble: HTMLElement}|null}
 */
export function renderSession(session) {
  ui.list.replaceChildren();
  let pending = null;
  for (const m of session.messages || []) {
    if (m.role === 'user') { addRow('user', m.content); continue; }
    if (m.role !== 'assistant') continue;
    const bubble = addRow('assistant', m.content);
    if (m.status === 'error') showError(bubble, 'The reply failed.');
    else if (m.usage || m.timings || m.status === 'cancelled') {
      setStats(bubble, { ...m, finish_reason: m.status === 'cancelled' ? 'cancelled' : m.finish_reason });
    }
    if (m.status === 'queued' || m.status === 'streaming') pending = { m, bubble };
  }
  scrollDown(true);
  return pending;
}

/** @param {'checking'|'ready'|'loading'|'down'} state */
export function setStatus(state, label) {
  ui.status.dataset.state = state;
  ui.status.title = label;
  ui.status.setAttribute('aria-label', `Server status: ${label}`);
}
export const setModel = (name) => { if (name) ui.model.textContent = name; };

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
