// SPDX-License-Identifier: MIT
// The TCP side of a simulated WiFi dongle: a listening socket and up to eight clients that all
// receive every frame the device sends, with the transport faults the simulators can inject.
#ifndef E2M_SIM_TCP_H
#define E2M_SIM_TCP_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_TCP_CLIENTS  8
#define SIM_TCP_RX_MAX   4096
#define SIM_TCP_SPLIT_MS 40 // between the pieces of a split frame
// Entries sim_tcp_pollfds() fills: the listening socket, then one per client slot.
#define SIM_TCP_POLLFDS (1 + SIM_TCP_CLIENTS)

struct sim_tcp_client {
    int fd; // -1 = free slot
    uint8_t rx[SIM_TCP_RX_MAX];
    size_t rx_len;
};

struct sim_tcp {
    const char *who; // the program's name, first on every message on stderr
    bool verbose;    // connections and drops on stderr
    int listen_fd;
    unsigned long connections; // accepted so far
    unsigned long dropped;     // closed by sim_tcp_drop_all()
    struct sim_tcp_client clients[SIM_TCP_CLIENTS];
};

// Opens a non-blocking, close-on-exec IPv4 listening socket on host:*port (SO_REUSEADDR, port 0
// picks a free one) and stores the bound port in *port. A bad address is reported on stderr
// under `who`. Returns the descriptor or a negative errno.
int sim_tcp_listen(const char *who, const char *host, int *port);

// Sets up `t` with no socket and free client slots; `who` must outlive `t`.
void sim_tcp_init(struct sim_tcp *t, const char *who);
// sim_tcp_listen() into t->listen_fd. Returns 0 or a negative errno.
int sim_tcp_open(struct sim_tcp *t, const char *host, int *port);
// Closes every client and the listening socket.
void sim_tcp_close(struct sim_tcp *t);

void sim_tcp_client_close(struct sim_tcp_client *c);
// The number of connected clients.
int sim_tcp_count(const struct sim_tcp *t);
// Closes every connected client as a dongle losing its WiFi would, counting them in t->dropped.
void sim_tcp_drop_all(struct sim_tcp *t);

// Writes all of buf to every client. A client that cannot take it within a second is dropped,
// as a dongle with a full buffer would drop it. With `split` each client gets the bytes in three
// pieces SIM_TCP_SPLIT_MS apart, which the receiver must reassemble.
void sim_tcp_send(struct sim_tcp *t, const uint8_t *buf, size_t len, bool split);

// Fills p[0 .. SIM_TCP_POLLFDS - 1] for poll(): the listening socket and every client slot (-1
// for free ones, which poll() ignores). Returns SIM_TCP_POLLFDS.
int sim_tcp_pollfds(const struct sim_tcp *t, struct pollfd *p);
// Takes a new client if poll() found the listening socket readable in p[0] (the entries as
// sim_tcp_pollfds() filled them); a client beyond the eighth is closed at once.
void sim_tcp_accept(struct sim_tcp *t, const struct pollfd *p);
// Reads from every client poll() found readable (or hung up) in p, and hands what it has
// received to take(arg, bytes, len) until take returns 0 (the rest is an incomplete frame).
// take returns how many bytes it used: a whole frame, or the garbage it skipped. A client that
// closes, fails or fills its buffer without a frame is closed.
void sim_tcp_read(struct sim_tcp *t, const struct pollfd *p,
                  size_t (*take)(void *arg, const uint8_t *rx, size_t len), void *arg);

#endif
