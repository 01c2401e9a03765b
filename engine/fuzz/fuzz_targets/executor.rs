//! Fuzz target: arbitrary batches of GET, PUT and DELETE on six colliding
//! keys, values from empty to the largest allowed, under tiny or default
//! limits, through the real grouped executor over the real store, with the
//! store's own expiry, scan and flush calls and moves of the clock between
//! frames; every result must match one-at-a-time execution and the model
//! (`engine::model::check_executor`), and nothing may panic.

#![no_main]

use engine::model::{Scenario, check_executor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(e) = check_executor(&scenario) {
        panic!("{e}");
    }
});
