// SPDX-License-Identifier: MIT
// End-to-end tests: a real mosquitto, the Modbus simulator (libmodbus on both ends) and the
// daemon, observed the way Home Assistant would observe them.
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "itest.h"

// One broker, one simulated inverter and meter, one daemon: the usual cast.
struct rig {
    struct broker broker;
    struct sim inv, meter;
    struct proc daemon;
    struct collector *mqtt;
    const char *config;
};

static const char *const inv_args[] = {"--profile", "sunspec", "--port", "0",
                                       "--tick",    "200",     NULL};
static const char *const meter_args[] = {"--profile", "sdm630", "--port", "0",
                                         "--tick",    "200",    NULL};

static const char *write_config(struct rig *r, const char *name, const char *base,
                                const char *extra_mqtt)
{
    return itest_write_file(name,
                            "mqtt:\n"
                            "  url: mqtt://127.0.0.1:%d\n"
                            "  base_topic: %s\n"
                            "  birth_delay: 300ms\n"
                            "  scan_time: 400ms\n"
                            "  keepalive: 5s\n"
                            "%s"
                            "state_dir: %s\n"
                            "devices:\n"
                            "  - id: inv\n"
                            "    name: Roof inverter\n"
                            "    model: sunspec/inverter\n"
                            "    host: 127.0.0.1\n"
                            "    port: %d\n"
                            "    options: {poll_interval: 500ms, backoff_min: 200ms, "
                            "backoff_max: 1s, reply_timeout: 500ms, connect_timeout: 500ms}\n"
                            "  - id: meter\n"
                            "    name: Grid meter\n"
                            "    model: eastron/sdm630\n"
                            "    host: 127.0.0.1\n"
                            "    port: %d\n"
                            "    options: {poll_interval: 500ms}\n",
                            r->broker.port, base, extra_mqtt ? extra_mqtt : "", itest_dir(),
                            r->inv.ports[0], r->meter.ports[0]);
}

static void rig_start(struct rig *r)
{
    memset(r, 0, sizeof(*r));
    broker_start(&r->broker, false);
    sim_start(&r->inv, inv_args);
    sim_start(&r->meter, meter_args);
    r->mqtt = collector_new(r->broker.port, "#");
    r->config = write_config(r, "e2m.yaml", "energy2mqtt", NULL);
    daemon_start(&r->daemon, r->config, "daemon.log");
    char *s = collector_wait(r->mqtt, "energy2mqtt/inv/availability", "online", 10000);
    ck_assert_msg(s, "the inverter never came online");
    free(s);
    s = collector_wait(r->mqtt, "energy2mqtt/meter/availability", "online", 10000);
    ck_assert_msg(s, "the meter never came online");
    free(s);
}

static void rig_stop(struct rig *r)
{
    if (r->daemon.pid) {
        int rc = proc_stop(&r->daemon, SIGTERM, 30000);
        ck_assert_msg(rc == 0, "the daemon exited with %d (see %s)", rc, r->daemon.log);
    }
    collector_free(r->mqtt);
    proc_stop(&r->inv.p, SIGTERM, 3000);
    proc_stop(&r->meter.p, SIGTERM, 3000);
    broker_stop(&r->broker);
    itest_cleanup();
}

// Waits for a state message of `device` whose `key` equals `value`.
static bool wait_value(struct rig *r, const char *device, const char *key, double value,
                       int timeout_ms)
{
    char topic[128];
    snprintf(topic, sizeof(topic), "energy2mqtt/%s/state", device);
    long long end = itest_now_ms() + timeout_ms;
    while (itest_now_ms() < end) {
        char *s = collector_last(r->mqtt, topic);
        double v = s ? json_number_of(s, key) : NAN;
        free(s);
        if (fabs(v - value) < 1e-6)
            return true;
        itest_sleep_ms(50);
    }
    return false;
}

START_TEST(discovery_appears_and_validates)
{
    struct rig r;
    rig_start(&r);
    // Let a state message of each device arrive, then capture everything retained plus them.
    free(collector_wait(r.mqtt, "energy2mqtt/inv/state", "\"power\":", 5000));
    free(collector_wait(r.mqtt, "energy2mqtt/meter/state", "\"l1_voltage\":", 5000));
    free(collector_wait(r.mqtt, "energy2mqtt/bridge/state", NULL, 5000));
    char path[300], out[8192];
    snprintf(path, sizeof(path), "%s/capture.txt", itest_dir());
    collector_dump(r.mqtt, path);
    int rc = itest_validate(path, true, out, sizeof(out));
    ck_assert_msg(rc == 0, "validator failed:\n%s", out);
    ck_assert_msg(strstr(out, " 0 failed"), "%s", out);
    // Every configured device and the bridge have a retained config.
    struct collector *ret = collector_retained(r.broker.port, "homeassistant/#", 500);
    ck_assert_uint_eq(collector_count(ret), 3);
    char *inv = collector_last(ret, "homeassistant/device/energy2mqtt_inv/config");
    ck_assert_ptr_nonnull(inv);
    ck_assert_ptr_nonnull(strstr(inv, "\"uniq_id\":\"energy2mqtt_inv_power_limit\""));
    free(inv);
    collector_free(ret);
    rig_stop(&r);
}
END_TEST

START_TEST(states_carry_simulator_values)
{
    struct rig r;
    rig_start(&r);
    char ok[256];
    // Meter: float32 input registers, big word order.
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0 float32 231.25"));
    ck_assert_msg(wait_value(&r, "meter", "l1_voltage", 231.3, 5000) ||
                      wait_value(&r, "meter", "l1_voltage", 231.2, 100),
                  "l1_voltage never showed the simulator's 231.25 V");
    // Inverter: W with scale factor W_SF (set to -1: 12345 * 10^-1 W), published with the
    // entity's precision of 0 decimals.
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "set 0 holding 40084 s16 -1"));
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "set 0 holding 40083 s16 12345"));
    ck_assert_msg(wait_value(&r, "inv", "power", 1235, 5000), "power != 1235 W");
    // Current: A = 1234 with A_SF -2 -> 12.34 A.
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "set 0 holding 40075 s16 -2"));
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "set 0 holding 40071 u16 1234"));
    ck_assert_msg(wait_value(&r, "inv", "current", 12.34, 5000), "current != 12.34 A");
    // Strings from the common model.
    char *s = collector_wait(r.mqtt, "energy2mqtt/inv/state", "\"manufacturer\":\"", 3000);
    ck_assert_ptr_nonnull(s);
    char *mf = json_string_of(s, "manufacturer");
    ck_assert_str_eq(mf, "energy2mqtt-sim");
    free(mf);
    free(s);
    rig_stop(&r);
}
END_TEST

START_TEST(number_command_is_written_and_confirmed)
{
    struct rig r;
    rig_start(&r);
    char line[512];
    collector_publish(r.mqtt, "energy2mqtt/inv/power_limit/set", "55", false);
    ck_assert_msg(sim_wait_write(&r.inv, "write", line, sizeof(line), 5000), "no write");
    ck_assert_msg(strstr(line, " holding 40126 1 55"), "unexpected write: %s", line);
    // The confirmed state comes from the read-back, not from the command.
    ck_assert_msg(wait_value(&r, "inv", "power_limit", 55, 5000), "power_limit not confirmed");
    char ok[64];
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "get 0 holding 40126 u16"));
    ck_assert_str_eq(ok, "ok 55");
    ck_assert(proc_log_contains(&r.daemon, "power_limit confirmed by read-back"));
    // A switch and a select go the same way.
    collector_publish(r.mqtt, "energy2mqtt/inv/power_limit_enabled/set", "ON", false);
    ck_assert(sim_wait_write(&r.inv, "write", line, sizeof(line), 5000));
    ck_assert_msg(strstr(line, " holding 40130 1 1"), "unexpected write: %s", line);
    collector_publish(r.mqtt, "energy2mqtt/meter/demand_period/set", "15", false);
    ck_assert(sim_wait_write(&r.meter, "write", line, sizeof(line), 5000));
    ck_assert_msg(strstr(line, " holding 2 2 16752 0"), "unexpected write: %s", line);
    char *s = collector_wait(r.mqtt, "energy2mqtt/meter/state", "\"demand_period\":\"15\"", 5000);
    ck_assert_msg(s, "demand_period not confirmed");
    free(s);
    rig_stop(&r);
}
END_TEST

START_TEST(bad_commands_are_refused_and_snap_back)
{
    struct rig r;
    rig_start(&r);
    static const char *const bad[][2] = {
        {"energy2mqtt/inv/power_limit/set", "150"},      // out of range
        {"energy2mqtt/inv/power_limit/set", "abc"},      // not a number
        {"energy2mqtt/inv/power_limit/set", "50.5"},     // off the step grid
        {"energy2mqtt/inv/connected/set", "MAYBE"},      // not ON/OFF
        {"energy2mqtt/meter/demand_period/set", "7"},    // not an option
        {"energy2mqtt/inv/power/set", "100"},            // a sensor
        {"energy2mqtt/inv/nosuch/set", "1"},             // unknown entity
        {"energy2mqtt/ghost/power_limit/set", "1"},      // unknown device
        {"energy2mqtt/inv/power_limit/set", "\xff\xfe"}, // not UTF-8
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        collector_clear(r.mqtt);
        collector_publish(r.mqtt, bad[i][0], bad[i][1], false);
        if (strstr(bad[i][0], "/inv/") && !strstr(bad[i][0], "nosuch")) {
            // The control snaps back: the current state is re-published at once.
            char *s = collector_wait(r.mqtt, "energy2mqtt/inv/state", NULL, 300);
            ck_assert_msg(s, "no state re-published after refusing %s", bad[i][1]);
            free(s);
        }
    }
    char oversized[1000];
    memset(oversized, '9', sizeof(oversized) - 1);
    oversized[sizeof(oversized) - 1] = '\0';
    collector_publish(r.mqtt, "energy2mqtt/inv/power_limit/set", oversized, false);
    // Over the link's inbound limit a message is not even copied to the daemon's loop.
    size_t huge_len = 300 * 1024;
    char *huge = malloc(huge_len + 1);
    memset(huge, '7', huge_len);
    huge[huge_len] = '\0';
    collector_publish(r.mqtt, "energy2mqtt/inv/power_limit/set", huge, false);
    free(huge);
    itest_sleep_ms(800);
    char line[256];
    ck_assert_msg(!sim_wait_write(&r.inv, "write", line, sizeof(line), 200),
                  "a refused command reached the device: %s", line);
    ck_assert(!sim_wait_write(&r.meter, "write", line, sizeof(line), 100));
    ck_assert(proc_log_contains(&r.daemon, "refused inv/power_limit: 150 is outside 0..100"));
    ck_assert(proc_log_contains(&r.daemon, "refused inv/power_limit: 'abc' is not a number"));
    ck_assert(proc_log_contains(&r.daemon, "refused ghost/power_limit: no such device"));
    ck_assert(proc_log_contains(&r.daemon, "refused inv/power_limit: 999 bytes, the limit is 256"));
    ck_assert(proc_log_contains(&r.daemon, "ignoring a 307200-byte message on "
                                           "energy2mqtt/inv/power_limit/set (limit 262144)"));
    // A retained command would be replayed on every reconnect. Left on the broker while the
    // daemon is down, it arrives flagged retained at start-up and must not be acted on.
    ck_assert_int_eq(proc_stop(&r.daemon, SIGTERM, 30000), 0);
    collector_publish(r.mqtt, "energy2mqtt/inv/power_limit/set", "10", true);
    collector_clear(r.mqtt);
    daemon_start(&r.daemon, r.config, "daemon-retained.log");
    free(collector_wait(r.mqtt, "energy2mqtt/inv/availability", "online", 10000));
    ck_assert(!sim_wait_write(&r.inv, "write", line, sizeof(line), 1500));
    ck_assert(proc_log_contains(&r.daemon, "retained commands are ignored"));
    collector_publish(r.mqtt, "energy2mqtt/inv/power_limit/set", "", true); // clear it
    rig_stop(&r);
}
END_TEST

START_TEST(birth_message_triggers_republish)
{
    struct rig r;
    rig_start(&r);
    free(collector_wait(r.mqtt, "homeassistant/device/energy2mqtt_inv/config", NULL, 3000));
    itest_sleep_ms(300);
    collector_clear(r.mqtt);
    long long t0 = itest_now_ms(); // before: publishing waits for the broker's PUBACK
    collector_publish(r.mqtt, "homeassistant/status", "online", false);
    char *s = collector_wait(r.mqtt, "homeassistant/device/energy2mqtt_inv/config", NULL, 3000);
    ck_assert_msg(s, "discovery not re-published after the birth message");
    free(s);
    ck_assert_int_ge(itest_now_ms() - t0, 100); // after a delay, not instantly
    // Everything is sent again, including configs the broker already holds unchanged.
    s = collector_wait(r.mqtt, "homeassistant/device/energy2mqtt_bridge/config", NULL, 1000);
    ck_assert_msg(s, "the bridge config was not re-published after the birth message");
    free(s);
    s = collector_wait(r.mqtt, "energy2mqtt/inv/availability", "online", 2000);
    ck_assert_ptr_nonnull(s);
    free(s);
    // HA's user deletes the meter: it must not come back on the next birth...
    collector_publish(r.mqtt, "homeassistant/device/energy2mqtt_meter/config", "", true);
    itest_sleep_ms(300);
    collector_clear(r.mqtt);
    collector_publish(r.mqtt, "homeassistant/status", "online", false);
    free(collector_wait(r.mqtt, "homeassistant/device/energy2mqtt_inv/config", NULL, 3000));
    itest_sleep_ms(300);
    ck_assert_uint_eq(collector_count_prefix(r.mqtt, "homeassistant/device/energy2mqtt_meter"), 0);
    // ...until the bridge's republish button.
    collector_publish(r.mqtt, "energy2mqtt/bridge/republish/set", "PRESS", false);
    s = collector_wait(r.mqtt, "homeassistant/device/energy2mqtt_meter/config", "cmps", 3000);
    ck_assert_msg(s, "republish button did not bring the meter back");
    free(s);
    rig_stop(&r);
}
END_TEST

START_TEST(killed_daemon_leaves_offline)
{
    struct rig r;
    rig_start(&r);
    ck_assert_int_eq(proc_stop(&r.daemon, SIGKILL, 3000), 128 + SIGKILL);
    itest_sleep_ms(300);
    struct collector *ret =
        collector_retained(r.broker.port, "energy2mqtt/bridge/availability", 400);
    char *s = collector_last(ret, "energy2mqtt/bridge/availability");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "offline");
    free(s);
    collector_free(ret);
    // A clean stop says offline too (the will is not sent on a clean disconnect).
    collector_clear(r.mqtt);
    daemon_start(&r.daemon, r.config, "daemon2.log");
    free(collector_wait(r.mqtt, "energy2mqtt/bridge/availability", "online", 5000));
    ck_assert_int_eq(proc_stop(&r.daemon, SIGTERM, 30000), 0);
    ret = collector_retained(r.broker.port, "energy2mqtt/bridge/availability", 400);
    s = collector_last(ret, "energy2mqtt/bridge/availability");
    ck_assert_str_eq(s, "offline");
    free(s);
    collector_free(ret);
    rig_stop(&r);
}
END_TEST

START_TEST(second_instance_does_not_interfere)
{
    struct rig r;
    rig_start(&r);
    // Instance B: another base topic, its own simulated meter.
    struct sim meter_b;
    sim_start(&meter_b, meter_args);
    const char *cfg_b = itest_write_file("b.yaml",
                                         "mqtt: {url: 'mqtt://127.0.0.1:%d', base_topic: site-b, "
                                         "scan_time: 400ms}\n"
                                         "state_dir: %s\n"
                                         "devices:\n"
                                         "  - {id: meter, model: eastron/sdm630, host: 127.0.0.1, "
                                         "port: %d, options: {poll_interval: 500ms}}\n",
                                         r.broker.port, itest_dir(), meter_b.ports[0]);
    struct proc b;
    daemon_start(&b, cfg_b, "daemon-b.log");
    char *s = collector_wait(r.mqtt, "site-b/meter/availability", "online", 10000);
    ck_assert_ptr_nonnull(s);
    free(s);
    // Restart A: its clean-up of stale configs must leave B's alone.
    ck_assert_int_eq(proc_stop(&r.daemon, SIGTERM, 30000), 0);
    collector_clear(r.mqtt);
    daemon_start(&r.daemon, r.config, "daemon-a2.log");
    free(collector_wait(r.mqtt, "energy2mqtt/inv/availability", "online", 10000));
    itest_sleep_ms(600);
    struct collector *ret = collector_retained(r.broker.port, "homeassistant/#", 500);
    ck_assert_uint_eq(collector_count(ret), 5); // two bridges, inv, meter, site-b meter
    char *cfg = collector_last(ret, "homeassistant/device/site-b_meter/config");
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_nonnull(strstr(cfg, "\"uniq_id\":\"site-b_meter_l1_voltage\""));
    free(cfg);
    collector_free(ret);
    // A command to A's meter does not reach B's.
    char line[256];
    collector_publish(r.mqtt, "energy2mqtt/meter/system_type/set", "3P3W", false);
    ck_assert(sim_wait_write(&r.meter, "write", line, sizeof(line), 5000));
    ck_assert(!sim_wait_write(&meter_b, "write", line, sizeof(line), 500));
    ck_assert_int_eq(proc_stop(&b, SIGTERM, 30000), 0);
    proc_stop(&meter_b.p, SIGTERM, 3000);
    rig_stop(&r);
}
END_TEST

// A hundred devices publish discovery, availability and state in one burst at start: nothing
// may be lost between the daemon and the broker (paho refuses more than its buffer limit of
// unsent messages unless the link keeps within it).
START_TEST(a_burst_of_many_devices_loses_nothing)
{
    enum { N = 100 };
    struct broker broker = {0};
    broker_start(&broker, false);
    struct sim meters = {0};
    static const char *const args[] = {"--profile", "sdm630", "--port",   "0",
                                       "--count",   "100",    "--static", NULL};
    sim_start(&meters, args);
    ck_assert_int_eq(meters.n_ports, N);
    char *devices = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&devices, &len);
    for (int i = 0; i < N; i++)
        fprintf(f,
                "  - {id: m%d, model: eastron/sdm630, host: 127.0.0.1, port: %d, "
                "options: {poll_interval: 30s}}\n",
                i, meters.ports[i]);
    fclose(f);
    const char *cfg = itest_write_file("many.yaml",
                                       "mqtt: {url: 'mqtt://127.0.0.1:%d', base_topic: many, "
                                       "scan_time: 300ms}\nstate_dir: %s\ndevices:\n%s",
                                       broker.port, itest_dir(), devices);
    free(devices);
    struct collector *c = collector_new(broker.port, "#");
    struct proc d = {0};
    daemon_start(&d, cfg, "daemon.log");
    // Every device's availability, state and config, and the bridge's counters.
    char *s = collector_wait(c, "many/bridge/state", NULL, 20000);
    ck_assert_msg(s, "no bridge state");
    long long end = itest_now_ms() + 20000;
    int online = 0;
    while (itest_now_ms() < end && online < N) {
        online = 0;
        for (int i = 0; i < N; i++) {
            char topic[64];
            snprintf(topic, sizeof(topic), "many/m%d/availability", i);
            char *a = collector_last(c, topic);
            online += a && strcmp(a, "online") == 0;
            free(a);
        }
        itest_sleep_ms(100);
    }
    ck_assert_int_eq(online, N);
    ck_assert_uint_eq(collector_count_prefix(c, "homeassistant/device/many_m"), N);
    for (int i = 0; i < N; i++) {
        char topic[64];
        snprintf(topic, sizeof(topic), "many/m%d/state", i);
        char *a = collector_last(c, topic);
        ck_assert_msg(a, "%s never published", topic);
        free(a);
    }
    ck_assert_msg(strstr(s, "\"dropped\":0,"), "the bridge counted lost messages: %s", s);
    free(s);
    ck_assert_int_eq(proc_stop(&d, SIGTERM, 30000), 0);
    collector_free(c);
    proc_stop(&meters.p, SIGTERM, 3000);
    broker_stop(&broker);
    itest_cleanup();
}
END_TEST

START_TEST(stale_configs_are_cleared_at_start)
{
    struct rig r;
    rig_start(&r);
    ck_assert_int_eq(proc_stop(&r.daemon, SIGTERM, 30000), 0);
    // The same instance restarted without the meter clears the meter's config.
    const char *cfg = itest_write_file("only-inv.yaml",
                                       "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 400ms}\n"
                                       "state_dir: %s\n"
                                       "devices:\n"
                                       "  - {id: inv, model: sunspec/inverter, host: 127.0.0.1, "
                                       "port: %d}\n",
                                       r.broker.port, itest_dir(), r.inv.ports[0]);
    collector_clear(r.mqtt);
    daemon_start(&r.daemon, cfg, "daemon-inv.log");
    free(collector_wait(r.mqtt, "energy2mqtt/inv/availability", "online", 10000));
    itest_sleep_ms(500);
    struct collector *ret = collector_retained(r.broker.port, "homeassistant/#", 500);
    ck_assert_ptr_null(collector_last(ret, "homeassistant/device/energy2mqtt_meter/config"));
    char *inv = collector_last(ret, "homeassistant/device/energy2mqtt_inv/config");
    ck_assert_ptr_nonnull(inv);
    free(inv);
    collector_free(ret);
    rig_stop(&r);
}
END_TEST

START_TEST(broker_restart_brings_everything_back)
{
    struct rig r;
    rig_start(&r);
    collector_free(r.mqtt);
    broker_stop(&r.broker); // no persistence: every retained message is gone
    broker_start(&r.broker, false);
    r.mqtt = collector_new(r.broker.port, "#");
    char *s = collector_wait(r.mqtt, "homeassistant/device/energy2mqtt_inv/config", NULL, 15000);
    ck_assert_msg(s, "discovery not re-published after the broker restart");
    free(s);
    s = collector_wait(r.mqtt, "energy2mqtt/inv/availability", "online", 5000);
    ck_assert_ptr_nonnull(s);
    free(s);
    rig_stop(&r);
}
END_TEST

START_TEST(device_faults_mark_offline_then_recover)
{
    struct rig r;
    rig_start(&r);
    char ok[128];
    collector_clear(r.mqtt); // the start-up "offline" must not count
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "fault all stall"));
    char *s = collector_wait(r.mqtt, "energy2mqtt/inv/availability", "offline", 15000);
    ck_assert_msg(s, "a stalled inverter never went offline");
    free(s);
    s = collector_wait(r.mqtt, "energy2mqtt/inv/state", "\"link_status\":\"offline\"", 3000);
    ck_assert_msg(s, "the state message does not say offline");
    free(s);
    ck_assert(sim_command(&r.inv, ok, sizeof(ok), "fault all none"));
    s = collector_wait(r.mqtt, "energy2mqtt/inv/availability", "online", 15000);
    ck_assert_msg(s, "the inverter did not come back");
    free(s);
    // The meter was never affected.
    ck_assert_ptr_null(collector_wait(r.mqtt, "energy2mqtt/meter/availability", "offline", 10));
    rig_stop(&r);
}
END_TEST

START_TEST(energy_counter_never_goes_back)
{
    struct rig r;
    rig_start(&r);
    char ok[128];
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0x48 float32 5000"));
    ck_assert(wait_value(&r, "meter", "import_energy", 5000, 5000));
    // A glitch: the meter reports a smaller total, then zero. Neither is published.
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0x48 float32 500"));
    itest_sleep_ms(1200);
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0x48 float32 0"));
    itest_sleep_ms(1200);
    ck_assert(wait_value(&r, "meter", "import_energy", 5000, 100));
    ck_assert(proc_log_contains(&r.daemon, "import_energy: decrease refused"));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0x48 float32 5001.5"));
    ck_assert(wait_value(&r, "meter", "import_energy", 5001.5, 5000));
    // The mark survives a restart: after it, 4000 is still refused.
    ck_assert_int_eq(proc_stop(&r.daemon, SIGTERM, 30000), 0);
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set 0 input 0x48 float32 4000"));
    collector_clear(r.mqtt);
    daemon_start(&r.daemon, r.config, "daemon-restart.log");
    free(collector_wait(r.mqtt, "energy2mqtt/meter/availability", "online", 10000));
    itest_sleep_ms(1500);
    char *s = collector_last(r.mqtt, "energy2mqtt/meter/state");
    ck_assert(isnan(json_number_of(s, "import_energy")) ||
              json_number_of(s, "import_energy") != 4000);
    free(s);
    rig_stop(&r);
}
END_TEST

START_TEST(modbus_rtu_end_to_end)
{
    struct broker b = {0};
    broker_start(&b, false);
    static const char *const args[] = {"--profile", "sdm630", "--rtu", "--tick", "200", NULL};
    struct sim s;
    sim_start(&s, args);
    ck_assert(s.rtu_path[0]);
    const char *cfg = itest_write_file("rtu.yaml",
                                       "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
                                       "state_dir: %s\n"
                                       "devices:\n"
                                       "  - {id: rtu, model: eastron/sdm630, device: '%s', "
                                       "baud: 9600, unit_id: 1, options: {poll_interval: 1s, "
                                       "reply_timeout: 1s}}\n",
                                       b.port, itest_dir(), s.rtu_path);
    struct collector *c = collector_new(b.port, "energy2mqtt/#");
    struct proc d;
    daemon_start(&d, cfg, "daemon-rtu.log");
    char ok[128];
    ck_assert(sim_command(&s, ok, sizeof(ok), "set 0 input 0x46 float32 49.98"));
    long long end = itest_now_ms() + 15000;
    double hz = NAN;
    while (itest_now_ms() < end && !(fabs(hz - 49.98) < 1e-6)) { // NaN until the first state
        char *st = collector_last(c, "energy2mqtt/rtu/state");
        hz = st ? json_number_of(st, "frequency") : NAN;
        free(st);
        itest_sleep_ms(100);
    }
    ck_assert_msg(fabs(hz - 49.98) < 1e-6, "frequency over RTU: %f", hz);
    ck_assert_int_eq(proc_stop(&d, SIGTERM, 30000), 0);
    collector_free(c);
    proc_stop(&s.p, SIGTERM, 3000);
    broker_stop(&b);
    itest_cleanup();
}
END_TEST

// TLS with certificate and host name verification, and password authentication, against a
// real mosquitto. The password must never appear in the daemon's log, even at debug level.
// A CA; server certificates signed by it for localhost and for another host name; a client
// certificate signed by it; an unrelated CA; a mosquitto password file for e2m.
static void make_pki(void)
{
    int rc = itest_sh(
        "set -e; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout ca.key -out ca.crt -days 2 -subj /CN=e2m-test-ca; "
        "for n in server:localhost wronghost:wronghost.example client:e2m-client; do "
        "  f=${n%%:*}; cn=${n#*:}; "
        "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "  -keyout $f.key -out $f.csr -subj /CN=$cn; "
        "  if [ $f = client ]; then printf 'extendedKeyUsage=clientAuth\\n' > $f.cnf; "
        "  elif [ $f = server ]; then "
        "    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > $f.cnf; "
        "  else printf 'subjectAltName=DNS:%%s\\n' $cn > $f.cnf; fi; "
        "  openssl x509 -req -in $f.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "  -out $f.crt -days 2 -extfile $f.cnf; "
        "done; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout other.key -out other.crt -days 2 -subj /CN=other-ca; "
        "mosquitto_passwd -c -b passwd e2m 'Sup3r-secret pw'; "
        // mosquitto started as root reads these as its own unprivileged user.
        "chmod 755 . && chmod 644 server.key wronghost.key passwd && chmod 600 client.key");
    ck_assert_msg(rc == 0, "could not create certificates/password file (see sh.log)");
}

// Starts a daemon on `cfg` and asserts that it reaches the broker (availability online on
// <base>/bridge/availability) or that it does not within 2.5 s, logging why.
static void expect_connection(struct collector *c, const char *cfg, const char *base, bool connects,
                              struct proc *p)
{
    char log[96], topic[128];
    snprintf(log, sizeof(log), "daemon-%s.log", base);
    snprintf(topic, sizeof(topic), "%s/bridge/availability", base);
    daemon_start(p, cfg, log);
    char *s = collector_wait(c, topic, "online", connects ? 10000 : 2500);
    if (connects) {
        ck_assert_msg(s, "%s: no connection (see %s)", base, p->log);
    } else {
        ck_assert_msg(!s, "%s: connected but should have been refused (see %s)", base, p->log);
        ck_assert_msg(proc_wait_log(p, "cannot connect to", 5000), "%s: no reason logged (see %s)",
                      base, p->log);
    }
    free(s);
    ck_assert_int_eq(proc_stop(p, SIGTERM, 30000), 0);
}

// TLS: the server's certificate is checked against ca_file and against the host name in the
// URL (unless tls_insecure, which is logged as a warning); a listener that requires a client
// certificate takes the daemon's cert_file and key_file.
START_TEST(tls_and_password)
{
    make_pki();
    struct broker b = {0};
    b.port = itest_free_port();
    int tls_port = itest_free_port(), wrong_host_port = itest_free_port();
    int client_port = itest_free_port(), auth_port = itest_free_port();
    const char *d = itest_dir();
    broker_start_conf(&b,
                      "per_listener_settings true\n"
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "cafile %s/ca.crt\ncertfile %s/wronghost.crt\nkeyfile %s/wronghost.key\n"
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
                      "require_certificate true\n"
                      "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s/passwd\n",
                      b.port, tls_port, d, d, d, wrong_host_port, d, d, d, client_port, d, d, d,
                      auth_port, d);
    struct collector *c = collector_new(b.port, "#");
    struct proc p;

    // Verified TLS: connects, and nothing says verification is off.
    const char *cfg = itest_write_file(
        "tls.yaml",
        "mqtt: {url: 'mqtts://localhost:%d', ca_file: '%s/ca.crt', base_topic: tls, "
        "scan_time: 200ms}\nstate_dir: %s\n",
        tls_port, d, d);
    expect_connection(c, cfg, "tls", true, &p);
    ck_assert(!proc_log_contains(&p, "tls_insecure"));

    // The wrong CA: the certificate check fails, nothing is published.
    cfg = itest_write_file("tls-bad.yaml",
                           "mqtt: {url: 'mqtts://localhost:%d', ca_file: '%s/other.crt', "
                           "base_topic: tlsbad}\nstate_dir: %s\n",
                           tls_port, d, d);
    expect_connection(c, cfg, "tlsbad", false, &p);
    ck_assert_msg(proc_log_contains(&p, "TLS handshake failed: certificate verify failed"),
                  "no reason given (see %s)", p.log);

    // A certificate from the right CA, but for another host: refused by the host name check.
    cfg = itest_write_file("tls-host.yaml",
                           "mqtt: {url: 'mqtts://localhost:%d', ca_file: '%s/ca.crt', "
                           "base_topic: tlshost}\nstate_dir: %s\n",
                           wrong_host_port, d, d);
    expect_connection(c, cfg, "tlshost", false, &p);
    ck_assert_msg(proc_log_contains(&p, "valid for the host name 'localhost'"),
                  "no hint at the host name (see %s)", p.log);
    // The same with tls_insecure: connects, with a warning that nothing is verified.
    cfg = itest_write_file("tls-insecure.yaml",
                           "mqtt: {url: 'mqtts://localhost:%d', ca_file: '%s/ca.crt', "
                           "tls_insecure: true, base_topic: tlsinsecure, scan_time: 200ms}\n"
                           "state_dir: %s\n",
                           wrong_host_port, d, d);
    expect_connection(c, cfg, "tlsinsecure", true, &p);
    ck_assert(proc_log_contains(&p, "WARN [mqtt] tls_insecure: the broker's certificate and host "
                                    "name are not verified"));

    // A listener requiring a client certificate: with cert_file and key_file the daemon
    // connects, without them it is refused.
    cfg = itest_write_file("tls-client.yaml",
                           "mqtt: {url: 'mqtts://localhost:%d', ca_file: '%s/ca.crt', "
                           "cert_file: '%s/client.crt', key_file: '%s/client.key', "
                           "base_topic: tlsclient, scan_time: 200ms}\nstate_dir: %s\n",
                           client_port, d, d, d, d);
    expect_connection(c, cfg, "tlsclient", true, &p);
    cfg = itest_write_file("tls-noclient.yaml",
                           "mqtt: {url: 'mqtts://localhost:%d', ca_file: '%s/ca.crt', "
                           "base_topic: tlsnoclient}\nstate_dir: %s\n",
                           client_port, d, d);
    expect_connection(c, cfg, "tlsnoclient", false, &p);

    // Password authentication: a wrong password is refused, and not logged either.
    cfg = itest_write_file("wrong.yaml",
                           "mqtt: {url: 'mqtt://127.0.0.1:%d', username: e2m, "
                           "password: 'Wr0ng-secret', base_topic: wrong}\nstate_dir: %s\n",
                           auth_port, d);
    expect_connection(c, cfg, "wrong", false, &p);
    ck_assert(proc_log_contains(&p, "bad user name or password") ||
              proc_log_contains(&p, "not authorised"));
    ck_assert(!proc_log_contains(&p, "Wr0ng-secret"));

    collector_free(c);
    broker_stop(&b);
    itest_cleanup();
}
END_TEST

// The password, from the configuration file, a password file or the environment, reaches the
// broker (which requires it) but never the log, in a full run at debug level: connection,
// discovery, polling, a command written and confirmed, shutdown. A configuration file holding
// the password and readable by everyone is warned about; one that only names ${VAR} is not.
START_TEST(password_never_logged_in_a_full_run)
{
    make_pki();
    struct broker b = {0};
    b.port = itest_free_port();
    int auth_port = itest_free_port();
    const char *d = itest_dir();
    broker_start_conf(&b,
                      "per_listener_settings true\n"
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s/passwd\n",
                      b.port, auth_port, d);
    struct sim inv;
    sim_start(&inv, inv_args);
    struct collector *c = collector_new(b.port, "#");
    itest_write_file("pw.txt", "Sup3r-secret pw\n");
    ck_assert_int_eq(itest_sh("chmod 600 pw.txt"), 0);
    setenv("E2M_ITEST_PW", "Sup3r-secret pw", 1);
    static const struct {
        const char *name, *secret; // the mqtt: keys giving the password
        bool warned;               // the configuration file is flagged as world-readable
    } sources[] = {
        {"literal", "password: 'Sup3r-secret pw'", true},
        {"file", "password_file: pw.txt", false},
        {"env", "password: '${E2M_ITEST_PW}'", false},
    };
    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        char name[64], secret[128];
        snprintf(name, sizeof(name), "pw-%s.yaml", sources[i].name);
        // A relative password_file is relative to the daemon's working directory.
        snprintf(secret, sizeof(secret), "%s", sources[i].secret);
        if (strstr(secret, "pw.txt"))
            snprintf(secret, sizeof(secret), "password_file: %s/pw.txt", d);
        const char *cfg = itest_write_file(
            name,
            "mqtt: {url: 'mqtt://127.0.0.1:%d', username: e2m, %s, base_topic: pw%zu,\n"
            "       scan_time: 200ms}\n"
            "state_dir: %s\n"
            "devices:\n"
            "  - {id: inv, name: Roof inverter, model: sunspec/inverter, host: 127.0.0.1,\n"
            "     port: %d, options: {poll_interval: 500ms, reply_timeout: 500ms}}\n",
            auth_port, secret, i, d, inv.ports[0]);
        ck_assert_int_eq(itest_sh("chmod 644 %s", name), 0);
        struct proc p;
        char log[96], topic[128], line[512];
        snprintf(log, sizeof(log), "daemon-pw-%s.log", sources[i].name);
        daemon_start(&p, cfg, log);
        snprintf(topic, sizeof(topic), "pw%zu/inv/availability", i);
        char *s = collector_wait(c, topic, "online", 10000);
        ck_assert_msg(s, "%s: not online through the password-protected listener (see %s)",
                      sources[i].name, p.log);
        free(s);
        snprintf(topic, sizeof(topic), "pw%zu/inv/state", i);
        s = collector_wait(c, topic, "\"power_limit\":", 10000);
        ck_assert_msg(s, "%s: no state (see %s)", sources[i].name, p.log);
        free(s);
        snprintf(topic, sizeof(topic), "pw%zu/inv/power_limit/set", i);
        char value[8];
        snprintf(value, sizeof(value), "%zu", 40 + i);
        collector_publish(c, topic, value, false);
        ck_assert_msg(sim_wait_write(&inv, "write", line, sizeof(line), 5000), "%s: no write",
                      sources[i].name);
        ck_assert_msg(proc_wait_log(&p, "power_limit confirmed by read-back", 5000),
                      "%s: the command was not confirmed (see %s)", sources[i].name, p.log);
        ck_assert_int_eq(proc_stop(&p, SIGTERM, 30000), 0);
        ck_assert_msg(proc_log_contains(&p, " DEBUG ["), "%s: not a debug log (see %s)",
                      sources[i].name, p.log);
        ck_assert_msg(!proc_log_contains(&p, "Sup3r-secret"), "%s: the password is in %s",
                      sources[i].name, p.log);
        ck_assert_msg(proc_log_contains(&p, "chmod 600") == sources[i].warned,
                      "%s: world-readable warning %s (see %s)", sources[i].name,
                      sources[i].warned ? "missing" : "unexpected", p.log);
    }
    unsetenv("E2M_ITEST_PW");
    collector_free(c);
    proc_stop(&inv.p, SIGTERM, 3000);
    broker_stop(&b);
    itest_cleanup();
}
END_TEST

int main(int argc, char **argv)
{
    const struct itest_case all[] = {
        {"discovery_appears_and_validates", discovery_appears_and_validates},
        {"states_carry_simulator_values", states_carry_simulator_values},
        {"number_command_is_written_and_confirmed", number_command_is_written_and_confirmed},
        {"bad_commands_are_refused_and_snap_back", bad_commands_are_refused_and_snap_back},
        {"birth_message_triggers_republish", birth_message_triggers_republish},
        {"killed_daemon_leaves_offline", killed_daemon_leaves_offline},
        {"second_instance_does_not_interfere", second_instance_does_not_interfere},
        {"a_burst_of_many_devices_loses_nothing", a_burst_of_many_devices_loses_nothing},
        {"stale_configs_are_cleared_at_start", stale_configs_are_cleared_at_start},
        {"broker_restart_brings_everything_back", broker_restart_brings_everything_back},
        {"device_faults_mark_offline_then_recover", device_faults_mark_offline_then_recover},
        {"energy_counter_never_goes_back", energy_counter_never_goes_back},
        {"modbus_rtu_end_to_end", modbus_rtu_end_to_end},
        {"tls_and_password", tls_and_password},
        {"password_never_logged_in_a_full_run", password_never_logged_in_a_full_run},
    };
    return itest_main("integration", all, sizeof(all) / sizeof(all[0]), 180, argc, argv);
}
