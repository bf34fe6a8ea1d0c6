//! Container runtime lines (Docker json-file, CRI) from files: parse without
//! panicking, join partials without losing a byte, keep timestamps in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::config::ByteSize;
use ocelot::receivers::filelog::container::{
    ContainerConfig, ContainerParser, Format, OnError, kubernetes_metadata, parse_line, parse_rfc3339,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_rfc3339(text);
    let _ = kubernetes_metadata(text);
    for format in [Format::Auto, Format::Docker, Format::Crio] {
        let _ = parse_line(text, format);
    }
    let config = ContainerConfig {
        id: None,
        format: Format::Auto,
        add_metadata_from_filepath: false,
        max_log_size: ByteSize(64),
        on_error: OnError::Send,
    };
    let mut parser = ContainerParser::new(config);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let record = LogRecord {
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(line.to_string())) }),
            ..Default::default()
        };
        parser.process(record, i as u64, &mut out);
    }
    parser.flush(true, &mut out);
    assert!(parser.open_since().is_none());
});
