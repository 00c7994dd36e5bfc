// SPDX-License-Identifier: MIT
// Unit tests for entity models (core/model_load, core/model): every loader rule reports its
// message at the right position, options land in the parameter sets, and the value
// transforms (scale, scale factor, precision, inverse for writes, labels) are exact.
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/mem.h"
#include "core/model.h"
#include "drivers/drivers.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define ENTITIES_DIR E2M_SOURCE_DIR "/tests/unit/data/entities"

// Removes `p` and everything below it (test directories only; symlinks are not followed).
static void rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name);
            rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(p);
    } else {
        unlink(p);
    }
}

// Every test works in a fresh directory under `base`, which main() creates and removes, so
// a failing test (whose teardown does not run) leaves nothing behind either.
static char base[PATH_MAX - 32];

static void make_base(const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof(base), "%s/e2m-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        exit(1);
    }
}

static char dir[PATH_MAX];
static char path[PATH_MAX + 64];
static struct arena *arena;
static struct diag diag;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "%s/t-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[PATH_MAX + 8];
    snprintf(sub, sizeof(sub), "%s/test", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/test/m.yaml", dir);
    arena = arena_new();
    diag_init(&diag);
}

static void teardown(void)
{
    diag_free(&diag);
    arena_free(arena);
    rm_tree(dir);
}

static void write_model(const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

// The five header lines every entity case shares; entities start on line 6.
#define HEADER                                                                                     \
    "model: m\n"                                                                                   \
    "manufacturer: T\n"                                                                            \
    "name: T\n"                                                                                    \
    "driver: modbus\n"                                                                             \
    "entities:\n"

static struct model *load_text(const char *text)
{
    write_model(text);
    return model_load_file(arena, path, "test/m", &diag);
}

static void dump_diag(void)
{
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "  %s\n", diag.lines[i]);
}

// ---- Loader rules -------------------------------------------------------------------------

struct rule_case {
    const char *name;
    const char *text; // a whole file (starting with "model:") or entity lines after HEADER
    const char *msgs[4];
};

#define TABLES "holding, input, coil, discrete"

static const struct rule_case rules[] = {
    {"unknown key",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    scael: 2\n",
     {"8:5: entities[0].scael: unknown key (did you mean 'scale'?)"}},
    {"unknown key, no near spelling",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    colour: red\n",
     {"8:5: entities[0].colour: unknown key"}},
    {"missing source",
     "  - id: a\n"
     "    unit: W\n",
     {"6:5: entities[0]: needs a source: register, field or expr"}},
    {"two sources",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    expr: \"1 + 2\"\n",
     {"6:5: entities[0]: give one of register, field or expr, not several"}},
    {"unknown table lists the tables",
     "  - id: a\n"
     "    register: {table: inptu, address: 0}\n",
     {"7:23: entities[0].register.table: expected one of the modbus driver's tables (" TABLES
      "), got 'inptu'"}},
    {"address beyond the table",
     "  - id: a\n"
     "    register: {table: input, address: 65536}\n",
     {"7:39: entities[0].register.address: expected a whole number from 0 to 65535, got 65536"}},
    {"value runs past the table's end",
     "  - id: a\n"
     "    register: {table: input, address: 65535, type: u32}\n",
     {"7:39: entities[0].register.address: a u32 at 65535 runs past the table's last address "
      "65535"}},
    {"unknown type",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: int16}\n",
     {"7:48: entities[0].register.type: expected u16, s16, u32, s32, u64, s64, float32, float64, "
      "u8, s8, bool, string, time_hm or time_hhmm, got 'int16'"}},
    {"bool on holding",
     "  - id: a\n"
     "    register: {table: holding, address: 0, type: bool}\n",
     {"7:50: entities[0].register.type: table 'holding' holds 16-bit registers: bool needs a "
      "coil or discrete table, use bit: N for one bit of a register"}},
    {"u16 on coil",
     "  - id: a\n"
     "    register: {table: coil, address: 0, type: u16}\n",
     {"7:47: entities[0].register.type: table 'coil' holds bits: the type must be bool"}},
    {"string without words",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: string}\n",
     {"7:15: entities[0].register.words: required key is missing"}},
    {"words on a non-string",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: u32, words: 2}\n",
     {"7:60: entities[0].register.words: words is only for type string"}},
    {"bit on a float",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: float32, bit: 3}\n",
     {"7:62: entities[0].register.bit: bit needs an integer register type"}},
    {"bit beyond the register",
     "  - id: a\n"
     "    register: {table: input, address: 0, bit: 16}\n",
     {"7:47: entities[0].register.bit: expected a whole number from 0 to 15, got 16"}},
    {"byte on u16",
     "  - id: a\n"
     "    register: {table: input, address: 0, byte: low}\n",
     {"7:48: entities[0].register.byte: byte is only for u8/s8"}},
    {"min on a sensor",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    min: 0\n",
     {"8:10: entities[0].min: not valid on a sensor (only on number)"}},
    {"press on a switch",
     "  - id: a\n"
     "    component: switch\n"
     "    register: {table: coil, address: 0}\n"
     "    press: 1\n",
     {"9:12: entities[0].press: not valid on a switch (only on button)"}},
    {"state_class on a number",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0}\n"
     "    min: 0\n"
     "    max: 10\n"
     "    state_class: measurement\n",
     {"11:18: entities[0].state_class: not valid on a number (only on sensor)"}},
    {"map on a binary_sensor",
     "  - id: a\n"
     "    component: binary_sensor\n"
     "    register: {table: discrete, address: 0}\n"
     "    map: {0: a}\n",
     {"9:10: entities[0].map: not valid on a binary_sensor (only on sensor, select)"}},
    {"unknown component",
     "  - id: a\n"
     "    component: light\n"
     "    register: {table: coil, address: 0}\n",
     {"7:16: entities[0].component: expected one of sensor, binary_sensor, number, select, "
      "switch, button, text, got 'light'"}},
    {"number min >= max",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0}\n"
     "    min: 10\n"
     "    max: 10\n",
     {"10:10: entities[0].max: max must be greater than min (10)"}},
    {"number without max",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0}\n"
     "    min: 10\n",
     {"6:5: entities[0].max: required key is missing"}},
    {"step below 0.001",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0}\n"
     "    min: 0\n"
     "    max: 1\n"
     "    step: 0.0001\n",
     {"11:11: entities[0].step: expected a number from 0.001 to 1e+15, got 0.0001"}},
    {"select without map",
     "  - id: a\n"
     "    component: select\n"
     "    register: {table: holding, address: 0}\n",
     {"6:5: entities[0]: a select needs a map of raw values to options"}},
    {"map duplicate label",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    map: {0: off, 1: on, 2: off}\n",
     {"8:29: entities[0].map.2: duplicate raw value or label 'off'"}},
    {"map duplicate raw value",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    map: {0: a, 00: b}\n",
     {"8:21: entities[0].map.00: duplicate raw value or label 'b'"}},
    {"map non-integer key",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    map: {1.5: a, x: b}\n",
     {"8:11: entities[0].map.1.5: expected a whole raw value as the key",
      "8:19: entities[0].map.x: expected a whole raw value as the key"}},
    {"map empty",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    map: {}\n",
     {"8:10: entities[0].map: expected at least one raw value: label pair"}},
    {"button without press or action",
     "  - id: a\n"
     "    component: button\n",
     {"6:5: entities[0]: a button needs either press (a raw value to write) or action"}},
    {"button with press but nothing to write to",
     "  - id: a\n"
     "    component: button\n"
     "    press: 1\n",
     {"6:5: entities[0]: a button with press needs register or write"}},
    {"unknown action",
     "  - id: a\n"
     "    component: button\n"
     "    action: reboot\n",
     {"8:13: entities[0].action: the modbus driver has no action 'reboot'"}},
    {"number on a read-only table",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: input, address: 0}\n"
     "    min: 0\n"
     "    max: 10\n",
     {"8:15: entities[0].register: table 'input' cannot be written"}},
    {"switch on discrete inputs",
     "  - id: a\n"
     "    component: switch\n"
     "    register: {table: discrete, address: 0}\n",
     {"8:15: entities[0].register: table 'discrete' cannot be written"}},
    {"write to a read-only table",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0}\n"
     "    write: {table: input, address: 1}\n"
     "    min: 0\n"
     "    max: 10\n",
     {"9:12: entities[0].write: table 'input' cannot be written"}},
    {"number computed by expr",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "  - id: b\n"
     "    component: number\n"
     "    expr: a * 2\n"
     "    min: 0\n"
     "    max: 10\n",
     {"8:5: entities[1]: a number cannot be computed by expr: it must be written to the device"}},
    {"field on a register driver",
     "  - id: a\n"
     "    field: pv.power\n",
     {"7:12: entities[0].field: the modbus driver has no field 'pv.power' (it reads registers, "
      "not fields)"}},
    {"text with a unit",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: string, words: 4}\n"
     "    unit: V\n",
     {"6:5: entities[0]: a text value can only be a sensor or a text without scale, unit or "
      "state_class"}},
    {"text entity on a number register",
     "  - id: a\n"
     "    component: text\n"
     "    register: {table: holding, address: 0}\n",
     {"6:5: entities[0]: a text entity needs a text field of the driver or a time_hm or "
      "time_hhmm register (it is written as text)"}},
    {"text entity on a read-only time_hm",
     "  - id: a\n"
     "    component: text\n"
     "    register: {table: input, address: 0, type: time_hm}\n",
     {"8:15: entities[0].register: table 'input' cannot be written"}},
    {"bit of a time_hm",
     "  - id: a\n"
     "    register: {table: holding, address: 0, type: time_hm, bit: 3}\n",
     {"7:64: entities[0].register.bit: bit needs an integer register type"}},
    {"time_hm with scale",
     "  - id: a\n"
     "    register: {table: holding, address: 0, type: time_hm}\n"
     "    scale: 2\n",
     {"6:5: entities[0]: a text value can only be a sensor or a text without scale, unit or "
      "state_class"}},
    {"bits on a number",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0}\n"
     "    min: 0\n"
     "    max: 9\n"
     "    bits: {0: A}\n",
     {"11:11: entities[0].bits: not valid on a number (only on sensor)"}},
    {"bits: a bit beyond 63",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: u32}\n"
     "    bits: {0: A, 64: B}\n",
     {"8:18: entities[0].bits.64: expected a bit number from 0 to 63 as the key"}},
    {"bits: with a unit",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    unit: V\n"
     "    bits: {1: A}\n",
     {"9:11: entities[0].bits: a sensor with bits shows text: it takes a number register or "
      "field without scale, offset, unit, device_class or state_class"}},
    {"bits: a bit twice",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    bits: {1: A, 0x1: B}\n",
     {"8:18: entities[0].bits.0x1: bit 1 is given twice"}},
    {"pattern on a sensor",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    pattern: '^[0-9]$'\n",
     {"8:14: entities[0].pattern: not valid on a sensor (only on text)"}},
    {"text: a pattern that does not compile",
     "model: m\nmanufacturer: T\nname: T\ndriver: venus\nentities:\n"
     "  - id: a\n"
     "    component: text\n"
     "    field: slot1_start\n"
     "    pattern: '[0-9'\n",
     {"9:14: entities[0].pattern: not a valid regular expression: Unmatched [, [^, [:, [., or [="}},
    {"text: a backslash class",
     "model: m\nmanufacturer: T\nname: T\ndriver: venus\nentities:\n"
     "  - id: a\n"
     "    component: text\n"
     "    field: slot1_start\n"
     "    pattern: '^\\d\\d:\\d\\d$'\n",
     {"9:14: entities[0].pattern: '\\d' means different things to Home Assistant and to "
      "POSIX; write the characters out, e.g. [0-9] for \\d"}},
    {"text: a field the driver cannot write",
     "model: m\nmanufacturer: T\nname: T\ndriver: venus\nentities:\n"
     "  - id: a\n"
     "    component: text\n"
     "    field: firmware\n",
     {"8:12: entities[0].field: the venus driver cannot write field 'firmware'"}},
    {"text: a number field",
     "model: m\nmanufacturer: T\nname: T\ndriver: venus\nentities:\n"
     "  - id: a\n"
     "    component: text\n"
     "    field: slot1_power\n",
     {"6:5: entities[0]: a text entity needs a text field of the driver or a time_hm or "
      "time_hhmm register (it is written as text)"}},
    {"text: no device class",
     "model: m\nmanufacturer: T\nname: T\ndriver: venus\nentities:\n"
     "  - id: a\n"
     "    component: text\n"
     "    field: slot1_start\n"
     "    device_class: date\n",
     {"9:19: entities[0].device_class: 'date' is not a device class of text in Home Assistant "
      "2026.10"}},
    {"scale of zero",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    scale: 0\n",
     {"8:12: entities[0].scale: a scale of 0 would make every value 0"}},
    {"precision out of range",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    precision: 10\n",
     {"8:16: entities[0].precision: expected a whole number from 0 to 9, got 10"}},
    {"duplicate id",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "  - id: a\n"
     "    register: {table: input, address: 1}\n",
     {"8:9: entities[1].id: duplicate id (first used at line 6)"}},
    {"bad id",
     "  - id: Power-1\n"
     "    register: {table: input, address: 0}\n",
     {"6:9: entities[0].id: expected 1-64 characters of a-z, 0-9 and _, got 'Power-1'"}},
    {"missing id",
     "  - register: {table: input, address: 0}\n",
     {"6:5: entities[0].id: required key is missing"}},
    {"device class of another platform",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    device_class: problem\n",
     {"8:19: entities[0].device_class: 'problem' is not a device class of sensor in Home "
      "Assistant 2026.10"}},
    {"unit not allowed for the device class",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    device_class: power\n"
     "    unit: kWh\n",
     {"9:11: entities[0].unit: device class power takes mW, W, kW, MW, GW, TW, got 'kWh'"}},
    {"device class without its unit",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    device_class: power\n",
     {"8:19: entities[0].unit: device class power takes mW, W, kW, MW, GW, TW, got no unit"}},
    {"reserved id",
     "  - id: link_status\n"
     "    register: {table: input, address: 0}\n",
     {"6:9: entities[0].id: 'link_status' is reserved for a diagnostic every device has"}},
    {"u8 bit beyond the byte",
     "  - id: a\n"
     "    register: {table: input, address: 0, type: u8, bit: 8}\n",
     {"7:57: entities[0].register.bit: expected a whole number from 0 to 7, got 8"}},
    {"u8 written",
     "  - id: a\n"
     "    component: number\n"
     "    register: {table: holding, address: 0, type: u8}\n"
     "    min: 0\n"
     "    max: 10\n",
     {"6:5: entities[0]: u8/s8 registers cannot be written (the other byte of the register "
      "would be lost)"}},
    {"mapped sensor with another device class",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    device_class: power\n"
     "    unit: W\n"
     "    map: {0: idle}\n",
     {"8:19: entities[0].device_class: a sensor with a map is an enum sensor: leave "
      "device_class out or set enum, got 'power'"}},
    {"max_rate without a counter",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    max_rate: 5\n",
     {"8:15: entities[0].max_rate: max_rate only applies to counters (state_class "
      "total_increasing, or counter: lifetime/daily/continuous)"}},
    {"power sensor the Energy dashboard cannot use",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    device_class: power\n"
     "    unit: W\n",
     {"8:19: entities[0].state_class: the Energy dashboard offers a power sensor (power) only "
      "with state_class measurement, got none"}},
    {"energy with measurement",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    device_class: energy\n"
     "    unit: kWh\n"
     "    state_class: measurement\n",
     {"10:18: entities[0].state_class: device class energy takes total, total_increasing, got "
      "measurement"}},
    {"unknown state class",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    state_class: measurment\n",
     {"8:18: entities[0].state_class: expected measurement, total, total_increasing or "
      "measurement_angle, got 'measurment'"}},
    {"config category on a sensor",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    category: config\n",
     {"8:15: entities[0].category: a sensor cannot have category 'config' (Home Assistant "
      "refuses config on sensors and binary sensors)"}},
    {"icon without mdi:",
     "  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "    icon: flash\n",
     {"8:11: entities[0].icon: expected an icon such as mdi:flash, got 'flash'"}},
    {"unknown option lists the known ones",
     NULL, // filled in by the test: the list is long
     {NULL}},
    {"model key differs from the file name",
     "model: other\n"
     "manufacturer: T\n"
     "name: T\n"
     "driver: modbus\n"
     "entities: []\n",
     {"1:8: model: expected 'm' (the file's name), got 'other'"}},
    {"unknown driver",
     "model: m\n"
     "manufacturer: T\n"
     "name: T\n"
     "driver: sunspec\n"
     "entities: []\n",
     {"4:9: driver: expected one of modbus, smartmeter, hoymiles, venus, luxpower, givenergy, "
      "got 'sunspec'"}},
    {"unknown top-level key and missing ones",
     "model: m\n"
     "driver: modbus\n"
     "entites: []\n",
     {"3:1: entites: unknown key (did you mean 'entities'?)",
      "1:1: manufacturer: required key is missing", "1:1: name: required key is missing",
      "1:1: entities: required key is missing"}},
    {"entities not a list",
     "model: m\n"
     "manufacturer: T\n"
     "name: T\n"
     "driver: modbus\n"
     "entities: {a: 1}\n",
     {"5:11: entities: expected a list, got a mapping"}},
    {"empty file", "", {"1:1: (document): the file is empty"}},
};

START_TEST(test_rule)
{
    const struct rule_case *c = &rules[_i];
    if (!c->text) {
        // Options: an unknown key names everything the driver takes.
        struct model *m = load_text("model: m\n"
                                    "manufacturer: T\n"
                                    "name: T\n"
                                    "driver: modbus\n"
                                    "options:\n"
                                    "  pol_interval: 5s\n"
                                    "entities: []\n");
        ck_assert_ptr_null(m);
        ck_assert_uint_eq(diag.n, 1);
        char want[PATH_MAX + 200];
        snprintf(want, sizeof(want),
                 "%s:6:3: options.pol_interval: unknown option for driver modbus (known: "
                 "quiet_windows, poll_interval, min_request_gap, ",
                 path);
        ck_assert_msg(strncmp(diag.lines[0], want, strlen(want)) == 0, "got %s", diag.lines[0]);
        ck_assert_ptr_nonnull(strstr(diag.lines[0], ", max_gap, write_function)"));
        return;
    }
    char text[2048];
    if (strncmp(c->text, "model:", 6) == 0 || !*c->text)
        snprintf(text, sizeof(text), "%s", c->text);
    else
        snprintf(text, sizeof(text), HEADER "%s", c->text);
    struct model *m = load_text(text);
    size_t want_n = 0;
    while (want_n < N(c->msgs) && c->msgs[want_n])
        want_n++;
    if (diag.n != want_n)
        dump_diag();
    ck_assert_msg(m == NULL, "%s: loaded", c->name);
    ck_assert_msg(diag.n == want_n, "%s: %zu diagnostics, expected %zu", c->name, diag.n, want_n);
    for (size_t i = 0; i < want_n; i++) {
        char want[PATH_MAX + 300];
        snprintf(want, sizeof(want), "%s:%s", path, c->msgs[i]);
        ck_assert_str_eq(diag.lines[i], want);
    }
}
END_TEST

// Expression errors point at the offending character; a quoted expression is one further
// right. The key path is checked loosely: it names the entity and "expr".
struct expr_case {
    const char *entities;
    const char *pos; // "line:col: "
    const char *msg;
};

static const struct expr_case expr_cases[] = {
    {"  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "  - id: b\n"
     "    expr: a + pv_powr\n",
     "9:15: ", ": unknown name 'pv_powr'"},
    {"  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "  - id: b\n"
     "    expr: \"a + pv_powr\"\n",
     "9:16: ", ": unknown name 'pv_powr'"},
    {"  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "  - id: b\n"
     "    expr: (a + 1\n",
     "9:17: ", ": expected ')'"},
    {"  - id: a\n"
     "    expr: b + 1\n"
     "  - id: b\n"
     "    expr: a * 2\n",
     "7:11: ", ": expressions refer to each other in a circle"},
    {"  - id: a\n"
     "    register: {table: input, address: 0}\n"
     "  - id: b\n"
     "    expr: b + a\n",
     "9:11: ", ": expressions refer to each other in a circle"},
};

// A text entity: a writable text field with the pattern commands must match.
START_TEST(test_text_entity)
{
    struct model *m = load_text("model: m\nmanufacturer: T\nname: T\ndriver: venus\nentities:\n"
                                "  - id: start\n"
                                "    component: text\n"
                                "    field: slot1_start\n"
                                "    pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$'\n"
                                "    category: config\n"
                                "    write_interval: 2s\n"
                                "  - id: days\n"
                                "    component: text\n"
                                "    field: slot1_weekdays\n");
    if (!m)
        dump_diag();
    ck_assert_ptr_nonnull(m);
    const struct entity *e = model_find(m, "start");
    ck_assert_int_eq(e->component, COMP_TEXT);
    ck_assert_str_eq(component_name(e->component), "text");
    ck_assert(e->writable);
    ck_assert(e->text);
    ck_assert_int_eq(e->source, SRC_FIELD);
    ck_assert_str_eq(e->pattern, "^([01][0-9]|2[0-3]):[0-5][0-9]$");
    ck_assert(e->has_write_interval);
    ck_assert_int_eq(e->write_interval_ms, 2000);
    e = model_find(m, "days");
    ck_assert_ptr_null(e->pattern);
    ck_assert(e->writable);
}
END_TEST

// A time of day in a holding register, read and written as HH:MM text.
START_TEST(test_time_register_text_entity)
{
    struct model *m = load_text(HEADER "  - id: start\n"
                                       "    component: text\n"
                                       "    register: {table: holding, address: 68, type: time_hm, "
                                       "byte_order: little}\n"
                                       "    pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$'\n"
                                       "  - id: shown\n"
                                       "    register: {table: input, address: 3, type: time_hm}\n");
    if (!m)
        dump_diag();
    ck_assert_ptr_nonnull(m);
    const struct entity *e = model_find(m, "start");
    ck_assert_int_eq(e->component, COMP_TEXT);
    ck_assert_int_eq(e->source, SRC_REGISTER);
    ck_assert(e->text && e->writable);
    ck_assert_int_eq(e->reg.fmt.type, REG_TIME_HM);
    ck_assert_int_eq(e->reg.fmt.byte_order, REG_ORDER_LITTLE);
    e = model_find(m, "shown");
    ck_assert(e->text && !e->writable);
}
END_TEST

// A bit field as text: the active bits' labels; map names whole values.
START_TEST(test_bits_entity)
{
    struct model *m = load_text(HEADER "  - id: fault\n"
                                       "    register: {table: input, address: 60, type: u32}\n"
                                       "    map: {0: OK}\n"
                                       "    bits: {0: Comms, 3: Hot, 31: Fan}\n");
    if (!m)
        dump_diag();
    ck_assert_ptr_nonnull(m);
    const struct entity *e = model_find(m, "fault");
    ck_assert_uint_eq(e->n_bits, 3);
    ck_assert_ptr_null(e->device_class); // text, not an enum
    ck_assert(!e->text);
    static const struct {
        double raw;
        size_t size;
        const char *want;
        int rc;
    } cases[] = {
        {0, 64, "OK", 0},
        {1, 64, "Comms", 0},
        {9, 64, "Comms, Hot", 0},
        {2147483656.0, 64, "Hot, Fan", 0},
        {6, 64, "bit 1, bit 2", 0},
        {9, 11, "Comms, Hot", 0},            // just fits
        {2147483657.0, 15, "Comms, ...", 0}, // "Comms, Hot, Fan" does not: cut
        {9, 10, "...", 0},                   // not even the first label with ", ..." after it
        {8, 4, "Hot", 0},                    // the last label needs no room for more
        {-1, 64, "", -ERANGE},
        {1.5, 64, "", -ERANGE},
        {18014398509481984.0, 64, "", -ERANGE},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char out[64];
        memset(out, 'Z', sizeof(out));
        ck_assert_int_eq(entity_bits_text(e, cases[i].raw, out, cases[i].size), cases[i].rc);
        ck_assert_msg(strcmp(out, cases[i].want) == 0, "%g in %zu: '%s', want '%s'", cases[i].raw,
                      cases[i].size, out, cases[i].want);
        ck_assert_uint_lt(strlen(out), cases[i].size);
    }
    // Without a map, no bit set is the empty text.
    struct entity bare = *e;
    bare.n_map = 0;
    char out[16];
    ck_assert_int_eq(entity_bits_text(&bare, 0, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_expr_errors)
{
    const struct expr_case *c = &expr_cases[_i];
    char text[1024];
    snprintf(text, sizeof(text), HEADER "%s", c->entities);
    ck_assert_ptr_null(load_text(text));
    if (diag.n != 1)
        dump_diag();
    ck_assert_uint_eq(diag.n, 1);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want), "%s:%s", path, c->pos);
    const char *line = diag.lines[0];
    ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "expected %s..., got %s", want, line);
    ck_assert_msg(strlen(line) > strlen(c->msg) &&
                      strcmp(line + strlen(line) - strlen(c->msg), c->msg) == 0,
                  "expected ...%s, got %s", c->msg, line);
    ck_assert_ptr_nonnull(strstr(line, "expr: "));
}
END_TEST

// Several problems in one file are all reported, in file order.
START_TEST(test_reports_every_problem)
{
    ck_assert_ptr_null(load_text(HEADER "  - id: a\n"
                                        "    register: {table: input, address: 0}\n"
                                        "    icon: x\n"
                                        "  - id: b\n"
                                        "    register: {table: inptu, address: 0}\n"
                                        "  - id: c\n"
                                        "    component: select\n"
                                        "    register: {table: holding, address: 0}\n"));
    ck_assert_uint_eq(diag.n, 3);
    ck_assert_ptr_nonnull(strstr(diag.lines[0], ":8:11: entities[0].icon"));
    ck_assert_ptr_nonnull(strstr(diag.lines[1], ":10:23: entities[1].register.table"));
    ck_assert_ptr_nonnull(strstr(diag.lines[2], ":11:5: entities[2]: a select needs"));
}
END_TEST

// ---- What a valid file turns into ---------------------------------------------------------

START_TEST(test_options_into_core_options)
{
    struct model *m = load_text("model: m\n"
                                "manufacturer: T\n"
                                "name: T\n"
                                "driver: modbus\n"
                                "options:\n"
                                "  poll_interval: 5s\n"
                                "  offline_after: 7\n"
                                "  max_registers: 60\n"
                                "  unsafe_timing: yes\n"
                                "  write_function: multiple\n"
                                "  quiet_windows:\n"
                                "    - {every: 5m, start: \"4:50\", length: 20s}\n"
                                "    - {every: 1d, start: \"23:55\", length: 10m}\n"
                                "entities:\n"
                                "  - id: a\n"
                                "    register: {table: input, address: 0}\n");
    if (!m)
        dump_diag();
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(params_ms(&m->core_options, "poll_interval"), 5000);
    ck_assert_uint_eq(params_value(&m->core_options, "poll_interval")->line, 6);
    ck_assert_int_eq(params_int(&m->core_options, "offline_after"), 7);
    ck_assert_int_eq(params_int(&m->core_options, "max_registers"), 60);
    ck_assert(params_bool(&m->core_options, "unsafe_timing"));
    ck_assert_int_eq(params_choice(&m->driver_options, "write_function"), 2);
    // Defaults of the core table, and timing left for the driver to fill in.
    ck_assert_int_eq(params_int(&m->core_options, "write_retries"), 2);
    ck_assert_int_eq(params_ms(&m->core_options, "write_expiry"), 300000);
    ck_assert(!params_is_set(&m->core_options, "min_request_gap"));
    ck_assert(!params_is_set(&m->core_options, "stale_after"));
    ck_assert_uint_eq(m->n_windows, 2);
    ck_assert_int_eq(m->windows[0].period_ms, 300000);
    ck_assert_int_eq(m->windows[0].start_ms, 290000); // m:ss inside 5 minutes
    ck_assert_int_eq(m->windows[0].length_ms, 20000);
    ck_assert_int_eq(m->windows[1].period_ms, 86400000);
    ck_assert_int_eq(m->windows[1].start_ms, (23 * 60 + 55) * 60000LL); // h:mm in a day
    ck_assert_int_eq(m->windows[1].length_ms, 600000);
    ck_assert_ptr_eq(m->driver, drivers_find("modbus"));
    ck_assert_str_eq(m->key, "test/m");
}
END_TEST

START_TEST(test_fixture_meter)
{
    struct model *m = model_load_file(arena, ENTITIES_DIR "/test/meter.yaml", "test/meter", &diag);
    if (!m)
        dump_diag();
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->n_entities, 14);
    ck_assert_str_eq(m->manufacturer, "Test Co");
    const struct entity *e = model_find(m, "energy");
    ck_assert_int_eq(e->counter, COUNTER_LIFETIME); // from total_increasing
    ck_assert_double_eq(e->max_rate, 50);
    ck_assert_int_eq(e->reg.fmt.type, REG_U32);
    ck_assert_uint_eq(e->reg.fmt.words, 2);
    ck_assert_int_eq(e->precision, -1);
    e = model_find(m, "status");
    ck_assert_str_eq(e->device_class, "enum"); // a mapped sensor is an enum
    ck_assert_uint_eq(e->n_map, 3);
    ck_assert_int_eq(model_find(m, "power")->counter, COUNTER_NONE);
    e = model_find(m, "limit");
    ck_assert(e->writable);
    ck_assert_str_eq(e->mode, "box");
    ck_assert_double_eq(e->step, 1);
    ck_assert_int_eq(model_find(m, "setpoint")->reg.fmt.type, REG_S16);
    ck_assert(model_find(m, "serial")->text);
    ck_assert(model_find(m, "raw_power")->internal);
    ck_assert_int_eq(model_find(m, "net_power")->source, SRC_EXPR);
    ck_assert_ptr_nonnull(model_find(m, "net_power")->expr);
    ck_assert(!model_find(m, "frequency")->enabled_by_default);
    ck_assert(model_find(m, "reset")->has_press);
    ck_assert(!model_find(m, "voltage")->writable);
    ck_assert_ptr_null(model_find(m, "nope"));
    ck_assert_uint_eq(model_index(m, model_find(m, "power")), 1);
    ck_assert_int_eq(params_ms(&m->core_options, "poll_interval"), 20000);
}
END_TEST

START_TEST(test_model_load_search)
{
    const char *dirs[] = {dir, ENTITIES_DIR};
    struct model *m = model_load(arena, dirs, 2, "test/meter", &diag);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->file, ENTITIES_DIR "/test/meter.yaml");
    // The first directory that has the file wins.
    write_model(HEADER "  - id: only_here\n"
                       "    register: {table: input, address: 0}\n");
    m = model_load(arena, dirs, 2, "test/m", &diag);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(model_find(m, "only_here"));
    // Bad keys and missing files: NULL without a diagnostic (the caller reports them).
    static const char *const bad[] = {"meter",       "test/nope", "Test/meter", "test/../test/m",
                                      "/test/meter", "test/",     "a/b/c",      ""};
    for (size_t i = 0; i < N(bad); i++)
        ck_assert_msg(model_load(arena, dirs, 2, bad[i], &diag) == NULL, "'%s' loaded", bad[i]);
    ck_assert_uint_eq(diag.n, 0);
}
END_TEST

// ---- Value transforms ---------------------------------------------------------------------

static struct entity reg_entity(enum reg_type type, double scale, double offset, int precision)
{
    struct entity e = {.id = "x", .source = SRC_REGISTER, .scale = scale, .offset = offset};
    e.precision = precision;
    regmap_format_init(&e.reg.fmt, type, type == REG_STRING ? 2 : 0);
    return e;
}

struct value_case {
    enum reg_type type;
    enum source source;
    double scale, offset;
    int precision, sf;
    double raw, want;
};

static const struct value_case value_cases[] = {
    {REG_U16, SRC_REGISTER, 1, 0, -1, 0, 1234, 1234},
    {REG_U16, SRC_REGISTER, 0.1, 0, -1, 0, 2301, 230.1}, // one decimal for 0.1
    {REG_U16, SRC_REGISTER, 0.01, 0, -1, 0, 4999, 49.99},
    {REG_U16, SRC_REGISTER, 0.001, 0, -1, 0, 1, 0.001},
    {REG_U16, SRC_REGISTER, 0.5, 0, -1, 0, 3, 1.5},
    {REG_U16, SRC_REGISTER, 0.25, 0, -1, 0, 1, 0.25}, // a quarter needs two decimals
    {REG_S16, SRC_REGISTER, 0.1, -40, -1, 0, 655, 25.5},
    {REG_S16, SRC_REGISTER, 0.1, 0, -1, 0, -1, -0.1},
    {REG_S16, SRC_REGISTER, -1, 0, -1, 0, 5, -5},
    {REG_U16, SRC_REGISTER, 1, 0, -1, -2, 12345, 123.45}, // sf -2: two decimals
    {REG_U16, SRC_REGISTER, 1, 0, -1, 2, 5, 500},
    {REG_U16, SRC_REGISTER, 0.1, 0, -1, -1, 12345, 123.45},
    {REG_S32, SRC_REGISTER, 1, 0, -1, -3, -123456, -123.456},
    {REG_U32, SRC_REGISTER, 1000, 0, -1, 0, 5, 5000},
    {REG_U16, SRC_REGISTER, 0.1, 0, 0, 0, 2306, 231}, // explicit precision rounds
    {REG_U16, SRC_REGISTER, 0.01, 0, 1, 0, 4999, 50},
    {REG_F32, SRC_REGISTER, 1, 0, -1, 0, 230.123456, 230.123}, // floats: 3 decimals
    {REG_F32, SRC_REGISTER, 1, 0, 1, 0, 230.16, 230.2},
    {REG_F32, SRC_REGISTER, 1, 0, -1, 0, -0.0001, 0}, // and never -0
    {REG_F64, SRC_REGISTER, 2, 1, -1, 0, 0.5, 2},
    {REG_U16, SRC_EXPR, 1, 0, -1, 0, 1.23456, 1.235}, // computed: 3 decimals
    {REG_U16, SRC_FIELD, 0.1, 0, -1, 0, 1.23456, 0.123},
};

START_TEST(test_entity_value)
{
    const struct value_case *c = &value_cases[_i];
    struct entity e = reg_entity(c->type, c->scale, c->offset, c->precision);
    e.source = c->source;
    double v = entity_value(&e, c->raw, c->sf);
    ck_assert_msg(v == c->want, "case %d: %.17g, expected %.17g", _i, v, c->want);
    ck_assert(!signbit(v) || v != 0);
}
END_TEST

struct resolution_case {
    enum reg_type type;
    double scale;
    int precision, sf;
    double want;
};

static const struct resolution_case resolution_cases[] = {
    {REG_U16, 0.1, -1, 0, 0.1},  {REG_U16, 1, -1, -2, 0.01},   {REG_U16, 1, -1, 0, 1},
    {REG_U16, 10, -1, 0, 1},     {REG_F32, 1, -1, 0, 0.001},   {REG_F32, 1, 2, 0, 0.01},
    {REG_U16, 0.1, 3, 0, 0.001}, {REG_U16, 0.25, -1, 0, 0.01},
};

START_TEST(test_entity_resolution)
{
    const struct resolution_case *c = &resolution_cases[_i];
    struct entity e = reg_entity(c->type, c->scale, 0, c->precision);
    ck_assert_double_eq_tol(entity_resolution(&e, c->sf), c->want, c->want * 1e-9);
}
END_TEST

struct raw_case {
    enum reg_type type;
    int bit;
    double scale, offset;
    int sf;
    double value;
    int rc;
    double raw;
};

static const struct raw_case raw_cases[] = {
    {REG_U16, -1, 0.1, 0, 0, 23.5, 0, 235},
    {REG_U16, -1, 0.1, 0, 0, 23.55, -ERANGE, 0}, // between two raw values
    {REG_U16, -1, 0.1, 0, 0, 6553.5, 0, 65535},
    {REG_U16, -1, 0.1, 0, 0, 6553.6, -ERANGE, 0}, // beyond u16
    {REG_U16, -1, 1, 0, 0, -1, -ERANGE, 0},
    {REG_U16, -1, 0.01, 0, 0, 0.07, 0, 7}, // 0.07 / 0.01 is 7.000000000000001
    {REG_S16, -1, 0.1, -40, 0, 25.5, 0, 655},
    {REG_S16, -1, 1, 0, 0, -32768, 0, -32768},
    {REG_S16, -1, 1, 0, 0, -32769, -ERANGE, 0},
    {REG_U32, -1, 1, 0, 0, 4294967295.0, 0, 4294967295.0},
    {REG_U32, -1, 1, 0, 0, 4294967296.0, -ERANGE, 0},
    {REG_U16, -1, 1, 0, -2, 123.45, 0, 12345},
    {REG_U16, -1, 1, 0, 2, 500, 0, 5},
    {REG_U16, -1, 1, 0, 2, 550, -ERANGE, 0},
    {REG_U16, 3, 1, 0, 0, 1, 0, 1},
    {REG_U16, 3, 1, 0, 0, 0, 0, 0},
    {REG_U16, 3, 1, 0, 0, 2, -ERANGE, 0}, // a bit is 0 or 1
    {REG_U16, 3, 1, 0, 0, 0.5, -ERANGE, 0},
    {REG_U16, 3, 1, 0, 0, -1, -ERANGE, 0},
    {REG_F32, -1, 1, 0, 0, 1.2345, 0, 1.2345}, // floats are not rounded
    {REG_F32, -1, 0.5, 0, 0, 1.2345, 0, 2.469},
    {REG_U16, -1, 1, 0, 0, NAN, -ERANGE, 0},
    {REG_U16, -1, 1, 0, 0, INFINITY, -ERANGE, 0},
};

START_TEST(test_entity_raw)
{
    const struct raw_case *c = &raw_cases[_i];
    struct entity e = reg_entity(c->type, c->scale, c->offset, -1);
    e.reg.fmt.bit = (int8_t)c->bit;
    double raw = -12345;
    int rc = entity_raw(&e, c->value, c->sf, &raw);
    ck_assert_msg(rc == c->rc, "case %d (%g): rc %d, expected %d", _i, c->value, rc, c->rc);
    if (rc == 0)
        ck_assert_msg(fabs(raw - c->raw) <= 1e-9 * fmax(1, fabs(c->raw)),
                      "case %d: raw %.17g, expected %.17g", _i, raw, c->raw);
    else
        ck_assert_double_eq(raw, -12345);
}
END_TEST

// A separate write register decides the raw type, not the read register.
START_TEST(test_entity_raw_uses_write_register)
{
    struct entity e = reg_entity(REG_F32, 0.1, 0, -1);
    e.has_write = true;
    regmap_format_init(&e.write.fmt, REG_U16, 0);
    double raw;
    ck_assert_int_eq(entity_raw(&e, 1.25, 0, &raw), -ERANGE); // 12.5 is not a whole u16
    ck_assert_int_eq(entity_raw(&e, 1.2, 0, &raw), 0);
    ck_assert_double_eq(raw, 12);
    // An expression-free field entity has no register type to respect.
    struct entity f = reg_entity(REG_U16, 1, 0, -1);
    f.source = SRC_FIELD;
    ck_assert_int_eq(entity_raw(&f, -7.5, 0, &raw), 0);
    ck_assert_double_eq(raw, -7.5);
}
END_TEST

// The round trip value -> raw -> value is the identity on the entity's grid.
START_TEST(test_value_raw_round_trip)
{
    struct entity e = reg_entity(REG_S16, 0.1, -40, -1);
    for (int raw = -32768; raw <= 32767; raw += 7) {
        double v = entity_value(&e, raw, 0);
        double back;
        ck_assert_int_eq(entity_raw(&e, v, 0, &back), 0);
        ck_assert_msg(back == raw, "%d -> %g -> %g", raw, v, back);
    }
}
END_TEST

START_TEST(test_labels)
{
    static const struct enum_entry map[] = {{0, "off"}, {1, "on"}, {5, "fault"}, {-2, "minus"}};
    struct entity e = reg_entity(REG_S16, 1, 0, -1);
    e.map = map;
    e.n_map = N(map);
    ck_assert_str_eq(entity_label(&e, 1), "on");
    ck_assert_str_eq(entity_label(&e, 5), "fault");
    ck_assert_str_eq(entity_label(&e, -2), "minus");
    ck_assert_ptr_null(entity_label(&e, 2));
    ck_assert_ptr_null(entity_label(&e, 1.5));
    double raw = -1;
    ck_assert_int_eq(entity_label_raw(&e, "fault", &raw), 0);
    ck_assert_double_eq(raw, 5);
    ck_assert_int_eq(entity_label_raw(&e, "off", &raw), 0);
    ck_assert_double_eq(raw, 0);
    raw = 99;
    ck_assert_int_eq(entity_label_raw(&e, "ON", &raw), -ENOENT);
    ck_assert_int_eq(entity_label_raw(&e, "", &raw), -ENOENT);
    ck_assert_double_eq(raw, 99);
    struct entity none = reg_entity(REG_U16, 1, 0, -1);
    ck_assert_ptr_null(entity_label(&none, 0));
    ck_assert_int_eq(entity_label_raw(&none, "off", &raw), -ENOENT);
}
END_TEST

START_TEST(test_round)
{
    struct entity e = reg_entity(REG_F32, 1, 0, 2);
    ck_assert_double_eq(entity_round(&e, 1.234), 1.23);
    ck_assert_double_eq(entity_round(&e, 1.236), 1.24);
    double z = entity_round(&e, -0.001);
    ck_assert(z == 0 && !signbit(z));
    e.precision = -1;
    ck_assert_double_eq(entity_round(&e, 1.23456789), 1.23456789);
    ck_assert_str_eq(component_name(COMP_BINARY_SENSOR), "binary_sensor");
    ck_assert_str_eq(component_name(COMP_BUTTON), "button");
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_rule, 0, N(rules));
    tcase_add_loop_test(tc, test_expr_errors, 0, N(expr_cases));
    tcase_add_test(tc, test_text_entity);
    tcase_add_test(tc, test_time_register_text_entity);
    tcase_add_test(tc, test_bits_entity);
    tcase_add_test(tc, test_reports_every_problem);
    tcase_add_test(tc, test_options_into_core_options);
    tcase_add_test(tc, test_fixture_meter);
    tcase_add_test(tc, test_model_load_search);
    suite_add_tcase(s, tc);

    TCase *vc = tcase_create("values");
    tcase_add_loop_test(vc, test_entity_value, 0, N(value_cases));
    tcase_add_loop_test(vc, test_entity_resolution, 0, N(resolution_cases));
    tcase_add_loop_test(vc, test_entity_raw, 0, N(raw_cases));
    tcase_add_test(vc, test_entity_raw_uses_write_register);
    tcase_add_test(vc, test_value_raw_round_trip);
    tcase_add_test(vc, test_labels);
    tcase_add_test(vc, test_round);
    suite_add_tcase(s, vc);
    return s;
}

int main(void)
{
    make_base("model");
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    rm_tree(base);
    return failed ? 1 : 0;
}
