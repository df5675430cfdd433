/* Helpers shared by the RPC server and client: protobuf-c messages to and from gRPC byte
 * buffers, deadlines, and reading PEM files. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "call_int.h"
#include "mem.h"

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg, size_t max, size_t *len,
                           struct cm_error *err)
{
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice slice;
  grpc_byte_buffer *bb;

  if (n > max) {
    cm_error_set(err, CM_E_TOOLARGE, "%s message of %zu bytes is over the %zu-byte cap",
                 msg->descriptor->name, n, max);
    return NULL;
  }
  slice = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  if (len)
    *len = n;
  return bb;
}

ProtobufCMessage *rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                             cm_arena *arena, struct cm_error *err)
{
  grpc_byte_buffer_reader rd;
  grpc_slice all;
  ProtobufCMessage *msg;

  if (!grpc_byte_buffer_reader_init(&rd, bb)) {
    cm_error_set(err, CM_E_INVALID, "cannot read the %s message (bad compression)",
                 desc->name);
    return NULL;
  }
  all = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  msg = protobuf_c_message_unpack(desc, cm_arena_allocator(arena), GRPC_SLICE_LENGTH(all),
                                  GRPC_SLICE_START_PTR(all));
  if (!msg) {
    if (cm_arena_exceeded(arena))
      cm_error_set(err, CM_E_TOOLARGE, "%s message of %zu bytes is too large to decode",
                   desc->name, (size_t)GRPC_SLICE_LENGTH(all));
    else
      cm_error_set(err, CM_E_INVALID, "cannot decode %zu bytes as a %s message",
                   (size_t)GRPC_SLICE_LENGTH(all), desc->name);
  }
  grpc_slice_unref(all);
  return msg;
}

char *rpc_file_read(const char *path, size_t max, size_t *len, struct cm_error *err)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0;

  if (!f) {
    cm_error_set(err, CM_E_IO, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  buf = cm_malloc(max + 1);
  if (!buf) {
    cm_error_set(err, CM_E_NOMEM, "out of memory reading %s", path);
    goto out;
  }
  n = fread(buf, 1, max + 1, f);
  if (ferror(f) || n > max) {
    cm_error_set(err, ferror(f) ? CM_E_IO : CM_E_TOOLARGE, "cannot read %s: %s", path,
                 ferror(f) ? strerror(errno) : "file too large");
    cm_free(buf);
    buf = NULL;
    goto out;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
out:
  fclose(f);
  return buf;
}

int64_t rpc_deadline_remaining_ms(gpr_timespec deadline)
{
  gpr_timespec d = gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC);
  gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  gpr_timespec left;

  if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
    return INT64_MAX;
  left = gpr_time_sub(d, now);
  return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

gpr_timespec rpc_deadline_in(int64_t timeout_ms)
{
  if (timeout_ms <= 0)
    return gpr_inf_future(GPR_CLOCK_REALTIME);
  return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                      gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

int64_t rpc_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
