//! Round-trip cases of the KIP-848 consumer-group APIs (issue 20), split from
//! api_round_trip_cases.rs.

use super::*;

/// A consumer-protocol (KIP-848) member joins a 3-partition topic alone: epoch 1 and every
/// partition; v1 clients name themselves, v0 members are named by the coordinator.
pub(super) fn consumer_group_heartbeat(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("cgh", 3);
    let group = fx.unique("cgh");
    let member_id = if version >= 1 {
        fx.unique("member")
    } else {
        String::new()
    };
    let response = fx.send(&consumer_group_join(&group, &member_id, &topic), version);
    assert_eq!(response.error_code, NONE, "{:?}", response.error_message);
    assert_eq!(response.member_epoch, 1);
    assert!(response.member_id.as_ref().is_some_and(|id| !id.is_empty()));
    let assignment = response.assignment.expect("the first answer assigns");
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1, 2]);
    assert_eq!(assignment.topic_partitions[0].topic_id, fx.topic_id(&topic));
}

/// ConsumerGroupDescribe of a one-member consumer group, and of an unknown id
/// (GROUP_ID_NOT_FOUND, 69).
pub(super) fn consumer_group_describe(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("cgd", 2);
    let group = fx.unique("cgd");
    let member_id = fx.unique("member");
    let join = consumer_group_join(&group, &member_id, &topic);
    assert_eq!(fx.send(&join, 1).error_code, NONE);
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s(&group)), GroupId(s("rt-no-such-cgd"))]);
    let response = fx.send(&request, version);
    let described = &response.groups[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.group_state.text(), "Stable");
    assert_eq!(described.group_epoch, 1);
    assert_eq!(described.members.len(), 1);
    let member = &described.members[0];
    assert_eq!(member.member_id.text(), member_id);
    assert_eq!(member.assignment.topic_partitions[0].partitions, vec![0, 1]);
    assert_eq!(
        member.assignment.topic_partitions[0].topic_name.text(),
        topic
    );
    assert_eq!(response.groups[1].error_code, 69);
}
