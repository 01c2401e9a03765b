//! Redis's RESP protocol for the load generator: `GET` and `SET` commands
//! written back to back (a batch is simply `--batch` commands; `--pipeline`
//! batches in flight make the pipeline depth `batch × pipeline`), replies
//! parsed incrementally as they arrive.
//!
//! Replies understood: bulk strings (`$<len>\r\n<bytes>\r\n`), nulls (`$-1`
//! and RESP3 `_`), simple strings (`+OK`) and errors (`-ERR …`).
//!
//! Against a Redis Cluster every connection goes to the master that serves
//! its keys' slots; a key sent elsewhere is answered `-MOVED` or `-ASK`
//! (refused, [`RefusedBy::WrongShard`]: the slot map changed under the
//! run, or a replicated shard's leader moved). `-CLUSTERDOWN` and
//! `-NOTLEADER` (no leader here: an election) are [`RefusedBy::NoLeader`];
//! `-TRYAGAIN`, `-CROSSSLOT` and every other error are refused too
//! ([`RefusedBy::Other`]); none is ever counted a success.

use super::{Protocol, RefusedBy, Reply, line_end, value_line};
use std::io::Write as _;

/// RESP on one connection.
#[derive(Default)]
pub struct Resp {
    open: usize,
}

impl Resp {
    /// A fresh protocol state.
    pub fn new() -> Resp {
        Resp::default()
    }
}

fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    let _ = write!(out, "${}\r\n", bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn parse_int(bytes: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad RESP length {:?}", String::from_utf8_lossy(bytes)))
}

impl Protocol for Resp {
    fn begin(&mut self, _out: &mut Vec<u8>, _batch_id: u64) {
        self.open = 0;
    }

    #[inline]
    fn get(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
        bulk(out, key);
        self.open += 16 + key.len();
    }

    #[inline]
    fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value_len: usize, fill: impl FnOnce(&mut [u8])) {
        out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
        bulk(out, key);
        let _ = write!(out, "${value_len}\r\n");
        value_line(out, value_len, fill);
        self.open += 32 + key.len() + value_len;
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}

    fn open_bytes(&self) -> usize {
        self.open
    }

    fn decode(&mut self, buf: &[u8], on_reply: &mut impl FnMut(Reply<'_>)) -> Result<usize, String> {
        let mut at = 0;
        while at < buf.len() {
            let Some(eol) = line_end(buf, at) else { break };
            let line = &buf[at + 1..eol];
            match buf[at] {
                b'$' => {
                    let len = parse_int(line)?;
                    if len < 0 {
                        on_reply(Reply::NotFound);
                        at = eol + 2;
                        continue;
                    }
                    let start = eol + 2;
                    let end = start + len as usize;
                    if buf.len() < end + 2 {
                        break;
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err("bulk string not terminated by CRLF".into());
                    }
                    on_reply(Reply::Value(&buf[start..end]));
                    at = end + 2;
                }
                b'_' => {
                    on_reply(Reply::NotFound);
                    at = eol + 2;
                }
                b'+' => {
                    on_reply(Reply::Done);
                    at = eol + 2;
                }
                b'-' => {
                    if line.starts_with(b"MOVED ") || line.starts_with(b"ASK ") {
                        on_reply(Reply::Refused(RefusedBy::WrongShard));
                    } else if line.starts_with(b"CLUSTERDOWN") || line.starts_with(b"NOTLEADER") {
                        on_reply(Reply::Refused(RefusedBy::NoLeader));
                    } else if line.starts_with(b"OOM") {
                        on_reply(Reply::Refused(RefusedBy::OutOfMemory));
                    } else {
                        on_reply(Reply::Refused(RefusedBy::Other));
                    }
                    at = eol + 2;
                }
                other => return Err(format!("unexpected RESP reply type {:?}", other as char)),
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(bytes: &[u8]) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let used = Resp::new().decode(bytes, &mut |r| out.push(format!("{r:?}"))).expect("decodes");
        (out, used)
    }

    #[test]
    fn encodes_commands() {
        let mut r = Resp::new();
        let mut out = Vec::new();
        r.get(&mut out, b"k1");
        r.put(&mut out, b"k2", 3, |v| v.copy_from_slice(b"abc"));
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$3\r\nabc\r\n");
    }

    #[test]
    fn decodes_whole_and_partial_replies() {
        let all = b"$3\r\nabc\r\n$-1\r\n+OK\r\n-ERR nope\r\n_\r\n$2\r\nx";
        let (r, used) = replies(all);
        assert_eq!(r, vec!["Value([97, 98, 99])", "NotFound", "Done", "Refused(Other)", "NotFound"]);
        assert_eq!(used, all.len() - 5, "the partial bulk string is left for later");
        let (r, used) = replies(b"$5\r\nab");
        assert!(r.is_empty());
        assert_eq!(used, 0);
    }

    #[test]
    fn cluster_redirections_and_errors_are_refusals() {
        let (r, _) = replies(
            b"-MOVED 3999 127.0.0.1:6381\r\n-ASK 3999 127.0.0.1:6381\r\n-TRYAGAIN Multiple keys request during rehashing of slot\r\n\
              -CLUSTERDOWN The cluster is down\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n-OOM no\r\n\
              -NOTLEADER shard 0 is served by its leader at 10.0.0.2:7000\r\n",
        );
        assert_eq!(
            r,
            vec![
                "Refused(WrongShard)",
                "Refused(WrongShard)",
                "Refused(Other)",
                "Refused(NoLeader)",
                "Refused(Other)",
                "Refused(OutOfMemory)",
                "Refused(NoLeader)"
            ]
        );
    }

    #[test]
    fn binary_values_with_crlf_inside() {
        let (r, _) = replies(b"$4\r\n\r\n\r\n\r\n");
        assert_eq!(r, vec!["Value([13, 10, 13, 10])"]);
    }
}
