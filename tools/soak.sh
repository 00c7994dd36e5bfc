#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the soak (tests/soak/soak.c) of a build: SECONDS with the daemon as it is, then
# VALGRIND_SECONDS with the daemon under valgrind (memory errors or definite leaks fail it).
# The reports are also written to BUILD_DIR/soak-report.txt and BUILD_DIR/soak-valgrind-report.txt.
#
# Usage: tools/soak.sh BUILD_DIR SECONDS [VALGRIND_SECONDS]
set -u

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [VALGRIND_SECONDS]" >&2
    exit 2
fi
build=$1
seconds=$2
vg_seconds=${3:-0}
for n in "$seconds" "$vg_seconds"; do
    case $n in
    '' | *[!0-9]*)
        echo "$0: seconds must be whole numbers, got '$n'" >&2
        exit 2
        ;;
    esac
done
soak=$build/tests/soak/e2m-soak
if [ ! -x "$soak" ]; then
    echo "$0: no $soak (build first; mosquitto must be installed)" >&2
    exit 2
fi
# mosquitto lives in /usr/sbin, which is not on every PATH.
PATH=/usr/sbin:/usr/local/sbin:$PATH
export PATH

status=0
if [ "$seconds" -gt 0 ]; then
    E2M_SOAK_SECONDS=$seconds E2M_SOAK_REPORT=$build/soak-report.txt "$soak" || status=1
fi
if [ "$vg_seconds" -gt 0 ]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        echo "$0: valgrind is not installed (tools/deps.sh ci installs it)" >&2
        exit 2
    fi
    # valgrind slows the daemon 20-50 times: a quarter of the flood rate keeps the run about
    # the daemon, not about valgrind's queue.
    E2M_SOAK_SECONDS=$vg_seconds E2M_SOAK_FLOOD_RATE=500 \
        E2M_SOAK_REPORT=$build/soak-valgrind-report.txt \
        E2M_DAEMON_WRAPPER="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no" \
        "$soak" || status=1
fi
exit $status
