// SPDX-License-Identifier: MIT
// Unit tests for loading the user's configuration (core/config): YAML and JSON give the same
// result, every problem is reported as "file:line:column: key: message", options layer from
// driver to model to device, and environment variables and secret files are read.
//
// The built-in Modbus driver has no minimum poll interval or request gap above the core
// limits, so these tests also register a test driver, "slowbus", that has both. They do it by
// defining the registry functions (drivers_find, drivers_all) here: the linker then takes
// these instead of src/drivers/drivers.c, for this executable only.
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/model.h"
#include "drivers/drivers.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define DATA_DIR     E2M_SOURCE_DIR "/tests/unit/data"
#define ENTITIES_DIR DATA_DIR "/entities"

// ---- The test driver ----------------------------------------------------------------------

static const struct param_def slow_settings[] = {
    {.name = "host", .type = PARAM_STR, .required = true},
};

static const struct drv_table slow_tables[] = {
    {"holding", false, true, 999, {100, 0, 0}, 100},
};

static int slow_open(const struct drv_device *dev, void **state)
{
    *state = NULL;
    return 0;
}

static void slow_close(void *state)
{
}

static void slow_run(void *state, const struct drv_job *job, struct drv_result *res)
{
    res->status = DRV_ERR_IO;
}

static const struct driver_ops slowbus_driver = {
    .name = "slowbus",
    .summary = "test driver with strict timing",
    .settings = slow_settings,
    .n_settings = N(slow_settings),
    .tables = slow_tables,
    .n_tables = N(slow_tables),
    .timing =
        {
            .min_gap_ms = 2000,
            .poll_ms = 35000,
            .min_poll_ms = 30000,
            .reply_timeout_ms = 5000,
            .connect_timeout_ms = 5000,
            .backoff_min_ms = 5000,
            .backoff_max_ms = 300000,
        },
    .open = slow_open,
    .close = slow_close,
    .run = slow_run,
};

extern const struct driver_ops modbus_driver;

static const struct driver_ops *const all_drivers[] = {&modbus_driver, &slowbus_driver};

const struct driver_ops *drivers_find(const char *name)
{
    for (size_t i = 0; i < N(all_drivers); i++)
        if (strcmp(all_drivers[i]->name, name) == 0)
            return all_drivers[i];
    return NULL;
}

const struct driver_ops *const *drivers_all(size_t *n)
{
    *n = N(all_drivers);
    return all_drivers;
}

// ---- Fixture ------------------------------------------------------------------------------

// Removes `p` and everything below it (test directories only; symlinks are not followed).
static void rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name);
            rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(p);
    } else {
        unlink(p);
    }
}

// Every test works in a fresh directory under `base`, which main() creates and removes, so
// a failing test (whose teardown does not run) leaves nothing behind either.
static char base[PATH_MAX - 32];

static void make_base(const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof(base), "%s/e2m-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        exit(1);
    }
}

static char dir[PATH_MAX];
static char path[PATH_MAX + 64];
static struct diag diag;
static struct config *cfg;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "%s/t-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    setenv("E2M_TEST_ENTITIES", ENTITIES_DIR, 1);
    unsetenv("E2M_ENTITIES_DIR");
    unsetenv("E2M_TEST_PASSWORD");
    diag_init(&diag);
    cfg = NULL;
}

static void teardown(void)
{
    config_free(cfg);
    diag_free(&diag);
    rm_tree(dir);
}

static void write_text(const char *file, const char *text)
{
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void dump_diag(void)
{
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "  %s\n", diag.lines[i]);
}

static int load_text(const char *text)
{
    write_text(path, text);
    config_free(cfg);
    cfg = NULL;
    return config_load(path, &cfg, &diag);
}

static struct config *load_ok(const char *text)
{
    int rc = load_text(text);
    if (rc)
        dump_diag();
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

// Asserts the diagnostics are exactly `want` (each without the "<path>:" in front).
static void assert_diag(const char *const *want, size_t n)
{
    if (diag.n != n)
        dump_diag();
    ck_assert_uint_eq(diag.n, n);
    for (size_t i = 0; i < n; i++) {
        char full[PATH_MAX + 600];
        snprintf(full, sizeof(full), "%s:%s", path, want[i]);
        ck_assert_str_eq(diag.lines[i], full);
    }
}

static const struct device_config *device(const char *id)
{
    const struct device_config *d = config_find_device(cfg, id);
    ck_assert_msg(d != NULL, "no device %s", id);
    return d;
}

// A device entry of the meter model starting on line 3, for cases that add lines after it.
#define DEVICE_HEAD                                                                                \
    "entities_dir: ${E2M_TEST_ENTITIES}\n"                                                         \
    "devices:\n"                                                                                   \
    "  - id: m1\n"                                                                                 \
    "    model: test/meter\n"                                                                      \
    "    host: 10.0.0.1\n"

#define URL_MSG(url)                                                                               \
    "2:8: mqtt.url: expected mqtt://host[:port] or mqtts://host[:port] (credentials go in "        \
    "username and password), got '" url "'"

struct error_case {
    const char *name;
    const char *text;
    const char *msgs[3];
};

static const struct error_case errors[] = {
    {"max_registers above the protocol's limit",
     DEVICE_HEAD "    options: {max_registers: 126}\n",
     {"6:30: devices[0].options.max_registers: the modbus driver reads at most 125 holding "
      "registers at a time, got 126"}},
    {"the same device twice",
     DEVICE_HEAD "  - {id: m2, model: test/meter, host: 10.0.0.1}\n",
     {"6:5: devices[1]: the same Modbus device (10.0.0.1:502, unit 1) is configured twice "
      "(device 'm1', line 3)"}},
    {"unknown top-level key",
     "mqtt:\n  url: mqtt://a\ndevice: []\n",
     {"3:1: device: unknown key (did you mean 'devices'?)"}},
    {"unknown mqtt key",
     "mqtt:\n  usrename: a\n",
     {"2:3: mqtt.usrename: unknown key (did you mean 'username'?)"}},
    {"http url", "mqtt:\n  url: http://broker\n", {URL_MSG("http://broker")}},
    {"port 0", "mqtt:\n  url: mqtt://broker:0\n", {URL_MSG("mqtt://broker:0")}},
    {"port 70000", "mqtt:\n  url: mqtt://broker:70000\n", {URL_MSG("mqtt://broker:70000")}},
    {"empty port", "mqtt:\n  url: \"mqtt://broker:\"\n", {URL_MSG("mqtt://broker:")}},
    {"no host", "mqtt:\n  url: mqtts://:8883\n", {URL_MSG("mqtts://:8883")}},
    {"a path", "mqtt:\n  url: mqtt://broker/x\n", {URL_MSG("mqtt://broker/x")}},
    {"base_topic with +",
     "mqtt:\n  base_topic: a+b\n",
     {"2:15: mqtt.base_topic: expected a topic without + # or leading/trailing /, got 'a+b'"}},
    {"base_topic with #",
     "mqtt:\n  base_topic: \"e2m/#\"\n",
     {"2:15: mqtt.base_topic: expected a topic without + # or leading/trailing /, got 'e2m/#'"}},
    {"base_topic with a trailing slash",
     "mqtt:\n  base_topic: e2m/\n",
     {"2:15: mqtt.base_topic: expected a topic without + # or leading/trailing /, got 'e2m/'"}},
    {"empty base_topic",
     "mqtt:\n  base_topic: ''\n",
     {"2:15: mqtt.base_topic: expected a topic without + # or leading/trailing /, got ''"}},
    {"discovery_prefix with +",
     "mqtt:\n  discovery_prefix: /ha\n",
     {"2:21: mqtt.discovery_prefix: expected a topic without + # or leading/trailing /, got "
      "'/ha'"}},
    {"discovery mode",
     "mqtt:\n  discovery: per-entity\n",
     {"2:14: mqtt.discovery: expected one of device, entity, got 'per-entity'"}},
    {"keepalive range",
     "mqtt:\n  keepalive: 2s\n",
     {"2:14: mqtt.keepalive: expected a duration from 5s to 3600s, got '2s'"}},
    {"cert without key",
     "mqtt:\n  cert_file: /c.pem\n",
     {"2:3: mqtt: cert_file and key_file go together"}},
    {"mqtt not a map", "mqtt: broker\n", {"1:7: mqtt: expected a mapping of keys, got a value"}},
    {"log level",
     "log_level: loud\n",
     {"1:12: log_level: expected error, warning, info, debug or trace, got 'loud'"}},
    {"duplicate device id",
     DEVICE_HEAD "  - id: m1\n"
                 "    model: test/meter\n"
                 "    host: 10.0.0.2\n",
     {"6:9: devices[1].id: duplicate device id (first used at line 3)"}},
    {"reserved id",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: bridge\n"
     "    model: test/meter\n"
     "    host: 10.0.0.1\n",
     {"3:9: devices[0].id: 'bridge' is reserved for energy2mqtt itself"}},
    {"id with capitals",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: Meter_1\n"
     "    model: test/meter\n"
     "    host: 10.0.0.1\n",
     {"3:9: devices[0].id: expected 1-64 characters of a-z, 0-9, _ and -, got 'Meter_1'"}},
    {"id with a slash",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: a/b\n"
     "    model: test/meter\n"
     "    host: 10.0.0.1\n",
     {"3:9: devices[0].id: expected 1-64 characters of a-z, 0-9, _ and -, got 'a/b'"}},
    {"id too long",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: a2345678901234567890123456789012345678901234567890123456789012345\n"
     "    model: test/meter\n"
     "    host: 10.0.0.1\n",
     {"3:9: devices[0].id: expected 1-64 characters of a-z, 0-9, _ and -, got "
      "'a2345678901234567890123456789012345678901234567890123456789012345'"}},
    {"missing id",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - model: test/meter\n"
     "    host: 10.0.0.1\n",
     {"3:5: devices[0].id: required key is missing"}},
    {"missing model",
     "devices:\n"
     "  - id: m1\n"
     "    host: 10.0.0.1\n",
     {"2:5: devices[0].model: required key is missing"}},
    {"devices not a list",
     "devices: {id: m1}\n",
     {"1:10: devices: expected a list, got a mapping"}},
    {"unknown driver setting",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: m1\n"
     "    model: test/meter\n"
     "    hots: 10.0.0.1\n",
     {"5:5: devices[0].hots: unknown key (did you mean 'host'?)",
      "3:5: devices[0]: give host (Modbus TCP) or device (Modbus RTU), exactly one"}},
    {"setting out of range",
     DEVICE_HEAD "    port: 70000\n",
     {"6:11: devices[0].port: expected a whole number from 1 to 65535, got 70000"}},
    {"setting choice",
     DEVICE_HEAD "    parity: mark\n",
     {"6:13: devices[0].parity: expected one of none, even, odd, got 'mark'"}},
    {"host and device",
     DEVICE_HEAD "    device: /dev/ttyUSB0\n",
     {"3:5: devices[0]: give host (Modbus TCP) or device (Modbus RTU), exactly one"}},
    {"RTU unit 0",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: m1\n"
     "    model: test/meter\n"
     "    device: /dev/ttyUSB0\n"
     "    unit_id: 0\n",
     {"3:5: devices[0]: unit_id on a serial bus must be 1-247, got 0"}},
    {"bad duration",
     DEVICE_HEAD "    options: {poll_interval: 5y}\n",
     {"6:30: devices[0].options.poll_interval: expected a duration such as 250ms, 35s, 5m or 1h, "
      "got '5y'"}},
    {"option out of range",
     DEVICE_HEAD "    options: {offline_after: 0}\n",
     {"6:30: devices[0].options.offline_after: expected a whole number from 1 to 1000, got 0"}},
    {"poll_interval below the driver minimum",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: s1\n"
     "    model: test/slow\n"
     "    host: 10.0.0.1\n"
     "    options: {poll_interval: 10s}\n",
     {"6:30: devices[0].options.poll_interval: the slowbus driver polls at most every 30000 ms"}},
    {"min_request_gap below the driver minimum",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: s1\n"
     "    model: test/slow\n"
     "    host: 10.0.0.1\n"
     "    options: {min_request_gap: 500ms}\n",
     {"6:32: devices[0].options.min_request_gap: below the slowbus driver's safe minimum of 2000 "
      "ms; set unsafe_timing: true to allow it"}},
    {"required driver setting",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: s1\n"
     "    model: test/slow\n",
     {"3:5: devices[0].host: required key is missing"}},
    {"backoff_max below backoff_min",
     DEVICE_HEAD "    options: {backoff_min: 10s, backoff_max: 5s}\n",
     // Reported once, by the scheduler's own check of the resolved timing.
     {"3:5: devices[0].options: the backoff floor must be positive and not above its ceiling"}},
    {"disable an unknown entity",
     DEVICE_HEAD "    disable: [voltage, voltag]\n",
     {"6:24: devices[0].disable[1]: model test/meter has no entity 'voltag'"}},
    {"disable not a list",
     DEVICE_HEAD "    disable: voltage\n",
     {"6:14: devices[0].disable: expected a list, got a value"}},
    {"quiet window outside its period",
     DEVICE_HEAD "    options:\n"
                 "      quiet_windows:\n"
                 "        - {every: 5m, start: \"6:00\", length: 20s}\n",
     {"8:11: devices[0].options.quiet_windows[0]: the window must start and end inside 'every'"}},
    {"quiet window start",
     DEVICE_HEAD "    options:\n"
                 "      quiet_windows:\n"
                 "        - {every: 5m, start: soon, length: 20s}\n",
     {"8:30: devices[0].options.quiet_windows[0].start: expected an offset into the period such "
      "as 4:50 (m:ss), 23:55 (h:mm) or 4m50s, got 'soon'"}},
    {"quiet window without length",
     DEVICE_HEAD "    options:\n"
                 "      quiet_windows:\n"
                 "        - {every: 5m, start: \"4:50\", lenght: 20s}\n",
     {"8:38: devices[0].options.quiet_windows[0].lenght: unknown key (did you mean 'length'?)",
      "8:11: devices[0].options.quiet_windows[0].length: required key is missing"}},
    {"quiet_windows not a list",
     DEVICE_HEAD "    options: {quiet_windows: 5m}\n",
     {"6:30: devices[0].options.quiet_windows: expected a list, got a value"}},
    {"unset environment variable",
     "entities_dir: ${E2M_TEST_ENTITIES}\n"
     "devices:\n"
     "  - id: m1\n"
     "    model: test/meter\n"
     "    host: ${E2M_TEST_UNSET_HOST}\n",
     {"5:11: devices[0].host: environment variable E2M_TEST_UNSET_HOST is not set",
      "3:5: devices[0]: give host (Modbus TCP) or device (Modbus RTU), exactly one"}},
    {"password and password_file",
     "mqtt:\n  password: a\n  password_file: /run/secrets/mqtt\n",
     {"3:18: mqtt.password_file: give password or password_file, not both"}},
    {"password_file missing",
     "mqtt:\n  password_file: /nonexistent/e2m-secret\n",
     {"2:18: mqtt.password_file: cannot read /nonexistent/e2m-secret: No such file or directory"}},
    {"duplicate YAML key",
     "mqtt: {}\nlog_level: info\nmqtt: {}\n",
     {"3:1: mqtt: duplicate key (first given at line 1)"}},
    {"YAML syntax error",
     "mqtt:\n  url: mqtt://broker:\n",
     {"2:21: (document): mapping values are not allowed in this context"}},
    {"empty file", "", {"1:1: (document): the configuration is empty"}},
    {"only comments", "# nothing here\n", {"1:1: (document): the configuration is empty"}},
    {"not a map", "- a\n- b\n", {"1:1: (document): expected a mapping of keys, got a list"}},
};

START_TEST(test_error)
{
    const struct error_case *c = &errors[_i];
    ck_assert_msg(load_text(c->text) == -EINVAL, "%s: loaded", c->name);
    ck_assert_ptr_null(cfg);
    size_t n = 0;
    while (n < N(c->msgs) && c->msgs[n])
        n++;
    assert_diag(c->msgs, n);
}
END_TEST

// A URL with credentials is refused, and the refusal must not repeat the password.
START_TEST(test_url_credentials_refused_quietly)
{
    ck_assert_int_eq(load_text("mqtt:\n  url: mqtt://ha:Sup3rSecret@broker:1883\n"), -EINVAL);
    ck_assert_uint_eq(diag.n, 1);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof(want), "%s:2:8: mqtt.url: expected mqtt://host[:port]", path);
    ck_assert_msg(strncmp(diag.lines[0], want, strlen(want)) == 0, "got %s", diag.lines[0]);
    ck_assert_msg(strstr(diag.lines[0], "Sup3rSecret") == NULL, "the password leaks: %s",
                  diag.lines[0]);
}
END_TEST

// The unknown-model message lists every directory searched, the built-in one last.
START_TEST(test_unknown_model_lists_dirs)
{
    load_ok("entities_dir: /nowhere\n");
    ck_assert_uint_eq(cfg->n_entity_dirs, 2);
    ck_assert_str_eq(cfg->entity_dirs[0], "/nowhere");
    char builtin[PATH_MAX];
    snprintf(builtin, sizeof(builtin), "%s", cfg->entity_dirs[1]);

    ck_assert_int_eq(load_text("entities_dir: ${E2M_TEST_ENTITIES}\n"
                               "devices:\n"
                               "  - id: m1\n"
                               "    model: test/nope\n"
                               "    host: 10.0.0.1\n"),
                     -EINVAL);
    char want[3 * PATH_MAX];
    snprintf(want, sizeof(want),
             "4:12: devices[0].model: no entity definition 'test/nope' (expected vendor/model, a "
             "file <dir>/test/nope.yaml in: %s, %s)",
             ENTITIES_DIR, builtin);
    const char *w = want;
    assert_diag(&w, 1);

    // E2M_ENTITIES_DIR comes between the configured directories and the built-in one.
    diag_free(&diag);
    diag_init(&diag);
    setenv("E2M_ENTITIES_DIR", "/from/env", 1);
    ck_assert_int_eq(load_text("entities_dir: [/a, /b]\n"
                               "devices:\n"
                               "  - id: m1\n"
                               "    model: nope\n"),
                     -EINVAL);
    snprintf(want, sizeof(want),
             "4:12: devices[0].model: no entity definition 'nope' (expected vendor/model, a file "
             "<dir>/nope.yaml in: /a, /b, /from/env, %s)",
             builtin);
    assert_diag(&w, 1);
    unsetenv("E2M_ENTITIES_DIR");
}
END_TEST

// The same model used by several devices is loaded and reported once.
START_TEST(test_model_errors_reported_once)
{
    ck_assert_int_eq(load_text("entities_dir: ${E2M_TEST_ENTITIES}\n"
                               "devices:\n"
                               "  - {id: a, model: test/nope, host: x}\n"
                               "  - {id: b, model: test/nope, host: y}\n"),
                     -EINVAL);
    ck_assert_uint_eq(diag.n, 1);
    ck_assert_ptr_nonnull(strstr(diag.lines[0], ":3:20: devices[0].model: no entity"));
}
END_TEST

START_TEST(test_unknown_option_lists_known)
{
    ck_assert_int_eq(load_text(DEVICE_HEAD "    options: {pol_interval: 5s}\n"), -EINVAL);
    ck_assert_uint_eq(diag.n, 1);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof(want),
             "%s:6:15: devices[0].options.pol_interval: unknown option for driver modbus (known: "
             "quiet_windows, poll_interval, ",
             path);
    ck_assert_msg(strncmp(diag.lines[0], want, strlen(want)) == 0, "got %s", diag.lines[0]);
    ck_assert_ptr_nonnull(strstr(diag.lines[0], "write_function)"));
}
END_TEST

// A too-fast poll interval set by the model file is reported at its place in that file.
START_TEST(test_driver_minimum_from_model_file)
{
    ck_assert_int_eq(load_text("entities_dir: ${E2M_TEST_ENTITIES}\n"
                               "devices:\n"
                               "  - id: s1\n"
                               "    model: test/slowfast\n"
                               "    host: 10.0.0.1\n"),
                     -EINVAL);
    ck_assert_uint_eq(diag.n, 1);
    ck_assert_str_eq(diag.lines[0], ENTITIES_DIR "/test/slowfast.yaml:8:18: "
                                                 "devices[0].options.poll_interval: the slowbus "
                                                 "driver polls at most every 30000 ms");
    // The device may fix it.
    diag_free(&diag);
    diag_init(&diag);
    load_ok("entities_dir: ${E2M_TEST_ENTITIES}\n"
            "devices:\n"
            "  - id: s1\n"
            "    model: test/slowfast\n"
            "    host: 10.0.0.1\n"
            "    options: {poll_interval: 1m}\n");
    ck_assert_int_eq(params_ms(&device("s1")->core_options, "poll_interval"), 60000);
}
END_TEST

START_TEST(test_unsafe_timing_allows_short_gap)
{
    load_ok("entities_dir: ${E2M_TEST_ENTITIES}\n"
            "devices:\n"
            "  - id: s1\n"
            "    model: test/slow\n"
            "    host: 10.0.0.1\n"
            "    options: {min_request_gap: 500ms, unsafe_timing: true}\n"
            "  - id: s2\n"
            "    model: test/slow\n"
            "    host: 10.0.0.2\n");
    ck_assert_int_eq(params_ms(&device("s1")->core_options, "min_request_gap"), 500);
    // Driver defaults where nothing else is said.
    const struct params *o = &device("s2")->core_options;
    ck_assert_int_eq(params_ms(o, "min_request_gap"), 2000);
    ck_assert_int_eq(params_ms(o, "poll_interval"), 35000);
    ck_assert_int_eq(params_ms(o, "reply_timeout"), 5000);
    ck_assert_int_eq(params_ms(o, "backoff_max"), 300000);
    ck_assert_int_eq(params_ms(o, "stale_after"), 105000);
}
END_TEST

// Driver default < model options < device options; an explicit null goes back to the driver.
START_TEST(test_option_layering)
{
    load_ok("entities_dir: ${E2M_TEST_ENTITIES}\n"
            "devices:\n"
            "  - {id: a, model: test/meter, host: x, unit_id: 1}\n"
            "  - id: b\n"
            "    model: test/meter\n"
            "    host: x\n"
            "    unit_id: 2\n"
            "    options:\n"
            "      poll_interval: 30s\n"
            "      reply_timeout: 2s\n"
            "      write_retries: 5\n"
            "      write_function: multiple\n"
            "  - {id: c, model: test/plain, host: x, unit_id: 3}\n"
            "  - {id: d, model: test/plain, host: x, unit_id: 4, options: {poll_interval: 1m, "
            "stale_after: 10s}}\n"
            "  - {id: e, model: test/meter, host: x, unit_id: 5, options: {poll_interval: ~}}\n");
    const struct params *a = &device("a")->core_options, *b = &device("b")->core_options,
                        *c = &device("c")->core_options, *d = &device("d")->core_options,
                        *e = &device("e")->core_options;
    // poll_interval: model 20s, device 30s, driver 10s.
    ck_assert_int_eq(params_ms(a, "poll_interval"), 20000);
    ck_assert_int_eq(params_ms(b, "poll_interval"), 30000);
    ck_assert_int_eq(params_ms(c, "poll_interval"), 10000);
    ck_assert_int_eq(params_ms(d, "poll_interval"), 60000);
    ck_assert_int_eq(params_ms(e, "poll_interval"), 10000);
    // Where the value came from.
    const struct param_value *pv = params_value(a, "poll_interval");
    ck_assert_ptr_nonnull(pv);
    ck_assert_str_eq(pv->file, ENTITIES_DIR "/test/meter.yaml");
    ck_assert_uint_eq(pv->line, 9);
    pv = params_value(b, "poll_interval");
    ck_assert_str_eq(pv->file, path);
    ck_assert_uint_eq(pv->line, 9);
    // Timing the model leaves alone comes from the driver.
    ck_assert_int_eq(params_ms(a, "reply_timeout"), 1000);
    ck_assert_int_eq(params_ms(b, "reply_timeout"), 2000);
    ck_assert_int_eq(params_ms(a, "connect_timeout"), 3000);
    ck_assert_int_eq(params_ms(a, "min_request_gap"), 0);
    // Core defaults.
    ck_assert_int_eq(params_int(a, "write_retries"), 2);
    ck_assert_int_eq(params_int(b, "write_retries"), 5);
    ck_assert_int_eq(params_int(a, "offline_after"), 3);
    // Driver options: driver default auto (0), model single (1), device multiple (2).
    ck_assert_int_eq(params_choice(&device("a")->driver_options, "write_function"), 1);
    ck_assert_int_eq(params_choice(&device("b")->driver_options, "write_function"), 2);
    ck_assert_int_eq(params_choice(&device("c")->driver_options, "write_function"), 0);
    // The model's own option set is not changed by a device.
    const struct model *m = device("b")->model;
    ck_assert_ptr_eq(m, device("a")->model); // loaded once
    ck_assert_int_eq(params_ms(&m->core_options, "poll_interval"), 20000);
    ck_assert_int_eq(params_choice(&m->driver_options, "write_function"), 1);
    // stale_after: 3 poll intervals, at least a minute, unless given.
    ck_assert_int_eq(params_ms(a, "stale_after"), 60000);
    ck_assert_int_eq(params_ms(b, "stale_after"), 90000);
    ck_assert_int_eq(params_ms(c, "stale_after"), 60000);
    ck_assert_int_eq(params_ms(d, "stale_after"), 10000);
}
END_TEST

START_TEST(test_settings_and_disable)
{
    load_ok(DEVICE_HEAD "    name: Main meter\n"
                        "    port: 1502\n"
                        "    unit_id: 0\n"
                        "    disable: [voltage, reset]\n"
                        "  - id: rtu-2\n"
                        "    model: test/meter\n"
                        "    device: /dev/ttyUSB0\n"
                        "    baud: 19200\n"
                        "    parity: even\n");
    const struct device_config *m1 = device("m1");
    ck_assert_str_eq(m1->name, "Main meter");
    ck_assert_str_eq(m1->model_key, "test/meter");
    ck_assert_str_eq(params_str(&m1->settings, "host"), "10.0.0.1");
    ck_assert_int_eq(params_int(&m1->settings, "port"), 1502);
    ck_assert_int_eq(params_int(&m1->settings, "unit_id"), 0); // fine over TCP
    ck_assert_uint_eq(m1->line, 3);
    ck_assert_uint_eq(m1->col, 5);
    const struct model *m = m1->model;
    for (size_t i = 0; i < m->n_entities; i++) {
        bool off =
            strcmp(m->entities[i].id, "voltage") == 0 || strcmp(m->entities[i].id, "reset") == 0;
        ck_assert_msg(m1->disabled[i] == off, "%s", m->entities[i].id);
    }
    const struct device_config *rtu = device("rtu-2");
    ck_assert_str_eq(rtu->name, "rtu-2"); // the id when no name is given
    ck_assert_ptr_null(params_str(&rtu->settings, "host"));
    ck_assert_int_eq(params_int(&rtu->settings, "baud"), 19200);
    ck_assert_int_eq(params_choice(&rtu->settings, "parity"), 1);
    ck_assert_int_eq(params_int(&rtu->settings, "port"), 502);
    for (size_t i = 0; i < m->n_entities; i++)
        ck_assert(!rtu->disabled[i]);
    ck_assert_ptr_null(config_find_device(cfg, "nope"));
    ck_assert_uint_eq(cfg->n_devices, 2);
}
END_TEST

START_TEST(test_defaults)
{
    load_ok("# nothing but a comment and an empty device list\ndevices: []\n");
    const struct mqtt_config *m = &cfg->mqtt;
    ck_assert_str_eq(m->url, "mqtt://127.0.0.1:1883");
    ck_assert_str_eq(m->host, "127.0.0.1");
    ck_assert_int_eq(m->port, 1883);
    ck_assert(!m->tls);
    ck_assert_str_eq(m->base_topic, "energy2mqtt");
    ck_assert_str_eq(m->discovery_prefix, "homeassistant");
    ck_assert_int_eq(m->discovery, DISCOVERY_DEVICE);
    ck_assert_int_eq(m->keepalive_ms, 30000);
    ck_assert_str_eq(m->birth_topic, "homeassistant/status");
    ck_assert_ptr_null(m->username);
    ck_assert_ptr_null(m->password);
    ck_assert_ptr_null(m->client_id);
    ck_assert_int_eq(cfg->log_level, -1);
    ck_assert_uint_eq(cfg->n_devices, 0);
    // state_dir defaults to the configuration file's directory.
    ck_assert_str_eq(cfg->state_dir, dir);
    ck_assert_str_eq(cfg->file, path);

    load_ok("state_dir: /var/lib/e2m\n");
    ck_assert_str_eq(cfg->state_dir, "/var/lib/e2m");
}
END_TEST

struct url_case {
    const char *url;
    const char *host;
    int port;
    bool tls;
};

static const struct url_case urls[] = {
    {"mqtt://broker", "broker", 1883, false},
    {"tcp://10.0.0.5:1884", "10.0.0.5", 1884, false},
    {"mqtts://broker.example.com", "broker.example.com", 8883, true},
    {"ssl://b:8884", "b", 8884, true},
    {"mqtt://b:65535", "b", 65535, false},
    {"mqtt://b:1", "b", 1, false},
};

START_TEST(test_urls)
{
    const struct url_case *u = &urls[_i];
    char text[256];
    snprintf(text, sizeof(text), "mqtt:\n  url: %s\n", u->url);
    load_ok(text);
    ck_assert_str_eq(cfg->mqtt.url, u->url);
    ck_assert_str_eq(cfg->mqtt.host, u->host);
    ck_assert_int_eq(cfg->mqtt.port, u->port);
    ck_assert_int_eq(cfg->mqtt.tls, u->tls);
}
END_TEST

struct http_case {
    const char *yaml; // the value of `http:`
    const char *address;
    int port;
    size_t n_allow;
    const char *error; // NULL: valid
};

static const struct http_case https[] = {
    {"{listen: '127.0.0.1:8099'}", "127.0.0.1", 8099, 0, NULL},
    {"8100", "127.0.0.1", 8100, 0, NULL},
    {"{listen: ':8101'}", "127.0.0.1", 8101, 0, NULL},
    {"{listen: '0.0.0.0:8099', allow: [172.30.32.2, 127.0.0.1]}", "0.0.0.0", 8099, 2, NULL},
    {"{listen: '[::1]:8099'}", "::1", 8099, 0, NULL},
    {"{listen: 'localhost:8099'}", NULL, 0, 0, "http.listen: expected [address:]port"},
    {"{listen: '127.0.0.1:0'}", NULL, 0, 0, "http.listen: expected [address:]port"},
    {"{listen: '127.0.0.1:70000'}", NULL, 0, 0, "http.listen: expected"},
    {"{listen: '8099', allow: [somehost]}", NULL, 0, 0, "http.allow[0]: expected a numeric"},
    {"{port: 8099}", NULL, 0, 0, "http.port: unknown key"},
};

START_TEST(test_http)
{
    const struct http_case *h = &https[_i];
    char text[256];
    snprintf(text, sizeof(text), "http: %s\n", h->yaml);
    if (!h->error) {
        load_ok(text);
        ck_assert_str_eq(cfg->http.address, h->address);
        ck_assert_int_eq(cfg->http.port, h->port);
        ck_assert_uint_eq(cfg->http.n_allow, h->n_allow);
        return;
    }
    ck_assert_int_lt(load_text(text), 0);
    bool found = false;
    for (size_t i = 0; i < diag.n; i++)
        found |= strstr(diag.lines[i], h->error) != NULL;
    ck_assert_msg(found, "no '%s' in %s", h->error, diag.n ? diag.lines[0] : "(nothing)");
}
END_TEST

START_TEST(test_http_off_by_default)
{
    load_ok("mqtt: {url: 'mqtt://b'}\n");
    ck_assert_int_eq(cfg->http.port, 0);
}
END_TEST

START_TEST(test_env_expansion)
{
    setenv("E2M_TEST_HOST", "10.1.2.3", 1);
    setenv("E2M_TEST_BROKER", "broker.lan", 1);
    unsetenv("E2M_TEST_UNSET_PORT");
    load_ok("mqtt:\n"
            "  url: mqtt://${E2M_TEST_BROKER}:${E2M_TEST_UNSET_PORT:-1999}\n"
            "  username: ${E2M_TEST_UNSET_USER:-ha}\n"
            "entities_dir: ${E2M_TEST_ENTITIES}\n"
            "devices:\n"
            "  - id: m1\n"
            "    model: test/meter\n"
            "    host: ${E2M_TEST_HOST}\n"
            "    port: ${E2M_TEST_UNSET_PORT:-1502}\n");
    ck_assert_str_eq(cfg->mqtt.host, "broker.lan");
    ck_assert_int_eq(cfg->mqtt.port, 1999);
    ck_assert_str_eq(cfg->mqtt.username, "ha");
    ck_assert_str_eq(params_str(&device("m1")->settings, "host"), "10.1.2.3");
    ck_assert_int_eq(params_int(&device("m1")->settings, "port"), 1502);
}
END_TEST

START_TEST(test_password_file)
{
    char secret[PATH_MAX + 16];
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    write_text(secret, "hunter2\r\n\n");
    char text[PATH_MAX + 64];
    snprintf(text, sizeof(text), "mqtt:\n  username: ha\n  password_file: %s\n", secret);
    load_ok(text);
    ck_assert_str_eq(cfg->mqtt.password, "hunter2"); // without the line ends
    ck_assert_str_eq(cfg->mqtt.username, "ha");
    setenv("E2M_TEST_PASSWORD", "from-env", 1);
    load_ok("mqtt:\n  password: ${E2M_TEST_PASSWORD}\n");
    ck_assert_str_eq(cfg->mqtt.password, "from-env");
}
END_TEST

// ---- Secrets on disk ------------------------------------------------------------------------

static char logged[8192];

static void capture(enum log_level level, const char *line, void *arg)
{
    (void)arg;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof(logged) - n, "%s%s\n", level == LOG_LVL_WARN ? "W " : "- ", line);
}

struct perm_case {
    const char *name;
    const char *mqtt;       // the mqtt: block's lines
    const char *secret_key; // the key naming the secret file (NULL: none)
    mode_t config_mode;     // the configuration file's
    mode_t secret_mode;     // the secret file's
    const char *flagged;    // "config", "secret" or NULL: which file the warning names
    const char *what;       // what the warning says the file holds (default: the password)
};

#define TLS_CERT "  url: mqtts://b\n  cert_file: /c.crt\n"

static const struct perm_case perm_cases[] = {
    {"password, 0644", "  password: hunter2\n", NULL, 0644, 0600, "config", NULL},
    {"password, 0604", "  password: hunter2\n", NULL, 0604, 0600, "config", NULL},
    {"password, 0600", "  password: hunter2\n", NULL, 0600, 0644, NULL, NULL},
    {"password, 0640", "  password: hunter2\n", NULL, 0640, 0600, NULL, NULL},
    {"only ${NAME}, 0644", "  password: ${E2M_TEST_PASSWORD}\n", NULL, 0644, 0600, NULL, NULL},
    {"a default in the file, 0644", "  password: ${E2M_TEST_UNSET:-hunter2}\n", NULL, 0644, 0600,
     "config", NULL},
    {"${NAME} and more, 0644", "  password: x${E2M_TEST_PASSWORD}\n", NULL, 0644, 0600, "config",
     NULL},
    {"no password, 0644", "  username: ha\n", NULL, 0644, 0644, NULL, NULL},
    {"password_file 0644", "", "password_file", 0644, 0644, "secret", NULL},
    {"password_file 0600", "", "password_file", 0644, 0600, NULL, NULL},
    {"key_file 0644", TLS_CERT, "key_file", 0644, 0644, "secret", "the MQTT client key"},
    {"key_file 0640", TLS_CERT, "key_file", 0644, 0640, NULL, NULL},
};

// A configuration holding the password, or a password file, readable by every local user is
// worth a warning that names the file and the fix; nothing else is.
START_TEST(test_world_readable_secret)
{
    const struct perm_case *c = &perm_cases[_i];
    setenv("E2M_TEST_PASSWORD", "from-env", 1);
    char secret[PATH_MAX + 16];
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    write_text(secret, "hunter2\n");
    ck_assert_int_eq(chmod(secret, c->secret_mode), 0);
    char text[PATH_MAX + 200];
    snprintf(text, sizeof(text), "mqtt:\n%s%s%s%s%s", c->mqtt, c->secret_key ? "  " : "",
             c->secret_key ? c->secret_key : "", c->secret_key ? ": " : "",
             c->secret_key ? secret : "");
    write_text(path, text);
    ck_assert_int_eq(chmod(path, c->config_mode), 0);
    logged[0] = '\0';
    log_set_sink(capture, NULL);
    int rc = config_load(path, &cfg, &diag);
    log_set_sink(NULL, NULL);
    if (rc)
        dump_diag();
    ck_assert_int_eq(rc, 0);
    if (!c->flagged) {
        ck_assert_msg(!strstr(logged, "chmod"), "%s: unexpected warning: %s", c->name, logged);
        return;
    }
    const char *file = strcmp(c->flagged, "config") == 0 ? path : secret;
    char want[3 * PATH_MAX];
    snprintf(want, sizeof(want),
             "W WARN [config] %s holds %s and every local user can read it "
             "(mode %03o); run chmod 600 %s\n",
             file, c->what ? c->what : "the MQTT password",
             (unsigned)(strcmp(c->flagged, "config") == 0 ? c->config_mode : c->secret_mode), file);
    ck_assert_msg(strstr(logged, want), "%s: no warning '%s' in:\n%s", c->name, want, logged);
    // The warning is about the file, never the secret in it.
    ck_assert_msg(!strstr(logged, "hunter2"), "%s: the password was logged: %s", c->name, logged);
}
END_TEST

// A password file is read whole up to CONFIG_MAX_SECRET bytes; a longer one is refused
// rather than cut to a password that would silently be wrong.
START_TEST(test_password_file_limit)
{
    char secret[PATH_MAX + 16];
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    size_t len = CONFIG_MAX_SECRET + (size_t)_i;
    char *pw = malloc(len + 3);
    memset(pw, 'p', len);
    strcpy(pw + len, "\r\n");
    write_text(secret, pw);
    char text[PATH_MAX + 64];
    snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n", secret);
    if (_i == 0) {
        load_ok(text);
        pw[len] = '\0';
        ck_assert_str_eq(cfg->mqtt.password, pw);
    } else {
        ck_assert_int_eq(load_text(text), -EINVAL);
        char want[PATH_MAX + 200];
        snprintf(want, sizeof(want),
                 "2:18: mqtt.password_file: %s is longer than %d bytes: not a password", secret,
                 CONFIG_MAX_SECRET);
        assert_diag((const char *const[]){want}, 1);
    }
    free(pw);
}
END_TEST

// TLS settings with a plain mqtt:// URL would leave the user believing the link is encrypted.
START_TEST(test_tls_settings_without_tls_warn)
{
    logged[0] = '\0';
    log_set_sink(capture, NULL);
    load_ok("mqtt:\n  url: mqtt://broker.lan\n  ca_file: /etc/ssl/ca.crt\n");
    ck_assert_msg(strstr(logged, "W WARN [config] mqtt: ca_file, cert_file and tls_insecure "
                                 "apply to mqtts:// only; mqtt://broker.lan is a connection "
                                 "without TLS"),
                  "no warning in: %s", logged);
    logged[0] = '\0';
    load_ok("mqtt:\n  url: mqtts://broker.lan\n  ca_file: /etc/ssl/ca.crt\n");
    log_set_sink(NULL, NULL);
    ck_assert_msg(!strstr(logged, "without TLS"), "unexpected warning: %s", logged);
}
END_TEST

// ---- The same configuration as YAML and as options.json -----------------------------------

static void assert_params_equal(const struct params *a, const struct params *b, const char *what)
{
    ck_assert_ptr_eq(a->defs, b->defs);
    ck_assert_uint_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct param_value *x = &a->v[i], *y = &b->v[i];
        const char *name = a->defs[i].name;
        ck_assert_msg(x->set == y->set, "%s.%s: set differs", what, name);
        ck_assert_msg(x->i == y->i && x->d == y->d && x->ms == y->ms, "%s.%s differs", what, name);
        ck_assert_msg((x->s == NULL) == (y->s == NULL) && (!x->s || strcmp(x->s, y->s) == 0),
                      "%s.%s: '%s' vs '%s'", what, name, x->s ? x->s : "(null)",
                      y->s ? y->s : "(null)");
    }
}

static void assert_str_eq_null(const char *a, const char *b)
{
    ck_assert_msg((a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0), "'%s' vs '%s'",
                  a ? a : "(null)", b ? b : "(null)");
}

START_TEST(test_yaml_and_json_agree)
{
    struct config *y = NULL, *j = NULL;
    // Unset, so ${E2M_TEST_PASSWORD:-s3cret} takes its default in both files.
    unsetenv("E2M_TEST_PASSWORD");
    int ry = config_load(DATA_DIR "/config/full.yaml", &y, &diag);
    int rj = config_load(DATA_DIR "/config/full.json", &j, &diag);
    if (ry || rj)
        dump_diag();
    ck_assert_int_eq(ry, 0);
    ck_assert_int_eq(rj, 0);

    const struct mqtt_config *a = &y->mqtt, *b = &j->mqtt;
    assert_str_eq_null(a->url, b->url);
    assert_str_eq_null(a->host, b->host);
    ck_assert_int_eq(a->port, b->port);
    ck_assert_int_eq(a->tls, b->tls);
    assert_str_eq_null(a->username, b->username);
    assert_str_eq_null(a->password, b->password);
    assert_str_eq_null(a->client_id, b->client_id);
    assert_str_eq_null(a->base_topic, b->base_topic);
    assert_str_eq_null(a->discovery_prefix, b->discovery_prefix);
    ck_assert_int_eq(a->discovery, b->discovery);
    ck_assert_int_eq(a->keepalive_ms, b->keepalive_ms);
    ck_assert_int_eq(a->birth_delay_ms, b->birth_delay_ms);
    ck_assert_int_eq(a->scan_ms, b->scan_ms);
    ck_assert_int_eq(y->log_level, j->log_level);
    assert_str_eq_null(y->state_dir, j->state_dir);
    ck_assert_uint_eq(y->n_entity_dirs, j->n_entity_dirs);
    for (size_t i = 0; i < y->n_entity_dirs; i++)
        ck_assert_str_eq(y->entity_dirs[i], j->entity_dirs[i]);

    // The values themselves, so that two equally broken loads cannot pass.
    ck_assert_str_eq(a->host, "broker.example");
    ck_assert_int_eq(a->port, 8884);
    ck_assert(a->tls);
    ck_assert_str_eq(a->password, "s3cret");
    ck_assert_int_eq(a->keepalive_ms, 45000);
    ck_assert_int_eq(a->birth_delay_ms, 2000);
    ck_assert_str_eq(y->state_dir, DATA_DIR "/config");
    ck_assert_int_eq(y->log_level, 3);

    ck_assert_uint_eq(y->n_devices, 2);
    ck_assert_uint_eq(j->n_devices, 2);
    for (size_t i = 0; i < y->n_devices; i++) {
        const struct device_config *p = &y->devices[i], *q = &j->devices[i];
        ck_assert_str_eq(p->id, q->id);
        assert_str_eq_null(p->name, q->name);
        ck_assert_str_eq(p->model_key, q->model_key);
        ck_assert_str_eq(p->model->key, q->model->key);
        ck_assert_uint_eq(p->model->n_entities, q->model->n_entities);
        assert_params_equal(&p->settings, &q->settings, p->id);
        assert_params_equal(&p->core_options, &q->core_options, p->id);
        assert_params_equal(&p->driver_options, &q->driver_options, p->id);
        ck_assert_uint_eq(p->n_windows, q->n_windows);
        for (size_t w = 0; w < p->n_windows; w++)
            ck_assert(memcmp(&p->windows[w], &q->windows[w], sizeof(p->windows[w])) == 0);
        for (size_t e = 0; e < p->model->n_entities; e++)
            ck_assert_int_eq(p->disabled[e], q->disabled[e]);
    }
    const struct device_config *m1 = config_find_device(y, "meter-1");
    ck_assert_int_eq(params_ms(&m1->core_options, "poll_interval"), 30000);
    ck_assert_int_eq(params_int(&m1->settings, "unit_id"), 3);
    ck_assert_uint_eq(m1->n_windows, 1);
    ck_assert_int_eq(m1->windows[0].start_ms, 290000);
    ck_assert(m1->disabled[model_index(m1->model, model_find(m1->model, "voltage"))]);
    ck_assert_int_eq(params_choice(&config_find_device(y, "rtu")->settings, "parity"), 1);
    config_free(y);
    config_free(j);
}
END_TEST

// Errors in a JSON file carry JSON positions.
START_TEST(test_json_error_positions)
{
    snprintf(path, sizeof(path), "%s/c.json", dir);
    ck_assert_int_eq(load_text("{\n"
                               "  \"mqtt\": {\"url\": \"http://x\"},\n"
                               "  \"entities_dir\": \"${E2M_TEST_ENTITIES}\",\n"
                               "  \"devices\": [\n"
                               "    {\"id\": \"m1\", \"model\": \"test/meter\", \"host\": \"h\",\n"
                               "     \"port\": 0}\n"
                               "  ]\n"
                               "}\n"),
                     -EINVAL);
    static const char *const want[] = {
        "2:19: mqtt.url: expected mqtt://host[:port] or mqtts://host[:port] (credentials go in "
        "username and password), got 'http://x'",
        "6:14: devices[0].port: expected a whole number from 1 to 65535, got 0",
    };
    assert_diag(want, N(want));
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_error, 0, N(errors));
    tcase_add_test(tc, test_url_credentials_refused_quietly);
    tcase_add_test(tc, test_unknown_model_lists_dirs);
    tcase_add_test(tc, test_model_errors_reported_once);
    tcase_add_test(tc, test_unknown_option_lists_known);
    tcase_add_test(tc, test_driver_minimum_from_model_file);
    tcase_add_test(tc, test_json_error_positions);
    suite_add_tcase(s, tc);

    TCase *lc = tcase_create("load");
    tcase_add_checked_fixture(lc, setup, teardown);
    tcase_add_test(lc, test_unsafe_timing_allows_short_gap);
    tcase_add_test(lc, test_option_layering);
    tcase_add_test(lc, test_settings_and_disable);
    tcase_add_test(lc, test_defaults);
    tcase_add_loop_test(lc, test_urls, 0, N(urls));
    tcase_add_loop_test(lc, test_http, 0, N(https));
    tcase_add_test(lc, test_http_off_by_default);
    tcase_add_test(lc, test_env_expansion);
    tcase_add_test(lc, test_password_file);
    tcase_add_loop_test(lc, test_world_readable_secret, 0, N(perm_cases));
    tcase_add_loop_test(lc, test_password_file_limit, 0, 2);
    tcase_add_test(lc, test_tls_settings_without_tls_warn);
    tcase_add_test(lc, test_yaml_and_json_agree);
    suite_add_tcase(s, lc);
    return s;
}

int main(void)
{
    make_base("config");
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    rm_tree(base);
    return failed ? 1 : 0;
}
