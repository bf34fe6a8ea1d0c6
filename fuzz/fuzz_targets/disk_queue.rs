//! A persistent queue segment's bytes, and a record body's metadata: parsing never
//! panics, and every record it returns lies within the bytes, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::exporters::helper::disk::parse_segment;

fuzz_target!(|data: &[u8]| {
    let start = data.first().copied().unwrap_or(0) as usize;
    let (records, bad) = parse_segment(data, start);
    let mut end = start.min(data.len());
    for (offset, len, _) in &records {
        assert!(*offset >= end);
        end = offset + 8 + *len as usize;
        assert!(end <= data.len());
    }
    if let Some(bad) = bad {
        assert!(bad.offset >= end && bad.offset < data.len());
    }
    let _ = ocelot::pdata::Metadata::decode(data);
});
