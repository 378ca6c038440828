//! The `shardlog` command line: `serve` runs the broker; other subcommands are tools.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shardlog::config::Config;
use std::path::PathBuf;

#[global_allocator]
static ALLOCATOR: shardlog::huge_alloc::LazyHugeAllocator = shardlog::huge_alloc::LazyHugeAllocator;

#[derive(Parser)]
#[command(
    name = "shardlog",
    version,
    about = "A Kafka-compatible broker, thread-per-core on io_uring"
)]
struct Cli {
    /// `--bootstrap-server` and `--request-timeout-ms`: global, so they work before the
    /// subcommand as well as after it (`serve`, `data-dir` and `api-table` ignore them).
    #[command(flatten)]
    connect: cli::client::ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(Box<ServeArgs>),
    /// Print the supported-API table (docs/protocol-coverage.md) and exit.
    ApiTable,
    /// Create, list, describe, alter, configure and delete topics (kafka-topics.sh).
    Topic(cli::topic::TopicArgs),
    /// Write lines from stdin or a file as records (kafka-console-producer.sh).
    Produce(cli::produce::ProduceArgs),
    /// Print records from a topic, alone or in a group (kafka-console-consumer.sh).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, reset offsets of and delete consumer groups (kafka-consumer-groups.sh).
    Group(cli::group::GroupArgs),
    /// Show and change a broker's dynamic configs (kafka-configs.sh --entity-type brokers).
    Broker(cli::broker::BrokerArgs),
    /// Describe the cluster and its metadata quorum (kafka-metadata-quorum.sh describe).
    Cluster(cli::cluster::ClusterArgs),
    /// Create, list and delete SCRAM users (kafka-configs.sh --entity-type users).
    User(cli::user::UserArgs),
    /// Check and recover a stopped broker's data dir (docs/operations.md).
    DataDir(cli::data_dir::DataDirArgs),
}

/// Every flag also reads from the environment (SHARDLOG_*) and, below that, the TOML file.
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file; flags and SHARDLOG_* variables override it.
    #[arg(long, env = "SHARDLOG_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka listener, NAME://HOST:PORT (NAME: PLAINTEXT, SSL, or one of
    /// --listener-security-protocol-map) or HOST:PORT (PLAINTEXT); repeat it (or separate
    /// with commas) for several [default: 127.0.0.1:9092].
    #[arg(long, env = "SHARDLOG_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// Admin HTTP address for /metrics and /health; "" disables [default: 127.0.0.1:9644].
    #[arg(long, env = "SHARDLOG_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// What Metadata tells clients per listener, NAME://HOST:PORT (repeatable); a single
    /// HOST:PORT is the first listener's [default: each listener's own address].
    #[arg(long, env = "SHARDLOG_ADVERTISED_LISTENER", value_delimiter = ',')]
    advertised_listener: Vec<String>,
    /// Extra listener names, NAME:PROTOCOL,... (`[server] listener_security_protocol_map`)
    /// [default: empty].
    #[arg(long, env = "SHARDLOG_LISTENER_SECURITY_PROTOCOL_MAP")]
    listener_security_protocol_map: Option<String>,
    /// Cluster mode: the listener other brokers use (`[server] inter_broker_listener`)
    /// [default: the first PLAINTEXT listener].
    #[arg(long, env = "SHARDLOG_INTER_BROKER_LISTENER")]
    inter_broker_listener: Option<String>,
    /// PEM certificate chain of SSL listeners (`[tls] cert_file`) [default: unset].
    #[arg(long, env = "SHARDLOG_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of SSL listeners (`[tls] key_file`) [default: unset].
    #[arg(long, env = "SHARDLOG_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to; enables mTLS
    /// (`[tls] client_ca_file`) [default: unset].
    #[arg(long, env = "SHARDLOG_TLS_CLIENT_CA_FILE")]
    tls_client_ca_file: Option<PathBuf>,
    /// With a client CA: `required` or `requested` (`[tls] client_auth`) [default: required].
    #[arg(long, env = "SHARDLOG_TLS_CLIENT_AUTH", value_parser = ["required", "requested"])]
    tls_client_auth: Option<String>,
    /// `[tls] handshake_timeout_ms` [default: 10000].
    #[arg(long, env = "SHARDLOG_TLS_HANDSHAKE_TIMEOUT_MS")]
    tls_handshake_timeout_ms: Option<u64>,
    /// `[tls] reload_check_interval_ms`; 0 disables certificate reloading [default: 5000].
    #[arg(long, env = "SHARDLOG_TLS_RELOAD_CHECK_INTERVAL_MS")]
    tls_reload_check_interval_ms: Option<u64>,
    /// SASL mechanisms of SASL listeners, from SCRAM-SHA-512, SCRAM-SHA-256, PLAIN
    /// (`[sasl] enabled_mechanisms`) [default: SCRAM-SHA-512,SCRAM-SHA-256].
    #[arg(long, env = "SHARDLOG_SASL_MECHANISMS")]
    sasl_mechanisms: Option<String>,
    /// Offer PLAIN on SASL_PLAINTEXT listeners too (`[sasl] plain_over_plaintext_allowed`)
    /// [default: false].
    #[arg(long, env = "SHARDLOG_SASL_PLAIN_OVER_PLAINTEXT_ALLOWED", num_args = 0..=1, default_missing_value = "true")]
    sasl_plain_over_plaintext_allowed: Option<bool>,
    /// `[sasl] failed_authentication_delay_ms` [default: 100].
    #[arg(long, env = "SHARDLOG_FAILED_AUTHENTICATION_DELAY_MS")]
    failed_authentication_delay_ms: Option<u64>,
    /// `[sasl] connections_max_reauth_ms`; 0 = sessions never end [default: 0].
    #[arg(long, env = "SHARDLOG_CONNECTIONS_MAX_REAUTH_MS")]
    connections_max_reauth_ms: Option<u64>,
    /// SCRAM user created when the data dir has no credentials yet,
    /// 'SCRAM-SHA-512=[name=admin,password=admin-secret]' (repeatable; `[sasl] add_scram`)
    /// [default: none].
    #[arg(long, env = "SHARDLOG_ADD_SCRAM", value_delimiter = ';')]
    add_scram: Vec<String>,
    /// `acl` checks every request against ACLs, `none` allows everything
    /// (`[authorizer] kind`) [default: none].
    #[arg(long, env = "SHARDLOG_AUTHORIZER")]
    authorizer: Option<String>,
    /// Principals allowed everything, e.g. 'User:admin;User:ops' (`[authorizer]
    /// super_users`) [default: none].
    #[arg(long, env = "SHARDLOG_SUPER_USERS", value_delimiter = ';')]
    super_users: Vec<String>,
    /// `[authorizer] allow_everyone_if_no_acl_found` [default: false].
    #[arg(long, env = "SHARDLOG_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    allow_everyone_if_no_acl_found: Option<bool>,
    /// Directory for partition logs and the catalog [default: ./data].
    #[arg(long, env = "SHARDLOG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Number of shards (executors); 0 = one per CPU [default: 0].
    #[arg(long, env = "SHARDLOG_SHARDS")]
    shards: Option<usize>,
    /// This broker's node id [default: 0].
    #[arg(long, env = "SHARDLOG_NODE_ID")]
    node_id: Option<i32>,
    /// `[group] initial_rebalance_delay_ms`: wait before an empty group's first rebalance,
    /// ms (test suites pass 0) [default: 3000].
    #[arg(long, env = "SHARDLOG_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// `[group] consumer_session_timeout_ms`: consumer-protocol member session, ms
    /// [default: 45000].
    #[arg(long, env = "SHARDLOG_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    group_consumer_session_timeout_ms: Option<u64>,
    /// `[group] consumer_heartbeat_interval_ms`: consumer-protocol heartbeat interval, ms
    /// [default: 5000].
    #[arg(long, env = "SHARDLOG_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    group_consumer_heartbeat_interval_ms: Option<i32>,
    /// `[group] consumer_session_timeout_ms_min`: the smallest consumer-protocol session,
    /// ms, broker default and per-group overrides [default: 45000].
    #[arg(long, env = "SHARDLOG_GROUP_CONSUMER_SESSION_TIMEOUT_MS_MIN")]
    group_consumer_session_timeout_ms_min: Option<u64>,
    /// `[group] consumer_heartbeat_interval_ms_min`: the smallest consumer-protocol heartbeat
    /// interval, ms, broker default and per-group overrides [default: 5000].
    #[arg(long, env = "SHARDLOG_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_MIN")]
    group_consumer_heartbeat_interval_ms_min: Option<i32>,
    /// `[group] consumer_groups_max`: consumer-protocol groups per shard [default: 10000].
    #[arg(long, env = "SHARDLOG_GROUP_CONSUMER_GROUPS_MAX")]
    group_consumer_groups_max: Option<usize>,
    /// `[group] classic_groups_max`: classic groups per shard [default: 100000].
    #[arg(long, env = "SHARDLOG_GROUP_CLASSIC_GROUPS_MAX")]
    group_classic_groups_max: Option<usize>,
    /// Cluster mode: the metadata quorum, ID@HOST:PORT,... (`[cluster] controller_quorum`);
    /// unset, the broker runs alone [default: unset].
    #[arg(long, env = "SHARDLOG_CONTROLLER_QUORUM")]
    controller_quorum: Option<String>,
    /// Controller-protocol address of this node; required when its node id is in the quorum
    /// (`[cluster] controller_listen`) [default: unset].
    #[arg(long, env = "SHARDLOG_CONTROLLER_LISTEN")]
    controller_listen: Option<String>,
    /// This broker's rack (`[cluster] rack`) [default: unset].
    #[arg(long, env = "SHARDLOG_RACK")]
    rack: Option<String>,
    /// `[cluster] broker_session_timeout_ms` [default: 9000].
    #[arg(long, env = "SHARDLOG_BROKER_SESSION_TIMEOUT_MS")]
    broker_session_timeout_ms: Option<i64>,
    /// `[cluster] broker_heartbeat_interval_ms` [default: 2000].
    #[arg(long, env = "SHARDLOG_BROKER_HEARTBEAT_INTERVAL_MS")]
    broker_heartbeat_interval_ms: Option<u64>,
    /// `[cluster] leader_imbalance_check_interval_ms` [default: 300000].
    #[arg(long, env = "SHARDLOG_LEADER_IMBALANCE_CHECK_INTERVAL_MS")]
    leader_imbalance_check_interval_ms: Option<u64>,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        config.server.listen = args.listen.join(",");
    }
    if let Some(admin) = &args.admin_listen {
        config.server.admin_listen = admin.clone();
    }
    if !args.advertised_listener.is_empty() {
        config.server.advertised_listener = Some(args.advertised_listener.join(","));
    }
    if let Some(map) = &args.listener_security_protocol_map {
        config.server.listener_security_protocol_map = map.clone();
    }
    if let Some(name) = &args.inter_broker_listener {
        config.server.inter_broker_listener = Some(name.clone());
    }
    apply_tls_args(args, &mut config.tls);
    apply_sasl_args(args, &mut config.sasl);
    if let Some(kind) = &args.authorizer {
        config.authorizer.kind = kind.clone();
    }
    if !args.super_users.is_empty() {
        config.authorizer.super_users = args.super_users.clone();
    }
    if let Some(allow) = args.allow_everyone_if_no_acl_found {
        config.authorizer.allow_everyone_if_no_acl_found = allow;
    }
    if let Some(data_dir) = &args.data_dir {
        config.storage.data_dir = data_dir.clone();
    }
    if let Some(shards) = args.shards {
        config.shard.shards = shards;
    }
    if let Some(node_id) = args.node_id {
        config.server.node_id = node_id;
    }
    if let Some(delay) = args.group_initial_rebalance_delay_ms {
        config.group.initial_rebalance_delay_ms = delay;
    }
    if let Some(timeout) = args.group_consumer_session_timeout_ms {
        config.group.consumer_session_timeout_ms = timeout;
    }
    if let Some(interval) = args.group_consumer_heartbeat_interval_ms {
        config.group.consumer_heartbeat_interval_ms = interval;
    }
    if let Some(timeout) = args.group_consumer_session_timeout_ms_min {
        config.group.consumer_session_timeout_ms_min = timeout;
    }
    if let Some(interval) = args.group_consumer_heartbeat_interval_ms_min {
        config.group.consumer_heartbeat_interval_ms_min = interval;
    }
    if let Some(groups) = args.group_consumer_groups_max {
        config.group.consumer_groups_max = groups;
    }
    if let Some(groups) = args.group_classic_groups_max {
        config.group.classic_groups_max = groups;
    }
    if let Some(quorum) = &args.controller_quorum {
        config.cluster.controller_quorum = Some(quorum.clone());
    }
    if let Some(listen) = &args.controller_listen {
        config.cluster.controller_listen = Some(listen.clone());
    }
    if let Some(rack) = &args.rack {
        config.cluster.rack = Some(rack.clone());
    }
    if let Some(timeout) = args.broker_session_timeout_ms {
        config.cluster.broker_session_timeout_ms = timeout;
    }
    if let Some(interval) = args.broker_heartbeat_interval_ms {
        config.cluster.broker_heartbeat_interval_ms = interval;
    }
    if let Some(interval) = args.leader_imbalance_check_interval_ms {
        config.cluster.leader_imbalance_check_interval_ms = interval;
    }
    config.validate()?;
    Ok(config)
}

fn apply_tls_args(args: &ServeArgs, tls: &mut shardlog::config::TlsConfig) {
    if let Some(path) = &args.tls_cert_file {
        tls.cert_file = Some(path.clone());
    }
    if let Some(path) = &args.tls_key_file {
        tls.key_file = Some(path.clone());
    }
    if let Some(path) = &args.tls_client_ca_file {
        tls.client_ca_file = Some(path.clone());
    }
    match args.tls_client_auth.as_deref() {
        Some("requested") => tls.client_auth = shardlog::config::ClientAuth::Requested,
        Some(_) => tls.client_auth = shardlog::config::ClientAuth::Required,
        None => {}
    }
    if let Some(timeout) = args.tls_handshake_timeout_ms {
        tls.handshake_timeout_ms = timeout;
    }
    if let Some(interval) = args.tls_reload_check_interval_ms {
        tls.reload_check_interval_ms = interval;
    }
}

fn apply_sasl_args(args: &ServeArgs, sasl: &mut shardlog::config::SaslConfig) {
    if let Some(mechanisms) = &args.sasl_mechanisms {
        sasl.enabled_mechanisms = mechanisms.clone();
    }
    if let Some(allowed) = args.sasl_plain_over_plaintext_allowed {
        sasl.plain_over_plaintext_allowed = allowed;
    }
    if let Some(delay) = args.failed_authentication_delay_ms {
        sasl.failed_authentication_delay_ms = delay;
    }
    if let Some(lifetime) = args.connections_max_reauth_ms {
        sasl.connections_max_reauth_ms = lifetime;
    }
    if !args.add_scram.is_empty() {
        sasl.add_scram = args.add_scram.clone();
    }
}

/// Raises the open-file soft limit to the hard limit: every connection and open segment
/// is a descriptor, and running out (EMFILE) must not happen at a few thousand clients.
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let previous = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        tracing::info!(previous, now = limit.rlim_cur, "open-file limit raised");
    }
}

/// First SIGTERM/SIGINT: graceful shutdown (drain, sync, close logs). Second: exit now.
fn install_signal_handlers() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                if stopping || shardlog::shard::shutdown::shutdown_requested() {
                    tracing::warn!(signal, "second signal: exiting now");
                    std::process::exit(130);
                }
                stopping = true;
                tracing::info!(signal, "shutting down gracefully (send again to exit now)");
                // Cluster mode: fenced first, so clients move on while this broker still
                // answers them. On its own thread, so a second signal still exits at once.
                let stop = || {
                    shardlog::quorum::controlled_shutdown();
                    shardlog::shard::shutdown::request_shutdown();
                };
                if std::thread::Builder::new()
                    .name("controlled-shutdown".to_string())
                    .spawn(stop)
                    .is_err()
                {
                    stop();
                }
            }
        })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let connect = cli.connect;
    match cli.command {
        Command::Topic(mut args) => {
            args.connect = connect;
            cli::exit(cli::topic::run(&args))
        }
        Command::Produce(mut args) => {
            args.connect = connect;
            cli::exit(cli::produce::run(&args))
        }
        Command::Consume(mut args) => {
            args.connect = connect;
            cli::exit(cli::consume::run(&args))
        }
        Command::Group(mut args) => {
            args.connect = connect;
            cli::exit(cli::group::run(&args))
        }
        Command::Broker(mut args) => {
            args.connect = connect;
            cli::exit(cli::broker::run(&args))
        }
        Command::Cluster(mut args) => {
            args.connect = connect;
            cli::exit(cli::cluster::run(&args))
        }
        Command::User(mut args) => {
            args.connect = connect;
            cli::exit(cli::user::run(&args))
        }
        Command::DataDir(args) => cli::exit(cli::data_dir::run(&args)),
        Command::ApiTable => {
            print!("{}", shardlog::server::api_table::coverage_markdown());
            Ok(())
        }
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                // Colour only on a terminal: files and journald get plain, parseable lines.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let config = load_config(&args).context("invalid configuration")?;
            install_signal_handlers()?;
            raise_open_files_limit();
            tracing::info!(
                listeners = %config.server.listen,
                request_bytes_max = config.server.request_bytes_max,
                batch_cache_bytes_max = config.storage.batch_cache_bytes_max,
                write_buffer_bytes_max = config.storage.write_buffer_bytes_max,
                "shardlog starting"
            );
            // Cluster mode (opt-in): without --controller-quorum this is None and the broker
            // starts exactly as a single broker, with no extra thread or socket.
            // The data dir's node id first: cluster mode opens its raft log before the shards
            // check the rest of the data dir.
            shardlog::shard::data_dir::check_node_id(&config)?;
            // SSL listeners: unreadable or mismatched TLS files stop start-up here, named.
            let listeners = config.server.listeners()?;
            if listeners.iter().any(|l| l.protocol.uses_tls()) {
                shardlog::security::tls::load(&config.tls).context("cannot load the TLS files")?;
            }
            let quorum = shardlog::quorum::start(&config).context("cannot start cluster mode")?;
            let data_dir = config.storage.data_dir.clone();
            match &quorum {
                None => shardlog::shard::run_pool(config, shardlog::server::serve)?,
                Some(quorum) => {
                    let hub = quorum.hub.clone();
                    shardlog::shard::run_pool(config, move |shard| {
                        glommio::spawn_local(hub.subscribe().install()).detach();
                        shard.spawn_cluster_topic_reconciliation();
                        shard.spawn_replication();
                        shardlog::server::serve(shard)
                    })?
                }
            }
            if shardlog::shard::shutdown::logs_closed_cleanly() {
                shardlog::quorum::record_clean_shutdown(&data_dir);
            }
            if let Some(fatal) = quorum.as_ref().and_then(|q| q.fatal_error()) {
                anyhow::bail!("{fatal}");
            }
            tracing::info!("shardlog stopped");
            Ok(())
        }
    }
}
