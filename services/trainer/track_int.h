/* track internals: the registry client calls the tracked training makes (track_reg.c). */
#ifndef CREDITO_TRACK_INT_H
#define CREDITO_TRACK_INT_H

#include "buf.h"
#include "credito/v1/registry.pb-c.h"
#include "track.h"

/* One unary Registry call: method is the short name ("CreateRun"); the response lands in a. */
int trk_call(const struct trk_opts *o, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, cm_arena *a, void *resp,
             struct cm_error *err);

/* Reads dataset bytes md5 (at most max bytes) into out (caller's, initialised). */
int trk_dataset_get(const struct trk_opts *o, const char *md5, size_t max, struct cm_buf *out,
                    struct cm_error *err);

/* Stores bytes as content-addressed dataset bytes; md5 is their lowercase hex MD5. */
int trk_dataset_put(const struct trk_opts *o, const char *bytes, size_t len, const char *md5,
                    struct cm_error *err);

/* Reads artifact blob key (at most max bytes) into out. */
int trk_artifact_get(const struct trk_opts *o, const char *key, size_t max, struct cm_buf *out,
                     struct cm_error *err);

/* Uploads bytes as run artifact path with content_type; the registry checks size and SHA-256.
 * *out (in a) is the stored artifact. */
int trk_artifact_put(const struct trk_opts *o, const char *run_id, const char *path,
                     const char *content_type, const uint8_t *bytes, size_t len,
                     const char *sha256, cm_arena *a, Credito__V1__Artifact **out,
                     struct cm_error *err);

/* Lowercase hex MD5 of bytes into hex. */
int trk_md5_hex(const void *bytes, size_t len, char hex[33]);

#endif
