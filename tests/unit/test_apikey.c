/* Unit tests for gateway/apikey: the key file and the environment list (comments, case, CRLF,
 * merging, rotation), bad lines reported by number without the hash, the check's exact-bytes
 * rule (a trailing space, a newline, a prefix, empty and over-long keys all fail), new keys,
 * a loop failing every allocation of a load, and concurrent checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikey.h"
#include "err.h"
#include "mem.h"

/* SHA-256 of "alice-secret", "bob-secret" and "abc", from `printf %s KEY | sha256sum`. */
#define ALICE_KEY "alice-secret"
#define ALICE_HEX "0c848abb03307b06cf70cd4e29c157dc81af5e94ab3eb1d0c59a120269572376"
#define BOB_KEY "bob-secret"
#define BOB_HEX "9f03ef1533a68d2f506f81ef463c1183a82a6bd40e45613f36e6fe1889cf1b99"
/* SHA-256 of 257 bytes of 'k': `head -c 257 /dev/zero | tr '\0' k | sha256sum`. */
#define OVER_HEX "a5de0e3c93b4322bf1d2e6cc13119219d665142374de7f2b06bae237759c73e2"
#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct fixture {
  apikey_set *s;
  char path[64]; /* a temporary key file, "" when none */
};

static int setup(void **state)
{
  struct fixture *f = test_calloc(1, sizeof(*f));

  f->s = apikey_set_new();
  assert_non_null(f->s);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  cm_mem_fail_after(-1);
  apikey_set_free(f->s);
  if (f->path[0])
    unlink(f->path);
  test_free(f);
  return 0;
}

/* Writes n bytes of text to the fixture's temporary file (created on first use). */
static const char *file_put(struct fixture *f, const char *text, size_t n)
{
  FILE *fp;

  if (!f->path[0]) {
    int fd;

    snprintf(f->path, sizeof(f->path), "/tmp/test_apikey_XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
  }
  fp = fopen(f->path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, n, fp), n);
  assert_int_equal(fclose(fp), 0);
  return f->path;
}

static const char *file_puts(struct fixture *f, const char *text)
{
  return file_put(f, text, strlen(text));
}

static const char *check(const apikey_set *s, const char *key)
{
  return apikey_check(s, key, strlen(key));
}

/* The hex hashes above must be right, or every other test proves nothing. */
static void test_hash_vectors(void **state)
{
  char hex[APIKEY_HASH_HEX_SIZE];
  struct cm_error err = {0};

  (void)state;
  assert_int_equal(apikey_hash_hex("abc", 3, hex, &err), 0);
  assert_string_equal(hex, ABC_HEX);
  assert_int_equal(apikey_hash_hex(ALICE_KEY, strlen(ALICE_KEY), hex, &err), 0);
  assert_string_equal(hex, ALICE_HEX);
  assert_int_equal(apikey_hash_hex(BOB_KEY, strlen(BOB_KEY), hex, &err), 0);
  assert_string_equal(hex, BOB_HEX);
}

static void test_file_good(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  const char *path = file_puts(f, "# gateway keys\n"
                                  "\n"
                                  "alice:" ALICE_HEX "\r\n"
                                  "   # indented comment\n"
                                  "  bob.v2-x_Y:" BOB_HEX "  \n"
                                  "\t\n"
                                  "abc:" ABC_HEX); /* no final newline */

  assert_int_equal(apikey_set_add_file(f->s, path, &err), 0);
  assert_int_equal(err.code, CM_OK);
  assert_int_equal(apikey_set_count(f->s), 3);
  assert_string_equal(check(f->s, ALICE_KEY), "alice");
  assert_string_equal(check(f->s, BOB_KEY), "bob.v2-x_Y");
  assert_string_equal(check(f->s, "abc"), "abc");
}

static void test_file_upper_hex(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  char line[128], upper[65];

  for (size_t i = 0; i < 64; i++)
    upper[i] = (char)(ALICE_HEX[i] >= 'a' ? ALICE_HEX[i] - 'a' + 'A' : ALICE_HEX[i]);
  upper[64] = '\0';
  snprintf(line, sizeof(line), "alice:%s\n", upper);
  assert_int_equal(apikey_set_add_file(f->s, file_puts(f, line), &err), 0);
  assert_string_equal(check(f->s, ALICE_KEY), "alice");
}

static void test_file_empty(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};

  assert_int_equal(apikey_set_add_file(f->s, file_puts(f, "# nothing yet\n\n"), &err), 0);
  assert_int_equal(apikey_set_count(f->s), 0);
  assert_null(check(f->s, ALICE_KEY));
  assert_null(check(f->s, ""));
}

static void test_file_missing(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};

  assert_int_equal(apikey_set_add_file(f->s, "/nonexistent/keys.txt", &err), CM_E_IO);
  assert_non_null(strstr(err.msg, "/nonexistent/keys.txt"));
}

static void test_list_form(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};

  assert_int_equal(apikey_set_add_list(f->s, " alice:" ALICE_HEX " ,, bob:" BOB_HEX ",",
                                       "CREDITO_API_KEYS", &err),
                   0);
  assert_int_equal(apikey_set_count(f->s), 2);
  assert_string_equal(check(f->s, ALICE_KEY), "alice");
  assert_string_equal(check(f->s, BOB_KEY), "bob");
  assert_int_equal(apikey_set_add_list(f->s, "", NULL, &err), 0);
  assert_int_equal(apikey_set_add_list(f->s, NULL, NULL, &err), 0);
  assert_int_equal(apikey_set_count(f->s), 2);
}

static void test_list_bad(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};

  assert_int_equal(apikey_set_add_list(f->s, "alice:" ALICE_HEX ",bob:" BOB_HEX "0",
                                       "CREDITO_API_KEYS", &err),
                   CM_E_INVALID);
  assert_non_null(strstr(err.msg, "CREDITO_API_KEYS entry 2:"));
  assert_null(strstr(err.msg, BOB_HEX));
  assert_int_equal(apikey_set_count(f->s), 0); /* all or nothing */
  assert_int_equal(apikey_set_add_list(f->s, "alice " ALICE_HEX, NULL, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "key list entry 1:"));
  /* In the list form '#' is not a comment. */
  assert_int_equal(apikey_set_add_list(f->s, "#alice:" ALICE_HEX, NULL, &err), CM_E_INVALID);
}

/* File and list merge; an entry in both is kept once; a name may carry two hashes. */
static void test_merge_and_rotation(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};

  assert_int_equal(apikey_set_add_file(f->s, file_puts(f, "alice:" ALICE_HEX "\n"), &err), 0);
  assert_int_equal(apikey_set_add_list(f->s, "alice:" ALICE_HEX ",alice:" BOB_HEX ",abc:" ABC_HEX,
                                       "CREDITO_API_KEYS", &err),
                   0);
  assert_int_equal(apikey_set_count(f->s), 3);
  assert_string_equal(check(f->s, ALICE_KEY), "alice");
  assert_string_equal(check(f->s, BOB_KEY), "alice");
  assert_string_equal(check(f->s, "abc"), "abc");
}

/* One hash under two names would make the name ambiguous: an error in a file, in a list, or
 * across the two, and nothing of the failing source is kept. */
static void test_duplicate_hash(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};

  assert_int_equal(apikey_set_add_file(f->s,
                                       file_puts(f, "alice:" ALICE_HEX "\nmallory:" ALICE_HEX "\n"),
                                       &err),
                   CM_E_INVALID);
  assert_non_null(strstr(err.msg, "line 2:"));
  assert_non_null(strstr(err.msg, "'mallory'"));
  assert_null(strstr(err.msg, ALICE_HEX));
  assert_int_equal(apikey_set_count(f->s), 0);
  assert_int_equal(apikey_set_add_list(f->s, "alice:" ALICE_HEX, NULL, &err), 0);
  assert_int_equal(apikey_set_add_list(f->s, "bob:" BOB_HEX ",eve:" ALICE_HEX, NULL, &err),
                   CM_E_INVALID);
  assert_non_null(strstr(err.msg, "entry 2:"));
  assert_int_equal(apikey_set_count(f->s), 1);
  assert_null(check(f->s, BOB_KEY));
}

#define NUL_FILE "alice:" ALICE_HEX "\nbob\0:" BOB_HEX "\n"

struct bad_case {
  const char *text;   /* file contents */
  size_t len;         /* 0: strlen(text) */
  const char *where;  /* expected in the message */
  int code;
};

/* Each bad line is reported with its number and a reason, never with the hash, and the set
 * keeps what it had. */
static void test_file_bad_lines(void **state)
{
  struct fixture *f = *state;
  static const struct bad_case cases[] = {
      {"alice " ALICE_HEX "\n", 0, "line 1: expected NAME:SHA256HEX", CM_E_INVALID},
      {"# c\n\nalice:" ALICE_HEX "0\n", 0, "line 3: the hash must be", CM_E_INVALID},
      {"alice:" BOB_HEX "\nbob:0c848abb03307b06cf70cd4e29c157dc81af5e94ab3eb1d0c59a12026957237\n", 0,
       "line 2: the hash must be", CM_E_INVALID},
      {"alice:0c848abb03307b06cf70cd4e29c157dc81af5e94ab3eb1d0c59a12026957237g\n", 0,
       "line 1: the hash must be", CM_E_INVALID},
      {"alice: " ALICE_HEX "\n", 0, "line 1: the hash must be", CM_E_INVALID},
      {":" ALICE_HEX "\n", 0, "line 1: the name must be", CM_E_INVALID},
      {"al ice:" ALICE_HEX "\n", 0, "line 1: the name must be", CM_E_INVALID},
      {"alice@corp:" ALICE_HEX "\n", 0, "line 1: the name must be", CM_E_INVALID},
      {"a234567890123456789012345678901234567890123456789012345678901234x:" ALICE_HEX "\n", 0,
       "line 1: the name must be", CM_E_INVALID},
      {"cr_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ:" ALICE_HEX "\n", 0,
       "line 1: the name looks like an API key", CM_E_INVALID},
      {NUL_FILE, sizeof(NUL_FILE) - 1, "line 2: contains a NUL byte",
       CM_E_INVALID},
      {"alice:" ALICE_HEX "\nalice:" ALICE_HEX "\n\n\n:\n", 0, "line 5:", CM_E_INVALID},
  };
  char longline[APIKEY_LINE_MAX + 80];
  struct cm_error err = {0};

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
    const char *path = file_put(f, cases[i].text, n);

    cm_error_clear(&err);
    assert_int_equal(apikey_set_add_file(f->s, path, &err), cases[i].code);
    if (!strstr(err.msg, cases[i].where))
      fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].where);
    assert_non_null(strstr(err.msg, path));
    assert_null(strstr(err.msg, ALICE_HEX));
    assert_null(strstr(err.msg, BOB_HEX));
    assert_null(strstr(err.msg, "0c848abb03307b06"));
    assert_int_equal(apikey_set_count(f->s), 0);
  }
  memset(longline, 'a', sizeof(longline));
  memcpy(longline + sizeof(longline) - 2, ":\n", 2);
  assert_int_equal(apikey_set_add_file(f->s, file_put(f, longline, sizeof(longline)), &err),
                   CM_E_TOOLARGE);
  assert_non_null(strstr(err.msg, "line 1: longer than"));
}

static void test_file_too_large(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  size_t n = APIKEY_FILE_MAX + 1;
  char *big = malloc(n);

  assert_non_null(big);
  memset(big, '\n', n);
  assert_int_equal(apikey_set_add_file(f->s, file_put(f, big, n), &err), CM_E_TOOLARGE);
  free(big);
}

/* The check takes the key's exact bytes: anything added, removed or changed fails. */
static void test_check_exact_bytes(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  const char with_nul[] = "alice-secret\0";

  assert_int_equal(apikey_set_add_list(f->s, "alice:" ALICE_HEX ",bob:" BOB_HEX, NULL, &err), 0);
  assert_string_equal(check(f->s, ALICE_KEY), "alice");
  assert_null(check(f->s, "alice-secreT"));           /* a wrong key */
  assert_null(check(f->s, "alice-secret "));          /* a trailing space */
  assert_null(check(f->s, " alice-secret"));          /* a leading space */
  assert_null(check(f->s, "alice-secret\n"));         /* a trailing newline */
  assert_null(check(f->s, "alice-secret\r\n"));
  assert_null(check(f->s, "alice-secre"));            /* a prefix */
  assert_null(apikey_check(f->s, ALICE_KEY, 5));       /* a prefix by length */
  assert_null(apikey_check(f->s, with_nul, sizeof(with_nul) - 1));
  assert_null(check(f->s, ""));                        /* empty */
  assert_null(apikey_check(f->s, NULL, 0));
  assert_null(apikey_check(f->s, NULL, 12));
  assert_null(apikey_check(NULL, ALICE_KEY, strlen(ALICE_KEY)));
  assert_null(check(f->s, ALICE_HEX));                 /* the hash itself is not a key */
}

/* A key of APIKEY_PRESENTED_MAX bytes can match; one byte more never does, even when the
 * file holds its hash. */
static void test_check_length_cap(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  char key[APIKEY_PRESENTED_MAX + 1], hex[APIKEY_HASH_HEX_SIZE], list[160];
  const char *names[] = {"max", "over"};

  memset(key, 'k', sizeof(key));
  for (int i = 0; i < 2; i++) {
    size_t len = APIKEY_PRESENTED_MAX + (size_t)i;

    if (i == 0) {
      assert_int_equal(apikey_hash_hex(key, len, hex, &err), 0);
    } else {
      /* apikey_hash_hex refuses the over-long key, so its hash comes from sha256sum. */
      assert_int_equal(apikey_hash_hex(key, len, hex, &err), CM_E_INVALID);
      assert_non_null(strstr(err.msg, "longer than 256"));
      snprintf(hex, sizeof(hex), "%s", OVER_HEX);
    }
    snprintf(list, sizeof(list), "%s:%s", names[i], hex);
    assert_int_equal(apikey_set_add_list(f->s, list, NULL, &err), 0);
  }
  assert_string_equal(apikey_check(f->s, key, APIKEY_PRESENTED_MAX), "max");
  assert_null(apikey_check(f->s, key, APIKEY_PRESENTED_MAX + 1));
  assert_null(apikey_check(f->s, key, 100000));
}

static void test_hash_hex_refuses(void **state)
{
  struct cm_error err = {0};
  char hex[APIKEY_HASH_HEX_SIZE];

  (void)state;
  assert_int_equal(apikey_hash_hex("", 0, hex, &err), CM_E_INVALID);
  assert_string_equal(hex, "");
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(apikey_hash_hex(NULL, 0, hex, &err), CM_E_INVALID);
}

static void test_new_key(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  char k1[APIKEY_KEY_SIZE], h1[APIKEY_HASH_HEX_SIZE], k2[APIKEY_KEY_SIZE],
      h2[APIKEY_HASH_HEX_SIZE], again[APIKEY_HASH_HEX_SIZE], list[160];

  assert_int_equal(apikey_new(k1, h1, &err), 0);
  assert_int_equal(apikey_new(k2, h2, &err), 0);
  assert_int_equal(strlen(k1), APIKEY_KEY_SIZE - 1);
  assert_memory_equal(k1, "cr_", 3);
  assert_int_equal(strspn(k1 + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                   43);
  assert_int_equal(strlen(h1), 64);
  assert_int_equal(strspn(h1, "0123456789abcdef"), 64);
  assert_string_not_equal(k1, k2);
  assert_string_not_equal(h1, h2);
  assert_int_equal(apikey_hash_hex(k1, strlen(k1), again, &err), 0);
  assert_string_equal(again, h1);
  snprintf(list, sizeof(list), "client-1:%s,client-2:%s", h1, h2);
  assert_int_equal(apikey_set_add_list(f->s, list, NULL, &err), 0);
  assert_string_equal(check(f->s, k1), "client-1");
  assert_string_equal(check(f->s, k2), "client-2");
}

static void test_name_valid(void **state)
{
  char name[APIKEY_NAME_MAX + 2];

  (void)state;
  assert_true(apikey_name_valid("a"));
  assert_true(apikey_name_valid("Team_A.prod-2"));
  assert_false(apikey_name_valid(NULL));
  assert_false(apikey_name_valid(""));
  assert_false(apikey_name_valid("a:b"));
  assert_false(apikey_name_valid("a b"));
  assert_false(apikey_name_valid("caf\xc3\xa9"));
  memset(name, 'n', sizeof(name));
  name[APIKEY_NAME_MAX] = '\0';
  assert_true(apikey_name_valid(name));
  name[APIKEY_NAME_MAX] = 'n';
  name[APIKEY_NAME_MAX + 1] = '\0';
  assert_false(apikey_name_valid(name));
}

/* Failing the n-th allocation for every n: the load fails cleanly with CM_E_NOMEM and leaks
 * nothing (ASan), the set keeps its earlier entries, and finally the load succeeds. */
static void test_alloc_failures(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  char text[4096] = "";
  size_t used = 0;
  const char *path;
  int rc = -1;

  for (int i = 0; i < 20; i++) {
    char key[16], hex[APIKEY_HASH_HEX_SIZE];

    snprintf(key, sizeof(key), "key%d", i);
    assert_int_equal(apikey_hash_hex(key, strlen(key), hex, &err), 0);
    used += (size_t)snprintf(text + used, sizeof(text) - used, "n%d:%s\n", i, hex);
  }
  path = file_puts(f, text);
  assert_int_equal(apikey_set_add_list(f->s, "alice:" ALICE_HEX, NULL, &err), 0);
  for (long n = 0; rc != 0; n++) {
    assert_true(n < 100);
    cm_mem_fail_after(n);
    rc = apikey_set_add_file(f->s, path, &err);
    cm_mem_fail_after(-1);
    if (rc) {
      assert_int_equal(rc, CM_E_NOMEM);
      assert_int_equal(apikey_set_count(f->s), 1);
    }
  }
  assert_int_equal(apikey_set_count(f->s), 21);
  assert_string_equal(check(f->s, "key19"), "n19");
  assert_string_equal(check(f->s, ALICE_KEY), "alice");
  apikey_set_free(NULL);
  assert_int_equal(apikey_set_count(NULL), 0);
}

static void *check_many(void *arg)
{
  const apikey_set *s = arg;
  long bad = 0;

  for (int i = 0; i < 2000; i++) {
    const char *alice = check(s, ALICE_KEY), *bob = check(s, BOB_KEY);

    bad += !alice || strcmp(alice, "alice") != 0 || !bob || strcmp(bob, "bob") != 0 ||
           check(s, "alice-secret ") != NULL;
  }
  return (void *)(intptr_t)bad;
}

/* A loaded set is read-only: threads check at once (run under -fsanitize=thread to see no
 * race). */
static void test_concurrent_checks(void **state)
{
  struct fixture *f = *state;
  struct cm_error err = {0};
  pthread_t th[4];

  assert_int_equal(apikey_set_add_list(f->s, "alice:" ALICE_HEX ",bob:" BOB_HEX, NULL, &err), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, check_many, f->s), 0);
  for (int i = 0; i < 4; i++) {
    void *bad = NULL;

    assert_int_equal(pthread_join(th[i], &bad), 0);
    assert_null(bad);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_vectors),
      cmocka_unit_test_setup_teardown(test_file_good, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_upper_hex, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_missing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_form, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_bad, setup, teardown),
      cmocka_unit_test_setup_teardown(test_merge_and_rotation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_hash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_bad_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_exact_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_length_cap, setup, teardown),
      cmocka_unit_test(test_hash_hex_refuses),
      cmocka_unit_test_setup_teardown(test_new_key, setup, teardown),
      cmocka_unit_test(test_name_valid),
      cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_checks, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
