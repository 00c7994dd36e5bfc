// SPDX-License-Identifier: MIT
// e2m-smartmeter-sim: a simulated voelkerb PowerMeter or SmartMeter (TCP line protocol + MQTT).
//
// One thread serves everything: a poll() loop over stdin (the control channel), a self-pipe for
// signals, the listening socket and up to three clients, like the firmware's three client
// slots. The device itself lives in smartmeter_sim_proto.c, the broker connection in
// smartmeter_sim_mqtt.c.
#include "smartmeter_sim.h"
#include "sim_tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sig_fd = -1; // readable: SIGTERM or SIGINT arrived

// ---- Clients ----------------------------------------------------------------------------

static void client_close(struct sm_sim *s, struct sm_client *c, bool log_it)
{
    if (c->fd < 0) {
        return;
    }
    close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    c->in_len = 0;
    c->in_skip = false;
    // The firmware notices a vanished client on its next connection check and logs it.
    if (log_it) {
        sm_log(s, SM_LOG_INFO, "Client disconnected %s port %u", c->peer_ip, c->peer_port);
    }
}

static void client_flush(struct sm_sim *s, struct sm_client *c)
{
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            client_close(s, c, true);
            return;
        }
        done += (size_t)n;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
}

static void client_write(struct sm_sim *s, struct sm_client *c, const char *data, size_t n)
{
    if (c->out_len + n > SM_OUT_MAX) {
        // A client that never reads would make the real meter block; we give up on it.
        client_close(s, c, true);
        return;
    }
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + n) {
            cap *= 2;
        }
        char *p = realloc(c->out, cap);
        if (!p) {
            abort();
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    client_flush(s, c);
}

void sm_client_send(struct sm_sim *s, struct sm_client *c, const char *payload)
{
    if (c->fd < 0 || s->fault == SM_FAULT_STALL || s->fault == SM_FAULT_DROP) {
        return;
    }
    if (s->fault == SM_FAULT_GARBAGE) {
        char junk[96];
        size_t n = 8 + (size_t)(sm_random(s) * 80);
        for (size_t i = 0; i < n; i++) {
            unsigned char b;
            do {
                b = (unsigned char)(sm_random(s) * 256);
            } while (b == '\n' || b == '\r');
            junk[i] = (char)b;
        }
        junk[n++] = '\r';
        junk[n++] = '\n';
        client_write(s, c, junk, n);
        return;
    }
    size_t len = strlen(payload);
    char *line = malloc(len + 8);
    if (!line) {
        abort();
    }
    memcpy(line, "Info:", 5);
    memcpy(line + 5, payload, len);
    memcpy(line + 5 + len, "\r\n", 2);
    client_write(s, c, line, len + 7);
    free(line);
}

void sm_log(struct sm_sim *s, int level, const char *fmt, ...)
{
    static const char *const tags[] = {"[A]", "[D]", "[I]", "[W]", "[E]"};
    char text[1024], when[32], line[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    sm_time_short(when, sizeof(when));
    snprintf(line, sizeof(line), "%s%s: %s", tags[level], when, text);
    for (int i = 0; i < SM_MAX_CLIENTS; i++) {
        if (s->clients[i].fd >= 0 && s->clients[i].level <= level) {
            sm_client_send(s, &s->clients[i], line);
        }
    }
    if (level >= SM_LOG_WARNING) {
        // The log file the firmware keeps in flash takes warnings and errors; quotes would
        // break the getLog document, as they do on the meter, so they are replaced.
        char *row = s->logfile[s->log_next];
        size_t n = strnlen(line, sizeof(s->logfile[0]) - 1);
        memcpy(row, line, n);
        row[n] = '\0';
        for (char *p = row; *p; p++) {
            *p = *p == '"' ? '\'' : *p;
        }
        s->log_next = (s->log_next + 1) % SM_LOG_ROWS;
        s->log_rows += s->log_rows < SM_LOG_ROWS;
    }
}

int sm_client_count(const struct sm_sim *s)
{
    int n = 0;
    for (int i = 0; i < SM_MAX_CLIENTS; i++) {
        n += s->clients[i].fd >= 0;
    }
    return n;
}

static void client_accept(struct sm_sim *s)
{
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    int fd = accept(s->listen_fd, (struct sockaddr *)&addr, &alen);
    if (fd < 0) {
        return;
    }
    sim_nonblock_cloexec(fd);
    if (s->fault == SM_FAULT_DROP) {
        close(fd);
        return;
    }
    char ip[48];
    inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
    unsigned port = ntohs(addr.sin_port);
    // Logged before the client gets its slot, so only the others see it.
    sm_log(s, SM_LOG_INFO, "Client with IP %s connected on port %u", ip, port);
    struct sm_client *c = NULL;
    for (int i = 0; i < SM_MAX_CLIENTS && !c; i++) {
        c = s->clients[i].fd < 0 ? &s->clients[i] : NULL;
    }
    if (!c) {
        sm_log(s, SM_LOG_INFO, "To much clients, could not add client");
        close(fd);
        return;
    }
    c->fd = fd;
    c->level = SM_LOG_INFO;
    snprintf(c->peer_ip, sizeof(c->peer_ip), "%s", ip);
    c->peer_port = port;
    json_t *info = sm_info(s);
    char *text = sm_dump(info);
    sm_client_send(s, c, text);
    free(text);
    json_decref(info);
}

// One line from a client, without its "\n" (and without a trailing "\r").
static void client_line(struct sm_sim *s, struct sm_client *c, char *line)
{
    size_t n = strlen(line);
    if (n && line[n - 1] == '\r') {
        line[n - 1] = '\0';
    }
    if (line[0] == '!') {
        sim_out("cmd !");
        return;
    }
    if (s->fault == SM_FAULT_STALL) {
        sim_out("cmd (stalled)");
        return;
    }
    if (line[0] == '?') {
        sim_out("cmd ?");
        sm_client_send(s, c, "Setup done");
        return;
    }
    char *raw = NULL;
    json_t *rep = sm_handle_command(s, (int)(c - s->clients), line, &raw);
    if (raw) {
        sm_client_send(s, c, raw);
        free(raw);
    }
    if (rep && json_object_size(rep) > 0) {
        char *text = sm_dump(rep);
        sm_client_send(s, c, text);
        free(text);
    }
    json_decref(rep);
}

static void client_read(struct sm_sim *s, struct sm_client *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        client_close(s, c, true);
        return;
    }
    c->in_len += (size_t)n;
    c->in[c->in_len] = '\0';
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->in + start, '\n', c->in_len - start);
        if (!nl) {
            break;
        }
        *nl = '\0';
        bool skip = c->in_skip;
        c->in_skip = false;
        size_t next = (size_t)(nl - c->in) + 1;
        if (!skip) {
            client_line(s, c, c->in + start);
        }
        start = next;
        if (c->fd < 0 || s->reboot_pending) {
            return; // the meter restarts at once: whatever else was sent is lost
        }
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    if (c->in_len == sizeof(c->in) - 1) {
        // A line longer than anything the meter can hold: handle the start, drop the rest.
        c->in[c->in_len] = '\0';
        if (!c->in_skip) {
            client_line(s, c, c->in);
        }
        c->in_len = 0;
        c->in_skip = true;
    }
}

// ---- Listening socket, reboot, relay ----------------------------------------------------

static int listen_open(struct sm_sim *s)
{
    int fd = sim_tcp_listen("e2m-smartmeter-sim", s->host, &s->port);
    if (fd < 0) {
        return fd;
    }
    s->listen_fd = fd;
    return 0;
}

void sm_clients_drop(struct sm_sim *s)
{
    for (int i = 0; i < SM_MAX_CLIENTS; i++) {
        client_close(s, &s->clients[i], false);
    }
}

void sm_reboot(struct sm_sim *s)
{
    s->reboot_pending = true;
}

static void reboot_begin(struct sm_sim *s)
{
    s->reboot_pending = false;
    s->rebooting = true;
    s->reboot_until_ms = sim_mono_ms() + 2 * (int64_t)s->tick_ms;
    sm_clients_drop(s);
    // Closing the listening socket makes new connections fail with "refused" meanwhile.
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    sm_mqtt_disconnect(s);
    sim_out("reboot");
}

static void reboot_end(struct sm_sim *s)
{
    int rc = listen_open(s);
    if (rc < 0) {
        // The port is briefly unavailable; try again a little later.
        fprintf(stderr, "e2m-smartmeter-sim: reopening port %d: %s\n", s->port, strerror(-rc));
        s->reboot_until_ms = sim_mono_ms() + 100;
        return;
    }
    s->rebooting = false;
    sim_out("boot");
}

void sm_relay_set(struct sm_sim *s, int on)
{
    on = on != 0;
    if (s->type != SM_POWERMETER || s->relay == on) {
        return;
    }
    s->relay = on;
    sim_out("relay %d", on);
    sm_mqtt_publish(s, "state/switch", on ? "true" : "false", true);
    sm_log(s, SM_LOG_INFO, "Switched %s", on ? "on" : "off");
}

// ---- Main -------------------------------------------------------------------------------

static void usage(FILE *f)
{
    fprintf(
        f, "usage: e2m-smartmeter-sim --type powermeter|smartmeter [--firmware 1|2] [--name NAME]\n"
           "         [--port N] [--host A.B.C.D] [--mqtt HOST:PORT] [--interval S] [--seed S]\n"
           "         [--tick MS] [--static] [--relay 0|1] [--no-line-values]\n");
}

static bool parse_long(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static int parse_args(struct sm_sim *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"type", required_argument, NULL, 't'},     {"firmware", required_argument, NULL, 'f'},
        {"name", required_argument, NULL, 'n'},     {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},     {"mqtt", required_argument, NULL, 'm'},
        {"interval", required_argument, NULL, 'i'}, {"seed", required_argument, NULL, 's'},
        {"tick", required_argument, NULL, 'k'},     {"static", no_argument, NULL, 'S'},
        {"relay", required_argument, NULL, 'r'},    {"no-line-values", no_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    bool have_type = false, have_name = false;
    char *end;
    long v;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            have_type = true;
            if (strcmp(optarg, "powermeter") == 0) {
                s->type = SM_POWERMETER;
            } else if (strcmp(optarg, "smartmeter") == 0) {
                s->type = SM_SMARTMETER;
            } else {
                return -1;
            }
            break;
        case 'f':
            if (!parse_long(optarg, 1, 2, &v)) {
                return -1;
            }
            s->firmware = (int)v;
            break;
        case 'n':
            have_name = true;
            if (strlen(optarg) == 0 || strlen(optarg) > 24 || strpbrk(optarg, "/+# ")) {
                fprintf(stderr, "e2m-smartmeter-sim: --name must be 1-24 characters, no / + #\n");
                return -1;
            }
            snprintf(s->name, sizeof(s->name), "%s", optarg);
            break;
        case 'p':
            if (!parse_long(optarg, 0, 65535, &v)) {
                return -1;
            }
            s->port = (int)v;
            break;
        case 'H': snprintf(s->host, sizeof(s->host), "%s", optarg); break;
        case 'm': {
            char *colon = strrchr(optarg, ':');
            if (!colon || colon == optarg) {
                return -1;
            }
            if (!parse_long(colon + 1, 1, 65535, &v)) {
                return -1;
            }
            s->mqtt_port = (int)v;
            free(s->mqtt_host);
            s->mqtt_host = strndup(optarg, (size_t)(colon - optarg));
            break;
        }
        case 'i':
            s->publish_interval = strtod(optarg, &end);
            if (end == optarg || *end) {
                return -1;
            }
            break;
        case 's':
            s->rng = strtoull(optarg, &end, 10);
            if (end == optarg || *end) {
                return -1;
            }
            break;
        case 'k':
            if (!parse_long(optarg, 10, 60000, &v)) {
                return -1;
            }
            s->tick_ms = (int)v;
            break;
        case 'S': s->frozen = true; break;
        case 'r':
            if (!parse_long(optarg, 0, 1, &v)) {
                return -1;
            }
            s->relay = (int)v;
            break;
        case 'L': s->line_values = false; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (!have_type || optind != argc || (s->type == SM_SMARTMETER && s->firmware != 2) ||
        (s->publish_interval != -1 && (s->publish_interval < 0.01 || s->publish_interval > 3600))) {
        return -1;
    }
    if (!have_name) {
        snprintf(s->name, sizeof(s->name), "%s",
                 s->type == SM_POWERMETER ? "powermeterX" : "smartmeterX");
    }
    return 0;
}

static int run(struct sm_sim *s)
{
    char ctl[4096];
    size_t ctl_len = 0;
    bool stdin_open = true;
    int64_t next_tick = sim_mono_ms() + s->tick_ms;
    for (;;) {
        int64_t now = sim_mono_ms();
        int64_t wake = next_tick;
        if (s->rebooting && s->reboot_until_ms < wake) {
            wake = s->reboot_until_ms;
        }
        int mq = sm_mqtt_timeout(s);
        if (mq >= 0 && now + mq < wake) {
            wake = now + mq;
        }
        struct pollfd p[3 + SM_MAX_CLIENTS];
        int np = 0, idx_stdin = -1, idx_listen = -1, idx_client[SM_MAX_CLIENTS];
        p[np++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        if (stdin_open) {
            idx_stdin = np;
            p[np++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        }
        if (s->listen_fd >= 0) {
            idx_listen = np;
            p[np++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        }
        for (int i = 0; i < SM_MAX_CLIENTS; i++) {
            idx_client[i] = -1;
            if (s->clients[i].fd >= 0) {
                idx_client[i] = np;
                p[np++] = (struct pollfd){
                    .fd = s->clients[i].fd,
                    .events = (short)(POLLIN | (s->clients[i].out_len ? POLLOUT : 0))};
            }
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR) {
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
                    if (!sm_control_line(s, ctl)) {
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
        for (int i = 0; i < SM_MAX_CLIENTS && !s->reboot_pending; i++) {
            struct sm_client *c = &s->clients[i];
            if (idx_client[i] < 0 || c->fd != p[idx_client[i]].fd) {
                continue;
            }
            if (p[idx_client[i]].revents & POLLOUT) {
                client_flush(s, c);
            }
            if (c->fd >= 0 && (p[idx_client[i]].revents & (POLLIN | POLLHUP | POLLERR))) {
                client_read(s, c);
            }
        }
        if (idx_listen >= 0 && s->listen_fd >= 0 && !s->reboot_pending &&
            (p[idx_listen].revents & POLLIN)) {
            client_accept(s);
        }
        sm_mqtt_poll(s);
        if (s->reboot_pending) {
            reboot_begin(s);
        }
        now = sim_mono_ms();
        if (s->rebooting && now >= s->reboot_until_ms) {
            reboot_end(s);
        }
        if (now >= next_tick) {
            next_tick += s->tick_ms;
            if (next_tick <= now) {
                next_tick = now + s->tick_ms; // we were held up; do not replay missed ticks
            }
            if (!s->frozen) {
                sm_meter_step(s, s->tick_ms / 1000.0);
            }
            // The liveness line: an empty INFO log line, or the status document on version 1.
            if (!s->rebooting && s->fault != SM_FAULT_SILENT) {
                if (s->type == SM_POWERMETER && s->firmware == 1) {
                    json_t *doc = sm_sample_doc(s);
                    char *text = sm_dump(doc);
                    sm_log(s, SM_LOG_INFO, "%s", text);
                    free(text);
                    json_decref(doc);
                } else {
                    sm_log(s, SM_LOG_INFO, "%s", "");
                }
            }
        }
    }
}

int main(int argc, char **argv)
{
    static struct sm_sim sim;
    struct sm_sim *s = &sim;
    s->type = SM_POWERMETER;
    s->firmware = 2;
    s->tick_ms = 1000;
    s->publish_interval = 5.0;
    s->rng = 1;
    s->relay = 1;
    s->reset_hour = -1;
    s->line_values = true;
    s->listen_fd = -1;
    snprintf(s->host, sizeof(s->host), "127.0.0.1");
    for (int i = 0; i < SM_MAX_CLIENTS; i++) {
        s->clients[i].fd = -1;
    }
    if (parse_args(s, argc, argv) < 0) {
        usage(stderr);
        free(s->mqtt_host);
        return 2;
    }
    sm_meter_init(s, s->rng);
    // The energy counter was last reset a month ago, at midnight.
    s->energy_reset_ts = time(NULL) - 30 * 86400;
    s->energy_reset_ts -= s->energy_reset_ts % 86400;

    sig_fd = sim_signals_open();
    if (sig_fd < 0) {
        perror("signals");
        return 1;
    }

    int rc = listen_open(s);
    if (rc < 0) {
        fprintf(stderr, "e2m-smartmeter-sim: cannot listen on %s:%d: %s\n", s->host, s->port,
                strerror(-rc));
        free(s->mqtt_host);
        return 1;
    }
    bool mqtt_up = false;
    if (s->mqtt_host) {
        rc = sm_mqtt_start(s);
        if (rc < 0 && rc != -ENOTCONN) {
            fprintf(stderr, "e2m-smartmeter-sim: MQTT setup failed\n");
            close(s->listen_fd);
            free(s->mqtt_host);
            return 1;
        }
        mqtt_up = rc == 0;
    }
    sim_out("ready tcp %d%s", s->port, mqtt_up ? " mqtt" : "");
    s->ready = true;

    int status = run(s);

    sm_clients_drop(s);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    sm_mqtt_stop(s);
    free(s->mqtt_host);
    sim_signals_close();
    return status;
}
