//! Which Apache Kafka release introduced each version of the APIs shardlog implements, and
//! Kafka 4.x's lowest supported version of each (after KIP-896). Facts about Kafka, no I/O;
//! used to say in ApiVersions docs (`docs/protocol-coverage.md`) which Kafka release each
//! advertised range matches, and by tests that keep the API table's minima at Kafka 4.x's.
//!
//! Source: the Kafka message definitions (`clients/src/main/resources/common/message/*.json`,
//! "validVersions", per release) as tabulated release by release in franz-go's `kversion`
//! package; Kafka 4.x minima are kafka-protocol's `valid_versions().min` (generated from the
//! same JSON after KIP-896), with JoinGroup v0-v1 restored in Kafka 4.0.1/4.1 (KAFKA-19444).

use kafka_protocol::messages::ApiKey;

/// For each API: entry `v` is the Kafka release that introduced version `v` (up to 4.2).
const VERSION_INTRODUCED_IN: &[(ApiKey, &[&str])] = &[
    (
        ApiKey::Produce,
        &[
            "0.8.0", "0.9.0", "0.10.0", "0.11.0", "1.0", "1.0", "2.0", "2.1", "2.4", "2.8", "3.7",
            "3.8", "4.0", "4.1",
        ],
    ),
    (
        ApiKey::Fetch,
        &[
            "0.8.0", "0.9.0", "0.10.0", "0.10.1", "0.11.0", "0.11.0", "1.0", "1.1", "2.0", "2.1",
            "2.1", "2.3", "2.7", "3.1", "3.5", "3.5", "3.7", "3.9", "4.1",
        ],
    ),
    (
        ApiKey::ListOffsets,
        &[
            "0.8.0", "0.10.1", "0.11.0", "2.0", "2.1", "2.2", "2.8", "3.0", "3.5", "3.9", "4.0",
            "4.2",
        ],
    ),
    (
        ApiKey::Metadata,
        &[
            "0.8.0", "0.10.0", "0.10.1", "0.11.0", "0.11.0", "1.0", "2.0", "2.1", "2.3", "2.4",
            "2.8", "2.8", "3.1", "4.0",
        ],
    ),
    (
        ApiKey::OffsetCommit,
        &[
            "0.8.1", "0.8.2", "0.9.0", "0.11.0", "2.0", "2.1", "2.1", "2.3", "2.4", "3.7", "4.2",
        ],
    ),
    (
        ApiKey::OffsetFetch,
        &[
            "0.8.1", "0.8.2", "0.11.0", "0.11.0", "2.0", "2.1", "2.4", "2.5", "3.0", "3.7", "4.2",
        ],
    ),
    (
        ApiKey::FindCoordinator,
        &["0.8.2", "0.11.0", "2.0", "2.4", "3.0", "3.8", "3.9"],
    ),
    (
        ApiKey::JoinGroup,
        &[
            "0.8.2", "0.10.1", "0.11.0", "2.0", "2.2", "2.3", "2.4", "2.5", "3.2", "3.2",
        ],
    ),
    (ApiKey::Heartbeat, &["0.8.2", "0.11.0", "2.0", "2.3", "2.4"]),
    (
        ApiKey::LeaveGroup,
        &["0.9.0", "0.11.0", "2.0", "2.4", "2.4", "3.2"],
    ),
    (
        ApiKey::SyncGroup,
        &["0.9.0", "0.11.0", "2.0", "2.3", "2.4", "2.5"],
    ),
    (
        ApiKey::DescribeGroups,
        &["0.9.0", "0.11.0", "2.0", "2.3", "2.4", "2.4", "4.0"],
    ),
    (
        ApiKey::ListGroups,
        &["0.9.0", "0.11.0", "2.0", "2.4", "2.6", "3.8"],
    ),
    (
        ApiKey::ApiVersions,
        &["0.10.0", "0.11.0", "2.0", "2.4", "3.9"],
    ),
    (
        ApiKey::CreateTopics,
        &[
            "0.10.1", "0.10.2", "0.11.0", "2.0", "2.4", "2.4", "2.7", "2.8",
        ],
    ),
    (
        ApiKey::DeleteTopics,
        &["0.10.1", "0.11.0", "2.0", "2.1", "2.4", "2.7", "2.8"],
    ),
    (ApiKey::DeleteRecords, &["0.11.0", "2.0", "2.6"]),
    (
        ApiKey::OffsetForLeaderEpoch,
        &["0.11.0", "2.0", "2.1", "2.3", "2.4"],
    ),
    (
        ApiKey::InitProducerId,
        &["0.11.0", "2.0", "2.4", "2.5", "2.7", "3.8"],
    ),
    (
        ApiKey::AddPartitionsToTxn,
        &["0.11.0", "2.0", "2.7", "2.8", "3.6", "3.8"],
    ),
    (
        ApiKey::AddOffsetsToTxn,
        &["0.11.0", "2.0", "2.7", "2.8", "3.8"],
    ),
    (
        ApiKey::EndTxn,
        &["0.11.0", "2.0", "2.7", "2.8", "3.8", "4.0"],
    ),
    (ApiKey::WriteTxnMarkers, &["0.11.0", "2.8"]),
    (
        ApiKey::TxnOffsetCommit,
        &["0.11.0", "2.0", "2.1", "2.5", "3.8", "4.0"],
    ),
    (
        ApiKey::DescribeConfigs,
        &["0.11.0", "1.1", "2.0", "2.6", "2.8"],
    ),
    (ApiKey::AlterConfigs, &["0.11.0", "2.0", "2.8"]),
    (
        ApiKey::DescribeLogDirs,
        &["1.0", "2.0", "2.6", "3.2", "3.3"],
    ),
    (ApiKey::DescribeAcls, &["0.11.0", "2.0", "2.4", "2.7"]),
    (ApiKey::CreateAcls, &["0.11.0", "2.0", "2.4", "2.7"]),
    (ApiKey::DeleteAcls, &["0.11.0", "2.0", "2.4", "2.7"]),
    (ApiKey::CreatePartitions, &["1.0", "2.0", "2.5", "2.7"]),
    (ApiKey::DeleteGroups, &["1.1", "2.0", "2.4"]),
    (ApiKey::ElectLeaders, &["2.2", "2.4", "2.4"]),
    (ApiKey::AlterPartitionReassignments, &["2.4"]),
    (ApiKey::ListPartitionReassignments, &["2.4"]),
    (ApiKey::IncrementalAlterConfigs, &["2.3", "2.4"]),
    (ApiKey::OffsetDelete, &["2.4"]),
    (ApiKey::SaslHandshake, &["0.10.0", "1.0"]),
    (ApiKey::SaslAuthenticate, &["1.0", "2.2", "2.4"]),
    (ApiKey::DescribeUserScramCredentials, &["2.7"]),
    (ApiKey::AlterUserScramCredentials, &["2.7"]),
    (ApiKey::DescribeQuorum, &["2.7", "3.3", "3.9"]),
    (ApiKey::DescribeCluster, &["2.8", "3.7", "4.0"]),
    (ApiKey::DescribeProducers, &["2.8"]),
    (ApiKey::DescribeTransactions, &["3.0"]),
    (ApiKey::ListTransactions, &["3.0", "3.8", "4.1"]),
    (ApiKey::ListConfigResources, &["3.7", "4.1"]),
    (ApiKey::DescribeTopicPartitions, &["3.8"]),
    (ApiKey::ConsumerGroupHeartbeat, &["3.7", "4.0"]),
    (ApiKey::ConsumerGroupDescribe, &["3.7", "4.0"]),
];

/// The Kafka release that introduced `version` of `key`; None for an API or version this
/// table does not know (newer than Kafka 4.2, or an API shardlog does not implement).
pub fn version_introduced_in(key: ApiKey, version: i16) -> Option<&'static str> {
    let (_, releases) = VERSION_INTRODUCED_IN.iter().find(|(k, _)| *k == key)?;
    releases.get(usize::try_from(version).ok()?).copied()
}

/// The newest version of `key` that Kafka `release` (e.g. "4.1") offers, if it has the API.
pub fn newest_version_in(key: ApiKey, release: &str) -> Option<i16> {
    let (_, releases) = VERSION_INTRODUCED_IN.iter().find(|(k, _)| *k == key)?;
    let wanted = release_order(release);
    let count = releases
        .iter()
        .take_while(|introduced| release_order(introduced) <= wanted)
        .count();
    let newest = count.checked_sub(1)?;
    i16::try_from(newest).ok()
}

/// Kafka 4.x's lowest supported version of `key` (KIP-896 removed older ones in 4.0).
pub fn kafka_4_min_version(key: ApiKey) -> i16 {
    key.valid_versions().min
}

/// "2.10" sorts after "2.9": compare releases numerically, component by component.
fn release_order(release: &str) -> Vec<u32> {
    release
        .split('.')
        .map(|part| part.parse().unwrap_or(u32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_never_go_back_in_time() {
        for (key, releases) in VERSION_INTRODUCED_IN {
            for pair in releases.windows(2) {
                assert!(
                    release_order(pair[0]) <= release_order(pair[1]),
                    "{key:?}: {pair:?}"
                );
            }
        }
    }

    #[test]
    fn known_facts() {
        assert_eq!(version_introduced_in(ApiKey::ListOffsets, 10), Some("4.0"));
        assert_eq!(version_introduced_in(ApiKey::Produce, 13), Some("4.1"));
        assert_eq!(version_introduced_in(ApiKey::Produce, 14), None);
        assert_eq!(newest_version_in(ApiKey::Fetch, "4.1"), Some(18));
        assert_eq!(newest_version_in(ApiKey::Fetch, "4.0"), Some(17));
        assert_eq!(
            newest_version_in(ApiKey::DescribeTopicPartitions, "3.7"),
            None
        );
        assert_eq!(kafka_4_min_version(ApiKey::Produce), 3);
        assert_eq!(kafka_4_min_version(ApiKey::JoinGroup), 0);
    }
}
