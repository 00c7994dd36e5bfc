// SPDX-License-Identifier: MIT
// Internal interface of e2m-venus-sim, the simulated Marstek Venus behind hame-relay.
//
// venus_sim_model.c is the battery and its firmware: the state, the key=value replies, what a
// request does, the quirks, the control commands. It does no I/O and reads no clock (times are
// passed in), so a test could run it in process. venus_sim.c is the process: options, the
// broker connection (paho's synchronous client), the relay's one-reply-per-request window, the
// control channel on stdin. Nothing here is shared with the daemon under src/: the simulator
// must not inherit the daemon's reading of the protocol.
#ifndef E2M_VENUS_SIM_H
#define E2M_VENUS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_SLOTS     10
#define VS_REPLY_MAX 2048
#define VS_PINS      32

struct vs_slot {
    int bh, bm, eh, em, wk, power, enabled;
};

struct vs_pin {
    char key[24];
    char value[64];
};

struct vs_device {
    char type[33];
    double capacity_wh;
    int month_base; // how the firmware reads cd=4's mm: 1 = 1..12, 0 = 0..11

    // Battery.
    double stored_wh;
    double power; // W the battery delivers: + discharging, - charging
    double sim_s; // simulated seconds since start (drives the automatic pattern)
    bool frozen;
    double charged_wh, discharged_wh; // lifetime
    double charged_day_wh, discharged_day_wh, charged_month_wh, discharged_month_wh;
    int day, month; // of the device clock, for the daily and monthly resets
    double income_eur;

    // Settings.
    int mode; // wor_m: 0 automatic, 1 manual, 2 trading, 5 AI
    int mcp_w, mdp_w, backup;
    struct vs_slot slots[VS_SLOTS];
    int64_t clock_offset_ms; // device clock = wall clock + offset

    // Quirks still to come (replies).
    int quirk_mcp, quirk_digit, quirk_setv, quirk_dod;

    // Keys pinned by `set` (raw text in every runtime reply until `thaw`).
    struct vs_pin pins[VS_PINS];
    int n_pins;

    // Statistics.
    unsigned long writes, refused, forbidden, clock_sets, replies_built;
};

// What a request did.
enum vs_outcome {
    VS_READ,      // answered with data
    VS_WRITE,     // a setting changed (answered ret=1 or, for cd=4, with the clock echo)
    VS_REFUSED,   // a write the firmware refuses (ret=0)
    VS_FORBIDDEN, // factory reset or firmware update: never sent by a well-behaved client
    VS_IGNORED,   // not a request the firmware knows: no answer
};

void vs_init(struct vs_device *d, const char *type, int month_base, int64_t wall_ms);
// Handles one request payload at wall time `wall_ms`; writes the reply into `reply` (empty when
// the firmware answers nothing).
enum vs_outcome vs_request(struct vs_device *d, const char *payload, int64_t wall_ms, char *reply,
                           size_t n);
// Lets `seconds` of simulated time pass: power, state of charge, counters.
void vs_tick(struct vs_device *d, double seconds, int64_t wall_ms);
// The cd=1 reply as it would be sent now (consumes one-shot quirks).
void vs_runtime(struct vs_device *d, int64_t wall_ms, char *out, size_t n);
// A control command on the device (set, get, thaw, quirk, slot, freeze, run, step...): writes
// "ok ..." or "err ..." into `out`. Returns false for a command that is not the model's.
bool vs_control(struct vs_device *d, const char *line, int64_t wall_ms, char *out, size_t n);

#endif
