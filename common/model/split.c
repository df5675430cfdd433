/* model/split: seeded, stratified hold-out and k-fold splits. The PRNG is splitmix64, fixed
 * here rather than taken from libc so a seed gives the same split on every platform. */
#include <stdlib.h>

#include "mem.h"
#include "model.h"

uint64_t md_rand_next(uint64_t *state)
{
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound > 0, without modulo bias (rejects the incomplete last block). */
static uint64_t rand_below(uint64_t *state, uint64_t bound)
{
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t r;
  do
    r = md_rand_next(state);
  while (r >= limit);
  return r % bound;
}

static void shuffle(size_t *v, size_t n, uint64_t *state)
{
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)rand_below(state, (uint64_t)i);
    size_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

static int labels_check(const int *y, size_t n, struct cm_error *err)
{
  if (!y || n == 0)
    return cm_error_set(err, CM_E_INVALID, "split: no rows");
  for (size_t i = 0; i < n; i++)
    if (y[i] != 0 && y[i] != 1)
      return cm_error_set(err, CM_E_INVALID, "split: label %d at row %zu is not 0/1", y[i], i);
  return 0;
}

/* Rows of class c (ascending) into idx; returns their count. */
static size_t class_rows(const int *y, size_t n, int c, size_t *idx)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (y[i] == c)
      idx[m++] = i;
  return m;
}

int md_split_stratified(const int *y, size_t n, double test_fraction, uint64_t seed,
                        size_t *train, size_t *ntrain, size_t *test, size_t *ntest,
                        struct cm_error *err)
{
  uint64_t state = seed;
  size_t *idx = NULL;
  int rc = labels_check(y, n, err);

  *ntrain = *ntest = 0;
  if (rc)
    goto out;
  if (!(test_fraction >= 0.0 && test_fraction < 1.0)) {
    rc = cm_error_set(err, CM_E_INVALID, "split: test fraction %g is not in [0, 1)",
                      test_fraction);
    goto out;
  }
  idx = cm_calloc(n, sizeof *idx);
  if (!idx) {
    rc = cm_error_set(err, CM_E_NOMEM, "split: out of memory");
    goto out;
  }
  for (int c = 0; c <= 1; c++) {
    size_t m = class_rows(y, n, c, idx);
    size_t k = (size_t)(test_fraction * (double)m + 0.5);
    shuffle(idx, m, &state);
    for (size_t i = 0; i < m; i++) {
      if (i < k)
        test[(*ntest)++] = idx[i];
      else
        train[(*ntrain)++] = idx[i];
    }
  }
  qsort(train, *ntrain, sizeof *train, cmp_size);
  qsort(test, *ntest, sizeof *test, cmp_size);
out:
  cm_free(idx);
  return rc;
}

int md_kfold_stratified(const int *y, size_t n, size_t k, uint64_t seed, size_t *fold,
                        struct cm_error *err)
{
  uint64_t state = seed;
  size_t *idx = NULL, next = 0;
  int rc = labels_check(y, n, err);

  if (rc)
    goto out;
  if (k < 2 || k > n) {
    rc = cm_error_set(err, CM_E_INVALID, "kfold: k = %zu is not in [2, %zu]", k, n);
    goto out;
  }
  idx = cm_calloc(n, sizeof *idx);
  if (!idx) {
    rc = cm_error_set(err, CM_E_NOMEM, "kfold: out of memory");
    goto out;
  }
  for (int c = 0; c <= 1; c++) {
    size_t m = class_rows(y, n, c, idx);
    shuffle(idx, m, &state);
    /* Deal on from where the previous class stopped, so fold sizes differ by at most one. */
    for (size_t i = 0; i < m; i++)
      fold[idx[i]] = next++ % k;
  }
out:
  cm_free(idx);
  return rc;
}
