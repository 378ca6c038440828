//! Offsets retention: which committed offsets have expired (Kafka 2.1+ semantics: only
//! groups without members lose offsets, once their commit is older than the cutoff).

use super::{GroupOffsets, OffsetKey};
use crate::group::Group;
use std::collections::HashMap;

/// Offsets committed before `cutoff_ms` by groups without members, per group.
pub(super) fn expired_offsets(
    groups: &HashMap<String, Group>,
    offsets: &HashMap<String, GroupOffsets>,
    cutoff_ms: i64,
) -> Vec<(String, Vec<OffsetKey>)> {
    offsets
        .iter()
        .filter(|(group, _)| groups.get(*group).is_none_or(|g| !g.has_members()))
        .map(|(group, stored)| {
            let old: Vec<OffsetKey> = stored
                .iter()
                .filter(|(_, value)| value.commit_timestamp_ms < cutoff_ms)
                .map(|(key, _)| key.clone())
                .collect();
            (group.clone(), old)
        })
        .filter(|(_, old)| !old.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::CommittedOffset;
    use crate::group::{GroupLimits, JoinInput};

    fn committed(at_ms: i64) -> CommittedOffset {
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: at_ms,
        }
    }

    #[test]
    fn only_old_offsets_of_groups_without_members_expire() {
        let limits = GroupLimits {
            session_timeout_ms_min: 1,
            session_timeout_ms_max: 100_000,
            initial_rebalance_delay_ms: 0,
            members_max: 10,
        };
        let mut groups = HashMap::new();
        groups.insert("idle".to_string(), Group::new("idle", limits));
        let mut active = Group::new("active", limits);
        let join = JoinInput {
            token: 1,
            member_id: String::new(),
            group_instance_id: None,
            fresh_member_id: "m".to_string(),
            client_id: "c".to_string(),
            client_host: "h".to_string(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".to_string(),
            protocols: vec![("range".to_string(), bytes::Bytes::new())],
            require_known_member_id: false,
        };
        let _ = active.join(join, 0);
        groups.insert("active".to_string(), active);
        let mut offsets = HashMap::new();
        for group in ["idle", "active", "unknown"] {
            let mut stored = GroupOffsets::new();
            stored.insert(("t".to_string(), 0), committed(100));
            stored.insert(("t".to_string(), 1), committed(900));
            offsets.insert(group.to_string(), stored);
        }
        let mut expired = expired_offsets(&groups, &offsets, 500);
        expired.sort();
        assert_eq!(
            expired,
            vec![
                ("idle".to_string(), vec![("t".to_string(), 0)]),
                ("unknown".to_string(), vec![("t".to_string(), 0)]),
            ]
        );
    }
}
