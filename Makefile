# SPDX-License-Identifier: MIT
# Front door. `make demo` and `make test` are the README's two commands: each installs missing
# Debian packages (or prints the apt-get command when not root), configures and builds.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan demo bench fuzz soak format clean

all: build

deps:
	@tools/deps.sh build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	@tools/deps.sh test
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# Unit, integration and fuzz-corpus replays again under AddressSanitizer + UBSan.
test-asan: deps
	@tools/deps.sh test
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DE2M_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L 'unit|integration|fuzz|ha|scenario'

demo: build
	@tools/demo.sh $(BUILD)

# The benchmark (tests/bench/RESULTS.md): the small, fleet and burst scenarios against a private
# broker and simulators, then the hot path's instruction count under callgrind.
bench: build
	@tools/deps.sh ci
	$(BUILD)/tests/bench/e2m-bench --build $(BUILD) --scenario all $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS))
	$(BUILD)/tests/bench/e2m-bench-hotpath --callgrind

# The soak (tests/soak/README.md): SOAK_SECONDS of faults, broker restarts, birth storms and
# command floods against the daemon (30 minutes by default), then SOAK_VALGRIND_SECONDS of the
# same with the daemon under valgrind (0 skips it). Each prints a report and fails on a breach.
SOAK_SECONDS          ?= 1800
SOAK_VALGRIND_SECONDS ?= 180
soak: build
	@tools/deps.sh ci
	tools/soak.sh $(BUILD) $(SOAK_SECONDS) $(SOAK_VALGRIND_SECONDS)

# libFuzzer harnesses (clang), each run for FUZZ_SECONDS.
fuzz:
	@tools/deps.sh ci
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DE2M_FUZZ=ON -DE2M_SANITIZE=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	tools/fuzz.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-60}

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
