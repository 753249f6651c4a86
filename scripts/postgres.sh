#!/usr/bin/env bash
# A throwaway PostgreSQL server, for the tests and for trying --storage postgresql://... :
#
#   scripts/postgres.sh install     # Debian's postgresql package, if missing (sudo when not root)
#   scripts/postgres.sh start DIR   # a new server in DIR; prints its URL,
#                                   #   postgresql://nas@/nas?host=DIR
#   scripts/postgres.sh stop DIR    # stops it; then rm -rf DIR
#
# The server keeps its data in DIR/data, listens on a Unix socket in DIR only (no TCP port to
# collide with), trusts local connections and skips fsync: for tests, not for keeping a study.
# DIR's path must be short (a socket path has a 107-byte limit) and, when run as root, reachable
# by the postgres user: PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user the package creates (DIR is handed to it). A real server for workers on several
# machines is set up as usual; see the README.
set -euo pipefail
usage="usage: $0 install | start DIR | stop DIR"
command=${1:?$usage}

server_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install() {
  [ -n "$(server_bin)" ] && return 0
  local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL is not installed and apt-get is missing: install PostgreSQL's server" >&2
    return 1
  fi
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      postgresql; } >&2 || { echo "could not install Debian's postgresql package" >&2; return 1; }
}

as_owner() {  # run as the server's owner: ourselves, or the postgres user when we are root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $command in
  install)
    install ;;
  start)
    dir=${2:?$usage}
    install
    bin=$(server_bin)
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" --pgdata="$dir/data" --username=nas --auth=trust --encoding=UTF8 \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait \
      --options="-k $dir -c listen_addresses= -c fsync=off" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/createdb" --host="$dir" --username=nas nas
    echo "postgresql://nas@/nas?host=$dir" ;;
  stop)
    dir=${2:?$usage}
    as_owner "$(server_bin)/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null ;;
  *)
    echo "$usage" >&2; exit 2 ;;
esac
