#!/usr/bin/env bash
# Runs every libFuzzer target of a -DSD_FUZZ=ON build for SECONDS each, two at a time, on a
# scratch copy of its corpus (new inputs are not committed; crashes are kept in build dir), with
# tests/fuzz/dict/<target>.dict as its dictionary when there is one.
# Usage: tests/fuzz/run_fuzz.sh BUILD_DIR [SECONDS]
set -euo pipefail
BUILD=$1; SECS=${2:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
status=0
run_one() {
  local bin=$1 name target work
  name=$(basename "$bin"); target=${name#fuzz_}
  work=$BUILD/fuzz-work/$target; mkdir -p "$work/corpus" "$work/artifacts"
  cp -n "$HERE/corpus/$target/"* "$work/corpus/" 2>/dev/null || true
  local dict=()
  [ -f "$HERE/dict/$target.dict" ] && dict=(-dict="$HERE/dict/$target.dict")
  if "$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=5 -print_final_stats=1 \
       "${dict[@]}" -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
    echo "fuzz $target: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | awk '{print $2}') execs)"
  else
    echo "fuzz $target: FAILED, see $work/log and $work/artifacts"; return 1
  fi
}
pids=()
for bin in "$BUILD"/fuzz_*; do
  [ -x "$bin" ] || continue
  run_one "$bin" & pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
