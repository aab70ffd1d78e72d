//! The download `Range` header: any value against any size gives the whole file, a part within
//! the file, or unsatisfiable, never a panic or an empty or out-of-bounds part.
#![no_main]

use ccfs_protocol::range::RangeAsk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, &str)| {
    let (size, value) = input;
    match RangeAsk::parse(Some(value), size) {
        RangeAsk::Part(r) => assert!(r.start < r.end && r.end <= size, "{value:?} {size}: {r:?}"),
        RangeAsk::Whole | RangeAsk::Unsatisfiable => {}
    }
});
