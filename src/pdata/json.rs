//! OTLP JSON (the OTLP/HTTP JSON encoding and the file exporter's lines): camelCase
//! names, hex trace and span ids, 64-bit integers as strings.

use super::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, Payload, Signal};

/// The payload as one line of OTLP JSON.
pub fn to_json_line(payload: &Payload) -> String {
    let result = match payload {
        Payload::Traces(r) => serde_json::to_string(r),
        Payload::Metrics(r) => serde_json::to_string(r),
        Payload::Logs(r) => serde_json::to_string(r),
    };
    // The OTLP types serialize without fail: no maps with non-string keys, no I/O.
    result.unwrap_or_default()
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
    fn proto_round_trip() {
        let payload = logs(&[&[2], &[3]]);
        assert_eq!(from_proto(Signal::Logs, &to_proto(&payload)).unwrap(), payload);
    }
}
