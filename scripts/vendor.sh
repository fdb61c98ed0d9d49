#!/usr/bin/env bash
# Vendors the chat page's browser libraries into static/vendor/: ES modules the page imports
# straight from /static/vendor/... (no build step, no CDN), each with its licence, and
# static/vendor/README.md listing them; and Swagger UI, the /docs page's. Needs npm (the registry) and node.
#   scripts/vendor.sh                      the pinned versions below
#   MARKED=18.3.0 scripts/vendor.sh        an update: then pin the new version here and commit
set -euo pipefail
MARKED=${MARKED:-18.2.1}     # npm marked: Markdown to HTML
DOMPURIFY=${DOMPURIFY:-3.5.0}  # npm dompurify: sanitises that HTML before it reaches the page
HLJS=${HLJS:-11.12.0}        # npm @highlightjs/cdn-assets: prebuilt ES modules and themes
SWAGGER_UI=${SWAGGER_UI:-5.35.0}  # npm swagger-ui-dist: /docs, on /openapi.json

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# unpack NAME@VERSION DIR: the npm package's files under $tmp/DIR.
unpack() {
  local tgz
  tgz=$(cd "$tmp" && npm pack --silent "$1" | tail -n 1)
  mkdir -p "$tmp/$2"
  tar xzf "$tmp/$tgz" -C "$tmp/$2" --strip-components=1
}
# put SRC NAME: SRC (in the unpacked packages) as static/vendor/NAME, without its
# sourceMappingURL comment: the maps are not vendored, and a browser would 404 on them.
put() {
  sed -e '/^\/\/# sourceMappingURL=/d' -e '/^\/\*# sourceMappingURL=.*\*\/$/d' "$tmp/$1" >"$dest/$2"
}

echo "==> npm pack marked@$MARKED dompurify@$DOMPURIFY @highlightjs/cdn-assets@$HLJS" \
  "swagger-ui-dist@$SWAGGER_UI"
unpack "marked@$MARKED" marked
unpack "dompurify@$DOMPURIFY" dompurify
unpack "@highlightjs/cdn-assets@$HLJS" hljs
unpack "swagger-ui-dist@$SWAGGER_UI" swagger

rm -rf "$dest"
mkdir -p "$dest"
put marked/lib/marked.esm.js marked.esm.js
put marked/LICENSE marked.LICENSE.md
# .js rather than the package's .mjs: every server (nginx's mime.types too) sends .js as
# JavaScript, which a module script must be.
put dompurify/dist/purify.es.mjs purify.es.js
put dompurify/LICENSE dompurify.LICENSE
put dompurify/LICENSE-MPL dompurify.LICENSE-MPL
# es/highlight.min.js is the core with the common languages; es/core.min.js has none.
put hljs/es/highlight.min.js highlight.min.js
put hljs/styles/github.min.css hljs-light.css
put hljs/styles/github-dark.min.css hljs-dark.css
put hljs/LICENSE highlight.LICENSE
# The bundle (React and all, a classic script that defines SwaggerUIBundle) and its styles; the
# page's CSP holds for them: static/docs.js starts it, as no inline script may.
put swagger/swagger-ui-bundle.js swagger-ui-bundle.js
put swagger/swagger-ui.css swagger-ui.css
put swagger/LICENSE swagger-ui.LICENSE
put swagger/NOTICE swagger-ui.NOTICE

if grep -l 'sourceMappingURL' "$dest"/*; then
  echo "vendor: a sourceMappingURL is left in the files above" >&2
  exit 1
fi

echo "==> checking that each module imports (node)"
# The vendored names end in .js: node reads them as modules only under a type=module package.
mkdir "$tmp/check"
echo '{"type": "module"}' >"$tmp/check/package.json"
cp "$dest"/*.js "$tmp/check/"
grep -q "SwaggerUIBundle" "$dest/swagger-ui-bundle.js" || { echo "vendor: swagger-ui" >&2; exit 1; }
(cd "$tmp/check" && node --input-type=module -e "
const { marked } = await import('./marked.esm.js');
// No DOM in node: it loads as the factory (DOMPurify(window)), without sanitize.
const { default: purify } = await import('./purify.es.js');
const { default: hljs } = await import('./highlight.min.js');
const fail = (what) => { console.error('vendor: ' + what); process.exit(1); };
if (marked.parse('# hi').trim() !== '<h1>hi</h1>') fail('marked does not parse');
if (purify.version !== '$DOMPURIFY' || typeof purify !== 'function') fail('dompurify');
for (const lang of ['python', 'javascript', 'typescript', 'bash', 'shell', 'json', 'yaml', 'sql',
                    'xml', 'css', 'markdown', 'diff', 'c', 'cpp', 'rust', 'go', 'java']) {
  if (!hljs.getLanguage(lang)) fail('highlight.js has no ' + lang);
}
if (!hljs.highlight('def f(): pass', { language: 'python' }).value.includes('hljs-keyword')) {
  fail('highlight.js does not highlight');
}
console.log('marked ' + '$MARKED' + ', dompurify ' + purify.version + ', highlight.js ' +
            hljs.versionString + ' with ' + hljs.listLanguages().length + ' languages: ok');
")

size() { wc -c <"$dest/$1" | awk '{ printf "%.1f KB", $1 / 1024 }'; }
cat >"$dest/README.md" <<EOF
# Vendored browser libraries

Written by \`scripts/vendor.sh\` (edit that, not this): the chat page renders a reply's Markdown
with these, imported as ES modules from \`/static/vendor/...\`, with no build step and no CDN.
To update, run \`MARKED=x.y.z scripts/vendor.sh\` (or DOMPURIFY=, HLJS=), then pin the new
version in the script and commit static/vendor/ with it. The source maps are not vendored, and
their \`sourceMappingURL\` comments are stripped.

| Library | Version | Licence | File here | From the npm package | Size |
|---|---|---|---|---|---|
| [marked](https://github.com/markedjs/marked) | $MARKED | MIT | \`marked.esm.js\` | \`marked@$MARKED\`: \`lib/marked.esm.js\` | $(size marked.esm.js) |
| | | | \`marked.LICENSE.md\` | \`LICENSE\` | |
| [DOMPurify](https://github.com/cure53/DOMPurify) | $DOMPURIFY | Apache-2.0 or MPL-2.0 (used under Apache-2.0) | \`purify.es.js\` | \`dompurify@$DOMPURIFY\`: \`dist/purify.es.mjs\` (renamed .js: served as JavaScript everywhere) | $(size purify.es.js) |
| | | | \`dompurify.LICENSE\`, \`dompurify.LICENSE-MPL\` | \`LICENSE\`, \`LICENSE-MPL\` | |
| [highlight.js](https://highlightjs.org/) | $HLJS | BSD-3-Clause | \`highlight.min.js\` | \`@highlightjs/cdn-assets@$HLJS\`: \`es/highlight.min.js\` (the core and its common languages) | $(size highlight.min.js) |
| | | | \`hljs-light.css\` | \`styles/github.min.css\` | $(size hljs-light.css) |
| | | | \`hljs-dark.css\` | \`styles/github-dark.min.css\` | $(size hljs-dark.css) |
| | | | \`highlight.LICENSE\` | \`LICENSE\` | |
| [Swagger UI](https://github.com/swagger-api/swagger-ui) | $SWAGGER_UI | Apache-2.0 | \`swagger-ui-bundle.js\` | \`swagger-ui-dist@$SWAGGER_UI\`: \`swagger-ui-bundle.js\` (a classic script, for /docs only) | $(size swagger-ui-bundle.js) |
| | | | \`swagger-ui.css\` | \`swagger-ui.css\` | $(size swagger-ui.css) |
| | | | \`swagger-ui.LICENSE\`, \`swagger-ui.NOTICE\` | \`LICENSE\`, \`NOTICE\` | |

Use from a page's module script:

\`\`\`js
import { marked } from '/static/vendor/marked.esm.js';
import DOMPurify from '/static/vendor/purify.es.js';
import hljs from '/static/vendor/highlight.min.js';
\`\`\`

highlight.js here has these (and their aliases: js, sh, py, ...):
$(cd "$tmp/check" && node --input-type=module -e "
const { default: hljs } = await import('./highlight.min.js');
console.log(hljs.listLanguages().join(', ') + '.');
" | fold -s -w 96 | sed 's/ *$//')

The themes style \`.hljs\` elements; pick one with a \`<link>\` (e.g. hljs-dark.css with
\`media="(prefers-color-scheme: dark)"\`).
EOF
echo "==> static/vendor/:"
ls -l "$dest"
