// SPDX-License-Identifier: MIT
// energy2mqtt command line: run | validate | discovery | decode | version.
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/addon.h"
#include "app/daemon.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/model.h"
#include "drivers/drivers.h"
#include "mqtt/discovery.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: energy2mqtt [-v] <command> [arguments]\n"
            "\n"
            "commands:\n"
            "  run -c FILE          run the daemon with the configuration FILE (YAML, or the\n"
            "                       add-on's options.json)\n"
            "  validate -c FILE     check FILE and every entity definition it uses; print each\n"
            "                       problem as file:line:column: key: what was expected\n"
            "  discovery -c FILE    print every Home Assistant discovery message the daemon\n"
            "                       would publish, one per line: topic<TAB>payload\n"
            "  decode DRIVER [--message NAME] DATA\n"
            "                       decode one frame (hex) or payload and print it as JSON;\n"
            "                       --message decodes a bare payload as that message (drivers\n"
            "                       with named messages, e.g. hoymiles); DATA '-' reads\n"
            "                       standard input\n"
            "  addon [-c FILE]      run as a Home Assistant add-on: read the Supervisor's\n"
            "                       options (default /data/options.json), ask the Supervisor\n"
            "                       for the broker when mqtt.url is empty, serve the status\n"
            "                       page for ingress on port 8099\n"
            "  version              print the version\n"
            "\n"
            "options:\n"
            "  -v, --verbose        debug logging (twice: trace)\n"
            "  -h, --help           this text\n");
}

static int load(const char *path, struct config **cfg)
{
    struct diag d;
    diag_init(&d);
    int rc = config_load(path, cfg, &d);
    if (rc < 0)
        diag_print(&d, stderr);
    diag_free(&d);
    return rc;
}

static int cmd_validate(const char *path)
{
    struct config *cfg;
    if (load(path, &cfg) < 0)
        return 1;
    size_t entities = 0;
    for (size_t i = 0; i < cfg->n_devices; i++)
        entities += cfg->devices[i].model->n_entities;
    printf("%s: valid (%zu device%s, %zu entities)\n", path, cfg->n_devices,
           cfg->n_devices == 1 ? "" : "s", entities);
    config_free(cfg);
    return 0;
}

static void print_message(void *arg, const char *topic, json_t *payload)
{
    FILE *out = arg;
    char *text = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    fprintf(out, "%s\t%s\n", topic, text ? text : "");
    free(text);
}

static int cmd_discovery(const char *path)
{
    struct config *cfg;
    if (load(path, &cfg) < 0)
        return 1;
    discovery_bridge(&cfg->mqtt, E2M_VERSION, print_message, stdout);
    for (size_t i = 0; i < cfg->n_devices; i++)
        discovery_device(&cfg->mqtt, E2M_VERSION, &cfg->devices[i], NULL, print_message, stdout);
    config_free(cfg);
    return 0;
}

static int cmd_addon(const char *path, int verbose)
{
    char *text = addon_load(path);
    int rc = 1;
    if (!text)
        goto out;
    // Problems are reported against the converted document, with their key paths.
    char name[4200];
    snprintf(name, sizeof(name), "%s (converted)", path);
    struct config *cfg;
    struct diag d;
    diag_init(&d);
    if (config_load_text(name, text, strlen(text), &cfg, &d) < 0) {
        diag_print(&d, stderr);
        diag_free(&d);
        goto out;
    }
    diag_free(&d);
    if (cfg->log_level >= 0 && !verbose)
        log_set_level((enum log_level)cfg->log_level);
    rc = daemon_run(cfg);
    config_free(cfg);
out:
    free(text);
    return rc;
}

static int cmd_decode(const char *name, const char *message, const char *data)
{
    const struct driver_ops *drv = drivers_find(name);
    if (!drv) {
        size_t n;
        const struct driver_ops *const *all = drivers_all(&n);
        fprintf(stderr, "energy2mqtt: no driver '%s'; drivers:", name);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", all[i]->name);
        fprintf(stderr, "\n");
        return 2;
    }
    if (message ? !drv->decode_message : !drv->decode) {
        fprintf(stderr, "energy2mqtt: the %s driver has no %s\n", name,
                message ? "named messages" : "decoder");
        return 2;
    }
    char buf[65536];
    if (strcmp(data, "-") == 0) {
        size_t len = fread(buf, 1, sizeof(buf) - 1, stdin);
        buf[len] = '\0';
        data = buf;
    }
    char err[256] = "";
    int rc = message ? drv->decode_message(message, data, stdout, err, sizeof(err))
                     : drv->decode(data, stdout, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "energy2mqtt: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int verbose = 0, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            verbose++;
        } else if (strcmp(argv[i], "-vv") == 0) {
            verbose += 2;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "energy2mqtt: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    const char *config = NULL;
    const char *message = NULL;
    // Options after the command: -c FILE, -v.
    const char *rest[2] = {NULL, NULL};
    size_t n_rest = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "energy2mqtt: -c needs a file\n");
                return 2;
            }
            config = argv[i];
        } else if (strcmp(argv[i], "--message") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "energy2mqtt: --message needs a message name\n");
                return 2;
            }
            message = argv[i];
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            verbose++;
        } else if (n_rest < 2) {
            rest[n_rest++] = argv[i];
        } else {
            fprintf(stderr, "energy2mqtt: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (verbose)
        log_set_level(verbose > 1 ? LOG_LVL_TRACE : LOG_LVL_DEBUG);

    if (strcmp(cmd, "version") == 0) {
        printf("energy2mqtt %s\n", E2M_VERSION);
        return 0;
    }
    if (strcmp(cmd, "decode") == 0) {
        if (n_rest != 2) {
            fprintf(stderr, "usage: energy2mqtt decode DRIVER [--message NAME] DATA\n");
            return 2;
        }
        return cmd_decode(rest[0], message, rest[1]);
    }
    if (strcmp(cmd, "addon") == 0) {
        if (n_rest || message) {
            fprintf(stderr, "usage: energy2mqtt addon [-c OPTIONS.JSON]\n");
            return 2;
        }
        return cmd_addon(config ? config : "/data/options.json", verbose);
    }
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "validate") == 0 || strcmp(cmd, "discovery") == 0) {
        if (!config || n_rest || message) {
            fprintf(stderr, "usage: energy2mqtt %s -c FILE\n", cmd);
            return 2;
        }
        if (strcmp(cmd, "validate") == 0)
            return cmd_validate(config);
        if (strcmp(cmd, "discovery") == 0)
            return cmd_discovery(config);
        struct config *cfg;
        if (load(config, &cfg) < 0)
            return 1;
        if (cfg->log_level >= 0 && !verbose)
            log_set_level((enum log_level)cfg->log_level);
        int rc = daemon_run(cfg);
        config_free(cfg);
        return rc;
    }
    fprintf(stderr, "energy2mqtt: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
