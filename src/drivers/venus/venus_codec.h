// SPDX-License-Identifier: MIT
// Marstek Venus (HAME "hame_energy") MQTT payloads as pure functions: the key=value parser,
// message kinds, value decoding with the garbage guards, and the command encoders. No I/O, no
// clock: the caller passes the time to set.
//
// Requests go to hame_energy/<type>/App/<mac>/ctrl as `cd=<n>[,key=value...]`; replies come on
// hame_energy/<type>/device/<mac>/ctrl as comma-separated key=value pairs (and the same under
// marstek_energy/). Replies say nothing about which request they answer: a message is known by
// the keys it carries.
#ifndef E2M_VENUS_CODEC_H
#define E2M_VENUS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum {
    VN_MAX_PAYLOAD = 4096, // longer payloads are refused (a runtime reply is about 1 KiB)
    VN_MAX_PAIRS = 256,    // pairs after this many are ignored
    VN_SLOTS = 10,         // schedule slots tim_0 .. tim_9
    VN_MAX_POWER = 10000,  // |W| a slot or a power setting may carry before it is garbage
};

// ---- parsing ----------------------------------------------------------------------------

// A payload split into pairs. Keys and values point into `buf` and are trimmed of spaces.
// A segment without '=' is either `name:value` (the network reply's form, after an optional
// `dev_net_info:` prefix) or a bare value stored under the empty key (the clock echo's date).
// A key given twice keeps its first position and its last value.
struct vn_msg {
    size_t n;
    bool truncated; // more than VN_MAX_PAIRS pairs: the rest was ignored
    const char *key[VN_MAX_PAIRS];
    const char *value[VN_MAX_PAIRS];
    char buf[VN_MAX_PAYLOAD + 1];
};

// Parses `len` bytes (up to the first NUL). Returns 0, or -EMSGSIZE for a payload longer than
// VN_MAX_PAYLOAD (then *out holds no pairs).
int vn_parse(const char *payload, size_t len, struct vn_msg *out);
// The value of `key`, or NULL when absent.
const char *vn_get(const struct vn_msg *m, const char *key);
// A whole value that is a plain finite decimal number ("12", "-3.5"; not "0x10", "inf", "").
bool vn_number_text(const char *text, double *out);

enum vn_kind {
    VN_KIND_UNKNOWN,
    VN_KIND_RUNTIME,  // the cd=1 reply: all 21 core keys
    VN_KIND_BMS,      // the cd=14 reply: b_ver, b_soc, b_tp1, b_vo1
    VN_KIND_CT_POWER, // the cd=19 reply: get_power
    VN_KIND_NETWORK,  // the cd=26 reply: ip, gate, ct_connect_ip
    VN_KIND_ACK,      // a write acknowledgement (ret, optionally cd) or the cd=4 clock echo
};

enum vn_kind vn_classify(const struct vn_msg *m);
const char *vn_kind_name(enum vn_kind k); // "runtime", "bms", "ct_power", "network", ...

// ---- values -----------------------------------------------------------------------------

enum vn_result {
    VN_ABSENT,  // the message does not carry it
    VN_INVALID, // present, but garbage: the value is unknown
    VN_OK,
};

// The value of `path` in the units the driver publishes, after the guards:
//  - a plain key ("tot_i", "grd_o", "wor_m", ...) scaled to kWh, W, VA, %, EUR, dBm, V, A, degC
//    (whole degrees: see vn_temperature_scale), mV; enum keys give their raw code, which must be
//    one the protocol defines; 0/1 keys give 0 or 1;
//  - "key.sub" for sub-fields: pv1..pv4 ".power" (W) and ".connected" (0/1); pv ".today" and
//    ".total" (kWh); get_power ".a", ".b", ".c", ".total", ".output" (W); fu ".enabled" and
//    ble ".advertising" (0/1); pack ".count" (battery packs), ".mask" (which are present) and
//    ".index";
//  - "pv_power": the sum of the pv1..pv4 powers present (absent when none is).
// Guards: mcp_w outside 0..2500 W, dod outside 30..88 %, an unknown set_v code, a non-numeric
// value, a cell voltage of 0 (an unused cell) are VN_INVALID.
enum vn_result vn_value(const struct vn_msg *m, const char *path, double *out);

// Power version (set_v) codes: the maximum output in W, 0 for "the model's default", -1 unknown.
int vn_power_version_watts(int code);

// Cell and MOSFET temperatures (b_tp1..4, b_mot) are whole degrees on HMG and VNSE3 but tenths
// on VNSA and VNSD: the factor to apply for device type `type` (1 or 0.1).
double vn_temperature_scale(const char *type);

// Cell voltages b_vo1..b_vo16 in V, without unused (0) cells: min, max, mean, max - min.
// Returns the number of cells used (0: nothing is set).
int vn_cell_stats(const struct vn_msg *m, double *min, double *max, double *avg, double *diff);

// ---- schedule slots ---------------------------------------------------------------------

// tim_N: startH|startM|endH|endM|weekday mask|power W|enabled. Mask bit i is weekday i,
// 0 = Sunday ... 6 = Saturday. Power < 0 charges, > 0 discharges.
struct vn_slot {
    int start_h, start_m, end_h, end_m; // 24:00 is allowed as an end (end of the day)
    unsigned weekdays;                  // 0..127
    int power;
    bool enabled;
};

// Parses a tim_N value. Missing trailing sub-fields take the defaults (00:00, 00:00, every
// day, 0 W, off). Returns 0, or -EINVAL when a sub-field is not a whole number or out of range
// (hour 0..24 with 24 only as 24:00, minute 0..59, mask 0..127, |power| <= VN_MAX_POWER).
int vn_slot_parse(const char *value, struct vn_slot *out);
// "HH:MM", zero-padded.
void vn_time_text(int h, int m, char out[6]);
// Parses "HH:MM" (exactly two digits each; "24:00" only when `end`). 0 or -EINVAL.
int vn_time_parse(const char *text, bool end, int *h, int *m);
// The mask as ascending weekday digits, "0123456" for every day, "" for none.
void vn_weekdays_text(unsigned mask, char out[8]);
// Parses ascending, distinct digits 0..6 ("" = no day). 0 or -EINVAL.
int vn_weekdays_parse(const char *text, unsigned *mask);

// ---- the clock --------------------------------------------------------------------------

struct vn_clock {
    int year, month, day, hour, minute, second; // month 1..12 as people count
};

// The cd=4 echo "cd=4,2026-5-14 16:55:0": the date it carries. 0 or -ENOENT / -EINVAL.
int vn_clock_echo(const struct vn_msg *m, struct vn_clock *out);

// ---- commands ---------------------------------------------------------------------------
// Each returns the payload's length (without NUL), -EINVAL for a value the device does not
// take, or -ENOSPC when `n` is too small.

// Reads: cd=1 runtime, cd=14 BMS, cd=19 CT power (any cd 1..99 of a read without arguments).
int vn_encode_read(char *out, size_t n, int cd);
// cd=2,md=<mode>: 0 automatic, 1 manual, 2 trading; 5 (AI) adds nl=1.
int vn_encode_working_mode(char *out, size_t n, int mode);
// cd=3,md=1,nm=<slot 0..9>,bt=HH:MM,et=HH:MM,wk=<mask>,vv=<W>,as=<0|1>: the whole slot.
int vn_encode_slot(char *out, size_t n, int index, const struct vn_slot *s);
// cd=4,yy=<year>,mm=<month>,rr=<day>,hh=<hour>,mn=<minute>; the month is sent as
// clock->month - 1 + month_base (month_base 1: 1..12, 0: 0..11).
int vn_encode_clock(char *out, size_t n, const struct vn_clock *c, int month_base);
// cd=11,bc=<0|1>: backup (EPS) off/on.
int vn_encode_backup(char *out, size_t n, bool on);
// cd=15,vs=<W>: the power version, which is the maximum discharge power (100..VN_MAX_POWER).
int vn_encode_discharge_power(char *out, size_t n, int watts);
// cd=16,cp=<W>: the maximum charge power, 0..2500.
int vn_encode_charge_power(char *out, size_t n, int watts);

// ---- the decode command -----------------------------------------------------------------

// `energy2mqtt decode venus 'PAYLOAD'`: prints {"kind": ..., "fields": {...}} with every key
// decoded as vn_value() does (enums as labels, slots as {start, end, weekdays, power,
// enabled}, sub-fields as objects, unknown keys as numbers or text, guarded values as null).
int venus_decode(const char *input, FILE *out, char *err, size_t err_size);

#endif
