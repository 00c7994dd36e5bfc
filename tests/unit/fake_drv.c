// SPDX-License-Identifier: MIT
// The fake core for driver unit tests (see fake_drv.h).
#include "fake_drv.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct fake_drv fc;

int64_t drv_now_ms(const struct drv_ctx *c)
{
    (void)c;
    return fc.now;
}

int64_t drv_wall_ms(const struct drv_ctx *c)
{
    (void)c;
    return fc.wall0 + fc.now;
}

const char *drv_device_id(const struct drv_ctx *c)
{
    (void)c;
    return fc.id;
}

int drv_tcp_open(struct drv_ctx *c, const char *host, int port)
{
    (void)c;
    ck_assert_str_eq(host, fc.host);
    ck_assert_int_eq(port, fc.port);
    fc.opens++;
    return 0;
}

int drv_tcp_send(struct drv_ctx *c, const void *buf, size_t len)
{
    (void)c;
    if (!fc.tcp_open)
        return -ENOTCONN;
    ck_assert_uint_le(fc.sent_len + len, sizeof(fc.sent));
    memcpy(fc.sent + fc.sent_len, buf, len);
    fc.sent_len += len;
    if (fc.n_sent < (int)N(fc.sent_at))
        fc.sent_at[fc.n_sent++] = fc.now;
    return 0;
}

void drv_tcp_close(struct drv_ctx *c)
{
    (void)c;
    fc.closes++;
    fc.tcp_open = false;
    fc.rx_len = 0;
}

bool drv_tcp_is_open(const struct drv_ctx *c)
{
    (void)c;
    return fc.tcp_open;
}

void drv_timer_set(struct drv_ctx *c, int64_t delay_ms)
{
    (void)c;
    ck_assert_int_ge(delay_ms, 0);
    fc.timer_due = fc.now + delay_ms;
}

void drv_timer_cancel(struct drv_ctx *c)
{
    (void)c;
    fc.timer_due = -1;
}

void drv_registers(struct drv_ctx *c, uint8_t table, uint32_t start, uint16_t count,
                   const uint16_t *regs)
{
    (void)c;
    ck_assert_int_lt(fc.n_regs, (int)N(fc.regs));
    fc.regs[fc.n_regs++] = (struct fake_regs){table, start, count, regs[0]};
}

void drv_alive(struct drv_ctx *c)
{
    (void)c;
    fc.alive++;
}

void drv_poll_all(struct drv_ctx *c)
{
    (void)c;
    fc.poll_all++;
}

void drv_poll_first(struct drv_ctx *c, uint8_t group)
{
    (void)c;
    fc.poll_first++;
    fc.poll_first_group = group;
}

static struct fake_value *add_value(uint16_t field)
{
    ck_assert_int_lt(fc.n_values, (int)N(fc.values));
    struct fake_value *v = &fc.values[fc.n_values++];
    memset(v, 0, sizeof(*v));
    v->field = field;
    return v;
}

void drv_value(struct drv_ctx *c, uint16_t field, double value)
{
    (void)c;
    add_value(field)->num = value;
}

void drv_value_assumed(struct drv_ctx *c, uint16_t field, double value)
{
    (void)c;
    struct fake_value *v = add_value(field);
    v->num = value;
    v->assumed = true;
}

void drv_text(struct drv_ctx *c, uint16_t field, const char *text)
{
    (void)c;
    struct fake_value *v = add_value(field);
    v->text = true;
    snprintf(v->str, sizeof(v->str), "%s", text);
}

void drv_unknown(struct drv_ctx *c, uint16_t field)
{
    (void)c;
    add_value(field)->unknown = true;
}

const struct fake_value *fake_drv_value(uint16_t field)
{
    for (int i = fc.n_values - 1; i >= 0; i--)
        if (fc.values[i].field == field)
            return &fc.values[i];
    return NULL;
}

static struct fake_learned *find_learned(const char *key)
{
    for (int i = 0; i < fc.n_learned; i++)
        if (strcmp(fc.learned[i].key, key) == 0)
            return &fc.learned[i];
    return NULL;
}

// Stores without counting a change; returns whether the value changed.
static bool store_learned(const char *key, const char *value)
{
    ck_assert_uint_lt(strlen(key), sizeof(fc.learned[0].key));
    ck_assert_uint_lt(strlen(value), sizeof(fc.learned[0].value));
    struct fake_learned *l = find_learned(key);
    if (l && strcmp(l->value, value) == 0)
        return false;
    if (!l) {
        ck_assert_int_lt(fc.n_learned, (int)N(fc.learned));
        l = &fc.learned[fc.n_learned++];
        snprintf(l->key, sizeof(l->key), "%s", key);
    }
    snprintf(l->value, sizeof(l->value), "%s", value);
    return true;
}

bool drv_learned_get(const struct drv_ctx *c, const char *key, char *buf, size_t n)
{
    (void)c;
    const struct fake_learned *l = find_learned(key);
    if (!l || strlen(l->value) >= n)
        return false;
    memcpy(buf, l->value, strlen(l->value) + 1);
    return true;
}

void drv_learned_set(struct drv_ctx *c, const char *key, const char *value)
{
    (void)c;
    if (store_learned(key, value))
        fc.learned_changes++;
}

void fake_drv_learn(const char *key, const char *value)
{
    store_learned(key, value);
}

const char *fake_drv_learned(const char *key)
{
    const struct fake_learned *l = find_learned(key);
    return l ? l->value : NULL;
}

void drv_job_done(struct drv_ctx *c, enum drv_status status, int code, const char *fmt, ...)
{
    (void)c;
    ck_assert_int_lt(fc.n_done, (int)N(fc.done));
    struct fake_done *d = &fc.done[fc.n_done++];
    d->status = status;
    d->code = code;
    d->detail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->detail, sizeof(d->detail), fmt, ap);
        va_end(ap);
    }
}

void fake_drv_setup(const struct driver_ops *drv, const char *id, const char *host, int port,
                    int64_t wall0)
{
    memset(&fc, 0, sizeof(fc));
    fc.drv = drv;
    fc.id = id;
    fc.host = host;
    fc.port = port;
    fc.wall0 = wall0;
    fc.timer_due = -1;
    fc.arena = arena_new();
    params_init(&fc.settings, fc.arena, drv->settings, drv->n_settings);
    fc.settings.v[0].set = true;
    fc.settings.v[0].s = host;
    params_init(&fc.options, fc.arena, drv->options, drv->n_options);
    params_init(&fc.core, fc.arena, NULL, 0);
}

void fake_drv_teardown(void)
{
    if (fc.state)
        fc.drv->close(fc.state);
    fc.state = NULL;
    arena_free(fc.arena);
}

void fake_drv_set_option(const char *name, const char *value)
{
    const struct param_def *def = params_find(fc.options.defs, fc.options.n, name);
    ck_assert_ptr_nonnull(def);
    struct param_value *v = &fc.options.v[def - fc.options.defs];
    v->set = true;
    switch (def->type) {
    case PARAM_STR: v->s = arena_strdup(fc.arena, value); break;
    case PARAM_BOOL: v->i = strcmp(value, "true") == 0; break;
    case PARAM_INT: v->i = atoll(value); break;
    case PARAM_DURATION: v->ms = atoll(value); break;
    case PARAM_CHOICE:
        for (v->i = 0; def->choices[v->i] && strcmp(def->choices[v->i], value) != 0; v->i++)
            ;
        ck_assert_ptr_nonnull(def->choices[v->i]);
        break;
    default: ck_abort_msg("option type");
    }
}

const struct drv_device *fake_drv_device(void)
{
    static struct drv_device dev;
    dev = (struct drv_device){fc.id, &fc.settings, &fc.core, &fc.options};
    return &dev;
}

void fake_drv_start(void)
{
    ck_assert_int_eq(fc.drv->open(fake_drv_device(), &fc.state), 0);
    ck_assert_int_eq(fc.drv->start(fc.state, &fc.ctx), 0);
    ck_assert_int_eq(fc.opens, 1);
    fc.tcp_open = true;
    fc.drv->tcp_connected(fc.state);
}

void fake_drv_start_idle(void)
{
    ck_assert_int_eq(fc.drv->open(fake_drv_device(), &fc.state), 0);
    ck_assert_int_eq(fc.drv->start(fc.state, &fc.ctx), 0);
}

void fake_drv_receive(const uint8_t *buf, size_t len)
{
    ck_assert_uint_le(fc.rx_len + len, sizeof(fc.rx));
    memcpy(fc.rx + fc.rx_len, buf, len);
    fc.rx_len += len;
    while (fc.rx_len) {
        size_t used = fc.drv->tcp_data(fc.state, fc.rx, fc.rx_len);
        if (!fc.tcp_open)
            break; // the driver closed the connection: the rest is gone with it
        if (used == 0)
            break;
        ck_assert_uint_le(used, fc.rx_len);
        memmove(fc.rx, fc.rx + used, fc.rx_len - used);
        fc.rx_len -= used;
    }
}

void fake_drv_advance(int64_t ms)
{
    int64_t end = fc.now + ms;
    while (fc.timer_due >= 0 && fc.timer_due <= end) {
        fc.now = fc.timer_due > fc.now ? fc.timer_due : fc.now;
        fc.timer_due = -1;
        fc.drv->timer(fc.state);
    }
    fc.now = end;
}
