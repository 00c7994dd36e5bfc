// SPDX-License-Identifier: MIT
// voelkerb PowerMeter / SmartMeter: the text protocol on TCP port 54321 and the MQTT sample
// payloads, as pure functions (no I/O, no clock). See the protocol description at the top of
// smartmeter_codec.c.
#ifndef E2M_SMARTMETER_CODEC_H
#define E2M_SMARTMETER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { SM_MAX_LINE = 1024 }; // longer lines are garbage (the firmware's are < 700 bytes)

// ---- framing -------------------------------------------------------------------------------

enum sm_frame {
    SM_FRAME_NEED_MORE, // no complete line yet
    SM_FRAME_LINE,      // *line/*len set; *consumed bytes may be dropped
    SM_FRAME_SKIP,      // a line too long (or with NUL bytes): *consumed bytes are garbage
};

// Finds the first complete line in `buf` (terminated by "\n"; a "\r" before it is dropped).
// The "Info:" prefix, when present, is removed and reported in *prefixed. Empty lines are
// returned with *len 0. (The firmware's once-a-second liveness line is an info log line with
// empty text, "Info:[I]03/02 10:42:24: "; any line at all proves the link alive.)
// A line longer than SM_MAX_LINE, or an unterminated run of more than SM_MAX_LINE bytes, is
// SM_FRAME_SKIP up to and including its end (or the SM_MAX_LINE + 1 bytes seen so far; the
// rest of such a line then arrives as an unprefixed line that decodes as unknown). A caller's
// buffer must hold at least SM_MAX_LINE + 1 bytes.
enum sm_frame sm_frame_next(const uint8_t *buf, size_t len, const char **line, size_t *line_len,
                            bool *prefixed, size_t *consumed);

// ---- values --------------------------------------------------------------------------------

// Everything a reply, an info object or an MQTT sample can carry, normalised to one unit
// each: W, var, VA, V, A (the firmware sends mA in getCurrent), Wh (samples send kWh on the
// SmartMeter and PowerMeter firmware 1.x), Hz, dBm.
enum sm_value {
    SM_POWER,          // active power, W (the sum of the phases on a SmartMeter)
    SM_REACTIVE_POWER, // var
    SM_APPARENT_POWER, // VA
    SM_VOLTAGE,        // V (the mean of the phases on a SmartMeter)
    SM_CURRENT,        // A (the sum of the phases)
    SM_ENERGY,         // Wh (the sum of the phases)
    SM_FREQUENCY,      // Hz
    SM_RELAY,          // 0/1 (PowerMeter)
    SM_IN_USE,         // 0/1 (PowerMeter samples: power > 2 W)
    SM_RSSI,           // dBm
    SM_TIMESTAMP,      // unix seconds (samples' ts, number or string)
    SM_POWER_L1,
    SM_POWER_L2,
    SM_POWER_L3,
    SM_REACTIVE_POWER_L1,
    SM_REACTIVE_POWER_L2,
    SM_REACTIVE_POWER_L3,
    SM_APPARENT_POWER_L1,
    SM_APPARENT_POWER_L2,
    SM_APPARENT_POWER_L3,
    SM_VOLTAGE_L1,
    SM_VOLTAGE_L2,
    SM_VOLTAGE_L3,
    SM_CURRENT_L1,
    SM_CURRENT_L2,
    SM_CURRENT_L3,
    SM_ENERGY_L1,
    SM_ENERGY_L2,
    SM_ENERGY_L3,
    SM_VALUE_COUNT
};

// Snake-case names used in the decode command's JSON ("power", "power_l1", "relay", ...) and
// their units ("W", "var", "VA", "V", "A", "Wh", "Hz", "dBm", "s", or "" for 0/1 values).
const char *sm_value_name(enum sm_value v);
const char *sm_value_unit(enum sm_value v);

struct sm_values {
    bool has[SM_VALUE_COUNT];
    double v[SM_VALUE_COUNT];
};

enum sm_device { SM_DEVICE_UNKNOWN, SM_DEVICE_POWERMETER, SM_DEVICE_SMARTMETER };

// ---- lines ---------------------------------------------------------------------------------

enum sm_kind {
    SM_KIND_REPLY,   // a JSON object answering a command ({"error":..., "cmd":...})
    SM_KIND_INFO,    // the info object (sent on connect and for {"cmd":"info"})
    SM_KIND_LOG,     // "[L]MM/DD HH:MM:SS: text", or an empty liveness line
    SM_KIND_UNKNOWN, // anything else (a legacy "Setup done", garbage)
};

struct sm_line {
    enum sm_kind kind;
    char cmd[32];          // "getPower", "info", "switch", ... ("" when absent)
    bool has_error, error; // the reply's "error" member
    char msg[128];         // "msg", truncated
    char state[16];        // info: "idle" / "busy"; a reply's "state" ("busy")
    char log_level;        // LOG: 'A', 'D', 'I', 'W', 'E'; 0 for an empty liveness line
    enum sm_device device; // info: from "type", compared case-insensitively
    char name[32];         // info: "name"
    char version[16];      // info: "version", e.g. "2.3"
    struct sm_values values;
};

// Decodes one line (without "Info:" and line end). Replies are recognised by their keys, never
// by position; arrays (SmartMeter) give per-phase values plus the total (power, current,
// energy) or mean (voltage); an info "energy" string "[e1, e2, e3]" is read like an array; a
// relay given as 0/1 or true/false is accepted. Returns 0; never fails (unrecognised input,
// and anything longer than SM_MAX_LINE, is SM_KIND_UNKNOWN).
int sm_line_decode(const char *line, size_t len, struct sm_line *out);

// Decodes an MQTT state/sample payload. The energy unit depends on the firmware: Wh for a
// PowerMeter with firmware 2 or later, kWh for a SmartMeter and PowerMeter firmware 1.x;
// pass what is known (SM_DEVICE_UNKNOWN and major 0 assume the PowerMeter 2.x Wh). A sample
// with a "value" key (a single-value reply) is decoded by its "unit" instead. Returns 0,
// -EMSGSIZE when the payload is longer than SM_MAX_LINE (real samples are a few hundred
// bytes), or -EINVAL when it is not a JSON object.
int sm_sample_decode(const char *payload, size_t len, enum sm_device device, int firmware_major,
                     struct sm_values *out);

// ---- commands ------------------------------------------------------------------------------

// {"cmd":"<name>"}\n. Returns the length written (without NUL), or -ENOSPC.
int sm_encode_cmd(char *out, size_t n, const char *name);
// {"cmd":"switch","payload":{"value":1}}\n with value 1 (on), 0 (off) or -1 (toggle).
int sm_encode_switch(char *out, size_t n, int value);
// {"cmd":"resetEnergy"}\n
int sm_encode_reset_energy(char *out, size_t n);
// The keepalive: "!\n" (the firmware ignores it; it keeps the connection warm). The line end
// matters: the firmware reads a command up to "\n" with a 10 ms timeout, so a bare "!"
// followed quickly by a command would glue the two together.
int sm_encode_keepalive(char *out, size_t n);

// `energy2mqtt decode smartmeter 'LINE'`: one line (with or without "Info:") or an MQTT
// sample payload; prints {"kind": ..., "cmd": ..., "error": ..., <values with units>}.
int smartmeter_decode(const char *input, FILE *out, char *err, size_t err_size);

#endif
