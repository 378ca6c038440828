//! The simulator's invariants (see `super`'s doc): committed history, leaders per epoch,
//! acknowledged writes, and what "recovered" means after healing.

use super::{NodeId, Record, World};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(super) struct History {
    /// Record ids by offset, as every replica's high watermark has shown them; never changes.
    pub committed: Vec<u64>,
    /// acks=all acknowledgements `(offset, id)` not yet found in `committed`.
    pub acked: Vec<(i64, u64)>,
    /// Acknowledgements found in `committed`.
    pub acked_verified: usize,
    pub leaders: BTreeMap<i32, NodeId>,
}

/// After every step: each replica's log below its high watermark is the committed history
/// (or extends it), and every acknowledgement the history covers is in it.
pub(super) fn check_step(world: &mut World) -> Result<(), String> {
    let history = &mut world.history;
    for broker in &mut world.brokers {
        let high_watermark = broker.high_watermark();
        let log = broker.records();
        if high_watermark > log.len() as i64 {
            return Err(format!(
                "broker {}: high watermark {high_watermark} past its log end {}",
                broker.id(),
                log.len()
            ));
        }
        for offset in broker.verified_prefix.max(0)..high_watermark {
            let record = log[offset as usize];
            if offset > 0 && log[offset as usize - 1].epoch > record.epoch {
                return Err(format!(
                    "broker {}: epoch goes down at offset {offset}",
                    broker.id()
                ));
            }
            match history.committed.get(offset as usize) {
                Some(&id) if id != record.id => {
                    return Err(format!(
                        "broker {}: committed offset {offset} holds record {} but was {id}",
                        broker.id(),
                        record.id
                    ));
                }
                Some(_) => {}
                None => history.committed.push(record.id),
            }
        }
        broker.verified_prefix = broker.verified_prefix.max(high_watermark);
    }
    check_acked(history)
}

fn check_acked(history: &mut History) -> Result<(), String> {
    let mut index = 0;
    while index < history.acked.len() {
        let (offset, id) = history.acked[index];
        match history.committed.get(offset as usize) {
            Some(&committed) if committed != id => {
                return Err(format!(
                    "acknowledged record {id} at offset {offset} lost: the committed record there is {committed}"
                ));
            }
            Some(_) => {
                history.acked.swap_remove(index);
                history.acked_verified += 1;
            }
            None => index += 1,
        }
    }
    Ok(())
}

/// A new leader: the only one of its epoch, holding the whole committed history.
pub(super) fn check_new_leader(
    history: &mut History,
    node: NodeId,
    epoch: i32,
    log: &[Record],
) -> Result<(), String> {
    if let Some(&other) = history.leaders.get(&epoch)
        && other != node
    {
        return Err(format!("epoch {epoch} has two leaders: {other} and {node}"));
    }
    history.leaders.insert(epoch, node);
    for (offset, &id) in history.committed.iter().enumerate() {
        if log.get(offset).map(|record| record.id) != Some(id) {
            return Err(format!(
                "broker {node} leads epoch {epoch} without committed record {id} at offset {offset} (log end {})",
                log.len()
            ));
        }
    }
    Ok(())
}

/// At the end: every acknowledgement is in the committed history.
pub(super) fn check_final(world: &World) -> Result<(), String> {
    match world.history.acked.first() {
        Some((offset, id)) => Err(format!(
            "acknowledged record {id} at offset {offset} never committed ({} committed)",
            world.history.committed.len()
        )),
        None => Ok(()),
    }
}

/// Recovered: a leader in the controller's current epoch, every replica in the ISR, every
/// broker up, every replica's log equal to the leader's (a broker a reassignment removed
/// keeps what it had), the high watermark at the log end.
pub(super) fn converged(world: &World) -> bool {
    let state = world.controller.state();
    let Some(leader_id) = state.leader else {
        return false;
    };
    if state.isr.len() != state.replicas.len() {
        return false;
    }
    let leader = &world.brokers[(leader_id - 1) as usize];
    if leader.leader_epoch() != Some(state.leader_epoch)
        || leader.high_watermark() != leader.records().len() as i64
    {
        return false;
    }
    world.brokers.iter().all(|broker| {
        broker.is_up()
            && (!state.replicas.contains(&broker.id()) || broker.records() == leader.records())
    })
}

pub(super) fn describe_brokers(world: &World) -> String {
    world
        .brokers
        .iter()
        .map(|broker| {
            format!(
                "{}: up {} leads {:?} log end {} hw {}",
                broker.id(),
                broker.is_up(),
                broker.leader_epoch(),
                broker.records().len(),
                broker.high_watermark()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
