// SPDX-License-Identifier: MIT
// e2m-modbus-sim: Modbus request handling, TCP connections and the RTU pseudo-terminal relay.
//
// TCP requests are framed here (MBAP header) instead of with modbus_receive(), because
// modbus_receive() waits for the rest of a partial frame and one slow client would then stall
// every other device. Replies go through modbus_reply()/modbus_reply_exception() with the
// client's socket set on the device's libmodbus context. Everything that would make libmodbus
// sleep (its "flush" on malformed requests) is rejected before libmodbus sees it.
//
// RTU mode creates two pseudo-terminal pairs: libmodbus serves on the first pair's slave side
// and a relay thread copies bytes between the two master sides, so a client that opens the
// second pair's slave side talks Modbus RTU to a real serial-port server.

// posix_openpt() and friends are X/Open functions.
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include "modbus_sim_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

// ---- Requests ---------------------------------------------------------------------------

// Length of the answer a real device would send, used to make garbage look plausible.
static size_t plausible_length(bool rtu, const uint8_t *pdu, size_t pdu_len)
{
    size_t body = 2;
    unsigned qty = pdu_len >= 5 ? (unsigned)(pdu[3] << 8 | pdu[4]) : 1;
    switch (pdu[0]) {
    case MODBUS_FC_READ_COILS:
    case MODBUS_FC_READ_DISCRETE_INPUTS: body = 2 + (qty + 7) / 8; break;
    case MODBUS_FC_READ_HOLDING_REGISTERS:
    case MODBUS_FC_READ_INPUT_REGISTERS: body = 2 + 2 * (size_t)qty; break;
    case MODBUS_FC_WRITE_SINGLE_COIL:
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS: body = 5; break;
    default: break;
    }
    size_t total = rtu ? 1 + body + 2 : 7 + body;
    size_t max = rtu ? MODBUS_RTU_MAX_ADU_LENGTH : MODBUS_TCP_MAX_ADU_LENGTH;
    return total < max ? total : max;
}

static void send_garbage(struct sim *sim, struct sim_device *dev, int fd, size_t n)
{
    uint8_t junk[MODBUS_TCP_MAX_ADU_LENGTH];
    for (size_t i = 0; i < n; i++) {
        junk[i] = (uint8_t)sim_rng_next(&dev->rng);
    }
    ssize_t rc = sim->rtu ? write(fd, junk, n) : send(fd, junk, n, MSG_NOSIGNAL);
    if (rc < 0) {
        VLOG(sim, "%s: garbage not sent: %s\n", dev->label, strerror(errno));
    }
}

static void print_write(const struct sim *sim, const struct sim_device *dev, enum sim_table table,
                        int address, int count, const uint16_t *values)
{
    char buf[8 * MODBUS_MAX_WRITE_BITS + 32];
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && n + 8 < sizeof(buf) - 32; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %u", values[i]);
    }
    if (sim->timestamps) {
        snprintf(buf + n, sizeof(buf) - n, " @%lld", (long long)sim_mono_us());
    }
    sim_out("write %s %s %d %d%s", dev->label, sim_table_name(table), address, count, buf);
}

// After a read was answered: reports and disarms a `mark` inside the range that was read.
static void check_mark(struct sim_device *dev, enum sim_table table, int address, int count)
{
    int mark = dev->mark[table];
    if (mark < address || mark >= address + count || !sim_mapped(dev, table, address, count)) {
        return;
    }
    dev->mark[table] = -1;
    sim_out("served %d %s %d @%lld", dev->index, sim_table_name(table), mark,
            (long long)sim_mono_us());
}

// Validates a write request, lets libmodbus apply and acknowledge it, and reports it. Returns
// the exception code to send instead, or 0 when the write was handled.
static int handle_write(struct sim *sim, struct sim_device *dev, modbus_t *ctx, const uint8_t *req,
                        int len, const uint8_t *pdu, size_t pdu_len)
{
    static uint16_t values[MODBUS_MAX_WRITE_BITS];
    int fc = pdu[0];
    if (pdu_len < 5) {
        return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    }
    int address = pdu[1] << 8 | pdu[2];
    enum sim_table table = fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_MULTIPLE_COILS
                               ? SIM_TABLE_COIL
                               : SIM_TABLE_HOLDING;
    int count;

    if (fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_SINGLE_REGISTER) {
        if (pdu_len != 5) {
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        }
        unsigned v = (unsigned)(pdu[3] << 8 | pdu[4]);
        if (fc == MODBUS_FC_WRITE_SINGLE_COIL) {
            if (v != 0xFF00 && v != 0) {
                return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            }
            v = v ? 1 : 0;
        }
        count = 1;
        values[0] = (uint16_t)v;
    } else {
        if (pdu_len < 6) {
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        }
        count = pdu[3] << 8 | pdu[4];
        size_t bytes = pdu[5];
        bool coils = fc == MODBUS_FC_WRITE_MULTIPLE_COILS;
        int max = coils ? MODBUS_MAX_WRITE_BITS : MODBUS_MAX_WRITE_REGISTERS;
        size_t want = coils ? (size_t)(count + 7) / 8 : 2 * (size_t)count;
        if (count < 1 || count > max || bytes != want || pdu_len != 6 + bytes) {
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        }
        for (int i = 0; i < count; i++) {
            values[i] = coils ? (pdu[6 + i / 8] >> (i % 8)) & 1
                              : (uint16_t)(pdu[6 + 2 * i] << 8 | pdu[7 + 2 * i]);
        }
    }
    if (!sim_mapped(dev, table, address, count)) {
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    }
    int exc = dev->profile->check_write(dev, table, address, count, values, fc);
    if (exc) {
        return exc;
    }
    // libmodbus stores the values in the mapping before it sends the acknowledgement, so the
    // write has happened even when the client is already gone.
    if (modbus_reply(ctx, req, len, dev->map) < 0) {
        VLOG(sim, "%s: write acknowledgement not sent: %s\n", dev->label, modbus_strerror(errno));
    }
    print_write(sim, dev, table, address, count, values);
    if (dev->profile->written) {
        dev->profile->written(dev, table, address, count);
    }
    return 0;
}

// The table a read function code addresses.
static enum sim_table read_table(int function)
{
    switch (function) {
    case MODBUS_FC_READ_COILS: return SIM_TABLE_COIL;
    case MODBUS_FC_READ_DISCRETE_INPUTS: return SIM_TABLE_DISCRETE;
    case MODBUS_FC_READ_HOLDING_REGISTERS: return SIM_TABLE_HOLDING;
    default: return SIM_TABLE_INPUT;
    }
}

// Answers one complete request (TCP ADU or RTU frame including CRC). `fd` is the socket or
// tty the answer goes to. Returns -1 when the connection should be closed.
static int handle_request(struct sim *sim, struct sim_device *dev, modbus_t *ctx, int fd,
                          const uint8_t *req, int len)
{
    int hdr = modbus_get_header_length(ctx);
    size_t pdu_len = (size_t)len - (size_t)hdr - (sim->rtu ? 2 : 0);
    const uint8_t *pdu = req + hdr;
    int unit = req[hdr - 1];
    bool broadcast = sim->rtu && unit == 0;
    int exc = 0;
    int rc = 0;

    if (!sim->rtu) {
        modbus_set_socket(ctx, fd);
    }
    VLOG(sim, "%s: request unit %d function %u, %zu bytes\n", dev->label, unit, pdu[0], pdu_len);
    switch (dev->fault) {
    case SIM_FAULT_DROP:
    case SIM_FAULT_STALL: return 0;
    case SIM_FAULT_EXCEPTION:
        if (!broadcast) {
            rc = modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
        }
        return rc < 0 && !sim->rtu ? -1 : 0;
    case SIM_FAULT_GARBAGE:
        if (!broadcast) {
            send_garbage(sim, dev, fd, plausible_length(sim->rtu, pdu, pdu_len));
        }
        return 0;
    case SIM_FAULT_NONE: break;
    }

    // A Modbus TCP gateway answers requests for a unit it does not have with exception 0x0B;
    // on a serial bus another unit's request is simply not ours (libmodbus filters those).
    if (!sim->rtu && unit != dev->unit) {
        exc = MODBUS_EXCEPTION_GATEWAY_TARGET;
    } else {
        switch (pdu[0]) {
        case MODBUS_FC_READ_COILS:
        case MODBUS_FC_READ_DISCRETE_INPUTS:
        case MODBUS_FC_READ_HOLDING_REGISTERS:
        case MODBUS_FC_READ_INPUT_REGISTERS: {
            bool bits = pdu[0] <= MODBUS_FC_READ_DISCRETE_INPUTS;
            int qty = pdu_len == 5 ? pdu[3] << 8 | pdu[4] : 0;
            int max = bits ? MODBUS_MAX_READ_BITS : dev->profile->max_read_registers;
            if (qty < 1 || qty > max) {
                exc = MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            } else if (!broadcast) {
                rc = modbus_reply(ctx, req, len, dev->map);
                if (rc >= 0) {
                    check_mark(dev, read_table(pdu[0]), pdu[1] << 8 | pdu[2], qty);
                }
            }
            break;
        }
        case MODBUS_FC_WRITE_SINGLE_COIL:
        case MODBUS_FC_WRITE_SINGLE_REGISTER:
        case MODBUS_FC_WRITE_MULTIPLE_COILS:
        case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
            exc = handle_write(sim, dev, ctx, req, len, pdu, pdu_len);
            break;
        default: exc = MODBUS_EXCEPTION_ILLEGAL_FUNCTION; break;
        }
    }
    if (exc && !broadcast) {
        VLOG(sim, "%s: exception %d for function %u\n", dev->label, exc, pdu[0]);
        rc = modbus_reply_exception(ctx, req, (unsigned)exc);
    }
    return rc < 0 && !sim->rtu ? -1 : 0;
}

// ---- TCP connections --------------------------------------------------------------------

void sim_conn_close(struct sim *sim, struct conn *c)
{
    if (c->fd >= 0) {
        VLOG(sim, "%s: connection %d closed\n", c->dev->label, c->fd);
        close(c->fd);
        c->fd = -1;
    }
}

void sim_conns_close_device(struct sim *sim, const struct sim_device *dev)
{
    for (size_t i = 0; i < sim->n_conns; i++) {
        if (sim->conns[i]->dev == dev) {
            sim_conn_close(sim, sim->conns[i]);
        }
    }
}

size_t sim_conns_count_device(const struct sim *sim, const struct sim_device *dev)
{
    size_t n = 0;
    for (size_t i = 0; i < sim->n_conns; i++) {
        n += sim->conns[i]->dev == dev && sim->conns[i]->fd >= 0;
    }
    return n;
}

// Frees closed connections; only called between poll rounds, so no pollfd refers to them.
void sim_conns_compact(struct sim *sim)
{
    size_t k = 0;
    for (size_t i = 0; i < sim->n_conns; i++) {
        if (sim->conns[i]->fd < 0) {
            free(sim->conns[i]);
        } else {
            sim->conns[k++] = sim->conns[i];
        }
    }
    sim->n_conns = k;
}

void sim_accept_client(struct sim *sim, int di)
{
    struct sim_device *dev = &sim->devs[di];
    int fd = accept(sim->listen_fd[di], NULL, NULL);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            // The backlog stays readable; pause accepting instead of spinning.
            fprintf(stderr, "modbus-sim: accept: %s\n", strerror(errno));
            sim->accept_pause_until = sim_mono_ms() + 100;
        }
        return;
    }
    if (dev->fault == SIM_FAULT_DROP) {
        VLOG(sim, "%s: connection refused (drop)\n", dev->label);
        close(fd);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (sim_nonblock_cloexec(fd) < 0) {
        close(fd);
        return;
    }
    if (sim->n_conns == sim->cap_conns) {
        size_t cap = sim->cap_conns ? 2 * sim->cap_conns : 64;
        struct conn **n = realloc(sim->conns, cap * sizeof(*n));
        if (!n) {
            close(fd);
            return;
        }
        sim->conns = n;
        sim->cap_conns = cap;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->dev = dev;
    sim->conns[sim->n_conns++] = c;
    VLOG(sim, "%s: connection %d accepted\n", dev->label, fd);
}

void sim_conn_readable(struct sim *sim, struct conn *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        sim_conn_close(sim, c);
        return;
    }
    if (n < 0) {
        return;
    }
    c->len += (size_t)n;
    if (c->dev->fault == SIM_FAULT_STALL) {
        // A stalled device swallows requests; none is answered late when it recovers.
        c->len = 0;
        return;
    }
    while (c->len >= 7) {
        unsigned proto = (unsigned)(c->buf[2] << 8 | c->buf[3]);
        unsigned mlen = (unsigned)(c->buf[4] << 8 | c->buf[5]);
        // Like a real device, drop a connection whose framing makes no sense.
        if (proto != 0 || mlen < 2 || mlen > MODBUS_TCP_MAX_ADU_LENGTH - 6) {
            VLOG(sim, "%s: bad MBAP header, closing\n", c->dev->label);
            sim_conn_close(sim, c);
            return;
        }
        size_t total = 6 + (size_t)mlen;
        if (c->len < total) {
            break;
        }
        int di = c->dev->index;
        if (handle_request(sim, c->dev, sim->ctx[di], c->fd, c->buf, (int)total) < 0) {
            sim_conn_close(sim, c);
            return;
        }
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
    }
}

// ---- RTU --------------------------------------------------------------------------------

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *relay_main(void *arg)
{
    struct sim *sim = arg;
    struct pollfd p[3] = {
        {.fd = sim->pty_master[0], .events = POLLIN},
        {.fd = sim->pty_master[1], .events = POLLIN},
        {.fd = sim->relay_wake[0], .events = POLLIN},
    };
    uint8_t buf[512];
    for (;;) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[2].revents) {
            break;
        }
        for (int k = 0; k < 2; k++) {
            if (p[k].revents & POLLIN) {
                ssize_t n = read(p[k].fd, buf, sizeof(buf));
                if (n > 0) {
                    (void)write_all(p[1 - k].fd, buf, (size_t)n);
                }
            } else if (p[k].revents & (POLLHUP | POLLERR)) {
                // No slave side open right now; wait instead of spinning.
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
    }
    return NULL;
}

static int open_pty(char *path, size_t size)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) {
        return -1;
    }
    const char *name;
    if (grantpt(m) < 0 || unlockpt(m) < 0 || !(name = ptsname(m)) ||
        (size_t)snprintf(path, size, "%s", name) >= size) {
        close(m);
        return -1;
    }
    (void)fcntl(m, F_SETFD, FD_CLOEXEC);
    return m;
}

int sim_rtu_setup(struct sim *sim)
{
    for (int k = 0; k < 2; k++) {
        sim->pty_master[k] = open_pty(sim->pty_path[k], sizeof(sim->pty_path[k]));
        if (sim->pty_master[k] < 0) {
            fprintf(stderr, "modbus-sim: cannot create a pseudo-terminal: %s\n", strerror(errno));
            return -1;
        }
    }
    // Holding the client side open keeps its settings and stops the master from reporting
    // hang-ups between clients; raw mode stops the tty from echoing relayed bytes back.
    sim->pty_client_keep = open(sim->pty_path[1], O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct termios tio;
    if (sim->pty_client_keep < 0 || tcgetattr(sim->pty_client_keep, &tio) < 0) {
        fprintf(stderr, "modbus-sim: %s: %s\n", sim->pty_path[1], strerror(errno));
        return -1;
    }
    cfmakeraw(&tio);
    (void)tcsetattr(sim->pty_client_keep, TCSANOW, &tio);

    modbus_t *ctx = modbus_new_rtu(sim->pty_path[0], sim->baud, sim->parity, 8, 1);
    if (!ctx) {
        fprintf(stderr, "modbus-sim: modbus_new_rtu: %s\n", modbus_strerror(errno));
        return -1;
    }
    sim->ctx[0] = ctx;
    if (modbus_set_slave(ctx, sim->unit) < 0 || modbus_connect(ctx) < 0) {
        fprintf(stderr, "modbus-sim: %s: %s\n", sim->pty_path[0], modbus_strerror(errno));
        return -1;
    }
    if (pipe(sim->relay_wake) < 0) {
        return -1;
    }
    // The relay must not take the process's signals: the main loop owns shutdown.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&sim->relay, NULL, relay_main, sim);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "modbus-sim: pthread_create: %s\n", strerror(rc));
        return -1;
    }
    sim->relay_started = true;
    snprintf(sim->devs[0].label, sizeof(sim->devs[0].label), "rtu");
    return 0;
}

void sim_rtu_readable(struct sim *sim)
{
    uint8_t req[MODBUS_RTU_MAX_ADU_LENGTH];
    modbus_t *ctx = sim->ctx[0];
    int n = modbus_receive(ctx, req);
    if (n > 0) {
        handle_request(sim, &sim->devs[0], ctx, modbus_get_socket(ctx), req, n);
    } else if (n < 0) {
        VLOG(sim, "rtu: bad frame: %s\n", modbus_strerror(errno));
        modbus_flush(ctx);
    }
}

// ---- TCP setup --------------------------------------------------------------------------

int sim_tcp_setup(struct sim *sim)
{
    for (int i = 0; i < sim->count; i++) {
        int port = sim->port ? sim->port + i : 0;
        modbus_t *ctx = modbus_new_tcp(sim->host, port);
        if (!ctx) {
            fprintf(stderr, "modbus-sim: modbus_new_tcp: %s\n", modbus_strerror(errno));
            return -1;
        }
        sim->ctx[i] = ctx;
        int fd = modbus_tcp_listen(ctx, LISTEN_BACKLOG);
        if (fd < 0) {
            fprintf(stderr, "modbus-sim: listen on %s:%d: %s\n", sim->host, port, strerror(errno));
            return -1;
        }
        sim->listen_fd[i] = fd;
        (void)sim_nonblock_cloexec(fd);
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
            return -1;
        }
        snprintf(sim->devs[i].label, sizeof(sim->devs[i].label), "%u", ntohs(sa.sin_port));
    }
    return 0;
}

void sim_rtu_stop(struct sim *sim)
{
    if (sim->relay_started) {
        if (write(sim->relay_wake[1], "x", 1) < 0) {
            perror("modbus-sim: relay wake-up");
        }
        pthread_join(sim->relay, NULL);
        sim->relay_started = false;
    }
}
