#!/usr/bin/env bash
# profile.sh: where the CPU time of an acknowledged record goes (issue 14). Standalone streamd on
# CPU 0 (one event loop), wrk (1 thread, 50 connections, the bench workload of run_bench.sh) on
# CPU 1; perf samples streamd's threads (DWARF call graphs: libc has no frame pointers) during a DURATION_S run while
# its CPU ticks and wrk's requests give the CPU per record. Prints the microseconds of a record per
# thread and, within the event loop and the slice writers, per step (user and kernel time
# together: a step is a function and everything it calls), as in docs/BENCHMARKS.md.
# Needs perf (linux-perf). Usage: bench/profile.sh BUILD/streamd [DURATION_S]
set -euo pipefail
BIN=$(readlink -f "$1"); DUR=${2:-${BENCH_SECONDS:-10}}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_workdir profile

start_streamd data 0
URL=$(python3 "$HERE/sources.py" "$(ready_url "$WORK/data.ready" api)" "$TOKEN" bench)
# warm-up: the sink's first slice and files exist, buffers are grown
BODY=$WORK/body_1k.json taskset -c 1 wrk -t1 -c50 -d2s -s "$HERE/post.lua" "$URL" >/dev/null 2>&1

perf record -F 499 --call-graph dwarf,16384 -o "$WORK/perf.data" -p "$SPID" -- sleep "$DUR" >/dev/null 2>&1 &
PERF=$!
c0=$(cpu_ticks "$SPID")
RES=$(BODY=$WORK/body_1k.json taskset -c 1 wrk -t1 -c50 -d"${DUR}s" -s "$HERE/post.lua" "$URL" 2>&1 | grep '^RESULT')
c1=$(cpu_ticks "$SPID")
wait "$PERF" || true
REQS=$(wrk_field "$RES" requests)
US=$(awk -v a="$c0" -v b="$c1" -v k="$TCK" -v n="$REQS" 'BEGIN{ printf "%.2f", (b-a)/k*1e6/n }')
echo "# profile $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo none), ${DUR}s, req/s=$(wrk_field "$RES" rps), streamd cpu_us_per_record=$US"

perf report -i "$WORK/perf.data" --no-children --sort comm -q -g none 2>/dev/null > "$WORK/threads.txt"
perf report -i "$WORK/perf.data" --children --sort comm,sym -q -g none 2>/dev/null > "$WORK/steps.txt"
python3 - "$US" "$WORK/threads.txt" "$WORK/steps.txt" <<'PY'
import re, sys
us = float(sys.argv[1])
threads = {}
for line in open(sys.argv[2]):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
    if m:
        threads[m.group(2)] = float(m.group(1))
children = {}
for line in open(sys.argv[3]):
    m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+(\S+)\s+\[.\]\s+(\S+)", line)
    if m:
        key = (m.group(2), m.group(3))
        children[key] = max(children.get(key, 0.0), float(m.group(1)))
# the steps of a thread: (label, the function whose children they are); the rest is "other"
STEPS = {
    "sd-source": [("send the answers (writev; the loopback delivers them to the client in it)", "__GI___writev"),
                  ("read the requests (read)", "__GI___libc_read"),
                  ("wait for events (epoll_wait, the switches to the writer threads)", "epoll_wait"),
                  ("map the record to CSV rows (JSON parse, columns)", "sd__map_rows"),
                  ("append the rows to the slice (slot lock, copy)", "sd_storage_append")],
    "streamd": [("fdatasync of the batch", "__GI_fdatasync"),
                ("compress the batch (ISA-L)", "sd_gzip_compress"),
                ("write the batch (pwrite)", "__libc_pwrite64")],
}
OTHER = {"sd-source": "other (HTTP parsing and answers, routing, sync messages, allocations)",
         "streamd": "other (taking batches, sync callbacks, waiting for work)"}
NAMES = {"sd-source": "event loop (sd-source)", "streamd": "slice writer threads",
         "sd-operator": "operator (sd-operator: rotation, upload, import)"}
print("%-78s %6s" % ("thread / step", "us"))
for comm, pct in sorted(threads.items(), key=lambda kv: -kv[1]):
    if pct < 0.5:
        continue
    print("%-78s %6.2f" % (NAMES.get(comm, comm), us * pct / 100))
    done = 0.0
    for label, fn in STEPS.get(comm, []):
        p = children.get((comm, fn), 0.0)
        done += p
        print("  %-76s %6.2f" % (label, us * p / 100))
    if comm in STEPS:
        print("  %-76s %6.2f" % (OTHER[comm], us * max(pct - done, 0.0) / 100))
rest = sum(p for c, p in threads.items() if p < 0.5)
print("%-78s %6.2f" % ("other threads", us * rest / 100))
PY
