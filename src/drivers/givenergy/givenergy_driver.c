// SPDX-License-Identifier: MIT
// GivEnergy inverters and their batteries through the WiFi/LAN dongle (TCP 8899).
//
// The dongle wraps Modbus-RTU-like requests in its own envelope (givenergy_codec.c), answers
// one request at a time, and copies every response to every connected client: the cloud's,
// the app's and other integrations' as well as ours. So the driver keeps one connection open,
// sends one frame at a time with `frame_gap` between frames (the core spaces its jobs the same
// way), and treats every valid register response as data: each goes to the core with
// drv_registers(). A pending request is answered by the first response with the same device
// address and function whose block covers it, whoever asked; an error response (function bit
// 7) for the same address, function and register is the refusal.
//
// Tables: `input` and `holding` at the inverter's address (0x11 unless `address` says
// otherwise), and `battery1`..`battery6`: the input registers of the LV battery packs at
// 0x32..0x37. Reads are at most 60 registers; the core plans whole 60-register pages, as
// every client of these inverters reads them.
//
// Data integrity: responses with a wrong CRC are dropped, and so are all-zero blocks of a page
// that has shown non-zero values before (a known dropout); the core keeps the last good
// values and a job they answered fails (DRV_ERR_PROTOCOL), so it is retried.
//
// Writes: one holding register at a time (function 6), only registers on the allow-list below
// and only values in their range. The echo cannot prove the write (another client's write
// echoes the same way), so the register is read back after `frame_gap` and the write counts
// when the inverter holds the value; an error response is a refusal.
//
// Model check: the entity file names the family it describes (`family`). Before the first job
// on each connection the driver reads holding 0-59 and identifies the inverter (device type
// code, ARM firmware); a different family refuses every job with a log line naming the entity
// file to configure instead (see docs/devices/givenergy.md for why it does not switch itself).
//
// Heartbeats from the dongle are answered at once (type echoed, the dummy adapter serial), or
// the dongle drops the connection. A connection that brings no byte for `silence_timeout` is
// closed and opened again; reconnecting waits `reconnect_delay`, doubling up to a minute,
// since failed attempts leave dead sockets in the dongle's few slots.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "drivers/driver.h"
#include "drivers/givenergy/givenergy_codec.h"

enum table { T_INPUT, T_HOLDING, T_BAT1, N_TABLES = T_BAT1 + 6 };

#define LIMITS                                                                                     \
    {                                                                                              \
        GE_MAX_READ, 0, GE_MAX_READ                                                                \
    }

static const struct drv_table tables[N_TABLES] = {
    [T_INPUT] = {"input", false, false, 65535, LIMITS, GE_MAX_READ},
    [T_HOLDING] = {"holding", false, true, 65535, LIMITS, GE_MAX_READ},
    [T_BAT1] = {"battery1", false, false, 65535, LIMITS, GE_MAX_READ},
    [T_BAT1 + 1] = {"battery2", false, false, 65535, LIMITS, GE_MAX_READ},
    [T_BAT1 + 2] = {"battery3", false, false, 65535, LIMITS, GE_MAX_READ},
    [T_BAT1 + 3] = {"battery4", false, false, 65535, LIMITS, GE_MAX_READ},
    [T_BAT1 + 4] = {"battery5", false, false, 65535, LIMITS, GE_MAX_READ},
    [T_BAT1 + 5] = {"battery6", false, false, 65535, LIMITS, GE_MAX_READ},
};

static const struct param_def settings[] = {
    {.name = "host", .type = PARAM_STR, .required = true, .help = "the dongle's address"},
    {.name = "port", .type = PARAM_INT, .def = "8899", .min = 1, .max = 65535},
};

static const struct param_def options[] = {
    {.name = "address",
     .type = PARAM_INT,
     .def = "17",
     .min = 1,
     .max = 255,
     .help = "the inverter's device address (0x11 = 17; 0x31 = 49 mirrors it on AC and Gen1)"},
    {.name = "family",
     .type = PARAM_STR,
     .help = "the inverter family the entity file describes (hybrid, hybrid_gen3, ac, aio); "
             "set by the entity file"},
    {.name = "verify_model",
     .type = PARAM_BOOL,
     .def = "true",
     .help = "identify the inverter on connecting and refuse to work with a wrong entity file"},
    {.name = "frame_gap",
     .type = PARAM_DURATION,
     .def = "250ms",
     .min = 100,
     .max = 10000,
     .help = "pause between two frames of one job (a write and its read-back)"},
    {.name = "silence_timeout",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 5000,
     .max = 3600000,
     .help = "a connection without a byte for this long is dead and is opened again"},
    {.name = "reconnect_delay",
     .type = PARAM_DURATION,
     .def = "10s",
     .min = 100,
     .max = 60000,
     .help = "the first wait before connecting again; doubles up to a minute"},
};

enum phase {
    PH_IDLE,
    PH_IDENT,  // holding 0-59 for the model check, before the first job of a connection
    PH_READ,   // the job's read
    PH_WRITE,  // the write, until its echo or refusal
    PH_VERIFY, // the written register read back
};

enum {
    IDENT_COUNT = 60,
    RECONNECT_MAX_MS = 60000,
    ZERO_PAGES = 64, // pages remembered as having shown non-zero values
    BATTERY_ADDRESS = 0x32,
};

struct page {
    uint8_t table;
    uint16_t page;
};

struct ge {
    struct drv_ctx *ctx;
    char id[65];
    char host[256];
    int port;
    uint8_t address;
    bool verify, have_family, want_gen3;
    enum ge_family family;
    int64_t gap_ms, silence_ms, reconnect_ms;

    bool started, connecting, connected;
    int64_t last_rx_ms, last_tx_ms, reconnect_at, reconnect_wait;
    bool sent_any; // last_tx_ms is valid
    bool identified, mismatch;
    char mismatch_why[160];

    // The job in flight, and a frame waiting for the gap.
    bool waiting;
    struct drv_job job;
    enum phase phase;
    uint8_t expect_addr, expect_fn;
    uint16_t expect_reg, expect_count;
    uint16_t written;
    bool send_pending;
    int64_t send_at;
    uint8_t pending[GE_REQUEST_LEN];

    struct page nonzero[ZERO_PAGES];
    size_t n_nonzero;

    uint64_t frames, bad_crc, zero_dropouts, heartbeats, ignored, foreign;
};

// ---- write safety -------------------------------------------------------------------------

enum kind { K_BOOL, K_RANGE, K_HHMM, K_SET };

struct writable {
    uint16_t reg;
    enum kind kind;
    uint16_t min, max; // K_RANGE; K_SET: a bit mask of allowed values (0..15)
    bool ac_only;      // holding 300+: absent on Gen1/Gen2 DC hybrids
};

// The holding registers a command may write, with their ranges (docs/devices/givenergy.md).
static const struct writable writables[] = {
    {20, K_BOOL, 0, 1, false},                                   // enable charge target
    {27, K_BOOL, 0, 1, false},                                   // eco mode (battery power mode)
    {29, K_SET, 0x000b, 0, false},                               // battery calibration: 0, 1, 3
    {31, K_HHMM, 0, 0, false},                                   // charge slot 2 (Gen1, AC)
    {32, K_HHMM, 0, 0, false},     {44, K_HHMM, 0, 0, false},    // discharge slot 2
    {45, K_HHMM, 0, 0, false},     {50, K_RANGE, 0, 100, false}, // active power rate
    {56, K_HHMM, 0, 0, false},                                   // discharge slot 1
    {57, K_HHMM, 0, 0, false},     {59, K_BOOL, 0, 1, false},    // enable discharge schedule
    {94, K_HHMM, 0, 0, false},                                   // charge slot 1
    {95, K_HHMM, 0, 0, false},     {96, K_BOOL, 0, 1, false},    // enable charge schedule
    {110, K_RANGE, 4, 100, false},                               // battery reserve
    {111, K_RANGE, 0, 100, false},                               // charge rate
    {112, K_RANGE, 0, 100, false},                               // discharge rate
    {114, K_RANGE, 4, 100, false},                               // battery cut-off
    {116, K_RANGE, 4, 100, false},                               // charge target
    {166, K_BOOL, 0, 1, false},                                  // real-time control
    {243, K_HHMM, 0, 0, false}, // charge slot 2 (extended-slot models)
    {244, K_HHMM, 0, 0, false},    {311, K_RANGE, 0, 2, true}, // export priority
    {313, K_RANGE, 1, 100, true}, // AC charge rate (0 is refused by the inverter)
    {314, K_RANGE, 1, 100, true}, // AC discharge rate
    {317, K_BOOL, 0, 1, true},    // EPS
    {318, K_RANGE, 0, 3, true},   // battery pause mode
    {319, K_HHMM, 0, 0, true},    // pause slot
    {320, K_HHMM, 0, 0, true},
};

static const struct writable *writable_find(uint32_t reg)
{
    for (size_t i = 0; i < sizeof(writables) / sizeof(writables[0]); i++)
        if (writables[i].reg == reg)
            return &writables[i];
    return NULL;
}

// Whether `v` may go into register `w`; writes the reason to `why` when not.
static bool writable_ok(const struct writable *w, uint16_t v, char *why, size_t n)
{
    switch (w->kind) {
    case K_BOOL:
    case K_RANGE:
        if (v >= w->min && v <= w->max)
            return true;
        snprintf(why, n, "holding %u takes %u to %u, not %u", w->reg, w->min, w->max, v);
        return false;
    case K_HHMM:
        if (v / 100 <= 23 && v % 100 <= 59)
            return true;
        snprintf(why, n, "holding %u takes a time as HHMM (0 to 2359, minutes below 60), not %u",
                 w->reg, v);
        return false;
    case K_SET:
        if (v < 16 && (w->min >> v & 1))
            return true;
        snprintf(why, n, "holding %u does not take %u", w->reg, v);
        return false;
    }
    return false;
}

// ---- helpers --------------------------------------------------------------------------------

static void finish(struct ge *m, enum drv_status st, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(struct ge *m, enum drv_status st, int code, const char *fmt, ...)
{
    if (!m->waiting)
        return;
    m->waiting = false;
    m->phase = PH_IDLE;
    m->send_pending = false;
    char why[192] = "";
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

// The device address and function of a table's reads.
static void table_target(const struct ge *m, uint8_t table, uint8_t *addr, uint8_t *fn)
{
    if (table >= T_BAT1) {
        *addr = (uint8_t)(BATTERY_ADDRESS + table - T_BAT1);
        *fn = GE_FN_READ_INPUT;
        return;
    }
    *addr = m->address;
    *fn = table == T_HOLDING ? GE_FN_READ_HOLDING : GE_FN_READ_INPUT;
}

// The table a response's address and function belong to, or -1.
static int table_of(const struct ge *m, uint8_t addr, uint8_t fn)
{
    if (addr == m->address)
        return fn == GE_FN_READ_HOLDING ? T_HOLDING : fn == GE_FN_READ_INPUT ? T_INPUT : -1;
    if (fn == GE_FN_READ_INPUT && addr >= BATTERY_ADDRESS && addr < BATTERY_ADDRESS + 6)
        return T_BAT1 + addr - BATTERY_ADDRESS;
    return -1;
}

// The next deadline of the one timer: a frame waiting for the gap, reconnecting, silence.
static void arm_timer(struct ge *m)
{
    int64_t now = drv_now_ms(m->ctx), at = INT64_MAX;
    if (!m->connected && !m->connecting && m->started)
        at = m->reconnect_at;
    if (m->connected) {
        at = m->last_rx_ms + m->silence_ms;
        if (m->send_pending && m->send_at < at)
            at = m->send_at;
    }
    if (at == INT64_MAX) {
        drv_timer_cancel(m->ctx);
        return;
    }
    drv_timer_set(m->ctx, at > now ? at - now : 0);
}

static void connect_now(struct ge *m)
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

// Sends a request now, or after the gap since the last frame we sent.
static void send_request(struct ge *m, const uint8_t *frame, int len)
{
    if (len != GE_REQUEST_LEN) {
        finish(m, DRV_ERR_PROTOCOL, 0, "cannot encode the request");
        return;
    }
    int64_t now = drv_now_ms(m->ctx);
    if (m->sent_any && now < m->last_tx_ms + m->gap_ms) {
        memcpy(m->pending, frame, GE_REQUEST_LEN);
        m->send_pending = true;
        m->send_at = m->last_tx_ms + m->gap_ms;
        arm_timer(m);
        return;
    }
    m->last_tx_ms = now;
    m->sent_any = true;
    if (drv_tcp_send(m->ctx, frame, GE_REQUEST_LEN) < 0)
        finish(m, DRV_ERR_IO, 0, "cannot send the request");
}

static void send_read(struct ge *m, enum phase ph, uint8_t addr, uint8_t fn, uint16_t reg,
                      uint16_t count)
{
    uint8_t out[GE_REQUEST_LEN];
    m->phase = ph;
    m->expect_addr = addr;
    m->expect_fn = fn;
    m->expect_reg = reg;
    m->expect_count = count;
    send_request(m, out, ge_encode_read(out, sizeof(out), NULL, addr, fn, reg, count));
}

static void send_write(struct ge *m, uint16_t reg, uint16_t value)
{
    uint8_t out[GE_REQUEST_LEN];
    m->phase = PH_WRITE;
    m->expect_addr = m->address;
    m->expect_fn = GE_FN_WRITE_SINGLE;
    m->expect_reg = reg;
    m->expect_count = 1;
    m->written = value;
    send_request(m, out, ge_encode_write(out, sizeof(out), NULL, m->address, reg, value));
}

// The job itself, after the model check.
static void start_main(struct ge *m)
{
    const struct drv_job *j = &m->job;
    if (j->type == DRV_JOB_READ) {
        uint8_t addr, fn;
        table_target(m, j->table, &addr, &fn);
        send_read(m, PH_READ, addr, fn, (uint16_t)j->address, j->count);
        return;
    }
    send_write(m, (uint16_t)j->address, j->regs[0]);
}

static void proceed(struct ge *m)
{
    if (!m->waiting || m->phase != PH_IDLE || !m->connected)
        return;
    if (m->mismatch) {
        finish(m, DRV_ERR_EXCEPTION, 0, "%s", m->mismatch_why);
        return;
    }
    if (m->verify && m->have_family && !m->identified) {
        send_read(m, PH_IDENT, m->address, GE_FN_READ_HOLDING, 0, IDENT_COUNT);
        return;
    }
    start_main(m);
}

// ---- responses ------------------------------------------------------------------------------

// Checks the identity against the entity file's family; false on a mismatch.
static bool identity_ok(struct ge *m, const uint16_t *hr)
{
    struct ge_identity id;
    ge_identify(hr, &id);
    m->identified = true;
    bool gen3 = id.family == GE_FAMILY_HYBRID && id.generation == 3;
    if (id.family == m->family && gen3 == m->want_gen3) {
        log_info(m->id, "GivEnergy %s%s %s (device type %04x, firmware D0.%u-A0.%u)",
                 ge_family_name(id.family), gen3 ? " Gen3" : "", id.serial, id.dtc, id.dsp_firmware,
                 id.arm_firmware);
        return true;
    }
    m->mismatch = true;
    snprintf(m->mismatch_why, sizeof(m->mismatch_why),
             "the inverter %s (%s%s, device type %04x, ARM firmware %u) needs model: %s", id.serial,
             ge_family_name(id.family), gen3 ? " Gen3" : "", id.dtc, id.arm_firmware,
             id.model ? id.model : "(no entity file fits it yet)");
    log_error(m->id, "wrong entity file: %s (or set verify_model: false)", m->mismatch_why);
    return false;
}

// Whether a page of `table` has shown non-zero values before; remembers it when `seen`.
static bool page_nonzero(struct ge *m, uint8_t table, uint16_t page, bool seen)
{
    for (size_t i = 0; i < m->n_nonzero; i++)
        if (m->nonzero[i].table == table && m->nonzero[i].page == page)
            return true;
    if (seen && m->n_nonzero < ZERO_PAGES)
        m->nonzero[m->n_nonzero++] = (struct page){table, page};
    return false;
}

static bool answers(const struct ge *m, const struct ge_frame *f)
{
    if (!m->waiting || m->phase == PH_IDLE || m->send_pending || f->address != m->expect_addr ||
        f->function != m->expect_fn)
        return false;
    if (f->error || f->function == GE_FN_WRITE_SINGLE)
        return f->reg == m->expect_reg;
    return f->reg <= m->expect_reg &&
           (uint32_t)f->reg + f->n_values >= (uint32_t)m->expect_reg + m->expect_count;
}

static void on_answer(struct ge *m, const struct ge_frame *f)
{
    const uint16_t *asked = f->values + (m->expect_reg - f->reg);
    if (f->error) {
        if (m->phase == PH_IDENT) {
            // An inverter that will not show its identity cannot be checked: go on.
            log_warn(m->id, "the inverter refused to show holding 0-59: model not checked");
            start_main(m);
            return;
        }
        finish(m, DRV_ERR_EXCEPTION, 0, "the inverter refused %s %u (error response)",
               ge_function_name(f->function), f->reg);
        return;
    }
    switch (m->phase) {
    case PH_IDENT: start_main(m); return;
    case PH_READ: finish(m, DRV_OK, 0, NULL); return;
    case PH_WRITE:
        // The echo says a write of this register happened, not that ours did: read it back.
        send_read(m, PH_VERIFY, m->address, GE_FN_READ_HOLDING, m->expect_reg, 1);
        return;
    case PH_VERIFY:
        if (asked[0] != m->written)
            finish(m, DRV_ERR_EXCEPTION, 3, "the inverter kept %u in holding %u instead of %u",
                   asked[0], m->expect_reg, m->written);
        else
            finish(m, DRV_OK, 0, NULL);
        return;
    case PH_IDLE: return;
    }
}

static void on_transparent(struct ge *m, const struct ge_frame *f)
{
    if (!f->crc_ok) {
        m->bad_crc++;
        log_debug(m->id, "CRC mismatch in a response from 0x%02x for register %u: dropped",
                  f->address, f->reg);
        return;
    }
    bool ours = answers(m, f);
    if (!f->error && f->function != GE_FN_WRITE_SINGLE) {
        int t = table_of(m, f->address, f->function);
        if (t < 0) {
            m->foreign++; // meters, other devices: not ours to decode
        } else {
            uint16_t page = (uint16_t)(f->reg / GE_MAX_READ);
            if (f->all_zero && page_nonzero(m, (uint8_t)t, page, false)) {
                m->zero_dropouts++;
                log_debug(m->id, "an all-zero block of %s %u-%u after real values: dropped",
                          tables[t].name, f->reg, f->reg + f->n_values - 1);
                if (ours)
                    finish(m, DRV_ERR_PROTOCOL, 0, "the inverter answered all zeros (a dropout)");
                return;
            }
            if (!f->all_zero)
                page_nonzero(m, (uint8_t)t, page, true);
            if (ours && m->phase == PH_IDENT && f->reg == 0 && f->n_values >= 22 &&
                !identity_ok(m, f->values)) {
                finish(m, DRV_ERR_EXCEPTION, 0, "%s", m->mismatch_why);
                return;
            }
            if (!m->mismatch)
                drv_registers(m->ctx, (uint8_t)t, f->reg, f->n_values, f->values);
        }
    }
    if (ours)
        on_answer(m, f);
}

// ---- hooks ----------------------------------------------------------------------------------

static int ge_check(const struct drv_device *dev, char *err, size_t n)
{
    enum ge_family fam;
    bool gen3;
    if (params_is_set(dev->options, "family") &&
        ge_family_parse(params_str(dev->options, "family"), &fam, &gen3) < 0) {
        snprintf(err, n, "family must be hybrid, hybrid_gen3, ac or aio, got '%s'",
                 params_str(dev->options, "family"));
        return -EINVAL;
    }
    return 0;
}

static int ge_conflict(const struct drv_device *a, const struct drv_device *b, char *err, size_t n)
{
    if (strcasecmp(params_str(a->settings, "host"), params_str(b->settings, "host")) != 0 ||
        params_int(a->settings, "port") != params_int(b->settings, "port"))
        return 0;
    snprintf(err, n,
             "the same dongle (%s port %lld) is configured twice; it has few connection slots, "
             "so one device reads everything",
             params_str(b->settings, "host"), params_int(b->settings, "port"));
    return -EINVAL;
}

static int ge_open(const struct drv_device *dev, void **state)
{
    struct ge *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s", dev->id);
    snprintf(m->host, sizeof(m->host), "%s", params_str(dev->settings, "host"));
    m->port = (int)params_int(dev->settings, "port");
    m->address = (uint8_t)params_int(dev->options, "address");
    m->verify = params_bool(dev->options, "verify_model");
    m->have_family =
        params_is_set(dev->options, "family") &&
        ge_family_parse(params_str(dev->options, "family"), &m->family, &m->want_gen3) == 0;
    m->gap_ms = params_ms(dev->options, "frame_gap");
    m->silence_ms = params_ms(dev->options, "silence_timeout");
    m->reconnect_ms = params_ms(dev->options, "reconnect_delay");
    m->reconnect_wait = m->reconnect_ms;
    *state = m;
    return 0;
}

static void ge_close(void *state)
{
    free(state);
}

static int ge_start(void *state, struct drv_ctx *ctx)
{
    struct ge *m = state;
    m->ctx = ctx;
    m->started = true;
    connect_now(m);
    return 0;
}

static void ge_job(void *state, const struct drv_job *job)
{
    struct ge *m = state;
    m->job = *job;
    m->waiting = true;
    m->phase = PH_IDLE;
    m->send_pending = false;
    if (job->type == DRV_JOB_WRITE) {
        char why[160];
        const struct writable *w = writable_find(job->address);
        if (job->table != T_HOLDING || job->count != 1 || job->bit >= 0) {
            finish(m, DRV_ERR_EXCEPTION, 0, "only single holding registers can be written");
            return;
        }
        if (!w) {
            finish(m, DRV_ERR_EXCEPTION, 0, "holding %u is not on the driver's write allow-list",
                   job->address);
            return;
        }
        if (w->ac_only && m->have_family && m->family == GE_FAMILY_HYBRID && !m->want_gen3) {
            finish(m, DRV_ERR_EXCEPTION, 0, "holding %u does not exist on Gen1/Gen2 hybrids",
                   job->address);
            return;
        }
        if (!writable_ok(w, job->regs[0], why, sizeof(why))) {
            finish(m, DRV_ERR_EXCEPTION, 3, "%s", why);
            return;
        }
    } else if (job->type != DRV_JOB_READ) {
        finish(m, DRV_ERR_PROTOCOL, 0, "not a job for this driver");
        return;
    }
    if (m->connected) {
        proceed(m);
        return;
    }
    connect_now(m);
}

// The job in flight timed out: a late response is just data, the connection stays.
static void ge_abort(void *state)
{
    struct ge *m = state;
    m->waiting = false;
    m->phase = PH_IDLE;
    m->send_pending = false;
}

static void ge_tcp_connected(void *state)
{
    struct ge *m = state;
    int64_t now = drv_now_ms(m->ctx);
    m->connecting = false;
    m->connected = true;
    m->last_rx_ms = now;
    m->sent_any = false;
    m->identified = m->mismatch = false;
    m->reconnect_wait = m->reconnect_ms;
    log_debug(m->id, "connected to the dongle at %s:%d", m->host, m->port);
    arm_timer(m);
    proceed(m);
}

static size_t ge_tcp_data(void *state, const uint8_t *buf, size_t len)
{
    struct ge *m = state;
    struct ge_frame f;
    enum ge_status st = ge_parse(buf, len, GE_DIR_RESPONSE, &f);
    if (st == GE_NEED_MORE)
        return 0;
    m->last_rx_ms = drv_now_ms(m->ctx);
    switch (st) {
    case GE_OK:
        m->frames++;
        if (f.fid == GE_FID_HEARTBEAT) {
            uint8_t out[GE_MIN_FRAME];
            int n = ge_encode_heartbeat(out, sizeof(out), NULL, f.adapter_type);
            if (n > 0 && drv_tcp_send(m->ctx, out, (size_t)n) == 0)
                m->heartbeats++;
        } else {
            on_transparent(m, &f);
        }
        break;
    case GE_IGNORED: m->ignored++; break;
    default: log_debug(m->id, "%s: %zu bytes dropped", ge_status_name(st), f.len); break;
    }
    arm_timer(m);
    return f.len;
}

static void ge_tcp_closed(void *state, const char *why)
{
    struct ge *m = state;
    bool was_connected = m->connected;
    m->connecting = m->connected = false;
    m->send_pending = false;
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

static void ge_timer(void *state)
{
    struct ge *m = state;
    int64_t now = drv_now_ms(m->ctx);
    if (m->connected && now - m->last_rx_ms >= m->silence_ms) {
        log_warn(m->id, "nothing from the dongle for %lld s: connecting again",
                 (long long)((now - m->last_rx_ms) / 1000));
        drv_tcp_close(m->ctx);
        m->connected = false;
        m->send_pending = false;
        m->reconnect_at = now + m->reconnect_wait;
        finish(m, DRV_ERR_IO, 0, "the connection went silent");
    }
    if (m->connected && m->send_pending && now >= m->send_at) {
        m->send_pending = false;
        m->last_tx_ms = now;
        if (drv_tcp_send(m->ctx, m->pending, GE_REQUEST_LEN) < 0)
            finish(m, DRV_ERR_IO, 0, "cannot send the request");
    }
    if (!m->connected && !m->connecting && m->started && now >= m->reconnect_at)
        connect_now(m);
    arm_timer(m);
}

const struct driver_ops givenergy_driver = {
    .name = "givenergy",
    .summary = "GivEnergy hybrid, AC-coupled and All-in-One inverters through the dongle (TCP "
               "8899)",
    .style = DRV_EVENT,
    .settings = settings,
    .n_settings = sizeof(settings) / sizeof(settings[0]),
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .tables = tables,
    .n_tables = N_TABLES,
    .timing =
        {
            .min_gap_ms = 250, // the inverter serialises requests; bursts time out
            .poll_ms = 30000,
            .min_poll_ms = 2000,
            .reply_timeout_ms = 3000,
            .connect_timeout_ms = 5000,
            .backoff_min_ms = 10000,
            .backoff_max_ms = 60000,
        },
    .check = ge_check,
    .conflict = ge_conflict,
    .open = ge_open,
    .close = ge_close,
    .start = ge_start,
    .job = ge_job,
    .abort = ge_abort,
    .tcp_connected = ge_tcp_connected,
    .tcp_data = ge_tcp_data,
    .tcp_closed = ge_tcp_closed,
    .timer = ge_timer,
    .decode = givenergy_decode,
};
