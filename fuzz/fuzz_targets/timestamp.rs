//! Timestamp layouts and values: the first line is a layout, the rest a value, tried
//! with every layout type; no panic, and what parses is a time after 1970.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::filelog::operators::timestamp::{LayoutType, TimeParser};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (layout, value) = text.split_once('\n').unwrap_or((text, ""));
    for layout_type in [LayoutType::Strptime, LayoutType::Gotime, LayoutType::Epoch] {
        for location in [None, Some("UTC"), Some("America/New_York")] {
            let Ok(parser) = TimeParser::new(layout_type, layout, location) else { continue };
            let _ = parser.parse_str(value);
            if let Ok(n) = value.trim().parse::<i64>() {
                let _ = parser.parse_i64(n);
            }
            if let Ok(f) = value.trim().parse::<f64>() {
                let _ = parser.parse_f64(f);
            }
        }
    }
});
