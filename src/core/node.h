// SPDX-License-Identifier: MIT
// A YAML (or JSON) document as a tree of nodes that remember their file position.
//
// libyaml reads both the user's YAML and the add-on's options.json (JSON is a subset of the
// YAML flow syntax), so every error in either can name line and column. Nodes live in the
// caller's arena. Anchors and aliases are resolved by sharing the anchored node.
#ifndef E2M_NODE_H
#define E2M_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct diag;

enum node_kind { NODE_SCALAR, NODE_MAP, NODE_SEQ };

struct node {
    enum node_kind kind;
    unsigned line, col;  // 1-based position of the node's first character
    bool plain;          // scalar written without quotes (so `yes`, `null`, `12` are typed)
    const char *str;     // scalar text, NUL-terminated
    size_t len;          // scalar length
    size_t n;            // items in a sequence, pairs in a map
    struct node **items; // sequence items, or map values
    struct node **keys;  // map keys (always scalars)
};

// Limits that keep a hostile or broken file from exhausting memory or the stack.
enum { NODE_MAX_FILE = 4 * 1024 * 1024, NODE_MAX_DEPTH = 64, NODE_MAX_ALIASES = 1000 };

// Parses `text` as one YAML document. Problems go to `d` with `file` as the name.
// Returns 0 and sets *root (NULL for an empty document), or -EINVAL after recording why.
int node_parse(struct arena *a, const char *file, const char *text, size_t len, struct node **root,
               struct diag *d);
// Reads and parses a file; a read error is recorded in `d` too.
int node_load(struct arena *a, const char *path, struct node **root, struct diag *d);

// Map lookup by key; NULL when `map` is not a map or has no such key.
const struct node *node_get(const struct node *map, const char *key);
// Plain `~`, `null`, `Null`, `NULL` or an empty plain scalar.
bool node_is_null(const struct node *n);

// Pure scalar parsers shared by the readers (no diagnostics; return false when invalid).
bool node_parse_int(const char *s, long long *out);   // decimal, 0x hex, optional sign
bool node_parse_double(const char *s, double *out);   // finite decimal number
bool node_parse_bool(const char *s, bool *out);       // true/false/yes/no/on/off
bool node_parse_duration(const char *s, int64_t *ms); // "250ms", "35s", "5m", "1h30m", "2d", "30"
// "h:mm:ss", or two fields read as "m:ss" when `short_period` (an offset inside a period of an
// hour or less, e.g. "4:50") and as "h:mm" otherwise (a time of day, e.g. "23:55").
bool node_parse_clock(const char *s, bool short_period, int64_t *ms);

#endif
