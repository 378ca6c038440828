//! Assignor tests: balance, stickiness (a member keeps what it can) and subscriptions.

use super::tests::parts;
use super::*;
use std::collections::{BTreeMap, BTreeSet};

const T: TopicId = [1; 16];
const U: TopicId = [2; 16];

fn topics(list: &[(TopicId, i32)]) -> BTreeMap<TopicId, i32> {
    list.iter().copied().collect()
}

fn run(
    kind: AssignorKind,
    members: &[(&str, &[TopicId])],
    previous: &BTreeMap<String, Assignment>,
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let empty = Assignment::new();
    let members: Vec<AssignorMember<'_>> = members
        .iter()
        .map(|(id, subscribed)| AssignorMember {
            member_id: id,
            subscribed: subscribed.iter().copied().collect(),
            previous: previous.get(*id).unwrap_or(&empty),
            rack: None,
        })
        .collect();
    compute_target_assignment(kind, &members, topics, &PartitionRacks::new())
}

fn sizes(target: &BTreeMap<String, Assignment>) -> Vec<usize> {
    target.values().map(assignment_size).collect()
}

/// Every partition of `topics` appears exactly once.
fn assert_complete(target: &BTreeMap<String, Assignment>, topics: &BTreeMap<TopicId, i32>) {
    let mut seen = BTreeSet::new();
    for assignment in target.values() {
        for (topic, partitions) in assignment {
            for p in partitions {
                assert!(seen.insert((*topic, *p)), "{p} twice");
            }
        }
    }
    let all: usize = topics.values().map(|&c| c as usize).sum();
    assert_eq!(seen.len(), all);
}

/// How many partitions a member had before and still has.
fn kept(before: &Assignment, after: &Assignment) -> usize {
    before
        .iter()
        .map(|(t, ps)| after.get(t).map_or(0, |a| a.intersection(ps).count()))
        .sum()
}

#[test]
fn uniform_one_three_two_moves_only_what_it_must() {
    let t = topics(&[(T, 6)]);
    let one = run(AssignorKind::Uniform, &[("a", &[T])], &BTreeMap::new(), &t);
    assert_eq!(sizes(&one), vec![6]);
    let three = run(
        AssignorKind::Uniform,
        &[("a", &[T]), ("b", &[T]), ("c", &[T])],
        &one,
        &t,
    );
    assert_complete(&three, &t);
    assert_eq!(sizes(&three), vec![2, 2, 2]);
    assert_eq!(kept(&one["a"], &three["a"]), 2);
    let two = run(
        AssignorKind::Uniform,
        &[("a", &[T]), ("c", &[T])],
        &three,
        &t,
    );
    assert_complete(&two, &t);
    assert_eq!(sizes(&two), vec![3, 3]);
    assert_eq!(kept(&three["a"], &two["a"]), 2);
    assert_eq!(kept(&three["c"], &two["c"]), 2);
}

#[test]
fn uniform_balances_many_members_and_topics() {
    let t = topics(&[(T, 7), (U, 5)]);
    let names: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    let members: Vec<(&str, &[TopicId])> =
        names.iter().map(|n| (n.as_str(), &[T, U][..])).collect();
    let target = run(AssignorKind::Uniform, &members, &BTreeMap::new(), &t);
    assert_complete(&target, &t);
    let s = sizes(&target);
    assert!(
        s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
        "{s:?}"
    );
    // Adding a sixth member moves exactly two partitions (12 = 6 x 2).
    let mut more = members.clone();
    more.push(("m5", &[T, U]));
    let next = run(AssignorKind::Uniform, &more, &target, &t);
    assert_complete(&next, &t);
    assert_eq!(sizes(&next), vec![2; 6]);
    let moved: usize = names
        .iter()
        .map(|n| assignment_size(&target[n]) - kept(&target[n], &next[n]))
        .sum();
    assert_eq!(moved, 2);
}

#[test]
fn uniform_respects_different_subscriptions() {
    let t = topics(&[(T, 4), (U, 4)]);
    let target = run(
        AssignorKind::Uniform,
        &[("a", &[T]), ("b", &[T, U]), ("c", &[U])],
        &BTreeMap::new(),
        &t,
    );
    assert_complete(&target, &t);
    assert!(!target["a"].contains_key(&U));
    assert!(!target["c"].contains_key(&T));
    let s = sizes(&target);
    assert!(
        s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
        "{s:?}"
    );
}

#[test]
fn unsubscribed_or_deleted_topics_leave_the_target() {
    let t = topics(&[(T, 2), (U, 2)]);
    let first = run(
        AssignorKind::Uniform,
        &[("a", &[T, U])],
        &BTreeMap::new(),
        &t,
    );
    assert_eq!(sizes(&first), vec![4]);
    let only_t = topics(&[(T, 2)]);
    let next = run(AssignorKind::Uniform, &[("a", &[T, U])], &first, &only_t);
    assert_complete(&next, &only_t);
    let next = run(AssignorKind::Uniform, &[("a", &[U])], &first, &t);
    assert_eq!(next["a"].keys().collect::<Vec<_>>(), vec![&U]);
}

#[test]
fn range_gives_contiguous_ranges_and_stays_sticky() {
    let t = topics(&[(T, 7), (U, 3)]);
    let first = run(
        AssignorKind::Range,
        &[("a", &[T, U]), ("b", &[T, U])],
        &BTreeMap::new(),
        &t,
    );
    assert_complete(&first, &t);
    assert_eq!(first["a"][&T], (0..4).collect());
    assert_eq!(first["b"][&T], (4..7).collect());
    assert_eq!(first["a"][&U], (0..2).collect());
    let three = run(
        AssignorKind::Range,
        &[("a", &[T, U]), ("b", &[T, U]), ("c", &[T, U])],
        &first,
        &t,
    );
    assert_complete(&three, &t);
    for member in ["a", "b", "c"] {
        let count = three[member][&T].len();
        assert!((2..=3).contains(&count), "{member} {count}");
    }
    // a and b keep a prefix of what they had.
    assert!(three["a"][&T].is_subset(&first["a"][&T]));
    assert!(three["b"][&T].is_subset(&first["b"][&T]));
}

#[test]
fn names_round_trip() {
    for kind in [AssignorKind::Uniform, AssignorKind::Range] {
        assert_eq!(AssignorKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(AssignorKind::from_name("cooperative-sticky"), None);
}

/// Members a and b in racks "a" and "b"; partitions 0-1 have replicas in rack "b" only,
/// 2-3 in rack "a" only. Both assignors give each member its own rack's partitions, with
/// the sizes they would give without racks; without racks known they fall back to the
/// rack-unaware split.
#[test]
fn members_get_partitions_of_their_rack() {
    let t = topics(&[(T, 4)]);
    let mut racks = PartitionRacks::new();
    for (partition, rack) in [(0, "b"), (1, "b"), (2, "a"), (3, "a")] {
        racks.insert((T, partition), BTreeSet::from([rack.to_string()]));
    }
    let empty = Assignment::new();
    let member = |id, rack| AssignorMember {
        member_id: id,
        subscribed: BTreeSet::from([T]),
        previous: &empty,
        rack: Some(rack),
    };
    let members = [member("a", "a"), member("b", "b")];
    for (kind, unaware_a) in [
        (AssignorKind::Uniform, [0, 2]),
        (AssignorKind::Range, [0, 1]),
    ] {
        let target = compute_target_assignment(kind, &members, &t, &racks);
        assert_eq!(target["a"], parts(T, &[2, 3]), "{kind:?}");
        assert_eq!(target["b"], parts(T, &[0, 1]), "{kind:?}");
        let unaware = compute_target_assignment(kind, &members, &t, &PartitionRacks::new());
        assert_eq!(unaware["a"], parts(T, &unaware_a), "{kind:?} without racks");
    }
}

/// Rack awareness never costs balance or stickiness: three members, one in rack "a" where
/// every partition lives, still split 2/2/2, and a member keeps its previous partitions.
#[test]
fn racks_do_not_unbalance_or_unstick() {
    let t = topics(&[(T, 6)]);
    let racks: PartitionRacks = (0..6)
        .map(|p| ((T, p), BTreeSet::from(["a".to_string()])))
        .collect();
    let kept = parts(T, &[4, 5]);
    let empty = Assignment::new();
    let members = [
        AssignorMember {
            member_id: "a",
            subscribed: BTreeSet::from([T]),
            previous: &empty,
            rack: Some("a"),
        },
        AssignorMember {
            member_id: "b",
            subscribed: BTreeSet::from([T]),
            previous: &kept,
            rack: Some("b"),
        },
        AssignorMember {
            member_id: "c",
            subscribed: BTreeSet::from([T]),
            previous: &empty,
            rack: None,
        },
    ];
    for kind in [AssignorKind::Uniform, AssignorKind::Range] {
        let target = compute_target_assignment(kind, &members, &t, &racks);
        assert_eq!(sizes(&target), vec![2, 2, 2], "{kind:?}");
        assert_complete(&target, &t);
        assert_eq!(target["b"], kept, "{kind:?}: b keeps its partitions");
    }
}
