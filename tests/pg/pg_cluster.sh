#!/usr/bin/env bash
# pg_cluster.sh: a throwaway PostgreSQL 15 cluster for the tests, run as the postgres user on
# its own loopback port and directory under /tmp.
#   pg_cluster.sh start          -> prints "<dir> <port>" (socket and data under <dir>)
#   pg_cluster.sh halt <dir>     -> fast shutdown, keeping the data (an outage)
#   pg_cluster.sh resume <dir>   -> starts the halted server again on the same port
#   pg_cluster.sh restart <dir>  -> halt, then resume
#   pg_cluster.sh stop <dir>     -> stops the server by the PID in its postmaster.pid, removes <dir>
# Fails (exit 1, reason on stderr) when the server cannot start: callers must not skip.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cluster_dir() {
  case "${1:-}" in /tmp/streamd-pg.*) ;; *) echo "pg_cluster: not a cluster dir: ${1:-}" >&2; exit 2 ;; esac
}

# Starts the server of dir on the port recorded in dir/port.
server_start() {
  local dir=$1 port
  port=$(cat "$dir/port")
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
      start >/dev/null 2>&1; then
    cat "$dir/server.log" >&2; echo "pg_cluster: the server did not start" >&2; exit 1
  fi
}

server_halt() {
  as_pg "$bin/pg_ctl" -D "$1/data" -w -t 60 -m fast stop >/dev/null
}

case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/streamd-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$dir/port"
  if ! as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; echo "pg_cluster: initdb failed" >&2; exit 1
  fi
  server_start "$dir"
  echo "$dir $(cat "$dir/port")"
  ;;
halt) cluster_dir "${2:-}"; server_halt "$2" ;;
resume) cluster_dir "${2:-}"; server_start "$2" ;;
restart) cluster_dir "${2:-}"; server_halt "$2"; server_start "$2" ;;
stop)
  dir=${2:-}
  cluster_dir "$dir"
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -n1 "$dir/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start | halt <dir> | resume <dir> | restart <dir> | stop <dir>" >&2; exit 2 ;;
esac
