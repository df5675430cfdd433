/* file: the store backend on a local directory, "file:///dir", with the same key layout as S3
 * (key "a/b" is the file dir/a/b), so `aws s3 sync` can move a store. Writes are atomic: a
 * temporary file in dir/.tmp, fsync, rename into place, fsync of the directory. The ETag is the
 * hex md5 of the bytes, computed while writing and kept in the extended attribute
 * user.credito.md5 with the size and mtime it belongs to; when that is missing or stale (a file
 * copied in by another tool, a file system without xattrs), it is computed from the bytes. */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"

#define FILE_CHUNK      (64 * 1024)
#define FILE_PATH_MAX   (4096 + STORE_KEY_MAX + 64)
#define FILE_XATTR      "user.credito.md5"
#define FILE_TMP        ".tmp"
#define FILE_TMP_MAX_S  3600 /* bucket_ensure removes temporary files older than this */
#define FILE_RENAME_TRY 5    /* a concurrent delete may remove a parent between mkdir and rename */

struct fstore {
  char *root; /* absolute, no trailing '/' */
};

/* ---- helpers ---- */

static int file_errno(int e, const char *op, const char *what, struct cm_error *err)
{
  switch (e) {
  case ENOENT:
  case ENOTDIR:
    return cm_error_set(err, CM_E_NOTFOUND, "not found: %s", what);
  case EACCES:
  case EPERM:
  case EROFS:
    return cm_error_set(err, CM_E_PERMISSION, "permission denied to %s %s", op, what);
  case ENAMETOOLONG:
    return cm_error_set(err, CM_E_INVALID, "name too long for the file system: %s", what);
  case EISDIR:
  case EEXIST:
  case ENOTEMPTY:
    return cm_error_set(err, CM_E_FAILED_PRECONDITION,
                        "cannot %s %s: a key cannot be both an object and a directory of other "
                        "keys on a file store",
                        op, what);
  default:
    return cm_error_set(err, CM_E_IO, "cannot %s %s: %s", op, what, strerror(e));
  }
}

/* The object's URL for messages. */
static void file_what(const store *s, const char *key, char *out, size_t cap)
{
  snprintf(out, cap, "%s/%s", s->url, key);
}

static void md5_hex(EVP_MD_CTX *md, char out[33])
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;

  out[0] = '\0';
  if (EVP_DigestFinal_ex(md, d, &n) != 1 || n != 16)
    return;
  for (unsigned int i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* What the xattr holds for a file with these stats and md5. */
static void xattr_value(const struct stat *st, const char *md5, char *out, size_t cap)
{
  snprintf(out, cap, "%s %llu %lld.%09ld", md5, (unsigned long long)st->st_size,
           (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* The cached md5 if it belongs to this size and mtime. */
static bool etag_cached(int fd, const struct stat *st, char out[33])
{
  char got[128], want[128];
  ssize_t n = fgetxattr(fd, FILE_XATTR, got, sizeof(got) - 1);

  if (n < 33)
    return false;
  got[n] = '\0';
  for (int i = 0; i < 32; i++) {
    if (!((got[i] >= '0' && got[i] <= '9') || (got[i] >= 'a' && got[i] <= 'f')))
      return false;
  }
  memcpy(out, got, 32);
  out[32] = '\0';
  xattr_value(st, out, want, sizeof(want));
  return strcmp(got, want) == 0;
}

/* Records md5 for fd's current size and mtime; best effort (some file systems refuse). */
static void etag_store(int fd, const struct stat *st, const char *md5)
{
  char v[128];

  xattr_value(st, md5, v, sizeof(v));
  (void)fsetxattr(fd, FILE_XATTR, v, strlen(v), 0);
}

/* The md5 of fd's bytes: cached, or read from the start and then cached. */
static int etag_get(int fd, const struct stat *st, char out[33])
{
  EVP_MD_CTX *md = NULL;
  char *buf = NULL;
  off_t off = 0;
  int rc = CM_E_NOMEM;

  if (etag_cached(fd, st, out))
    return 0;
  md = EVP_MD_CTX_new();
  buf = cm_malloc(FILE_CHUNK);
  if (!md || !buf || EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1)
    goto out;
  for (;;) {
    ssize_t n = pread(fd, buf, FILE_CHUNK, off);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = CM_E_IO;
      goto out;
    }
    if (n == 0)
      break;
    EVP_DigestUpdate(md, buf, (size_t)n);
    off += n;
  }
  md5_hex(md, out);
  etag_store(fd, st, out);
  rc = 0;
out:
  EVP_MD_CTX_free(md);
  cm_free(buf);
  return rc;
}

static void stat_fill(const struct stat *st, const char *md5, struct store_stat *out)
{
  memset(out, 0, sizeof(*out));
  out->size = (uint64_t)st->st_size;
  out->mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
  snprintf(out->etag, sizeof(out->etag), "%s", md5);
}

/* fsyncs a directory so a rename or mkdir in it survives a crash. */
static void dir_sync(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

/* Creates every missing directory of path from byte from on (path[0..from) exists). */
static int mkdirs(char *path, size_t from)
{
  for (size_t i = from + 1;; i++) {
    char c = path[i];

    if (c != '/' && c != '\0')
      continue;
    path[i] = '\0';
    if (mkdir(path, 0755) == 0) {
      char *slash = strrchr(path, '/');

      /* Make the new entry durable in its parent. */
      *slash = '\0';
      dir_sync(slash == path ? "/" : path);
      *slash = '/';
    } else if (errno != EEXIST) {
      int e = errno;

      path[i] = c;
      return e;
    }
    path[i] = c;
    if (c == '\0')
      return 0;
  }
}

/* ---- put ---- */

/* Opens a new temporary file under root/.tmp; its path goes to tmp. */
static int tmp_open(const struct fstore *fs, char *tmp, size_t cap, int *fd)
{
  static atomic_uint counter;
  unsigned char r[8];
  unsigned long long v;

  if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(r, &ts.tv_nsec, sizeof(r) < sizeof(ts.tv_nsec) ? sizeof(r) : sizeof(ts.tv_nsec));
  }
  memcpy(&v, r, sizeof(v));
  v ^= (unsigned long long)atomic_fetch_add(&counter, 1) << 48 ^ (unsigned long long)getpid();
  snprintf(tmp, cap, "%s/%s", fs->root, FILE_TMP);
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    return errno;
  snprintf(tmp, cap, "%s/%s/%016llx", fs->root, FILE_TMP, v);
  *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  return *fd < 0 ? errno : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Copies the source into fd, computing its md5 into md5. */
static int put_copy(int fd, struct store_src *src, char md5[33], const char *what,
                    struct cm_error *err)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  char *buf = cm_malloc(FILE_CHUNK);
  uint64_t done = 0;
  int rc = 0;

  if (!md || !buf || EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1) {
    rc = cm_error_set(err, CM_E_NOMEM, "writing %s: out of memory", what);
    goto out;
  }
  while (rc == 0 && done < src->size) {
    size_t want = src->size - done < FILE_CHUNK ? (size_t)(src->size - done) : FILE_CHUNK;
    size_t got = 0;
    int e;

    rc = src->fn(src->ctx, buf, want, &got);
    if (rc) {
      cm_error_set(err, rc, "upload of %s: stopped by the source (%s)", what, cm_code_text(rc));
      break;
    }
    if (got == 0 || got > want) {
      rc = cm_error_set(err, CM_E_INVALID, "upload of %s: the source %s", what,
                        got ? "gave more bytes than asked" : "ended early");
      break;
    }
    e = write_all(fd, buf, got);
    if (e) {
      rc = file_errno(e, "write", what, err);
      break;
    }
    EVP_DigestUpdate(md, buf, got);
    done += got;
  }
  if (rc == 0)
    md5_hex(md, md5);
out:
  EVP_MD_CTX_free(md);
  cm_free(buf);
  return rc;
}

/* Moves tmp to key's path, creating parents; retries when a concurrent delete pruned one. */
static int put_rename(const struct fstore *fs, const char *tmp, const char *key, const char *what,
                      struct cm_error *err)
{
  char path[FILE_PATH_MAX];
  size_t rootlen = strlen(fs->root);
  char *slash;
  int e = 0;

  snprintf(path, sizeof(path), "%s/%s", fs->root, key);
  slash = strrchr(path, '/');
  for (int i = 0; i < FILE_RENAME_TRY; i++) {
    e = 0;
    if (slash > path + rootlen) {
      *slash = '\0';
      e = mkdirs(path, rootlen);
      *slash = '/';
    }
    if (e == 0 && rename(tmp, path) != 0)
      e = errno;
    if (e != ENOENT)
      break;
  }
  if (e == ENOTDIR || e == EEXIST || e == EISDIR)
    return file_errno(EISDIR, "write", what, err);
  if (e)
    return file_errno(e, "write", what, err);
  *slash = '\0';
  dir_sync(path);
  return 0;
}

static int file_put(store *s, const char *key, struct store_src *src, const char *ctype,
                    struct cm_error *err)
{
  const struct fstore *fs = s->impl;
  char tmp[FILE_PATH_MAX], what[STORE_KEY_MAX + 4200], md5[33];
  struct stat st;
  int fd = -1;
  int rc, e;

  file_what(s, key, what, sizeof(what));
  e = tmp_open(fs, tmp, sizeof(tmp), &fd);
  if (e == ENOENT)
    return cm_error_set(err, CM_E_NOTFOUND,
                        "store directory %s does not exist (store_bucket_ensure creates it)",
                        fs->root);
  if (e)
    return file_errno(e, "write", what, err);
  rc = put_copy(fd, src, md5, what, err);
  if (rc == 0 && fstat(fd, &st) == 0)
    etag_store(fd, &st, md5);
  if (rc == 0 && fsync(fd) != 0)
    rc = file_errno(errno, "sync", what, err);
  if (close(fd) != 0 && rc == 0)
    rc = file_errno(errno, "close", what, err);
  if (rc == 0)
    rc = put_rename(fs, tmp, key, what, err);
  if (rc)
    unlink(tmp);
  return rc;
}

/* ---- get, head, delete ---- */

/* Opens key's file for reading; a directory counts as missing. */
static int obj_open(const store *s, const char *key, int *fd, struct stat *st, const char *what,
                    struct cm_error *err)
{
  const struct fstore *fs = s->impl;
  char path[FILE_PATH_MAX];

  snprintf(path, sizeof(path), "%s/%s", fs->root, key);
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0)
    return file_errno(errno, "read", what, err);
  if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
    close(*fd);
    *fd = -1;
    return cm_error_set(err, CM_E_NOTFOUND, "not found: %s", what);
  }
  return 0;
}

/* Streams fd to dst, computing the md5 on the way. */
static int get_copy(int fd, struct store_dst *dst, char md5[33], const char *what,
                    struct cm_error *err)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  char *buf = cm_malloc(FILE_CHUNK);
  uint64_t done = 0;
  int rc = 0;

  if (!md || !buf || EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1) {
    rc = cm_error_set(err, CM_E_NOMEM, "reading %s: out of memory", what);
    goto out;
  }
  for (;;) {
    ssize_t n = read(fd, buf, FILE_CHUNK);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = file_errno(errno, "read", what, err);
      break;
    }
    if (n == 0)
      break;
    if ((uint64_t)n > dst->max - done) {
      rc = cm_error_set(err, CM_E_TOOLARGE, "%s is larger than %zu bytes", what, dst->max);
      break;
    }
    EVP_DigestUpdate(md, buf, (size_t)n);
    done += (uint64_t)n;
    rc = dst->fn(dst->ctx, buf, (size_t)n);
    if (rc) {
      cm_error_set(err, rc, "download of %s: stopped by the sink (%s)", what, cm_code_text(rc));
      break;
    }
  }
  if (rc == 0)
    md5_hex(md, md5);
out:
  EVP_MD_CTX_free(md);
  cm_free(buf);
  return rc;
}

static int file_get(store *s, const char *key, struct store_dst *dst, struct store_stat *st,
                    struct cm_error *err)
{
  char what[STORE_KEY_MAX + 4200], md5[33];
  struct stat sb;
  int fd = -1;
  int rc;

  file_what(s, key, what, sizeof(what));
  rc = obj_open(s, key, &fd, &sb, what, err);
  if (rc)
    return rc;
  if ((uint64_t)sb.st_size > dst->max)
    rc = cm_error_set(err, CM_E_TOOLARGE, "%s is larger than %zu bytes", what, dst->max);
  if (rc == 0)
    rc = get_copy(fd, dst, md5, what, err);
  if (rc == 0 && st) {
    /* Stat of what was read: the inode never changes under an open fd, since writers rename. */
    stat_fill(&sb, md5, st);
    st->size = (uint64_t)sb.st_size;
  }
  close(fd);
  return rc;
}

static int file_head(store *s, const char *key, struct store_stat *st, struct cm_error *err)
{
  char what[STORE_KEY_MAX + 4200], md5[33];
  struct stat sb;
  int fd = -1;
  int rc;

  file_what(s, key, what, sizeof(what));
  rc = obj_open(s, key, &fd, &sb, what, err);
  if (rc)
    return rc;
  rc = etag_get(fd, &sb, md5);
  if (rc)
    cm_error_set(err, rc, "cannot read %s", what);
  else
    stat_fill(&sb, md5, st);
  close(fd);
  return rc;
}

/* Removes the now empty directories above key, deepest first, up to the root. */
static void prune_parents(const struct fstore *fs, char *path)
{
  size_t rootlen = strlen(fs->root);
  char *slash;

  for (;;) {
    slash = strrchr(path, '/');
    if (!slash || slash <= path + rootlen)
      return;
    *slash = '\0';
    if (rmdir(path) != 0)
      return;
  }
}

static int file_del(store *s, const char *key, struct cm_error *err)
{
  const struct fstore *fs = s->impl;
  char path[FILE_PATH_MAX], what[STORE_KEY_MAX + 4200];

  snprintf(path, sizeof(path), "%s/%s", fs->root, key);
  if (unlink(path) != 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
      return 0;
    file_what(s, key, what, sizeof(what));
    return file_errno(errno, "delete", what, err);
  }
  prune_parents(fs, path);
  return 0;
}

/* ---- list ---- */

struct walk_ent {
  char *name;
  bool dir;
};

struct walk {
  const store *s;
  const char *prefix;
  size_t plen;
  store_list_fn fn;
  void *ctx;
  struct cm_buf key; /* the key (or directory key with its '/') being visited */
  struct cm_error *err;
};

/* The i-th byte of e's name as a key part (a directory has a '/' after its name), or -1. */
static int walk_char(const struct walk_ent *e, size_t i, size_t len)
{
  if (i < len)
    return (unsigned char)e->name[i];
  return i == len && e->dir ? '/' : -1;
}

/* Byte order of full keys, so the walk emits keys in S3's lexicographic order. */
static int walk_cmp(const void *a, const void *b)
{
  const struct walk_ent *x = a, *y = b;
  size_t lx = strlen(x->name), ly = strlen(y->name);

  for (size_t i = 0;; i++) {
    int cx = walk_char(x, i, lx), cy = walk_char(y, i, ly);

    if (cx != cy)
      return cx < cy ? -1 : 1;
    if (cx < 0)
      return 0;
  }
}

static void walk_ents_free(struct walk_ent *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    cm_free(v[i].name);
  cm_free(v);
}

/* Whether an entry of the directory at dfd belongs in a listing, and whether it is one. */
static bool walk_keep(int dfd, const struct dirent *d, bool top, bool *dir)
{
  struct stat st;
  const char *n = d->d_name;

  if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || (top && strcmp(n, FILE_TMP) == 0))
    return false;
  if (store_key_check(n, STORE_KEY_MAX, NULL) != 0)
    return false; /* a name no key can have (control characters, bad UTF-8) */
  if (d->d_type == DT_DIR || d->d_type == DT_REG) {
    *dir = d->d_type == DT_DIR;
    return true;
  }
  if (d->d_type != DT_UNKNOWN || fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return false;
  *dir = S_ISDIR(st.st_mode);
  return S_ISDIR(st.st_mode) || S_ISREG(st.st_mode);
}

/* Reads the directory path's entries, sorted, into *v and *n. */
static int walk_read(const char *path, bool top, struct walk_ent **v, size_t *n)
{
  DIR *dir = opendir(path);
  struct dirent *d;
  size_t cap = 0;
  int rc = 0;

  *v = NULL;
  *n = 0;
  if (!dir)
    return errno;
  while (rc == 0 && (d = readdir(dir)) != NULL) {
    bool isdir = false;

    if (!walk_keep(dirfd(dir), d, top, &isdir))
      continue;
    if (*n == cap) {
      struct walk_ent *nv = cm_realloc(*v, (cap ? cap * 2 : 16) * sizeof(**v));

      if (!nv) {
        rc = ENOMEM;
        break;
      }
      *v = nv;
      cap = cap ? cap * 2 : 16;
    }
    (*v)[*n].name = cm_strdup(d->d_name);
    (*v)[*n].dir = isdir;
    if (!(*v)[*n].name)
      rc = ENOMEM;
    else
      (*n)++;
  }
  closedir(dir);
  if (rc == 0 && *n > 1)
    qsort(*v, *n, sizeof(**v), walk_cmp);
  return rc;
}

/* Emits the object whose key is w->key, if it still exists. */
static int walk_emit(struct walk *w, const char *path)
{
  struct store_stat st;
  struct stat sb;
  char md5[33];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int rc = 0;

  if (fd < 0)
    return 0; /* deleted meanwhile */
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && etag_get(fd, &sb, md5) == 0) {
    stat_fill(&sb, md5, &st);
    rc = w->fn(w->ctx, w->key.data, &st);
  }
  close(fd);
  return rc;
}

static int walk_dir(struct walk *w, const char *root);

/* Visits one entry of the directory whose key is w->key. */
static int walk_visit(struct walk *w, const char *root, const struct walk_ent *e)
{
  size_t keep = w->key.len;
  size_t cmp;
  int rc = cm_buf_adds(&w->key, e->name);

  if (rc == 0 && e->dir)
    rc = cm_buf_addc(&w->key, '/');
  if (rc == CM_E_TOOLARGE) {
    rc = 0; /* deeper than any key can be */
    goto out;
  }
  if (rc)
    goto out;
  cmp = w->key.len < w->plen ? w->key.len : w->plen;
  if (memcmp(w->key.data, w->prefix, cmp) != 0)
    goto out; /* neither under the prefix nor on the way to it */
  if (e->dir) {
    rc = walk_dir(w, root);
  } else if (w->key.len >= w->plen) {
    struct cm_buf path;

    cm_buf_init(&path, FILE_PATH_MAX);
    rc = cm_buf_addf(&path, "%s/%s", root, w->key.data);
    if (rc == 0)
      rc = walk_emit(w, path.data);
    cm_buf_cleanup(&path);
  }
out:
  w->key.len = keep;
  if (w->key.data)
    w->key.data[keep] = '\0';
  return rc;
}

/* Lists the directory whose key (with its trailing '/') is w->key. */
static int walk_dir(struct walk *w, const char *root)
{
  struct walk_ent *v = NULL;
  size_t n = 0;
  char *path = NULL;
  int rc = 0, e;

  path = cm_malloc(FILE_PATH_MAX);
  if (!path)
    return cm_error_set(w->err, CM_E_NOMEM, "listing %s: out of memory", w->s->url);
  snprintf(path, FILE_PATH_MAX, "%s/%s", root, w->key.len ? w->key.data : "");
  e = walk_read(path, w->key.len == 0, &v, &n);
  if (e == ENOENT && w->key.len == 0)
    rc = cm_error_set(w->err, CM_E_NOTFOUND,
                      "store directory %s does not exist (store_bucket_ensure creates it)", root);
  else if (e && e != ENOENT && e != ENOTDIR)
    rc = file_errno(e, "list", path, w->err);
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = walk_visit(w, root, &v[i]);
  walk_ents_free(v, n);
  cm_free(path);
  return rc;
}

static int file_list(store *s, const char *prefix, store_list_fn fn, void *ctx,
                     struct cm_error *err)
{
  const struct fstore *fs = s->impl;
  struct walk w = {s, prefix, strlen(prefix), fn, ctx, {0}, err};
  int rc;

  cm_buf_init(&w.key, STORE_KEY_MAX + 1);
  rc = walk_dir(&w, fs->root);
  cm_buf_cleanup(&w.key);
  return rc;
}

/* ---- bucket ---- */

/* Removes temporary files a crashed writer left, if older than FILE_TMP_MAX_S. */
static void tmp_sweep(const char *tmpdir)
{
  DIR *dir = opendir(tmpdir);
  struct dirent *d;
  time_t now = time(NULL);

  if (!dir)
    return;
  while ((d = readdir(dir)) != NULL) {
    struct stat st;

    if (d->d_name[0] == '.' || fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (S_ISREG(st.st_mode) && now - st.st_mtime > FILE_TMP_MAX_S)
      (void)unlinkat(dirfd(dir), d->d_name, 0);
  }
  closedir(dir);
}

static int file_bucket_ensure(store *s, struct cm_error *err)
{
  const struct fstore *fs = s->impl;
  char path[FILE_PATH_MAX];
  int e;

  snprintf(path, sizeof(path), "%s/%s", fs->root, FILE_TMP);
  e = mkdirs(path, 0);
  if (e == EACCES || e == EPERM || e == EROFS)
    return file_errno(e, "create", s->url, err);
  if (e)
    return cm_error_set(err, CM_E_IO, "cannot create %s: %s", s->url, strerror(e));
  tmp_sweep(path);
  return 0;
}

static void file_free(void *impl)
{
  struct fstore *fs = impl;

  if (!fs)
    return;
  cm_free(fs->root);
  cm_free(fs);
}

static const struct store_backend file_backend = {
    .put = file_put,
    .get = file_get,
    .head = file_head,
    .del = file_del,
    .list = file_list,
    .bucket_ensure = file_bucket_ensure,
    .free = file_free,
};

int file_open(store *s, const char *dir, struct cm_error *err)
{
  struct fstore *fs = cm_calloc(1, sizeof(*fs));

  if (fs)
    fs->root = cm_strdup(dir);
  if (!fs || !fs->root) {
    cm_free(fs);
    return cm_error_set(err, CM_E_NOMEM, "opening %s: out of memory", s->url);
  }
  s->be = &file_backend;
  s->impl = fs;
  s->prefix_len = 0;
  return 0;
}
