//! OTLP logs (any protobuf) → Loki streams → push requests: no panic, and every request
//! decodes through snappy and is byte for byte what prost would write, with what Loki checks: label names valid and
//! unique, entries in time order per stream, every entry accounted for.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ocelot::config::ComponentId;
use ocelot::exporters::loki::proto::PushRequest;
use ocelot::exporters::loki::{LokiConfig, LokiExporter};
use ocelot::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

static EXPORTER: OnceLock<LokiExporter> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ExportLogsServiceRequest::decode(data) else { return };
    let exporter = EXPORTER.get_or_init(|| {
        let node = ocelot::config::node::parse(
            "loki.yaml",
            "endpoint: http://127.0.0.1:1/loki/api/v1/push\nmax_request_size: 2kb\nmax_streams: 20\nlabels: {static: {env: fuzz}}\n",
        )
        .expect("yaml");
        let config: LokiConfig = ocelot::config::de::from_node(&node).expect("config");
        let telemetry: Arc<Telemetry> = Telemetry::new();
        LokiExporter::new(&ComponentId::parse("loki").expect("id"), &config, &telemetry).expect("exporter")
    });
    let records: usize =
        request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum();
    let mut entries = 0;
    for push in exporter.build_requests(&request) {
        let raw = snap::raw::Decoder::new().decompress_vec(&push.body).expect("unsnappy");
        let back = PushRequest::decode(raw.as_slice()).expect("decodes");
        assert_eq!(back.encode_to_vec(), raw, "encoded as prost encodes it");
        let in_push: usize = back.streams.iter().map(|s| s.entries.len()).sum();
        assert_eq!(in_push as u64, push.entries);
        for stream in &back.streams {
            assert!(stream.labels.starts_with('{') && stream.labels.ends_with('}'));
            let times: Vec<u64> = stream.entries.iter().map(|e| e.timestamp.map_or(0, |t| t.as_nanos())).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "entries in time order");
            entries += stream.entries.len();
        }
    }
    assert_eq!(entries, records, "every record is one entry");
});
