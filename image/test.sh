#!/usr/bin/env bash
# Boot test of the appliance image: boots it under qemu-system-x86_64 with
# SeaBIOS (legacy BIOS) and OVMF (UEFI), and checks the running appliance
# from the outside.
#
#   bash image/test.sh [IMAGE.raw]     (default image/out/callgate-amd64.raw)
#
# For each firmware: power-on to a healthy /healthz is measured and
# printed; the admin UI login page is fetched over HTTPS; a SIP OPTIONS
# over UDP must get 200; over the test port (below) the gateway must run
# as the unprivileged user with only CAP_NET_BIND_SERVICE and the systemd
# watchdog armed and fed, the root partition must have grown to the disk,
# root must be locked and the console text must show the URL. Under the
# first firmware the main process is then frozen with SIGSTOP: the
# watchdog must catch it and systemd must restart the gateway.
#
# Networking is qemu's user mode with host forwards bound to 127.0.0.1
# only. The whole test runs in a private network namespace that has only
# a loopback interface, so nothing the guest sends (NTP, DNS) leaves the
# machine. (qemu's `restrict=on` would isolate the guest too, but it also
# drops the guest's UDP answers, SIP's among them.) KVM is used only when
# /proc/cpuinfo shows vmx or svm; otherwise TCG.
#
# Test port: a virtio-serial port named org.callgate.test.0, which only
# this script attaches, starts callgate-testport.service in the guest
# (udev rule); it answers the fixed commands "status" and "hang". No SSH,
# no login: root stays locked.
#
# Environment: FIRMWARES ("bios uefi"), BOOT_TIMEOUT (seconds, 300),
# DISK_SIZE (4G: the virtual disk, larger than the image, so the first
# boot has room to grow into), REQUIRE_LOGIN=1 (a missing /login page
# fails instead of warning), HANG_TEST (firmware that runs the watchdog
# test, default the first one; "none" skips it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMG=${1:-$ROOT/image/out/callgate-amd64.raw}
FIRMWARES=${FIRMWARES:-bios uefi}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
DISK_SIZE=${DISK_SIZE:-4G}
HANG_TEST=${HANG_TEST:-${FIRMWARES%% *}}
MEM=${MEM:-1024}
SMP=${SMP:-2}

PASSED=0 FAILED=0 WARNED=0
ok() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
bad() { FAILED=$((FAILED + 1)); printf '  FAIL  %s\n' "$*"; }
warn() { WARNED=$((WARNED + 1)); printf '  warn  %s\n' "$*"; }
say() { printf '\n==> %s\n' "$*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (installs qemu when missing)"
if [ ! -e "$IMG" ] && [ -e "$IMG.zst" ]; then
  zstd -q -d "$IMG.zst" -o "$IMG"
fi
[ -e "$IMG" ] || die "no image at $IMG (bash image/build.sh first)"

# --- host tools -------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  say "apt: installing ${need[*]}"
  apt-get update -qq
  extra=()
  # qemu-utils from bookworm-backports conflicts with bookworm's
  # qemu-system 7.2: step it back to bookworm's in the same command.
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q '~bpo'; then
    extra=(qemu-utils/bookworm --allow-downgrades)
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" "${extra[@]}" >/dev/null
fi

# From here on: a network namespace of our own with loopback only.
if [ -z "${CALLGATE_BOOT_TEST_NETNS:-}" ]; then
  exec unshare --net -- env CALLGATE_BOOT_TEST_NETNS=1 bash "$0" "$IMG"
fi
ip link set lo up

if grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -w /dev/kvm ]; then
  ACCEL=(-accel kvm -cpu host)
  echo "accelerator: KVM"
else
  ACCEL=(-accel tcg,thread=multi -cpu max)
  echo "accelerator: TCG (no vmx/svm in /proc/cpuinfo)"
fi

W=$(mktemp -d "${TMPDIR:-/var/tmp}/callgate-boot.XXXXXX")
QPID=""
stop_qemu() {
  if [ -n "$QPID" ]; then
    kill "$QPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
    QPID=""
  fi
}
cleanup() { stop_qemu; [ "${KEEP_WORK:-0}" = 1 ] && echo "work directory kept: $W" || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # $1: tcp or udp
  python3 - "$1" <<'PY'
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

# Sends one command to the guest's test port; prints the answer.
testport() {
  python3 - "$W/testport.sock" "$1" <<'PY'
import random, socket, sys, time
path, cmd = sys.argv[1], sys.argv[2]
rid = "%08x" % random.getrandbits(32)
begin, end = f"BEGIN {rid}\n".encode(), f"\n. {rid}\n".encode()
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.settimeout(1)
buf, deadline, last_sent = b"", time.time() + 60, 0.0
while time.time() < deadline:
    # The guest side reopens its port about once a second while nobody is
    # connected: send again until the answer begins. Answers to earlier
    # requests carry other ids and are skipped.
    if begin not in buf and time.time() - last_sent > 10:
        s.sendall(f"{rid} {cmd}\n".encode())
        last_sent = time.time()
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    if not chunk:
        break
    buf += chunk
    i = buf.find(begin)
    if i >= 0:
        j = buf.find(end, i)
        if j >= 0:
            sys.stdout.write(buf[i + len(begin):j + 1].decode(errors="replace"))
            break
PY
}

field() { sed -n "s/^$1=//p" <<<"$2" | head -n 1; }

qemu_failed() {
  if ! kill -0 "$QPID" 2>/dev/null; then
    echo "qemu exited:"; tail -n 20 "$W/qemu.err"; return 0
  fi
  if grep -qiE 'internal error|assert|aborted|core dumped|fatal' "$W/qemu.err"; then
    echo "qemu reported an error:"; tail -n 20 "$W/qemu.err"; return 0
  fi
  return 1
}

healthz() { curl -sk -o /dev/null -w '%{http_code}' --max-time 3 "https://127.0.0.1:$HTTPS/healthz" 2>/dev/null || true; }

sip_options() { # $1: the Request-URI
  python3 - "$SIP" "$1" <<'PY'
import random, socket, sys
port, uri = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(2)
lp = s.getsockname()[1]
msg = (
    f"OPTIONS {uri} SIP/2.0\r\n"
    f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
    "Max-Forwards: 70\r\n"
    f"From: <sip:boot-test@127.0.0.1>;tag={random.getrandbits(32):x}\r\n"
    f"To: <{uri}>\r\n"
    f"Call-ID: {random.getrandbits(64):x}@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
).encode()
for _ in range(5):
    s.sendto(msg, ("127.0.0.1", port))
    try:
        data, _ = s.recvfrom(65536)
    except socket.timeout:
        continue
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    if line.startswith("SIP/2.0 1"):
        continue
    print(line)
    sys.exit(0 if line.startswith("SIP/2.0 200") else 1)
print("no answer")
sys.exit(1)
PY
}

declare -A BOOT_SECS
run_firmware() {
  local fw=$1
  say "boot under $fw"
  qemu-img create -q -f qcow2 -F raw -b "$(readlink -f "$IMG")" "$W/disk-$fw.qcow2" "$DISK_SIZE"
  HTTPS=$(free_port tcp) SIP=$(free_port udp)
  rm -f "$W/testport.sock"
  local fwargs=()
  if [ "$fw" = uefi ]; then
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
    fwargs=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
            -drive "if=pflash,format=raw,unit=1,file=$W/vars.fd")
  fi
  : > "$W/serial-$fw.log"
  : > "$W/qemu.err"
  local t0; t0=$(date +%s.%N)
  qemu-system-x86_64 -machine q35 "${ACCEL[@]}" -m "$MEM" -smp "$SMP" \
    -nodefaults -no-user-config -display none \
    "${fwargs[@]}" \
    -serial "file:$W/serial-$fw.log" \
    -drive "file=$W/disk-$fw.qcow2,if=virtio,format=qcow2" \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$HTTPS-:443,hostfwd=udp:127.0.0.1:$SIP-:5060" \
    -device virtio-rng-pci \
    -device virtio-serial-pci \
    -chardev "socket,id=testport,path=$W/testport.sock,server=on,wait=off" \
    -device "virtserialport,chardev=testport,name=org.callgate.test.0" \
    2> "$W/qemu.err" &
  QPID=$!
  echo "qemu pid $QPID, https 127.0.0.1:$HTTPS -> 443, sip udp 127.0.0.1:$SIP -> 5060"

  local healthy="" now
  while :; do
    if qemu_failed; then bad "$fw: qemu failed"; stop_qemu; return; fi
    if [ "$(healthz)" = 200 ]; then healthy=1; break; fi
    now=$(date +%s.%N)
    if awk -v a="$t0" -v b="$now" -v t="$BOOT_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then break; fi
    sleep 0.5
  done
  now=$(date +%s.%N)
  local secs; secs=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
  if [ -z "$healthy" ]; then
    bad "$fw: /healthz not healthy within ${BOOT_TIMEOUT}s; serial console:"
    tail -n 40 "$W/serial-$fw.log" | sed 's/^/      /'
    echo "      gateway journal:"
    testport journal | sed 's/^/      /'
    stop_qemu
    return
  fi
  BOOT_SECS[$fw]=$secs
  ok "$fw: power-on to healthy /healthz: ${secs} s"

  # The admin UI login page over HTTPS.
  local login code
  login=$(curl -sk -o "$W/login.html" -w '%{http_code} %{redirect_url}' --max-time 10 \
    "https://127.0.0.1:$HTTPS/login" || echo "000")
  code=${login%% *}
  if [ "$code" = 200 ] && grep -qiE '<form|password' "$W/login.html"; then
    ok "$fw: HTTPS /login serves the login page"
  elif [[ "$code" =~ ^30[1278]$ ]]; then
    ok "$fw: HTTPS /login redirects (${login#* })"
  elif [ "${REQUIRE_LOGIN:-0}" = 1 ]; then
    bad "$fw: HTTPS /login answered $code"
  else
    warn "$fw: HTTPS /login answered $code (no login page in this binary yet; TLS works)"
  fi

  # SIP OPTIONS over UDP through the forwarded port: to the guest's
  # address (qemu's user network gives it 10.0.2.15), else to the SIP
  # domain.
  local sip="" sip2=""
  if sip=$(sip_options sip:10.0.2.15); then
    ok "$fw: SIP OPTIONS sip:10.0.2.15 over UDP: $sip"
  elif sip2=$(sip_options sip:callgate.local); then
    ok "$fw: SIP OPTIONS sip:callgate.local over UDP: $sip2"
    warn "$fw: SIP OPTIONS sip:10.0.2.15 (the gateway's own address) answered: $sip"
  else
    bad "$fw: SIP OPTIONS over UDP: sip:10.0.2.15 -> $sip, sip:callgate.local -> $sip2"
    testport journal | tail -n 15 | sed 's/^/      /'
  fi

  # How the service runs, over the test port.
  local st="" st2="" uid="" cuid=""
  st=$(testport status)
  echo "$st" | sed -n '/^Issue:/,$p' | sed 's/^/      /'
  uid=$(field Uid "$st") cuid=$(field CallgateUid "$st")
  if [ -n "$uid" ] && [ "$uid" != 0 ] && [ "$uid" = "$cuid" ] && [ "$(field User "$st")" = callgate ]; then
    ok "$fw: runs as user callgate (uid $uid)"
  else
    bad "$fw: service user: User=$(field User "$st") Uid=$uid (callgate is $cuid)"
  fi
  if [ "$(field CapEff "$st")" = 0000000000000400 ] && [ "$(field NoNewPrivs "$st")" = 1 ]; then
    ok "$fw: capabilities: CAP_NET_BIND_SERVICE only, no_new_privs"
  else
    bad "$fw: CapEff=$(field CapEff "$st") NoNewPrivs=$(field NoNewPrivs "$st")"
  fi
  local wd1 wd2
  wd1=$(field WatchdogTimestampMonotonic "$st")
  sleep 6
  st2=$(testport status)
  wd2=$(field WatchdogTimestampMonotonic "$st2")
  if [ "$(field WatchdogUSec "$st")" != 0 ] && [ -n "$(field WatchdogUSec "$st")" ] \
     && [ "${wd1:-0}" -gt 0 ] && [ "${wd2:-0}" -gt "${wd1:-0}" ]; then
    ok "$fw: watchdog armed (WatchdogSec=$(field WatchdogUSec "$st")) and fed (last ping moved ${wd1} -> ${wd2} us)"
  else
    bad "$fw: watchdog: WatchdogUSec=$(field WatchdogUSec "$st") pings ${wd1:-none} -> ${wd2:-none}"
  fi
  if [ "$(field Type "$st")" = notify ] && [ "$(field ActiveState "$st")" = active ]; then
    ok "$fw: Type=notify service active, status: $(field StatusText "$st2")"
  else
    bad "$fw: Type=$(field Type "$st") ActiveState=$(field ActiveState "$st")"
  fi
  local rootb diskb
  rootb=$(field RootBytes "$st") diskb=$(field DiskBytes "$st")
  if [ -n "$rootb" ] && [ -n "$diskb" ] && [ "$rootb" -gt $((1024 * 1024 * 1024)) ]; then
    ok "$fw: first boot grew the root file system to $((rootb / 1048576)) MiB (disk $((diskb / 1048576)) MiB)"
  else
    bad "$fw: root file system ${rootb:-?} bytes on a ${diskb:-?} byte disk: not grown"
  fi
  if [ "$(field RootLocked "$st")" = yes ]; then ok "$fw: root account locked"; else bad "$fw: root account not locked"; fi
  if grep -q 'https://' <<<"$st" && grep -qiE 'password' <<<"$st"; then
    ok "$fw: console shows the web UI URL and the admin password note"
  else
    bad "$fw: console text (/etc/issue.d) lacks the URL or the password line"
  fi
  local js sij
  js=$(field JournalStructured "$st") sij=$(field SecretInJournal "$st")
  if [ "${js:-0}" -gt 0 ]; then
    ok "$fw: $js journal entries of the gateway carry structured fields (TARGET=, ...)"
  else
    bad "$fw: no structured journal entries from the gateway"
  fi
  if [ -z "$sij" ]; then
    warn "$fw: no one-time admin password file to look for in the journal"
  elif [ "$sij" = 0 ]; then
    ok "$fw: the one-time admin password appears nowhere in the journal"
  else
    bad "$fw: the one-time admin password is in the journal ($sij entries)"
  fi

  # What agetty shows on the serial console: the URL with the address
  # filled in.
  local console=""
  for _ in $(seq 20); do
    console=$(tr -d '\r' < "$W/serial-$fw.log" | grep -a -m 1 'callgate web UI: https://[0-9]' || true)
    [ -n "$console" ] && break
    sleep 1
  done
  if [ -n "$console" ]; then
    ok "$fw: serial console shows \"$console\""
  else
    bad "$fw: the serial console never showed the web UI URL"
  fi
  echo "      system state: $(field SystemState "$st2"), /usr mounted $(field UsrMount "$st2")"
  echo "      $(testport security)"
  testport boot | sed 's/^/      /'

  if [ "$HANG_TEST" = "$fw" ]; then
    say "$fw: SIGSTOP the gateway; the watchdog must restart it"
    local pid0 n0 t1 st3 pid1 n1 rsecs=""
    pid0=$(field MainPID "$st2") n0=$(field NRestarts "$st2")
    testport hang | sed 's/^/      /'
    t1=$(date +%s.%N)
    for _ in $(seq 60); do
      sleep 2
      st3=$(testport status)
      pid1=$(field MainPID "$st3") n1=$(field NRestarts "$st3")
      if [ -n "$pid1" ] && [ "$pid1" != 0 ] && [ "$pid1" != "$pid0" ] && [ "${n1:-0}" -gt "${n0:-0}" ] \
         && [ "$(healthz)" = 200 ]; then
        rsecs=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        break
      fi
    done
    if [ -n "$rsecs" ]; then
      ok "$fw: watchdog restart: MainPID $pid0 -> $pid1, NRestarts $n0 -> $n1, healthy again after ${rsecs} s"
      echo "      journal: $(field WatchdogEvent "$st3")"
      echo "      last exit: $(field ExitEvent "$st3")"
    else
      bad "$fw: no watchdog restart within 120 s (MainPID $pid0 -> ${pid1:-?}, NRestarts $n0 -> ${n1:-?})"
    fi
  fi
  stop_qemu
}

for fw in $FIRMWARES; do
  run_firmware "$fw"
done

say "summary"
for fw in $FIRMWARES; do
  printf '  power-on to healthy, %-4s: %s s\n' "$fw" "${BOOT_SECS[$fw]:-not reached}"
done
printf '  image %s: raw %d MiB\n' "$IMG" $(($(stat -c %s "$IMG") / 1048576))
[ -e "$IMG.zst" ] && printf '  zstd %.1f MiB\n' "$(awk -v b="$(stat -c %s "$IMG.zst")" 'BEGIN { print b / 1048576 }')"
echo
echo "boot test: $PASSED passed, $FAILED failed, $WARNED warnings"
[ "$FAILED" -eq 0 ]
