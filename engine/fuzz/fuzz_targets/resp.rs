//! Fuzz target: bytes through the real RESP door of a real shard, every
//! reply checked against a model of Redis's answers and the store checked
//! against the model after every pass (`engine::resp_model::check`). The
//! first byte picks structured inputs (well-formed commands over a few
//! keys, pipelined, split across reads, with a moving clock) or raw bytes;
//! nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = engine::resp_model::check(data) {
        panic!("{e}");
    }
});
