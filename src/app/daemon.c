// SPDX-License-Identifier: MIT
// The daemon: connection sequence, discovery, availability, commands, bridge diagnostics.
//
// On every connection to the broker:
//  1. the will is <base>/bridge/availability = offline (retained); publish online right away;
//  2. subscribe to commands, to Home Assistant's status topic, and for `scan_time` to every
//     retained discovery config, to learn what is already there;
//  3. after the scan: clear configs that are ours (they name our bridge availability topic)
//     but no longer configured; publish discovery for everything configured, skipping payloads
//     already retained byte for byte; then device availability and states.
// When Home Assistant announces itself online, the same is re-published after a jittered
// delay, except configs Home Assistant's user deleted (HA clears them with an empty retained
// message); the bridge's "republish discovery" button brings those back too.
#include "app/daemon.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "app/device.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/model.h"
#include "core/persist.h"
#include "core/state.h"
#include "drivers/driver.h"
#include "http/history.h"
#include "http/server.h"
#include "http/status.h"
#include "mqtt/command.h"
#include "mqtt/discovery.h"
#include "mqtt/link.h"
#include "mqtt/topic.h"

enum { BRIDGE_STATE_MS = 60000, PERSIST_FLUSH_MS = 60000, PERSIST_SOON_MS = 1000 };

struct daemon {
    const struct config *cfg;
    const struct mqtt_config *m;
    struct loop *loop;
    struct link *link;
    struct persist *persist;
    struct device **devices;
    size_t n_devices;
    int sigfd;
    int64_t started_mono;

    bool scanning;
    // What is remembered of discovery messages: topics and a hash of each payload, never the
    // payloads themselves (a fleet's discovery is megabytes).
    json_t *retained;  // discovery topic -> hash of the retained payload seen on the broker
    json_t *deleted;   // discovery topic -> true: Home Assistant's user removed it
    json_t *published; // discovery topic -> true: configured and published
    struct timer scan_timer, birth_timer, bridge_timer, persist_timer;
    char scan_device[600], scan_entity[600];
    uint64_t rng;
    uint64_t commands, commands_refused;
    struct log_budget cmd_log; // refused commands: 20 at once, then 2 per second

    // The status web server, and per device the power chart's entity (-1: none) and history;
    // both only when the server is on.
    struct http_server *http;
    int *chart;
    struct history *hist;
};

static void topic_printf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void topic_printf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

// ---- publishing -----------------------------------------------------------------------------

static void publish_availability(struct daemon *dm, struct device *d)
{
    char t[600];
    topic_printf(t, sizeof(t), "%s/%s/availability", dm->m->base_topic, device_config(d)->id);
    link_publish_str(dm->link, t, device_online(d) ? "online" : "offline", 1, true);
}

static void publish_state(struct daemon *dm, struct device *d)
{
    char t[600];
    topic_printf(t, sizeof(t), "%s/%s/state", dm->m->base_topic, device_config(d)->id);
    char *json = device_state_json(d);
    link_publish_str(dm->link, t, json, 0, false);
    free(json);
}

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

static void publish_bridge_state(void *arg)
{
    struct daemon *dm = arg;
    size_t online = 0;
    for (size_t i = 0; i < dm->n_devices; i++)
        online += device_online(dm->devices[i]);
    struct link_stats ls;
    link_get_stats(dm->link, &ls);
    json_t *o = json_pack(
        "{s:s,s:I,s:f,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I}}", "version", E2M_VERSION, "uptime",
        (json_int_t)((loop_now(dm->loop) - dm->started_mono) / 1000), "memory",
        (double)rss_kib() / 1024.0, "devices_online", (json_int_t)online, "devices",
        (json_int_t)dm->n_devices, "commands", (json_int_t)dm->commands, "commands_refused",
        (json_int_t)dm->commands_refused, "mqtt", "published", (json_int_t)ls.published, "dropped",
        (json_int_t)ls.dropped, "replaced", (json_int_t)ls.replaced);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4));
    char t[600];
    topic_printf(t, sizeof(t), "%s/bridge/state", dm->m->base_topic);
    link_publish_str(dm->link, t, text, 0, false);
    free(text);
    json_decref(o);
    loop_timer_set(dm->loop, &dm->bridge_timer, loop_now(dm->loop) + BRIDGE_STATE_MS,
                   publish_bridge_state, dm);
}

// How much of the discovery to send: after connecting, only what the broker does not already
// hold byte for byte; on Home Assistant's birth, everything but what its user deleted; on the
// republish button, everything.
enum resend { RESEND_CHANGED, RESEND_ALL, RESEND_UNDELETE };

struct sender {
    struct daemon *dm;
    enum resend how;
    size_t sent, kept, skipped;
};

// Publishes one discovery message as it is generated: nothing of a fleet's discovery is held
// in memory at once.
static void send_config(void *arg, const char *topic, json_t *payload)
{
    struct sender *k = arg;
    struct daemon *dm = k->dm;
    json_object_set_new(dm->published, topic, json_true());
    if (json_object_get(dm->deleted, topic)) {
        k->skipped++;
        return;
    }
    char *text = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    size_t len = strlen(text);
    json_t *seen = json_object_get(dm->retained, topic);
    if (k->how == RESEND_CHANGED && seen &&
        (uint64_t)json_integer_value(seen) == link_payload_hash(text, len)) {
        k->kept++;
    } else {
        link_publish(dm->link, topic, text, len, 1, true);
        k->sent++;
    }
    free(text);
}

// Publishes discovery, availability and states.
static void publish_everything(struct daemon *dm, enum resend how)
{
    if (!link_connected(dm->link))
        return;
    char t[600];
    topic_printf(t, sizeof(t), "%s/bridge/availability", dm->m->base_topic);
    link_publish_str(dm->link, t, "online", 1, true);

    if (how == RESEND_UNDELETE)
        json_object_clear(dm->deleted);
    json_object_clear(dm->published);
    struct sender k = {.dm = dm, .how = how};
    discovery_bridge(dm->m, E2M_VERSION, send_config, &k);
    for (size_t i = 0; i < dm->n_devices; i++)
        discovery_device(dm->m, E2M_VERSION, device_config(dm->devices[i]), NULL, send_config, &k);
    log_info("mqtt",
             "discovery: %zu published, %zu already current, %zu deleted in Home "
             "Assistant",
             k.sent, k.kept, k.skipped);
    for (size_t i = 0; i < dm->n_devices; i++) {
        publish_availability(dm, dm->devices[i]);
        publish_state(dm, dm->devices[i]);
    }
    publish_bridge_state(dm);
}

static void scan_done(void *arg)
{
    struct daemon *dm = arg;
    dm->scanning = false;
    link_unsubscribe(dm->link, dm->scan_device);
    link_unsubscribe(dm->link, dm->scan_entity);
    publish_everything(dm, RESEND_CHANGED);
    // Clear what we once published but no longer configure.
    const char *topic;
    json_t *v;
    size_t cleared = 0;
    json_object_foreach(dm->retained, topic, v)
    {
        if (!json_object_get(dm->published, topic)) {
            link_publish(dm->link, topic, "", 0, 1, true);
            cleared++;
        }
    }
    json_object_clear(dm->retained);
    if (cleared)
        log_info("mqtt", "cleared %zu discovery config%s no longer configured", cleared,
                 cleared == 1 ? "" : "s");
}

static void birth_republish(void *arg)
{
    struct daemon *dm = arg;
    log_info("mqtt", "Home Assistant came online: re-publishing");
    publish_everything(dm, RESEND_ALL);
}

// ---- MQTT events ----------------------------------------------------------------------------

static void on_connected(void *arg)
{
    struct daemon *dm = arg;
    char t[600];
    topic_printf(t, sizeof(t), "%s/bridge/availability", dm->m->base_topic);
    link_publish_str(dm->link, t, "online", 1, true);
    topic_printf(t, sizeof(t), "%s/+/+/set", dm->m->base_topic);
    link_subscribe(dm->link, t, 1);
    link_subscribe(dm->link, dm->m->birth_topic, 1);
    // Drivers whose transport is MQTT.
    for (size_t i = 0; i < dm->n_devices; i++) {
        const char *const *filters;
        size_t n = device_mqtt_filters(dm->devices[i], &filters);
        for (size_t k = 0; k < n; k++)
            link_subscribe(dm->link, filters[k], 1);
    }
    // Our own config topics stay subscribed so a deletion in Home Assistant is noticed.
    for (size_t i = 0; i < dm->n_devices; i++) {
        char node[300];
        discovery_node_id(dm->m, device_config(dm->devices[i])->id, node, sizeof(node));
        if (dm->m->discovery == DISCOVERY_DEVICE)
            topic_printf(t, sizeof(t), "%s/device/%s/config", dm->m->discovery_prefix, node);
        else
            topic_printf(t, sizeof(t), "%s/+/%s/+/config", dm->m->discovery_prefix, node);
        link_subscribe(dm->link, t, 1);
    }
    json_object_clear(dm->retained);
    dm->scanning = true;
    link_subscribe(dm->link, dm->scan_device, 1);
    link_subscribe(dm->link, dm->scan_entity, 1);
    loop_timer_set(dm->loop, &dm->scan_timer, loop_now(dm->loop) + dm->m->scan_ms, scan_done, dm);
}

static void on_disconnected(void *arg, const char *why)
{
    struct daemon *dm = arg;
    (void)why;
    loop_timer_cancel(dm->loop, &dm->scan_timer);
    loop_timer_cancel(dm->loop, &dm->birth_timer);
    dm->scanning = false;
}

static struct device *find_device(struct daemon *dm, const char *id)
{
    for (size_t i = 0; i < dm->n_devices; i++)
        if (strcmp(device_config(dm->devices[i])->id, id) == 0)
            return dm->devices[i];
    return NULL;
}

static void refuse(struct daemon *dm, struct device *d, const char *dev, const char *ent,
                   const char *why)
{
    dm->commands_refused++;
    log_budgeted(&dm->cmd_log, loop_now(dm->loop), LOG_LVL_WARN, "command", "refused %s/%s: %s",
                 dev, ent, why);
    if (d)
        publish_state(dm, d); // the Home Assistant control snaps back to the real value
}

static void on_command(struct daemon *dm, const char *topic, const uint8_t *payload, size_t len,
                       bool retained)
{
    char dev[COMMAND_MAX_ID + 1], ent[COMMAND_MAX_ID + 1], why[200];
    if (command_parse_topic(dm->m->base_topic, topic, dev, ent) != CMD_OK) {
        refuse(dm, NULL, "?", "?", "malformed command topic");
        return;
    }
    dm->commands++;
    if (retained) {
        // A retained command would be replayed on every reconnect: never act on one.
        refuse(dm, find_device(dm, dev), dev, ent, "retained commands are ignored");
        return;
    }
    if (strcmp(dev, "bridge") == 0) {
        if (strcmp(ent, "republish") == 0 && command_is_press(payload, len)) {
            log_info("mqtt", "republish requested");
            publish_everything(dm, RESEND_UNDELETE);
        } else {
            refuse(dm, NULL, dev, ent, "unknown bridge command");
        }
        return;
    }
    struct device *d = find_device(dm, dev);
    if (!d) {
        refuse(dm, NULL, dev, ent, "no such device");
        return;
    }
    const struct device_config *dc = device_config(d);
    const struct entity *e = model_find(dc->model, ent);
    if (!e || dc->disabled[model_index(dc->model, e)]) {
        refuse(dm, d, dev, ent, "no such entity");
        return;
    }
    struct command_value cv;
    enum command_error err = command_validate(e, payload, len, &cv, why, sizeof(why));
    if (err != CMD_OK) {
        refuse(dm, d, dev, ent, why);
        return;
    }
    if (device_command(d, e, &cv, why, sizeof(why)) < 0)
        refuse(dm, d, dev, ent, why);
}

// Whether `topic` is <prefix>/.../config.
static bool is_config_topic(const struct mqtt_config *m, const char *topic)
{
    size_t p = strlen(m->discovery_prefix), n = strlen(topic);
    return strncmp(topic, m->discovery_prefix, p) == 0 && topic[p] == '/' && n > 7 &&
           strcmp(topic + n - 7, "/config") == 0;
}

// Messages for drivers whose transport is MQTT. Returns whether any device took it.
static bool route_to_devices(struct daemon *dm, const char *topic, const uint8_t *payload,
                             size_t len, bool retained)
{
    bool taken = false;
    for (size_t i = 0; i < dm->n_devices; i++) {
        const char *const *filters;
        size_t n = device_mqtt_filters(dm->devices[i], &filters);
        for (size_t k = 0; k < n; k++) {
            if (topic_matches(filters[k], topic)) {
                device_mqtt_message(dm->devices[i], topic, payload, len, retained);
                taken = true;
                break;
            }
        }
    }
    return taken;
}

static void on_message(void *arg, const char *topic, const uint8_t *payload, size_t len,
                       bool retained)
{
    struct daemon *dm = arg;
    if (route_to_devices(dm, topic, payload, len, retained))
        return;
    if (strcmp(topic, dm->m->birth_topic) == 0) {
        if (len == 6 && memcmp(payload, "online", 6) == 0) {
            // HA may not be ready the moment it says so; wait, with jitter across instances.
            dm->rng = dm->rng * 6364136223846793005ULL + 1;
            double j = 0.5 + (double)(dm->rng >> 33) / 2147483648.0; // 0.5 .. 1.5
            int64_t wait = (int64_t)((double)dm->m->birth_delay_ms * j);
            loop_timer_set(dm->loop, &dm->birth_timer, loop_now(dm->loop) + wait, birth_republish,
                           dm);
        }
        return;
    }
    if (is_config_topic(dm->m, topic))
        return; // config topics arrive as digests (on_digest)
    on_command(dm, topic, payload, len, retained);
}

// Discovery configs on the broker, ours and every other integration's: the link hands over
// their size, a hash, and whether they name our bridge's availability topic (then they are
// ours), never the payload itself.
static void on_digest(void *arg, const char *topic, size_t len, bool retained, uint64_t hash,
                      bool ours)
{
    struct daemon *dm = arg;
    if (!is_config_topic(dm->m, topic))
        return;
    if (len == 0) {
        // An empty config for one of ours: Home Assistant's user deleted it.
        if (!dm->scanning && json_object_get(dm->published, topic)) {
            log_info("mqtt", "%s was deleted in Home Assistant; not re-publishing it", topic);
            json_object_set_new(dm->deleted, topic, json_true());
        }
        json_object_del(dm->retained, topic);
        return;
    }
    if (dm->scanning && retained && ours)
        json_object_set_new(dm->retained, topic, json_integer((json_int_t)hash));
}

// ---- devices, timers, signals ---------------------------------------------------------------

static void note_history(struct daemon *dm, struct device *d);

static void on_device_event(void *arg, struct device *d, enum device_event ev)
{
    struct daemon *dm = arg;
    if (ev == DEVICE_STATE && dm->hist)
        note_history(dm, d);
    if (!link_connected(dm->link) || dm->scanning)
        return; // everything is published after the connection sequence anyway
    if (ev == DEVICE_AVAILABILITY)
        publish_availability(dm, d);
    else
        publish_state(dm, d);
}

static int hook_subscribe(void *arg, const char *filter)
{
    struct daemon *dm = arg;
    // Before the connection exists this is a no-op: on_connected subscribes every filter.
    return link_connected(dm->link) ? link_subscribe(dm->link, filter, 1) : 0;
}

static int hook_publish(void *arg, const char *topic, const void *payload, size_t len, bool retain)
{
    struct daemon *dm = arg;
    return link_publish(dm->link, topic, payload, len, 1, retain);
}

static void flush_persist(void *arg)
{
    struct daemon *dm = arg;
    persist_flush(dm->persist);
    loop_timer_set(dm->loop, &dm->persist_timer, loop_now(dm->loop) + PERSIST_FLUSH_MS,
                   flush_persist, dm);
}

// A driver learned a serial: without it on disk, a restart would wait for the device to tell it
// again. Brings the next flush forward instead of writing at once, so a burst of changes (every
// device learning at start) costs one write.
static void hook_persist_soon(void *arg)
{
    struct daemon *dm = arg;
    int64_t due = loop_now(dm->loop) + PERSIST_SOON_MS;
    if (!loop_timer_armed(&dm->persist_timer) || dm->persist_timer.due_ms > due)
        loop_timer_set(dm->loop, &dm->persist_timer, due, flush_persist, dm);
}

static void on_signal(void *arg, uint32_t events)
{
    struct daemon *dm = arg;
    (void)events;
    struct signalfd_siginfo si;
    if (read(dm->sigfd, &si, sizeof(si)) == sizeof(si)) {
        log_info("daemon", "signal %u: stopping", si.ssi_signo);
        loop_stop(dm->loop);
    }
}

// ---- status web server ----------------------------------------------------------------------

// The entity the power chart shows: the device's main power reading when it has one of the
// usual names, else its first power sensor.
static int chart_entity(const struct device *d)
{
    const struct model *m = device_config(d)->model;
    static const char *const preferred[] = {"power", "ac_power", "pv_power", NULL};
    for (size_t k = 0; preferred[k]; k++) {
        const struct entity *e = model_find(m, preferred[k]);
        size_t i = e ? model_index(m, e) : 0;
        if (e && device_entity_shown(d, i) && e->component == COMP_SENSOR && !e->text)
            return (int)i;
    }
    for (size_t i = 0; i < m->n_entities; i++) {
        const struct entity *e = &m->entities[i];
        if (device_entity_shown(d, i) && e->component == COMP_SENSOR && e->device_class &&
            strcmp(e->device_class, "power") == 0 && !e->category)
            return (int)i;
    }
    return -1;
}

static size_t device_index(const struct daemon *dm, const struct device *d)
{
    for (size_t i = 0; i < dm->n_devices; i++)
        if (dm->devices[i] == d)
            return i;
    return dm->n_devices;
}

static void note_history(struct daemon *dm, struct device *d)
{
    size_t i = device_index(dm, d);
    if (i == dm->n_devices || dm->chart[i] < 0)
        return;
    const struct value *v = &device_values(d)->v[dm->chart[i]];
    if (v->kind == VALUE_NUMBER)
        history_add(&dm->hist[i], loop_wall(dm->loop), v->num);
}

static void fill_bridge(struct daemon *dm, struct status_bridge *b)
{
    *b = (struct status_bridge){
        .version = E2M_VERSION,
        .now_ms = loop_wall(dm->loop),
        .uptime_ms = loop_now(dm->loop) - dm->started_mono,
        .rss_bytes = rss_kib() * 1024,
        .commands = dm->commands,
        .commands_refused = dm->commands_refused,
    };
    link_get_stats(dm->link, &b->mqtt);
}

static void fill_device(struct daemon *dm, size_t i, struct status_device *sd)
{
    struct device *d = dm->devices[i];
    const struct device_config *dc = device_config(d);
    *sd = (struct status_device){
        .id = dc->id,
        .name = dc->name,
        .model = dc->model->key,
        .manufacturer = dc->model->manufacturer,
        .driver = dc->model->driver->name,
        .state = device_sched_state(d),
        .next_request_ms = device_next_request_ms(d),
    };
    device_get_stats(d, &sd->stats);
    device_sched_status(d, &sd->sched);
    sd->last_ok_ms = sd->stats.last_ok_wall_ms;
    sd->n_errors = device_last_errors(d, sd->errors);
    if (dm->hist && dm->chart[i] >= 0) {
        const struct entity *e = &dc->model->entities[dm->chart[i]];
        sd->history = &dm->hist[i];
        sd->history_entity = e->id;
        sd->history_unit = e->unit;
    }
}

// The bridge and every device as the status module sees them; the caller frees the array.
static struct status_device *fill_all(struct daemon *dm, struct status_bridge *b)
{
    fill_bridge(dm, b);
    struct status_device *sd = xcalloc(dm->n_devices + 1, sizeof(*sd));
    for (size_t i = 0; i < dm->n_devices; i++)
        fill_device(dm, i, &sd[i]);
    return sd;
}

static json_t *route_health(void *arg)
{
    struct daemon *dm = arg;
    struct status_bridge b;
    struct status_device *sd = fill_all(dm, &b);
    json_t *j = status_health(&b, sd, dm->n_devices);
    free(sd);
    return j;
}

static json_t *route_devices(void *arg)
{
    struct daemon *dm = arg;
    json_t *a = json_array();
    for (size_t i = 0; i < dm->n_devices; i++) {
        struct status_device sd;
        fill_device(dm, i, &sd);
        json_array_append_new(a, status_device_summary(&sd));
    }
    return a;
}

// The text of a pending command, as the page shows it.
static void pending_text(const struct entity *e, const struct command_value *cv, char *buf,
                         size_t n)
{
    if (e->component == COMP_SELECT && cv->label)
        snprintf(buf, n, "%s", cv->label);
    else if (e->component == COMP_SWITCH)
        snprintf(buf, n, "%s", cv->on ? "ON" : "OFF");
    else if (e->component == COMP_TEXT)
        snprintf(buf, n, "%s", cv->text);
    else if (e->component == COMP_BUTTON)
        snprintf(buf, n, "PRESS");
    else
        snprintf(buf, n, "%g", cv->value);
}

static json_t *route_device(void *arg, const char *id)
{
    struct daemon *dm = arg;
    struct device *d = find_device(dm, id);
    if (!d)
        return NULL;
    size_t i = device_index(dm, d);
    struct status_device sd;
    fill_device(dm, i, &sd);
    const struct model *m = device_config(d)->model;
    const struct state *st = device_values(d);
    struct status_entity *ents = xcalloc(m->n_entities + 1, sizeof(*ents));
    char(*pend)[COMMAND_MAX_TEXT + 1] = xcalloc(m->n_entities + 1, sizeof(*pend));
    size_t n = 0;
    for (size_t k = 0; k < m->n_entities; k++) {
        if (!device_entity_shown(d, k))
            continue;
        const struct entity *e = &m->entities[k];
        struct status_entity *se = &ents[n++];
        *se = (struct status_entity){
            .id = e->id,
            .name = e->name,
            .component = component_name(e->component),
            .unit = e->unit,
            .device_class = e->device_class,
            .category = e->category,
            .enabled_by_default = e->enabled_by_default,
            .value = e->component == COMP_BUTTON ? NULL : &st->v[k],
        };
        const struct command_value *cv;
        if (device_write_pending(d, k, &cv)) {
            pending_text(e, cv, pend[k], sizeof(pend[k]));
            se->pending = true;
            se->pending_txt = pend[k];
        }
    }
    sd.entities = ents;
    sd.n_entities = n;
    json_t *j = status_device_detail(&sd, loop_wall(dm->loop));
    free(ents);
    free(pend);
    return j;
}

static char *route_metrics(void *arg)
{
    struct daemon *dm = arg;
    struct status_bridge b;
    struct status_device *sd = fill_all(dm, &b);
    char *text = status_metrics(&b, sd, dm->n_devices);
    free(sd);
    return text;
}

static void start_http(struct daemon *dm)
{
    dm->chart = xcalloc(dm->n_devices + 1, sizeof(*dm->chart));
    dm->hist = xcalloc(dm->n_devices + 1, sizeof(*dm->hist));
    for (size_t i = 0; i < dm->n_devices; i++) {
        dm->chart[i] = chart_entity(dm->devices[i]);
        history_init(&dm->hist[i]);
    }
    struct http_routes r = {route_health, route_devices, route_device, route_metrics, dm};
    dm->http = http_server_start(dm->loop, &dm->cfg->http, &r);
}

static int setup_signals(struct daemon *dm)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    // Blocked before any thread starts, so every thread inherits the mask and the signals
    // arrive only through the signalfd.
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    dm->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (dm->sigfd < 0)
        return -errno;
    return loop_watch(dm->loop, dm->sigfd, EPOLLIN, on_signal, dm);
}

// Every device holds a descriptor; the usual soft limit (1024) is below what a fleet needs,
// while the hard limit is far above it. The descriptors below FD_SETSIZE are kept for
// libmodbus (see core/tcp.c), so the daemon's own sockets need room above that line.
static void raise_fd_limit(size_t n_devices)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)FD_SETSIZE + n_devices + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_debug("daemon", "descriptor limit raised from %llu to %llu", (unsigned long long)old,
                  (unsigned long long)rl.rlim_cur);
    if (rl.rlim_cur < want)
        log_warn("daemon",
                 "%zu devices need about %llu file descriptors, the limit is %llu: raise it "
                 "(ulimit -n)",
                 n_devices, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

int daemon_run(const struct config *cfg)
{
    struct daemon dm = {.cfg = cfg, .m = &cfg->mqtt, .sigfd = -1};
    dm.cmd_log.burst = 20;
    dm.cmd_log.per_second = 2;
    int rc = 1;
    dm.rng = (uint64_t)clock_wall_ms() ^ (uint64_t)getpid();
    dm.loop = loop_new();
    if (!dm.loop || setup_signals(&dm) < 0) {
        log_error("daemon", "cannot set up the event loop: %s", strerror(errno));
        goto out;
    }
    dm.started_mono = loop_now(dm.loop);
    raise_fd_limit(cfg->n_devices);
    dm.retained = json_object();
    dm.deleted = json_object();
    dm.published = json_object();
    topic_printf(dm.scan_device, sizeof(dm.scan_device), "%s/device/+/config",
                 dm.m->discovery_prefix);
    topic_printf(dm.scan_entity, sizeof(dm.scan_entity), "%s/+/+/+/config", dm.m->discovery_prefix);

    dm.persist = persist_open(cfg->state_dir);
    struct device_hooks hooks = {.event = on_device_event,
                                 .mqtt_subscribe = hook_subscribe,
                                 .mqtt_publish = hook_publish,
                                 .persist_soon = hook_persist_soon,
                                 .arg = &dm};
    dm.devices = xcalloc(cfg->n_devices + 1, sizeof(*dm.devices));
    for (size_t i = 0; i < cfg->n_devices; i++) {
        struct device *d = device_new(dm.loop, &cfg->devices[i], dm.persist, &hooks);
        if (d)
            dm.devices[dm.n_devices++] = d;
    }

    char client_id[128], will[600];
    if (cfg->mqtt.client_id) {
        snprintf(client_id, sizeof(client_id), "%s", cfg->mqtt.client_id);
    } else {
        // Two instances must never share an id (the broker would drop one for the other).
        uint32_t suffix;
        if (getrandom(&suffix, sizeof(suffix), 0) != sizeof(suffix))
            suffix = (uint32_t)(dm.rng * 0x9e3779b97f4a7c15ULL >> 32);
        char base[64];
        discovery_sanitize(cfg->mqtt.base_topic, base, sizeof(base));
        snprintf(client_id, sizeof(client_id), "%s-%08x", base, suffix);
    }
    topic_printf(will, sizeof(will), "%s/bridge/availability", dm.m->base_topic);
    struct link_config lc = {
        .host = dm.m->host,
        .port = dm.m->port,
        .tls = dm.m->tls,
        .ca_file = dm.m->ca_file,
        .cert_file = dm.m->cert_file,
        .key_file = dm.m->key_file,
        .tls_insecure = dm.m->tls_insecure,
        .username = dm.m->username,
        .password = dm.m->password,
        .client_id = client_id,
        .keepalive_s = (int)(dm.m->keepalive_ms / 1000),
        .will_topic = will,
        .will_payload = "offline",
    };
    // Every config topic we subscribe to (the scan, our own) is digested, not copied; ours
    // carry `"t":"<base>/bridge/availability"` in their compact JSON.
    const char *digest[] = {dm.scan_device, dm.scan_entity};
    char marker[700];
    discovery_ours_marker(dm.m, marker, sizeof(marker));
    lc.digest_filters = digest;
    lc.n_digest_filters = 2;
    lc.digest_marker = marker;
    struct link_handlers lh = {on_connected, on_disconnected, on_message, on_digest, &dm};
    dm.link = link_new(dm.loop, &lc, &lh);
    if (!dm.link)
        goto out;
    log_info("daemon", "energy2mqtt %s: %zu device%s, broker %s:%d%s, base topic %s", E2M_VERSION,
             dm.n_devices, dm.n_devices == 1 ? "" : "s", dm.m->host, dm.m->port,
             dm.m->tls ? " (TLS)" : "", dm.m->base_topic);
    if (cfg->http.port) {
        start_http(&dm);
        if (!dm.http)
            goto out;
    }
    link_start(dm.link);
    // The flush timer first: a driver that learns something as it starts brings it forward.
    loop_timer_set(dm.loop, &dm.persist_timer, loop_now(dm.loop) + PERSIST_FLUSH_MS, flush_persist,
                   &dm);
    for (size_t i = 0; i < dm.n_devices; i++)
        device_start(dm.devices[i]);

    rc = loop_run(dm.loop) < 0 ? 1 : 0;

    // A clean disconnect does not trigger the will: say offline ourselves.
    if (link_connected(dm.link))
        link_publish_str(dm.link, will, "offline", 1, true);
out:
    http_server_stop(dm.http);
    free(dm.chart);
    free(dm.hist);
    link_free(dm.link, 2000);
    for (size_t i = 0; i < dm.n_devices; i++)
        device_free(dm.devices[i]);
    free(dm.devices);
    if (dm.persist) {
        persist_flush(dm.persist);
        persist_close(dm.persist);
    }
    json_decref(dm.retained);
    json_decref(dm.deleted);
    json_decref(dm.published);
    if (dm.sigfd >= 0)
        close(dm.sigfd);
    loop_free(dm.loop);
    return rc;
}
