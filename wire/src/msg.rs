//! Frame bodies: the rkyv types that define percore's wire format.
//!
//! The owned types here are the *definition* of each body: their rkyv
//! archives are what travels. The hot bodies ([`Request`], [`Response`]) are
//! written by the single-pass encoders in [`crate::codec`], which produce the
//! very bytes `rkyv::to_bytes` would (a property test holds them to it), and
//! read in place as [`ArchivedRequest`] / [`ArchivedResponse`] after
//! validation. The cold bodies (handshake, stats, errors) go through rkyv's
//! serializer.

use crate::limits::Limits;
use rkyv::{Archive, Deserialize, Serialize};

pub use op::{ArchivedOp, Op, OpResolver};

/// [`Op`] in a module of its own: rkyv's derive emits per-variant helper
/// items for enums with named fields that cannot carry doc comments, so the
/// `missing_docs` lint is relaxed here only. Everything hand-written is documented.
#[allow(missing_docs)]
mod op {
    use rkyv::{Archive, Deserialize, Serialize};

    /// One operation of a batch.
    #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    #[rkyv(derive(Debug))]
    pub enum Op {
        /// Read the value of `key`.
        Get {
            /// The key.
            key: Vec<u8>,
        },
        /// Set `key` to `value`, inserting or replacing.
        Put {
            /// The key.
            key: Vec<u8>,
            /// The new value.
            value: Vec<u8>,
        },
        /// Remove `key` (done whether or not it existed).
        Delete {
            /// The key.
            key: Vec<u8>,
        },
    }

    impl Op {
        /// The operation's key.
        pub fn key(&self) -> &[u8] {
            match self {
                Op::Get { key } | Op::Put { key, .. } | Op::Delete { key } => key,
            }
        }
    }

    impl ArchivedOp {
        /// The operation's key, read in place.
        #[inline]
        pub fn key(&self) -> &[u8] {
            match self {
                ArchivedOp::Get { key } | ArchivedOp::Put { key, .. } | ArchivedOp::Delete { key } => key.as_slice(),
            }
        }
    }
}

/// A request frame's body: a batch of operations for one shard.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Request {
    /// Chosen by the client, echoed in the response.
    pub batch_id: u64,
    /// Executed in order; each takes effect before the next.
    pub ops: Vec<Op>,
}

/// Why one operation was not served. The byte values are part of the protocol.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[rkyv(compare(PartialEq))]
#[repr(u8)]
pub enum OpError {
    /// The key's slot is not owned by the shard on this port; nothing was done.
    WrongShard = 0,
    /// The value to return does not fit in the reply frame
    /// (`max_frame_bytes`); nothing was done. Send the GET in a smaller batch.
    TooLarge = 1,
    /// The PUT needs memory past the shard's share of `maxmemory` (or past
    /// what the shard can address); nothing was done, the key keeps its old
    /// value. GETs and DELETEs still work; deleting frees room. (Protocol 2.)
    OutOfMemory = 2,
    /// The PUT or DELETE could not be made durable: the node keeps a
    /// durable log and its disk is full or failing. Nothing was done; GETs
    /// still work. (Protocol 4.)
    NotDurable = 3,
}

impl OpError {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            OpError::WrongShard => "WrongShard",
            OpError::TooLarge => "TooLarge",
            OpError::OutOfMemory => "OutOfMemory",
            OpError::NotDurable => "NotDurable",
        }
    }

    /// What the refusal means, for a person: why, and that nothing changed
    /// (what `percore put|get|del` print after the address).
    pub fn meaning(self) -> &'static str {
        match self {
            OpError::WrongShard => "wrong shard: the key's slot is not this shard's; nothing was done",
            OpError::TooLarge => "too large: the value does not fit in a reply frame; nothing was done",
            OpError::OutOfMemory => "out of memory: the shard's share of maxmemory is used up; nothing was written",
            OpError::NotDurable => "not durable: the node's log disk is full or failing; nothing was written",
        }
    }
}

impl ArchivedOpError {
    /// The native value of an archived error code.
    pub fn to_native(&self) -> OpError {
        match self {
            ArchivedOpError::WrongShard => OpError::WrongShard,
            ArchivedOpError::TooLarge => OpError::TooLarge,
            ArchivedOpError::OutOfMemory => OpError::OutOfMemory,
            ArchivedOpError::NotDurable => OpError::NotDurable,
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one operation.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum OpResult {
    /// GET found the key: its value.
    Value(Vec<u8>),
    /// GET did not find the key.
    NotFound,
    /// PUT or DELETE took effect.
    Done,
    /// The operation was not served.
    Error(OpError),
    /// This port's shard is replicated and this replica does not lead it
    /// now: nothing was done. Carries the leader's member id (its place in
    /// the shard map's [`ShardInfo::replicas`]: the replica whose `id` it
    /// is), 0 while no leader is known (an election). (Protocol 5.)
    NotLeader(u32),
}

/// A response frame's body: one result per operation, in request order.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Response {
    /// The request's `batch_id`.
    pub batch_id: u64,
    /// `results[i]` answers `ops[i]`.
    pub results: Vec<OpResult>,
}

/// An inclusive range of hash slots.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug))]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
}

impl SlotRange {
    /// Number of slots in the range.
    pub fn len(&self) -> usize {
        (self.end as usize + 1).saturating_sub(self.start as usize)
    }

    /// True if the range holds no slot (`end < start`).
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

impl std::fmt::Display for SlotRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// One shard in the shard map.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ShardInfo {
    /// Global shard id (file order: server 0's cores first).
    pub id: u32,
    /// Name of the server node that hosts it.
    pub node: String,
    /// Address clients connect to.
    pub addr: String,
    /// Port the shard listens on.
    pub port: u16,
    /// CPU the shard's executor is pinned to on its node.
    pub cpu: u32,
    /// The hash slots it owns.
    pub slots: Vec<SlotRange>,
    /// A replicated shard's replicas, by member id (the first server of
    /// the set first); empty when the shard is not replicated. The fields
    /// above name the member the cluster file makes its first leader.
    /// (Protocol 5.)
    pub replicas: Vec<ReplicaInfo>,
    /// The member id of the replica that leads the shard, as the answering
    /// core knows it: for the shard on the port that answered the
    /// handshake, the leader now (0 if none is known); for any other, the
    /// member the cluster file makes its first leader, to which leadership
    /// returns. 0 when the shard is not replicated. (Protocol 5.)
    pub leader: u32,
}

impl ShardInfo {
    /// The replica whose member id is `id` (`None` for 0 or an id the
    /// shard does not have).
    pub fn replica(&self, id: u32) -> Option<&ReplicaInfo> {
        self.replicas.iter().find(|r| r.id == id)
    }

    /// The `addr:port` of the replica that leads, as far as this map knows:
    /// the shard's own address when it is not replicated; `None` while a
    /// replicated shard has no known leader.
    pub fn leader_endpoint(&self) -> Option<String> {
        if self.replicas.is_empty() {
            return Some(format!("{}:{}", self.addr, self.port));
        }
        self.replica(self.leader).map(|r| format!("{}:{}", r.addr, r.port))
    }
}

/// One replica of a replicated shard, as the shard map names it.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ReplicaInfo {
    /// Its member id in the shard's group (1, 2, …).
    pub id: u32,
    /// The server node that hosts it.
    pub node: String,
    /// Address clients connect to.
    pub addr: String,
    /// Port it serves clients on.
    pub port: u16,
}

/// The client's half of the handshake. Its `Debug` (and its archive's)
/// shows whether a password is present, never the password.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub protocol: u8,
    /// The shard id the client expects on this port; `None` to discover.
    pub shard: Option<u32>,
    /// The total shard count the client expects; `None` to discover.
    pub total_shards: Option<u32>,
    /// Free-form client name for the server's logs.
    pub client: String,
    /// The node's secret (`requirepass`), if the client has one; a node with
    /// a `requirepass` refuses a hello without the right one (`AuthFailed`),
    /// a node without one ignores it. (Protocol 3.)
    pub password: Option<String>,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("protocol", &self.protocol)
            .field("shard", &self.shard)
            .field("total_shards", &self.total_shards)
            .field("client", &self.client)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for ArchivedHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivedHello")
            .field("protocol", &self.protocol)
            .field("shard", &self.shard.as_ref().map(|s| s.to_native()))
            .field("total_shards", &self.total_shards.as_ref().map(|s| s.to_native()))
            .field("client", &self.client.as_str())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Limits as they travel in the handshake reply.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct WireLimits {
    /// See [`Limits::max_frame_bytes`].
    pub max_frame_bytes: u32,
    /// See [`Limits::max_ops_per_frame`].
    pub max_ops_per_frame: u32,
    /// See [`Limits::max_key_len`].
    pub max_key_len: u32,
    /// See [`Limits::max_value_len`].
    pub max_value_len: u32,
}

impl From<Limits> for WireLimits {
    fn from(l: Limits) -> Self {
        WireLimits {
            max_frame_bytes: l.max_frame_bytes,
            max_ops_per_frame: l.max_ops_per_frame,
            max_key_len: l.max_key_len,
            max_value_len: l.max_value_len,
        }
    }
}

impl From<WireLimits> for Limits {
    fn from(l: WireLimits) -> Self {
        Limits {
            max_frame_bytes: l.max_frame_bytes,
            max_ops_per_frame: l.max_ops_per_frame,
            max_key_len: l.max_key_len,
            max_value_len: l.max_value_len,
        }
    }
}

/// The server's half of the handshake: its view, its limits and the whole map.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct HelloReply {
    /// Protocol version the server speaks.
    pub protocol: u8,
    /// The shard serving this port.
    pub shard: u32,
    /// Shards in the whole cluster.
    pub total_shards: u32,
    /// The server node's name.
    pub node: String,
    /// The server's limits; frames to it must respect them.
    pub limits: WireLimits,
    /// Every shard of the cluster, ordered by id.
    pub map: Vec<ShardInfo>,
}

/// A shard's counters since it started.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ShardCounters {
    /// Operations executed (any kind, errors included).
    pub ops: u64,
    /// GETs executed.
    pub gets: u64,
    /// PUTs executed.
    pub puts: u64,
    /// DELETEs executed.
    pub deletes: u64,
    /// GETs that found nothing.
    pub misses: u64,
    /// Operations answered WrongShard, or NotLeader (a follower sends
    /// them on too).
    pub wrong_shard: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections closed for a protocol error.
    pub protocol_errors: u64,
    /// Keys stored now.
    pub keys: u64,
    /// Bytes the store holds for records (slab in use, table included).
    pub store_bytes: u64,
    /// The store's memory limit in bytes (this shard's share of
    /// `maxmemory`); 0 when there is none.
    pub memory_limit: u64,
    /// PUTs refused with OutOfMemory.
    pub out_of_memory: u64,
    /// Connections refused because the shard had `max_connections` open,
    /// every one of them past its handshake.
    pub connections_refused: u64,
    /// Connections without a finished handshake dropped to make room for a
    /// new one.
    pub connections_evicted: u64,
    /// Connections closed for not finishing the handshake in time.
    pub handshake_timeouts: u64,
    /// Connections closed for not finishing a frame in time.
    pub frame_timeouts: u64,
    /// Connections closed for being idle past `idle_timeout`.
    pub idle_timeouts: u64,
    /// Connections closed because their replies could not be written in time.
    pub write_timeouts: u64,
    /// Keys removed because their time to live ran out (since start).
    pub expired_keys: u64,
}

impl std::ops::AddAssign for ShardCounters {
    fn add_assign(&mut self, o: Self) {
        self.ops += o.ops;
        self.gets += o.gets;
        self.puts += o.puts;
        self.deletes += o.deletes;
        self.misses += o.misses;
        self.wrong_shard += o.wrong_shard;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.connections_open += o.connections_open;
        self.connections_total += o.connections_total;
        self.protocol_errors += o.protocol_errors;
        self.keys += o.keys;
        self.store_bytes += o.store_bytes;
        self.memory_limit += o.memory_limit;
        self.out_of_memory += o.out_of_memory;
        self.connections_refused += o.connections_refused;
        self.connections_evicted += o.connections_evicted;
        self.handshake_timeouts += o.handshake_timeouts;
        self.frame_timeouts += o.frame_timeouts;
        self.idle_timeouts += o.idle_timeouts;
        self.write_timeouts += o.write_timeouts;
        self.expired_keys += o.expired_keys;
    }
}

/// Reply to a stats request.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct StatsReply {
    /// The shard answering.
    pub shard: u32,
    /// The server node's name.
    pub node: String,
    /// CPU the shard runs on.
    pub cpu: u32,
    /// Milliseconds since the shard started.
    pub uptime_ms: u64,
    /// The counters.
    pub counters: ShardCounters,
}

/// Connection-level error codes. The numbers are part of the protocol.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug))]
#[repr(u8)]
pub enum ErrorCode {
    /// The stream does not start with the magic.
    BadMagic = 1,
    /// Protocol version not spoken.
    UnsupportedVersion = 2,
    /// Unknown frame kind.
    UnknownKind = 3,
    /// Reserved header bits set.
    ReservedNotZero = 4,
    /// Frame larger than `max_frame_bytes`.
    FrameTooLarge = 5,
    /// More operations than `max_ops_per_frame`.
    TooManyOps = 6,
    /// A key longer than `max_key_len`.
    KeyTooLarge = 7,
    /// A value longer than `max_value_len`.
    ValueTooLarge = 8,
    /// A body that failed archive validation.
    Corrupt = 9,
    /// A frame kind not allowed here (e.g. a request before the handshake).
    Unexpected = 10,
    /// The client expects another shard on this port.
    ShardMismatch = 11,
    /// The client expects another total shard count.
    ShardCountMismatch = 12,
    /// A frame was started but not finished within the frame timeout.
    Timeout = 13,
    /// The shard already has `max_connections` open.
    TooManyConnections = 14,
    /// The server is shutting down.
    ShuttingDown = 15,
    /// The hello was not answered within the handshake timeout. (Protocol 2.)
    HandshakeTimeout = 16,
    /// The connection sent nothing for the idle timeout. (Protocol 2.)
    IdleTimeout = 17,
    /// The node has a `requirepass` and the hello carried no password or a
    /// wrong one (the refusal comes after a pause, so guessing is slow).
    /// (Protocol 3.)
    AuthFailed = 18,
}

impl ErrorCode {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadMagic => "BadMagic",
            ErrorCode::UnsupportedVersion => "UnsupportedVersion",
            ErrorCode::UnknownKind => "UnknownKind",
            ErrorCode::ReservedNotZero => "ReservedNotZero",
            ErrorCode::FrameTooLarge => "FrameTooLarge",
            ErrorCode::TooManyOps => "TooManyOps",
            ErrorCode::KeyTooLarge => "KeyTooLarge",
            ErrorCode::ValueTooLarge => "ValueTooLarge",
            ErrorCode::Corrupt => "Corrupt",
            ErrorCode::Unexpected => "Unexpected",
            ErrorCode::ShardMismatch => "ShardMismatch",
            ErrorCode::ShardCountMismatch => "ShardCountMismatch",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::TooManyConnections => "TooManyConnections",
            ErrorCode::ShuttingDown => "ShuttingDown",
            ErrorCode::HandshakeTimeout => "HandshakeTimeout",
            ErrorCode::IdleTimeout => "IdleTimeout",
            ErrorCode::AuthFailed => "AuthFailed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error frame's body. Its layout is frozen across protocol versions so
/// that a peer of any version can read why it was refused.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ErrorBody {
    /// What went wrong.
    pub code: ErrorCode,
    /// One human-readable line naming the values involved.
    pub message: String,
}

impl crate::frame::FrameError {
    /// The error code sent to the peer for this error.
    pub fn code(&self) -> ErrorCode {
        use crate::frame::FrameError as F;
        match self {
            F::BadMagic { .. } => ErrorCode::BadMagic,
            F::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            F::UnknownKind { .. } => ErrorCode::UnknownKind,
            F::ReservedNotZero => ErrorCode::ReservedNotZero,
            F::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            F::TooManyOps { .. } => ErrorCode::TooManyOps,
            F::KeyTooLarge { .. } => ErrorCode::KeyTooLarge,
            F::ValueTooLarge { .. } => ErrorCode::ValueTooLarge,
            F::Corrupt { .. } => ErrorCode::Corrupt,
            F::Unexpected { .. } => ErrorCode::Unexpected,
        }
    }
}
