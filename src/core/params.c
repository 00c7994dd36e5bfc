// SPDX-License-Identifier: MIT
// Typed parameter tables.
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "node.h"
#include "reader.h"

const struct param_def *params_find(const struct param_def *defs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i].name, name) == 0)
            return &defs[i];
    return NULL;
}

static bool parse_text(const struct param_def *def, const char *s, struct param_value *v)
{
    switch (def->type) {
    case PARAM_STR: v->s = s; return true;
    case PARAM_INT: return node_parse_int(s, &v->i);
    case PARAM_NUM: return node_parse_double(s, &v->d);
    case PARAM_BOOL: {
        bool b;
        if (!node_parse_bool(s, &b))
            return false;
        v->i = b;
        return true;
    }
    case PARAM_DURATION: return node_parse_duration(s, &v->ms);
    case PARAM_CHOICE:
        for (long long i = 0; def->choices[i]; i++) {
            if (strcmp(def->choices[i], s) == 0) {
                v->i = i;
                return true;
            }
        }
        return false;
    }
    return false;
}

void params_init(struct params *p, struct arena *a, const struct param_def *defs, size_t n)
{
    p->defs = defs;
    p->n = n;
    p->v = arena_alloc(a, (n ? n : 1) * sizeof(*p->v));
    for (size_t i = 0; i < n; i++) {
        if (!defs[i].def)
            continue;
        if (!parse_text(&defs[i], defs[i].def, &p->v[i])) {
            fprintf(stderr, "energy2mqtt: bad default '%s' for parameter %s\n", defs[i].def,
                    defs[i].name);
            abort();
        }
        p->v[i].set = true;
    }
}

void params_copy(struct params *dst, struct arena *a, const struct params *src)
{
    dst->defs = src->defs;
    dst->n = src->n;
    dst->v = arena_alloc(a, (src->n ? src->n : 1) * sizeof(*dst->v));
    memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
}

int params_read_value(struct params *p, struct reader *r, const struct param_def *def,
                      const struct node *value, const char *path)
{
    size_t idx = (size_t)(def - p->defs);
    struct param_value v = p->v[idx];
    int rc;
    switch (def->type) {
    case PARAM_STR: rc = rd_v_str(r, value, path, &v.s); break;
    case PARAM_INT: {
        long long lo = def->min || def->max ? (long long)def->min : -(1LL << 53);
        long long hi = def->min || def->max ? (long long)def->max : (1LL << 53);
        rc = rd_v_int(r, value, path, lo, hi, &v.i);
        break;
    }
    case PARAM_NUM: {
        double lo = def->min || def->max ? def->min : -1e300;
        double hi = def->min || def->max ? def->max : 1e300;
        rc = rd_v_num(r, value, path, lo, hi, &v.d);
        break;
    }
    case PARAM_BOOL: {
        bool b = v.i;
        rc = rd_v_bool(r, value, path, &b);
        v.i = b;
        break;
    }
    case PARAM_DURATION: {
        int64_t lo = (int64_t)def->min, hi = def->max ? (int64_t)def->max : 366LL * 86400000;
        rc = rd_v_duration(r, value, path, lo, hi, &v.ms);
        break;
    }
    case PARAM_CHOICE: {
        int c = (int)v.i;
        rc = rd_v_choice(r, value, path, def->choices, &c);
        v.i = c;
        break;
    }
    default: rc = -1;
    }
    if (rc < 0)
        return -1;
    if (rc == 0) {
        // An explicit null restores the built-in default (or unset when there is none), so
        // a device can undo a model file's setting.
        p->v[idx] = (struct param_value){0};
        if (def->def && parse_text(def, def->def, &p->v[idx]))
            p->v[idx].set = true;
        return 0;
    }
    v.set = true;
    v.line = value->line;
    v.col = value->col;
    v.file = r->file;
    p->v[idx] = v;
    return 0;
}

static const struct param_value *lookup(const struct params *p, const char *name)
{
    const struct param_def *d = params_find(p->defs, p->n, name);
    if (!d) {
        fprintf(stderr, "energy2mqtt: no parameter named %s\n", name);
        abort();
    }
    return &p->v[d - p->defs];
}

bool params_is_set(const struct params *p, const char *name)
{
    return lookup(p, name)->set;
}

long long params_int(const struct params *p, const char *name)
{
    return lookup(p, name)->i;
}

double params_num(const struct params *p, const char *name)
{
    return lookup(p, name)->d;
}

bool params_bool(const struct params *p, const char *name)
{
    return lookup(p, name)->i != 0;
}

int64_t params_ms(const struct params *p, const char *name)
{
    return lookup(p, name)->ms;
}

const char *params_str(const struct params *p, const char *name)
{
    const struct param_value *v = lookup(p, name);
    return v->set ? v->s : NULL;
}

int params_choice(const struct params *p, const char *name)
{
    return (int)lookup(p, name)->i;
}

const struct param_value *params_value(const struct params *p, const char *name)
{
    const struct param_value *v = lookup(p, name);
    return v->line ? v : NULL;
}
