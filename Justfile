# Convenience recipes; each calls a script or cargo, so nothing needs `just`.

# Run the gateway on its embedded defaults.
run:
    cargo run --release

# Everything CI runs: installs test dependencies, fmt, clippy, tests.
test:
    bash tests/run.sh

# Parser micro-benchmarks (figures, not pass/fail).
bench:
    bash tests/bench/parsers.sh

# Fuzz every parser for SECS seconds each (stable toolchain).
fuzz secs="600":
    bash fuzz/run.sh {{secs}}

# Regenerate the Chromium SDP fixtures.
capture-sdp:
    bash tests/sdp-capture/capture.sh
