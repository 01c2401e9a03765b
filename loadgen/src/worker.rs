//! One load thread: pinned to its CPU, with its own RNG, its own connection
//! to every shard and its own histograms — shared-nothing on the client too.
//!
//! # The loop
//!
//! Operations are drawn one at a time, routed by `wire`'s slot table to
//! their shard's connection and written straight into that connection's
//! open batch (the encoder builds the frame in place). A batch is sealed
//! and sent when it holds `--batch` operations, or when its first
//! operation has waited `--flush-us`. Each connection allows `--pipeline`
//! sealed batches in flight. In a closed loop the thread generates until
//! an operation's connection has a full batch *and* a full pipeline, then
//! waits for replies; in an open loop (`--rate`) operations are generated
//! at their Poisson arrival times and latency counts from that intended
//! time, so a slow server cannot hide its queueing (coordinated omission).
//!
//! Replies are read whenever a poll says a socket is readable (a zero
//! timeout poll after each burst of generation, a blocking one when
//! stalled). An open loop between arrivals spins on the clock and polls at
//! most once per [`POLL_EVERY`]: a poll is a system call (~0.5 µs here),
//! and polling on every turn of the loop cost more than generating the
//! operations; a reply may therefore be read up to that much late, which
//! can only overstate its latency. Every reply is paired with its
//! operation (first in, first out), checked (a GET's value must be one
//! written for that key, intact) and its latency recorded: from the moment
//! the operation entered its batch to the moment its reply was read.
//!
//! # Time
//!
//! The clock is read once per 16 generated operations and once per batch
//! of replies (a read costs ~25 ns here); an operation's enter time may
//! therefore be up to 16 generation steps early (under a microsecond), which
//! can only overstate latency. Intervals (one second by default) are cut at
//! the same instants for all threads, from a shared epoch.
//!
//! # Failover
//!
//! Given a [`Redial`] (the runner gives one for a replicated cluster's run
//! phase), a connection that fails, goes silent for `--timeout`, or is
//! answered "not here" (a follower's redirect, an election) is abandoned
//! instead of ending the run: every operation in flight on it is lost,
//! and each PUT among them is recorded in the history with an unknown
//! outcome (it may yet take effect; the checker allows either), never as
//! a success. Operations for that shard wait (the generator holds them, as
//! for a full pipeline) while the redial asks the cluster where the
//! shard's leader is now, retrying with a growing pause (50 ms doubling up
//! to 250 ms). The time a shard is away shows in the timeline's per-shard
//! throughput.

use crate::history::HistoryWriter;
use crate::proto::{Protocol, RefusedBy, Reply};
use crate::value::{self, BadRead, LOAD_WRITER};
use crate::workload::{KeyBuf, OpGen, OpKind};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand_distr::{Distribution, Exp};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};
use wire::ShardMap;
use wire::buf::RecvBuf;

/// Open loop: the sockets are polled at most this often while the loop
/// spins between arrivals.
pub const POLL_EVERY: Duration = Duration::from_micros(10);

/// Open loop: one operation in this many has its send lag recorded.
const LAG_SAMPLE: u64 = 16;

/// Highest latency the histograms hold (longer ones are clamped and counted).
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A fresh latency histogram (ns, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// What a worker does.
#[derive(Clone, Debug)]
pub enum Phase {
    /// Insert records `index, index + threads, …` below `records`, once each.
    Load {
        /// Records in the data set.
        records: u64,
    },
    /// Read records `index, index + threads, …` below `records`, once each
    /// (so the threads together read every record exactly once).
    Verify {
        /// Records in the data set.
        records: u64,
    },
    /// Run a workload.
    Run {
        /// Fraction of reads.
        read_fraction: f64,
        /// Key distribution.
        dist: crate::zipf::KeyDist,
        /// Open loop at this many operations per second for this thread.
        rate: Option<f64>,
        /// Stop after issuing this many operations.
        ops: Option<u64>,
    },
}

/// Everything one worker needs, built by the runner.
pub struct WorkerSpec {
    /// Thread index within this process.
    pub index: usize,
    /// Threads in this process.
    pub threads: usize,
    /// Writer id stamped into every value this thread writes.
    pub writer: u32,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// RNG seed.
    pub seed: u64,
    /// Load or run.
    pub phase: Phase,
    /// Operations per batch.
    pub batch: usize,
    /// Sealed batches in flight per connection.
    pub pipeline: usize,
    /// A partial batch is sent after waiting this long.
    pub flush: Duration,
    /// Value size of PUTs.
    pub value_size: usize,
    /// Largest frame a server accepts.
    pub max_frame: usize,
    /// Shared time origin.
    pub epoch: Instant,
    /// Measurement starts here (since `epoch`).
    pub warmup_end: Duration,
    /// Generation stops here (since `epoch`), if time-bounded.
    pub end: Option<Duration>,
    /// Length of a reporting interval.
    pub interval: Duration,
    /// A connection with batches in flight and no reply for this long is an error.
    pub timeout: Duration,
    /// Set by anyone to stop every worker.
    pub stop: Arc<AtomicBool>,
    /// Where interval figures go.
    pub tx: Sender<Msg>,
    /// The slot table.
    pub map: Arc<ShardMap>,
    /// Operation history, if recording.
    pub history: Option<HistoryWriter>,
    /// Test aid: sleep this long once a second (a client stall).
    pub self_stall: Option<Duration>,
}

/// A shard this worker drives: its connected socket and protocol state.
pub struct Endpoint<P> {
    /// The socket, connected and handshaken.
    pub stream: std::net::TcpStream,
    /// The protocol state.
    pub proto: P,
    /// Global shard id.
    pub shard: u32,
    /// `addr:port`.
    pub addr: String,
    /// Server node name.
    pub node: String,
}

/// Figures of one reporting interval of one worker.
pub struct IntervalStats {
    /// Worker index.
    pub worker: usize,
    /// Interval number: -1 is the warm-up, `i64::MAX` after the end.
    pub index: i64,
    /// GET latencies (ns).
    pub get: Histogram<u64>,
    /// PUT latencies (ns).
    pub put: Histogram<u64>,
    /// Operations completed.
    pub ops: u64,
    /// GETs that found their key.
    pub hits: u64,
    /// GETs that found nothing.
    pub misses: u64,
    /// PUTs done.
    pub puts: u64,
    /// GETs whose value failed verification.
    pub bad_reads: u64,
    /// Operations refused with WrongShard.
    pub wrong_shard: u64,
    /// Operations refused with TooLarge.
    pub too_large: u64,
    /// Writes refused for lack of memory.
    pub out_of_memory: u64,
    /// Writes refused because they could not be made durable.
    pub not_durable: u64,
    /// Operations refused because the node has no leader for the shard
    /// (an election) or is not it.
    pub no_leader: u64,
    /// Other refusals.
    pub other_errors: u64,
    /// Operations in flight on a connection abandoned for failover: their
    /// outcome is unknown (PUTs are in the history as such).
    pub lost: u64,
    /// Connections re-established to a shard's (new) leader.
    pub reconnects: u64,
    /// Completed operations per shard.
    pub per_shard: Vec<u64>,
    /// The first bad read seen, described.
    pub first_bad: Option<String>,
    /// Latest completion counted (ns since epoch).
    pub last_t: u64,
    /// Open loop: send lag (ns), how late operations entered their batch
    /// after their intended time, sampled once per 16 operations issued.
    /// Operations that came due while the load thread waited for the server
    /// (a full pipeline) are not sampled: their delay is the server's.
    pub lag: Histogram<u64>,
    /// Wall time the load thread accounted in this interval (ns).
    pub span_ns: u64,
    /// Of that, time it was working: generating, sending or reading replies,
    /// rather than blocked in a poll or polling with nothing to do (ns).
    pub busy_ns: u64,
}

impl IntervalStats {
    /// Empty figures of interval `index` of `worker`, with `shards` shard counters.
    pub fn new(worker: usize, index: i64, shards: usize) -> IntervalStats {
        IntervalStats {
            worker,
            index,
            get: new_histogram(),
            put: new_histogram(),
            ops: 0,
            hits: 0,
            misses: 0,
            puts: 0,
            bad_reads: 0,
            wrong_shard: 0,
            too_large: 0,
            out_of_memory: 0,
            not_durable: 0,
            no_leader: 0,
            other_errors: 0,
            lost: 0,
            reconnects: 0,
            per_shard: vec![0; shards],
            first_bad: None,
            last_t: 0,
            lag: new_histogram(),
            span_ns: 0,
            busy_ns: 0,
        }
    }

    /// Operations refused, whatever the reason.
    pub fn refused(&self) -> u64 {
        self.wrong_shard + self.too_large + self.out_of_memory + self.not_durable + self.no_leader + self.other_errors
    }
}

/// Finds shard `shard`'s current leader and connects to it: the failover
/// path (blocking, bounded by its own timeouts). `Err` says why not now.
pub type Redial<P> = Box<dyn FnMut(u32) -> Result<Endpoint<P>, String> + Send>;

/// The first pause before a lost connection is redialled, doubled on each
/// failed try up to [`REDIAL_MAX_PAUSE`].
const REDIAL_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between redials of one shard.
const REDIAL_MAX_PAUSE: Duration = Duration::from_millis(250);

/// A worker's end: its CPU time and what it issued.
#[derive(Clone, Debug, Default)]
pub struct WorkerSummary {
    /// CPU time the thread used.
    pub cpu: Duration,
    /// Operations issued.
    pub issued: u64,
    /// Operations answered.
    pub answered: u64,
}

/// Why a worker stopped early; names the shard.
#[derive(Clone, Debug)]
pub struct WorkerError {
    /// Shard id.
    pub shard: u32,
    /// Its address.
    pub addr: String,
    /// Its server node.
    pub node: String,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server {} shard {} ({}): {}", self.node, self.shard, self.addr, self.message)
    }
}

/// Messages from workers to the runner.
pub enum Msg {
    /// An interval's figures.
    Interval(Box<IntervalStats>),
    /// The worker finished.
    Done {
        /// Worker index.
        worker: usize,
        /// Its summary, or why it stopped.
        result: Result<WorkerSummary, WorkerError>,
    },
}

/// An operation in flight.
#[derive(Clone, Copy)]
struct Pending {
    record: u64,
    /// When it entered its batch (ns since epoch); its intended time in an open loop.
    t: u64,
    kind: OpKind,
    /// Identity of the value written (PUT) — for the history.
    written: u64,
}

struct Conn<P> {
    proto: P,
    stream: TcpStream,
    shard: u32,
    addr: String,
    node: String,
    /// Sealed frames, not yet fully written.
    out: Vec<u8>,
    sent: usize,
    /// The open batch being built.
    open: Vec<u8>,
    open_ops: usize,
    /// When the open batch's first operation entered it (ns since epoch).
    open_since: u64,
    /// Replies still due per sealed batch in flight, oldest first.
    batches: VecDeque<usize>,
    /// Every operation sealed or open, in order.
    ops: VecDeque<Pending>,
    rbuf: RecvBuf,
    next_batch: u64,
    /// Last time a reply arrived (or the pipeline was empty), ns since epoch.
    progress: u64,
    /// Failover: abandoned, and when to redial.
    down: Option<Down>,
}

/// A connection abandoned for failover.
#[derive(Clone, Copy)]
struct Down {
    /// When it was abandoned (ns since epoch).
    since: u64,
    /// Next redial (ns since epoch).
    retry_at: u64,
    /// Failed redials so far.
    tries: u32,
}

impl<P: Protocol> Conn<P> {
    fn err(&self, message: impl Into<String>) -> WorkerError {
        WorkerError { shard: self.shard, addr: self.addr.clone(), node: self.node.clone(), message: message.into() }
    }

    #[inline]
    fn pipeline_room(&self, pipeline: usize) -> bool {
        self.batches.len() < pipeline
    }

    /// Closes the open batch and queues it for sending.
    fn seal(&mut self) {
        self.proto.finish(&mut self.open);
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            std::mem::swap(&mut self.out, &mut self.open);
        } else {
            self.out.extend_from_slice(&self.open);
        }
        self.open.clear();
        self.batches.push_back(self.open_ops);
        self.open_ops = 0;
        self.next_batch += 1;
    }

    /// Writes as much of the sealed frames as the socket takes.
    fn send(&mut self) -> Result<(), WorkerError> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(self.err("connection closed while sending")),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(format!("send failed: {e}"))),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Reads what the socket has, until it has no more (`Ok(false)`) or the
    /// receive buffer is full at its cap (`Ok(true)`: answer the buffered
    /// replies, then read again — the socket may hold more than the buffer,
    /// and with edge-triggered polling no new event would say so).
    fn receive(&mut self) -> Result<bool, WorkerError> {
        loop {
            if !self.rbuf.prepare(None) {
                return Ok(true);
            }
            match self.stream.read(self.rbuf.spare()) {
                Ok(0) => return Err(self.err("connection closed by the server")),
                Ok(n) => self.rbuf.commit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(format!("receive failed: {e}"))),
            }
        }
    }
}

/// Per-thread mutable figures and settings used while pairing replies.
struct Tally {
    stats: IntervalStats,
    warmup_end: u64,
    end: u64,
}

/// Runs one worker to completion. Sends its intervals and a final
/// [`Msg::Done`] on `spec.tx`.
pub fn run<P: Protocol>(spec: WorkerSpec, endpoints: Vec<Endpoint<P>>, redial: Option<Redial<P>>) {
    if let Some(cpu) = spec.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let cpu_start = thread_cpu_time();
    let tx = spec.tx.clone();
    let worker = spec.index;
    let stop = spec.stop.clone();
    let result = Worker::new(spec, endpoints).and_then(|mut w| {
        w.redial = redial;
        let r = w.run();
        w.finish_history();
        r.map(|_| WorkerSummary {
            cpu: thread_cpu_time().saturating_sub(cpu_start),
            issued: w.issued,
            answered: w.answered,
        })
    });
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let _ = tx.send(Msg::Done { worker, result });
}

/// CPU time used by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Worker<P> {
    spec: WorkerSpec,
    conns: Vec<Conn<P>>,
    poll: Poll,
    events: Events,
    opgen: Option<OpGen>,
    keys: KeyBuf,
    tally: Tally,
    /// The next record to load or read (load and verify phases).
    next_load: u64,
    /// Next sequence number of this writer.
    seq: u64,
    issued: u64,
    answered: u64,
    /// An operation drawn but not yet placed (its connection was full).
    held: Option<(OpKind, u64, u64)>,
    /// Open loop: intended time of the next operation (ns since epoch).
    next_arrival: u64,
    arrivals: Option<Exp<f64>>,
    /// Open loop: when the generator last resumed after waiting for the
    /// server (a full pipeline), ns since epoch. Operations that came due
    /// while it waited are late because of the server: their send lag is
    /// not sampled (their latency, from their intended time, counts in full).
    resume: u64,
    /// When the sockets were last polled (ns since epoch).
    last_poll: u64,
    /// Ready events of the last poll: connection, readable, writable
    /// (kept to reuse its memory).
    ready: Vec<(usize, bool, bool)>,
    /// Failover: how a lost connection is replaced; `None`: a lost
    /// connection ends the run.
    redial: Option<Redial<P>>,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

impl<P: Protocol> Worker<P> {
    fn new(spec: WorkerSpec, endpoints: Vec<Endpoint<P>>) -> Result<Worker<P>, WorkerError> {
        let poll = Poll::new().map_err(|e| WorkerError {
            shard: 0,
            addr: String::new(),
            node: String::new(),
            message: format!("cannot create a poller: {e}"),
        })?;
        let mut conns = Vec::with_capacity(endpoints.len());
        for (i, ep) in endpoints.into_iter().enumerate() {
            let fail = |message: String| WorkerError {
                shard: ep.shard,
                addr: ep.addr.clone(),
                node: ep.node.clone(),
                message,
            };
            ep.stream.set_nonblocking(true).map_err(|e| fail(format!("cannot make the socket non-blocking: {e}")))?;
            let mut stream = TcpStream::from_std(ep.stream);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| fail(format!("cannot poll the socket: {e}")))?;
            conns.push(Conn {
                proto: ep.proto,
                stream,
                shard: ep.shard,
                addr: ep.addr,
                node: ep.node,
                out: Vec::with_capacity(1 << 16),
                sent: 0,
                open: Vec::with_capacity(1 << 16),
                open_ops: 0,
                open_since: 0,
                batches: VecDeque::with_capacity(spec.pipeline + 1),
                ops: VecDeque::with_capacity(spec.batch * (spec.pipeline + 1)),
                rbuf: RecvBuf::new(1 << 18, spec.max_frame),
                next_batch: 1,
                progress: 0,
                down: None,
            });
        }
        let (opgen, arrivals) = match &spec.phase {
            Phase::Load { .. } | Phase::Verify { .. } => (None, None),
            Phase::Run { read_fraction, dist, rate, .. } => {
                let opgen = OpGen::new(*read_fraction, dist.clone(), spec.seed);
                let arrivals = match rate {
                    Some(r) if *r > 0.0 => Some(Exp::new(*r).map_err(|e| WorkerError {
                        shard: 0,
                        addr: String::new(),
                        node: String::new(),
                        message: format!("bad rate {r}: {e}"),
                    })?),
                    _ => None,
                };
                (Some(opgen), arrivals)
            }
        };
        let shards = conns.len();
        let tally = Tally {
            stats: IntervalStats::new(spec.index, -1, shards),
            warmup_end: ns(spec.warmup_end),
            end: spec.end.map(ns).unwrap_or(u64::MAX),
        };
        let next_arrival = ns(spec.epoch.elapsed());
        Ok(Worker {
            next_load: spec.index as u64,
            spec,
            conns,
            poll,
            events: Events::with_capacity(256),
            opgen,
            keys: KeyBuf::default(),
            tally,
            seq: 0,
            issued: 0,
            answered: 0,
            held: None,
            next_arrival,
            arrivals,
            resume: 0,
            last_poll: 0,
            ready: Vec::with_capacity(256),
            redial: None,
        })
    }

    #[inline]
    fn now(&self) -> u64 {
        ns(self.spec.epoch.elapsed())
    }

    /// The interval a completion at `t` belongs to.
    #[inline]
    fn interval_of(&self, t: u64) -> i64 {
        if t < self.tally.warmup_end {
            -1
        } else if t >= self.tally.end {
            i64::MAX
        } else {
            ((t - self.tally.warmup_end) / ns(self.spec.interval).max(1)) as i64
        }
    }

    /// Ships the current interval if `now` is past it.
    fn roll_interval(&mut self, now: u64) {
        let idx = self.interval_of(now);
        if idx != self.tally.stats.index {
            let shards = self.conns.len();
            let done = std::mem::replace(&mut self.tally.stats, IntervalStats::new(self.spec.index, idx, shards));
            let _ = self.spec.tx.send(Msg::Interval(Box::new(done)));
        }
    }

    /// True while there is something left to generate.
    fn generating(&self, now: u64) -> bool {
        if self.spec.stop.load(Ordering::Relaxed) || now >= self.tally.end {
            return false;
        }
        match &self.spec.phase {
            Phase::Load { records } | Phase::Verify { records } => self.held.is_some() || self.next_load < *records,
            Phase::Run { ops, .. } => self.held.is_some() || ops.is_none_or(|n| self.issued < n),
        }
    }

    fn run(&mut self) -> Result<(), WorkerError> {
        let mut now = self.now();
        for c in &mut self.conns {
            c.progress = now;
        }
        let mut last_stall = now;
        while self.generating(now) {
            if let Some(stall) = self.spec.self_stall
                && now.saturating_sub(last_stall) >= 1_000_000_000
            {
                std::thread::sleep(stall);
                now = self.now();
                last_stall = now;
            }
            self.roll_interval(now);
            if self.redial.is_some() {
                self.revive(now);
            }
            let top = now;
            let work = (self.issued, self.answered);
            let stalled = self.generate(&mut now)?;
            self.flush_aged(now)?;
            let timeout = if stalled {
                Some(self.wait_budget(now))
            } else if self.arrivals.is_some() && self.next_arrival > now + 2_000_000 {
                // Open loop, idle for a while: sleep until shortly before the next arrival.
                Some(Duration::from_nanos(self.next_arrival - now - 1_000_000))
            } else {
                Some(Duration::ZERO)
            };
            let waited = if timeout == Some(Duration::ZERO)
                && self.arrivals.is_some()
                && now.saturating_sub(self.last_poll) < ns(POLL_EVERY)
            {
                0
            } else {
                self.last_poll = now;
                self.pump(timeout)?
            };
            now = self.now();
            // An iteration that placed or answered nothing was idle; a
            // blocking poll's wait is idle too.
            let span = now.saturating_sub(top);
            let s = &mut self.tally.stats;
            s.span_ns += span;
            if work != (self.issued, self.answered) {
                s.busy_ns += span.saturating_sub(waited);
            }
            self.check_progress(now)?;
        }
        if self.spec.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Send what is left and collect every reply (drained operations go to
        // the history, not to the figures, if they complete after the end).
        for i in 0..self.conns.len() {
            if self.conns[i].open_ops > 0 {
                self.conns[i].seal();
                if let Err(e) = self.conns[i].send() {
                    self.lost(i, e)?;
                }
            }
        }
        loop {
            now = self.now();
            self.roll_interval(now);
            self.check_progress(now)?;
            let waiting = self.conns.iter().any(|c| !c.ops.is_empty() || c.open_ops > 0);
            if !waiting || self.spec.stop.load(Ordering::Relaxed) {
                break;
            }
            // Sealing may have been held back by a full pipeline.
            self.flush_aged(u64::MAX)?;
            self.pump(Some(Duration::from_millis(5)))?;
        }
        now = self.now();
        self.roll_interval(now.max(self.tally.end));
        let shards = self.conns.len();
        let last = std::mem::replace(&mut self.tally.stats, IntervalStats::new(self.spec.index, i64::MAX, shards));
        let _ = self.spec.tx.send(Msg::Interval(Box::new(last)));
        Ok(())
    }

    /// How long a stalled worker may block: until a flush is due, the
    /// interval ends, or at most 10 ms (to notice a stop).
    fn wait_budget(&self, now: u64) -> Duration {
        let interval = ns(self.spec.interval).max(1);
        let into = now.saturating_sub(self.tally.warmup_end) % interval;
        let mut budget = (interval - into).min(10_000_000);
        for c in &self.conns {
            if c.open_ops > 0 {
                let due = c.open_since + ns(self.spec.flush);
                budget = budget.min(due.saturating_sub(now));
            }
        }
        Duration::from_nanos(budget.max(50_000))
    }

    /// Draws and places operations until one batch's worth is placed, the
    /// generator must wait (returns true), or there is nothing to draw.
    fn generate(&mut self, now: &mut u64) -> Result<bool, WorkerError> {
        let burst = self.spec.batch.max(16);
        let open = self.arrivals.is_some();
        if self.held.is_some() {
            self.resume = *now;
        }
        let mut stamp = *now;
        for n in 0..burst {
            if n % 16 == 0 && n > 0 {
                stamp = self.now();
                *now = stamp;
                if stamp >= self.tally.end {
                    break;
                }
            }
            let op = match self.held.take() {
                Some(op) => op,
                None => match self.draw(stamp) {
                    Some(op) => op,
                    None => break,
                },
            };
            if open && self.issued.is_multiple_of(LAG_SAMPLE) && op.2 >= self.resume {
                // How late this operation is; `stamp` may be up to 15
                // generation steps old, which can only understate the lag
                // by those steps (a few µs). An operation that came due
                // while the generator waited for the server is late
                // because of the server: not sampled.
                let lag = stamp.saturating_sub(op.2);
                self.tally.stats.lag.saturating_record(lag.max(1));
            }
            if !self.place(op)? {
                self.held = Some(op);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Draws the next operation: `(kind, record, time)`.
    #[inline]
    fn draw(&mut self, stamp: u64) -> Option<(OpKind, u64, u64)> {
        match &self.spec.phase {
            Phase::Load { records } | Phase::Verify { records } => {
                if self.next_load >= *records {
                    return None;
                }
                let r = self.next_load;
                self.next_load += self.spec.threads as u64;
                let kind = if matches!(self.spec.phase, Phase::Load { .. }) { OpKind::Put } else { OpKind::Get };
                Some((kind, r, stamp))
            }
            Phase::Run { ops, .. } => {
                if ops.is_some_and(|n| self.issued >= n) {
                    return None;
                }
                let t = match &self.arrivals {
                    Some(exp) => {
                        if self.next_arrival > stamp {
                            return None;
                        }
                        let t = self.next_arrival;
                        let opgen = self.opgen.as_mut()?;
                        let gap = exp.sample(opgen.rng());
                        self.next_arrival = t + (gap * 1e9) as u64;
                        t
                    }
                    None => stamp,
                };
                let (kind, record) = self.opgen.as_mut()?.next_op();
                Some((kind, record, t))
            }
        }
    }

    /// Puts an operation into its connection's open batch; false if that
    /// connection cannot take it yet.
    #[inline]
    fn place(&mut self, (kind, record, t): (OpKind, u64, u64)) -> Result<bool, WorkerError> {
        let key = self.keys.key(record);
        let shard = self.spec.map.shard_of(key) as usize;
        let (batch, pipeline, value_size) = (self.spec.batch, self.spec.pipeline, self.spec.value_size);
        let c = &mut self.conns[shard];
        if c.down.is_some() {
            // Failover: held until the shard's leader is found.
            return Ok(false);
        }
        let extra = key.len() + if kind == OpKind::Put { value_size } else { 0 } + 64;
        if c.open_ops > 0 && (c.open_ops >= batch || c.proto.open_bytes() + extra > self.spec.max_frame) {
            if !c.pipeline_room(pipeline) {
                return Ok(false);
            }
            c.seal();
            if let Err(e) = c.send() {
                self.lost(shard, e)?;
                return Ok(false);
            }
        }
        if c.open_ops == 0 {
            c.proto.begin(&mut c.open, c.next_batch);
            c.open_since = t;
        }
        let mut written = 0;
        match kind {
            OpKind::Get => c.proto.get(&mut c.open, key),
            OpKind::Put => {
                let (writer, seq) = if matches!(self.spec.phase, Phase::Load { .. }) {
                    (LOAD_WRITER, record)
                } else {
                    self.seq += 1;
                    (self.spec.writer, self.seq)
                };
                written = value::Identity::new(writer, seq).0;
                c.proto.put(&mut c.open, key, value_size, |v| value::fill(v, record, writer, seq));
            }
        }
        c.open_ops += 1;
        c.ops.push_back(Pending { record, t, kind, written });
        self.issued += 1;
        if c.open_ops >= batch
            && c.pipeline_room(pipeline)
            && let Err(e) = {
                c.seal();
                c.send()
            }
        {
            self.lost(shard, e)?;
        }
        Ok(true)
    }

    /// Seals and sends partial batches whose first operation waited `--flush-us`.
    fn flush_aged(&mut self, now: u64) -> Result<(), WorkerError> {
        let flush = ns(self.spec.flush);
        let (batch, pipeline) = (self.spec.batch, self.spec.pipeline);
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.open_ops > 0
                && c.pipeline_room(pipeline)
                && (c.open_ops >= batch || now.saturating_sub(c.open_since) >= flush)
                && let Err(e) = {
                    c.seal();
                    c.send()
                }
            {
                self.lost(i, e)?;
            }
        }
        Ok(())
    }

    /// Polls the sockets once and handles what is ready. Returns how long
    /// the poll blocked (ns; 0 for a poll that may not block).
    fn pump(&mut self, timeout: Option<Duration>) -> Result<u64, WorkerError> {
        let blocking = timeout != Some(Duration::ZERO);
        let before = if blocking { self.now() } else { 0 };
        let polled = self.poll.poll(&mut self.events, timeout);
        let waited = if blocking { self.now().saturating_sub(before) } else { 0 };
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(waited),
            Err(e) => {
                return Err(WorkerError {
                    shard: 0,
                    addr: String::new(),
                    node: String::new(),
                    message: format!("poll failed: {e}"),
                });
            }
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| (e.token().0, e.is_readable() || e.is_read_closed(), e.is_writable())));
        let handled = self.handle(&ready);
        self.ready = ready;
        handled.map(|()| waited)
    }

    /// Sends and receives on the connections a poll found ready.
    fn handle(&mut self, ready: &[(usize, bool, bool)]) -> Result<(), WorkerError> {
        for &(i, readable, writable) in ready {
            // A connection abandoned earlier in this batch of events.
            if self.conns[i].down.is_some() {
                continue;
            }
            if let Err(e) = self.handle_one(i, readable, writable) {
                self.lost(i, e)?;
            }
        }
        Ok(())
    }

    /// Sends and receives on connection `i`.
    fn handle_one(&mut self, i: usize, readable: bool, writable: bool) -> Result<(), WorkerError> {
        if writable {
            self.conns[i].send()?;
        }
        if readable {
            loop {
                let full = self.conns[i].receive()?;
                let before = self.conns[i].rbuf.len();
                self.answer(i)?;
                if !full || self.conns[i].down.is_some() {
                    break;
                }
                if self.conns[i].rbuf.len() == before {
                    let c = &self.conns[i];
                    return Err(c.err(format!(
                        "a reply is larger than the {} bytes the receive buffer may hold",
                        c.rbuf.max()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Pairs the buffered replies of connection `i` with their operations.
    fn answer(&mut self, i: usize) -> Result<(), WorkerError> {
        let now = self.now();
        self.roll_interval(now);
        let interval = self.interval_of(now);
        let counting = (0..i64::MAX).contains(&interval);
        let history = &mut self.spec.history;
        let tally = &mut self.tally;
        let c = &mut self.conns[i];
        let shard = c.shard as usize;
        let mut failure: Option<String> = None;
        let mut redirected = false;
        let mut answered = 0u64;
        let mut run: Option<(OpKind, u64, u64)> = None;
        let Conn { proto, ops, batches, rbuf, .. } = c;
        let consumed = proto.decode(rbuf.filled(), &mut |reply| {
            if failure.is_some() {
                return;
            }
            let Some(p) = ops.pop_front() else {
                failure = Some("more replies than operations sent".into());
                return;
            };
            // A batch leaves the pipeline when its last reply is in.
            match batches.front_mut() {
                Some(left) if *left > 1 => *left -= 1,
                Some(_) => {
                    batches.pop_front();
                }
                None => {
                    failure = Some("a reply arrived for an operation not yet sent".into());
                    return;
                }
            }
            answered += 1;
            let s = &mut tally.stats;
            let mut observed = 0u64;
            // A refused operation had no effect: it is not history.
            let refused = matches!(reply, Reply::Refused(_));
            match (p.kind, reply) {
                (OpKind::Get, Reply::Value(v)) => match value::verify(v, p.record) {
                    Ok(id) => {
                        observed = id.0;
                        s.hits += 1;
                    }
                    Err(bad) => {
                        if counting {
                            s.bad_reads += 1;
                        }
                        if s.first_bad.is_none() {
                            s.first_bad = Some(describe_bad(bad, p.record));
                        }
                        observed = crate::history::BAD_READ;
                    }
                },
                (OpKind::Get, Reply::NotFound) => {
                    s.misses += 1;
                    observed = crate::history::NOT_FOUND;
                }
                (OpKind::Put, Reply::Done) => s.puts += 1,
                (_, Reply::Refused(RefusedBy::WrongShard)) => {
                    s.wrong_shard += 1;
                    redirected = true;
                }
                (_, Reply::Refused(RefusedBy::NoLeader)) => {
                    s.no_leader += 1;
                    redirected = true;
                }
                (_, Reply::Refused(RefusedBy::TooLarge)) => s.too_large += 1,
                (_, Reply::Refused(RefusedBy::OutOfMemory)) => s.out_of_memory += 1,
                (_, Reply::Refused(RefusedBy::NotDurable)) => s.not_durable += 1,
                (_, Reply::Refused(RefusedBy::Other)) => s.other_errors += 1,
                (kind, other) => {
                    failure = Some(format!("{kind:?} of record {} answered with {other:?}", p.record));
                    return;
                }
            }
            if let Some(h) = history.as_mut()
                && !refused
            {
                let value = if p.kind == OpKind::Put { p.written } else { observed };
                h.record(p.record, p.kind, value, p.t, now);
            }
            if counting {
                s.last_t = now;
                s.ops += 1;
                s.per_shard[shard] += 1;
                let lat = now.saturating_sub(p.t).clamp(1, MAX_LATENCY_NS);
                // Operations answered together that entered together have
                // the same latency: record them as one run.
                match &mut run {
                    Some((kind, l, n)) if *kind == p.kind && *l == lat => *n += 1,
                    _ => {
                        if let Some(done) = run.replace((p.kind, lat, 1)) {
                            record_run(s, done);
                        }
                    }
                }
            }
        });
        if let Some(done) = run.take() {
            record_run(&mut tally.stats, done);
        }
        let consumed = match consumed {
            Ok(n) => n,
            Err(e) => return Err(c.err(e)),
        };
        c.rbuf.consume(consumed);
        if let Some(f) = failure {
            return Err(c.err(f));
        }
        if answered > 0 || c.ops.is_empty() {
            c.progress = now;
        }
        self.answered += answered;
        if redirected && self.redial.is_some() {
            // This node does not serve the shard now: go where it is served.
            self.abandon(i, "answered that the shard's leader is elsewhere (MOVED) or being elected (CLUSTERDOWN)");
            return Ok(());
        }
        // A full open batch that waited for pipeline room can go now.
        let (batch, pipeline) = (self.spec.batch, self.spec.pipeline);
        let c = &mut self.conns[i];
        if c.open_ops >= batch && c.pipeline_room(pipeline) {
            c.seal();
            c.send()?;
        }
        Ok(())
    }

    /// A failure of connection `i`: the end of the run, or, with failover,
    /// the connection abandoned.
    fn lost(&mut self, i: usize, e: WorkerError) -> Result<(), WorkerError> {
        if self.redial.is_none() {
            return Err(e);
        }
        self.abandon(i, &e.message);
        Ok(())
    }

    /// Failover: abandons connection `i` (see "Failover" above). Its
    /// operations in flight are lost; its PUTs go into the history with an
    /// unknown outcome.
    fn abandon(&mut self, i: usize, why: &str) {
        let now = self.now();
        let c = &mut self.conns[i];
        if c.down.is_some() {
            return;
        }
        if let Some(h) = self.spec.history.as_mut() {
            record_unanswered(h, &c.ops);
        }
        self.tally.stats.lost += c.ops.len() as u64;
        c.ops.clear();
        c.batches.clear();
        c.out.clear();
        c.sent = 0;
        c.open.clear();
        c.open_ops = 0;
        let buffered = c.rbuf.len();
        c.rbuf.consume(buffered);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        c.down = Some(Down { since: now, retry_at: now + ns(REDIAL_PAUSE), tries: 0 });
        eprintln!("percore-loadgen: shard {} ({} on {}): {why}; following its leader", c.shard, c.addr, c.node);
    }

    /// Failover: redials the abandoned connections whose pause is over.
    fn revive(&mut self, now: u64) {
        let Worker { redial, conns, poll, tally, spec, .. } = self;
        let Some(redial) = redial.as_mut() else { return };
        for (i, c) in conns.iter_mut().enumerate() {
            let Some(down) = c.down else { continue };
            if now < down.retry_at {
                continue;
            }
            let attempt = redial(c.shard).and_then(|ep| {
                ep.stream.set_nonblocking(true).map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
                let mut stream = TcpStream::from_std(ep.stream);
                poll.registry()
                    .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| format!("cannot poll the socket: {e}"))?;
                Ok((stream, ep.proto, ep.addr, ep.node))
            });
            let at = ns(spec.epoch.elapsed());
            match attempt {
                Ok((stream, proto, addr, node)) => {
                    eprintln!(
                        "percore-loadgen: shard {}: now on {addr} ({node}), {:.0} ms after the loss",
                        c.shard,
                        at.saturating_sub(down.since) as f64 / 1e6
                    );
                    (c.stream, c.proto, c.addr, c.node) = (stream, proto, addr, node);
                    c.progress = at;
                    c.down = None;
                    tally.stats.reconnects += 1;
                }
                Err(why) => {
                    let tries = down.tries.saturating_add(1);
                    let pause = REDIAL_PAUSE.saturating_mul(1 << tries.min(10)).min(REDIAL_MAX_PAUSE);
                    if tries == 1 || tries.is_multiple_of(10) {
                        eprintln!("percore-loadgen: shard {}: no leader to go to yet (try {tries}): {why}", c.shard);
                    }
                    c.down = Some(Down { retry_at: at + ns(pause), tries, ..down });
                }
            }
        }
    }

    /// A connection with batches in flight and no reply for `--timeout` is an error.
    fn check_progress(&mut self, now: u64) -> Result<(), WorkerError> {
        let limit = ns(self.spec.timeout);
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.down.is_some() {
                continue;
            }
            if c.batches.is_empty() {
                c.progress = now;
            } else if now.saturating_sub(c.progress) > limit {
                let e = c.err(format!("no reply for {:.1} s", self.spec.timeout.as_secs_f64()));
                self.lost(i, e)?;
            }
        }
        Ok(())
    }

    fn finish_history(&mut self) {
        if let Some(mut h) = self.spec.history.take() {
            // PUTs still without a reply (a stopped or failed run) may have
            // taken effect: recorded with an unknown outcome.
            for c in &self.conns {
                record_unanswered(&mut h, &c.ops);
            }
            h.finish();
        }
    }
}

/// Records the PUTs of `ops`, which got no reply, with an unknown outcome
/// (they may have taken effect); GETs without a reply say nothing.
fn record_unanswered(h: &mut HistoryWriter, ops: &VecDeque<Pending>) {
    for p in ops.iter().filter(|p| p.kind == OpKind::Put) {
        h.record(p.record, p.kind, p.written, p.t, crate::history::NO_RESPONSE);
    }
}

/// Records `n` operations of one kind with the same latency.
#[inline]
fn record_run(s: &mut IntervalStats, (kind, lat, n): (OpKind, u64, u64)) {
    let h = if kind == OpKind::Get { &mut s.get } else { &mut s.put };
    h.saturating_record_n(lat, n);
}

fn describe_bad(bad: BadRead, record: u64) -> String {
    format!("GET of key {record:?}: {bad}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::percore::Percore;
    use wire::msg::{ShardInfo, SlotRange};

    /// A worker of `threads` with no connections: enough to draw operations.
    fn worker(phase: Phase, index: usize, threads: usize) -> Worker<Percore> {
        let shard = ShardInfo {
            id: 0,
            node: "n".into(),
            addr: "127.0.0.1".into(),
            port: 1,
            cpu: 0,
            slots: vec![SlotRange { start: 0, end: (wire::slot::SLOTS - 1) as u16 }],
            replicas: Vec::new(),
            leader: 0,
        };
        let (tx, _) = std::sync::mpsc::channel();
        let spec = WorkerSpec {
            index,
            threads,
            writer: 0,
            cpu: None,
            seed: 1,
            phase,
            batch: 16,
            pipeline: 1,
            flush: Duration::from_micros(100),
            value_size: 64,
            max_frame: 1 << 20,
            epoch: Instant::now(),
            warmup_end: Duration::ZERO,
            end: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            stop: Arc::new(AtomicBool::new(false)),
            tx,
            map: Arc::new(ShardMap::new(vec![shard]).expect("one shard owns every slot")),
            history: None,
            self_stall: None,
        };
        Worker::new(spec, Vec::new()).expect("a worker without connections")
    }

    #[test]
    fn verify_threads_read_every_record_exactly_once() {
        for threads in [1, 3, 4] {
            let mut seen = vec![0u32; 10];
            for index in 0..threads {
                let mut w = worker(Phase::Verify { records: 10 }, index, threads);
                while let Some((kind, record, _)) = w.draw(7) {
                    assert_eq!(kind, OpKind::Get, "verify only reads");
                    seen[record as usize] += 1;
                }
                assert!(!w.generating(0), "nothing left once every record is drawn");
            }
            assert_eq!(seen, vec![1; 10], "{threads} thread(s): each record read once");
        }
        // The load phase walks the same records, writing.
        let mut w = worker(Phase::Load { records: 3 }, 0, 1);
        let drawn: Vec<_> = std::iter::from_fn(|| w.draw(0)).collect();
        assert_eq!(drawn, vec![(OpKind::Put, 0, 0), (OpKind::Put, 1, 0), (OpKind::Put, 2, 0)]);
    }
}
