//! OTLP metrics (any protobuf) → Prometheus series → remote-write requests: no panic,
//! and every request decodes back to itself through snappy, with what remote write
//! requires: label names valid, sorted and unique, samples in time order.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ocelot::exporters::prometheusremotewrite::proto::WriteRequest;
use ocelot::exporters::prometheusremotewrite::write_requests;
use ocelot::pdata::prometheus::delta::DeltaState;
use ocelot::pdata::prometheus::{Options, Translation, translate};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ExportMetricsServiceRequest::decode(data) else { return };
    let options = Options {
        namespace: "ns".into(),
        add_metric_suffixes: data.first().is_some_and(|b| b & 1 == 0),
        resource_to_telemetry: data.first().is_some_and(|b| b & 2 == 0),
        target_info: true,
        external_labels: vec![("cluster".into(), "c".into())],
    };
    let mut deltas = DeltaState::new(Duration::from_secs(300));
    let mut translation = Translation::default();
    // Twice: the second pass accumulates deltas onto the first.
    translate(&request, &options, &mut deltas, &mut translation);
    translate(&request, &options, &mut deltas, &mut translation);
    translation.sort_samples();
    for (write, _) in write_requests(translation, true, 4096) {
        let body = snap::raw::Encoder::new().compress_vec(&write.encode_to_vec()).expect("snappy");
        let raw = snap::raw::Decoder::new().decompress_vec(&body).expect("unsnappy");
        let back = WriteRequest::decode(raw.as_slice()).expect("decodes");
        assert_eq!(back.timeseries.len(), write.timeseries.len());
        for series in &back.timeseries {
            let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "labels sorted and unique: {names:?}");
            assert!(names.contains(&"__name__"));
            for label in &series.labels {
                let mut chars = label.name.chars();
                let first = chars.next().expect("a label name is not empty");
                assert!(first.is_ascii_alphabetic() || first == '_', "{}", label.name);
                assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'), "{}", label.name);
                assert!(!label.value.is_empty(), "empty label values are left out");
            }
            assert!(series.samples.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        }
    }
});
