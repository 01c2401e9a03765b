//! Operation histories: every operation of a run, recorded compactly for the
//! linearizability checker (`percore check`).
//!
//! # File format (version 2; version 1 files are still read)
//!
//! ```text
//! "PCHIST01"                      8 bytes magic
//! header length                   u32 LE
//! header                          UTF-8 JSON: {"version":2,"node":…,"pid":…,
//!                                 "epoch_unix_ns":…,"clock":…,"threads":…,
//!                                 "boot_id":…,"epoch_monotonic_ns":…}
//! records                         32 bytes each, until the end of the file
//! ```
//!
//! A record is four little-endian `u64` words:
//!
//! | word | bits | meaning |
//! |---|---|---|
//! | 0 | 0–39 | key (the record number; keys are decimal record numbers) |
//! | 0 | 40–47 | kind: 0 GET, 1 PUT, 2 DELETE (version 2 only) |
//! | 0 | 48–63 | client: the load thread within this file |
//! | 1 | all | value: for a PUT the identity written; for a GET the identity read, [`NOT_FOUND`], or [`BAD_READ`]; for a DELETE 0 (ignored) |
//! | 2 | all | invoke time, ns since this process's epoch |
//! | 3 | all | response time, ns since this process's epoch, or [`NO_RESPONSE`] |
//!
//! An identity is `(writer << 48) | seq` (see [`crate::value::Identity`]):
//! unique per write in a run, so a read names the write it observed.
//! Values written by the load phase have writer `0xFFFF` and seq = record.
//!
//! Only operations the server accepted are recorded: an operation it
//! refused (wrong shard, too large) had no effect and is left out. A PUT
//! whose reply never came (the run was stopped or failed while it was in
//! flight) is recorded with response [`NO_RESPONSE`]: it may or may not
//! have taken effect, and the checker treats it so. GETs without a reply
//! say nothing and are not recorded.
//!
//! Version 2 added the DELETE kind and [`NO_RESPONSE`]; a version 1 file is
//! a version 2 file that has neither, and reads as such.
//!
//! Times come from one monotonic clock per process: comparable within a
//! file, not across files (each node's loadgen writes its own file). The
//! invoke time is when the operation entered its batch (its intended time
//! in an open loop) and the response time is when its reply was read, so
//! the interval always contains the moment the server executed it.
//!
//! # Cost
//!
//! Each thread appends 32 bytes per operation to its own 1 MiB buffer; full
//! buffers are handed to one writer thread over a channel and written with
//! large sequential writes, off the load threads' path. Written buffers go
//! back to the load threads for reuse, so recording allocates nothing in
//! steady state.

use crate::workload::OpKind;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// File magic.
pub const MAGIC: &[u8; 8] = b"PCHIST01";
/// The version this build writes.
pub const VERSION: u32 = 2;
/// Bytes per record.
pub const RECORD_LEN: usize = 32;
/// Response time of an operation whose reply never came (outcome unknown).
pub const NO_RESPONSE: u64 = u64::MAX;
/// What a recorded operation did (GET, PUT, DELETE; its number is the
/// record's kind byte), the value of a GET that found nothing or failed
/// verification, and the largest key a record can hold: the checker's own
/// definitions, so a record is a checker operation without translation.
pub use check::{BAD_READ, Kind, MAX_KEY, NOT_FOUND};

const BUFFER: usize = 1 << 20;

impl From<OpKind> for Kind {
    #[inline]
    fn from(k: OpKind) -> Kind {
        match k {
            OpKind::Get => Kind::Get,
            OpKind::Put => Kind::Put,
        }
    }
}

/// One recorded operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Key (record number).
    pub key: u64,
    /// GET, PUT or DELETE.
    pub kind: Kind,
    /// Load thread within its file.
    pub client: u16,
    /// Identity written (PUT) or read (GET), or a sentinel.
    pub value: u64,
    /// Invoke time (ns, process clock).
    pub invoke: u64,
    /// Response time (ns, process clock), or [`NO_RESPONSE`].
    pub response: u64,
}

impl Record {
    /// Encodes the record's 32 bytes.
    #[inline]
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let w0 = (self.key & MAX_KEY) | ((self.kind as u64) << 40) | ((self.client as u64) << 48);
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&w0.to_le_bytes());
        b[8..16].copy_from_slice(&self.value.to_le_bytes());
        b[16..24].copy_from_slice(&self.invoke.to_le_bytes());
        b[24..32].copy_from_slice(&self.response.to_le_bytes());
        b
    }

    /// Decodes 32 bytes of a version 2 file; `None` if the kind byte is unknown.
    #[inline]
    pub fn decode(b: &[u8; RECORD_LEN]) -> Option<Record> {
        Record::decode_version(b, VERSION)
    }

    /// Decodes 32 bytes of a file of `version`; `None` if the kind byte is
    /// unknown to that version.
    #[inline]
    pub fn decode_version(b: &[u8; RECORD_LEN], version: u32) -> Option<Record> {
        let w =
            |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
        let w0 = w(0);
        let kind = match ((w0 >> 40) & 0xFF, version) {
            (0, _) => Kind::Get,
            (1, _) => Kind::Put,
            (2, 2..) => Kind::Delete,
            _ => return None,
        };
        Some(Record { key: w0 & MAX_KEY, kind, client: (w0 >> 48) as u16, value: w(8), invoke: w(16), response: w(24) })
    }
}

/// Emptied buffers, returned by the file writer for the recorders to reuse.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// Per-thread recorder: appends to a buffer, hands full buffers to the sink.
pub struct HistoryWriter {
    client: u16,
    buf: Vec<u8>,
    tx: Sender<Vec<u8>>,
    pool: Pool,
}

impl HistoryWriter {
    /// Records one operation (`response` may be [`NO_RESPONSE`]).
    #[inline]
    pub fn record(&mut self, key: u64, kind: impl Into<Kind>, value: u64, invoke: u64, response: u64) {
        let r = Record { key, kind: kind.into(), client: self.client, value, invoke, response };
        self.buf.extend_from_slice(&r.encode());
        if self.buf.len() >= BUFFER {
            self.hand_over();
        }
    }

    #[cold]
    fn hand_over(&mut self) {
        let fresh = self.pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
        let mut fresh = fresh;
        fresh.clear();
        fresh.reserve(BUFFER + RECORD_LEN);
        let full = std::mem::replace(&mut self.buf, fresh);
        let _ = self.tx.send(full);
    }

    /// Hands the last records to the sink.
    pub fn finish(mut self) {
        if !self.buf.is_empty() {
            let _ = self.tx.send(std::mem::take(&mut self.buf));
        }
    }
}

/// The file being written, and the thread writing it.
pub struct HistorySink {
    tx: Option<Sender<Vec<u8>>>,
    thread: Option<JoinHandle<std::io::Result<u64>>>,
    path: PathBuf,
    pool: Pool,
}

/// Header fields.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Format version (1 or 2; this build writes [`VERSION`]).
    pub version: u32,
    /// Client node name (or host).
    pub node: String,
    /// Process id of the recorder.
    pub pid: u32,
    /// Wall-clock time of the process's epoch (for humans; not used to order operations).
    pub epoch_unix_ns: u128,
    /// What the times mean.
    pub clock: String,
    /// Load threads (clients) in this file.
    pub threads: usize,
    /// The recording machine's boot (Linux's `/proc/sys/kernel/random/boot_id`);
    /// absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// `CLOCK_MONOTONIC` at the process's epoch (ns). Files recorded on the
    /// same boot share that clock, so the checker can order their
    /// operations against each other (processes in different time
    /// namespaces would not; the load generator never makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_monotonic_ns: Option<u64>,
}

/// `CLOCK_MONOTONIC` now, in ns (what [`Instant`](std::time::Instant)
/// reads on Linux).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// This machine's boot id, if the kernel tells it.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

impl Header {
    /// The header of a file this process writes now, for `threads` clients
    /// on node `node` (times: ns since this process's epoch).
    pub fn now(node: &str, threads: usize) -> Header {
        Header {
            version: VERSION,
            node: node.to_string(),
            pid: std::process::id(),
            epoch_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            clock: "ns since this process's run epoch (monotonic; comparable across files of one boot_id through epoch_monotonic_ns)".into(),
            threads,
            boot_id: None,
            epoch_monotonic_ns: None,
        }
    }

    /// This header with the shared clock of this machine: `epoch` is the
    /// instant the records' times count from.
    pub fn on_this_machine(self, epoch: std::time::Instant) -> Header {
        let elapsed = epoch.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        Header { boot_id: boot_id(), epoch_monotonic_ns: Some(monotonic_ns().saturating_sub(elapsed)), ..self }
    }
}

impl HistorySink {
    /// Creates the file and writes its header.
    pub fn create(path: &Path, header: &Header) -> std::io::Result<HistorySink> {
        let mut out = File::create(path)?;
        let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        out.write_all(&head)?;
        let (tx, rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = channel();
        let pool: Pool = Arc::new(Mutex::new(Vec::new()));
        let back = pool.clone();
        let thread = std::thread::Builder::new().name("percore-history".into()).spawn(move || {
            let mut bytes = 0u64;
            // Chunks are 1 MiB: written as they are, without another copy.
            for chunk in rx {
                out.write_all(&chunk)?;
                bytes += chunk.len() as u64;
                if let Ok(mut p) = back.lock()
                    && p.len() < 64
                {
                    p.push(chunk);
                }
            }
            out.flush()?;
            Ok(bytes / RECORD_LEN as u64)
        })?;
        Ok(HistorySink { tx: Some(tx), thread: Some(thread), path: path.to_path_buf(), pool })
    }

    /// A recorder for load thread `client`.
    pub fn writer(&self, client: u16) -> Option<HistoryWriter> {
        let tx = self.tx.as_ref()?.clone();
        Some(HistoryWriter { client, buf: Vec::with_capacity(BUFFER + RECORD_LEN), tx, pool: self.pool.clone() })
    }

    /// Waits for every writer to finish and the file to be flushed; returns
    /// the number of records written.
    pub fn close(mut self) -> std::io::Result<u64> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| std::io::Error::other("history writer thread panicked"))?,
            None => Ok(0),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why a history file cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a percore history, or is damaged.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a history file, record by record or in chunks.
pub struct HistoryReader {
    input: File,
    /// The file's header.
    pub header: Header,
    path: PathBuf,
    /// Bytes of records in the file (after the header).
    records_bytes: u64,
    /// Read-ahead: raw bytes, and how far they have been decoded.
    buf: Vec<u8>,
    at: usize,
    /// Records decoded so far.
    index: u64,
}

impl HistoryReader {
    /// Opens a history file and reads its header.
    pub fn open(path: &Path) -> Result<HistoryReader, HistoryError> {
        let name = path.display().to_string();
        let format = |reason: String| HistoryError::Format { path: name.clone(), reason };
        let io = |source: std::io::Error| HistoryError::Io { path: name.clone(), source };
        let mut input = File::open(path).map_err(io)?;
        let total = input.metadata().map_err(io)?.len();
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|e| format(format!("not a percore history ({e})")))?;
        if &magic != MAGIC {
            return Err(format(format!("not a percore history (bad magic {magic:02x?})")));
        }
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(|e| format(format!("truncated header ({e})")))?;
        let len = u32::from_le_bytes(len) as usize;
        if len > 1 << 20 {
            return Err(format(format!("header of {len} bytes is implausible")));
        }
        let mut json = vec![0u8; len];
        input.read_exact(&mut json).map_err(|e| format(format!("truncated header ({e})")))?;
        let header: Header = serde_json::from_slice(&json).map_err(|e| format(format!("bad header: {e}")))?;
        if !(1..=VERSION).contains(&header.version) {
            return Err(format(format!(
                "history version {} (this build reads versions 1 to {VERSION})",
                header.version
            )));
        }
        let records_bytes = total.saturating_sub(12 + len as u64);
        Ok(HistoryReader { input, header, path: path.to_path_buf(), records_bytes, buf: Vec::new(), at: 0, index: 0 })
    }

    /// Records in the file, from its size (a truncated last record is not counted).
    pub fn len(&self) -> u64 {
        self.records_bytes / RECORD_LEN as u64
    }

    /// True if the file holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tops up the read-ahead buffer (4 MiB, or to the end of the file).
    fn refill(&mut self) -> Result<(), HistoryError> {
        let rest = self.buf.len() - self.at;
        self.buf.copy_within(self.at.., 0);
        self.buf.truncate(rest);
        self.at = 0;
        let want = 4 << 20;
        self.buf.resize(rest + want, 0);
        let mut got = rest;
        while got < rest + want {
            match self.input.read(&mut self.buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(HistoryError::Io { path: self.path.display().to_string(), source }),
            }
        }
        self.buf.truncate(got);
        Ok(())
    }

    /// The next record; `Ok(None)` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>, HistoryError> {
        if self.buf.len() - self.at < RECORD_LEN {
            // A refill reads until its buffer is full or the file ends.
            self.refill()?;
            match self.buf.len() - self.at {
                0 => return Ok(None),
                left if left < RECORD_LEN => {
                    return Err(HistoryError::Format {
                        path: self.path.display().to_string(),
                        reason: format!("truncated record at the end (after record {})", self.index),
                    });
                }
                _ => {}
            }
        }
        let mut b = [0u8; RECORD_LEN];
        b.copy_from_slice(&self.buf[self.at..self.at + RECORD_LEN]);
        self.at += RECORD_LEN;
        let index = self.index;
        self.index += 1;
        Record::decode_version(&b, self.header.version).map(Some).ok_or_else(|| HistoryError::Format {
            path: self.path.display().to_string(),
            reason: format!("record {index} has an unknown kind {}", b[5]),
        })
    }

    /// The position (from 0) the next record has in the file.
    pub fn position(&self) -> u64 {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record { key: MAX_KEY, kind: Kind::Put, client: 65535, value: 7, invoke: 1, response: NO_RESPONSE };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let g = Record { key: 0, kind: Kind::Get, client: 0, value: NOT_FOUND, invoke: 5, response: 9 };
        assert_eq!(Record::decode(&g.encode()), Some(g));
        let d = Record { key: 3, kind: Kind::Delete, client: 1, value: 0, invoke: 5, response: 9 };
        assert_eq!(Record::decode(&d.encode()), Some(d));
        // Version 1 knew no DELETE.
        assert_eq!(Record::decode_version(&d.encode(), 1), None);
        assert_eq!(Record::decode_version(&g.encode(), 1), Some(g));
    }

    #[test]
    fn file_round_trips() {
        let path = std::env::temp_dir().join(format!("percore-hist-{}.bin", std::process::id()));
        let header = Header {
            version: VERSION,
            node: "n".into(),
            pid: 1,
            epoch_unix_ns: 0,
            clock: "test".into(),
            threads: 2,
            boot_id: None,
            epoch_monotonic_ns: None,
        };
        let sink = HistorySink::create(&path, &header).expect("create");
        let mut a = sink.writer(0).expect("writer");
        let mut b = sink.writer(1).expect("writer");
        for i in 0..100_000u64 {
            a.record(i, OpKind::Put, i + 1, i, i + 10);
            b.record(i, OpKind::Get, NOT_FOUND, i, i + 5);
        }
        a.finish();
        b.finish();
        assert_eq!(sink.close().expect("close"), 200_000);
        let mut r = HistoryReader::open(&path).expect("open");
        assert_eq!(r.header.threads, 2);
        assert_eq!(r.len(), 200_000);
        let mut n = 0;
        while let Some(rec) = r.next_record().expect("read") {
            assert!(rec.response > rec.invoke);
            n += 1;
        }
        assert_eq!(n, 200_000);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn version_1_files_still_read_and_damage_is_named() {
        let path = std::env::temp_dir().join(format!("percore-hist-v1-{}.bin", std::process::id()));
        let header = br#"{"version":1,"node":"old","pid":7,"epoch_unix_ns":0,"clock":"c","threads":1}"#;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header);
        let put = Record { key: 9, kind: Kind::Put, client: 0, value: 5, invoke: 1, response: 2 };
        bytes.extend_from_slice(&put.encode());
        std::fs::write(&path, &bytes).expect("write");
        let mut r = HistoryReader::open(&path).expect("open v1");
        assert_eq!((r.header.version, r.len()), (1, 1));
        assert_eq!(r.next_record().expect("read"), Some(put));
        assert_eq!(r.next_record().expect("end"), None);

        // A DELETE is not a version 1 kind; a torn last record is named.
        let del = Record { kind: Kind::Delete, ..put };
        std::fs::write(&path, [&bytes[..], &del.encode()[..]].concat()).expect("write");
        let mut r = HistoryReader::open(&path).expect("open v1");
        assert!(r.next_record().expect("first").is_some());
        let e = r.next_record().expect_err("unknown kind");
        assert!(e.to_string().contains("record 1 has an unknown kind 2"), "{e}");
        std::fs::write(&path, [&bytes[..], &[1, 2, 3]].concat()).expect("write");
        let mut r = HistoryReader::open(&path).expect("open");
        assert!(r.next_record().expect("first").is_some());
        let e = r.next_record().expect_err("torn");
        assert!(e.to_string().contains("truncated record"), "{e}");
        std::fs::write(&path, b"PCHIST02xxxx").expect("write");
        assert!(HistoryReader::open(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
