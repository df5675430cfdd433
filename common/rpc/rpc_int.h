/* Shared inside the RPC module: message <-> byte buffer, file reading, and the two built-in
 * services (health, reflection) that every server carries. Not part of the public interface. */
#ifndef CREDITO_RPC_INT_H
#define CREDITO_RPC_INT_H

#include <grpc/grpc.h>

#include "rpc.h"

/* Completion-queue tag: the event's handler. Embedded in the structs that own an operation. */
struct rpc_tag {
  void (*fn)(struct rpc_tag *tag, bool ok);
};

/* Serializes msg into a new byte buffer (caller destroys it), failing with CM_E_TOOLARGE over
 * max bytes. *len gets the size. */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg, size_t max, size_t *len,
                           struct cm_error *err);

/* Decodes bb as desc into arena; NULL with CM_E_INVALID when the bytes are not such a message.
 * bb is borrowed. */
ProtobufCMessage *rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                             cm_arena *arena, struct cm_error *err);

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer the caller frees with
 * cm_free. NULL with err set. */
char *rpc_file_read(const char *path, size_t max, size_t *len, struct cm_error *err);

/* Converts an absolute deadline to milliseconds from now (INT64_MAX for none). */
int64_t rpc_deadline_remaining_ms(gpr_timespec deadline);

/* A deadline timeout_ms from now, or infinite when timeout_ms <= 0. */
gpr_timespec rpc_deadline_in(int64_t timeout_ms);

/* Health service: grpc.health.v1.Health Check and Watch. */
struct rpc_health;
struct rpc_health *rpc_health_new(void);
void rpc_health_free(struct rpc_health *h);
const struct rpc_service *rpc_health_service(struct rpc_health *h);
/* Makes a service name known (NOT_SERVING). */
int rpc_health_register(struct rpc_health *h, const char *service);
/* Sets a service's status; "" sets the server's own and every registered service's. */
void rpc_health_set(struct rpc_health *h, const char *service, bool serving);

/* Reflection service: grpc.reflection.v1 and v1alpha ServerReflection. */
struct rpc_reflection;
struct rpc_reflection *rpc_reflection_new(void);
void rpc_reflection_free(struct rpc_reflection *r);
/* Indexes a serialized FileDescriptorSet; the bytes are borrowed. Files already known are
 * skipped. */
int rpc_reflection_add_set(struct rpc_reflection *r, const uint8_t *set, size_t len,
                           struct cm_error *err);
/* Adds a name to ListServices (copied). */
int rpc_reflection_add_service(struct rpc_reflection *r, const char *name);
const struct rpc_service *rpc_reflection_service_v1(struct rpc_reflection *r);
const struct rpc_service *rpc_reflection_service_v1alpha(struct rpc_reflection *r);

#endif
