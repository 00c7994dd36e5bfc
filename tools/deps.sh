#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages energy2mqtt needs, or prints the command when not root.
#   tools/deps.sh build      compilers, libraries, broker (make demo)
#   tools/deps.sh test       build + what the tests use besides: python3-yaml, the shell script
#                            checker, chromium for the status page (make test)
#   tools/deps.sh ci         test + sanitizer and fuzzing extras (clang, valgrind)
set -eu

build_pkgs="cmake make gcc pkg-config openssl libpaho-mqtt-dev libmodbus-dev libprotobuf-c-dev
protobuf-c-compiler libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev
check libsubunit-dev mosquitto mosquitto-clients"
test_pkgs="python3 python3-yaml shellcheck chromium"
ci_pkgs="clang libclang-rt-14-dev valgrind"

case "${1:-build}" in
build) want=$build_pkgs ;;
test) want="$build_pkgs $test_pkgs" ;;
ci) want="$build_pkgs $test_pkgs $ci_pkgs" ;;
*) echo "usage: $0 build|test|ci" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run: sudo apt-get install -y$missing" >&2
    exit 1
fi
