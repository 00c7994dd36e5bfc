// SPDX-License-Identifier: MIT
// e2m-smartmeter-sim control channel: the test's commands on stdin, answered on stdout.
#include "smartmeter_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_doubles(char **arg, int n, double *out)
{
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        out[i] = strtod(arg[i], &end);
        if (end == arg[i] || *end || errno) {
            return -1;
        }
    }
    return 0;
}

// set power|voltage W [auto], set power|energy L1 L2 L3 (SmartMeter), set relay 0|1.
static void cmd_set(struct sm_sim *s, char **arg, int nargs)
{
    const char *what = nargs > 0 ? arg[0] : "";
    bool power = strcmp(what, "power") == 0, energy = strcmp(what, "energy") == 0;
    bool voltage = strcmp(what, "voltage") == 0, relay = strcmp(what, "relay") == 0;
    int n = nargs - 1;
    double v[3];
    if (!(power || energy || voltage || (relay && s->type == SM_POWERMETER)) || n < 1) {
        sim_out("err usage: set power|voltage|energy|relay <value...>");
        return;
    }
    if ((power || voltage) && n == 1 && strcmp(arg[1], "auto") == 0) {
        *(power ? &s->m.power_pinned : &s->m.voltage_pinned) = false;
        sim_out("ok");
        return;
    }
    bool per_phase = s->type == SM_SMARTMETER && (power || energy) && n == 3;
    if ((n != 1 && !per_phase) || parse_doubles(arg + 1, n, v) < 0) {
        sim_out("err bad value(s) for %s", what);
        return;
    }
    if (relay) {
        sm_relay_set(s, v[0] != 0);
    } else if (voltage) {
        if (v[0] <= 0 || v[0] >= 1000) {
            sim_out("err voltage out of range");
            return;
        }
        for (int p = 0; p < 3; p++) {
            s->m.voltage[p] = v[0];
        }
        s->m.voltage_pinned = true;
    } else {
        // One value on the SmartMeter is the total, shared equally by the phases.
        for (int p = 0; p < n; p++) {
            if (v[p] < 0) {
                sim_out("err %s must not be negative", what);
                return;
            }
        }
        for (int p = 0; p < s->m.phases; p++) {
            double x = per_phase ? v[p] : v[0] / s->m.phases;
            if (power) {
                s->m.power[p] = s->m.target[p] = x;
            } else {
                s->m.energy[p] = x;
            }
        }
        s->m.power_pinned |= power;
    }
    sim_out("ok");
}

static void cmd_get(struct sm_sim *s, char **arg, int nargs)
{
    const char *what = nargs == 1 ? arg[0] : "";
    double p = 0, v = 0;
    for (int i = 0; i < s->m.phases; i++) {
        p += sm_power(s, i);
        v += s->m.voltage[i] / s->m.phases;
    }
    if (strcmp(what, "relay") == 0 && s->type == SM_POWERMETER) {
        sim_out("ok %d", s->relay);
    } else if (strcmp(what, "energy") == 0 && s->type == SM_SMARTMETER) {
        sim_out("ok %.4f %.4f %.4f %.4f", sm_energy_total(s), s->m.energy[0], s->m.energy[1],
                s->m.energy[2]);
    } else if (strcmp(what, "energy") == 0) {
        sim_out("ok %.4f", s->m.energy[0]);
    } else if (strcmp(what, "power") == 0) {
        sim_out("ok %.3f", p);
    } else if (strcmp(what, "voltage") == 0) {
        sim_out("ok %.3f", v);
    } else {
        sim_out("err usage: get relay|energy|power|voltage");
    }
}

static const char *const fault_names[] = {"none", "stall", "garbage", "drop", "silent"};

bool sm_control_line(struct sm_sim *s, char *line)
{
    char *arg[8], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(line, " \t\r", &save); t && n < 8; t = strtok_r(NULL, " \t\r", &save)) {
        arg[n++] = t;
    }
    if (n == 0 || arg[0][0] == '#') {
        return true;
    }
    const char *cmd = arg[0];
    if (strcmp(cmd, "set") == 0) {
        cmd_set(s, arg + 1, n - 1);
    } else if (strcmp(cmd, "get") == 0) {
        cmd_get(s, arg + 1, n - 1);
    } else if (strcmp(cmd, "fault") == 0) {
        int f = 0;
        while (n == 2 && f < 5 && strcmp(arg[1], fault_names[f]) != 0) {
            f++;
        }
        if (n != 2 || f == 5) {
            sim_out("err usage: fault none|stall|garbage|drop|silent");
            return true;
        }
        s->fault = (enum sm_fault)f;
        if (f == SM_FAULT_DROP) {
            sm_clients_drop(s);
            sm_mqtt_disconnect(s);
        }
        sim_out("ok");
    } else if (strcmp(cmd, "freeze") == 0 || strcmp(cmd, "run") == 0) {
        s->frozen = cmd[0] == 'f';
        sim_out("ok");
    } else if (strcmp(cmd, "step") == 0) {
        long k = n > 1 ? strtol(arg[1], NULL, 10) : 1;
        for (long i = 0; i < k && i < 100000; i++) {
            sm_meter_step(s, s->tick_ms / 1000.0);
        }
        sim_out("ok");
    } else if (strcmp(cmd, "clients") == 0) {
        sim_out("ok %d", sm_client_count(s));
    } else if (strcmp(cmd, "quit") == 0) {
        sim_out("ok");
        return false;
    } else {
        sim_out("err unknown command %s", cmd);
    }
    return true;
}
