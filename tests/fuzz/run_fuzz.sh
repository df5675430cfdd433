#!/usr/bin/env bash
# Runs libFuzzer targets for a fixed time each and prints one summary line per target.
# Usage: tests/fuzz/run_fuzz.sh BUILD_DIR SECONDS [target...]   (default: every *_fuzzer.c)
# BUILD_DIR is a -DCREDITO_FUZZ=ON build. Each target fuzzes a scratch copy of its committed
# corpus (libFuzzer writes new inputs into its first folder); logs, grown corpora and crash
# files go under $FUZZ_WORK (default: a temporary folder, removed if every target passed).
# Exits 1 if any target crashed, leaked, ran out of memory or timed out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 BUILD_DIR SECONDS [target...]" >&2; exit 2; }
build=$1 secs=$2
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$here"/*_fuzzer.c; do targets+=("$(basename "$f" .c)"); done
fi
work=${FUZZ_WORK:-$(mktemp -d /tmp/fuzz.XXXXXX)}
# UBSan only prints and carries on by default: make undefined behaviour a crash libFuzzer saves.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
printf '%-22s %5s %11s %7s %6s %6s %9s  %s\n' target secs execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/$t corpus=$here/${t%_fuzzer} dir=$work/$t
  rm -rf "$dir" && mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -r "$corpus"/. "$dir/corpus/"
  n_in=$(find "$dir/corpus" -type f | wc -l)
  rc=0
  "$bin" "$dir/corpus" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" >"$dir/log" 2>&1 || rc=$?
  last=$(grep -E '^#[0-9]+.* cov: ' "$dir/log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  result=ok
  if [ "$rc" -ne 0 ]; then
    failed=1
    art=$(find "$dir/artifacts" -type f ! -name 'slow-unit-*' | head -n 1)
    result="FAIL rc=$rc ${art:-no artifact} (log: $dir/log)"
  fi
  printf '%-22s %5s %11s %7s %6s %6s %9s  %s\n' "$t" "$secs" "${execs:--}" "${rate:--}" \
    "${cov:--}" "${ft:--}" "$n_in/$(find "$dir/corpus" -type f | wc -l)" "$result"
done
[ -n "${FUZZ_WORK:-}" ] || [ "$failed" -ne 0 ] || rm -rf "$work"
exit $failed
