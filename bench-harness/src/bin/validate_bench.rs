//! validate_bench: CPU cost of the produce path's record validation
//! (`shardlog::model::validation::validate_client_records`: Kafka's LogValidator rules, every
//! record walked, compressed batches streamed through their decoder) next to what the broker
//! checked before it (`validate_batch`: header, length and CRC-32C only), measured in the
//! same run on the same batches.
//!
//! Batches are realistic: records of 1 KiB (a 16-byte key, a value of words drawn from a
//! small vocabulary, so codecs compress about 2-4x, one header), in batches of 16 KiB (the
//! Java producer's default batch.size) and 1 MiB (librdkafka's), uncompressed and in every
//! codec. CPU time is the thread's (CLOCK_THREAD_CPUTIME_ID); each case loops over its batch
//! for `--seconds` (default 1.0) and `--repeat` runs (default 3) keep the best, so other
//! work on a shared machine shows less. Costs are in CPU µs per MiB of batch bytes (what
//! the client sent) and per MiB of uncompressed records.
//!
//! Usage: `cargo run --release -p bench-harness --bin validate_bench -- [--seconds S]
//! [--repeat N]`. See docs/benchmarking.md, "Record validation cost".

use anyhow::{Result, anyhow};
use shardlog::model::batch::validate_batch;
use shardlog::model::compression::recompress_batch;
use shardlog::model::records::{NewRecord, encode_batch};
use shardlog::model::validation::{ValidationLimits, validate_client_records};
use shardlog::model::{Compression, RecordBatchHeader};

const RECORD_BYTES: usize = 1024;
const BATCH_SIZES: [usize; 2] = [16 * 1024, 1024 * 1024];
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Lz4,
    Compression::Zstd,
    Compression::Snappy,
    Compression::Gzip,
];
const MIB: f64 = 1024.0 * 1024.0;
/// The broker's default `storage.decompressed_batch_bytes_max`.
const DECOMPRESSED_MAX: usize = 64 << 20;

struct Args {
    seconds: f64,
    repeat: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        seconds: 1.0,
        repeat: 3,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse()?,
            "--repeat" => args.repeat = value.parse::<usize>()?.max(1),
            other => return Err(anyhow!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// Deterministic text-like bytes: words from a small vocabulary.
fn words(seed: &mut u64, len: usize) -> Vec<u8> {
    const VOCABULARY: [&str; 16] = [
        "order",
        "id",
        "customer",
        "amount",
        "EUR",
        "status",
        "shipped",
        "pending",
        "item",
        "quantity",
        "price",
        "warehouse",
        "berlin",
        "lisbon",
        "2026-11-24",
        "true",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(VOCABULARY[(*seed % 16) as usize].as_bytes());
        out.extend_from_slice(format!("={} ", *seed % 10_000).as_bytes());
    }
    out.truncate(len);
    out
}

/// An uncompressed batch of 1 KiB records filling about `batch_bytes`.
fn plain_batch(batch_bytes: usize) -> Vec<u8> {
    let count = (batch_bytes / RECORD_BYTES).max(1);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let keys: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("key-{i:012}").into_bytes())
        .collect();
    let values: Vec<Vec<u8>> = (0..count)
        .map(|_| words(&mut seed, RECORD_BYTES - 24))
        .collect();
    let records: Vec<NewRecord<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(key, value)| NewRecord {
            key: Some(key),
            value: Some(value),
        })
        .collect();
    encode_batch(&records, 1_700_000_000_000)
}

/// Best-of-`repeat` thread CPU µs per call of `check` on `batch`.
fn cpu_us_per_call(args: &Args, mut check: impl FnMut() -> bool) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..args.repeat {
        let start = thread_cpu_seconds();
        let mut calls = 0u64;
        while thread_cpu_seconds() - start < args.seconds {
            for _ in 0..16 {
                if !check() {
                    return Err(anyhow!("a valid batch failed validation"));
                }
            }
            calls += 16;
        }
        best = best.min((thread_cpu_seconds() - start) * 1e6 / calls as f64);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let limits = ValidationLimits {
        decompressed_bytes_max: DECOMPRESSED_MAX,
    };
    println!(
        "| batch | codec | records | batch bytes | ratio | CRC only µs/MiB | validation µs/MiB \
         | added µs/MiB | added µs/MiB uncompressed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for batch_bytes in BATCH_SIZES {
        let plain = plain_batch(batch_bytes);
        for codec in CODECS {
            let batch = recompress_batch(&plain, codec, DECOMPRESSED_MAX)?.unwrap_or(plain.clone());
            let records = RecordBatchHeader::view(&batch)?.records_count.get();
            let off = cpu_us_per_call(&args, || validate_batch(&batch).is_ok())?;
            let on = cpu_us_per_call(&args, || validate_client_records(&batch, &limits).is_ok())?;
            let wire_mib = batch.len() as f64 / MIB;
            let plain_mib = plain.len() as f64 / MIB;
            println!(
                "| {} KiB | {codec:?} | {records} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
                batch_bytes / 1024,
                batch.len(),
                plain.len() as f64 / batch.len() as f64,
                off / wire_mib,
                on / wire_mib,
                (on - off) / wire_mib,
                (on - off) / plain_mib,
            );
        }
    }
    Ok(())
}
