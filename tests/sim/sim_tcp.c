// SPDX-License-Identifier: MIT
// Listening socket and multi-client fan-out shared by the dongle simulators (see sim_tcp.h).
#include "sim_tcp.h"
#include "sim_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int sim_tcp_listen(const char *who, const char *host, int *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "%s: bad --host %s (IPv4 address expected)\n", who, host);
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    socklen_t alen = sizeof(addr);
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    *port = ntohs(addr.sin_port);
    return fd;
}

void sim_tcp_init(struct sim_tcp *t, const char *who)
{
    memset(t, 0, sizeof(*t));
    t->who = who;
    t->listen_fd = -1;
    for (int i = 0; i < SIM_TCP_CLIENTS; i++)
        t->clients[i].fd = -1;
}

int sim_tcp_open(struct sim_tcp *t, const char *host, int *port)
{
    int fd = sim_tcp_listen(t->who, host, port);
    if (fd < 0)
        return fd;
    t->listen_fd = fd;
    return 0;
}

void sim_tcp_close(struct sim_tcp *t)
{
    for (int i = 0; i < SIM_TCP_CLIENTS; i++)
        sim_tcp_client_close(&t->clients[i]);
    if (t->listen_fd >= 0)
        close(t->listen_fd);
    t->listen_fd = -1;
}

void sim_tcp_client_close(struct sim_tcp_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->rx_len = 0;
}

int sim_tcp_count(const struct sim_tcp *t)
{
    int n = 0;
    for (int i = 0; i < SIM_TCP_CLIENTS; i++)
        n += t->clients[i].fd >= 0;
    return n;
}

void sim_tcp_drop_all(struct sim_tcp *t)
{
    for (int i = 0; i < SIM_TCP_CLIENTS; i++) {
        if (t->clients[i].fd >= 0) {
            sim_tcp_client_close(&t->clients[i]);
            t->dropped++;
        }
    }
}

static void send_all(struct sim_tcp *t, struct sim_tcp_client *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    int64_t give_up = sim_mono_ms() + 1000;
    while (c->fd >= 0 && off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR) && sim_mono_ms() < give_up) {
            sim_sleep_ms(1);
        } else {
            if (t->verbose)
                fprintf(stderr, "%s: info: client dropped on send\n", t->who);
            sim_tcp_client_close(c);
        }
    }
}

void sim_tcp_send(struct sim_tcp *t, const uint8_t *buf, size_t len, bool split)
{
    for (int i = 0; i < SIM_TCP_CLIENTS; i++) {
        struct sim_tcp_client *c = &t->clients[i];
        if (c->fd < 0)
            continue;
        if (split) {
            size_t third = len / 3;
            send_all(t, c, buf, third);
            sim_sleep_ms(SIM_TCP_SPLIT_MS);
            send_all(t, c, buf + third, third);
            sim_sleep_ms(SIM_TCP_SPLIT_MS);
            send_all(t, c, buf + 2 * third, len - 2 * third);
        } else {
            send_all(t, c, buf, len);
        }
    }
}

int sim_tcp_pollfds(const struct sim_tcp *t, struct pollfd *p)
{
    p[0] = (struct pollfd){t->listen_fd, POLLIN, 0};
    for (int i = 0; i < SIM_TCP_CLIENTS; i++)
        p[1 + i] = (struct pollfd){t->clients[i].fd, POLLIN, 0};
    return SIM_TCP_POLLFDS;
}

void sim_tcp_accept(struct sim_tcp *t, const struct pollfd *p)
{
    if (!(p[0].revents & POLLIN))
        return;
    int fd = accept(t->listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    sim_nonblock_cloexec(fd);
    for (int i = 0; i < SIM_TCP_CLIENTS; i++) {
        if (t->clients[i].fd < 0) {
            t->clients[i].fd = fd;
            t->clients[i].rx_len = 0;
            t->connections++;
            if (t->verbose)
                fprintf(stderr, "%s: info: client %d connected\n", t->who, i);
            return;
        }
    }
    close(fd); // the dongle's slots are full
}

static void client_read(struct sim_tcp_client *c,
                        size_t (*take)(void *arg, const uint8_t *rx, size_t len), void *arg)
{
    ssize_t n = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        sim_tcp_client_close(c);
        return;
    }
    c->rx_len += (size_t)n;
    while (c->rx_len > 0) {
        size_t used = take(arg, c->rx, c->rx_len);
        // The frame's answer goes to every client and may have dropped this one.
        if (used == 0 || c->fd < 0)
            break;
        memmove(c->rx, c->rx + used, c->rx_len - used);
        c->rx_len -= used;
    }
    if (c->fd >= 0 && c->rx_len == sizeof(c->rx))
        sim_tcp_client_close(c); // a frame can never be this long
}

void sim_tcp_read(struct sim_tcp *t, const struct pollfd *p,
                  size_t (*take)(void *arg, const uint8_t *rx, size_t len), void *arg)
{
    for (int i = 0; i < SIM_TCP_CLIENTS; i++)
        if (t->clients[i].fd >= 0 && (p[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
            client_read(&t->clients[i], take, arg);
}
