//! The `bench-harness` command line: `run`, `compare`, `table`, `report`.
//! Exit codes: 0 success, 1 regression found by `compare`, 2 any other error.

use anyhow::Context;
use bench_harness::broker::{BrokerOptions, default_broker_binary, default_rss_max_bytes};
use bench_harness::compare::{self, CompareOptions, parse_percent};
use bench_harness::result::BenchResult;
use bench_harness::runner::{self, RunOptions, Target};
use bench_harness::{overrides, report, table};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bench-harness",
    version,
    about = "Kafka-protocol load generator and perf-regression gate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload and write RESULT.json and RESULT.svg.
    Run(Box<RunArgs>),
    /// Compare two results; exit 1 on a regression beyond the threshold.
    Compare(CompareArgs),
    /// Print a Markdown table of results.
    Table {
        /// Result JSON files.
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
    /// Raw Kafka-protocol produce then catch-up fetch, no librdkafka (issue 19): broker
    /// throughput and CPU µs per MB with a generator that is not the bottleneck.
    Raw(RawArgs),
    /// Consumer-group settle time after one member leaves (issue 20): classic
    /// cooperative-sticky and the KIP-848 consumer protocol, alternating in one run.
    GroupSettle(GroupSettleArgs),
    /// (Re)draw the SVG report of a result.
    Report {
        result: PathBuf,
        /// Default: the result path with .svg.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Workload TOML file (see bench-harness/workloads/).
    workload: PathBuf,
    /// Bootstrap address of a running Kafka-API broker.
    #[arg(
        long,
        conflicts_with = "start_broker",
        required_unless_present = "start_broker"
    )]
    bootstrap: Option<String>,
    /// Start target/release/shardlog (not built by this tool) on a free port with a fresh
    /// data directory, once per repeat.
    #[arg(long)]
    start_broker: bool,
    /// Repeats; the summary holds medians over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    repeats: u32,
    /// Result JSON [default: target/bench/results/<workload>.json]; the SVG goes beside it.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The shardlog binary for --start-broker.
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// --shards for the started broker [default: the broker's own default].
    #[arg(long)]
    broker_shards: Option<usize>,
    /// --config for the started broker, e.g. tuning/broker/throughput.toml.
    #[arg(long)]
    broker_config: Option<PathBuf>,
    /// Parent directory of started brokers' data dirs; the disk baselines write here too.
    /// Must be on the disk under test (ext4/xfs), never tmpfs.
    #[arg(long, default_value = "target/bench-data")]
    data_root: PathBuf,
    /// Stop the run if the started broker's resident memory exceeds this many MB
    /// [default: 60% of this machine's memory]; 0 = no limit.
    #[arg(long)]
    broker_rss_max_mb: Option<u64>,
    /// Keep the started broker's data directory after the run.
    #[arg(long)]
    keep_data: bool,
    /// Put a TCP proxy that delays every read by this many µs in front of the started
    /// broker: a deliberately slowed broker, to show the regression gate fails.
    #[arg(long, default_value_t = 0)]
    broker_delay_us: u64,
    /// Sleep this many µs after every send in each producer (another deliberate slowdown).
    #[arg(long, default_value_t = 0)]
    throttle_producer_us: u64,
    /// Skip the in-run baselines (ratios are then missing).
    #[arg(long)]
    skip_baselines: bool,
    /// A librdkafka property set on every client (admin, producers, consumers), e.g.
    /// `--client-property security.protocol=SSL --client-property ssl.ca.location=ca.pem`
    /// (repeatable; recorded in the result's workload as producer and consumer properties).
    #[arg(long = "client-property", value_name = "KEY=VALUE")]
    client_property: Vec<String>,
    /// With --start-broker: the started broker's listener name (`PLAINTEXT`, `SSL`), as
    /// `--listen NAME://127.0.0.1:PORT` (default PLAINTEXT).
    #[arg(long, default_value = "PLAINTEXT")]
    broker_listener: String,
    /// With --start-broker: an extra argument for `shardlog serve`, e.g.
    /// `--broker-arg=--tls-cert-file=cert.pem` (repeatable).
    #[arg(long = "broker-arg", value_name = "ARG", allow_hyphen_values = true)]
    broker_arg: Vec<String>,
    /// Set librdkafka `debug` (e.g. "fetch,protocol") on every client and echo all its log
    /// lines; this changes the workload, so such a result is not comparable.
    #[arg(long)]
    librdkafka_debug: Option<String>,
    /// Override the workload's warm-up seconds (quick development runs).
    #[arg(long)]
    warmup_seconds: Option<f64>,
    /// Override the workload's measured seconds (quick development runs).
    #[arg(long)]
    measure_seconds: Option<f64>,
    /// Override a workload setting before validation, e.g. `--set producers.acks=1`,
    /// `--set name=foo`, `--set 'producers.properties."linger.ms"=5'` (repeatable; a
    /// changed workload is not comparable with the file's).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct RawArgs {
    /// Bootstrap address of a running broker (its CPU is measured with --broker-pid).
    #[arg(
        long,
        conflicts_with = "start_broker",
        required_unless_present = "start_broker"
    )]
    bootstrap: Option<String>,
    /// The running broker's pid, for its CPU use and --broker-cpus.
    #[arg(long, requires = "bootstrap")]
    broker_pid: Option<u32>,
    /// The running broker's admin address (host:port): its /metrics is scraped around each
    /// phase for the broker-side stage times (a started broker's is known).
    #[arg(long, requires = "bootstrap")]
    admin_url: Option<String>,
    /// Start target/release/shardlog on a free port with a fresh data directory.
    #[arg(long)]
    start_broker: bool,
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// --shards for the started broker.
    #[arg(long, default_value_t = 1)]
    broker_shards: usize,
    #[arg(long)]
    broker_config: Option<PathBuf>,
    /// Parent of the started broker's data dir; the disk baseline writes here too.
    #[arg(long, default_value = "target/bench-data")]
    data_root: PathBuf,
    /// Pin the broker's threads to these CPUs, e.g. `0` or `0,1`.
    #[arg(long, value_delimiter = ',')]
    broker_cpus: Vec<usize>,
    /// Pin the load threads to these CPUs.
    #[arg(long, value_delimiter = ',')]
    load_cpus: Vec<usize>,
    #[arg(long, default_value = "raw-bench")]
    topic: String,
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per batch (one batch per Produce request).
    #[arg(long, default_value_t = 100)]
    batch_records: usize,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    pipeline: usize,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Produce at this fixed rate, MB/s of batches over all connections (default: as fast
    /// as the pipeline allows); the latency then counts from each request's scheduled time.
    #[arg(long)]
    rate_mb: Option<f64>,
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    /// Write the report as JSON here too.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct GroupSettleArgs {
    /// Bootstrap address of a running broker (its consumer-protocol heartbeat interval is
    /// its own `group.consumer.heartbeat.interval.ms`).
    #[arg(
        long,
        conflicts_with = "start_broker",
        required_unless_present = "start_broker"
    )]
    bootstrap: Option<String>,
    /// Start target/release/shardlog on a free port with a fresh data directory, its
    /// consumer-protocol heartbeat interval set to --heartbeat-ms.
    #[arg(long)]
    start_broker: bool,
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// --shards for the started broker.
    #[arg(long, default_value_t = 2)]
    broker_shards: usize,
    #[arg(long, default_value = "target/bench-data")]
    data_root: PathBuf,
    #[arg(long, default_value = "group-settle")]
    topic: String,
    #[arg(long, default_value_t = 20)]
    partitions: u32,
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Rounds per protocol (the protocols alternate).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Heartbeat interval, ms: the classic members' `heartbeat.interval.ms`, and the started
    /// broker's consumer-protocol interval, so both protocols heartbeat at the same pace.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u32,
    /// Longest wait for a group to form or settle, per round, ms.
    #[arg(long, default_value_t = 60_000)]
    round_timeout_ms: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    old: PathBuf,
    new: PathBuf,
    /// Largest allowed drop in throughput ratio (and rise in p99), e.g. "10%".
    #[arg(long, default_value = "10%")]
    max_regression: String,
    /// Separate limit for the p99 rise [default: --max-regression].
    #[arg(long)]
    latency_max_regression: Option<String>,
    /// Separate limit for the rise in broker CPU per MB [default: --max-regression].
    #[arg(long)]
    cpu_max_regression: Option<String>,
    /// p99 rises smaller than this many µs never count (noise floor).
    #[arg(long, default_value_t = 0.0)]
    latency_slack_us: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(*args).map(|()| ExitCode::SUCCESS),
        Command::Compare(args) => compare(args),
        Command::Raw(args) => raw(args).map(|()| ExitCode::SUCCESS),
        Command::GroupSettle(args) => group_settle(args).map(|()| ExitCode::SUCCESS),
        Command::Table { results } => print_table(&results).map(|()| ExitCode::SUCCESS),
        Command::Report { result, output } => {
            let output = output.unwrap_or_else(|| result.with_extension("svg"));
            BenchResult::load(&result)
                .and_then(|r| report::write_svg(&r, &output))
                .map(|()| {
                    println!("wrote {}", output.display());
                    ExitCode::SUCCESS
                })
        }
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("bench-harness: error: {error:#}");
        ExitCode::from(2)
    })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut sets = args.set.clone();
    let mut client_properties = Vec::new();
    for property in &args.client_property {
        let (key, value) = property
            .split_once('=')
            .with_context(|| format!("--client-property {property}: expected KEY=VALUE"))?;
        for side in ["producers", "consumers"] {
            sets.push(format!("{side}.properties.\"{key}\"=\"{value}\""));
        }
        client_properties.push((key.to_string(), value.to_string()));
    }
    bench_harness::admin::set_client_properties(client_properties);
    let mut workload = overrides::load_with_overrides(&args.workload, &sets)?;
    if let Some(seconds) = args.warmup_seconds {
        workload.duration.warmup_seconds = seconds;
    }
    if let Some(seconds) = args.measure_seconds {
        workload.duration.measure_seconds = seconds;
    }
    if let Some(contexts) = &args.librdkafka_debug {
        workload
            .producers
            .properties
            .insert("debug".into(), contexts.clone());
        workload
            .consumers
            .properties
            .insert("debug".into(), contexts.clone());
    }
    workload
        .validate()
        .context("after command-line overrides")?;
    anyhow::ensure!(
        args.broker_delay_us == 0 || args.start_broker,
        "--broker-delay-us needs --start-broker (the proxy is set as the advertised listener)"
    );
    let target = match args.bootstrap {
        Some(address) => Target::External(address),
        None => Target::Start(BrokerOptions {
            binary: args.broker_bin.unwrap_or_else(default_broker_binary),
            shards: args.broker_shards,
            config: args.broker_config,
            data_root: args.data_root.clone(),
            delay_us: args.broker_delay_us,
            keep_data: args.keep_data,
            rss_max_bytes: args
                .broker_rss_max_mb
                .map_or_else(default_rss_max_bytes, |mb| mb * 1_000_000),
            config_overrides: Default::default(),
            listener: args.broker_listener.clone(),
            extra_args: args.broker_arg.clone(),
        }),
    };
    let output = args.output.unwrap_or_else(|| {
        Path::new("target/bench/results").join(format!("{}.json", workload.name))
    });
    let options = RunOptions {
        workload_file: args.workload,
        workload,
        target,
        repeats: args.repeats,
        baseline_dir: args.data_root,
        skip_baselines: args.skip_baselines,
        throttle_us: args.throttle_producer_us,
        echo_client_logs: args.librdkafka_debug.is_some(),
    };
    let result = runner::run(&options)?;
    result.save(&output)?;
    let svg = output.with_extension("svg");
    report::write_svg(&result, &svg)?;
    print!("{}", table::markdown(std::slice::from_ref(&result)));
    println!("wrote {} and {}", output.display(), svg.display());
    Ok(())
}

fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let max_regression = parse_percent(&args.max_regression)?;
    let or_default = |text: &Option<String>| match text {
        Some(text) => parse_percent(text),
        None => Ok(max_regression),
    };
    let options = CompareOptions {
        max_regression,
        latency_max_regression: or_default(&args.latency_max_regression)?,
        cpu_max_regression: or_default(&args.cpu_max_regression)?,
        latency_slack_us: args.latency_slack_us,
    };
    let old = BenchResult::load(&args.old)?;
    let new = BenchResult::load(&args.new)?;
    let comparison = compare::compare(&old, &new, &options)?;
    println!(
        "comparing {} (old) with {} (new)",
        args.old.display(),
        args.new.display()
    );
    print!("{}", comparison.render());
    if comparison.regressed() {
        println!("REGRESSION beyond the allowed threshold");
        Ok(ExitCode::from(1))
    } else {
        println!("no regression beyond the allowed threshold");
        Ok(ExitCode::SUCCESS)
    }
}

fn print_table(paths: &[PathBuf]) -> anyhow::Result<()> {
    let results = paths
        .iter()
        .map(|p| BenchResult::load(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    print!("{}", table::markdown(&results));
    Ok(())
}

fn group_settle(args: GroupSettleArgs) -> anyhow::Result<()> {
    use bench_harness::broker::StartedBroker;
    use bench_harness::group_settle::{self, SettleOptions};
    let started = if args.start_broker {
        let heartbeat = args.heartbeat_ms.to_string();
        let options = BrokerOptions {
            binary: args.broker_bin.unwrap_or_else(default_broker_binary),
            shards: Some(args.broker_shards),
            config: None,
            data_root: args.data_root.clone(),
            delay_us: 0,
            keep_data: false,
            rss_max_bytes: default_rss_max_bytes(),
            config_overrides: Default::default(),
            listener: "PLAINTEXT".into(),
            extra_args: [
                "--group-consumer-heartbeat-interval-ms",
                &heartbeat,
                "--group-consumer-heartbeat-interval-ms-min",
                &heartbeat,
                // Only the first join of an empty classic group waits for it; not measured.
                "--group-initial-rebalance-delay-ms",
                "0",
            ]
            .map(String::from)
            .to_vec(),
        };
        Some(StartedBroker::start(&options, "group-settle")?)
    } else {
        None
    };
    let bootstrap = match (&started, &args.bootstrap) {
        (Some(broker), _) => broker.bootstrap.clone(),
        (None, Some(address)) => address.clone(),
        (None, None) => anyhow::bail!("--bootstrap or --start-broker"),
    };
    bench_harness::admin::Admin::connect(&bootstrap)?.create_topics(
        std::slice::from_ref(&args.topic),
        args.partitions,
        1,
    )?;
    let options = SettleOptions {
        topic: args.topic,
        partitions: args.partitions,
        members: args.members,
        rounds: args.rounds,
        classic_heartbeat_ms: args.heartbeat_ms,
        round_timeout_ms: args.round_timeout_ms,
    };
    let report = group_settle::run(&bootstrap, &options)?;
    drop(started);
    for summary in &report.summaries {
        let rounds: Vec<String> = summary
            .settle_ms
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect();
        println!(
            "{}: settle median {:.0} ms (rounds {} ms); partitions revoked from survivors \
             per round {:?}",
            summary.protocol.name(),
            summary.settle_ms_median,
            rounds.join(" / "),
            summary.survivor_partitions_revoked
        );
    }
    if let Some(path) = &args.output {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn raw(args: RawArgs) -> anyhow::Result<()> {
    use bench_harness::broker::StartedBroker;
    use bench_harness::raw::{self, RawOptions};
    let started = if args.start_broker {
        let options = BrokerOptions {
            binary: args.broker_bin.unwrap_or_else(default_broker_binary),
            shards: Some(args.broker_shards),
            config: args.broker_config,
            data_root: args.data_root.clone(),
            delay_us: 0,
            keep_data: false,
            rss_max_bytes: default_rss_max_bytes(),
            config_overrides: Default::default(),
            listener: "PLAINTEXT".into(),
            extra_args: Vec::new(),
        };
        Some(StartedBroker::start(&options, "raw")?)
    } else {
        None
    };
    let bootstrap = match (&started, &args.bootstrap) {
        (Some(broker), _) => broker.bootstrap.clone(),
        (None, Some(address)) => address.clone(),
        (None, None) => anyhow::bail!("--bootstrap or --start-broker"),
    };
    let broker_pid = started.as_ref().map(|b| b.pid()).or(args.broker_pid);
    if let (Some(pid), false) = (broker_pid, args.broker_cpus.is_empty()) {
        raw::pin_process(pid, &args.broker_cpus)?;
    }
    bench_harness::admin::Admin::connect(&bootstrap)?.create_topics(
        std::slice::from_ref(&args.topic),
        args.partitions,
        1,
    )?;
    let options = RawOptions {
        topic: args.topic,
        partitions: args.partitions,
        record_bytes: args.record_bytes,
        batch_records: args.batch_records,
        connections: args.connections,
        pipeline: args.pipeline,
        produce_seconds: args.seconds,
        rate_requests_per_second: args.rate_mb.map(|mb| {
            let batch_bytes = (args.batch_records * args.record_bytes) as f64;
            mb * 1e6 / batch_bytes
        }),
        acks: args.acks,
        load_cpus: args.load_cpus,
        fetch_partition_max_bytes: 8 << 20,
        fetch_max_bytes: 64 << 20,
    };
    let admin_address = started
        .as_ref()
        .map(|b| b.admin_address.clone())
        .or(args.admin_url);
    let mut report = raw::run(&bootstrap, broker_pid, admin_address.as_deref(), &options)?;
    drop(started);
    // The same run's ceilings (the broker is stopped): O_DIRECT writes where its data was,
    // one loopback TCP connection.
    std::fs::create_dir_all(&args.data_root)?;
    report.baselines = Some(bench_harness::baseline::measure(
        &args.data_root,
        report.produce.bytes,
        report.fetch.bytes,
    ));
    for (phase, counts) in [("produce", &report.produce), ("fetch", &report.fetch)] {
        println!(
            "{phase}: {:.1} MB/s, {:.0} records/s, {} requests, {} errors, {:.1} s, broker CPU {}",
            counts.megabytes_per_second(),
            counts.records_per_second(),
            counts.requests,
            counts.errors,
            counts.seconds,
            counts
                .broker_cpu_us_per_mb()
                .map_or("unknown".to_string(), |us| format!("{us:.0} µs/MB")),
        );
    }
    if let (Some(p50), Some(p99)) = (report.produce.latency_p50_us, report.produce.latency_p99_us) {
        println!(
            "produce client-side latency (send to answer, pipelined): p50 {p50:.0} µs, p99 {p99:.0} µs"
        );
    }
    for (phase, counts) in [("produce", &report.produce), ("fetch", &report.fetch)] {
        if !counts.stages.is_empty() {
            bench_harness::stages::print(
                &format!("broker-side stages during the {phase} phase:"),
                &counts.stages,
            );
        }
    }
    if let Some(baselines) = &report.baselines {
        let ratio = |value: f64, ceiling: Option<f64>| {
            ceiling.map_or("unknown".to_string(), |c| format!("{:.2}x", value / c))
        };
        println!(
            "same-run baselines: O_DIRECT write {:.0} MB/s (produce {}), loopback TCP {:.0} MB/s (fetch {})",
            baselines.disk_write_mb_per_sec.unwrap_or(f64::NAN),
            ratio(
                report.produce.megabytes_per_second(),
                baselines.disk_write_mb_per_sec
            ),
            baselines.tcp_loopback_mb_per_sec.unwrap_or(f64::NAN),
            ratio(
                report.fetch.megabytes_per_second(),
                baselines.tcp_loopback_mb_per_sec
            ),
        );
    }
    if let Some(output) = args.output {
        std::fs::write(&output, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
