// Readiness polling: the status dot and model name follow the server's /ready.
import { getReady } from './api.js';
import { setStatus, setModel } from './view.js';

let pollTimer = null, pollSeq = 0;

/** Check now, then keep checking; calling it again restarts the schedule. */
export async function pollReady() {
  clearTimeout(pollTimer);
  const seq = ++pollSeq;
  let next = 3000;
  try {
    const res = await getReady();
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
  if (seq === pollSeq) pollTimer = setTimeout(pollReady, next); // a newer poll owns the timer
}
