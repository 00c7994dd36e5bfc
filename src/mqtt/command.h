// SPDX-License-Identifier: MIT
// Commands from Home Assistant: `<base>/<device>/<entity>/set` with the new value.
//
// Everything here is pure validation. A command is accepted only for a writable entity and a
// payload that fits it exactly: a finite number inside [min, max] on the step grid (number),
// one of the options (select), ON or OFF (switch), PRESS (button), text matching the entity's
// pattern (text). Payloads are at most COMMAND_MAX_PAYLOAD bytes of valid UTF-8. Nothing else
// can ever reach a device.
#ifndef E2M_COMMAND_H
#define E2M_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct entity;

// A text command is at most COMMAND_MAX_TEXT bytes: Home Assistant's limit for a text state.
enum { COMMAND_MAX_PAYLOAD = 256, COMMAND_MAX_ID = 64, COMMAND_MAX_TEXT = 255 };

enum command_error {
    CMD_OK,
    CMD_BAD_TOPIC,    // not <base>/<device>/<entity>/set with sane ids
    CMD_NOT_WRITABLE, // the entity is a sensor (or internal)
    CMD_TOO_LONG,
    CMD_NOT_UTF8,
    CMD_NOT_A_NUMBER,
    CMD_OUT_OF_RANGE,
    CMD_OFF_STEP,
    CMD_UNKNOWN_OPTION,
    CMD_BAD_SWITCH,
    CMD_BAD_PRESS,
    CMD_BAD_TEXT, // a text with control characters, too long, or not matching the pattern
};

const char *command_error_name(enum command_error e);

// Splits a command topic. `device` and `entity` receive the ids (at most COMMAND_MAX_ID
// characters of [a-z0-9_-]). Returns CMD_OK or CMD_BAD_TOPIC.
enum command_error command_parse_topic(const char *base, const char *topic,
                                       char device[COMMAND_MAX_ID + 1],
                                       char entity[COMMAND_MAX_ID + 1]);

// What a valid command asks for, in the entity's own units.
struct command_value {
    double value;      // number: the value; select: the raw map key; switch: on/off raw
    bool on;           // switch
    const char *label; // select: the chosen option (points into the entity's map)
    char text[COMMAND_MAX_TEXT + 1]; // text: the value, without surrounding white space
};

// Whether a button payload is PRESS (surrounding whitespace ignored).
bool command_is_press(const uint8_t *payload, size_t len);

// Validates `payload` for entity `e`. On error writes a reason for the log into `why`.
enum command_error command_validate(const struct entity *e, const uint8_t *payload, size_t len,
                                    struct command_value *out, char *why, size_t why_size);

#endif
