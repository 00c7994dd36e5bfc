// SPDX-License-Identifier: MIT
// MQTT topic filter matching (+ matches one level, # the rest, $-topics only explicitly).
#ifndef E2M_TOPIC_H
#define E2M_TOPIC_H

#include <stdbool.h>

bool topic_matches(const char *filter, const char *topic);

#endif
