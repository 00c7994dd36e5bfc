// SPDX-License-Identifier: MIT
// Loads entities/<vendor>/<model>.yaml into a struct model, checking every key against the
// driver's declarations and Home Assistant's rule tables. Problems are reported with their
// position and the loader carries on, so one run shows them all.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/expr.h"
#include "core/ha_rules.h"
#include "core/mem.h"
#include "core/model.h"
#include "core/reader.h"
#include "drivers/drivers.h"

struct loader {
    struct reader r;
    struct model *m;
    const struct driver_ops *drv;
    size_t errors_before;
};

static bool failed(const struct loader *L)
{
    return diag_count(L->r.d) > L->errors_before;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

// ---- options --------------------------------------------------------------------------------

static void read_windows(struct loader *L, const struct node *seq, const char *path)
{
    static const char *const keys[] = {"every", "start", "length", NULL};
    if (!rd_is_seq(&L->r, seq, path))
        return;
    L->m->windows = arena_alloc(L->r.a, (seq->n ? seq->n : 1) * sizeof(*L->m->windows));
    for (size_t i = 0; i < seq->n; i++) {
        const struct node *w = seq->items[i];
        const char *p = rd_index(&L->r, path, i);
        if (!rd_is_map(&L->r, w, p))
            continue;
        rd_check_keys(&L->r, w, p, keys);
        struct sched_window win = {0};
        bool ok = rd_require(&L->r, w, p, "every") && rd_require(&L->r, w, p, "start") &&
                  rd_require(&L->r, w, p, "length");
        if (!ok)
            continue;
        if (rd_duration(&L->r, w, p, "every", 1000, 7 * 86400000LL, &win.period_ms) < 0 ||
            rd_duration(&L->r, w, p, "length", 1000, 86400000, &win.length_ms) < 0)
            continue;
        const struct node *start = node_get(w, "start");
        const char *s = rd_text(&L->r, start, rd_key(&L->r, p, "start"));
        if (!s)
            continue;
        if (!node_parse_clock(s, win.period_ms <= 3600000, &win.start_ms) &&
            !node_parse_duration(s, &win.start_ms)) {
            diag_at(L->r.d, L->r.file, start, rd_key(&L->r, p, "start"),
                    "expected an offset into the period such as 4:50 (m:ss), 23:55 (h:mm) or "
                    "4m50s, got '%s'",
                    s);
            continue;
        }
        if (win.start_ms >= win.period_ms || win.length_ms >= win.period_ms) {
            diag_at(L->r.d, L->r.file, w, p, "the window must start and end inside 'every'");
            continue;
        }
        L->m->windows[L->m->n_windows++] = win;
    }
}

int model_read_options(struct reader *r, const struct driver_ops *drv, const struct node *map,
                       const char *path, struct params *core, struct params *driver,
                       struct sched_window **windows, size_t *n_windows)
{
    if (!rd_is_map(r, map, path))
        return -1;
    size_t before = diag_count(r->d);
    for (size_t i = 0; i < map->n; i++) {
        const char *key = map->keys[i]->str;
        const char *p = rd_key(r, path, key);
        if (strcmp(key, "quiet_windows") == 0) {
            struct loader L = {.r = *r};
            struct model tmp = {0};
            L.m = &tmp;
            read_windows(&L, map->items[i], p);
            *windows = tmp.windows;
            *n_windows = tmp.n_windows;
            continue;
        }
        const struct param_def *d = params_find(core->defs, core->n, key);
        if (d) {
            params_read_value(core, r, d, map->items[i], p);
            continue;
        }
        d = params_find(driver->defs, driver->n, key);
        if (d) {
            params_read_value(driver, r, d, map->items[i], p);
            continue;
        }
        // Unknown: report it with the full list of what this driver takes.
        char list[512] = "quiet_windows";
        size_t len = strlen(list);
        for (size_t k = 0; k < core->n && len < sizeof(list) - 40; k++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, ", %s", core->defs[k].name);
        for (size_t k = 0; k < driver->n && len < sizeof(list) - 40; k++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, ", %s", driver->defs[k].name);
        diag_at(r->d, r->file, map->keys[i], p, "unknown option for driver %s (known: %s)",
                drv->name, list);
    }
    return diag_count(r->d) > before ? -1 : 0;
}

// ---- registers ------------------------------------------------------------------------------

static int find_table(const struct driver_ops *drv, const char *name)
{
    for (size_t i = 0; i < drv->n_tables; i++)
        if (strcmp(drv->tables[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int read_reg(struct loader *L, const struct node *n, const char *path, struct reg_ref *out)
{
    static const char *const keys[] = {"table", "address", "type",  "word_order", "byte_order",
                                       "bit",   "byte",    "words", NULL};
    static const char *const orders[] = {"big", "little", NULL};
    static const char *const bytes[] = {"high", "low", NULL};
    struct reader *r = &L->r;
    if (!rd_is_map(r, n, path))
        return -1;
    rd_check_keys(r, n, path, keys);
    if (!rd_require(r, n, path, "table") || !rd_require(r, n, path, "address"))
        return -1;

    const char *tname = NULL;
    rd_str(r, n, path, "table", &tname);
    int t = tname ? find_table(L->drv, tname) : -1;
    if (t < 0) {
        char list[200] = "";
        size_t len = 0;
        for (size_t i = 0; i < L->drv->n_tables; i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                    L->drv->tables[i].name);
        diag_at(r->d, r->file, node_get(n, "table"), rd_key(r, path, "table"),
                "expected one of the %s driver's tables (%s), got '%s'", L->drv->name,
                len ? list : "none: it reads fields, not registers", tname ? tname : "");
        return -1;
    }
    const struct drv_table *tab = &L->drv->tables[t];
    long long addr = 0;
    if (rd_int(r, n, path, "address", 0, tab->max_address, &addr) < 0)
        return -1;

    enum reg_type type = tab->bits ? REG_BOOL : REG_U16;
    const char *tyname = NULL;
    const struct node *tnode = node_get(n, "type");
    if (rd_str(r, n, path, "type", &tyname) > 0 && regmap_type_parse(tyname, &type) < 0) {
        diag_at(r->d, r->file, tnode, rd_key(r, path, "type"),
                "expected u16, s16, u32, s32, u64, s64, float32, float64, u8, s8, bool, "
                "string, time_hm or time_hhmm, got '%s'",
                tyname);
        return -1;
    }
    if (tab->bits != (type == REG_BOOL)) {
        diag_at(r->d, r->file, tnode ? tnode : n, rd_key(r, path, "type"),
                tab->bits ? "table '%s' holds bits: the type must be bool"
                          : "table '%s' holds 16-bit registers: bool needs a coil or discrete "
                            "table, use bit: N for one bit of a register",
                tab->name);
        return -1;
    }
    long long words = 0;
    if (type == REG_STRING) {
        if (!rd_require(r, n, path, "words") || rd_int(r, n, path, "words", 1, 64, &words) < 0)
            return -1;
    } else if (node_get(n, "words")) {
        diag_at(r->d, r->file, node_get(n, "words"), rd_key(r, path, "words"),
                "words is only for type string");
        return -1;
    }
    out->table = (uint8_t)t;
    out->address = (uint32_t)addr;
    regmap_format_init(&out->fmt, type, (uint8_t)words);
    if (addr + out->fmt.words - 1 > tab->max_address) {
        diag_at(r->d, r->file, node_get(n, "address"), rd_key(r, path, "address"),
                "a %s at %lld runs past the table's last address %u", regmap_type_name(type), addr,
                tab->max_address);
        return -1;
    }
    int o = 0;
    if (rd_choice(r, n, path, "word_order", orders, &o) > 0)
        out->fmt.word_order = (uint8_t)o;
    o = 0;
    if (rd_choice(r, n, path, "byte_order", orders, &o) > 0)
        out->fmt.byte_order = (uint8_t)o;
    long long bit = -1;
    const struct node *bnode = node_get(n, "bit");
    if (bnode) {
        int width = (type == REG_U8 || type == REG_S8) ? 8 : 16 * out->fmt.words;
        if (!regmap_type_is_integer(type) || type == REG_BOOL) {
            diag_at(r->d, r->file, bnode, rd_key(r, path, "bit"),
                    "bit needs an integer register type");
            return -1;
        }
        if (rd_int(r, n, path, "bit", 0, width - 1, &bit) < 0)
            return -1;
        out->fmt.bit = (int8_t)bit;
    }
    const struct node *bynode = node_get(n, "byte");
    if (bynode) {
        if (type != REG_U8 && type != REG_S8) {
            diag_at(r->d, r->file, bynode, rd_key(r, path, "byte"), "byte is only for u8/s8");
            return -1;
        }
        int b = 0;
        if (rd_choice(r, n, path, "byte", bytes, &b) < 0)
            return -1;
        out->fmt.byte = (uint8_t)b;
    }
    return 0;
}

// ---- entities -------------------------------------------------------------------------------

static const char *const entity_keys[] = {
    "id",          "name",           "component",    "register",  "field", "expr",
    "scale",       "offset",         "scale_factor", "precision", "unit",  "device_class",
    "state_class", "category",       "enabled",      "icon",      "map",   "bits",
    "interval",    "counter",        "max_rate",     "internal",  "min",   "max",
    "step",        "mode",           "on_value",     "off_value", "press", "action",
    "write",       "write_interval", "deadband",     "pattern",   NULL};

static const char *const component_names[] = {"sensor", "binary_sensor", "number", "select",
                                              "switch", "button",        "text",   NULL};

// Keys that only make sense on some components; NULL-terminated component list per key.
struct key_scope {
    const char *key;
    unsigned mask; // bit per enum component
};

#define C(x) (1u << (x))
static const struct key_scope scopes[] = {
    {"min", C(COMP_NUMBER)},
    {"max", C(COMP_NUMBER)},
    {"step", C(COMP_NUMBER)},
    {"mode", C(COMP_NUMBER)},
    {"on_value", C(COMP_SWITCH) | C(COMP_BINARY_SENSOR)},
    {"off_value", C(COMP_SWITCH) | C(COMP_BINARY_SENSOR)},
    {"press", C(COMP_BUTTON)},
    {"action", C(COMP_BUTTON)},
    {"write", C(COMP_NUMBER) | C(COMP_SELECT) | C(COMP_SWITCH) | C(COMP_BUTTON)},
    {"map", C(COMP_SENSOR) | C(COMP_SELECT)},
    {"bits", C(COMP_SENSOR)},
    {"state_class", C(COMP_SENSOR)},
    {"counter", C(COMP_SENSOR)},
    {"max_rate", C(COMP_SENSOR)},
    {"unit", C(COMP_SENSOR) | C(COMP_NUMBER)},
    {"precision", C(COMP_SENSOR) | C(COMP_NUMBER)},
    {"write_interval",
     C(COMP_NUMBER) | C(COMP_SELECT) | C(COMP_SWITCH) | C(COMP_BUTTON) | C(COMP_TEXT)},
    {"deadband", C(COMP_NUMBER)},
    {"pattern", C(COMP_TEXT)},
};
#undef C

static void check_scopes(struct loader *L, const struct node *n, const char *path,
                         enum component comp)
{
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        const struct node *v = node_get(n, scopes[i].key);
        if (v && !(scopes[i].mask & (1u << comp))) {
            char list[128] = "";
            size_t len = 0;
            for (int c = 0; component_names[c]; c++)
                if (scopes[i].mask & (1u << c))
                    len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
                                            component_names[c]);
            diag_at(L->r.d, L->r.file, v, rd_key(&L->r, path, scopes[i].key),
                    "not valid on a %s (only on %s)", component_name(comp), list);
        }
    }
}

static void read_map(struct loader *L, struct entity *e, const struct node *n, const char *path)
{
    struct reader *r = &L->r;
    if (!rd_is_map(r, n, path))
        return;
    if (n->n == 0) {
        diag_at(r->d, r->file, n, path, "expected at least one raw value: label pair");
        return;
    }
    struct enum_entry *map = arena_alloc(r->a, n->n * sizeof(*map));
    for (size_t i = 0; i < n->n; i++) {
        const char *kp = rd_key(r, path, n->keys[i]->str);
        long long raw;
        if (!node_parse_int(n->keys[i]->str, &raw)) {
            diag_at(r->d, r->file, n->keys[i], kp, "expected a whole raw value as the key");
            continue;
        }
        const char *label = NULL;
        int got = rd_v_str(r, n->items[i], kp, &label); // reports non-scalars itself
        if (got <= 0 || !*label) {
            if (got >= 0)
                diag_at(r->d, r->file, n->items[i], kp, "expected a non-empty label");
            continue;
        }
        for (size_t k = 0; k < e->n_map; k++) {
            if (map[k].raw == raw || strcmp(map[k].label, label) == 0) {
                diag_at(r->d, r->file, n->items[i], kp, "duplicate raw value or label '%s'", label);
                label = NULL;
                break;
            }
        }
        if (label)
            map[e->n_map++] = (struct enum_entry){raw, label};
    }
    e->map = map;
}

// `bits`: bit number -> label, for a sensor showing which bits of a value are set.
static void read_bits(struct loader *L, struct entity *e, const struct node *n, const char *path)
{
    struct reader *r = &L->r;
    if (!rd_is_map(r, n, path))
        return;
    if (n->n == 0) {
        diag_at(r->d, r->file, n, path, "expected at least one bit: label pair");
        return;
    }
    struct enum_entry *bits = arena_alloc(r->a, n->n * sizeof(*bits));
    for (size_t i = 0; i < n->n; i++) {
        const char *kp = rd_key(r, path, n->keys[i]->str);
        long long bit;
        if (!node_parse_int(n->keys[i]->str, &bit) || bit < 0 || bit > 63) {
            diag_at(r->d, r->file, n->keys[i], kp, "expected a bit number from 0 to 63 as the key");
            continue;
        }
        const char *label = NULL;
        int got = rd_v_str(r, n->items[i], kp, &label);
        if (got <= 0 || !*label) {
            if (got >= 0)
                diag_at(r->d, r->file, n->items[i], kp, "expected a non-empty label");
            continue;
        }
        for (size_t k = 0; k < e->n_bits; k++) {
            if (bits[k].raw == bit) {
                diag_at(r->d, r->file, n->keys[i], kp, "bit %lld is given twice", bit);
                label = NULL;
                break;
            }
        }
        if (label)
            bits[e->n_bits++] = (struct enum_entry){bit, label};
    }
    e->bits = bits;
}

// `before`: the diagnostics count when this entity began, so the Energy dashboard hint is only
// given for an entity that is otherwise right.
static void check_ha(struct loader *L, const struct entity *e, const struct node *n,
                     const char *path, size_t before)
{
    struct reader *r = &L->r;
    const char *comp = component_name(e->component);
    const char *expected = NULL;
    if (e->device_class && !ha_device_class_ok(comp, e->device_class))
        diag_at(r->d, r->file, node_get(n, "device_class"), rd_key(r, path, "device_class"),
                "'%s' is not a device class of %s in Home Assistant %s", e->device_class, comp,
                ha_rules_version());
    else if (e->device_class && !ha_unit_ok(comp, e->device_class, e->unit, &expected))
        diag_at(r->d, r->file, node_get(n, e->unit ? "unit" : "device_class"),
                rd_key(r, path, "unit"), "device class %s takes %s, got %s%s%s", e->device_class,
                expected ? expected : "another unit", e->unit ? "'" : "no unit",
                e->unit ? e->unit : "", e->unit ? "'" : "");
    if (e->state_class && !ha_state_class_known(e->state_class))
        diag_at(r->d, r->file, node_get(n, "state_class"), rd_key(r, path, "state_class"),
                "expected measurement, total, total_increasing or measurement_angle, got '%s'",
                e->state_class);
    else if (e->component == COMP_SENSOR &&
             !ha_state_class_ok(e->device_class, e->state_class, &expected))
        diag_at(r->d, r->file, node_get(n, e->state_class ? "state_class" : "device_class"),
                rd_key(r, path, "state_class"), "device class %s takes %s, got %s",
                e->device_class ? e->device_class : "(none)", expected ? expected : "another",
                e->state_class ? e->state_class : "none");
    // A class the Energy dashboard uses must be usable there: try the state classes that
    // could qualify it; if one would and this one does not, say which.
    if (diag_count(r->d) == before && e->component == COMP_SENSOR && e->device_class && e->unit &&
        !ha_energy_inputs(e->device_class, e->unit, e->state_class)) {
        static const char *const classes[] = {"total_increasing", "measurement", "total", NULL};
        for (const char *const *sc = classes; *sc; sc++) {
            const char *input = ha_energy_inputs(e->device_class, e->unit, *sc);
            if (input && (!e->state_class || strcmp(e->state_class, "total") != 0)) {
                diag_at(r->d, r->file, node_get(n, e->state_class ? "state_class" : "device_class"),
                        rd_key(r, path, "state_class"),
                        "the Energy dashboard offers a %s sensor (%s) only with state_class "
                        "%s%s, got %s",
                        e->device_class, input, *sc,
                        strcmp(*sc, "total_increasing") == 0 ? " or total" : "",
                        e->state_class ? e->state_class : "none");
                break;
            }
        }
    }
    if (e->category && !ha_entity_category_ok(comp, e->category)) {
        bool known = strcmp(e->category, "config") == 0 || strcmp(e->category, "diagnostic") == 0;
        diag_at(r->d, r->file, node_get(n, "category"), rd_key(r, path, "category"),
                known ? "a %s cannot have category '%s' (Home Assistant refuses config on "
                        "sensors and binary sensors)"
                      : "a %s takes category config or diagnostic, got '%s'",
                comp, e->category);
    }
}

// A text entity's `pattern`: a POSIX extended regular expression that Home Assistant (Python)
// and its frontend (JavaScript) read the same way, so no backslash classes such as \d or \w,
// whose meaning differs between them.
static void read_pattern(struct loader *L, struct entity *e, const struct node *n, const char *path)
{
    struct reader *r = &L->r;
    if (rd_str(r, n, path, "pattern", &e->pattern) <= 0)
        return;
    const struct node *pn = node_get(n, "pattern");
    const char *p = rd_key(r, path, "pattern");
    for (const char *c = e->pattern; *c; c++) {
        if (c[0] == '\\' && c[1]) {
            if ((c[1] >= 'a' && c[1] <= 'z') || (c[1] >= 'A' && c[1] <= 'Z') ||
                (c[1] >= '0' && c[1] <= '9')) {
                diag_at(r->d, r->file, pn, p,
                        "'\\%c' means different things to Home Assistant and to POSIX; write "
                        "the characters out, e.g. [0-9] for \\d",
                        c[1]);
                e->pattern = NULL;
                return;
            }
            c++;
        }
    }
    regex_t re;
    int rc = regcomp(&re, e->pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &re, why, sizeof(why));
        diag_at(r->d, r->file, pn, p, "not a valid regular expression: %s", why);
        e->pattern = NULL;
        return;
    }
    regfree(&re);
    if (strlen(e->pattern) > 255)
        diag_at(r->d, r->file, pn, p, "at most 255 characters");
}

static void read_entity(struct loader *L, struct entity *e, const struct node *n, const char *path)
{
    struct reader *r = &L->r;
    size_t before = diag_count(r->d);
    e->line = n->line;
    e->col = n->col;
    e->scale = 1;
    e->precision = -1;
    e->enabled_by_default = true;
    e->on_value = 1;
    e->off_value = 0;
    e->reg.fmt.bit = -1;
    rd_check_keys(r, n, path, entity_keys);

    static const char *const reserved[] = {"link_status", "last_seen", "poll_errors", "assumed",
                                           NULL};
    if (rd_require(r, n, path, "id") && rd_str(r, n, path, "id", &e->id) > 0) {
        if (!id_ok(e->id)) {
            diag_at(r->d, r->file, node_get(n, "id"), rd_key(r, path, "id"),
                    "expected 1-64 characters of a-z, 0-9 and _, got '%s'", e->id);
            e->id = NULL;
        } else {
            for (const char *const *k = reserved; *k; k++) {
                if (strcmp(*k, e->id) == 0) {
                    diag_at(r->d, r->file, node_get(n, "id"), rd_key(r, path, "id"),
                            "'%s' is reserved for a diagnostic every device has", e->id);
                    e->id = NULL;
                    break;
                }
            }
        }
    }
    rd_str(r, n, path, "name", &e->name);
    int comp = COMP_SENSOR;
    rd_choice(r, n, path, "component", component_names, &comp);
    e->component = (enum component)comp;
    check_scopes(L, n, path, e->component);

    // Source: exactly one of register, field, expr (a button may have none: it writes).
    const struct node *reg = node_get(n, "register"), *field = node_get(n, "field"),
                      *ex = node_get(n, "expr");
    int sources = (reg != NULL) + (field != NULL) + (ex != NULL);
    if (sources > 1)
        diag_at(r->d, r->file, n, path, "give one of register, field or expr, not several");
    if (reg && read_reg(L, reg, rd_key(r, path, "register"), &e->reg) == 0) {
        e->source = SRC_REGISTER;
        e->text = regmap_type_is_text(e->reg.fmt.type);
    }
    if (field) {
        const char *key = NULL;
        if (rd_str(r, n, path, "field", &key) > 0) {
            size_t i;
            for (i = 0; i < L->drv->n_fields; i++)
                if (strcmp(L->drv->fields[i].key, key) == 0)
                    break;
            if (i == L->drv->n_fields) {
                diag_at(r->d, r->file, field, rd_key(r, path, "field"),
                        "the %s driver has no field '%s'%s", L->drv->name, key,
                        L->drv->n_fields ? "" : " (it reads registers, not fields)");
            } else {
                e->source = SRC_FIELD;
                e->field = (uint16_t)i;
                e->text = L->drv->fields[i].text;
            }
        }
    }
    if (ex && rd_str(r, n, path, "expr", &e->expr_text) > 0)
        e->source = SRC_EXPR; // compiled once every id is known
    if (!sources && e->component != COMP_BUTTON)
        diag_at(r->d, r->file, n, path, "needs a source: register, field or expr");

    const struct node *sf = node_get(n, "scale_factor");
    if (sf && read_reg(L, sf, rd_key(r, path, "scale_factor"), &e->scale_factor) == 0)
        e->has_scale_factor = true;
    rd_num(r, n, path, "scale", -1e12, 1e12, &e->scale);
    if (e->scale == 0)
        diag_at(r->d, r->file, node_get(n, "scale"), rd_key(r, path, "scale"),
                "a scale of 0 would make every value 0");
    rd_num(r, n, path, "offset", -1e12, 1e12, &e->offset);
    long long prec;
    if (rd_int(r, n, path, "precision", 0, 9, &prec) > 0)
        e->precision = (int)prec;

    rd_str(r, n, path, "unit", &e->unit);
    rd_str(r, n, path, "device_class", &e->device_class);
    rd_str(r, n, path, "state_class", &e->state_class);
    rd_str(r, n, path, "category", &e->category);
    rd_str(r, n, path, "icon", &e->icon);
    if (e->icon && strncmp(e->icon, "mdi:", 4) != 0)
        diag_at(r->d, r->file, node_get(n, "icon"), rd_key(r, path, "icon"),
                "expected an icon such as mdi:flash, got '%s'", e->icon);
    rd_bool(r, n, path, "enabled", &e->enabled_by_default);
    rd_bool(r, n, path, "internal", &e->internal);
    rd_duration(r, n, path, "interval", 100, 86400000, &e->interval_ms);
    if (node_get(n, "map"))
        read_map(L, e, node_get(n, "map"), rd_key(r, path, "map"));
    if (node_get(n, "bits")) {
        read_bits(L, e, node_get(n, "bits"), rd_key(r, path, "bits"));
        // Its state is free text: no enum, no number.
        if (e->text || e->scale != 1 || e->offset != 0 || e->unit || e->state_class ||
            e->device_class)
            diag_at(r->d, r->file, node_get(n, "bits"), rd_key(r, path, "bits"),
                    "a sensor with bits shows text: it takes a number register or field without "
                    "scale, offset, unit, device_class or state_class");
    }
    if (e->map && e->component == COMP_SENSOR && !e->device_class && !e->bits)
        e->device_class = "enum";
    if (e->map && e->component == COMP_SENSOR && !e->bits && strcmp(e->device_class, "enum") != 0)
        diag_at(r->d, r->file, node_get(n, "device_class"), rd_key(r, path, "device_class"),
                "a sensor with a map is an enum sensor: leave device_class out or set enum, got "
                "'%s'",
                e->device_class);

    static const char *const counters[] = {"none", "lifetime", "daily", "continuous", NULL};
    int counter = -1;
    rd_choice(r, n, path, "counter", counters, &counter);
    // A total_increasing sensor is a counter that only grows; a plain `total` may go both ways
    // (a net meter), so it is guarded only when the file says so.
    if (counter >= 0)
        e->counter = (enum counter_kind)counter;
    else if (e->state_class && strcmp(e->state_class, "total_increasing") == 0)
        e->counter = COUNTER_LIFETIME;
    if (rd_num(r, n, path, "max_rate", 0, 1e15, &e->max_rate) > 0 && e->counter == COUNTER_NONE)
        diag_at(r->d, r->file, node_get(n, "max_rate"), rd_key(r, path, "max_rate"),
                "max_rate only applies to counters (state_class total_increasing, or counter: "
                "lifetime/daily/continuous)");

    // Writable components.
    e->writable = e->component == COMP_NUMBER || e->component == COMP_SELECT ||
                  e->component == COMP_SWITCH || e->component == COMP_BUTTON ||
                  e->component == COMP_TEXT;
    const struct node *w = node_get(n, "write");
    if (w && read_reg(L, w, rd_key(r, path, "write"), &e->write) == 0)
        e->has_write = true;
    e->has_write_interval =
        rd_duration(r, n, path, "write_interval", 0, 86400000, &e->write_interval_ms) > 0;
    rd_num(r, n, path, "on_value", -1e15, 1e15, &e->on_value);
    rd_num(r, n, path, "off_value", -1e15, 1e15, &e->off_value);
    if (e->component == COMP_NUMBER) {
        bool ok = rd_require(r, n, path, "min") && rd_require(r, n, path, "max");
        e->step = 1;
        rd_num(r, n, path, "min", -1e15, 1e15, &e->min);
        rd_num(r, n, path, "max", -1e15, 1e15, &e->max);
        rd_num(r, n, path, "step", 0.001, 1e15, &e->step);
        if (ok && e->min >= e->max)
            diag_at(r->d, r->file, node_get(n, "max"), rd_key(r, path, "max"),
                    "max must be greater than min (%g)", e->min);
        if (rd_num(r, n, path, "deadband", 0, 1e15, &e->deadband) > 0 && ok &&
            e->deadband >= e->max - e->min)
            diag_at(r->d, r->file, node_get(n, "deadband"), rd_key(r, path, "deadband"),
                    "a dead band of %g leaves no room between min %g and max %g", e->deadband,
                    e->min, e->max);
        static const char *const modes[] = {"auto", "box", "slider", NULL};
        int mode = 1;
        rd_choice(r, n, path, "mode", modes, &mode);
        e->mode = modes[mode];
    }
    if (e->component == COMP_SELECT && !e->map)
        diag_at(r->d, r->file, n, path, "a select needs a map of raw values to options");
    if (e->component == COMP_BUTTON) {
        e->has_press = rd_num(r, n, path, "press", -1e15, 1e15, &e->press) > 0;
        rd_str(r, n, path, "action", &e->action);
        if (e->has_press == (e->action != NULL))
            diag_at(r->d, r->file, n, path,
                    "a button needs either press (a raw value to write) or action");
        if (e->action) {
            bool known = false;
            for (const char *const *a = L->drv->actions; a && *a; a++)
                known |= strcmp(*a, e->action) == 0;
            if (!known)
                diag_at(r->d, r->file, node_get(n, "action"), rd_key(r, path, "action"),
                        "the %s driver has no action '%s'", L->drv->name, e->action);
        }
        if (e->has_press && !e->has_write && e->source != SRC_REGISTER)
            diag_at(r->d, r->file, n, path, "a button with press needs register or write");
    }
    if (e->writable && e->component != COMP_BUTTON) {
        if (e->source == SRC_EXPR)
            diag_at(r->d, r->file, n, path,
                    "a %s cannot be computed by expr: it must be "
                    "written to the device",
                    component_name(e->component));
        if (e->source == SRC_FIELD && !L->drv->fields[e->field].writable)
            diag_at(r->d, r->file, node_get(n, "field"), rd_key(r, path, "field"),
                    "the %s driver cannot write field '%s'", L->drv->name,
                    L->drv->fields[e->field].key);
    }
    if (e->writable && (e->has_write || e->source == SRC_REGISTER)) {
        const struct reg_ref *t = e->has_write ? &e->write : &e->reg;
        if (!L->drv->tables[t->table].writable)
            diag_at(r->d, r->file, node_get(n, e->has_write ? "write" : "register"),
                    rd_key(r, path, e->has_write ? "write" : "register"),
                    "table '%s' cannot be written", L->drv->tables[t->table].name);
        if (t->fmt.type == REG_STRING)
            diag_at(r->d, r->file, n, path, "string registers cannot be written");
        if (t->fmt.type == REG_U8 || t->fmt.type == REG_S8)
            diag_at(r->d, r->file, n, path,
                    "u8/s8 registers cannot be written (the other byte of the register would be "
                    "lost)");
        if (t->fmt.bit >= 0 && t->fmt.words != 1)
            diag_at(r->d, r->file, n, path, "only a bit of a 16-bit register can be written");
    }
    if (e->component == COMP_TEXT) {
        read_pattern(L, e, n, path);
        if (e->source != SRC_NONE && !(e->source == SRC_FIELD && e->text) &&
            !(e->source == SRC_REGISTER &&
              (e->reg.fmt.type == REG_TIME_HM || e->reg.fmt.type == REG_TIME_HHMM)))
            diag_at(r->d, r->file, n, path,
                    "a text entity needs a text field of the driver or a time_hm or time_hhmm "
                    "register (it is written as text)");
    }
    if (e->text && ((e->component != COMP_SENSOR && e->component != COMP_TEXT) || e->scale != 1 ||
                    e->offset != 0 || e->state_class || e->unit))
        diag_at(r->d, r->file, n, path,
                "a text value can only be a sensor or a text without scale, unit or "
                "state_class");
    check_ha(L, e, n, path, before);
}

// ---- expressions ----------------------------------------------------------------------------

struct resolve_ctx {
    const struct model *m;
};

static int resolve_id(void *arg, const char *name, size_t len)
{
    const struct model *m = ((struct resolve_ctx *)arg)->m;
    for (size_t i = 0; i < m->n_entities; i++)
        if (m->entities[i].id && strlen(m->entities[i].id) == len &&
            memcmp(m->entities[i].id, name, len) == 0)
            return (int)i;
    return -1;
}

// Depth-first search for a cycle through expressions; colour 1 = on the stack, 2 = done.
static bool has_cycle(const struct model *m, size_t i, unsigned char *colour)
{
    if (colour[i] == 2 || m->entities[i].source != SRC_EXPR || !m->entities[i].expr)
        return false;
    if (colour[i] == 1)
        return true;
    colour[i] = 1;
    const int *refs;
    size_t n = expr_refs(m->entities[i].expr, &refs);
    for (size_t k = 0; k < n; k++)
        if (has_cycle(m, (size_t)refs[k], colour))
            return true;
    colour[i] = 2;
    return false;
}

static void compile_exprs(struct loader *L, const struct node *list)
{
    struct model *m = L->m;
    struct resolve_ctx ctx = {m};
    for (size_t i = 0; i < m->n_entities; i++) {
        struct entity *e = &m->entities[i];
        if (e->source != SRC_EXPR)
            continue;
        char err[160];
        size_t off = 0;
        const struct node *en = node_get(list->items[i], "expr");
        if (expr_compile(L->r.a, e->expr_text, resolve_id, &ctx, &e->expr, err, sizeof(err), &off) <
            0) {
            // Point at the offending character when the expression is on one line.
            unsigned col = en->col + (en->plain ? 0 : 1) + (unsigned)off;
            diag_pos(L->r.d, L->r.file, en->line, col,
                     rd_key(&L->r, rd_index(&L->r, "entities", i), "expr"), "%s", err);
            e->source = SRC_NONE;
        }
    }
    unsigned char *colour = arena_alloc(L->r.a, m->n_entities + 1);
    for (size_t i = 0; i < m->n_entities; i++) {
        if (has_cycle(m, i, colour)) {
            const struct node *en = node_get(list->items[i], "expr");
            diag_at(L->r.d, L->r.file, en, rd_key(&L->r, rd_index(&L->r, "entities", i), "expr"),
                    "expressions refer to each other in a circle");
            break;
        }
    }
}

// ---- the file -------------------------------------------------------------------------------

static const char *const model_keys[] = {"model",       "manufacturer", "name",     "driver",
                                         "description", "options",      "entities", NULL};

struct model *model_load_file(struct arena *a, const char *path, const char *key, struct diag *d)
{
    struct loader L = {.r = {.a = a, .d = d, .file = arena_strdup(a, path)}};
    L.errors_before = diag_count(d);
    struct node *root;
    if (node_load(a, path, &root, d) < 0)
        return NULL;
    struct reader *r = &L.r;
    if (!root || !rd_is_map(r, root, "")) {
        if (!root)
            diag_pos(d, path, 1, 1, "", "the file is empty");
        return NULL;
    }
    rd_check_keys(r, root, "", model_keys);
    struct model *m = arena_alloc(a, sizeof(*m));
    L.m = m;
    m->key = arena_strdup(a, key);
    m->file = L.r.file;

    const char *id = NULL;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (rd_require(r, root, "", "model") && rd_str(r, root, "", "model", &id) > 0 &&
        strcmp(id, base) != 0)
        diag_at(d, r->file, node_get(root, "model"), "model",
                "expected '%s' (the file's name), got '%s'", base, id);
    rd_require(r, root, "", "manufacturer");
    rd_str(r, root, "", "manufacturer", &m->manufacturer);
    rd_require(r, root, "", "name");
    rd_str(r, root, "", "name", &m->name);
    rd_str(r, root, "", "description", &m->description);

    const char *drv = NULL;
    if (rd_require(r, root, "", "driver") && rd_str(r, root, "", "driver", &drv) > 0) {
        L.drv = drivers_find(drv);
        if (!L.drv) {
            size_t n;
            const struct driver_ops *const *all = drivers_all(&n);
            char list[200] = "";
            size_t len = 0;
            for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                        all[i]->name);
            diag_at(d, r->file, node_get(root, "driver"), "driver", "expected one of %s, got '%s'",
                    list, drv);
        }
    }
    if (!L.drv)
        return NULL; // nothing below can be checked without the driver
    m->driver = L.drv;
    params_init(&m->core_options, a, core_option_defs, n_core_option_defs);
    params_init(&m->driver_options, a, L.drv->options, L.drv->n_options);
    const struct node *opts = node_get(root, "options");
    if (opts)
        model_read_options(r, L.drv, opts, "options", &m->core_options, &m->driver_options,
                           &m->windows, &m->n_windows);

    const struct node *list = node_get(root, "entities");
    if (!rd_require(r, root, "", "entities") || !rd_is_seq(r, list, "entities"))
        return NULL;
    if (list->n > MODEL_MAX_ENTITIES) {
        diag_at(r->d, r->file, list, "entities", "at most %d entities per model, got %zu",
                MODEL_MAX_ENTITIES, list->n);
        return NULL;
    }
    m->entities = arena_alloc(a, (list->n ? list->n : 1) * sizeof(*m->entities));
    m->n_entities = list->n;
    for (size_t i = 0; i < list->n; i++) {
        const char *p = rd_index(r, "entities", i);
        if (!rd_is_map(r, list->items[i], p))
            continue;
        struct entity *e = &m->entities[i];
        read_entity(&L, e, list->items[i], p);
        for (size_t k = 0; e->id && k < i; k++) {
            if (m->entities[k].id && strcmp(m->entities[k].id, e->id) == 0) {
                diag_at(d, r->file, node_get(list->items[i], "id"), rd_key(r, p, "id"),
                        "duplicate id (first used at line %u)", m->entities[k].line);
                break;
            }
        }
    }
    if (!failed(&L))
        compile_exprs(&L, list);
    return failed(&L) ? NULL : m;
}

static bool key_ok(const char *key)
{
    const char *slash = strchr(key, '/');
    if (!slash || slash == key || !slash[1] || strchr(slash + 1, '/'))
        return false;
    for (const char *p = key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
              *p == '/'))
            return false;
    return true;
}

struct model *model_load(struct arena *a, const char *const *dirs, size_t n_dirs, const char *key,
                         struct diag *d)
{
    if (!key_ok(key))
        return NULL;
    for (size_t i = 0; i < n_dirs; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s.yaml", dirs[i], key) >= (int)sizeof(path))
            continue;
        if (access(path, R_OK) == 0)
            return model_load_file(a, path, key, d);
    }
    return NULL;
}
