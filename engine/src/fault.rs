//! Test-only fault switches.
//!
//! With the `faults` feature, a server started with `--fault corrupt-values`
//! or `--fault stale-reads` misbehaves on purpose so tests can prove that
//! the load generator's read verification and the linearizability checker
//! catch it. Without the feature (every release build) [`FaultState`] is an
//! empty type whose hooks compile to nothing.

use crate::options::Fault;

#[cfg(feature = "faults")]
mod imp {
    use super::Fault;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// Fault state of one shard.
    pub struct FaultState {
        fault: Fault,
        gets: Cell<u64>,
        previous: RefCell<HashMap<Vec<u8>, Vec<u8>>>,
    }

    impl FaultState {
        /// The state of a shard running with `fault` ([`Fault::None`]: a
        /// correct shard).
        pub fn new(fault: Fault) -> Self {
            FaultState { fault, gets: Cell::new(0), previous: RefCell::new(HashMap::new()) }
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
        pub(crate) fn on_reply_value(&self, _value: &mut [u8]) {}

        #[inline(always)]
        pub(crate) fn stale_value(&self, _key: &[u8]) -> Option<Vec<u8>> {
            None
        }

        #[inline(always)]
        pub(crate) fn before_put(&self, _key: &[u8], _old: Option<&[u8]>) {}

        #[inline(always)]
        pub(crate) fn active(&self) -> bool {
            false
        }
    }
}

pub use imp::FaultState;
