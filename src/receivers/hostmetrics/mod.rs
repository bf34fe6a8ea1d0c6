//! Host metrics read from `/proc` under a `root_path` (a host's `/proc` mounted into a
//! container at `/hostfs/proc`), as the upstream `hostmetrics` receiver's scrapers
//! name them. These are the readers and metric builders of the system scrapers; the
//! receiver that schedules them is being built on them (issue 5).

pub mod cpu;
pub mod load;
pub mod memory;

use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum, metric::Data, number_data_point,
};

/// Where the host's `/proc` is: `<root_path>/proc`.
pub fn proc_path(root_path: &Path) -> PathBuf {
    root_path.join("proc")
}

/// Reads a `/proc` file under `root_path`, naming it in the error.
pub fn read_proc(root_path: &Path, name: &str) -> Result<String, String> {
    let path = proc_path(root_path).join(name);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// A data point at `time` (ns), for a series that started at `start`.
pub(crate) fn point(value: f64, attributes: Vec<KeyValue>, start: u64, time: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

pub(crate) fn int_point(value: i64, attributes: Vec<KeyValue>, start: u64, time: u64) -> NumberDataPoint {
    NumberDataPoint { value: Some(number_data_point::Value::AsInt(value)), ..point(0.0, attributes, start, time) }
}

/// A cumulative sum.
pub(crate) fn sum(name: &str, description: &str, unit: &str, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

pub(crate) fn gauge(name: &str, description: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(Data::Gauge(Gauge { data_points: points })),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostfs")
}

#[cfg(test)]
pub(crate) fn values(metric: &Metric) -> Vec<(Vec<(String, String)>, f64)> {
    let points = match &metric.data {
        Some(Data::Sum(s)) => &s.data_points,
        Some(Data::Gauge(g)) => &g.data_points,
        _ => return Vec::new(),
    };
    points
        .iter()
        .map(|p| {
            let attrs = p
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), crate::pdata::prometheus::text(kv.value.as_ref())))
                .collect();
            let v = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => f64::NAN,
            };
            (attrs, v)
        })
        .collect()
}
