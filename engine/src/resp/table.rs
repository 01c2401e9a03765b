//! The RESP door's command table: every command it serves, with Redis's
//! arity, flags and key positions — what `COMMAND`, `COMMAND INFO`,
//! `COMMAND DOCS` and `COMMAND COUNT` answer, and what the dispatcher checks
//! argument counts against.
//!
//! Cluster clients route by these key positions (redis-py refuses a
//! command it cannot find in `COMMAND`), so every command that takes a key
//! says where its keys are: `first`, `last` (negative: counted from the
//! end) and `step`, as in Redis's own table. No command here has movable
//! keys.

use wire::resp::Proto;
use wire::resp::reply as resp;

/// One command of the table.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis's arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub arity: i32,
    /// Redis's command flags.
    pub flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub first: i32,
    /// Position of the last key (negative: from the end).
    pub last: i32,
    /// Distance between keys.
    pub step: i32,
    /// Redis's command group (`string`, `generic`, `connection`, `server`, `cluster`).
    pub group: &'static str,
    /// One line for `COMMAND DOCS`.
    pub summary: &'static str,
}

const R: &[&str] = &["readonly", "fast"];
const RS: &[&str] = &["readonly"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WD: &[&str] = &["write", "fast"];
const WS: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "stale", "loading"];
const NOAUTH: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"];
const ADMIN: &[&str] = &["loading", "stale"];

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
) -> Spec {
    Spec { name, arity, flags, first: keys.0, last: keys.1, step: keys.2, group, summary }
}

const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);
const PAIRS: (i32, i32, i32) = (1, -1, 2);
const NONE: (i32, i32, i32) = (0, 0, 0);

/// Every command the door serves, in `COMMAND`'s order.
pub const COMMANDS: &[Spec] = &[
    spec("get", 2, R, ONE, "string", "Returns the string value of a key."),
    spec("set", -3, W, ONE, "string", "Sets the string value of a key, with options for expiry and conditions."),
    spec("setnx", 3, WF, ONE, "string", "Sets the value of a key only when the key doesn't exist."),
    spec("setex", 4, W, ONE, "string", "Sets the value and the expiration time (seconds) of a key."),
    spec("psetex", 4, W, ONE, "string", "Sets the value and the expiration time (milliseconds) of a key."),
    spec("getset", 3, WF, ONE, "string", "Returns the previous value of a key after setting it to a new value."),
    spec("getdel", 2, WD, ONE, "string", "Returns the value of a key after deleting the key."),
    spec("getex", -2, WD, ONE, "string", "Returns the value of a key after setting its expiration time."),
    spec("mget", -2, R, ALL, "string", "Atomically returns the values of keys (of one hash slot)."),
    spec("mset", -3, W, PAIRS, "string", "Atomically sets the values of keys (of one hash slot)."),
    spec("msetnx", -3, W, PAIRS, "string", "Sets keys (of one hash slot) only when none of them exists."),
    spec("append", 3, WF, ONE, "string", "Appends a string to the value of a key; creates the key if needed."),
    spec("strlen", 2, R, ONE, "string", "Returns the length of a string value."),
    spec("getrange", 4, RS, ONE, "string", "Returns a substring of a string value."),
    spec(
        "setrange",
        4,
        W,
        ONE,
        "string",
        "Overwrites part of a string value from an offset; creates the key if needed.",
    ),
    spec("incr", 2, WF, ONE, "string", "Increments the integer value of a key by one."),
    spec("incrby", 3, WF, ONE, "string", "Increments the integer value of a key by a number."),
    spec("decr", 2, WF, ONE, "string", "Decrements the integer value of a key by one."),
    spec("decrby", 3, WF, ONE, "string", "Decrements the integer value of a key by a number."),
    spec("incrbyfloat", 3, WF, ONE, "string", "Increments the floating point value of a key by a number."),
    spec("del", -2, WS, ALL, "generic", "Deletes keys (of one hash slot)."),
    spec("unlink", -2, WD, ALL, "generic", "Deletes keys (of one hash slot); the same as DEL here."),
    spec("exists", -2, R, ALL, "generic", "Counts how many of the given keys (of one hash slot) exist."),
    spec("type", 2, R, ONE, "generic", "Returns the type of the value of a key."),
    spec("expire", -3, WD, ONE, "generic", "Sets a key's time to live in seconds."),
    spec("pexpire", -3, WD, ONE, "generic", "Sets a key's time to live in milliseconds."),
    spec("expireat", -3, WD, ONE, "generic", "Sets a key's expiration to a Unix time in seconds."),
    spec("pexpireat", -3, WD, ONE, "generic", "Sets a key's expiration to a Unix time in milliseconds."),
    spec("ttl", 2, R, ONE, "generic", "Returns a key's time to live in seconds."),
    spec("pttl", 2, R, ONE, "generic", "Returns a key's time to live in milliseconds."),
    spec("persist", 2, WD, ONE, "generic", "Removes a key's expiration."),
    spec("dbsize", 1, R, NONE, "server", "Returns the number of keys of this core."),
    spec("flushdb", -1, WS, NONE, "server", "Removes every key of this core."),
    spec("flushall", -1, WS, NONE, "server", "Removes every key of this core (not of the whole node)."),
    spec("scan", -2, RS, NONE, "generic", "Iterates over this core's keys."),
    spec("ping", -1, CONN, NONE, "connection", "Returns the server's liveliness response."),
    spec("echo", 2, CONN, NONE, "connection", "Returns the given string."),
    spec("quit", -1, NOAUTH, NONE, "connection", "Closes the connection."),
    spec("select", 2, CONN, NONE, "connection", "Changes the selected database (only 0 exists)."),
    spec("hello", -1, NOAUTH, NONE, "connection", "Handshakes with the server: protocol version, AUTH, SETNAME."),
    spec("auth", -2, NOAUTH, NONE, "connection", "Authenticates the connection."),
    spec("client", -2, ADMIN, NONE, "connection", "SETNAME, GETNAME, ID, SETINFO, INFO and LIST."),
    spec("readonly", 1, CONN, NONE, "cluster", "Enables reads of replicas (all reads are served by owners here)."),
    spec("readwrite", 1, CONN, NONE, "cluster", "Disables reads of replicas."),
    spec("asking", 1, CONN, NONE, "cluster", "Signals that the next command follows an ASK redirect."),
    spec("command", -1, ADMIN, NONE, "server", "Returns detailed information about every command."),
    spec("info", -1, ADMIN, NONE, "server", "Returns information and statistics about this core."),
    spec("config", -2, ADMIN, NONE, "server", "GET reads configuration parameters."),
    spec("time", 1, CONN, NONE, "server", "Returns the server time."),
    spec("save", 1, ADMIN, NONE, "server", "Snapshots this core's keys and waits until the snapshot is durable."),
    spec("bgsave", -1, ADMIN, NONE, "server", "Starts a snapshot of this core's keys."),
    spec("lastsave", 1, ADMIN, NONE, "server", "Returns the Unix time of this core's last successful snapshot."),
    spec("debug", -2, ADMIN, NONE, "server", "DIGEST: a digest of this core's keys, equal on replicas that agree."),
    spec("cluster", -2, ADMIN, NONE, "cluster", "SLOTS, SHARDS, NODES, MYID, KEYSLOT, COUNTKEYSINSLOT, INFO."),
];

/// The table entry for `name` (any case), if the door serves it.
pub fn find(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 16 {
        return None;
    }
    COMMANDS.iter().find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

impl Spec {
    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 { argc == self.arity as usize } else { argc >= self.arity.unsigned_abs() as usize }
    }

    /// Writes this command's `COMMAND INFO` entry: name, arity, flags, first
    /// key, last key, step, ACL categories, tips, key specs, subcommands.
    pub fn write_info(&self, out: &mut Vec<u8>, p: Proto) {
        resp::array(out, 10);
        resp::bulk(out, self.name.as_bytes());
        resp::integer(out, self.arity.into());
        resp::set(out, self.flags.len(), p);
        for f in self.flags {
            resp::simple(out, f);
        }
        resp::integer(out, self.first.into());
        resp::integer(out, self.last.into());
        resp::integer(out, self.step.into());
        let cats: &[&str] = match self.group {
            "string" => &["@string"],
            "generic" => &["@keyspace"],
            "connection" => &["@connection"],
            "cluster" => &["@slow"],
            _ => &["@admin"],
        };
        resp::set(out, cats.len(), p);
        for c in cats {
            resp::simple(out, c);
        }
        resp::array(out, 0);
        resp::array(out, 0);
        resp::array(out, 0);
    }

    /// Writes this command's `COMMAND DOCS` entry value: a map of summary,
    /// since and group.
    pub fn write_docs(&self, out: &mut Vec<u8>, p: Proto) {
        resp::map(out, 3, p);
        resp::bulk(out, b"summary");
        resp::bulk(out, self.summary.as_bytes());
        resp::bulk(out, b"since");
        resp::bulk(out, b"1.0.0");
        resp::bulk(out, b"group");
        resp::bulk(out, self.group.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_lower_case_and_found_in_any_case() {
        for (i, s) in COMMANDS.iter().enumerate() {
            assert_eq!(s.name, s.name.to_ascii_lowercase());
            assert!(COMMANDS[..i].iter().all(|t| t.name != s.name), "{} twice", s.name);
            assert_eq!(find(s.name.to_ascii_uppercase().as_bytes()).map(|t| t.name), Some(s.name));
        }
        assert!(find(b"hgetall").is_none());
    }

    #[test]
    fn key_positions_fit_the_arity() {
        for s in COMMANDS {
            if s.first > 0 {
                assert!(s.arity.unsigned_abs() as i32 > s.first, "{}: first key past the arity", s.name);
                assert!(s.step >= 1);
            } else {
                assert_eq!((s.last, s.step), (0, 0), "{}", s.name);
            }
        }
        let mset = find(b"MSET").expect("mset");
        assert!(mset.arity_ok(3) && mset.arity_ok(5) && !mset.arity_ok(2));
        let get = find(b"get").expect("get");
        assert!(get.arity_ok(2) && !get.arity_ok(3));
    }
}
