//! percore's wire protocol.
//!
//! # Layout
//!
//! A request moves through the modules in this order:
//!
//! - [`slot`]: `slot_of(key)`, Redis Cluster's CRC16 hash slots — where a key lives.
//! - [`cluster`]: the cluster file, [`cluster::ShardMap`], the slot → shard
//!   table, and [`cluster::client_password`], the secret a client's hello carries.
//! - [`codec`]: [`codec::RequestEncoder`] writes a batch as an rkyv archive in
//!   place; on the server [`codec::decode_request`] validates it and reads it
//!   in place; [`codec::ResponseEncoder`] writes the results;
//!   [`codec::decode_response`] reads them back on the client.
//! - [`frame`]: the 16-byte header that frames every body, and
//!   [`frame::next_frame`], which splits a byte stream into frames.
//! - [`buf`]: [`buf::RecvBuf`], the 16-aligned receive buffer frames are read in place from.
//! - [`msg`]: the body types — the definition of the format.
//! - [`limits`]: size limits, announced in the handshake and enforced on receipt.
//! - [`resp`]: the Redis protocol for Redis clients: [`resp::parse`] reads one
//!   command from a receive buffer in place, and [`resp::reply`] writes RESP2
//!   and RESP3 replies.
//! - [`client`]: a blocking client (handshake, batches, stats, routing) for
//!   the CLI and tests; [`error`]: its error type.
//!
//! Input is untrusted: nothing reads a body before `rkyv`'s validator has
//! accepted it, and every limit is checked before any operation runs.

pub mod buf;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod error;
pub mod frame;
pub mod limits;
pub mod msg;
pub mod resp;
pub mod slot;

pub use cluster::{Cluster, ShardMap};
pub use error::Error;
pub use limits::{Limits, ServerLimits};
pub use slot::slot_of;
