//! Replies between shards without cross-thread wakers.
//!
//! A request carries a `Reply<T>`: just the origin shard and a request id. The shard that
//! answers calls `Reply::send`, which puts the value into a `ShardMessage::Reply` back to
//! the origin over the channel mesh; the origin's mesh receiver completes a *local* one-shot
//! there. So every task wake-up happens on the task's own executor thread. (Waking a glommio
//! task from another thread goes through glommio's foreign-wake path, which crashed with a
//! double free under load.)
//!
//! Runs on: every shard; the routing state is thread-local (one executor per thread).

use super::mesh::{Mesh, TrySend};
use super::messages::ShardMessage;
use crate::model::ShardId;
use futures::channel::oneshot;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// The reply value in transit; None when the answering side dropped the `Reply`.
pub type ReplyPayload = Option<Box<dyn Any + Send>>;

struct Route {
    shard: ShardId,
    mesh: Rc<Mesh>,
}

thread_local! {
    static ROUTE: RefCell<Option<Route>> = const { RefCell::new(None) };
    static PENDING: RefCell<HashMap<u64, oneshot::Sender<ReplyPayload>>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// Called once per shard thread before any request is made.
pub fn install(shard: ShardId, mesh: Rc<Mesh>) {
    ROUTE.with(|route| *route.borrow_mut() = Some(Route { shard, mesh }));
}

fn current_shard() -> Option<ShardId> {
    ROUTE.with(|route| route.borrow().as_ref().map(|r| r.shard))
}

/// Where to send one answer of type `T`. `Send`, so it travels inside mesh messages.
#[must_use = "a dropped Reply answers its requester with an error"]
pub struct Reply<T> {
    origin: ShardId,
    id: u64,
    sent: bool,
    _value: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Reply<T> {
    /// Delivers `value` to the requester (on its own thread). Ok even if the requester has
    /// gone away meanwhile; Err only when the mesh to the origin is closed.
    pub fn send(mut self, value: T) -> Result<(), ReplyLost> {
        self.sent = true;
        deliver(self.origin, self.id, Some(Box::new(value)))
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if !self.sent {
            let _ = deliver(self.origin, self.id, None);
        }
    }
}

/// The requester's side: resolves to the value or `Err` if the reply was dropped.
pub struct PendingReply<T> {
    receiver: oneshot::Receiver<ReplyPayload>,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Future for PendingReply<T> {
    type Output = Result<T, ReplyLost>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(value))) => {
                Poll::Ready(value.downcast::<T>().map(|v| *v).map_err(|_| ReplyLost))
            }
            Poll::Ready(_) => Poll::Ready(Err(ReplyLost)),
        }
    }
}

/// The answering side dropped the request, or the mesh closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLost;

/// A new request id on this shard: the `Reply` to put in the message and the future to
/// await for the answer.
pub fn reply_channel<T>() -> (Reply<T>, PendingReply<T>) {
    let id = NEXT_ID.with(|next| {
        let id = next.get();
        next.set(id + 1);
        id
    });
    let (sender, receiver) = oneshot::channel();
    PENDING.with(|pending| pending.borrow_mut().insert(id, sender));
    let origin = current_shard().unwrap_or(ShardId(0));
    let reply = Reply {
        origin,
        id,
        sent: false,
        _value: PhantomData,
    };
    let pending = PendingReply {
        receiver,
        _value: PhantomData,
    };
    (reply, pending)
}

/// Completes a pending request of this shard (called for `ShardMessage::Reply`).
pub fn complete_local(id: u64, payload: ReplyPayload) {
    let waiter = PENDING.with(|pending| pending.borrow_mut().remove(&id));
    if let Some(waiter) = waiter {
        let _ = waiter.send(payload);
    }
}

fn deliver(origin: ShardId, id: u64, payload: ReplyPayload) -> Result<(), ReplyLost> {
    if current_shard() == Some(origin) {
        complete_local(id, payload);
        return Ok(());
    }
    let mesh = ROUTE.with(|route| route.borrow().as_ref().map(|r| r.mesh.clone()));
    let Some(mesh) = mesh else {
        return Err(ReplyLost);
    };
    match mesh.try_send_to(origin.0, ShardMessage::Reply { id, payload }) {
        TrySend::Sent => Ok(()),
        TrySend::Full(message) => {
            // The origin's inbox is full: wait for room without blocking this caller.
            glommio::spawn_local(async move {
                let _ = mesh.send_to(origin.0, *message).await;
            })
            .detach();
            Ok(())
        }
        TrySend::Closed => Err(ReplyLost),
    }
}
