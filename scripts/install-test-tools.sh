#!/bin/sh
# Install the real checkers tests/test_deploy.py runs on the deployment files.
# Debian/Ubuntu, as root.  Idempotent: packages already present are not fetched again, so a
# second run only costs a few dpkg queries.  Without root it installs nothing and prints what
# is missing (the tests skip those checks and name the package).
set -eu

# command the tests call -> Debian package that ships it
TOOLS="promtool:prometheus amtool:prometheus-alertmanager mosquitto:mosquitto systemd-analyze:systemd"

missing=""
for pair in $TOOLS; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "install-test-tools: all checkers present (promtool amtool mosquitto systemd-analyze)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-tools: not root; missing Debian packages:$missing" >&2
    echo "install-test-tools: run as root: apt-get install -y --no-install-recommends$missing" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps node-exporter & co. out; the packages' postinst may try to
# start their daemons, which fails harmlessly where there is no init system (containers, CI).
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "install-test-tools: installed:$missing"
