// SPDX-License-Identifier: MIT
// voelkerb PowerMeter / SmartMeter: the session over TCP port 54321, or over the meter's own
// MQTT topics.
//
// TCP mode: one persistent connection (the meter allows three clients). The meter greets
// every client with an info line and, at log level info, sends an empty liveness line every
// second; a link that has been silent for `liveness` is dead and is reconnected at the next
// poll. Each poll group is one command (getPower, getVoltage, getCurrent, getEnergy,
// getPeriod, info) whose reply is matched by its "cmd". A keepalive "!" goes out every
// `keepalive`. The relay is switched with {"cmd":"switch","payload":{"value":1|0}} and
// confirmed from the next info (the scheduler reads the info group back after a write).
//
// MQTT mode: the meter publishes powermeter/<name>/state/sample itself every few seconds;
// those samples are pushed values and prove the meter alive. A poll of a sample group only
// checks freshness (the meter has no availability topic); a poll of the info group asks
// powermeter/<name>/state, answered on powermeter/<name>/state/info with the relay state.
// (The firmware answers {"cmd":"info"} only to its last TCP client, so type and firmware
// cannot be asked over MQTT: the samples tell the type, since only the PowerMeter sends
// inUse, and the `type`/`firmware` settings override.) The relay is switched on powermeter/<name>/switch and confirmed by
// the retained powermeter/<name>/state/switch. Nothing is ever published to the broadcast
// topics powermeter/{cmd,switch,sample}: every topic carries the meter's name.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/driver.h"
#include "drivers/smartmeter/smartmeter_codec.h"

enum group { G_POWER, G_VOLTAGE, G_CURRENT, G_ENERGY, G_FREQUENCY, G_INFO, N_GROUPS };

static const struct drv_group groups[N_GROUPS] = {
    {"power", NULL, false},  {"voltage", NULL, false},   {"current", NULL, false},
    {"energy", NULL, false}, {"frequency", NULL, false}, {"info", NULL, false},
};
static const char *const group_cmd[N_GROUPS] = {"getPower",  "getVoltage", "getCurrent",
                                                "getEnergy", "getPeriod",  "info"};

enum field {
    F_POWER,
    F_REACTIVE_POWER,
    F_APPARENT_POWER,
    F_IN_USE,
    F_POWER_L1,
    F_POWER_L2,
    F_POWER_L3,
    F_VOLTAGE,
    F_VOLTAGE_L1,
    F_VOLTAGE_L2,
    F_VOLTAGE_L3,
    F_CURRENT,
    F_CURRENT_L1,
    F_CURRENT_L2,
    F_CURRENT_L3,
    F_ENERGY,
    F_ENERGY_L1,
    F_ENERGY_L2,
    F_ENERGY_L3,
    F_FREQUENCY,
    F_RELAY,
    F_RSSI,
    F_FIRMWARE,
    N_FIELDS
};

static const struct drv_field fields[] = {
    [F_POWER] = {"power", G_POWER, false, false},
    [F_REACTIVE_POWER] = {"reactive_power", G_POWER, false, false},
    [F_APPARENT_POWER] = {"apparent_power", G_POWER, false, false},
    [F_IN_USE] = {"in_use", G_POWER, false, false},
    [F_POWER_L1] = {"power_l1", G_POWER, false, false},
    [F_POWER_L2] = {"power_l2", G_POWER, false, false},
    [F_POWER_L3] = {"power_l3", G_POWER, false, false},
    [F_VOLTAGE] = {"voltage", G_VOLTAGE, false, false},
    [F_VOLTAGE_L1] = {"voltage_l1", G_VOLTAGE, false, false},
    [F_VOLTAGE_L2] = {"voltage_l2", G_VOLTAGE, false, false},
    [F_VOLTAGE_L3] = {"voltage_l3", G_VOLTAGE, false, false},
    [F_CURRENT] = {"current", G_CURRENT, false, false},
    [F_CURRENT_L1] = {"current_l1", G_CURRENT, false, false},
    [F_CURRENT_L2] = {"current_l2", G_CURRENT, false, false},
    [F_CURRENT_L3] = {"current_l3", G_CURRENT, false, false},
    [F_ENERGY] = {"energy", G_ENERGY, false, false},
    [F_ENERGY_L1] = {"energy_l1", G_ENERGY, false, false},
    [F_ENERGY_L2] = {"energy_l2", G_ENERGY, false, false},
    [F_ENERGY_L3] = {"energy_l3", G_ENERGY, false, false},
    [F_FREQUENCY] = {"frequency", G_FREQUENCY, false, false},
    [F_RELAY] = {"relay", G_INFO, false, true},
    [F_RSSI] = {"rssi", G_INFO, false, false},
    [F_FIRMWARE] = {"firmware", G_INFO, true, false},
};

// Which codec value feeds which field.
static const struct {
    enum sm_value value;
    enum field field;
} feeds[] = {
    {SM_POWER, F_POWER},
    {SM_REACTIVE_POWER, F_REACTIVE_POWER},
    {SM_APPARENT_POWER, F_APPARENT_POWER},
    {SM_IN_USE, F_IN_USE},
    {SM_POWER_L1, F_POWER_L1},
    {SM_POWER_L2, F_POWER_L2},
    {SM_POWER_L3, F_POWER_L3},
    {SM_VOLTAGE, F_VOLTAGE},
    {SM_VOLTAGE_L1, F_VOLTAGE_L1},
    {SM_VOLTAGE_L2, F_VOLTAGE_L2},
    {SM_VOLTAGE_L3, F_VOLTAGE_L3},
    {SM_CURRENT, F_CURRENT},
    {SM_CURRENT_L1, F_CURRENT_L1},
    {SM_CURRENT_L2, F_CURRENT_L2},
    {SM_CURRENT_L3, F_CURRENT_L3},
    {SM_ENERGY, F_ENERGY},
    {SM_ENERGY_L1, F_ENERGY_L1},
    {SM_ENERGY_L2, F_ENERGY_L2},
    {SM_ENERGY_L3, F_ENERGY_L3},
    {SM_FREQUENCY, F_FREQUENCY},
    {SM_RELAY, F_RELAY},
    {SM_RSSI, F_RSSI},
};

static const char *const actions[] = {"restart", "reset_energy", NULL};

static const char *const modes[] = {"tcp", "mqtt", NULL};
static const char *const types[] = {"auto", "powermeter", "smartmeter", NULL};

static const struct param_def settings[] = {
    {.name = "host", .type = PARAM_STR, .help = "TCP mode: the meter's host name or address"},
    {.name = "port", .type = PARAM_INT, .def = "54321", .min = 1, .max = 65535},
    {.name = "mode",
     .type = PARAM_CHOICE,
     .def = "tcp",
     .choices = modes,
     .help = "tcp: talk to the meter; mqtt: read what it publishes on the broker"},
    {.name = "meter",
     .type = PARAM_STR,
     .help = "MQTT mode: the meter's name (the <name> of powermeter/<name>/...)"},
    {.name = "type",
     .type = PARAM_CHOICE,
     .def = "auto",
     .choices = types,
     .help = "MQTT mode: the kind of meter (auto: told by its samples)"},
    {.name = "firmware",
     .type = PARAM_INT,
     .def = "0",
     .min = 0,
     .max = 9,
     .help = "MQTT mode: the firmware's major version; 1 for a PowerMeter 1.x, whose "
             "samples carry kWh (0: assume 2.x)"},
};

static const struct param_def options[] = {
    {.name = "keepalive",
     .type = PARAM_DURATION,
     .def = "20s",
     .min = 1000,
     .max = 600000,
     .help = "TCP mode: how often to send the keepalive"},
    {.name = "liveness",
     .type = PARAM_DURATION,
     .def = "5s",
     .min = 1000,
     .max = 600000,
     .help = "TCP mode: a link silent this long is dead"},
    {.name = "sample_interval",
     .type = PARAM_DURATION,
     .def = "5s",
     .min = 100,
     .max = 3600000,
     .help = "MQTT mode: how often the meter publishes a sample"},
};

enum { TICK_MS = 1000 };

struct sm {
    struct drv_ctx *ctx;
    char id[65];
    bool mqtt;
    char host[256];
    int port;
    char name[64];
    char topic[3][160]; // state/sample, state/switch (retained), state/info (replies)
    enum sm_device device;
    int firmware_major;
    int64_t keepalive_ms, liveness_ms, sample_ms;

    // The job in flight.
    bool waiting;
    struct drv_job job;
    char expect[32]; // TCP: the reply's "cmd"
    int want_relay;  // MQTT switch: the state it waits for (-1 none)

    int64_t last_rx_ms, last_tx_ms, last_sample_ms;
};

static int sm_check(const struct drv_device *dev, char *err, size_t n)
{
    bool mqtt = params_choice(dev->settings, "mode") == 1;
    if (!mqtt && !params_is_set(dev->settings, "host")) {
        snprintf(err, n, "TCP mode needs host (the meter's address)");
        return -EINVAL;
    }
    if (mqtt) {
        const char *name = params_str(dev->settings, "meter");
        if (!name || !*name || strpbrk(name, "/+#") || strlen(name) > 32) {
            snprintf(err, n,
                     "MQTT mode needs meter: the meter's name, 1-32 characters without "
                     "/ + #");
            return -EINVAL;
        }
    }
    return 0;
}

static int sm_open(const struct drv_device *dev, void **state)
{
    struct sm *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s", dev->id);
    m->mqtt = params_choice(dev->settings, "mode") == 1;
    const char *host = params_str(dev->settings, "host");
    snprintf(m->host, sizeof(m->host), "%s", host ? host : "");
    m->port = (int)params_int(dev->settings, "port");
    const char *name = params_str(dev->settings, "meter");
    snprintf(m->name, sizeof(m->name), "%s", name ? name : "");
    m->device = (enum sm_device)params_choice(dev->settings, "type");
    m->firmware_major = (int)params_int(dev->settings, "firmware");
    m->keepalive_ms = params_ms(dev->options, "keepalive");
    m->liveness_ms = params_ms(dev->options, "liveness");
    m->sample_ms = params_ms(dev->options, "sample_interval");
    m->want_relay = -1;
    snprintf(m->topic[0], sizeof(m->topic[0]), "powermeter/%s/state/sample", m->name);
    snprintf(m->topic[1], sizeof(m->topic[1]), "powermeter/%s/state/switch", m->name);
    snprintf(m->topic[2], sizeof(m->topic[2]), "powermeter/%s/state/info", m->name);
    *state = m;
    return 0;
}

static void sm_close(void *state)
{
    free(state);
}

// Pushes every value the codec found.
static void emit_values(struct sm *m, const struct sm_values *v)
{
    for (size_t i = 0; i < sizeof(feeds) / sizeof(feeds[0]); i++)
        if (v->has[feeds[i].value])
            drv_value(m->ctx, (uint16_t)feeds[i].field, v->v[feeds[i].value]);
    // The PowerMeter's samples say inUse; replies do not: derive it the same way (> 2 W).
    if (!v->has[SM_IN_USE] && v->has[SM_POWER] && m->device != SM_DEVICE_SMARTMETER)
        drv_value(m->ctx, F_IN_USE, v->v[SM_POWER] > 2.0);
}

static void learn_identity(struct sm *m, const struct sm_line *line)
{
    if (line->device != SM_DEVICE_UNKNOWN)
        m->device = line->device;
    if (line->version[0]) {
        m->firmware_major = atoi(line->version);
        drv_text(m->ctx, F_FIRMWARE, line->version);
    }
}

static void finish(struct sm *m, enum drv_status st, int code, const char *why)
{
    if (!m->waiting)
        return;
    m->waiting = false;
    m->expect[0] = '\0';
    m->want_relay = -1;
    if (why)
        drv_job_done(m->ctx, st, code, "%s", why);
    else
        drv_job_done(m->ctx, st, code, NULL);
}

// ---- TCP mode --------------------------------------------------------------------------------

static int send_text(struct sm *m, const char *buf, int len)
{
    if (len < 0 || drv_tcp_send(m->ctx, buf, (size_t)len) < 0)
        return -1;
    m->last_tx_ms = drv_now_ms(m->ctx);
    return 0;
}

static void send_job(struct sm *m)
{
    char buf[128];
    int len;
    const struct drv_job *j = &m->job;
    switch (j->type) {
    case DRV_JOB_POLL:
        len = sm_encode_cmd(buf, sizeof(buf), group_cmd[j->group]);
        snprintf(m->expect, sizeof(m->expect), "%s", group_cmd[j->group]);
        break;
    case DRV_JOB_SET:
        len = sm_encode_switch(buf, sizeof(buf), j->value != 0 ? 1 : 0);
        snprintf(m->expect, sizeof(m->expect), "switch");
        break;
    case DRV_JOB_ACTION:
        if (strcmp(j->action, "restart") == 0) {
            len = sm_encode_cmd(buf, sizeof(buf), "restart");
            if (send_text(m, buf, len) == 0)
                finish(m, DRV_OK, 0, NULL); // it reboots: there is no answer to wait for
            else
                finish(m, DRV_ERR_IO, 0, "cannot send");
            return;
        }
        len = sm_encode_reset_energy(buf, sizeof(buf));
        snprintf(m->expect, sizeof(m->expect), "resetEnergy");
        break;
    default: finish(m, DRV_ERR_PROTOCOL, 0, "not a job for this driver"); return;
    }
    if (send_text(m, buf, len) < 0)
        finish(m, DRV_ERR_IO, 0, "cannot send the command");
}

static void on_line(struct sm *m, const char *text, size_t len)
{
    struct sm_line line;
    sm_line_decode(text, len, &line);
    switch (line.kind) {
    case SM_KIND_INFO:
        learn_identity(m, &line);
        emit_values(m, &line.values);
        if (m->waiting && strcmp(m->expect, "info") == 0)
            finish(m, DRV_OK, 0, NULL);
        return;
    case SM_KIND_REPLY: break;
    default: return; // log and liveness lines only prove the link is alive
    }
    bool ours = m->waiting && (strcmp(line.cmd, m->expect) == 0 || !line.cmd[0]);
    if (!ours) {
        // Another client's command, or a late answer: its values are still good.
        if (!line.error)
            emit_values(m, &line.values);
        return;
    }
    if (line.error) {
        // Busy (sampling at a high rate) is transient; anything else is a refusal.
        bool busy = strcmp(line.state, "busy") == 0;
        char why[160];
        snprintf(why, sizeof(why), "the meter answered an error: %s", line.msg[0] ? line.msg : "?");
        finish(m, DRV_ERR_EXCEPTION, busy ? 6 : 1, why);
        return;
    }
    emit_values(m, &line.values);
    finish(m, DRV_OK, 0, NULL);
}

static void sm_tcp_connected(void *state)
{
    struct sm *m = state;
    m->last_rx_ms = drv_now_ms(m->ctx); // the greeting has until `liveness` to come
    if (m->waiting)
        send_job(m);
}

static size_t sm_tcp_data(void *state, const uint8_t *buf, size_t len)
{
    struct sm *m = state;
    const char *line;
    size_t line_len, used;
    bool prefixed;
    enum sm_frame f = sm_frame_next(buf, len, &line, &line_len, &prefixed, &used);
    if (f == SM_FRAME_NEED_MORE)
        return 0;
    m->last_rx_ms = drv_now_ms(m->ctx);
    if (f == SM_FRAME_LINE)
        on_line(m, line, line_len);
    return used;
}

static void sm_tcp_closed(void *state, const char *why)
{
    struct sm *m = state;
    finish(m, DRV_ERR_CONNECT, 0, why);
}

// ---- MQTT mode -------------------------------------------------------------------------------

// Publishes to powermeter/<name>/<leaf>: always under the meter's own name, never on a
// broadcast topic. When the broker is not connected the job fails at once instead of waiting
// for an answer that cannot come. Returns whether it went out.
static bool publish(struct sm *m, const char *leaf, const char *payload)
{
    char topic[160];
    snprintf(topic, sizeof(topic), "powermeter/%s/%s", m->name, leaf);
    if (drv_mqtt_publish(m->ctx, topic, payload, strlen(payload), false) < 0) {
        finish(m, DRV_ERR_CONNECT, 0, "not connected to the broker");
        return false;
    }
    return true;
}

static void mqtt_job(struct sm *m)
{
    const struct drv_job *j = &m->job;
    char buf[128];
    switch (j->type) {
    case DRV_JOB_POLL:
        if (j->group == G_INFO) {
            publish(m, "state", ""); // answered on state/info: {"relay":"on",...}
            return;
        }
        // Sample groups are pushed: a poll checks they keep coming.
        if (m->last_sample_ms &&
            drv_now_ms(m->ctx) - m->last_sample_ms <= m->sample_ms + m->sample_ms / 2) {
            finish(m, DRV_OK, 0, NULL);
        } else {
            snprintf(buf, sizeof(buf), "no sample for %.1f s",
                     (double)(m->sample_ms + m->sample_ms / 2) / 1000.0);
            finish(m, DRV_ERR_TIMEOUT, 0, buf);
        }
        return;
    case DRV_JOB_SET:
        m->want_relay = j->value != 0;
        publish(m, "switch", m->want_relay ? "true" : "false");
        return;
    case DRV_JOB_ACTION:
        if (strcmp(j->action, "restart") == 0)
            sm_encode_cmd(buf, sizeof(buf), "restart");
        else
            sm_encode_reset_energy(buf, sizeof(buf)); // the carried total absorbs the reset
        if (publish(m, "cmd", buf))
            finish(m, DRV_OK, 0, NULL); // no answer comes over MQTT
        return;
    default: finish(m, DRV_ERR_PROTOCOL, 0, "not a job for this driver");
    }
}

static void sm_mqtt_message(void *state, const char *topic, const uint8_t *payload, size_t len,
                            bool retained)
{
    struct sm *m = state;
    (void)retained;
    if (strcmp(topic, m->topic[0]) == 0) { // state/sample
        struct sm_values v;
        int rc = sm_sample_decode((const char *)payload, len, m->device, m->firmware_major, &v);
        if (rc == -EMSGSIZE)
            log_debug(m->id, "a %zu-byte sample on %s is too long (limit %d): ignored", len, topic,
                      SM_MAX_LINE);
        if (rc < 0)
            return;
        if (m->device == SM_DEVICE_UNKNOWN && v.has[SM_POWER]) {
            // Only the PowerMeter reports inUse; the SmartMeter's energy is in kWh.
            m->device = v.has[SM_IN_USE] ? SM_DEVICE_POWERMETER : SM_DEVICE_SMARTMETER;
            if (m->device == SM_DEVICE_SMARTMETER)
                sm_sample_decode((const char *)payload, len, m->device, m->firmware_major, &v);
        }
        emit_values(m, &v);
        if (v.has[SM_POWER]) { // single-value replies do not count as the periodic sample
            m->last_sample_ms = drv_now_ms(m->ctx);
            drv_alive(m->ctx);
        }
    } else if (strcmp(topic, m->topic[1]) == 0) { // state/switch, retained
        int relay = -1;
        if (len == 4 && memcmp(payload, "true", 4) == 0)
            relay = 1;
        else if (len == 5 && memcmp(payload, "false", 5) == 0)
            relay = 0;
        if (relay < 0) {
            drv_unknown(m->ctx, F_RELAY); // "-" after a timed switch: unknown
            return;
        }
        drv_value(m->ctx, F_RELAY, relay);
        if (m->waiting && m->want_relay == relay)
            finish(m, DRV_OK, 0, NULL);
    } else if (strcmp(topic, m->topic[2]) == 0) { // state/info: replies
        struct sm_line line;
        sm_line_decode((const char *)payload, len, &line);
        if (line.kind == SM_KIND_INFO)
            learn_identity(m, &line);
        if (!line.error)
            emit_values(m, &line.values);
        if (m->waiting && m->job.type == DRV_JOB_POLL && m->job.group == G_INFO)
            finish(m, DRV_OK, 0, NULL);
    }
}

// ---- common ----------------------------------------------------------------------------------

static void sm_job(void *state, const struct drv_job *job)
{
    struct sm *m = state;
    m->job = *job;
    m->waiting = true;
    if (m->mqtt) {
        mqtt_job(m);
        return;
    }
    if (drv_tcp_is_open(m->ctx)) {
        send_job(m);
        return;
    }
    if (drv_tcp_open(m->ctx, m->host, m->port) < 0) // connecting already: it sends once open
        return;
}

static void sm_abort(void *state)
{
    struct sm *m = state;
    m->waiting = false;
    m->expect[0] = '\0';
    m->want_relay = -1;
}

static void sm_timer(void *state)
{
    struct sm *m = state;
    int64_t now = drv_now_ms(m->ctx);
    if (!m->mqtt && drv_tcp_is_open(m->ctx)) {
        if (now - m->last_rx_ms > m->liveness_ms) {
            char why[96];
            snprintf(why, sizeof(why), "nothing received for %.1f s",
                     (double)(now - m->last_rx_ms) / 1000.0);
            drv_tcp_close(m->ctx);
            finish(m, DRV_ERR_TIMEOUT, 0, why);
        } else if (now - m->last_tx_ms >= m->keepalive_ms) {
            char buf[8];
            send_text(m, buf, sm_encode_keepalive(buf, sizeof(buf)));
        }
    }
    drv_timer_set(m->ctx, TICK_MS);
}

static int sm_start(void *state, struct drv_ctx *ctx)
{
    struct sm *m = state;
    m->ctx = ctx;
    if (m->mqtt) {
        for (int i = 0; i < 3; i++)
            drv_mqtt_subscribe(ctx, m->topic[i]);
    } else {
        drv_tcp_open(ctx, m->host, m->port); // the greeting info arrives at once
    }
    drv_timer_set(ctx, TICK_MS);
    return 0;
}

const struct driver_ops smartmeter_driver = {
    .name = "smartmeter",
    .summary = "voelkerb ESP32 PowerMeter / SmartMeter (TCP 54321 or their MQTT samples)",
    .style = DRV_EVENT,
    .settings = settings,
    .n_settings = sizeof(settings) / sizeof(settings[0]),
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .fields = fields,
    .n_fields = N_FIELDS,
    .groups = groups,
    .n_groups = N_GROUPS,
    .actions = actions,
    .timing =
        {
            .min_gap_ms = 0,
            .poll_ms = 5000,
            .min_poll_ms = 1000,
            .reply_timeout_ms = 2000,
            .connect_timeout_ms = 3000,
            .backoff_min_ms = 1000,
            .backoff_max_ms = 60000,
        },
    .check = sm_check,
    .open = sm_open,
    .close = sm_close,
    .start = sm_start,
    .job = sm_job,
    .abort = sm_abort,
    .tcp_connected = sm_tcp_connected,
    .tcp_data = sm_tcp_data,
    .tcp_closed = sm_tcp_closed,
    .timer = sm_timer,
    .mqtt_message = sm_mqtt_message,
    .decode = smartmeter_decode,
};
