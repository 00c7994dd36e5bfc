// SPDX-License-Identifier: MIT
// YAML/JSON document tree built from libyaml's event stream.
#include "node.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "diag.h"
#include "mem.h"

struct anchor {
    const char *name;
    struct node *node;
};

struct builder {
    struct arena *a;
    const char *file;
    struct diag *d;
    struct anchor *anchors;
    size_t n_anchors, cap_anchors;
    size_t aliases;
    int depth;
};

static struct node *node_new(struct builder *b, enum node_kind kind, const yaml_mark_t *m)
{
    struct node *n = arena_alloc(b->a, sizeof(*n));
    n->kind = kind;
    n->line = (unsigned)m->line + 1;
    n->col = (unsigned)m->column + 1;
    return n;
}

static void anchor_add(struct builder *b, const yaml_char_t *name, struct node *n)
{
    if (!name)
        return;
    if (b->n_anchors == b->cap_anchors) {
        b->cap_anchors = b->cap_anchors ? b->cap_anchors * 2 : 8;
        b->anchors = xrealloc(b->anchors, b->cap_anchors * sizeof(*b->anchors));
    }
    b->anchors[b->n_anchors++] = (struct anchor){arena_strdup(b->a, (const char *)name), n};
}

static struct node *anchor_find(struct builder *b, const yaml_char_t *name)
{
    for (size_t i = b->n_anchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, (const char *)name) == 0)
            return b->anchors[i].node;
    return NULL;
}

// Growable arrays of node pointers while a collection is open; copied into the arena when
// the collection ends.
struct vec {
    struct node **v;
    size_t n, cap;
};

static void vec_push(struct vec *v, struct node *n)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = xrealloc(v->v, v->cap * sizeof(*v->v));
    }
    v->v[v->n++] = n;
}

static struct node **vec_finish(struct builder *b, struct vec *v)
{
    struct node **out = NULL;
    if (v->n) {
        out = arena_alloc(b->a, v->n * sizeof(*out));
        memcpy(out, v->v, v->n * sizeof(*out));
    }
    free(v->v);
    *v = (struct vec){0};
    return out;
}

static int parse_error(struct builder *b, const yaml_parser_t *p)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *what = p->problem ? p->problem : "malformed document";
    if (p->context)
        diag_pos(b->d, b->file, (unsigned)m->line + 1, (unsigned)m->column + 1, "", "%s %s", what,
                 p->context);
    else
        diag_pos(b->d, b->file, (unsigned)m->line + 1, (unsigned)m->column + 1, "", "%s", what);
    return -EINVAL;
}

static int build_node(struct builder *b, yaml_parser_t *p, yaml_event_t *ev, struct node **out);

// Reads events until the end of the current collection, appending children.
static int build_children(struct builder *b, yaml_parser_t *p, struct node *parent,
                          yaml_event_type_t end)
{
    struct vec keys = {0}, vals = {0};
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev)) {
            rc = parse_error(b, p);
            break;
        }
        if (ev.type == end) {
            yaml_event_delete(&ev);
            break;
        }
        struct node *child = NULL;
        rc = build_node(b, p, &ev, &child);
        yaml_event_delete(&ev);
        if (rc)
            break;
        if (parent->kind == NODE_SEQ) {
            vec_push(&vals, child);
            continue;
        }
        if (keys.n == vals.n) {
            if (child->kind != NODE_SCALAR) {
                diag_at(b->d, b->file, child, "", "a mapping key must be a plain value");
                rc = -EINVAL;
                break;
            }
            for (size_t i = 0; i < keys.n; i++) {
                if (strcmp(keys.v[i]->str, child->str) == 0) {
                    diag_at(b->d, b->file, child, child->str,
                            "duplicate key (first given at line %u)", keys.v[i]->line);
                    rc = -EINVAL;
                    break;
                }
            }
            if (rc)
                break;
            vec_push(&keys, child);
        } else {
            vec_push(&vals, child);
        }
    }
    parent->n = vals.n;
    parent->items = vec_finish(b, &vals);
    parent->keys = vec_finish(b, &keys);
    return rc;
}

static int build_node(struct builder *b, yaml_parser_t *p, yaml_event_t *ev, struct node **out)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        struct node *n = node_new(b, NODE_SCALAR, &ev->start_mark);
        n->len = ev->data.scalar.length;
        n->str = arena_strndup(b->a, (const char *)ev->data.scalar.value, n->len);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        anchor_add(b, ev->data.scalar.anchor, n);
        *out = n;
        return 0;
    }
    case YAML_ALIAS_EVENT: {
        struct node *n = anchor_find(b, ev->data.alias.anchor);
        if (!n) {
            diag_pos(b->d, b->file, (unsigned)ev->start_mark.line + 1,
                     (unsigned)ev->start_mark.column + 1, "", "unknown anchor '%s'",
                     (const char *)ev->data.alias.anchor);
            return -EINVAL;
        }
        if (++b->aliases > NODE_MAX_ALIASES) {
            diag_pos(b->d, b->file, (unsigned)ev->start_mark.line + 1,
                     (unsigned)ev->start_mark.column + 1, "", "more than %d aliases",
                     NODE_MAX_ALIASES);
            return -EINVAL;
        }
        *out = n;
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        if (++b->depth > NODE_MAX_DEPTH) {
            diag_pos(b->d, b->file, (unsigned)ev->start_mark.line + 1,
                     (unsigned)ev->start_mark.column + 1, "", "nesting deeper than %d",
                     NODE_MAX_DEPTH);
            return -EINVAL;
        }
        struct node *n = node_new(b, seq ? NODE_SEQ : NODE_MAP, &ev->start_mark);
        anchor_add(b, seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor, n);
        int rc = build_children(b, p, n, seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT);
        b->depth--;
        *out = n;
        return rc;
    }
    default:
        diag_pos(b->d, b->file, (unsigned)ev->start_mark.line + 1,
                 (unsigned)ev->start_mark.column + 1, "", "unexpected YAML event");
        return -EINVAL;
    }
}

int node_parse(struct arena *a, const char *file, const char *text, size_t len, struct node **root,
               struct diag *d)
{
    struct builder b = {.a = a, .file = file, .d = d};
    yaml_parser_t p;
    int rc = 0;
    *root = NULL;
    if (len > NODE_MAX_FILE) {
        diag_pos(d, file, 0, 0, "", "file larger than %d bytes", NODE_MAX_FILE);
        return -EINVAL;
    }
    if (!yaml_parser_initialize(&p))
        abort();
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = parse_error(&b, &p);
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT ||
            type == YAML_SCALAR_EVENT || type == YAML_ALIAS_EVENT) {
            if (*root) {
                diag_pos(d, file, (unsigned)ev.start_mark.line + 1,
                         (unsigned)ev.start_mark.column + 1, "",
                         "only one document per file is supported");
                yaml_event_delete(&ev);
                rc = -EINVAL;
                break;
            }
            rc = build_node(&b, &p, &ev, root);
        }
        yaml_event_delete(&ev);
        if (rc || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    free(b.anchors);
    if (rc)
        *root = NULL;
    return rc;
}

int node_load(struct arena *a, const char *path, struct node **root, struct diag *d)
{
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_pos(d, path, 0, 0, "", "cannot open: %s", strerror(errno));
        return -errno;
    }
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= NODE_MAX_FILE + 1)
                break;
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    int rc;
    if (err) {
        diag_pos(d, path, 0, 0, "", "read error");
        rc = -EIO;
    } else {
        rc = node_parse(a, path, buf, len, root, d);
    }
    free(buf);
    return rc;
}

const struct node *node_get(const struct node *map, const char *key)
{
    if (!map || map->kind != NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0)
            return map->items[i];
    return NULL;
}

bool node_is_null(const struct node *n)
{
    if (!n)
        return true;
    if (n->kind != NODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

bool node_parse_int(const char *s, long long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    // Base 0 would read "010" (and "-010") as octal; a config author means ten.
    const char *digits = (s[0] == '+' || s[0] == '-') ? s + 1 : s;
    bool hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    long long v = strtoll(s, &end, hex ? 16 : 10);
    if (errno || *end || end == s)
        return false;
    *out = v;
    return true;
}

bool node_parse_double(const char *s, double *out)
{
    // Decimal only: strtod would also take hex floats, "inf" and "nan".
    if (!s || !*s || strspn(s, "+-0123456789.eE") != strlen(s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool node_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool node_parse_duration(const char *s, int64_t *ms)
{
    if (!s || !*s)
        return false;
    double total = 0;
    bool any = false;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 0 || !isfinite(v))
            return false;
        p = end;
        double unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1, p += 2;
        } else if (*p == 's') {
            unit = 1000, p++;
        } else if (*p == 'm') {
            unit = 60000, p++;
        } else if (*p == 'h') {
            unit = 3600000, p++;
        } else if (*p == 'd') {
            unit = 86400000, p++;
        } else if (*p == '\0' && !any) {
            unit = 1000; // a bare number is seconds
        } else {
            return false;
        }
        total += v * unit;
        any = true;
    }
    if (total > 366.0 * 86400000)
        return false;
    *ms = (int64_t)llround(total);
    return true;
}

bool node_parse_clock(const char *s, bool short_period, int64_t *ms)
{
    unsigned a, b, c;
    int n = 0;
    if (sscanf(s, "%u:%u:%u%n", &a, &b, &c, &n) == 3 && s[n] == '\0') {
        if (a > 23 || b > 59 || c > 59)
            return false;
        *ms = ((int64_t)a * 3600 + b * 60 + c) * 1000;
        return true;
    }
    if (sscanf(s, "%u:%u%n", &a, &b, &n) == 2 && s[n] == '\0') {
        if (b > 59 || a > (short_period ? 59u : 23u))
            return false;
        *ms =
            ((int64_t)a * (short_period ? 60 : 3600) + (int64_t)b * (short_period ? 1 : 60)) * 1000;
        return true;
    }
    return false;
}
