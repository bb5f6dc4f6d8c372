#!/usr/bin/env bash
# Regenerates the Chromium SDP fixtures in crates/sdp/tests/data (run as root:
# the capture runs in a loopback-only network namespace made with unshare).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
(cd tests && npm ci --no-audit --no-fund --loglevel=error)
exec unshare --net sh -c 'ip link set lo up; node tests/sdp-capture/capture.mjs'
