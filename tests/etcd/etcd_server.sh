#!/usr/bin/env bash
# etcd_server.sh: a throwaway etcd for the tests (one member, or a cluster of N members), on its
# own free loopback ports and data directories under /tmp.
#   etcd_server.sh start [N]             -> prints "<dir> <client-urls>" (comma separated, N >= 1)
#   etcd_server.sh halt <dir>            -> stops every member, keeping its data (an outage)
#   etcd_server.sh resume <dir>          -> starts the halted members again (same ports, data)
#   etcd_server.sh kill-leader <dir>     -> kill -9 of the current leader; prints its member name
#   etcd_server.sh restart <dir> <name>  -> starts a killed or halted member again
#   etcd_server.sh stop <dir>            -> stops every member by its pid file, removes <dir>
# Tuned for tests: short heartbeats (a 1 s lease stays 1 s: etcd's minimum lease TTL follows the
# election timeout; a cluster gets a longer election timeout so that a loaded machine does not
# elect all the time), watch progress notifications every 500 ms, auth tokens that expire after
# 2 s idle and no fsync. Fails (exit 1, reason on stderr) when a member cannot start: callers
# must not skip.
set -euo pipefail

server_dir() {
  case "${1:-}" in /tmp/streamd-etcd.*) ;; *) echo "etcd_server: not a server dir: ${1:-}" >&2; exit 2 ;; esac
}

member_dir() {
  case "${2:-}" in m[0-9]*) [ -d "$1/$2" ] && return 0 ;; esac
  echo "etcd_server: no member ${2:-} in $1" >&2
  exit 2
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

members() { (cd "$1" && ls -d m[0-9]*); }

client_url() { echo "http://127.0.0.1:$(cat "$1/$2/client_port")"; }

# Launches one member in the background (its initial cluster lists every member of the dir;
# a member with data ignores it and rejoins).
member_launch() {
  local dir=$1 name=$2 m=$1/$2 cluster="" other heartbeat=10 election=50
  for other in $(members "$dir"); do
    cluster="$cluster${cluster:+,}$other=http://127.0.0.1:$(cat "$dir/$other/peer_port")"
  done
  if [ "$(members "$dir" | wc -l)" -gt 1 ]; then heartbeat=25 election=300; fi
  etcd --name "$name" --data-dir "$m/data" \
    --listen-client-urls "$(client_url "$dir" "$name")" \
    --advertise-client-urls "$(client_url "$dir" "$name")" \
    --listen-peer-urls "http://127.0.0.1:$(cat "$m/peer_port")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(cat "$m/peer_port")" \
    --initial-cluster "$cluster" --initial-cluster-token "$(basename "$dir")" \
    --heartbeat-interval "$heartbeat" --election-timeout "$election" \
    --experimental-watch-progress-notify-interval 500ms --auth-token-ttl 2 \
    --unsafe-no-fsync --logger zap --log-level error >>"$m/server.log" 2>&1 &
  echo $! >"$m/pid"
}

# Waits until the member answers with a leader (the cluster has quorum).
member_wait() {
  local m=$1/$2 out
  for _ in $(seq 1 400); do
    out=$(curl -sf -m 1 -X POST -d '{}' "$(client_url "$1" "$2")/v3/maintenance/status" \
      2>/dev/null || true)
    case "$out" in *'"leader"'*) return 0 ;; esac
    if ! kill -0 "$(cat "$m/pid")" 2>/dev/null; then break; fi
    sleep 0.05
  done
  cat "$m/server.log" >&2
  echo "etcd_server: member $2 did not start" >&2
  return 1
}

# Starts the given members together (a cluster needs a quorum before any of them answers).
members_start() {
  local dir=$1 name other
  shift
  for name in "$@"; do member_launch "$dir" "$name"; done
  for name in "$@"; do
    member_wait "$dir" "$name" || { for other in "$@"; do member_halt "$dir/$other"; done; exit 1; }
  done
}

member_halt() {
  local pid
  [ -f "$1/pid" ] || return 0
  pid=$(cat "$1/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1/pid"
}

# The running member whose id is the leader its status reports.
leader() {
  local name out
  for name in $(members "$1"); do
    [ -f "$1/$name/pid" ] || continue
    out=$(curl -sf -m 2 -X POST -d '{}' "$(client_url "$1" "$name")/v3/maintenance/status" \
      2>/dev/null) || continue
    if /usr/bin/python3 -c 'import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s.get("leader") and s["leader"] == s["header"]["member_id"] else 1)' "$out"; then
      echo "$name"
      return 0
    fi
  done
  echo "etcd_server: no member is the leader" >&2
  return 1
}

case "${1:-}" in
start)
  command -v etcd >/dev/null || { echo "etcd_server: etcd is not installed (scripts/install-deps.sh test)" >&2; exit 1; }
  n=${2:-1}
  case "$n" in [1-9]) ;; *) echo "etcd_server: members must be 1..9: $n" >&2; exit 2 ;; esac
  dir=$(mktemp -d /tmp/streamd-etcd.XXXXXX)
  for i in $(seq 0 $((n - 1))); do
    mkdir "$dir/m$i"
    free_port >"$dir/m$i/client_port"
    free_port >"$dir/m$i/peer_port"
  done
  mapfile -t names < <(members "$dir")
  members_start "$dir" "${names[@]}"
  urls=""
  for name in $(members "$dir"); do urls="$urls${urls:+,}$(client_url "$dir" "$name")"; done
  echo "$dir $urls"
  ;;
halt) server_dir "${2:-}"; for name in $(members "$2"); do member_halt "$2/$name"; done ;;
resume)
  server_dir "${2:-}"
  mapfile -t names < <(members "$2")
  members_start "$2" "${names[@]}"
  ;;
kill-leader)
  server_dir "${2:-}"
  name=$(leader "$2")
  kill -KILL "$(cat "$2/$name/pid")"
  while kill -0 "$(cat "$2/$name/pid")" 2>/dev/null; do sleep 0.02; done
  rm -f "$2/$name/pid"
  echo "$name"
  ;;
restart) server_dir "${2:-}"; member_dir "$2" "${3:-}"; member_halt "$2/$3"; members_start "$2" "$3" ;;
stop) server_dir "${2:-}"; for name in $(members "$2"); do member_halt "$2/$name"; done; rm -rf "$2" ;;
*)
  echo "usage: $0 start [N] | halt <dir> | resume <dir> | kill-leader <dir>" \
    "| restart <dir> <member> | stop <dir>" >&2
  exit 2
  ;;
esac
