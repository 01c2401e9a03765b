//! Encoding and decoding of frame bodies.
//!
//! **Decoding** is always rkyv's: [`decode_request`], [`decode_response`] and
//! [`decode`] validate the body with bytecheck (`rkyv::api::low::access`)
//! before any field is touched, then check the [`Limits`]. The result is a
//! reference into the receive buffer: nothing is copied.
//!
//! **Encoding** of the two hot bodies is done by [`RequestEncoder`] and
//! [`ResponseEncoder`], single-pass writers that lay out exactly the bytes
//! `rkyv::to_bytes` produces for [`Request`] / [`Response`] (byte for byte:
//! see the `requests_round_trip` and `responses_round_trip` property
//! tests in `wire/tests/roundtrip.rs`), without building the owned
//! values. rkyv's layout for these types, which the encoders follow:
//!
//! ```text
//! [key and value bytes of op 0, op 1, …, unpadded]   dependencies first, in order
//! [zero pad to 4]
//! [op entries: 20 bytes each (request) / 12 bytes each (response)]
//! [zero pad to 8]
//! [root: batch_id u64, relptr i32 to entries, entry count u32]   16 bytes, at the end
//! ```
//!
//! A relative pointer is the signed distance from the pointer's own address
//! to its target. Request entry: `tag u8, 3 zero bytes, key relptr, key len,
//! value relptr, value len` (the last 8 bytes zero for GET/DELETE). Response
//! entry: `tag u8, error code u8 (Error only), 2 zero bytes, then value
//! relptr and value len (Value), or the leader's member id `u32` and 4 zero
//! bytes (NotLeader), or 8 zero bytes`. Tags follow declaration order.
//!
//! Cold bodies (handshake, stats, errors) are serialized by rkyv itself
//! through [`encode`].

use crate::frame::{FRAME_ALIGN, FrameError, HEADER_LEN, Kind, pad_to_align, write_header};
use crate::limits::Limits;
use crate::msg::{ArchivedRequest, ArchivedResponse, OpError};
#[cfg(doc)]
use crate::msg::{Request, Response};
use rkyv::api::high::HighSerializer;
use rkyv::rancor::{self, Failure};
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// Size of one archived request operation (`ArchivedOp`).
pub const REQUEST_ENTRY_LEN: usize = 20;
/// Size of one archived result (`ArchivedOpResult`).
pub const RESPONSE_ENTRY_LEN: usize = 12;
/// Size of the archived root of a request or response.
pub const ROOT_LEN: usize = 16;

const _: () = {
    assert!(size_of::<crate::msg::ArchivedOp>() == REQUEST_ENTRY_LEN);
    assert!(align_of::<crate::msg::ArchivedOp>() == 4);
    assert!(size_of::<crate::msg::ArchivedOpResult>() == RESPONSE_ENTRY_LEN);
    assert!(align_of::<crate::msg::ArchivedOpResult>() == 4);
    assert!(size_of::<ArchivedRequest>() == ROOT_LEN);
    assert!(size_of::<ArchivedResponse>() == ROOT_LEN);
    assert!(align_of::<ArchivedRequest>() == 8);
};

const TAG_GET: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_VALUE: u8 = 0;
const TAG_NOT_FOUND: u8 = 1;
const TAG_DONE: u8 = 2;
const TAG_ERROR: u8 = 3;
const TAG_NOT_LEADER: u8 = 4;

#[inline]
fn pad_zeros(out: &mut Vec<u8>, from: usize, align: usize) {
    let pad = (align - (out.len() - from) % align) % align;
    out.resize(out.len() + pad, 0);
}

/// Writes the root and the header, and pads the frame; `entries_pos` is the
/// body offset of the entry array.
#[inline]
fn finish_frame(
    out: &mut Vec<u8>,
    frame_start: usize,
    kind: Kind,
    batch_id: u64,
    entries_pos: usize,
    count: usize,
) -> usize {
    let body_start = frame_start + HEADER_LEN;
    pad_zeros(out, body_start, 8);
    let root = out.len() - body_start;
    let rel = entries_pos as i64 - (root as i64 + 8);
    let mut r = [0u8; ROOT_LEN];
    r[0..8].copy_from_slice(&batch_id.to_le_bytes());
    r[8..12].copy_from_slice(&(rel as i32).to_le_bytes());
    r[12..16].copy_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&r);
    let body_len = out.len() - body_start;
    write_header(&mut out[frame_start..body_start], kind, body_len as u32);
    let padded = pad_to_align(body_len);
    out.resize(body_start + padded, 0);
    HEADER_LEN + padded
}

/// Builds a request frame in place at the end of an output buffer.
///
/// Keys and values are copied once, into the output. Each operation's
/// 20-byte archived entry is kept in a scratch array as five `u32` words
/// (tag, key position, key length, value position, value length); at
/// [`RequestEncoder::finish`] the positions become relative pointers and the
/// array is appended in one copy. The scratch space is reused from one batch
/// to the next, so a long-lived encoder allocates nothing per batch.
///
/// ```
/// use wire::codec::{RequestEncoder, decode_request};
/// use wire::{Limits, frame::{next_frame, Next}, buf::RecvBuf};
///
/// let mut out = Vec::new();
/// let mut enc = RequestEncoder::new();
/// enc.begin(&mut out, 7);
/// enc.put(&mut out, b"k", b"v");
/// enc.get(&mut out, b"k");
/// let len = enc.finish(&mut out);
/// assert_eq!(len, out.len());
///
/// let mut buf = RecvBuf::new(1024, 1 << 20);
/// buf.extend_from_slice(&out);
/// let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &Limits::default()) else { panic!() };
/// let req = decode_request(frame.body, &Limits::default()).unwrap();
/// assert_eq!(req.batch_id, 7);
/// assert_eq!(req.ops.len(), 2);
/// ```
#[derive(Default)]
pub struct RequestEncoder {
    /// Per operation: `[tag, key pos, key len, value pos, value len]`
    /// (positions are body offsets until `finish` makes them relative).
    entries: Vec<[u32; 5]>,
    frame_start: usize,
    batch_id: u64,
    data_len: usize,
}

impl RequestEncoder {
    /// An encoder with no batch open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a batch at the end of `out` (a header placeholder is written).
    pub fn begin(&mut self, out: &mut Vec<u8>, batch_id: u64) {
        self.entries.clear();
        self.frame_start = out.len();
        self.batch_id = batch_id;
        self.data_len = 0;
        out.resize(out.len() + HEADER_LEN, 0);
    }

    /// Operations in the open batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the open batch has no operation.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The frame length the batch would have if finished now.
    #[inline]
    pub fn frame_len(&self) -> usize {
        Self::frame_len_for(self.data_len, self.entries.len())
    }

    /// The frame length of a request carrying `ops` operations whose keys and
    /// values add up to `data_len` bytes.
    #[inline]
    pub const fn frame_len_for(data_len: usize, ops: usize) -> usize {
        let entries = (data_len + 3) & !3;
        let root = (entries + ops * REQUEST_ENTRY_LEN + 7) & !7;
        HEADER_LEN + pad_to_align(root + ROOT_LEN)
    }

    /// Appends a GET.
    #[inline]
    pub fn get(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        let key_pos = self.data_len as u32;
        out.extend_from_slice(key);
        self.data_len += key.len();
        self.entries.push([TAG_GET as u32, key_pos, key.len() as u32, 0, 0]);
    }

    /// Appends a PUT.
    #[inline]
    pub fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        self.put_with(out, key, value.len(), |v| v.copy_from_slice(value));
    }

    /// Appends a PUT whose value is written by `fill` straight into the
    /// frame (`value_len` bytes, zeroed before the call): the value is built
    /// where it travels, never copied.
    #[inline]
    pub fn put_with(&mut self, out: &mut Vec<u8>, key: &[u8], value_len: usize, fill: impl FnOnce(&mut [u8])) {
        let key_pos = self.data_len as u32;
        out.extend_from_slice(key);
        let start = out.len();
        out.resize(start + value_len, 0);
        fill(&mut out[start..]);
        self.data_len += key.len() + value_len;
        self.entries.push([TAG_PUT as u32, key_pos, key.len() as u32, key_pos + key.len() as u32, value_len as u32]);
    }

    /// Appends a DELETE.
    #[inline]
    pub fn delete(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        let key_pos = self.data_len as u32;
        out.extend_from_slice(key);
        self.data_len += key.len();
        self.entries.push([TAG_DELETE as u32, key_pos, key.len() as u32, 0, 0]);
    }

    /// Closes the batch: writes the entries, the root and the header, pads
    /// the frame, and returns the frame's length. `out` then ends with it.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let body_start = self.frame_start + HEADER_LEN;
        pad_zeros(out, body_start, 4);
        let entries_pos = (out.len() - body_start) as u32;
        for (i, e) in self.entries.iter_mut().enumerate() {
            let at = entries_pos + (i * REQUEST_ENTRY_LEN) as u32;
            e[1] = e[1].wrapping_sub(at + 4).to_le();
            e[2] = e[2].to_le();
            if e[0] == TAG_PUT as u32 {
                e[3] = e[3].wrapping_sub(at + 12).to_le();
                e[4] = e[4].to_le();
            }
            e[0] = e[0].to_le();
        }
        out.extend_from_slice(bytemuck::cast_slice(&self.entries));
        finish_frame(out, self.frame_start, Kind::Request, self.batch_id, entries_pos as usize, self.entries.len())
    }
}

/// Builds a response frame in place at the end of an output buffer.
///
/// A GET's value is copied once, from the store into the output, by
/// [`ResponseEncoder::value`]; each result's 12-byte entry is kept as three
/// `u32` words (tag and error code, value position, value length) and the
/// whole array is appended at [`ResponseEncoder::finish`] in one copy.
#[derive(Default)]
pub struct ResponseEncoder {
    /// Per result: `[tag | code << 8, value pos, value len]` (the position is
    /// a body offset until `finish` makes it relative).
    entries: Vec<[u32; 3]>,
    frame_start: usize,
    batch_id: u64,
    data_len: usize,
}

impl ResponseEncoder {
    /// An encoder with no response open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a response at the end of `out`; `ops` is the number of results
    /// it will carry (used to reserve space only).
    pub fn begin(&mut self, out: &mut Vec<u8>, batch_id: u64, ops: usize) {
        self.entries.clear();
        self.entries.reserve(ops);
        self.frame_start = out.len();
        self.batch_id = batch_id;
        self.data_len = 0;
        // Room for typical results, up to 1 MiB: a frame of many GETs of
        // absent keys must not reserve for values it will never carry.
        out.reserve((HEADER_LEN + ops * (RESPONSE_ENTRY_LEN + 128) + 64).min(1 << 20));
        out.resize(out.len() + HEADER_LEN, 0);
    }

    /// Bytes of values a response of `ops` results may carry and still fit
    /// in a frame of `max_frame` bytes (entries, root, header and padding
    /// accounted for).
    #[inline]
    pub const fn data_budget(max_frame: usize, ops: usize) -> usize {
        max_frame.saturating_sub(HEADER_LEN + ops * RESPONSE_ENTRY_LEN + ROOT_LEN + 3 + 7 + (FRAME_ALIGN - 1))
    }

    /// Bytes of values added so far.
    #[inline]
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// The frame length this response would have if `extra_value` more bytes
    /// of value and `extra_results` more results were added.
    #[inline]
    pub fn frame_len_with(&self, extra_value: usize, extra_results: usize) -> usize {
        let entries = (self.data_len + extra_value + 3) & !3;
        let root = (entries + (self.entries.len() + extra_results) * RESPONSE_ENTRY_LEN + 7) & !7;
        HEADER_LEN + pad_to_align(root + ROOT_LEN)
    }

    /// Results added so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no result was added yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a found value.
    #[inline]
    pub fn value(&mut self, out: &mut Vec<u8>, value: &[u8]) {
        let pos = self.data_len as u32;
        out.extend_from_slice(value);
        self.data_len += value.len();
        self.entries.push([TAG_VALUE as u32, pos, value.len() as u32]);
    }

    /// Adds a not-found result.
    #[inline]
    pub fn not_found(&mut self) {
        self.entries.push([TAG_NOT_FOUND as u32, 0, 0]);
    }

    /// Adds a done result.
    #[inline]
    pub fn done(&mut self) {
        self.entries.push([TAG_DONE as u32, 0, 0]);
    }

    /// Adds an error result.
    #[inline]
    pub fn error(&mut self, code: OpError) {
        self.entries.push([TAG_ERROR as u32 | (code as u32) << 8, 0, 0]);
    }

    /// Adds a not-leader result naming the leader's member id (0: none known).
    #[inline]
    pub fn not_leader(&mut self, leader: u32) {
        self.entries.push([TAG_NOT_LEADER as u32, leader, 0]);
    }

    /// Closes the response and returns the frame's length.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let body_start = self.frame_start + HEADER_LEN;
        pad_zeros(out, body_start, 4);
        let entries_pos = (out.len() - body_start) as u32;
        for (i, e) in self.entries.iter_mut().enumerate() {
            if e[0] == TAG_VALUE as u32 {
                let at = entries_pos + (i * RESPONSE_ENTRY_LEN) as u32;
                e[1] = e[1].wrapping_sub(at + 4).to_le();
                e[2] = e[2].to_le();
            } else if e[0] == TAG_NOT_LEADER as u32 {
                e[1] = e[1].to_le();
            }
            e[0] = e[0].to_le();
        }
        out.extend_from_slice(bytemuck::cast_slice(&self.entries));
        finish_frame(out, self.frame_start, Kind::Response, self.batch_id, entries_pos as usize, self.entries.len())
    }
}

/// Serializes a cold body with rkyv and appends it as a frame of `kind`.
pub fn encode<T>(kind: Kind, value: &T, out: &mut Vec<u8>) -> Result<usize, rancor::Error>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let body = rkyv::to_bytes::<rancor::Error>(value)?;
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    write_header(&mut out[start..], kind, body.len() as u32);
    out.extend_from_slice(&body);
    out.resize(start + HEADER_LEN + pad_to_align(body.len()), 0);
    Ok(out.len() - start)
}

/// Validates `body` as an archived `T` and returns it, read in place.
///
/// `body` must be exactly the archive (as [`crate::frame::Frame::body`] is)
/// and start 8-aligned. Any failure is [`FrameError::Corrupt`];
/// [`explain`] gives the validator's detailed message.
#[inline]
pub fn decode<T>(kind: Kind, body: &[u8]) -> Result<&T, FrameError>
where
    T: rkyv::Portable + for<'a> bytecheck::CheckBytes<rkyv::api::low::LowValidator<'a, Failure>>,
{
    rkyv::api::low::access::<T, Failure>(body).map_err(|_| FrameError::Corrupt { kind })
}

/// The validator's own description of why `body` is not a valid `T`
/// (error path only: it allocates; `BoxedError` keeps the detail in
/// release builds, where `rancor::Error` would not).
pub fn explain<T>(body: &[u8]) -> String
where
    T: rkyv::Portable + for<'a> bytecheck::CheckBytes<rkyv::api::low::LowValidator<'a, rancor::BoxedError>>,
{
    match rkyv::api::low::access::<T, rancor::BoxedError>(body) {
        Ok(_) => "valid".to_string(),
        Err(e) => e.to_string(),
    }
}

/// Validates a request body and checks it against `limits`: operation count,
/// key lengths and value lengths. On success every field may be read freely.
#[inline]
pub fn decode_request<'a>(body: &'a [u8], limits: &Limits) -> Result<&'a ArchivedRequest, FrameError> {
    let req = decode::<ArchivedRequest>(Kind::Request, body)?;
    check_request_limits(req, limits)?;
    Ok(req)
}

/// The limit checks of [`decode_request`], on an already validated request.
#[inline]
pub fn check_request_limits(req: &ArchivedRequest, limits: &Limits) -> Result<(), FrameError> {
    let count = req.ops.len() as u32;
    if count > limits.max_ops_per_frame {
        return Err(FrameError::TooManyOps { count, max: limits.max_ops_per_frame });
    }
    for (i, op) in req.ops.iter().enumerate() {
        let key_len = op.key().len() as u32;
        if key_len > limits.max_key_len {
            return Err(FrameError::KeyTooLarge { op: i as u32, len: key_len, max: limits.max_key_len });
        }
        if let crate::msg::ArchivedOp::Put { value, .. } = op {
            let len = value.len() as u32;
            if len > limits.max_value_len {
                return Err(FrameError::ValueTooLarge { op: i as u32, len, max: limits.max_value_len });
            }
        }
    }
    Ok(())
}

/// Validates a response body.
#[inline]
pub fn decode_response(body: &[u8]) -> Result<&ArchivedResponse, FrameError> {
    decode::<ArchivedResponse>(Kind::Response, body)
}

// bytecheck is re-exported by rkyv; name it for the bounds above.
use rkyv::bytecheck;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::RecvBuf;
    use crate::frame::{Next, next_frame};
    use crate::msg::{Op, OpResult, Request, Response};

    fn body_of(frame: &[u8]) -> Vec<u8> {
        let len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
        frame[HEADER_LEN..HEADER_LEN + len].to_vec()
    }

    #[test]
    fn request_matches_rkyv_bytes() {
        let req = Request {
            batch_id: 0x1122_3344_5566_7788,
            ops: vec![
                Op::Get { key: b"abc".to_vec() },
                Op::Put { key: vec![], value: vec![] },
                Op::Put { key: b"k2".to_vec(), value: b"VVVVV".to_vec() },
                Op::Delete { key: b"zz".to_vec() },
            ],
        };
        let mut out = vec![0xEE; 5]; // the encoder appends after existing bytes
        let mut enc = RequestEncoder::new();
        enc.begin(&mut out, req.batch_id);
        for op in &req.ops {
            match op {
                Op::Get { key } => enc.get(&mut out, key),
                Op::Put { key, value } => enc.put(&mut out, key, value),
                Op::Delete { key } => enc.delete(&mut out, key),
            }
        }
        let predicted = enc.frame_len();
        let n = enc.finish(&mut out);
        assert_eq!(n, out.len() - 5);
        assert_eq!(n, predicted);
        let expected = rkyv::to_bytes::<rancor::Error>(&req).expect("serialize");
        assert_eq!(body_of(&out[5..]), expected.as_slice());
    }

    #[test]
    fn response_matches_rkyv_bytes() {
        let resp = Response {
            batch_id: 7,
            results: vec![
                OpResult::Value(b"hello".to_vec()),
                OpResult::NotFound,
                OpResult::Done,
                OpResult::Error(OpError::TooLarge),
                OpResult::Value(vec![]),
                OpResult::Error(OpError::WrongShard),
                OpResult::Value(b"xy".to_vec()),
                OpResult::NotLeader(3),
                OpResult::NotLeader(0),
            ],
        };
        let mut out = Vec::new();
        let mut enc = ResponseEncoder::new();
        enc.begin(&mut out, resp.batch_id, resp.results.len());
        for r in &resp.results {
            match r {
                OpResult::Value(v) => enc.value(&mut out, v),
                OpResult::NotFound => enc.not_found(),
                OpResult::Done => enc.done(),
                OpResult::Error(e) => enc.error(*e),
                OpResult::NotLeader(l) => enc.not_leader(*l),
            }
        }
        let predicted = enc.frame_len_with(0, 0);
        assert_eq!(enc.finish(&mut out), predicted);
        let expected = rkyv::to_bytes::<rancor::Error>(&resp).expect("serialize");
        assert_eq!(body_of(&out), expected.as_slice());
    }

    #[test]
    fn limits_are_checked_after_validation() {
        let mut out = Vec::new();
        let mut enc = RequestEncoder::new();
        enc.begin(&mut out, 1);
        enc.get(&mut out, b"ok");
        enc.put(&mut out, &[b'k'; 40], b"v");
        enc.put(&mut out, b"k", &[0; 300]);
        enc.finish(&mut out);
        let mut buf = RecvBuf::new(4096, 1 << 20);
        buf.extend_from_slice(&out);
        let Ok(Next::Frame(f)) = next_frame(buf.filled(), &Limits::default()) else { panic!("frame expected") };
        let tight = Limits { max_key_len: 16, ..Limits::default() };
        assert_eq!(
            decode_request(f.body, &tight).map(|_| ()),
            Err(FrameError::KeyTooLarge { op: 1, len: 40, max: 16 })
        );
        let tight = Limits { max_value_len: 100, ..Limits::default() };
        assert_eq!(
            decode_request(f.body, &tight).map(|_| ()),
            Err(FrameError::ValueTooLarge { op: 2, len: 300, max: 100 })
        );
        let tight = Limits { max_ops_per_frame: 2, ..Limits::default() };
        assert_eq!(decode_request(f.body, &tight).map(|_| ()), Err(FrameError::TooManyOps { count: 3, max: 2 }));
        assert!(decode_request(f.body, &Limits::default()).is_ok());
    }

    #[test]
    fn corrupt_bodies_are_refused_with_an_explanation() {
        let mut out = Vec::new();
        let mut enc = RequestEncoder::new();
        enc.begin(&mut out, 1);
        enc.get(&mut out, b"key");
        enc.finish(&mut out);
        let mut buf = RecvBuf::new(4096, 1 << 20);
        buf.extend_from_slice(&out);
        let body_len = u32::from_le_bytes([out[8], out[9], out[10], out[11]]) as usize;
        // Point the key far outside the archive.
        let body = &mut buf.filled_mut()[HEADER_LEN..HEADER_LEN + body_len];
        body[4 + 4..4 + 8].copy_from_slice(&10_000i32.to_le_bytes());
        let body = &buf.filled()[HEADER_LEN..HEADER_LEN + body_len];
        assert_eq!(
            decode_request(body, &Limits::default()).map(|_| ()),
            Err(FrameError::Corrupt { kind: Kind::Request })
        );
        let why = explain::<ArchivedRequest>(body);
        assert!(why.contains("range") || why.contains("bounds"), "{why}");
    }
}
