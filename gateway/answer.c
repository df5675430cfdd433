/* answer: the /predict answer written straight into a buffer. It is the answer every request
 * gets, and building it as jansson values and dumping them was a fifth of the gateway's CPU;
 * this writes the very bytes json_dumps(JSON_COMPACT | JSON_ENSURE_ASCII) wrote for those values
 * (tests/unit/test_gateway_answer.c holds it to that, byte for byte). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "err.h"

/* A JSON string as jansson writes it with JSON_ENSURE_ASCII: the short escapes, \u00XX for the
 * other control characters, \uXXXX (surrogate pairs above U+FFFF) for everything past ASCII.
 * CM_E_INVALID on bytes that are not UTF-8 (jansson refuses those too). */
static int put_str(struct cm_buf *o, const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  char esc[16];
  int rc = cm_buf_addc(o, '"');

  while (!rc && *p) {
    const unsigned char *run = p;
    uint32_t cp;
    int len;

    while (*p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\')
      p++;
    if (p > run)
      rc = cm_buf_add(o, run, (size_t)(p - run));
    if (rc || !*p)
      break;
    if (*p < 0x80) {
      switch (*p) {
      case '"': rc = cm_buf_adds(o, "\\\""); break;
      case '\\': rc = cm_buf_adds(o, "\\\\"); break;
      case '\b': rc = cm_buf_adds(o, "\\b"); break;
      case '\f': rc = cm_buf_adds(o, "\\f"); break;
      case '\n': rc = cm_buf_adds(o, "\\n"); break;
      case '\r': rc = cm_buf_adds(o, "\\r"); break;
      case '\t': rc = cm_buf_adds(o, "\\t"); break;
      case 0x7F: rc = cm_buf_addc(o, 0x7F); break;
      default:
        snprintf(esc, sizeof esc, "\\u%04X", *p);
        rc = cm_buf_adds(o, esc);
      }
      p++;
      continue;
    }
    /* A UTF-8 sequence: its code point. */
    if (*p >= 0xF0 && *p <= 0xF4) {
      cp = *p & 0x07u;
      len = 4;
    } else if (*p >= 0xE0) {
      cp = *p & 0x0Fu;
      len = 3;
    } else if (*p >= 0xC2 && *p <= 0xDF) {
      cp = *p & 0x1Fu;
      len = 2;
    } else {
      return CM_E_INVALID;
    }
    for (int i = 1; i < len; i++) {
      if ((p[i] & 0xC0) != 0x80)
        return CM_E_INVALID;
      cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return CM_E_INVALID;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      snprintf(esc, sizeof esc, "\\u%04X\\u%04X", 0xD800u | (cp >> 10), 0xDC00u | (cp & 0x3FFu));
    } else {
      snprintf(esc, sizeof esc, "\\u%04X", cp);
    }
    rc = cm_buf_adds(o, esc);
    p += len;
  }
  return rc ? rc : cm_buf_addc(o, '"');
}

/* %.17g of v, byte for byte as glibc's printf writes it, for 1e-11 <= |v| < 1e17; 0 for any
 * other v (the caller then asks snprintf). In that range v = m * 2^e2 with m < 2^53, and v * 10^k
 * for the k that leaves 17 digits before the point is m * 5^k * 2^(k + e2) with 5^k < 2^63: an
 * exact 128-bit product, shifted with its remainder kept, so the 17 digits are the exact value's,
 * rounded half to even as printf rounds them. printf's %.17g was 8% of the gateway's CPU. */
static int g17(char *b, double v)
{
  static const uint64_t p10_16 = 10000000000000000ull, p10_17 = 100000000000000000ull;
  double a = fabs(v);
  char d[17];
  uint64_t m, n = 0, p5 = 1;
  int x, e2, len = 0;

  if (!(a >= 1e-11 && a < 1e17))
    return 0;
  m = (uint64_t)ldexp(frexp(a, &e2), 53);
  e2 -= 53;
  x = (int)floor(log10(a)); /* the decimal exponent, or one off: corrected below */
  for (int tries = 0; tries < 3; tries++) {
    int k = 16 - x, s;
    unsigned __int128 t, q;
    if (k < 0 || k > 27)
      return 0;
    p5 = 1;
    for (int i = 0; i < k; i++)
      p5 *= 5;
    t = (unsigned __int128)m * p5;
    s = k + e2;
    if (s >= 0) {
      if (s > 10)
        return 0;
      q = t << s;
    } else {
      unsigned __int128 rem, half;
      if (s < -120)
        return 0;
      q = t >> -s;
      rem = t & ((((unsigned __int128)1) << -s) - 1);
      half = ((unsigned __int128)1) << (-s - 1);
      if (q < p10_16 || q >= p10_17) { /* x was one off: its floor says which way */
        x += q < p10_16 ? -1 : 1;
        continue;
      }
      if (rem > half || (rem == half && (q & 1)))
        q++;
    }
    if (q < p10_16 || q > p10_17) {
      x += q < p10_16 ? -1 : 1;
      continue;
    }
    if (q == p10_17) { /* rounded up to the next power of ten */
      q = p10_16;
      x++;
    }
    n = (uint64_t)q;
    break;
  }
  if (!n)
    return 0;
  for (int i = 16; i >= 0; i--, n /= 10)
    d[i] = (char)('0' + n % 10);
  if (signbit(v))
    b[len++] = '-';
  if (x < -4) { /* d.dddde-XX, trailing zeros of the fraction dropped */
    int last = 16;
    while (last > 0 && d[last] == '0')
      last--;
    b[len++] = d[0];
    if (last > 0) {
      b[len++] = '.';
      memcpy(b + len, d + 1, (size_t)last);
      len += last;
    }
    len += snprintf(b + len, 8, "e-%02d", -x);
    return len;
  }
  if (x >= 0) { /* x + 1 digits, the point, the rest without trailing zeros */
    int last = 16;
    memcpy(b + len, d, (size_t)x + 1);
    len += x + 1;
    while (last > x && d[last] == '0')
      last--;
    if (last > x) {
      b[len++] = '.';
      memcpy(b + len, d + x + 1, (size_t)(last - x));
      len += last - x;
    }
  } else { /* 0.000ddd */
    int last = 16;
    while (last > 0 && d[last] == '0')
      last--;
    b[len++] = '0';
    b[len++] = '.';
    for (int i = 0; i < -x - 1; i++)
      b[len++] = '0';
    memcpy(b + len, d, (size_t)last + 1);
    len += last + 1;
  }
  b[len] = '\0';
  return len;
}

/* A real as jansson writes it: %.17g, ".0" when that reads as an integer, the exponent without
 * '+' or leading zeros. CM_E_INVALID for NaN and the infinities (jansson has no such value). */
static int put_real(struct cm_buf *o, double v)
{
  char b[64], *e;
  int n;

  if (!isfinite(v))
    return CM_E_INVALID;
  n = g17(b, v);
  if (!n)
    n = snprintf(b, sizeof b - 2, "%.17g", v);
  if (n < 0 || (size_t)n >= sizeof b - 2)
    return CM_E_INVALID;
  if (!strchr(b, '.') && !strchr(b, 'e'))
    memcpy(b + n, ".0", 3);
  e = strchr(b, 'e');
  if (e) {
    char *from = e + 1, *to = e + 1;
    if (*from == '+')
      from++;
    else if (*from == '-')
      from++, to++;
    while (*from == '0' && from[1])
      from++;
    memmove(to, from, strlen(from) + 1);
  }
  return cm_buf_adds(o, b);
}

int gw_answer_predict(struct cm_buf *o, const Credito__V1__Prediction *p, const char *request_id,
                      const char *model, int64_t version, const char *alias)
{
  char num[64];
  int rc = cm_buf_adds(o, "{\"probability\":");

  rc = rc ? rc : put_real(o, p->probability);
  rc = rc ? rc : cm_buf_adds(o, ",\"score\":");
  rc = rc ? rc : put_real(o, p->score);
  rc = rc ? rc : cm_buf_adds(o, p->decision == CREDITO__V1__DECISION__DECISION_DECLINE
                                    ? ",\"decision\":\"decline\",\"reasons\":["
                                    : ",\"decision\":\"approve\",\"reasons\":[");
  for (size_t i = 0; !rc && i < p->n_reasons; i++) {
    const Credito__V1__Reason *r = p->reasons[i];
    rc = cm_buf_adds(o, i ? ",{\"feature\":" : "{\"feature\":");
    rc = rc ? rc : put_str(o, r->feature);
    rc = rc ? rc : cm_buf_adds(o, ",\"impact\":");
    rc = rc ? rc : put_real(o, r->impact);
    rc = rc ? rc : cm_buf_adds(o, ",\"text\":");
    rc = rc ? rc : put_str(o, r->text);
    rc = rc ? rc : cm_buf_addc(o, '}');
  }
  rc = rc ? rc : cm_buf_adds(o, "],\"request_id\":");
  rc = rc ? rc : put_str(o, request_id);
  rc = rc ? rc : cm_buf_adds(o, ",\"model\":{\"name\":");
  rc = rc ? rc : put_str(o, model);
  snprintf(num, sizeof num, ",\"version\":%" PRId64 ",\"alias\":", version);
  rc = rc ? rc : cm_buf_adds(o, num);
  rc = rc ? rc : put_str(o, alias);
  return rc ? rc : cm_buf_adds(o, "}}");
}
