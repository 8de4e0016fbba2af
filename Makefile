# Thin wrapper over CMake: the README's commands. See DESIGN.md-derived docs in docs/.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# libh2o keeps per-thread buffer caches for the life of the process: not our leaks.
LSAN_ENV = LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp),print_suppressions=0

.PHONY: all run cluster-demo test test-asan unit integration bench fuzz reliability clean deps-run deps-test deps-bench

all: $(BUILD)/streamd

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

$(BUILD)/streamd: $(BUILD)/Makefile FORCE
	cmake --build $(BUILD) -j $(JOBS)

FORCE:

deps-run:
	@scripts/install-deps.sh run
deps-test:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench

run: deps-run all
	$(BUILD)/streamd --data-dir ./data

# The same on a loopback cluster: etcd, PostgreSQL, s3rver, api, coordinator, two data nodes.
cluster-demo: deps-test all
	STREAMD_BIN=$(abspath $(BUILD)/streamd) scripts/cluster-demo.sh

# `make test` reconfigures every time with SD_REQUIRE_UNIT_TESTS: a build dir configured before
# libcmocka-dev was installed (`make run` installs only the run packages) would otherwise keep
# "cmocka not found" and run no unit test. It also fails unless ctest lists unit tests.
UNIT_CHECK = n=$$(cd $(1) && ctest -N -L unit | sed -n 's/^Total Tests: //p'); \
	if [ "$${n:-0}" -eq 0 ]; then echo "make: no unit test in $(1) (libcmocka-dev?)" >&2; exit 1; fi; \
	echo "make: $$n unit tests in $(1)"

test: deps-test
	cmake -S . -B $(BUILD) -DSD_REQUIRE_UNIT_TESTS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	@$(call UNIT_CHECK,$(BUILD))
	cd $(BUILD) && ctest --output-on-failure -j 2
	STREAMD_BIN=$(abspath $(BUILD)/streamd) /usr/bin/python3 -m pytest -q tests/integration

test-asan: deps-test
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSD_SANITIZE=address,undefined \
		-DSD_REQUIRE_UNIT_TESTS=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	@$(call UNIT_CHECK,$(ASAN_BUILD))
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 $(LSAN_ENV) ctest --output-on-failure -j 2
	$(LSAN_ENV) STREAMD_BIN=$(abspath $(ASAN_BUILD)/streamd) STREAMD_SANITIZED=1 /usr/bin/python3 -m pytest -q tests/integration

bench: deps-bench all
	bench/run_bench.sh $(abspath $(BUILD)/streamd)

# The long fault tests (RELIABILITY.md §4): minutes each, not part of `make test` or CI.
reliability: deps-test all
	STREAMD_BIN=$(abspath $(BUILD)/streamd) /usr/bin/python3 -m pytest -v -rA tests/reliability

fuzz: deps-test
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DSD_FUZZ=ON -DSD_SANITIZE=address,undefined
	cmake --build build-fuzz -j $(JOBS)
	tests/fuzz/run_fuzz.sh build-fuzz $${FUZZ_SECONDS:-60}

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
