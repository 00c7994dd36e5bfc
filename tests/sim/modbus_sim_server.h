// SPDX-License-Identifier: MIT
// e2m-modbus-sim: process state shared by the main loop and the request/connection code.
#ifndef E2M_MODBUS_SIM_SERVER_H
#define E2M_MODBUS_SIM_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <modbus.h>

#include "modbus_sim_device.h"

#define LISTEN_BACKLOG 128
#define LINE_MAX_LEN   1024

struct conn {
    int fd;
    struct sim_device *dev;
    size_t len;
    uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH];
};

struct sim {
    // Options.
    const struct sim_profile *profile;
    const char *host;
    int port, count, unit, tick_ms, baud;
    char parity;
    uint64_t seed;
    bool rtu, is_static, verbose;
    bool timestamps; // append " @<CLOCK_MONOTONIC microseconds>" to `write` lines
    enum sim_fault fault;

    // Devices; in TCP mode each has its own libmodbus context and listening socket.
    struct sim_device *devs;
    modbus_t **ctx;
    int *listen_fd;

    struct conn **conns;
    size_t n_conns, cap_conns;
    int64_t accept_pause_until;

    // RTU mode.
    int pty_master[2];
    int pty_client_keep; // keeps the client side open and raw while no client has it
    char pty_path[2][64];
    int relay_wake[2];
    pthread_t relay;
    bool relay_started;

    // Control channel and evolution.
    bool stdin_open;
    char line[LINE_MAX_LEN];
    size_t line_len;
    bool line_overflow;
    bool evolving;
    int64_t next_tick;
    bool quit;
};

#define VLOG(sim, ...)                                                                             \
    do {                                                                                           \
        if ((sim)->verbose) {                                                                      \
            fprintf(stderr, "modbus-sim: " __VA_ARGS__);                                           \
        }                                                                                          \
    } while (0)

// TCP: one libmodbus context and listening socket per device (ports sim->port + i, or free
// ports when sim->port is 0); sets each device's label to its port. Returns 0 or -1.
int sim_tcp_setup(struct sim *sim);
// Accepts one client of device `di` (closes it at once while the device's fault is drop).
void sim_accept_client(struct sim *sim, int di);
// Reads from a readable client and answers every complete request in its buffer.
void sim_conn_readable(struct sim *sim, struct conn *c);
// Closes a connection; the slot is freed by sim_conns_compact().
void sim_conn_close(struct sim *sim, struct conn *c);
void sim_conns_close_device(struct sim *sim, const struct sim_device *dev);
size_t sim_conns_count_device(const struct sim *sim, const struct sim_device *dev);
// Frees closed connections; call only when no pollfd refers to them any more.
void sim_conns_compact(struct sim *sim);

// RTU: creates the two pseudo-terminal pairs, opens the server side with libmodbus and starts
// the relay thread. Returns 0 or -1.
int sim_rtu_setup(struct sim *sim);
// Receives one frame on the server side and answers it.
void sim_rtu_readable(struct sim *sim);
// Stops and joins the relay thread (no-op when it never started).
void sim_rtu_stop(struct sim *sim);

#endif
