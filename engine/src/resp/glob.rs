//! Redis's glob patterns (`SCAN … MATCH`, `CONFIG GET`): `*`, `?`,
//! `[abc]`, `[^a-z]` and `\` escapes.
//!
//! Matching walks the key once per position of the last `*`, so its work is
//! at most key length × pattern length — no exponential backtracking on a
//! hostile pattern. The callers bound both lengths ([`MAX_PATTERN`]).

/// The longest pattern accepted (a longer one is an error, not a slow scan).
pub const MAX_PATTERN: usize = 256;

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern after it, text position).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                _ => {
                    if let Some(next) = one(pattern, p, text[t]) {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one text byte against the pattern element at `p` (not `*`);
/// returns the index after the element if it matches.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = i < pattern.len() && pattern[i] == b'^';
            if negate {
                i += 1;
            }
            let mut hit = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    hit |= pattern[i + 1] == c;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
                    let (a, b) = (pattern[i].min(pattern[i + 2]), pattern[i].max(pattern[i + 2]));
                    hit |= (a..=b).contains(&c);
                    i += 3;
                } else {
                    hit |= pattern[i] == c;
                    i += 1;
                }
            }
            // An unclosed class runs to the end of the pattern, as in Redis.
            let after = (i + 1).min(pattern.len());
            (hit != negate).then_some(after)
        }
        other => (other == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_as_in_redis() {
        let yes = [
            ("*", "anything"),
            ("user:*", "user:42"),
            ("h?llo", "hello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("a\\*b", "a*b"),
            ("*a*b*c", "xxaxxbxxc"),
            ("", ""),
            ("**", ""),
        ];
        for (p, t) in yes {
            assert!(matches(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        let no = [
            ("user:*", "item:1"),
            ("h?llo", "hllo"),
            ("h[^e]llo", "hello"),
            ("a\\*b", "axb"),
            ("abc", "ab"),
            ("", "a"),
        ];
        for (p, t) in no {
            assert!(!matches(p.as_bytes(), t.as_bytes()), "{p} should not match {t}");
        }
    }

    #[test]
    fn a_hostile_pattern_is_not_exponential() {
        let pattern = "*a".repeat(100) + "b";
        let text = "a".repeat(1024);
        // Would take ~forever with naive backtracking; linear in stars here.
        assert!(!matches(pattern.as_bytes(), text.as_bytes()));
    }
}
