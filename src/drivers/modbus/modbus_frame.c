// SPDX-License-Identifier: MIT
// Modbus frame decoding for the decode command (the driver itself frames with libmodbus).
//
// Modbus TCP ADU:  TT TT PP PP LL LL UU | PDU        (big-endian; PP = 0; LL = bytes after LL)
// Modbus RTU:      UU | PDU | CC CC                  (CRC-16/MODBUS, low byte first)
// PDU:             FF DD...                          (FF | 0x80 = exception, DD = its code)
// Reads (FC1-4):   request  AAAA NNNN               response  BC + BC data bytes
// Writes:          FC5/FC6  AAAA VVVV (request and echo)
//                  FC15/16  AAAA NNNN BC data       response AAAA NNNN
// A read request and a read response cannot always be told apart by length alone; a body
// whose first byte counts the rest is taken as a response.
#include "drivers/modbus/modbus_frame.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "core/bytes.h"

static const char *function_name(uint8_t fc)
{
    switch (fc & 0x7f) {
    case 1: return "read_coils";
    case 2: return "read_discrete_inputs";
    case 3: return "read_holding_registers";
    case 4: return "read_input_registers";
    case 5: return "write_single_coil";
    case 6: return "write_single_register";
    case 15: return "write_multiple_coils";
    case 16: return "write_multiple_registers";
    case 22: return "mask_write_register";
    case 23: return "read_write_multiple_registers";
    default: return "unknown";
    }
}

static const char *exception_name(uint8_t code)
{
    static const char *const names[] = {NULL,
                                        "illegal_function",
                                        "illegal_data_address",
                                        "illegal_data_value",
                                        "server_device_failure",
                                        "acknowledge",
                                        "server_device_busy",
                                        "negative_acknowledge",
                                        "memory_parity_error",
                                        NULL,
                                        "gateway_path_unavailable",
                                        "gateway_target_failed"};
    return code < sizeof(names) / sizeof(names[0]) && names[code] ? names[code] : "unknown";
}

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void decode_pdu(json_t *o, const uint8_t *pdu, size_t len)
{
    uint8_t fc = pdu[0];
    const uint8_t *d = pdu + 1;
    size_t n = len - 1;
    json_object_set_new(o, "function", json_integer(fc & 0x7f));
    json_object_set_new(o, "function_name", json_string(function_name(fc)));
    if (fc & 0x80) {
        json_object_set_new(o, "kind", json_string("exception"));
        if (n >= 1) {
            json_object_set_new(o, "exception", json_integer(d[0]));
            json_object_set_new(o, "exception_name", json_string(exception_name(d[0])));
        }
        return;
    }
    json_t *values = json_array();
    const char *kind = "unknown";
    switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4:
        if (n >= 1 && d[0] == n - 1 && (fc <= 2 || n % 2 == 1)) {
            kind = "response";
            json_object_set_new(o, "byte_count", json_integer(d[0]));
            if (fc <= 2) {
                for (size_t i = 0; i < (size_t)d[0] * 8; i++)
                    json_array_append_new(values, json_integer((d[1 + i / 8] >> (i % 8)) & 1));
            } else {
                for (size_t i = 1; i + 1 < n; i += 2)
                    json_array_append_new(values, json_integer(be16(d + i)));
            }
        } else if (n == 4) {
            kind = "request";
            json_object_set_new(o, "address", json_integer(be16(d)));
            json_object_set_new(o, "count", json_integer(be16(d + 2)));
        }
        break;
    case 5:
    case 6:
        if (n == 4) {
            kind = "write";
            json_object_set_new(o, "address", json_integer(be16(d)));
            json_array_append_new(values,
                                  json_integer(fc == 5 ? be16(d + 2) == 0xFF00 : be16(d + 2)));
        }
        break;
    case 15:
    case 16:
        if (n == 4) {
            kind = "response";
        } else if (n >= 5 && d[4] == n - 5) {
            kind = "request";
            unsigned count = be16(d + 2);
            if (fc == 16)
                for (size_t i = 5; i + 1 < n; i += 2)
                    json_array_append_new(values, json_integer(be16(d + i)));
            else
                for (size_t i = 0; i < count && 5 + i / 8 < n; i++)
                    json_array_append_new(values, json_integer((d[5 + i / 8] >> (i % 8)) & 1));
        }
        if (n >= 4) {
            json_object_set_new(o, "address", json_integer(be16(d)));
            json_object_set_new(o, "count", json_integer(be16(d + 2)));
        }
        break;
    default: break;
    }
    json_object_set_new(o, "kind", json_string(kind));
    if (json_array_size(values))
        json_object_set_new(o, "values", values);
    else
        json_decref(values);
}

json_t *modbus_frame_to_json(const uint8_t *buf, size_t len, char *err, size_t err_size)
{
    json_t *o = json_object();
    // A valid CRC settles it: short RTU requests can look like an MBAP header (01 04 00 00
    // 00 02 ... has zeros where the protocol id goes).
    bool crc_ok = false;
    if (len >= 4) {
        uint16_t crc = crc16_modbus(buf, len - 2);
        crc_ok = buf[len - 2] == (crc & 0xff) && buf[len - 1] == crc >> 8;
    }
    if (!crc_ok && len >= 8 && buf[2] == 0 && buf[3] == 0 && be16(buf + 4) == len - 6) {
        json_object_set_new(o, "framing", json_string("tcp"));
        json_object_set_new(o, "transaction", json_integer(be16(buf)));
        json_object_set_new(o, "unit", json_integer(buf[6]));
        decode_pdu(o, buf + 7, len - 7);
        return o;
    }
    if (len >= 4) {
        json_object_set_new(o, "framing", json_string("rtu"));
        json_object_set_new(o, "unit", json_integer(buf[0]));
        json_object_set_new(o, "crc_ok", json_boolean(crc_ok));
        decode_pdu(o, buf + 1, len - 3);
        return o;
    }
    json_decref(o);
    snprintf(err, err_size, "%zu bytes is too short for a Modbus frame", len);
    return NULL;
}

int modbus_frame_decode(const char *input, FILE *out, char *err, size_t err_size)
{
    uint8_t buf[260]; // MODBUS_TCP_MAX_ADU_LENGTH; an RTU frame is at most 256
    int n = bytes_from_hex(input, buf, sizeof(buf));
    if (n < 0) {
        snprintf(err, err_size,
                 n == -E2BIG ? "longer than any Modbus frame (260 bytes)"
                             : "expected hex digits, two per byte");
        return -EINVAL;
    }
    json_t *o = modbus_frame_to_json(buf, (size_t)n, err, err_size);
    if (!o)
        return -EINVAL;
    json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(o);
    return 0;
}
