// SPDX-License-Identifier: MIT
// TCP client on the event loop (see tcp.h).
#include "core/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/mem.h"

// A name lookup in flight. The thread owns it until it posts the result; if the connection is
// closed meanwhile, `t` is cleared and the result is thrown away.
struct lookup {
    struct loop *loop;
    struct tcp *t;
    char host[256], port[8];
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int err; // getaddrinfo error, 0 = ok
};

struct tcp {
    struct loop *loop;
    struct tcp_handlers h;
    enum tcp_state state;
    int fd;
    struct lookup *lookup;
    struct timer timeout;
    uint8_t *rx;
    size_t rx_len, rx_max;
    uint8_t *tx;
    size_t tx_len;
    unsigned generation; // bumped by every close: a handler can tell it was closed under it
};

static void on_io(void *arg, uint32_t events);

struct tcp *tcp_new(struct loop *l, const struct tcp_handlers *h, size_t rx_max)
{
    struct tcp *t = xcalloc(1, sizeof(*t));
    t->loop = l;
    t->h = *h;
    t->fd = -1;
    t->rx_max = rx_max;
    t->rx = xmalloc(rx_max);
    t->tx = xmalloc(TCP_TX_MAX);
    return t;
}

static void shut(struct tcp *t)
{
    t->generation++;
    loop_timer_cancel(t->loop, &t->timeout);
    if (t->lookup) {
        t->lookup->t = NULL; // its result will be dropped
        t->lookup = NULL;
    }
    if (t->fd >= 0) {
        loop_unwatch(t->loop, t->fd);
        close(t->fd);
        t->fd = -1;
    }
    t->rx_len = t->tx_len = 0;
    t->state = TCP_CLOSED;
}

void tcp_close(struct tcp *t)
{
    shut(t);
}

void tcp_free(struct tcp *t)
{
    if (!t)
        return;
    shut(t);
    free(t->rx);
    free(t->tx);
    free(t);
}

enum tcp_state tcp_state(const struct tcp *t)
{
    return t->state;
}

static void fail(struct tcp *t, const char *why)
{
    shut(t);
    if (t->h.closed)
        t->h.closed(t->h.arg, why);
}

static void on_timeout(void *arg)
{
    fail(arg, "connection timed out");
}

static void start_connect(struct tcp *t, const struct sockaddr *sa, socklen_t len)
{
    t->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        fail(t, strerror(errno));
        return;
    }
    // The loop watches with epoll, which takes any descriptor; libmodbus waits with select(),
    // which takes only those below FD_SETSIZE. Leave those to it when the limit allows.
    int high = fcntl(t->fd, F_DUPFD_CLOEXEC, FD_SETSIZE);
    if (high >= 0) {
        close(t->fd);
        t->fd = high;
    }
    int one = 1;
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(t->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if (connect(t->fd, sa, len) < 0 && errno != EINPROGRESS) {
        fail(t, strerror(errno));
        return;
    }
    // Completion (or failure) shows as writability.
    if (loop_watch(t->loop, t->fd, EPOLLOUT, on_io, t) < 0)
        fail(t, "cannot watch the socket");
}

static void on_lookup(void *arg)
{
    struct lookup *q = arg;
    struct tcp *t = q->t;
    if (t) {
        t->lookup = NULL;
        if (q->err) {
            char why[320];
            snprintf(why, sizeof(why), "cannot resolve %s: %s", q->host, gai_strerror(q->err));
            fail(t, why);
        } else {
            start_connect(t, (const struct sockaddr *)&q->addr, q->addr_len);
        }
    }
    free(q);
}

static void *lookup_thread(void *arg)
{
    struct lookup *q = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    q->err = getaddrinfo(q->host, q->port, &hints, &res);
    if (!q->err) {
        memcpy(&q->addr, res->ai_addr, res->ai_addrlen);
        q->addr_len = res->ai_addrlen;
        freeaddrinfo(res);
    }
    if (loop_post_drop(q->loop, on_lookup, free, q) < 0)
        free(q);
    return NULL;
}

int tcp_open(struct tcp *t, const char *host, int port, int64_t timeout_ms)
{
    if (t->state != TCP_CLOSED)
        return -EBUSY;
    t->state = TCP_CONNECTING;
    loop_timer_set(t->loop, &t->timeout, loop_now(t->loop) + timeout_ms, on_timeout, t);

    // Addresses need no lookup.
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        start_connect(t, (struct sockaddr *)&v4, sizeof(v4));
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        start_connect(t, (struct sockaddr *)&v6, sizeof(v6));
        return 0;
    }
    struct lookup *q = xcalloc(1, sizeof(*q));
    q->loop = t->loop;
    q->t = t;
    snprintf(q->host, sizeof(q->host), "%s", host);
    snprintf(q->port, sizeof(q->port), "%d", port);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t th;
    int rc = pthread_create(&th, &attr, lookup_thread, q);
    pthread_attr_destroy(&attr);
    if (rc) {
        free(q);
        fail(t, "cannot start a name lookup");
        return 0;
    }
    t->lookup = q;
    return 0;
}

static void watch_for(struct tcp *t)
{
    loop_watch_mod(t->loop, t->fd, EPOLLIN | (t->tx_len ? EPOLLOUT : 0));
}

static int flush(struct tcp *t)
{
    while (t->tx_len) {
        ssize_t n = send(t->fd, t->tx, t->tx_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -errno;
        }
        memmove(t->tx, t->tx + n, t->tx_len - (size_t)n);
        t->tx_len -= (size_t)n;
    }
    return 0;
}

int tcp_send(struct tcp *t, const void *buf, size_t len)
{
    if (t->state != TCP_OPEN)
        return -ENOTCONN;
    if (t->tx_len + len > TCP_TX_MAX)
        return -ENOBUFS;
    bool was_empty = t->tx_len == 0;
    memcpy(t->tx + t->tx_len, buf, len);
    t->tx_len += len;
    int rc = flush(t);
    if (rc < 0) {
        fail(t, strerror(-rc));
        return rc;
    }
    if (was_empty != (t->tx_len == 0))
        watch_for(t);
    return 0;
}

static void on_connected(struct tcp *t)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        fail(t, strerror(err));
        return;
    }
    loop_timer_cancel(t->loop, &t->timeout);
    t->state = TCP_OPEN;
    watch_for(t);
    if (t->h.connected)
        t->h.connected(t->h.arg);
}

static void on_readable(struct tcp *t)
{
    for (;;) {
        if (t->rx_len == t->rx_max) {
            fail(t, "receive buffer full: the peer sends something that is not a frame");
            return;
        }
        ssize_t n = read(t->fd, t->rx + t->rx_len, t->rx_max - t->rx_len);
        if (n == 0) {
            fail(t, "connection closed by the peer");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fail(t, strerror(errno));
            return;
        }
        t->rx_len += (size_t)n;
        // Hand over frame by frame until the owner wants more bytes.
        while (t->rx_len) {
            unsigned gen = t->generation;
            size_t used = t->h.data ? t->h.data(t->h.arg, t->rx, t->rx_len) : t->rx_len;
            if (gen != t->generation)
                return; // closed (and perhaps reopened) by the handler
            if (used == 0)
                break;
            if (used > t->rx_len)
                used = t->rx_len;
            memmove(t->rx, t->rx + used, t->rx_len - used);
            t->rx_len -= used;
        }
    }
}

static void on_io(void *arg, uint32_t events)
{
    struct tcp *t = arg;
    if (t->state == TCP_CONNECTING) {
        on_connected(t);
        return;
    }
    if (events & EPOLLOUT) {
        int rc = flush(t);
        if (rc < 0) {
            fail(t, strerror(-rc));
            return;
        }
        if (!t->tx_len)
            watch_for(t);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(t);
}
