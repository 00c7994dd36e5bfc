// SPDX-License-Identifier: MIT
// Arithmetic expressions: a recursive-descent compiler to RPN and a fixed-stack evaluator.
//
// Choices the header leaves open, made here deliberately:
// - "Nesting depth" counts parentheses and function calls. Unary minus does not nest: a run of
//   minus signs is parsed in a loop and costs one negation op only when the count is odd
//   (--x is exactly x in IEEE arithmetic).
// - Besides the parser limits, the evaluation stack needs at most EXPR_STACK_MAX slots; an
//   expression that needs more (e.g. min() with 65 arguments) is rejected at compile time as
//   "expression too complex", so evaluation never checks for overflow.
// - NAMEs that are followed by '(' are function calls; abs, min and max are names like any
//   other otherwise, so an entity may be called "max".
// - Numbers are digits with an optional fraction and exponent ("1", "1.", ".5", "2e-3").
//   A number running into letters, digits or a second '.' ("2x", "1.2.3") is one invalid
//   number rather than two tokens, which gives a clearer message.
// - A name running into an upper-case letter ("pv_Power") reports that letter, not the
//   unknown prefix. Errors are reported in text order: a name is resolved before the token
//   after it is read.
// - A failed compile leaves the arena untouched; the program is built on the heap and copied
//   into the arena only on success.
// - Evaluation fails on any non-finite intermediate value, including non-finite operand
//   values, so an overflow cannot be hidden by a later min() or division. `known` may be NULL
//   when every operand is known.
// - expr_refs() sets *refs to NULL when the count is 0.
#include "expr.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define EXPR_TOKENS_MAX  256
#define EXPR_NESTING_MAX 32
#define EXPR_STACK_MAX   64
#define NUMBER_CHARS_MAX 64

enum op_code {
    OP_CONST,
    OP_OPERAND,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_NEG,
    OP_ABS,
    OP_MIN,
    OP_MAX,
};

struct expr_op {
    uint8_t code;
    uint8_t argc; // OP_MIN, OP_MAX
    union {
        double value; // OP_CONST
        int index;    // OP_OPERAND
    } u;
};

struct expr {
    uint16_t n_ops;
    uint8_t max_depth; // evaluation stack slots needed, <= EXPR_STACK_MAX
    uint16_t n_refs;
    const int *refs;
    struct expr_op ops[];
};

enum tok_kind {
    TOK_END,
    TOK_NUMBER,
    TOK_NAME,
    TOK_PLUS,
    TOK_MINUS,
    TOK_STAR,
    TOK_SLASH,
    TOK_LPAREN,
    TOK_RPAREN,
    TOK_COMMA,
};

struct token {
    enum tok_kind kind;
    size_t pos, len;
    double value; // TOK_NUMBER
};

struct compiler {
    const char *text;
    size_t pos; // where lexing continues
    struct token tok;
    unsigned n_tokens;
    unsigned nesting;

    expr_resolve_fn resolve;
    void *arg;

    struct expr_op ops[EXPR_TOKENS_MAX]; // every token yields at most one op
    unsigned n_ops;
    unsigned depth, max_depth;
    int refs[EXPR_TOKENS_MAX];
    unsigned n_refs;

    bool failed;
    char *err;
    size_t err_size;
    size_t err_offset;
};

// Records the first error only: later ones are consequences of it.
static void fail(struct compiler *c, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct compiler *c, size_t offset, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    c->err_offset = offset;
    if (c->err && c->err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_size, fmt, ap);
        va_end(ap);
    }
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_name_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool is_name_char(char ch)
{
    return is_name_start(ch) || is_digit(ch);
}

// Converts a validated number with strtod, which rounds correctly, while keeping '.' the
// decimal point whatever LC_NUMERIC says.
static double number_convert(const char *s, size_t len)
{
    char buf[NUMBER_CHARS_MAX * 4 + 1];
    const char *dp = localeconv()->decimal_point;
    size_t dp_len = dp ? strlen(dp) : 0;
    if (dp_len == 0 || dp_len > 4) {
        dp = ".";
        dp_len = 1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            memcpy(buf + o, dp, dp_len);
            o += dp_len;
        } else {
            buf[o++] = s[i];
        }
    }
    buf[o] = '\0';
    return strtod(buf, NULL);
}

static void lex_number(struct compiler *c, size_t start)
{
    const char *t = c->text;
    size_t p = start, digits = 0;
    while (is_digit(t[p]))
        p++, digits++;
    if (t[p] == '.') {
        p++;
        while (is_digit(t[p]))
            p++, digits++;
    }
    bool ok = digits > 0;
    if (ok && (t[p] == 'e' || t[p] == 'E')) {
        size_t q = p + 1;
        if (t[q] == '+' || t[q] == '-')
            q++;
        if (is_digit(t[q])) {
            while (is_digit(t[q]))
                q++;
            p = q;
        } else {
            ok = false;
            p = q;
        }
    }
    if (is_name_char(t[p]) || t[p] == '.') {
        ok = false;
        while (is_name_char(t[p]) || t[p] == '.')
            p++;
    }
    size_t len = p - start;
    if (!ok) {
        fail(c, start, "invalid number '%.*s'", (int)len, t + start);
        return;
    }
    if (len > NUMBER_CHARS_MAX) {
        fail(c, start, "number too long");
        return;
    }
    double v = number_convert(t + start, len);
    if (!isfinite(v)) {
        fail(c, start, "number out of range '%.*s'", (int)len, t + start);
        return;
    }
    c->tok = (struct token){.kind = TOK_NUMBER, .pos = start, .len = len, .value = v};
    c->pos = p;
}

// Reads the next token into c->tok. On error c->failed is set and c->tok is TOK_END.
static void next(struct compiler *c)
{
    const char *t = c->text;
    while (is_space(t[c->pos]))
        c->pos++;
    size_t start = c->pos;
    c->tok = (struct token){.kind = TOK_END, .pos = start};
    if (t[start] == '\0' || c->failed)
        return;
    if (++c->n_tokens > EXPR_TOKENS_MAX) {
        fail(c, start, "too many tokens (limit %d)", EXPR_TOKENS_MAX);
        return;
    }

    char ch = t[start];
    if (is_digit(ch) || ch == '.') {
        lex_number(c, start);
        return;
    }
    if (is_name_start(ch)) {
        size_t p = start;
        while (is_name_char(t[p]))
            p++;
        // "pv_Power" is one misspelt name, not the name "pv_" followed by junk.
        if (t[p] >= 'A' && t[p] <= 'Z') {
            fail(c, p, "unexpected character '%c'", t[p]);
            return;
        }
        c->tok = (struct token){.kind = TOK_NAME, .pos = start, .len = p - start};
        c->pos = p;
        return;
    }
    enum tok_kind kind;
    switch (ch) {
    case '+': kind = TOK_PLUS; break;
    case '-': kind = TOK_MINUS; break;
    case '*': kind = TOK_STAR; break;
    case '/': kind = TOK_SLASH; break;
    case '(': kind = TOK_LPAREN; break;
    case ')': kind = TOK_RPAREN; break;
    case ',': kind = TOK_COMMA; break;
    default:
        if ((unsigned char)ch >= 0x20 && (unsigned char)ch < 0x7f)
            fail(c, start, "unexpected character '%c'", ch);
        else
            fail(c, start, "unexpected character 0x%02x", (unsigned char)ch);
        return;
    }
    c->tok = (struct token){.kind = kind, .pos = start, .len = 1};
    c->pos = start + 1;
}

// Appends an op and tracks the stack depth it leaves: `pops` values consumed, one produced.
static void emit(struct compiler *c, struct expr_op op, unsigned pops, size_t offset)
{
    if (c->failed)
        return;
    c->depth = c->depth - pops + 1;
    if (c->depth > EXPR_STACK_MAX) {
        fail(c, offset, "expression too complex (needs more than %d stack slots)", EXPR_STACK_MAX);
        return;
    }
    if (c->depth > c->max_depth)
        c->max_depth = c->depth;
    c->ops[c->n_ops++] = op;
}

static void add_ref(struct compiler *c, int index)
{
    for (unsigned i = 0; i < c->n_refs; i++)
        if (c->refs[i] == index)
            return;
    c->refs[c->n_refs++] = index;
}

static void parse_expr(struct compiler *c);

static void parse_call(struct compiler *c, const struct token *name)
{
    enum op_code code;
    unsigned min_args, max_args;
    const char *n = c->text + name->pos;
    if (name->len == 3 && memcmp(n, "abs", 3) == 0) {
        code = OP_ABS, min_args = 1, max_args = 1;
    } else if (name->len == 3 && memcmp(n, "min", 3) == 0) {
        code = OP_MIN, min_args = 2, max_args = UINT8_MAX;
    } else if (name->len == 3 && memcmp(n, "max", 3) == 0) {
        code = OP_MAX, min_args = 2, max_args = UINT8_MAX;
    } else {
        fail(c, name->pos, "unknown function '%.*s'", (int)name->len, n);
        return;
    }
    if (++c->nesting > EXPR_NESTING_MAX) {
        fail(c, c->tok.pos, "too deeply nested (limit %d)", EXPR_NESTING_MAX);
        return;
    }
    next(c); // '('
    unsigned argc = 0;
    for (;;) {
        parse_expr(c);
        if (c->failed)
            return;
        argc++;
        if (c->tok.kind == TOK_COMMA) {
            next(c);
            continue;
        }
        if (c->tok.kind != TOK_RPAREN) {
            fail(c, c->tok.pos, "expected ',' or ')'");
            return;
        }
        break;
    }
    c->nesting--;
    if (argc < min_args || argc > max_args) {
        if (min_args == max_args)
            fail(c, name->pos, "%.*s() takes exactly %u argument%s", (int)name->len, n, min_args,
                 min_args == 1 ? "" : "s");
        else
            fail(c, name->pos, "%.*s() takes at least %u arguments", (int)name->len, n, min_args);
        return;
    }
    emit(c, (struct expr_op){.code = (uint8_t)code, .argc = (uint8_t)argc}, argc, name->pos);
    next(c); // ')'
}

static void parse_primary(struct compiler *c)
{
    if (c->failed)
        return;
    struct token t = c->tok;
    switch (t.kind) {
    case TOK_NUMBER:
        emit(c, (struct expr_op){.code = OP_CONST, .u.value = t.value}, 0, t.pos);
        next(c);
        return;
    case TOK_NAME: {
        // Peek for '(' without lexing on, so errors keep their text order.
        size_t p = c->pos;
        while (is_space(c->text[p]))
            p++;
        if (c->text[p] == '(') {
            next(c);
            parse_call(c, &t);
            return;
        }
        int index = c->resolve ? c->resolve(c->arg, c->text + t.pos, t.len) : -1;
        if (index < 0) {
            fail(c, t.pos, "unknown name '%.*s'", (int)t.len, c->text + t.pos);
            return;
        }
        emit(c, (struct expr_op){.code = OP_OPERAND, .u.index = index}, 0, t.pos);
        add_ref(c, index);
        next(c);
        return;
    }
    case TOK_LPAREN:
        if (++c->nesting > EXPR_NESTING_MAX) {
            fail(c, t.pos, "too deeply nested (limit %d)", EXPR_NESTING_MAX);
            return;
        }
        next(c);
        parse_expr(c);
        if (c->failed)
            return;
        if (c->tok.kind != TOK_RPAREN) {
            fail(c, c->tok.pos, "expected ')'");
            return;
        }
        c->nesting--;
        next(c);
        return;
    default: fail(c, t.pos, "expected an operand"); return;
    }
}

static void parse_unary(struct compiler *c)
{
    unsigned minus = 0;
    size_t pos = c->tok.pos;
    while (!c->failed && c->tok.kind == TOK_MINUS) {
        minus++;
        next(c);
    }
    parse_primary(c);
    if (minus % 2)
        emit(c, (struct expr_op){.code = OP_NEG}, 1, pos);
}

static void parse_term(struct compiler *c)
{
    parse_unary(c);
    while (!c->failed && (c->tok.kind == TOK_STAR || c->tok.kind == TOK_SLASH)) {
        struct token op = c->tok;
        next(c);
        parse_unary(c);
        emit(c, (struct expr_op){.code = op.kind == TOK_STAR ? OP_MUL : OP_DIV}, 2, op.pos);
    }
}

static void parse_expr(struct compiler *c)
{
    parse_term(c);
    while (!c->failed && (c->tok.kind == TOK_PLUS || c->tok.kind == TOK_MINUS)) {
        struct token op = c->tok;
        next(c);
        parse_term(c);
        emit(c, (struct expr_op){.code = op.kind == TOK_PLUS ? OP_ADD : OP_SUB}, 2, op.pos);
    }
}

int expr_compile(struct arena *a, const char *text, expr_resolve_fn resolve, void *arg,
                 struct expr **out, char *err, size_t err_size, size_t *err_offset)
{
    if (err && err_size > 0)
        err[0] = '\0';
    if (!a || !text || !out) {
        if (err && err_size > 0)
            snprintf(err, err_size, "invalid arguments");
        if (err_offset)
            *err_offset = 0;
        return -EINVAL;
    }

    // The compiler state holds the op buffer (several KiB), too much for some thread stacks.
    struct compiler *c = xcalloc(1, sizeof *c);
    c->text = text;
    c->resolve = resolve;
    c->arg = arg;
    c->err = err;
    c->err_size = err_size;

    next(c);
    parse_expr(c);
    if (!c->failed && c->tok.kind != TOK_END)
        fail(c, c->tok.pos, "trailing input");
    if (c->failed) {
        if (err_offset)
            *err_offset = c->err_offset;
        free(c);
        return -EINVAL;
    }

    struct expr *e = arena_alloc(a, sizeof *e + c->n_ops * sizeof e->ops[0]);
    e->n_ops = (uint16_t)c->n_ops;
    e->max_depth = (uint8_t)c->max_depth;
    memcpy(e->ops, c->ops, c->n_ops * sizeof e->ops[0]);
    e->n_refs = (uint16_t)c->n_refs;
    if (c->n_refs > 0) {
        int *refs = arena_alloc(a, c->n_refs * sizeof *refs);
        memcpy(refs, c->refs, c->n_refs * sizeof *refs);
        e->refs = refs;
    }
    free(c);
    *out = e;
    return 0;
}

bool expr_eval(const struct expr *e, const double *values, const bool *known, double *out)
{
    if (!e || !out || e->max_depth > EXPR_STACK_MAX)
        return false;
    double stack[EXPR_STACK_MAX];
    unsigned sp = 0;
    for (unsigned i = 0; i < e->n_ops; i++) {
        const struct expr_op *op = &e->ops[i];
        double r, x, y;
        switch (op->code) {
        case OP_CONST: r = op->u.value; break;
        case OP_OPERAND:
            if (!values || (known && !known[op->u.index]))
                return false;
            r = values[op->u.index];
            break;
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
        case OP_DIV:
            y = stack[--sp];
            x = stack[--sp];
            if (op->code == OP_ADD)
                r = x + y;
            else if (op->code == OP_SUB)
                r = x - y;
            else if (op->code == OP_MUL)
                r = x * y;
            else if (y == 0)
                return false;
            else
                r = x / y;
            break;
        case OP_NEG: r = -stack[--sp]; break;
        case OP_ABS: r = fabs(stack[--sp]); break;
        case OP_MIN:
        case OP_MAX:
            sp -= op->argc;
            r = stack[sp];
            for (unsigned k = 1; k < op->argc; k++) {
                double v = stack[sp + k];
                if (op->code == OP_MIN ? v < r : v > r)
                    r = v;
            }
            break;
        default: return false;
        }
        if (!isfinite(r))
            return false;
        stack[sp++] = r;
    }
    if (sp != 1)
        return false;
    *out = stack[0];
    return true;
}

size_t expr_refs(const struct expr *e, const int **refs)
{
    if (refs)
        *refs = e ? e->refs : NULL;
    return e ? e->n_refs : 0;
}
