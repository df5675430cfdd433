# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share, sourced after `cd` to the repository root:
# the temporary folder and process list cleaned up on exit, the port a silenced server listens
# on, a process's memory, and starting the stack (train_champion, start_gateway). Sets tmp and
# pids.
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The port a server of ours listens on; we silence the "listening" log line, so ask the kernel.
port_of() {
  local port=
  for _ in $(seq 200); do
    port=$(ss -tlnp 2>/dev/null | awk -v p="pid=$1," '$0 ~ p {split($4, a, ":"); print a[length(a)]; exit}')
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "no listening port for pid $1" >&2; exit 1; }
  echo "$port"
}

# "VmRSS 15.6 MB (anon 2.0, file 13.6), VmHWM 15.6 MB" of a process: file is mostly the shared
# libraries' code (gRPC, OpenSSL), anon the process's own memory.
mem_of() {
  awk '{ v[substr($1, 1, length($1) - 1)] = $2 / 1024 }
       END { printf "VmRSS %.1f MB (anon %.1f, file %.1f), VmHWM %.1f MB", v["VmRSS"],
             v["RssAnon"], v["RssFile"], v["VmHWM"] }' "/proc/$1/status"
}

# Starts a registry (file store in $tmp) and a trainer from the build tree $b, pushes German
# Credit and trains credit-default with the champion alias. Sets reg and trn (addresses), bench
# (predict_bench, which waits for health) and ctl (creditoctl).
# shellcheck disable=SC2154  # b is set by the sourcing script
train_champion() {
  bench=$b/bench/predict_bench
  ctl=$b/services/ctl/creditoctl
  "$b/services/registry/credito-registry" --listen 127.0.0.1:0 --store "file://$tmp/store" \
    --log-level warn 2>"$tmp/registry.log" &
  pids+=($!)
  reg=127.0.0.1:$(port_of $!)
  "$bench" "$reg" --wait-ready 30
  "$b/services/trainer/credito-trainer" --listen 127.0.0.1:0 --registry "$reg" --log-level warn \
    2>"$tmp/trainer.log" &
  pids+=($!)
  trn=127.0.0.1:$(port_of $!)
  "$bench" "$trn" --wait-ready 30
  # A copy, so dataset push writes its .dvc pointer into the temporary folder, not data/raw/.
  cp data/raw/credit-g.arff "$tmp/"
  "$ctl" --registry "$reg" dataset push "$tmp/credit-g.arff" --name credit-g >/dev/null
  "$ctl" --registry "$reg" --trainer "$trn" train credit-g --alias champion >"$tmp/train.log" \
    2>&1 || { cat "$tmp/train.log" >&2; exit 1; }
}

# Makes an API key (CREDITO_API_KEY, exported for wrk's script) and starts a gateway from $b in
# front of PREDICTORS with the rest of the arguments as flags, then waits for /readyz 200. Sets
# gw_pid and gw (its base URL).
start_gateway() {
  local predictors=$1
  shift
  $ctl apikey new --name bench >"$tmp/key" 2>/dev/null
  export CREDITO_API_KEY
  CREDITO_API_KEY=$(sed -n 1p "$tmp/key")
  sed -n 2p "$tmp/key" >"$tmp/keys"
  "$b/gateway/credito-gateway" --listen 127.0.0.1:0 --predictors "$predictors" \
    --api-keys-file "$tmp/keys" --log-level warn "$@" 2>"$tmp/gateway.log" &
  gw_pid=$!
  pids+=("$gw_pid")
  gw=http://127.0.0.1:$(port_of $gw_pid)
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$gw/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "the gateway is not ready" >&2
  cat "$tmp/gateway.log" >&2
  exit 1
}
