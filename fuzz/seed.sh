#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seed inputs taken from the parsers' test
# data (RFC 4475 torture messages, Chromium SDP fixtures, the benchmark
# messages). Existing corpus files are kept, so a corpus grown by earlier runs
# is only topped up. Usage: fuzz/seed.sh [TARGET...]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
rfc="$root/crates/sip/tests/data/rfc4475"
sdpdata="$root/crates/sdp/tests/data"
bench="$root/tests/bench/parsers/data"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sip_message sip_uri sip_framer sip_digest sdp)

sip_messages() {
    ls "$rfc"/*.dat 2>/dev/null || true
    ls "$bench"/*.sip 2>/dev/null || true
}

# put DIR NAME: stdin to DIR/NAME unless it exists already (stdin is read
# either way, so the writer never gets SIGPIPE).
put() {
    if [ -e "$1/$2" ]; then cat >/dev/null; else cat >"$1/$2"; fi
}

for t in "${targets[@]}"; do
    dir="$here/corpus/$t"
    mkdir -p "$dir"
    case "$t" in
    sdp)
        for f in "$sdpdata"/*.sdp; do cp -n "$f" "$dir/"; done
        ;;
    sip_message)
        for f in $(sip_messages); do cp -n "$f" "$dir/"; done
        ;;
    sip_framer)
        for f in $(sip_messages); do cp -n "$f" "$dir/"; done
        # Pipelined: two messages back to back, and keep-alive CRLFs first.
        if [ -e "$rfc/wsinv.dat" ] && [ -e "$rfc/intmeth.dat" ]; then
            cat "$rfc/intmeth.dat" "$rfc/wsinv.dat" | put "$dir" pipelined.dat
            { printf '\r\n\r\n'; cat "$rfc/intmeth.dat"; } | put "$dir" keepalive.dat
        fi
        ;;
    sip_uri)
        # Request-URIs and every <...> URI of the torture messages.
        for f in "$rfc"/*.dat; do
            {
                head -n1 "$f" | tr -d '\r' | awk 'NF == 3 && $3 == "SIP/2.0" { print $2 }'
                { grep -ao '<[a-zA-Z][a-zA-Z0-9+.-]*:[^>]*>' "$f" || true; } | sed 's/^<//; s/>$//'
            } | while IFS= read -r u; do
                printf '%s' "$u" | put "$dir" "$(basename "$f" .dat)-$(printf '%s' "$u" | cksum | cut -d' ' -f1)"
            done
        done
        printf 'sip:alice:pw@[2001:db8::1]:5061;transport=tls;lr;maddr=192.0.2.1?Subject=hi&X=%%20y' | put "$dir" full
        printf 'sips:%%61lice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6' | put "$dir" gruu
        printf 'tel:+1-201-555-0123;phone-context=example.com' | put "$dir" tel
        printf 'sip:df7jal23ls0d.invalid;transport=ws;ob' | put "$dir" jssip
        ;;
    sip_digest)
        for f in "$rfc"/*.dat; do
            { grep -ai '^\(proxy-\)\?\(authorization\|www-authenticate\|proxy-authenticate\)[ \t]*:' "$f" || true; } |
                sed 's/^[^:]*:[ \t]*//' | tr -d '\r' | while IFS= read -r v; do
                printf '%s' "$v" | put "$dir" "$(basename "$f" .dat)-$(printf '%s' "$v" | cksum | cut -d' ' -f1)"
            done
        done
        printf '%s' 'Digest username="alice", realm="example.com", nonce="AAABmV3n3ekAAAAAcsfbVcKYl9c", uri="sip:example.com", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001, opaque="5ccc069c403ebaf9f0171e9517f40e41"' | put "$dir" credentials
        printf '%s' 'Digest realm="example.com", nonce="AAABmV3n3ekAAAAAcsfbVcKYl9c", qop="auth,auth-int", algorithm=SHA-256, opaque="o", stale=TRUE, domain="sip:a.example sip:b.example"' | put "$dir" challenge
        printf '%s' 'Digest realm="a\"b", nonce="n\\", algorithm=MD5-sess' | put "$dir" escapes
        ;;
    *)
        echo "seed.sh: unknown target $t" >&2
        exit 2
        ;;
    esac
    echo "$t: $(ls "$dir" | wc -l) seeds in ${dir#"$root"/}"
done
