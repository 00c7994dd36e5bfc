// SPDX-License-Identifier: MIT
// The smartmeter driver end to end: a real mosquitto, the PowerMeter/SmartMeter simulator
// (its own implementation of the line protocol), and the daemon.
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define SIM "tests/sim/e2m-smartmeter-sim"

struct rig {
    struct broker broker;
    struct sim meter;
    struct proc daemon;
    struct collector *mqtt;
};

static void rig_start(struct rig *r, const char *type, bool mqtt_mode)
{
    memset(r, 0, sizeof(*r));
    broker_start(&r->broker, false);
    char mqtt_arg[64];
    snprintf(mqtt_arg, sizeof(mqtt_arg), "127.0.0.1:%d", r->broker.port);
    const char *args_tcp[] = {"--type", type, "--port", "0", "--tick", "200", NULL};
    const char *args_mqtt[] = {"--type", type,         "--name", "meter7", "--port", "0", "--mqtt",
                               mqtt_arg, "--interval", "0.5",    "--tick", "200",    NULL};
    sim_start_bin(&r->meter, SIM, mqtt_mode ? args_mqtt : args_tcp);
    r->mqtt = collector_new(r->broker.port, "#");
    const char *model =
        strcmp(type, "powermeter") == 0 ? "voelkerb/powermeter" : "voelkerb/smartmeter";
    const char *cfg;
    if (mqtt_mode)
        cfg = itest_write_file("sm.yaml",
                               "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
                               "state_dir: %s\n"
                               "devices:\n"
                               "  - {id: m, name: Meter, model: %s, mode: mqtt, meter: meter7,\n"
                               "     options: {poll_interval: 1s, sample_interval: 500ms}}\n",
                               r->broker.port, itest_dir(), model);
    else
        cfg = itest_write_file("sm.yaml",
                               "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
                               "state_dir: %s\n"
                               "devices:\n"
                               "  - {id: m, name: Meter, model: %s, host: 127.0.0.1, port: %d,\n"
                               "     options: {poll_interval: 1s, backoff_min: 500ms, "
                               "backoff_max: 1s, liveness: 2s}}\n",
                               r->broker.port, itest_dir(), model, r->meter.ports[0]);
    daemon_start(&r->daemon, cfg, "daemon.log");
    char *s = collector_wait(r->mqtt, "energy2mqtt/m/availability", "online", 10000);
    ck_assert_msg(s, "the meter never came online");
    free(s);
}

static void rig_stop(struct rig *r)
{
    int rc = proc_stop(&r->daemon, SIGTERM, 30000);
    ck_assert_msg(rc == 0, "the daemon exited with %d", rc);
    collector_free(r->mqtt);
    proc_stop(&r->meter.p, SIGTERM, 3000);
    broker_stop(&r->broker);
    itest_cleanup();
}

START_TEST(powermeter_tcp_values_and_discovery)
{
    struct rig r;
    rig_start(&r, "powermeter", false);
    char ok[128];
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "freeze"));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set power 1234.5"));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set voltage 230"));
    // Above whatever the simulator starts with: a lower total would be a decrease, which the
    // counter guard rightly refuses (and a jump beyond max_rate takes two confirmations).
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set energy 5000000"));
    ck_assert_msg(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "power", 1234.5, 0.05, 5000),
                  "power != 1234.5 W");
    ck_assert_msg(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "energy", 5000.0, 0.0005, 8000),
                  "5000000 Wh != 5000 kWh");
    // getCurrent answers in mA; published in A (1234.5 W / 230 V = 5.367 A).
    ck_assert_msg(
        itest_wait_number(r.mqtt, "energy2mqtt/m/state", "current", 1234.5 / 230, 0.01, 5000),
        "current %f", itest_state_number(r.mqtt, "energy2mqtt/m/state", "current"));
    char *s = collector_wait(r.mqtt, "energy2mqtt/m/state", "\"firmware\":\"2", 3000);
    ck_assert_ptr_nonnull(s);
    free(s);
    // Discovery passes the validator, with every topic it references published.
    itest_assert_discovery_valid(r.mqtt);
    rig_stop(&r);
}
END_TEST

START_TEST(powermeter_relay_round_trip_and_refusal)
{
    struct rig r;
    rig_start(&r, "powermeter", false);
    char line[256];
    collector_publish(r.mqtt, "energy2mqtt/m/relay/set", "OFF", false);
    ck_assert_msg(sim_wait_write(&r.meter, "relay 0", line, sizeof(line), 5000), "relay not off");
    char *s = collector_wait(r.mqtt, "energy2mqtt/m/state", "\"relay\":\"OFF\"", 5000);
    ck_assert_msg(s, "relay OFF not confirmed");
    free(s);
    s = collector_wait(r.mqtt, "energy2mqtt/m/state", "\"in_use\":\"OFF\"", 5000);
    ck_assert_msg(s, "in_use still on with the relay off");
    free(s);
    collector_publish(r.mqtt, "energy2mqtt/m/relay/set", "ON", false);
    ck_assert(sim_wait_write(&r.meter, "relay 1", line, sizeof(line), 5000));
    // A malformed command is refused and never reaches the meter.
    collector_publish(r.mqtt, "energy2mqtt/m/relay/set", "MAYBE", false);
    itest_sleep_ms(1500);
    ck_assert(!sim_wait_write(&r.meter, "cmd switch", line, sizeof(line), 300));
    ck_assert(proc_log_contains(&r.daemon, "refused m/relay: 'MAYBE' is neither ON nor OFF"));
    rig_stop(&r);
}
END_TEST

START_TEST(stalled_meter_goes_offline_and_back)
{
    struct rig r;
    rig_start(&r, "powermeter", false);
    collector_clear(r.mqtt);
    char ok[128];
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault stall"));
    char *s = collector_wait(r.mqtt, "energy2mqtt/m/availability", "offline", 20000);
    ck_assert_msg(s, "a stalled meter never went offline");
    free(s);
    ck_assert(proc_log_contains(&r.daemon, "nothing received for"));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault none"));
    s = collector_wait(r.mqtt, "energy2mqtt/m/availability", "online", 20000);
    ck_assert_msg(s, "the meter did not come back");
    free(s);
    rig_stop(&r);
}
END_TEST

// Garbage on the line is survived; a meter that refuses connections goes offline, a command
// meanwhile is dropped after its retries and snaps back, and nothing is switched later.
START_TEST(garbage_refused_connections_and_commands_meanwhile)
{
    struct rig r;
    rig_start(&r, "powermeter", false);
    char ok[128], line[256];
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault garbage"));
    itest_sleep_ms(3000);
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault none"));
    collector_clear(r.mqtt);
    char *s = collector_wait(r.mqtt, "energy2mqtt/m/state", "\"link_status\":\"online\"", 10000);
    ck_assert_msg(s, "not back online after the garbage");
    free(s);

    collector_clear(r.mqtt);
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault drop"));
    s = collector_wait(r.mqtt, "energy2mqtt/m/availability", "offline", 20000);
    ck_assert_msg(s, "a meter refusing connections never went offline");
    free(s);
    collector_publish(r.mqtt, "energy2mqtt/m/relay/set", "OFF", false);
    long long end = itest_now_ms() + 20000;
    while (itest_now_ms() < end && !proc_log_contains(&r.daemon, "relay: command dropped"))
        itest_sleep_ms(200);
    ck_assert_msg(proc_log_contains(&r.daemon, "relay: command dropped"),
                  "the write to an unreachable meter was not dropped");
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault none"));
    s = collector_wait(r.mqtt, "energy2mqtt/m/availability", "online", 20000);
    ck_assert_msg(s, "the meter did not come back");
    free(s);
    ck_assert(!sim_wait_write(&r.meter, "relay 0", line, sizeof(line), 1500));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "get relay"));
    ck_assert_str_eq(ok, "ok 1");
    rig_stop(&r);
}
END_TEST

START_TEST(energy_total_survives_reset_energy)
{
    struct rig r;
    rig_start(&r, "powermeter", false);
    char ok[128];
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "freeze"));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set energy 5000000"));
    ck_assert(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "energy", 5000.0, 0.0005, 8000));
    // The button sends resetEnergy; the meter's counter restarts from 0.
    collector_publish(r.mqtt, "energy2mqtt/m/reset_energy/set", "PRESS", false);
    char line[128];
    ck_assert(sim_wait_write(&r.meter, "cmd resetEnergy", line, sizeof(line), 5000));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set energy 200"));
    // The published total continues from 5000 kWh instead of dropping to 0.2.
    ck_assert_msg(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "energy", 5000.2, 0.0005, 8000),
                  "energy %f", itest_state_number(r.mqtt, "energy2mqtt/m/state", "energy"));
    ck_assert(proc_log_contains(&r.daemon, "energy: device reset carried over"));
    rig_stop(&r);
}
END_TEST

START_TEST(smartmeter_mqtt_mode)
{
    struct rig r;
    rig_start(&r, "smartmeter", true);
    char ok[128];
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "freeze"));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set power 100 200 300"));
    ck_assert_msg(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "power", 600, 0.05, 5000),
                  "power %f", itest_state_number(r.mqtt, "energy2mqtt/m/state", "power"));
    ck_assert(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "l2_power", 200, 0.05, 2000));
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "set energy 5000000"));
    // The SmartMeter's samples carry kWh (the PowerMeter's Wh); the entity shows kWh.
    ck_assert_msg(itest_wait_number(r.mqtt, "energy2mqtt/m/state", "energy", 5000.0, 0.001, 8000),
                  "energy %f", itest_state_number(r.mqtt, "energy2mqtt/m/state", "energy"));
    // No availability topic: stopping samples makes the device offline.
    collector_clear(r.mqtt);
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault stall"));
    char *s = collector_wait(r.mqtt, "energy2mqtt/m/availability", "offline", 15000);
    ck_assert_msg(s, "missed samples did not make the meter offline");
    free(s);
    ck_assert(sim_command(&r.meter, ok, sizeof(ok), "fault none"));
    s = collector_wait(r.mqtt, "energy2mqtt/m/availability", "online", 15000);
    ck_assert_ptr_nonnull(s);
    free(s);
    // energy2mqtt never publishes to the broadcast topics every meter obeys.
    ck_assert_uint_eq(collector_count_prefix(r.mqtt, "powermeter/cmd"), 0);
    ck_assert_uint_eq(collector_count_prefix(r.mqtt, "powermeter/switch"), 0);
    ck_assert_uint_eq(collector_count_prefix(r.mqtt, "powermeter/sample"), 0);
    ck_assert(!proc_log_contains(&r.meter.p, "broadcast"));
    rig_stop(&r);
}
END_TEST

START_TEST(powermeter_mqtt_relay)
{
    struct rig r;
    rig_start(&r, "powermeter", true);
    char line[128];
    collector_publish(r.mqtt, "energy2mqtt/m/relay/set", "OFF", false);
    ck_assert_msg(sim_wait_write(&r.meter, "relay 0", line, sizeof(line), 5000), "no switch");
    char *s = collector_wait(r.mqtt, "powermeter/meter7/state/switch", "false", 5000);
    ck_assert_ptr_nonnull(s);
    free(s);
    s = collector_wait(r.mqtt, "energy2mqtt/m/state", "\"relay\":\"OFF\"", 5000);
    ck_assert_msg(s, "relay OFF not confirmed over MQTT");
    free(s);
    ck_assert_uint_eq(collector_count_prefix(r.mqtt, "powermeter/switch"), 0);
    rig_stop(&r);
}
END_TEST

int main(int argc, char **argv)
{
    const struct itest_case all[] = {
        {"powermeter_tcp_values_and_discovery", powermeter_tcp_values_and_discovery},
        {"powermeter_relay_round_trip_and_refusal", powermeter_relay_round_trip_and_refusal},
        {"stalled_meter_goes_offline_and_back", stalled_meter_goes_offline_and_back},
        {"energy_total_survives_reset_energy", energy_total_survives_reset_energy},
        {"garbage_refused_connections_and_commands_meanwhile",
         garbage_refused_connections_and_commands_meanwhile},
        {"smartmeter_mqtt_mode", smartmeter_mqtt_mode},
        {"powermeter_mqtt_relay", powermeter_mqtt_relay},
    };
    return itest_main("smartmeter", all, sizeof(all) / sizeof(all[0]), 120, argc, argv);
}
