//! The error type of the wire crate's client side and of everything that
//! talks to a percore server: what went wrong, and with which server.

use crate::cluster::ConfigError;
use crate::frame::FrameError;
use crate::msg::{ErrorCode, OpError};

/// Errors from talking to percore servers. Every variant that involves a
/// server names it (`addr`), so a message always says where it happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("{addr}: {source}")]
    Io {
        /// The server.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server sent an error frame and closed the connection.
    #[error("{addr}: server refused ({code}): {message}")]
    Server {
        /// The server.
        addr: String,
        /// The error code it sent.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The server sent something that is not a valid frame.
    #[error("{addr}: invalid frame from server: {source}")]
    Frame {
        /// The server.
        addr: String,
        /// What was wrong with it.
        source: FrameError,
    },
    /// The handshake found that client and server disagree.
    #[error("{addr}: handshake mismatch: {message}")]
    Mismatch {
        /// The server.
        addr: String,
        /// Both sides' values.
        message: String,
    },
    /// The server closed the connection.
    #[error("{addr}: connection closed by the server")]
    Closed {
        /// The server.
        addr: String,
    },
    /// The server answered out of protocol (wrong kind, wrong batch id, …).
    #[error("{addr}: protocol error: {message}")]
    Protocol {
        /// The server.
        addr: String,
        /// What was unexpected.
        message: String,
    },
    /// A single operation was refused with a per-operation error; the
    /// message says what the code means ([`OpError::meaning`]).
    #[error("{addr}: operation refused ({code}): {}", code.meaning())]
    Op {
        /// The server.
        addr: String,
        /// Why.
        code: OpError,
    },
    /// A replicated shard had no leader to serve the operation within the
    /// client's time: every replica was unreachable or answered NotLeader.
    /// Nothing is known to have been done.
    #[error("shard {shard}: no leader served within {waited:?} ({last})")]
    NoLeader {
        /// The shard.
        shard: u32,
        /// How long the client followed leaders.
        waited: std::time::Duration,
        /// The last thing that went wrong.
        last: String,
    },
    /// A request the client refuses to send (it would break a limit).
    #[error("{0}")]
    Limit(String),
    /// The cluster file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Error {
    /// The server address the error is about, if any.
    pub fn addr(&self) -> Option<&str> {
        match self {
            Error::Io { addr, .. }
            | Error::Server { addr, .. }
            | Error::Frame { addr, .. }
            | Error::Mismatch { addr, .. }
            | Error::Closed { addr }
            | Error::Protocol { addr, .. }
            | Error::Op { addr, .. } => Some(addr),
            Error::Limit(_) | Error::Config(_) | Error::NoLeader { .. } => None,
        }
    }
}
