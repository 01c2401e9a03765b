//! The RESP door's connection, server and cluster commands: `PING`,
//! `HELLO`, `AUTH`, `CLIENT …`, `COMMAND …`, `INFO`, `CONFIG GET`, `TIME`
//! and `CLUSTER …` — what Redis clients and tools send at connect time and
//! to learn the cluster's shape, answered as Redis Cluster answers.
//!
//! Each core is one cluster node: `CLUSTER SLOTS`, `SHARDS` and `NODES`
//! list every shard of the cluster file as a master owning its slot ranges,
//! with the stable node id [`wire::cluster::node_id`] derives; the caller's
//! own row carries `myself`.

use super::table::{self, COMMANDS};
use super::{After, Cx, RespNode, err, glob, keys::parse_i64};
use crate::shard::Shard;
use wire::resp::Proto;
use wire::resp::reply as resp;
use wire::slot::slot_of;

/// The Redis version the door reports (`HELLO`, `INFO`): the command set
/// and reply formats follow Redis 7.2.
pub const REDIS_VERSION: &str = "7.2.0";

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// Client names may not contain spaces, newlines or other special characters.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

impl Cx<'_> {
    /// Dispatches the commands that take no key.
    pub(super) fn admin(&mut self, name: &str, a: &[&[u8]]) -> After {
        match name {
            "ping" => match a.len() {
                1 => resp::simple(self.out, "PONG"),
                2 => resp::bulk(self.out, a[1]),
                _ => err(self.out, "ERR wrong number of arguments for 'ping' command"),
            },
            "echo" => resp::bulk(self.out, a[1]),
            "save" | "bgsave" if self.shard.log.is_none() && self.shard.replicated.is_none() => {
                err(self.out, "ERR this node keeps nothing on disk: start it with --data-dir to snapshot")
            }
            "save" => return After::Save,
            "bgsave" => {
                if self.shard.snapshots.running() {
                    err(self.out, "ERR Background save already in progress");
                } else {
                    self.shard.snapshots.request();
                    resp::simple(self.out, "Background saving started");
                }
            }
            "lastsave" => resp::integer(self.out, self.shard.snapshots.last_ok() as i64),
            // A replica's own store, whether or not it serves: comparing
            // replicas is what it is for.
            "debug" if a.len() == 2 && a[1].eq_ignore_ascii_case(b"digest") => {
                let digest = self.shard.store.borrow().digest();
                resp::bulk(self.out, format!("{digest:016x}").as_bytes());
            }
            "debug" => err(self.out, "ERR DEBUG: only DIGEST is served here"),
            "quit" => {
                resp::simple(self.out, "OK");
                return After::Quit;
            }
            "select" => match parse_i64(a[1]) {
                Some(0) => resp::simple(self.out, "OK"),
                Some(_) => err(self.out, "ERR SELECT is not allowed in cluster mode"),
                None => err(self.out, "ERR value is not an integer or out of range"),
            },
            "hello" => return self.hello(a),
            "auth" => return self.auth(a),
            "client" => self.client(a),
            "readonly" | "readwrite" | "asking" => resp::simple(self.out, "OK"),
            "command" => self.command(a),
            "info" => self.info(a),
            "config" => self.config(a),
            "time" => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                resp::array(self.out, 2);
                resp::bulk(self.out, now.as_secs().to_string().as_bytes());
                resp::bulk(self.out, now.subsec_micros().to_string().as_bytes());
            }
            "cluster" => self.cluster(a),
            _ => err(self.out, &format!("ERR unknown command '{name}'")),
        }
        After::Next
    }

    /// Checks a secret: true if it is right (the connection is then
    /// authenticated); otherwise answers the error.
    fn check_secret(&mut self, user: Option<&[u8]>, pass: &[u8]) -> Result<(), After> {
        let Some(want) = &self.node.requirepass else {
            // No secret: the default user takes any password, as Redis's
            // `nopass` default user; only the one-argument form is an error.
            return match user {
                Some(b"default") => Ok(()),
                Some(_) => {
                    err(self.out, "WRONGPASS invalid username-password pair or user is disabled.");
                    Err(After::Penalty)
                }
                None => {
                    err(
                        self.out,
                        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                    );
                    Err(After::Next)
                }
            };
        };
        if user.is_none_or(|u| u == b"default") && same_secret(pass, want) {
            self.sess.authed = true;
            Ok(())
        } else {
            err(self.out, "WRONGPASS invalid username-password pair or user is disabled.");
            Err(After::Penalty)
        }
    }

    /// AUTH [username] password.
    fn auth(&mut self, a: &[&[u8]]) -> After {
        let checked = match a.len() {
            2 => self.check_secret(None, a[1]),
            3 => self.check_secret(Some(a[1]), a[2]),
            _ => {
                err(self.out, "ERR syntax error");
                return After::Next;
            }
        };
        match checked {
            Ok(()) => {
                resp::simple(self.out, "OK");
                After::Next
            }
            Err(after) => after,
        }
    }

    /// HELLO [protover [AUTH username password] [SETNAME name]].
    fn hello(&mut self, a: &[&[u8]]) -> After {
        let mut proto = self.sess.proto;
        if a.len() >= 2 {
            proto = match parse_i64(a[1]) {
                Some(2) => Proto::Resp2,
                Some(3) => Proto::Resp3,
                Some(_) => {
                    err(self.out, "NOPROTO unsupported protocol version");
                    return After::Next;
                }
                None => {
                    err(self.out, "ERR Protocol version is not an integer or out of range");
                    return After::Next;
                }
            };
        }
        let (mut auth, mut name) = (None, None);
        let mut i = 2;
        while i < a.len() {
            if a[i].eq_ignore_ascii_case(b"auth") && i + 2 < a.len() {
                auth = Some((a[i + 1], a[i + 2]));
                i += 3;
            } else if a[i].eq_ignore_ascii_case(b"setname") && i + 1 < a.len() {
                // Checked where it stands, as Redis does: before any later
                // option and before the secret, so a refused HELLO changes nothing.
                if !valid_name(a[i + 1]) {
                    err(self.out, "ERR Client names cannot contain spaces, newlines or special characters.");
                    return After::Next;
                }
                name = Some(a[i + 1]);
                i += 2;
            } else {
                err(self.out, &format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(a[i])));
                return After::Next;
            }
        }
        if let Some((user, pass)) = auth
            && let Err(after) = self.check_secret(Some(user), pass)
        {
            return after;
        }
        if !self.sess.authed {
            err(
                self.out,
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
            return After::Next;
        }
        if let Some(n) = name {
            self.sess.name = n.to_vec();
        }
        self.sess.proto = proto;
        let p = proto;
        resp::map(self.out, 7, p);
        resp::bulk(self.out, b"server");
        resp::bulk(self.out, b"redis");
        resp::bulk(self.out, b"version");
        resp::bulk(self.out, REDIS_VERSION.as_bytes());
        resp::bulk(self.out, b"proto");
        resp::integer(self.out, if p == Proto::Resp3 { 3 } else { 2 });
        resp::bulk(self.out, b"id");
        resp::integer(self.out, self.sess.id as i64);
        resp::bulk(self.out, b"mode");
        resp::bulk(self.out, b"cluster");
        resp::bulk(self.out, b"role");
        resp::bulk(self.out, b"master");
        resp::bulk(self.out, b"modules");
        resp::array(self.out, 0);
        After::Next
    }

    /// This connection's `CLIENT LIST` line.
    fn client_line(&self) -> String {
        let me = self.node.me();
        format!(
            "id={} addr=? laddr={}:{} fd={} name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 \
             qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|list \
             user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
            self.sess.id,
            me.addr,
            me.port,
            self.slot.fd(),
            String::from_utf8_lossy(&self.sess.name),
            self.sess.since.elapsed().as_secs(),
            if self.sess.proto == Proto::Resp3 { 3 } else { 2 },
            String::from_utf8_lossy(&self.sess.lib_name),
            String::from_utf8_lossy(&self.sess.lib_ver),
        )
    }

    /// CLIENT SETNAME | GETNAME | ID | SETINFO | INFO | LIST.
    fn client(&mut self, a: &[&[u8]]) {
        let sub = a[1].to_ascii_lowercase();
        match (sub.as_slice(), a.len()) {
            (b"setname", 3) => {
                if valid_name(a[2]) {
                    self.sess.name = a[2].to_vec();
                    resp::simple(self.out, "OK");
                } else {
                    err(self.out, "ERR Client names cannot contain spaces, newlines or special characters.");
                }
            }
            (b"getname", 2) => {
                if self.sess.name.is_empty() {
                    resp::null(self.out, self.sess.proto);
                } else {
                    resp::bulk(self.out, &self.sess.name);
                }
            }
            (b"id", 2) => resp::integer(self.out, self.sess.id as i64),
            (b"setinfo", 4) => {
                if !valid_name(a[3]) {
                    err(self.out, "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.");
                } else if a[2].eq_ignore_ascii_case(b"lib-name") {
                    self.sess.lib_name = a[3].to_vec();
                    resp::simple(self.out, "OK");
                } else if a[2].eq_ignore_ascii_case(b"lib-ver") {
                    self.sess.lib_ver = a[3].to_vec();
                    resp::simple(self.out, "OK");
                } else {
                    err(self.out, &format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(a[2])));
                }
            }
            (b"info", 2) | (b"list", _) => {
                let line = self.client_line();
                resp::verbatim(self.out, "txt", line.as_bytes(), self.sess.proto);
            }
            (b"setname" | b"getname" | b"id" | b"setinfo" | b"info", _) => {
                err(
                    self.out,
                    &format!("ERR wrong number of arguments for 'client|{}' command", String::from_utf8_lossy(&sub)),
                );
            }
            _ => self.unknown_sub("CLIENT", a[1]),
        }
    }

    fn unknown_sub(&mut self, cmd: &str, sub: &[u8]) {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]);
        err(self.out, &format!("ERR unknown subcommand '{sub}'. Try {cmd} HELP."));
    }

    /// COMMAND [COUNT | LIST | INFO name… | DOCS name…].
    fn command(&mut self, a: &[&[u8]]) {
        let p = self.sess.proto;
        if a.len() == 1 {
            resp::array(self.out, COMMANDS.len());
            for s in COMMANDS {
                s.write_info(self.out, p);
            }
            return;
        }
        let sub = a[1].to_ascii_lowercase();
        match sub.as_slice() {
            b"count" => resp::integer(self.out, COMMANDS.len() as i64),
            b"list" => {
                resp::array(self.out, COMMANDS.len());
                for s in COMMANDS {
                    resp::bulk(self.out, s.name.as_bytes());
                }
            }
            b"info" => {
                let names = &a[2..];
                if names.is_empty() {
                    resp::array(self.out, COMMANDS.len());
                    for s in COMMANDS {
                        s.write_info(self.out, p);
                    }
                } else {
                    resp::array(self.out, names.len());
                    for n in names {
                        match table::find(n) {
                            Some(s) => s.write_info(self.out, p),
                            None => resp::null_array(self.out, p),
                        }
                    }
                }
            }
            b"docs" => {
                let found: Vec<&table::Spec> = if a.len() == 2 {
                    COMMANDS.iter().collect()
                } else {
                    a[2..].iter().filter_map(|n| table::find(n)).collect()
                };
                resp::map(self.out, found.len(), p);
                for s in found {
                    resp::bulk(self.out, s.name.as_bytes());
                    s.write_docs(self.out, p);
                }
            }
            _ => self.unknown_sub("COMMAND", a[1]),
        }
    }

    /// INFO [section…]: server, clients, memory, stats, keyspace, cluster.
    fn info(&mut self, a: &[&[u8]]) {
        const ALL: [&str; 8] =
            ["server", "clients", "memory", "persistence", "stats", "replication", "keyspace", "cluster"];
        let wanted = |s: &str| {
            a.len() == 1
                || a[1..].iter().any(|w| {
                    w.eq_ignore_ascii_case(s.as_bytes())
                        || [&b"all"[..], b"default", b"everything"].iter().any(|x| w.eq_ignore_ascii_case(x))
                })
        };
        let c = self.shard.snapshot();
        let (volatile, expired) = {
            let store = self.shard.store.borrow();
            (store.volatile_len(), store.expired_total())
        };
        let me = self.node.me();
        let mut text = String::new();
        for section in ALL.iter().filter(|s| wanted(s)) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let body = match *section {
                "server" => format!(
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\npercore_version:{}\r\nredis_mode:cluster\r\nos:{} {}\r\n\
                     arch_bits:64\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\
                     uptime_in_days:{}\r\nexecutable:percore-server\r\npercore_shard:{}\r\npercore_cpu:{}\r\npercore_node:{}\r\n",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    self.node.run_id,
                    me.port,
                    self.shard.started.elapsed().as_secs(),
                    self.shard.started.elapsed().as_secs() / 86_400,
                    me.id,
                    me.cpu,
                    me.node,
                ),
                "clients" => format!(
                    "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
                    c.connections_open, self.node.max_connections
                ),
                "memory" => format!(
                    "# Memory\r\nused_memory:{}\r\nmaxmemory:{}\r\npercore_shard_memory_limit:{}\r\nmaxmemory_policy:noeviction\r\n",
                    c.store_bytes, self.node.maxmemory, c.memory_limit
                ),
                "stats" => format!(
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\n\
                     total_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{expired}\r\nkeyspace_hits:{}\r\n\
                     keyspace_misses:{}\r\ntotal_error_replies:{}\r\n",
                    c.connections_total,
                    c.ops,
                    c.bytes_in,
                    c.bytes_out,
                    c.connections_refused,
                    c.gets.saturating_sub(c.misses),
                    c.misses,
                    c.wrong_shard + c.out_of_memory,
                ),
                "persistence" => self.persistence(),
                "replication" => self.replication(),
                "keyspace" if c.keys > 0 => {
                    format!("# Keyspace\r\ndb0:keys={},expires={volatile},avg_ttl=0\r\n", c.keys)
                }
                "keyspace" => "# Keyspace\r\n".to_string(),
                _ => "# Cluster\r\ncluster_enabled:1\r\n".to_string(),
            };
            text.push_str(&body);
        }
        resp::verbatim(self.out, "txt", text.as_bytes(), self.sess.proto);
    }

    /// INFO's replication section: this replica's role in its shard's
    /// group, the leader it knows of, the Raft term, commit and applied
    /// indices, the Raft log it holds in memory, how often its store was
    /// rebuilt, and the snapshots it installed from a leader.
    fn replication(&self) -> String {
        let Some(r) = &self.shard.replicated else {
            return "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n".to_string();
        };
        let st = r.replica.status();
        let (entries, bytes, first) = r.replica.with_log(|l| (l.last() + 1 - l.first(), l.bytes(), l.first()));
        let leader = r.members().into_iter().find(|m| m.id == st.leader).map(|m| format!("{}:{}", m.addr, m.port));
        format!(
            "# Replication\r\nrole:{}\r\npercore_replicas:{}\r\npercore_replica_id:{}\r\npercore_leader:{}\r\n\
             percore_serving:{}\r\npercore_raft_term:{}\r\npercore_raft_commit_index:{}\r\npercore_raft_applied_index:{}\r\n\
             percore_raft_log_entries:{entries}\r\npercore_raft_log_bytes:{bytes}\r\npercore_raft_log_first_index:{first}\r\n\
             percore_store_rebuilds:{}\r\npercore_snapshots_installed:{}\r\npercore_read_mode:{}\r\n",
            if st.leading { "master" } else { "slave" },
            r.replica.members().len(),
            st.id,
            leader.unwrap_or_default(),
            u8::from(self.shard.serving()),
            st.term,
            st.commit,
            st.applied,
            r.machine.rebuilds(),
            r.replica.installed(),
            if r.replica.read_lease() { "lease" } else { "index" },
        )
    }

    /// INFO's persistence section: the durable log's mode and marks, its
    /// commits (count, mean and longest time from take to completion), and
    /// the last snapshot.
    fn persistence(&self) -> String {
        let s = self.shard;
        let Some(log) = &s.log else {
            return "# Persistence\r\naof_enabled:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:0\r\n"
                .to_string();
        };
        let (commits, mean_ns, max_ns) = log.commit_stats();
        let (segments, spare) = log.segments();
        format!(
            "# Persistence\r\naof_enabled:1\r\npercore_fsync:{}\r\npercore_log_written_seq:{}\r\npercore_log_durable_seq:{}\r\n\
             percore_log_commits:{commits}\r\npercore_log_commit_mean_us:{:.1}\r\npercore_log_commit_max_us:{:.1}\r\n\
             percore_log_segments:{segments}\r\npercore_log_spare_segments:{spare}\r\npercore_log_bytes_since_snapshot:{}\r\n\
             percore_log_no_space:{}\r\npercore_log_failed:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\n",
            log.mode,
            log.written(),
            log.durable(),
            mean_ns as f64 / 1e3,
            max_ns as f64 / 1e3,
            log.since_snapshot(),
            log.no_space().is_some() as u8,
            log.failure().is_some() as u8,
            s.snapshots.running() as u8,
            s.snapshots.last_ok(),
        )
    }

    /// CONFIG GET pattern…; other subcommands are refused.
    fn config(&mut self, a: &[&[u8]]) {
        let sub = a[1].to_ascii_lowercase();
        match sub.as_slice() {
            b"get" if a.len() >= 3 => {
                let n = self.node;
                let params: [(&str, String); 10] = [
                    ("save", String::new()),
                    ("appendonly", "no".into()),
                    ("maxmemory", n.maxmemory.to_string()),
                    ("maxmemory-policy", "noeviction".into()),
                    ("proto-max-bulk-len", n.limits.max_bulk_len.to_string()),
                    ("cluster-enabled", "yes".into()),
                    ("databases", "1".into()),
                    ("timeout", n.idle_secs.to_string()),
                    ("maxclients", n.max_connections.to_string()),
                    ("port", n.me().port.to_string()),
                ];
                let hits: Vec<&(&str, String)> = params
                    .iter()
                    .filter(|(k, _)| {
                        a[2..].iter().any(|p| {
                            p.len() <= glob::MAX_PATTERN && glob::matches(&p.to_ascii_lowercase(), k.as_bytes())
                        })
                    })
                    .collect();
                resp::map(self.out, hits.len(), self.sess.proto);
                for (k, v) in hits {
                    resp::bulk(self.out, k.as_bytes());
                    resp::bulk(self.out, v.as_bytes());
                }
            }
            b"get" => err(self.out, "ERR wrong number of arguments for 'config|get' command"),
            b"set" | b"resetstat" | b"rewrite" => err(
                self.out,
                &format!(
                    "ERR CONFIG {} is not supported: percore's settings come from the cluster file and the server's flags",
                    String::from_utf8_lossy(&sub).to_uppercase()
                ),
            ),
            _ => self.unknown_sub("CONFIG", a[1]),
        }
    }

    /// `CLUSTER MEMBERS`: this core's replication group as its replica sees
    /// it, one line for the replica (`shard`, `me`, `leader`, `term`,
    /// `commit`, `applied`, `joining`), then one per member (`member`,
    /// `role` voter or learner, `node`, `addr`, `port`, `peer_port`, `cpu`,
    /// `matched`: the last entry the leader knows it holds, 0 elsewhere).
    fn cluster_members(&mut self) {
        let Some(r) = &self.shard.replicated else {
            err(self.out, "ERR this core's shard is not replicated");
            return;
        };
        let st = r.replica.status();
        let mut text = format!(
            "shard:{} me:{} leader:{} term:{} commit:{} applied:{} joining:{}\n",
            self.node.shard,
            st.id,
            st.leader,
            st.term,
            st.commit,
            st.applied,
            u8::from(r.replica.joining())
        );
        for m in r.replica.members() {
            let role = if m.voter { "voter" } else { "learner" };
            match &m.at {
                Some(at) => text.push_str(&format!(
                    "member:{} role:{role} node:{} addr:{} port:{} peer_port:{} cpu:{} matched:{}\n",
                    m.id, at.node, at.addr, at.port, at.peer_port, at.cpu, m.matched
                )),
                None => text.push_str(&format!("member:{} role:{role} matched:{}\n", m.id, m.matched)),
            }
        }
        resp::verbatim(self.out, "txt", text.as_bytes(), self.sess.proto);
    }

    /// `CLUSTER MEMBER ADD|PROMOTE|REMOVE …`: proposes a change to this
    /// core's group, on its leader; answers the entry's index (the change
    /// holds once `CLUSTER MEMBERS` shows it applied). `PREFER <id>` (on any
    /// replica) sets the member it hands its leadership to. A follower answers
    /// `NOTLEADER <leader id>`; a change under way or a leader asked to
    /// remove itself (it hands its leadership over first) `TRYAGAIN`.
    fn cluster_member(&mut self, a: &[&[u8]]) {
        use crate::replica::node::{MemberChange, MemberError};
        let Some(r) = &self.shard.replicated else {
            err(self.out, "ERR this core's shard is not replicated");
            return;
        };
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        let num = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|t| t.parse::<u64>().ok());
        let id = num(a[3]).filter(|&id| id > 0 && id <= wire::cluster::MAX_MEMBER_ID);
        let change = match (a[2].to_ascii_lowercase().as_slice(), a.len(), id) {
            (b"add" | b"promote" | b"remove" | b"prefer", _, None) => {
                return err(self.out, &format!("ERR member ids are 1 to {}", wire::cluster::MAX_MEMBER_ID));
            }
            (b"add", 9, Some(id)) => {
                let port = |b: &[u8]| num(b).and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0);
                let word = |b: &[u8]| text(b).filter(|t| !t.is_empty() && t.len() <= 255 && !t.contains(' '));
                let cpu = num(a[8]).and_then(|c| u32::try_from(c).ok());
                match (word(a[4]), word(a[5]), port(a[6]), port(a[7]), cpu) {
                    (Some(node), Some(addr), Some(port), Some(peer_port), Some(cpu)) => {
                        MemberChange::AddLearner(wire::cluster::Member { id, node, addr, port, peer_port, cpu })
                    }
                    _ => {
                        return err(
                            self.out,
                            "ERR CLUSTER MEMBER ADD <id> <node> <addr> <port> <peer-port> <cpu>: a name and an address without spaces, two ports, a CPU",
                        );
                    }
                }
            }
            (b"promote", 4, Some(id)) => MemberChange::Promote(id),
            (b"prefer", 4, Some(id)) => {
                r.replica.set_preferred(id);
                return resp::simple(self.out, "OK");
            }
            (b"remove", 4, Some(id)) => MemberChange::Remove(id),
            _ => return self.unknown_sub("CLUSTER MEMBER", a[2]),
        };
        match r.replica.change_members(change) {
            Ok(index) => resp::integer(self.out, index as i64),
            Err(MemberError::NotLeader { leader }) => err(self.out, &format!("NOTLEADER {leader}")),
            Err(e @ (MemberError::Pending(_) | MemberError::HandingOver { .. })) => {
                err(self.out, &format!("TRYAGAIN {e}"))
            }
            Err(e) => err(self.out, &format!("ERR {e}")),
        }
    }

    /// One `CLUSTER NODES` row per shard (per replica of a replicated
    /// shard), rows ending in `\n`.
    fn cluster_nodes(&self) -> String {
        let mut text = String::new();
        for i in 0..self.node.shards.len() {
            let holders = holders(self.node, self.shard, i);
            let master_id = holders[0].1.to_string();
            for (j, (s, id)) in holders.into_iter().enumerate() {
                self.node_row(&mut text, &s, &id, (j > 0).then_some(master_id.as_str()));
            }
        }
        text
    }

    /// One `CLUSTER NODES` row: a master with its slots, or a replica of
    /// `master`.
    fn node_row(&self, text: &mut String, s: &wire::msg::ShardInfo, id: &str, master: Option<&str>) {
        let me = s.id == self.node.shard && s.node == self.shard.setup.node;
        let flags = match (me, master) {
            (true, None) => "myself,master",
            (false, None) => "master",
            (true, Some(_)) => "myself,slave",
            (false, Some(_)) => "slave",
        };
        let cport = u32::from(s.port) + 10_000;
        let cport = if cport > u32::from(u16::MAX) { 0 } else { cport };
        text.push_str(&format!(
            "{id} {}:{}@{cport} {flags} {} 0 0 {} connected",
            s.addr,
            s.port,
            master.unwrap_or("-"),
            s.id + 1
        ));
        if master.is_some() {
            text.push('\n');
            return;
        }
        for r in &s.slots {
            if r.start == r.end {
                text.push_str(&format!(" {}", r.start));
            } else {
                text.push_str(&format!(" {}-{}", r.start, r.end));
            }
        }
        text.push('\n');
    }

    /// CLUSTER SLOTS | SHARDS | NODES | MYID | KEYSLOT | COUNTKEYSINSLOT | INFO | HELP.
    fn cluster(&mut self, a: &[&[u8]]) {
        let p = self.sess.proto;
        let n = self.node;
        let sub = a[1].to_ascii_lowercase();
        match (sub.as_slice(), a.len()) {
            (b"slots", 2) => {
                let ranges: usize = n.shards.iter().map(|s| s.slots.len()).sum();
                resp::array(self.out, ranges);
                for (i, s) in n.shards.iter().enumerate() {
                    let holders = holders(self.node, self.shard, i);
                    for r in &s.slots {
                        resp::array(self.out, 2 + holders.len());
                        resp::integer(self.out, r.start.into());
                        resp::integer(self.out, r.end.into());
                        for (h, id) in &holders {
                            resp::array(self.out, 4);
                            resp::bulk(self.out, h.addr.as_bytes());
                            resp::integer(self.out, h.port.into());
                            resp::bulk(self.out, id.as_bytes());
                            resp::map(self.out, 0, p);
                        }
                    }
                }
            }
            (b"shards", 2) => {
                resp::array(self.out, n.shards.len());
                for (i, s) in n.shards.iter().enumerate() {
                    resp::map(self.out, 2, p);
                    resp::bulk(self.out, b"slots");
                    resp::array(self.out, s.slots.len() * 2);
                    for r in &s.slots {
                        resp::integer(self.out, r.start.into());
                        resp::integer(self.out, r.end.into());
                    }
                    resp::bulk(self.out, b"nodes");
                    let holders = holders(self.node, self.shard, i);
                    resp::array(self.out, holders.len());
                    for (j, (h, id)) in holders.into_iter().enumerate() {
                        resp::map(self.out, 7, p);
                        for (k, v) in [("id", id.as_str()), ("ip", h.addr.as_str()), ("endpoint", h.addr.as_str())] {
                            resp::bulk(self.out, k.as_bytes());
                            resp::bulk(self.out, v.as_bytes());
                        }
                        resp::bulk(self.out, b"port");
                        resp::integer(self.out, h.port.into());
                        resp::bulk(self.out, b"role");
                        resp::bulk(self.out, if j == 0 { b"master" } else { b"replica" });
                        resp::bulk(self.out, b"replication-offset");
                        resp::integer(self.out, 0);
                        resp::bulk(self.out, b"health");
                        resp::bulk(self.out, b"online");
                    }
                }
            }
            (b"nodes", 2) => {
                let text = self.cluster_nodes();
                resp::verbatim(self.out, "txt", text.as_bytes(), p);
            }
            (b"myid", 2) => resp::bulk(self.out, n.ids[n.shard as usize].as_bytes()),
            (b"keyslot", 3) => resp::integer(self.out, slot_of(a[2]).into()),
            (b"countkeysinslot", 3) => match parse_i64(a[2]) {
                Some(slot) if (0..wire::slot::SLOTS as i64).contains(&slot) => {
                    let count = self.shard.store.borrow().keys_in_slot(slot as u16);
                    resp::integer(self.out, count.into());
                }
                _ => err(self.out, "ERR Invalid slot"),
            },
            (b"info", 2) => {
                let epoch = n.shards.len();
                let text = format!(
                    "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\n\
                     cluster_slots_fail:0\r\ncluster_known_nodes:{epoch}\r\ncluster_size:{epoch}\r\ncluster_current_epoch:{epoch}\r\n\
                     cluster_my_epoch:{}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
                     total_cluster_links_buffer_limit_exceeded:0\r\n",
                    n.shard + 1
                );
                resp::verbatim(self.out, "txt", text.as_bytes(), p);
            }
            (b"help", 2) => {
                let lines = [
                    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "SLOTS, SHARDS, NODES: every core of the cluster as a master node with its slots.",
                    "MYID: this core's node id.",
                    "KEYSLOT <key>: the hash slot of a key.",
                    "COUNTKEYSINSLOT <slot>: keys this core holds in a slot.",
                    "INFO: the cluster's state.",
                    "MEMBERS: this core's replication group: its members, roles and progress.",
                    "MEMBER ADD <id> <node> <addr> <port> <peer-port> <cpu>: add a learner (on the leader).",
                    "MEMBER PROMOTE <id>: make a learner a voter (on the leader).",
                    "MEMBER REMOVE <id>: remove a member (on the leader).",
                    "MEMBER PREFER <id>: the member this replica hands its leadership to once caught up.",
                ];
                resp::array(self.out, lines.len());
                for l in lines {
                    resp::simple(self.out, l);
                }
            }
            (b"members", 2) => self.cluster_members(),
            (b"member", 4 | 9) => self.cluster_member(a),
            (
                b"slots" | b"shards" | b"nodes" | b"myid" | b"keyslot" | b"countkeysinslot" | b"info" | b"help"
                | b"members" | b"member",
                _,
            ) => {
                err(
                    self.out,
                    &format!("ERR wrong number of arguments for 'cluster|{}' command", String::from_utf8_lossy(&sub)),
                );
            }
            _ => self.unknown_sub("CLUSTER", a[1]),
        }
    }
}

/// Who holds shard `i`'s keys, master first: the shard itself when it
/// is not replicated; else its replicas, the leader as master — for this
/// shard, the group's applied membership and the leader this replica knows
/// of; for another shard, the cluster file's replicas and first leader.
fn holders(n: &RespNode, shard: &Shard, i: usize) -> Vec<(wire::msg::ShardInfo, String)> {
    let (s, reps) = (&n.shards[i], &n.replicas[i]);
    if reps.is_empty() {
        return vec![(s.clone(), n.ids[i].clone())];
    }
    let mine = (s.id == n.shard).then_some(shard.replicated.as_ref()).flatten();
    let (reps, known): (Vec<(wire::msg::ShardInfo, String)>, Option<usize>) = match mine {
        Some(r) => {
            let leader = r.replica.status().leader;
            let members = r.members();
            let reps: Vec<_> = members.iter().map(|m| super::replica_row(s, m)).collect();
            let known = members.iter().position(|m| m.id == leader && leader != 0);
            (reps, known)
        }
        None => (reps.clone(), None),
    };
    if reps.is_empty() {
        return vec![(s.clone(), n.ids[i].clone())];
    }
    let leader = known.unwrap_or_else(|| reps.iter().position(|(m, _)| m.node == s.node).unwrap_or(0));
    let mut out = vec![reps[leader].clone()];
    out.extend(reps.iter().enumerate().filter(|&(j, _)| j != leader).map(|(_, r)| r.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"", b"a"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn client_names_refuse_spaces_and_controls() {
        assert!(valid_name(b"worker-1"));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\nb"));
    }
}
