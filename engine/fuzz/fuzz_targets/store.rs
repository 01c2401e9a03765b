//! Fuzz target: the same operations on the store's own API — writes with
//! and without an expiry, expiry changes, moves of the clock, lazy and
//! active expiry, scans with writes between their calls, flushes, bulk
//! writes that grow the table — checked against the model, the byte limit,
//! the chunk limit and the per-slot counts (`engine::model::check_store`);
//! nothing may panic.

#![no_main]

use engine::model::{Scenario, check_store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(e) = check_store(&scenario) {
        panic!("{e}");
    }
});
