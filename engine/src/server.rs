//! A node: bind every shard's port, start one pinned executor per shard,
//! print the node's rates once a second, stop in order.
//!
//! [`bind`] and [`serve`] are the server as functions, so tests can run it
//! in-process and the binary stays a thin wrapper. Start-up checks happen
//! before any executor starts: the node must be in the cluster file, every
//! CPU must be available, and every port must be free (glommio's own
//! `TcpListener::bind` sets `SO_REUSEPORT`, which would let a second server
//! silently share a port, so percore binds the sockets itself without it).

use crate::options::ServerOptions;
use crate::shard::{self, ShardSetup};
use crate::stats::Published;
use glommio::{LocalExecutorBuilder, Placement};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wire::Cluster;
use wire::cluster::{ConfigError, available_cpus, format_cpu_list};
use wire::codec::encode;
use wire::frame::{Kind, PROTOCOL_VERSION};
use wire::msg::{HelloReply, ShardCounters};

/// Why a node could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The cluster file or node name is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another process holds the port.
    #[error("{endpoint} is already in use (another percore-server?)")]
    PortInUse {
        /// `addr:port`.
        endpoint: String,
    },
    /// The socket could not be bound for another reason.
    #[error("cannot listen on {endpoint}: {source}")]
    Bind {
        /// `addr:port`.
        endpoint: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A configured CPU does not exist or is not allowed to this process.
    #[error("CPU {cpu} is not available to this process (available: {available})")]
    Cpu {
        /// The CPU asked for.
        cpu: u32,
        /// The CPUs this process may use.
        available: String,
    },
    /// glommio could not build an executor.
    #[error("cannot start the executor for shard {shard} on CPU {cpu}: {message}")]
    Executor {
        /// Shard id.
        shard: u32,
        /// Its CPU.
        cpu: u32,
        /// glommio's message.
        message: String,
    },
}

/// What a node did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// `(shard id, cpu, counters)` per local shard.
    pub shards: Vec<(u32, u32, ShardCounters)>,
    /// How long the node ran.
    pub uptime: Duration,
}

impl NodeReport {
    /// The counters summed over the node's shards.
    pub fn total(&self) -> ShardCounters {
        let mut t = ShardCounters::default();
        for (_, _, c) in &self.shards {
            t += *c;
        }
        t
    }
}

/// How much longer than its shutdown timeout a node waits for its shards.
const STOP_SLACK: Duration = Duration::from_secs(2);

/// One shard's share of the node's `maxmemory`.
fn memory_limit(maxmemory: Option<u64>, shards: usize) -> Option<usize> {
    maxmemory.map(|m| (m / shards.max(1) as u64).min(usize::MAX as u64) as usize)
}

/// Checks the node's CPUs and binds one listening socket per shard, in
/// local shard order. Nothing is started.
pub fn bind(cluster: &Cluster, node: &str) -> Result<Vec<TcpListener>, StartError> {
    let server = cluster.server(node)?;
    check_cpus(server)?;
    (0..server.cores.len()).map(|i| bind_one(&server.listen, cluster.local_shard(server, i).port)).collect()
}

/// Binds a replicated node's peer ports, one per shard in local shard
/// order (none when the cluster's `replicas` is 1).
pub fn bind_peers(cluster: &Cluster, node: &str) -> Result<Vec<TcpListener>, StartError> {
    let server = cluster.server(node)?;
    if cluster.replicas == 1 {
        return Ok(Vec::new());
    }
    (0..server.cores.len()).map(|i| bind_one(&server.listen, server.peer_port + i as u16)).collect()
}

/// Raises this process's open-file limit to its hard limit if `needed`
/// descriptors would not fit under the soft one; says so if even the hard
/// limit is too low (connections past it fail to be accepted, and the
/// shard says so once).
pub fn fit_fd_limit(needed: usize) -> Result<(), String> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write and read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err("cannot read the open-file limit".into());
        }
        if (lim.rlim_cur as usize) < needed && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    if (lim.rlim_cur as usize) < needed {
        return Err(format!(
            "open-file limit {} is below the {needed} descriptors max_connections allows (ulimit -n)",
            lim.rlim_cur
        ));
    }
    Ok(())
}

/// Checks that every CPU of `server` exists and is allowed to this process.
pub fn check_cpus(server: &wire::cluster::Server) -> Result<(), StartError> {
    let available = available_cpus();
    for &cpu in &server.cores {
        if !available.contains(&cpu) {
            return Err(StartError::Cpu { cpu, available: format_cpu_list(&available) });
        }
    }
    Ok(())
}

/// Binds `addr:port` without `SO_REUSEPORT`, so a taken port is an error.
pub fn bind_one(addr: &str, port: u16) -> Result<TcpListener, StartError> {
    bind_with_backlog(addr, port, 1024)
}

/// [`bind_one`] with a listen backlog of `backlog` connections.
pub fn bind_with_backlog(addr: &str, port: u16, backlog: i32) -> Result<TcpListener, StartError> {
    let endpoint = format!("{addr}:{port}");
    let sockaddr: SocketAddr = (addr, port)
        .to_socket_addrs()
        .map_err(|source| StartError::Bind { endpoint: endpoint.clone(), source })?
        .next()
        .ok_or_else(|| StartError::Bind {
            endpoint: endpoint.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing"),
        })?;
    let domain = socket2::Domain::for_address(sockaddr);
    let bind_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            StartError::PortInUse { endpoint: endpoint.clone() }
        } else {
            StartError::Bind { endpoint: endpoint.clone(), source }
        }
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP)).map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.bind(&sockaddr.into()).map_err(bind_err)?;
    socket.listen(backlog).map_err(bind_err)?;
    Ok(socket.into())
}

/// The RESP door's parser limits from the node's settings: a command may
/// take the larger of a frame and the longest bulk plus 64 KiB of headers.
fn resp_limits(cluster: &Cluster, opts: &ServerOptions) -> wire::resp::RespLimits {
    let bulk = opts.limits.proto_max_bulk_len as usize;
    wire::resp::RespLimits {
        max_bulk_len: bulk,
        max_multibulk_len: opts.limits.max_multibulk_len as usize,
        max_command_bytes: (cluster.limits.max_frame_bytes as usize).max(bulk + (64 << 10)),
        ..wire::resp::RespLimits::default()
    }
}

/// What shard `id` of `server`, pinned to `cpu`, is built from: its
/// identity, limits, slots, encoded handshake reply and RESP door (the one
/// place this is assembled: [`serve`], and the RESP model's harness).
pub(crate) fn shard_setup(
    cluster: &Cluster,
    server: &wire::cluster::Server,
    id: u32,
    cpu: u32,
    opts: &ServerOptions,
) -> Result<ShardSetup, String> {
    let total_shards = cluster.map.len() as u32;
    let i = id.checked_sub(server.shards.start).filter(|&i| (i as usize) < server.cores.len());
    let info = &cluster.local_shard(server, i.ok_or_else(|| format!("no shard {id} on {}", server.name))? as usize);
    let reply = HelloReply {
        protocol: PROTOCOL_VERSION,
        shard: id,
        total_shards,
        node: server.name.clone(),
        limits: cluster.limits.into(),
        map: cluster.map.shards().to_vec(),
    };
    let mut hello_reply = Vec::new();
    encode(Kind::HelloReply, &reply, &mut hello_reply)
        .map_err(|e| format!("cannot encode the handshake reply: {e}"))?;
    Ok(ShardSetup {
        id,
        total_shards,
        cpu,
        node: server.name.clone(),
        endpoint: format!("{}:{}", info.addr, info.port),
        limits: cluster.limits,
        opts: opts.clone(),
        memory_limit: memory_limit(opts.limits.maxmemory, server.cores.len()),
        owned: cluster.map.owned_slots(id),
        hello_reply,
        hello: reply,
        resp: crate::resp::RespNode::new(
            id,
            cluster.map.shards(),
            &(0..total_shards).map(|g| cluster.members(g)).collect::<Vec<_>>(),
            resp_limits(cluster, opts),
            opts,
            cluster.limits,
        ),
        layout: {
            let slots = info.slots.iter().map(|r| format!("{}-{}", r.start, r.end)).collect::<Vec<_>>().join(",");
            let members = cluster.members(id);
            let me = members.iter().find(|m| m.node == server.name).map_or(0, |m| m.id);
            match members.len() {
                0 => crate::log::layout_text(total_shards, id, &slots),
                n => format!("{}; replica {me} of {n}", crate::log::layout_text(total_shards, id, &slots)),
            }
        },
        replication: None,
    })
}

/// Runs the node's shards on the bound `listeners` until `stop` is set, then
/// stops them in order and returns their final counters. Rate lines go to
/// `out` once per `opts.stats_interval`; `ready` is called once every shard
/// is accepting.
pub fn serve(
    cluster: &Cluster,
    node: &str,
    listeners: Vec<TcpListener>,
    opts: &ServerOptions,
    stop: Arc<AtomicBool>,
    out: &mut dyn Write,
    ready: impl FnOnce(&[(u32, u32, SocketAddr)]),
) -> Result<NodeReport, StartError> {
    let server = cluster.server(node)?.clone();
    let started = Instant::now();
    let metrics = opts.metrics_port.map(|port| crate::metrics::bind(&server.listen, port)).transpose()?;
    let (tx, rx) = mpsc::channel::<Result<(), (u32, u32, String)>>();
    let mut threads = Vec::new();
    let mut published = Vec::new();
    let mut endpoints = Vec::new();
    let mut peer_listeners = bind_peers(cluster, node)?.into_iter();
    for (i, ((id, &cpu), listener)) in server.shards.clone().zip(&server.cores).zip(listeners).enumerate() {
        let info = cluster.local_shard(&server, i);
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { endpoint: format!("{}:{}", server.listen, info.port), source })?;
        endpoints.push((id, cpu, local));
        let mut setup = shard_setup(cluster, &server, id, cpu, opts).map_err(|message| StartError::Executor {
            shard: id,
            cpu,
            message,
        })?;
        let members = cluster.members(id);
        if let (Some(me), Some(peer_listener)) =
            (members.iter().find(|m| m.node == server.name).map(|m| m.id), peer_listeners.next())
        {
            let first_leader = cluster.map.shards()[id as usize].node.clone();
            let first_leader = members.iter().find(|m| m.node == first_leader).map_or(1, |m| m.id);
            setup.replication = Some(crate::replica::group::ReplicationSetup {
                members,
                me,
                first_leader,
                peer_listener,
                tick: opts.raft_tick,
                read_lease: opts.read_lease,
                joining: opts.join,
            });
        }
        let pubslot = Arc::new(Published::default());
        published.push((id, cpu, pubslot.clone()));
        let tx = tx.clone();
        let shard_stop = stop.clone();
        let (io_memory, preempt, spin) = (opts.io_memory, opts.preempt_timer, opts.spin_before_park);
        let spawned = std::thread::Builder::new().name(format!("percore-shard{id}")).spawn(move || {
            let builder = shard_executor(id, cpu, io_memory, preempt, spin);
            match builder.make() {
                Ok(executor) => {
                    let started = move |r: Result<(), String>| {
                        let _ = tx.send(r.map_err(|message| (id, cpu, message)));
                    };
                    executor.run(shard::run(setup, listener, pubslot, shard_stop, started));
                }
                Err(e) => {
                    let _ = tx.send(Err((id, cpu, e.to_string())));
                }
            }
        });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(StartError::Executor { shard: id, cpu, message: e.to_string() });
            }
        }
    }
    drop(tx);
    let mut failure = None;
    for _ in 0..threads.len() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err((shard, cpu, message))) => {
                failure.get_or_insert(StartError::Executor { shard, cpu, message });
            }
            Err(_) => {
                failure.get_or_insert(StartError::Executor {
                    shard: u32::MAX,
                    cpu: u32::MAX,
                    message: "an executor did not start within 30 s".into(),
                });
                break;
            }
        }
    }
    if let Some(err) = failure {
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        return Err(err);
    }
    ready(&endpoints);
    let metrics = metrics.and_then(|l| crate::metrics::Metrics::spawn(l, &server.name, started, &published, out));
    report_until_stopped(&server.name, &published, opts.stats_interval, &stop, out);
    // Each shard stops within the shutdown timeout (its connections are cut
    // at the deadline); wait a little longer than that, never forever.
    let wait_until = Instant::now() + opts.limits.shutdown_timeout + STOP_SLACK;
    while published.iter().any(|(_, _, p)| !p.is_done()) && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stuck = Vec::new();
    for (t, (id, _, p)) in threads.into_iter().zip(&published) {
        if p.is_done() {
            let _ = t.join();
        } else {
            stuck.push(id.to_string());
        }
    }
    if !stuck.is_empty() {
        let _ = writeln!(
            out,
            "percore-server: node {}: shard(s) {} did not stop within the shutdown timeout; exiting without them",
            server.name,
            stuck.join(", ")
        );
    }
    drop(metrics);
    let report = NodeReport {
        shards: published.iter().map(|(id, cpu, p)| (*id, *cpu, p.load())).collect(),
        uptime: started.elapsed(),
    };
    print_final(&server.name, &report, out);
    Ok(report)
}

/// Prints the rate lines once per interval until `stop` is set.
fn report_until_stopped(
    node: &str,
    published: &[(u32, u32, Arc<Published>)],
    interval: Option<Duration>,
    stop: &AtomicBool,
    out: &mut dyn Write,
) {
    let mut last_at = Instant::now();
    let mut last: Vec<ShardCounters> = published.iter().map(|(_, _, p)| p.load()).collect();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if published.iter().any(|(_, _, p)| p.is_done()) {
            // A shard stopped by itself: that is a bug; stop the node loudly.
            let _ = writeln!(out, "percore-server: node {node}: a shard stopped unexpectedly; stopping");
            stop.store(true, Ordering::Relaxed);
            break;
        }
        let Some(interval) = interval else { continue };
        let elapsed = last_at.elapsed();
        if elapsed < interval {
            continue;
        }
        last_at = Instant::now();
        let now: Vec<ShardCounters> = published.iter().map(|(_, _, p)| p.load()).collect();
        let secs = elapsed.as_secs_f64();
        let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs;
        let (mut ops, mut gets, mut puts) = (0.0, 0.0, 0.0);
        for (n, l) in now.iter().zip(&last) {
            ops += rate(n.ops, l.ops);
            gets += rate(n.gets, l.gets);
            puts += rate(n.puts, l.puts);
        }
        let mut text = format!("ops/s {ops:.0}\nget/s {gets:.0}\nput/s {puts:.0}\n");
        for ((id, cpu, _), (n, l)) in published.iter().zip(now.iter().zip(&last)) {
            text.push_str(&format!(
                "core {cpu} shard {id}: ops/s {:.0} get/s {:.0} put/s {:.0} del/s {:.0} miss/s {:.0} in MB/s {:.1} out MB/s {:.1} conns {} keys {}\n",
                rate(n.ops, l.ops),
                rate(n.gets, l.gets),
                rate(n.puts, l.puts),
                rate(n.deletes, l.deletes),
                rate(n.misses, l.misses),
                rate(n.bytes_in, l.bytes_in) / 1e6,
                rate(n.bytes_out, l.bytes_out) / 1e6,
                n.connections_open,
                n.keys,
            ));
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        last = now;
    }
}

fn print_final(node: &str, report: &NodeReport, out: &mut dyn Write) {
    let t = report.total();
    let mut text = format!(
        "final node {node}: uptime {:.1} s ops {} gets {} puts {} deletes {} misses {} wrong_shard {} out_of_memory {} keys {} connections {} protocol_errors {} refused {} evicted {} handshake_timeouts {} frame_timeouts {} idle_timeouts {} write_timeouts {} bytes_in {} bytes_out {}\n",
        report.uptime.as_secs_f64(),
        t.ops,
        t.gets,
        t.puts,
        t.deletes,
        t.misses,
        t.wrong_shard,
        t.out_of_memory,
        t.keys,
        t.connections_total,
        t.protocol_errors,
        t.connections_refused,
        t.connections_evicted,
        t.handshake_timeouts,
        t.frame_timeouts,
        t.idle_timeouts,
        t.write_timeouts,
        t.bytes_in,
        t.bytes_out,
    );
    for (id, cpu, c) in &report.shards {
        text.push_str(&format!(
            "final core {cpu} shard {id}: ops {} gets {} puts {} deletes {} keys {} store_bytes {}\n",
            c.ops, c.gets, c.puts, c.deletes, c.keys, c.store_bytes
        ));
    }
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The executor builder of shard `id` on `cpu`: pinned there, with the
/// node's io memory, preempt timer and spin; its blocking thread pool
/// (where the log's syncs run, see `log::sync_off_core`) is left unpinned,
/// so that a sync never waits for the shard's own busy CPU.
fn shard_executor(
    id: u32,
    cpu: u32,
    io_memory: usize,
    preempt: std::time::Duration,
    spin: Option<std::time::Duration>,
) -> LocalExecutorBuilder {
    let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu as usize))
        .name(&format!("shard{id}"))
        .io_memory(io_memory)
        .preempt_timer(preempt)
        .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(1));
    match spin {
        Some(spin) => builder.spin_before_park(spin),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_cpus() -> usize {
        // SAFETY: a zeroed cpu_set_t is a valid empty set, filled by the call.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
            libc::CPU_COUNT(&set) as usize
        }
    }

    /// The log's syncs run on the blocking pool: it must not be pinned to
    /// the shard's CPU (glommio's default pins it with the executor).
    #[test]
    fn a_shards_blocking_pool_is_not_pinned_to_its_cpu() {
        let here = allowed_cpus();
        if here < 2 {
            eprintln!("skipped: this process may run on one CPU only");
            return;
        }
        let ex = shard_executor(0, 0, 256 << 10, std::time::Duration::from_millis(100), None).make().expect("executor");
        let (on_shard, on_pool) = ex.run(async {
            let pool = glommio::executor().spawn_blocking(allowed_cpus).await;
            (allowed_cpus(), pool)
        });
        assert_eq!(on_shard, 1, "the shard thread is pinned to its CPU");
        assert!(on_pool > 1, "the blocking pool may run on {on_pool} CPU(s) only");
    }
}
