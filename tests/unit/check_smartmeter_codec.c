// SPDX-License-Identifier: MIT
// Unit tests for the voelkerb PowerMeter / SmartMeter codec: framing, line and sample decoding,
// command encoding and the decode command's golden lines (tests/codec/smartmeter).
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/smartmeter/smartmeter_codec.h"

#define N(a)       (sizeof(a) / sizeof((a)[0]))
#define GOLDEN_DIR E2M_SOURCE_DIR "/tests/codec/smartmeter"

// ---- framing -------------------------------------------------------------------------------

struct step {
    enum sm_frame result;
    const char *line; // expected line text (LINE only)
    size_t line_len;
    bool prefixed;
    size_t consumed;
};

struct frame_case {
    const char *what;
    const char *buf;
    size_t len;
    struct step steps[4]; // the last one is always NEED_MORE with nothing left
    int nsteps;
};

#define BUF(s) s, sizeof(s) - 1
// clang-format off
#define LINE(s, p, used) {SM_FRAME_LINE, s, sizeof(s) - 1, p, used}
#define SKIP(used)       {SM_FRAME_SKIP, NULL, 0, false, used}
#define MORE             {SM_FRAME_NEED_MORE, NULL, 0, false, 0}
// clang-format on

static const struct frame_case frame_cases[] = {
    {"CRLF line",
     BUF("Info:{\"cmd\":\"info\"}\r\n"),
     {LINE("{\"cmd\":\"info\"}", true, 21), MORE},
     2},
    {"LF line", BUF("Info:{\"cmd\":\"info\"}\n"), {LINE("{\"cmd\":\"info\"}", true, 20), MORE}, 2},
    {"two lines",
     BUF("Info:[I]x\r\nInfo:{}\r\n"),
     {LINE("[I]x", true, 11), LINE("{}", true, 9), MORE},
     3},
    {"no prefix", BUF("{\"error\":false}\r\n"), {LINE("{\"error\":false}", false, 17), MORE}, 2},
    {"empty liveness line", BUF("Info:\r\n"), {LINE("", true, 7), MORE}, 2},
    {"bare CRLF", BUF("\r\n"), {LINE("", false, 2), MORE}, 2},
    {"bare LF", BUF("\n"), {LINE("", false, 1), MORE}, 2},
    {"prefix is case-sensitive", BUF("info:x\n"), {LINE("info:x", false, 7), MORE}, 2},
    {"prefix needs its colon", BUF("Info\n"), {LINE("Info", false, 5), MORE}, 2},
    {"prefix dropped once", BUF("Info:Info:x\n"), {LINE("Info:x", true, 12), MORE}, 2},
    {"incomplete line", BUF("Info:{\"cmd\""), {MORE}, 1},
    {"line then incomplete", BUF("Info:a\r\nInfo:b"), {LINE("a", true, 8), MORE}, 2},
    {"NUL inside a line", BUF("Info:a\0b\r\nInfo:c\r\n"), {SKIP(10), LINE("c", true, 8), MORE}, 3},
    {"NUL only", BUF("\0\n"), {SKIP(2), MORE}, 2},
    {"CR inside kept", BUF("a\rb\r\n"), {LINE("a\rb", false, 5), MORE}, 2},
    {"only one CR dropped", BUF("a\r\r\n"), {LINE("a\r", false, 4), MORE}, 2},
    {"empty buffer", "", 0, {MORE}, 1},
};

// Runs the framer over an exactly sized copy (so that ASan sees any read past the end).
START_TEST(test_frame_table)
{
    const struct frame_case *c = &frame_cases[_i];
    uint8_t *buf = malloc(c->len ? c->len : 1);
    memcpy(buf, c->buf, c->len);
    size_t off = 0;
    for (int s = 0; s < c->nsteps; s++) {
        const struct step *e = &c->steps[s];
        const char *line = (const char *)1;
        size_t line_len = 99, used = 99;
        bool prefixed = true;
        enum sm_frame r =
            sm_frame_next(buf + off, c->len - off, &line, &line_len, &prefixed, &used);
        ck_assert_msg(r == e->result, "%s: step %d: result %d, want %d", c->what, s, r, e->result);
        ck_assert_msg(used == e->consumed, "%s: step %d: consumed %zu, want %zu", c->what, s, used,
                      e->consumed);
        if (r == SM_FRAME_LINE) {
            ck_assert_uint_eq(line_len, e->line_len);
            ck_assert_msg(memcmp(line, e->line, line_len) == 0, "%s: step %d: wrong text", c->what,
                          s);
            ck_assert_int_eq(prefixed, e->prefixed);
        } else {
            ck_assert_ptr_null(line);
            ck_assert_uint_eq(line_len, 0);
            ck_assert(!prefixed);
        }
        off += used;
    }
    free(buf);
}
END_TEST

// Feeds `stream` through a receive buffer in chunks of `chunk` bytes, like a driver would, and
// collects the lines (joined by '|') and the number of skips.
static void frame_stream(const char *stream, size_t len, size_t chunk, char *lines, size_t cap,
                         int *skips)
{
    uint8_t rx[4 * SM_MAX_LINE];
    size_t have = 0, fed = 0;
    lines[0] = '\0';
    *skips = 0;
    while (fed < len || have > 0) {
        size_t n = len - fed < chunk ? len - fed : chunk;
        ck_assert_uint_le(have + n, sizeof(rx));
        memcpy(rx + have, stream + fed, n);
        have += n;
        fed += n;
        for (;;) {
            const char *line;
            size_t line_len, used;
            bool prefixed;
            enum sm_frame r = sm_frame_next(rx, have, &line, &line_len, &prefixed, &used);
            if (r == SM_FRAME_NEED_MORE)
                break;
            ck_assert_uint_gt(used, 0);
            ck_assert_uint_le(used, have);
            if (r == SM_FRAME_LINE) {
                size_t at = strlen(lines);
                ck_assert_uint_lt(at + line_len + 2, cap);
                memcpy(lines + at, line, line_len);
                lines[at + line_len] = '|';
                lines[at + line_len + 1] = '\0';
            } else {
                (*skips)++;
            }
            memmove(rx, rx + used, have - used);
            have -= used;
        }
        if (fed == len)
            break;
    }
}

static const char two_lines[] =
    "Info:{\"error\":false,\"cmd\":\"getPower\",\"activePower\":12.5}\r\n"
    "Info:[I]03/02 10:42:24: \r\n";
static const char two_lines_text[] =
    "{\"error\":false,\"cmd\":\"getPower\",\"activePower\":12.5}|[I]03/02 10:42:24: |";

START_TEST(test_frame_split_chunks)
{
    // _i + 1 bytes per read: 1 splits everything, larger values split lines in other places.
    char lines[512];
    int skips;
    frame_stream(two_lines, sizeof(two_lines) - 1, (size_t)_i + 1, lines, sizeof(lines), &skips);
    ck_assert_str_eq(lines, two_lines_text);
    ck_assert_int_eq(skips, 0);
}
END_TEST

START_TEST(test_frame_split_two_calls)
{
    static const char line[] = "Info:{\"cmd\":\"getPower\"}\r\n";
    uint8_t rx[64];
    size_t first = 12; // inside the JSON
    memcpy(rx, line, first);
    const char *out;
    size_t out_len, used;
    bool prefixed;
    ck_assert_int_eq(sm_frame_next(rx, first, &out, &out_len, &prefixed, &used),
                     SM_FRAME_NEED_MORE);
    ck_assert_uint_eq(used, 0);
    memcpy(rx + first, line + first, sizeof(line) - 1 - first);
    ck_assert_int_eq(sm_frame_next(rx, sizeof(line) - 1, &out, &out_len, &prefixed, &used),
                     SM_FRAME_LINE);
    ck_assert_uint_eq(used, sizeof(line) - 1);
    ck_assert_uint_eq(out_len, strlen("{\"cmd\":\"getPower\"}"));
    ck_assert(memcmp(out, "{\"cmd\":\"getPower\"}", out_len) == 0);
    ck_assert(prefixed);
}
END_TEST

// Every prefix of a two-line buffer yields exactly the lines complete within it, then waits.
START_TEST(test_frame_every_truncation)
{
    size_t total = sizeof(two_lines) - 1;
    size_t end1 = strchr(two_lines, '\n') - two_lines + 1;
    for (size_t k = 0; k <= total; k++) {
        uint8_t *buf = malloc(k ? k : 1);
        memcpy(buf, two_lines, k);
        size_t off = 0;
        int got = 0;
        for (;;) {
            const char *line;
            size_t line_len, used;
            bool prefixed;
            enum sm_frame r = sm_frame_next(buf + off, k - off, &line, &line_len, &prefixed, &used);
            if (r == SM_FRAME_NEED_MORE) {
                ck_assert_uint_eq(used, 0);
                break;
            }
            ck_assert_int_eq(r, SM_FRAME_LINE);
            ck_assert(prefixed);
            off += used;
            got++;
        }
        int want = (k >= end1) + (k == total);
        ck_assert_msg(got == want, "prefix %zu: %d lines, want %d", k, got, want);
        ck_assert_uint_eq(off, want == 0 ? 0 : want == 1 ? end1 : total);
        free(buf);
    }
}
END_TEST

START_TEST(test_frame_longest_line)
{
    // SM_MAX_LINE bytes before "\n" (prefix and CR included) is still a line.
    size_t len = SM_MAX_LINE + 1;
    uint8_t *buf = malloc(len);
    memcpy(buf, "Info:", 5);
    memset(buf + 5, 'x', SM_MAX_LINE - 6);
    buf[SM_MAX_LINE - 1] = '\r';
    buf[SM_MAX_LINE] = '\n';
    const char *line;
    size_t line_len, used;
    bool prefixed;
    ck_assert_int_eq(sm_frame_next(buf, len, &line, &line_len, &prefixed, &used), SM_FRAME_LINE);
    ck_assert_uint_eq(used, len);
    ck_assert_uint_eq(line_len, SM_MAX_LINE - 6);
    ck_assert(prefixed);
    free(buf);
}
END_TEST

START_TEST(test_frame_unterminated_garbage)
{
    // SM_MAX_LINE bytes without an end may still become a line; one more may not.
    size_t len = SM_MAX_LINE + 1;
    uint8_t *buf = malloc(len);
    memset(buf, 'x', len);
    const char *line;
    size_t line_len, used;
    bool prefixed;
    ck_assert_int_eq(sm_frame_next(buf, SM_MAX_LINE, &line, &line_len, &prefixed, &used),
                     SM_FRAME_NEED_MORE);
    ck_assert_int_eq(sm_frame_next(buf, len, &line, &line_len, &prefixed, &used), SM_FRAME_SKIP);
    ck_assert_uint_eq(used, SM_MAX_LINE + 1);
    free(buf);
}
END_TEST

// A 3000-byte line is dropped in pieces of at most SM_MAX_LINE + 1 bytes. The framer keeps no
// state, so the last piece of it (shorter than a line may be) comes back as an unprefixed line
// that decodes as unknown; the good line after it is found.
START_TEST(test_frame_overlong_line)
{
    size_t junk = 3000;
    size_t len = junk + 2 + strlen("Info:{\"cmd\":\"info\"}\r\n");
    char *stream = malloc(len + 1);
    memset(stream, 'x', junk);
    strcpy(stream + junk, "\r\nInfo:{\"cmd\":\"info\"}\r\n");
    uint8_t *buf = malloc(len);
    memcpy(buf, stream, len);
    size_t off = 0;
    int skips = 0;
    const char *line;
    size_t line_len, used;
    bool prefixed;
    enum sm_frame r;
    while ((r = sm_frame_next(buf + off, len - off, &line, &line_len, &prefixed, &used)) ==
           SM_FRAME_SKIP) {
        ck_assert_uint_eq(used, SM_MAX_LINE + 1);
        off += used;
        skips++;
    }
    ck_assert_int_eq(skips, 2);
    ck_assert_int_eq(r, SM_FRAME_LINE);
    ck_assert(!prefixed);
    ck_assert_uint_eq(line_len, junk - 2 * (SM_MAX_LINE + 1));
    struct sm_line l;
    sm_line_decode(line, line_len, &l);
    ck_assert_int_eq(l.kind, SM_KIND_UNKNOWN);
    off += used;
    ck_assert_int_eq(sm_frame_next(buf + off, len - off, &line, &line_len, &prefixed, &used),
                     SM_FRAME_LINE);
    ck_assert(prefixed);
    ck_assert_uint_eq(line_len, strlen("{\"cmd\":\"info\"}"));
    ck_assert(memcmp(line, "{\"cmd\":\"info\"}", line_len) == 0);
    off += used;
    ck_assert_uint_eq(off, len);

    // The same stream through a driver-sized receive buffer, one byte at a time.
    char lines[4096];
    frame_stream(stream, len, 1, lines, sizeof(lines), &skips);
    ck_assert_int_eq(skips, 2);
    ck_assert_str_eq(strchr(lines, '|'), "|{\"cmd\":\"info\"}|");
    free(stream);
    free(buf);
}
END_TEST

// ---- lines ---------------------------------------------------------------------------------

struct ev {
    enum sm_value id;
    double v;
};

enum { ERR_ABSENT, ERR_FALSE, ERR_TRUE };

struct line_case {
    const char *line;
    enum sm_kind kind;
    const char *cmd, *msg, *state, *name, *version; // NULL: expect ""
    int error;
    char level;
    enum sm_device device;
    struct ev values[16];
    int nvalues;
};

#define VALS(...)                                                                                  \
    .values = {__VA_ARGS__},                                                                       \
    .nvalues = (int)(sizeof((struct ev[]){__VA_ARGS__}) / sizeof(struct ev))

#define PM_INFO(relay)                                                                             \
    "{\"cmd\":\"info\",\"type\":\"powermeter\",\"version\":\"2.3\",\"name\":\"pm1\","              \
    "\"relay\":" relay "}"

static const struct line_case line_cases[] = {
    // getPower: PowerMeter scalars, SmartMeter arrays (per phase + sum).
    {"{\"error\":false,\"cmd\":\"getPower\",\"activePower\":230.5,\"reactivePower\":-12.25,"
     "\"apparentPower\":231,\"unit\":\"W/var/VA\"}",
     SM_KIND_REPLY, .cmd = "getPower", .error = ERR_FALSE,
     VALS({SM_POWER, 230.5}, {SM_REACTIVE_POWER, -12.25}, {SM_APPARENT_POWER, 231})},
    {"{\"error\":false,\"cmd\":\"getPower\",\"activePower\":[100,200.5,-3],"
     "\"reactivePower\":[1,2,3],\"apparentPower\":[10,20,30],\"unit\":\"W/var/VA\"}",
     SM_KIND_REPLY, .cmd = "getPower", .error = ERR_FALSE,
     VALS({SM_POWER, 297.5}, {SM_POWER_L1, 100}, {SM_POWER_L2, 200.5}, {SM_POWER_L3, -3},
          {SM_REACTIVE_POWER, 6}, {SM_REACTIVE_POWER_L1, 1}, {SM_REACTIVE_POWER_L2, 2},
          {SM_REACTIVE_POWER_L3, 3}, {SM_APPARENT_POWER, 60}, {SM_APPARENT_POWER_L1, 10},
          {SM_APPARENT_POWER_L2, 20}, {SM_APPARENT_POWER_L3, 30})},
    // getVoltage: scalar; per phase + mean.
    {"{\"error\":false,\"cmd\":\"getVoltage\",\"voltage\":231.42,\"unit\":\"V\"}", SM_KIND_REPLY,
     .cmd = "getVoltage", .error = ERR_FALSE, VALS({SM_VOLTAGE, 231.42})},
    {"{\"error\":false,\"cmd\":\"getVoltage\",\"voltage\":[229,231,233],\"unit\":\"V\"}",
     SM_KIND_REPLY, .cmd = "getVoltage", .error = ERR_FALSE,
     VALS({SM_VOLTAGE, 231}, {SM_VOLTAGE_L1, 229}, {SM_VOLTAGE_L2, 231}, {SM_VOLTAGE_L3, 233})},
    // getCurrent: mA to A.
    {"{\"error\":false,\"cmd\":\"getCurrent\",\"current\":4820,\"unit\":\"mA\"}", SM_KIND_REPLY,
     .cmd = "getCurrent", .error = ERR_FALSE, VALS({SM_CURRENT, 4.82})},
    {"{\"error\":false,\"cmd\":\"getCurrent\",\"current\":[1500,250,0],\"unit\":\"mA\"}",
     SM_KIND_REPLY, .cmd = "getCurrent", .error = ERR_FALSE,
     VALS({SM_CURRENT, 1.75}, {SM_CURRENT_L1, 1.5}, {SM_CURRENT_L2, 0.25}, {SM_CURRENT_L3, 0})},
    // getEnergy: Wh.
    {"{\"error\":false,\"cmd\":\"getEnergy\",\"energy\":1034.259,\"unit\":\"Wh\",\"startTs\":"
     "1629464739,\"start\":\"08/20/2021 15:05:39.000\",\"days\":31}",
     SM_KIND_REPLY, .cmd = "getEnergy", .error = ERR_FALSE, VALS({SM_ENERGY, 1034.259})},
    {"{\"error\":false,\"cmd\":\"getEnergy\",\"energy\":[1000.5,2000.25,3000],\"unit\":\"Wh\"}",
     SM_KIND_REPLY, .cmd = "getEnergy", .error = ERR_FALSE,
     VALS({SM_ENERGY, 6000.75}, {SM_ENERGY_L1, 1000.5}, {SM_ENERGY_L2, 2000.25},
          {SM_ENERGY_L3, 3000})},
    // getPeriod: the frequency; of three, L1.
    {"{\"error\":false,\"cmd\":\"getPeriod\",\"period\":49.98,\"unit\":\"Hz\"}", SM_KIND_REPLY,
     .cmd = "getPeriod", .error = ERR_FALSE, VALS({SM_FREQUENCY, 49.98})},
    {"{\"error\":false,\"cmd\":\"getPeriod\",\"period\":[50.01,0,7],\"unit\":\"Hz\"}",
     SM_KIND_REPLY, .cmd = "getPeriod", .error = ERR_FALSE, VALS({SM_FREQUENCY, 50.01})},
    {"{\"error\":false,\"cmd\":\"getPeriod\",\"period\":[\"x\",50,50],\"unit\":\"Hz\"}",
     SM_KIND_REPLY, .cmd = "getPeriod", .error = ERR_FALSE},

    // info: classification, device type, relay forms, energy forms.
    {PM_INFO("1"), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 1})},
    {PM_INFO("0"), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 0})},
    {PM_INFO("true"), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 1})},
    {PM_INFO("false"), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 0})},
    {PM_INFO("\"on\""), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 1})},
    {PM_INFO("\"off\""), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 0})},
    {PM_INFO("\"true\""), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 1})},
    {PM_INFO("\"false\""), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 0})},
    {PM_INFO("\"-\""), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER},
    {PM_INFO("2"), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER},
    {PM_INFO("null"), SM_KIND_INFO, .cmd = "info", .name = "pm1", .version = "2.3",
     .device = SM_DEVICE_POWERMETER},
    {"{\"cmd\":\"info\",\"type\":\"PowerMeter\",\"version\":\"2.2\",\"name\":\"powermeterX\","
     "\"state\":\"idle\",\"relay\":1,\"energy\":15342.75,\"rssi\":-71}",
     SM_KIND_INFO, .cmd = "info", .state = "idle", .name = "powermeterX", .version = "2.2",
     .device = SM_DEVICE_POWERMETER, VALS({SM_RELAY, 1}, {SM_ENERGY, 15342.75}, {SM_RSSI, -71})},
    {"{\"cmd\":\"info\",\"type\":\"smartmeter\",\"version\":\"2.2\",\"name\":\"sm1\",\"state\":"
     "\"busy\",\"energy\":\"[123.4, 5.6, 7.8]\",\"rssi\":-64}",
     SM_KIND_INFO, .cmd = "info", .state = "busy", .name = "sm1", .version = "2.2",
     .device = SM_DEVICE_SMARTMETER,
     VALS({SM_ENERGY, 136.8}, {SM_ENERGY_L1, 123.4}, {SM_ENERGY_L2, 5.6}, {SM_ENERGY_L3, 7.8},
          {SM_RSSI, -64})},
    {"{\"cmd\":\"info\",\"type\":\"SMARTMETER\",\"version\":\"2.2\",\"name\":\"sm1\",\"energy\":"
     "\"[inf, 5.6, 7.8]\"}",
     SM_KIND_INFO, .cmd = "info", .name = "sm1", .version = "2.2", .device = SM_DEVICE_SMARTMETER,
     VALS({SM_ENERGY_L2, 5.6}, {SM_ENERGY_L3, 7.8})},
    {"{\"cmd\":\"info\",\"type\":\"smartmeter\",\"energy\":\"[nan,0x10,1e999]\"}", SM_KIND_INFO,
     .cmd = "info", .device = SM_DEVICE_SMARTMETER},
    {"{\"cmd\":\"info\",\"type\":\"smartmeter\",\"energy\":\"[1, 2]\"}", SM_KIND_INFO,
     .cmd = "info", .device = SM_DEVICE_SMARTMETER},
    {"{\"cmd\":\"info\",\"type\":\"smartmeter\",\"energy\":\"[1,2,3,4]\"}", SM_KIND_INFO,
     .cmd = "info", .device = SM_DEVICE_SMARTMETER},
    {"{\"cmd\":\"info\",\"type\":\"smartmeter\",\"energy\":\" 12.5 \"}", SM_KIND_INFO,
     .cmd = "info", .device = SM_DEVICE_SMARTMETER, VALS({SM_ENERGY, 12.5})},
    {"{\"cmd\":\"info\",\"type\":\"smartmeter\",\"energy\":\"\"}", SM_KIND_INFO, .cmd = "info",
     .device = SM_DEVICE_SMARTMETER},
    {"{\"cmd\":\"info\",\"type\":\"toaster\",\"version\":\"1\",\"name\":\"t\"}", SM_KIND_INFO,
     .cmd = "info", .name = "t", .version = "1"},
    // Recognised by type + version + name without "cmd"; not by two of them.
    {"{\"type\":\"powermeter\",\"version\":\"2.3\",\"name\":\"pm2\",\"rssi\":-80}", SM_KIND_INFO,
     .name = "pm2", .version = "2.3", .device = SM_DEVICE_POWERMETER, VALS({SM_RSSI, -80})},
    {"{\"type\":\"powermeter\",\"version\":\"2.3\",\"rssi\":-80}", SM_KIND_REPLY,
     VALS({SM_RSSI, -80})},
    {"{\"cmd\":\"sample\",\"type\":\"TCP\",\"version\":\"x\"}", SM_KIND_REPLY, .cmd = "sample"},

    // Busy, errors, unknown commands.
    {"{\"error\":true,\"cmd\":\"getPower\",\"msg\":\"Currently sampling\",\"state\":\"busy\"}",
     SM_KIND_REPLY, .cmd = "getPower", .error = ERR_TRUE, .msg = "Currently sampling",
     .state = "busy"},
    {"{\"error\":true,\"cmd\":\"getFoo\",\"msg\":\"unknown command\"}", SM_KIND_REPLY,
     .cmd = "getFoo", .error = ERR_TRUE, .msg = "unknown command"},
    {"{\"error\":true,\"msg\":\"Syntax error\"}", SM_KIND_REPLY, .error = ERR_TRUE,
     .msg = "Syntax error"},
    {"{\"cmd\":\"log\",\"msg\":\"*** LOGFile *** //n\"}", SM_KIND_REPLY, .cmd = "log",
     .msg = "*** LOGFile *** //n"},
    {"{\"error\":false}", SM_KIND_REPLY, .error = ERR_FALSE},
    {"{\"error\":\"no\",\"cmd\":5,\"msg\":[1]}", .kind = SM_KIND_REPLY},
    {"  {\"error\":false,\"msg\":\"Switching: \"}  ", SM_KIND_REPLY, .error = ERR_FALSE,
     .msg = "Switching: "},
    {"{}", .kind = SM_KIND_REPLY},

    // Values that are not finite numbers are absent.
    {"{\"cmd\":\"getPower\",\"activePower\":\"12\",\"reactivePower\":null,\"apparentPower\":true}",
     SM_KIND_REPLY, .cmd = "getPower"},
    {"{\"cmd\":\"getPower\",\"activePower\":[1,\"2\",3]}", SM_KIND_REPLY, .cmd = "getPower",
     VALS({SM_POWER_L1, 1}, {SM_POWER_L3, 3})},
    {"{\"cmd\":\"getPower\",\"activePower\":[1,2]}", SM_KIND_REPLY, .cmd = "getPower"},
    {"{\"cmd\":\"getPower\",\"activePower\":[1,2,3,4]}", SM_KIND_REPLY, .cmd = "getPower"},
    {"{\"cmd\":\"getPower\",\"activePower\":[[1],2,3]}", SM_KIND_REPLY, .cmd = "getPower",
     VALS({SM_POWER_L2, 2}, {SM_POWER_L3, 3})},
    {"{\"cmd\":\"getEnergy\",\"energy\":\"[1,2,3]\"}", SM_KIND_REPLY, .cmd = "getEnergy"},
    {"{\"rssi\":\"-70\",\"voltage\":{}}", .kind = SM_KIND_REPLY},
    // A number jansson cannot hold makes the whole line unreadable.
    {"{\"cmd\":\"getPower\",\"activePower\":1e999}", .kind = SM_KIND_UNKNOWN},

    // Log lines.
    {"[I]03/02 10:42:24: MDNS Name: powermeterX", SM_KIND_LOG, .msg = "MDNS Name: powermeterX",
     .level = 'I'},
    {"[I]03/02 10:42:24: ", SM_KIND_LOG, .level = 'I'},
    {"[I]03/02 10:42:24:", SM_KIND_LOG, .level = 'I'},
    {"[E]03/02 11:26:20: Cannot connect: MQTT", SM_KIND_LOG, .msg = "Cannot connect: MQTT",
     .level = 'E'},
    {"[W]03/02/2021 11:26:20.123: late", SM_KIND_LOG, .msg = "late", .level = 'W'},
    {"[D]no time here", SM_KIND_LOG, .msg = "no time here", .level = 'D'},
    {"[A]", SM_KIND_LOG, .level = 'A'},
    {"[A]: bare", SM_KIND_LOG, .msg = "bare", .level = 'A'},
    {"", .kind = SM_KIND_LOG},
    {"[X]03/02 10:42:24: x", .kind = SM_KIND_UNKNOWN},
    {"[i]03/02 10:42:24: x", .kind = SM_KIND_UNKNOWN},
    {"[I", .kind = SM_KIND_UNKNOWN},

    // Anything else.
    {"Setup done", .kind = SM_KIND_UNKNOWN},
    {" Setup done", .kind = SM_KIND_UNKNOWN},
    {"{\"cmd\":\"info\"", .kind = SM_KIND_UNKNOWN},
    {"{\"error\":false} trailing", .kind = SM_KIND_UNKNOWN},
    {"[1,2,3]", .kind = SM_KIND_UNKNOWN},
    {"42", .kind = SM_KIND_UNKNOWN},
    {"\"text\"", .kind = SM_KIND_UNKNOWN},
};

static void assert_text(const char *field, const char *got, const char *want, int i)
{
    ck_assert_msg(strcmp(got, want ? want : "") == 0, "case %d: %s is \"%s\", want \"%s\"", i,
                  field, got, want ? want : "");
}

static void assert_values(const struct sm_values *got, const struct ev *want, int n, int i)
{
    for (int id = 0; id < SM_VALUE_COUNT; id++) {
        const struct ev *e = NULL;
        for (int k = 0; k < n; k++)
            if ((int)want[k].id == id)
                e = &want[k];
        ck_assert_msg(got->has[id] == (e != NULL), "case %d: %s %s", i,
                      sm_value_name((enum sm_value)id), e ? "missing" : "unexpected");
        if (e) {
            double tol = 1e-9 * fmax(1, fabs(e->v));
            ck_assert_msg(fabs(got->v[id] - e->v) <= tol, "case %d: %s = %.12g, want %.12g", i,
                          sm_value_name((enum sm_value)id), got->v[id], e->v);
        }
    }
}

START_TEST(test_line_table)
{
    const struct line_case *c = &line_cases[_i];
    struct sm_line l;
    memset(&l, 0x5a, sizeof(l)); // the decoder must clear what it does not set
    char *copy = malloc(strlen(c->line) + 1);
    memcpy(copy, c->line, strlen(c->line)); // not NUL-terminated within its length
    ck_assert_int_eq(sm_line_decode(copy, strlen(c->line), &l), 0);
    free(copy);
    ck_assert_msg(l.kind == c->kind, "case %d: kind %d, want %d", _i, l.kind, c->kind);
    assert_text("cmd", l.cmd, c->cmd, _i);
    assert_text("msg", l.msg, c->msg, _i);
    assert_text("state", l.state, c->state, _i);
    assert_text("name", l.name, c->name, _i);
    assert_text("version", l.version, c->version, _i);
    ck_assert_int_eq(l.has_error, c->error != ERR_ABSENT);
    ck_assert_int_eq(l.error, c->error == ERR_TRUE);
    ck_assert_int_eq(l.log_level, c->level);
    ck_assert_int_eq(l.device, c->device);
    assert_values(&l.values, c->values, c->nvalues, _i);
}
END_TEST

START_TEST(test_line_truncation)
{
    // msg keeps 127 bytes and never splits a UTF-8 sequence; cmd keeps 31.
    char line[512];
    char msg[200];
    memset(msg, 'm', 126);
    strcpy(msg + 126, "\xc3\xa9 and more");
    snprintf(line, sizeof(line), "{\"cmd\":\"abcdefghijklmnopqrstuvwxyzABCDEFGH\",\"msg\":\"%s\"}",
             msg);
    struct sm_line l;
    sm_line_decode(line, strlen(line), &l);
    ck_assert_int_eq(l.kind, SM_KIND_REPLY);
    ck_assert_str_eq(l.cmd, "abcdefghijklmnopqrstuvwxyzABCDE");
    ck_assert_uint_eq(strlen(l.msg), 126);

    memset(msg, 'm', 125);
    strcpy(msg + 125, "\xc3\xa9 and more");
    snprintf(line, sizeof(line), "{\"msg\":\"%s\"}", msg);
    sm_line_decode(line, strlen(line), &l);
    ck_assert_uint_eq(strlen(l.msg), 127);
    ck_assert_str_eq(l.msg + 125, "\xc3\xa9");

    // A log line's text is cut the same way.
    snprintf(line, sizeof(line), "[I]03/02 10:42:24: %s", msg);
    sm_line_decode(line, strlen(line), &l);
    ck_assert_int_eq(l.kind, SM_KIND_LOG);
    ck_assert_uint_eq(strlen(l.msg), 127);
}
END_TEST

START_TEST(test_line_embedded_nul)
{
    // The framer never hands these over, but the decoder must cope with them.
    static const char json[] = "{\"cmd\":\"info\"}\0junk";
    struct sm_line l;
    sm_line_decode(json, sizeof(json) - 1, &l);
    ck_assert_int_eq(l.kind, SM_KIND_UNKNOWN);
    static const char log[] = "[I]03/02 10:42:24: a\0b";
    sm_line_decode(log, sizeof(log) - 1, &l);
    ck_assert_int_eq(l.kind, SM_KIND_LOG);
    ck_assert_str_eq(l.msg, "a");
    static const char level[] = "[\0]x";
    sm_line_decode(level, sizeof(level) - 1, &l);
    ck_assert_int_eq(l.kind, SM_KIND_UNKNOWN);
}
END_TEST

// ---- samples -------------------------------------------------------------------------------

struct sample_case {
    const char *payload;
    enum sm_device device;
    int major;
    int rc;
    struct ev values[20];
    int nvalues;
};

#define PM_SAMPLE                                                                                  \
    "{\"power\":1116.89,\"inUse\":true,\"current\":4.82,\"energy\":12.5,\"volt\":236.56,\"ts\":"   \
    "1614681575}"
#define PM_SAMPLE_VALUES(energy)                                                                   \
    VALS({SM_POWER, 1116.89}, {SM_IN_USE, 1}, {SM_CURRENT, 4.82}, {SM_ENERGY, energy},             \
         {SM_VOLTAGE, 236.56}, {SM_TIMESTAMP, 1614681575})
#define TS_SAMPLE(ts) "{\"volt\":230,\"ts\":" ts "}"

static const struct sample_case sample_cases[] = {
    // Energy unit by device and firmware.
    {PM_SAMPLE, SM_DEVICE_POWERMETER, 2, 0, PM_SAMPLE_VALUES(12.5)},
    {PM_SAMPLE, SM_DEVICE_POWERMETER, 3, 0, PM_SAMPLE_VALUES(12.5)},
    {PM_SAMPLE, SM_DEVICE_POWERMETER, 1, 0, PM_SAMPLE_VALUES(12500)},
    {PM_SAMPLE, SM_DEVICE_POWERMETER, 0, 0, PM_SAMPLE_VALUES(12.5)},
    {PM_SAMPLE, SM_DEVICE_POWERMETER, -1, 0, PM_SAMPLE_VALUES(12.5)},
    {PM_SAMPLE, SM_DEVICE_UNKNOWN, 0, 0, PM_SAMPLE_VALUES(12.5)},
    {PM_SAMPLE, SM_DEVICE_UNKNOWN, 1, 0, PM_SAMPLE_VALUES(12500)},
    {PM_SAMPLE, SM_DEVICE_SMARTMETER, 2, 0, PM_SAMPLE_VALUES(12500)},
    {PM_SAMPLE, SM_DEVICE_SMARTMETER, 0, 0, PM_SAMPLE_VALUES(12500)},
    // SmartMeter with per-line values; e_l* follow energy's unit.
    {"{\"power\":1985.25,\"energy\":19.76,\"current\":8.83,\"volt\":230.47,\"ts\":\"1732122191\","
     "\"v_l1\":229.9,\"v_l2\":231.2,\"v_l3\":230.3,\"i_l1\":5.23,\"i_l2\":3.48,\"i_l3\":0.12,"
     "\"p_l1\":1200.5,\"p_l2\":800.25,\"p_l3\":-15.5,\"e_l1\":10.15,\"e_l2\":5.1,\"e_l3\":4.51}",
     SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_POWER, 1985.25}, {SM_ENERGY, 19760}, {SM_CURRENT, 8.83}, {SM_VOLTAGE, 230.47},
          {SM_TIMESTAMP, 1732122191}, {SM_VOLTAGE_L1, 229.9}, {SM_VOLTAGE_L2, 231.2},
          {SM_VOLTAGE_L3, 230.3}, {SM_CURRENT_L1, 5.23}, {SM_CURRENT_L2, 3.48},
          {SM_CURRENT_L3, 0.12}, {SM_POWER_L1, 1200.5}, {SM_POWER_L2, 800.25}, {SM_POWER_L3, -15.5},
          {SM_ENERGY_L1, 10150}, {SM_ENERGY_L2, 5100}, {SM_ENERGY_L3, 4510})},
    {"{\"e_l1\":1.5,\"e_l2\":2,\"e_l3\":\"3\"}", SM_DEVICE_POWERMETER, 2, 0,
     VALS({SM_ENERGY_L1, 1.5}, {SM_ENERGY_L2, 2})},
    // Relay off: power and current 0, inUse false.
    {"{\"power\":0,\"current\":0,\"inUse\":false,\"energy\":0,\"volt\":231.28,\"ts\":1614681576}",
     SM_DEVICE_POWERMETER, 2, 0,
     VALS({SM_POWER, 0}, {SM_CURRENT, 0}, {SM_IN_USE, 0}, {SM_ENERGY, 0}, {SM_VOLTAGE, 231.28},
          {SM_TIMESTAMP, 1614681576})},
    {"{\"inUse\":1}", SM_DEVICE_POWERMETER, 2, 0, VALS({SM_IN_USE, 1})},
    {"{\"inUse\":\"yes\"}", SM_DEVICE_POWERMETER, 2, .rc = 0},
    // ts: number or numeric string; a date string is not unix time.
    {TS_SAMPLE("\"1614681575\""), SM_DEVICE_UNKNOWN, 0, 0,
     VALS({SM_VOLTAGE, 230}, {SM_TIMESTAMP, 1614681575})},
    {TS_SAMPLE("\" 1614681575 \""), SM_DEVICE_UNKNOWN, 0, 0,
     VALS({SM_VOLTAGE, 230}, {SM_TIMESTAMP, 1614681575})},
    {TS_SAMPLE("\"1614697441.119\""), SM_DEVICE_UNKNOWN, 0, 0,
     VALS({SM_VOLTAGE, 230}, {SM_TIMESTAMP, 1614697441.119})},
    {TS_SAMPLE("1614681575.5"), SM_DEVICE_UNKNOWN, 0, 0,
     VALS({SM_VOLTAGE, 230}, {SM_TIMESTAMP, 1614681575.5})},
    {TS_SAMPLE("\"03/02/2021 11:59:59.034\""), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    {TS_SAMPLE("\"1614681575abc\""), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    {TS_SAMPLE("\"\""), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    {TS_SAMPLE("\"nan\""), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    {TS_SAMPLE("\"inf\""), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    {TS_SAMPLE("\"1e999\""), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    {TS_SAMPLE("true"), SM_DEVICE_UNKNOWN, 0, 0, VALS({SM_VOLTAGE, 230})},
    // Non-numbers are absent.
    {"{\"power\":\"12\",\"volt\":null,\"current\":[1],\"energy\":{}}", SM_DEVICE_POWERMETER, 2,
     .rc = 0},
    // Single-value replies, by unit.
    {"{\"value\":1.003773,\"unit\":\"W\",\"ts\":\"03/02/2021 11:59:59.034\"}", SM_DEVICE_POWERMETER,
     2, 0, VALS({SM_POWER, 1.003773})},
    {"{\"value\":-3.5,\"unit\":\"var\"}", SM_DEVICE_POWERMETER, 2, 0,
     VALS({SM_REACTIVE_POWER, -3.5})},
    {"{\"value\":40,\"unit\":\"VA\"}", SM_DEVICE_POWERMETER, 2, 0, VALS({SM_APPARENT_POWER, 40})},
    {"{\"value\":229.5,\"unit\":\"V\"}", SM_DEVICE_POWERMETER, 2, 0, VALS({SM_VOLTAGE, 229.5})},
    {"{\"value\":512.25,\"unit\":\"mA\"}", SM_DEVICE_POWERMETER, 2, 0, VALS({SM_CURRENT, 0.51225})},
    {"{\"value\":1.25,\"unit\":\"kWh\"}", SM_DEVICE_POWERMETER, 2, 0, VALS({SM_ENERGY, 1250})},
    {"{\"value\":\"228.43,228.48,228.33\",\"unit\":\"V\",\"ts\":\"03/08/2021 11:42:34.848\"}",
     SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_VOLTAGE, 228.41333333333333}, {SM_VOLTAGE_L1, 228.43}, {SM_VOLTAGE_L2, 228.48},
          {SM_VOLTAGE_L3, 228.33})},
    {"{\"value\":\"100.00,200.00,300.00\",\"unit\":\"W\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_POWER, 600}, {SM_POWER_L1, 100}, {SM_POWER_L2, 200}, {SM_POWER_L3, 300})},
    {"{\"value\":\"1.00,2.00,3.00\",\"unit\":\"var\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_REACTIVE_POWER, 6}, {SM_REACTIVE_POWER_L1, 1}, {SM_REACTIVE_POWER_L2, 2},
          {SM_REACTIVE_POWER_L3, 3})},
    {"{\"value\":\"4.00,5.00,6.00\",\"unit\":\"VA\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_APPARENT_POWER, 15}, {SM_APPARENT_POWER_L1, 4}, {SM_APPARENT_POWER_L2, 5},
          {SM_APPARENT_POWER_L3, 6})},
    {"{\"value\":\"1500.00,250.00,0.00\",\"unit\":\"mA\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_CURRENT, 1.75}, {SM_CURRENT_L1, 1.5}, {SM_CURRENT_L2, 0.25}, {SM_CURRENT_L3, 0})},
    {"{\"value\":\"10.15,5.10,4.51\",\"unit\":\"kWh\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_ENERGY, 19760}, {SM_ENERGY_L1, 10150}, {SM_ENERGY_L2, 5100}, {SM_ENERGY_L3, 4510})},
    {"{\"value\":\"nan,2.00,3.00\",\"unit\":\"W\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_POWER_L2, 2}, {SM_POWER_L3, 3})},
    {"{\"value\":\"1.00,,3.00\",\"unit\":\"W\"}", SM_DEVICE_SMARTMETER, 2, 0,
     VALS({SM_POWER_L1, 1}, {SM_POWER_L3, 3})},
    {"{\"value\":\"1,2\",\"unit\":\"W\"}", SM_DEVICE_SMARTMETER, 2, .rc = 0},
    {"{\"value\":12,\"unit\":\"Deg\"}", SM_DEVICE_POWERMETER, 2, .rc = 0},
    {"{\"value\":12,\"unit\":\"w\"}", SM_DEVICE_POWERMETER, 2, .rc = 0},
    {"{\"value\":12}", SM_DEVICE_POWERMETER, 2, .rc = 0},
    {"{\"value\":true,\"unit\":\"W\"}", SM_DEVICE_POWERMETER, 2, .rc = 0},
    {"{\"value\":12,\"unit\":\"W\",\"power\":99}", SM_DEVICE_POWERMETER, 2, 0,
     VALS({SM_POWER, 12})},
    // The reply to a state request.
    {"{\"relay\":\"on\",\"sampleState\":\"idle\",\"ts\":\"03/02/2021 11:59:59.034\"}",
     SM_DEVICE_POWERMETER, 2, 0, VALS({SM_RELAY, 1})},
    {"{\"relay\":\"off\",\"sampleState\":\"sampling\"}", SM_DEVICE_POWERMETER, 2, 0,
     VALS({SM_RELAY, 0})},
    // Not an object.
    {"", SM_DEVICE_POWERMETER, 2, .rc = -EINVAL},
    {"[1,2]", SM_DEVICE_POWERMETER, 2, .rc = -EINVAL},
    {"on", SM_DEVICE_POWERMETER, 2, .rc = -EINVAL},
    {"12", SM_DEVICE_POWERMETER, 2, .rc = -EINVAL},
    {"{\"power\":1", SM_DEVICE_POWERMETER, 2, .rc = -EINVAL},
};

START_TEST(test_sample_table)
{
    const struct sample_case *c = &sample_cases[_i];
    struct sm_values v;
    memset(&v, 0x5a, sizeof(v));
    size_t len = strlen(c->payload);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, c->payload, len);
    ck_assert_int_eq(sm_sample_decode(copy, len, c->device, c->major, &v), c->rc);
    free(copy);
    assert_values(&v, c->values, c->nvalues, _i);
}
END_TEST

// A JSON object of exactly `len` bytes: `head` (without its closing brace), then a padding
// member. malloc'd, not NUL-terminated within `len`.
static char *padded_object(const char *head, size_t len)
{
    static const char pad[] = ",\"pad\":\"";
    size_t h = strlen(head), fixed = h + strlen(pad) + 2; // the padding's closing quote and }
    ck_assert_uint_gt(len, fixed);
    char *s = malloc(len + 1);
    memcpy(s, head, h);
    memcpy(s + h, pad, strlen(pad));
    memset(s + h + strlen(pad), 'x', len - fixed);
    memcpy(s + len - 2, "\"}", 2);
    s[len] = '\0';
    return s;
}

// Over MQTT nothing frames a payload: samples and replies longer than SM_MAX_LINE are refused
// before they are parsed, as on TCP; one byte less is decoded.
START_TEST(test_mqtt_payload_limit)
{
    for (size_t len = SM_MAX_LINE - 1; len <= SM_MAX_LINE + 1; len++) {
        bool fits = len <= SM_MAX_LINE;
        char *sample = padded_object("{\"power\":12.5", len);
        struct sm_values v;
        ck_assert_int_eq(sm_sample_decode(sample, len, SM_DEVICE_POWERMETER, 2, &v),
                         fits ? 0 : -EMSGSIZE);
        ck_assert_int_eq(v.has[SM_POWER], fits);
        if (fits)
            ck_assert_double_eq(v.v[SM_POWER], 12.5);
        free(sample);
        char *reply = padded_object("{\"cmd\":\"getPower\",\"error\":false,\"value\":7,"
                                    "\"unit\":\"W\"",
                                    len);
        struct sm_line l;
        ck_assert_int_eq(sm_line_decode(reply, len, &l), 0);
        ck_assert_int_eq(l.kind, fits ? SM_KIND_REPLY : SM_KIND_UNKNOWN);
        ck_assert_str_eq(l.cmd, fits ? "getPower" : "");
        free(reply);
    }
}
END_TEST

// ---- commands ------------------------------------------------------------------------------

enum enc { ENC_CMD, ENC_SWITCH, ENC_RESET, ENC_KEEPALIVE };

struct enc_case {
    enum enc kind;
    const char *name;
    int value;
    size_t size;
    int rc; // >= 0: the length of want
    const char *want;
};

static const struct enc_case enc_cases[] = {
    {ENC_CMD, "getPower", 0, 64, 19, "{\"cmd\":\"getPower\"}\n"},
    {ENC_CMD, "info", 0, 64, 15, "{\"cmd\":\"info\"}\n"},
    {ENC_CMD, "info", 0, 16, 15, "{\"cmd\":\"info\"}\n"},
    {ENC_CMD, "info", 0, 15, -ENOSPC, NULL},
    {ENC_CMD, "info", 0, 0, -ENOSPC, NULL},
    {ENC_CMD, "", 0, 64, -EINVAL, NULL},
    {ENC_CMD, "get Power", 0, 64, -EINVAL, NULL},
    {ENC_CMD, "getPower\"", 0, 64, -EINVAL, NULL},
    {ENC_CMD, "get_power", 0, 64, -EINVAL, NULL},
    {ENC_CMD, "getPower1", 0, 64, -EINVAL, NULL},
    {ENC_CMD, "getPower\n", 0, 64, -EINVAL, NULL},
    {ENC_CMD, "g\xc3\xa9t", 0, 64, -EINVAL, NULL},
    {ENC_SWITCH, NULL, 1, 64, 39, "{\"cmd\":\"switch\",\"payload\":{\"value\":1}}\n"},
    {ENC_SWITCH, NULL, 0, 64, 39, "{\"cmd\":\"switch\",\"payload\":{\"value\":0}}\n"},
    {ENC_SWITCH, NULL, -1, 64, 40, "{\"cmd\":\"switch\",\"payload\":{\"value\":-1}}\n"},
    {ENC_SWITCH, NULL, -1, 41, 40, "{\"cmd\":\"switch\",\"payload\":{\"value\":-1}}\n"},
    {ENC_SWITCH, NULL, -1, 40, -ENOSPC, NULL},
    {ENC_SWITCH, NULL, 2, 64, -EINVAL, NULL},
    {ENC_SWITCH, NULL, -2, 64, -EINVAL, NULL},
    {ENC_RESET, NULL, 0, 64, 22, "{\"cmd\":\"resetEnergy\"}\n"},
    {ENC_RESET, NULL, 0, 22, -ENOSPC, NULL},
    {ENC_KEEPALIVE, NULL, 0, 64, 2, "!\n"},
    {ENC_KEEPALIVE, NULL, 0, 3, 2, "!\n"},
    {ENC_KEEPALIVE, NULL, 0, 2, -ENOSPC, NULL},
};

START_TEST(test_encode_table)
{
    const struct enc_case *c = &enc_cases[_i];
    char out[64];
    memset(out, '#', sizeof(out));
    int rc;
    switch (c->kind) {
    case ENC_CMD: rc = sm_encode_cmd(out, c->size, c->name); break;
    case ENC_SWITCH: rc = sm_encode_switch(out, c->size, c->value); break;
    case ENC_RESET: rc = sm_encode_reset_energy(out, c->size); break;
    default: rc = sm_encode_keepalive(out, c->size); break;
    }
    ck_assert_int_eq(rc, c->rc);
    if (c->want) {
        ck_assert_uint_eq(strlen(c->want), (size_t)rc);
        ck_assert_str_eq(out, c->want);
    }
    for (size_t i = c->size; i < sizeof(out); i++)
        ck_assert_msg(out[i] == '#', "case %d: wrote past %zu bytes", _i, c->size);
}
END_TEST

START_TEST(test_encoded_commands_decode)
{
    // What we send is what the firmware parses: one JSON object per line.
    char out[64];
    int n = sm_encode_switch(out, sizeof(out), -1);
    ck_assert_int_gt(n, 0);
    const char *line;
    size_t line_len, used;
    bool prefixed;
    ck_assert_int_eq(
        sm_frame_next((const uint8_t *)out, (size_t)n, &line, &line_len, &prefixed, &used),
        SM_FRAME_LINE);
    ck_assert_uint_eq(used, (size_t)n);
    struct sm_line l;
    sm_line_decode(line, line_len, &l);
    ck_assert_int_eq(l.kind, SM_KIND_REPLY);
    ck_assert_str_eq(l.cmd, "switch");
}
END_TEST

START_TEST(test_value_names)
{
    for (int a = 0; a < SM_VALUE_COUNT; a++) {
        const char *name = sm_value_name((enum sm_value)a);
        ck_assert_ptr_nonnull(name);
        ck_assert_uint_gt(strlen(name), 0);
        ck_assert_ptr_nonnull(sm_value_unit((enum sm_value)a));
        for (int b = 0; b < a; b++)
            ck_assert_str_ne(name, sm_value_name((enum sm_value)b));
    }
    ck_assert_str_eq(sm_value_name(SM_CURRENT_L2), "current_l2");
    ck_assert_str_eq(sm_value_unit(SM_CURRENT_L2), "A");
    ck_assert_str_eq(sm_value_unit(SM_ENERGY), "Wh");
    ck_assert_str_eq(sm_value_unit(SM_FREQUENCY), "Hz");
    ck_assert_str_eq(sm_value_unit(SM_RSSI), "dBm");
    ck_assert_str_eq(sm_value_unit(SM_TIMESTAMP), "s");
    ck_assert_str_eq(sm_value_unit(SM_RELAY), "");
    ck_assert_str_eq(sm_value_name(SM_VALUE_COUNT), "");
}
END_TEST

// ---- decode command ------------------------------------------------------------------------

static char *decode_text(const char *input, int *rc, char *err, size_t err_size)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ck_assert_ptr_nonnull(f);
    *rc = smartmeter_decode(input, f, err, err_size);
    fclose(f);
    return text;
}

START_TEST(test_decode_empty)
{
    char err[256] = "";
    int rc;
    char *text = decode_text("", &rc, err, sizeof(err));
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

// The prefix and the line end do not change the decode.
static const char *const same_decodes[][2] = {
    {"Info:{\"error\":false,\"cmd\":\"getVoltage\",\"voltage\":0.1}\r\n",
     "{\"error\":false,\"cmd\":\"getVoltage\",\"voltage\":0.1}"},
    {"Info:[I]03/02 10:42:24: x\n", "[I]03/02 10:42:24: x"},
    {"Info:\r\n", "\n"},
    {"{\"power\":5,\"inUse\":true,\"ts\":1}\n", "Info:{\"power\":5,\"inUse\":true,\"ts\":1}"},
};

START_TEST(test_decode_prefix_and_line_end)
{
    char err[256] = "";
    int rc1, rc2;
    char *a = decode_text(same_decodes[_i][0], &rc1, err, sizeof(err));
    char *b = decode_text(same_decodes[_i][1], &rc2, err, sizeof(err));
    ck_assert_int_eq(rc1, 0);
    ck_assert_int_eq(rc2, 0);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_decode_output)
{
    char err[256] = "";
    int rc;
    char *text = decode_text("{\"error\":false,\"cmd\":\"getVoltage\",\"voltage\":0.1}", &rc, err,
                             sizeof(err));
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(text, "{\"kind\":\"reply\",\"cmd\":\"getVoltage\",\"error\":false,\"values\":"
                           "{\"voltage\":{\"value\":0.1,\"unit\":\"V\"}}}\n");
    free(text);
    // A log text that is not UTF-8 still gives valid JSON.
    text = decode_text("[W]03/02 10:42:24: caf\xe9", &rc, err, sizeof(err));
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(text, "{\"kind\":\"log\",\"msg\":\"caf?\",\"log_level\":\"W\"}\n");
    free(text);
    // An object with "cmd" is a reply even with sample keys.
    text = decode_text("{\"cmd\":\"x\",\"ts\":1,\"volt\":2}", &rc, err, sizeof(err));
    ck_assert_str_eq(text, "{\"kind\":\"reply\",\"cmd\":\"x\"}\n");
    free(text);
}
END_TEST

enum { GOLDEN_MAX = 128 };
static char golden[GOLDEN_MAX][256]; // base names (without .txt)
static int ngolden;
static int golden_unpaired;

static int txt_or_json(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return (n > 4 && strcmp(e->d_name + n - 4, ".txt") == 0) ||
           (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0);
}

static void golden_scan(void)
{
    struct dirent **names;
    int n = scandir(GOLDEN_DIR, &names, txt_or_json, alphasort);
    if (n < 0)
        return;
    int txt = 0, json = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        if (strcmp(names[i]->d_name + len - 4, ".txt") == 0) {
            txt++;
            if (ngolden < GOLDEN_MAX && len - 4 < sizeof(golden[0])) {
                memcpy(golden[ngolden], names[i]->d_name, len - 4);
                golden[ngolden][len - 4] = '\0';
                ngolden++;
            }
        } else {
            json++;
        }
        free(names[i]);
    }
    free(names);
    golden_unpaired = txt != json;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(65536);
    size_t n = fread(buf, 1, 65535, f);
    ck_assert(!ferror(f));
    fclose(f);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_golden_set)
{
    ck_assert_msg(ngolden >= 12, "%d golden lines in %s, want at least 12", ngolden, GOLDEN_DIR);
    ck_assert_msg(!golden_unpaired, "every .txt in %s needs its .json and back", GOLDEN_DIR);
}
END_TEST

START_TEST(test_golden)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.txt", GOLDEN_DIR, golden[_i]);
    char *input = read_file(path);
    snprintf(path, sizeof(path), "%s/%s.json", GOLDEN_DIR, golden[_i]);
    char *want = read_file(path);
    char err[256] = "";
    int rc;
    char *got = decode_text(input, &rc, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s", golden[_i], err);
    ck_assert_msg(strcmp(got, want) == 0, "%s:\n got  %s want %s", golden[_i], got, want);
    free(input);
    free(want);
    free(got);
}
END_TEST

static Suite *smartmeter_codec_suite(void)
{
    Suite *s = suite_create("smartmeter_codec");

    TCase *tf = tcase_create("frame");
    tcase_add_loop_test(tf, test_frame_table, 0, (int)N(frame_cases));
    tcase_add_loop_test(tf, test_frame_split_chunks, 0, (int)sizeof(two_lines));
    tcase_add_test(tf, test_frame_split_two_calls);
    tcase_add_test(tf, test_frame_every_truncation);
    tcase_add_test(tf, test_frame_longest_line);
    tcase_add_test(tf, test_frame_unterminated_garbage);
    tcase_add_test(tf, test_frame_overlong_line);
    suite_add_tcase(s, tf);

    TCase *tl = tcase_create("line");
    tcase_add_loop_test(tl, test_line_table, 0, (int)N(line_cases));
    tcase_add_test(tl, test_line_truncation);
    tcase_add_test(tl, test_line_embedded_nul);
    suite_add_tcase(s, tl);

    TCase *ts = tcase_create("sample");
    tcase_add_loop_test(ts, test_sample_table, 0, (int)N(sample_cases));
    tcase_add_test(ts, test_mqtt_payload_limit);
    suite_add_tcase(s, ts);

    TCase *te = tcase_create("encode");
    tcase_add_loop_test(te, test_encode_table, 0, (int)N(enc_cases));
    tcase_add_test(te, test_encoded_commands_decode);
    tcase_add_test(te, test_value_names);
    suite_add_tcase(s, te);

    TCase *td = tcase_create("decode");
    tcase_add_test(td, test_decode_empty);
    tcase_add_loop_test(td, test_decode_prefix_and_line_end, 0, (int)N(same_decodes));
    tcase_add_test(td, test_decode_output);
    tcase_add_test(td, test_golden_set);
    tcase_add_loop_test(td, test_golden, 0, ngolden);
    suite_add_tcase(s, td);
    return s;
}

int main(void)
{
    golden_scan();
    SRunner *sr = srunner_create(smartmeter_codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
