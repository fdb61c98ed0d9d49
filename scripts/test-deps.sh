#!/usr/bin/env bash
# System packages the tests need: a real redis-server (the Redis tests start their own) and
# Chromium (the chat page is tested in a headless browser).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The tests start their own Redis servers; the distribution's service is not needed.
  (command -v systemctl >/dev/null && systemctl disable --now redis-server 2>/dev/null) || true
  exit 0
fi
echo "test-deps: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
exit 1
