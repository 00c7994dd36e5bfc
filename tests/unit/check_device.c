// SPDX-License-Identifier: MIT
// The device runtime (app/device) with a fake field driver on a real loop and worker:
// decoding of field samples, derived values, commands with read-back confirmation, refused
// writes snapping back, failures taking the device offline and back, sleeping, the counter
// guard, button actions, and a read plan that skips groups no enabled entity needs.
//
// This file provides drivers_find()/drivers_all() itself, so the loader sees only the fake
// driver (the library's registry object is then not linked into this test).
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/device.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/model.h"
#include "drivers/drivers.h"
#include "mqtt/command.h"

// ---- the fake driver ------------------------------------------------------------------------

enum { F_POWER, F_ENERGY, F_MODE, F_LIMIT, F_FIRMWARE, N_FIELDS };

static const struct drv_field fields[] = {
    [F_POWER] = {"power", 0, false, false},      [F_ENERGY] = {"energy", 0, false, false},
    [F_MODE] = {"mode", 0, false, false},        [F_LIMIT] = {"limit", 1, false, true},
    [F_FIRMWARE] = {"firmware", 1, true, false},
};
static const struct drv_group groups[] = {{"live", NULL, false}, {"settings", NULL, false}};
static const char *const actions[] = {"restart", NULL};

// What the fake device holds and how it behaves; shared with the worker thread.
static struct {
    pthread_mutex_t lock;
    double value[N_FIELDS];
    char firmware[32];
    int polls[2];
    int fail_next;
    bool sleeping;
    int refuse_code;      // exception code for SET, 0 = accept
    int refuse_poll_code; // exception code for POLL of group 0, 0 = answer
    int sets, actions_run;
    struct {
        enum drv_job_type type;
        int group;
    } log[4096]; // every job, in order
    int n_log;
} dev = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int fake_open(const struct drv_device *d, void **state)
{
    (void)d;
    *state = &dev;
    return 0;
}

static void fake_close(void *state)
{
    (void)state;
}

static void fake_run(void *state, const struct drv_job *job, struct drv_result *res)
{
    (void)state;
    pthread_mutex_lock(&dev.lock);
    if (dev.n_log < 4096) {
        dev.log[dev.n_log].type = job->type;
        dev.log[dev.n_log++].group = job->group;
    }
    res->status = DRV_OK;
    res->n_samples = 0;
    res->detail[0] = '\0';
    if (dev.fail_next > 0) {
        dev.fail_next--;
        res->status = DRV_ERR_TIMEOUT;
        snprintf(res->detail, sizeof(res->detail), "no reply");
    } else if (dev.sleeping) {
        res->status = DRV_SLEEPING;
    } else if (job->type == DRV_JOB_POLL && job->group == 0 && dev.refuse_poll_code) {
        res->status = DRV_ERR_EXCEPTION;
        res->code = dev.refuse_poll_code;
        snprintf(res->detail, sizeof(res->detail), "illegal data address");
    } else if (job->type == DRV_JOB_POLL) {
        dev.polls[job->group]++;
        for (uint16_t f = 0; f < N_FIELDS; f++) {
            if (fields[f].group != job->group)
                continue;
            ck_assert_uint_lt(res->n_samples, res->max_samples);
            struct drv_sample *s = &res->samples[res->n_samples++];
            s->field = f;
            s->text = fields[f].text;
            s->num = dev.value[f];
            snprintf(s->str, sizeof(s->str), "%s", dev.firmware);
        }
    } else if (job->type == DRV_JOB_SET) {
        if (dev.refuse_code) {
            res->status = DRV_ERR_EXCEPTION;
            res->code = dev.refuse_code;
            snprintf(res->detail, sizeof(res->detail), "illegal value");
        } else {
            dev.value[job->field] = job->value;
            dev.sets++;
        }
    } else if (job->type == DRV_JOB_ACTION && strcmp(job->action, "restart") == 0) {
        dev.actions_run++;
    } else {
        res->status = DRV_ERR_PROTOCOL;
    }
    pthread_mutex_unlock(&dev.lock);
}

static const struct driver_ops fake_driver = {
    .name = "fake",
    .fields = fields,
    .n_fields = N_FIELDS,
    .groups = groups,
    .n_groups = 2,
    .actions = actions,
    .timing = {.min_gap_ms = 0,
               .poll_ms = 100,
               .min_poll_ms = 10,
               .reply_timeout_ms = 100,
               .connect_timeout_ms = 100,
               .backoff_min_ms = 100,
               .backoff_max_ms = 200},
    .open = fake_open,
    .close = fake_close,
    .run = fake_run,
};

const struct driver_ops *drivers_find(const char *name)
{
    return strcmp(name, "fake") == 0 ? &fake_driver : NULL;
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
static int state_events, availability_events;

static void on_event(void *arg, struct device *x, enum device_event ev)
{
    (void)arg;
    (void)x;
    if (ev == DEVICE_STATE)
        state_events++;
    else
        availability_events++;
}

static void write_file(const char *name, const char *text)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static const char *model_yaml =
    "model: thing\nmanufacturer: Test\nname: Fake thing\ndriver: fake\nentities:\n"
    "  - {id: power, name: Power, field: power, scale: 0.1, unit: W, device_class: power,"
    " state_class: measurement, precision: 1}\n"
    "  - {id: energy, name: Energy, field: energy, unit: kWh, device_class: energy,"
    " state_class: total_increasing}\n"
    "  - {id: mode, name: Mode, field: mode, map: {0: idle, 1: running}}\n"
    "  - {id: limit, name: Limit, component: number, field: limit, min: 0, max: 100,"
    " unit: '%', category: config}\n"
    "  - {id: firmware, name: Firmware, field: firmware, category: diagnostic}\n"
    "  - {id: double_power, name: Double, expr: 'power * 2', unit: W, device_class: power,"
    " state_class: measurement}\n"
    "  - {id: restart, name: Restart, component: button, action: restart,"
    " device_class: restart, category: config}\n";

static void start_device(const char *extra)
{
    snprintf(dir, sizeof(dir), "/tmp/e2m-device-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/test", dir);
    mkdir(sub, 0700);
    write_file("test/thing.yaml", model_yaml);
    char cfgtext[1024];
    snprintf(cfgtext, sizeof(cfgtext),
             "entities_dir: %s\nstate_dir: %s\ndevices:\n"
             "  - id: t1\n    model: test/thing\n"
             "    options: {poll_interval: 100ms, offline_after: 2, backoff_min: 100ms,"
             " backoff_max: 200ms, stale_after: 500ms}\n%s",
             dir, dir, extra ? extra : "");
    write_file("cfg.yaml", cfgtext);
    char path[200];
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    struct diag dg;
    diag_init(&dg);
    int rc = config_load(path, &cfg, &dg);
    if (rc)
        diag_print(&dg, stderr);
    diag_free(&dg);
    ck_assert_int_eq(rc, 0);

    pthread_mutex_lock(&dev.lock);
    dev.value[F_POWER] = 1234;
    dev.value[F_ENERGY] = 10.5;
    dev.value[F_MODE] = 1;
    dev.value[F_LIMIT] = 40;
    snprintf(dev.firmware, sizeof(dev.firmware), "1.2.3");
    pthread_mutex_unlock(&dev.lock);

    loop = loop_new();
    struct device_hooks hooks = {.event = on_event};
    d = device_new(loop, &cfg->devices[0], NULL, &hooks);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(device_start(d), 0);
}

static void stop_device(void)
{
    device_free(d);
    loop_free(loop);
    config_free(cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

// Runs the loop until `pred` holds (checked every 5 ms) or `ms` pass.
struct wait {
    bool (*pred)(void);
    int64_t end;
    struct timer t;
    bool ok;
};

static void check_pred(void *arg)
{
    struct wait *w = arg;
    if (w->pred()) {
        w->ok = true;
        loop_stop(loop);
    } else if (clock_mono_ms() > w->end) {
        loop_stop(loop);
    } else {
        loop_timer_set(loop, &w->t, loop_now(loop) + 5, check_pred, w);
    }
}

static bool run_until(bool (*pred)(void), int ms)
{
    struct wait w = {.pred = pred, .end = clock_mono_ms() + ms};
    loop_timer_set(loop, &w.t, loop_now(loop), check_pred, &w);
    loop_run(loop);
    loop_timer_cancel(loop, &w.t);
    return w.ok;
}

static json_t *state(void)
{
    char *s = device_state_json(d);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    return o;
}

static double num(const char *key)
{
    json_t *o = state();
    json_t *v = json_object_get(o, key);
    double r = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return r;
}

static bool str_is(const char *key, const char *want)
{
    json_t *o = state();
    const char *v = json_string_value(json_object_get(o, key));
    bool r = v && strcmp(v, want) == 0;
    json_decref(o);
    return r;
}

static bool have_power(void)
{
    return num("power") == 123.4;
}

static bool is_online(void)
{
    return device_online(d);
}

static bool is_offline(void)
{
    return device_sched_state(d) == SCHED_STATE_OFFLINE;
}

static bool is_sleeping(void)
{
    return device_sched_state(d) == SCHED_STATE_SLEEPING;
}

static void command(const char *entity, const char *payload)
{
    const struct entity *e = model_find(cfg->devices[0].model, entity);
    ck_assert_ptr_nonnull(e);
    struct command_value cv;
    char why[128];
    ck_assert_int_eq(
        command_validate(e, (const uint8_t *)payload, strlen(payload), &cv, why, sizeof(why)),
        CMD_OK);
    ck_assert_int_eq(device_command(d, e, &cv, why, sizeof(why)), 0);
}

// ---- tests ----------------------------------------------------------------------------------

static bool both_groups_read(void)
{
    return have_power() && num("limit") == 40;
}

START_TEST(test_field_values)
{
    start_device(NULL);
    ck_assert(run_until(both_groups_read, 3000)); // two groups, read one after the other
    ck_assert(run_until(is_online, 1000));
    ck_assert(num("double_power") == 246.8);
    ck_assert(num("energy") == 10.5);
    ck_assert(num("limit") == 40);
    ck_assert(str_is("mode", "running"));
    ck_assert(str_is("firmware", "1.2.3"));
    ck_assert(str_is("link_status", "online"));
    ck_assert_int_gt(state_events, 0);
    // Nothing changes from now on, yet every poll still sends a state message (so last_seen
    // moves on): at 100 ms per poll, well over five in a second.
    int before = state_events;
    run_until(is_offline, 1000);
    ck_assert_int_ge(state_events - before, 5);
    stop_device();
}
END_TEST

static bool limit_is_55(void)
{
    return num("limit") == 55;
}

START_TEST(test_command_is_set_and_read_back)
{
    start_device(NULL);
    ck_assert(run_until(is_online, 2000));
    pthread_mutex_lock(&dev.lock);
    int settings_polls = dev.polls[1];
    pthread_mutex_unlock(&dev.lock);
    command("limit", "55");
    ck_assert(run_until(limit_is_55, 2000));
    pthread_mutex_lock(&dev.lock);
    ck_assert_int_eq(dev.sets, 1);
    ck_assert(dev.value[F_LIMIT] == 55);
    ck_assert_int_gt(dev.polls[1], settings_polls);
    // The exchange right after the write reads the limit's group back.
    int k;
    for (k = 0; k < dev.n_log && dev.log[k].type != DRV_JOB_SET; k++)
        ;
    ck_assert_int_lt(k + 1, dev.n_log);
    ck_assert_int_eq(dev.log[k + 1].type, DRV_JOB_POLL);
    ck_assert_int_eq(dev.log[k + 1].group, 1);
    pthread_mutex_unlock(&dev.lock);
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.writes, 1);
    stop_device();
}
END_TEST

static bool refused(void)
{
    struct device_stats st;
    device_get_stats(d, &st);
    return st.writes_refused == 1;
}

START_TEST(test_refused_write_snaps_back)
{
    start_device(NULL);
    ck_assert(run_until(is_online, 2000));
    pthread_mutex_lock(&dev.lock);
    dev.refuse_code = 3;
    pthread_mutex_unlock(&dev.lock);
    int before = state_events;
    command("limit", "60");
    ck_assert(run_until(refused, 2000));
    run_until(is_offline, 200); // let the snap-back publish happen
    ck_assert_int_gt(state_events, before);
    ck_assert(num("limit") == 40);
    ck_assert(device_online(d)); // a refusal is not a link failure
    stop_device();
}
END_TEST

START_TEST(test_failures_go_offline_and_recover)
{
    start_device(NULL);
    ck_assert(run_until(is_online, 2000));
    int before = availability_events;
    pthread_mutex_lock(&dev.lock);
    dev.fail_next = 4;
    pthread_mutex_unlock(&dev.lock);
    ck_assert(run_until(is_offline, 3000));
    ck_assert(str_is("link_status", "offline"));
    ck_assert(num("energy") == 10.5); // values are kept, never zeroed
    ck_assert(run_until(is_online, 3000));
    ck_assert_int_ge(availability_events - before, 2);
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 4);
    stop_device();
}
END_TEST

START_TEST(test_sleeping_device)
{
    start_device(NULL);
    ck_assert(run_until(is_online, 2000));
    pthread_mutex_lock(&dev.lock);
    dev.sleeping = true;
    pthread_mutex_unlock(&dev.lock);
    ck_assert(run_until(is_sleeping, 2000));
    ck_assert(str_is("link_status", "sleeping"));
    ck_assert(num("energy") == 10.5);
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 0); // sleeping is not an error
    stop_device();
}
END_TEST

static bool power_unknown(void)
{
    return isnan(num("power"));
}

START_TEST(test_refused_read_makes_values_unknown)
{
    start_device(NULL);
    ck_assert(run_until(have_power, 2000));
    pthread_mutex_lock(&dev.lock);
    dev.refuse_poll_code = 2;
    pthread_mutex_unlock(&dev.lock);
    ck_assert(run_until(power_unknown, 2000));
    ck_assert(isnan(num("double_power"))); // derived from it
    ck_assert(num("limit") == 40);         // another group, still read
    ck_assert(device_online(d));           // the device answers: it is not offline
    pthread_mutex_lock(&dev.lock);
    dev.refuse_poll_code = 0;
    pthread_mutex_unlock(&dev.lock);
    ck_assert(run_until(have_power, 2000));
    stop_device();
}
END_TEST

static bool energy_is_11(void)
{
    return num("energy") == 11;
}

START_TEST(test_counter_guard)
{
    start_device(NULL);
    ck_assert(run_until(is_online, 2000));
    pthread_mutex_lock(&dev.lock);
    dev.value[F_ENERGY] = 3; // a glitch
    int polls = dev.polls[0];
    pthread_mutex_unlock(&dev.lock);
    for (int i = 0; i < 100; i++) { // several polls of the glitch
        run_until(is_offline, 20);
        pthread_mutex_lock(&dev.lock);
        bool enough = dev.polls[0] > polls + 3;
        pthread_mutex_unlock(&dev.lock);
        if (enough)
            break;
    }
    ck_assert(num("energy") == 10.5);
    pthread_mutex_lock(&dev.lock);
    dev.value[F_ENERGY] = 11;
    pthread_mutex_unlock(&dev.lock);
    ck_assert(run_until(energy_is_11, 2000));
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_gt(st.guard_rejects, 0);
    stop_device();
}
END_TEST

static bool restarted(void)
{
    pthread_mutex_lock(&dev.lock);
    bool r = dev.actions_run == 1;
    pthread_mutex_unlock(&dev.lock);
    return r;
}

START_TEST(test_button_action)
{
    start_device(NULL);
    ck_assert(run_until(is_online, 2000));
    command("restart", "PRESS");
    ck_assert(run_until(restarted, 2000));
    stop_device();
}
END_TEST

START_TEST(test_unneeded_group_not_polled)
{
    start_device("    disable: [limit, firmware]\n");
    ck_assert(run_until(have_power, 2000));
    run_until(is_offline, 300);
    pthread_mutex_lock(&dev.lock);
    ck_assert_int_gt(dev.polls[0], 3);
    ck_assert_int_eq(dev.polls[1], 0);
    pthread_mutex_unlock(&dev.lock);
    json_t *o = state();
    ck_assert_ptr_null(json_object_get(o, "limit")); // disabled: not in the state either
    json_decref(o);
    stop_device();
}
END_TEST

static void reset_dev(void)
{
    pthread_mutex_lock(&dev.lock);
    memset(dev.polls, 0, sizeof(dev.polls));
    dev.fail_next = 0;
    dev.sleeping = false;
    dev.refuse_code = 0;
    dev.refuse_poll_code = 0;
    dev.sets = dev.actions_run = 0;
    dev.n_log = 0;
    pthread_mutex_unlock(&dev.lock);
    state_events = availability_events = 0;
}

int main(void)
{
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("runtime");
    tcase_add_checked_fixture(tc, reset_dev, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_field_values);
    tcase_add_test(tc, test_command_is_set_and_read_back);
    tcase_add_test(tc, test_refused_write_snaps_back);
    tcase_add_test(tc, test_failures_go_offline_and_recover);
    tcase_add_test(tc, test_sleeping_device);
    tcase_add_test(tc, test_counter_guard);
    tcase_add_test(tc, test_refused_read_makes_values_unknown);
    tcase_add_test(tc, test_button_action);
    tcase_add_test(tc, test_unneeded_group_not_polled);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
