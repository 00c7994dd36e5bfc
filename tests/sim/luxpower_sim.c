// SPDX-License-Identifier: MIT
// e2m-luxpower-sim: a simulated LuxPower WiFi dongle (TCP server, port 8000) with its inverter.
//
// One thread: a poll() loop over a signal self-pipe, stdin (the control channel), the listening
// socket and up to eight clients. The dongle and inverter are the I/O-free model of
// luxpower_sim_model.c; this file moves bytes, keeps the clocks (heartbeats, broadcasts, value
// evolution) and applies the one-shot faults to the next frame the model sends.
#include "luxpower_sim.h"
#include "sim_tcp.h"
#include "sim_util.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum fault { F_NONE, F_BADCRC, F_SPLIT, F_GARBAGE, F_STALL };

struct sim {
    struct ls_config cfg;
    struct ls_sim *model;
    char host[64];
    int port;
    int64_t tick_ms, next_tick, next_hb, next_bc;
    enum fault fault; // applies to the next frame the model sends (stall: the next request)
    struct sim_tcp tcp;
};

// The model sends a frame: to every client, with the armed fault applied.
static void emit(void *arg, const uint8_t *frame, size_t len)
{
    struct sim *s = arg;
    uint8_t buf[LS_FRAME_MAX + 32];
    size_t at = 0;
    enum fault f = s->fault == F_STALL ? F_NONE : s->fault;
    if (f != F_NONE)
        s->fault = F_NONE;
    if (f == F_GARBAGE) {
        // Bytes no dongle frame starts with, before the frame.
        static const uint8_t junk[] = {0x00, 0x13, 0xa1, 0x37, 0x1a, 0xff, 0x42};
        memcpy(buf, junk, sizeof(junk));
        at = sizeof(junk);
    }
    memcpy(buf + at, frame, len);
    if (f == F_BADCRC)
        buf[at + len - 1] ^= 0x5a;
    at += len;
    sim_tcp_send(&s->tcp, buf, at, f == F_SPLIT);
}

static void on_line(void *arg, const char *line)
{
    (void)arg;
    sim_out("%s", line);
}

// Handles one frame (or the garbage before one) that a client sent; returns the bytes used.
static size_t take_frame(void *arg, const uint8_t *rx, size_t len)
{
    struct sim *s = arg;
    struct ls_frame f;
    long r = ls_parse(rx, len, &f);
    if (r == 0)
        return 0; // the rest of the frame has not arrived yet
    size_t used = r < 0 ? (size_t)-r : (size_t)r;
    if (r < 0) {
        ls_bad_frame(s->model);
    } else if (s->fault == F_STALL && f.tcp_fn == 0xC2) {
        s->fault = F_NONE; // swallowed: never answered
        if (s->tcp.verbose)
            fprintf(stderr, "e2m-luxpower-sim: info: request stalled\n");
    } else {
        if (s->tcp.verbose)
            fprintf(stderr, "e2m-luxpower-sim: debug: frame 0x%02x fn 0x%02x reg %u\n", f.tcp_fn,
                    f.fn, f.reg);
        ls_request(s->model, &f, sim_wall_ms());
    }
    return used;
}

// ---- control channel ----------------------------------------------------------------------

static bool parse_onoff(const char *arg, bool *on)
{
    if (arg && strcmp(arg, "on") == 0)
        *on = true;
    else if (arg && strcmp(arg, "off") == 0)
        *on = false;
    else
        return false;
    return true;
}

static bool parse_uint(const char *arg, unsigned long max, unsigned long *out)
{
    if (!arg || !*arg)
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 0);
    if (*end || errno || v > max || arg[0] == '-')
        return false;
    *out = v;
    return true;
}

static char table_of(const char *arg)
{
    if (arg && strcmp(arg, "input") == 0)
        return 'i';
    if (arg && strcmp(arg, "holding") == 0)
        return 'h';
    return 0;
}

// Handles one control line; false on `quit`.
static bool control_line(struct sim *s, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r", &save);
    char *a1 = cmd ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *a2 = a1 ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *a3 = a2 ? strtok_r(NULL, " \t\r", &save) : NULL;
    unsigned long reg, v;
    bool on;
    if (!cmd || cmd[0] == '#')
        return true;
    if (strcmp(cmd, "quit") == 0) {
        sim_out("ok");
        return false;
    }
    if (strcmp(cmd, "stats") == 0) {
        char *json = ls_stats_json(s->model);
        // The process's own counters join the model's.
        json[strlen(json) - 1] = '\0';
        sim_out("ok %s,\"connections\":%lu,\"clients\":%d}", json, s->tcp.connections,
                sim_tcp_count(&s->tcp));
        free(json);
        return true;
    }
    if (strcmp(cmd, "get") == 0) {
        uint16_t val;
        if (!table_of(a1) || !parse_uint(a2, LS_REGS - 1, &reg) ||
            ls_get(s->model, table_of(a1), (unsigned)reg, sim_wall_ms(), &val) < 0)
            sim_out("err usage: get input|holding REG");
        else
            sim_out("ok %u", val);
        return true;
    }
    if (strcmp(cmd, "set") == 0) {
        if (!table_of(a1) || !parse_uint(a2, LS_REGS - 1, &reg) || !parse_uint(a3, 65535, &v))
            sim_out("err usage: set input|holding REG VALUE");
        else if (ls_set(s->model, table_of(a1), (unsigned)reg, (uint16_t)v) < 0)
            sim_out("err cannot set");
        else
            sim_out("ok");
        return true;
    }
    if (a2) {
        sim_out("err too many arguments");
        return true;
    }
    if (strcmp(cmd, "heartbeat") == 0) {
        ls_heartbeat(s->model, sim_wall_ms());
        sim_out("ok");
    } else if (strcmp(cmd, "broadcast") == 0) {
        bool force = a1 && strcmp(a1, "force") == 0;
        sim_out(ls_broadcast(s->model, sim_wall_ms(), force) ? "ok sent" : "ok silent");
    } else if (strcmp(cmd, "cloud") == 0 && parse_onoff(a1, &on)) {
        ls_set_cloud(s->model, on);
        sim_out("ok");
    } else if (strcmp(cmd, "combined") == 0 && parse_onoff(a1, &on)) {
        ls_set_combined(s->model, on);
        sim_out("ok");
    } else if (strcmp(cmd, "freeze") == 0 && parse_onoff(a1, &on)) {
        ls_set_frozen(s->model, on);
        sim_out("ok");
    } else if (strcmp(cmd, "protocol") == 0 && parse_uint(a1, 5, &v) &&
               (v == 1 || v == 2 || v == 5)) {
        ls_set_protocol(s->model, (uint16_t)v);
        sim_out("ok");
    } else if (strcmp(cmd, "step") == 0) {
        unsigned long n = 1;
        if (a1 && !parse_uint(a1, 100000, &n)) {
            sim_out("err usage: step [SECONDS]");
            return true;
        }
        ls_tick(s->model, (int64_t)n * 1000, true);
        sim_out("ok");
    } else if (strcmp(cmd, "clients") == 0) {
        sim_out("ok %d", sim_tcp_count(&s->tcp));
    } else if (strcmp(cmd, "fault") == 0 && a1) {
        static const char *const names[] = {"none", "badcrc", "split", "garbage", "stall"};
        if (strcmp(a1, "drop") == 0) {
            sim_tcp_drop_all(&s->tcp);
            sim_out("ok");
            return true;
        }
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strcmp(a1, names[i]) == 0) {
                s->fault = (enum fault)i;
                sim_out("ok");
                return true;
            }
        }
        sim_out("err usage: fault none|badcrc|split|garbage|stall|drop");
    } else {
        sim_out("err unknown command");
    }
    return true;
}

// ---- main ---------------------------------------------------------------------------------

static void usage(void)
{
    fprintf(stderr,
            "usage: e2m-luxpower-sim [--host A.B.C.D] [--port N] [--seed S] [--protocol 1|2|5]\n"
            "       [--combined] [--cloud on|off] [--heartbeat-ms MS] [--broadcast-ms MS]\n"
            "       [--hb-tail N] [--dongle-sn SN] [--inverter-sn SN] [--input-max R]\n"
            "       [--holding-max R] [--max-block N] [--tick-ms MS] [--static] [--tz MIN]\n"
            "       [--verbose]\n");
}

static bool serial_ok(const char *s)
{
    if (strlen(s) != LS_SERIAL)
        return false;
    for (size_t i = 0; i < LS_SERIAL; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

static int parse_args(struct sim *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},
        {"protocol", required_argument, NULL, 'P'},
        {"combined", no_argument, NULL, 'c'},
        {"cloud", required_argument, NULL, 'C'},
        {"heartbeat-ms", required_argument, NULL, 'h'},
        {"broadcast-ms", required_argument, NULL, 'b'},
        {"hb-tail", required_argument, NULL, 't'},
        {"dongle-sn", required_argument, NULL, 'd'},
        {"inverter-sn", required_argument, NULL, 'i'},
        {"input-max", required_argument, NULL, 'I'},
        {"holding-max", required_argument, NULL, 'O'},
        {"max-block", required_argument, NULL, 'm'},
        {"tick-ms", required_argument, NULL, 'k'},
        {"static", no_argument, NULL, 'S'},
        {"tz", required_argument, NULL, 'z'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    int c;
    unsigned long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true, on = false;
        switch (c) {
        case 'H': snprintf(s->host, sizeof(s->host), "%s", optarg); break;
        case 'p':
            ok = parse_uint(optarg, 65535, &v);
            s->port = (int)v;
            break;
        case 's':
            ok = parse_uint(optarg, 0xFFFFFFFFul, &v);
            s->cfg.seed = (uint32_t)v;
            break;
        case 'P':
            ok = parse_uint(optarg, 5, &v) && (v == 1 || v == 2 || v == 5);
            s->cfg.protocol = (uint16_t)v;
            break;
        case 'c': s->cfg.combined = true; break;
        case 'C':
            ok = parse_onoff(optarg, &on);
            s->cfg.cloud = on;
            break;
        case 'h':
            ok = parse_uint(optarg, 86400000, &v) && v >= 10;
            s->cfg.hb_ms = (int64_t)v;
            break;
        case 'b':
            ok = parse_uint(optarg, 86400000, &v) && v >= 10;
            s->cfg.bc_ms = (int64_t)v;
            break;
        case 't':
            ok = parse_uint(optarg, 255, &v);
            s->cfg.hb_tail = (uint8_t)v;
            break;
        case 'd':
            ok = serial_ok(optarg);
            snprintf(s->cfg.dongle_sn, sizeof(s->cfg.dongle_sn), "%s", optarg);
            break;
        case 'i':
            ok = serial_ok(optarg);
            snprintf(s->cfg.inverter_sn, sizeof(s->cfg.inverter_sn), "%s", optarg);
            break;
        case 'I':
            ok = parse_uint(optarg, LS_REGS - 1, &v);
            s->cfg.input_max = (uint16_t)v;
            break;
        case 'O':
            ok = parse_uint(optarg, LS_REGS - 1, &v);
            s->cfg.holding_max = (uint16_t)v;
            break;
        case 'm':
            ok = parse_uint(optarg, 255, &v) && v >= 1;
            s->cfg.max_block = (uint16_t)v;
            break;
        case 'k':
            ok = parse_uint(optarg, 3600000, &v) && v >= 10;
            s->tick_ms = (int64_t)v;
            break;
        case 'S': s->cfg.frozen = true; break;
        case 'z': {
            char *end;
            long m = strtol(optarg, &end, 10);
            ok = *end == '\0' && m >= -900 && m <= 900;
            s->cfg.tz_minutes = (int)m;
            break;
        }
        case 'v': s->tcp.verbose = true; break;
        default: ok = false; break;
        }
        if (!ok) {
            if (c != '?')
                fprintf(stderr, "e2m-luxpower-sim: bad option value '%s'\n", optarg ? optarg : "");
            usage();
            return -1;
        }
    }
    if (optind != argc) {
        usage();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct sim s;
    ls_config_default(&s.cfg);
    snprintf(s.host, sizeof(s.host), "127.0.0.1");
    s.port = 8000;
    s.tick_ms = 1000;
    sim_tcp_init(&s.tcp, "e2m-luxpower-sim");
    if (parse_args(&s, argc, argv) < 0)
        return 2;
    int rc = sim_tcp_open(&s.tcp, s.host, &s.port);
    if (rc < 0) {
        fprintf(stderr, "e2m-luxpower-sim: cannot listen on %s:%d: %s\n", s.host, s.port,
                strerror(-rc));
        return 1;
    }
    int sig_fd = sim_signals_open();
    if (sig_fd < 0) {
        perror("e2m-luxpower-sim: signals");
        return 1;
    }

    s.model = ls_new(&s.cfg, sim_wall_ms(), emit, on_line, &s);
    if (!s.model)
        return 1;
    int64_t now = sim_mono_ms();
    s.next_tick = now + s.tick_ms;
    s.next_hb = now + s.cfg.hb_ms;
    s.next_bc = now + s.cfg.bc_ms;
    sim_out("ready port=%d", s.port);

    bool stdin_open = true, running = true;
    char ctl[1024];
    size_t ctl_len = 0;
    while (running) {
        struct pollfd pfd[2 + SIM_TCP_POLLFDS];
        int n = 0;
        pfd[n++] = (struct pollfd){sig_fd, POLLIN, 0};
        pfd[n++] = (struct pollfd){stdin_open ? 0 : -1, POLLIN, 0};
        n += sim_tcp_pollfds(&s.tcp, pfd + n);
        now = sim_mono_ms();
        int64_t next = s.next_tick < s.next_hb ? s.next_tick : s.next_hb;
        next = next < s.next_bc ? next : s.next_bc;
        int timeout = next > now ? (int)(next - now) : 0;
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break; // SIGTERM or SIGINT
        sim_tcp_accept(&s.tcp, pfd + 2);
        if (pfd[1].revents) {
            ssize_t r = read(0, ctl + ctl_len, sizeof(ctl) - 1 - ctl_len);
            if (r <= 0) {
                stdin_open = false;
            } else {
                ctl_len += (size_t)r;
                char *nl;
                while (running && (nl = memchr(ctl, '\n', ctl_len))) {
                    *nl = '\0';
                    running = control_line(&s, ctl);
                    size_t used = (size_t)(nl - ctl) + 1;
                    memmove(ctl, ctl + used, ctl_len - used);
                    ctl_len -= used;
                }
                if (ctl_len == sizeof(ctl) - 1)
                    ctl_len = 0; // an endless line: forget it
            }
        }
        sim_tcp_read(&s.tcp, pfd + 2, take_frame, &s);
        now = sim_mono_ms();
        if (now >= s.next_tick) {
            ls_tick(s.model, s.tick_ms, false);
            s.next_tick += s.tick_ms;
            if (s.next_tick < now)
                s.next_tick = now + s.tick_ms;
        }
        if (now >= s.next_hb) {
            ls_heartbeat(s.model, sim_wall_ms());
            s.next_hb = now + s.cfg.hb_ms;
        }
        if (now >= s.next_bc) {
            ls_broadcast(s.model, sim_wall_ms(), false);
            s.next_bc = now + s.cfg.bc_ms;
        }
    }
    sim_tcp_close(&s.tcp);
    sim_signals_close();
    ls_free(s.model);
    return 0;
}
