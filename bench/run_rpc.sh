#!/usr/bin/env bash
# Measures the RPC layer: unary Echo calls/s and p50/p99 latency on loopback with 1, 8 and 64
# calls in flight, against credito-echo-server. Builds a Release tree in build-bench/.
# Usage: bench/run_rpc.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C build-bench -j"$(nproc)" credito-echo-server rpc_bench >/dev/null
log=$(mktemp)
build-bench/tests/integration/credito-echo-server --listen 127.0.0.1:0 --log-level warn \
  2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
# The server logs its port at info level; ask the kernel instead since we silenced it.
for _ in $(seq 100); do
  port=$(ss -tlnp 2>/dev/null | awk -v p="pid=$pid," '$0 ~ p {split($4, a, ":"); print a[length(a)]; exit}')
  [ -n "${port:-}" ] && break
  sleep 0.05
done
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for n in 1 8 64; do
  build-bench/bench/rpc_bench "127.0.0.1:$port" --inflight "$n" --seconds "$secs"
done
