// SPDX-License-Identifier: MIT
// Every compiled-in driver keeps the contract of drivers/driver.h: its settings do not shadow
// the keys every device entry has, its options do not shadow the core's, fields and groups are
// consistent, and it provides the hooks its style needs.
#include <check.h>
#include <string.h>

#include "core/model.h"
#include "drivers/drivers.h"

static const char *const device_keys[] = {"id", "name", "model", "options", "disable", NULL};

static bool in(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

START_TEST(test_driver_contract)
{
    size_t n;
    const struct driver_ops *const *all = drivers_all(&n);
    ck_assert_uint_gt(n, (size_t)_i);
    const struct driver_ops *d = all[_i];
    ck_assert_ptr_eq(drivers_find(d->name), d);

    for (size_t i = 0; i < d->n_settings; i++) {
        ck_assert_msg(!in(device_keys, d->settings[i].name),
                      "%s: setting '%s' shadows a device key", d->name, d->settings[i].name);
        for (size_t k = 0; k < i; k++)
            ck_assert_str_ne(d->settings[i].name, d->settings[k].name);
    }
    for (size_t i = 0; i < d->n_options; i++) {
        ck_assert_msg(!params_find(core_option_defs, n_core_option_defs, d->options[i].name),
                      "%s: option '%s' shadows a core option", d->name, d->options[i].name);
        ck_assert_str_ne(d->options[i].name, "quiet_windows");
    }
    // A driver reads registers or fields.
    ck_assert_msg((d->n_tables > 0) != (d->n_fields > 0), "%s: tables or fields", d->name);
    ck_assert_msg(!d->n_fields || d->n_groups > 0, "%s: fields but no groups", d->name);
    ck_assert_msg(d->n_groups <= 255, "%s: too many groups", d->name);
    for (size_t g = 0; g < d->n_groups; g++) {
        ck_assert_ptr_nonnull(d->groups[g].name);
        for (size_t k = 0; k < g; k++)
            ck_assert_str_ne(d->groups[g].name, d->groups[k].name);
        // A group's interval option is one of the driver's duration options.
        if (d->groups[g].interval_option) {
            const struct param_def *o =
                params_find(d->options, d->n_options, d->groups[g].interval_option);
            ck_assert_msg(o && o->type == PARAM_DURATION && o->def && o->min > 0,
                          "%s: group %s: interval option %s is not a duration option with a "
                          "default and a positive minimum",
                          d->name, d->groups[g].name, d->groups[g].interval_option);
        }
    }
    for (size_t i = 0; i < d->n_fields; i++) {
        ck_assert_msg(d->fields[i].group < d->n_groups, "%s: field %s in no group", d->name,
                      d->fields[i].key);
        for (size_t k = 0; k < i; k++)
            ck_assert_str_ne(d->fields[i].key, d->fields[k].key);
    }
    for (size_t t = 0; t < d->n_tables; t++)
        ck_assert_uint_le(d->tables[t].limits.max_count, d->tables[t].max_count_limit);

    // The hooks the style needs.
    ck_assert_ptr_nonnull(d->open);
    ck_assert_ptr_nonnull(d->close);
    ck_assert_ptr_nonnull(d->decode);
    if (d->style == DRV_BLOCKING) {
        ck_assert_ptr_nonnull(d->run);
    } else {
        ck_assert_ptr_nonnull(d->start);
        ck_assert_ptr_nonnull(d->job);
        ck_assert_ptr_nonnull(d->abort);
    }
    // Sane timing.
    ck_assert_int_gt(d->timing.poll_ms, 0);
    ck_assert_int_ge(d->timing.poll_ms, d->timing.min_poll_ms);
    ck_assert_int_gt(d->timing.reply_timeout_ms, 0);
    ck_assert_int_gt(d->timing.backoff_min_ms, 0);
    ck_assert_int_ge(d->timing.backoff_max_ms, d->timing.backoff_min_ms);
}
END_TEST

int main(void)
{
    size_t n;
    drivers_all(&n);
    Suite *s = suite_create("drivers");
    TCase *tc = tcase_create("contract");
    tcase_add_loop_test(tc, test_driver_contract, 0, (int)n);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
