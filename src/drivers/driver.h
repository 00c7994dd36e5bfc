// SPDX-License-Identifier: MIT
// The driver API: the only core header a driver includes.
//
// A driver exports one `const struct driver_ops <name>_driver` and is listed in drivers.def.
// It declares what it can read (register tables, or named fields), the settings a device of
// its kind takes (host, port, unit id...), its own options, and its timing limits. The core
// owns configuration, scheduling, state and MQTT: it decides when an exchange happens and
// hands the driver one job at a time.
//
// Drivers over blocking libraries (libmodbus) run their jobs on the device's worker thread:
// `run` may block up to the device's timeouts but must not touch anything but its own state.
// Results come back as data (registers or field values) that the core maps to entities.
#ifndef E2M_DRIVER_H
#define E2M_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/log.h"
#include "core/params.h"
#include "core/regmap.h"

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
    DRV_SLEEPING = 1,       // the device answered that it sleeps (not an error)
};

struct drv_result {
    enum drv_status status;
    int code;                    // DRV_ERR_EXCEPTION: the device's exception code
    char detail[128];            // human-readable reason for the log
    uint16_t count;              // READ: values delivered
    uint16_t regs[DRV_MAX_READ]; // READ: registers, or 0/1 per bit for bit tables
    uint16_t n_samples;          // POLL (and SET read-backs): field values delivered
    struct drv_sample samples[DRV_MAX_SAMPLES];
};

struct driver_ops {
    const char *name;
    const char *summary;

    const struct param_def *settings; // keys of the device entry itself (host, port, ...)
    size_t n_settings;
    const struct param_def *options; // driver-specific keys under `options:`
    size_t n_options;
    const struct drv_table *tables; // register drivers
    size_t n_tables;
    const struct drv_field *fields; // field drivers
    size_t n_fields;
    const char *const *groups;  // field poll groups by index (NULL-terminated)
    const char *const *actions; // named actions a button may run (NULL-terminated)
    struct drv_timing timing;

    // Checks a device's settings beyond their types (e.g. "host or device, not both").
    // Writes the reason to `err` and returns -EINVAL when they cannot work.
    int (*check)(const struct drv_device *dev, char *err, size_t err_size);
    // Checks two devices of this driver against each other: the same device configured twice,
    // or two devices sharing a serial bus with different line settings. -EINVAL with `err`.
    int (*conflict)(const struct drv_device *a, const struct drv_device *b, char *err,
                    size_t err_size);
    // Creates per-device state. No I/O here: connecting happens in the first job.
    int (*open)(const struct drv_device *dev, void **state);
    void (*close)(void *state);
    // Runs one job on the device's worker thread; fills `res` (status, detail, data).
    void (*run)(void *state, const struct drv_job *job, struct drv_result *res);
    // `energy2mqtt decode <driver> <input>`: decodes one frame or payload from text and
    // prints it as one line of JSON to `out`. Returns 0, or -EINVAL with `err` set.
    int (*decode)(const char *input, FILE *out, char *err, size_t err_size);
};

#endif
