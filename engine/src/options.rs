//! Tuning of a running server: its resource limits, executor settings, and
//! the test-only fault switches. Everything here has a documented default;
//! the cluster-wide settings (topology, frame limits) live in the cluster
//! file, whose `[limits]` table also gives the resource limits that the
//! command line may override.

use std::time::Duration;
use wire::ServerLimits;

/// Per-node server options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Timeouts, connection cap and memory limit (see [`ServerLimits`]:
    /// each is a deadline or a cap a peer cannot reset).
    pub limits: ServerLimits,
    /// How often the node prints its `ops/s` lines; `None` prints none.
    pub stats_interval: Option<Duration>,
    /// Keys each shard's table is sized for at start (avoids rehash pauses
    /// while a benchmark loads).
    pub capacity: usize,
    /// io_uring registered memory per executor. percore does no file I/O,
    /// so a little suffices, which keeps every executor inside an 8 MiB
    /// memlock limit.
    pub io_memory: usize,
    /// glommio preemption timer: how long a task queue runs before the
    /// reactor polls for completions again. percore keeps glommio's 100 ms:
    /// with 500 µs, about one run in six of the benchmark test suite (five
    /// servers sharing CPU 0) hit an executor that stopped running its tasks
    /// for seconds; with 100 ms, none in forty. Connections yield to each
    /// other explicitly instead (see the connection loop).
    pub preempt_timer: Duration,
    /// Spin this long before an idle executor parks (lower wake-up latency
    /// at the cost of CPU); `None` parks at once.
    pub spin_before_park: Option<Duration>,
    /// Fault switch (only honoured in builds with the `faults` feature).
    pub fault: Fault,
    /// The secret clients must present (RESP `AUTH`, the percore hello);
    /// `None`: no authentication.
    pub requirepass: Option<String>,
    /// Port of the node's Prometheus endpoint; `None`: off.
    pub metrics_port: Option<u16>,
    /// The durable log's settings; `None`: in memory only (as fast as
    /// ever: the store keeps no journal).
    pub durability: Option<crate::log::Durability>,
    /// Time between Raft ticks of a replicated shard: elections start after
    /// 10 to 20 ticks without a leader's word, heartbeats go every 2.
    pub raft_tick: Duration,
    /// Replicated shards serve reads on a leader lease (`--read-lease`:
    /// rests on clocks and on the leader never pausing) instead of a
    /// ReadIndex round.
    pub read_lease: bool,
    /// This node's replicas join running groups (`--join`): they start
    /// without a membership and wait to be added (`percore members`) and
    /// sent the leader's snapshot. Ignored for a replica that has one.
    pub join: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: ServerLimits::default(),
            stats_interval: Some(Duration::from_secs(1)),
            capacity: 0,
            io_memory: 512 << 10,
            preempt_timer: Duration::from_millis(100),
            spin_before_park: None,
            fault: Fault::None,
            requirepass: None,
            metrics_port: None,
            durability: None,
            raft_tick: crate::replica::group::TICK,
            read_lease: false,
            join: false,
        }
    }
}

/// Deliberate misbehaviour, for proving that percore's checks catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Flip a bit in every 64th GET reply's value.
    CorruptValues,
    /// Remember each key's previous value and return it instead of the
    /// current one on every 16th GET of a key that has one.
    StaleReads,
    /// Block the shard's core for 50 ms once a second (a server stall).
    Stall,
    /// A replicated shard's follower answers GETs through the RESP door
    /// from its own store, confirming no leadership: the stale-read bug
    /// Jepsen found in other replicated stores, for the nemesis to catch.
    FollowerReads,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Fault::None),
            "corrupt-values" => Ok(Fault::CorruptValues),
            "stale-reads" => Ok(Fault::StaleReads),
            "stall" => Ok(Fault::Stall),
            "follower-reads" => Ok(Fault::FollowerReads),
            _ => Err(format!("unknown fault {s:?} (none, corrupt-values, stale-reads, stall, follower-reads)")),
        }
    }
}
