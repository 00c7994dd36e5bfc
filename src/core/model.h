// SPDX-License-Identifier: MIT
// Device models: what entities/<vendor>/<model>.yaml says about a kind of device.
//
// A model lists entities. Each entity takes its value from a register (register drivers), a
// field the driver produces (field drivers), or an expression over other entities; turns the
// raw number into a value (power-of-ten scale factor, scale, offset, enum map, precision);
// carries the Home Assistant keys (checked against the rule tables when loaded); and, when it
// is a number, select, switch or button, says how a command becomes a device write.
// Models are immutable after loading and shared by every device of that model.
#ifndef E2M_MODEL_H
#define E2M_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/params.h"
#include "core/regmap.h"
#include "core/sched.h"

struct arena;
struct diag;
struct expr;
struct driver_ops;
struct node;

enum component {
    COMP_SENSOR,
    COMP_BINARY_SENSOR,
    COMP_NUMBER,
    COMP_SELECT,
    COMP_SWITCH,
    COMP_BUTTON,
    COMP_TEXT, // a writable text field (e.g. a time of day), checked against `pattern`
};

const char *component_name(enum component c);

enum source { SRC_NONE, SRC_REGISTER, SRC_FIELD, SRC_EXPR };

enum counter_kind {
    COUNTER_NONE,       // not an accumulating counter
    COUNTER_LIFETIME,   // never goes down: a decrease is a glitch and is refused
    COUNTER_DAILY,      // may fall back to (near) zero once a day; other decreases are glitches
    COUNTER_CONTINUOUS, // a lifetime total across device-side resets: reading + carried offset
};

struct reg_ref {
    uint8_t table; // index into the driver's tables
    uint32_t address;
    struct reg_format fmt;
};

struct enum_entry {
    long long raw;
    const char *label;
};

struct entity {
    const char *id;
    const char *name; // NULL: HA names it after the device class
    enum component component;
    enum source source;
    struct reg_ref reg;    // SRC_REGISTER
    bool has_scale_factor; // SunSpec-style power-of-ten exponent register
    struct reg_ref scale_factor;
    uint16_t field;        // SRC_FIELD: index into the driver's fields
    bool text;             // the value is text (string registers, text fields)
    const char *expr_text; // SRC_EXPR: as written
    struct expr *expr;     // SRC_EXPR: compiled
    double scale, offset;  // value = raw * 10^sf * scale + offset
    int precision;         // decimals published, -1 = automatic (see entity_value)
    const struct enum_entry *map;
    size_t n_map;
    // Sensors: a label per bit number (`raw` is the bit). The state is the labels of the set
    // bits, joined (`map` may name whole values first, such as 0).
    const struct enum_entry *bits;
    size_t n_bits;
    const char *unit, *device_class, *state_class, *category, *icon;
    bool enabled_by_default;
    bool internal;       // read and usable in expressions, never published
    int64_t interval_ms; // 0 = the device's poll interval
    enum counter_kind counter;
    double max_rate; // counters: largest plausible rise per hour (0 = no limit)

    // Writable components.
    bool writable;
    bool has_write; // writes go to `write` instead of `reg`
    struct reg_ref write;
    double min, max, step;
    const char *mode;           // number: box | slider | auto
    double on_value, off_value; // switch (and binary_sensor) raw values
    bool has_write_interval;    // else the device's write_interval applies
    int64_t write_interval_ms;  // least time between two writes (flash wear)
    double deadband;            // number: a command this close to the current value is not sent
    bool has_press;
    double press;        // button: raw value written
    const char *action;  // button: driver action instead of a write
    const char *pattern; // text: POSIX extended regular expression a command must match

    unsigned line, col; // position of the entity in its file
};

enum { MODEL_MAX_ENTITIES = 4096 }; // a device with more is not one device

struct model {
    const char *key;  // "eastron/sdm630"
    const char *file; // path it was loaded from
    const char *manufacturer, *name, *description;
    const struct driver_ops *driver;
    struct params core_options;   // model defaults layered on the core defaults
    struct params driver_options; // same for the driver's own options
    struct sched_window *windows; // quiet windows (from options.quiet_windows)
    size_t n_windows;
    struct entity *entities;
    size_t n_entities;
};

// Options every device has, whatever its driver.
extern const struct param_def core_option_defs[];
extern const size_t n_core_option_defs;

// Loads the model `key` ("vendor/model") from the first of `dirs` that has
// <dir>/<vendor>/<model>.yaml. Everything lives in `a`. Problems go to `d` with positions.
// Returns NULL on failure; when no diagnostic was added, no such file exists (or the key is
// not of the form vendor/model) and the caller reports that at its own position.
struct model *model_load(struct arena *a, const char *const *dirs, size_t n_dirs, const char *key,
                         struct diag *d);
// Same, from a file path (tests, and users pointing at a file of their own).
struct model *model_load_file(struct arena *a, const char *path, const char *key, struct diag *d);

struct reader;
// Reads an `options:` map (model defaults or a device's overrides) on top of `core` and
// `driver` parameter sets; `quiet_windows` replaces *windows. Returns 0 or -1 (reported).
int model_read_options(struct reader *r, const struct driver_ops *drv, const struct node *map,
                       const char *path, struct params *core, struct params *driver,
                       struct sched_window **windows, size_t *n_windows);

const struct entity *model_find(const struct model *m, const char *id);
static inline size_t model_index(const struct model *m, const struct entity *e)
{
    return (size_t)(e - m->entities);
}

// ---- Value transforms (pure) ------------------------------------------------------------

// Raw number -> published number: applies 10^sf, scale, offset and precision (when the
// file gives none: what the register type and scale can resolve, 3 decimals for floats).
double entity_value(const struct entity *e, double raw, int sf);
// Published number -> raw number for a write. -ERANGE when it does not land on a whole raw
// value for integer registers or falls outside the register type's range.
int entity_raw(const struct entity *e, double value, int sf, double *raw);
// The label for a raw value of a mapped entity, or NULL when the map has none.
const char *entity_label(const struct entity *e, double raw);
// The text of a `bits` entity for a raw value: the map's label for the whole value when it has
// one, else the labels of the set bits in bit order joined by ", " ("bit N" for a bit without
// a label; "" when none is set), cut to fit `n` with "...". Returns -ERANGE (and "") for a
// value that is not a whole number from 0 to 2^53.
int entity_bits_text(const struct entity *e, double raw, char *out, size_t n);
// The raw value for a label; -ENOENT when the map has none.
int entity_label_raw(const struct entity *e, const char *label, double *raw);
// Rounds to the entity's precision (no-op when precision < 0).
double entity_round(const struct entity *e, double v);
// The smallest step between two published values (10^-decimals) for scale factor `sf`.
double entity_resolution(const struct entity *e, int sf);

#endif
