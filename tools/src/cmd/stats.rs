//! `percore stats`: every shard's counters, and `percore ping`: wait until
//! every shard of a cluster answers its handshake (what the cluster scripts
//! use to know a cluster is up).

use crate::cmd::target::TargetArgs;
use clap::Args;
use std::time::{Duration, Instant};
use wire::msg::{ShardCounters, StatsReply};

/// `percore stats`
#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    /// Where the cluster is.
    pub target: TargetArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `percore ping`
#[derive(Args, Debug)]
pub struct PingArgs {
    #[command(flatten)]
    /// Where the cluster is.
    pub target: TargetArgs,
    /// Keep trying for this many seconds before giving up.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub wait: u64,
}

fn counters_json(c: &ShardCounters) -> serde_json::Value {
    serde_json::json!({
        "ops": c.ops, "gets": c.gets, "puts": c.puts, "deletes": c.deletes, "misses": c.misses,
        "wrong_shard": c.wrong_shard, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
        "connections_open": c.connections_open, "connections_total": c.connections_total,
        "protocol_errors": c.protocol_errors, "keys": c.keys, "store_bytes": c.store_bytes,
        "memory_limit": c.memory_limit, "out_of_memory": c.out_of_memory,
        "connections_refused": c.connections_refused, "connections_evicted": c.connections_evicted,
        "handshake_timeouts": c.handshake_timeouts, "frame_timeouts": c.frame_timeouts,
        "idle_timeouts": c.idle_timeouts, "write_timeouts": c.write_timeouts,
    })
}

/// Prints the table (or JSON) of every shard's counters.
pub fn stats(args: &StatsArgs) -> Result<(), wire::Error> {
    let mut client = args.target.client()?;
    let replies = client.stats()?;
    let shards = client.map().shards().to_vec();
    if args.json {
        let rows: Vec<serde_json::Value> = replies
            .iter()
            .zip(&shards)
            .map(|(r, s)| {
                serde_json::json!({
                    "shard": r.shard, "node": r.node, "cpu": r.cpu, "addr": format!("{}:{}", s.addr, s.port),
                    "uptime_s": r.uptime_ms as f64 / 1000.0, "counters": counters_json(&r.counters),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }
    print!("{}", table(&replies, &shards));
    Ok(())
}

fn table(replies: &[StatsReply], shards: &[wire::msg::ShardInfo]) -> String {
    let mut out = format!(
        "{:>5} {:<10} {:>4} {:<21} {:>9} {:>12} {:>12} {:>10} {:>9} {:>10} {:>10} {:>6} {:>9}\n",
        "shard",
        "node",
        "cpu",
        "addr",
        "uptime_s",
        "ops",
        "gets",
        "puts",
        "deletes",
        "misses",
        "keys",
        "conns",
        "store_MB"
    );
    let mut total = ShardCounters::default();
    for (r, s) in replies.iter().zip(shards) {
        let c = &r.counters;
        total += *c;
        out.push_str(&format!(
            "{:>5} {:<10} {:>4} {:<21} {:>9.1} {:>12} {:>12} {:>10} {:>9} {:>10} {:>10} {:>6} {:>9.1}\n",
            r.shard,
            r.node,
            r.cpu,
            format!("{}:{}", s.addr, s.port),
            r.uptime_ms as f64 / 1000.0,
            c.ops,
            c.gets,
            c.puts,
            c.deletes,
            c.misses,
            c.keys,
            c.connections_open,
            c.store_bytes as f64 / 1e6
        ));
    }
    out.push_str(&format!(
        "{:>5} {:<10} {:>4} {:<21} {:>9} {:>12} {:>12} {:>10} {:>9} {:>10} {:>10} {:>6} {:>9.1}\n",
        "total",
        "",
        "",
        "",
        "",
        total.ops,
        total.gets,
        total.puts,
        total.deletes,
        total.misses,
        total.keys,
        total.connections_open,
        total.store_bytes as f64 / 1e6
    ));
    // What the limits did (see the README's "Limits and hostile clients").
    out.push_str(&format!(
        "\n{:>5} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "shard", "refused", "evicted", "handshk_to", "frame_to", "idle_to", "write_to", "proto_err", "oom", "limit_MB"
    ));
    let mut row = |name: String, c: &ShardCounters| {
        let limit = if c.memory_limit == 0 { "-".to_string() } else { format!("{:.1}", c.memory_limit as f64 / 1e6) };
        out.push_str(&format!(
            "{name:>5} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {limit:>9}\n",
            c.connections_refused,
            c.connections_evicted,
            c.handshake_timeouts,
            c.frame_timeouts,
            c.idle_timeouts,
            c.write_timeouts,
            c.protocol_errors,
            c.out_of_memory,
        ));
    };
    for r in replies {
        row(r.shard.to_string(), &r.counters);
    }
    row("total".into(), &total);
    out
}

/// Connects to every shard (checking ids and count in each handshake),
/// retrying for up to `--wait` seconds. Prints one line per shard.
pub fn ping(args: &PingArgs) -> Result<(), wire::Error> {
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    loop {
        let attempt = (|| {
            let mut client = args.target.client()?;
            let n = client.map().len() as u32;
            let mut lines = Vec::new();
            for id in 0..n {
                let conn = client.conn(id)?;
                let h = conn.hello();
                lines.push(format!("shard {id} on {} ({}): ok", conn.addr(), h.node));
            }
            Ok::<_, wire::Error>(lines)
        })();
        match attempt {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
