#!/usr/bin/env bash
# A throw-away PostgreSQL for Prefect's server on 127.0.0.1, from Debian's packages (used by the `server` tests and
# for trying server mode without Docker).
#
#   scripts/postgres-local.sh start DATADIR [PORT]   initdb DATADIR if empty, start, create db `prefect`;
#                                                    prints the Prefect DB URL (postgresql+asyncpg://…) on stdout
#   scripts/postgres-local.sh stop DATADIR           fast shutdown
#
# Installs the `postgresql` package with apt-get when no server binaries are found (root only). Exit codes:
# 0 ok, 3 PostgreSQL is missing and cannot be installed here (the tests skip with this message), 1 other failure.
# Postgres refuses to run as root: as root, the cluster belongs to the `postgres` system user (runuser).
# The password is $LMPIPE_PG_PASSWORD (default "prefect"); TCP on 127.0.0.1 only, scram-sha-256, no unix socket.
set -euo pipefail

cmd=${1:-}; datadir=${2:-}; port=${3:-5432}
[ -n "$cmd" ] && [ -n "$datadir" ] || { echo "usage: $0 start|stop DATADIR [PORT]" >&2; exit 1; }
password=${LMPIPE_PG_PASSWORD:-prefect}

pg_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && { echo "$d"; return 0; }
    done
    return 1
}

bin=$(pg_bin) || {
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "postgres-local: PostgreSQL server not found; installing Debian's postgresql package" >&2
        # The package's own cluster is not used (we initdb our own); skip its auto-start where policy-rc.d allows.
        if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
               { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }; }; then
            echo "postgres-local: apt-get install postgresql failed (no package registry?)" >&2; exit 3
        fi
        bin=$(pg_bin) || { echo "postgres-local: postgresql installed but no server binaries found" >&2; exit 3; }
    else
        echo "postgres-local: PostgreSQL server not found and cannot install it (needs root and apt-get);" \
             "install Debian's 'postgresql' package" >&2
        exit 3
    fi
}

as_owner() {  # run a command as the cluster owner: ourselves, or `postgres` when we are root
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    mkdir -p "$datadir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$datadir" && chmod 700 "$datadir"
    if [ ! -s "$datadir/PG_VERSION" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$password" >"$pwfile"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
        as_owner "$bin/initdb" -D "$datadir" -U prefect --pwfile="$pwfile" --auth=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 >/dev/null
        rm -f "$pwfile"
    fi
    # fsync off: a test cluster; it is deleted afterwards and a power loss does not matter.
    as_owner "$bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1 ||
    as_owner "$bin/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c max_connections=100" \
        >/dev/null || { tail -20 "$datadir/server.log" >&2; exit 1; }
    export PGPASSWORD=$password
    if ! psql -h 127.0.0.1 -p "$port" -U prefect -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='prefect'" \
        | grep -q 1; then
        psql -h 127.0.0.1 -p "$port" -U prefect -d postgres -qc "CREATE DATABASE prefect" >/dev/null
    fi
    echo "postgresql+asyncpg://prefect:${password}@127.0.0.1:${port}/prefect"
    ;;
stop)
    [ -s "$datadir/postmaster.pid" ] || exit 0
    as_owner "$bin/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null
    ;;
*)
    echo "usage: $0 start|stop DATADIR [PORT]" >&2; exit 1 ;;
esac
