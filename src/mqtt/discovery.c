// SPDX-License-Identifier: MIT
// Home Assistant discovery payloads (see discovery.h for the topic layout).
#include "mqtt/discovery.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/model.h"

#define SUPPORT_URL "https://github.com/energy2mqtt/energy2mqtt"

void discovery_sanitize(const char *in, char *out, size_t out_size)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < out_size; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') ? c : '_';
    }
    out[n] = '\0';
}

void discovery_node_id(const struct mqtt_config *m, const char *device_id, char *out,
                       size_t out_size)
{
    char raw[300];
    snprintf(raw, sizeof(raw), "%s_%s", m->base_topic, device_id);
    discovery_sanitize(raw, out, out_size);
}

static json_t *number(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *origin(const char *version)
{
    return json_pack("{s:s,s:s,s:s}", "name", "energy2mqtt", "sw", version, "url", SUPPORT_URL);
}

static json_t *availability(const struct mqtt_config *m, const char *device_id)
{
    char t[512];
    json_t *a = json_array();
    snprintf(t, sizeof(t), "%s/bridge/availability", m->base_topic);
    json_array_append_new(a, json_pack("{s:s}", "t", t));
    if (device_id) {
        snprintf(t, sizeof(t), "%s/%s/availability", m->base_topic, device_id);
        json_array_append_new(a, json_pack("{s:s}", "t", t));
    }
    return a;
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

// Keys shared by every entity of a device: device-mode puts them on the root once, entity
// mode copies them into each payload.
static json_t *shared_keys(const struct mqtt_config *m, const char *device_id, json_t *dev,
                           const char *version)
{
    char t[512];
    snprintf(t, sizeof(t), "%s/%s/state", m->base_topic, device_id);
    json_t *o = json_object();
    json_object_set_new(o, "dev", dev);
    json_object_set_new(o, "o", origin(version));
    json_object_set_new(o, "avty", availability(m, strcmp(device_id, "bridge") ? device_id : NULL));
    json_object_set_new(o, "avty_mode", json_string("all"));
    json_object_set_new(o, "stat_t", json_string(t));
    return o;
}

struct comp_ctx {
    const struct mqtt_config *m;
    const char *device_id;
    const char *node;
};

static json_t *component_base(const struct comp_ctx *c, const char *platform, const char *id,
                              const char *name, bool has_state)
{
    char buf[600], dev_safe[128];
    json_t *o = json_object();
    json_object_set_new(o, "p", json_string(platform));
    snprintf(buf, sizeof(buf), "%s_%s", c->node, id);
    json_object_set_new(o, "uniq_id", json_string(buf));
    // Entity ids are [a-z0-9_]: no dashes.
    discovery_sanitize(c->device_id, dev_safe, sizeof(dev_safe));
    for (char *p = dev_safe; *p; p++)
        if (*p == '-')
            *p = '_';
    snprintf(buf, sizeof(buf), "%s.%s_%s", platform, dev_safe, id);
    json_object_set_new(o, "def_ent_id", json_string(buf));
    set_str(o, "name", name);
    if (has_state) {
        snprintf(buf, sizeof(buf), "{{ value_json.%s }}", id);
        json_object_set_new(o, "val_tpl", json_string(buf));
    }
    return o;
}

static void command_topic(const struct comp_ctx *c, json_t *o, const char *id)
{
    char t[600];
    snprintf(t, sizeof(t), "%s/%s/%s/set", c->m->base_topic, c->device_id, id);
    json_object_set_new(o, "cmd_t", json_string(t));
}

static json_t *labels(const struct entity *e)
{
    json_t *a = json_array();
    for (size_t i = 0; i < e->n_map; i++)
        json_array_append_new(a, json_string(e->map[i].label));
    return a;
}

bool discovery_assumable(const struct entity *e)
{
    return e->source == SRC_FIELD && !e->internal &&
           (e->component == COMP_NUMBER || e->component == COMP_SELECT ||
            e->component == COMP_SWITCH || e->component == COMP_TEXT);
}

bool discovery_has_assumable(const struct model *m)
{
    for (size_t i = 0; i < m->n_entities; i++)
        if (discovery_assumable(&m->entities[i]))
            return true;
    return false;
}

static json_t *entity_component(const struct comp_ctx *c, const struct entity *e)
{
    const char *platform = component_name(e->component);
    json_t *o = component_base(c, platform, e->id, e->name, e->component != COMP_BUTTON);
    set_str(o, "ic", e->icon);
    set_str(o, "ent_cat", e->category);
    if (!e->enabled_by_default)
        json_object_set_new(o, "en", json_false());
    switch (e->component) {
    case COMP_SENSOR:
        set_str(o, "dev_cla", e->device_class);
        set_str(o, "unit_of_meas", e->unit);
        set_str(o, "stat_cla", e->state_class);
        if (e->precision >= 0 && !e->text && !e->map)
            json_object_set_new(o, "sug_dsp_prc", json_integer(e->precision));
        if (e->map && !e->n_bits)
            json_object_set_new(o, "ops", labels(e));
        break;
    case COMP_BINARY_SENSOR:
        set_str(o, "dev_cla", e->device_class);
        json_object_set_new(o, "pl_on", json_string("ON"));
        json_object_set_new(o, "pl_off", json_string("OFF"));
        break;
    case COMP_NUMBER:
        command_topic(c, o, e->id);
        set_str(o, "dev_cla", e->device_class);
        set_str(o, "unit_of_meas", e->unit);
        json_object_set_new(o, "min", number(e->min));
        json_object_set_new(o, "max", number(e->max));
        json_object_set_new(o, "step", number(e->step));
        set_str(o, "mode", e->mode);
        break;
    case COMP_SELECT:
        command_topic(c, o, e->id);
        json_object_set_new(o, "ops", labels(e));
        break;
    case COMP_SWITCH:
        command_topic(c, o, e->id);
        set_str(o, "dev_cla", e->device_class);
        json_object_set_new(o, "pl_on", json_string("ON"));
        json_object_set_new(o, "pl_off", json_string("OFF"));
        break;
    case COMP_BUTTON:
        command_topic(c, o, e->id);
        set_str(o, "dev_cla", e->device_class);
        json_object_set_new(o, "pl_prs", json_string("PRESS"));
        break;
    case COMP_TEXT:
        command_topic(c, o, e->id);
        set_str(o, "ptrn", e->pattern);
        break;
    }
    if (discovery_assumable(e)) {
        char t[600], tpl[300];
        snprintf(t, sizeof(t), "%s/%s/state", c->m->base_topic, c->device_id);
        json_object_set_new(o, "json_attr_t", json_string(t));
        snprintf(tpl, sizeof(tpl),
                 "{{ {'source': 'last command' if '%s' in (value_json.assumed | default([])) "
                 "else 'device'} | tojson }}",
                 e->id);
        json_object_set_new(o, "json_attr_tpl", json_string(tpl));
    }
    return o;
}

// Diagnostics every device gets. They only depend on the bridge being online, so they keep
// telling the truth (offline, sleeping) while the device's own entities are unavailable.
static void diagnostics(const struct comp_ctx *c, void (*add)(void *, const char *, json_t *),
                        void *arg)
{
    json_t *o = component_base(c, "sensor", DIAG_LINK_STATUS, "Link status", true);
    json_object_set_new(o, "dev_cla", json_string("enum"));
    json_object_set_new(o, "ops",
                        json_pack("[s,s,s,s]", "starting", "online", "offline", "sleeping"));
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    json_object_set_new(o, "ic", json_string("mdi:lan-connect"));
    json_object_set_new(o, "avty", availability(c->m, NULL));
    add(arg, DIAG_LINK_STATUS, o);

    o = component_base(c, "sensor", DIAG_LAST_SEEN, "Last seen", true);
    json_object_set_new(o, "dev_cla", json_string("timestamp"));
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    json_object_set_new(o, "avty", availability(c->m, NULL));
    add(arg, DIAG_LAST_SEEN, o);

    o = component_base(c, "sensor", DIAG_POLL_ERRORS, "Poll errors", true);
    json_object_set_new(o, "stat_cla", json_string("total_increasing"));
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    json_object_set_new(o, "ic", json_string("mdi:alert-circle-outline"));
    json_object_set_new(o, "en", json_false());
    json_object_set_new(o, "avty", availability(c->m, NULL));
    add(arg, DIAG_POLL_ERRORS, o);
}

struct collect {
    const struct mqtt_config *m;
    const struct comp_ctx *c;
    json_t *shared; // device mode: the root payload; entity mode: a template
    json_t *cmps;   // device mode
    disc_emit_fn emit;
    void *arg;
};

static void add_component(void *p, const char *id, json_t *comp)
{
    struct collect *k = p;
    if (k->m->discovery == DISCOVERY_DEVICE) {
        json_object_set_new(k->cmps, id, comp);
        return;
    }
    // Entity mode: platform becomes the topic's component; shared keys are merged in unless
    // the component overrides them (the diagnostics' own availability).
    char topic[800], platform[32];
    snprintf(platform, sizeof(platform), "%s", json_string_value(json_object_get(comp, "p")));
    snprintf(topic, sizeof(topic), "%s/%s/%s/%s/config", k->m->discovery_prefix, platform,
             k->c->node, id);
    json_object_del(comp, "p"); // the topic names the platform in entity mode
    const char *key;
    json_t *v;
    json_object_foreach(k->shared, key, v)
    {
        if (strcmp(key, "stat_t") == 0 && strcmp(platform, "button") == 0)
            continue; // buttons have no state
        if (!json_object_get(comp, key))
            json_object_set(comp, key, v);
    }
    k->emit(k->arg, topic, comp);
    json_decref(comp);
}

static json_t *device_block(const struct mqtt_config *m, const char *node, const char *name,
                            const char *manufacturer, const char *model, const char *model_id,
                            const struct disc_device_info *info, const char *version)
{
    char via[300];
    json_t *d = json_object();
    json_object_set_new(d, "ids", json_pack("[s]", node));
    set_str(d, "name", name);
    set_str(d, "mf", manufacturer);
    set_str(d, "mdl", model);
    set_str(d, "mdl_id", model_id);
    if (info) {
        set_str(d, "sn", info->serial);
        set_str(d, "sw", info->sw_version);
    }
    if (model_id) {
        discovery_node_id(m, "bridge", via, sizeof(via));
        json_object_set_new(d, "via_device", json_string(via));
    } else {
        set_str(d, "sw", version);
    }
    return d;
}

static void finish(struct collect *k, const char *topic_node)
{
    if (k->m->discovery == DISCOVERY_DEVICE) {
        char topic[600];
        snprintf(topic, sizeof(topic), "%s/device/%s/config", k->m->discovery_prefix, topic_node);
        json_object_set_new(k->shared, "cmps", k->cmps);
        k->emit(k->arg, topic, k->shared);
    }
    json_decref(k->shared);
}

void discovery_device(const struct mqtt_config *m, const char *version,
                      const struct device_config *dev, const struct disc_device_info *info,
                      disc_emit_fn emit, void *arg)
{
    char node[300];
    discovery_node_id(m, dev->id, node, sizeof(node));
    const struct model *mod = dev->model;
    json_t *block =
        device_block(m, node, dev->name, mod->manufacturer, mod->name, mod->key, info, version);
    struct comp_ctx c = {m, dev->id, node};
    struct collect k = {m, &c, shared_keys(m, dev->id, block, version), json_object(), emit, arg};
    for (size_t i = 0; i < mod->n_entities; i++) {
        const struct entity *e = &mod->entities[i];
        if (e->internal || dev->disabled[i])
            continue;
        add_component(&k, e->id, entity_component(&c, e));
    }
    diagnostics(&c, add_component, &k);
    if (m->discovery != DISCOVERY_DEVICE)
        json_decref(k.cmps);
    finish(&k, node);
}

void discovery_bridge(const struct mqtt_config *m, const char *version, disc_emit_fn emit,
                      void *arg)
{
    char node[300], name[300];
    discovery_node_id(m, "bridge", node, sizeof(node));
    if (strcmp(m->base_topic, "energy2mqtt") == 0)
        snprintf(name, sizeof(name), "energy2mqtt");
    else
        snprintf(name, sizeof(name), "energy2mqtt (%s)", m->base_topic);
    json_t *block = device_block(m, node, name, "energy2mqtt", "Bridge", NULL, NULL, version);
    struct comp_ctx c = {m, "bridge", node};
    struct collect k = {m, &c, shared_keys(m, "bridge", block, version), json_object(), emit, arg};

    json_t *o = component_base(&c, "sensor", "version", "Version", true);
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    json_object_set_new(o, "ic", json_string("mdi:information-outline"));
    add_component(&k, "version", o);

    o = component_base(&c, "sensor", "uptime", "Uptime", true);
    json_object_set_new(o, "dev_cla", json_string("duration"));
    json_object_set_new(o, "unit_of_meas", json_string("s"));
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    add_component(&k, "uptime", o);

    o = component_base(&c, "sensor", "memory", "Memory", true);
    json_object_set_new(o, "dev_cla", json_string("data_size"));
    json_object_set_new(o, "unit_of_meas", json_string("MiB"));
    json_object_set_new(o, "stat_cla", json_string("measurement"));
    json_object_set_new(o, "sug_dsp_prc", json_integer(1));
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    add_component(&k, "memory", o);

    o = component_base(&c, "sensor", "devices_online", "Devices online", true);
    json_object_set_new(o, "stat_cla", json_string("measurement"));
    json_object_set_new(o, "ic", json_string("mdi:devices"));
    json_object_set_new(o, "ent_cat", json_string("diagnostic"));
    add_component(&k, "devices_online", o);

    o = component_base(&c, "button", "republish", "Republish discovery", false);
    command_topic(&c, o, "republish");
    json_object_set_new(o, "pl_prs", json_string("PRESS"));
    json_object_set_new(o, "ent_cat", json_string("config"));
    json_object_set_new(o, "ic", json_string("mdi:refresh"));
    add_component(&k, "republish", o);

    if (m->discovery != DISCOVERY_DEVICE)
        json_decref(k.cmps);
    finish(&k, node);
}

void discovery_ours_marker(const struct mqtt_config *m, char *out, size_t n)
{
    snprintf(out, n, "\"t\":\"%s/bridge/availability\"", m->base_topic);
}
