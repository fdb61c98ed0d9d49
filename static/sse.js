// The page's one SSE parser: server-sent events read from a fetch() Response body.
// fetch() rather than EventSource so the page can POST, send Last-Event-ID and abort.

/** @typedef {{event: string, id: string|null, data: any}} SseEvent */

/** @param {string} frame one event's lines, without the blank line that ends it */
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

/**
 * Yield each event of a text/event-stream body whose data is JSON; others are skipped.
 * @param {Response} res
 * @returns {AsyncGenerator<SseEvent>}
 */
export async function* readEvents(res) {
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
