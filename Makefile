# shardlog: `make run` starts a broker on 127.0.0.1:9092; `make test` installs what the
# tests need and runs them. See README.md.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: build run test unit-test rust-client-test lint fmt

build:
	$(CARGO) build --release --bin shardlog

run: build
	./target/release/shardlog serve --listen 127.0.0.1:9092 --data-dir ./data

unit-test:
	$(CARGO) test -p shardlog --lib --bins

# librdkafka (rdkafka crate) against the real binary: round trip, groups, kill -9.
rust-client-test::
	$(CARGO) test -p shardlog --test rdkafka_clients --test limits --test cli

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

test: lint unit-test rust-client-test

# Coverage-guided fuzzing (not part of `make test`): each target for FUZZ_SECONDS, starting
# from the committed seeds; new inputs go to target/fuzz-corpus. A crash is saved under
# tests/fuzz/artifacts/; copy it to tests/fuzz/regressions/<target>/ so `make test` replays it.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := request_frame record_batches internal_records compressed_batches
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
