// SPDX-License-Identifier: MIT
// e2m-soak: every simulator and the daemon under faults for a fixed time, then a report.
//
// A private mosquitto, one simulated device of each driver and `energy2mqtt run` run as
// processes on compressed timing (a 2 s DTU guard, 20 s cloud windows, polls every few
// seconds). A schedule of one-minute cycles breaks things on purpose: devices drop, stall,
// send garbage and bad CRCs; the broker is stopped cleanly (retained messages kept) or killed
// with its retained messages wiped; Home Assistant's birth message arrives in storms; command
// floods of thousands of `/set` messages a second mix valid values with oversized, non-UTF-8,
// malformed and out-of-range ones. Everything the daemon publishes is checked as it arrives,
// and every write a simulator reports is checked against what was sent. At the end the soak
// prints its figures and fails unless: the daemon never died; its RSS stayed flat after
// warm-up; every device came back within its bound after each fault; no guard or quiet-window
// rule was broken; no energy total went backwards; no invalid command reached a device; the
// last valid command for every target was applied; discovery was complete again after every
// broker restart.
//
// Environment: E2M_SOAK_SECONDS (default 1800), E2M_SOAK_FLOOD_RATE (commands a second during
// a flood, default 2000), E2M_SOAK_REPORT (a file that also receives the report),
// E2M_DAEMON_WRAPPER (e.g. valgrind; the RSS check is then skipped and bounds are relaxed).
#define _GNU_SOURCE

#include <MQTTClient.h>
#include <check.h>
#include <jansson.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integration/itest.h"

#define BASE       "soak"
#define CYCLE_S    60 // one schedule cycle
#define WARMUP_S   30
#define N_SERIES   256
#define N_CONFIGS  32
#define VALUE_MAX  1000
#define MAX_FAULTS 512

// ---- simulators -----------------------------------------------------------------------------

enum sim_id { S_SUNSPEC, S_SDM, S_PLUG, S_DTU, S_VENUS, S_LUX, S_GE, N_SIMS };

struct simproc {
    const char *binary;
    struct proc p;
    int port;
    pthread_t reader;
    bool reading;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool waiting, answered;
    char answer[8192];
};

static struct simproc sims[N_SIMS] = {
    [S_SUNSPEC] = {.binary = "tests/sim/e2m-modbus-sim"},
    [S_SDM] = {.binary = "tests/sim/e2m-modbus-sim"},
    [S_PLUG] = {.binary = "tests/sim/e2m-smartmeter-sim"},
    [S_DTU] = {.binary = "tests/sim/e2m-hoymiles-sim"},
    [S_VENUS] = {.binary = "tests/sim/e2m-venus-sim"},
    [S_LUX] = {.binary = "tests/sim/e2m-luxpower-sim"},
    [S_GE] = {.binary = "tests/sim/e2m-givenergy-sim"},
};

// ---- devices and their faults ---------------------------------------------------------------

struct dev {
    const char *id;
    enum sim_id sim;
    int bound_ms;              // a fault's end to the next good exchange, at most
    const char *const *faults; // control lines that start a fault, in turn
    const char *const *ends;   // the line that ends each (NULL: one-shot)
    // Written by the monitor (under mon_lock).
    time_t last_seen_s;            // the state's last_seen, Unix seconds
    long long last_seen_change_ms; // when a newer last_seen arrived (monotonic)
    long states;
    // Fault bookkeeping (main thread, read under mon_lock).
    int next_fault;
    long long fault_end_ms;
    time_t fault_end_s;
    bool awaiting;
};

static const char *const modbus_faults[] = {"fault 0 drop", "fault 0 stall", "fault 0 garbage",
                                            "fault 0 exception", NULL};
static const char *const modbus_ends[] = {"fault 0 none", "fault 0 none", "fault 0 none",
                                          "fault 0 none", NULL};
static const char *const plug_faults[] = {"fault drop", "fault stall", "fault garbage",
                                          "fault silent", NULL};
static const char *const plug_ends[] = {"fault none", "fault none", "fault none", "fault none",
                                        NULL};
static const char *const dtu_faults[] = {
    "fault garbage", "fault badcrc", "fault drop",  "fault stall",
    "fault dup",     "reboot",       "fault split", NULL};
static const char *const venus_faults[] = {"silent on", NULL};
static const char *const venus_ends[] = {"silent off", NULL};
static const char *const lux_faults[] = {"fault drop",  "fault badcrc", "fault garbage",
                                         "fault stall", "fault split",  NULL};
static const char *const ge_faults[] = {
    "fault drop",  "fault badcrc", "fault zero", "fault garbage",
    "fault stall", "fault split",  NULL};

enum { D_INVERTER, D_METER, D_PLUG, D_BALCONY, D_BATTERY, D_HYBRID, D_GIVENERGY, N_DEVS };

// Bounds, from a fault's end to the next good exchange: the exchange in flight when the fault
// ended times out (reply or liveness timeout, connecting included), the backoff waits at most
// backoff_max (4 s for every device), then the next poll is due within a poll interval; plus
// the DTU's request gap and quiet window, and 3 s of slack for a loaded machine.
#define BOUND(in_flight_ms, poll_ms) ((in_flight_ms) + 4000 + (poll_ms) + 3000)

static struct dev devs[N_DEVS] = {
    [D_INVERTER] = {.id = "inverter",
                    .sim = S_SUNSPEC,
                    .bound_ms = BOUND(2000, 2000),
                    .faults = modbus_faults,
                    .ends = modbus_ends},
    [D_METER] = {.id = "meter",
                 .sim = S_SDM,
                 .bound_ms = BOUND(2000, 2000),
                 .faults = modbus_faults,
                 .ends = modbus_ends},
    [D_PLUG] = {.id = "plug",
                .sim = S_PLUG,
                .bound_ms = BOUND(3500, 2000),
                .faults = plug_faults,
                .ends = plug_ends},
    [D_BALCONY] = {.id = "balcony",
                   .sim = S_DTU,
                   .bound_ms = BOUND(2000, 3000) + 3000 + 2000,
                   .faults = dtu_faults,
                   .ends = NULL},
    [D_BATTERY] = {.id = "battery",
                   .sim = S_VENUS,
                   .bound_ms = BOUND(2000, 10000),
                   .faults = venus_faults,
                   .ends = venus_ends},
    [D_HYBRID] = {.id = "hybrid",
                  .sim = S_LUX,
                  .bound_ms = BOUND(2000, 3000),
                  .faults = lux_faults,
                  .ends = NULL},
    [D_GIVENERGY] = {.id = "givenergy",
                     .sim = S_GE,
                     .bound_ms = BOUND(2000, 3000),
                     .faults = ge_faults,
                     .ends = NULL},
};

struct recovery {
    int dev;
    char fault[32];
    long long ms; // -1: never
};
static struct recovery recoveries[MAX_FAULTS];
static int n_recoveries;

// ---- command targets ------------------------------------------------------------------------

struct target {
    int dev;
    const char *entity;
    const char *write_prefix; // the simulator's line for a write of it (NULL: read via stats)
    int min, max;             // the entity's range
    int lo, hi;               // the valid values the flood sends
    // Under tgt_lock.
    bool sent[VALUE_MAX + 1];
    int last_valid;
    long valid, invalid, writes, bad_writes;
    int last_write;
    char bad_example[128];
};

static struct target targets[] = {
    {.dev = D_INVERTER, .entity = "power_limit", .min = 0, .max = 100, .lo = 5, .hi = 95},
    {.dev = D_HYBRID,
     .entity = "discharge_power_percent",
     .write_prefix = "write holding 65 1 ",
     .min = 0,
     .max = 100,
     .lo = 5,
     .hi = 95},
    {.dev = D_GIVENERGY,
     .entity = "charge_target_soc",
     .write_prefix = "write holding 116 1 ",
     .min = 4,
     .max = 100,
     .lo = 10,
     .hi = 95},
    {.dev = D_BALCONY, .entity = "power_limit", .min = 0, .max = 100, .lo = 10, .hi = 100},
};
#define N_TARGETS (sizeof(targets) / sizeof(targets[0]))
static pthread_mutex_t tgt_lock = PTHREAD_MUTEX_INITIALIZER;
static char sunspec_prefix[64];

// ---- what the monitor sees ------------------------------------------------------------------

struct series {
    int dev;
    char key[64];
    bool daily; // resets at midnight: going down is a reset, not a step back
    bool have;
    double last;
    long values, resets, backwards;
};

static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[N_SERIES];
static int n_series;
static char configs[N_CONFIGS][160];
static int n_configs;
static bool config_fresh[N_CONFIGS]; // seen since the monitor's last (re)connection
static long backwards_total;
static char backwards_example[256];

// ---- run state ------------------------------------------------------------------------------

static struct broker broker;
static struct proc daemon_p;
static MQTTClient mon, flood;
static bool mon_up, flood_up;
static int seconds = 1800, flood_rate = 2000;
static bool wrapped;
static atomic_llong flood_until;
static atomic_bool stopping;
static atomic_long flood_sent, flood_failed;
static FILE *report_file;

struct restart {
    bool kept;             // retained messages kept (clean stop, persistence) or wiped (kill)
    long long complete_ms; // broker up to discovery complete again; -1: never
};
static struct restart restarts[128];
static int n_restarts;
static int storms, floods;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (report_file) {
        va_start(ap, fmt);
        vfprintf(report_file, fmt, ap);
        va_end(ap);
        fflush(report_file);
    }
}

static int dev_by_id(const char *id, size_t len)
{
    for (int i = 0; i < N_DEVS; i++)
        if (strlen(devs[i].id) == len && memcmp(devs[i].id, id, len) == 0)
            return i;
    return -1;
}

// ---- simulator I/O --------------------------------------------------------------------------

// A write line from a simulator: the value must be one the flood sent as valid.
static void write_seen(enum sim_id s, const char *line)
{
    pthread_mutex_lock(&tgt_lock);
    for (size_t i = 0; i < N_TARGETS; i++) {
        struct target *t = &targets[i];
        const char *prefix = t->write_prefix;
        if (!prefix || devs[t->dev].sim != s || strncmp(line, prefix, strlen(prefix)) != 0)
            continue;
        long v = strtol(line + strlen(prefix), NULL, 10);
        t->writes++;
        t->last_write = (int)v;
        if (v < 0 || v > VALUE_MAX || !t->sent[v]) {
            if (!t->bad_writes++)
                snprintf(t->bad_example, sizeof(t->bad_example), "%s", line);
        }
    }
    pthread_mutex_unlock(&tgt_lock);
}

static void *sim_reader(void *arg)
{
    struct simproc *sp = arg;
    enum sim_id id = (enum sim_id)(sp - sims);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, sp->p.out)) > 0) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "write ", 6) == 0) {
            write_seen(id, line);
            continue;
        }
        if (strncmp(line, "ok", 2) == 0 || strncmp(line, "err", 3) == 0 || line[0] == '{') {
            pthread_mutex_lock(&sp->lock);
            if (sp->waiting) {
                snprintf(sp->answer, sizeof(sp->answer), "%s", line);
                sp->answered = true;
                pthread_cond_signal(&sp->cond);
            }
            pthread_mutex_unlock(&sp->lock);
        }
    }
    free(line);
    return NULL;
}

// Sends a control line and waits for its answer (copied into out); false on timeout or "err".
static bool sim_ask(enum sim_id s, char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool sim_ask(enum sim_id s, char *out, size_t n, const char *fmt, ...)
{
    struct simproc *sp = &sims[s];
    char cmd[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&sp->lock);
    sp->waiting = true;
    sp->answered = false;
    pthread_mutex_unlock(&sp->lock);
    proc_send(&sp->p, "%s", cmd);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&sp->lock);
    while (!sp->answered)
        if (pthread_cond_timedwait(&sp->cond, &sp->lock, &until) != 0)
            break;
    bool ok = sp->answered && strncmp(sp->answer, "err", 3) != 0;
    if (out)
        snprintf(out, n, "%s", sp->answered ? sp->answer : "(no answer)");
    sp->waiting = false;
    pthread_mutex_unlock(&sp->lock);
    return ok;
}

static void sim_launch(enum sim_id s, const char *const *args)
{
    struct simproc *sp = &sims[s];
    struct sim tmp;
    memset(&tmp, 0, sizeof(tmp));
    sim_start_bin(&tmp, sp->binary, args);
    sp->p = tmp.p;
    sp->port = tmp.n_ports ? tmp.ports[0] : 0;
    pthread_mutex_init(&sp->lock, NULL);
    pthread_cond_init(&sp->cond, NULL);
    ck_assert_int_eq(pthread_create(&sp->reader, NULL, sim_reader, sp), 0);
    sp->reading = true;
}

static int sim_exit(enum sim_id s)
{
    struct simproc *sp = &sims[s];
    if (!sp->reading)
        return -1;
    kill(sp->p.pid, SIGTERM);
    pthread_join(sp->reader, NULL);
    sp->reading = false;
    return proc_stop(&sp->p, SIGTERM, 5000);
}

// A number from a simulator's JSON statistics ("ok {...}" or "{...}"); NAN when absent.
static double sim_stat(enum sim_id s, const char *key)
{
    char line[8192];
    if (!sim_ask(s, line, sizeof(line), "stats"))
        return NAN;
    const char *json = strchr(line, '{');
    return json ? json_number_of(json, key) : NAN;
}

// ---- monitor --------------------------------------------------------------------------------

static bool is_daily(const char *key)
{
    return strstr(key, "_today") || strstr(key, "_month") || strstr(key, "_daily") ||
           strstr(key, "yield_day");
}

// A discovery message: remembers the topic and the total counters it declares.
static void config_seen(const char *topic, const char *payload, size_t len)
{
    int idx = -1;
    for (int i = 0; i < n_configs; i++)
        if (strcmp(configs[i], topic) == 0)
            idx = i;
    if (len == 0) {
        if (idx >= 0)
            config_fresh[idx] = false;
        return;
    }
    if (idx < 0 && n_configs < N_CONFIGS) {
        idx = n_configs++;
        snprintf(configs[idx], sizeof(configs[idx]), "%s", topic);
    } else if (idx >= 0 && config_fresh[idx]) {
        return;
    }
    if (idx < 0)
        return;
    config_fresh[idx] = true;
    json_t *o = json_loadb(payload, len, 0, NULL);
    const char *stat_t = json_string_value(json_object_get(o, "stat_t"));
    int dev = -1;
    if (stat_t && strncmp(stat_t, BASE "/", strlen(BASE "/")) == 0) {
        const char *id = stat_t + strlen(BASE "/");
        const char *slash = strchr(id, '/');
        if (slash)
            dev = dev_by_id(id, (size_t)(slash - id));
    }
    const char *key;
    json_t *c;
    json_object_foreach(json_object_get(o, "cmps"), key, c)
    {
        const char *cls = json_string_value(json_object_get(c, "stat_cla"));
        if (dev < 0 || !cls || (strcmp(cls, "total_increasing") != 0 && strcmp(cls, "total") != 0))
            continue;
        bool known = false;
        for (int i = 0; i < n_series; i++)
            known |= series[i].dev == dev && strcmp(series[i].key, key) == 0;
        if (!known && n_series < N_SERIES) {
            struct series *s = &series[n_series++];
            s->dev = dev;
            snprintf(s->key, sizeof(s->key), "%s", key);
            s->daily = is_daily(key);
        }
    }
    json_decref(o);
}

static void state_seen(int dev, const char *payload, size_t len)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    if (!o)
        return;
    struct dev *d = &devs[dev];
    d->states++;
    const char *seen = json_string_value(json_object_get(o, "last_seen"));
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (seen && strptime(seen, "%Y-%m-%dT%H:%M:%S", &tm)) {
        time_t t = timegm(&tm);
        if (t > d->last_seen_s) {
            d->last_seen_s = t;
            d->last_seen_change_ms = itest_now_ms();
        }
    }
    for (int i = 0; i < n_series; i++) {
        struct series *s = &series[i];
        json_t *v = json_object_get(o, s->key);
        if (s->dev != dev || !json_is_number(v))
            continue;
        double x = json_number_value(v);
        if (s->have && x < s->last) {
            if (s->daily) {
                s->resets++;
            } else {
                s->backwards++;
                if (!backwards_total++)
                    snprintf(backwards_example, sizeof(backwards_example), "%s.%s: %.15g -> %.15g",
                             d->id, s->key, s->last, x);
            }
        }
        s->last = x;
        s->have = true;
        s->values++;
    }
    json_decref(o);
}

static int on_message(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
    (void)ctx;
    (void)tlen;
    const char *payload = m->payload;
    size_t len = (size_t)m->payloadlen;
    size_t n = strlen(topic);
    pthread_mutex_lock(&mon_lock);
    if (strncmp(topic, "homeassistant/", 14) == 0 && n > 7 &&
        strcmp(topic + n - 7, "/config") == 0) {
        config_seen(topic, payload, len);
    } else if (strncmp(topic, BASE "/", strlen(BASE "/")) == 0 && n > 6 &&
               strcmp(topic + n - 6, "/state") == 0) {
        const char *id = topic + strlen(BASE "/");
        int dev = dev_by_id(id, (size_t)(topic + n - 6 - id));
        if (dev >= 0)
            state_seen(dev, payload, len);
    }
    pthread_mutex_unlock(&mon_lock);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

static void on_lost(void *ctx, char *cause)
{
    (void)cause;
    bool *up = ctx;
    *up = false;
}

static bool client_connect(MQTTClient *c, bool *up, const char *id, bool subscribe)
{
    if (*up && MQTTClient_isConnected(*c))
        return true;
    if (!*c) {
        char uri[64];
        snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", broker.port);
        if (MQTTClient_create(c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTCLIENT_SUCCESS)
            return false;
        MQTTClient_setCallbacks(*c, up, on_lost, subscribe ? on_message : NULL, NULL);
    }
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.cleansession = 1;
    o.keepAliveInterval = 30;
    o.connectTimeout = 2;
    if (MQTTClient_connect(*c, &o) != MQTTCLIENT_SUCCESS)
        return false;
    if (subscribe) {
        pthread_mutex_lock(&mon_lock);
        memset(config_fresh, 0, sizeof(config_fresh));
        pthread_mutex_unlock(&mon_lock);
        char *const filters[] = {"homeassistant/#", BASE "/+/state"};
        int qos[] = {1, 0};
        MQTTClient_subscribeMany(*c, 2, filters, qos);
    }
    *up = true;
    return true;
}

// ---- command flood --------------------------------------------------------------------------

static unsigned flood_rand(void)
{
    static unsigned s = 12345;
    s = s * 1103515245u + 12345u;
    return (s >> 8) & 0xFFFFFF;
}

// One command for target t: a valid value (recorded before it is sent) or one of the bad ones.
static void flood_one(struct target *t, unsigned i, bool last)
{
    static char big[300 * 1024];
    if (!big[0])
        memset(big, '7', sizeof(big));
    char topic[128], buf[64];
    snprintf(topic, sizeof(topic), BASE "/%s/%s/set", devs[t->dev].id, t->entity);
    const char *p = buf;
    size_t len;
    unsigned kind = last ? 0 : i % 20;
    if (kind < 8) {
        int v = t->lo + (int)(flood_rand() % (unsigned)(t->hi - t->lo + 1));
        pthread_mutex_lock(&tgt_lock);
        t->sent[v] = true;
        t->last_valid = v;
        t->valid++;
        pthread_mutex_unlock(&tgt_lock);
        snprintf(buf, sizeof(buf), "%d", v);
    } else {
        static const char *const bad[] = {"abc",   "",    "1e999",      "NaN",
                                          "12abc", "--5", "{\"v\":50}", "50;60"};
        switch (kind) {
        case 8: snprintf(buf, sizeof(buf), "%d", t->max + 1 + (int)(flood_rand() % 900)); break;
        case 9: snprintf(buf, sizeof(buf), "%d", t->min - 1 - (int)(flood_rand() % 100)); break;
        case 10: snprintf(buf, sizeof(buf), "\xff\xfe%c\x80", '0' + (int)(i % 10)); break;
        case 11: // over the command limit (256 bytes), and now and then over the inbound limit
            p = big;
            snprintf(buf, sizeof(buf), "x");
            break;
        default: snprintf(buf, sizeof(buf), "%s", bad[kind - 12]); break;
        }
        pthread_mutex_lock(&tgt_lock);
        t->invalid++;
        pthread_mutex_unlock(&tgt_lock);
    }
    len = p == big ? (i % 400 == 11 ? sizeof(big) : 1024) : strlen(buf);
    if (MQTTClient_publish(flood, topic, (int)len, p, 0, 0, NULL) == MQTTCLIENT_SUCCESS)
        atomic_fetch_add(&flood_sent, 1);
    else
        atomic_fetch_add(&flood_failed, 1);
}

static void *flood_main(void *arg)
{
    (void)arg;
    unsigned i = 0;
    bool was_on = false;
    while (!atomic_load(&stopping)) {
        bool on = itest_now_ms() < atomic_load(&flood_until);
        if (!on) {
            if (was_on) // the last command to every target is a valid one
                for (size_t t = 0; t < N_TARGETS; t++)
                    flood_one(&targets[t], i++, true);
            was_on = false;
            itest_sleep_ms(20);
            continue;
        }
        if (!client_connect(&flood, &flood_up, "soak-flood", false)) {
            itest_sleep_ms(100);
            continue;
        }
        was_on = true;
        // Ten batches a second.
        long long t0 = itest_now_ms();
        int batch = flood_rate / 10 > 0 ? flood_rate / 10 : 1;
        for (int k = 0; k < batch; k++, i++)
            flood_one(&targets[i % N_TARGETS], i / N_TARGETS, false);
        long long left = 100 - (itest_now_ms() - t0);
        if (left > 0)
            itest_sleep_ms((int)left);
    }
    return NULL;
}

// ---- broker ---------------------------------------------------------------------------------

static void broker_up(void)
{
    broker_start_conf(&broker,
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "persistence true\npersistence_location %s/\nautosave_interval 3600\n",
                      broker.port, itest_dir());
}

// ---- the daemon -----------------------------------------------------------------------------

static const char *config_write(void)
{
    const char *d = itest_dir();
    return itest_write_file(
        "soak.yaml",
        "mqtt: {url: 'mqtt://127.0.0.1:%d', base_topic: " BASE ", birth_delay: 1s}\n"
        "state_dir: %s\n"
        "devices:\n"
        "  - {id: inverter, model: sunspec/inverter, host: 127.0.0.1, port: %d,\n"
        "     options: {poll_interval: 2s, reply_timeout: 1s, connect_timeout: 1s,\n"
        "               backoff_min: 1s, backoff_max: 4s}}\n"
        "  - {id: meter, model: eastron/sdm630, host: 127.0.0.1, port: %d,\n"
        "     options: {poll_interval: 2s, reply_timeout: 1s, connect_timeout: 1s,\n"
        "               backoff_min: 1s, backoff_max: 4s}}\n"
        "  - {id: plug, model: voelkerb/powermeter, host: 127.0.0.1, port: %d,\n"
        "     options: {poll_interval: 2s, backoff_min: 1s, backoff_max: 4s, liveness: 2s}}\n"
        // The DTU's timing scaled from 30 s to 2 s; a 1 s margin on the guard.
        "  - id: balcony\n"
        "    model: hoymiles/hms-2t\n"
        "    host: 127.0.0.1\n"
        "    port: %d\n"
        "    options:\n"
        "      min_request_gap: 3s\n"
        "      unsafe_timing: true\n"
        "      poll_interval: 3s\n"
        "      connect_timeout: 1s\n"
        "      reply_timeout: 1s\n"
        "      backoff_min: 1s\n"
        "      backoff_max: 4s\n"
        "      stale_after: 20s\n"
        "      command_wait: 500ms\n"
        "      cloud_pause: \"off\"\n"
        "      quiet_windows: [{every: 20s, start: 15s, length: 2s}]\n"
        "  - {id: battery, model: marstek/venus, type: HMG-50, mac: 'AA:BB:CC:DD:EE:FF',\n"
        "     options: {poll_interval: 10s, bms_interval: 10s, ct_interval: 10s,\n"
        "               reply_timeout: 2s, backoff_min: 1s, backoff_max: 4s}}\n"
        "  - {id: hybrid, model: luxpower/lxp-hybrid, host: 127.0.0.1, port: %d,\n"
        "     options: {poll_interval: 3s, reply_timeout: 1s, connect_timeout: 1s,\n"
        "               backoff_min: 1s, backoff_max: 4s, reconnect_delay: 1s,\n"
        "               broadcast_interval: 20s}}\n"
        "  - {id: givenergy, model: givenergy/hybrid, host: 127.0.0.1, port: %d,\n"
        "     options: {poll_interval: 3s, reply_timeout: 1s, connect_timeout: 1s,\n"
        "               backoff_min: 1s, backoff_max: 4s, reconnect_delay: 1s}}\n",
        broker.port, d, sims[S_SUNSPEC].port, sims[S_SDM].port, sims[S_PLUG].port, sims[S_DTU].port,
        sims[S_LUX].port, sims[S_GE].port);
}

static bool daemon_alive(int *status)
{
    pid_t r = waitpid(daemon_p.pid, status, WNOHANG);
    return r == 0;
}

// Resident memory of the daemon in KiB (0 when unreadable).
static long daemon_rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)daemon_p.pid);
    FILE *f = fopen(path, "r");
    long kib = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

// ---- schedule -------------------------------------------------------------------------------

static int fault_cursor;

static void fault_start(long long now)
{
    // Devices in turn; each time the next of its faults.
    struct dev *d = NULL;
    for (int tries = 0; tries < N_DEVS && !d; tries++) {
        struct dev *c = &devs[fault_cursor++ % N_DEVS];
        if (!c->awaiting)
            d = c;
    }
    if (!d || n_recoveries >= MAX_FAULTS)
        return;
    int k = d->next_fault;
    if (!d->faults[k])
        k = 0;
    d->next_fault = k + 1;
    char ans[256];
    if (!sim_ask(d->sim, ans, sizeof(ans), "%s", d->faults[k]))
        say("  %s: '%s' refused: %s\n", d->id, d->faults[k], ans);
    struct recovery *r = &recoveries[n_recoveries++];
    r->dev = (int)(d - devs);
    snprintf(r->fault, sizeof(r->fault), "%s", d->faults[k]);
    r->ms = -1;
    // Continuous faults last 8 s; one-shot ones end when they happen.
    if (d->ends) {
        itest_sleep_ms(8000);
        sim_ask(d->sim, ans, sizeof(ans), "%s", d->ends[k]);
        now = itest_now_ms();
    }
    pthread_mutex_lock(&mon_lock);
    d->fault_end_ms = now;
    d->fault_end_s = time(NULL);
    d->awaiting = true;
    pthread_mutex_unlock(&mon_lock);
}

// Checks the faults waiting for their device to come back.
static void faults_check(long long now)
{
    pthread_mutex_lock(&mon_lock);
    for (int i = 0; i < n_recoveries; i++) {
        struct recovery *r = &recoveries[i];
        struct dev *d = &devs[r->dev];
        if (r->ms >= 0 || !d->awaiting)
            continue;
        // The first exchange after the fault ended (last_seen is in whole seconds).
        if (d->last_seen_s > d->fault_end_s) {
            r->ms = d->last_seen_change_ms - d->fault_end_ms;
            if (r->ms < 0)
                r->ms = 0;
            d->awaiting = false;
        } else if (now - d->fault_end_ms > 4LL * d->bound_ms + 60000) {
            d->awaiting = false; // given up: r->ms stays -1
        }
    }
    pthread_mutex_unlock(&mon_lock);
}

static int configs_fresh(void)
{
    int n = 0;
    pthread_mutex_lock(&mon_lock);
    for (int i = 0; i < n_configs; i++)
        n += config_fresh[i];
    pthread_mutex_unlock(&mon_lock);
    return n;
}

static void birth_storm(void)
{
    storms++;
    for (int i = 0; i < 100; i++) {
        const char *p = i % 10 == 9 ? "offline" : "online";
        MQTTClient_publish(mon, "homeassistant/status", (int)strlen(p), p, 0, 0, NULL);
        if (i % 10 == 0)
            itest_sleep_ms(5);
    }
    const char *p = "online";
    MQTTClient_publish(mon, "homeassistant/status", (int)strlen(p), p, 0, 0, NULL);
}

static void broker_restart(int expected)
{
    struct restart *r = &restarts[n_restarts++];
    r->kept = n_restarts % 2 == 1;
    r->complete_ms = -1;
    if (r->kept) {
        proc_stop(&broker.p, SIGTERM, 10000);
    } else {
        proc_stop(&broker.p, SIGKILL, 10000);
        char db[512];
        snprintf(db, sizeof(db), "%s/mosquitto.db", itest_dir());
        unlink(db);
    }
    mon_up = flood_up = false;
    itest_sleep_ms(2000);
    broker_up();
    long long up = itest_now_ms();
    while (itest_now_ms() - up < 60000) {
        if (client_connect(&mon, &mon_up, "soak-monitor", true) && configs_fresh() >= expected) {
            r->complete_ms = itest_now_ms() - up;
            break;
        }
        itest_sleep_ms(100);
    }
}

// ---- the soak -------------------------------------------------------------------------------

static void sims_start(void)
{
    char mqtt[64];
    snprintf(mqtt, sizeof(mqtt), "127.0.0.1:%d", broker.port);
    const char *sunspec[] = {"--profile", "sunspec", "--port", "0", NULL};
    const char *sdm[] = {"--profile", "sdm630", "--port", "0", NULL};
    const char *plug[] = {"--type", "powermeter", "--port", "0", "--tick", "500", NULL};
    const char *dtu[] = {"--port",          "0",     "--guard",   "2000",
                         "--lockup",        "60000", "--cloud",   "20000,15000,2000",
                         "--data-interval", "1000",  "--cmd-gap", "500",
                         "--power",         "600",   NULL};
    const char *venus[] = {"--mqtt", mqtt, "--type", "HMG-50", "--mac", "aabbccddeeff", NULL};
    const char *lux[] = {"--port",         "0",     "--cloud", "off", "--heartbeat-ms", "3000",
                         "--broadcast-ms", "20000", NULL};
    const char *ge[] = {"--port", "0", "--heartbeat-ms", "5000", NULL};
    sim_launch(S_SUNSPEC, sunspec);
    sim_launch(S_SDM, sdm);
    sim_launch(S_PLUG, plug);
    sim_launch(S_DTU, dtu);
    sim_launch(S_VENUS, venus);
    sim_launch(S_LUX, lux);
    sim_launch(S_GE, ge);
    snprintf(sunspec_prefix, sizeof(sunspec_prefix), "write %d holding 40126 1 ",
             sims[S_SUNSPEC].port);
    targets[0].write_prefix = sunspec_prefix;
}

// The value a target holds now, read from its simulator.
static int target_value(const struct target *t)
{
    char ans[8192];
    switch (devs[t->dev].sim) {
    case S_SUNSPEC:
        return sim_ask(S_SUNSPEC, ans, sizeof(ans), "get 0 holding 40126 u16") ? atoi(ans + 3) : -1;
    case S_LUX: return sim_ask(S_LUX, ans, sizeof(ans), "get holding 65") ? atoi(ans + 3) : -1;
    case S_GE: return sim_ask(S_GE, ans, sizeof(ans), "get holding 116") ? atoi(ans + 3) : -1;
    case S_DTU: {
        double v = sim_stat(S_DTU, "limit_percent");
        return isnan(v) ? -1 : (int)lround(v);
    }
    default: return -1;
    }
}

START_TEST(soak)
{
    const char *e = getenv("E2M_SOAK_SECONDS");
    if (e && atoi(e) > 0)
        seconds = atoi(e);
    e = getenv("E2M_SOAK_FLOOD_RATE");
    if (e && atoi(e) > 0)
        flood_rate = atoi(e);
    e = getenv("E2M_DAEMON_WRAPPER");
    wrapped = e && *e;
    e = getenv("E2M_SOAK_REPORT");
    if (e && *e)
        report_file = fopen(e, "w");
    if (wrapped) // valgrind runs the daemon 20-50 times slower: wider bounds
        for (int i = 0; i < N_DEVS; i++)
            devs[i].bound_ms *= 3;

    broker.port = itest_free_port();
    broker_up();
    sims_start();
    daemon_start(&daemon_p, config_write(), "daemon.log");
    pthread_t flood_thread;
    ck_assert_int_eq(pthread_create(&flood_thread, NULL, flood_main, NULL), 0);

    long long start = itest_now_ms(), end = start + (long long)seconds * 1000;
    say("soak: %d s, %d commands/s in floods%s, logs in %s\n", seconds, flood_rate,
        wrapped ? ", daemon wrapped" : "", itest_dir());

    // Warm-up: everything online, discovery complete.
    int expected = 0;
    while (itest_now_ms() - start < WARMUP_S * 1000) {
        client_connect(&mon, &mon_up, "soak-monitor", true);
        itest_sleep_ms(200);
    }
    expected = configs_fresh();
    long rss_warm = 0, rss_max = 0, rss_end = 0;
    long long last_rss = 0, last_dtu = 0;
    bool died = false;
    int status = 0;
    long long cycle_start = itest_now_ms();
    int step = 0; // what of the cycle is done
    double dtu_limit_bad = 0;

    while (itest_now_ms() < end && !died) {
        long long now = itest_now_ms();
        client_connect(&mon, &mon_up, "soak-monitor", true);
        if (!daemon_alive(&status)) {
            died = true;
            break;
        }
        // The baseline is taken after warm-up and one whole cycle, so that every kind of fault,
        // a flood and a broker restart have had their first (legitimate) allocations.
        if (now - last_rss >= 5000) {
            long kib = daemon_rss_kib();
            if (!rss_warm && now - start >= (WARMUP_S + CYCLE_S) * 1000LL)
                rss_warm = kib;
            else if (rss_warm && kib > rss_max)
                rss_max = kib;
            rss_end = kib;
            last_rss = now;
        }
        if (now - last_dtu >= 10000) { // the DTU limit never holds a value nobody sent
            int v = target_value(&targets[3]);
            pthread_mutex_lock(&tgt_lock);
            if (v >= 0 && targets[3].valid && (v > VALUE_MAX || !targets[3].sent[v]) &&
                v != targets[3].last_write)
                dtu_limit_bad = v;
            pthread_mutex_unlock(&tgt_lock);
            last_dtu = now;
        }
        faults_check(now);
        long long at = now - cycle_start;
        if (step == 0 && at >= 0) {
            fault_start(now);
            step = 1;
        } else if (step == 1 && at >= 12000) {
            atomic_store(&flood_until, now + 4000);
            floods++;
            step = 2;
        } else if (step == 2 && at >= 20000) {
            birth_storm();
            step = 3;
        } else if (step == 3 && at >= 30000) {
            broker_restart(expected);
            step = 4;
        } else if (step == 4 && at >= 42000) {
            fault_start(itest_now_ms());
            step = 5;
        } else if (step == 5 && at >= CYCLE_S * 1000) {
            cycle_start = now;
            step = 0;
        }
        itest_sleep_ms(100);
    }
    atomic_store(&flood_until, 0);

    // Drain: outstanding recoveries, and commands the DTU's flash rule holds back (one
    // persistent write a minute).
    long long drain = itest_now_ms();
    int final_value[N_TARGETS];
    bool applied_all = false;
    while (!died && itest_now_ms() - drain < 75000) {
        faults_check(itest_now_ms());
        applied_all = true;
        for (size_t i = 0; i < N_TARGETS; i++) {
            final_value[i] = target_value(&targets[i]);
            pthread_mutex_lock(&tgt_lock);
            applied_all &= !targets[i].valid || final_value[i] == targets[i].last_valid;
            pthread_mutex_unlock(&tgt_lock);
        }
        bool waiting = false;
        pthread_mutex_lock(&mon_lock);
        for (int i = 0; i < N_DEVS; i++)
            waiting |= devs[i].awaiting;
        pthread_mutex_unlock(&mon_lock);
        if (applied_all && !waiting)
            break;
        if (!daemon_alive(&status))
            died = true;
        itest_sleep_ms(1000);
    }
    atomic_store(&stopping, true);
    pthread_join(flood_thread, NULL);

    // Timing rules, from the simulators.
    double guard_violations = sim_stat(S_DTU, "guard_violations");
    double lockups = sim_stat(S_DTU, "lockups");
    double lost_uploads = sim_stat(S_DTU, "lost_uploads");
    double min_persist = sim_stat(S_DTU, "min_persistent_interval_ms");
    double persist_writes = sim_stat(S_DTU, "persistent_writes");
    double ge_early = sim_stat(S_GE, "early_drops");
    double lux_reg11 = sim_stat(S_LUX, "reg11_writes");
    double venus_dropped = sim_stat(S_VENUS, "dropped");
    double venus_gap = sim_stat(S_VENUS, "min_gap_ms");

    int daemon_rc = -1;
    pid_t daemon_pid = daemon_p.pid;
    if (!died)
        daemon_rc = proc_stop(&daemon_p, SIGTERM, 60000);

    // ---- report ----
    bool pass = true;
    say("\n==== soak report ====\n");
    long long ran = (itest_now_ms() - start) / 1000;
    say("ran %lld s: %d broker restarts, %d device faults, %d birth storms, %d command floods\n",
        ran, n_restarts, n_recoveries, storms, floods);

    if (died) {
        pass = false;
        say("daemon: DIED (%s %d)\n", WIFSIGNALED(status) ? "signal" : "exit",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    } else {
        say("daemon: alive throughout, one process (pid %d); exit status on SIGTERM %d\n",
            (int)daemon_pid, daemon_rc);
        pass &= daemon_rc == 0;
    }

    if (wrapped) {
        say("memory: not measured (daemon wrapped)\n");
    } else if (!rss_warm || !rss_max) {
        say("memory: not measured (a run of %d s is too short for a baseline)\n", seconds);
    } else {
        long limit = rss_warm + (rss_warm / 10 > 1024 ? rss_warm / 10 : 1024);
        bool flat = rss_max <= limit;
        say("memory: RSS after warm-up and one cycle %.1f MiB, later max %.1f MiB, end %.1f MiB "
            "(limit %.1f MiB): "
            "%s\n",
            rss_warm / 1024.0, rss_max / 1024.0, rss_end / 1024.0, limit / 1024.0,
            flat ? "flat" : "GREW");
        pass &= flat;
    }

    int late = 0;
    long long worst = 0;
    int worst_i = -1;
    for (int i = 0; i < n_recoveries; i++) {
        struct recovery *r = &recoveries[i];
        if (r->ms < 0 || r->ms > devs[r->dev].bound_ms) {
            late++;
            say("  LATE: %s after '%s': %s (bound %.1f s)\n", devs[r->dev].id, r->fault,
                r->ms < 0 ? "never came back" : "", devs[r->dev].bound_ms / 1000.0);
        }
        if (r->ms > worst) {
            worst = r->ms;
            worst_i = i;
        }
    }
    say("recovery: %d of %d faults came back within bound; slowest %s after '%s' in %.1f s "
        "(bound %.1f s)\n",
        n_recoveries - late, n_recoveries, worst_i >= 0 ? devs[recoveries[worst_i].dev].id : "-",
        worst_i >= 0 ? recoveries[worst_i].fault : "-", worst / 1000.0,
        worst_i >= 0 ? devs[recoveries[worst_i].dev].bound_ms / 1000.0 : 0);
    pass &= late == 0 && n_recoveries > 0;

    bool timing_ok = guard_violations == 0 && lockups == 0 && lost_uploads == 0 && ge_early == 0 &&
                     lux_reg11 == 0 && venus_dropped == 0;
    say("timing: DTU guard violations %.0f, lock-ups %.0f, requests in quiet windows %.0f; "
        "GivEnergy early frames %.0f; LuxPower register 11 writes %.0f; Venus requests "
        "overlapping an answer %.0f (shortest gap %.0f ms)\n",
        guard_violations, lockups, lost_uploads, ge_early, lux_reg11, venus_dropped, venus_gap);
    pass &= timing_ok;

    long values = 0, resets = 0;
    for (int i = 0; i < n_series; i++) {
        values += series[i].values;
        resets += series[i].resets;
    }
    say("energy totals: %d series, %ld values, %ld went backwards%s%s; %ld daily resets\n",
        n_series, values, backwards_total, backwards_total ? ", first: " : "",
        backwards_total ? backwards_example : "", resets);
    pass &= backwards_total == 0 && values > 0;

    long valid = 0, invalid = 0, writes = 0, bad = 0;
    int applied = 0;
    for (size_t i = 0; i < N_TARGETS; i++) {
        struct target *t = &targets[i];
        valid += t->valid;
        invalid += t->invalid;
        writes += t->writes;
        bad += t->bad_writes;
        bool ok = !t->valid || final_value[i] == t->last_valid;
        applied += ok;
        if (!ok)
            say("  NOT APPLIED: %s.%s holds %d, the last valid command was %d\n", devs[t->dev].id,
                t->entity, final_value[i], t->last_valid);
        if (t->bad_writes)
            say("  INVALID WRITE: %s.%s: %s\n", devs[t->dev].id, t->entity, t->bad_example);
    }
    say("commands: %ld sent (%ld valid, %ld invalid, %ld not delivered by the broker); "
        "%ld writes seen by the simulators, %ld of them invalid%s; last valid command applied "
        "on %d of %zu targets; DTU limit: %.0f persistent writes, shortest interval %.0f s\n",
        (long)atomic_load(&flood_sent), valid, invalid, (long)atomic_load(&flood_failed), writes,
        bad, dtu_limit_bad ? " (the DTU held a value never sent)" : "", applied, N_TARGETS,
        persist_writes, isnan(min_persist) ? NAN : min_persist / 1000.0);
    pass &= bad == 0 && dtu_limit_bad == 0 && applied == (int)N_TARGETS && valid > 0;
    pass &= isnan(min_persist) || min_persist >= 60000 - 1000;

    int complete = 0;
    long long slowest = 0;
    for (int i = 0; i < n_restarts; i++) {
        complete += restarts[i].complete_ms >= 0;
        if (restarts[i].complete_ms > slowest)
            slowest = restarts[i].complete_ms;
        if (restarts[i].complete_ms < 0)
            say("  DISCOVERY INCOMPLETE after restart %d (%s)\n", i + 1,
                restarts[i].kept ? "retained kept" : "retained wiped");
    }
    say("discovery: %d devices' configs; complete again after %d of %d broker restarts "
        "(retained kept and wiped alternately), slowest %.1f s\n",
        expected, complete, n_restarts, slowest / 1000.0);
    pass &= complete == n_restarts && expected >= N_DEVS;
    say("result: %s\n", pass ? "PASS" : "FAIL");

    if (mon)
        MQTTClient_disconnect(mon, 1000), MQTTClient_destroy(&mon);
    if (flood)
        MQTTClient_disconnect(flood, 1000), MQTTClient_destroy(&flood);
    for (int s = 0; s < N_SIMS; s++)
        sim_exit((enum sim_id)s);
    broker_stop(&broker);
    if (report_file)
        fclose(report_file);
    ck_assert_msg(pass, "the soak failed (see the report above and %s)", itest_dir());
    itest_cleanup();
}
END_TEST

int main(int argc, char **argv)
{
    const char *e = getenv("E2M_SOAK_SECONDS");
    int s = e && atoi(e) > 0 ? atoi(e) : 1800;
    const struct itest_case all[] = {{"soak", soak}};
    return itest_main("soak", all, 1, s + 600, argc, argv);
}
