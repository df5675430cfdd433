/* Unit tests for common/dataset: German Credit end to end, the data-driven cases in
 * tests/data/dataset/ (input plus expected dump or error), options, limits, target choice and an
 * allocation-failure loop. Every cm_ allocation goes through cmocka's allocator, so a block a
 * test leaves behind fails that test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dataset.h"
#include "err.h"
#include "harness.h"
#include "mem.h"

#ifndef CREDIT_G_PATH
#error "CREDIT_G_PATH must name data/raw/credit-g.arff"
#endif
#ifndef DATASET_CASES
#error "DATASET_CASES must name tests/data/dataset"
#endif

static void *leakcheck_malloc(size_t n)
{
  return test_malloc(n);
}

static void *leakcheck_realloc(void *p, size_t n)
{
  return test_realloc(p, n);
}

static void leakcheck_free(void *p)
{
  test_free(p);
}

static const struct cm_mem_hooks leakcheck = {leakcheck_malloc, leakcheck_realloc, leakcheck_free};

/* Writes s in brackets, escaping what would make the dump ambiguous. */
static void dump_str(FILE *f, const char *s)
{
  fputc('[', f);
  for (; *s; s++) {
    if (*s == '\n')
      fputs("\\n", f);
    else if (*s == '\r')
      fputs("\\r", f);
    else if (*s == '\t')
      fputs("\\t", f);
    else if (*s == '\\' || *s == ']')
      fprintf(f, "\\%c", *s);
    else
      fputc(*s, f);
  }
  fputc(']', f);
}

/* Writes x in the shortest %g form that reads back exactly. */
static void dump_number(FILE *f, double x)
{
  char s[40];

  if (isnan(x)) {
    fputc('?', f);
    return;
  }
  snprintf(s, sizeof(s), "%.15g", x);
  if (strtod(s, NULL) != x)
    snprintf(s, sizeof(s), "%.17g", x);
  fputs(s, f);
}

/* The dump the expected.txt files hold: relation, columns with kinds and categories, rows.
 * Returned string from malloc; the caller frees it with free. */
static char *table_dump(const ds_table *t)
{
  char *out = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&out, &n);

  assert_non_null(f);
  fputs("relation ", f);
  dump_str(f, ds_relation(t));
  fputc('\n', f);
  for (size_t i = 0; i < ds_columns(t); i++) {
    const struct ds_column *c = ds_column_at(t, i);

    fputs("column ", f);
    dump_str(f, c->name);
    fputs(c->kind == DS_NUMERIC ? " numeric" : " categorical", f);
    for (size_t k = 0; k < c->n_categories; k++) {
      fputc(' ', f);
      dump_str(f, c->categories[k]);
    }
    fputc('\n', f);
  }
  fprintf(f, "rows %zu\n", ds_rows(t));
  for (size_t r = 0; r < ds_rows(t); r++) {
    for (size_t i = 0; i < ds_columns(t); i++) {
      const struct ds_column *c = ds_column_at(t, i);
      int k = ds_category(t, r, i);

      if (i)
        fputc(' ', f);
      if (c->kind == DS_NUMERIC)
        dump_number(f, ds_number(t, r, i));
      else if (k < 0)
        fputc('?', f);
      else
        dump_str(f, c->categories[k]);
    }
    fputc('\n', f);
  }
  fclose(f);
  return out;
}

static int category_index(const ds_table *t, size_t col, const char *value)
{
  const struct ds_column *c = ds_column_at(t, col);

  for (size_t k = 0; k < c->n_categories; k++) {
    if (strcmp(c->categories[k], value) == 0)
      return (int)k;
  }
  return -1;
}

static double now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void check_categories(const ds_table *t, const char *name, const char *const *want, size_t n)
{
  int col = ds_column_find(t, name);
  const struct ds_column *c;

  assert_true(col >= 0);
  c = ds_column_at(t, (size_t)col);
  assert_int_equal(c->kind, DS_CATEGORICAL);
  assert_int_equal(c->n_categories, n);
  for (size_t k = 0; k < n; k++)
    assert_string_equal(c->categories[k], want[k]);
}

/* Spot checks against the file itself: row 0 and row 999 as written in credit-g.arff, and
 * column totals computed independently (Python's csv module with quotechar="'"). */
static void check_german_cells(const ds_table *t)
{
  int ck = ds_column_find(t, "checking_status"), dur = ds_column_find(t, "duration");
  int amt = ds_column_find(t, "credit_amount"), age = ds_column_find(t, "age");
  int cls = ds_column_find(t, "class"), pur = ds_column_find(t, "purpose");
  double sum = 0;
  size_t good = 0, bad = 0;

  assert_int_equal(ds_category(t, 0, ck), category_index(t, ck, "<0"));
  assert_true(ds_number(t, 0, dur) == 6);
  assert_true(ds_number(t, 0, amt) == 1169);
  assert_true(ds_number(t, 0, age) == 67);
  assert_int_equal(ds_category(t, 0, cls), category_index(t, cls, "good"));
  assert_int_equal(ds_category(t, 999, ck), category_index(t, ck, "0<=X<200"));
  assert_int_equal(ds_category(t, 999, pur), category_index(t, pur, "used car"));
  assert_true(ds_number(t, 999, amt) == 4576);
  for (size_t r = 0; r < ds_rows(t); r++) {
    sum += ds_column_numbers(t, (size_t)amt)[r];
    good += ds_column_codes(t, (size_t)cls)[r] == 0;
    bad += ds_column_codes(t, (size_t)cls)[r] == 1;
  }
  assert_true(sum == 3271258);
  assert_int_equal(good, 700);
  assert_int_equal(bad, 300);
}

static void test_german_credit(void **state)
{
  static const char *const checking[] = {"<0", "0<=X<200", ">=200", "no checking"};
  static const char *const cls[] = {"good", "bad"};
  static const char *const numeric[] = {
      "duration", "credit_amount",    "installment_commitment", "residence_since",
      "age",      "existing_credits", "num_dependents"};
  struct cm_error err;
  ds_table *t = NULL;
  size_t len = 0, n_numeric = 0;
  char *text = harness_file_read(CREDIT_G_PATH, &len);
  int target = -1, positive = -1;

  (void)state;
  assert_non_null(text);
  assert_int_equal(ds_parse_arff(text, len, NULL, &t, &err), 0);
  assert_string_equal(ds_relation(t), "german_credit");
  assert_int_equal(ds_rows(t), 1000);
  assert_int_equal(ds_columns(t), 21);
  for (size_t i = 0; i < ds_columns(t); i++)
    n_numeric += ds_column_at(t, i)->kind == DS_NUMERIC;
  assert_int_equal(n_numeric, 7);
  for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++)
    assert_int_equal(ds_column_at(t, (size_t)ds_column_find(t, numeric[i]))->kind, DS_NUMERIC);
  check_categories(t, "checking_status", checking, 4);
  check_categories(t, "class", cls, 2);
  assert_int_equal(ds_column_at(t, 3)->n_categories, 11); /* purpose declares 11, uses 10 */
  check_german_cells(t);
  assert_int_equal(ds_schema_infer_target(t, NULL, NULL, &target, &positive, &err), 0);
  assert_int_equal(target, 20);
  assert_int_equal(positive, 1);
  ds_table_free(t);
  free(text);
}

/* Times German Credit with the plain libc allocator (the checked one is much slower). */
static void test_german_credit_speed(void **state)
{
  struct cm_error err;
  size_t len = 0;
  char *text = harness_file_read(CREDIT_G_PATH, &len);
  double best = 1e9;

  (void)state;
  assert_non_null(text);
  cm_mem_set_hooks(NULL);
  for (int i = 0; i < 20; i++) {
    ds_table *t = NULL;
    double t0 = now_ms();
    int rc = ds_parse_arff(text, len, NULL, &t, &err);
    double ms = now_ms() - t0;

    ds_table_free(t);
    assert_int_equal(rc, 0);
    best = ms < best ? ms : best;
  }
  cm_mem_set_hooks(&leakcheck);
  print_message("German Credit (%zu bytes): best of 20 parses %.3f ms\n", len, best);
  /* Generous for sanitizer builds; the release build is far below 10 ms. */
  assert_true(best < 100.0);
  free(text);
}

/* Per-case options from opts.txt: "delimiter X", "no_header", "na TOKEN" (repeatable; "na"
 * alone is the empty token), "sniff", and limits "max_rows N" etc. */
struct case_opts {
  struct ds_csv_opts csv;
  struct ds_limits lim;
  bool sniff;
  char na_store[4][32];
  const char *na_ptrs[4];
};

static void case_opts_read(const char *dir, struct case_opts *o)
{
  char path[512], *text, *line, *next;
  size_t len;

  memset(o, 0, sizeof(*o));
  snprintf(path, sizeof(path), "%s/opts.txt", dir);
  text = harness_file_read(path, &len);
  if (!text)
    return;
  for (line = text; line; line = next) {
    char key[32] = "", val[32] = "";
    unsigned long long n = 0;

    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    if (sscanf(line, "%31s %31s", key, val) < 1)
      continue;
    n = strtoull(val, NULL, 10);
    if (strcmp(key, "delimiter") == 0) {
      o->csv.delimiter = strcmp(val, "tab") == 0 ? '\t' : val[0];
    } else if (strcmp(key, "no_header") == 0) {
      o->csv.no_header = true;
    } else if (strcmp(key, "sniff") == 0) {
      o->sniff = true;
    } else if (strcmp(key, "na") == 0) {
      assert_true(o->csv.n_na_tokens < 4);
      memcpy(o->na_store[o->csv.n_na_tokens], val, sizeof(val));
      o->na_ptrs[o->csv.n_na_tokens] = o->na_store[o->csv.n_na_tokens];
      o->csv.n_na_tokens++;
      o->csv.na_tokens = o->na_ptrs;
    } else if (strcmp(key, "max_bytes") == 0) {
      o->lim.max_bytes = n;
    } else if (strcmp(key, "max_rows") == 0) {
      o->lim.max_rows = n;
    } else if (strcmp(key, "max_columns") == 0) {
      o->lim.max_columns = n;
    } else if (strcmp(key, "max_categories") == 0) {
      o->lim.max_categories = n;
    } else if (strcmp(key, "max_field") == 0) {
      o->lim.max_field = n;
    } else {
      fail_msg("unknown option '%s' in %s", key, path);
    }
  }
  free(text);
}

/* Parses a case's input with its options; a schema.arff beside it becomes the CSV schema. */
static int case_parse(const char *dir, ds_table **out, struct cm_error *err)
{
  struct case_opts o;
  char path[512];
  char *text, *schema_text;
  size_t len = 0, schema_len = 0;
  ds_table *schema = NULL;
  bool arff;
  int rc;

  case_opts_read(dir, &o);
  snprintf(path, sizeof(path), "%s/input.arff", dir);
  text = harness_file_read(path, &len);
  arff = text != NULL;
  if (!text) {
    snprintf(path, sizeof(path), "%s/input.csv", dir);
    text = harness_file_read(path, &len);
  }
  assert_non_null(text);
  snprintf(path, sizeof(path), "%s/schema.arff", dir);
  schema_text = harness_file_read(path, &schema_len);
  if (schema_text) {
    assert_int_equal(ds_parse_arff(schema_text, schema_len, NULL, &schema, err), 0);
    o.csv.schema = ds_column_at(schema, 0);
    o.csv.n_schema = ds_columns(schema);
  }
  if (o.sniff)
    rc = ds_parse(text, len, NULL, &o.lim, out, err);
  else if (arff)
    rc = ds_parse_arff(text, len, &o.lim, out, err);
  else
    rc = ds_parse_csv(text, len, &o.csv, &o.lim, out, err);
  ds_table_free(schema);
  free(schema_text);
  free(text);
  return rc;
}

/* One data-driven case: *state is its folder. */
static void test_case(void **state)
{
  const char *dir = *state;
  char path[512], *expected, *got;
  struct cm_error err = {0};
  ds_table *t = (ds_table *)&err; /* must be reset to NULL on failure */
  size_t len = 0;
  int rc = case_parse(dir, &t, &err);

  snprintf(path, sizeof(path), "%s/expected.txt", dir);
  expected = harness_file_read(path, &len);
  if (expected) {
    if (rc)
      fail_msg("%s: unexpected error %s: %s", dir, cm_code_name(rc), err.msg);
    got = table_dump(t);
    if (strcmp(got, expected) != 0)
      fail_msg("%s: dump differs.\n--- got\n%s--- expected\n%s", dir, got, expected);
    free(got);
    ds_table_free(t);
    free(expected);
    return;
  }
  snprintf(path, sizeof(path), "%s/error.txt", dir);
  expected = harness_file_read(path, &len);
  if (!expected)
    fail_msg("%s: neither expected.txt nor error.txt", dir);
  char code[40] = "", *want = strchr(expected, '\n');

  /* error.txt: the code name on line 1, a substring of the message on line 2. */
  assert_non_null(want);
  *want++ = '\0';
  want[strcspn(want, "\n")] = '\0';
  snprintf(code, sizeof(code), "%s", expected);
  if (rc == 0)
    fail_msg("%s: parsed, but expected %s", dir, code);
  assert_null(t);
  assert_string_equal(cm_code_name(rc), code);
  assert_int_equal(err.code, rc);
  if (!strstr(err.msg, want))
    fail_msg("%s: message '%s' lacks '%s'", dir, err.msg, want);
  free(expected);
}

/* Parsing "arff" and "csv" inputs each with small tables under every failing allocation. */
static void failure_loop(const char *text, const char *format, size_t want_rows)
{
  struct cm_error err;
  ds_table *t = NULL;
  int rc = -1;
  long n;

  for (n = 0; n < 10000 && rc != 0; n++) {
    cm_mem_fail_after(n);
    rc = ds_parse(text, strlen(text), format, NULL, &t, &err);
    cm_mem_fail_after(-1);
    if (rc != 0) {
      assert_int_equal(rc, CM_E_NOMEM);
      assert_int_equal(err.code, CM_E_NOMEM);
      assert_null(t);
    }
  }
  assert_int_equal(rc, 0);
  assert_true(n > 10); /* the parse really went through many allocations */
  assert_int_equal(ds_rows(t), want_rows);
  ds_table_free(t);
}

static void test_allocation_failures(void **state)
{
  static const char arff[] =
      "@relation r\n@attribute a numeric\n@attribute 'b c' {x, 'y z', w}\n@attribute d real\n"
      "@data\n1,x,2\n?,'y z',3.5\n4,?,?\n5,w,6\n";
  char csv[4096];
  size_t off = 0;

  (void)state;
  failure_loop(arff, "arff", 4);
  /* Enough rows and categories for every growth step (rows, categories, hash slots). */
  off += (size_t)snprintf(csv, sizeof(csv), "id,cat,\"q\"\"x\"\n");
  for (int i = 0; i < 40; i++)
    off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%d,c%d,\"v,%d\"\n", i, i % 25, i % 3);
  failure_loop(csv, "csv", 40);
}

static void test_csv_options(void **state)
{
  static const char *const na[] = {"-"};
  struct ds_csv_opts o = {.delimiter = ';', .no_header = true, .na_tokens = na, .n_na_tokens = 1};
  struct cm_error err;
  ds_table *t = NULL;
  const char *text = "1;a\n-;\n2.5;-\n";

  (void)state;
  assert_int_equal(ds_parse_csv(text, strlen(text), &o, NULL, &t, &err), 0);
  assert_int_equal(ds_columns(t), 2);
  assert_string_equal(ds_column_at(t, 0)->name, "V1");
  assert_string_equal(ds_column_at(t, 1)->name, "V2");
  assert_int_equal(ds_column_at(t, 0)->kind, DS_NUMERIC);
  assert_true(isnan(ds_number(t, 1, 0)));
  /* With "-" the only missing token, the empty field is a category of its own. */
  assert_int_equal(ds_column_at(t, 1)->n_categories, 2);
  assert_string_equal(ds_column_at(t, 1)->categories[1], "");
  assert_int_equal(ds_category(t, 2, 1), -1);
  ds_table_free(t);
  o.delimiter = '"';
  t = (ds_table *)&o;
  assert_int_equal(ds_parse_csv(text, strlen(text), &o, NULL, &t, &err), CM_E_INVALID);
  assert_null(t);
}

/* An ARFF header with no rows is a schema: it forces kinds and closes categories. */
static void test_csv_schema(void **state)
{
  const char *hdr = "@relation s\n@attribute id {1,2,3}\n@attribute x numeric\n@data\n";
  const char *csv = "id,x\n2,10\n3,\n";
  const char *bad = "id,x\n4,10\n";
  const char *renamed = "ID,x\n1,1\n";
  struct cm_error err;
  ds_table *s = NULL, *t = NULL;
  struct ds_csv_opts o = {0};

  (void)state;
  assert_int_equal(ds_parse_arff(hdr, strlen(hdr), NULL, &s, &err), 0);
  assert_int_equal(ds_rows(s), 0);
  o.schema = ds_column_at(s, 0);
  o.n_schema = ds_columns(s);
  assert_int_equal(ds_parse_csv(csv, strlen(csv), &o, NULL, &t, &err), 0);
  assert_int_equal(ds_column_at(t, 0)->kind, DS_CATEGORICAL);
  assert_int_equal(ds_category(t, 0, 0), 1); /* "2" is the second declared category */
  assert_true(isnan(ds_number(t, 1, 1)));
  ds_table_free(t);
  assert_int_equal(ds_parse_csv(bad, strlen(bad), &o, NULL, &t, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "line 2, column 'id': unknown category '4'"));
  assert_int_equal(ds_parse_csv(renamed, strlen(renamed), &o, NULL, &t, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "schema names this column 'id'"));
  ds_table_free(s);
}

static void test_sniff_and_format(void **state)
{
  const char *arff = "% comment\n\n@RELATION r\n@ATTRIBUTE a INTEGER\n@DATA\n1\n";
  const char *csv = "a\n1\n";
  struct cm_error err;
  ds_table *t = NULL;

  (void)state;
  assert_int_equal(ds_parse(arff, strlen(arff), NULL, NULL, &t, &err), 0);
  assert_string_equal(ds_relation(t), "r");
  ds_table_free(t);
  assert_int_equal(ds_parse(csv, strlen(csv), NULL, NULL, &t, &err), 0);
  assert_string_equal(ds_relation(t), "");
  ds_table_free(t);
  assert_int_equal(ds_parse(csv, strlen(csv), "CSV", NULL, &t, &err), 0);
  ds_table_free(t);
  assert_int_equal(ds_parse(csv, strlen(csv), "arff", NULL, &t, &err), CM_E_INVALID);
  assert_int_equal(ds_parse(csv, strlen(csv), "xlsx", NULL, &t, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "unknown dataset format 'xlsx'"));
  assert_null(t);
}

/* Each limit fails with CM_E_TOOLARGE naming it, and exactly at the limit still parses. */
static void test_limits(void **state)
{
  static const struct {
    struct ds_limits over, at;
    const char *name;
  } cases[] = {
      {{.max_bytes = 17}, {.max_bytes = 18}, "max_bytes"},
      {{.max_rows = 2}, {.max_rows = 3}, "max_rows"},
      {{.max_columns = 1}, {.max_columns = 2}, "max_columns"},
      {{.max_categories = 2}, {.max_categories = 3}, "max_categories"},
      {{.max_field = 2}, {.max_field = 3}, "max_field"},
  };
  const char *csv = "a,b\n1,x\n2,yy\n3,zzz";
  struct cm_error err;
  ds_table *t = NULL;

  (void)state;
  assert_int_equal(strlen(csv), 18);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(ds_parse_csv(csv, strlen(csv), NULL, &cases[i].over, &t, &err), CM_E_TOOLARGE);
    if (!strstr(err.msg, cases[i].name))
      fail_msg("%s: message '%s'", cases[i].name, err.msg);
    assert_int_equal(ds_parse_csv(csv, strlen(csv), NULL, &cases[i].at, &t, &err), 0);
    ds_table_free(t);
  }
}

static void test_target_choice(void **state)
{
  const char *two = "x,y,class\n1,a,good\n2,b,bad\n";
  const char *last = "x,label\n1,yes\n2,no\n";
  const char *three = "x,class\n1,a\n2,b\n3,c\n";
  struct cm_error err;
  ds_table *t = NULL;
  int col = -1, pos = -1;

  (void)state;
  assert_int_equal(ds_parse_csv(two, strlen(two), NULL, NULL, &t, &err), 0);
  assert_int_equal(ds_schema_infer_target(t, NULL, NULL, &col, &pos, &err), 0);
  assert_int_equal(col, 2);
  assert_int_equal(pos, 1);
  assert_int_equal(ds_schema_infer_target(t, "class", "good", &col, &pos, &err), 0);
  assert_int_equal(pos, 0);
  assert_int_equal(ds_schema_infer_target(t, "y", NULL, &col, &pos, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "--positive"));
  assert_int_equal(ds_schema_infer_target(t, "nope", NULL, &col, &pos, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "'nope' does not exist"));
  assert_int_equal(ds_schema_infer_target(t, "x", NULL, &col, &pos, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "is numeric"));
  assert_int_equal(ds_schema_infer_target(t, NULL, "ugly", &col, &pos, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "'ugly' is not a class"));
  ds_table_free(t);
  assert_int_equal(ds_parse_csv(last, strlen(last), NULL, NULL, &t, &err), 0);
  assert_int_equal(ds_schema_infer_target(t, NULL, NULL, &col, &pos, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "target 'label' has no class 'bad'"));
  assert_int_equal(ds_schema_infer_target(t, "", "no", &col, &pos, &err), 0);
  assert_int_equal(col, 1);
  assert_int_equal(pos, 1);
  ds_table_free(t);
  assert_int_equal(ds_parse_csv(three, strlen(three), NULL, NULL, &t, &err), 0);
  assert_int_equal(ds_schema_infer_target(t, NULL, NULL, &col, &pos, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "has 3 classes"));
  ds_table_free(t);
  assert_int_equal(ds_parse_csv("x,class\n1,a\n2,a\n", 16, NULL, NULL, &t, &err), 0);
  assert_int_equal(ds_schema_infer_target(t, NULL, NULL, &col, &pos, &err),
                   CM_E_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "one class only"));
  ds_table_free(t);
}

static void test_accessors_out_of_range(void **state)
{
  const char *csv = "n,c\n1,a\n";
  struct cm_error err;
  ds_table *t = NULL;

  (void)state;
  ds_table_free(NULL);
  assert_int_equal(ds_parse_arff(NULL, 0, NULL, &t, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "empty input"));
  assert_int_equal(ds_parse_csv(NULL, 0, NULL, NULL, &t, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "empty input"));
  assert_int_equal(ds_parse(NULL, 3, NULL, NULL, &t, &err), CM_E_INVALID);
  assert_null(t);
  assert_int_equal(ds_parse_csv(csv, strlen(csv), NULL, NULL, &t, &err), 0);
  assert_null(ds_column_at(t, 2));
  assert_int_equal(ds_column_find(t, "zz"), -1);
  assert_true(isnan(ds_number(t, 1, 0)));
  assert_true(isnan(ds_number(t, 0, 1)));
  assert_int_equal(ds_category(t, 0, 0), -1);
  assert_int_equal(ds_category(t, 0, 5), -1);
  assert_null(ds_column_numbers(t, 1));
  assert_null(ds_column_codes(t, 0));
  assert_int_equal(ds_category(t, 0, 1), 0);
  ds_table_free(t);
}

/* A large generated CSV: many categories (exercises the category index) and rows; the time
 * per megabyte must not grow with size (no quadratic step). */
static void test_csv_scales_linearly(void **state)
{
  double per_mb[2];
  size_t rows[2] = {20000, 200000};

  (void)state;
  cm_mem_set_hooks(NULL);
  for (int k = 0; k < 2; k++) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct cm_error err;
    ds_table *t = NULL;
    double t0;
    int rc;

    fputs("id,amount,city,class\n", f);
    for (size_t i = 0; i < rows[k]; i++)
      fprintf(f, "%zu,%zu.25,\"c%zu\",%s\n", i, i * 7 % 1000, i % 5000, i % 3 ? "good" : "bad");
    fclose(f);
    t0 = now_ms();
    rc = ds_parse_csv(text, len, NULL, NULL, &t, &err);
    per_mb[k] = (now_ms() - t0) / ((double)len / 1e6);
    assert_int_equal(rc, 0);
    assert_int_equal(ds_rows(t), rows[k]);
    assert_int_equal(ds_column_at(t, 2)->n_categories, 5000);
    ds_table_free(t);
    free(text);
  }
  cm_mem_set_hooks(&leakcheck);
  print_message("CSV: %.2f ms/MB at %zu rows, %.2f ms/MB at %zu rows\n", per_mb[0], rows[0],
                per_mb[1], rows[1]);
  assert_true(per_mb[1] < per_mb[0] * 3 + 5);
}

/* Builds one cmocka test per folder in DATASET_CASES, sorted by name. */
static size_t cases_collect(struct CMUnitTest **out, char ***dirs)
{
  struct dirent **names = NULL;
  int n = scandir(DATASET_CASES, &names, NULL, alphasort);
  size_t count = 0;

  assert_true(n > 0);
  *out = calloc((size_t)n, sizeof(**out));
  *dirs = calloc((size_t)n, sizeof(**dirs));
  for (int i = 0; i < n; i++) {
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", DATASET_CASES, names[i]->d_name);
    if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      (*dirs)[count] = strdup(path);
      (*out)[count].name = (*dirs)[count] + strlen(DATASET_CASES) + 1;
      (*out)[count].test_func = test_case;
      (*out)[count].initial_state = (*dirs)[count];
      count++;
    }
    free(names[i]);
  }
  free(names);
  return count;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_german_credit),
      cmocka_unit_test(test_german_credit_speed),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_csv_options),
      cmocka_unit_test(test_csv_schema),
      cmocka_unit_test(test_sniff_and_format),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_target_choice),
      cmocka_unit_test(test_accessors_out_of_range),
      cmocka_unit_test(test_csv_scales_linearly),
  };
  struct CMUnitTest *cases = NULL;
  char **dirs = NULL;
  size_t n_cases;
  int failed;

  cm_mem_set_hooks(&leakcheck);
  n_cases = cases_collect(&cases, &dirs);
  failed = cmocka_run_group_tests_name("dataset", tests, NULL, NULL);
  failed += _cmocka_run_group_tests("dataset_cases", cases, n_cases, NULL, NULL);
  for (size_t i = 0; i < n_cases; i++)
    free(dirs[i]);
  free(dirs);
  free(cases);
  cm_mem_set_hooks(NULL);
  return failed;
}
