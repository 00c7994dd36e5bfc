// SPDX-License-Identifier: MIT
// The driver API: the only core header a driver includes.
//
// A driver exports one `const struct driver_ops <name>_driver` and is listed in drivers.def.
// It declares what it can read (register tables, or named fields), the settings a device of
// its kind takes (host, port, unit id...), its own options, and its timing limits. The core
// owns configuration, scheduling, state and MQTT: it decides when an exchange happens and
// hands the driver one job at a time.
//
// Two styles of driver:
//  - blocking (libmodbus): `run` executes a job on the device's worker thread and may block
//    up to the device's timeouts; it touches nothing but its own state and returns the data;
//  - event-driven (stream and MQTT protocols): everything runs on the loop thread. `job`
//    starts a job and returns at once; the driver answers later with drv_job_done(). It talks
//    to the device through the core's TCP connection or the daemon's MQTT link (drv_tcp_*,
//    drv_mqtt_*), may report values at any time (drv_value, drv_text, or drv_registers for
//    register drivers: answers as well as unsolicited data), and has one timer for keepalives
//    and liveness checks.
// Either way the core owns scheduling: one job at a time, when the device's rules allow.
#ifndef E2M_DRIVER_H
#define E2M_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/log.h"
#include "core/params.h"
#include "core/regmap.h"
#include "core/sched.h"

// A register table the driver serves (e.g. Modbus holding registers).
struct drv_table {
    const char *name; // as written in entity files: "holding", "input", "coil", ...
    bool bits;        // one bit per address (coils, discrete inputs)
    bool writable;
    uint32_t max_address;     // highest valid address
    struct reg_limits limits; // default read limits; devices may tune max_count/max_gap
    uint16_t max_count_limit; // the most max_registers may be set to (the protocol's limit)
};

// Timing limits and defaults. Options may raise these; lowering `min_gap_ms` below the
// driver's value needs the explicit `unsafe_timing: true` device option.
struct drv_timing {
    int64_t min_gap_ms;
    int64_t poll_ms;     // default poll interval
    int64_t min_poll_ms; // the poll interval may not go below this
    int64_t reply_timeout_ms;
    int64_t connect_timeout_ms;
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
};

// A poll group of a field driver: one request that fills the fields of the group.
struct drv_group {
    const char *name;
    // The driver option (PARAM_DURATION) holding the group's default poll interval, or NULL
    // for the device's poll_interval. An entity's own `interval` still wins.
    const char *interval_option;
    // Polled even when no enabled entity reads it: the driver needs it (e.g. the message that
    // says whether the device encrypts).
    bool always;
};

// A named value a field driver produces (protocols that are not register maps). Entity files
// refer to it by `key`, e.g. "pv[0].power". Fields come in poll groups: one request of the
// driver fills the fields of its group.
struct drv_field {
    const char *key;
    uint8_t group; // index into driver_ops.groups
    bool text;     // a string (firmware version, serial) instead of a number
    bool writable; // a device setting the driver can change
};

// What a device instance looks like to its driver.
struct drv_device {
    const char *id;                    // the device id, for log messages
    const struct params *settings;     // the driver's settings table, validated
    const struct params *core_options; // timing and the other options every device has
    const struct params *options;      // the driver's own options
};

enum drv_job_type {
    DRV_JOB_READ = 1, // register drivers: read `count` from `address` in `table`
    DRV_JOB_WRITE,    // register drivers: write `regs` (or one bit) at `address`
    DRV_JOB_POLL,     // field drivers: poll field group `group`
    DRV_JOB_SET,      // field drivers: set field `field` to `value` / `text`
    DRV_JOB_ACTION,   // run the named `action`
};

enum { DRV_MAX_READ = 2000, DRV_MAX_WRITE = 8, DRV_MAX_SAMPLES = 256, DRV_TEXT = 48 };

struct drv_job {
    enum drv_job_type type;
    uint8_t table;    // index into the driver's tables
    uint32_t address; // READ: first register; WRITE: target register
    uint16_t count;   // READ: registers/bits; WRITE: registers in `regs`
    uint16_t regs[DRV_MAX_WRITE];
    // WRITE of a single bit inside a 16-bit register: read it, set/clear `bit`, write it back
    // (the format carries byte order and bit). bit < 0 means a plain write of `regs`.
    struct reg_format bit_format;
    int bit;
    bool bit_on;
    uint8_t group;      // POLL
    uint16_t field;     // SET
    double value;       // SET (numbers)
    const char *text;   // SET (text fields)
    const char *action; // ACTION: name declared by the driver
};

struct drv_sample {
    uint16_t field; // index into driver_ops.fields
    bool text;
    double num;
    char str[DRV_TEXT];
};

enum drv_status {
    DRV_OK = 0,
    DRV_ERR_CONNECT = -1,   // could not connect / link down
    DRV_ERR_TIMEOUT = -2,   // no reply in time
    DRV_ERR_EXCEPTION = -3, // the device refused the request (e.g. Modbus exception)
    DRV_ERR_PROTOCOL = -4,  // garbage, bad checksum, unexpected reply
    DRV_ERR_IO = -5,        // other transport error
    DRV_ERR_BUSY = -6,      // the device answered but cannot take this now: retry later
    DRV_SLEEPING = 1,       // the device sleeps (not an error: a solar inverter at night)
    DRV_SKIPPED = 2,        // nothing was sent (nothing to ask): the request gap does not restart
};

// The buffers are the core's, sized for the device's read plan (a device costs no more than
// its largest read): `regs` holds at least the READ job's count, `samples` max_samples.
struct drv_result {
    enum drv_status status;
    int code;             // DRV_ERR_EXCEPTION: the device's exception code
    char detail[128];     // human-readable reason for the log
    uint16_t count;       // READ: values delivered
    uint16_t *regs;       // READ: registers, or 0/1 per bit for bit tables
    uint16_t n_samples;   // POLL (and SET read-backs): field values delivered
    uint16_t max_samples; // room in `samples` (the driver's field count, at most DRV_MAX_SAMPLES)
    struct drv_sample *samples;
};

// ---- services for event-driven drivers (loop thread only) ---------------------------------

struct drv_ctx;

int64_t drv_now_ms(const struct drv_ctx *c);  // monotonic
int64_t drv_wall_ms(const struct drv_ctx *c); // Unix time, UTC
const char *drv_device_id(const struct drv_ctx *c);

// The device's TCP connection (one per device). drv_tcp_open() starts connecting with the
// device's connect_timeout; the driver's tcp_connected or tcp_closed hook follows.
int drv_tcp_open(struct drv_ctx *c, const char *host, int port);
int drv_tcp_send(struct drv_ctx *c, const void *buf, size_t len);
void drv_tcp_close(struct drv_ctx *c); // no tcp_closed hook follows
bool drv_tcp_is_open(const struct drv_ctx *c);

// The daemon's broker connection. Subscriptions are kept and renewed on every reconnection;
// messages arrive through the mqtt_message hook.
int drv_mqtt_subscribe(struct drv_ctx *c, const char *filter);
int drv_mqtt_publish(struct drv_ctx *c, const char *topic, const void *payload, size_t len,
                     bool retain);

// One timer per device; setting it again replaces it.
void drv_timer_set(struct drv_ctx *c, int64_t delay_ms);
void drv_timer_cancel(struct drv_ctx *c);

// Asks for a poll of `group` (index into driver_ops.groups) before anything else, e.g. to
// re-read the message that carries an encryption seed. Kept until a poll of it succeeds.
void drv_poll_first(struct drv_ctx *c, uint8_t group);

// Register values, whenever they arrive (register drivers): `count` registers from `start` in
// `table` (index into driver_ops.tables), e.g. a block the device broadcasts or a reply to
// another client's request. Every entity whose registers all lie in the range is decoded at
// once; blocks of the read plan that the range covers entirely count as read. When a READ job
// is in flight and the range covers all of it, the values are also its answer: end it with
// drv_job_done(DRV_OK) (a READ job ended with DRV_OK without them leaves its block unknown).
void drv_registers(struct drv_ctx *c, uint8_t table, uint32_t start, uint16_t count,
                   const uint16_t *regs);
// Asks for every read of the plan again before anything else, e.g. after polls the driver had
// to skip (DRV_SKIPPED) because something it needed to ask (a serial number) was not known yet.
void drv_poll_all(struct drv_ctx *c);
// Field values, whenever they arrive.
void drv_value(struct drv_ctx *c, uint16_t field, double value);
// A value the device cannot report, shown as the last commanded one: the entity says so
// (its state message lists it under "assumed") until a drv_value() for it arrives.
void drv_value_assumed(struct drv_ctx *c, uint16_t field, double value);
void drv_text(struct drv_ctx *c, uint16_t field, const char *text);
void drv_unknown(struct drv_ctx *c, uint16_t field);
// What the driver learned from the device and needs again after a restart (a serial number it
// must put in every request), kept under `key` in the daemon's state_dir with the counters.
// drv_learned_get() copies the stored text into `buf` (NUL-terminated) and returns false when
// there is none or it does not fit in `n` bytes; call it from `start` on, not in `open`.
// drv_learned_set() stores `value` (short UTF-8 text; hex for binary serials); a value that
// changed is written to disk within about a second, an unchanged one costs nothing. A value
// given in the device's options wins over a learned one; a learned one the device contradicts
// is replaced.
bool drv_learned_get(const struct drv_ctx *c, const char *key, char *buf, size_t n);
void drv_learned_set(struct drv_ctx *c, const char *key, const char *value);
// The device showed it is there without a job (a pushed sample): counts as a good exchange.
void drv_alive(struct drv_ctx *c);
// Ends the job in flight; `detail` (printf-style) explains a failure for the log. Ignored
// when no job is in flight. Completion is delivered after the calling hook returns.
void drv_job_done(struct drv_ctx *c, enum drv_status status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

enum drv_style { DRV_BLOCKING, DRV_EVENT };

struct driver_ops {
    const char *name;
    const char *summary;
    enum drv_style style;

    const struct param_def *settings; // keys of the device entry itself (host, port, ...)
    size_t n_settings;
    const struct param_def *options; // driver-specific keys under `options:`
    size_t n_options;
    const struct drv_table *tables; // register drivers
    size_t n_tables;
    const struct drv_field *fields; // field drivers
    size_t n_fields;
    const struct drv_group *groups; // field poll groups by index
    size_t n_groups;
    const char *const *actions; // named actions a button may run (NULL-terminated)
    struct drv_timing timing;

    // Checks a device's settings beyond their types (e.g. "host or device, not both").
    // Writes the reason to `err` and returns -EINVAL when they cannot work.
    int (*check)(const struct drv_device *dev, char *err, size_t err_size);
    // Quiet windows the driver derives from a device's options (e.g. a DTU's cloud upload
    // times), added to the device's own `quiet_windows`. Writes up to `max` into `out` and
    // returns how many. Optional.
    size_t (*quiet_windows)(const struct drv_device *dev, struct sched_window *out, size_t max);
    // Checks two devices of this driver against each other: the same device configured twice,
    // or two devices sharing a serial bus with different line settings. -EINVAL with `err`.
    int (*conflict)(const struct drv_device *a, const struct drv_device *b, char *err,
                    size_t err_size);
    // Creates per-device state. No I/O here: connecting happens in the first job.
    int (*open)(const struct drv_device *dev, void **state);
    void (*close)(void *state);
    // Blocking drivers: runs one job on the device's worker thread; fills `res` (status,
    // detail, data).
    void (*run)(void *state, const struct drv_job *job, struct drv_result *res);

    // Event-driven drivers.
    int (*start)(void *state, struct drv_ctx *ctx); // after open: connect, subscribe
    void (*job)(void *state, const struct drv_job *job);
    void (*abort)(void *state); // the job in flight timed out; forget it (no drv_job_done)
    void (*tcp_connected)(void *state);
    size_t (*tcp_data)(void *state, const uint8_t *buf, size_t len); // returns bytes consumed
    void (*tcp_closed)(void *state, const char *why);
    void (*timer)(void *state);
    void (*mqtt_message)(void *state, const char *topic, const uint8_t *payload, size_t len,
                         bool retained);
    // `energy2mqtt decode <driver> <input>`: decodes one frame or payload from text and
    // prints it as one line of JSON to `out`. Returns 0, or -EINVAL with `err` set.
    int (*decode)(const char *input, FILE *out, char *err, size_t err_size);
    // `energy2mqtt decode <driver> --message NAME <input>`: decodes a bare payload (no frame
    // around it) as the protocol message NAME. Optional.
    int (*decode_message)(const char *message, const char *input, FILE *out, char *err,
                          size_t err_size);
};

#endif
