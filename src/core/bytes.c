// SPDX-License-Identifier: MIT
// Hex parsing and CRC-16/MODBUS.
#include "core/bytes.h"

#include <errno.h>
#include <stdio.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int bytes_from_hex(const char *text, uint8_t *out, size_t out_size)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' || *p == ':' || *p == '-' || *p == '\t' || *p == '\n' || *p == '\r')
            continue;
        if (hi < 0 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
            p++;
            continue;
        }
        int v = hexval(*p);
        if (v < 0)
            return -EINVAL;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == out_size)
            return -E2BIG;
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return hi < 0 ? (int)n : -EINVAL;
}

int bytes_frame_arg(const char *input, uint8_t *out, size_t out_size, const char *example,
                    char *err, size_t err_size)
{
    int n = input ? bytes_from_hex(input, out, out_size) : 0;
    if (!input)
        snprintf(err, err_size, "no input");
    else if (n == -E2BIG)
        snprintf(err, err_size, "more than %zu bytes: not one frame", out_size - 1);
    else if (n < 0)
        snprintf(err, err_size, "not hex: give the frame as hex digits (\"%s\")", example);
    else if (n == 0)
        snprintf(err, err_size, "no data: give the frame as hex (\"%s\")", example);
    else
        return n;
    return -EINVAL;
}

uint16_t crc16_modbus(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}
