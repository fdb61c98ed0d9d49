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
[ ${#missing[@]} -eq 0 ] && exit 0
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
  exit 0
fi
echo "test-deps: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
exit 1
