//! percore's server: one glommio executor per core, pinned, each with its
//! own port and its own map. Nothing on the data path is shared between
//! cores.
//!
//! # Layout
//!
//! A request moves through the modules in this order:
//!
//! - [`server`]: binds every shard's port, starts one pinned executor per
//!   shard, prints the node's `ops/s` lines, stops in order.
//! - `shard`: an executor's main future: accept loop and connection budget
//!   (a full shard drops its oldest connection without a handshake),
//!   counter publishing, a stop bounded by `shutdown_timeout`.
//! - `conn`: one connection: read frames into an aligned buffer that grows
//!   only with what arrives, answer each whole frame, coalesce the replies
//!   into one write, refuse bad input with an error frame; every wait has a
//!   deadline a peer cannot move (handshake, frame, idle, write).
//! - [`batch`]: runs one validated batch against the store, writing the reply.
//! - [`store`]: the shard's map and record layout; its byte and chunk
//!   limits (a write past them is refused, never an abort).
//! - [`stats`]: counters kept in cells, published to the reporter without locks.
//! - [`options`]: timeouts, caps and executor settings; `fault` holds the
//!   test-only fault switches.
//! - [`cli`]: the command line shared by `percore-server` and `percore server`.
//! - [`alloc`]: the binaries' global allocator, which puts large blocks (the
//!   store's chunks and table) on transparent huge pages.
//! - `model` (tests, and the `model` feature the fuzz targets enable): the
//!   executor and the store checked against a model.

pub mod alloc;
pub mod batch;
pub mod cli;
mod conn;
mod fault;
#[cfg(any(test, feature = "model"))]
pub mod model;
pub mod options;
pub mod server;
mod shard;
pub mod stats;
pub mod store;

pub use options::{Fault, ServerOptions};
pub use server::{NodeReport, StartError, bind, serve};
