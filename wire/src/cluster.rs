//! The cluster file and the shard map built from it.
//!
//! One TOML file describes a deployment; the server, the load generator,
//! the CLI and the cluster scripts all read it through [`Cluster::load`], so
//! they cannot disagree. The schema is documented in `cluster/README.md`:
//!
//! ```toml
//! base_port = 7000                 # shard i of a server listens on base_port + i
//!
//! [[server]]
//! name  = "node0"                  # how the cluster scripts reach it (ssh host)
//! addr  = "10.10.1.1"              # where clients connect
//! cores = [1, 2, 3, 4, 5, 6, 7]    # one shard per CPU, pinned ("1-7" works too)
//!
//! [[client]]
//! name  = "node4"
//! cores = "0-7"
//! ```
//!
//! Global shard ids follow file order (server 0's cores first). Hash slots
//! are split evenly over the shards in that order unless every server
//! assigns them with `slots = ["0-4095", …]` (one entry per core).
//!
//! [`ShardMap`] is the slot → shard table, the other half of routing (the
//! first is [`crate::slot::slot_of`]).

use crate::limits::{Limits, ServerLimits, parse_bytes, parse_duration};
use crate::msg::{ReplicaInfo, ShardInfo, SlotRange};
use crate::slot::{SLOTS, slot_of};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Default base port.
pub const DEFAULT_BASE_PORT: u16 = 7000;

/// Why a cluster file (or a shard map) cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read cluster file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the schema.
    #[error("cluster file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parses but describes an impossible cluster.
    #[error("cluster file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the values.
        message: String,
    },
    /// A node name that the file does not list.
    #[error("cluster file {path} has no {role} named {name:?} (it lists: {known})")]
    UnknownNode {
        /// The file.
        path: String,
        /// "server" or "client".
        role: &'static str,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: String,
    },
}

/// A list of CPUs: `[1, 2, 3]` or `"1-3"` / `"0,2,4-6"` in the file.
#[derive(Deserialize)]
#[serde(untagged)]
enum CpuListFile {
    List(Vec<u32>),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    name: String,
    addr: String,
    cores: CpuListFile,
    port: Option<u16>,
    listen: Option<String>,
    slots: Option<Vec<String>>,
    metrics_port: Option<u16>,
    peer_port: Option<u16>,
    member: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    name: String,
    cores: CpuListFile,
    addr: Option<String>,
}

/// How the cluster scripts reach nodes over ssh (all optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSettings {
    /// Remote user; unset means ssh's own default.
    pub user: Option<String>,
    /// Remote port; unset means 22 / ssh config.
    pub port: Option<u16>,
    /// Identity file.
    pub identity: Option<String>,
    /// Extra `-o` options, e.g. `"StrictHostKeyChecking=accept-new"`.
    pub options: Vec<String>,
    /// Directory on each node where binaries, pid files and logs live.
    pub dir: Option<String>,
}

/// A duration in the file: `"5s"`, `"250ms"`, or a number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationFile {
    Seconds(u64),
    Text(String),
}

impl DurationFile {
    fn resolve(self, name: &str) -> Result<std::time::Duration, String> {
        match self {
            DurationFile::Seconds(s) => Ok(std::time::Duration::from_secs(s)),
            DurationFile::Text(t) => parse_duration(&t).map_err(|e| format!("[limits] {name}: {e}")),
        }
    }
}

/// A byte count in the file: `"4gb"`, `"100mb"`, or a number of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum BytesFile {
    Bytes(u64),
    Text(String),
}

/// The `[limits]` table: the frame limits every server announces, and the
/// resource limits of every server node (see [`ServerLimits`]).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct LimitsFile {
    max_frame_bytes: Option<u32>,
    max_ops_per_frame: Option<u32>,
    max_key_len: Option<u32>,
    max_value_len: Option<u32>,
    handshake_timeout: Option<DurationFile>,
    frame_timeout: Option<DurationFile>,
    idle_timeout: Option<DurationFile>,
    write_timeout: Option<DurationFile>,
    shutdown_timeout: Option<DurationFile>,
    max_connections: Option<u32>,
    maxmemory: Option<BytesFile>,
    proto_max_bulk_len: Option<BytesFile>,
    max_multibulk_len: Option<u32>,
}

impl LimitsFile {
    fn resolve(self) -> Result<(Limits, ServerLimits), String> {
        let d = Limits::default();
        let limits = Limits {
            max_frame_bytes: self.max_frame_bytes.unwrap_or(d.max_frame_bytes),
            max_ops_per_frame: self.max_ops_per_frame.unwrap_or(d.max_ops_per_frame),
            max_key_len: self.max_key_len.unwrap_or(d.max_key_len),
            max_value_len: self.max_value_len.unwrap_or(d.max_value_len),
        };
        limits.validate().map_err(|e| e.to_string())?;
        let mut server = ServerLimits::default();
        let timeouts = [
            ("handshake_timeout", self.handshake_timeout, &mut server.handshake_timeout),
            ("frame_timeout", self.frame_timeout, &mut server.frame_timeout),
            ("write_timeout", self.write_timeout, &mut server.write_timeout),
            ("shutdown_timeout", self.shutdown_timeout, &mut server.shutdown_timeout),
        ];
        for (name, value, field) in timeouts {
            if let Some(v) = value {
                *field = v.resolve(name)?;
            }
        }
        if let Some(v) = self.idle_timeout {
            let d = v.resolve("idle_timeout")?;
            server.idle_timeout = (!d.is_zero()).then_some(d);
        }
        if let Some(n) = self.max_connections {
            server.max_connections = n;
        }
        server.maxmemory = match self.maxmemory {
            None => None,
            Some(BytesFile::Bytes(n)) => Some(n),
            Some(BytesFile::Text(t)) => Some(parse_bytes(&t).map_err(|e| format!("[limits] maxmemory: {e}"))?),
        }
        .filter(|&n| n > 0);
        if let Some(v) = self.proto_max_bulk_len {
            let n = match v {
                BytesFile::Bytes(n) => n,
                BytesFile::Text(t) => parse_bytes(&t).map_err(|e| format!("[limits] proto_max_bulk_len: {e}"))?,
            };
            server.proto_max_bulk_len =
                u32::try_from(n).map_err(|_| format!("[limits] proto_max_bulk_len {n} is too large"))?;
        }
        if let Some(n) = self.max_multibulk_len {
            server.max_multibulk_len = n;
        }
        server.validate().map_err(|e| e.to_string())?;
        Ok((limits, server))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    base_port: Option<u16>,
    replicas: Option<u32>,
    requirepass: Option<String>,
    metrics_port: Option<u16>,
    data_dir: Option<String>,
    fsync: Option<Fsync>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    ssh: SshSettings,
    #[serde(default)]
    server: Vec<ServerFile>,
    #[serde(default)]
    client: Vec<ClientFile>,
}

/// One server node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Node name (ssh host for the scripts).
    pub name: String,
    /// Address clients connect to.
    pub addr: String,
    /// Address the shards bind (defaults to `addr`).
    pub listen: String,
    /// Port of its first shard (the shard map holds every shard's own port).
    pub port: u16,
    /// CPUs, one shard each, in local shard order.
    pub cores: Vec<u32>,
    /// Global ids of its shards.
    pub shards: Range<u32>,
    /// Port of its Prometheus endpoint (`http://listen:port/metrics`); 0: off.
    pub metrics_port: u16,
    /// Port its first shard's replica listens on for its group's peers
    /// (`peer_port`, default `port` + [`PEER_PORT_OFFSET`]); shard `i` uses
    /// `peer_port + i`. Unused when `replicas` is 1.
    pub peer_port: u16,
    /// Its replicas' member id in their groups (`member`; default: its
    /// place in its set of `replicas` servers, from 1). A server that
    /// replaces a dead one (or takes a moved replica) needs an id that none
    /// of the set's servers ever had: see [`MAX_MEMBER_ID`].
    pub member: u64,
}

/// Highest member id the cluster file may state (ids travel as `u32` in
/// the shard map and in NotLeader).
pub const MAX_MEMBER_ID: u64 = u32::MAX as u64;

/// How far above a server's client ports its peer ports start by default
/// (as Redis Cluster's bus port is its port + 10000).
pub const PEER_PORT_OFFSET: u16 = 10000;
/// Most replicas a shard may have.
pub const MAX_REPLICAS: u32 = 7;

/// One replica of a replicated shard: where it runs and how its group's
/// peers reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its id in the group: its server's `member` (by default 1 for the
    /// first server of the group's set, 2 for the next, …).
    pub id: u64,
    /// Its server's name.
    pub node: String,
    /// Address clients and peers connect to.
    pub addr: String,
    /// Port clients connect to.
    pub port: u16,
    /// Port its peers connect to.
    pub peer_port: u16,
    /// CPU it runs on.
    pub cpu: u32,
}

/// One client (load generator) node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientNode {
    /// Node name (ssh host for the scripts).
    pub name: String,
    /// CPUs to run load threads on.
    pub cores: Vec<u32>,
    /// Address, if different from the name.
    pub addr: Option<String>,
}

/// A validated cluster description.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The file it came from, if any (for messages).
    pub source: String,
    /// Default port of every server's first shard.
    pub base_port: u16,
    /// Frame limits every server enforces.
    pub limits: Limits,
    /// What a peer may make every server node hold (the file's `[limits]`;
    /// a server's command line may override them).
    pub server_limits: ServerLimits,
    /// ssh settings for the scripts.
    pub ssh: SshSettings,
    /// Server nodes in file order.
    pub servers: Vec<Server>,
    /// Client nodes in file order.
    pub clients: Vec<ClientNode>,
    /// Slot → shard table and every shard's address.
    pub map: ShardMap,
    /// The secret clients must present (RESP `AUTH`, the percore hello);
    /// `None`: anyone who can reach a port may use it.
    pub requirepass: Option<String>,
    /// Where every server node keeps its durable log (`data_dir`; each
    /// node's own disk); `None`: in memory only.
    pub data_dir: Option<String>,
    /// When the durable log syncs (`fsync`; Redis's `appendfsync`).
    pub fsync: Option<Fsync>,
    /// Replicas of every shard (`replicas`, 1: not replicated). Servers
    /// form sets of this many, in file order; the servers of a set have as
    /// many cores each, and core `i` of each holds a replica of the same
    /// shard. The shard map names each shard's first leader: the set's
    /// servers take turns, so leaders start spread evenly.
    pub replicas: u32,
}

/// When a durable node's log syncs, as Redis's `appendfsync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Every reply waits until what it could have observed is durable.
    Always,
    /// Replies at once; the log is synced about once a second.
    #[default]
    Everysec,
    /// Replies at once; percore never syncs the log (the kernel and the
    /// disk decide when it is durable).
    No,
}

impl std::str::FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Fsync, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::Everysec),
            "no" => Ok(Fsync::No),
            other => Err(format!("fsync must be always, everysec or no, not {other:?}")),
        }
    }
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        })
    }
}

/// Parses a CPU list: `"3"`, `"1-7"`, `"0,2,4-6"`. Duplicates are an error.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty entry in CPU list {text:?}"));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u32 = lo.parse().map_err(|_| format!("{lo:?} in CPU list {text:?} is not a CPU number"))?;
        let hi: u32 = hi.parse().map_err(|_| format!("{hi:?} in CPU list {text:?} is not a CPU number"))?;
        if hi < lo {
            return Err(format!("range {part:?} in CPU list {text:?} runs backwards"));
        }
        if hi - lo > 4096 {
            return Err(format!("range {part:?} in CPU list {text:?} is implausibly large"));
        }
        cpus.extend(lo..=hi);
    }
    check_unique_cpus(&cpus).map_err(|cpu| format!("CPU {cpu} is listed twice in {text:?}"))?;
    Ok(cpus)
}

fn check_unique_cpus(cpus: &[u32]) -> Result<(), u32> {
    let mut seen = HashSet::new();
    for &c in cpus {
        if !seen.insert(c) {
            return Err(c);
        }
    }
    Ok(())
}

/// The CPUs this process may run on (its affinity mask), sorted: what
/// every CPU list given to percore is checked against. `[0]` if the mask
/// cannot be read.
pub fn available_cpus() -> Vec<u32> {
    // SAFETY: sched_getaffinity fills the set we own, of the size we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).map(|c| c as u32).collect()
    }
}

/// Formats CPUs compactly: `[1,2,3,5]` → `"1-3,5"`.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}-{}", cpus[i], cpus[j]) } else { cpus[i].to_string() });
        i = j + 1;
    }
    parts.join(",")
}

/// Parses slot ranges: `"0-5460"`, `"0-99,200-299,4000"`.
pub fn parse_slot_ranges(text: &str) -> Result<Vec<SlotRange>, String> {
    let mut ranges = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let start: u16 = a.trim().parse().map_err(|_| format!("{a:?} in slot list {text:?} is not a slot"))?;
        let end: u16 = b.trim().parse().map_err(|_| format!("{b:?} in slot list {text:?} is not a slot"))?;
        if end < start || end as usize >= SLOTS {
            return Err(format!("slot range {part:?} must be within 0-{} and ascending", SLOTS - 1));
        }
        ranges.push(SlotRange { start, end });
    }
    Ok(ranges)
}

/// The even split of all slots over `n` shards: shard `i` gets
/// `[i·16384/n, (i+1)·16384/n)`.
pub fn even_slots(n: usize, i: usize) -> SlotRange {
    let start = i * SLOTS / n;
    let end = (i + 1) * SLOTS / n - 1;
    SlotRange { start: start as u16, end: end as u16 }
}

impl CpuListFile {
    fn resolve(self, what: &str) -> Result<Vec<u32>, String> {
        let cpus = match self {
            CpuListFile::List(v) => {
                check_unique_cpus(&v).map_err(|c| format!("{what}: CPU {c} is listed twice"))?;
                v
            }
            CpuListFile::Text(t) => parse_cpu_list(&t).map_err(|e| format!("{what}: {e}"))?,
        };
        if cpus.is_empty() {
            return Err(format!("{what}: cores must list at least one CPU"));
        }
        Ok(cpus)
    }
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{what} {name:?} must be non-empty and contain no whitespace"));
    }
    Ok(())
}

impl Cluster {
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<Cluster, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Cluster::parse(&text, &path.display().to_string())
    }

    /// Validates a cluster file's text; `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Cluster, ConfigError> {
        let file: ClusterFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: source.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let invalid = |message: String| ConfigError::Invalid { path: source.to_string(), message };
        let (limits, server_limits) = file.limits.resolve().map_err(invalid)?;
        if file.server.is_empty() {
            return Err(invalid("no [[server]] listed".into()));
        }
        let base_port = file.base_port.unwrap_or(DEFAULT_BASE_PORT);
        let replicas = file.replicas.unwrap_or(1);
        if replicas == 0 || replicas > MAX_REPLICAS {
            return Err(invalid(format!("replicas = {replicas}: must be 1 to {MAX_REPLICAS}")));
        }
        if !(file.server.len() as u32).is_multiple_of(replicas) {
            return Err(invalid(format!(
                "replicas = {replicas} needs the servers in sets of {replicas} (each of a shard's replicas on its own server), but {} servers are listed",
                file.server.len()
            )));
        }
        if replicas > 1 && file.server.iter().any(|s| s.slots.is_some()) {
            return Err(invalid(format!(
                "replicas = {replicas}: slots cannot be assigned by hand yet (they are split evenly over the shards)"
            )));
        }
        let mut servers = Vec::new();
        let mut names = HashSet::new();
        let mut endpoints = HashSet::new();
        let mut next_shard = 0u32;
        let assigned = file.server.iter().filter(|s| s.slots.is_some()).count();
        if assigned != 0 && assigned != file.server.len() {
            return Err(invalid("either every [[server]] assigns slots or none does".into()));
        }
        let mut slot_lists = Vec::new();
        for s in file.server {
            check_name(&s.name, "server name").map_err(invalid)?;
            check_name(&s.addr, "server addr").map_err(invalid)?;
            if !names.insert(s.name.clone()) {
                return Err(invalid(format!("node name {:?} is used twice", s.name)));
            }
            let cores = s.cores.resolve(&format!("server {:?}", s.name)).map_err(invalid)?;
            let port = s.port.unwrap_or(base_port);
            if port == 0 || port as usize + cores.len() - 1 > u16::MAX as usize {
                return Err(invalid(format!(
                    "server {:?}: ports {port}..{} are not all valid TCP ports",
                    s.name,
                    port as usize + cores.len() - 1
                )));
            }
            let listen = s.listen.unwrap_or_else(|| s.addr.clone());
            for i in 0..cores.len() {
                let endpoint = (s.addr.clone(), port + i as u16);
                if !endpoints.insert(endpoint.clone()) {
                    return Err(invalid(format!(
                        "{}:{} is used by two shards (give servers on one address different ports)",
                        endpoint.0, endpoint.1
                    )));
                }
            }
            if let Some(slots) = s.slots {
                if slots.len() != cores.len() {
                    return Err(invalid(format!(
                        "server {:?} lists {} cores but {} slot entries",
                        s.name,
                        cores.len(),
                        slots.len()
                    )));
                }
                for text in slots {
                    slot_lists
                        .push(parse_slot_ranges(&text).map_err(|e| invalid(format!("server {:?}: {e}", s.name)))?);
                }
            }
            let n = cores.len() as u32;
            let peer_port = match s.peer_port {
                Some(p) => p,
                None if replicas == 1 => 0,
                None => port.checked_add(PEER_PORT_OFFSET).ok_or_else(|| {
                    invalid(format!(
                        "server {:?}: port {port} + {PEER_PORT_OFFSET} is no TCP port: set peer_port",
                        s.name
                    ))
                })?,
            };
            if replicas > 1 {
                if peer_port == 0 || peer_port as usize + cores.len() - 1 > u16::MAX as usize {
                    return Err(invalid(format!(
                        "server {:?}: peer ports {peer_port}..{} are not all valid TCP ports",
                        s.name,
                        peer_port as usize + cores.len() - 1
                    )));
                }
                for i in 0..cores.len() {
                    let endpoint = (s.addr.clone(), peer_port + i as u16);
                    if !endpoints.insert(endpoint.clone()) {
                        return Err(invalid(format!(
                            "{}:{} is used twice (a shard's port and a replica's peer port, or two peer ports)",
                            endpoint.0, endpoint.1
                        )));
                    }
                }
            }
            // The servers of a set hold replicas of the same shards.
            let first_of_set = servers.len() % replicas as usize == 0;
            let place = (servers.len() % replicas as usize) as u64 + 1;
            let member = match s.member {
                Some(_) if replicas == 1 => {
                    return Err(invalid(format!("server {:?}: member needs replicas > 1", s.name)));
                }
                Some(m) if m == 0 || m > MAX_MEMBER_ID => {
                    return Err(invalid(format!("server {:?}: member = {m}: must be 1 to {MAX_MEMBER_ID}", s.name)));
                }
                Some(m) => m,
                None => place,
            };
            let set_start = servers.len() - servers.len() % replicas as usize;
            if let Some(other) = servers[set_start..].iter().find(|o: &&Server| o.member == member) {
                return Err(invalid(format!(
                    "servers {:?} and {:?} of one set both have member id {member}: each replica of a group needs its own",
                    other.name, s.name
                )));
            }
            if !first_of_set {
                let head: &Server = &servers[servers.len() - servers.len() % replicas as usize];
                if head.cores.len() != cores.len() {
                    return Err(invalid(format!(
                        "server {:?} has {} cores but {:?}, the first server of its set of {replicas} replicas, has {}: each shard needs a replica on every server of the set",
                        s.name,
                        cores.len(),
                        head.name,
                        head.cores.len()
                    )));
                }
                next_shard = head.shards.start;
            }
            servers.push(Server {
                name: s.name,
                addr: s.addr,
                listen,
                port,
                cores,
                shards: next_shard..next_shard + n,
                metrics_port: s.metrics_port.or(file.metrics_port).unwrap_or(0),
                peer_port,
                member,
            });
            next_shard += n;
        }
        let mut clients = Vec::new();
        for c in file.client {
            check_name(&c.name, "client name").map_err(invalid)?;
            if !names.insert(c.name.clone()) {
                return Err(invalid(format!("node name {:?} is used twice", c.name)));
            }
            let cores = c.cores.resolve(&format!("client {:?}", c.name)).map_err(invalid)?;
            clients.push(ClientNode { name: c.name, cores, addr: c.addr });
        }
        let total = next_shard as usize;
        if total > SLOTS {
            return Err(invalid(format!("{total} shards, but there are only {SLOTS} slots")));
        }
        let mut shards = Vec::with_capacity(total);
        for (at, s) in servers.iter().enumerate() {
            for (i, &cpu) in s.cores.iter().enumerate() {
                let id = s.shards.start + i as u32;
                // A replicated shard is listed once, at its first leader:
                // the set's servers take turns.
                if id as usize % replicas as usize != at % replicas as usize {
                    continue;
                }
                let slots = if slot_lists.is_empty() {
                    vec![even_slots(total, id as usize)]
                } else {
                    slot_lists[id as usize].clone()
                };
                shards.push(ShardInfo {
                    id,
                    node: s.name.clone(),
                    addr: s.addr.clone(),
                    port: s.port + i as u16,
                    cpu,
                    slots,
                    replicas: Vec::new(),
                    leader: 0,
                });
            }
        }
        shards.sort_by_key(|s| s.id);
        let map = ShardMap::new(shards).map_err(invalid)?;
        let mut cluster = Cluster {
            source: source.to_string(),
            replicas,
            base_port,
            limits,
            server_limits,
            ssh: file.ssh,
            servers,
            clients,
            map,
            requirepass: file.requirepass.filter(|p| !p.is_empty()),
            data_dir: file.data_dir.filter(|d| !d.is_empty()),
            fsync: file.fsync,
        };
        if replicas > 1 {
            // Each replicated shard names its replicas, and its first
            // leader (the server the map lists it at) as its leader.
            let shards = cluster
                .map
                .shards()
                .iter()
                .map(|s| {
                    let members = cluster.members(s.id);
                    let leader = members.iter().find(|m| m.node == s.node).map_or(0, |m| m.id as u32);
                    let replicas = members
                        .into_iter()
                        .map(|m| ReplicaInfo { id: m.id as u32, node: m.node, addr: m.addr, port: m.port })
                        .collect();
                    ShardInfo { replicas, leader, ..s.clone() }
                })
                .collect();
            cluster.map = ShardMap::new(shards).map_err(invalid)?;
        }
        Ok(cluster)
    }

    /// A one-node cluster: shard `i` on `addr:ports[i]`, pinned to
    /// `cores[i]` (what `percore-server --cores 0 --port 7000` serves).
    pub fn single_node(
        name: &str,
        addr: &str,
        ports: &[u16],
        cores: &[u32],
        limits: Limits,
    ) -> Result<Cluster, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: "(command line)".into(), message };
        limits.validate().map_err(|e| invalid(e.to_string()))?;
        check_name(name, "node name").map_err(invalid)?;
        check_name(addr, "address").map_err(invalid)?;
        check_unique_cpus(cores).map_err(|c| invalid(format!("CPU {c} is listed twice")))?;
        if cores.is_empty() || ports.len() != cores.len() {
            return Err(invalid(format!("{} cores but {} ports", cores.len(), ports.len())));
        }
        let n = cores.len();
        let shards = (0..n)
            .map(|i| ShardInfo {
                id: i as u32,
                node: name.to_string(),
                addr: addr.to_string(),
                port: ports[i],
                cpu: cores[i],
                slots: vec![even_slots(n, i)],
                replicas: Vec::new(),
                leader: 0,
            })
            .collect();
        let map = ShardMap::new(shards).map_err(invalid)?;
        Ok(Cluster {
            source: "(command line)".into(),
            base_port: ports[0],
            limits,
            server_limits: ServerLimits::default(),
            ssh: SshSettings::default(),
            servers: vec![Server {
                name: name.to_string(),
                addr: addr.to_string(),
                listen: addr.to_string(),
                port: ports[0],
                cores: cores.to_vec(),
                shards: 0..n as u32,
                metrics_port: 0,
                peer_port: 0,
                member: 1,
            }],
            clients: Vec::new(),
            map,
            requirepass: None,
            data_dir: None,
            fsync: None,
            replicas: 1,
        })
    }

    /// Shard `i` of `server` as that server serves it: its own address,
    /// port and CPU (the map lists a replicated shard at its first leader).
    pub fn local_shard(&self, server: &Server, i: usize) -> ShardInfo {
        let id = server.shards.start + i as u32;
        ShardInfo {
            id,
            node: server.name.clone(),
            addr: server.addr.clone(),
            port: server.port + i as u16,
            cpu: server.cores[i],
            ..self.map.shards()[id as usize].clone()
        }
    }

    /// The replicas of shard `id`, by member id (empty when `replicas` is 1).
    pub fn members(&self, id: u32) -> Vec<Member> {
        if self.replicas == 1 {
            return Vec::new();
        }
        self.servers
            .iter()
            .filter(|s| s.shards.contains(&id))
            .map(|s| {
                let i = (id - s.shards.start) as usize;
                Member {
                    id: s.member,
                    node: s.name.clone(),
                    addr: s.addr.clone(),
                    port: s.port + i as u16,
                    peer_port: s.peer_port + i as u16,
                    cpu: s.cores[i],
                }
            })
            .collect()
    }

    /// The server node called `name`.
    pub fn server(&self, name: &str) -> Result<&Server, ConfigError> {
        self.servers.iter().find(|s| s.name == name).ok_or_else(|| ConfigError::UnknownNode {
            path: self.source.clone(),
            role: "server",
            name: name.to_string(),
            known: self.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The client node called `name`.
    pub fn client(&self, name: &str) -> Result<&ClientNode, ConfigError> {
        self.clients.iter().find(|s| s.name == name).ok_or_else(|| ConfigError::UnknownNode {
            path: self.source.clone(),
            role: "client",
            name: name.to_string(),
            known: self.clients.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// The environment variable that holds a node's secret, for the server
/// (the default of its `--requirepass`) and for every percore client
/// ([`client_password`]).
pub const PASSWORD_ENV: &str = "PERCORE_PASSWORD";

/// The secret a percore client presents in its hello — the one rule every
/// client follows (the `percore` CLI, the load generator, `percore attack`,
/// and so the cluster scripts): the command's `--password` (`flag`), else
/// [`PASSWORD_ENV`], else `cluster`'s `requirepass`, else none. An empty
/// flag or variable counts as unset.
///
/// That is the order the server resolves its own secret in (its
/// `--requirepass`, whose default is `PERCORE_PASSWORD`, over the file's),
/// so one cluster file and one environment give a node and its clients the
/// same secret.
pub fn client_password(flag: Option<&str>, cluster: Option<&Cluster>) -> Option<String> {
    password_from(flag, std::env::var(PASSWORD_ENV).ok(), cluster)
}

/// [`client_password`] with the environment's value given.
fn password_from(flag: Option<&str>, env: Option<String>, cluster: Option<&Cluster>) -> Option<String> {
    let given = |p: &String| !p.is_empty();
    flag.map(str::to_string)
        .filter(given)
        .or_else(|| env.filter(given))
        .or_else(|| cluster.and_then(|c| c.requirepass.clone()))
}

/// The slot → shard table and every shard's address and slots.
#[derive(Clone)]
pub struct ShardMap {
    shards: Vec<ShardInfo>,
    /// `table[slot]` is the owning shard's id.
    table: Box<[u16]>,
}

impl fmt::Debug for ShardMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardMap").field("shards", &self.shards).finish_non_exhaustive()
    }
}

/// A shard's Redis Cluster node id: 40 hex digits derived from its node
/// name, address, port and shard id, so that every node computes the same
/// id for it, and it stays the same across restarts, as long as the
/// cluster file says the same about it.
pub fn node_id(info: &ShardInfo) -> String {
    // FNV-1a (64-bit) over the fields, run with three different offset
    // bases; written here rather than taken from a hasher crate so that the
    // ids cannot change with a dependency's version.
    let fields = [info.node.as_bytes(), info.addr.as_bytes(), &info.port.to_le_bytes(), &info.id.to_le_bytes()];
    let mut out = String::with_capacity(48);
    for seed in [0xcbf2_9ce4_8422_2325u64, 0x9e37_79b9_7f4a_7c15, 0x6a09_e667_f3bc_c908] {
        let mut h = seed;
        for field in fields {
            for &b in field.iter().chain(&[0xff]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

impl ShardMap {
    /// Builds the table; every slot must be owned by exactly one shard, and
    /// shard ids must be `0..n` in order.
    pub fn new(shards: Vec<ShardInfo>) -> Result<ShardMap, String> {
        if shards.is_empty() {
            return Err("the shard map is empty".into());
        }
        if shards.len() > SLOTS {
            return Err(format!("{} shards, but there are only {SLOTS} slots", shards.len()));
        }
        const FREE: u16 = u16::MAX;
        let mut table = vec![FREE; SLOTS].into_boxed_slice();
        for (i, s) in shards.iter().enumerate() {
            if s.id as usize != i {
                return Err(format!("shard ids must be 0..{} in order; found {} at position {i}", shards.len(), s.id));
            }
            for r in &s.slots {
                if r.is_empty() || r.end as usize >= SLOTS {
                    return Err(format!("shard {}: bad slot range {r}", s.id));
                }
                for slot in r.start..=r.end {
                    let cell = &mut table[slot as usize];
                    if *cell != FREE {
                        return Err(format!("slot {slot} is assigned to both shard {} and shard {}", *cell, s.id));
                    }
                    *cell = s.id as u16;
                }
            }
        }
        if let Some(slot) = table.iter().position(|&s| s == FREE) {
            return Err(format!("slot {slot} is assigned to no shard (every slot 0-{} must be)", SLOTS - 1));
        }
        Ok(ShardMap { shards, table })
    }

    /// Number of shards.
    #[inline]
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a map has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Every shard, by id.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// The shard owning `slot`.
    #[inline]
    pub fn shard_of_slot(&self, slot: u16) -> u32 {
        self.table[slot as usize & (SLOTS - 1)] as u32
    }

    /// The shard owning `key` (a map of one shard owns every slot: no
    /// need to hash the key).
    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> u32 {
        if self.shards.len() == 1 {
            return 0;
        }
        self.shard_of_slot(slot_of(key))
    }

    /// A bitset of the slots shard `id` owns.
    pub fn owned_slots(&self, id: u32) -> SlotSet {
        let mut set = SlotSet::empty();
        for (slot, &owner) in self.table.iter().enumerate() {
            if owner as u32 == id {
                set.insert(slot as u16);
            }
        }
        set
    }
}

/// A set of slots as a 2 KiB bitset: what one server shard checks every key against.
#[derive(Clone)]
pub struct SlotSet {
    bits: Box<[u64; SLOTS / 64]>,
}

impl SlotSet {
    /// The empty set.
    pub fn empty() -> SlotSet {
        SlotSet { bits: Box::new([0; SLOTS / 64]) }
    }

    /// Adds a slot.
    pub fn insert(&mut self, slot: u16) {
        let s = slot as usize & (SLOTS - 1);
        self.bits[s / 64] |= 1 << (s % 64);
    }

    /// True if the slot is in the set.
    #[inline]
    pub fn contains(&self, slot: u16) -> bool {
        let s = slot as usize & (SLOTS - 1);
        self.bits[s / 64] & (1 << (s % 64)) != 0
    }

    /// Number of slots in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True if the set holds no slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_ids_are_stable_and_distinct() {
        let info = |id: u32, port: u16| ShardInfo {
            id,
            node: "s1".into(),
            addr: "10.0.0.1".into(),
            port,
            cpu: 0,
            slots: vec![even_slots(2, id as usize)],
            replicas: Vec::new(),
            leader: 0,
        };
        let a = super::node_id(&info(0, 7000));
        // Pinned: a change here changes every deployed node's id.
        assert_eq!(a, "fe5b0dc044ed63804b9d721d7b144e909a18d2b1");
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::node_id(&info(1, 7001)));
        assert_ne!(a, super::node_id(&info(0, 7001)));
    }

    use super::*;

    const TWO: &str = r#"
base_port = 7000
[[server]]
name = "a"
addr = "127.0.0.1"
cores = [0]
[[server]]
name = "b"
addr = "127.0.0.1"
port = 7100
cores = "1-2"
[[client]]
name = "c"
cores = "0,1"
"#;

    fn servers(n: usize, cores: &[&str]) -> String {
        (0..n)
            .map(|i| {
                let c = cores[i % cores.len()];
                format!(
                    "[[server]]\nname = \"s{i}\"\naddr = \"127.0.0.1\"\nport = {}\ncores = \"{c}\"\n",
                    7000 + 10 * i
                )
            })
            .collect()
    }

    #[test]
    fn replicated_shards_sit_on_every_server_of_their_set_with_leaders_spread() {
        let c = Cluster::parse(&format!("replicas = 3\n{}", servers(6, &["0-1"])), "r.toml").expect("valid");
        assert_eq!(c.replicas, 3);
        // Two sets of three servers, two cores each: four shards.
        assert_eq!(c.map.len(), 4);
        let shards: Vec<_> = c.servers.iter().map(|s| s.shards.clone()).collect();
        assert_eq!(shards, vec![0..2, 0..2, 0..2, 2..4, 2..4, 2..4]);
        // First leaders: the set's servers take turns.
        let leaders: Vec<(&str, u16)> = c.map.shards().iter().map(|i| (i.node.as_str(), i.port)).collect();
        assert_eq!(leaders, vec![("s0", 7000), ("s1", 7011), ("s5", 7050), ("s3", 7031)]);
        let m = c.members(3);
        let ends: Vec<(u64, &str, u16, u16)> = m.iter().map(|m| (m.id, m.node.as_str(), m.port, m.peer_port)).collect();
        assert_eq!(ends, vec![(1, "s3", 7031, 17031), (2, "s4", 7041, 17041), (3, "s5", 7051, 17051)]);
        let local = c.local_shard(&c.servers[4], 1);
        assert_eq!((local.id, local.node.as_str(), local.port), (3, "s4", 7041));
        assert_eq!(local.slots, c.map.shards()[3].slots);
        assert!(Cluster::parse(&servers(2, &["0"]), "one.toml").expect("valid").members(0).is_empty());
    }

    #[test]
    fn a_server_can_state_its_member_id_and_ids_stay_distinct_within_a_set() {
        // s1 replaced by a server with a new id (what replacing a dead node needs).
        let text = format!("replicas = 3\n{}", servers(3, &["0"])).replace(
            "name = \"s1\"\naddr = \"127.0.0.1\"\nport = 7010\n",
            "name = \"s1\"\naddr = \"127.0.0.1\"\nport = 7010\nmember = 4\n",
        );
        let c = Cluster::parse(&text, "m.toml").expect("valid");
        let members = c.members(0);
        let ids: Vec<(u64, &str)> = members.iter().map(|m| (m.id, m.node.as_str())).collect();
        assert_eq!(ids, vec![(1, "s0"), (4, "s1"), (3, "s2")]);
        let replicas: Vec<u32> = c.map.shards()[0].replicas.iter().map(|r| r.id).collect();
        assert_eq!(replicas, vec![1, 4, 3]);
        assert_eq!(c.map.shards()[0].leader, 1);
        let e = |text: String| Cluster::parse(&text, "m.toml").expect_err("refused").to_string();
        let twice = e(text.replace("member = 4", "member = 3"));
        assert!(twice.contains("\"s1\"") && twice.contains("\"s2\"") && twice.contains("member id 3"), "{twice}");
        assert!(e(text.replace("member = 4", "member = 0")).contains("must be 1 to"));
        assert!(e(text.replace("member = 4", "member = 4294967296")).contains("must be 1 to"));
        assert!(e(servers(1, &["0"]).replace("cores =", "member = 2\ncores =")).contains("needs replicas > 1"));
    }

    #[test]
    fn impossible_replica_layouts_are_refused_naming_the_servers() {
        let e = |text: String| Cluster::parse(&text, "r.toml").expect_err("refused").to_string();
        assert!(e(format!("replicas = 3\n{}", servers(4, &["0"]))).contains("sets of 3"));
        assert!(e(format!("replicas = 0\n{}", servers(3, &["0"]))).contains("must be 1 to 7"));
        let uneven = e(format!("replicas = 3\n{}", servers(3, &["0-1", "0"])));
        assert!(uneven.contains("\"s1\" has 1 cores but \"s0\""), "{uneven}");
        let clash = format!(
            "replicas = 2\n{}[[server]]\nname = \"x\"\naddr = \"127.0.0.1\"\nport = 17000\ncores = \"0\"\n",
            servers(3, &["0"])
        );
        assert!(e(clash).contains("127.0.0.1:17000 is used"));
    }

    #[test]
    fn the_file_names_the_data_dir_and_the_fsync_mode() {
        let c = Cluster::parse(&format!("data_dir = \"/var/lib/percore\"\nfsync = \"always\"\n{TWO}"), "d.toml")
            .expect("valid");
        assert_eq!((c.data_dir.as_deref(), c.fsync), (Some("/var/lib/percore"), Some(Fsync::Always)));
        let none = Cluster::parse(TWO, "two.toml").expect("valid");
        assert_eq!((none.data_dir, none.fsync), (None, None));
        let err = Cluster::parse(&format!("fsync = \"sometimes\"\n{TWO}"), "bad.toml").expect_err("bad mode");
        assert!(err.to_string().contains("sometimes"), "{err}");
        assert_eq!("everysec".parse::<Fsync>(), Ok(Fsync::Everysec));
        assert!("x".parse::<Fsync>().is_err());
    }

    #[test]
    fn a_client_takes_its_flags_secret_then_the_environments_then_the_files() {
        let with = Cluster::parse(&format!("requirepass = \"file\"\n{TWO}"), "p.toml").expect("valid");
        let without = Cluster::parse(TWO, "two.toml").expect("valid");
        let empty = Cluster::parse(&format!("requirepass = \"\"\n{TWO}"), "e.toml").expect("valid");
        assert_eq!(with.requirepass.as_deref(), Some("file"));
        assert_eq!(empty.requirepass, None, "an empty requirepass is none");
        let env = || Some("env".to_string());
        let f = |flag, env, c| password_from(flag, env, c);
        assert_eq!(f(Some("flag"), env(), Some(&with)).as_deref(), Some("flag"), "the flag first");
        assert_eq!(f(Some(""), env(), Some(&with)).as_deref(), Some("env"), "an empty flag is unset");
        assert_eq!(f(None, env(), Some(&with)).as_deref(), Some("env"), "as the server: the environment next");
        assert_eq!(f(None, None, Some(&with)).as_deref(), Some("file"));
        assert_eq!(f(None, Some(String::new()), Some(&with)).as_deref(), Some("file"), "empty is unset");
        assert_eq!(f(None, env(), Some(&without)).as_deref(), Some("env"));
        assert_eq!(f(None, env(), None).as_deref(), Some("env"));
        assert_eq!(f(Some("flag"), None, None).as_deref(), Some("flag"));
        assert_eq!(f(None, None, Some(&without)), None);
        assert_eq!(f(None, None, Some(&empty)), None);
        assert_eq!(f(None, None, None), None);
    }

    #[test]
    fn parses_and_numbers_shards_in_file_order() {
        let c = Cluster::parse(TWO, "two.toml").expect("valid");
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[1].shards, 1..3);
        assert_eq!(c.map.len(), 3);
        let ports: Vec<u16> = c.map.shards().iter().map(|s| s.port).collect();
        assert_eq!(ports, vec![7000, 7100, 7101]);
        assert_eq!(c.map.shards()[0].slots, vec![SlotRange { start: 0, end: 5460 }]);
        assert_eq!(c.map.shards()[2].slots, vec![SlotRange { start: 10922, end: 16383 }]);
        assert_eq!(c.clients[0].cores, vec![0, 1]);
    }

    #[test]
    fn every_slot_has_exactly_one_owner() {
        for n in [1usize, 2, 3, 7, 28, 100] {
            let shards = (0..n)
                .map(|i| ShardInfo {
                    id: i as u32,
                    node: "n".into(),
                    addr: "a".into(),
                    port: 1,
                    cpu: 0,
                    slots: vec![even_slots(n, i)],
                    replicas: Vec::new(),
                    leader: 0,
                })
                .collect();
            let map = ShardMap::new(shards).expect("even split covers every slot");
            let total: usize = (0..n as u32).map(|i| map.owned_slots(i).len()).sum();
            assert_eq!(total, SLOTS);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let dup = TWO.replace("port = 7100", "port = 7000");
        let e = Cluster::parse(&dup, "f.toml").expect_err("same endpoint twice").to_string();
        assert!(e.contains("127.0.0.1:7000 is used by two shards"), "{e}");
        let typo = TWO.replace("cores = [0]", "coers = [0]");
        let e = Cluster::parse(&typo, "f.toml").expect_err("unknown field").to_string();
        assert!(e.contains("coers"), "{e}");
        let e = Cluster::parse(TWO, "f.toml").expect("ok").server("zz").expect_err("unknown").to_string();
        assert!(e.contains("\"zz\"") && e.contains("a, b"), "{e}");
        let gap = TWO
            .replace("cores = [0]", "cores = [0]\nslots = [\"0-100\"]")
            .replace("cores = \"1-2\"", "cores = \"1-2\"\nslots = [\"101-200\", \"201-16000\"]");
        let e = Cluster::parse(&gap, "f.toml").expect_err("uncovered slots").to_string();
        assert!(e.contains("slot 16001 is assigned to no shard"), "{e}");
    }

    #[test]
    fn limits_table_sets_frame_and_server_limits() {
        let text = format!(
            "{TWO}\n[limits]\nmax_value_len = 4096\nhandshake_timeout = \"2s\"\nframe_timeout = 3\nidle_timeout = \"0\"\nmaxmemory = \"64mb\"\nmax_connections = 10\n"
        );
        let c = Cluster::parse(&text, "l.toml").expect("valid");
        assert_eq!(c.limits.max_value_len, 4096);
        assert_eq!(c.limits.max_frame_bytes, Limits::default().max_frame_bytes);
        let s = c.server_limits;
        assert_eq!(s.handshake_timeout, std::time::Duration::from_secs(2));
        assert_eq!(s.frame_timeout, std::time::Duration::from_secs(3));
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.maxmemory, Some(64 << 20));
        assert_eq!(s.max_connections, 10);
        assert_eq!(s.write_timeout, ServerLimits::default().write_timeout);

        let bad = format!("{TWO}\n[limits]\nframe_timeout = \"soon\"\n");
        let e = Cluster::parse(&bad, "l.toml").expect_err("not a duration").to_string();
        assert!(e.contains("frame_timeout") && e.contains("soon"), "{e}");
        let bad = format!("{TWO}\n[limits]\nmaxmemory = \"lots\"\n");
        let e = Cluster::parse(&bad, "l.toml").expect_err("not a size").to_string();
        assert!(e.contains("maxmemory") && e.contains("lots"), "{e}");
        let bad = format!("{TWO}\n[limits]\nmax_conections = 3\n");
        let e = Cluster::parse(&bad, "l.toml").expect_err("typo").to_string();
        assert!(e.contains("max_conections"), "{e}");
    }

    #[test]
    fn available_cpus_are_the_affinity_mask() {
        let cpus = available_cpus();
        assert!(!cpus.is_empty() && cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?}");
        // The kernel's own account of the same mask (std's available
        // parallelism would also count cgroup quotas).
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list");
        assert_eq!(cpus, parse_cpu_list(line.trim()).expect("a CPU list"));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("1-3,5"), Ok(vec![1, 2, 3, 5]));
        assert!(parse_cpu_list("1,1").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert_eq!(format_cpu_list(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
    }
}
