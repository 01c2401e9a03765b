//! `percore attack`: hostile traffic against a running cluster, for the
//! soak test (`tools/soak.sh`) and for anyone who wants to see a node hold.
//!
//! Classes, each on its own thread, all bounded in rate and count, until
//! `--duration`:
//! - **garbage**: connections that send random bytes (half behind a valid
//!   frame magic, half taken as RESP and ended by a malformed multibulk)
//!   and read until the server closes them;
//! - **half frames**: up to `--half` connections at a time holding half a
//!   header, or a hello stopped halfway, replaced as the server cuts them
//!   off (handshake and frame timeouts);
//! - **trickle**: handshaken connections sending a frame one byte every
//!   50 ms (the frame timeout must end each);
//! - **churn**: connections opened and closed as fast as the rate allows,
//!   a third of them after a hello;
//! - **jumbo**: frames on the attacker's own keys (one hash tag, one shard)
//!   mixing jumbo PUTs (512 KiB to the largest value), DELETEs, small PUTs
//!   and GETs of the same keys — the pattern that once crashed the
//!   executor — each result checked against a model of those keys;
//! - **hot deletes**: the `--hot-deletes` hottest records of the load
//!   generator's zipfian each deleted once, spread over the run, and
//!   recorded in `--history` (so `percore check` sees them next to the load
//!   generator's history).
//!
//! Every hello the attack sends carries the cluster's secret, found as the
//! CLI finds it (`--password`, `PERCORE_PASSWORD`, the file's
//! `requirepass`), so its connections get as far as a client's would.
//!
//! A write a node refuses as `NotDurable` (its durable log's disk full or
//! failing) changed nothing: the model keeps the key as it was, a refused
//! hot delete is not recorded, and both are counted ("not durable").
//!
//! Exit 0 when every jumbo result matched the model and the server stayed
//! reachable; 1 otherwise.

use crate::cmd::target::TargetArgs;
use clap::Args;
use loadgen::history::{Header, HistorySink, Kind, NO_RESPONSE};
use loadgen::workload::KeyBuf;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wire::client::Client;
use wire::codec::{RequestEncoder, encode};
use wire::frame::Kind as FrameKind;
use wire::msg::{Hello, Op, OpError, OpResult};

/// `percore attack`
#[derive(Args, Debug, Clone)]
pub struct AttackArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long to attack.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// Record the hot-key DELETEs here (a history `percore check` reads).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Records of the load generator's data set (for its hottest keys).
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Hottest records to delete, each once.
    #[arg(long, default_value_t = 100)]
    pub hot_deletes: u64,
    /// Half-frame connections held at once.
    #[arg(long, default_value_t = 64)]
    pub half: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the attack did, by class.
#[derive(Default)]
struct Tally {
    garbage: AtomicU64,
    half: AtomicU64,
    trickle: AtomicU64,
    churn: AtomicU64,
    jumbo_frames: AtomicU64,
    jumbo_oom: AtomicU64,
    deletes: AtomicU64,
    /// Writes (jumbo PUTs and DELETEs, hot deletes) refused as not durable:
    /// a node with a durable log whose disk is full or failing.
    not_durable: AtomicU64,
    /// Jumbo results that disagreed with the model.
    mismatches: AtomicU64,
    /// Times the server could not be reached.
    unreachable: AtomicU64,
}

/// One class of attack: run against these endpoints until the instant, counting into the tally.
type Class = fn(&[String], Instant, &Tally, &AttackArgs, u64);

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Runs the attack; returns the exit code.
pub fn main(args: &AttackArgs) -> u8 {
    match run(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("percore attack: {e}");
            2
        }
    }
}

fn run(args: &AttackArgs) -> Result<bool, String> {
    // The secret, resolved once: every class's hello carries it.
    let mut args = args.clone();
    args.target.password = args.target.secret().map_err(|e| e.to_string())?;
    let args = &args;
    let client = args.target.client().map_err(|e| e.to_string())?;
    let endpoints: Vec<String> = client.map().shards().iter().map(|s| format!("{}:{}", s.addr, s.port)).collect();
    drop(client);
    let end = Instant::now() + args.duration;
    let tally = Arc::new(Tally::default());
    let mut threads = Vec::new();
    let classes: [(&str, Class); 5] =
        [("garbage", garbage), ("half", half_frames), ("trickle", trickle), ("churn", churn), ("jumbo", jumbo)];
    for (i, (name, class)) in classes.into_iter().enumerate() {
        let (eps, tally, args) = (endpoints.clone(), tally.clone(), args.clone());
        let seed = args.seed.wrapping_mul(31).wrapping_add(i as u64);
        let t = std::thread::Builder::new()
            .name(format!("attack-{name}"))
            .spawn(move || class(&eps, end, &tally, &args, seed))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    let deleted = hot_deletes(args, end, &tally);
    for t in threads {
        t.join().map_err(|_| "an attack thread panicked".to_string())?;
    }
    deleted?;
    let t = &tally;
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "attack: {:.0} s: garbage {} half-frame {} trickle {} churn {} jumbo frames {} (out of memory {}) hot deletes {} \
         (not durable {}); model mismatches {} unreachable {}",
        args.duration.as_secs_f64(),
        n(&t.garbage),
        n(&t.half),
        n(&t.trickle),
        n(&t.churn),
        n(&t.jumbo_frames),
        n(&t.jumbo_oom),
        n(&t.deletes),
        n(&t.not_durable),
        n(&t.mismatches),
        n(&t.unreachable),
    );
    Ok(n(&t.mismatches) == 0 && n(&t.unreachable) == 0)
}

fn connect(addr: &str, tally: &Tally) -> Option<TcpStream> {
    match TcpStream::connect(addr) {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            Some(s)
        }
        Err(e) => {
            eprintln!("percore attack: cannot connect to {addr}: {e}");
            bump(&tally.unreachable);
            std::thread::sleep(Duration::from_millis(100));
            None
        }
    }
}

/// A discovery hello carrying the cluster's secret (`run` resolved it into
/// `--password`), so the attack's connections get past the handshake as a
/// client's would.
fn hello(args: &AttackArgs) -> Vec<u8> {
    let mut out = Vec::new();
    let h = Hello {
        protocol: wire::frame::PROTOCOL_VERSION,
        shard: None,
        total_shards: None,
        client: "attack".into(),
        password: args.target.password.clone(),
    };
    // A hello always encodes.
    let _ = encode(FrameKind::Hello, &h, &mut out);
    out
}

/// Reads until the server closes the connection (or 20 s pass).
fn drain(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

fn pace(every: Duration, next: &mut Instant) {
    *next += every;
    let now = Instant::now();
    if *next > now {
        std::thread::sleep(*next - now);
    } else {
        *next = now;
    }
}

fn garbage(eps: &[String], end: Instant, tally: &Tally, _: &AttackArgs, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut next = Instant::now();
    while Instant::now() < end {
        let addr = &eps[rng.random_range(0..eps.len())];
        if let Some(mut s) = connect(addr, tally) {
            let len = rng.random_range(1..4096);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) {
                bytes[..4.min(len)].copy_from_slice(&b"PCOR"[..4.min(len)]);
            } else {
                // RESP garbage: whatever commands the lines make, then a
                // malformed multibulk that ends the connection.
                bytes.extend_from_slice(b"\r\n*x\r\n");
            }
            let _ = s.write_all(&bytes);
            drain(s);
            bump(&tally.garbage);
        }
        pace(Duration::from_millis(50), &mut next);
    }
}

fn half_frames(eps: &[String], end: Instant, tally: &Tally, args: &AttackArgs, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let hello = hello(args);
    let mut held: Vec<TcpStream> = Vec::new();
    let mut next = Instant::now();
    while Instant::now() < end {
        // Forget the ones the server has closed.
        held.retain(|s| {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 512];
            let open = match (&*s).read(&mut b) {
                Ok(0) => false,
                Ok(_) => false, // an error frame: it is being closed
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            };
            let _ = s.set_nonblocking(false);
            open
        });
        while held.len() < args.half && Instant::now() < end {
            let addr = &eps[rng.random_range(0..eps.len())];
            let Some(mut s) = connect(addr, tally) else { break };
            let cut = rng.random_range(1..hello.len());
            let _ = s.write_all(&hello[..if rng.random_bool(0.5) { cut.min(15) } else { cut }]);
            held.push(s);
            bump(&tally.half);
            pace(Duration::from_millis(5), &mut next);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn trickle(eps: &[String], end: Instant, tally: &Tally, args: &AttackArgs, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut frame = Vec::new();
    let mut enc = RequestEncoder::new();
    enc.begin(&mut frame, 1);
    enc.put(&mut frame, b"{attack}trickled", &[0x55; 2000]);
    enc.finish(&mut frame);
    let mut conns: Vec<(TcpStream, usize)> = Vec::new();
    while Instant::now() < end {
        while conns.len() < 4 {
            let addr = &eps[rng.random_range(0..eps.len())];
            let Some(mut s) = connect(addr, tally) else { break };
            if s.write_all(&hello(args)).is_err() {
                continue;
            }
            conns.push((s, 0));
            bump(&tally.trickle);
        }
        // One byte on every connection; drop those the server has cut off.
        conns.retain_mut(|(s, at)| {
            let sent = s.write_all(&frame[*at % frame.len()..*at % frame.len() + 1]).is_ok();
            *at += 1;
            sent && *at < frame.len()
        });
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn churn(eps: &[String], end: Instant, tally: &Tally, args: &AttackArgs, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let hello = hello(args);
    let mut next = Instant::now();
    while Instant::now() < end {
        let addr = &eps[rng.random_range(0..eps.len())];
        if let Some(mut s) = connect(addr, tally) {
            if rng.random_range(0..3) == 0 {
                let _ = s.write_all(&hello);
            }
            bump(&tally.churn);
        }
        pace(Duration::from_millis(5), &mut next);
    }
}

/// The attacker's own keys: one hash tag, so one shard and one frame.
const JUMBO_KEYS: [&[u8]; 4] = [b"{attack}j0", b"{attack}j1", b"{attack}j2", b"{attack}j3"];

fn jumbo(eps: &[String], end: Instant, tally: &Tally, args: &AttackArgs, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let Ok(mut client) = Client::discover(&eps[0], args.target.password.clone(), Duration::from_secs(10)) else {
        bump(&tally.unreachable);
        return;
    };
    let shard = client.map().shard_of(JUMBO_KEYS[0]);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut next = Instant::now();
    let mut fill = 0u8;
    while Instant::now() < end {
        let Ok(conn) = client.conn(shard) else {
            bump(&tally.unreachable);
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let max = conn.limits().max_value_len as usize;
        let jumbo_len = rng.random_range((512 << 10).min(max)..=max);
        let budget = conn.limits().max_frame_bytes as usize - 4096;
        let mut ops = Vec::new();
        let mut bytes = 0;
        for _ in 0..rng.random_range(2..12) {
            let key = JUMBO_KEYS[rng.random_range(0..JUMBO_KEYS.len())].to_vec();
            let op = match rng.random_range(0..10) {
                0..=2 if bytes + jumbo_len < budget => {
                    fill = fill.wrapping_add(1);
                    bytes += jumbo_len;
                    Op::Put { key, value: vec![fill; jumbo_len] }
                }
                3..=4 => {
                    fill = fill.wrapping_add(1);
                    Op::Put { key, value: vec![fill; rng.random_range(0..300)] }
                }
                5..=6 => Op::Delete { key },
                _ => Op::Get { key },
            };
            ops.push(op);
        }
        // Replies must fit too: at most two large values read per frame.
        let gets = ops.iter().filter(|o| matches!(o, Op::Get { .. })).count();
        if gets * max > budget {
            ops.retain(|o| !matches!(o, Op::Get { .. }));
            ops.push(Op::Get { key: JUMBO_KEYS[0].to_vec() });
        }
        match conn.execute(&ops) {
            Ok(results) => {
                bump(&tally.jumbo_frames);
                for (op, got) in ops.iter().zip(&results) {
                    let want = step(&mut model, op, got, tally);
                    if *got != want {
                        eprintln!("percore attack: jumbo model mismatch on {:?}", op_name(op));
                        bump(&tally.mismatches);
                    }
                }
            }
            Err(e) => {
                eprintln!("percore attack: jumbo frame failed: {e}");
                bump(&tally.unreachable);
            }
        }
        pace(Duration::from_millis(100), &mut next);
    }
    // Leave nothing behind.
    if let Ok(conn) = client.conn(shard) {
        let _ = conn.execute(&JUMBO_KEYS.iter().map(|k| Op::Delete { key: k.to_vec() }).collect::<Vec<_>>());
    }
}

/// The expected result of `op` given the model, updating it; an
/// OutOfMemory answer to a PUT is accepted (a node with `maxmemory`), and
/// a NotDurable answer to a PUT or DELETE (a node whose log disk is full
/// or failing): either leaves the key as it was.
fn step(model: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Op, got: &OpResult, tally: &Tally) -> OpResult {
    if !matches!(op, Op::Get { .. }) && *got == OpResult::Error(OpError::NotDurable) {
        bump(&tally.not_durable);
        return got.clone();
    }
    match op {
        Op::Get { key } => model.get(key.as_slice()).map_or(OpResult::NotFound, |v| OpResult::Value(v.clone())),
        Op::Put { key, value } => {
            if *got == OpResult::Error(OpError::OutOfMemory) {
                bump(&tally.jumbo_oom);
                return got.clone();
            }
            model.insert(key.clone(), value.clone());
            OpResult::Done
        }
        Op::Delete { key } => {
            model.remove(key.as_slice());
            OpResult::Done
        }
    }
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Get { key } => format!("GET {}", String::from_utf8_lossy(key)),
        Op::Put { key, value } => format!("PUT {} ({} B)", String::from_utf8_lossy(key), value.len()),
        Op::Delete { key } => format!("DEL {}", String::from_utf8_lossy(key)),
    }
}

/// Deletes the hottest records of the load generator's scrambled zipfian,
/// each once, evenly over the run, recording each DELETE.
fn hot_deletes(args: &AttackArgs, end: Instant, tally: &Tally) -> Result<(), String> {
    let epoch = Instant::now();
    let sink = match &args.history {
        Some(path) => {
            let header = Header::now("attack", 1);
            Some(HistorySink::create(path, &header).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let mut writer = sink.as_ref().and_then(|s| s.writer(0));
    let mut records: Vec<u64> = Vec::new();
    let mut rank = 0u64;
    while (records.len() as u64) < args.hot_deletes.min(args.records) && rank < args.records * 4 {
        let r = loadgen::zipf::fnv1a64(rank) % args.records;
        if !records.contains(&r) {
            records.push(r);
        }
        rank += 1;
    }
    let mut client = args.target.client().map_err(|e| e.to_string())?;
    let gap = end.saturating_duration_since(Instant::now()) / (records.len() as u32 + 1);
    let mut keys = KeyBuf::default();
    let mut next = Instant::now();
    for r in records {
        pace(gap, &mut next);
        if Instant::now() >= end {
            break;
        }
        let key = keys.key(r).to_vec();
        let invoke = epoch.elapsed().as_nanos() as u64;
        let done = client.delete(&key);
        let response = match done {
            Ok(()) => epoch.elapsed().as_nanos() as u64,
            // Refused as not durable: nothing was deleted, so it is no
            // history.
            Err(wire::Error::Op { code: OpError::NotDurable, .. }) => {
                bump(&tally.not_durable);
                continue;
            }
            Err(ref e) => {
                eprintln!("percore attack: DELETE {r}: {e}");
                bump(&tally.unreachable);
                NO_RESPONSE
            }
        };
        if let Some(w) = writer.as_mut() {
            w.record(r, Kind::Delete, 0, invoke, response);
        }
        bump(&tally.deletes);
    }
    if let Some(w) = writer {
        w.finish();
    }
    if let Some(sink) = sink {
        sink.close().map_err(|e| format!("history: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jumbo_model_accepts_out_of_memory_and_keeps_the_old_value() {
        let tally = Tally::default();
        let mut model = HashMap::new();
        let put = Op::Put { key: b"k".to_vec(), value: b"v1".to_vec() };
        assert_eq!(step(&mut model, &put, &OpResult::Done, &tally), OpResult::Done);
        let big = Op::Put { key: b"k".to_vec(), value: vec![0; 10] };
        let oom = OpResult::Error(OpError::OutOfMemory);
        assert_eq!(step(&mut model, &big, &oom, &tally), oom);
        let get = Op::Get { key: b"k".to_vec() };
        assert_eq!(step(&mut model, &get, &OpResult::NotFound, &tally), OpResult::Value(b"v1".to_vec()));
        assert_eq!(tally.jumbo_oom.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_jumbo_model_accepts_not_durable_writes_and_keeps_the_old_value() {
        let tally = Tally::default();
        let mut model = HashMap::new();
        let put = Op::Put { key: b"k".to_vec(), value: b"v1".to_vec() };
        assert_eq!(step(&mut model, &put, &OpResult::Done, &tally), OpResult::Done);
        let refused = OpResult::Error(OpError::NotDurable);
        let again = Op::Put { key: b"k".to_vec(), value: b"v2".to_vec() };
        assert_eq!(step(&mut model, &again, &refused, &tally), refused);
        let del = Op::Delete { key: b"k".to_vec() };
        assert_eq!(step(&mut model, &del, &refused, &tally), refused);
        let get = Op::Get { key: b"k".to_vec() };
        assert_eq!(step(&mut model, &get, &OpResult::NotFound, &tally), OpResult::Value(b"v1".to_vec()));
        // A GET is never refused as not durable: the model expects its value.
        assert_eq!(step(&mut model, &get, &refused, &tally), OpResult::Value(b"v1".to_vec()));
        assert_eq!(tally.not_durable.load(Ordering::Relaxed), 2);
    }
}
