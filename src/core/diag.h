// SPDX-License-Identifier: MIT
// Diagnostics collected while loading configuration and entity files.
//
// Every problem is one line "file:line:column: key: what was expected", so editors and CI
// logs can jump to it. Loading continues after a problem where it can, so one run reports
// them all.
#ifndef E2M_DIAG_H
#define E2M_DIAG_H

#include <stddef.h>
#include <stdio.h>

struct node;

struct diag {
    char **lines;
    size_t n, cap;
};

void diag_init(struct diag *d);
void diag_free(struct diag *d);

// Records a problem at `n` (may be NULL for "whole file") in `file`. `key` is the dotted key
// path, e.g. "devices[1].options.poll_interval".
void diag_at(struct diag *d, const char *file, const struct node *n, const char *key,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
// Records a problem at an explicit position (line/column 1-based; 0 = unknown).
void diag_pos(struct diag *d, const char *file, unsigned line, unsigned col, const char *key,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static inline size_t diag_count(const struct diag *d)
{
    return d->n;
}
void diag_print(const struct diag *d, FILE *out);

#endif
