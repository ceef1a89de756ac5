#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, benchmarks and the replicated demo.
#   hack/postgres.sh start DIR   initialises DIR, starts a server on a free loopback port, prints its URL
#   hack/postgres.sh stop DIR    stops that server and removes DIR
# Debian's PostgreSQL (hack/setup.sh installs it). As root, the server runs as the postgres user.
# Durability is traded for speed (fsync off): this server holds nothing worth keeping.
set -euo pipefail

command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: hack/postgres.sh start|stop DIR" >&2; exit 2; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgres.sh: PostgreSQL is not installed (run hack/setup.sh as root)" >&2; exit 1; }

as_server=()
if [ "$(id -u)" -eq 0 ]; then as_server=(runuser -u postgres --); fi
cd /

case $command in
start)
  mkdir -p "$dir"
  [ "$(id -u)" -ne 0 ] || chown postgres "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as_server[@]}" "$bin/initdb" --pgdata="$dir/data" --auth=trust --username=postgres --no-sync --encoding=UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # Every role is trusted on loopback, but one: the tests' wrong-password case needs a password.
  hba="$dir/data/pg_hba.conf"
  { echo "host all flotilla_password_test 127.0.0.1/32 scram-sha-256"; cat "$hba"; } > "$dir/pg_hba.conf.new"
  cat "$dir/pg_hba.conf.new" > "$hba" && rm "$dir/pg_hba.conf.new"
  options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
  "${as_server[@]}" "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait --options="$options" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  if [ -d "$dir/data" ]; then
    "${as_server[@]}" "$bin/pg_ctl" --pgdata="$dir/data" --mode=immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: hack/postgres.sh start|stop DIR" >&2; exit 2
  ;;
esac
