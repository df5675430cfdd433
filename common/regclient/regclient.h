/* regclient: the registry calls more than one program makes: unary calls with errors named by
 * method, and the chunked transfers of dataset bytes and artifacts (a header message, then
 * chunks), capped on the way in. */
#ifndef CREDITO_REGCLIENT_H
#define CREDITO_REGCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "credito/v1/registry.pb-c.h"
#include "err.h"
#include "rpc.h"

/* Where the registry is. */
struct regc {
  rpc_channel *ch;    /* borrowed */
  int64_t timeout_ms; /* per unary call; transfers get ten times this */
};

/* One unary Registry call: method is the short name ("CreateRun"); the response lands in a.
 * On failure err reads "registry METHOD: <the registry's message>" with its code. */
int regc_call(const struct regc *r, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, cm_arena *a, void *resp,
              struct cm_error *err);

/* Reads dataset bytes md5 (at most max bytes, else CM_E_TOOLARGE) into out (initialised). */
int regc_dataset_get(const struct regc *r, const char *md5, size_t max, struct cm_buf *out,
                     struct cm_error *err);

/* Stores bytes as content-addressed dataset bytes; md5 is their lowercase hex MD5. */
int regc_dataset_put(const struct regc *r, const char *bytes, size_t len, const char *md5,
                     struct cm_error *err);

/* Reads artifact blob key (at most max bytes, else CM_E_TOOLARGE) into out (initialised). */
int regc_artifact_get(const struct regc *r, const char *key, size_t max, struct cm_buf *out,
                      struct cm_error *err);

/* Uploads bytes as run artifact path with content_type; the registry checks size and SHA-256.
 * *out (in a) is the stored artifact. */
int regc_artifact_put(const struct regc *r, const char *run_id, const char *path,
                      const char *content_type, const uint8_t *bytes, size_t len,
                      const char *sha256, cm_arena *a, Credito__V1__Artifact **out,
                      struct cm_error *err);

/* Lowercase hex MD5 of bytes into hex. 0 or CM_E_INTERNAL. */
int regc_md5_hex(const void *bytes, size_t len, char hex[33]);

#endif
