#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the add-on against the rules of Home Assistant's add-on linter and Supervisor (as
summarised in shared/protocols/home-assistant.md section 4), without network access:

    check_addon_config.py REPO_ROOT             check addon/ and repository.yaml
    check_addon_config.py REPO_ROOT --self-test also prove that broken variants are caught

Exit status 0 when everything holds; each problem is printed as "file: problem".
"""
import copy
import os
import re
import struct
import sys

import yaml

# Every key the add-on configuration schema knows; anything else is an error.
KNOWN_KEYS = {
    "name", "version", "slug", "description", "arch", "machine", "url", "startup", "boot",
    "ports", "ports_description", "host_network", "host_ipc", "host_dbus", "host_pid",
    "host_uts", "devices", "homeassistant", "tmpfs", "environment", "map", "privileged",
    "full_access", "apparmor", "audio", "video", "gpio", "usb", "uart", "udev", "devicetree",
    "kernel_modules", "stdin", "legacy", "options", "schema", "image", "timeout", "tmpfs",
    "services", "discovery", "hassio_api", "hassio_role", "homeassistant_api", "auth_api",
    "ingress", "ingress_port", "ingress_entry", "ingress_stream", "panel_icon", "panel_title",
    "panel_admin", "webui", "watchdog", "realtime", "journald", "breaking_versions",
    "backup_exclude", "backup_pre", "backup_post", "backup", "init", "advanced", "stage",
    "codenotary", "ulimits", "translations",
}
REQUIRED = ["name", "version", "slug", "description", "arch"]
# A key set to its default value is an error ("should be removed, it uses a default value").
DEFAULTS = {
    "boot": "auto", "startup": "application", "init": True, "ingress": False,
    "ingress_port": 8099, "ingress_entry": "/", "ingress_stream": False,
    "panel_icon": "mdi:puzzle", "panel_admin": True, "hassio_role": "default",
    "hassio_api": False, "homeassistant_api": False, "auth_api": False, "stage": "stable",
    "timeout": 10, "host_network": False, "host_ipc": False, "host_dbus": False,
    "host_pid": False, "host_uts": False, "audio": False, "video": False, "gpio": False,
    "usb": False, "uart": False, "udev": False, "devicetree": False, "stdin": False,
    "legacy": False, "full_access": False, "apparmor": True, "journald": False,
    "realtime": False, "advanced": False, "backup": "hot", "tmpfs": False,
}
ARCHES = {"aarch64", "amd64"}
DEPRECATED_ARCHES = {"armhf", "armv7", "i386"}
ENUMS = {
    "startup": {"application", "initialize", "once", "services", "system"},
    "boot": {"auto", "manual", "manual_only"},
    "stage": {"stable", "experimental", "deprecated"},
    "backup": {"hot", "cold"},
    "hassio_role": {"default", "homeassistant", "backup", "manager", "admin"},
}
SERVICE = re.compile(r"^(mqtt|mysql):(provide|want|need)$")
SLUG = re.compile(r"^[a-z0-9_]+$")
# The Supervisor's option types (supervisor/addons/options.py, RE_SCHEMA_ELEMENT).
OPTION_TYPE = re.compile(
    r"^(?:|bool|email|url|port|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)|list\((?P<list>.+)\))\??$")


def check_type(problems, where, typ):
    m = OPTION_TYPE.match(typ) if isinstance(typ, str) else None
    if not m:
        problems.append(f"{where}: '{typ}' is not a Supervisor option type")
        return
    if m.group("match"):
        try:
            re.compile(m.group("match"))
        except re.error as e:
            problems.append(f"{where}: the match() expression does not compile: {e}")


def check_schema(problems, where, schema, depth=0):
    """Walks the option schema: dicts of keys, lists of exactly one element type."""
    if depth > 3:
        problems.append(f"{where}: nested too deep for the Supervisor's options form")
        return
    if isinstance(schema, dict):
        for k, v in schema.items():
            check_schema(problems, f"{where}.{k}", v, depth + 1)
    elif isinstance(schema, list):
        if len(schema) != 1:
            problems.append(f"{where}: a list schema has exactly one element type")
        else:
            check_schema(problems, f"{where}[]", schema[0], depth + 1)
    else:
        check_type(problems, where, schema)


def optional(schema):
    if isinstance(schema, list):
        schema = schema[0] if schema else ""
    return isinstance(schema, str) and schema.endswith("?")


def check_options(problems, options, schema):
    """Defaults must satisfy the schema: every option has a schema entry, and every mandatory
    schema entry has a default (the Supervisor refuses to start the add-on otherwise)."""
    if not isinstance(options, dict) or not isinstance(schema, dict):
        problems.append("config.yaml: options and schema must be mappings")
        return
    for k in options:
        if k not in schema:
            problems.append(f"config.yaml: option '{k}' has no schema entry")
    for k, v in schema.items():
        if k not in options and not optional(v):
            problems.append(f"config.yaml: schema entry '{k}' is mandatory but has no default")
        if isinstance(v, dict) and isinstance(options.get(k), dict):
            for sub, sv in v.items():
                if sub not in options[k] and not optional(sv) and not isinstance(sv, dict):
                    problems.append(f"config.yaml: {k}.{sub} is mandatory but has no default")
    # A list option's default elements must be of the listed type.
    for k, v in options.items():
        if isinstance(schema.get(k), list) and not isinstance(v, list):
            problems.append(f"config.yaml: option '{k}' must default to a list")


def check_config(cfg, problems):
    if not isinstance(cfg, dict):
        problems.append("config.yaml: not a mapping")
        return
    for k in REQUIRED:
        if k not in cfg:
            problems.append(f"config.yaml: required key '{k}' is missing")
    for k, v in cfg.items():
        if k not in KNOWN_KEYS:
            problems.append(f"config.yaml: unknown key '{k}'")
        if k in DEFAULTS and v == DEFAULTS[k] and type(v) is type(DEFAULTS[k]):
            problems.append(f"config.yaml: '{k}' should be removed, it uses a default value")
        if k in ENUMS and v not in ENUMS[k]:
            problems.append(f"config.yaml: '{k}' must be one of {sorted(ENUMS[k])}")
    if "watchdog" in cfg:
        problems.append("config.yaml: 'watchdog' is not allowed: use a Docker HEALTHCHECK")
    if "webui" in cfg and cfg.get("ingress"):
        problems.append("config.yaml: 'webui' together with 'ingress'")
    if cfg.get("ingress_port") == 0 and not cfg.get("host_network"):
        problems.append("config.yaml: ingress_port 0 needs host_network")
    if "auto_uart" in cfg:
        problems.append("config.yaml: 'auto_uart' is deprecated: use 'uart'")
    if "codenotary" in cfg:
        problems.append("config.yaml: 'codenotary' is no longer supported")
    if cfg.get("full_access") and any(cfg.get(k) for k in ("devices", "uart", "usb", "gpio")):
        problems.append("config.yaml: 'full_access' together with devices/uart/usb/gpio")
    for m in cfg.get("map", []) or []:
        name = m if isinstance(m, str) else m.get("type", "")
        if str(name).split(":")[0] == "config":
            problems.append("config.yaml: map 'config' is deprecated (homeassistant_config)")
    arch = cfg.get("arch")
    if not isinstance(arch, list) or not arch:
        problems.append("config.yaml: 'arch' must be a non-empty list")
    else:
        for a in arch:
            if a in DEPRECATED_ARCHES:
                problems.append(f"config.yaml: arch '{a}' is deprecated and unsupported")
            elif a not in ARCHES:
                problems.append(f"config.yaml: unknown arch '{a}'")
    for s in cfg.get("services", []) or []:
        if not SERVICE.match(str(s)):
            problems.append(f"config.yaml: service '{s}' does not match {SERVICE.pattern}")
    if not SLUG.match(str(cfg.get("slug", ""))):
        problems.append("config.yaml: slug must be lower-case letters, digits and _")
    if not isinstance(cfg.get("version"), str):
        problems.append("config.yaml: version must be a string (quote it)")
    if "schema" in cfg and cfg["schema"] is not False:
        check_schema(problems, "config.yaml: schema", cfg["schema"])
        check_options(problems, cfg.get("options", {}), cfg["schema"])
    if cfg.get("ingress") and "panel_icon" in cfg and not str(cfg["panel_icon"]).startswith("mdi:"):
        problems.append("config.yaml: panel_icon must be an mdi: icon")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def check_files(root, cfg, problems):
    addon = os.path.join(root, "addon")
    for f in ("Dockerfile", "DOCS.md", "CHANGELOG.md", "icon.png", "logo.png", "apparmor.txt",
              "translations/en.yaml", "run.sh"):
        if not os.path.isfile(os.path.join(addon, f)):
            problems.append(f"addon/{f}: missing")
    size = png_size(os.path.join(addon, "icon.png")) if os.path.isfile(
        os.path.join(addon, "icon.png")) else None
    if size and (size[0] != size[1] or not 96 <= size[0] <= 256):
        problems.append(f"addon/icon.png: should be square, about 128x128 (is {size})")
    size = png_size(os.path.join(addon, "logo.png")) if os.path.isfile(
        os.path.join(addon, "logo.png")) else None
    if size and not (200 <= size[0] <= 300 and 80 <= size[1] <= 120):
        problems.append(f"addon/logo.png: should be about 250x100 (is {size})")
    run = os.path.join(addon, "run.sh")
    if os.path.isfile(run) and not os.access(run, os.X_OK):
        problems.append("addon/run.sh: must be executable")
    try:
        docker = open(os.path.join(addon, "Dockerfile")).read()
    except OSError:
        docker = ""
    froms = re.findall(r"^FROM\s+(\S+)", docker, re.M)
    if len(froms) < 2:
        problems.append("addon/Dockerfile: expected a multi-stage build")
    if froms and not froms[-1].startswith("ghcr.io/home-assistant/base"):
        problems.append("addon/Dockerfile: the final image must be Home Assistant's base image")
    hc = re.search(r"^HEALTHCHECK.*?CMD\s+(.*)$", docker, re.M | re.S)
    port = cfg.get("ingress_port", 8099)
    if not hc or "/api/health" not in hc.group(1) or f":{port}/" not in hc.group(1):
        problems.append(f"addon/Dockerfile: needs a HEALTHCHECK on :{port}/api/health")
    if re.search(r"^ARG\s+BUILD_FROM", docker, re.M):
        problems.append("addon/Dockerfile: BUILD_FROM is no longer injected: name the base image")
    # Translations describe the options that exist.
    try:
        tr = yaml.safe_load(open(os.path.join(addon, "translations/en.yaml"))) or {}
    except OSError:
        tr = {}
    for k in (tr.get("configuration") or {}):
        if k not in (cfg.get("schema") or {}):
            problems.append(f"addon/translations/en.yaml: '{k}' is not an option")
    for k in (cfg.get("schema") or {}):
        if k not in (tr.get("configuration") or {}):
            problems.append(f"addon/translations/en.yaml: option '{k}' has no translation")
    # The AppArmor profile is named after the slug.
    try:
        aa = open(os.path.join(addon, "apparmor.txt")).read()
        if not re.search(r"^profile\s+" + re.escape(str(cfg.get("slug"))) + r"\s", aa, re.M):
            problems.append("addon/apparmor.txt: the profile must be named after the slug")
    except OSError:
        pass
    # The version is the project's, and the changelog has it.
    cmake = open(os.path.join(root, "CMakeLists.txt")).read()
    m = re.search(r"project\(\s*\S+\s+VERSION\s+([0-9.]+)", cmake)
    if m and m.group(1) != cfg.get("version"):
        problems.append(f"config.yaml: version {cfg.get('version')} is not the project's {m.group(1)}")
    try:
        if f"## {cfg.get('version')}" not in open(os.path.join(addon, "CHANGELOG.md")).read():
            problems.append("addon/CHANGELOG.md: no entry for this version")
    except OSError:
        pass
    # repository.yaml at the root; no other config.yaml anywhere (the Supervisor searches).
    try:
        repo = yaml.safe_load(open(os.path.join(root, "repository.yaml"))) or {}
        if not repo.get("name"):
            problems.append("repository.yaml: 'name' is required")
    except OSError:
        problems.append("repository.yaml: missing")
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
        for f in files:
            p = os.path.relpath(os.path.join(d, f), root)
            if f in ("config.yaml", "config.yml", "config.json") and p != os.path.join(
                    "addon", "config.yaml"):
                problems.append(f"{p}: only the add-on may have this file name")


def check(root, cfg=None):
    problems = []
    if cfg is None:
        with open(os.path.join(root, "addon", "config.yaml")) as f:
            cfg = yaml.safe_load(f)
    check_config(cfg, problems)
    check_files(root, cfg if isinstance(cfg, dict) else {}, problems)
    return problems


# Variants of the real file, each breaking one rule; each must be reported.
def mutations(cfg):
    def drop(k):
        c = copy.deepcopy(cfg)
        c.pop(k, None)
        return c

    def setk(k, v):
        c = copy.deepcopy(cfg)
        c[k] = v
        return c

    yield "missing arch", drop("arch"), "required key 'arch'"
    yield "boot at its default", setk("boot", "auto"), "'boot' should be removed"
    yield "init at its default", setk("init", True), "'init' should be removed"
    yield "timeout at its default", setk("timeout", 10), "'timeout' should be removed"
    yield "ingress_port at its default", setk("ingress_port", 8099), "'ingress_port' should be removed"
    yield "watchdog", setk("watchdog", "http://[HOST]:[PORT:8099]/api/health"), "'watchdog'"
    yield "webui with ingress", setk("webui", "http://[HOST]:[PORT:8099]/"), "'webui' together"
    yield "unknown key", setk("colour", "red"), "unknown key 'colour'"
    yield "deprecated arch", setk("arch", ["amd64", "armv7"]), "arch 'armv7' is deprecated"
    yield "bad service", setk("services", ["mqtt:maybe"]), "service 'mqtt:maybe'"
    yield "bad slug", setk("slug", "Energy2MQTT"), "slug must be"
    yield "unquoted version", setk("version", 1.0), "version must be a string"
    c = copy.deepcopy(cfg)
    c["schema"]["log_level"] = "text"
    yield "bad option type", c, "is not a Supervisor option type"
    c = copy.deepcopy(cfg)
    c["options"]["extra"] = 1
    yield "option without schema", c, "option 'extra' has no schema entry"
    c = copy.deepcopy(cfg)
    c["schema"]["needed"] = "str"
    yield "mandatory option without default", c, "'needed' is mandatory"


def self_test(root):
    with open(os.path.join(root, "addon", "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    failed = 0
    for name, variant, expected in mutations(cfg):
        found = [p for p in check(root, variant) if expected in p]
        if not found:
            print(f"self-test: '{name}' was not reported (expected '{expected}')")
            failed += 1
    return failed


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    root = sys.argv[1]
    problems = check(root)
    for p in problems:
        print(p)
    failed = len(problems)
    if "--self-test" in sys.argv[2:]:
        failed += self_test(root)
    print(f"add-on check: {len(problems)} problem(s)" +
          (", self-test run" if "--self-test" in sys.argv[2:] else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
