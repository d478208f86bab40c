#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on the loopback for the registry tests and print its
# URL (postgresql+psycopg://...). Installs Debian's postgresql when it is missing.
#   export LAUNCHML_TEST_POSTGRES_URL=$(.ci/postgres.sh start /tmp/launchml-pg)
#   .ci/postgres.sh stop /tmp/launchml-pg
set -euo pipefail
action=${1:?start|stop}
dir=${2:-/tmp/launchml-pg}
port=${LAUNCHML_PG_PORT:-54329}

bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bindir=$d; done
if [ -z "$bindir" ] && [ "$action" = start ]; then
    echo "postgres.sh: installing Debian's postgresql" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends postgresql >&2
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bindir=$d; done
fi

# the server refuses to run as root: run it as the postgres user then
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "$action" = stop ]; then
    [ -d "$dir/data" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast stop >&2 || true
    rm -rf "$dir"
    exit 0
fi

rm -rf "$dir" && mkdir -p "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
user=$(if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi)
as_pg "$bindir/initdb" -D "$dir/data" -U "$user" --auth=trust -E UTF8 >/dev/null
as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2
as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$user" launchml_test >&2
echo "postgresql+psycopg://$user@127.0.0.1:$port/launchml_test"
