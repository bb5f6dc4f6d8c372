#!/usr/bin/env bash
# Signalling benchmarks: callgate side by side with Kamailio 5.6 (Debian),
# same machine, same load. Prints figures, never pass/fail.
#
#   bash tests/bench/signalling.sh
#
# What is measured, for each server (callgate, then kamailio):
#   1. REGISTER/s over UDP: sipp registers the users of an injection file
#      one after the other (REGISTER -> 401 -> REGISTER with MD5 digest ->
#      200), tests/bench/signalling/register.xml.
#   2. Calls/s over UDP: an authenticated caller (INVITE -> 407 -> ACK ->
#      INVITE with credentials -> 100/180/200 -> ACK -> 1 s -> BYE -> 200)
#      to a callee registered by a sipp UAS (uac_call.xml, uas_answer.xml).
#   Both: fixed-length runs (DURATION s) at rising rates on a geometric grid
#   (x2^(1/4) per step); a run passes when fewer than 0.1% of its calls fail
#   (failed = timed out, unexpected response, or never finished; sipp's
#   -trace_stat counters). The first ramp of a test starts at *_START and
#   doubles until a run fails, then bisects; each later ramp starts at the
#   previous ramp's result and steps by one grid step until it has a passing
#   rate with a failing one right above. The figure is the median of the
#   REPEATS ramps' highest passing rates.
#   3. WSS: tests/bench/wss-load opens N connections (N = 1000, 10000),
#      registers each as a distinct user over SIP-over-WebSocket with digest
#      auth, keeps them idle, and reports registrations/s during the ramp
#      and the server's memory growth divided by N (VmRSS and Pss summed
#      over the server's processes; Pss counts Kamailio's shared memory
#      once instead of once per process). Fresh server per N.
#
# Reading the figures: a run stops as soon as more than 0.1% of its calls
# have failed ("stopped early"); its verdict is known by then. callgate
# refuses new transactions with a stateless 503 once its transaction table
# is full (250 000; it was 10 000 until the default was raised), and over
# UDP a non-INVITE server transaction stays alive for Timer J = 32 s after
# its final response: a registration holds two (401, 200), so a run of D
# seconds at R/s meets the limit once 2 * R * min(D, 32) exceeds it, whatever
# the CPU. The "server CPU us/call" rows compare the work per call at equal
# load (the start rate) and at each server's own highest rate.
#
# Placement: the server runs pinned to core 0 (taskset -c 0), all load
# generators (sipp, the UAS, the UDP relay, wss-load) pinned to core 1.
# callgate's tokio runtime then has one worker thread (it sizes itself from
# the CPU affinity) and its store thread shares the same core.
#
# Kamailio choices (see also tests/bench/signalling/kamailio.cfg):
#   fork=yes, children=1, tcp_children=1: one SIP worker for UDP, one for
#   TCP/TLS/WSS, plus its fixed helper processes; all on core 0 like
#   callgate, so more workers would only time-slice the same core.
#   -m 2048 (MB shared memory: TLS state of 10 000 connections lives there;
#   it is touched, hence counted, only as it is used) and -M 32 (MB private
#   memory per process). usrloc in memory (db_mode 0), while callgate
#   writes every binding to SQLite (its store thread, same core). Digest
#   auth against HA1s held in memory (an htable loaded from a db_text
#   table at start), as callgate holds its users. Requests to a registered
#   phone go to the REGISTER's source address (fix_nated_register), as
#   callgate does.
#
# sipp and SHA-256: callgate challenges with SHA-256 first, then MD5 (RFC
# 8760 order). sipp 3.6 only ever answers the first challenge and aborts on
# any algorithm but MD5/AKAv1-MD5 ("createAuthHeader: authentication must
# use MD5 or AKAv1-MD5"), so sipp talks to both servers through
# sip-udp-relay (tests/bench/wss-load), which drops non-MD5 challenges from
# 401/407 responses. Both servers get the same relay in the path.
#
# Everything runs in a private network namespace holding only loopback
# (unshare --net, as root); no traffic leaves 127.0.0.0/8. Takes about 14
# minutes (UDP ramps 12, WSS 2; DURATION=8 or REPEATS=2 shortens it); run it
# on an otherwise idle machine (it prints what else is
# running first, and each raw line says how busy the server's core was with
# other work during that run).
#
# Environment:
#   SERVERS="callgate kamailio"   which servers, in order
#   TESTS="register call wss"     which tests
#   DURATION=10                   seconds of load per rate step
#   REPEATS=3                     ramps per test (median reported)
#   REG_START=400 CALL_START=200  first rate of the first ramp (both servers are
#                                 also compared at these rates: CPU per call)
#   HOLD_MS=1000                  call hold time
#   WSS_COUNTS="1000 10000"       connection counts of the WSS test
#   WSS_CONCURRENCY=64            WSS handshakes in flight
#   SIPP_BUF=212992               sipp -buff_size (sipp's default is 65535;
#                                 the kernel caps it at net.core.rmem_max)
#   CALLGATE_BIN=...              use this binary instead of building one
#   KEEP=1                        keep the work directory (sipp logs, configs)
#
# Each raw line also gives the UDP datagrams dropped on full receive
# buffers during the run (this namespace's /proc/net/snmp RcvbufErrors),
# and which process's sockets dropped them (ss skmem d).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SIG="$HERE/signalling"
LOADDIR="$HERE/wss-load"
TOOLS="$LOADDIR/target/release"

SERVERS=${SERVERS:-"callgate kamailio"}
TESTS=${TESTS:-"register call wss"}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
REG_START=${REG_START:-400}
CALL_START=${CALL_START:-200}
HOLD_MS=${HOLD_MS:-1000}
WSS_COUNTS=${WSS_COUNTS:-"1000 10000"}
WSS_CONCURRENCY=${WSS_CONCURRENCY:-64}
SIPP_BUF=${SIPP_BUF:-212992}
SERVER_CPU=0
LOAD_CPU=1
NUSERS=11000          # u10000 .. u20999, password pw-<user>
DOMAIN=127.0.0.1
RELAY_PORT=5062       # sipp -> relay -> server:5060

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- outside
if [ -z "${BENCH_IN_NETNS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "run as root (network namespace, taskset, apt)" >&2; exit 1; }
  [ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (server on 0, load on 1)" >&2; exit 1; }
  missing=()
  command -v sipp >/dev/null || missing+=(sip-tester)
  command -v kamailio >/dev/null || missing+=(kamailio)
  [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/websocket.so ] || missing+=(kamailio-websocket-modules)
  [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || missing+=(kamailio-tls-modules)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v ss >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ -z "${CALLGATE_BIN:-}" ]; then
    log "cargo build --release -p callgate"
    (cd "$ROOT" && cargo build --release -p callgate)
    CALLGATE_BIN="$ROOT/target/release/callgate"
  fi
  log "cargo build --release (tests/bench/wss-load)"
  (cd "$LOADDIR" && cargo build --release --quiet)

  echo "== machine"
  echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  fuzzers=$(pgrep -fc afl-fuzz || true)
  echo "afl-fuzz processes: $fuzzers"
  echo "busiest other processes (%CPU since start, command):"
  ps -eo pcpu=,etimes=,args= --sort=-pcpu | awk '$1 > 5 { printf "  %5s%%  %s\n", $1, substr($0, index($0,$3), 100) }' | head -8
  echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)   kamailio: $(kamailio -v | head -1 | cut -d' ' -f3)   callgate: $("$CALLGATE_BIN" --version)"
  echo

  # Snapshot the binary: a rebuild during the run must not change it.
  WORK=$(mktemp -d /tmp/callgate-bench.XXXXXX)
  cp "$CALLGATE_BIN" "$WORK/callgate"
  exec unshare --net env BENCH_IN_NETNS=1 BENCH_WORK="$WORK" \
    SERVERS="$SERVERS" TESTS="$TESTS" DURATION="$DURATION" REPEATS="$REPEATS" \
    REG_START="$REG_START" CALL_START="$CALL_START" HOLD_MS="$HOLD_MS" \
    WSS_COUNTS="$WSS_COUNTS" WSS_CONCURRENCY="$WSS_CONCURRENCY" KEEP="${KEEP:-}" SIPP_BUF="$SIPP_BUF" \
    bash "$0"
fi

# ---------------------------------------------------------------- inside
ip link set lo up
ulimit -n "$(ulimit -Hn)"
WORK=$BENCH_WORK
CG_BIN=$WORK/callgate
RAW=$WORK/raw.txt
: >"$RAW"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# Users, certificate, configs.
"$TOOLS/bench-users" --dir "$WORK" --realm "$DOMAIN" --count "$NUSERS" \
  --extra 1000:secret1000 --extra 1001:secret1001 2>/dev/null
printf 'SEQUENTIAL\n1000;secret1000\n' >"$WORK/callee.csv"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 30 -subj "/CN=$DOMAIN" \
  -addext "subjectAltName=IP:$DOMAIN" 2>/dev/null
cat >"$WORK/callgate.toml" <<EOF
data_dir = "$WORK/callgate-data"

[sip]
domain = "$DOMAIN"
udp = ["$DOMAIN:5060"]
tcp = ["$DOMAIN:5060"]
tls = ["$DOMAIN:5061"]
wss = ["$DOMAIN:7443"]
tls_cert = "$WORK/cert.pem"
tls_key = "$WORK/key.pem"

[admin]
listen = "$DOMAIN:8443"

EOF
cat "$WORK/users.toml" >>"$WORK/callgate.toml"
cat >"$WORK/tls.cfg" <<EOF
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $WORK/key.pem
certificate = $WORK/cert.pem

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
EOF
mkdir -p "$WORK/kamailio-run"

CLK_TCK=$(getconf CLK_TCK)

# Sum of user+system CPU ticks of the given PIDs and their children.
cpu_ticks() {
  local all=() p
  for p in "$@"; do
    all+=("$p")
    all+=($(pgrep -P "$p" || true))
  done
  local t=0 f
  for p in "${all[@]}"; do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}

# CPU seconds used by this shell's waited-for children so far (the
# builtin runs in this shell only when redirected, not in $(...)).
child_cpu() { # file
  times >"$1"
  awk 'END { s = 0
    for (i = 1; i <= NF; i++) { split($i, b, "m"); sub("s", "", b[2]); s += b[1] * 60 + b[2] }
    printf "%.3f", s }' "$1"
}

# UDP datagrams the kernel dropped for a full receive buffer, in this
# network namespace (any socket: server, sipp, relay).
udp_drops() {
  awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $6 }' /proc/net/snmp
}

# Busy ticks of core N (everything but idle and iowait), from /proc/stat.
core_busy() {
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

SERVER_PID=
RELAY_PID=
UAS_PID=

wait_port() { # proto port
  local i
  for i in $(seq 100); do
    if ss -lnH "$1" 2>/dev/null | grep -q ":$2 "; then return 0; fi
    sleep 0.1
  done
  log "nothing listening on $1 $2"
  return 1
}

start_server() { # name
  case $1 in
    callgate)
      # Users provisioned, no registrations: a copy of the template.
      rm -rf "$WORK/callgate-data"
      cp -a "$WORK/callgate-template" "$WORK/callgate-data"
      RUST_LOG=warn taskset -c $SERVER_CPU "$CG_BIN" --config "$WORK/callgate.toml" \
        >>"$WORK/callgate.log" 2>&1 &
      SERVER_PID=$!
      ;;
    kamailio)
      taskset -c $SERVER_CPU kamailio -DD -E -m 2048 -M 32 \
        -f "$SIG/kamailio.cfg" -Y "$WORK/kamailio-run" \
        -A "DBURL=\"text://$WORK/db\"" -A "TLSCFG=\"$WORK/tls.cfg\"" \
        >>"$WORK/kamailio.log" 2>&1 &
      SERVER_PID=$!
      ;;
  esac
  PIDS+=("$SERVER_PID")
  wait_port -u 5060 && wait_port -t 7443 || { tail -20 "$WORK/$1.log" >&2; exit 1; }
  sleep 0.5
  kill -0 "$SERVER_PID" 2>/dev/null || { log "$1 exited"; tail -20 "$WORK/$1.log" >&2; exit 1; }
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  sleep 0.5
}

start_relay() {
  taskset -c $LOAD_CPU "$TOOLS/sip-udp-relay" --listen "$DOMAIN:$RELAY_PORT" \
    --upstream "$DOMAIN:5060" --md5-only 2>>"$WORK/relay.log" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  wait_port -u $RELAY_PORT
}

stop_relay() {
  kill "$RELAY_PID" 2>/dev/null || true
  wait "$RELAY_PID" 2>/dev/null || true
  RELAY_PID=
}

# Value of column NAME in the last line of a sipp -trace_stat file.
stat_col() { # file name
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next }
    { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1"
}

rate_of() { # start k -> start * 2^(k/4), rounded
  awk -v s="$1" -v k="$2" 'BEGIN { printf "%d", s * 2 ^ (k / 4) + 0.5 }'
}

# One fixed-length run at RATE. Prints "pass" or "fail" on stdout and one
# raw line to $RAW.
probe() { # test server rate
  local test=$1 server=$2 rate=$3 total=$(($3 * DURATION))
  local tag="$server-$test-$rate-$(date +%s%N)"
  local stf="$WORK/$tag.csv" err="$WORK/$tag.err"
  local args=()
  case $test in
    register)
      args=(-sf "$SIG/register.xml" -inf "$WORK/users.csv" -p 5070
            -key expires 3600 -auth_uri "$DOMAIN")
      ;;
    call)
      args=(-sf "$SIG/uac_call.xml" -p 5080 -s 1000 -key caller 1001
            -au 1001 -ap secret1001 -auth_uri "1000@$DOMAIN" -d "$HOLD_MS")
      ;;
  esac
  # Every run starts from a fresh server (and, for calls, a freshly
  # registered callee): nothing left from the previous run, such as
  # transactions still waiting out Timer J (32 s over UDP).
  start_server "$server"
  if [ "$test" = call ]; then
    register_callee || { stop_server; echo fail; return; }
    start_uas "$tag"
  fi
  # Calls in progress at once: about rate x (hold + 1 s), kept below the
  # open files limit (sipp wants one per call in its accounting).
  local limit=$((rate * 4 + 200))
  [ "$limit" -le 15000 ] || limit=15000
  local s0 l0 c0 t0 t1 b0
  s0=$(cpu_ticks "$SERVER_PID")
  b0=$(core_busy $SERVER_CPU)
  l0=$(cpu_ticks "$RELAY_PID")
  c0=$(child_cpu "$WORK/times")
  t0=$(date +%s.%N)
  local d0
  d0=$(udp_drops)
  timeout -k 5 $((DURATION * 4 + 30)) taskset -c $LOAD_CPU \
    sipp "$DOMAIN:$RELAY_PORT" "${args[@]}" -t u1 -i "$DOMAIN" -key domain "$DOMAIN" \
    -r "$rate" -rp 1000 -m "$total" -l "$limit" -recv_timeout 5000 -buff_size "$SIPP_BUF" \
    -default_behaviors all,-bye -nostdin -trace_stat -stf "$stf" -fd 1 \
    -trace_err -error_file "$err" \
    >"$WORK/$tag.out" 2>&1 &
  local sipp_pid=$! early=
  # A run already past 0.1% failures is stopped: its verdict is known and
  # an overloaded run would otherwise drag on through every timeout.
  while kill -0 "$sipp_pid" 2>/dev/null; do
    sleep 0.5
    if [ -s "$stf" ] && [ "$(stat_col "$stf" 'FailedCall(C)')" -gt $((total / 1000)) ]; then
      early=" (stopped early)"
      pkill -TERM -P "$sipp_pid" 2>/dev/null || true
      kill -TERM "$sipp_pid" 2>/dev/null || true
      break
    fi
  done
  wait "$sipp_pid" 2>/dev/null || true
  t1=$(date +%s.%N)
  local drops=$(( $(udp_drops) - d0 ))
  local s1 l1 c1 b1
  s1=$(cpu_ticks "$SERVER_PID")
  b1=$(core_busy $SERVER_CPU)
  l1=$(cpu_ticks "$RELAY_PID")
  # Which sockets dropped datagrams (ss: skmem d<N>), by process.
  local dropped_by
  dropped_by=$(ss -uanmpH 2>/dev/null | awk '
    { if (match($0, /users:\(\("[^"]+"/)) name = substr($0, RSTART + 9, RLENGTH - 10)
      if (match($0, /,d[0-9]+\)/)) { d = substr($0, RSTART + 2, RLENGTH - 3) + 0; if (d > 0) sum[name] += d } }
    END { for (n in sum) printf "%s %d, ", n, sum[n] }' | sed 's/, $//')
  if [ "$test" = call ]; then stop_uas; fi
  c1=$(child_cpu "$WORK/times")
  stop_server
  local ok failed retrans unexp timeouts
  ok=$(stat_col "$stf" 'SuccessfulCall(C)')
  failed=$(stat_col "$stf" 'FailedCall(C)')
  retrans=$(stat_col "$stf" 'Retransmissions(C)')
  unexp=$(stat_col "$stf" 'FailedUnexpectedMessage(C)')
  timeouts=$(stat_col "$stf" 'FailedTimeoutOnRecv(C)')
  local verdict
  verdict=$(awk -v ok="$ok" -v n="$total" 'BEGIN { print ((n - ok) * 1000 < n ? "pass" : "fail") }')
  awk -v srv="$server" -v test="$test" -v rate="$rate" -v n="$total" -v ok="$ok" \
    -v failed="$failed" -v unexp="$unexp" -v to="$timeouts" -v re="$retrans" \
    -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v l0="$l0" -v l1="$l1" \
    -v c0="$c0" -v c1="$c1" -v b0="$b0" -v b1="$b1" -v hz="$CLK_TCK" -v v="$verdict" \
    -v drops="$drops" -v early="$early" \
    -v usf="$WORK/us-$server-$test-$rate" 'BEGIN {
      el = t1 - t0
      us = ok > 0 ? (s1 - s0) / hz * 1e6 / ok : 0
      other = 100 * ((b1 - b0) - (s1 - s0)) / hz / el
      if (other < 0) other = 0
      printf "%d\n", us > usf
      printf "%-8s %-8s rate %6d/s  calls %7d  ok %7d  failed %6d (unexpected %d, recv timeout %d)  retrans %6d  UDP drops %5d  wall %5.1f s  server CPU %3.0f%% (%5d us/call)  rest of core 0 %3.0f%%  load CPU %3.0f%%  %s%s\n",
        srv, test, rate, n, ok, failed, unexp, to, re, drops, el,
        100 * (s1 - s0) / hz / el, us, other, 100 * ((l1 - l0) / hz + (c1 - c0)) / el, v, early }' | tee -a "$RAW" >&2
  [ -z "$dropped_by" ] || echo "           UDP drops by socket owner: $dropped_by" | tee -a "$RAW" >&2
  if [ "$test" = call ] && [ -s "$WORK/uas-$tag.csv" ]; then
    local uf
    uf=$(stat_col "$WORK/uas-$tag.csv" 'FailedCall(C)')
    [ "$uf" = 0 ] || echo "           UAS side: $uf failed calls" | tee -a "$RAW" >&2
  fi
  if [ "$verdict" = fail ] && [ -s "$err" ]; then
    # The first few distinct failure reasons, for the report.
    grep -oE "Aborting call on [a-zA-Z ]+|received 'SIP/2\.0 [0-9]{3}[A-Za-z /-]*" "$err" 2>/dev/null |
      sed "s/received 'SIP/received SIP/; s/ *$//" | sort | uniq -c | sort -rn | head -4 |
      sed 's/^/           /' | tee -a "$RAW" >&2 || true
  fi
  echo "$verdict"
}

# Highest passing grid step: from k0, moving by step, then bisecting.
declare -A MEMO
search() { # test server start k0 step
  local test=$1 server=$2 start=$3 k=$4 step=$5 lo= hi=
  MEMO=()
  # PR = verdict at grid step $1 (each step probed once per ramp).
  pr() {
    local kk=$1
    if [ -z "${MEMO[$kk]:-}" ]; then
      if [ "$kk" -lt -16 ]; then MEMO[$kk]=pass; else
        MEMO[$kk]=$(probe "$test" "$server" "$(rate_of "$start" "$kk")")
      fi
    fi
    PR=${MEMO[$kk]}
  }
  pr "$k"
  if [ "$PR" = pass ]; then
    lo=$k
    while [ -z "$hi" ]; do
      k=$((k + step))
      pr "$k"
      if [ "$PR" = pass ]; then lo=$k; else hi=$k; fi
    done
  else
    hi=$k
    while [ -z "$lo" ]; do
      k=$((k - step))
      pr "$k"
      if [ "$PR" = pass ]; then lo=$k; else hi=$k; fi
    done
  fi
  while [ $((hi - lo)) -gt 1 ]; do
    k=$(((lo + hi) / 2))
    pr "$k"
    if [ "$PR" = pass ]; then lo=$k; else hi=$k; fi
  done
  echo "$lo"
}

declare -A RESULT   # RESULT[server,test] = "r1 r2 r3"
declare -A CPUUS    # CPUUS[server,test] = server CPU us per call at each ramp's best rate
declare -A CPUSTART # CPUSTART[server,test] = server CPU us per call at the start rate
declare -A WSS      # WSS[server,N] = RESULT line(s)

ramp() { # test server start
  local test=$1 server=$2 start=$3 k=0 step=4 i best rates=() us=()
  for i in $(seq "$REPEATS"); do
    log "$server $test: ramp $i of $REPEATS"
    best=$(search "$test" "$server" "$start" "$k" "$step")
    rates+=("$(rate_of "$start" "$best")")
    us+=("$(cat "$WORK/us-$server-$test-${rates[-1]}" 2>/dev/null || echo 0)")
    echo "         -> ramp $i: highest rate with < 0.1% failures: ${rates[-1]}/s" | tee -a "$RAW" >&2
    k=$best
    step=1
  done
  RESULT[$server,$test]="${rates[*]}"
  CPUUS[$server,$test]="${us[*]}"
  CPUSTART[$server,$test]=$(cat "$WORK/us-$server-$test-$start" 2>/dev/null || echo 0)
}

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }

register_callee() {
  local st=0
  taskset -c $LOAD_CPU sipp "$DOMAIN:$RELAY_PORT" -sf "$SIG/register.xml" -inf "$WORK/callee.csv" \
    -t u1 -i "$DOMAIN" -p 5090 -key domain "$DOMAIN" -key expires 3600 -auth_uri "$DOMAIN" \
    -m 1 -nostdin -timeout 10s -timeout_error -trace_err -error_file "$WORK/callee-reg.err" \
    >"$WORK/callee-reg.out" 2>&1 || st=$?
  if [ "$st" -ne 0 ]; then
    log "callee registration failed (sipp exit $st)"
    cat "$WORK/callee-reg.err" >&2 || true
    return 1
  fi
}

start_uas() { # tag
  taskset -c $LOAD_CPU sipp -sf "$SIG/uas_answer.xml" -t u1 -i "$DOMAIN" -p 5090 -s 1000 -buff_size "$SIPP_BUF" \
    -recv_timeout 10000 -nostdin -trace_stat -stf "$WORK/uas-$1.csv" -fd 1 \
    -trace_err -error_file "$WORK/uas-$1.err" >"$WORK/uas-$1.out" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
  sleep 0.5
}

stop_uas() {
  kill "$UAS_PID" 2>/dev/null || true
  wait "$UAS_PID" 2>/dev/null || true
  UAS_PID=
}

wss_run() { # server n
  local server=$1 n=$2 out
  start_server "$server"
  out=$(taskset -c $LOAD_CPU "$TOOLS/wss-load" --server "$DOMAIN:7443" --domain "$DOMAIN" \
    --count "$n" --first 10000 --user-prefix u --password-prefix pw- \
    --concurrency "$WSS_CONCURRENCY" --sources 127.0.0.2-127.0.0.41 \
    --pid "$SERVER_PID" --idle 3 --label "$server wss N=$n" 2>&1) || true
  printf '%s\n' "$out" | grep -v '^RESULT' | tee -a "$RAW" >&2
  WSS[$server,$n]=$(printf '%s\n' "$out" | grep '^RESULT' || echo "RESULT ok=0")
  stop_server
}

has_test() { [[ " $TESTS " == *" $1 "* ]]; }

# callgate provisions the users into its data dir on first start; keep that
# as the template every later start copies.
if [[ " $SERVERS " == *" callgate "* ]]; then
  log "provisioning $NUSERS users into callgate's store"
  mkdir -p "$WORK/callgate-template"
  rm -rf "$WORK/callgate-data"
  RUST_LOG=warn "$CG_BIN" --config "$WORK/callgate.toml" >>"$WORK/callgate.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port -u 5060
  stop_server
  rm -rf "$WORK/callgate-template"
  cp -a "$WORK/callgate-data" "$WORK/callgate-template"
fi

for server in $SERVERS; do
  echo "== $server" | tee -a "$RAW" >&2
  if has_test register || has_test call; then
    start_relay
    if has_test register; then ramp register "$server" "$REG_START"; fi
    if has_test call; then ramp call "$server" "$CALL_START"; fi
    stop_relay
  fi
  if has_test wss; then
    for n in $WSS_COUNTS; do wss_run "$server" "$n"; done
  fi
done

# ---------------------------------------------------------------- report
field() { # "RESULT k=v ..." key
  printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "== raw runs"
echo "(server CPU: share of one core over the run's wall time; rest of core 0: other processes and"
echo " interrupts on the server's core; load CPU: sipp + UAS + relay, share of one core)"
cat "$RAW"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== UDP signalling, server on 1 core, sipp on another (median of $REPEATS ramps, ${DURATION}s per step, < 0.1% failed)"
printf '%-30s %12s %12s %18s\n' "" "callgate" "kamailio" "callgate/kamailio"
for t in register call; do
  has_test "$t" || continue
  cg=$(median ${RESULT[callgate,$t]:-0})
  km=$(median ${RESULT[kamailio,$t]:-0})
  label=$([ "$t" = register ] && echo "REGISTER/s" || echo "calls/s (CPS)")
  printf '%-30s %12s %12s %18s\n' "$label" "$cg" "$km" "$(ratio "$cg" "$km")"
  start=$([ "$t" = register ] && echo "$REG_START" || echo "$CALL_START")
  cg=${CPUSTART[callgate,$t]:-0}
  km=${CPUSTART[kamailio,$t]:-0}
  printf '%-30s %12s %12s %18s\n' "  server CPU us/call at $start/s" "$cg" "$km" "$(ratio "$cg" "$km")"
  cg=$(median ${CPUUS[callgate,$t]:-0})
  km=$(median ${CPUUS[kamailio,$t]:-0})
  printf '%-30s %12s %12s\n' "  ... at the rate above" "$cg" "$km"
  printf '  %-28s %s\n' "ramps (callgate)" "${RESULT[callgate,$t]:-}"
  printf '  %-28s %s\n' "ramps (kamailio)" "${RESULT[kamailio,$t]:-}"
done

if has_test wss; then
  echo
  echo "== SIP over WSS: N idle registered connections (concurrency $WSS_CONCURRENCY)"
  printf '%-34s %12s %12s %18s\n' "" "callgate" "kamailio" "callgate/kamailio"
  for n in $WSS_COUNTS; do
    a=${WSS[callgate,$n]:-RESULT}
    b=${WSS[kamailio,$n]:-RESULT}
    for k in regs_per_s:"registrations/s" pss_per_conn_b:"Pss bytes/connection" rss_per_conn_b:"VmRSS bytes/connection" ok:"registered"; do
      key=${k%%:*}
      label="N=$n ${k#*:}"
      x=$(field "$a" "$key"); y=$(field "$b" "$key")
      printf '%-34s %12s %12s %18s\n' "$label" "${x:--}" "${y:--}" "$(ratio "${x:-0}" "${y:-0}")"
    done
  done
  echo "(VmRSS is summed over Kamailio's processes, so its shared memory counts once per process that touched it; Pss splits it.)"
fi
