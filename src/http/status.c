// SPDX-License-Identifier: MIT
// JSON documents of the HTTP API and the Prometheus metrics, from snapshots.
#include "http/status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static const char *const write_results[] = {"ok", "failed", "refused", "dropped"};

static json_t *time_or_null(int64_t wall_ms)
{
    return wall_ms > 0 ? json_integer((json_int_t)wall_ms) : json_null();
}

json_t *status_value_json(const struct value *v)
{
    if (!v)
        return json_null();
    switch (v->kind) {
    case VALUE_NUMBER: return isfinite(v->num) ? json_real(v->num) : json_null();
    case VALUE_TEXT: return json_string(v->text ? v->text : "");
    default: return json_null();
    }
}

json_t *status_health(const struct status_bridge *b, const struct status_device *devs, size_t n)
{
    size_t online = 0;
    for (size_t i = 0; i < n; i++)
        online += devs[i].state == SCHED_STATE_ONLINE;
    return json_pack("{s:s,s:s,s:I,s:b,s:I,s:I}", "status", "ok", "version", b->version, "uptime_s",
                     (json_int_t)(b->uptime_ms / 1000), "mqtt_connected", b->mqtt.connected,
                     "devices", (json_int_t)n, "devices_online", (json_int_t)online);
}

json_t *status_device_summary(const struct status_device *d)
{
    const struct device_stats *s = &d->stats;
    json_t *failures = json_object();
    for (int f = 0; f < DEVICE_FAIL_N; f++)
        json_object_set_new(failures, device_failure_name((enum device_failure)f),
                            json_integer((json_int_t)s->failures[f]));
    uint64_t wr[4] = {s->writes, s->writes_failed, s->writes_refused, s->writes_dropped};
    json_t *writes = json_object();
    for (size_t k = 0; k < 4; k++)
        json_object_set_new(writes, write_results[k], json_integer((json_int_t)wr[k]));
    json_t *errors = json_array();
    for (size_t k = 0; k < d->n_errors; k++)
        json_array_append_new(errors,
                              json_pack("{s:I,s:s}", "time", (json_int_t)d->errors[k].wall_ms,
                                        "text", d->errors[k].text));
    return json_pack(
        "{s:s,s:s,s:s,s:s?,s:s?,s:s,s:b,s:o,s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:o}", "id", d->id, "name",
        d->name ? d->name : d->id, "model", d->model, "manufacturer", d->manufacturer, "driver",
        d->driver, "state", sched_state_name(d->state), "online", d->state == SCHED_STATE_ONLINE,
        "last_ok", time_or_null(d->last_ok_ms), "polls", (json_int_t)s->polls, "poll_errors",
        (json_int_t)s->poll_errors, "failures", failures, "writes", writes, "guard_waits",
        (json_int_t)d->sched.guard_waits, "counter_rejects", (json_int_t)s->guard_rejects,
        "pending_writes", (json_int_t)d->sched.pending_writes, "errors", errors);
}

static json_t *history_json(const struct status_device *d, int64_t now_ms)
{
    double v[HISTORY_MINUTES];
    int64_t first = history_get(d->history, now_ms, v);
    json_t *values = json_array();
    for (size_t i = 0; i < HISTORY_MINUTES; i++)
        json_array_append_new(values,
                              isfinite(v[i]) ? json_real(round(v[i] * 10) / 10) : json_null());
    return json_pack("{s:s,s:s?,s:I,s:i,s:o}", "entity", d->history_entity, "unit", d->history_unit,
                     "start", (json_int_t)(first * 60000), "step_s", 60, "values", values);
}

json_t *status_device_detail(const struct status_device *d, int64_t now_ms)
{
    json_t *o = status_device_summary(d);
    const struct sched_status *ss = &d->sched;
    json_object_set_new(
        o, "scheduler",
        json_pack("{s:b,s:o,s:I,s:b,s:I,s:I}", "in_flight", ss->in_flight, "next_request_ms",
                  d->next_request_ms >= 0 ? json_integer((json_int_t)d->next_request_ms)
                                          : json_null(),
                  "guard_remaining_ms", (json_int_t)ss->guard_remaining_ms, "in_quiet_window",
                  ss->in_quiet_window, "pending_writes", (json_int_t)ss->pending_writes,
                  "failures_in_row", (json_int_t)ss->failures));
    json_t *ents = json_array();
    for (size_t i = 0; i < d->n_entities; i++) {
        const struct status_entity *e = &d->entities[i];
        json_t *j = json_pack("{s:s,s:s?,s:s,s:s?,s:s?,s:s?,s:b,s:o,s:o}", "id", e->id, "name",
                              e->name, "component", e->component, "unit", e->unit, "device_class",
                              e->device_class, "category", e->category, "enabled",
                              e->enabled_by_default, "value", status_value_json(e->value),
                              "updated", time_or_null(e->value ? e->value->updated_ms : 0));
        if (e->pending)
            json_object_set_new(j, "pending", json_string(e->pending_txt ? e->pending_txt : ""));
        json_array_append_new(ents, j);
    }
    json_object_set_new(o, "entities", ents);
    json_object_set_new(o, "history", d->history ? history_json(d, now_ms) : json_null());
    return o;
}

// ---- Prometheus -------------------------------------------------------------------------------

// Label values are device ids (a-z, 0-9, _ and -) and fixed words, but escape anyway.
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(FILE *f, const char *name, uint64_t v)
{
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

// One sample per device of a counter or gauge taken from the snapshot by `get`.
static void per_device(FILE *f, const struct status_device *devs, size_t n, const char *name,
                       const char *type, const char *help,
                       uint64_t (*get)(const struct status_device *d))
{
    family(f, name, type, help);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{device=\"", name);
        label(f, devs[i].id);
        fprintf(f, "\"} %llu\n", (unsigned long long)get(&devs[i]));
    }
}

static uint64_t get_up(const struct status_device *d)
{
    return d->state == SCHED_STATE_ONLINE;
}
static uint64_t get_polls(const struct status_device *d)
{
    return d->stats.polls;
}
static uint64_t get_poll_errors(const struct status_device *d)
{
    return d->stats.poll_errors;
}
static uint64_t get_guard_waits(const struct status_device *d)
{
    return d->sched.guard_waits;
}
static uint64_t get_rejects(const struct status_device *d)
{
    return d->stats.guard_rejects;
}
static uint64_t get_pending(const struct status_device *d)
{
    return d->sched.pending_writes;
}

char *status_metrics(const struct status_bridge *b, const struct status_device *devs, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return xstrdup("");
    family(f, "e2m_build_info", "gauge", "energy2mqtt version.");
    fputs("e2m_build_info{version=\"", f);
    label(f, b->version);
    fputs("\"} 1\n", f);
    family(f, "e2m_uptime_seconds", "gauge", "Seconds since the daemon started.");
    fprintf(f, "e2m_uptime_seconds %.3f\n", (double)b->uptime_ms / 1000.0);
    family(f, "e2m_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
    sample_u(f, "e2m_process_resident_memory_bytes", b->rss_bytes);

    const struct link_stats *m = &b->mqtt;
    family(f, "e2m_mqtt_connected", "gauge", "1 while connected to the broker.");
    sample_u(f, "e2m_mqtt_connected", m->connected);
    family(f, "e2m_mqtt_connects_total", "counter", "Successful connections to the broker.");
    sample_u(f, "e2m_mqtt_connects_total", m->connects);
    family(f, "e2m_mqtt_reconnects_total", "counter",
           "Connections after the first (the broker went away and came back).");
    sample_u(f, "e2m_mqtt_reconnects_total", m->connects ? m->connects - 1 : 0);
    family(f, "e2m_mqtt_published_total", "counter", "Messages handed to the MQTT library.");
    sample_u(f, "e2m_mqtt_published_total", m->published);
    family(f, "e2m_mqtt_dropped_total", "counter",
           "Messages dropped: queue full, refused, or published while disconnected.");
    sample_u(f, "e2m_mqtt_dropped_total", m->dropped);
    family(f, "e2m_mqtt_replaced_total", "counter",
           "Queued messages replaced by a newer one to the same topic before being sent.");
    sample_u(f, "e2m_mqtt_replaced_total", m->replaced);
    family(f, "e2m_mqtt_received_total", "counter", "Messages received.");
    sample_u(f, "e2m_mqtt_received_total", m->received);
    family(f, "e2m_mqtt_oversized_total", "counter",
           "Messages received over the inbound size limit, ignored.");
    sample_u(f, "e2m_mqtt_oversized_total", m->oversized);
    family(f, "e2m_mqtt_queue_depth", "gauge", "Messages waiting for room in flight.");
    sample_u(f, "e2m_mqtt_queue_depth", m->queued);
    family(f, "e2m_mqtt_inflight", "gauge", "Messages handed to the library, not yet delivered.");
    sample_u(f, "e2m_mqtt_inflight", m->inflight);
    family(f, "e2m_commands_total", "counter", "Commands received from Home Assistant.");
    sample_u(f, "e2m_commands_total", b->commands);
    family(f, "e2m_commands_refused_total", "counter", "Commands refused (invalid, unknown).");
    sample_u(f, "e2m_commands_refused_total", b->commands_refused);

    per_device(f, devs, n, "e2m_device_up", "gauge", "1 while the device is online.", get_up);
    per_device(f, devs, n, "e2m_device_polls_total", "counter", "Read requests completed.",
               get_polls);
    per_device(f, devs, n, "e2m_device_poll_failures_total", "counter",
               "Read requests that failed.", get_poll_errors);
    family(f, "e2m_device_failures_total", "counter",
           "Failed exchanges (reads and writes) by reason.");
    for (size_t i = 0; i < n; i++) {
        for (int r = 0; r < DEVICE_FAIL_N; r++) {
            fputs("e2m_device_failures_total{device=\"", f);
            label(f, devs[i].id);
            fprintf(f, "\",reason=\"%s\"} %llu\n", device_failure_name((enum device_failure)r),
                    (unsigned long long)devs[i].stats.failures[r]);
        }
    }
    family(f, "e2m_device_writes_total", "counter", "Writes by result.");
    for (size_t i = 0; i < n; i++) {
        const struct device_stats *s = &devs[i].stats;
        uint64_t wr[4] = {s->writes, s->writes_failed, s->writes_refused, s->writes_dropped};
        for (size_t k = 0; k < 4; k++) {
            fputs("e2m_device_writes_total{device=\"", f);
            label(f, devs[i].id);
            fprintf(f, "\",result=\"%s\"} %llu\n", write_results[k], (unsigned long long)wr[k]);
        }
    }
    per_device(f, devs, n, "e2m_device_guard_waits_total", "counter",
               "Exchanges that waited for the request gap, a backoff or a quiet window.",
               get_guard_waits);
    per_device(f, devs, n, "e2m_device_counter_rejects_total", "counter",
               "Energy counter readings held back by the counter guard.", get_rejects);
    per_device(f, devs, n, "e2m_device_pending_writes", "gauge", "Commands waiting to be sent.",
               get_pending);
    family(f, "e2m_device_last_success_timestamp_seconds", "gauge",
           "Unix time of the last good exchange (0: never).");
    for (size_t i = 0; i < n; i++) {
        fputs("e2m_device_last_success_timestamp_seconds{device=\"", f);
        label(f, devs[i].id);
        fprintf(f, "\"} %.3f\n", (double)devs[i].last_ok_ms / 1000.0);
    }
    family(f, "e2m_device_reply_latency_seconds", "histogram",
           "Time from sending a request to the end of its answer.");
    for (size_t i = 0; i < n; i++) {
        const struct device_stats *s = &devs[i].stats;
        uint64_t cum = 0;
        for (size_t k = 0; k <= DEVICE_LATENCY_BOUNDS; k++) {
            cum += s->latency[k];
            fputs("e2m_device_reply_latency_seconds_bucket{device=\"", f);
            label(f, devs[i].id);
            if (k < DEVICE_LATENCY_BOUNDS)
                fprintf(f, "\",le=\"%g\"} %llu\n", device_latency_bounds_s[k],
                        (unsigned long long)cum);
            else
                fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        fputs("e2m_device_reply_latency_seconds_sum{device=\"", f);
        label(f, devs[i].id);
        fprintf(f, "\"} %.6f\n", s->latency_sum_s);
        fputs("e2m_device_reply_latency_seconds_count{device=\"", f);
        label(f, devs[i].id);
        fprintf(f, "\"} %llu\n", (unsigned long long)cum);
    }
    fclose(f);
    return text;
}
