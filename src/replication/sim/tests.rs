use super::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(default)
}

fn config(seed: u64, fault_steps: u64, bugs: Bugs) -> SimConfig {
    SimConfig {
        seed,
        fault_steps,
        bugs,
        trace: std::env::var("SHARDLOG_SIM_TRACE").is_ok_and(|v| v == "1"),
    }
}

/// 300 seeds × 2000 fault steps by default (`make test`); `SHARDLOG_SIM_SEEDS` /
/// `SHARDLOG_SIM_STEPS` make a longer run (`make sim`), `SHARDLOG_REPLICATION_SIM_SEED`
/// replays one seed.
#[test]
fn seeded_runs_keep_replication_safe_and_live() {
    let steps = env_u64("SHARDLOG_SIM_STEPS", 2_000);
    let seeds: Vec<u64> = match seed_from_env() {
        Some(seed) => vec![seed],
        None => (1..=env_u64("SHARDLOG_SIM_SEEDS", 300)).collect(),
    };
    let started = std::time::Instant::now();
    let mut total = SimReport::default();
    for &seed in &seeds {
        match run(config(seed, steps, Bugs::default())) {
            Ok(report) => total.add(&report),
            Err(violation) => panic!("replication simulator: {violation}"),
        }
    }
    println!(
        "replication sim: {} seeds x {steps} fault steps, {:.1} s: {total:?}",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    // The run exercised what it claims to (a sweep with no faults would pass vacuously).
    if seeds.len() >= 100 {
        assert!(total.acked > 0 && total.committed > 0, "{total:?}");
        assert!(total.crashes > 0 && total.power_losses > 0, "{total:?}");
        assert!(total.truncations > 0 && total.isr_changes > 0, "{total:?}");
        assert!(total.reassignments > 0, "{total:?}");
        assert!(total.leader_epochs > seeds.len() as u64, "{total:?}");
        // Each offline run was checked to be an unclean restart taking the last eligible
        // replica; how many there are grows with the run length (7-8% at 2000 steps, 20% at
        // 5000), so this only guards against a collapse.
        assert!(
            total.offline_without_eligible_replica * 2 < seeds.len() as u64,
            "most runs must end live: {total:?}"
        );
    }
}

#[test]
fn the_checks_catch_deliberate_bugs() {
    for bugs in [
        Bugs {
            ack_on_append: true,
            ..Bugs::default()
        },
        Bugs {
            no_epoch_truncation: true,
            ..Bugs::default()
        },
    ] {
        let caught = (1..=200).find_map(|seed| run(config(seed, 2_000, bugs)).err());
        let violation = caught.unwrap_or_else(|| panic!("{bugs:?} went unnoticed in 200 seeds"));
        assert!(violation.to_string().starts_with(SEED_ENV), "{violation}");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(config(7, 1_000, Bugs::default()));
    let second = run(config(7, 1_000, Bugs::default()));
    assert_eq!(first, second);
    assert!(first.is_ok_and(|report| report.steps > 1_000));
}
