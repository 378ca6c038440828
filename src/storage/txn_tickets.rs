//! The partition side of transaction verification (KIP-890 part 1): a client's
//! transactional batch may only start a transaction on this partition if the transaction
//! coordinator has verified that the partition is in the producer's ongoing transaction
//! (added with AddPartitionsToTxn). The coordinator leaves a ticket here (producer id and
//! epoch) before it answers the verification; the first transactional batch of that
//! producer takes it, and the producer's next transaction marker drops it. A batch of a
//! producer that already has a transaction in progress here needs no ticket.
//!
//! Owns: `TxnTickets` (in memory only: after a restart the coordinator hands out tickets
//! again on the next verification) and `check_client_append`. May import: storage modules,
//! `crate::model`. Runs on: the shard owning the partition; tickets change only inside an
//! append or in the handling of the coordinator's message, never across an `.await`.
//! Invariants: at most `max` tickets (the oldest is dropped first: its producer's batch is
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
        BatchKind::Marker { .. }
        | BatchKind::Data {
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
}
