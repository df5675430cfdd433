#!/usr/bin/env bash
# Quickstart: installs what Credito needs, builds it, starts the registry (on the embedded file
# store, or on S3 when CREDITO_STORE=s3://... and AWS_ENDPOINT_URL_S3 are set), the trainer, the
# predictor and the REST gateway (with a fresh API key) on loopback, pushes German Credit as a
# versioned dataset, trains and registers credit-default with the champion alias (gate: test AUC
# >= 0.7), waits for the predictor to load the champion, scores one applicant over gRPC and over
# REST, and prints a ready-to-paste curl. Stop with deploy/local/stop.sh.
# Environment: CREDITO_RUN_DIR (default .credito-run) holds logs, pids and the file store;
# CREDITO_REGISTRY_PORT, CREDITO_TRAINER_PORT, CREDITO_PREDICTOR_PORT, CREDITO_GATEWAY_PORT
# (50051, 50052, 50053, 8080) move the services.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run=${CREDITO_RUN_DIR:-$root/.credito-run}

deploy/local/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p "$run"
deploy/local/stop.sh >/dev/null 2>&1 || true

reg=${CREDITO_REGISTRY_PORT:-50051} trn=${CREDITO_TRAINER_PORT:-50052}
prd=${CREDITO_PREDICTOR_PORT:-50053} gw=${CREDITO_GATEWAY_PORT:-8080}
# The programs read these too (each flag has an environment twin): point them at our ports.
export CREDITO_REGISTRY=127.0.0.1:$reg
export CREDITO_STORE=${CREDITO_STORE:-file://$run/store}
export CREDITO_CACHE_DIR=${CREDITO_CACHE_DIR:-$run/predictor-cache}

start() { # name port [flags...]
  local name=$1 port=$2 bin="build/services/$1/credito-$1"
  shift 2
  [ "$name" = gateway ] && bin=build/gateway/credito-gateway
  "$bin" --listen "127.0.0.1:$port" "$@" 2>"$run/$name.log" &
  echo $! >"$run/$name.pid"
  for _ in $(seq 100); do
    grep -q '"msg":"listening"' "$run/$name.log" && return 0
    sleep 0.05
  done
  echo "credito-$name did not start; its log:" >&2
  cat "$run/$name.log" >&2
  return 1
}
start registry "$reg"
start trainer "$trn"
start predictor "$prd"
# A fresh API key for the gateway: the key for the client, its hash for the gateway's key file.
build/services/ctl/creditoctl apikey new --name quickstart >"$run/apikey.txt" 2>/dev/null
api_key=$(sed -n 1p "$run/apikey.txt")
sed -n 2p "$run/apikey.txt" >"$run/api-keys"
chmod 600 "$run/apikey.txt" "$run/api-keys"
start gateway "$gw" --predictors "127.0.0.1:$prd" --api-keys-file "$run/api-keys"

ctl=build/services/ctl/creditoctl
mkdir -p "$run/data"
cp data/raw/credit-g.arff "$run/data/"
echo "== dataset push (store: $CREDITO_STORE)"
$ctl --registry "127.0.0.1:$reg" dataset push "$run/data/credit-g.arff" --name german-credit
echo
echo "== train credit-default on german-credit, alias champion if test AUC >= 0.7"
$ctl --registry "127.0.0.1:$reg" --trainer "127.0.0.1:$trn" train german-credit \
  --model credit-default --alias champion --min-auc 0.7 --seed 42
echo
$ctl --registry "127.0.0.1:$reg" model show credit-default
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
  if out=$($ctl --predictor "127.0.0.1:$prd" predict --json "$applicant" 2>&1); then
    scored=yes
    break
  fi
  sleep 0.1
done
echo "$out"
[ "$scored" = yes ] || { echo "the predictor did not score; its log: $run/predictor.log" >&2; exit 1; }
echo

echo "== POST /predict through the gateway"
printf '%s' "$applicant" >"$run/applicant.json"
curl -sS -X POST "http://127.0.0.1:$gw/predict" -H "x-api-key: $api_key" \
  -H 'content-type: application/json' -d @"$run/applicant.json"
echo; echo

buf=tests/peers/node_modules/.bin/buf
for p in "$reg" "$trn" "$prd"; do
  echo "== 127.0.0.1:$p"
  $buf curl --protocol grpc --http2-prior-knowledge --list-services "http://127.0.0.1:$p"
  $buf curl --protocol grpc --http2-prior-knowledge "http://127.0.0.1:$p/grpc.health.v1.Health/Check"
  echo
done
cat <<MSG
Credito is running: registry :$reg, trainer :$trn, predictor :$prd, gateway :$gw (logs in $run).
Score an applicant over REST (the key is in $run/apikey.txt):
  curl -X POST http://127.0.0.1:$gw/predict -H "x-api-key: $api_key" \\
       -H 'content-type: application/json' -d @$run/applicant.json
Try:  $ctl dataset list
      $ctl runs list
      $ctl lineage credit-default@champion
      $ctl predict --file data/raw/credit-g.arff --out scores.csv
      $ctl events
      $buf curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:$reg
Stop: deploy/local/stop.sh
MSG
