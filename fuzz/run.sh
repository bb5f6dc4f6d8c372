#!/usr/bin/env bash
# Builds the fuzz targets with cargo-afl (stable toolchain) and runs each for
# SECS seconds, then prints what each run did.
#
#   fuzz/run.sh SECS [TARGET...]      (default: every target)
#
# Environment:
#   JOBS=N        targets fuzzed at the same time (default 1; one core each)
#   AFL_FLAGS=... extra afl-fuzz options
#   NO_BUILD=1    skip the build
#
# Per target, seeds come from fuzz/seed.sh into fuzz/corpus/<target>/ (grown
# by every run: new queue entries are copied back), and AFL's output goes to
# fuzz/artifacts/<target>/ (crashes/, hangs/, queue/, fuzzer_stats). An
# earlier run's output with crashes or hangs is moved aside first, never
# deleted. Exits 1 if any target crashed, 2 on a usage or build error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
all_targets=(sip_message sip_uri sip_framer sip_digest sdp)

usage() {
    echo "usage: fuzz/run.sh SECS [TARGET...]   (targets: ${all_targets[*]})" >&2
    exit 2
}
[ $# -ge 1 ] || usage
secs="$1"
shift
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || usage
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target: $t" >&2; usage; }
done
jobs="${JOBS:-1}"

command -v cargo-afl >/dev/null || {
    echo "cargo-afl is missing: cargo install cargo-afl && cargo afl config --build" >&2
    exit 2
}

cd "$here"
if [ -z "${NO_BUILD:-}" ]; then
    # AFL++ itself (afl-fuzz and the runtime) is built once per toolchain.
    cargo afl config --build >/dev/null 2>&1 || true
    cargo afl build --release --bins || exit 2
fi

# This machine runs other builds and has no say over the CPU governor or the
# kernel's core_pattern: tell AFL++ not to insist on either.
export AFL_SKIP_CPUFREQ=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1
export AFL_NO_AFFINITY="${AFL_NO_AFFINITY:-1}"
unset AFL_AUTORESUME

dict_for() {
    case "$1" in
    sdp) echo "$here/dict/sdp.dict" ;;
    *) echo "$here/dict/sip.dict" ;;
    esac
}

fuzz_one() {
    local t="$1" out="$here/artifacts/$1"
    "$here/seed.sh" "$t" >/dev/null || {
        echo "$t: seed.sh failed" >&2
        mkdir -p "$out" && touch "$out/FAILED"
        return 0
    }
    if [ -d "$out" ]; then
        if [ -n "$(find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt 2>/dev/null)" ]; then
            mv "$out" "$out.$(date +%Y%m%d-%H%M%S)"
        else
            rm -rf "$out"
        fi
    fi
    mkdir -p "$out"
    # shellcheck disable=SC2086
    cargo afl fuzz -V "$secs" -i "$here/corpus/$t" -o "$out" -x "$(dict_for "$t")" \
        ${AFL_FLAGS:-} -- "$here/target/release/$t" >"$out/afl.log" 2>&1 || {
        echo "$t: afl-fuzz failed, see fuzz/artifacts/$t/afl.log:" >&2
        tail -n 20 "$out/afl.log" >&2
        touch "$out/FAILED"
        return 0
    }
    # Keep what was found for the next run.
    cp -n "$out"/default/queue/id:* "$here/corpus/$t/" 2>/dev/null || true
}

failed=0
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    echo "fuzzing $t for ${secs}s ($(date +%H:%M:%S))"
    fuzz_one "$t" &
done
wait

afl_stat() {
    # stat FILE KEY: the value of KEY in an AFL fuzzer_stats file.
    awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1"
}

crashed=0
printf '\n%-12s %8s %12s %10s %7s %8s %6s\n' target secs execs execs/s paths crashes hangs
for t in "${targets[@]}"; do
    s="$here/artifacts/$t/default/fuzzer_stats"
    if [ ! -f "$s" ] || [ -e "$here/artifacts/$t/FAILED" ]; then
        printf '%-12s %s\n' "$t" "no fuzzer_stats (did afl-fuzz start?)"
        failed=1
        continue
    fi
    c="$(afl_stat "$s" saved_crashes)"
    printf '%-12s %8s %12s %10s %7s %8s %6s\n' "$t" "$(afl_stat "$s" run_time)" "$(afl_stat "$s" execs_done)" \
        "$(afl_stat "$s" execs_per_sec)" "$(afl_stat "$s" corpus_count)" "$c" "$(afl_stat "$s" saved_hangs)"
    if [ "${c:-0}" != 0 ]; then
        crashed=1
        echo "  crashes in fuzz/artifacts/$t/default/crashes/; reproduce with:"
        echo "  RUST_BACKTRACE=1 cargo run --manifest-path fuzz/Cargo.toml --no-default-features --bin replay -- $t fuzz/artifacts/$t/default/crashes/"
    fi
done
[ "$crashed" = 0 ] || exit 1
[ "$failed" = 0 ] || exit 2
