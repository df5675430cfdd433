#!/usr/bin/env bash
# Measures the predictor (issue #5): Health/Check (the RPC layer's ceiling), Predict and
# PredictBatch (by rows and by columns) calls/s, rows/s and p50/p99 latency on loopback, and the predictor's resident
# memory, serving a German Credit model trained through the services. Builds a Release tree in
# build-bench/; everything else (store, cache, dataset copy, logs) lives in a temporary folder.
# Usage: [ROUNDS=5] bench/run_predict.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
b=build-bench
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$b" -j"$(nproc)" credito-registry credito-trainer credito-predictor creditoctl \
  predict_bench >/dev/null
# shellcheck source=bench/lib.sh
. bench/lib.sh

train_champion
# --max-message and --max-batch: a 10,000-row batch of German Credit applicants is about 5 MB,
# over the 4 MiB and 5,000-row defaults.
$b/services/predictor/credito-predictor --listen 127.0.0.1:0 --registry "$reg" \
  --model credit-default@champion --cache-dir "$tmp/cache" --max-message 67108864 \
  --max-batch 10000 \
  --log-level warn 2>"$tmp/predictor.log" &
pred_pid=$!
pids+=("$pred_pid")
pred=127.0.0.1:$(port_of $pred_pid)
$bench "$pred" --wait-ready 30

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $(grep -m1 -o 'registered credit-default[^ ]*' "$tmp/train.log" | cut -d' ' -f2)," \
  "test AUC $(awk '$1 == "test_roc_auc" {print $2}' "$tmp/train.log")"
echo "predictor memory after loading: $(mem_of $pred_pid)"
out=$tmp/results
# One line per run; a run with errors says so in its line and the others still run.
run() {
  $bench "$pred" "$@" --seconds "$secs" | tee -a "$out" || true
}
# Health and Predict alternate at each level, ROUNDS times (default 5), so a change in the
# host's load between them skews the ratio less; the ratio is of the calls summed over rounds.
rounds=${ROUNDS:-5}
for n in 1 8 64; do
  for _ in $(seq "$rounds"); do
    run --method health --inflight "$n"
    run --method predict --inflight "$n"
  done
done
echo "predictor memory after Health and Predict: $(mem_of $pred_pid)"
for n in 1 2 8; do
  run --method batch --rows 1000 --inflight "$n"
done
for n in 1 2; do
  run --method batch --rows 10000 --inflight "$n"
done
# The same rows by column (ApplicantColumns): the form for bulk scoring.
for rows in 1000 5000 10000; do
  for n in 1 2; do
    run --method columns --rows "$rows" --inflight "$n"
  done
done
echo "predictor memory at the end: $(mem_of $pred_pid)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Predict calls/s as a share of Health/Check calls/s at the same calls in flight.
awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
       if (f["method"] == "health" || f["method"] == "predict") {
         c[f["method"], f["inflight"]] += f["calls_per_s"]; r[f["method"], f["inflight"]]++
         if (f["method"] == "predict" && prev > 0)
           runs[f["inflight"]] = runs[f["inflight"]] sprintf(" %.0f%%", 100 * f["calls_per_s"] / prev)
         prev = f["method"] == "health" ? f["calls_per_s"] : 0 } }
     END { for (n = 1; n <= 64; n *= 8)
             if (c["health", n] > 0)
               printf "predict/health at inflight=%d: %.0f%% (%d / %d calls/s, mean of %d rounds;" \
                      " rounds:%s)\n", n, 100 * c["predict", n] / c["health", n],
                      c["predict", n] / r["predict", n], c["health", n] / r["health", n],
                      r["predict", n], runs[n] }' "$out"
