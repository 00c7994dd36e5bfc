// SPDX-License-Identifier: MIT
// The MQTT client side of the self-tests whose simulator talks to a broker (paho, synchronous).
// Every failure ends the scenario through CHECK, like the rest of the harness.
#ifndef E2M_TESTS_SIM_SELFTEST_MQTT_H
#define E2M_TESTS_SIM_SELFTEST_MQTT_H

#include <MQTTClient.h>

// Connects a clean-session client `id` to 127.0.0.1:port and subscribes to `filter` (QoS 0).
MQTTClient mq_connect(int port, const char *id, const char *filter);
// Disconnects and destroys the client.
void mq_close(MQTTClient *m);
// Publishes `payload` to `topic`, QoS 0, not retained.
void mq_publish(MQTTClient m, const char *topic, const char *payload);

#endif
