// SPDX-License-Identifier: MIT
// Register maps: typed values in 16-bit register blocks, and read plans over them.
//
// Shared by every register-based driver (plain Modbus, LuxPower, GivEnergy). Registers arrive
// as host-order uint16_t values, exactly as libmodbus returns them (the wire's big-endian
// bytes already combined). A value's `byte_order` says whether each register's two bytes are
// swapped relative to that, and `word_order` whether a multi-register value starts with its
// most significant word (big, the Modbus convention) or its least significant (little).
//
// Decoding is pure and never allocates. 64-bit integers become doubles, exact up to 2^53.
#ifndef E2M_REGMAP_H
#define E2M_REGMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum reg_type {
    REG_U16,
    REG_S16,
    REG_U32,
    REG_S32,
    REG_U64,
    REG_S64,
    REG_F32,
    REG_F64,
    REG_U8, // one byte of one register, chosen by `byte`
    REG_S8,
    REG_BOOL,      // a coil or discrete input (bit tables); one "register" holding 0 or 1
    REG_STRING,    // ASCII, two characters per register, `words` registers, NULs/spaces trimmed
    REG_TIME_HM,   // a time of day in one register: hour in the high byte, minute in the low one
    REG_TIME_HHMM, // a time of day in one register as the decimal number hour * 100 + minute
};

enum reg_order { REG_ORDER_BIG = 0, REG_ORDER_LITTLE = 1 };

struct reg_format {
    enum reg_type type;
    uint8_t words;      // registers spanned; regmap_format_init() sets it from the type
    uint8_t byte_order; // enum reg_order, within each register
    uint8_t word_order; // enum reg_order, across registers
    int8_t bit;         // -1, or a bit number of the decoded unsigned integer (0 = LSB)
    uint8_t byte;       // REG_U8/REG_S8: 0 = high byte, 1 = low byte
};

// Sets words for fixed-size types (1, 2, 4) and leaves strings' words as given (1..64);
// bit = -1. Returns -EINVAL for a string without a valid word count.
int regmap_format_init(struct reg_format *f, enum reg_type type, uint8_t string_words);

// "u16" "s16" "u32" "s32" "u64" "s64" "float32" "float64" "u8" "s8" "bool" "string" "time_hm"
// "time_hhmm".
int regmap_type_parse(const char *name, enum reg_type *out);
const char *regmap_type_name(enum reg_type type);
// Whether the type is an integer type (u*, s*, bool), i.e. writable values must be whole.
bool regmap_type_is_integer(enum reg_type type);
// Whether values of the type are text (string, time_hm, time_hhmm): decoded with
// regmap_decode_string.
bool regmap_type_is_text(enum reg_type type);
// Smallest and largest raw value the type can hold (for write range checks).
void regmap_type_range(enum reg_type type, double *min, double *max);

// Decodes `f->words` registers at `regs` to a number. With f->bit >= 0 the result is 0 or 1.
// Returns 0, or -EINVAL for a string type, or -ERANGE for a float that is NaN or infinite
// (devices use those as "no value").
int regmap_decode(const struct reg_format *f, const uint16_t *regs, double *out);
// Decodes a text type into `out`: a REG_STRING NUL-terminated, trailing NULs and spaces
// trimmed, non-printable bytes replaced by '?'; a REG_TIME_HM as "HH:MM" (the bytes as they
// are, even when they are no valid time, e.g. "25:61"); a REG_TIME_HHMM as "HH:MM" from
// value / 100 and value % 100 (as they are, e.g. "24:75"), except 60, which some firmware
// stores for "no time set": it is "--:--". Returns the length.
size_t regmap_decode_string(const struct reg_format *f, const uint16_t *regs, char *out,
                            size_t out_size);
// Encodes a raw number into `f->words` registers for a write. Integers must be whole and in
// the type's range (-ERANGE otherwise); floats are converted. Bit formats are not encoded
// here (see regmap_apply_bit). Returns 0 or a negative errno.
int regmap_encode(const struct reg_format *f, double raw, uint16_t *regs);
// Encodes a text for a write: a REG_TIME_HM or REG_TIME_HHMM from "H:MM" or "HH:MM" (00:00 to
// 23:59). Returns 0,
// -ERANGE for a time out of range, or -EINVAL for other text or types (strings are not
// written).
int regmap_encode_text(const struct reg_format *f, const char *text, uint16_t *regs);
// Read-modify-write helper for a bit of a 16-bit register: returns `current` with bit
// f->bit set to `on`, honouring byte_order.
uint16_t regmap_apply_bit(const struct reg_format *f, uint16_t current, bool on);

// ---- Read plans ---------------------------------------------------------------------------

// A run of registers some entity needs: `count` registers from `address` in `table`, read at
// the poll cadence `group` (entities with different intervals never share a block).
struct reg_span {
    uint8_t table;
    uint32_t group;
    uint32_t address;
    uint16_t count;
};

// Per-table limits declared by the driver (and tunable per device).
struct reg_limits {
    uint16_t max_count; // registers (or bits) per read request
    uint16_t max_gap;   // unused registers a block may bridge to save a request
    uint16_t align;     // 0, or a page size: blocks cover whole aligned pages (e.g. 40)
};

struct reg_block {
    uint8_t table;
    uint32_t group;
    uint32_t start;
    uint16_t count;
};

// Covers every span with as few blocks as the limits allow. Spans may overlap and come in
// any order. Blocks are sorted by (group, table, start). A span longer than its table's
// max_count is an error (-E2BIG, *bad_span = its index). `limits` is indexed by table.
// Returns the number of blocks (<= out_cap), or -ENOSPC when out_cap is too small.
int regmap_plan(const struct reg_span *spans, size_t n_spans, const struct reg_limits *limits,
                size_t n_tables, struct reg_block *out, size_t out_cap, size_t *bad_span);

#endif
