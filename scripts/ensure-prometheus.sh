#!/bin/sh
# Install Debian's Prometheus (prometheus, promtool) for tests/test_rules.py and
# tests/test_dashboards_prometheus.py.  Idempotent: a present binary is not fetched again.
# Needs root for apt-get; without it this prints what to run and exits 0 (the tests then skip
# with a reason).  The tests start their own prometheus on a free loopback port; nothing here
# starts a server.
set -eu

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-prometheus: not root; run as root: apt-get install -y --no-install-recommends prometheus" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps node-exporter and friends out.  The package's postinst tries
# to start the service; where there is no init system (containers, CI) that fails harmlessly.
apt-get install -y -qq --no-install-recommends prometheus
echo "ensure-prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
