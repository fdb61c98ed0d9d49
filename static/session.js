// The current conversation: its id, remembered in localStorage across reloads.
import * as api from './api.js';

const STORE_KEY = 'streamchat.session';

/** The current session id (a live binding: read it at the moment of use). @type {string|null} */
export let sid = null;

const store = {
  get() { try { return localStorage.getItem(STORE_KEY); } catch { return null; } },
  set(v) { try { v ? localStorage.setItem(STORE_KEY, v) : localStorage.removeItem(STORE_KEY); } catch { /* private mode */ } },
};

export async function createSession() {
  const session = await api.createSession();
  sid = session.id;
  store.set(sid);
  return session;
}

/** Reopen the remembered session, or start a new one if there is none or the server lost it. */
export async function loadSession() {
  const saved = store.get();
  if (saved) {
    const s = await api.getSession(saved);
    if (s) { sid = s.id; return s; }
  }
  return createSession();
}

export function forgetSession() {
  store.set(null); // forget the old conversation
  sid = null;
}
