// SPDX-License-Identifier: MIT
// The current value of every entity of one device, in its published form.
//
// Numbers are stored rounded to the entity's precision; labels (enum sensors, selects),
// ON/OFF (switches, binary sensors) and strings as text. "Unknown" is a value too: it is
// published as null, never as a placeholder number.
#ifndef E2M_STATE_H
#define E2M_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum value_kind { VALUE_UNKNOWN, VALUE_NUMBER, VALUE_TEXT };

struct value {
    enum value_kind kind;
    double num;
    char *text;         // owned
    int64_t updated_ms; // wall clock of the last change
};

struct state {
    size_t n;
    struct value *v;
    bool changed; // since the last state_take_changed()
};

void state_init(struct state *s, size_t n);
void state_free(struct state *s);
// Each returns whether the stored value changed.
bool state_set_number(struct state *s, size_t i, double v, int64_t now_ms);
bool state_set_text(struct state *s, size_t i, const char *text, int64_t now_ms);
bool state_set_unknown(struct state *s, size_t i, int64_t now_ms);
static inline bool state_known(const struct state *s, size_t i)
{
    return s->v[i].kind != VALUE_UNKNOWN;
}
// Returns and clears the changed flag.
bool state_take_changed(struct state *s);

#endif
