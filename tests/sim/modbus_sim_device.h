// SPDX-License-Identifier: MIT
// Modbus simulator: one simulated device (register bank, frozen flags, RNG) and its profile.
//
// The simulator is deliberately independent of the daemon's code (it links libmodbus only), so
// a misunderstanding in the daemon cannot be mirrored here and go unnoticed.
#ifndef E2M_MODBUS_SIM_DEVICE_H
#define E2M_MODBUS_SIM_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <modbus.h>

#include "sim_util.h"

enum sim_table {
    SIM_TABLE_COIL,
    SIM_TABLE_DISCRETE,
    SIM_TABLE_HOLDING,
    SIM_TABLE_INPUT,
    SIM_TABLE_COUNT,
};

// Value types of the control channel's `set` and `get`.
enum sim_type {
    SIM_TYPE_BOOL,
    SIM_TYPE_U16,
    SIM_TYPE_S16,
    SIM_TYPE_U32,
    SIM_TYPE_S32,
    SIM_TYPE_FLOAT32,
};

// Fault behaviour of one device, switched by `--fault` and the `fault` command.
enum sim_fault {
    SIM_FAULT_NONE,
    SIM_FAULT_DROP,      // close connections, accept-and-close new ones
    SIM_FAULT_STALL,     // read requests, never answer
    SIM_FAULT_EXCEPTION, // answer every request with exception 4
    SIM_FAULT_GARBAGE,   // answer with random bytes of a plausible length
};

struct sim_rng {
    uint64_t s;
};

struct sim_profile;

struct sim_device {
    int index;      // position in the fleet, 0-based (the control channel's dev-index)
    int unit;       // Modbus unit identifier this device answers to
    char label[16]; // TCP port number or "rtu": the second word of `write` lines
    enum sim_fault fault;
    const struct sim_profile *profile;
    modbus_mapping_t *map;
    uint8_t *frozen[SIM_TABLE_COUNT]; // one flag per register or bit; set by `set`
    void *state;                      // the profile's physics state
    struct sim_rng rng;
    // Address armed by the control channel's `mark` per table, -1 when none: the next read of
    // that table covering it prints a `served` line and disarms it.
    int mark[SIM_TABLE_COUNT];
};

// A device model: register layout, write rules and how values evolve. The write check returns
// 0 to accept or a Modbus exception code; it sees the request's function code because some
// real devices accept only FC16 for multi-register parameters.
struct sim_profile {
    const char *name;
    int default_unit;
    bool little_word_order; // word order of 32-bit values for `set`/`get`
    int max_read_registers; // per request; larger reads get exception 3
    int (*init)(struct sim_device *dev);
    void (*destroy)(struct sim_device *dev);
    void (*evolve)(struct sim_device *dev, double dt_s);
    int (*check_write)(const struct sim_device *dev, enum sim_table table, int address, int count,
                       const uint16_t *values, int function);
    void (*written)(struct sim_device *dev, enum sim_table table, int address, int count);
    void (*resync)(struct sim_device *dev); // reload accumulators from registers after `set`
};

// ---- Profiles (modbus_sim_profiles.c) ---------------------------------------------------

// The profile called `name` ("sdm630", "sunspec"), or NULL.
const struct sim_profile *sim_profile_find(const char *name);

// ---- Devices and register access (modbus_sim_device.c) ----------------------------------

// Creates the register bank with the given layout (start address and size per table; a size of
// 0 leaves the table empty) and the frozen flags. Called by a profile's init. Returns 0 or
// -ENOMEM.
int sim_device_map(struct sim_device *dev, int coil_start, int coils, int di_start, int dis,
                   int hr_start, int hrs, int ir_start, int irs);

// Sets up `dev` for `profile`: seeds its RNG from (seed, index), builds its registers and
// computes the first values. Returns 0 or a negative errno code.
int sim_device_init(struct sim_device *dev, const struct sim_profile *profile, int index, int unit,
                    uint64_t seed);
void sim_device_free(struct sim_device *dev);

// Pointer to the 16-bit register `address` of a register table, or NULL when unmapped.
uint16_t *sim_reg(const struct sim_device *dev, enum sim_table table, int address);
// Pointer to the bit `address` of a bit table, or NULL when unmapped.
uint8_t *sim_bit(const struct sim_device *dev, enum sim_table table, int address);
// True when `count` registers (or bits) from `address` are all mapped.
bool sim_mapped(const struct sim_device *dev, enum sim_table table, int address, int count);

// Evolution stores: they leave registers that `set` froze untouched.
void sim_put_u16(struct sim_device *dev, enum sim_table table, int address, uint16_t v);
void sim_put_s16(struct sim_device *dev, enum sim_table table, int address, double v);
void sim_put_u16_scaled(struct sim_device *dev, enum sim_table table, int address, double v);
void sim_put_u32(struct sim_device *dev, enum sim_table table, int address, uint32_t v);
void sim_put_float(struct sim_device *dev, enum sim_table table, int address, double v);
// Writes regardless of frozen flags (static content at init, device-side control changes).
void sim_force_u16(struct sim_device *dev, enum sim_table table, int address, uint16_t v);
// Stores an ASCII string into `words` registers, two characters per register, high byte first,
// NUL padded (the SunSpec string layout).
void sim_force_string(struct sim_device *dev, enum sim_table table, int address, int words,
                      const char *s);

// Register reads for the physics (0 when unmapped).
uint16_t sim_get_u16(const struct sim_device *dev, enum sim_table table, int address);
int16_t sim_get_s16(const struct sim_device *dev, enum sim_table table, int address);
uint32_t sim_get_u32(const struct sim_device *dev, enum sim_table table, int address);
double sim_get_float(const struct sim_device *dev, enum sim_table table, int address);

// Control channel access. `sim_value_set` parses `text` as a value of `type`, stores it and
// freezes the registers; `sim_value_get` formats the current value into `out`. Both return 0,
// -ENXIO (address not mapped), -EINVAL (bad value or type for this table) or -ERANGE.
int sim_value_set(struct sim_device *dev, enum sim_table table, int address, enum sim_type type,
                  const char *text);
int sim_value_get(const struct sim_device *dev, enum sim_table table, int address,
                  enum sim_type type, char *out, size_t out_size);
// Clears the frozen flags of the value at `address` so evolution owns it again.
int sim_value_thaw(struct sim_device *dev, enum sim_table table, int address, enum sim_type type);

// Name <-> enum helpers; the parsers return -1 for unknown names.
int sim_table_parse(const char *s);
const char *sim_table_name(enum sim_table t);
int sim_type_parse(const char *s);
int sim_fault_parse(const char *s);
const char *sim_fault_name(enum sim_fault f);

// ---- Random numbers (deterministic per seed) --------------------------------------------

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
// Uniform in [0, 1).
double sim_rng_unit(struct sim_rng *r);
// Uniform in [-1, 1).
double sim_rng_sym(struct sim_rng *r);

// One step of a mean-reverting random walk around 0: `x` decays towards 0 with time constant
// `tau_s` and receives noise of size `sigma` per square-root second; the result is clamped to
// [-limit, limit].
double sim_walk(struct sim_rng *r, double x, double dt_s, double tau_s, double sigma, double limit);

#endif
