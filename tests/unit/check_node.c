// SPDX-License-Identifier: MIT
// Unit tests for the document tree (core/node), the typed readers (core/reader) and parameter
// tables (core/params): positions, limits, scalar parsers, diagnostics and layering.
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "core/mem.h"
#include "core/node.h"
#include "core/params.h"
#include "core/reader.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct arena *arena;
static struct diag diag;

static void setup(void)
{
    arena = arena_new();
    diag_init(&diag);
}

static void teardown(void)
{
    diag_free(&diag);
    arena_free(arena);
    arena = NULL;
}

static struct node *parse_ok(const char *text)
{
    struct node *root = (struct node *)1;
    int rc = node_parse(arena, "t.yaml", text, strlen(text), &root, &diag);
    ck_assert_msg(rc == 0, "parse failed: %s", diag.n ? diag.lines[0] : "(no diagnostic)");
    ck_assert_uint_eq(diag.n, 0);
    return root;
}

// Parses text that must fail with exactly one diagnostic, and returns it.
static const char *parse_fail(const char *text, size_t len)
{
    struct node *root = (struct node *)1;
    int rc = node_parse(arena, "t.yaml", text, len, &root, &diag);
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_ptr_null(root);
    ck_assert_uint_eq(diag.n, 1);
    return diag.lines[0];
}

static void assert_pos(const struct node *n, unsigned line, unsigned col)
{
    ck_assert_ptr_nonnull(n);
    ck_assert_msg(n->line == line && n->col == col, "expected %u:%u, got %u:%u", line, col, n->line,
                  n->col);
}

// ---- Trees and positions ------------------------------------------------------------------

START_TEST(test_nested_positions)
{
    struct node *root = parse_ok("a:\n"
                                 "  b:\n"
                                 "    c: 1\n"
                                 "  d: [x, {e: 2}]\n");
    ck_assert_int_eq(root->kind, NODE_MAP);
    assert_pos(root, 1, 1);
    const struct node *a = node_get(root, "a");
    ck_assert_int_eq(a->kind, NODE_MAP);
    assert_pos(a, 2, 3);
    const struct node *b = node_get(a, "b");
    assert_pos(b, 3, 5);
    assert_pos(b->keys[0], 3, 5);
    const struct node *c = node_get(b, "c");
    assert_pos(c, 3, 8);
    ck_assert_str_eq(c->str, "1");
    ck_assert(c->plain);
    const struct node *d = node_get(a, "d");
    ck_assert_int_eq(d->kind, NODE_SEQ);
    ck_assert_uint_eq(d->n, 2);
    assert_pos(d, 4, 6);
    assert_pos(d->items[0], 4, 7);
    const struct node *e = node_get(d->items[1], "e");
    assert_pos(e, 4, 14);
    ck_assert_str_eq(e->str, "2");
    ck_assert_ptr_null(node_get(a, "missing"));
    ck_assert_ptr_null(node_get(c, "c")); // not a map
}
END_TEST

START_TEST(test_json_positions)
{
    struct node *root = parse_ok("{\"mqtt\": {\"url\": \"x\"},\n"
                                 " \"devices\": [ {\"id\": \"a\", \"port\": 502} ]}");
    const struct node *url = node_get(node_get(root, "mqtt"), "url");
    assert_pos(url, 1, 18);
    ck_assert(!url->plain);
    ck_assert_str_eq(url->str, "x");
    const struct node *devs = node_get(root, "devices");
    ck_assert_int_eq(devs->kind, NODE_SEQ);
    assert_pos(devs, 2, 13);
    const struct node *dev = devs->items[0];
    assert_pos(dev, 2, 15);
    assert_pos(node_get(dev, "id"), 2, 22);
    const struct node *port = node_get(dev, "port");
    assert_pos(port, 2, 35);
    ck_assert(port->plain);
}
END_TEST

START_TEST(test_anchor_alias_shares_node)
{
    struct node *root = parse_ok("base: &b {x: 1}\n"
                                 "copy: *b\n"
                                 "s: &s hello\n"
                                 "t: *s\n");
    ck_assert_ptr_eq(node_get(root, "copy"), node_get(root, "base"));
    ck_assert_str_eq(node_get(node_get(root, "copy"), "x")->str, "1");
    ck_assert_ptr_eq(node_get(root, "t"), node_get(root, "s"));
}
END_TEST

START_TEST(test_unknown_anchor)
{
    const char *text = "a: 1\nb: *nope\n";
    ck_assert_str_eq(parse_fail(text, strlen(text)),
                     "t.yaml:2:4: (document): unknown anchor 'nope'");
}
END_TEST

// Builds "a: &a x\nl: [*a, *a, ...]" with `n` aliases.
static char *aliases_doc(size_t n)
{
    size_t cap = 32 + n * 4;
    char *s = xmalloc(cap);
    size_t len = (size_t)snprintf(s, cap, "a: &a x\nl: [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s*a", i ? "," : "");
    snprintf(s + len, cap - len, "]\n");
    return s;
}

START_TEST(test_alias_limit)
{
    char *ok = aliases_doc(NODE_MAX_ALIASES);
    struct node *root = parse_ok(ok);
    ck_assert_uint_eq(node_get(root, "l")->n, NODE_MAX_ALIASES);
    free(ok);

    char *bad = aliases_doc(NODE_MAX_ALIASES + 1);
    const char *msg = parse_fail(bad, strlen(bad));
    // The 1001st alias starts at column 5 + 3 * 1000 of line 2.
    char want[128];
    snprintf(want, sizeof(want), "t.yaml:2:%d: (document): more than %d aliases",
             5 + 3 * NODE_MAX_ALIASES, NODE_MAX_ALIASES);
    ck_assert_str_eq(msg, want);
    free(bad);
}
END_TEST

static char *nested_doc(int depth)
{
    char *s = xmalloc((size_t)depth * 2 + 2);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[2 * depth] = '\0';
    return s;
}

START_TEST(test_depth_limit)
{
    char *ok = nested_doc(NODE_MAX_DEPTH);
    struct node *root = parse_ok(ok);
    int depth = 0;
    for (const struct node *n = root; n && n->kind == NODE_SEQ; n = n->n ? n->items[0] : NULL)
        depth++;
    ck_assert_int_eq(depth, NODE_MAX_DEPTH);
    free(ok);

    char *bad = nested_doc(NODE_MAX_DEPTH + 1);
    char want[128];
    snprintf(want, sizeof(want), "t.yaml:1:%d: (document): nesting deeper than %d",
             NODE_MAX_DEPTH + 1, NODE_MAX_DEPTH);
    ck_assert_str_eq(parse_fail(bad, strlen(bad)), want);
    free(bad);
}
END_TEST

START_TEST(test_multiple_documents_refused)
{
    const char *text = "a: 1\n---\nb: 2\n";
    ck_assert_str_eq(parse_fail(text, strlen(text)),
                     "t.yaml:3:1: (document): only one document per file is supported");
}
END_TEST

struct bad_key_case {
    const char *text;
    const char *msg;
};

static const struct bad_key_case bad_keys[] = {
    {"? [a, b]\n: 1\n", "t.yaml:1:3: (document): a mapping key must be a plain value"},
    {"x: 1\n? {k: v}\n: 2\n", "t.yaml:2:3: (document): a mapping key must be a plain value"},
    {"{[1]: 2}", "t.yaml:1:2: (document): a mapping key must be a plain value"},
    {"a: 1\nb: 2\na: 3\n", "t.yaml:3:1: a: duplicate key (first given at line 1)"},
    {"top:\n  k: 1\n  \"k\": 2\n", "t.yaml:3:3: k: duplicate key (first given at line 2)"},
};

START_TEST(test_bad_keys)
{
    const struct bad_key_case *c = &bad_keys[_i];
    ck_assert_str_eq(parse_fail(c->text, strlen(c->text)), c->msg);
}
END_TEST

START_TEST(test_syntax_error_position)
{
    // The flow sequence is never closed: "2\nb" reads as one scalar, so libyaml stops at the
    // colon after b.
    const char *text = "a: [1, 2\nb: 3\n";
    ck_assert_str_eq(parse_fail(text, strlen(text)),
                     "t.yaml:2:2: (document): did not find expected ',' or ']' while parsing a "
                     "flow sequence");

    diag_free(&diag);
    diag_init(&diag);
    const char *tab = "a:\n\tb: 1\n";
    ck_assert_str_eq(parse_fail(tab, strlen(tab)),
                     "t.yaml:2:1: (document): found character that cannot start any token while "
                     "scanning for the next token");
}
END_TEST

START_TEST(test_empty_documents)
{
    static const char *const empties[] = {"", "# just a comment\n", "\n\n", "---\n"};
    for (size_t i = 0; i < N(empties); i++) {
        struct node *root = (struct node *)1;
        ck_assert_int_eq(node_parse(arena, "t.yaml", empties[i], strlen(empties[i]), &root, &diag),
                         0);
        // "---" alone is a document holding one empty (null) scalar; the rest have none.
        if (i == 3)
            ck_assert(root && node_is_null(root));
        else
            ck_assert_ptr_null(root);
    }
    ck_assert_uint_eq(diag.n, 0);
}
END_TEST

START_TEST(test_too_large)
{
    size_t len = NODE_MAX_FILE + 1;
    char *big = xmalloc(len);
    memset(big, '#', len);
    ck_assert_str_eq(parse_fail(big, len),
                     "t.yaml:0:0: (document): file larger than 4194304 bytes");
    free(big);
}
END_TEST

START_TEST(test_load_missing_file)
{
    struct node *root = (struct node *)1;
    int rc = node_load(arena, "/nonexistent/e2m/x.yaml", &root, &diag);
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_ptr_null(root);
    ck_assert_uint_eq(diag.n, 1);
    ck_assert_str_eq(diag.lines[0],
                     "/nonexistent/e2m/x.yaml:0:0: (document): cannot open: No such file or "
                     "directory");
}
END_TEST

START_TEST(test_is_null)
{
    struct node *root = parse_ok("a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: 'null'\ng: nul\n"
                                 "h: \"\"\ni: []\n");
    static const char *const nulls[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < N(nulls); i++)
        ck_assert_msg(node_is_null(node_get(root, nulls[i])), "%s should be null", nulls[i]);
    static const char *const not_nulls[] = {"f", "g", "h", "i"};
    for (size_t i = 0; i < N(not_nulls); i++)
        ck_assert_msg(!node_is_null(node_get(root, not_nulls[i])), "%s is not null", not_nulls[i]);
    ck_assert(node_is_null(NULL));
}
END_TEST

// ---- Scalar parsers -----------------------------------------------------------------------

struct int_case {
    const char *s;
    bool ok;
    long long v;
};

static const struct int_case int_cases[] = {
    {"0", true, 0},
    {"42", true, 42},
    {"-5", true, -5},
    {"+7", true, 7},
    {"0x1F", true, 31},
    {"0X10", true, 16},
    {"-0x10", true, -16},
    {"010", true, 10}, // a leading zero is decimal, not octal
    {"08", true, 8},
    {"007", true, 7},
    {"-010", true, -10}, // the same with a sign
    {"+010", true, 10},
    {"9223372036854775807", true, INT64_MAX},
    {"-9223372036854775808", true, INT64_MIN},
    {"9223372036854775808", false, 0},
    {"-9223372036854775809", false, 0},
    {"0x8000000000000000", false, 0},
    {"", false, 0},
    {"12a", false, 0},
    {"0x", false, 0},
    {"1.0", false, 0},
    {"1e3", false, 0},
    {"abc", false, 0},
    {"-", false, 0},
};

START_TEST(test_parse_int)
{
    const struct int_case *c = &int_cases[_i];
    long long v = 12345;
    bool ok = node_parse_int(c->s, &v);
    ck_assert_msg(ok == c->ok, "'%s': expected %s", c->s, c->ok ? "valid" : "invalid");
    if (ok)
        ck_assert_msg(v == c->v, "'%s': expected %lld, got %lld", c->s, c->v, v);
    else
        ck_assert_int_eq(v, 12345); // untouched
}
END_TEST

struct double_case {
    const char *s;
    bool ok;
    double v;
};

static const struct double_case double_cases[] = {
    {"1.5", true, 1.5}, {"-2e3", true, -2000}, {"0", true, 0},      {"1e-3", true, 0.001},
    {".5", true, 0.5},  {"inf", false, 0},     {"-inf", false, 0},  {"infinity", false, 0},
    {"nan", false, 0},  {"NaN", false, 0},     {"1e400", false, 0}, {"", false, 0},
    {"1.5x", false, 0}, {"abc", false, 0},     {"0x10", false, 0}, // decimal only
};

START_TEST(test_parse_double)
{
    const struct double_case *c = &double_cases[_i];
    double v = 12345;
    bool ok = node_parse_double(c->s, &v);
    ck_assert_msg(ok == c->ok, "'%s': expected %s", c->s, c->ok ? "valid" : "invalid");
    if (ok)
        ck_assert_double_eq_tol(v, c->v, 1e-12);
    else
        ck_assert_double_eq(v, 12345);
}
END_TEST

struct bool_case {
    const char *s;
    int v; // 1, 0, or -1 for invalid
};

static const struct bool_case bool_cases[] = {
    {"true", 1}, {"TRUE", 1}, {"Yes", 1}, {"on", 1},     {"false", 0},
    {"No", 0},   {"OFF", 0},  {"off", 0}, {"1", -1},     {"0", -1},
    {"y", -1},   {"", -1},    {"t", -1},  {"truee", -1}, {"enable", -1},
};

START_TEST(test_parse_bool)
{
    const struct bool_case *c = &bool_cases[_i];
    bool v = false;
    bool ok = node_parse_bool(c->s, &v);
    ck_assert_msg(ok == (c->v >= 0), "'%s'", c->s);
    if (ok)
        ck_assert_int_eq(v, c->v);
}
END_TEST

struct duration_case {
    const char *s;
    bool ok;
    int64_t ms;
};

static const struct duration_case duration_cases[] = {
    {"250ms", true, 250},
    {"35s", true, 35000},
    {"5m", true, 300000},
    {"1h", true, 3600000},
    {"2d", true, 172800000},
    {"1h30m", true, 5400000},
    {"1m30s", true, 90000},
    {"1s500ms", true, 1500},
    {"1d2h3m4s5ms", true, 93784005},
    {"30", true, 30000}, // a bare number is seconds
    {"0", true, 0},
    {"1.5s", true, 1500},
    {"0.5", true, 500},
    {"366d", true, 366LL * 86400000},
    {"367d", false, 0},
    {"-5s", false, 0},
    {"-1", false, 0},
    {"1h-5m", false, 0},
    {"abc", false, 0},
    {"5x", false, 0},
    {"5 s", false, 0},
    {"ms", false, 0},
    {"", false, 0},
    {"1h30", false, 0}, // a bare number only on its own
    {"inf", false, 0},
    {"nans", false, 0},
    {"10sec", false, 0},
};

START_TEST(test_parse_duration)
{
    const struct duration_case *c = &duration_cases[_i];
    int64_t ms = -42;
    bool ok = node_parse_duration(c->s, &ms);
    ck_assert_msg(ok == c->ok, "'%s': expected %s", c->s, c->ok ? "valid" : "invalid");
    if (ok)
        ck_assert_msg(ms == c->ms, "'%s': expected %lld, got %lld", c->s, (long long)c->ms,
                      (long long)ms);
    else
        ck_assert_int_eq(ms, -42);
}
END_TEST

struct clock_case {
    const char *s;
    bool short_period;
    bool ok;
    int64_t ms;
};

static const struct clock_case clock_cases[] = {
    {"4:50", true, true, 290000},     // m:ss inside a short period
    {"4:50", false, true, 17400000},  // h:mm as a time of day
    {"23:55", false, true, 86100000}, //
    {"23:55", true, true, 1435000},   //
    {"59:59", true, true, 3599000},   //
    {"0:00", false, true, 0},         //
    {"1:02:03", false, true, 3723000},
    {"1:02:03", true, true, 3723000},
    {"23:59:59", false, true, 86399000},
    {"60:00", true, false, 0},
    {"24:00", false, false, 0},
    {"1:60", true, false, 0},
    {"24:00:00", false, false, 0},
    {"1:60:00", false, false, 0},
    {"1:00:60", false, false, 0},
    {"1:2:3:4", false, false, 0},
    {"4:50x", true, false, 0},
    {"450", true, false, 0},
    {"abc", false, false, 0},
    {"", false, false, 0},
    {"-1:00", true, false, 0},
};

START_TEST(test_parse_clock)
{
    const struct clock_case *c = &clock_cases[_i];
    int64_t ms = -42;
    bool ok = node_parse_clock(c->s, c->short_period, &ms);
    ck_assert_msg(ok == c->ok, "'%s' (%s): expected %s", c->s, c->short_period ? "short" : "day",
                  c->ok ? "valid" : "invalid");
    if (ok)
        ck_assert_msg(ms == c->ms, "'%s': expected %lld, got %lld", c->s, (long long)c->ms,
                      (long long)ms);
}
END_TEST

// ---- Readers ------------------------------------------------------------------------------

static struct reader make_reader(bool expand)
{
    return (struct reader){.a = arena, .d = &diag, .file = "t.yaml", .expand_env = expand};
}

START_TEST(test_check_keys_did_you_mean)
{
    struct node *root = parse_ok("dev:\n"
                                 "  host: a\n"
                                 "  pol_interval: 5s\n"
                                 "  hots: b\n"
                                 "  xyzzy: 1\n"
                                 "  PORT: 2\n");
    static const char *const allowed[] = {"host", "port", "poll_interval", NULL};
    struct reader r = make_reader(false);
    rd_check_keys(&r, node_get(root, "dev"), "dev", allowed);
    ck_assert_uint_eq(diag.n, 4);
    ck_assert_str_eq(diag.lines[0],
                     "t.yaml:3:3: dev.pol_interval: unknown key (did you mean 'poll_interval'?)");
    ck_assert_str_eq(diag.lines[1], "t.yaml:4:3: dev.hots: unknown key (did you mean 'host'?)");
    ck_assert_str_eq(diag.lines[2], "t.yaml:5:3: dev.xyzzy: unknown key");
    ck_assert_str_eq(diag.lines[3], "t.yaml:6:3: dev.PORT: unknown key");
}
END_TEST

START_TEST(test_require_and_types)
{
    struct node *root = parse_ok("m:\n"
                                 "  a: ~\n"
                                 "  n: 70000\n"
                                 "  x: twelve\n"
                                 "  d: 5y\n"
                                 "  lst: [1]\n"
                                 "  c: maybe\n"
                                 "  b: nope\n"
                                 "  r: 2.5\n");
    struct reader r = make_reader(false);
    const struct node *m = node_get(root, "m");
    ck_assert(!rd_require(&r, m, "m", "a"));
    ck_assert(!rd_require(&r, m, "m", "zz"));
    ck_assert(rd_require(&r, m, "m", "n"));
    long long v = 7;
    ck_assert_int_eq(rd_int(&r, m, "m", "n", 1, 65535, &v), -1);
    ck_assert_int_eq(rd_int(&r, m, "m", "x", 0, 10, &v), -1);
    ck_assert_int_eq(rd_int(&r, m, "m", "a", 0, 10, &v), 0);
    ck_assert_int_eq(rd_int(&r, m, "m", "missing", 0, 10, &v), 0);
    ck_assert_int_eq(v, 7);
    int64_t ms = 0;
    ck_assert_int_eq(rd_duration(&r, m, "m", "d", 0, 1000, &ms), -1);
    ck_assert_int_eq(rd_duration(&r, m, "m", "n", 1000, 60000, &ms), -1);
    const char *s = NULL;
    ck_assert_int_eq(rd_str(&r, m, "m", "lst", &s), -1);
    static const char *const choices[] = {"yes", "no", NULL};
    int ci = 5;
    ck_assert_int_eq(rd_choice(&r, m, "m", "c", choices, &ci), -1);
    bool b = true;
    ck_assert_int_eq(rd_bool(&r, m, "m", "b", &b), -1);
    double d = 0;
    ck_assert_int_eq(rd_num(&r, m, "m", "r", 0, 2, &d), -1);
    ck_assert_int_eq(rd_num(&r, m, "m", "r", 0, 3, &d), 1);
    ck_assert_double_eq(d, 2.5);

    static const char *const want[] = {
        "t.yaml:2:6: m.a: required key is missing",
        "t.yaml:2:3: m.zz: required key is missing",
        "t.yaml:3:6: m.n: expected a whole number from 1 to 65535, got 70000",
        "t.yaml:4:6: m.x: expected a whole number, got 'twelve'",
        "t.yaml:5:6: m.d: expected a duration such as 250ms, 35s, 5m or 1h, got '5y'",
        "t.yaml:3:6: m.n: expected a duration from 1s to 60s, got '70000'",
        "t.yaml:6:8: m.lst: expected a single value, got a list",
        "t.yaml:7:6: m.c: expected one of yes, no, got 'maybe'",
        "t.yaml:8:6: m.b: expected true or false, got 'nope'",
        "t.yaml:9:6: m.r: expected a number from 0 to 2, got 2.5",
    };
    ck_assert_uint_eq(diag.n, N(want));
    for (size_t i = 0; i < N(want); i++)
        ck_assert_str_eq(diag.lines[i], want[i]);
}
END_TEST

START_TEST(test_map_and_seq_checks)
{
    struct node *root = parse_ok("a: [1]\nb: {x: 1}\nc: 3\n");
    struct reader r = make_reader(false);
    ck_assert(!rd_is_map(&r, node_get(root, "a"), "a"));
    ck_assert(!rd_is_seq(&r, node_get(root, "b"), "b"));
    ck_assert(!rd_is_map(&r, node_get(root, "c"), "c"));
    ck_assert(!rd_is_seq(&r, NULL, "d"));
    ck_assert(rd_is_map(&r, node_get(root, "b"), "b"));
    ck_assert(rd_is_seq(&r, node_get(root, "a"), "a"));
    ck_assert_uint_eq(diag.n, 4);
    ck_assert_str_eq(diag.lines[0], "t.yaml:1:4: a: expected a mapping of keys, got a list");
    ck_assert_str_eq(diag.lines[1], "t.yaml:2:4: b: expected a list, got a mapping");
    ck_assert_str_eq(diag.lines[2], "t.yaml:3:4: c: expected a mapping of keys, got a value");
    ck_assert_str_eq(diag.lines[3], "t.yaml:0:0: d: expected a list, got nothing");
    ck_assert_str_eq(rd_key(&r, "", "k"), "k");
    ck_assert_str_eq(rd_key(&r, "a.b", "k"), "a.b.k");
    ck_assert_str_eq(rd_index(&r, "devices", 3), "devices[3]");
}
END_TEST

START_TEST(test_env_expansion)
{
    setenv("E2M_T_HOST", "broker.lan", 1);
    setenv("E2M_T_EMPTY", "", 1);
    unsetenv("E2M_T_UNSET");
    struct node *root = parse_ok("a: ${E2M_T_HOST}\n"
                                 "b: mqtt://${E2M_T_HOST}:1883/${E2M_T_UNSET:-x}\n"
                                 "c: ${E2M_T_EMPTY:-fallback}\n"
                                 "d: ${E2M_T_EMPTY}\n"
                                 "e: ${E2M_T_UNSET}\n"
                                 "f: ${E2M_T_HOST\n"
                                 "g: $HOME and $ and {}\n");
    struct reader r = make_reader(true);
    ck_assert_str_eq(rd_text(&r, node_get(root, "a"), "a"), "broker.lan");
    ck_assert_str_eq(rd_text(&r, node_get(root, "b"), "b"), "mqtt://broker.lan:1883/x");
    ck_assert_str_eq(rd_text(&r, node_get(root, "c"), "c"), "fallback");
    ck_assert_str_eq(rd_text(&r, node_get(root, "d"), "d"), "");
    ck_assert_ptr_null(rd_text(&r, node_get(root, "e"), "e"));
    ck_assert_ptr_null(rd_text(&r, node_get(root, "f"), "f"));
    ck_assert_str_eq(rd_text(&r, node_get(root, "g"), "g"), "$HOME and $ and {}");
    ck_assert_uint_eq(diag.n, 2);
    ck_assert_str_eq(diag.lines[0], "t.yaml:5:4: e: environment variable E2M_T_UNSET is not set");
    ck_assert_str_eq(diag.lines[1], "t.yaml:6:4: f: unterminated ${ in value");

    // Without expansion (entity files) the text stays literal.
    struct reader lit = make_reader(false);
    ck_assert_str_eq(rd_text(&lit, node_get(root, "e"), "e"), "${E2M_T_UNSET}");
    ck_assert_uint_eq(diag.n, 2);
}
END_TEST

// ---- Parameter tables ---------------------------------------------------------------------

static const char *const colours[] = {"red", "green", "blue", NULL};

static const struct param_def defs[] = {
    {.name = "port", .type = PARAM_INT, .def = "502", .min = 1, .max = 65535},
    {.name = "timeout", .type = PARAM_DURATION, .def = "5s", .min = 100, .max = 60000},
    {.name = "colour", .type = PARAM_CHOICE, .def = "green", .choices = colours},
    {.name = "flag", .type = PARAM_BOOL, .def = "false"},
    {.name = "host", .type = PARAM_STR},
    {.name = "ratio", .type = PARAM_NUM, .def = "0.5"},
    {.name = "count", .type = PARAM_INT},
};

START_TEST(test_params_defaults)
{
    struct params p;
    params_init(&p, arena, defs, N(defs));
    ck_assert_int_eq(params_int(&p, "port"), 502);
    ck_assert_int_eq(params_ms(&p, "timeout"), 5000);
    ck_assert_int_eq(params_choice(&p, "colour"), 1);
    ck_assert(!params_bool(&p, "flag"));
    ck_assert(params_is_set(&p, "flag"));
    ck_assert(!params_is_set(&p, "host"));
    ck_assert_ptr_null(params_str(&p, "host"));
    ck_assert_double_eq(params_num(&p, "ratio"), 0.5);
    ck_assert(!params_is_set(&p, "count"));
    // Defaults have no position.
    ck_assert_ptr_null(params_value(&p, "port"));
    ck_assert_ptr_eq(params_find(defs, N(defs), "flag"), &defs[3]);
    ck_assert_ptr_null(params_find(defs, N(defs), "nope"));
}
END_TEST

static void read_all(struct params *p, const struct node *map, const char *path)
{
    struct reader r = make_reader(false);
    for (size_t i = 0; i < map->n; i++) {
        const struct param_def *d = params_find(p->defs, p->n, map->keys[i]->str);
        ck_assert_ptr_nonnull(d);
        params_read_value(p, &r, d, map->items[i], rd_key(&r, path, d->name));
    }
}

START_TEST(test_params_read_and_positions)
{
    struct node *root = parse_ok("o:\n"
                                 "  port: 1502\n"
                                 "  timeout: 250ms\n"
                                 "  colour: blue\n"
                                 "  flag: yes\n"
                                 "  host: meter.lan\n"
                                 "  ratio: -1.25\n"
                                 "  count: 123456789012\n");
    struct params p;
    params_init(&p, arena, defs, N(defs));
    read_all(&p, node_get(root, "o"), "o");
    ck_assert_uint_eq(diag.n, 0);
    ck_assert_int_eq(params_int(&p, "port"), 1502);
    ck_assert_int_eq(params_ms(&p, "timeout"), 250);
    ck_assert_int_eq(params_choice(&p, "colour"), 2);
    ck_assert(params_bool(&p, "flag"));
    ck_assert_str_eq(params_str(&p, "host"), "meter.lan");
    ck_assert_double_eq(params_num(&p, "ratio"), -1.25);
    ck_assert_int_eq(params_int(&p, "count"), 123456789012LL);
    const struct param_value *v = params_value(&p, "timeout");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->line, 3);
    ck_assert_uint_eq(v->col, 12);
    ck_assert_str_eq(v->file, "t.yaml");
}
END_TEST

START_TEST(test_params_invalid_keeps_value)
{
    struct node *root = parse_ok("o:\n"
                                 "  port: 0\n"
                                 "  timeout: 61s\n"
                                 "  colour: purple\n"
                                 "  flag: maybe\n");
    struct params p;
    params_init(&p, arena, defs, N(defs));
    read_all(&p, node_get(root, "o"), "o");
    static const char *const want[] = {
        "t.yaml:2:9: o.port: expected a whole number from 1 to 65535, got 0",
        "t.yaml:3:12: o.timeout: expected a duration from 100ms to 60s, got '61s'",
        "t.yaml:4:11: o.colour: expected one of red, green, blue, got 'purple'",
        "t.yaml:5:9: o.flag: expected true or false, got 'maybe'",
    };
    ck_assert_uint_eq(diag.n, N(want));
    for (size_t i = 0; i < N(want); i++)
        ck_assert_str_eq(diag.lines[i], want[i]);
    ck_assert_int_eq(params_int(&p, "port"), 502);
    ck_assert_int_eq(params_ms(&p, "timeout"), 5000);
    ck_assert_int_eq(params_choice(&p, "colour"), 1);
    ck_assert(!params_bool(&p, "flag"));
    ck_assert_ptr_null(params_value(&p, "port"));
}
END_TEST

START_TEST(test_params_copy_and_null_restores_default)
{
    struct node *root = parse_ok("model:\n"
                                 "  port: 600\n"
                                 "  host: a\n"
                                 "device:\n"
                                 "  port: 700\n"
                                 "  host: ~\n"
                                 "  colour: null\n");
    struct params base, dev;
    params_init(&base, arena, defs, N(defs));
    read_all(&base, node_get(root, "model"), "model");
    params_copy(&dev, arena, &base);
    read_all(&dev, node_get(root, "device"), "device");
    ck_assert_uint_eq(diag.n, 0);
    // The copy is independent of its source.
    ck_assert_int_eq(params_int(&base, "port"), 600);
    ck_assert_str_eq(params_str(&base, "host"), "a");
    ck_assert(params_is_set(&base, "colour"));
    ck_assert_int_eq(params_int(&dev, "port"), 700);
    ck_assert_uint_eq(params_value(&dev, "port")->line, 5);
    ck_assert_uint_eq(params_value(&base, "port")->line, 2);
    // An explicit null restores the table's default (or unset when there is none), undoing
    // what the layer below said.
    ck_assert(!params_is_set(&dev, "host"));
    ck_assert_ptr_null(params_str(&dev, "host"));
    ck_assert(params_is_set(&dev, "colour"));
    ck_assert_int_eq(params_choice(&dev, "colour"), 1); // the default, green
    ck_assert_ptr_null(params_value(&dev, "colour"));
    // Untouched values are inherited.
    ck_assert_int_eq(params_ms(&dev, "timeout"), 5000);
}
END_TEST

static Suite *node_suite(void)
{
    Suite *s = suite_create("node");
    TCase *tc = tcase_create("tree");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_nested_positions);
    tcase_add_test(tc, test_json_positions);
    tcase_add_test(tc, test_anchor_alias_shares_node);
    tcase_add_test(tc, test_unknown_anchor);
    tcase_add_test(tc, test_alias_limit);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_multiple_documents_refused);
    tcase_add_loop_test(tc, test_bad_keys, 0, N(bad_keys));
    tcase_add_test(tc, test_syntax_error_position);
    tcase_add_test(tc, test_empty_documents);
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_load_missing_file);
    tcase_add_test(tc, test_is_null);
    suite_add_tcase(s, tc);

    TCase *sc = tcase_create("scalars");
    tcase_add_loop_test(sc, test_parse_int, 0, N(int_cases));
    tcase_add_loop_test(sc, test_parse_double, 0, N(double_cases));
    tcase_add_loop_test(sc, test_parse_bool, 0, N(bool_cases));
    tcase_add_loop_test(sc, test_parse_duration, 0, N(duration_cases));
    tcase_add_loop_test(sc, test_parse_clock, 0, N(clock_cases));
    suite_add_tcase(s, sc);

    TCase *rc = tcase_create("reader");
    tcase_add_checked_fixture(rc, setup, teardown);
    tcase_add_test(rc, test_check_keys_did_you_mean);
    tcase_add_test(rc, test_require_and_types);
    tcase_add_test(rc, test_map_and_seq_checks);
    tcase_add_test(rc, test_env_expansion);
    suite_add_tcase(s, rc);

    TCase *pc = tcase_create("params");
    tcase_add_checked_fixture(pc, setup, teardown);
    tcase_add_test(pc, test_params_defaults);
    tcase_add_test(pc, test_params_read_and_positions);
    tcase_add_test(pc, test_params_invalid_keeps_value);
    tcase_add_test(pc, test_params_copy_and_null_restores_default);
    suite_add_tcase(s, pc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(node_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
