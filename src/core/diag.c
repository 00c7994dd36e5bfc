// SPDX-License-Identifier: MIT
// Diagnostics list.
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "mem.h"
#include "node.h"

void diag_init(struct diag *d)
{
    *d = (struct diag){0};
}

void diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    *d = (struct diag){0};
}

__attribute__((format(printf, 6, 0))) static void diag_vpos(struct diag *d, const char *file,
                                                            unsigned line, unsigned col,
                                                            const char *key, const char *fmt,
                                                            va_list ap)
{
    char msg[512], full[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(full, sizeof(full), "%s:%u:%u: %s: %s", file ? file : "-", line, col,
             key && *key ? key : "(document)", msg);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->lines = xrealloc(d->lines, d->cap * sizeof(*d->lines));
    }
    d->lines[d->n++] = xstrdup(full);
}

void diag_pos(struct diag *d, const char *file, unsigned line, unsigned col, const char *key,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vpos(d, file, line, col, key, fmt, ap);
    va_end(ap);
}

void diag_at(struct diag *d, const char *file, const struct node *n, const char *key,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vpos(d, file, n ? n->line : 0, n ? n->col : 0, key, fmt, ap);
    va_end(ap);
}

void diag_print(const struct diag *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(out, "%s\n", d->lines[i]);
}
