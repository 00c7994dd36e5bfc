// SPDX-License-Identifier: MIT
// The luxpower driver end to end: a real mosquitto, the simulated dongle and inverter
// (e2m-luxpower-sim, its own implementation of LXP) and the daemon. Values against the
// simulator's registers, discovery through the validator, every control round trip (AC charge
// changes bit 7 of holding 21 and nothing else), refused commands changing nothing, broadcasts
// decoded between polls once the heartbeats are answered, a dongle that drops, stalls or
// corrupts frames, and learned serials kept across a kill -9 and restart.
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define SIM   "tests/sim/e2m-luxpower-sim"
#define STATE "energy2mqtt/lux/state"

struct rig {
    struct broker broker;
    struct sim dongle;
    struct proc daemon;
    struct collector *mqtt;
};

// Starts the broker, the simulator and the daemon, without waiting for the inverter.
static void rig_launch(struct rig *r, const char *const *sim_args, const char *options)
{
    memset(r, 0, sizeof(*r));
    broker_start(&r->broker, false);
    // Heartbeats every second: the daemon learns the dongle's serial from the first one.
    const char *args[40] = {"--port", "0", "--static", "--tz", "0", "--heartbeat-ms", "1000"};
    size_t n = 7;
    for (; sim_args && *sim_args; sim_args++)
        args[n++] = *sim_args;
    args[n] = NULL;
    sim_start_bin(&r->dongle, SIM, args);
    r->mqtt = collector_new(r->broker.port, "#");
    const char *cfg = itest_write_file("lux.yaml",
                                       "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
                                       "state_dir: %s\n"
                                       "devices:\n"
                                       "  - id: lux\n"
                                       "    name: Hybrid\n"
                                       "    model: luxpower/lxp-hybrid\n"
                                       "    host: 127.0.0.1\n"
                                       "    port: %d\n"
                                       "    options:\n"
                                       "      min_request_gap: 100ms\n"
                                       "      unsafe_timing: true\n"
                                       "      connect_timeout: 500ms\n"
                                       "      reply_timeout: 1s\n"
                                       "      backoff_min: 500ms\n"
                                       "      backoff_max: 2s\n"
                                       "      reconnect_delay: 200ms\n"
                                       "%s",
                                       r->broker.port, itest_dir(), r->dongle.ports[0],
                                       options ? options : "      poll_interval: 2s\n");
    daemon_start(&r->daemon, cfg, "daemon.log");
}

static void rig_start(struct rig *r, const char *const *sim_args, const char *options)
{
    rig_launch(r, sim_args, options);
    char *s = collector_wait(r->mqtt, "energy2mqtt/lux/availability", "online", 20000);
    ck_assert_msg(s, "the inverter never came online");
    free(s);
}

static void rig_stop(struct rig *r)
{
    // Whatever happened, register 11 (reset, restart) was never written.
    char ok[1024];
    ck_assert(sim_command(&r->dongle, ok, sizeof(ok), "stats"));
    ck_assert_msg(json_number_of(ok + 3, "reg11_writes") == 0, "register 11 written: %s", ok);
    int rc = proc_stop(&r->daemon, SIGTERM, 30000);
    ck_assert_msg(rc == 0, "the daemon exited with %d", rc);
    collector_free(r->mqtt);
    proc_stop(&r->dongle.p, SIGTERM, 3000);
    broker_stop(&r->broker);
    itest_cleanup();
}

static unsigned sim_get(struct rig *r, const char *table, unsigned reg)
{
    char ok[256];
    ck_assert_msg(sim_command(&r->dongle, ok, sizeof(ok), "get %s %u", table, reg), "get %s %u",
                  table, reg);
    return (unsigned)strtoul(ok + 3, NULL, 10);
}

static void sim_set(struct rig *r, const char *table, unsigned reg, unsigned value)
{
    char ok[256];
    ck_assert_msg(sim_command(&r->dongle, ok, sizeof(ok), "set %s %u %u", table, reg, value),
                  "set %s %u", table, reg);
}

static double sim_stat(struct rig *r, const char *key)
{
    char ok[1024];
    ck_assert(sim_command(&r->dongle, ok, sizeof(ok), "stats"));
    return json_number_of(ok + 3, key);
}

START_TEST(values_and_discovery)
{
    struct rig r;
    rig_start(&r, NULL, NULL);
    ck_assert(itest_wait_text(r.mqtt, STATE, "serial_number", "4410000001", 10000));
    ck_assert(proc_wait_log(&r.daemon, "the inverter's serial is 4410000001", 1000));
    ck_assert(proc_wait_log(&r.daemon, "the dongle's serial is BA10000001", 1000));
    // Values as the simulator's registers hold them, in the entity's units.
    unsigned r5 = sim_get(&r, "input", 5);
    ck_assert(itest_state_number(r.mqtt, STATE, "battery_soc") == (r5 & 0xff));
    ck_assert(itest_state_number(r.mqtt, STATE, "battery_soh") == (r5 >> 8));
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "battery_voltage") -
                   sim_get(&r, "input", 4) / 10.0) < 1e-6);
    ck_assert(itest_state_number(r.mqtt, STATE, "pv1_power") == sim_get(&r, "input", 7));
    ck_assert(itest_state_number(r.mqtt, STATE, "pv_power") ==
              sim_get(&r, "input", 7) + sim_get(&r, "input", 8) + sim_get(&r, "input", 9));
    double pv1_total = (sim_get(&r, "input", 40) | sim_get(&r, "input", 41) << 16) / 10.0;
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "pv1_energy_total") - pv1_total) < 1e-6);
    ck_assert(itest_state_number(r.mqtt, STATE, "cell_temperature_min") == -2.5); // signed
    ck_assert(itest_state_number(r.mqtt, STATE, "battery_max_charge_current") == 120);
    ck_assert(itest_wait_number(r.mqtt, STATE, "ac_charge_soc_limit", sim_get(&r, "holding", 67), 0,
                                5000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "ac_charge_1_start", "02:30", 1000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "ac_charge", "OFF", 1000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "firmware_code", "FAAB", 1000));
    // Changed registers: a new status, a discharging battery (negative current), a fault.
    sim_set(&r, "input", 0, 16);
    sim_set(&r, "input", 98, 65536 - 500);
    sim_set(&r, "input", 10, 0);
    sim_set(&r, "input", 11, 1500);
    sim_set(&r, "input", 60, 1); // bit 0
    sim_set(&r, "input", 61, 2); // bit 17
    ck_assert(itest_wait_text(r.mqtt, STATE, "status", "Battery on-grid", 8000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "battery_current", -5, 1e-9, 1000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "battery_power", 1500, 0, 1000)); // + discharging
    ck_assert(itest_wait_text(r.mqtt, STATE, "fault",
                              "Internal communication fault 1, Internal communication fault 2",
                              1000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "fault_code", 131073, 0, 1000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "warning", "OK", 1000));
    itest_assert_discovery_valid(r.mqtt);
    rig_stop(&r);
}
END_TEST

// Waits for the simulator's "write holding <reg> ..." line and returns the first value.
static unsigned wait_write(struct rig *r, unsigned reg, unsigned count)
{
    char prefix[64], line[512];
    snprintf(prefix, sizeof(prefix), "write holding %u %u ", reg, count);
    ck_assert_msg(sim_wait_write(&r->dongle, prefix, line, sizeof(line), 8000), "no write of %u",
                  reg);
    return (unsigned)strtoul(line + strlen(prefix), NULL, 10);
}

START_TEST(controls)
{
    struct rig r;
    rig_start(&r, NULL, NULL);
    ck_assert(itest_wait_text(r.mqtt, STATE, "ac_charge", "OFF", 10000));
    // AC charge: read-modify-write of holding 21, only bit 7 changes.
    unsigned before = sim_get(&r, "holding", 21);
    collector_publish(r.mqtt, "energy2mqtt/lux/ac_charge/set", "ON", false);
    unsigned after = wait_write(&r, 21, 1);
    ck_assert_uint_eq(after, before | 0x80);
    ck_assert(itest_wait_text(r.mqtt, STATE, "ac_charge", "ON", 5000));
    ck_assert(proc_wait_log(&r.daemon, "ac_charge confirmed by read-back", 5000));
    collector_publish(r.mqtt, "energy2mqtt/lux/ac_charge/set", "OFF", false);
    ck_assert_uint_eq(wait_write(&r, 21, 1), before);
    ck_assert(itest_wait_text(r.mqtt, STATE, "ac_charge", "OFF", 5000));
    // The app changed another bit meanwhile: a fresh read keeps it.
    sim_set(&r, "holding", 21, before | 0x1);
    collector_publish(r.mqtt, "energy2mqtt/lux/forced_discharge/set", "ON", false);
    ck_assert_uint_eq(wait_write(&r, 21, 1), before | 0x1 | 0x400);
    ck_assert(itest_wait_text(r.mqtt, STATE, "forced_discharge", "ON", 5000));
    collector_publish(r.mqtt, "energy2mqtt/lux/charge_priority/set", "ON", false);
    ck_assert_uint_eq(wait_write(&r, 21, 1), before | 0x1 | 0x400 | 0x800);
    ck_assert(itest_wait_text(r.mqtt, STATE, "charge_priority", "ON", 5000));

    // Numbers: one register each, confirmed by the echo and the read-back.
    static const struct {
        const char *id;
        unsigned reg;
        const char *value;
    } numbers[] = {
        {"charge_power_percent", 64, "60"},           {"discharge_power_percent", 65, "40"},
        {"ac_charge_power_percent", 66, "75"},        {"ac_charge_soc_limit", 67, "85"},
        {"discharge_cutoff_soc", 105, "15"},          {"forced_discharge_soc_limit", 83, "30"},
        {"charge_priority_power_percent", 74, "20"},  {"charge_priority_soc_limit", 75, "95"},
        {"forced_discharge_power_percent", 82, "45"}, {"eps_discharge_cutoff_soc", 125, "12"},
    };
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        char topic[128];
        snprintf(topic, sizeof(topic), "energy2mqtt/lux/%s/set", numbers[i].id);
        collector_publish(r.mqtt, topic, numbers[i].value, false);
        ck_assert_uint_eq(wait_write(&r, numbers[i].reg, 1), strtoul(numbers[i].value, NULL, 10));
        ck_assert_msg(
            itest_wait_number(r.mqtt, STATE, numbers[i].id, atof(numbers[i].value), 0, 5000), "%s",
            numbers[i].id);
        ck_assert_uint_eq(sim_get(&r, "holding", numbers[i].reg),
                          strtoul(numbers[i].value, NULL, 10));
    }

    // Every time slot: hour in the low byte, minute in the high one.
    static const struct {
        const char *kind;
        unsigned first;
    } slots[] = {{"ac_charge", 68}, {"charge_priority", 76}, {"forced_discharge", 84}};
    for (unsigned k = 0; k < 3; k++) {
        for (unsigned i = 0; i < 6; i++) {
            char topic[128], id[64], hhmm[8];
            snprintf(id, sizeof(id), "%s_%u_%s", slots[k].kind, i / 2 + 1, i % 2 ? "end" : "start");
            snprintf(topic, sizeof(topic), "energy2mqtt/lux/%s/set", id);
            unsigned hour = (7 * k + 3 * i + 1) % 24, minute = (11 * i + 5 * k) % 60;
            snprintf(hhmm, sizeof(hhmm), "%02u:%02u", hour, minute);
            collector_publish(r.mqtt, topic, hhmm, false);
            ck_assert_uint_eq(wait_write(&r, slots[k].first + i, 1), minute << 8 | hour);
            ck_assert_msg(itest_wait_text(r.mqtt, STATE, id, hhmm, 5000), "%s not %s", id, hhmm);
        }
    }

    // The clock button: one write of holding 12-14.
    collector_publish(r.mqtt, "energy2mqtt/lux/sync_clock/set", "PRESS", false);
    wait_write(&r, 12, 3);

    // Out of range, or not a time: refused before anything is sent; nothing changes.
    double writes = sim_stat(&r, "writes");
    collector_publish(r.mqtt, "energy2mqtt/lux/discharge_cutoff_soc/set", "95", false);
    collector_publish(r.mqtt, "energy2mqtt/lux/charge_power_percent/set", "101", false);
    collector_publish(r.mqtt, "energy2mqtt/lux/ac_charge_1_end/set", "24:00", false);
    collector_publish(r.mqtt, "energy2mqtt/lux/ac_charge_1_end/set", "7:5", false);
    ck_assert(proc_wait_log(&r.daemon, "refused lux/ac_charge_1_end: '7:5' does not match", 5000));
    ck_assert(proc_log_contains(&r.daemon, "refused lux/discharge_cutoff_soc: 95 is outside"));
    ck_assert(proc_log_contains(&r.daemon, "refused lux/charge_power_percent: 101 is outside"));
    ck_assert(proc_log_contains(&r.daemon, "refused lux/ac_charge_1_end: '24:00' does not match"));
    itest_sleep_ms(1500);
    ck_assert(sim_stat(&r, "writes") == writes);
    ck_assert_uint_eq(sim_get(&r, "holding", 105), 15);
    ck_assert_uint_eq(sim_get(&r, "holding", 69), 11u << 8 | 4); // 04:11, as set above
    rig_stop(&r);
}
END_TEST

// No cloud: the dongle broadcasts only once the daemon answers its heartbeats; then values
// arrive between polls (an hour apart here), in the combined 0-126 frame of protocol 5.
START_TEST(broadcasts_need_heartbeat_echo)
{
    static const char *const args[] = {
        "--cloud", "off",        "--heartbeat-ms", "400", "--broadcast-ms",
        "800",     "--combined", "--protocol",     "5",   NULL};
    struct rig r;
    rig_start(&r, args,
              "      poll_interval: 1h\n"
              "      broadcast_interval: 1s\n"
              "      stale_after: 1h\n");
    ck_assert(proc_wait_log(&r.daemon, "answering the dongle's heartbeats", 10000));
    long long end = itest_now_ms() + 10000;
    while (itest_now_ms() < end && sim_stat(&r, "broadcasts") < 2)
        itest_sleep_ms(200);
    ck_assert(sim_stat(&r, "echoes") >= 1);
    ck_assert(sim_stat(&r, "broadcasts") >= 2);
    double reads = sim_stat(&r, "reads");
    sim_set(&r, "input", 7, 4321);
    ck_assert_msg(itest_wait_number(r.mqtt, STATE, "pv1_power", 4321, 0, 8000),
                  "the broadcast was not decoded");
    ck_assert(sim_stat(&r, "reads") == reads); // no poll brought it
    rig_stop(&r);
}
END_TEST

// A dongle that drops the connection, swallows a request or corrupts a frame.
START_TEST(faults_and_reconnect)
{
    struct rig r;
    rig_start(&r, NULL, NULL);
    ck_assert(itest_wait_text(r.mqtt, STATE, "ac_charge", "OFF", 10000));
    char ok[256];
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault drop"));
    ck_assert(proc_wait_log(&r.daemon, "the dongle closed the connection", 5000));
    sim_set(&r, "input", 7, 1111);
    ck_assert_msg(itest_wait_number(r.mqtt, STATE, "pv1_power", 1111, 0, 10000),
                  "no values after reconnecting");
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault badcrc"));
    sim_set(&r, "input", 7, 2222);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 2222, 0, 10000));
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault stall"));
    sim_set(&r, "input", 7, 3333);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 3333, 0, 10000));
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault split"));
    sim_set(&r, "input", 7, 4444);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 4444, 0, 10000));
    // A write while the dongle stalls its answer: retried, then confirmed.
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault stall"));
    collector_publish(r.mqtt, "energy2mqtt/lux/ac_charge_power_percent/set", "33", false);
    ck_assert(itest_wait_number(r.mqtt, STATE, "ac_charge_power_percent", 33, 0, 15000));
    char *s = collector_last(r.mqtt, "energy2mqtt/lux/availability");
    ck_assert_str_eq(s, "online");
    free(s);
    rig_stop(&r);
}
END_TEST

// The serials learned from the first frames are on disk within a second or two, so a daemon
// killed with -9 right after and started again polls at once with them: it needs no heartbeat
// (the simulator sends one only when told to, here once in the first run).
START_TEST(serials_kept_across_restarts)
{
    static const char *const args[] = {"--heartbeat-ms", "86400000", "--broadcast-ms", "86400000",
                                       NULL};
    struct rig r;
    rig_launch(&r, args, NULL);
    char ok[1024];
    long long end = itest_now_ms() + 10000;
    while (itest_now_ms() < end && sim_command(&r.dongle, ok, sizeof(ok), "clients") &&
           strcmp(ok, "ok 1") != 0)
        itest_sleep_ms(50);
    ck_assert_str_eq(ok, "ok 1");
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "heartbeat"));
    char *s = collector_wait(r.mqtt, "energy2mqtt/lux/availability", "online", 20000);
    ck_assert_msg(s, "the inverter never came online");
    free(s);
    ck_assert(proc_wait_log(&r.daemon, "the inverter's serial is 4410000001", 5000));

    // On disk as hex: "BA10000001" and "4410000001".
    char path[600];
    snprintf(path, sizeof(path), "%s/energy2mqtt-state.json", itest_dir());
    bool kept = false;
    end = itest_now_ms() + 5000;
    while (!kept && itest_now_ms() < end) {
        char text[4096] = "";
        FILE *f = fopen(path, "r");
        if (f) {
            text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
            fclose(f);
        }
        kept = strstr(text, "\"dongle_serial\":\"42413130303030303031\"") &&
               strstr(text, "\"inverter_serial\":\"34343130303030303031\"");
        if (!kept)
            itest_sleep_ms(100);
    }
    ck_assert_msg(kept, "the learned serials were not written promptly to %s", path);
    ck_assert_int_eq(proc_stop(&r.daemon, SIGKILL, 5000), 128 + SIGKILL);

    collector_clear(r.mqtt);
    double heartbeats = sim_stat(&r, "heartbeats"), reads = sim_stat(&r, "reads");
    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s/lux.yaml", itest_dir());
    daemon_start(&r.daemon, cfg, "daemon2.log");
    ck_assert(
        proc_wait_log(&r.daemon, "the dongle's serial is BA10000001 (from the last run)", 5000));
    s = collector_wait(r.mqtt, "energy2mqtt/lux/availability", "online", 10000);
    ck_assert_msg(s, "the restarted daemon did not poll with the kept serials");
    free(s);
    ck_assert(sim_stat(&r, "reads") > reads);
    ck_assert(sim_stat(&r, "heartbeats") == heartbeats);
    ck_assert(sim_stat(&r, "wrong_dongle") == 0);
    rig_stop(&r);
}
END_TEST

int main(int argc, char **argv)
{
    const struct itest_case all[] = {
        {"values_and_discovery", values_and_discovery},
        {"controls", controls},
        {"broadcasts_need_heartbeat_echo", broadcasts_need_heartbeat_echo},
        {"faults_and_reconnect", faults_and_reconnect},
        {"serials_kept_across_restarts", serials_kept_across_restarts},
    };
    return itest_main("luxpower", all, sizeof(all) / sizeof(all[0]), 180, argc, argv);
}
