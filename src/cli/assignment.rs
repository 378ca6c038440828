//! Decoding the consumer protocol's member assignment (the bytes a classic-protocol group leader
//! hands each member through SyncGroup, and DescribeGroups reports back).
//!
//! Owns: `decode_assignment`. May import: nothing outside std. Input comes from the network, so
//! every length is checked against the bytes that remain; nothing is allocated from a count.

/// Topic → partitions assigned to one member.
pub type Assignment = Vec<(String, Vec<i32>)>;

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<String> {
        let length = usize::try_from(self.i16()?).ok()?;
        let bytes = self.take(length)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// An array count, rejected when even minimal elements could not fit in what remains.
    fn count(&mut self, element_bytes_min: usize) -> Option<usize> {
        let count = self.i32()?;
        if count < 0 {
            return Some(0);
        }
        let count = usize::try_from(count).ok()?;
        (count.checked_mul(element_bytes_min)? <= self.bytes.len()).then_some(count)
    }
}

/// Decodes `ConsumerProtocolAssignment` (versions 0–3 share this prefix: version, then
/// `[topic, [partition]]`; user data and later fields are ignored). `None` if malformed or empty
/// (an empty assignment is zero bytes, which the consumer protocol allows).
pub fn decode_assignment(bytes: &[u8]) -> Option<Assignment> {
    let mut reader = Reader { bytes };
    let _version = reader.i16()?;
    let topic_count = reader.count(2 + 4)?;
    let mut assignment = Vec::new();
    for _ in 0..topic_count {
        let topic = reader.string()?;
        let partition_count = reader.count(4)?;
        let mut partitions = Vec::new();
        for _ in 0..partition_count {
            partitions.push(reader.i32()?);
        }
        partitions.sort_unstable();
        assignment.push((topic, partitions));
    }
    assignment.sort();
    Some(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend((topic.len() as i16).to_be_bytes());
            out.extend(topic.as_bytes());
            out.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend(p.to_be_bytes());
            }
        }
        out.extend((user_data.len() as i32).to_be_bytes());
        out.extend(user_data);
        out
    }

    #[test]
    fn decodes_topics_and_partitions_sorted() {
        let bytes = encode(1, &[("orders", &[2, 0]), ("audit", &[1])], b"ud");
        let expected = vec![
            ("audit".to_string(), vec![1]),
            ("orders".to_string(), vec![0, 2]),
        ];
        assert_eq!(decode_assignment(&bytes), Some(expected));
    }

    #[test]
    fn truncated_or_hostile_input_is_rejected_without_allocating() {
        let bytes = encode(0, &[("orders", &[0, 1, 2])], b"");
        let topics_end = bytes.len() - 4;
        for cut in 0..topics_end {
            assert_eq!(decode_assignment(&bytes[..cut]), None, "cut at {cut}");
        }
        assert!(decode_assignment(&bytes[..topics_end]).is_some());
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert_eq!(decode_assignment(&huge), None);
    }
}
