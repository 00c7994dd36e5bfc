#!/usr/bin/with-contenv sh
# shellcheck shell=sh
# SPDX-License-Identifier: MIT
# The add-on's main process under s6-overlay: the daemon reads /data/options.json itself and
# asks the Supervisor for the broker (with-contenv provides SUPERVISOR_TOKEN). When it exits,
# the container stops with its status and the Supervisor's watchdog can restart it.
set -eu
exec /usr/bin/energy2mqtt addon -c /data/options.json
