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

# Bootable x86-64 appliance disk image: image/out/callgate-amd64.raw(.zst).
image *args:
    bash image/build.sh {{args}}

# The arm64 image (slow: cross build, foreign-architecture rootfs under
# qemu-user; not part of CI).
image-arm64 *args:
    bash image/build-arm64.sh {{args}}

# Boot test of the x86-64 image under qemu: BIOS and UEFI.
image-test *args:
    bash image/test.sh {{args}}
