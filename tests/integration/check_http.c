// SPDX-License-Identifier: MIT
// The status web server end to end: a real mosquitto, the demo's eight simulated devices and
// the daemon with `http:` on; the API and the metrics are fetched with libcurl and compared
// with what the simulators were told to report. The page case loads the page in headless
// Chromium (ctest label `page`) and keeps its screenshot in the build directory.
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const device_ids[] = {"inverter", "grid_meter",   "plug",   "house",
                                         "balcony",  "home_battery", "hybrid", "givenergy"};

struct rig {
    struct broker broker;
    struct sim inv, meter, plug, house, dtu, battery, hybrid, givenergy;
    struct proc daemon;
    struct collector *mqtt;
    int http_port;
    char base[64]; // http://127.0.0.1:<port>
};

static void rig_start(struct rig *r)
{
    memset(r, 0, sizeof(*r));
    broker_start(&r->broker, false);
    char mqtt_arg[64];
    snprintf(mqtt_arg, sizeof(mqtt_arg), "127.0.0.1:%d", r->broker.port);
    static const char *const inv_args[] = {"--profile", "sunspec", "--port", "0",
                                           "--tick",    "200",     NULL};
    static const char *const meter_args[] = {"--profile", "sdm630", "--port", "0",
                                             "--tick",    "200",    NULL};
    sim_start(&r->inv, inv_args);
    sim_start(&r->meter, meter_args);
    const char *plug_args[] = {"--type", "powermeter", "--name", "plug", "--port", "0", NULL};
    sim_start_bin(&r->plug, "tests/sim/e2m-smartmeter-sim", plug_args);
    const char *house_args[] = {"--type", "smartmeter", "--name",     "smartmeter1", "--port", "0",
                                "--mqtt", mqtt_arg,     "--interval", "1",           NULL};
    sim_start_bin(&r->house, "tests/sim/e2m-smartmeter-sim", house_args);
    // The DTU on a scaled guard (2 s instead of 30 s) so that its countdown is seen quickly.
    const char *dtu_args[] = {"--port",           "0",       "--guard", "2000", "--cloud",
                              "20000,15000,2000", "--power", "640",     NULL};
    sim_start_bin(&r->dtu, "tests/sim/e2m-hoymiles-sim", dtu_args);
    const char *bat_args[] = {"--mqtt", mqtt_arg,       "--type", "HMG-50",
                              "--mac",  "0123456789ab", NULL};
    sim_start_bin(&r->battery, "tests/sim/e2m-venus-sim", bat_args);
    const char *lux_args[] = {"--port",         "0",    "--static", "--tz", "0",
                              "--heartbeat-ms", "1000", NULL};
    sim_start_bin(&r->hybrid, "tests/sim/e2m-luxpower-sim", lux_args);
    const char *ge_args[] = {"--port", "0", "--family", "hybrid", NULL};
    sim_start_bin(&r->givenergy, "tests/sim/e2m-givenergy-sim", ge_args);
    r->mqtt = collector_new(r->broker.port, "#");
    r->http_port = itest_free_port();
    snprintf(r->base, sizeof(r->base), "http://127.0.0.1:%d", r->http_port);
    const char *cfg = itest_write_file(
        "http.yaml",
        "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
        "http: {listen: '127.0.0.1:%d'}\n"
        "state_dir: %s\n"
        "devices:\n"
        "  - {id: inverter, name: Roof inverter, model: sunspec/inverter, host: 127.0.0.1,\n"
        "     port: %d, options: {poll_interval: 500ms, backoff_min: 200ms, backoff_max: 1s,\n"
        "     reply_timeout: 500ms, connect_timeout: 500ms}}\n"
        "  - {id: grid_meter, name: Grid meter, model: eastron/sdm630, host: 127.0.0.1,\n"
        "     port: %d, options: {poll_interval: 500ms}}\n"
        "  - {id: plug, name: Washing machine plug, model: voelkerb/powermeter,\n"
        "     host: 127.0.0.1, port: %d, options: {poll_interval: 1s}}\n"
        "  - {id: house, name: House meter, model: voelkerb/smartmeter, mode: mqtt,\n"
        "     meter: smartmeter1}\n"
        "  - {id: balcony, name: Balcony inverter, model: hoymiles/hms-2t, host: 127.0.0.1,\n"
        "     port: %d, options: {min_request_gap: 2500ms, unsafe_timing: true,\n"
        "     poll_interval: 3s, connect_timeout: 500ms, reply_timeout: 1s, cloud_pause: 'off',\n"
        "     quiet_windows: [{every: 20s, start: 15s, length: 2s}]}}\n"
        "  - {id: home_battery, name: Home battery, model: marstek/venus, type: HMG-50,\n"
        "     mac: '01:23:45:67:89:AB', options: {poll_interval: 10s, bms_interval: 10s,\n"
        "     ct_interval: 10s}}\n"
        "  - {id: hybrid, name: Hybrid inverter, model: luxpower/lxp-hybrid, host: 127.0.0.1,\n"
        "     port: %d, options: {poll_interval: 2s}}\n"
        "  - {id: givenergy, name: GivEnergy hybrid, model: givenergy/hybrid, host: 127.0.0.1,\n"
        "     port: %d, options: {poll_interval: 2s}}\n",
        r->broker.port, r->http_port, itest_dir(), r->inv.ports[0], r->meter.ports[0],
        r->plug.ports[0], r->dtu.ports[0], r->hybrid.ports[0], r->givenergy.ports[0]);
    daemon_start(&r->daemon, cfg, "daemon.log");
    for (size_t i = 0; i < N(device_ids); i++) {
        char topic[128];
        snprintf(topic, sizeof(topic), "energy2mqtt/%s/availability", device_ids[i]);
        char *s = collector_wait(r->mqtt, topic, "online", 20000);
        ck_assert_msg(s, "%s never came online (see %s)", device_ids[i], r->daemon.log);
        free(s);
    }
}

static void rig_stop(struct rig *r)
{
    int rc = proc_stop(&r->daemon, SIGTERM, 30000);
    ck_assert_msg(rc == 0, "the daemon exited with %d (see %s)", rc, r->daemon.log);
    collector_free(r->mqtt);
    struct sim *sims[] = {&r->inv, &r->meter,   &r->plug,   &r->house,
                          &r->dtu, &r->battery, &r->hybrid, &r->givenergy};
    for (size_t i = 0; i < N(sims); i++)
        proc_stop(&sims[i]->p, SIGTERM, 3000);
    broker_stop(&r->broker);
    itest_cleanup();
}

// ---- HTTP -------------------------------------------------------------------------------------

struct body {
    char *text;
    size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    b->text = realloc(b->text, b->len + size * n + 1);
    memcpy(b->text + b->len, data, size * n);
    b->len += size * n;
    b->text[b->len] = '\0';
    return size * n;
}

// Fetches `path` with `method`; returns the body (malloc'd, "" when empty) and the status in
// *status, or NULL when no connection could be made.
static char *http_request(const struct rig *r, const char *method, const char *path, long *status,
                          char *content_type, size_t ct_size)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", r->base, path);
    CURL *c = curl_easy_init();
    struct body b = {calloc(1, 1), 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (content_type)
            snprintf(content_type, ct_size, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.text);
        return NULL;
    }
    return b.text;
}

// GET /api/health with a header of `pad` bytes; returns the status, 0 when the server closed
// the connection without one.
static long get_with_header(const struct rig *r, size_t pad)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/api/health", r->base);
    char *header = malloc(pad + 16);
    strcpy(header, "X-Pad: ");
    memset(header + 7, 'x', pad);
    header[7 + pad] = '\0';
    struct curl_slist *h = curl_slist_append(NULL, header);
    CURL *c = curl_easy_init();
    struct body b = {calloc(1, 1), 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(header);
    free(b.text);
    return status;
}

static json_t *get_json(const struct rig *r, const char *path)
{
    long status;
    char ct[128];
    char *text = http_request(r, "GET", path, &status, ct, sizeof(ct));
    ck_assert_msg(text, "GET %s: no connection", path);
    ck_assert_msg(status == 200, "GET %s: HTTP %ld: %s", path, status, text);
    ck_assert_str_eq(ct, "application/json");
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    ck_assert_msg(j, "GET %s: not JSON (%s): %s", path, err.text, text);
    free(text);
    return j;
}

static json_t *find_entity(json_t *device, const char *id)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(device, "entities"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "id")), id) == 0)
            return e;
    }
    return NULL;
}

// Waits until entity `entity` of `device` in GET /api/devices/<device> is within `tol` of `want`.
static bool wait_api_value(const struct rig *r, const char *device, const char *entity, double want,
                           double tol, int timeout_ms)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/devices/%s", device);
    long long end = itest_now_ms() + timeout_ms;
    while (itest_now_ms() < end) {
        json_t *d = get_json(r, path);
        json_t *v = json_object_get(find_entity(d, entity), "value");
        bool ok = json_is_number(v) && fabs(json_number_value(v) - want) <= tol;
        json_decref(d);
        if (ok)
            return true;
        itest_sleep_ms(200);
    }
    return false;
}

// The value of one sample line of /metrics ("name{labels}"), NAN when absent.
static double metric(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static char *get_metrics(const struct rig *r)
{
    long status;
    char ct[128];
    char *text = http_request(r, "GET", "/metrics", &status, ct, sizeof(ct));
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(strstr(ct, "text/plain; version=0.0.4"));
    return text;
}

START_TEST(api_matches_simulators)
{
    struct rig r;
    rig_start(&r);
    char ok[256];
    // What the simulators are told to report must come out of the API, unit included.
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0 float32 231.25"));
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "set 0 holding 40084 s16 -1"));
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "set 0 holding 40083 s16 12345"));
    ck_assert(sim_command(&r.plug, ok, sizeof(ok), "set power 456"));
    ck_assert_msg(wait_api_value(&r, "grid_meter", "l1_voltage", 231.25, 0.06, 8000),
                  "l1_voltage never showed the simulator's 231.25 V");
    ck_assert_msg(wait_api_value(&r, "inverter", "power", 1235, 0.5, 8000), "power != 1235 W");
    ck_assert_msg(wait_api_value(&r, "plug", "power", 456, 0.5, 8000), "plug power != 456 W");

    json_t *inv = get_json(&r, "/api/devices/inverter");
    json_t *p = find_entity(inv, "power");
    ck_assert_str_eq(json_string_value(json_object_get(p, "unit")), "W");
    ck_assert(json_integer_value(json_object_get(p, "updated")) > 1600000000000LL);
    ck_assert_str_eq(json_string_value(json_object_get(inv, "state")), "online");
    ck_assert_str_eq(json_string_value(json_object_get(inv, "model")), "sunspec/inverter");
    ck_assert_str_eq(json_string_value(json_object_get(inv, "driver")), "modbus");
    ck_assert(json_integer_value(json_object_get(inv, "polls")) > 0);
    ck_assert(json_is_object(json_object_get(inv, "scheduler")));
    // The chart: the last minute holds the power readings.
    json_t *h = json_object_get(inv, "history");
    ck_assert_str_eq(json_string_value(json_object_get(h, "entity")), "power");
    json_t *last = json_array_get(json_object_get(h, "values"), 59);
    ck_assert_msg(json_is_number(last), "no power in the chart's last minute");
    // A string from the common model, exactly as the simulator reports it.
    json_t *mf = json_object_get(find_entity(inv, "manufacturer"), "value");
    ck_assert_str_eq(json_string_value(mf), "energy2mqtt-sim");
    json_decref(inv);

    // Every device is listed, online, with its model.
    json_t *list = get_json(&r, "/api/devices");
    ck_assert_int_eq(json_array_size(list), N(device_ids));
    for (size_t i = 0; i < N(device_ids); i++) {
        json_t *d = json_array_get(list, i);
        ck_assert_str_eq(json_string_value(json_object_get(d, "id")), device_ids[i]);
        ck_assert(json_is_string(json_object_get(d, "model")));
        ck_assert_msg(json_is_true(json_object_get(d, "online")), "%s is not online",
                      device_ids[i]);
        ck_assert(json_is_integer(json_object_get(d, "last_ok")));
        ck_assert(json_is_object(json_object_get(d, "failures")));
    }
    json_decref(list);

    // The DTU's guard: after an exchange the next one waits for the 2.5 s gap, and the wait is
    // counted.
    bool counted = false, seen = false;
    for (long long end = itest_now_ms() + 15000; itest_now_ms() < end && !(counted && seen);) {
        json_t *d = get_json(&r, "/api/devices/balcony");
        json_t *s = json_object_get(d, "scheduler");
        long long left = json_integer_value(json_object_get(s, "guard_remaining_ms"));
        ck_assert_msg(left >= 0 && left <= 2500, "guard %lld ms", left);
        seen |= left > 0;
        counted |= json_integer_value(json_object_get(d, "guard_waits")) > 0;
        ck_assert(json_is_boolean(json_object_get(s, "in_quiet_window")));
        json_decref(d);
        itest_sleep_ms(100);
    }
    ck_assert_msg(seen, "the DTU's guard countdown was never running");
    ck_assert_msg(counted, "no guard wait was counted");

    json_t *health = get_json(&r, "/api/health");
    ck_assert_str_eq(json_string_value(json_object_get(health, "status")), "ok");
    ck_assert(json_is_true(json_object_get(health, "mqtt_connected")));
    ck_assert_int_eq(json_integer_value(json_object_get(health, "devices")), N(device_ids));
    json_decref(health);

    // Read-only, and unknown things are 404.
    long status;
    char *t = http_request(&r, "POST", "/api/devices/inverter", &status, NULL, 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(status, 405);
    free(t);
    t = http_request(&r, "DELETE", "/api/devices/inverter", &status, NULL, 0);
    ck_assert_int_eq(status, 405);
    free(t);
    t = http_request(&r, "GET", "/api/devices/nope", &status, NULL, 0);
    ck_assert_int_eq(status, 404);
    free(t);
    t = http_request(&r, "GET", "/etc/passwd", &status, NULL, 0);
    ck_assert_int_eq(status, 404);
    free(t);
    char ct[128];
    t = http_request(&r, "GET", "/", &status, ct, sizeof(ct));
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(ct, "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(t, "fetch(path"));
    free(t);
    rig_stop(&r);
}
END_TEST

START_TEST(metrics_follow_the_devices)
{
    struct rig r;
    rig_start(&r);
    itest_sleep_ms(1500);
    char *m = get_metrics(&r);
    double polls = metric(m, "e2m_device_polls_total{device=\"inverter\"}");
    ck_assert_msg(polls > 0, "inverter polls: %g\n%s", polls, m);
    ck_assert_double_eq(metric(m, "e2m_device_up{device=\"grid_meter\"}"), 1);
    ck_assert(metric(m, "e2m_device_reply_latency_seconds_count{device=\"inverter\"}") > 0);
    ck_assert(metric(m, "e2m_mqtt_published_total") > 0);
    ck_assert_double_eq(metric(m, "e2m_mqtt_connected"), 1);
    ck_assert_double_eq(metric(m, "e2m_mqtt_connects_total"), 1);
    ck_assert(metric(m, "e2m_mqtt_queue_depth") >= 0);
    ck_assert(metric(m, "e2m_process_resident_memory_bytes") > 1e6);
    ck_assert(metric(m, "e2m_uptime_seconds") > 0);
    free(m);

    // A stalled inverter: timeouts are counted by reason and shown as its last error.
    char ok[256];
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "fault all stall"));
    double timeouts = 0;
    for (long long end = itest_now_ms() + 8000; itest_now_ms() < end && timeouts < 2;) {
        itest_sleep_ms(300);
        m = get_metrics(&r);
        timeouts = metric(m, "e2m_device_failures_total{device=\"inverter\",reason=\"timeout\"}");
        free(m);
    }
    ck_assert_msg(timeouts >= 2, "timeouts: %g", timeouts);
    json_t *d = get_json(&r, "/api/devices/inverter");
    json_t *e = json_array_get(json_object_get(d, "errors"), 0);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "text")), "poll failed"));
    ck_assert(json_integer_value(json_object_get(json_object_get(d, "failures"), "timeout")) >= 2);
    json_decref(d);
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "fault all none"));

    // The metrics and the API count the same polls.
    m = get_metrics(&r);
    json_t *list = get_json(&r, "/api/devices");
    json_t *meter = json_array_get(list, 1);
    double api = (double)json_integer_value(json_object_get(meter, "polls"));
    double prom = metric(m, "e2m_device_polls_total{device=\"grid_meter\"}");
    ck_assert_msg(prom <= api && api - prom <= 3, "metrics %g, API %g", prom, api);
    json_decref(list);
    free(m);
    rig_stop(&r);
}
END_TEST

// Without `http:` nothing listens; with `allow`, other clients are turned away.
START_TEST(off_by_default_and_allow_list)
{
    struct broker b = {0};
    broker_start(&b, false);
    struct collector *c = collector_new(b.port, "#");
    struct rig r = {0};
    r.http_port = itest_free_port();
    snprintf(r.base, sizeof(r.base), "http://127.0.0.1:%d", r.http_port);
    const char *cfg = itest_write_file("off.yaml",
                                       "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 200ms}\n"
                                       "state_dir: %s\n",
                                       b.port, itest_dir());
    struct proc p;
    daemon_start(&p, cfg, "daemon-off.log");
    char *s = collector_wait(c, "energy2mqtt/bridge/availability", "online", 10000);
    ck_assert_ptr_nonnull(s);
    free(s);
    long status;
    ck_assert_ptr_null(http_request(&r, "GET", "/api/health", &status, NULL, 0));
    ck_assert_int_eq(proc_stop(&p, SIGTERM, 30000), 0);

    collector_clear(c);
    cfg = itest_write_file("allow.yaml",
                           "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 200ms}\n"
                           "http: {listen: '127.0.0.1:%d', allow: [172.30.32.2]}\n"
                           "state_dir: %s\n",
                           b.port, r.http_port, itest_dir());
    daemon_start(&p, cfg, "daemon-allow.log");
    s = collector_wait(c, "energy2mqtt/bridge/availability", "online", 10000);
    ck_assert_ptr_nonnull(s);
    free(s);
    char *t = http_request(&r, "GET", "/api/health", &status, NULL, 0);
    ck_assert_msg(!t || status == 0, "a client not in http.allow was served");
    free(t);
    ck_assert_int_eq(proc_stop(&p, SIGTERM, 30000), 0);
    ck_assert(!proc_log_contains(&p, "without http.allow"));

    // Every address and no allow list: served, with a warning. A request's headers are held
    // up to 16 KiB: more is refused, and the server goes on serving.
    collector_clear(c);
    cfg = itest_write_file("open.yaml",
                           "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 200ms}\n"
                           "http: {listen: '0.0.0.0:%d'}\n"
                           "state_dir: %s\n",
                           b.port, r.http_port, itest_dir());
    daemon_start(&p, cfg, "daemon-open.log");
    s = collector_wait(c, "energy2mqtt/bridge/availability", "online", 10000);
    ck_assert_ptr_nonnull(s);
    free(s);
    ck_assert(proc_log_contains(&p, "WARN [http] listening on 0.0.0.0 without http.allow"));
    ck_assert_int_eq(get_with_header(&r, 8 * 1024), 200);
    status = get_with_header(&r, 24 * 1024);
    ck_assert_msg(status == 431, "a 24 KiB header was answered with %ld", status);
    t = http_request(&r, "GET", "/api/health", &status, NULL, 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(status, 200);
    free(t);
    ck_assert_int_eq(proc_stop(&p, SIGTERM, 30000), 0);

    // A taken port is a clear error at start.
    collector_clear(c);
    cfg = itest_write_file("taken.yaml",
                           "mqtt: {url: 'mqtt://127.0.0.1:%d'}\n"
                           "http: {listen: '127.0.0.1:%d'}\n"
                           "state_dir: %s\n",
                           b.port, b.port, itest_dir());
    daemon_start(&p, cfg, "daemon-taken.log");
    ck_assert_int_eq(proc_stop(&p, 0, 10000), 1);
    ck_assert(proc_log_contains(&p, "cannot listen on 127.0.0.1 port"));
    collector_free(c);
    broker_stop(&b);
    itest_cleanup();
}
END_TEST

// ---- the page in headless Chromium ------------------------------------------------------------

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        buf[0] = '\0';
    fclose(f);
    return buf;
}

START_TEST(page_renders_in_chromium)
{
    const char *chromium = getenv("E2M_CHROMIUM");
    if (!chromium || !*chromium)
        chromium = "chromium"; // tools/deps.sh test installs Debian's package
    struct rig r;
    rig_start(&r);
    // Every device has values by now (the DTU after its first guard).
    for (size_t i = 0; i < N(device_ids); i++) {
        char topic[128];
        snprintf(topic, sizeof(topic), "energy2mqtt/%s/state", device_ids[i]);
        free(collector_wait(r.mqtt, topic, NULL, 15000));
    }
    ck_assert(wait_api_value(&r, "balcony", "ac_power", 64.0, 1e9, 15000));
    const char *d = itest_dir();
    // The profile, DOM and console log live in the test directory; the screenshot is kept.
    const char *shot = E2M_BINARY_DIR "/tests/integration/page-screenshot.png";
    const char *flags = "--headless --no-sandbox --disable-gpu --no-first-run "
                        "--disable-dev-shm-usage --hide-scrollbars --enable-logging=stderr --v=0 "
                        "--virtual-time-budget=8000 --window-size=1400,2200";
    int rc = itest_sh("'%s' %s --user-data-dir=%s/chrome-dom --dump-dom %s/ >%s/dom.html "
                      "2>%s/chrome-dom.log",
                      chromium, flags, d, r.base, d, d);
    ck_assert_msg(rc == 0, "chromium --dump-dom failed (%d), see %s/chrome-dom.log", rc, d);
    rc = itest_sh("'%s' %s --user-data-dir=%s/chrome-shot --screenshot=%s %s/ >%s/chrome-shot.out "
                  "2>%s/chrome-shot.log",
                  chromium, flags, d, shot, r.base, d, d);
    ck_assert_msg(rc == 0, "chromium --screenshot failed (%d)", rc);
    FILE *f = fopen(shot, "rb");
    ck_assert_msg(f, "no screenshot at %s", shot);
    fseek(f, 0, SEEK_END);
    ck_assert_msg(ftell(f) > 10000, "the screenshot is nearly empty");
    fclose(f);

    char path[512];
    snprintf(path, sizeof(path), "%s/dom.html", d);
    char *dom = read_file(path);
    ck_assert_ptr_nonnull(dom);
    ck_assert_msg(strstr(dom, "data-ready=\"1\""), "the page never finished loading:\n%.2000s",
                  dom);
    for (size_t i = 0; i < N(device_ids); i++) {
        char card[128];
        snprintf(card, sizeof(card), "data-device=\"%s\"", device_ids[i]);
        char *at = strstr(dom, card);
        ck_assert_msg(at, "no card for %s", device_ids[i]);
        // The card shows its availability and at least one value with a unit.
        char *next = strstr(at + 1, "<section");
        size_t len = next ? (size_t)(next - at) : strlen(at);
        char *c = strndup(at, len);
        ck_assert_msg(strstr(c, "data-state=\"online\""), "%s is not shown online: %.600s",
                      device_ids[i], c);
        bool unit = false;
        for (const char *u = " W</td>\0 V</td>\0 A</td>\0 %</td>\0 kWh</td>\0"; *u;
             u += strlen(u) + 1)
            unit |= strstr(c, u) != NULL;
        ck_assert_msg(unit, "%s shows no values with units: %.1500s", device_ids[i], c);
        free(c);
    }
    ck_assert_msg(strstr(dom, "<svg class=\"chart\""), "no power chart on the page");
    ck_assert_msg(strstr(dom, "guard "), "no guard state on the page");
    // Chromium logs the page's console messages as CONSOLE lines: none may be an error.
    for (const char *log = "chrome-dom.log"; log;
         log = strcmp(log, "chrome-dom.log") == 0 ? "chrome-shot.log" : NULL) {
        snprintf(path, sizeof(path), "%s/%s", d, log);
        char *text = read_file(path);
        ck_assert_ptr_nonnull(text);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            ck_assert_msg(!strstr(line, "CONSOLE") && !strstr(line, "Uncaught"),
                          "console message from the page: %s", line);
        free(text);
    }
    free(dom);
    rig_stop(&r);
}
END_TEST

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct itest_case all[] = {
        {"api_matches_simulators", api_matches_simulators},
        {"metrics_follow_the_devices", metrics_follow_the_devices},
        {"off_by_default_and_allow_list", off_by_default_and_allow_list},
        {"page_renders_in_chromium", page_renders_in_chromium},
    };
    int rc = itest_main("http", all, N(all), 180, argc, argv);
    curl_global_cleanup();
    return rc;
}
