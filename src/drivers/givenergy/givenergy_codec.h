// SPDX-License-Identifier: MIT
// GivEnergy dongle frames as pure functions: stream parsing with resync, the transparent
// (tunnelled Modbus-RTU) inner frame in both directions, CRC, and the encoders. No I/O, no
// clock. The wire format is described at the top of givenergy_codec.c.
#ifndef E2M_GIVENERGY_CODEC_H
#define E2M_GIVENERGY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    GE_SERIAL_LEN = 10,  // adapter and inverter serials: 10 ASCII characters
    GE_HEADER_LEN = 8,   // marker, length, unit id, function id
    GE_MIN_FRAME = 19,   // a heartbeat
    GE_LENGTH_MAX = 300, // a length field beyond this is garbage (real frames are below 170)
    GE_FRAME_MAX = 6 + GE_LENGTH_MAX,
    GE_INNER_AT = 26,    // the inner frame: device address, function, body, CRC
    GE_MAX_READ = 60,    // registers one read may ask for
    GE_MAX_VALUES = 132, // registers a frame of GE_FRAME_MAX bytes can carry
    GE_REQUEST_LEN = 34, // every read or write request
};

// Outer function ids (byte 7).
enum ge_fid {
    GE_FID_HEARTBEAT = 0x01,
    GE_FID_TRANSPARENT = 0x02,
};

// Inner device functions (byte 27); a response with bit 7 set is an error.
enum ge_function {
    GE_FN_NULL = 0x00,
    GE_FN_READ_HOLDING = 0x03,
    GE_FN_READ_INPUT = 0x04,
    GE_FN_WRITE_SINGLE = 0x06,
    GE_FN_READ_METER = 0x16, // meter product information (a read)
};

// Which way a frame travelled: requests carry no inverter serial, responses do.
enum ge_direction {
    GE_DIR_ANY = 0,  // guess from the inner length (the decode CLI)
    GE_DIR_REQUEST,  // client -> dongle
    GE_DIR_RESPONSE, // dongle -> client
};

enum ge_status {
    GE_OK = 0,      // a whole frame (transparent: look at crc_ok)
    GE_NEED_MORE,   // not a whole frame yet: read more and call again with everything
    GE_GARBAGE,     // bytes before the next marker, or a marker with impossible fields
    GE_BAD_FRAME,   // a frame whose inner part does not fit its function and direction
    GE_IGNORED,     // a well-formed frame that carries nothing: null response, LAN broadcast
    GE_UNSUPPORTED, // a well-formed frame of an inner function we do not know
};
const char *ge_status_name(enum ge_status s);

// One frame. The values are copied out of the buffer.
struct ge_frame {
    size_t len; // the frame's bytes; for anything but GE_OK/GE_IGNORED the bytes to drop
    uint8_t unit_id;
    uint8_t fid; // enum ge_fid
    uint8_t adapter[GE_SERIAL_LEN];
    uint8_t adapter_type; // heartbeat

    // Transparent frames.
    bool lan_config;                 // GE_IGNORED: the dongle's LAN-configuration broadcast
    uint64_t inner_len;              // the "padding" field: the inner frame's length (not checked)
    bool response;                   // the direction the frame was decoded as
    uint8_t address;                 // device address (0x11 inverter, 0x32+ battery packs, ...)
    uint8_t function;                // enum ge_function, without the error bit
    bool error;                      // the function's bit 7 (no exception code follows)
    uint8_t inverter[GE_SERIAL_LEN]; // responses
    uint16_t reg;                    // the base register (reads), the register (writes)
    bool has_count;
    uint16_t count;    // reads; an error response's second word
    uint16_t n_values; // read response: count; write: 1 (the value, or the echo)
    uint16_t values[GE_MAX_VALUES];
    bool all_zero; // a read response of more than one register, every one 0
    bool crc_ok;
    uint16_t crc, crc_calc;
};

// CRC-16/MODBUS over the inner frame (device address through the last byte before the CRC).
uint16_t ge_crc(const uint8_t *data, size_t len);

// Parses the frame at the start of buf[0..len), travelling in direction `dir`. Returns
// GE_NEED_MORE (f->len = 0) when more bytes are needed; otherwise f->len bytes are consumed:
// the frame, or the garbage to drop so that the next call starts at the next marker. A CRC
// mismatch is GE_OK with crc_ok false (the caller drops the frame; the decode CLI shows it).
enum ge_status ge_parse(const uint8_t *buf, size_t len, enum ge_direction dir, struct ge_frame *f);

// ---- encoders: each returns the frame's length, -ENOSPC when `cap` is too small, or -EINVAL
// for arguments the frame cannot carry. A NULL `adapter` sends the dummy serial AB1234G567 ---

// A read of `count` (1..GE_MAX_READ) registers with `function` (3, 4 or 0x16).
int ge_encode_read(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                   uint8_t function, uint16_t reg, uint16_t count);
// A single holding-register write (function 6).
int ge_encode_write(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address, uint16_t reg,
                    uint16_t value);
// A heartbeat (the dongle's, or a client's answer echoing the adapter type): 19 bytes.
int ge_encode_heartbeat(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t type);

// Frames only the dongle sends, for tests and fuzz seeds.
int ge_encode_read_response(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                            uint8_t function, const uint8_t *inverter, uint16_t reg,
                            const uint16_t *values, uint16_t n);
int ge_encode_write_response(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                             const uint8_t *inverter, uint16_t reg, uint16_t value);
int ge_encode_error(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                    uint8_t function, const uint8_t *inverter, uint16_t word1, uint16_t word2);

// ---- serials ------------------------------------------------------------------------------

// A serial as text: the 10 characters when all are printable ASCII, else 20 hex digits.
// `out` holds at least 2 * GE_SERIAL_LEN + 1 bytes.
void ge_serial_text(const uint8_t *serial, char *out);

// Names for the decode output and logs: "heartbeat", "read_holding", ... or NULL when unknown.
const char *ge_fid_name(uint8_t fid);
const char *ge_function_name(uint8_t function);

// ---- identity -----------------------------------------------------------------------------

// Product families by the first hex digit of the device type code (holding register 0).
enum ge_family {
    GE_FAMILY_UNKNOWN = 0,
    GE_FAMILY_HYBRID,      // 2xxx: single-phase hybrid (Gen1, Gen2, Gen3)
    GE_FAMILY_AC,          // 3xxx: AC-coupled
    GE_FAMILY_THREE_PHASE, // 4xxx, 6xxx
    GE_FAMILY_EMS,         // 5xxx
    GE_FAMILY_GATEWAY,     // 7xxx
    GE_FAMILY_AIO,         // 8xxx: All-in-One (and the HV Gen3 hybrid at 81xx)
};

// What holding registers 0-21 say about the inverter.
struct ge_identity {
    uint16_t dtc; // device type code (HR0)
    enum ge_family family;
    int generation; // hybrids: 1, 2 or 3 (from the ARM firmware, HR21); else 0
    uint16_t arm_firmware, dsp_firmware;
    char serial[GE_SERIAL_LEN + 1]; // HR13-17
    const char *model;              // the entity file for it, e.g. "givenergy/hybrid", or NULL
};

// Reads the identity from holding registers 0..21 (`hr` holds at least 22 values).
void ge_identify(const uint16_t *hr, struct ge_identity *id);
const char *ge_family_name(enum ge_family family);
// The family from its name as entity files write it ("hybrid", "hybrid_gen3", "ac", "aio").
// Returns 0, or -EINVAL.
int ge_family_parse(const char *name, enum ge_family *family, bool *gen3);

// `energy2mqtt decode givenergy HEX`: one frame as one line of JSON. 0, or -EINVAL with `err`.
int givenergy_decode(const char *input, FILE *out, char *err, size_t err_size);

#endif
