//! One shard: its executor's state, its accept loop, and its orderly stop.
//!
//! A [`Shard`] is created inside its executor thread and never leaves it
//! (`Rc`, `Cell`, `RefCell`: single-threaded by construction). It owns the
//! store, the counters, the set of slots it serves and the registry of its
//! open connections. [`run`] is the executor's main future: it accepts
//! connections, publishes counters, and on stop closes the listener, lets
//! every connection finish the frames it has read, and returns.

use crate::conn;
use crate::options::ServerOptions;
use crate::stats::{PUBLISH_EVERY, Published};
use crate::store::Store;
use glommio::net::TcpListener;
use glommio::sync::Gate;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wire::Limits;
use wire::cluster::SlotSet;
use wire::msg::ShardCounters;

/// Everything one shard needs, owned by its executor thread: what it was
/// built from ([`ShardSetup`], reached through `Deref`: `shard.id`,
/// `shard.limits`, …) and its mutable state.
pub(crate) struct Shard {
    /// Identity, limits, options, slots, handshake reply.
    setup: ShardSetup,
    /// The map.
    pub store: RefCell<Store>,
    /// Counters, updated once per batch.
    pub counters: Cell<ShardCounters>,
    /// Open connections' sockets, so a stop can end their reads.
    conns: RefCell<HashMap<u64, RawFd>>,
    next_conn: Cell<u64>,
    /// Set when the node stops: connections finish what they have read and close.
    pub stopping: Cell<bool>,
    /// When the shard started.
    pub started: Instant,
    /// Fault-switch state (see [`crate::options::Fault`]).
    pub faults: crate::fault::FaultState,
}

impl std::ops::Deref for Shard {
    type Target = ShardSetup;
    fn deref(&self) -> &ShardSetup {
        &self.setup
    }
}

/// What a shard is built from, handed to its executor thread.
pub(crate) struct ShardSetup {
    /// Global shard id.
    pub id: u32,
    /// Total shards in the cluster.
    pub total_shards: u32,
    /// CPU it is pinned to.
    pub cpu: u32,
    /// Node name (for stats replies and messages).
    pub node: String,
    /// `addr:port` it serves (for messages).
    pub endpoint: String,
    /// Limits enforced on every frame.
    pub limits: Limits,
    /// Node options.
    pub opts: ServerOptions,
    /// Slots this shard serves; other keys get WrongShard.
    pub owned: SlotSet,
    /// The handshake reply frame, encoded once (it is the same for every client).
    pub hello_reply: Vec<u8>,
}

impl Shard {
    pub(crate) fn new(setup: ShardSetup) -> Shard {
        Shard {
            store: RefCell::new(Store::with_capacity(setup.opts.capacity)),
            faults: crate::fault::FaultState::new(setup.opts.fault),
            setup,
            counters: Cell::new(ShardCounters::default()),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            stopping: Cell::new(false),
            started: Instant::now(),
        }
    }

    /// Applies `f` to the counters.
    #[inline]
    pub fn count(&self, f: impl FnOnce(&mut ShardCounters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    /// The counters with the store's gauges filled in.
    pub fn snapshot(&self) -> ShardCounters {
        let mut c = self.counters.get();
        let store = self.store.borrow();
        c.keys = store.len() as u64;
        let m = store.memory();
        c.store_bytes = (m.slab_bytes + m.table_bytes) as u64;
        c
    }

    /// Records an open connection; returns its token.
    pub fn register(&self, fd: RawFd) -> u64 {
        let token = self.next_conn.get();
        self.next_conn.set(token + 1);
        self.conns.borrow_mut().insert(token, fd);
        self.count(|c| {
            c.connections_open += 1;
            c.connections_total += 1;
        });
        token
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, token: u64) {
        self.conns.borrow_mut().remove(&token);
        self.count(|c| c.connections_open -= 1);
    }

    /// Ends the read side of every open connection: each sees end-of-stream
    /// after the bytes it already has, answers the whole frames among them,
    /// and closes.
    fn end_reads(&self) {
        for &fd in self.conns.borrow().values() {
            // SAFETY: `fd` belongs to a live connection (unregistered before
            // its stream is dropped); shutdown(2) does not free it.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
        }
    }
}

/// The executor's main future.
pub(crate) async fn run(
    setup: ShardSetup,
    listener: std::net::TcpListener,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
) {
    let shard = Rc::new(Shard::new(setup));
    // SAFETY: the descriptor comes from a bound, listening std listener
    // whose ownership `into_raw_fd` hands over.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let gate = Gate::new();
    let accept = glommio::spawn_local(accept_loop(listener, shard.clone(), gate.clone()));
    while !stop.load(Ordering::Relaxed) {
        published.store(&shard.snapshot());
        glommio::timer::sleep(PUBLISH_EVERY).await;
    }
    shard.stopping.set(true);
    accept.cancel().await;
    shard.end_reads();
    // Connections opened between the snapshot above and now also stop.
    let _ = gate.close().await;
    published.store(&shard.snapshot());
    published.finish();
}

async fn accept_loop(listener: TcpListener, shard: Rc<Shard>, gate: Gate) {
    let mut warned = false;
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let open = shard.counters.get().connections_open as usize;
                let task = if open >= shard.opts.max_connections {
                    gate.spawn(conn::refuse_busy(shard.clone(), stream))
                } else {
                    gate.spawn(conn::serve(shard.clone(), stream))
                };
                if let Ok(task) = task {
                    task.detach();
                }
            }
            Err(e) => {
                // Out of descriptors and the like: say so once, back off, go on.
                if !warned {
                    eprintln!("percore-server: shard {} ({}): accept failed: {e}", shard.id, shard.endpoint);
                    warned = true;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
