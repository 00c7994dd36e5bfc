// SPDX-License-Identifier: MIT
// What the HTTP API and the metrics say, rendered from plain snapshots.
//
// The daemon fills the snapshots from its devices and the MQTT link on the loop thread; the
// renderers only format them, so they are tested without devices, sockets or clocks.
#ifndef E2M_STATUS_H
#define E2M_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/device.h"
#include "core/sched.h"
#include "core/state.h"
#include "http/history.h"
#include "mqtt/link.h"

struct status_entity {
    const char *id, *name, *component, *unit, *device_class, *category;
    bool enabled_by_default; // false: Home Assistant shows it only once the user enables it
    const struct value *value;
    bool pending;            // a command waits to be sent
    const char *pending_txt; // what it carries, as text
};

struct status_device {
    const char *id, *name, *model, *manufacturer, *driver;
    enum sched_state state;
    struct device_stats stats;
    struct sched_status sched;
    int64_t next_request_ms; // until the next exchange may start; -1 unknown or in flight
    int64_t last_ok_ms;      // wall clock of the last good exchange, 0 = never
    struct device_error errors[DEVICE_ERRORS];
    size_t n_errors;
    const struct status_entity *entities; // NULL in summaries
    size_t n_entities;
    const struct history *history; // NULL: no power chart for this device
    const char *history_entity, *history_unit;
};

struct status_bridge {
    const char *version;
    int64_t now_ms;    // wall clock
    int64_t uptime_ms; // since the daemon started
    size_t rss_bytes;
    struct link_stats mqtt;
    uint64_t commands, commands_refused;
};

// GET /api/health: {"status":"ok", version, uptime, mqtt connected, devices, online}.
json_t *status_health(const struct status_bridge *b, const struct status_device *devs, size_t n);
// One element of GET /api/devices: identity, availability, last good exchange, counters.
json_t *status_device_summary(const struct status_device *d);
// GET /api/devices/<id>: the summary plus every entity, the scheduler's view and the chart.
json_t *status_device_detail(const struct status_device *d, int64_t now_ms);
// GET /metrics: the Prometheus text exposition format (version 0.0.4), malloc'd.
char *status_metrics(const struct status_bridge *b, const struct status_device *devs, size_t n);

// The value as JSON (null when unknown).
json_t *status_value_json(const struct value *v);

#endif
