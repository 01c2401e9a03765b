//! Fuzz target: the same operations on the store's own API, checked against
//! a `HashMap` model, the byte limit and the chunk limit
//! (`engine::model::check_store`); nothing may panic.

#![no_main]

use engine::model::{Scenario, check_store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(e) = check_store(&scenario) {
        panic!("{e}");
    }
});
