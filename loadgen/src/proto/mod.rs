//! What the load generator speaks to a server: how a batch of operations is
//! written and how the replies are read back.
//!
//! A [`Protocol`] turns GETs and PUTs into bytes appended to a send buffer,
//! and turns received bytes back into one [`Reply`] per operation, in
//! order. The worker pairs replies with its in-flight operations first in,
//! first out, so any protocol that answers a connection's requests in order
//! fits. percore's own is [`percore::Percore`]; Redis's RESP
//! ([`resp::Resp`]) and memcached's meta protocol ([`memcache::Memcache`])
//! plug in the same way, so every server is driven by the same
//! generator, verified the same way and measured with the same histograms.
//! [`cluster`] reads a Redis Cluster's slot map (`CLUSTER SLOTS`), so a
//! RESP target that is a cluster is driven node by node like percore's
//! shards.

pub mod cluster;
pub mod memcache;
pub mod percore;
pub mod resp;

/// The reply to one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A GET found this value.
    Value(&'a [u8]),
    /// A GET found nothing.
    NotFound,
    /// A PUT was done.
    Done,
    /// The server refused the operation.
    Refused(RefusedBy),
}

/// Why a server refused an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    /// Not this shard's key.
    WrongShard,
    /// The reply would be too large.
    TooLarge,
    /// The server has no memory for the write (percore's OutOfMemory,
    /// Redis's `-OOM`, memcached's "out of memory").
    OutOfMemory,
    /// The server could not make the write durable (percore's NotDurable:
    /// the node's log disk is full or failing); nothing was written.
    NotDurable,
    /// The node does not serve the key's shard now and names no other
    /// node for it: a replicated shard in an election (RESP's
    /// `-CLUSTERDOWN`), or a follower of a keyless command (`-NOTLEADER`).
    /// Refused before anything was proposed: nothing was written.
    NoLeader,
    /// Any other per-operation error the server reports.
    Other,
}

/// A server protocol, as the load generator drives it.
pub trait Protocol {
    /// Opens a batch at the end of `out`.
    fn begin(&mut self, out: &mut Vec<u8>, batch_id: u64);
    /// Appends a GET of `key` to the open batch.
    fn get(&mut self, out: &mut Vec<u8>, key: &[u8]);
    /// Appends a PUT of `key`; `fill` writes the `value_len` value bytes in place.
    fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value_len: usize, fill: impl FnOnce(&mut [u8]));
    /// Closes the open batch.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// Bytes the open batch would take if closed now.
    fn open_bytes(&self) -> usize;
    /// Reads the complete replies at the front of `buf`, calling `on_reply`
    /// once per operation in order; returns how many bytes it consumed.
    /// Partial replies are left for the next call.
    fn decode(&mut self, buf: &[u8], on_reply: &mut impl FnMut(Reply<'_>)) -> Result<usize, String>;
}

/// Finds `\r\n` at or after `from` in `buf`; returns the index of `\r`
/// (the text protocols' line end).
pub(crate) fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..].windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// Appends a `value_len`-byte value that `fill` writes in place, then
/// `\r\n` (how RESP and memcached's meta protocol both carry a value
/// after its header line).
#[inline]
pub(crate) fn value_line(out: &mut Vec<u8>, value_len: usize, fill: impl FnOnce(&mut [u8])) {
    let start = out.len();
    out.resize(start + value_len, 0);
    fill(&mut out[start..]);
    out.extend_from_slice(b"\r\n");
}
