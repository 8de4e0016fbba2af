#!/usr/bin/env bash
# scaling_bench.sh: the scaling figure of `make bench` (issue 14). streamd with 1, 2, 4, ... event
# loops (source.http.loops) against nginx with as many workers, in the same run, on the bench
# workload of run_bench.sh (1 KiB JSON, the bench sink, durable acknowledgement). Each server is
# pinned to CPUs 0..L-1 (L = loops or workers); wrk runs on the CPUs after them with one thread
# each, 50 connections per loop. Reports req/s, the server's CPU per request, and for streamd the
# smallest share of requests one loop served (streamd_http_loop_requests_total); then, per
# doubling of loops, the req/s ratio (target >= 1.7 from 1 to 8 loops) and the CPU per record
# ratio (target within 10 %; next to it nginx's own ratio, which shows what sharing the CPUs
# with wrk adds on a small machine); and the RSS at 200 connections with the default number of
# loops (target <= 64 MiB).
#
# BENCH_CORES (default: the CPUs of this machine) is how many CPUs the run may use; loops double
# while the server and wrk each get their own CPUs, up to 8 (BENCH_CORES=16 runs 1, 2, 4, 8 loops
# on CPUs 0-7 and wrk on the 8 after them). With 2 CPUs only the 1 and 2 loop runs fit, and the
# 2 loop run shares CPU 1 with wrk: its req/s says nothing about scaling there, only the loop
# shares and the CPU per record do.
# Usage: bench/scaling_bench.sh BUILD/streamd [DURATION_S]
set -euo pipefail
BIN=$(readlink -f "$1"); DUR=${2:-${BENCH_SECONDS:-10}}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
CORES=${BENCH_CORES:-$(nproc)}
bench_workdir scaling-bench

# The loop counts: doubling from 1 while server and wrk fit on separate CPUs, at most 8; on a
# machine with fewer than 4 CPUs, 1 and 2 (wrk then shares the last CPU).
LOOPS=(1)
while [ $((LOOPS[-1] * 2)) -le 8 ] && [ $((LOOPS[-1] * 4)) -le "$CORES" ]; do LOOPS+=($((LOOPS[-1] * 2))); done
[ "$CORES" -ge 4 ] || LOOPS=(1 2)

# wrk_cpus L: the CPUs wrk runs on next to a server on CPUs 0..L-1, and its thread count.
wrk_cpus() {
  if [ "$1" -lt "$CORES" ]; then echo "$1-$((CORES - 1)) $((CORES - $1 < $1 ? CORES - $1 : $1))"
  else echo "$((CORES - 1)) 1"; fi
}

# ticks PID...: the CPU ticks of the processes together.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }

# scale_wrk URL L PID...: wrk for DUR seconds at 50 x L connections; prints "rps cpu_us_per_req
# requests non2xx" (CPU of the PIDs).
scale_wrk() {
  local url=$1 l=$2 cpus threads c0 c1 out res reqs
  shift 2
  read -r cpus threads <<<"$(wrk_cpus "$l")"
  c0=$(ticks "$@")
  out=$(BODY=$WORK/body_1k.json timeout $((DUR + 30)) taskset -c "$cpus" wrk -t"$threads" -c$((50 * l)) \
    -d"${DUR}s" --timeout 10s -s "$HERE/post.lua" "$url" 2>&1)
  c1=$(ticks "$@")
  res=$(echo "$out" | grep '^RESULT')
  reqs=$(wrk_field "$res" requests)
  echo "$(wrk_field "$res" rps) $(awk -v a="$c0" -v b="$c1" -v k="$TCK" -v n="$reqs" \
    'BEGIN{ if (n > 0) printf "%.1f", (b-a)/k*1e6/n; else print "nan" }') $reqs $(wrk_field "$res" non2xx3xx)"
}

# loop_requests METRICS_URL: the source loops' request counters, "loop=count" per line.
loop_requests() {
  curl -s "$1/metrics" | sed -n 's/^streamd_http_loop_requests_total{.*server="source".*loop="\([0-9]*\)".*} \([0-9]*\)$/\1 \2/p'
}

echo "# scaling $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo none), ${DUR}s per run, BENCH_CORES=$CORES, loops ${LOOPS[*]}"
declare -A RPS CPU NCPU
for l in "${LOOPS[@]}"; do
  last=$((l - 1))
  # nginx with l workers
  port=$(free_port); mkdir -p "$WORK/nginx$l"
  sed -e "s#@PREFIX@#$WORK/nginx$l#g" -e "s#@PORT@#$port#g" -e "s#^worker_processes 1;#worker_processes $l;#" \
    "$HERE/nginx.conf.in" > "$WORK/nginx$l/nginx.conf"
  taskset -c 0-$last nginx -c "$WORK/nginx$l/nginx.conf" -p "$WORK/nginx$l" 2>"$WORK/nginx$l/stderr" &
  master=$!; PIDS+=("$master")
  for _ in $(seq 100); do [ -s "$WORK/nginx$l/nginx.pid" ] && break; sleep 0.05; done
  sleep 0.3
  # shellcheck disable=SC2046
  read -r n_rps n_cpu _ _ <<<"$(scale_wrk "http://127.0.0.1:$port/" "$l" $(cat /proc/"$master"/task/*/children))"
  kill "$master"; wait "$master" 2>/dev/null || true

  # streamd with l loops
  start_streamd "data$l" "0-$last" --set source.http.loops="$l"
  spid=$SPID
  url=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/data$l.ready" api)" "$TOKEN" bench)
  murl=$(ready_url "$WORK/data$l.ready" metrics)
  before=$(loop_requests "$murl")
  read -r s_rps s_cpu _ s_non <<<"$(scale_wrk "$url" "$l" "$spid")"
  after=$(loop_requests "$murl")
  share=$(join <(echo "$before" | sort) <(echo "$after" | sort) | awk -v n="$l" '
    { d[$1] = $3 - $2; t += $3 - $2 } END {
      if (length(d) < n || t == 0) { print "0.0"; exit }
      m = 1; for (k in d) if (d[k] / t < m) m = d[k] / t; printf "%.1f", m * 100 }')
  kill "$spid"; wait "$spid" 2>/dev/null || true
  RPS[$l]=$s_rps; CPU[$l]=$s_cpu; NCPU[$l]=$n_cpu
  printf 'scaling loops=%-2s nginx req/s=%-7s cpu_us_per_req=%-5s | streamd req/s=%-7s cpu_us_per_req=%-5s non2xx=%s smallest_loop_share=%s%%\n' \
    "$l" "$n_rps" "$n_cpu" "$s_rps" "$s_cpu" "$s_non" "$share"
done
# RSS at 200 connections with the default number of loops (one per CPU, no pinning)
start_streamd data-default ""
spid=$SPID
url=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/data-default.ready" api)" "$TOKEN" bench)
loops=$(loop_requests "$(ready_url "$WORK/data-default.ready" metrics)" | wc -l)
BODY=$WORK/body_1k.json timeout $((DUR + 30)) taskset -c $((CORES - 1)) wrk -t1 -c200 -d"${DUR}s" --timeout 10s \
  -s "$HERE/post.lua" "$url" >/dev/null 2>&1
echo "scaling rss at 200 conns with the default $loops loops = $(($(rss_kb "$spid") / 1024)) MiB (target <= 64 MiB)"
kill "$spid"; wait "$spid" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "nan" }'; }
prev=
for l in "${LOOPS[@]}"; do
  if [ -n "$prev" ]; then
    echo "scaling ratio streamd $l/$prev loops: req/s = $(ratio "${RPS[$l]}" "${RPS[$prev]}") (target >= 1.7 with wrk on its own CPUs), cpu_per_record = $(ratio "${CPU[$l]}" "${CPU[$prev]}") (target <= 1.10; nginx's own $l/$prev workers: $(ratio "${NCPU[$l]}" "${NCPU[$prev]}"), what sharing the machine's CPUs with wrk adds)"
  fi
  prev=$l
done
[ "$CORES" -ge 4 ] || echo "scaling note: $CORES CPUs: the 2 loop run shares CPU $((CORES - 1)) with wrk, so its req/s cannot double; run with BENCH_CORES=16 on a bigger machine for the curve"
