//! A blocking RESP2/RESP3 client for tests: sends commands as multibulk
//! (or raw bytes) and reads whole replies into [`Value`]s.
//!
//! Written for checking the server's replies byte by byte, not for speed;
//! every read has a deadline, so a test never hangs on a silent server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One RESP reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+text`
    Simple(String),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` bulk string.
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3's `_`.
    Null,
    /// `*n` array, or RESP3's `~n` set.
    Array(Vec<Value>),
    /// RESP3's `%n` map.
    Map(Vec<(Value, Value)>),
    /// RESP3's `,d`.
    Double(f64),
    /// RESP3's `#t` / `#f`.
    Bool(bool),
    /// RESP3's `=n` verbatim string, without its `txt:` prefix.
    Verbatim(String),
}

impl Value {
    /// The bytes of a bulk, simple or verbatim string.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) | Value::Verbatim(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The text of a bulk, simple or verbatim string (lossy).
    pub fn text(&self) -> String {
        self.bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_else(|| format!("{self:?}"))
    }

    /// An error reply's text.
    pub fn error(&self) -> Option<&str> {
        match self {
            Value::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// A connection to a RESP server.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// Encodes one command as a multibulk.
pub fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Resp {
    /// Connects with a 10 s read deadline.
    pub fn connect(addr: &str) -> Resp {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = stream.set_nodelay(true);
        Resp { writer: stream.try_clone().expect("clone"), reader: BufReader::new(stream) }
    }

    /// Connects with a 10 s read deadline; `None` if nothing listens (a
    /// node a test killed).
    pub fn try_connect(addr: &str) -> Option<Resp> {
        let to = addr.parse().ok()?;
        let stream = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let _ = stream.set_nodelay(true);
        Some(Resp { writer: stream.try_clone().ok()?, reader: BufReader::new(stream) })
    }

    /// Sends one command and reads its reply; `None` if the connection
    /// failed or closed first.
    pub fn try_cmd(&mut self, args: &[&str]) -> Option<Value> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.writer.write_all(&multibulk(&args)).ok()?;
        self.read()
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bytes(&args)
    }

    /// Sends one command of byte arguments and reads its reply.
    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Value {
        self.send(&multibulk(args));
        self.read().expect("a reply")
    }

    /// Reads one reply; `None` if the server closed the connection.
    pub fn read(&mut self) -> Option<Value> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).ok()?;
        if n == 0 {
            return None;
        }
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {:?}", String::from_utf8_lossy(&line));
        line.truncate(line.len() - 2);
        let (kind, rest) = (line[0], String::from_utf8_lossy(&line[1..]).into_owned());
        let num = || rest.parse::<i64>().unwrap_or_else(|_| panic!("bad length {rest:?}"));
        Some(match kind {
            b'+' => Value::Simple(rest),
            b'-' => Value::Error(rest),
            b':' => Value::Int(num()),
            b'_' => Value::Null,
            b'#' => Value::Bool(rest == "t"),
            b',' => Value::Double(rest.parse().unwrap_or(f64::NAN)),
            b'$' | b'=' => {
                if num() < 0 {
                    return Some(Value::Null);
                }
                let mut body = vec![0u8; num() as usize + 2];
                self.reader.read_exact(&mut body).ok()?;
                body.truncate(body.len() - 2);
                if kind == b'=' {
                    Value::Verbatim(String::from_utf8_lossy(&body[4..]).into_owned())
                } else {
                    Value::Bulk(body)
                }
            }
            b'*' | b'~' => {
                if num() < 0 {
                    return Some(Value::Null);
                }
                let mut items = Vec::new();
                for _ in 0..num() {
                    items.push(self.read()?);
                }
                Value::Array(items)
            }
            b'%' => {
                let mut pairs = Vec::new();
                for _ in 0..num() {
                    let k = self.read()?;
                    pairs.push((k, self.read()?));
                }
                Value::Map(pairs)
            }
            other => panic!("unknown reply type {:?} in {:?}", other as char, String::from_utf8_lossy(&line)),
        })
    }
}
