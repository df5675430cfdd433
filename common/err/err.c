/* err: lookups over the CM_ERRORS table, the gRPC status names, and the
 * formatting of struct cm_error messages. */
#include "err.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* One row of CM_ERRORS, for lookups by code. */
struct err_row {
  int code;
  const char *name;
  const char *text;
  int grpc;
  int http;
};

#define ERR_ROW(name, value, text, grpc, http) {value, #name, text, grpc, http},
static const struct err_row err_rows[] = {CM_ERRORS(ERR_ROW)};
#undef ERR_ROW

#define ERR_NROWS (sizeof(err_rows) / sizeof(err_rows[0]))

/* gRPC's 17 canonical statuses, indexed by number, with the CM code each
 * maps back to. Numbers are fixed by the gRPC spec (doc/statuscodes.md). */
static const struct {
  const char *name;
  int code;
} grpc_rows[] = {
    {"OK", CM_OK},
    {"CANCELLED", CM_E_CANCELLED},
    {"UNKNOWN", CM_E_UNKNOWN},
    {"INVALID_ARGUMENT", CM_E_INVALID},
    {"DEADLINE_EXCEEDED", CM_E_DEADLINE},
    {"NOT_FOUND", CM_E_NOTFOUND},
    {"ALREADY_EXISTS", CM_E_EXISTS},
    {"PERMISSION_DENIED", CM_E_PERMISSION},
    {"RESOURCE_EXHAUSTED", CM_E_EXHAUSTED},
    {"FAILED_PRECONDITION", CM_E_FAILED_PRECONDITION},
    {"ABORTED", CM_E_ABORTED},
    {"OUT_OF_RANGE", CM_E_OUT_OF_RANGE},
    {"UNIMPLEMENTED", CM_E_UNIMPLEMENTED},
    {"INTERNAL", CM_E_INTERNAL},
    {"UNAVAILABLE", CM_E_UNAVAILABLE},
    {"DATA_LOSS", CM_E_CORRUPT},
    {"UNAUTHENTICATED", CM_E_UNAUTHENTICATED},
};

#define GRPC_NROWS    ((int)(sizeof(grpc_rows) / sizeof(grpc_rows[0])))
#define GRPC_INTERNAL 13

/* The table row for code, or NULL when code is not in the table. */
static const struct err_row *err_row_find(int code)
{
  const struct err_row *row = NULL;
  size_t i;

  for (i = 0; i < ERR_NROWS; i++) {
    if (err_rows[i].code == code) {
      row = &err_rows[i];
      break;
    }
  }
  return row;
}

/* How much of buf[0..len) to keep so the text does not end inside a UTF-8
 * sequence: a lead byte missing some of its continuation bytes is dropped
 * with them. Text that is not UTF-8 anyway is left alone. */
static size_t err_utf8_trim(const char *buf, size_t len)
{
  size_t i = len;
  size_t cont = 0;
  size_t need = 1;
  unsigned char lead = 0;

  while (i > 0 && cont < 3 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) {
    i--;
    cont++;
  }
  if (i > 0)
    lead = (unsigned char)buf[i - 1];
  if (lead >= 0xF0)
    need = 4;
  else if (lead >= 0xE0)
    need = 3;
  else if (lead >= 0xC0)
    need = 2;
  return (need > 1 && cont + 1 < need) ? i - 1 : len;
}

int cm_error_set(struct cm_error *err, int code, const char *fmt, ...)
{
  char tmp[CM_ERROR_MSG_SIZE];
  va_list ap;
  int n;
  size_t len;

  if (!err)
    goto out;
  if (!fmt) {
    snprintf(tmp, sizeof(tmp), "%s", cm_code_text(code));
  } else {
    /* Format into a copy first: the arguments may alias err->msg. */
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
      snprintf(tmp, sizeof(tmp), "%s", cm_code_text(code));
    else if ((size_t)n >= sizeof(tmp)) {
      len = err_utf8_trim(tmp, sizeof(tmp) - 1);
      tmp[len] = '\0';
    }
  }
  err->code = code;
  memcpy(err->msg, tmp, sizeof(tmp));
out:
  return code;
}

void cm_error_clear(struct cm_error *err)
{
  if (err) {
    err->code = CM_OK;
    err->msg[0] = '\0';
  }
}

const char *cm_code_name(int code)
{
  const struct err_row *row = err_row_find(code);

  return row ? row->name : "CM_E_UNKNOWN";
}

const char *cm_code_text(int code)
{
  const struct err_row *row = err_row_find(code);

  return row ? row->text : "unknown error";
}

int cm_code_to_grpc(int code)
{
  const struct err_row *row = err_row_find(code);

  return row ? row->grpc : GRPC_INTERNAL;
}

int cm_code_to_http(int code)
{
  const struct err_row *row = err_row_find(code);

  return row ? row->http : 500;
}

int cm_code_from_grpc(int grpc_status)
{
  int in_range = grpc_status >= 0 && grpc_status < GRPC_NROWS;

  return in_range ? grpc_rows[grpc_status].code : CM_E_UNKNOWN;
}

const char *cm_grpc_code_name(int grpc_status)
{
  int in_range = grpc_status >= 0 && grpc_status < GRPC_NROWS;

  return in_range ? grpc_rows[grpc_status].name : "UNKNOWN";
}
