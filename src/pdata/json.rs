//! OTLP JSON (the OTLP/HTTP JSON encoding and the file exporter's lines): camelCase
//! names, hex trace and span ids, 64-bit integers as strings.

use super::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, Payload, Signal};

/// The payload as one line of OTLP JSON, with default values left out as the
/// collector's own JSON marshaler (and so its file exporter) writes it.
/// An attribute value as JSON text (for arrays and maps written as a label or a line):
/// `["a",1]`, `{"k":"v"}`; bytes as base64.
pub fn any_value_json(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> String {
    any_to_json(value).to_string()
}

pub fn any_to_json(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> serde_json::Value {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match &value.value {
        Some(Value::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Value::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Value::IntValue(i)) => serde_json::Value::from(*i),
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        Some(Value::BytesValue(b)) => serde_json::Value::String(base64(b)),
        Some(Value::ArrayValue(a)) => serde_json::Value::Array(a.values.iter().map(any_to_json).collect()),
        Some(Value::KvlistValue(m)) => serde_json::Value::Object(
            m.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(serde_json::Value::Null, any_to_json)))
                .collect(),
        ),
        Some(Value::StringValueStrindex(_)) | None => serde_json::Value::Null,
    }
}

/// Lowercase hex, two digits a byte (trace and span ids, fingerprints).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn to_json_line(payload: &Payload) -> String {
    let result = match payload {
        Payload::Traces(r) => serde_json::to_value(r),
        Payload::Metrics(r) => serde_json::to_value(r),
        Payload::Logs(r) => serde_json::to_value(r),
    };
    // The OTLP types serialize without fail: no maps with non-string keys, no I/O.
    let Ok(mut value) = result else { return String::new() };
    omit_defaults(&mut value);
    value.to_string()
}

/// Fields whose zero value is data, not absence: the values of `AnyValue` and of data
/// points, and the optional `sum`, `min` and `max` of histograms.
const KEEP_ZERO: [&str; 10] =
    ["stringValue", "boolValue", "intValue", "doubleValue", "bytesValue", "asInt", "asDouble", "sum", "min", "max"];

/// Removes nulls, empty lists and strings, `false`, and zero numbers (also zero
/// 64-bit integers, which OTLP JSON writes as strings), except in [`KEEP_ZERO`].
fn omit_defaults(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            fields.retain(|key, field| {
                if KEEP_ZERO.contains(&key.as_str()) {
                    return true;
                }
                match field {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !(s.is_empty() || s == "0"),
                    Value::Array(items) => !items.is_empty(),
                    Value::Object(_) => true,
                }
            });
            for field in fields.values_mut() {
                omit_defaults(field);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(omit_defaults),
        _ => {}
    }
}

pub fn from_json(signal: Signal, bytes: &[u8]) -> Result<Payload, serde_json::Error> {
    Ok(match signal {
        Signal::Traces => Payload::Traces(serde_json::from_slice::<ExportTraceServiceRequest>(bytes)?),
        Signal::Metrics => Payload::Metrics(serde_json::from_slice::<ExportMetricsServiceRequest>(bytes)?),
        Signal::Logs => Payload::Logs(serde_json::from_slice::<ExportLogsServiceRequest>(bytes)?),
    })
}

/// Decodes an OTLP protobuf export request.
pub fn from_proto(signal: Signal, bytes: &[u8]) -> Result<Payload, prost::DecodeError> {
    use prost::Message;
    Ok(match signal {
        Signal::Traces => Payload::Traces(ExportTraceServiceRequest::decode(bytes)?),
        Signal::Metrics => Payload::Metrics(ExportMetricsServiceRequest::decode(bytes)?),
        Signal::Logs => Payload::Logs(ExportLogsServiceRequest::decode(bytes)?),
    })
}

/// Encodes the payload as an OTLP protobuf export request.
pub fn to_proto(payload: &Payload) -> Vec<u8> {
    use prost::Message;
    match payload {
        Payload::Traces(r) => r.encode_to_vec(),
        Payload::Metrics(r) => r.encode_to_vec(),
        Payload::Logs(r) => r.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::split::tests::logs;

    #[test]
    fn json_round_trip() {
        let payload = logs(&[&[2, 1]]);
        let line = to_json_line(&payload);
        assert!(line.starts_with("{\"resourceLogs\":["), "{line}");
        assert!(line.contains("\"intValue\":\"1\""), "{line}");
        assert_eq!(from_json(Signal::Logs, line.as_bytes()).unwrap(), payload);
    }

    #[test]
    fn defaults_are_left_out_as_upstream_writes_them() {
        let payload = crate::pdata::synthetic::payload(Signal::Traces, 1, 1, 1);
        let line = to_json_line(&payload);
        for absent in [
            "\"status\"",
            "\"traceState\"",
            "\"parentSpanId\"",
            "\"droppedAttributesCount\"",
            "\"events\"",
            "\"flags\"",
        ] {
            assert!(!line.contains(absent), "{absent} in {line}");
        }
        assert!(line.contains("\"kind\":2"), "{line}");
        assert_eq!(from_json(Signal::Traces, line.as_bytes()).unwrap(), payload);
        // A zero value that is data stays.
        let gauge = crate::pdata::synthetic::payload(Signal::Metrics, 1, 0, 1);
        let line = to_json_line(&gauge);
        assert!(line.contains("\"asDouble\":0.0"), "{line}");
        assert_eq!(from_json(Signal::Metrics, line.as_bytes()).unwrap(), gauge);
    }

    #[test]
    fn proto_round_trip() {
        let payload = logs(&[&[2], &[3]]);
        assert_eq!(from_proto(Signal::Logs, &to_proto(&payload)).unwrap(), payload);
    }
}
