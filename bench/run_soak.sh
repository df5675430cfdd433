#!/usr/bin/env bash
# Soak (issue #8): wrk at saturation through credito-gateway for SECONDS (default 60) with a
# model promotion half-way: a new version trained and made champion while the load runs, which
# both predictors must pick up with no failed request. Records requests/s, p50/p99, every
# answer's status from the gateway's own /metrics (so intended 429s are told apart from
# failures), and the resident memory of the gateway and the two predictors when ready, after a
# 5 s warm-up, and at the end. Builds a Release tree in build-bench/.
# Needs wrk and curl. Usage: bench/run_soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
b=build-bench
for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "run_soak.sh: $tool is missing" \
    "(deploy/local/install-deps.sh installs it)" >&2; exit 1; }
done
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$b" -j"$(nproc)" credito-registry credito-trainer credito-predictor credito-gateway \
  creditoctl predict_bench >/dev/null
# shellcheck source=bench/lib.sh
. bench/lib.sh

train_champion
preds=() pred_pids=()
for n in a b; do
  $b/services/predictor/credito-predictor --listen 127.0.0.1:0 --registry "$reg" \
    --model credit-default@champion --cache-dir "$tmp/cache-$n" --log-level warn \
    2>"$tmp/predictor-$n.log" &
  pred_pids+=($!)
  pids+=($!)
  preds+=("127.0.0.1:$(port_of $!)")
  $bench "${preds[-1]}" --wait-ready 30
done

# Limits on (the limiter runs on every request) but far above what wrk can send.
start_gateway "${preds[0]},${preds[1]}" --rate-limit-key 100000000/minute \
  --rate-limit-ip 100000000/minute

mems() {
  echo "  gateway:     $(mem_of "$gw_pid")"
  echo "  predictor a: $(mem_of "${pred_pids[0]}")"
  echo "  predictor b: $(mem_of "${pred_pids[1]}")"
}
rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
# credito_gateway_requests_total by status, summed over routes: "200 123\n429 4".
statuses() {
  curl -s "$gw/metrics" | awk '/^credito_gateway_requests_total\{/ {
      if (match($0, /status="[0-9]+"/)) { s = substr($0, RSTART + 8, 3); n[s] += $NF } }
    END { for (s in n) printf "%s %d\n", s, n[s] }' | sort
}
# The version a /predict answer came from.
version() { curl -s -X POST "$gw/predict" -H 'Content-Type: application/json' \
  -H "x-api-key: $CREDITO_API_KEY" --data-binary @bench/gateway/applicant.json |
  sed -n 's/.*"version": *\([0-9]*\).*/\1/p'; }

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: 2 threads, 32 connections, ${secs} s, script bench/gateway/predict.lua"
echo "memory when ready:"; mems
wrk -t2 -c32 -d5s -s bench/gateway/predict.lua "$gw/predict" >/dev/null
echo "memory after a 5 s warm-up:"; mems
declare -A rss0
for p in "$gw_pid" "${pred_pids[@]}"; do rss0[$p]=$(rss_kb "$p"); done
before=$(statuses)
v0=$(version)

wrk -t2 -c32 -d"${secs}s" --latency -s bench/gateway/predict.lua "$gw/predict" >"$tmp/wrk.out" &
wrk_pid=$!
sleep $((secs / 2))
t0=$(date +%s.%N)
$ctl --registry "$reg" --trainer "$trn" train credit-g --alias champion --seed 2 \
  >"$tmp/train2.log" 2>&1 || { cat "$tmp/train2.log" >&2; exit 1; }
for _ in $(seq 300); do
  [ "$(version)" != "$v0" ] && break
  sleep 0.05
done
t1=$(date +%s.%N)
v1=$(version)
wait "$wrk_pid"
after=$(statuses)

echo "promotion at $((secs / 2)) s: champion v$v0 -> v$v1, the gateway answered with v$v1 $(awk \
  -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s after the training started"
echo "memory at the end:"; mems
grep -E '^result ' "$tmp/wrk.out" | sed 's/^result /wrk: /'
echo "answers by status during the soak (gateway /metrics, all routes):"
join -a2 -e0 -o '0,1.2,2.2' <(echo "$before") <(echo "$after") |
  awk '{ printf "  %s: %d\n", $1, $3 - $2; if ($1 !~ /^2/ && $1 != "429") bad += $3 - $2 }
       END { printf "non-2xx other than 429: %d\n", bad }'
for p in "$gw_pid" "${pred_pids[@]}"; do
  awk -v a="${rss0[$p]}" -v b="$(rss_kb "$p")" -v n="$(tr '\0' ' ' <"/proc/$p/cmdline" |
    awk '{print $1}' | xargs basename)" -v p="$p" \
    'BEGIN { printf "RSS %s (pid %s): %.1f MB after warm-up, %.1f MB at the end: %+.1f%%\n",
             n, p, a / 1024, b / 1024, 100 * (b - a) / a }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
