#!/bin/sh
# credito-first-model: the one-shot job of docker-compose.yml. Pushes the bundled German Credit
# data set to the registry and trains the first model through the trainer, which registers the
# version and points the alias at it when its test AUC passes the gate; fails (exit 1) when the
# alias is not set afterwards, so `docker compose up` shows why nothing is served. When the
# alias already exists (a second `up`) it does nothing. Addresses: CREDITO_REGISTRY and
# CREDITO_TRAINER (creditoctl's); the rest below.
set -eu

model=${CREDITO_FIRST_MODEL:-credit-default}
alias=${CREDITO_FIRST_ALIAS:-champion}
dataset=${CREDITO_FIRST_DATASET:-german-credit}
data=${CREDITO_FIRST_DATA:-/usr/local/share/credito/data/credit-g.arff}
min_auc=${CREDITO_FIRST_MIN_AUC:-0.7}
seed=${CREDITO_FIRST_SEED:-42}

if creditoctl lineage "$model@$alias" >/dev/null 2>&1; then
  echo "$model@$alias exists; nothing to train"
  exit 0
fi

# `dataset push` writes a DVC pointer beside the file, so push a copy in a scratch folder.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$data" "$work/"
creditoctl dataset push "$work/${data##*/}" --name "$dataset"
creditoctl train "$dataset" --model "$model" --alias "$alias" --min-auc "$min_auc" \
  --seed "$seed" </dev/null
if ! creditoctl lineage "$model@$alias" >/dev/null; then
  echo "credito-first-model: $model@$alias is not set (a gate failed?); see the result above" >&2
  exit 1
fi
creditoctl model show "$model"
