// SPDX-License-Identifier: MIT
// Hoymiles HMS-W DTU codec: "HM" framing, CRC, AES-128-GCM, protobuf messages, requests, decode.
//
// Transport: TCP port 10081 on the DTU (built into HMS-xxxW-xT inverters; the stand-alone
// DTU-WLite/Lite-S/Pro speak the same). It answers only while the inverter has DC power, and
// only one request at a time: the client sends a frame and waits for the reply before the next.
//
// Frame (every multi-byte integer big-endian):
//
//   offset  size  field
//        0     2  magic "HM" (0x48 0x4D), both directions
//        2     2  tag: requests 0xA3xx (App -> DTU), replies 0xA2xx = request tag - 0x0100;
//                 the cloud-direction 0x23xx/0x22xx pair follows the same rule
//        4     2  sequence number; the DTU echoes the request's value in its reply
//        6     2  CRC-16 over the payload only (never the header)
//        8     2  total length = 10 + payload length
//       10     n  payload: one protobuf message, which message depends on the tag
//      10+n   16  GCM authentication tag, encrypted frames only (see below)
//
// CRC: CRC-16/MODBUS, i.e. polynomial 0x8005 processed LSB first (0xA001 in the right-shifting
// form), initial value 0xFFFF, no final XOR; "123456789" gives 0x4B37, an empty payload 0xFFFF.
//
// Encryption (DTU firmware V01.01.x): the AppInfo reply (tag 0xA201, always plain) says whether
// the DTU encrypts: bit 25 of dtu_info.dfs (e.g. 0x4E0000C0 encrypts, 0x4C0000C0 does not).
// Its dtu_info.enc_rand (16 bytes, new after every DTU reboot) is the seed:
//   key   = the first 16 bytes of SHA-256(SHA-256(SHA-256(enc_rand)))
//   nonce = the last 12 bytes of SHA-256 applied three times to
//           tag (u16 little-endian) || seq (u16 little-endian) || enc_rand
//   AAD   = tag (u16 LE) || seq (u16 LE), the same four bytes
//   AES-128-GCM with a 16-byte tag; the ciphertext is as long as the plaintext.
// Each frame uses its own tag and seq, so a reply is opened with the reply's header values.
// The header stays plain; the CRC and the total length cover the ciphertext, and the GCM tag
// follows the frame outside the total length, so a reader must wait for total length + 16
// bytes. A frame with an empty payload carries no GCM tag. Encrypted are all tags except
// AppInfo (0xA301/0xA201), the heartbeat (0xA302/0xA202; sources disagree, the clients that
// work against V01.01.01 send it plain) and the cloud-direction tags 0x22xx/0x23xx.
//
// Messages (proto/hoymiles/*.proto, compiled by protoc-c; names as Hoymiles spells them, seen
// from the cloud: a "...ResDTO" goes TO the DTU, a "...ReqDTO" comes FROM it):
//   0xA301/0xA201 AppInfo, 0xA302/0xA202 heartbeat, 0xA304/0xA204 warnings,
//   0xA305/0xA205 and 0x2305/0x2205 command, 0xA306/0xA206 command status,
//   0xA309/0xA209 GetConfig, 0xA311/0xA211 RealDataNew, 0xA314/0xA214 NetworkInfo.
// Requests carry the client's time: `time` (Unix seconds), `offset` 28800 (sent by every
// client, ignored by the DTU) and, in some, `time_ymd_hms` "YYYY-MM-DD HH:MM:SS" local time.
//
// Quirks the decoder handles:
//   - The DTU encodes proto3, so a field that equals 0 is absent; the .proto files are proto2
//     so that absent (has_x false) and a sent 0 stay apart where it matters (power_limit).
//   - Negative int32 values (reactive power, temperature) arrive as 10-byte varints.
//   - Unknown fields appear (newer firmware, WB models), and known field numbers sometimes
//     carry another wire type: on WB devices field 13 of the RealDataNew reply is a message,
//     not the uint64 daily energy. protobuf-c rejects a whole message for one such field, so
//     hm_unpack first rewrites the payload: it walks the wire format along the descriptor,
//     drops unknown fields and fields whose wire type does not fit (a repeated scalar may come
//     packed or not; both fit), does the same inside nested messages (re-encoding their
//     length), and counts what it dropped. Broken wire data (truncated varint, a length past
//     the end, group wire types 3/4, field number 0) fails the whole payload.
#include "drivers/hoymiles/hoymiles_codec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/bytes.h"
#include "core/mem.h"

enum {
    SHA256_LEN = 32,
    GCM_NONCE_LEN = 12,
    VARINT_MAX = 10,
    FIELD_NUMBER_MAX = 0x1FFFFFFF,
};

enum wire_type {
    WIRE_VARINT = 0,
    WIRE_FIXED64 = 1,
    WIRE_LEN = 2,
    WIRE_GROUP_START = 3,
    WIRE_GROUP_END = 4,
    WIRE_FIXED32 = 5,
};

const char *hm_status_name(enum hm_status s)
{
    switch (s) {
    case HM_OK: return "ok";
    case HM_NEED_MORE: return "need_more";
    case HM_SKIP_GARBAGE: return "skip_garbage";
    case HM_BAD_LENGTH: return "bad_length";
    case HM_BAD_CHECKSUM: return "bad_checksum";
    case HM_DECRYPT_FAILED: return "decrypt_failed";
    case HM_BAD_MESSAGE: return "bad_message";
    case HM_UNKNOWN_TYPE: return "unknown_type";
    }
    return "unknown_status";
}

uint16_t hm_crc16(const uint8_t *p, size_t n)
{
    return crc16_modbus(p, n); // the DTU uses the Modbus CRC, over the payload only
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

// ---- encryption ----------------------------------------------------------------------------

bool hm_dfs_encrypted(int64_t dfs)
{
    return ((uint64_t)dfs >> 25) & 1;
}

bool hm_tag_encrypted(uint16_t tag)
{
    unsigned family = tag >> 8;
    if (family == 0x22 || family == 0x23)
        return false;
    switch (tag) {
    case HM_TAG_APP_INFO:
    case 0xA201:
    case HM_TAG_HEARTBEAT:
    case 0xA202: return false;
    default: return true;
    }
}

// SHA-256 applied three times; `out` receives the last digest.
static int sha256_thrice(const uint8_t *in, size_t len, uint8_t out[SHA256_LEN])
{
    uint8_t a[SHA256_LEN], b[SHA256_LEN];
    unsigned n = 0;
    if (!EVP_Digest(in, len, a, &n, EVP_sha256(), NULL) || n != SHA256_LEN)
        return -EIO;
    if (!EVP_Digest(a, sizeof(a), b, &n, EVP_sha256(), NULL) || n != SHA256_LEN)
        return -EIO;
    if (!EVP_Digest(b, sizeof(b), out, &n, EVP_sha256(), NULL) || n != SHA256_LEN)
        return -EIO;
    return 0;
}

int hm_crypto_set(struct hm_crypto *c, const uint8_t *enc_rand, size_t len)
{
    if (!c || !enc_rand || len == 0 || len > HM_ENC_RAND_MAX)
        return -EINVAL;
    uint8_t digest[SHA256_LEN];
    if (sha256_thrice(enc_rand, len, digest) < 0)
        return -EIO;
    memset(c, 0, sizeof(*c));
    memcpy(c->key, digest, sizeof(c->key));
    memcpy(c->seed, enc_rand, len);
    c->seed_len = len;
    c->on = true;
    return 0;
}

// The per-frame nonce and AAD (see the top of the file).
static int frame_nonce(const struct hm_crypto *c, uint16_t tag, uint16_t seq,
                       uint8_t nonce[GCM_NONCE_LEN], uint8_t aad[4])
{
    uint8_t in[4 + HM_ENC_RAND_MAX];
    aad[0] = (uint8_t)tag;
    aad[1] = (uint8_t)(tag >> 8);
    aad[2] = (uint8_t)seq;
    aad[3] = (uint8_t)(seq >> 8);
    memcpy(in, aad, 4);
    memcpy(in + 4, c->seed, c->seed_len);
    uint8_t digest[SHA256_LEN];
    if (sha256_thrice(in, 4 + c->seed_len, digest) < 0)
        return -EIO;
    memcpy(nonce, digest + SHA256_LEN - GCM_NONCE_LEN, GCM_NONCE_LEN);
    return 0;
}

// AES-128-GCM over `len` bytes from `in` to `out` (which may be the same buffer). Encrypting
// writes the tag to `tag`; decrypting checks it. 0, or -EBADMSG when the tag does not verify.
static int gcm_run(const struct hm_crypto *c, uint16_t tag, uint16_t seq, bool encrypt,
                   const uint8_t *in, size_t len, uint8_t *out, uint8_t gcm_tag[HM_GCM_TAG_LEN])
{
    uint8_t nonce[GCM_NONCE_LEN], aad[4];
    if (len > INT_MAX || frame_nonce(c, tag, seq, nonce, aad) < 0)
        return -EIO;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -ENOMEM;
    int rc = -EIO, n = 0;
    int (*init)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const unsigned char *,
                const unsigned char *) = encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex;
    int (*update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int) =
        encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
    if (!init(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN, NULL) ||
        !init(ctx, NULL, NULL, c->key, nonce) || !update(ctx, NULL, &n, aad, sizeof(aad)))
        goto out;
    if (len > 0 && (!update(ctx, out, &n, in, (int)len) || (size_t)n != len))
        goto out;
    if (encrypt) {
        if (!EVP_EncryptFinal_ex(ctx, out + len, &n) ||
            !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, HM_GCM_TAG_LEN, gcm_tag))
            goto out;
    } else {
        if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, HM_GCM_TAG_LEN, gcm_tag))
            goto out;
        if (EVP_DecryptFinal_ex(ctx, out + len, &n) <= 0) {
            rc = -EBADMSG;
            goto out;
        }
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

// ---- framing -------------------------------------------------------------------------------

// Whether a frame with this tag and payload length carries a GCM tag under `crypto`.
static bool frame_is_encrypted(const struct hm_crypto *crypto, uint16_t tag, size_t payload_len)
{
    return crypto && crypto->on && payload_len > 0 && hm_tag_encrypted(tag);
}

enum hm_status hm_frame_parse(const uint8_t *buf, size_t len, const struct hm_crypto *crypto,
                              struct hm_frame *f)
{
    memset(f, 0, sizeof(*f));
    if (!buf || len == 0)
        return HM_NEED_MORE;

    // Resynchronise: everything before the next "HM" (or a trailing "H" that may be the first
    // half of one) is garbage.
    if (buf[0] != 'H' || (len > 1 && buf[1] != 'M')) {
        size_t i = 1;
        while (i < len && !(buf[i] == 'H' && (i + 1 == len || buf[i + 1] == 'M')))
            i++;
        f->len = i;
        return HM_SKIP_GARBAGE;
    }
    if (len < HM_HEADER_LEN)
        return HM_NEED_MORE;

    size_t total = get_be16(buf + 8);
    if (total < HM_HEADER_LEN) {
        f->len = 2;
        return HM_BAD_LENGTH;
    }
    if (total - HM_HEADER_LEN > HM_PAYLOAD_MAX) {
        // Real replies stay far below this; the "HM" was most likely found inside garbage.
        f->len = 2;
        return HM_SKIP_GARBAGE;
    }
    uint16_t tag = get_be16(buf + 2);
    size_t payload_len = total - HM_HEADER_LEN;
    bool enc = frame_is_encrypted(crypto, tag, payload_len);
    size_t need = total + (enc ? HM_GCM_TAG_LEN : 0);
    if (len < need)
        return HM_NEED_MORE;

    f->tag = tag;
    f->seq = get_be16(buf + 4);
    f->crc = get_be16(buf + 6);
    f->payload = buf + HM_HEADER_LEN;
    f->payload_len = payload_len;
    f->encrypted = enc;
    f->gcm_tag = enc ? buf + total : NULL;
    f->len = need;
    f->crc_ok = hm_crc16(f->payload, payload_len) == f->crc;
    // The header's magic and length are plausible, so a bad CRC drops the whole frame: with
    // TCP underneath this is a frame we cannot use, not a misaligned stream.
    return f->crc_ok ? HM_OK : HM_BAD_CHECKSUM;
}

enum hm_status hm_frame_open(const struct hm_crypto *c, const struct hm_frame *f, uint8_t *out)
{
    if (!f->encrypted) {
        if (f->payload_len > 0)
            memmove(out, f->payload, f->payload_len);
        return HM_OK;
    }
    if (!c || !c->on || !f->gcm_tag)
        return HM_DECRYPT_FAILED;
    uint8_t tag[HM_GCM_TAG_LEN];
    memcpy(tag, f->gcm_tag, sizeof(tag));
    if (gcm_run(c, f->tag, f->seq, false, f->payload, f->payload_len, out, tag) < 0) {
        // Never hand out plaintext that did not authenticate.
        memset(out, 0, f->payload_len);
        return HM_DECRYPT_FAILED;
    }
    return HM_OK;
}

// Completes a frame whose payload already sits at out + HM_HEADER_LEN.
static int frame_finish(uint8_t *out, size_t cap, uint16_t tag, uint16_t seq, size_t payload_len,
                        const struct hm_crypto *crypto)
{
    bool enc = frame_is_encrypted(crypto, tag, payload_len);
    size_t total = HM_HEADER_LEN + payload_len;
    if (payload_len > HM_PAYLOAD_MAX || total + (enc ? HM_GCM_TAG_LEN : 0) > cap)
        return -E2BIG;
    uint8_t *payload = out + HM_HEADER_LEN;
    if (enc) {
        uint8_t gcm_tag[HM_GCM_TAG_LEN];
        int rc = gcm_run(crypto, tag, seq, true, payload, payload_len, payload, gcm_tag);
        if (rc < 0)
            return rc;
        memcpy(out + total, gcm_tag, sizeof(gcm_tag));
    }
    out[0] = 'H';
    out[1] = 'M';
    put_be16(out + 2, tag);
    put_be16(out + 4, seq);
    put_be16(out + 6, hm_crc16(payload, payload_len));
    put_be16(out + 8, (uint16_t)total);
    return (int)(total + (enc ? HM_GCM_TAG_LEN : 0));
}

int hm_frame_build(uint8_t *out, size_t cap, uint16_t tag, uint16_t seq, const uint8_t *payload,
                   size_t payload_len, const struct hm_crypto *crypto)
{
    if (payload_len > HM_PAYLOAD_MAX || cap < HM_HEADER_LEN || cap - HM_HEADER_LEN < payload_len)
        return -E2BIG;
    if (payload_len > 0)
        memmove(out + HM_HEADER_LEN, payload, payload_len);
    return frame_finish(out, cap, tag, seq, payload_len, crypto);
}

// ---- messages ------------------------------------------------------------------------------

static const struct hm_message messages[] = {
    {0xA301, "APPInfoDataResDTO", &hoymiles__appinfo_data_res_dto__descriptor},
    {0xA201, "APPInfoDataReqDTO", &hoymiles__appinfo_data_req_dto__descriptor},
    {0xA302, "HBResDTO", &hoymiles__hbres_dto__descriptor},
    {0xA202, "HBReqDTO", &hoymiles__hbreq_dto__descriptor},
    {0xA304, "WarnResDTO", &hoymiles__warn_res_dto__descriptor},
    {0xA204, "WarnReqDTO", &hoymiles__warn_req_dto__descriptor},
    {0xA305, "CommandResDTO", &hoymiles__command_res_dto__descriptor},
    {0xA205, "CommandReqDTO", &hoymiles__command_req_dto__descriptor},
    {0x2305, "CommandResDTO", &hoymiles__command_res_dto__descriptor},
    {0x2205, "CommandReqDTO", &hoymiles__command_req_dto__descriptor},
    {0xA306, "CommandStatusResDTO", &hoymiles__command_status_res_dto__descriptor},
    {0xA206, "CommandStatusReqDTO", &hoymiles__command_status_req_dto__descriptor},
    {0xA309, "GetConfigResDTO", &hoymiles__get_config_res_dto__descriptor},
    {0xA209, "GetConfigReqDTO", &hoymiles__get_config_req_dto__descriptor},
    {0xA311, "RealDataNewResDTO", &hoymiles__real_data_new_res_dto__descriptor},
    {0xA211, "RealDataNewReqDTO", &hoymiles__real_data_new_req_dto__descriptor},
    {0xA314, "NetworkInfoResDTO", &hoymiles__network_info_res_dto__descriptor},
    {0xA214, "NetworkInfoReqDTO", &hoymiles__network_info_req_dto__descriptor},
};
enum { N_MESSAGES = sizeof(messages) / sizeof(messages[0]) };

const struct hm_message *hm_message_for_tag(uint16_t tag)
{
    for (size_t i = 0; i < N_MESSAGES; i++)
        if (messages[i].tag == tag)
            return &messages[i];
    return NULL;
}

const struct hm_message *hm_message_by_name(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < N_MESSAGES; i++)
        if (strcasecmp(messages[i].name, name) == 0)
            return &messages[i];
    return NULL;
}

// ---- tolerant unpacking --------------------------------------------------------------------

// Reads a varint at p[*i] (at most 10 bytes, all inside n). -1 when truncated or too long.
static int read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    uint64_t x = 0;
    for (int k = 0; k < VARINT_MAX; k++) {
        if (*i >= n)
            return -1;
        uint8_t b = p[(*i)++];
        x |= (uint64_t)(b & 0x7F) << (7 * k);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

// The output of a rewrite; `buf` NULL only measures.
struct rewrite {
    uint8_t *buf;
    size_t pos, cap;
    unsigned skipped;
};

static int emit(struct rewrite *w, const uint8_t *p, size_t n)
{
    if (w->buf) {
        if (n > w->cap - w->pos)
            return -1;
        memcpy(w->buf + w->pos, p, n);
    }
    w->pos += n;
    return 0;
}

static int emit_varint(struct rewrite *w, uint64_t v)
{
    uint8_t tmp[VARINT_MAX];
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        tmp[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return emit(w, tmp, n);
}

// The wire type a single value of this field type is encoded with.
static int wire_for_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return WIRE_FIXED32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return WIRE_FIXED64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return WIRE_LEN;
    default: return WIRE_VARINT;
    }
}

// Whether `body` is a valid packed array of values of wire type `wire`.
static bool packed_ok(int wire, const uint8_t *body, size_t n)
{
    if (wire == WIRE_FIXED32)
        return n % 4 == 0;
    if (wire == WIRE_FIXED64)
        return n % 8 == 0;
    size_t i = 0;
    uint64_t v;
    while (i < n)
        if (read_varint(body, n, &i, &v) < 0)
            return false;
    return true;
}

static int rewrite_message(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                           struct rewrite *w);

// Decides whether one field stays and writes it if so. `value` is what follows a length prefix
// (or the whole value for other wire types), `raw` everything after the key. -1 only for an
// output overflow, which the sizing in hm_unpack rules out.
static int rewrite_field(const ProtobufCMessageDescriptor *d, uint32_t number, int wire,
                         const uint8_t *value, size_t value_len, const uint8_t *raw, size_t raw_len,
                         struct rewrite *w)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, number);
    if (!fd) {
        w->skipped++;
        return 0;
    }
    int want = wire_for_type(fd->type);
    uint64_t key = (uint64_t)number << 3 | (unsigned)wire;

    if (wire == want && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        // The nested message must itself be clean: measure it, then write its rewritten form.
        struct rewrite m = {.buf = NULL, .pos = 0, .cap = 0, .skipped = 0};
        if (rewrite_message(fd->descriptor, value, value_len, &m) < 0) {
            w->skipped++; // not a message after all: drop it, keep its siblings
            return 0;
        }
        if (emit_varint(w, key) < 0 || emit_varint(w, m.pos) < 0)
            return -1;
        return rewrite_message(fd->descriptor, value, value_len, w);
    }
    if (wire == want) {
        if (wire == WIRE_LEN) {
            // String or bytes: the length prefix is re-encoded in its shortest form.
            if (emit_varint(w, key) < 0 || emit_varint(w, value_len) < 0)
                return -1;
            return emit(w, value, value_len);
        }
        if (emit_varint(w, key) < 0)
            return -1;
        return emit(w, raw, raw_len);
    }
    // A repeated scalar may come packed into one length-delimited field.
    if (wire == WIRE_LEN && fd->label == PROTOBUF_C_LABEL_REPEATED && want != WIRE_LEN &&
        packed_ok(want, value, value_len)) {
        if (emit_varint(w, key) < 0 || emit_varint(w, value_len) < 0)
            return -1;
        return emit(w, value, value_len);
    }
    w->skipped++;
    return 0;
}

// Rewrites one message's wire data into w (see the top of the file). -1 on broken wire data.
static int rewrite_message(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                           struct rewrite *w)
{
    size_t i = 0;
    while (i < n) {
        uint64_t key;
        if (read_varint(p, n, &i, &key) < 0)
            return -1;
        uint64_t number = key >> 3;
        int wire = (int)(key & 7);
        if (number == 0 || number > FIELD_NUMBER_MAX)
            return -1;
        size_t start = i, value_start = i, value_len = 0;
        uint64_t v;
        switch (wire) {
        case WIRE_VARINT:
            if (read_varint(p, n, &i, &v) < 0)
                return -1;
            break;
        case WIRE_FIXED64:
            if (n - i < 8)
                return -1;
            i += 8;
            break;
        case WIRE_FIXED32:
            if (n - i < 4)
                return -1;
            i += 4;
            break;
        case WIRE_LEN:
            if (read_varint(p, n, &i, &v) < 0 || v > n - i)
                return -1;
            value_start = i;
            value_len = (size_t)v;
            i += value_len;
            break;
        default: return -1; // groups (3, 4) and the undefined 6, 7
        }
        if (wire != WIRE_LEN) {
            value_start = start;
            value_len = i - start;
        }
        if (rewrite_field(d, (uint32_t)number, wire, p + value_start, value_len, p + start,
                          i - start, w) < 0)
            return -1;
    }
    return 0;
}

ProtobufCMessage *hm_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *payload,
                            size_t len, unsigned *skipped)
{
    if (skipped)
        *skipped = 0;
    if (!desc || (!payload && len > 0))
        return NULL;
    // Shortest-form keys and lengths and dropped fields never make the output longer.
    uint8_t *buf = xmalloc(len ? len : 1);
    struct rewrite w = {.buf = buf, .pos = 0, .cap = len, .skipped = 0};
    ProtobufCMessage *msg = NULL;
    if (rewrite_message(desc, payload, len, &w) == 0) {
        msg = protobuf_c_message_unpack(desc, NULL, w.pos, buf);
        if (msg && skipped)
            *skipped = w.skipped;
    }
    free(buf);
    return msg;
}

// ---- JSON ----------------------------------------------------------------------------------

// Length of the well-formed UTF-8 sequence at s[0..n), or 0 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
    return len;
}

static json_t *json_text(const char *s, size_t n)
{
    // Every bad byte becomes U+FFFD (3 bytes), so the copy needs at most 3n bytes.
    char *clean = xmalloc(3 * n + 1);
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len(u + i, n - i);
        if (k == 0) {
            memcpy(clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, s + i, k);
            o += k;
            i += k;
        }
    }
    json_t *j = json_stringn(clean, o);
    free(clean);
    return j;
}

static json_t *json_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = xmalloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    json_t *j = json_stringn(s, 2 * n);
    free(s);
    return j;
}

static json_t *json_u64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    // JSON integers in jansson are signed 64-bit; the exact value survives as text.
    char s[24];
    snprintf(s, sizeof(s), "%" PRIu64, v);
    return json_string(s);
}

// One value of field `fd` stored at `p`.
static json_t *json_value(const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return json_u64(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s ? json_text(s, strlen(s)) : json_string("");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return json_hex(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? hm_message_json(m) : json_null();
    }
    }
    return json_null();
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

// Whether a non-repeated field is present in `msg`.
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd)
{
    const char *base = (const char *)msg;
    const void *p = base + fd->offset;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (!s || (fd->default_value && s == *(char *const *)fd->default_value))
            return false;
        return fd->label != PROTOBUF_C_LABEL_NONE || s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p != NULL;
    default: break;
    }
    if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL)
        return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
    // proto3 without presence: a value equal to zero is not sent.
    if (fd->type == PROTOBUF_C_TYPE_BYTES)
        return ((const ProtobufCBinaryData *)p)->len > 0;
    static const uint8_t zero[16];
    size_t sz = type_size(fd->type);
    return sz <= sizeof(zero) && memcmp(p, zero, sz) != 0;
}

json_t *hm_message_json(const ProtobufCMessage *msg)
{
    if (!msg || !msg->descriptor)
        return json_null();
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    json_t *obj = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        json_t *v;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + fd->quantifier_offset);
            if (n == 0)
                continue;
            const char *arr = *(char *const *)(base + fd->offset);
            size_t sz = type_size(fd->type);
            v = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(v, json_value(fd, arr + k * sz));
        } else {
            if (!field_present(msg, fd))
                continue;
            v = json_value(fd, base + fd->offset);
        }
        json_object_set_new(obj, fd->name, v ? v : json_null());
    }
    return obj;
}

// ---- requests ------------------------------------------------------------------------------

// "YYYY-MM-DD HH:MM:SS" of the client's local time.
static void format_ymd_hms(struct hm_clock t, char out[32])
{
    int64_t off = t.local_offset_s;
    bool overflow = off > 0 ? t.unix_s > INT64_MAX - off : t.unix_s < INT64_MIN - off;
    time_t local = overflow ? 0 : (time_t)(t.unix_s + off);
    struct tm tm;
    if (overflow || !gmtime_r(&local, &tm) || strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, 32, "1970-01-01 00:00:00");
}

// Packs `msg` behind room for the header and finishes the frame.
static int build_request(uint8_t *out, size_t cap, uint16_t tag, uint16_t seq,
                         const ProtobufCMessage *msg, const struct hm_crypto *crypto)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > HM_PAYLOAD_MAX || cap < HM_HEADER_LEN || cap - HM_HEADER_LEN < n)
        return -E2BIG;
    protobuf_c_message_pack(msg, out + HM_HEADER_LEN);
    return frame_finish(out, cap, tag, seq, n, crypto);
}

int hm_req_app_info(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                    const struct hm_crypto *crypto)
{
    char ymd[32];
    format_ymd_hms(t, ymd);
    Hoymiles__APPInfoDataResDTO m = HOYMILES__APPINFO_DATA_RES_DTO__INIT;
    m.time_ymd_hms = ymd;
    m.has_offset = true;
    m.offset = HM_LIMIT_OFFSET;
    m.has_time = true;
    m.time = (uint32_t)t.unix_s;
    return build_request(out, cap, HM_TAG_APP_INFO, seq, &m.base, crypto);
}

int hm_req_realdata(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t, int cp,
                    const struct hm_crypto *crypto)
{
    char ymd[32];
    format_ymd_hms(t, ymd);
    Hoymiles__RealDataNewResDTO m = HOYMILES__REAL_DATA_NEW_RES_DTO__INIT;
    m.time_ymd_hms = ymd;
    // Like the DTU's own proto3 clients: package 0 is not sent.
    m.has_cp = cp != 0;
    m.cp = cp;
    m.has_offset = true;
    m.offset = HM_LIMIT_OFFSET;
    m.has_time = true;
    m.time = (int32_t)t.unix_s;
    return build_request(out, cap, HM_TAG_REALDATA_NEW, seq, &m.base, crypto);
}

int hm_req_get_config(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                      const struct hm_crypto *crypto)
{
    Hoymiles__GetConfigResDTO m = HOYMILES__GET_CONFIG_RES_DTO__INIT;
    m.has_offset = true;
    m.offset = HM_LIMIT_OFFSET;
    m.has_time = true;
    m.time = (uint32_t)t.unix_s;
    return build_request(out, cap, HM_TAG_GET_CONFIG, seq, &m.base, crypto);
}

int hm_req_warn(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                const struct hm_crypto *crypto)
{
    char ymd[32];
    format_ymd_hms(t, ymd);
    Hoymiles__WarnResDTO m = HOYMILES__WARN_RES_DTO__INIT;
    m.time_ymd_hms = ymd;
    m.has_offset = true;
    m.offset = HM_LIMIT_OFFSET;
    m.has_time = true;
    m.time = (int32_t)t.unix_s;
    return build_request(out, cap, HM_TAG_WARN, seq, &m.base, crypto);
}

int hm_req_network_info(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                        const struct hm_crypto *crypto)
{
    Hoymiles__NetworkInfoResDTO m = HOYMILES__NETWORK_INFO_RES_DTO__INIT;
    m.has_offset = true;
    m.offset = HM_LIMIT_OFFSET;
    m.has_time = true;
    m.time = (int32_t)t.unix_s;
    return build_request(out, cap, HM_TAG_NETWORK_INFO, seq, &m.base, crypto);
}

int hm_req_command(uint8_t *out, size_t cap, uint16_t seq, struct hm_clock t,
                   const struct hm_command *cmd, const struct hm_crypto *crypto)
{
    if (!cmd || (cmd->n_serials > 0 && !cmd->serials))
        return -EINVAL;
    Hoymiles__CommandResDTO m = HOYMILES__COMMAND_RES_DTO__INIT;
    m.has_time = true;
    m.time = (int32_t)t.unix_s;
    m.has_action = true;
    m.action = cmd->action;
    if (cmd->dev_kind >= 0) {
        m.has_dev_kind = true;
        m.dev_kind = cmd->dev_kind;
    }
    m.has_package_nub = true;
    m.package_nub = 1;
    m.has_tid = true;
    m.tid = t.unix_s;
    m.data = (char *)cmd->data;
    m.n_mi_to_sn = cmd->n_serials;
    m.mi_to_sn = (int64_t *)cmd->serials;
    return build_request(out, cap, cmd->tag, seq, &m.base, crypto);
}

int hm_limit_percent_data(char *out, size_t cap, double percent)
{
    if (!isfinite(percent) || percent < 0 || percent > 100)
        return -EINVAL;
    int n = snprintf(out, cap, "A:%ld,B:0,C:0\r", lround(percent * 10));
    return n < 0 || (size_t)n >= cap ? -E2BIG : n;
}

int hm_limit_watts_data(char *out, size_t cap, double watts)
{
    if (!isfinite(watts) || watts < 0 || watts > 100000)
        return -EINVAL;
    int n = snprintf(out, cap, "S:1,P:%ld", lround(watts * 10));
    return n < 0 || (size_t)n >= cap ? -E2BIG : n;
}

int hm_feature_limit_percent(const char *value, double *percent)
{
    if (!value)
        return -EINVAL;
    for (const char *p = value; *p; p++) {
        if ((p == value || p[-1] == ',') && p[0] == 'A' && p[1] == ':') {
            const char *digits = p + 2;
            char *end;
            errno = 0;
            long v = strtol(digits, &end, 10);
            if (end == digits || errno || (*end != '\0' && *end != ',' && *end != '\r'))
                return -EINVAL;
            if (v < 0 || v > 1000)
                return -EINVAL; // tenths of a percent: anything else is not a limit
            *percent = (double)v / 10.0;
            return 0;
        }
    }
    return -EINVAL;
}

// ---- text ----------------------------------------------------------------------------------

static void version3(char *out, size_t cap, unsigned a, unsigned b, unsigned c)
{
    snprintf(out, cap, "%02u.%02u.%02u", a, b, c);
}

void hm_dtu_version(int v, char *out, size_t cap)
{
    unsigned u = (unsigned)v;
    version3(out, cap, u / 4096, (u / 256) % 16, u % 256);
}

void hm_inverter_sw_version(int v, char *out, size_t cap)
{
    unsigned u = (unsigned)v;
    version3(out, cap, u / 10000, (u % 10000) / 100, u % 100);
}

void hm_inverter_hw_version(int v, char *out, size_t cap)
{
    unsigned u = (unsigned)v;
    version3(out, cap, u / 2048, (u / 64) % 32, u % 64);
}

void hm_serial_text(int64_t serial, char *out, size_t cap)
{
    snprintf(out, cap, "%" PRIX64, (uint64_t)serial);
}

const char *hm_inverter_model(int64_t serial)
{
    static const struct {
        uint16_t prefix;
        const char *model;
    } models[] = {
        {0x1121, "HMS-350W-1T"},  {0x1122, "HMS-400W-1T"},  {0x1141, "HMS-600W-2T"},
        {0x1142, "HMS-700W-2T"},  {0x1144, "HMS-800W-2T"},  {0x1161, "HMS-1000W-4T"},
        {0x1162, "HMS-1200W-4T"}, {0x1222, "HMS-1500W-4T"}, {0x1382, "HMT-2250-6T"},
        {0x1410, "HMS-800W-2T"},  {0x1412, "HMS-800W-2T"},  {0x2821, "SOL-H"},
    };
    // The serial is 6 bytes; the model sits in the first two (the top of the 48 bits).
    uint16_t prefix = (uint16_t)((uint64_t)serial >> 32);
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        if (models[i].prefix == prefix)
            return models[i].model;
    if ((prefix >> 8) == 0x13)
        return "HMT";
    return NULL;
}

// ---- decode CLI ----------------------------------------------------------------------------

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// Parses hex from s[0..n) into out (at most cap bytes). Spaces, tabs, line ends and colons
// between byte pairs are ignored, as is a "0x" before a run of digits. Returns the number of
// bytes, or -EINVAL with the reason in err.
static int parse_hex(const char *s, size_t n, uint8_t *out, size_t cap, const char *what, char *err,
                     size_t err_size)
{
    size_t len = 0;
    int high = -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c) || c == ':') {
            if (high >= 0) {
                set_err(err, err_size, "bad hex in %s: odd digit before offset %zu", what, i);
                return -EINVAL;
            }
            continue;
        }
        if (c == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X') && high < 0) {
            i++;
            continue;
        }
        int d = hex_digit(c);
        if (d < 0) {
            if (isprint(c))
                set_err(err, err_size, "bad hex in %s: '%c' at offset %zu", what, c, i);
            else
                set_err(err, err_size, "bad hex in %s: byte 0x%02x at offset %zu", what, c, i);
            return -EINVAL;
        }
        if (high < 0) {
            high = d;
            continue;
        }
        if (len == cap) {
            set_err(err, err_size, "%s is too long (more than %zu bytes)", what, cap);
            return -EINVAL;
        }
        out[len++] = (uint8_t)(high << 4 | d);
        high = -1;
    }
    if (high >= 0) {
        set_err(err, err_size, "bad hex in %s: odd number of digits", what);
        return -EINVAL;
    }
    return (int)len;
}

static int print_json(json_t *root, FILE *out, char *err, size_t err_size)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) {
        set_err(err, err_size, "cannot render JSON");
        return -EINVAL;
    }
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}

// Unpacks a payload as `m` into a JSON object, or NULL with the reason in err.
static json_t *payload_fields(const struct hm_message *m, const uint8_t *p, size_t n, char *err,
                              size_t err_size)
{
    ProtobufCMessage *msg = hm_unpack(m->desc, p, n, NULL);
    if (!msg) {
        set_err(err, err_size, "the payload is not a valid %s message (broken protobuf)", m->name);
        return NULL;
    }
    json_t *fields = hm_message_json(msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    return fields;
}

enum { DECODE_MAX = HM_HEADER_LEN + HM_PAYLOAD_MAX + HM_GCM_TAG_LEN };

static int decode_frame(const uint8_t *buf, size_t n, const struct hm_crypto *seed, FILE *out,
                        char *err, size_t err_size)
{
    if (n < 2 || buf[0] != 'H' || buf[1] != 'M') {
        set_err(err, err_size,
                "not a frame: it does not start with \"HM\" (48 4d); "
                "use --message NAME to decode a bare payload");
        return -EINVAL;
    }
    if (n < HM_HEADER_LEN) {
        set_err(err, err_size, "truncated: %zu bytes, a frame header has %d", n, HM_HEADER_LEN);
        return -EINVAL;
    }
    size_t total = get_be16(buf + 8);
    uint16_t tag = get_be16(buf + 2);
    // Without a seed, an encrypted frame is recognised by its GCM tag behind the total length.
    struct hm_crypto unknown_key = {.on = true};
    const struct hm_crypto *crypto = seed;
    if (!seed && total > HM_HEADER_LEN && n == total + HM_GCM_TAG_LEN && hm_tag_encrypted(tag))
        crypto = &unknown_key;

    struct hm_frame f;
    enum hm_status st = hm_frame_parse(buf, n, crypto, &f);
    switch (st) {
    case HM_OK:
    case HM_BAD_CHECKSUM: break;
    case HM_NEED_MORE:
        set_err(err, err_size, "truncated: the header says %zu bytes%s, got %zu", total,
                frame_is_encrypted(crypto, tag, total - HM_HEADER_LEN) ? " + 16 (GCM tag)" : "", n);
        return -EINVAL;
    case HM_BAD_LENGTH:
        set_err(err, err_size, "bad length: total length %zu is less than the header", total);
        return -EINVAL;
    default:
        set_err(err, err_size, "bad length: total length %zu is more than %d + %d", total,
                HM_HEADER_LEN, HM_PAYLOAD_MAX);
        return -EINVAL;
    }
    if (f.len != n) {
        set_err(err, err_size, "%zu bytes after the %zu-byte frame (one frame per decode)",
                n - f.len, f.len);
        return -EINVAL;
    }

    const struct hm_message *m = hm_message_for_tag(f.tag);
    json_t *fields = json_null();
    if (m && (!f.encrypted || seed)) {
        uint8_t *plain = xmalloc(f.payload_len ? f.payload_len : 1);
        if (hm_frame_open(seed, &f, plain) != HM_OK) {
            free(plain);
            set_err(err, err_size,
                    "decryption failed: wrong enc_rand (it changes when the DTU reboots)");
            return -EINVAL;
        }
        json_decref(fields);
        fields = payload_fields(m, plain, f.payload_len, err, err_size);
        free(plain);
        if (!fields)
            return -EINVAL;
    } else if (f.encrypted && seed) {
        // No message to show, but the frame can still be authenticated.
        uint8_t *plain = xmalloc(f.payload_len ? f.payload_len : 1);
        enum hm_status ost = hm_frame_open(seed, &f, plain);
        free(plain);
        if (ost != HM_OK) {
            set_err(err, err_size,
                    "decryption failed: wrong enc_rand (it changes when the DTU reboots)");
            return -EINVAL;
        }
    }

    char tag_text[8];
    snprintf(tag_text, sizeof(tag_text), "0x%04x", f.tag);
    json_t *root = json_object();
    json_object_set_new(root, "tag", json_string(tag_text));
    json_object_set_new(root, "seq", json_integer(f.seq));
    json_object_set_new(root, "crc_ok", json_boolean(f.crc_ok));
    json_object_set_new(root, "encrypted", json_boolean(f.encrypted));
    json_object_set_new(root, "message", m ? json_string(m->name) : json_null());
    json_object_set_new(root, "fields", fields);
    return print_json(root, out, err, err_size);
}

int hoymiles_decode(const char *input, FILE *out, char *err, size_t err_size)
{
    if (!input) {
        set_err(err, err_size, "no input");
        return -EINVAL;
    }
    const char *s = input;
    while (isspace((unsigned char)*s))
        s++;

    struct hm_crypto seed;
    bool have_seed = false;
    static const char key[] = "enc_rand=";
    if (strncasecmp(s, key, sizeof(key) - 1) == 0) {
        const char *v = s + sizeof(key) - 1;
        size_t vlen = 0;
        while (v[vlen] && !isspace((unsigned char)v[vlen]))
            vlen++;
        uint8_t rand[HM_ENC_RAND_MAX];
        int n = parse_hex(v, vlen, rand, sizeof(rand), "enc_rand", err, err_size);
        if (n < 0)
            return n;
        if (n == 0 || hm_crypto_set(&seed, rand, (size_t)n) < 0) {
            set_err(err, err_size, "enc_rand must be 1 to %d bytes of hex", HM_ENC_RAND_MAX);
            return -EINVAL;
        }
        have_seed = true;
        s = v + vlen;
    }

    uint8_t *buf = xmalloc(DECODE_MAX);
    int n = parse_hex(s, strlen(s), buf, DECODE_MAX, "the frame", err, err_size);
    int rc;
    if (n == 0) {
        set_err(err, err_size, "no data: give the frame as hex (\"484d a311 0001 ...\")");
        rc = -EINVAL;
    } else if (n < 0) {
        rc = n;
    } else {
        rc = decode_frame(buf, (size_t)n, have_seed ? &seed : NULL, out, err, err_size);
    }
    free(buf);
    return rc;
}

int hoymiles_decode_message(const char *message, const char *input, FILE *out, char *err,
                            size_t err_size)
{
    const struct hm_message *m = hm_message_by_name(message);
    if (!m) {
        // Every name is a stem plus ReqDTO (from the DTU) or ResDTO (to it); listing the stems
        // keeps the text short enough for a one-line error.
        char known[160] = "";
        size_t used = 0;
        for (size_t i = 0; i < N_MESSAGES; i++) {
            const char *name = messages[i].name;
            size_t stem = strlen(name) - strlen("ReqDTO");
            if (messages[i].tag >> 8 != 0xA2 || strcmp(name + stem, "ReqDTO") != 0)
                continue;
            int k = snprintf(known + used, sizeof(known) - used, "%s%.*s", used ? ", " : "",
                             (int)stem, name);
            if (k < 0 || (size_t)k >= sizeof(known) - used)
                break;
            used += (size_t)k;
        }
        set_err(err, err_size,
                "unknown message '%.40s'; known: <X>ReqDTO (from the DTU) and <X>ResDTO (to it) "
                "for X in %s",
                message ? message : "", known);
        return -EINVAL;
    }
    if (!input) {
        set_err(err, err_size, "no input");
        return -EINVAL;
    }
    uint8_t *buf = xmalloc(HM_PAYLOAD_MAX);
    int n = parse_hex(input, strlen(input), buf, HM_PAYLOAD_MAX, "the payload", err, err_size);
    if (n < 0) {
        free(buf);
        return n;
    }
    json_t *fields = payload_fields(m, buf, (size_t)n, err, err_size);
    free(buf);
    if (!fields)
        return -EINVAL;
    json_t *root = json_object();
    json_object_set_new(root, "message", json_string(m->name));
    json_object_set_new(root, "fields", fields);
    return print_json(root, out, err, err_size);
}
