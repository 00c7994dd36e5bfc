// SPDX-License-Identifier: MIT
// Modbus TCP and RTU devices through libmodbus.
//
// libmodbus is the codec here: it frames requests, checks CRCs and transaction ids and maps
// exceptions to errno values. Its calls block for up to the response timeout, so every job
// runs on the device's worker thread (see driver.h); nothing here touches shared state.
//
// Tables: holding registers (FC3 read, FC6/FC16 write), input registers (FC4), coils (FC1
// read, FC5 write) and discrete inputs (FC2). Addresses are the 0-based protocol addresses.
// After a timeout or a malformed reply the connection is closed and reopened on the next
// job, so a late answer can never be taken for the next request's.
//
// Devices that share a line share one connection, a "bus": the slaves of one RS485 port (the
// port can only be opened once), or the units behind one Modbus TCP gateway (many gateways
// take a single connection, and none like interleaved requests). Each job holds the bus lock
// from start to end, so devices on a bus take turns; the wait counts as part of their
// exchange.
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "drivers/driver.h"
#include "drivers/modbus/modbus_frame.h"

enum { T_HOLDING, T_INPUT, T_COIL, T_DISCRETE };

// FC3/FC4 return at most 125 registers, FC1/FC2 at most 2000 bits.
static const struct drv_table tables[] = {
    [T_HOLDING] = {"holding", false, true, 65535, {125, 8, 0}, 125},
    [T_INPUT] = {"input", false, false, 65535, {125, 8, 0}, 125},
    [T_COIL] = {"coil", true, true, 65535, {2000, 32, 0}, 2000},
    [T_DISCRETE] = {"discrete", true, false, 65535, {2000, 32, 0}, 2000},
};

static const char *const parities[] = {"none", "even", "odd", NULL};
static const char *const write_functions[] = {"auto", "single", "multiple", NULL};

static const struct param_def settings[] = {
    {.name = "host", .type = PARAM_STR, .help = "Modbus TCP: host name or address"},
    {.name = "port", .type = PARAM_INT, .def = "502", .min = 1, .max = 65535},
    {.name = "device", .type = PARAM_STR, .help = "Modbus RTU: serial device, e.g. /dev/ttyUSB0"},
    {.name = "baud", .type = PARAM_INT, .def = "9600", .min = 300, .max = 4000000},
    {.name = "parity", .type = PARAM_CHOICE, .def = "none", .choices = parities},
    {.name = "data_bits", .type = PARAM_INT, .def = "8", .min = 7, .max = 8},
    {.name = "stop_bits", .type = PARAM_INT, .def = "1", .min = 1, .max = 2},
    {.name = "unit_id",
     .type = PARAM_INT,
     .def = "1",
     .min = 0,
     .max = 255,
     .help = "slave/unit address (RTU: 1-247)"},
};

static const struct param_def options[] = {
    {.name = "write_function",
     .type = PARAM_CHOICE,
     .def = "auto",
     .choices = write_functions,
     .help = "holding writes of one register: auto/single use FC6, multiple forces FC16"},
};

struct bus {
    char key[300]; // "rtu:/dev/ttyUSB0" or "tcp:host:port"
    bool rtu;
    char host[256], port[8], device[256];
    int baud, data_bits, stop_bits;
    char parity;
    modbus_t *ctx; // NULL while disconnected
    pthread_mutex_t lock;
    int users;
    struct bus *next;
};

static pthread_mutex_t buses_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bus *buses;

struct modbus_dev {
    char id[65];
    struct bus *bus;
    int unit;
    bool force_multiple;
    uint32_t connect_timeout_ms, reply_timeout_ms;
};

static void bus_key(const struct params *s, char *key, size_t n)
{
    const char *host = params_str(s, "host");
    if (host)
        snprintf(key, n, "tcp:%s:%lld", host, params_int(s, "port"));
    else
        snprintf(key, n, "rtu:%s", params_str(s, "device"));
}

static struct bus *bus_get(const struct params *s)
{
    char key[300];
    bus_key(s, key, sizeof(key));
    pthread_mutex_lock(&buses_lock);
    struct bus *b;
    for (b = buses; b && strcmp(b->key, key) != 0; b = b->next)
        ;
    if (!b && (b = calloc(1, sizeof(*b)))) {
        snprintf(b->key, sizeof(b->key), "%s", key);
        const char *host = params_str(s, "host");
        b->rtu = host == NULL;
        if (host)
            snprintf(b->host, sizeof(b->host), "%s", host);
        else
            snprintf(b->device, sizeof(b->device), "%s", params_str(s, "device"));
        snprintf(b->port, sizeof(b->port), "%lld", params_int(s, "port"));
        b->baud = (int)params_int(s, "baud");
        b->parity = "NEO"[params_choice(s, "parity")];
        b->data_bits = (int)params_int(s, "data_bits");
        b->stop_bits = (int)params_int(s, "stop_bits");
        pthread_mutex_init(&b->lock, NULL);
        b->next = buses;
        buses = b;
    }
    if (b)
        b->users++;
    pthread_mutex_unlock(&buses_lock);
    return b;
}

static void bus_disconnect(struct bus *b)
{
    if (!b->ctx)
        return;
    modbus_close(b->ctx);
    modbus_free(b->ctx);
    b->ctx = NULL;
}

static void bus_put(struct bus *b)
{
    pthread_mutex_lock(&buses_lock);
    if (--b->users == 0) {
        struct bus **pp = &buses;
        while (*pp != b)
            pp = &(*pp)->next;
        *pp = b->next;
        bus_disconnect(b);
        pthread_mutex_destroy(&b->lock);
        free(b);
    }
    pthread_mutex_unlock(&buses_lock);
}

static int modbus_check(const struct drv_device *dev, char *err, size_t n)
{
    bool host = params_is_set(dev->settings, "host");
    bool device = params_is_set(dev->settings, "device");
    if (host == device) {
        snprintf(err, n, "give host (Modbus TCP) or device (Modbus RTU), exactly one");
        return -EINVAL;
    }
    long long unit = params_int(dev->settings, "unit_id");
    if (device && (unit < 1 || unit > 247)) {
        snprintf(err, n, "unit_id on a serial bus must be 1-247, got %lld", unit);
        return -EINVAL;
    }
    return 0;
}

static int modbus_conflict(const struct drv_device *a, const struct drv_device *b, char *err,
                           size_t n)
{
    char ka[300], kb[300];
    bus_key(a->settings, ka, sizeof(ka));
    bus_key(b->settings, kb, sizeof(kb));
    if (strcmp(ka, kb) != 0)
        return 0;
    if (params_int(a->settings, "unit_id") == params_int(b->settings, "unit_id")) {
        snprintf(err, n, "the same Modbus device (%s, unit %lld) is configured twice", ka + 4,
                 params_int(b->settings, "unit_id"));
        return -EINVAL;
    }
    static const char *const line[] = {"baud", "parity", "data_bits", "stop_bits"};
    for (size_t i = 0; ka[0] == 'r' && i < 4; i++) {
        if (params_int(a->settings, line[i]) != params_int(b->settings, line[i])) {
            snprintf(err, n, "devices on one serial port must use the same %s", line[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static int modbus_open(const struct drv_device *dev, void **state)
{
    struct modbus_dev *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s", dev->id);
    m->bus = bus_get(dev->settings);
    if (!m->bus) {
        free(m);
        return -ENOMEM;
    }
    m->unit = (int)params_int(dev->settings, "unit_id");
    m->force_multiple = params_choice(dev->options, "write_function") == 2;
    m->connect_timeout_ms = (uint32_t)params_ms(dev->core_options, "connect_timeout");
    m->reply_timeout_ms = (uint32_t)params_ms(dev->core_options, "reply_timeout");
    *state = m;
    return 0;
}

static void modbus_close_dev(void *state)
{
    struct modbus_dev *m = state;
    bus_put(m->bus);
    free(m);
}

static void set_timeout(modbus_t *ctx, uint32_t ms)
{
    modbus_set_response_timeout(ctx, ms / 1000, (ms % 1000) * 1000);
}

static enum drv_status fail(struct modbus_dev *m, struct drv_result *res, const char *what)
{
    int e = errno;
    snprintf(res->detail, sizeof(res->detail), "%s: %.100s", what, modbus_strerror(e));
    if (e > MODBUS_ENOBASE && e <= EMBXGTAR) {
        res->code = e - MODBUS_ENOBASE;
        return res->status = DRV_ERR_EXCEPTION; // the device answered; the link is fine
    }
    bus_disconnect(m->bus);
    if (e == ETIMEDOUT)
        return res->status = DRV_ERR_TIMEOUT;
    if (e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC || e == EMBMDATA ||
        e == EMBBADSLAVE)
        return res->status = DRV_ERR_PROTOCOL;
    return res->status = DRV_ERR_IO;
}

// libmodbus waits for replies with select(), which cannot watch a descriptor at or above
// FD_SETSIZE (glibc aborts the process). The daemon keeps its own sockets above that line, so
// this leaves room for about a thousand Modbus connections; past it a device fails to
// connect with this reason instead of taking the daemon down.
static int check_fd(int fd, char *detail, size_t n)
{
    if (fd < FD_SETSIZE)
        return 0;
    snprintf(detail, n, "descriptor %d is beyond libmodbus: too many Modbus links in one instance",
             fd);
    return -1;
}

// Connects a Modbus TCP socket within `timeout_ms` (libmodbus's own connect waits with
// select() too). Returns the descriptor or -1 with `detail` set.
static int tcp_connect(const struct bus *b, uint32_t timeout_ms, char *detail, size_t n)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    int rc = getaddrinfo(b->host, b->port, &hints, &ai);
    if (rc != 0) {
        snprintf(detail, n, "cannot resolve %.64s: %s", b->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            err = 0;
        } else if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof(err);
            rc = poll(&p, 1, (int)timeout_ms);
            if (rc == 0)
                err = ETIMEDOUT;
            else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        }
        if (err) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        snprintf(detail, n, "cannot connect to %.64s:%s: %s", b->host, b->port, strerror(err));
    return fd;
}

static int ensure_connected(struct modbus_dev *m, struct drv_result *res)
{
    struct bus *b = m->bus;
    if (!b->ctx) {
        b->ctx = b->rtu ? modbus_new_rtu(b->device, b->baud, b->parity, b->data_bits, b->stop_bits)
                        : modbus_new_tcp_pi(b->host, b->port);
        if (!b->ctx) {
            snprintf(res->detail, sizeof(res->detail), "cannot create a Modbus context: %s",
                     modbus_strerror(errno));
            res->status = DRV_ERR_CONNECT;
            return -1;
        }
        int rc;
        if (b->rtu) {
            rc = modbus_connect(b->ctx);
            if (rc < 0)
                snprintf(res->detail, sizeof(res->detail), "cannot open %.64s: %.40s", b->device,
                         modbus_strerror(errno));
            else
                rc = check_fd(modbus_get_socket(b->ctx), res->detail, sizeof(res->detail));
        } else {
            int fd = tcp_connect(b, m->connect_timeout_ms, res->detail, sizeof(res->detail));
            rc = fd < 0 ? -1 : check_fd(fd, res->detail, sizeof(res->detail));
            if (rc == 0)
                modbus_set_socket(b->ctx, fd);
            else if (fd >= 0)
                close(fd);
        }
        if (rc < 0) {
            modbus_close(b->ctx);
            modbus_free(b->ctx);
            b->ctx = NULL;
            res->status = DRV_ERR_CONNECT;
            return -1;
        }
    }
    // Per job: devices sharing the bus may differ in unit and timeout.
    modbus_set_slave(b->ctx, m->unit);
    set_timeout(b->ctx, m->reply_timeout_ms);
    return 0;
}

static void do_read(struct modbus_dev *m, const struct drv_job *job, struct drv_result *res)
{
    int n;
    uint8_t bits[DRV_MAX_READ];
    switch (job->table) {
    case T_HOLDING:
        n = modbus_read_registers(m->bus->ctx, (int)job->address, job->count, res->regs);
        break;
    case T_INPUT:
        n = modbus_read_input_registers(m->bus->ctx, (int)job->address, job->count, res->regs);
        break;
    case T_COIL: n = modbus_read_bits(m->bus->ctx, (int)job->address, job->count, bits); break;
    default: n = modbus_read_input_bits(m->bus->ctx, (int)job->address, job->count, bits); break;
    }
    if (n < 0) {
        fail(m, res, "read");
        return;
    }
    if (tables[job->table].bits)
        for (int i = 0; i < n; i++)
            res->regs[i] = bits[i] ? 1 : 0;
    res->count = (uint16_t)n;
    res->status = DRV_OK;
}

static void do_write(struct modbus_dev *m, const struct drv_job *job, struct drv_result *res)
{
    int rc;
    int addr = (int)job->address;
    if (job->table == T_COIL) {
        rc = modbus_write_bit(m->bus->ctx, addr, job->regs[0] ? 1 : 0);
    } else if (job->bit >= 0) {
        // One bit of a register: read it fresh, change the bit, write it back.
        uint16_t cur;
        if (modbus_read_registers(m->bus->ctx, addr, 1, &cur) < 0) {
            fail(m, res, "read before write");
            return;
        }
        uint16_t v = regmap_apply_bit(&job->bit_format, cur, job->bit_on);
        rc = m->force_multiple ? modbus_write_registers(m->bus->ctx, addr, 1, &v)
                               : modbus_write_register(m->bus->ctx, addr, v);
    } else if (job->count == 1 && !m->force_multiple) {
        rc = modbus_write_register(m->bus->ctx, addr, job->regs[0]);
    } else {
        rc = modbus_write_registers(m->bus->ctx, addr, job->count, job->regs);
    }
    if (rc < 0) {
        fail(m, res, "write");
        return;
    }
    res->status = DRV_OK;
}

static void modbus_run(void *state, const struct drv_job *job, struct drv_result *res)
{
    struct modbus_dev *m = state;
    res->status = DRV_OK;
    res->code = 0;
    res->count = 0;
    res->n_samples = 0;
    res->detail[0] = '\0';
    pthread_mutex_lock(&m->bus->lock); // devices sharing the line take turns
    if (ensure_connected(m, res) == 0) {
        switch (job->type) {
        case DRV_JOB_READ: do_read(m, job, res); break;
        case DRV_JOB_WRITE: do_write(m, job, res); break;
        default:
            snprintf(res->detail, sizeof(res->detail), "job type %d not supported", job->type);
            res->status = DRV_ERR_PROTOCOL;
        }
    }
    pthread_mutex_unlock(&m->bus->lock);
}

const struct driver_ops modbus_driver = {
    .name = "modbus",
    .summary = "any Modbus TCP or RTU device (meters, SunSpec inverters, ...)",
    .settings = settings,
    .n_settings = sizeof(settings) / sizeof(settings[0]),
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .tables = tables,
    .n_tables = sizeof(tables) / sizeof(tables[0]),
    .timing =
        {
            .min_gap_ms = 0,
            .poll_ms = 10000,
            .min_poll_ms = 100,
            .reply_timeout_ms = 1000,
            .connect_timeout_ms = 3000,
            .backoff_min_ms = 1000,
            .backoff_max_ms = 60000,
        },
    .check = modbus_check,
    .conflict = modbus_conflict,
    .open = modbus_open,
    .close = modbus_close_dev,
    .run = modbus_run,
    .decode = modbus_frame_decode,
};
