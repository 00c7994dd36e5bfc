// SPDX-License-Identifier: MIT
// Unit tests for Home Assistant discovery payloads (mqtt/discovery): topics, ids,
// availability, per-platform keys, in device mode and entity mode, for the fixture config.
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/diag.h"
#include "core/model.h"
#include "mqtt/discovery.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define DATA_DIR E2M_SOURCE_DIR "/tests/unit/data"

static struct config *cfg;
static struct mqtt_config mq; // a copy the tests may change

// Collected discovery messages.
struct msg {
    char topic[256];
    json_t *payload; // NULL: a clear
};

static struct msg msgs[64];
static size_t n_msgs;

static void emit(void *arg, const char *topic, json_t *payload)
{
    ck_assert_uint_lt(n_msgs, N(msgs));
    snprintf(msgs[n_msgs].topic, sizeof(msgs[n_msgs].topic), "%s", topic);
    msgs[n_msgs].payload = json_incref(payload);
    n_msgs++;
}

static void clear_msgs(void)
{
    for (size_t i = 0; i < n_msgs; i++)
        json_decref(msgs[i].payload);
    n_msgs = 0;
}

static void setup(void)
{
    setenv("E2M_TEST_ENTITIES", DATA_DIR "/entities", 1);
    unsetenv("E2M_ENTITIES_DIR");
    unsetenv("E2M_TEST_PASSWORD"); // full.yaml falls back to its ${...:-default}
    struct diag d;
    diag_init(&d);
    int rc = config_load(DATA_DIR "/config/full.yaml", &cfg, &d);
    if (rc)
        diag_print(&d, stderr);
    ck_assert_int_eq(rc, 0);
    diag_free(&d);
    mq = cfg->mqtt;
    n_msgs = 0;
}

static void teardown(void)
{
    clear_msgs();
    config_free(cfg);
}

static const struct device_config *meter(void)
{
    const struct device_config *d = config_find_device(cfg, "meter-1");
    ck_assert_ptr_nonnull(d);
    return d;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

// Ids of the fixture's entities that must be published for meter-1: everything but the
// internal raw_power and the disabled voltage; plus the built-in diagnostics.
static const char *const published[] = {
    "power", "energy", "status", "serial",    "net_power",   "limit",     "setpoint",    "mode",
    "relay", "reset",  "alarm",  "frequency", "link_status", "last_seen", "poll_errors",
};

static bool is_diag(const char *id)
{
    return strcmp(id, DIAG_LINK_STATUS) == 0 || strcmp(id, DIAG_LAST_SEEN) == 0 ||
           strcmp(id, DIAG_POLL_ERRORS) == 0;
}

static void assert_availability(const json_t *avty, const char *device_id)
{
    ck_assert(json_is_array(avty));
    ck_assert_uint_eq(json_array_size(avty), device_id ? 2 : 1);
    ck_assert_str_eq(str(json_array_get(avty, 0), "t"), "e2m-test/bridge/availability");
    if (device_id) {
        char t[128];
        snprintf(t, sizeof(t), "e2m-test/%s/availability", device_id);
        ck_assert_str_eq(str(json_array_get(avty, 1), "t"), t);
    }
}

// Checks one component. `platform` is known from "p" (device mode) or the topic (entity mode).
static void check_component(const char *id, const char *platform, const json_t *c,
                            const json_t *avty_default)
{
    const struct model *m = meter()->model;
    const struct entity *e = model_find(m, id);
    char want[256];

    snprintf(want, sizeof(want), "e2m-test_meter-1_%s", id);
    ck_assert_str_eq(str(c, "uniq_id"), want);
    snprintf(want, sizeof(want), "%s.meter_1_%s", platform, id);
    ck_assert_str_eq(str(c, "def_ent_id"), want);
    ck_assert_ptr_null(json_object_get(c, "object_id")); // retired
    ck_assert_ptr_null(json_object_get(c, "obj_id"));

    // Availability: the diagnostics follow the bridge only, everything else both.
    const json_t *avty = json_object_get(c, "avty");
    if (is_diag(id)) {
        ck_assert_str_eq(platform, "sensor");
        assert_availability(avty, NULL);
        ck_assert_str_eq(str(c, "ent_cat"), "diagnostic");
        snprintf(want, sizeof(want), "{{ value_json.%s }}", id);
        ck_assert_str_eq(str(c, "val_tpl"), want);
        ck_assert_ptr_null(json_object_get(c, "cmd_t"));
        return;
    }
    ck_assert_ptr_nonnull(e);
    ck_assert(!e->internal);
    ck_assert_str_eq(platform, component_name(e->component));
    if (avty)
        assert_availability(avty, "meter-1");
    else
        ck_assert_ptr_nonnull(avty_default);

    snprintf(want, sizeof(want), "{{ value_json.%s }}", id);
    if (e->component == COMP_BUTTON) {
        ck_assert_ptr_null(json_object_get(c, "val_tpl"));
        ck_assert_ptr_null(json_object_get(c, "stat_t"));
        ck_assert_str_eq(str(c, "pl_prs"), "PRESS");
    } else {
        ck_assert_str_eq(str(c, "val_tpl"), want);
    }
    snprintf(want, sizeof(want), "e2m-test/meter-1/%s/set", id);
    if (e->writable)
        ck_assert_str_eq(str(c, "cmd_t"), want);
    else
        ck_assert_ptr_null(json_object_get(c, "cmd_t"));

    if (e->enabled_by_default)
        ck_assert_ptr_null(json_object_get(c, "en"));
    else
        ck_assert(json_is_false(json_object_get(c, "en")));

    if (e->name)
        ck_assert_str_eq(str(c, "name"), e->name);
    if (e->icon)
        ck_assert_str_eq(str(c, "ic"), e->icon);
    if (e->category)
        ck_assert_str_eq(str(c, "ent_cat"), e->category);
    else
        ck_assert_ptr_null(json_object_get(c, "ent_cat"));

    // Options of enum sensors and selects, in map order.
    const json_t *ops = json_object_get(c, "ops");
    if (e->map) {
        ck_assert(json_is_array(ops));
        ck_assert_uint_eq(json_array_size(ops), e->n_map);
        for (size_t i = 0; i < e->n_map; i++)
            ck_assert_str_eq(json_string_value(json_array_get(ops, i)), e->map[i].label);
    } else {
        ck_assert_ptr_null(ops);
    }
    if (e->component == COMP_SENSOR) {
        if (e->device_class)
            ck_assert_str_eq(str(c, "dev_cla"), e->device_class);
        if (e->unit)
            ck_assert_str_eq(str(c, "unit_of_meas"), e->unit);
        if (e->state_class)
            ck_assert_str_eq(str(c, "stat_cla"), e->state_class);
    }
    if (e->component == COMP_SWITCH || e->component == COMP_BINARY_SENSOR) {
        ck_assert_str_eq(str(c, "pl_on"), "ON");
        ck_assert_str_eq(str(c, "pl_off"), "OFF");
    }
}

START_TEST(test_device_mode)
{
    mq.discovery = DISCOVERY_DEVICE;
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    ck_assert_uint_eq(n_msgs, 1);
    ck_assert_str_eq(msgs[0].topic, "homeassistant/device/e2m-test_meter-1/config");
    const json_t *root = msgs[0].payload;

    const json_t *dev = json_object_get(root, "dev");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(dev, "ids"), 0)),
                     "e2m-test_meter-1");
    ck_assert_str_eq(str(dev, "name"), "Main meter");
    ck_assert_str_eq(str(dev, "mf"), "Test Co");
    ck_assert_str_eq(str(dev, "mdl"), "Test meter");
    ck_assert_str_eq(str(dev, "mdl_id"), "test/meter");
    ck_assert_str_eq(str(dev, "via_device"), "e2m-test_bridge");
    const json_t *o = json_object_get(root, "o");
    ck_assert_str_eq(str(o, "name"), "energy2mqtt");
    ck_assert_str_eq(str(o, "sw"), "1.2.3");
    ck_assert_ptr_nonnull(str(o, "url"));
    assert_availability(json_object_get(root, "avty"), "meter-1");
    ck_assert_str_eq(str(root, "avty_mode"), "all");
    ck_assert_str_eq(str(root, "stat_t"), "e2m-test/meter-1/state");

    const json_t *cmps = json_object_get(root, "cmps");
    ck_assert(json_is_object(cmps));
    ck_assert_uint_eq(json_object_size(cmps), N(published));
    for (size_t i = 0; i < N(published); i++) {
        const json_t *c = json_object_get(cmps, published[i]);
        ck_assert_msg(c != NULL, "component %s missing", published[i]);
        const char *p = str(c, "p");
        ck_assert_ptr_nonnull(p);
        check_component(published[i], p, c, json_object_get(root, "avty"));
    }
    ck_assert_ptr_null(json_object_get(cmps, "voltage"));   // disabled by the device
    ck_assert_ptr_null(json_object_get(cmps, "raw_power")); // internal

    // unique_ids are unique.
    const char *key;
    json_t *c;
    json_object_foreach((json_t *)cmps, key, c)
    {
        const char *key2;
        json_t *c2;
        json_object_foreach((json_t *)cmps, key2, c2)
        {
            if (c != c2)
                ck_assert_str_ne(str(c, "uniq_id"), str(c2, "uniq_id"));
        }
    }

    // Numbers: whole bounds as integers, a fractional step as a real.
    const json_t *limit = json_object_get(cmps, "limit");
    ck_assert(json_is_integer(json_object_get(limit, "min")));
    ck_assert(json_is_integer(json_object_get(limit, "max")));
    ck_assert(json_is_integer(json_object_get(limit, "step")));
    ck_assert_int_eq(json_integer_value(json_object_get(limit, "max")), 100);
    ck_assert_str_eq(str(limit, "mode"), "box");
    ck_assert_str_eq(str(limit, "unit_of_meas"), "%");
    const json_t *sp = json_object_get(cmps, "setpoint");
    ck_assert(json_is_integer(json_object_get(sp, "min")));
    ck_assert_int_eq(json_integer_value(json_object_get(sp, "min")), -50);
    ck_assert(json_is_real(json_object_get(sp, "step")));
    ck_assert_double_eq(json_real_value(json_object_get(sp, "step")), 0.5);
    ck_assert_str_eq(str(sp, "mode"), "slider");
    ck_assert_str_eq(str(sp, "dev_cla"), "temperature");

    // The enum sensor and the diagnostics' enum.
    ck_assert_str_eq(str(json_object_get(cmps, "status"), "dev_cla"), "enum");
    const json_t *ls = json_object_get(cmps, DIAG_LINK_STATUS);
    ck_assert_str_eq(str(ls, "dev_cla"), "enum");
    ck_assert_uint_eq(json_array_size(json_object_get(ls, "ops")), 4);
    ck_assert(json_is_false(json_object_get(json_object_get(cmps, DIAG_POLL_ERRORS), "en")));
    ck_assert_str_eq(str(json_object_get(cmps, DIAG_LAST_SEEN), "dev_cla"), "timestamp");
}
END_TEST

START_TEST(test_entity_mode)
{
    mq.discovery = DISCOVERY_ENTITY;
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    ck_assert_uint_eq(n_msgs, N(published));
    for (size_t i = 0; i < n_msgs; i++) {
        // homeassistant/<platform>/e2m-test_meter-1/<id>/config
        char platform[32], id[64];
        int n = 0;
        ck_assert_msg(sscanf(msgs[i].topic, "homeassistant/%31[a-z_]/e2m-test_meter-1/%63[a-z_]%n",
                             platform, id, &n) == 2,
                      "topic %s", msgs[i].topic);
        ck_assert_str_eq(msgs[i].topic + n, "/config");
        const json_t *c = msgs[i].payload;
        ck_assert_ptr_null(json_object_get(c, "p")); // the topic names the platform
        ck_assert_ptr_nonnull(json_object_get(c, "dev"));
        ck_assert_ptr_nonnull(json_object_get(c, "o"));
        ck_assert_ptr_nonnull(json_object_get(c, "avty"));
        ck_assert_str_eq(str(c, "avty_mode"), "all");
        ck_assert_str_eq(str(json_object_get(c, "dev"), "via_device"), "e2m-test_bridge");
        if (strcmp(platform, "button") == 0)
            ck_assert_ptr_null(json_object_get(c, "stat_t"));
        else
            ck_assert_str_eq(str(c, "stat_t"), "e2m-test/meter-1/state");
        check_component(id, platform, c, NULL);
        // Every published id once.
        bool known = false;
        for (size_t k = 0; k < N(published); k++)
            known |= strcmp(published[k], id) == 0;
        ck_assert_msg(known, "unexpected %s", id);
        for (size_t k = 0; k < i; k++)
            ck_assert_str_ne(msgs[k].topic, msgs[i].topic);
    }
}
END_TEST

// Both modes give each entity the same unique_id, and a second run gives identical payloads.
START_TEST(test_ids_stable)
{
    mq.discovery = DISCOVERY_DEVICE;
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    ck_assert_uint_eq(n_msgs, 2);
    char *a = json_dumps(msgs[0].payload, JSON_SORT_KEYS);
    char *b = json_dumps(msgs[1].payload, JSON_SORT_KEYS);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    const json_t *cmps = json_object_get(msgs[0].payload, "cmps");

    mq.discovery = DISCOVERY_ENTITY;
    size_t first = n_msgs;
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    ck_assert_uint_eq(n_msgs - first, json_object_size(cmps));
    for (size_t i = first; i < n_msgs; i++) {
        const char *uid = str(msgs[i].payload, "uniq_id");
        bool found = false;
        const char *key;
        json_t *c;
        json_object_foreach((json_t *)cmps, key, c)
        {
            if (strcmp(str(c, "uniq_id"), uid) == 0) {
                found = true;
                ck_assert_str_eq(str(c, "def_ent_id"), str(msgs[i].payload, "def_ent_id"));
            }
        }
        ck_assert_msg(found, "%s only in entity mode", uid);
    }
}
END_TEST

START_TEST(test_device_info)
{
    struct disc_device_info info = {.serial = "SN123", .sw_version = "fw 4.2"};
    discovery_device(&mq, "1.2.3", meter(), &info, emit, NULL);
    const json_t *dev = json_object_get(msgs[0].payload, "dev");
    ck_assert_str_eq(str(dev, "sn"), "SN123");
    ck_assert_str_eq(str(dev, "sw"), "fw 4.2");
}
END_TEST

// Whether a payload, published as the daemon does (compact), is recognised as ours.
static bool ours(const struct mqtt_config *m, const json_t *payload)
{
    char *text = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    char marker[300];
    discovery_ours_marker(m, marker, sizeof(marker));
    bool r = strstr(text, marker) != NULL;
    free(text);
    return r;
}

START_TEST(test_is_ours)
{
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    ck_assert(ours(&mq, msgs[0].payload));
    mq.discovery = DISCOVERY_ENTITY;
    size_t first = n_msgs;
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    for (size_t i = first; i < n_msgs; i++)
        ck_assert_msg(ours(&mq, msgs[i].payload), "%s", msgs[i].topic);

    // Another instance's payload (another base topic) is not ours, and neither is junk.
    struct mqtt_config other = mq;
    other.base_topic = "e2m-test2";
    ck_assert(!ours(&other, msgs[0].payload));
    other.base_topic = "e2m";
    ck_assert(!ours(&other, msgs[0].payload));
    json_t *junk[] = {
        json_object(),
        json_pack("{s:s}", "avty", "e2m-test/bridge/availability"),
        json_pack("{s:[s]}", "avty", "e2m-test/bridge/availability"),
        json_pack("{s:[{s:s}]}", "avty", "t", "e2m-test/meter-1/availability"),
        json_pack("{s:[{s:i}]}", "avty", "t", 5),
        json_array(),
    };
    for (size_t i = 0; i < N(junk); i++) {
        ck_assert_msg(!ours(&mq, junk[i]), "junk %zu", i);
        json_decref(junk[i]);
    }
    json_t *ok = json_pack("{s:[{s:s}]}", "avty", "t", "e2m-test/bridge/availability");
    ck_assert(ours(&mq, ok));
    json_decref(ok);
}
END_TEST

START_TEST(test_base_topic_separates_instances)
{
    discovery_device(&mq, "1.2.3", meter(), NULL, emit, NULL);
    struct mqtt_config other = mq;
    other.base_topic = "energy2mqtt";
    discovery_device(&other, "1.2.3", meter(), NULL, emit, NULL);
    ck_assert_uint_eq(n_msgs, 2);
    ck_assert_str_ne(msgs[0].topic, msgs[1].topic);
    ck_assert_str_eq(msgs[1].topic, "homeassistant/device/energy2mqtt_meter-1/config");
    const json_t *a = json_object_get(msgs[0].payload, "cmps");
    const json_t *b = json_object_get(msgs[1].payload, "cmps");
    const char *key;
    json_t *c;
    json_object_foreach((json_t *)a, key, c)
    {
        const char *key2;
        json_t *c2;
        json_object_foreach((json_t *)b, key2, c2)
            ck_assert_str_ne(str(c, "uniq_id"), str(c2, "uniq_id"));
    }
    ck_assert_str_eq(str(json_object_get(b, "limit"), "cmd_t"), "energy2mqtt/meter-1/limit/set");
    ck_assert_str_ne(str(json_object_get(msgs[0].payload, "dev"), "via_device"),
                     str(json_object_get(msgs[1].payload, "dev"), "via_device"));
}
END_TEST

START_TEST(test_bridge)
{
    discovery_bridge(&mq, "1.2.3", emit, NULL);
    ck_assert_uint_eq(n_msgs, 1);
    ck_assert_str_eq(msgs[0].topic, "homeassistant/device/e2m-test_bridge/config");
    const json_t *root = msgs[0].payload;
    const json_t *dev = json_object_get(root, "dev");
    ck_assert_str_eq(str(dev, "name"), "energy2mqtt (e2m-test)");
    ck_assert_str_eq(str(dev, "sw"), "1.2.3");
    ck_assert_ptr_null(json_object_get(dev, "via_device"));
    assert_availability(json_object_get(root, "avty"), NULL);
    ck_assert_str_eq(str(root, "stat_t"), "e2m-test/bridge/state");
    const json_t *cmps = json_object_get(root, "cmps");
    static const char *const ids[] = {"version", "uptime", "memory", "devices_online", "republish"};
    ck_assert_uint_eq(json_object_size(cmps), N(ids));
    for (size_t i = 0; i < N(ids); i++) {
        const json_t *c = json_object_get(cmps, ids[i]);
        ck_assert_msg(c != NULL, "%s missing", ids[i]);
        char want[64];
        snprintf(want, sizeof(want), "e2m-test_bridge_%s", ids[i]);
        ck_assert_str_eq(str(c, "uniq_id"), want);
        snprintf(want, sizeof(want), "%s.bridge_%s", str(c, "p"), ids[i]);
        ck_assert_str_eq(str(c, "def_ent_id"), want);
    }
    const json_t *rep = json_object_get(cmps, "republish");
    ck_assert_str_eq(str(rep, "p"), "button");
    ck_assert_str_eq(str(rep, "cmd_t"), "e2m-test/bridge/republish/set");
    ck_assert_ptr_null(json_object_get(rep, "val_tpl"));
    ck_assert(ours(&mq, root));

    clear_msgs();
    mq.base_topic = "energy2mqtt";
    mq.discovery = DISCOVERY_ENTITY;
    discovery_bridge(&mq, "1.2.3", emit, NULL);
    ck_assert_uint_eq(n_msgs, N(ids));
    ck_assert_str_eq(str(json_object_get(msgs[0].payload, "dev"), "name"), "energy2mqtt");
    for (size_t i = 0; i < n_msgs; i++) {
        ck_assert_ptr_nonnull(strstr(msgs[i].topic, "/energy2mqtt_bridge/"));
        bool button = strncmp(msgs[i].topic, "homeassistant/button/", 21) == 0;
        ck_assert_int_eq(json_object_get(msgs[i].payload, "stat_t") == NULL, button);
    }
}
END_TEST

struct sanitize_case {
    const char *in;
    size_t size;
    const char *out;
};

static const struct sanitize_case sanitize_cases[] = {
    {"meter-1", 64, "meter-1"},
    {"Meter 1", 64, "meter_1"},
    {"a/b+c#d", 64, "a_b_c_d"},
    {"e2m.test", 64, "e2m_test"},
    {"\xC3\x84rger", 64, "__rger"}, // every byte of a multi-byte character
    {"ABCxyz09_-", 64, "abcxyz09_-"},
    {"abcdef", 4, "abc"},
    {"abcdef", 1, ""},
    {"", 8, ""},
};

// A text entity: the text platform with its command topic and pattern, in both modes.
START_TEST(test_text_entity)
{
    char dir[] = "/tmp/e2m-disctext-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/acme", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/acme/bat.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("model: bat\nmanufacturer: A\nname: B\ndriver: venus\nentities:\n"
          "  - {id: start, name: Start, component: text, field: slot1_start,\n"
          "     pattern: '^[0-9]{2}:[0-9]{2}$', category: config}\n",
          f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    f = fopen(path, "w");
    fprintf(f,
            "entities_dir: %s\ndevices:\n"
            "  - {id: b1, model: acme/bat, type: HMG-50, mac: aabbccddeeff}\n",
            dir);
    fclose(f);
    struct config *c = NULL;
    struct diag d;
    diag_init(&d);
    int rc = config_load(path, &c, &d);
    diag_print(&d, stderr);
    diag_free(&d);
    ck_assert_int_eq(rc, 0);
    struct mqtt_config m = c->mqtt;
    discovery_device(&m, "1.2.3", &c->devices[0], NULL, emit, NULL);
    ck_assert_uint_eq(n_msgs, 1);
    const json_t *t = json_object_get(json_object_get(msgs[0].payload, "cmps"), "start");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(str(t, "p"), "text");
    ck_assert_str_eq(str(t, "cmd_t"), "energy2mqtt/b1/start/set");
    ck_assert_str_eq(str(t, "ptrn"), "^[0-9]{2}:[0-9]{2}$");
    ck_assert_str_eq(str(t, "val_tpl"), "{{ value_json.start }}");
    ck_assert_str_eq(str(t, "ent_cat"), "config");
    ck_assert_ptr_nonnull(json_object_get(t, "json_attr_t")); // may show the last command
    clear_msgs();
    m.discovery = DISCOVERY_ENTITY;
    discovery_device(&m, "1.2.3", &c->devices[0], NULL, emit, NULL);
    bool found = false;
    for (size_t i = 0; i < n_msgs; i++)
        found |= strcmp(msgs[i].topic, "homeassistant/text/energy2mqtt_b1/start/config") == 0;
    ck_assert(found);
    config_free(c);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_sanitize)
{
    const struct sanitize_case *c = &sanitize_cases[_i];
    char out[64];
    memset(out, 'X', sizeof(out));
    discovery_sanitize(c->in, out, c->size);
    ck_assert_str_eq(out, c->out);
    ck_assert_uint_lt(strlen(out), c->size);
}
END_TEST

START_TEST(test_node_id)
{
    char out[128];
    discovery_node_id(&mq, "meter-1", out, sizeof(out));
    ck_assert_str_eq(out, "e2m-test_meter-1");
    struct mqtt_config m = mq;
    m.base_topic = "home/Energy";
    discovery_node_id(&m, "bridge", out, sizeof(out));
    ck_assert_str_eq(out, "home_energy_bridge");
}
END_TEST

static Suite *discovery_suite(void)
{
    Suite *s = suite_create("discovery");
    TCase *tc = tcase_create("payloads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_device_mode);
    tcase_add_test(tc, test_entity_mode);
    tcase_add_test(tc, test_ids_stable);
    tcase_add_test(tc, test_device_info);
    tcase_add_test(tc, test_is_ours);
    tcase_add_test(tc, test_base_topic_separates_instances);
    tcase_add_test(tc, test_bridge);
    tcase_add_loop_test(tc, test_sanitize, 0, N(sanitize_cases));
    tcase_add_test(tc, test_node_id);
    tcase_add_test(tc, test_text_entity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(discovery_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
