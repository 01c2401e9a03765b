//! memcached's meta text protocol for the load generator (memcached ≥ 1.6):
//! `mg <key> v` to read, `ms <key> <len>` to write, replies parsed
//! incrementally. Commands of a batch are written back to back; memcached
//! answers a connection's commands in order.
//!
//! Replies understood: `VA <len> …` + data (a hit), `EN` (a miss), `HD`
//! (stored), `NS`/`NF`/`EX` (not stored), and `ERROR`, `CLIENT_ERROR …`,
//! `SERVER_ERROR …`.

use super::{Protocol, RefusedBy, Reply, line_end, value_line};
use std::io::Write as _;

/// The meta protocol on one connection.
#[derive(Default)]
pub struct Memcache {
    open: usize,
}

impl Memcache {
    /// A fresh protocol state.
    pub fn new() -> Memcache {
        Memcache::default()
    }
}

impl Protocol for Memcache {
    fn begin(&mut self, _out: &mut Vec<u8>, _batch_id: u64) {
        self.open = 0;
    }

    #[inline]
    fn get(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        out.extend_from_slice(b"mg ");
        out.extend_from_slice(key);
        out.extend_from_slice(b" v\r\n");
        self.open += 8 + key.len();
    }

    #[inline]
    fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value_len: usize, fill: impl FnOnce(&mut [u8])) {
        out.extend_from_slice(b"ms ");
        out.extend_from_slice(key);
        let _ = write!(out, " {value_len}\r\n");
        value_line(out, value_len, fill);
        self.open += 24 + key.len() + value_len;
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}

    fn open_bytes(&self) -> usize {
        self.open
    }

    fn decode(&mut self, buf: &[u8], on_reply: &mut impl FnMut(Reply<'_>)) -> Result<usize, String> {
        let mut at = 0;
        while at < buf.len() {
            let Some(eol) = line_end(buf, at) else { break };
            let line = &buf[at..eol];
            if let Some(rest) = line.strip_prefix(b"VA ") {
                let len_text = rest.split(|&b| b == b' ').next().unwrap_or_default();
                let len: usize = std::str::from_utf8(len_text)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad VA line {:?}", String::from_utf8_lossy(line)))?;
                let start = eol + 2;
                if buf.len() < start + len + 2 {
                    break;
                }
                if &buf[start + len..start + len + 2] != b"\r\n" {
                    return Err("value not terminated by CRLF".into());
                }
                on_reply(Reply::Value(&buf[start..start + len]));
                at = start + len + 2;
                continue;
            }
            match line {
                b"EN" => on_reply(Reply::NotFound),
                b"HD" => on_reply(Reply::Done),
                b"NS" | b"NF" | b"EX" | b"ERROR" => on_reply(Reply::Refused(RefusedBy::Other)),
                l if l.starts_with(b"CLIENT_ERROR") || l.starts_with(b"SERVER_ERROR") => {
                    on_reply(Reply::Refused(if l.contains_slice(b"too large") {
                        RefusedBy::TooLarge
                    } else if l.contains_slice(b"out of memory") {
                        RefusedBy::OutOfMemory
                    } else {
                        RefusedBy::Other
                    }))
                }
                other => return Err(format!("unexpected memcached reply {:?}", String::from_utf8_lossy(other))),
            }
            at = eol + 2;
        }
        Ok(at)
    }
}

trait ContainsSlice {
    fn contains_slice(&self, needle: &[u8]) -> bool;
}

impl ContainsSlice for [u8] {
    fn contains_slice(&self, needle: &[u8]) -> bool {
        self.windows(needle.len()).any(|w| w == needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_meta_commands() {
        let mut m = Memcache::new();
        let mut out = Vec::new();
        m.get(&mut out, b"k1");
        m.put(&mut out, b"k2", 3, |v| v.copy_from_slice(b"abc"));
        assert_eq!(out, b"mg k1 v\r\nms k2 3\r\nabc\r\n");
    }

    #[test]
    fn decodes_whole_and_partial_replies() {
        let mut got = Vec::new();
        let bytes = b"VA 3\r\nabc\r\nEN\r\nHD\r\nSERVER_ERROR object too large for cache\r\nVA 4 f\r\nab";
        let used = Memcache::new().decode(bytes, &mut |r| got.push(format!("{r:?}"))).expect("decodes");
        assert_eq!(got, vec!["Value([97, 98, 99])", "NotFound", "Done", "Refused(TooLarge)"]);
        assert_eq!(&bytes[used..], b"VA 4 f\r\nab");
    }
}
