#!/usr/bin/env bash
# import_bench.sh: ingestion while tables are being loaded (issue 14, figure 3b). One standalone
# streamd (CPU 0; SQLite tables and local staging, the defaults) with the service's minimum
# upload and import intervals at 1s, and two sources of the bench sink (bench/sources.py):
# "benchidle", whose triggers keep every slice on the local disk during a run, and "benchimp",
# which uploads every second and imports every upload. The plain and pipelined wrk runs of
# run_bench.sh go to each, alternately (without, then with imports); after a run with imports
# the script waits until every acknowledged record of the run is in the SQLite table and prints
# the "whole way" CPU: streamd's CPU from the start of the run until then, per record, against
# the CPU per record of the run without imports (ingestion alone). Each mode runs BENCH_PAIRS
# (default 3) such pairs; a ratio is judged by its median over the pairs, next to which the
# pairs' own ratios are printed: on a shared machine one 10 s run can be 20-40 % off.
# Usage: bench/import_bench.sh BUILD/streamd [DURATION_S]   (run_bench.sh calls it)
set -euo pipefail
BIN=$(readlink -f "$1"); DUR=${2:-${BENCH_SECONDS:-10}}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_workdir ibench

start_streamd data 0 \
  --set storage.level.staging.upload.minInterval=1s --set storage.level.target.import.minInterval=1s
URLS=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/data.ready" api)" "$TOKEN" benchidle benchimp)
IDLE_URL=$(echo "$URLS" | sed -n 1p); IMP_URL=$(echo "$URLS" | sed -n 2p)
DB=$WORK/data/tables/project-1.sqlite

# Rows in the imports' table (0 before its first import).
table_rows() {
  python3 - "$DB" <<'PY'
import sqlite3, sys
try:
    db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
    print(db.execute('SELECT count(*) FROM "in.c-bench.imp"').fetchone()[0])
except sqlite3.OperationalError:
    print(0)
PY
}

# Imported files so far (the operator logs one line per import).
imports() { grep -c 'imported into in.c-bench.imp' "$WORK/data.log" || true; }

# A run against the imports' sink: SCRIPT -> the run_wrk fields, then the whole way's CPU per
# record (µs), the seconds from the end of the run until the last record was in the table, and
# the files imported meanwhile.
run_imports() {
  local script=$1 rows0 c0 imp0 res reqs non2xx want t1 rows c1 t2
  rows0=$(table_rows); imp0=$(imports); c0=$(cpu_ticks "$SPID")
  res=$(run_wrk streamd "$IMP_URL" "$SPID" 50 "$script")
  t1=$(date +%s.%N)
  read -r _ _ _ _ _ non2xx reqs <<<"$res"
  want=$((rows0 + reqs - non2xx))
  for _ in $(seq 1200); do
    rows=$(table_rows)
    [ "$rows" -ge "$want" ] && break
    sleep 0.1
  done
  c1=$(cpu_ticks "$SPID"); t2=$(date +%s.%N)
  [ "$rows" -ge "$want" ] || { echo "import_bench: $((want - rows)) acknowledged records never reached the table" >&2; exit 1; }
  awk -v r="$res" -v a="$c0" -v b="$c1" -v k="$TCK" -v n="$((rows - rows0))" -v t1="$t1" -v t2="$t2" -v i="$(($(imports) - imp0))" \
    'BEGIN{ printf "%s %.1f %.1f %d", r, (b-a)/k*1e6/n, t2-t1, i }'
}

declare -A R
for mode in plain pipelined; do
  script=post.lua; [ $mode = pipelined ] && script=post_pipeline.lua
  for i in $(seq "$PAIRS"); do
    R[idle_${mode}_$i]=$(run_wrk streamd "$IDLE_URL" "$SPID" 50 $script)
    R[imp_${mode}_$i]=$(run_imports $script)
  done
done

echo "# imports every second: the same streamd, sink without uploads vs. sink uploading and importing every second, ${DUR}s per run, $PAIRS alternated pairs per mode; the ratios are the medians of the pairs' ratios"
for mode in plain pipelined; do
  rps_r=(); p99_r=(); way_r=()
  for i in $(seq "$PAIRS"); do
    read -r rps p50 p99 cpu _ non2xx _ <<<"${R[idle_${mode}_$i]}"
    printf '%-24s req/s=%-7s p50_us=%-6s p99_us=%-6s cpu_us_per_req=%-6s non2xx=%s\n' "streamd_$mode" "$rps" "$p50" "$p99" "$cpu" "$non2xx"
    read -r irps ip50 ip99 icpu _ inon2xx _ iway idrain iimports <<<"${R[imp_${mode}_$i]}"
    printf '%-24s req/s=%-7s p50_us=%-6s p99_us=%-6s cpu_us_per_req=%-6s non2xx=%s whole_way_cpu_us_per_record=%s drain_s=%s imports=%s\n' \
      "streamd_imports_$mode" "$irps" "$ip50" "$ip99" "$icpu" "$inon2xx" "$iway" "$idrain" "$iimports"
    rps_r+=("$(ratio "$irps" "$rps")"); p99_r+=("$(ratio "$ip99" "$p99")"); way_r+=("$(ratio "$iway" "$cpu")")
  done
  # wrk's latency histogram is not per request when pipelining (its percentiles read 0 there)
  p99r="p99 = $(median "${p99_r[@]}") (${p99_r[*]}; target <= 2.0)"; [ $mode = plain ] || p99r="p99 n/a (pipelined)"
  echo "ratio $mode with/without imports: req/s = $(median "${rps_r[@]}") (${rps_r[*]}; target >= 0.8), $p99r, whole-way cpu per record / ingestion alone = $(median "${way_r[@]}") (${way_r[*]}; target <= 1.5)"
done
