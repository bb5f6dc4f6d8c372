#!/usr/bin/env bash
# End-to-end test of the admin side: the web admin UI, the built-in
# softphone page and the health listener, against a freshly started callgate
# (relay on) in a loopback-only network namespace (run as root), with sipp as
# the PSTN trunk on 127.0.0.2:5080 and tcpdump recording what reaches it.
# The tests are tests/e2e/lib/admin.mjs (node:test, Chromium via
# playwright-core):
#
#   login (a wrong password refused), forced password change, first-run
#   wizard (trunk, user), users (an XSS display name renders as text), CSRF
#   (a form without its token is refused), a call from the softphone page
#   to the trunk with media both ways, hung up from the Calls page, its CDR
#   in the call history, /metrics (strictly parsed, counters move during the
#   call), /readyz (not ready while the store cannot be written), and a
#   screenshot of every page under target/e2e-screenshots/admin/.
#
#   bash tests/e2e/admin.sh
#
# Knobs as in the other suites: CALLGATE_BIN, CALLGATE_NO_BUILD=1, E2E_KEEP=1
# (keeps the temp dir: server.log, artifacts/ with the softphone console log,
# the sipp trace and trunk.pcap).
#
# Making the store read-only: callgate keeps its SQLite connection open, and
# file permissions are checked only when a file is opened, so chmod a-w on
# the database does not stop its writes, whatever user it runs as (running
# it unprivileged would not help; as root it is moot anyway). The immutable
# attribute does: on ext4
# (and the other file systems with chattr +i) writes through descriptors
# already open fail with EPERM, which SQLite reports as a disk I/O error.
# The test sets it on callgate.db and callgate.db-wal, never on
# callgate.db-shm (SQLite maps that file: writes to the mapping of an
# immutable file end the process with SIGBUS). So the data dir must be on a
# file system that supports chattr +i: /tmp when it does (not tmpfs), else a
# directory under target/.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/lib/common.sh

e2e_prepare chromium sipp tcpdump
e2e_enter_netns "$@"

export E2E_RELAY_PORTS=${E2E_RELAY_PORTS:-42000-42999}
export E2E_ADMIN=127.0.0.1:8443
export E2E_HEALTH=127.0.0.1:9090
export CALLGATE_BIN

# Whether `dir` is on a file system where chattr +i works.
chattr_works() {
  local probe="$1/.chattr-probe"
  : >"$probe" || return 1
  if chattr +i "$probe" 2>/dev/null; then
    chattr -i "$probe"
    rm -f "$probe"
    return 0
  fi
  rm -f "$probe"
  return 1
}

E2E_TMP=$(mktemp -d /tmp/callgate-e2e-admin.XXXXXX)
if ! chattr_works "$E2E_TMP"; then
  rmdir "$E2E_TMP"
  mkdir -p "$E2E_ROOT/target"
  E2E_TMP=$(mktemp -d "$E2E_ROOT/target/callgate-e2e-admin.XXXXXX")
  chattr_works "$E2E_TMP" || e2e_log "note: chattr +i does not work in /tmp nor in $E2E_TMP: the /readyz store test will fail"
fi
mkdir -p "$E2E_TMP/data" "$E2E_TMP/artifacts"
export E2E_ARTIFACTS=$E2E_TMP/artifacts E2E_DATA_DIR=$E2E_TMP/data E2E_CONFIG=$E2E_TMP/callgate.toml
export E2E_SERVER_LOG=$E2E_TMP/server.log
export E2E_SCREENSHOTS=${E2E_SCREENSHOTS:-$E2E_ROOT/target/e2e-screenshots/admin}

# No [[users]] and no [[trunks]]: the admin creates them through the UI.
# (Without [[users]] callgate creates its two demo users, 1000 and 1001.)
cat >"$E2E_CONFIG" <<TOML
data_dir = "$E2E_DATA_DIR"

[sip]
domain = "127.0.0.1"
udp = ["127.0.0.1:5060"]
tcp = ["127.0.0.1:5060"]
tls = ["127.0.0.1:5061"]
wss = ["127.0.0.1:7443"]

[media]
relay = true
port_min = ${E2E_RELAY_PORTS%-*}
port_max = ${E2E_RELAY_PORTS#*-}
advertised_address = "127.0.0.1"

[admin]
listen = "$E2E_ADMIN"

[health]
listen = "$E2E_HEALTH"
TOML

# The store files may still be immutable when a test failed half-way: clear
# the attribute before the data dir is removed (or kept for inspection).
admin_cleanup() {
  local status=$?
  chattr -i "$E2E_DATA_DIR"/callgate.db* 2>/dev/null || true
  (exit "$status")
  e2e_cleanup
}
trap admin_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

e2e_log "starting $CALLGATE_BIN --config $E2E_CONFIG (log: $E2E_SERVER_LOG)"
RUST_LOG=${E2E_RUST_LOG:-debug} "$CALLGATE_BIN" --config "$E2E_CONFIG" >"$E2E_SERVER_LOG" 2>&1 &
E2E_SERVER_PID=$!
if ! node tests/e2e/lib/wait-ready.mjs --pid "$E2E_SERVER_PID" --timeout-ms "${E2E_READY_TIMEOUT_MS:-30000}"; then
  e2e_log "callgate did not come up"
  exit 1
fi

timeout -k 10 "${E2E_ADMIN_TIMEOUT:-240}" node --test-reporter=spec tests/e2e/lib/admin.mjs
