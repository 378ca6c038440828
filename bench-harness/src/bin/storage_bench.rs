//! storage_bench: append throughput of `shardlog::storage::PartitionLog` next to raw
//! O_DIRECT writes of the same bytes on the same filesystem, measured in the same run.
//!
//! For each batch size (1 KiB, 16 KiB, 1 MiB) it measures:
//! - `raw seq`: the device's sequential O_DIRECT bandwidth through glommio `DmaFile`
//!   (1 MiB writes, 8 in flight, one fdatasync at the end) — the ceiling;
//!
//! Every case runs `--repeat` times (default 3), interleaved, and the best run is shown: the
//! machines are shared, and the best run is the least disturbed one.
//! - `raw sync/write`: write each batch's blocks then fdatasync, one at a time — the
//!   ceiling for one producer waiting for every sync;
//! - `log sync-per-batch`: one appender, `append` then `wait_synced` for every batch;
//! - `log group commit`: N appenders doing the same concurrently (syncs are shared);
//! - `log write-behind`: one appender that never waits (acks=1), one sync at the end.
//!
//! Usage: `cargo run --release -p bench-harness --bin storage_bench -- [--dir DIR]
//! [--bytes-mib N] [--ops-max N] [--appenders N] [--raw-in-flight N] [--repeat N]`. Data goes under `target/storage-bench`
//! by default (must not be tmpfs: O_DIRECT is silently off there).

use anyhow::{Result, anyhow};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use glommio::LocalExecutorBuilder;
use glommio::io::{DmaFile, OpenOptions};
use shardlog::config::{StorageConfig, SyncPolicy};
use shardlog::model::Offset;
use shardlog::storage::{BatchCache, LogConfig, PartitionLog};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const BATCH_SIZES: [usize; 3] = [1024, 16 * 1024, 1024 * 1024];
const RAW_CHUNK_BYTES: usize = 1 << 20;
const BLOCK: usize = 4096;
const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    dir: PathBuf,
    bytes: usize,
    ops_max: usize,
    appenders: usize,
    raw_in_flight: usize,
    repeat: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        dir: PathBuf::from("target/storage-bench"),
        bytes: 256 << 20,
        ops_max: 20_000,
        appenders: 16,
        raw_in_flight: 8,
        repeat: 3,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value),
            "--bytes-mib" => args.bytes = value.parse::<usize>()? << 20,
            "--ops-max" => args.ops_max = value.parse()?,
            "--appenders" => args.appenders = value.parse()?,
            "--raw-in-flight" => args.raw_in_flight = value.parse()?,
            "--repeat" => args.repeat = value.parse::<usize>()?.max(1),
            other => return Err(anyhow!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.dir)?;
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .name("storage-bench")
        .spawn(move || async move { run(args).await })
        .map_err(|e| anyhow!("spawn executor: {e}"))?
        .join()
        .map_err(|e| anyhow!("executor: {e}"))?
}

struct Measured {
    bytes: usize,
    elapsed: Duration,
    syncs: u64,
}

impl Measured {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MIB / self.elapsed.as_secs_f64()
    }
}

async fn run(args: Args) -> Result<()> {
    shardlog::storage::prime_iopoll_probe(&args.dir).await?;
    println!(
        "storage_bench: dir {}, {} MiB per case (at most {} batches), group commit with {} \
         appenders, raw writes {} x 1 MiB in flight, best of {} runs",
        args.dir.display(),
        args.bytes >> 20,
        args.ops_max,
        args.appenders,
        args.raw_in_flight,
        args.repeat
    );
    println!(
        "{:<9} {:<22} {:>10} {:>8} {:>12} {:>9} {:>10}",
        "batch", "case", "MB/s", "syncs", "vs raw seq", "vs raw", "batches/s"
    );
    for size in BATCH_SIZES {
        let count = (args.bytes / size).clamp(1, args.ops_max);
        let mut best: Vec<Option<Measured>> = (0..5).map(|_| None).collect();
        for _ in 0..args.repeat {
            // Interleaved, so background noise hits every case alike.
            let runs = [
                raw_sequential(&args.dir, count * size, args.raw_in_flight).await?,
                raw_sync_per_write(&args.dir, size, count).await?,
                log_case(&args.dir, size, count, 1, true).await?,
                log_case(&args.dir, size, count, args.appenders, true).await?,
                log_case(&args.dir, size, count, 1, false).await?,
            ];
            for (slot, run) in best.iter_mut().zip(runs) {
                if slot.as_ref().is_none_or(|b| run.mb_per_s() > b.mb_per_s()) {
                    *slot = Some(run);
                }
            }
        }
        let [
            Some(raw_seq),
            Some(raw_sync),
            Some(single),
            Some(group),
            Some(behind),
        ] = <[Option<Measured>; 5]>::try_from(best).map_err(|_| anyhow!("cases"))?
        else {
            return Err(anyhow!("missing measurement"));
        };
        let label = format!("{} KiB", size / 1024);
        let row = |case: &str, m: &Measured, vs: Option<&Measured>| {
            let ratio = |base: &Measured| format!("{:.0}%", 100.0 * m.mb_per_s() / base.mb_per_s());
            println!(
                "{:<9} {:<22} {:>10.1} {:>8} {:>12} {:>9} {:>10.0}",
                label,
                case,
                m.mb_per_s(),
                m.syncs,
                ratio(&raw_seq),
                vs.map(ratio).unwrap_or_default(),
                (m.bytes / size) as f64 / m.elapsed.as_secs_f64()
            );
        };
        row("raw seq", &raw_seq, None);
        row("raw sync/write", &raw_sync, None);
        row("log sync-per-batch", &single, Some(&raw_sync));
        row(
            &format!("log group commit x{}", args.appenders),
            &group,
            None,
        );
        row("log write-behind", &behind, None);
    }
    Ok(())
}

async fn create(path: &Path) -> Result<DmaFile> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(|e| anyhow!("open {}: {e}", path.display()))
}

/// Sequential O_DIRECT writes of `total` bytes (1 MiB each, `in_flight_max` at a time),
/// then one fdatasync.
async fn raw_sequential(dir: &Path, total: usize, in_flight_max: usize) -> Result<Measured> {
    let path = dir.join("raw-seq.bin");
    let file = create(&path).await?;
    let source = vec![0x5au8; RAW_CHUNK_BYTES];
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut position = 0usize;
    while position < total {
        let len = RAW_CHUNK_BYTES.min((total - position).div_ceil(BLOCK) * BLOCK);
        let mut buffer = file.alloc_dma_buffer(len);
        buffer.as_bytes_mut().copy_from_slice(&source[..len]);
        in_flight.push(file.write_at(buffer, position as u64));
        if in_flight.len() >= in_flight_max {
            in_flight
                .next()
                .await
                .transpose()
                .map_err(|e| anyhow!("write: {e}"))?;
        }
        position += len;
    }
    while let Some(result) = in_flight.next().await {
        result.map_err(|e| anyhow!("write: {e}"))?;
    }
    drop(in_flight);
    file.fdatasync()
        .await
        .map_err(|e| anyhow!("fdatasync: {e}"))?;
    let elapsed = start.elapsed();
    file.close().await.map_err(|e| anyhow!("close: {e}"))?;
    std::fs::remove_file(&path)?;
    Ok(Measured {
        bytes: total,
        elapsed,
        syncs: 1,
    })
}

/// For each batch: write the blocks holding it (rewriting a shared partial block, as an
/// O_DIRECT log must), then fdatasync; one at a time.
async fn raw_sync_per_write(dir: &Path, size: usize, count: usize) -> Result<Measured> {
    let path = dir.join("raw-sync.bin");
    let file = create(&path).await?;
    let source = vec![0xa5u8; size + 2 * BLOCK];
    let start = Instant::now();
    for i in 0..count {
        let from = (i * size) / BLOCK * BLOCK;
        let to = ((i + 1) * size).div_ceil(BLOCK) * BLOCK;
        let mut buffer = file.alloc_dma_buffer(to - from);
        buffer.as_bytes_mut().copy_from_slice(&source[..to - from]);
        file.write_at(buffer, from as u64)
            .await
            .map_err(|e| anyhow!("write: {e}"))?;
        file.fdatasync()
            .await
            .map_err(|e| anyhow!("fdatasync: {e}"))?;
    }
    let elapsed = start.elapsed();
    file.close().await.map_err(|e| anyhow!("close: {e}"))?;
    std::fs::remove_file(&path)?;
    Ok(Measured {
        bytes: size * count,
        elapsed,
        syncs: count as u64,
    })
}

/// `appenders` tasks append `count` batches of `size` bytes in total; each waits for the
/// sync of every batch if `wait_each`, else only the last one.
async fn log_case(
    dir: &Path,
    size: usize,
    count: usize,
    appenders: usize,
    wait_each: bool,
) -> Result<Measured> {
    let log_dir = dir.join(format!("log-{size}-{appenders}-{wait_each}"));
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut config = LogConfig::from_storage(&StorageConfig::default());
    config.sync_policy = SyncPolicy::EveryBatch;
    let cache = Rc::new(BatchCache::new(64 << 20));
    let log = PartitionLog::open(&log_dir, config, cache, Rc::default()).await?;
    let template = batch_of_size(size);
    // Unique buffers, built before the clock starts: a produce request owns its bytes.
    let mut batches: Vec<Vec<Bytes>> = vec![Vec::new(); appenders];
    for i in 0..count {
        batches[i % appenders].push(Bytes::from(template.clone()));
    }
    let syncs_before = log.stats().syncs;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mine in batches {
        let log = log.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut last = Offset(0);
            for batch in mine {
                let result = log.append(batch, 0, 0).await?;
                last = result.last_offset;
                if wait_each {
                    log.wait_synced(last).await?;
                }
            }
            log.wait_synced(last).await
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed();
    let syncs = log.stats().syncs - syncs_before;
    log.close().await?;
    drop(log);
    std::fs::remove_dir_all(&log_dir)?;
    Ok(Measured {
        bytes: size * count,
        elapsed,
        syncs,
    })
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A valid v2 batch of one record, `size` bytes in total.
fn batch_of_size(size: usize) -> Vec<u8> {
    let mut value_len = size.saturating_sub(80);
    loop {
        let batch = build_batch(value_len);
        if batch.len() <= size {
            let mut padded = build_batch(value_len + (size - batch.len()));
            if padded.len() != size {
                padded = batch;
            }
            return padded;
        }
        value_len -= batch.len() - size;
    }
}

fn build_batch(value_len: usize) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, -1); // null key
    put_varint(&mut body, value_len as i64);
    body.extend((0..value_len).map(|i| (i % 251) as u8));
    put_varint(&mut body, 0); // headers
    let mut records = Vec::new();
    put_varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);
    let mut batch = Vec::with_capacity(61 + records.len());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes());
    batch.push(2);
    batch.extend_from_slice(&0u32.to_be_bytes());
    batch.extend_from_slice(&0i16.to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes());
    batch.extend_from_slice(&(-1i16).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.extend_from_slice(&1i32.to_be_bytes());
    batch.extend_from_slice(&records);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}
