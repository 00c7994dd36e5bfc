// SPDX-License-Identifier: MIT
// Byte helpers shared by codecs: hex text to bytes and CRC-16/MODBUS.
#ifndef E2M_BYTES_H
#define E2M_BYTES_H

#include <stddef.h>
#include <stdint.h>

// Parses hex digits into `out`, ignoring spaces, colons, dashes and an optional "0x" prefix
// per byte group. Returns the byte count, or -EINVAL (odd digit count, a non-hex character)
// or -E2BIG when `out_size` is too small.
int bytes_from_hex(const char *text, uint8_t *out, size_t out_size);

// One frame given as hex on the command line (`energy2mqtt decode DRIVER HEX`): its bytes in
// `out` and its length, or -EINVAL with the reason in `err` (no input, not hex, nothing, more
// than `out_size - 1` bytes, i.e. longer than any frame). `example` is the hex a user should
// give, e.g. "a11a 0200 0d00 ...".
int bytes_frame_arg(const char *input, uint8_t *out, size_t out_size, const char *example,
                    char *err, size_t err_size);

// CRC-16/MODBUS: polynomial 0x8005 reflected (0xA001), initial value 0xFFFF, no final XOR.
// On the wire the low byte comes first.
uint16_t crc16_modbus(const uint8_t *data, size_t len);

#endif
