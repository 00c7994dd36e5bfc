// SPDX-License-Identifier: MIT
// Unit tests for register decoding, encoding and read planning (core/regmap).
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/regmap.h"

#define BIG    REG_ORDER_BIG
#define LITTLE REG_ORDER_LITTLE
#define N(a)   (sizeof(a) / sizeof((a)[0]))

static struct reg_format fmt(enum reg_type type, int byte_order, int word_order)
{
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, type, 0), 0);
    f.byte_order = (uint8_t)byte_order;
    f.word_order = (uint8_t)word_order;
    return f;
}

// ---- Decoding known vectors ---------------------------------------------------------------

// Expected registers are written out by hand from the value's big-endian bytes: byte order
// little swaps the two bytes of every register, word order little reverses the registers.
struct vector {
    enum reg_type type;
    int bo, wo;
    uint8_t byte;
    uint16_t regs[4];
    double value;
    bool canonical; // encode(value) gives exactly these registers back
};

static const struct vector vectors[] = {
    {REG_U16, BIG, BIG, 0, {0x1234}, 4660, true},
    {REG_U16, LITTLE, BIG, 0, {0x3412}, 4660, true},
    {REG_U16, BIG, LITTLE, 0, {0x1234}, 4660, true}, // word order is moot for one register
    {REG_U16, BIG, BIG, 0, {0xFFFF}, 65535, true},   // a "not implemented" sentinel stays raw
    {REG_S16, BIG, BIG, 0, {0xFFFE}, -2, true},
    {REG_S16, LITTLE, BIG, 0, {0xFEFF}, -2, true},
    {REG_S16, BIG, BIG, 0, {0x8000}, -32768, true},
    {REG_S16, LITTLE, BIG, 0, {0x0080}, -32768, true},
    {REG_S16, BIG, BIG, 0, {0x7FFF}, 32767, true},

    {REG_U32, BIG, BIG, 0, {0x1234, 0x5678}, 0x12345678, true},
    {REG_U32, LITTLE, BIG, 0, {0x3412, 0x7856}, 0x12345678, true},
    {REG_U32, BIG, LITTLE, 0, {0x5678, 0x1234}, 0x12345678, true},
    {REG_U32, LITTLE, LITTLE, 0, {0x7856, 0x3412}, 0x12345678, true},
    {REG_U32, BIG, BIG, 0, {0xFFFF, 0xFFFF}, 4294967295.0, true},
    {REG_S32, BIG, BIG, 0, {0xFFFE, 0x7960}, -100000, true},
    {REG_S32, LITTLE, BIG, 0, {0xFEFF, 0x6079}, -100000, true},
    {REG_S32, BIG, LITTLE, 0, {0x7960, 0xFFFE}, -100000, true},
    {REG_S32, LITTLE, LITTLE, 0, {0x6079, 0xFEFF}, -100000, true},
    {REG_S32, BIG, BIG, 0, {0x8000, 0x0000}, -2147483648.0, true},
    {REG_S32, BIG, BIG, 0, {0x0001, 0x86A0}, 100000, true},

    {REG_U64, BIG, BIG, 0, {0x0000, 0x0100, 0x0000, 0x0005}, 1099511627781.0, true},
    {REG_U64, LITTLE, BIG, 0, {0x0000, 0x0001, 0x0000, 0x0500}, 1099511627781.0, true},
    {REG_U64, BIG, LITTLE, 0, {0x0005, 0x0000, 0x0100, 0x0000}, 1099511627781.0, true},
    {REG_U64, LITTLE, LITTLE, 0, {0x0500, 0x0000, 0x0001, 0x0000}, 1099511627781.0, true},
    {REG_S64, BIG, BIG, 0, {0xFFFF, 0xFF00, 0x0000, 0x0000}, -1099511627776.0, true},
    {REG_S64, LITTLE, BIG, 0, {0xFFFF, 0x00FF, 0x0000, 0x0000}, -1099511627776.0, true},
    {REG_S64, BIG, LITTLE, 0, {0x0000, 0x0000, 0xFF00, 0xFFFF}, -1099511627776.0, true},
    {REG_S64, LITTLE, LITTLE, 0, {0x0000, 0x0000, 0x00FF, 0xFFFF}, -1099511627776.0, true},
    {REG_S64, BIG, BIG, 0, {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE}, -2, true},
    {REG_S64, BIG, LITTLE, 0, {0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF}, -2, true},
    {REG_S64, BIG, BIG, 0, {0x8000, 0x0000, 0x0000, 0x0000}, -9223372036854775808.0, true},

    {REG_F32, BIG, BIG, 0, {0x4366, 0x8000}, 230.5, true},
    {REG_F32, LITTLE, BIG, 0, {0x6643, 0x0080}, 230.5, true},
    {REG_F32, BIG, LITTLE, 0, {0x8000, 0x4366}, 230.5, true},
    {REG_F32, LITTLE, LITTLE, 0, {0x0080, 0x6643}, 230.5, true},
    {REG_F32, BIG, BIG, 0, {0xBFC0, 0x0000}, -1.5, true},
    {REG_F32, LITTLE, BIG, 0, {0xC0BF, 0x0000}, -1.5, true},
    {REG_F32, BIG, LITTLE, 0, {0x0000, 0xBFC0}, -1.5, true},
    {REG_F32, LITTLE, LITTLE, 0, {0x0000, 0xC0BF}, -1.5, true},
    {REG_F32, BIG, BIG, 0, {0x3E20, 0x0000}, 0.15625, true},

    {REG_F64, BIG, BIG, 0, {0x40FE, 0x240C, 0x9FBE, 0x76C9}, 123456.789, true},
    {REG_F64, LITTLE, BIG, 0, {0xFE40, 0x0C24, 0xBE9F, 0xC976}, 123456.789, true},
    {REG_F64, BIG, LITTLE, 0, {0x76C9, 0x9FBE, 0x240C, 0x40FE}, 123456.789, true},
    {REG_F64, LITTLE, LITTLE, 0, {0xC976, 0xBE9F, 0x0C24, 0xFE40}, 123456.789, true},
    {REG_F64, BIG, BIG, 0, {0xBFF8, 0x0000, 0x0000, 0x0000}, -1.5, true},
    {REG_F64, BIG, LITTLE, 0, {0x0000, 0x0000, 0x0000, 0xBFF8}, -1.5, true},

    // u8/s8 read one byte and ignore the other, so they are not canonical for encoding.
    {REG_U8, BIG, BIG, 0, {0x12AB}, 0x12, false},
    {REG_U8, BIG, BIG, 1, {0x12AB}, 0xAB, false},
    {REG_U8, LITTLE, BIG, 0, {0xAB12}, 0x12, false},
    {REG_U8, LITTLE, BIG, 1, {0xAB12}, 0xAB, false},
    {REG_S8, BIG, BIG, 0, {0x12AB}, 18, false},
    {REG_S8, BIG, BIG, 1, {0x12AB}, -85, false},
    {REG_S8, LITTLE, BIG, 1, {0xAB12}, -85, false},
    {REG_S8, BIG, BIG, 0, {0x80FF}, -128, false},
    {REG_S8, BIG, BIG, 1, {0x80FF}, -1, false},
    {REG_S8, LITTLE, BIG, 0, {0xFF80}, -128, false},
    {REG_U8, BIG, BIG, 0, {0x3400}, 0x34, true},
    {REG_U8, BIG, BIG, 1, {0x0034}, 0x34, true},
    {REG_S8, LITTLE, BIG, 0, {0x00FE}, -2, true},
    {REG_S8, LITTLE, BIG, 1, {0xFE00}, -2, true},

    {REG_BOOL, BIG, BIG, 0, {0x0000}, 0, true},
    {REG_BOOL, BIG, BIG, 0, {0x0001}, 1, true},
    {REG_BOOL, BIG, BIG, 0, {0xFF00}, 1, false},
    {REG_BOOL, LITTLE, BIG, 0, {0x0001}, 1, true},
};

START_TEST(test_decode_vectors)
{
    const struct vector *v = &vectors[_i];
    struct reg_format f = fmt(v->type, v->bo, v->wo);
    f.byte = v->byte;
    double out = -12345;
    ck_assert_int_eq(regmap_decode(&f, v->regs, &out), 0);
    ck_assert_msg(out == v->value, "vector %d (%s): got %.17g, want %.17g", _i,
                  regmap_type_name(v->type), out, v->value);
}
END_TEST

START_TEST(test_encode_vectors)
{
    const struct vector *v = &vectors[_i];
    if (!v->canonical)
        return;
    struct reg_format f = fmt(v->type, v->bo, v->wo);
    f.byte = v->byte;
    uint16_t regs[4] = {0xDEAD, 0xDEAD, 0xDEAD, 0xDEAD};
    ck_assert_int_eq(regmap_encode(&f, v->value, regs), 0);
    for (unsigned k = 0; k < f.words; k++)
        ck_assert_msg(regs[k] == v->regs[k], "vector %d word %u: got 0x%04x, want 0x%04x", _i, k,
                      regs[k], v->regs[k]);
    // Nothing past the value's registers is written.
    for (unsigned k = f.words; k < 4; k++)
        ck_assert_uint_eq(regs[k], 0xDEAD);
}
END_TEST

// ---- Bits ---------------------------------------------------------------------------------

struct bit_case {
    enum reg_type type;
    int bo, wo;
    uint8_t byte;
    int8_t bit;
    uint16_t regs[4];
    int expect_rc;
    double value;
};

static const struct bit_case bit_cases[] = {
    {REG_U16, BIG, BIG, 0, 0, {0x8001}, 0, 1},
    {REG_U16, BIG, BIG, 0, 15, {0x8001}, 0, 1},
    {REG_U16, BIG, BIG, 0, 1, {0x8001}, 0, 0},
    {REG_U16, BIG, BIG, 0, 7, {0x8001}, 0, 0},
    // Byte order little: raw 0x0180 is the value 0x8001, so raw bit 7 is value bit 15.
    {REG_U16, LITTLE, BIG, 0, 15, {0x0180}, 0, 1},
    {REG_U16, LITTLE, BIG, 0, 0, {0x0180}, 0, 1},
    {REG_U16, LITTLE, BIG, 0, 7, {0x0180}, 0, 0},
    {REG_U16, LITTLE, BIG, 0, 8, {0x0180}, 0, 0},
    {REG_S16, BIG, BIG, 0, 15, {0xFFFE}, 0, 1},
    {REG_S16, BIG, BIG, 0, 0, {0xFFFE}, 0, 0},
    {REG_U32, BIG, BIG, 0, 20, {0x0010, 0x0000}, 0, 1},
    {REG_U32, BIG, BIG, 0, 4, {0x0010, 0x0000}, 0, 0},
    {REG_U32, BIG, LITTLE, 0, 20, {0x0000, 0x0010}, 0, 1},
    {REG_U32, BIG, LITTLE, 0, 4, {0x0000, 0x0010}, 0, 0},
    {REG_U32, BIG, BIG, 0, 31, {0x8000, 0x0000}, 0, 1},
    {REG_S32, LITTLE, LITTLE, 0, 31, {0x6079, 0xFEFF}, 0, 1},
    {REG_U64, BIG, BIG, 0, 63, {0x8000, 0x0000, 0x0000, 0x0000}, 0, 1},
    {REG_U64, BIG, BIG, 0, 40, {0x0000, 0x0100, 0x0000, 0x0005}, 0, 1},
    {REG_U64, BIG, BIG, 0, 2, {0x0000, 0x0100, 0x0000, 0x0005}, 0, 1},
    {REG_U64, BIG, BIG, 0, 1, {0x0000, 0x0100, 0x0000, 0x0005}, 0, 0},
    {REG_U8, BIG, BIG, 0, 7, {0x8001}, 0, 1},
    {REG_U8, BIG, BIG, 0, 0, {0x8001}, 0, 0},
    {REG_U8, BIG, BIG, 1, 0, {0x8001}, 0, 1},
    {REG_U8, BIG, BIG, 1, 7, {0x8001}, 0, 0},
    {REG_S8, LITTLE, BIG, 0, 7, {0x0180}, 0, 1},
    {REG_BOOL, BIG, BIG, 0, 0, {0x0100}, 0, 1},
    // Bits beyond the type's width and bits of floats are rejected.
    {REG_U16, BIG, BIG, 0, 16, {0xFFFF}, -EINVAL, 0},
    {REG_U8, BIG, BIG, 0, 8, {0xFFFF}, -EINVAL, 0},
    {REG_U32, BIG, BIG, 0, 32, {0xFFFF, 0xFFFF}, -EINVAL, 0},
    {REG_BOOL, BIG, BIG, 0, 1, {0x0001}, -EINVAL, 0},
    {REG_F32, BIG, BIG, 0, 0, {0x4366, 0x8000}, -EINVAL, 0},
    {REG_U16, BIG, BIG, 0, -2, {0xFFFF}, -EINVAL, 0},
};

START_TEST(test_decode_bits)
{
    const struct bit_case *c = &bit_cases[_i];
    struct reg_format f = fmt(c->type, c->bo, c->wo);
    f.byte = c->byte;
    f.bit = c->bit;
    double out = -7;
    ck_assert_int_eq(regmap_decode(&f, c->regs, &out), c->expect_rc);
    if (c->expect_rc == 0)
        ck_assert_msg(out == c->value, "case %d: got %g, want %g", _i, out, c->value);
    else
        ck_assert(out == -7);
}
END_TEST

START_TEST(test_bit_encode_rejected)
{
    struct reg_format f = fmt(REG_U16, BIG, BIG);
    f.bit = 3;
    uint16_t r = 0x5555;
    ck_assert_int_eq(regmap_encode(&f, 1, &r), -EINVAL);
    ck_assert_uint_eq(r, 0x5555);
}
END_TEST

struct apply_case {
    enum reg_type type;
    int bo;
    uint8_t byte;
    int8_t bit;
    uint16_t current;
    bool on;
    uint16_t expect;
};

static const struct apply_case apply_cases[] = {
    {REG_U16, BIG, 0, 3, 0x0000, true, 0x0008},
    {REG_U16, BIG, 0, 3, 0xFFFF, false, 0xFFF7},
    {REG_U16, BIG, 0, 15, 0x0001, true, 0x8001},
    {REG_U16, BIG, 0, 3, 0x0008, true, 0x0008},
    {REG_U16, LITTLE, 0, 3, 0x0000, true, 0x0800},
    {REG_U16, LITTLE, 0, 15, 0x0000, true, 0x0080},
    {REG_U16, LITTLE, 0, 0, 0xFFFF, false, 0xFEFF},
    {REG_S16, BIG, 0, 0, 0x1230, true, 0x1231},
    {REG_U8, BIG, 0, 1, 0x0000, true, 0x0200},
    {REG_U8, BIG, 1, 1, 0x0000, true, 0x0002},
    {REG_U8, LITTLE, 0, 1, 0x0000, true, 0x0002},
    {REG_U8, LITTLE, 1, 7, 0xFFFF, false, 0x7FFF},
    {REG_BOOL, BIG, 0, 0, 0x0000, true, 0x0001},
    // Formats the helper cannot handle come back unchanged.
    {REG_U16, BIG, 0, -1, 0x1234, true, 0x1234},
    {REG_U32, BIG, 0, 20, 0x1234, true, 0x1234},
    {REG_F32, BIG, 0, 0, 0x1234, false, 0x1234},
};

START_TEST(test_apply_bit)
{
    const struct apply_case *c = &apply_cases[_i];
    struct reg_format f = fmt(c->type, c->bo, BIG);
    f.byte = c->byte;
    f.bit = c->bit;
    ck_assert_uint_eq(regmap_apply_bit(&f, c->current, c->on), c->expect);
}
END_TEST

// apply_bit and decode must agree on which bit is which, and leave the other bits alone.
START_TEST(test_apply_bit_consistent)
{
    const uint16_t patterns[] = {0x0000, 0xFFFF, 0xA5C3, 0x1234};
    for (int bo = BIG; bo <= LITTLE; bo++) {
        for (int bit = 0; bit < 16; bit++) {
            for (size_t p = 0; p < N(patterns); p++) {
                for (int on = 0; on <= 1; on++) {
                    struct reg_format f = fmt(REG_U16, bo, BIG);
                    f.bit = (int8_t)bit;
                    uint16_t r = regmap_apply_bit(&f, patterns[p], on);
                    double v;
                    ck_assert_int_eq(regmap_decode(&f, &r, &v), 0);
                    ck_assert(v == on);
                    for (int other = 0; other < 16; other++) {
                        if (other == bit)
                            continue;
                        double a, b;
                        f.bit = (int8_t)other;
                        ck_assert_int_eq(regmap_decode(&f, &r, &a), 0);
                        ck_assert_int_eq(regmap_decode(&f, &patterns[p], &b), 0);
                        ck_assert(a == b);
                    }
                }
            }
        }
    }
}
END_TEST

// ---- Strings ------------------------------------------------------------------------------

struct string_case {
    uint8_t words;
    int bo, wo;
    uint16_t regs[8];
    size_t out_size;
    const char *expect;
};

static const struct string_case string_cases[] = {
    {2, BIG, BIG, {0x4142, 0x4300}, 32, "ABC"},
    {2, BIG, LITTLE, {0x4142, 0x4300}, 32, "ABC"}, // word order does not apply to text
    {2, LITTLE, BIG, {0x4241, 0x0043}, 32, "ABC"},
    {3, BIG, BIG, {0x4142, 0x2043, 0x2020}, 32, "AB C"},
    {3, BIG, BIG, {0x4142, 0x2000, 0x2000}, 32, "AB"},
    {2, BIG, BIG, {0x2041, 0x2020}, 32, " A"}, // leading spaces stay
    {2, BIG, BIG, {0x4101, 0x7F42}, 32, "A??B"},
    {1, BIG, BIG, {0xC3A9}, 32, "??"},
    {2, BIG, BIG, {0x4100, 0x4200}, 32, "A?B"}, // only trailing NULs are trimmed
    {2, BIG, BIG, {0x0000, 0x0000}, 32, ""},
    {2, BIG, BIG, {0x2020, 0x2000}, 32, ""},
    {3, BIG, BIG, {0x4142, 0x4344, 0x4546}, 32, "ABCDEF"},
    {3, BIG, BIG, {0x4142, 0x4344, 0x4546}, 7, "ABCDEF"},
    {3, BIG, BIG, {0x4142, 0x4344, 0x4546}, 4, "ABC"},
    {3, BIG, BIG, {0x4142, 0x2043, 0x4445}, 4, "AB"}, // cut "AB " then trimmed
    {3, BIG, BIG, {0x4142, 0x4344, 0x4546}, 1, ""},
    {8,
     BIG,
     BIG,
     {0x5345, 0x5249, 0x414C, 0x2D31, 0x3233, 0x3435, 0x0000, 0x0000},
     32,
     "SERIAL-12345"},
};

START_TEST(test_decode_string)
{
    const struct string_case *c = &string_cases[_i];
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, c->words), 0);
    f.byte_order = (uint8_t)c->bo;
    f.word_order = (uint8_t)c->wo;
    char out[40];
    memset(out, 'Z', sizeof out);
    size_t n = regmap_decode_string(&f, c->regs, out, c->out_size);
    ck_assert_str_eq(out, c->expect);
    ck_assert_uint_eq(n, strlen(c->expect));
    // Nothing is written past out_size.
    for (size_t k = c->out_size; k < sizeof out; k++)
        ck_assert_int_eq(out[k], 'Z');
}
END_TEST

START_TEST(test_string_misuse)
{
    struct reg_format f;
    uint16_t regs[2] = {0x4142, 0x4344};
    double v = 3;
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, 2), 0);
    ck_assert_int_eq(regmap_decode(&f, regs, &v), -EINVAL);
    ck_assert(v == 3);
    ck_assert_int_eq(regmap_encode(&f, 1, regs), -EINVAL);

    char out[8] = "junk";
    f = fmt(REG_U16, BIG, BIG);
    ck_assert_uint_eq(regmap_decode_string(&f, regs, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(regmap_decode_string(&f, regs, NULL, 0), 0);
}
END_TEST

// ---- Times of day (time_hm, time_hhmm) ----------------------------------------------------

static const struct time_case {
    int bo;
    uint16_t reg;
    const char *text; // as decoded
    int encode_rc;    // encoding `text` back
} time_cases[] = {
    {BIG, 0x1530, "21:48", 0},    // hour 0x15, minute 0x30
    {BIG, 0x0000, "00:00", 0},    // midnight
    {BIG, 0x173B, "23:59", 0},    // the last minute
    {LITTLE, 0x1E15, "21:30", 0}, // LuxPower: hour in the first (low) byte
    {LITTLE, 0x1E02, "02:30", 0},
    {BIG, 0x183C, "24:60", -ERANGE}, // garbage shows as it is and cannot be written back
    {BIG, 0xFFFF, "255:255", -EINVAL},
};

START_TEST(test_time_hm)
{
    const struct time_case *c = &time_cases[_i];
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, REG_TIME_HM, 0), 0);
    ck_assert_uint_eq(f.words, 1);
    f.byte_order = (uint8_t)c->bo;
    char out[16];
    ck_assert_uint_eq(regmap_decode_string(&f, &c->reg, out, sizeof out), strlen(c->text));
    ck_assert_str_eq(out, c->text);
    uint16_t back = 0x5a5a;
    ck_assert_int_eq(regmap_encode_text(&f, c->text, &back), c->encode_rc);
    if (c->encode_rc == 0)
        ck_assert_uint_eq(back, c->reg);
    else
        ck_assert_uint_eq(back, 0x5a5a);
}
END_TEST

// GivEnergy slots: the decimal number hour * 100 + minute.
static const struct time_case hhmm_cases[] = {
    {BIG, 1730, "17:30", 0},
    {BIG, 0, "00:00", 0},
    {BIG, 2359, "23:59", 0},
    {BIG, 5, "00:05", 0},
    {BIG, 130, "01:30", 0},
    {BIG, 60, "--:--", -EINVAL},   // the "unset" value some firmware stores, not 00:60
    {BIG, 2400, "24:00", -ERANGE}, // garbage shows as it is and cannot be written back
    {BIG, 1275, "12:75", -ERANGE},
    {BIG, 65535, "655:35", -EINVAL},
    {LITTLE, 0xC206, "17:30", 0}, // 1730 = 0x06C2 with its bytes swapped
};

START_TEST(test_time_hhmm)
{
    const struct time_case *c = &hhmm_cases[_i];
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, REG_TIME_HHMM, 0), 0);
    ck_assert_uint_eq(f.words, 1);
    f.byte_order = (uint8_t)c->bo;
    char out[16];
    ck_assert_uint_eq(regmap_decode_string(&f, &c->reg, out, sizeof out), strlen(c->text));
    ck_assert_str_eq(out, c->text);
    uint16_t back = 0x5a5a;
    ck_assert_int_eq(regmap_encode_text(&f, c->text, &back), c->encode_rc);
    if (c->encode_rc == 0)
        ck_assert_uint_eq(back, c->reg);
    else
        ck_assert_uint_eq(back, 0x5a5a);
}
END_TEST

START_TEST(test_time_hhmm_text)
{
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, REG_TIME_HHMM, 0), 0);
    uint16_t r = 0;
    ck_assert_int_eq(regmap_encode_text(&f, "7:05", &r), 0);
    ck_assert_uint_eq(r, 705);
    ck_assert_int_eq(regmap_encode_text(&f, "00:60", &r), -ERANGE);
    ck_assert_int_eq(regmap_encode_text(&f, "24:00", &r), -ERANGE);
    ck_assert_int_eq(regmap_encode_text(&f, "1730", &r), -EINVAL);
    ck_assert_int_eq(regmap_encode_text(&f, "--:--", &r), -EINVAL);
    double v = 1;
    ck_assert_int_eq(regmap_decode(&f, &r, &v), -EINVAL);
    ck_assert_int_eq(regmap_encode(&f, 1730, &r), -EINVAL);
    ck_assert(regmap_type_is_text(REG_TIME_HHMM) && !regmap_type_is_integer(REG_TIME_HHMM));
    ck_assert_str_eq(regmap_type_name(REG_TIME_HHMM), "time_hhmm");
    // A short buffer still ends in a NUL.
    r = 1730;
    char small[3];
    ck_assert_uint_eq(regmap_decode_string(&f, &r, small, sizeof small), 2);
    ck_assert_str_eq(small, "17");
}
END_TEST

START_TEST(test_time_hm_text)
{
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, REG_TIME_HM, 0), 0);
    uint16_t r = 0;
    ck_assert_int_eq(regmap_encode_text(&f, "7:05", &r), 0);
    ck_assert_uint_eq(r, 0x0705);
    static const char *const bad[] = {"",       "7",     "7:5",    "07:5",   "007:05",
                                      "07:005", "07-05", " 07:05", "07:05 ", "ab:cd",
                                      "07:0x",  ":05",   "07:"};
    for (size_t i = 0; i < N(bad); i++)
        ck_assert_msg(regmap_encode_text(&f, bad[i], &r) == -EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(regmap_encode_text(&f, "24:00", &r), -ERANGE);
    ck_assert_int_eq(regmap_encode_text(&f, "23:60", &r), -ERANGE);
    // A time holds no number; only text types decode to text.
    double v = 1;
    ck_assert_int_eq(regmap_decode(&f, &r, &v), -EINVAL);
    ck_assert_int_eq(regmap_encode(&f, 5, &r), -EINVAL);
    ck_assert(regmap_type_is_text(REG_TIME_HM) && regmap_type_is_text(REG_STRING));
    ck_assert(!regmap_type_is_text(REG_U16) && !regmap_type_is_integer(REG_TIME_HM));
    struct reg_format u = fmt(REG_U16, BIG, BIG);
    ck_assert_int_eq(regmap_encode_text(&u, "07:05", &r), -EINVAL);
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, 2), 0);
    ck_assert_int_eq(regmap_encode_text(&f, "AB", &r), -EINVAL);
}
END_TEST

// ---- Non-finite floats --------------------------------------------------------------------

struct nonfinite_case {
    enum reg_type type;
    int wo;
    uint16_t regs[4];
};

static const struct nonfinite_case nonfinite_cases[] = {
    {REG_F32, BIG, {0x7FC0, 0x0000}},                    // quiet NaN, the SunSpec "no value"
    {REG_F32, BIG, {0xFFC0, 0x0000}},                    // negative NaN
    {REG_F32, BIG, {0x7F80, 0x0000}},                    // +inf
    {REG_F32, BIG, {0xFF80, 0x0000}},                    // -inf
    {REG_F32, LITTLE, {0x0000, 0x7FC0}},                 // NaN, low word first
    {REG_F32, BIG, {0x7F80, 0x0001}},                    // signalling NaN
    {REG_F64, BIG, {0x7FF8, 0x0000, 0x0000, 0x0000}},    // NaN
    {REG_F64, BIG, {0x7FF0, 0x0000, 0x0000, 0x0000}},    // +inf
    {REG_F64, LITTLE, {0x0000, 0x0000, 0x0000, 0xFFF0}}, // -inf
};

START_TEST(test_decode_nonfinite)
{
    const struct nonfinite_case *c = &nonfinite_cases[_i];
    struct reg_format f = fmt(c->type, BIG, c->wo);
    double out = 42;
    ck_assert_int_eq(regmap_decode(&f, c->regs, &out), -ERANGE);
    ck_assert(out == 42);
}
END_TEST

// ---- Encoding -----------------------------------------------------------------------------

struct encode_case {
    enum reg_type type;
    double raw;
    int expect_rc;
};

static const struct encode_case encode_cases[] = {
    {REG_U16, 65536, -ERANGE},
    {REG_U16, -1, -ERANGE},
    {REG_U16, 1.5, -ERANGE},
    {REG_U16, 65535, 0},
    {REG_U16, 0, 0},
    {REG_S16, -32769, -ERANGE},
    {REG_S16, 32768, -ERANGE},
    {REG_S16, -32768, 0},
    {REG_S16, -0.5, -ERANGE},
    {REG_U32, 4294967296.0, -ERANGE},
    {REG_U32, 4294967295.0, 0},
    {REG_U32, 2.25, -ERANGE},
    {REG_S32, 2147483648.0, -ERANGE},
    {REG_S32, -2147483649.0, -ERANGE},
    {REG_S32, -2147483648.0, 0},
    {REG_U64, -1, -ERANGE},
    {REG_U64, 18446744073709551616.0, -ERANGE},
    {REG_U64, 18446744073709549568.0, 0}, // the largest double below 2^64
    {REG_U64, 0.5, -ERANGE},
    {REG_S64, 9223372036854775808.0, -ERANGE},
    {REG_S64, -9223372036854775808.0, 0},
    {REG_S64, -1e19, -ERANGE},
    {REG_U8, 256, -ERANGE},
    {REG_U8, 255, 0},
    {REG_S8, -129, -ERANGE},
    {REG_S8, 128, -ERANGE},
    {REG_S8, -128, 0},
    {REG_BOOL, 2, -ERANGE},
    {REG_BOOL, 0.5, -ERANGE},
    {REG_BOOL, -1, -ERANGE},
    {REG_BOOL, 1, 0},
    {REG_F32, 1e39, -ERANGE},
    {REG_F32, -1e39, -ERANGE},
    {REG_F32, 1.5, 0},
    {REG_F32, 0.1, 0}, // rounded to the nearest float, not an error
    {REG_F32, NAN, -ERANGE},
    {REG_F64, INFINITY, -ERANGE},
    {REG_F64, 1e300, 0},
    {REG_U16, NAN, -ERANGE},
    {REG_S32, -INFINITY, -ERANGE},
};

START_TEST(test_encode_range)
{
    const struct encode_case *c = &encode_cases[_i];
    struct reg_format f = fmt(c->type, BIG, BIG);
    uint16_t regs[4] = {0xBEEF, 0xBEEF, 0xBEEF, 0xBEEF};
    int rc = regmap_encode(&f, c->raw, regs);
    ck_assert_msg(rc == c->expect_rc, "case %d (%s %.17g): rc %d, want %d", _i,
                  regmap_type_name(c->type), c->raw, rc, c->expect_rc);
    if (rc < 0) {
        for (size_t k = 0; k < N(regs); k++)
            ck_assert_uint_eq(regs[k], 0xBEEF);
    }
}
END_TEST

// Every type in every order combination: decode(encode(x)) == x.
static const enum reg_type roundtrip_types[] = {REG_U16, REG_S16, REG_U32, REG_S32,
                                                REG_U64, REG_S64, REG_F32, REG_F64,
                                                REG_U8,  REG_S8,  REG_BOOL};

static const double roundtrip_values[][6] = {
    [REG_U16] = {0, 1, 255, 256, 0xABCD, 65535},
    [REG_S16] = {0, -1, 1, -32768, 32767, -300},
    [REG_U32] = {0, 1, 65536, 0x12345678, 4294967295.0, 0xFFFF0001},
    [REG_S32] = {0, -1, -100000, 2147483647.0, -2147483648.0, 65535},
    [REG_U64] = {0, 1, 1099511627781.0, 9007199254740994.0, 18446744073709549568.0, 65536},
    [REG_S64] = {0, -1, -1099511627776.0, -9007199254740992.0, 9223372036854774784.0, 42},
    [REG_F32] = {0, -1.5, 230.5, 1e-30, -3.4e38, 0.15625},
    [REG_F64] = {0, -1.5, 123456.789, 1e-300, -1.7e308, 2.2250738585072014e-308},
    [REG_U8] = {0, 1, 127, 128, 254, 255},
    [REG_S8] = {0, -1, 1, -128, 127, -2},
    [REG_BOOL] = {0, 1, 0, 1, 1, 0},
};

START_TEST(test_roundtrip)
{
    enum reg_type type = roundtrip_types[_i / 4];
    int bo = _i % 2, wo = (_i / 2) % 2;
    for (uint8_t byte = 0; byte <= 1; byte++) {
        for (size_t k = 0; k < 6; k++) {
            double x = roundtrip_values[type][k];
            if (type == REG_F32)
                x = (float)x; // only float-representable values survive exactly
            struct reg_format f = fmt(type, bo, wo);
            if (type == REG_U8 || type == REG_S8)
                f.byte = byte;
            uint16_t regs[4] = {0};
            ck_assert_int_eq(regmap_encode(&f, x, regs), 0);
            double y = -999;
            ck_assert_int_eq(regmap_decode(&f, regs, &y), 0);
            ck_assert_msg(x == y, "%s bo %d wo %d byte %u: %.17g -> %.17g", regmap_type_name(type),
                          bo, wo, byte, x, y);
        }
    }
}
END_TEST

START_TEST(test_encode_u8_other_byte_zero)
{
    struct reg_format f = fmt(REG_U8, BIG, BIG);
    uint16_t r = 0xFFFF;
    f.byte = 0;
    ck_assert_int_eq(regmap_encode(&f, 0x12, &r), 0);
    ck_assert_uint_eq(r, 0x1200);
    f.byte = 1;
    ck_assert_int_eq(regmap_encode(&f, 0x12, &r), 0);
    ck_assert_uint_eq(r, 0x0012);
    f.byte_order = LITTLE;
    ck_assert_int_eq(regmap_encode(&f, 0x12, &r), 0);
    ck_assert_uint_eq(r, 0x1200);
}
END_TEST

// ---- Types and formats --------------------------------------------------------------------

START_TEST(test_type_names)
{
    static const struct {
        const char *name;
        enum reg_type type;
        bool integer;
    } names[] = {
        {"u16", REG_U16, true},
        {"s16", REG_S16, true},
        {"u32", REG_U32, true},
        {"s32", REG_S32, true},
        {"u64", REG_U64, true},
        {"s64", REG_S64, true},
        {"float32", REG_F32, false},
        {"float64", REG_F64, false},
        {"u8", REG_U8, true},
        {"s8", REG_S8, true},
        {"bool", REG_BOOL, true},
        {"string", REG_STRING, false},
        {"time_hm", REG_TIME_HM, false},
        {"time_hhmm", REG_TIME_HHMM, false},
    };
    for (size_t i = 0; i < N(names); i++) {
        enum reg_type t = REG_STRING;
        if (names[i].type == REG_STRING)
            t = REG_U16;
        ck_assert_int_eq(regmap_type_parse(names[i].name, &t), 0);
        ck_assert_int_eq(t, names[i].type);
        ck_assert_str_eq(regmap_type_name(t), names[i].name);
        ck_assert(regmap_type_is_integer(t) == names[i].integer);
    }
    static const char *const bad[] = {"", "U16", "float", "f32", "int16", "u16 ", "uint16"};
    for (size_t i = 0; i < N(bad); i++) {
        enum reg_type t = REG_U32;
        ck_assert_int_eq(regmap_type_parse(bad[i], &t), -EINVAL);
        ck_assert_int_eq(t, REG_U32);
    }
    ck_assert_int_eq(regmap_type_parse(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_type_range)
{
    static const struct {
        enum reg_type type;
        double min, max;
    } ranges[] = {
        {REG_U16, 0, 65535},
        {REG_S16, -32768, 32767},
        {REG_U32, 0, 4294967295.0},
        {REG_S32, -2147483648.0, 2147483647.0},
        {REG_U64, 0, 18446744073709551615.0},
        {REG_S64, -9223372036854775808.0, 9223372036854775807.0},
        {REG_F32, -FLT_MAX, FLT_MAX},
        {REG_F64, -DBL_MAX, DBL_MAX},
        {REG_U8, 0, 255},
        {REG_S8, -128, 127},
        {REG_BOOL, 0, 1},
    };
    for (size_t i = 0; i < N(ranges); i++) {
        double lo = 1, hi = -1;
        regmap_type_range(ranges[i].type, &lo, &hi);
        ck_assert_msg(lo == ranges[i].min && hi == ranges[i].max, "%s: %g..%g",
                      regmap_type_name(ranges[i].type), lo, hi);
    }
}
END_TEST

START_TEST(test_format_init)
{
    static const struct {
        enum reg_type type;
        uint8_t words;
    } sizes[] = {
        {REG_U16, 1}, {REG_S16, 1}, {REG_U32, 2}, {REG_S32, 2}, {REG_U64, 4},  {REG_S64, 4},
        {REG_F32, 2}, {REG_F64, 4}, {REG_U8, 1},  {REG_S8, 1},  {REG_BOOL, 1},
    };
    for (size_t i = 0; i < N(sizes); i++) {
        struct reg_format f;
        memset(&f, 0x55, sizeof f);
        // The string word count is ignored for fixed-size types.
        ck_assert_int_eq(regmap_format_init(&f, sizes[i].type, 9), 0);
        ck_assert_int_eq(f.type, sizes[i].type);
        ck_assert_uint_eq(f.words, sizes[i].words);
        ck_assert_int_eq(f.bit, -1);
        ck_assert_uint_eq(f.byte_order, REG_ORDER_BIG);
        ck_assert_uint_eq(f.word_order, REG_ORDER_BIG);
        ck_assert_uint_eq(f.byte, 0);
    }
    struct reg_format f;
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, 1), 0);
    ck_assert_uint_eq(f.words, 1);
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, 64), 0);
    ck_assert_uint_eq(f.words, 64);
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, 0), -EINVAL);
    ck_assert_int_eq(regmap_format_init(&f, REG_STRING, 65), -EINVAL);
    ck_assert_int_eq(regmap_format_init(&f, (enum reg_type)99, 0), -EINVAL);
}
END_TEST

// Formats that were not built by regmap_format_init() must not read past their registers.
START_TEST(test_invalid_formats)
{
    uint16_t regs[4] = {1, 2, 3, 4};
    double v = 5;
    struct reg_format f = fmt(REG_U32, BIG, BIG);
    f.words = 1;
    ck_assert_int_eq(regmap_decode(&f, regs, &v), -EINVAL);
    ck_assert_int_eq(regmap_encode(&f, 1, regs), -EINVAL);
    f = fmt(REG_U16, BIG, BIG);
    f.byte_order = 2;
    ck_assert_int_eq(regmap_decode(&f, regs, &v), -EINVAL);
    f = fmt(REG_U16, BIG, BIG);
    f.word_order = 7;
    ck_assert_int_eq(regmap_decode(&f, regs, &v), -EINVAL);
    f = fmt(REG_U8, BIG, BIG);
    f.byte = 2;
    ck_assert_int_eq(regmap_decode(&f, regs, &v), -EINVAL);
    ck_assert(v == 5);
    ck_assert_int_eq(regmap_decode(NULL, regs, &v), -EINVAL);
}
END_TEST

// ---- Read planner -------------------------------------------------------------------------

#define MAX_SPANS  8
#define MAX_BLOCKS 8

struct plan_case {
    const char *name;
    struct reg_span spans[MAX_SPANS];
    size_t n_spans;
    struct reg_limits limits[2];
    size_t n_tables;
    size_t out_cap; // 0 means MAX_BLOCKS
    int expect_rc;  // number of blocks, or a negative errno
    size_t expect_bad;
    struct reg_block blocks[MAX_BLOCKS];
};

// Spans are {table, group, address, count}; blocks {table, group, start, count}.
static const struct plan_case plan_cases[] = {
    {"single span", {{0, 0, 100, 2}}, 1, {{125, 10, 0}}, 1, 0, 1, 0, {{0, 0, 100, 2}}},
    {"overlapping spans merge",
     {{0, 0, 100, 4}, {0, 0, 102, 4}, {0, 0, 101, 1}},
     3,
     {{125, 0, 0}},
     1,
     0,
     1,
     0,
     {{0, 0, 100, 6}}},
    {"contained span",
     {{0, 0, 100, 10}, {0, 0, 102, 2}},
     2,
     {{125, 0, 0}},
     1,
     0,
     1,
     0,
     {{0, 0, 100, 10}}},
    {"gap of exactly max_gap is bridged",
     {{0, 0, 100, 2}, {0, 0, 112, 2}},
     2,
     {{125, 10, 0}},
     1,
     0,
     1,
     0,
     {{0, 0, 100, 14}}},
    {"gap of max_gap + 1 is not bridged",
     {{0, 0, 100, 2}, {0, 0, 113, 2}},
     2,
     {{125, 10, 0}},
     1,
     0,
     2,
     0,
     {{0, 0, 100, 2}, {0, 0, 113, 2}}},
    {"adjacent spans merge with max_gap 0",
     {{0, 0, 100, 2}, {0, 0, 102, 2}},
     2,
     {{125, 0, 0}},
     1,
     0,
     1,
     0,
     {{0, 0, 100, 4}}},
    {"one register apart with max_gap 0",
     {{0, 0, 100, 2}, {0, 0, 103, 1}},
     2,
     {{125, 0, 0}},
     1,
     0,
     2,
     0,
     {{0, 0, 100, 2}, {0, 0, 103, 1}}},
    {"max_count splits",
     {{0, 0, 0, 4}, {0, 0, 4, 4}, {0, 0, 8, 4}},
     3,
     {{10, 100, 0}},
     1,
     0,
     2,
     0,
     {{0, 0, 0, 8}, {0, 0, 8, 4}}},
    {"merge up to exactly max_count",
     {{0, 0, 0, 5}, {0, 0, 5, 5}},
     2,
     {{10, 0, 0}},
     1,
     0,
     1,
     0,
     {{0, 0, 0, 10}}},
    {"bridged gap counts against max_count",
     {{0, 0, 0, 2}, {0, 0, 9, 2}},
     2,
     {{10, 20, 0}},
     1,
     0,
     2,
     0,
     {{0, 0, 0, 2}, {0, 0, 9, 2}}},
    {"overlap beyond max_count starts an overlapping block",
     {{0, 0, 0, 8}, {0, 0, 6, 8}},
     2,
     {{10, 0, 0}},
     1,
     0,
     2,
     0,
     {{0, 0, 0, 8}, {0, 0, 6, 8}}},
    {"different groups never merge",
     {{0, 1, 100, 2}, {0, 0, 102, 2}},
     2,
     {{125, 10, 0}},
     1,
     0,
     2,
     0,
     {{0, 0, 102, 2}, {0, 1, 100, 2}}},
    {"different tables never merge",
     {{1, 0, 100, 2}, {0, 0, 100, 2}, {1, 0, 101, 3}},
     3,
     {{125, 10, 0}, {125, 10, 0}},
     2,
     0,
     2,
     0,
     {{0, 0, 100, 2}, {1, 0, 100, 4}}},
    {"per-table limits",
     {{0, 0, 0, 1}, {0, 0, 5, 1}, {1, 0, 0, 1}, {1, 0, 5, 1}},
     4,
     {{125, 0, 0}, {125, 10, 0}},
     2,
     0,
     3,
     0,
     {{0, 0, 0, 1}, {0, 0, 5, 1}, {1, 0, 0, 6}}},
    {"order is group, table, start",
     {{1, 0, 10, 1}, {0, 2, 0, 1}, {0, 0, 500, 1}, {1, 2, 0, 1}, {0, 0, 10, 1}},
     5,
     {{125, 0, 0}, {125, 0, 0}},
     2,
     0,
     5,
     0,
     {{0, 0, 10, 1}, {0, 0, 500, 1}, {1, 0, 10, 1}, {0, 2, 0, 1}, {1, 2, 0, 1}}},
    {"unsorted input",
     {{0, 0, 200, 2}, {0, 0, 100, 2}, {0, 0, 150, 2}, {0, 0, 101, 4}},
     4,
     {{125, 0, 0}},
     1,
     0,
     3,
     0,
     {{0, 0, 100, 5}, {0, 0, 150, 2}, {0, 0, 200, 2}}},
    {"aligned pages stay apart at max_count 40",
     {{0, 0, 45, 2}, {0, 0, 5, 2}},
     2,
     {{40, 0, 40}},
     1,
     0,
     2,
     0,
     {{0, 0, 0, 40}, {0, 0, 40, 40}}},
    {"aligned adjacent pages merge at max_count 120",
     {{0, 0, 5, 2}, {0, 0, 45, 2}},
     2,
     {{120, 0, 40}},
     1,
     0,
     1,
     0,
     {{0, 0, 0, 80}}},
    {"aligned pages are not bridged by max_gap",
     {{0, 0, 5, 2}, {0, 0, 85, 2}},
     2,
     {{120, 100, 40}},
     1,
     0,
     2,
     0,
     {{0, 0, 0, 40}, {0, 0, 80, 40}}},
    {"aligned pages merge up to max_count",
     {{0, 0, 5, 1}, {0, 0, 45, 1}, {0, 0, 85, 1}, {0, 0, 39, 1}},
     4,
     {{80, 0, 40}},
     1,
     0,
     2,
     0,
     {{0, 0, 0, 80}, {0, 0, 80, 40}}},
    {"aligned span across pages fits two pages",
     {{0, 0, 38, 4}},
     1,
     {{80, 0, 40}},
     1,
     0,
     1,
     0,
     {{0, 0, 0, 80}}},
    {"aligned span across pages exceeds max_count",
     {{0, 0, 0, 1}, {0, 0, 38, 4}},
     2,
     {{40, 0, 40}},
     1,
     0,
     -E2BIG,
     1,
     {{0}}},
    {"aligned page larger than max_count",
     {{0, 0, 5, 2}},
     1,
     {{40, 0, 50}},
     1,
     0,
     -E2BIG,
     0,
     {{0}}},
    {"aligned page cut at the end of the address space",
     {{0, 0, 65530, 6}},
     1,
     {{40, 0, 40}},
     1,
     0,
     1,
     0,
     {{0, 0, 65520, 16}}},
    {"span longer than max_count",
     {{0, 0, 0, 2}, {0, 0, 10, 126}},
     2,
     {{125, 10, 0}},
     1,
     0,
     -E2BIG,
     1,
     {{0}}},
    {"span of exactly max_count",
     {{0, 0, 10, 125}},
     1,
     {{125, 10, 0}},
     1,
     0,
     1,
     0,
     {{0, 0, 10, 125}}},
    {"out_cap too small",
     {{0, 0, 0, 1}, {0, 0, 100, 1}, {0, 0, 200, 1}},
     3,
     {{125, 0, 0}},
     1,
     2,
     -ENOSPC,
     0,
     {{0}}},
    {"out_cap exactly enough",
     {{0, 0, 0, 1}, {0, 0, 100, 1}, {0, 0, 200, 1}},
     3,
     {{125, 0, 0}},
     1,
     3,
     3,
     0,
     {{0, 0, 0, 1}, {0, 0, 100, 1}, {0, 0, 200, 1}}},
    {"count 0", {{0, 0, 0, 1}, {0, 0, 5, 0}}, 2, {{125, 0, 0}}, 1, 0, -EINVAL, 1, {{0}}},
    {"span crossing 65536", {{0, 0, 65535, 2}}, 1, {{125, 0, 0}}, 1, 0, -EINVAL, 0, {{0}}},
    {"address beyond 65535", {{0, 0, 70000, 1}}, 1, {{125, 0, 0}}, 1, 0, -EINVAL, 0, {{0}}},
    {"span ending at 65536", {{0, 0, 65534, 2}}, 1, {{125, 0, 0}}, 1, 0, 1, 0, {{0, 0, 65534, 2}}},
    {"unknown table", {{0, 0, 0, 1}, {2, 0, 0, 1}}, 2, {{125, 0, 0}}, 1, 0, -EINVAL, 1, {{0}}},
    {"no spans", {{0}}, 0, {{125, 0, 0}}, 1, 0, 0, 0, {{0}}},
};

START_TEST(test_plan)
{
    const struct plan_case *c = &plan_cases[_i];
    struct reg_block out[MAX_BLOCKS];
    memset(out, 0xAA, sizeof out);
    size_t bad = 9999;
    size_t cap = c->out_cap ? c->out_cap : MAX_BLOCKS;
    int rc = regmap_plan(c->spans, c->n_spans, c->limits, c->n_tables, out, cap, &bad);
    ck_assert_msg(rc == c->expect_rc, "%s: rc %d, want %d", c->name, rc, c->expect_rc);
    if (rc == -E2BIG || rc == -EINVAL)
        ck_assert_msg(bad == c->expect_bad, "%s: bad_span %zu, want %zu", c->name, bad,
                      c->expect_bad);
    for (int k = 0; k < rc; k++) {
        const struct reg_block *g = &out[k], *w = &c->blocks[k];
        ck_assert_msg(g->table == w->table && g->group == w->group && g->start == w->start &&
                          g->count == w->count,
                      "%s: block %d is t%u g%u %u+%u, want t%u g%u %u+%u", c->name, k, g->table,
                      g->group, g->start, g->count, w->table, w->group, w->start, w->count);
    }
}
END_TEST

START_TEST(test_plan_enospc_without_output)
{
    const struct reg_span span = {0, 0, 0, 1};
    const struct reg_limits lim = {125, 0, 0};
    ck_assert_int_eq(regmap_plan(&span, 1, &lim, 1, NULL, 0, NULL), -ENOSPC);
    ck_assert_int_eq(regmap_plan(&span, 0, &lim, 1, NULL, 0, NULL), 0);
}
END_TEST

// Properties of random plans: blocks are sorted, within limits, cover every span in a single
// block, never start or end in unused registers (unaligned) or off a page (aligned), and
// blocks of the same group and table that could have merged did.
static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xFFFFFF;
}

START_TEST(test_plan_random)
{
    enum { SPANS = 40, BLOCKS = 64 };
    for (int iter = 0; iter < 2000; iter++) {
        struct reg_limits lim[2] = {
            {(uint16_t)(20 + rng() % 110), (uint16_t)(rng() % 12), 0},
            {0, 0, (uint16_t)(1 + rng() % 50)},
        };
        lim[1].max_count = (uint16_t)(lim[1].align * (2 + rng() % 3));
        struct reg_span spans[SPANS];
        size_t n = 1 + rng() % SPANS;
        for (size_t i = 0; i < n; i++) {
            spans[i].table = (uint8_t)(rng() % 2);
            spans[i].group = rng() % 3;
            spans[i].count = (uint16_t)(1 + rng() % 4);
            spans[i].address = rng() % 600;
        }
        struct reg_block out[BLOCKS];
        size_t bad = 0;
        int rc = regmap_plan(spans, n, lim, 2, out, BLOCKS, &bad);
        if (rc == -E2BIG) {
            // Only an aligned span whose pages exceed max_count may be refused.
            const struct reg_span *s = &spans[bad];
            ck_assert_uint_eq(s->table, 1);
            uint32_t first = s->address / lim[1].align;
            uint32_t last = (s->address + s->count - 1) / lim[1].align;
            ck_assert_uint_gt((last - first + 1) * lim[1].align, lim[1].max_count);
            continue;
        }
        ck_assert_int_gt(rc, 0);
        for (int k = 0; k < rc; k++) {
            const struct reg_block *b = &out[k];
            const struct reg_limits *l = &lim[b->table];
            ck_assert_uint_le(b->count, l->max_count);
            ck_assert_uint_gt(b->count, 0);
            if (k > 0) {
                const struct reg_block *p = &out[k - 1];
                bool ordered =
                    p->group < b->group ||
                    (p->group == b->group &&
                     (p->table < b->table || (p->table == b->table && p->start < b->start)));
                ck_assert(ordered);
                // Two neighbours could have been one block.
                if (p->group == b->group && p->table == b->table) {
                    uint32_t reach = p->start + p->count + (l->align ? 0 : l->max_gap);
                    uint32_t end = b->start + b->count;
                    uint32_t p_end = p->start + p->count;
                    ck_assert(b->start > reach ||
                              (end > p_end ? end : p_end) - p->start > l->max_count);
                }
            }
            if (l->align) {
                ck_assert_uint_eq(b->start % l->align, 0);
                ck_assert_uint_eq(b->count % l->align, 0);
            } else {
                bool starts = false, ends = false;
                for (size_t i = 0; i < n; i++) {
                    const struct reg_span *s = &spans[i];
                    if (s->table != b->table || s->group != b->group)
                        continue;
                    starts |= s->address == b->start;
                    ends |= s->address + s->count == b->start + b->count;
                }
                ck_assert(starts && ends);
            }
        }
        for (size_t i = 0; i < n; i++) {
            const struct reg_span *s = &spans[i];
            bool covered = false;
            for (int k = 0; k < rc && !covered; k++) {
                const struct reg_block *b = &out[k];
                covered = b->table == s->table && b->group == s->group && b->start <= s->address &&
                          s->address + s->count <= b->start + b->count;
            }
            ck_assert_msg(covered, "iteration %d: span %zu not inside one block", iter, i);
        }
    }
}
END_TEST

static Suite *regmap_suite(void)
{
    Suite *s = suite_create("regmap");

    TCase *tc = tcase_create("decode");
    tcase_add_loop_test(tc, test_decode_vectors, 0, (int)N(vectors));
    tcase_add_loop_test(tc, test_decode_bits, 0, (int)N(bit_cases));
    tcase_add_loop_test(tc, test_decode_string, 0, (int)N(string_cases));
    tcase_add_loop_test(tc, test_decode_nonfinite, 0, (int)N(nonfinite_cases));
    tcase_add_test(tc, test_string_misuse);
    tcase_add_loop_test(tc, test_time_hm, 0, (int)N(time_cases));
    tcase_add_test(tc, test_time_hm_text);
    tcase_add_loop_test(tc, test_time_hhmm, 0, (int)N(hhmm_cases));
    tcase_add_test(tc, test_time_hhmm_text);
    tcase_add_test(tc, test_invalid_formats);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_loop_test(tc, test_encode_vectors, 0, (int)N(vectors));
    tcase_add_loop_test(tc, test_encode_range, 0, (int)N(encode_cases));
    tcase_add_loop_test(tc, test_roundtrip, 0, (int)N(roundtrip_types) * 4);
    tcase_add_test(tc, test_encode_u8_other_byte_zero);
    tcase_add_test(tc, test_bit_encode_rejected);
    tcase_add_loop_test(tc, test_apply_bit, 0, (int)N(apply_cases));
    tcase_add_test(tc, test_apply_bit_consistent);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_add_test(tc, test_type_names);
    tcase_add_test(tc, test_type_range);
    tcase_add_test(tc, test_format_init);
    suite_add_tcase(s, tc);

    tc = tcase_create("plan");
    tcase_add_loop_test(tc, test_plan, 0, (int)N(plan_cases));
    tcase_add_test(tc, test_plan_enospc_without_output);
    tcase_add_test(tc, test_plan_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(regmap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
