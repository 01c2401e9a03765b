//! `percore members`: makes every replicated shard's group have the members
//! the cluster file names — how a dead node is replaced and a replica is
//! moved. The file is the wanted state; each group's leader is asked over
//! the RESP door (`CLUSTER MEMBERS`, `CLUSTER MEMBER ADD|PROMOTE|REMOVE`)
//! to change its membership one replica at a time:
//!
//! 1. a member the file names and the group lacks is added as a learner
//!    (it must run, started with `--join`: it then says it is joining);
//! 2. once it holds the leader's log up to the commit index seen when it
//!    was added (its snapshot installed), it is promoted to voter;
//! 3. a member the group has and the file no longer names is removed (a
//!    leader to be removed first hands its leadership over; every replica
//!    is first told to prefer the file's first leader for the shard, so
//!    that none hands the leadership back to a leaving member).
//!
//! Each step waits until the leader has applied it before the next is
//! asked (Raft takes one membership change at a time). Adding before
//! removing keeps a majority of the group up throughout when one node of
//! three is dead: 4 voters, 3 up, then 3 voters, 3 up.

use clap::Args;
use loadgen::proto::cluster::{Value, parse};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wire::Cluster;
use wire::cluster::{Member, client_password};

/// `percore members`
#[derive(Args, Debug)]
pub struct MembersArgs {
    /// The cluster file, edited to name the servers every group should
    /// have (a replacement server with a `member` id none of its set ever
    /// had).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Only the replicated shard with this id (default: every one).
    #[arg(long, value_name = "ID")]
    pub shard: Option<u32>,
    /// Print what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Give up on a shard that has not reached the file's membership in
    /// this long (a new member's catching up included).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "120s")]
    pub timeout: Duration,
    /// The nodes' secret [default: $PERCORE_PASSWORD, else the cluster
    /// file's `requirepass`, else none].
    #[arg(long, value_name = "SECRET")]
    pub password: Option<String>,
}

/// One member in a `CLUSTER MEMBERS` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    id: u64,
    voter: bool,
    matched: u64,
    /// Its client endpoint, when the answering replica knows it.
    at: Option<String>,
}

/// A `CLUSTER MEMBERS` answer.
#[derive(Clone, Debug, Default)]
struct View {
    me: u64,
    leader: u64,
    commit: u64,
    applied: u64,
    joining: bool,
    members: Vec<Seen>,
}

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split(' ').filter_map(|f| f.split_once(':')).collect()
}

fn parse_view(text: &str) -> Result<View, String> {
    let mut lines = text.lines();
    let head = fields(lines.next().ok_or("an empty CLUSTER MEMBERS answer")?);
    let num = |f: &BTreeMap<&str, &str>, k: &str| -> Result<u64, String> {
        f.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| format!("CLUSTER MEMBERS: no {k} in {f:?}"))
    };
    let mut v = View {
        me: num(&head, "me")?,
        leader: num(&head, "leader")?,
        commit: num(&head, "commit")?,
        applied: num(&head, "applied")?,
        joining: head.get("joining") == Some(&"1"),
        members: Vec::new(),
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let f = fields(line);
        v.members.push(Seen {
            id: num(&f, "member")?,
            voter: f.get("role") == Some(&"voter"),
            matched: num(&f, "matched").unwrap_or(0),
            at: f.get("addr").zip(f.get("port")).map(|(a, p)| format!("{a}:{p}")),
        });
    }
    Ok(v)
}

/// A RESP connection to one core.
struct Door {
    addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Door {
    fn open(addr: &str, secret: Option<&str>, timeout: Duration) -> Result<Door, String> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr}: resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{addr}: {e}"))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| format!("{addr}: {e}"))?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| format!("{addr}: {e}"))?;
        let mut door = Door { addr: addr.to_string(), stream, buf: Vec::new() };
        if let Some(secret) = secret
            && let Value::Error(e) = door.call(&["AUTH", secret])?
        {
            return Err(format!("{addr}: AUTH: {e}"));
        }
        Ok(door)
    }

    fn call(&mut self, args: &[&str]) -> Result<Value, String> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        let addr = &self.addr;
        self.stream.write_all(&out).map_err(|e| format!("{addr}: {e}"))?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((v, _)) = parse(&self.buf).map_err(|e| format!("{addr}: {e}"))? {
                return Ok(v);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(format!("{addr}: the connection closed before the answer")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{addr}: {e}")),
            }
            if self.buf.len() > 1 << 20 {
                return Err(format!("{addr}: an answer over 1 MiB"));
            }
        }
    }

    fn view(&mut self) -> Result<View, String> {
        match self.call(&["CLUSTER", "MEMBERS"])? {
            Value::Bulk(b) | Value::Simple(b) => parse_view(&String::from_utf8_lossy(&b)),
            Value::Error(e) => Err(format!("{}: CLUSTER MEMBERS: {e}", self.addr)),
            other => Err(format!("{}: CLUSTER MEMBERS answered {other:?}", self.addr)),
        }
    }
}

/// Changes every (or the chosen) replicated shard's group to the file's
/// membership; prints each step. An error names the shard and the step.
pub fn members(args: &MembersArgs) -> Result<(), String> {
    let cluster = Cluster::load(&args.config).map_err(|e| e.to_string())?;
    if cluster.replicas == 1 {
        return Err(format!("{}: replicas = 1: no shard is replicated", args.config.display()));
    }
    let secret = client_password(args.password.as_deref(), Some(&cluster));
    let mut changed = 0;
    for id in 0..cluster.map.len() as u32 {
        if args.shard.is_some_and(|s| s != id) {
            continue;
        }
        // The member the file makes the shard's first leader: every replica
        // hands its leadership to it once it has caught up.
        let prefer = cluster.map.shards().get(id as usize).map_or(0, |s| u64::from(s.leader));
        changed += Group { id, wanted: cluster.members(id), prefer, secret: secret.as_deref(), args }.reconcile()?;
    }
    if args.shard.is_some_and(|s| s as usize >= cluster.map.len()) {
        return Err(format!("shard {}: the file has {} shards", args.shard.unwrap_or(0), cluster.map.len()));
    }
    println!("{changed} change(s){}", if args.dry_run { " would be made" } else { " made" });
    Ok(())
}

struct Group<'a> {
    id: u32,
    wanted: Vec<Member>,
    prefer: u64,
    secret: Option<&'a str>,
    args: &'a MembersArgs,
}

fn endpoint(m: &Member) -> String {
    format!("{}:{}", m.addr, m.port)
}

impl Group<'_> {
    fn short(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// The leader's connection and view, asking the file's members.
    fn leader(&self, deadline: Instant) -> Result<(Door, View), String> {
        let mut last = String::new();
        loop {
            for m in &self.wanted {
                let found = Door::open(&endpoint(m), self.secret, self.short()).and_then(|mut d| {
                    let v = d.view()?;
                    Ok((d, v))
                });
                match found {
                    Ok((d, v)) if v.leader != 0 && v.leader == v.me => return Ok((d, v)),
                    Ok((_, v)) if v.leader != 0 => {
                        // The leader may be a member the file dropped: its
                        // followers know where it runs.
                        let at = v.members.iter().find(|s| s.id == v.leader).and_then(|s| s.at.clone());
                        match at {
                            Some(at) => {
                                if let Ok(mut d) = Door::open(&at, self.secret, self.short())
                                    && let Ok(lv) = d.view()
                                    && lv.leader == lv.me
                                {
                                    return Ok((d, lv));
                                }
                                last = format!("member {} at {at} leads, but does not answer as the leader", v.leader);
                            }
                            None => last = format!("member {} leads, and no member knows where it runs", v.leader),
                        }
                    }
                    Ok(_) => last = format!("{}: knows no leader", endpoint(m)),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("shard {}: no leader found ({last})", self.id));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asks the leader for one change, unless `done` says the group has
    /// it already; waits until it is applied. A connection that closes
    /// before the answer (the leader stepped down, handing over) is asked
    /// again of the new leader, after looking whether the change was made.
    fn change(&self, args: &[&str], done: impl Fn(&View) -> bool, deadline: Instant) -> Result<(), String> {
        loop {
            let (mut door, v) = self.leader(deadline)?;
            if done(&v) {
                return Ok(());
            }
            let mut cmd = vec!["CLUSTER", "MEMBER"];
            cmd.extend_from_slice(args);
            let answer = match door.call(&cmd) {
                Ok(a) => a,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("percore: shard {}: {e}; asking the leader again", self.id);
                    std::thread::sleep(Duration::from_millis(300));
                    continue;
                }
                Err(e) => return Err(format!("shard {}: CLUSTER MEMBER {}: {e}", self.id, args.join(" "))),
            };
            match answer {
                Value::Int(index) => {
                    let index = u64::try_from(index).unwrap_or(0);
                    loop {
                        let (_, v) = self.leader(deadline)?;
                        if v.applied >= index {
                            return Ok(());
                        }
                        if Instant::now() >= deadline {
                            return Err(format!("shard {}: entry {index} was not applied in time", self.id));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Value::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("NOTLEADER") => {
                    if Instant::now() >= deadline {
                        return Err(format!("shard {}: CLUSTER MEMBER {}: {e}", self.id, args.join(" ")));
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                Value::Error(e) => return Err(format!("shard {}: CLUSTER MEMBER {}: {e}", self.id, args.join(" "))),
                other => return Err(format!("shard {}: CLUSTER MEMBER answered {other:?}", self.id)),
            }
        }
    }

    /// Brings the group to the file's membership; returns the changes made
    /// (or that would be made).
    fn reconcile(&self) -> Result<usize, String> {
        let deadline = Instant::now() + self.args.timeout;
        let (_, v) = self.leader(deadline)?;
        let has = |id: u64| v.members.iter().any(|m| m.id == id);
        let add: Vec<&Member> = self.wanted.iter().filter(|m| !has(m.id)).collect();
        let promote: Vec<u64> = v
            .members
            .iter()
            .filter(|m| !m.voter && self.wanted.iter().any(|w| w.id == m.id))
            .map(|m| m.id)
            .chain(add.iter().map(|m| m.id))
            .collect();
        let remove: Vec<u64> =
            v.members.iter().filter(|m| !self.wanted.iter().any(|w| w.id == m.id)).map(|m| m.id).collect();
        let now: Vec<String> =
            v.members.iter().map(|m| format!("{}{}", m.id, if m.voter { "" } else { " (learner)" })).collect();
        println!("shard {}: members {} (leader {})", self.id, now.join(", "), v.leader);
        let count = add.len() + promote.len() + remove.len();
        if self.args.dry_run {
            for m in &add {
                println!("shard {}: would add member {} ({} at {}) as a learner", self.id, m.id, m.node, endpoint(m));
            }
            for id in &promote {
                println!("shard {}: would promote member {id} to voter once caught up", self.id);
            }
            for id in &remove {
                println!("shard {}: would remove member {id}", self.id);
            }
            return Ok(count);
        }
        for m in &add {
            // Only a replica started with --join may be added: a founding
            // one holds a membership of its own making.
            let joining = Door::open(&endpoint(m), self.secret, self.short()).and_then(|mut d| d.view());
            match joining {
                Ok(j) if j.joining => {}
                Ok(_) => {
                    return Err(format!(
                        "shard {}: member {} at {} is not joining: start it with --join over an empty data directory",
                        self.id,
                        m.id,
                        endpoint(m)
                    ));
                }
                Err(e) => return Err(format!("shard {}: member {} must run (with --join) first: {e}", self.id, m.id)),
            }
            let (id, port, peer, cpu) =
                (m.id.to_string(), m.port.to_string(), m.peer_port.to_string(), m.cpu.to_string());
            let has = |v: &View| v.members.iter().any(|s| s.id == m.id);
            self.change(&["ADD", &id, &m.node, &m.addr, &port, &peer, &cpu], has, deadline)?;
            println!("shard {}: member {} ({} at {}) added as a learner", self.id, m.id, m.node, endpoint(m));
        }
        for id in &promote {
            let started = Instant::now();
            let (_, v) = self.leader(deadline)?;
            let target = v.commit;
            loop {
                let (_, v) = self.leader(deadline)?;
                if v.members.iter().any(|m| m.id == *id && m.matched >= target) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!("shard {}: member {id} did not catch up to entry {target} in time", self.id));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            println!(
                "shard {}: member {id} caught up to entry {target} in {:.1} s",
                self.id,
                started.elapsed().as_secs_f64()
            );
            let voter = |v: &View| v.members.iter().any(|s| s.id == *id && s.voter);
            self.change(&["PROMOTE", &id.to_string()], voter, deadline)?;
            println!("shard {}: member {id} promoted to voter", self.id);
        }
        if !remove.is_empty() && self.prefer != 0 {
            // Every replica now prefers the file's first leader, not a
            // leaving one (a leader to be removed hands over first, and must
            // not be handed the leadership back).
            let (_, v) = self.leader(deadline)?;
            for at in v.members.iter().filter(|m| !remove.contains(&m.id)).filter_map(|m| m.at.as_deref()) {
                let told = Door::open(at, self.secret, self.short())
                    .and_then(|mut d| d.call(&["CLUSTER", "MEMBER", "PREFER", &self.prefer.to_string()]));
                if let Err(e) | Ok(Value::Error(e)) = told {
                    eprintln!("percore: shard {}: {at} was not told to prefer member {}: {e}", self.id, self.prefer);
                }
            }
        }
        for id in &remove {
            let gone = |v: &View| v.members.iter().all(|s| s.id != *id);
            self.change(&["REMOVE", &id.to_string()], gone, deadline)?;
            println!("shard {}: member {id} removed", self.id);
        }
        let (_, v) = self.leader(deadline)?;
        let now: Vec<String> = v.members.iter().map(|m| m.id.to_string()).collect();
        println!("shard {}: members now {} (leader {})", self.id, now.join(", "), v.leader);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_answer_parses() {
        let v = parse_view(
            "shard:0 me:1 leader:1 term:3 commit:40 applied:40 joining:0\n\
             member:1 role:voter node:n0 addr:127.0.0.1 port:7000 peer_port:17000 cpu:0 matched:40\n\
             member:4 role:learner node:n3 addr:127.0.0.1 port:7030 peer_port:17030 cpu:0 matched:12\n\
             member:2 role:voter matched:0\n",
        )
        .expect("parses");
        assert_eq!((v.me, v.leader, v.commit, v.applied, v.joining), (1, 1, 40, 40, false));
        assert_eq!(
            v.members,
            vec![
                Seen { id: 1, voter: true, matched: 40, at: Some("127.0.0.1:7000".into()) },
                Seen { id: 4, voter: false, matched: 12, at: Some("127.0.0.1:7030".into()) },
                Seen { id: 2, voter: true, matched: 0, at: None }
            ]
        );
        assert!(parse_view("shard:0 leader:1\n").is_err(), "no me");
    }
}
