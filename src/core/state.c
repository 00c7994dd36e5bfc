// SPDX-License-Identifier: MIT
// Per-device entity values.
#include "core/state.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

void state_init(struct state *s, size_t n)
{
    s->n = n;
    s->v = xcalloc(n ? n : 1, sizeof(*s->v));
    s->changed = false;
}

void state_free(struct state *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].text);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

bool state_set_number(struct state *s, size_t i, double v, int64_t now_ms)
{
    struct value *x = &s->v[i];
    if (x->kind == VALUE_NUMBER && x->num == v)
        return false;
    free(x->text);
    *x = (struct value){.kind = VALUE_NUMBER, .num = v, .updated_ms = now_ms};
    s->changed = true;
    return true;
}

bool state_set_text(struct state *s, size_t i, const char *text, int64_t now_ms)
{
    struct value *x = &s->v[i];
    if (x->kind == VALUE_TEXT && strcmp(x->text, text) == 0)
        return false;
    free(x->text);
    *x = (struct value){.kind = VALUE_TEXT, .text = xstrdup(text), .updated_ms = now_ms};
    s->changed = true;
    return true;
}

bool state_set_unknown(struct state *s, size_t i, int64_t now_ms)
{
    struct value *x = &s->v[i];
    if (x->kind == VALUE_UNKNOWN)
        return false;
    free(x->text);
    *x = (struct value){.kind = VALUE_UNKNOWN, .updated_ms = now_ms};
    s->changed = true;
    return true;
}

bool state_take_changed(struct state *s)
{
    bool c = s->changed;
    s->changed = false;
    return c;
}
