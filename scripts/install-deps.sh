#!/usr/bin/env bash
# install-deps.sh: the one list of Debian packages streamd needs, by purpose.
# Usage: scripts/install-deps.sh [run|test|bench|all]   (default: run)
# Installs only what is missing; needs root for that (otherwise it lists what is missing).
# The test list also installs s3rver (npm) into tests/.node, for the s3 staging tests.
set -euo pipefail

run_pkgs=(build-essential cmake pkg-config g++
  libh2o-evloop-dev libisal-dev libsimdjson-dev libjansson-dev libyaml-dev
  zlib1g-dev libzstd-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev libpq-dev)
test_pkgs=(libcmocka-dev python3 python3-pytest sqlite3 gzip clang libclang-rt-14-dev jsonnet
  iproute2 prometheus faketime postgresql python3-botocore etcd-server curl)
bench_pkgs=(wrk nginx-light procps util-linux sqlite3 postgresql etcd-server curl)

what=${1:-run}
case "$what" in
  run) pkgs=("${run_pkgs[@]}") ;;
  test) pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) pkgs=("${run_pkgs[@]}" "${bench_pkgs[@]}") ;;
  all) pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [run|test|bench|all]" >&2; exit 2 ;;
esac

# s3rver, the S3-compatible server of the s3 staging tests, from npm into tests/.node. The
# machine's Node.js ships npm; Debian's nodejs only where npm is missing (CAVEATS.md).
s3rver_version=3.7.1
node_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/.node"
install_s3rver() {
  [ -x "$node_dir/node_modules/.bin/s3rver" ] && return 0
  echo "install-deps: installing s3rver $s3rver_version into $node_dir" >&2
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent "s3rver@$s3rver_version"
}
if [ "$what" = test ] || [ "$what" = all ]; then
  command -v npm >/dev/null 2>&1 || pkgs+=(nodejs)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (run as root to install): ${missing[*]}" >&2
elif [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as prometheus (wanted for promtool only) start a daemon from their postinst; in
  # a container without systemd that would be the init script. A policy-rc.d answering 101
  # ("action forbidden") keeps every service stopped; ours is removed again afterwards.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$what" = test ] || [ "$what" = all ]; then
  install_s3rver
fi
