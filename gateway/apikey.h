/* apikey: the gateway's API keys. Keys are stored only as SHA-256 hashes with a name, loaded
 * from a file of `name:sha256hex` lines and/or an environment list; a presented key is hashed
 * and compared in constant time against every entry. Only the name may be logged. */
#ifndef CREDITO_APIKEY_H
#define CREDITO_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Longest key name; names are 1..APIKEY_NAME_MAX characters of [A-Za-z0-9_.-]. */
#define APIKEY_NAME_MAX 64
/* Longest presented key accepted; a longer one never matches (and is never hashed). */
#define APIKEY_PRESENTED_MAX 256
/* Bytes for a key from apikey_new: "cr_" + 43 base64url characters + NUL. */
#define APIKEY_KEY_SIZE 47
/* Bytes for a hash in hex: 64 lower-case hex digits + NUL. */
#define APIKEY_HASH_HEX_SIZE 65
/* Largest key file read, and longest line in it. */
#define APIKEY_FILE_MAX (1024 * 1024)
#define APIKEY_LINE_MAX 1024

/* A set of (name, SHA-256) entries. Filled by the apikey_set_add_* calls at start, then
 * immutable: any number of threads may call apikey_check at once, but never concurrently with
 * an add or the free. */
typedef struct apikey_set apikey_set;

/* An empty set; the caller frees it with apikey_set_free. NULL when out of memory or when
 * OpenSSL offers no SHA-256. */
apikey_set *apikey_set_new(void);

/* Frees s and its entries. NULL does nothing. */
void apikey_set_free(apikey_set *s);

/*
 * Adds the entries of the key file at path (borrowed): one `name:sha256hex` per line, the hash
 * being 64 hex digits in either case; blank lines and lines starting with '#' are skipped;
 * white space around a line (and a CR before the newline) is ignored.
 * A repeated (name, hash) pair is kept once; one name may have several hashes (key rotation);
 * one hash under two names is an error. On any error nothing from the file is added (s keeps
 * its earlier entries) and err says which line is wrong and why, never quoting the line.
 * Returns 0; CM_E_IO if the file cannot be read; CM_E_TOOLARGE past APIKEY_FILE_MAX bytes or
 * for a line over APIKEY_LINE_MAX; CM_E_INVALID for a bad line; CM_E_NOMEM.
 */
int apikey_set_add_file(apikey_set *s, const char *path, struct cm_error *err);

/*
 * Adds entries from a comma-separated list "alice:HEX,bob:HEX" (borrowed), the form of
 * CREDITO_API_KEYS; white space around each entry is ignored, empty entries are skipped.
 * origin names the list in messages ("CREDITO_API_KEYS entry 2: ..."); NULL gives "key list".
 * Same rules, all-or-nothing behaviour and return codes as apikey_set_add_file (no CM_E_IO).
 */
int apikey_set_add_list(apikey_set *s, const char *list, const char *origin,
                        struct cm_error *err);

/* Number of entries in s (0 for NULL). */
size_t apikey_set_count(const apikey_set *s);

/*
 * Checks a presented key: its exact bytes (presented[0..len), borrowed, may hold any byte; a
 * trailing space or newline is part of the key) are hashed with SHA-256 and compared with
 * CRYPTO_memcmp against every entry, with no early exit, so the time taken does not depend on
 * which entry matches or whether one does. Returns the matching entry's name (owned by s,
 * valid until apikey_set_free), or NULL for no match, an empty or NULL key, a key longer than
 * APIKEY_PRESENTED_MAX, or s NULL. Thread-safe on a set no longer being added to.
 */
const char *apikey_check(const apikey_set *s, const char *presented, size_t len);

/*
 * Makes a new key: 32 bytes from OpenSSL's RAND_bytes as base64url without padding, prefixed
 * "cr_", in key_out (NUL-terminated, 46 characters), and the lower-case hex SHA-256 of those
 * 46 characters in hash_hex. Returns 0, or CM_E_INTERNAL with err set if the random generator
 * fails (then key_out and hash_hex hold empty strings).
 */
int apikey_new(char key_out[APIKEY_KEY_SIZE], char hash_hex[APIKEY_HASH_HEX_SIZE],
               struct cm_error *err);

/*
 * Writes the lower-case hex SHA-256 of key[0..len) (borrowed) to hash_hex: the value a key
 * file holds for that key. Returns 0, or CM_E_INVALID with err set for an empty key or one
 * longer than APIKEY_PRESENTED_MAX (apikey_check would never accept it); CM_E_INTERNAL if
 * hashing fails. The message never quotes the key.
 */
int apikey_hash_hex(const char *key, size_t len, char hash_hex[APIKEY_HASH_HEX_SIZE],
                    struct cm_error *err);

/* True if name (borrowed, may be NULL) is a valid key name: 1..APIKEY_NAME_MAX characters of
 * [A-Za-z0-9_.-]. */
bool apikey_name_valid(const char *name);

#endif
