#!/bin/bash
# SPDX-License-Identifier: MIT
# The demo behind `make demo`: a private mosquitto on a free loopback port, simulated devices
# (a SunSpec inverter and an Eastron SDM630 meter speaking real Modbus TCP, a PowerMeter plug,
# a SmartMeter publishing over MQTT, a Hoymiles HMS-800W-2T DTU, a Marstek Venus E battery
# behind its hame-relay on the broker, a LuxPower hybrid inverter behind its WiFi dongle, a
# GivEnergy hybrid with its battery behind its dongle), and the daemon with examples/demo.yaml.
# Ctrl-C stops everything.
#   tools/demo.sh BUILD_DIR            run until Ctrl-C
#   tools/demo.sh BUILD_DIR --smoke N  run until every device was seen (at most N seconds), exit 0/1
set -eu
build=${1:?usage: tools/demo.sh BUILD_DIR [--smoke SECONDS]}
smoke=""
[ "${2:-}" = "--smoke" ] && smoke=${3:-10}
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/src/energy2mqtt
sim=$build/tests/sim/e2m-modbus-sim
smsim=$build/tests/sim/e2m-smartmeter-sim
hmsim=$build/tests/sim/e2m-hoymiles-sim
vssim=$build/tests/sim/e2m-venus-sim
lxsim=$build/tests/sim/e2m-luxpower-sim
gesim=$build/tests/sim/e2m-givenergy-sim
for f in "$bin" "$sim" "$smsim" "$hmsim" "$vssim" "$lxsim" "$gesim"; do
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
# An optional argument narrows the range: 12768 keeps below Linux's ephemeral ports, where an
# outgoing connection's local port would look free yet make the bind fail.
free_port() {
    while :; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % ${1:-40000}))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

wait_ready() { # file -> the port of its "ready tcp N [mqtt]" or "ready port=N" line
    i=0
    while [ $i -lt 100 ]; do
        line=$(grep -m1 '^ready ' "$1" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "$line" | sed -E 's/^ready (tcp )?(port=)?([0-9]+).*/\3/'
            return
        fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "demo: a simulator did not start; see $1" >&2
    exit 1
}

# The simulated SmartMeter connects to the broker at once (and, like the firmware, retries only
# after a while): wait until the broker listens. A port taken between the check and the bind
# (another test's broker) makes mosquitto exit: then try another one. A loaded machine may need
# a few seconds.
start_broker() {
    for _ in 1 2 3; do
        mqtt_port=$(free_port)
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" \
            >"$work/mosquitto.conf"
        "$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
        broker=$!
        i=0
        while [ $i -lt 300 ]; do
            if (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null; then
                pids="$pids $broker"
                return
            fi
            kill -0 "$broker" 2>/dev/null || break
            sleep 0.05
            i=$((i + 1))
        done
        kill "$broker" 2>/dev/null || true
        wait "$broker" 2>/dev/null || true
    done
    echo "demo: mosquitto did not start; see $work/mosquitto.log" >&2
    exit 1
}
start_broker

# The simulators keep reading commands on stdin; a FIFO held open keeps it from closing.
mkfifo "$work/inverter.ctl" "$work/meter.ctl" "$work/plug.ctl" "$work/house.ctl" "$work/dtu.ctl" \
    "$work/battery.ctl" "$work/hybrid.ctl" "$work/givenergy.ctl"
"$sim" --profile sunspec --port 0 <"$work/inverter.ctl" >"$work/inverter.out" 2>&1 &
pids="$pids $!"
"$sim" --profile sdm630 --port 0 <"$work/meter.ctl" >"$work/meter.out" 2>&1 &
pids="$pids $!"
"$smsim" --type powermeter --name plug --port 0 <"$work/plug.ctl" >"$work/plug.out" 2>"$work/plug.err" &
pids="$pids $!"
"$smsim" --type smartmeter --name smartmeter1 --port 0 --mqtt "127.0.0.1:$mqtt_port" \
    --interval 2 <"$work/house.ctl" >"$work/house.out" 2>"$work/house.err" &
pids="$pids $!"
# The DTU keeps the real 30 s guard and 5-minute cloud windows; it encrypts like V01.01.01.
# A smoke run lasts seconds: one that began near a cloud window would see no DTU data at all
# (the daemon waits a full guard before its first request, then keeps clear of the window), so
# neither the simulator nor the daemon keeps them then (the Hoymiles tests cover the windows).
E2M_DEMO_CLOUD=5min
[ -n "$smoke" ] && E2M_DEMO_CLOUD=off
"$hmsim" --port 0 --encrypted --power 640 --cloud "$E2M_DEMO_CLOUD" <"$work/dtu.ctl" \
    >"$work/dtu.out" 2>"$work/dtu.err" &
pids="$pids $!"
# The Venus answers on the broker like hame-relay would for a real one.
"$vssim" --mqtt "127.0.0.1:$mqtt_port" --type HMG-50 --mac 0123456789ab <"$work/battery.ctl" \
    >"$work/battery.out" 2>"$work/battery.err" &
pids="$pids $!"
# The LuxPower dongle without its cloud: heartbeats every 3 s, input broadcasts every 20 s, but
# only while something answers the heartbeats (the daemon starts to after two silent intervals).
"$lxsim" --port 0 --cloud off --heartbeat-ms 3000 --broadcast-ms 20000 <"$work/hybrid.ctl" \
    >"$work/hybrid.out" 2>"$work/hybrid.err" &
pids="$pids $!"
# The GivEnergy dongle with a Gen1 hybrid and one battery pack; heartbeats every 30 s.
"$gesim" --port 0 --family hybrid --heartbeat-ms 30000 <"$work/givenergy.ctl" \
    >"$work/givenergy.out" 2>"$work/givenergy.err" &
pids="$pids $!"
exec 7>"$work/inverter.ctl" 8>"$work/meter.ctl" 5>"$work/plug.ctl" 6>"$work/house.ctl" \
    4>"$work/dtu.ctl" 9>"$work/battery.ctl" 3>"$work/hybrid.ctl" 10>"$work/givenergy.ctl"
E2M_DEMO_INVERTER_PORT=$(wait_ready "$work/inverter.out")
E2M_DEMO_METER_PORT=$(wait_ready "$work/meter.out")
E2M_DEMO_PLUG_PORT=$(wait_ready "$work/plug.out")
wait_ready "$work/house.out" >/dev/null
E2M_DEMO_DTU_PORT=$(wait_ready "$work/dtu.out")
wait_ready "$work/battery.out" >/dev/null
E2M_DEMO_LUX_PORT=$(wait_ready "$work/hybrid.out")
E2M_DEMO_GIVENERGY_PORT=$(wait_ready "$work/givenergy.out")
E2M_DEMO_MQTT_PORT=$mqtt_port
E2M_DEMO_STATE_DIR=$work
E2M_DEMO_HTTP_PORT=$(free_port 12768)
export E2M_DEMO_MQTT_PORT E2M_DEMO_INVERTER_PORT E2M_DEMO_METER_PORT E2M_DEMO_PLUG_PORT \
    E2M_DEMO_DTU_PORT E2M_DEMO_LUX_PORT E2M_DEMO_GIVENERGY_PORT E2M_DEMO_STATE_DIR E2M_DEMO_CLOUD \
    E2M_DEMO_HTTP_PORT
page="http://127.0.0.1:$E2M_DEMO_HTTP_PORT/"

sub="mosquitto_sub -h 127.0.0.1 -p $mqtt_port"
pub="mosquitto_pub -h 127.0.0.1 -p $mqtt_port"
cat <<MSG

energy2mqtt demo
  broker      mqtt://127.0.0.1:$mqtt_port (a private mosquitto; nothing leaves this machine)
  inverter    simulated SunSpec inverter, Modbus TCP 127.0.0.1:$E2M_DEMO_INVERTER_PORT
  grid_meter  simulated Eastron SDM630, Modbus TCP 127.0.0.1:$E2M_DEMO_METER_PORT
  plug        simulated voelkerb PowerMeter, TCP 127.0.0.1:$E2M_DEMO_PLUG_PORT
  house       simulated voelkerb SmartMeter publishing its own samples (MQTT mode)
  balcony     simulated Hoymiles HMS-800W-2T DTU, encrypted, TCP 127.0.0.1:$E2M_DEMO_DTU_PORT
              (real timing: one request per 31 s at most, so its data takes a moment)
  home_battery simulated Marstek Venus E answering on hame_energy/HMG-50/.../0123456789ab/ctrl
              as hame-relay would (one request at a time, a runtime poll every 10 s)
  hybrid      simulated LuxPower hybrid inverter behind its WiFi dongle, TCP 127.0.0.1:$E2M_DEMO_LUX_PORT
              (serials learned from its first heartbeat, about 3 s)
  givenergy   simulated GivEnergy Gen1 hybrid with one battery pack behind its dongle,
              TCP 127.0.0.1:$E2M_DEMO_GIVENERGY_PORT (identified on connecting)
  config      examples/demo.yaml
  status page $page  (open it in a browser: every device, live)
              API: ${page}api/devices, ${page}api/devices/inverter, metrics: ${page}metrics

In another terminal:
  watch discovery and states:   $sub -v -t 'homeassistant/#' -t 'energy2mqtt/#'
  only the live values:         $sub -v -t 'energy2mqtt/+/state'
  limit the inverter to 40 %:   $pub -t energy2mqtt/inverter/power_limit/set -m 40
  enable the limit:             $pub -t energy2mqtt/inverter/power_limit_enabled/set -m ON
  a refused command:            $pub -t energy2mqtt/inverter/power_limit/set -m 150
  switch the plug off:          $pub -t energy2mqtt/plug/relay/set -m OFF
  limit the balcony to 50 %:    $pub -t energy2mqtt/balcony/power_limit/set -m 50
  battery: charge slot 1 at 6:30: $pub -t energy2mqtt/home_battery/slot1_start/set -m 06:30
  battery: manual mode:         $pub -t energy2mqtt/home_battery/working_mode/set -m Manual
  hybrid: AC charge on:         $pub -t energy2mqtt/hybrid/ac_charge/set -m ON
  hybrid: AC charge from 01:30: $pub -t energy2mqtt/hybrid/ac_charge_1_start/set -m 01:30
  hybrid: charge at 50 %:       $pub -t energy2mqtt/hybrid/charge_power_percent/set -m 50
  givenergy: charge target 80 %: $pub -t energy2mqtt/givenergy/charge_target_soc/set -m 80
  givenergy: charge from 01:30: $pub -t energy2mqtt/givenergy/charge_slot_1_start/set -m 01:30
  givenergy: eco mode off:      $pub -t energy2mqtt/givenergy/eco_mode/set -m OFF
  the battery's own traffic:    $sub -v -t 'hame_energy/#'
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
        $1 ~ /plug/ { plug = "plug " num("power") " W" }
        $1 ~ /house/ { house = "house " num("power") " W" }
        $1 ~ /balcony/ { dtu = "balcony " num("ac_power") " W, limit " num("power_limit") " %" }
        $1 ~ /home_battery/ { bat = "battery " num("battery_soc") " %, " num("ac_power") " W" }
        $1 ~ /hybrid/ { lux = "hybrid " num("pv_power") " W PV, SOC " num("battery_soc") " %" }
        $1 ~ /givenergy/ { ge = "givenergy " num("pv_power") " W PV, SOC " num("battery_soc") " %" }
        n && n % 3 == 0 && $1 ~ /inverter/ { printf "[demo] %s | %s | %s | %s | %s | %s | %s | %s\n", inv, met, plug, house, dtu, bat, lux, ge; fflush() }'
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

# One HTTP GET to the daemon's status server, without curl: bash's /dev/tcp.
http_get() {
    exec 10<>"/dev/tcp/127.0.0.1/$E2M_DEMO_HTTP_PORT" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&10
    cat <&10
    exec 10<&-
}

# Smoke mode: run, then check what a Home Assistant would have seen.
"$bin" run -c "$top/examples/demo.yaml" >"$work/daemon.log" 2>&1 &
daemon=$!
pids="$pids $daemon"
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -v -t 'homeassistant/#' -t 'energy2mqtt/#' \
    >"$work/traffic.txt" 2>/dev/null &
pids="$pids $!"
# What Home Assistant should have seen: counted until every device shows up or the time is up
# (a loaded machine takes longer; an idle one is done in a few seconds).
count() { grep -c "$1" "$work/traffic.txt" || true; }
check() {
    configs=$(count '^homeassistant/device/.*/config {')
    states=$(count '^energy2mqtt/inverter/state {.*"power":[0-9]')
    meter=$(count '^energy2mqtt/grid_meter/state {.*"l1_voltage":[0-9]')
    plug=$(count '^energy2mqtt/plug/state {.*"power":[0-9]')
    house=$(count '^energy2mqtt/house/state {.*"power":[0-9]')
    # The DTU's first exchange is AppInfo; its real-time data follows after the 31 s guard.
    dtu=$(count '^energy2mqtt/balcony/state {.*"inverter_model":"HMS-800W-2T"')
    battery=$(count '^energy2mqtt/home_battery/state {.*"battery_soc":[0-9]')
    hybrid=$(count '^energy2mqtt/hybrid/state {.*"battery_soc":[0-9]')
    givenergy=$(count '^energy2mqtt/givenergy/state {.*"battery_soc":[0-9]')
    [ "$configs" -ge 9 ] && [ "$states" -ge 2 ] && [ "$meter" -ge 2 ] && [ "$plug" -ge 2 ] &&
        [ "$house" -ge 2 ] && [ "$dtu" -ge 1 ] && [ "$battery" -ge 1 ] && [ "$hybrid" -ge 1 ] &&
        [ "$givenergy" -ge 1 ]
}
ok=false
for _ in $(seq "$smoke"); do
    sleep 1
    if check; then
        ok=true
        break
    fi
done
health=$(http_get /api/health || true)
listed=$(http_get /api/devices | grep -o '"id":"' | wc -l || true)
page_ok=$(http_get / | grep -c 'energy2mqtt' || true)
if ! kill "$daemon" 2>/dev/null; then
    echo "demo: the daemon stopped early" >&2
    cat "$work/daemon.log"
    exit 1
fi
wait "$daemon" || { echo "demo: the daemon exited with an error" >&2; cat "$work/daemon.log"; exit 1; }
echo "demo: $configs discovery configs; states: inverter $states, meter $meter, plug $plug," \
    "house $house, balcony $dtu, battery $battery, hybrid $hybrid, givenergy $givenergy;" \
    "status page $page: $listed devices listed"
case $health in *'"status":"ok"'*) ;; *) echo "demo: the status page did not answer" >&2; exit 1 ;; esac
if [ "$listed" -ne 8 ] || [ "$page_ok" -lt 1 ]; then
    echo "demo: the status page lists $listed devices" >&2
    exit 1
fi
grep -m1 '^energy2mqtt/inverter/state' "$work/traffic.txt" | cut -c1-160
if $ok; then
    echo "demo: OK"
else
    cat "$work/daemon.log"
    exit 1
fi
