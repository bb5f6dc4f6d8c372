#!/usr/bin/env bash
# End-to-end media relay test: callgate with `[media] relay = true` in a
# loopback-only network namespace (run as root), and tests/e2e/lib/relay.mjs:
# two Chromium + JsSIP phones call each other with media through the relay,
# and a browser calls a plain G.711 UDP phone (sipp echoing RTP); getStats()
# shows RTP both ways. Exits non-zero on failure and then
# prints the server log.
#
#   bash tests/e2e/relay.sh
#
# Knobs as in browser.sh: CALLGATE_BIN, CALLGATE_NO_BUILD=1, E2E_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/lib/common.sh

e2e_prepare chromium sipp
e2e_enter_netns "$@"

# common.sh's e2e_start_server with a [media] section: the relay on, its
# ports, and the loopback address in SDP.
export E2E_RELAY_PORTS=${E2E_RELAY_PORTS:-40000-40999}
E2E_TMP=$(mktemp -d /tmp/callgate-e2e-relay.XXXXXX)
mkdir -p "$E2E_TMP/data" "$E2E_TMP/artifacts"
export E2E_ARTIFACTS=$E2E_TMP/artifacts
cat >"$E2E_TMP/callgate.toml" <<TOML
data_dir = "$E2E_TMP/data"

[sip]
domain = "127.0.0.1"
udp = ["127.0.0.1:5060"]
tcp = ["127.0.0.1:5060"]
tls = ["127.0.0.1:5061"]
wss = ["127.0.0.1:7443"]
# sipp 3.6 reads only the first digest challenge and knows only MD5.
digest_algorithms = ["MD5"]

[media]
relay = true
port_min = ${E2E_RELAY_PORTS%-*}
port_max = ${E2E_RELAY_PORTS#*-}
advertised_address = "127.0.0.1"

[[users]]
name = "1000"
password = "secret1000"

[[users]]
name = "1001"
password = "secret1001"

[[users]]
name = "1002"
password = "secret1002"
TOML
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
e2e_log "starting $CALLGATE_BIN --config $E2E_TMP/callgate.toml (log: $E2E_TMP/server.log)"
RUST_LOG=${E2E_RUST_LOG:-debug} "$CALLGATE_BIN" --config "$E2E_TMP/callgate.toml" >"$E2E_TMP/server.log" 2>&1 &
E2E_SERVER_PID=$!
if ! node tests/e2e/lib/wait-ready.mjs --pid "$E2E_SERVER_PID" --timeout-ms "${E2E_READY_TIMEOUT_MS:-30000}"; then
  e2e_log "callgate did not come up"
  exit 1
fi

timeout -k 10 "${E2E_RELAY_TIMEOUT:-300}" node --test-reporter=spec tests/e2e/lib/relay.mjs
# The relay's own counters, logged when each session is deleted.
grep -E "media session ended" "$E2E_TMP/server.log" >&2 || true
ended=$(grep -c "media session ended" "$E2E_TMP/server.log" || true)
if [ "${ended:-0}" -lt 3 ]; then
  e2e_log "expected 3 relay sessions to end, saw ${ended:-0}"
  exit 1
fi
