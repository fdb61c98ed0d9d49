// streamchat's chat page. This entry wires the page; the modules do the work:
//   connection.js WebSocket / SSE transports and the connection state · turn.js one streamed
//   reply and the reconnect policy · conversations.js the open conversation and the sidebar ·
//   reasoning.js a reply's reasoning · settings.js per-conversation settings and the API key ·
//   render.js safe Markdown · view.js the DOM · errors.js what a refusal tells the person ·
//   api.js HTTP calls · sse.js the SSE parser · ready.js readiness · items.js function calls,
//   their outputs and instructions in the history.
import * as api from './api.js';
import * as conversations from './conversations.js';
import { transport } from './connection.js';
import { explain } from './errors.js';
import { showItem } from './items.js';
import { pollReady } from './ready.js';
import { showReasoning } from './reasoning.js';
import { askForKey, loadModels, openSettings } from './settings.js';
import { activeTurn, detach, onTurnEnded, run, stop } from './turn.js';
import * as view from './view.js';
import { ui } from './view.js';

api.onKeyNeeded(askForKey);

let baseModel = null;
/** The user turn being edited (its id), while the composer holds its text. */
let editing = null;

function autosize() {
  ui.prompt.style.height = 'auto';
  ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight + 2, 240)}px`;
}
function setPrompt(text) { ui.prompt.value = text; autosize(); }

const FINAL = new Set(['done', 'cancelled', 'error']);

/** Put a conversation on the page; a reply still in flight (a reload mid-stream) is followed again. */
function show(session) {
  conversations.setCurrent(session);
  view.clearRows();
  view.setTitle(session.title);
  view.setModel(session.model || baseModel);
  cancelEdit();
  let pending = null;
  const calls = new Map(); // call id -> function name, for the outputs' labels
  for (const m of session.messages || []) {
    if (m.role === 'user') { view.addRow('user', m.content, m.id); continue; }
    if (showItem(m, calls)) continue;
    const inFlight = !FINAL.has(m.status);
    const bubble = view.addRow('assistant', inFlight ? '' : m.content, m.id);
    if (inFlight) { pending = { m, bubble }; continue; } // its events bring its reasoning again
    showReasoning(bubble, m.reasoning);
    if (m.status === 'error') view.showError(bubble, m.error?.message || 'The reply failed.');
    else view.setStats(bubble, { ...m, finish_reason: m.status === 'cancelled' ? 'cancelled' : m.finish_reason });
  }
  view.scrollDown(true);
  transport().prepare(session.id);
  if (pending) follow({ mid: pending.m.id, bubble: pending.bubble });
  else setActions();
}

/** Rows added before the server named their messages get their ids, in order (a row a message). */
function labelRows(messages) {
  const rows = [...ui.list.querySelectorAll(':scope > .row:not(.notice)')];
  if (rows.length !== messages.length) return;
  rows.forEach((row, i) => { row.dataset.id = messages[i].id; });
}

/** Copy on every reply; Regenerate on the last one and Edit on the last user turn. */
function setActions() {
  view.clearActions();
  const msgs = conversations.current?.messages || [];
  const lastUser = msgs.findLastIndex((m) => m.role === 'user');
  if (lastUser < 0 || activeTurn()) return;
  const row = (id) => ui.list.querySelector(`.row[data-id="${CSS.escape(id)}"] .msg`);
  for (const m of msgs) {
    const bubble = row(m.id);
    if (!bubble || m.role !== 'assistant' || !m.content) continue;
    const actions = [view.copyAction(bubble, m.content)];
    if (m === msgs.at(-1)) {
      actions.push({ label: 'Regenerate this reply', text: 'Regenerate',
        onClick: () => send(msgs[lastUser].content, { replaces: msgs[lastUser].id, fromComposer: false }) });
    }
    view.setActions(bubble, actions);
  }
  const user = row(msgs[lastUser].id);
  if (user) {
    view.setActions(user, [{ label: 'Edit your last message', text: 'Edit',
      onClick: () => startEdit(msgs[lastUser]) }]);
  }
}

function startEdit(message) {
  editing = message.id;
  setPrompt(message.content);
  view.setEditing(true);
  ui.prompt.focus();
}
function cancelEdit() { editing = null; view.setEditing(false); }

/** Follow a reply on the page until it ends. */
function follow(opts) {
  const sid = conversations.current.id;
  return run({ sid, ...opts });
}

/**
 * Send a user turn: new, or in place of an earlier one (`replaces`: regenerate, edit).
 * Refused (busy, not ready, bad input): text from the composer goes back in it, and the banner
 * says why. Regenerate (`fromComposer` false) leaves whatever the person is typing alone.
 */
async function send(content, { replaces = null, fromComposer = true } = {}) {
  if (activeTurn() || !content.trim()) return;
  const putBack = () => {
    if (!fromComposer || ui.prompt.value) return;
    setPrompt(content);
    if (replaces) { editing = replaces; view.setEditing(true); }
  };
  if (fromComposer) setPrompt('');
  // Sent while the page opens (a slow network, a key being asked for): putting the
  // conversation on the page afterwards would wipe this turn, and a second session be made.
  await opening;
  if (activeTurn()) { putBack(); return; } // it reopened a reply in flight
  let session = conversations.current;
  if (!session) {
    try { session = await conversations.create(); } catch (err) { putBack(); failed(err); return; }
  }
  const known = new Set((session.messages || []).map((m) => m.id));
  cancelEdit();
  view.banner(null);
  if (replaces) { // the replaced turn and what followed leave the page
    const rows = [...ui.list.children];
    const from = rows.findIndex((r) => r.dataset.id === replaces);
    if (from >= 0) rows.slice(from).forEach((r) => r.remove());
  }
  view.clearActions();
  view.addRow('user', content);
  const bubble = view.addRow('assistant');
  view.scrollDown(true);
  const body = replaces ? { content, replaces } : { content };
  if (!session.title && !session.messages?.length) nameAfter(session, content);
  try {
    await follow({ bubble, body, known });
  } catch (err) { // refused before it was taken: nothing was stored
    const fresh = await api.getSession(session.id).catch(() => null);
    if (fresh && conversations.current?.id === session.id) show(fresh);
    putBack();
    failed(err);
  }
}

/** The first message names the conversation. */
async function nameAfter(session, content) {
  try {
    const updated = await api.updateSession(session.id, { title: conversations.titleFrom(content) });
    if (conversations.current?.id === session.id) {
      conversations.current.title = updated.title;
      view.setTitle(updated.title);
    }
  } catch { /* it stays "New chat" */ }
  conversations.refresh();
}

onTurnEnded(async (turn) => {
  if (conversations.current?.id !== turn.sid) { conversations.refresh(); return; }
  const fresh = await api.getSession(turn.sid).catch(() => null);
  if (fresh && conversations.current?.id === turn.sid) {
    conversations.setCurrent(fresh);
    labelRows(fresh.messages);
    if (!activeTurn()) setActions();
  }
  conversations.refresh();
});

/** What went wrong, in the banner (errors.js); a conversation gone is replaced by a new one. */
const failed = (err) => explain(err, { sessionGone: newChat });

async function newChat() {
  const active = activeTurn();
  if (active) detach(active);
  const like = conversations.current;
  if (like && !like.messages?.length) { ui.prompt.focus(); return; } // it is new already
  try {
    show(await conversations.create(like));
  } catch (err) {
    failed(err);
  }
  conversations.refresh();
  ui.prompt.focus();
}

async function openConversation(sid) {
  if (sid === conversations.current?.id) return;
  const active = activeTurn();
  if (active) detach(active);
  try {
    const session = await api.getSession(sid);
    if (session) show(session);
    else { view.banner('That conversation no longer exists.'); conversations.refresh(); }
  } catch (err) {
    failed(err);
  }
  conversations.refresh();
}

conversations.onSidebar({
  open: openConversation,
  deleted: (sid) => { if (sid === conversations.current?.id) { conversations.setCurrent(null); newChat(); } },
  renamed: (s) => { if (s.id === conversations.current?.id) view.setTitle(s.title); },
  error: failed,
});

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const active = activeTurn();
  if (active) { if (!active.stopRequested) stop(active); } else send(ui.prompt.value, { replaces: editing });
});
ui.prompt.addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a newline
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ui.form.requestSubmit(); }
  if (e.key === 'Escape' && editing) { e.preventDefault(); cancelEdit(); setPrompt(''); }
});
ui.prompt.addEventListener('input', autosize);
document.querySelector('#new-chat').addEventListener('click', newChat);
document.querySelector('#edit-cancel').addEventListener('click', () => { cancelEdit(); setPrompt(''); ui.prompt.focus(); });
document.querySelector('#open-settings').addEventListener('click', () => {
  if (!conversations.current) return;
  openSettings(conversations.current, (s) => {
    conversations.current.system = s.system;
    conversations.current.params = s.params;
    conversations.current.model = s.model;
    view.setModel(s.model || baseModel);
  });
});

async function start() {
  pollReady();
  const models = await loadModels();
  baseModel = models[0] || null;
  try {
    show((await conversations.remembered()) || (await conversations.create()));
  } catch (err) {
    failed(err);
  }
  conversations.refresh();
}

/** The conversation being put on the page; until then a message waits for it. */
const opening = start();
ui.prompt.focus();
