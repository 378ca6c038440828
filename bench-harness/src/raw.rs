//! `bench-harness raw` (issue 19): a Kafka-protocol load generator without librdkafka, so
//! one client core can saturate a one-shard broker. Produce: every connection sends the same
//! pre-encoded v2 batch (one per partition it owns) over and over, up to `pipeline` requests
//! in flight, for the given seconds. Fetch: then a catch-up read of everything produced, from
//! offset 0, one Fetch in flight per connection over its partitions. Each phase reports
//! records, bytes, requests, errors and the broker's CPU seconds (from /proc), so broker CPU
//! µs per MB comes out of the same run. Load threads and the broker can be pinned to
//! different CPUs (`--load-cpus`, `--broker-cpus`).
//!
//! Owns: the load threads and their counts. Imports `raw_wire` (frames) and `broker`
//! (/proc CPU). Runs on: plain threads, blocking sockets.

use crate::broker::process_cpu_seconds;
use crate::raw_wire::{self, FetchedPartition};
use crate::stages::{StageScrape, StageSummary};
use crate::stats::LatencyHistogram;
use anyhow::{Context, bail};
use bytes::Bytes;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a socket read may block before the run is declared stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RawOptions {
    pub topic: String,
    pub partitions: u32,
    pub record_bytes: usize,
    pub batch_records: usize,
    pub connections: usize,
    /// Produce requests in flight per connection.
    pub pipeline: usize,
    pub produce_seconds: f64,
    /// Fixed rate of Produce requests per second over all connections (None: as fast as the
    /// pipeline allows).
    pub rate_requests_per_second: Option<f64>,
    pub acks: i16,
    /// CPUs the load threads run on (empty: anywhere).
    pub load_cpus: Vec<usize>,
    pub fetch_partition_max_bytes: i32,
    pub fetch_max_bytes: i32,
}

/// One phase's counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseReport {
    pub seconds: f64,
    pub records: u64,
    pub bytes: u64,
    pub requests: u64,
    /// Produce requests answered with an error code (a fetch error stops the run).
    pub errors: u64,
    pub broker_cpu_seconds: Option<f64>,
    /// Client-side produce latency (send of a request to its answer, pipelined), µs.
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    /// The broker's stage histograms over this phase (with an admin address).
    pub stages: Vec<StageSummary>,
    #[serde(skip)]
    latency: LatencyHistogram,
}

impl PhaseReport {
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Broker CPU µs per MB moved (None without a broker pid).
    pub fn broker_cpu_us_per_mb(&self) -> Option<f64> {
        let megabytes = self.bytes as f64 / 1e6;
        self.broker_cpu_seconds
            .filter(|_| megabytes > 0.0)
            .map(|seconds| seconds * 1e6 / megabytes)
    }

    fn add(&mut self, other: &PhaseReport) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }

    /// Fills in the latency percentiles from the merged histogram.
    fn summarise_latency(&mut self) {
        if self.latency.count() > 0 {
            let summary = self.latency.summary();
            self.latency_p50_us = Some(summary.p50);
            self.latency_p99_us = Some(summary.p99);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RawReport {
    pub produce: PhaseReport,
    pub fetch: PhaseReport,
    /// The same run's O_DIRECT and loopback ceilings (filled in by the caller).
    pub baselines: Option<crate::result::Baselines>,
}

/// Produces for `options.produce_seconds`, then reads everything back. With
/// `admin_address`, the broker's /metrics is scraped around each phase for its stage times.
pub fn run(
    bootstrap: &str,
    broker_pid: Option<u32>,
    admin_address: Option<&str>,
    options: &RawOptions,
) -> anyhow::Result<RawReport> {
    anyhow::ensure!(
        options.connections > 0 && options.pipeline > 0,
        "connections and pipeline must be positive"
    );
    anyhow::ensure!(
        options.partitions as usize >= options.connections,
        "at least one partition per connection"
    );
    let batch = raw_wire::record_batch(options.batch_records, options.record_bytes, now_ms())?;
    let owned = |connection: usize| -> Vec<i32> {
        (0..options.partitions as i32)
            .filter(|p| *p as usize % options.connections == connection)
            .collect()
    };
    let cpu = || broker_pid.and_then(process_cpu_seconds);
    let scrape = || admin_address.map(StageScrape::scrape).transpose();

    let stages_before = scrape()?;
    let cpu_before = cpu();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.produce_seconds);
    let producers: Vec<_> = (0..options.connections)
        .map(|connection| {
            let frames = owned(connection)
                .into_iter()
                .map(|p| raw_wire::produce_frame(p, &options.topic, p, options.acks, &batch))
                .collect::<anyhow::Result<Vec<_>>>();
            let (address, options) = (bootstrap.to_string(), options.clone());
            let batch_bytes = batch.len() as u64;
            std::thread::spawn(move || {
                pin_current_thread(&options.load_cpus);
                let frames = frames?;
                let per_connection = options
                    .rate_requests_per_second
                    .map(|rate| rate / options.connections as f64);
                match per_connection {
                    Some(rate) => {
                        produce_connection_paced(&address, frames, options.pipeline, rate, deadline)
                    }
                    None => produce_connection(&address, frames, options.pipeline, deadline),
                }
                .map(|(requests, errors, latency)| PhaseReport {
                    records: requests * options.batch_records as u64,
                    bytes: requests * batch_bytes,
                    requests,
                    errors,
                    latency,
                    ..PhaseReport::default()
                })
            })
        })
        .collect();
    let mut produce = sum_of(producers, "produce")?;
    produce.seconds = started.elapsed().as_secs_f64();
    produce.broker_cpu_seconds = cpu().zip(cpu_before).map(|(after, before)| after - before);
    produce.summarise_latency();
    let stages_between = scrape()?;
    if let (Some(after), Some(before)) = (&stages_between, &stages_before) {
        produce.stages = after.since(before);
    }

    let cpu_before = cpu();
    let started = Instant::now();
    let fetchers: Vec<_> = (0..options.connections)
        .map(|connection| {
            let partitions = owned(connection);
            let (address, options) = (bootstrap.to_string(), options.clone());
            std::thread::spawn(move || {
                pin_current_thread(&options.load_cpus);
                fetch_connection(&address, &options, &partitions)
            })
        })
        .collect();
    let mut fetch = sum_of(fetchers, "fetch")?;
    fetch.seconds = started.elapsed().as_secs_f64();
    fetch.broker_cpu_seconds = cpu().zip(cpu_before).map(|(after, before)| after - before);
    fetch.records = produce.records;
    if let (Some(after), Some(before)) = (scrape()?, &stages_between) {
        fetch.stages = after.since(before);
    }
    Ok(RawReport {
        produce,
        fetch,
        baselines: None,
    })
}

/// Joins a phase's load threads and adds up their counts.
fn sum_of(
    threads: Vec<std::thread::JoinHandle<anyhow::Result<PhaseReport>>>,
    phase: &str,
) -> anyhow::Result<PhaseReport> {
    let mut sum = PhaseReport::default();
    for thread in threads {
        let report = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a {phase} thread panicked"))??;
        sum.add(&report);
    }
    Ok(sum)
}

fn connect(address: &str) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// One response body (after its 4-byte length).
fn read_response(stream: &mut TcpStream) -> anyhow::Result<Bytes> {
    let mut length = [0u8; 4];
    stream
        .read_exact(&mut length)
        .context("reading a response length")?;
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).context("reading a response")?;
    Ok(Bytes::from(body))
}

/// Sends `frames` round-robin with up to `pipeline` in flight until `deadline`, then drains.
/// Returns (requests answered, answers with an error, send-to-answer latency).
fn produce_connection(
    address: &str,
    frames: Vec<Bytes>,
    pipeline: usize,
    deadline: Instant,
) -> anyhow::Result<(u64, u64, LatencyHistogram)> {
    let mut stream = connect(address)?;
    let (mut answered, mut errors, mut next) = (0u64, 0u64, 0usize);
    // Send times of the requests in flight, oldest first (answers come in request order).
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(pipeline);
    let mut latency = LatencyHistogram::new();
    loop {
        let sending = Instant::now() < deadline;
        while sending && sent.len() < pipeline {
            stream.write_all(&frames[next % frames.len()])?;
            sent.push_back(Instant::now());
            next += 1;
        }
        let Some(sent_at) = sent.pop_front() else {
            return Ok((answered, errors, latency));
        };
        let error = raw_wire::produce_error(read_response(&mut stream)?)?;
        latency.record_ns(sent_at.elapsed().as_nanos() as u64);
        answered += 1;
        if error != 0 {
            errors += 1;
            if errors == 1 {
                eprintln!("bench-harness raw: produce answered error code {error}");
            }
        }
    }
}

/// Sends `frames` round-robin at `rate` requests per second, each at its scheduled time
/// (t0 + k / rate), with at most `pipeline` in flight (a send that finds the pipeline full
/// goes out late), until `deadline`, then drains. A reader thread takes the answers. The
/// latency counts from the scheduled time, so a broker that falls behind shows it (no
/// coordinated omission). Returns what `produce_connection` returns.
fn produce_connection_paced(
    address: &str,
    frames: Vec<Bytes>,
    pipeline: usize,
    rate: f64,
    deadline: Instant,
) -> anyhow::Result<(u64, u64, LatencyHistogram)> {
    anyhow::ensure!(rate > 0.0, "the rate must be positive");
    let mut stream = connect(address)?;
    let mut answers = stream.try_clone()?;
    // Scheduled send times of the requests in flight; its capacity is the pipeline.
    let (scheduled_tx, scheduled_rx) = std::sync::mpsc::sync_channel::<Instant>(pipeline);
    let reader = std::thread::spawn(move || -> anyhow::Result<(u64, u64, LatencyHistogram)> {
        let (mut answered, mut errors) = (0u64, 0u64);
        let mut latency = LatencyHistogram::new();
        while let Ok(scheduled) = scheduled_rx.recv() {
            let error = raw_wire::produce_error(read_response(&mut answers)?)?;
            latency.record_ns(scheduled.elapsed().as_nanos() as u64);
            answered += 1;
            if error != 0 {
                errors += 1;
                if errors == 1 {
                    eprintln!("bench-harness raw: produce answered error code {error}");
                }
            }
        }
        Ok((answered, errors, latency))
    });
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut next = 0usize;
    loop {
        let scheduled = started + interval.mul_f64(next as f64);
        if scheduled >= deadline {
            break;
        }
        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        stream.write_all(&frames[next % frames.len()])?;
        if scheduled_tx.send(scheduled).is_err() {
            break; // the reader failed; its error is returned below
        }
        next += 1;
    }
    drop(scheduled_tx);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("a produce reader thread panicked"))?
}

/// Reads `partitions` of the topic from offset 0 until each reached its high watermark.
fn fetch_connection(
    address: &str,
    options: &RawOptions,
    partitions: &[i32],
) -> anyhow::Result<PhaseReport> {
    let mut stream = connect(address)?;
    let mut positions: Vec<(i32, i64, Option<i64>)> =
        partitions.iter().map(|&p| (p, 0, None)).collect();
    let mut report = PhaseReport::default();
    let mut correlation = 0;
    loop {
        let wanted: Vec<(i32, i64)> = positions
            .iter()
            .filter(|(_, offset, end)| end.is_none_or(|end| *offset < end))
            .map(|&(partition, offset, _)| (partition, offset))
            .collect();
        if wanted.is_empty() {
            return Ok(report);
        }
        correlation += 1;
        let frame = raw_wire::fetch_frame(
            correlation,
            &options.topic,
            &wanted,
            options.fetch_partition_max_bytes,
            options.fetch_max_bytes,
        )?;
        stream.write_all(&frame)?;
        report.requests += 1;
        for answer in raw_wire::fetched(read_response(&mut stream)?)? {
            let FetchedPartition {
                partition,
                error_code,
                high_watermark,
                next_offset,
                batch_bytes,
            } = answer;
            if error_code != 0 {
                bail!("fetch of partition {partition} answered error code {error_code}");
            }
            let Some(position) = positions.iter_mut().find(|(p, _, _)| *p == partition) else {
                continue;
            };
            position.2 = Some(high_watermark);
            if let Some(next) = next_offset {
                position.1 = next;
            }
            report.bytes += batch_bytes as u64;
        }
    }
}

/// Pins the calling thread to `cpus` (nothing when empty).
pub fn pin_current_thread(cpus: &[usize]) {
    if !cpus.is_empty() {
        set_affinity(0, cpus);
    }
}

/// Pins every thread of process `pid` to `cpus` (the broker: its shard threads exist by
/// the time it listens).
pub fn pin_process(pid: u32, cpus: &[usize]) -> anyhow::Result<()> {
    let tasks =
        std::fs::read_dir(format!("/proc/{pid}/task")).context("listing the broker's threads")?;
    for task in tasks.flatten() {
        if let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        {
            set_affinity(tid, cpus);
        }
    }
    Ok(())
}

fn set_affinity(tid: i32, cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it; sched_setaffinity
    // reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "bench-harness raw: cannot pin thread {tid} to {cpus:?}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
