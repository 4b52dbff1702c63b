# shellcheck shell=bash
# A throwaway PostgreSQL for the test suite.
#
#   source .ci/postgres.sh start   # installs the server if absent, starts it, exports
#                                  # CLOSEDLOOP_TEST_POSTGRES_URL
#   source .ci/postgres.sh stop    # stops it and removes its data directory
#
# It is sourced (not run) so that the URL reaches the caller's environment. The server
# listens on 127.0.0.1 only, on a free port, with trust authentication: it exists for
# one test run and holds nothing worth protecting. PostgreSQL refuses to run as root,
# so under root the server runs as the `postgres` system user.

_clpg_find_bin() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    # Debian/Ubuntu keep the server binaries off PATH.
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    return 1
}

_clpg_install() {
    echo "postgres.sh: installing PostgreSQL from the distribution's packages" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

_clpg_as_owner() {
    # Run a server command as the user that owns the data directory.
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

_clpg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_clpg_start() {
    local bin dir port
    bin=$(_clpg_find_bin) || { _clpg_install && bin=$(_clpg_find_bin); } || {
        echo "postgres.sh: no PostgreSQL server binaries and installation failed" >&2
        return 1
    }
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres || return 1
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/closedloop-pg.XXXXXX") || return 1
    chmod 700 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    port=$(_clpg_free_port) || return 1
    # C.UTF-8 sorts like C but classifies characters by Unicode, so pg_trgm finds
    # trigrams in Chinese text; plain C is the fallback where C.UTF-8 is missing.
    _clpg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        _clpg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            return 1
        }
    # The socket goes into the throwaway directory: /var/run/postgresql may not exist
    # or may not be writable on a fresh machine.
    _clpg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=200" start >&2 || {
        cat "$dir/server.log" >&2
        return 1
    }
    _clpg_as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres closedloop_test || return 1
    export CLOSEDLOOP_PG_DIR="$dir"
    export CLOSEDLOOP_PG_BIN="$bin"
    export CLOSEDLOOP_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/closedloop_test"
    echo "postgres.sh: PostgreSQL running at $CLOSEDLOOP_TEST_POSTGRES_URL" >&2
}

_clpg_stop() {
    local dir="${CLOSEDLOOP_PG_DIR:-}" bin="${CLOSEDLOOP_PG_BIN:-}"
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        echo "postgres.sh: nothing to stop (CLOSEDLOOP_PG_DIR is not set)" >&2
        return 0
    fi
    [ -n "$bin" ] || bin=$(_clpg_find_bin)
    _clpg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    rm -rf "$dir"
    unset CLOSEDLOOP_PG_DIR CLOSEDLOOP_PG_BIN CLOSEDLOOP_TEST_POSTGRES_URL
}

case "${1:-}" in
    start) _clpg_start ;;
    stop) _clpg_stop ;;
    *) echo "usage: source .ci/postgres.sh start|stop" >&2; false ;;
esac
