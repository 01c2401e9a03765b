//! Running a phase: connect every thread to every shard, start the pinned
//! workers, show progress, merge their figures into a [`Report`].
//!
//! Workers send one [`IntervalStats`] per interval; the runner merges the
//! histograms of each interval across threads (percentiles always come
//! from merged histograms, never from averaged percentiles), prints a live
//! line per interval on stderr, and at the end folds every interval after
//! the warm-up into the totals.
//!
//! Where the shards are is a [`Topology`]: percore's, from the handshake or
//! a cluster file; a `redis://` target's, from the node's answer to
//! `CLUSTER SLOTS` (one shard per master of a Redis Cluster, or the one
//! server if it is standalone); a `memcached://` target is one server.
//! Each load thread connects to every shard and routes each key by slot.

use crate::history::{Header, HistorySink};
use crate::proto::percore::Percore;
use crate::report::{Report, RunConfigReport, ServerFigures, ShardFigures};
use crate::worker::{self, Endpoint, IntervalStats, Msg, Phase, WorkerError, WorkerSpec};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wire::client::{Client, Connection, Expect};
use wire::msg::ShardInfo;
use wire::{Cluster, Limits, ShardMap};

/// Which kind of server the load goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// percore itself: batches as frames, routed to each key's shard.
    Percore,
    /// A Redis (or Valkey) server, RESP, pipelined.
    Redis,
    /// A memcached server, meta protocol, pipelined.
    Memcached,
}

impl Peer {
    /// The name used in targets and reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Percore => "percore",
            Peer::Redis => "redis",
            Peer::Memcached => "memcached",
        }
    }

    /// The protocol the load travels in, for reports: `percore` (frames),
    /// `resp` or `memcache-meta`.
    pub fn protocol(self) -> &'static str {
        match self {
            Peer::Percore => "percore",
            Peer::Redis => "resp",
            Peer::Memcached => "memcache-meta",
        }
    }
}

/// Where the shards are. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct Topology {
    /// What the servers speak.
    pub peer: Peer,
    /// Slot → shard table.
    pub map: Arc<ShardMap>,
    /// Limits the servers enforce.
    pub limits: Limits,
    /// Where it came from (file or address), for the report.
    pub source: String,
    /// The secret every percore hello carries ([`wire::cluster::client_password`]
    /// finds it); `None` for Redis and memcached targets.
    pub password: Option<String>,
    /// Replicated shards (a cluster whose slot map lists replicas): the
    /// nodes to ask where a shard's leader is when its connection is lost,
    /// so a run follows failovers instead of ending. Empty: a lost
    /// connection ends the run.
    pub failover_seeds: Vec<String>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("peer", &self.peer)
            .field("map", &self.map)
            .field("limits", &self.limits)
            .field("source", &self.source)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Topology {
    /// Whether shards are replicated, so that a run follows their leaders:
    /// a Redis Cluster map that lists replicas, or a percore map whose
    /// shards name theirs.
    pub fn follows_leaders(&self) -> bool {
        !self.failover_seeds.is_empty() || self.map.shards().iter().any(|s| !s.replicas.is_empty())
    }

    /// From a cluster file; every hello carries `password`.
    pub fn from_cluster(c: &Cluster, password: Option<String>) -> Topology {
        Topology {
            peer: Peer::Percore,
            map: Arc::new(c.map.clone()),
            limits: c.limits,
            source: c.source.clone(),
            password,
            failover_seeds: Vec::new(),
        }
    }

    /// From a target URL: `percore://`, `redis://` or `memcached://HOST:PORT`;
    /// `redis-node://HOST:PORT` is one RESP node driven alone, never asked
    /// for a slot map: a client pinned to that node (a cluster node answers
    /// the keys it does not serve `-MOVED`, which are refusals).
    /// `password` is what a percore target's hellos carry (the others ignore it).
    pub fn from_url(url: &str, password: Option<String>, timeout: Duration) -> Result<Topology, RunError> {
        let (scheme, addr) = url.split_once("://").ok_or_else(|| {
            RunError::Config(format!("target {url:?}: expected redis://, memcached:// or percore://HOST:PORT"))
        })?;
        match scheme {
            "percore" => Ok(Topology::discover(addr, password, timeout)?),
            "redis" => Topology::redis(addr, timeout),
            "redis-node" => Topology::single(Peer::Redis, addr)
                .map(|t| Topology { source: format!("redis-node://{addr} (this node alone)"), ..t }),
            "memcached" | "memcache" => Topology::single(Peer::Memcached, addr),
            other => Err(RunError::Config(format!(
                "target {url:?}: unknown scheme {other:?} (redis, redis-node, memcached, percore)"
            ))),
        }
    }

    /// One Redis or memcached server at `addr` (`host:port`): one "shard"
    /// owning every slot.
    pub fn single(peer: Peer, addr: &str) -> Result<Topology, RunError> {
        let (host, port) = host_port(addr)?;
        let info = ShardInfo {
            id: 0,
            node: peer.name().to_string(),
            addr: host,
            port,
            cpu: 0,
            slots: vec![wire::msg::SlotRange { start: 0, end: (wire::slot::SLOTS - 1) as u16 }],
            replicas: Vec::new(),
            leader: 0,
        };
        let map = ShardMap::new(vec![info]).map_err(RunError::Config)?;
        let source = format!("{}://{addr}", peer.name());
        Ok(Topology {
            peer,
            map: Arc::new(map),
            limits: plain_limits(),
            source,
            password: None,
            failover_seeds: Vec::new(),
        })
    }

    /// A RESP server at `addr` (`host:port`), asked `CLUSTER SLOTS`: a
    /// Redis Cluster (or percore's RESP door) becomes one "shard" per
    /// master, owning the slots it serves, so each key goes straight to its
    /// node; a server that answers with an error (a standalone Redis: "ERR
    /// This instance has cluster support disabled") is driven alone, as
    /// [`Topology::single`].
    pub fn redis(addr: &str, timeout: Duration) -> Result<Topology, RunError> {
        let (host, _) = host_port(addr)?;
        let reply = crate::proto::cluster::query(addr, timeout)?;
        if let crate::proto::cluster::Value::Error(_) = reply {
            return Topology::single(Peer::Redis, addr);
        }
        let nodes = crate::proto::cluster::parse_cluster_slots(&reply, &host)
            .map_err(|source| RunError::ClusterSlots { addr: addr.to_string(), source })?;
        Topology::cluster(addr, &nodes)
    }

    /// A Redis Cluster of these masters (as [`crate::proto::cluster`] read
    /// them from `addr`): shard `i` is master `i`, named by its address.
    pub fn cluster(addr: &str, nodes: &[crate::proto::cluster::ClusterNode]) -> Result<Topology, RunError> {
        let shards = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ShardInfo {
                id: i as u32,
                node: n.addr(),
                addr: n.host.clone(),
                port: n.port,
                cpu: 0,
                slots: n.slots.clone(),
                replicas: Vec::new(),
                leader: 0,
            })
            .collect();
        let map = ShardMap::new(shards).map_err(|e| RunError::Config(format!("CLUSTER SLOTS from {addr}: {e}")))?;
        let source = format!("redis://{addr} (cluster of {} masters)", nodes.len());
        let mut failover_seeds = Vec::new();
        if nodes.iter().any(|n| !n.replicas.is_empty()) {
            for a in std::iter::once(addr.to_string())
                .chain(nodes.iter().flat_map(|n| std::iter::once(n.addr()).chain(n.replicas.iter().cloned())))
            {
                if !failover_seeds.contains(&a) {
                    failover_seeds.push(a);
                }
            }
        }
        Ok(Topology {
            peer: Peer::Redis,
            map: Arc::new(map),
            limits: plain_limits(),
            source,
            password: None,
            failover_seeds,
        })
    }

    /// Discovered through the handshake of one server; every hello
    /// carries `password`.
    pub fn discover(addr: &str, password: Option<String>, timeout: Duration) -> Result<Topology, wire::Error> {
        let mut client = Client::discover(addr, password.clone(), timeout)?;
        let limits = {
            let id = client.map().shard_of(b"");
            client.conn(id)?.limits()
        };
        let map = Arc::new(client.map().clone());
        Ok(Topology {
            peer: Peer::Percore,
            map,
            limits,
            source: addr.to_string(),
            password,
            failover_seeds: Vec::new(),
        })
    }

    /// The shards.
    pub fn shards(&self) -> &[ShardInfo] {
        self.map.shards()
    }
}

/// `host:port` split.
fn host_port(addr: &str) -> Result<(String, u16), RunError> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
        .ok_or_else(|| RunError::Config(format!("target {addr:?} is not HOST:PORT")))
}

/// The limits of a Redis or memcached target: neither has percore's frame
/// limits; values up to 1 MiB and batches of any size are fine for both.
fn plain_limits() -> Limits {
    Limits { max_frame_bytes: 64 << 20, max_ops_per_frame: u32::MAX, ..Limits::default() }
}

/// What to run.
#[derive(Clone, Debug)]
pub enum PhaseSpec {
    /// Insert every record once.
    Load,
    /// Read every record once (`percore loadgen verify`): what a store
    /// holds, e.g. after a restart, each value checked and, with a
    /// history, recorded for `percore check`.
    Verify,
    /// Run a workload.
    Run {
        /// YCSB mix.
        workload: crate::workload::Workload,
        /// Key distribution.
        dist: crate::zipf::DistName,
        /// Zipfian exponent.
        theta: f64,
        /// Open loop at this total rate (ops/s).
        rate: Option<f64>,
        /// Stop after this many operations in total.
        ops: Option<u64>,
    },
}

/// How to run it.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Load or run.
    pub phase: PhaseSpec,
    /// Records in the data set.
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Operations per batch.
    pub batch: usize,
    /// Batches in flight per connection.
    pub pipeline: usize,
    /// Send a partial batch after it waited this long.
    pub flush: Duration,
    /// One thread per entry, pinned to the CPU if given.
    pub cores: Vec<Option<usize>>,
    /// Writer id of thread 0; thread i writes as `writer_base + i`.
    pub writer_base: u32,
    /// Seed of thread 0's RNG (thread i uses `seed + i`).
    pub seed: u64,
    /// Time-bounded run length (after the warm-up).
    pub duration: Option<Duration>,
    /// Excluded from the figures.
    pub warmup: Duration,
    /// Reporting interval.
    pub interval: Duration,
    /// No reply for this long on a busy connection is an error.
    pub timeout: Duration,
    /// Record every operation to this file.
    pub history: Option<PathBuf>,
    /// Test aid: each load thread sleeps this long once a second.
    pub self_stall: Option<Duration>,
    /// This client's name (history header, report).
    pub node: String,
    /// Print a live line per interval on stderr.
    pub live: bool,
}

/// Why a run could not produce figures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Connecting or handshaking failed.
    #[error(transparent)]
    Connect(#[from] wire::Error),
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// A Redis Cluster's `CLUSTER SLOTS` reply gives no usable slot map.
    #[error("CLUSTER SLOTS from {addr}: {source}")]
    ClusterSlots {
        /// The node asked.
        addr: String,
        /// What is wrong with its reply.
        source: crate::proto::cluster::ClusterSlotsError,
    },
    /// The history file could not be written.
    #[error("history {path}: {source}")]
    History {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Per-interval merge of all workers' figures.
struct Agg {
    /// Workers that have sent this interval.
    reported: usize,
    /// Their figures, summed (histograms merged).
    stats: IntervalStats,
}

impl Agg {
    fn new(index: i64, shards: usize) -> Agg {
        Agg { reported: 0, stats: IntervalStats::new(0, index, shards) }
    }

    fn add(&mut self, s: &IntervalStats) {
        self.reported += 1;
        let t = &mut self.stats;
        let _ = t.get.add(&s.get);
        let _ = t.put.add(&s.put);
        let _ = t.lag.add(&s.lag);
        t.span_ns += s.span_ns;
        t.busy_ns += s.busy_ns;
        t.ops += s.ops;
        t.hits += s.hits;
        t.misses += s.misses;
        t.puts += s.puts;
        t.bad_reads += s.bad_reads;
        t.wrong_shard += s.wrong_shard;
        t.too_large += s.too_large;
        t.out_of_memory += s.out_of_memory;
        t.not_durable += s.not_durable;
        t.no_leader += s.no_leader;
        t.other_errors += s.other_errors;
        t.lost += s.lost;
        t.reconnects += s.reconnects;
        for (a, b) in t.per_shard.iter_mut().zip(&s.per_shard) {
            *a += b;
        }
        if t.first_bad.is_none() {
            t.first_bad.clone_from(&s.first_bad);
        }
        t.last_t = t.last_t.max(s.last_t);
    }
}

/// How long a phase's start waits for a replicated shard to have a leader
/// (or `--timeout`, if longer): a few election timeouts, so that a run
/// started during an election waits it out instead of failing.
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Opens one handshaken connection per shard for one worker; a replicated
/// shard's connection goes to its leader, waited for up to [`LEADER_WAIT`].
fn connect_percore(topo: &Topology, timeout: Duration) -> Result<Vec<Endpoint<Percore>>, wire::Error> {
    let total = topo.map.len() as u32;
    topo.shards()
        .iter()
        .map(|s| {
            if !s.replicas.is_empty() {
                // An election may be under way: ask again until one is won.
                let started = Instant::now();
                let mut turn = 0;
                loop {
                    match percore_leader(&topo.map, topo.password.as_deref(), &topo.limits, s.id, timeout, turn) {
                        Ok(ep) => return Ok(ep),
                        Err(Miss::Refused(e)) => return Err(e),
                        Err(Miss::NoLeader(last)) if started.elapsed() >= timeout.max(LEADER_WAIT) => {
                            return Err(wire::Error::NoLeader { shard: s.id, waited: started.elapsed(), last });
                        }
                        Err(Miss::NoLeader(_)) => std::thread::sleep(Duration::from_millis(100)),
                    }
                    turn += 1;
                }
            }
            let addr = format!("{}:{}", s.addr, s.port);
            let expect = Expect { shard: Some(s.id), total_shards: Some(total), password: topo.password.clone() };
            percore_endpoint(&addr, &s.node, expect, &topo.limits, timeout).map(|(ep, _)| ep)
        })
        .collect()
}

/// A handshaken percore connection to `addr`, made an endpoint for the
/// shard `expect` names, with the leader that shard's replica there knows
/// of (0: none, or not replicated).
fn percore_endpoint(
    addr: &str,
    node: &str,
    expect: Expect,
    server_limits: &Limits,
    timeout: Duration,
) -> Result<(Endpoint<Percore>, u32), wire::Error> {
    let shard = expect.shard.unwrap_or(0);
    let conn = Connection::connect(addr, expect, timeout)?;
    let limits = conn.limits();
    let leader = conn.hello().map.get(shard as usize).map_or(0, |s| s.leader);
    let stream = conn.into_stream();
    let io = |source| wire::Error::Io { addr: addr.to_string(), source };
    stream.set_read_timeout(None).map_err(io)?;
    stream.set_write_timeout(None).map_err(io)?;
    // Replies may be as large as the server's frames.
    let recv = Limits { max_frame_bytes: limits.max_frame_bytes.max(server_limits.max_frame_bytes), ..limits };
    let ep =
        Endpoint { proto: Percore::new(addr, recv), stream, shard, addr: addr.to_string(), node: node.to_string() };
    Ok((ep, leader))
}

/// Connects to the leader of replicated shard `id`: the replica the map
/// names first, then the others (from the `turn`-th on); each replica's
/// handshake says which member leads as far as it knows, and a replica that
/// names itself is taken. `Err` says what each try found, or the refusal
/// that asking again cannot change.
fn percore_leader(
    map: &ShardMap,
    password: Option<&str>,
    limits: &Limits,
    id: u32,
    timeout: Duration,
    turn: usize,
) -> Result<Endpoint<Percore>, Miss> {
    let info = map.shards().get(id as usize).ok_or_else(|| {
        Miss::Refused(wire::Error::Protocol { addr: String::new(), message: format!("shard {id} is not in the map") })
    })?;
    let n = info.replicas.len();
    let mut order: VecDeque<u32> = (0..n).map(|k| info.replicas[(turn + k) % n.max(1)].id).collect();
    if info.leader != 0 {
        order.push_front(info.leader);
    }
    let mut why = Vec::new();
    let mut tried = Vec::new();
    while let Some(member) = order.pop_front() {
        if tried.contains(&member) || tried.len() > 2 * n {
            continue;
        }
        tried.push(member);
        let Some(r) = info.replica(member) else { continue };
        let addr = format!("{}:{}", r.addr, r.port);
        let expect =
            Expect { shard: Some(id), total_shards: Some(map.len() as u32), password: password.map(str::to_string) };
        match percore_endpoint(&addr, &r.node, expect, limits, timeout) {
            Ok((ep, leader)) if leader == member => return Ok(ep),
            Ok((_, 0)) => why.push(format!("{addr}: knows no leader")),
            Ok((_, leader)) => {
                why.push(format!("{addr}: member {leader} leads"));
                order.push_front(leader);
                tried.retain(|&t| t != leader);
            }
            Err(e @ (wire::Error::Mismatch { .. } | wire::Error::Server { .. } | wire::Error::Limit(_))) => {
                return Err(Miss::Refused(e));
            }
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(Miss::NoLeader(why.join("; ")))
}

/// Why [`percore_leader`] found no leader.
enum Miss {
    /// None of the replicas leads now (an election, replicas down): what
    /// each try found. Asking again later may succeed.
    NoLeader(String),
    /// A replica refused the connection for good (wrong password, a map
    /// that disagrees, a limit): asking again would not help.
    Refused(wire::Error),
}

/// Failover for replicated percore shards: finds the shard's leader
/// through its replicas' handshakes ([`percore_leader`]), each bounded by
/// `timeout` (at most 500 ms), starting from another replica each time.
fn percore_redial(topo: &Topology, timeout: Duration) -> crate::worker::Redial<Percore> {
    let (map, password, limits) = (topo.map.clone(), topo.password.clone(), topo.limits);
    let ask = timeout.min(Duration::from_millis(500));
    let mut turn = 0usize;
    Box::new(move |shard| {
        turn = turn.wrapping_add(1);
        percore_leader(&map, password.as_deref(), &limits, shard, ask, turn).map_err(|m| match m {
            Miss::NoLeader(why) => why,
            Miss::Refused(e) => e.to_string(),
        })
    })
}

/// Opens one plain connection per shard of a Redis or memcached topology
/// (one server, or each master of a Redis Cluster) for one worker.
fn connect_plain<P>(
    topo: &Topology,
    timeout: Duration,
    proto: impl Fn() -> P,
) -> Result<Vec<Endpoint<P>>, wire::Error> {
    topo.shards()
        .iter()
        .map(|s| {
            let addr = format!("{}:{}", s.addr, s.port);
            let io = |source| wire::Error::Io { addr: addr.clone(), source };
            let sockaddr = std::net::ToSocketAddrs::to_socket_addrs(&addr).map_err(io)?.next().ok_or_else(|| {
                wire::Error::Protocol { addr: addr.clone(), message: "address resolves to nothing".into() }
            })?;
            let stream = std::net::TcpStream::connect_timeout(&sockaddr, timeout).map_err(io)?;
            stream.set_nodelay(true).map_err(io)?;
            Ok(Endpoint { proto: proto(), stream, shard: s.id, addr: addr.clone(), node: s.node.clone() })
        })
        .collect()
}

/// Runs a phase against `topo` and returns its report. `stop` ends it early
/// (the report then covers what was measured).
pub fn execute(topo: &Topology, cfg: &RunConfig, stop: Arc<AtomicBool>) -> Result<Report, RunError> {
    if cfg.cores.is_empty() {
        return Err(RunError::Config("no load threads (empty --cores)".into()));
    }
    if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&cfg.interval) {
        return Err(RunError::Config(format!("--interval {:?} must be within 10ms..=1h", cfg.interval)));
    }
    if cfg.value_size < crate::value::MIN_VALUE_LEN {
        return Err(RunError::Config(format!(
            "--value-size {} is below {} bytes, the smallest self-describing value",
            cfg.value_size,
            crate::value::MIN_VALUE_LEN
        )));
    }
    if cfg.value_size > topo.limits.max_value_len as usize {
        return Err(RunError::Config(format!(
            "--value-size {} exceeds the servers' max_value_len {}",
            cfg.value_size, topo.limits.max_value_len
        )));
    }
    if cfg.batch == 0 || cfg.batch > topo.limits.max_ops_per_frame as usize {
        return Err(RunError::Config(format!(
            "--batch {} must be within 1..={} (the servers' max_ops_per_frame)",
            cfg.batch, topo.limits.max_ops_per_frame
        )));
    }
    if cfg.pipeline == 0 {
        return Err(RunError::Config("--pipeline must be at least 1".into()));
    }
    if cfg.records == 0 || cfg.records > crate::history::MAX_KEY {
        return Err(RunError::Config(format!("--records must be within 1..={}", crate::history::MAX_KEY)));
    }
    // Every reply must fit in one frame: a batch of GETs whose values could
    // not all come back in one is made smaller (else the server would
    // answer the excess TooLarge, which is the client's doing, not its).
    let fitted;
    let cfg = match reply_fit(topo, cfg.value_size) {
        Some(fit) if topo.peer == Peer::Percore && cfg.batch > fit => {
            eprintln!(
                "loadgen: --batch {} lowered to {fit}: replies to {fit} GETs of {} B fill the servers' {}-byte frames",
                cfg.batch, cfg.value_size, topo.limits.max_frame_bytes
            );
            fitted = RunConfig { batch: fit, ..cfg.clone() };
            &fitted
        }
        _ => cfg,
    };
    let threads = cfg.cores.len();
    match topo.peer {
        Peer::Percore => {
            let endpoints = (0..threads).map(|_| connect_percore(topo, cfg.timeout)).collect::<Result<Vec<_>, _>>()?;
            // As for RESP below: a run follows replicated shards' leaders.
            let failover = matches!(cfg.phase, PhaseSpec::Run { .. }) && topo.follows_leaders();
            if failover {
                eprintln!("percore-loadgen: replicated shards: a lost leader is followed (asking its replicas)");
            }
            launch(topo, cfg, stop, endpoints, || failover.then(|| percore_redial(topo, cfg.timeout)))
        }
        Peer::Redis => {
            let endpoints = (0..threads)
                .map(|_| connect_plain(topo, cfg.timeout, crate::proto::resp::Resp::new))
                .collect::<Result<Vec<_>, _>>()?;
            // A replicated cluster's run follows its leaders (loading and
            // verifying must reach every record: a lost connection ends them).
            let failover = matches!(cfg.phase, PhaseSpec::Run { .. }) && !topo.failover_seeds.is_empty();
            if failover {
                eprintln!(
                    "percore-loadgen: replicated shards: a lost leader is followed (asking {})",
                    topo.failover_seeds.join(", ")
                );
            }
            launch(topo, cfg, stop, endpoints, || failover.then(|| redis_redial(topo, cfg.timeout)))
        }
        Peer::Memcached => {
            let endpoints = (0..threads)
                .map(|_| connect_plain(topo, cfg.timeout, crate::proto::memcache::Memcache::new))
                .collect::<Result<Vec<_>, _>>()?;
            launch(topo, cfg, stop, endpoints, || None)
        }
    }
}

/// Failover for a replicated RESP cluster: asks the seeds in turn (each
/// bounded by `timeout`, at most 500 ms) for `CLUSTER SLOTS` and connects
/// to the master it names for the shard's first slot.
fn redis_redial(topo: &Topology, timeout: Duration) -> crate::worker::Redial<crate::proto::resp::Resp> {
    use crate::proto::cluster;
    let seeds = topo.failover_seeds.clone();
    let map = topo.map.clone();
    let ask = timeout.min(Duration::from_millis(500));
    let mut turn = 0usize;
    Box::new(move |shard| {
        let slot = map
            .shards()
            .iter()
            .find(|s| s.id == shard)
            .and_then(|s| s.slots.first())
            .map(|r| r.start)
            .ok_or_else(|| format!("shard {shard} is not in the slot map"))?;
        turn = turn.wrapping_add(1);
        let mut why = Vec::new();
        for k in 0..seeds.len() {
            let seed = &seeds[(turn + k) % seeds.len()];
            let host = seed.rsplit_once(':').map_or(seed.as_str(), |(h, _)| h);
            let nodes = match cluster::query(seed, ask) {
                Ok(reply) => match cluster::parse_cluster_slots(&reply, host) {
                    Ok(nodes) => nodes,
                    Err(e) => {
                        why.push(format!("{seed}: CLUSTER SLOTS: {e}"));
                        continue;
                    }
                },
                Err(e) => {
                    why.push(e.to_string());
                    continue;
                }
            };
            let Some(master) = nodes.iter().find(|n| n.slots.iter().any(|r| r.start <= slot && slot <= r.end)) else {
                continue;
            };
            let addr = master.addr();
            let connected = std::net::ToSocketAddrs::to_socket_addrs(&addr)
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.next().ok_or_else(|| "resolves to nothing".to_string()))
                .and_then(|a| std::net::TcpStream::connect_timeout(&a, ask).map_err(|e| e.to_string()))
                .and_then(|s| s.set_nodelay(true).map(|()| s).map_err(|e| e.to_string()));
            match connected {
                Ok(stream) => {
                    return Ok(Endpoint {
                        stream,
                        proto: crate::proto::resp::Resp::new(),
                        shard,
                        addr: addr.clone(),
                        node: addr,
                    });
                }
                Err(e) => why.push(format!("{addr} (named leader by {seed}): {e}")),
            }
        }
        Err(why.join("; "))
    })
}

/// The most GETs of `value_size`-byte values whose replies fit in one of
/// the servers' frames (`None` if any number does).
fn reply_fit(topo: &Topology, value_size: usize) -> Option<usize> {
    let per_op = value_size + wire::codec::RESPONSE_ENTRY_LEN;
    let budget = wire::codec::ResponseEncoder::data_budget(topo.limits.max_frame_bytes as usize, 0);
    let fit = (budget / per_op).max(1);
    (fit < topo.limits.max_ops_per_frame as usize).then_some(fit)
}

/// Starts one worker per endpoint set, collects their figures, builds the report.
fn launch<P: crate::proto::Protocol + Send + 'static>(
    topo: &Topology,
    cfg: &RunConfig,
    stop: Arc<AtomicBool>,
    endpoints: Vec<Vec<Endpoint<P>>>,
    mut redial: impl FnMut() -> Option<crate::worker::Redial<P>>,
) -> Result<Report, RunError> {
    let threads = cfg.cores.len();
    let shards = topo.map.len();
    let (warmup, end) = match &cfg.phase {
        PhaseSpec::Load | PhaseSpec::Verify => (Duration::ZERO, None),
        PhaseSpec::Run { ops: Some(_), .. } => (cfg.warmup, cfg.duration.map(|d| cfg.warmup + d)),
        PhaseSpec::Run { ops: None, .. } => {
            (cfg.warmup, Some(cfg.warmup + cfg.duration.unwrap_or(Duration::from_secs(10))))
        }
    };
    // Built once, shared by every thread.
    let dist = match &cfg.phase {
        PhaseSpec::Run { dist, theta, .. } => {
            Some(crate::zipf::KeyDist::new(*dist, cfg.records, *theta).map_err(RunError::Config)?)
        }
        PhaseSpec::Load | PhaseSpec::Verify => None,
    };
    let (tx, rx) = mpsc::channel::<Msg>();
    let epoch = Instant::now();
    let sink = match &cfg.history {
        Some(path) => {
            let header = Header::now(&cfg.node, threads).on_this_machine(epoch);
            Some(
                HistorySink::create(path, &header)
                    .map_err(|source| RunError::History { path: path.display().to_string(), source })?,
            )
        }
        None => None,
    };
    let mut handles = Vec::new();
    for (i, eps) in endpoints.into_iter().enumerate() {
        let phase = match (&cfg.phase, &dist) {
            (PhaseSpec::Run { workload, rate, ops, .. }, Some(dist)) => Phase::Run {
                read_fraction: workload.read_fraction(),
                dist: dist.clone(),
                rate: rate.map(|r| r / threads as f64),
                ops: ops.map(|n| n / threads as u64 + u64::from((i as u64) < n % threads as u64)),
            },
            (PhaseSpec::Verify, _) => Phase::Verify { records: cfg.records },
            _ => Phase::Load { records: cfg.records },
        };
        let spec = WorkerSpec {
            index: i,
            threads,
            writer: cfg.writer_base + i as u32,
            cpu: cfg.cores[i],
            seed: cfg.seed.wrapping_add(i as u64),
            phase,
            batch: cfg.batch,
            pipeline: cfg.pipeline,
            flush: cfg.flush,
            value_size: cfg.value_size,
            max_frame: topo.limits.max_frame_bytes as usize,
            epoch,
            warmup_end: warmup,
            end,
            interval: cfg.interval,
            timeout: cfg.timeout,
            stop: stop.clone(),
            tx: tx.clone(),
            map: topo.map.clone(),
            history: sink.as_ref().and_then(|s| s.writer(i as u16)),
            self_stall: cfg.self_stall,
        };
        let redial = redial();
        let h = std::thread::Builder::new()
            .name(format!("percore-load{i}"))
            .spawn(move || worker::run(spec, eps, redial))
            .map_err(|e| RunError::Config(format!("cannot start a load thread: {e}")))?;
        handles.push(h);
    }
    drop(tx);

    let live = Live::new(cfg, end);
    let mut aggs: BTreeMap<i64, Agg> = BTreeMap::new();
    let mut printed = -2i64;
    let mut done = 0;
    let mut summaries = Vec::new();
    let mut error: Option<WorkerError> = None;
    while done < threads {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Interval(s)) => {
                let agg = aggs.entry(s.index).or_insert_with(|| Agg::new(s.index, shards));
                agg.add(&s);
                // Print every interval all threads have finished.
                while let Some((&k, a)) = aggs.range(printed + 1..).next() {
                    if a.reported < threads || k == i64::MAX {
                        break;
                    }
                    live.line(k, a, cfg.interval);
                    printed = k;
                }
            }
            Ok(Msg::Done { result, .. }) => {
                done += 1;
                match result {
                    Ok(s) => summaries.push(s),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        if error.is_none() {
                            eprintln!("percore-loadgen: {e}");
                            error = Some(e);
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => live.tick(epoch.elapsed()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for h in handles {
        let _ = h.join();
    }
    live.finish();
    let history_records = match sink {
        Some(s) => {
            let path = s.path().display().to_string();
            Some(s.close().map_err(|source| RunError::History { path, source })?)
        }
        None => None,
    };

    // Fold the measured intervals.
    let mut total = Agg::new(0, shards);
    let mut timeline = Vec::new();
    for (&k, a) in &aggs {
        if k < 0 || k == i64::MAX {
            continue;
        }
        total.add(&a.stats);
        let s = &a.stats;
        timeline.push(crate::report::Second {
            t_s: (k as f64 + 1.0) * cfg.interval.as_secs_f64(),
            ops_s: s.ops as f64 / cfg.interval.as_secs_f64(),
            get_p99_us: p99_us(&s.get),
            put_p99_us: p99_us(&s.put),
            lag_p99_us: p99_us(&s.lag),
            busy: busy_share(s),
            shard_ops_s: s.per_shard.iter().map(|&n| n as f64 / cfg.interval.as_secs_f64()).collect(),
        });
    }
    // Bad reads and first-bad descriptions from the warm-up and the drain count too.
    for (&k, a) in &aggs {
        if k < 0 || k == i64::MAX {
            total.stats.bad_reads += a.stats.bad_reads;
            if total.stats.first_bad.is_none() {
                total.stats.first_bad.clone_from(&a.stats.first_bad);
            }
        }
    }
    let window = match end {
        Some(end) if error.is_none() && !stop.load(Ordering::Relaxed) => end.saturating_sub(warmup),
        // Ops-bounded, stopped or failed: the measured span is up to the last completion.
        _ => Duration::from_nanos(total.stats.last_t.saturating_sub(warmup.as_nanos() as u64)),
    };
    let window_s = window.as_secs_f64().max(1e-9);
    let per_server = per_server(topo, &total.stats.per_shard, window_s);
    let cpu: Duration = summaries.iter().map(|s| s.cpu).sum();
    let issued: u64 = summaries.iter().map(|s| s.issued).sum();
    let s = &total.stats;
    let errors = s.refused() + u64::from(error.is_some());
    let report = Report {
        phase: match cfg.phase {
            PhaseSpec::Load => "load".into(),
            PhaseSpec::Verify => "verify".into(),
            PhaseSpec::Run { .. } => "run".into(),
        },
        throughput_ops_s: s.ops as f64 / window_s,
        ops: s.ops,
        duration_s: window_s,
        latency_us: crate::report::LatencyReport::from_histograms(&total.stats.get, &total.stats.put),
        histograms: None,
        hits: s.hits,
        misses: s.misses,
        puts: s.puts,
        bad_reads: s.bad_reads,
        first_bad_read: s.first_bad.clone(),
        errors,
        error_detail: crate::report::ErrorDetail {
            wrong_shard: s.wrong_shard,
            too_large: s.too_large,
            out_of_memory: s.out_of_memory,
            not_durable: s.not_durable,
            no_leader: s.no_leader,
            other: s.other_errors,
            connection: error.as_ref().map(|e| e.to_string()),
        },
        per_server,
        timeline,
        client_cpu_ns_per_op: (issued > 0).then(|| cpu.as_nanos() as f64 / issued as f64),
        client_lag_us: crate::report::Percentiles::of(&s.lag),
        client_busy: busy_share(s),
        // A run that follows replicated shards' leaders says so, even when
        // no leader changed.
        failover: (matches!(cfg.phase, PhaseSpec::Run { .. }) && topo.follows_leaders())
            .then_some(crate::report::FailoverReport { lost_in_flight: s.lost, reconnects: s.reconnects }),
        issued,
        history: cfg.history.as_ref().map(|p| crate::report::HistoryReport {
            path: p.display().to_string(),
            records: history_records.unwrap_or(0),
        }),
        config: RunConfigReport::new(cfg, topo),
        server: None,
        check: None,
        histograms_v2: match (
            crate::report::encode_histogram(&total.stats.get),
            crate::report::encode_histogram(&total.stats.put),
        ) {
            (Some(get), Some(put)) => Some(crate::report::EncodedHistograms { get, put }),
            _ => None,
        },
    };
    if let Some(warning) = report.client_behind() {
        eprintln!("percore-loadgen: {warning}");
    }
    let stats = total.stats;
    Ok(Report { histograms: Some(crate::report::Histograms { get: stats.get, put: stats.put }), ..report })
}

/// The 99th percentile of a histogram of nanoseconds, in µs.
fn p99_us(h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1e3)
}

/// The share of the load threads' time spent working (0 to 1).
fn busy_share(s: &IntervalStats) -> Option<f64> {
    (s.span_ns > 0).then(|| s.busy_ns as f64 / s.span_ns as f64)
}

fn per_server(topo: &Topology, per_shard: &[u64], window_s: f64) -> Vec<ServerFigures> {
    let mut servers: Vec<ServerFigures> = Vec::new();
    for (s, &ops) in topo.shards().iter().zip(per_shard) {
        let fig = ShardFigures { shard: s.id, addr: format!("{}:{}", s.addr, s.port), ops_s: ops as f64 / window_s };
        match servers.iter_mut().find(|f| f.node == s.node) {
            Some(f) => {
                f.ops_s += fig.ops_s;
                f.shards.push(fig);
            }
            None => servers.push(ServerFigures { node: s.node.clone(), ops_s: fig.ops_s, shards: vec![fig] }),
        }
    }
    servers
}

/// The live line per interval (stderr), and a progress bar on terminals.
struct Live {
    enabled: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Live {
    fn new(cfg: &RunConfig, end: Option<Duration>) -> Live {
        let bar = (cfg.live && std::io::stderr().is_terminal()).then(|| {
            let total = end.map(|d| d.as_millis() as u64).unwrap_or(0);
            let bar =
                if total > 0 { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::new_spinner() };
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Live { enabled: cfg.live, bar }
    }

    fn tick(&self, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(elapsed.as_millis() as u64);
        }
    }

    fn line(&self, k: i64, a: &Agg, interval: Duration) {
        if !self.enabled {
            return;
        }
        let secs = interval.as_secs_f64();
        let p99 = |h: &Histogram<u64>| p99_us(h).map_or("-".to_string(), |v| format!("{v:.1}"));
        let s = &a.stats;
        let what = if k < 0 { "warm-up".to_string() } else { format!("{:>4.0}s", (k as f64 + 1.0) * secs) };
        // Open loop: how late the client sent (p99), then how busy it was.
        let lag = if s.lag.is_empty() { String::new() } else { format!(" lag {:>7}", p99(&s.lag)) };
        let busy = busy_share(s).map(|b| format!("  busy {:>3.0}%", b * 100.0)).unwrap_or_default();
        let line = format!(
            "{what} ops/s {:>11.0}  p99 µs get {:>8} put {:>8}{lag}  bad {} err {}{busy}",
            s.ops as f64 / secs,
            p99(&a.stats.get),
            p99(&a.stats.put),
            s.bad_reads,
            s.refused()
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
