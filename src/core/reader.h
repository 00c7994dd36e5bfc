// SPDX-License-Identifier: MIT
// Typed reads from a node tree, reporting every problem with its position and key path.
//
// Loaders walk their documents with these instead of a schema engine: the code reads like the
// format it accepts, and unknown keys are rejected by rd_check_keys(). The typed readers
// return 1 when the key is present and valid, 0 when absent or null (the output is left
// untouched so it can hold a default), and -1 when present but invalid (already reported).
#ifndef E2M_READER_H
#define E2M_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "node.h"

struct arena;
struct diag;

struct reader {
    struct arena *a; // owns key paths and expanded strings
    struct diag *d;
    const char *file;
    // Expand ${VAR} and ${VAR:-default} in scalars (the user configuration only; entity
    // definitions are shipped files and stay literal).
    bool expand_env;
};

// "path.key" (or "key" at the top) and "path[i]", allocated in the reader's arena.
const char *rd_key(struct reader *r, const char *path, const char *key);
const char *rd_index(struct reader *r, const char *path, size_t i);

bool rd_is_map(struct reader *r, const struct node *n, const char *path);
bool rd_is_seq(struct reader *r, const struct node *n, const char *path);
// Reports every key of `map` that is not in `allowed` (NULL-terminated), with the nearest
// allowed spelling when one is close.
void rd_check_keys(struct reader *r, const struct node *map, const char *path,
                   const char *const *allowed);
// Reports a missing required key; returns whether it is present.
bool rd_require(struct reader *r, const struct node *map, const char *path, const char *key);

// The text of a scalar after environment expansion; reports and returns NULL otherwise.
const char *rd_text(struct reader *r, const struct node *n, const char *path);

// Value readers: `n` is the value node itself.
int rd_v_str(struct reader *r, const struct node *n, const char *path, const char **out);
int rd_v_int(struct reader *r, const struct node *n, const char *path, long long min, long long max,
             long long *out);
int rd_v_num(struct reader *r, const struct node *n, const char *path, double min, double max,
             double *out);
int rd_v_bool(struct reader *r, const struct node *n, const char *path, bool *out);
int rd_v_duration(struct reader *r, const struct node *n, const char *path, int64_t min_ms,
                  int64_t max_ms, int64_t *out);
// One of `choices` (NULL-terminated); *out is the index.
int rd_v_choice(struct reader *r, const struct node *n, const char *path,
                const char *const *choices, int *out);

// Map-member readers: look `key` up in `map`, then read as above.
int rd_str(struct reader *r, const struct node *map, const char *path, const char *key,
           const char **out);
int rd_int(struct reader *r, const struct node *map, const char *path, const char *key,
           long long min, long long max, long long *out);
int rd_num(struct reader *r, const struct node *map, const char *path, const char *key, double min,
           double max, double *out);
int rd_bool(struct reader *r, const struct node *map, const char *path, const char *key, bool *out);
int rd_duration(struct reader *r, const struct node *map, const char *path, const char *key,
                int64_t min_ms, int64_t max_ms, int64_t *out);
int rd_choice(struct reader *r, const struct node *map, const char *path, const char *key,
              const char *const *choices, int *out);

#endif
