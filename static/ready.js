// Readiness: the header says "Starting up…" while the engine loads or the replica drains, and
// the connection's own state once the server is ready.
import { getReady } from './api.js';
import { onState } from './connection.js';
import { setConnection } from './view.js';

let pollTimer = null, pollSeq = 0, ready = false, connection = 'connecting';
onState((state) => { connection = state; if (ready) setConnection(state); });

/** Check now, then keep checking; calling it again restarts the schedule. */
export async function pollReady() {
  clearTimeout(pollTimer);
  const seq = ++pollSeq;
  let next = 3000;
  try {
    const res = await getReady();
    ready = res.ok;
    if (res.ok) {
      setConnection(connection === 'connecting' ? 'connected' : connection);
      next = 30000; // ready: re-check now and then to notice a drain
    } else {
      setConnection(res.status === 503 ? 'loading' : 'down');
    }
  } catch {
    ready = false;
    setConnection(navigator.onLine ? 'down' : 'offline');
  }
  if (seq === pollSeq) pollTimer = setTimeout(pollReady, next); // a newer poll owns the timer
}
addEventListener('online', pollReady);
addEventListener('offline', pollReady);
