// SPDX-License-Identifier: MIT
// The hoymiles driver's configuration side: the cloud-pause presets become the scheduler's
// quiet windows, the same DTU cannot be configured twice, and a limit below the guard needs
// unsafe_timing. (Its traffic is tested against the simulated DTU: tests/integration and
// tests/scenario.)
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/diag.h"
#include "core/sched.h"

static struct config *load(const char *yaml, struct diag *d)
{
    char path[] = "/tmp/e2m-hmdrv-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    struct config *cfg = NULL;
    diag_init(d);
    int rc = config_load(path, &cfg, d);
    unlink(path);
    return rc == 0 ? cfg : NULL;
}

static bool diag_has(const struct diag *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->lines[i], needle))
            return true;
    return false;
}

static const struct {
    const char *option;
    struct sched_window want; // period, start, length; period 0 = no window
} pauses[] = {
    {"", {300000, 290000, 30000}}, // the default: 5 min from 4:50 for 30 s
    {"options: {cloud_pause: 5min}", {300000, 290000, 30000}},
    {"options: {cloud_pause: quarter}", {900000, 880000, 40000}},
    {"options: {cloud_pause: \"off\"}", {0, 0, 0}},
};

START_TEST(test_cloud_pause_presets)
{
    char yaml[300];
    snprintf(yaml, sizeof(yaml),
             "devices:\n  - id: dtu\n    model: hoymiles/hms-2t\n    host: 192.0.2.1\n    %s\n",
             pauses[_i].option);
    struct diag d;
    struct config *cfg = load(yaml, &d);
    diag_print(&d, stderr);
    ck_assert_ptr_nonnull(cfg);
    const struct device_config *dev = &cfg->devices[0];
    if (pauses[_i].want.period_ms == 0) {
        ck_assert_uint_eq(dev->n_windows, 0);
    } else {
        ck_assert_uint_eq(dev->n_windows, 1);
        ck_assert_int_eq(dev->windows[0].period_ms, pauses[_i].want.period_ms);
        ck_assert_int_eq(dev->windows[0].start_ms, pauses[_i].want.start_ms);
        ck_assert_int_eq(dev->windows[0].length_ms, pauses[_i].want.length_ms);
    }
    config_free(cfg);
    diag_free(&d);
}
END_TEST

START_TEST(test_own_windows_add_to_the_preset)
{
    struct diag d;
    struct config *cfg = load("devices:\n  - id: dtu\n    model: hoymiles/hms-2t\n"
                              "    host: 192.0.2.1\n"
                              "    options:\n      quiet_windows: [{every: 1d, start: \"23:55\", "
                              "length: 10m}]\n",
                              &d);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->devices[0].n_windows, 2);
    ck_assert_int_eq(cfg->devices[0].windows[0].period_ms, 86400000);
    ck_assert_int_eq(cfg->devices[0].windows[1].period_ms, 300000);
    config_free(cfg);
    diag_free(&d);
}
END_TEST

START_TEST(test_same_dtu_twice)
{
    struct diag d;
    struct config *cfg = load("devices:\n"
                              "  - {id: a, model: hoymiles/hms-2t, host: dtu.lan}\n"
                              "  - {id: b, model: hoymiles/hms-1t, host: DTU.lan, port: 10081}\n",
                              &d);
    ck_assert_ptr_null(cfg);
    ck_assert(diag_has(&d, "the same DTU (DTU.lan port 10081) is configured twice"));
    diag_free(&d);
    cfg = load("devices:\n"
               "  - {id: a, model: hoymiles/hms-2t, host: dtu.lan}\n"
               "  - {id: b, model: hoymiles/hms-2t, host: dtu2.lan}\n",
               &d);
    ck_assert_ptr_nonnull(cfg);
    config_free(cfg);
    diag_free(&d);
}
END_TEST

START_TEST(test_guard_lowered_only_explicitly)
{
    struct diag d;
    struct config *cfg = load("devices:\n  - id: dtu\n    model: hoymiles/hms-2t\n"
                              "    host: 192.0.2.1\n    options: {min_request_gap: 10s}\n",
                              &d);
    ck_assert_ptr_null(cfg);
    ck_assert(diag_has(&d, "below the hoymiles driver's safe minimum of 31000 ms"));
    diag_free(&d);
    cfg = load("devices:\n  - id: dtu\n    model: hoymiles/hms-2t\n"
               "    host: 192.0.2.1\n    options: {min_request_gap: 10s, unsafe_timing: true}\n",
               &d);
    ck_assert_ptr_nonnull(cfg);
    config_free(cfg);
    diag_free(&d);
    // A host is required.
    cfg = load("devices:\n  - {id: dtu, model: hoymiles/hms-2t}\n", &d);
    ck_assert_ptr_null(cfg);
    ck_assert(diag_has(&d, "host"));
    diag_free(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hoymiles_driver");
    TCase *tc = tcase_create("config");
    tcase_add_loop_test(tc, test_cloud_pause_presets, 0, sizeof(pauses) / sizeof(pauses[0]));
    tcase_add_test(tc, test_own_windows_add_to_the_preset);
    tcase_add_test(tc, test_same_dtu_twice);
    tcase_add_test(tc, test_guard_lowered_only_explicitly);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
