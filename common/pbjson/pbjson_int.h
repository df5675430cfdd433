/* pbjson internals shared by the reader (JSON -> message) and the writer (message -> JSON): the
 * path of the value being converted, for error messages, field storage access, base64 and UTF-8.
 * Not part of the module's interface. */
#ifndef CREDITO_PBJSON_INT_H
#define CREDITO_PBJSON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "pbjson.h"

/* Where a converter is: seg[d] is the field being converted in the message at nesting level d
 * (the top message is level 0), with the element index when it is repeated. Names are borrowed
 * from the descriptor or the JSON object being read and live as long as the conversion. */
struct pbjson_path {
  unsigned depth; /* level of the message being converted */
  struct {
    const char *name; /* field name, or the JSON key it was given as */
    long index;       /* element of a repeated field, or -1 */
  } seg[PBJSON_MAX_DEPTH];
};

/* Room for a rendered path; longer paths are cut and end in "...". */
#define PBJSON_PATH_MAX 128

/* Renders "$" and the first nseg segments of p, such as "$.rows[3].features", into buf
 * (PBJSON_PATH_MAX bytes). */
void pbjson_path_render(const struct pbjson_path *p, unsigned nseg, char *buf);

/* The member at offset in msg. */
static inline void *pbjson_member(const void *msg, unsigned offset)
{
  return (char *)msg + offset;
}

/* Bytes one value of type t takes in a protobuf-c struct (the element size of a repeated field). */
size_t pbjson_type_size(ProtobufCType t);

/* The .proto name of type t ("int32", "double", ...). Static string. */
const char *pbjson_type_name(ProtobufCType t);

/* Length of the standard, padded base64 text of n bytes, NUL not counted. */
size_t pbjson_base64_len(size_t n);

/* Writes the standard, padded base64 text of the n bytes at in to out, which has room for
 * pbjson_base64_len(n) + 1 bytes, and terminates it. */
void pbjson_base64_encode(const uint8_t *in, size_t n, char *out);

/* Decodes n characters of standard or URL-safe base64 (padding optional) from in into out, which
 * has room for n / 4 * 3 + 2 bytes; *outlen gets the decoded length. Returns false for a
 * character outside both alphabets, padding anywhere but the end, or an impossible length. */
bool pbjson_base64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen);

/* True when the n bytes at s are well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or
 * code points above U+10FFFF), the same rule jansson applies. */
bool pbjson_utf8_valid(const char *s, size_t n);

#endif
