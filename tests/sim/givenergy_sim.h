// SPDX-License-Identifier: MIT
// e2m-givenergy-sim: a GivEnergy WiFi dongle with its inverter and one LV battery pack, as an
// I/O-free model.
//
// givenergy_sim_model.c holds the dongle's wire format (written again here, from the protocol
// notes, so that the simulator cannot share a mistake with the daemon's codec), the registers
// and their evolution, and the answers to requests; givenergy_sim.c moves the bytes. Every
// frame the model sends goes to every connected client, as the dongle does.
#ifndef E2M_TESTS_GIVENERGY_SIM_H
#define E2M_TESTS_GIVENERGY_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    GS_SERIAL = 10,
    GS_FRAME_MAX = 320,
    GS_REGS = 360, // holding and input registers 0-359 of the inverter exist in the model
};

// ---- wire ---------------------------------------------------------------------------------

uint16_t gs_crc16(const uint8_t *p, size_t n);

// One frame from a client.
struct gs_frame {
    size_t len;
    uint8_t fid; // 1 heartbeat, 2 transparent
    uint8_t adapter_type;
    uint8_t address, fn;
    uint16_t w1, w2; // base and count, or register and value
    bool crc_ok;
};

// Parses the client frame at buf[0..len): returns its length (> 0), 0 when more bytes are
// needed, or -n when the first n bytes are not a frame (skip them and call again).
long gs_parse(const uint8_t *buf, size_t len, struct gs_frame *f);

// A client's request and the dongle's heartbeat, for the self-test's client.
size_t gs_build_request(uint8_t *out, uint8_t address, uint8_t fn, uint16_t w1, uint16_t w2);
size_t gs_build_heartbeat(uint8_t *out, const uint8_t *adapter, uint8_t type);

// A response as a client sees it (the self-test's reader).
struct gs_response {
    size_t len;
    uint8_t fid, adapter_type, address, fn;
    bool error, crc_ok;
    uint16_t reg, count;
    uint16_t values[64];
    uint16_t n_values;
};
long gs_parse_response(const uint8_t *buf, size_t len, struct gs_response *r);

// ---- the dongle, its inverter and battery -------------------------------------------------

enum gs_family { GS_HYBRID, GS_HYBRID_GEN3, GS_AC, GS_AIO };

struct gs_config {
    uint32_t seed;
    enum gs_family family;
    int64_t hb_ms;      // heartbeat period
    int64_t min_gap_ms; // a request closer than this to the previous one is dropped
    bool frozen;        // values never evolve on their own (`step` still works)
    char adapter_sn[GS_SERIAL + 1];
    char inverter_sn[GS_SERIAL + 1];
};

void gs_config_default(struct gs_config *c);

typedef void (*gs_emit_fn)(void *arg, const uint8_t *frame, size_t len);
// Output lines for the control channel's reader: "write holding REG 1 VALUE" for every write
// the inverter takes, "refused holding REG VALUE" for every one it refuses.
typedef void (*gs_line_fn)(void *arg, const char *line);

struct gs_sim;

struct gs_sim *gs_new(const struct gs_config *cfg, gs_emit_fn emit, gs_line_fn line, void *arg);
void gs_free(struct gs_sim *s);

// A whole frame from a client, arriving at monotonic time `now_ms`.
void gs_request(struct gs_sim *s, const struct gs_frame *f, int64_t now_ms);
void gs_bad_frame(struct gs_sim *s);
// The dongle's heartbeat, to everyone.
void gs_heartbeat(struct gs_sim *s);
// Evolves the values by `ms` of simulated time (nothing while frozen unless `force`).
void gs_tick(struct gs_sim *s, int64_t ms, bool force);

// One-shot faults applied to the next response: an all-zero block (reads), a wrong CRC.
void gs_fault_zero(struct gs_sim *s);
void gs_fault_badcrc(struct gs_sim *s);

// Control: `table` 'i' input, 'h' holding, 'b' battery pack 1 (input registers 60-119).
int gs_get(const struct gs_sim *s, char table, unsigned reg, uint16_t *out);
int gs_set(struct gs_sim *s, char table, unsigned reg, uint16_t value);
void gs_set_frozen(struct gs_sim *s, bool on);
// `stats`: one JSON object (malloc'd).
char *gs_stats_json(const struct gs_sim *s);

#endif
