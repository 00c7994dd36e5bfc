// SPDX-License-Identifier: MIT
// Device models: the core option table, lookups and value transforms.
#include "core/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

// Timing options without a default here take the driver's value (struct drv_timing).
const struct param_def core_option_defs[] = {
    {.name = "poll_interval",
     .type = PARAM_DURATION,
     .min = 100,
     .max = 86400000,
     .help = "how often every read group is polled"},
    {.name = "min_request_gap",
     .type = PARAM_DURATION,
     .max = 3600000,
     .help = "quiet time between the end of one exchange and the start of the next"},
    {.name = "reply_timeout",
     .type = PARAM_DURATION,
     .min = 50,
     .max = 300000,
     .help = "how long to wait for a reply"},
    {.name = "connect_timeout",
     .type = PARAM_DURATION,
     .min = 50,
     .max = 300000,
     .help = "how long to wait for a connection"},
    {.name = "backoff_min",
     .type = PARAM_DURATION,
     .min = 100,
     .max = 86400000,
     .help = "first wait after a failure; doubles per failure"},
    {.name = "backoff_max",
     .type = PARAM_DURATION,
     .min = 100,
     .max = 86400000,
     .help = "longest wait after failures"},
    {.name = "offline_after",
     .type = PARAM_INT,
     .def = "3",
     .min = 1,
     .max = 1000,
     .help = "failed exchanges in a row before the device is offline"},
    {.name = "stale_after",
     .type = PARAM_DURATION,
     .max = 86400000,
     .help = "offline when no good exchange for this long (default: 3 poll intervals, at "
             "least 1 minute)"},
    {.name = "write_interval",
     .type = PARAM_DURATION,
     .def = "0",
     .max = 86400000,
     .help = "least time between two writes to the same setting (flash wear)"},
    {.name = "write_expiry",
     .type = PARAM_DURATION,
     .def = "5m",
     .max = 86400000,
     .help = "a command not sent within this is dropped (0 = never)"},
    {.name = "write_retries",
     .type = PARAM_INT,
     .def = "2",
     .min = 0,
     .max = 100,
     .help = "retries of a failed write"},
    {.name = "sleep_interval",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 1000,
     .max = 86400000,
     .help = "probe interval while the device sleeps"},
    {.name = "unsafe_timing",
     .type = PARAM_BOOL,
     .def = "false",
     .help = "allow a min_request_gap below the driver's safe minimum"},
    {.name = "max_registers",
     .type = PARAM_INT,
     .min = 1,
     .max = 2000,
     .help = "registers per read request (register drivers)"},
    {.name = "max_gap",
     .type = PARAM_INT,
     .min = 0,
     .max = 1000,
     .help = "unused registers a read may bridge (register drivers)"},
};
const size_t n_core_option_defs = sizeof(core_option_defs) / sizeof(core_option_defs[0]);

const char *component_name(enum component c)
{
    switch (c) {
    case COMP_SENSOR: return "sensor";
    case COMP_BINARY_SENSOR: return "binary_sensor";
    case COMP_NUMBER: return "number";
    case COMP_SELECT: return "select";
    case COMP_SWITCH: return "switch";
    case COMP_BUTTON: return "button";
    case COMP_TEXT: return "text";
    }
    return "?";
}

const struct entity *model_find(const struct model *m, const char *id)
{
    for (size_t i = 0; i < m->n_entities; i++)
        if (strcmp(m->entities[i].id, id) == 0)
            return &m->entities[i];
    return NULL;
}

double entity_round(const struct entity *e, double v)
{
    if (e->precision < 0)
        return v;
    double f = pow(10, e->precision);
    double r = round(v * f) / f;
    return r == 0 ? 0 : r; // no "-0" in published states
}

// Decimals to publish when the entity file gives no precision: what the register can
// resolve for integers (scale 0.1 -> 1, a scale factor of -2 -> 2), 3 for floats and
// computed values (a float32 carries about 7 significant digits; more would be noise).
static int auto_decimals(const struct entity *e, int sf)
{
    if (e->source != SRC_REGISTER || !regmap_type_is_integer(e->reg.fmt.type))
        return 3;
    // The fewest decimals that show every multiple of the step, shifted by the offset,
    // exactly (scale 0.25 -> 2; offset -40.5 -> 1).
    double step = fabs(e->scale) * pow(10, sf);
    for (int d = 0; d < 9; d++) {
        double x = step * pow(10, d), y = fabs(e->offset) * pow(10, d);
        if (fabs(x - round(x)) < 1e-9 * fmax(1, x) && fabs(y - round(y)) < 1e-9 * fmax(1, y))
            return d;
    }
    return 9;
}

double entity_resolution(const struct entity *e, int sf)
{
    return pow(10, -(e->precision >= 0 ? e->precision : auto_decimals(e, sf)));
}

double entity_value(const struct entity *e, double raw, int sf)
{
    double v = raw;
    if (sf)
        v *= pow(10, sf);
    v = v * e->scale + e->offset;
    int decimals = e->precision >= 0 ? e->precision : auto_decimals(e, sf);
    double f = pow(10, decimals);
    double r = round(v * f) / f;
    return r == 0 ? 0 : r; // no "-0" in published states
}

int entity_raw(const struct entity *e, double value, int sf, double *raw)
{
    const struct reg_ref *r = e->has_write ? &e->write : &e->reg;
    double v = (value - e->offset) / e->scale;
    if (sf)
        v /= pow(10, sf);
    if (!isfinite(v))
        return -ERANGE;
    if (e->source == SRC_REGISTER || e->has_write) {
        if (r->fmt.bit >= 0) {
            if (v != 0 && v != 1)
                return -ERANGE;
        } else if (regmap_type_is_integer(r->fmt.type)) {
            double whole = round(v);
            if (fabs(v - whole) > 1e-6 * fmax(1, fabs(v)))
                return -ERANGE;
            v = whole;
        }
        double lo, hi;
        regmap_type_range(r->fmt.type, &lo, &hi);
        if (v < lo || v > hi)
            return -ERANGE;
    }
    *raw = v;
    return 0;
}

const char *entity_label(const struct entity *e, double raw)
{
    for (size_t i = 0; i < e->n_map; i++)
        if ((double)e->map[i].raw == raw)
            return e->map[i].label;
    return NULL;
}

int entity_bits_text(const struct entity *e, double raw, char *out, size_t n)
{
    if (n == 0)
        return -EINVAL;
    out[0] = '\0';
    if (!(raw >= 0 && raw <= 9007199254740992.0) || raw != floor(raw))
        return -ERANGE;
    const char *whole = entity_label(e, raw);
    if (whole) {
        snprintf(out, n, "%s", whole);
        return 0;
    }
    uint64_t v = (uint64_t)raw;
    size_t len = 0;
    for (int bit = 0; bit < 64 && v; bit++) {
        if (!(v >> bit & 1))
            continue;
        char own[16];
        const char *label = NULL;
        for (size_t i = 0; i < e->n_bits && !label; i++)
            if (e->bits[i].raw == bit)
                label = e->bits[i].label;
        if (!label) {
            snprintf(own, sizeof(own), "bit %d", bit);
            label = own;
        }
        v &= ~(UINT64_C(1) << bit);
        // Keep room for ", ..." while more bits follow.
        size_t need = strlen(label) + (len ? 2 : 0), reserve = v ? 5 : 0;
        if (need + reserve > n - 1 - len) {
            snprintf(out + len, n - len, "%s...", len ? ", " : "");
            return 0;
        }
        len += (size_t)snprintf(out + len, n - len, "%s%s", len ? ", " : "", label);
    }
    return 0;
}

int entity_label_raw(const struct entity *e, const char *label, double *raw)
{
    for (size_t i = 0; i < e->n_map; i++) {
        if (strcmp(e->map[i].label, label) == 0) {
            *raw = (double)e->map[i].raw;
            return 0;
        }
    }
    return -ENOENT;
}
