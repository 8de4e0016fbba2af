#!/usr/bin/env bash
# pg_cluster.sh: a throwaway PostgreSQL 15 cluster for the tests, run as the postgres user on
# its own loopback port and directory under /tmp.
#   pg_cluster.sh start        -> prints "<dir> <port>" (socket and data under <dir>)
#   pg_cluster.sh restart <dir> -> fast shutdown and start again on the same port
#   pg_cluster.sh stop <dir>   -> stops the server by the PID in its postmaster.pid, removes <dir>
# Fails (exit 1, reason on stderr) when the server cannot start: callers must not skip.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/streamd-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if ! as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; echo "pg_cluster: initdb failed" >&2; exit 1
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
      start >/dev/null 2>&1; then
    cat "$dir/server.log" >&2; echo "pg_cluster: the server did not start" >&2; exit 1
  fi
  echo "$dir $port"
  ;;
restart)
  dir=${2:?usage: pg_cluster.sh restart <dir>}
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >/dev/null
  ;;
stop)
  dir=${2:?usage: pg_cluster.sh stop <dir>}
  case "$dir" in /tmp/streamd-pg.*) ;; *) echo "pg_cluster: not a cluster dir: $dir" >&2; exit 2 ;; esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -n1 "$dir/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start | restart <dir> | stop <dir>" >&2; exit 2 ;;
esac
