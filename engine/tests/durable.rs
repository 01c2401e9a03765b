//! The durable log and snapshots with real server processes on loopback:
//! what is acknowledged survives `kill -9` and restarts in every mode; a
//! torn tail is dropped and the log goes on; a corrupt record followed by
//! valid ones refuses the start (naming file and offset) unless
//! `--truncate-corrupt-log`; a stale record (right CRC, wrong number) is
//! not replayed; a data directory of another layout is refused; and a
//! snapshot taken while writes run, restored alone, is one point in time.

use engine::log::record::{self, Entry};
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::resp::{Resp, Value, multibulk};
use testkit::{Server, TempDir};

const SERVER: &str = env!("CARGO_BIN_EXE_percore-server");

fn start(dir: &Path, extra: &[&str]) -> Server {
    let d = dir.to_str().expect("utf8");
    let mut args = vec!["--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--data-dir", d];
    args.extend_from_slice(extra);
    Server::start_with(SERVER, &args)
}

/// Runs a server that must refuse to start: its exit code and stderr.
fn refused(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let d = dir.to_str().expect("utf8");
    let cores = if extra.contains(&"--cores") { &[][..] } else { &["--cores", "0"][..] };
    let mut cmd = Command::new(SERVER);
    cmd.args(cores).args(["--port", "0", "--stats-interval-ms", "0", "--data-dir", d]).args(extra);
    testkit::refusal(cmd.env_remove("PERCORE_PASSWORD"), std::time::Duration::from_secs(30))
}

/// True once the server's stderr holds `text`: lines printed after the
/// ready line reach the test through a reader thread, so they are waited
/// for (at most 10 s).
fn said(s: &Server, text: &str) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.stderr().contains(text) {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

fn kill9(s: &mut Server) {
    s.signal(libc::SIGKILL);
    s.wait_exit(std::time::Duration::from_secs(10)).expect("killed");
}

fn set_all(r: &mut Resp, n: usize, tag: &str) {
    for i in 0..n {
        assert_eq!(r.cmd(&["SET", &format!("k{i}"), &format!("{tag}-{i}")]), Value::Simple("OK".into()));
    }
}

fn get(r: &mut Resp, key: &str) -> Option<String> {
    r.cmd(&["GET", key]).bytes().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The single segment of shard 0 and its records: (offset, seq, entry key).
fn segment(dir: &Path) -> PathBuf {
    let shard = dir.join("shard-0");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&shard)
        .expect("shard dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log-")))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "one segment expected: {segs:?}");
    segs.remove(0)
}

fn records(bytes: &[u8]) -> Vec<(usize, u64, usize)> {
    let mut at = engine::log::BLOCK;
    let mut out = Vec::new();
    while let Ok((r, n)) = record::decode(&bytes[at..]) {
        out.push((at, r.seq, n));
        at += n;
    }
    out
}

#[test]
fn acknowledged_writes_survive_kill_9_and_restarts_in_every_mode() {
    let dir = TempDir::new("durable-modes");
    // always: acknowledged means durable, so kill -9 at once loses nothing.
    let data = dir.join("always");
    let mut s = start(&data, &["--fsync", "always"]);
    let mut r = Resp::connect(s.addr());
    set_all(&mut r, 300, "a");
    assert_eq!(r.cmd(&["SET", "ttl", "v", "EX", "1000"]), Value::Simple("OK".into()));
    assert_eq!(r.cmd(&["SET", "gone", "v"]), Value::Simple("OK".into()));
    assert_eq!(r.cmd(&["DEL", "gone"]), Value::Int(1));
    assert_eq!(r.cmd(&["INCRBY", "n", "41"]), Value::Int(41));
    assert_eq!(r.cmd(&["APPEND", "n", "2"]), Value::Int(3));
    kill9(&mut s);
    let mut s = start(&data, &["--fsync", "always"]);
    assert!(s.stderr().contains("then 305 log records"), "{}", s.stderr());
    let mut r = Resp::connect(s.addr());
    for i in 0..300 {
        assert_eq!(get(&mut r, &format!("k{i}")).as_deref(), Some(format!("a-{i}").as_str()));
    }
    assert_eq!(get(&mut r, "gone"), None);
    assert_eq!(get(&mut r, "n").as_deref(), Some("412"));
    let Value::Int(ttl) = r.cmd(&["TTL", "ttl"]) else { panic!("TTL") };
    assert!((990..=1000).contains(&ttl), "the expiry came back: {ttl}");
    // An orderly stop snapshots; the next start loads it, then an empty log.
    assert!(s.terminate().success());
    assert!(said(&s, "snapshot at sequence number 305"), "{}", s.stderr());
    let s = start(&data, &["--fsync", "always"]);
    assert!(s.stderr().contains("a snapshot of 302 records up to sequence number 305"), "{}", s.stderr());
    let mut r = Resp::connect(s.addr());
    assert_eq!(get(&mut r, "k299").as_deref(), Some("a-299"));
    // everysec and no: an orderly stop keeps every write, FLUSHDB included.
    for mode in ["everysec", "no"] {
        let data = dir.join(mode);
        let mut s = start(&data, &["--fsync", mode]);
        let mut r = Resp::connect(s.addr());
        set_all(&mut r, 100, mode);
        assert_eq!(r.cmd(&["FLUSHDB"]), Value::Simple("OK".into()));
        set_all(&mut r, 50, mode);
        assert!(s.terminate().success());
        let s = start(&data, &["--fsync", mode]);
        let mut r = Resp::connect(s.addr());
        assert_eq!(r.cmd(&["DBSIZE"]), Value::Int(50), "{mode}");
        assert_eq!(get(&mut r, "k49").as_deref(), Some(format!("{mode}-49").as_str()));
    }
}

/// An `always` node in `data` acknowledges SET k0..k19 = v-0..v-19 and is
/// killed; returns its one segment's path and bytes.
fn twenty_sets_then_kill(data: &Path) -> (PathBuf, Vec<u8>) {
    let mut s = start(data, &["--fsync", "always"]);
    let mut r = Resp::connect(s.addr());
    set_all(&mut r, 20, "v");
    kill9(&mut s);
    let seg = segment(data);
    let bytes = std::fs::read(&seg).expect("read");
    (seg, bytes)
}

#[test]
fn a_torn_tail_is_dropped_and_the_log_goes_on() {
    let dir = TempDir::new("durable-torn");
    let data = dir.join("d");
    // The last record loses its end, as a crash mid-write would leave it.
    let (seg, mut bytes) = twenty_sets_then_kill(&data);
    let recs = records(&bytes);
    assert_eq!(recs.len(), 20);
    let (at, _, _) = recs[19];
    let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
    bytes[at + len - 4..at + len].fill(0xAA);
    std::fs::write(&seg, &bytes).expect("write");
    let s = start(&data, &["--fsync", "always"]);
    assert!(s.stderr().contains("a torn tail at"), "{}", s.stderr());
    let mut r = Resp::connect(s.addr());
    assert_eq!(get(&mut r, "k18").as_deref(), Some("v-18"));
    assert_eq!(get(&mut r, "k19"), None, "the torn record is not replayed");
    // The log goes on from there, and the next recovery reads it all.
    assert_eq!(r.cmd(&["SET", "after", "1"]), Value::Simple("OK".into()));
    let mut s = s;
    kill9(&mut s);
    let s = start(&data, &["--fsync", "always"]);
    assert!(!s.stderr().contains("a torn tail"), "{}", s.stderr());
    let mut r = Resp::connect(s.addr());
    assert_eq!(get(&mut r, "after").as_deref(), Some("1"));
    assert_eq!(get(&mut r, "k19"), None);
}

#[test]
fn a_corrupt_record_before_valid_ones_refuses_the_start_unless_truncated() {
    let dir = TempDir::new("durable-corrupt");
    let data = dir.join("d");
    let (seg, mut bytes) = twenty_sets_then_kill(&data);
    let (at, seq, _) = records(&bytes)[9];
    bytes[at + record::HEADER + 1] ^= 0x40;
    std::fs::write(&seg, &bytes).expect("write");
    let (code, err) = refused(&data, &["--fsync", "always"]);
    assert_eq!(code, Some(1), "{err}");
    let named = format!("{}: corrupt record at byte {at} (expected sequence number {seq}", seg.display());
    assert!(err.contains(&named), "the file and offset are named: {err}");
    assert!(err.contains("--truncate-corrupt-log"), "{err}");
    let s = start(&data, &["--fsync", "always", "--truncate-corrupt-log"]);
    assert!(s.stderr().contains("dropped everything from"), "{}", s.stderr());
    let mut r = Resp::connect(s.addr());
    assert_eq!(get(&mut r, "k8").as_deref(), Some("v-8"));
    assert_eq!(get(&mut r, "k9"), None);
    assert_eq!(get(&mut r, "k15"), None, "records after the corrupt one are dropped");
}

#[test]
fn a_stale_record_is_not_replayed() {
    let dir = TempDir::new("durable-stale");
    let data = dir.join("d");
    let mut s = start(&data, &["--fsync", "always"]);
    let mut r = Resp::connect(s.addr());
    assert_eq!(r.cmd(&["SET", "a", "old"]), Value::Simple("OK".into()));
    assert_eq!(r.cmd(&["SET", "a", "new"]), Value::Simple("OK".into()));
    kill9(&mut s);
    // An old block's record (right CRC, an old sequence number) lies where
    // the next record would go: as an earlier use of the space left it.
    let seg = segment(&data);
    let mut bytes = std::fs::read(&seg).expect("read");
    let recs = records(&bytes);
    let (first, _, n) = recs[0];
    let (last, _, m) = recs[1];
    let old = bytes[first..first + n].to_vec();
    bytes[last + m..last + m + n].copy_from_slice(&old);
    let (r0, _) = record::decode(&bytes[last + m..]).expect("the stale record is valid on its own");
    assert!(matches!(r0.entry, Entry::Set { value: b"old", .. }));
    std::fs::write(&seg, &bytes).expect("write");
    let s = start(&data, &["--fsync", "always"]);
    assert!(s.stderr().contains("with sequence number 1 instead"), "{}", s.stderr());
    let mut r = Resp::connect(s.addr());
    assert_eq!(get(&mut r, "a").as_deref(), Some("new"));
}

#[test]
fn a_replicated_shards_log_is_refused_by_a_shard_that_is_not_replicated() {
    let dir = TempDir::new("durable-raft-record");
    let data = dir.join("d");
    let (seg, mut bytes) = twenty_sets_then_kill(&data);
    // The segment's first record becomes a Raft entry (sealed, valid).
    let mut j = record::Journal::new(1);
    j.append(&Entry::RaftEntry(b"a raft entry"));
    let mut rec = Vec::new();
    j.take(&mut rec);
    record::seal(&mut rec, 1);
    bytes[engine::log::BLOCK..].fill(0);
    bytes[engine::log::BLOCK..engine::log::BLOCK + rec.len()].copy_from_slice(&rec);
    std::fs::write(&seg, &bytes).expect("write");
    let (code, err) = refused(&data, &["--fsync", "always"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("record 1: a Raft record") && err.contains(&seg.display().to_string()), "{err}");
}

#[test]
fn a_data_dir_of_another_layout_is_refused() {
    let dir = TempDir::new("durable-layout");
    let data = dir.join("d");
    let mut s = start(&data, &[]);
    let mut r = Resp::connect(s.addr());
    set_all(&mut r, 5, "v");
    assert!(s.terminate().success());
    let (code, err) = refused(&data, &["--cores", "0,1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("1 shards; this is shard 0, slots 0-16383")
            && err.contains("2 shards; this is shard 0, slots 0-8191"),
        "both layouts are named: {err}"
    );
}

/// A deterministic stream of writes: (key index, write number).
fn writes(n: usize, keys: usize) -> Vec<(usize, usize)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|j| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % keys as u64) as usize, j)
        })
        .collect()
}

#[test]
fn a_snapshot_taken_while_writes_run_restored_alone_is_one_point_in_time() {
    const KEYS: usize = 20_000;
    let dir = TempDir::new("durable-snapshot");
    let data = dir.join("d");
    let s = start(&data, &["--fsync", "everysec", "--snapshot-after", "0"]);
    let all = writes(200_000, KEYS);
    let value = |j: usize| format!("{j:0>120}");
    // Load every key first (writes 0..KEYS), then overwrite while a SAVE runs.
    let addr = s.addr().to_string();
    let mut w = Resp::connect(&addr);
    let mut sent = 0;
    let pipeline = |w: &mut Resp, from: usize, to: usize, key_of: &dyn Fn(usize) -> usize| {
        let mut out = Vec::new();
        for j in from..to {
            out.extend_from_slice(&multibulk(&[b"SET", format!("k{}", key_of(j)).as_bytes(), value(j).as_bytes()]));
        }
        w.send(&out);
        for _ in from..to {
            assert_eq!(w.read(), Some(Value::Simple("OK".into())));
        }
    };
    let key_of = |j: usize| if j < KEYS { j } else { all[j].0 };
    while sent < KEYS {
        pipeline(&mut w, sent, sent + 1000, &key_of);
        sent += 1000;
    }
    let saver = std::thread::spawn(move || {
        let mut r = Resp::connect(&addr);
        r.cmd(&["SAVE"])
    });
    while !saver.is_finished() && sent + 500 <= all.len() {
        pipeline(&mut w, sent, sent + 500, &key_of);
        sent += 500;
    }
    assert_eq!(saver.join().expect("saver"), Value::Simple("OK".into()));
    drop(s);
    // The point the snapshot holds, from its own header (the server's
    // stderr line may not have been read yet when SAVE's reply arrives).
    let file = std::fs::read(data.join("shard-0").join("snapshot")).expect("snapshot");
    let header = engine::log::snapshot::Header::decode(&file).expect("a valid snapshot header");
    let seq = header.seq as usize;
    // The snapshot alone (no log) in a fresh directory.
    let fresh = dir.join("fresh");
    std::fs::create_dir_all(fresh.join("shard-0")).expect("mkdir");
    for f in ["snapshot", "LAYOUT"] {
        std::fs::copy(data.join("shard-0").join(f), fresh.join("shard-0").join(f)).expect("copy");
    }
    let s = start(&fresh, &[]);
    assert!(s.stderr().contains(&format!("up to sequence number {seq}")), "{}", s.stderr());
    // Write j is record j + 1 (one record per SET, nothing else wrote): the
    // snapshot must hold exactly the first `seq` writes, no later one.
    let mut model = vec![None; KEYS];
    for j in 0..seq {
        model[key_of(j)] = Some(j);
    }
    let mut r = Resp::connect(s.addr());
    let mut wrong = Vec::new();
    for (k, want) in model.iter().enumerate() {
        let got = get(&mut r, &format!("k{k}"));
        let want = want.map(value);
        if got != want {
            wrong.push(format!("k{k}: {got:?} instead of {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} keys differ from the store at sequence number {seq}: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(seq > KEYS, "the snapshot began after the load");
}

/// A small ext4 file system on a loop device, unmounted on drop.
struct SmallDisk {
    mnt: PathBuf,
}

impl SmallDisk {
    /// `None` (and why, on stderr) where this process may not mount.
    fn new(dir: &TempDir, mib: u64) -> Option<SmallDisk> {
        let img = dir.join("disk.img");
        let mnt = dir.join("mnt");
        std::fs::File::create(&img).and_then(|f| f.set_len(mib << 20)).expect("image");
        std::fs::create_dir_all(&mnt).expect("mount point");
        let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        if !ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img)) {
            eprintln!("skipped: mkfs.ext4 failed");
            return None;
        }
        if !ok(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt)) {
            eprintln!("skipped: cannot mount a loop device here (needs root)");
            return None;
        }
        Some(SmallDisk { mnt })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_loses_nothing_acknowledged() {
    let dir = TempDir::new("durable-full");
    let Some(disk) = SmallDisk::new(&dir, 40) else { return };
    let data = disk.mnt.join("data");
    let args = ["--fsync", "always", "--log-segment-size", "9mb", "--snapshot-after", "0"];
    let mut s = start(&data, &args);
    let mut r = Resp::connect(s.addr());
    let value = |i: usize| format!("{i:0>1000}");
    let mut acked = std::collections::HashMap::new();
    let mut refused = None;
    'fill: for batch in 0..200 {
        let mut out = Vec::new();
        for i in batch * 200..(batch + 1) * 200 {
            out.extend_from_slice(&multibulk(&[b"SET", format!("k{i}").as_bytes(), value(i).as_bytes()]));
        }
        r.send(&out);
        for i in batch * 200..(batch + 1) * 200 {
            match r.read() {
                Some(Value::Simple(ok)) if ok == "OK" => {
                    acked.insert(i, value(i));
                }
                Some(Value::Error(e)) => {
                    assert!(e.starts_with("MISCONF"), "{e}");
                    refused.get_or_insert(i);
                }
                other => panic!("SET k{i}: {other:?}"),
            }
        }
        if refused.is_some() {
            break 'fill;
        }
    }
    let first = refused.unwrap_or_else(|| panic!("a 40 MiB disk took 40 MB of writes; stderr:\n{}", s.stderr()));
    assert!(said(&s, "no room for the next log segment"), "{}", s.stderr());
    // Reads go on; a refused write changed nothing; deletes are refused too.
    assert_eq!(get(&mut r, "k0").as_deref(), Some(value(0).as_str()));
    assert_eq!(get(&mut r, &format!("k{first}")), None);
    assert!(r.cmd(&["DEL", "k0"]).error().is_some_and(|e| e.starts_with("MISCONF")));
    assert_eq!(get(&mut r, "k0").as_deref(), Some(value(0).as_str()));
    // Every acknowledged write survives a kill -9 and a restart on the full disk.
    kill9(&mut s);
    let s = start(&data, &args);
    let mut r = Resp::connect(s.addr());
    assert!(acked.len() > 1000, "only {} writes fitted", acked.len());
    for (i, v) in &acked {
        assert_eq!(get(&mut r, &format!("k{i}")).as_deref(), Some(v.as_str()), "k{i} after the restart");
    }
    assert_eq!(get(&mut r, &format!("k{first}")), None);
    drop(r);
    drop(s);
    drop(disk);
}
