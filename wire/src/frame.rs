//! The frame header and the framing of a byte stream.
//!
//! Every message on a percore connection is one frame:
//!
//! ```text
//! offset  size  field
//!      0     4  magic  b"PCOR"
//!      4     1  protocol version ([`PROTOCOL_VERSION`], 5)
//!      5     1  frame kind (see [`Kind`])
//!      6     2  flags, must be zero
//!      8     4  body length in bytes (little-endian), the exact rkyv archive length
//!     12     4  reserved, must be zero
//!     16     …  body: an rkyv archive whose root sits at its end
//!      …  0–15  zero padding up to a multiple of 16
//! ```
//!
//! Because the header is 16 bytes and every frame is padded to a multiple of
//! 16, a receive buffer that starts 16-aligned holds every body 16-aligned as
//! well, so bodies are validated and read in place without a copy.
//!
//! [`next_frame`] is the one place that splits a byte stream into frames. It
//! checks the header before anything else, so a peer that declares a huge
//! body is rejected before any memory is reserved for it.

use crate::limits::Limits;
use std::fmt;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"PCOR";
/// The protocol version this build speaks.
///
/// Version 2 added the `OutOfMemory` operation result, the
/// `HandshakeTimeout` and `IdleTimeout` error codes and eight stats
/// counters. Request bodies kept their layout, but a version 1 client
/// could not read every version 2 response, so a version 1 peer is refused
/// with `UnsupportedVersion` (the pinned version 1 fixtures in
/// `wire/tests/fixtures/` show both facts).
///
/// Version 3 added the node's secret to the hello (`Hello::password`) and
/// the `AuthFailed` error code: a version 2 hello has no room for the
/// secret, so a version 2 peer is refused with `UnsupportedVersion` (the
/// pinned version 2 fixtures show it, and that every other body kept its
/// layout).
///
/// Version 4 added the `NotDurable` operation result (code 3): a node that
/// keeps a durable log answers a PUT or DELETE it cannot make durable
/// (its log disk full or failing) with it, and changes nothing. Every body
/// kept its layout, but a version 3 client cannot read a response that
/// carries the new code (the whole frame fails validation), so a version 3
/// peer is refused with `UnsupportedVersion` (the pinned version 3
/// fixtures show both facts).
///
/// Version 5 added the `NotLeader` operation result (tag 4, carrying the
/// leader's member id, 0 when none is known): a replica that does not lead
/// its shard answers every operation with it and does nothing. The shard
/// map's entries gained the shard's replicas and its leader, which changes
/// the hello reply's layout, so a version 4 peer is refused with
/// `UnsupportedVersion` (the pinned version 4 fixtures show that every
/// other body kept its bytes).
pub const PROTOCOL_VERSION: u8 = 5;
/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 16;
/// Every frame's total length is a multiple of this, and bodies start at a
/// multiple of it within a stream.
pub const FRAME_ALIGN: usize = 16;

/// What a frame carries. The numbers are part of the protocol.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Client → server: the handshake ([`crate::msg::Hello`]).
    Hello = 1,
    /// Server → client: the server's view and the shard map ([`crate::msg::HelloReply`]).
    HelloReply = 2,
    /// Client → server: a batch of operations ([`crate::msg::Request`]).
    Request = 3,
    /// Server → client: one result per operation ([`crate::msg::Response`]).
    Response = 4,
    /// Client → server: ask for the shard's counters (empty body).
    StatsRequest = 5,
    /// Server → client: the shard's counters ([`crate::msg::StatsReply`]).
    StatsReply = 6,
    /// Server → client: a connection-level error ([`crate::msg::ErrorBody`]);
    /// the server closes the connection after sending it.
    Error = 7,
}

impl Kind {
    /// The kind for a header byte, if it names one.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Hello,
            2 => Kind::HelloReply,
            3 => Kind::Request,
            4 => Kind::Response,
            5 => Kind::StatsRequest,
            6 => Kind::StatsReply,
            7 => Kind::Error,
            _ => return None,
        })
    }

    /// A short lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::HelloReply => "hello-reply",
            Kind::Request => "request",
            Kind::Response => "response",
            Kind::StatsRequest => "stats-request",
            Kind::StatsReply => "stats-reply",
            Kind::Error => "error",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed, checked frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the body is.
    pub kind: Kind,
    /// Exact length of the rkyv archive in the body.
    pub body_len: u32,
}

impl Header {
    /// Total bytes the frame occupies in the stream: header, body and padding.
    pub fn frame_len(&self) -> usize {
        frame_len(self.body_len as usize)
    }
}

/// Total stream length of a frame whose body is `body_len` bytes.
pub const fn frame_len(body_len: usize) -> usize {
    HEADER_LEN + pad_to_align(body_len)
}

/// `len` rounded up to a multiple of [`FRAME_ALIGN`].
pub const fn pad_to_align(len: usize) -> usize {
    (len + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// Writes a header for `kind` and `body_len` into `out[..HEADER_LEN]`.
pub fn write_header(out: &mut [u8], kind: Kind, body_len: u32) {
    out[0..4].copy_from_slice(&MAGIC);
    out[4] = PROTOCOL_VERSION;
    out[5] = kind as u8;
    out[6..8].copy_from_slice(&[0, 0]);
    out[8..12].copy_from_slice(&body_len.to_le_bytes());
    out[12..16].copy_from_slice(&[0, 0, 0, 0]);
}

/// Why a frame was refused. Small and `Copy`: it is built on the hot path.
///
/// Each variant maps to an [`crate::msg::ErrorCode`] sent back to the peer
/// (see [`FrameError::code`]) before the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The first four bytes are not [`MAGIC`].
    BadMagic {
        /// The bytes found instead.
        found: [u8; 4],
    },
    /// The peer speaks a protocol version this build does not.
    UnsupportedVersion {
        /// The version in the frame.
        found: u8,
    },
    /// The kind byte names no frame kind.
    UnknownKind {
        /// The byte found.
        found: u8,
    },
    /// Flags or reserved header bytes are not zero.
    ReservedNotZero,
    /// The declared frame is larger than `max_frame_bytes`.
    FrameTooLarge {
        /// Total frame length declared (header + padded body).
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// A request carries more operations than `max_ops_per_frame`.
    TooManyOps {
        /// Operations in the frame.
        count: u32,
        /// The limit in force.
        max: u32,
    },
    /// An operation's key is longer than `max_key_len`.
    KeyTooLarge {
        /// Index of the operation in its batch.
        op: u32,
        /// The key's length.
        len: u32,
        /// The limit in force.
        max: u32,
    },
    /// A PUT's value is longer than `max_value_len`.
    ValueTooLarge {
        /// Index of the operation in its batch.
        op: u32,
        /// The value's length.
        len: u32,
        /// The limit in force.
        max: u32,
    },
    /// The body is not a valid archive of the type its kind promises
    /// (truncated, out-of-bounds pointer, bad enum tag, …).
    Corrupt {
        /// The kind whose body failed validation.
        kind: Kind,
    },
    /// A frame of a kind that is not allowed at this point of the conversation.
    Unexpected {
        /// The kind received.
        kind: Kind,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::BadMagic { found } => {
                write!(f, "bad magic {found:02x?} (expected {MAGIC:02x?} \"PCOR\")")
            }
            FrameError::UnsupportedVersion { found } => {
                write!(f, "unsupported protocol version: peer speaks {found}, this side speaks {PROTOCOL_VERSION}")
            }
            FrameError::UnknownKind { found } => write!(f, "unknown frame kind {found}"),
            FrameError::ReservedNotZero => f.write_str("reserved header bytes are not zero"),
            FrameError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds max_frame_bytes {max}")
            }
            FrameError::TooManyOps { count, max } => {
                write!(f, "batch of {count} operations exceeds max_ops_per_frame {max}")
            }
            FrameError::KeyTooLarge { op, len, max } => {
                write!(f, "operation {op}: key of {len} bytes exceeds max_key_len {max}")
            }
            FrameError::ValueTooLarge { op, len, max } => {
                write!(f, "operation {op}: value of {len} bytes exceeds max_value_len {max}")
            }
            FrameError::Corrupt { kind } => {
                write!(f, "corrupt {kind} body: archive validation failed")
            }
            FrameError::Unexpected { kind } => write!(f, "unexpected {kind} frame here"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The outcome of looking for a frame at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole frame is buffered.
    Frame(Frame<'a>),
    /// More bytes are needed. `frame_len` is the whole frame's length once
    /// its header has arrived, so the caller can make room for it.
    NeedMore {
        /// Total length of the frame being received, if its header is in.
        frame_len: Option<usize>,
    },
}

/// One whole frame, borrowed from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The checked header.
    pub header: Header,
    /// Exactly the rkyv archive (padding excluded): pass it to the decoders.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Bytes this frame occupies in the stream.
    pub fn len(&self) -> usize {
        self.header.frame_len()
    }

    /// Always false: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Parses and checks a header from the first [`HEADER_LEN`] bytes of `bytes`.
///
/// Checks, in order: magic, version, kind, reserved bytes, and the declared
/// length against `limits.max_frame_bytes`.
pub fn parse_header(bytes: &[u8; HEADER_LEN], limits: &Limits) -> Result<Header, FrameError> {
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != MAGIC {
        return Err(FrameError::BadMagic { found: magic });
    }
    if bytes[4] != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion { found: bytes[4] });
    }
    let kind = Kind::from_u8(bytes[5]).ok_or(FrameError::UnknownKind { found: bytes[5] })?;
    if bytes[6..8] != [0, 0] || bytes[12..16] != [0, 0, 0, 0] {
        return Err(FrameError::ReservedNotZero);
    }
    let body_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let total = HEADER_LEN as u64 + (body_len as u64).div_ceil(FRAME_ALIGN as u64) * FRAME_ALIGN as u64;
    if total > limits.max_frame_bytes as u64 {
        return Err(FrameError::FrameTooLarge { len: total, max: limits.max_frame_bytes });
    }
    Ok(Header { kind, body_len })
}

/// Looks for one whole frame at the start of `buf`.
///
/// `buf` must start at a frame boundary; for the body to be readable in place
/// it must also start 16-aligned (see [`crate::buf::RecvBuf`]). The header is
/// checked as soon as its 16 bytes are in, before the body arrives.
pub fn next_frame<'a>(buf: &'a [u8], limits: &Limits) -> Result<Next<'a>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        // Reject garbage as early as possible: a wrong first byte of the magic
        // is already a protocol error.
        let seen = buf.len().min(4);
        if buf[..seen] != MAGIC[..seen] {
            let mut found = [0u8; 4];
            found[..seen].copy_from_slice(&buf[..seen]);
            return Err(FrameError::BadMagic { found });
        }
        return Ok(Next::NeedMore { frame_len: None });
    };
    let header = parse_header(head, limits)?;
    let total = header.frame_len();
    if buf.len() < total {
        return Ok(Next::NeedMore { frame_len: Some(total) });
    }
    let body = &buf[HEADER_LEN..HEADER_LEN + header.body_len as usize];
    Ok(Next::Frame(Frame { header, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, len: u32) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = PROTOCOL_VERSION;
        h[5] = kind;
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h
    }

    #[test]
    fn frame_len_pads_to_sixteen() {
        assert_eq!(frame_len(0), 16);
        assert_eq!(frame_len(1), 32);
        assert_eq!(frame_len(16), 32);
        assert_eq!(frame_len(17), 48);
    }

    #[test]
    fn write_then_parse_header() {
        let mut h = [0u8; 16];
        write_header(&mut h, Kind::Response, 1234);
        let parsed = parse_header(&h, &Limits::default()).expect("valid header");
        assert_eq!(parsed, Header { kind: Kind::Response, body_len: 1234 });
    }

    #[test]
    fn header_errors_are_typed() {
        let l = Limits::default();
        let mut h = header(3, 8);
        h[0] = b'X';
        assert!(matches!(parse_header(&h, &l), Err(FrameError::BadMagic { .. })));
        let mut h = header(3, 8);
        h[4] = 9;
        assert_eq!(parse_header(&h, &l), Err(FrameError::UnsupportedVersion { found: 9 }));
        assert_eq!(parse_header(&header(99, 8), &l), Err(FrameError::UnknownKind { found: 99 }));
        let mut h = header(3, 8);
        h[13] = 1;
        assert_eq!(parse_header(&h, &l), Err(FrameError::ReservedNotZero));
        assert!(matches!(parse_header(&header(3, u32::MAX), &l), Err(FrameError::FrameTooLarge { .. })));
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let l = Limits::default();
        let mut buf = header(3, 20).to_vec();
        assert_eq!(next_frame(&buf[..3], &l), Ok(Next::NeedMore { frame_len: None }));
        assert_eq!(next_frame(&buf, &l), Ok(Next::NeedMore { frame_len: Some(48) }));
        buf.resize(48, 0);
        match next_frame(&buf, &l) {
            Ok(Next::Frame(f)) => {
                assert_eq!(f.body.len(), 20);
                assert_eq!(f.len(), 48);
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_rejected_before_a_whole_header() {
        let l = Limits::default();
        assert!(matches!(next_frame(b"GET ", &l), Err(FrameError::BadMagic { .. })));
        assert!(matches!(next_frame(b"P", &l), Ok(Next::NeedMore { .. })));
        assert!(matches!(next_frame(b"PX", &l), Err(FrameError::BadMagic { .. })));
    }
}
