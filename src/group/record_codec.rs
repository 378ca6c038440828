//! Big-endian framing of the `__consumer_offsets` keys and values, shared by the classic
//! group records (`group::records`: fixed-width strings and bytes) and the consumer-group
//! records (`group::consumer::records`: Kafka's flexible layout, compact strings and arrays,
//! tagged fields). Pure; reading never panics and never allocates from a length read off the
//! bytes before checking that the bytes are there.

use super::records::RecordError;
use bytes::Bytes;

#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn i8(&mut self, v: i8) -> &mut Self {
        self.0.push(v as u8);
        self
    }
    pub(crate) fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    /// An int16-length string (cut at `i16::MAX` bytes).
    pub(crate) fn string(&mut self, v: &str) -> &mut Self {
        let len = v.len().min(i16::MAX as usize);
        self.i16(len as i16);
        self.0.extend_from_slice(&v.as_bytes()[..len]);
        self
    }
    pub(crate) fn nullable_string(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.string(v),
            None => self.i16(-1),
        }
    }
    /// int32-length bytes.
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn compact_string(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.uvarint(v.len() as u64 + 1).raw(v.as_bytes()),
            None => self.uvarint(0),
        }
    }
    /// An empty tagged-fields section.
    pub(crate) fn tags(&mut self) -> &mut Self {
        self.uvarint(0)
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        let mut array = [0u8; 8];
        array.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(array))
    }
    pub(crate) fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated)
    }
    fn utf8(raw: &[u8]) -> Result<String, RecordError> {
        String::from_utf8(raw.to_vec()).map_err(|_| RecordError::BadString)
    }
    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        Self::utf8(self.take(len as usize)?).map(Some)
    }
    /// An int16-length string; null reads as empty.
    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }
    /// int32-length bytes; null reads as empty.
    pub(crate) fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
    pub(crate) fn compact_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.uvarint()? {
            0 => Ok(None),
            n => Self::utf8(self.take((n - 1) as usize)?).map(Some),
        }
    }
    /// A compact array's element count, bounded by the bytes left (each element takes at
    /// least `min_element` bytes), so a garbage count never becomes a huge allocation.
    pub(crate) fn count(&mut self, min_element: usize) -> Result<usize, RecordError> {
        let n = self.uvarint()?.saturating_sub(1) as usize;
        if n.saturating_mul(min_element) > self.0.len() {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }
    /// Skips a tagged-fields section.
    pub(crate) fn tags(&mut self) -> Result<(), RecordError> {
        for _ in 0..self.uvarint()? {
            let _tag = self.uvarint()?;
            let len = self.uvarint()? as usize;
            self.take(len)?;
        }
        Ok(())
    }
}
