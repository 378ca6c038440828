//! kill -9: a child process (this test binary, re-executed with `SHARDLOG_CRASH_CHILD_DIR`
//! set) appends with sync-per-batch from several concurrent tasks and prints every
//! acknowledged (synced) batch; the parent SIGKILLs it at a random moment, reopens the log
//! and checks that every acknowledged batch is present and byte-identical, that every batch
//! in the log is whole and byte-identical to what some task sent (nothing half-present),
//! and that offsets are contiguous. The same directory is reused for every cycle, so each
//! child also recovers what the previous kill left. `SHARDLOG_SEED` replays a run;
//! `SHARDLOG_CRASH_CYCLES` changes the number of cycles (default 50).

use super::*;
use crate::model::Offset;
use crate::model::batch::test_support::build_batch;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DIR_ENV: &str = "SHARDLOG_CRASH_CHILD_DIR";
const CHILD_CYCLE_ENV: &str = "SHARDLOG_CRASH_CHILD_CYCLE";
const TEST_NAME: &str = "storage::tests::crash_tests::kill_dash_nine_loses_no_acknowledged_batch";
const CYCLES_DEFAULT: usize = 50;
const APPENDERS: u64 = 4;
const LEADER_EPOCH: i32 = 3;
/// The child stops by itself after this long if nobody kills it.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(20);
/// Keep the log under this size between cycles (DeleteRecords + retention).
const LOG_BYTES_MAX: u64 = 4 << 20;

fn crash_config() -> LogConfig {
    let mut config = small_config();
    config.segment_bytes = 512 * 1024;
    config.write_chunk_bytes = 64 * 1024;
    config.read_chunk_bytes = 64 * 1024;
    config
}

/// The batch a task sends: its identity is in the CRC-covered base timestamp, so any batch
/// found in the log can be regenerated and compared byte for byte.
fn crash_batch(cycle: u64, task: u64, seq: u64) -> Bytes {
    let tag = (cycle << 40) | (task << 32) | seq;
    let mut rng = Rng::new(tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let count = rng.range(1, 4) as usize;
    let values: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let len = if rng.range(0, 4) == 0 {
                rng.range(1, 64 * 1024)
            } else {
                rng.range(1, 2000)
            };
            let mut value = vec![0u8; len as usize];
            rng.fill(&mut value);
            value
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    Bytes::from(build_batch(&refs, tag as i64))
}

fn tag_of(batch: &[u8]) -> (u64, u64, u64) {
    let tag = batch::RecordBatchHeader::view(batch)
        .unwrap()
        .base_timestamp
        .get() as u64;
    (tag >> 40, (tag >> 32) & 0xff, tag & 0xffff_ffff)
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_batch() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let cycle = std::env::var(CHILD_CYCLE_ENV)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        child(PathBuf::from(dir), cycle);
        return;
    }
    let cycles = std::env::var("SHARDLOG_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CYCLES_DEFAULT);
    let mut rng = Rng::from_env();
    let dir = temp_dir();
    let mut acked: HashMap<i64, (u64, u64, u64)> = HashMap::new();
    let mut total_acks = 0;
    for cycle in 1..=cycles as u64 {
        let delay = Duration::from_millis(rng.range(5, 150));
        let acks = run_child(dir.path(), cycle, delay);
        eprintln!(
            "cycle {cycle}: killed after {delay:?}, {} acknowledged",
            acks.len()
        );
        total_acks += acks.len();
        acked.extend(acks);
        let path = dir.path().to_path_buf();
        let checked = std::mem::take(&mut acked);
        let close_cleanly = rng.range(0, 4) == 0;
        let (sender, receiver) = std::sync::mpsc::channel();
        run(move || async move {
            let remaining = verify(&path, checked, close_cleanly).await;
            sender.send(remaining).unwrap();
        });
        acked = receiver.recv().unwrap();
    }
    assert!(
        total_acks > cycles,
        "children acknowledged only {total_acks} batches"
    );
}

/// Runs one child for `delay`, SIGKILLs it, returns the acknowledged batches it printed.
fn run_child(dir: &Path, cycle: u64, delay: Duration) -> Vec<(i64, (u64, u64, u64))> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_CYCLE_ENV, cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut acks = Vec::new();
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            // Only whole lines: the kill may cut the last one.
            if line.ends_with(b"\n")
                && let Some(ack) = parse_ack(&line)
            {
                acks.push(ack);
            }
            line.clear();
        }
        acks
    });
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

fn parse_ack(line: &[u8]) -> Option<(i64, (u64, u64, u64))> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.strip_prefix("ack ")?.split_whitespace();
    let mut next = || fields.next()?.parse::<u64>().ok();
    let offset = next()? as i64;
    Some((offset, (next()?, next()?, next()?)))
}

/// Reopens the log and checks it; returns the acks still to check in later cycles.
async fn verify(
    dir: &Path,
    acked: HashMap<i64, (u64, u64, u64)>,
    close_cleanly: bool,
) -> HashMap<i64, (u64, u64, u64)> {
    let log = open(dir, &crash_config(), &cache()).await;
    let batches = read_all(&log).await;
    eprintln!(
        "  reopened: {} batches, offsets [{}, {}), {} bytes, {} segments",
        batches.len(),
        log.log_start_offset(),
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_count()
    );
    let mut by_offset = HashMap::new();
    let mut expected_next = log.log_start_offset().0;
    let mut last_seq: HashMap<(u64, u64), u64> = HashMap::new();
    for (i, stored) in batches.iter().enumerate() {
        let base = base_offset(stored);
        assert!(
            i > 0 || base <= expected_next,
            "first batch starts after the log start"
        );
        assert!(i == 0 || base == expected_next, "offset gap before {base}");
        let (cycle, task, seq) = tag_of(stored);
        let want = stamped(&crash_batch(cycle, task, seq), base, LEADER_EPOCH);
        assert_eq!(
            &stored[..],
            &want[..],
            "batch at {base} is not what task {task} sent"
        );
        let previous = last_seq.insert((cycle, task), seq);
        assert!(
            previous.is_none_or(|p| p < seq),
            "duplicate or reordered batch at {base}"
        );
        expected_next = batch::RecordBatchHeader::view(stored)
            .unwrap()
            .next_offset();
        by_offset.insert(base, (cycle, task, seq));
    }
    assert_eq!(
        log.log_end_offset().0,
        expected_next.max(log.log_start_offset().0)
    );
    let log_start = log.log_start_offset().0;
    for (offset, identity) in &acked {
        if *offset >= log_start {
            assert_eq!(
                by_offset.get(offset),
                Some(identity),
                "acknowledged batch at {offset} lost"
            );
        }
    }
    if log.size_bytes() > LOG_BYTES_MAX {
        let end = log.log_end_offset().0;
        log.delete_records_before(Offset(end - (end - log_start) / 4))
            .await
            .unwrap();
        log.apply_retention(0).await.unwrap();
    }
    if close_cleanly {
        log.close().await.unwrap();
    }
    let log_start = log.log_start_offset().0;
    acked.into_iter().filter(|(o, _)| *o >= log_start).collect()
}

/// The child: appenders that print `ack <offset> <cycle> <task> <seq>` once synced.
fn child(dir: PathBuf, cycle: u64) {
    run(move || async move {
        let log = open(&dir, &crash_config(), &cache()).await;
        let mut tasks = Vec::new();
        for task in 0..APPENDERS {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for seq in 0.. {
                    let batch = crash_batch(cycle, task, seq);
                    let result = log.append(batch, LEADER_EPOCH, 0).await.unwrap();
                    log.wait_synced(result.last_offset).await.unwrap();
                    let line = format!("ack {} {cycle} {task} {seq}\n", result.base_offset);
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line.as_bytes()).unwrap();
                    stdout.flush().unwrap();
                }
            }));
        }
        glommio::timer::sleep(CHILD_LIFETIME_MAX).await;
        drop(tasks);
    });
}
