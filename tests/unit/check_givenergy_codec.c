// SPDX-License-Identifier: MIT
// Unit tests for the GivEnergy dongle codec: CRC, golden frames from public captures, every
// frame kind encoded and parsed back in both directions, every truncation, garbage and resync,
// frames split and merged at every offset, malformed frames, ignored frames, encoder limits,
// model identification and the decode command.
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/givenergy/givenergy_codec.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t ADAPTER[10] = "WF2125G316";
static const uint8_t INVERTER[10] = "SA2114G047";

// ---- helpers -------------------------------------------------------------------------------

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int high = -1;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\n')
            continue;
        int d = (*s >= '0' && *s <= '9')   ? *s - '0'
                : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10
                : (*s >= 'A' && *s <= 'F') ? *s - 'A' + 10
                                           : -1;
        ck_assert_msg(d >= 0, "bad hex digit '%c'", *s);
        if (high < 0) {
            high = d;
        } else {
            ck_assert_uint_lt(n, cap);
            out[n++] = (uint8_t)(high << 4 | d);
            high = -1;
        }
    }
    ck_assert_int_lt(high, 0);
    return n;
}

// The hex text of a golden file in tests/codec/givenergy.
static char *golden_text(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/codec/givenergy/%s.hex", E2M_SOURCE_DIR, name);
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    static char text[2048];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    return text;
}

// ---- CRC ------------------------------------------------------------------------------------

START_TEST(test_crc_check_value)
{
    ck_assert_uint_eq(ge_crc((const uint8_t *)"123456789", 9), 0x4B37);
    // ReadHolding(0x11, 0, 60): CRC 0x4B47, sent as 47 4b.
    static const uint8_t inner[] = {0x11, 0x03, 0x00, 0x00, 0x00, 0x3c};
    ck_assert_uint_eq(ge_crc(inner, sizeof(inner)), 0x4B47);
}
END_TEST

// ---- golden frames --------------------------------------------------------------------------

// Frames from public captures (tests/codec/givenergy/README.md says where each comes from).
static const struct golden {
    const char *file;
    uint8_t fid;
    bool response;
    uint8_t unit, address, function;
    bool error;
    uint16_t reg;
    int count; // -1: none
    int n_values;
    int value0;  // the first value, or -1
    bool crc_ok; // the redacted captures carry serials the CRC was not computed over
} goldens[] = {
    {"heartbeat-wf2125g316", GE_FID_HEARTBEAT, false, 1, 0, 0, false, 0, -1, 0, -1, false},
    {"read-holding-0-60-request-app", GE_FID_TRANSPARENT, false, 0, 0x11, 3, false, 0, 60, 0, -1,
     true},
    {"read-holding-0-60-response-gen1", GE_FID_TRANSPARENT, true, 1, 0x11, 3, false, 0, 60, 60,
     0x2001, true},
    {"read-meter-product-request", GE_FID_TRANSPARENT, false, 0, 0x01, 0x16, false, 60, 60, 0, -1,
     true},
    {"read-input-0-60-request", GE_FID_TRANSPARENT, false, 1, 0x11, 4, false, 0, 60, 0, -1, true},
    {"read-input-0-6-response-battery", GE_FID_TRANSPARENT, true, 1, 0x32, 4, false, 0, 6, 6, 1,
     false},
    {"error-read-input-120", GE_FID_TRANSPARENT, true, 1, 0x32, 4, true, 0, 120, 0, -1, false},
    {"legacy-crc-request", GE_FID_TRANSPARENT, false, 1, 0x32, 4, false, 0, 6, 0, -1, false},
};

START_TEST(test_golden)
{
    const struct golden *g = &goldens[_i];
    uint8_t buf[GE_FRAME_MAX];
    size_t n = unhex(golden_text(g->file), buf, sizeof(buf));
    struct ge_frame f;
    ck_assert_int_eq(ge_parse(buf, n, GE_DIR_ANY, &f), GE_OK);
    ck_assert_uint_eq(f.len, n);
    ck_assert_uint_eq(f.fid, g->fid);
    ck_assert_uint_eq(f.unit_id, g->unit);
    if (g->fid == GE_FID_HEARTBEAT) {
        ck_assert_uint_eq(f.adapter_type, 1);
        ck_assert_mem_eq(f.adapter, ADAPTER, 10);
        return;
    }
    ck_assert_int_eq(f.response, g->response);
    ck_assert_uint_eq(f.address, g->address);
    ck_assert_uint_eq(f.function, g->function);
    ck_assert_int_eq(f.error, g->error);
    ck_assert_uint_eq(f.reg, g->reg);
    ck_assert_int_eq(f.has_count, g->count >= 0);
    if (g->count >= 0)
        ck_assert_uint_eq(f.count, (unsigned)g->count);
    ck_assert_uint_eq(f.n_values, (unsigned)g->n_values);
    if (g->value0 >= 0)
        ck_assert_uint_eq(f.values[0], (unsigned)g->value0);
    ck_assert_int_eq(f.crc_ok, g->crc_ok);
    // The same frame with the direction given parses the same way.
    struct ge_frame d;
    ck_assert_int_eq(ge_parse(buf, n, g->response ? GE_DIR_RESPONSE : GE_DIR_REQUEST, &d), GE_OK);
    ck_assert_uint_eq(d.reg, f.reg);
    ck_assert_uint_eq(d.n_values, f.n_values);
}
END_TEST

// The Gen1 holding block: serial and identity as the capture shows them.
START_TEST(test_golden_identity)
{
    uint8_t buf[GE_FRAME_MAX];
    size_t n = unhex(golden_text("read-holding-0-60-response-gen1"), buf, sizeof(buf));
    struct ge_frame f;
    ck_assert_int_eq(ge_parse(buf, n, GE_DIR_RESPONSE, &f), GE_OK);
    ck_assert_mem_eq(f.inverter, INVERTER, 10);
    ck_assert_uint_eq(f.inner_len, 0x8a);
    struct ge_identity id;
    ge_identify(f.values, &id);
    ck_assert_uint_eq(id.dtc, 0x2001);
    ck_assert_int_eq(id.family, GE_FAMILY_HYBRID);
    ck_assert_int_eq(id.generation, 1);
    ck_assert_uint_eq(id.arm_firmware, 449);
    ck_assert_str_eq(id.serial, "SA2114G047");
    ck_assert_str_eq(id.model, "givenergy/hybrid");
}
END_TEST

// Our requests are byte for byte what current clients send.
START_TEST(test_golden_requests_encoded)
{
    uint8_t want[GE_FRAME_MAX], got[GE_FRAME_MAX];
    size_t n = unhex(golden_text("read-input-0-60-request"), want, sizeof(want));
    ck_assert_int_eq(ge_encode_read(got, sizeof(got), NULL, 0x11, GE_FN_READ_INPUT, 0, 60), (int)n);
    ck_assert_mem_eq(got, want, n);
    // The app's request differs in the unit id and the adapter serial only.
    n = unhex(golden_text("read-holding-0-60-request-app"), want, sizeof(want));
    ck_assert_int_eq(ge_encode_read(got, sizeof(got), ADAPTER, 0x11, GE_FN_READ_HOLDING, 0, 60),
                     (int)n);
    ck_assert_uint_eq(want[6], 0);
    got[6] = 0;
    ck_assert_mem_eq(got, want, n);
}
END_TEST

// ---- encode and parse back --------------------------------------------------------------------

enum kind { READ_REQ, WRITE_REQ, READ_RESP_1, READ_RESP_60, WRITE_RESP, ERROR_RESP, HEARTBEAT };

static int encode_kind(int k, uint8_t *out, size_t cap)
{
    static uint16_t values[60];
    for (size_t i = 0; i < N(values); i++)
        values[i] = (uint16_t)(1000 + i);
    switch (k) {
    case READ_REQ: return ge_encode_read(out, cap, NULL, 0x11, GE_FN_READ_INPUT, 180, 60);
    case WRITE_REQ: return ge_encode_write(out, cap, NULL, 0x11, 94, 1730);
    case READ_RESP_1:
        return ge_encode_read_response(out, cap, ADAPTER, 0x11, GE_FN_READ_HOLDING, INVERTER, 116,
                                       values, 1);
    case READ_RESP_60:
        return ge_encode_read_response(out, cap, ADAPTER, 0x32, GE_FN_READ_INPUT, INVERTER, 60,
                                       values, 60);
    case WRITE_RESP: return ge_encode_write_response(out, cap, ADAPTER, 0x11, INVERTER, 94, 1730);
    case ERROR_RESP:
        return ge_encode_error(out, cap, ADAPTER, 0x11, GE_FN_READ_HOLDING, INVERTER, 1100, 60);
    default: return ge_encode_heartbeat(out, cap, ADAPTER, 32);
    }
}

static const struct kind_want {
    size_t len;
    bool response;
    uint8_t function;
    uint16_t reg;
    int n_values;
    uint64_t inner_len;
} kind_wants[] = {
    [READ_REQ] = {34, false, GE_FN_READ_INPUT, 180, 0, 8},
    [WRITE_REQ] = {34, false, GE_FN_WRITE_SINGLE, 94, 1, 8},
    [READ_RESP_1] = {46, true, GE_FN_READ_HOLDING, 116, 1, 20},
    [READ_RESP_60] = {164, true, GE_FN_READ_INPUT, 60, 60, 138},
    [WRITE_RESP] = {44, true, GE_FN_WRITE_SINGLE, 94, 1, 18},
    [ERROR_RESP] = {44, true, GE_FN_READ_HOLDING, 1100, 0, 18},
    [HEARTBEAT] = {19, false, 0, 0, 0, 0},
};

START_TEST(test_roundtrip)
{
    uint8_t buf[GE_FRAME_MAX];
    int n = encode_kind(_i, buf, sizeof(buf));
    const struct kind_want *w = &kind_wants[_i];
    ck_assert_int_eq(n, (int)w->len);
    struct ge_frame f;
    enum ge_direction dir = _i == HEARTBEAT ? GE_DIR_ANY
                            : w->response   ? GE_DIR_RESPONSE
                                            : GE_DIR_REQUEST;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, dir, &f), GE_OK);
    ck_assert_uint_eq(f.len, (size_t)n);
    if (_i == HEARTBEAT) {
        ck_assert_uint_eq(f.fid, GE_FID_HEARTBEAT);
        ck_assert_uint_eq(f.adapter_type, 32);
        return;
    }
    ck_assert(f.crc_ok);
    ck_assert_uint_eq(f.inner_len, w->inner_len);
    ck_assert_int_eq(f.response, w->response);
    ck_assert_uint_eq(f.function, w->function);
    ck_assert_uint_eq(f.reg, w->reg);
    ck_assert_uint_eq(f.n_values, (unsigned)w->n_values);
    if (_i == WRITE_REQ || _i == WRITE_RESP)
        ck_assert_uint_eq(f.values[0], 1730);
    if (_i == READ_RESP_60)
        ck_assert_uint_eq(f.values[59], 1059);
    if (_i == ERROR_RESP) {
        ck_assert(f.error);
        ck_assert_uint_eq(f.count, 60);
    }
    if (w->response)
        ck_assert_mem_eq(f.inverter, INVERTER, 10);
    // The direction guessed from the length agrees.
    struct ge_frame g;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_ANY, &g), GE_OK);
    ck_assert_int_eq(g.response, w->response);
    // Requests carry the dummy adapter serial.
    if (!w->response)
        ck_assert_mem_eq(f.adapter, "AB1234G567", 10);
}
END_TEST

// Every prefix of every frame waits for more; nothing is consumed.
START_TEST(test_truncations)
{
    uint8_t buf[GE_FRAME_MAX];
    int n = encode_kind(_i, buf, sizeof(buf));
    for (int cut = 0; cut < n; cut++) {
        struct ge_frame f;
        ck_assert_msg(ge_parse(buf, (size_t)cut, GE_DIR_ANY, &f) == GE_NEED_MORE,
                      "kind %d cut at %d", _i, cut);
        ck_assert_uint_eq(f.len, 0);
    }
}
END_TEST

// Feeds `stream` in pieces of `piece` bytes to a reassembling reader; returns the frames found.
static int feed(const uint8_t *stream, size_t len, size_t piece, enum ge_direction dir,
                struct ge_frame *frames, int max, int *garbage)
{
    uint8_t acc[2048];
    size_t have = 0, off = 0;
    int found = 0;
    *garbage = 0;
    while (off < len || have > 0) {
        size_t take = len - off < piece ? len - off : piece;
        memcpy(acc + have, stream + off, take);
        have += take;
        off += take;
        for (;;) {
            struct ge_frame f;
            enum ge_status st = ge_parse(acc, have, dir, &f);
            if (st == GE_NEED_MORE)
                break;
            if (st == GE_OK && found < max)
                frames[found++] = f;
            else if (st == GE_GARBAGE)
                (*garbage)++;
            memmove(acc, acc + f.len, have - f.len);
            have -= f.len;
        }
        if (take == 0)
            break;
    }
    return found;
}

START_TEST(test_split_and_merge)
{
    uint8_t stream[1024];
    size_t len = 0;
    static const uint8_t junk[] = {0x00, 0x59, 0x59, 0x00, 0x02, 0x59, 0xff};
    memcpy(stream, junk, sizeof(junk));
    len += sizeof(junk);
    len += (size_t)encode_kind(READ_RESP_60, stream + len, sizeof(stream) - len);
    len += (size_t)encode_kind(HEARTBEAT, stream + len, sizeof(stream) - len);
    memcpy(stream + len, junk, sizeof(junk));
    len += sizeof(junk);
    len += (size_t)encode_kind(WRITE_RESP, stream + len, sizeof(stream) - len);
    for (size_t piece = 1; piece <= len; piece++) {
        struct ge_frame frames[4];
        int garbage;
        int n = feed(stream, len, piece, GE_DIR_RESPONSE, frames, 4, &garbage);
        ck_assert_msg(n == 3, "piece %zu: %d frames", piece, n);
        ck_assert_uint_eq(frames[0].n_values, 60);
        ck_assert_uint_eq(frames[1].fid, GE_FID_HEARTBEAT);
        ck_assert_uint_eq(frames[2].values[0], 1730);
        ck_assert_int_gt(garbage, 0);
    }
}
END_TEST

// Impossible headers after the marker: the marker's first byte goes and the scan goes on.
static const struct bad_header {
    const char *name;
    size_t at;
    uint8_t value;
} bad_headers[] = {
    {"length too short", 5, 0x0c}, {"length too long", 4, 0x02}, {"unit id 2", 6, 0x02},
    {"function id 3", 7, 0x03},    {"function id 0", 7, 0x00},
};

START_TEST(test_bad_header)
{
    uint8_t buf[256];
    int n = encode_kind(WRITE_RESP, buf, sizeof(buf));
    int m = encode_kind(READ_RESP_1, buf + n, sizeof(buf) - (size_t)n);
    buf[bad_headers[_i].at] = bad_headers[_i].value;
    struct ge_frame f;
    size_t off = 0;
    int good = 0;
    while (off < (size_t)(n + m)) {
        enum ge_status st = ge_parse(buf + off, (size_t)(n + m) - off, GE_DIR_RESPONSE, &f);
        ck_assert_int_ne(st, GE_NEED_MORE);
        if (st == GE_OK) {
            good++;
            ck_assert_uint_eq(f.reg, 116);
        } else {
            ck_assert_int_eq(st, GE_GARBAGE);
        }
        ck_assert_uint_gt(f.len, 0);
        off += f.len;
    }
    ck_assert_msg(good == 1, "%s: %d good frames", bad_headers[_i].name, good);
}
END_TEST

START_TEST(test_bad_crc)
{
    uint8_t buf[GE_FRAME_MAX];
    int n = encode_kind(READ_RESP_60, buf, sizeof(buf));
    buf[60] ^= 0x01; // a value
    struct ge_frame f;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_OK);
    ck_assert(!f.crc_ok);
    ck_assert_uint_ne(f.crc, f.crc_calc);
    // The adapter serial and the inner length are outside the CRC.
    n = encode_kind(READ_RESP_60, buf, sizeof(buf));
    buf[9] ^= 0x01;
    buf[25] = 0x99;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_OK);
    ck_assert(f.crc_ok);
}
END_TEST

START_TEST(test_all_zero_and_null)
{
    uint8_t buf[GE_FRAME_MAX];
    uint16_t zeros[60] = {0};
    int n = ge_encode_read_response(buf, sizeof(buf), ADAPTER, 0x11, GE_FN_READ_INPUT, INVERTER, 0,
                                    zeros, 60);
    struct ge_frame f;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_OK);
    ck_assert(f.all_zero && f.crc_ok);
    // One zero register is an ordinary value.
    n = ge_encode_read_response(buf, sizeof(buf), ADAPTER, 0x11, GE_FN_READ_INPUT, INVERTER, 59,
                                zeros, 1);
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_OK);
    ck_assert(!f.all_zero);
    // The null response of the library's tests: function 0, all zeros.
    char *hex = "5959 0001 009e 0102 5746 3132 3334 4735 3637 0000 0000 0000 008a 3200";
    size_t len = unhex(hex, buf, sizeof(buf));
    memset(buf + len, 0, 164 - len);
    ck_assert_int_eq(ge_parse(buf, 164, GE_DIR_RESPONSE, &f), GE_IGNORED);
    ck_assert_uint_eq(f.len, 164);
    ck_assert_uint_eq(f.address, 0x32);
}
END_TEST

START_TEST(test_lan_config)
{
    uint8_t buf[128];
    const char *text = ",192.168.1.50,255.255.255.0,192.168.1.1\r\n\r\n";
    size_t tl = strlen(text);
    size_t total = 25 + tl + 2;
    memset(buf, 0, sizeof(buf));
    memcpy(buf, "\x59\x59\x00\x01", 4);
    buf[4] = (uint8_t)((total - 6) >> 8);
    buf[5] = (uint8_t)((total - 6) & 0xff);
    buf[6] = 1;
    buf[7] = 2;
    memcpy(buf + 8, "WO1234G567", 10);
    memcpy(buf + 25, text, tl);
    buf[total - 2] = 0x12;
    buf[total - 1] = 0x34;
    struct ge_frame f;
    ck_assert_int_eq(ge_parse(buf, total, GE_DIR_RESPONSE, &f), GE_IGNORED);
    ck_assert(f.lan_config);
    ck_assert_uint_eq(f.len, total);
}
END_TEST

// Frames whose inner part does not fit.
START_TEST(test_malformed)
{
    uint8_t buf[GE_FRAME_MAX];
    struct ge_frame f;
    // A response read as a request.
    int n = encode_kind(READ_RESP_1, buf, sizeof(buf));
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_REQUEST, &f), GE_BAD_FRAME);
    ck_assert_uint_eq(f.len, (size_t)n);
    // A request read as a response.
    n = encode_kind(READ_REQ, buf, sizeof(buf));
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_BAD_FRAME);
    // A count that disagrees with the values carried.
    n = encode_kind(READ_RESP_60, buf, sizeof(buf));
    buf[41] = 59;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_BAD_FRAME);
    // An unknown inner function.
    n = encode_kind(WRITE_RESP, buf, sizeof(buf));
    buf[27] = 0x10;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_RESPONSE, &f), GE_UNSUPPORTED);
    n = encode_kind(WRITE_REQ, buf, sizeof(buf));
    buf[27] = 0x05;
    ck_assert_int_eq(ge_parse(buf, (size_t)n, GE_DIR_REQUEST, &f), GE_UNSUPPORTED);
    // A heartbeat of the wrong size.
    n = encode_kind(HEARTBEAT, buf, sizeof(buf));
    buf[5] = 14;
    buf[19] = 0;
    ck_assert_int_eq(ge_parse(buf, 20, GE_DIR_ANY, &f), GE_BAD_FRAME);
    // A transparent frame too short to hold an inner frame.
    n = encode_kind(HEARTBEAT, buf, sizeof(buf));
    buf[7] = 2;
    buf[18] = 1;
    ck_assert_int_eq(ge_parse(buf, 19, GE_DIR_ANY, &f), GE_BAD_FRAME);
}
END_TEST

START_TEST(test_encoder_limits)
{
    uint8_t buf[GE_FRAME_MAX];
    uint16_t v[GE_MAX_VALUES + 1] = {0};
    ck_assert_int_eq(ge_encode_read(buf, sizeof(buf), NULL, 0x11, 3, 0, 0), -EINVAL);
    ck_assert_int_eq(ge_encode_read(buf, sizeof(buf), NULL, 0x11, 3, 0, 61), -EINVAL);
    ck_assert_int_eq(ge_encode_read(buf, sizeof(buf), NULL, 0x11, 6, 0, 1), -EINVAL);
    ck_assert_int_eq(ge_encode_read(buf, 33, NULL, 0x11, 3, 0, 60), -ENOSPC);
    ck_assert_int_eq(ge_encode_write(buf, 33, NULL, 0x11, 94, 0), -ENOSPC);
    ck_assert_int_eq(ge_encode_heartbeat(buf, 18, NULL, 1), -ENOSPC);
    ck_assert_int_eq(
        ge_encode_read_response(buf, sizeof(buf), NULL, 0x11, 4, NULL, 0, v, GE_MAX_VALUES + 1),
        -EINVAL);
    ck_assert_int_eq(ge_encode_read_response(buf, 100, NULL, 0x11, 4, NULL, 0, v, 60), -ENOSPC);
    ck_assert_int_eq(ge_encode_read_response(buf, sizeof(buf), NULL, 0x11, 4, NULL, 0, v, 60), 164);
}
END_TEST

// ---- identity --------------------------------------------------------------------------------

static const struct ident_case {
    uint16_t dtc, arm;
    enum ge_family family;
    int generation;
    const char *model; // NULL: none
} ident_cases[] = {
    {0x2001, 449, GE_FAMILY_HYBRID, 1, "givenergy/hybrid"},
    {0x2001, 920, GE_FAMILY_HYBRID, 2, "givenergy/hybrid"},
    {0x2003, 303, GE_FAMILY_HYBRID, 3, "givenergy/hybrid-gen3"},
    {0x3001, 282, GE_FAMILY_AC, 0, "givenergy/ac"},
    {0x8001, 612, GE_FAMILY_AIO, 0, "givenergy/aio"},
    {0x8102, 100, GE_FAMILY_HYBRID, 3, "givenergy/hybrid-gen3"},
    {0x8201, 100, GE_FAMILY_THREE_PHASE, 0, NULL},
    {0x4001, 100, GE_FAMILY_THREE_PHASE, 0, NULL},
    {0x5001, 1036, GE_FAMILY_EMS, 0, NULL},
    {0x7001, 14, GE_FAMILY_GATEWAY, 0, NULL},
    {0x0000, 0, GE_FAMILY_UNKNOWN, 0, NULL},
};

START_TEST(test_identify)
{
    const struct ident_case *c = &ident_cases[_i];
    uint16_t hr[22] = {0};
    hr[0] = c->dtc;
    hr[21] = c->arm;
    hr[13] = 0x4348; // "CH"
    hr[14] = 0x3132;
    hr[15] = 0x3334;
    hr[16] = 0x4735;
    hr[17] = 0x3601; // a control byte shows as '?'
    struct ge_identity id;
    ge_identify(hr, &id);
    ck_assert_int_eq(id.family, c->family);
    ck_assert_int_eq(id.generation, c->generation);
    if (c->model)
        ck_assert_str_eq(id.model, c->model);
    else
        ck_assert_ptr_null(id.model);
    ck_assert_str_eq(id.serial, "CH1234G56?");
    ck_assert_str_ne(ge_family_name(id.family), "");
}
END_TEST

START_TEST(test_family_parse)
{
    enum ge_family fam;
    bool gen3;
    ck_assert_int_eq(ge_family_parse("hybrid_gen3", &fam, &gen3), 0);
    ck_assert(fam == GE_FAMILY_HYBRID && gen3);
    ck_assert_int_eq(ge_family_parse("aio", &fam, &gen3), 0);
    ck_assert(fam == GE_FAMILY_AIO && !gen3);
    ck_assert_int_eq(ge_family_parse("AIO", &fam, &gen3), -EINVAL);
    ck_assert_int_eq(ge_family_parse(NULL, &fam, &gen3), -EINVAL);
}
END_TEST

// ---- the decode command ---------------------------------------------------------------------

static json_t *decode_json(const char *hex)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    char err[256] = "";
    int rc = givenergy_decode(hex, out, err, sizeof(err));
    fclose(out);
    ck_assert_msg(rc == 0, "decode failed: %s", err);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(test_decode_response)
{
    json_t *j = decode_json(golden_text("read-holding-0-60-response-gen1"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "function_id")), "transparent");
    ck_assert_str_eq(json_string_value(json_object_get(j, "adapter_serial")), "WF2125G316");
    ck_assert_str_eq(json_string_value(json_object_get(j, "direction")), "response");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "device_address")), 17);
    ck_assert_str_eq(json_string_value(json_object_get(j, "device_function")), "read_holding");
    ck_assert(json_is_false(json_object_get(j, "error")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "inverter_serial")), "SA2114G047");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "register")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "count")), 60);
    ck_assert_int_eq(json_array_size(json_object_get(j, "values")), 60);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(j, "values"), 0)), 0x2001);
    ck_assert(json_is_true(json_object_get(j, "crc_ok")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "givenergy/hybrid");
    json_decref(j);
}
END_TEST

START_TEST(test_decode_request_and_heartbeat)
{
    json_t *j = decode_json(golden_text("read-input-0-60-request"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "direction")), "request");
    ck_assert_ptr_null(json_object_get(j, "inverter_serial"));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "count")), 60);
    ck_assert_str_eq(json_string_value(json_object_get(j, "device_function")), "read_input");
    json_decref(j);
    j = decode_json(golden_text("heartbeat-wf2125g316"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "function_id")), "heartbeat");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "adapter_type")), 1);
    json_decref(j);
    j = decode_json(golden_text("error-read-input-120"));
    ck_assert(json_is_true(json_object_get(j, "error")));
    ck_assert(json_is_false(json_object_get(j, "crc_ok")));
    json_decref(j);
}
END_TEST

static const struct bad_input {
    const char *hex;
    const char *err_part;
} bad_inputs[] = {
    {"", "no data"},
    {"5g", "not hex"},
    {"1234", "does not start with"},
    {"5959000100", "truncated"},
    {"59590001000d01015746323132354733313601ff", "after the"},
    {"5959000100ff0101574632313235473331360100", "truncated"},
    {"59590001000d03015746323132354733313601", "bad header"},
};

START_TEST(test_decode_errors)
{
    char err[256] = "";
    FILE *out = fopen("/dev/null", "w");
    ck_assert_int_eq(givenergy_decode(bad_inputs[_i].hex, out, err, sizeof(err)), -EINVAL);
    fclose(out);
    ck_assert_msg(strstr(err, bad_inputs[_i].err_part) != NULL, "'%s': %s", bad_inputs[_i].hex,
                  err);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("givenergy_codec");
    TCase *tc = tcase_create("frames");
    tcase_add_test(tc, test_crc_check_value);
    tcase_add_loop_test(tc, test_golden, 0, (int)N(goldens));
    tcase_add_test(tc, test_golden_identity);
    tcase_add_test(tc, test_golden_requests_encoded);
    tcase_add_loop_test(tc, test_roundtrip, 0, HEARTBEAT + 1);
    tcase_add_loop_test(tc, test_truncations, 0, HEARTBEAT + 1);
    tcase_add_test(tc, test_split_and_merge);
    tcase_add_loop_test(tc, test_bad_header, 0, (int)N(bad_headers));
    tcase_add_test(tc, test_bad_crc);
    tcase_add_test(tc, test_all_zero_and_null);
    tcase_add_test(tc, test_lan_config);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_encoder_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("identity");
    tcase_add_loop_test(tc, test_identify, 0, (int)N(ident_cases));
    tcase_add_test(tc, test_family_parse);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_add_test(tc, test_decode_response);
    tcase_add_test(tc, test_decode_request_and_heartbeat);
    tcase_add_loop_test(tc, test_decode_errors, 0, (int)N(bad_inputs));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
