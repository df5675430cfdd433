#!/usr/bin/env bash
# The test command: builds Credito, runs every ctest label (unit, integration, interop, system),
# then rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit and
# integration tests again. Usage: tests/run.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export GRPC_VERBOSITY=${GRPC_VERBOSITY:-NONE}

echo "== build (RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
(cd build && ctest --output-on-failure -j"$jobs" --timeout 300)

# A short libFuzzer run (15 s a target) over the committed corpora; only the fuzz targets are
# built, so the step takes about two and a half minutes on 2 cores.
if command -v clang >/dev/null 2>&1; then
  echo "== fuzz (libFuzzer, 15 s per target) =="
  cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCREDITO_FUZZ=ON \
    -DCMAKE_C_COMPILER=clang >/dev/null
  cmake --build build-fuzz -j"$jobs" --target \
    $(basename -s .c tests/fuzz/*_fuzzer.c)
  tests/fuzz/run_fuzz.sh build-fuzz 15
else
  echo "== fuzz: skipped, no clang on PATH =="
fi

if [ "${1:-}" != "--no-sanitize" ]; then
  echo "== build (ASan + UBSan) =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCREDITO_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== unit and integration tests under ASan + UBSan =="
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs" -L 'unit|integration' --timeout 600)
fi
