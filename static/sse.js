// The page's one SSE parser (text/event-stream, as the HTML standard defines it), fed the
// chunks of a fetch() body: fetch rather than EventSource so the page can POST, send
// Last-Event-ID and abort. Unit-tested in the browser: tests/test_page_sse_parser.py.

/** @typedef {{event: string, id: string|null, data: any}} SseEvent */

export class SseParser {
  constructor() {
    this.buf = '';
    this.pendingCR = false; // a chunk that ended on "\r": its "\n" may start the next chunk
    this.reset();
  }

  reset() { this.event = ''; this.id = null; this.data = []; }

  /**
   * Feed decoded text; returns the events it completed. Data that is not JSON is skipped:
   * every event this service sends carries JSON.
   * @param {string} text
   * @returns {SseEvent[]}
   */
  push(text) {
    if (this.pendingCR && text.startsWith('\n')) text = text.slice(1);
    this.pendingCR = text.endsWith('\r');
    this.buf += text;
    const out = [];
    let start = 0;
    for (;;) {
      const m = /\r\n|\r|\n/g;
      m.lastIndex = start;
      const hit = m.exec(this.buf);
      if (!hit) break;
      const ev = this.line(this.buf.slice(start, hit.index));
      if (ev) out.push(ev);
      start = hit.index + hit[0].length;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  /** @param {string} line one line, without its end @returns {SseEvent|null} */
  line(line) {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null; // a comment: ": ping"
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    return null;
  }

  dispatch() {
    const { event, id, data } = this;
    this.reset();
    if (!data.length) return null;
    try {
      return { event: event || 'message', id, data: JSON.parse(data.join('\n')) };
    } catch {
      return null;
    }
  }
}

/**
 * Yield each event of a text/event-stream response body.
 * @param {Response} res
 * @returns {AsyncGenerator<SseEvent>}
 */
export async function* readEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
