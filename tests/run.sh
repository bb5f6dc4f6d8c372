#!/usr/bin/env bash
# Runs every test of the project on a fresh machine. It installs what the
# tests need itself: Debian packages (apt) and npm packages (npm ci from the
# committed lockfile), then runs fmt, clippy and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(chromium sip-tester iproute2 tcpdump)

step() { printf '\n==> %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "npm ci (tests/)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

for t in tests/e2e/*.sh; do
  [ -e "$t" ] || continue
  step "end to end: $t"
  bash "$t"
done
