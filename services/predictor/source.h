/* source: where the served model comes from. A thread resolves --model through the registry
 * (NAME@ALIAS followed over WatchModel, re-subscribing with backoff when the stream breaks;
 * NAME/N pinned), fetches each new version's artifact, refuses bytes whose SHA-256 differs from
 * the version record, loads and publishes it in the slot, and keeps a local cache of verified
 * artifacts so a restart with the registry or store down still serves the last model. A failed
 * load keeps the current model and is remembered for GetModelInfo. */
#ifndef CREDITO_SOURCE_H
#define CREDITO_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "regclient.h"
#include "served.h"

/* Settings, borrowed for the source's life. */
struct source_opts {
  struct regc reg;         /* the registry */
  const char *model_ref;   /* "name@alias" or "name/N" */
  const char *cache_dir;   /* verified artifacts and the last version per ref; NULL: no cache */
  size_t max_artifact;     /* largest artifact accepted, bytes */
  void (*on_serving)(void *ctx); /* called (from the source's thread) after each publish */
  void *ctx;
};

typedef struct source source;

/* The last failed load since the served version loaded (msg empty when none); version 0 with a
 * message when the registry could not be followed at all. */
struct source_error {
  int64_t version;
  char msg[160];
  int64_t time_ms;
};

/* Parses a model ref: "name@alias" (alias set, *version 0) or "name/N" (alias "", *version N).
 * name and alias are the caller's buffers of 256 bytes. 0 or CM_E_INVALID. */
int source_parse_ref(const char *ref, char *name, char *alias, int64_t *version,
                     struct cm_error *err);

/* Starts the source thread publishing into slot (borrowed). If the cache holds a verified
 * artifact for this ref, it is published before this returns. NULL with err on failure. */
source *source_start(const struct source_opts *o, struct served_slot *slot, struct cm_error *err);

/* Stops the thread (cancels a watch in progress) and frees the source. NULL does nothing. */
void source_stop(source *s);

/* Copies the last load failure into *out. */
void source_last_error(source *s, struct source_error *out);

#endif
