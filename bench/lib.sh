# shellcheck shell=bash
# lib.sh: helpers shared by the bench scripts (sourced, not run): free loopback ports, a process's
# CPU ticks and RSS, ready files, the 1 KiB body, the fields of wrk's RESULT line (post.lua).

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
