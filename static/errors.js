// What the page says when the server refuses or fails a call: the one place that turns an
// ApiError (status, code, Retry-After) into the banner a person reads and what they can do.
import * as api from './api.js';
import { ApiError } from './api.js';
import { pollReady } from './ready.js';
import { askForKey } from './settings.js';
import * as view from './view.js';

/**
 * Tell the person what went wrong, and what to do about it.
 * @param {Error} err @param {{sessionGone: () => void}} on what to do when the conversation is gone
 */
export function explain(err, on) {
  if (!(err instanceof ApiError)) { view.banner(err.message || String(err)); return; }
  if (err.status === 401) {
    view.banner('This server needs an API key.', { action: { text: 'Enter key', onClick: enterKey } });
  } else if (err.status === 429) {
    view.banner(`The server is busy: ${err.message}`, { retryAfter: err.retryAfter || 5 });
  } else if (err.status === 503) {
    view.banner('The server is starting up or restarting.', { retryAfter: err.retryAfter || 5 });
    pollReady();
  } else if (err.status === 404 && err.code === 'session_not_found') {
    view.banner('This conversation no longer exists; a new one was started.');
    on.sessionGone();
  } else {
    view.banner(err.message);
  }
}

/** The person chose to give a key after all: keep it and start the page over with it. */
async function enterKey() {
  const key = await askForKey();
  if (key) { api.setKey(key); location.reload(); }
}
