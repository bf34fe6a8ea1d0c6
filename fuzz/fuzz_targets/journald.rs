//! A line of `journalctl --output=json` in both shapes: it parses into a record or is
//! refused with a reason, and a parsed entry always has its cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::journald::entry::{Shape, parse};

fuzz_target!(|data: &[u8]| {
    for parse_fields in [false, true] {
        let shape = Shape { parse_fields, convert_message_bytes: !parse_fields };
        if let Ok(entry) = parse(data, shape) {
            assert!(entry.record.body.is_some() || parse_fields);
        }
    }
});
