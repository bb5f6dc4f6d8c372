#!/usr/bin/env bash
# Rebuilds web-ui/phone/jssip.min.js, the JsSIP build the softphone page
# loads (embedded into the binary; the gateway serves it at
# /phone/jssip.min.js). The JsSIP npm package ships only CommonJS sources,
# so this installs the exact versions pinned in package-lock.json here
# (JsSIP and esbuild) and bundles them like JsSIP's own release build.
#
# To move to another JsSIP version: change "jssip" in package.json, run
# `npm install` here once to update package-lock.json, then this script,
# and commit package.json, package-lock.json and jssip.min.js.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
node bundle.mjs
