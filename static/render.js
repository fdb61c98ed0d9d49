// Model output as Markdown, made safe: the model's text is untrusted (it may hold <script>,
// event handlers, javascript: links, raw HTML). Three layers keep it inert:
//   1. marked renders raw HTML in the text as text, never as markup;
//   2. DOMPurify sanitizes what marked made (no scripts, handlers, forms, images, styles,
//      and only http(s)/mailto links);
//   3. the page's Content-Security-Policy forbids inline script anyway.
import { Marked } from './vendor/marked.esm.js';
import DOMPurify from './vendor/purify.es.js';
import hljs from './vendor/highlight.min.js';

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const markdown = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html: ({ text }) => escapeHtml(text), // raw HTML blocks and inline tags: shown, not run
  },
});

const SAFE_URL = /^(?:https?:|mailto:|#)/i;
const PURIFY = {
  FORBID_TAGS: ['style', 'img', 'svg', 'math', 'form', 'input', 'button', 'textarea', 'select',
    'iframe', 'object', 'embed', 'video', 'audio', 'source', 'picture'],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction'],
  ALLOW_DATA_ATTR: false,
};

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName !== 'A') return;
  const href = node.getAttribute('href') || '';
  if (!SAFE_URL.test(href.trim())) node.removeAttribute('href'); // relative, data:, javascript:
  node.setAttribute('target', '_blank');
  node.setAttribute('rel', 'noopener noreferrer nofollow');
});

/**
 * Put `text`, rendered as Markdown, into `el`. While a reply streams this runs once per frame
 * at most; `final` adds syntax highlighting and the copy buttons once it has ended.
 * @param {HTMLElement} el @param {string} text @param {boolean} final
 */
export function renderMarkdown(el, text, final) {
  const html = markdown.parse(text, { async: false });
  el.replaceChildren(DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true }));
  if (final) decorateCode(el);
}

/** Highlight each code block and give it a copy button. @param {HTMLElement} el */
function decorateCode(el) {
  for (const pre of el.querySelectorAll('pre')) {
    const code = pre.querySelector('code');
    if (!code) continue;
    const lang = /language-([\w+-]+)/.exec(code.className)?.[1];
    if (lang && !hljs.getLanguage(lang)) code.className = ''; // unknown: let it guess
    hljs.highlightElement(code);
    const wrap = document.createElement('div');
    wrap.className = 'code';
    const bar = document.createElement('div');
    bar.className = 'code-bar';
    const label = document.createElement('span');
    label.textContent = lang || code.result?.language || 'code';
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'copy';
    copy.textContent = 'Copy';
    copy.setAttribute('aria-label', `Copy ${label.textContent} code`);
    copy.addEventListener('click', () => copyText(copy, code.textContent));
    bar.append(label, copy);
    pre.replaceWith(wrap);
    wrap.append(bar, pre);
  }
}

/** @param {HTMLButtonElement} button @param {string} text */
export async function copyText(button, text) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}
