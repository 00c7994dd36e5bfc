// SPDX-License-Identifier: MIT
// The TCP transport against real sockets on loopback.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "core/tcp.h"

// ---- a scripted server thread ---------------------------------------------------------------

enum script { S_ECHO_LINES, S_SEND_PIECES, S_CLOSE, S_FLOOD };

struct server {
    int listen_fd, port;
    enum script script;
    pthread_t thread;
    char got[256]; // what the client sent (S_ECHO_LINES)
};

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    switch (s->script) {
    case S_ECHO_LINES: {
        ssize_t n = read(fd, s->got, sizeof(s->got) - 1);
        if (n > 0) {
            s->got[n] = '\0';
            ssize_t w = write(fd, s->got, (size_t)n);
            (void)w;
        }
        usleep(200000);
        break;
    }
    case S_SEND_PIECES: {
        // Two frames "one\n" "two\n", delivered as "o", "ne\ntw", "o\n".
        const char *pieces[] = {"o", "ne\ntw", "o\n"};
        for (int i = 0; i < 3; i++) {
            ssize_t w = write(fd, pieces[i], strlen(pieces[i]));
            (void)w;
            usleep(30000);
        }
        usleep(200000);
        break;
    }
    case S_CLOSE: break;
    case S_FLOOD: {
        char junk[64];
        memset(junk, 'x', sizeof(junk));
        ssize_t w = write(fd, junk, sizeof(junk));
        (void)w;
        usleep(300000);
        break;
    }
    }
    close(fd);
    return NULL;
}

static void server_start(struct server *s, enum script script)
{
    memset(s, 0, sizeof(*s));
    s->script = script;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(s->listen_fd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    listen(s->listen_fd, 1);
    pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    close(s->listen_fd);
    pthread_join(s->thread, NULL);
}

// ---- the client side ------------------------------------------------------------------------

static struct loop *loop;
static struct tcp *conn;
static int connected, closes;
static char closed_why[256];
static char frames[8][32];
static int n_frames;
static bool close_in_data, consume_nothing;
static struct timer stop_timer;

static void on_connected(void *arg)
{
    (void)arg;
    connected++;
}

static size_t on_data(void *arg, const uint8_t *buf, size_t len)
{
    (void)arg;
    if (close_in_data) {
        tcp_close(conn);
        return 0;
    }
    if (consume_nothing)
        return 0;
    const uint8_t *nl = memchr(buf, '\n', len);
    if (!nl)
        return 0; // need more
    size_t n = (size_t)(nl - buf);
    if (n_frames < 8)
        snprintf(frames[n_frames++], sizeof(frames[0]), "%.*s", (int)n, (const char *)buf);
    return n + 1;
}

static void on_closed(void *arg, const char *why)
{
    (void)arg;
    closes++;
    snprintf(closed_why, sizeof(closed_why), "%s", why);
    loop_stop(loop);
}

static void stop(void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void run_for(int ms)
{
    loop_timer_set(loop, &stop_timer, clock_mono_ms() + ms, stop, NULL);
    loop_run(loop);
    loop_timer_cancel(loop, &stop_timer);
}

static void setup(void)
{
    loop = loop_new();
    struct tcp_handlers h = {on_connected, on_data, on_closed, NULL};
    conn = tcp_new(loop, &h, 16);
    connected = closes = n_frames = 0;
    closed_why[0] = '\0';
    close_in_data = consume_nothing = false;
}

static void teardown(void)
{
    tcp_free(conn);
    loop_free(loop);
}

START_TEST(test_frames_in_pieces)
{
    struct server s;
    server_start(&s, S_SEND_PIECES);
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", s.port, 1000), 0);
    ck_assert_int_eq(tcp_state(conn), TCP_CONNECTING);
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", s.port, 1000), -EBUSY);
    run_for(400);
    ck_assert_int_eq(connected, 1);
    ck_assert_int_eq(n_frames, 2);
    ck_assert_str_eq(frames[0], "one");
    ck_assert_str_eq(frames[1], "two");
    server_stop(&s);
}
END_TEST

START_TEST(test_send_and_name_lookup)
{
    struct server s;
    server_start(&s, S_ECHO_LINES);
    ck_assert_int_eq(tcp_send(conn, "x", 1), -ENOTCONN);
    ck_assert_int_eq(tcp_open(conn, "localhost", s.port, 2000), 0); // through the lookup thread
    while (!connected && !closes)
        run_for(20);
    ck_assert_int_eq(connected, 1);
    ck_assert_int_eq(tcp_state(conn), TCP_OPEN);
    ck_assert_int_eq(tcp_send(conn, "ping\n", 5), 0);
    run_for(150);
    ck_assert_str_eq(s.got, "ping\n");
    ck_assert_int_eq(n_frames, 1);
    ck_assert_str_eq(frames[0], "ping");
    server_stop(&s);
}
END_TEST

START_TEST(test_refused)
{
    struct server s;
    server_start(&s, S_CLOSE);
    int port = s.port;
    server_stop(&s); // nothing listens any more
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", port, 1000), 0);
    run_for(1000);
    ck_assert_int_eq(closes, 1);
    ck_assert_str_eq(closed_why, "Connection refused");
    ck_assert_int_eq(tcp_state(conn), TCP_CLOSED);
}
END_TEST

START_TEST(test_timeout)
{
    struct server s;
    server_start(&s, S_CLOSE);
    // A zero timeout fires before the connect can complete (timers run first).
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", s.port, 0), 0);
    run_for(500);
    ck_assert_int_eq(closes, 1);
    ck_assert_str_eq(closed_why, "connection timed out");
    ck_assert_int_eq(connected, 0);
    server_stop(&s);
}
END_TEST

START_TEST(test_unresolvable)
{
    ck_assert_int_eq(tcp_open(conn, "no-such-host.invalid", 1, 5000), 0);
    while (!closes)
        run_for(50);
    ck_assert_ptr_nonnull(strstr(closed_why, "cannot resolve no-such-host.invalid"));
}
END_TEST

START_TEST(test_peer_closes)
{
    struct server s;
    server_start(&s, S_CLOSE);
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", s.port, 1000), 0);
    run_for(1000);
    ck_assert_int_eq(connected, 1);
    ck_assert_str_eq(closed_why, "connection closed by the peer");
    server_stop(&s);
}
END_TEST

START_TEST(test_receive_buffer_full)
{
    struct server s;
    server_start(&s, S_FLOOD);
    consume_nothing = true; // 64 bytes never form a frame, the buffer holds 16
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", s.port, 1000), 0);
    run_for(1000);
    ck_assert_ptr_nonnull(strstr(closed_why, "receive buffer full"));
    server_stop(&s);
}
END_TEST

START_TEST(test_close_inside_handler)
{
    struct server s;
    server_start(&s, S_SEND_PIECES);
    close_in_data = true;
    ck_assert_int_eq(tcp_open(conn, "127.0.0.1", s.port, 1000), 0);
    run_for(400);
    ck_assert_int_eq(connected, 1);
    ck_assert_int_eq(closes, 0); // tcp_close() calls no handler
    ck_assert_int_eq(tcp_state(conn), TCP_CLOSED);
    server_stop(&s);
}
END_TEST

START_TEST(test_free_during_lookup)
{
    ck_assert_int_eq(tcp_open(conn, "localhost", 9, 5000), 0);
    tcp_free(conn); // the lookup thread's result must be dropped, not delivered
    conn = NULL;
    run_for(300);
    ck_assert_int_eq(closes, 0);
    struct tcp_handlers h = {on_connected, on_data, on_closed, NULL};
    conn = tcp_new(loop, &h, 16);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN); // the in-process server writes to clients that may be gone
    Suite *s = suite_create("tcp");
    TCase *tc = tcase_create("tcp");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 15);
    tcase_add_test(tc, test_frames_in_pieces);
    tcase_add_test(tc, test_send_and_name_lookup);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_unresolvable);
    tcase_add_test(tc, test_peer_closes);
    tcase_add_test(tc, test_receive_buffer_full);
    tcase_add_test(tc, test_close_inside_handler);
    tcase_add_test(tc, test_free_during_lookup);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
