#!/usr/bin/env bash
# Measures the REST gateway (issue #6): requests/s and p50/p99 latency of POST /predict through
# credito-gateway and a predictor, with wrk at 1 and 32 connections, beside nginx answering a
# fixed JSON body of the same size under the same wrk settings (the ceiling of HTTP on this
# machine), and the gateway's resident memory. Builds a Release tree in build-bench/; everything
# else (store, cache, dataset copy, key file, nginx prefix, logs) lives in a temporary folder.
# Needs wrk, nginx and curl. Usage: [ROUNDS=3] bench/run_gateway.sh [SECONDS]; each level runs
# ROUNDS alternating gateway/nginx pairs. CREDITO_GATEWAY_FLAGS adds
# gateway flags (for example "--upstream-calls 1 --threads 2").
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
b=build-bench
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "run_gateway.sh: $tool is missing" \
    "(deploy/local/install-deps.sh installs it)" >&2; exit 1; }
done
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$b" -j"$(nproc)" credito-registry credito-trainer credito-predictor credito-gateway \
  creditoctl predict_bench >/dev/null
# shellcheck source=bench/lib.sh
. bench/lib.sh

# CPU time (user + system) of processes, in clock ticks.
ticks_of() {
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

train_champion
$b/services/predictor/credito-predictor --listen 127.0.0.1:0 --registry "$reg" \
  --model credit-default@champion --cache-dir "$tmp/cache" --log-level warn \
  2>"$tmp/predictor.log" &
pred_pid=$!
pids+=("$pred_pid")
pred=127.0.0.1:$(port_of $pred_pid)
$bench "$pred" --wait-ready 30

# Rate limits off: the benchmark sends far more than any client may.
# shellcheck disable=SC2086  # CREDITO_GATEWAY_FLAGS is a list of flags
start_gateway "$pred" --rate-limit-key '' --rate-limit-ip '' ${CREDITO_GATEWAY_FLAGS:-}

# One real answer, with the Lua script's body and headers, sizes nginx's fixed body.
lua=bench/gateway/predict.lua
body=bench/gateway/applicant.json
code=$(curl -s -o "$tmp/answer.json" -w '%{http_code}' -X POST "$gw/predict" \
  -H 'Content-Type: application/json' -H "x-api-key: $CREDITO_API_KEY" --data-binary "@$body")
[ "$code" = 200 ] || { echo "POST /predict answered $code: $(cat "$tmp/answer.json")" >&2; exit 1; }
if grep -q '\$' "$tmp/answer.json"; then
  echo "the answer holds a '\$', which nginx's return would read as a variable" >&2
  exit 1
fi

# nginx on a free loopback port, in the foreground, its prefix the temporary folder. The body
# goes into the template through ENVIRON, so nothing in it is read as a pattern.
nginx_pid=
for _ in $(seq 20); do
  nport=$((20000 + RANDOM % 40000))
  ss -tln | awk '{print $4}' | grep -q ":$nport\$" && continue
  NPORT=$nport NBODY=$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$tmp/answer.json") awk '
    function put(s, k, v,    i) {
      while ((i = index(s, k)) > 0) s = substr(s, 1, i - 1) v substr(s, i + length(k))
      return s
    }
    { print put(put($0, "@PORT@", ENVIRON["NPORT"]), "@BODY@", ENVIRON["NBODY"]) }' \
    bench/gateway/nginx.conf >"$tmp/nginx.conf"
  nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/error.log" 2>>"$tmp/nginx.log" &
  nginx_pid=$!
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$nport/" && break
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.05
  done
  if curl -s -o "$tmp/nginx.json" "http://127.0.0.1:$nport/predict"; then
    pids+=("$nginx_pid")
    break
  fi
  kill "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=
done
[ -n "$nginx_pid" ] || { echo "nginx did not start" >&2; cat "$tmp/nginx.log" "$tmp/error.log" \
  2>/dev/null >&2; exit 1; }
ngx=http://127.0.0.1:$nport
cmp -s "$tmp/answer.json" "$tmp/nginx.json" ||
  { echo "nginx's body differs from the gateway's answer" >&2; exit 1; }
mapfile -t nginx_workers < <(pgrep -P "$nginx_pid")

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $(grep -m1 -o 'registered credit-default[^ ]*' "$tmp/train.log" | cut -d' ' -f2)," \
  "test AUC $(awk '$1 == "test_roc_auc" {print $2}' "$tmp/train.log")"
echo "request: POST /predict, $(wc -c <"$body") bytes of JSON ($body);" \
  "answer: $(wc -c <"$tmp/answer.json") bytes (nginx returns the same bytes)"
echo "wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3)," \
  "$secs s a run, --latency, script $lua"
echo "gateway memory when ready: $(mem_of $gw_pid)"

out=$tmp/results
hz=$(getconf CLK_TCK)
# One run: wrk's result line with the target and connections, and the CPU time (user + system)
# per request of the server side: the gateway's and the predictor's, or nginx's workers'.
cpu_us() {
  awk -v d="$1" -v hz="$hz" -v n="$2" 'BEGIN { printf "%.1f", n ? d * 1e6 / hz / n : 0 }'
}
run() {
  local name=$1 url=$2 threads=$3 conns=$4 g0 p0 g1 p1 line n cpu
  if [ "$name" = gateway ]; then g0=$(ticks_of "$gw_pid"); p0=$(ticks_of "$pred_pid")
  else g0=$(ticks_of "${nginx_workers[@]}"); p0=0; fi
  line=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua" "$url/predict" |
         grep '^result ' || true)
  if [ "$name" = gateway ]; then g1=$(ticks_of "$gw_pid"); p1=$(ticks_of "$pred_pid")
  else g1=$(ticks_of "${nginx_workers[@]}"); p1=0; fi
  n=$(echo "$line" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
  cpu="server_cpu_us_per_req=$(cpu_us $((g1 - g0 + p1 - p0)) "${n:-0}")"
  if [ "$name" = gateway ]; then
    cpu="$cpu gateway_cpu_us_per_req=$(cpu_us $((g1 - g0)) "${n:-0}")"
    cpu="$cpu predictor_cpu_us_per_req=$(cpu_us $((p1 - p0)) "${n:-0}")"
  fi
  echo "target=$name connections=$conns ${line#result } $cpu" | tee -a "$out"
}
# Warm-up, untimed: the gateway's connections to the predictor, nginx's workers.
wrk -t2 -c32 -d1s -s "$lua" "$gw/predict" >/dev/null
wrk -t2 -c32 -d1s -s "$lua" "$ngx/predict" >/dev/null
# Gateway and nginx alternate at each level, so a change in the host's load between them skews
# the ratio less.
# ROUNDS pairs a level (default 3): the ratio is of the requests summed over them.
rounds=${ROUNDS:-3}
for _ in $(seq "$rounds"); do
  run gateway "$gw" 1 1
  run nginx "$ngx" 1 1
done
for _ in $(seq "$rounds"); do
  run gateway "$gw" 2 32
  run nginx "$ngx" 2 32
done
echo "gateway memory at the end: $(mem_of $gw_pid)"
# How the gateway grouped requests into predictor calls.
curl -s "$gw/metrics" | awk '/^credito_gateway_upstream_call/ { n[$1] = $2 }
  END { c = n["credito_gateway_upstream_calls_total"]
        if (c) printf "predictor calls: %d, %.1f requests a call\n", c,
                      n["credito_gateway_upstream_call_requests_total"] / c }' 
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
       r[f["target"], f["connections"]] += f["rps"]; k[f["target"], f["connections"]]++
       if (f["target"] == "nginx" && prev > 0)
         runs[f["connections"]] = runs[f["connections"]] sprintf(" %.1f%%", 100 * prev / f["rps"])
       prev = f["target"] == "gateway" ? f["rps"] : 0
       e = f["errors_connect"] + f["errors_read"] + f["errors_write"] + f["errors_status"]
       printf "%-8s %2d connections: %7d requests/s, p50 %6.0f us, p99 %6.0f us, errors %d, " \
              "server CPU %.0f us a request", f["target"], f["connections"], f["rps"],
              f["p50_us"], f["p99_us"], e + f["errors_timeout"], f["server_cpu_us_per_req"]
       if (f["target"] == "gateway")
         printf " (gateway %.0f, predictor %.0f)", f["gateway_cpu_us_per_req"],
                f["predictor_cpu_us_per_req"]
       printf "\n" }
     END { for (c = 1; c <= 32; c *= 32)
             if (r["nginx", c] > 0)
               printf "gateway/nginx at %d connections: %.1f%% (%d / %d requests/s, mean of %d " \
                      "rounds; rounds:%s)\n", c, 100 * r["gateway", c] / r["nginx", c],
                      r["gateway", c] / k["gateway", c], r["nginx", c] / k["nginx", c],
                      k["nginx", c], runs[c] }' "$out"
