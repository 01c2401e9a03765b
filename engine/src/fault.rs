//! Test-only fault switches.
//!
//! With the `faults` feature, a server started with `--fault corrupt-values`
//! or `--fault stale-reads` misbehaves on purpose so tests can prove that
//! the load generator's read verification and the linearizability checker
//! catch it (`--fault follower-reads`: a replicated shard's followers
//! answer GETs from their own stores, which cluster/nemesis.sh must catch); with `--fault stall` each shard blocks its core for
//! [`STALL`] once every [`STALL_EVERY`], so tests can prove that the load
//! generator attributes a server's stall to the server, not to itself.
//! Without the feature (every release build) [`FaultState`] is an empty
//! type whose hooks compile to nothing.

use crate::options::Fault;
use std::time::Duration;

/// How long a `stall` fault blocks the shard's core.
pub const STALL: Duration = Duration::from_millis(50);
/// How often a `stall` fault blocks it.
pub const STALL_EVERY: Duration = Duration::from_secs(1);

#[cfg(feature = "faults")]
mod imp {
    use super::Fault;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::time::Instant;

    /// Fault state of one shard.
    pub struct FaultState {
        fault: Fault,
        gets: Cell<u64>,
        previous: RefCell<HashMap<Vec<u8>, Vec<u8>>>,
        last_stall: Cell<Option<Instant>>,
    }

    impl FaultState {
        /// The state of a shard running with `fault` ([`Fault::None`]: a
        /// correct shard).
        pub fn new(fault: Fault) -> Self {
            FaultState {
                fault,
                gets: Cell::new(0),
                previous: RefCell::new(HashMap::new()),
                last_stall: Cell::new(None),
            }
        }

        /// Called before a request batch executes: a `stall` fault blocks
        /// the whole core (not just this task) for [`super::STALL`], at
        /// most once per [`super::STALL_EVERY`], the first time a second
        /// after the first batch.
        #[inline]
        pub(crate) fn before_batch(&self) {
            if self.fault != Fault::Stall {
                return;
            }
            let now = Instant::now();
            match self.last_stall.get() {
                None => self.last_stall.set(Some(now)),
                Some(last) if now.duration_since(last) >= super::STALL_EVERY => {
                    std::thread::sleep(super::STALL);
                    self.last_stall.set(Some(Instant::now()));
                }
                Some(_) => {}
            }
        }

        /// Called with a GET's value just copied into the reply.
        #[inline]
        pub(crate) fn on_reply_value(&self, value: &mut [u8]) {
            if self.fault == Fault::CorruptValues && !value.is_empty() {
                let n = self.gets.get() + 1;
                self.gets.set(n);
                if n.is_multiple_of(64) {
                    let last = value.len() - 1;
                    value[last] ^= 0x01;
                }
            }
        }

        /// A stale value to serve instead of the current one, if the fault says so.
        #[inline]
        pub(crate) fn stale_value(&self, key: &[u8]) -> Option<Vec<u8>> {
            if self.fault != Fault::StaleReads {
                return None;
            }
            let n = self.gets.get() + 1;
            self.gets.set(n);
            if !n.is_multiple_of(16) {
                return None;
            }
            self.previous.borrow().get(key).cloned()
        }

        /// Called before a PUT replaces `old`.
        #[inline]
        pub(crate) fn before_put(&self, key: &[u8], old: Option<&[u8]>) {
            if self.fault == Fault::StaleReads
                && let Some(old) = old
            {
                self.previous.borrow_mut().insert(key.to_vec(), old.to_vec());
            }
        }

        /// True if this build and this server inject a fault.
        pub(crate) fn active(&self) -> bool {
            self.fault != Fault::None
        }

        /// True if a follower answers reads from its own store.
        #[inline]
        pub(crate) fn follower_reads(&self) -> bool {
            self.fault == Fault::FollowerReads
        }
    }
}

#[cfg(not(feature = "faults"))]
mod imp {
    use super::Fault;

    /// Fault state of one shard: nothing, in builds without the `faults` feature.
    pub struct FaultState;

    impl FaultState {
        /// The state of a shard running with `fault`: nothing to keep.
        pub fn new(_fault: Fault) -> Self {
            FaultState
        }

        #[inline(always)]
        pub(crate) fn before_batch(&self) {}

        #[inline(always)]
        pub(crate) fn on_reply_value(&self, _value: &mut [u8]) {}

        #[inline(always)]
        pub(crate) fn stale_value(&self, _key: &[u8]) -> Option<Vec<u8>> {
            None
        }

        #[inline(always)]
        pub(crate) fn before_put(&self, _key: &[u8], _old: Option<&[u8]>) {}

        #[inline(always)]
        pub(crate) fn follower_reads(&self) -> bool {
            false
        }

        #[inline(always)]
        pub(crate) fn active(&self) -> bool {
            false
        }
    }
}

pub use imp::FaultState;
