// SPDX-License-Identifier: MIT
// The givenergy driver against the fake core of fake_drv.c (every byte it sends and when, every
// register block and job result it reports, a clock the test moves), fed frames as the dongle
// would. Checks the model check on connecting, response matching
// (ours, covering blocks, other clients', error responses), battery tables, CRC failures and
// all-zero dropouts, writes with read-back verification, the write allow-list and ranges, the
// gap between frames, heartbeats, silence, reconnect backoff and the configuration checks.
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/params.h"
#include "drivers/driver.h"
#include "drivers/givenergy/givenergy_codec.h"
#include "unit/fake_drv.h"

extern const struct driver_ops givenergy_driver;
static const struct driver_ops *const drv = &givenergy_driver;

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t ADAPTER[10] = "WF2125G316";
static const uint8_t INV[10] = "SA2114G047";
enum { T_INPUT, T_HOLDING, T_BAT1, T_BAT2 };

// ---- fixture ----------------------------------------------------------------------------------

static void setup(void)
{
    fake_drv_setup(drv, "ge", "192.0.2.7", 8899, 0);
}

// ---- the dongle's side ------------------------------------------------------------------------

static void heartbeat(uint8_t type)
{
    uint8_t b[32];
    int n = ge_encode_heartbeat(b, sizeof(b), ADAPTER, type);
    fake_drv_receive(b, (size_t)n);
}

// A read response whose register r holds base + r.
static void reply_read(uint8_t addr, uint8_t fn, uint16_t reg, uint16_t count, uint16_t base)
{
    uint16_t v[GE_MAX_READ];
    for (uint16_t i = 0; i < count; i++)
        v[i] = (uint16_t)(base + reg + i);
    uint8_t b[GE_FRAME_MAX];
    int n = ge_encode_read_response(b, sizeof(b), ADAPTER, addr, fn, INV, reg, v, count);
    ck_assert_int_gt(n, 0);
    fake_drv_receive(b, (size_t)n);
}

static void reply_values(uint8_t addr, uint8_t fn, uint16_t reg, const uint16_t *v, uint16_t n)
{
    uint8_t b[GE_FRAME_MAX];
    int len = ge_encode_read_response(b, sizeof(b), ADAPTER, addr, fn, INV, reg, v, n);
    ck_assert_int_gt(len, 0);
    fake_drv_receive(b, (size_t)len);
}

// Holding 0-59 of an inverter with device type `dtc` and ARM firmware `arm`.
static void reply_identity(uint16_t dtc, uint16_t arm)
{
    uint16_t hr[60] = {0};
    hr[0] = dtc;
    hr[13] = 'S' << 8 | 'A';
    hr[14] = '2' << 8 | '1';
    hr[15] = '1' << 8 | '4';
    hr[16] = 'G' << 8 | '0';
    hr[17] = '4' << 8 | '7';
    hr[21] = arm;
    reply_values(0x11, GE_FN_READ_HOLDING, 0, hr, 60);
}

static void reply_echo(uint16_t reg, uint16_t value)
{
    uint8_t b[64];
    int n = ge_encode_write_response(b, sizeof(b), ADAPTER, 0x11, INV, reg, value);
    fake_drv_receive(b, (size_t)n);
}

static void reply_error(uint8_t addr, uint8_t fn, uint16_t reg, uint16_t word2)
{
    uint8_t b[64];
    int n = ge_encode_error(b, sizeof(b), ADAPTER, addr, fn, INV, reg, word2);
    fake_drv_receive(b, (size_t)n);
}

// The frames the driver sent since the last call, parsed as requests.
static int sent_frames(struct ge_frame *out, int max)
{
    int n = 0;
    size_t at = 0;
    while (at < fc.sent_len && n < max) {
        enum ge_status st = ge_parse(fc.sent + at, fc.sent_len - at, GE_DIR_REQUEST, &out[n]);
        ck_assert_msg(st == GE_OK, "the driver sent a broken frame: %s", ge_status_name(st));
        if (out[n].fid == GE_FID_TRANSPARENT) {
            ck_assert(out[n].crc_ok);
            ck_assert_uint_eq(out[n].inner_len, 8);
        }
        at += out[n].len;
        n++;
    }
    ck_assert_uint_eq(at, fc.sent_len);
    fc.sent_len = 0;
    return n;
}

static struct ge_frame one_sent(void)
{
    struct ge_frame f[4];
    ck_assert_int_eq(sent_frames(f, 4), 1);
    return f[0];
}

static void nothing_sent(void)
{
    ck_assert_uint_eq(fc.sent_len, 0);
}

static struct drv_job read_job(uint8_t table, uint32_t address, uint16_t count)
{
    return (struct drv_job){
        .type = DRV_JOB_READ, .table = table, .address = address, .count = count, .bit = -1};
}

static struct drv_job write_job(uint32_t address, uint16_t value)
{
    struct drv_job j = {
        .type = DRV_JOB_WRITE, .table = T_HOLDING, .address = address, .count = 1, .bit = -1};
    j.regs[0] = value;
    return j;
}

static void job(struct drv_job j)
{
    drv->job(fc.state, &j);
}

static const struct fake_done *last_done(void)
{
    ck_assert_int_gt(fc.n_done, 0);
    return &fc.done[fc.n_done - 1];
}

// Starts without the model check (most tests are about something else).
static void start_plain(void)
{
    fake_drv_set_option("verify_model", "false");
    fake_drv_start();
}

static void expect_read(struct ge_frame f, uint8_t addr, uint8_t fn, uint16_t reg, uint16_t count)
{
    ck_assert_uint_eq(f.address, addr);
    ck_assert_uint_eq(f.function, fn);
    ck_assert_uint_eq(f.reg, reg);
    ck_assert_uint_eq(f.count, count);
}

// ---- the model check ------------------------------------------------------------------------

START_TEST(test_identity_then_job)
{
    setup();
    fake_drv_set_option("family", "hybrid");
    fake_drv_start();
    job(read_job(T_INPUT, 0, 60));
    expect_read(one_sent(), 0x11, GE_FN_READ_HOLDING, 0, 60);
    reply_identity(0x2001, 449);
    ck_assert_int_eq(fc.n_done, 0);
    ck_assert_int_eq(fc.n_regs, 1); // the identity block is data as well
    ck_assert_int_eq(fc.regs[0].table, T_HOLDING);
    // The job's own read waits for the gap after the identity read.
    nothing_sent();
    fake_drv_advance(249);
    nothing_sent();
    fake_drv_advance(1);
    expect_read(one_sent(), 0x11, GE_FN_READ_INPUT, 0, 60);
    ck_assert_int_ge(fc.sent_at[1] - fc.sent_at[0], 250);
    reply_read(0x11, GE_FN_READ_INPUT, 0, 60, 1000);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    // Identified once per connection.
    fake_drv_advance(300);
    job(read_job(T_INPUT, 180, 60));
    expect_read(one_sent(), 0x11, GE_FN_READ_INPUT, 180, 60);
    fake_drv_teardown();
}
END_TEST

static const struct family_case {
    const char *family;
    uint16_t dtc, arm;
    bool ok;
    const char *names; // in the refusal: the entity file to use
} family_cases[] = {
    {"hybrid", 0x2001, 449, true, NULL},
    {"hybrid", 0x2001, 920, true, NULL}, // Gen2
    {"hybrid_gen3", 0x2003, 303, true, NULL},
    {"ac", 0x3001, 282, true, NULL},
    {"aio", 0x8001, 612, true, NULL},
    {"ac", 0x2001, 449, false, "givenergy/hybrid"},
    {"hybrid", 0x2003, 303, false, "givenergy/hybrid-gen3"},
    {"hybrid", 0x8001, 612, false, "givenergy/aio"},
    {"aio", 0x3001, 282, false, "givenergy/ac"},
    {"hybrid", 0x5001, 1036, false, "no entity file fits"},
};

START_TEST(test_family_check)
{
    const struct family_case *c = &family_cases[_i];
    setup();
    fake_drv_set_option("family", c->family);
    fake_drv_start();
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    reply_identity(c->dtc, c->arm);
    if (c->ok) {
        ck_assert_int_eq(fc.n_done, 0);
        fake_drv_teardown();
        return;
    }
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_msg(strstr(last_done()->detail, c->names) != NULL, "%s", last_done()->detail);
    ck_assert_int_eq(fc.n_regs, 0); // a wrong model's entities get nothing
    // Every later job is refused without a frame, and data from other clients is not used.
    fake_drv_advance(1000);
    job(read_job(T_INPUT, 0, 60));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    reply_read(0x11, GE_FN_READ_INPUT, 0, 60, 7);
    ck_assert_int_eq(fc.n_regs, 0);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_identity_refused_or_off)
{
    // An error response to the identity read: not checked, the job goes on.
    setup();
    fake_drv_set_option("family", "hybrid");
    fake_drv_start();
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    reply_error(0x11, GE_FN_READ_HOLDING, 0, 60);
    fake_drv_advance(250);
    expect_read(one_sent(), 0x11, GE_FN_READ_INPUT, 0, 60);
    fake_drv_teardown();
    // verify_model: false, or no family: no identity read.
    setup();
    fake_drv_set_option("family", "ac");
    start_plain();
    job(read_job(T_INPUT, 0, 60));
    expect_read(one_sent(), 0x11, GE_FN_READ_INPUT, 0, 60);
    fake_drv_teardown();
    setup();
    fake_drv_start();
    job(read_job(T_HOLDING, 60, 60));
    expect_read(one_sent(), 0x11, GE_FN_READ_HOLDING, 60, 60);
    fake_drv_teardown();
}
END_TEST

// ---- reads --------------------------------------------------------------------------------

START_TEST(test_matching)
{
    setup();
    fake_drv_set_option("address", "49");
    start_plain();
    job(read_job(T_INPUT, 180, 60));
    expect_read(one_sent(), 0x31, GE_FN_READ_INPUT, 180, 60);
    // Other clients' responses: data, but not the answer.
    reply_read(0x31, GE_FN_READ_INPUT, 0, 60, 0);
    reply_read(0x31, GE_FN_READ_HOLDING, 180, 60, 0);
    reply_read(0x11, GE_FN_READ_INPUT, 180, 60, 0); // another address: not ours
    reply_read(0x01, GE_FN_READ_METER, 60, 30, 0);  // a meter
    ck_assert_int_eq(fc.n_done, 0);
    ck_assert_int_eq(fc.n_regs, 2);
    ck_assert_int_eq(fc.regs[0].table, T_INPUT);
    ck_assert_int_eq(fc.regs[1].table, T_HOLDING);
    // An echo of someone's write changes nothing: the read-back will.
    reply_echo(94, 1730);
    ck_assert_int_eq(fc.n_regs, 2);
    // A covering block answers.
    uint16_t v[60] = {0};
    v[0] = 5;
    reply_values(0x31, GE_FN_READ_INPUT, 180, v, 60);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.regs[2].start, 180);
    // A smaller block does not.
    fake_drv_advance(300);
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    reply_read(0x31, GE_FN_READ_INPUT, 0, 30, 1);
    ck_assert_int_eq(fc.n_done, 1);
    // The error response for the same read refuses it.
    reply_error(0x31, GE_FN_READ_INPUT, 0, 60);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_battery_tables)
{
    setup();
    start_plain();
    job(read_job(T_BAT2, 60, 60));
    expect_read(one_sent(), 0x33, GE_FN_READ_INPUT, 60, 60);
    reply_read(0x32, GE_FN_READ_INPUT, 60, 60, 3000); // pack 1, unasked: still data
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_int_eq(fc.regs[0].table, T_BAT1);
    reply_read(0x33, GE_FN_READ_INPUT, 60, 60, 3000);
    ck_assert_int_eq(fc.regs[1].table, T_BAT2);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_bad_crc_split_and_garbage)
{
    setup();
    start_plain();
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    uint16_t v[60];
    for (int i = 0; i < 60; i++)
        v[i] = (uint16_t)(i + 1);
    uint8_t b[GE_FRAME_MAX + 16];
    int n = ge_encode_read_response(b, sizeof(b), ADAPTER, 0x11, GE_FN_READ_INPUT, INV, 0, v, 60);
    b[n - 1] ^= 0xff;
    fake_drv_receive(b, (size_t)n);
    ck_assert_int_eq(fc.n_regs, 0);
    ck_assert_int_eq(fc.n_done, 0);
    // Garbage, then the frame in three pieces.
    static const uint8_t junk[] = {0x59, 0x00, 0x59, 0x59, 0x00, 0x02, 0x13};
    memcpy(b, junk, sizeof(junk));
    n = ge_encode_read_response(b + sizeof(junk), sizeof(b) - sizeof(junk), ADAPTER, 0x11,
                                GE_FN_READ_INPUT, INV, 0, v, 60);
    size_t total = sizeof(junk) + (size_t)n;
    fake_drv_receive(b, 20);
    fake_drv_receive(b + 20, 50);
    ck_assert_int_eq(fc.n_done, 0);
    fake_drv_receive(b + 70, total - 70);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_uint_eq(fc.regs[0].first, 1);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_all_zero_dropout)
{
    setup();
    start_plain();
    uint16_t zeros[60] = {0};
    // A page that has only ever been zero is taken as it is (unused slots, absent packs).
    job(read_job(T_HOLDING, 240, 60));
    one_sent();
    reply_values(0x11, GE_FN_READ_HOLDING, 240, zeros, 60);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 1);
    // After real values, zeros are a dropout: dropped, and the read fails.
    fake_drv_advance(300);
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    reply_read(0x11, GE_FN_READ_INPUT, 0, 60, 100);
    ck_assert_int_eq(fc.n_regs, 2);
    fake_drv_advance(300);
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    reply_values(0x11, GE_FN_READ_INPUT, 0, zeros, 60);
    ck_assert_int_eq(fc.n_regs, 2);
    ck_assert_int_eq(last_done()->status, DRV_ERR_PROTOCOL);
    // A single zero register is a value.
    fake_drv_advance(300);
    job(read_job(T_INPUT, 59, 1));
    one_sent();
    reply_values(0x11, GE_FN_READ_INPUT, 59, zeros, 1);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 3);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_late_response_after_abort)
{
    setup();
    start_plain();
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    drv->abort(fc.state);
    reply_read(0x11, GE_FN_READ_INPUT, 0, 60, 1);
    ck_assert_int_eq(fc.n_done, 0);
    ck_assert_int_eq(fc.n_regs, 1); // still data
    fake_drv_teardown();
}
END_TEST

// ---- writes --------------------------------------------------------------------------------

START_TEST(test_write_verified_by_read_back)
{
    setup();
    start_plain();
    job(write_job(94, 1730));
    struct ge_frame f = one_sent();
    ck_assert_uint_eq(f.function, GE_FN_WRITE_SINGLE);
    ck_assert_uint_eq(f.address, 0x11);
    ck_assert_uint_eq(f.reg, 94);
    ck_assert_uint_eq(f.values[0], 1730);
    reply_echo(94, 1730);
    ck_assert_int_eq(fc.n_done, 0); // an echo proves nothing
    fake_drv_advance(250);
    expect_read(one_sent(), 0x11, GE_FN_READ_HOLDING, 94, 1);
    uint16_t v = 1730;
    reply_values(0x11, GE_FN_READ_HOLDING, 94, &v, 1);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_uint_eq(fc.regs[0].first, 1730);
    // The inverter keeps another value: refused.
    fake_drv_advance(300);
    job(write_job(116, 80));
    one_sent();
    reply_echo(116, 80);
    fake_drv_advance(250);
    one_sent();
    v = 100;
    reply_values(0x11, GE_FN_READ_HOLDING, 116, &v, 1);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_int_eq(last_done()->code, 3);
    ck_assert_ptr_nonnull(strstr(last_done()->detail, "kept 100"));
    // An error response refuses the write at once.
    fake_drv_advance(300);
    job(write_job(313, 50));
    one_sent();
    reply_error(0x11, GE_FN_WRITE_SINGLE, 313, 50);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    nothing_sent();
    fake_drv_teardown();
}
END_TEST

static const struct refused_write {
    const char *family; // NULL: none
    uint32_t reg;
    uint16_t value;
    const char *why;
} refused_writes[] = {
    {NULL, 0, 1, "allow-list"},                                  // the device type code
    {NULL, 163, 100, "allow-list"},                              // restart
    {NULL, 162, 1, "allow-list"},                                // reset the energy totals
    {NULL, 116, 101, "4 to 100"},                                // charge target
    {NULL, 116, 3, "4 to 100"},      {NULL, 110, 0, "4 to 100"}, // reserve
    {NULL, 114, 200, "4 to 100"},                                // cut-off
    {NULL, 111, 101, "0 to 100"},                                // charge rate
    {NULL, 96, 2, "0 to 1"},                                     // enable charge
    {NULL, 94, 2400, "HHMM"},                                    // slot times
    {NULL, 95, 1260, "HHMM"},        {NULL, 318, 4, "0 to 3"},   // pause mode
    {NULL, 313, 0, "1 to 100"},      // AC charge rate: 0 errors on the inverter
    {NULL, 29, 2, "does not take"},  // calibration: 0, 1, 3
    {"hybrid", 318, 1, "Gen1/Gen2"}, // holding 300+ on a DC hybrid
};

START_TEST(test_write_refused_before_sending)
{
    const struct refused_write *c = &refused_writes[_i];
    setup();
    if (c->family)
        fake_drv_set_option("family", c->family);
    start_plain();
    job(write_job(c->reg, c->value));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_msg(strstr(last_done()->detail, c->why) != NULL, "%u=%u: %s", c->reg, c->value,
                  last_done()->detail);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_write_shapes_refused)
{
    setup();
    start_plain();
    struct drv_job j = write_job(94, 1730);
    j.count = 2;
    job(j);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    j = write_job(96, 1);
    j.bit = 0;
    job(j);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    j = write_job(96, 1);
    j.table = T_INPUT;
    job(j);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    job((struct drv_job){.type = DRV_JOB_ACTION, .action = "sync_clock", .bit = -1});
    ck_assert_int_eq(last_done()->status, DRV_ERR_PROTOCOL);
    nothing_sent();
    // Allowed values at the edges go out.
    job(write_job(110, 4));
    ck_assert_uint_eq(one_sent().values[0], 4);
    fake_drv_teardown();
}
END_TEST

// ---- connection -----------------------------------------------------------------------------

START_TEST(test_heartbeat_answered)
{
    setup();
    start_plain();
    heartbeat(2);
    struct ge_frame f = one_sent();
    ck_assert_uint_eq(f.fid, GE_FID_HEARTBEAT);
    ck_assert_uint_eq(f.adapter_type, 2);
    // In the middle of a job too, without disturbing it.
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    heartbeat(1);
    ck_assert_uint_eq(one_sent().fid, GE_FID_HEARTBEAT);
    reply_read(0x11, GE_FN_READ_INPUT, 0, 60, 1);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_silence_reconnects)
{
    setup();
    fake_drv_set_option("silence_timeout", "60000");
    fake_drv_set_option("reconnect_delay", "1000");
    start_plain();
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    fake_drv_advance(30000);
    heartbeat(1); // bytes: alive
    one_sent();
    fake_drv_advance(59000);
    ck_assert_int_eq(fc.closes, 0);
    fake_drv_advance(2000);
    ck_assert_int_eq(fc.closes, 1);
    ck_assert_int_eq(last_done()->status, DRV_ERR_IO);
    fake_drv_advance(1000);
    ck_assert_int_eq(fc.opens, 2);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_closed_and_backoff)
{
    setup();
    fake_drv_set_option("reconnect_delay", "10000");
    start_plain();
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    fc.tcp_open = false;
    drv->tcp_closed(fc.state, "reset by peer");
    ck_assert_int_eq(last_done()->status, DRV_ERR_IO);
    fake_drv_advance(9999);
    ck_assert_int_eq(fc.opens, 1);
    fake_drv_advance(1);
    ck_assert_int_eq(fc.opens, 2);
    // Failed attempts double the wait up to a minute.
    static const int64_t waits[] = {20000, 40000, 60000, 60000};
    for (size_t i = 0; i < N(waits); i++) {
        drv->tcp_closed(fc.state, "refused");
        fake_drv_advance(waits[i] - 1);
        ck_assert_int_eq(fc.opens, (int)(2 + i));
        fake_drv_advance(1);
        ck_assert_int_eq(fc.opens, (int)(3 + i));
    }
    // Connected again: the wait starts over, and a job goes out.
    fc.tcp_open = true;
    drv->tcp_connected(fc.state);
    job(read_job(T_INPUT, 0, 60));
    one_sent();
    fc.tcp_open = false;
    drv->tcp_closed(fc.state, "reset");
    fake_drv_advance(10000);
    ck_assert_int_eq(fc.opens, 7);
    fake_drv_teardown();
}
END_TEST

// ---- configuration ------------------------------------------------------------------------

START_TEST(test_check_options)
{
    setup();
    char err[200] = "";
    ck_assert_int_eq(drv->check(fake_drv_device(), err, sizeof(err)), 0);
    fake_drv_set_option("family", "hybrid_gen3");
    ck_assert_int_eq(drv->check(fake_drv_device(), err, sizeof(err)), 0);
    fake_drv_set_option("family", "gen9");
    ck_assert_int_eq(drv->check(fake_drv_device(), err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "family"));
    fake_drv_teardown();

    setup();
    struct params other;
    params_init(&other, fc.arena, drv->settings, drv->n_settings);
    other.v[0].set = true;
    other.v[0].s = "192.0.2.7";
    struct drv_device b = {"ge2", &other, &fc.core, &fc.options};
    ck_assert_int_eq(drv->conflict(fake_drv_device(), &b, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "configured twice"));
    other.v[0].s = "192.0.2.8";
    ck_assert_int_eq(drv->conflict(fake_drv_device(), &b, err, sizeof(err)), 0);
    fake_drv_teardown();
}
END_TEST

int main(void)
{
    log_set_level(LOG_LVL_ERROR); // the driver's progress messages are not the test's output
    Suite *s = suite_create("givenergy_driver");
    TCase *tc = tcase_create("driver");
    tcase_add_test(tc, test_identity_then_job);
    tcase_add_loop_test(tc, test_family_check, 0, (int)N(family_cases));
    tcase_add_test(tc, test_identity_refused_or_off);
    tcase_add_test(tc, test_matching);
    tcase_add_test(tc, test_battery_tables);
    tcase_add_test(tc, test_bad_crc_split_and_garbage);
    tcase_add_test(tc, test_all_zero_dropout);
    tcase_add_test(tc, test_late_response_after_abort);
    tcase_add_test(tc, test_write_verified_by_read_back);
    tcase_add_loop_test(tc, test_write_refused_before_sending, 0, (int)N(refused_writes));
    tcase_add_test(tc, test_write_shapes_refused);
    tcase_add_test(tc, test_heartbeat_answered);
    tcase_add_test(tc, test_silence_reconnects);
    tcase_add_test(tc, test_closed_and_backoff);
    tcase_add_test(tc, test_check_options);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
