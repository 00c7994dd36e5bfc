// SPDX-License-Identifier: MIT
// Self-test of e2m-modbus-sim: starts it, talks to it with a plain libmodbus client, checks it.
//
// usage: sim_selftest [--wrapper "valgrind ..."] <path-to-e2m-modbus-sim> <scenario>
// Each scenario starts its own simulator, ends it with SIGTERM and requires exit status 0, so
// every run also checks the clean shutdown. Exit status: 0 pass, 1 fail, 2 usage.
#include "selftest_child.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

// Starts the simulator and returns its TCP ports (up to `max`).
static int sim_start_tcp(struct child *c, const char *sim, const char *const *args, int *ports,
                         int max)
{
    char line[SELFTEST_LINE_MAX];
    child_start(c, sim, args);
    child_expect(c, "ready tcp ", 5000, line);
    int n = 0;
    char *save = NULL;
    strtok_r(line, " ", &save);
    strtok_r(NULL, " ", &save);
    for (char *t = strtok_r(NULL, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save)) {
        ports[n++] = atoi(t);
    }
    CHECK(n > 0, "no port in ready line");
    return n;
}

// ---- Client helpers ---------------------------------------------------------------------

static modbus_t *tcp_client(int port, int unit)
{
    modbus_t *m = modbus_new_tcp("127.0.0.1", port);
    CHECK(m, "modbus_new_tcp");
    modbus_set_slave(m, unit);
    modbus_set_response_timeout(m, (uint32_t)selftest.slow, 0);
    CHECK(modbus_connect(m) == 0, "connect to port %d: %s", port, modbus_strerror(errno));
    return m;
}

static void client_free(modbus_t *m)
{
    modbus_close(m);
    modbus_free(m);
}

static float reg_float(const uint16_t *r)
{
    uint32_t u = (uint32_t)r[0] << 16 | r[1];
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static void float_regs(float f, uint16_t *r)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    r[0] = (uint16_t)(u >> 16);
    r[1] = (uint16_t)u;
}

static float read_input_float(modbus_t *m, int address)
{
    uint16_t r[2];
    CHECK(modbus_read_input_registers(m, address, 2, r) == 2, "read input 0x%04X: %s", address,
          modbus_strerror(errno));
    return reg_float(r);
}

static int read_holding(modbus_t *m, int address)
{
    uint16_t r;
    CHECK(modbus_read_registers(m, address, 1, &r) == 1, "read holding %d: %s", address,
          modbus_strerror(errno));
    return r;
}

// Requires that the last call failed with Modbus exception `code`.
static void expect_exception(int rc, int code, const char *what)
{
    int err = errno;
    CHECK(rc == -1, "%s: expected exception %d, got success", what, code);
    CHECK(err == (int)MODBUS_ENOBASE + code, "%s: expected exception %d, got '%s'", what, code,
          modbus_strerror(err));
}

// ---- Scenarios --------------------------------------------------------------------------

static void test_sdm630(const char *sim)
{
    struct child c;
    int port;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--profile", "sdm630", "--tick", "100", NULL};
    sim_start_tcp(&c, sim, args, &port, 1);
    modbus_t *m = tcp_client(port, 1);

    for (int i = 0; i < 3; i++) {
        float v = read_input_float(m, 2 * i);
        CHECK(v > 227.9f && v < 232.1f, "L%d voltage %f not ~230 V", i + 1, v);
    }
    float hz = read_input_float(m, 0x46);
    CHECK(hz > 49.94f && hz < 50.06f, "frequency %f", hz);
    float p = read_input_float(m, 0x34), p1 = read_input_float(m, 0x0C);
    CHECK(fabsf(p) < 10000 && fabsf(p1) < 10000, "powers %f %f", p, p1);

    // The meter answers up to 80 registers and fills gaps with zeros; more is exception 3,
    // outside its block exception 2.
    uint16_t r[125];
    CHECK(modbus_read_input_registers(m, 0, 80, r) == 80, "read 80: %s", modbus_strerror(errno));
    CHECK(r[0x44] == 0 && r[0x45] == 0, "gap 0x44 not zero");
    CHECK(reg_float(&r[0x46]) > 49.9f, "frequency in a block read");
    expect_exception(modbus_read_input_registers(m, 0, 81, r), 3, "read 81 registers");
    expect_exception(modbus_read_input_registers(m, 0x180, 2, r), 2, "read past the block");
    expect_exception(modbus_read_registers(m, 0x40, 2, r), 2, "holding read past the block");

    // Energy counters only rise.
    float e0 = read_input_float(m, 0x48) + read_input_float(m, 0x4A);
    sleep_ms(400);
    float e1 = read_input_float(m, 0x48) + read_input_float(m, 0x4A);
    CHECK(e1 >= e0 && e0 > 0, "energy went from %f to %f", e0, e1);
    float tot = read_input_float(m, 0x156);
    CHECK(tot > 0, "total energy %f", tot);

    // The counters integrate the power registers: 5000 W for 3.6 s is 5 Wh of import, and
    // -3000 W for 3.6 s is 3 Wh of export.
    child_cmd(&c, "freeze");
    child_cmd(&c, "set 0 input 0x34 float32 5000");
    float imp0 = read_input_float(m, 0x48), exp0 = read_input_float(m, 0x4A);
    child_cmd(&c, "step 36");
    float imp1 = read_input_float(m, 0x48), exp1 = read_input_float(m, 0x4A);
    CHECK(fabsf(imp1 - imp0 - 0.005f) < 0.0004f && exp1 == exp0, "import %f -> %f, export %f -> %f",
          imp0, imp1, exp0, exp1);
    child_cmd(&c, "set 0 input 0x34 float32 -3000");
    child_cmd(&c, "step 36");
    float imp2 = read_input_float(m, 0x48), exp2 = read_input_float(m, 0x4A);
    CHECK(imp2 == imp1 && fabsf(exp2 - exp1 - 0.003f) < 0.0004f, "export %f -> %f", exp1, exp2);
    child_cmd(&c, "thaw 0 input 0x34 float32");
    child_cmd(&c, "run");

    // Pinning a register through the control channel is what the client reads.
    child_cmd(&c, "set 0 input 0x0000 float32 241.5");
    sleep_ms(250);
    CHECK(read_input_float(m, 0) == 241.5f, "set voltage not seen");
    CHECK(strcmp(child_cmd(&c, "get 0 input 0 float32"), "241.5") == 0, "get after set");

    // Holding parameters: FC16 writes of allowed values stick and are reported.
    CHECK(modbus_read_registers(m, 2, 2, r) == 2 && reg_float(r) == 60.0f, "demand period");
    float_regs(15.0f, r);
    CHECK(modbus_write_registers(m, 2, 2, r) == 2, "write demand period: %s",
          modbus_strerror(errno));
    child_expect(&c, "write ", 2000, line);
    char want[128];
    snprintf(want, sizeof(want), "write %d holding 2 2 %u %u", port, r[0], r[1]);
    CHECK(strcmp(line, want) == 0, "write line '%s', want '%s'", line, want);
    sleep_ms(250);
    CHECK(modbus_read_registers(m, 2, 2, r) == 2 && reg_float(r) == 15.0f, "period readback");
    float_regs(7.0f, r);
    expect_exception(modbus_write_registers(m, 2, 2, r), 3, "demand period 7");
    float_regs(2.0f, r);
    CHECK(modbus_write_registers(m, 0x0A, 2, r) == 2, "system type 2");
    child_expect(&c, "write ", 2000, line);
    expect_exception(modbus_write_register(m, 2, 0), 1, "FC6 on the meter");
    expect_exception(modbus_write_registers(m, 0x14, 2, r), 2, "write a read-only parameter");
    CHECK(strcmp(child_cmd(&c, "get 0 holding 0x0A float32"), "2") == 0, "system type get");

    client_free(m);
    child_stop(&c);
}

static void test_sunspec(const char *sim)
{
    struct child c;
    int port;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--profile", "sunspec", "--tick", "1000", "--unit", "3", NULL};
    sim_start_tcp(&c, sim, args, &port, 1);
    child_cmd(&c, "freeze"); // the test drives time with `step`
    modbus_t *m = tcp_client(port, 3);

    uint16_t r[125];
    CHECK(modbus_read_registers(m, 40000, 4, r) == 4, "read 40000: %s", modbus_strerror(errno));
    CHECK(r[0] == 0x5375 && r[1] == 0x6E53, "no SunS marker: %04X %04X", r[0], r[1]);
    CHECK(r[2] == 1 && r[3] == 65, "common model header %u %u", r[2], r[3]);
    CHECK(read_holding(m, 40069) == 103 && read_holding(m, 40070) == 50, "model 103 header");
    CHECK(read_holding(m, 40121) == 123 && read_holding(m, 40122) == 24, "model 123 header");
    CHECK(read_holding(m, 40147) == 0xFFFF && read_holding(m, 40148) == 0, "end marker");
    expect_exception(modbus_read_registers(m, 40149, 1, r), 2, "read past the end");
    CHECK(modbus_read_registers(m, 40004, 16, r) == 16, "read Mn");
    CHECK(r[0] == ('e' << 8 | 'n') && r[6] == ('s' << 8 | 'i') && r[7] == 'm' << 8, "Mn string");
    CHECK(modbus_read_registers(m, 40052, 4, r) == 4, "read SN");
    CHECK(r[0] == ('S' << 8 | 'I') && r[1] == ('M' << 8 | '0'), "SN string");
    CHECK(read_holding(m, 40068) == 3, "DA is the unit id");

    // Another unit behind the same "gateway" is not there.
    modbus_set_slave(m, 4);
    expect_exception(modbus_read_registers(m, 40000, 2, r), 0x0B, "wrong unit id");
    modbus_set_slave(m, 3);

    // Morning sun: producing in MPPT.
    child_cmd(&c, "step 30");
    CHECK(read_holding(m, 40107) == 4, "St %d, want MPPT", read_holding(m, 40107));
    int w = (int16_t)read_holding(m, 40083);
    CHECK(w > 1500 && w <= 10000, "W %d", w);
    CHECK(read_holding(m, 40075) == (uint16_t)-2 && read_holding(m, 40144) == 0, "scale factors");
    uint16_t wh[2];
    CHECK(modbus_read_registers(m, 40093, 2, wh) == 2, "read WH");
    uint32_t wh0 = (uint32_t)wh[0] << 16 | wh[1];

    // A power limit is echoed, reads back and throttles.
    CHECK(modbus_write_register(m, 40126, 10) == 1, "write WMaxLimPct: %s", modbus_strerror(errno));
    child_expect(&c, "write ", 2000, line);
    char want[128];
    snprintf(want, sizeof(want), "write %d holding 40126 1 10", port);
    CHECK(strcmp(line, want) == 0, "write line '%s', want '%s'", line, want);
    CHECK(read_holding(m, 40126) == 10, "WMaxLimPct readback");
    CHECK(modbus_write_register(m, 40130, 1) == 1, "write WMaxLim_Ena");
    child_expect(&c, "write ", 2000, line);
    child_cmd(&c, "step 5");
    w = (int16_t)read_holding(m, 40083);
    CHECK(w == 1000 && read_holding(m, 40107) == 5, "throttled W %d St %d", w,
          read_holding(m, 40107));
    CHECK(read_holding(m, 40126) == 10, "limit overwritten by evolution");

    // Read-only registers and out-of-range values are refused like a device would.
    expect_exception(modbus_write_register(m, 40083, 5), 2, "write W");
    expect_exception(modbus_write_register(m, 40144, 1), 2, "write WMaxLimPct_SF");
    expect_exception(modbus_write_register(m, 40126, 101), 3, "WMaxLimPct 101");
    expect_exception(modbus_write_register(m, 40130, 2), 3, "WMaxLim_Ena 2");
    uint16_t mix[2] = {50, 0};
    expect_exception(modbus_write_registers(m, 40125, 2, mix), 3, "Conn 50");

    // Disconnect: no power, standby; energy never went down.
    CHECK(modbus_write_register(m, 40125, 0) == 1, "write Conn");
    child_cmd(&c, "step 2");
    CHECK(read_holding(m, 40083) == 0 && read_holding(m, 40107) == 8, "Conn 0 not standby");
    CHECK(modbus_read_registers(m, 40093, 2, wh) == 2, "read WH");
    CHECK(((uint32_t)wh[0] << 16 | wh[1]) > wh0, "energy did not grow");

    // A limit with a reversion timeout falls back by itself.
    uint16_t ctl[5] = {20, 0, 1, 0, 1}; // WMaxLimPct, WinTms, RvrtTms 1 s, RmpTms, Ena
    CHECK(modbus_write_registers(m, 40126, 5, ctl) == 5, "write limit block");
    child_cmd(&c, "step 12");
    child_expect(&c, "revert ", 2000, line);
    CHECK(read_holding(m, 40130) == 0, "WMaxLim_Ena not reverted");

    client_free(m);
    child_stop(&c);
}

static void test_fault_exception(const char *sim)
{
    struct child c;
    int port;
    const char *args[] = {"--profile", "sdm630", NULL};
    sim_start_tcp(&c, sim, args, &port, 1);
    modbus_t *m = tcp_client(port, 1);
    uint16_t r[2];
    CHECK(modbus_read_input_registers(m, 0, 2, r) == 2, "healthy read");
    child_cmd(&c, "fault 0 exception");
    expect_exception(modbus_read_input_registers(m, 0, 2, r), 4, "read under fault");
    expect_exception(modbus_write_registers(m, 2, 2, r), 4, "write under fault");
    child_cmd(&c, "fault all none");
    CHECK(modbus_read_input_registers(m, 0, 2, r) == 2, "read after recovery");
    client_free(m);
    child_stop(&c);
}

static void test_fault_drop(const char *sim)
{
    struct child c;
    int port;
    const char *args[] = {"--profile", "sunspec", NULL};
    sim_start_tcp(&c, sim, args, &port, 1);
    modbus_t *a = tcp_client(port, 1), *b = tcp_client(port, 1);
    uint16_t r[2];
    CHECK(modbus_read_registers(a, 40000, 2, r) == 2, "client a");
    CHECK(modbus_read_registers(b, 40000, 2, r) == 2, "client b");
    CHECK(strcmp(child_cmd(&c, "clients 0"), "2") == 0, "two clients on one port");

    child_cmd(&c, "fault 0 drop");
    CHECK(modbus_read_registers(a, 40000, 2, r) < 0, "read on a dropped connection");
    client_free(a);
    // New connections are accepted and closed at once (or refused).
    modbus_t *n = modbus_new_tcp("127.0.0.1", port);
    modbus_set_response_timeout(n, (uint32_t)selftest.slow, 0);
    CHECK(modbus_connect(n) < 0 || modbus_read_registers(n, 40000, 2, r) < 0,
          "a new connection worked under drop");
    client_free(n);
    CHECK(strcmp(child_cmd(&c, "clients 0"), "0") == 0, "connections left under drop");

    child_cmd(&c, "fault 0 none");
    a = tcp_client(port, 1);
    CHECK(modbus_read_registers(a, 40000, 2, r) == 2, "read after recovery");
    client_free(a);
    client_free(b);
    child_stop(&c);
}

static void test_fault_stall_garbage(const char *sim)
{
    struct child c;
    int port;
    const char *args[] = {"--profile", "sdm630", "--fault", "stall", NULL};
    sim_start_tcp(&c, sim, args, &port, 1);
    modbus_t *m = tcp_client(port, 1);
    modbus_set_response_timeout(m, 0, 300000);
    uint16_t r[2];
    errno = 0;
    CHECK(modbus_read_input_registers(m, 0, 2, r) < 0 && errno == ETIMEDOUT,
          "stalled device answered (%s)", modbus_strerror(errno));
    CHECK(strcmp(child_cmd(&c, "clients 0"), "1") == 0, "stall must keep the connection");
    child_cmd(&c, "fault 0 garbage");
    for (int i = 0; i < 3; i++) {
        CHECK(modbus_read_input_registers(m, 0, 2, r) < 0, "garbage parsed as an answer");
        client_free(m);
        m = tcp_client(port, 1);
        modbus_set_response_timeout(m, 0, 300000);
    }
    child_cmd(&c, "fault 0 none");
    CHECK(modbus_read_input_registers(m, 0, 2, r) == 2, "read after recovery: %s",
          modbus_strerror(errno));
    client_free(m);
    child_stop(&c);
}

static void test_multi(const char *sim)
{
    struct child c;
    int ports[3];
    const char *args[] = {"--profile", "sdm630", "--count", "3", "--seed", "42", NULL};
    CHECK(sim_start_tcp(&c, sim, args, ports, 3) == 3, "three ports");
    CHECK(ports[0] != ports[1] && ports[1] != ports[2], "distinct ports");
    modbus_t *m[3];
    float e[3];
    for (int i = 0; i < 3; i++) {
        m[i] = tcp_client(ports[i], 1);
        e[i] = read_input_float(m[i], 0x48);
    }
    CHECK(e[0] != e[1] && e[1] != e[2], "devices share their values");
    child_cmd(&c, "set 1 input 0 float32 199");
    CHECK(read_input_float(m[1], 0) == 199.0f, "set on device 1");
    CHECK(read_input_float(m[0], 0) != 199.0f && read_input_float(m[2], 0) != 199.0f,
          "set leaked to other devices");
    child_cmd(&c, "thaw 1 input 0 float32");
    child_cmd(&c, "step");
    CHECK(read_input_float(m[1], 0) != 199.0f, "thaw did not release the register");
    // A fault on one device leaves the others alone.
    child_cmd(&c, "fault 2 exception");
    uint16_t r[2];
    expect_exception(modbus_read_input_registers(m[2], 0, 2, r), 4, "faulted device");
    CHECK(modbus_read_input_registers(m[0], 0, 2, r) == 2, "healthy device");
    for (int i = 0; i < 3; i++) {
        client_free(m[i]);
    }
    child_stop(&c);
}

static void test_rtu(const char *sim)
{
    struct child c;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--profile", "sunspec", "--rtu", "--unit", "7", NULL};
    child_start(&c, sim, args);
    child_expect(&c, "ready rtu ", 5000, line);
    const char *path = line + strlen("ready rtu ");
    modbus_t *m = modbus_new_rtu(path, 9600, 'N', 8, 1);
    CHECK(m, "modbus_new_rtu(%s)", path);
    modbus_set_slave(m, 7);
    modbus_set_response_timeout(m, (uint32_t)selftest.slow, 0);
    CHECK(modbus_connect(m) == 0, "open %s: %s", path, modbus_strerror(errno));

    uint16_t r[4];
    CHECK(modbus_read_registers(m, 40000, 2, r) == 2, "RTU read: %s", modbus_strerror(errno));
    CHECK(r[0] == 0x5375 && r[1] == 0x6E53, "no SunS over RTU");
    CHECK(modbus_write_register(m, 40126, 42) == 1, "RTU write: %s", modbus_strerror(errno));
    child_expect(&c, "write rtu holding 40126 1 42", 2000, line);
    CHECK(modbus_read_registers(m, 40126, 1, r) == 1 && r[0] == 42, "RTU readback");
    expect_exception(modbus_write_register(m, 40083, 1), 2, "RTU write to W");
    child_cmd(&c, "fault 0 exception");
    expect_exception(modbus_read_registers(m, 40000, 2, r), 4, "RTU exception fault");
    child_cmd(&c, "fault 0 none");
    CHECK(modbus_read_registers(m, 40068, 1, r) == 1 && r[0] == 7, "RTU DA");
    client_free(m);
    child_stop(&c);
}

// Values must not change when evolution is off, and `step` must move them.
static void test_static(const char *sim)
{
    struct child c;
    int port;
    const char *args[] = {"--profile", "sdm630", "--static", "--tick", "50", NULL};
    sim_start_tcp(&c, sim, args, &port, 1);
    modbus_t *m = tcp_client(port, 1);
    float p0 = read_input_float(m, 0x34);
    sleep_ms(300);
    CHECK(read_input_float(m, 0x34) == p0, "static values changed");
    child_cmd(&c, "step 50");
    CHECK(read_input_float(m, 0x34) != p0, "step did not evolve");
    client_free(m);
    // Closing stdin must not end the simulator.
    child_close_stdin(&c);
    sleep_ms(200);
    m = tcp_client(port, 1);
    CHECK(read_input_float(m, 0) > 200, "simulator gone after stdin EOF");
    client_free(m);
    child_stop(&c);
}

// Microseconds of CLOCK_MONOTONIC, the clock of the simulator's `@` timestamps.
static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// The number after the last " @" of a line, or -1.
static int64_t line_stamp(const char *line)
{
    const char *at = strrchr(line, '@');
    if (!at || at == line || at[-1] != ' ') {
        return -1;
    }
    char *end;
    long long v = strtoll(at + 1, &end, 10);
    return end == at + 1 || *end ? -1 : v;
}

// `--timestamps` on write lines and the one-shot `mark`/`served` notification.
static void test_timestamps(const char *sim)
{
    struct child c;
    int ports[2];
    char line[SELFTEST_LINE_MAX], want[128];
    const char *args[] = {"--profile", "sdm630", "--count", "2", "--timestamps", NULL};
    CHECK(sim_start_tcp(&c, sim, args, ports, 2) == 2, "two ports");
    modbus_t *m0 = tcp_client(ports[0], 1), *m1 = tcp_client(ports[1], 1);
    uint16_t r[80];

    // Reads that do not cover the mark (another range, device or table) leave it armed.
    child_cmd(&c, "mark 0 input 0x0C");
    CHECK(modbus_read_input_registers(m0, 0x0E, 4, r) == 4, "read after the mark");
    CHECK(modbus_read_input_registers(m0, 0, 12, r) == 12, "read before the mark");
    CHECK(modbus_read_input_registers(m1, 0, 80, r) == 80, "read of the other device");
    CHECK(modbus_read_registers(m0, 0, 20, r) == 20, "read of the other table");
    CHECK(!child_saw(&c, "served", 300 * selftest.slow), "served without covering the mark");

    // The covering read prints exactly one served line, stamped between request and line.
    int64_t before = now_us();
    CHECK(modbus_read_input_registers(m0, 0x0A, 4, r) == 4, "covering read");
    child_expect(&c, "served ", 2000, line);
    int64_t after = now_us(), t = line_stamp(line);
    snprintf(want, sizeof(want), "served 0 input 12 @%lld", (long long)t);
    CHECK(strcmp(line, want) == 0, "served line '%s'", line);
    CHECK(t >= before && t <= after, "served at %lld, outside %lld..%lld", (long long)t,
          (long long)before, (long long)after);
    CHECK(modbus_read_input_registers(m0, 0, 80, r) == 80, "read after served");
    CHECK(!child_saw(&c, "served", 300 * selftest.slow), "a mark served twice");

    // A new mark replaces the armed one; it names the device index, decimal address.
    child_cmd(&c, "mark 1 input 0");
    child_cmd(&c, "mark 1 input 0x46");
    CHECK(modbus_read_input_registers(m1, 0, 2, r) == 2, "read of the replaced mark");
    CHECK(!child_saw(&c, "served", 300 * selftest.slow), "a replaced mark was served");
    CHECK(modbus_read_input_registers(m1, 0x40, 8, r) == 8, "read of the new mark");
    child_expect(&c, "served 1 input 70 @", 2000, line);
    CHECK(line_stamp(line) > t, "served stamps not increasing");

    // A failed read (exception 3) serves nothing; bad marks are refused.
    child_cmd(&c, "mark 0 holding 2");
    CHECK(modbus_read_registers(m0, 0, 81, r) < 0, "81 registers read");
    CHECK(!child_saw(&c, "served", 300 * selftest.slow), "served by a refused read");
    const char *bad[] = {"mark 0 input 0x180", "mark 2 input 0", "mark 0 table 0", "mark 0 input"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        child_send(&c, "%s", bad[i]);
        child_expect(&c, "err ", 2000, line);
    }

    // Write lines carry the time after the acknowledgement, increasing.
    int64_t prev = t;
    for (int i = 0; i < 2; i++) {
        float_regs(i ? 30.0f : 15.0f, r);
        before = now_us();
        CHECK(modbus_write_registers(m0, 2, 2, r) == 2, "write demand period: %s",
              modbus_strerror(errno));
        child_expect(&c, "write ", 2000, line);
        after = now_us();
        int64_t w = line_stamp(line);
        snprintf(want, sizeof(want), "write %d holding 2 2 %u %u @%lld", ports[0], r[0], r[1],
                 (long long)w);
        CHECK(strcmp(line, want) == 0, "write line '%s'", line);
        CHECK(w >= before && w <= after && w > prev, "write stamp %lld outside %lld..%lld",
              (long long)w, (long long)before, (long long)after);
        prev = w;
    }
    // The holding mark from above is still armed and served by a read of that table.
    CHECK(modbus_read_registers(m0, 2, 2, r) == 2, "holding read");
    child_expect(&c, "served 0 holding 2 @", 2000, line);
    CHECK(line_stamp(line) > prev, "served before the last write");

    client_free(m0);
    client_free(m1);
    child_stop(&c);
}

static const struct selftest_scenario scenarios[] = {
    {"sdm630", test_sdm630},
    {"sunspec", test_sunspec},
    {"fault_exception", test_fault_exception},
    {"fault_drop", test_fault_drop},
    {"fault_stall_garbage", test_fault_stall_garbage},
    {"multi", test_multi},
    {"rtu", test_rtu},
    {"static", test_static},
    {"timestamps", test_timestamps},
};

int main(int argc, char **argv)
{
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--wrapper") == 0) {
        selftest.wrapper = argv[2];
        selftest.slow = 10;
        a = 3;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: %s [--wrapper CMD] <e2m-modbus-sim> <scenario>\n", argv[0]);
        return 2;
    }
    // This simulator prints only answers, ready lines, writes and reverts; a pile of lines no
    // scenario asked for means it reports something it should not.
    selftest.backlog_strict = true;
    return selftest_run(argv[a], &argv[a + 1], 1, scenarios,
                        sizeof(scenarios) / sizeof(scenarios[0]));
}
