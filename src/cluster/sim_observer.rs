//! The simulator's observer: a broker-only node fetching the metadata log from random
//! voters (`crate::cluster::observation`), checked against the common applied sequence.

use super::{RecordingMachine, Simulation, Violation, ViolationKind};
use crate::cluster::observation::{apply_chunk, chunk_for};

/// A broker-only node observing the log (`super::observation`).
#[derive(Debug, Default)]
pub(super) struct SimObserver {
    pub(super) machine: RecordingMachine,
    pub(super) applied: u64,
    /// Leading entries already checked against the common sequence.
    verified: usize,
}

impl Simulation {
    /// The observer asks a random live node for what follows its applied index; a request
    /// or answer lost on the network is simply not applied. What it applies must be a prefix
    /// of the common sequence (`check` has folded every node's applied entries into it).
    pub(super) fn observe(&mut self, faults: bool) -> Result<(), Violation> {
        if faults && !self.rng.chance(self.config.observe_per_mille) {
            return Ok(());
        }
        if self.rng.chance(self.config.observer_restart_per_mille) {
            self.observer = SimObserver::default();
        }
        let live = self.live_slots();
        if live.is_empty() || self.rng.chance(self.loss_per_mille) {
            return Ok(());
        }
        let slot = live[self.rng.below(live.len() as u64) as usize];
        let bytes_max = 1 + self.rng.below(4096);
        let Some(driver) = self.nodes[slot].driver.as_ref() else {
            return Ok(());
        };
        let chunk = match chunk_for(driver, self.observer.applied, 0, bytes_max) {
            Ok(chunk) => chunk,
            Err(e) => {
                return Err(self.violation(ViolationKind::DriverError, format!("chunk_for: {e}")));
            }
        };
        if self.rng.chance(self.loss_per_mille) {
            return Ok(());
        }
        self.report.observer_fetches += 1;
        if chunk.snapshot.is_some() {
            self.report.observer_snapshots += 1;
        }
        let before = self.observer.applied;
        match apply_chunk(&mut self.observer.machine, before, &chunk) {
            Ok(applied) => self.observer.applied = applied,
            Err(e) => {
                return Err(self.violation(ViolationKind::Divergence, format!("observer: {e}")));
            }
        }
        if chunk
            .snapshot
            .as_ref()
            .is_some_and(|(index, _)| *index > before)
        {
            self.observer.verified = 0;
        }
        let machine = &self.observer.machine;
        if machine.entries.len() as u64 != self.observer.applied || machine.gap.is_some() {
            return Err(self.violation(
                ViolationKind::Divergence,
                format!(
                    "observer applied through {} but holds {} entries (gap {:?})",
                    self.observer.applied,
                    machine.entries.len(),
                    machine.gap
                ),
            ));
        }
        for index in self.observer.verified..machine.entries.len() {
            if self.committed.get(index) != Some(&machine.entries[index]) {
                return Err(self.violation(
                    ViolationKind::Divergence,
                    format!(
                        "observer applied {:?} at index {} where the nodes applied {:?}",
                        machine.entries[index],
                        index + 1,
                        self.committed.get(index)
                    ),
                ));
            }
        }
        self.observer.verified = machine.entries.len();
        Ok(())
    }
}
