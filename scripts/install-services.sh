#!/usr/bin/env bash
# Installs what ispflow needs on a Debian bookworm machine, only where it is missing:
# PostgreSQL 15, Redis, the TimescaleDB extension (built from Debian's source package with
# the Apache-only licence when no TimescaleDB is available) and, with --test, the third-party
# NetFlow exporters and collectors the test suite talks to. Safe to run again: every step
# checks first and does nothing when its work is already done.
set -euo pipefail

want_test_tools=no
[ "${1:-}" = "--test" ] && want_test_tools=yes

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "ispflow setup: $*" >&2; }

apt_updated=no
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated = no ]; then
        $SUDO apt-get update -qq
        apt_updated=yes
    fi
    say "installing ${missing[*]}"
    # Daemons in these packages must not be started by dpkg: we start what we need ourselves.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

psql_admin() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -c "psql -X -q -t -A -v ON_ERROR_STOP=1 -c \"$1\"" 2>/dev/null || psql -X -q -t -A -h 127.0.0.1 -U postgres -c "$1"
    else
        psql -X -q -t -A -h 127.0.0.1 -U postgres -c "$1"
    fi
}

postgres_running() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

start_postgres() {
    $SUDO pg_ctlcluster --skip-systemctl-redirect $PG_VERSION main start 2>/dev/null \
        || $SUDO pg_ctlcluster $PG_VERSION main start
    for _ in $(seq 30); do postgres_running && return 0; sleep 1; done
    say "PostgreSQL did not start; see /var/log/postgresql/"; exit 1
}

restart_postgres() {
    $SUDO pg_ctlcluster --skip-systemctl-redirect $PG_VERSION main restart 2>/dev/null \
        || $SUDO pg_ctlcluster $PG_VERSION main restart
    for _ in $(seq 30); do postgres_running && return 0; sleep 1; done
    say "PostgreSQL did not come back after restart; see /var/log/postgresql/"; exit 1
}

ensure_postgres() {
    if ! command -v pg_isready >/dev/null || ! postgres_running; then
        apt_install postgresql-$PG_VERSION postgresql-client-$PG_VERSION
        postgres_running || start_postgres
    fi
    # Local trust auth over TCP, as our machines have it; a fresh Debian install uses
    # peer/scram, so open 127.0.0.1 to local users the way the README describes.
    local hba
    hba=$(psql_admin "show hba_file")
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        say "allowing trusted connections from 127.0.0.1 in $hba"
        $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        psql_admin "select pg_reload_conf()" >/dev/null
    fi
}

debian_mirror() {
    # The mirror this machine already uses for bookworm, so the trixie source entry goes
    # to the same place.
    local uri
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hE '^deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
    echo "$uri"
}

build_timescaledb() {
    say "TimescaleDB is not available: building the Apache-licensed extension from Debian's source package"
    apt_install postgresql-server-dev-$PG_VERSION cmake gcc make dpkg-dev libssl-dev libkrb5-dev
    local list=/etc/apt/sources.list.d/ispflow-timescaledb-src.list
    if [ ! -f $list ]; then
        echo "deb-src $(debian_mirror) trixie main" | $SUDO tee $list >/dev/null
        $SUDO apt-get update -qq
    fi
    local work
    work=$(mktemp -d)
    (
        cd "$work"
        apt-get source -qq --download-only timescaledb >/dev/null 2>&1 || apt-get source --download-only timescaledb
        dpkg-source -x --skip-patches ./*.dsc src >/dev/null 2>&1 || dpkg-source -x ./*.dsc src >/dev/null
        configure_timescaledb src
        cd src/build
        make -j"$(nproc)" >/dev/null
        $SUDO make install >/dev/null
    )
    rm -rf "$work"
}

configure_timescaledb() {
    # A source package is no git checkout: without Git, TimescaleDB's build skips the commit
    # stamp instead of printing "fatal: not a git repository" on every make run.
    (
        cd "$1"
        ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
            -DLINTER=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Git=ON -DPG_CONFIG=$PG_BIN/pg_config >/dev/null
    )
}

ensure_timescaledb() {
    local available
    available=$(psql_admin "select count(*) from pg_available_extensions where name = 'timescaledb'")
    [ "$available" = 1 ] || build_timescaledb
    local preload
    preload=$(psql_admin "show shared_preload_libraries")
    if [[ "$preload" != *timescaledb* ]]; then
        say "adding timescaledb to shared_preload_libraries and restarting PostgreSQL"
        local value="timescaledb"
        [ -n "$preload" ] && value="$preload,timescaledb"
        psql_admin "alter system set shared_preload_libraries = '$value'" >/dev/null
        psql_admin "alter system set timescaledb.telemetry_level = 'off'" >/dev/null 2>&1 || true
        restart_postgres
    fi
}

ensure_redis() {
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    command -v redis-server >/dev/null || apt_install redis-server
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ispflow.log
    for _ in $(seq 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0; sleep 0.5; done
    say "Redis did not start; see /var/log/redis/ispflow.log"; exit 1
}

ensure_test_tools() {
    # Real third-party NetFlow exporters and a reference collector for the collector tests.
    apt_install softflowd pmacct nfdump
    # systemd-analyze checks the units `ispflow install-units` writes (no running systemd needed).
    command -v systemd-analyze >/dev/null || apt_install systemd
}

# Sourced (by a test), the script only defines its functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

ensure_postgres
ensure_timescaledb
ensure_redis
[ $want_test_tools = yes ] && ensure_test_tools
exit 0
