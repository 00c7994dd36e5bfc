// SPDX-License-Identifier: MIT
// The daemon: owns the loop, the MQTT link and the devices, and wires them together.
#ifndef E2M_DAEMON_H
#define E2M_DAEMON_H

#include "core/config.h"

// Runs until SIGINT/SIGTERM. Returns the process exit code.
int daemon_run(const struct config *cfg);

#endif
