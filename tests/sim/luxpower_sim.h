// SPDX-License-Identifier: MIT
// e2m-luxpower-sim: a LuxPower WiFi dongle with its hybrid inverter, as an I/O-free model.
//
// luxpower_sim_model.c holds the LXP wire format (written again here, from the protocol notes,
// so that the simulator cannot share a mistake with the daemon's codec), the inverter's
// registers and their evolution, and the answers to requests; luxpower_sim.c moves the bytes.
// Every frame the model sends goes to every connected client, as the dongle does.
#ifndef E2M_TESTS_LUXPOWER_SIM_H
#define E2M_TESTS_LUXPOWER_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    LS_SERIAL = 10,
    LS_FRAME_MAX = 600,
    LS_REGS = 256, // registers 0-255 of each table exist in the model
};

// ---- wire ---------------------------------------------------------------------------------

uint16_t ls_crc16(const uint8_t *p, size_t n);

// One frame as it arrived. `body` points into the parsed buffer.
struct ls_frame {
    size_t len;
    uint16_t protocol;
    uint8_t tcp_fn;
    uint8_t dongle[LS_SERIAL];
    // translated data
    uint8_t address, fn;
    uint8_t inverter[LS_SERIAL];
    uint16_t reg;
    const uint8_t *body;
    size_t body_len;
    bool crc_ok;
    // heartbeat, parameters
    const uint8_t *rest; // the bytes after the dongle serial
    size_t rest_len;
};

// Parses the frame at buf[0..len): returns its length (> 0), 0 when more bytes are needed, or
// -n when the first n bytes are not a frame (skip them and call again).
long ls_parse(const uint8_t *buf, size_t len, struct ls_frame *f);

// Builds translated data (function `fn`, body) into out (LS_FRAME_MAX bytes); returns the
// length.
size_t ls_build_translated(uint8_t *out, uint16_t protocol, const uint8_t *dongle, uint8_t address,
                           uint8_t fn, const uint8_t *inverter, uint16_t reg, const uint8_t *body,
                           size_t body_len);
size_t ls_build_heartbeat(uint8_t *out, uint16_t protocol, const uint8_t *dongle, uint8_t tail);
// A client's read request (protocol 1) and write requests, as a client builds them.
size_t ls_build_read(uint8_t *out, const uint8_t *dongle, const uint8_t *inverter, uint8_t fn,
                     uint16_t reg, uint16_t count);
size_t ls_build_write(uint8_t *out, const uint8_t *dongle, const uint8_t *inverter, uint16_t reg,
                      uint16_t value);
size_t ls_build_write_multi(uint8_t *out, const uint8_t *dongle, const uint8_t *inverter,
                            uint16_t reg, const uint16_t *values, uint16_t n);

// ---- the dongle and its inverter ----------------------------------------------------------

struct ls_config {
    uint32_t seed;
    uint16_t protocol;  // of everything the dongle sends: 1 (no length byte), 2 or 5
    bool combined;      // broadcast input 0-126 in one frame instead of 0-39, 40-79, 80-119
    bool cloud;         // the cloud answers the heartbeats (broadcasts never stop)
    uint8_t hb_tail;    // the heartbeat's trailing byte (0; 5 on EG4 "DG" dongles)
    int64_t hb_ms;      // heartbeat period
    int64_t bc_ms;      // input broadcast period (the dongle's parameter 0)
    uint16_t input_max; // the last input and holding register a read may reach
    uint16_t holding_max;
    uint16_t max_block; // the most registers one read may ask for
    bool frozen;        // values never evolve on their own (`step` still works)
    int tz_minutes;     // the inverter's local time = UTC + this
    char dongle_sn[LS_SERIAL + 1];
    char inverter_sn[LS_SERIAL + 1];
};

void ls_config_default(struct ls_config *c);

// Where the model's frames go: to every client (the dongle's way).
typedef void (*ls_emit_fn)(void *arg, const uint8_t *frame, size_t len);
// Output lines for the control channel's reader (`write ...`).
typedef void (*ls_line_fn)(void *arg, const char *line);

struct ls_sim;

struct ls_sim *ls_new(const struct ls_config *cfg, int64_t wall_ms, ls_emit_fn emit,
                      ls_line_fn line, void *arg);
void ls_free(struct ls_sim *s);

// A whole frame from a client.
void ls_request(struct ls_sim *s, const struct ls_frame *f, int64_t wall_ms);
// Counts a frame that was not one (garbage, impossible length).
void ls_bad_frame(struct ls_sim *s);
// The dongle's heartbeat, to everyone.
void ls_heartbeat(struct ls_sim *s, int64_t wall_ms);
// The input broadcast, if something answers the heartbeats (the cloud, or a client's echo of
// one of the last two). `force` broadcasts regardless. Returns whether it was sent.
bool ls_broadcast(struct ls_sim *s, int64_t wall_ms, bool force);
// Evolves the values by `ms` of simulated time (nothing while frozen unless `force`).
void ls_tick(struct ls_sim *s, int64_t ms, bool force);

// Control: registers (`table` 'i' or 'h'), settings.
int ls_get(const struct ls_sim *s, char table, unsigned reg, int64_t wall_ms, uint16_t *out);
int ls_set(struct ls_sim *s, char table, unsigned reg, uint16_t value);
void ls_set_cloud(struct ls_sim *s, bool on);
void ls_set_protocol(struct ls_sim *s, uint16_t protocol);
void ls_set_combined(struct ls_sim *s, bool on);
void ls_set_frozen(struct ls_sim *s, bool on);
// `stats`: one JSON object (malloc'd).
char *ls_stats_json(const struct ls_sim *s);

#endif
