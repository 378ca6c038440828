//! Server-side assignors (`group.remote.assignor` in clients): `uniform` and `range`, both
//! sticky. They map members and their subscribed topics to a target assignment, given the
//! previous target: a member keeps what it can and only partitions that must move do.
//! Pure functions, deterministic for a given input (members in member-id order).
//!
//! Rack awareness (KIP-881 for the server-side assignors): when a member names a rack and
//! a partition's replica racks are known, a partition that has to be placed goes to a
//! member of one of its racks if that costs no balance: `uniform` breaks ties between the
//! least-loaded members by rack, moves same-rack partitions first when it rebalances, then
//! swaps newly placed partitions between members where both land in their rack; `range`
//! fills each member's quota with same-rack free partitions first. Sizes are the
//! same as without racks, and stickiness wins over racks (a kept partition stays).

use super::types::{Assignment, PartitionRacks, TopicId};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssignorKind {
    /// Spreads all partitions of the subscribed topics evenly over the members (Kafka's
    /// `UniformAssignor`): member sizes differ by at most one when subscriptions match.
    Uniform,
    /// Per topic, contiguous ranges over the members subscribed to it, sorted by member id
    /// (Kafka's `RangeAssignor`): co-partitioned topics land on the same members.
    Range,
}

impl AssignorKind {
    pub fn name(self) -> &'static str {
        match self {
            AssignorKind::Uniform => "uniform",
            AssignorKind::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<AssignorKind> {
        match name {
            "uniform" => Some(AssignorKind::Uniform),
            "range" => Some(AssignorKind::Range),
            _ => None,
        }
    }
}

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    /// Subscribed topics that exist.
    pub subscribed: BTreeSet<TopicId>,
    /// The member's previous target assignment.
    pub previous: &'a Assignment,
    /// The member's rack (`rack_id` in its heartbeats).
    pub rack: Option<&'a str>,
}

/// Whether `member` is in one of the racks of `partition` (false when either is unknown).
fn same_rack(member: &AssignorMember<'_>, racks: &PartitionRacks, partition: Partition) -> bool {
    member
        .rack
        .is_some_and(|rack| racks.get(&partition).is_some_and(|r| r.contains(rack)))
}

/// The target assignment of every member (members with nothing get an empty assignment).
/// `topics` gives the partition count of each subscribed topic.
/// `racks` gives the replica racks of partitions (empty: rack-unaware).
pub fn compute_target_assignment(
    kind: AssignorKind,
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, i32>,
    racks: &PartitionRacks,
) -> BTreeMap<String, Assignment> {
    let per_member = match kind {
        AssignorKind::Uniform => uniform(members, topics, racks),
        AssignorKind::Range => range(members, topics, racks),
    };
    members
        .iter()
        .zip(per_member)
        .map(|(member, partitions)| {
            let mut assignment = Assignment::new();
            for (topic, partition) in partitions {
                assignment.entry(topic).or_default().insert(partition);
            }
            (member.member_id.to_string(), assignment)
        })
        .collect()
}

type Partition = (TopicId, i32);

fn partition_exists(topics: &BTreeMap<TopicId, i32>, topic: &TopicId, partition: i32) -> bool {
    topics
        .get(topic)
        .is_some_and(|&count| (0..count).contains(&partition))
}

/// Previous partitions each member may keep: still subscribed, still existing, and not
/// already kept by an earlier member (a target never names a partition twice).
fn retained(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, i32>,
) -> Vec<BTreeSet<Partition>> {
    let mut taken = BTreeSet::new();
    members
        .iter()
        .map(|member| {
            let mut kept = BTreeSet::new();
            for (topic, partitions) in member.previous {
                if !member.subscribed.contains(topic) {
                    continue;
                }
                for &partition in partitions {
                    if partition_exists(topics, topic, partition)
                        && taken.insert((*topic, partition))
                    {
                        kept.insert((*topic, partition));
                    }
                }
            }
            kept
        })
        .collect()
}

fn uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, i32>,
    racks: &PartitionRacks,
) -> Vec<BTreeSet<Partition>> {
    let mut assigned = retained(members, topics);
    let held: BTreeSet<Partition> = assigned.iter().flatten().copied().collect();
    // Unheld partitions go to the eligible member holding the fewest (of those, one in the
    // partition's rack).
    for (topic, &count) in topics {
        for partition in 0..count {
            if held.contains(&(*topic, partition)) {
                continue;
            }
            let receiver = (0..members.len())
                .filter(|&index| members[index].subscribed.contains(topic))
                .min_by_key(|&index| {
                    let other_rack = !same_rack(&members[index], racks, (*topic, partition));
                    (assigned[index].len(), other_rack, index)
                });
            if let Some(index) = receiver {
                assigned[index].insert((*topic, partition));
            }
        }
    }
    balance(members, &mut assigned, racks);
    if !racks.is_empty() {
        rack_swaps(members, &mut assigned, racks, &held);
    }
    assigned
}

/// Swaps pairs of newly placed partitions between two members when each lands in the
/// other's rack that way: sizes stay, kept (`held`) partitions stay, and every swap places
/// two more partitions in their member's rack, so this ends.
fn rack_swaps(
    members: &[AssignorMember<'_>],
    assigned: &mut [BTreeSet<Partition>],
    racks: &PartitionRacks,
    held: &BTreeSet<Partition>,
) {
    let misplaced = |assigned: &[BTreeSet<Partition>], index: usize| -> Vec<Partition> {
        assigned[index]
            .iter()
            .filter(|p| !held.contains(p) && !same_rack(&members[index], racks, **p))
            .copied()
            .collect()
    };
    loop {
        let mut swap = None;
        'search: for a in 0..members.len() {
            let a_misplaced = misplaced(assigned, a);
            for b in (a + 1)..members.len() {
                let b_misplaced = misplaced(assigned, b);
                for &x in &a_misplaced {
                    if !same_rack(&members[b], racks, x) || !members[b].subscribed.contains(&x.0) {
                        continue;
                    }
                    let y = b_misplaced.iter().find(|y| {
                        same_rack(&members[a], racks, **y) && members[a].subscribed.contains(&y.0)
                    });
                    if let Some(&y) = y {
                        swap = Some((a, x, b, y));
                        break 'search;
                    }
                }
            }
        }
        let Some((a, x, b, y)) = swap else {
            return;
        };
        assigned[a].remove(&x);
        assigned[b].remove(&y);
        assigned[a].insert(y);
        assigned[b].insert(x);
    }
}

/// Moves one partition at a time from a member holding more than one above another member
/// that could take it, until no such pair is left. Every move lowers the sum of squared
/// sizes, so this ends; only partitions that must move do (one in the receiver's rack
/// first).
fn balance(
    members: &[AssignorMember<'_>],
    assigned: &mut [BTreeSet<Partition>],
    racks: &PartitionRacks,
) {
    loop {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&index| (std::cmp::Reverse(assigned[index].len()), index));
        let mut moved = None;
        'search: for &donor in &order {
            for &receiver in order.iter().rev() {
                if assigned[donor].len() <= assigned[receiver].len() + 1 {
                    break;
                }
                let movable = |p: &&Partition| members[receiver].subscribed.contains(&p.0);
                let candidate = assigned[donor]
                    .iter()
                    .rev()
                    .filter(movable)
                    .find(|p| same_rack(&members[receiver], racks, **p))
                    .or_else(|| assigned[donor].iter().rev().find(movable))
                    .copied();
                if let Some(partition) = candidate {
                    moved = Some((donor, receiver, partition));
                    break 'search;
                }
            }
        }
        let Some((donor, receiver, partition)) = moved else {
            return;
        };
        assigned[donor].remove(&partition);
        assigned[receiver].insert(partition);
    }
}

fn range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, i32>,
    racks: &PartitionRacks,
) -> Vec<BTreeSet<Partition>> {
    let mut assigned = vec![BTreeSet::new(); members.len()];
    for (topic, &count) in topics {
        let subscribers: Vec<usize> = (0..members.len())
            .filter(|&index| members[index].subscribed.contains(topic))
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let rack_aware = subscribers
            .iter()
            .any(|&index| (0..count).any(|p| same_rack(&members[index], racks, (*topic, p))));
        let placed = if rack_aware {
            range_topic_by_rack(members, &subscribers, topic, count, racks)
        } else {
            range_topic(members, &subscribers, topic, count)
        };
        for (index, partitions) in placed {
            assigned[index].extend(partitions.into_iter().map(|p| (*topic, p)));
        }
    }
    assigned
}

/// One topic's ranges: sticky when members held partitions of it before, contiguous
/// ranges in member order otherwise.
fn range_topic(
    members: &[AssignorMember<'_>],
    subscribers: &[usize],
    topic: &TopicId,
    count: i32,
) -> Vec<(usize, Vec<i32>)> {
    let members_count = subscribers.len() as i32;
    let quota = count / members_count;
    let mut extra = count % members_count;
    let mut taken = BTreeSet::new();
    let previous: Vec<Vec<i32>> = subscribers
        .iter()
        .map(|&index| {
            members[index]
                .previous
                .get(topic)
                .map(|partitions| {
                    partitions
                        .iter()
                        .copied()
                        .filter(|&p| (0..count).contains(&p) && taken.insert(p))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    if previous.iter().all(Vec::is_empty) {
        let mut start = 0;
        return subscribers
            .iter()
            .enumerate()
            .map(|(position, &index)| {
                let length = quota + i32::from((position as i32) < extra);
                let partitions = (start..start + length).collect();
                start += length;
                (index, partitions)
            })
            .collect();
    }
    let mut kept: Vec<Vec<i32>> = Vec::with_capacity(subscribers.len());
    for partitions in &previous {
        let mut cap = quota as usize;
        if partitions.len() > cap && extra > 0 {
            cap += 1;
            extra -= 1;
        }
        kept.push(partitions.iter().copied().take(cap).collect());
    }
    let held: BTreeSet<i32> = kept.iter().flatten().copied().collect();
    let mut free = (0..count).filter(|p| !held.contains(p));
    for partitions in kept.iter_mut() {
        while (partitions.len() as i32) < quota {
            match free.next() {
                Some(partition) => partitions.push(partition),
                None => break,
            }
        }
    }
    for partitions in kept.iter_mut() {
        if extra == 0 {
            break;
        }
        if partitions.len() as i32 == quota
            && let Some(partition) = free.next()
        {
            partitions.push(partition);
            extra -= 1;
        }
    }
    subscribers.iter().copied().zip(kept).collect()
}

/// One topic's range quotas (quota, plus one for the first `count % members` subscribers),
/// filled first with kept partitions (sticky), then with free partitions in the member's
/// rack, then with any free partition in order.
fn range_topic_by_rack(
    members: &[AssignorMember<'_>],
    subscribers: &[usize],
    topic: &TopicId,
    count: i32,
    racks: &PartitionRacks,
) -> Vec<(usize, Vec<i32>)> {
    let members_count = subscribers.len() as i32;
    let quota = |position: usize| {
        (count / members_count) as usize + usize::from((position as i32) < count % members_count)
    };
    let mut taken = BTreeSet::new();
    let mut placed: Vec<Vec<i32>> = vec![Vec::new(); subscribers.len()];
    for (position, &index) in subscribers.iter().enumerate() {
        for &partition in members[index].previous.get(topic).into_iter().flatten() {
            if placed[position].len() < quota(position)
                && (0..count).contains(&partition)
                && taken.insert(partition)
            {
                placed[position].push(partition);
            }
        }
    }
    for (position, &index) in subscribers.iter().enumerate() {
        for partition in 0..count {
            if placed[position].len() >= quota(position) {
                break;
            }
            if !taken.contains(&partition) && same_rack(&members[index], racks, (*topic, partition))
            {
                taken.insert(partition);
                placed[position].push(partition);
            }
        }
    }
    let mut free = (0..count).filter(|p| !taken.contains(p));
    for (position, partitions) in placed.iter_mut().enumerate() {
        while partitions.len() < quota(position) {
            match free.next() {
                Some(partition) => partitions.push(partition),
                None => break,
            }
        }
    }
    subscribers.iter().copied().zip(placed).collect()
}
