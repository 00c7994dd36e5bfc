// SPDX-License-Identifier: MIT
// A simulated week of a Hoymiles HMS-800W-2T: the daemon's device runtime with the real
// hoymiles driver and codec, talking TCP to the simulated DTU (tests/sim, the simulator's own
// reading of the protocol) inside one event loop on simulated time.
//
// The DTU is strict like the real one: two requests closer than 30 s lock it up for half an
// hour; requests inside its cloud-upload windows are lost uploads; it encrypts, changes its
// key at every boot (every sunrise, and a reboot each afternoon), sleeps at night, and
// answers err_code 7 now and then. Home Assistant sends random bursts of limit commands all
// day. The audit then asks the simulator, not the daemon: no guard violation, no lock-up, no
// request in a cloud window, persistent writes at least a minute apart, the last commanded
// limits in effect at the end of every day; and the published lifetime energy never fell, the
// device slept every night and woke every morning, and nothing was logged at warning level
// while it slept.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/device.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/model.h"
#include "sim/hoymiles_sim.h"

#define S    1000LL
#define MIN  (60 * S)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

// 2026-06-15 00:00:00 UTC, a Monday in June.
static const int64_t START_WALL = 1781481600000LL;
static const int64_t START_MONO = 5000000;

enum { MAX_CONNS = 8 };

// ---- the simulated DTU on the loop ----------------------------------------------------------

struct sim_conn {
    int fd;
    struct hs_conn *c;
    struct sim_net *net;
};

struct sim_net {
    struct loop *loop;
    struct hs_dtu *dtu;
    int lfd, port;
    struct sim_conn conns[MAX_CONNS];
    struct timer tick;
    bool was_reachable;
    int sleeps, wakes; // reachable -> unreachable and back, as the DTU lived it
};

static int64_t mono(const struct sim_net *n)
{
    return loop_now(n->loop);
}

static int64_t wall(const struct sim_net *n)
{
    return loop_wall(n->loop);
}

static void conn_close(struct sim_conn *k)
{
    loop_unwatch(k->net->loop, k->fd);
    close(k->fd);
    hs_conn_free(k->net->dtu, k->c);
    k->fd = -1;
    k->c = NULL;
}

// Sends what the DTU has to say on this connection; closes it when the DTU wants that.
static void conn_flush(struct sim_conn *k)
{
    size_t len;
    const uint8_t *out = hs_conn_output(k->c, &len);
    while (len) {
        ssize_t w = send(k->fd, out, len, MSG_NOSIGNAL);
        if (w <= 0)
            break; // the client went away; its close will follow
        hs_conn_sent(k->c, (size_t)w);
        out = hs_conn_output(k->c, &len);
    }
    if (hs_conn_closing(k->c) && !len)
        conn_close(k);
}

static void sim_sync(struct sim_net *n);

static void on_conn(void *arg, uint32_t events)
{
    struct sim_conn *k = arg;
    (void)events;
    uint8_t buf[4096];
    for (;;) {
        ssize_t r = recv(k->fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(k);
            break;
        }
        if (r < 0)
            break;
        hs_conn_input(k->net->dtu, k->c, mono(k->net), wall(k->net), buf, (size_t)r);
    }
    sim_sync(k->net);
}

static void on_accept(void *arg, uint32_t events)
{
    struct sim_net *n = arg;
    (void)events;
    int fd = accept(n->lfd, NULL, NULL);
    if (fd < 0)
        return;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct hs_conn *c = hs_conn_new(n->dtu, mono(n), wall(n));
    struct sim_conn *k = NULL;
    for (int i = 0; i < MAX_CONNS && !k; i++)
        if (n->conns[i].fd < 0)
            k = &n->conns[i];
    if (!c || !k) {
        if (c)
            hs_conn_free(n->dtu, c);
        close(fd);
        return;
    }
    *k = (struct sim_conn){fd, c, n};
    ck_assert_int_eq(loop_watch(n->loop, fd, EPOLLIN, on_conn, k), 0);
    sim_sync(n); // a replaced connection is closed now
}

// The DTU listens only while it has power: connects are refused at night and during a reboot.
static void set_listening(struct sim_net *n, bool on)
{
    if (on && n->lfd < 0) {
        n->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(n->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t)n->port)};
        ck_assert_int_eq(bind(n->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
        socklen_t len = sizeof(a);
        getsockname(n->lfd, (struct sockaddr *)&a, &len);
        n->port = ntohs(a.sin_port);
        ck_assert_int_eq(listen(n->lfd, 8), 0);
        ck_assert_int_eq(loop_watch(n->loop, n->lfd, EPOLLIN, on_accept, n), 0);
    } else if (!on && n->lfd >= 0) {
        loop_unwatch(n->loop, n->lfd);
        close(n->lfd);
        n->lfd = -1;
    }
}

static void on_tick(void *arg)
{
    sim_sync(arg);
}

static void sim_sync(struct sim_net *n)
{
    bool reachable = hs_dtu_reachable(n->dtu, mono(n), wall(n));
    if (reachable != n->was_reachable) {
        n->sleeps += !reachable;
        n->wakes += reachable;
        n->was_reachable = reachable;
    }
    set_listening(n, reachable);
    for (int i = 0; i < MAX_CONNS; i++)
        if (n->conns[i].fd >= 0)
            conn_flush(&n->conns[i]);
    int64_t next = hs_dtu_next_event(n->dtu, mono(n), wall(n));
    if (next != INT64_MAX)
        loop_timer_set(n->loop, &n->tick, next > mono(n) ? next : mono(n) + 1, on_tick, n);
}

// ---- the week -------------------------------------------------------------------------------

struct rng {
    uint64_t s;
};

static double rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (double)((r->s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

struct week {
    struct sim_net net;
    struct loop *loop;
    struct config *cfg;
    struct device *dev;
    const struct entity *pct, *watts;
    struct rng rng;
    struct timer burst, day_end, stop;
    int day;
    double last_pct, last_watts;
    int commands, bursts;
    double energy_max; // highest lifetime energy published
    int energy_drops;
    int states, sleeping_states, online_after_sleep;
    enum sched_state last_state;
    int checks_ok;
    int64_t last_command_mono;
};

static struct week *W;
static int night_warnings, warnings;
static char last_warning[256];

static void sink(enum log_level level, const char *line, void *arg)
{
    (void)arg;
    if (level > LOG_LVL_WARN)
        return;
    warnings++;
    if (getenv("E2M_WEEK_VERBOSE"))
        fprintf(stderr, "%s\n", line);
    snprintf(last_warning, sizeof(last_warning), "%s", line);
    struct hs_stats st;
    if (W) {
        hs_dtu_stats(W->net.dtu, &st);
        if (st.night)
            night_warnings++;
    }
}

static double state_number(struct device *d, const char *key)
{
    char *s = device_state_json(d);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    json_t *v = json_object_get(o, key);
    double r = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return r;
}

static void on_event(void *arg, struct device *d, enum device_event ev)
{
    struct week *w = arg;
    if (ev == DEVICE_AVAILABILITY) {
        enum sched_state st = device_sched_state(d);
        if (st == SCHED_STATE_SLEEPING)
            w->sleeping_states++;
        if (st == SCHED_STATE_ONLINE && w->last_state == SCHED_STATE_SLEEPING)
            w->online_after_sleep++;
        w->last_state = st;
        return;
    }
    w->states++;
    double e = state_number(d, "energy_total");
    if (isnan(e))
        return;
    if (e < w->energy_max)
        w->energy_drops++;
    else
        w->energy_max = e;
}

static void command(struct week *w, const struct entity *e, double value)
{
    struct command_value cv = {.value = value};
    char why[160];
    int rc = device_command(w->dev, e, &cv, why, sizeof(why));
    ck_assert_msg(rc == 0, "command refused: %s", why);
    if (e == w->pct)
        w->last_pct = value;
    else
        w->last_watts = value;
    w->commands++;
    w->last_command_mono = loop_now(w->loop);
}

static int64_t day_start(const struct week *w)
{
    return START_MONO + (int64_t)w->day * DAY;
}

// Home Assistant automations: bursts of limit commands between 07:00 and 18:30.
static void on_burst(void *arg)
{
    struct week *w = arg;
    int64_t now = loop_now(w->loop);
    int64_t into_day = now - day_start(w);
    if (into_day >= 7 * HOUR && into_day < 18 * HOUR + 30 * MIN) {
        int k = 1 + (int)(rnd(&w->rng) * 8);
        for (int i = 0; i < k; i++) {
            if (rnd(&w->rng) < 0.5)
                command(w, w->pct, 2 + (int)(rnd(&w->rng) * 99));
            else
                command(w, w->watts, 10 + (int)(rnd(&w->rng) * 991));
        }
        w->bursts++;
    }
    // The next burst: mostly minutes apart, sometimes seconds.
    double gap = rnd(&w->rng) < 0.3 ? rnd(&w->rng) * 20 * S : rnd(&w->rng) * 30 * MIN;
    loop_timer_set(w->loop, &w->burst, now + (int64_t)gap + 1, on_burst, w);
}

// Each day ends with a persistent limit, then a runtime limit, each given time to go out;
// at 20:00 (before sunset at 21:00) the DTU must hold both.
static void on_day_end(void *arg);

static void final_watts(void *arg)
{
    struct week *w = arg;
    command(w, w->watts, 100 + 37 * w->day);
    loop_timer_set(w->loop, &w->day_end, day_start(w) + 20 * HOUR, on_day_end, w);
}

static void on_day_end(void *arg)
{
    struct week *w = arg;
    int64_t into_day = loop_now(w->loop) - day_start(w);
    if (into_day < 20 * HOUR) { // 18:45: the day's last persistent limit
        command(w, w->pct, 20 + w->day * 7);
        loop_timer_set(w->loop, &w->day_end, day_start(w) + 19 * HOUR + 15 * MIN, final_watts, w);
        return;
    }
    struct hs_stats st;
    hs_dtu_stats(w->net.dtu, &st);
    ck_assert_msg(fabs(st.limit_percent - w->last_pct) < 1,
                  "day %d: DTU at %.1f %%, last command %.1f %%", w->day, st.limit_percent,
                  w->last_pct);
    ck_assert_msg(fabs(st.limit_watts - w->last_watts) < 1,
                  "day %d: DTU at %.1f W, last command %.1f W", w->day, st.limit_watts,
                  w->last_watts);
    w->checks_ok++;
    w->day++;
    loop_timer_set(w->loop, &w->day_end, day_start(w) + 18 * HOUR + 45 * MIN, on_day_end, w);
}

// Trouble the DTU makes on its own: a reboot every afternoon at 15:02 (a new key), and
// err_code 7 every few hours.
static struct timer reboot_timer, busy_timer;

static void on_reboot(void *arg)
{
    struct week *w = arg;
    int64_t now = loop_now(w->loop);
    hs_dtu_control(w->net.dtu, now, loop_wall(w->loop), HS_CTL_REBOOT, 0);
    sim_sync(&w->net);
    loop_timer_set(w->loop, &reboot_timer, now + DAY, on_reboot, w);
}

static void on_busy(void *arg)
{
    struct week *w = arg;
    int64_t now = loop_now(w->loop);
    hs_dtu_control(w->net.dtu, now, loop_wall(w->loop), HS_CTL_BUSY, 1);
    loop_timer_set(w->loop, &busy_timer, now + 2 * HOUR + (int64_t)(rnd(&w->rng) * 3 * HOUR),
                   on_busy, w);
}

static void on_stop(void *arg)
{
    loop_stop(((struct week *)arg)->loop);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_week)
{
    signal(SIGPIPE, SIG_IGN);
    struct week w = {.rng = {0x5eed0000ULL + (uint64_t)_i}, .last_state = SCHED_STATE_STARTING};
    W = &w;
    night_warnings = warnings = 0;
    w.loop = loop_new_virtual(START_MONO, START_WALL);
    ck_assert_ptr_nonnull(w.loop);

    // The DTU: encrypting firmware, sun from 05:00 to 21:00 (UTC, the test's local time too
    // when TZ is UTC; the cloud windows are the same in any whole-hour zone).
    struct hs_config hc;
    hs_config_init(&hc);
    hc.seed = 77 + (uint64_t)_i;
    hc.encrypted = true;
    hc.sun = true;
    hc.sunrise_h = 5;
    hc.sunset_h = 21;
    hc.peak_w = 780;
    ck_assert_int_eq(hs_config_set_cloud(&hc, "5min"), 0);
    w.net = (struct sim_net){.loop = w.loop, .lfd = -1};
    for (int i = 0; i < MAX_CONNS; i++)
        w.net.conns[i].fd = -1;
    w.net.dtu = hs_dtu_new(&hc, START_MONO, START_WALL);
    set_listening(&w.net, true); // picks the port; the sync closes it again (night)
    sim_sync(&w.net);

    char dir[] = "/tmp/e2m-week-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128], text[512];
    snprintf(text, sizeof(text),
             "state_dir: %s\n"
             "devices:\n"
             "  - id: balcony\n"
             "    model: hoymiles/hms-2t\n"
             "    host: 127.0.0.1\n"
             "    port: %d\n",
             dir, w.net.port);
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    write_text(path, text);
    struct diag dg;
    diag_init(&dg);
    int rc = config_load(path, &w.cfg, &dg);
    diag_print(&dg, stderr);
    diag_free(&dg);
    ck_assert_int_eq(rc, 0);
    const struct model *m = w.cfg->devices[0].model;
    w.pct = model_find(m, "power_limit");
    w.watts = model_find(m, "power_limit_runtime");
    ck_assert_ptr_nonnull(w.pct);
    ck_assert_ptr_nonnull(w.watts);

    log_set_sink(sink, NULL);
    struct device_hooks hooks = {.event = on_event, .arg = &w};
    w.dev = device_new(w.loop, &w.cfg->devices[0], NULL, &hooks);
    ck_assert_ptr_nonnull(w.dev);
    ck_assert_int_eq(device_start(w.dev), 0);

    loop_timer_set(w.loop, &w.burst, START_MONO + 7 * HOUR, on_burst, &w);
    loop_timer_set(w.loop, &w.day_end, START_MONO + 18 * HOUR + 45 * MIN, on_day_end, &w);
    loop_timer_set(w.loop, &reboot_timer, START_MONO + 15 * HOUR + 2 * MIN, on_reboot, &w);
    loop_timer_set(w.loop, &busy_timer, START_MONO + 8 * HOUR, on_busy, &w);
    loop_timer_set(w.loop, &w.stop, START_MONO + 7 * DAY, on_stop, &w);
    ck_assert_int_eq(loop_run(w.loop), 0);
    log_set_sink(NULL, NULL);

    struct hs_stats st;
    hs_dtu_stats(w.net.dtu, &st);
    struct device_stats ds;
    device_get_stats(w.dev, &ds);
    fprintf(
        stderr,
        "week %d: %llu requests (%llu polls incl. night probes), %d commands in %d bursts, %llu "
        "persistent and %llu runtime writes (closest persistent %lld s apart), %llu err 7, "
        "%llu DTU boots; guard violations %llu, lock-ups %llu, lost uploads %llu; "
        "%d nights slept, %d mornings woken; %d warnings logged (%d at night); energy "
        "%.3f kWh\n",
        _i, (unsigned long long)st.requests, (unsigned long long)ds.polls, w.commands, w.bursts,
        (unsigned long long)st.persistent_writes, (unsigned long long)st.runtime_writes,
        (long long)(st.min_persistent_interval_ms / 1000), (unsigned long long)st.err7_replies,
        (unsigned long long)st.dtu_boots, (unsigned long long)st.guard_violations,
        (unsigned long long)st.lockups, (unsigned long long)st.lost_uploads, w.sleeping_states,
        w.online_after_sleep, warnings, night_warnings, w.energy_max);

    // The DTU's rules were never broken.
    ck_assert_uint_eq(st.guard_violations, 0);
    ck_assert_uint_eq(st.lockups, 0);
    ck_assert_uint_eq(st.requests_while_locked, 0);
    ck_assert_uint_eq(st.lost_uploads, 0);
    ck_assert_int_ge(st.min_persistent_interval_ms, 60 * S);
    // Every day ended with the last commands in effect.
    ck_assert_int_eq(w.checks_ok, 7);
    // Energy never went backwards, and grew.
    ck_assert_int_eq(w.energy_drops, 0);
    ck_assert(w.energy_max > 0);
    // Seven nights asleep, seven mornings back, without warnings at night.
    ck_assert_int_ge(w.sleeping_states, 7);
    ck_assert_int_ge(w.online_after_sleep, 6);
    ck_assert_int_eq(night_warnings, 0);
    // One timeout per afternoon reboot (the request with the old key), nothing else.
    ck_assert_int_le(warnings, 7 + 2);
    // The week really exercised the rules.
    ck_assert_uint_gt(st.requests, 10000);
    ck_assert_int_gt(w.commands, 200);
    ck_assert_uint_gt(st.persistent_writes, 50);
    ck_assert_uint_gt(st.runtime_writes, 50);
    ck_assert_uint_gt(st.err7_replies, 5);
    ck_assert_uint_ge(st.dtu_boots, 14); // sunrises and afternoon reboots: new keys each time

    device_free(w.dev);
    for (int i = 0; i < MAX_CONNS; i++)
        if (w.net.conns[i].fd >= 0)
            conn_close(&w.net.conns[i]);
    set_listening(&w.net, false);
    loop_timer_cancel(w.loop, &w.net.tick);
    hs_dtu_free(w.net.dtu);
    loop_free(w.loop);
    config_free(w.cfg);
    W = NULL;
    snprintf(text, sizeof(text), "rm -rf %s", dir);
    ck_assert_int_eq(system(text), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hoymiles_week");
    TCase *tc = tcase_create("week");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_week, 0, 2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
