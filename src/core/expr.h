// SPDX-License-Identifier: MIT
// Small arithmetic expressions for derived entities, e.g. "grid_import - grid_export + pv".
//
// Grammar (whitespace ignored):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary)*
//   unary   := '-' unary | primary
//   primary := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'
//   NAME    := [a-z_][a-z0-9_]*       NUMBER := decimal, optional fraction and exponent
// Functions: abs(x), min(a, b, ...), max(a, b, ...).
// Names are resolved to operand indices when compiling; evaluation takes an array of values
// indexed the same way. Compiled expressions live in the caller's arena.
#ifndef E2M_EXPR_H
#define E2M_EXPR_H

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct expr;

// Maps a name (not NUL-terminated) to an operand index >= 0, or returns -1 when unknown.
typedef int (*expr_resolve_fn)(void *arg, const char *name, size_t len);

// Compiles `text`. On error returns -EINVAL and writes a message (e.g. "unknown name
// 'pv_powr'", "expected ')'") to `err` and the 0-based character offset to *err_offset.
// Limits: 256 tokens, nesting depth 32.
int expr_compile(struct arena *a, const char *text, expr_resolve_fn resolve, void *arg,
                 struct expr **out, char *err, size_t err_size, size_t *err_offset);

// Evaluates. Returns false when an operand it uses is unknown (known[i] false) or the
// result is not finite (e.g. division by zero); *out is untouched then.
bool expr_eval(const struct expr *e, const double *values, const bool *known, double *out);

// The distinct operand indices the expression references (for dependency order and cycle
// checks). Returns the count and points *refs at them.
size_t expr_refs(const struct expr *e, const int **refs);

#endif
