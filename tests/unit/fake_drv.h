// SPDX-License-Identifier: MIT
// A fake core for driver unit tests: the drv_* services a TCP driver calls (the core's device
// runtime is not linked), recording what the driver sends and reports, on a clock the test moves,
// with an in-memory store for what drivers learn.
#ifndef E2M_TESTS_FAKE_DRV_H
#define E2M_TESTS_FAKE_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/params.h"
#include "drivers/driver.h"

struct drv_ctx {
    int unused;
};

// One drv_job_done() call.
struct fake_done {
    enum drv_status status;
    int code;
    char detail[128];
};

// One drv_registers() call.
struct fake_regs {
    uint8_t table;
    uint32_t start;
    uint16_t count;
    uint16_t first; // values[0]
};

// One drv_value(), drv_value_assumed(), drv_text() or drv_unknown() call.
struct fake_value {
    uint16_t field;
    bool text, assumed, unknown;
    double num;
    char str[DRV_TEXT];
};

// A value of the learned store (drv_learned_get/drv_learned_set).
struct fake_learned {
    char key[32];
    char value[64];
};

struct fake_drv {
    struct drv_ctx ctx;
    const struct driver_ops *drv;
    void *state; // the driver's, from open()
    const char *id, *host;
    int port; // drv_tcp_open() asserts that it is called with host and port
    struct arena *arena;
    struct params settings, options, core;
    int64_t now;       // drv_now_ms(); drv_wall_ms() is wall0 + now
    int64_t wall0;     // Unix time at now == 0
    int64_t timer_due; // -1: not armed
    int opens, closes;
    bool tcp_open;
    uint8_t sent[8192];
    size_t sent_len;
    int64_t sent_at[64]; // when each drv_tcp_send() went out (the first 64)
    int n_sent;
    struct fake_done done[64];
    int n_done;
    struct fake_regs regs[64];
    int n_regs;
    int alive, poll_all; // drv_alive() and drv_poll_all() calls
    int poll_first;      // drv_poll_first() calls, the last one for poll_first_group
    uint8_t poll_first_group;
    struct fake_value values[512];
    int n_values;
    // The learned store, empty after fake_drv_setup(); learned_changes counts the
    // drv_learned_set() calls that changed it.
    struct fake_learned learned[8];
    int n_learned, learned_changes;
    uint8_t rx[4096]; // bytes "received" and not yet consumed
    size_t rx_len;
};

// The fake core: one per test process, reset by fake_drv_setup().
extern struct fake_drv fc;

// Resets fc for driver `drv` with device id `id` and makes its parameter sets: the first
// setting is `host`, the connection must go to host:port, wall time starts at wall0.
// fake_drv_set_option() may change options before fake_drv_start().
void fake_drv_setup(const struct driver_ops *drv, const char *id, const char *host, int port,
                    int64_t wall0);
// Closes the driver if it is open and frees the parameter sets.
void fake_drv_teardown(void);
// Sets option `name` from text (strings, booleans, integers, durations in ms, choices).
void fake_drv_set_option(const char *name, const char *value);
// The device as the driver's open(), check() and conflict() see it.
const struct drv_device *fake_drv_device(void);
// Opens and starts the driver, asserts that it connects at once, and accepts the connection.
void fake_drv_start(void);
// Opens and starts the driver without expecting a connection (drivers that connect per job).
void fake_drv_start_idle(void);
// Puts `value` into the learned store as if a previous run had learned it (not a change).
void fake_drv_learn(const char *key, const char *value);
// The learned store's value for `key`, or NULL.
const char *fake_drv_learned(const char *key);
// The last value reported for `field` (NULL when none).
const struct fake_value *fake_drv_value(uint16_t field);
// Bytes from the device, handed over the way the core's TCP layer does: frame by frame until
// the driver wants more.
void fake_drv_receive(const uint8_t *buf, size_t len);
// Moves the clock by ms, firing the driver's timer whenever it is due.
void fake_drv_advance(int64_t ms);

#endif
