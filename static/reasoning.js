// A reply's reasoning (a reasoning model's thinking, sent as `reasoning` events and stored as the
// message's `reasoning`): a <details> above the answer's bubble, collapsed unless the person
// opens it, "Thinking…" while it streams and "Reasoning" once the answer starts or the reply
// ends. Its text is the model's: rendered as the answer is, through render.js (LiveText).
import { LiveText, el } from './view.js';

const THINKING = 'Thinking…';
const DONE = 'Reasoning';

/** The <details> of `bubble`'s row, made (collapsed) before the bubble if it has none. */
function detailsOf(bubble) {
  const row = bubble.parentElement;
  let details = row.querySelector(':scope > details.reasoning');
  if (!details) {
    details = el('details', 'reasoning');
    details.append(el('summary', '', DONE), el('div', 'reasoning-body'));
    row.insertBefore(details, bubble);
    row.classList.add('has-reasoning');
  }
  return details;
}

/** A reply's reasoning as it streams; `end()` once the answer starts or the reply ends. */
export class LiveReasoning {
  /** @param {HTMLElement} bubble the answer's bubble */
  constructor(bubble) {
    this.details = detailsOf(bubble);
    this.details.classList.add('streaming');
    this.details.setAttribute('aria-busy', 'true');
    this.summary = this.details.querySelector('summary');
    this.summary.textContent = THINKING;
    this.live = new LiveText(this.details.querySelector('.reasoning-body'));
    this.ended = false;
  }
  /** @param {string} chunk */
  append(chunk) { this.live.append(chunk); }
  end() {
    if (this.ended) return;
    this.ended = true;
    this.live.end();
    this.details.classList.remove('streaming');
    this.details.removeAttribute('aria-busy');
    this.summary.textContent = DONE;
  }
}

/** A stored reply's reasoning (the history), collapsed. @param {HTMLElement} bubble @param {string} text */
export function showReasoning(bubble, text) {
  if (!text) return;
  const thought = new LiveReasoning(bubble);
  thought.live.text = text;
  thought.end();
}
