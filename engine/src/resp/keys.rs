//! The RESP door's data commands: strings (`GET`, `SET` and its options,
//! `MGET`/`MSET`, `APPEND`, ranges, counters) and keys (`DEL`, `EXISTS`,
//! expiry, `SCAN`, `DBSIZE`, `FLUSHDB`), with Redis's reply shapes and
//! error texts.
//!
//! Every command here runs on the shard's own store and nothing else: keys
//! were routed before (a key this core does not own got `-MOVED`, keys of
//! several slots `-CROSSSLOT`). Values that need reading before writing
//! (`GETSET`, `APPEND`, `INCR`…) go through the session's scratch buffer,
//! which is reused, so no command allocates once a connection is warm.

use super::{Cx, err};
use crate::resp::glob;
use crate::store::StoreError;
use wire::resp::reply as resp;

/// Redis's reply when a write needs memory past `maxmemory`.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const SYNTAX: &str = "ERR syntax error";
/// The most keys one `SCAN` call looks at, whatever its COUNT (bounds the
/// time one call holds the core: keys ≤ `max_key_len`, patterns ≤
/// [`glob::MAX_PATTERN`]).
pub const MAX_SCAN_COUNT: usize = 10_000;

/// Parses an integer as Redis's `string2ll` does: optional `-`, digits, no
/// `+`, no spaces, no leading zeros, within `i64`.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') || (neg && digits == b"0") {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// Parses a float as `INCRBYFLOAT` accepts it: no spaces, not NaN.
fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.len() > 5000 || s.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// How a command sets a key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ttl {
    /// Leave no expiry (plain SET).
    Clear,
    /// Keep the key's expiry (KEEPTTL).
    Keep,
    /// Expire at this unix time in milliseconds.
    At(u64),
}

/// An expiry argument: `amount` in seconds or milliseconds, relative or
/// absolute; `None` when out of range (Redis: "invalid expire time").
fn expire_at(now: u64, amount: i64, millis: bool, absolute: bool) -> Option<i64> {
    let ms = if millis { amount } else { amount.checked_mul(1000)? };
    if absolute { Some(ms) } else { ms.checked_add(i64::try_from(now).ok()?) }
}

fn invalid_expire(cx: &mut Cx, cmd: &str) {
    err(cx.out, &format!("ERR invalid expire time in '{cmd}' command"));
}

fn store_error(cx: &mut Cx, e: StoreError) {
    if e.is_no_room() {
        cx.counts.out_of_memory += 1;
        err(cx.out, OOM);
    } else {
        err(cx.out, &format!("ERR {e}"));
    }
}

impl Cx<'_> {
    /// Checks a value against the node's `max_value_len`, answering the error.
    fn value_fits(&mut self, len: usize) -> bool {
        if len <= self.node.max_value_len {
            return true;
        }
        err(
            self.out,
            &format!("ERR string exceeds maximum allowed size ({} bytes, max_value_len)", self.node.max_value_len),
        );
        false
    }

    /// Removes `key` if it has expired (lazy expiry), so the write that
    /// follows sees it absent.
    fn touch(&mut self, key: &[u8]) {
        let mut store = self.shard.store.borrow_mut();
        if store.volatile_len() > 0 {
            store.expire_if_due(key);
        }
    }

    /// Copies `key`'s live value into the scratch; false if absent.
    fn load(&mut self, key: &[u8]) -> bool {
        self.tmp.clear();
        match self.shard.store.borrow().get(key) {
            Some(v) => {
                self.tmp.extend_from_slice(v);
                true
            }
            None => false,
        }
    }

    /// Writes `key` = `value` with `ttl`; answers the error if refused.
    fn write(&mut self, key: &[u8], value: &[u8], ttl: Ttl) -> bool {
        self.counts.puts += 1;
        let mut store = self.shard.store.borrow_mut();
        let r = match ttl {
            Ttl::Clear => store.put(key, value),
            Ttl::Keep => store.put_keep_ttl(key, value),
            Ttl::At(at) => store.put_expiring(key, value, Some(at)),
        };
        drop(store);
        match r {
            Ok(_) => true,
            Err(e) => {
                store_error(self, e);
                false
            }
        }
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        self.counts.deletes += 1;
        self.shard.store.borrow_mut().delete(key)
    }

    fn bulk_or_null(&mut self, found: bool) {
        if found {
            resp::bulk(self.out, self.tmp);
        } else {
            resp::null(self.out, self.sess.proto);
        }
    }

    /// GET key.
    pub fn get(&mut self, key: &[u8]) {
        self.counts.gets += 1;
        let store = self.shard.store.borrow();
        match store.get(key) {
            Some(v) => resp::bulk(self.out, v),
            None => {
                self.counts.misses += 1;
                resp::null(self.out, self.sess.proto);
            }
        }
    }

    /// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT n | KEEPTTL].
    pub fn set(&mut self, args: &[&[u8]]) {
        let (key, value) = (args[1], args[2]);
        let (mut nx, mut xx, mut get) = (false, false, false);
        let mut ttl = Ttl::Clear;
        let mut expiry_given = false;
        let mut i = 3;
        while i < args.len() {
            let opt = args[i];
            let has_next = i + 1 < args.len();
            let eq = |s: &str| opt.eq_ignore_ascii_case(s.as_bytes());
            if eq("nx") && !xx {
                nx = true;
            } else if eq("xx") && !nx {
                xx = true;
            } else if eq("get") {
                get = true;
            } else if eq("keepttl") && !expiry_given {
                expiry_given = true;
                ttl = Ttl::Keep;
            } else if (eq("ex") || eq("px") || eq("exat") || eq("pxat")) && !expiry_given && has_next {
                expiry_given = true;
                let Some(n) = parse_i64(args[i + 1]) else { return err(self.out, NOT_INTEGER) };
                let millis = eq("px") || eq("pxat");
                let absolute = eq("exat") || eq("pxat");
                match expire_at(self.now, n, millis, absolute) {
                    Some(at) if n > 0 => ttl = Ttl::At(at.max(0) as u64),
                    _ => return invalid_expire(self, "set"),
                }
                i += 1;
            } else {
                return err(self.out, SYNTAX);
            }
            i += 1;
        }
        if !self.value_fits(value.len()) {
            return;
        }
        self.touch(key);
        // Only NX, XX and GET need the old value.
        let existed = (nx || xx || get) && self.load(key);
        if (nx && existed) || (xx && !existed) {
            return if get { self.bulk_or_null(existed) } else { resp::null(self.out, self.sess.proto) };
        }
        let ok = match ttl {
            Ttl::At(at) if at <= self.now => {
                self.delete(key);
                true
            }
            _ => self.write(key, value, ttl),
        };
        if ok {
            if get { self.bulk_or_null(existed) } else { resp::simple(self.out, "OK") }
        }
    }

    /// SETNX key value.
    pub fn setnx(&mut self, key: &[u8], value: &[u8]) {
        if !self.value_fits(value.len()) {
            return;
        }
        self.touch(key);
        if self.shard.store.borrow().get(key).is_some() {
            return resp::integer(self.out, 0);
        }
        if self.write(key, value, Ttl::Clear) {
            resp::integer(self.out, 1);
        }
    }

    /// SETEX / PSETEX key amount value.
    pub fn setex(&mut self, args: &[&[u8]], millis: bool) {
        let cmd = if millis { "psetex" } else { "setex" };
        let Some(n) = parse_i64(args[2]) else { return err(self.out, NOT_INTEGER) };
        let at = match expire_at(self.now, n, millis, false) {
            Some(at) if n > 0 => at as u64,
            _ => return invalid_expire(self, cmd),
        };
        if self.value_fits(args[3].len()) && self.write(args[1], args[3], Ttl::At(at)) {
            resp::simple(self.out, "OK");
        }
    }

    /// GETSET key value.
    pub fn getset(&mut self, key: &[u8], value: &[u8]) {
        if !self.value_fits(value.len()) {
            return;
        }
        self.touch(key);
        let existed = self.load(key);
        if self.write(key, value, Ttl::Clear) {
            self.bulk_or_null(existed);
        }
    }

    /// GETDEL key.
    pub fn getdel(&mut self, key: &[u8]) {
        self.touch(key);
        let existed = self.load(key);
        if existed {
            self.delete(key);
        }
        self.bulk_or_null(existed);
    }

    /// GETEX key [EX|PX|EXAT|PXAT n | PERSIST].
    pub fn getex(&mut self, args: &[&[u8]]) {
        let key = args[1];
        let mut change: Option<Option<u64>> = None;
        let mut i = 2;
        while i < args.len() {
            let opt = args[i];
            let eq = |s: &str| opt.eq_ignore_ascii_case(s.as_bytes());
            if eq("persist") && change.is_none() {
                change = Some(None);
            } else if (eq("ex") || eq("px") || eq("exat") || eq("pxat")) && change.is_none() && i + 1 < args.len() {
                let Some(n) = parse_i64(args[i + 1]) else { return err(self.out, NOT_INTEGER) };
                match expire_at(self.now, n, eq("px") || eq("pxat"), eq("exat") || eq("pxat")) {
                    Some(at) if n > 0 => change = Some(Some(at.max(0) as u64)),
                    _ => return invalid_expire(self, "getex"),
                }
                i += 1;
            } else {
                return err(self.out, SYNTAX);
            }
            i += 1;
        }
        self.touch(key);
        let existed = self.load(key);
        if existed && let Some(at) = change {
            if at.is_some_and(|at| at <= self.now) {
                self.delete(key);
            } else if let Err(e) = self.shard.store.borrow_mut().set_expiry(key, at) {
                return store_error(self, e);
            }
        }
        self.bulk_or_null(existed);
    }

    /// MGET key… (one slot).
    pub fn mget(&mut self, keys: &[&[u8]]) {
        resp::array(self.out, keys.len());
        for key in keys {
            self.get(key);
        }
    }

    /// MSET / MSETNX key value… (one slot). On a write refused for memory
    /// the pairs before it stay written (the reply is the error).
    pub fn mset(&mut self, args: &[&[u8]], nx: bool) {
        if args.len().is_multiple_of(2) {
            let name = if nx { "msetnx" } else { "mset" };
            return err(self.out, &format!("ERR wrong number of arguments for '{name}' command"));
        }
        let pairs = &args[1..];
        for pair in pairs.chunks(2) {
            if !self.value_fits(pair[1].len()) {
                return;
            }
            self.touch(pair[0]);
        }
        if nx && pairs.chunks(2).any(|p| self.shard.store.borrow().get(p[0]).is_some()) {
            return resp::integer(self.out, 0);
        }
        for pair in pairs.chunks(2) {
            if !self.write(pair[0], pair[1], Ttl::Clear) {
                return;
            }
        }
        if nx { resp::integer(self.out, 1) } else { resp::simple(self.out, "OK") }
    }

    /// APPEND key value.
    pub fn append(&mut self, key: &[u8], value: &[u8]) {
        self.touch(key);
        self.load(key);
        if !self.value_fits(self.tmp.len() + value.len()) {
            return;
        }
        self.tmp.extend_from_slice(value);
        let tmp = std::mem::take(self.tmp);
        let ok = self.write(key, &tmp, Ttl::Keep);
        *self.tmp = tmp;
        if ok {
            resp::integer(self.out, self.tmp.len() as i64);
        }
    }

    /// STRLEN key.
    pub fn strlen(&mut self, key: &[u8]) {
        let n = self.shard.store.borrow().get(key).map_or(0, <[u8]>::len);
        resp::integer(self.out, n as i64);
    }

    /// GETRANGE key start end (Redis's clamping rules).
    pub fn getrange(&mut self, key: &[u8], start: &[u8], end: &[u8]) {
        let (Some(mut s), Some(mut e)) = (parse_i64(start), parse_i64(end)) else { return err(self.out, NOT_INTEGER) };
        let store = self.shard.store.borrow();
        let v = store.get(key).unwrap_or(b"");
        let len = v.len() as i64;
        if s < 0 && e < 0 && s > e {
            return resp::bulk(self.out, b"");
        }
        if s < 0 {
            s += len;
        }
        if e < 0 {
            e += len;
        }
        s = s.max(0);
        e = e.max(0);
        if e >= len {
            e = len - 1;
        }
        if s > e || len == 0 {
            resp::bulk(self.out, b"");
        } else {
            resp::bulk(self.out, &v[s as usize..=e as usize]);
        }
    }

    /// SETRANGE key offset value.
    pub fn setrange(&mut self, key: &[u8], offset: &[u8], value: &[u8]) {
        let Some(offset) = parse_i64(offset) else { return err(self.out, NOT_INTEGER) };
        if offset < 0 {
            return err(self.out, "ERR offset is out of range");
        }
        self.touch(key);
        let existed = self.load(key);
        if value.is_empty() {
            return resp::integer(self.out, self.tmp.len() as i64);
        }
        let offset = offset as usize;
        let Some(end) = offset.checked_add(value.len()) else { return err(self.out, "ERR offset is out of range") };
        if !self.value_fits(end) {
            return;
        }
        let _ = existed;
        if self.tmp.len() < end {
            self.tmp.resize(end, 0);
        }
        self.tmp[offset..end].copy_from_slice(value);
        let tmp = std::mem::take(self.tmp);
        let ok = self.write(key, &tmp, Ttl::Keep);
        *self.tmp = tmp;
        if ok {
            resp::integer(self.out, self.tmp.len() as i64);
        }
    }

    /// INCR / INCRBY / DECR / DECRBY: adds `by` (already negated for DECR).
    pub fn incr(&mut self, key: &[u8], by: i64) {
        self.touch(key);
        let current = if self.load(key) {
            match parse_i64(self.tmp) {
                Some(v) => v,
                None => return err(self.out, NOT_INTEGER),
            }
        } else {
            0
        };
        let Some(next) = current.checked_add(by) else {
            return err(self.out, "ERR increment or decrement would overflow");
        };
        let mut text = itoa::Buffer::new();
        if self.write(key, text.format(next).as_bytes(), Ttl::Keep) {
            resp::integer(self.out, next);
        }
    }

    /// The increment argument of INCRBY/DECRBY (negated for DECRBY).
    pub fn incr_by(&mut self, key: &[u8], by: &[u8], negate: bool) {
        let by = match parse_i64(by) {
            Some(v) if negate => match v.checked_neg() {
                Some(n) => n,
                None => return err(self.out, "ERR decrement would overflow"),
            },
            Some(v) => v,
            None => return err(self.out, NOT_INTEGER),
        };
        self.incr(key, by);
    }

    /// INCRBYFLOAT key increment.
    pub fn incrbyfloat(&mut self, key: &[u8], by: &[u8]) {
        let Some(by) = parse_f64(by) else { return err(self.out, NOT_FLOAT) };
        self.touch(key);
        let current = if self.load(key) {
            match parse_f64(self.tmp) {
                Some(v) => v,
                None => return err(self.out, NOT_FLOAT),
            }
        } else {
            0.0
        };
        let next = current + by;
        if !next.is_finite() {
            return err(self.out, "ERR increment would produce NaN or Infinity");
        }
        let text = format!("{next}");
        if self.write(key, text.as_bytes(), Ttl::Keep) {
            resp::bulk(self.out, text.as_bytes());
        }
    }

    /// DEL / UNLINK key… (one slot).
    pub fn del(&mut self, keys: &[&[u8]]) {
        let mut n = 0;
        for key in keys {
            self.touch(key);
            n += i64::from(self.delete(key));
        }
        resp::integer(self.out, n);
    }

    /// EXISTS key… (one slot; a key named twice counts twice).
    pub fn exists(&mut self, keys: &[&[u8]]) {
        let store = self.shard.store.borrow();
        let n = keys.iter().filter(|k| store.get(k).is_some()).count();
        resp::integer(self.out, n as i64);
    }

    /// TYPE key.
    pub fn type_of(&mut self, key: &[u8]) {
        let t = if self.shard.store.borrow().get(key).is_some() { "string" } else { "none" };
        resp::simple(self.out, t);
    }

    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key n [NX|XX|GT|LT].
    pub fn expire(&mut self, args: &[&[u8]], cmd: &str, millis: bool, absolute: bool) {
        let key = args[1];
        let Some(n) = parse_i64(args[2]) else { return err(self.out, NOT_INTEGER) };
        let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
        for opt in &args[3..] {
            match opt.to_ascii_lowercase().as_slice() {
                b"nx" => nx = true,
                b"xx" => xx = true,
                b"gt" => gt = true,
                b"lt" => lt = true,
                other => {
                    return err(self.out, &format!("ERR Unsupported option {}", String::from_utf8_lossy(other)));
                }
            }
        }
        if nx && (xx || gt || lt) {
            return err(self.out, "ERR NX and XX, GT or LT options at the same time are not compatible");
        }
        if gt && lt {
            return err(self.out, "ERR GT and LT options at the same time are not compatible");
        }
        let Some(at) = expire_at(self.now, n, millis, absolute) else { return invalid_expire(self, cmd) };
        self.touch(key);
        let current = self.shard.store.borrow().expiry(key);
        let Some(current) = current else { return resp::integer(self.out, 0) };
        let allowed = match current {
            None => !(xx || gt),
            Some(cur) => !nx && (!gt || at > cur as i64) && (!lt || at < cur as i64),
        };
        if !allowed {
            return resp::integer(self.out, 0);
        }
        if at <= self.now as i64 {
            self.delete(key);
            return resp::integer(self.out, 1);
        }
        match self.shard.store.borrow_mut().set_expiry(key, Some(at as u64)) {
            Ok(set) => resp::integer(self.out, i64::from(set)),
            Err(e) => store_error(self, e),
        }
    }

    /// TTL / PTTL key.
    pub fn ttl(&mut self, key: &[u8], millis: bool) {
        let n = match self.shard.store.borrow().expiry(key) {
            None => -2,
            Some(None) => -1,
            Some(Some(at)) => {
                let left = at.saturating_sub(self.now) as i64;
                if millis { left } else { (left + 500) / 1000 }
            }
        };
        resp::integer(self.out, n);
    }

    /// PERSIST key.
    pub fn persist(&mut self, key: &[u8]) {
        self.touch(key);
        let had = matches!(self.shard.store.borrow().expiry(key), Some(Some(_)));
        if had && let Err(e) = self.shard.store.borrow_mut().set_expiry(key, None) {
            return store_error(self, e);
        }
        resp::integer(self.out, i64::from(had));
    }

    /// DBSIZE: this core's keys.
    pub fn dbsize(&mut self) {
        let n = self.shard.store.borrow().len();
        resp::integer(self.out, n as i64);
    }

    /// FLUSHDB / FLUSHALL [ASYNC|SYNC]: this core's keys.
    pub fn flush(&mut self, args: &[&[u8]]) {
        match args {
            [_] => {}
            [_, m] if m.eq_ignore_ascii_case(b"async") || m.eq_ignore_ascii_case(b"sync") => {}
            _ => return err(self.out, SYNTAX),
        }
        self.shard.store.borrow_mut().clear();
        resp::simple(self.out, "OK");
    }

    /// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type] over this core's keys.
    pub fn scan(&mut self, args: &[&[u8]]) {
        let cursor = match std::str::from_utf8(args[1]).ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(c) => c,
            None => return err(self.out, "ERR invalid cursor"),
        };
        let (mut pattern, mut count, mut strings) = (None, 10usize, true);
        let mut i = 2;
        while i < args.len() {
            if i + 1 >= args.len() {
                return err(self.out, SYNTAX);
            }
            let (opt, val) = (args[i], args[i + 1]);
            if opt.eq_ignore_ascii_case(b"match") {
                if val.len() > glob::MAX_PATTERN {
                    return err(self.out, &format!("ERR MATCH pattern longer than {} bytes", glob::MAX_PATTERN));
                }
                pattern = Some(val);
            } else if opt.eq_ignore_ascii_case(b"count") {
                match parse_i64(val) {
                    Some(n) if n >= 1 => count = (n as usize).min(MAX_SCAN_COUNT),
                    Some(_) => return err(self.out, SYNTAX),
                    None => return err(self.out, NOT_INTEGER),
                }
            } else if opt.eq_ignore_ascii_case(b"type") {
                strings = val.eq_ignore_ascii_case(b"string");
            } else {
                return err(self.out, SYNTAX);
            }
            i += 2;
        }
        // Matching keys go to the scratch as (length, bytes), then out.
        self.tmp.clear();
        let mut found = 0usize;
        let tmp = &mut *self.tmp;
        let next = self.shard.store.borrow().scan(cursor, count, |key| {
            if strings && pattern.is_none_or(|p| glob::matches(p, key)) {
                tmp.extend_from_slice(&(key.len() as u32).to_le_bytes());
                tmp.extend_from_slice(key);
                found += 1;
            }
        });
        resp::array(self.out, 2);
        resp::bulk(self.out, itoa::Buffer::new().format(next).as_bytes());
        resp::array(self.out, found);
        let mut at = 0;
        while at + 4 <= self.tmp.len() {
            let len = u32::from_le_bytes([self.tmp[at], self.tmp[at + 1], self.tmp[at + 2], self.tmp[at + 3]]) as usize;
            resp::bulk(self.out, &self.tmp[at + 4..at + 4 + len]);
            at += 4 + len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_redis_does() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in
            [&b""[..], b"-", b"+1", b" 1", b"1 ", b"01", b"-0", b"9223372036854775808", b"1a", b"12345678901234567890"]
        {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_refuse_nan_and_spaces() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-3e2"), Some(-300.0));
        assert!(parse_f64(b"nan").is_none());
        assert!(parse_f64(b" 1").is_none());
        assert!(parse_f64(b"").is_none());
    }

    #[test]
    fn expiry_arithmetic_refuses_overflow() {
        assert_eq!(expire_at(1_000, 5, false, false), Some(6_000));
        assert_eq!(expire_at(1_000, 5, true, false), Some(1_005));
        assert_eq!(expire_at(1_000, 7, false, true), Some(7_000));
        assert_eq!(expire_at(1_000, i64::MAX, false, false), None);
        assert_eq!(expire_at(1_000, i64::MAX, true, false), None);
    }
}
