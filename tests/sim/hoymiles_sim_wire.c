// SPDX-License-Identifier: MIT
// Wire layer of the Hoymiles DTU simulator: CRC, minimal protobuf, "HM" frames, AES-128-GCM.
#include "hoymiles_sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

uint16_t hs_crc16(const uint8_t *data, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) {
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
        }
    }
    return crc;
}

// ---- Buffers --------------------------------------------------------------------------------

void hs_buf_append(struct hs_buf *b, const void *data, size_t n)
{
    if (n == 0) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->data, cap);
        if (!p) {
            abort();
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

void hs_buf_consume(struct hs_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void hs_buf_free(struct hs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

// ---- Protobuf -------------------------------------------------------------------------------

static void put_varint(struct hs_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) {
            tmp[n] |= 0x80;
        }
        n++;
    } while (v);
    hs_buf_append(b, tmp, n);
}

void hs_pb_varint(struct hs_buf *b, unsigned field, uint64_t v)
{
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, v);
}

void hs_pb_int(struct hs_buf *b, unsigned field, int64_t v)
{
    if (v != 0) {
        hs_pb_varint(b, field, (uint64_t)v);
    }
}

void hs_pb_bytes(struct hs_buf *b, unsigned field, const void *data, size_t n)
{
    if (n == 0) {
        return;
    }
    put_varint(b, ((uint64_t)field << 3) | 2);
    put_varint(b, n);
    hs_buf_append(b, data, n);
}

void hs_pb_string(struct hs_buf *b, unsigned field, const char *s)
{
    hs_pb_bytes(b, field, s, s ? strlen(s) : 0);
}

void hs_pb_message(struct hs_buf *b, unsigned field, const struct hs_buf *sub)
{
    put_varint(b, ((uint64_t)field << 3) | 2);
    put_varint(b, sub->len);
    hs_buf_append(b, sub->data, sub->len);
}

void hs_pb_reader_init(struct hs_pb_reader *r, const uint8_t *data, size_t n)
{
    r->p = data;
    r->end = data + n;
}

static int get_varint(struct hs_pb_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) {
            return -EBADMSG;
        }
        uint8_t byte = *r->p++;
        if (shift == 63 && (byte & 0x7E)) {
            return -EBADMSG; // more than 64 bits
        }
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -EBADMSG;
}

int hs_pb_next(struct hs_pb_reader *r, struct hs_pb_field *f)
{
    if (r->p >= r->end) {
        return 0;
    }
    uint64_t key;
    if (get_varint(r, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) {
        return -EBADMSG;
    }
    memset(f, 0, sizeof(*f));
    f->field = (unsigned)(key >> 3);
    f->wire = (unsigned)(key & 7);
    switch (f->wire) {
    case 0: return get_varint(r, &f->v) < 0 ? -EBADMSG : 1;
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) {
            return -EBADMSG;
        }
        for (size_t i = 0; i < n; i++) {
            f->v |= (uint64_t)r->p[i] << (8 * i);
        }
        r->p += n;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (get_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p)) {
            return -EBADMSG;
        }
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default: return -EBADMSG;
    }
}

int hs_pb_validate(const uint8_t *data, size_t n)
{
    struct hs_pb_reader r;
    struct hs_pb_field f;
    int rc;
    hs_pb_reader_init(&r, data, n);
    while ((rc = hs_pb_next(&r, &f)) > 0) {
    }
    return rc;
}

bool hs_pb_get_int(const uint8_t *data, size_t n, unsigned field, int64_t *out)
{
    struct hs_pb_reader r;
    struct hs_pb_field f;
    bool found = false;
    int rc;
    hs_pb_reader_init(&r, data, n);
    while ((rc = hs_pb_next(&r, &f)) > 0) {
        if (f.field == field && f.wire == 0) {
            *out = (int64_t)f.v;
            found = true;
        }
    }
    return rc == 0 && found;
}

bool hs_pb_get_bytes(const uint8_t *data, size_t n, unsigned field, unsigned nth,
                     const uint8_t **out, size_t *out_len)
{
    struct hs_pb_reader r;
    struct hs_pb_field f;
    hs_pb_reader_init(&r, data, n);
    while (hs_pb_next(&r, &f) > 0) {
        if (f.field == field && f.wire == 2 && nth-- == 0) {
            *out = f.data;
            *out_len = f.len;
            return true;
        }
    }
    return false;
}

int hs_pb_count(const uint8_t *data, size_t n, unsigned field)
{
    struct hs_pb_reader r;
    struct hs_pb_field f;
    int count = 0, rc;
    hs_pb_reader_init(&r, data, n);
    while ((rc = hs_pb_next(&r, &f)) > 0) {
        count += f.field == field;
    }
    return rc < 0 ? rc : count;
}

// ---- AES-128-GCM ----------------------------------------------------------------------------

static void sha256_3(const uint8_t *in, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    EVP_Digest(in, n, out, &len, EVP_sha256(), NULL);
    EVP_Digest(out, 32, out, &len, EVP_sha256(), NULL);
    EVP_Digest(out, 32, out, &len, EVP_sha256(), NULL);
}

void hs_crypt_key(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint8_t key[16])
{
    uint8_t h[32];
    sha256_3(enc_rand, HS_ENC_RAND_LEN, h);
    memcpy(key, h, 16);
}

static void aad_bytes(uint16_t tag, uint16_t seq, uint8_t out[4])
{
    out[0] = (uint8_t)(tag & 0xFF);
    out[1] = (uint8_t)(tag >> 8);
    out[2] = (uint8_t)(seq & 0xFF);
    out[3] = (uint8_t)(seq >> 8);
}

void hs_crypt_nonce(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                    uint8_t nonce[12])
{
    uint8_t in[4 + HS_ENC_RAND_LEN], h[32];
    aad_bytes(tag, seq, in);
    memcpy(in + 4, enc_rand, HS_ENC_RAND_LEN);
    sha256_3(in, sizeof(in), h);
    memcpy(nonce, h + 20, 12);
}

// One GCM pass; `decrypt` selects the direction. Returns 0, -EBADMSG (tag mismatch) or -EIO.
static int gcm_run(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                   const uint8_t *in, size_t n, uint8_t *out, uint8_t gcm_tag[HS_GCM_TAG_LEN],
                   bool decrypt)
{
    uint8_t key[16], nonce[12], aad[4];
    hs_crypt_key(enc_rand, key);
    hs_crypt_nonce(enc_rand, tag, seq, nonce);
    aad_bytes(tag, seq, aad);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        return -EIO;
    }
    int rc = -EIO, len;
    int ok = decrypt ? EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL)
                     : EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL);
    ok = ok && (decrypt ? EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce)
                        : EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce));
    ok = ok && (decrypt ? EVP_DecryptUpdate(ctx, NULL, &len, aad, 4)
                        : EVP_EncryptUpdate(ctx, NULL, &len, aad, 4));
    if (ok && n > 0) {
        ok = decrypt ? EVP_DecryptUpdate(ctx, out, &len, in, (int)n)
                     : EVP_EncryptUpdate(ctx, out, &len, in, (int)n);
    }
    if (ok && decrypt) {
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, HS_GCM_TAG_LEN, gcm_tag);
        uint8_t fin[16];
        rc = ok && EVP_DecryptFinal_ex(ctx, fin, &len) > 0 ? 0 : -EBADMSG;
    } else if (ok) {
        uint8_t fin[16];
        ok = EVP_EncryptFinal_ex(ctx, fin, &len) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, HS_GCM_TAG_LEN, gcm_tag);
        rc = ok ? 0 : -EIO;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int hs_crypt_seal(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                  const uint8_t *in, size_t n, uint8_t *out, uint8_t gcm_tag[HS_GCM_TAG_LEN])
{
    return gcm_run(enc_rand, tag, seq, in, n, out, gcm_tag, false);
}

int hs_crypt_open(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                  const uint8_t *in, size_t n, const uint8_t gcm_tag[HS_GCM_TAG_LEN], uint8_t *out)
{
    uint8_t t[HS_GCM_TAG_LEN];
    memcpy(t, gcm_tag, sizeof(t));
    return gcm_run(enc_rand, tag, seq, in, n, out, t, true);
}

bool hs_tag_encrypted(uint16_t tag)
{
    unsigned family = tag >> 8;
    return tag != 0xA301 && tag != 0xA201 && family != 0x22 && family != 0x23;
}

// ---- Frames ---------------------------------------------------------------------------------

void hs_frame_build(struct hs_buf *out, uint16_t tag, uint16_t seq, const uint8_t *payload,
                    size_t n, const uint8_t *enc_rand)
{
    uint8_t *body = n ? malloc(n) : NULL;
    uint8_t gcm_tag[HS_GCM_TAG_LEN];
    if (n && !body) {
        abort();
    }
    bool enc = enc_rand && n > 0;
    if (enc) {
        if (hs_crypt_seal(enc_rand, tag, seq, payload, n, body, gcm_tag) < 0) {
            abort(); // libcrypto cannot run AES-GCM: nothing sensible to send
        }
    } else if (n) {
        memcpy(body, payload, n);
    }
    uint16_t crc = hs_crc16(body, n);
    size_t total = HS_HEADER_LEN + n;
    uint8_t h[HS_HEADER_LEN] = {'H',
                                'M',
                                (uint8_t)(tag >> 8),
                                (uint8_t)tag,
                                (uint8_t)(seq >> 8),
                                (uint8_t)seq,
                                (uint8_t)(crc >> 8),
                                (uint8_t)crc,
                                (uint8_t)(total >> 8),
                                (uint8_t)total};
    hs_buf_append(out, h, sizeof(h));
    hs_buf_append(out, body, n);
    if (enc) {
        hs_buf_append(out, gcm_tag, sizeof(gcm_tag));
    }
    free(body);
}

int hs_frame_parse(const uint8_t *buf, size_t len, bool with_gcm_tag, struct hs_frame *f)
{
    if (len >= 1 && buf[0] != 'H') {
        return -EBADMSG;
    }
    if (len >= 2 && buf[1] != 'M') {
        return -EBADMSG;
    }
    if (len < HS_HEADER_LEN) {
        return 0;
    }
    memset(f, 0, sizeof(*f));
    f->tag = (uint16_t)(buf[2] << 8 | buf[3]);
    f->seq = (uint16_t)(buf[4] << 8 | buf[5]);
    f->crc = (uint16_t)(buf[6] << 8 | buf[7]);
    f->total = (size_t)(buf[8] << 8 | buf[9]);
    if (f->total < HS_HEADER_LEN || f->total > HS_FRAME_MAX) {
        return -EBADMSG;
    }
    f->n = f->total - HS_HEADER_LEN;
    f->frame_len = f->total + (with_gcm_tag && f->n > 0 ? HS_GCM_TAG_LEN : 0);
    if (len < f->frame_len) {
        return 0;
    }
    f->payload = buf + HS_HEADER_LEN;
    f->gcm_tag = f->frame_len > f->total ? buf + f->total : NULL;
    return (int)f->frame_len;
}

int hs_frame_open(const uint8_t *buf, size_t len, const uint8_t *enc_rand, bool encrypted,
                  struct hs_frame *f, struct hs_buf *plain)
{
    int rc = hs_frame_parse(buf, len, encrypted, f);
    if (rc <= 0) {
        return rc;
    }
    if (hs_crc16(f->payload, f->n) != f->crc) {
        return -EBADMSG;
    }
    if (!encrypted || f->n == 0) {
        hs_buf_append(plain, f->payload, f->n);
        return rc;
    }
    if (!enc_rand) {
        return -EACCES;
    }
    uint8_t *out = malloc(f->n);
    if (!out) {
        abort();
    }
    if (hs_crypt_open(enc_rand, f->tag, f->seq, f->payload, f->n, f->gcm_tag, out) < 0) {
        free(out);
        return -EACCES;
    }
    hs_buf_append(plain, out, f->n);
    free(out);
    return rc;
}
