#!/usr/bin/env bash
# System packages the tests need: a real redis-server (the Redis tests start their own),
# Chromium (the chat page is tested in a headless browser) and nginx (the replicas are tested
# behind deploy/nginx.conf; the test starts its own nginx on a free port) and jq.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v jq >/dev/null || missing+=(jq)  # the docs' curl examples (tests/test_docs_examples.py)
# node and npm: the openai node SDK and @openai/agents run in the tests (tests/node).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

# The node clients, from the committed lock, when node_modules is missing or older than it:
# one line, and npm's output only if it fails.
node_clients() {
  local dir stamp log
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/node"
  stamp="$dir/node_modules/.installed"
  [ "$stamp" -nt "$dir/package-lock.json" ] && return 0
  echo "==> npm ci in tests/node (openai, @openai/agents)"
  log=$(mktemp)
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; return 1
  fi
  rm -f "$log"; touch "$stamp"
}

if [ ${#missing[@]} -eq 0 ]; then node_clients; exit; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing ${missing[*]} (apt-get)"
  # Debian starts nginx on port 80 as it installs it, and fails the install if the port is
  # taken: forbid service starts for the install, unless a policy (Docker's) already does.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The tests start their own servers; the distribution's services are not needed.
  for service in redis-server nginx; do
    (command -v systemctl >/dev/null && systemctl disable --now "$service" 2>/dev/null) || true
  done
  (command -v service >/dev/null && service nginx stop >/dev/null 2>&1) || true
  node_clients
  exit 0
fi
echo "test-deps: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
exit 1
