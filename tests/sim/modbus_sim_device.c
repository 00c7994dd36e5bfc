// SPDX-License-Identifier: MIT
// Modbus simulator: register bank of one device, typed access for the control channel, RNG.
#include "modbus_sim_device.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const table_names[SIM_TABLE_COUNT] = {"coil", "discrete", "holding", "input"};

int sim_table_parse(const char *s)
{
    for (int i = 0; i < SIM_TABLE_COUNT; i++) {
        if (strcmp(s, table_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *sim_table_name(enum sim_table t)
{
    return (unsigned)t < SIM_TABLE_COUNT ? table_names[t] : "?";
}

int sim_type_parse(const char *s)
{
    static const struct {
        const char *name;
        enum sim_type type;
    } types[] = {
        {"bool", SIM_TYPE_BOOL},     {"u16", SIM_TYPE_U16}, {"s16", SIM_TYPE_S16},
        {"u32", SIM_TYPE_U32},       {"s32", SIM_TYPE_S32}, {"float32", SIM_TYPE_FLOAT32},
        {"float", SIM_TYPE_FLOAT32},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(s, types[i].name) == 0) {
            return (int)types[i].type;
        }
    }
    return -1;
}

static const char *const fault_names[] = {"none", "drop", "stall", "exception", "garbage"};

int sim_fault_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(fault_names) / sizeof(fault_names[0]); i++) {
        if (strcmp(s, fault_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *sim_fault_name(enum sim_fault f)
{
    return (unsigned)f < sizeof(fault_names) / sizeof(fault_names[0]) ? fault_names[f] : "?";
}

// ---- Random numbers ---------------------------------------------------------------------

// splitmix64: small, fast and good enough to make plausible noise; the same seed always gives
// the same sequence, so a failing test run can be replayed.
uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    r->s = seed;
    (void)sim_rng_next(r);
}

double sim_rng_unit(struct sim_rng *r)
{
    return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double sim_rng_sym(struct sim_rng *r)
{
    return 2.0 * sim_rng_unit(r) - 1.0;
}

double sim_walk(struct sim_rng *r, double x, double dt_s, double tau_s, double sigma, double limit)
{
    if (dt_s <= 0) {
        return x;
    }
    double decay = dt_s >= tau_s ? 0.0 : 1.0 - dt_s / tau_s;
    x = x * decay + sigma * sqrt(dt_s) * sim_rng_sym(r);
    if (x > limit) {
        x = limit;
    } else if (x < -limit) {
        x = -limit;
    }
    return x;
}

// ---- Register bank ----------------------------------------------------------------------

static int table_start(const struct sim_device *dev, enum sim_table t)
{
    const modbus_mapping_t *m = dev->map;
    switch (t) {
    case SIM_TABLE_COIL: return m->start_bits;
    case SIM_TABLE_DISCRETE: return m->start_input_bits;
    case SIM_TABLE_HOLDING: return m->start_registers;
    case SIM_TABLE_INPUT: return m->start_input_registers;
    default: return 0;
    }
}

static int table_size(const struct sim_device *dev, enum sim_table t)
{
    const modbus_mapping_t *m = dev->map;
    switch (t) {
    case SIM_TABLE_COIL: return m->nb_bits;
    case SIM_TABLE_DISCRETE: return m->nb_input_bits;
    case SIM_TABLE_HOLDING: return m->nb_registers;
    case SIM_TABLE_INPUT: return m->nb_input_registers;
    default: return 0;
    }
}

static bool is_bit_table(enum sim_table t)
{
    return t == SIM_TABLE_COIL || t == SIM_TABLE_DISCRETE;
}

bool sim_mapped(const struct sim_device *dev, enum sim_table table, int address, int count)
{
    if (!dev->map || count < 1 || (unsigned)table >= SIM_TABLE_COUNT) {
        return false;
    }
    long off = (long)address - table_start(dev, table);
    return off >= 0 && off + count <= table_size(dev, table);
}

uint16_t *sim_reg(const struct sim_device *dev, enum sim_table table, int address)
{
    if (is_bit_table(table) || !sim_mapped(dev, table, address, 1)) {
        return NULL;
    }
    int off = address - table_start(dev, table);
    return table == SIM_TABLE_HOLDING ? &dev->map->tab_registers[off]
                                      : &dev->map->tab_input_registers[off];
}

uint8_t *sim_bit(const struct sim_device *dev, enum sim_table table, int address)
{
    if (!is_bit_table(table) || !sim_mapped(dev, table, address, 1)) {
        return NULL;
    }
    int off = address - table_start(dev, table);
    return table == SIM_TABLE_COIL ? &dev->map->tab_bits[off] : &dev->map->tab_input_bits[off];
}

static bool is_frozen(const struct sim_device *dev, enum sim_table table, int address)
{
    const uint8_t *f = dev->frozen[table];
    return f && sim_mapped(dev, table, address, 1) && f[address - table_start(dev, table)];
}

static void set_frozen(struct sim_device *dev, enum sim_table table, int address, int count,
                       uint8_t on)
{
    if (dev->frozen[table] && sim_mapped(dev, table, address, count)) {
        memset(dev->frozen[table] + (address - table_start(dev, table)), on, (size_t)count);
    }
}

int sim_device_map(struct sim_device *dev, int coil_start, int coils, int di_start, int dis,
                   int hr_start, int hrs, int ir_start, int irs)
{
    dev->map = modbus_mapping_new_start_address(
        (unsigned)coil_start, (unsigned)coils, (unsigned)di_start, (unsigned)dis,
        (unsigned)hr_start, (unsigned)hrs, (unsigned)ir_start, (unsigned)irs);
    if (!dev->map) {
        return -ENOMEM;
    }
    const int sizes[SIM_TABLE_COUNT] = {coils, dis, hrs, irs};
    for (int t = 0; t < SIM_TABLE_COUNT; t++) {
        if (sizes[t] > 0) {
            dev->frozen[t] = calloc((size_t)sizes[t], 1);
            if (!dev->frozen[t]) {
                return -ENOMEM;
            }
        }
    }
    return 0;
}

int sim_device_init(struct sim_device *dev, const struct sim_profile *profile, int index, int unit,
                    uint64_t seed)
{
    memset(dev, 0, sizeof(*dev));
    dev->index = index;
    dev->unit = unit;
    dev->profile = profile;
    snprintf(dev->label, sizeof(dev->label), "?");
    for (int t = 0; t < SIM_TABLE_COUNT; t++) {
        dev->mark[t] = -1;
    }
    // Mixing the index in through the generator keeps neighbouring devices uncorrelated.
    sim_rng_seed(&dev->rng, seed ^ ((uint64_t)(index + 1) * 0xD1B54A32D192ED03ull));
    int rc = profile->init(dev);
    if (rc < 0) {
        return rc;
    }
    profile->evolve(dev, 0.0);
    return 0;
}

void sim_device_free(struct sim_device *dev)
{
    if (dev->profile && dev->profile->destroy) {
        dev->profile->destroy(dev);
    }
    free(dev->state);
    dev->state = NULL;
    for (int t = 0; t < SIM_TABLE_COUNT; t++) {
        free(dev->frozen[t]);
        dev->frozen[t] = NULL;
    }
    if (dev->map) {
        modbus_mapping_free(dev->map);
        dev->map = NULL;
    }
}

// ---- Stores and loads -------------------------------------------------------------------

// Index of the high and low word of a 32-bit value at `address` for this device's word order.
static int word_hi(const struct sim_device *dev, int address)
{
    return dev->profile->little_word_order ? address + 1 : address;
}

static int word_lo(const struct sim_device *dev, int address)
{
    return dev->profile->little_word_order ? address : address + 1;
}

void sim_force_u16(struct sim_device *dev, enum sim_table table, int address, uint16_t v)
{
    uint16_t *r = sim_reg(dev, table, address);
    if (r) {
        *r = v;
    }
}

void sim_put_u16(struct sim_device *dev, enum sim_table table, int address, uint16_t v)
{
    if (!is_frozen(dev, table, address)) {
        sim_force_u16(dev, table, address, v);
    }
}

void sim_put_s16(struct sim_device *dev, enum sim_table table, int address, double v)
{
    double r = round(v);
    if (r > INT16_MAX) {
        r = INT16_MAX;
    } else if (r < INT16_MIN + 1) {
        r = INT16_MIN + 1; // INT16_MIN is SunSpec's "not implemented"
    }
    sim_put_u16(dev, table, address, (uint16_t)(int16_t)r);
}

void sim_put_u16_scaled(struct sim_device *dev, enum sim_table table, int address, double v)
{
    double r = round(v);
    if (r > UINT16_MAX - 1) {
        r = UINT16_MAX - 1; // 0xFFFF is SunSpec's "not implemented"
    } else if (r < 0) {
        r = 0;
    }
    sim_put_u16(dev, table, address, (uint16_t)r);
}

static void force_u32(struct sim_device *dev, enum sim_table table, int address, uint32_t v)
{
    sim_force_u16(dev, table, word_hi(dev, address), (uint16_t)(v >> 16));
    sim_force_u16(dev, table, word_lo(dev, address), (uint16_t)(v & 0xFFFF));
}

void sim_put_u32(struct sim_device *dev, enum sim_table table, int address, uint32_t v)
{
    if (!is_frozen(dev, table, address) && !is_frozen(dev, table, address + 1)) {
        force_u32(dev, table, address, v);
    }
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

void sim_put_float(struct sim_device *dev, enum sim_table table, int address, double v)
{
    sim_put_u32(dev, table, address, float_bits((float)v));
}

void sim_force_string(struct sim_device *dev, enum sim_table table, int address, int words,
                      const char *s)
{
    size_t len = strlen(s);
    for (int i = 0; i < words; i++) {
        size_t k = 2 * (size_t)i;
        uint8_t hi = k < len ? (uint8_t)s[k] : 0;
        uint8_t lo = k + 1 < len ? (uint8_t)s[k + 1] : 0;
        sim_force_u16(dev, table, address + i, (uint16_t)(hi << 8 | lo));
    }
}

uint16_t sim_get_u16(const struct sim_device *dev, enum sim_table table, int address)
{
    const uint16_t *r = sim_reg(dev, table, address);
    return r ? *r : 0;
}

int16_t sim_get_s16(const struct sim_device *dev, enum sim_table table, int address)
{
    return (int16_t)sim_get_u16(dev, table, address);
}

uint32_t sim_get_u32(const struct sim_device *dev, enum sim_table table, int address)
{
    return (uint32_t)sim_get_u16(dev, table, word_hi(dev, address)) << 16 |
           sim_get_u16(dev, table, word_lo(dev, address));
}

double sim_get_float(const struct sim_device *dev, enum sim_table table, int address)
{
    uint32_t u = sim_get_u32(dev, table, address);
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

// ---- Control channel access -------------------------------------------------------------

static int type_words(enum sim_type type)
{
    return type == SIM_TYPE_U32 || type == SIM_TYPE_S32 || type == SIM_TYPE_FLOAT32 ? 2 : 1;
}

static int parse_integer(const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 0);
    if (end == text || *end != '\0') {
        return -EINVAL;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

int sim_value_set(struct sim_device *dev, enum sim_table table, int address, enum sim_type type,
                  const char *text)
{
    long long v = 0;
    int rc;

    if (is_bit_table(table)) {
        if (type != SIM_TYPE_BOOL && type != SIM_TYPE_U16) {
            return -EINVAL;
        }
        uint8_t *b = sim_bit(dev, table, address);
        if (!b) {
            return -ENXIO;
        }
        if ((rc = parse_integer(text, 0, 1, &v)) < 0) {
            return rc;
        }
        *b = (uint8_t)v;
        set_frozen(dev, table, address, 1, 1);
        return 0;
    }
    if (type == SIM_TYPE_BOOL) {
        return -EINVAL;
    }
    int words = type_words(type);
    if (!sim_mapped(dev, table, address, words)) {
        return -ENXIO;
    }
    switch (type) {
    case SIM_TYPE_U16:
        if ((rc = parse_integer(text, 0, UINT16_MAX, &v)) < 0) {
            return rc;
        }
        sim_force_u16(dev, table, address, (uint16_t)v);
        break;
    case SIM_TYPE_S16:
        if ((rc = parse_integer(text, INT16_MIN, INT16_MAX, &v)) < 0) {
            return rc;
        }
        sim_force_u16(dev, table, address, (uint16_t)(int16_t)v);
        break;
    case SIM_TYPE_U32:
        if ((rc = parse_integer(text, 0, UINT32_MAX, &v)) < 0) {
            return rc;
        }
        force_u32(dev, table, address, (uint32_t)v);
        break;
    case SIM_TYPE_S32:
        if ((rc = parse_integer(text, INT32_MIN, INT32_MAX, &v)) < 0) {
            return rc;
        }
        force_u32(dev, table, address, (uint32_t)(int32_t)v);
        break;
    case SIM_TYPE_FLOAT32: {
        char *end;
        double d = strtod(text, &end);
        if (end == text || *end != '\0') {
            return -EINVAL;
        }
        force_u32(dev, table, address, float_bits((float)d));
        break;
    }
    default: return -EINVAL;
    }
    set_frozen(dev, table, address, words, 1);
    if (dev->profile->resync) {
        dev->profile->resync(dev);
    }
    return 0;
}

int sim_value_get(const struct sim_device *dev, enum sim_table table, int address,
                  enum sim_type type, char *out, size_t out_size)
{
    if (is_bit_table(table)) {
        if (type != SIM_TYPE_BOOL && type != SIM_TYPE_U16) {
            return -EINVAL;
        }
        const uint8_t *b = sim_bit(dev, table, address);
        if (!b) {
            return -ENXIO;
        }
        snprintf(out, out_size, "%u", *b ? 1u : 0u);
        return 0;
    }
    if (type == SIM_TYPE_BOOL) {
        return -EINVAL;
    }
    if (!sim_mapped(dev, table, address, type_words(type))) {
        return -ENXIO;
    }
    switch (type) {
    case SIM_TYPE_U16: snprintf(out, out_size, "%u", sim_get_u16(dev, table, address)); break;
    case SIM_TYPE_S16: snprintf(out, out_size, "%d", sim_get_s16(dev, table, address)); break;
    case SIM_TYPE_U32: snprintf(out, out_size, "%" PRIu32, sim_get_u32(dev, table, address)); break;
    case SIM_TYPE_S32:
        snprintf(out, out_size, "%" PRId32, (int32_t)sim_get_u32(dev, table, address));
        break;
    case SIM_TYPE_FLOAT32:
        // Nine significant digits make the text round-trip to the same float.
        snprintf(out, out_size, "%.9g", sim_get_float(dev, table, address));
        break;
    default: return -EINVAL;
    }
    return 0;
}

int sim_value_thaw(struct sim_device *dev, enum sim_table table, int address, enum sim_type type)
{
    int words = is_bit_table(table) ? 1 : type_words(type);
    if (!sim_mapped(dev, table, address, words)) {
        return -ENXIO;
    }
    set_frozen(dev, table, address, words, 0);
    if (dev->profile->resync) {
        dev->profile->resync(dev);
    }
    return 0;
}
