#!/bin/sh
# Make sure an MQTT broker listens on 127.0.0.1:1883 for the MQTT tests (tests/test_mqtt.py).
# Debian/Ubuntu.  Idempotent: does nothing when a broker already answers; installs the
# mosquitto package only when it is missing (needs root); starts it daemonised with the
# package's own config (which listens on localhost:1883) when nothing listens yet.
# Without root it changes nothing and says what to run; the tests then skip with a reason.
set -eu

port_open() {
    # bash's /dev/tcp is not in POSIX sh; python3 is always there where ctid runs.
    python3 - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

if port_open 1883; then
    echo "ensure-mosquitto: a broker already listens on 127.0.0.1:1883"
    exit 0
fi

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-mosquitto: not root; run as root: apt-get install -y mosquitto" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends mosquitto
fi

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
CONF=/etc/mosquitto/mosquitto.conf
if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then
    # Containers have no systemd-tmpfiles to create the pid file's directory.
    mkdir -p /run/mosquitto && chown mosquitto: /run/mosquitto
fi
if [ -r "$CONF" ]; then
    # The packaged config runs as user mosquitto and writes its pid and log where it may.
    "$MOSQUITTO" -d -c "$CONF"
else
    "$MOSQUITTO" -d -p 1883
fi

for _ in 1 2 3 4 5 6 7 8 9 10; do
    if port_open 1883; then
        echo "ensure-mosquitto: broker started on 127.0.0.1:1883"
        exit 0
    fi
    sleep 0.5
done
echo "ensure-mosquitto: mosquitto did not start listening on 1883" >&2
exit 1
