//! One line of `journalctl --output=json` as a log record.
//!
//! journalctl writes each entry as one JSON object of field names to values: a string
//! for text, a list of numbers for a value that is not valid UTF-8 (or has control
//! characters), a list of those for a field with several values, and null for a value
//! it left out (longer than 4096 bytes without `--all`).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::Value as Json;

use crate::receivers::filelog::operators::from_json;

/// How an entry becomes a record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    /// MESSAGE the body, PRIORITY the severity, the other fields attributes.
    pub parse_fields: bool,
    /// A MESSAGE given as bytes becomes a string.
    pub convert_message_bytes: bool,
}

/// A parsed entry: its record and where it is in the journal.
#[derive(Debug)]
pub struct Entry {
    pub record: LogRecord,
    pub cursor: String,
}

/// Parses one line (without its newline).
pub fn parse(line: &[u8], shape: Shape) -> Result<Entry, String> {
    let mut fields: serde_json::Map<String, Json> =
        serde_json::from_slice(line).map_err(|e| format!("not a journal entry in JSON: {e}"))?;
    let Some(Json::String(cursor)) = fields.remove("__CURSOR") else {
        return Err("the entry has no __CURSOR".into());
    };
    let micros = match fields.remove("__REALTIME_TIMESTAMP") {
        Some(Json::String(text)) => {
            text.parse::<u64>().map_err(|_| format!("__REALTIME_TIMESTAMP `{text}` is not a number"))?
        }
        _ => return Err("the entry has no __REALTIME_TIMESTAMP".into()),
    };
    let mut record =
        LogRecord { time_unix_nano: micros.saturating_mul(1000), observed_time_unix_nano: now(), ..Default::default() };
    if shape.parse_fields {
        if let Some(message) = fields.remove("MESSAGE") {
            record.body = Some(text_value(message));
        }
        if let Some(Json::String(priority)) = fields.remove("PRIORITY")
            && let Some((number, text)) = severity(&priority)
        {
            record.severity_number = number;
            record.severity_text = text.into();
        }
        record.attributes = fields
            .into_iter()
            .filter(|(name, _)| !name.starts_with("__"))
            .map(|(key, value)| KeyValue { key, value: Some(from_json(value, true)), ..Default::default() })
            .collect();
    } else {
        // The whole entry is the body, as upstream writes it (the cursor included).
        fields.insert("__CURSOR".into(), Json::String(cursor.clone()));
        let mut body: Vec<KeyValue> = fields
            .into_iter()
            .map(|(key, value)| {
                let value = if key == "MESSAGE" && shape.convert_message_bytes {
                    text_value(value)
                } else {
                    from_json(value, true)
                };
                KeyValue { key, value: Some(value), ..Default::default() }
            })
            .collect();
        body.sort_by(|a, b| a.key.cmp(&b.key));
        record.body = Some(AnyValue {
            value: Some(Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList { values: body })),
        });
    }
    Ok(Entry { record, cursor })
}

/// A value as text: a string as it is, bytes (a list of numbers) as UTF-8 with invalid
/// sequences replaced; anything else as journalctl gave it.
fn text_value(value: Json) -> AnyValue {
    match value {
        Json::Array(items) if items.iter().all(Json::is_u64) => {
            let bytes: Vec<u8> = items.iter().filter_map(Json::as_u64).map(|b| b as u8).collect();
            AnyValue { value: Some(Value::StringValue(String::from_utf8_lossy(&bytes).into_owned())) }
        }
        other => from_json(other, true),
    }
}

/// Syslog's PRIORITY as the OpenTelemetry severity, as upstream maps it.
fn severity(priority: &str) -> Option<(i32, &'static str)> {
    Some(match priority {
        "0" => (21, "fatal"),
        "1" => (19, "error3"),
        "2" => (18, "error2"),
        "3" => (17, "error"),
        "4" => (13, "warn"),
        "5" => (10, "info2"),
        "6" => (9, "info"),
        "7" => (5, "debug"),
        _ => return None,
    })
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1796311217740037","__MONOTONIC_TIMESTAMP":"1000","MESSAGE":"hello","PRIORITY":"3","_SYSTEMD_UNIT":"app.service","SYSLOG_IDENTIFIER":"app","BLOB":[104,105,0]}"#;

    fn body_map(record: &LogRecord) -> Vec<(String, Option<Value>)> {
        let Some(Value::KvlistValue(list)) = record.body.as_ref().and_then(|b| b.value.clone()) else {
            panic!("no map body: {record:?}")
        };
        list.values.into_iter().map(|kv| (kv.key, kv.value.and_then(|v| v.value))).collect()
    }

    #[test]
    fn the_whole_entry_is_the_body_as_upstream() {
        let entry = parse(LINE.as_bytes(), Shape::default()).unwrap();
        assert_eq!(entry.cursor, "s=1;i=2");
        assert_eq!(entry.record.time_unix_nano, 1_796_311_217_740_037_000);
        let body = body_map(&entry.record);
        let keys: Vec<&str> = body.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["BLOB", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT", "__CURSOR", "__MONOTONIC_TIMESTAMP"]
        );
        assert!(matches!(&body[0].1, Some(Value::ArrayValue(a)) if a.values.len() == 3), "bytes stay numbers");
        assert_eq!(body[1].1, Some(Value::StringValue("hello".into())));
        assert_eq!(entry.record.severity_number, 0, "no severity unless parse_fields");
    }

    #[test]
    fn parse_fields_makes_the_message_the_body_and_the_priority_the_severity() {
        let entry = parse(LINE.as_bytes(), Shape { parse_fields: true, convert_message_bytes: false }).unwrap();
        let record = entry.record;
        assert_eq!(record.body.and_then(|b| b.value), Some(Value::StringValue("hello".into())));
        assert_eq!((record.severity_number, record.severity_text.as_str()), (17, "error"));
        let keys: Vec<&str> = record.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["BLOB", "SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT"], "address fields left out");
    }

    #[test]
    fn a_message_in_bytes_becomes_text_when_asked() {
        let line = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[104,255,105]}"#;
        let entry = parse(line.as_bytes(), Shape { parse_fields: false, convert_message_bytes: true }).unwrap();
        let body = body_map(&entry.record);
        assert_eq!(body[0], ("MESSAGE".into(), Some(Value::StringValue("h\u{fffd}i".into()))));
        let entry = parse(line.as_bytes(), Shape { parse_fields: true, convert_message_bytes: false }).unwrap();
        assert_eq!(entry.record.body.and_then(|b| b.value), Some(Value::StringValue("h\u{fffd}i".into())));
    }

    #[test]
    fn bad_lines_are_refused_with_the_reason() {
        for (line, reason) in [
            ("not json", "not a journal entry"),
            (r#"{"__REALTIME_TIMESTAMP":"1"}"#, "no __CURSOR"),
            (r#"{"__CURSOR":"c"}"#, "no __REALTIME_TIMESTAMP"),
            (r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"soon"}"#, "not a number"),
            (r#"["__CURSOR"]"#, "not a journal entry"),
        ] {
            let error = parse(line.as_bytes(), Shape::default()).unwrap_err();
            assert!(error.contains(reason), "{line}: {error}");
        }
    }
}
