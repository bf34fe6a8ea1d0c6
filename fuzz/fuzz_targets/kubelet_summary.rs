//! The kubelet's `/stats/summary` and `/pods` JSON: refused, or translated with every
//! metric group on, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ocelot::receivers::kubeletstats::fuzz_summary(data);
});
