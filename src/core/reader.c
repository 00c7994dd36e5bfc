// SPDX-License-Identifier: MIT
// Typed, position-reporting reads from node trees.
#include "reader.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "mem.h"

const char *rd_key(struct reader *r, const char *path, const char *key)
{
    if (!path || !*path)
        return key;
    return arena_printf(r->a, "%s.%s", path, key);
}

const char *rd_index(struct reader *r, const char *path, size_t i)
{
    return arena_printf(r->a, "%s[%zu]", path ? path : "", i);
}

static const char *kind_name(const struct node *n)
{
    if (!n)
        return "nothing";
    switch (n->kind) {
    case NODE_MAP: return "a mapping";
    case NODE_SEQ: return "a list";
    default: return "a value";
    }
}

bool rd_is_map(struct reader *r, const struct node *n, const char *path)
{
    if (n && n->kind == NODE_MAP)
        return true;
    diag_at(r->d, r->file, n, path, "expected a mapping of keys, got %s", kind_name(n));
    return false;
}

bool rd_is_seq(struct reader *r, const struct node *n, const char *path)
{
    if (n && n->kind == NODE_SEQ)
        return true;
    diag_at(r->d, r->file, n, path, "expected a list, got %s", kind_name(n));
    return false;
}

// Small edit distance for "did you mean" hints; bounded inputs (keys are short).
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

void rd_check_keys(struct reader *r, const struct node *map, const char *path,
                   const char *const *allowed)
{
    if (!map || map->kind != NODE_MAP)
        return;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str;
        const char *near = NULL;
        size_t best = 3;
        bool known = false;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(k, *a) == 0) {
                known = true;
                break;
            }
            size_t dist = edit_distance(k, *a);
            if (dist < best) {
                best = dist;
                near = *a;
            }
        }
        if (known)
            continue;
        if (near)
            diag_at(r->d, r->file, map->keys[i], rd_key(r, path, k),
                    "unknown key (did you mean '%s'?)", near);
        else
            diag_at(r->d, r->file, map->keys[i], rd_key(r, path, k), "unknown key");
    }
}

bool rd_require(struct reader *r, const struct node *map, const char *path, const char *key)
{
    const struct node *v = node_get(map, key);
    if (v && !node_is_null(v))
        return true;
    diag_at(r->d, r->file, v ? v : map, rd_key(r, path, key), "required key is missing");
    return false;
}

// ${NAME} and ${NAME:-default}; anything else is literal.
static const char *expand_env(struct reader *r, const struct node *n, const char *path)
{
    const char *s = n->str;
    if (!strstr(s, "${"))
        return s;
    size_t cap = strlen(s) + 64, len = 0;
    char *out = xmalloc(cap);
    const char *result = NULL;
    char name[128]; // outlives each ${...}: `piece` may point at its default part
    while (*s) {
        const char *piece;
        size_t plen;
        if (s[0] == '$' && s[1] == '{') {
            const char *close = strchr(s + 2, '}');
            if (!close) {
                diag_at(r->d, r->file, n, path, "unterminated ${ in value");
                goto out;
            }
            size_t nlen = (size_t)(close - (s + 2));
            if (nlen >= sizeof(name)) {
                diag_at(r->d, r->file, n, path, "environment variable name too long");
                goto out;
            }
            memcpy(name, s + 2, nlen);
            name[nlen] = '\0';
            const char *def = NULL;
            char *dash = strstr(name, ":-");
            if (dash) {
                *dash = '\0';
                def = dash + 2;
            }
            piece = getenv(name);
            if (!piece || (!*piece && def))
                piece = def;
            if (!piece) {
                diag_at(r->d, r->file, n, path, "environment variable %s is not set", name);
                goto out;
            }
            plen = strlen(piece);
            s = close + 1;
        } else {
            piece = s;
            plen = 1;
            s++;
        }
        if (len + plen + 1 > cap) {
            cap = (len + plen + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + len, piece, plen);
        len += plen;
    }
    out[len] = '\0';
    result = arena_strdup(r->a, out);
out:
    free(out);
    return result;
}

const char *rd_text(struct reader *r, const struct node *n, const char *path)
{
    if (!n || n->kind != NODE_SCALAR) {
        diag_at(r->d, r->file, n, path, "expected a single value, got %s", kind_name(n));
        return NULL;
    }
    return r->expand_env ? expand_env(r, n, path) : n->str;
}

int rd_v_str(struct reader *r, const struct node *n, const char *path, const char **out)
{
    if (node_is_null(n))
        return 0;
    const char *s = rd_text(r, n, path);
    if (!s)
        return -1;
    *out = s;
    return 1;
}

int rd_v_int(struct reader *r, const struct node *n, const char *path, long long min, long long max,
             long long *out)
{
    if (node_is_null(n))
        return 0;
    const char *s = rd_text(r, n, path);
    if (!s)
        return -1;
    long long v;
    if (!node_parse_int(s, &v)) {
        diag_at(r->d, r->file, n, path, "expected a whole number, got '%s'", s);
        return -1;
    }
    if (v < min || v > max) {
        diag_at(r->d, r->file, n, path, "expected a whole number from %lld to %lld, got %lld", min,
                max, v);
        return -1;
    }
    *out = v;
    return 1;
}

int rd_v_num(struct reader *r, const struct node *n, const char *path, double min, double max,
             double *out)
{
    if (node_is_null(n))
        return 0;
    const char *s = rd_text(r, n, path);
    if (!s)
        return -1;
    double v;
    if (!node_parse_double(s, &v)) {
        diag_at(r->d, r->file, n, path, "expected a number, got '%s'", s);
        return -1;
    }
    if (v < min || v > max) {
        diag_at(r->d, r->file, n, path, "expected a number from %g to %g, got %g", min, max, v);
        return -1;
    }
    *out = v;
    return 1;
}

int rd_v_bool(struct reader *r, const struct node *n, const char *path, bool *out)
{
    if (node_is_null(n))
        return 0;
    const char *s = rd_text(r, n, path);
    if (!s)
        return -1;
    if (!node_parse_bool(s, out)) {
        diag_at(r->d, r->file, n, path, "expected true or false, got '%s'", s);
        return -1;
    }
    return 1;
}

static void format_ms(char *buf, size_t n, int64_t ms)
{
    if (ms % 1000)
        snprintf(buf, n, "%" PRId64 "ms", ms);
    else
        snprintf(buf, n, "%" PRId64 "s", ms / 1000);
}

int rd_v_duration(struct reader *r, const struct node *n, const char *path, int64_t min_ms,
                  int64_t max_ms, int64_t *out)
{
    if (node_is_null(n))
        return 0;
    const char *s = rd_text(r, n, path);
    if (!s)
        return -1;
    int64_t v;
    if (!node_parse_duration(s, &v)) {
        diag_at(r->d, r->file, n, path,
                "expected a duration such as 250ms, 35s, 5m or 1h, got '%s'", s);
        return -1;
    }
    if (v < min_ms || v > max_ms) {
        char lo[32], hi[32];
        format_ms(lo, sizeof(lo), min_ms);
        format_ms(hi, sizeof(hi), max_ms);
        diag_at(r->d, r->file, n, path, "expected a duration from %s to %s, got '%s'", lo, hi, s);
        return -1;
    }
    *out = v;
    return 1;
}

int rd_v_choice(struct reader *r, const struct node *n, const char *path,
                const char *const *choices, int *out)
{
    if (node_is_null(n))
        return 0;
    const char *s = rd_text(r, n, path);
    if (!s)
        return -1;
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return 1;
        }
    }
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; choices[i] && len < sizeof(list) - 1; i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", choices[i]);
    diag_at(r->d, r->file, n, path, "expected one of %s, got '%s'", list, s);
    return -1;
}

int rd_str(struct reader *r, const struct node *map, const char *path, const char *key,
           const char **out)
{
    return rd_v_str(r, node_get(map, key), rd_key(r, path, key), out);
}

int rd_int(struct reader *r, const struct node *map, const char *path, const char *key,
           long long min, long long max, long long *out)
{
    return rd_v_int(r, node_get(map, key), rd_key(r, path, key), min, max, out);
}

int rd_num(struct reader *r, const struct node *map, const char *path, const char *key, double min,
           double max, double *out)
{
    return rd_v_num(r, node_get(map, key), rd_key(r, path, key), min, max, out);
}

int rd_bool(struct reader *r, const struct node *map, const char *path, const char *key, bool *out)
{
    return rd_v_bool(r, node_get(map, key), rd_key(r, path, key), out);
}

int rd_duration(struct reader *r, const struct node *map, const char *path, const char *key,
                int64_t min_ms, int64_t max_ms, int64_t *out)
{
    return rd_v_duration(r, node_get(map, key), rd_key(r, path, key), min_ms, max_ms, out);
}

int rd_choice(struct reader *r, const struct node *map, const char *path, const char *key,
              const char *const *choices, int *out)
{
    return rd_v_choice(r, node_get(map, key), rd_key(r, path, key), choices, out);
}
