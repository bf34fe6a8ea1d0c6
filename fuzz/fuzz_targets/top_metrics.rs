//! `ocelot top`'s reader of the Prometheus text format: any text gives samples and a
//! count of unreadable lines, never a panic; and the view of two such scrapes builds.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ocelot::top::scrape::parse;
use ocelot::top::view::{Overview, Snapshot};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (samples, unreadable) = parse(&text);
    assert!(samples.len() + unreadable <= text.lines().count());
    let start = Instant::now();
    let first = Snapshot::new(start, samples.clone(), unreadable);
    let second = Snapshot::new(start + Duration::from_secs(1), samples, unreadable);
    let _ = Overview::new(Some(&first), &second);
});
