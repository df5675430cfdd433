/* Fuzz target for the S3 XML reader (common/store/s3_xml.c), which parses bytes an S3 server
 * sends: ListObjectsV2 pages, Error documents, and the ISO 8601 times inside them. The corpus
 * in s3_xml/ holds real s3rver, AWS and MinIO documents. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct s3_page page;
  struct s3_error_doc doc;
  struct cm_error err;
  int64_t ms;

  if (s3_page_parse((const char *)data, size, &page, &err) == 0) {
    /* What a parse returns must be well-formed: keys are C strings of their own, the token
     * exists when the page says it is truncated. */
    for (size_t i = 0; i < page.n; i++) {
      if (page.v[i].key[0] == '\0' || strlen(page.v[i].st.etag) >= sizeof(page.v[i].st.etag))
        __builtin_trap();
    }
    if (page.truncated && !page.next_token)
      __builtin_trap();
    s3_page_cleanup(&page);
  } else if (page.n != 0 || page.v || page.next_token) {
    __builtin_trap();
  }
  if (s3_error_parse((const char *)data, size, &doc) == 0 &&
      (strlen(doc.code) >= sizeof(doc.code) || strlen(doc.message) >= sizeof(doc.message)))
    __builtin_trap();
  (void)store_time_parse((const char *)data, size, &ms);
  return 0;
}
