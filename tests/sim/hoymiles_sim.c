// SPDX-License-Identifier: MIT
// e2m-hoymiles-sim: a simulated Hoymiles HMS-W built-in WiFi DTU on TCP (port 10081).
//
// One thread: a poll() loop over a signal self-pipe, stdin (the control channel), the listening
// socket and the clients. The DTU itself is the I/O-free model of hoymiles_sim_core.c; this
// file only moves bytes, reads the clocks and closes the listening socket while the model says
// the DTU is unreachable, so that connects are refused as on a real DTU at night.
#include "hoymiles_sim.h"
#include "sim_tcp.h"
#include "sim_util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 8
#define SPLIT_GAP   50 // ms between the pieces of a split reply

struct client {
    int fd; // -1 = free slot
    struct hs_conn *conn;
    uint8_t *split; // a reply being written in pieces
    size_t split_len, split_off;
    int split_left;
    int64_t split_next;
};

struct sim {
    struct hs_config cfg;
    struct hs_dtu *dtu;
    char host[64];
    int port;
    int listen_fd;
    bool verbose;
    bool split_armed;
    struct client clients[MAX_CLIENTS];
};

static int sig_fd = -1; // readable: SIGTERM or SIGINT arrived

static void log_sink(void *ctx, enum hs_log_level level, const char *msg)
{
    const struct sim *s = ctx;
    static const char *const names[] = {"warn", "info", "debug"};
    if (level == HS_LOG_WARN || s->verbose) {
        fprintf(stderr, "e2m-hoymiles-sim: %s: %s\n", names[level], msg);
    }
}

// ---- Sockets --------------------------------------------------------------------------------

static int listen_open(struct sim *s)
{
    int fd = sim_tcp_listen("e2m-hoymiles-sim", s->host, &s->port);
    if (fd < 0) {
        return fd;
    }
    s->listen_fd = fd;
    return 0;
}

static void listen_close(struct sim *s)
{
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
}

static void client_close(struct sim *s, struct client *c)
{
    if (c->fd < 0) {
        return;
    }
    close(c->fd);
    c->fd = -1;
    hs_conn_free(s->dtu, c->conn);
    c->conn = NULL;
    free(c->split);
    c->split = NULL;
    c->split_left = 0;
}

// Writes what can be written now; closes the client when the DTU wants it closed and nothing
// is left to send.
static void client_flush(struct sim *s, struct client *c, int64_t now)
{
    if (c->fd < 0) {
        return;
    }
    size_t len;
    const uint8_t *out = hs_conn_output(c->conn, &len);
    if (len && s->split_armed && !c->split) {
        // Fault "split": the reply leaves in three pieces, SPLIT_GAP ms apart.
        s->split_armed = false;
        c->split = malloc(len);
        if (!c->split) {
            abort();
        }
        memcpy(c->split, out, len);
        c->split_len = len;
        c->split_off = 0;
        c->split_left = 3;
        c->split_next = now;
        hs_conn_sent(c->conn, len);
        len = 0;
    }
    if (c->split) {
        if (now < c->split_next) {
            return;
        }
        size_t piece = c->split_left == 1 ? c->split_len - c->split_off : c->split_len / 3;
        ssize_t n = send(c->fd, c->split + c->split_off, piece, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (n < 0) {
            client_close(s, c);
            return;
        }
        c->split_off += (size_t)n;
        if ((size_t)n == piece && --c->split_left > 0) {
            c->split_next = now + SPLIT_GAP;
            return;
        }
        if (c->split_off < c->split_len) {
            return; // a short write: the rest of this piece goes at the next turn
        }
        free(c->split);
        c->split = NULL;
        c->split_left = 0;
        out = hs_conn_output(c->conn, &len);
    }
    while (len) {
        ssize_t n = send(c->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n < 0) {
            client_close(s, c);
            return;
        }
        hs_conn_sent(c->conn, (size_t)n);
        out = hs_conn_output(c->conn, &len);
    }
    if (hs_conn_closing(c->conn)) {
        client_close(s, c);
    }
}

static void client_accept(struct sim *s)
{
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0) {
        return;
    }
    sim_nonblock_cloexec(fd);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0) {
        fprintf(stderr, "e2m-hoymiles-sim: SO_TIMESTAMPNS: %s (arrival = read time)\n",
                strerror(errno));
    }
    struct client *c = NULL;
    for (int i = 0; i < MAX_CLIENTS && !c; i++) {
        c = s->clients[i].fd < 0 ? &s->clients[i] : NULL;
    }
    struct hs_conn *conn = c ? hs_conn_new(s->dtu, sim_mono_ms(), sim_wall_ms()) : NULL;
    if (!conn) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->conn = conn;
    if (s->verbose) {
        fprintf(stderr, "e2m-hoymiles-sim: info: client connected\n");
    }
}

// Reads what is there, with the time the kernel received it (SO_TIMESTAMPNS: the wall clock
// of the last segment read). The DTU's rules are about when requests arrive, not about when
// this process, perhaps descheduled on a loaded machine, got round to reading them.
static void client_read(struct sim *s, struct client *c)
{
    uint8_t buf[4096];
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n = recvmsg(c->fd, &msg, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        client_close(s, c);
        return;
    }
    int64_t mono = sim_mono_ms(), wall = sim_wall_ms(), arrived = mono;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            int64_t ago = wall - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
            // A wall clock that stepped makes `ago` meaningless: then it is now.
            if (ago > 0 && ago < 600000) {
                arrived = mono - ago;
            }
        }
    }
    hs_conn_input_at(s->dtu, c->conn, mono, wall, arrived, buf, (size_t)n);
}

// Opens or closes the listening socket to match the DTU's reachability.
static void sync_reachability(struct sim *s)
{
    int64_t now = sim_mono_ms();
    bool up = hs_dtu_reachable(s->dtu, now, sim_wall_ms());
    if (up && s->listen_fd < 0) {
        int rc = listen_open(s);
        if (rc < 0) {
            // The port is briefly unavailable; the next turn of the loop tries again.
            fprintf(stderr, "e2m-hoymiles-sim: reopening port %d: %s\n", s->port, strerror(-rc));
            return;
        }
        sim_out("state reachable");
    } else if (!up && s->listen_fd >= 0) {
        listen_close(s);
        sim_out("state unreachable");
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_flush(s, &s->clients[i], now);
    }
}

// ---- Control channel ------------------------------------------------------------------------

static bool parse_onoff(const char *arg, bool *on)
{
    if (arg && (strcmp(arg, "on") == 0 || strcmp(arg, "1") == 0)) {
        *on = true;
        return true;
    }
    if (arg && (strcmp(arg, "off") == 0 || strcmp(arg, "0") == 0)) {
        *on = false;
        return true;
    }
    return false;
}

static bool parse_num(const char *arg, double lo, double hi, double *out)
{
    char *end;
    if (!arg) {
        return false;
    }
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end || errno || !(v >= lo && v <= hi)) {
        return false;
    }
    *out = v;
    return true;
}

// Handles one control line. Returns false on `quit`.
static bool control_line(struct sim *s, char *line)
{
    static const struct {
        const char *name;
        enum hs_ctl ctl;
    } onoff[] = {
        {"night", HS_CTL_NIGHT},          {"encrypted", HS_CTL_ENCRYPTED},
        {"stale", HS_CTL_STALE},          {"close_after_reply", HS_CTL_CLOSE_AFTER_REPLY},
        {"inverter", HS_CTL_INVERTER_ON},
    };
    static const struct {
        const char *name;
        enum hs_ctl ctl;
        double lo, hi;
    } numeric[] = {
        {"power", HS_CTL_POWER, 0, 1e6},      {"warn", HS_CTL_WARN, 0, 65535},
        {"busy", HS_CTL_BUSY, 0, 1e6},        {"guard", HS_CTL_GUARD, 0, 1e10},
        {"lockup", HS_CTL_LOCKUP, 0, 1e10},   {"cmd_gap", HS_CTL_CMD_GAP, 0, 1e10},
        {"ambient", HS_CTL_AMBIENT, -59, 79},
    };
    static const struct {
        const char *name;
        enum hs_ctl ctl;
    } faults[] = {
        {"garbage", HS_CTL_FAULT_GARBAGE}, {"badcrc", HS_CTL_FAULT_BADCRC},
        {"drop", HS_CTL_FAULT_DROP},       {"stall", HS_CTL_FAULT_STALL},
        {"dup", HS_CTL_FAULT_DUP},
    };
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r", &save);
    char *arg = cmd ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *extra = arg ? strtok_r(NULL, " \t\r", &save) : NULL;
    int64_t mono = sim_mono_ms(), wall = sim_wall_ms();
    const char *err = NULL;
    double v;
    bool on;
    if (!cmd || cmd[0] == '#') {
        return true;
    }
    if (extra) {
        err = "too many arguments";
    } else if (strcmp(cmd, "quit") == 0) {
        sim_out("ok");
        return false;
    } else if (strcmp(cmd, "stats") == 0) {
        struct hs_stats st;
        hs_dtu_tick(s->dtu, mono, wall);
        hs_dtu_stats(s->dtu, &st);
        char *json = hs_stats_json(&st);
        sim_out("%s", json);
        free(json);
        return true;
    } else if (strcmp(cmd, "reboot") == 0 || strcmp(cmd, "inverter_reboot") == 0 ||
               strcmp(cmd, "lock") == 0 || strcmp(cmd, "unlock") == 0) {
        enum hs_ctl ctl = cmd[0] == 'r'   ? HS_CTL_REBOOT
                          : cmd[0] == 'i' ? HS_CTL_INVERTER_REBOOT
                          : cmd[0] == 'l' ? HS_CTL_LOCK
                                          : HS_CTL_UNLOCK;
        err = arg ? "no argument expected" : NULL;
        if (!err) {
            hs_dtu_control(s->dtu, mono, wall, ctl, 0);
        }
    } else if (strcmp(cmd, "getconfig") == 0) {
        if (arg && (strcmp(arg, "silent") == 0 || strcmp(arg, "answer") == 0)) {
            hs_dtu_control(s->dtu, mono, wall, HS_CTL_GETCONFIG_SILENT, arg[0] == 's');
        } else {
            err = "usage: getconfig silent|answer";
        }
    } else if (strcmp(cmd, "fault") == 0) {
        err = "usage: fault garbage|badcrc|drop|stall|dup|split";
        if (arg && strcmp(arg, "split") == 0) {
            s->split_armed = true;
            err = NULL;
        }
        for (size_t i = 0; arg && i < sizeof(faults) / sizeof(faults[0]); i++) {
            if (strcmp(arg, faults[i].name) == 0) {
                hs_dtu_control(s->dtu, mono, wall, faults[i].ctl, 0);
                err = NULL;
            }
        }
    } else {
        err = "unknown command";
        for (size_t i = 0; i < sizeof(onoff) / sizeof(onoff[0]); i++) {
            if (strcmp(cmd, onoff[i].name) == 0) {
                err = parse_onoff(arg, &on) ? NULL : "on|off expected";
                if (!err) {
                    hs_dtu_control(s->dtu, mono, wall, onoff[i].ctl, on);
                }
            }
        }
        for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
            if (strcmp(cmd, numeric[i].name) == 0) {
                err = parse_num(arg, numeric[i].lo, numeric[i].hi, &v) ? NULL : "bad number";
                if (!err && hs_dtu_control(s->dtu, mono, wall, numeric[i].ctl, v) < 0) {
                    err = "bad number";
                }
            }
        }
    }
    // A change of reachability is visible (socket closed or open) before the answer.
    sync_reachability(s);
    if (err) {
        sim_out("err %s", err);
    } else {
        sim_out("ok");
    }
    return true;
}

// ---- Main -----------------------------------------------------------------------------------

static void usage(FILE *f)
{
    fprintf(f, "usage: e2m-hoymiles-sim [--host A.B.C.D] [--port N] [--model hms-400w-1t|"
               "hms-800w-2t|hms-2000w-4t]\n"
               "         [--seed S] [--guard MS] [--lockup MS] [--data-interval MS]\n"
               "         [--cloud 5min|quarter|off|PERIOD_MS,START_MS,LENGTH_MS] [--encrypted]\n"
               "         [--close-after-reply] [--stale] [--getconfig-silent] [--cmd-gap MS]\n"
               "         [--power W | --sun SUNRISE_H,SUNSET_H,PEAK_W] [--tz MINUTES] [--night]\n"
               "         [--reboot-ms MS] [--dtu-sn SN] [--inverter-sn HEX] [--ambient C]\n"
               "         [--verbose]\n");
}

static bool parse_ms(const char *text, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > 10LL * 365 * 86400000) {
        return false;
    }
    *out = v;
    return true;
}

static int parse_args(struct sim *s, int argc, char **argv)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_MODEL,
        O_SEED,
        O_GUARD,
        O_LOCKUP,
        O_DATA,
        O_CLOUD,
        O_ENC,
        O_CAR,
        O_STALE,
        O_GCS,
        O_GAP,
        O_POWER,
        O_SUN,
        O_TZ,
        O_NIGHT,
        O_REBOOT,
        O_DTUSN,
        O_INVSN,
        O_AMBIENT,
        O_VERBOSE,
        O_HELP
    };
    static const struct option opts[] = {{"host", required_argument, NULL, O_HOST},
                                         {"port", required_argument, NULL, O_PORT},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"guard", required_argument, NULL, O_GUARD},
                                         {"lockup", required_argument, NULL, O_LOCKUP},
                                         {"data-interval", required_argument, NULL, O_DATA},
                                         {"cloud", required_argument, NULL, O_CLOUD},
                                         {"encrypted", no_argument, NULL, O_ENC},
                                         {"close-after-reply", no_argument, NULL, O_CAR},
                                         {"stale", no_argument, NULL, O_STALE},
                                         {"getconfig-silent", no_argument, NULL, O_GCS},
                                         {"cmd-gap", required_argument, NULL, O_GAP},
                                         {"power", required_argument, NULL, O_POWER},
                                         {"sun", required_argument, NULL, O_SUN},
                                         {"tz", required_argument, NULL, O_TZ},
                                         {"night", no_argument, NULL, O_NIGHT},
                                         {"reboot-ms", required_argument, NULL, O_REBOOT},
                                         {"dtu-sn", required_argument, NULL, O_DTUSN},
                                         {"inverter-sn", required_argument, NULL, O_INVSN},
                                         {"ambient", required_argument, NULL, O_AMBIENT},
                                         {"verbose", no_argument, NULL, O_VERBOSE},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    struct hs_config *cfg = &s->cfg;
    int64_t v;
    double a, b, c;
    char tail, *end;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_HOST: snprintf(s->host, sizeof(s->host), "%s", optarg); break;
        case O_PORT:
            if (!parse_ms(optarg, 0, &v) || v > 65535) {
                return -1;
            }
            s->port = (int)v;
            break;
        case O_MODEL:
            if (hs_config_set_model(cfg, optarg) < 0) {
                return -1;
            }
            break;
        case O_SEED:
            errno = 0;
            cfg->seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end || errno) {
                return -1;
            }
            break;
        case O_GUARD:
        case O_LOCKUP:
        case O_GAP:
        case O_REBOOT:
        case O_DATA:
            if (!parse_ms(optarg, o == O_DATA ? 1 : 0, &v)) {
                return -1;
            }
            *(o == O_GUARD    ? &cfg->guard_ms
              : o == O_LOCKUP ? &cfg->lockup_ms
              : o == O_GAP    ? &cfg->cmd_min_gap_ms
              : o == O_REBOOT ? &cfg->reboot_ms
                              : &cfg->data_interval_ms) = v;
            break;
        case O_CLOUD:
            if (hs_config_set_cloud(cfg, optarg) < 0) {
                return -1;
            }
            break;
        case O_ENC: cfg->encrypted = true; break;
        case O_CAR: cfg->close_after_reply = true; break;
        case O_STALE: cfg->stale = true; break;
        case O_GCS: cfg->getconfig_silent = true; break;
        case O_NIGHT: cfg->night = true; break;
        case O_VERBOSE: s->verbose = true; break;
        case O_POWER:
            if (!parse_num(optarg, 0, 1e6, &a)) {
                return -1;
            }
            cfg->sun = false;
            cfg->power_w = a;
            break;
        case O_SUN:
            if (sscanf(optarg, "%lf,%lf,%lf%c", &a, &b, &c, &tail) != 3 || a < 0 || b > 24 ||
                b <= a || c < 0) {
                return -1;
            }
            cfg->sun = true;
            cfg->sunrise_h = a;
            cfg->sunset_h = b;
            cfg->peak_w = c;
            break;
        case O_TZ:
            if (!parse_num(optarg, -24 * 60, 24 * 60, &a)) {
                return -1;
            }
            cfg->tz_offset_min = (int)a;
            break;
        case O_DTUSN:
            if (strlen(optarg) == 0 || strlen(optarg) > 12) {
                return -1;
            }
            snprintf(cfg->dtu_sn, sizeof(cfg->dtu_sn), "%s", optarg);
            break;
        case O_INVSN:
            errno = 0;
            cfg->inverter_sn = strtoull(optarg, &end, 16);
            if (end == optarg || *end || errno || cfg->inverter_sn == 0) {
                return -1;
            }
            break;
        case O_AMBIENT:
            if (!parse_num(optarg, -40, 50, &a)) {
                return -1;
            }
            cfg->ambient_c = a;
            break;
        case O_HELP: usage(stdout); exit(0);
        default: return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int run(struct sim *s)
{
    char ctl[4096];
    size_t ctl_len = 0;
    bool stdin_open = true;
    for (;;) {
        sync_reachability(s);
        int64_t now = sim_mono_ms();
        int64_t wake = hs_dtu_next_event(s->dtu, now, sim_wall_ms());
        struct pollfd p[3 + MAX_CLIENTS];
        int np = 0, idx_stdin = -1, idx_listen = -1, idx_client[MAX_CLIENTS];
        p[np++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        if (stdin_open) {
            idx_stdin = np;
            p[np++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        }
        if (s->listen_fd >= 0) {
            idx_listen = np;
            p[np++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &s->clients[i];
            idx_client[i] = -1;
            if (c->fd < 0) {
                continue;
            }
            size_t pending;
            hs_conn_output(c->conn, &pending);
            if (c->split) {
                wake = c->split_next < wake ? c->split_next : wake;
            }
            idx_client[i] = np;
            p[np++] = (struct pollfd){
                .fd = c->fd, .events = (short)(POLLIN | (pending && !c->split ? POLLOUT : 0))};
        }
        // Wake at least once a second: the wall clock may jump, and windows are on it.
        int64_t timeout = wake - now;
        timeout = timeout < 0 ? 0 : timeout > 1000 ? 1000 : timeout;
        if (poll(p, (nfds_t)np, (int)timeout) < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        if (p[0].revents & POLLIN) {
            return 0; // SIGTERM or SIGINT
        }
        if (idx_stdin >= 0 && (p[idx_stdin].revents & (POLLIN | POLLHUP))) {
            ssize_t r = read(STDIN_FILENO, ctl + ctl_len, sizeof(ctl) - 1 - ctl_len);
            if (r <= 0) {
                stdin_open = false; // EOF only ends the control channel
            } else {
                ctl_len += (size_t)r;
                char *nl;
                while ((nl = memchr(ctl, '\n', ctl_len))) {
                    *nl = '\0';
                    if (!control_line(s, ctl)) {
                        return 0;
                    }
                    size_t used = (size_t)(nl - ctl) + 1;
                    memmove(ctl, ctl + used, ctl_len - used);
                    ctl_len -= used;
                }
                if (ctl_len == sizeof(ctl) - 1) {
                    ctl_len = 0; // an absurdly long control line is dropped
                }
            }
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &s->clients[i];
            if (idx_client[i] < 0 || c->fd != p[idx_client[i]].fd) {
                continue;
            }
            if (p[idx_client[i]].revents & (POLLIN | POLLHUP | POLLERR)) {
                client_read(s, c);
            }
        }
        if (idx_listen >= 0 && s->listen_fd >= 0 && (p[idx_listen].revents & POLLIN)) {
            client_accept(s);
        }
    }
}

int main(int argc, char **argv)
{
    static struct sim sim;
    struct sim *s = &sim;
    hs_config_init(&s->cfg);
    hs_config_set_cloud(&s->cfg, "5min");
    s->port = 10081;
    s->listen_fd = -1;
    snprintf(s->host, sizeof(s->host), "127.0.0.1");
    for (int i = 0; i < MAX_CLIENTS; i++) {
        s->clients[i].fd = -1;
    }
    // "Local" defaults to this machine's current UTC offset.
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm)) {
        s->cfg.tz_offset_min = (int)(tm.tm_gmtoff / 60);
    }
    if (parse_args(s, argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    s->cfg.log = log_sink;
    s->cfg.log_ctx = s;

    sig_fd = sim_signals_open();
    if (sig_fd < 0) {
        perror("signals");
        return 1;
    }

    // Bind first even when the DTU starts unreachable: the port must be known for "ready".
    int rc = listen_open(s);
    if (rc < 0) {
        fprintf(stderr, "e2m-hoymiles-sim: cannot listen on %s:%d: %s\n", s->host, s->port,
                strerror(-rc));
        sim_signals_close();
        return 1;
    }
    s->dtu = hs_dtu_new(&s->cfg, sim_mono_ms(), sim_wall_ms());
    if (!hs_dtu_reachable(s->dtu, sim_mono_ms(), sim_wall_ms())) {
        listen_close(s);
    }
    sim_out("ready port=%d", s->port);

    int status = run(s);

    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_close(s, &s->clients[i]);
    }
    listen_close(s);
    hs_dtu_free(s->dtu);
    sim_signals_close();
    return status;
}
