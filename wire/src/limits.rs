//! Size limits every peer enforces on what it receives.
//!
//! A server announces its limits in the handshake reply, so a client sizes
//! its batches to fit. Violating a limit is a protocol error: the frame is
//! refused whole (none of its operations runs), an error frame names the
//! limit, and the connection is closed.

use serde::{Deserialize, Serialize};
use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

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
