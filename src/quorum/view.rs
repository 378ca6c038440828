//! How shards see the cluster: the controller thread (or, on a broker-only node, the
//! lifecycle thread) publishes an `Arc<ClusterView>` to every shard over a bounded
//! `futures::channel::mpsc` channel; each shard keeps its latest copy in a thread-local that
//! its Metadata and DescribeCluster handlers read. No lock is taken on a shard's request path.
//!
//! Owns: the per-shard channels and the shard's copy. May import: `super::frame`,
//! `crate::cluster::records` (`Uuid`). Runs on: `publish`/`flush` on the publishing thread;
//! `follow` as a task on each shard.
//! Invariants: every shard eventually holds the latest published view (a view that does not
//! fit a full channel stays pending and is retried on the next `flush`); single-broker mode
//! creates no hub, so `shard_view` is `None` there.

use super::frame::{BrokerEndpoint, ClusterView};
use super::topics::ClusterTopics;
use crate::cluster::image::MetadataImage;
use crate::cluster::records::NodeId;
use futures::StreamExt;
use futures::channel::mpsc;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// Views queued per shard; a shard only needs the latest, so a full channel keeps the newest
/// one pending instead.
const SHARD_VIEW_CHANNEL_CAPACITY: usize = 4;

struct Subscriber {
    sender: mpsc::Sender<Arc<ClusterView>>,
    pending: Option<Arc<ClusterView>>,
}

struct HubState {
    latest: Arc<ClusterView>,
    subscribers: Vec<Subscriber>,
}

/// The publishing side, shared by the publishing thread and shard start-up (which subscribes).
pub struct ViewHub {
    state: Mutex<HubState>,
}

impl Default for ViewHub {
    fn default() -> Self {
        ViewHub {
            state: Mutex::new(HubState {
                latest: Arc::new(ClusterView {
                    cluster_id: None,
                    controller_id: -1,
                    brokers: Vec::new(),
                    quorum: None,
                    topics: Arc::default(),
                }),
                subscribers: Vec::new(),
            }),
        }
    }
}

/// A shard's end: its first view and the channel of later ones.
pub struct ShardViewReceiver {
    first: Arc<ClusterView>,
    receiver: mpsc::Receiver<Arc<ClusterView>>,
}

/// The view of an applied image: its live (unfenced) brokers, each reached at its
/// inter-broker listener (listed first by its registration), with `controller_id` and the
/// image's `topics`; no quorum part (only the raft leader adds one).
pub fn view_of_image(
    image: &MetadataImage,
    controller_id: NodeId,
    topics: Arc<ClusterTopics>,
) -> ClusterView {
    let brokers = image
        .unfenced_brokers()
        .filter_map(|broker| {
            let listener = broker.listeners.first()?;
            Some(BrokerEndpoint {
                node_id: broker.node_id,
                host: listener.host.clone(),
                port: listener.port,
                rack: broker.rack.clone(),
                listeners: broker.listeners.clone(),
            })
        })
        .collect();
    ClusterView {
        cluster_id: image.cluster_id(),
        controller_id,
        brokers,
        quorum: None,
        topics,
    }
}

impl ViewHub {
    pub fn subscribe(&self) -> ShardViewReceiver {
        let (sender, receiver) = mpsc::channel(SHARD_VIEW_CHANNEL_CAPACITY);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.subscribers.push(Subscriber {
            sender,
            pending: None,
        });
        ShardViewReceiver {
            first: state.latest.clone(),
            receiver,
        }
    }

    /// Publishes `view` if it differs from the latest one.
    pub fn publish(&self, view: ClusterView) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state.latest == view {
            return;
        }
        // The quorum part changes with every raft message; log only membership changes.
        if state.latest.controller_id != view.controller_id || state.latest.brokers != view.brokers
        {
            tracing::info!(
                controller = view.controller_id,
                brokers = ?view.brokers.iter().map(|b| b.node_id).collect::<Vec<_>>(),
                "cluster view changed"
            );
        }
        let view = Arc::new(view);
        state.latest = view.clone();
        for subscriber in &mut state.subscribers {
            subscriber.pending = Some(view.clone());
        }
        flush_locked(&mut state);
    }

    /// Retries deliveries a full channel refused.
    pub fn flush(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        flush_locked(&mut state);
    }

    pub fn latest(&self) -> Arc<ClusterView> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latest
            .clone()
    }
}

fn flush_locked(state: &mut HubState) {
    for subscriber in &mut state.subscribers {
        if let Some(view) = subscriber.pending.take() {
            match subscriber.sender.try_send(view) {
                Ok(()) => {}
                Err(error) if error.is_full() => subscriber.pending = Some(error.into_inner()),
                Err(_) => {} // the shard stopped
            }
        }
    }
}

thread_local! {
    static SHARD_VIEW: RefCell<Option<Arc<ClusterView>>> = const { RefCell::new(None) };
}

/// This shard's latest cluster view; `None` in single-broker mode.
pub fn shard_view() -> Option<Arc<ClusterView>> {
    SHARD_VIEW.with(|view| view.borrow().clone())
}

impl ShardViewReceiver {
    /// Installs the first view on this thread now, then keeps it current until the hub
    /// goes away. Spawn it on the shard as a task.
    pub fn install(self) -> impl std::future::Future<Output = ()> {
        let ShardViewReceiver {
            first,
            mut receiver,
        } = self;
        SHARD_VIEW.with(|view| *view.borrow_mut() = Some(first));
        async move {
            while let Some(next) = receiver.next().await {
                SHARD_VIEW.with(|view| *view.borrow_mut() = Some(next));
            }
        }
    }
}

/// Set by a controlled shutdown: this broker no longer names itself to clients unless the
/// controller's view does (it is being fenced).
static LEAVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A controlled shutdown began (see `brokers_for_clients`).
pub fn mark_leaving() {
    LEAVING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// What Metadata and DescribeCluster answer in cluster mode: the controller id and every
/// live broker, this one included even before its registration is committed (it is
/// answering the client, so it is up). `None` in single-broker mode.
pub fn brokers_for_clients(own: BrokerEndpoint) -> Option<(NodeId, Vec<BrokerEndpoint>)> {
    let view = shard_view()?;
    let mut brokers = view.brokers.clone();
    let leaving = LEAVING.load(std::sync::atomic::Ordering::Relaxed);
    if !leaving && !brokers.iter().any(|broker| broker.node_id == own.node_id) {
        brokers.push(own);
        brokers.sort_by_key(|broker| broker.node_id);
    }
    Some((view.controller_id, brokers))
}

/// This process's broker epoch once its registration committed (-1 before).
static BROKER_EPOCH: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(-1);

/// Set by the lifecycle thread after each committed registration.
pub fn set_broker_epoch(epoch: i64) {
    BROKER_EPOCH.store(epoch, std::sync::atomic::Ordering::Relaxed);
}

/// The broker epoch requests to the controller carry; `None` until registered.
pub fn broker_epoch() -> Option<i64> {
    let epoch = BROKER_EPOCH.load(std::sync::atomic::Ordering::Relaxed);
    (epoch >= 0).then_some(epoch)
}

/// Cluster mode: the metadata log's topics as this shard last saw them (`None` in
/// single-broker mode).
pub fn cluster_topics() -> Option<Arc<super::topics::ClusterTopics>> {
    Some(shard_view()?.topics.clone())
}

/// Whether a request for `partition` of the local topic `topic` (id `topic_id`) must be
/// answered NOT_LEADER_OR_FOLLOWER here (cluster mode): the metadata log names another leader
/// (or none); or the topic is a local copy of a log topic (`cluster_copy`) that the log does
/// not vouch for now (not replayed yet, deleted, re-created, fewer partitions); or it is this
/// broker's own topic whose name the log gives to another topic (the log's wins the name).
/// Always `false` in single-broker mode and for own topics the log does not name.
pub fn led_elsewhere(
    topic: &str,
    topic_id: &crate::metadata::TopicId,
    partition: i32,
    own: NodeId,
    cluster_copy: bool,
) -> bool {
    let Some(topics) = cluster_topics() else {
        return false;
    };
    let Some(cluster_topic) = topics.topics.get(topic) else {
        return cluster_copy;
    };
    if &cluster_topic.id != topic_id {
        return true;
    }
    usize::try_from(partition)
        .ok()
        .and_then(|index| cluster_topic.partitions.get(index))
        .is_none_or(|state| state.leader != own)
}

/// The cluster this node's data dir joined (`cluster.id`), once known: what clients are told
/// while the shard's view has no cluster id yet (a voter replaying its log, a view from a
/// lagging node), so the id they see never flips.
static JOINED_CLUSTER: std::sync::OnceLock<crate::cluster::records::Uuid> =
    std::sync::OnceLock::new();

/// Records the cluster the data dir joined (read at start or written after registering).
pub fn set_joined_cluster(cluster_id: crate::cluster::records::Uuid) {
    let _ = JOINED_CLUSTER.set(cluster_id);
}

/// The cluster this node's data dir joined, once known.
pub fn joined_cluster() -> Option<crate::cluster::records::Uuid> {
    JOINED_CLUSTER.get().copied()
}

/// The cluster id Metadata and DescribeCluster report in cluster mode: the metadata log's
/// (the text `cluster.id` holds), else the one the data dir joined. `None` in single-broker
/// mode, or on a new node before its first registration.
pub fn cluster_id_for_clients() -> Option<String> {
    let view = shard_view()?;
    let cluster_id = view.cluster_id.or_else(|| JOINED_CLUSTER.get().copied())?;
    Some(uuid::Uuid::from_bytes(cluster_id).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(controller_id: i32) -> ClusterView {
        ClusterView {
            cluster_id: None,
            controller_id,
            brokers: Vec::new(),
            quorum: None,
            topics: Arc::default(),
        }
    }

    #[test]
    fn a_slow_shard_still_gets_the_latest_view() {
        let hub = ViewHub::default();
        let mut receiver = hub.subscribe();
        assert_eq!(receiver.first.controller_id, -1);
        for id in 0..(SHARD_VIEW_CHANNEL_CAPACITY as i32 + 5) {
            hub.publish(view(id));
        }
        let mut seen = Vec::new();
        while let Ok(v) = receiver.receiver.try_recv() {
            seen.push(v.controller_id);
        }
        hub.flush();
        while let Ok(v) = receiver.receiver.try_recv() {
            seen.push(v.controller_id);
        }
        assert_eq!(seen.last(), Some(&(SHARD_VIEW_CHANNEL_CAPACITY as i32 + 4)));
        assert_eq!(
            hub.latest().controller_id,
            SHARD_VIEW_CHANNEL_CAPACITY as i32 + 4
        );
    }
}
