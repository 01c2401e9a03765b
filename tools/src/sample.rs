//! `percore sample`: the hardware sampler the cluster scripts run on every
//! node during an experiment.
//!
//! Once per interval it appends one JSON line of raw counters to `--out`:
//!
//! | key | from | meaning |
//! |---|---|---|
//! | `t` | clock | Unix time, seconds |
//! | `cpu_busy`, `cpu_total` | `/proc/stat` `cpu` line | jiffies not idle (idle + iowait are idle), and all jiffies, summed over CPUs |
//! | `ncpu` | `/proc/stat` | CPUs counted |
//! | `mem_total_kb`, `mem_available_kb` | `/proc/meminfo` | |
//! | `iface` | `--iface` / `--addr` | interface measured (`"all"`: every non-loopback one summed) |
//! | `rx_bytes`, `tx_bytes` | `/proc/net/dev` | that interface's byte counters |
//! | `speed_mbps` | `/sys/class/net/IF/speed` | NIC line rate, Mbit/s; `null` when the interface reports none (a veth, a VM's NIC, or `all`) |
//!
//! Counters, not rates: the report takes differences between lines, so no
//! interval is lost or double-counted. `/proc/net/dev` is per network
//! namespace (right per node even on the namespace test cluster);
//! `/proc/stat` and `/proc/meminfo` are per machine.
//!
//! It runs until SIGTERM/SIGINT or `--duration` (default 1 h, so a sampler
//! whose script died stops by itself), and writes a last line when stopped.

use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// `percore sample` options.
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// JSON-lines file to append samples to.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Sampling interval.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval_ms: u64,
    /// Network interface to measure.
    #[arg(long, value_name = "IF", conflicts_with = "addr")]
    pub iface: Option<String>,
    /// Measure the interface that holds this address, or that routes to it
    /// (give any cluster server's address). Default: all non-loopback interfaces.
    #[arg(long, value_name = "HOST")]
    pub addr: Option<String>,
    /// Stop after this long (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub duration: Duration,
}

/// One sample: raw counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix time (s).
    pub t: f64,
    /// Non-idle jiffies, all CPUs.
    pub cpu_busy: u64,
    /// All jiffies, all CPUs.
    pub cpu_total: u64,
    /// CPUs in `/proc/stat`.
    pub ncpu: u32,
    /// `MemTotal`, kB.
    pub mem_total_kb: u64,
    /// `MemAvailable`, kB.
    pub mem_available_kb: u64,
    /// Interface measured.
    pub iface: String,
    /// Bytes received on it.
    pub rx_bytes: u64,
    /// Bytes sent on it.
    pub tx_bytes: u64,
    /// Its line rate (Mbit/s), if it reports one.
    pub speed_mbps: Option<u64>,
}

/// Why sampling could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// A /proc or output file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A /proc file did not have the expected shape.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is missing.
        message: String,
    },
    /// The interface to measure could not be found.
    #[error("{0}")]
    Iface(String),
}

fn read(path: &str) -> Result<String, SampleError> {
    std::fs::read_to_string(path).map_err(|source| SampleError::Io { path: path.into(), source })
}

/// `(busy, total, cpus)` jiffies from `/proc/stat` text.
pub fn parse_stat(text: &str) -> Result<(u64, u64, u32), SampleError> {
    let bad = |message: &str| SampleError::Parse { path: "/proc/stat".into(), message: message.into() };
    let line = text.lines().find(|l| l.starts_with("cpu ")).ok_or_else(|| bad("no `cpu` line"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
    if fields.len() < 4 {
        return Err(bad("the `cpu` line has fewer than 4 numbers"));
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    let ncpu =
        text.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count();
    Ok((total - idle, total, ncpu as u32))
}

/// `(MemTotal, MemAvailable)` in kB from `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> Result<(u64, u64), SampleError> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| SampleError::Parse { path: "/proc/meminfo".into(), message: format!("no {name}") })
    };
    Ok((field("MemTotal")?, field("MemAvailable")?))
}

/// `(rx_bytes, tx_bytes)` of `iface` (or of every interface but `lo` when
/// `iface` is `"all"`) from `/proc/net/dev` text.
pub fn parse_net_dev(text: &str, iface: &str) -> Result<(u64, u64), SampleError> {
    let mut found = false;
    let (mut rx, mut tx) = (0u64, 0u64);
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if (iface == "all" && name != "lo") || name == iface {
            let f: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            if f.len() < 9 {
                return Err(SampleError::Parse {
                    path: "/proc/net/dev".into(),
                    message: format!("interface {name} has {} counters", f.len()),
                });
            }
            rx += f[0];
            tx += f[8];
            found = true;
        }
    }
    if !found && iface != "all" {
        return Err(SampleError::Iface(format!("no interface {iface:?} in /proc/net/dev")));
    }
    Ok((rx, tx))
}

/// The interface's line rate in Mbit/s, if it reports a positive one.
pub fn nic_speed(iface: &str) -> Option<u64> {
    if iface == "all" {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/speed")).ok()?;
    text.trim().parse::<i64>().ok().filter(|&s| s > 0).map(|s| s as u64)
}

/// The interface holding `addr`, or the one the kernel routes `addr` through.
pub fn iface_for(addr: &str) -> Result<String, SampleError> {
    let ip: IpAddr = match addr.parse() {
        Ok(ip) => ip,
        Err(_) => (addr, 9)
            .to_socket_addrs()
            .map_err(|e| SampleError::Iface(format!("cannot resolve {addr}: {e}")))?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| SampleError::Iface(format!("{addr} resolves to nothing")))?,
    };
    let ifaces = if_addrs::get_if_addrs().map_err(|e| SampleError::Iface(format!("cannot list interfaces: {e}")))?;
    let holder = |ip: IpAddr| ifaces.iter().find(|i| i.ip() == ip).map(|i| i.name.clone());
    if let Some(name) = holder(ip) {
        return Ok(name);
    }
    // Not ours: ask the kernel which local address it would send from
    // (connecting a UDP socket sends nothing).
    let bind = if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(bind).map_err(|e| SampleError::Iface(format!("cannot open a socket: {e}")))?;
    socket.connect((ip, 9)).map_err(|e| SampleError::Iface(format!("no route to {addr}: {e}")))?;
    let local = socket.local_addr().map_err(|e| SampleError::Iface(format!("no route to {addr}: {e}")))?.ip();
    holder(local).ok_or_else(|| SampleError::Iface(format!("no interface holds {local} (the route to {addr})")))
}

/// Takes one sample now.
pub fn take(iface: &str) -> Result<Sample, SampleError> {
    let (cpu_busy, cpu_total, ncpu) = parse_stat(&read("/proc/stat")?)?;
    let (mem_total_kb, mem_available_kb) = parse_meminfo(&read("/proc/meminfo")?)?;
    let (rx_bytes, tx_bytes) = parse_net_dev(&read("/proc/net/dev")?, iface)?;
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Ok(Sample {
        t,
        cpu_busy,
        cpu_total,
        ncpu,
        mem_total_kb,
        mem_available_kb,
        iface: iface.to_string(),
        rx_bytes,
        tx_bytes,
        speed_mbps: nic_speed(iface),
    })
}

/// Samples until a signal or `--duration`; returns the exit code.
pub fn main(args: &SampleArgs) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("percore sample: {e}");
            1
        }
    }
}

fn run(args: &SampleArgs) -> Result<(), SampleError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| SampleError::Iface(format!("cannot install signal handlers: {e}")))?;
    }
    let iface = match (&args.iface, &args.addr) {
        (Some(i), _) => i.clone(),
        (None, Some(a)) => iface_for(a)?,
        (None, None) => "all".to_string(),
    };
    let out_err = |source| SampleError::Io { path: args.out.display().to_string(), source };
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&args.out).map_err(out_err)?;
    let interval = Duration::from_millis(args.interval_ms.max(10));
    let started = Instant::now();
    let mut next = started;
    // Bounded: one iteration per interval until `duration` (or a signal).
    loop {
        let sample = take(&iface)?;
        let mut line = serde_json::to_vec(&sample).map_err(|e| out_err(std::io::Error::other(e)))?;
        line.push(b'\n');
        out.write_all(&line).map_err(out_err)?;
        out.flush().map_err(out_err)?;
        if stop.load(Ordering::Relaxed) || started.elapsed() >= args.duration {
            return Ok(());
        }
        next += interval;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(next.saturating_duration_since(Instant::now())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\ncpu1 50 3 25 400 10 2 1 0 0 0\nintr 1 2 3\n";
    const MEMINFO: &str = "MemTotal:       24000000 kB\nMemFree:        20000000 kB\nMemAvailable:   18000000 kB\n";
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  eth0: 5000      50    0    0    0     0          0         0     7000      70    0    0    0     0       0          0\n  veth1: 300       3    0    0    0     0          0         0      400       4    0    0    0     0       0          0\n";

    #[test]
    fn parses_proc_stat() {
        let (busy, total, n) = parse_stat(STAT).expect("parses");
        assert_eq!(total, 100 + 5 + 50 + 800 + 20 + 3 + 2);
        assert_eq!(busy, total - 820);
        assert_eq!(n, 2);
        assert!(parse_stat("intr 1\n").is_err());
    }

    #[test]
    fn parses_meminfo() {
        assert_eq!(parse_meminfo(MEMINFO).expect("parses"), (24_000_000, 18_000_000));
        assert!(parse_meminfo("MemTotal: 5 kB\n").is_err());
    }

    #[test]
    fn parses_net_dev() {
        assert_eq!(parse_net_dev(NET_DEV, "eth0").expect("eth0"), (5000, 7000));
        assert_eq!(parse_net_dev(NET_DEV, "all").expect("all"), (5300, 7400));
        let e = parse_net_dev(NET_DEV, "eth9").expect_err("absent").to_string();
        assert!(e.contains("eth9"), "{e}");
    }

    #[test]
    fn loopback_address_maps_to_lo() {
        assert_eq!(iface_for("127.0.0.1").expect("lo holds it"), "lo");
        assert_eq!(nic_speed("all"), None);
    }

    #[test]
    fn a_sample_reads_this_machine() {
        let s = take("all").expect("this machine has /proc");
        assert!(s.cpu_total >= s.cpu_busy && s.ncpu >= 1);
        assert!(s.mem_total_kb >= s.mem_available_kb && s.mem_total_kb > 0);
        let line = serde_json::to_string(&s).expect("serializes");
        let mut back: Sample = serde_json::from_str(&line).expect("round trip");
        assert!((back.t - s.t).abs() < 1e-3, "{} vs {}", back.t, s.t);
        back.t = s.t;
        assert_eq!(back, s);
    }
}
