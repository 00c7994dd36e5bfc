// SPDX-License-Identifier: MIT
// The self-tests' MQTT client helpers (see selftest_mqtt.h).
#include "selftest_mqtt.h"

#include <stdio.h>
#include <string.h>

#include "selftest_child.h"

MQTTClient mq_connect(int port, const char *id, const char *filter)
{
    char uri[64];
    MQTTClient m;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
    CHECK(MQTTClient_create(&m, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) == MQTTCLIENT_SUCCESS,
          "MQTTClient_create");
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.cleansession = 1;
    CHECK(MQTTClient_connect(m, &o) == MQTTCLIENT_SUCCESS, "test client cannot connect");
    CHECK(MQTTClient_subscribe(m, filter, 0) == MQTTCLIENT_SUCCESS, "subscribe %s", filter);
    return m;
}

void mq_close(MQTTClient *m)
{
    MQTTClient_disconnect(*m, 200);
    MQTTClient_destroy(m);
}

void mq_publish(MQTTClient m, const char *topic, const char *payload)
{
    CHECK(MQTTClient_publish(m, topic, (int)strlen(payload), payload, 0, 0, NULL) ==
              MQTTCLIENT_SUCCESS,
          "publish %s", topic);
}
