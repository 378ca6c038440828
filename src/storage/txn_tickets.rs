//! The partition side of transaction verification (KIP-890 part 1): a client's
//! transactional batch may only start a transaction on this partition if the transaction
//! coordinator has verified that the partition is in the producer's ongoing transaction
//! (added with AddPartitionsToTxn). The coordinator leaves a ticket here (producer id and
//! epoch) before it answers the verification; the first transactional batch of that
//! producer takes it, and the producer's next transaction marker drops it. A batch of a
//! producer that already has a transaction in progress here needs no ticket.
//! In cluster mode a coordinator on another broker cannot leave a ticket: the partition's
//! leader asks it (AddPartitionsToTxn v4, verify only) and places the ticket itself on a
//! success answer, but only if its verification is still pending then: one is begun before
//! the question is sent and a marker for the producer drops it (Kafka's VerificationGuard).
//!
//! Owns: `TxnTickets` (in memory only: after a restart the coordinator hands out tickets
//! again on the next verification) and `check_client_append`. May import: storage modules,
//! `crate::model`. Runs on: the shard owning the partition; tickets change only inside an
//! append or in the handling of the coordinator's message, never across an `.await`.
//! Invariants: at most `max` tickets and `max` pending verifications (the oldest is dropped first: its producer's batch is
//! then refused as unverified and the client aborts the transaction); a marker appended for
//! a producer removes its ticket, so a batch verified before a transaction ended cannot
//! start a transaction the coordinator does not know (a "hanging" transaction).

use super::StorageError;
use super::state::LogState;
use super::txn_state::{BatchKind, TxnBatch};
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
pub(crate) struct TxnTickets {
    /// Producer id → the epoch verified.
    tickets: HashMap<i64, i16>,
    /// Producer ids in the order their tickets were given (may hold stale ids).
    order: VecDeque<i64>,
    /// Verifications asked of a transaction coordinator on another broker, not answered
    /// yet: producer id → (epoch, token). A marker for the producer drops its entry, so an
    /// answer that comes back after the transaction ended places no ticket (Kafka's
    /// VerificationGuard).
    pending: HashMap<i64, (i16, u64)>,
    next_token: u64,
    max: usize,
}

impl TxnTickets {
    pub(crate) fn new(max: usize) -> TxnTickets {
        TxnTickets {
            max: max.max(1),
            ..TxnTickets::default()
        }
    }

    /// The coordinator verified `producer_id` at `epoch` for a transaction here.
    pub(crate) fn allow(&mut self, producer_id: i64, epoch: i16) {
        while self.tickets.len() >= self.max && !self.tickets.contains_key(&producer_id) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.tickets.remove(&oldest);
        }
        if self.tickets.insert(producer_id, epoch).is_none() {
            self.order.push_back(producer_id);
        }
        if self.order.len() > 2 * self.max {
            self.order.retain(|id| self.tickets.contains_key(id));
        }
    }

    /// A verification of `producer_id` at `epoch` starts: the token its answer must bring
    /// back to `finish_verification`. At most `max` are pending (the oldest token is
    /// dropped first: its answer then places no ticket and the producer retries).
    pub(crate) fn begin_verification(&mut self, producer_id: i64, epoch: i16) -> u64 {
        while self.pending.len() >= self.max && !self.pending.contains_key(&producer_id) {
            let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, (_, token))| *token)
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.pending.remove(&oldest);
        }
        self.next_token += 1;
        self.pending.insert(producer_id, (epoch, self.next_token));
        self.next_token
    }

    /// The coordinator verified `producer_id` at `epoch`: places its ticket if the
    /// verification that `token` started is still pending (no marker for the producer, and
    /// no later verification, since it began). False: nothing placed.
    pub(crate) fn finish_verification(&mut self, producer_id: i64, epoch: i16, token: u64) -> bool {
        if self.pending.get(&producer_id) != Some(&(epoch, token)) {
            return false;
        }
        self.pending.remove(&producer_id);
        self.allow(producer_id, epoch);
        true
    }

    fn holds(&self, producer_id: i64, epoch: i16) -> bool {
        self.tickets.get(&producer_id) == Some(&epoch)
    }

    fn remove(&mut self, producer_id: i64) {
        self.tickets.remove(&producer_id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tickets.len()
    }
}

/// Refuses a client's transactional data batch whose producer has no transaction in
/// progress here and no ticket for its epoch.
pub(crate) fn check_client_append(
    state: &LogState,
    records: &[u8],
    spans: &[(usize, usize)],
) -> Result<(), StorageError> {
    let txns = state.txns.borrow();
    let tickets = state.txn_tickets.borrow();
    for &(start, len) in spans {
        let Some(batch) = records.get(start..start + len).and_then(TxnBatch::of) else {
            continue;
        };
        let transactional = batch.kind
            == BatchKind::Data {
                transactional: true,
            };
        if transactional
            && !txns.has_ongoing(batch.producer_id)
            && !tickets.holds(batch.producer_id, batch.epoch)
        {
            return Err(StorageError::TransactionNotVerified {
                producer_id: batch.producer_id,
            });
        }
    }
    Ok(())
}

/// An appended batch: a transaction marker, or the batch that starts the producer's
/// transaction, uses up its ticket.
pub(crate) fn on_append(state: &LogState, batch: &TxnBatch) {
    match batch.kind {
        BatchKind::Marker { .. } => {
            let mut tickets = state.txn_tickets.borrow_mut();
            tickets.remove(batch.producer_id);
            tickets.pending.remove(&batch.producer_id);
        }
        BatchKind::Data {
            transactional: true,
        } => state.txn_tickets.borrow_mut().remove(batch.producer_id),
        BatchKind::Data { .. } | BatchKind::OtherControl => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_bounded_oldest_first() {
        let mut tickets = TxnTickets::new(2);
        tickets.allow(1, 0);
        tickets.allow(2, 0);
        tickets.allow(1, 1); // re-verified at a new epoch: still one ticket
        assert!(tickets.holds(1, 1) && !tickets.holds(1, 0));
        tickets.allow(3, 0);
        assert_eq!(tickets.len(), 2);
        assert!(!tickets.holds(1, 1), "the oldest ticket goes first");
        assert!(tickets.holds(2, 0) && tickets.holds(3, 0));
        tickets.remove(2);
        for id in 10..100 {
            tickets.allow(id, 0);
        }
        assert_eq!(tickets.len(), 2);
        assert!(tickets.order.len() <= 4);
    }

    #[test]
    fn an_answer_places_a_ticket_only_while_its_verification_is_pending() {
        let mut tickets = TxnTickets::new(2);
        let token = tickets.begin_verification(7, 1);
        assert!(!tickets.holds(7, 1), "nothing before the answer");
        assert!(!tickets.finish_verification(7, 0, token), "another epoch");
        assert!(tickets.finish_verification(7, 1, token));
        assert!(tickets.holds(7, 1));
        assert!(
            !tickets.finish_verification(7, 1, token),
            "an answer counts once"
        );

        // A later verification of the same producer supersedes an earlier one.
        let first = tickets.begin_verification(8, 0);
        let second = tickets.begin_verification(8, 0);
        assert!(!tickets.finish_verification(8, 0, first));
        assert!(tickets.finish_verification(8, 0, second));

        // Bounded: the oldest pending verification goes first.
        let a = tickets.begin_verification(1, 0);
        let b = tickets.begin_verification(2, 0);
        let c = tickets.begin_verification(3, 0);
        assert_eq!(tickets.pending.len(), 2);
        assert!(!tickets.finish_verification(1, 0, a));
        assert!(tickets.finish_verification(2, 0, b));
        assert!(tickets.finish_verification(3, 0, c));
    }
}
