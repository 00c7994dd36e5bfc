// SPDX-License-Identifier: MIT
// Typed parameter tables: a driver's connection settings and every device option.
//
// A table of `struct param_def` says which keys exist, their type, default and range. Values
// are read from configuration nodes with full diagnostics, layered (driver default, then the
// entity model's options, then the device's overrides) and looked up by name.
#ifndef E2M_PARAMS_H
#define E2M_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct node;
struct reader;

enum param_type {
    PARAM_STR,
    PARAM_INT,
    PARAM_NUM,
    PARAM_BOOL,
    PARAM_DURATION, // milliseconds; written as 250ms, 35s, 5m, 1h
    PARAM_CHOICE,   // one of `choices`
};

struct param_def {
    const char *name;
    enum param_type type;
    const char *def; // default in configuration syntax ("35s", "502", "none"), NULL = unset
    double min, max; // PARAM_INT/NUM bounds; PARAM_DURATION bounds in ms (0/0 = unbounded)
    const char *const *choices; // PARAM_CHOICE, NULL-terminated
    bool required;              // must be set by the configuration
    bool secret;                // never logged or printed
    const char *help;
};

struct param_value {
    bool set;
    long long i;        // INT, BOOL (0/1), CHOICE (index)
    double d;           // NUM
    int64_t ms;         // DURATION
    const char *s;      // STR (arena)
    unsigned line, col; // where it was set (0 = default)
    const char *file;
};

struct params {
    const struct param_def *defs;
    size_t n;
    struct param_value *v;
};

const struct param_def *params_find(const struct param_def *defs, size_t n, const char *name);

// Allocates values in `a` and applies the defaults. A default that does not parse is a bug in
// the table and aborts (every table is exercised by the tests).
void params_init(struct params *p, struct arena *a, const struct param_def *defs, size_t n);
// Copies values (for layering one set on top of another).
void params_copy(struct params *dst, struct arena *a, const struct params *src);
// Reads one value node for `def` into `p`; reports problems through `r`. An explicit null
// restores the table's default. Returns 0 or -1.
int params_read_value(struct params *p, struct reader *r, const struct param_def *def,
                      const struct node *value, const char *path);

bool params_is_set(const struct params *p, const char *name);
long long params_int(const struct params *p, const char *name);
double params_num(const struct params *p, const char *name);
bool params_bool(const struct params *p, const char *name);
int64_t params_ms(const struct params *p, const char *name);
const char *params_str(const struct params *p, const char *name);
int params_choice(const struct params *p, const char *name);
// Where a value was set, for messages about combinations ("file:line:column"); NULL if default.
const struct param_value *params_value(const struct params *p, const char *name);

#endif
