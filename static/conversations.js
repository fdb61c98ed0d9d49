// The conversations: which one is open (remembered across reloads), and the sidebar that
// lists them from the server, newest first, to switch to, rename or delete.
import * as api from './api.js';
import { el } from './view.js';

const STORE_KEY = 'streamchat.session';
const store = {
  get() { try { return localStorage.getItem(STORE_KEY); } catch { return null; } },
  set(v) { try { v ? localStorage.setItem(STORE_KEY, v) : localStorage.removeItem(STORE_KEY); } catch { /* private mode */ } },
};

/** The open conversation, as the server last sent it (GET /v1/sessions/{sid}). */
export let current = null;

/** @param {object} session */
export function setCurrent(session) {
  current = session;
  store.set(session?.id || null);
  // Marked at once in the list shown, not only when the list is next fetched.
  for (const li of side.list.querySelectorAll('li.conversation')) {
    const open = li.querySelector('.open');
    if (li.dataset.id === session?.id) open?.setAttribute('aria-current', 'true');
    else open?.removeAttribute('aria-current');
  }
}

/** The remembered conversation, or null if there is none or the server lost it. */
export async function remembered() {
  const saved = store.get();
  return saved ? api.getSession(saved) : null;
}

/**
 * A new conversation, made current. It keeps the model of `like` (the one the person was in):
 * who picked a fine-tuned model goes on with it; its other settings start afresh.
 */
export async function create(like = null) {
  const fields = {};
  if (like?.model) fields.model = like.model;
  const session = await api.createSession(fields);
  setCurrent(session);
  return session;
}

/** A title from the first message: its first line, cut at a word near 60 characters. */
export function titleFrom(text) {
  const line = text.trim().split('\n')[0].replace(/\s+/g, ' ');
  if (line.length <= 60) return line;
  const cut = line.slice(0, 60);
  return `${cut.slice(0, cut.lastIndexOf(' ') > 30 ? cut.lastIndexOf(' ') : 60)}…`;
}

// -- the sidebar ------------------------------------------------------------------------

const side = {
  list: document.querySelector('#conversations'),
  panel: document.querySelector('#sidebar'),
  toggle: document.querySelector('#sidebar-toggle'),
};

/** @type {{open: (sid: string) => void, deleted: (sid: string) => void, error: (err: Error) => void}} */
let handlers = { open() {}, deleted() {}, error() {} };
export function onSidebar(h) { handlers = h; }

const when = (created) => {
  const d = new Date(created * 1000), now = new Date();
  return d.toDateString() === now.toDateString()
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
};

/** Fetch the list and draw it; empty conversations other than the open one are left out. */
export async function refresh() {
  let sessions;
  try {
    sessions = await api.listSessions();
  } catch (err) {
    handlers.error(err);
    return;
  }
  const items = sessions.filter((s) => s.messages > 0 || s.id === current?.id).map(item);
  side.list.replaceChildren(...items);
  if (!items.length) side.list.append(el('li', 'empty', 'No conversations yet'));
}

/** @param {{id: string, created: number, title: string|null}} s */
function item(s) {
  const li = el('li', 'conversation');
  li.dataset.id = s.id;
  const open = el('button', 'open');
  open.type = 'button';
  open.append(el('span', 'name', s.title || 'New chat'), el('span', 'when', when(s.created)));
  if (s.id === current?.id) open.setAttribute('aria-current', 'true');
  open.addEventListener('click', () => { handlers.open(s.id); collapseOnPhone(); });
  const rename = el('button', 'ghost small icon', '✎');
  rename.type = 'button';
  rename.setAttribute('aria-label', `Rename “${s.title || 'New chat'}”`);
  rename.addEventListener('click', () => startRename(li, s));
  const remove = el('button', 'ghost small icon', '✕');
  remove.type = 'button';
  remove.setAttribute('aria-label', `Delete “${s.title || 'New chat'}”`);
  remove.addEventListener('click', () => removeConversation(s));
  li.append(open, rename, remove);
  return li;
}

/** The title becomes a text box: Enter saves, Escape gives up. */
function startRename(li, s) {
  const input = el('input', 'rename');
  input.value = s.title || '';
  input.maxLength = 200;
  input.setAttribute('aria-label', 'New title');
  li.replaceChildren(input);
  input.focus();
  input.select();
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    if (save && title && title !== s.title) {
      try {
        const updated = await api.updateSession(s.id, { title });
        if (current?.id === s.id) current.title = updated.title;
        handlers.renamed?.(updated);
      } catch (err) { handlers.error(err); }
    }
    await refresh();
    side.list.querySelector(`li[data-id="${CSS.escape(s.id)}"] .open`)?.focus();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); finish(true); }
    if (e.key === 'Escape') { e.preventDefault(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
}

async function removeConversation(s) {
  if (!confirm(`Delete “${s.title || 'New chat'}”? This cannot be undone.`)) return;
  try {
    await api.deleteSession(s.id);
  } catch (err) {
    if (!(err instanceof api.ApiError && err.status === 404)) { handlers.error(err); return; }
  }
  handlers.deleted(s.id);
  await refresh();
}

// On a phone the sidebar is a drawer over the conversation.
const phone = matchMedia('(max-width: 720px)');
export function setSidebarOpen(open) {
  document.body.classList.toggle('sidebar-open', open);
  side.toggle.setAttribute('aria-expanded', String(open));
  if (open) side.list.querySelector('[aria-current] , button')?.focus();
}
function collapseOnPhone() { if (phone.matches) setSidebarOpen(false); }
side.toggle.addEventListener('click', () =>
  setSidebarOpen(!document.body.classList.contains('sidebar-open')));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && phone.matches && document.body.classList.contains('sidebar-open')) {
    setSidebarOpen(false);
    side.toggle.focus();
  }
});
setSidebarOpen(!phone.matches);
