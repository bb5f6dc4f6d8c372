#!/usr/bin/env bash
# End-to-end SIP trunking test: callgate with a PSTN trunk ([[trunks]],
# [[dids]], relay on) in a loopback-only network namespace (run as root),
# and tests/e2e/lib/trunk.mjs: Chromium + JsSIP phones on 127.0.0.1, the
# trunk played by sipp on 127.0.0.2, an untrusted host on 127.0.0.3.
# Browser -> PSTN (no auth, 407, 401; DTMF; hold / resume), PSTN -> DID,
# relayed browser <-> browser audio+video, toll fraud, trunk registration,
# CDRs. tcpdump records what reaches the trunk. Exits non-zero on failure
# and then prints the server log.
#
#   bash tests/e2e/trunk.sh
#
# Knobs as in browser.sh: CALLGATE_BIN, CALLGATE_NO_BUILD=1, E2E_KEEP=1
# (keeps the temp dir: server.log, artifacts/ with JsSIP and sipp traces and
# trunk.pcap).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/lib/common.sh

e2e_prepare chromium sipp tcpdump
e2e_enter_netns "$@"

export E2E_RELAY_PORTS=${E2E_RELAY_PORTS:-41000-41999}
export E2E_ADMIN=127.0.0.1:8443
export E2E_TRUNK_USER=gw-account E2E_TRUNK_PASSWORD=trunk-secret-1
export E2E_REG_USER=reg-account
reg_password=reg-secret-1

E2E_TMP=$(mktemp -d /tmp/callgate-e2e-trunk.XXXXXX)
mkdir -p "$E2E_TMP/data" "$E2E_TMP/artifacts"
export E2E_ARTIFACTS=$E2E_TMP/artifacts E2E_DATA_DIR=$E2E_TMP/data E2E_CONFIG=$E2E_TMP/callgate.toml
export CALLGATE_BIN
cat >"$E2E_CONFIG" <<TOML
data_dir = "$E2E_DATA_DIR"

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

[admin]
listen = "$E2E_ADMIN"

[[users]]
name = "1000"
password = "secret1000"

[[users]]
name = "1001"
password = "secret1001"

[[users]]
name = "1002"
password = "secret1002"

# The PSTN trunk (sipp on 127.0.0.2:5080). Its own address and the
# carrier's other one (127.0.0.4) are trusted for inbound calls; the
# browsers (127.0.0.1, WSS) and 127.0.0.3 are not.
[[trunks]]
name = "pstn"
host = "127.0.0.2"
port = 5080
username = "$E2E_TRUNK_USER"
password = "$E2E_TRUNK_PASSWORD"
caller_id = "+4930999000"
from_domain = "gw.callgate.test"
dial_patterns = ["0", "+"]
number_rules = ["00>+", "0>+49"]
inbound_trust = ["127.0.0.4/32"]

# A second trunk at the same provider that registers (sipp registrar on
# 127.0.0.2:5090); it routes no numbers.
[[trunks]]
name = "pstn-reg"
host = "127.0.0.2"
port = 5090
register = true
username = "$E2E_REG_USER"
password = "$reg_password"
expiry = 300

[[dids]]
number = "+4930777"
trunk = "pstn"
user = "1001"
TOML
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The registrar is up before callgate, which registers as soon as it starts.
export E2E_REGISTRAR_RC=$E2E_TMP/registrar.rc
export E2E_REGISTRAR_TRACE=$E2E_ARTIFACTS/sipp-trunk-registrar.log
(
  rc=0
  sipp -nostdin -sf tests/e2e/sipp/trunk_registrar.xml -t u1 -i 127.0.0.2 -p 5090 -m 1 \
    -key username "$E2E_REG_USER" -key password "$reg_password" \
    -key first_expires 10 -key expires 600 \
    -timeout 90s -timeout_error -trace_msg -message_file "$E2E_REGISTRAR_TRACE" \
    >"$E2E_REGISTRAR_RC.out" 2>&1 || rc=$?
  echo "$rc" >"$E2E_REGISTRAR_RC"
) &
for _ in $(seq 1 50); do
  ss -Hlun 'src 127.0.0.2:5090' | grep -q . && break
  sleep 0.1
done

e2e_log "starting $CALLGATE_BIN --config $E2E_CONFIG (log: $E2E_TMP/server.log)"
RUST_LOG=${E2E_RUST_LOG:-debug} "$CALLGATE_BIN" --config "$E2E_CONFIG" >"$E2E_TMP/server.log" 2>&1 &
E2E_SERVER_PID=$!
if ! node tests/e2e/lib/wait-ready.mjs --pid "$E2E_SERVER_PID" --timeout-ms "${E2E_READY_TIMEOUT_MS:-30000}"; then
  e2e_log "callgate did not come up"
  exit 1
fi

timeout -k 10 "${E2E_TRUNK_TIMEOUT:-300}" node --test-reporter=spec tests/e2e/lib/trunk.mjs
