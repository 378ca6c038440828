//! kill -9 with transactions: a child process (this test binary, re-executed with
//! `SHARDLOG_TXN_CRASH_CHILD_DIR` set) runs transactional producers, one per task, each
//! writing a few transactional batches and then a COMMIT or ABORT marker that it syncs and
//! prints as acknowledged; segments are small, so rolls (and `.txnindex` writes) race with
//! the kill. The parent SIGKILLs it at a random moment, reopens the log and checks that
//! every acknowledged marker is present, and that the recovered last stable offset and the
//! aborted transactions returned by read_committed reads equal those of a replay of the
//! whole recovered log (also after a random `truncate_to` in a third of the cycles). Like
//! a coordinator after a crash, it then aborts the transactions
//! the dead producers left open. `SHARDLOG_SEED` replays a run; `SHARDLOG_TXN_CRASH_CYCLES`
//! changes the number of cycles (default 25).

use super::txn_tests::{Model, marker, txn_data};
use super::*;
use crate::model::Offset;
use crate::model::batch::RecordBatchHeader;
use crate::model::records::{control_record_commits, read_records};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DIR_ENV: &str = "SHARDLOG_TXN_CRASH_CHILD_DIR";
const CHILD_CYCLE_ENV: &str = "SHARDLOG_TXN_CRASH_CHILD_CYCLE";
const TEST_NAME: &str =
    "storage::tests::txn_crash_tests::kill_dash_nine_keeps_transactions_consistent_with_the_log";
const CYCLES_DEFAULT: usize = 25;
const PRODUCERS: i64 = 4;
/// The child stops by itself after this long if nobody kills it.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(20);
/// Read starts checked per reopen.
const READ_SAMPLES: usize = 200;

/// An acknowledged marker: (offset, producer id, commit).
type Ack = (i64, i64, bool);

#[test]
fn kill_dash_nine_keeps_transactions_consistent_with_the_log() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let cycle = std::env::var(CHILD_CYCLE_ENV)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        child(PathBuf::from(dir), cycle);
        return;
    }
    let cycles = std::env::var("SHARDLOG_TXN_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CYCLES_DEFAULT);
    let mut rng = Rng::from_env();
    eprintln!("SHARDLOG_SEED={}", rng.seed);
    let dir = temp_dir();
    let mut total_acks = 0;
    for cycle in 1..=cycles as u64 {
        let delay = Duration::from_millis(rng.range(5, 150));
        let acks = run_child(dir.path(), cycle, delay);
        eprintln!(
            "cycle {cycle}: killed after {delay:?}, {} markers acknowledged",
            acks.len()
        );
        total_acks += acks.len();
        let path = dir.path().to_path_buf();
        let seed = rng.next_u64();
        let close_cleanly = rng.range(0, 4) == 0;
        run(move || async move { verify(&path, acks, seed, close_cleanly).await });
    }
    assert!(
        total_acks > cycles,
        "children acknowledged only {total_acks} markers"
    );
}

fn run_child(dir: &Path, cycle: u64, delay: Duration) -> Vec<Ack> {
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

fn parse_ack(line: &[u8]) -> Option<Ack> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.strip_prefix("marker ")?.split_whitespace();
    let offset = fields.next()?.parse().ok()?;
    let producer_id = fields.next()?.parse().ok()?;
    let commit = fields.next()? == "commit";
    Some((offset, producer_id, commit))
}

async fn verify(dir: &Path, acks: Vec<Ack>, seed: u64, close_cleanly: bool) {
    let mut rng = Rng::new(seed);
    let config = small_config();
    let log = open(dir, &config, &cache()).await;
    let batches = read_all(&log).await;
    for &(offset, producer_id, commit) in &acks {
        let read = log.read(Offset(offset), 1, true).await.unwrap();
        let bytes = &read.batches[0];
        let header = RecordBatchHeader::view(bytes).unwrap();
        assert_eq!(
            header.base_offset(),
            offset,
            "acknowledged marker at {offset} lost"
        );
        assert!(header.is_control() && header.producer_id.get() == producer_id);
        let records = read_records(bytes).unwrap();
        assert_eq!(
            records[0].key.and_then(control_record_commits),
            Some(commit)
        );
    }
    let model = Model::from_log(&batches);
    eprintln!(
        "  reopened: {} batches, {} segments, LSO {}, {} ongoing",
        batches.len(),
        log.segment_count(),
        log.last_stable_offset(),
        model.ongoing().len()
    );
    model.verify(&log, &mut rng, READ_SAMPLES).await;
    let model = if rng.range(0, 3) == 0 && log.log_end_offset().0 > 0 {
        // As a replica that diverged: the transaction state must match the shorter log.
        let offset = rng.range(0, log.log_end_offset().0 as u64) as i64;
        let end = log.truncate_to(Offset(offset)).await.unwrap();
        let model = Model::from_log(&read_all(&log).await);
        eprintln!("  truncated to {end}: LSO {}", log.last_stable_offset());
        model.verify(&log, &mut rng, READ_SAMPLES).await;
        model
    } else {
        model
    };
    // The coordinator aborts what the dead producers left open.
    for producer_id in model.ongoing() {
        let result = log
            .append(marker(producer_id, 0, false, 0), 0, 0)
            .await
            .unwrap();
        log.wait_synced(result.last_offset).await.unwrap();
    }
    assert_eq!(log.last_stable_offset(), log.high_watermark());
    if close_cleanly {
        log.close().await.unwrap();
    }
}

/// Each task is one producer (a fresh id per cycle): transactions of 1-3 batches ended by
/// a synced marker, printed as `marker <offset> <producer id> commit|abort`.
fn child(dir: PathBuf, cycle: u64) {
    run(move || async move {
        let log = open(&dir, &small_config(), &cache()).await;
        let mut tasks = Vec::new();
        for task in 0..PRODUCERS {
            let log = log.clone();
            let producer_id = cycle as i64 * 16 + task;
            tasks.push(glommio::spawn_local(async move {
                let mut rng = Rng::new((producer_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut sequence = 0;
                for _transaction in 0u64.. {
                    for _ in 0..rng.range(1, 4) {
                        let count = rng.range(1, 4) as usize;
                        let value_bytes = rng.range(10, 3000) as usize;
                        let batch = txn_data(producer_id, 0, sequence, count, value_bytes);
                        sequence += count as i32;
                        log.append(batch, 0, 0).await.unwrap();
                        if rng.range(0, 3) == 0 {
                            glommio::executor().yield_now().await;
                        }
                    }
                    let commit = rng.range(0, 2) == 0;
                    let result = log
                        .append(marker(producer_id, 0, commit, 0), 0, 0)
                        .await
                        .unwrap();
                    log.wait_synced(result.last_offset).await.unwrap();
                    let kind = if commit { "commit" } else { "abort" };
                    let line = format!("marker {} {producer_id} {kind}\n", result.base_offset);
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
