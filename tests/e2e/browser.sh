#!/usr/bin/env bash
# End-to-end browser suite: builds callgate, starts it with a throw-away
# config in a loopback-only network namespace (run as root), then runs
# tests/e2e/browser.mjs: Chromium + JsSIP phones over WSS, and sipp as a plain
# UDP phone. Exits non-zero on any failure and then prints the server log.
#
#   bash tests/e2e/browser.sh
#
# CALLGATE_BIN=path uses another binary; CALLGATE_NO_BUILD=1 skips the build;
# E2E_KEEP=1 keeps the temp dir (config, server.log, JsSIP/sipp traces).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/lib/common.sh

e2e_prepare chromium sipp
e2e_enter_netns "$@"
e2e_start_server

# node:test prints each test and the pass/fail summary at the end.
timeout -k 10 "${E2E_BROWSER_TIMEOUT:-420}" node --test-reporter=spec tests/e2e/browser.mjs
