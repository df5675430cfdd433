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
