// SPDX-License-Identifier: MIT
// Tests for core/ha_rules: device classes, units, state classes, categories, Energy dashboard.
#include "core/ha_rules.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct unit_case {
    const char *component;
    const char *device_class;
    const char *unit;
    bool ok;
    const char *expected; // the human list when refused
};

static const struct unit_case unit_cases[] = {
    {"sensor", "power", "W", true, NULL},
    {"sensor", "power", "kW", true, NULL},
    {"sensor", "power", "kWh", false, "mW, W, kW, MW, GW, TW"},
    {"sensor", "power", NULL, false, "mW, W, kW, MW, GW, TW"},
    {"sensor", "power", "w", false, "mW, W, kW, MW, GW, TW"},
    {"sensor", "energy", "kWh", true, NULL},
    {"sensor", "energy", "W", false,
     "J, kJ, MJ, GJ, mWh, Wh, kWh, MWh, GWh, TWh, cal, kcal, Mcal, Gcal"},
    {"sensor", "energy_storage", "kWh", true, NULL},
    {"sensor", "temperature", "°C", true, NULL},
    {"sensor", "temperature", "C", false, "°C, °F, K"},
    {"sensor", "voltage", "\u00b5V", true, NULL},
    // The Greek mu looks the same but is not HA's micro sign.
    {"sensor", "voltage", "\u03bcV", false, "µV, mV, V, kV, MV"},
    {"sensor", "power_factor", NULL, true, NULL},
    {"sensor", "power_factor", "%", true, NULL},
    {"sensor", "power_factor", "", true, NULL},
    {"sensor", "power_factor", "W", false, "%, no unit"},
    {"sensor", "enum", "W", false, "no unit"},
    {"sensor", "enum", NULL, true, NULL},
    {"sensor", "timestamp", "s", false, "no unit"},
    {"sensor", "aqi", NULL, true, NULL},
    {"sensor", "monetary", "EUR", true, NULL},
    {"sensor", "monetary", NULL, false, "any unit"},
    {"sensor", "gas", "m³", true, NULL},
    {"sensor", "gas", "m3", false, "L, m³, ft³, CCF, MCF"},
    {"sensor", "wind_direction", "°", true, NULL},
    // No device class: any unit; unknown device class: that is another check's business.
    {"sensor", NULL, "furlongs", true, NULL},
    {"sensor", "no_such_class", "W", true, NULL},
    {"number", "power", "W", true, NULL},
    {"number", "power", "kWh", false, "mW, W, kW, MW, GW, TW"},
    {"number", "battery", "%", true, NULL},
    {"number", "current", "A", true, NULL},
    {"number", NULL, "%", true, NULL},
    {"select", "power", "kWh", true, NULL},
};

START_TEST(test_unit)
{
    const struct unit_case *c = &unit_cases[_i];
    const char *expected = "untouched";
    bool ok = ha_unit_ok(c->component, c->device_class, c->unit, &expected);

    ck_assert_msg(ok == c->ok, "%s/%s unit %s: got %d", c->component, c->device_class,
                  c->unit ? c->unit : "(none)", ok);
    if (c->ok)
        ck_assert_str_eq(expected, "untouched");
    else
        ck_assert_str_eq(expected, c->expected);
}
END_TEST

struct state_case {
    const char *device_class;
    const char *state_class;
    bool ok;
    const char *expected;
};

static const struct state_case state_cases[] = {
    {"power", "measurement", true, NULL},
    {"power", "total", false, "measurement"},
    {"energy", "measurement", false, "total, total_increasing"},
    {"energy", "total_increasing", true, NULL},
    {"energy", "total", true, NULL},
    {"energy", NULL, true, NULL},
    {"energy_storage", "measurement", true, NULL},
    {"energy_storage", "total_increasing", false, "measurement"},
    {"monetary", "total", true, NULL},
    {"monetary", "total_increasing", false, "total"},
    {"enum", "measurement", false, "no state_class"},
    {"timestamp", "total", false, "no state_class"},
    {"date", NULL, true, NULL},
    {"duration", "total_increasing", true, NULL},
    {"duration", "measurement_angle", false, "measurement, total, total_increasing"},
    {"weight", "total", true, NULL},
    {"wind_direction", "measurement_angle", true, NULL},
    {"wind_direction", "measurement", false, "measurement_angle"},
    {NULL, "measurement", true, NULL},
    {NULL, "bogus", false, "measurement, measurement_angle, total, total_increasing"},
    {"power", "Measurement", false, "measurement, measurement_angle, total, total_increasing"},
};

START_TEST(test_state_class)
{
    const struct state_case *c = &state_cases[_i];
    const char *expected = "untouched";
    bool ok = ha_state_class_ok(c->device_class, c->state_class, &expected);

    ck_assert_msg(ok == c->ok, "%s/%s: got %d", c->device_class, c->state_class, ok);
    ck_assert_str_eq(expected, c->ok ? "untouched" : c->expected);
}
END_TEST

struct device_class_case {
    const char *component;
    const char *device_class;
    bool ok;
};

static const struct device_class_case device_class_cases[] = {
    {"sensor", "power", true},
    {"sensor", "carbon_dioxide", true},
    {"sensor", "co2", false},
    {"sensor", "problem", false},
    {"sensor", "pm25", true},
    {"binary_sensor", "problem", true},
    {"binary_sensor", "connectivity", true},
    {"binary_sensor", "power", true},
    {"binary_sensor", "voltage", false},
    {"switch", "outlet", true},
    {"switch", "relay", false},
    {"button", "restart", true},
    {"button", "reboot", false},
    {"number", "power", true},
    {"number", "enum", false},
    {"number", "timestamp", false},
    {"select", "power", false},
    {"select", NULL, true},
    {"light", NULL, false},
    {"sensor", NULL, true},
};

START_TEST(test_device_class)
{
    const struct device_class_case *c = &device_class_cases[_i];

    ck_assert_msg(ha_device_class_ok(c->component, c->device_class) == c->ok, "%s/%s", c->component,
                  c->device_class);
}
END_TEST

struct category_case {
    const char *component;
    const char *category;
    bool ok;
};

static const struct category_case category_cases[] = {
    {"sensor", "diagnostic", true},
    {"sensor", "config", false},
    {"binary_sensor", "config", false},
    {"binary_sensor", "diagnostic", true},
    {"number", "config", true},
    {"switch", "config", true},
    {"button", "config", true},
    {"select", "config", true},
    {"number", "settings", false},
    {"sensor", "Diagnostic", false},
    {"sensor", NULL, true},
};

START_TEST(test_entity_category)
{
    const struct category_case *c = &category_cases[_i];

    ck_assert_msg(ha_entity_category_ok(c->component, c->category) == c->ok, "%s/%s", c->component,
                  c->category);
}
END_TEST

struct energy_case {
    const char *device_class;
    const char *unit;
    const char *state_class;
    const char *inputs; // NULL = not offered
};

static const struct energy_case energy_cases[] = {
    {"energy", "kWh", "total_increasing", "grid, solar, battery, device consumption"},
    {"energy", "Wh", "total", "grid, solar, battery, device consumption"},
    {"energy", "kWh", "measurement", NULL},
    {"energy", "kW", "total_increasing", NULL},
    {"energy", NULL, "total_increasing", NULL},
    {"energy_storage", "kWh", "measurement", NULL},
    {"power", "W", "measurement", "power"},
    {"power", "kW", "measurement", "power"},
    {"power", "W", NULL, NULL},
    {"power", "W", "total", NULL},
    {"battery", "%", "measurement", "battery state of charge"},
    {"gas", "m³", "total_increasing", "gas"},
    {"water", "L", "total", "water"},
    {"voltage", "V", "measurement", NULL},
    {NULL, "kWh", "total_increasing", NULL},
};

START_TEST(test_energy_inputs)
{
    const struct energy_case *c = &energy_cases[_i];
    const char *got = ha_energy_inputs(c->device_class, c->unit, c->state_class);

    if (c->inputs)
        ck_assert_pstr_eq(got, c->inputs);
    else
        ck_assert_msg(got == NULL, "%s %s %s offered as %s", c->device_class, c->unit,
                      c->state_class, got);
}
END_TEST

static const char *const components_ours[] = {"sensor", "binary_sensor", "number", "select",
                                              "switch", "button",        "text"};
static const char *const components_not_ours[] = {"light", "device", "time", "Sensor", ""};

START_TEST(test_component)
{
    for (size_t i = 0; i < COUNT(components_ours); i++)
        ck_assert_msg(ha_component_ok(components_ours[i]), "%s", components_ours[i]);
    for (size_t i = 0; i < COUNT(components_not_ours); i++)
        ck_assert_msg(!ha_component_ok(components_not_ours[i]), "%s", components_not_ours[i]);
    ck_assert(!ha_component_ok(NULL));
}
END_TEST

START_TEST(test_state_class_known)
{
    ck_assert(ha_state_class_known("measurement"));
    ck_assert(ha_state_class_known("measurement_angle"));
    ck_assert(ha_state_class_known("total"));
    ck_assert(ha_state_class_known("total_increasing"));
    ck_assert(!ha_state_class_known("totals"));
    ck_assert(!ha_state_class_known(""));
    ck_assert(!ha_state_class_known(NULL));
}
END_TEST

START_TEST(test_version_and_null_expected)
{
    ck_assert_str_eq(ha_rules_version(), "2026.10");
    // The expected pointer is optional.
    ck_assert(!ha_unit_ok("sensor", "power", "kWh", NULL));
    ck_assert(!ha_state_class_ok("energy", "measurement", NULL));
}
END_TEST

static Suite *ha_rules_suite(void)
{
    Suite *s = suite_create("ha_rules");
    TCase *tc = tcase_create("tables");

    tcase_add_loop_test(tc, test_unit, 0, (int)COUNT(unit_cases));
    tcase_add_loop_test(tc, test_state_class, 0, (int)COUNT(state_cases));
    tcase_add_loop_test(tc, test_device_class, 0, (int)COUNT(device_class_cases));
    tcase_add_loop_test(tc, test_entity_category, 0, (int)COUNT(category_cases));
    tcase_add_loop_test(tc, test_energy_inputs, 0, (int)COUNT(energy_cases));
    tcase_add_test(tc, test_component);
    tcase_add_test(tc, test_state_class_known);
    tcase_add_test(tc, test_version_and_null_expected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ha_rules_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
