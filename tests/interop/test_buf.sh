#!/usr/bin/env bash
# Interop: Credito's servers against buf curl (a Go gRPC client driven by server reflection).
# For the registry, trainer, predictor and the echo test server: reflection v1 and v1alpha list
# exactly the expected services; every method declared in the .proto is listed; Health/Check
# answers SERVING (NOT_SERVING for the predictor, which has no model to serve here); the methods of
# a built service (registry, trainer, predictor) answer for real, the others UNIMPLEMENTED naming
# their issue; Trainer/Train from JSON is INVALID_ARGUMENT for an empty request and UNAVAILABLE
# with no registry to reach; the predictor with no model answers Predict and PredictBatch
# UNAVAILABLE and GetModelInfo with serving false and its --model; the echo service works from
# JSON in all four call shapes.
#
# Usage: tests/interop/test_buf.sh [BUILD_DIR]
#   BUILD_DIR defaults to $CREDITO_BUILD_DIR, then build/ in the checkout.
#   buf is $CREDITO_BUF, else tests/peers/node_modules/.bin/buf (cd tests/peers && npm ci).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-${CREDITO_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}}
BUF=${CREDITO_BUF:-$SRC/tests/peers/node_modules/.bin/buf}
PY=/usr/bin/python3

if [[ ! -x $BUF ]]; then
  echo "FAIL: buf not found at $BUF (install it: cd tests/peers && npm ci, or set CREDITO_BUF)" >&2
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/credito-interop-buf.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILS=0
CHECKS=0
pass() { CHECKS=$((CHECKS + 1)); echo "ok   - $*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL - $*"; }

# The port from the JSON "listening" line of a server log, once the server has also logged
# that it is serving ({"msg":"health","service":"","serving":true}, logged just after
# "listening"), or at once with a second argument "listening" (a predictor with no model never
# serves); empty until then.
ready_port() {
  "$PY" - "$1" "${2:-serving}" <<'EOF'
import json, sys
port, serving = None, sys.argv[2] == "listening"
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("msg") == "listening" and port is None:
            port = rec["port"]
        if rec.get("msg") == "health" and rec.get("service") == "" and rec.get("serving") is True:
            serving = True
if port is not None and serving:
    print(port)
EOF
}

# start_server NAME BINARY [ARGS...]: starts it on a free port; sets PORT and SPID. Waits
# until it is serving, or only until it listens when READY=listening.
start_server() {
  local name=$1 bin=$2 log=$TMP/$1.log i
  shift 2
  if [[ ! -x $bin ]]; then
    echo "FAIL: $bin not built (build first, or pass the build dir)" >&2
    exit 1
  fi
  # Exec'd through a one-line wrapper that asks for SIGKILL when this shell dies, so a server
  # never outlives the test even if the shell is killed outright.
  "$PY" -c 'import ctypes, os, signal, sys
ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL, 0, 0, 0)
os.execv(sys.argv[1], sys.argv[1:])' "$bin" --listen 127.0.0.1:0 "$@" \
    2>"$log" >/dev/null </dev/null &
  SPID=$!
  PIDS+=("$SPID")
  PORT=
  for ((i = 0; i < 100; i++)); do
    PORT=$(ready_port "$log" "${READY:-serving}")
    [[ -n $PORT ]] && return 0
    if ! kill -0 "$SPID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "FAIL: $name did not log \"listening\" (and serving) within 10 s; its stderr:" >&2
  cat "$log" >&2
  exit 1
}

# stop_server PID NAME: SIGTERM, wait, expect exit 0.
stop_server() {
  local pid=$1 name=$2 rc=0 i
  kill -TERM "$pid"
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$name still running 15 s after SIGTERM"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" || rc=$?
  if [[ $rc -eq 0 ]]; then
    pass "$name exits 0 on SIGTERM"
  else
    fail "$name exit code $rc after SIGTERM"
  fi
}

# Every call has its own deadline, and the whole run a budget, so a server that stops answering
# fails the test in bounded time rather than hitting the ctest timeout.
BUDGET_S=90
bcurl() {
  if ((SECONDS > BUDGET_S)); then
    echo "time budget of ${BUDGET_S} s used up: calls before this one hung"
    return 99
  fi
  "$BUF" curl --protocol grpc --http2-prior-knowledge --timeout 5s "$@"
}

# Methods declared by "service NAME" in a .proto, one per line, sorted.
proto_methods() {
  local proto=$1 service=$2
  awk -v svc="$service" '
    $1 == "service" && $2 == svc { inside = 1; next }
    inside && /^}/ { inside = 0 }
    inside && $1 == "rpc" { name = $2; sub(/\(.*/, "", name); print name }
  ' "$proto" | sort
}

proto_package() {
  sed -nE 's/^package[[:space:]]+([A-Za-z0-9_.]+);.*/\1/p' "$1"
}

proto_services() {
  sed -nE 's/^service[[:space:]]+([A-Za-z0-9_]+).*/\1/p' "$1"
}

# Compares two files; on a difference prints both.
same() {
  local what=$1 want=$2 got=$3
  if diff -u "$want" "$got" >"$TMP/diff" 2>&1; then
    pass "$what"
  else
    fail "$what"
    sed 's/^/      /' "$TMP/diff"
  fi
}

# json_eq WHAT EXPECTED_JSON FILE: the file holds exactly this JSON value (or stream of values).
json_eq() {
  local what=$1 want=$2 file=$3
  if "$PY" - "$want" "$file" <<'EOF'
import json, sys
want = json.loads(sys.argv[1])
text = open(sys.argv[2]).read()
dec, pos, got = json.JSONDecoder(), 0, []
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    val, pos = dec.raw_decode(text, pos)
    got.append(val)
got = got[0] if len(got) == 1 and not isinstance(want, list) else got
if got != want:
    print("      want %s\n      got  %s" % (json.dumps(want), json.dumps(got)))
    sys.exit(1)
EOF
  then pass "$what"; else fail "$what"; fi
}

# check_service_program NAME BINARY PROTO [BUILT [HEALTH]]: HEALTH is the status Health/Check
# must answer (SERVING; NOT_SERVING for a program that is up but not ready, started with
# READY=listening).
check_service_program() {
  local name=$1 bin=$2 proto=$3 built=${4:-no} health=${5:-SERVING}
  local pkg svc full m
  pkg=$(proto_package "$proto")
  svc=$(proto_services "$proto")
  if [[ -z $pkg || -z $svc || $(wc -l <<<"$svc") -ne 1 ]]; then
    fail "$name: cannot read exactly one service and a package from $proto"
    return
  fi
  full=$pkg.$svc
  start_server "$name" "$bin"
  local url=http://127.0.0.1:$PORT

  printf '%s\n' "$full" grpc.health.v1.Health grpc.reflection.v1.ServerReflection \
    grpc.reflection.v1alpha.ServerReflection | sort >"$TMP/want-services"
  proto_methods "$proto" "$svc" >"$TMP/want-methods"
  if [[ ! -s $TMP/want-methods ]]; then
    fail "$name: no rpc found for service $svc in $proto"
  fi

  for rp in grpc-v1 grpc-v1alpha; do
    if bcurl --reflect-protocol "$rp" --list-services "$url" >"$TMP/out" 2>&1; then
      sort "$TMP/out" >"$TMP/got-services"
      same "$name: --list-services over $rp is exactly $full, health and both reflections" \
        "$TMP/want-services" "$TMP/got-services"
    else
      fail "$name: --list-services over $rp failed: $(cat "$TMP/out")"
    fi
    if bcurl --reflect-protocol "$rp" --list-methods "$url" >"$TMP/out" 2>&1; then
      sed -n "s|^$full/||p" "$TMP/out" | sort >"$TMP/got-methods"
      same "$name: --list-methods over $rp lists every rpc of $full declared in ${proto#"$SRC"/}" \
        "$TMP/want-methods" "$TMP/got-methods"
      for m in grpc.health.v1.Health/Check grpc.health.v1.Health/Watch \
        grpc.reflection.v1.ServerReflection/ServerReflectionInfo \
        grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo; do
        if grep -qx "$m" "$TMP/out"; then
          pass "$name: $rp lists $m"
        else
          fail "$name: $rp does not list $m"
        fi
      done
    else
      fail "$name: --list-methods over $rp failed: $(cat "$TMP/out")"
    fi
  done

  if bcurl "$url/grpc.health.v1.Health/Check" >"$TMP/out" 2>&1; then
    json_eq "$name: Health/Check \"\" is $health" "{\"status\":\"$health\"}" "$TMP/out"
  else
    fail "$name: Health/Check failed: $(cat "$TMP/out")"
  fi
  if bcurl -d "{\"service\":\"$full\"}" "$url/grpc.health.v1.Health/Check" >"$TMP/out" 2>&1; then
    json_eq "$name: Health/Check $full is $health" "{\"status\":\"$health\"}" "$TMP/out"
  else
    fail "$name: Health/Check $full failed: $(cat "$TMP/out")"
  fi
  if bcurl -d '{"service":"no.such.Service"}' "$url/grpc.health.v1.Health/Check" \
    >"$TMP/out" 2>&1; then
    fail "$name: Health/Check of an unknown service succeeded: $(cat "$TMP/out")"
  elif grep -q '"not_found"' "$TMP/out"; then
    pass "$name: Health/Check of an unknown service is NOT_FOUND"
  else
    fail "$name: Health/Check of an unknown service: $(cat "$TMP/out")"
  fi

  # Every method: buf encodes the request from reflection (so the schema served must resolve,
  # imports included). A service whose issue has landed answers for real (an empty request is
  # refused with a Credito error, never UNIMPLEMENTED); the others answer UNIMPLEMENTED naming
  # the issue that builds them.
  while read -r m; do
    if [ "$built" = yes ]; then
      if bcurl -d '{}' "$url/$full/$m" >"$TMP/out" 2>&1 ||
        { grep -q '"code": *"[a-z_]*"' "$TMP/out" && ! grep -q '"unimplemented"' "$TMP/out"; }; then
        pass "$name: $full/$m is served"
      else
        fail "$name: $full/$m: want an answer, got: $(tr '\n' ' ' <"$TMP/out")"
      fi
    elif bcurl -d '{}' "$url/$full/$m" >"$TMP/out" 2>&1; then
      fail "$name: $full/$m succeeded, want unimplemented: $(cat "$TMP/out")"
    elif grep -q '"code": *"unimplemented"' "$TMP/out" && grep -q 'issue #[0-9]' "$TMP/out"; then
      pass "$name: $full/$m is unimplemented, naming its issue"
    else
      fail "$name: $full/$m: want unimplemented naming an issue, got: $(tr '\n' ' ' <"$TMP/out")"
    fi
  done <"$TMP/want-methods"

  stop_server "$SPID" "$name"
}

# The trainer is built (issue #4): Train from JSON, encoded through reflection. An empty request
# is refused before any work, naming the required fields; a well-formed one whose registry cannot
# be reached is UNAVAILABLE, naming the registry call.
check_trainer_train() {
  local name=credito-trainer url
  start_server "$name" "$BUILD/services/trainer/credito-trainer" --registry 127.0.0.1:1 \
    --registry-timeout 2s
  url=http://127.0.0.1:$PORT
  if bcurl -d '{}' "$url/credito.v1.Trainer/Train" >"$TMP/out" 2>&1; then
    fail "$name: Train {} succeeded: $(cat "$TMP/out")"
  elif grep -q '"code": *"invalid_argument"' "$TMP/out" &&
    grep -q 'model_name and dataset.name are required' "$TMP/out"; then
    pass "$name: Train {} is INVALID_ARGUMENT, naming model_name and dataset.name"
  else
    fail "$name: Train {}: want invalid_argument, got: $(tr '\n' ' ' <"$TMP/out")"
  fi
  if bcurl -d '{"modelName":"m","dataset":{"name":"d"}}' "$url/credito.v1.Trainer/Train" \
    >"$TMP/out" 2>&1; then
    fail "$name: Train with no registry succeeded: $(cat "$TMP/out")"
  elif grep -q '"code": *"unavailable"' "$TMP/out" && grep -q 'registry' "$TMP/out"; then
    pass "$name: Train with the registry down is UNAVAILABLE, naming the registry"
  else
    fail "$name: Train with no registry: want unavailable, got: $(tr '\n' ' ' <"$TMP/out")"
  fi
  stop_server "$SPID" "$name"
}

# The predictor is built (issue #5). With no registry to reach and no cache it has no model:
# it listens but is NOT_SERVING (checked above), Predict and PredictBatch from JSON answer
# UNAVAILABLE, whatever the request, and GetModelInfo answers serving false (omitted in JSON)
# with its --model setting.
check_predictor_without_model() {
  local name=credito-predictor url m
  READY=listening start_server "$name" "$BUILD/services/predictor/credito-predictor" \
    --registry 127.0.0.1:1 --cache-dir off --model credit-default@champion
  url=http://127.0.0.1:$PORT
  for m in Predict PredictBatch; do
    if bcurl -d '{"requestId":"r1"}' "$url/credito.v1.Predictor/$m" >"$TMP/out" 2>&1; then
      fail "$name: $m with no model succeeded: $(cat "$TMP/out")"
    elif grep -q '"code": *"unavailable"' "$TMP/out" &&
      grep -q 'no verified model' "$TMP/out"; then
      pass "$name: $m with no model is UNAVAILABLE"
    else
      fail "$name: $m with no model: want unavailable, got: $(tr '\n' ' ' <"$TMP/out")"
    fi
  done
  if bcurl -d '{"features":[{"name":"duration","value":{"number":6}}]}' \
    "$url/credito.v1.Predictor/Predict" >"$TMP/out" 2>&1; then
    fail "$name: Predict with a feature and no model succeeded: $(cat "$TMP/out")"
  elif grep -q '"code": *"unavailable"' "$TMP/out"; then
    pass "$name: Predict from a JSON applicant with no model is UNAVAILABLE"
  else
    fail "$name: Predict with no model: want unavailable, got: $(tr '\n' ' ' <"$TMP/out")"
  fi
  # (A last_load_error saying why may come too; nothing about a served model may.)
  if bcurl -d '{}' "$url/credito.v1.Predictor/GetModelInfo" >"$TMP/out" 2>&1; then
    if "$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(not (r.get("modelRef") == "credit-default@champion" and not r.get("serving")
              and not set(r) - {"modelRef", "serving", "lastLoadError"}))' "$TMP/out"; then
      pass "$name: GetModelInfo with no model: serving false, the --model setting"
    else
      fail "$name: GetModelInfo with no model: $(tr '\n' ' ' <"$TMP/out")"
    fi
  else
    fail "$name: GetModelInfo failed: $(cat "$TMP/out")"
  fi
  stop_server "$SPID" "$name"
}

check_echo() {
  local proto=$SRC/tests/proto/credito/test/v1/echo.proto name=credito-echo-server
  start_server "$name" "$BUILD/tests/integration/credito-echo-server"
  local url=http://127.0.0.1:$PORT pid=$SPID

  printf '%s\n' credito.test.v1.Echo grpc.health.v1.Health grpc.reflection.v1.ServerReflection \
    grpc.reflection.v1alpha.ServerReflection | sort >"$TMP/want-services"
  proto_methods "$proto" Echo >"$TMP/want-methods"
  for rp in grpc-v1 grpc-v1alpha; do
    if bcurl --reflect-protocol "$rp" --list-services "$url" >"$TMP/out" 2>&1; then
      sort "$TMP/out" >"$TMP/got-services"
      same "$name: --list-services over $rp" "$TMP/want-services" "$TMP/got-services"
    else
      fail "$name: --list-services over $rp failed: $(cat "$TMP/out")"
    fi
    if bcurl --reflect-protocol "$rp" --list-methods "$url" >"$TMP/out" 2>&1; then
      sed -n "s|^credito.test.v1.Echo/||p" "$TMP/out" | sort >"$TMP/got-methods"
      same "$name: --list-methods over $rp lists every rpc of Echo" "$TMP/want-methods" \
        "$TMP/got-methods"
    else
      fail "$name: --list-methods over $rp failed: $(cat "$TMP/out")"
    fi
  done

  for rp in grpc-v1 grpc-v1alpha; do
    if bcurl --reflect-protocol "$rp" -d '{"text":"hi"}' "$url/credito.test.v1.Echo/Echo" \
      >"$TMP/out" 2>&1; then
      json_eq "$name: Echo from JSON over $rp reflection" \
        "{\"text\":\"hi\",\"seq\":1,\"serverPid\":$pid}" "$TMP/out"
    else
      fail "$name: Echo over $rp failed: $(cat "$TMP/out")"
    fi
  done
  if bcurl -d '{"text":"x","payload":"AAEC/w=="}' "$url/credito.test.v1.Echo/Echo" \
    >"$TMP/out" 2>&1; then
    json_eq "$name: Echo bytes payload round trip" \
      "{\"text\":\"x\",\"payload\":\"AAEC/w==\",\"seq\":1,\"serverPid\":$pid}" "$TMP/out"
  else
    fail "$name: Echo with payload failed: $(cat "$TMP/out")"
  fi
  if bcurl -d '{"n":3}' "$url/credito.test.v1.Echo/Count" >"$TMP/out" 2>&1; then
    json_eq "$name: Count n=3 streams seq 1..3" \
      '[{"text":"1","seq":1},{"text":"2","seq":2},{"text":"3","seq":3}]' "$TMP/out"
  else
    fail "$name: Count failed: $(cat "$TMP/out")"
  fi
  local ten='{"payload":"AAAAAAAAAAAAAA=="}' # 10 zero bytes
  if printf '%s\n%s\n%s\n' "$ten" "$ten" "$ten" |
    bcurl -d @- "$url/credito.test.v1.Echo/Sum" >"$TMP/out" 2>&1; then
    json_eq "$name: Sum of 3 x 10 bytes" '{"count":3,"bytes":"30"}' "$TMP/out"
  else
    fail "$name: Sum failed: $(cat "$TMP/out")"
  fi
  if printf '{"text":"one"}\n{"text":"two"}\n{"text":"three"}\n' |
    bcurl -d @- "$url/credito.test.v1.Echo/Chat" >"$TMP/out" 2>&1; then
    json_eq "$name: Chat echoes 3 messages in order" \
      '[{"text":"one"},{"text":"two"},{"text":"three"}]' "$TMP/out"
  else
    fail "$name: Chat failed: $(cat "$TMP/out")"
  fi
  if bcurl -d '{"failCode":9}' "$url/credito.test.v1.Echo/Echo" >"$TMP/out" 2>&1; then
    fail "$name: Echo fail_code=9 succeeded"
  elif grep -q '"code": *"failed_precondition"' "$TMP/out" &&
    grep -q 'failed as asked' "$TMP/out"; then
    pass "$name: Echo fail_code=9 is FAILED_PRECONDITION"
  else
    fail "$name: Echo fail_code=9: $(tr '\n' ' ' <"$TMP/out")"
  fi
  if bcurl -d '{}' "$url/credito.test.v1.Echo/NoSuch" >"$TMP/out" 2>&1; then
    fail "$name: an undeclared method succeeded"
  elif grep -qi 'NoSuch' "$TMP/out"; then
    pass "$name: an undeclared method is refused ($(head -n1 "$TMP/out"))"
  else
    fail "$name: an undeclared method: $(tr '\n' ' ' <"$TMP/out")"
  fi
  stop_server "$pid" "$name"
}

echo "# buf $("$BUF" --version 2>&1), build dir $BUILD"
# The registry keeps its state in a store: a fresh one under $TMP, never the user's.
export CREDITO_STORE="file://$TMP/registry-store"
check_service_program credito-registry "$BUILD/services/registry/credito-registry" \
  "$SRC/proto/credito/v1/registry.proto" yes
# The trainer's registry: a port nobody listens on (the calls here never get that far).
CREDITO_REGISTRY=127.0.0.1:1 check_service_program credito-trainer \
  "$BUILD/services/trainer/credito-trainer" "$SRC/proto/credito/v1/trainer.proto" yes
check_trainer_train
# The predictor with no model (no registry to reach, no cache): up, but NOT_SERVING.
CREDITO_REGISTRY=127.0.0.1:1 CREDITO_CACHE_DIR=off READY=listening check_service_program \
  credito-predictor "$BUILD/services/predictor/credito-predictor" \
  "$SRC/proto/credito/v1/predictor.proto" yes NOT_SERVING
check_predictor_without_model
check_echo

echo "# $CHECKS checks, $FAILS failed"
[[ $FAILS -eq 0 ]]
