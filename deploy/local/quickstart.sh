#!/usr/bin/env bash
# Quickstart: installs what Credito needs, builds it, starts the registry (on the embedded file
# store, or on S3 when CREDITO_STORE=s3://... and AWS_ENDPOINT_URL_S3 are set), the trainer and
# the predictor on loopback, pushes German Credit as a versioned dataset, trains and registers
# credit-default with the champion alias (gate: test AUC >= 0.7), waits for the predictor to
# load the champion, scores one applicant, and shows what each service serves. The REST gateway
# joins this script with issue #6. Stop with deploy/local/stop.sh.
# Environment: CREDITO_RUN_DIR (default .credito-run) holds logs, pids and the file store.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run=${CREDITO_RUN_DIR:-$root/.credito-run}

deploy/local/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p "$run"
deploy/local/stop.sh >/dev/null 2>&1 || true

export CREDITO_STORE=${CREDITO_STORE:-file://$run/store}
export CREDITO_CACHE_DIR=${CREDITO_CACHE_DIR:-$run/predictor-cache}

start() { # name port
  local bin="build/services/$1/credito-$1"
  "$bin" --listen "127.0.0.1:$2" 2>"$run/$1.log" &
  echo $! >"$run/$1.pid"
  for _ in $(seq 100); do
    grep -q '"msg":"listening"' "$run/$1.log" && return 0
    sleep 0.05
  done
  echo "credito-$1 did not start; its log:" >&2
  cat "$run/$1.log" >&2
  return 1
}
start registry 50051
start trainer 50052
start predictor 50053

ctl=build/services/ctl/creditoctl
mkdir -p "$run/data"
cp data/raw/credit-g.arff "$run/data/"
echo "== dataset push (store: $CREDITO_STORE)"
$ctl --registry 127.0.0.1:50051 dataset push "$run/data/credit-g.arff" --name german-credit
echo
echo "== train credit-default on german-credit, alias champion if test AUC >= 0.7"
$ctl --registry 127.0.0.1:50051 --trainer 127.0.0.1:50052 train german-credit \
  --model credit-default --alias champion --min-auc 0.7 --seed 42
echo
$ctl --registry 127.0.0.1:50051 model show credit-default
echo

echo "== predict (the predictor follows credit-default@champion)"
applicant='{"checking_status": "<0", "duration": 6, "credit_history": "critical/other existing credit",
  "purpose": "radio/tv", "credit_amount": 1169, "savings_status": "no known savings",
  "employment": ">=7", "installment_commitment": 4, "personal_status": "male single",
  "other_parties": "none", "residence_since": 4, "property_magnitude": "real estate", "age": 67,
  "other_payment_plans": "none", "housing": "own", "existing_credits": 2, "job": "skilled",
  "num_dependents": 1, "own_telephone": "yes", "foreign_worker": "yes"}'
scored=no
for _ in $(seq 100); do # the alias reaches the predictor over WatchModel within moments
  if out=$($ctl --predictor 127.0.0.1:50053 predict --json "$applicant" 2>&1); then
    scored=yes
    break
  fi
  sleep 0.1
done
echo "$out"
[ "$scored" = yes ] || { echo "the predictor did not score; its log: $run/predictor.log" >&2; exit 1; }
echo

buf=tests/peers/node_modules/.bin/buf
for p in 50051 50052 50053; do
  echo "== 127.0.0.1:$p"
  $buf curl --protocol grpc --http2-prior-knowledge --list-services "http://127.0.0.1:$p"
  $buf curl --protocol grpc --http2-prior-knowledge "http://127.0.0.1:$p/grpc.health.v1.Health/Check"
  echo
done
cat <<MSG
Credito is running: registry :50051, trainer :50052, predictor :50053 (logs in $run).
Try:  $ctl dataset list
      $ctl runs list
      $ctl lineage credit-default@champion
      $ctl predict --file data/raw/credit-g.arff --out scores.csv
      $ctl events
      $buf curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:50051
Stop: deploy/local/stop.sh
MSG
