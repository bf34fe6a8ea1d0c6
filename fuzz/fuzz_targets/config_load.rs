//! Any text as a config file: YAML parsing with locations, env expansion and
//! validation must report errors, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::config::Source;
use ocelot::registry::load;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = load(&[Source { name: "fuzz.yaml".into(), text: text.into() }], &|name| {
        (name == "SET").then(|| "value".to_string())
    });
    // A config comes back only when there is no error.
    if loaded.config.is_some() {
        assert_eq!(loaded.errors().count(), 0);
    }
    for diagnostic in &loaded.diagnostics {
        assert!(!diagnostic.message.is_empty());
    }
});
