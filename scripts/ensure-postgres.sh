#!/bin/sh
# A PostgreSQL for the store tests: 127.0.0.1:5432, user postgres, trust auth from 127.0.0.1.
# Debian/Ubuntu, as root.  Idempotent: when the server already answers it only runs one
# query (well under a second); otherwise it installs the package (once), allows trust auth
# on 127.0.0.1, and starts the cluster without systemd (works in containers and CI).
# Without root it changes nothing and says what is missing.  Tests skip (and name this
# script) when no server answers.
set -eu

HOST=127.0.0.1
PORT=5432

answers() {
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
}

if command -v psql >/dev/null 2>&1 && answers; then
    echo "ensure-postgres: PostgreSQL answers on $HOST:$PORT (user postgres, trust)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-postgres: no PostgreSQL on $HOST:$PORT and not root; run this as root" >&2
    exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's postinst may fail to start the server where there is no init system;
    # the cluster is started below either way.
    apt-get install -y -qq postgresql >/dev/null
fi

VERSION=$(ls /etc/postgresql | sort -V | tail -n 1)
HBA=/etc/postgresql/$VERSION/main/pg_hba.conf
RULE="host    all             all             127.0.0.1/32            trust"

changed=no
if ! grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$HBA"; then
    # pg_hba.conf is first-match: the rule goes on top so it wins over the md5/scram lines.
    { echo "$RULE  # added by ctid scripts/ensure-postgres.sh"; cat "$HBA"; } > "$HBA.ctid-new"
    chown --reference="$HBA" "$HBA.ctid-new"
    chmod --reference="$HBA" "$HBA.ctid-new"
    mv "$HBA.ctid-new" "$HBA"
    changed=yes
fi

if pg_ctlcluster "$VERSION" main status >/dev/null 2>&1; then
    if [ "$changed" = yes ]; then
        pg_ctlcluster --skip-systemctl-redirect "$VERSION" main reload
    fi
else
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" main start
fi

tries=0
until answers; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "ensure-postgres: PostgreSQL $VERSION does not answer on $HOST:$PORT" >&2
        exit 1
    fi
    sleep 1
done
echo "ensure-postgres: PostgreSQL $VERSION ready on $HOST:$PORT (user postgres, trust)"
