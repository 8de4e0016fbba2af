#!/usr/bin/env bash
# etcd_server.sh: a throwaway single-member etcd for the tests, on its own free loopback ports
# and data directory under /tmp.
#   etcd_server.sh start          -> prints "<dir> <client-url>"
#   etcd_server.sh halt <dir>     -> stops the server, keeping its data (an outage)
#   etcd_server.sh resume <dir>   -> starts the halted server again on the same ports and data
#   etcd_server.sh stop <dir>     -> stops the server by the PID in <dir>/pid, removes <dir>
# Tuned for tests: 10 ms heartbeats (a 1 s lease stays 1 s: etcd's minimum lease TTL follows
# the election timeout), watch progress notifications every 500 ms, auth tokens that expire
# after 2 s idle and no fsync. Fails (exit 1, reason on stderr) when the server cannot
# start: callers must not skip.
set -euo pipefail

server_dir() {
  case "${1:-}" in /tmp/streamd-etcd.*) ;; *) echo "etcd_server: not a server dir: ${1:-}" >&2; exit 2 ;; esac
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_start() {
  local dir=$1 client peer
  client=$(cat "$dir/client_port")
  peer=$(cat "$dir/peer_port")
  etcd --name test --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "test=http://127.0.0.1:$peer" --heartbeat-interval 10 --election-timeout 50 \
    --experimental-watch-progress-notify-interval 500ms --auth-token-ttl 2 \
    --unsafe-no-fsync --logger zap --log-level error >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 200); do
    if curl -sf -m 1 -X POST -d '{}' "http://127.0.0.1:$client/v3/maintenance/status" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
    sleep 0.05
  done
  cat "$dir/server.log" >&2
  echo "etcd_server: the server did not start" >&2
  server_halt "$dir"
  exit 1
}

server_halt() {
  local pid
  [ -f "$1/pid" ] || return 0
  pid=$(cat "$1/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1/pid"
}

case "${1:-}" in
start)
  command -v etcd >/dev/null || { echo "etcd_server: etcd is not installed (scripts/install-deps.sh test)" >&2; exit 1; }
  dir=$(mktemp -d /tmp/streamd-etcd.XXXXXX)
  free_port >"$dir/client_port"
  free_port >"$dir/peer_port"
  server_start "$dir"
  echo "$dir http://127.0.0.1:$(cat "$dir/client_port")"
  ;;
halt) server_dir "${2:-}"; server_halt "$2" ;;
resume) server_dir "${2:-}"; server_start "$2" ;;
stop) server_dir "${2:-}"; server_halt "$2"; rm -rf "$2" ;;
*) echo "usage: $0 start | halt <dir> | resume <dir> | stop <dir>" >&2; exit 2 ;;
esac
