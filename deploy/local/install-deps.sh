#!/usr/bin/env bash
# Installs everything Credito needs to build and test on Debian 12: the C toolchain and
# libraries (apt) and the third-party protocol peers the tests use (npm, from the lockfile).
# Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=(
  build-essential cmake pkg-config
  libgrpc-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev grpc-proto
  libcurl4-openssl-dev libssl-dev libjansson-dev libmicrohttpd-dev libcmocka-dev libhiredis-dev
  clang libclang-rt-14-dev valgrind openssl iproute2 redis-server
  python3 python3-grpcio python3-protobuf python3-numpy python3-sklearn
  wrk nginx-light  # bench/run_gateway.sh
  docker-compose python3-yaml  # tests/deploy: the compose file validated offline
  # tests/ui: headless Chromium, and the Python packages Streamlit imports (Debian's)
  chromium python3-venv python3-tornado python3-pandas python3-altair python3-pil python3-click
  python3-toml python3-cachetools python3-blinker python3-tenacity python3-rich python3-watchdog
  python3-git python3-typing-extensions python3-packaging python3-requests python3-tzlocal
  python3-validators python3-dateutil python3-tz python3-importlib-metadata
)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
command -v npm >/dev/null 2>&1 || packages+=(npm)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# Test peers pinned by tests/peers/package-lock.json.
(cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
# The UI's browser test: stlite's Streamlit and playwright-core, pinned by tests/ui's lockfile.
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
