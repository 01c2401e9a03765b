//! One operation as the checker holds it: a history record plus where it
//! came from (file and position), in 40 bytes, with times as signed
//! nanoseconds so "before everything" and "never answered" are plain
//! numbers. Also how values and times are shown to people.

use loadgen::history::{BAD_READ, Kind, NO_RESPONSE, NOT_FOUND, Record};
use loadgen::value::{Identity, LOAD_WRITER};

/// A time: ns since the epoch of the operation's file.
pub type Time = i64;
/// The time of the initial value's write: before every operation of every file.
pub const MINUS_INFINITY: Time = Time::MIN;
/// The response time of a PUT or DELETE whose reply never came.
pub const NEVER: Time = Time::MAX;

/// One operation: key, kind, client, value, interval, origin.
///
/// Stored as five words (the same five words the bucket files hold): the
/// key/kind/client word of the history record, the value, invoke and
/// response times, and the origin (position in its file, file index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    w0: u64,
    /// Identity written (PUT) or read (GET), or [`NOT_FOUND`] / [`BAD_READ`].
    pub value: u64,
    /// When the operation was invoked.
    pub invoke: Time,
    /// When its reply was read, or [`NEVER`].
    pub response: Time,
    w4: u64,
}

/// Bytes per operation in a bucket file.
pub const OP_BYTES: usize = 40;

/// Why a record cannot be checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A time beyond 2^63 ns.
    Time,
    /// A response before its invoke.
    Order,
    /// A PUT of a value reserved for "not found" or "bad read".
    Reserved,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::Time => "a time beyond 2^63 ns",
            Invalid::Order => "its response precedes its invoke",
            Invalid::Reserved => "a PUT of a reserved value (0 or 2^64-1)",
        })
    }
}

impl Op {
    /// The operation of `record`, found at `position` in file number `file`.
    /// `Ok(None)` for a GET without a reply (it says nothing).
    pub fn from_record(r: &Record, file: u16, position: u64) -> Result<Option<Op>, Invalid> {
        if r.invoke > i64::MAX as u64 || (r.response != NO_RESPONSE && r.response > i64::MAX as u64) {
            return Err(Invalid::Time);
        }
        let response = if r.response == NO_RESPONSE {
            if r.kind == Kind::Get {
                return Ok(None);
            }
            NEVER
        } else {
            r.response as Time
        };
        if response < r.invoke as Time {
            return Err(Invalid::Order);
        }
        if r.kind == Kind::Put && (r.value == NOT_FOUND || r.value == BAD_READ) {
            return Err(Invalid::Reserved);
        }
        let value = if r.kind == Kind::Delete { 0 } else { r.value };
        Ok(Some(Op::new(r.key, r.kind, r.client, value, r.invoke as Time, response, file, position)))
    }

    /// An operation from its parts (`key` < 2^40, `position` < 2^48).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: u64,
        kind: Kind,
        client: u16,
        value: u64,
        invoke: Time,
        response: Time,
        file: u16,
        position: u64,
    ) -> Op {
        Op {
            w0: (key & loadgen::history::MAX_KEY) | ((kind as u64) << 40) | ((client as u64) << 48),
            value,
            invoke,
            response,
            w4: (position & ((1 << 48) - 1)) | ((file as u64) << 48),
        }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> u64 {
        self.w0 & loadgen::history::MAX_KEY
    }

    /// GET, PUT or DELETE.
    #[inline]
    pub fn kind(&self) -> Kind {
        match (self.w0 >> 40) & 0xFF {
            1 => Kind::Put,
            2 => Kind::Delete,
            _ => Kind::Get,
        }
    }

    /// True for PUT and DELETE.
    #[inline]
    pub fn is_write(&self) -> bool {
        self.kind() != Kind::Get
    }

    /// The load thread within its file.
    #[inline]
    pub fn client(&self) -> u16 {
        (self.w0 >> 48) as u16
    }

    /// Index of the file it came from (in the order the files were given).
    #[inline]
    pub fn file(&self) -> u16 {
        (self.w4 >> 48) as u16
    }

    /// Its position (from 0) among its file's records.
    #[inline]
    pub fn position(&self) -> u64 {
        self.w4 & ((1 << 48) - 1)
    }

    /// True if `self` provably finished before `other` began: same file
    /// (one clock) and response strictly before invoke.
    #[inline]
    pub fn precedes(&self, other: &Op) -> bool {
        self.file() == other.file() && self.response < other.invoke
    }

    /// The five little-endian words of a bucket file.
    #[inline]
    pub fn to_bytes(&self) -> [u8; OP_BYTES] {
        let mut b = [0u8; OP_BYTES];
        for (i, w) in [self.w0, self.value, self.invoke as u64, self.response as u64, self.w4].iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// The inverse of [`Op::to_bytes`].
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Op {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        Op { w0: w(0), value: w(1), invoke: w(2) as Time, response: w(3) as Time, w4: w(4) }
    }
}

/// The identity the load phase wrote for `key`: a key's initial value.
#[inline]
pub fn load_identity(key: u64) -> u64 {
    Identity::new(LOAD_WRITER, key).0
}

/// A value as people read it: `w3#17`, `load#5`, `NOT_FOUND`, `BAD_READ`.
pub fn show_value(value: u64) -> String {
    match value {
        NOT_FOUND => "NOT_FOUND".into(),
        BAD_READ => "BAD_READ".into(),
        v => Identity(v).to_string(),
    }
}

/// A time as people read it: seconds since the file's epoch, to the ns.
pub fn show_time(t: Time) -> String {
    match t {
        MINUS_INFINITY => "-inf".into(),
        NEVER => "never".into(),
        t => format!("{}.{:09}s", t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_through_bucket_bytes() {
        let op = Op::new(loadgen::history::MAX_KEY, Kind::Delete, 65535, 0, 5, NEVER, 7, (1 << 48) - 1);
        assert_eq!(Op::from_bytes(&op.to_bytes()), op);
        assert_eq!((op.key(), op.kind(), op.client(), op.file()), (loadgen::history::MAX_KEY, Kind::Delete, 65535, 7));
        let r = Record { key: 4, kind: Kind::Get, client: 1, value: 9, invoke: 10, response: 3 };
        assert_eq!(Op::from_record(&r, 0, 0), Err(Invalid::Order));
        let r = Record { response: NO_RESPONSE, ..r };
        assert_eq!(Op::from_record(&r, 0, 0), Ok(None), "an unanswered GET says nothing");
        let r = Record { kind: Kind::Put, value: NOT_FOUND, response: 11, ..r };
        assert_eq!(Op::from_record(&r, 0, 0), Err(Invalid::Reserved));
    }

    #[test]
    fn values_and_times_read_well() {
        assert_eq!(show_value(Identity::new(3, 17).0), "w3#17");
        assert_eq!(show_value(load_identity(5)), "load#5");
        assert_eq!(show_value(NOT_FOUND), "NOT_FOUND");
        assert_eq!(show_time(1_000_000_007), "1.000000007s");
        assert_eq!(show_time(MINUS_INFINITY), "-inf");
    }
}
