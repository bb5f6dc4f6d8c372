#!/usr/bin/env bash
# Media relay benchmark: callgate's relay side by side with Kamailio 5.6 +
# rtpengine 10.5 in userspace, and a raw UDP forwarder as the floor, on the
# same machine with the same load. Prints figures, never pass/fail.
#
#   bash tests/bench/relay.sh        (as root; about 25 minutes plus builds)
#   SERVERS="raw callgate" STEPS="50 200 800" DURATION=5 REPEAT=1 bash tests/bench/relay.sh
#
# The load (tests/bench/relay-load): relay-load behaves like many browsers.
# Per call: a SIP-over-WSS connection, REGISTER with MD5 digest, INVITE
# with a WebRTC offer (UDP/TLS/RTP/SAVPF, ICE credentials, DTLS
# fingerprint, setup:actpass, rtcp-mux, PCMU/8000, a=mid:0, BUNDLE group)
# to user 1000, a sipp UAS registered over UDP (tests/bench/relay/
# uas_answer.xml) whose plain RTP/AVP answer points at rtp-echo. On the
# 200 OK: a STUN Binding request with USE-CANDIDATE to the relay's
# candidate, the DTLS handshake (client, or server when the relay answers
# setup:active as rtpengine does), SRTP keys, then 50 packets/s of 160-byte
# G.711 payload carrying a packet number and the send time. rtp-echo sends
# each packet back through the relay, stamping the kernel's receive time
# and its own send time, so both one-way trips through the relay are
# timed (generator -> relay -> echo, echo -> relay -> generator; same
# clock, same machine) instead of halving a round trip. The generator is
# one thread with one UDP socket for all calls (recvmmsg/sendmmsg). The
# echo is our own rather than sipp -rtp_echo: sipp echoes with one
# recvfrom/sendto per packet and stamps nothing; rtp-echo batches and
# timestamps. sipp still does the trunk phone's signalling.
#
# For each server, REPEAT ramps; each ramp starts a fresh server and adds
# calls in STEPS; at each step, after WARMUP s, a DURATION s window is
# measured:
#   loss      packets sent in the window that never came back
#   one-way   latency of each trip through the relay (p50, p99)
#   CPU       utime+stime of the relay's processes (/proc/PID/stat, with
#             their children and threads; 10 ms ticks) over the window, per
#             relayed packet (packets sent + packets back: each crosses the
#             relay twice)
# The send time is read just before a packet is protected and queued for
# the next sendmmsg (up to 32 packets), so the outbound trip includes up
# to a few tens of microseconds of the generator's own work at the top
# steps, the same for every server.
# A step passes with loss < LOSS_LIMIT % and p99 one-way < P99_MS ms; the
# ramp stops at the first step that does not pass. "Calls per core" is the
# highest passing step: the relay is pinned to one core.
#
# Servers (SERVERS, in this order by default):
#   raw                 udp-forward --mode shared: one socket per side for
#                       all calls, recvmmsg/sendmmsg batches, no crypto,
#                       no parsing beyond the SSRC; relay-load --plain. The
#                       kernel's share of a relay's per-packet cost.
#   raw-ports           udp-forward --mode ports: a port pair per call as a
#                       relay has, epoll + recvmmsg per readable socket.
#   callgate            target/release/callgate with `[media] relay = true`,
#                       the generator's users and user 1000 (the UAS) in
#                       its config, digest_algorithms = ["MD5"]. Run once per
#                       data path in DATA_PATHS when the binary honours
#                       CALLGATE_DATA_PATH ("callgate/io_uring",
#                       "callgate/epoll"); the data path it logged at start
#                       ("media relay started ... data_path=") is printed.
#   kamailio            tests/bench/relay/kamailio.cfg (the signalling
#                       benchmark's WSS registrar + rtpengine_offer/answer
#                       converting WebRTC <-> plain RTP; ICE=force, so
#                       rtpengine runs full ICE and checks the generator
#                       too) and rtpengine-daemon with tests/bench/relay/
#                       rtpengine.conf (--table=-1: userspace only).
#
# Placement: the relay (callgate; or Kamailio and rtpengine together) on
# core RELAY_CPU=1; the generator, rtp-echo and the sipp UAS on LOAD_CPU=0.
# callgate sizes its runtime and relay workers from its CPU affinity: one
# core, one worker. rtpengine gets --num-threads=RTPENGINE_THREADS (1).
# With RT=1 (default) every benchmark process runs SCHED_FIFO (chrt -f):
# the machine is shared, and without it other work on the relay core
# shows up as milliseconds of relay latency. RT=0 runs them as normal
# processes. Each raw line still says how busy each core was in total.
# The kernel caps SCHED_FIFO at kernel.sched_rt_runtime_us (95% of each
# second): a relay that needs the whole core is paused for up to 50 ms a
# second, which shows in p99 only where the step fails anyway.
#
# When the generator's side is the bottleneck (the generator, echo and UAS
# above 90% of their core; the generator sending late: p99 a quarter of a
# packet interval, or stalls adding up to 1% of the window), the step is
# marked load-bound and a ramp that ended there gives a lower bound,
# shown as "N+".
#
# Everything runs in a private network namespace holding only loopback
# (unshare --net, as root); no packet leaves 127.0.0.0/8.
#
# Environment:
#   SERVERS="raw raw-ports callgate kamailio"
#   STEPS="50 100 200 300 400 500 600 700 800 900 1000 1200 1400 1600 2000 2400 3200"
#                            concurrent calls; later ramps start measuring at
#                            the step below the previous ramp's result
#   DURATION=10 WARMUP=3     seconds: measured window, settling before it
#   REPEAT=3                 ramps per server (medians reported)
#   REF_CALLS=400            step at which CPU per packet is compared
#   LOSS_LIMIT=0.5 P99_MS=5  pass criteria
#   DATA_PATHS="io_uring epoll"   callgate data paths (if supported)
#   CALLS_PER_CONN=1         calls sharing one registered WSS connection
#   SETUP_CONCURRENCY=32     calls being set up at once
#   SRTP=any                 SRTP profiles the generator offers in DTLS: any
#                            (GCM preferred, what both relays pick), gcm, cm
#                            (AES_CM_128_HMAC_SHA1_80)
#   RTPENGINE_BUNDLE=1       0: offer rtpengine no a=group:BUNDLE
#   RTPENGINE_THREADS=1
#   RT=1                     SCHED_FIFO for the benchmark processes
#   CALLGATE_BIN=...         use this binary instead of building one
#   KEEP=1                   keep the work directory (logs, configs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CFG="$HERE/relay"
LOADDIR="$HERE/relay-load"
TOOLS="$LOADDIR/target/release"

SERVERS=${SERVERS:-"raw raw-ports callgate kamailio"}
STEPS=${STEPS:-"50 100 200 300 400 500 600 700 800 900 1000 1200 1400 1600 2000 2400 3200"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
REPEAT=${REPEAT:-3}
REF_CALLS=${REF_CALLS:-400}
LOSS_LIMIT=${LOSS_LIMIT:-0.5}
P99_MS=${P99_MS:-5}
DATA_PATHS=${DATA_PATHS:-"io_uring epoll"}
CALLS_PER_CONN=${CALLS_PER_CONN:-1}
SETUP_CONCURRENCY=${SETUP_CONCURRENCY:-32}
RTPENGINE_BUNDLE=${RTPENGINE_BUNDLE:-1}
SRTP=${SRTP:-any}
RTPENGINE_THREADS=${RTPENGINE_THREADS:-1}
RT=${RT:-1}
RELAY_CPU=1
LOAD_CPU=0
DOMAIN=127.0.0.1
GEN_MEDIA=127.0.0.1:10000
ECHO_PORT=10002
UAS_PORT=5090
PORT_MIN=20000
PORT_MAX=59999

log() { printf '[relay-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- outside
if [ -z "${RELAY_BENCH_IN_NETNS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "run as root (network namespace, taskset, chrt, apt)" >&2; exit 1; }
  [ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (relay on 1, load on 0)" >&2; exit 1; }
  missing=()
  command -v sipp >/dev/null || missing+=(sip-tester)
  command -v kamailio >/dev/null || missing+=(kamailio)
  [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/websocket.so ] || missing+=(kamailio-websocket-modules)
  [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || missing+=(kamailio-tls-modules)
  command -v rtpengine >/dev/null || missing+=(rtpengine-daemon)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v chrt >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v ss >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ -z "${CALLGATE_BIN:-}" ] && [[ " $SERVERS " == *" callgate "* ]]; then
    log "cargo build --release -p callgate"
    (cd "$ROOT" && cargo build --release -p callgate)
    CALLGATE_BIN="$ROOT/target/release/callgate"
  fi
  log "cargo build --release (tests/bench/relay-load)"
  (cd "$LOADDIR" && cargo build --release --quiet)

  echo "== machine"
  echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "busiest other processes (%CPU since start, core, command):"
  { ps -eo pcpu=,psr=,args= --sort=-pcpu | awk '$1 > 5 { printf "  %5s%%  cpu%s  %s\n", $1, $2, substr($0, index($0,$3), 90) }' | head -8; } || true
  echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)   kamailio: $(kamailio -v | head -1 | cut -d' ' -f3)   rtpengine: $(rtpengine --version 2>&1 | grep -o '[0-9][0-9.]*[^ ]*' | head -1)${CALLGATE_BIN:+   callgate: $("$CALLGATE_BIN" --version)}"
  echo

  WORK=$(mktemp -d /tmp/callgate-relay-bench.XXXXXX)
  # Snapshot the binaries: a rebuild during the run must not change them.
  if [ -n "${CALLGATE_BIN:-}" ]; then cp "$CALLGATE_BIN" "$WORK/callgate"; fi
  mkdir -p "$WORK/bin"
  cp "$TOOLS/relay-load" "$TOOLS/rtp-echo" "$TOOLS/udp-forward" "$WORK/bin/"
  exec unshare --net env RELAY_BENCH_IN_NETNS=1 RELAY_BENCH_WORK="$WORK" \
    SERVERS="$SERVERS" STEPS="$STEPS" DURATION="$DURATION" WARMUP="$WARMUP" REPEAT="$REPEAT" \
    REF_CALLS="$REF_CALLS" LOSS_LIMIT="$LOSS_LIMIT" P99_MS="$P99_MS" DATA_PATHS="$DATA_PATHS" \
    CALLS_PER_CONN="$CALLS_PER_CONN" SETUP_CONCURRENCY="$SETUP_CONCURRENCY" \
    RTPENGINE_BUNDLE="$RTPENGINE_BUNDLE" SRTP="$SRTP" RTPENGINE_THREADS="$RTPENGINE_THREADS" RT="$RT" KEEP="${KEEP:-}" \
    bash "$0"
fi

# ---------------------------------------------------------------- inside
ip link set lo up
ulimit -n "$(ulimit -Hn)"
# Ephemeral ports (sipp, TCP clients) stay out of the relays' media ports.
sysctl -qw net.ipv4.ip_local_port_range="60000 65000"
WORK=$RELAY_BENCH_WORK
BIN=$WORK/bin
CG_BIN=$WORK/callgate
RAW=$WORK/raw.txt
RES=$WORK/results.txt
: >"$RAW"
: >"$RES"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

max_step=0
for s in $STEPS; do if [ "$s" -gt "$max_step" ]; then max_step=$s; fi; done
NUSERS=$(( (max_step + CALLS_PER_CONN - 1) / CALLS_PER_CONN ))
STEPS_CSV=$(echo $STEPS | tr ' ' ',')

# Command prefixes placing a process on the relay's or the load's core
# (used as "${ON_RELAY[@]}" cmd &, so that $! is the process itself).
ON_RELAY=(taskset -c $RELAY_CPU)
ON_LOAD=(taskset -c $LOAD_CPU)
if [ "$RT" = 1 ]; then
  ON_RELAY=(chrt -f 20 "${ON_RELAY[@]}")
  ON_LOAD=(chrt -f 10 "${ON_LOAD[@]}")
fi

wait_port() { # proto port
  local i
  for i in $(seq 150); do
    if ss -lnH "$1" 2>/dev/null | grep -q ":$2 "; then return 0; fi
    sleep 0.1
  done
  log "nothing listening on $1 $2"
  return 1
}

# Stops a process this script started and forgets it (its PID may be
# reused later).
stop_pid() {
  [ -n "${1:-}" ] || return 0
  kill "$1" 2>/dev/null || true
  local i
  for i in $(seq 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Users (the generator's u10000.. and the UAS's 1000), certificate, configs.
"$BIN/relay-load" write-users --dir "$WORK" --realm "$DOMAIN" --count "$NUSERS" --extra 1000:secret1000
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
# The generator and sipp answer MD5 challenges only.
digest_algorithms = ["MD5"]

[media]
relay = true
port_min = $PORT_MIN
port_max = $PORT_MAX
advertised_address = "$DOMAIN"

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

# callgate: which data paths to run.
CG_VARIANTS=()
if [[ " $SERVERS " == *" callgate "* ]]; then
  if grep -aq CALLGATE_DATA_PATH "$CG_BIN"; then
    for p in $DATA_PATHS; do CG_VARIANTS+=("callgate/$p"); done
  else
    log "this callgate does not read CALLGATE_DATA_PATH: one run with its default data path"
    CG_VARIANTS+=("callgate")
  fi
  # Provision the users once; every run starts from a copy.
  log "provisioning $NUSERS users into callgate's store"
  rm -rf "$WORK/callgate-data"
  RUST_LOG=warn "$CG_BIN" --config "$WORK/callgate.toml" >>"$WORK/callgate-provision.log" 2>&1 &
  p=$!
  PIDS+=("$p")
  wait_port -u 5060 || { tail -20 "$WORK/callgate-provision.log" >&2; exit 1; }
  stop_pid "$p"
  cp -a "$WORK/callgate-data" "$WORK/callgate-template"
fi

RUN_NAMES=()
for s in $SERVERS; do
  case $s in
    callgate) RUN_NAMES+=("${CG_VARIANTS[@]}") ;;
    kamailio) RUN_NAMES+=("kamailio+rtpengine") ;;
    raw|raw-ports) RUN_NAMES+=("$s") ;;
    *) log "unknown server $s"; exit 2 ;;
  esac
done

KM_ANSWER=      # what rtpengine's SDP answers looked like
RELAY_PIDS=()   # processes whose CPU is the relay's
LOAD_PIDS=()    # echo, UAS
SERVER_LOG=

start_echo() {
  "${ON_LOAD[@]}" "$BIN/rtp-echo" --listen "$DOMAIN:$ECHO_PORT" >>"$WORK/echo.log" 2>&1 &
  local p=$!
  PIDS+=("$p")
  LOAD_PIDS+=("$p")
  wait_port -u $ECHO_PORT
}

# Registers user 1000 from the UAS's port, then starts the UAS there.
start_uas() { # tag
  local st=0
  "${ON_LOAD[@]}" sipp "$DOMAIN:5060" -sf "$ROOT/tests/bench/signalling/register.xml" \
    -inf "$WORK/callee.csv" -t u1 -i "$DOMAIN" -p $UAS_PORT -key domain "$DOMAIN" \
    -key expires 3600 -auth_uri "$DOMAIN" -m 1 -nostdin -timeout 10s -timeout_error \
    -trace_err -error_file "$WORK/callee-reg-$1.err" >"$WORK/callee-reg-$1.out" 2>&1 || st=$?
  if [ "$st" -ne 0 ]; then
    log "callee registration failed (sipp exit $st)"
    cat "$WORK/callee-reg-$1.err" >&2 || true
    return 1
  fi
  "${ON_LOAD[@]}" sipp -sf "$CFG/uas_answer.xml" -t u1 -i "$DOMAIN" -p $UAS_PORT -s 1000 \
    -key echo_ip "$DOMAIN" -key echo_port $ECHO_PORT -mp 6100 -buff_size 4194304 \
    -nostdin -trace_err -error_file "$WORK/uas-$1.err" >"$WORK/uas-$1.out" 2>&1 &
  local p=$!
  PIDS+=("$p")
  LOAD_PIDS+=("$p")
  sleep 0.5
}

# Starts the relay side of NAME; sets RELAY_PIDS and SERVER_LOG.
start_server() { # name tag
  local name=$1 tag=$2 p busy
  RELAY_PIDS=()
  # A socket left over in the relay's ports would make it skip that port.
  busy=$(ss -lnuH "( sport >= :$PORT_MIN and sport <= :$PORT_MAX ) or sport = :5060" 2>/dev/null | wc -l)
  if [ "$busy" -gt 0 ]; then
    log "$busy UDP sockets already bound in the relay's ports or 5060:"
    ss -lnupH "( sport >= :$PORT_MIN and sport <= :$PORT_MAX ) or sport = :5060" | head -5 >&2 || true
    return 1
  fi
  case $name in
    raw)
      SERVER_LOG=$WORK/forward-$tag.log
      "${ON_RELAY[@]}" "$BIN/udp-forward" --mode shared --a "$DOMAIN:10010" --b "$DOMAIN:10012" \
        --to "$DOMAIN:$ECHO_PORT" >"$SERVER_LOG" 2>&1 &
      p=$!; PIDS+=("$p"); RELAY_PIDS+=("$p")
      wait_port -u 10012
      ;;
    raw-ports)
      SERVER_LOG=$WORK/forward-$tag.log
      "${ON_RELAY[@]}" "$BIN/udp-forward" --mode ports --base $PORT_MIN --calls "$max_step" \
        --to "$DOMAIN:$ECHO_PORT" >"$SERVER_LOG" 2>&1 &
      p=$!; PIDS+=("$p"); RELAY_PIDS+=("$p")
      wait_port -u $((PORT_MIN + 2 * max_step - 1))
      ;;
    callgate*)
      SERVER_LOG=$WORK/callgate-$tag.log
      rm -rf "$WORK/callgate-data"
      cp -a "$WORK/callgate-template" "$WORK/callgate-data"
      local dp=${name#callgate}
      dp=${dp#/}
      if [ -n "$dp" ]; then
        CALLGATE_DATA_PATH=$dp RUST_LOG=info "${ON_RELAY[@]}" "$CG_BIN" --config "$WORK/callgate.toml" \
          >"$SERVER_LOG" 2>&1 &
      else
        RUST_LOG=info "${ON_RELAY[@]}" "$CG_BIN" --config "$WORK/callgate.toml" >"$SERVER_LOG" 2>&1 &
      fi
      p=$!; PIDS+=("$p"); RELAY_PIDS+=("$p")
      wait_port -u 5060 && wait_port -t 7443 || { tail -20 "$SERVER_LOG" >&2; return 1; }
      local started
      started=$(grep -m1 "media relay started" "$SERVER_LOG" | sed 's/^.*media relay started/media relay started/' || true)
      echo "  $name: ${started:-no \"media relay started\" line in the log}" | tee -a "$RAW" >&2
      ;;
    kamailio+rtpengine)
      SERVER_LOG=$WORK/kamailio-$tag.log
      "${ON_RELAY[@]}" rtpengine --config-file="$CFG/rtpengine.conf" --foreground --log-stderr \
        --num-threads="$RTPENGINE_THREADS" --pidfile="$WORK/rtpengine.pid" >"$WORK/rtpengine-$tag.log" 2>&1 &
      p=$!; PIDS+=("$p"); RELAY_PIDS+=("$p")
      wait_port -u 2223 || { tail -20 "$WORK/rtpengine-$tag.log" >&2; return 1; }
      "${ON_RELAY[@]}" kamailio -DD -E -m 1024 -M 32 -f "$CFG/kamailio.cfg" -Y "$WORK/kamailio-run" \
        -A "DBURL=\"text://$WORK/db\"" -A "TLSCFG=\"$WORK/tls.cfg\"" >"$SERVER_LOG" 2>&1 &
      p=$!; PIDS+=("$p"); RELAY_PIDS+=("$p")
      wait_port -u 5060 && wait_port -t 7443 || { tail -20 "$SERVER_LOG" >&2; return 1; }
      sleep 0.5
      ;;
  esac
  for p in "${RELAY_PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { log "$name exited"; tail -20 "$SERVER_LOG" >&2; return 1; }
  done
}

stop_all() {
  local p
  for p in "${LOAD_PIDS[@]}" "${RELAY_PIDS[@]}"; do stop_pid "$p"; done
  LOAD_PIDS=()
  RELAY_PIDS=()
  sleep 0.5
}

join() { local IFS=,; echo "$*"; }

# One ramp of NAME: fresh server, echo, UAS; relay-load through the steps.
ramp() { # name rep
  local name=$1 rep=$2 tag
  tag="$(echo "$name" | tr '/+' '--')-$rep"
  log "$name: ramp $rep of $REPEAT"
  echo "-- $name, ramp $rep" >>"$RAW"
  start_echo
  if ! start_server "$name" "$tag"; then
    echo "RESULT_MAX label=$name mode=- max_calls=0 limited_by=start" | tee -a "$RES" >>"$RAW"
    stop_all
    return 0
  fi
  local gen_args=()
  case $name in
    raw) gen_args=(--plain --forward "$DOMAIN:10010") ;;
    raw-ports) gen_args=(--plain --forward-base $PORT_MIN) ;;
    *)
      if ! start_uas "$tag"; then
        echo "RESULT_MAX label=$name mode=- max_calls=0 limited_by=start" | tee -a "$RES" >>"$RAW"
        stop_all
        return 0
      fi
      gen_args=(--server "$DOMAIN:7443" --domain "$DOMAIN" --callee 1000 --user-prefix u --first 10000
        --password-prefix pw- --sources 127.0.0.2-127.0.0.41 --calls-per-conn "$CALLS_PER_CONN"
        --setup-concurrency "$SETUP_CONCURRENCY" --srtp "$SRTP")
      if [ "$name" = kamailio+rtpengine ] && [ "$RTPENGINE_BUNDLE" != 1 ]; then
        gen_args+=(--no-bundle)
      fi
      ;;
  esac
  # Later ramps measure from the step below the previous ramp's result
  # (and at REF_CALLS); the steps under it are only set up.
  local mf=0 prev s
  if [ "$rep" -gt 1 ]; then
    prev=$({ grep "^RESULT_MAX label=$name " "$RES" || true; } | tail -1 | tr ' ' '\n' | awk -F= '$1 == "max_calls" { print $2 }')
    for s in $STEPS; do if [ "$s" -lt "${prev:-0}" ]; then mf=$s; fi; done
  fi
  local nsteps limit
  nsteps=$(echo $STEPS | wc -w)
  limit=$(( nsteps * (DURATION + WARMUP + 60) + 60 ))
  local st=0
  timeout -k 5 "$limit" "${ON_LOAD[@]}" "$BIN/relay-load" "${gen_args[@]}" --media "$GEN_MEDIA" --steps "$STEPS_CSV" \
    --warmup "$WARMUP" --duration "$DURATION" --measure-from "$mf" --measure-also "$REF_CALLS" --pid "$(join "${RELAY_PIDS[@]}")" \
    --load-pid "$(join "${LOAD_PIDS[@]}")" --relay-core $RELAY_CPU --load-core $LOAD_CPU \
    --loss-limit "$LOSS_LIMIT" --p99-limit-ms "$P99_MS" --label "$name" \
    >"$WORK/gen-$tag.out" 2>"$WORK/gen-$tag.err" || st=$?
  grep -v '^RESULT' "$WORK/gen-$tag.out" | tee -a "$RAW" >&2 || true
  grep '^RESULT' "$WORK/gen-$tag.out" >"$RES.$tag" || true
  if [ "$st" -ne 0 ]; then
    echo "  relay-load exited with status $st" | tee -a "$RAW" >&2
    tail -5 "$WORK/gen-$tag.err" | sed 's/^/  /' | tee -a "$RAW" >&2
    grep -q '^RESULT_MAX' "$RES.$tag" || echo "RESULT_MAX label=$name mode=- max_calls=0 limited_by=error" >>"$RES.$tag"
  fi
  if [ "$name" = kamailio+rtpengine ] && [ -z "$KM_ANSWER" ] && grep -q '^m=audio' "$WORK/gen-$tag.err"; then
    if grep -q '^a=group:BUNDLE' "$WORK/gen-$tag.err"; then KM_ANSWER="with a=group:BUNDLE"; else KM_ANSWER="without a=group:BUNDLE"; fi
    KM_ANSWER="$KM_ANSWER, setup:$(grep -m1 '^a=setup:' "$WORK/gen-$tag.err" | cut -d: -f2)"
  fi
  if [ "$name" = kamailio+rtpengine ]; then
    local errs
    errs=$(grep -ciE "warn|err|crit|alert" "$WORK/rtpengine-$tag.log" || true)
    if [ "${errs:-0}" != 0 ]; then
      echo "  rtpengine logged $errs warning/error lines, e.g.:" | tee -a "$RAW" >&2
      { grep -iE "warn|err|crit|alert" "$WORK/rtpengine-$tag.log" | head -3 | cut -c1-200 | sed 's/^/    /' | tee -a "$RAW" >&2; } || true
    fi
    errs=$(grep -c "ERROR" "$SERVER_LOG" || true)
    if [ "${errs:-0}" != 0 ]; then
      echo "  kamailio logged $errs ERROR lines, e.g.:" | tee -a "$RAW" >&2
      { grep "ERROR" "$SERVER_LOG" | head -3 | cut -c1-200 | sed 's/^/    /' | tee -a "$RAW" >&2; } || true
    fi
  elif [[ $name == callgate* ]]; then
    local errs
    errs=$(grep -cE " (WARN|ERROR) " "$SERVER_LOG" || true)
    if [ "${errs:-0}" != 0 ]; then
      echo "  callgate logged $errs WARN/ERROR lines, e.g.:" | tee -a "$RAW" >&2
      { grep -E " (WARN|ERROR) " "$SERVER_LOG" | head -3 | cut -c1-200 | sed 's/^/    /' | tee -a "$RAW" >&2; } || true
    fi
  fi
  stop_all
  cat "$RES.$tag" >>"$RES"
}

for name in "${RUN_NAMES[@]}"; do
  echo "== $name" | tee -a "$RAW" >&2
  for rep in $(seq "$REPEAT"); do
    ramp "$name" "$rep"
  done
done

# ---------------------------------------------------------------- report
# Field KEY of the passing steps' RESULT lines of LABEL (at CALLS, if
# given), one per line.
results() { # label key [calls]
  awk -v l="$1" -v k="$2" -v c="${3:-}" '
    $1 == "RESULT" {
      delete f
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
      if (f["label"] == l && f["pass"] == "1" && (c == "" || f["calls"] == c)) print f[k]
    }' "$RES"
}
median() { printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A MAXC US_REF
echo
echo "== raw runs"
echo "(relay CPU: the relay's processes, share of one core; core N busy: everything on that core;"
echo " load procs: generator + echo + UAS; one-way: each trip through the relay, both directions)"
cat "$RAW"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== media relay, one core: calls at < ${LOSS_LIMIT}% loss and p99 one-way < ${P99_MS} ms"
echo "   (median of $REPEAT ramps over steps: $STEPS; ${DURATION} s windows; RT=$RT)"
printf '%-20s %10s %-22s %8s %8s %8s %10s %9s %12s\n' "" "calls/core" "ramps" "p50 us" "p99 us" "loss %" "us/packet" "CPU %" "us/pkt@$REF_CALLS"
for name in "${RUN_NAMES[@]}"; do
  # Each ramp's highest passing step, and what stopped it.
  ramps=()
  maxes=()
  lb=0
  n=0
  while read -r line; do
    [ -n "$line" ] || continue
    m=$(printf '%s\n' "$line" | tr ' ' '\n' | awk -F= '$1 == "max_calls" { print $2 }')
    why=$(printf '%s\n' "$line" | tr ' ' '\n' | awk -F= '$1 == "limited_by" { print $2 }')
    maxes+=("$m")
    assumed=$(printf '%s\n' "$line" | tr ' ' '\n' | awk -F= '$1 == "assumed" { print $2 }')
    n=$((n + 1))
    case $why in
      load|steps) ramps+=("$m+"); lb=$((lb + 1)) ;;
      relay) if [ "$assumed" = 1 ]; then ramps+=("$m~"); else ramps+=("$m"); fi ;;
      *) ramps+=("$m($why)") ;;
    esac
  done < <(grep "^RESULT_MAX label=$name " "$RES" || true)
  med=$(median "${maxes[@]:-}")
  MAXC[$name]=$med
  if [ "$med" != "-" ] && [ "$med" -gt 0 ]; then
    p50=$(median $(results "$name" p50_us "$med"))
    p99=$(median $(results "$name" p99_us "$med"))
    loss=$(median $(results "$name" loss_pct "$med"))
    us=$(median $(results "$name" relay_us_per_pkt "$med"))
    cpu=$(median $(results "$name" relay_cpu_pct "$med"))
  else
    p50=-; p99=-; loss=-; us=-; cpu=-
  fi
  uref=$(median $(results "$name" relay_us_per_pkt "$REF_CALLS"))
  US_REF[$name]=$uref
  shown=$med
  [ $((2 * lb)) -le "$n" ] || shown="$med+"
  printf '%-20s %10s %-22s %8s %8s %8s %10s %9s %12s\n' "$name" "$shown" "${ramps[*]:-}" "$p50" "$p99" "$loss" "$us" "$cpu" "$uref"
done
echo "(N+: the ramp ended on the generator's side or at the last step (for the median: most ramps did),"
echo " so the relay may take more;"
echo " N~: a later ramp failed its first measured step; N is the step below, passed by an earlier ramp;"
echo " p50/p99/loss/us-per-packet/CPU: medians over the ramps' passing runs at the calls/core step;"
echo " us/pkt@$REF_CALLS compares all at equal load)"
echo
echo "== ratios"
km=kamailio+rtpengine
for cg in "${RUN_NAMES[@]}"; do
  [[ $cg == callgate* ]] || continue
  printf '%-62s %6s   %s\n' \
    "$cg / $km, calls per core" "$(ratio "${MAXC[$cg]:--}" "${MAXC[$km]:--}")" "(target >= 3)" \
    "$cg / raw, CPU per packet at $REF_CALLS calls" "$(ratio "${US_REF[$cg]:--}" "${US_REF[raw]:--}")" "(target <= 1.5)" \
    "$cg / raw-ports, CPU per packet at $REF_CALLS calls" "$(ratio "${US_REF[$cg]:--}" "${US_REF[raw-ports]:--}")" "" \
    "$cg / $km, CPU per packet at $REF_CALLS calls" "$(ratio "${US_REF[$cg]:--}" "${US_REF[$km]:--}")" ""
done
echo
for name in "${RUN_NAMES[@]}"; do
  [[ $name != raw* ]] || continue
  prof=$({ grep "^RESULT label=$name " "$RES" || true; } | tail -1 | tr ' ' '\n' | awk -F= '$1 == "profiles" { print $2 }')
  echo "$name: SRTP profiles negotiated (calls): ${prof:--}"
done
if [[ " ${RUN_NAMES[*]} " == *" $km "* ]]; then
  if [ "$RTPENGINE_BUNDLE" = 1 ]; then
    echo "$km: offers with a=group:BUNDLE 0 (one audio mid); rtpengine answered ${KM_ANSWER:-(no answer seen)}"
  else
    echo "$km: offers without a=group:BUNDLE (RTPENGINE_BUNDLE=0); rtpengine answered ${KM_ANSWER:-(no answer seen)}"
  fi
fi
