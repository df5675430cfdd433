#!/bin/sh
# credito-entrypoint: the image's entry point. The first argument names the program:
#   registry | trainer | predictor | gateway [FLAGS]   exec credito-NAME with FLAGS
#   ctl [ARGS]                                          exec creditoctl with ARGS
#   first-model                                         the compose file's one-shot training
#   anything else                                       exec'd as given (creditoctl, sh, ...)
# Before the predictor starts, a model baked into the image at build time (the MODEL build
# argument; deploy/docker/Dockerfile) is copied into the predictor's cache, so the predictor
# serves it at once, verified, even with the registry unreachable. An empty CREDITO_MODEL means
# the baked version, else credit-default@champion. Flags and environment are the programs' own
# (docs/); the seeding reads CREDITO_MODEL and CREDITO_CACHE_DIR.
set -eu

seed_dir=${CREDITO_MODEL_SEED:-/usr/local/share/credito/model}

log() { # level msg [detail]
  printf '{"level":"%s","prog":"credito-entrypoint","msg":"%s"%s}\n' "$1" "$2" "${3:+,$3}" >&2
}

# Copies the baked artifact and its record into the cache. The predictor looks the record up by
# the md5 of its --model string, so the baked ref (seed_dir/MODEL) must equal CREDITO_MODEL.
seed_cache() {
  [ -s "$seed_dir/MODEL" ] || return 0
  baked=$(cat "$seed_dir/MODEL")
  cache=${CREDITO_CACHE_DIR:-${HOME:-/var/lib/credito}/.credito/predictor-cache}
  if [ "$cache" = off ]; then
    log warn "the predictor cache is off: the baked model is not used" "\"baked\":\"$baked\""
    return 0
  fi
  if [ "${CREDITO_MODEL:-credit-default@champion}" != "$baked" ]; then
    log warn "CREDITO_MODEL is not the baked ref: the baked model is not used" \
      "\"baked\":\"$baked\",\"model\":\"${CREDITO_MODEL:-}\""
    return 0
  fi
  mkdir -p "$cache"
  for f in "$seed_dir"/*.pb "$seed_dir"/*.ref; do
    [ -f "$f" ] || continue
    # Always overwrite: the seed is the registered version itself, and a damaged cached copy
    # would otherwise send the predictor to the registry.
    cp -f "$f" "$cache/"
  done
  log info "baked model copied into the predictor cache" "\"model\":\"$baked\",\"dir\":\"$cache\""
}

cmd=${1:-predictor}
[ $# -eq 0 ] || shift
case $cmd in
  registry | trainer | gateway) exec "credito-$cmd" "$@" ;;
  predictor)
    if [ -z "${CREDITO_MODEL:-}" ]; then
      CREDITO_MODEL=$(cat "$seed_dir/MODEL" 2>/dev/null || echo credit-default@champion)
      export CREDITO_MODEL
    fi
    seed_cache
    exec credito-predictor "$@"
    ;;
  ctl) exec creditoctl "$@" ;;
  first-model) exec credito-first-model "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
