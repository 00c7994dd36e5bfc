// SPDX-License-Identifier: MIT
// A worker thread for one device whose library blocks (libmodbus): it runs one job at a time
// and reports completion on the loop thread.
#ifndef E2M_WORKER_H
#define E2M_WORKER_H

#include <stdbool.h>

#include "core/loop.h"

struct worker;

// Starts the thread. Returns NULL on failure (logged by the caller).
struct worker *worker_new(struct loop *l);
// Stops and joins the thread; a job in progress finishes first (bounded by the device's
// timeouts). A completion not yet delivered never will be: done() is not called after this.
void worker_free(struct worker *w);
// Runs job(arg) on the worker, then done(arg) on the loop. Only one job at a time: returns
// -EBUSY while one is running or its completion has not been delivered yet.
int worker_submit(struct worker *w, loop_fn job, loop_fn done, void *arg);
bool worker_busy(const struct worker *w);

#endif
