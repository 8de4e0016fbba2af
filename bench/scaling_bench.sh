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
# 2 loop run shares CPU 1 with wrk: its req/s says nothing about scaling there, and its CPU per
# record carries what the sharing adds (nginx's own ratio shows it). So such a machine also runs
# 2 loops (2 nginx workers) on CPU 0 with wrk alone on CPU 1 at the 1 loop run's 50 connections:
# only the number of loops differs, and the CPU per record target is judged there.
# The runs repeat in BENCH_PAIRS (default 3) rounds; each ratio is the median of the rounds'
# ratios (each round's printed beside it), as one 10 s run on a shared machine can be 20 % off.
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

# scale_wrk URL WRK_CPUS THREADS CONNS PID...: wrk for DUR seconds; prints "rps cpu_us_per_req
# requests non2xx" (CPU of the PIDs).
scale_wrk() {
  local url=$1 cpus=$2 threads=$3 conns=$4 c0 c1 out res reqs
  shift 4
  c0=$(ticks "$@")
  out=$(BODY=$WORK/body_1k.json timeout $((DUR + 30)) taskset -c "$cpus" wrk -t"$threads" -c"$conns" \
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

# scale_run KEY L SERVER_CPUS WRK_CPUS THREADS CONNS: nginx with L workers, then streamd with L
# loops, each pinned to SERVER_CPUS, under wrk; prints the run's line and keeps its req/s and CPU
# per request in RPS, CPU and NCPU under KEY.
declare -A RPS CPU NCPU
scale_run() {
  local key=$1 l=$2 srv=$3 wcpus=$4 threads=$5 conns=$6 port master spid url murl before after share
  local n_rps n_cpu s_rps s_cpu s_non
  port=$(free_port); mkdir -p "$WORK/nginx$key"
  sed -e "s#@PREFIX@#$WORK/nginx$key#g" -e "s#@PORT@#$port#g" -e "s#^worker_processes 1;#worker_processes $l;#" \
    "$HERE/nginx.conf.in" > "$WORK/nginx$key/nginx.conf"
  taskset -c "$srv" nginx -c "$WORK/nginx$key/nginx.conf" -p "$WORK/nginx$key" 2>"$WORK/nginx$key/stderr" &
  master=$!; PIDS+=("$master")
  for _ in $(seq 100); do [ -s "$WORK/nginx$key/nginx.pid" ] && break; sleep 0.05; done
  sleep 0.3
  # shellcheck disable=SC2046
  read -r n_rps n_cpu _ _ <<<"$(scale_wrk "http://127.0.0.1:$port/" "$wcpus" "$threads" "$conns" \
    $(cat /proc/"$master"/task/*/children))"
  kill "$master"; wait "$master" 2>/dev/null || true

  start_streamd "data$key" "$srv" --set source.http.loops="$l"
  spid=$SPID
  url=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/data$key.ready" api)" "$TOKEN" bench)
  murl=$(ready_url "$WORK/data$key.ready" metrics)
  before=$(loop_requests "$murl")
  read -r s_rps s_cpu _ s_non <<<"$(scale_wrk "$url" "$wcpus" "$threads" "$conns" "$spid")"
  after=$(loop_requests "$murl")
  share=$(join <(echo "$before" | sort) <(echo "$after" | sort) | awk -v n="$l" '
    { d[$1] = $3 - $2; t += $3 - $2 } END {
      if (length(d) < n || t == 0) { print "0.0"; exit }
      m = 1; for (k in d) if (d[k] / t < m) m = d[k] / t; printf "%.1f", m * 100 }')
  kill "$spid"; wait "$spid" 2>/dev/null || true
  RPS[$key]=$s_rps; CPU[$key]=$s_cpu; NCPU[$key]=$n_cpu
  printf 'scaling loops=%-2s cpus=%-4s wrk_cpus=%-4s conns=%-4s nginx req/s=%-7s cpu_us_per_req=%-5s | streamd req/s=%-7s cpu_us_per_req=%-5s non2xx=%s smallest_loop_share=%s%%\n' \
    "$l" "$srv" "$wcpus" "$conns" "$n_rps" "$n_cpu" "$s_rps" "$s_cpu" "$s_non" "$share"
}

echo "# scaling $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo none), ${DUR}s per run, BENCH_CORES=$CORES, loops ${LOOPS[*]}, $PAIRS rounds; the ratios are the medians of the rounds' ratios"
# When the last loop count shares a CPU with wrk (2 CPUs), each round also runs 2 loops (2 nginx
# workers) on CPU 0 with wrk on its own CPU, at the 1 loop run's 50 connections, right after the
# 1 loop run: only the number of loops differs from that run.
ONE_CPU=
[ "$CORES" -ne 2 ] || ONE_CPU=2cpu0
for r in $(seq "$PAIRS"); do
  for l in "${LOOPS[@]}"; do
    read -r wcpus threads <<<"$(wrk_cpus "$l")"
    scale_run "$l.$r" "$l" "0-$((l - 1))" "$wcpus" "$threads" $((50 * l))
    if [ -n "$ONE_CPU" ] && [ "$l" -eq 1 ]; then scale_run "$ONE_CPU.$r" 2 0 1 1 50; fi
  done
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

# round_ratios ARRAY A B: the rounds' ratios of ARRAY[A.r] to ARRAY[B.r], space-separated.
round_ratios() {
  local -n arr=$1
  local r out=()
  for r in $(seq "$PAIRS"); do out+=("$(ratio "${arr[$2.$r]}" "${arr[$3.$r]}")"); done
  echo "${out[*]}"
}
# doubling_line A B: "req/s = M (rounds), cpu_per_record = M (rounds)" of A loops against B, and
# nginx's own CPU ratio.
doubling_line() {
  local rps cpu ncpu
  read -r -a rps <<<"$(round_ratios RPS "$1" "$2")"
  read -r -a cpu <<<"$(round_ratios CPU "$1" "$2")"
  read -r -a ncpu <<<"$(round_ratios NCPU "$1" "$2")"
  echo "req/s = $(median "${rps[@]}") (${rps[*]}), cpu_per_record = $(median "${cpu[@]}") (${cpu[*]}) (nginx's own: $(median "${ncpu[@]}")"
}
prev=
for l in "${LOOPS[@]}"; do
  if [ -n "$prev" ]; then
    if [ -n "$ONE_CPU" ]; then
      echo "scaling ratio streamd $l/$prev loops sharing CPU 1 with wrk: $(doubling_line "$l" "$prev"); what sharing a CPU with wrk adds, no target)"
    else
      echo "scaling ratio streamd $l/$prev loops: $(doubling_line "$l" "$prev")) (targets: req/s >= 1.7 with wrk on its own CPUs, cpu_per_record <= 1.10)"
    fi
  fi
  prev=$l
done
if [ -n "$ONE_CPU" ]; then
  echo "scaling ratio streamd 2/1 loops on CPU 0, wrk on its own CPU: $(doubling_line "$ONE_CPU" 1); req/s no target) (target: cpu_per_record <= 1.10)"
  echo "scaling note: 2 CPUs: no room for a second loop and wrk on separate CPUs, so the loop cost is measured with both loops on CPU 0, and the 2 loop run on CPUs 0-1 shares CPU 1 with wrk (its req/s cannot double); run with BENCH_CORES=16 on a bigger machine for the curve"
fi
