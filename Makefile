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
