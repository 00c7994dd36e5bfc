// SPDX-License-Identifier: MIT
// Internal interface of e2m-smartmeter-sim, the voelkerb PowerMeter/SmartMeter simulator.
//
// The simulator is one process and one thread: smartmeter_sim.c owns the poll() loop and the
// TCP clients, smartmeter_sim_ctl.c the control channel on stdin, smartmeter_sim_model.c the
// measured values, smartmeter_sim_proto.c the command set and JSON documents, and
// smartmeter_sim_mqtt.c the optional broker connection. Nothing here is shared
// with the daemon under src/: the simulator must not inherit the daemon's reading of the
// protocol.
#ifndef E2M_SMARTMETER_SIM_H
#define E2M_SMARTMETER_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "sim_util.h"

#define SM_MAX_CLIENTS 3            // the firmware's MAX_CLIENTS
#define SM_IN_MAX      4096         // input bytes buffered per client before a line is forced
#define SM_OUT_MAX     (256 * 1024) // unsent output that makes us give up on a client
#define SM_LOG_ROWS    16           // rows of the simulated log file (getLog)
#define SM_ORIGIN_MQTT (-1)         // command origin: the MQTT cmd topic instead of a TCP client

enum sm_type { SM_POWERMETER, SM_SMARTMETER };

enum sm_fault { SM_FAULT_NONE, SM_FAULT_STALL, SM_FAULT_GARBAGE, SM_FAULT_DROP, SM_FAULT_SILENT };

// Log levels in the firmware's order; a client sees lines whose level is >= its own.
enum sm_level { SM_LOG_ALL, SM_LOG_DEBUG, SM_LOG_INFO, SM_LOG_WARNING, SM_LOG_ERROR };

struct sm_client {
    int fd; // -1 when the slot is free
    int level;
    char peer_ip[48];
    unsigned peer_port;
    char in[SM_IN_MAX];
    size_t in_len;
    bool in_skip; // an over-long line was cut; drop bytes until its newline
    char *out;
    size_t out_len, out_cap;
};

// Measured values. The PowerMeter uses phase 0 only.
struct sm_meter {
    int phases;
    double power[3];  // W the load draws (before the relay)
    double target[3]; // where the random walk is heading
    double pf[3];     // power factor, 0.85..0.99
    double voltage[3];
    double freq;
    double energy[3]; // Wh, never decreasing except by resetEnergy / set energy
    bool power_pinned, voltage_pinned;
};

struct sm_mqtt;

struct sm_sim {
    enum sm_type type;
    int firmware; // 1 or 2
    char name[32];
    char host[64];
    int port;
    int tick_ms;
    bool frozen;
    uint64_t rng;

    int relay; // PowerMeter only: 0/1
    struct sm_meter m;
    time_t energy_reset_ts;
    double publish_interval; // s; -1 disables the periodic sample
    int reset_hour, reset_minute;
    bool line_values; // SmartMeter: v_l1.. keys in the periodic sample

    enum sm_fault fault;
    bool ready; // the "ready" line has been printed
    bool reboot_pending, rebooting;
    int64_t reboot_until_ms;

    int listen_fd;
    struct sm_client clients[SM_MAX_CLIENTS];

    char logfile[SM_LOG_ROWS][160];
    int log_rows, log_next;

    char *mqtt_host;
    int mqtt_port;
    struct sm_mqtt *mqtt;
};

// ---- smartmeter_sim.c --------------------------------------------------------------------

// Sends `payload` as one "Info:<payload>\r\n" line to a client, honouring the fault mode.
void sm_client_send(struct sm_sim *s, struct sm_client *c, const char *payload);

// Writes a firmware log line ("[L]MM/DD HH:MM:SS: text") to every client whose level is at or
// below `level`; warnings and errors also go to the simulated log file (getLog).
void sm_log(struct sm_sim *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Schedules what `restart` does on the real meter: at the next turn of the main loop every
// connection and the listening socket are closed and the broker connection is dropped; the
// meter comes back after two device seconds (2 x --tick) with its relay state and energy.
void sm_reboot(struct sm_sim *s);

// Switches the relay, printing "relay N" and publishing the state when it really changes.
void sm_relay_set(struct sm_sim *s, int on);

// Number of connected clients; sm_clients_drop() closes them all without a log line.
int sm_client_count(const struct sm_sim *s);
void sm_clients_drop(struct sm_sim *s);

// ---- smartmeter_sim_ctl.c ----------------------------------------------------------------

// Handles one control line (a command and its arguments) and prints its "ok ..." or
// "err ..." answer. Returns false when the simulator should quit.
bool sm_control_line(struct sm_sim *s, char *line);

// ---- smartmeter_sim_model.c --------------------------------------------------------------

// Seeds the values for the configured type.
void sm_meter_init(struct sm_sim *s, uint64_t seed);

// Advances the values by `dt` seconds (random walk and energy integration).
void sm_meter_step(struct sm_sim *s, double dt);

// Power of one phase as the meter measures it: 0 behind an open PowerMeter relay.
double sm_power(const struct sm_sim *s, int phase);

// Current of one phase in A (power / voltage).
double sm_current(const struct sm_sim *s, int phase);

// Apparent (VA) and reactive (var) power of one phase, from the power factor.
double sm_apparent(const struct sm_sim *s, int phase);
double sm_reactive(const struct sm_sim *s, int phase);

// Sum of the phases' energy counters in Wh.
double sm_energy_total(const struct sm_sim *s);

// Uniform random number in [0, 1).
double sm_random(struct sm_sim *s);

// The firmware's round2() (two decimals, half up) and rounding to `decimals` places.
double sm_round2(double v);
double sm_round_to(double v, int decimals);

// Local time strings of the firmware: long "MM/DD/YYYY HH:MM:SS.mmm" (of `t` or of now) and
// short "MM/DD HH:MM:SS" (now, used in log lines).
void sm_time_long(char *buf, size_t n, time_t t, int ms);
void sm_time_now_long(char *buf, size_t n);
void sm_time_short(char *buf, size_t n);

// ---- smartmeter_sim_proto.c --------------------------------------------------------------

// The `info` document the meter sends on connect and on request.
json_t *sm_info(struct sm_sim *s);

// Serialises a document the way the firmware does (compact, insertion order); caller frees.
char *sm_dump(const json_t *doc);

// Handles one JSON command line from a client (`origin` = index) or the MQTT cmd topic
// (SM_ORIGIN_MQTT). Returns the reply document to send, or NULL when the firmware sends none
// (info over TCP is sent directly, restart reboots, invalid JSON only logs). `*raw` may be set
// to a line to send before the reply (getLog); the caller frees it.
json_t *sm_handle_command(struct sm_sim *s, int origin, const char *line, char **raw);

// The periodic sample published on state/sample, also the fw 1 liveness payload.
json_t *sm_sample_doc(struct sm_sim *s);

// Handles a message on one of the subscribed topics (the last topic level selects the action,
// as on the meter); publishes the answers through smartmeter_sim_mqtt.c.
void sm_handle_mqtt(struct sm_sim *s, const char *topic, const char *payload);

// ---- smartmeter_sim_mqtt.c ---------------------------------------------------------------

// Creates the client and makes the first connection attempt. Returns 0 when connected,
// -ENOTCONN when the broker is not reachable yet (retried later), another negative errno on a
// bad configuration.
int sm_mqtt_start(struct sm_sim *s);

// Receives pending messages, reconnects when due and publishes the periodic sample.
void sm_mqtt_poll(struct sm_sim *s);

// Publishes `payload` on powermeter/<name>/<sub> (QoS 0) when connected.
void sm_mqtt_publish(struct sm_sim *s, const char *sub, const char *payload, bool retain);

// Disconnects (fault drop, reboot); sm_mqtt_poll() reconnects once that is allowed again.
void sm_mqtt_disconnect(struct sm_sim *s);

bool sm_mqtt_connected(const struct sm_sim *s);

// Milliseconds until sm_mqtt_poll() wants to run again (bounded, >= 0), or -1 without MQTT.
int sm_mqtt_timeout(const struct sm_sim *s);

// Disconnects and frees everything.
void sm_mqtt_stop(struct sm_sim *s);

#endif
