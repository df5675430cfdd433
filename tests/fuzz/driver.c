/* A main() for fuzz targets built without libFuzzer (GCC, or CREDITO_FUZZ off): feeds every file
 * of the corpus folders or files given as arguments to LLVMFuzzerTestOneInput, each in a buffer
 * of its exact size so AddressSanitizer sees any read past the end. Then, for each file, a fixed
 * number of deterministic mutations (truncations, byte flips, splices of markup) run too, so
 * the ctest does more than replay. Fails if no input was found. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUTATIONS 1000

static uint32_t rng(uint32_t *x)
{
  *x ^= *x << 13;
  *x ^= *x >> 17;
  *x ^= *x << 5;
  return *x;
}

/* Runs the input as is, then mutated copies of it. */
static void run_one(const uint8_t *data, size_t size, uint32_t seed)
{
  static const char *const tokens[] = {"<",  ">",          "</",          "/>",  "&",
                                       ";",  "&#x",        "<!--",        "]]>", "<![CDATA[",
                                       "\"", "<Contents>", "</Contents>", "\0"};
  uint8_t *copy = malloc(size + 16);

  if (!copy)
    return;
  memcpy(copy, data, size);
  LLVMFuzzerTestOneInput(copy, size);
  for (int m = 0; m < MUTATIONS && size > 0; m++) {
    size_t n = size;
    uint8_t *mut = malloc(size + 16);
    size_t at = rng(&seed) % size;

    memcpy(mut, data, size);
    switch (rng(&seed) % 3) {
    case 0: /* truncate */
      n = at;
      break;
    case 1: /* flip a byte */
      mut[at] ^= (uint8_t)(1u << (rng(&seed) % 8));
      break;
    default: { /* overwrite with a markup token */
      const char *t = tokens[rng(&seed) % (sizeof(tokens) / sizeof(tokens[0]))];
      size_t tl = t[0] ? strlen(t) : 1;

      if (at + tl > size)
        at = size - tl < size ? size - tl : 0;
      memcpy(mut + at, t, tl <= size ? tl : size);
    }
    }
    /* A fresh allocation of exactly n bytes, so ASan catches reads past the end. */
    uint8_t *exact = malloc(n ? n : 1);

    memcpy(exact, mut, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    free(mut);
  }
  free(copy);
}

static int run_file(const char *path, uint32_t seed)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;

  if (!f)
    return 0;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(n > 0 ? (size_t)n : 1);
  if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
    free(buf);
    fclose(f);
    return 0;
  }
  fclose(f);
  run_one(buf, (size_t)n, seed);
  free(buf);
  return 1;
}

static int cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir, in name order. Returns how many. */
static int run_dir(const char *dir)
{
  char *names[4096];
  int n = 0, ran = 0;
  struct dirent *e;
  DIR *d = opendir(dir);

  if (!d)
    return run_file(dir, 2463534242u);
  while ((e = readdir(d)) != NULL && n < 4096) {
    if (e->d_name[0] != '.')
      names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof(names[0]), cmp);
  for (int i = 0; i < n; i++) {
    char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
      ran += run_file(path, 2463534242u + (uint32_t)i);
    free(names[i]);
  }
  return ran;
}

int main(int argc, char **argv)
{
  int ran = 0;

  for (int i = 1; i < argc; i++)
    ran += run_dir(argv[i]);
  printf("%d inputs, %d mutations each\n", ran, MUTATIONS);
  if (ran == 0) {
    fprintf(stderr, "no corpus input found\n");
    return 1;
  }
  return 0;
}
