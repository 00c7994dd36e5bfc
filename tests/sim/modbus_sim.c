// SPDX-License-Identifier: MIT
// e2m-modbus-sim: simulated Modbus meters and inverters over TCP or RTU (pty) for the tests.
//
// One thread serves every device: a poll() loop over stdin (the control channel), a self-pipe
// for signals, one listening socket per device and all client sockets (or the RTU tty). Only
// RTU mode adds a thread, the pseudo-terminal relay (see modbus_sim_server.c).
#include "modbus_sim_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <modbus.h>

static int sig_fd = -1; // readable: SIGTERM or SIGINT arrived

// ---- Control channel --------------------------------------------------------------------

static int parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s) {
        return -1;
    }
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    char *end;
    errno = 0;
    long v = strtol(s, &end, hex ? 16 : 10);
    if (end == s || *end || errno || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static struct sim_device *parse_device(struct sim *sim, const char *s)
{
    long i;
    return parse_int(s, 0, sim->count - 1, &i) == 0 ? &sim->devs[i] : NULL;
}

static void set_fault(struct sim *sim, struct sim_device *dev, enum sim_fault f)
{
    dev->fault = f;
    if (f == SIM_FAULT_DROP) {
        sim_conns_close_device(sim, dev);
    }
}

static void evolve_all(struct sim *sim, int steps)
{
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < sim->count; i++) {
            sim->devs[i].profile->evolve(&sim->devs[i], sim->tick_ms / 1000.0);
        }
    }
}

static const char *errno_reason(int rc)
{
    switch (rc) {
    case -ENXIO: return "unmapped address";
    case -ERANGE: return "value out of range";
    default: return "bad value or type";
    }
}

// `set`, `get` and `thaw`: <dev> <table> <address> <type> [<value>].
static void cmd_value(struct sim *sim, const char *cmd, char **arg, int nargs)
{
    bool is_set = strcmp(cmd, "set") == 0;
    if (nargs != (is_set ? 5 : 4)) {
        sim_out("err usage: %s <dev-index> <table> <address> <type>%s", cmd,
                is_set ? " <value>" : "");
        return;
    }
    struct sim_device *dev = parse_device(sim, arg[0]);
    int table = sim_table_parse(arg[1]);
    long address;
    int type = sim_type_parse(arg[3]);
    if (!dev) {
        sim_out("err bad device index %s", arg[0]);
    } else if (table < 0) {
        sim_out("err bad table %s (coil, discrete, holding, input)", arg[1]);
    } else if (parse_int(arg[2], 0, 65535, &address) < 0) {
        sim_out("err bad address %s", arg[2]);
    } else if (type < 0) {
        sim_out("err bad type %s (u16, s16, u32, s32, float32, bool)", arg[3]);
    } else if (is_set) {
        int rc = sim_value_set(dev, table, (int)address, type, arg[4]);
        if (rc < 0) {
            sim_out("err %s", errno_reason(rc));
        } else {
            sim_out("ok");
        }
    } else if (strcmp(cmd, "get") == 0) {
        char value[64];
        int rc = sim_value_get(dev, table, (int)address, type, value, sizeof(value));
        if (rc < 0) {
            sim_out("err %s", errno_reason(rc));
        } else {
            sim_out("ok %s", value);
        }
    } else {
        int rc = sim_value_thaw(dev, table, (int)address, type);
        if (rc < 0) {
            sim_out("err %s", errno_reason(rc));
        } else {
            sim_out("ok");
        }
    }
}

// `mark <dev> <table> <address>`: arms the one-shot `served` report (one address per device and
// table; a new mark replaces the armed one).
static void cmd_mark(struct sim *sim, char **arg, int nargs)
{
    if (nargs != 3) {
        sim_out("err usage: mark <dev-index> <table> <address>");
        return;
    }
    struct sim_device *dev = parse_device(sim, arg[0]);
    int table = sim_table_parse(arg[1]);
    long address;
    if (!dev) {
        sim_out("err bad device index %s", arg[0]);
    } else if (table < 0) {
        sim_out("err bad table %s (coil, discrete, holding, input)", arg[1]);
    } else if (parse_int(arg[2], 0, 65535, &address) < 0) {
        sim_out("err bad address %s", arg[2]);
    } else if (!sim_mapped(dev, table, (int)address, 1)) {
        sim_out("err %s", errno_reason(-ENXIO));
    } else {
        dev->mark[table] = (int)address;
        sim_out("ok");
    }
}

static void cmd_fault(struct sim *sim, char **arg, int nargs)
{
    int f = nargs == 2 ? sim_fault_parse(arg[1]) : -1;
    if (f < 0) {
        sim_out("err usage: fault <dev-index|all> none|drop|stall|exception|garbage");
        return;
    }
    if (strcmp(arg[0], "all") == 0) {
        for (int i = 0; i < sim->count; i++) {
            set_fault(sim, &sim->devs[i], f);
        }
    } else {
        struct sim_device *dev = parse_device(sim, arg[0]);
        if (!dev) {
            sim_out("err bad device index %s", arg[0]);
            return;
        }
        set_fault(sim, dev, f);
    }
    sim_out("ok");
}

static void run_command(struct sim *sim, char *line)
{
    char *arg[8];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (n == (int)(sizeof(arg) / sizeof(arg[0]))) {
            sim_out("err too many arguments");
            return;
        }
        arg[n++] = t;
    }
    if (n == 0 || arg[0][0] == '#') {
        return;
    }
    const char *cmd = arg[0];
    if (strcmp(cmd, "set") == 0 || strcmp(cmd, "get") == 0 || strcmp(cmd, "thaw") == 0) {
        cmd_value(sim, cmd, arg + 1, n - 1);
    } else if (strcmp(cmd, "fault") == 0) {
        cmd_fault(sim, arg + 1, n - 1);
    } else if (strcmp(cmd, "mark") == 0) {
        cmd_mark(sim, arg + 1, n - 1);
    } else if (strcmp(cmd, "freeze") == 0 && n == 1) {
        sim->evolving = false;
        sim_out("ok");
    } else if (strcmp(cmd, "run") == 0 && n == 1) {
        if (!sim->is_static && !sim->evolving) {
            sim->evolving = true;
            sim->next_tick = sim_mono_ms() + sim->tick_ms;
        }
        sim_out("ok");
    } else if (strcmp(cmd, "step") == 0 && n <= 2) {
        long steps = 1;
        if (n == 2 && parse_int(arg[1], 1, 1000000, &steps) < 0) {
            sim_out("err usage: step [count]");
            return;
        }
        evolve_all(sim, (int)steps);
        sim_out("ok");
    } else if (strcmp(cmd, "clients") == 0 && n == 2) {
        struct sim_device *dev = parse_device(sim, arg[1]);
        if (!dev) {
            sim_out("err bad device index %s", arg[1]);
        } else {
            sim_out("ok %zu", sim_conns_count_device(sim, dev));
        }
    } else if (strcmp(cmd, "quit") == 0 && n == 1) {
        sim_out("ok");
        sim->quit = true;
    } else {
        sim_out("err unknown command %s (set get thaw mark fault freeze run step clients quit)",
                cmd);
    }
}

static void stdin_readable(struct sim *sim)
{
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        // EOF only ends the control channel: tests may close stdin and keep the simulator.
        if (sim->line_len > 0 && !sim->line_overflow) {
            sim->line[sim->line_len] = '\0';
            run_command(sim, sim->line);
        }
        sim->line_len = 0;
        sim->stdin_open = false;
        return;
    }
    for (ssize_t i = 0; i < n && !sim->quit; i++) {
        if (buf[i] == '\n') {
            if (sim->line_overflow) {
                sim_out("err line too long");
            } else {
                sim->line[sim->line_len] = '\0';
                run_command(sim, sim->line);
            }
            sim->line_len = 0;
            sim->line_overflow = false;
        } else if (sim->line_len < sizeof(sim->line) - 1) {
            sim->line[sim->line_len++] = buf[i];
        } else {
            sim->line_overflow = true;
        }
    }
}

// ---- Main loop --------------------------------------------------------------------------

enum slot_kind { SLOT_SIGNAL, SLOT_STDIN, SLOT_LISTEN, SLOT_CONN, SLOT_RTU };

struct slot {
    enum slot_kind kind;
    int index;
    struct conn *conn;
};

static int run_loop(struct sim *sim)
{
    size_t cap = 0;
    struct pollfd *pfd = NULL;
    struct slot *slot = NULL;
    int rc = 0;

    while (!sim->quit) {
        size_t need = 3 + (size_t)sim->count + sim->n_conns;
        if (need > cap) {
            cap = need * 2;
            struct pollfd *np = realloc(pfd, cap * sizeof(*np));
            if (np) {
                pfd = np;
            }
            struct slot *ns = realloc(slot, cap * sizeof(*ns));
            if (ns) {
                slot = ns;
            }
            if (!np || !ns) {
                rc = -1;
                break;
            }
        }
        size_t n = 0;
        int64_t now = sim_mono_ms();
        pfd[n] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        slot[n++] = (struct slot){.kind = SLOT_SIGNAL};
        if (sim->stdin_open) {
            pfd[n] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
            slot[n++] = (struct slot){.kind = SLOT_STDIN};
        }
        if (sim->rtu) {
            pfd[n] = (struct pollfd){.fd = modbus_get_socket(sim->ctx[0]), .events = POLLIN};
            slot[n++] = (struct slot){.kind = SLOT_RTU};
        } else if (now >= sim->accept_pause_until) {
            for (int i = 0; i < sim->count; i++) {
                pfd[n] = (struct pollfd){.fd = sim->listen_fd[i], .events = POLLIN};
                slot[n++] = (struct slot){.kind = SLOT_LISTEN, .index = i};
            }
        }
        for (size_t i = 0; i < sim->n_conns; i++) {
            pfd[n] = (struct pollfd){.fd = sim->conns[i]->fd, .events = POLLIN};
            slot[n++] = (struct slot){.kind = SLOT_CONN, .conn = sim->conns[i]};
        }

        int timeout = -1;
        if (sim->evolving) {
            int64_t wait = sim->next_tick - now;
            timeout = wait < 0 ? 0 : (int)wait;
        }
        if (now < sim->accept_pause_until) {
            int wait = (int)(sim->accept_pause_until - now);
            timeout = timeout < 0 || wait < timeout ? wait : timeout;
        }
        int ready = poll(pfd, n, timeout);
        if (ready < 0 && errno != EINTR) {
            perror("modbus-sim: poll");
            rc = -1;
            break;
        }
        for (size_t i = 0; ready > 0 && i < n && !sim->quit; i++) {
            if (!pfd[i].revents) {
                continue;
            }
            switch (slot[i].kind) {
            case SLOT_SIGNAL: sim->quit = true; break;
            case SLOT_STDIN: stdin_readable(sim); break;
            case SLOT_LISTEN: sim_accept_client(sim, slot[i].index); break;
            case SLOT_RTU: sim_rtu_readable(sim); break;
            case SLOT_CONN:
                if (slot[i].conn->fd >= 0) {
                    sim_conn_readable(sim, slot[i].conn);
                }
                break;
            }
        }
        sim_conns_compact(sim);
        if (sim->evolving && sim_mono_ms() >= sim->next_tick) {
            evolve_all(sim, 1);
            sim->next_tick += sim->tick_ms;
            // After a long stall (a debugger, a loaded machine) go on from now: no bursts.
            if (sim->next_tick <= sim_mono_ms()) {
                sim->next_tick = sim_mono_ms() + sim->tick_ms;
            }
        }
    }
    free(pfd);
    free(slot);
    return rc;
}

// ---- Setup and teardown -----------------------------------------------------------------

static void usage(FILE *f)
{
    fprintf(f, "usage: e2m-modbus-sim --profile sdm630|sunspec [--host 127.0.0.1] [--port N]\n"
               "         [--count K] [--unit ID] [--seed S] [--tick MS] [--static]\n"
               "         [--fault none|drop|stall|exception|garbage] [--timestamps] [--verbose]\n"
               "         [--rtu [--baud 9600] [--parity N|E|O]]\n"
               "Prints 'ready tcp <port>...' or 'ready rtu <path>' when serving; reads control\n"
               "commands on stdin (see tests/sim/README.md).\n");
}

static int parse_args(struct sim *sim, int argc, char **argv)
{
    static const struct option opts[] = {
        {"profile", required_argument, NULL, 'p'}, {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'P'},    {"count", required_argument, NULL, 'c'},
        {"unit", required_argument, NULL, 'u'},    {"seed", required_argument, NULL, 's'},
        {"tick", required_argument, NULL, 't'},    {"rtu", no_argument, NULL, 'r'},
        {"baud", required_argument, NULL, 'b'},    {"parity", required_argument, NULL, 'y'},
        {"fault", required_argument, NULL, 'f'},   {"static", no_argument, NULL, 'S'},
        {"timestamps", no_argument, NULL, 'T'},    {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    long v;
    int o;
    sim->unit = -1;
    while ((o = getopt_long(argc, argv, "p:H:P:c:u:s:t:rb:y:f:Svh", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            if (!(sim->profile = sim_profile_find(optarg))) {
                fprintf(stderr, "modbus-sim: unknown profile %s\n", optarg);
                return -1;
            }
            break;
        case 'H': sim->host = optarg; break;
        case 'P':
            if (parse_int(optarg, 0, 65535, &v) < 0) {
                goto bad;
            }
            sim->port = (int)v;
            break;
        case 'c':
            if (parse_int(optarg, 1, 1000, &v) < 0) {
                goto bad;
            }
            sim->count = (int)v;
            break;
        case 'u':
            if (parse_int(optarg, 0, 255, &v) < 0) {
                goto bad;
            }
            sim->unit = (int)v;
            break;
        case 's': {
            char *end;
            errno = 0;
            sim->seed = strtoull(optarg, &end, 0);
            if (end == optarg || *end || errno) {
                goto bad;
            }
            break;
        }
        case 't':
            if (parse_int(optarg, 1, 3600000, &v) < 0) {
                goto bad;
            }
            sim->tick_ms = (int)v;
            break;
        case 'r': sim->rtu = true; break;
        case 'b':
            if (parse_int(optarg, 50, 4000000, &v) < 0) {
                goto bad;
            }
            sim->baud = (int)v;
            break;
        case 'y':
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0])) {
                goto bad;
            }
            sim->parity = optarg[0];
            break;
        case 'f': {
            int f = sim_fault_parse(optarg);
            if (f < 0) {
                goto bad;
            }
            sim->fault = f;
            break;
        }
        case 'S': sim->is_static = true; break;
        case 'T': sim->timestamps = true; break;
        case 'v': sim->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind != argc || !sim->profile) {
        usage(stderr);
        return -1;
    }
    struct in_addr ia;
    if (inet_pton(AF_INET, sim->host, &ia) != 1) {
        fprintf(stderr, "modbus-sim: --host needs an IPv4 address, got %s\n", sim->host);
        return -1;
    }
    if (sim->port && sim->port + sim->count - 1 > 65535) {
        fprintf(stderr, "modbus-sim: ports %d..%d do not fit\n", sim->port,
                sim->port + sim->count - 1);
        return -1;
    }
    if (sim->unit < 0) {
        sim->unit = sim->profile->default_unit;
    }
    if (sim->rtu && (sim->count != 1 || sim->unit < 1 || sim->unit > 247)) {
        fprintf(stderr, "modbus-sim: --rtu serves one device with a unit id of 1..247\n");
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "modbus-sim: bad value for option: %s\n", optarg);
    return -1;
}

// Many devices need many sockets: take everything the hard limit allows.
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void teardown(struct sim *sim)
{
    for (size_t i = 0; i < sim->n_conns; i++) {
        sim_conn_close(sim, sim->conns[i]);
    }
    sim_conns_compact(sim);
    free(sim->conns);
    sim_rtu_stop(sim);
    for (int i = 0; sim->ctx && i < sim->count; i++) {
        if (!sim->ctx[i]) {
            continue;
        }
        if (sim->rtu) {
            modbus_close(sim->ctx[i]); // restores the tty settings and closes it
        } else {
            // The context only ever borrowed client sockets; the listener is closed below.
            modbus_set_socket(sim->ctx[i], -1);
        }
        modbus_free(sim->ctx[i]);
    }
    for (int i = 0; sim->listen_fd && i < sim->count; i++) {
        if (sim->listen_fd[i] >= 0) {
            close(sim->listen_fd[i]);
        }
    }
    int fds[] = {sim->pty_client_keep, sim->pty_master[0], sim->pty_master[1], sim->relay_wake[0],
                 sim->relay_wake[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    sim_signals_close();
    for (int i = 0; sim->devs && i < sim->count; i++) {
        sim_device_free(&sim->devs[i]);
    }
    free(sim->devs);
    free(sim->ctx);
    free(sim->listen_fd);
}

static int announce(const struct sim *sim)
{
    if (sim->rtu) {
        sim_out("ready rtu %s", sim->pty_path[1]);
        return 0;
    }
    size_t size = 16 + 8 * (size_t)sim->count;
    char *line = malloc(size);
    if (!line) {
        return -1;
    }
    size_t n = (size_t)snprintf(line, size, "ready tcp");
    for (int i = 0; i < sim->count; i++) {
        n += (size_t)snprintf(line + n, size - n, " %s", sim->devs[i].label);
    }
    sim_out("%s", line);
    free(line);
    return 0;
}

int main(int argc, char **argv)
{
    struct sim sim = {
        .host = "127.0.0.1",
        .count = 1,
        .tick_ms = 1000,
        .baud = 9600,
        .parity = 'N',
        .seed = 1,
        .pty_master = {-1, -1},
        .pty_client_keep = -1,
        .relay_wake = {-1, -1},
        .stdin_open = true,
    };
    int rc = 1;

    if (parse_args(&sim, argc, argv) < 0) {
        return 2;
    }
    raise_fd_limit();
    sig_fd = sim_signals_open();
    if (sig_fd < 0) {
        perror("modbus-sim: signals");
        return 1;
    }
    sim.devs = calloc((size_t)sim.count, sizeof(*sim.devs));
    sim.ctx = calloc((size_t)sim.count, sizeof(*sim.ctx));
    sim.listen_fd = malloc((size_t)sim.count * sizeof(*sim.listen_fd));
    if (!sim.devs || !sim.ctx || !sim.listen_fd) {
        fprintf(stderr, "modbus-sim: out of memory\n");
        goto out;
    }
    for (int i = 0; i < sim.count; i++) {
        sim.listen_fd[i] = -1;
    }
    for (int i = 0; i < sim.count; i++) {
        if (sim_device_init(&sim.devs[i], sim.profile, i, sim.unit, sim.seed) < 0) {
            fprintf(stderr, "modbus-sim: cannot create device %d\n", i);
            goto out;
        }
        sim.devs[i].fault = sim.fault;
    }
    if ((sim.rtu ? sim_rtu_setup(&sim) : sim_tcp_setup(&sim)) < 0 || announce(&sim) < 0) {
        goto out;
    }
    sim.evolving = !sim.is_static;
    sim.next_tick = sim_mono_ms() + sim.tick_ms;
    rc = run_loop(&sim) < 0 ? 1 : 0;
out:
    teardown(&sim);
    return rc;
}
