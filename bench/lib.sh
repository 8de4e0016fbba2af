# shellcheck shell=bash
# lib.sh: helpers shared by the bench scripts (sourced, not run): free loopback ports, a process's
# CPU ticks and RSS, ready files, the 1 KiB body, the fields of wrk's RESULT line (post.lua), a
# wrk run, starting streamd, the work directory, ratios and medians.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# utime + stime of every thread of a process, in clock ticks (getconf CLK_TCK per second)
cpu_ticks() { awk '{sub(/^.*\) /,""); print $12 + $13}' /proc/"$1"/stat; }
rss_kb() { awk '/^VmRSS/{print $2}' /proc/"$1"/status; }

# make_body FILE: a 1 KiB JSON body shaped like the reference's k6 payload.
make_body() {
  python3 - "$1" <<'PY'
import json, sys
body = {"a": 1, "c": {"d": "e", "f": {"g": "abcdefghij", "h": ""}}}
base = len(json.dumps(body, separators=(",", ":")))
body["c"]["f"]["h"] = "a" * (1024 - base)
open(sys.argv[1], "w").write(json.dumps(body, separators=(",", ":")))
PY
}

# ready_url FILE KEY: a URL of a ready file (api, source, metrics).
ready_url() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# wrk_field "RESULT ..." NAME: the number after NAME= in a RESULT line of post.lua.
wrk_field() { echo "$1" | sed -n "s/.*[ ]$2=\([0-9]*\).*/\1/p"; }

# ratio A B: A/B with two decimals ("nan" when B is not positive).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "nan" }'; }
# median X...: the median of the numbers ("nan" counts as the largest; the mean of the middle two
# when they are even in number).
median() {
  printf '%s\n' "$@" | sed -e '/^$/d' -e 's/^nan$/inf/' | sort -g | awk '{ v[NR] = $1 } END {
    a = v[int((NR + 1) / 2)]; b = v[int(NR / 2) + 1]
    if (NR == 0 || a == "inf" || b == "inf") printf "nan"; else printf "%.2f", (a + b) / 2 }'
}
# BENCH_PAIRS: how many times import_bench.sh and scaling_bench.sh repeat their alternated runs;
# the ratios they judge are the medians of the repetitions' ratios.
PAIRS=${BENCH_PAIRS:-3}

# wait_ready FILE PID: waits up to 20 s for a ready file; fails if the process exits first.
wait_ready() {
  for _ in $(seq 400); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: process $2 did not write $1" >&2
  return 1
}

# run_wrk LABEL URL PID CONNS SCRIPT -> "rps p50 p99 cpu_us_per_req rss_kb non2xx requests": wrk (1 thread
# on CPU 1) for $DUR seconds with $WORK/body_1k.json; the CPU is PID's over the run (CLK_TCK $TCK).
run_wrk() {
  local url=$2 pid=$3 conns=$4 script=$5 # LABEL ($1) names the server for the reader only
  local c0 c1 out res
  c0=$(cpu_ticks "$pid")
  out=$(BODY=$WORK/body_1k.json DEPTH=8 timeout $((DUR + 30)) taskset -c 1 wrk -t1 -c"$conns" -d"${DUR}s" --timeout 10s -s "$HERE/$script" "$url" 2>&1)
  c1=$(cpu_ticks "$pid")
  res=$(echo "$out" | grep '^RESULT')
  local rps p50 p99 reqs non2xx
  rps=$(wrk_field "$res" rps); p50=$(wrk_field "$res" p50_us); p99=$(wrk_field "$res" p99_us)
  reqs=$(wrk_field "$res" requests); non2xx=$(wrk_field "$res" non2xx3xx)
  local cpu_us
  cpu_us=$(awk -v a="$c0" -v b="$c1" -v k="$TCK" -v n="$reqs" 'BEGIN{ if (n > 0) printf "%.1f", (b-a)/k*1e6/n; else print "nan" }')
  echo "$rps $p50 $p99 $cpu_us $(rss_kb "$pid") $non2xx $reqs"
}

# start_streamd NAME CPUS [ARG...]: starts streamd ($BIN, admin token $TOKEN) pinned to CPUS
# ("" = unpinned), with its data in $WORK/NAME, its ready file $WORK/NAME.ready and its output in
# $WORK/NAME.log, every listener on a free loopback port, and ARG (options, roles); waits until it
# is ready. Sets SPID and adds it to PIDS.
start_streamd() {
  local name=$1 cpus=$2 pin=()
  shift 2
  [ -z "$cpus" ] || pin=(taskset -c "$cpus")
  STREAM_ADMIN_TOKEN=$TOKEN "${pin[@]}" "$BIN" --data-dir "$WORK/$name" --ready-file "$WORK/$name.ready" \
    --set api.listen=127.0.0.1:0 --set source.http.listen=127.0.0.1:0 --set metrics.listen=127.0.0.1:0 \
    "$@" >"$WORK/$name.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  wait_ready "$WORK/$name.ready" "$SPID"
}

# bench_workdir NAME: sets WORK (a new temporary directory under BENCH_DIR, default build/, with
# the 1 KiB body), TCK, TOKEN (the admin token to start streamd with) and PIDS (processes to
# stop); at exit the processes in PIDS are stopped and WORK is removed.
bench_workdir() {
  mkdir -p "${BENCH_DIR:-$HERE/../build}"
  WORK=$(mktemp -d "${BENCH_DIR:-$HERE/../build}/$1.XXXXXX")
  TCK=$(getconf CLK_TCK)
  TOKEN=bench-admin-token-0123456789
  PIDS=()
  trap bench_cleanup EXIT
  make_body "$WORK/body_1k.json"
}
bench_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  rm -rf "$WORK"
}
