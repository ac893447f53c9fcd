#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the browser tests (tests/browser), installed with apt:
# never a browser build downloaded by Selenium or Playwright. A no-op when both are there.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_chromium.sh: chromium/chromium-driver missing and not root; the browser tests will be skipped" >&2
    echo "  (as root: apt-get update && apt-get install -y chromium chromium-driver)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium chromium-driver >/dev/null
chromium --version
