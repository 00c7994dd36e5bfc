// SPDX-License-Identifier: MIT
// The device runtime with an event-driven fake driver: completion from inside the job hook
// (no recursion), completion later over a real TCP connection, a job timing out (abort), values
// pushed outside any job with drv_alive keeping the device online, and MQTT subscriptions and
// messages routed to the driver.
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
#include "drivers/drivers.h"

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

enum { F_VALUE, F_PUSHED, F_TOPIC };
static const struct drv_field fields[] = {
    [F_VALUE] = {"value", 0, false, false},
    [F_PUSHED] = {"pushed", 1, false, false},
    [F_TOPIC] = {"topic_value", 1, false, false},
};
static const char *const groups[] = {"polled", "pushed", NULL};

static struct {
    struct drv_ctx *ctx;
    enum mode mode;
    bool push;
    int jobs, aborts, starts;
    double next_push;
    char line[32];
    size_t line_len;
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
    .fields = fields,
    .n_fields = 3,
    .groups = groups,
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
          "  - {id: topic_value, name: From MQTT, field: topic_value}\n",
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
    loop = loop_new();
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
    loop_timer_set(loop, &t_stop, clock_mono_ms() + ms, stop_loop, NULL);
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
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
