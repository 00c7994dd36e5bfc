// SPDX-License-Identifier: MIT
// LuxPower / EG4 hybrid inverters through the WiFi dongle's local TCP server (LXP, port 8000).
//
// The dongle tunnels Modbus requests to the inverter ("translated data") and sends everything
// the inverter says to every connected client: replies to our requests, replies to the cloud's
// and the app's, input blocks it broadcasts every few minutes, and its own heartbeats. So the
// driver keeps one connection open for as long as it runs and treats every valid register
// frame as data: each one is handed to the core with drv_registers(), which decodes every
// entity whose registers it holds, whatever the block shape (40-register blocks, the 0-126
// frame of newer firmware, a single register echoed by a write).
//
// Tables: `input` (function 4, read-only) and `holding` (function 3; written with function 6,
// several registers with 16). The core plans reads in whole 40-register pages, as the vendor
// documents; `max_registers` up to 127 joins pages (newer firmware answers those too).
//
// Serials: a request must carry the dongle's serial and, for writes, the inverter's. Both are
// learned from the first frames (a heartbeat has the dongle's, any register frame both) unless
// the options give them; until the dongle's is known a poll sends nothing (DRV_SKIPPED), and
// until the inverter's is known reads carry ten zero bytes in its place (EG4 firmware answers
// those, and the reply teaches us the serial) while writes wait (DRV_ERR_BUSY). Learned serials
// are kept in the state directory (drv_learned_set), so after a restart the first poll goes out
// at once instead of waiting up to a minute for a heartbeat; the device's first frame still has
// the last word (a replaced dongle or inverter is learned again), the options always win.
//
// Replies are matched by device function and start register; an exception reply for the same
// function and register is the refusal. A register frame that covers the read in flight
// answers it, whoever asked. Writes: one register with function 6, confirmed when the echoed
// value equals the one written (another value means the inverter kept its own: refused);
// several with function 16. A bit of a register (AC charge is bit 7 of holding 21) is
// read-modify-write of a value read just before, never of a cached one. Holding register 11
// resets or restarts the inverter and is never written.
//
// Heartbeats: the dongle broadcasts input data only while something answers its heartbeats;
// normally its cloud connection does. `heartbeat_echo: auto` starts echoing them once no
// broadcast arrived for two broadcast intervals, `always` and `never` decide once and for all.
//
// Clock: with `clock_sync`, before the first job and then once a day the inverter's clock
// (holding 12-14) is read and, when it is off by more than `clock_max_drift`, set to local time
// with one write of the three registers. The action `sync_clock` sets it at once.
//
// Liveness: a connection that brings no byte for `silence_timeout` (heartbeats come about once
// a minute) is closed and opened again; so is any connection that closes, after a delay that
// doubles up to five minutes while the dongle cannot be reached.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/bytes.h"
#include "drivers/driver.h"
#include "drivers/luxpower/luxpower_codec.h"

enum table { T_INPUT, T_HOLDING, N_TABLES };

static const struct drv_table tables[N_TABLES] = {
    [T_INPUT] = {"input", false, false, 65535, {40, 0, 40}, LXP_MAX_READ},
    [T_HOLDING] = {"holding", false, true, 65535, {40, 0, 40}, LXP_MAX_READ},
};

static const char *const actions[] = {"sync_clock", NULL};

static const struct param_def settings[] = {
    {.name = "host",
     .type = PARAM_STR,
     .required = true,
     .help = "the dongle's address (its second socket set to TCP server, port 8000)"},
    {.name = "port", .type = PARAM_INT, .def = "8000", .min = 1, .max = 65535},
};

static const char *const echo_modes[] = {"auto", "always", "never", NULL};
enum echo_mode { ECHO_AUTO, ECHO_ALWAYS, ECHO_NEVER };

static const struct param_def options[] = {
    {.name = "dongle_serial",
     .type = PARAM_STR,
     .help = "the dongle's 10-character serial; learned from its first frame when not given"},
    {.name = "inverter_serial",
     .type = PARAM_STR,
     .help = "the inverter's 10-character serial; learned from the first register frame when "
             "not given"},
    {.name = "heartbeat_echo",
     .type = PARAM_CHOICE,
     .def = "auto",
     .choices = echo_modes,
     .help = "answer the dongle's heartbeats (without an answer it broadcasts no input data): "
             "auto = once no broadcast came for two broadcast intervals, always, never"},
    {.name = "broadcast_interval",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 1000,
     .max = 3600000,
     .help = "how often the dongle broadcasts input data (its parameter 0; 180 or 300 s seen)"},
    {.name = "clock_sync",
     .type = PARAM_BOOL,
     .def = "false",
     .help = "check the inverter's clock before the first poll and daily, and set it to local "
             "time when it is off"},
    {.name = "clock_max_drift",
     .type = PARAM_DURATION,
     .def = "2m",
     .min = 5000,
     .max = 86400000,
     .help = "how far the inverter's clock may be off before clock_sync sets it"},
    {.name = "silence_timeout",
     .type = PARAM_DURATION,
     .def = "3m",
     .min = 5000,
     .max = 3600000,
     .help = "a connection without a byte for this long is dead and is opened again"},
    {.name = "reconnect_delay",
     .type = PARAM_DURATION,
     .def = "5s",
     .min = 100,
     .max = 300000,
     .help = "the first wait before connecting again after the connection ended"},
};

enum phase {
    PH_IDLE,
    PH_CLOCK_READ,  // the clock check before the job
    PH_CLOCK_WRITE, // setting the clock (after the check, or the sync_clock action)
    PH_READ,
    PH_BIT_READ, // the fresh value for a bit write
    PH_WRITE,    // write single, confirmed by its echo
    PH_WRITE_MULTI,
};

enum {
    CLOCK_FIRST = 12, // hold 12-14: year-2000 | month, day | hour, minute | second
    CLOCK_COUNT = 3,
    NEVER_WRITTEN = 11, // reset/restart bits
    DAY_MS = 86400000,
    CLOCK_RETRY_MS = 3600000,
    RECONNECT_MAX_MS = 300000,
};

struct lux {
    struct drv_ctx *ctx;
    char id[65];
    char host[256];
    int port;
    enum echo_mode echo;
    int64_t broadcast_ms, clock_drift_ms, silence_ms, reconnect_ms;
    bool clock_sync;

    uint8_t datalog[LXP_SERIAL_LEN], inverter[LXP_SERIAL_LEN];
    bool have_datalog, have_inverter;
    bool datalog_fixed, inverter_fixed; // from the options: never replaced by learned ones
    // From the last run: used until the device's first frame confirms or replaces them.
    bool datalog_restored, inverter_restored;
    bool warned_datalog, warned_inverter;
    bool skipped; // polls were skipped for want of the dongle's serial: poll all once known

    // The connection.
    bool started, connecting, connected;
    int64_t connected_ms, last_rx_ms, last_broadcast_ms;
    int64_t reconnect_at, reconnect_wait;
    bool echo_active;

    // The job in flight.
    bool waiting;
    struct drv_job job;
    enum phase phase;
    uint8_t expect_fn;
    uint16_t expect_reg, expect_count;
    uint16_t written[DRV_MAX_WRITE]; // what the write phase sends
    int64_t clock_next_ms;           // when the clock is checked next (clock_sync)

    uint64_t frames, bad_frames, foreign_frames, broadcasts, echoes;
};

static const uint8_t NO_SERIAL[LXP_SERIAL_LEN];

// ---- helpers --------------------------------------------------------------------------------

static void finish(struct lux *m, enum drv_status st, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(struct lux *m, enum drv_status st, int code, const char *fmt, ...)
{
    if (!m->waiting)
        return;
    m->waiting = false;
    m->phase = PH_IDLE;
    char why[128] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
    }
    if (why[0])
        drv_job_done(m->ctx, st, code, "%s", why);
    else
        drv_job_done(m->ctx, st, code, NULL);
}

static uint8_t table_function(uint8_t table)
{
    return table == T_INPUT ? LXP_READ_INPUT : LXP_READ_HOLD;
}

static const char *exception_text(int code)
{
    switch (code) {
    case 1: return "illegal function";
    case 2: return "illegal data address";
    case 3: return "illegal data value";
    case 4: return "slave device failure";
    case 6: return "slave device busy";
    default: return "exception";
    }
}

// The next deadline of the driver's one timer: reconnecting, the silence watchdog, and the
// moment heartbeat echoing starts in auto mode.
static void arm_timer(struct lux *m)
{
    int64_t now = drv_now_ms(m->ctx), at = INT64_MAX;
    if (!m->connected && !m->connecting && m->started)
        at = m->reconnect_at;
    if (m->connected) {
        at = m->last_rx_ms + m->silence_ms;
        if (m->echo == ECHO_AUTO && !m->echo_active) {
            int64_t since =
                m->last_broadcast_ms > m->connected_ms ? m->last_broadcast_ms : m->connected_ms;
            if (since + 2 * m->broadcast_ms < at)
                at = since + 2 * m->broadcast_ms;
        }
    }
    if (at == INT64_MAX) {
        drv_timer_cancel(m->ctx);
        return;
    }
    drv_timer_set(m->ctx, at > now ? at - now : 0);
}

static void connect_now(struct lux *m)
{
    if (m->connecting || m->connected)
        return;
    if (drv_tcp_open(m->ctx, m->host, m->port) < 0) {
        drv_tcp_close(m->ctx); // a stale attempt: start over
        if (drv_tcp_open(m->ctx, m->host, m->port) < 0) {
            m->reconnect_at = drv_now_ms(m->ctx) + m->reconnect_wait;
            arm_timer(m);
            finish(m, DRV_ERR_CONNECT, 0, "cannot start connecting to %s:%d", m->host, m->port);
            return;
        }
    }
    m->connecting = true;
}

static int send_frame(struct lux *m, const uint8_t *buf, int len)
{
    if (len < 0 || drv_tcp_send(m->ctx, buf, (size_t)len) < 0) {
        finish(m, DRV_ERR_IO, 0, "cannot send the request");
        return -1;
    }
    return 0;
}

static const uint8_t *inverter_for_request(const struct lux *m)
{
    return m->have_inverter ? m->inverter : NO_SERIAL;
}

static void expect(struct lux *m, enum phase ph, uint8_t fn, uint16_t reg, uint16_t count)
{
    m->phase = ph;
    m->expect_fn = fn;
    m->expect_reg = reg;
    m->expect_count = count;
}

// ---- requests -------------------------------------------------------------------------------

static void send_read(struct lux *m, enum phase ph, uint8_t fn, uint16_t reg, uint16_t count)
{
    uint8_t out[64];
    int n = lxp_encode_read(out, sizeof(out), m->datalog, inverter_for_request(m), fn, reg, count);
    expect(m, ph, fn, reg, count);
    send_frame(m, out, n);
}

static void send_write(struct lux *m, uint16_t reg, const uint16_t *values, uint16_t count)
{
    uint8_t out[LXP_FRAME_MAX];
    int n;
    memcpy(m->written, values, sizeof(uint16_t) * count);
    if (count == 1) {
        n = lxp_encode_write_single(out, sizeof(out), m->datalog, m->inverter, reg, values[0]);
        expect(m, PH_WRITE, LXP_WRITE_SINGLE, reg, 1);
    } else {
        n = lxp_encode_write_multi(out, sizeof(out), m->datalog, m->inverter, reg, values, count);
        expect(m, PH_WRITE_MULTI, LXP_WRITE_MULTI, reg, count);
    }
    send_frame(m, out, n);
}

// The inverter's clock registers for local time `wall_ms`.
static void clock_regs(int64_t wall_ms, uint16_t *regs)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    int year = tm.tm_year + 1900 - 2000;
    if (year < 0)
        year = 0;
    regs[0] = (uint16_t)((year & 0xff) | (tm.tm_mon + 1) << 8);
    regs[1] = (uint16_t)(tm.tm_mday | tm.tm_hour << 8);
    regs[2] = (uint16_t)(tm.tm_min | tm.tm_sec << 8);
}

static void send_clock(struct lux *m)
{
    uint16_t regs[CLOCK_COUNT];
    clock_regs(drv_wall_ms(m->ctx), regs);
    m->phase = PH_CLOCK_WRITE;
    uint8_t out[LXP_FRAME_MAX];
    int n = lxp_encode_write_multi(out, sizeof(out), m->datalog, m->inverter, CLOCK_FIRST, regs,
                                   CLOCK_COUNT);
    expect(m, PH_CLOCK_WRITE, LXP_WRITE_MULTI, CLOCK_FIRST, CLOCK_COUNT);
    send_frame(m, out, n);
}

// The job itself, after any clock check.
static void start_main(struct lux *m)
{
    const struct drv_job *j = &m->job;
    switch (j->type) {
    case DRV_JOB_READ:
        send_read(m, PH_READ, table_function(j->table), (uint16_t)j->address, j->count);
        return;
    case DRV_JOB_WRITE:
        if (j->bit >= 0)
            send_read(m, PH_BIT_READ, LXP_READ_HOLD, (uint16_t)j->address, 1);
        else
            send_write(m, (uint16_t)j->address, j->regs, j->count);
        return;
    case DRV_JOB_ACTION: send_clock(m); return;
    default: finish(m, DRV_ERR_PROTOCOL, 0, "not a job for this driver"); return;
    }
}

// Sends the job's first request; the connection is open.
static void proceed(struct lux *m)
{
    if (!m->waiting || m->phase != PH_IDLE)
        return;
    const struct drv_job *j = &m->job;
    if (!m->have_datalog) {
        m->skipped = true;
        if (j->type == DRV_JOB_READ)
            finish(m, DRV_SKIPPED, 0,
                   "waiting for the dongle's first frame to learn its serial (or set "
                   "dongle_serial)");
        else
            finish(m, DRV_ERR_BUSY, 0, "the dongle's serial is not known yet");
        return;
    }
    if (j->type != DRV_JOB_READ && !m->have_inverter) {
        finish(m, DRV_ERR_BUSY, 0,
               "the inverter's serial is not known yet (it comes with the first reply; or set "
               "inverter_serial)");
        return;
    }
    if (m->clock_sync && m->have_inverter && j->type != DRV_JOB_ACTION &&
        drv_now_ms(m->ctx) >= m->clock_next_ms) {
        send_read(m, PH_CLOCK_READ, LXP_READ_HOLD, CLOCK_FIRST, CLOCK_COUNT);
        return;
    }
    start_main(m);
}

// ---- replies --------------------------------------------------------------------------------

// The clock check's reply: set the clock when it is off, then do the job.
static void clock_checked(struct lux *m, const uint16_t *v)
{
    struct tm tm = {
        .tm_year = (v[0] & 0xff) + 100,
        .tm_mon = (v[0] >> 8) - 1,
        .tm_mday = v[1] & 0xff,
        .tm_hour = v[1] >> 8,
        .tm_min = v[2] & 0xff,
        .tm_sec = v[2] >> 8,
        .tm_isdst = -1,
    };
    time_t inv = mktime(&tm);
    int64_t now_s = drv_wall_ms(m->ctx) / 1000;
    int64_t drift = (int64_t)inv - now_s;
    m->clock_next_ms = drv_now_ms(m->ctx) + DAY_MS;
    if (inv == (time_t)-1 || drift * 1000 > m->clock_drift_ms ||
        -drift * 1000 > m->clock_drift_ms) {
        log_info(m->id, "the inverter's clock is off by %lld s: setting it", (long long)drift);
        send_clock(m);
        return;
    }
    start_main(m);
}

static void write_confirmed(struct lux *m, const struct lxp_frame *f)
{
    uint16_t got = f->values[0];
    if (got != m->written[0]) {
        finish(m, DRV_ERR_EXCEPTION, 3,
               "the inverter kept %u in holding %u instead of %u (out of its range?)", got, f->reg,
               m->written[0]);
        return;
    }
    finish(m, DRV_OK, 0, NULL);
}

// A reply for the phase in flight (function, register and shape checked).
static void on_reply(struct lux *m, const struct lxp_frame *f)
{
    // A read may be answered by a larger block (another client's): ours starts inside it.
    const uint16_t *asked = f->values + (m->expect_reg - f->reg);
    switch (m->phase) {
    case PH_CLOCK_READ: clock_checked(m, asked); return;
    case PH_CLOCK_WRITE:
        log_info(m->id, "the inverter's clock is set");
        if (m->job.type == DRV_JOB_ACTION)
            finish(m, DRV_OK, 0, NULL);
        else
            start_main(m);
        return;
    case PH_READ: finish(m, DRV_OK, 0, NULL); return;
    case PH_BIT_READ: {
        const struct drv_job *j = &m->job;
        uint16_t v = regmap_apply_bit(&j->bit_format, asked[0], j->bit_on);
        if (v == asked[0]) {
            finish(m, DRV_SKIPPED, 0, "bit %d of holding %u is already %s", j->bit, f->reg,
                   j->bit_on ? "set" : "clear");
            return;
        }
        send_write(m, (uint16_t)j->address, &v, 1);
        return;
    }
    case PH_WRITE: write_confirmed(m, f); return;
    case PH_WRITE_MULTI: finish(m, DRV_OK, 0, NULL); return;
    case PH_IDLE: return;
    }
}

// An exception for the phase in flight.
static void on_refusal(struct lux *m, const struct lxp_frame *f)
{
    int code = f->exception_code;
    if (m->phase == PH_CLOCK_READ ||
        (m->phase == PH_CLOCK_WRITE && m->job.type != DRV_JOB_ACTION)) {
        // A clock the inverter will not show or take is not worth failing every poll for.
        log_warn(m->id, "the inverter refused the clock %s (%s): trying again in an hour",
                 m->phase == PH_CLOCK_READ ? "read" : "write", exception_text(code));
        m->clock_next_ms = drv_now_ms(m->ctx) + CLOCK_RETRY_MS;
        start_main(m);
        return;
    }
    finish(m, DRV_ERR_EXCEPTION, code, "the inverter answered %s %u with exception %d (%s)",
           lxp_function_name(f->function), f->reg, code, exception_text(code));
}

// Whether a register frame answers the phase in flight.
static bool answers(const struct lux *m, const struct lxp_frame *f)
{
    if (!m->waiting || m->phase == PH_IDLE || f->function != m->expect_fn)
        return false;
    if (f->exception)
        return f->reg == m->expect_reg;
    switch (f->function) {
    case LXP_READ_HOLD:
    case LXP_READ_INPUT:
        // Any block that covers what we asked for, ours or another client's.
        return f->reg <= m->expect_reg &&
               (uint32_t)f->reg + f->n_values >= (uint32_t)m->expect_reg + m->expect_count;
    case LXP_WRITE_SINGLE: return f->reg == m->expect_reg && f->n_values == 1;
    case LXP_WRITE_MULTI: return f->reg == m->expect_reg && f->count == m->expect_count;
    default: return false;
    }
}

// Serials are kept as 20 hex digits: they are 10 opaque bytes, printable or not.
static void serial_hex(const uint8_t *serial, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < LXP_SERIAL_LEN; i++) {
        out[2 * i] = hex[serial[i] >> 4];
        out[2 * i + 1] = hex[serial[i] & 15];
    }
    out[2 * LXP_SERIAL_LEN] = '\0';
}

// Exactly 20 hex digits (a stored value is never written with separators).
static bool serial_unhex(const char *text, uint8_t *serial)
{
    uint8_t s[LXP_SERIAL_LEN];
    if (strlen(text) != 2 * LXP_SERIAL_LEN ||
        strspn(text, "0123456789abcdefABCDEF") != strlen(text) ||
        bytes_from_hex(text, s, sizeof(s)) != LXP_SERIAL_LEN)
        return false;
    if (memcmp(s, NO_SERIAL, LXP_SERIAL_LEN) == 0)
        return false;
    memcpy(serial, s, LXP_SERIAL_LEN);
    return true;
}

// A serial the last run learned, unless the options give it.
static void restore(struct lux *m, const char *key, uint8_t *mine, bool *have, bool *restored,
                    const char *what)
{
    char text[2 * LXP_SERIAL_LEN + 1 + 8];
    if (*have || !drv_learned_get(m->ctx, key, text, sizeof(text)))
        return;
    if (!serial_unhex(text, mine)) {
        log_warn(m->id, "the %s's serial kept from the last run ('%s') is not one", what, text);
        return;
    }
    *have = *restored = true;
    lxp_serial_text(mine, text);
    log_info(m->id, "the %s's serial is %s (from the last run)", what, text);
}

// Learns a serial from traffic, or checks it against the configured one. A serial kept from
// the last run counts until the device says otherwise in its first frame.
static void learn(struct lux *m, uint8_t *mine, bool *have, bool fixed, bool *restored,
                  bool *warned, const uint8_t *seen, const char *what, const char *key)
{
    if (memcmp(seen, NO_SERIAL, LXP_SERIAL_LEN) == 0)
        return;
    char text[2 * LXP_SERIAL_LEN + 1];
    lxp_serial_text(seen, text);
    bool replaced = *have && *restored && memcmp(mine, seen, LXP_SERIAL_LEN) != 0;
    *restored = false;
    if (!*have || replaced) {
        if (replaced) {
            char was[2 * LXP_SERIAL_LEN + 1];
            lxp_serial_text(mine, was);
            log_info(m->id, "the %s's serial is %s now (it was %s in the last run)", what, text,
                     was);
        } else {
            log_info(m->id, "the %s's serial is %s", what, text);
        }
        memcpy(mine, seen, LXP_SERIAL_LEN);
        *have = true;
        char hex[2 * LXP_SERIAL_LEN + 1];
        serial_hex(mine, hex);
        drv_learned_set(m->ctx, key, hex);
        return;
    }
    if (memcmp(mine, seen, LXP_SERIAL_LEN) != 0 && fixed && !*warned) {
        char want[2 * LXP_SERIAL_LEN + 1];
        lxp_serial_text(mine, want);
        log_warn(m->id, "the %s says its serial is %s, the options say %s", what, text, want);
        *warned = true;
    }
}

static void on_heartbeat(struct lux *m, const uint8_t *buf, size_t len)
{
    if (m->echo == ECHO_NEVER || (m->echo == ECHO_AUTO && !m->echo_active))
        return;
    // The answer is the heartbeat itself, as the cloud gives it.
    if (drv_tcp_send(m->ctx, buf, len) == 0)
        m->echoes++;
}

static void on_translated(struct lux *m, const struct lxp_frame *f)
{
    if (f->request)
        return; // a client's request (ours never come back): nothing to learn
    if (!f->crc_ok) {
        m->bad_frames++;
        log_debug(m->id, "CRC mismatch in a %s frame for register %u: dropped",
                  lxp_function_name(f->function) ? lxp_function_name(f->function) : "?", f->reg);
        return;
    }
    learn(m, m->inverter, &m->have_inverter, m->inverter_fixed, &m->inverter_restored,
          &m->warned_inverter, f->inverter, "inverter", "inverter_serial");
    if (memcmp(f->inverter, NO_SERIAL, LXP_SERIAL_LEN) != 0 &&
        memcmp(f->inverter, m->inverter, LXP_SERIAL_LEN) != 0) {
        m->foreign_frames++; // another inverter's (or a misconfigured serial)
        return;
    }
    bool ours = answers(m, f);
    if (!f->exception) {
        switch (f->function) {
        case LXP_READ_INPUT:
            drv_registers(m->ctx, T_INPUT, f->reg, f->n_values, f->values);
            if (!ours) {
                // Nobody asked: the dongle's broadcast, which proves the inverter is there.
                m->broadcasts++;
                m->last_broadcast_ms = drv_now_ms(m->ctx);
                drv_alive(m->ctx);
            }
            break;
        case LXP_READ_HOLD:
        case LXP_WRITE_SINGLE:
            // Settings change under us (the app, the cloud): every value seen is news.
            drv_registers(m->ctx, T_HOLDING, f->reg, f->n_values, f->values);
            break;
        default: break;
        }
    }
    if (!ours)
        return;
    if (f->exception)
        on_refusal(m, f);
    else
        on_reply(m, f);
}

// ---- hooks ----------------------------------------------------------------------------------

static int lux_check(const struct drv_device *dev, char *err, size_t n)
{
    static const char *const keys[] = {"dongle_serial", "inverter_serial"};
    for (size_t i = 0; i < 2; i++) {
        uint8_t s[LXP_SERIAL_LEN];
        if (params_is_set(dev->options, keys[i]) &&
            lxp_serial_parse(params_str(dev->options, keys[i]), s) < 0) {
            snprintf(err, n, "%s must be the 10 characters printed on the label, got '%s'", keys[i],
                     params_str(dev->options, keys[i]));
            return -EINVAL;
        }
    }
    return 0;
}

static int lux_conflict(const struct drv_device *a, const struct drv_device *b, char *err, size_t n)
{
    if (strcasecmp(params_str(a->settings, "host"), params_str(b->settings, "host")) != 0 ||
        params_int(a->settings, "port") != params_int(b->settings, "port"))
        return 0;
    snprintf(err, n,
             "the same dongle (%s port %lld) is configured twice; one device reads all it sends",
             params_str(b->settings, "host"), params_int(b->settings, "port"));
    return -EINVAL;
}

static int lux_open(const struct drv_device *dev, void **state)
{
    struct lux *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s", dev->id);
    snprintf(m->host, sizeof(m->host), "%s", params_str(dev->settings, "host"));
    m->port = (int)params_int(dev->settings, "port");
    m->echo = (enum echo_mode)params_choice(dev->options, "heartbeat_echo");
    m->echo_active = m->echo == ECHO_ALWAYS;
    m->broadcast_ms = params_ms(dev->options, "broadcast_interval");
    m->clock_sync = params_bool(dev->options, "clock_sync");
    m->clock_drift_ms = params_ms(dev->options, "clock_max_drift");
    m->silence_ms = params_ms(dev->options, "silence_timeout");
    m->reconnect_ms = params_ms(dev->options, "reconnect_delay");
    m->reconnect_wait = m->reconnect_ms;
    if (params_is_set(dev->options, "dongle_serial") &&
        lxp_serial_parse(params_str(dev->options, "dongle_serial"), m->datalog) == 0)
        m->have_datalog = m->datalog_fixed = true;
    if (params_is_set(dev->options, "inverter_serial") &&
        lxp_serial_parse(params_str(dev->options, "inverter_serial"), m->inverter) == 0)
        m->have_inverter = m->inverter_fixed = true;
    *state = m;
    return 0;
}

static void lux_close(void *state)
{
    free(state);
}

static int lux_start(void *state, struct drv_ctx *ctx)
{
    struct lux *m = state;
    m->ctx = ctx;
    m->started = true;
    restore(m, "dongle_serial", m->datalog, &m->have_datalog, &m->datalog_restored, "dongle");
    restore(m, "inverter_serial", m->inverter, &m->have_inverter, &m->inverter_restored,
            "inverter");
    connect_now(m); // broadcasts come whether or not anything is asked
    return 0;
}

static void lux_job(void *state, const struct drv_job *job)
{
    struct lux *m = state;
    m->job = *job;
    m->waiting = true;
    m->phase = PH_IDLE;
    if (job->type == DRV_JOB_WRITE && job->table == T_HOLDING && job->address <= NEVER_WRITTEN &&
        job->address + (job->bit >= 0 ? 1 : job->count) > NEVER_WRITTEN) {
        finish(m, DRV_ERR_EXCEPTION, 0,
               "holding register 11 resets or restarts the inverter: it is never written");
        return;
    }
    if (job->type == DRV_JOB_WRITE && (job->table != T_HOLDING || job->count == 0)) {
        finish(m, DRV_ERR_EXCEPTION, 0, "only holding registers can be written");
        return;
    }
    if (job->type == DRV_JOB_ACTION && strcmp(job->action, "sync_clock") != 0) {
        finish(m, DRV_ERR_PROTOCOL, 0, "no such action");
        return;
    }
    if (m->connected) {
        proceed(m);
        return;
    }
    connect_now(m);
}

// The job in flight timed out: a late reply is just data, the connection stays.
static void lux_abort(void *state)
{
    struct lux *m = state;
    if (m->waiting && m->phase == PH_CLOCK_READ)
        m->clock_next_ms = drv_now_ms(m->ctx) + CLOCK_RETRY_MS;
    m->waiting = false;
    m->phase = PH_IDLE;
}

static void lux_tcp_connected(void *state)
{
    struct lux *m = state;
    int64_t now = drv_now_ms(m->ctx);
    m->connecting = false;
    m->connected = true;
    m->connected_ms = m->last_rx_ms = now;
    m->reconnect_wait = m->reconnect_ms;
    log_debug(m->id, "connected to the dongle at %s:%d", m->host, m->port);
    arm_timer(m);
    proceed(m);
}

static size_t lux_tcp_data(void *state, const uint8_t *buf, size_t len)
{
    struct lux *m = state;
    struct lxp_frame f;
    enum lxp_status st = lxp_parse(buf, len, &f);
    if (st == LXP_NEED_MORE)
        return 0;
    m->last_rx_ms = drv_now_ms(m->ctx);
    if (st != LXP_OK) {
        m->bad_frames++;
        log_debug(m->id, "%s: %zu bytes dropped", lxp_status_name(st), f.len);
        return f.len;
    }
    m->frames++;
    learn(m, m->datalog, &m->have_datalog, m->datalog_fixed, &m->datalog_restored,
          &m->warned_datalog, f.datalog, "dongle", "dongle_serial");
    if (m->skipped && m->have_datalog) {
        m->skipped = false;
        drv_poll_all(m->ctx); // what was skipped waiting for the serial, at once
    }
    switch (f.tcp_function) {
    case LXP_TCP_HEARTBEAT: on_heartbeat(m, buf, f.len); break;
    case LXP_TCP_TRANSLATED: on_translated(m, &f); break;
    default: break; // parameter frames are the dongle's business with the cloud
    }
    // A job that waited for the serials can go now.
    if (m->waiting && m->phase == PH_IDLE && m->connected)
        proceed(m);
    arm_timer(m);
    return f.len;
}

static void lux_tcp_closed(void *state, const char *why)
{
    struct lux *m = state;
    bool was_connected = m->connected;
    m->connecting = m->connected = false;
    // A lost connection is tried again after the first delay; every failed attempt doubles it.
    if (!was_connected)
        m->reconnect_wait =
            m->reconnect_wait * 2 < RECONNECT_MAX_MS ? m->reconnect_wait * 2 : RECONNECT_MAX_MS;
    m->reconnect_at = drv_now_ms(m->ctx) + m->reconnect_wait;
    if (was_connected)
        log_info(m->id, "the dongle closed the connection: %s", why);
    if (m->waiting)
        finish(m, was_connected ? DRV_ERR_IO : DRV_ERR_CONNECT, 0, "%s%s",
               was_connected ? "connection lost: " : "cannot connect: ", why);
    arm_timer(m);
}

static void lux_timer(void *state)
{
    struct lux *m = state;
    int64_t now = drv_now_ms(m->ctx);
    if (m->connected && now - m->last_rx_ms >= m->silence_ms) {
        log_warn(m->id, "nothing from the dongle for %lld s: connecting again",
                 (long long)((now - m->last_rx_ms) / 1000));
        drv_tcp_close(m->ctx);
        m->connected = false;
        m->reconnect_at = now; // at once: the dongle is probably fine, the socket is not
        finish(m, DRV_ERR_IO, 0, "the connection went silent");
    }
    if (m->connected && m->echo == ECHO_AUTO && !m->echo_active) {
        int64_t since =
            m->last_broadcast_ms > m->connected_ms ? m->last_broadcast_ms : m->connected_ms;
        if (now - since >= 2 * m->broadcast_ms) {
            m->echo_active = true;
            log_info(m->id,
                     "no input broadcast for %lld s: answering the dongle's heartbeats "
                     "from now on (its cloud connection seems to be down)",
                     (long long)((now - since) / 1000));
        }
    }
    if (!m->connected && !m->connecting && m->started && now >= m->reconnect_at)
        connect_now(m);
    arm_timer(m);
}

const struct driver_ops luxpower_driver = {
    .name = "luxpower",
    .summary = "LuxPower / EG4 hybrid inverters through the WiFi dongle (LXP over TCP 8000)",
    .style = DRV_EVENT,
    .settings = settings,
    .n_settings = sizeof(settings) / sizeof(settings[0]),
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .tables = tables,
    .n_tables = N_TABLES,
    .actions = actions,
    .timing =
        {
            .min_gap_ms = 1000, // the vendor's shortest polling period
            .poll_ms = 15000,
            .min_poll_ms = 2000,
            .reply_timeout_ms = 5000,
            .connect_timeout_ms = 5000,
            .backoff_min_ms = 5000,
            .backoff_max_ms = 300000,
        },
    .check = lux_check,
    .conflict = lux_conflict,
    .open = lux_open,
    .close = lux_close,
    .start = lux_start,
    .job = lux_job,
    .abort = lux_abort,
    .tcp_connected = lux_tcp_connected,
    .tcp_data = lux_tcp_data,
    .tcp_closed = lux_tcp_closed,
    .timer = lux_timer,
    .decode = luxpower_decode,
};
