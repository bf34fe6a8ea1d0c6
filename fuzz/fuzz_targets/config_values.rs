//! Durations, sizes and `${env:...}` expansion on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::config::env::expand_str;
use ocelot::config::types::{parse_duration, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_duration(text);
    let _ = parse_size(text);
    if let Ok((expanded, _)) = expand_str(text, &|name| (name == "X").then(|| "x".to_string())) {
        // Text with no `$` comes back unchanged.
        if !text.contains('$') {
            assert_eq!(expanded, text);
        }
    }
});
