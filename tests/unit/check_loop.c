// SPDX-License-Identifier: MIT
// Unit tests for the event loop (core/loop) and device worker threads (core/worker): timer
// order, re-arming, posts from other threads, stopping, and job completion delivery.
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/worker.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct loop *loop;
static pthread_t loop_thread;
static struct timer guard_timer;
static bool guard_fired;

static void on_guard(void *arg)
{
    guard_fired = true;
    loop_stop(loop);
}

static void setup(void)
{
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    loop_thread = pthread_self();
    guard_timer = (struct timer){0};
    guard_fired = false;
}

static void teardown(void)
{
    loop_free(loop);
    loop = NULL;
}

// Runs the loop with a safety stop after `ms`; returns whether the safety stop fired.
static bool run_for(int64_t ms)
{
    guard_fired = false;
    loop_timer_set(loop, &guard_timer, loop_now(loop) + ms, on_guard, NULL);
    ck_assert_int_eq(loop_run(loop), 0);
    loop_timer_cancel(loop, &guard_timer);
    return guard_fired;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// ---- Timers -------------------------------------------------------------------------------

struct fired {
    int order[16];
    int n;
    int64_t late[16]; // loop_now() - due at firing
};

static struct fired fired;

struct tctx {
    int id;
    struct timer t;
    int stop_after; // stop the loop once this many timers have fired
};

static void on_timer(void *arg)
{
    struct tctx *c = arg;
    ck_assert(pthread_equal(pthread_self(), loop_thread));
    fired.late[fired.n] = loop_now(loop) - c->t.due_ms;
    fired.order[fired.n++] = c->id;
    ck_assert(!loop_timer_armed(&c->t)); // disarmed before its callback
    if (c->stop_after && fired.n >= c->stop_after)
        loop_stop(loop);
}

START_TEST(test_timers_fire_in_due_order)
{
    static const int delays[] = {30, 10, 50, 20, 40, 10};
    struct tctx c[N(delays)];
    memset(&fired, 0, sizeof(fired));
    int64_t now = loop_now(loop);
    for (size_t i = 0; i < N(delays); i++) {
        c[i] = (struct tctx){.id = (int)i, .stop_after = (int)N(delays)};
        loop_timer_set(loop, &c[i].t, now + delays[i], on_timer, &c[i]);
        ck_assert(loop_timer_armed(&c[i].t));
    }
    ck_assert(!run_for(2000));
    ck_assert_int_eq(fired.n, (int)N(delays));
    // Due order; the two at +10 in either order.
    ck_assert((fired.order[0] == 1 && fired.order[1] == 5) ||
              (fired.order[0] == 5 && fired.order[1] == 1));
    static const int rest[] = {3, 0, 4, 2};
    for (size_t i = 0; i < N(rest); i++)
        ck_assert_int_eq(fired.order[2 + i], rest[i]);
    for (int i = 0; i < fired.n; i++)
        ck_assert_msg(fired.late[i] >= 0, "timer %d fired %lld ms early", fired.order[i],
                      (long long)-fired.late[i]);
}
END_TEST

START_TEST(test_rearm_and_cancel)
{
    struct tctx a = {.id = 1}, b = {.id = 2}, c = {.id = 3, .stop_after = 1};
    memset(&fired, 0, sizeof(fired));
    int64_t now = loop_now(loop);
    loop_timer_set(loop, &a.t, now + 5, on_timer, &a);
    loop_timer_set(loop, &b.t, now + 10, on_timer, &b);
    loop_timer_set(loop, &c.t, now + 60, on_timer, &c);
    loop_timer_set(loop, &a.t, now + 40, on_timer, &a); // re-armed later: fires once, at +40
    loop_timer_cancel(loop, &b.t);
    ck_assert(!loop_timer_armed(&b.t));
    loop_timer_cancel(loop, &b.t); // cancelling twice is harmless
    struct timer never = {0};
    loop_timer_cancel(loop, &never); // so is cancelling one that was never armed
    ck_assert(!run_for(2000));
    ck_assert_int_eq(fired.n, 2);
    ck_assert_int_eq(fired.order[0], 1);
    ck_assert_int_eq(fired.order[1], 3);
    ck_assert(a.t.due_ms == now + 40);
    ck_assert(!loop_timer_armed(&a.t));
}
END_TEST

// Many timers armed and cancelled in a shuffled order keep the heap consistent.
START_TEST(test_heap_under_churn)
{
    enum { T = 64 };
    static struct tctx c[T];
    memset(&fired, 0, sizeof(fired));
    int64_t now = loop_now(loop);
    for (int i = 0; i < T; i++) {
        c[i] = (struct tctx){.id = i};
        loop_timer_set(loop, &c[i].t, now + 1000 + (i * 37) % T, on_timer, &c[i]);
    }
    // Cancel all but five, in a scattered order.
    for (int k = 0; k < T; k++) {
        int i = (k * 23) % T;
        if (i % 13 != 0)
            loop_timer_cancel(loop, &c[i].t);
    }
    // Bring the five survivors forward; they are 0, 13, 26, 39, 52.
    static const int keep[] = {52, 0, 39, 13, 26};
    for (size_t k = 0; k < N(keep); k++)
        loop_timer_set(loop, &c[keep[k]].t, now + 5 + (int64_t)k * 3, on_timer, &c[keep[k]]);
    c[keep[N(keep) - 1]].stop_after = (int)N(keep);
    ck_assert(!run_for(2000));
    ck_assert_int_eq(fired.n, (int)N(keep));
    for (size_t k = 0; k < N(keep); k++)
        ck_assert_int_eq(fired.order[k], keep[k]);
}
END_TEST

struct chain {
    struct timer t;
    int left;
    int runs;
};

static void on_chain(void *arg)
{
    struct chain *ch = arg;
    ch->runs++;
    if (--ch->left > 0)
        loop_timer_set(loop, &ch->t, loop_now(loop) + 2, on_chain, ch);
    else
        loop_stop(loop);
}

START_TEST(test_timer_set_from_callback)
{
    struct chain ch = {.left = 5};
    loop_timer_set(loop, &ch.t, loop_now(loop) + 1, on_chain, &ch);
    ck_assert(!run_for(2000));
    ck_assert_int_eq(ch.runs, 5);
    ck_assert(!loop_timer_armed(&ch.t));
}
END_TEST

static void on_stop(void *arg)
{
    int *n = arg;
    (*n)++;
    loop_stop(loop);
}

START_TEST(test_stop_from_timer_then_resume)
{
    int a = 0, b = 0;
    struct timer ta = {0}, tb = {0};
    int64_t now = loop_now(loop);
    loop_timer_set(loop, &ta, now + 1, on_stop, &a);
    loop_timer_set(loop, &tb, now + 2, on_stop, &b);
    sleep_ms(5); // both are due when the loop starts
    ck_assert(!run_for(2000));
    ck_assert_int_eq(a, 1);
    ck_assert_int_eq(b, 0); // the stop took effect before the next due timer
    ck_assert(loop_timer_armed(&tb));
    ck_assert(!run_for(2000));
    ck_assert_int_eq(b, 1);
}
END_TEST

// ---- Posts --------------------------------------------------------------------------------

enum { POSTERS = 4, POSTS = 1000 };

static int slots[POSTERS * POSTS];
static int total;
static atomic_int wrong_thread;

static void on_post(void *arg)
{
    int *slot = arg;
    if (!pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&wrong_thread, 1);
    (*slot)++;
    if (++total == POSTERS * POSTS)
        loop_stop(loop);
}

static void *poster(void *arg)
{
    int *base = arg;
    for (int i = 0; i < POSTS; i++) {
        if (loop_post(loop, on_post, &base[i]) != 0)
            abort();
        if (i % 100 == 0)
            sched_yield();
    }
    return NULL;
}

START_TEST(test_posts_from_threads_run_once_on_loop)
{
    memset(slots, 0, sizeof(slots));
    total = 0;
    atomic_store(&wrong_thread, 0);
    pthread_t th[POSTERS];
    for (int i = 0; i < POSTERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, poster, &slots[i * POSTS]), 0);
    bool timed_out = run_for(10000);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(!timed_out, "only %d of %d posts ran", total, POSTERS * POSTS);
    ck_assert_int_eq(total, POSTERS * POSTS);
    for (int i = 0; i < POSTERS * POSTS; i++)
        ck_assert_msg(slots[i] == 1, "post %d ran %d times", i, slots[i]);
    ck_assert_int_eq(atomic_load(&wrong_thread), 0);
}
END_TEST

static int seq[8], nseq;

static void on_seq(void *arg)
{
    seq[nseq++] = (int)(intptr_t)arg;
    if ((intptr_t)arg == 2)
        loop_stop(loop);
}

// A post that stops the loop leaves the later ones queued; the next run delivers them, in
// order, and new posts still wake the loop.
START_TEST(test_stop_from_post_keeps_the_rest)
{
    nseq = 0;
    for (intptr_t i = 1; i <= 4; i++)
        ck_assert_int_eq(loop_post(loop, on_seq, (void *)i), 0);
    ck_assert(!run_for(2000));
    ck_assert_int_eq(nseq, 2);
    ck_assert_int_eq(seq[0], 1);
    ck_assert_int_eq(seq[1], 2);
    ck_assert_int_eq(loop_post(loop, on_seq, (void *)(intptr_t)5), 0);
    run_for(300);
    ck_assert_msg(nseq == 5, "after the restart %d of 3 queued posts ran", nseq - 2);
    ck_assert_int_eq(seq[2], 3);
    ck_assert_int_eq(seq[3], 4);
    ck_assert_int_eq(seq[4], 5);
}
END_TEST

static int never_ran;

static void on_never(void *arg)
{
    never_ran++;
}

START_TEST(test_free_drops_unrun_posts)
{
    never_ran = 0;
    struct loop *l = loop_new();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(loop_post(l, on_never, NULL), 0);
    struct timer t = {0};
    loop_timer_set(l, &t, loop_now(l) + 100000, on_never, NULL);
    loop_free(l); // releases the queue (ASan would report a leak otherwise)
    ck_assert_int_eq(never_ran, 0);
    ck_assert(!loop_timer_armed(&t));
}
END_TEST

static int fd_events;

static void on_fd(void *arg, uint32_t events)
{
    int fd = *(int *)arg;
    char buf[16];
    ck_assert(events & EPOLLIN);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 3);
    fd_events++;
    loop_stop(loop);
}

START_TEST(test_watch_fd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fd_events = 0;
    ck_assert_int_eq(loop_watch(loop, p[0], EPOLLIN, on_fd, &p[0]), 0);
    ck_assert_int_eq(loop_watch(loop, -1, EPOLLIN, on_fd, NULL), -EBADF);
    ck_assert_int_eq(write(p[1], "abc", 3), 3);
    ck_assert(!run_for(2000));
    ck_assert_int_eq(fd_events, 1);
    loop_unwatch(loop, p[0]);
    ck_assert_int_eq(write(p[1], "abc", 3), 3);
    ck_assert(run_for(30)); // nothing wakes it now
    ck_assert_int_eq(fd_events, 1);
    close(p[0]);
    close(p[1]);
}
END_TEST

// ---- Workers ------------------------------------------------------------------------------

struct job {
    pthread_t job_thread, done_thread;
    atomic_int started, job_runs;
    int done_runs;
    bool stop_on_done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool release; // the job blocks until this is set
    bool block;
    int sleep_ms;
};

static void job_init(struct job *j)
{
    memset(j, 0, sizeof(*j));
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
}

static void job_destroy(struct job *j)
{
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
}

static void job_release(struct job *j)
{
    pthread_mutex_lock(&j->lock);
    j->release = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

static void run_job(void *arg)
{
    struct job *j = arg;
    j->job_thread = pthread_self();
    atomic_store(&j->started, 1);
    if (j->sleep_ms)
        sleep_ms(j->sleep_ms);
    pthread_mutex_lock(&j->lock);
    while (j->block && !j->release)
        pthread_cond_wait(&j->cond, &j->lock);
    pthread_mutex_unlock(&j->lock);
    atomic_fetch_add(&j->job_runs, 1);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    j->done_thread = pthread_self();
    j->done_runs++;
    if (j->stop_on_done)
        loop_stop(loop);
}

START_TEST(test_worker_runs_job_off_loop_and_done_on_loop)
{
    struct job j;
    job_init(&j);
    j.stop_on_done = true;
    struct worker *w = worker_new(loop);
    ck_assert_ptr_nonnull(w);
    ck_assert(!worker_busy(w));
    ck_assert_int_eq(worker_submit(w, run_job, job_done, &j), 0);
    ck_assert(!run_for(5000));
    ck_assert_int_eq(atomic_load(&j.job_runs), 1);
    ck_assert_int_eq(j.done_runs, 1);
    ck_assert(!pthread_equal(j.job_thread, loop_thread));
    ck_assert(pthread_equal(j.done_thread, loop_thread));
    ck_assert(!worker_busy(w));
    // The worker takes the next job.
    ck_assert_int_eq(worker_submit(w, run_job, job_done, &j), 0);
    ck_assert(!run_for(5000));
    ck_assert_int_eq(j.done_runs, 2);
    worker_free(w);
    job_destroy(&j);
}
END_TEST

START_TEST(test_worker_busy_refuses)
{
    struct job j, other;
    job_init(&j);
    job_init(&other);
    j.block = true;
    j.stop_on_done = true;
    struct worker *w = worker_new(loop);
    ck_assert_int_eq(worker_submit(w, run_job, job_done, &j), 0);
    ck_assert(worker_busy(w));
    ck_assert_int_eq(worker_submit(w, run_job, job_done, &other), -EBUSY);
    ck_assert(worker_busy(w));
    job_release(&j);
    ck_assert(!run_for(5000));
    ck_assert_int_eq(j.done_runs, 1);
    ck_assert_int_eq(atomic_load(&other.job_runs), 0);
    ck_assert_int_eq(other.done_runs, 0);
    ck_assert(!worker_busy(w));
    worker_free(w);
    job_destroy(&j);
    job_destroy(&other);
}
END_TEST

// The job finished and its completion is queued on the loop when the worker is freed: the
// owner of `arg` may be gone by then, so done must not run.
START_TEST(test_worker_free_drops_queued_completion)
{
    struct job j;
    job_init(&j);
    struct worker *w = worker_new(loop);
    ck_assert_int_eq(worker_submit(w, run_job, job_done, &j), 0);
    for (int i = 0; i < 5000 && worker_busy(w); i++)
        sleep_ms(1);
    ck_assert(!worker_busy(w));
    ck_assert_int_eq(atomic_load(&j.job_runs), 1);
    worker_free(w);
    run_for(50);
    ck_assert_msg(j.done_runs == 0, "done ran after worker_free");
    job_destroy(&j);
}
END_TEST

// The job is still running when the worker is freed: worker_free waits for it, and its
// completion is not delivered.
START_TEST(test_worker_free_waits_for_running_job)
{
    struct job j;
    job_init(&j);
    j.sleep_ms = 50;
    struct worker *w = worker_new(loop);
    ck_assert_int_eq(worker_submit(w, run_job, job_done, &j), 0);
    for (int i = 0; i < 5000 && !atomic_load(&j.started); i++)
        sleep_ms(1);
    ck_assert(atomic_load(&j.started));
    worker_free(w);
    ck_assert_int_eq(atomic_load(&j.job_runs), 1); // finished before worker_free returned
    run_for(50);
    ck_assert_int_eq(j.done_runs, 0);
    job_destroy(&j);
}
END_TEST

START_TEST(test_worker_free_idle)
{
    struct worker *w = worker_new(loop);
    ck_assert_ptr_nonnull(w);
    worker_free(w);
    worker_free(NULL);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("timers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_timers_fire_in_due_order);
    tcase_add_test(tc, test_rearm_and_cancel);
    tcase_add_test(tc, test_heap_under_churn);
    tcase_add_test(tc, test_timer_set_from_callback);
    tcase_add_test(tc, test_stop_from_timer_then_resume);
    suite_add_tcase(s, tc);

    TCase *pc = tcase_create("posts");
    tcase_add_checked_fixture(pc, setup, teardown);
    tcase_set_timeout(pc, 30);
    tcase_add_test(pc, test_posts_from_threads_run_once_on_loop);
    tcase_add_test(pc, test_stop_from_post_keeps_the_rest);
    tcase_add_test(pc, test_free_drops_unrun_posts);
    tcase_add_test(pc, test_watch_fd);
    suite_add_tcase(s, pc);

    TCase *wc = tcase_create("worker");
    tcase_add_checked_fixture(wc, setup, teardown);
    tcase_set_timeout(wc, 20);
    tcase_add_test(wc, test_worker_runs_job_off_loop_and_done_on_loop);
    tcase_add_test(wc, test_worker_busy_refuses);
    tcase_add_test(wc, test_worker_free_drops_queued_completion);
    tcase_add_test(wc, test_worker_free_waits_for_running_job);
    tcase_add_test(wc, test_worker_free_idle);
    suite_add_tcase(s, wc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
