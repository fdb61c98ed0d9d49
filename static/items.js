// A conversation's messages that are not a plain turn, as the Conversations API stores them
// (app/conversations/items.py): an assistant's function calls (`tool_calls`), a function's
// output (role `tool`), and instructions (`system`, `developer`). Each is one row of the history,
// read-only. Names, arguments and outputs are whoever sent them: textContent only, never HTML.
import { showReasoning } from './reasoning.js';
import { renderMarkdown } from './render.js';
import { addRow, el } from './view.js';

/** A call as a line: "called get_weather({"city":"Paris"})". */
function callLine(call) {
  const fn = call.function || {};
  const signature = el('code', 'call-signature');
  signature.append(el('span', 'call-name', fn.name || '?'), '(', el('span', 'call-args', fn.arguments || ''), ')');
  const line = el('div', 'call-line');
  line.append(el('span', 'call-verb', 'called'), ' ', signature);
  return line;
}

/** An assistant message that calls functions: its text (if any), then one line per call. */
function showCalls(m) {
  const bubble = addRow('call', '', m.id);
  if (m.content) {
    const text = el('div', 'call-text');
    renderMarkdown(text, m.content, true);
    bubble.append(text);
  }
  bubble.append(...m.tool_calls.map(callLine));
  showReasoning(bubble, m.reasoning);
}

/** A function's output, labelled with the call it answers (its name when the call is known). */
function showOutput(m, names) {
  const bubble = addRow('tool', '', m.id);
  const head = el('div', 'tool-head');
  head.append(el('span', 'tool-label', 'tool output'));
  const name = names.get(m.tool_call_id);
  if (name) head.append(' ', el('span', 'tool-name', name));
  if (m.tool_call_id) head.append(' ', el('code', 'tool-id', m.tool_call_id));
  bubble.append(head, el('pre', 'tool-body', m.content || ''));
}

/** A system or developer message: the instructions the conversation was given. */
function showInstructions(m) {
  const bubble = addRow('instructions', '', m.id);
  bubble.append(el('div', 'instructions-label', m.role), el('div', 'instructions-body', m.content || ''));
}

/**
 * Put a stored message on the page if it is one of these; false for a user or assistant turn,
 * which the caller shows. `names` maps call ids to function names, filled as calls are shown.
 * @param {object} m a session message @param {Map<string, string>} names
 */
export function showItem(m, names) {
  if (m.tool_calls?.length) {
    for (const call of m.tool_calls) names.set(call.id, call.function?.name);
    showCalls(m);
  } else if (m.role === 'tool') {
    showOutput(m, names);
  } else if (m.role === 'system' || m.role === 'developer') {
    showInstructions(m);
  } else {
    return false;
  }
  return true;
}
