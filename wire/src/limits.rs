//! Limits: what a peer may send ([`Limits`], announced in the handshake and
//! enforced on receipt) and what a peer may make a server hold
//! ([`ServerLimits`]: time, connections, memory).
//!
//! A server announces its [`Limits`] in the handshake reply, so a client
//! sizes its batches to fit. Violating one is a protocol error: the frame is
//! refused whole (none of its operations runs), an error frame names the
//! limit, and the connection is closed.
//!
//! [`ServerLimits`] bound the resources a peer can hold on a server node.
//! Each is a deadline or a cap that the peer cannot reset by trickling bytes
//! or reconnecting. Both sets live in the cluster file's `[limits]` table
//! (see `cluster/README.md`); the server's command line overrides the second.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Frame and record size limits.
///
/// | field | default | why |
/// |---|---|---|
/// | `max_frame_bytes` | 4 MiB | bounds the memory a connection can claim for one frame (see the engine's buffer cap) |
/// | `max_ops_per_frame` | 16 384 | 16× the default batch; bounds per-frame scratch space |
/// | `max_key_len` | 1 024 B | keys are identifiers, not payloads |
/// | `max_value_len` | 1 MiB | one value always fits in a frame with room to spare |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest frame accepted or produced, header and padding included.
    pub max_frame_bytes: u32,
    /// Most operations in one request frame.
    pub max_ops_per_frame: u32,
    /// Longest key in bytes.
    pub max_key_len: u32,
    /// Longest value in bytes.
    pub max_value_len: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_frame_bytes: 4 << 20, max_ops_per_frame: 16_384, max_key_len: 1024, max_value_len: 1 << 20 }
    }
}

/// Why a set of limits cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid limits: {0}")]
pub struct LimitsError(String);

/// Longest key any percore store can hold (its record header has 16 bits for it).
pub const MAX_KEY_LEN: u32 = 0xFFFE;
/// Frames smaller than this could not even carry a handshake reply.
pub const MIN_FRAME_BYTES: u32 = 64 << 10;
/// Frames larger than this are refused as a setting: rkyv's relative
/// pointers are 32-bit, and a connection buffer this size is already huge.
pub const MAX_FRAME_BYTES: u32 = 1 << 30;

impl Limits {
    /// Checks that the limits are usable together: a frame can hold at least
    /// one operation of the largest key and value.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.max_frame_bytes) {
            return Err(LimitsError(format!(
                "max_frame_bytes {} is outside {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES}",
                self.max_frame_bytes
            )));
        }
        if self.max_ops_per_frame == 0 {
            return Err(LimitsError("max_ops_per_frame must be at least 1".into()));
        }
        if self.max_key_len == 0 || self.max_key_len > MAX_KEY_LEN {
            return Err(LimitsError(format!("max_key_len {} is outside 1..={MAX_KEY_LEN}", self.max_key_len)));
        }
        // One PUT of the largest key and value, plus the frame and archive
        // overhead, must fit in one frame.
        let one_op = self.max_key_len as u64 + self.max_value_len as u64 + 256;
        if one_op > self.max_frame_bytes as u64 {
            return Err(LimitsError(format!(
                "max_key_len {} + max_value_len {} do not fit in max_frame_bytes {}",
                self.max_key_len, self.max_value_len, self.max_frame_bytes
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max_frame_bytes={} max_ops_per_frame={} max_key_len={} max_value_len={}",
            self.max_frame_bytes, self.max_ops_per_frame, self.max_key_len, self.max_value_len
        )
    }
}

/// What a peer may make a server node hold, and for how long.
///
/// | field | default | what a peer sees when it hits it |
/// |---|---|---|
/// | `handshake_timeout` | 5 s | a connection must have its hello answered within this time of being accepted, else `HandshakeTimeout` and the close |
/// | `frame_timeout` | 10 s | a frame must be complete within this time of its first byte, however the bytes trickle in, else `Timeout` and the close |
/// | `idle_timeout` | off | a handshaken connection that sends nothing for this long gets `IdleTimeout` and the close (Redis's `timeout`) |
/// | `write_timeout` | 30 s | a batch of replies must be written within this time (a peer that does not read is cut off) |
/// | `shutdown_timeout` | 5 s | on SIGTERM, connections still open after this are cut and the node exits |
/// | `max_connections` | 1024 | per shard; when full, the oldest connection without a finished handshake is dropped for a new one, else the new one gets `TooManyConnections` |
/// | `maxmemory` | none | per node, split evenly over its shards: a PUT that needs memory past it gets `OutOfMemory` |
/// | `proto_max_bulk_len` | 1 MiB | RESP door: a longer bulk string is a protocol error (`-ERR Protocol error: invalid bulk length`) and the close, as Redis's `proto-max-bulk-len` |
/// | `max_multibulk_len` | 65 536 | RESP door: a command with more arguments is a protocol error and the close |
///
/// A RESP connection's receive buffer holds at most one command beyond
/// what has been answered: at most `max(max_frame_bytes, proto_max_bulk_len
/// + 64 KiB)` bytes (the query buffer limit), like a percore frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time from accept to the answered hello.
    pub handshake_timeout: Duration,
    /// Time from a frame's first byte to its last.
    pub frame_timeout: Duration,
    /// Silence after which a handshaken connection is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Time to write one batch of replies.
    pub write_timeout: Duration,
    /// Time from SIGTERM to exit.
    pub shutdown_timeout: Duration,
    /// Open connections per shard.
    pub max_connections: u32,
    /// Bytes of store memory per node (records and table); `None`: no limit.
    pub maxmemory: Option<u64>,
    /// Longest RESP bulk string (an argument) accepted.
    pub proto_max_bulk_len: u32,
    /// Most arguments in one RESP command.
    pub max_multibulk_len: u32,
}

/// The most that `proto_max_bulk_len` may be set to (512 MiB, Redis's default).
pub const MAX_PROTO_BULK_LEN: u32 = 512 << 20;

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(10),
            idle_timeout: None,
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            max_connections: 1024,
            maxmemory: None,
            proto_max_bulk_len: 1 << 20,
            max_multibulk_len: 65_536,
        }
    }
}

/// Longest timeout accepted as a setting (a day): longer is a typo.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl ServerLimits {
    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let timeouts = [
            ("handshake_timeout", Some(self.handshake_timeout)),
            ("frame_timeout", Some(self.frame_timeout)),
            ("idle_timeout", self.idle_timeout),
            ("write_timeout", Some(self.write_timeout)),
            ("shutdown_timeout", Some(self.shutdown_timeout)),
        ];
        for (name, value) in timeouts {
            if let Some(d) = value
                && (d.is_zero() || d > MAX_TIMEOUT)
            {
                let hint = if name == "idle_timeout" { " (0 turns it off)" } else { "" };
                return Err(LimitsError(format!(
                    "{name} {} is outside 1ms..=24h{hint}",
                    humantime::format_duration(d)
                )));
            }
        }
        if self.max_connections == 0 {
            return Err(LimitsError("max_connections must be at least 1".into()));
        }
        if self.proto_max_bulk_len == 0 || self.proto_max_bulk_len > MAX_PROTO_BULK_LEN {
            return Err(LimitsError(format!(
                "proto_max_bulk_len {} is outside 1..={MAX_PROTO_BULK_LEN}",
                self.proto_max_bulk_len
            )));
        }
        if self.max_multibulk_len == 0 {
            return Err(LimitsError("max_multibulk_len must be at least 1".into()));
        }
        Ok(())
    }
}

/// Parses a duration the way the command line and the cluster file write
/// it: `5s`, `250ms`, `1m30s`; `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?} is not a duration ({e}; e.g. 5s, 250ms, 0)"))
}

/// Parses a byte count with Redis's units (case-insensitive): `1k` = 1000,
/// `1kb` = 1024, likewise `m`/`mb` and `g`/`gb`; a bare number is bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let bad = || format!("{text:?} is not a byte count (e.g. 100mb, 4gb, 1000000)");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats a byte count in binary units for messages (`4.0 GiB`).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[i]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_use_redis_units() {
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("1k"), Ok(1000));
        assert_eq!(parse_bytes("1KB"), Ok(1024));
        assert_eq!(parse_bytes("3mb"), Ok(3 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2_000_000_000));
        assert_eq!(parse_bytes(" 4gb "), Ok(4 << 30));
        assert!(parse_bytes("4 gb").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1tb").is_err());
        assert!(parse_bytes("99999999999999gb").is_err());
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
        assert_eq!(format_bytes(12), "12 B");
    }

    #[test]
    fn durations_and_their_bounds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err(), "a bare number has no unit");
        ServerLimits::default().validate().expect("defaults are valid");
        let zero = ServerLimits { frame_timeout: Duration::ZERO, ..ServerLimits::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("frame_timeout"));
        let long = ServerLimits { idle_timeout: Some(Duration::from_secs(100_000)), ..ServerLimits::default() };
        assert!(long.validate().unwrap_err().to_string().contains("0 turns it off"));
        let none = ServerLimits { max_connections: 0, ..ServerLimits::default() };
        assert!(none.validate().is_err());
        let huge = ServerLimits { proto_max_bulk_len: MAX_PROTO_BULK_LEN + 1, ..ServerLimits::default() };
        assert!(huge.validate().unwrap_err().to_string().contains("proto_max_bulk_len"));
        let no_args = ServerLimits { max_multibulk_len: 0, ..ServerLimits::default() };
        assert!(no_args.validate().unwrap_err().to_string().contains("max_multibulk_len"));
    }

    #[test]
    fn defaults_are_valid() {
        Limits::default().validate().expect("defaults must validate");
    }

    #[test]
    fn value_must_fit_in_frame() {
        let l = Limits { max_value_len: 8 << 20, ..Limits::default() };
        let err = l.validate().expect_err("8 MiB value in a 4 MiB frame");
        assert!(err.to_string().contains("do not fit"), "{err}");
    }

    #[test]
    fn tiny_frames_are_refused() {
        let l = Limits { max_frame_bytes: 100, ..Limits::default() };
        assert!(l.validate().is_err());
    }
}
