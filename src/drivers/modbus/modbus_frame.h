// SPDX-License-Identifier: MIT
// Decoding of captured Modbus frames for `energy2mqtt decode modbus HEX`.
#ifndef E2M_MODBUS_FRAME_H
#define E2M_MODBUS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_t;

// Decodes one Modbus TCP ADU (MBAP header + PDU) or RTU frame (unit + PDU + CRC) into a JSON
// object. Returns NULL with `err` set when the bytes are neither.
struct json_t *modbus_frame_to_json(const uint8_t *buf, size_t len, char *err, size_t err_size);

// The driver's decode hook: hex text in, one JSON line out.
int modbus_frame_decode(const char *input, FILE *out, char *err, size_t err_size);

#endif
