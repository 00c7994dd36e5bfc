// SPDX-License-Identifier: MIT
// The luxpower driver against the fake core of fake_drv.c (every byte it sends, every register
// block and job result it reports, a clock the test moves), fed frames as the dongle would.
// Checks serial learning and keeping serials across restarts, reply matching (ours, larger
// blocks, other clients', exceptions), unsolicited broadcasts, split frames and garbage, writes
// with their echo, bit writes as read-modify-write of a fresh read, register 11 never written,
// heartbeat echo modes, the clock check, silence and reconnects, and the configuration checks.
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/params.h"
#include "drivers/driver.h"
#include "drivers/luxpower/luxpower_codec.h"
#include "unit/fake_drv.h"

extern const struct driver_ops luxpower_driver;
static const struct driver_ops *const drv = &luxpower_driver;

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t DL[10] = "BA12345678";
static const uint8_t INV[10] = "0123456789";
static const uint8_t ZERO[10];
enum { T_INPUT, T_HOLDING };

static const int64_t WALL0 = 1795248000000LL; // 2026-11-21 08:00:00 UTC

// ---- fixture ----------------------------------------------------------------------------------

static void setup(void)
{
    fake_drv_setup(drv, "lux", "192.0.2.7", 8000, WALL0);
}

static void heartbeat(uint8_t tail)
{
    uint8_t b[32];
    int n = lxp_encode_heartbeat(b, sizeof(b), 5, DL, tail);
    fake_drv_receive(b, (size_t)n);
}

static void reply_read(uint8_t fn, uint16_t reg, uint16_t count, uint16_t base, const uint8_t *inv)
{
    uint16_t v[LXP_MAX_VALUES];
    for (uint16_t i = 0; i < count; i++)
        v[i] = (uint16_t)(base + reg + i);
    uint8_t b[LXP_FRAME_MAX];
    int n = lxp_encode_read_reply(b, sizeof(b), 2, DL, inv, fn, reg, v, count, true);
    ck_assert_int_gt(n, 0);
    fake_drv_receive(b, (size_t)n);
}

static void reply_hold(uint16_t reg, uint16_t value)
{
    uint8_t b[64];
    int n = lxp_encode_read_reply(b, sizeof(b), 2, DL, INV, LXP_READ_HOLD, reg, &value, 1, true);
    fake_drv_receive(b, (size_t)n);
}

static void reply_echo(uint16_t reg, uint16_t value)
{
    uint8_t b[64];
    int n = lxp_encode_write_single_reply(b, sizeof(b), 2, DL, INV, reg, value);
    fake_drv_receive(b, (size_t)n);
}

static void reply_exception(uint8_t fn, uint16_t reg, uint8_t code)
{
    uint8_t b[64];
    int n = lxp_encode_exception(b, sizeof(b), 2, DL, INV, fn, reg, code);
    fake_drv_receive(b, (size_t)n);
}

// A write-multi reply: the start register and the count, nothing else.
static void reply_multi(uint16_t reg, uint16_t count)
{
    uint8_t b[64] = {0xa1, 0x1a, 0x02, 0x00, 0x20, 0x00, 0x01, LXP_TCP_TRANSLATED};
    size_t n = 8;
    memcpy(b + n, DL, 10);
    n += 10;
    const uint8_t mid[] = {18, 0, 1, LXP_WRITE_MULTI};
    memcpy(b + n, mid, sizeof(mid));
    n += sizeof(mid);
    memcpy(b + n, INV, 10);
    n += 10;
    const uint8_t tail[] = {(uint8_t)reg, (uint8_t)(reg >> 8), (uint8_t)count,
                            (uint8_t)(count >> 8)};
    memcpy(b + n, tail, sizeof(tail));
    n += sizeof(tail);
    uint16_t crc = lxp_crc(b + 20, n - 20);
    b[n++] = (uint8_t)crc;
    b[n++] = (uint8_t)(crc >> 8);
    fake_drv_receive(b, n);
}

// The frames the driver sent since the last call, parsed.
static int sent_frames(struct lxp_frame *out, int max)
{
    int n = 0;
    size_t at = 0;
    while (at < fc.sent_len && n < max) {
        enum lxp_status st = lxp_parse(fc.sent + at, fc.sent_len - at, &out[n]);
        ck_assert_msg(st == LXP_OK, "the driver sent a broken frame: %s", lxp_status_name(st));
        if (out[n].tcp_function == LXP_TCP_TRANSLATED)
            ck_assert(out[n].crc_ok);
        at += out[n].len;
        n++;
    }
    ck_assert_uint_eq(at, fc.sent_len);
    fc.sent_len = 0;
    return n;
}

// The only frame sent since the last call.
static struct lxp_frame one_sent(void)
{
    struct lxp_frame f[4];
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

static struct drv_job bit_job(uint32_t address, int bit, bool on)
{
    struct drv_job j = {.type = DRV_JOB_WRITE,
                        .table = T_HOLDING,
                        .address = address,
                        .count = 1,
                        .bit = bit,
                        .bit_on = on};
    regmap_format_init(&j.bit_format, REG_U16, 0);
    j.bit_format.bit = (int8_t)bit;
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

// Learns both serials the way a real start does: a heartbeat, then a first read.
static void learn_serials(void)
{
    heartbeat(0);
    job(read_job(T_INPUT, 0, 40));
    one_sent();
    reply_read(LXP_READ_INPUT, 0, 40, 1000, INV);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    fc.n_done = fc.n_regs = 0;
}

// ---- serials and reads -----------------------------------------------------------------------

START_TEST(test_poll_before_the_dongle_is_known_is_skipped)
{
    setup();
    fake_drv_start();
    job(read_job(T_INPUT, 0, 40));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_SKIPPED);
    ck_assert_ptr_nonnull(strstr(last_done()->detail, "dongle_serial"));
    job(write_job(64, 50));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_BUSY);
    // The first frame brings the serial: everything skipped is asked for again, once.
    ck_assert_int_eq(fc.poll_all, 0);
    heartbeat(0);
    ck_assert_int_eq(fc.poll_all, 1);
    heartbeat(0);
    ck_assert_int_eq(fc.poll_all, 1);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_serials_learned_from_traffic)
{
    setup();
    fake_drv_start();
    heartbeat(5);
    // The dongle is known now, the inverter not: a read goes out with ten zero bytes for it.
    job(read_job(T_INPUT, 0, 40));
    struct lxp_frame f = one_sent();
    ck_assert_mem_eq(f.datalog, DL, 10);
    ck_assert_mem_eq(f.inverter, ZERO, 10);
    ck_assert(f.request && f.function == LXP_READ_INPUT && f.reg == 0 && f.count == 40);
    ck_assert_uint_eq(f.protocol, 1);
    // Writes wait for the inverter's serial.
    reply_read(LXP_READ_INPUT, 0, 40, 1000, INV);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_int_eq(fc.regs[0].table, T_INPUT);
    ck_assert_uint_eq(fc.regs[0].count, 40);
    ck_assert_uint_eq(fc.regs[0].first, 1000);
    job(read_job(T_HOLDING, 40, 40));
    f = one_sent();
    ck_assert_mem_eq(f.inverter, INV, 10);
    ck_assert_uint_eq(f.function, LXP_READ_HOLD);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_configured_serials)
{
    setup();
    fake_drv_set_option("dongle_serial", "XY00000001");
    fake_drv_set_option("inverter_serial", "ZZ00000002");
    fake_drv_start();
    job(read_job(T_INPUT, 80, 40));
    struct lxp_frame f = one_sent();
    ck_assert_mem_eq(f.datalog, "XY00000001", 10);
    ck_assert_mem_eq(f.inverter, "ZZ00000002", 10);
    // Frames from another inverter are not this device's data.
    reply_read(LXP_READ_INPUT, 80, 40, 0, INV);
    ck_assert_int_eq(fc.n_regs, 0);
    ck_assert_int_eq(fc.n_done, 0);
    fake_drv_teardown();
}
END_TEST

// ---- serials kept across restarts ----------------------------------------------------------

// A serial as the learned store keeps it: 20 hex digits.
static const char *hex(const uint8_t *serial)
{
    static char out[2][21];
    static int which;
    char *o = out[which++ % 2];
    for (int i = 0; i < 10; i++)
        snprintf(o + 2 * i, 3, "%02x", serial[i]);
    return o;
}

// Learning stores both serials, once; a restart with them polls before any frame arrives.
START_TEST(test_learned_serials_kept_for_the_next_start)
{
    setup();
    fake_drv_start();
    ck_assert_ptr_null(fake_drv_learned("dongle_serial"));
    heartbeat(0);
    ck_assert_str_eq(fake_drv_learned("dongle_serial"), hex(DL));
    ck_assert_ptr_null(fake_drv_learned("inverter_serial"));
    ck_assert_int_eq(fc.learned_changes, 1);
    job(read_job(T_INPUT, 0, 40));
    one_sent();
    reply_read(LXP_READ_INPUT, 0, 40, 1000, INV);
    ck_assert_str_eq(fake_drv_learned("inverter_serial"), hex(INV));
    ck_assert_int_eq(fc.learned_changes, 2);
    // Seen again: nothing new to keep.
    heartbeat(0);
    reply_read(LXP_READ_INPUT, 0, 40, 1000, INV);
    ck_assert_int_eq(fc.learned_changes, 2);
    char dongle[32], inverter[32];
    snprintf(dongle, sizeof(dongle), "%s", fake_drv_learned("dongle_serial"));
    snprintf(inverter, sizeof(inverter), "%s", fake_drv_learned("inverter_serial"));
    fake_drv_teardown();

    // The next start: no heartbeat yet, and the first poll goes out with both serials.
    setup();
    fake_drv_learn("dongle_serial", dongle);
    fake_drv_learn("inverter_serial", inverter);
    fake_drv_start();
    job(read_job(T_INPUT, 0, 40));
    ck_assert_int_eq(fc.n_done, 0);
    struct lxp_frame f = one_sent();
    ck_assert_mem_eq(f.datalog, DL, 10);
    ck_assert_mem_eq(f.inverter, INV, 10);
    reply_read(LXP_READ_INPUT, 0, 40, 1000, INV);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    // Writes need the inverter's serial: known too.
    job(write_job(66, 50));
    f = one_sent();
    ck_assert(f.function == LXP_WRITE_SINGLE && f.reg == 66);
    ck_assert_mem_eq(f.inverter, INV, 10);
    heartbeat(0);
    ck_assert_int_eq(fc.poll_all, 0); // nothing was skipped
    ck_assert_int_eq(fc.learned_changes, 0);
    fake_drv_teardown();
}
END_TEST

// A dongle or inverter replaced since the last run: its first frame replaces the kept serial.
START_TEST(test_kept_serials_replaced_by_the_device)
{
    static const uint8_t OLD_DL[10] = "OLD0000001", OLD_INV[10] = "OLD0000002";
    setup();
    fake_drv_learn("dongle_serial", hex(OLD_DL));
    fake_drv_learn("inverter_serial", hex(OLD_INV));
    fake_drv_start();
    job(read_job(T_INPUT, 0, 40));
    struct lxp_frame f = one_sent();
    ck_assert_mem_eq(f.datalog, OLD_DL, 10);
    ck_assert_mem_eq(f.inverter, OLD_INV, 10);
    heartbeat(0);
    ck_assert_str_eq(fake_drv_learned("dongle_serial"), hex(DL));
    // The new inverter's frame is its data, and answers the read.
    reply_read(LXP_READ_INPUT, 0, 40, 1000, INV);
    ck_assert_str_eq(fake_drv_learned("inverter_serial"), hex(INV));
    ck_assert_int_eq(fc.learned_changes, 2);
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    job(read_job(T_INPUT, 40, 40));
    f = one_sent();
    ck_assert_mem_eq(f.datalog, DL, 10);
    ck_assert_mem_eq(f.inverter, INV, 10);
    // Once confirmed, another inverter's frame is foreign again, not a replacement.
    reply_read(LXP_READ_INPUT, 40, 40, 0, OLD_INV);
    ck_assert_str_eq(fake_drv_learned("inverter_serial"), hex(INV));
    ck_assert_int_eq(fc.n_regs, 1);
    fake_drv_teardown();
}
END_TEST

// The options win over kept serials, which they neither use nor overwrite.
START_TEST(test_options_win_over_kept_serials)
{
    setup();
    fake_drv_set_option("dongle_serial", "XY00000001");
    fake_drv_set_option("inverter_serial", "ZZ00000002");
    fake_drv_learn("dongle_serial", hex(DL));
    fake_drv_learn("inverter_serial", hex(INV));
    fake_drv_start();
    job(read_job(T_INPUT, 0, 40));
    struct lxp_frame f = one_sent();
    ck_assert_mem_eq(f.datalog, "XY00000001", 10);
    ck_assert_mem_eq(f.inverter, "ZZ00000002", 10);
    heartbeat(0);
    reply_read(LXP_READ_INPUT, 0, 40, 0, INV);
    ck_assert_int_eq(fc.learned_changes, 0);
    ck_assert_str_eq(fake_drv_learned("dongle_serial"), hex(DL));
    fake_drv_teardown();
}
END_TEST

// What is kept but is no serial is ignored: the driver learns as on a first start.
static const char *const bad_kept[] = {
    "42413132333435363738ff00", // too long
    "4241313233343536373",      // too short
    "zz413132333435363738",     // not hex
    "00000000000000000000",     // no serial at all
    "",
};

START_TEST(test_bad_kept_serial_ignored)
{
    setup();
    fake_drv_learn("dongle_serial", bad_kept[_i]);
    fake_drv_start();
    job(read_job(T_INPUT, 0, 40));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_SKIPPED);
    heartbeat(0);
    ck_assert_str_eq(fake_drv_learned("dongle_serial"), hex(DL));
    ck_assert_int_eq(fc.poll_all, 1);
    fake_drv_teardown();
}
END_TEST

// A serial that is not printable text is kept byte for byte.
START_TEST(test_binary_serial_kept_exactly)
{
    static const uint8_t BIN[10] = {0x00, 0x01, 0x7f, 0x80, 0xff, 'A', ' ', 0x0a, 0xc3, 0x28};
    setup();
    fake_drv_start();
    uint8_t b[32];
    int n = lxp_encode_heartbeat(b, sizeof(b), 2, BIN, 0);
    fake_drv_receive(b, (size_t)n);
    ck_assert_str_eq(fake_drv_learned("dongle_serial"), "00017f80ff41200ac328");
    char kept[32];
    snprintf(kept, sizeof(kept), "%s", fake_drv_learned("dongle_serial"));
    fake_drv_teardown();
    setup();
    fake_drv_learn("dongle_serial", kept);
    fake_drv_start();
    job(read_job(T_INPUT, 0, 40));
    ck_assert_mem_eq(one_sent().datalog, BIN, 10);
    fake_drv_teardown();
}
END_TEST

// A reply split over reads, garbage around it, and a wrong CRC.
START_TEST(test_split_garbage_and_bad_crc)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 40, 40));
    one_sent();
    uint16_t v[40] = {0};
    uint8_t b[LXP_FRAME_MAX];
    int n = lxp_encode_read_reply(b, sizeof(b), 2, DL, INV, LXP_READ_INPUT, 40, v, 40, true);
    // A corrupted copy first: dropped, the job still waits.
    uint8_t bad[LXP_FRAME_MAX];
    memcpy(bad, b, (size_t)n);
    bad[50] ^= 1;
    static const uint8_t junk[] = {0x13, 0x37, 0xa1, 0x00};
    fake_drv_receive(junk, sizeof(junk));
    fake_drv_receive(bad, (size_t)n);
    ck_assert_int_eq(fc.n_done, 0);
    ck_assert_int_eq(fc.n_regs, 0);
    fake_drv_receive(b, 30);
    ck_assert_int_eq(fc.n_done, 0);
    fake_drv_receive(b + 30, (size_t)n - 30);
    ck_assert_int_eq(fc.n_done, 1);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 1);
    fake_drv_teardown();
}
END_TEST

// Another client's larger block answers our read; an unasked block is a broadcast.
START_TEST(test_larger_blocks_and_broadcasts)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 40, 40));
    one_sent();
    // A broadcast of 0-39 does not cover 40-79: data, not the answer.
    reply_read(LXP_READ_INPUT, 0, 40, 0, INV);
    ck_assert_int_eq(fc.n_done, 0);
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_int_eq(fc.alive, 1);
    // The protocol-5 frame 0-126 does.
    reply_read(LXP_READ_INPUT, 0, 127, 0, INV);
    ck_assert_int_eq(fc.n_done, 1);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_int_eq(fc.n_regs, 2);
    ck_assert_uint_eq(fc.regs[1].count, 127);
    ck_assert_int_eq(fc.alive, 1); // it answered us: not a broadcast
    // Holding values seen anywhere are news too (the app changed a setting).
    reply_read(LXP_READ_HOLD, 0, 40, 0, INV);
    ck_assert_int_eq(fc.regs[2].table, T_HOLDING);
    reply_echo(66, 80);
    ck_assert_int_eq(fc.regs[3].table, T_HOLDING);
    ck_assert_uint_eq(fc.regs[3].start, 66);
    ck_assert_uint_eq(fc.regs[3].first, 80);
    ck_assert_int_eq(fc.n_done, 1);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_exception_refuses_the_read)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 200, 40));
    one_sent();
    reply_exception(LXP_READ_HOLD, 200, 2); // another function: not ours
    ck_assert_int_eq(fc.n_done, 0);
    reply_exception(LXP_READ_INPUT, 160, 2); // another register: not ours
    ck_assert_int_eq(fc.n_done, 0);
    reply_exception(LXP_READ_INPUT, 200, 2);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_int_eq(last_done()->code, 2);
    ck_assert_ptr_nonnull(strstr(last_done()->detail, "illegal data address"));
    fake_drv_teardown();
}
END_TEST

// After the core gave up on a job, its late answer is only data.
START_TEST(test_late_reply_after_abort)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 40, 40));
    one_sent();
    drv->abort(fc.state);
    reply_read(LXP_READ_INPUT, 40, 40, 0, INV);
    ck_assert_int_eq(fc.n_done, 0);
    ck_assert_int_eq(fc.n_regs, 1);
    ck_assert_int_eq(fc.closes, 0); // the connection stays
    fake_drv_teardown();
}
END_TEST

// ---- writes ---------------------------------------------------------------------------------

START_TEST(test_write_single_confirmed_by_echo)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(write_job(66, 50));
    struct lxp_frame f = one_sent();
    ck_assert(f.function == LXP_WRITE_SINGLE && f.reg == 66 && f.values[0] == 50);
    ck_assert_mem_eq(f.inverter, INV, 10);
    reply_echo(65, 50); // another register
    ck_assert_int_eq(fc.n_done, 0);
    reply_echo(66, 50);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    ck_assert_uint_eq(fc.regs[fc.n_regs - 1].first, 50);
    fake_drv_teardown();
}
END_TEST

// The inverter kept another value: a refusal, and the value it kept is published.
START_TEST(test_write_echo_differs)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(write_job(105, 95));
    one_sent();
    reply_echo(105, 90);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_int_eq(last_done()->code, 3);
    ck_assert_ptr_nonnull(strstr(last_done()->detail, "kept 90"));
    ck_assert_uint_eq(fc.regs[fc.n_regs - 1].start, 105);
    ck_assert_uint_eq(fc.regs[fc.n_regs - 1].first, 90);
    // An exception refuses it too.
    job(write_job(105, 99));
    one_sent();
    reply_exception(LXP_WRITE_SINGLE, 105, 3);
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_int_eq(last_done()->code, 3);
    fake_drv_teardown();
}
END_TEST

// AC charge on and off: a fresh read of holding 21, then only bit 7 changes.
static const struct {
    uint16_t before;
    int bit;
    bool on;
    int after; // -1: nothing to write
} bit_cases[] = {
    {0xF354, 7, true, 0xF3D4},   // lxp-packet's real value; AC charge on
    {0xF3D4, 7, false, 0xF354},  // and off again
    {0xF354, 10, true, 0xF754},  // forced discharge
    {0x0800, 11, false, 0x0000}, // charge priority off
    {0xF3D4, 7, true, -1},       // already on: nothing is written
    {0x0000, 11, false, -1},
};

START_TEST(test_bit_write_read_modify_write)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(bit_job(21, bit_cases[_i].bit, bit_cases[_i].on));
    struct lxp_frame f = one_sent();
    ck_assert(f.function == LXP_READ_HOLD && f.reg == 21 && f.count == 1);
    reply_hold(21, bit_cases[_i].before);
    if (bit_cases[_i].after < 0) {
        nothing_sent();
        ck_assert_int_eq(last_done()->status, DRV_SKIPPED);
        fake_drv_teardown();
        return;
    }
    ck_assert_int_eq(fc.n_done, 0);
    f = one_sent();
    ck_assert(f.function == LXP_WRITE_SINGLE && f.reg == 21);
    ck_assert_uint_eq(f.values[0], (unsigned)bit_cases[_i].after);
    ck_assert_uint_eq(f.values[0] ^ bit_cases[_i].before, 1u << bit_cases[_i].bit);
    reply_echo(21, (uint16_t)bit_cases[_i].after);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    fake_drv_teardown();
}
END_TEST

// The fresh value may come in another client's larger block.
START_TEST(test_bit_write_uses_a_covering_block)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(bit_job(21, 7, true));
    one_sent();
    uint16_t v[40] = {0};
    v[21] = 0x0200;
    uint8_t b[LXP_FRAME_MAX];
    int n = lxp_encode_read_reply(b, sizeof(b), 2, DL, INV, LXP_READ_HOLD, 0, v, 40, true);
    fake_drv_receive(b, (size_t)n);
    struct lxp_frame f = one_sent();
    ck_assert_uint_eq(f.values[0], 0x0280);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_register_11_never_written)
{
    setup();
    fake_drv_start();
    learn_serials();
    job(write_job(11, 0x80));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    ck_assert_ptr_nonnull(strstr(last_done()->detail, "never written"));
    job(bit_job(11, 7, true));
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    struct drv_job j = write_job(10, 1);
    j.count = 2; // 10-11 in one write
    job(j);
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_EXCEPTION);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_write_multi)
{
    setup();
    fake_drv_start();
    learn_serials();
    struct drv_job j = write_job(100, 560);
    j.count = 2;
    j.regs[1] = 400;
    job(j);
    struct lxp_frame f = one_sent();
    ck_assert(f.function == LXP_WRITE_MULTI && f.reg == 100 && f.count == 2);
    ck_assert(f.values[0] == 560 && f.values[1] == 400);
    ck_assert_uint_eq(f.protocol, 2);
    reply_multi(100, 2);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    fake_drv_teardown();
}
END_TEST

// ---- heartbeats ---------------------------------------------------------------------------

START_TEST(test_heartbeat_echo_always_and_never)
{
    setup();
    fake_drv_set_option("heartbeat_echo", "always");
    fake_drv_start();
    heartbeat(5);
    struct lxp_frame f = one_sent();
    ck_assert_uint_eq(f.tcp_function, LXP_TCP_HEARTBEAT);
    ck_assert_uint_eq(f.tail, 5); // sent back as it came
    ck_assert_uint_eq(f.protocol, 5);
    fake_drv_teardown();

    setup();
    fake_drv_set_option("heartbeat_echo", "never");
    fake_drv_start();
    heartbeat(0);
    fake_drv_advance(3600000);
    heartbeat(0);
    nothing_sent();
    fake_drv_teardown();
}
END_TEST

START_TEST(test_heartbeat_echo_auto)
{
    setup();
    fake_drv_set_option("broadcast_interval", "60000");
    fake_drv_set_option("silence_timeout", "3600000");
    fake_drv_start();
    learn_serials();
    heartbeat(0);
    nothing_sent(); // the cloud answers: broadcasts are expected
    fake_drv_advance(100000);
    reply_read(LXP_READ_INPUT, 0, 40, 0, INV); // a broadcast: the cloud is there
    fake_drv_advance(100000);
    heartbeat(0);
    nothing_sent();
    fake_drv_advance(25000); // two intervals since that broadcast
    heartbeat(0);
    ck_assert_uint_eq(one_sent().tcp_function, LXP_TCP_HEARTBEAT);
    // From now on every heartbeat is answered.
    reply_read(LXP_READ_INPUT, 0, 40, 0, INV);
    heartbeat(0);
    ck_assert_uint_eq(one_sent().tcp_function, LXP_TCP_HEARTBEAT);
    fake_drv_teardown();
}
END_TEST

// ---- connection ---------------------------------------------------------------------------

START_TEST(test_silence_reconnects)
{
    setup();
    fake_drv_set_option("silence_timeout", "60000");
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 0, 40));
    one_sent();
    fake_drv_advance(30000);
    heartbeat(0); // bytes: alive
    fake_drv_advance(59000);
    ck_assert_int_eq(fc.closes, 0);
    fake_drv_advance(2000);
    ck_assert_int_eq(fc.closes, 1);
    ck_assert_int_eq(fc.opens, 2); // at once
    ck_assert_int_eq(last_done()->status, DRV_ERR_IO);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_closed_and_backoff)
{
    setup();
    fake_drv_set_option("reconnect_delay", "1000");
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 0, 40));
    one_sent();
    fc.tcp_open = false;
    drv->tcp_closed(fc.state, "reset by peer");
    ck_assert_int_eq(last_done()->status, DRV_ERR_IO);
    fake_drv_advance(999);
    ck_assert_int_eq(fc.opens, 1);
    fake_drv_advance(1);
    ck_assert_int_eq(fc.opens, 2);
    // It does not connect: the waits double.
    drv->tcp_closed(fc.state, "refused");
    fake_drv_advance(1999);
    ck_assert_int_eq(fc.opens, 2);
    fake_drv_advance(1);
    ck_assert_int_eq(fc.opens, 3);
    drv->tcp_closed(fc.state, "refused");
    fake_drv_advance(3999);
    ck_assert_int_eq(fc.opens, 3);
    // A job does not wait for the timer.
    job(read_job(T_INPUT, 0, 40));
    ck_assert_int_eq(fc.opens, 4);
    fc.tcp_open = true;
    drv->tcp_connected(fc.state);
    struct lxp_frame f = one_sent(); // the serials survive reconnecting
    ck_assert_mem_eq(f.inverter, INV, 10);
    fake_drv_teardown();
}
END_TEST

// ---- clock --------------------------------------------------------------------------------

static void clock_regs_at(int64_t wall_ms, uint16_t *r)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    r[0] = (uint16_t)((tm.tm_year - 100) | (tm.tm_mon + 1) << 8);
    r[1] = (uint16_t)(tm.tm_mday | tm.tm_hour << 8);
    r[2] = (uint16_t)(tm.tm_min | tm.tm_sec << 8);
}

static void reply_clock(int64_t offset_ms)
{
    uint16_t r[3];
    clock_regs_at(WALL0 + fc.now + offset_ms, r);
    uint8_t b[64];
    int n = lxp_encode_read_reply(b, sizeof(b), 2, DL, INV, LXP_READ_HOLD, 12, r, 3, true);
    fake_drv_receive(b, (size_t)n);
}

static void reply_clock_written(void)
{
    reply_multi(12, 3);
}

START_TEST(test_clock_checked_and_set)
{
    setup();
    fake_drv_set_option("clock_sync", "true");
    fake_drv_set_option("silence_timeout", "3600000000");
    fake_drv_start();
    learn_serials(); // the inverter's serial comes with the first reply: no check before it
    job(read_job(T_INPUT, 0, 40));
    struct lxp_frame f = one_sent();
    ck_assert(f.function == LXP_READ_HOLD && f.reg == 12 && f.count == 3);
    reply_clock(-600000); // ten minutes slow
    f = one_sent();
    ck_assert(f.function == LXP_WRITE_MULTI && f.reg == 12 && f.count == 3);
    uint16_t want[3];
    clock_regs_at(WALL0 + fc.now, want);
    ck_assert_mem_eq(f.values, want, sizeof(want));
    ck_assert_int_eq(fc.n_done, 0);
    reply_clock_written();
    f = one_sent(); // then the job itself
    ck_assert(f.function == LXP_READ_INPUT && f.reg == 0);
    reply_read(LXP_READ_INPUT, 0, 40, 0, INV);
    ck_assert_int_eq(last_done()->status, DRV_OK);
    // Not again the same day.
    fake_drv_advance(3600000);
    job(read_job(T_INPUT, 0, 40));
    ck_assert_uint_eq(one_sent().function, LXP_READ_INPUT);
    reply_read(LXP_READ_INPUT, 0, 40, 0, INV);
    // The next day: checked, and within the allowed drift left alone.
    fake_drv_advance(86400000);
    job(read_job(T_INPUT, 0, 40));
    ck_assert_uint_eq(one_sent().function, LXP_READ_HOLD);
    reply_clock(30000);
    ck_assert_uint_eq(one_sent().function, LXP_READ_INPUT);
    fake_drv_teardown();
}
END_TEST

// An inverter that refuses the clock read still gets polled.
START_TEST(test_clock_refused)
{
    setup();
    fake_drv_set_option("clock_sync", "true");
    fake_drv_start();
    learn_serials();
    job(read_job(T_INPUT, 0, 40));
    one_sent();
    reply_exception(LXP_READ_HOLD, 12, 2);
    struct lxp_frame f = one_sent();
    ck_assert_uint_eq(f.function, LXP_READ_INPUT);
    ck_assert_int_eq(fc.n_done, 0);
    fake_drv_teardown();
}
END_TEST

START_TEST(test_sync_clock_action)
{
    setup();
    fake_drv_start();
    learn_serials();
    job((struct drv_job){.type = DRV_JOB_ACTION, .action = "sync_clock", .bit = -1});
    struct lxp_frame f = one_sent();
    ck_assert(f.function == LXP_WRITE_MULTI && f.reg == 12 && f.count == 3);
    reply_clock_written();
    ck_assert_int_eq(last_done()->status, DRV_OK);
    job((struct drv_job){.type = DRV_JOB_ACTION, .action = "reboot", .bit = -1});
    nothing_sent();
    ck_assert_int_eq(last_done()->status, DRV_ERR_PROTOCOL);
    fake_drv_teardown();
}
END_TEST

// ---- configuration ------------------------------------------------------------------------

START_TEST(test_check_serial_options)
{
    setup();
    char err[160] = "";
    ck_assert_int_eq(drv->check(fake_drv_device(), err, sizeof(err)), 0);
    fake_drv_set_option("inverter_serial", "12345");
    ck_assert_int_eq(drv->check(fake_drv_device(), err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "inverter_serial"));
    fake_drv_teardown();

    setup();
    struct params other;
    params_init(&other, fc.arena, drv->settings, drv->n_settings);
    other.v[0].set = true;
    other.v[0].s = "192.0.2.7";
    struct drv_device b = {"lux2", &other, &fc.core, &fc.options};
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
    setenv("TZ", "UTC", 1);
    tzset();
    Suite *s = suite_create("luxpower_driver");
    TCase *tc = tcase_create("driver");
    tcase_add_test(tc, test_poll_before_the_dongle_is_known_is_skipped);
    tcase_add_test(tc, test_serials_learned_from_traffic);
    tcase_add_test(tc, test_configured_serials);
    tcase_add_test(tc, test_learned_serials_kept_for_the_next_start);
    tcase_add_test(tc, test_kept_serials_replaced_by_the_device);
    tcase_add_test(tc, test_options_win_over_kept_serials);
    tcase_add_loop_test(tc, test_bad_kept_serial_ignored, 0, (int)N(bad_kept));
    tcase_add_test(tc, test_binary_serial_kept_exactly);
    tcase_add_test(tc, test_split_garbage_and_bad_crc);
    tcase_add_test(tc, test_larger_blocks_and_broadcasts);
    tcase_add_test(tc, test_exception_refuses_the_read);
    tcase_add_test(tc, test_late_reply_after_abort);
    tcase_add_test(tc, test_write_single_confirmed_by_echo);
    tcase_add_test(tc, test_write_echo_differs);
    tcase_add_loop_test(tc, test_bit_write_read_modify_write, 0, (int)N(bit_cases));
    tcase_add_test(tc, test_bit_write_uses_a_covering_block);
    tcase_add_test(tc, test_register_11_never_written);
    tcase_add_test(tc, test_write_multi);
    tcase_add_test(tc, test_heartbeat_echo_always_and_never);
    tcase_add_test(tc, test_heartbeat_echo_auto);
    tcase_add_test(tc, test_silence_reconnects);
    tcase_add_test(tc, test_closed_and_backoff);
    tcase_add_test(tc, test_clock_checked_and_set);
    tcase_add_test(tc, test_clock_refused);
    tcase_add_test(tc, test_sync_clock_action);
    tcase_add_test(tc, test_check_serial_options);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
