// SPDX-License-Identifier: MIT
// One configured device at run time: its read plan, scheduler, driver job in flight, entity
// values and pending writes. Runs on the loop thread; the driver's jobs run on the device's
// worker. The daemon learns about changes through the hooks and does the publishing.
#ifndef E2M_DEVICE_H
#define E2M_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/sched.h"
#include "mqtt/command.h"

struct state;

struct loop;
struct persist;
struct device;
struct entity;

enum device_event {
    DEVICE_STATE,        // values changed (or must be re-sent: a refused command snaps back)
    DEVICE_AVAILABILITY, // online/offline changed
};

struct device_hooks {
    void (*event)(void *arg, struct device *d, enum device_event ev);
    // The broker connection, for drivers whose transport is MQTT (may be NULL).
    int (*mqtt_subscribe)(void *arg, const char *filter);
    int (*mqtt_publish)(void *arg, const char *topic, const void *payload, size_t len, bool retain);
    // A driver learned something new (drv_learned_set): write the state file soon rather than
    // at the next periodic flush (may be NULL).
    void (*persist_soon)(void *arg);
    void *arg;
};

// Builds the read plan and opens the driver; returns NULL after logging when that fails.
struct device *device_new(struct loop *loop, const struct device_config *cfg,
                          struct persist *persist, const struct device_hooks *hooks);
// Starts polling.
int device_start(struct device *d);
void device_free(struct device *d);

const struct device_config *device_config(const struct device *d);
enum sched_state device_sched_state(const struct device *d);
bool device_online(const struct device *d);

// Queues a validated command for entity `e`. Returns 0, or -ERANGE / -EAGAIN with a reason in
// `why` when it cannot become a write (e.g. not representable in the register, or a scale
// factor not read yet); the caller then snaps the control back.
int device_command(struct device *d, const struct entity *e, const struct command_value *cv,
                   char *why, size_t why_size);

// The MQTT topic filters the device's driver subscribed to (renewed on every reconnection).
size_t device_mqtt_filters(const struct device *d, const char *const **filters);
// A message on a topic matching one of those filters.
void device_mqtt_message(struct device *d, const char *topic, const uint8_t *payload, size_t len,
                         bool retained);

// The device's state message (malloc'd JSON).
char *device_state_json(struct device *d);

// Why an exchange failed, for the metrics (from the driver's status).
enum device_failure {
    DEVICE_FAIL_CONNECT,
    DEVICE_FAIL_TIMEOUT,
    DEVICE_FAIL_PROTOCOL,
    DEVICE_FAIL_EXCEPTION,
    DEVICE_FAIL_IO,
    DEVICE_FAIL_OTHER,
    DEVICE_FAIL_N
};
const char *device_failure_name(enum device_failure f);

// Reply latency histogram: upper bounds in seconds; one more bucket (+Inf) follows.
enum { DEVICE_LATENCY_BOUNDS = 11 };
extern const double device_latency_bounds_s[DEVICE_LATENCY_BOUNDS];

struct device_stats {
    uint64_t polls, poll_errors, writes, writes_failed, writes_refused, writes_dropped;
    uint64_t guard_rejects;
    uint64_t failures[DEVICE_FAIL_N];            // polls and writes, by reason
    uint32_t latency[DEVICE_LATENCY_BOUNDS + 1]; // answered exchanges per bucket (not cumulative)
    double latency_sum_s;
    int64_t last_ok_wall_ms;
    size_t blocks; // read requests per full poll cycle
};
void device_get_stats(const struct device *d, struct device_stats *out);
void device_sched_status(const struct device *d, struct sched_status *out);

// Milliseconds until the device's next exchange may start (0: now), -1 while one is in flight
// or nothing is planned.
int64_t device_next_request_ms(const struct device *d);

// The last problems (failed or refused exchanges, dropped commands), for the status page.
enum { DEVICE_ERRORS = 3, DEVICE_ERROR_TEXT = 96 };
struct device_error {
    int64_t wall_ms; // 0 = no entry
    char text[DEVICE_ERROR_TEXT];
};
// Copies up to DEVICE_ERRORS entries into `out`, newest first; returns how many.
size_t device_last_errors(const struct device *d, struct device_error *out);

// The entity values, indexed like the model's entities.
const struct state *device_values(const struct device *d);
// Whether entity `i` is published (enabled in the configuration, not internal).
bool device_entity_shown(const struct device *d, size_t i);
// Whether a command for writable entity `i` waits to be sent; *cv is what it carries.
bool device_write_pending(const struct device *d, size_t i, const struct command_value **cv);

#endif
