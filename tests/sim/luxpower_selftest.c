// SPDX-License-Identifier: MIT
// Self-test of e2m-luxpower-sim: starts it, speaks LXP to it as a client and checks it.
//
// usage: luxpower_selftest [--wrapper "valgrind ..."] <simulator> <scenario>...
// Each scenario starts its own simulator, ends it with SIGTERM and requires exit status 0. The
// client uses the simulator's own wire module (luxpower_sim_model.c). Exit status: 0 pass,
// 1 fail, 2 usage.
#include "luxpower_sim.h"
#include "selftest_child.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const uint8_t DONGLE[10] = "BA10000001";
static const uint8_t INVERTER[10] = "4410000001";
static const uint8_t ZERO[10];

// ---- the simulator process ----------------------------------------------------------------

// Starts the simulator with quiet defaults (no heartbeat or broadcast for 100 s, values frozen)
// followed by `extra`, and returns its port.
static int sim_start(struct child *c, const char *sim, const char *const *extra)
{
    static const char *const base[] = {
        "--port", "0", "--heartbeat-ms", "100000", "--broadcast-ms", "100000", "--static",
        "--tz",   "0", "--seed",         "3"};
    return child_start_port(c, sim, base, sizeof(base) / sizeof(base[0]), extra);
}

static void cmd_ok(struct child *c, const char *cmd)
{
    const char *rest = child_cmd(c, "%s", cmd);
    CHECK(rest[0] == '\0', "'%s' answered 'ok %s'", cmd, rest);
}

static unsigned get_reg(struct child *c, const char *table, unsigned reg)
{
    const char *rest = child_cmd(c, "get %s %u", table, reg);
    return (unsigned)strtoul(rest, NULL, 10);
}

static json_t *stats(struct child *c)
{
    const char *line = child_cmd(c, "stats");
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    CHECK(json_is_object(j), "stats is not JSON: %s", line);
    return j;
}

static long stat_of(struct child *c, const char *key)
{
    json_t *j = stats(c);
    json_t *v = json_object_get(j, key);
    CHECK(json_is_integer(v), "stats: %s is not an integer", key);
    long r = (long)json_integer_value(v);
    json_decref(j);
    return r;
}

// ---- a client -----------------------------------------------------------------------------

struct frame_out {
    struct ls_frame *f;
    uint8_t *out;
};

// A whole frame is copied out before the connection's buffer moves on, and parsed again there.
static long parse_frame(void *arg, const uint8_t *buf, size_t len)
{
    struct frame_out *fo = arg;
    long r = ls_parse(buf, len, fo->f);
    if (r > 0) {
        memcpy(fo->out, buf, (size_t)r);
        ls_parse(fo->out, (size_t)r, fo->f);
    }
    return r;
}

// The next frame within `ms` (scaled): copied into `out` (LS_FRAME_MAX bytes), parsed into `f`
// (whose pointers then point into `out`). False on timeout or when the simulator closed.
static bool next_frame(struct selftest_conn *k, int ms, struct ls_frame *f, uint8_t *out)
{
    struct frame_out fo = {f, out};
    return selftest_conn_next(k, ms, parse_frame, &fo);
}

// Waits for a translated-data frame with function `fn` (exceptions: fn | 0x80) for `reg`,
// skipping heartbeats and other frames.
static void expect_reply(struct selftest_conn *k, uint8_t fn, uint16_t reg, struct ls_frame *f,
                         uint8_t *out)
{
    int64_t deadline = now_ms() + 2000 * selftest.slow;
    while (now_ms() < deadline) {
        if (!next_frame(k, 200, f, out))
            continue;
        if (f->tcp_fn == 0xC2 && f->fn == fn && f->reg == reg) {
            CHECK(f->crc_ok, "reply fn 0x%02x reg %u: bad CRC", fn, reg);
            return;
        }
    }
    selftest_fail("no reply fn 0x%02x for register %u", fn, reg);
}

// No translated-data frame at all for `ms`.
static void expect_silence(struct selftest_conn *k, int ms)
{
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        if (next_frame(k, (int)(deadline - now_ms()) / (selftest.slow ? selftest.slow : 1) + 1, &f,
                       out))
            CHECK(f.tcp_fn != 0xC2, "an answer came: fn 0x%02x reg %u", f.fn, f.reg);
    }
}

static uint16_t value_at(const struct ls_frame *f, unsigned i)
{
    const uint8_t *v = f->body + (f->body_len % 2 ? 1 : 0) + 2 * i;
    return (uint16_t)(v[0] | v[1] << 8);
}

static void read_req(struct selftest_conn *k, const uint8_t *dongle, const uint8_t *inv, uint8_t fn,
                     uint16_t reg, uint16_t count)
{
    uint8_t out[LS_FRAME_MAX];
    selftest_conn_send(k, out, ls_build_read(out, dongle, inv, fn, reg, count));
}

static void write_req(struct selftest_conn *k, const uint8_t *inv, uint16_t reg, uint16_t v)
{
    uint8_t out[LS_FRAME_MAX];
    selftest_conn_send(k, out, ls_build_write(out, DONGLE, inv, reg, v));
}

// ---- scenarios ----------------------------------------------------------------------------

static void test_reads(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];

    // Input 0-39, protocol 2: the length byte, then 40 values.
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 40);
    expect_reply(&k, 0x04, 0, &f, out);
    CHECK(f.protocol == 2 && f.address == 1, "protocol %u address %u", f.protocol, f.address);
    CHECK(f.body_len == 81 && f.body[0] == 80, "body %zu bytes, length byte %u", f.body_len,
          f.body[0]);
    CHECK(memcmp(f.dongle, DONGLE, 10) == 0 && memcmp(f.inverter, INVERTER, 10) == 0, "serials");
    unsigned soc = get_reg(&c, "input", 5) & 0xff;
    CHECK((value_at(&f, 5) & 0xff) == soc && soc > 0 && soc <= 100, "SOC %u", soc);
    CHECK((value_at(&f, 5) >> 8) == 97, "SOH %u", value_at(&f, 5) >> 8);
    CHECK(value_at(&f, 4) == get_reg(&c, "input", 4), "battery voltage");

    // The serial in 115-119, low byte first; a cold cell at 104.
    read_req(&k, DONGLE, INVERTER, 0x04, 80, 40);
    expect_reply(&k, 0x04, 80, &f, out);
    char sn[11];
    for (int i = 0; i < 5; i++) {
        sn[2 * i] = (char)(value_at(&f, 35 + i) & 0xff);
        sn[2 * i + 1] = (char)(value_at(&f, 35 + i) >> 8);
    }
    sn[10] = '\0';
    CHECK(strcmp(sn, "4410000001") == 0, "serial '%s'", sn);
    CHECK(value_at(&f, 24) == 0xFFE7, "min cell temperature 0x%04x", value_at(&f, 24));

    // Holding 21, and the clock (UTC with --tz 0) within a few seconds of now.
    read_req(&k, DONGLE, INVERTER, 0x03, 21, 1);
    expect_reply(&k, 0x03, 21, &f, out);
    CHECK(value_at(&f, 0) == 0xF354, "hold 21 = 0x%04x", value_at(&f, 0));
    read_req(&k, DONGLE, INVERTER, 0x03, 12, 3);
    expect_reply(&k, 0x03, 12, &f, out);
    struct tm tm = {.tm_year = (value_at(&f, 0) & 0xff) + 100,
                    .tm_mon = (value_at(&f, 0) >> 8) - 1,
                    .tm_mday = value_at(&f, 1) & 0xff,
                    .tm_hour = value_at(&f, 1) >> 8,
                    .tm_min = value_at(&f, 2) & 0xff,
                    .tm_sec = value_at(&f, 2) >> 8};
    long drift = (long)(timegm(&tm) - time(NULL));
    CHECK(drift > -5 && drift < 5, "clock off by %ld s", drift);

    // Ten zero bytes for the inverter: answered (EG4 firmware does).
    read_req(&k, DONGLE, ZERO, 0x04, 40, 40);
    expect_reply(&k, 0x04, 40, &f, out);
    CHECK(memcmp(f.inverter, INVERTER, 10) == 0, "the reply names the inverter");
    CHECK(stat_of(&c, "zero_serial_reads") == 1, "zero_serial_reads");

    // Another dongle's or inverter's serial, a wrong CRC: no answer.
    read_req(&k, (const uint8_t *)"XX00000000", INVERTER, 0x04, 0, 40);
    read_req(&k, DONGLE, (const uint8_t *)"YY00000000", 0x04, 0, 40);
    uint8_t bad[LS_FRAME_MAX];
    size_t n = ls_build_read(bad, DONGLE, INVERTER, 0x04, 0, 40);
    bad[n - 1] ^= 1;
    selftest_conn_send(&k, bad, n);
    expect_silence(&k, 300);
    CHECK(stat_of(&c, "wrong_dongle") == 1 && stat_of(&c, "wrong_inverter") == 1 &&
              stat_of(&c, "bad_crc") == 1,
          "ignored requests not counted");

    // Exceptions: a bad count (3), beyond the last register (2), an unknown function (1).
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 0);
    expect_reply(&k, 0x84, 0, &f, out);
    CHECK(f.body_len == 1 && f.body[0] == 3, "count 0: exception %u", f.body[0]);
    read_req(&k, DONGLE, INVERTER, 0x03, 0, 128);
    expect_reply(&k, 0x83, 0, &f, out);
    CHECK(f.body[0] == 3, "count 128: exception %u", f.body[0]);
    read_req(&k, DONGLE, INVERTER, 0x04, 150, 40);
    expect_reply(&k, 0x84, 150, &f, out);
    CHECK(f.body[0] == 2, "input 150-189: exception %u", f.body[0]);
    read_req(&k, DONGLE, INVERTER, 0x04, 120, 40); // the last served block
    expect_reply(&k, 0x04, 120, &f, out);
    selftest_conn_send(&k, out, ls_build_translated(out, 1, DONGLE, 0, 0x05, INVERTER, 7, out, 0));
    expect_reply(&k, 0x85, 7, &f, out);
    CHECK(f.body[0] == 1, "function 5: exception %u", f.body[0]);

    // A request in two pieces; a value set by the control channel.
    cmd_ok(&c, "set input 7 1234");
    n = ls_build_read(out, DONGLE, INVERTER, 0x04, 0, 10);
    selftest_conn_send(&k, out, 11);
    sleep_ms(50);
    selftest_conn_send(&k, out + 11, n - 11);
    expect_reply(&k, 0x04, 0, &f, out);
    CHECK(value_at(&f, 7) == 1234, "input 7 = %u", value_at(&f, 7));

    // Protocol 1: no length byte; protocol 5 has it again.
    cmd_ok(&c, "protocol 1");
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 10);
    expect_reply(&k, 0x04, 0, &f, out);
    CHECK(f.protocol == 1 && f.body_len == 20, "protocol 1: body %zu", f.body_len);
    cmd_ok(&c, "protocol 5");
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 127);
    expect_reply(&k, 0x04, 0, &f, out);
    CHECK(f.protocol == 5 && f.body_len == 255 && f.body[0] == 254, "protocol 5: body %zu",
          f.body_len);

    // The dongle's parameter 0: the broadcast interval in seconds.
    uint8_t p[32];
    memcpy(p, "\xa1\x1a\x02\x00\x0e\x00\x01\xc3", 8);
    memcpy(p + 8, DONGLE, 10);
    p[18] = 0;
    p[19] = 0;
    selftest_conn_send(&k, p, 20);
    int64_t deadline = now_ms() + 2000;
    bool seen = false;
    while (!seen && now_ms() < deadline)
        seen = next_frame(&k, 200, &f, out) && f.tcp_fn == 0xC3;
    CHECK(seen && f.rest_len == 6 && (f.rest[4] | f.rest[5] << 8) == 100, "param 0");
    selftest_conn_close(&k);
    child_stop(&c);
}

static void test_writes(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];
    char line[SELFTEST_LINE_MAX];

    write_req(&k, INVERTER, 66, 80);
    expect_reply(&k, 0x06, 66, &f, out);
    CHECK(value_at(&f, 0) == 80 && f.body_len == 2, "echo %u", value_at(&f, 0));
    child_expect(&c, "write holding 66 1 80", 2000, line);
    CHECK(get_reg(&c, "holding", 66) == 80, "holding 66 not stored");

    // Out of range: exception 3 as function 0x86, nothing changes.
    write_req(&k, INVERTER, 64, 150);
    expect_reply(&k, 0x86, 64, &f, out);
    CHECK(f.body[0] == 3, "exception %u", f.body[0]);
    CHECK(get_reg(&c, "holding", 64) == 100, "holding 64 changed");
    write_req(&k, INVERTER, 105, 5);
    expect_reply(&k, 0x86, 105, &f, out);
    write_req(&k, INVERTER, 68, 0x0018); // 24:00
    expect_reply(&k, 0x86, 68, &f, out);
    write_req(&k, INVERTER, 68, 0x1E15); // 21:30, hour in the low byte
    expect_reply(&k, 0x06, 68, &f, out);
    CHECK(get_reg(&c, "holding", 68) == 0x1E15, "slot not stored");

    // A write needs the inverter's serial.
    write_req(&k, ZERO, 66, 10);
    expect_silence(&k, 300);
    CHECK(stat_of(&c, "ignored_writes") == 1, "ignored_writes");
    CHECK(get_reg(&c, "holding", 66) == 80, "a write without serial changed holding 66");

    // The clock with one write of three registers: 2030-01-02 03:04:05.
    const uint16_t clock[3] = {30 | 1 << 8, 2 | 3 << 8, 4 | 5 << 8};
    selftest_conn_send(&k, out, ls_build_write_multi(out, DONGLE, INVERTER, 12, clock, 3));
    expect_reply(&k, 0x10, 12, &f, out);
    CHECK(f.body_len == 2 && (f.body[0] | f.body[1] << 8) == 3, "write multi reply");
    child_expect(&c, "write holding 12 3 ", 2000, line);
    unsigned y = get_reg(&c, "holding", 12), d = get_reg(&c, "holding", 13);
    CHECK(y == (30 | 1 << 8) && d == (2 | 3 << 8), "clock now %04x %04x", y, d);
    CHECK(stat_of(&c, "multi_writes") == 1, "multi_writes");

    // AC charge on: bit 7 of holding 21.
    write_req(&k, INVERTER, 21, 0xF3D4);
    expect_reply(&k, 0x06, 21, &f, out);
    CHECK(stat_of(&c, "hold21") == 0xF3D4, "hold21");
    CHECK(stat_of(&c, "reg11_writes") == 0, "reg11_writes");
    write_req(&k, INVERTER, 11, 0x80);
    expect_reply(&k, 0x06, 11, &f, out);
    CHECK(stat_of(&c, "reg11_writes") == 1, "a write of register 11 is counted");
    selftest_conn_close(&k);
    child_stop(&c);
}

// Everything the dongle sends goes to every client.
static void test_fanout(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn a, b;
    selftest_conn_open(&a, port);
    selftest_conn_open(&b, port);
    sleep_ms(100);
    CHECK(strcmp(child_cmd(&c, "clients"), "2") == 0, "two clients expected");
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];
    read_req(&a, DONGLE, INVERTER, 0x03, 60, 40);
    expect_reply(&a, 0x03, 60, &f, out);
    expect_reply(&b, 0x03, 60, &f, out);
    write_req(&b, INVERTER, 67, 85);
    expect_reply(&a, 0x06, 67, &f, out);
    expect_reply(&b, 0x06, 67, &f, out);
    cmd_ok(&c, "heartbeat");
    CHECK(next_frame(&a, 1000, &f, out) && f.tcp_fn == 0xC1, "client a: no heartbeat");
    CHECK(next_frame(&b, 1000, &f, out) && f.tcp_fn == 0xC1, "client b: no heartbeat");
    selftest_conn_close(&a);
    selftest_conn_close(&b);
    child_stop(&c);
}

// Counts input blocks and heartbeats for `ms`, echoing heartbeats when asked.
static void listen_for(struct selftest_conn *k, int ms, bool echo, int *blocks, int *heartbeats,
                       uint16_t *last_count, uint16_t *protocol)
{
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];
    int64_t deadline = now_ms() + ms;
    *blocks = *heartbeats = 0;
    while (now_ms() < deadline) {
        if (!next_frame(k, (int)(deadline - now_ms()) / selftest.slow + 1, &f, out))
            continue;
        if (f.tcp_fn == 0xC1) {
            (*heartbeats)++;
            *protocol = f.protocol;
            if (echo)
                selftest_conn_send(k, out, f.len);
        } else if (f.tcp_fn == 0xC2 && f.fn == 0x04) {
            (*blocks)++;
            *last_count = (uint16_t)(f.body_len / 2);
            *protocol = f.protocol;
        }
    }
}

// Without the cloud, broadcasts come only while a client answers the heartbeats.
static void test_heartbeats(const char *sim)
{
    static const char *const extra[] = {
        "--cloud", "off", "--heartbeat-ms", "150", "--broadcast-ms", "250", "--hb-tail", "5", NULL};
    struct child c;
    // The defaults come first; later options win.
    int port = sim_start(&c, sim, extra);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    int blocks, hbs;
    uint16_t count = 0, proto = 0;
    listen_for(&k, 800, false, &blocks, &hbs, &count, &proto);
    CHECK(hbs >= 3, "%d heartbeats in 800 ms", hbs);
    CHECK(blocks == 0, "%d input blocks without an echo", blocks);
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];
    // The trailing byte of this dongle's heartbeat.
    cmd_ok(&c, "heartbeat");
    do {
        CHECK(next_frame(&k, 1000, &f, out), "no heartbeat");
    } while (f.tcp_fn != 0xC1);
    CHECK(f.rest_len == 1 && f.rest[0] == 5, "heartbeat tail %u", f.rest_len ? f.rest[0] : 0);
    listen_for(&k, 1200, true, &blocks, &hbs, &count, &proto);
    CHECK(blocks >= 3 && count == 40, "%d blocks of %u with echoes", blocks, count);
    CHECK(stat_of(&c, "echoes") >= 3, "echoes not counted");
    // The combined frame on protocol 5.
    cmd_ok(&c, "combined on");
    cmd_ok(&c, "protocol 5");
    listen_for(&k, 900, true, &blocks, &hbs, &count, &proto);
    CHECK(blocks >= 1 && count == 127 && proto == 5, "%d combined frames of %u, protocol %u",
          blocks, count, proto);
    // With the cloud back, broadcasts go on without an echo.
    cmd_ok(&c, "cloud on");
    listen_for(&k, 800, false, &blocks, &hbs, &count, &proto);
    CHECK(blocks >= 1, "no broadcast with the cloud");
    CHECK(strcmp(child_cmd(&c, "broadcast force"), "sent") == 0, "broadcast force");
    selftest_conn_close(&k);
    child_stop(&c);
}

static void test_faults(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct ls_frame f;
    uint8_t out[LS_FRAME_MAX];

    cmd_ok(&c, "fault badcrc");
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 40);
    CHECK(next_frame(&k, 2000, &f, out) && f.tcp_fn == 0xC2 && !f.crc_ok, "badcrc");
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 40);
    expect_reply(&k, 0x04, 0, &f, out); // only one

    cmd_ok(&c, "fault garbage");
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 40);
    unsigned before = k.skipped;
    expect_reply(&k, 0x04, 0, &f, out);
    CHECK(k.skipped > before, "no garbage before the frame");

    cmd_ok(&c, "fault split");
    int64_t t0 = now_ms();
    read_req(&k, DONGLE, INVERTER, 0x04, 40, 40);
    expect_reply(&k, 0x04, 40, &f, out);
    CHECK(now_ms() - t0 >= 70, "split reply came in %lld ms", (long long)(now_ms() - t0));

    cmd_ok(&c, "fault stall");
    read_req(&k, DONGLE, INVERTER, 0x04, 80, 40);
    expect_silence(&k, 300);
    read_req(&k, DONGLE, INVERTER, 0x04, 80, 40);
    expect_reply(&k, 0x04, 80, &f, out);

    cmd_ok(&c, "fault drop");
    CHECK(!next_frame(&k, 1000, &f, out), "the connection stayed open");
    CHECK(strcmp(child_cmd(&c, "clients"), "0") == 0, "clients after drop");
    selftest_conn_close(&k);
    selftest_conn_open(&k, port); // and back
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 40);
    expect_reply(&k, 0x04, 0, &f, out);
    // Garbage from a client is counted and skipped.
    static const uint8_t junk[] = {0x01, 0x02, 0xa1, 0x1a, 0x02, 0x00, 0x01, 0x00};
    selftest_conn_send(&k, junk, sizeof(junk));
    read_req(&k, DONGLE, INVERTER, 0x04, 0, 40);
    expect_reply(&k, 0x04, 0, &f, out);
    CHECK(stat_of(&c, "bad_frames") >= 2, "client garbage not counted");
    selftest_conn_close(&k);
    child_stop(&c);
}

// ---- main ---------------------------------------------------------------------------------

static const struct selftest_scenario scenarios[] = {
    {"reads", test_reads},           {"writes", test_writes}, {"fanout", test_fanout},
    {"heartbeats", test_heartbeats}, {"faults", test_faults},
};

int main(int argc, char **argv)
{
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--wrapper") == 0) {
        selftest.wrapper = argv[a + 1];
        selftest.slow = 5;
        a += 2;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: %s [--wrapper CMD] <e2m-luxpower-sim> <scenario>...\n", argv[0]);
        return 2;
    }
    // The CRC check value, so the client's own frames are known good.
    if (ls_crc16((const uint8_t *)"123456789", 9) != 0x4B37) {
        fprintf(stderr, "FAIL: CRC-16/MODBUS check value\n");
        return 1;
    }
    return selftest_run(argv[a], &argv[a + 1], argc - a - 1, scenarios,
                        sizeof(scenarios) / sizeof(scenarios[0]));
}
