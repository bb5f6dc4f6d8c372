# Shared by the end-to-end scripts in tests/e2e (sourced, not run):
# dependencies and build, a loopback-only network namespace, and a callgate
# started with a throw-away config and data dir, always stopped on exit.
#
# Usage in a script:
#   source "$(dirname "$0")/lib/common.sh"
#   e2e_prepare chromium sipp     # outside the namespace: packages, npm, cargo build
#   e2e_enter_netns "$@"          # re-runs the script in a fresh network namespace
#   e2e_start_server              # config + start + wait until it serves
#   ...                           # the tests; exit status is the verdict

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CALLGATE_BIN=${CALLGATE_BIN:-$E2E_ROOT/target/release/callgate}
E2E_SERVER_PID=
E2E_TMP=

e2e_log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Installs what is missing (Debian packages, npm packages) and builds the
# server. Runs before the namespace is entered: that one has no network.
e2e_prepare() {
  [ -n "${E2E_IN_NETNS:-}" ] && return 0
  local missing=() p
  for p in iproute2 "$@"; do
    case $p in
      chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
      sipp) command -v sipp >/dev/null || missing+=(sip-tester) ;;
      iproute2) command -v ip >/dev/null || missing+=(iproute2) ;;
      tcpdump) command -v tcpdump >/dev/null || missing+=(tcpdump) ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then
    e2e_log "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if [ ! -d "$E2E_ROOT/tests/node_modules/jssip" ] || [ ! -d "$E2E_ROOT/tests/node_modules/playwright-core" ]; then
    e2e_log "npm ci (tests/)"
    (cd "$E2E_ROOT/tests" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ -z "${CALLGATE_NO_BUILD:-}" ]; then
    e2e_log "cargo build --release -p callgate"
    (cd "$E2E_ROOT" && cargo build --release -p callgate)
  fi
  [ -x "$CALLGATE_BIN" ] || { e2e_log "no server binary at $CALLGATE_BIN"; exit 1; }
}

# Re-runs the calling script inside a new network namespace holding only
# loopback (so Chromium gathers only 127.0.0.1 candidates and nothing
# collides with ports in use on the host). Needs root (or user namespaces).
e2e_enter_netns() {
  if [ -z "${E2E_IN_NETNS:-}" ]; then
    exec unshare --net env E2E_IN_NETNS=1 E2E_HOST_NETNS="$(readlink /proc/self/ns/net)" bash "$0" "$@"
  fi
  if [ "$(readlink /proc/self/ns/net)" = "${E2E_HOST_NETNS:-}" ]; then
    e2e_log "E2E_IN_NETNS is set but this is not a private network namespace"
    exit 1
  fi
  ip link set lo up
}

# Writes the config, starts callgate in the background and waits until it
# serves. Sets E2E_TMP (config, data dir, server.log, artifacts/) and the
# EXIT trap that stops everything.
e2e_start_server() {
  E2E_TMP=$(mktemp -d /tmp/callgate-e2e.XXXXXX)
  mkdir -p "$E2E_TMP/data" "$E2E_TMP/artifacts"
  export E2E_ARTIFACTS=$E2E_TMP/artifacts
  cat >"$E2E_TMP/callgate.toml" <<EOF
data_dir = "$E2E_TMP/data"

[sip]
domain = "127.0.0.1"
udp = ["127.0.0.1:5060"]
tcp = ["127.0.0.1:5060"]
tls = ["127.0.0.1:5061"]
wss = ["127.0.0.1:7443"]
# sipp 3.6 reads only the first digest challenge and knows only MD5, so the
# server sipp talks to challenges with MD5 alone (default: SHA-256, then MD5).
digest_algorithms = ["MD5"]

# These suites test signalling with SDP passed through untouched (the sipp
# phones answer with browser-shaped SDP); relay.sh and trunk.sh test the
# media relay, which is on by default.
[media]
relay = false

[[users]]
name = "1000"
password = "secret1000"

[[users]]
name = "1001"
password = "secret1001"

[[users]]
name = "1002"
password = "secret1002"
EOF
  trap e2e_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  e2e_log "starting $CALLGATE_BIN --config $E2E_TMP/callgate.toml (log: $E2E_TMP/server.log)"
  # Debug logs by default: on failure their tail is printed (E2E_RUST_LOG overrides).
  RUST_LOG=${E2E_RUST_LOG:-debug} "$CALLGATE_BIN" --config "$E2E_TMP/callgate.toml" >"$E2E_TMP/server.log" 2>&1 &
  E2E_SERVER_PID=$!
  if ! node "$E2E_ROOT/tests/e2e/lib/wait-ready.mjs" --pid "$E2E_SERVER_PID" --timeout-ms "${E2E_READY_TIMEOUT_MS:-30000}"; then
    e2e_log "callgate did not come up"
    exit 1
  fi
}

e2e_stop_server() {
  [ -n "$E2E_SERVER_PID" ] || return 0
  if kill -0 "$E2E_SERVER_PID" 2>/dev/null; then
    kill -TERM "$E2E_SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
      kill -0 "$E2E_SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$E2E_SERVER_PID" 2>/dev/null; then
      e2e_log "callgate ignored SIGTERM for 5 s; killing it"
      kill -KILL "$E2E_SERVER_PID" 2>/dev/null || true
    fi
  else
    e2e_log "callgate (pid $E2E_SERVER_PID) was no longer running at the end"
  fi
  wait "$E2E_SERVER_PID" 2>/dev/null || true
  E2E_SERVER_PID=
}

# Every process left in this private network namespace was started by this
# script (browsers, sipp); end them by pid.
e2e_kill_leftovers() {
  local ns d pid
  ns=$(readlink /proc/$$/ns/net) || return 0
  # Only ever inside the private namespace made by e2e_enter_netns.
  [ -n "${E2E_HOST_NETNS:-}" ] && [ "$ns" != "$E2E_HOST_NETNS" ] || return 0
  [ "$ns" != "$(readlink /proc/1/ns/net 2>/dev/null)" ] || return 0
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    [ "$pid" = "${BASHPID:-$$}" ] && continue
    [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$ns" ] || continue
    kill -KILL "$pid" 2>/dev/null || true
  done
}

e2e_cleanup() {
  local status=$?
  trap - EXIT
  e2e_stop_server
  [ -n "${E2E_IN_NETNS:-}" ] && e2e_kill_leftovers
  if [ "$status" -ne 0 ] && [ -n "$E2E_TMP" ]; then
    e2e_log "FAILED (exit $status). callgate log ($E2E_TMP/server.log), last 300 lines:"
    tail -n 300 "$E2E_TMP/server.log" >&2 || true
    e2e_log "end of callgate log. Kept for inspection: $E2E_TMP (server.log, artifacts/: JsSIP and sipp traces)"
  elif [ -n "$E2E_TMP" ] && [ -z "${E2E_KEEP:-}" ]; then
    rm -rf "$E2E_TMP"
  fi
  exit "$status"
}
