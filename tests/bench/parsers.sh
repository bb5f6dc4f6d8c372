#!/usr/bin/env bash
# Parser micro-benchmarks: callgate's SIP parser against ezk-sip-types and
# rsip on a JsSIP/Chromium INVITE and REGISTER. Prints criterion's report per
# case, then a summary table. Figures, not pass/fail; about 1-2 minutes of
# measuring after the build. Run it on an otherwise idle machine.
#
#   bash tests/bench/parsers.sh [CRITERION ARGS...]   e.g. a_parse to run only (a)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/parsers"
# The paths being timed must work and agree before they are timed.
cargo test --release --quiet
exec cargo bench --bench parsers -- "$@"
