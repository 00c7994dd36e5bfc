// SPDX-License-Identifier: MIT
// LuxPower / EG4 WiFi dongle ("LXP") frames as pure functions: stream parsing with resync,
// the translated-data (tunnelled Modbus) body, CRC, and the encoders for every frame we send.
// No I/O, no clock. The wire format is described at the top of luxpower_codec.c.
#ifndef E2M_LUXPOWER_CODEC_H
#define E2M_LUXPOWER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    LXP_SERIAL_LEN = 10,  // dongle ("datalog") and inverter serials: 10 opaque bytes
    LXP_HEADER_LEN = 18,  // prefix, protocol, frame length, address, TCP function, dongle serial
    LXP_LENGTH_AT = 4,    // the frame length field counts the bytes after offset 6
    LXP_FRAME_MAX = 600,  // a frame length beyond this is garbage (real frames are below 300)
    LXP_MAX_VALUES = 282, // registers a frame of LXP_FRAME_MAX bytes can carry
    LXP_MAX_READ = 127,   // registers one read may ask for (the reply's length byte is a u8)
    LXP_PARAM_MAX = 64,   // bytes of a dongle parameter's value we keep
};

// TCP functions (byte 7).
enum lxp_tcp {
    LXP_TCP_HEARTBEAT = 0xC1,
    LXP_TCP_TRANSLATED = 0xC2, // a Modbus request or reply tunnelled to the inverter
    LXP_TCP_READ_PARAM = 0xC3, // a parameter of the dongle itself
    LXP_TCP_WRITE_PARAM = 0xC4,
};

// Device functions inside translated data; a reply with bit 7 set is an exception.
enum lxp_function {
    LXP_READ_HOLD = 0x03,
    LXP_READ_INPUT = 0x04,
    LXP_WRITE_SINGLE = 0x06,
    LXP_WRITE_MULTI = 0x10,
};

enum lxp_status {
    LXP_OK = 0,      // a whole frame (translated data: look at crc_ok)
    LXP_NEED_MORE,   // not a whole frame yet: read more and call again with everything
    LXP_GARBAGE,     // bytes before the next prefix, or a prefix with an impossible length
    LXP_BAD_FRAME,   // a frame whose body does not fit its function
    LXP_UNSUPPORTED, // a well-formed frame of a TCP or device function we do not know
};
const char *lxp_status_name(enum lxp_status s);

// One frame. Pointers point into the parsed buffer.
struct lxp_frame {
    size_t len; // the frame's bytes; for LXP_GARBAGE/BAD_FRAME/UNSUPPORTED the bytes to drop
    uint16_t protocol;
    uint8_t tcp_function; // enum lxp_tcp
    uint8_t datalog[LXP_SERIAL_LEN];

    // Heartbeat: the byte after the serial (0x00, or 0x05 on EG4 "DG" dongles), when present.
    bool has_tail;
    uint8_t tail;

    // Translated data.
    uint8_t address;  // 0 in a client's request, 1 in the inverter's reply (not checked)
    uint8_t function; // enum lxp_function, without the exception bit
    bool exception;
    uint8_t exception_code; // 1 illegal function, 2 illegal address, 3 illegal value, ...
    bool request;           // a client's request (address 0 and a request's body)
    uint8_t inverter[LXP_SERIAL_LEN];
    uint16_t reg; // the start register
    bool has_count;
    uint16_t count;       // read request, write-multi request and reply: registers
    bool has_length_byte; // read reply: the byte count before the values (protocols 2 and 5)
    uint16_t n_values;    // read reply, write single (request and reply), write-multi request
    uint16_t values[LXP_MAX_VALUES];
    bool crc_ok;
    uint16_t crc, crc_calc;

    // Parameters (read/write param): the parameter, and its value when the frame has one.
    uint16_t param;
    bool has_value;
    uint16_t value_len;
    const uint8_t *value;
};

// CRC-16/MODBUS over the data frame (the bytes after the data length, before the CRC).
uint16_t lxp_crc(const uint8_t *data, size_t len);

// Parses the frame at the start of buf[0..len). Returns LXP_NEED_MORE (f->len = 0) when more
// bytes are needed; otherwise f->len bytes are consumed: the frame, or the garbage to drop so
// that the next call starts at the next prefix. A CRC mismatch is LXP_OK with crc_ok false (the
// caller drops the frame; the decode CLI shows it).
enum lxp_status lxp_parse(const uint8_t *buf, size_t len, struct lxp_frame *f);

// ---- encoders: each returns the frame's length, -ENOSPC when `cap` is too small, or -EINVAL
// for arguments the frame cannot carry ----------------------------------------------------

// A read of `count` (1..LXP_MAX_READ) holding (LXP_READ_HOLD) or input registers, protocol 1.
int lxp_encode_read(uint8_t *out, size_t cap, const uint8_t *datalog, const uint8_t *inverter,
                    uint8_t function, uint16_t reg, uint16_t count);
// A single-register write, protocol 1.
int lxp_encode_write_single(uint8_t *out, size_t cap, const uint8_t *datalog,
                            const uint8_t *inverter, uint16_t reg, uint16_t value);
// A write of `n` (1..LXP_MAX_READ) consecutive registers, protocol 2.
int lxp_encode_write_multi(uint8_t *out, size_t cap, const uint8_t *datalog,
                           const uint8_t *inverter, uint16_t reg, const uint16_t *values,
                           uint16_t n);
// A heartbeat (the echo a client sends back, or the dongle's own): 19 bytes.
int lxp_encode_heartbeat(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                         uint8_t tail);
// A read of a dongle parameter, protocol 2.
int lxp_encode_read_param(uint8_t *out, size_t cap, const uint8_t *datalog, uint16_t param);

// Frames only the inverter sends, for tests and fuzz seeds. A read reply carries the length
// byte when `length_byte` is true (protocols 2 and 5).
int lxp_encode_read_reply(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                          const uint8_t *inverter, uint8_t function, uint16_t reg,
                          const uint16_t *values, uint16_t n, bool length_byte);
int lxp_encode_write_single_reply(uint8_t *out, size_t cap, uint16_t protocol,
                                  const uint8_t *datalog, const uint8_t *inverter, uint16_t reg,
                                  uint16_t value);
int lxp_encode_exception(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                         const uint8_t *inverter, uint8_t function, uint16_t reg, uint8_t code);

// ---- serials ------------------------------------------------------------------------------

// A serial as text: the 10 characters when all are printable ASCII, else 20 hex digits.
// `out` holds at least 2 * LXP_SERIAL_LEN + 1 bytes.
void lxp_serial_text(const uint8_t *serial, char *out);
// A serial from configuration text: exactly 10 printable ASCII characters. 0 or -EINVAL.
int lxp_serial_parse(const char *text, uint8_t *serial);

// Names for the decode output and logs: "heartbeat", "read_hold", ... or NULL when unknown.
const char *lxp_tcp_name(uint8_t tcp_function);
const char *lxp_function_name(uint8_t function);

// `energy2mqtt decode luxpower HEX`: one frame as one line of JSON. 0, or -EINVAL with `err`.
int luxpower_decode(const char *input, FILE *out, char *err, size_t err_size);

#endif
