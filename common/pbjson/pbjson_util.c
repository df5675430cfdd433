/* pbjson helpers shared by both directions: error paths, protobuf-c type facts, base64 (RFC 4648,
 * both alphabets on input) and a UTF-8 check matching jansson's. */
#include "pbjson_int.h"

#include <stdio.h>
#include <string.h>

void pbjson_path_render(const struct pbjson_path *p, unsigned nseg, char *buf)
{
  size_t len = 1;
  unsigned i;
  int n;

  buf[0] = '$';
  buf[1] = '\0';
  for (i = 0; i < nseg && i < PBJSON_MAX_DEPTH; i++) {
    if (p->seg[i].index >= 0)
      n = snprintf(buf + len, PBJSON_PATH_MAX - len, ".%s[%ld]", p->seg[i].name, p->seg[i].index);
    else
      n = snprintf(buf + len, PBJSON_PATH_MAX - len, ".%s", p->seg[i].name);
    if (n < 0 || (size_t)n >= PBJSON_PATH_MAX - len) {
      memcpy(buf + PBJSON_PATH_MAX - 4, "...", 4);
      return;
    }
    len += (size_t)n;
  }
}

size_t pbjson_type_size(ProtobufCType t)
{
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return sizeof(uint64_t);
  case PROTOBUF_C_TYPE_FLOAT:
    return sizeof(float);
  case PROTOBUF_C_TYPE_DOUBLE:
    return sizeof(double);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  default: /* the 32-bit integers and enums */
    return sizeof(uint32_t);
  }
}

const char *pbjson_type_name(ProtobufCType t)
{
  static const char *const names[] = {
      "int32",   "sint32", "sfixed32", "int64", "sint64", "sfixed64", "uint32", "fixed32", "uint64",
      "fixed64", "float",  "double",   "bool",  "enum",   "string",   "bytes",  "message",
  };

  if ((unsigned)t < sizeof(names) / sizeof(names[0]))
    return names[t];
  return "unknown";
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t pbjson_base64_len(size_t n)
{
  return (n + 2) / 3 * 4;
}

void pbjson_base64_encode(const uint8_t *in, size_t n, char *out)
{
  size_t i = 0;
  uint32_t v;

  for (; i + 3 <= n; i += 3) {
    v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *out++ = b64_alphabet[v >> 18];
    *out++ = b64_alphabet[(v >> 12) & 63];
    *out++ = b64_alphabet[(v >> 6) & 63];
    *out++ = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    v = (uint32_t)in[i] << 16;
    *out++ = b64_alphabet[v >> 18];
    *out++ = b64_alphabet[(v >> 12) & 63];
    *out++ = '=';
    *out++ = '=';
  } else if (n - i == 2) {
    v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    *out++ = b64_alphabet[v >> 18];
    *out++ = b64_alphabet[(v >> 12) & 63];
    *out++ = b64_alphabet[(v >> 6) & 63];
    *out++ = '=';
  }
  *out = '\0';
}

/* The 6-bit value of a base64 character of either alphabet, or -1. */
static int b64_value(unsigned char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

bool pbjson_base64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen)
{
  size_t len = n, i, o = 0;
  uint32_t acc = 0;
  int bits = 0, v;

  /* Up to two '=' may end the text, and then it must be whole 4-character groups. */
  while (len > 0 && n - len < 2 && in[len - 1] == '=')
    len--;
  if ((len < n && n % 4 != 0) || len % 4 == 1)
    return false;
  for (i = 0; i < len; i++) {
    v = b64_value((unsigned char)in[i]);
    if (v < 0)
      return false;
    acc = (acc << 6 | (uint32_t)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  *outlen = o;
  return true;
}

/* Length of the UTF-8 sequence that lead byte c starts, or 0 if c cannot start one. */
static size_t utf8_seq_len(unsigned char c)
{
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    return 2;
  if (c >= 0xe0 && c <= 0xef)
    return 3;
  if (c >= 0xf0 && c <= 0xf4)
    return 4;
  return 0;
}

bool pbjson_utf8_valid(const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, len, k;
  uint32_t cp;

  while (i < n) {
    len = utf8_seq_len(u[i]);
    if (len == 0 || len > n - i)
      return false;
    cp = len == 1 ? u[i] : (uint32_t)(u[i] & (0x7f >> len));
    for (k = 1; k < len; k++) {
      if ((u[i + k] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (u[i + k] & 0x3f);
    }
    /* Overlong 3- and 4-byte forms, surrogates, and beyond U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}
