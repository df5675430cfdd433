#!/usr/bin/env bash
# system.quickstart: the README's first command from a clean clone of this checkout's HEAD, on
# free ports, must end with a /predict through the gateway that returns a score; then stop.sh
# must stop everything. Usage: tests/system/test_quickstart.sh   (run by ctest, label system)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/credito-quickstart-XXXXXX)
clone=$tmp/clone
cleanup() {
  [ -x "$clone/deploy/local/stop.sh" ] && CREDITO_RUN_DIR=$tmp/run "$clone/deploy/local/stop.sh" \
    >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

git clone -q "file://$root" "$clone"
export CREDITO_RUN_DIR=$tmp/run
export CREDITO_REGISTRY_PORT=$(free_port) CREDITO_TRAINER_PORT=$(free_port)
export CREDITO_PREDICTOR_PORT=$(free_port) CREDITO_GATEWAY_PORT=$(free_port)
unset CREDITO_STORE CREDITO_CACHE_DIR
log=$tmp/quickstart.log
if ! "$clone/deploy/local/quickstart.sh" >"$log" 2>&1; then
  echo "FAIL: quickstart.sh exited non-zero; its output:"
  cat "$log"
  exit 1
fi
# The REST answer: the line after the "POST /predict" banner.
answer=$(sed -n '/== POST \/predict through the gateway/{n;p}' "$log")
echo "REST answer: $answer"
echo "$answer" | /usr/bin/python3 -c '
import json, sys
a = json.load(sys.stdin)
assert 0.0 <= a["probability"] <= 1.0, a
assert isinstance(a["score"], float), a
assert a["decision"] in ("approve", "decline"), a
assert a["model"]["alias"] == "champion", a
print("score %.2f, decision %s, model %s/%s" % (a["score"], a["decision"], a["model"]["name"],
                                                  a["model"]["version"]))'
grep -q 'curl -X POST http://127.0.0.1:'"$CREDITO_GATEWAY_PORT"'/predict' "$log" ||
  { echo "FAIL: no ready-to-paste curl in the output"; exit 1; }
"$clone/deploy/local/stop.sh" >"$tmp/stop.log" 2>&1
for s in registry trainer predictor gateway; do
  grep -q "stopped $s" "$tmp/stop.log" || { echo "FAIL: stop.sh did not stop $s"; cat "$tmp/stop.log"; exit 1; }
done
echo "PASS: quickstart from a clean clone scored over REST and stopped cleanly"
