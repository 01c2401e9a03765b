//! Per-operation costs of a shard, in ns/op (`cargo bench -p percore-engine`):
//! the store's GET and PUT on a million records, and a whole 1024-op
//! YCSB-B batch validated and executed the way a connection does it.

use engine::batch::execute;
use engine::fault::FaultState;
use engine::options::Fault;
use engine::store::Store;
use std::hint::black_box;
use std::time::Duration;

use wire::Limits;
use wire::buf::RecvBuf;
use wire::cluster::SlotSet;
use wire::codec::{RequestEncoder, ResponseEncoder, decode_request};
use wire::frame::{Next, next_frame};

/// How long each measured round runs.
const ROUND: Duration = Duration::from_millis(700);

const RECORDS: u64 = 1_000_000;

/// A fixed pseudo-random sequence of record numbers (splitmix64).
fn keys(n: usize) -> Vec<Vec<u8>> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % RECORDS).to_string().into_bytes()
        })
        .collect()
}

fn main() {
    let mut store = Store::with_capacity(RECORDS as usize);
    let value = [7u8; 128];
    for i in 0..RECORDS {
        store.put(i.to_string().as_bytes(), &value).expect("put");
    }
    let m = store.memory();
    println!(
        "store with {RECORDS} records of 128 B: slab {:.1} MB (live {:.1} MB), table {:.1} MB",
        m.slab_bytes as f64 / 1e6,
        m.live_bytes as f64 / 1e6,
        m.table_bytes as f64 / 1e6
    );
    let sample = keys(1 << 16);
    let mut sink = Vec::with_capacity(256);
    testkit::measure("store.get (uniform over 1M) + copy 128 B", sample.len() as u64, ROUND, || {
        for k in &sample {
            sink.clear();
            if let Some(v) = store.get(k) {
                sink.extend_from_slice(v);
            }
            black_box(&sink);
        }
    });
    testkit::measure("store.put (update in place, uniform over 1M)", sample.len() as u64, ROUND, || {
        for k in &sample {
            store.put(k, &value).expect("put");
        }
    });

    let mut owned = SlotSet::empty();
    for s in 0..16384 {
        owned.insert(s);
    }
    let mut frame = Vec::new();
    let mut enc = RequestEncoder::new();
    enc.begin(&mut frame, 1);
    for (i, k) in sample.iter().take(1024).enumerate() {
        if i % 20 == 0 {
            enc.put(&mut frame, k, &value);
        } else {
            enc.get(&mut frame, k);
        }
    }
    enc.finish(&mut frame);
    let mut buf = RecvBuf::new(1 << 20, 1 << 20);
    buf.extend_from_slice(&frame);
    let limits = Limits::default();
    let mut wbuf = Vec::with_capacity(1 << 20);
    let mut renc = ResponseEncoder::new();
    let faults = FaultState::new(Fault::None);
    testkit::measure("validate + execute a 1024-op YCSB-B batch", 1024, ROUND, || {
        let Ok(Next::Frame(f)) = next_frame(buf.filled(), &limits) else { panic!("frame") };
        let req = decode_request(f.body, &limits).expect("valid");
        wbuf.clear();
        black_box(execute(&mut store, 0, &owned, limits.max_frame_bytes as usize, &faults, req, &mut wbuf, &mut renc));
    });
}
