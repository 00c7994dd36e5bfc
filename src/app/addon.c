// SPDX-License-Identifier: MIT
// The add-on's options and the Supervisor's MQTT service, turned into a configuration.
#include "app/addon.h"

#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/dynlib.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/node.h"

enum { SUPERVISOR_TIMEOUT_MS = 10000 };

// A device option in the add-on is "key: value"; in the document it becomes one member of a
// YAML flow mapping, spliced in as written so that `off`, `30s` or a list of quiet windows
// mean exactly what they mean in the configuration file.
static const char OPTIONS_MARK[] = "\001e2m-options-";

static void copy_str(char *dst, size_t n, const json_t *v)
{
    snprintf(dst, n, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int addon_parse_service(const char *body, struct addon_broker *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loads(body, 0, &je);
    if (!root) {
        snprintf(err, err_size, "the Supervisor's answer is not JSON (%s)", je.text);
        return -1;
    }
    int rc = -1;
    const json_t *result = json_object_get(root, "result");
    const json_t *data = json_object_get(root, "data");
    if (!json_is_string(result) || strcmp(json_string_value(result), "ok") != 0 ||
        !json_is_object(data)) {
        const char *msg = json_string_value(json_object_get(root, "message"));
        snprintf(err, err_size, "the Supervisor has no MQTT service: %s",
                 msg ? msg : "no data in its answer");
        goto out;
    }
    const json_t *host = json_object_get(data, "host");
    const json_t *port = json_object_get(data, "port");
    if (!json_is_string(host) || !*json_string_value(host)) {
        snprintf(err, err_size, "the Supervisor's MQTT service names no host");
        goto out;
    }
    copy_str(out->host, sizeof(out->host), host);
    // An integer by the Supervisor's schema; older documentation shows a string.
    long long p = json_is_integer(port)  ? json_integer_value(port)
                  : json_is_string(port) ? strtoll(json_string_value(port), NULL, 10)
                                         : 1883;
    if (p < 1 || p > 65535) {
        snprintf(err, err_size, "the Supervisor's MQTT service has an invalid port");
        goto out;
    }
    out->port = (int)p;
    out->ssl = json_is_true(json_object_get(data, "ssl"));
    copy_str(out->username, sizeof(out->username), json_object_get(data, "username"));
    copy_str(out->password, sizeof(out->password), json_object_get(data, "password"));
    const json_t *prov = json_object_get(data, "addon");
    if (!json_is_string(prov))
        prov = json_object_get(data, "app"); // the v2 API's name
    copy_str(out->provider, sizeof(out->provider), prov);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

bool addon_has_broker(const json_t *options)
{
    const char *url = json_string_value(json_object_get(json_object_get(options, "mqtt"), "url"));
    return url && *url;
}

// Whether `v` carries something: the Supervisor writes optional keys the user cleared as
// empty strings or nulls.
static bool is_set(const json_t *v)
{
    return v && !json_is_null(v) && !(json_is_string(v) && !*json_string_value(v));
}

static json_t *copy_set_members(const json_t *src)
{
    json_t *dst = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v)
    {
        if (is_set(v))
            json_object_set(dst, k, v);
    }
    return dst;
}

// Checks that `item` is "key: value" pairs of a flow mapping (exactly one when `one`).
//
// The item is spliced into the document as written, so it is checked the way it will sit
// there: as a flow mapping followed by more of the document. A brace that closes the mapping
// early, a comment that would swallow the rest of its line or a line break followed by a
// document marker all leave the probe's trailing element missing or an element too many.
static int check_option(const char *item, bool one, char *err, size_t err_size, const char *path)
{
    struct arena *a = arena_new();
    struct diag d;
    diag_init(&d);
    size_t len = strlen(item) + sizeof("[{}, 0]");
    char *text = arena_alloc(a, len);
    snprintf(text, len, "[{%s}, 0]", item);
    struct node *root = NULL;
    const struct node *map = NULL;
    if (!strpbrk(item, "\r\n") && node_parse(a, path, text, strlen(text), &root, &d) == 0 && root &&
        root->kind == NODE_SEQ && root->n == 2 && root->items[1]->kind == NODE_SCALAR &&
        strcmp(root->items[1]->str, "0") == 0 && root->items[0]->kind == NODE_MAP)
        map = root->items[0];
    int rc = map && map->n >= 1 && (!one || map->n == 1) ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < map->n; i++)
        if (node_is_null(map->items[i]))
            rc = -1;
    if (rc < 0)
        snprintf(err, err_size, "%s: expected %s (e.g. 'poll_interval: 30s'), got '%s'", path,
                 one ? "one 'key: value'" : "'key: value' pairs separated by commas", item);
    diag_free(&d);
    arena_free(a);
    return rc;
}

// Whether a key or string anywhere in `v` holds U+0001, which starts the options markers:
// such a string could stand in for a marker and take a device's options.
static bool holds_mark_char(const json_t *v)
{
    if (json_is_string(v))
        return memchr(json_string_value(v), OPTIONS_MARK[0], json_string_length(v)) != NULL;
    const char *k;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, item)
        {
            if (strchr(k, OPTIONS_MARK[0]) || holds_mark_char(item))
                return true;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (holds_mark_char(item))
                return true;
        }
    }
    return false;
}

// Rewrites the characters that JSON leaves raw but YAML does not take as written inside a
// quoted string: DEL and the C1 controls are refused, NEL, LS and PS are line breaks (folded
// to a space), U+FEFF and U+FFFE/U+FFFF are refused. In json_dumps output they can only stand
// inside strings, where the \u escape means the same character to both. Frees `text`.
static char *escape_for_yaml(char *text)
{
    size_t n = strlen(text);
    char *out = xmalloc(6 * n + 1), *o = out; // no byte grows to more than a 6-byte escape
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        unsigned cp = 0;
        size_t len = 0;
        if (p[i] == 0x7f) {
            cp = 0x7f;
            len = 1;
        } else if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            cp = p[i + 1];
            len = 2;
        } else if (i + 2 < n &&
                   ((p[i] == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) ||
                    (p[i] == 0xef && p[i + 1] == 0xbb && p[i + 2] == 0xbf) ||
                    (p[i] == 0xef && p[i + 1] == 0xbf && p[i + 2] >= 0xbe))) {
            cp = (p[i] & 0x0fu) << 12 | (p[i + 1] & 0x3fu) << 6 | (p[i + 2] & 0x3fu);
            len = 3;
        }
        if (len) {
            o += sprintf(o, "\\u%04x", cp);
            i += len;
        } else {
            *o++ = (char)p[i++];
        }
    }
    *o = '\0';
    free(text);
    return out;
}

// Replaces the markers (in document order, one each) by the flows, in one pass, so that text
// spliced in is never searched for the next marker. Frees `text`; NULL when a marker is
// missing.
static char *splice_options(char *text, char **flows, size_t n)
{
    size_t cap = strlen(text) + 1;
    for (size_t i = 0; i < n; i++)
        cap += strlen(flows[i]);
    char *out = xmalloc(cap), *o = out;
    const char *from = text;
    for (size_t i = 0; i < n; i++) {
        char mark[64];
        snprintf(mark, sizeof(mark), "\"\\u0001e2m-options-%zu\"", i);
        const char *at = strstr(from, mark);
        if (!at) {
            free(out);
            free(text);
            return NULL;
        }
        size_t fl = strlen(flows[i]);
        memcpy(o, from, (size_t)(at - from));
        o += at - from;
        memcpy(o, flows[i], fl);
        o += fl;
        from = at + strlen(mark);
    }
    memcpy(o, from, strlen(from) + 1);
    free(text);
    return out;
}

char *addon_build_config(const json_t *options, const struct addon_broker *broker,
                         const char *listen, const char *state_dir, char *err, size_t err_size)
{
    if (!json_is_object(options)) {
        snprintf(err, err_size, "the add-on options are not a JSON object");
        return NULL;
    }
    if (holds_mark_char(options)) {
        snprintf(err, err_size, "the add-on options hold the control character U+0001");
        return NULL;
    }
    json_t *doc = json_object();
    char **flows = NULL;
    size_t n_flows = 0;
    char *text = NULL;

    const json_t *m = json_object_get(options, "mqtt");
    json_t *mqtt = json_is_object(m) ? copy_set_members(m) : json_object();
    if (!addon_has_broker(options)) {
        if (!broker) {
            snprintf(err, err_size,
                     "no MQTT broker: set mqtt.url in the add-on's options, or install the "
                     "Mosquitto broker add-on so that the Supervisor can name one");
            json_decref(mqtt);
            goto fail;
        }
        char url[300];
        snprintf(url, sizeof(url), "%s://%s:%d", broker->ssl ? "mqtts" : "mqtt", broker->host,
                 broker->port);
        json_object_set_new(mqtt, "url", json_string(url));
        // Credentials typed into the options win over the service's.
        if (!json_object_get(mqtt, "username") && broker->username[0])
            json_object_set_new(mqtt, "username", json_string(broker->username));
        if (!json_object_get(mqtt, "password") && broker->password[0])
            json_object_set_new(mqtt, "password", json_string(broker->password));
    }
    json_object_set_new(doc, "mqtt", mqtt);
    json_object_set_new(
        doc, "http",
        json_pack("{s:s,s:[s,s]}", "listen", listen, "allow", "172.30.32.2", "127.0.0.1"));
    json_object_set_new(doc, "state_dir", json_string(state_dir));
    const json_t *lvl = json_object_get(options, "log_level");
    if (is_set(lvl))
        json_object_set(doc, "log_level", (json_t *)lvl);

    json_t *devices = json_array();
    json_object_set_new(doc, "devices", devices);
    const json_t *devs = json_object_get(options, "devices");
    if (devs && !json_is_array(devs)) {
        snprintf(err, err_size, "devices: expected a list");
        goto fail;
    }
    size_t i;
    const json_t *dev;
    json_array_foreach(devs, i, dev)
    {
        if (!json_is_object(dev)) {
            snprintf(err, err_size, "devices[%zu]: expected a mapping", i);
            goto fail;
        }
        json_t *out = copy_set_members(dev);
        json_array_append_new(devices, out);
        const json_t *dis = json_object_get(out, "disable");
        if (json_is_string(dis)) {
            // The schema's form: entity ids separated by commas or spaces.
            json_t *ids = json_array();
            char *copy = xstrdup(json_string_value(dis)), *save = NULL;
            for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
                json_array_append_new(ids, json_string(t));
            free(copy);
            json_object_set_new(out, "disable", ids);
        }
        const json_t *opts = json_object_get(dev, "options");
        if (!is_set(opts)) {
            json_object_del(out, "options");
            continue;
        }
        char path[64];
        char *flow;
        if (json_is_string(opts)) {
            // The schema's form: "poll_interval: 30s, min_request_gap: 31s".
            snprintf(path, sizeof(path), "devices[%zu].options", i);
            if (check_option(json_string_value(opts), false, err, err_size, path) < 0)
                goto fail;
            size_t n = strlen(json_string_value(opts)) + 3;
            flow = xmalloc(n);
            snprintf(flow, n, "{%s}", json_string_value(opts));
            goto add;
        }
        if (!json_is_array(opts)) {
            snprintf(err, err_size,
                     "devices[%zu].options: expected 'key: value' pairs separated by commas", i);
            goto fail;
        }
        size_t len = 3, k;
        const json_t *item;
        json_array_foreach(opts, k, item)
        {
            snprintf(path, sizeof(path), "devices[%zu].options[%zu]", i, k);
            if (!json_is_string(item) ||
                check_option(json_string_value(item), true, err, err_size, path) < 0) {
                if (!json_is_string(item))
                    snprintf(err, err_size, "%s: expected a 'key: value' string", path);
                goto fail;
            }
            len += strlen(json_string_value(item)) + 2;
        }
        flow = xmalloc(len);
        strcpy(flow, "{");
        json_array_foreach(opts, k, item)
        {
            if (k)
                strcat(flow, ", ");
            strcat(flow, json_string_value(item));
        }
        strcat(flow, "}");
    add:
        flows = xrealloc(flows, (n_flows + 1) * sizeof(*flows));
        flows[n_flows] = flow;
        char mark[64];
        snprintf(mark, sizeof(mark), "%s%zu", OPTIONS_MARK, n_flows++);
        json_object_set_new(out, "options", json_string(mark));
    }
    text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    text = text ? splice_options(escape_for_yaml(text), flows, n_flows) : NULL;
    if (!text)
        snprintf(err, err_size, "cannot build the configuration from the add-on options");
fail:
    for (size_t k = 0; k < n_flows; k++)
        free(flows[k]);
    free(flows);
    json_decref(doc);
    return text;
}

// ---- the Supervisor ---------------------------------------------------------------------------

struct reply {
    char *text;
    size_t len;
    bool too_long;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t add = size * n;
    if (r->len + add > ADDON_MAX_REPLY) {
        r->too_long = true;
        return 0; // ends the transfer with an error
    }
    r->text = xrealloc(r->text, r->len + add + 1);
    memcpy(r->text + r->len, data, add);
    r->len += add;
    r->text[r->len] = '\0';
    return add;
}

// libcurl, loaded for the one Supervisor request (core/dynlib.h).
static struct {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption option, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
    void (*easy_cleanup)(CURL *c);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
    void (*slist_free_all)(struct curl_slist *list);
} curl;

static int curl_load(char *err, size_t err_size)
{
    static bool loaded;
    if (loaded)
        return 0;
    const struct dynlib_sym syms[] = {
        {"curl_global_init", (void **)&curl.global_init},
        {"curl_easy_init", (void **)&curl.easy_init},
        {"curl_easy_setopt", (void **)&curl.easy_setopt},
        {"curl_easy_perform", (void **)&curl.easy_perform},
        {"curl_easy_getinfo", (void **)&curl.easy_getinfo},
        {"curl_easy_strerror", (void **)&curl.easy_strerror},
        {"curl_easy_cleanup", (void **)&curl.easy_cleanup},
        {"curl_slist_append", (void **)&curl.slist_append},
        {"curl_slist_free_all", (void **)&curl.slist_free_all},
    };
    if (dynlib_load("libcurl.so.4", syms, sizeof(syms) / sizeof(syms[0]), err, err_size) < 0)
        return -1;
    if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, err_size, "cannot initialise libcurl");
        return -1;
    }
    loaded = true;
    return 0;
}

int addon_query_supervisor(const char *base_url, const char *token, struct addon_broker *out,
                           char *err, size_t err_size)
{
    if (curl_load(err, err_size) < 0)
        return -1;
    char url[512], auth[1024];
    snprintf(url, sizeof(url), "%s/services/mqtt", base_url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    CURL *c = curl.easy_init();
    if (!c) {
        snprintf(err, err_size, "cannot initialise libcurl");
        return -1;
    }
    struct curl_slist *headers = curl.slist_append(NULL, auth);
    struct reply r = {xcalloc(1, 1), 0, false};
    curl.easy_setopt(c, CURLOPT_URL, url);
    curl.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl.easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SUPERVISOR_TIMEOUT_MS);
    curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    // An announced length over the limit ends the transfer before the body (the write
    // callback's own check covers answers without a length).
    curl.easy_setopt(c, CURLOPT_MAXFILESIZE, (long)ADDON_MAX_REPLY);
    int rc = -1;
    CURLcode cc = curl.easy_perform(c);
    long status = 0;
    if (r.too_long || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, err_size, "the Supervisor's answer is longer than %d bytes: ignored",
                 ADDON_MAX_REPLY);
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(err, err_size, "cannot reach the Supervisor at %s: %s", base_url,
                 curl.easy_strerror(cc));
        goto out;
    }
    curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 403) {
        snprintf(err, err_size,
                 "the Supervisor refused access to the MQTT service (HTTP 403): the add-on must "
                 "declare `services: [mqtt:want]`");
        goto out;
    }
    rc = addon_parse_service(r.text, out, err, err_size);
    if (rc < 0 && status != 200) {
        size_t n = strlen(err);
        snprintf(err + n, err_size - n, " (HTTP %ld)", status);
    }
out:
    free(r.text);
    curl.slist_free_all(headers);
    curl.easy_cleanup(c);
    return rc;
}

static json_t *read_options(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_error("addon", "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    // One byte more than allowed tells a file at the limit from a longer one.
    char *text = xmalloc((size_t)ADDON_MAX_OPTIONS + 1);
    size_t len = fread(text, 1, (size_t)ADDON_MAX_OPTIONS + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    json_t *o = NULL;
    if (failed) {
        log_error("addon", "cannot read %s", path);
    } else if (len > ADDON_MAX_OPTIONS) {
        log_error("addon", "%s is larger than %d bytes: not the add-on's options", path,
                  ADDON_MAX_OPTIONS);
    } else {
        json_error_t je;
        o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!o)
            log_error("addon", "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    free(text);
    return o;
}

char *addon_load(const char *options_path)
{
    json_t *options = read_options(options_path);
    if (!options)
        return NULL;
    struct addon_broker broker;
    bool have_broker = false;
    char err[512] = "";
    if (!addon_has_broker(options)) {
        const char *token = getenv("SUPERVISOR_TOKEN");
        if (!token || !*token)
            token = getenv("HASSIO_TOKEN");
        const char *base = getenv("E2M_SUPERVISOR_URL");
        if (!base || !*base)
            base = "http://supervisor";
        if (!token || !*token) {
            log_error("addon", "mqtt.url is empty and there is no SUPERVISOR_TOKEN to ask the "
                               "Supervisor for the broker");
        } else if (addon_query_supervisor(base, token, &broker, err, sizeof(err)) < 0) {
            log_error("addon", "%s", err);
        } else {
            have_broker = true;
            log_info("addon", "MQTT broker from the Supervisor: %s:%d%s (%s)", broker.host,
                     broker.port, broker.ssl ? " with TLS" : "",
                     broker.provider[0] ? broker.provider : "provider not named");
        }
    }
    const char *listen = getenv("E2M_ADDON_LISTEN");
    if (!listen || !*listen)
        listen = "0.0.0.0:8099";
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", options_path);
    char *text = addon_build_config(options, have_broker ? &broker : NULL, listen, dirname(dir),
                                    err, sizeof(err));
    if (!text)
        log_error("addon", "%s: %s", options_path, err);
    json_decref(options);
    return text;
}
