// SPDX-License-Identifier: MIT
// Command topic parsing and payload validation.
#include "mqtt/command.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/model.h"

const char *command_error_name(enum command_error e)
{
    switch (e) {
    case CMD_OK: return "ok";
    case CMD_BAD_TOPIC: return "bad topic";
    case CMD_NOT_WRITABLE: return "not writable";
    case CMD_TOO_LONG: return "payload too long";
    case CMD_NOT_UTF8: return "payload not UTF-8";
    case CMD_NOT_A_NUMBER: return "not a number";
    case CMD_OUT_OF_RANGE: return "out of range";
    case CMD_OFF_STEP: return "not on the step grid";
    case CMD_UNKNOWN_OPTION: return "unknown option";
    case CMD_BAD_SWITCH: return "not ON or OFF";
    case CMD_BAD_PRESS: return "not PRESS";
    case CMD_BAD_TEXT: return "text not accepted";
    }
    return "?";
}

static bool copy_id(const char *s, size_t len, char out[COMMAND_MAX_ID + 1])
{
    if (len == 0 || len > COMMAND_MAX_ID)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
        out[i] = c;
    }
    out[len] = '\0';
    return true;
}

enum command_error command_parse_topic(const char *base, const char *topic,
                                       char device[COMMAND_MAX_ID + 1],
                                       char entity[COMMAND_MAX_ID + 1])
{
    size_t blen = strlen(base);
    if (strncmp(topic, base, blen) != 0 || topic[blen] != '/')
        return CMD_BAD_TOPIC;
    const char *d = topic + blen + 1;
    const char *slash1 = strchr(d, '/');
    if (!slash1)
        return CMD_BAD_TOPIC;
    const char *en = slash1 + 1;
    const char *slash2 = strchr(en, '/');
    if (!slash2 || strcmp(slash2, "/set") != 0)
        return CMD_BAD_TOPIC;
    if (!copy_id(d, (size_t)(slash1 - d), device) || !copy_id(en, (size_t)(slash2 - en), entity))
        return CMD_BAD_TOPIC;
    return CMD_OK;
}

// Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF, no NUL.
static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

// The payload without surrounding whitespace, NUL-terminated in `buf`.
static const char *trimmed(const uint8_t *p, size_t len, char *buf)
{
    size_t a = 0, b = len;
    while (a < b && (p[a] == ' ' || p[a] == '\t' || p[a] == '\n' || p[a] == '\r'))
        a++;
    while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\n' || p[b - 1] == '\r'))
        b--;
    memcpy(buf, p + a, b - a);
    buf[b - a] = '\0';
    return buf;
}

static enum command_error validate_number(const struct entity *e, const char *s,
                                          struct command_value *out, char *why, size_t n)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    // Only plain decimal numbers: no hex, inf, nan or trailing text.
    bool plain = *s && strspn(s, "+-0123456789.eE") == strlen(s);
    if (!plain || errno || *end || end == s || !isfinite(v)) {
        snprintf(why, n, "'%s' is not a number", s);
        return CMD_NOT_A_NUMBER;
    }
    if (v < e->min || v > e->max) {
        snprintf(why, n, "%g is outside %g..%g", v, e->min, e->max);
        return CMD_OUT_OF_RANGE;
    }
    double steps = (v - e->min) / e->step;
    if (fabs(steps - round(steps)) > 1e-6) {
        snprintf(why, n, "%g is not on the step grid %g + k * %g", v, e->min, e->step);
        return CMD_OFF_STEP;
    }
    out->value = v;
    return CMD_OK;
}

static enum command_error validate_text(const struct entity *e, const char *s,
                                        struct command_value *out, char *why, size_t n)
{
    size_t len = strlen(s);
    if (len > COMMAND_MAX_TEXT) {
        snprintf(why, n, "%zu bytes of text, the limit is %d", len, COMMAND_MAX_TEXT);
        return CMD_BAD_TEXT;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(why, n, "the text contains control characters");
            return CMD_BAD_TEXT;
        }
    }
    if (e->pattern) {
        regex_t re;
        if (regcomp(&re, e->pattern, REG_EXTENDED | REG_NOSUB) != 0) {
            snprintf(why, n, "the pattern of %s does not compile", e->id); // checked at load
            return CMD_BAD_TEXT;
        }
        int rc = regexec(&re, s, 0, NULL, 0);
        regfree(&re);
        if (rc != 0) {
            snprintf(why, n, "'%s' does not match %s", s, e->pattern);
            return CMD_BAD_TEXT;
        }
    }
    memcpy(out->text, s, len + 1);
    return CMD_OK;
}

bool command_is_press(const uint8_t *payload, size_t len)
{
    char buf[COMMAND_MAX_PAYLOAD + 1];
    return len <= COMMAND_MAX_PAYLOAD && strcmp(trimmed(payload, len, buf), "PRESS") == 0;
}

enum command_error command_validate(const struct entity *e, const uint8_t *payload, size_t len,
                                    struct command_value *out, char *why, size_t why_size)
{
    *out = (struct command_value){0};
    if (!e->writable || e->internal) {
        snprintf(why, why_size, "%s is a %s, it takes no commands", e->id,
                 component_name(e->component));
        return CMD_NOT_WRITABLE;
    }
    if (len > COMMAND_MAX_PAYLOAD) {
        snprintf(why, why_size, "%zu bytes, the limit is %d", len, COMMAND_MAX_PAYLOAD);
        return CMD_TOO_LONG;
    }
    if (!utf8_ok(payload, len)) {
        snprintf(why, why_size, "the payload is not valid UTF-8");
        return CMD_NOT_UTF8;
    }
    char buf[COMMAND_MAX_PAYLOAD + 1];
    const char *s = trimmed(payload, len, buf);
    switch (e->component) {
    case COMP_NUMBER: return validate_number(e, s, out, why, why_size);
    case COMP_SELECT:
        for (size_t i = 0; i < e->n_map; i++) {
            if (strcmp(e->map[i].label, s) == 0) {
                out->value = (double)e->map[i].raw;
                out->label = e->map[i].label;
                return CMD_OK;
            }
        }
        snprintf(why, why_size, "'%s' is not one of the options", s);
        return CMD_UNKNOWN_OPTION;
    case COMP_SWITCH:
        if (strcasecmp(s, "ON") == 0 || strcasecmp(s, "OFF") == 0) {
            out->on = strcasecmp(s, "ON") == 0;
            out->value = out->on ? e->on_value : e->off_value;
            return CMD_OK;
        }
        snprintf(why, why_size, "'%s' is neither ON nor OFF", s);
        return CMD_BAD_SWITCH;
    case COMP_BUTTON:
        if (strcmp(s, "PRESS") == 0) {
            out->value = e->press;
            return CMD_OK;
        }
        snprintf(why, why_size, "'%s' is not PRESS", s);
        return CMD_BAD_PRESS;
    case COMP_TEXT: return validate_text(e, s, out, why, why_size);
    default: snprintf(why, why_size, "%s takes no commands", e->id); return CMD_NOT_WRITABLE;
    }
}
