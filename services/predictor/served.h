/* served: the model version the predictor serves, and the slot that swaps it. A request takes a
 * reference (served_acquire), scores with it, and drops it (served_release); a swap publishes
 * the new version with one atomic exchange and frees the old one when its last request ends, so
 * requests in flight finish on the version they started with and no lock is held while scoring. */
#ifndef CREDITO_SERVED_H
#define CREDITO_SERVED_H

#include <stdatomic.h>
#include <stdint.h>

#include "model.h"

/* One loaded, verified model version. Immutable once published. */
struct served {
  atomic_int refs;       /* the slot's reference + one per request using it */
  md_model *model;       /* owned */
  char *name;            /* registered model name, owned */
  int64_t version;       /* its version */
  char *alias;           /* alias followed ("" when pinned), owned */
  char sha256[65];       /* of the artifact bytes, matching the version record */
  char *run_id;          /* run that trained it, owned */
  int64_t loaded_at_ms;  /* when this process loaded it */
  uint8_t *record;       /* the version record (credito.v1.ModelVersion bytes), owned */
  size_t record_len;
};

/* Builds a served version taking model (freed on failure too); strings are copied. NULL when
 * out of memory. refs starts at 1 (the caller's). */
struct served *served_new(md_model *model, const char *name, int64_t version, const char *alias,
                          const char *sha256, const char *run_id, const uint8_t *record,
                          size_t record_len);

/* Drops one reference; frees s with the last. NULL does nothing. */
void served_release(struct served *s);

/* The slot: the current version, or none. Zero-initialise it. */
struct served_slot {
  _Atomic(struct served *) cur; /* published version (holds one reference), or NULL */
  atomic_int entering;          /* readers between loading cur and taking their reference */
};

/* A reference to the current version (release it with served_release), or NULL when none is
 * loaded. Lock-free: a swap never blocks it. */
struct served *served_acquire(struct served_slot *slot);

/* Publishes s (takes the caller's reference) and releases the previous version once no reader
 * can still be taking a reference to it. s may be NULL to unpublish. */
void served_swap(struct served_slot *slot, struct served *s);

#endif
