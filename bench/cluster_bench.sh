#!/usr/bin/env bash
# cluster_bench.sh: the cluster figure of `make bench` (issue 13). In one run, the same workload
# (the bench source and sink of run_bench.sh: 1 KiB JSON bodies, uuid, datetime, ip, body,
# headers and two path columns, sync.mode=disk, wait=true) against standalone streamd and then
# against a loopback cluster: etcd (one member), an api node, a coordinator, two writer nodes
# (storage-writer storage-reader) and two source-only nodes (http-source), local staging in one
# shared directory and SQLite tables in one shared directory. Load: two wrk processes (1 thread,
# 25 connections each), one per source node (both on the one URL for standalone). Every streamd
# process runs on CPU 0, wrk and etcd on CPU 1. Prints acknowledged records (2xx), req/s, the CPU
# ticks of every streamd process summed (etcd's apart) per acknowledged record, and the ratio
# cluster/standalone against the target 1.5.
# Usage: bench/cluster_bench.sh BUILD/streamd [DURATION_S]
set -euo pipefail
BIN=$(readlink -f "$1"); DUR=${2:-${BENCH_SECONDS:-10}}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
mkdir -p "${BENCH_DIR:-$HERE/../build}"
WORK=$(mktemp -d "${BENCH_DIR:-$HERE/../build}/cluster-bench.XXXXXX")
TCK=$(getconf CLK_TCK)
ETCD_SERVER=$HERE/../tests/etcd/etcd_server.sh
TOKEN=bench-admin-token-0123456789
TARGET=1.5
PIDS=()
ETCD_DIR=
cleanup() {
  local rc=$? log
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  [ -z "$ETCD_DIR" ] || "$ETCD_SERVER" stop "$ETCD_DIR" || true
  if [ "$rc" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -e "$log" ] || continue
      echo "--- last lines of $(basename "$log")" >&2; tail -n 20 "$log" >&2
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# forget PID: a process that has been waited for leaves PIDS (its number may be reused).
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

make_body "$WORK/body_1k.json"

# start_node NAME ARG...: a streamd process on CPU 0 (start_streamd); ARG are further options and
# the roles. Sets NODE_PID.
start_node() {
  local name=$1
  shift
  start_streamd "$name" 0 "$@"
  NODE_PID=$SPID
}

# wait_routed URL: until a record posted with ?verbose=true reports the bench sink.
wait_routed() {
  local out
  for _ in $(seq 400); do
    out=$(curl -s -m 2 -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/body_1k.json" \
      "$1?verbose=true" || true)
    echo "$out" | grep -q '"sinkId": *"bench"' && return 0
    sleep 0.05
  done
  echo "cluster_bench: $1 never routed the bench sink; last answer: $out" >&2
  return 1
}

# measure URL1 URL2 PID...: one wrk (1 thread, 25 connections, CPU 1) per URL for DUR seconds at
# once; sets M_RPS, M_ACKED (2xx), M_NON2XX, M_ERRORS (socket errors and timeouts) and M_TICKS
# (CPU ticks of each PID over the run, in the order given).
measure() {
  local urls=("$1" "$2") pids=("${@:3}") before=() wrks=() i res
  for p in "${pids[@]}"; do before+=("$(cpu_ticks "$p")"); done
  for i in 0 1; do
    BODY=$WORK/body_1k.json timeout $((DUR + 30)) taskset -c 1 wrk -t1 -c25 -d"${DUR}s" --timeout 10s \
      -s "$HERE/post.lua" "${urls[$i]}" >"$WORK/wrk$i.out" 2>&1 &
    wrks+=($!)
    PIDS+=($!)
  done
  for i in 0 1; do
    wait "${wrks[$i]}" || { cat "$WORK/wrk$i.out" >&2; return 1; }
    forget "${wrks[$i]}"
  done
  M_TICKS=()
  for i in "${!pids[@]}"; do M_TICKS+=($(($(cpu_ticks "${pids[$i]}") - before[i]))); done
  M_RPS=0 M_ACKED=0 M_NON2XX=0 M_ERRORS=0
  for i in 0 1; do
    res=$(grep '^RESULT' "$WORK/wrk$i.out")
    M_RPS=$((M_RPS + $(wrk_field "$res" rps)))
    M_ACKED=$((M_ACKED + $(wrk_field "$res" requests) - $(wrk_field "$res" non2xx3xx)))
    M_NON2XX=$((M_NON2XX + $(wrk_field "$res" non2xx3xx)))
    M_ERRORS=$((M_ERRORS + $(wrk_field "$res" err_connect) + $(wrk_field "$res" err_read) \
      + $(wrk_field "$res" err_write) + $(wrk_field "$res" err_timeout)))
  done
}

# us_per_record TICKS RECORDS
us_per_record() { awk -v t="$1" -v k="$TCK" -v n="$2" 'BEGIN{ if (n > 0) printf "%.1f", t/k*1e6/n; else print "nan" }'; }
sum() { local s=0 v; for v in "$@"; do s=$((s + v)); done; echo "$s"; }
# line LABEL TICKS: one result line of the last measure
line() {
  printf '%-18s req/s=%-7s acked=%-8s non2xx=%-5s errors=%-5s cpu_ticks=%-6s cpu_us_per_record=%s\n' \
    "$1" "$M_RPS" "$M_ACKED" "$M_NON2XX" "$M_ERRORS" "$2" "$(us_per_record "$2" "$M_ACKED")"
}

echo "# cluster bench $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo none), ${DUR}s per run, 1 KiB JSON, 2 x wrk -t1 -c25 on CPU 1, streamd processes on CPU 0, etcd on CPU 1"

# Standalone: every role in one process, its own data dir (staging and tables inside).
start_node standalone
SPID=$NODE_PID
URL=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/standalone.ready" api)" "$TOKEN" bench)
measure "$URL" "$URL" "$SPID"
S_TICKS=${M_TICKS[0]} S_ACKED=$M_ACKED
line standalone "$S_TICKS"
kill "$SPID"; wait "$SPID" || true; forget "$SPID"

# The cluster.
read -r ETCD_DIR ETCD_URL <<<"$("$ETCD_SERVER" start 1)"
ETCD_PID=$(cat "$ETCD_DIR/m0/pid")
taskset -a -pc 1 "$ETCD_PID" >/dev/null
COMMON=(--set "etcd.endpoint=$ETCD_URL" --set hostname=127.0.0.1
  --set staging.backend=local --set "staging.local.path=$WORK/staging"
  --set tables.backend=sqlite --set "tables.sqlite.path=$WORK/tables")
NAMES=(writer-1 writer-2 coordinator source-1 source-2 api)
declare -A PID_OF
for n in writer-1 writer-2; do
  start_node $n "${COMMON[@]}" --set nodeID=$n --set storage.level.local.writer.network.listen=127.0.0.1:0 \
    storage-writer storage-reader
  PID_OF[$n]=$NODE_PID
done
start_node coordinator "${COMMON[@]}" --set nodeID=coordinator storage-coordinator
PID_OF[coordinator]=$NODE_PID
for n in source-1 source-2; do
  start_node $n "${COMMON[@]}" --set nodeID=$n http-source
  PID_OF[$n]=$NODE_PID
done
SRC1=$(ready_url "$WORK/source-1.ready" source)
SRC2=$(ready_url "$WORK/source-2.ready" source)
start_node api "${COMMON[@]}" --set nodeID=api --set "source.http.publicUrl=$SRC1" api
PID_OF[api]=$NODE_PID
URL1=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/api.ready" api)" "$TOKEN" bench)
URL2=$SRC2${URL1#"$SRC1"}
wait_routed "$URL1"
wait_routed "$URL2"
CPIDS=()
for n in "${NAMES[@]}"; do CPIDS+=("${PID_OF[$n]}"); done
measure "$URL1" "$URL2" "${CPIDS[@]}" "$ETCD_PID"
C_TICKS=$(sum "${M_TICKS[@]:0:${#NAMES[@]}}") C_ACKED=$M_ACKED
line cluster "$C_TICKS"
BY_NODE=""
for i in "${!NAMES[@]}"; do BY_NODE+="${NAMES[$i]}=$(us_per_record "${M_TICKS[$i]}" "$C_ACKED") "; done
echo "cluster by process cpu_us_per_record ${BY_NODE}etcd_not_in_sum=$(us_per_record "${M_TICKS[-1]}" "$C_ACKED") (${M_TICKS[-1]} ticks)"

RATIO=$(awk -v c="$C_TICKS" -v ca="$C_ACKED" -v s="$S_TICKS" -v sa="$S_ACKED" \
  'BEGIN{ if (ca > 0 && sa > 0 && s > 0) printf "%.2f", (c/ca)/(s/sa); else print "nan" }')
VERDICT=$(awk -v r="$RATIO" -v t="$TARGET" 'BEGIN{ print (r != "nan" && r + 0 <= t + 0) ? "PASS" : "FAIL" }')
echo "ratio cpu_per_record cluster/standalone = $RATIO (target <= $TARGET) $VERDICT"
