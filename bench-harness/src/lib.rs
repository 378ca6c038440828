//! bench-harness: an OpenMessaging-Benchmark-style load generator and perf-regression gate.
//! It speaks only the Kafka protocol (through librdkafka), so it measures shardlog, Apache
//! Kafka, Redpanda or any Kafka-API broker at an address, and it can start shardlog itself.
//!
//! Modules, by responsibility (each file opens with what it owns):
//! - `workload`: the TOML workload schema; `payload`: message bytes, keys, the clock;
//! - `control`: shared run state; `producer` / `consumer`: one load thread each;
//! - `admin`: topics; `broker` / `proxy`: a started shardlog (optionally slowed);
//! - `overrides`: `run --set SECTION.KEY=VALUE` on a workload file;
//! - `load`: one load execution; `runner`: repeats, probe, baselines, ratios;
//!   `console`: the lines printed after each repeat;
//! - `activity`: what runs beside the load on a `[background]` side, by kind:
//!   `maintenance` (the writer that keeps compaction/retention busy, and the evidence in
//!   the broker log that it ran), `hostile` (clients that try to hang or bloat the broker;
//!   raw request bytes from `wire`), `topic_churn` (many-partition CreateTopics);
//! - `memory`: the started broker's sampled RSS and the memory budgets it reports;
//! - `baseline`: raw O_DIRECT / fdatasync / loopback TCP; `stats`: histograms, medians;
//! - `cpu`: who used the CPUs during the measured phase (noise on shared machines);
//! - `result`: the JSON schema; `compare`: the regression gate; `report`: the SVG;
//!   `table`: Markdown summaries; `progress`: the live line;
//! - `raw` / `raw_wire`: the raw Kafka-protocol generator (`bench-harness raw`, no librdkafka);
//! - `group_settle`: consumer-group settle time after a member leaves, classic against
//!   KIP-848 (`bench-harness group-settle`).
//!
//! Other binaries in `src/bin/` may use `stats`, `result` and `report`.

pub mod activity;
pub mod admin;
pub mod baseline;
pub mod broker;
pub mod compare;
pub mod console;
pub mod consumer;
pub mod control;
pub mod cpu;
pub mod group_settle;
pub mod hostile;
pub mod load;
pub mod maintenance;
pub mod memory;
pub mod overrides;
pub mod payload;
pub mod producer;
pub mod progress;
pub mod proxy;
pub mod raw;
pub mod raw_wire;
pub mod report;
pub mod result;
pub mod runner;
pub mod stages;
pub mod stats;
pub mod table;
pub mod topic_churn;
pub mod wire;
pub mod workload;
