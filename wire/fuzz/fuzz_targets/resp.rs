//! Fuzz target: a byte stream as a RESP server receives it, parsed as a
//! pipeline of commands, once with small limits and once with the defaults.
//! Nothing may panic, and for every command parsed:
//! - it took more than zero bytes and no more than the buffer holds and the cap allows;
//! - its arguments lie in the buffer (multibulk) or in the scratch (inline);
//! - written back as multibulk, it parses to the same arguments;
//! - the bytes before its end are not yet a command (`NeedMore`).
//!
//! A `NeedMore` with a size names more than the buffer holds and no more
//! than the cap.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::resp::{self, ArgScratch, Parsed, RespLimits};

/// Limits small enough that the fuzzer reaches each of them.
const SMALL: RespLimits =
    RespLimits { max_bulk_len: 16, max_multibulk_len: 8, max_inline_len: 32, max_command_bytes: 128 };

/// Limits no re-encoded command reaches.
const ROOMY: RespLimits = RespLimits {
    max_bulk_len: usize::MAX,
    max_multibulk_len: usize::MAX,
    max_inline_len: 64 << 10,
    max_command_bytes: usize::MAX,
};

fuzz_target!(|data: &[u8]| {
    let mut scratch = ArgScratch::new();
    let mut other = ArgScratch::new();
    let mut encoded = Vec::new();
    for limits in [SMALL, RespLimits::default()] {
        pipeline(data, &limits, &mut scratch, &mut other, &mut encoded);
    }
});

fn pipeline(data: &[u8], limits: &RespLimits, scratch: &mut ArgScratch, other: &mut ArgScratch, encoded: &mut Vec<u8>) {
    let mut pos = 0;
    while pos < data.len() {
        let buf = &data[pos..];
        let len = match resp::parse(buf, limits, scratch) {
            Ok(Parsed::Command { args, len }) => {
                assert!(len > 0 && len <= buf.len() && len <= limits.max_command_bytes, "len {len} of {}", buf.len());
                let source = args.source();
                if buf[0] == b'*' {
                    assert_eq!(source.as_ptr_range(), buf[..len].as_ptr_range(), "multibulk args are in the buffer");
                } else {
                    let b = buf.as_ptr_range();
                    let s = source.as_ptr_range();
                    assert!(
                        s.end <= b.start || s.start >= b.end || source.is_empty(),
                        "inline args are in the scratch"
                    );
                }
                let range = source.as_ptr_range();
                for a in args.iter() {
                    let r = a.as_ptr_range();
                    assert!(r.start >= range.start && r.end <= range.end, "argument outside its source");
                }
                encoded.clear();
                resp::array(encoded, args.len());
                for a in args.iter() {
                    resp::bulk(encoded, a);
                }
                match resp::parse(encoded, &ROOMY, other) {
                    Ok(Parsed::Command { args: again, len: again_len }) => {
                        assert_eq!(again_len, encoded.len());
                        assert!(again.iter().eq(args.iter()), "re-encoded args differ: {args:?} vs {again:?}");
                    }
                    other => panic!("re-encoded {args:?} parsed as {other:?}"),
                }
                len
            }
            Ok(Parsed::NeedMore { need }) => {
                if let Some(n) = need {
                    assert!(n > buf.len() && n <= limits.max_command_bytes, "need {n} with {} buffered", buf.len());
                }
                return;
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.starts_with("Protocol error: ") && !text.contains(['\r', '\n']), "{text:?}");
                return;
            }
        };
        // One byte short, the same command is not whole yet.
        match resp::parse(&buf[..len - 1], limits, other) {
            Ok(Parsed::NeedMore { need }) => {
                assert!(need.is_none_or(|n| n > len - 1 && n <= len), "need {need:?} for a command of {len}")
            }
            other => panic!("{} of {len} bytes gave {other:?}", len - 1),
        }
        pos += len;
    }
}
