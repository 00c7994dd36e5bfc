// SPDX-License-Identifier: MIT
// The device runtime with an event-driven fake driver: completion from inside the job hook
// (no recursion), completion later over a real TCP connection, a job timing out (abort), values
// pushed outside any job with drv_alive keeping the device online, and MQTT subscriptions and
// messages routed to the driver. On a simulated-time loop: a group the driver always needs,
// polled at its own interval and first on request; a busy write retried; a dead band and a
// write interval of the entity's own; a control's value shown as the last command until the
// device reports it; polls the driver skips not restarting the request gap.
//
// Like check_device, this file provides drivers_find()/drivers_all() itself.
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/device.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/loop.h"
#include "core/model.h"
#include "drivers/drivers.h"
#include "mqtt/discovery.h"

// ---- a line server: answers "get\n" with "42\n" ---------------------------------------------

static int srv_fd, srv_port;
static pthread_t srv_thread;
static volatile bool srv_quit;

static void *serve(void *arg)
{
    (void)arg;
    while (!srv_quit) {
        int fd = accept(srv_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[64];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0) {
            for (ssize_t i = 0; i + 3 < n + 1; i++) {
                if (memcmp(buf + i, "get\n", 4) == 0) {
                    ssize_t w = write(fd, "4", 1); // an answer in two pieces
                    usleep(5000);
                    w = write(fd, "2\n", 2);
                    (void)w;
                }
            }
        }
        close(fd);
    }
    return NULL;
}

static void server_start(void)
{
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(srv_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(srv_fd, (struct sockaddr *)&a, &len);
    srv_port = ntohs(a.sin_port);
    listen(srv_fd, 4);
    srv_quit = false;
    pthread_create(&srv_thread, NULL, serve, NULL);
}

static void server_stop(void)
{
    srv_quit = true;
    shutdown(srv_fd, SHUT_RDWR);
    close(srv_fd);
    pthread_join(srv_thread, NULL);
}

// ---- the fake event driver ------------------------------------------------------------------

enum mode { M_SYNC, M_TCP, M_SILENT };

enum { F_VALUE, F_PUSHED, F_TOPIC, F_SETTING, N_FIELDS };
enum { G_POLLED, G_PUSHED, G_INFO, N_GROUPS };
static const struct drv_field fields[] = {
    [F_VALUE] = {"value", G_POLLED, false, false},
    [F_PUSHED] = {"pushed", G_PUSHED, false, false},
    [F_TOPIC] = {"topic_value", G_PUSHED, false, false},
    [F_SETTING] = {"setting", G_POLLED, false, true},
};
// "info" is read by no entity, but the driver needs it polled.
static const struct drv_group groups[] = {
    {"polled", NULL, false}, {"pushed", NULL, false}, {"info", "info_interval", true}};
static const struct param_def options[] = {
    {.name = "info_interval", .type = PARAM_DURATION, .def = "1s", .min = 100, .max = 3600000},
};

static struct {
    struct drv_ctx *ctx;
    enum mode mode;
    bool push;
    int jobs, aborts, starts;
    double next_push;
    char line[32];
    size_t line_len;
    // Simulated-time tests.
    int info_polls, polled_polls, skipped;
    int busy_sets;    // answer this many SET jobs with DRV_ERR_BUSY
    bool assume;      // the device cannot report the setting: show the last command
    bool skip_pushed; // polls of the pushed group send nothing
    int n_sets;
    double set_value[16];
    int64_t set_ms[16];
    double device_setting; // what the device holds (reported by polls when !assume)
    bool setting_known;
} fk;

static int fake_open(const struct drv_device *d, void **state)
{
    (void)d;
    *state = &fk;
    return 0;
}

static void fake_close(void *state)
{
    (void)state;
}

static int fake_start(void *state, struct drv_ctx *ctx)
{
    (void)state;
    fk.ctx = ctx;
    fk.starts++;
    drv_mqtt_subscribe(ctx, "fake/+/value");
    drv_timer_set(ctx, 50);
    return 0;
}

static void fake_job(void *state, const struct drv_job *job)
{
    (void)state;
    fk.jobs++;
    if (fk.mode == M_SILENT)
        return; // never answers: the core times the job out
    if (job->type == DRV_JOB_SET) {
        if (fk.busy_sets > 0) {
            fk.busy_sets--;
            drv_job_done(fk.ctx, DRV_ERR_BUSY, 7, "busy");
            return;
        }
        if (fk.n_sets < 16) {
            fk.set_value[fk.n_sets] = job->value;
            fk.set_ms[fk.n_sets++] = drv_now_ms(fk.ctx);
        }
        fk.device_setting = job->value;
        fk.setting_known = true;
        if (fk.assume)
            drv_value_assumed(fk.ctx, F_SETTING, job->value);
        drv_job_done(fk.ctx, DRV_OK, 0, NULL);
        return;
    }
    if (job->type == DRV_JOB_POLL && job->group == G_INFO) {
        fk.info_polls++;
        drv_job_done(fk.ctx, DRV_OK, 0, NULL);
        return;
    }
    if (job->type == DRV_JOB_POLL && job->group == G_PUSHED && fk.skip_pushed) {
        fk.skipped++;
        drv_job_done(fk.ctx, DRV_SKIPPED, 0, NULL);
        return;
    }
    if (job->type == DRV_JOB_POLL && job->group == G_POLLED)
        fk.polled_polls++;
    if (job->type == DRV_JOB_POLL && job->group == G_POLLED && fk.setting_known && !fk.assume)
        drv_value(fk.ctx, F_SETTING, fk.device_setting);
    if (job->type != DRV_JOB_POLL || job->group != 0) {
        // The pushed group is never read by polling: its values just come.
        drv_job_done(fk.ctx, DRV_OK, 0, NULL);
        return;
    }
    switch (fk.mode) {
    case M_SYNC:
        drv_value(fk.ctx, F_VALUE, 42);
        drv_job_done(fk.ctx, DRV_OK, 0, NULL); // from inside the hook
        break;
    case M_TCP:
        if (!drv_tcp_is_open(fk.ctx)) {
            drv_tcp_open(fk.ctx, "127.0.0.1", srv_port);
            return; // sent once connected
        }
        drv_tcp_send(fk.ctx, "get\n", 4);
        break;
    case M_SILENT: break;
    }
}

static void fake_abort(void *state)
{
    (void)state;
    fk.aborts++;
}

static void fake_connected(void *state)
{
    (void)state;
    drv_tcp_send(fk.ctx, "get\n", 4);
}

static size_t fake_data(void *state, const uint8_t *buf, size_t len)
{
    (void)state;
    const uint8_t *nl = memchr(buf, '\n', len);
    if (!nl)
        return 0;
    drv_value(fk.ctx, F_VALUE, atof((const char *)buf));
    drv_job_done(fk.ctx, DRV_OK, 0, NULL);
    return (size_t)(nl - buf) + 1;
}

static void fake_closed(void *state, const char *why)
{
    (void)state;
    drv_job_done(fk.ctx, DRV_ERR_CONNECT, 0, "%s", why);
}

static void fake_timer(void *state)
{
    (void)state;
    if (fk.push) {
        drv_value(fk.ctx, F_PUSHED, fk.next_push);
        drv_alive(fk.ctx);
    }
    drv_timer_set(fk.ctx, 50);
}

static void fake_message(void *state, const char *topic, const uint8_t *payload, size_t len,
                         bool retained)
{
    (void)state;
    (void)topic;
    (void)retained;
    char buf[32];
    snprintf(buf, sizeof(buf), "%.*s", (int)len, (const char *)payload);
    drv_value(fk.ctx, F_TOPIC, atof(buf));
}

static const struct driver_ops fake_driver = {
    .name = "evt",
    .style = DRV_EVENT,
    .options = options,
    .n_options = 1,
    .fields = fields,
    .n_fields = N_FIELDS,
    .groups = groups,
    .n_groups = N_GROUPS,
    .timing = {.min_gap_ms = 0,
               .poll_ms = 100,
               .min_poll_ms = 10,
               .reply_timeout_ms = 100,
               .connect_timeout_ms = 100,
               .backoff_min_ms = 100,
               .backoff_max_ms = 200},
    .open = fake_open,
    .close = fake_close,
    .start = fake_start,
    .job = fake_job,
    .abort = fake_abort,
    .tcp_connected = fake_connected,
    .tcp_data = fake_data,
    .tcp_closed = fake_closed,
    .timer = fake_timer,
    .mqtt_message = fake_message,
};

const struct driver_ops *drivers_find(const char *name)
{
    return strcmp(name, "evt") == 0 ? &fake_driver : NULL;
}

const struct driver_ops *const *drivers_all(size_t *n)
{
    static const struct driver_ops *const all[] = {&fake_driver};
    *n = 1;
    return all;
}

// ---- fixture --------------------------------------------------------------------------------

static char dir[64];
static struct config *cfg;
static struct loop *loop;
static bool simulated; // the next start uses a loop on simulated time
static struct device *d;
static char subscribed[64];
static char published_topic[64];
static int state_events;

static void on_event(void *arg, struct device *x, enum device_event ev)
{
    (void)arg;
    (void)x;
    if (ev == DEVICE_STATE)
        state_events++;
}

static int on_subscribe(void *arg, const char *filter)
{
    (void)arg;
    snprintf(subscribed, sizeof(subscribed), "%s", filter);
    return 0;
}

static int on_publish(void *arg, const char *topic, const void *p, size_t len, bool retain)
{
    (void)arg;
    (void)p;
    (void)len;
    (void)retain;
    snprintf(published_topic, sizeof(published_topic), "%s", topic);
    return 0;
}

static void start_with(enum mode mode, bool push, const char *timeouts)
{
    memset(&fk, 0, sizeof(fk));
    state_events = 0;
    fk.mode = mode;
    fk.push = push;
    subscribed[0] = '\0';
    snprintf(dir, sizeof(dir), "/tmp/e2m-devevt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/test", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/test/evt.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("model: evt\nmanufacturer: T\nname: Event thing\ndriver: evt\nentities:\n"
          "  - {id: value, name: Value, field: value}\n"
          "  - {id: pushed, name: Pushed, field: pushed}\n"
          "  - {id: topic_value, name: From MQTT, field: topic_value}\n"
          "  - {id: setting, name: Setting, component: number, field: setting, min: 0,\n"
          "     max: 100, step: 0.5, deadband: 1, write_interval: 2s}\n",
          f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    f = fopen(path, "w");
    fprintf(f,
            "entities_dir: %s\nstate_dir: %s\ndevices:\n  - id: e1\n    model: test/evt\n"
            "    options: {poll_interval: 100ms, offline_after: 2, backoff_min: 100ms, "
            "backoff_max: 200ms, %s}\n",
            dir, dir, timeouts);
    fclose(f);
    struct diag dg;
    diag_init(&dg);
    int rc = config_load(path, &cfg, &dg);
    diag_print(&dg, stderr);
    diag_free(&dg);
    ck_assert_int_eq(rc, 0);
    // Simulated time starts at a known wall clock: 2026-11-21 08:00 UTC.
    loop = simulated ? loop_new_virtual(1000000, 1795248000000LL) : loop_new();
    ck_assert_ptr_nonnull(loop);
    struct device_hooks hooks = {
        .event = on_event, .mqtt_subscribe = on_subscribe, .mqtt_publish = on_publish};
    d = device_new(loop, &cfg->devices[0], NULL, &hooks);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(device_start(d), 0);
}

static void start(enum mode mode, bool push)
{
    start_with(mode, push, "reply_timeout: 150ms, connect_timeout: 150ms");
}

static void stop(void)
{
    simulated = false;
    device_free(d);
    loop_free(loop);
    config_free(cfg);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct timer t_stop;

static void stop_loop(void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void run_for(int ms)
{
    loop_timer_set(loop, &t_stop, loop_now(loop) + ms, stop_loop, NULL);
    loop_run(loop);
}

static double num(const char *key)
{
    char *s = device_state_json(d);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    json_t *v = json_object_get(o, key);
    double r = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return r;
}

// ---- tests ----------------------------------------------------------------------------------

START_TEST(test_done_inside_job_hook)
{
    start(M_SYNC, false);
    run_for(600);
    ck_assert_int_gt(fk.jobs, 3); // polls kept going: completion was not lost or recursive
    ck_assert(num("value") == 42);
    ck_assert(device_online(d));
    ck_assert_str_eq(subscribed, "fake/+/value");
    stop();
}
END_TEST

START_TEST(test_tcp_round_trip)
{
    server_start();
    start(M_TCP, false);
    run_for(600);
    ck_assert(num("value") == 42);
    ck_assert(device_online(d));
    ck_assert_int_eq(fk.aborts, 0);
    stop();
    server_stop();
}
END_TEST

START_TEST(test_timeout_aborts_and_goes_offline)
{
    start(M_SILENT, false);
    run_for(1200);
    ck_assert_int_gt(fk.aborts, 1);
    ck_assert_int_eq(device_sched_state(d), SCHED_STATE_OFFLINE);
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, (uint64_t)fk.aborts);
    stop();
}
END_TEST

START_TEST(test_pushed_values_and_alive)
{
    start(M_SILENT, true);
    fk.next_push = 7.5;
    run_for(400);
    ck_assert(num("pushed") == 7.5); // published without any poll answering
    fk.next_push = 8.5;
    run_for(400);
    ck_assert(num("pushed") == 8.5);
    // Polls time out, but the pushes are evidence enough: the device stays online.
    ck_assert_int_gt(fk.aborts, 0);
    ck_assert(device_online(d));
    stop();
}
END_TEST

// A job that waits long for its answer must not hold back values the device pushes meanwhile.
START_TEST(test_pushed_values_published_while_a_job_waits)
{
    start_with(M_SILENT, true, "reply_timeout: 2s, connect_timeout: 500ms"); // 4.5 s per job
    fk.next_push = 1;
    run_for(2600);
    ck_assert_int_eq(fk.aborts, 0); // still inside the first job
    ck_assert_int_ge(state_events, 2);
    ck_assert(num("pushed") == 1);
    stop();
}
END_TEST

START_TEST(test_mqtt_message_reaches_driver)
{
    start(M_SYNC, false);
    run_for(150);
    const char *const *filters;
    ck_assert_uint_eq(device_mqtt_filters(d, &filters), 1);
    ck_assert_str_eq(filters[0], "fake/+/value");
    device_mqtt_message(d, "fake/x/value", (const uint8_t *)"12.25", 5, false);
    run_for(100);
    ck_assert(num("topic_value") == 12.25);
    ck_assert_int_eq(drv_mqtt_publish(fk.ctx, "fake/x/set", "1", 1, false), 0);
    ck_assert_str_eq(published_topic, "fake/x/set");
    stop();
}
END_TEST

// ---- simulated time -------------------------------------------------------------------------

static json_t *state_object(void)
{
    char *s = device_state_json(d);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    ck_assert_ptr_nonnull(o);
    return o;
}

static bool listed_as_assumed(const char *id)
{
    json_t *o = state_object();
    json_t *a = json_object_get(o, "assumed");
    ck_assert(json_is_array(a));
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) found |= strcmp(json_string_value(v), id) == 0;
    json_decref(o);
    return found;
}

static void collect_discovery(void *arg, const char *topic, json_t *payload)
{
    json_object_set(arg, topic, payload);
}

static void command(double value)
{
    const struct entity *e = model_find(cfg->devices[0].model, "setting");
    ck_assert_ptr_nonnull(e);
    struct command_value cv = {.value = value};
    char why[128];
    ck_assert_int_eq(device_command(d, e, &cv, why, sizeof(why)), 0);
}

START_TEST(test_always_group_and_poll_first)
{
    simulated = true;
    start(M_SYNC, false);
    run_for(10000);
    // No entity reads "info", yet it is polled at its option's interval (1 s).
    ck_assert_int_ge(fk.info_polls, 9);
    ck_assert_int_le(fk.info_polls, 11);
    run_for(300); // between two info polls ...
    int polls = fk.info_polls;
    drv_poll_first(fk.ctx, G_INFO);
    run_for(50); // ... the driver's request goes first
    ck_assert_int_eq(fk.info_polls, polls + 1);
    stop();
}
END_TEST

START_TEST(test_busy_write_is_retried)
{
    simulated = true;
    start_with(M_SYNC, false, "write_retries: 0");
    run_for(500);
    fk.busy_sets = 3;
    command(40);
    run_for(8000); // attempts 2 s apart: the entity's write interval
    ck_assert_int_eq(fk.busy_sets, 0);
    ck_assert_int_eq(fk.n_sets, 1); // taken on the fourth attempt, though no retries are left
    ck_assert(fk.set_value[0] == 40);
    ck_assert(num("setting") == 40);
    ck_assert(device_online(d)); // a busy device is there
    stop();
}
END_TEST

START_TEST(test_deadband_and_write_interval)
{
    simulated = true;
    start(M_SYNC, false);
    run_for(500);
    command(10);
    run_for(300);
    ck_assert_int_eq(fk.n_sets, 1);
    ck_assert(num("setting") == 10); // read back by the next poll
    command(10.5);                   // inside the dead band of 1: not sent
    command(10.5);
    run_for(3000);
    ck_assert_int_eq(fk.n_sets, 1);
    command(20); // the last write was long enough ago: sent at once
    run_for(100);
    ck_assert_int_eq(fk.n_sets, 2);
    command(30); // too soon after the last write: waits ...
    command(35); // ... and is replaced by the newer command
    run_for(1000);
    ck_assert_int_eq(fk.n_sets, 2);
    run_for(2000);
    ck_assert_int_eq(fk.n_sets, 3);
    ck_assert(fk.set_value[2] == 35);
    for (int i = 1; i < fk.n_sets; i++)
        ck_assert_int_ge(fk.set_ms[i] - fk.set_ms[i - 1], 2000);
    ck_assert(num("setting") == 35);
    stop();
}
END_TEST

START_TEST(test_assumed_value_until_reported)
{
    simulated = true;
    start(M_SYNC, false);
    fk.assume = true;
    run_for(500);
    ck_assert(!listed_as_assumed("setting"));
    command(55);
    run_for(500);
    ck_assert(num("setting") == 55);
    ck_assert(listed_as_assumed("setting"));
    // The device starts reporting it: a reading replaces the assumption.
    fk.assume = false;
    run_for(500);
    ck_assert(num("setting") == 55);
    ck_assert(!listed_as_assumed("setting"));
    // Discovery turns the list into a "source" attribute of the control, and only there.
    json_t *cfgs = json_object();
    discovery_device(&cfg->mqtt, "test", &cfg->devices[0], NULL, collect_discovery, cfgs);
    const char *key;
    json_t *payload;
    bool seen = false;
    json_object_foreach(cfgs, key, payload)
    {
        json_t *cmps = json_object_get(payload, "cmps");
        const char *id;
        json_t *c;
        json_object_foreach(cmps, id, c)
        {
            bool has = json_object_get(c, "json_attr_t") != NULL;
            ck_assert_msg(has == (strcmp(id, "setting") == 0), "%s: attribute topic %d", id, has);
            if (has) {
                seen = true;
                ck_assert_str_eq(json_string_value(json_object_get(c, "json_attr_t")),
                                 json_string_value(json_object_get(payload, "stat_t")));
                ck_assert_ptr_nonnull(
                    strstr(json_string_value(json_object_get(c, "json_attr_tpl")), "'setting'"));
            }
        }
    }
    ck_assert(seen);
    json_decref(cfgs);
    stop();
}
END_TEST

START_TEST(test_skipped_polls_keep_the_gap)
{
    simulated = true;
    start_with(M_SYNC, false, "min_request_gap: 1s");
    fk.skip_pushed = true;
    run_for(20000);
    // One exchange per second: polled and info share the slots; the skipped polls of the
    // pushed group take none (they would halve the rate if they restarted the gap).
    ck_assert_int_ge(fk.skipped, 5);
    ck_assert_int_ge(fk.polled_polls + fk.info_polls, 18);
    ck_assert_int_le(fk.polled_polls + fk.info_polls, 21);
    stop();
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("device_event");
    TCase *tc = tcase_create("event");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_done_inside_job_hook);
    tcase_add_test(tc, test_tcp_round_trip);
    tcase_add_test(tc, test_timeout_aborts_and_goes_offline);
    tcase_add_test(tc, test_pushed_values_and_alive);
    tcase_add_test(tc, test_mqtt_message_reaches_driver);
    tcase_add_test(tc, test_pushed_values_published_while_a_job_waits);
    tcase_add_test(tc, test_always_group_and_poll_first);
    tcase_add_test(tc, test_busy_write_is_retried);
    tcase_add_test(tc, test_deadband_and_write_interval);
    tcase_add_test(tc, test_assumed_value_until_reported);
    tcase_add_test(tc, test_skipped_polls_keep_the_gap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
