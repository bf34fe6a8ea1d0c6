//! A scraped page in both grammars: it parses or is refused with a line number, and
//! what parses translates to OTLP without a panic, twice (staleness across scrapes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::prometheus::relabel::LabelSet;
use ocelot::receivers::prometheus::text::{Format, parse};
use ocelot::receivers::prometheus::translate::{Staleness, TargetSettings, translate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let settings = TargetSettings {
        honor_labels: data.first().is_some_and(|b| b & 1 == 1),
        trim_metric_suffixes: data.first().is_some_and(|b| b & 2 == 2),
        ..TargetSettings::new(
            LabelSet::from_pairs([("instance".to_string(), "h:1".to_string()), ("job".into(), "j".into())]),
            "http",
        )
    };
    for format in [Format::Text, Format::OpenMetrics] {
        match parse(text, format) {
            Ok(families) => {
                let mut state = Staleness::default();
                let _ = translate(&families, &settings, 1, &mut state);
                let _ = translate(&families[..families.len() / 2], &settings, 2, &mut state);
            }
            Err(e) => assert!(e.line >= 1),
        }
    }
});
