//! The aligned receive buffer every reader of percore frames uses.
//!
//! Frames are read in place, so the buffer keeps two promises: its storage
//! starts 16-aligned ([`rkyv::util::AlignedVec`]), and the unread part always
//! starts at a multiple of 16 (frames are 16-byte multiples, and compaction
//! moves the unread part to offset 0). Together they make every frame body
//! 16-aligned for `rkyv::access`.
//!
//! The buffer grows only as far as a frame needs, never past its cap
//! (`max_frame_bytes`). It keeps what it grew to up to a *keep* size (so a
//! pipelining connection does not shrink and regrow — reallocate and
//! zero-fill — on every burst), and when it empties with more than that it
//! shrinks back to its initial size, so a connection that once carried a
//! huge frame does not hold the memory. Unread bytes are moved to the front
//! only when the frame being received does not fit in the space left.

use crate::frame::FRAME_ALIGN;
use rkyv::util::AlignedVec;

/// A growable, 16-aligned receive buffer with read and write cursors.
pub struct RecvBuf {
    /// Storage; `data.len()` is the usable capacity, always zero-initialised.
    data: AlignedVec<FRAME_ALIGN>,
    /// Start of unread bytes; a multiple of 16 whenever whole frames were consumed.
    start: usize,
    /// End of received bytes.
    end: usize,
    /// Capacity it returns to when empty and larger than `keep`.
    initial: usize,
    /// Capacity it may keep while empty.
    keep: usize,
    /// Capacity it never exceeds.
    max: usize,
}

impl RecvBuf {
    /// A buffer of `initial` bytes that may grow to `max` (both rounded up
    /// to 16) and keeps up to 1 MiB when empty.
    pub fn new(initial: usize, max: usize) -> Self {
        Self::with_keep(initial, 1 << 20, max)
    }

    /// A buffer of `initial` bytes that may grow to `max`, keeping up to
    /// `keep` bytes of capacity while empty.
    pub fn with_keep(initial: usize, keep: usize, max: usize) -> Self {
        let initial = initial.max(FRAME_ALIGN).next_multiple_of(FRAME_ALIGN);
        let max = max.max(initial).next_multiple_of(FRAME_ALIGN);
        let mut data = AlignedVec::with_capacity(initial);
        data.resize(initial, 0);
        RecvBuf { data, start: 0, end: 0, initial, keep: keep.max(initial), max }
    }

    /// The received, unread bytes.
    #[inline]
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The received, unread bytes, mutable (tests use it to corrupt frames).
    #[inline]
    pub fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Number of unread bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True if nothing is unread.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Current capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// The cap this buffer never grows past.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Marks `n` unread bytes as consumed.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The free space after the received bytes, to read into.
    #[inline]
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes of [`RecvBuf::spare`] as received.
    #[inline]
    pub fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.data.len());
        self.end += n;
    }

    /// Appends bytes (tests and blocking clients).
    ///
    /// # Panics
    /// If the bytes do not fit under the cap.
    pub fn extend_from_slice(&mut self, mut bytes: &[u8]) {
        let want = self.len() + bytes.len();
        while !bytes.is_empty() {
            assert!(self.prepare(Some(want)), "{want} bytes exceed the buffer's cap of {}", self.max);
            let n = bytes.len().min(self.spare().len());
            let end = self.end;
            self.data[end..end + n].copy_from_slice(&bytes[..n]);
            self.end += n;
            bytes = &bytes[n..];
        }
    }

    /// Makes room before a read; returns false if there is none (the
    /// buffer is full at its cap, or the frame is larger than the cap —
    /// callers check frame lengths against the limits first, so that is a
    /// bug, not a peer's doing).
    ///
    /// `frame_len` is the length of the frame at the start of the unread
    /// bytes once its header is known; the unread bytes move to the front
    /// when that frame would not fit where they are. The buffer grows only
    /// when the last read filled it to its end, and then doubles — never
    /// past the cap, nor past the keep size unless that frame needs it. So
    /// its capacity stays within twice the bytes that actually arrived (a
    /// peer that declares a huge frame and sends a few bytes of it gets no
    /// large buffer), and a busy connection soon reads many frames at once
    /// instead of moving a partial frame to the front after every read.
    pub fn prepare(&mut self, frame_len: Option<usize>) -> bool {
        if self.is_empty() && self.data.len() > self.keep {
            self.shrink();
        }
        let need = frame_len.unwrap_or(0).max(self.len());
        if need > self.max {
            return false;
        }
        let filled = self.end == self.data.len();
        if self.start + need > self.data.len() || filled {
            self.compact();
        }
        if filled {
            let limit = frame_len.map_or(self.max, |n| n.max(self.keep)).min(self.max);
            let target = (self.data.len() * 2).min(limit).next_multiple_of(FRAME_ALIGN);
            if target > self.data.len() {
                self.data.resize(target, 0);
            }
        }
        self.end < self.data.len()
    }

    /// Moves the unread bytes to the front. (When whole frames were
    /// consumed, `start` is a multiple of 16 and alignment is kept; readers
    /// of other protocols consume arbitrary lengths and need no alignment.)
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.data.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    fn shrink(&mut self) {
        let mut data = AlignedVec::with_capacity(self.initial);
        data.resize(self.initial, 0);
        self.data = data;
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_aligned_and_grows_to_the_frame() {
        let mut b = RecvBuf::new(64, 1024);
        assert_eq!(b.filled().as_ptr() as usize % 16, 0);
        b.extend_from_slice(&[7u8; 500]);
        assert!(b.capacity() >= 500 && b.capacity() <= 1024);
        assert!(!b.prepare(Some(2000)), "beyond the cap");
        b.extend_from_slice(&[7u8; 524]);
        assert_eq!(b.capacity(), 1024);
        assert!(!b.prepare(None), "full at the cap: no room");
    }

    #[test]
    fn grows_only_with_the_bytes_that_arrive() {
        let mut b = RecvBuf::new(64, 4 << 20);
        // A header declaring a 4 MiB frame, and 16 bytes of it.
        b.extend_from_slice(&[1u8; 16]);
        assert!(b.prepare(Some(4 << 20)));
        assert_eq!(b.capacity(), 64, "room is not reserved for bytes that have not arrived");
        let mut arrived = 16;
        while arrived < 100_000 {
            let n = b.spare().len().min(1000);
            b.commit(n);
            arrived += n;
            assert!(b.prepare(Some(4 << 20)));
            assert!(b.capacity() <= 2 * arrived.max(64), "{} bytes of room for {arrived} bytes", b.capacity());
        }
        // Growth stops at the cap.
        let mut c = RecvBuf::new(64, 100);
        c.extend_from_slice(&[1u8; 64]);
        assert!(c.prepare(Some(100)));
        assert_eq!(c.capacity(), 112);
    }

    #[test]
    fn compaction_keeps_frames_aligned() {
        let mut b = RecvBuf::new(64, 64);
        b.extend_from_slice(&[1u8; 48]);
        b.consume(32);
        b.extend_from_slice(&[2u8; 40]);
        assert_eq!(b.len(), 56);
        assert_eq!(b.filled().as_ptr() as usize % 16, 0);
        assert_eq!(&b.filled()[..16], &[1u8; 16]);
    }

    #[test]
    fn shrinks_back_when_empty_above_keep() {
        let mut b = RecvBuf::with_keep(64, 1024, 8192);
        b.extend_from_slice(&[0u8; 3000]);
        assert!(b.capacity() >= 3000);
        b.consume(3000);
        b.prepare(None);
        assert_eq!(b.capacity(), 64);
        // Growth up to `keep` is kept for the next burst.
        b.extend_from_slice(&[0u8; 900]);
        let grown = b.capacity();
        b.consume(900);
        b.prepare(None);
        assert_eq!(b.capacity(), grown);
    }
}
