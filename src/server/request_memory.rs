//! Memory for the request bytes a connection has received: reserved as they arrive (never
//! for the size a frame declares), handed to the request's handler with its frame, released
//! when the request is done.
//!
//! Owns: `HeldBytes` (what one connection holds) and the policy of `reserve_arrived`. May
//! import: `shard::memory`, `shard::Shard`. Runs on: the connection's shard.
//! Invariants: between reads a connection holds exactly its buffered bytes; of all the frames
//! on a shard, at most one at a time overdraws the main budget (`Shard::request_overdraft`).
//!
//! Why three sources: bytes are taken from the shard's main budget
//! (`server.request_memory_bytes_max`) while it has room. When it is full, a small frame (at
//! most `SMALL_FRAME_BYTES`, or a frame whose size is not known yet) takes from the small-frame
//! reserve (`Shard::small_request_memory`), so ApiVersions, metadata, heartbeats and small
//! produces keep flowing while large frames wait. Large frames that only ever held what had
//! arrived could all wait for each other with the budget full of their halves (hold and
//! wait); so one frame per shard may overdraw the main budget and finish, after which it is
//! handled and releases its bytes: the overdraft is at most one frame
//! (`server.request_bytes_max`). Time spent waiting here is the broker's, not the client's,
//! and does not count against the frame's read deadline.

use crate::shard::Shard;
use crate::shard::memory::Reservation;
use crate::shard::metrics::DelayReason;
use futures::future::{Either, select};
use std::rc::Rc;

/// Frames up to this size may use the small-frame reserve.
pub const SMALL_FRAME_BYTES: usize = 64 * 1024;

/// The request bytes one connection holds: its buffered bytes between reads.
pub struct HeldBytes {
    shard: Rc<Shard>,
    main: Reservation,
    small: Reservation,
    /// This connection's frame at the front of the buffer holds the shard's overdraft.
    overdraft: bool,
}

/// What a complete frame takes along to its handler.
pub struct FramePermit {
    _reservations: [Reservation; 2],
}

impl HeldBytes {
    pub fn new(shard: &Rc<Shard>) -> HeldBytes {
        HeldBytes {
            shard: shard.clone(),
            main: shard.request_memory.empty(),
            small: shard.small_request_memory.empty(),
            overdraft: false,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.main.bytes() + self.small.bytes()
    }

    /// The share of a complete frame of `bytes` (its size prefix included). A frame that held
    /// the overdraft gives it back: the next waiting frame may take it.
    pub fn take_frame(&mut self, bytes: u64) -> FramePermit {
        let small = self.small.split_off(bytes);
        let main = self.main.split_off(bytes - small.bytes());
        self.give_back_overdraft();
        FramePermit {
            _reservations: [small, main],
        }
    }

    fn give_back_overdraft(&mut self) {
        if self.overdraft {
            self.overdraft = false;
            self.shard.request_overdraft.set(false);
        }
    }

    /// Adds `read` newly arrived bytes; `front_frame_bytes` is the size the frame at the
    /// front of the buffer declares, if its size prefix has arrived. Waits for room when
    /// needed (the client's further bytes wait in its socket meanwhile: TCP back-pressure);
    /// returns false if shutdown came first.
    pub async fn reserve_arrived(&mut self, read: usize, front_frame_bytes: Option<usize>) -> bool {
        let read = read as u64;
        let small_frame = front_frame_bytes.is_none_or(|bytes| bytes <= SMALL_FRAME_BYTES);
        let mut delayed = false;
        loop {
            if self.main.try_grow(read) || (small_frame && self.small.try_grow(read)) {
                return true;
            }
            if self.overdraft || !self.shard.request_overdraft.get() {
                // Hold-and-wait breaker: this frame may finish past the budget.
                self.shard.request_overdraft.set(true);
                self.overdraft = true;
                self.main.force_to(self.main.bytes() + read);
                return true;
            }
            if !delayed {
                self.shard.metrics.delayed(DelayReason::MemoryBudget);
                delayed = true;
            }
            let main_room = Box::pin(self.shard.request_memory.room_for(read));
            let room: futures::future::LocalBoxFuture<'_, ()> = if small_frame {
                let small_room = Box::pin(self.shard.small_request_memory.room_for(read));
                Box::pin(async move {
                    select(main_room, small_room).await;
                })
            } else {
                main_room
            };
            if let Either::Right(_) = select(room, self.shard.shutdown.clone()).await {
                return false;
            }
        }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.give_back_overdraft();
    }
}
