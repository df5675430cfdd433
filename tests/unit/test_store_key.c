/* Unit tests for common/store's key rules, their percent-encoding for SigV4, error excerpts,
 * and store_open's reading of URLs, options and the AWS variables (no request is made). The
 * file backend's operations run here too, under a loop failing each allocation in turn. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "store.h"
#include "store_int.h"

static void test_valid_keys(void **state)
{
  static const char *const good[] = {
      "a",
      "a/b",
      "files/md5/3a/bd1a3a8a5c1f4e0e2f5a5b8d0c9e7f",
      "with space",
      "..a",
      "a..",
      ".hidden",
      "a/.b/c",
      "a+b=c&d%e",
      "\xc3\xbc",
      "\xe6\x96\x87\xe4\xbb\xb6",
      "\xf0\x9f\x98\x80",
      "\xf4\x8f\xbf\xbf", /* U+10FFFF */
  };
  struct cm_error err;

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    if (store_key_check(good[i], STORE_KEY_MAX, &err) != 0)
      fprintf(stderr, "rejected %s: %s\n", good[i], err.msg);
    assert_int_equal(store_key_check(good[i], STORE_KEY_MAX, &err), 0);
  }
}

static void test_invalid_keys(void **state)
{
  static const struct {
    const char *key, *why;
  } bad[] = {
      {"", "empty"},
      {"/a", "starts with '/'"},
      {"a/", "ends with '/'"},
      {"a//b", "empty segment"},
      {".", "'.' or '..' segment"},
      {"..", "'.' or '..' segment"},
      {"a/../b", "'.' or '..' segment"},
      {"a/./b", "'.' or '..' segment"},
      {"a/..", "'.' or '..' segment"},
      {"a\nb", "control character"},
      {"a\tb", "control character"},
      {"\x7f", "control character"},
      {"\xff", "not valid UTF-8"},
      {"\xc0\xaf", "not valid UTF-8"},         /* overlong '/' */
      {"\xe0\x80\xaf", "not valid UTF-8"},     /* overlong '/' */
      {"\xed\xa0\x80", "not valid UTF-8"},     /* surrogate */
      {"\xf4\x90\x80\x80", "not valid UTF-8"}, /* past U+10FFFF */
      {"a\xc3", "not valid UTF-8"},            /* cut sequence */
  };
  struct cm_error err;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(store_key_check(bad[i].key, STORE_KEY_MAX, &err), CM_E_INVALID);
    assert_int_equal(err.code, CM_E_INVALID);
    if (!strstr(err.msg, bad[i].why))
      fprintf(stderr, "case %zu: %s\n", i, err.msg);
    assert_non_null(strstr(err.msg, bad[i].why));
  }
  assert_int_equal(store_key_check(NULL, STORE_KEY_MAX, &err), CM_E_INVALID);
  assert_int_equal(store_key_check("a", STORE_KEY_MAX, NULL), 0);
}

static void test_key_length(void **state)
{
  char key[STORE_KEY_MAX + 2];
  struct cm_error err;

  memset(key, 'k', sizeof(key));
  key[STORE_KEY_MAX] = '\0';
  assert_int_equal(store_key_check(key, STORE_KEY_MAX, &err), 0);
  assert_int_equal(store_key_check(key, STORE_KEY_MAX - 1, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "longer than 1023 bytes"));
  key[STORE_KEY_MAX] = 'k';
  key[STORE_KEY_MAX + 1] = '\0';
  assert_int_equal(store_key_check(key, STORE_KEY_MAX, &err), CM_E_INVALID);
  /* The message quotes an excerpt, not the whole key. */
  assert_true(strlen(err.msg) < 120);
}

static void test_prefixes(void **state)
{
  static const char *const good[] = {"", "a", "a/", "a/b", "a/b/", "a/.", "a/..", "files/md5/3"};
  static const char *const bad[] = {"/", "/a", "a//", "a//b", "../", "a/../b", "a/./", "x\n"};
  struct cm_error err;

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_int_equal(store_prefix_check(good[i], STORE_KEY_MAX, &err), 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(store_prefix_check(bad[i], STORE_KEY_MAX, &err), CM_E_INVALID);
    assert_non_null(strstr(err.msg, "invalid prefix"));
  }
}

static void encode_is(const char *in, bool keep_slash, const char *want)
{
  struct cm_buf b;

  cm_buf_init(&b, 4096);
  assert_int_equal(store_uri_encode(&b, in, strlen(in), keep_slash), 0);
  assert_string_equal(cm_buf_str(&b), want);
  cm_buf_cleanup(&b);
}

static void test_uri_encode(void **state)
{
  struct cm_buf b;
  char all[256];

  encode_is("AZaz09-._~", true, "AZaz09-._~");
  encode_is("a b/c+d=e&f%g", true, "a%20b/c%2Bd%3De%26f%25g");
  encode_is("a b/c+d=e&f%g", false, "a%20b%2Fc%2Bd%3De%26f%25g");
  encode_is("!*'();:@$,?#[]", true, "%21%2A%27%28%29%3B%3A%40%24%2C%3F%23%5B%5D");
  encode_is("\xc3\xa9t\xc3\xa9", true, "%C3%A9t%C3%A9");
  encode_is("1ueGcxLPRx1Tr/XYEx+hb=", false, "1ueGcxLPRx1Tr%2FXYEx%2Bhb%3D");
  /* Every byte: unreserved kept, the rest %XX in upper case, exactly once. */
  for (int i = 0; i < 256; i++)
    all[i] = (char)i;
  cm_buf_init(&b, 4096);
  assert_int_equal(store_uri_encode(&b, all, 256, false), 0);
  assert_int_equal(b.len, 66 + 3 * (256 - 66));
  for (size_t i = 0; i < b.len; i++) {
    char c = b.data[i];

    assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == '%');
  }
  assert_non_null(strstr(b.data, "%00%01"));
  assert_non_null(strstr(b.data, "%FE%FF"));
  cm_buf_cleanup(&b);
  /* A full buffer says so and keeps what it had. */
  cm_buf_init(&b, 4);
  assert_int_equal(store_uri_encode(&b, "a b", 3, true), CM_E_TOOLARGE);
  cm_buf_cleanup(&b);
}

static void test_key_quote(void **state)
{
  char out[16];
  char long_key[100];

  store_key_quote("a\nb\x01\"c", out, sizeof(out));
  assert_string_equal(out, "a?b??c");
  memset(long_key, 'x', sizeof(long_key));
  long_key[99] = '\0';
  store_key_quote(long_key, out, sizeof(out));
  assert_string_equal(out, "xxxxxxxxxxxx...");
  /* Never ends inside a UTF-8 character. */
  store_key_quote("xxxxxxxxxxx\xe6\x96\x87\xe4\xbb\xb6", out, sizeof(out));
  assert_string_equal(out, "xxxxxxxxxxx...");
  store_key_quote("xxxxxxxxxx\xc3\xa9\xc3\xa9\xc3\xa9", out, sizeof(out));
  assert_string_equal(out, "xxxxxxxxxx\xc3\xa9...");
}

/* ---- store_open ---- */

static void clear_env(void)
{
  static const char *const vars[] = {
      "AWS_ENDPOINT_URL",  "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN", "AWS_REGION",          "AWS_DEFAULT_REGION", "CREDITO_STORE"};

  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    unsetenv(vars[i]);
}

static int env_setup(void **state)
{
  clear_env();
  return 0;
}

static store *open_url(const char *url, struct cm_error *err)
{
  struct store_opts o = {0};

  o.url = url;
  o.access_key = "AK";
  o.secret_key = "SK";
  return store_open(&o, err);
}

static void test_open_bad_urls(void **state)
{
  static const char *const bad[] = {
      "ftp://x",           "s3:/credito",         "s3://",
      "s3://ab",           "s3://Credito",        "s3://cred_ito",
      "s3://-credito",     "s3://credito-",       "s3://credito/a/../b",
      "s3://credito/a//b", "file://relative/dir", "file:///",
      "file:///tmp/x\ny",  "/abs/path",           "",
  };
  struct cm_error err;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    store *s = open_url(bad[i], &err);

    if (s)
      fprintf(stderr, "opened: %s\n", bad[i]);
    assert_null(s);
    assert_int_equal(err.code, CM_E_INVALID);
  }
}

static void test_open_urls(void **state)
{
  static const struct {
    const char *url, *canonical;
  } cases[] = {
      {"s3://credito", "s3://credito"},
      {"s3://credito/", "s3://credito"},
      {"s3://credito/a/b/", "s3://credito/a/b"},
      {"s3://credito//a/b//", "s3://credito/a/b"},
      {"s3://my.bucket-1/x", "s3://my.bucket-1/x"},
      {"file:///tmp/credito-never-created/", "file:///tmp/credito-never-created"},
  };
  struct cm_error err;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    store *s = open_url(cases[i].url, &err);

    assert_non_null(s);
    assert_string_equal(store_url(s), cases[i].canonical);
    store_free(s);
  }
  store_free(NULL);
}

static void test_open_s3_options(void **state)
{
  struct store_opts o = {0};
  struct cm_error err;
  store *s;

  o.url = "s3://credito";
  /* No credentials anywhere. */
  assert_null(store_open(&o, &err));
  assert_int_equal(err.code, CM_E_INVALID);
  assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
  /* From the environment, and never in the URL. */
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI", 1);
  s = store_open(&o, &err);
  assert_non_null(s);
  assert_null(strstr(store_url(s), "wJalr"));
  store_free(s);
  /* Endpoints: scheme required, no credentials, query or spaces; env values are checked too. */
  o.endpoint = "localhost:9000";
  assert_null(store_open(&o, &err));
  o.endpoint = "http://user:pass@localhost:9000";
  assert_null(store_open(&o, &err));
  o.endpoint = "http://h/?x";
  assert_null(store_open(&o, &err));
  o.endpoint = "http://";
  assert_null(store_open(&o, &err));
  o.endpoint = "https://minio.example:9000/";
  s = store_open(&o, &err);
  assert_non_null(s);
  store_free(s);
  o.endpoint = NULL;
  setenv("AWS_ENDPOINT_URL", "bad endpoint", 1);
  assert_null(store_open(&o, &err));
  setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000", 1); /* wins */
  s = store_open(&o, &err);
  assert_non_null(s);
  store_free(s);
  /* Regions. */
  o.region = "US EAST";
  assert_null(store_open(&o, &err));
  assert_non_null(strstr(err.msg, "region"));
  o.region = NULL;
  setenv("AWS_REGION", "eu-west-3", 1);
  s = store_open(&o, &err);
  assert_non_null(s);
  store_free(s);
  setenv("AWS_REGION", "bad/region", 1);
  assert_null(store_open(&o, &err));
  clear_env();
}

static void test_open_defaults(void **state)
{
  char want[512];
  struct cm_error err;
  const char *home = getenv("HOME");
  store *s;

  setenv("CREDITO_STORE", "s3://from-env/p", 1);
  setenv("AWS_ACCESS_KEY_ID", "AK", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
  s = store_open(NULL, &err);
  assert_non_null(s);
  assert_string_equal(store_url(s), "s3://from-env/p");
  store_free(s);
  unsetenv("CREDITO_STORE");
  setenv("HOME", "/home/credito-test", 1);
  s = store_open(NULL, &err);
  assert_non_null(s);
  snprintf(want, sizeof(want), "file:///home/credito-test/.credito/store");
  assert_string_equal(store_url(s), want);
  store_free(s);
  unsetenv("HOME");
  assert_null(store_open(NULL, &err));
  assert_int_equal(err.code, CM_E_INVALID);
  if (home)
    setenv("HOME", home, 1);
  clear_env();
}

/* The file backend through store_* calls, failing the n-th allocation until all succeed. */
static int file_ops(const char *url)
{
  struct store_opts o = {.url = url};
  struct store_stat st;
  struct cm_error err;
  struct cm_buf b;
  store *s = store_open(&o, &err);
  int rc;

  if (!s)
    return err.code;
  rc = store_bucket_ensure(s, &err);
  if (rc == 0)
    rc = store_put(s, "a/b/c", "hello", 5, NULL, &err);
  if (rc == 0)
    rc = store_get(s, "a/b/c", 10, &b, &err);
  if (rc == 0)
    cm_buf_cleanup(&b);
  if (rc == 0)
    rc = store_head(s, "a/b/c", &st, &err);
  if (rc == 0)
    rc = store_delete(s, "a/b/c", &err);
  store_free(s);
  return rc;
}

static void test_file_alloc_failures(void **state)
{
  char dir[] = "/tmp/credito-store-unit-XXXXXX";
  char url[128];
  int rc = CM_E_NOMEM;
  long n;

  assert_non_null(mkdtemp(dir));
  snprintf(url, sizeof(url), "file://%s/s", dir);
  for (n = 0; rc == CM_E_NOMEM && n < 1000; n++) {
    cm_mem_fail_after(n);
    rc = file_ops(url);
    cm_mem_fail_after(-1);
  }
  assert_int_equal(rc, 0);
  assert_true(n > 3); /* the loop did fail some allocations */
  snprintf(url, sizeof(url), "%s/s/.tmp", dir);
  assert_int_equal(rmdir(url), 0); /* empty: no temporary file left by a failure */
  snprintf(url, sizeof(url), "%s/s", dir);
  assert_int_equal(rmdir(url), 0); /* empty: the delete pruned a/b */
  assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_keys),
      cmocka_unit_test(test_invalid_keys),
      cmocka_unit_test(test_key_length),
      cmocka_unit_test(test_prefixes),
      cmocka_unit_test(test_uri_encode),
      cmocka_unit_test(test_key_quote),
      cmocka_unit_test_setup(test_open_bad_urls, env_setup),
      cmocka_unit_test_setup(test_open_urls, env_setup),
      cmocka_unit_test_setup(test_open_s3_options, env_setup),
      cmocka_unit_test_setup(test_open_defaults, env_setup),
      cmocka_unit_test_setup(test_file_alloc_failures, env_setup),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
