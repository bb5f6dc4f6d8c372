#!/usr/bin/env bash
# End-to-end SIP suite with sipp (Debian sip-tester) as plain phones over
# UDP and TCP: digest-authenticated REGISTER, refused REGISTER, un-REGISTER,
# phone-to-phone calls through the proxy. Builds and starts callgate in a
# loopback-only network namespace (run as root); prints "N passed, N failed"
# and exits non-zero on any failure, then prints the server log.
#
#   bash tests/e2e/sipp.sh
#
# CALLGATE_BIN / CALLGATE_NO_BUILD / E2E_KEEP as for browser.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/lib/common.sh

e2e_prepare sipp
e2e_enter_netns "$@"
e2e_start_server

SF=tests/e2e/sipp
SERVER=127.0.0.1:5060
DOMAIN=127.0.0.1
ART=$E2E_ARTIFACTS
passed=0
failed=0
failures=()

# sipp with the options every run needs; never runs longer than 40 s.
sipp_run() {
  timeout -k 5 40 sipp -nostdin -key domain "$DOMAIN" -timeout 20s -timeout_error "$@" </dev/null
}

# verdict NAME STATUS [DETAILS_FILE...]
verdict() {
  local name=$1 status=$2
  shift 2
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'ok   %s\n' "$name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL %s (sipp exit %s)\n' "$name" "$status"
    local f
    for f in "$@"; do
      [ -s "$f" ] || continue
      case $f in
        *.out)
          printf '  --- %s (message flow and errors) ---\n' "$f"
          node --input-type=module -e '
            import { readFileSync } from "node:fs";
            import { summarizeSippOutput } from "./tests/e2e/lib/sipp.mjs";
            console.log(summarizeSippOutput(readFileSync(process.argv[1], "utf8")));
          ' "$f" | sed 's/^/  /'
          ;;
        *)
          printf '  --- %s (last 40 lines) ---\n' "$f"
          grep -v -E '^[[:space:]]*$' "$f" | tail -n 40 | sed 's/^/  /'
          ;;
      esac
    done
  fi
}

# register NAME TRANSPORT(u1|t1) PORT USER PASSWORD EXPIRES SCENARIO
register() {
  local name=$1 t=$2 port=$3 user=$4 pass=$5 expires=$6 sf=$7 st=0
  local base="$ART/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_')"
  sipp_run -sf "$SF/$sf" "$SERVER" -t "$t" -i 127.0.0.1 -p "$port" -m 1 \
    -s "$user" -au "$user" -ap "$pass" -auth_uri "$DOMAIN" -key expires "$expires" \
    -default_behaviors abortunexp,pingreply \
    -trace_msg -message_file "$base.msg.log" -trace_err -error_file "$base.err.log" \
    >"$base.out" 2>&1 || st=$?
  verdict "$name" "$st" "$base.out" "$base.err.log" "$base.msg.log"
}

# Record-Route entries of the first received 200 OK to an INVITE in a sipp trace.
record_routes_of_200() {
  node --input-type=module -e '
    import { readSippMessages, headerValues } from "./tests/e2e/lib/sipp.mjs";
    const m = readSippMessages(process.argv[1]).find(
      (m) => m.dir === "received" && /^SIP\/2\.0 200 /.test(m.text) && /^CSeq:\s*\d+\s+INVITE/im.test(m.text));
    console.log(m ? headerValues(m.text, "Record-Route").join("  ") : "(no 200 OK in the trace)");
  ' "$1"
}

# call NAME CALLER_TRANSPORT  — phone 1002 calls phone 1001 (UDP, port 5092)
call() {
  local name=$1 t=$2 st=0 uas_st=0
  local base="$ART/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_')"
  sipp_run -sf "$SF/uas_answer.xml" -t u1 -i 127.0.0.1 -p 5092 -mp 16100 -m 1 -s 1001 \
    -trace_msg -message_file "$base.uas.msg.log" -trace_err -error_file "$base.uas.err.log" \
    >"$base.uas.out" 2>&1 &
  local uas=$!
  sleep 0.7
  sipp_run -sf "$SF/uac_call.xml" "$SERVER" -t "$t" -i 127.0.0.1 -p 5094 -mp 16110 -m 1 \
    -s 1001 -key caller 1002 -au 1002 -ap secret1002 -auth_uri "1001@$DOMAIN" -d 1000 \
    -trace_msg -message_file "$base.uac.msg.log" -trace_err -error_file "$base.uac.err.log" \
    >"$base.uac.out" 2>&1 || st=$?
  wait "$uas" || uas_st=$?
  [ "$st" -ne 0 ] || st=$uas_st
  verdict "$name" "$st" "$base.uac.out" "$base.uac.err.log" "$base.uas.out" "$base.uas.err.log" "$base.uac.msg.log"
  printf '     Record-Route in the 200 OK at the caller: %s\n' "$(record_routes_of_200 "$base.uac.msg.log")"
}

register "UDP REGISTER 1002 with digest auth -> 200" u1 5090 1002 secret1002 300 register.xml
register "TCP REGISTER 1002 with digest auth -> 200" t1 5091 1002 secret1002 300 register.xml
register "UDP REGISTER with a wrong password -> 401/403" u1 5093 1002 not-the-password 300 register_wrong_password.xml
register "UDP un-REGISTER 1002 (Expires: 0) -> 200" u1 5090 1002 secret1002 0 register.xml
register "UDP REGISTER 1001 (phone for the calls) -> 200" u1 5092 1001 secret1001 300 register.xml
call "UDP phone 1002 calls UDP phone 1001 (407, 200, ACK, BYE)" u1
call "TCP phone 1002 calls UDP phone 1001 (407, 200, ACK, BYE)" t1

echo
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
