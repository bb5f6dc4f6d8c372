#!/usr/bin/env bash
# Builds the arm64 appliance image: the same layout as the x86-64 one
# (image/README.md), UEFI only (systemd-boot; arm64 servers have no
# legacy BIOS), with an arm64 callgate binary.
#
#   bash image/build-arm64.sh [OUTPUT.raw]   (default image/out/callgate-arm64.raw)
#
# Slow, and therefore not part of CI: the root file system is made by
# mmdebstrap for a foreign architecture, so every maintainer script runs
# under qemu-user (about 11 minutes measured on a 2-core machine), on top
# of the cross build of the binary.
#
# The binary: CALLGATE_BIN if set; otherwise a cross build with rustup's
# aarch64-unknown-linux-gnu target and Debian's gcc-aarch64-linux-gnu as
# linker and C compiler (ring and the bundled SQLite have C parts). If the
# rustup target cannot be downloaded, build the binary with Debian's
# rustc inside an arm64 chroot under qemu-user (slower still) and pass it
# as CALLGATE_BIN.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/image/out/callgate-arm64.raw}
TARGET=aarch64-unknown-linux-gnu

[ "$(id -u)" -eq 0 ] || { echo "build-arm64.sh: run as root" >&2; exit 1; }

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v aarch64-linux-gnu-objcopy >/dev/null || need+=(binutils-aarch64-linux-gnu)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || command -v qemu-aarch64-static >/dev/null \
  || need+=(qemu-user-static binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -z "${CALLGATE_BIN:-}" ]; then
  echo "==> cargo build --release --target $TARGET"
  rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
  (cd "$ROOT" && \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    cargo build --release --locked -p callgate --target "$TARGET")
  CALLGATE_BIN=$ROOT/target/$TARGET/release/callgate
fi

ARCH=arm64 CALLGATE_BIN=$CALLGATE_BIN exec bash "$ROOT/image/build.sh" "$OUT"
