// SPDX-License-Identifier: MIT
// A TCP client connection on the event loop, for drivers that talk a stream protocol.
//
// Everything is non-blocking: names are resolved on a short-lived thread (a slow DNS or mDNS
// lookup never stalls the loop), connecting has one timeout covering resolution and connect,
// received bytes accumulate in a bounded buffer that the owner consumes frame by frame, and
// sends are buffered up to TCP_TX_MAX. The handlers run on the loop thread.
#ifndef E2M_TCP_H
#define E2M_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct tcp;

enum { TCP_TX_MAX = 64 * 1024 };

struct tcp_handlers {
    void (*connected)(void *arg);
    // New bytes: `buf` holds everything received and not yet consumed. Returns how many
    // bytes (from the start) are consumed. May call tcp_close() or tcp_send().
    size_t (*data)(void *arg, const uint8_t *buf, size_t len);
    // The connection failed or ended (not called after tcp_close()). `why` is for the log.
    void (*closed)(void *arg, const char *why);
    void *arg;
};

enum tcp_state { TCP_CLOSED, TCP_CONNECTING, TCP_OPEN };

// `rx_max`: the largest amount of unconsumed input; more means the peer sends garbage (the
// connection is closed with a reason).
struct tcp *tcp_new(struct loop *l, const struct tcp_handlers *h, size_t rx_max);
void tcp_free(struct tcp *t);

// Starts connecting to host:port; `connected` or `closed` follows. Returns 0, or -EBUSY when
// not closed.
int tcp_open(struct tcp *t, const char *host, int port, int64_t timeout_ms);
// Queues bytes. Returns 0, -ENOTCONN, or -ENOBUFS when the send buffer would overflow.
int tcp_send(struct tcp *t, const void *buf, size_t len);
// Closes at once; no handler is called.
void tcp_close(struct tcp *t);
enum tcp_state tcp_state(const struct tcp *t);

#endif
