#!/usr/bin/env bash
# cluster-demo.sh: the cluster equivalent of `make run`, on loopback. Starts etcd, PostgreSQL,
# s3rver (with a bucket), one api node, one coordinator node and two data nodes, prints their
# URLs, the admin token and a curl example, then waits. Ctrl-C / SIGTERM stops everything it
# started, by PID, in reverse order. See docs/CLUSTER.md.
#   DEMO_DIR     work dir (default ./cluster-demo; recreated on each start)
#   STREAMD_BIN  the binary (default build/streamd)
#   STREAM_ADMIN_TOKEN  the admin token (default: a random one)
# etcd and PostgreSQL come from tests/etcd/etcd_server.sh and tests/pg/pg_cluster.sh (their
# data is under /tmp and removed on exit); s3rver from tests/.node (scripts/install-deps.sh test).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${STREAMD_BIN:-$root/build/streamd}
dir=${DEMO_DIR:-./cluster-demo}
s3rver=$root/tests/.node/node_modules/.bin/s3rver
etcd_sh=$root/tests/etcd/etcd_server.sh
pg_sh=$root/tests/pg/pg_cluster.sh
bucket=streamd-demo
token=${STREAM_ADMIN_TOKEN:-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}

die() { echo "cluster-demo: $*" >&2; exit 1; }
[ -x "$bin" ] || die "no streamd binary at $bin (run make)"
[ -x "$s3rver" ] || die "s3rver is not installed (scripts/install-deps.sh test)"

# A previous demo's dir (marked) is cleared: its slices belong to an etcd that no longer exists.
if [ -e "$dir" ]; then
  [ -f "$dir/.cluster-demo" ] || [ -z "$(ls -A "$dir")" ] || die "$dir exists and is not a demo dir"
  rm -rf "$dir"
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
touch "$dir/.cluster-demo"

etcd_dir="" pg_dir="" s3_pid=""
node_names=() node_pids=()

# Stops what was started, in reverse order; safe to run twice.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - INT TERM EXIT
  local i
  echo "cluster-demo: stopping" >&2
  for ((i = ${#node_pids[@]} - 1; i >= 0; i--)); do stop_pid "${node_pids[i]}"; done
  [ -z "$s3_pid" ] || stop_pid "$s3_pid"
  [ -z "$pg_dir" ] || "$pg_sh" stop "$pg_dir" || true
  [ -z "$etcd_dir" ] || "$etcd_sh" stop "$etcd_dir" || true
  echo "cluster-demo: stopped" >&2
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

ready_url() { # <ready file> <listener>
  /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# Everything runs in its own session (setsid execs in place: $! stays the server's PID), so a
# Ctrl-C reaches only this script, which then stops the servers in order.
read -r etcd_dir etcd_url < <(setsid -w "$etcd_sh" start) || die "etcd did not start"
[ -n "${etcd_url:-}" ] || die "etcd did not start"
read -r pg_dir pg_port < <(setsid -w "$pg_sh" start) || die "PostgreSQL did not start"
[ -n "${pg_port:-}" ] || die "PostgreSQL did not start"
pg_url="postgresql://postgres@127.0.0.1:$pg_port/postgres"

mkdir -p "$dir/s3rver"
NODE_OPTIONS=--openssl-legacy-provider setsid "$s3rver" -d "$dir/s3rver" -a 127.0.0.1 -p 0 \
  --configure-bucket "$bucket" >"$dir/s3rver.log" 2>&1 &
s3_pid=$!
for _ in $(seq 1 200); do
  grep -q "listening on" "$dir/s3rver.log" && break
  kill -0 "$s3_pid" 2>/dev/null || { cat "$dir/s3rver.log" >&2; die "s3rver did not start"; }
  sleep 0.1
done
s3_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/s3rver.log" | head -n1)
[ -n "$s3_port" ] || die "s3rver did not start"

# Every node: the shared etcd, S3 staging and PostgreSQL tables. The intervals are lowered so
# that records show up in PostgreSQL within seconds (production keeps the defaults).
common=(--set etcd.endpoint="$etcd_url" --set hostname=127.0.0.1
  --set api.listen=127.0.0.1:0 --set source.http.listen=127.0.0.1:0 --set metrics.listen=127.0.0.1:0
  --set staging.backend=s3 --set staging.s3.endpoint="http://127.0.0.1:$s3_port"
  --set staging.s3.bucket="$bucket" --set staging.s3.prefix=staged --set staging.s3.forcePathStyle=true
  --set staging.s3.accessKeyId=S3RVER --set staging.s3.secretAccessKey=S3RVER
  --set tables.backend=postgres --set tables.postgres.url="$pg_url"
  --set storage.level.local.writer.allocation.enabled=false
  --set storage.level.staging.upload.minInterval=1s --set storage.level.staging.upload.trigger.count=1
  --set storage.level.target.import.minInterval=1s --set storage.level.target.import.trigger.count=1)

# start_node <nodeID> [--set ...] ROLE...: starts it and waits for its ready file.
start_node() {
  local id=$1 pid
  shift
  STREAM_ADMIN_TOKEN=$token setsid "$bin" --data-dir "$dir/$id" --ready-file "$dir/$id.ready" \
    "${common[@]}" --set nodeID="$id" "$@" >"$dir/$id.log" 2>&1 &
  pid=$!
  node_names+=("$id")
  node_pids+=("$pid")
  for _ in $(seq 1 600); do
    [ -f "$dir/$id.ready" ] && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$dir/$id.log" >&2; die "$id exited"; }
    sleep 0.1
  done
  tail -n 20 "$dir/$id.log" >&2
  die "$id did not get ready"
}

start_node coordinator-1 storage-coordinator
start_node data-1 http-source storage-writer storage-reader
start_node data-2 http-source storage-writer storage-reader
data1=$(ready_url "$dir/data-1.ready" source)
data2=$(ready_url "$dir/data-2.ready" source)
# Clients post to source.http.publicUrl (in production a load balancer over the data nodes).
start_node api-1 --set source.http.publicUrl="$data1" api
api=$(ready_url "$dir/api-1.ready" api)

cat <<EOF
streamd cluster demo (work dir $dir)
  api          $api   (node api-1)
  data node 1  $data1   (node data-1)
  data node 2  $data2   (node data-2)
  metrics      $(for n in "${node_names[@]}"; do printf '%s=%s ' "$n" "$(ready_url "$dir/$n.ready" metrics)"; done)
  etcd         $etcd_url   (data in $etcd_dir)
  PostgreSQL   $pg_url   (data in $pg_dir)
  S3 (s3rver)  http://127.0.0.1:$s3_port  bucket $bucket
  admin token  $token
  logs         $dir/<node>.log
Try:
  T=$token
  curl -s -H "X-StorageApi-Token: \$T" -d '{"sourceId":"s1","name":"s1","type":"http"}' $api/v1/branches/default/sources
  curl -s -H "X-StorageApi-Token: \$T" -d '{"sinkId":"k1","name":"k1","type":"table","table":{"type":"keboola","tableId":"in.c-demo.events","mapping":{"columns":[{"type":"uuid","name":"id"},{"type":"body","name":"body"}]}}}' $api/v1/branches/default/sources/s1/sinks
  URL=\$(curl -s -H "X-StorageApi-Token: \$T" $api/v1/branches/default/sources/s1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["http"]["url"])')
  curl -s -d '{"hello":"data-1"}' "\$URL"                  # through data node 1
  curl -s -d '{"hello":"data-2"}' "$data2\${URL#$data1}"   # the same path on data node 2
  psql "$pg_url" -c 'SELECT * FROM "in.c-demo"."events"'
Ctrl-C stops everything.
READY
EOF

# Wait for a signal (the traps stop everything) or for a node to exit on its own.
set +e
wait -n "${node_pids[@]}"
rc=$?
for i in "${!node_pids[@]}"; do
  kill -0 "${node_pids[i]}" 2>/dev/null || echo "cluster-demo: ${node_names[i]} exited (rc $rc), see $dir/${node_names[i]}.log" >&2
done
exit 1
