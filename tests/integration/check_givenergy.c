// SPDX-License-Identifier: MIT
// The givenergy driver end to end: a real mosquitto, the simulated dongle, inverter and
// battery pack (e2m-givenergy-sim, its own implementation of the envelope) and the daemon.
// Values against the simulator's registers (32-bit counters high word first, signed powers,
// HHMM slots), discovery through the validator, every control round trip with its read-back,
// refused commands changing nothing, the model check refusing a wrong entity file, and a dongle
// that drops, stalls, corrupts or zeroes frames, paced so that it never drops a request.
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define SIM   "tests/sim/e2m-givenergy-sim"
#define STATE "energy2mqtt/ge/state"

struct rig {
    struct broker broker;
    struct sim dongle;
    struct proc daemon;
    struct collector *mqtt;
};

// Starts the broker, a simulator of `family` and the daemon with entity file `model`. With
// `online` it waits until the device is online.
static void rig_start(struct rig *r, const char *family, const char *model, bool online)
{
    memset(r, 0, sizeof(*r));
    broker_start(&r->broker, false);
    const char *args[] = {"--port",         "0",   "--static", "--family", family,
                          "--heartbeat-ms", "700", NULL};
    sim_start_bin(&r->dongle, SIM, args);
    r->mqtt = collector_new(r->broker.port, "#");
    const char *cfg = itest_write_file("ge.yaml",
                                       "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
                                       "state_dir: %s\n"
                                       "devices:\n"
                                       "  - id: ge\n"
                                       "    name: GivEnergy\n"
                                       "    model: givenergy/%s\n"
                                       "    host: 127.0.0.1\n"
                                       "    port: %d\n"
                                       "    options:\n"
                                       "      poll_interval: 2s\n"
                                       "      connect_timeout: 500ms\n"
                                       "      reply_timeout: 1s\n"
                                       "      backoff_min: 500ms\n"
                                       "      backoff_max: 2s\n"
                                       "      reconnect_delay: 200ms\n",
                                       r->broker.port, itest_dir(), model, r->dongle.ports[0]);
    daemon_start(&r->daemon, cfg, "daemon.log");
    if (online) {
        char *s = collector_wait(r->mqtt, "energy2mqtt/ge/availability", "online", 20000);
        ck_assert_msg(s, "the inverter never came online");
        free(s);
    }
}

static double sim_stat(struct rig *r, const char *key)
{
    char ok[1024];
    ck_assert(sim_command(&r->dongle, ok, sizeof(ok), "stats"));
    return json_number_of(ok + 3, key);
}

static void rig_stop(struct rig *r)
{
    // Whatever happened, the daemon kept the gap: the inverter never dropped a request.
    ck_assert_msg(sim_stat(r, "early_drops") == 0, "requests came too close together");
    ck_assert_msg(sim_stat(r, "crc_drops") == 0, "a request had a wrong CRC");
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

static double u32_at(struct rig *r, const char *table, unsigned reg)
{
    return (double)sim_get(r, table, reg) * 65536.0 + sim_get(r, table, reg + 1);
}

START_TEST(values_and_discovery)
{
    struct rig r;
    rig_start(&r, "hybrid", "hybrid", true);
    ck_assert(itest_wait_text(r.mqtt, STATE, "serial_number", "SA2114G047", 10000));
    ck_assert(proc_wait_log(&r.daemon, "GivEnergy hybrid SA2114G047 (device type 2001", 1000));
    // Values as the simulator's registers hold them, in the entity's units, once the first
    // input page is in (the identity and settings pages come first).
    ck_assert(itest_wait_number(r.mqtt, STATE, "battery_soc", sim_get(&r, "input", 59), 0, 10000));
    ck_assert(itest_state_number(r.mqtt, STATE, "pv1_power") == sim_get(&r, "input", 18));
    ck_assert(itest_state_number(r.mqtt, STATE, "pv_power") ==
              sim_get(&r, "input", 18) + sim_get(&r, "input", 20));
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "battery_voltage") -
                   sim_get(&r, "input", 50) / 100.0) < 1e-6);
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "inverter_temperature") -
                   sim_get(&r, "input", 41) / 10.0) < 1e-6);
    // 32-bit counters: high word first.
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "pv_energy_total") -
                   u32_at(&r, "input", 11) / 10.0) < 1e-6);
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "grid_import_energy_total") -
                   u32_at(&r, "input", 32) / 10.0) < 1e-6);
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "grid_export_energy_total") -
                   u32_at(&r, "input", 21) / 10.0) < 1e-6);
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "grid_import_energy_today") -
                   sim_get(&r, "input", 26) / 10.0) < 1e-6);
    // The battery pack at 0x32.
    ck_assert(itest_wait_text(r.mqtt, STATE, "pack1_serial", "BG1234G567", 5000));
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "pack1_cell1_voltage") -
                   sim_get(&r, "battery", 60) / 1000.0) < 1e-6);
    ck_assert(itest_state_number(r.mqtt, STATE, "pack1_cycles") == sim_get(&r, "battery", 96));
    ck_assert(fabs(itest_state_number(r.mqtt, STATE, "battery_charge_energy_total") -
                   sim_get(&r, "battery", 106) / 10.0) < 1e-6);
    // Controls and slots (HHMM).
    ck_assert(itest_wait_text(r.mqtt, STATE, "charge_slot_1_start", "00:30", 5000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "charge_slot_1_end", "04:30", 1000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "discharge_slot_1_start", "16:00", 1000));
    ck_assert(itest_wait_text(r.mqtt, STATE, "eco_mode", "ON", 1000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "charge_target_soc", 100, 0, 1000));
    // Changed registers: importing 500 W (the CT reads - import), a discharging battery.
    sim_set(&r, "input", 30, 65536 - 500);
    sim_set(&r, "input", 52, 1200);
    ck_assert(itest_wait_number(r.mqtt, STATE, "grid_power", 500, 0, 8000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "grid_import_power", 500, 0, 1000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "grid_export_power", 0, 0, 1000));
    ck_assert(itest_wait_number(r.mqtt, STATE, "battery_discharge_power", 1200, 0, 1000));
    itest_assert_discovery_valid(r.mqtt);
    ck_assert(sim_stat(&r, "heartbeat_answers") >= 1);
    rig_stop(&r);
}
END_TEST

// Waits for the simulator's "write holding <reg> 1 <value>" line and returns the value.
static unsigned wait_write(struct rig *r, unsigned reg)
{
    char prefix[64], line[512];
    snprintf(prefix, sizeof(prefix), "write holding %u 1 ", reg);
    ck_assert_msg(sim_wait_write(&r->dongle, prefix, line, sizeof(line), 8000), "no write of %u",
                  reg);
    return (unsigned)strtoul(line + strlen(prefix), NULL, 10);
}

struct control {
    const char *id;
    unsigned reg;
    const char *payload; // what Home Assistant sends
    unsigned raw;        // what lands in the register
    const char *shown;   // the state afterwards (text), or NULL: the number raw
};

static void round_trip(struct rig *r, const struct control *c)
{
    char topic[128];
    snprintf(topic, sizeof(topic), "energy2mqtt/ge/%s/set", c->id);
    collector_publish(r->mqtt, topic, c->payload, false);
    ck_assert_uint_eq(wait_write(r, c->reg), c->raw);
    if (c->shown)
        ck_assert_msg(itest_wait_text(r->mqtt, STATE, c->id, c->shown, 5000), "%s not %s", c->id,
                      c->shown);
    else
        ck_assert_msg(itest_wait_number(r->mqtt, STATE, c->id, c->raw, 0, 5000), "%s not %u", c->id,
                      c->raw);
    ck_assert_uint_eq(sim_get(r, "holding", c->reg), c->raw);
    char confirmed[128];
    snprintf(confirmed, sizeof(confirmed), "%s confirmed by read-back", c->id);
    ck_assert_msg(proc_wait_log(&r->daemon, confirmed, 5000), "%s: no read-back", c->id);
}

// The controls every model has (GivTCP's set), on a Gen3 hybrid with pause mode.
static const struct control common[] = {
    {"eco_mode", 27, "OFF", 0, "OFF"},
    {"eco_mode", 27, "ON", 1, "ON"},
    {"enable_charge_schedule", 96, "OFF", 0, "OFF"},
    {"enable_discharge_schedule", 59, "ON", 1, "ON"},
    {"enable_charge_target", 20, "ON", 1, "ON"},
    {"charge_target_soc", 116, "80", 80, NULL},
    {"battery_reserve", 110, "20", 20, NULL},
    {"battery_cutoff", 114, "10", 10, NULL},
    {"charge_rate", 111, "25", 25, NULL},
    {"discharge_rate", 112, "30", 30, NULL},
    {"charge_slot_1_start", 94, "01:15", 115, "01:15"},
    {"charge_slot_1_end", 95, "05:45", 545, "05:45"},
    {"discharge_slot_1_start", 56, "17:30", 1730, "17:30"},
    {"discharge_slot_1_end", 57, "23:59", 2359, "23:59"},
    {"discharge_slot_2_start", 44, "00:00", 0, "00:00"},
    {"discharge_slot_2_end", 45, "06:05", 605, "06:05"},
};

START_TEST(controls_gen3)
{
    struct rig r;
    rig_start(&r, "hybrid_gen3", "hybrid-gen3", true);
    ck_assert(itest_wait_text(r.mqtt, STATE, "pause_mode", "Disabled", 10000));
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        round_trip(&r, &common[i]);
    static const struct control gen3[] = {
        {"charge_slot_2_start", 243, "02:00", 200, "02:00"},
        {"charge_slot_2_end", 244, "03:30", 330, "03:30"},
        {"pause_mode", 318, "Pause discharge", 2, "Pause discharge"},
        {"pause_slot_start", 319, "12:00", 1200, "12:00"},
        {"pause_slot_end", 320, "14:10", 1410, "14:10"},
    };
    for (size_t i = 0; i < sizeof(gen3) / sizeof(gen3[0]); i++)
        round_trip(&r, &gen3[i]);

    // Out of range, or not a time: refused before anything is sent; nothing changes.
    double writes = sim_stat(&r, "writes");
    collector_publish(r.mqtt, "energy2mqtt/ge/charge_target_soc/set", "101", false);
    collector_publish(r.mqtt, "energy2mqtt/ge/battery_reserve/set", "3", false);
    collector_publish(r.mqtt, "energy2mqtt/ge/charge_rate/set", "51", false);
    collector_publish(r.mqtt, "energy2mqtt/ge/charge_slot_1_end/set", "24:00", false);
    collector_publish(r.mqtt, "energy2mqtt/ge/pause_mode/set", "Pause everything", false);
    ck_assert(proc_wait_log(&r.daemon, "refused ge/pause_mode", 5000));
    ck_assert(proc_log_contains(&r.daemon, "refused ge/charge_target_soc: 101 is outside"));
    ck_assert(proc_log_contains(&r.daemon, "refused ge/battery_reserve: 3 is outside"));
    ck_assert(proc_log_contains(&r.daemon, "refused ge/charge_rate: 51 is outside"));
    ck_assert(proc_log_contains(&r.daemon, "refused ge/charge_slot_1_end: '24:00' does not"));
    itest_sleep_ms(1500);
    ck_assert(sim_stat(&r, "writes") == writes);
    ck_assert_uint_eq(sim_get(&r, "holding", 116), 80);
    ck_assert_uint_eq(sim_get(&r, "holding", 95), 545);
    rig_stop(&r);
}
END_TEST

START_TEST(controls_ac)
{
    struct rig r;
    rig_start(&r, "ac", "ac", true);
    ck_assert(itest_wait_text(r.mqtt, STATE, "export_priority", "Battery first", 10000));
    static const struct control ac[] = {
        {"charge_slot_2_start", 31, "22:00", 2200, "22:00"},
        {"charge_slot_2_end", 32, "23:30", 2330, "23:30"},
        {"export_priority", 311, "Grid first", 2, "Grid first"},
        {"ac_charge_rate", 313, "40", 40, NULL},
        {"ac_discharge_rate", 314, "1", 1, NULL},
        {"eps", 317, "OFF", 0, "OFF"},
        {"pause_mode", 318, "Pause both", 3, "Pause both"},
        {"charge_target_soc", 116, "4", 4, NULL},
    };
    for (size_t i = 0; i < sizeof(ac) / sizeof(ac[0]); i++)
        round_trip(&r, &ac[i]);
    // The inverter's own range: 0 is refused by the entity before anything is sent.
    double writes = sim_stat(&r, "writes");
    collector_publish(r.mqtt, "energy2mqtt/ge/ac_charge_rate/set", "0", false);
    ck_assert(proc_wait_log(&r.daemon, "refused ge/ac_charge_rate: 0 is outside", 5000));
    ck_assert(sim_stat(&r, "writes") == writes);
    // No PV on an AC-coupled inverter.
    char *s = collector_last(r.mqtt, STATE);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(strstr(s, "\"pv1_power\""));
    free(s);
    itest_assert_discovery_valid(r.mqtt);
    rig_stop(&r);
}
END_TEST

// An AC-coupled inverter configured as a hybrid: refused with the right model named.
START_TEST(wrong_model_refused)
{
    struct rig r;
    rig_start(&r, "ac", "hybrid", false);
    ck_assert(proc_wait_log(&r.daemon, "needs model: givenergy/ac", 15000));
    itest_sleep_ms(1000);
    char *s = collector_last(r.mqtt, STATE);
    ck_assert_msg(s == NULL || strstr(s, "\"battery_soc\":") == NULL ||
                      strstr(s, "\"battery_soc\":null") != NULL,
                  "values from the wrong model: %s", s ? s : "");
    free(s);
    ck_assert(sim_stat(&r, "writes") == 0);
    rig_stop(&r);
}
END_TEST

// A dongle that drops the connection, stalls, corrupts or zeroes a frame.
START_TEST(faults_and_reconnect)
{
    struct rig r;
    rig_start(&r, "hybrid", "hybrid", true);
    ck_assert(itest_wait_text(r.mqtt, STATE, "eco_mode", "ON", 10000));
    char ok[256];
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault drop"));
    ck_assert(proc_wait_log(&r.daemon, "the dongle closed the connection", 5000));
    sim_set(&r, "input", 18, 1111);
    ck_assert_msg(itest_wait_number(r.mqtt, STATE, "pv1_power", 1111, 0, 10000),
                  "no values after reconnecting");
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault badcrc"));
    sim_set(&r, "input", 18, 2222);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 2222, 0, 10000));
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault stall"));
    sim_set(&r, "input", 18, 3333);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 3333, 0, 10000));
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault split"));
    sim_set(&r, "input", 18, 4444);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 4444, 0, 10000));
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault garbage"));
    sim_set(&r, "input", 18, 5555);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 5555, 0, 10000));
    // An all-zero block: the last good values stay, never a zero SOC.
    double soc = itest_state_number(r.mqtt, STATE, "battery_soc");
    ck_assert(soc > 0);
    collector_clear(r.mqtt);
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault zero"));
    sim_set(&r, "input", 18, 6666);
    ck_assert(itest_wait_number(r.mqtt, STATE, "pv1_power", 6666, 0, 10000));
    ck_assert_msg(collector_wait(r.mqtt, STATE, "\"battery_soc\":0,", 100) == NULL,
                  "a zero SOC was published");
    ck_assert(itest_state_number(r.mqtt, STATE, "battery_soc") == soc);
    // A write while the dongle stalls its answer: retried, then confirmed.
    ck_assert(sim_command(&r.dongle, ok, sizeof(ok), "fault stall"));
    collector_publish(r.mqtt, "energy2mqtt/ge/battery_reserve/set", "33", false);
    ck_assert(itest_wait_number(r.mqtt, STATE, "battery_reserve", 33, 0, 15000));
    // It never went offline (the messages since the zero fault hold no "offline").
    char *s = collector_last(r.mqtt, "energy2mqtt/ge/availability");
    ck_assert_msg(s == NULL || strcmp(s, "online") == 0, "availability %s", s);
    free(s);
    rig_stop(&r);
}
END_TEST

int main(int argc, char **argv)
{
    const struct itest_case all[] = {
        {"values_and_discovery", values_and_discovery},
        {"controls_gen3", controls_gen3},
        {"controls_ac", controls_ac},
        {"wrong_model_refused", wrong_model_refused},
        {"faults_and_reconnect", faults_and_reconnect},
    };
    return itest_main("givenergy", all, sizeof(all) / sizeof(all[0]), 180, argc, argv);
}
