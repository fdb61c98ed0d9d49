// streamchat browser client: server-side sessions, replies streamed over SSE via fetch().
// Model text only ever goes through textContent / Text nodes, never innerHTML.

const $ = (sel) => document.querySelector(sel);
const ui = {
  list: $('#messages'), prompt: $('#prompt'), send: $('#send'), form: $('#composer'),
  status: $('#status'), model: $('#model'), newChat: $('#new-chat'),
};
const STORE_KEY = 'streamchat.session';
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const MAX_RETRIES = 3;

let sid = null;      // current session id
let active = null;   // the reply being streamed: {mid, lastId, bubble, stopRequested, done, ctrl}

const store = {
  get() { try { return localStorage.getItem(STORE_KEY); } catch { return null; } },
  set(v) { try { v ? localStorage.setItem(STORE_KEY, v) : localStorage.removeItem(STORE_KEY); } catch { /* private mode */ } },
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const path = (...parts) => '/v1/sessions/' + parts.map(encodeURIComponent).join('/');

async function errorText(res) {
  const body = await res.json().catch(() => null); // errors are {"error": {"message", ...}}
  return body?.error?.message || `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
}

// ---------- rendering ----------
const nearBottom = () => ui.list.scrollHeight - ui.list.scrollTop - ui.list.clientHeight < 80;
function scrollDown(force = false) {
  if (force || nearBottom()) ui.list.scrollTop = ui.list.scrollHeight;
}
function div(className, text = '') {
  const el = document.createElement('div');
  el.className = className;
  el.textContent = text;
  return el;
}
function addRow(role, text = '') {
  const stick = nearBottom();
  const row = div(`row ${role}`), msg = div(`msg ${role}`, text);
  row.append(msg);
  ui.list.append(row);
  scrollDown(stick);
  return msg;
}
function setStats(bubble, data) {
  const row = bubble.parentElement, stick = nearBottom();
  const el = row.querySelector('.stats') || row.appendChild(div('stats'));
  const parts = [], u = data.usage || {}, t = data.timings || {};
  if (u.completion_tokens != null) parts.push(`${u.completion_tokens} tokens`);
  if (t.ttft_ms != null) parts.push(`TTFT ${Math.round(t.ttft_ms)} ms`);
  if (t.tokens_per_s != null) parts.push(`${Math.round(t.tokens_per_s)} tok/s`);
  if (data.finish_reason === 'cancelled') parts.push('stopped');
  else if (data.finish_reason === 'length') parts.push('length limit');
  el.textContent = parts.join(' · ');
  scrollDown(stick);
}
function showError(bubble, message) { // keeps any partial text, then the error itself
  const stick = nearBottom();
  bubble.classList.remove('streaming');
  bubble.classList.add('error');
  if (bubble.textContent) bubble.append('\n');
  bubble.append(div('error-note', message || 'Something went wrong.'));
  scrollDown(stick);
}
const notice = (text) => addRow('notice', text);
function renderSession(session) {
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
  // A reply still in flight (e.g. the page was reloaded mid-stream): follow it again.
  if (pending) {
    pending.bubble.textContent = '';
    run(pending.bubble, null, pending.m.id);
  }
}

// ---------- status & model ----------
function setStatus(state, label) {
  ui.status.dataset.state = state;
  ui.status.title = label;
  ui.status.setAttribute('aria-label', `Server status: ${label}`);
}
const setModel = (name) => { if (name) ui.model.textContent = name; };
let pollTimer = null, pollSeq = 0;
async function pollReady() {
  clearTimeout(pollTimer);
  const seq = ++pollSeq;
  let next = 3000;
  try {
    const res = await fetch('/ready', { cache: 'no-store' });
    if (res.ok) {
      setStatus('ready', 'ready');
      setModel((await res.json().catch(() => ({}))).model);
      next = 30000; // ready: re-check occasionally to notice draining
    } else if (res.status === 503) {
      setStatus('loading', 'starting up or draining');
    } else {
      setStatus('down', `unavailable (HTTP ${res.status})`);
    }
  } catch {
    setStatus('down', 'unreachable');
  }
  if (seq === pollSeq) pollTimer = setTimeout(pollReady, next);
}

// ---------- sessions ----------
async function createSession() {
  const res = await fetch('/v1/sessions', {
    method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ title: 'Chat' }),
  });
  if (!res.ok) throw new Error(await errorText(res));
  const session = await res.json();
  sid = session.id;
  store.set(sid);
  return session;
}
async function loadSession() {
  const saved = store.get();
  if (saved) {
    const res = await fetch(path(saved), { cache: 'no-store' });
    if (res.ok) { const s = await res.json(); sid = s.id; return s; }
    if (res.status !== 404) throw new Error(await errorText(res));
  }
  return createSession();
}

// ---------- SSE over fetch ----------
function parseFrame(frame) {
  let event = 'message', id = null;
  const data = [];
  for (const line of frame.split('\n')) {
    if (!line || line.startsWith(':')) continue; // blank or comment (": ping")
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  try { return { event, id, data: JSON.parse(data.join('\n')) }; } catch { return null; }
}
async function* readEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = (buf + decoder.decode(value, { stream: true })).replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const ev = parseFrame(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
        if (ev) yield ev;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function handleEvent(turn, ev) {
  if (ev.id != null) {
    if (turn.lastId != null && Number(ev.id) <= Number(turn.lastId)) return; // seen already
    turn.lastId = ev.id;
  }
  const d = ev.data || {};
  if (ev.event === 'start') {
    turn.mid = d.message_id || turn.mid;
    setModel(d.model);
    if (turn.stopRequested) cancel(turn);
  } else if (ev.event === 'token') {
    const stick = nearBottom();
    turn.text.appendData(d.text || '');
    scrollDown(stick);
  } else if (ev.event === 'done') {
    turn.done = true;
    setStats(turn.bubble, d);
  } else if (ev.event === 'error') {
    turn.done = true;
    showError(turn.bubble, d.message || d.code || 'The reply failed.');
  }
}

// Open (or reopen) the stream of an existing message, resuming after the last event seen.
async function reconnect(turn) {
  const headers = { Accept: 'text/event-stream' };
  if (turn.lastId != null) headers['Last-Event-ID'] = String(turn.lastId);
  const res = await fetch(path(sid, 'messages', turn.mid, 'stream'),
    { headers, cache: 'no-store', signal: turn.ctrl.signal });
  if (res.ok) return res;
  const err = new Error(await errorText(res));
  err.retryable = res.status >= 500;
  throw err;
}

// Read a reply stream to its end, resuming with Last-Event-ID if the connection breaks.
async function follow(turn, res) {
  let failures = 0;
  for (;;) {
    try {
      res = res || await reconnect(turn);
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

// ---------- sending ----------
function setBusy(busy) {
  ui.send.classList.toggle('stop', busy);
  ui.send.textContent = busy ? 'Stop' : 'Send';
  ui.send.setAttribute('aria-label', busy ? 'Stop generating' : 'Send message');
  ui.send.disabled = false;
  ui.list.setAttribute('aria-busy', String(busy));
}

// Stream one assistant reply into `bubble`: either a new message (`content`) or resume `mid`.
async function run(bubble, content, mid = null) {
  const text = document.createTextNode('');
  bubble.replaceChildren(text);
  bubble.classList.add('streaming');
  const turn = { mid, lastId: null, bubble, text, done: false, stopRequested: false, ctrl: new AbortController() };
  active = turn;
  setBusy(true);
  try {
    let res = null;
    if (content != null) {
      if (!sid) await createSession();
      res = await fetch(path(sid, 'messages'), {
        method: 'POST', headers: { ...JSON_HEADERS, Accept: 'text/event-stream' },
        body: JSON.stringify({ content }), signal: turn.ctrl.signal,
      });
      if (!res.ok) {
        showError(bubble, await errorText(res));
        if (res.status === 503) pollReady();
        return;
      }
    }
    await follow(turn, res);
  } catch (err) {
    if (!turn.ctrl.signal.aborted) showError(bubble, err.message || String(err));
  } finally {
    bubble.classList.remove('streaming');
    if (!turn.done && turn.ctrl.signal.aborted && !bubble.classList.contains('error')) {
      setStats(bubble, { finish_reason: 'cancelled' });
    }
    if (active === turn) { active = null; setBusy(false); }
  }
}

async function cancel(turn) {
  turn.stopRequested = true;
  ui.send.disabled = true;
  if (!turn.mid) return; // cancelled as soon as the start event names the message
  try {
    await fetch(path(sid, 'messages', turn.mid, 'cancel'), { method: 'POST' });
  } catch { /* the stream itself will tell */ }
  // The stream should end with a `done` (finish_reason "cancelled"); don't wait forever.
  setTimeout(() => { if (!turn.done) turn.ctrl.abort(); }, 4000);
}

function submit() {
  if (active) return;
  const content = ui.prompt.value;
  if (!content.trim()) return;
  ui.prompt.value = '';
  autosize();
  addRow('user', content);
  const bubble = addRow('assistant');
  scrollDown(true);
  run(bubble, content);
}

async function newChat() {
  if (active) { const t = active; await cancel(t); t.ctrl.abort(); }
  ui.newChat.disabled = true;
  store.set(null); // forget the old conversation
  sid = null;
  ui.list.replaceChildren();
  try {
    await createSession();
  } catch (err) {
    notice(`Could not create a session: ${err.message}`);
  } finally {
    ui.newChat.disabled = false;
    ui.prompt.focus();
  }
}

function autosize() {
  ui.prompt.style.height = 'auto';
  ui.prompt.style.height = `${ui.prompt.scrollHeight + 2}px`;
}

// ---------- wiring ----------
ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (active) { if (!active.stopRequested) cancel(active); } else submit();
});
ui.prompt.addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a newline
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
});
ui.prompt.addEventListener('input', autosize);
ui.newChat.addEventListener('click', newChat);

pollReady();
try {
  renderSession(await loadSession());
} catch (err) {
  notice(`Could not load the conversation: ${err.message}`);
}
ui.prompt.focus();
