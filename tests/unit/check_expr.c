// SPDX-License-Identifier: MIT
// Unit tests for derived-entity expressions (core/expr): parsing, errors, evaluation, refs.
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr.h"
#include "core/mem.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

// Operands known to the tests; "max" doubles as a plain name to show that only NAME '(' is a
// function call.
static const char *const names[] = {"a", "b", "c", "pv_power", "grid_import", "x_1", "max"};
static const double values[] = {2, 3, 5, 1000, 250.5, -7, 9};

static int resolve(void *arg, const char *name, size_t len)
{
    int *calls = arg;
    if (calls)
        (*calls)++;
    for (size_t i = 0; i < N(names); i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return (int)i;
    return -1;
}

struct fixture {
    struct arena *a;
    char err[128];
    size_t off;
};

static struct fixture fx;

static void setup(void)
{
    fx.a = arena_new();
    fx.err[0] = '\0';
    fx.off = 9999;
}

static void teardown(void)
{
    arena_free(fx.a);
    fx.a = NULL;
}

static struct expr *compile_ok(const char *text)
{
    struct expr *e = NULL;
    int rc = expr_compile(fx.a, text, resolve, NULL, &e, fx.err, sizeof fx.err, &fx.off);
    ck_assert_msg(rc == 0, "'%s' failed: %s at %zu", text, fx.err, fx.off);
    ck_assert_ptr_nonnull(e);
    return e;
}

// ---- Values -------------------------------------------------------------------------------

struct value_case {
    const char *text;
    double expect;
};

static const struct value_case value_cases[] = {
    {"2-3-4", -5},
    {"8/4/2", 1},
    {"-2*3", -6},
    {"--2", 2},
    {"- - -2", -2},
    {"2*3+4", 10},
    {"2+3*4", 14},
    {"(2+3)*4", 20},
    {"2*(3+4)", 14},
    {"2-(3-4)", 3},
    {"8/(4/2)", 4},
    {"2--3", 5},
    {"2*-3", -6},
    {"-(2+3)", -5},
    {"-2-3", -5},
    {"1+2-3+4", 4},
    {"100/10/5*2", 4},
    {"12/4*3", 9},
    {"((((1))))", 1},
    {"abs(-3)", 3},
    {"abs(2-5)*2", 6},
    {"-abs(4)", -4},
    {"min(3,1,2)", 1},
    {"max(3,1,2)", 3},
    {"min(3, -1)", -1},
    {"max(-3, -1, -2, -8)", -1},
    {"min(max(a,b),c)", 3},
    {"max (1, 2)", 2},
    {"a", 2},
    {"a*b+c", 11},
    {"a*(b+c)", 16},
    {"-a*b", -6},
    {"max(-a, -b)", -2},
    {"pv_power - grid_import", 749.5},
    {"grid_import*2 + x_1", 494},
    {"max + 1", 10},
    {"max(max, 100)", 100},
    {" 1.5e2 ", 150},
    {".5+1.", 1.5},
    {"2E2", 200},
    {"25e-1", 2.5},
    {"1e+2", 100},
    {"1e-3*1000", 1},
    {"0.1+0.2", 0.1 + 0.2},
    {"007", 7},
    {"\t1 +\n 2\r", 3},
    {"1/3", 1.0 / 3},
    {"1e308 - 1e308", 0},
};

START_TEST(test_values)
{
    const struct value_case *c = &value_cases[_i];
    struct expr *e = compile_ok(c->text);
    double out = -123;
    bool known[N(values)];
    for (size_t i = 0; i < N(known); i++)
        known[i] = true;
    ck_assert_msg(expr_eval(e, values, known, &out), "'%s' did not evaluate", c->text);
    ck_assert_msg(out == c->expect, "'%s' = %.17g, want %.17g", c->text, out, c->expect);
    // A NULL `known` means every operand is known.
    out = -123;
    ck_assert(expr_eval(e, values, NULL, &out));
    ck_assert(out == c->expect);
}
END_TEST

// ---- Evaluation failures ------------------------------------------------------------------

struct fail_case {
    const char *text;
    int unknown; // operand index marked unknown, or -1
};

static const struct fail_case fail_cases[] = {
    {"a + b", 1},
    {"b", 1},
    {"min(a, b, c)", 2},
    {"abs(c) * 0", 2}, // an unknown operand poisons the result even when it cannot matter
    {"1/0", -1},
    {"0/0", -1},
    {"a/(b-3)", -1},
    {"1/(a-a)", -1},
    {"1e308*10", -1},
    {"-1e308*10", -1},
    {"min(1e308*10, 1)", -1}, // an intermediate overflow is not hidden by min()
    {"1/(1e308*10)", -1},
};

START_TEST(test_eval_fails)
{
    const struct fail_case *c = &fail_cases[_i];
    struct expr *e = compile_ok(c->text);
    bool known[N(values)];
    for (size_t i = 0; i < N(known); i++)
        known[i] = (int)i != c->unknown;
    double out = 42;
    ck_assert_msg(!expr_eval(e, values, known, &out), "'%s' evaluated to %g", c->text, out);
    ck_assert(out == 42);
}
END_TEST

START_TEST(test_eval_nonfinite_operand)
{
    struct expr *e = compile_ok("a + 1");
    double vals[1] = {NAN};
    double out = 42;
    ck_assert(!expr_eval(e, vals, NULL, &out));
    vals[0] = INFINITY;
    ck_assert(!expr_eval(e, vals, NULL, &out));
    // A NaN operand must not slip through min(), whose comparisons are false for NaN.
    e = compile_ok("min(a, 1)");
    vals[0] = NAN;
    ck_assert(!expr_eval(e, vals, NULL, &out));
    ck_assert(out == 42);
    vals[0] = 0.25;
    ck_assert(expr_eval(e, vals, NULL, &out));
    ck_assert(out == 0.25);
}
END_TEST

// ---- Compile errors -----------------------------------------------------------------------

struct error_case {
    const char *text;
    const char *message;
    size_t offset;
};

static const struct error_case error_cases[] = {
    {"", "expected an operand", 0},
    {"   ", "expected an operand", 3},
    {"1 +", "expected an operand", 3},
    {"1 + )", "expected an operand", 4},
    {"*2", "expected an operand", 0},
    {"2 * / 3", "expected an operand", 4},
    {"-", "expected an operand", 1},
    {"()", "expected an operand", 1},
    {"abs()", "expected an operand", 4},
    {"min(1,)", "expected an operand", 6},
    {"(1 + 2", "expected ')'", 6},
    {"(1 2)", "expected ')'", 3},
    {"((1)", "expected ')'", 4},
    {"min(1 2)", "expected ',' or ')'", 6},
    {"min(1, 2", "expected ',' or ')'", 8},
    {"1 2", "trailing input", 2},
    {"1)", "trailing input", 1},
    {"a b", "trailing input", 2},
    {"(1),2", "trailing input", 3},
    {"a + $", "unexpected character '$'", 4},
    {"A", "unexpected character 'A'", 0},
    {"pv_Power", "unexpected character 'P'", 3},
    {"1 ^ 2", "unexpected character '^'", 2},
    {"a\x01", "unexpected character 0x01", 1},
    {"1 + 2 \xc3\xa9", "unexpected character 0xc3", 6},
    {"pv_powr + 1", "unknown name 'pv_powr'", 0},
    {"1 + pv_powr", "unknown name 'pv_powr'", 4},
    {"abs", "unknown name 'abs'", 0},
    {"inf", "unknown name 'inf'", 0},
    {"nan + 1", "unknown name 'nan'", 0},
    {"x + $", "unknown name 'x'", 0}, // errors come in text order
    {"foo(1)", "unknown function 'foo'", 0},
    {"2 * a (1)", "unknown function 'a'", 4},
    {"abs(1, 2)", "abs() takes exactly 1 argument", 0},
    {"2 * min(1)", "min() takes at least 2 arguments", 4},
    {"max(a)", "max() takes at least 2 arguments", 0},
    {"1e", "invalid number '1e'", 0},
    {"1e+", "invalid number '1e+'", 0},
    {"2 + 1.2.3", "invalid number '1.2.3'", 4},
    {"2x", "invalid number '2x'", 0},
    {".", "invalid number '.'", 0},
    {"0x10", "invalid number '0x10'", 0},
    {"1e999", "number out of range '1e999'", 0},
};

START_TEST(test_errors)
{
    const struct error_case *c = &error_cases[_i];
    struct expr *e = (struct expr *)&fx; // any sentinel: must stay untouched
    int rc = expr_compile(fx.a, c->text, resolve, NULL, &e, fx.err, sizeof fx.err, &fx.off);
    ck_assert_msg(rc == -EINVAL, "'%s' compiled", c->text);
    ck_assert_ptr_eq(e, (struct expr *)&fx);
    ck_assert_msg(strcmp(fx.err, c->message) == 0, "'%s': message \"%s\", want \"%s\"", c->text,
                  fx.err, c->message);
    ck_assert_msg(fx.off == c->offset, "'%s': offset %zu, want %zu", c->text, fx.off, c->offset);
}
END_TEST

START_TEST(test_error_buffer)
{
    struct expr *e = NULL;
    char small[8];
    ck_assert_int_eq(expr_compile(fx.a, "pv_powr", resolve, NULL, &e, small, sizeof small, &fx.off),
                     -EINVAL);
    ck_assert_str_eq(small, "unknown");
    ck_assert_uint_eq(fx.off, 0);
    // Neither the message nor the offset is required.
    ck_assert_int_eq(expr_compile(fx.a, "1 +", resolve, NULL, &e, NULL, 0, NULL), -EINVAL);
    ck_assert_ptr_null(e);
    // A failed compile takes nothing from the arena.
    size_t used = arena_used(fx.a);
    ck_assert_int_eq(expr_compile(fx.a, "a + b + (c", resolve, NULL, &e, NULL, 0, NULL), -EINVAL);
    ck_assert_uint_eq(arena_used(fx.a), used);
    ck_assert_int_eq(expr_compile(fx.a, "a + b + c", resolve, NULL, &e, NULL, 0, NULL), 0);
    ck_assert_uint_gt(arena_used(fx.a), used);
    // Without a resolver every name is unknown.
    ck_assert_int_eq(expr_compile(fx.a, "1 + a", NULL, NULL, &e, fx.err, sizeof fx.err, &fx.off),
                     -EINVAL);
    ck_assert_str_eq(fx.err, "unknown name 'a'");
    ck_assert_uint_eq(fx.off, 4);
}
END_TEST

START_TEST(test_resolver_arg)
{
    int calls = 0;
    struct expr *e = NULL;
    ck_assert_int_eq(
        expr_compile(fx.a, "a + b * a", resolve, &calls, &e, fx.err, sizeof fx.err, &fx.off), 0);
    ck_assert_int_eq(calls, 3);
}
END_TEST

// ---- Limits -------------------------------------------------------------------------------

// Builds a string into a fixed buffer.
static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < size - len);
}

START_TEST(test_token_limit)
{
    char text[1024] = "-";
    // "-" and 128 ones with 127 '+' between them: 256 tokens, the limit.
    for (int i = 0; i < 128; i++)
        append(text, sizeof text, i ? "+1" : "1");
    struct expr *e = compile_ok(text);
    double out;
    ck_assert(expr_eval(e, NULL, NULL, &out));
    ck_assert(out == 126);
    // One more operator is token 257.
    size_t len = strlen(text);
    append(text, sizeof text, "+1");
    ck_assert_int_eq(expr_compile(fx.a, text, resolve, NULL, &e, fx.err, sizeof fx.err, &fx.off),
                     -EINVAL);
    ck_assert_str_eq(fx.err, "too many tokens (limit 256)");
    ck_assert_uint_eq(fx.off, len);
}
END_TEST

START_TEST(test_nesting_limit)
{
    for (int depth = 31; depth <= 34; depth++) {
        char text[256] = "";
        for (int i = 0; i < depth; i++)
            append(text, sizeof text, "(");
        append(text, sizeof text, "7");
        for (int i = 0; i < depth; i++)
            append(text, sizeof text, ")");
        struct expr *e = NULL;
        int rc = expr_compile(fx.a, text, resolve, NULL, &e, fx.err, sizeof fx.err, &fx.off);
        if (depth <= 32) {
            ck_assert_int_eq(rc, 0);
            double out = 0;
            ck_assert(expr_eval(e, NULL, NULL, &out));
            ck_assert(out == 7);
        } else {
            ck_assert_int_eq(rc, -EINVAL);
            ck_assert_str_eq(fx.err, "too deeply nested (limit 32)");
            ck_assert_uint_eq(fx.off, 32);
        }
    }
    // Function calls nest too: the 33rd "abs(" fails at its parenthesis.
    char text[512] = "";
    for (int i = 0; i < 33; i++)
        append(text, sizeof text, "abs(");
    append(text, sizeof text, "-1");
    for (int i = 0; i < 33; i++)
        append(text, sizeof text, ")");
    struct expr *e = NULL;
    ck_assert_int_eq(expr_compile(fx.a, text, resolve, NULL, &e, fx.err, sizeof fx.err, &fx.off),
                     -EINVAL);
    ck_assert_str_eq(fx.err, "too deeply nested (limit 32)");
    ck_assert_uint_eq(fx.off, 32 * 4 + 3);
    // Unary minus does not nest.
    char minus[200] = "";
    for (int i = 0; i < 101; i++)
        append(minus, sizeof minus, "-");
    append(minus, sizeof minus, "4");
    e = compile_ok(minus);
    double out = 0;
    ck_assert(expr_eval(e, NULL, NULL, &out));
    ck_assert(out == -4);
}
END_TEST

// Right-nested expressions that keep every intermediate on the stack.
START_TEST(test_stack_limit)
{
    // 32 nested parentheses with an operand waiting at every level stay within 64 slots.
    char text[1024] = "";
    for (int i = 0; i < 32; i++)
        append(text, sizeof text, "1+(");
    append(text, sizeof text, "1");
    for (int i = 0; i < 32; i++)
        append(text, sizeof text, ")");
    struct expr *e = compile_ok(text);
    double out = 0;
    ck_assert(expr_eval(e, NULL, NULL, &out));
    ck_assert(out == 33);

    // min() with 64 arguments needs exactly 64 slots, with 65 one too many.
    for (int argc = 64; argc <= 65; argc++) {
        char call[512] = "min(";
        for (int i = 0; i < argc; i++)
            append(call, sizeof call, i ? ",%d" : "%d", i % 10);
        append(call, sizeof call, ")");
        int rc = expr_compile(fx.a, call, resolve, NULL, &e, fx.err, sizeof fx.err, &fx.off);
        if (argc == 64) {
            ck_assert_int_eq(rc, 0);
            ck_assert(expr_eval(e, NULL, NULL, &out));
            ck_assert(out == 0);
        } else {
            ck_assert_int_eq(rc, -EINVAL);
            ck_assert_str_eq(fx.err, "expression too complex (needs more than 64 stack slots)");
            ck_assert_uint_eq(fx.off, 4 + 2 * 64);
        }
    }
}
END_TEST

// ---- References ---------------------------------------------------------------------------

struct refs_case {
    const char *text;
    int refs[8];
    size_t n;
};

static const struct refs_case refs_cases[] = {
    {"1 + 2", {0}, 0},
    {"a", {0}, 1},
    {"a + b*a - c + b", {0, 1, 2}, 3},
    {"c + a", {2, 0}, 2},
    {"min(b, b, b)", {1}, 1},
    {"max(grid_import, max) - -pv_power / x_1", {4, 6, 3, 5}, 4},
};

START_TEST(test_refs)
{
    const struct refs_case *c = &refs_cases[_i];
    struct expr *e = compile_ok(c->text);
    const int *refs = NULL;
    size_t n = expr_refs(e, &refs);
    ck_assert_uint_eq(n, c->n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(refs[i] == c->refs[i], "'%s' ref %zu = %d, want %d", c->text, i, refs[i],
                      c->refs[i]);
}
END_TEST

// ---- Random expressions -------------------------------------------------------------------

// Random expression trees are evaluated directly and printed twice, once with as few
// parentheses as the grammar allows and once fully parenthesised; both texts must compile and
// evaluate to exactly the tree's value (the same double operations in the same order), or both
// must fail when the tree divides by zero or overflows.
enum node_kind { N_NUM, N_VAR, N_ADD, N_SUB, N_MUL, N_DIV, N_NEG, N_ABS, N_MIN, N_MAX };

struct node {
    enum node_kind kind;
    int leaf; // N_NUM: index into numbers, N_VAR: operand index
    int n_kids;
    struct node *kids[3];
};

static const struct {
    const char *text;
    double value;
} numbers[] = {
    {"0", 0},       {"1", 1}, {"2.5", 2.5}, {".5", 0.5},  {"10.", 10},      {"1e2", 100},
    {"25E-1", 2.5}, {"3", 3}, {"7", 7},     {"0.1", 0.1}, {"1e300", 1e300},
};

static const double rand_values[] = {1.5, -4, 0};
static const char *const rand_names[] = {"a", "b", "c"};

static uint32_t rng_state;

static uint32_t rng(uint32_t n)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) % n;
}

struct pool {
    struct node nodes[64];
    int used;
};

static struct node *gen(struct pool *p, int depth)
{
    struct node *n = &p->nodes[p->used++];
    memset(n, 0, sizeof *n);
    bool leaf = depth == 0 || p->used > 40 || rng(4) == 0;
    if (leaf) {
        n->kind = rng(3) == 0 ? N_VAR : N_NUM;
        n->leaf = (int)(n->kind == N_VAR ? rng(N(rand_values)) : rng(N(numbers)));
        return n;
    }
    n->kind = (enum node_kind)(N_ADD + rng(8));
    switch (n->kind) {
    case N_NEG:
    case N_ABS: n->n_kids = 1; break;
    case N_MIN:
    case N_MAX: n->n_kids = 2 + (int)rng(2); break;
    default: n->n_kids = 2; break;
    }
    for (int i = 0; i < n->n_kids; i++)
        n->kids[i] = gen(p, depth - 1);
    return n;
}

// The reference evaluator: plain recursion over the tree.
static bool ref_eval(const struct node *n, double *out)
{
    double k[3];
    for (int i = 0; i < n->n_kids; i++)
        if (!ref_eval(n->kids[i], &k[i]))
            return false;
    double r;
    switch (n->kind) {
    case N_NUM: r = numbers[n->leaf].value; break;
    case N_VAR: r = rand_values[n->leaf]; break;
    case N_ADD: r = k[0] + k[1]; break;
    case N_SUB: r = k[0] - k[1]; break;
    case N_MUL: r = k[0] * k[1]; break;
    case N_DIV:
        if (k[1] == 0)
            return false;
        r = k[0] / k[1];
        break;
    case N_NEG: r = -k[0]; break;
    case N_ABS: r = k[0] < 0 ? -k[0] : k[0]; break;
    case N_MIN:
    case N_MAX:
        r = k[0];
        for (int i = 1; i < n->n_kids; i++)
            if (n->kind == N_MIN ? k[i] < r : k[i] > r)
                r = k[i];
        break;
    default: return false;
    }
    if (isnan(r) || isinf(r))
        return false;
    *out = r;
    return true;
}

static int prec(const struct node *n)
{
    switch (n->kind) {
    case N_ADD:
    case N_SUB: return 1;
    case N_MUL:
    case N_DIV: return 2;
    case N_NEG: return 3;
    default: return 4;
    }
}

struct printer {
    char buf[2048];
    bool full;               // parenthesise every operation
    int seen[N(rand_names)]; // first-use order of operands, -1 terminated
    int n_seen;
};

static void space(struct printer *pr)
{
    if (rng(3) == 0)
        append(pr->buf, sizeof pr->buf, rng(2) ? " " : "\t");
}

static void print_node(struct printer *pr, const struct node *n);

static void print_child(struct printer *pr, const struct node *kid, bool parens)
{
    if (parens)
        append(pr->buf, sizeof pr->buf, "(");
    print_node(pr, kid);
    if (parens)
        append(pr->buf, sizeof pr->buf, ")");
}

static void print_node(struct printer *pr, const struct node *n)
{
    static const char ops[] = {[N_ADD] = '+', [N_SUB] = '-', [N_MUL] = '*', [N_DIV] = '/'};
    space(pr);
    switch (n->kind) {
    case N_NUM: append(pr->buf, sizeof pr->buf, "%s", numbers[n->leaf].text); break;
    case N_VAR: {
        append(pr->buf, sizeof pr->buf, "%s", rand_names[n->leaf]);
        bool seen = false;
        for (int i = 0; i < pr->n_seen; i++)
            seen |= pr->seen[i] == n->leaf;
        if (!seen)
            pr->seen[pr->n_seen++] = n->leaf;
        break;
    }
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_DIV: {
        int p = prec(n);
        if (pr->full)
            append(pr->buf, sizeof pr->buf, "(");
        print_child(pr, n->kids[0], !pr->full && prec(n->kids[0]) < p);
        space(pr);
        append(pr->buf, sizeof pr->buf, "%c", ops[n->kind]);
        // Operators are left-associative, so a right operand of the same level needs
        // parentheses (a - (b - c)); for + and * too, since reassociating changes rounding.
        print_child(pr, n->kids[1], !pr->full && prec(n->kids[1]) <= p);
        if (pr->full)
            append(pr->buf, sizeof pr->buf, ")");
        break;
    }
    case N_NEG:
        if (pr->full)
            append(pr->buf, sizeof pr->buf, "(");
        append(pr->buf, sizeof pr->buf, "-");
        print_child(pr, n->kids[0], !pr->full && prec(n->kids[0]) < 3);
        if (pr->full)
            append(pr->buf, sizeof pr->buf, ")");
        break;
    case N_ABS:
    case N_MIN:
    case N_MAX:
        append(pr->buf, sizeof pr->buf, "%s(",
               n->kind == N_ABS   ? "abs"
               : n->kind == N_MIN ? "min"
                                  : "max");
        for (int i = 0; i < n->n_kids; i++) {
            if (i)
                append(pr->buf, sizeof pr->buf, ",");
            print_node(pr, n->kids[i]);
            space(pr);
        }
        append(pr->buf, sizeof pr->buf, ")");
        break;
    }
}

START_TEST(test_random_expressions)
{
    rng_state = 20240611;
    int evaluated = 0, failed = 0;
    for (int iter = 0; iter < 5000; iter++) {
        struct pool pool;
        pool.used = 0;
        const struct node *root = gen(&pool, 1 + (int)rng(5));
        double want = 0;
        bool want_ok = ref_eval(root, &want);
        if (want_ok)
            evaluated++;
        else
            failed++;

        for (int full = 0; full <= 1; full++) {
            struct printer pr = {.full = full};
            print_node(&pr, root);
            struct expr *e = compile_ok(pr.buf);
            double got = -12345;
            bool ok = expr_eval(e, rand_values, NULL, &got);
            ck_assert_msg(ok == want_ok, "'%s': eval %d, reference %d", pr.buf, ok, want_ok);
            if (ok)
                ck_assert_msg(got == want, "'%s' = %.17g, reference %.17g", pr.buf, got, want);
            const int *refs;
            size_t n = expr_refs(e, &refs);
            ck_assert_uint_eq(n, (size_t)pr.n_seen);
            for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(refs[i], pr.seen[i]);
        }
        if (iter % 500 == 499) {
            // Keep the arena from growing over the whole run.
            arena_free(fx.a);
            fx.a = arena_new();
        }
    }
    // The generator must exercise both outcomes for the comparison to mean anything.
    ck_assert_int_gt(evaluated, 1000);
    ck_assert_int_gt(failed, 100);
}
END_TEST

static Suite *expr_suite(void)
{
    Suite *s = suite_create("expr");

    TCase *tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_values, 0, (int)N(value_cases));
    tcase_add_loop_test(tc, test_eval_fails, 0, (int)N(fail_cases));
    tcase_add_test(tc, test_eval_nonfinite_operand);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_errors, 0, (int)N(error_cases));
    tcase_add_test(tc, test_error_buffer);
    tcase_add_test(tc, test_resolver_arg);
    tcase_add_test(tc, test_token_limit);
    tcase_add_test(tc, test_nesting_limit);
    tcase_add_test(tc, test_stack_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("refs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_refs, 0, (int)N(refs_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_random_expressions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(expr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
