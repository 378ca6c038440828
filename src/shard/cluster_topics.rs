//! Cluster mode: the local catalog follows the metadata log's topics and group config
//! overrides. Shard 0 (the catalog's one writer) compares its catalog with the latest
//! cluster view, replaces the group overrides with the log's, and creates, grows,
//! re-configures and deletes the local copies (`TopicMeta::cluster`) so that every broker
//! holds every partition of every cluster topic, with the topic id the log gave it. Only the
//! leader named in the log serves a partition (`quorum::view::led_elsewhere`); its replicas
//! copy it (`super::replicas`), the other copies stay empty.
//!
//! Owns: the reconciliation plan (pure, `plan`) and the task that applies it. May import:
//! `crate::quorum::{topics, view}`, `crate::metadata`. Runs on: shard 0.
//! Invariants: nothing is reconciled against a table with `applied_index` 0 (a node whose
//! image is not yet replayed up to its last known commit publishes that), so a restart
//! never mistakes a half-replayed image for deleted topics; topics that are this broker's
//! own (no `cluster` flag) are never touched, a name clash with one is logged and skipped.

use super::Shard;
use crate::metadata::{Catalog, TopicMeta};
use crate::quorum::topics::ClusterTopics;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// How often shard 0 compares its catalog with the latest view.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(50);
/// The pause after a change that could not be applied, before trying again.
const RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// What the local catalog must do to match the metadata log's topics.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ReconcilePlan {
    /// Local copies the log no longer has (or has under another id: deleted and re-created).
    pub delete: Vec<String>,
    /// Log topics with no local copy yet.
    pub create: Vec<TopicMeta>,
    /// Local copies with fewer partitions than the log's: (name, new count).
    pub grow: Vec<(String, i32)>,
    /// Local copies whose configs differ from the log's.
    pub configs: Vec<(String, BTreeMap<String, String>)>,
    /// Log topics whose name a topic of this broker's own holds: left alone.
    pub clashes: Vec<String>,
    /// Own topics with the id of the log topic of that name (a catalog rebuilt by
    /// `shardlog data-dir recover-catalog` loses the flag): marked copies again.
    pub adopt: Vec<String>,
    /// The log's group config overrides, when the catalog's differ: they replace them all.
    pub group_configs: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

impl ReconcilePlan {
    /// Whether there is anything to change (clashes change nothing).
    pub fn has_changes(&self) -> bool {
        !(self.delete.is_empty()
            && self.adopt.is_empty()
            && self.create.is_empty()
            && self.grow.is_empty()
            && self.configs.is_empty()
            && self.group_configs.is_none())
    }
}

/// Compares `catalog` with the log's `topics`. A name still being deleted locally is not
/// created again until its deletion finished (the next plan creates it). Nothing is planned
/// against a table the catalog cannot trust: one not yet replayed (index 0) or below the
/// index the catalog was last reconciled with (a replaced metadata log, or one replaying
/// after its directory was wiped).
pub(crate) fn plan(catalog: &Catalog, topics: &ClusterTopics) -> ReconcilePlan {
    let mut plan = ReconcilePlan::default();
    if topics.applied_index == 0 || topics.applied_index < catalog.metadata_index {
        return plan;
    }
    let mut deleted: BTreeSet<&str> = BTreeSet::new();
    for local in catalog.topics().filter(|topic| topic.cluster) {
        let same = topics
            .topics
            .get(&local.name)
            .is_some_and(|topic| topic.id == local.id);
        if !same {
            plan.delete.push(local.name.clone());
            deleted.insert(local.name.as_str());
        }
    }
    let deleting: BTreeSet<&str> = catalog.deleting().iter().map(|t| t.name.as_str()).collect();
    for (name, topic) in &topics.topics {
        let count = topic.partitions.len() as i32;
        match catalog.topic(name) {
            Some(local) if !local.cluster && local.id == topic.id => plan.adopt.push(name.clone()),
            Some(local) if !local.cluster => plan.clashes.push(name.clone()),
            Some(local) if local.id == topic.id => {
                if local.partitions < count {
                    plan.grow.push((name.clone(), count));
                }
                if local.configs != topic.configs {
                    plan.configs.push((name.clone(), topic.configs.clone()));
                }
            }
            _ if deleted.contains(name.as_str()) || deleting.contains(name.as_str()) => {}
            _ => plan.create.push(TopicMeta {
                name: name.clone(),
                id: topic.id,
                partitions: count,
                configs: topic.configs.clone(),
                // The log's `__consumer_offsets` and `__transaction_state` are the
                // coordinators' (the catalog keeps an internal topic's configs and stores
                // its batches uncompressed).
                internal: is_coordinator_topic(name),
                cluster: true,
            }),
        }
    }
    if catalog.all_group_configs() != &topics.group_configs {
        plan.group_configs = Some(topics.group_configs.clone());
    }
    plan
}

/// Applies the create / grow / configs part of `plan` to `catalog`, each change on its own:
/// one that the catalog refuses is logged and left for the next round.
fn apply_additions(catalog: &Catalog, plan: &ReconcilePlan) -> (Catalog, usize) {
    type Change<'a> = Box<dyn Fn(&Catalog) -> Result<Catalog, crate::metadata::CatalogError> + 'a>;
    let creates = plan.create.iter().map(|meta| {
        let change: Change = Box::new(move |c: &Catalog| c.with_topic(meta.clone()));
        (meta.name.as_str(), change)
    });
    let grows = plan.grow.iter().map(|(name, count)| {
        let change: Change = Box::new(move |c: &Catalog| c.with_partitions(name, *count));
        (name.as_str(), change)
    });
    let configs = plan.configs.iter().map(|(name, configs)| {
        let change: Change = Box::new(move |c: &Catalog| c.with_configs(name, configs.clone()));
        (name.as_str(), change)
    });
    let adoptions = plan.adopt.iter().map(|name| {
        let change: Change = Box::new(move |c: &Catalog| c.with_cluster_copy(name));
        (name.as_str(), change)
    });
    let mut next = match &plan.group_configs {
        Some(configs) => catalog.with_all_group_configs(configs.clone()),
        None => catalog.clone(),
    };
    let mut refused = 0;
    for (topic, change) in adoptions.chain(creates).chain(grows).chain(configs) {
        match change(&next) {
            Ok(changed) => next = changed,
            Err(error) => {
                refused += 1;
                tracing::warn!(%topic, %error, "cannot apply the metadata log's topic locally");
            }
        }
    }
    (next, refused)
}

impl Shard {
    /// Cluster mode, shard 0: keeps the local catalog following the metadata log's topics
    /// (see the module doc). Does nothing on other shards or in single-broker mode.
    pub fn spawn_cluster_topic_reconciliation(self: &Rc<Self>) {
        if self.controller.is_none() || crate::quorum::view::cluster_topics().is_none() {
            return;
        }
        let shard = self.clone();
        glommio::spawn_local(async move {
            let mut clashes_logged: BTreeSet<String> = BTreeSet::new();
            while !super::shutdown::shutdown_requested() {
                let Some(view) = crate::quorum::view::shard_view() else {
                    return;
                };
                // Only the log of the cluster this data dir joined (cluster.id) speaks for
                // its copies: a data dir pointed at another quorum is stopped by the
                // lifecycle thread, never reconciled with it.
                let joined = crate::quorum::view::joined_cluster();
                if joined.is_none() || view.cluster_id != joined {
                    glommio::timer::sleep(RECONCILE_INTERVAL).await;
                    continue;
                }
                let topics = view.topics.clone();
                let plan = plan(&shard.catalog(), &topics);
                if let Some(topic) = plan.clashes.iter().find(|name| is_coordinator_topic(name)) {
                    // This broker would be named coordinator of groups or transactional ids
                    // it cannot serve (its own topic of that name hides the log's): stop
                    // instead, so the controller moves those partitions' leadership to
                    // brokers that can.
                    tracing::error!(
                        dir = %shard.config.storage.data_dir.display(),
                        "this data dir has its own {topic} (from a single broker, or from a cluster-mode release before coordinators followed leadership); in cluster mode {topic} is the metadata log's. Its contents cannot be imported yet, so the broker stops here; nothing was changed. To join the cluster, start the data dir once without --controller-quorum and delete the topic (`shardlog topic delete {topic}`), or start with an empty data dir (docs/replication.md, \"Coordinators follow leadership\")",
                    );
                    super::shutdown::request_shutdown();
                    return;
                }
                for name in &plan.clashes {
                    if clashes_logged.insert(name.clone()) {
                        tracing::error!(topic = %name, "a topic of the cluster's metadata log has the name of a topic this broker created before it joined the cluster; this broker keeps its own and does not serve the cluster's");
                    }
                }
                let pause = if plan.has_changes() && !shard.reconcile(&plan, &topics).await {
                    RETRY_BACKOFF
                } else {
                    RECONCILE_INTERVAL
                };
                glommio::timer::sleep(pause).await;
            }
        })
        .detach();
    }

    /// One round: deletions first (they free names the log may have re-created), then the
    /// rest in one catalog change. `false` if some change could not be applied.
    async fn reconcile(self: &Rc<Self>, plan: &ReconcilePlan, topics: &ClusterTopics) -> bool {
        let mut complete = true;
        if !plan.delete.is_empty() {
            tracing::info!(topics = ?plan.delete, "deleting local copies of topics the metadata log removed");
            let outcomes = self.controller_delete_topics(plan.delete.clone()).await;
            complete &= outcomes
                .iter()
                .all(|o| o.error == crate::model::ErrorCode::None);
        }
        // The additions, and the index reconciled, in one catalog change (after deletions
        // alone it records the index only).
        let mut refused = 0;
        let outcome = self
            .controller_change_topic("(metadata log)", false, |catalog: &Catalog| {
                let (next, count) = apply_additions(catalog, plan);
                refused = count;
                Ok(next.with_metadata_index(topics.applied_index))
            })
            .await;
        if outcome.error != crate::model::ErrorCode::None {
            tracing::warn!(error = ?outcome.error, message = ?outcome.message, "cannot apply the metadata log's topics locally");
            return false;
        }
        for meta in &plan.create {
            tracing::info!(topic = %meta.name, partitions = meta.partitions, "created the local copy of a metadata-log topic");
        }
        complete && refused == 0
    }
}

/// `__consumer_offsets` or `__transaction_state`: in cluster mode the metadata log's, whose
/// partitions' leaders are the group and transaction coordinators.
fn is_coordinator_topic(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC || name == crate::txn::TRANSACTIONS_TOPIC
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::topics::{ClusterPartition, ClusterTopic};

    fn partition(leader: i32) -> ClusterPartition {
        ClusterPartition {
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: vec![leader],
            isr: vec![leader],
            elr: Vec::new(),
            last_known_elr: Vec::new(),
            offline_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    fn table(index: u64, topics: &[(&str, u8, usize)]) -> ClusterTopics {
        ClusterTopics {
            producer_id_bound: 0,
            broker_epochs: BTreeMap::new(),
            default_configs: BTreeMap::new(),
            group_configs: BTreeMap::new(),
            applied_index: index,
            topics: topics
                .iter()
                .map(|(name, id, partitions)| {
                    let topic = ClusterTopic {
                        id: [*id; 16],
                        partitions: (0..*partitions).map(|_| partition(1)).collect(),
                        configs: BTreeMap::new(),
                    };
                    (name.to_string(), topic)
                })
                .collect(),
        }
    }

    fn local(name: &str, id: u8, partitions: i32, cluster: bool) -> TopicMeta {
        TopicMeta {
            name: name.to_string(),
            id: [id; 16],
            partitions,
            configs: BTreeMap::new(),
            internal: false,
            cluster,
        }
    }

    fn catalog(topics: &[TopicMeta]) -> Catalog {
        topics.iter().fold(Catalog::default(), |catalog, topic| {
            catalog.with_topic(topic.clone()).expect("valid topic")
        })
    }

    #[test]
    fn a_table_not_yet_replayed_changes_nothing() {
        let catalog = catalog(&[local("a", 1, 1, true)]);
        assert_eq!(plan(&catalog, &table(0, &[])), ReconcilePlan::default());
    }

    #[test]
    fn a_table_below_the_reconciled_index_changes_nothing() {
        // The copy was created from the log at index 40; a table at 12 (a wiped or
        // replaced log replaying) must not delete it, one at 40 or later may.
        let catalog = catalog(&[local("a", 1, 1, true)]).with_metadata_index(40);
        assert_eq!(plan(&catalog, &table(12, &[])), ReconcilePlan::default());
        assert_eq!(
            plan(&catalog, &table(40, &[])).delete,
            vec!["a".to_string()]
        );
        assert_eq!(catalog.with_metadata_index(7).metadata_index, 40);
    }

    #[test]
    fn the_catalog_takes_the_logs_group_configs() {
        let own = BTreeMap::from([("consumer.heartbeat.interval.ms".to_string(), "7000".into())]);
        let catalog = catalog(&[]).with_group_configs("stale", own);
        let mut topics = table(3, &[]);
        let logged = BTreeMap::from([("consumer.session.timeout.ms".to_string(), "50000".into())]);
        topics.group_configs.insert("g".into(), logged.clone());
        let plan = plan(&catalog, &topics);
        assert!(plan.has_changes());
        let (next, refused) = apply_additions(&catalog, &plan);
        assert_eq!(refused, 0);
        assert_eq!(next.group_configs("g"), Some(&logged));
        assert_eq!(next.group_configs("stale"), None);
        assert!(!super::plan(&next, &topics).has_changes());
    }

    #[test]
    fn an_own_topic_with_the_log_topic_id_is_adopted() {
        // recover-catalog rebuilt the copy without its flag: same id, so it is the log's.
        let catalog = catalog(&[local("a", 1, 2, false)]);
        let topics = table(5, &[("a", 1, 2)]);
        let plan = plan(&catalog, &topics);
        assert_eq!(
            (plan.adopt.clone(), plan.clashes.clone()),
            (vec!["a".to_string()], vec![])
        );
        let (next, refused) = apply_additions(&catalog, &plan);
        assert_eq!(refused, 0);
        assert!(next.topic("a").is_some_and(|t| t.cluster));
        assert!(!super::plan(&next, &topics).has_changes());
    }

    #[test]
    fn the_catalog_follows_the_log_and_leaves_its_own_topics_alone() {
        let catalog = catalog(&[
            local("kept", 1, 2, true),
            local("gone", 2, 1, true),
            local("recreated", 3, 1, true),
            local("own", 4, 1, false),
            local("clash", 5, 1, false),
        ]);
        let mut topics = table(
            7,
            &[
                ("kept", 1, 3),
                ("recreated", 9, 2),
                ("new", 6, 4),
                ("clash", 8, 1),
            ],
        );
        if let Some(kept) = topics.topics.get_mut("kept") {
            kept.configs.insert("retention.ms".into(), "1000".into());
        }
        let plan = plan(&catalog, &topics);
        assert_eq!(
            plan.delete,
            vec!["gone".to_string(), "recreated".to_string()]
        );
        assert_eq!(plan.create, vec![local("new", 6, 4, true)]);
        assert_eq!(plan.grow, vec![("kept".to_string(), 3)]);
        assert_eq!(plan.configs.len(), 1);
        assert_eq!(plan.clashes, vec!["clash".to_string()]);

        // After the deletion the re-created topic is created with its new id, once its old
        // copy's deletion finished.
        let deleted = catalog
            .without_topic("recreated")
            .and_then(|c| c.without_topic("gone"))
            .expect("delete");
        let (next, refused) = apply_additions(&deleted, &plan);
        assert_eq!(refused, 0);
        let pending = super::plan(&next, &topics);
        assert!(
            pending.create.is_empty(),
            "still being deleted: {pending:?}"
        );
        let finished = next.deletion_finished(&[3; 16]).deletion_finished(&[2; 16]);
        let last = super::plan(&finished, &topics);
        assert_eq!(last.create, vec![local("recreated", 9, 2, true)]);
        let (done, _) = apply_additions(&finished, &last);
        let settled = super::plan(&done, &topics);
        assert!(!settled.has_changes(), "{settled:?}");
        assert_eq!(done.topic("own").map(|t| t.id), Some([4; 16]));
    }
}
