// SPDX-License-Identifier: MIT
// ha_validate: audits Home Assistant MQTT discovery messages offline against ha_rules.def.
//
// It reads "topic<TAB>payload" lines (a capture of the broker, or `energy2mqtt discovery`),
// replays what HA's discovery code does with each config message and applies the platform
// schemas from the rule tables, more strictly than HA where HA would silently drop or merely
// warn. It deliberately shares no code with energy2mqtt's discovery builder, which it audits;
// only the rule tables and their look-up functions (core/ha_rules.c) are common.
#include "core/ha_rules.h"
#include "core/mem.h"

#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Device payloads grow with every entity and must stay well under broker and client packet
// limits (1 MiB is a common client default), so we hold ourselves to 256 KiB. MQTT topics are
// limited to 65535 bytes by the protocol.
#define MAX_PAYLOAD (256 * 1024)
#define MAX_TOPIC   65535

enum key_type {
    KT_STR,
    KT_NSTR,
    KT_BOOL,
    KT_UINT,
    KT_POSINT,
    KT_QOS,
    KT_NUM,
    KT_STRLIST,
    KT_TPL,
    KT_TOPIC,
    KT_PUBTOPIC,
    KT_AVAIL,
    KT_DEVICE,
    KT_ORIGIN,
    KT_IDS,
    KT_CONNS,
    KT_URL,
    KT_CFGURL,
    KT_ICON,
    KT_ENTID,
    KT_EXPIRY,
    KT_COMPONENTS,
};

struct pair {
    const char *a;
    const char *b;
};

struct key_rule {
    const char *platform;
    const char *key;
    enum key_type type;
};

struct plain_key {
    const char *key;
    enum key_type type;
    int shared;
};

struct component {
    const char *name;
    int ours;
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct component components[] = {
#define HA_COMPONENT(n, o) {n, o},
#include "ha_rules.def"
};

static const struct pair abbrevs[] = {
#define HA_ABBREV(a, f) {a, f},
#include "ha_rules.def"
};

static const struct pair device_abbrevs[] = {
#define HA_DEVICE_ABBREV(a, f) {a, f},
#include "ha_rules.def"
};

static const struct pair origin_abbrevs[] = {
#define HA_ORIGIN_ABBREV(a, f) {a, f},
#include "ha_rules.def"
};

static const struct pair retired_keys[] = {
#define HA_RETIRED_KEY(k, why) {k, why},
#include "ha_rules.def"
};

static const struct key_rule platform_keys[] = {
#define HA_PLATFORM_KEY(p, k, t) {p, k, KT_##t},
#include "ha_rules.def"
};

static const struct pair required_keys[] = {
#define HA_PLATFORM_REQUIRED(p, k) {p, k},
#include "ha_rules.def"
};

static const struct plain_key device_keys[] = {
#define HA_DEVICE_KEY(k, t) {k, KT_##t, 0},
#include "ha_rules.def"
};

static const struct plain_key origin_keys[] = {
#define HA_ORIGIN_KEY(k, t) {k, KT_##t, 0},
#include "ha_rules.def"
};

static const struct plain_key availability_keys[] = {
#define HA_AVAILABILITY_KEY(k, t) {k, KT_##t, 0},
#include "ha_rules.def"
};

static const struct plain_key root_keys[] = {
#define HA_DEVICE_ROOT_KEY(k, t, s) {k, KT_##t, s},
#include "ha_rules.def"
};

static const char *const availability_modes[] = {
#define HA_AVAILABILITY_MODE(n) n,
#include "ha_rules.def"
};

static const char *const number_modes[] = {
#define HA_NUMBER_MODE(n) n,
#include "ha_rules.def"
};

struct options {
    const char *prefix;
    bool energy;
    bool require_published;
    bool verbose;
};

struct line {
    char *topic;
    char *payload;
    size_t len;
};

// Which entity owns a unique_id, so a second owner in the same platform is caught.
struct uid_entry {
    char *platform;
    char *uid;
    char *topic;
    char *cid;
};

struct problems {
    char **msg;
    size_t n;
    size_t cap;
};

struct state {
    struct options opt;
    char **published;
    size_t n_published;
    struct uid_entry *uids;
    size_t n_uids;
    size_t cap_uids;
    unsigned long passed;
    unsigned long failed;
    unsigned long removed;
    unsigned long energy_offered;
    unsigned long energy_sensors;
};

__attribute__((format(printf, 2, 3))) static void problem_add(struct problems *pr, const char *fmt,
                                                              ...)
{
    va_list ap;
    char *msg;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    msg = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (pr->n == pr->cap) {
        pr->cap = pr->cap ? 2 * pr->cap : 8;
        pr->msg = xrealloc(pr->msg, pr->cap * sizeof(*pr->msg));
    }
    pr->msg[pr->n++] = msg;
}

static void problems_free(struct problems *pr)
{
    for (size_t i = 0; i < pr->n; i++)
        free(pr->msg[i]);
    free(pr->msg);
    *pr = (struct problems){0};
}

static bool names_have(const char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static const char *pair_lookup(const struct pair *tab, size_t n, const char *a)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tab[i].a, a) == 0)
            return tab[i].b;
    return NULL;
}

static const struct plain_key *plain_lookup(const struct plain_key *tab, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tab[i].key, k) == 0)
            return &tab[i];
    return NULL;
}

static const struct key_rule *platform_key(const char *platform, const char *key)
{
    for (size_t i = 0; i < COUNT(platform_keys); i++) {
        const struct key_rule *r = &platform_keys[i];

        if ((strcmp(r->platform, "*") == 0 || strcmp(r->platform, platform) == 0) &&
            strcmp(r->key, key) == 0)
            return r;
    }
    return NULL;
}

// Whether HA knows `key` anywhere (another platform, the device or origin block), which turns
// "unknown key" into the more useful "not valid for this platform".
static bool key_known_elsewhere(const char *key)
{
    for (size_t i = 0; i < COUNT(abbrevs); i++)
        if (strcmp(abbrevs[i].b, key) == 0)
            return true;
    for (size_t i = 0; i < COUNT(platform_keys); i++)
        if (strcmp(platform_keys[i].key, key) == 0)
            return true;
    return plain_lookup(device_keys, COUNT(device_keys), key) ||
           plain_lookup(origin_keys, COUNT(origin_keys), key);
}

static void unknown_key(struct problems *pr, const char *where, const char *key)
{
    const char *why = pair_lookup(retired_keys, COUNT(retired_keys), key);

    if (why)
        problem_add(pr, "'%s' in %s is no longer understood by HA: %s", key, where, why);
    else if (key_known_elsewhere(key))
        problem_add(pr, "key '%s' is not valid in %s", key, where);
    else
        problem_add(pr, "unknown key or abbreviation '%s' in %s", key, where);
}

static bool is_ha_component(const char *name)
{
    for (size_t i = 0; i < COUNT(components); i++)
        if (strcmp(components[i].name, name) == 0)
            return true;
    return false;
}

static const char *str_of(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

// HA's component part of a discovery topic: one or more word characters.
static bool word_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

// Node ids, object ids and component ids: one or more of [a-zA-Z0-9_-].
static bool id_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        size_t need;
        unsigned cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + need >= len)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

// Returns why `t` is not a valid MQTT topic (publish) or topic filter (subscribe), or NULL.
static const char *topic_problem(const char *t, bool publish)
{
    size_t n = strlen(t);

    if (n == 0)
        return "it is empty";
    if (n > MAX_TOPIC)
        return "it is 64 KiB or longer";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];

        if (c < 0x20 || c == 0x7f ||
            (c == 0xc2 && i + 1 < n && (unsigned char)t[i + 1] >= 0x80 &&
             (unsigned char)t[i + 1] <= 0x9f))
            return "it contains a control character";
        if (publish && (c == '+' || c == '#'))
            return "a publish topic cannot contain the wildcards + or #";
        if (c == '#' && (i + 1 != n || (i > 0 && t[i - 1] != '/')))
            return "'#' may only be the whole last level";
        if (c == '+' && ((i > 0 && t[i - 1] != '/') || (i + 1 < n && t[i + 1] != '/')))
            return "'+' must be a whole level";
    }
    return NULL;
}

static bool url_http(const char *s)
{
    return (strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]);
}

// HA's entity id shape: lowercase words joined by single underscores on both sides of the dot.
static bool entity_object_valid(const char *s)
{
    if (!*s || *s == '_' || s[strlen(s) - 1] == '_' || strstr(s, "__"))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static void check_value(struct problems *pr, const char *platform, const char *key, json_t *v,
                        enum key_type t);

static void check_block(struct problems *pr, const char *what, json_t *obj,
                        const struct plain_key *keys, size_t n_keys)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        const struct plain_key *k = plain_lookup(keys, n_keys, key);

        if (!k) {
            unknown_key(pr, what, key);
            continue;
        }
        check_value(pr, NULL, key, v, k->type);
    }
}

static void check_device(struct problems *pr, json_t *dev)
{
    json_t *ids = json_object_get(dev, "identifiers");
    json_t *cns = json_object_get(dev, "connections");
    bool has_ids = (json_is_string(ids) && json_string_length(ids) > 0) ||
                   (json_is_array(ids) && json_array_size(ids) > 0);
    bool has_cns = json_is_array(cns) && json_array_size(cns) > 0;

    check_block(pr, "device", dev, device_keys, COUNT(device_keys));
    if (!has_ids && !has_cns)
        problem_add(pr, "device needs identifiers (ids) or connections (cns)");
}

static void check_origin(struct problems *pr, json_t *o)
{
    check_block(pr, "origin", o, origin_keys, COUNT(origin_keys));
    if (!json_is_string(json_object_get(o, "name")))
        problem_add(pr, "origin needs a name");
}

static void check_availability(struct problems *pr, json_t *list)
{
    size_t i;
    json_t *item;

    if (json_array_size(list) == 0) {
        problem_add(pr, "availability must be a non-empty list");
        return;
    }
    json_array_foreach(list, i, item)
    {
        if (!json_is_object(item)) {
            problem_add(pr, "availability item %zu must be an object", i);
            continue;
        }
        check_block(pr, "an availability item", item, availability_keys, COUNT(availability_keys));
        if (!json_object_get(item, "topic"))
            problem_add(pr, "availability item %zu needs a topic (t)", i);
    }
}

static void check_expiry(struct problems *pr, const char *key, json_t *v)
{
    static const char *const units[] = {"days", "hours", "minutes", "seconds", "milliseconds"};
    const char *k;
    json_t *x;

    if (json_is_number(v)) {
        if (json_number_value(v) < 0)
            problem_add(pr, "%s must not be negative", key);
        return;
    }
    if (!json_is_object(v)) {
        problem_add(pr, "%s must be a number of seconds or a time period mapping", key);
        return;
    }
    json_object_foreach(v, k, x)
    {
        if (!names_have(units, COUNT(units), k) || !json_is_number(x))
            problem_add(pr, "%s: '%s' is not a numeric days/hours/minutes/seconds/milliseconds",
                        key, k);
    }
}

static bool string_list(json_t *v)
{
    size_t i;
    json_t *item;

    if (!json_is_array(v))
        return false;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item))
            return false;
    }
    return true;
}

static void check_value(struct problems *pr, const char *platform, const char *key, json_t *v,
                        enum key_type t)
{
    const char *s = json_string_value(v);
    const char *why;
    size_t i;
    json_t *item;

    switch (t) {
    case KT_STR:
    case KT_TPL:
        if (!s)
            problem_add(pr, "%s must be a string", key);
        break;
    case KT_NSTR:
        if (!s && !json_is_null(v))
            problem_add(pr, "%s must be a string or null", key);
        break;
    case KT_BOOL:
        if (!json_is_boolean(v))
            problem_add(pr, "%s must be a boolean", key);
        break;
    case KT_UINT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            problem_add(pr, "%s must be a non-negative integer", key);
        break;
    case KT_POSINT:
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            problem_add(pr, "%s must be a positive integer", key);
        break;
    case KT_QOS:
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2)
            problem_add(pr, "%s must be 0, 1 or 2", key);
        break;
    case KT_NUM:
        if (!json_is_number(v))
            problem_add(pr, "%s must be a number", key);
        break;
    case KT_STRLIST:
        if (!string_list(v))
            problem_add(pr, "%s must be a list of strings", key);
        break;
    case KT_TOPIC:
    case KT_PUBTOPIC:
        if (!s)
            problem_add(pr, "%s must be a string", key);
        else if ((why = topic_problem(s, t == KT_PUBTOPIC)))
            problem_add(pr, "%s '%s' is not a valid %s topic: %s", key, s,
                        t == KT_PUBTOPIC ? "publish" : "subscribe", why);
        break;
    case KT_AVAIL:
        if (!json_is_array(v))
            problem_add(pr, "%s must be a list", key);
        else
            check_availability(pr, v);
        break;
    case KT_DEVICE:
        if (!json_is_object(v))
            problem_add(pr, "%s must be an object", key);
        else
            check_device(pr, v);
        break;
    case KT_ORIGIN:
        if (!json_is_object(v))
            problem_add(pr, "%s must be an object", key);
        else
            check_origin(pr, v);
        break;
    case KT_IDS:
        if (!(s && *s) && !(string_list(v) && json_array_size(v) > 0))
            problem_add(pr, "%s must be a string or a non-empty list of strings", key);
        break;
    case KT_CONNS:
        if (!json_is_array(v)) {
            problem_add(pr, "%s must be a list of [type, value] pairs", key);
            break;
        }
        json_array_foreach(v, i, item)
        {
            if (!string_list(item) || json_array_size(item) != 2)
                problem_add(pr, "%s item %zu must be a [type, value] pair of strings", key, i);
        }
        break;
    case KT_URL:
        if (!s || !url_http(s))
            problem_add(pr, "%s must be an http(s) URL", key);
        break;
    case KT_CFGURL:
        if (!s || !(url_http(s) || (strncmp(s, "homeassistant://", 16) == 0 && s[16])))
            problem_add(pr, "%s must be an http(s) or homeassistant:// URL", key);
        break;
    case KT_ICON:
        if (!s || !strchr(s, ':') || *s == ':')
            problem_add(pr, "%s must look like 'prefix:name' (e.g. mdi:flash)", key);
        break;
    case KT_ENTID:
        if (!s) {
            problem_add(pr, "%s must be a string", key);
        } else {
            size_t pl = platform ? strlen(platform) : 0;

            if (!platform || strncmp(s, platform, pl) != 0 || s[pl] != '.')
                problem_add(pr, "%s '%s' must start with '%s.'", key, s,
                            platform ? platform : "<platform>");
            else if (!entity_object_valid(s + pl + 1))
                problem_add(pr, "%s '%s' is not a valid entity id", key, s);
        }
        break;
    case KT_EXPIRY: check_expiry(pr, key, v); break;
    case KT_COMPONENTS:
        if (!json_is_object(v))
            problem_add(pr, "%s must be an object", key);
        break;
    }
}

// Returns a copy of `in` with the keys of `tab` expanded, as HA does before validating.
static json_t *expand_object(json_t *in, const struct pair *tab, size_t n, struct problems *pr,
                             const char *where)
{
    json_t *out = json_object();
    const char *key;
    json_t *v;

    json_object_foreach(in, key, v)
    {
        const char *full = pair_lookup(tab, n, key);

        if (!full)
            full = key;
        if (json_object_get(out, full))
            problem_add(pr, "'%s' is given twice in %s (abbreviated and in full)", full, where);
        json_object_set(out, full, v);
    }
    return out;
}

// Expands an entity config or a device root: the top level with the main table, the device
// and origin blocks with theirs, and every availability item with the main table.
static json_t *expand_config(json_t *in, struct problems *pr, const char *where)
{
    json_t *out = expand_object(in, abbrevs, COUNT(abbrevs), pr, where);
    json_t *v;

    if ((v = json_object_get(out, "device")) && json_is_object(v))
        json_object_set_new(out, "device",
                            expand_object(v, device_abbrevs, COUNT(device_abbrevs), pr, "device"));
    if ((v = json_object_get(out, "origin")) && json_is_object(v))
        json_object_set_new(out, "origin",
                            expand_object(v, origin_abbrevs, COUNT(origin_abbrevs), pr, "origin"));
    if ((v = json_object_get(out, "availability")) && json_is_array(v)) {
        json_t *list = json_array();
        size_t i;
        json_t *item;

        json_array_foreach(v, i, item)
        {
            if (json_is_object(item))
                json_array_append_new(
                    list, expand_object(item, abbrevs, COUNT(abbrevs), pr, "an availability item"));
            else
                json_array_append(list, item);
        }
        json_object_set_new(out, "availability", list);
    }
    return out;
}

static char *with_base(const char *value, const char *base)
{
    size_t vl = strlen(value), bl = strlen(base);
    char *out = xmalloc(vl + bl);

    if (value[0] == '~') {
        memcpy(out, base, bl);
        memcpy(out + bl, value + 1, vl);
    } else {
        memcpy(out, value, vl - 1);
        memcpy(out + vl - 1, base, bl + 1);
    }
    return out;
}

static bool uses_base(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && (s[0] == '~' || s[n - 1] == '~');
}

// HA's base topic: "~" at the start or end of any "*topic" value (and of availability topics)
// is replaced by the value of the "~" key, which is then removed.
static void apply_base(json_t *obj, const char *base)
{
    const char *key;
    json_t *v;
    void *tmp;
    size_t i;
    json_t *item;

    json_object_foreach_safe(obj, tmp, key, v)
    {
        size_t kl = strlen(key);
        const char *s = json_string_value(v);

        if (s && kl >= 5 && strcmp(key + kl - 5, "topic") == 0 && uses_base(s)) {
            char *t = with_base(s, base);

            json_object_set_new(obj, key, json_string(t));
            free(t);
        }
    }
    json_array_foreach(json_object_get(obj, "availability"), i, item)
    {
        const char *s = str_of(item, "topic");

        if (s && uses_base(s)) {
            char *t = with_base(s, base);

            json_object_set_new(item, "topic", json_string(t));
            free(t);
        }
    }
}

static bool published(const struct state *st, const char *topic)
{
    size_t lo = 0, hi = st->n_published;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->published[mid], topic);

        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void check_published(const struct state *st, struct problems *pr, json_t *cfg)
{
    const char *s;
    size_t i;
    json_t *item;

    if ((s = str_of(cfg, "state_topic")) && !published(st, s))
        problem_add(pr, "state_topic '%s' is never published", s);
    if ((s = str_of(cfg, "availability_topic")) && !published(st, s))
        problem_add(pr, "availability topic '%s' is never published", s);
    json_array_foreach(json_object_get(cfg, "availability"), i, item)
    {
        if ((s = str_of(item, "topic")) && !published(st, s))
            problem_add(pr, "availability topic '%s' is never published", s);
    }
}

static double number_or(json_t *cfg, const char *key, double dflt)
{
    json_t *v = json_object_get(cfg, key);

    return json_is_number(v) ? json_number_value(v) : dflt;
}

static void check_sensor(struct problems *pr, json_t *cfg)
{
    const char *dc = str_of(cfg, "device_class");
    const char *sc = str_of(cfg, "state_class");
    const char *unit = str_of(cfg, "unit_of_measurement");
    json_t *options = json_object_get(cfg, "options");
    bool dc_known = dc && ha_device_class_ok("sensor", dc);
    bool sc_known = !sc || ha_state_class_known(sc);
    bool textual = dc && (!strcmp(dc, "enum") || !strcmp(dc, "timestamp") || !strcmp(dc, "date"));
    const char *expected = NULL;

    if (unit && !*unit)
        unit = NULL;
    if (!sc_known) {
        ha_state_class_ok(NULL, sc, &expected);
        problem_add(pr, "unknown state_class '%s' (expected %s)", sc, expected);
    }
    if (options) {
        if (!dc || strcmp(dc, "enum") != 0)
            problem_add(pr, "options is only allowed with device_class enum");
        if (json_is_array(options) && json_array_size(options) == 0)
            problem_add(pr, "options must not be empty");
    } else if (dc && !strcmp(dc, "enum")) {
        problem_add(pr, "device_class enum needs options");
    }
    if (textual) {
        if (unit)
            problem_add(pr, "device_class %s takes no unit_of_measurement (got '%s')", dc, unit);
        if (sc)
            problem_add(pr, "device_class %s takes no state_class (got '%s')", dc, sc);
    }
    if (dc_known && !textual) {
        if (!ha_unit_ok("sensor", dc, unit, &expected)) {
            if (unit)
                problem_add(pr,
                            "unit_of_measurement '%s' is not valid together with device class "
                            "'%s' (expected %s)",
                            unit, dc, expected);
            else
                problem_add(pr, "device class '%s' needs a unit_of_measurement (expected %s)", dc,
                            expected);
        }
        if (sc && sc_known && !ha_state_class_ok(dc, sc, &expected))
            problem_add(pr, "state_class '%s' is not valid for device class '%s' (expected %s)", sc,
                        dc, expected);
    }
    if (json_object_get(cfg, "last_reset_value_template") && (!sc || strcmp(sc, "total") != 0))
        problem_add(pr, "last_reset_value_template needs state_class total");
    if (sc && !strcmp(sc, "measurement_angle") && (!unit || strcmp(unit, "°") != 0))
        problem_add(pr, "state_class measurement_angle needs unit_of_measurement '°'");
}

static void check_number(struct problems *pr, json_t *cfg)
{
    const char *dc = str_of(cfg, "device_class");
    const char *unit = str_of(cfg, "unit_of_measurement");
    const char *mode = str_of(cfg, "mode");
    double min = number_or(cfg, "min", 1), max = number_or(cfg, "max", 100);
    double step = number_or(cfg, "step", 1);
    const char *expected = NULL;

    if (min >= max)
        problem_add(pr, "min (%g) must be less than max (%g)", min, max);
    if (step < 0.001)
        problem_add(pr, "step (%g) must be at least 0.001", step);
    if (mode && !names_have(number_modes, COUNT(number_modes), mode))
        problem_add(pr, "mode '%s' is not one of auto, box, slider", mode);
    if (dc && ha_device_class_ok("number", dc) && !ha_unit_ok("number", dc, unit, &expected)) {
        if (unit && *unit)
            problem_add(pr,
                        "unit_of_measurement '%s' is not valid together with device class '%s' "
                        "(expected %s)",
                        unit, dc, expected);
        else
            problem_add(pr, "device class '%s' needs a unit_of_measurement (expected %s)", dc,
                        expected);
    }
}

// HA's text platform: 0 <= min <= max <= 255 (its state length limit), mode text or password.
// A pattern must at least compile; POSIX ERE stands in for Python's re, which accepts more.
static void check_text(struct problems *pr, json_t *cfg)
{
    double min = number_or(cfg, "min", 0), max = number_or(cfg, "max", 255);
    const char *mode = str_of(cfg, "mode");
    const char *pattern = str_of(cfg, "pattern");

    if (min < 0)
        problem_add(pr, "min (%g) must not be negative", min);
    if (max > 255)
        problem_add(pr, "max (%g) must be at most 255 (the state length limit)", max);
    if (min > max)
        problem_add(pr, "min (%g) must not be greater than max (%g)", min, max);
    if (mode && strcmp(mode, "text") != 0 && strcmp(mode, "password") != 0)
        problem_add(pr, "mode '%s' is not one of text, password", mode);
    if (pattern) {
        regex_t re;

        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
            problem_add(pr, "pattern '%s' is not a valid regular expression", pattern);
        else
            regfree(&re);
    }
}

// Whether `key` was set by the component itself rather than inherited from the device root.
static bool own_key(json_t *inherited, const char *key)
{
    return !inherited || !json_object_get(inherited, key);
}

// Validates one entity config (already expanded, base topics applied). Keys listed in
// `inherited` came from a device payload's root and were checked there.
static void check_entity(const char *platform, json_t *cfg, json_t *inherited, bool in_device,
                         struct problems *pr)
{
    char where[64];
    const char *key;
    json_t *v;
    const char *s;

    snprintf(where, sizeof(where), "platform %s", platform);
    json_object_foreach(cfg, key, v)
    {
        const struct key_rule *r;

        if (inherited && json_object_get(inherited, key))
            continue;
        if (in_device && (!strcmp(key, "device") || !strcmp(key, "origin"))) {
            problem_add(pr, "%s belongs at the root of a device payload, not in a component", key);
            continue;
        }
        r = platform_key(platform, key);
        if (!r) {
            unknown_key(pr, where, key);
            continue;
        }
        check_value(pr, platform, key, v, r->type);
    }
    for (size_t i = 0; i < COUNT(required_keys); i++)
        if (!strcmp(required_keys[i].a, platform) && !json_object_get(cfg, required_keys[i].b))
            problem_add(pr, "required key '%s' is missing", required_keys[i].b);

    if ((s = str_of(cfg, "platform")) && strcmp(s, platform) != 0)
        problem_add(pr, "platform '%s' does not match the topic's component '%s'", s, platform);
    s = str_of(cfg, "unique_id");
    if (s && !*s)
        problem_add(pr, "unique_id must not be empty");
    if (!s && in_device)
        problem_add(pr, "entity component needs unique_id (uniq_id)");
    else if (!s && json_object_get(cfg, "device"))
        problem_add(pr, "device information needs unique_id (uniq_id) to take effect");
    // Options inherited from a device payload's root were judged there already.
    if (json_object_get(cfg, "availability") && json_object_get(cfg, "availability_topic") &&
        (own_key(inherited, "availability") || own_key(inherited, "availability_topic")))
        problem_add(pr, "availability and availability_topic are mutually exclusive");
    if ((s = str_of(cfg, "availability_mode")) && own_key(inherited, "availability_mode") &&
        !names_have(availability_modes, COUNT(availability_modes), s))
        problem_add(pr, "availability_mode '%s' is not one of all, any, latest", s);
    if ((s = str_of(cfg, "entity_category")) && !ha_entity_category_ok(platform, s)) {
        if (!strcmp(s, "config"))
            problem_add(pr, "entity_category config is not allowed on %s (HA refuses the entity)",
                        platform);
        else
            problem_add(pr, "entity_category '%s' is not config or diagnostic", s);
    }
    if ((s = str_of(cfg, "device_class"))) {
        if (!strcmp(s, "None"))
            problem_add(pr, "device_class must be omitted or null, not the string \"None\"");
        else if (!ha_device_class_ok(platform, s))
            problem_add(pr, "device_class '%s' is not a %s device class", s, platform);
    }
    if (!strcmp(platform, "sensor"))
        check_sensor(pr, cfg);
    else if (!strcmp(platform, "number"))
        check_number(pr, cfg);
    else if (!strcmp(platform, "text"))
        check_text(pr, cfg);
    else if (!strcmp(platform, "select") && json_array_size(json_object_get(cfg, "options")) == 0 &&
             json_is_array(json_object_get(cfg, "options")))
        problem_add(pr, "options must not be empty");
}

static void uid_release(struct state *st, const char *topic)
{
    size_t j = 0;

    for (size_t i = 0; i < st->n_uids; i++) {
        struct uid_entry *e = &st->uids[i];

        if (strcmp(e->topic, topic) == 0) {
            free(e->platform);
            free(e->uid);
            free(e->topic);
            free(e->cid);
        } else {
            st->uids[j++] = *e;
        }
    }
    st->n_uids = j;
}

static void uid_claim(struct state *st, struct problems *pr, const char *platform, const char *uid,
                      const char *topic, const char *cid)
{
    struct uid_entry *e;

    for (size_t i = 0; i < st->n_uids; i++) {
        e = &st->uids[i];
        if (!strcmp(e->platform, platform) && !strcmp(e->uid, uid)) {
            problem_add(pr, "unique_id '%s' is already used by %s %s (platform %s)", uid, e->topic,
                        e->cid, platform);
            return;
        }
    }
    if (st->n_uids == st->cap_uids) {
        st->cap_uids = st->cap_uids ? 2 * st->cap_uids : 64;
        st->uids = xrealloc(st->uids, st->cap_uids * sizeof(*st->uids));
    }
    e = &st->uids[st->n_uids++];
    e->platform = xstrdup(platform);
    e->uid = xstrdup(uid);
    e->topic = xstrdup(topic);
    e->cid = xstrdup(cid);
}

static void energy_report(struct state *st, const char *topic, const char *cid, json_t *cfg)
{
    const char *dc = str_of(cfg, "device_class");
    const char *unit = str_of(cfg, "unit_of_measurement");
    const char *sc = str_of(cfg, "state_class");
    const char *inputs = ha_energy_inputs(dc, unit, sc);
    static const char *const relevant[] = {"energy", "gas", "water", "power", "battery"};

    if (inputs) {
        st->energy_offered++;
        printf("ENERGY %s %s: %s (%s, %s, %s)\n", topic, cid, inputs, dc, unit, sc);
    } else if (dc && names_have(relevant, COUNT(relevant), dc)) {
        printf("ENERGY %s %s: not offered (device_class %s, unit %s, state_class %s)\n", topic, cid,
               dc, unit ? unit : "none", sc ? sc : "none");
    }
    st->energy_sensors++;
}

// Finishes one entity: uniqueness, then the verdict and the optional reports.
static void entity_done(struct state *st, const char *topic, const char *cid, const char *platform,
                        json_t *cfg, const struct problems *dev, struct problems *own)
{
    const char *uid = cfg ? str_of(cfg, "unique_id") : NULL;

    if (cfg && st->opt.require_published)
        check_published(st, own, cfg);
    if (dev->n == 0 && own->n == 0 && uid && *uid)
        uid_claim(st, own, platform, uid, topic, cid);
    if (dev->n == 0 && own->n == 0) {
        st->passed++;
        if (st->opt.verbose)
            printf("PASS %s %s\n", topic, cid);
        if (st->opt.energy && !strcmp(platform, "sensor"))
            energy_report(st, topic, cid, cfg);
        return;
    }
    st->failed++;
    for (size_t i = 0; i < dev->n; i++)
        printf("FAIL %s %s: %s\n", topic, cid, dev->msg[i]);
    for (size_t i = 0; i < own->n; i++)
        printf("FAIL %s %s: %s\n", topic, cid, own->msg[i]);
}

// Fails a message that could not be split into entities (bad topic, payload not JSON).
__attribute__((format(printf, 4, 5))) static void fail_one(struct state *st, const char *topic,
                                                           const char *cid, const char *fmt, ...)
{
    va_list ap;

    st->failed++;
    printf("FAIL %s %s: ", topic, cid);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

// Takes the "~" base off `obj` (falling back to `outer`), checks it and applies it.
static void resolve_base(json_t *obj, const char *outer, struct problems *pr)
{
    json_t *b = json_object_get(obj, "~");
    const char *base = outer;

    if (b) {
        if (!json_is_string(b))
            problem_add(pr, "~ (base topic) must be a string");
        else
            base = json_string_value(b);
    }
    if (base)
        apply_base(obj, base);
    json_object_del(obj, "~");
}

static bool migrate_marker(json_t *root, struct problems *pr)
{
    json_t *m = json_object_get(root, "migrate_discovery");

    if (!m)
        return false;
    if (!json_is_true(m) || json_object_size(root) != 1) {
        problem_add(pr, "migrate_discovery must be true and the only key of its payload");
        return false;
    }
    return true;
}

static void process_single(struct state *st, const char *topic, const char *component,
                           const char *oid, json_t *payload)
{
    struct problems dev = {0}, own = {0};
    json_t *cfg = expand_config(payload, &own, "the payload");

    if (migrate_marker(cfg, &own)) {
        st->removed++;
        goto out;
    }
    json_object_del(cfg, "migrate_discovery");
    resolve_base(cfg, NULL, &own);
    if (!ha_component_ok(component)) {
        problem_add(&own, "component '%s' is outside energy2mqtt's rule tables", component);
        entity_done(st, topic, oid, component, NULL, &dev, &own);
        goto out;
    }
    check_entity(component, cfg, NULL, false, &own);
    entity_done(st, topic, oid, component, cfg, &dev, &own);
out:
    json_decref(cfg);
    problems_free(&dev);
    problems_free(&own);
}

static void check_root(struct problems *dev, json_t *root)
{
    const char *key;
    json_t *v;

    json_object_foreach(root, key, v)
    {
        const struct plain_key *k = plain_lookup(root_keys, COUNT(root_keys), key);

        if (!k)
            unknown_key(dev, "the root of a device payload", key);
        else
            check_value(dev, NULL, key, v, k->type);
    }
    if (!json_object_get(root, "device"))
        problem_add(dev, "device payload needs device (dev)");
    if (!json_object_get(root, "origin"))
        problem_add(dev, "device payload needs origin (o)");
    if (!json_object_get(root, "components"))
        problem_add(dev, "device payload needs components (cmps)");
    if (json_object_get(root, "availability") && json_object_get(root, "availability_topic"))
        problem_add(dev, "availability and availability_topic are mutually exclusive");
    if ((key = str_of(root, "availability_mode")) &&
        !names_have(availability_modes, COUNT(availability_modes), key))
        problem_add(dev, "availability_mode '%s' is not one of all, any, latest", key);
}

static void process_component(struct state *st, const char *topic, const char *cid, json_t *comp,
                              json_t *root, const char *root_base, const struct problems *dev)
{
    struct problems own = {0};
    json_t *cfg = NULL, *inherited = NULL;
    const char *platform;
    const char *key;
    json_t *v;

    if (!id_valid(cid))
        problem_add(&own, "component id '%s' has characters outside [a-zA-Z0-9_-]", cid);
    if (!json_is_object(comp)) {
        problem_add(&own, "component must be a JSON object");
        entity_done(st, topic, cid, "-", NULL, dev, &own);
        goto out;
    }
    cfg = expand_config(comp, &own, "a component");
    platform = str_of(cfg, "platform");
    if (!platform) {
        problem_add(&own, "component needs a platform (p)");
        entity_done(st, topic, cid, "-", NULL, dev, &own);
        goto out;
    }
    if (!is_ha_component(platform)) {
        problem_add(&own, "platform '%s' is not a component HA supports", platform);
        entity_done(st, topic, cid, platform, NULL, dev, &own);
        goto out;
    }
    if (json_object_size(cfg) == 1) {
        // Only the platform left: HA removes the component.
        st->removed++;
        goto out;
    }
    if (!ha_component_ok(platform)) {
        problem_add(&own, "platform '%s' is outside energy2mqtt's rule tables", platform);
        entity_done(st, topic, cid, platform, NULL, dev, &own);
        goto out;
    }
    resolve_base(cfg, root_base, &own);
    // HA copies the root's shared options into components that do not set them; the ones a
    // platform does not know are dropped there, so they are not errors here.
    inherited = json_object();
    json_object_foreach(root, key, v)
    {
        const struct plain_key *k = plain_lookup(root_keys, COUNT(root_keys), key);

        if (k && k->shared && !json_object_get(cfg, key) && platform_key(platform, key)) {
            json_object_set(cfg, key, v);
            json_object_set_new(inherited, key, json_true());
        }
    }
    check_entity(platform, cfg, inherited, true, &own);
    entity_done(st, topic, cid, platform, cfg, dev, &own);
out:
    json_decref(inherited);
    json_decref(cfg);
    problems_free(&own);
}

static void process_device(struct state *st, const char *topic, json_t *payload)
{
    struct problems dev = {0}, none = {0};
    json_t *root = expand_config(payload, &dev, "the root of a device payload");
    json_t *b = json_object_get(root, "~");
    char *root_base = json_is_string(b) ? xstrdup(json_string_value(b)) : NULL;
    json_t *cmps;
    const char *cid;
    json_t *comp;

    if (migrate_marker(root, &dev)) {
        st->removed++;
        goto out;
    }
    json_object_del(root, "migrate_discovery");
    resolve_base(root, NULL, &dev);
    check_root(&dev, root);
    cmps = json_object_get(root, "components");
    if (!json_is_object(cmps) || json_object_size(cmps) == 0) {
        if (json_is_object(cmps))
            problem_add(&dev, "components is empty");
        entity_done(st, topic, "-", "-", NULL, &dev, &none);
        goto out;
    }
    json_object_foreach(cmps, cid, comp)
    {
        process_component(st, topic, cid, comp, root, root_base, &dev);
    }
out:
    free(root_base);
    json_decref(root);
    problems_free(&dev);
}

// Handles one input line whose topic is under the discovery prefix.
static void process_config(struct state *st, const struct line *ln, const char *rest)
{
    const char *parts[5];
    size_t lens[5];
    size_t n = 0;
    const char *p = rest;
    char *component = NULL, *oid = NULL, *node = NULL;
    json_t *payload = NULL;
    json_error_t err;

    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);

        if (n < COUNT(parts)) {
            parts[n] = p;
            lens[n] = len;
        }
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (n < 3 || n > 4 || lens[n - 1] != 6 || strncmp(parts[n - 1], "config", 6) != 0) {
        fail_one(st, ln->topic, "-",
                 "illegal discovery topic: expected %s/<component>/[<node_id>/]<object_id>/config",
                 st->opt.prefix);
        return;
    }
    component = xstrndup(parts[0], lens[0]);
    oid = xstrndup(parts[n - 2], lens[n - 2]);
    node = n == 4 ? xstrndup(parts[1], lens[1]) : NULL;
    if (!word_valid(component) || !id_valid(oid) || (node && !id_valid(node))) {
        fail_one(st, ln->topic, "-", "illegal discovery topic: ids may only use [a-zA-Z0-9_-]");
        goto out;
    }
    if (strcmp(component, "device") != 0 && !is_ha_component(component)) {
        fail_one(st, ln->topic, oid, "component '%s' is not supported by Home Assistant",
                 component);
        goto out;
    }
    uid_release(st, ln->topic);
    if (ln->len == 0) {
        st->removed++;
        goto out;
    }
    if (ln->len > MAX_PAYLOAD) {
        fail_one(st, ln->topic, oid, "payload is larger than 256 KiB");
        goto out;
    }
    if (!utf8_valid((const unsigned char *)ln->payload, ln->len)) {
        fail_one(st, ln->topic, oid, "payload is not valid UTF-8");
        goto out;
    }
    payload = json_loadb(ln->payload, ln->len, JSON_REJECT_DUPLICATES, &err);
    if (!payload) {
        fail_one(st, ln->topic, oid, "payload is not valid JSON: %s", err.text);
        goto out;
    }
    if (!json_is_object(payload)) {
        fail_one(st, ln->topic, oid, "payload is not a JSON object");
        goto out;
    }
    if (!strcmp(component, "device"))
        process_device(st, ln->topic, payload);
    else
        process_single(st, ln->topic, component, oid, payload);
out:
    json_decref(payload);
    free(component);
    free(oid);
    free(node);
}

static int read_lines(FILE *f, struct line **lines, size_t *n, size_t *cap)
{
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t got;

    while ((got = getline(&buf, &bufcap, f)) >= 0) {
        size_t len = (size_t)got;
        char *sep;
        struct line *ln;

        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (len == 0 || buf[0] == '#')
            continue;
        // "topic<TAB>payload"; a single space also separates, as in `mosquitto_sub -v`.
        sep = memchr(buf, '\t', len);
        if (!sep)
            sep = memchr(buf, ' ', len);
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            *lines = xrealloc(*lines, *cap * sizeof(**lines));
        }
        ln = &(*lines)[(*n)++];
        if (sep) {
            ln->topic = xstrndup(buf, (size_t)(sep - buf));
            ln->len = len - (size_t)(sep - buf) - 1;
            ln->payload = xmalloc(ln->len + 1);
            memcpy(ln->payload, sep + 1, ln->len + 1);
        } else {
            ln->topic = xstrndup(buf, len);
            ln->len = 0;
            ln->payload = xstrdup("");
        }
    }
    free(buf);
    return ferror(f) ? -1 : 0;
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ha_validate [--prefix P] [--energy] [--require-published] [-v] [FILE|-]...\n"
            "Validates Home Assistant MQTT discovery messages, one 'topic<TAB>payload' per line\n"
            "(lines starting with # are skipped), against the rules of HA %s.\n"
            "  --prefix P            discovery prefix (default homeassistant)\n"
            "  --energy              report what the Energy dashboard would offer\n"
            "  --require-published   every state/availability topic a config uses must appear\n"
            "                        in the input\n"
            "  -v                    print passing entities too\n"
            "Exit status: 0 if every entity passed and at least one did, 1 otherwise, 2 on\n"
            "usage errors.\n",
            ha_rules_version());
}

int main(int argc, char **argv)
{
    struct state st = {.opt = {.prefix = "homeassistant"}};
    const char **files = xcalloc((size_t)argc + 1, sizeof(*files));
    size_t n_files = 0, n_lines = 0, cap_lines = 0, plen;
    struct line *lines = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strcmp(a, "--prefix")) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                usage(stderr);
                return 2;
            }
            st.opt.prefix = argv[++i];
        } else if (!strcmp(a, "--energy")) {
            st.opt.energy = true;
        } else if (!strcmp(a, "--require-published")) {
            st.opt.require_published = true;
        } else if (!strcmp(a, "-v")) {
            st.opt.verbose = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(files);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ha_validate: unknown option %s\n", a);
            usage(stderr);
            free(files);
            return 2;
        } else {
            files[n_files++] = a;
        }
    }
    if (n_files == 0)
        files[n_files++] = "-";
    for (size_t i = 0; i < n_files; i++) {
        bool is_stdin = !strcmp(files[i], "-");
        FILE *f = is_stdin ? stdin : fopen(files[i], "rb");

        if (!f) {
            fprintf(stderr, "ha_validate: cannot open %s\n", files[i]);
            free(files);
            return 2;
        }
        rc = read_lines(f, &lines, &n_lines, &cap_lines);
        if (!is_stdin)
            fclose(f);
        if (rc < 0) {
            fprintf(stderr, "ha_validate: cannot read %s\n", files[i]);
            free(files);
            return 2;
        }
    }
    free(files);

    // Every topic with a retained payload counts as published, discovery topics included.
    st.published = xcalloc(n_lines + 1, sizeof(*st.published));
    for (size_t i = 0; i < n_lines; i++)
        if (lines[i].len > 0)
            st.published[st.n_published++] = lines[i].topic;
    qsort(st.published, st.n_published, sizeof(*st.published), compare_str);

    plen = strlen(st.opt.prefix);
    for (size_t i = 0; i < n_lines; i++) {
        const char *t = lines[i].topic;
        size_t tl = strlen(t);

        // Only topics under the prefix that end in "config" reach HA's discovery code; the
        // rest (states, availability, HA's own status topic) are just published topics.
        if (strncmp(t, st.opt.prefix, plen) != 0 || t[plen] != '/' || tl < plen + 7 ||
            strcmp(t + tl - 6, "config") != 0)
            continue;
        process_config(&st, &lines[i], t + plen + 1);
    }
    if (st.opt.energy)
        printf("ENERGY: %lu of %lu passing sensors would be offered by the Energy dashboard\n",
               st.energy_offered, st.energy_sensors);
    printf("%lu passed, %lu failed, %lu removed\n", st.passed, st.failed, st.removed);
    fflush(stdout);

    for (size_t i = 0; i < st.n_uids; i++) {
        free(st.uids[i].platform);
        free(st.uids[i].uid);
        free(st.uids[i].topic);
        free(st.uids[i].cid);
    }
    free(st.uids);
    free(st.published);
    for (size_t i = 0; i < n_lines; i++) {
        free(lines[i].topic);
        free(lines[i].payload);
    }
    free(lines);
    return st.failed == 0 && st.passed > 0 ? 0 : 1;
}
