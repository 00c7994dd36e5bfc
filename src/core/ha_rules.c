// SPDX-License-Identifier: MIT
// Home Assistant rule look-ups over the shared X-macro tables in tests/ha/ha_rules.def.
#include "core/ha_rules.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct sensor_class {
    const char *name;
    const char *units;
    const char *state_classes;
};

struct number_class {
    const char *name;
    const char *units;
};

struct component {
    const char *name;
    int ours;
};

struct energy_input {
    const char *description;
    const char *device_class;
    const char *units;
    const char *state_classes;
};

#define HA_RULES_VERSION(v) static const char rules_version[] = v;
#include "ha_rules.def"

static const struct component components[] = {
#define HA_COMPONENT(n, o) {n, o},
#include "ha_rules.def"
};

static const struct sensor_class sensor_classes[] = {
#define HA_SENSOR_CLASS(n, u, s) {n, u, s},
#include "ha_rules.def"
};

static const struct number_class number_classes[] = {
#define HA_NUMBER_CLASS(n, u) {n, u},
#include "ha_rules.def"
};

static const char *const binary_sensor_classes[] = {
#define HA_BINARY_SENSOR_CLASS(n) n,
#include "ha_rules.def"
};

static const char *const switch_classes[] = {
#define HA_SWITCH_CLASS(n) n,
#include "ha_rules.def"
};

static const char *const button_classes[] = {
#define HA_BUTTON_CLASS(n) n,
#include "ha_rules.def"
};

static const char *const state_classes[] = {
#define HA_STATE_CLASS(n) n,
#include "ha_rules.def"
};

static const struct energy_input energy_inputs[] = {
#define HA_ENERGY_INPUT(d, c, u, s) {d, c, u, s},
#include "ha_rules.def"
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

// Human-readable lists ("mW, W, kW", "%, no unit", "total, total_increasing") are derived
// once from the "|"-separated table strings. A "|" becomes ", " and an empty item becomes a
// word of at most 14 bytes, so 8 bytes per source byte plus slack always suffices; the pools
// are sized from the tables at compile time.
#define HUMAN_SIZE(s) (8 * sizeof(s) + 16)

enum {
    SENSOR_UNITS_POOL = 0
#define HA_SENSOR_CLASS(n, u, s) +HUMAN_SIZE(u)
#include "ha_rules.def"
    ,
    SENSOR_STATES_POOL = 0
#define HA_SENSOR_CLASS(n, u, s) +HUMAN_SIZE(s)
#include "ha_rules.def"
    ,
    NUMBER_UNITS_POOL = 0
#define HA_NUMBER_CLASS(n, u) +HUMAN_SIZE(u)
#include "ha_rules.def"
    ,
    ALL_STATES_SIZE = 16
#define HA_STATE_CLASS(n) +sizeof(n) + 2
#include "ha_rules.def"
};

static pthread_once_t human_once = PTHREAD_ONCE_INIT;
static char sensor_units_pool[SENSOR_UNITS_POOL];
static char sensor_states_pool[SENSOR_STATES_POOL];
static char number_units_pool[NUMBER_UNITS_POOL];
static const char *sensor_units_human[COUNT(sensor_classes)];
static const char *sensor_states_human[COUNT(sensor_classes)];
static const char *number_units_human[COUNT(number_classes)];
static char all_states_human[ALL_STATES_SIZE];

// Writes the readable form of `list` at *pos in `pool` and advances *pos. `empty_word`
// replaces an empty item, `any_word` the "*" wildcard.
static const char *human_list(const char *list, const char *empty_word, const char *any_word,
                              char *pool, size_t cap, size_t *pos)
{
    char *out = pool + *pos;
    size_t room = cap - *pos;
    size_t len = 0;
    const char *p = list;

    if (room == 0)
        return "";
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        int w;

        if (n == 0)
            w = snprintf(out + len, room - len, "%s%s", len ? ", " : "", empty_word);
        else if (n == 1 && p[0] == '*')
            w = snprintf(out + len, room - len, "%s%s", len ? ", " : "", any_word);
        else
            w = snprintf(out + len, room - len, "%s%.*s", len ? ", " : "", (int)n, p);
        if (w > 0)
            len += (size_t)w;
        if (len >= room)
            len = room - 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    *pos += len + 1;
    return out;
}

static void human_init(void)
{
    size_t su = 0, ss = 0, nu = 0, len = 0;

    for (size_t i = 0; i < COUNT(sensor_classes); i++) {
        sensor_units_human[i] = human_list(sensor_classes[i].units, "no unit", "any unit",
                                           sensor_units_pool, sizeof(sensor_units_pool), &su);
        sensor_states_human[i] =
            human_list(sensor_classes[i].state_classes, "no state_class", "any state_class",
                       sensor_states_pool, sizeof(sensor_states_pool), &ss);
    }
    for (size_t i = 0; i < COUNT(number_classes); i++)
        number_units_human[i] = human_list(number_classes[i].units, "no unit", "any unit",
                                           number_units_pool, sizeof(number_units_pool), &nu);
    for (size_t i = 0; i < COUNT(state_classes); i++) {
        int w = snprintf(all_states_human + len, sizeof(all_states_human) - len, "%s%s",
                         i ? ", " : "", state_classes[i]);
        if (w > 0)
            len += (size_t)w;
    }
}

// Whether `item` is in the "|"-separated `list`. A NULL item stands for "nothing" and matches
// an empty entry; "*" in the list matches any non-NULL item.
static bool list_has(const char *list, const char *item)
{
    const char *p = list;

    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);

        if (!item) {
            if (n == 0)
                return true;
        } else if (n == 1 && p[0] == '*') {
            return true;
        } else if (n > 0 && strlen(item) == n && memcmp(p, item, n) == 0) {
            return true;
        }
        if (!bar)
            return false;
        p = bar + 1;
    }
}

static bool names_have(const char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static int sensor_class_index(const char *device_class)
{
    for (size_t i = 0; i < COUNT(sensor_classes); i++)
        if (strcmp(sensor_classes[i].name, device_class) == 0)
            return (int)i;
    return -1;
}

static int number_class_index(const char *device_class)
{
    for (size_t i = 0; i < COUNT(number_classes); i++)
        if (strcmp(number_classes[i].name, device_class) == 0)
            return (int)i;
    return -1;
}

const char *ha_rules_version(void)
{
    return rules_version;
}

bool ha_component_ok(const char *component)
{
    if (!component)
        return false;
    for (size_t i = 0; i < COUNT(components); i++)
        if (components[i].ours && strcmp(components[i].name, component) == 0)
            return true;
    return false;
}

bool ha_device_class_ok(const char *component, const char *device_class)
{
    if (!component)
        return false;
    if (!device_class)
        return ha_component_ok(component);
    if (strcmp(component, "sensor") == 0)
        return sensor_class_index(device_class) >= 0;
    if (strcmp(component, "number") == 0)
        return number_class_index(device_class) >= 0;
    if (strcmp(component, "binary_sensor") == 0)
        return names_have(binary_sensor_classes, COUNT(binary_sensor_classes), device_class);
    if (strcmp(component, "switch") == 0)
        return names_have(switch_classes, COUNT(switch_classes), device_class);
    if (strcmp(component, "button") == 0)
        return names_have(button_classes, COUNT(button_classes), device_class);
    return false;
}

bool ha_unit_ok(const char *component, const char *device_class, const char *unit,
                const char **expected)
{
    const char *units;
    const char *human;
    int i;

    if (!component || !device_class)
        return true;
    // An empty unit string is the same as no unit at all for HA.
    if (unit && !unit[0])
        unit = NULL;
    pthread_once(&human_once, human_init);
    if (strcmp(component, "sensor") == 0) {
        i = sensor_class_index(device_class);
        if (i < 0)
            return true;
        units = sensor_classes[i].units;
        human = sensor_units_human[i];
    } else if (strcmp(component, "number") == 0) {
        i = number_class_index(device_class);
        if (i < 0)
            return true;
        units = number_classes[i].units;
        human = number_units_human[i];
    } else {
        return true;
    }
    if (list_has(units, unit))
        return true;
    if (expected)
        *expected = human;
    return false;
}

bool ha_state_class_known(const char *state_class)
{
    return state_class && names_have(state_classes, COUNT(state_classes), state_class);
}

bool ha_state_class_ok(const char *device_class, const char *state_class, const char **expected)
{
    int i;

    if (!state_class)
        return true;
    pthread_once(&human_once, human_init);
    if (!ha_state_class_known(state_class)) {
        if (expected)
            *expected = all_states_human;
        return false;
    }
    if (!device_class)
        return true;
    i = sensor_class_index(device_class);
    if (i < 0 || list_has(sensor_classes[i].state_classes, state_class))
        return true;
    if (expected)
        *expected = sensor_states_human[i];
    return false;
}

bool ha_entity_category_ok(const char *component, const char *category)
{
    if (!category)
        return true;
    if (strcmp(category, "diagnostic") == 0)
        return true;
    if (strcmp(category, "config") == 0)
        return component && strcmp(component, "sensor") != 0 &&
               strcmp(component, "binary_sensor") != 0;
    return false;
}

const char *ha_energy_inputs(const char *device_class, const char *unit, const char *state_class)
{
    if (!device_class || !unit || !state_class)
        return NULL;
    for (size_t i = 0; i < COUNT(energy_inputs); i++) {
        const struct energy_input *e = &energy_inputs[i];

        if (strcmp(e->device_class, device_class) == 0 && list_has(e->units, unit) &&
            list_has(e->state_classes, state_class))
            return e->description;
    }
    return NULL;
}
