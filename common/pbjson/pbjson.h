/* pbjson: converts any protobuf-c message to and from JSON (jansson), driven only by the
 * message's descriptor, with proto3 JSON semantics (field names, enums by name, base64 bytes,
 * "NaN"/"Infinity"). The gateway's REST layer and the command line tools sit on it. */
#ifndef CREDITO_PBJSON_H
#define CREDITO_PBJSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "arena.h"
#include "err.h"

/* Flag for pbjson_from_message and pbjson_dump: also emit singular scalar and enum fields at
 * their default value and empty repeated fields (as []). Singular message fields that are unset
 * and oneof members whose case is not set stay omitted, as in protobuf's json_format. */
#define PBJSON_EMIT_DEFAULTS 1u

/* Flag for pbjson_to_message and pbjson_parse: skip object keys that name no field, and enum
 * names the enum does not have (the field keeps its default; a repeated field drops the
 * element), instead of failing. */
#define PBJSON_IGNORE_UNKNOWN 2u

/* Deepest message nesting accepted in either direction; the top message is level 1. */
#define PBJSON_MAX_DEPTH 64

/*
 * Converts msg (borrowed, not NULL) into a new JSON object, which the caller releases with
 * json_decref. Keys are the proto field names (snake_case), in field number order.
 *
 * proto3 rules: a singular field at its zero value, an empty repeated field and an unset message
 * are omitted (PBJSON_EMIT_DEFAULTS emits the first two); a oneof member is emitted when its case
 * is set, even at zero (but a oneof string or message whose pointer is NULL or the default is
 * treated as unset, as protobuf_c_message_pack does). proto2 optional fields are emitted when
 * present (has_ flag, or a pointer other than NULL and the default); required ones always.
 *
 * Values: enums as their value name ("RUN_STATUS_RUNNING"), a number the enum does not name as
 * that number; bytes as standard base64 with padding; 32-bit and 64-bit integers as JSON
 * integers, except a uint64/fixed64 above INT64_MAX (jansson's json_int_t is long long) which
 * becomes a decimal string; float/double as reals, NaN and infinities as the strings "NaN",
 * "Infinity", "-Infinity"; bool as true/false; repeated fields as arrays; messages as objects.
 * Map fields (no different from repeated entry messages in protobuf-c) come out as arrays of
 * {"key":..,"value":..} objects. Unknown fields kept by unpack are dropped.
 *
 * Returns NULL and fills err (may be NULL) on failure: CM_E_NOMEM, or CM_E_INVALID for a string
 * that is not UTF-8, a NULL message in a repeated field, or nesting deeper than
 * PBJSON_MAX_DEPTH, each naming the path ("$.rows[3].features[0].name").
 */
json_t *pbjson_from_message(const ProtobufCMessage *msg, unsigned flags, struct cm_error *err);

/*
 * Builds a message of type desc from the JSON object json (borrowed, not modified). Everything,
 * the message included, is allocated in arena (borrowed), so nothing needs freeing but the
 * arena; on failure *out is NULL and the partial allocations also stay in the arena. The result
 * passes protobuf_c_message_check and is only valid while the arena lives.
 *
 * Keys may be the proto field name ("run_id") or its lowerCamelCase JSON name ("runId"); giving
 * one field twice (under both names), or two non-null members of one oneof, is an error. null
 * means the field's default (as in json_format, a null oneof member sets nothing and does not
 * conflict); null inside an array, or for a proto2 required field, is an error, and every
 * required field must be given (protobuf-c could not pack the message otherwise).
 * Accepted values: integers as JSON integers, integral reals (1e3) or decimal strings ("123");
 * float/double as numbers, numeric strings or "NaN", "Infinity", "-Infinity"; bools as
 * true/false only; enums as the value name or an int32; bytes as standard or URL-safe base64,
 * padding optional; strings without NUL characters; messages as objects; repeated as arrays.
 * A uint64 above INT64_MAX must be a string: jansson's parser rejects such integers.
 *
 * Returns 0, or fills err (may be NULL) and returns: CM_E_INVALID for anything the rules above
 * refuse, naming the path and what was expected ("expected number at
 * $.features[2].value.number", "unknown field 'x' at $.a.b", integer out of range, bad base64,
 * nesting deeper than PBJSON_MAX_DEPTH); CM_E_NOMEM when the arena is out of memory or at its
 * limit (the arena's limit is the cap on what untrusted input can make us allocate).
 */
int pbjson_to_message(const json_t *json, const ProtobufCMessageDescriptor *desc, unsigned flags,
                      cm_arena *arena, ProtobufCMessage **out, struct cm_error *err);

/*
 * Parses len bytes of text (borrowed; need not be NUL-terminated) as one JSON object, rejecting
 * duplicate keys and \u0000, then converts it as pbjson_to_message does (same flags, arena and
 * ownership rules). A JSON syntax error or invalid UTF-8 is CM_E_INVALID "JSON syntax error at
 * line L column C: ..."; jansson running out of memory is CM_E_NOMEM, except that jansson 2.14
 * reports some of its allocation failures (copying a string) as syntax errors. The JSON tree is
 * allocated with jansson's allocator and freed before returning; the caller caps len, as jansson
 * needs several times len while parsing.
 */
int pbjson_parse(const char *text, size_t len, const ProtobufCMessageDescriptor *desc,
                 unsigned flags, cm_arena *arena, ProtobufCMessage **out, struct cm_error *err);

/*
 * Converts msg (borrowed) as pbjson_from_message does and renders it as compact JSON text, keys
 * in field number order. Returns a NUL-terminated string that the caller frees with cm_free
 * (it comes from the cm_mem allocator, not from jansson's, so swapping either does not matter),
 * or NULL with err filled as for pbjson_from_message.
 */
char *pbjson_dump(const ProtobufCMessage *msg, unsigned flags, struct cm_error *err);

#endif
