//! OTLP/JSON requests from the network: decode without panicking, and what decodes
//! survives a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::pdata::Signal;
use ocelot::pdata::json::{from_json, to_json_line};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let signal = Signal::ALL[selector as usize % 3];
    let Ok(payload) = from_json(signal, bytes) else { return };
    let line = to_json_line(&payload);
    let again = from_json(signal, line.as_bytes()).expect("our own JSON must decode");
    assert_eq!(again.item_count(), payload.item_count());
});
