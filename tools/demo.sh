#!/bin/bash
# SPDX-License-Identifier: MIT
# The demo behind `make demo`: a private mosquitto on a free loopback port, simulated devices
# (a SunSpec inverter and an Eastron SDM630 meter speaking real Modbus TCP), and the daemon
# with examples/demo.yaml. Ctrl-C stops everything.
#   tools/demo.sh BUILD_DIR            run until Ctrl-C
#   tools/demo.sh BUILD_DIR --smoke N  run N seconds, check discovery and states, exit 0/1
set -eu
build=${1:?usage: tools/demo.sh BUILD_DIR [--smoke SECONDS]}
smoke=""
[ "${2:-}" = "--smoke" ] && smoke=${3:-10}
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/src/energy2mqtt
sim=$build/tests/sim/e2m-modbus-sim
for f in "$bin" "$sim"; do
    [ -x "$f" ] || { echo "demo: $f is missing; build first (make demo does)" >&2; exit 1; }
done
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "demo: mosquitto is not installed (tools/deps.sh)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/energy2mqtt-demo.XXXXXX")
pids=""
cleanup() {
    trap - EXIT INT TERM
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on: try random ones until a connection is refused.
free_port() {
    while :; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

wait_ready() { # file -> the "ready tcp N" port
    i=0
    while [ $i -lt 100 ]; do
        line=$(grep -m1 '^ready ' "$1" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "${line##* }"
            return
        fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "demo: a simulator did not start; see $1" >&2
    exit 1
}

mqtt_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" \
    >"$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids="$pids $!"

# The simulators keep reading commands on stdin; a FIFO held open keeps it from closing.
mkfifo "$work/inverter.ctl" "$work/meter.ctl"
"$sim" --profile sunspec --port 0 <"$work/inverter.ctl" >"$work/inverter.out" 2>&1 &
pids="$pids $!"
"$sim" --profile sdm630 --port 0 <"$work/meter.ctl" >"$work/meter.out" 2>&1 &
pids="$pids $!"
exec 7>"$work/inverter.ctl" 8>"$work/meter.ctl"
E2M_DEMO_INVERTER_PORT=$(wait_ready "$work/inverter.out")
E2M_DEMO_METER_PORT=$(wait_ready "$work/meter.out")
E2M_DEMO_MQTT_PORT=$mqtt_port
E2M_DEMO_STATE_DIR=$work
export E2M_DEMO_MQTT_PORT E2M_DEMO_INVERTER_PORT E2M_DEMO_METER_PORT E2M_DEMO_STATE_DIR

sub="mosquitto_sub -h 127.0.0.1 -p $mqtt_port"
pub="mosquitto_pub -h 127.0.0.1 -p $mqtt_port"
cat <<MSG

energy2mqtt demo
  broker      mqtt://127.0.0.1:$mqtt_port (a private mosquitto; nothing leaves this machine)
  inverter    simulated SunSpec inverter, Modbus TCP 127.0.0.1:$E2M_DEMO_INVERTER_PORT
  grid_meter  simulated Eastron SDM630, Modbus TCP 127.0.0.1:$E2M_DEMO_METER_PORT
  config      examples/demo.yaml

In another terminal:
  watch discovery and states:   $sub -v -t 'homeassistant/#' -t 'energy2mqtt/#'
  only the live values:         $sub -v -t 'energy2mqtt/+/state'
  limit the inverter to 40 %:   $pub -t energy2mqtt/inverter/power_limit/set -m 40
  enable the limit:             $pub -t energy2mqtt/inverter/power_limit_enabled/set -m ON
  a refused command:            $pub -t energy2mqtt/inverter/power_limit/set -m 150
  pretend Home Assistant
  restarted:                    $pub -t homeassistant/status -m online
  check discovery offline:      $bin discovery -c $top/examples/demo.yaml | $build/tests/ha/ha_validate -

Point a Home Assistant MQTT integration at the broker to see the devices appear.
Ctrl-C stops everything.

MSG

# What Home Assistant would discover, once the daemon has published it.
summary() {
    sleep 4
    $sub -t 'homeassistant/device/+/config' -v -W 2 2>/dev/null |
        awk '{ n = gsub(/"p":"/, ""); split($1, t, "/"); printf "[demo] discovered %-28s %3d entities\n", t[3], n }'
}

# One compact line of live values every few seconds.
live() {
    $sub -t 'energy2mqtt/+/state' -v 2>/dev/null | awk '
        function num(key,   m) {
            if (match($0, "\"" key "\":-?[0-9.]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m); return m }
            return "?"
        }
        $1 ~ /inverter/ { inv = "inverter " num("power") " W, " num("energy") " kWh, limit " num("power_limit") " %" ; n++ }
        $1 ~ /grid_meter/ { met = "meter " num("power") " W, L1 " num("l1_voltage") " V, import " num("import_energy") " kWh" }
        n && n % 3 == 0 && $1 ~ /inverter/ { printf "[demo] %s | %s\n", inv, met; fflush() }'
}

if [ -z "$smoke" ]; then
    "$bin" run -c "$top/examples/demo.yaml" &
    daemon=$!
    pids="$pids $daemon"
    summary &
    pids="$pids $!"
    live &
    pids="$pids $!"
    wait "$daemon" || true
    exit 0
fi

# Smoke mode: run, then check what a Home Assistant would have seen.
"$bin" run -c "$top/examples/demo.yaml" >"$work/daemon.log" 2>&1 &
daemon=$!
pids="$pids $daemon"
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -v -t 'homeassistant/#' -t 'energy2mqtt/#' \
    >"$work/traffic.txt" 2>/dev/null &
pids="$pids $!"
sleep "$smoke"
kill "$daemon"
wait "$daemon" || { echo "demo: the daemon exited with an error" >&2; cat "$work/daemon.log"; exit 1; }
configs=$(grep -c '^homeassistant/device/.*/config {' "$work/traffic.txt" || true)
states=$(grep -c '^energy2mqtt/inverter/state {.*"power":[0-9]' "$work/traffic.txt" || true)
meter=$(grep -c '^energy2mqtt/grid_meter/state {.*"l1_voltage":[0-9]' "$work/traffic.txt" || true)
echo "demo: $configs discovery configs, $states inverter states, $meter meter states"
grep -m1 '^energy2mqtt/inverter/state' "$work/traffic.txt" | cut -c1-160
if [ "$configs" -ge 3 ] && [ "$states" -ge 2 ] && [ "$meter" -ge 2 ]; then
    echo "demo: OK"
else
    cat "$work/daemon.log"
    exit 1
fi
