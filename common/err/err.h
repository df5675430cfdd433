/* err: Credito's status codes and the caller-owned error value. One X-macro
 * table gives every code its name, text, gRPC status and HTTP status, so all
 * programs agree on them (the HTTP column follows gRPC-gateway's table). */
#ifndef CREDITO_ERR_H
#define CREDITO_ERR_H

/*
 * X(name, value, text, grpc_status, http_status)
 *
 * Values are stable: never renumber or reuse one, only append. grpc_status
 * is the canonical gRPC code number (0..16, as in grpc/status.h); they are
 * written as plain ints so this module needs no gRPC headers.
 */
#define CM_ERRORS(X)                                                                               \
  X(CM_OK, 0, "ok", 0 /* OK */, 200)                                                               \
  X(CM_E_INVALID, -1, "invalid argument", 3 /* INVALID_ARGUMENT */, 400)                           \
  X(CM_E_NOTFOUND, -2, "not found", 5 /* NOT_FOUND */, 404)                                        \
  X(CM_E_EXISTS, -3, "already exists", 6 /* ALREADY_EXISTS */, 409)                                \
  X(CM_E_PERMISSION, -4, "permission denied", 7 /* PERMISSION_DENIED */, 403)                      \
  X(CM_E_UNAUTHENTICATED, -5, "unauthenticated", 16 /* UNAUTHENTICATED */, 401)                    \
  X(CM_E_EXHAUSTED, -6, "resource exhausted", 8 /* RESOURCE_EXHAUSTED */, 429)                     \
  X(CM_E_TOOLARGE, -7, "too large", 8 /* RESOURCE_EXHAUSTED */, 413)                               \
  X(CM_E_FAILED_PRECONDITION, -8, "failed precondition", 9 /* FAILED_PRECONDITION */, 400)         \
  X(CM_E_ABORTED, -9, "aborted", 10 /* ABORTED */, 409)                                            \
  X(CM_E_OUT_OF_RANGE, -10, "out of range", 11 /* OUT_OF_RANGE */, 400)                            \
  X(CM_E_UNIMPLEMENTED, -11, "not implemented", 12 /* UNIMPLEMENTED */, 501)                       \
  X(CM_E_INTERNAL, -12, "internal error", 13 /* INTERNAL */, 500)                                  \
  X(CM_E_UNAVAILABLE, -13, "unavailable", 14 /* UNAVAILABLE */, 503)                               \
  X(CM_E_DEADLINE, -14, "deadline exceeded", 4 /* DEADLINE_EXCEEDED */, 504)                       \
  X(CM_E_CANCELLED, -15, "cancelled", 1 /* CANCELLED */, 499)                                      \
  X(CM_E_NOMEM, -16, "out of memory", 8 /* RESOURCE_EXHAUSTED */, 503)                             \
  X(CM_E_IO, -17, "i/o error", 14 /* UNAVAILABLE */, 503)                                          \
  X(CM_E_CORRUPT, -18, "data corrupt", 15 /* DATA_LOSS */, 500)                                    \
  X(CM_E_UNKNOWN, -19, "unknown error", 2 /* UNKNOWN */, 500)

#define CM_ERR_ENUM_ENTRY(name, value, text, grpc, http) name = value,
enum cm_code { CM_ERRORS(CM_ERR_ENUM_ENTRY) };
#undef CM_ERR_ENUM_ENTRY

/* Size of cm_error.msg, terminating NUL included. */
#define CM_ERROR_MSG_SIZE 160

/* An error as a code plus a human message, on the caller's storage. */
struct cm_error {
  int code;                    /* CM_OK or a negative CM_E_* value */
  char msg[CM_ERROR_MSG_SIZE]; /* NUL-terminated, "" when code is CM_OK */
};

/* Sets err->code = code and formats err->msg, truncating at a UTF-8
 * character boundary if too long. err may be NULL (then only the return
 * value matters); fmt NULL uses cm_code_text(code). The arguments may point
 * into err->msg itself, so "wrapping" an error is safe:
 *     cm_error_set(err, err->code, "loading %s: %s", path, err->msg);
 * Returns code, so callers can write rc = cm_error_set(err, CM_E_X, ...). */
int cm_error_set(struct cm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets err to CM_OK with an empty message. NULL does nothing. */
void cm_error_clear(struct cm_error *err);

/* The enum name of code, e.g. "CM_E_NOTFOUND"; "CM_E_UNKNOWN" for a value
 * not in the table. Static string, never NULL, never freed. */
const char *cm_code_name(int code);

/* A short lower-case description, e.g. "not found"; the text of
 * CM_E_UNKNOWN for a value not in the table. Static string. */
const char *cm_code_text(int code);

/* The canonical gRPC status number for code; 13 (INTERNAL) for a value not
 * in the table. */
int cm_code_to_grpc(int code);

/* The HTTP status for code; 500 for a value not in the table. */
int cm_code_to_http(int code);

/* The canonical CM code for a gRPC status number (8 RESOURCE_EXHAUSTED gives
 * CM_E_EXHAUSTED); CM_E_UNKNOWN for a number outside 0..16, as gRPC clients
 * treat unknown statuses as UNKNOWN. */
int cm_code_from_grpc(int grpc_status);

/* The gRPC name of a status number, e.g. "INVALID_ARGUMENT"; "UNKNOWN" for a
 * number outside 0..16. Static string. */
const char *cm_grpc_code_name(int grpc_status);

#endif
