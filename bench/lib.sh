# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share, sourced after `cd` to the repository root:
# the temporary folder and process list cleaned up on exit, the port a silenced server listens
# on, and a process's memory. Sets tmp and pids.
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
