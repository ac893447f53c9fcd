#!/usr/bin/env bash
# Debian's prometheus package, for its promtool: `make test` checks and unit-tests
# deploy/prometheus/alerts.yml with it (tests/unit/test_prometheus_rules.py). Installed with apt,
# never a binary downloaded by hand. A no-op when promtool is there.
set -euo pipefail
if command -v promtool >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_promtool.sh: promtool missing and not root; the Prometheus rule tests will be skipped" >&2
    echo "  (as root: apt-get update && apt-get install -y --no-install-recommends prometheus)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
# --no-install-recommends: the rule tests need promtool, not the exporters the package recommends.
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a Prometheus server where systemd runs; the tests need only the tool.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
promtool --version | head -1
