#!/usr/bin/env bash
# The appliance image: builds the x86-64 disk image from Debian packages and
# the release binary (image/build.sh), then boots it under qemu with SeaBIOS
# and OVMF and checks it (image/test.sh: /healthz with boot-to-healthy time,
# the admin login page over HTTPS, SIP OPTIONS over UDP, the service user
# and armed watchdog, a SIGSTOP caught by the watchdog). About 3 minutes
# here, 4-5 on a fresh machine while packages download. The arm64 image
# (image/build-arm64.sh) is slow and stays out of this run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash image/build.sh
bash image/test.sh
