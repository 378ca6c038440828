//! `__transaction_state` records in Kafka's layout: key v0 (transactional id) and
//! TransactionLogValue v0. A null value is a tombstone (expired transactional id).

use super::{TxnMetadata, TxnState};
use std::collections::BTreeSet;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TxnRecordError {
    #[error("transaction record truncated")]
    Truncated,
    #[error("unknown transaction record version {0}")]
    UnknownVersion(i16),
    #[error("invalid transaction record: {0}")]
    Invalid(&'static str),
}

fn put_string(out: &mut Vec<u8>, value: &str) {
    let len = value.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&value.as_bytes()[..len]);
}

pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

pub fn value(metadata: &TxnMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&metadata.producer_id.to_be_bytes());
    out.extend_from_slice(&metadata.producer_epoch.to_be_bytes());
    out.extend_from_slice(&metadata.timeout_ms.to_be_bytes());
    out.push(metadata.state.id() as u8);
    let mut topics: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (topic, partition) in &metadata.partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (topic, partitions) in topics {
        put_string(&mut out, topic);
        out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for partition in partitions {
            out.extend_from_slice(&partition.to_be_bytes());
        }
    }
    out.extend_from_slice(&metadata.last_update_ms.to_be_bytes());
    out.extend_from_slice(&metadata.start_ms.to_be_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TxnRecordError> {
        if self.0.len() < n {
            return Err(TxnRecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], TxnRecordError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
    fn i16(&mut self) -> Result<i16, TxnRecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, TxnRecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, TxnRecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, TxnRecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(String::new());
        }
        String::from_utf8(self.take(len as usize)?.to_vec())
            .map_err(|_| TxnRecordError::Invalid("utf-8"))
    }
}

pub fn decode_key(key: &[u8]) -> Result<String, TxnRecordError> {
    let mut reader = Reader(key);
    match reader.i16()? {
        0 => reader.string(),
        other => Err(TxnRecordError::UnknownVersion(other)),
    }
}

pub fn decode_value(transactional_id: &str, value: &[u8]) -> Result<TxnMetadata, TxnRecordError> {
    let mut reader = Reader(value);
    let version = reader.i16()?;
    if version != 0 {
        return Err(TxnRecordError::UnknownVersion(version));
    }
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let state =
        TxnState::from_id(reader.array::<1>()?[0] as i8).ok_or(TxnRecordError::Invalid("state"))?;
    let topics = reader.i32()?.max(0);
    let mut partitions = BTreeSet::new();
    for _ in 0..topics {
        let topic = reader.string()?;
        let count = reader.i32()?.max(0);
        for _ in 0..count {
            partitions.insert((topic.clone(), reader.i32()?));
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}
