/* model/scorecard: probability of default to scorecard points and the decision, and reason
 * codes (the original features that pushed one applicant toward default most). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "model_int.h"

#define P_EPS 1e-15

void md_scorecard_init(struct md_scorecard *sc)
{
  sc->pdo = MD_SCORECARD_PDO;
  sc->base_score = MD_SCORECARD_BASE_SCORE;
  sc->base_odds = MD_SCORECARD_BASE_ODDS;
  sc->threshold = MD_SCORECARD_THRESHOLD;
}

double md_score_points(const struct md_scorecard *sc, double p)
{
  double factor = sc->pdo / log(2.0);
  double offset = sc->base_score - factor * log(sc->base_odds);
  p = p < P_EPS ? P_EPS : p > 1.0 - P_EPS ? 1.0 - P_EPS : p;
  return offset + factor * log((1.0 - p) / p);
}

bool md_score_declines(const struct md_scorecard *sc, double p) { return p >= sc->threshold; }

/* Copies the original feature name of prepared column j: a categorical column's name is
 * "<feature>=<category>", so cut at the first '='. */
static void reason_name(const struct md_prep *p, size_t j, char *dst, size_t cap)
{
  const char *name = p->names[j];
  size_t len = strlen(name);
  for (size_t i = 0; i < p->n_features; i++) {
    if ((int)p->features[i].col == p->source[j] && p->features[i].kind == DS_CATEGORICAL) {
      const char *eq = strchr(name, '=');
      len = eq ? (size_t)(eq - name) : len;
      break;
    }
  }
  len = len < cap - 1 ? len : cap - 1;
  memcpy(dst, name, len);
  dst[len] = '\0';
}

/* A candidate while ranking: small, so inserting moves few bytes; names come at the end. */
struct top {
  double impact;
  int column;
  size_t first; /* first prepared column of the feature, for its name */
};

/* Inserts a candidate into top[0..*n) of at most max, largest first; an equal impact goes after
 * the ones already there, so ties keep feature order. */
static void top_insert(struct top *top, size_t *n, size_t max, struct top c)
{
  size_t at = *n;
  while (at > 0 && top[at - 1].impact < c.impact)
    at--;
  if (at >= max)
    return;
  if (*n < max)
    (*n)++;
  memmove(&top[at + 1], &top[at], (*n - 1 - at) * sizeof *top);
  top[at] = c;
}

int md_reasons(const struct md_prep *p, const double *coef, const double *x, size_t max,
               struct md_reason *out, size_t *n)
{
  struct top top[MD_REASONS_MAX];
  size_t j = 0, k = 0;
  if (!p || !coef || !x || !n || (max && !out))
    return CM_E_INVALID;
  max = max < MD_REASONS_MAX ? max : MD_REASONS_MAX;
  /* A feature's prepared columns are contiguous (model_int.h), so one pass groups them. */
  while (j < p->width) {
    size_t first = j;
    int src = p->source[j];
    double total = 0.0;
    for (; j < p->width && p->source[j] == src; j++)
      total += coef[j] * x[j];
    if (total > 0.0)
      top_insert(top, &k, max, (struct top){total, src, first});
  }
  for (size_t i = 0; i < k; i++) {
    out[i].column = top[i].column;
    out[i].impact = top[i].impact;
    reason_name(p, top[i].first, out[i].feature, sizeof out[i].feature);
  }
  *n = k;
  return 0;
}

/* The integer |x| < 1e15 as %.15g writes it (all its digits, no exponent), without printf. */
static size_t integer_text(char *dst, double x)
{
  char tmp[24];
  size_t n = 0, k = 0;
  uint64_t u = (uint64_t)fabs(x);

  if (signbit(x))
    dst[k++] = '-';
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  while (n)
    dst[k++] = tmp[--n];
  return k;
}

size_t md_reason_text(char *dst, size_t cap, const char *feature, const struct md_value *v)
{
  static const char tail[] = " raised the risk of default";
  size_t fl = strlen(feature), k = fl;

  if (cap < fl + MD_REASON_TEXT_EXTRA) {
    if (cap)
      dst[0] = '\0';
    return 0;
  }
  memcpy(dst, feature, fl);
  if (v && v->kind == MD_VALUE_NUMBER) {
    memcpy(dst + k, " = ", 3);
    k += 3;
    if (isfinite(v->number) && fabs(v->number) < 1e15 && v->number == trunc(v->number))
      k += integer_text(dst + k, v->number);
    else
      k += (size_t)snprintf(dst + k, cap - k, "%.15g", v->number);
  } else if (v && v->kind == MD_VALUE_TEXT) {
    size_t tl = v->text_len;
    if (tl > MD_REASON_VALUE_MAX) {
      tl = MD_REASON_VALUE_MAX;
      while (tl > 0 && ((unsigned char)v->text[tl] & 0xc0) == 0x80)
        tl--;
    }
    memcpy(dst + k, " = ", 3);
    memcpy(dst + k + 3, v->text, tl);
    k += 3 + tl;
  } else {
    memcpy(dst + k, " (missing)", 10);
    k += 10;
  }
  memcpy(dst + k, tail, sizeof tail);
  return k + sizeof tail - 1;
}
