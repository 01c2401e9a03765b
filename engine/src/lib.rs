//! percore's server: one glommio executor per core, pinned, each with its
//! own port and its own map. Nothing on the data path is shared between
//! cores.
//!
//! # Layers: adapter → executor → store
//!
//! ```text
//!            one port per core
//!                  │ first bytes: `PCOR` → frames, anything else → RESP
//!   ┌──────────────┴────────────────────────────┐
//!   │ protocol adapters                         │  bytes in, replies out:
//!   │  percore frames (`conn`)                  │  parse, validate, refuse
//!   │  RESP: one Redis Cluster node (`resp`)    │  bad input, coalesce replies.
//!   └──────────────┬────────────────────────────┘
//!                  │ runs of GET / PUT / DELETE: a frame's batch, or a
//!                  │ pipeline's plain GET / SET commands (read in place)
//!   ┌──────────────┴───────────────┐
//!   │ shard executor (`batch`)     │  the one place those operations take
//!   │                              │  effect: routing (owned slots), grouped
//!   │                              │  and prefetched lookups, per-op results.
//!   └──────────────┬───────────────┘
//!                  │ get / put / delete on owned keys, at the batch's clock
//!   ┌──────────────┴───────────────┐
//!   │ store (`store`)              │  the shard's private map, expiry and
//!   │  (+ its log, next)           │  memory limits; the durable log will sit
//!   └──────────────────────────────┘  here, under the executor.
//! ```
//!
//! Both adapters feed the same executor ([`batch::run`], over a view of
//! each protocol's operations and a sink for its replies): a percore frame
//! is one batch; a RESP pipeline's consecutive plain `GET`/`SET` commands
//! are one batch too. RESP's richer commands (`INCR`, `APPEND`, expiry,
//! `SCAN`, `CLUSTER …`) have no percore-frame counterpart; the RESP adapter
//! runs them on the store directly, one at a time, under the same routing
//! and limits.
//!
//! Where the coming work plugs in, without touching the other layers:
//!
//! - **The durable log** goes under the executor, beside the store: each
//!   executed batch's writes are appended as one record before the replies
//!   that observed them are released; recovery replays the log into the
//!   store.
//! - **Replication** (`replica`) sits where the log does: the leader's
//!   executor runs batches at once, the store's journal of their results
//!   becomes one proposal of the shard's Raft group per proposer pass,
//!   followers apply the committed results, and replies wait for the
//!   commit and a leadership check, as they wait for the disk in `fsync
//!   always`.
//!
//! Each shard owns one instance of every layer, on its own core; nothing
//! in the stack is shared between cores.
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
//! - `resp`: the RESP door on the same port: Redis commands parsed from
//!   the receive buffer, routed (`-MOVED` for another core's slots), run on
//!   the store, answered in Redis's formats; each core one Redis Cluster node.
//! - [`batch`]: runs one validated batch against the store, writing the reply.
//! - [`store`]: the shard's map and record layout; its byte and chunk
//!   limits (a write past them is refused, never an abort).
//! - [`log`]: the durable per-shard log, snapshots and recovery.
//! - [`replica`]: a replicated shard's Raft group (raft-rs), its peer wire,
//!   and the store as the group's state machine.
//! - [`stats`]: counters kept in cells, published to the reporter without locks.
//! - [`metrics`]: the node's Prometheus endpoint (`GET /metrics`), one
//!   plain thread reading the published counters, off the data path.
//! - [`options`]: timeouts, caps and executor settings; `fault` holds the
//!   test-only fault switches.
//! - [`cli`]: the command line shared by `percore-server` and `percore server`.
//! - [`alloc`]: the binaries' global allocator, which puts large blocks (the
//!   store's chunks and table) on transparent huge pages.
//! - `model` (tests, and the `model` feature the fuzz targets enable): the
//!   executor and the store checked against a model.
//! - `resp_model` (tests, and the `model` feature): the RESP door checked
//!   against a model of Redis's replies, over a real shard and its store.

pub mod alloc;
pub mod batch;
pub mod cli;
mod conn;
pub mod fault;
pub mod log;
pub mod metrics;
#[cfg(any(test, feature = "model"))]
pub mod model;
pub mod options;
pub mod replica;
mod resp;
#[cfg(any(test, feature = "model"))]
pub mod resp_model;
pub mod server;
mod shard;
pub mod stats;
pub mod store;

pub use options::{Fault, ServerOptions};
pub use server::{NodeReport, StartError, bind, serve};
