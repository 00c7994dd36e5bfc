// SPDX-License-Identifier: MIT
// The modbus driver against a real libmodbus server in a thread: every table, every write
// path (FC5, FC6, FC16, read-modify-write of a bit), exceptions, refused connections,
// timeouts and reconnection, settings checks, and the decode command.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/model.h"
#include "drivers/driver.h"

extern const struct driver_ops modbus_driver;

enum { T_HOLDING, T_INPUT, T_COIL, T_DISCRETE };

// ---- the server -----------------------------------------------------------------------------

struct server {
    int port;
    modbus_t *ctx;
    modbus_mapping_t *map;
    int listen_fd;
    pthread_t thread;
    atomic_bool quit;
    atomic_bool stall;        // read requests but never answer
    atomic_int last_function; // function code of the last request
    atomic_int requests;
    atomic_int accepts;
};

static struct server srv;

static void *serve(void *arg)
{
    (void)arg;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!atomic_load(&srv.quit)) {
        struct pollfd p = {srv.listen_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv.listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&srv.accepts, 1);
        modbus_set_socket(srv.ctx, fd);
        while (!atomic_load(&srv.quit)) {
            struct pollfd c = {fd, POLLIN, 0};
            if (poll(&c, 1, 50) <= 0)
                continue;
            int n = modbus_receive(srv.ctx, query);
            if (n < 0)
                break; // client gone
            if (n == 0)
                continue;
            atomic_fetch_add(&srv.requests, 1);
            atomic_store(&srv.last_function, query[modbus_get_header_length(srv.ctx)]);
            if (atomic_load(&srv.stall))
                continue;
            modbus_reply(srv.ctx, query, n, srv.map);
        }
        close(fd);
    }
    return NULL;
}

static void server_start(void)
{
    memset(&srv, 0, sizeof(srv));
    srv.map = modbus_mapping_new(100, 100, 100, 100);
    for (int i = 0; i < 100; i++) {
        srv.map->tab_registers[i] = (uint16_t)(1000 + i);
        srv.map->tab_input_registers[i] = (uint16_t)(2000 + i);
        srv.map->tab_bits[i] = (uint8_t)(i % 3 == 0);
        srv.map->tab_input_bits[i] = (uint8_t)(i % 2);
    }
    srv.ctx = modbus_new_tcp("127.0.0.1", 0);
    srv.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(srv.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(srv.listen_fd, (struct sockaddr *)&a, &len);
    srv.port = ntohs(a.sin_port);
    listen(srv.listen_fd, 4);
    pthread_create(&srv.thread, NULL, serve, NULL);
}

static void server_stop(void)
{
    atomic_store(&srv.quit, true);
    pthread_join(srv.thread, NULL);
    close(srv.listen_fd);
    modbus_free(srv.ctx);
    modbus_mapping_free(srv.map);
}

// ---- a driver instance ----------------------------------------------------------------------

struct inst {
    struct arena *a;
    struct params settings, core, options;
    struct drv_device dev;
    void *state;
    struct drv_result *res;
};

static void set_value(struct params *p, const char *name, const char *s, long long i)
{
    const struct param_def *d = params_find(p->defs, p->n, name);
    ck_assert_ptr_nonnull(d);
    struct param_value *v = &p->v[d - p->defs];
    v->set = true;
    v->s = s;
    v->i = i;
    v->ms = i;
}

static void inst_open_unit(struct inst *x, int port, bool force_multiple, int unit);

static void inst_open(struct inst *x, int port, bool force_multiple)
{
    inst_open_unit(x, port, force_multiple, 1);
}

static void inst_open_unit(struct inst *x, int port, bool force_multiple, int unit)
{
    memset(x, 0, sizeof(*x));
    x->a = arena_new();
    params_init(&x->settings, x->a, modbus_driver.settings, modbus_driver.n_settings);
    params_init(&x->core, x->a, core_option_defs, n_core_option_defs);
    params_init(&x->options, x->a, modbus_driver.options, modbus_driver.n_options);
    set_value(&x->settings, "host", "127.0.0.1", 0);
    set_value(&x->settings, "port", NULL, port);
    set_value(&x->settings, "unit_id", NULL, unit);
    set_value(&x->core, "connect_timeout", NULL, 500);
    set_value(&x->core, "reply_timeout", NULL, 300);
    if (force_multiple)
        set_value(&x->options, "write_function", NULL, 2);
    x->dev = (struct drv_device){"test", &x->settings, &x->core, &x->options};
    char err[128];
    ck_assert_int_eq(modbus_driver.check(&x->dev, err, sizeof(err)), 0);
    ck_assert_int_eq(modbus_driver.open(&x->dev, &x->state), 0);
    x->res = xcalloc(1, sizeof(*x->res));
    x->res->regs = xcalloc(DRV_MAX_READ, sizeof(uint16_t));
}

static void inst_close(struct inst *x)
{
    modbus_driver.close(x->state);
    free(x->res->regs);
    free(x->res);
    arena_free(x->a);
}

static enum drv_status run(struct inst *x, struct drv_job job)
{
    modbus_driver.run(x->state, &job, x->res);
    return x->res->status;
}

static struct drv_job read_job(int table, uint32_t addr, uint16_t count)
{
    return (struct drv_job){
        .type = DRV_JOB_READ, .table = (uint8_t)table, .address = addr, .count = count, .bit = -1};
}

// ---- tests ----------------------------------------------------------------------------------

START_TEST(test_reads_every_table)
{
    struct inst x;
    inst_open(&x, srv.port, false);
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 10, 5)), DRV_OK);
    ck_assert_uint_eq(x.res->count, 5);
    ck_assert_uint_eq(x.res->regs[0], 1010);
    ck_assert_uint_eq(x.res->regs[4], 1014);
    ck_assert_int_eq(atomic_load(&srv.last_function), 3);
    ck_assert_int_eq(run(&x, read_job(T_INPUT, 0, 3)), DRV_OK);
    ck_assert_uint_eq(x.res->regs[2], 2002);
    ck_assert_int_eq(atomic_load(&srv.last_function), 4);
    ck_assert_int_eq(run(&x, read_job(T_COIL, 0, 7)), DRV_OK);
    ck_assert_uint_eq(x.res->count, 7);
    ck_assert_uint_eq(x.res->regs[0], 1); // bits come back as 0/1 per address
    ck_assert_uint_eq(x.res->regs[1], 0);
    ck_assert_uint_eq(x.res->regs[6], 1);
    ck_assert_int_eq(atomic_load(&srv.last_function), 1);
    ck_assert_int_eq(run(&x, read_job(T_DISCRETE, 1, 4)), DRV_OK);
    ck_assert_uint_eq(x.res->regs[0], 1);
    ck_assert_uint_eq(x.res->regs[1], 0);
    ck_assert_int_eq(atomic_load(&srv.last_function), 2);
    inst_close(&x);
}
END_TEST

START_TEST(test_write_paths)
{
    struct inst x;
    inst_open(&x, srv.port, false);
    // One register: FC6.
    struct drv_job j = {.type = DRV_JOB_WRITE,
                        .table = T_HOLDING,
                        .address = 20,
                        .count = 1,
                        .regs = {4242},
                        .bit = -1};
    ck_assert_int_eq(run(&x, j), DRV_OK);
    ck_assert_int_eq(atomic_load(&srv.last_function), 6);
    ck_assert_uint_eq(srv.map->tab_registers[20], 4242);
    // Two registers (a float32): FC16.
    j = (struct drv_job){.type = DRV_JOB_WRITE,
                         .table = T_HOLDING,
                         .address = 30,
                         .count = 2,
                         .regs = {0x4366, 0x8000},
                         .bit = -1};
    ck_assert_int_eq(run(&x, j), DRV_OK);
    ck_assert_int_eq(atomic_load(&srv.last_function), 16);
    ck_assert_uint_eq(srv.map->tab_registers[30], 0x4366);
    ck_assert_uint_eq(srv.map->tab_registers[31], 0x8000);
    // A coil: FC5.
    j = (struct drv_job){
        .type = DRV_JOB_WRITE, .table = T_COIL, .address = 1, .count = 1, .regs = {1}, .bit = -1};
    ck_assert_int_eq(run(&x, j), DRV_OK);
    ck_assert_int_eq(atomic_load(&srv.last_function), 5);
    ck_assert_uint_eq(srv.map->tab_bits[1], 1);
    // One bit of a register: read (FC3), change, write back; the other bits survive.
    srv.map->tab_registers[40] = 0x00F0;
    j = (struct drv_job){.type = DRV_JOB_WRITE,
                         .table = T_HOLDING,
                         .address = 40,
                         .count = 1,
                         .bit = 3,
                         .bit_on = true};
    regmap_format_init(&j.bit_format, REG_U16, 0);
    j.bit_format.bit = 3;
    int before = atomic_load(&srv.requests);
    ck_assert_int_eq(run(&x, j), DRV_OK);
    ck_assert_int_eq(atomic_load(&srv.requests) - before, 2);
    ck_assert_uint_eq(srv.map->tab_registers[40], 0x00F8);
    j.bit = 4;
    j.bit_format.bit = 4;
    j.bit_on = false;
    ck_assert_int_eq(run(&x, j), DRV_OK);
    ck_assert_uint_eq(srv.map->tab_registers[40], 0x00E8);
    inst_close(&x);
}
END_TEST

START_TEST(test_write_function_multiple)
{
    struct inst x;
    inst_open(&x, srv.port, true);
    struct drv_job j = {.type = DRV_JOB_WRITE,
                        .table = T_HOLDING,
                        .address = 21,
                        .count = 1,
                        .regs = {7},
                        .bit = -1};
    ck_assert_int_eq(run(&x, j), DRV_OK);
    ck_assert_int_eq(atomic_load(&srv.last_function), 16); // FC16 even for one register
    ck_assert_uint_eq(srv.map->tab_registers[21], 7);
    inst_close(&x);
}
END_TEST

START_TEST(test_exception_keeps_connection)
{
    struct inst x;
    inst_open(&x, srv.port, false);
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 95, 10)), DRV_ERR_EXCEPTION);
    ck_assert_int_eq(x.res->code, 2); // illegal data address
    ck_assert_ptr_nonnull(strstr(x.res->detail, "read"));
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 0, 1)), DRV_OK);
    inst_close(&x);
}
END_TEST

START_TEST(test_refused_connection)
{
    server_stop(); // nothing listens on the port now
    struct inst x;
    inst_open(&x, srv.port, false);
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 0, 1)), DRV_ERR_CONNECT);
    ck_assert_ptr_nonnull(strstr(x.res->detail, "cannot connect"));
    inst_close(&x);
    server_start(); // for the teardown
}
END_TEST

// libmodbus waits with select(): a socket numbered FD_SETSIZE or above would abort the
// process inside libmodbus. With every lower descriptor taken, the connection is refused with
// the reason instead. The peer is a bare listening socket (the kernel completes the handshake),
// so no libmodbus server has to take a high descriptor either.
START_TEST(test_descriptor_beyond_select_refused)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < FD_SETSIZE + 64) {
        rl.rlim_cur = FD_SETSIZE + 64;
        ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0, "cannot raise the descriptor limit");
    }
    int peer = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(peer, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(peer, 4), 0);
    getsockname(peer, (struct sockaddr *)&a, &len);

    int *held = xcalloc(FD_SETSIZE, sizeof(int));
    int n = 0, fd;
    while ((fd = dup(0)) >= 0 && fd < FD_SETSIZE)
        held[n++] = fd;
    ck_assert_int_ge(fd, FD_SETSIZE);
    close(fd);
    struct inst x;
    inst_open(&x, ntohs(a.sin_port), false);
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 0, 1)), DRV_ERR_CONNECT);
    ck_assert_msg(strstr(x.res->detail, "beyond libmodbus"), "%s", x.res->detail);
    inst_close(&x);
    while (n > 0)
        close(held[--n]);
    free(held);
    close(peer);
}
END_TEST

START_TEST(test_timeout_then_reconnect)
{
    struct inst x;
    inst_open(&x, srv.port, false);
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 0, 1)), DRV_OK);
    atomic_store(&srv.stall, true);
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 0, 1)), DRV_ERR_TIMEOUT);
    atomic_store(&srv.stall, false);
    // The connection was closed after the timeout, so a late reply cannot be mistaken for
    // the answer to the next request; the next job reconnects.
    ck_assert_int_eq(run(&x, read_job(T_HOLDING, 5, 1)), DRV_OK);
    ck_assert_uint_eq(x.res->regs[0], 1005);
    inst_close(&x);
}
END_TEST

START_TEST(test_settings_checks)
{
    struct arena *a = arena_new();
    struct params s, c, o;
    params_init(&s, a, modbus_driver.settings, modbus_driver.n_settings);
    params_init(&c, a, core_option_defs, n_core_option_defs);
    params_init(&o, a, modbus_driver.options, modbus_driver.n_options);
    struct drv_device dev = {"t", &s, &c, &o};
    char err[160];
    ck_assert_int_eq(modbus_driver.check(&dev, err, sizeof(err)), -EINVAL); // neither
    set_value(&s, "host", "h", 0);
    set_value(&s, "device", "/dev/ttyUSB0", 0);
    ck_assert_int_eq(modbus_driver.check(&dev, err, sizeof(err)), -EINVAL); // both
    ck_assert_ptr_nonnull(strstr(err, "exactly one"));
    s.v[params_find(s.defs, s.n, "host") - s.defs].set = false;
    set_value(&s, "unit_id", NULL, 0);
    ck_assert_int_eq(modbus_driver.check(&dev, err, sizeof(err)), -EINVAL); // RTU broadcast
    ck_assert_ptr_nonnull(strstr(err, "1-247"));
    set_value(&s, "unit_id", NULL, 17);
    ck_assert_int_eq(modbus_driver.check(&dev, err, sizeof(err)), 0);
    arena_free(a);
}
END_TEST

// Two units behind one gateway share one connection, and jobs from two worker threads take
// turns on it instead of interleaving on the wire.
struct hammer {
    struct inst *x;
    int failures;
};

static void *hammer_run(void *p)
{
    struct hammer *h = p;
    struct drv_result *res = xcalloc(1, sizeof(*res));
    uint16_t regs[DRV_MAX_READ];
    res->regs = regs;
    for (int i = 0; i < 200; i++) {
        struct drv_job j = read_job(T_HOLDING, (uint32_t)(i % 50), 10);
        modbus_driver.run(h->x->state, &j, res);
        if (res->status != DRV_OK || res->regs[0] != 1000 + i % 50)
            h->failures++;
    }
    free(res);
    return NULL;
}

START_TEST(test_shared_bus)
{
    struct inst a, b;
    inst_open_unit(&a, srv.port, false, 1);
    inst_open_unit(&b, srv.port, false, 2);
    struct hammer ha = {&a, 0}, hb = {&b, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, hammer_run, &ha);
    pthread_create(&tb, NULL, hammer_run, &hb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(ha.failures, 0);
    ck_assert_int_eq(hb.failures, 0);
    ck_assert_int_eq(atomic_load(&srv.accepts), 1); // one connection for both devices
    inst_close(&a);
    inst_close(&b);
}
END_TEST

START_TEST(test_conflicts)
{
    struct arena *a = arena_new();
    struct params s1, s2, c, o;
    params_init(&s1, a, modbus_driver.settings, modbus_driver.n_settings);
    params_init(&s2, a, modbus_driver.settings, modbus_driver.n_settings);
    params_init(&c, a, core_option_defs, n_core_option_defs);
    params_init(&o, a, modbus_driver.options, modbus_driver.n_options);
    struct drv_device d1 = {"one", &s1, &c, &o}, d2 = {"two", &s2, &c, &o};
    char err[200];
    set_value(&s1, "device", "/dev/ttyUSB0", 0);
    set_value(&s2, "device", "/dev/ttyUSB0", 0);
    ck_assert_int_eq(modbus_driver.conflict(&d1, &d2, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "configured twice"));
    set_value(&s2, "unit_id", NULL, 2); // two slaves on one bus: fine
    ck_assert_int_eq(modbus_driver.conflict(&d1, &d2, err, sizeof(err)), 0);
    set_value(&s2, "baud", NULL, 19200); // but not at different speeds
    ck_assert_int_eq(modbus_driver.conflict(&d1, &d2, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "same baud"));
    set_value(&s2, "device", "/dev/ttyUSB1", 0); // another port: anything goes
    ck_assert_int_eq(modbus_driver.conflict(&d1, &d2, err, sizeof(err)), 0);
    arena_free(a);
}
END_TEST

static const struct {
    const char *hex, *json;
} decodes[] = {
    {"000100000006010300000002", "{\"framing\":\"tcp\",\"transaction\":1,\"unit\":1,\"function\":3,"
                                 "\"function_name\":\"read_holding_registers\",\"address\":0,"
                                 "\"count\":2,\"kind\":\"request\"}\n"},
    // RTU response with a correct CRC (computed for 01 03 04 43 66 80 00).
    {"010304436680006E68", "{\"framing\":\"rtu\",\"unit\":1,\"crc_ok\":true,\"function\":3,"
                           "\"function_name\":\"read_holding_registers\",\"byte_count\":4,"
                           "\"kind\":\"response\",\"values\":[17254,32768]}\n"},
    // An RTU request that looks like an MBAP header (zeros where the protocol id goes): the
    // valid CRC makes it RTU.
    {"01040000000271CB", "{\"framing\":\"rtu\",\"unit\":1,\"crc_ok\":true,\"function\":4,"
                         "\"function_name\":\"read_input_registers\",\"address\":0,"
                         "\"count\":2,\"kind\":\"request\"}\n"},
    {"0002000000030183 02", "{\"framing\":\"tcp\",\"transaction\":2,\"unit\":1,\"function\":3,"
                            "\"function_name\":\"read_holding_registers\",\"kind\":\"exception\","
                            "\"exception\":2,\"exception_name\":\"illegal_data_address\"}\n"},
};

START_TEST(test_decode)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char err[128];
    ck_assert_int_eq(modbus_driver.decode(decodes[_i].hex, out, err, sizeof(err)), 0);
    fclose(out);
    ck_assert_str_eq(buf, decodes[_i].json);
    free(buf);
}
END_TEST

START_TEST(test_decode_errors)
{
    FILE *out = fopen("/dev/null", "w");
    char err[128];
    ck_assert_int_eq(modbus_driver.decode("01 0", out, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(modbus_driver.decode("zz", out, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(modbus_driver.decode("0103", out, err, sizeof(err)), -EINVAL);
    fclose(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("modbus");
    TCase *tc = tcase_create("driver");
    tcase_add_checked_fixture(tc, server_start, server_stop);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_reads_every_table);
    tcase_add_test(tc, test_write_paths);
    tcase_add_test(tc, test_write_function_multiple);
    tcase_add_test(tc, test_exception_keeps_connection);
    tcase_add_test(tc, test_refused_connection);
    tcase_add_test(tc, test_descriptor_beyond_select_refused);
    tcase_add_test(tc, test_timeout_then_reconnect);
    tcase_add_test(tc, test_shared_bus);
    suite_add_tcase(s, tc);
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, test_settings_checks);
    tcase_add_test(pure, test_conflicts);
    tcase_add_loop_test(pure, test_decode, 0, sizeof(decodes) / sizeof(decodes[0]));
    tcase_add_test(pure, test_decode_errors);
    suite_add_tcase(s, pure);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
