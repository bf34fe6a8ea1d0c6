//! The probabilistic sampler on an arbitrary W3C tracestate and trace id: a decision,
//! and a written tracestate whose `th` reads back as the threshold applied.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::processors::probabilistic_sampler::fuzz_decide;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (head, rest) = data.split_at(17);
    let Ok(tracestate) = std::str::from_utf8(rest) else { return };
    fuzz_decide(f64::from(head[0]) / 2.55, &head[1..], tracestate);
});
