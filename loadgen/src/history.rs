//! Operation histories: every operation of a run, recorded compactly for the
//! linearizability checker (`percore check`).
//!
//! # File format (version 1)
//!
//! ```text
//! "PCHIST01"                      8 bytes magic
//! header length                   u32 LE
//! header                          UTF-8 JSON: {"version":1,"node":…,"pid":…,
//!                                 "epoch_unix_ns":…,"clock":…,"threads":…}
//! records                         32 bytes each, until the end of the file
//! ```
//!
//! A record is four little-endian `u64` words:
//!
//! | word | bits | meaning |
//! |---|---|---|
//! | 0 | 0–39 | key (the record number; keys are decimal record numbers) |
//! | 0 | 40–47 | kind: 0 GET, 1 PUT |
//! | 0 | 48–63 | client: the load thread within this file |
//! | 1 | all | value: for a PUT the identity written; for a GET the identity read, [`NOT_FOUND`], or [`BAD_READ`] |
//! | 2 | all | invoke time, ns since this process's epoch |
//! | 3 | all | response time, ns since this process's epoch |
//!
//! An identity is `(writer << 48) | seq` (see [`crate::value::Identity`]):
//! unique per write in a run, so a read names the write it observed.
//! Values written by the load phase have writer `0xFFFF` and seq = record.
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
//! large sequential writes, off the load threads' path.

use crate::workload::OpKind;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// File magic.
pub const MAGIC: &[u8; 8] = b"PCHIST01";
/// Bytes per record.
pub const RECORD_LEN: usize = 32;
/// Value of a GET that found nothing.
pub const NOT_FOUND: u64 = 0;
/// Value of a GET whose value failed verification.
pub const BAD_READ: u64 = u64::MAX;
/// Largest key number a record can hold.
pub const MAX_KEY: u64 = (1 << 40) - 1;

const BUFFER: usize = 1 << 20;

/// One recorded operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Key (record number).
    pub key: u64,
    /// GET or PUT.
    pub kind: OpKind,
    /// Load thread within its file.
    pub client: u16,
    /// Identity written (PUT) or read (GET), or a sentinel.
    pub value: u64,
    /// Invoke time (ns, process clock).
    pub invoke: u64,
    /// Response time (ns, process clock).
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

    /// Decodes 32 bytes; `None` if the kind byte is unknown.
    #[inline]
    pub fn decode(b: &[u8; RECORD_LEN]) -> Option<Record> {
        let w =
            |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
        let w0 = w(0);
        let kind = match (w0 >> 40) & 0xFF {
            0 => OpKind::Get,
            1 => OpKind::Put,
            _ => return None,
        };
        Some(Record { key: w0 & MAX_KEY, kind, client: (w0 >> 48) as u16, value: w(8), invoke: w(16), response: w(24) })
    }
}

/// Per-thread recorder: appends to a buffer, hands full buffers to the sink.
pub struct HistoryWriter {
    client: u16,
    buf: Vec<u8>,
    tx: Sender<Vec<u8>>,
}

impl HistoryWriter {
    /// Records one operation.
    #[inline]
    pub fn record(&mut self, key: u64, kind: OpKind, value: u64, invoke: u64, response: u64) {
        let r = Record { key, kind, client: self.client, value, invoke, response };
        self.buf.extend_from_slice(&r.encode());
        if self.buf.len() >= BUFFER {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BUFFER + RECORD_LEN));
            let _ = self.tx.send(full);
        }
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
}

/// Header fields.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Format version (1).
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
}

impl HistorySink {
    /// Creates the file and writes its header.
    pub fn create(path: &Path, header: &Header) -> std::io::Result<HistorySink> {
        let file = File::create(path)?;
        let mut out = BufWriter::with_capacity(4 << 20, file);
        let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        out.write_all(MAGIC)?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        let (tx, rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = channel();
        let thread = std::thread::Builder::new().name("percore-history".into()).spawn(move || {
            let mut bytes = 0u64;
            for chunk in rx {
                out.write_all(&chunk)?;
                bytes += chunk.len() as u64;
            }
            out.flush()?;
            Ok(bytes / RECORD_LEN as u64)
        })?;
        Ok(HistorySink { tx: Some(tx), thread: Some(thread), path: path.to_path_buf() })
    }

    /// A recorder for load thread `client`.
    pub fn writer(&self, client: u16) -> Option<HistoryWriter> {
        let tx = self.tx.as_ref()?.clone();
        Some(HistoryWriter { client, buf: Vec::with_capacity(BUFFER + RECORD_LEN), tx })
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

/// Reads a history file record by record.
pub struct HistoryReader {
    input: BufReader<File>,
    /// The file's header.
    pub header: Header,
    path: PathBuf,
}

impl HistoryReader {
    /// Opens a history file and reads its header.
    pub fn open(path: &Path) -> Result<HistoryReader, String> {
        let name = path.display();
        let file = File::open(path).map_err(|e| format!("cannot open history {name}: {e}"))?;
        let mut input = BufReader::with_capacity(4 << 20, file);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|e| format!("{name}: not a percore history ({e})"))?;
        if &magic != MAGIC {
            return Err(format!("{name}: not a percore history (bad magic {magic:02x?})"));
        }
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(|e| format!("{name}: truncated header ({e})"))?;
        let len = u32::from_le_bytes(len) as usize;
        if len > 1 << 20 {
            return Err(format!("{name}: header of {len} bytes is implausible"));
        }
        let mut json = vec![0u8; len];
        input.read_exact(&mut json).map_err(|e| format!("{name}: truncated header ({e})"))?;
        let header: Header = serde_json::from_slice(&json).map_err(|e| format!("{name}: bad header: {e}"))?;
        if header.version != 1 {
            return Err(format!("{name}: history version {} (this build reads version 1)", header.version));
        }
        Ok(HistoryReader { input, header, path: path.to_path_buf() })
    }

    /// The next record; `Ok(None)` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        let mut b = [0u8; RECORD_LEN];
        let mut got = 0;
        while got < RECORD_LEN {
            match self.input.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(format!("{}: truncated record at the end", self.path.display())),
                Ok(n) => got += n,
                Err(e) => return Err(format!("{}: {e}", self.path.display())),
            }
        }
        Record::decode(&b).map(Some).ok_or_else(|| format!("{}: record with an unknown kind", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record { key: MAX_KEY, kind: OpKind::Put, client: 65535, value: 7, invoke: 1, response: u64::MAX };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let g = Record { key: 0, kind: OpKind::Get, client: 0, value: NOT_FOUND, invoke: 5, response: 9 };
        assert_eq!(Record::decode(&g.encode()), Some(g));
    }

    #[test]
    fn file_round_trips() {
        let path = std::env::temp_dir().join(format!("percore-hist-{}.bin", std::process::id()));
        let header =
            Header { version: 1, node: "n".into(), pid: 1, epoch_unix_ns: 0, clock: "test".into(), threads: 2 };
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
        let mut n = 0;
        while let Some(rec) = r.next_record().expect("read") {
            assert!(rec.response > rec.invoke);
            n += 1;
        }
        assert_eq!(n, 200_000);
        let _ = std::fs::remove_file(&path);
    }
}
