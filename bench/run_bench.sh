#!/usr/bin/env bash
# make bench: wrk (1 thread on CPU 1) against standalone streamd (CPU 0) and against nginx
# `return 204` (1 worker, CPU 0) in the same run. Workload per BENCHMARKS.md: one source, one
# sink with uuid, datetime, ip, body, headers and two path columns, 1 KiB JSON bodies, durable
# acknowledgement (sync.mode=disk, wait=true); a second source whose sink has one template
# column (Body('a') + ":" + Body('c.f.g')) instead of the two path columns; and a one-thread
# micro-benchmark of template evaluations; and the import of one CSV into SQLite against the
# sqlite3 CLI's .import and into PostgreSQL against psql's \copy; then, with nginx and streamd
# stopped, the same runs with imports every second (bench/import_bench.sh), the cluster figure
# (bench/cluster_bench.sh) and the scaling figure (bench/scaling_bench.sh). Prints one line per
# figure and the ratios.
# Usage: bench/run_bench.sh BUILD/streamd [DURATION_S]
set -euo pipefail
BIN=$(readlink -f "$1"); DUR=${2:-${BENCH_SECONDS:-10}}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "${BENCH_DIR:-$HERE/../build}"
WORK=$(mktemp -d "${BENCH_DIR:-$HERE/../build}/bench.XXXXXX")
TCK=$(getconf CLK_TCK)
PIDS=()
PG_CLUSTER=$HERE/../tests/pg/pg_cluster.sh
PGDIR=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  [ -z "$PGDIR" ] || "$PG_CLUSTER" stop "$PGDIR" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
make_body "$WORK/body_1k.json"

# Template micro-benchmark (one thread, the binary's hidden `template bench` mode): the typical
# template and a 10-field object template over the same 1 KiB body; the body is parsed once per
# record and shared with path columns, so evals_per_s excludes the parse and records_per_s
# includes it.
printf '%s' "Body('a') + \":\" + Body('c.f.g')" > "$WORK/typical.jsonnet"
cat > "$WORK/object10.jsonnet" <<'JSONNET'
{
  a: Body('a'),
  d: Body('c.d'),
  g: Body('c.f.g'),
  ip: Ip(),
  now: Now(),
  ct: Header('Content-Type'),
  len: std.length(BodyStr()),
  ag: Body('a') + ':' + Body('c.f.g'),
  up: std.asciiUpper(Body('c.d')),
  h: Body('c.f.h', '') != '',
}
JSONNET
TPL_ITER=${BENCH_TEMPLATE_ITERATIONS:-1000000}
TPL_TYPICAL=$(taskset -c 0 "$BIN" template bench --iterations "$TPL_ITER" --body "$WORK/body_1k.json" "$WORK/typical.jsonnet")
TPL_OBJECT=$(taskset -c 0 "$BIN" template bench --iterations $((TPL_ITER / 4)) --body "$WORK/body_1k.json" "$WORK/object10.jsonnet")

# Table import (one thread, CPU 0): one CSV of IMPORT_ROWS rows shaped like the bench sink's
# (uuid, datetime, ip, body, headers, a, g; every field quoted, as streamd stages them) imported
# by bench_import (sd_tables_import into the "sqlite" backend: one transaction, WAL,
# synchronous=FULL) and by the sqlite3 CLI's `.import --csv` into the same table in a database
# set up the same way; once without a key and once with c1 (the uuid) as the primary key.
IMPORT_ROWS=${BENCH_IMPORT_ROWS:-200000}
python3 - "$WORK/import.csv" "$IMPORT_ROWS" <<'PY'
import csv, random, sys, uuid
rnd = random.Random(1)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for i in range(int(sys.argv[2])):
        body = '{"a":%d,"c":{"d":"e","f":{"g":"abcdefghij","h":"%s"}}}' % (i, "x" * 200)
        w.writerow([str(uuid.UUID(int=rnd.getrandbits(128))), "2026-12-06T02:00:00.%03dZ" % (i % 1000),
                    "127.0.0.1", body, '{"Content-Type":"application/json"}', str(i), "abcdefghij"])
PY
IMPORT_BIN=$(dirname "$BIN")/bench_import
# sqlite3 CLI run: NAME KEY_CLAUSE -> rows/s
cli_import() {
  local db=$WORK/cli-$1.sqlite t0 t1
  t0=$(date +%s.%N)
  taskset -c 0 sqlite3 "$db" "PRAGMA journal_mode=WAL;" "PRAGMA synchronous=FULL;" \
    "CREATE TABLE t (c1 TEXT, c2 TEXT, c3 TEXT, c4 TEXT, c5 TEXT, c6 TEXT, c7 TEXT$2);" \
    ".import --csv $WORK/import.csv t" >/dev/null
  t1=$(date +%s.%N)
  [ "$(sqlite3 "$db" 'SELECT count(*) FROM t')" = "$IMPORT_ROWS" ] || { echo "sqlite3 .import lost rows" >&2; exit 1; }
  awk -v n="$IMPORT_ROWS" -v a="$t0" -v b="$t1" 'BEGIN{ printf "%.0f", n / (b - a) }'
}
# bench_import run: BACKEND LOCATION TABLE [PKCOLUMN] -> rows/s
sd_import() {
  taskset -c 0 "$IMPORT_BIN" "$1" "$2" "$3" "$WORK/import.csv" 7 ${4:-} | sed -n 's/.*rows_per_s=\([0-9]*\).*/\1/p'
}
IMP_SD=$(sd_import sqlite "$WORK/imp-plain" in.c-bench.import)
IMP_CLI=$(cli_import plain "")
IMP_SD_PK=$(sd_import sqlite "$WORK/imp-pk" in.c-bench.import 1)
IMP_CLI_PK=$(cli_import pk ", PRIMARY KEY (c1)")
rm -rf "$WORK"/imp-* "$WORK"/cli-*

# The same CSV into PostgreSQL 15 (a throwaway cluster of tests/pg/pg_cluster.sh on loopback,
# fsync=off like the tests' one): bench_import into the "postgres" backend (COPY FROM STDIN in
# one transaction with the ledger row; with a key, COPY into a temporary stage and one upsert)
# against psql's `\copy ... (FORMAT csv)` into the same table definition; each into a fresh
# table, once without a key and once with c1 as the primary key.
read -r PGDIR PGPORT <<<"$("$PG_CLUSTER" start)"
PGURL="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
pg_sql() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$PGURL" -c "$1"; }
# psql \copy run: NAME KEY_CLAUSE -> rows/s
psql_copy() {
  local t0 t1
  pg_sql "CREATE TABLE cli.$1 (c1 TEXT, c2 TEXT, c3 TEXT, c4 TEXT, c5 TEXT, c6 TEXT, c7 TEXT$2)"
  t0=$(date +%s.%N)
  pg_sql "\copy cli.$1 FROM '$WORK/import.csv' (FORMAT csv)"
  t1=$(date +%s.%N)
  [ "$(pg_sql "SELECT count(*) FROM cli.$1")" = "$IMPORT_ROWS" ] || { echo "psql \\copy lost rows" >&2; exit 1; }
  awk -v n="$IMPORT_ROWS" -v a="$t0" -v b="$t1" 'BEGIN{ printf "%.0f", n / (b - a) }'
}
pg_sql "CREATE SCHEMA cli"
PG_SD=$(sd_import postgres "$PGURL" in.c-bench.plain)
PG_CLI=$(psql_copy plain "")
PG_SD_PK=$(sd_import postgres "$PGURL" in.c-bench.keyed 1)
PG_CLI_PK=$(psql_copy keyed ", PRIMARY KEY (c1)")
for t in plain keyed; do
  [ "$(pg_sql "SELECT count(*) FROM \"in.c-bench\".\"$t\"")" = "$IMPORT_ROWS" ] || { echo "the postgres backend lost rows" >&2; exit 1; }
done
"$PG_CLUSTER" stop "$PGDIR"; PGDIR=
rm -rf "$WORK/import.csv" "$WORK"/imp-* "$WORK"/cli-*
# The imports above leave some 300 MB of dirty pages: written back during the wrk runs, they
# would slow the slice syncs of whichever run they fall in.
sync

# nginx
NPORT=$(free_port); mkdir -p "$WORK/nginx"
sed -e "s#@PREFIX@#$WORK/nginx#g" -e "s#@PORT@#$NPORT#g" "$HERE/nginx.conf.in" > "$WORK/nginx/nginx.conf"
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr" &
NGINX_MASTER=$!; PIDS+=("$NGINX_MASTER")
for _ in $(seq 100); do [ -s "$WORK/nginx/nginx.pid" ] && break; sleep 0.05; done
sleep 0.3
NGINX_WORKER=$(cat /proc/"$NGINX_MASTER"/task/*/children | awk '{print $1}')

# streamd standalone on the real disk
TOKEN=bench-admin-token-0123456789
start_streamd data 0
URL=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/data.ready" api)" "$TOKEN" bench benchtpl)
TURL=$(echo "$URL" | sed -n 2p); URL=$(echo "$URL" | sed -n 1p)

echo "# make bench $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo none), ${DUR}s per run, 1 KiB JSON, wrk -t1 on CPU 1, servers on CPU 0"
declare -A R
# The template sink runs between two runs of the path sink and is compared with their mean:
# the operator's background imports of earlier runs' slices load CPU 0 more as the bench goes
# on, so a later run is slower whatever it maps.
for mode in plain pipelined; do
  script=post.lua; [ $mode = pipelined ] && script=post_pipeline.lua
  R[nginx_$mode]=$(run_wrk nginx "http://127.0.0.1:$NPORT/" "$NGINX_WORKER" 50 $script)
  R[streamd_$mode]=$(run_wrk streamd "$URL" "$SPID" 50 $script)
  R[streamd_tpl_$mode]=$(run_wrk streamd "$TURL" "$SPID" 50 $script)
  R[streamd_path2_$mode]=$(run_wrk streamd "$URL" "$SPID" 50 $script)
done
R[streamd_200]=$(run_wrk streamd "$URL" "$SPID" 200 post.lua)
R[nginx_200]=$(run_wrk nginx "http://127.0.0.1:$NPORT/" "$NGINX_WORKER" 200 post.lua)

for k in nginx_plain streamd_plain streamd_tpl_plain streamd_path2_plain nginx_pipelined streamd_pipelined \
  streamd_tpl_pipelined streamd_path2_pipelined nginx_200 streamd_200; do
  read -r rps p50 p99 cpu rss non2xx _ <<<"${R[$k]}"
  printf '%-18s req/s=%-7s p50_us=%-6s p99_us=%-6s cpu_us_per_req=%-6s rss_kB=%-7s non2xx=%s\n' "$k" "$rps" "$p50" "$p99" "$cpu" "$rss" "$non2xx"
done
read -r n_rps n_p50 n_p99 n_cpu _ _ _ <<<"${R[nginx_plain]}"
read -r s_rps s_p50 s_p99 s_cpu _ s_non _ <<<"${R[streamd_plain]}"
read -r np_rps _ _ np_cpu _ _ _ <<<"${R[nginx_pipelined]}"
read -r sp_rps _ _ sp_cpu _ _ _ <<<"${R[streamd_pipelined]}"
read -r _ _ _ _ s200_rss _ _ <<<"${R[streamd_200]}"
echo "ratio cpu_per_record streamd/nginx = $(ratio "$s_cpu" "$n_cpu") (target <= 2.0)"
echo "ratio req/s plain streamd/nginx = $(ratio "$s_rps" "$n_rps") (target >= 0.5)"
echo "ratio req/s pipelined streamd/nginx = $(ratio "$sp_rps" "$np_rps") (target >= 0.5)"
echo "p99 plain streamd - nginx = $(( (s_p99 - n_p99) / 1000 )) ms (target <= 5 ms)"
echo "rss at 200 conns streamd = $((s200_rss / 1024)) MiB (target <= 64 MiB)"
read -r t_rps _ _ t_cpu _ t_non _ <<<"${R[streamd_tpl_plain]}"
read -r tp_rps _ _ _ _ _ _ <<<"${R[streamd_tpl_pipelined]}"
read -r s2_rps _ _ s2_cpu _ _ _ <<<"${R[streamd_path2_plain]}"
read -r sp2_rps _ _ _ _ _ _ <<<"${R[streamd_path2_pipelined]}"
mean() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.1f", (a + b) / 2 }'; }
echo "sqlite import rows/s streamd=$IMP_SD sqlite3_cli=$IMP_CLI; with primary key streamd=$IMP_SD_PK sqlite3_cli=$IMP_CLI_PK ($IMPORT_ROWS rows)"
echo "ratio import rows/s streamd/sqlite3 .import = $(ratio "$IMP_SD" "$IMP_CLI") (target >= 1.0), with primary key = $(ratio "$IMP_SD_PK" "$IMP_CLI_PK")"
echo "postgres import rows/s streamd=$PG_SD psql_copy=$PG_CLI; with primary key streamd=$PG_SD_PK psql_copy=$PG_CLI_PK ($IMPORT_ROWS rows)"
echo "ratio import rows/s streamd/psql \\copy = $(ratio "$PG_SD" "$PG_CLI") (target >= 0.8), with primary key = $(ratio "$PG_SD_PK" "$PG_CLI_PK")"
echo "template typical: $TPL_TYPICAL"
echo "template object10: $TPL_OBJECT"
echo "jsonnet evals/s typical = $(echo "$TPL_TYPICAL" | sed -n 's/.*evals_per_s=\([0-9]*\).*/\1/p') (target >= 500000 per core)"
echo "ratio req/s plain template/path = $(ratio "$t_rps" "$(mean "$s_rps" "$s2_rps")") (target >= 0.5)"
echo "ratio req/s pipelined template/path = $(ratio "$tp_rps" "$(mean "$sp_rps" "$sp2_rps")") (target >= 0.5)"
echo "cpu_us_per_req template - path = $(awk -v a="$t_cpu" -v b="$(mean "$s_cpu" "$s2_cpu")" 'BEGIN{printf "%.1f", a-b}')"

# The imports-every-second and cluster figures, with nothing of the runs above left running
# (this streamd's background imports would load CPU 0).
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
PIDS=()
"$HERE/import_bench.sh" "$BIN" "$DUR"
"$HERE/cluster_bench.sh" "$BIN" "$DUR"
# The scaling figure: 1, 2, ... loops against nginx with as many workers (BENCH_CORES).
"$HERE/scaling_bench.sh" "$BIN" "$DUR"
