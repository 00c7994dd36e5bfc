#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs `energy2mqtt discovery` for every entity file under entities/ (one device each) in
# the given discovery mode, and feeds the result to the Home Assistant validator.
#   check_entities.sh ENERGY2MQTT HA_VALIDATE ENTITIES_DIR device|entity
set -eu
bin=$1 validator=$2 entities=$3 mode=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cfg=$tmp/all.yaml
printf 'mqtt: {discovery: %s}\nentities_dir: %s\ndevices:\n' "$mode" "$entities" >"$cfg"
n=0
for file in "$entities"/*/*.yaml; do
    key=${file#"$entities"/}
    key=${key%.yaml}
    driver=$(sed -n 's/^driver: *\([a-z0-9_]*\).*/\1/p' "$file")
    id=$(printf '%s' "$key" | tr '/' '-')
    # The least each driver needs to accept a device; nothing is contacted.
    case $driver in
    modbus) settings="host: 127.0.0.1, unit_id: $((n + 1))" ;;
    smartmeter) settings="host: 127.0.0.$((n + 1))" ;;
    hoymiles) settings="host: 127.0.1.$((n + 1))" ;;
    venus) settings="type: HMG-50, mac: $(printf '0000000000%02x' $((n + 1)))" ;;
    luxpower) settings="host: 127.0.2.$((n + 1))" ;;
    givenergy) settings="host: 127.0.3.$((n + 1))" ;;
    *) echo "check_entities.sh: no settings known for driver '$driver' ($file)" >&2; exit 2 ;;
    esac
    printf '  - {id: %s, model: %s, %s}\n' "$id" "$key" "$settings" >>"$cfg"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "check_entities.sh: no entity files in $entities" >&2; exit 2; }

"$bin" validate -c "$cfg"
"$bin" discovery -c "$cfg" >"$tmp/discovery.txt"
"$validator" --energy "$tmp/discovery.txt"
