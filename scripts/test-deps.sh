#!/usr/bin/env bash
# System packages the tests need: a real redis-server (the Redis store's tests start their own).
set -euo pipefail
if command -v redis-server >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing redis-server (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The tests start their own servers; the distribution's service is not needed.
  (command -v systemctl >/dev/null && systemctl disable --now redis-server 2>/dev/null) || true
  exit 0
fi
echo "test-deps: redis-server is missing; install it (e.g. sudo apt-get install redis-server)" >&2
exit 1
