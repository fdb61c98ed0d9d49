// Settings: a conversation's own (model, system prompt, temperature, max tokens), kept by the
// server on the session, and the API key, kept in this browser.
import * as api from './api.js';

const $ = (sel) => document.querySelector(sel);
const form = {
  dialog: $('#settings'), form: $('#settings-form'), model: $('#set-model'),
  system: $('#set-system'), temperature: $('#set-temperature'), maxTokens: $('#set-max-tokens'),
  error: $('#settings-error'), cancel: $('#settings-cancel'),
};

/** @type {{id: string, parent: string|null}[]} what /v1/models lists, the base model first */
let models = [];
/** The model names served, the base model first (fetched again each time settings open, so
 * an adapter a fine-tuning job just made is offered without reloading the page). */
export async function loadModels() {
  try {
    models = (await api.listModels()).map((m) => ({ id: m.id, parent: m.parent ?? null }));
  } catch { /* the select then offers what it had, and the session's own model */ }
  return models.map((m) => m.id);
}

/** Fill the model select: the base model, aliases, then fine-tuned adapters (`parent` set). */
function showModels(current) {
  const known = models.map((m) => m.id);
  const entries = [...models, ...(current && !known.includes(current) ? [{ id: current, parent: null }] : [])];
  form.model.replaceChildren(...entries.map((m, i) => {
    const o = document.createElement('option');
    o.value = m.id;
    o.textContent = m.parent ? `${m.id} (fine-tuned)` : i === 0 && models.length ? `${m.id} (base)` : m.id;
    return o;
  }));
  form.model.value = current || entries[0]?.id || '';
}

const numberOrNull = (input) => (input.value.trim() === '' ? null : Number(input.value));

/**
 * Show the settings of `session`; on Save they are sent to the server (PATCH) and `onSaved`
 * gets the updated session. A value the server refuses is shown in the dialog, which stays open.
 * @param {object} session @param {(s: object) => void} onSaved
 */
export function openSettings(session, onSaved) {
  showModels(session.model);
  loadModels().then(() => { if (form.dialog.open) showModels(form.model.value); });
  form.system.value = session.system || '';
  form.temperature.value = session.params?.temperature ?? '';
  form.maxTokens.value = session.params?.max_tokens ?? '';
  form.error.textContent = '';
  form.form.onsubmit = async (e) => {
    e.preventDefault();
    const params = { ...(session.params || {}) };
    for (const [key, input] of [['temperature', form.temperature], ['max_tokens', form.maxTokens]]) {
      const value = numberOrNull(input);
      if (value == null) delete params[key]; else params[key] = value;
    }
    const fields = { system: form.system.value.trim() ? form.system.value : null, params };
    if (form.model.value) fields.model = form.model.value;
    try {
      onSaved(await api.updateSession(session.id, fields));
      form.dialog.close();
    } catch (err) {
      form.error.textContent = err.message;
    }
  };
  form.cancel.onclick = () => form.dialog.close();
  form.dialog.showModal();
  form.model.focus();
}

// -- the API key ----------------------------------------------------------------------------

const key = { dialog: $('#key-dialog'), form: $('#key-form'), input: $('#key-input'), cancel: $('#key-cancel') };

/** Ask for the API key the server wants; resolves with it, or null if the person gave up. */
export function askForKey() {
  return new Promise((resolve) => {
    key.input.value = '';
    const close = (value) => {
      key.form.onsubmit = null;
      key.dialog.onclose = null;
      if (key.dialog.open) key.dialog.close();
      resolve(value);
    };
    key.form.onsubmit = (e) => { e.preventDefault(); close(key.input.value.trim() || null); };
    key.cancel.onclick = () => close(null);
    key.dialog.onclose = () => close(null); // Escape
    key.dialog.showModal();
    key.input.focus();
  });
}
