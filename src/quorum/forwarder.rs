//! Requests a broker forwards to the active controller in cluster mode (CreateTopics,
//! DeleteTopics, CreatePartitions, topic config changes, Metadata's auto-creation, and
//! producer-id blocks): shards hand them to one forwarder thread, which calls
//! the controller over the controller protocol (blocking sockets, never on a shard) and
//! answers each shard through a oneshot channel the shard awaits.
//!
//! Owns: the forwarder thread and its bounded queue. May import: `super::{controller_client,
//! frame, view}`. Runs on: its own std thread; `forward` is called on shards.
//! Invariants: the queue holds at most `cluster.controller_request_queue_max` requests (a
//! full queue answers REQUEST_TIMED_OUT at once); a request is never sent after its
//! deadline, and a shard waits at most one second past it; one request is in flight at a
//! time (the controller decides one at a time).

use super::controller_client::{ControllerTarget, call_active_controller};
use super::frame::{ControllerRequest, ControllerResponse};
use super::view::ViewHub;
use crate::config::QuorumVoter;
use crate::model::ErrorCode;
use futures::channel::oneshot;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

struct Job {
    request: ControllerRequest,
    deadline: Instant,
    reply: oneshot::Sender<Result<ControllerResponse, i16>>,
}

static FORWARDER: OnceLock<SyncSender<Job>> = OnceLock::new();

/// Starts the forwarder thread (once, by `quorum::start`).
pub(super) fn start(
    node_id: crate::cluster::records::NodeId,
    voters: Vec<QuorumVoter>,
    settings: super::NetSettings,
    hub: Arc<ViewHub>,
    queue_max: usize,
) -> std::io::Result<()> {
    let (sender, receiver) = sync_channel(queue_max.max(1));
    std::thread::Builder::new()
        .name("controller-forwarder".to_string())
        .spawn(move || run(node_id, voters, settings, hub, receiver))?;
    let _ = FORWARDER.set(sender);
    Ok(())
}

fn run(
    node_id: crate::cluster::records::NodeId,
    voters: Vec<QuorumVoter>,
    settings: super::NetSettings,
    hub: Arc<ViewHub>,
    jobs: Receiver<Job>,
) {
    while let Ok(job) = jobs.recv() {
        if job.reply.is_canceled() {
            continue;
        }
        let answer = if Instant::now() >= job.deadline {
            Err(ErrorCode::RequestTimedOut.code())
        } else {
            let target = ControllerTarget {
                node_id,
                voters: voters.clone(),
                settings: settings.clone(),
                controller_hint: hub.latest().controller_id,
            };
            call_active_controller(&target, job.request, job.deadline).map_err(|error| {
                tracing::info!(%error, "forwarding to the controller failed");
                error.error_code()
            })
        };
        let _ = job.reply.send(answer);
    }
}

/// Sends `request` to the active controller and waits for its answer, at most until
/// `deadline`. `Err` is the Kafka error code to answer with: REQUEST_TIMED_OUT when no
/// controller answered in time or the queue is full (both retriable), NOT_CONTROLLER when
/// cluster mode is off.
pub async fn forward(
    request: ControllerRequest,
    deadline: Instant,
) -> Result<ControllerResponse, i16> {
    let Some(sender) = FORWARDER.get() else {
        return Err(ErrorCode::NotController.code());
    };
    let (reply, answer) = oneshot::channel();
    let job = Job {
        request,
        deadline,
        reply,
    };
    match sender.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(ErrorCode::RequestTimedOut.code()),
        Err(TrySendError::Disconnected(_)) => return Err(ErrorCode::NotController.code()),
    }
    // The forwarder answers by the deadline unless a job ahead of this one holds it; the
    // wait here is bounded either way (the job is skipped once its deadline passed).
    let timer =
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()) + ANSWER_GRACE);
    match futures::future::select(answer, Box::pin(timer)).await {
        futures::future::Either::Left((Ok(answer), _)) => answer,
        _ => Err(ErrorCode::RequestTimedOut.code()),
    }
}

/// How long past its deadline a shard waits for the forwarder's answer.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
