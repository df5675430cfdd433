/* served: reference-counted model versions and the lock-free slot that publishes them. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"
#include "served.h"

struct served *served_new(md_model *model, const char *name, int64_t version, const char *alias,
                          const char *sha256, const char *run_id, const uint8_t *record,
                          size_t record_len)
{
  struct served *s = cm_calloc(1, sizeof *s);
  if (!s) {
    md_model_free(model);
    return NULL;
  }
  atomic_init(&s->refs, 1);
  s->model = model;
  s->name = cm_strdup(name ? name : "");
  s->version = version;
  s->alias = cm_strdup(alias ? alias : "");
  snprintf(s->sha256, sizeof s->sha256, "%s", sha256 ? sha256 : "");
  s->run_id = cm_strdup(run_id ? run_id : "");
  s->record = cm_malloc(record_len ? record_len : 1);
  s->record_len = record_len;
  if (!s->name || !s->alias || !s->run_id || !s->record) {
    served_release(s);
    return NULL;
  }
  if (record_len)
    memcpy(s->record, record, record_len);
  return s;
}

void served_release(struct served *s)
{
  if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  md_model_free(s->model);
  cm_free(s->name);
  cm_free(s->alias);
  cm_free(s->run_id);
  cm_free(s->record);
  cm_free(s);
}

/* A reader announces itself in entering before it loads cur and leaves after its reference is
 * taken. A swapper exchanges cur first, then waits until entering drops to zero: any reader
 * that could have loaded the old pointer has by then taken its reference, so dropping the
 * slot's reference cannot free a version a reader is about to use. */
struct served *served_acquire(struct served_slot *slot)
{
  struct served *s;
  atomic_fetch_add(&slot->entering, 1);
  s = atomic_load(&slot->cur);
  if (s)
    atomic_fetch_add(&s->refs, 1);
  atomic_fetch_sub(&slot->entering, 1);
  return s;
}

void served_swap(struct served_slot *slot, struct served *s)
{
  struct served *old = atomic_exchange(&slot->cur, s);
  while (atomic_load(&slot->entering) != 0)
    sched_yield();
  served_release(old);
}
