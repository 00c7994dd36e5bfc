// SPDX-License-Identifier: MIT
// Self-test of e2m-givenergy-sim: starts it, speaks the dongle's envelope to it as a client and
// checks it.
//
// usage: givenergy_selftest [--wrapper "valgrind ..."] <simulator> <scenario>...
// Each scenario starts its own simulator, ends it with SIGTERM and requires exit status 0. The
// client uses the simulator's own wire module (givenergy_sim_model.c). Exit status: 0 pass,
// 1 fail, 2 usage.
#include "givenergy_sim.h"
#include "selftest_child.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Requests go out at least this far apart (the simulator drops closer ones).
#define GAP_MS 200

// ---- the simulator process ----------------------------------------------------------------

// Starts the simulator with quiet defaults (no heartbeat for 100 s, values frozen) followed
// by `extra`, and returns its port.
static int sim_start(struct child *c, const char *sim, const char *const *extra)
{
    static const char *const base[] = {"--port", "0", "--heartbeat-ms", "100000", "--static",
                                       "--seed", "3"};
    return child_start_port(c, sim, base, sizeof(base) / sizeof(base[0]), extra);
}

static unsigned get_reg(struct child *c, const char *table, unsigned reg)
{
    const char *rest = child_cmd(c, "get %s %u", table, reg);
    return (unsigned)strtoul(rest, NULL, 10);
}

static long stat_of(struct child *c, const char *key)
{
    const char *line = child_cmd(c, "stats");
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    CHECK(json_is_object(j), "stats is not JSON: %s", line);
    json_t *v = json_object_get(j, key);
    CHECK(json_is_integer(v), "stats: %s is not an integer", key);
    long r = (long)json_integer_value(v);
    json_decref(j);
    return r;
}

// ---- a client -----------------------------------------------------------------------------

static long parse_response(void *arg, const uint8_t *buf, size_t len)
{
    return gs_parse_response(buf, len, arg);
}

// The next frame within `ms` (scaled). False on timeout or when the simulator closed.
static bool next_frame(struct selftest_conn *k, int ms, struct gs_response *r)
{
    return selftest_conn_next(k, ms, parse_response, r);
}

// Waits for a transparent response from `address` with function `fn` (errors: fn | 0x80) for
// `reg`, skipping heartbeats and other frames. `crc_ok` is what its CRC must be.
static void expect_response(struct selftest_conn *k, uint8_t address, uint8_t fn, uint16_t reg,
                            bool crc_ok, struct gs_response *r)
{
    int64_t deadline = now_ms() + 2000 * selftest.slow;
    while (now_ms() < deadline) {
        if (!next_frame(k, 200, r))
            continue;
        uint8_t got = (uint8_t)(r->fn | (r->error ? 0x80 : 0));
        if (r->fid == 2 && r->address == address && got == fn && r->reg == reg) {
            CHECK(r->crc_ok == crc_ok, "response fn 0x%02x reg %u: CRC %s", fn, reg,
                  r->crc_ok ? "good" : "bad");
            return;
        }
    }
    selftest_fail("no response fn 0x%02x from 0x%02x for register %u", fn, address, reg);
}

// No transparent frame at all for `ms`.
static void expect_silence(struct selftest_conn *k, int ms)
{
    struct gs_response r;
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        if (next_frame(k, 50, &r))
            CHECK(r.fid != 2, "an answer came: fn 0x%02x reg %u", r.fn, r.reg);
    }
}

static void request(struct selftest_conn *k, uint8_t address, uint8_t fn, uint16_t w1, uint16_t w2)
{
    uint8_t out[GS_FRAME_MAX];
    sleep_ms(GAP_MS);
    selftest_conn_send(k, out, gs_build_request(out, address, fn, w1, w2));
}

// ---- scenarios ----------------------------------------------------------------------------

static void test_reads(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct gs_response r;

    // Identity: the Gen1 hybrid's device type code, serial and ARM firmware.
    request(&k, 0x11, 3, 0, 60);
    expect_response(&k, 0x11, 3, 0, true, &r);
    CHECK(r.n_values == 60 && r.count == 60, "HR(0,60): %u values", r.n_values);
    CHECK(r.values[0] == 0x2001, "DTC %04x", r.values[0]);
    CHECK(r.values[13] == ('S' << 8 | 'A') && r.values[21] == 449, "identity %04x %u", r.values[13],
          r.values[21]);
    // Measurements match the control channel.
    request(&k, 0x11, 4, 0, 60);
    expect_response(&k, 0x11, 4, 0, true, &r);
    CHECK(r.values[59] == get_reg(&c, "input", 59), "SOC %u", r.values[59]);
    CHECK(r.values[18] == get_reg(&c, "input", 18) && r.values[18] > 0, "PV1 %u", r.values[18]);
    // An unaligned base and a single register.
    request(&k, 0x11, 3, 116, 1);
    expect_response(&k, 0x11, 3, 116, true, &r);
    CHECK(r.n_values == 1 && r.values[0] == 100, "HR116 %u", r.values[0]);
    // The battery pack at 0x32: 16 cells and its serial; a missing pack at 0x33: zeros.
    request(&k, 0x32, 4, 60, 60);
    expect_response(&k, 0x32, 4, 60, true, &r);
    CHECK(r.values[37] == 16 && r.values[50] == ('B' << 8 | 'G'), "pack: %u cells", r.values[37]);
    CHECK(r.values[0] == get_reg(&c, "battery", 60), "cell 1 %u", r.values[0]);
    request(&k, 0x33, 4, 60, 60);
    expect_response(&k, 0x33, 4, 60, true, &r);
    CHECK(r.values[0] == 0 && r.values[16] == 0xF556, "missing pack %u %04x", r.values[0],
          r.values[16]);
    // More than 60 registers: an error response carrying base and count.
    request(&k, 0x11, 4, 0, 120);
    expect_response(&k, 0x11, 0x84, 0, true, &r);
    CHECK(r.count == 120, "error count %u", r.count);
    // Holding 300+ never answers on a Gen1 hybrid.
    request(&k, 0x11, 3, 300, 60);
    expect_silence(&k, 500);
    CHECK(stat_of(&c, "unanswered") == 1, "unanswered");
    selftest_conn_close(&k);
    child_stop(&c);

    // An AC-coupled inverter answers holding 300+ and says what it is.
    static const char *const ac[] = {"--family", "ac", NULL};
    port = sim_start(&c, sim, ac);
    selftest_conn_open(&k, port);
    request(&k, 0x11, 3, 300, 60);
    expect_response(&k, 0x11, 3, 300, true, &r);
    CHECK(r.values[13] == 100, "HR313 %u", r.values[13]);
    request(&k, 0x11, 3, 0, 60);
    expect_response(&k, 0x11, 3, 0, true, &r);
    CHECK(r.values[0] == 0x3001, "AC DTC %04x", r.values[0]);
    selftest_conn_close(&k);
    child_stop(&c);
}

static void test_writes(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct gs_response r;
    // A slot start as HHMM: echoed and stored.
    request(&k, 0x11, 6, 94, 1730);
    expect_response(&k, 0x11, 6, 94, true, &r);
    CHECK(r.values[0] == 1730, "echo %u", r.values[0]);
    CHECK(get_reg(&c, "holding", 94) == 1730, "HR94 not stored");
    // Out of range: an error response, nothing stored.
    request(&k, 0x11, 6, 95, 2460);
    expect_response(&k, 0x11, 0x86, 95, true, &r);
    CHECK(get_reg(&c, "holding", 95) == 430, "HR95 changed");
    request(&k, 0x11, 6, 116, 101);
    expect_response(&k, 0x11, 0x86, 116, true, &r);
    // A register that is not writable, and an AC-only one on a hybrid.
    request(&k, 0x11, 6, 0, 1);
    expect_response(&k, 0x11, 0x86, 0, true, &r);
    request(&k, 0x11, 6, 318, 1);
    expect_response(&k, 0x11, 0x86, 318, true, &r);
    CHECK(stat_of(&c, "writes_refused") == 4, "refusals");
    // The read-back shows the written value.
    request(&k, 0x11, 3, 94, 2);
    expect_response(&k, 0x11, 3, 94, true, &r);
    CHECK(r.values[0] == 1730 && r.values[1] == 430, "read-back %u %u", r.values[0], r.values[1]);
    selftest_conn_close(&k);
    child_stop(&c);
}

static void test_fanout(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn a, b;
    selftest_conn_open(&a, port);
    selftest_conn_open(&b, port);
    sleep_ms(100);
    CHECK(strcmp(child_cmd(&c, "clients"), "2") == 0, "two clients");
    struct gs_response r;
    // A's request; B sees the response too.
    request(&a, 0x11, 4, 0, 60);
    expect_response(&a, 0x11, 4, 0, true, &r);
    expect_response(&b, 0x11, 4, 0, true, &r);
    // B's write: A sees the echo.
    request(&b, 0x11, 6, 27, 0);
    expect_response(&b, 0x11, 6, 27, true, &r);
    expect_response(&a, 0x11, 6, 27, true, &r);
    selftest_conn_close(&a);
    selftest_conn_close(&b);
    child_stop(&c);
}

static void test_heartbeats(const char *sim)
{
    struct child c;
    static const char *const fast[] = {"--heartbeat-ms", "300", NULL};
    int port = sim_start(&c, sim, fast);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct gs_response r;
    bool got = false;
    int64_t deadline = now_ms() + 2000 * selftest.slow;
    while (!got && now_ms() < deadline)
        got = next_frame(&k, 200, &r) && r.fid == 1;
    CHECK(got && r.adapter_type == 1, "no heartbeat");
    uint8_t out[32];
    selftest_conn_send(&k, out,
                       gs_build_heartbeat(out, (const uint8_t *)"AB1234G567", r.adapter_type));
    sleep_ms(100);
    CHECK(stat_of(&c, "heartbeat_answers") == 1, "answer not counted");
    CHECK(stat_of(&c, "heartbeats") >= 1, "heartbeats not counted");
    selftest_conn_close(&k);
    child_stop(&c);
}

static void test_faults(const char *sim)
{
    struct child c;
    int port = sim_start(&c, sim, NULL);
    struct selftest_conn k;
    selftest_conn_open(&k, port);
    struct gs_response r;
    uint8_t out[GS_FRAME_MAX];
    // Two requests back to back: the second is dropped.
    size_t n = gs_build_request(out, 0x11, 4, 0, 60);
    sleep_ms(GAP_MS);
    selftest_conn_send(&k, out, n);
    selftest_conn_send(&k, out, gs_build_request(out, 0x11, 3, 0, 60));
    expect_response(&k, 0x11, 4, 0, true, &r);
    expect_silence(&k, 400);
    CHECK(stat_of(&c, "early_drops") == 1, "early drop not counted");
    // A request with a wrong CRC is dropped silently.
    n = gs_build_request(out, 0x11, 4, 0, 60);
    out[n - 1] ^= 1;
    sleep_ms(GAP_MS);
    selftest_conn_send(&k, out, n);
    expect_silence(&k, 400);
    CHECK(stat_of(&c, "crc_drops") == 1, "CRC drop not counted");
    // An all-zero glitch, then real values again.
    child_cmd(&c, "fault zero");
    request(&k, 0x11, 4, 0, 60);
    expect_response(&k, 0x11, 4, 0, true, &r);
    bool zero = true;
    for (unsigned i = 0; i < r.n_values; i++)
        zero &= r.values[i] == 0;
    CHECK(zero, "not all zero");
    request(&k, 0x11, 4, 0, 60);
    expect_response(&k, 0x11, 4, 0, true, &r);
    CHECK(r.values[59] > 0, "values did not come back");
    // A wrong CRC on a response.
    child_cmd(&c, "fault badcrc");
    request(&k, 0x11, 4, 0, 60);
    expect_response(&k, 0x11, 4, 0, false, &r);
    // Garbage before a frame, a frame in pieces, a stalled request.
    child_cmd(&c, "fault garbage");
    request(&k, 0x11, 3, 0, 60);
    expect_response(&k, 0x11, 3, 0, true, &r);
    CHECK(k.skipped > 0, "no garbage seen");
    child_cmd(&c, "fault split");
    request(&k, 0x11, 3, 60, 60);
    expect_response(&k, 0x11, 3, 60, true, &r);
    child_cmd(&c, "fault stall");
    request(&k, 0x11, 4, 180, 60);
    expect_silence(&k, 400);
    // Drop: the simulator closes every client.
    child_cmd(&c, "fault drop");
    CHECK(!next_frame(&k, 500, &r), "connection still open");
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
        fprintf(stderr, "usage: %s [--wrapper CMD] <e2m-givenergy-sim> <scenario>...\n", argv[0]);
        return 2;
    }
    // The CRC check value, so the client's own frames are known good.
    if (gs_crc16((const uint8_t *)"123456789", 9) != 0x4B37) {
        fprintf(stderr, "FAIL: CRC-16/MODBUS check value\n");
        return 1;
    }
    return selftest_run(argv[a], &argv[a + 1], argc - a - 1, scenarios,
                        sizeof(scenarios) / sizeof(scenarios[0]));
}
