//! The log's records: their byte layout, the [`Journal`] a store appends
//! them to between commits, and their validation on the way back.
//!
//! # Layout (little-endian, every record starts on an 8-byte boundary)
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | CRC32C of bytes 4 .. `len` |
//! | 4 | 4 | `len`: header, key and value, unpadded |
//! | 8 | 8 | `seq`: this record's sequence number (1, 2, 3, … per shard) |
//! | 16 | 8 | `group`: the first sequence number of the commit that wrote it |
//! | 24 | 1 | kind: 1 SET, 2 DELETE, 3 EXPIRE, 4 CLEAR, 5 RAFT ENTRY, 6 RAFT STATE |
//! | 25 | 3 | zero |
//! | 28 | 4 | key length |
//! | 32 | 8 | expiry, unix ms (0: none) |
//! | 40 | 4 | value length (SET only) |
//! | 44 | … | key, then value, then zeroes up to the next 8-byte boundary |
//!
//! The CRC finds a torn or rotten record; the sequence number finds a
//! stale one (a block from an earlier use of a recycled segment, or the
//! uninitialised padding of a DMA buffer, can hold records whose CRC is
//! right). The `group` tells the tail of the last commit — which a crash
//! may have torn anywhere, since a commit is one write whose blocks may
//! land in any order — from corruption in the middle: a valid record of a
//! *later* commit behind a bad one proves the bad one was written whole
//! once (see `recover`).
//!
//! A replicated shard's log holds its Raft group's log instead (see
//! `replica`): RAFT ENTRY records carry a raft-rs `Entry` (index, term,
//! the client batch), RAFT STATE records a `HardState` (term, vote,
//! commit), each protobuf-encoded in the value; the key is empty and the
//! expiry 0. The sequence number still grows by one per record whatever
//! the Raft index does: a new leader's entries that replace a deposed
//! one's tail are new records, and replay gives them the same effect.
//!
//! A record describes the write's result, not the command: a SET carries
//! the expiry the key ended with (SET KEEPTTL, INCR and APPEND resolved),
//! so replaying records in order rebuilds the store whatever commands
//! made them. Expiry removals are not logged: the absolute expiry time is,
//! and a replayed key whose time has passed is absent again.

/// Bytes of a record's header.
pub const HEADER: usize = 44;
/// Records start on multiples of this.
pub const ALIGN: usize = 8;

const KIND_SET: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_EXPIRE: u8 = 3;
const KIND_CLEAR: u8 = 4;
const KIND_RAFT_ENTRY: u8 = 5;
const KIND_RAFT_STATE: u8 = 6;

/// One logged change of a shard's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// `key` now holds `value`, expiring at `expire_at` (unix ms) if set.
    Set {
        /// The key.
        key: &'a [u8],
        /// Its value.
        value: &'a [u8],
        /// Its expiry, if any.
        expire_at: Option<u64>,
    },
    /// `key` was removed.
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// `key`'s expiry is now `at` (`None`: PERSIST).
    Expire {
        /// The key.
        key: &'a [u8],
        /// The new expiry.
        at: Option<u64>,
    },
    /// Every key was removed (FLUSHDB).
    Clear,
    /// A Raft log entry (raft-rs's `Entry`, protobuf-encoded).
    RaftEntry(&'a [u8]),
    /// A Raft hard state (raft-rs's `HardState`, protobuf-encoded).
    RaftState(&'a [u8]),
}

/// A record read back: its sequence number, its commit's, and its change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// The first sequence number of the commit that wrote it.
    pub group: u64,
    /// The change.
    pub entry: Entry<'a>,
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Only zeroes: nothing was ever written here (a clean end).
    #[error("no record (zeroes)")]
    Empty,
    /// The header runs past the end of the bytes.
    #[error("a header cut short")]
    Short,
    /// The length field is impossible or runs past the end.
    #[error("a length of {0} bytes that does not fit")]
    Length(u32),
    /// The checksum does not match.
    #[error("a checksum mismatch")]
    Checksum,
    /// The checksum matches but the fields contradict each other.
    #[error("fields that contradict each other")]
    Malformed,
}

/// Bytes a record takes with its padding.
#[inline]
pub fn padded(len: usize) -> usize {
    len.next_multiple_of(ALIGN)
}

/// Bytes a record of this entry takes, padded.
#[inline]
pub fn size(entry: &Entry<'_>) -> usize {
    padded(match entry {
        Entry::Set { key, value, .. } => HEADER + key.len() + value.len(),
        Entry::Delete { key } | Entry::Expire { key, .. } => HEADER + key.len(),
        Entry::Clear => HEADER,
        Entry::RaftEntry(bytes) | Entry::RaftState(bytes) => HEADER + bytes.len(),
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Appends `entry` as record `seq` to `out` (CRC and group left zero: see
/// [`seal`]).
pub fn encode(out: &mut Vec<u8>, seq: u64, entry: &Entry<'_>) {
    let (kind, key, value, at): (u8, &[u8], &[u8], Option<u64>) = match *entry {
        Entry::Set { key, value, expire_at } => (KIND_SET, key, value, expire_at),
        Entry::Delete { key } => (KIND_DELETE, key, &[], None),
        Entry::Expire { key, at } => (KIND_EXPIRE, key, &[], at),
        Entry::Clear => (KIND_CLEAR, &[], &[], None),
        Entry::RaftEntry(bytes) => (KIND_RAFT_ENTRY, &[], bytes, None),
        Entry::RaftState(bytes) => (KIND_RAFT_STATE, &[], bytes, None),
    };
    let len = HEADER + key.len() + value.len();
    let start = out.len();
    out.reserve(padded(len));
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&at.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out.resize(start + padded(len), 0);
}

/// Stamps every record in `records` (whole records, as [`encode`] wrote
/// them) with `group` and its CRC: done once per commit, just before the
/// write.
pub fn seal(records: &mut [u8], group: u64) {
    let mut at = 0;
    while at + HEADER <= records.len() {
        let len = u32_at(records, at + 4) as usize;
        records[at + 16..at + 24].copy_from_slice(&group.to_le_bytes());
        let crc = crc32c::crc32c(&records[at + 4..at + len]);
        records[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        at += padded(len);
    }
}

/// Reads the record at the start of `bytes`; with it, its padded size.
pub fn decode(bytes: &[u8]) -> Result<(Record<'_>, usize), Invalid> {
    if bytes.len() < HEADER {
        return Err(if bytes.iter().all(|&b| b == 0) { Invalid::Empty } else { Invalid::Short });
    }
    let crc = u32_at(bytes, 0);
    let len32 = u32_at(bytes, 4);
    if crc == 0 && len32 == 0 && u64_at(bytes, 8) == 0 {
        return Err(Invalid::Empty);
    }
    let len = len32 as usize;
    if len < HEADER || len > bytes.len() {
        return Err(Invalid::Length(len32));
    }
    if crc32c::crc32c(&bytes[4..len]) != crc {
        return Err(Invalid::Checksum);
    }
    let seq = u64_at(bytes, 8);
    let group = u64_at(bytes, 16);
    let kind = bytes[24];
    let key_len = u32_at(bytes, 28) as usize;
    let at = u64_at(bytes, 32);
    let value_len = u32_at(bytes, 40) as usize;
    if bytes[25..28] != [0, 0, 0] || HEADER.checked_add(key_len).and_then(|n| n.checked_add(value_len)) != Some(len) {
        return Err(Invalid::Malformed);
    }
    if seq == 0 || group == 0 || group > seq {
        return Err(Invalid::Malformed);
    }
    let key = &bytes[HEADER..HEADER + key_len];
    let value = &bytes[HEADER + key_len..len];
    let expiry = (at != 0).then_some(at);
    let entry = match kind {
        KIND_SET => Entry::Set { key, value, expire_at: expiry },
        KIND_DELETE if value.is_empty() && at == 0 => Entry::Delete { key },
        KIND_EXPIRE if value.is_empty() => Entry::Expire { key, at: expiry },
        KIND_CLEAR if key.is_empty() && value.is_empty() && at == 0 => Entry::Clear,
        KIND_RAFT_ENTRY if key.is_empty() && at == 0 => Entry::RaftEntry(value),
        KIND_RAFT_STATE if key.is_empty() && at == 0 => Entry::RaftState(value),
        _ => return Err(Invalid::Malformed),
    };
    Ok((Record { seq, group, entry }, padded(len)))
}

/// The records a shard's store has made since the last commit took them:
/// encoded, numbered, waiting for the log writer.
#[derive(Debug)]
pub struct Journal {
    buf: Vec<u8>,
    next_seq: u64,
}

impl Journal {
    /// An empty journal whose next record is `next_seq` (1 for a new log).
    pub fn new(next_seq: u64) -> Journal {
        Journal { buf: Vec::new(), next_seq: next_seq.max(1) }
    }

    /// Appends `entry` and returns its sequence number.
    #[inline]
    pub fn append(&mut self, entry: &Entry<'_>) -> u64 {
        let seq = self.next_seq;
        encode(&mut self.buf, seq, entry);
        self.next_seq += 1;
        seq
    }

    /// The sequence number of the last record appended (0: none yet).
    #[inline]
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Bytes waiting for the writer.
    #[inline]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Hands the waiting records to the writer: swaps them with `spare`
    /// (cleared first), so neither side allocates in the steady state.
    /// Returns the first and last sequence numbers taken, if any.
    pub fn take(&mut self, spare: &mut Vec<u8>) -> Option<(u64, u64)> {
        spare.clear();
        if self.buf.is_empty() {
            return None;
        }
        std::mem::swap(&mut self.buf, spare);
        let last = self.next_seq - 1;
        let first = u64_at(spare, 8);
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Option<u64>, u8)> {
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of(1u64..u64::MAX),
            0u8..6,
        )
    }

    fn as_entry<'a>((k, v, at, kind): &'a (Vec<u8>, Vec<u8>, Option<u64>, u8)) -> Entry<'a> {
        match kind {
            0 => Entry::Set { key: k, value: v, expire_at: *at },
            1 => Entry::Delete { key: k },
            2 => Entry::Expire { key: k, at: *at },
            3 => Entry::RaftEntry(v),
            4 => Entry::RaftState(v),
            _ => Entry::Clear,
        }
    }

    proptest! {
        /// Whatever is encoded and sealed reads back the same, record by
        /// record, with its sequence number and group.
        #[test]
        fn records_round_trip(entries in proptest::collection::vec(entry_strategy(), 1..20), first in 1u64..1 << 40) {
            let mut j = Journal::new(first);
            for e in &entries {
                j.append(&as_entry(e));
            }
            let mut bytes = Vec::new();
            let (from, to) = j.take(&mut bytes).expect("records");
            prop_assert_eq!((from, to), (first, first + entries.len() as u64 - 1));
            seal(&mut bytes, from);
            let mut at = 0;
            for (i, e) in entries.iter().enumerate() {
                let (r, n) = decode(&bytes[at..]).expect("valid");
                prop_assert_eq!(r, Record { seq: first + i as u64, group: first, entry: as_entry(e) });
                prop_assert_eq!(n, size(&as_entry(e)));
                at += n;
            }
            prop_assert_eq!(at, bytes.len());
            prop_assert_eq!(decode(&[0u8; 64]).map(|_| ()), Err(Invalid::Empty));
        }

        /// Any single flipped bit of a sealed record is caught.
        #[test]
        fn a_flipped_bit_is_caught(e in entry_strategy(), bit in 0usize..8 * 1024) {
            let mut j = Journal::new(7);
            j.append(&as_entry(&e));
            let mut bytes = Vec::new();
            j.take(&mut bytes);
            seal(&mut bytes, 7);
            let len = u32_at(&bytes, 4) as usize;
            let bit = bit % (len * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&bytes).is_err());
        }
    }

    #[test]
    fn an_unsealed_record_is_not_valid() {
        let mut j = Journal::new(1);
        j.append(&Entry::Delete { key: b"k" });
        let mut bytes = Vec::new();
        j.take(&mut bytes);
        assert_eq!(decode(&bytes).map(|_| ()), Err(Invalid::Checksum));
        seal(&mut bytes, 1);
        assert!(decode(&bytes).is_ok());
        assert_eq!(decode(&bytes[..20]).map(|_| ()), Err(Invalid::Short));
    }
}
