//! RESP, the Redis protocol: [`parse`] reads one client command from a
//! receive buffer, and the functions of [`reply`] (re-exported here) append
//! replies in RESP2 or RESP3.
//!
//! # Requests
//!
//! A command that starts with `*` is a multibulk command, as every Redis
//! client sends:
//!
//! ```text
//! *<n>\r\n  then n times  $<len>\r\n<len bytes>\r\n
//! ```
//!
//! Its arguments are slices of the receive buffer: nothing is copied. Any
//! other first byte starts an inline command (what `telnet` or `nc` send):
//! one line up to `\n`, a `\r` before it dropped, split into arguments as
//! Redis's `sdssplitargs` does — blanks separate them, `"..."` understands
//! `\n \r \t \b \a \\ \"` and `\xHH`, `'...'` understands only `\'`, and a
//! closing quote must be followed by a blank or the end of the line. Inline
//! arguments are unescaped into an [`ArgScratch`] the caller keeps per
//! connection, so a warm connection parses without allocating.
//!
//! [`parse`] is restartable: it keeps no state between calls. When the
//! command at the front of the buffer is not whole it answers
//! [`Parsed::NeedMore`], with the total size of the command up to the end of
//! the bulk string it is waiting for once the headers tell it; the caller
//! reads more and calls it again from the start of the command. One call
//! costs O(bytes of the command): header lines are found with `memchr`,
//! bulk strings are skipped by their length.
//!
//! # Limits and errors
//!
//! [`RespLimits`] bounds one command; every limit is checked as soon as the
//! headers read so far show it is broken, before the caller buffers the rest.
//! A refused command is a [`RespError`], whose `Display` is Redis's exact
//! text (the caller sends it after `-ERR ` and closes the connection, as
//! Redis does after a protocol error).
//!
//! Where this parser departs from Redis 7's `networking.c`, it is stricter or
//! answers sooner, never laxer:
//! - a header line's `\r` must be followed by `\n`, and a bulk string by
//!   `\r\n` (Redis skips those two bytes unread);
//! - a bulk header not starting with `$` is refused as soon as its first
//!   byte arrives (Redis waits for the line's `\r`);
//! - an inline line (and a header line) is refused when no line end lies in
//!   its first [`RespLimits::max_inline_len`] bytes, however the bytes were
//!   cut into reads (Redis checks only what one read left buffered);
//! - a NUL byte is an ordinary byte in an inline command (Redis's C strings
//!   would stop at it);
//! - a command larger than [`RespLimits::max_command_bytes`] is refused with
//!   [`RespError::CommandTooBig`] (Redis closes the client when its query
//!   buffer passes `client-query-buffer-limit`).

use memchr::memchr;

pub use reply::{
    array, boolean, bulk, bulk_header, double, error, integer, map, null, null_array, set, simple, verbatim,
};

/// Limits on one RESP command (Redis's `proto-max-bulk-len` and its
/// multibulk count limit).
///
/// | field | default | why |
/// |---|---|---|
/// | `max_bulk_len` | 4 MiB | the longest argument; values larger than this are refused |
/// | `max_multibulk_len` | 65 536 | bounds the argument spans one command makes the server hold |
/// | `max_inline_len` | 64 KiB | Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline line, and the longest `*`/`$` header line |
/// | `max_command_bytes` | 4 MiB + 64 KiB | the connection's query buffer cap: one largest bulk plus room for the rest |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest bulk string argument, in bytes.
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk command.
    pub max_multibulk_len: usize,
    /// Longest inline command line without its `\n`, and longest `*`/`$`
    /// header line, in bytes.
    pub max_inline_len: usize,
    /// Largest whole command, headers and line ends included, in bytes.
    pub max_command_bytes: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk_len: 1 << 22,
            max_multibulk_len: 65_536,
            max_inline_len: 64 << 10,
            max_command_bytes: (4 << 20) + (64 << 10),
        }
    }
}

/// The fewest bytes one more multibulk argument takes: `$0\r\n\r\n`.
const MIN_ARG_BYTES: usize = 6;

/// Where one argument lies in [`Args`]'s source: `source[start..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// Reusable storage for one parsed command's argument spans (no allocation
/// per command once warm). Keep one per connection and pass it to every
/// [`parse`]; each call overwrites what the previous one left.
#[derive(Debug, Default)]
pub struct ArgScratch {
    /// One span per argument of the last command parsed.
    spans: Vec<Span>,
    /// The unescaped arguments of the last inline command (empty after a
    /// multibulk one, whose arguments stay in the receive buffer).
    bytes: Vec<u8>,
}

impl ArgScratch {
    /// An empty scratch; it grows to the largest command it has parsed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives memory back after an unusually large command: keeps room for at
    /// most `args` argument spans and `bytes` inline bytes.
    pub fn shrink(&mut self, args: usize, bytes: usize) {
        self.spans.clear();
        self.bytes.clear();
        self.spans.shrink_to(args);
        self.bytes.shrink_to(bytes);
    }
}

/// One parsed command's arguments: slices of the receive buffer (multibulk)
/// or of the scratch (inline).
#[derive(Clone, Copy)]
pub struct Args<'a> {
    /// The bytes every span indexes: the receive buffer, or the scratch's bytes.
    source: &'a [u8],
    /// One per argument, each within `source`.
    spans: &'a [Span],
}

impl<'a> Args<'a> {
    /// Number of arguments (the command name included).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none (an empty inline line, `*0`, `*-1`).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i`. Panics if `i >= self.len()`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        let Span { start, end } = self.spans[i];
        &self.source[start..end]
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let source = self.source;
        self.spans.iter().map(move |s| &source[s.start..s.end])
    }

    /// The bytes every argument is a slice of: the front of the receive
    /// buffer for a multibulk command, the scratch for an inline one.
    pub fn source(&self) -> &'a [u8] {
        self.source
    }
}

impl std::fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(Escaped)).finish()
    }
}

/// Shows bytes as `escape_ascii` does, in `Debug` output.
struct Escaped<'a>(&'a [u8]);

impl std::fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// What [`parse`] found at the front of the buffer.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole command: its arguments (possibly zero, for an empty inline
    /// line or `*0\r\n` — callers skip those) and how many bytes of `buf` it
    /// took.
    Command {
        /// The command's arguments, its name first.
        args: Args<'a>,
        /// Bytes of the buffer the command took; the next command starts there.
        len: usize,
    },
    /// Not a whole command yet; `need` is the total byte count of the command
    /// at the front of `buf` once it is known (so the caller can size its
    /// buffer and wait), else None.
    NeedMore {
        /// When known, a size the command reaches at least (always more than
        /// the buffer holds and at most [`RespLimits::max_command_bytes`]):
        /// the end of the bulk string being waited for.
        need: Option<usize>,
    },
}

/// Why a command was refused; `Display` gives Redis's exact text after the
/// "-ERR " prefix, e.g. "Protocol error: invalid multibulk length". After
/// any of these the stream cannot be resynchronised: reply and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// `*` not followed by a number, or a count over the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// An argument header that does not start with `$`; `got` is the byte found.
    #[error("Protocol error: expected '$', got '{}'", ShownByte(*.got))]
    ExpectedDollar {
        /// The byte found where `$` belonged.
        got: u8,
    },
    /// `$` not followed by a number, a negative length, or one over the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// No `\r` within `max_inline_len` bytes of a `*` header.
    #[error("Protocol error: too big mbulk count string")]
    MbulkCountTooBig,
    /// No `\r` within `max_inline_len` bytes of a `$` header.
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// A `*` or `$` header line whose `\r` is not followed by `\n`.
    #[error("Protocol error: header line not terminated by CRLF")]
    HeaderNotCrlf,
    /// A bulk string's bytes not followed by `\r\n`.
    #[error("Protocol error: bulk string of {len} bytes not followed by CRLF")]
    BulkNotCrlf {
        /// The bulk string's declared length.
        len: usize,
    },
    /// An inline line with an unterminated quote, or a closing quote followed by
    /// something other than a blank.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// No `\n` within `max_inline_len` bytes of an inline command.
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// The headers read so far show the command takes at least `len` bytes,
    /// more than `max_command_bytes`.
    #[error("Protocol error: command of at least {len} bytes exceeds the query buffer limit of {limit} bytes")]
    CommandTooBig {
        /// Bytes the command takes at least.
        len: usize,
        /// The limit (`max_command_bytes`).
        limit: usize,
    },
}

/// A byte as Redis's `%c` shows it in an error line: printable ASCII as
/// itself, `\r` and `\n` as a space (Redis maps them so the reply stays one
/// line), anything else as `\xHH` (Redis would send the raw byte).
struct ShownByte(u8);

impl std::fmt::Display for ShownByte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            b'\r' | b'\n' => f.write_str(" "),
            b @ 0x20..=0x7e => write!(f, "{}", b as char),
            b => write!(f, "\\x{b:02x}"),
        }
    }
}

/// Parses the command at the front of `buf`.
///
/// Never panics and never reads past `buf`; on `Ok(Command)` the command took
/// `len` bytes (more than zero, at most `buf.len()` and at most
/// `limits.max_command_bytes`).
pub fn parse<'a>(buf: &'a [u8], limits: &RespLimits, scratch: &'a mut ArgScratch) -> Result<Parsed<'a>, RespError> {
    scratch.spans.clear();
    scratch.bytes.clear();
    let step = match buf.first() {
        None => Step::Need(None),
        Some(b'*') => multibulk(buf, limits, &mut scratch.spans)?,
        Some(_) => inline(buf, limits, scratch)?,
    };
    match step {
        Step::Done { len, inline } => {
            let scratch: &'a ArgScratch = scratch;
            let source = if inline { &scratch.bytes[..] } else { &buf[..len] };
            Ok(Parsed::Command { args: Args { source, spans: &scratch.spans }, len })
        }
        Step::Need(need) => {
            // The command is longer than what is buffered: if that already
            // reaches the cap, it will not fit.
            if need.is_none() && buf.len() >= limits.max_command_bytes {
                return Err(RespError::CommandTooBig {
                    len: buf.len().saturating_add(1),
                    limit: limits.max_command_bytes,
                });
            }
            Ok(Parsed::NeedMore { need })
        }
    }
}

/// Where a parse got to, before the arguments are borrowed out of the scratch.
enum Step {
    /// A whole command of `len` bytes; `inline`: its arguments are in the scratch.
    Done { len: usize, inline: bool },
    /// Not whole; the size it reaches at least, when known.
    Need(Option<usize>),
}

/// Refuses a command known to take at least `len` bytes if that is over the cap.
fn check_size(len: usize, limits: &RespLimits) -> Result<(), RespError> {
    if len > limits.max_command_bytes {
        return Err(RespError::CommandTooBig { len, limit: limits.max_command_bytes });
    }
    Ok(())
}

/// Parses a multibulk command; `buf[0]` is `*`. Pushes one span per argument.
fn multibulk(buf: &[u8], limits: &RespLimits, spans: &mut Vec<Span>) -> Result<Step, RespError> {
    use RespError::*;
    let Some((count, mut pos)) = header(buf, 0, limits.max_inline_len, InvalidMultibulkLength, MbulkCountTooBig)?
    else {
        return Ok(Step::Need(None));
    };
    if count > i64::from(i32::MAX) {
        return Err(InvalidMultibulkLength);
    }
    if count <= 0 {
        // `*0` and `*-1`: an empty command, as in Redis.
        check_size(pos, limits)?;
        return Ok(Step::Done { len: pos, inline: false });
    }
    let count = usize::try_from(count).map_err(|_| InvalidMultibulkLength)?;
    if count > limits.max_multibulk_len {
        return Err(InvalidMultibulkLength);
    }
    check_size(pos.saturating_add(count.saturating_mul(MIN_ARG_BYTES)), limits)?;
    for left in (0..count).rev() {
        let Some(&first) = buf.get(pos) else { return Ok(Step::Need(None)) };
        if first != b'$' {
            return Err(ExpectedDollar { got: first });
        }
        let Some((len, start)) = header(buf, pos, limits.max_inline_len, InvalidBulkLength, BulkCountTooBig)? else {
            return Ok(Step::Need(None));
        };
        let len = usize::try_from(len).ok().filter(|&l| l <= limits.max_bulk_len).ok_or(InvalidBulkLength)?;
        let end = start.saturating_add(len);
        let next = end.saturating_add(2);
        check_size(next.saturating_add(left.saturating_mul(MIN_ARG_BYTES)), limits)?;
        match buf.get(end..next) {
            Some(b"\r\n") => {}
            Some(_) => return Err(BulkNotCrlf { len }),
            None => {
                if buf.get(end).is_some_and(|&b| b != b'\r') {
                    return Err(BulkNotCrlf { len });
                }
                return Ok(Step::Need(Some(next)));
            }
        }
        spans.push(Span { start, end });
        pos = next;
    }
    Ok(Step::Done { len: pos, inline: false })
}

/// Reads the header line that starts at `buf[at]` (its `*` or `$`): the
/// number after that byte and the index after the line's `\r\n`. `Ok(None)`
/// when the line is not whole yet; `invalid` when it holds no valid number,
/// `too_long` when no `\r` lies within `window` bytes of `at`.
fn header(
    buf: &[u8],
    at: usize,
    window: usize,
    invalid: RespError,
    too_long: RespError,
) -> Result<Option<(i64, usize)>, RespError> {
    let rest = buf.get(at..).unwrap_or_default();
    let searched = &rest[..rest.len().min(window.saturating_add(1))];
    let Some(cr) = memchr(b'\r', searched) else {
        return if rest.len() > window { Err(too_long) } else { Ok(None) };
    };
    let Some(&lf) = rest.get(cr + 1) else { return Ok(None) };
    // rest[0] is the type byte, so the number is rest[1..cr] (cr >= 1).
    let value = rest.get(1..cr).and_then(string2ll).ok_or(invalid)?;
    if lf != b'\n' {
        return Err(RespError::HeaderNotCrlf);
    }
    Ok(Some((value, at + cr + 2)))
}

/// Redis's `string2ll`: an optional `-`, then `0` alone or digits not
/// starting with `0`; nothing else (no `+`, no blanks), at most 20 bytes,
/// and within `i64`.
fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (&first, more) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v = u64::from(first - b'0');
    for &d in more {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative { 0i64.checked_sub_unsigned(v) } else { i64::try_from(v).ok() }
}

/// Parses an inline command; `buf[0]` is not `*`. Its arguments go into the
/// scratch.
fn inline(buf: &[u8], limits: &RespLimits, scratch: &mut ArgScratch) -> Result<Step, RespError> {
    let searched = &buf[..buf.len().min(limits.max_inline_len.saturating_add(1))];
    let Some(newline) = memchr(b'\n', searched) else {
        if buf.len() > limits.max_inline_len {
            return Err(RespError::InlineTooBig);
        }
        return Ok(Step::Need(None));
    };
    let len = newline + 1;
    check_size(len, limits)?;
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    split_args(line, &mut scratch.spans, &mut scratch.bytes)?;
    Ok(Step::Done { len, inline: true })
}

/// C's `isspace` in the C locale, which `sdssplitargs` skips between arguments.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The value of an ASCII hex digit.
fn hex(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Which quote an inline argument is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Redis's `sdssplitargs` over one line: appends each argument's bytes to
/// `bytes` and its span to `spans`. Within an argument, an unquoted part ends
/// at a space, tab, `\r` or `\n` (not at `\v`/`\f`, which only separate
/// arguments when they lead), and a quoted part joins the unquoted part before it
/// (`a"b c"` is `ab c`; a closing quote must end the argument).
fn split_args(line: &[u8], spans: &mut Vec<Span>, bytes: &mut Vec<u8>) -> Result<(), RespError> {
    // Unescaping only shrinks: room for the whole line is room enough.
    bytes.reserve(line.len());
    let n = line.len();
    let mut p = 0;
    loop {
        while p < n && is_blank(line[p]) {
            p += 1;
        }
        if p == n {
            return Ok(());
        }
        let start = bytes.len();
        let mut quote = Quote::None;
        loop {
            let c = line.get(p).copied();
            match quote {
                Quote::Double => match c {
                    None => return Err(RespError::UnbalancedQuotes),
                    Some(b'\\') if line.get(p + 1) == Some(&b'x') => {
                        if let (Some(hi), Some(lo)) = (hex(line.get(p + 2)), hex(line.get(p + 3))) {
                            bytes.push(hi * 16 + lo);
                            p += 4;
                        } else {
                            bytes.push(b'x');
                            p += 2;
                        }
                    }
                    Some(b'\\') if p + 1 < n => {
                        bytes.push(match line[p + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 2;
                    }
                    Some(b'"') => {
                        if line.get(p + 1).is_some_and(|&b| !is_blank(b)) {
                            return Err(RespError::UnbalancedQuotes);
                        }
                        p += 1;
                        break;
                    }
                    Some(b) => {
                        bytes.push(b);
                        p += 1;
                    }
                },
                Quote::Single => match c {
                    None => return Err(RespError::UnbalancedQuotes),
                    Some(b'\\') if line.get(p + 1) == Some(&b'\'') => {
                        bytes.push(b'\'');
                        p += 2;
                    }
                    Some(b'\'') => {
                        if line.get(p + 1).is_some_and(|&b| !is_blank(b)) {
                            return Err(RespError::UnbalancedQuotes);
                        }
                        p += 1;
                        break;
                    }
                    Some(b) => {
                        bytes.push(b);
                        p += 1;
                    }
                },
                Quote::None => match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        p += 1;
                        break;
                    }
                    Some(b'"') => {
                        quote = Quote::Double;
                        p += 1;
                    }
                    Some(b'\'') => {
                        quote = Quote::Single;
                        p += 1;
                    }
                    Some(b) => {
                        bytes.push(b);
                        p += 1;
                    }
                },
            }
        }
        spans.push(Span { start, end: bytes.len() });
    }
}

/// Which reply protocol a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// RESP2, every connection's protocol until `HELLO 3`.
    Resp2,
    /// RESP3: nulls, maps, sets, doubles, booleans and verbatim strings have
    /// their own types.
    Resp3,
}

/// Reply writers: each appends one RESP value (or an aggregate's header,
/// followed by its elements written by further calls) to `out`, without
/// allocating beyond `out`'s growth. Where RESP2 has no such type, the RESP2
/// form is the one Redis sends.
pub mod reply {
    pub use super::Proto;
    use memchr::memchr2;

    /// Appends `prefix`, `s` with every `\r` and `\n` replaced by a space
    /// (so the value stays one line, as Redis's error replies do), and `\r\n`.
    fn line(out: &mut Vec<u8>, prefix: u8, s: &[u8]) {
        out.push(prefix);
        if memchr2(b'\r', b'\n', s).is_none() {
            out.extend_from_slice(s);
        } else {
            out.extend(s.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Appends `prefix`, the decimal `n` and `\r\n`.
    fn number_line(out: &mut Vec<u8>, prefix: u8, n: impl itoa::Integer) {
        out.push(prefix);
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// A simple string: `+s\r\n`, e.g. `+OK`. `\r`/`\n` in `s` become spaces.
    pub fn simple(out: &mut Vec<u8>, s: &str) {
        line(out, b'+', s.as_bytes());
    }

    /// An error: `-s\r\n`. `s` is e.g. "ERR unknown command ..." (no leading
    /// `-`); `\r`/`\n` in `s` become spaces.
    pub fn error(out: &mut Vec<u8>, s: &str) {
        line(out, b'-', s.as_bytes());
    }

    /// An integer: `:n\r\n`.
    pub fn integer(out: &mut Vec<u8>, n: i64) {
        number_line(out, b':', n);
    }

    /// A bulk string: `$len\r\nb\r\n`.
    pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
        bulk_header(out, b.len());
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }

    /// A bulk string's header alone, `$len\r\n`: the caller appends `len`
    /// bytes and `\r\n`.
    pub fn bulk_header(out: &mut Vec<u8>, len: usize) {
        number_line(out, b'$', len);
    }

    /// A null: `$-1\r\n` (RESP2's null bulk string) or `_\r\n` (RESP3).
    pub fn null(out: &mut Vec<u8>, p: Proto) {
        out.extend_from_slice(match p {
            Proto::Resp2 => b"$-1\r\n",
            Proto::Resp3 => b"_\r\n",
        });
    }

    /// A null array: `*-1\r\n` (RESP2) or `_\r\n` (RESP3).
    pub fn null_array(out: &mut Vec<u8>, p: Proto) {
        out.extend_from_slice(match p {
            Proto::Resp2 => b"*-1\r\n",
            Proto::Resp3 => b"_\r\n",
        });
    }

    /// An array header: `*n\r\n`, then `n` elements.
    pub fn array(out: &mut Vec<u8>, n: usize) {
        number_line(out, b'*', n);
    }

    /// A map header of `n` pairs: `%n\r\n` (RESP3) or `*2n\r\n` (RESP2, a
    /// flat array of keys and values), then `2n` elements.
    pub fn map(out: &mut Vec<u8>, n: usize, p: Proto) {
        match p {
            Proto::Resp2 => number_line(out, b'*', u128::from(n as u64) * 2),
            Proto::Resp3 => number_line(out, b'%', n),
        }
    }

    /// A set header: `~n\r\n` (RESP3) or `*n\r\n` (RESP2), then `n` elements.
    pub fn set(out: &mut Vec<u8>, n: usize, p: Proto) {
        number_line(out, if p == Proto::Resp3 { b'~' } else { b'*' }, n);
    }

    /// A double: `,d\r\n` (RESP3) or `d` as a bulk string (RESP2), with `d`
    /// written as Redis's `addReplyDouble` does ([`DoubleText`]).
    pub fn double(out: &mut Vec<u8>, d: f64, p: Proto) {
        let text = DoubleText::new(d);
        match p {
            Proto::Resp2 => bulk(out, text.as_bytes()),
            Proto::Resp3 => {
                out.push(b',');
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A boolean: `#t\r\n`/`#f\r\n` (RESP3) or `:1\r\n`/`:0\r\n` (RESP2).
    pub fn boolean(out: &mut Vec<u8>, b: bool, p: Proto) {
        out.extend_from_slice(match (p, b) {
            (Proto::Resp2, true) => b":1\r\n",
            (Proto::Resp2, false) => b":0\r\n",
            (Proto::Resp3, true) => b"#t\r\n",
            (Proto::Resp3, false) => b"#f\r\n",
        });
    }

    /// A verbatim string: `=len\r\nfmt:b\r\n` (RESP3; `len` counts the four
    /// bytes of `fmt:`) or a bulk string of `b` (RESP2). As in Redis, `format`
    /// is cut or padded with spaces to three bytes (`"txt"`, `"mkd"`).
    pub fn verbatim(out: &mut Vec<u8>, format: &str, b: &[u8], p: Proto) {
        if p == Proto::Resp2 {
            return bulk(out, b);
        }
        number_line(out, b'=', u128::from(b.len() as u64) + 4);
        let mut ext = [b' '; 3];
        for (dst, &src) in ext.iter_mut().zip(format.as_bytes()) {
            *dst = src;
        }
        out.extend_from_slice(&ext);
        out.push(b':');
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }

    /// A double as Redis's `d2string` writes it, on the stack: `nan`, `inf`,
    /// `-inf`, `0`, `-0`; an integral value within ±2^62 as an integer; any
    /// other as the shortest digits that read back as the same double, in
    /// plain notation when that is short (`3.5`, `0.001`,
    /// `12345678900000000000000`) and as `d.ddde+XX` otherwise (`1e+25`,
    /// `1.5e-10`), following Redis's `fpconv_dtoa`. (Redis's digits come from
    /// Grisu2, which on rare values gives one digit more than the shortest.)
    #[derive(Clone, Copy)]
    pub struct DoubleText {
        /// The text, `len` bytes of it.
        buf: [u8; 32],
        /// How much of `buf` is used.
        len: usize,
    }

    impl DoubleText {
        /// Formats `d`.
        pub fn new(d: f64) -> Self {
            let mut t = DoubleText { buf: [0; 32], len: 0 };
            if d.is_nan() {
                t.push(b"nan");
            } else if d.is_infinite() {
                t.push(if d < 0.0 { b"-inf" } else { b"inf" });
            } else if d == 0.0 {
                t.push(if d.is_sign_negative() { b"-0" } else { b"0" });
            } else if d.fract() == 0.0 && d.abs() <= (i64::MAX / 2) as f64 {
                // Redis's double2ll: exactly an integer, well inside i64.
                let n = d as i64;
                t.push(itoa::Buffer::new().format(n).as_bytes());
            } else {
                t.fpconv(d);
            }
            t
        }

        /// The text.
        pub fn as_bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }

        /// Appends bytes (at most 25 are ever written in all).
        fn push(&mut self, s: &[u8]) {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s);
            self.len += s.len();
        }

        /// Redis's `fpconv_dtoa` layout of a finite, non-zero `d`, with the
        /// shortest round-trip digits from Rust's `{:e}` formatting.
        fn fpconv(&mut self, d: f64) {
            use std::io::Write;
            // `{:e}` writes the shortest digits as `-d.ddde-X`: at most 1 + 17 + 1 + 1 + 1 + 3 bytes.
            let mut sci = [0u8; 32];
            let sci_len = {
                let mut cursor = std::io::Cursor::new(&mut sci[..]);
                // Cannot fail: 32 bytes hold any f64 in this form.
                let _ = write!(cursor, "{:e}", d.abs());
                cursor.position() as usize
            };
            let sci = &sci[..sci_len];
            let e_at = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
            let (mantissa, exponent) = (&sci[..e_at], sci.get(e_at + 1..).unwrap_or_default());
            let mut digits = [0u8; 20];
            let mut ndigits = 0usize;
            for &b in mantissa.iter().filter(|b| b.is_ascii_digit()).take(digits.len()) {
                digits[ndigits] = b;
                ndigits += 1;
            }
            let digits = &digits[..ndigits];
            let e10: i32 = std::str::from_utf8(exponent).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            // fpconv's terms: the value is digits × 10^k; `exp` is the
            // decimal exponent of the first digit, unsigned.
            let nd = ndigits as i32;
            let k = e10 - (nd - 1);
            let exp = e10.unsigned_abs() as i32;
            if d < 0.0 {
                self.push(b"-");
            }
            if k >= 0 && exp < nd + 7 {
                // Plain integer: the digits, then k zeros.
                self.push(digits);
                for _ in 0..k {
                    self.push(b"0");
                }
            } else if k < 0 && (k > -7 || exp < 4) {
                let offset = nd + k;
                if offset <= 0 {
                    self.push(b"0.");
                    for _ in 0..-offset {
                        self.push(b"0");
                    }
                    self.push(digits);
                } else {
                    let offset = offset as usize;
                    self.push(&digits[..offset]);
                    self.push(b".");
                    self.push(&digits[offset..]);
                }
            } else {
                self.push(&digits[..1]);
                if ndigits > 1 {
                    self.push(b".");
                    self.push(&digits[1..]);
                }
                self.push(if e10 < 0 { b"e-" } else { b"e+" });
                // fpconv writes the exponent's digits without padding: `1e+7`, `1e+300`.
                self.push(itoa::Buffer::new().format(exp).as_bytes());
            }
        }
    }

    impl std::fmt::Debug for DoubleText {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.as_bytes().escape_ascii())
        }
    }
}

pub use reply::DoubleText;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses every command of `buf` in turn; the arguments of each, and
    /// the error that ended the stream, if any.
    fn parse_all(buf: &[u8], limits: &RespLimits) -> (Vec<Vec<Vec<u8>>>, Option<RespError>) {
        let mut scratch = ArgScratch::new();
        let mut commands = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            match parse(&buf[pos..], limits, &mut scratch) {
                Ok(Parsed::Command { args, len }) => {
                    assert!(len > 0 && len <= buf.len() - pos);
                    commands.push(args.iter().map(<[u8]>::to_vec).collect());
                    pos += len;
                }
                Ok(Parsed::NeedMore { .. }) => break,
                Err(e) => return (commands, Some(e)),
            }
        }
        (commands, None)
    }

    /// The one command `buf` holds exactly, or why not.
    fn one(buf: &[u8], limits: &RespLimits) -> Result<Vec<Vec<u8>>, RespError> {
        let mut scratch = ArgScratch::new();
        match parse(buf, limits, &mut scratch)? {
            Parsed::Command { args, len } => {
                assert_eq!(len, buf.len(), "command took {len} of {} bytes", buf.len());
                Ok(args.iter().map(<[u8]>::to_vec).collect())
            }
            Parsed::NeedMore { need } => panic!("NeedMore {need:?} for {:?}", shown(buf)),
        }
    }

    /// The error `buf` gets, as its `Display` text.
    fn err(buf: &[u8], limits: &RespLimits) -> String {
        let mut scratch = ArgScratch::new();
        match parse(buf, limits, &mut scratch) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("no error for {:?}: {p:?}", shown(buf)),
        }
    }

    fn need(buf: &[u8], limits: &RespLimits) -> Option<usize> {
        let mut scratch = ArgScratch::new();
        match parse(buf, limits, &mut scratch) {
            Ok(Parsed::NeedMore { need }) => need,
            other => panic!("expected NeedMore for {:?}, got {other:?}", shown(buf)),
        }
    }

    /// The first bytes of `buf`, for a failure message.
    fn shown(buf: &[u8]) -> String {
        buf[..buf.len().min(48)].escape_ascii().to_string()
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        array(&mut out, args.len());
        for a in args {
            bulk(&mut out, a);
        }
        out
    }

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    const PIPELINE: &[u8] = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhe\r\no\r\n\
        GET k\r\n*0\r\n\r\n*-1\r\n  \t\n*2\r\n$3\r\nGET\r\n$0\r\n\r\nset 'a b' \"c\\x41\"\n";

    fn pipeline_commands() -> Vec<Vec<Vec<u8>>> {
        vec![
            v(&["PING"]),
            v(&["SET", "k", "he\r\no"]),
            v(&["GET", "k"]),
            vec![],
            vec![],
            vec![],
            vec![],
            v(&["GET", ""]),
            v(&["set", "a b", "cA"]),
        ]
    }

    #[test]
    fn pipelined_commands_parse_one_after_another() {
        let (commands, error) = parse_all(PIPELINE, &RespLimits::default());
        assert_eq!(error, None);
        assert_eq!(commands, pipeline_commands());
    }

    #[test]
    fn every_split_point_waits_then_gives_the_same_command() {
        let limits = RespLimits::default();
        let mut scratch = ArgScratch::new();
        let expected = pipeline_commands();
        let mut pos = 0;
        for want in &expected {
            let rest = &PIPELINE[pos..];
            let Parsed::Command { len, .. } = parse(rest, &limits, &mut scratch).unwrap() else { panic!("whole") };
            for cut in 0..len {
                match parse(&rest[..cut], &limits, &mut scratch).unwrap() {
                    Parsed::NeedMore { need } => {
                        if let Some(n) = need {
                            assert!(n > cut && n <= len, "need {n} with {cut} of {len} bytes");
                        }
                    }
                    Parsed::Command { args, .. } => panic!("early command {args:?} from {cut} of {len} bytes"),
                }
            }
            let Parsed::Command { args, len: got } = parse(rest, &limits, &mut scratch).unwrap() else { panic!() };
            assert_eq!(got, len);
            assert_eq!(&args.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), want);
            pos += len;
        }
        assert_eq!(pos, PIPELINE.len());
    }

    #[test]
    fn need_names_the_end_of_the_bulk_waited_for() {
        let limits = RespLimits::default();
        assert_eq!(need(b"", &limits), None);
        assert_eq!(need(b"*2\r", &limits), None);
        assert_eq!(need(b"*2\r\n$3\r\nGET\r\n$10\r\n", &limits), Some(30));
        assert_eq!(need(b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r", &limits), Some(30));
        assert_eq!(need(b"*1\r\n$1000000\r\nabc", &limits), Some(1_000_016));
        assert_eq!(need(b"GET k", &limits), None);
    }

    #[test]
    fn multibulk_errors_have_redis_texts() {
        let l = RespLimits::default();
        assert_eq!(err(b"*x\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*+1\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*01\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"* 1\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*65537\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*2147483648\r\n", &RespLimits { max_multibulk_len: usize::MAX, ..l }),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(err(b"*99999999999999999999\r\n", &l), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\nfoo\r\n", &l), "Protocol error: expected '$', got 'f'");
        assert_eq!(err(b"*1\r\n\r\n", &l), "Protocol error: expected '$', got ' '");
        assert_eq!(err(b"*1\r\n\x01", &l), "Protocol error: expected '$', got '\\x01'");
        assert_eq!(err(b"*2\r\n$1\r\na\r\n:1\r\n", &l), "Protocol error: expected '$', got ':'");
        assert_eq!(err(b"*1\r\n$-1\r\n", &l), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$x\r\n", &l), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$\r\n", &l), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$-0\r\n", &l), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$4194305\r\n", &l), "Protocol error: invalid bulk length");
        // As in Redis, the count from the `*` on: 64 KiB without a `\r` waits, one more byte is refused.
        let mut long = b"*".to_vec();
        long.resize(64 * 1024 + 1, b'1');
        assert_eq!(err(&long, &l), "Protocol error: too big mbulk count string");
        assert_eq!(need(&long[..64 * 1024], &l), None);
        let mut long = b"*1\r\n$".to_vec();
        long.resize(4 + 64 * 1024 + 1, b'1');
        assert_eq!(err(&long, &l), "Protocol error: too big bulk count string");
        assert_eq!(need(&long[..4 + 64 * 1024], &l), None);
        assert_eq!(err(b"*1\rX", &l), "Protocol error: header line not terminated by CRLF");
        assert_eq!(err(b"*1\r\n$3\rX", &l), "Protocol error: header line not terminated by CRLF");
        assert_eq!(err(b"*1\r\n$3\r\nfooXY", &l), "Protocol error: bulk string of 3 bytes not followed by CRLF");
        assert_eq!(err(b"*1\r\n$3\r\nfoo\rY", &l), "Protocol error: bulk string of 3 bytes not followed by CRLF");
        assert_eq!(err(b"*1\r\n$3\r\nfooX", &l), "Protocol error: bulk string of 3 bytes not followed by CRLF");
    }

    #[test]
    fn numbers_follow_string2ll() {
        for (s, want) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("-7", Some(-7)),
            ("123", Some(123)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("18446744073709551616", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("00", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1a", None),
            ("0x1", None),
            ("000000000000000000001", None),
        ] {
            assert_eq!(string2ll(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn empty_commands_are_commands_with_no_arguments() {
        let l = RespLimits::default();
        assert_eq!(one(b"*0\r\n", &l).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(one(b"*-1\r\n", &l).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(one(b"*-100\r\n", &l).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(one(b"\r\n", &l).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(one(b"\n", &l).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(one(b" \t \x0b\x0c \r\n", &l).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn inline_commands_split_like_sdssplitargs() {
        let l = RespLimits::default();
        let ok = |s: &str| one(s.as_bytes(), &l).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(ok("set a \"b c\"\r\n"), v(&["set", "a", "b c"]));
        assert_eq!(ok("PING\n"), v(&["PING"]));
        assert_eq!(ok("  get   k  \r\n"), v(&["get", "k"]));
        assert_eq!(ok("a\tb\x0bc\r\n"), v(&["a", "b\x0bc"]));
        assert_eq!(ok("\x0b a\n"), v(&["a"]));
        assert_eq!(ok("set k \"\\x41\\x4a\\x4B\"\n"), v(&["set", "k", "AJK"]));
        assert_eq!(ok("\"\\xZZ\\x4\"\n"), v(&["xZZx4"]));
        assert_eq!(ok("\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n"), v(&["\n\r\t\x08\x07\\\"q"]));
        assert_eq!(ok("'it\\'s' 'a\\nb' '\"'\n"), v(&["it's", "a\\nb", "\""]));
        assert_eq!(ok("a\"b c\"\n"), v(&["ab c"]));
        assert_eq!(ok("a'b c' x\n"), v(&["ab c", "x"]));
        assert_eq!(ok("\"\" ''\n"), v(&["", ""]));
        assert_eq!(ok("\"a\"\t\"b\"\n"), v(&["a", "b"]));
        assert_eq!(ok("a\rb\r\n"), v(&["a", "b"]));
        assert_eq!(ok("a\0b\n"), vec![b"a\0b".to_vec()]);
        assert_eq!(ok("\"\\x00\\xff\"\n"), vec![vec![0, 0xff]]);
        // Only one trailing \r is the line end's.
        assert_eq!(ok("'a\r'\r\n"), v(&["a\r"]));
    }

    #[test]
    fn inline_errors_have_redis_texts() {
        let l = RespLimits::default();
        for bad in
            ["set \"a\n", "set 'a\n", "\"a\"b\n", "'a'b\n", "\"a\\\"\n", "\"a\\\n", "'a\\'\n", "\"\n", "a\"b c\"d\n"]
        {
            assert_eq!(err(bad.as_bytes(), &l), "Protocol error: unbalanced quotes in request", "{bad:?}");
        }
        let mut long = vec![b'a'; 64 * 1024];
        assert_eq!(need(&long, &l), None);
        long.push(b'\n');
        assert_eq!(one(&long, &l).unwrap().len(), 1, "a line of exactly the limit is taken");
        long.pop();
        long.push(b'a');
        assert_eq!(err(&long, &l), "Protocol error: too big inline request");
        long.push(b'\n');
        assert_eq!(err(&long, &l), "Protocol error: too big inline request", "however it arrives");
    }

    #[test]
    fn limits_refuse_large_commands_from_their_headers() {
        let l = RespLimits { max_bulk_len: 10, max_multibulk_len: 3, max_inline_len: 16, max_command_bytes: 40 };
        assert_eq!(one(b"*1\r\n$10\r\n0123456789\r\n", &l).unwrap(), v(&["0123456789"]));
        assert_eq!(err(b"*1\r\n$11\r\n", &l), "Protocol error: invalid bulk length");
        assert_eq!(one(b"*3\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n", &l).unwrap().len(), 3);
        assert_eq!(err(b"*4\r\n", &l), "Protocol error: invalid multibulk length");
        // 3 arguments of 10 bytes take 4 + 3 × 17 = 55 bytes: refused once the
        // second header shows the command reaches 4 + 17 + 17 + 6 = 44 bytes.
        assert_eq!(need(b"*3\r\n$10\r\n", &l), Some(21));
        assert_eq!(
            err(b"*3\r\n$10\r\n0123456789\r\n$10\r\n", &l),
            "Protocol error: command of at least 44 bytes exceeds the query buffer limit of 40 bytes"
        );
        assert_eq!(
            err(b"*3\r\n$10\r\n0123456789\r\n$9\r\n", &l),
            "Protocol error: command of at least 42 bytes exceeds the query buffer limit of 40 bytes"
        );
        let tight = RespLimits { max_command_bytes: 20, ..l };
        assert_eq!(
            err(b"*3\r\n", &tight),
            "Protocol error: command of at least 22 bytes exceeds the query buffer limit of 20 bytes"
        );
        assert_eq!(err(b"a b c d e f g h\n", &RespLimits { max_command_bytes: 15, ..l }), {
            "Protocol error: command of at least 16 bytes exceeds the query buffer limit of 15 bytes"
        });
        assert_eq!(
            err(b"a b c d e f", &RespLimits { max_command_bytes: 10, ..l }),
            "Protocol error: command of at least 12 bytes exceeds the query buffer limit of 10 bytes"
        );
        assert_eq!(err(b"0123456789abcdefg", &l), "Protocol error: too big inline request");
        // The default cap holds one largest argument with room to spare.
        let d = RespLimits::default();
        let mut big = encode(&[b"SET".to_vec(), b"k".to_vec(), vec![b'v'; d.max_bulk_len]]);
        assert_eq!(one(&big, &d).unwrap()[2].len(), d.max_bulk_len);
        big.truncate(30);
        assert!(need(&big, &d).is_some_and(|n| n > 30 && n <= d.max_command_bytes));
    }

    #[test]
    fn args_are_slices_of_the_buffer_or_the_scratch() {
        let l = RespLimits::default();
        let mut scratch = ArgScratch::new();
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let Parsed::Command { args, .. } = parse(buf, &l, &mut scratch).unwrap() else { panic!() };
        assert_eq!(args.len(), 2);
        assert!(!args.is_empty());
        assert_eq!(args.get(0), b"GET");
        assert_eq!(args.get(0).as_ptr(), buf[8..].as_ptr(), "multibulk arguments are not copied");
        assert_eq!(format!("{args:?}"), "[GET, k]");
        let buf = b"GET \"k\"\n";
        let Parsed::Command { args, .. } = parse(buf, &l, &mut scratch).unwrap() else { panic!() };
        assert_eq!(args.iter().collect::<Vec<_>>(), [b"GET".as_slice(), b"k"]);
        assert!(!buf.as_ptr_range().contains(&args.get(1).as_ptr()));
    }

    #[test]
    fn a_warm_scratch_does_not_grow() {
        let l = RespLimits::default();
        let mut scratch = ArgScratch::new();
        let _ = parse(PIPELINE, &l, &mut scratch).unwrap();
        let _ = parse(b"a b c d e f g h\n", &l, &mut scratch).unwrap();
        let caps = (scratch.spans.capacity(), scratch.bytes.capacity());
        for _ in 0..3 {
            let (commands, _) = parse_all(PIPELINE, &l);
            assert!(!commands.is_empty());
            let _ = parse(b"h g f e d c b a\n", &l, &mut scratch).unwrap();
            let _ = parse(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", &l, &mut scratch).unwrap();
        }
        assert_eq!((scratch.spans.capacity(), scratch.bytes.capacity()), caps);
        scratch.shrink(0, 0);
        assert_eq!((scratch.spans.capacity(), scratch.bytes.capacity()), (0, 0));
    }

    /// An argument written as an inline double-quoted string Redis would read back.
    fn quote_inline(out: &mut Vec<u8>, arg: &[u8]) {
        out.push(b'"');
        for &b in arg {
            match b {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.push(b'"');
    }

    proptest! {
        #[test]
        fn multibulk_round_trips(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..12)) {
            let buf = encode(&args);
            prop_assert_eq!(one(&buf, &RespLimits::default()).unwrap(), args.clone());
            // and in a pipeline, twice over
            let mut two = buf.clone();
            two.extend_from_slice(&buf);
            let (commands, error) = parse_all(&two, &RespLimits::default());
            prop_assert_eq!(error, None);
            prop_assert_eq!(commands, vec![args.clone(), args]);
        }

        #[test]
        fn quoted_inline_round_trips(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..8)) {
            let mut buf = Vec::new();
            for a in &args {
                quote_inline(&mut buf, a);
                buf.push(b' ');
            }
            buf.extend_from_slice(b"\r\n");
            prop_assert_eq!(one(&buf, &RespLimits::default()).unwrap(), args);
        }

        #[test]
        fn any_double_reads_back(bits in any::<u64>()) {
            let d = f64::from_bits(bits);
            let t = DoubleText::new(d);
            let s = std::str::from_utf8(t.as_bytes()).unwrap();
            if d.is_nan() {
                prop_assert_eq!(s, "nan");
            } else {
                prop_assert_eq!(s.parse::<f64>().unwrap().to_bits(), bits, "{}", s);
            }
        }

        #[test]
        fn any_bytes_parse_without_panic(buf in prop::collection::vec(prop_oneof![
            4 => any::<u8>(),
            1 => Just(b'*'), 1 => Just(b'$'), 1 => Just(b'\r'), 1 => Just(b'\n'), 1 => Just(b'"'), 1 => Just(b'1'),
        ], 0..64)) {
            let l = RespLimits { max_bulk_len: 8, max_multibulk_len: 4, max_inline_len: 16, max_command_bytes: 48 };
            for limits in [l, RespLimits::default()] {
                let mut scratch = ArgScratch::new();
                match parse(&buf, &limits, &mut scratch) {
                    Ok(Parsed::Command { len, .. }) => prop_assert!(len > 0 && len <= buf.len() && len <= limits.max_command_bytes),
                    Ok(Parsed::NeedMore { need: Some(n) }) => prop_assert!(n > buf.len() && n <= limits.max_command_bytes),
                    Ok(Parsed::NeedMore { need: None }) | Err(_) => {}
                }
            }
        }
    }

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = b"x".to_vec(); // writers append
        f(&mut out);
        assert_eq!(out[0], b'x');
        String::from_utf8(out[1..].to_vec()).unwrap()
    }

    #[test]
    fn writers_write_exact_bytes() {
        use Proto::*;
        assert_eq!(written(|o| simple(o, "OK")), "+OK\r\n");
        assert_eq!(written(|o| simple(o, "a\r\nb")), "+a  b\r\n");
        assert_eq!(written(|o| error(o, "ERR unknown command 'x'")), "-ERR unknown command 'x'\r\n");
        assert_eq!(written(|o| error(o, "ERR bad\r\nthing\n")), "-ERR bad  thing \r\n");
        assert_eq!(written(|o| integer(o, 0)), ":0\r\n");
        assert_eq!(written(|o| integer(o, -42)), ":-42\r\n");
        assert_eq!(written(|o| integer(o, i64::MIN)), ":-9223372036854775808\r\n");
        assert_eq!(written(|o| bulk(o, b"hello")), "$5\r\nhello\r\n");
        assert_eq!(written(|o| bulk(o, b"")), "$0\r\n\r\n");
        assert_eq!(written(|o| bulk_header(o, 12)), "$12\r\n");
        assert_eq!(written(|o| array(o, 3)), "*3\r\n");
        for (p, null_s, null_a, map_s, set_s, t, f) in [
            (Resp2, "$-1\r\n", "*-1\r\n", "*6\r\n", "*3\r\n", ":1\r\n", ":0\r\n"),
            (Resp3, "_\r\n", "_\r\n", "%3\r\n", "~3\r\n", "#t\r\n", "#f\r\n"),
        ] {
            assert_eq!(written(|o| null(o, p)), null_s);
            assert_eq!(written(|o| null_array(o, p)), null_a);
            assert_eq!(written(|o| map(o, 3, p)), map_s);
            assert_eq!(written(|o| set(o, 3, p)), set_s);
            assert_eq!(written(|o| boolean(o, true, p)), t);
            assert_eq!(written(|o| boolean(o, false, p)), f);
        }
        assert_eq!(written(|o| double(o, 3.5, Resp3)), ",3.5\r\n");
        assert_eq!(written(|o| double(o, 3.5, Resp2)), "$3\r\n3.5\r\n");
        assert_eq!(written(|o| double(o, f64::NEG_INFINITY, Resp3)), ",-inf\r\n");
        assert_eq!(written(|o| double(o, f64::INFINITY, Resp2)), "$3\r\ninf\r\n");
        assert_eq!(written(|o| verbatim(o, "txt", b"hi", Resp3)), "=6\r\ntxt:hi\r\n");
        assert_eq!(written(|o| verbatim(o, "md", b"", Resp3)), "=4\r\nmd :\r\n");
        assert_eq!(written(|o| verbatim(o, "text", b"x", Resp3)), "=5\r\ntex:x\r\n");
        assert_eq!(written(|o| verbatim(o, "txt", b"hi", Resp2)), "$2\r\nhi\r\n");
    }

    #[test]
    fn doubles_read_as_redis_writes_them() {
        let text = |d: f64| String::from_utf8(DoubleText::new(d).as_bytes().to_vec()).unwrap();
        for (d, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (10.0, "10"),
            (-3.0, "-3"),
            (3.5, "3.5"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456.789, "123456.789"),
            (0.001, "0.001"),
            (1e-5, "0.00001"),
            (1.5e-5, "0.000015"),
            (1.5e-6, "1.5e-6"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (-1.5e-10, "-1.5e-10"),
            (0.0012345678901234567, "0.0012345678901234567"),
            (1.2345678901234567, "1.2345678901234567"),
            (4611686018427387904.0, "4611686018427387904"),
            (4611686018427388928.0, "4611686018427389000"),
            (1e19, "1e+19"),
            (1e20, "1e+20"),
            (1.5e21, "1.5e+21"),
            (1e300, "1e+300"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(text(d), want, "{d:e}");
        }
    }

    #[test]
    fn doubles_read_back_exactly() {
        let mut x = 1.0e-300_f64;
        while x < 1e300 {
            for d in [x, -x, x * 1.234_567_891_234_5, x / 3.0] {
                let t = DoubleText::new(d);
                let s = std::str::from_utf8(t.as_bytes()).unwrap();
                assert_eq!(s.parse::<f64>().unwrap(), d, "{s}");
            }
            x *= 7.3;
        }
    }
}
