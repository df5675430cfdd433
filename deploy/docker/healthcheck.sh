#!/bin/sh
# credito-healthcheck [PROGRAM [PORT]]: exits 0 when the Credito program in this container is
# healthy. gRPC servers (registry, trainer, predictor): grpc.health.v1 says SERVING, through
# `creditoctl health` (the registry serves once its store has loaded, the predictor once a
# verified model is published). The gateway: GET /readyz answers 200 (a predictor serves a
# model). Without arguments the program is PID 1's (the entrypoint execs it) and the port is
# CREDITO_LISTEN's, else the program's default; other programs (one-shot jobs) count as healthy.
set -eu

prog=${1:-}
if [ -z "$prog" ]; then
  prog=$(tr '\0' '\n' </proc/1/cmdline | head -n 1)
  prog=${prog##*/}
fi
prog=${prog#credito-}

case $prog in
  registry) port=50051 ;;
  trainer) port=50052 ;;
  predictor) port=50053 ;;
  gateway) port=8080 ;;
  *) exit 0 ;;
esac
if [ -n "${2:-}" ]; then
  port=$2
elif [ -n "${CREDITO_LISTEN:-}" ]; then
  port=${CREDITO_LISTEN##*:}
fi

if [ "$prog" = gateway ]; then
  exec curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"
fi
exec creditoctl --timeout 2000 health "127.0.0.1:$port"
