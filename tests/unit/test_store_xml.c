/* Unit tests for common/store's S3 XML reader and ISO 8601 times: the real documents of the
 * fuzz corpus (s3rver, AWS and MinIO shapes), table-driven valid and malformed cases, the
 * limits, and a loop failing each allocation in turn. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "store_int.h"

/* Reads tests/fuzz/s3_xml/<name> into a fresh buffer of its exact size. */
static char *corpus(const char *name, size_t *len)
{
  char path[512];
  FILE *f;
  char *p;
  long n;

  snprintf(path, sizeof(path), "%s/%s", S3_XML_CORPUS, name);
  f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  p = malloc((size_t)n + 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return p;
}

static int parse_str(const char *doc, struct s3_page *pg, struct cm_error *err)
{
  return s3_page_parse(doc, strlen(doc), pg, err);
}

static void test_s3rver_pages(void **state)
{
  struct s3_page pg;
  struct cm_error err;
  size_t len;
  char *doc = corpus("s3rver_list_truncated.xml", &len);

  assert_int_equal(s3_page_parse(doc, len, &pg, &err), 0);
  assert_int_equal(pg.n, 2);
  assert_true(pg.truncated);
  assert_string_equal(pg.next_token, "1E5f31Pj8hRDQWQMLF58KcSmrSuWZVT0uHEGkAoUb1OrqTw14xlIng==");
  assert_string_equal(pg.v[0].key, "docs/a.json");
  assert_string_equal(pg.v[1].key, "docs/b c.json");
  assert_int_equal(pg.v[1].st.size, 3);
  assert_string_equal(pg.v[1].st.etag, "8a80554c91d9fca8acb82f023de02f11");
  assert_true(pg.v[0].st.mtime_ms > 1700000000000LL);
  s3_page_cleanup(&pg);
  free(doc);
  doc = corpus("s3rver_list_page.xml", &len);
  assert_int_equal(s3_page_parse(doc, len, &pg, &err), 0);
  assert_int_equal(pg.n, 4);
  assert_false(pg.truncated);
  assert_null(pg.next_token);
  assert_string_equal(pg.v[3].key, "docs/\xc3\xa9t\xc3\xa9.txt");
  s3_page_cleanup(&pg);
  free(doc);
  doc = corpus("s3rver_list_empty.xml", &len);
  assert_int_equal(s3_page_parse(doc, len, &pg, &err), 0);
  assert_int_equal(pg.n, 0);
  s3_page_cleanup(&pg);
  free(doc);
}

static void test_aws_pages(void **state)
{
  struct s3_page pg;
  struct cm_error err;
  size_t len;
  char *doc = corpus("aws_list_v2.xml", &len);

  assert_int_equal(s3_page_parse(doc, len, &pg, &err), 0);
  assert_int_equal(pg.n, 3);
  assert_string_equal(pg.v[0].key, "files/md5/3a/bd1a3a8a5c1f4e0e2f5a5b8d0c9e7f");
  assert_int_equal(pg.v[0].st.size, 1048576);
  assert_int_equal(pg.v[0].st.mtime_ms, 1706704496789LL);
  assert_string_equal(pg.v[1].key, "files/md5/ff/odd & <name> \xf0\x9f\x98\x80 \xc3\xa9");
  assert_string_equal(pg.v[1].st.etag, "9b2cf535f27731c974343645a3985328-2");
  assert_int_equal(pg.v[1].st.mtime_ms, 1709164800000LL);
  assert_int_equal(pg.v[2].st.size, 0);
  s3_page_cleanup(&pg);
  free(doc);
  doc = corpus("aws_list_truncated_prefixes.xml", &len);
  assert_int_equal(s3_page_parse(doc, len, &pg, &err), 0);
  assert_int_equal(pg.n, 2); /* CommonPrefixes are not objects */
  assert_true(pg.truncated);
  assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&x");
  assert_string_equal(pg.v[0].st.etag, "0cc175b9c0f1b6a831c399e269772661");
  assert_string_equal(pg.v[1].key, "registry/runs <cdata> & more");
  assert_int_equal(pg.v[1].st.mtime_ms, 1706704496000LL);
  assert_int_equal(pg.v[0].st.mtime_ms, pg.v[1].st.mtime_ms);
  s3_page_cleanup(&pg);
  free(doc);
}

static void test_error_docs(void **state)
{
  static const struct {
    const char *file, *code, *message_start;
  } cases[] = {
      {"s3rver_error_nosuchkey.xml", "NoSuchKey", "The specified key does not exist."},
      {"s3rver_error_nosuchbucket.xml", "NoSuchBucket", "The specified bucket does not exist"},
      {"s3rver_error_signature.xml", "SignatureDoesNotMatch", "The request signature we"},
      {"aws_error_accessdenied.xml", "AccessDenied", "Access Denied"},
      {"minio_error_nosuchbucket.xml", "NoSuchBucket", "The specified bucket does not exist"},
  };
  struct s3_error_doc doc;
  struct s3_page pg;
  struct cm_error err;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t len;
    char *p = corpus(cases[i].file, &len);

    assert_int_equal(s3_error_parse(p, len, &doc), 0);
    assert_string_equal(doc.code, cases[i].code);
    assert_memory_equal(doc.message, cases[i].message_start, strlen(cases[i].message_start));
    /* An error document is not a listing. */
    assert_int_equal(s3_page_parse(p, len, &pg, &err), CM_E_CORRUPT);
    assert_non_null(strstr(err.msg, "not a ListBucketResult"));
    free(p);
  }
  assert_int_equal(s3_error_parse("<ListBucketResult/>", 19, &doc), CM_E_CORRUPT);
  assert_string_equal(doc.code, "");
  assert_int_equal(s3_error_parse("", 0, &doc), CM_E_CORRUPT);
  assert_int_equal(s3_error_parse("<Error><Code>X</Code>", 21, &doc), CM_E_CORRUPT);
  assert_string_equal(doc.code, "");
}

static void test_error_message_cut(void **state)
{
  char doc[2048];
  struct s3_error_doc e;
  size_t n = (size_t)snprintf(doc, sizeof(doc), "<Error><Code>C</Code><Message>");

  /* 300 bytes of two-byte characters: cut to fit, never inside a character. */
  for (int i = 0; i < 150; i++)
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "\xc3\xa9");
  n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</Message></Error>");
  assert_int_equal(s3_error_parse(doc, n, &e), 0);
  assert_int_equal(strlen(e.message), 254);
  assert_int_equal((unsigned char)e.message[253], 0xa9);
}

static void test_entities_and_markup(void **state)
{
  struct s3_page pg;
  struct cm_error err;
  const char *doc = "\xef\xbb\xbf<?xml version='1.0'?>\n<!-- hi -->\n"
                    "<ListBucketResult a='1' b = \"x>y\"><IsTruncated>false</IsTruncated>"
                    "<Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#65;&#x42;"
                    "&#x1F600;<![CDATA[ <raw>&amp; ]]><!-- c --></Key><Size>18446744073709551615"
                    "</Size><ETag>plain</ETag></Contents><Contents><Key>k2</Key><Size>0</Size>"
                    "<Owner/></Contents></ListBucketResult>\n<!-- after -->\n";

  assert_int_equal(parse_str(doc, &pg, &err), 0);
  assert_int_equal(pg.n, 2);
  assert_string_equal(pg.v[0].key, "a & b <c> \"d\" 'e' AB\xf0\x9f\x98\x80 <raw>&amp; ");
  assert_true(pg.v[0].st.size == UINT64_MAX);
  assert_string_equal(pg.v[0].st.etag, "plain");
  assert_int_equal(pg.v[0].st.mtime_ms, 0);
  s3_page_cleanup(&pg);
}

/* Documents that must be refused with CM_E_CORRUPT. */
static void test_malformed(void **state)
{
  static const char *const bad[] = {
      "",
      "   ",
      "<",
      "<ListBucketResult>",
      "<ListBucketResult></ListBucketResul>",
      "<ListBucketResult></ListBucketResult><ListBucketResult/>",
      "x<ListBucketResult/>",
      "<ListBucketResult/>x",
      "<Error/>",
      "<!DOCTYPE x [<!ENTITY a 'b'>]><ListBucketResult/>",
      "<ListBucketResult><!-- open </ListBucketResult>",
      "<?xml <ListBucketResult/>",
      "<ListBucketResult><![CDATA[x</ListBucketResult>",
      "<![CDATA[x]]><ListBucketResult/>",
      "<ListBucketResult a=b/>",
      "<ListBucketResult a/>",
      "<ListBucketResult a='<'/>",
      "<ListBucketResult a='x/>",
      "<1ListBucketResult/>",
      "<ListBucketResult>&foo;</ListBucketResult>",
      "<ListBucketResult>&amp</ListBucketResult>",
      "<ListBucketResult>&#0;</ListBucketResult>",
      "<ListBucketResult>&#xD800;</ListBucketResult>",
      "<ListBucketResult>&#x110000;</ListBucketResult>",
      "<ListBucketResult>&#x;</ListBucketResult>",
      "<ListBucketResult>&#12a;</ListBucketResult>",
      "<ListBucketResult>&#123456789;</ListBucketResult>",
      "<ListBucketResult>a\x01</ListBucketResult>",
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents/></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>1a</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size></Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size></Contents>"
      "</ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>1</Size><ETag>\"a\"b\"</ETag></Contents>"
      "</ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>2024-13-01T00:00:00Z"
      "</LastModified></Contents></ListBucketResult>",
      "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
      "<ListBucketResult><NextContinuationToken></NextContinuationToken></ListBucketResult>",
      "<ListBucketResult></ ListBucketResult>",
      "<ListBucketResult></ListBucketResult",
  };
  struct s3_page pg;
  struct cm_error err;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = parse_str(bad[i], &pg, &err);

    if (rc != CM_E_CORRUPT)
      fprintf(stderr, "case %zu parsed: %s\n", i, bad[i]);
    assert_int_equal(rc, CM_E_CORRUPT);
    assert_int_equal(err.code, CM_E_CORRUPT);
    assert_int_equal(pg.n, 0);
    assert_null(pg.v);
    assert_null(pg.next_token);
  }
  /* A NUL inside the document is a control character, not an end. */
  assert_int_equal(s3_page_parse("<ListBucketResult>\0</ListBucketResult>", 38, &pg, &err),
                   CM_E_CORRUPT);
}

/* Every cut of a valid document is refused or parsed, never read past its end (ASan). */
static void test_every_prefix(void **state)
{
  struct s3_page pg;
  struct cm_error err;
  size_t len;
  char *doc = corpus("aws_list_truncated_prefixes.xml", &len);

  for (size_t n = 0; n < len; n++) {
    char *cut = malloc(n ? n : 1);

    memcpy(cut, doc, n);
    if (s3_page_parse(cut, n, &pg, &err) == 0)
      s3_page_cleanup(&pg);
    free(cut);
  }
  free(doc);
}

/* <ListBucketResult> + n copies of item + </ListBucketResult>, parsed. */
static int parse_repeated(struct cm_buf *b, const char *open, const char *item, int n,
                          const char *close, struct s3_page *pg, struct cm_error *err)
{
  cm_buf_reset(b);
  assert_int_equal(cm_buf_adds(b, "<ListBucketResult>"), 0);
  assert_int_equal(cm_buf_adds(b, open), 0);
  for (int i = 0; i < n; i++)
    assert_int_equal(cm_buf_adds(b, item), 0);
  assert_int_equal(cm_buf_adds(b, close), 0);
  assert_int_equal(cm_buf_adds(b, "</ListBucketResult>"), 0);
  return s3_page_parse(b->data, b->len, pg, err);
}

static void test_limits(void **state)
{
  struct s3_page pg;
  struct cm_error err;
  struct cm_buf b, item;
  char name[S3_XML_NAME_MAX + 8];

  cm_buf_init(&b, 16 << 20);
  cm_buf_init(&item, 1 << 20);
  /* Depth: the root plus S3_XML_DEPTH_MAX - 1 levels, then one more. */
  cm_buf_reset(&item);
  for (int i = 0; i < S3_XML_DEPTH_MAX - 1; i++)
    cm_buf_adds(&item, "<a>");
  for (int i = 0; i < S3_XML_DEPTH_MAX - 1; i++)
    cm_buf_adds(&item, "</a>");
  assert_int_equal(parse_repeated(&b, "", item.data, 1, "", &pg, &err), 0);
  s3_page_cleanup(&pg);
  assert_int_equal(parse_repeated(&b, "<a>", item.data, 1, "</a>", &pg, &err), CM_E_CORRUPT);
  assert_non_null(strstr(err.msg, "nested too deep"));
  /* Names: S3_XML_NAME_MAX - 1 bytes parse, one more does not. */
  for (int n = S3_XML_NAME_MAX - 1; n <= S3_XML_NAME_MAX; n++) {
    int rc;

    name[0] = '<';
    memset(name + 1, 'n', (size_t)n);
    memcpy(name + 1 + n, "/>", 3);
    rc = parse_repeated(&b, "", name, 1, "", &pg, &err);
    assert_int_equal(rc, n < S3_XML_NAME_MAX ? 0 : CM_E_CORRUPT);
    s3_page_cleanup(&pg);
  }
  /* Text: S3_XML_TEXT_MAX bytes in a Key (entities count decoded), then one more. */
  assert_int_equal(parse_repeated(&b, "<Contents><Key>", "&amp;", S3_XML_TEXT_MAX,
                                  "</Key><Size>1</Size></Contents>", &pg, &err),
                   0);
  assert_int_equal(strlen(pg.v[0].key), S3_XML_TEXT_MAX);
  s3_page_cleanup(&pg);
  assert_int_equal(parse_repeated(&b, "<Contents><Key>", "&amp;", S3_XML_TEXT_MAX + 1,
                                  "</Key><Size>1</Size></Contents>", &pg, &err),
                   CM_E_CORRUPT);
  assert_non_null(strstr(err.msg, "text too long"));
  /* Entries: S3_XML_ENTRIES_MAX, then one more. */
  assert_int_equal(parse_repeated(&b, "", "<Contents><Key>k</Key><Size>1</Size></Contents>",
                                  S3_XML_ENTRIES_MAX, "", &pg, &err),
                   0);
  assert_int_equal(pg.n, S3_XML_ENTRIES_MAX);
  s3_page_cleanup(&pg);
  assert_int_equal(parse_repeated(&b, "", "<Contents><Key>k</Key><Size>1</Size></Contents>",
                                  S3_XML_ENTRIES_MAX + 1, "", &pg, &err),
                   CM_E_CORRUPT);
  cm_buf_cleanup(&b);
  cm_buf_cleanup(&item);
}

/* Fails each allocation in turn: the parse fails cleanly until it succeeds (ASan: no leak). */
static void test_alloc_failures(void **state)
{
  struct s3_page pg;
  struct cm_error err;
  size_t len;
  char *doc = corpus("aws_list_v2.xml", &len);
  int rc = CM_E_NOMEM;

  for (long n = 0; rc == CM_E_NOMEM && n < 1000; n++) {
    cm_mem_fail_after(n);
    rc = s3_page_parse(doc, len, &pg, &err);
    cm_mem_fail_after(-1);
    if (rc == CM_E_NOMEM) {
      assert_int_equal(pg.n, 0);
      assert_null(pg.v);
    }
  }
  assert_int_equal(rc, 0);
  assert_int_equal(pg.n, 3);
  s3_page_cleanup(&pg);
  free(doc);
}

static void test_times(void **state)
{
  static const struct {
    const char *s;
    long long ms;
  } good[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.001Z", 1},
      {"2024-01-31T12:34:56.789Z", 1706704496789LL},
      {"2024-01-31T12:34:56.7891234Z", 1706704496789LL},
      {"2024-01-31T12:34:56Z", 1706704496000LL},
      {"2024-02-29T00:00:00.000Z", 1709164800000LL},
      {"2000-02-29T00:00:00.5Z", 951782400500LL},
      {"2024-01-31T13:34:56+01:00", 1706704496000LL},
      {"2024-01-31T10:04:56-02:30", 1706704496000LL},
      {"1969-12-31T23:59:59Z", -1000},
  };
  static const char *const bad[] = {
      "",
      "2024-01-31",
      "2024-01-31T12:34:56",
      "2024-01-31 12:34:56Z",
      "2024-13-01T00:00:00Z",
      "2024-00-01T00:00:00Z",
      "2023-02-29T00:00:00Z",
      "1900-02-29T00:00:00Z",
      "2024-04-31T00:00:00Z",
      "2024-01-01T24:00:00Z",
      "2024-01-01T00:60:00Z",
      "2024-01-01T00:00:61Z",
      "2024-01-01T00:00:00.Z",
      "2024-01-01T00:00:00ZZ",
      "2024-01-01T00:00:00+1:00",
      "2024-01-01T00:00:00+24:00",
      "2024-1-01T00:00:00Z",
      "+024-01-01T00:00:00Z",
  };
  int64_t ms;

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    assert_int_equal(store_time_parse(good[i].s, strlen(good[i].s), &ms), 0);
    assert_int_equal(ms, good[i].ms);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (store_time_parse(bad[i], strlen(bad[i]), &ms) != CM_E_CORRUPT)
      fprintf(stderr, "time parsed: %s\n", bad[i]);
    assert_int_equal(store_time_parse(bad[i], strlen(bad[i]), &ms), CM_E_CORRUPT);
  }
  /* The length bounds the read: a valid time followed by junk it must not see. */
  assert_int_equal(store_time_parse("2024-01-31T12:34:56Zjunk", 20, &ms), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_s3rver_pages),        cmocka_unit_test(test_aws_pages),
      cmocka_unit_test(test_error_docs),          cmocka_unit_test(test_error_message_cut),
      cmocka_unit_test(test_entities_and_markup), cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_every_prefix),        cmocka_unit_test(test_limits),
      cmocka_unit_test(test_alloc_failures),      cmocka_unit_test(test_times),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
