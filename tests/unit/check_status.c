// SPDX-License-Identifier: MIT
// Unit tests for the HTTP API documents and the Prometheus metrics (http/status) and the
// power history (http/history).
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/history.h"
#include "http/status.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

// ---- history --------------------------------------------------------------------------------

enum { MIN = 60000, T0 = 1000 * MIN }; // minute 1000 of the Unix epoch

START_TEST(test_history_averages_per_minute)
{
    struct history h;
    history_init(&h);
    double v[HISTORY_MINUTES];
    int64_t first = history_get(&h, T0, v);
    ck_assert_int_eq(first, 1000 - 59);
    for (size_t i = 0; i < HISTORY_MINUTES; i++)
        ck_assert(isnan(v[i]));

    history_add(&h, T0 + 1000, 100);
    history_add(&h, T0 + 2000, 200); // same minute: averaged
    history_add(&h, T0 + MIN, 50);
    history_add(&h, T0 + 3 * MIN + 5, 400); // minute 1002 stays empty
    history_add(&h, T0 + 2 * MIN, 999);     // older than the current minute: ignored
    first = history_get(&h, T0 + 3 * MIN + 10, v);
    ck_assert_int_eq(first, 1003 - 59);
    ck_assert_double_eq_tol(v[56], 150, 1e-9); // minute 1000
    ck_assert_double_eq_tol(v[57], 50, 1e-9);  // minute 1001
    ck_assert(isnan(v[58]));                   // minute 1002
    ck_assert_double_eq_tol(v[59], 400, 1e-9); // minute 1003, still accumulating
    ck_assert(isnan(v[55]));
    history_add(&h, T0 + 3 * MIN + 20, 600);
    history_get(&h, T0 + 3 * MIN + 30, v);
    ck_assert_double_eq_tol(v[59], 500, 1e-9);
    history_add(&h, T0 + 3 * MIN + 30, NAN); // not a reading
    history_get(&h, T0 + 3 * MIN + 30, v);
    ck_assert_double_eq_tol(v[59], 500, 1e-9);
}
END_TEST

// Readings for an hour and a half: only the last hour is returned, and a long silence leaves
// nothing behind.
START_TEST(test_history_window_and_gaps)
{
    struct history h;
    history_init(&h);
    for (int m = 0; m < 90; m++)
        history_add(&h, T0 + (int64_t)m * MIN, m);
    double v[HISTORY_MINUTES];
    int64_t first = history_get(&h, T0 + 89 * MIN, v);
    ck_assert_int_eq(first, 1000 + 30);
    for (int i = 0; i < HISTORY_MINUTES; i++)
        ck_assert_double_eq_tol(v[i], 30 + i, 1e-9);
    // Twenty minutes later without readings: those minutes are empty.
    history_get(&h, T0 + 109 * MIN, v);
    ck_assert_double_eq_tol(v[39], 89, 1e-9);
    for (int i = 40; i < HISTORY_MINUTES; i++)
        ck_assert(isnan(v[i]));
    // Two hours of silence, then one reading: only that one is there.
    history_add(&h, T0 + 300 * MIN, 7);
    history_get(&h, T0 + 300 * MIN, v);
    for (int i = 0; i < HISTORY_MINUTES - 1; i++)
        ck_assert_msg(isnan(v[i]), "minute %d kept an old value", i);
    ck_assert_double_eq_tol(v[59], 7, 1e-9);
}
END_TEST

// ---- API documents --------------------------------------------------------------------------

static struct value values[3];
static struct status_entity entities[3];

static void make_device(struct status_device *d, const char *id, enum sched_state st)
{
    memset(d, 0, sizeof(*d));
    d->id = id;
    d->name = "Roof inverter";
    d->model = "sunspec/inverter";
    d->manufacturer = "SunSpec";
    d->driver = "modbus";
    d->state = st;
    d->stats.polls = 42;
    d->stats.poll_errors = 3;
    d->stats.failures[DEVICE_FAIL_TIMEOUT] = 2;
    d->stats.failures[DEVICE_FAIL_CONNECT] = 1;
    d->stats.writes = 5;
    d->stats.writes_refused = 1;
    d->stats.guard_rejects = 4;
    d->stats.latency[0] = 10; // <= 5 ms
    d->stats.latency[3] = 2;  // <= 50 ms
    d->stats.latency[DEVICE_LATENCY_BOUNDS] = 1;
    d->stats.latency_sum_s = 12.25;
    d->sched.guard_waits = 7;
    d->sched.pending_writes = 1;
    d->sched.guard_remaining_ms = 1500;
    d->sched.in_quiet_window = true;
    d->next_request_ms = 2000;
    d->last_ok_ms = 1700000000123;
    d->n_errors = 1;
    d->errors[0].wall_ms = 1700000000000;
    snprintf(d->errors[0].text, sizeof(d->errors[0].text), "poll failed: no answer");
}

START_TEST(test_summary)
{
    struct status_device d;
    make_device(&d, "roof", SCHED_STATE_ONLINE);
    json_t *j = status_device_summary(&d);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "roof");
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "online");
    ck_assert(json_is_true(json_object_get(j, "online")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "last_ok")), 1700000000123);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "polls")), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "poll_errors")), 3);
    json_t *f = json_object_get(j, "failures");
    ck_assert_int_eq(json_integer_value(json_object_get(f, "timeout")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(f, "connect")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(f, "protocol")), 0);
    json_t *w = json_object_get(j, "writes");
    ck_assert_int_eq(json_integer_value(json_object_get(w, "ok")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "refused")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "guard_waits")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "counter_rejects")), 4);
    json_t *e = json_array_get(json_object_get(j, "errors"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "text")), "poll failed: no answer");
    ck_assert_ptr_null(json_object_get(j, "entities")); // summaries carry no entities
    json_decref(j);

    make_device(&d, "never", SCHED_STATE_STARTING);
    d.last_ok_ms = 0;
    d.name = NULL;
    j = status_device_summary(&d);
    ck_assert(json_is_null(json_object_get(j, "last_ok")));
    ck_assert(json_is_false(json_object_get(j, "online")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "never");
    json_decref(j);
}
END_TEST

START_TEST(test_detail)
{
    struct status_device d;
    make_device(&d, "roof", SCHED_STATE_ONLINE);
    values[0] = (struct value){.kind = VALUE_NUMBER, .num = 1234.5, .updated_ms = 1700000000500};
    values[1] = (struct value){.kind = VALUE_TEXT, .text = "Throttled", .updated_ms = 5};
    values[2] = (struct value){.kind = VALUE_UNKNOWN};
    entities[0] = (struct status_entity){.id = "power",
                                         .component = "sensor",
                                         .unit = "W",
                                         .device_class = "power",
                                         .enabled_by_default = true,
                                         .value = &values[0]};
    entities[1] = (struct status_entity){
        .id = "status", .name = "Operating state", .component = "sensor", .value = &values[1]};
    entities[2] = (struct status_entity){.id = "power_limit",
                                         .component = "number",
                                         .unit = "%",
                                         .category = "config",
                                         .value = &values[2],
                                         .pending = true,
                                         .pending_txt = "40"};
    d.entities = entities;
    d.n_entities = N(entities);
    struct history h;
    history_init(&h);
    history_add(&h, T0 + 10, 640.04);
    d.history = &h;
    d.history_entity = "power";
    d.history_unit = "W";

    json_t *j = status_device_detail(&d, T0 + 20);
    json_t *s = json_object_get(j, "scheduler");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "guard_remaining_ms")), 1500);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "next_request_ms")), 2000);
    ck_assert(json_is_true(json_object_get(s, "in_quiet_window")));
    ck_assert(json_is_false(json_object_get(s, "in_flight")));
    ck_assert_int_eq(json_integer_value(json_object_get(s, "pending_writes")), 1);
    json_t *ents = json_object_get(j, "entities");
    ck_assert_int_eq(json_array_size(ents), 3);
    json_t *p = json_array_get(ents, 0);
    ck_assert_str_eq(json_string_value(json_object_get(p, "id")), "power");
    ck_assert_double_eq(json_real_value(json_object_get(p, "value")), 1234.5);
    ck_assert_str_eq(json_string_value(json_object_get(p, "unit")), "W");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "updated")), 1700000000500);
    ck_assert(json_is_null(json_object_get(p, "name")));
    ck_assert_ptr_null(json_object_get(p, "pending"));
    ck_assert(json_is_true(json_object_get(p, "enabled")));
    json_t *st = json_array_get(ents, 1);
    ck_assert_str_eq(json_string_value(json_object_get(st, "value")), "Throttled");
    ck_assert_str_eq(json_string_value(json_object_get(st, "name")), "Operating state");
    json_t *lim = json_array_get(ents, 2);
    ck_assert(json_is_null(json_object_get(lim, "value")));
    ck_assert(json_is_null(json_object_get(lim, "updated")));
    ck_assert_str_eq(json_string_value(json_object_get(lim, "pending")), "40");
    ck_assert_str_eq(json_string_value(json_object_get(lim, "category")), "config");
    ck_assert(json_is_false(json_object_get(lim, "enabled")));
    json_t *hist = json_object_get(j, "history");
    ck_assert_str_eq(json_string_value(json_object_get(hist, "entity")), "power");
    ck_assert_int_eq(json_integer_value(json_object_get(hist, "step_s")), 60);
    ck_assert_int_eq(json_integer_value(json_object_get(hist, "start")), (1000 - 59) * 60000LL);
    json_t *vals = json_object_get(hist, "values");
    ck_assert_int_eq(json_array_size(vals), HISTORY_MINUTES);
    ck_assert(json_is_null(json_array_get(vals, 0)));
    ck_assert_double_eq_tol(json_real_value(json_array_get(vals, 59)), 640.0, 1e-9);
    json_decref(j);

    // No chart entity, nothing planned.
    d.history = NULL;
    d.next_request_ms = -1;
    j = status_device_detail(&d, T0);
    ck_assert(json_is_null(json_object_get(j, "history")));
    ck_assert(json_is_null(json_object_get(json_object_get(j, "scheduler"), "next_request_ms")));
    json_decref(j);
}
END_TEST

START_TEST(test_health)
{
    struct status_device d[3];
    make_device(&d[0], "a", SCHED_STATE_ONLINE);
    make_device(&d[1], "b", SCHED_STATE_OFFLINE);
    make_device(&d[2], "c", SCHED_STATE_ONLINE);
    struct status_bridge b = {.version = "1.2.3", .uptime_ms = 61999};
    b.mqtt.connected = true;
    json_t *j = status_health(&b, d, 3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "1.2.3");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "uptime_s")), 61);
    ck_assert(json_is_true(json_object_get(j, "mqtt_connected")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "devices")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "devices_online")), 2);
    json_decref(j);
}
END_TEST

// ---- metrics --------------------------------------------------------------------------------

struct metric_row {
    const char *line; // a whole sample line that must be present
};

static const struct metric_row metric_rows[] = {
    {"e2m_build_info{version=\"1.2.3\"} 1"},
    {"e2m_uptime_seconds 61.999"},
    {"e2m_process_resident_memory_bytes 7340032"},
    {"e2m_mqtt_connected 1"},
    {"e2m_mqtt_connects_total 3"},
    {"e2m_mqtt_reconnects_total 2"},
    {"e2m_mqtt_published_total 1000"},
    {"e2m_mqtt_dropped_total 4"},
    {"e2m_mqtt_oversized_total 5"},
    {"e2m_mqtt_queue_depth 17"},
    {"e2m_commands_total 9"},
    {"e2m_commands_refused_total 2"},
    {"e2m_device_up{device=\"roof\"} 1"},
    {"e2m_device_up{device=\"meter\"} 0"},
    {"e2m_device_polls_total{device=\"roof\"} 42"},
    {"e2m_device_poll_failures_total{device=\"roof\"} 3"},
    {"e2m_device_failures_total{device=\"roof\",reason=\"timeout\"} 2"},
    {"e2m_device_failures_total{device=\"roof\",reason=\"connect\"} 1"},
    {"e2m_device_failures_total{device=\"meter\",reason=\"protocol\"} 0"},
    {"e2m_device_writes_total{device=\"roof\",result=\"ok\"} 5"},
    {"e2m_device_writes_total{device=\"roof\",result=\"refused\"} 1"},
    {"e2m_device_guard_waits_total{device=\"roof\"} 7"},
    {"e2m_device_counter_rejects_total{device=\"roof\"} 4"},
    {"e2m_device_pending_writes{device=\"roof\"} 1"},
    {"e2m_device_last_success_timestamp_seconds{device=\"roof\"} 1700000000.123"},
    {"e2m_device_reply_latency_seconds_bucket{device=\"roof\",le=\"0.005\"} 10"},
    {"e2m_device_reply_latency_seconds_bucket{device=\"roof\",le=\"0.025\"} 10"},
    {"e2m_device_reply_latency_seconds_bucket{device=\"roof\",le=\"0.05\"} 12"},
    {"e2m_device_reply_latency_seconds_bucket{device=\"roof\",le=\"10\"} 12"},
    {"e2m_device_reply_latency_seconds_bucket{device=\"roof\",le=\"+Inf\"} 13"},
    {"e2m_device_reply_latency_seconds_sum{device=\"roof\"} 12.250000"},
    {"e2m_device_reply_latency_seconds_count{device=\"roof\"} 13"},
    {"# TYPE e2m_device_reply_latency_seconds histogram"},
    {"# TYPE e2m_device_failures_total counter"},
    {"# TYPE e2m_mqtt_queue_depth gauge"},
};

static char *metrics_text(void)
{
    struct status_device d[2];
    make_device(&d[0], "roof", SCHED_STATE_ONLINE);
    make_device(&d[1], "meter", SCHED_STATE_OFFLINE);
    struct status_bridge b = {.version = "1.2.3",
                              .uptime_ms = 61999,
                              .rss_bytes = 7 * 1024 * 1024,
                              .commands = 9,
                              .commands_refused = 2};
    b.mqtt = (struct link_stats){.connected = true,
                                 .published = 1000,
                                 .dropped = 4,
                                 .oversized = 5,
                                 .connects = 3,
                                 .queued = 17};
    return status_metrics(&b, d, 2);
}

START_TEST(test_metrics_lines)
{
    char *text = metrics_text();
    char want[300];
    snprintf(want, sizeof(want), "\n%s\n", metric_rows[_i].line);
    ck_assert_msg(strstr(text, want), "missing line: %s\n%s", metric_rows[_i].line, text);
    free(text);
}
END_TEST

// The exposition format: every sample's family is declared once, before its samples, with
// HELP and TYPE; every sample line is "name{labels} value" with a number for the value.
START_TEST(test_metrics_format)
{
    char *text = metrics_text();
    char declared[64][80];
    size_t n_declared = 0;
    char *save = NULL;
    size_t samples = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[80];
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (sscanf(line, "# TYPE %79s", name) == 1) {
            for (size_t k = 0; k < n_declared; k++)
                ck_assert_msg(strcmp(declared[k], name) != 0, "%s declared twice", name);
            ck_assert_uint_lt(n_declared, 64);
            snprintf(declared[n_declared++], sizeof(declared[0]), "%s", name);
            continue;
        }
        samples++;
        size_t len = strcspn(line, "{ ");
        ck_assert_uint_lt(len, sizeof(name));
        memcpy(name, line, len);
        name[len] = '\0';
        // Histogram samples belong to the family without their suffix.
        for (const char *suffix = "_bucket\0_sum\0_count\0"; *suffix;
             suffix += strlen(suffix) + 1) {
            size_t sl = strlen(suffix);
            if (len > sl && strcmp(name + len - sl, suffix) == 0 &&
                strcmp(declared[n_declared - 1], name) != 0) {
                name[len - sl] = '\0';
                break;
            }
        }
        ck_assert_msg(n_declared && strcmp(declared[n_declared - 1], name) == 0,
                      "sample %s outside its family", line);
        const char *value = strrchr(line, ' ');
        ck_assert_ptr_nonnull(value);
        char *end;
        strtod(value + 1, &end);
        ck_assert_msg(*end == '\0' && end != value + 1, "not a number in: %s", line);
    }
    ck_assert_uint_gt(samples, 40);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("history");
    tcase_add_test(tc, test_history_averages_per_minute);
    tcase_add_test(tc, test_history_window_and_gaps);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, test_summary);
    tcase_add_test(tc, test_detail);
    tcase_add_test(tc, test_health);
    suite_add_tcase(s, tc);
    tc = tcase_create("metrics");
    tcase_add_loop_test(tc, test_metrics_lines, 0, (int)N(metric_rows));
    tcase_add_test(tc, test_metrics_format);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
