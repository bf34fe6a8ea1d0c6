//! OTLP protobuf requests from the network: decode, count, split and re-encode
//! without panicking; a split keeps every item.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::pdata::Signal;
use ocelot::pdata::json::{from_proto, to_proto};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let signal = Signal::ALL[selector as usize % 3];
    let Ok(mut payload) = from_proto(signal, bytes) else { return };
    let total = payload.item_count();
    let encoded = to_proto(&payload);
    assert_eq!(from_proto(signal, &encoded).unwrap().item_count(), total);
    let n = (selector as usize / 3) % (total + 1);
    let front = payload.split_front(n);
    assert_eq!(front.item_count(), n);
    assert_eq!(front.item_count() + payload.item_count(), total);
});
