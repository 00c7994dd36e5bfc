// SPDX-License-Identifier: MIT
// Register maps: decoding and encoding typed values in 16-bit registers, and read planning.
//
// Choices the header leaves open, made here deliberately:
// - Fixed-size types require f->words to equal the type's size (as regmap_format_init sets
//   it); any other value, an order other than big/little, or a bit beyond the type's width is
//   rejected with -EINVAL rather than read past the caller's registers.
// - `bit` is valid for integer types only (0..width-1, bool: 0); floats and strings with a bit
//   are -EINVAL. Signed types take the bit from their two's complement pattern.
// - Strings ignore word_order: characters always run in register order, so a device-wide
//   "little word order" default for numbers does not scramble its serial numbers. Only
//   trailing NULs and spaces are trimmed; an embedded NUL is non-printable and becomes '?'.
//   Truncation to out_size - 1 happens before trimming, so a cut never leaves a trailing
//   space.
// - A time_hm register decodes to "HH:MM" even when its bytes are no valid time ("25:61"): the
//   reading is shown as it is. Only writes check the range. The same holds for time_hhmm,
//   except its "unset" value 60, which would otherwise read as the nonsense time 00:60.
// - Encoding u8/s8 puts the value in its byte and zero in the other one; a caller that must
//   preserve the other byte merges it in itself (as with regmap_apply_bit for bits). REG_BOOL
//   encodes as 0 or 1 regardless of byte order, matching how it decodes.
// - regmap_apply_bit supports 16-bit integers (bit 0..15), u8/s8 (bit 0..7 of the chosen
//   byte) and bool (bit 0); for any other format it returns `current` unchanged, because it
//   cannot report an error. Config validation must only allow bit writes on those formats.
// - Planning guarantees that every span lies inside one block, which is what decoders need.
//   For an aligned table a span is therefore measured in the whole pages it touches: if those
//   pages exceed max_count (a value crossing a page boundary with align == max_count) the
//   span is -E2BIG. max_gap does not apply to aligned tables; only adjacent pages merge. A
//   page that would run past register 65535 is cut there. Per-span errors (bad table, count
//   0, crossing 65536, too long) are reported for the lowest offending index.
#include "regmap.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define REG_TYPE_COUNT   (REG_TIME_HHMM + 1)
#define STRING_WORDS_MAX 64
#define ADDRESS_LIMIT    65536u
#define HHMM_UNSET       60 // a time_hhmm some firmware stores for "no time" (not 00:60)

struct type_info {
    const char *name;
    uint8_t words; // 0 for strings (variable)
    uint8_t bits;  // width of the decoded unsigned integer; 0 when bits are not allowed
    bool integer;
    double min, max; // raw range; strings hold no number and report 0..0
};

// The doubles nearest to 2^64 - 1 and 2^63 - 1 are 2^64 and 2^63, so the 64-bit maxima below
// are really those powers of two; regmap_encode() checks them as exclusive bounds.
static const struct type_info type_infos[REG_TYPE_COUNT] = {
    [REG_U16] = {"u16", 1, 16, true, 0, 65535.0},
    [REG_S16] = {"s16", 1, 16, true, -32768.0, 32767.0},
    [REG_U32] = {"u32", 2, 32, true, 0, 4294967295.0},
    [REG_S32] = {"s32", 2, 32, true, -2147483648.0, 2147483647.0},
    [REG_U64] = {"u64", 4, 64, true, 0, 18446744073709551615.0},
    [REG_S64] = {"s64", 4, 64, true, -9223372036854775808.0, 9223372036854775807.0},
    [REG_F32] = {"float32", 2, 0, false, -FLT_MAX, FLT_MAX},
    [REG_F64] = {"float64", 4, 0, false, -DBL_MAX, DBL_MAX},
    [REG_U8] = {"u8", 1, 8, true, 0, 255.0},
    [REG_S8] = {"s8", 1, 8, true, -128.0, 127.0},
    [REG_BOOL] = {"bool", 1, 1, true, 0, 1.0},
    [REG_STRING] = {"string", 0, 0, false, 0, 0},
    [REG_TIME_HM] = {"time_hm", 1, 0, false, 0, 0},
    [REG_TIME_HHMM] = {"time_hhmm", 1, 0, false, 0, 0},
};

static bool type_valid(enum reg_type type)
{
    return (unsigned)type < REG_TYPE_COUNT;
}

static bool format_valid(const struct reg_format *f)
{
    if (!f || !type_valid(f->type))
        return false;
    const struct type_info *ti = &type_infos[f->type];
    if (f->byte_order > REG_ORDER_LITTLE || f->word_order > REG_ORDER_LITTLE)
        return false;
    if (f->type == REG_STRING) {
        if (f->words < 1 || f->words > STRING_WORDS_MAX)
            return false;
    } else if (f->words != ti->words) {
        return false;
    }
    if (f->bit < -1 || f->bit >= (int)ti->bits)
        return false;
    if ((f->type == REG_U8 || f->type == REG_S8) && f->byte > 1)
        return false;
    return true;
}

static uint16_t swap16(uint16_t r)
{
    return (uint16_t)((r << 8) | (r >> 8));
}

// One register as the format sees it, i.e. with its byte order corrected.
static uint16_t reg_fix(const struct reg_format *f, uint16_t r)
{
    return f->byte_order == REG_ORDER_LITTLE ? swap16(r) : r;
}

// The registers as one unsigned integer, most significant word first.
static uint64_t regs_combine(const struct reg_format *f, const uint16_t *regs)
{
    unsigned n = f->words;
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned idx = f->word_order == REG_ORDER_BIG ? i : n - 1 - i;
        v = (v << 16) | reg_fix(f, regs[idx]);
    }
    return v;
}

static void regs_split(const struct reg_format *f, uint64_t v, uint16_t *regs)
{
    unsigned n = f->words;
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = (uint16_t)(v >> (16 * (n - 1 - i)));
        unsigned idx = f->word_order == REG_ORDER_BIG ? i : n - 1 - i;
        regs[idx] = reg_fix(f, w);
    }
}

// Two's complement interpretation of the low `bits` bits of v, without relying on the
// implementation-defined unsigned-to-signed conversion.
static int64_t sign_extend(uint64_t v, unsigned bits)
{
    if (bits < 64) {
        v &= (UINT64_C(1) << bits) - 1;
        if (v & (UINT64_C(1) << (bits - 1)))
            return (int64_t)v - (int64_t)(UINT64_C(1) << (bits - 1)) * 2;
        return (int64_t)v;
    }
    if (v >> 63)
        return -(int64_t)(~v) - 1;
    return (int64_t)v;
}

int regmap_format_init(struct reg_format *f, enum reg_type type, uint8_t string_words)
{
    if (!f || !type_valid(type))
        return -EINVAL;
    uint8_t words = type_infos[type].words;
    if (type == REG_STRING) {
        if (string_words < 1 || string_words > STRING_WORDS_MAX)
            return -EINVAL;
        words = string_words;
    }
    *f = (struct reg_format){
        .type = type,
        .words = words,
        .byte_order = REG_ORDER_BIG,
        .word_order = REG_ORDER_BIG,
        .bit = -1,
        .byte = 0,
    };
    return 0;
}

int regmap_type_parse(const char *name, enum reg_type *out)
{
    if (!name)
        return -EINVAL;
    for (int t = 0; t < REG_TYPE_COUNT; t++) {
        if (strcmp(name, type_infos[t].name) == 0) {
            if (out)
                *out = (enum reg_type)t;
            return 0;
        }
    }
    return -EINVAL;
}

const char *regmap_type_name(enum reg_type type)
{
    return type_valid(type) ? type_infos[type].name : "invalid";
}

bool regmap_type_is_integer(enum reg_type type)
{
    return type_valid(type) && type_infos[type].integer;
}

bool regmap_type_is_text(enum reg_type type)
{
    return type == REG_STRING || type == REG_TIME_HM || type == REG_TIME_HHMM;
}

void regmap_type_range(enum reg_type type, double *min, double *max)
{
    bool ok = type_valid(type);
    if (min)
        *min = ok ? type_infos[type].min : 0;
    if (max)
        *max = ok ? type_infos[type].max : 0;
}

int regmap_decode(const struct reg_format *f, const uint16_t *regs, double *out)
{
    if (!format_valid(f) || !regs || !out || regmap_type_is_text(f->type))
        return -EINVAL;

    uint64_t u; // the decoded unsigned integer (the raw bit pattern for floats)
    if (f->type == REG_BOOL) {
        u = regs[0] != 0;
    } else if (f->type == REG_U8 || f->type == REG_S8) {
        uint16_t r = reg_fix(f, regs[0]);
        u = f->byte == 0 ? (uint64_t)(r >> 8) : (uint64_t)(r & 0xff);
    } else {
        u = regs_combine(f, regs);
    }

    if (f->bit >= 0) {
        *out = (double)((u >> f->bit) & 1);
        return 0;
    }

    double v;
    switch (f->type) {
    case REG_U16:
    case REG_U32:
    case REG_U64:
    case REG_U8:
    case REG_BOOL: v = (double)u; break;
    case REG_S16:
    case REG_S32:
    case REG_S64:
    case REG_S8: v = (double)sign_extend(u, type_infos[f->type].bits); break;
    case REG_F32: {
        uint32_t u32 = (uint32_t)u;
        float fl;
        memcpy(&fl, &u32, sizeof fl);
        v = fl;
        break;
    }
    case REG_F64: memcpy(&v, &u, sizeof v); break;
    default: return -EINVAL;
    }
    if (!isfinite(v))
        return -ERANGE;
    *out = v;
    return 0;
}

static bool string_trimmed(unsigned char c)
{
    return c == '\0' || c == ' ';
}

size_t regmap_decode_string(const struct reg_format *f, const uint16_t *regs, char *out,
                            size_t out_size)
{
    if (!out || out_size == 0)
        return 0;
    out[0] = '\0';
    if (!format_valid(f) || !regmap_type_is_text(f->type) || !regs)
        return 0;
    if (f->type == REG_TIME_HM) {
        uint16_t r = reg_fix(f, regs[0]);
        int n = snprintf(out, out_size, "%02u:%02u", (unsigned)(r >> 8), (unsigned)(r & 0xff));
        return n < 0 ? 0 : (size_t)n < out_size ? (size_t)n : out_size - 1;
    }
    if (f->type == REG_TIME_HHMM) {
        uint16_t r = reg_fix(f, regs[0]);
        int n = r == HHMM_UNSET ? snprintf(out, out_size, "--:--")
                                : snprintf(out, out_size, "%02u:%02u", (unsigned)(r / 100),
                                           (unsigned)(r % 100));
        return n < 0 ? 0 : (size_t)n < out_size ? (size_t)n : out_size - 1;
    }

    size_t n = (size_t)f->words * 2;
    if (n > out_size - 1)
        n = out_size - 1;
    for (size_t i = 0; i < n; i++) {
        uint16_t r = reg_fix(f, regs[i / 2]);
        out[i] = (char)(i % 2 == 0 ? r >> 8 : r & 0xff);
    }
    while (n > 0 && string_trimmed((unsigned char)out[n - 1]))
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c > 0x7e)
            out[i] = '?';
    }
    out[n] = '\0';
    return n;
}

int regmap_encode(const struct reg_format *f, double raw, uint16_t *regs)
{
    if (!format_valid(f) || !regs || regmap_type_is_text(f->type) || f->bit >= 0)
        return -EINVAL;
    if (!isfinite(raw))
        return -ERANGE;

    uint64_t u;
    switch (f->type) {
    case REG_F32: {
        if (fabs(raw) > FLT_MAX)
            return -ERANGE;
        float fl = (float)raw;
        uint32_t u32;
        memcpy(&u32, &fl, sizeof u32);
        u = u32;
        break;
    }
    case REG_F64: memcpy(&u, &raw, sizeof u); break;
    case REG_U64:
        // 2^64 is exact as a double while 2^64 - 1 is not, hence the exclusive bound.
        if (raw != trunc(raw) || raw < 0 || raw >= 18446744073709551616.0)
            return -ERANGE;
        u = (uint64_t)raw;
        break;
    case REG_S64:
        if (raw != trunc(raw) || raw < -9223372036854775808.0 || raw >= 9223372036854775808.0)
            return -ERANGE;
        u = (uint64_t)(int64_t)raw;
        break;
    default: {
        const struct type_info *ti = &type_infos[f->type];
        if (raw != trunc(raw) || raw < ti->min || raw > ti->max)
            return -ERANGE;
        // Every remaining type fits in int64_t; the cast to uint64_t keeps the two's
        // complement pattern of negative values.
        u = (uint64_t)(int64_t)raw;
        break;
    }
    }

    if (f->type == REG_BOOL) {
        regs[0] = u ? 1 : 0;
    } else if (f->type == REG_U8 || f->type == REG_S8) {
        uint16_t b = (uint16_t)(u & 0xff);
        regs[0] = reg_fix(f, f->byte == 0 ? (uint16_t)(b << 8) : b);
    } else {
        regs_split(f, u, regs);
    }
    return 0;
}

// Digits only: "7" or "07" for the hour, exactly two for the minute.
static int time_part(const char *s, size_t min_len, size_t max_len, const char **end)
{
    size_t n = 0;
    int v = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < max_len)
        v = v * 10 + (s[n++] - '0');
    if (n < min_len)
        return -1;
    *end = s + n;
    return v;
}

int regmap_encode_text(const struct reg_format *f, const char *text, uint16_t *regs)
{
    if (!format_valid(f) || !regs || !text || (f->type != REG_TIME_HM && f->type != REG_TIME_HHMM))
        return -EINVAL;
    const char *p = text;
    int hour = time_part(p, 1, 2, &p);
    if (hour < 0 || *p++ != ':')
        return -EINVAL;
    int minute = time_part(p, 2, 2, &p);
    if (minute < 0 || *p != '\0')
        return -EINVAL;
    if (hour > 23 || minute > 59)
        return -ERANGE;
    if (f->type == REG_TIME_HHMM)
        regs[0] = reg_fix(f, (uint16_t)(hour * 100 + minute));
    else
        regs[0] = reg_fix(f, (uint16_t)(hour << 8 | minute));
    return 0;
}

uint16_t regmap_apply_bit(const struct reg_format *f, uint16_t current, bool on)
{
    if (!format_valid(f) || f->bit < 0)
        return current;
    int bit;
    switch (f->type) {
    case REG_U16:
    case REG_S16:
    case REG_BOOL: bit = f->bit; break;
    case REG_U8:
    case REG_S8: bit = f->bit + (f->byte == 0 ? 8 : 0); break;
    default: return current;
    }
    uint16_t v = reg_fix(f, current);
    uint16_t mask = (uint16_t)(1u << bit);
    v = on ? (uint16_t)(v | mask) : (uint16_t)(v & ~mask);
    return reg_fix(f, v);
}

// ---- Read plans ---------------------------------------------------------------------------

struct plan_item {
    struct reg_span span;
    size_t index;
};

static int plan_item_cmp(const void *pa, const void *pb)
{
    const struct plan_item *a = pa, *b = pb;
    if (a->span.group != b->span.group)
        return a->span.group < b->span.group ? -1 : 1;
    if (a->span.table != b->span.table)
        return a->span.table < b->span.table ? -1 : 1;
    if (a->span.address != b->span.address)
        return a->span.address < b->span.address ? -1 : 1;
    // The index makes the order total, so equal spans sort the same on every libc.
    return a->index < b->index ? -1 : a->index > b->index;
}

// The registers a span occupies in its table: itself, or the whole pages it touches.
static void span_extent(const struct reg_span *s, const struct reg_limits *lim, uint32_t *start,
                        uint32_t *end)
{
    uint32_t a = s->address, e = s->address + s->count;
    if (lim->align > 0) {
        a = a / lim->align * lim->align;
        e = (e + lim->align - 1) / lim->align * lim->align;
        if (e > ADDRESS_LIMIT)
            e = ADDRESS_LIMIT;
    }
    *start = a;
    *end = e;
}

static int span_check(const struct reg_span *s, const struct reg_limits *limits, size_t n_tables)
{
    if (s->table >= n_tables || s->count == 0 || s->address >= ADDRESS_LIMIT ||
        s->address + s->count > ADDRESS_LIMIT)
        return -EINVAL;
    const struct reg_limits *lim = &limits[s->table];
    uint32_t start, end;
    span_extent(s, lim, &start, &end);
    if (end - start > lim->max_count)
        return -E2BIG;
    return 0;
}

int regmap_plan(const struct reg_span *spans, size_t n_spans, const struct reg_limits *limits,
                size_t n_tables, struct reg_block *out, size_t out_cap, size_t *bad_span)
{
    if (n_spans == 0)
        return 0;
    if (!spans || (!limits && n_tables > 0))
        return -EINVAL;
    for (size_t i = 0; i < n_spans; i++) {
        int rc = span_check(&spans[i], limits, n_tables);
        if (rc < 0) {
            if (bad_span)
                *bad_span = i;
            return rc;
        }
    }

    struct plan_item *items = xmalloc(n_spans * sizeof *items);
    for (size_t i = 0; i < n_spans; i++)
        items[i] = (struct plan_item){.span = spans[i], .index = i};
    qsort(items, n_spans, sizeof *items, plan_item_cmp);

    size_t n_out = 0;
    bool open = false; // whether cur holds a block still being extended
    struct reg_block cur = {0};
    uint32_t cur_end = 0;
    int rc = 0;
    for (size_t i = 0; i < n_spans; i++) {
        const struct reg_span *s = &items[i].span;
        const struct reg_limits *lim = &limits[s->table];
        uint32_t start, end;
        span_extent(s, lim, &start, &end);

        if (open && s->group == cur.group && s->table == cur.table) {
            // Sorting by address means start >= cur.start; the gap is negative on overlap.
            uint32_t reach = cur_end + (lim->align > 0 ? 0 : lim->max_gap);
            uint32_t new_end = end > cur_end ? end : cur_end;
            if (start <= reach && new_end - cur.start <= lim->max_count) {
                cur_end = new_end;
                continue;
            }
        }
        if (open) {
            if (n_out == out_cap) {
                rc = -ENOSPC;
                goto out;
            }
            cur.count = (uint16_t)(cur_end - cur.start);
            out[n_out++] = cur;
        }
        cur = (struct reg_block){.table = s->table, .group = s->group, .start = start};
        cur_end = end;
        open = true;
    }
    if (n_out == out_cap) {
        rc = -ENOSPC;
        goto out;
    }
    cur.count = (uint16_t)(cur_end - cur.start);
    out[n_out++] = cur;
    rc = (int)n_out;
out:
    free(items);
    return rc;
}
