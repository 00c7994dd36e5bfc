// SPDX-License-Identifier: MIT
// Hoymiles HMS-W DTU: "HM" frames around protobuf messages, with AES-128-GCM on DTU firmware
// V01.01.x. Pure functions (no I/O, no clock reads): the driver owns the socket and the time.
// The protocol description is at the top of hoymiles_codec.c; the messages are
// proto/hoymiles/*.proto, compiled by protoc-c.
#ifndef E2M_HOYMILES_CODEC_H
#define E2M_HOYMILES_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "hoymiles/app_info.pb-c.h"
#include "hoymiles/command.pb-c.h"
#include "hoymiles/get_config.pb-c.h"
#include "hoymiles/heartbeat.pb-c.h"
#include "hoymiles/network_info.pb-c.h"
#include "hoymiles/realdata_new.pb-c.h"
#include "hoymiles/warn.pb-c.h"

enum {
    HM_HEADER_LEN = 10,      // magic, tag, seq, crc, total length
    HM_GCM_TAG_LEN = 16,     // after an encrypted frame, outside its total length
    HM_PAYLOAD_MAX = 8192,   // a longer frame is garbage (real replies are < 2 KiB)
    HM_ENC_RAND_MAX = 64,    // the seed is 16 bytes; accept up to this many
    HM_LIMIT_OFFSET = 28800, // the `offset` every client sends (the DTU ignores it)
};

// Request tags (App -> DTU). A reply's tag is the request's minus 0x0100.
enum hm_tag {
    HM_TAG_APP_INFO = 0xA301,
    HM_TAG_HEARTBEAT = 0xA302,
    HM_TAG_WARN = 0xA304,
    HM_TAG_COMMAND = 0xA305,
    HM_TAG_COMMAND_STATUS = 0xA306,
    HM_TAG_GET_CONFIG = 0xA309,
    HM_TAG_REALDATA_NEW = 0xA311,
    HM_TAG_NETWORK_INFO = 0xA314,
    HM_TAG_CLOUD_COMMAND = 0x2305, // accepted locally for reboots and on/off, never answered
};
static inline uint16_t hm_reply_tag(uint16_t request_tag)
{
    return (uint16_t)(request_tag - 0x0100);
}

// Command actions (CommandResDTO.action).
enum hm_action {
    HM_ACTION_DTU_REBOOT = 1,
    HM_ACTION_INVERTER_REBOOT = 3,
    HM_ACTION_INVERTER_ON = 6,
    HM_ACTION_INVERTER_OFF = 7,
    HM_ACTION_LIMIT_PERCENT = 8, // persistent, data "A:<0.1 %>,B:0,C:0\r"
    HM_ACTION_PERFORMANCE_MODE = 33,
    HM_ACTION_ALARM_LIST = 50,
    HM_ACTION_LIMIT_WATTS = 211, // RAM only, data "S:1,P:<0.1 W>"
};

enum hm_status {
    HM_OK = 0,
    HM_NEED_MORE,      // not a whole frame yet
    HM_SKIP_GARBAGE,   // bytes before the next "HM" (or a frame too long to be real): drop f->len
    HM_BAD_LENGTH,     // a total length below the header size: drop f->len (2 bytes) and resync
    HM_BAD_CHECKSUM,   // a whole frame whose CRC does not match: drop f->len
    HM_DECRYPT_FAILED, // the GCM tag does not verify (wrong or rotated seed)
    HM_BAD_MESSAGE,    // the payload is not a protobuf message
    HM_UNKNOWN_TYPE,   // a tag we have no message for
};
const char *hm_status_name(enum hm_status s);

// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF): "123456789" -> 0x4B37.
uint16_t hm_crc16(const uint8_t *p, size_t n);

// ---- encryption ----------------------------------------------------------------------------

// The session key of an encrypting DTU: derived from the seed in AppInfo (enc_rand). `on`
// false = plain firmware.
struct hm_crypto {
    bool on;
    uint8_t key[16];
    uint8_t seed[HM_ENC_RAND_MAX];
    size_t seed_len;
};

// Whether an AppInfo reply's dtu_info.dfs says the DTU encrypts (bit 25).
bool hm_dfs_encrypted(int64_t dfs);
// Turns encryption on with `enc_rand` as the seed (derives the key). -EINVAL when the seed is
// empty or longer than HM_ENC_RAND_MAX.
int hm_crypto_set(struct hm_crypto *c, const uint8_t *enc_rand, size_t len);
// Whether frames with this tag are encrypted on an encrypting DTU: everything but AppInfo
// (0xA301/0xA201), the heartbeat, and the cloud-direction tags 0x22xx/0x23xx; frames with an
// empty payload never carry a GCM tag.
bool hm_tag_encrypted(uint16_t tag);

// ---- framing -------------------------------------------------------------------------------

struct hm_frame {
    uint16_t tag, seq, crc;
    bool crc_ok;
    bool encrypted;         // a GCM tag follows the frame (and `payload` is ciphertext)
    size_t len;             // bytes this result covers in the input (incl. the GCM tag)
    const uint8_t *payload; // points into the input
    size_t payload_len;
    const uint8_t *gcm_tag; // points into the input, or NULL
};

// Looks at the start of `buf`. With `crypto` on, a frame whose tag is encrypted (and whose
// payload is not empty) is followed by HM_GCM_TAG_LEN bytes that belong to it.
//  HM_OK: a whole frame with a good CRC; drop f->len bytes after use.
//  HM_NEED_MORE: wait for more bytes (nothing to drop).
//  HM_SKIP_GARBAGE / HM_BAD_LENGTH / HM_BAD_CHECKSUM: drop f->len bytes (> 0) and try again.
enum hm_status hm_frame_parse(const uint8_t *buf, size_t len, const struct hm_crypto *crypto,
                              struct hm_frame *f);

// Decrypts an encrypted frame's payload into `out` (f->payload_len bytes), checking the GCM
// tag with the frame's own tag and seq. HM_OK or HM_DECRYPT_FAILED. A plain frame is copied.
enum hm_status hm_frame_open(const struct hm_crypto *c, const struct hm_frame *f, uint8_t *out);

// Builds a frame with `payload` (encrypted when `crypto` is on and the tag is encrypted, the
// GCM tag appended). Returns its length in bytes, or -E2BIG when `cap` is too small.
int hm_frame_build(uint8_t *out, size_t cap, uint16_t tag, uint16_t seq, const uint8_t *payload,
                   size_t payload_len, const struct hm_crypto *crypto);

// ---- messages ------------------------------------------------------------------------------

struct hm_message {
    uint16_t tag;     // the tag this message travels under
    const char *name; // Hoymiles' name, e.g. "RealDataNewReqDTO"
    const ProtobufCMessageDescriptor *desc;
};

// The message for a tag (requests 0xA3xx/0x2305 and replies 0xA2xx/0x2205), or NULL.
const struct hm_message *hm_message_for_tag(uint16_t tag);
// By name (as printed by decode, e.g. "RealDataNewReqDTO"), or NULL.
const struct hm_message *hm_message_by_name(const char *name);

// Unpacks `payload` as `desc`. Unknown fields and fields whose wire type does not match the
// definition are skipped (counted in *skipped when not NULL), at every nesting level; a
// payload that is not protobuf at all gives NULL. Free the result with
// protobuf_c_message_free_unpacked(msg, NULL).
ProtobufCMessage *hm_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *payload,
                            size_t len, unsigned *skipped);

// A message as JSON: every field present by its .proto name, integers raw, repeated fields as
// arrays, nested messages as objects, bytes as lower-case hex, strings as text (invalid UTF-8
// replaced).
json_t *hm_message_json(const ProtobufCMessage *msg);

// ---- requests ------------------------------------------------------------------------------

// The client time every request carries: Unix seconds and the local offset from UTC (for the
// "YYYY-MM-DD HH:MM:SS" fields).
struct hm_clock {
    int64_t unix_s;
    int32_t local_offset_s;
};

// Each builds a whole request frame (encrypted when `crypto` is on) and returns its length,
// or -E2BIG. `cp` is the package index (0 first).
int hm_req_app_info(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                    const struct hm_crypto *crypto);
int hm_req_realdata(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t, int cp,
                    const struct hm_crypto *crypto);
int hm_req_get_config(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                      const struct hm_crypto *crypto);
int hm_req_warn(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                const struct hm_crypto *crypto);
int hm_req_network_info(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                        const struct hm_crypto *crypto);

// A command. `tag` is HM_TAG_COMMAND or HM_TAG_CLOUD_COMMAND; `data` may be NULL; `serials`
// (n of them) go into mi_to_sn; tid is the Unix time. package_nub is 1.
struct hm_command {
    uint16_t tag;
    int action;
    int dev_kind; // < 0: not sent
    const char *data;
    const int64_t *serials;
    size_t n_serials;
};
int hm_req_command(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                   const struct hm_command *cmd, const struct hm_crypto *crypto);

// The data strings of the two limit commands. Return the length written, -E2BIG, or -EINVAL
// for a value that is not finite or out of range (percent 0..100, watts 0..100000).
int hm_limit_percent_data(char *out, size_t cap, double percent); // "A:800,B:0,C:0\r"
int hm_limit_watts_data(char *out, size_t cap, double watts);     // "S:1,P:300"

// The persistent % limit from AppInfo's app feature 8 ("1,A:1000,B:1000,C:1000" -> 100.0).
// -EINVAL when the text has no A: value, or one outside 0..1000 (tenths of a percent).
int hm_feature_limit_percent(const char *value, double *percent);

// ---- text ----------------------------------------------------------------------------------

// Version numbers as printed by the app: DTU sw/hw 4353 -> "01.01.01"; inverter sw 10008 ->
// "01.00.08"; inverter hw 256 -> "00.04.00".
void hm_dtu_version(int v, char *out, size_t cap);
void hm_inverter_sw_version(int v, char *out, size_t cap);
void hm_inverter_hw_version(int v, char *out, size_t cap);
// An inverter serial as on its label: 0x141292373246 -> "141292373246".
void hm_serial_text(int64_t serial, char *out, size_t cap);
// The model from the serial's first two bytes (e.g. 0x1412 -> "HMS-800W-2T"), or NULL.
const char *hm_inverter_model(int64_t serial);

// ---- decode CLI ----------------------------------------------------------------------------

// `energy2mqtt decode hoymiles HEX`: one frame (header, payload, GCM tag when present) as a
// JSON line {tag, seq, crc_ok, encrypted, message, fields}. An encrypted frame decodes when
// the input starts with "enc_rand=<hex> " (the seed from the DTU's AppInfo); without it,
// `fields` is null.
int hoymiles_decode(const char *input, FILE *out, char *err, size_t err_size);
// `energy2mqtt decode hoymiles --message NAME HEX`: a bare payload as message NAME.
int hoymiles_decode_message(const char *message, const char *input, FILE *out, char *err,
                            size_t err_size);

#endif
