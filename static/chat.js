// streamchat browser client: server-side sessions, replies streamed over SSE via fetch().
// This entry wires the page; the modules it imports do the work:
//   api.js HTTP calls + error text · sse.js SSE parser · session.js session id + localStorage
//   view.js DOM rendering · ready.js readiness polling · turn.js one streamed reply, reconnect, Stop
import { createSession, forgetSession, loadSession } from './session.js';
import { pollReady } from './ready.js';
import { activeTurn, cancel, run } from './turn.js';
import { ui, addRow, clearRows, notice, renderSession, scrollDown } from './view.js';

function autosize() {
  ui.prompt.style.height = 'auto';
  ui.prompt.style.height = `${ui.prompt.scrollHeight + 2}px`;
}

/** The remembered conversation being put on the page; until then a message waits for it. */
let opening = Promise.resolve();

async function submit() {
  const content = ui.prompt.value;
  if (activeTurn() || !content.trim()) return;
  ui.prompt.value = '';
  autosize();
  // Sent while the page opens (e.g. while it asks for a key): rendering the conversation
  // afterwards would wipe this turn from the page, and a second session would be made for it.
  await opening;
  if (activeTurn()) { ui.prompt.value = content; autosize(); return; } // it reopened a reply in flight
  addRow('user', content);
  const bubble = addRow('assistant');
  scrollDown(true);
  run(bubble, content);
}

async function newChat() {
  await opening;
  const active = activeTurn();
  if (active) { await cancel(active); active.ctrl.abort(); }
  ui.newChat.disabled = true;
  forgetSession();
  clearRows();
  try {
    await createSession();
  } catch (err) {
    notice(`Could not create a session: ${err.message}`);
  } finally {
    ui.newChat.disabled = false;
    ui.prompt.focus();
  }
}

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const active = activeTurn();
  if (active) { if (!active.stopRequested) cancel(active); } else submit();
});
ui.prompt.addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a newline
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
});
ui.prompt.addEventListener('input', autosize);
ui.newChat.addEventListener('click', newChat);

async function openConversation() {
  try {
    const pending = renderSession(await loadSession());
    // A reply still in flight (e.g. the page was reloaded mid-stream): follow it again.
    if (pending) {
      pending.bubble.textContent = '';
      run(pending.bubble, null, pending.m.id);
    }
  } catch (err) {
    notice(`Could not load the conversation: ${err.message}`);
  }
}

pollReady();
opening = openConversation();
ui.prompt.focus();
