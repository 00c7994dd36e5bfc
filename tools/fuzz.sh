#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every libFuzzer harness of a build (tests/fuzz/fuzz_*) for SECONDS each.
#
# Usage: tools/fuzz.sh BUILD_DIR SECONDS
#
# Each harness starts from a copy of its seed corpus in BUILD_DIR/fuzz-work/<name> (new inputs
# land there, not in the repo) and writes crashes to BUILD_DIR/fuzz-artifacts/<name>/. Prints
# the executions and the verdict per harness; exits 1 when any harness crashed, leaked or hung.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
seconds=$2
case $seconds in
'' | *[!0-9]*)
    echo "$0: SECONDS must be a whole number, got '$seconds'" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || {
    echo "$0: no build directory $1" >&2
    exit 2
}
found=0
failed=0
for bin in "$build"/tests/fuzz/fuzz_*; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
        continue
    fi
    found=$((found + 1))
    name=${bin##*/fuzz_}
    work=$build/fuzz-work/$name
    artifacts=$build/fuzz-artifacts/$name
    log=$build/fuzz-work/$name.log
    mkdir -p "$work" "$artifacts"
    if [ -d "$root/tests/fuzz/corpus/$name" ]; then
        cp -p "$root/tests/fuzz/corpus/$name"/* "$work"/ 2>/dev/null
    fi
    before=$(find "$artifacts" -type f | wc -l)

    # stdin is /dev/null so that an input naming /dev/stdin (a config's password_file, say)
    # cannot stall the run waiting for a terminal.
    "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1 </dev/null
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    after=$(find "$artifacts" -type f | wc -l)
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed=$((failed + 1))
        verdict="CRASH (exit $rc; see $log and $artifacts/)"
    else
        verdict="no crash"
    fi
    printf '%-16s %12s executions in %ss: %s\n' "$name" "${execs:-?}" "$seconds" "$verdict"
done

if [ "$found" -eq 0 ]; then
    echo "$0: no fuzz_* binaries in $build/tests/fuzz (configure with CC=clang -DE2M_FUZZ=ON)" >&2
    exit 2
fi
[ "$failed" -eq 0 ]
