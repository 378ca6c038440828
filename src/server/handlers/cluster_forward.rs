//! Cluster mode: the topic requests a broker forwards to the active controller
//! (CreateTopics, DeleteTopics, CreatePartitions, Metadata's auto-creation, topic and group
//! config changes), and the wait
//! until this broker's own catalog shows the committed change, so a client that asks the
//! same broker next sees it.
//!
//! Owns: nothing; the request translation and the wait. May import: `crate::quorum`
//! (`forwarder`, `frame`, `view`), `crate::shard`. Runs on: any shard.
//! Invariants: only topics of the metadata log are forwarded; a topic that is this broker's
//! own (internal topics, topics from before cluster mode) is handled locally as before.

use crate::model::ErrorCode;
use crate::quorum::frame::{ControllerRequest, TopicCreation, TopicResult};
use crate::shard::Shard;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the wait for the local catalog looks again.
const CATALOG_POLL: Duration = Duration::from_millis(10);
/// How long a forwarded config change may take.
const CONFIG_CHANGE_WAIT: Duration = Duration::from_secs(30);
/// Bounds of the time a forwarded request may take, whatever the client's timeout says.
const FORWARD_TIMEOUT_MIN: Duration = Duration::from_secs(1);
const FORWARD_TIMEOUT_MAX: Duration = Duration::from_secs(60);

/// Whether this broker runs in cluster mode (it has a cluster view).
pub fn cluster_mode() -> bool {
    crate::quorum::view::cluster_topics().is_some()
}

/// The deadline of a forwarded request from the client's `timeout_ms`.
pub fn deadline(timeout_ms: i32) -> Instant {
    let wanted = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    Instant::now() + wanted.clamp(FORWARD_TIMEOUT_MIN, FORWARD_TIMEOUT_MAX)
}

/// Sends a topic request to the active controller: its per-topic results, or the Kafka error
/// code every topic gets (REQUEST_TIMED_OUT, NOT_CONTROLLER, ...: retriable for clients).
pub async fn forward_topics(
    request: ControllerRequest,
    deadline: Instant,
) -> Result<Vec<TopicResult>, i16> {
    let response = crate::quorum::forwarder::forward(request, deadline).await?;
    if response.error_code != ErrorCode::None.code() {
        return Err(response.error_code);
    }
    Ok(response.topics)
}

/// Waits (at most until `deadline`) until this shard's catalog satisfies `done`. The
/// controller answered after the commit; the local copy follows within a view round.
pub async fn wait_for_catalog(
    shard: &Rc<Shard>,
    deadline: Instant,
    done: impl Fn(&crate::metadata::Catalog) -> bool,
) {
    while !done(&shard.catalog()) && Instant::now() < deadline {
        glommio::timer::sleep(CATALOG_POLL).await;
    }
}

/// Whether `name` is a topic of the metadata log (as this shard last saw it).
pub fn is_cluster_topic(name: &str) -> bool {
    crate::quorum::view::cluster_topics().is_some_and(|topics| topics.topics.contains_key(name))
}

/// Whether `name` is a topic this broker holds as its own (not a copy of a log topic).
pub fn is_own_topic(shard: &Shard, name: &str) -> bool {
    shard
        .catalog()
        .topic(name)
        .is_some_and(|topic| !topic.cluster)
}

/// CreateTopics through the active controller: the per-topic results by name (or the code
/// every topic gets); unless `validate_only`, returns once this broker's catalog holds every
/// topic created (or at `deadline`: they exist all the same).
pub async fn create_topics(
    shard: &Rc<Shard>,
    topics: Vec<TopicCreation>,
    validate_only: bool,
    deadline: Instant,
) -> Result<HashMap<String, TopicResult>, i16> {
    if topics.is_empty() {
        return Ok(HashMap::new());
    }
    let call = ControllerRequest::CreateTopics {
        topics,
        validate_only,
    };
    let results: HashMap<String, TopicResult> = forward_topics(call, deadline)
        .await?
        .into_iter()
        .map(|result| (result.name.clone(), result))
        .collect();
    if !validate_only {
        let created: Vec<(&str, [u8; 16])> = results
            .values()
            .filter(|r| r.error_code == ErrorCode::None.code())
            .map(|r| (r.name.as_str(), r.topic_id))
            .collect();
        wait_for_catalog(shard, deadline, |catalog| {
            created
                .iter()
                .all(|(name, id)| catalog.topic(name).is_some_and(|t| &t.id == id))
        })
        .await;
    }
    Ok(results)
}

/// Cluster mode: the configs of metadata-log topic `topic` as the log has them (`None` if
/// `topic` is not one, or outside cluster mode).
pub fn cluster_topic_configs(topic: &str) -> Option<std::collections::BTreeMap<String, String>> {
    Some(
        crate::quorum::view::cluster_topics()?
            .topics
            .get(topic)?
            .configs
            .clone(),
    )
}

/// Sends one resource's config change to the active controller: its one result's code and
/// message, or the code the whole request got.
async fn forward_config_change(
    call: ControllerRequest,
    deadline: Instant,
) -> (ErrorCode, Option<String>) {
    match forward_topics(call, deadline).await {
        Err(code) => (ErrorCode::from_code(code), None),
        Ok(results) => match results.into_iter().next() {
            None => (ErrorCode::UnknownServerError, None),
            Some(result) => (ErrorCode::from_code(result.error_code), result.message),
        },
    }
}

/// Cluster mode: changes the configs of a metadata-log topic through the active controller:
/// a SET or DELETE per key the change touches (every key of the log's and the new configs
/// for a full replacement), so keys the request does not name keep what others set. Once
/// committed, waits until this broker's copy shows the touched keys. `None` if `topic` is not
/// a metadata-log topic.
pub(super) async fn alter_topic_configs(
    shard: &Rc<Shard>,
    topic: &str,
    change: &super::incremental_alter_configs::TopicConfigChange,
    validate_only: bool,
) -> Option<(ErrorCode, Option<String>)> {
    let current = cluster_topic_configs(topic)?;
    let touched: Vec<String> = match &change.touched {
        Some(keys) => keys.clone(),
        None => current
            .keys()
            .chain(change.configs.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let alterations: Vec<(String, Option<String>)> = touched
        .iter()
        .map(|key| (key.clone(), change.configs.get(key).cloned()))
        .collect();
    let deadline = Instant::now() + CONFIG_CHANGE_WAIT;
    let call = ControllerRequest::AlterTopicConfigs {
        topic: topic.to_string(),
        alterations,
        validate_only,
    };
    let answer = forward_config_change(call, deadline).await;
    if answer.0 == ErrorCode::None && !validate_only {
        wait_for_catalog(shard, deadline, |catalog| {
            catalog.topic(topic).is_some_and(|t| {
                touched
                    .iter()
                    .all(|key| t.configs.get(key) == change.configs.get(key))
            })
        })
        .await;
    }
    Some(answer)
}

/// Cluster mode: changes group `group`'s config overrides (GROUP resource) through the active
/// controller. `update` runs on the overrides the log has; the result is checked against
/// this broker's `[group]` bounds (the controller checks keys and types only: bounds are each
/// coordinator's, and a coordinator whose bounds do not admit a stored set runs the group on
/// its own values, `group_config::effective`), then a SET or DELETE per key either set has is
/// forwarded. Once committed, waits until this broker's catalog holds the new set.
pub(super) async fn alter_group_configs(
    shard: &Rc<Shard>,
    group: &str,
    update: crate::shard::BrokerConfigUpdate,
    validate_only: bool,
) -> (ErrorCode, Option<String>) {
    let Some(topics) = crate::quorum::view::cluster_topics() else {
        let message = "the cluster metadata is not loaded yet".to_string();
        return (ErrorCode::NotController, Some(message));
    };
    let current = topics.group_configs.get(group).cloned().unwrap_or_default();
    let next = match update(&current) {
        Ok(next) => next,
        Err(message) => return (ErrorCode::InvalidRequest, Some(message)),
    };
    if let Err(error) = crate::metadata::group_config::validate(&next, &shard.config.group) {
        return (ErrorCode::InvalidConfig, Some(error.to_string()));
    }
    let touched: std::collections::BTreeSet<&String> = current.keys().chain(next.keys()).collect();
    let alterations = touched
        .into_iter()
        .map(|key| (key.clone(), next.get(key).cloned()))
        .collect();
    let deadline = Instant::now() + CONFIG_CHANGE_WAIT;
    let call = ControllerRequest::AlterGroupConfigs {
        group: group.to_string(),
        alterations,
        validate_only,
    };
    let answer = forward_config_change(call, deadline).await;
    if answer.0 == ErrorCode::None && !validate_only {
        let expected = (!next.is_empty()).then_some(&next);
        wait_for_catalog(shard, deadline, |catalog| {
            catalog.group_configs(group) == expected
        })
        .await;
    }
    answer
}
