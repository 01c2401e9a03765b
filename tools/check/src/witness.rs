//! Witnesses: the handful of operations that prove a key is not
//! linearizable, and the one sentence that says why — how they are built
//! from the conflicts the algorithms find, and how they are printed.
//!
//! Times are shown in their own file's clock. Across eras no time is
//! compared: a sentence says "in era 0, before era 1 began" instead, and a
//! read after a restart of a value overwritten before it is a lost write.

use super::op::{Kind, NEVER, Op, Time, Values, show_time};
use serde_json::json;

/// What kind of proof a witness is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A GET whose value failed the load generator's verification.
    BadRead,
    /// A GET of a value no PUT of the key wrote (nor the load phase).
    NeverWritten,
    /// A GET that completed before the PUT of its value began.
    FutureRead,
    /// A GET of an overwritten value (the classic stale read).
    StaleRead,
    /// A GET after a restart (a later era) of a value overwritten before
    /// it, or of the initial value: a write that had taken effect (was
    /// acknowledged, or read) was lost.
    LostWrite,
    /// A GET of the key's initial value after a later value was current.
    StaleInitial,
    /// NOT_FOUND and the load value both observed with no DELETE between.
    AbsentAndLoaded,
    /// Two values' operations that no order of their writes explains.
    Crossed,
    /// A cycle of real-time constraints through several files.
    Cycle,
    /// No order found by exhaustive search (histories with DELETEs).
    Search,
}

impl Proof {
    /// A short tag for the JSON output.
    pub fn tag(self) -> &'static str {
        match self {
            Proof::BadRead => "bad-read",
            Proof::NeverWritten => "never-written",
            Proof::FutureRead => "read-from-future",
            Proof::StaleRead => "stale-read",
            Proof::LostWrite => "lost-write",
            Proof::StaleInitial => "stale-initial-value",
            Proof::AbsentAndLoaded => "absent-and-loaded",
            Proof::Crossed => "crossed-values",
            Proof::Cycle => "cycle",
            Proof::Search => "search",
        }
    }
}

/// A minimal proof that one key's history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The key.
    pub key: u64,
    /// What kind of proof it is.
    pub proof: Proof,
    /// One sentence, naming operations by their labels (`[1]` is `ops[0]`).
    pub explanation: String,
    /// The operations, in file then invoke order.
    pub ops: Vec<Op>,
}

/// Collects a witness's operations, then names them by label.
pub(crate) struct Builder<'v> {
    key: u64,
    ops: Vec<Op>,
    values: &'v Values,
}

impl<'v> Builder<'v> {
    /// A witness of `key` made of `ops` (duplicates are dropped); `values`
    /// shows their values.
    pub(crate) fn new(values: &'v Values, key: u64, ops: &[Op]) -> Builder<'v> {
        let mut ops = ops.to_vec();
        ops.sort_by_key(|o| (o.file(), o.invoke, o.position()));
        ops.dedup_by_key(|o| (o.file(), o.position()));
        Builder { key, ops, values }
    }

    /// `[n]`, the label of `op`.
    pub(crate) fn l(&self, op: &Op) -> String {
        match self.ops.iter().position(|o| o.file() == op.file() && o.position() == op.position()) {
            Some(i) => format!("[{}]", i + 1),
            None => "[?]".into(),
        }
    }

    /// A value as people read it.
    pub(crate) fn v(&self, value: u64) -> String {
        self.values.show(value)
    }

    /// `[n] PUT w3#17` / `[n] GET`.
    pub(crate) fn d(&self, op: &Op) -> String {
        match op.kind() {
            Kind::Put => format!("{} PUT {}", self.l(op), self.v(op.value)),
            k => format!("{} {}", self.l(op), k.name()),
        }
    }

    /// The finished witness.
    pub(crate) fn finish(self, proof: Proof, explanation: String) -> Witness {
        Witness { key: self.key, proof, explanation, ops: self.ops }
    }
}

fn t(x: Time) -> String {
    show_time(x)
}

/// How `x` ended before `y` began, `y` named `y_label`: on one clock
/// "completed at T before Y began at T'", across a restart "completed at
/// T in era 0, before era 1 where Y began" (or "never answered in era 0,
/// …": it took effect before the restart, or never).
fn ended_before(x: &Op, y: &Op, y_label: &str) -> String {
    if x.era() < y.era() {
        let ended =
            if x.response == NEVER { "never answered".into() } else { format!("completed at {}", t(x.response)) };
        format!("{ended} in era {}, before era {} where {y_label} began", x.era(), y.era())
    } else {
        format!("completed at {} before {y_label} began at {}", t(x.response), t(y.invoke))
    }
}

/// A GET that failed verification.
pub(crate) fn bad_read(values: &Values, r: &Op) -> Witness {
    let b = Builder::new(values, r.key(), &[*r]);
    let e = format!(
        "{} GET of key {} (invoked at {}) returned a value that failed verification: corrupted, or written for another key.",
        b.l(r),
        r.key(),
        t(r.invoke)
    );
    b.finish(Proof::BadRead, e)
}

/// A GET of a value nobody wrote.
pub(crate) fn never_written(values: &Values, r: &Op) -> Witness {
    let b = Builder::new(values, r.key(), &[*r]);
    let e = format!(
        "{} GET returned {}, which no PUT of key {} in the history wrote and which is not the key's load value \
         (a history must start from a freshly loaded or empty store).",
        b.l(r),
        b.v(r.value),
        r.key()
    );
    b.finish(Proof::NeverWritten, e)
}

/// A GET that ended before its write began.
pub(crate) fn future_read(values: &Values, w: &Op, r: &Op) -> Witness {
    let b = Builder::new(values, r.key(), &[*w, *r]);
    if r.era() < w.era() {
        let e = format!(
            "{} GET returned {} in era {}, but {} PUT of that value began only in era {}, after the restart: \
             a read from the future.",
            b.l(r),
            b.v(r.value),
            r.era(),
            b.l(w),
            w.era()
        );
        return b.finish(Proof::FutureRead, e);
    }
    let e = format!(
        "{} GET returned {} and completed at {}, but {} PUT of that value began only at {}: a read from the future.",
        b.l(r),
        b.v(r.value),
        t(r.response),
        b.l(w),
        t(w.invoke)
    );
    b.finish(Proof::FutureRead, e)
}

/// NOT_FOUND and the load value both observed, and nothing deletes.
pub(crate) fn absent_and_loaded(values: &Values, absent: &Op, loaded: &Op) -> Witness {
    let b = Builder::new(values, absent.key(), &[*absent, *loaded]);
    let e = format!(
        "{} GET returned NOT_FOUND, but key {} holds its load value {} from the start ({} GET read it) \
         and nothing in the history deletes it.",
        b.l(absent),
        absent.key(),
        b.v(loaded.value),
        b.l(loaded)
    );
    b.finish(Proof::AbsentAndLoaded, e)
}

/// A cluster: a value's write (unless it is the key's initial value) and
/// the reads that returned it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cluster<'a> {
    /// Its operations; the first is the write if `write`.
    pub ops: &'a [Op],
    /// Whether it has a write (false: the initial value).
    pub write: bool,
}

impl Cluster<'_> {
    fn value(&self) -> u64 {
        self.ops.first().map_or(0, |o| o.value)
    }

    fn write(&self) -> Option<Op> {
        if self.write { self.ops.first().copied() } else { None }
    }
}

/// Two clusters that must each precede the other: `x_a` (of `a`; `None`
/// when `a` is the initial value, which precedes everything) completed
/// before `y_b` (of `b`) began, and `x_b` completed before `y_a` began.
/// The witness is the simplest proof found in the two clusters: a stale
/// read (a GET after its value's write and an overwriting PUT, 2–4 ops)
/// when there is one, else these four operations.
pub(crate) fn crossed(values: &Values, a: Cluster, b: Cluster, x_a: Option<Op>, y_a: Op, x_b: Op, y_b: Op) -> Witness {
    if let Some(w) = stale(values, a, b).or_else(|| stale(values, b, a)) {
        return w;
    }
    let key = y_a.key();
    let (va, vb) = (values.show(a.value()), values.show(b.value()));
    let mut ops: Vec<Op> = vec![y_a, x_b, y_b];
    ops.extend(x_a);
    ops.extend(a.write());
    ops.extend(b.write());
    let bl = Builder::new(values, key, &ops);
    match x_a {
        None if x_b.era() < y_a.era() => {
            let e = format!(
                "{} returned the initial value {va}, but {vb} was current before it began: {} ({vb}) {}.",
                bl.d(&y_a),
                bl.d(&x_b),
                ended_before(&x_b, &y_a, &bl.l(&y_a))
            );
            bl.finish(Proof::LostWrite, e)
        }
        None => {
            let e = format!(
                "{} returned the initial value {va}, but {vb} was current before it began: {} ({vb}) completed \
                 at {} and {} began at {}.",
                bl.d(&y_a),
                bl.d(&x_b),
                t(x_b.response),
                bl.l(&y_a),
                t(y_a.invoke)
            );
            bl.finish(Proof::StaleInitial, e)
        }
        Some(x_a) => {
            let e = format!(
                "{va} and {vb} cannot be ordered: {} ({va}) {}, and {} ({vb}) {}; each value is written once, \
                 so whichever was written first would have to be current again after the other.",
                bl.d(&x_a),
                ended_before(&x_a, &y_b, &format!("{} ({vb})", bl.d(&y_b))),
                bl.d(&x_b),
                ended_before(&x_b, &y_a, &format!("{} ({va})", bl.d(&y_a)))
            );
            bl.finish(Proof::Crossed, e)
        }
    }
}

/// A GET of `r`'s value that began after `o`'s PUT completed, where `r`'s
/// value was current before that PUT began (its write or a read of it
/// completed first, or it is the initial value): a stale read.
fn stale(values: &Values, r: Cluster, o: Cluster) -> Option<Witness> {
    let w_o = o.write()?;
    let read = *r.ops.iter().filter(|g| g.kind() == Kind::Get && w_o.precedes(g)).min_by_key(|g| g.invoke)?;
    if w_o.era() < read.era() {
        return lost(values, r, o, w_o, read);
    }
    let key = read.key();
    let v = values.show(r.value());
    match r.write() {
        None => {
            let bl = Builder::new(values, key, &[w_o, read]);
            let e = format!(
                "{} GET returned the initial value {v}, but {} completed at {} before that GET began at {}.",
                bl.l(&read),
                bl.d(&w_o),
                t(w_o.response),
                t(read.invoke)
            );
            Some(bl.finish(Proof::StaleInitial, e))
        }
        Some(w_r) => {
            let x = if w_r.precedes(&w_o) {
                w_r
            } else {
                *r.ops.iter().filter(|g| g.precedes(&w_o)).min_by_key(|g| g.response)?
            };
            let bl = Builder::new(values, key, &[w_r, x, w_o, read]);
            let e = format!(
                "{} GET returned {v}, but {} overwrote it before that GET began: {} {}, and {} completed at {} \
                 before the GET began at {}.",
                bl.l(&read),
                bl.d(&w_o),
                bl.d(&x),
                ended_before(&x, &w_o, &bl.l(&w_o)),
                bl.l(&w_o),
                t(w_o.response),
                t(read.invoke)
            );
            Some(bl.finish(Proof::StaleRead, e))
        }
    }
}

/// A stale read after a restart: `read` (of `r`'s value, in a later era)
/// began after `w_o` (of `o`, in an earlier era) took effect, and `r`'s
/// value was current before `w_o` began. `w_o` took effect if it was
/// acknowledged or if a GET read its value (then that GET is part of the
/// proof); otherwise `None`.
fn lost(values: &Values, r: Cluster, o: Cluster, w_o: Op, read: Op) -> Option<Witness> {
    let key = read.key();
    let (v, vo) = (values.show(r.value()), values.show(o.value()));
    let seen = if w_o.response == NEVER {
        Some(*o.ops.iter().filter(|g| g.kind() == Kind::Get).min_by_key(|g| (g.era(), g.file(), g.invoke))?)
    } else {
        None
    };
    // Before w_o, r's value was current: its write or one of its operations
    // ended before w_o began (none needed for the initial value).
    let x = match r.write() {
        None => None,
        Some(w_r) if w_r.precedes(&w_o) => Some(w_r),
        Some(_) => Some(*r.ops.iter().filter(|g| g.precedes(&w_o)).min_by_key(|g| (g.era(), g.response))?),
    };
    let mut ops = vec![w_o, read];
    ops.extend(seen);
    ops.extend(x);
    ops.extend(r.write());
    let bl = Builder::new(values, key, &ops);
    let (took, lost) = match seen {
        None => (format!("was acknowledged at {} in era {}", t(w_o.response), w_o.era()), "an acknowledged write"),
        Some(g) => (
            format!("took effect in era {} (never answered, but {} GET read {vo})", w_o.era(), bl.l(&g)),
            "a write that had taken effect",
        ),
    };
    let current = match (r.write(), x) {
        (Some(_), Some(x)) => format!(" ({} {})", bl.d(&x), ended_before(&x, &w_o, &bl.l(&w_o))),
        _ => String::new(),
    };
    let what = if r.write().is_none() { format!("the initial value {v}") } else { v };
    let e = format!(
        "{} GET returned {what} in era {}, but {} had overwritten it{current} and {took}, before era {} began: \
         {lost} was lost across the restart.",
        bl.l(&read),
        read.era(),
        bl.d(&w_o),
        read.era()
    );
    Some(bl.finish(Proof::LostWrite, e))
}

/// A cycle of constraints: in each edge `(x, y)`, `x` completed before `y`
/// began (one file, one clock), so `x`'s value was written before `y`'s;
/// the last edge's `y` has the first edge's value.
pub(crate) fn cycle(values: &Values, key: u64, edges: &[(Op, Op)], writes: &[Op]) -> Witness {
    let mut ops: Vec<Op> = edges.iter().flat_map(|(x, y)| [*x, *y]).collect();
    ops.extend_from_slice(writes);
    let bl = Builder::new(values, key, &ops);
    let chain: Vec<String> = edges
        .iter()
        .map(|(x, y)| {
            format!(
                "{} ({}) {}",
                bl.d(x),
                bl.v(x.value),
                ended_before(x, y, &format!("{} ({})", bl.d(y), bl.v(y.value)))
            )
        })
        .collect();
    let e = format!(
        "each of these forces the first value to be written before the second one's operations: {}; \
         that is a cycle, so no order of the writes explains it.",
        chain.join("; ")
    );
    bl.finish(Proof::Cycle, e)
}

/// A set of operations exhaustive search found no legal order for.
pub(crate) fn search(values: &Values, key: u64, ops: &[Op]) -> Witness {
    let bl = Builder::new(values, key, ops);
    let eras = if ops.iter().any(|o| o.era() != ops[0].era()) {
        " (and the eras': each began after every operation of the one before ended)"
    } else {
        ""
    };
    let e = format!(
        "no order of these {} operations on key {} is a legal register history that respects their real-time \
         order{eras} (found by exhaustive search: DELETEs make NOT_FOUND ambiguous).",
        bl.ops.len(),
        key
    );
    bl.finish(Proof::Search, e)
}

impl Witness {
    /// The witness for people: the sentence, then one line per operation.
    /// `files` names the sources by index; `values` shows the values.
    pub fn render(&self, files: &[String], values: &Values) -> String {
        let mut out = format!("  {}\n", self.explanation);
        let many = files.len() > 1;
        let eras = self.ops.iter().any(|o| o.era() > 0);
        for (i, o) in self.ops.iter().enumerate() {
            let file = files.get(o.file() as usize).map(String::as_str).unwrap_or("?");
            let mut origin = if many { format!("{file} #{}", o.position()) } else { format!("#{}", o.position()) };
            if eras {
                origin.push_str(&format!(", era {}", o.era()));
            }
            out.push_str(&format!(
                "  [{}] {:<3} key {} {:<12} client {:<3} invoke {} response {}  ({origin})\n",
                i + 1,
                o.kind().name(),
                o.key(),
                if o.kind() == Kind::Delete { "-".to_string() } else { values.show(o.value) },
                o.client(),
                show_time(o.invoke),
                show_time(o.response)
            ));
        }
        out
    }

    /// The witness as JSON (times in ns of the operation's file; `response_ns`
    /// null if never answered; `era` 0 unless checked in eras); `files`
    /// names the sources, `values` shows the values.
    pub fn to_json(&self, files: &[String], values: &Values) -> serde_json::Value {
        let ops: Vec<serde_json::Value> = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, o)| {
                json!({
                    "label": i + 1,
                    "file": files.get(o.file() as usize),
                    "position": o.position(),
                    "era": o.era(),
                    "client": o.client(),
                    "kind": o.kind().name(),
                    "key": o.key(),
                    "value": values.show(o.value),
                    "value_raw": o.value,
                    "invoke_ns": o.invoke,
                    "response_ns": (o.response != super::op::NEVER).then_some(o.response),
                })
            })
            .collect();
        json!({ "key": self.key, "proof": self.proof.tag(), "explanation": self.explanation, "ops": ops })
    }
}
