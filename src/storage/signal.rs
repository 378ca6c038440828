//! `Signal`: a wake-all notification for tasks of one shard that wait for a condition on
//! log state (an offset being synced, an append, admission space, the flusher exiting).
//!
//! Owns: the wakers of the tasks currently waiting. May import: std only.
//! Invariants: a waiter re-checks its condition after every wake-up (notifications may be
//! spurious); a dropped waiter removes its waker, so cancelled waits (e.g. long-poll fetches
//! that time out) never accumulate. Runs on: the shard owning the partition (`!Send`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct Signal {
    wakers: RefCell<HashMap<u64, Waker>>,
    next_id: Cell<u64>,
}

impl Signal {
    /// Wakes every current waiter; each re-checks its condition.
    pub(crate) fn notify(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Completes once `ready()` returns true, re-checking it after each `notify`.
    pub(crate) fn wait_until<F: FnMut() -> bool>(&self, ready: F) -> WaitUntil<'_, F> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        WaitUntil {
            signal: self,
            id,
            ready,
        }
    }

    #[cfg(test)]
    pub(crate) fn waiter_count(&self) -> usize {
        self.wakers.borrow().len()
    }
}

pub(crate) struct WaitUntil<'a, F: FnMut() -> bool> {
    signal: &'a Signal,
    id: u64,
    ready: F,
}

impl<F: FnMut() -> bool + Unpin> Future for WaitUntil<'_, F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if (self.ready)() {
            self.signal.wakers.borrow_mut().remove(&self.id);
            return Poll::Ready(());
        }
        let id = self.id;
        self.signal
            .wakers
            .borrow_mut()
            .insert(id, cx.waker().clone());
        Poll::Pending
    }
}

impl<F: FnMut() -> bool> Drop for WaitUntil<'_, F> {
    fn drop(&mut self) {
        self.signal.wakers.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_waiter_unregisters() {
        let signal = Signal::default();
        let flag = Cell::new(false);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        {
            let mut wait = Box::pin(signal.wait_until(|| flag.get()));
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            assert_eq!(signal.waiter_count(), 1);
        }
        assert_eq!(signal.waiter_count(), 0);
        let mut wait = Box::pin(signal.wait_until(|| flag.get()));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        flag.set(true);
        signal.notify();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
