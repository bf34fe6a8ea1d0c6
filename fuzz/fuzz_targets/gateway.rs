//! The gateway's trace paths on an arbitrary OTLP traces request: tail_sampling's
//! encoded fragments come back span for span, and the loadbalancing split puts every
//! span once on the backend its trace id names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ocelot::processors::tail_sampling::fuzz_round_trip(data);
    ocelot::exporters::loadbalancing::fuzz_split(data);
});
