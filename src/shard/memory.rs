//! Byte budgets for memory a shard holds on behalf of clients: request bytes that have
//! arrived (read but not yet handled) and response bytes not yet written to a socket.
//!
//! Owns: `MemoryBudget` (a capacity, the bytes in use, the tasks waiting for room) and
//! `Reservation` (bytes taken from a budget, given back when dropped). May import: nothing
//! from this crate. Runs on: one shard (`Rc`, `Cell`; never shared across threads).
//! Invariants: `in_use` is the sum of the live reservations' bytes; a reservation gives back
//! exactly what it holds, once. Waiting is not first-come-first-served: a release wakes the
//! waiters whose request now fits, so a large reservation that cannot be met never blocks
//! smaller ones that can (a large waiter may wait longer under steady small traffic; every
//! reservation is bounded by a request or response limit well below the capacity).
//! Only `force` can take a budget past its capacity, for bytes that already exist and cannot
//! be refused (the first batch of a fetch, KIP-74; the one frame allowed to overdraw the
//! request budget); the budget then admits nothing new until it is back under capacity.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Debug)]
pub struct MemoryBudget {
    capacity_bytes: u64,
    in_use_bytes: Cell<u64>,
    /// Tasks waiting for room: the bytes each needs free, and its waker.
    waiters: RefCell<Vec<(u64, Waker)>>,
}

impl MemoryBudget {
    pub fn new(capacity_bytes: u64) -> Rc<MemoryBudget> {
        Rc::new(MemoryBudget {
            capacity_bytes,
            in_use_bytes: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
        })
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn in_use_bytes(&self) -> u64 {
        self.in_use_bytes.get()
    }

    pub fn available_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.in_use_bytes.get())
    }

    /// An empty reservation on this budget, to grow later.
    pub fn empty(self: &Rc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Takes `bytes` now if they fit.
    pub fn try_reserve(self: &Rc<Self>, bytes: u64) -> Option<Reservation> {
        if bytes > self.available_bytes() {
            return None;
        }
        Some(self.force(bytes))
    }

    /// Takes `bytes` even past the capacity (for bytes that already exist).
    pub fn force(self: &Rc<Self>, bytes: u64) -> Reservation {
        self.in_use_bytes.set(self.in_use_bytes.get() + bytes);
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }

    /// Waits until `bytes` fit (at most the capacity is ever asked for), then takes them.
    pub async fn reserve(self: &Rc<Self>, bytes: u64) -> Reservation {
        let bytes = bytes.min(self.capacity_bytes);
        loop {
            if let Some(reservation) = self.try_reserve(bytes) {
                return reservation;
            }
            self.room_for(bytes).await;
        }
    }

    /// Waits until at least `minimum` bytes are free, then takes as many as are free, up to
    /// `wanted` (`minimum` is capped at `wanted` and at the capacity).
    pub async fn reserve_up_to(self: &Rc<Self>, minimum: u64, wanted: u64) -> Reservation {
        let minimum = minimum.min(wanted).min(self.capacity_bytes);
        loop {
            let available = self.available_bytes();
            if available >= minimum {
                return self.force(wanted.min(available));
            }
            self.room_for(minimum).await;
        }
    }

    /// Completes once at least `bytes` (at most the capacity) are free: at once if they
    /// are, else after a release that frees them. Takes nothing.
    pub fn room_for(&self, bytes: u64) -> RoomFor<'_> {
        RoomFor {
            budget: self,
            bytes: bytes.min(self.capacity_bytes),
        }
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let in_use = self.in_use_bytes.get();
        assert!(in_use >= bytes, "budget releases more than it lent");
        self.in_use_bytes.set(in_use - bytes);
        // Wake only the waiters that fit now; each wakes once and re-registers if it lost
        // the race for the room.
        let available = self.available_bytes();
        let mut woken = Vec::new();
        self.waiters.borrow_mut().retain(|(needed, waker)| {
            let fits = *needed <= available;
            if fits {
                woken.push(waker.clone());
            }
            !fits
        });
        for waker in woken {
            waker.wake();
        }
    }
}

/// See `MemoryBudget::room_for`.
pub struct RoomFor<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl Future for RoomFor<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.budget.available_bytes() >= self.bytes {
            return Poll::Ready(());
        }
        let mut waiters = self.budget.waiters.borrow_mut();
        match waiters
            .iter_mut()
            .find(|(_, w)| w.will_wake(context.waker()))
        {
            Some(entry) => entry.0 = entry.0.min(self.bytes),
            None => waiters.push((self.bytes, context.waker().clone())),
        }
        Poll::Pending
    }
}

/// Bytes taken from a `MemoryBudget`; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Rc<MemoryBudget>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Grows by `bytes` if they fit in the budget.
    pub fn try_grow(&mut self, bytes: u64) -> bool {
        match self.budget.try_reserve(bytes) {
            Some(more) => {
                self.absorb(more);
                true
            }
            None => false,
        }
    }

    /// Grows by `bytes`, waiting for room.
    pub async fn grow(&mut self, bytes: u64) {
        let more = self.budget.reserve(bytes).await;
        self.absorb(more);
    }

    /// Grows or shrinks to exactly `bytes`; growing may pass the capacity (the bytes exist).
    pub fn force_to(&mut self, bytes: u64) {
        if bytes > self.bytes {
            let more = self.budget.force(bytes - self.bytes);
            self.absorb(more);
        } else {
            self.shrink_to(bytes);
        }
    }

    /// Gives back everything above `bytes`.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            let freed = self.bytes - bytes;
            self.bytes = bytes;
            self.budget.release(freed);
        }
    }

    /// Moves `bytes` of this reservation into a new one (at most what this one holds).
    pub fn split_off(&mut self, bytes: u64) -> Reservation {
        let moved = bytes.min(self.bytes);
        self.bytes -= moved;
        Reservation {
            budget: self.budget.clone(),
            bytes: moved,
        }
    }

    fn absorb(&mut self, mut other: Reservation) {
        assert!(
            Rc::ptr_eq(&self.budget, &other.budget),
            "reservations of different budgets merged"
        );
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_return_their_bytes() {
        let budget = MemoryBudget::new(100);
        let mut first = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        let second = first.split_off(20);
        assert_eq!((first.bytes(), second.bytes()), (40, 20));
        assert_eq!(budget.in_use_bytes(), 60);
        drop(second);
        assert_eq!(budget.in_use_bytes(), 40);
        first.shrink_to(10);
        assert_eq!(budget.in_use_bytes(), 10);
        assert!(first.try_grow(90));
        assert!(!first.try_grow(1));
        first.force_to(150);
        assert_eq!(budget.available_bytes(), 0);
        drop(first);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[test]
    fn a_large_waiter_does_not_block_a_small_one() {
        crate::storage::one_off_executor()
            .spawn(|| async {
                let budget = MemoryBudget::new(100);
                let held = budget.try_reserve(90).unwrap();
                let large = glommio::spawn_local({
                    let budget = budget.clone();
                    async move { budget.reserve(50).await.bytes() }
                });
                glommio::yield_if_needed().await;
                // A request that fits goes ahead of the waiting large one.
                let small = budget.reserve(10).await;
                assert_eq!(small.bytes(), 10);
                drop(small);
                drop(held);
                assert_eq!(large.await, 50);
                let partial = budget.reserve_up_to(10, 500).await;
                assert_eq!(partial.bytes(), 100);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
