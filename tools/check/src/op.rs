//! Operations: [`Operation`], as a caller gives one, and [`Op`], as the
//! checker holds it: the operation plus where it came from (source, era
//! and position), in 40 bytes, with times as signed
//! nanoseconds so "before everything" and "never answered" are plain
//! numbers. Also what the checker knows of values
//! ([`Values`]) and how times are shown to people.

/// The largest key an [`Operation`] can name (keys are 40-bit numbers).
pub const MAX_KEY: u64 = (1 << 40) - 1;
/// Eras one check can hold (see [`crate::check_eras`]).
pub const MAX_ERAS: usize = 256;
/// The largest position an operation can have in its source (2^40 − 1).
pub const MAX_POSITION: u64 = (1 << 40) - 1;
/// The value of a GET that found nothing.
pub const NOT_FOUND: u64 = 0;
/// The value of a GET whose value the client found corrupted: always a
/// violation.
pub const BAD_READ: u64 = u64::MAX;

/// What an operation does to its key's register. The numbers are stable
/// (percore's history files store them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Reads the register.
    Get = 0,
    /// Writes a value, unique among the key's writes.
    Put = 1,
    /// Empties the register (later GETs see [`NOT_FOUND`]).
    Delete = 2,
}

impl Kind {
    /// `GET`, `PUT` or `DEL`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Get => "GET",
            Kind::Put => "PUT",
            Kind::Delete => "DEL",
        }
    }
}

/// One operation as a caller gives it to the checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The key, at most [`MAX_KEY`].
    pub key: u64,
    /// GET, PUT or DELETE.
    pub kind: Kind,
    /// The client (thread) within its source that issued it; shown in
    /// witnesses.
    pub client: u16,
    /// PUT: the value written, unique among the key's PUTs and neither
    /// [`NOT_FOUND`] nor [`BAD_READ`]. GET: the value read, or
    /// [`NOT_FOUND`] / [`BAD_READ`]. DELETE: ignored.
    pub value: u64,
    /// When it was invoked, in ns of its source's clock (below 2^63).
    pub invoke: u64,
    /// When its reply arrived, in the same clock; `None` if it never did:
    /// a PUT or DELETE may then have taken effect or not, a GET says
    /// nothing and is skipped.
    pub response: Option<u64>,
}

/// What the checker knows of values beyond the operations themselves.
#[derive(Clone, Copy, Debug)]
pub struct Values {
    /// The value each key holds before any operation, when GETs may
    /// observe one (a loaded store): a key's initial value is
    /// `initial(key)` if a GET observed it, otherwise "absent". `None`:
    /// every key starts absent.
    pub initial: Option<fn(u64) -> u64>,
    /// How a value (other than [`NOT_FOUND`] and [`BAD_READ`]) is shown in
    /// witnesses.
    pub show: fn(u64) -> String,
}

impl Default for Values {
    /// Keys start absent; values are shown as hexadecimal numbers.
    fn default() -> Self {
        Values { initial: None, show: |v| format!("{v:#x}") }
    }
}

impl Values {
    /// The initial value of `key` if the store was loaded with one.
    #[inline]
    pub fn initial(&self, key: u64) -> Option<u64> {
        self.initial.map(|f| f(key))
    }

    /// A value as people read it: [`Values::show`], or `NOT_FOUND` /
    /// `BAD_READ`.
    pub fn show(&self, value: u64) -> String {
        match value {
            NOT_FOUND => "NOT_FOUND".into(),
            BAD_READ => "BAD_READ".into(),
            v => (self.show)(v),
        }
    }
}

/// A time: ns since the epoch of the operation's file.
pub type Time = i64;
/// The time of the initial value's write: before every operation of every file.
pub const MINUS_INFINITY: Time = Time::MIN;
/// The response time of a PUT or DELETE whose reply never came.
pub const NEVER: Time = Time::MAX;

/// One operation as the checker holds it: key, kind, client, value,
/// interval, origin.
///
/// Stored as five words (the same five words the bucket files hold): the
/// key/kind/client word of the history record, the value, invoke and
/// response times, and the origin (position in its file: 40 bits; era: 8
/// bits; file index: 16 bits).
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
    /// A key above [`MAX_KEY`].
    Key,
    /// A position above [`MAX_POSITION`].
    Position,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::Time => "a time beyond 2^63 ns",
            Invalid::Order => "its response precedes its invoke",
            Invalid::Reserved => "a PUT of a reserved value (0 or 2^64-1)",
            Invalid::Key => "a key above 2^40-1",
            Invalid::Position => "more than 2^40 operations in one source",
        })
    }
}

impl Op {
    /// The operation `o`, found at `position` in source number `source`.
    /// `Ok(None)` for a GET without a reply (it says nothing).
    pub fn from_operation(o: &Operation, source: u16, position: u64) -> Result<Option<Op>, Invalid> {
        if o.key > MAX_KEY {
            return Err(Invalid::Key);
        }
        if position > MAX_POSITION {
            return Err(Invalid::Position);
        }
        if o.invoke > i64::MAX as u64 || o.response.is_some_and(|r| r > i64::MAX as u64) {
            return Err(Invalid::Time);
        }
        let response = match o.response {
            Some(r) => r as Time,
            None if o.kind == Kind::Get => return Ok(None),
            None => NEVER,
        };
        if response < o.invoke as Time {
            return Err(Invalid::Order);
        }
        if o.kind == Kind::Put && (o.value == NOT_FOUND || o.value == BAD_READ) {
            return Err(Invalid::Reserved);
        }
        let value = if o.kind == Kind::Delete { 0 } else { o.value };
        Ok(Some(Op::new(o.key, o.kind, o.client, value, o.invoke as Time, response, source, position)))
    }

    /// An operation from its parts (`key` ≤ [`MAX_KEY`], `position` ≤
    /// [`MAX_POSITION`]), of era 0 ([`Op::with_era`] sets another).
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
            w0: (key & MAX_KEY) | ((kind as u64) << 40) | ((client as u64) << 48),
            value,
            invoke,
            response,
            w4: (position & MAX_POSITION) | ((file as u64) << 48),
        }
    }

    /// The same operation in era `era`: it began after every operation of
    /// every earlier era ended (see [`crate::check_eras`]).
    #[inline]
    pub fn with_era(self, era: u8) -> Op {
        Op { w4: (self.w4 & !(0xFF << 40)) | ((era as u64) << 40), ..self }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> u64 {
        self.w0 & MAX_KEY
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

    /// Index of the source (file) it came from, in the order the sources
    /// were given.
    #[inline]
    pub fn file(&self) -> u16 {
        (self.w4 >> 48) as u16
    }

    /// Its position (from 0) among its file's records.
    #[inline]
    pub fn position(&self) -> u64 {
        self.w4 & MAX_POSITION
    }

    /// Its era (0 unless the check has several: [`crate::check_eras`]).
    #[inline]
    pub fn era(&self) -> u8 {
        (self.w4 >> 40) as u8
    }

    /// True if `self` provably finished before `other` began: an earlier
    /// era (even if `self` was never answered: it took effect before the
    /// restart or never), or the same file (one clock) and response
    /// strictly before invoke.
    #[inline]
    pub fn precedes(&self, other: &Op) -> bool {
        self.era() < other.era() || (self.file() == other.file() && self.response < other.invoke)
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
        let op = Op::new(MAX_KEY, Kind::Delete, 65535, 0, 5, NEVER, 65535, MAX_POSITION).with_era(255);
        assert_eq!(Op::from_bytes(&op.to_bytes()), op);
        assert_eq!((op.key(), op.kind(), op.client(), op.file()), (MAX_KEY, Kind::Delete, 65535, 65535));
        assert_eq!((op.era(), op.position()), (255, MAX_POSITION));
        assert_eq!(op.with_era(3).era(), 3);
        assert_eq!((op.with_era(3).file(), op.with_era(3).position()), (65535, MAX_POSITION));
        let o = Operation { key: 4, kind: Kind::Get, client: 1, value: 9, invoke: 10, response: Some(3) };
        assert_eq!(Op::from_operation(&o, 0, 0), Err(Invalid::Order));
        let o = Operation { response: None, ..o };
        assert_eq!(Op::from_operation(&o, 0, 0), Ok(None), "an unanswered GET says nothing");
        let o = Operation { kind: Kind::Put, value: NOT_FOUND, response: Some(11), ..o };
        assert_eq!(Op::from_operation(&o, 0, 0), Err(Invalid::Reserved));
        let o = Operation { value: 5, key: MAX_KEY + 1, ..o };
        assert_eq!(Op::from_operation(&o, 0, 0), Err(Invalid::Key));
        let fine = Operation { key: 3, ..o };
        assert_eq!(Op::from_operation(&fine, 0, MAX_POSITION + 1), Err(Invalid::Position));
        let o = Operation { key: 3, kind: Kind::Delete, response: None, ..o };
        let op = Op::from_operation(&o, 2, 9).expect("valid").expect("a write without a reply is kept");
        assert_eq!((op.response, op.value, op.file(), op.position()), (NEVER, 0, 2, 9));
    }

    #[test]
    fn values_and_times_read_well() {
        let values = Values::default();
        assert_eq!(values.show(17), "0x11");
        assert_eq!(values.show(NOT_FOUND), "NOT_FOUND");
        assert_eq!(values.show(BAD_READ), "BAD_READ");
        assert_eq!(values.initial(5), None);
        let loaded = Values { initial: Some(|k| k + 100), ..values };
        assert_eq!(loaded.initial(5), Some(105));
        assert_eq!(show_time(1_000_000_007), "1.000000007s");
        assert_eq!(show_time(MINUS_INFINITY), "-inf");
    }

    #[test]
    fn an_earlier_era_precedes_whatever_the_clocks_say() {
        let put = Op::new(1, Kind::Put, 0, 5, 100, 200, 0, 0);
        let get = Op::new(1, Kind::Get, 0, 5, 10, 20, 1, 0);
        assert!(!put.precedes(&get) && !get.precedes(&put), "two files of one era: concurrent");
        let get = get.with_era(1);
        assert!(put.precedes(&get) && !get.precedes(&put));
        // Even never answered: it took effect before the restart, or never.
        let pending = Op::new(1, Kind::Put, 0, 6, 300, NEVER, 0, 1);
        assert!(pending.precedes(&get) && !pending.precedes(&put));
        // Within a file, times decide.
        assert!(Op::new(1, Kind::Get, 0, 5, 210, 220, 0, 2).precedes(&Op::new(1, Kind::Get, 0, 5, 230, 240, 0, 3)));
    }
}
