// SPDX-License-Identifier: MIT
// Loading and checking the user's configuration.
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/model.h"
#include "core/node.h"
#include "core/reader.h"
#include "drivers/drivers.h"

struct cfg_loader {
    struct reader r;
    struct config *c;
    struct model **models; // loaded once per key
    const char **model_keys;
    size_t n_models;
    bool password_in_file; // mqtt.password written out in the file (not a ${NAME})
};

static const char *const top_keys[] = {"mqtt",      "http",    "state_dir", "entities_dir",
                                       "log_level", "devices", NULL};
static const char *const http_keys[] = {"listen", "allow", NULL};
static const char *const mqtt_keys[] = {
    "url",       "username",    "password",         "password_file",
    "client_id", "base_topic",  "discovery_prefix", "discovery",
    "ca_file",   "cert_file",   "key_file",         "tls_insecure",
    "keepalive", "birth_topic", "birth_delay",      "scan_time",
    NULL};

// Topic levels we build from user input must not contain wildcards or separators.
static bool topic_level_ok(const char *s, bool allow_slash)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '+' || *p == '#' || (!allow_slash && *p == '/'))
            return false;
    return s[0] != '/' && s[strlen(s) - 1] != '/';
}

static bool device_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

static int parse_url(struct mqtt_config *m, const char *url)
{
    const char *p;
    if (strncmp(url, "mqtt://", 7) == 0 || strncmp(url, "tcp://", 6) == 0) {
        m->tls = false;
        m->port = 1883;
    } else if (strncmp(url, "mqtts://", 8) == 0 || strncmp(url, "ssl://", 6) == 0) {
        m->tls = true;
        m->port = 8883;
    } else {
        return -1;
    }
    p = strstr(url, "://") + 3;
    if (strchr(p, '@') || strchr(p, '/'))
        return -1; // credentials belong in username/password, never in a URL we might log
    const char *colon = strrchr(p, ':');
    size_t hlen = colon ? (size_t)(colon - p) : strlen(p);
    if (hlen == 0 || hlen > 253)
        return -1;
    if (colon) {
        long long port;
        if (!node_parse_int(colon + 1, &port) || port < 1 || port > 65535)
            return -1;
        m->port = (int)port;
    }
    return (int)hlen; // the caller copies the host name
}

// Secrets on disk should be readable by their owner (and group) only: a copy readable by
// every local user is a copy every local process can send elsewhere.
static void warn_world_readable(const char *file, const char *what)
{
    struct stat st;
    if (stat(file, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
        log_warn("config",
                 "%s holds %s and every local user can read it (mode %03o); run chmod 600 %s", file,
                 what, (unsigned)(st.st_mode & 0777), file);
}

static char *read_secret_file(struct cfg_loader *L, const struct node *n, const char *path,
                              const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        diag_at(L->r.d, L->r.file, n, path, "cannot read %s: %s", file, strerror(errno));
        return NULL;
    }
    char buf[CONFIG_MAX_SECRET + 2];
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (len > CONFIG_MAX_SECRET) {
        // Cut short, it would be a wrong password that nobody can see: refuse it instead.
        diag_at(L->r.d, L->r.file, n, path, "%s is longer than %d bytes: not a password", file,
                CONFIG_MAX_SECRET);
        return NULL;
    }
    warn_world_readable(file, "the MQTT password");
    return arena_strdup(L->r.a, buf);
}

// Whether a value is nothing but one ${NAME} (without a default): then the secret lives in
// the environment, not in the file.
static bool only_env_reference(const char *s)
{
    size_t n = strlen(s);
    return n > 3 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}' && !strstr(s, ":-") &&
           !strchr(s + 2, '$') && strchr(s, '}') == s + n - 1;
}

static void read_mqtt(struct cfg_loader *L, const struct node *n)
{
    struct reader *r = &L->r;
    struct mqtt_config *m = &L->c->mqtt;
    m->url = "mqtt://127.0.0.1:1883";
    m->base_topic = "energy2mqtt";
    m->discovery_prefix = "homeassistant";
    m->keepalive_ms = 30000;
    m->birth_topic = "homeassistant/status";
    m->birth_delay_ms = 5000;
    m->scan_ms = 2000;
    if (n) {
        if (!rd_is_map(r, n, "mqtt"))
            return;
        rd_check_keys(r, n, "mqtt", mqtt_keys);
        rd_str(r, n, "mqtt", "url", &m->url);
        rd_str(r, n, "mqtt", "username", &m->username);
        if (rd_str(r, n, "mqtt", "password", &m->password) > 0)
            L->password_in_file = !only_env_reference(node_get(n, "password")->str);
        const char *pwfile = NULL;
        if (rd_str(r, n, "mqtt", "password_file", &pwfile) > 0) {
            if (m->password)
                diag_at(r->d, r->file, node_get(n, "password_file"), "mqtt.password_file",
                        "give password or password_file, not both");
            else
                m->password =
                    read_secret_file(L, node_get(n, "password_file"), "mqtt.password_file", pwfile);
        }
        rd_str(r, n, "mqtt", "client_id", &m->client_id);
        rd_str(r, n, "mqtt", "base_topic", &m->base_topic);
        rd_str(r, n, "mqtt", "discovery_prefix", &m->discovery_prefix);
        static const char *const modes[] = {"device", "entity", NULL};
        int mode = 0;
        rd_choice(r, n, "mqtt", "discovery", modes, &mode);
        m->discovery = (enum discovery_mode)mode;
        rd_str(r, n, "mqtt", "ca_file", &m->ca_file);
        rd_str(r, n, "mqtt", "cert_file", &m->cert_file);
        rd_str(r, n, "mqtt", "key_file", &m->key_file);
        rd_bool(r, n, "mqtt", "tls_insecure", &m->tls_insecure);
        rd_duration(r, n, "mqtt", "keepalive", 5000, 3600000, &m->keepalive_ms);
        rd_str(r, n, "mqtt", "birth_topic", &m->birth_topic);
        rd_duration(r, n, "mqtt", "birth_delay", 0, 300000, &m->birth_delay_ms);
        rd_duration(r, n, "mqtt", "scan_time", 0, 60000, &m->scan_ms);
        if ((m->cert_file == NULL) != (m->key_file == NULL))
            diag_at(r->d, r->file, n, "mqtt", "cert_file and key_file go together");
    }
    int hlen = parse_url(m, m->url);
    if (hlen < 0) {
        // Never echo a URL carrying user:password@ back into a log.
        bool secret = strchr(m->url, '@') != NULL;
        diag_at(r->d, r->file, n ? node_get(n, "url") : NULL, "mqtt.url",
                "expected mqtt://host[:port] or mqtts://host[:port] (credentials go in "
                "username and password), got %s%s%s",
                secret ? "a URL with credentials" : "'", secret ? "" : m->url, secret ? "" : "'");
    } else {
        const char *p = strstr(m->url, "://") + 3;
        m->host = arena_strndup(r->a, p, (size_t)hlen);
        if (!m->tls && (m->ca_file || m->cert_file || m->tls_insecure))
            log_warn("config",
                     "mqtt: ca_file, cert_file and tls_insecure apply to mqtts:// only; %s is a "
                     "connection without TLS",
                     m->url);
    }
    if (!topic_level_ok(m->base_topic, true))
        diag_at(r->d, r->file, n ? node_get(n, "base_topic") : NULL, "mqtt.base_topic",
                "expected a topic without + # or leading/trailing /, got '%s'", m->base_topic);
    if (!topic_level_ok(m->discovery_prefix, true))
        diag_at(r->d, r->file, n ? node_get(n, "discovery_prefix") : NULL, "mqtt.discovery_prefix",
                "expected a topic without + # or leading/trailing /, got '%s'",
                m->discovery_prefix);
    if (!topic_level_ok(m->birth_topic, true))
        diag_at(r->d, r->file, n ? node_get(n, "birth_topic") : NULL, "mqtt.birth_topic",
                "expected a topic without + # or leading/trailing /, got '%s'", m->birth_topic);
}

// `listen`: "address:port", "[v6]:port", ":port" or a bare port; the address must be numeric
// (no name look-up at start) and defaults to 127.0.0.1, so nothing is exposed by accident.
static int parse_listen(struct arena *a, const char *s, struct http_config *h)
{
    const char *colon = strrchr(s, ':');
    const char *port = colon ? colon + 1 : s;
    long long p;
    if (!node_parse_int(port, &p) || p < 1 || p > 65535)
        return -1;
    h->port = (int)p;
    h->address = "127.0.0.1";
    if (colon && colon > s) {
        const char *b = s, *e = colon;
        if (*b == '[') {
            if (e[-1] != ']')
                return -1;
            b++;
            e--;
        }
        char addr[64];
        if (e <= b || (size_t)(e - b) >= sizeof(addr))
            return -1;
        memcpy(addr, b, (size_t)(e - b));
        addr[e - b] = '\0';
        unsigned char bin[16];
        if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)
            return -1;
        h->address = arena_strdup(a, addr);
    }
    return 0;
}

static void read_http(struct cfg_loader *L, const struct node *n)
{
    struct reader *r = &L->r;
    struct http_config *h = &L->c->http;
    if (!n || node_is_null(n))
        return;
    if (n->kind == NODE_SCALAR) {
        const char *text = rd_text(r, n, "http");
        if (text && parse_listen(r->a, text, h) < 0)
            diag_at(r->d, r->file, n, "http", "expected [address:]port, got '%s'", text);
        return;
    }
    if (!rd_is_map(r, n, "http"))
        return;
    rd_check_keys(r, n, "http", http_keys);
    const struct node *ln = node_get(n, "listen");
    if (ln && !node_is_null(ln)) {
        const char *text = rd_text(r, ln, "http.listen");
        if (text && *text && parse_listen(r->a, text, h) < 0)
            diag_at(r->d, r->file, ln, "http.listen",
                    "expected [address:]port with a numeric address, e.g. 127.0.0.1:8099, got "
                    "'%s'",
                    text);
    }
    const struct node *al = node_get(n, "allow");
    if (al && !node_is_null(al) && rd_is_seq(r, al, "http.allow")) {
        h->allow = arena_alloc(r->a, (al->n ? al->n : 1) * sizeof(*h->allow));
        for (size_t i = 0; i < al->n; i++) {
            const char *ip = NULL;
            const char *p = rd_index(r, "http.allow", i);
            if (rd_v_str(r, al->items[i], p, &ip) <= 0)
                continue;
            unsigned char bin[16];
            if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
                diag_at(r->d, r->file, al->items[i], p, "expected a numeric address, got '%s'", ip);
            else
                h->allow[h->n_allow++] = ip;
        }
    }
}

static const struct model *load_model(struct cfg_loader *L, const struct node *n, const char *path,
                                      const char *key)
{
    for (size_t i = 0; i < L->n_models; i++)
        if (strcmp(L->model_keys[i], key) == 0)
            return L->models[i];
    size_t before = diag_count(L->r.d);
    struct model *m = model_load(L->r.a, L->c->entity_dirs, L->c->n_entity_dirs, key, L->r.d);
    if (!m && diag_count(L->r.d) == before) {
        char dirs[512] = "";
        size_t len = 0;
        for (size_t i = 0; i < L->c->n_entity_dirs; i++)
            len += (size_t)snprintf(dirs + len, sizeof(dirs) - len, "%s%s", i ? ", " : "",
                                    L->c->entity_dirs[i]);
        diag_at(L->r.d, L->r.file, n, path,
                "no entity definition '%s' (expected vendor/model, a file <dir>/%s.yaml in: %s)",
                key, key, dirs);
    }
    L->models = xrealloc(L->models, (L->n_models + 1) * sizeof(*L->models));
    L->model_keys = xrealloc(L->model_keys, (L->n_models + 1) * sizeof(*L->model_keys));
    L->models[L->n_models] = m;
    L->model_keys[L->n_models++] = arena_strdup(L->r.a, key);
    return m;
}

// Adds the quiet windows the driver derives from the device's options (after its own).
static void add_driver_windows(struct reader *r, struct device_config *dev)
{
    const struct driver_ops *drv = dev->model->driver;
    if (!drv->quiet_windows)
        return;
    struct sched_window extra[8];
    struct drv_device dd = {dev->id, &dev->settings, &dev->core_options, &dev->driver_options};
    size_t k = drv->quiet_windows(&dd, extra, sizeof(extra) / sizeof(extra[0]));
    if (!k)
        return;
    struct sched_window *all = arena_alloc(r->a, (dev->n_windows + k) * sizeof(*all));
    for (size_t i = 0; i < dev->n_windows; i++)
        all[i] = dev->windows[i];
    for (size_t i = 0; i < k; i++)
        all[dev->n_windows + i] = extra[i];
    dev->windows = all;
    dev->n_windows += k;
}

// Fills timing options the files left unset from the driver, then checks the combination.
static void resolve_timing(struct cfg_loader *L, struct device_config *dev, const struct node *n,
                           const char *path)
{
    struct reader *r = &L->r;
    const struct drv_timing *t = &dev->model->driver->timing;
    struct params *o = &dev->core_options;
    static const struct {
        const char *name;
        size_t offset;
    } defaults[] = {
        {"poll_interval", offsetof(struct drv_timing, poll_ms)},
        {"min_request_gap", offsetof(struct drv_timing, min_gap_ms)},
        {"reply_timeout", offsetof(struct drv_timing, reply_timeout_ms)},
        {"connect_timeout", offsetof(struct drv_timing, connect_timeout_ms)},
        {"backoff_min", offsetof(struct drv_timing, backoff_min_ms)},
        {"backoff_max", offsetof(struct drv_timing, backoff_max_ms)},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        const struct param_def *d = params_find(o->defs, o->n, defaults[i].name);
        struct param_value *v = &o->v[d - o->defs];
        if (!v->set) {
            v->set = true;
            v->ms = *(const int64_t *)((const char *)t + defaults[i].offset);
        }
    }
    const struct param_def *sd = params_find(o->defs, o->n, "stale_after");
    struct param_value *stale = &o->v[sd - o->defs];
    if (!stale->set) {
        stale->set = true;
        stale->ms = 3 * params_ms(o, "poll_interval");
        if (stale->ms < 60000)
            stale->ms = 60000;
    }

    const struct param_value *pv;
    if (params_ms(o, "poll_interval") < t->min_poll_ms) {
        pv = params_value(o, "poll_interval");
        diag_pos(r->d, pv ? pv->file : r->file, pv ? pv->line : n->line, pv ? pv->col : n->col,
                 rd_key(r, path, "options.poll_interval"),
                 "the %s driver polls at most every %lld ms", dev->model->driver->name,
                 (long long)t->min_poll_ms);
    }
    if (params_ms(o, "min_request_gap") < t->min_gap_ms && !params_bool(o, "unsafe_timing")) {
        pv = params_value(o, "min_request_gap");
        diag_pos(r->d, pv ? pv->file : r->file, pv ? pv->line : n->line, pv ? pv->col : n->col,
                 rd_key(r, path, "options.min_request_gap"),
                 "below the %s driver's safe minimum of %lld ms; set unsafe_timing: true to "
                 "allow it",
                 dev->model->driver->name, (long long)t->min_gap_ms);
    }
    struct sched_config sc = {
        .min_gap_ms = params_ms(o, "min_request_gap"),
        .reply_timeout_ms = config_exchange_ms(o),
        .backoff_min_ms = params_ms(o, "backoff_min"),
        .backoff_max_ms = params_ms(o, "backoff_max"),
        .offline_after = (uint32_t)params_int(o, "offline_after"),
        .sleep_interval_ms = params_ms(o, "sleep_interval"),
        .windows = dev->windows,
        .n_windows = dev->n_windows,
    };
    const char *why = sched_config_check(&sc);
    if (why)
        diag_at(r->d, r->file, n, rd_key(r, path, "options"), "%s", why);
}

int64_t config_exchange_ms(const struct params *core_options)
{
    return params_ms(core_options, "connect_timeout") +
           2 * params_ms(core_options, "reply_timeout");
}

// Read limits against the protocol's and against the entities that must fit in one read.
static void check_read_limits(struct cfg_loader *L, struct device_config *dev, const struct node *n,
                              const char *path)
{
    struct reader *r = &L->r;
    const struct driver_ops *drv = dev->model->driver;
    const struct params *o = &dev->core_options;
    const struct param_value *pv = params_value(o, "max_registers");
    for (size_t t = 0; t < drv->n_tables; t++) {
        const struct drv_table *tab = &drv->tables[t];
        if (tab->bits)
            continue;
        long long max = tab->limits.max_count;
        if (params_is_set(o, "max_registers")) {
            max = params_int(o, "max_registers");
            if (tab->max_count_limit && max > tab->max_count_limit) {
                diag_pos(r->d, pv ? pv->file : r->file, pv ? pv->line : n->line,
                         pv ? pv->col : n->col, rd_key(r, path, "options.max_registers"),
                         "the %s driver reads at most %u %s registers at a time, got %lld",
                         drv->name, tab->max_count_limit, tab->name, max);
                return;
            }
        }
        for (size_t i = 0; i < dev->model->n_entities; i++) {
            const struct entity *e = &dev->model->entities[i];
            if (dev->disabled[i] || e->source != SRC_REGISTER || e->reg.table != t ||
                e->reg.fmt.words <= max)
                continue;
            diag_pos(r->d, pv ? pv->file : r->file, pv ? pv->line : n->line, pv ? pv->col : n->col,
                     rd_key(r, path, pv ? "options.max_registers" : "model"),
                     "entity '%s' spans %u registers but one read may take only %lld (raise "
                     "max_registers or disable the entity)",
                     e->id, e->reg.fmt.words, max);
        }
    }
}

static void read_device(struct cfg_loader *L, struct device_config *dev, const struct node *n,
                        const char *path)
{
    struct reader *r = &L->r;
    dev->line = n->line;
    dev->col = n->col;
    if (rd_require(r, n, path, "id") && rd_str(r, n, path, "id", &dev->id) > 0) {
        if (!device_id_ok(dev->id)) {
            diag_at(r->d, r->file, node_get(n, "id"), rd_key(r, path, "id"),
                    "expected 1-64 characters of a-z, 0-9, _ and -, got '%s'", dev->id);
        } else if (strcmp(dev->id, "bridge") == 0) {
            diag_at(r->d, r->file, node_get(n, "id"), rd_key(r, path, "id"),
                    "'bridge' is reserved for energy2mqtt itself");
        }
    }
    rd_str(r, n, path, "name", &dev->name);
    if (!dev->name)
        dev->name = dev->id;
    if (rd_require(r, n, path, "model") && rd_str(r, n, path, "model", &dev->model_key) > 0)
        dev->model = load_model(L, node_get(n, "model"), rd_key(r, path, "model"), dev->model_key);
    if (!dev->model)
        return; // without the model the driver, and so the valid keys, are unknown
    const struct model *m = dev->model;
    const struct driver_ops *drv = m->driver;

    // The device entry's keys: generic ones plus the driver's settings.
    const char **allowed = arena_alloc(r->a, (drv->n_settings + 6) * sizeof(*allowed));
    size_t na = 0;
    allowed[na++] = "id";
    allowed[na++] = "name";
    allowed[na++] = "model";
    allowed[na++] = "options";
    allowed[na++] = "disable";
    for (size_t i = 0; i < drv->n_settings; i++)
        allowed[na++] = drv->settings[i].name;
    allowed[na] = NULL;
    rd_check_keys(r, n, path, allowed);

    params_init(&dev->settings, r->a, drv->settings, drv->n_settings);
    for (size_t i = 0; i < drv->n_settings; i++) {
        const struct param_def *d = &drv->settings[i];
        const struct node *v = node_get(n, d->name);
        if (v)
            params_read_value(&dev->settings, r, d, v, rd_key(r, path, d->name));
        if (d->required && !dev->settings.v[i].set)
            rd_require(r, n, path, d->name);
    }

    params_copy(&dev->core_options, r->a, &m->core_options);
    params_copy(&dev->driver_options, r->a, &m->driver_options);
    dev->windows = m->windows;
    dev->n_windows = m->n_windows;
    const struct node *opts = node_get(n, "options");
    if (opts)
        model_read_options(r, drv, opts, rd_key(r, path, "options"), &dev->core_options,
                           &dev->driver_options, &dev->windows, &dev->n_windows);
    add_driver_windows(r, dev);
    resolve_timing(L, dev, n, path);

    dev->disabled = arena_alloc(r->a, (m->n_entities ? m->n_entities : 1) * sizeof(bool));
    const struct node *dis = node_get(n, "disable");
    if (dis) {
        const char *dp = rd_key(r, path, "disable");
        if (rd_is_seq(r, dis, dp)) {
            for (size_t i = 0; i < dis->n; i++) {
                const char *id = NULL;
                if (rd_v_str(r, dis->items[i], rd_index(r, dp, i), &id) <= 0)
                    continue;
                const struct entity *e = model_find(m, id);
                if (!e)
                    diag_at(r->d, r->file, dis->items[i], rd_index(r, dp, i),
                            "model %s has no entity '%s'", m->key, id);
                else
                    dev->disabled[model_index(m, e)] = true;
            }
        }
    }

    check_read_limits(L, dev, n, path);
    if (drv->check) {
        struct drv_device dd = {dev->id, &dev->settings, &dev->core_options, &dev->driver_options};
        char err[200];
        if (drv->check(&dd, err, sizeof(err)) < 0)
            diag_at(r->d, r->file, n, path, "%s", err);
    }
}

// Two devices of one driver that cannot coexist (the same device twice, a shared bus with
// different settings), reported at the later one.
static void check_conflicts(struct cfg_loader *L, const struct node *devs)
{
    struct config *c = L->c;
    for (size_t i = 0; i < c->n_devices; i++) {
        const struct device_config *b = &c->devices[i];
        if (!b->model || !b->model->driver->conflict)
            continue;
        for (size_t k = 0; k < i; k++) {
            const struct device_config *a = &c->devices[k];
            if (!a->model || a->model->driver != b->model->driver)
                continue;
            struct drv_device da = {a->id, &a->settings, &a->core_options, &a->driver_options};
            struct drv_device db = {b->id, &b->settings, &b->core_options, &b->driver_options};
            char err[200];
            if (b->model->driver->conflict(&da, &db, err, sizeof(err)) < 0) {
                diag_at(L->r.d, L->r.file, devs->items[i], rd_index(&L->r, "devices", i),
                        "%s (device '%s', line %u)", err, a->id, a->line);
                break;
            }
        }
    }
}

static void add_entity_dir(struct config *c, struct arena *a, const char *dir)
{
    const char **dirs = arena_alloc(a, (c->n_entity_dirs + 1) * sizeof(*dirs));
    if (c->n_entity_dirs)
        memcpy(dirs, c->entity_dirs, c->n_entity_dirs * sizeof(*dirs));
    dirs[c->n_entity_dirs++] = arena_strdup(a, dir);
    c->entity_dirs = dirs;
}

static int load(const char *path, const char *text, size_t text_len, struct config **out,
                struct diag *d)
{
    *out = NULL;
    struct arena *a = arena_new();
    struct config *c = arena_alloc(a, sizeof(*c));
    c->arena = a;
    c->file = arena_strdup(a, path);
    c->log_level = -1;
    struct cfg_loader L = {.r = {.a = a, .d = d, .file = c->file, .expand_env = true}, .c = c};
    size_t before = diag_count(d);

    struct node *root = NULL;
    int parsed =
        text ? node_parse(a, c->file, text, text_len, &root, d) : node_load(a, path, &root, d);
    if (parsed < 0)
        goto out;
    if (!root) {
        diag_pos(d, path, 1, 1, "", "the configuration is empty");
        goto out;
    }
    if (!rd_is_map(&L.r, root, ""))
        goto out;
    rd_check_keys(&L.r, root, "", top_keys);
    read_mqtt(&L, node_get(root, "mqtt"));
    read_http(&L, node_get(root, "http"));

    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    c->state_dir = arena_strdup(a, dirname(dir));
    rd_str(&L.r, root, "", "state_dir", &c->state_dir);

    const char *lvl = NULL;
    if (rd_str(&L.r, root, "", "log_level", &lvl) > 0) {
        c->log_level = log_level_parse(lvl);
        if (c->log_level < 0)
            diag_at(d, c->file, node_get(root, "log_level"), "log_level",
                    "expected error, warning, info, debug or trace, got '%s'", lvl);
    }

    const struct node *ed = node_get(root, "entities_dir");
    if (ed && ed->kind == NODE_SEQ) {
        for (size_t i = 0; i < ed->n; i++) {
            const char *s = NULL;
            if (rd_v_str(&L.r, ed->items[i], rd_index(&L.r, "entities_dir", i), &s) > 0)
                add_entity_dir(c, a, s);
        }
    } else if (ed) {
        const char *s = NULL;
        if (rd_str(&L.r, root, "", "entities_dir", &s) > 0)
            add_entity_dir(c, a, s);
    }
    const char *env_dir = getenv("E2M_ENTITIES_DIR");
    if (env_dir && *env_dir)
        add_entity_dir(c, a, env_dir);
    // Installed: <prefix>/bin/energy2mqtt finds <prefix>/share/energy2mqtt/entities.
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        char share[PATH_MAX + 64];
        snprintf(share, sizeof(share), "%s/../share/energy2mqtt/entities", dirname(exe));
        if (access(share, R_OK) == 0)
            add_entity_dir(c, a, share);
    }
    add_entity_dir(c, a, E2M_ENTITIES_DIR);

    const struct node *devs = node_get(root, "devices");
    if (devs && !node_is_null(devs) && rd_is_seq(&L.r, devs, "devices")) {
        c->devices = arena_alloc(a, (devs->n ? devs->n : 1) * sizeof(*c->devices));
        c->n_devices = devs->n;
        for (size_t i = 0; i < devs->n; i++) {
            const char *p = rd_index(&L.r, "devices", i);
            if (!rd_is_map(&L.r, devs->items[i], p))
                continue;
            read_device(&L, &c->devices[i], devs->items[i], p);
            for (size_t k = 0; c->devices[i].id && k < i; k++) {
                if (c->devices[k].id && strcmp(c->devices[k].id, c->devices[i].id) == 0) {
                    diag_at(d, c->file, node_get(devs->items[i], "id"), rd_key(&L.r, p, "id"),
                            "duplicate device id (first used at line %u)", c->devices[k].line);
                    break;
                }
            }
        }
        check_conflicts(&L, devs);
    }
out:
    free(L.models);
    free(L.model_keys);
    if (diag_count(d) > before) {
        arena_free(a);
        return -EINVAL;
    }
    if (!text && L.password_in_file)
        warn_world_readable(path, "the MQTT password");
    if (c->mqtt.key_file)
        warn_world_readable(c->mqtt.key_file, "the MQTT client key");
    *out = c;
    return 0;
}

int config_load(const char *path, struct config **out, struct diag *d)
{
    return load(path, NULL, 0, out, d);
}

int config_load_text(const char *name, const char *text, size_t len, struct config **out,
                     struct diag *d)
{
    return load(name, text, len, out, d);
}

void config_free(struct config *c)
{
    if (c)
        arena_free(c->arena);
}

const struct device_config *config_find_device(const struct config *c, const char *id)
{
    for (size_t i = 0; i < c->n_devices; i++)
        if (c->devices[i].id && strcmp(c->devices[i].id, id) == 0)
            return &c->devices[i];
    return NULL;
}
