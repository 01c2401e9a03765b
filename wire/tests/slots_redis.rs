//! Slots of known keys, pinned to what a real Redis 7.0.15 answered.
//!
//! The values were taken once with `redis-cli CLUSTER KEYSLOT <key>` against
//! `redis-server --cluster-enabled yes`; this test needs no Redis. If it
//! fails, percore's routing has changed and clients built before the change
//! would send keys to the wrong shard.

use wire::slot::{crc16, slot_of};

const REDIS_KEYSLOTS: &[(&str, u16)] = &[
    ("123456789", 12739),
    ("foo", 12182),
    ("bar", 5061),
    ("hello", 866),
    ("0", 13907),
    ("1", 9842),
    ("42", 8000),
    ("999999", 7969),
    ("123456", 8420),
    ("user1000", 3443),
    ("{user1000}.following", 3443),
    ("{user1000}.followers", 3443),
    ("foo{}{bar}", 8363),
    ("foo{{bar}}zap", 4015),
    ("foo{bar}{zap}", 5061),
    ("{}", 15257),
    ("a{b", 13340),
    ("", 0),
    ("percore", 9745),
];

#[test]
fn slots_match_redis_cluster_keyslot() {
    for &(key, slot) in REDIS_KEYSLOTS {
        assert_eq!(slot_of(key.as_bytes()), slot, "CLUSTER KEYSLOT {key:?}");
    }
}

#[test]
fn crc16_xmodem_check_value() {
    assert_eq!(crc16(b"123456789"), 0x31C3);
}
