//! `percore save`: a snapshot of every shard of a cluster (or of one node),
//! each made durable before the command returns — RESP `SAVE` sent to
//! every shard's port, one shard after another, with the cluster's secret.

use crate::cmd::target::TargetArgs;
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `percore save`
#[derive(Args, Debug)]
pub struct SaveArgs {
    #[command(flatten)]
    /// Where the cluster is.
    pub target: TargetArgs,
    /// Give up on a shard whose snapshot takes longer than this many seconds.
    #[arg(long, value_name = "S", default_value_t = 600)]
    pub timeout: u64,
}

/// One RESP command as a multibulk.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends `args` and reads the one-line reply (`+…` or `-…`).
fn ask(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, args: &[&str]) -> Result<String, String> {
    stream.write_all(&command(args)).map_err(|e| format!("sending {}: {e}", args[0]))?;
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| format!("reading the reply to {}: {e}", args[0]))?;
    let line = line.trim_end().to_string();
    match line.split_at_checked(1) {
        Some(("+", ok)) => Ok(ok.to_string()),
        Some(("-", err)) => Err(err.to_string()),
        _ if line.is_empty() => Err(format!("the connection closed before the reply to {}", args[0])),
        _ => Err(format!("an unexpected reply to {}: {line:?}", args[0])),
    }
}

/// Snapshots every shard; prints one line per shard. An error names the
/// shard that failed (the ones before it are saved).
pub fn save(args: &SaveArgs) -> Result<(), wire::Error> {
    let client = args.target.client()?;
    let secret = args.target.secret()?;
    for s in client.map().shards() {
        let addr = format!("{}:{}", s.addr, s.port);
        let fail = |m: String| wire::Error::Io { addr: addr.clone(), source: std::io::Error::other(m) };
        let io = |e: std::io::Error| wire::Error::Io { addr: addr.clone(), source: e };
        let started = Instant::now();
        let mut stream = TcpStream::connect(&addr).map_err(io)?;
        stream.set_read_timeout(Some(Duration::from_secs(args.timeout.max(1)))).map_err(io)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(io)?);
        if let Some(secret) = &secret {
            ask(&mut stream, &mut reader, &["AUTH", secret]).map_err(|e| fail(format!("AUTH: {e}")))?;
        }
        ask(&mut stream, &mut reader, &["SAVE"]).map_err(|e| fail(format!("shard {}: {e}", s.id)))?;
        println!("shard {} ({addr}): saved in {:.3} s", s.id, started.elapsed().as_secs_f64());
    }
    Ok(())
}
