//! The `hostmetrics` receiver: host metrics read from `/proc` (and `statvfs` for
//! mounts) under a `root_path` (a host's `/` mounted into a container at `/hostfs`),
//! with the upstream receiver's scrapers, metric names and per-metric toggles, and a
//! bounded `process` scraper.
//!
//! Each scrape is blocking file I/O, so it runs on the blocking pool; one scrape of
//! all scrapers becomes one batch.

pub mod config;
pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod filter;
pub mod load;
pub mod memory;
pub mod network;
pub mod paging;
pub mod process;
pub mod processes;
pub mod procfs;
mod run;
pub mod system;

use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum, metric::Data, number_data_point,
};

pub use config::HostmetricsConfig;
pub use run::{Report, Scrape, start};

pub const TYPE: &str = "hostmetrics";

/// The metrics a scraper emits, resolved from its defaults and the `metrics:` toggles.
#[derive(Clone, Debug)]
pub struct Toggles(Vec<&'static str>);

impl Toggles {
    /// `known` is (name, on by default); toggles for unknown names were refused when
    /// the config was checked.
    pub fn new(known: &[(&'static str, bool)], config: &config::MetricToggles) -> Toggles {
        Toggles(
            known
                .iter()
                .filter(|(name, default)| config.get(*name).map_or(*default, |t| t.enabled))
                .map(|(name, _)| *name)
                .collect(),
        )
    }

    pub fn on(&self, name: &str) -> bool {
        self.0.contains(&name)
    }

    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// What every scraper is told about the scrape: where the host is, when it booted
/// (the start of its cumulative series) and the time of the scrape, in ns.
pub struct Tick<'a> {
    pub root: &'a Path,
    pub boot: u64,
    pub now: u64,
    /// `/proc/stat`, read once per scrape for the scrapers that need it.
    stat: std::cell::OnceCell<Result<String, String>>,
}

impl<'a> Tick<'a> {
    pub fn new(root: &'a Path, boot: u64, now: u64) -> Tick<'a> {
        Tick { root, boot, now, stat: std::cell::OnceCell::new() }
    }

    /// The same scrape at another time (the process table is walked later).
    pub fn at(&self, now: u64) -> Tick<'a> {
        Tick::new(self.root, self.boot, now)
    }

    /// `/proc/stat` of this scrape (cpu, load and processes read it).
    pub fn stat(&self) -> Result<&str, String> {
        self.stat.get_or_init(|| read_proc(self.root, "stat")).as_deref().map_err(Clone::clone)
    }
}

/// The instrumentation scope of a scraper, named as upstream's so that rules that
/// select on it keep working.
pub fn scope(scraper: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: format!(
            "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/hostmetricsreceiver/internal/scraper/{scraper}scraper"
        ),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Where the host's `/proc` is: `<root_path>/proc`.
pub fn proc_path(root_path: &Path) -> PathBuf {
    root_path.join("proc")
}

/// Reads a `/proc` file under `root_path`, naming it in the error. Bytes that are not
/// UTF-8 (in a mount point, an interface name) are replaced, not an error.
pub fn read_proc(root_path: &Path, name: &str) -> Result<String, String> {
    read_text(&proc_path(root_path).join(name))
}

/// A text file, lossily decoded.
pub fn read_text(path: &Path) -> Result<String, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The boot time (`btime` of `/proc/stat`) in ns since the epoch.
pub fn boot_time(root_path: &Path) -> Result<u64, String> {
    let stat = read_proc(root_path, "stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s * 1_000_000_000)
        .ok_or_else(|| "/proc/stat has no btime line".to_string())
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

/// The points of a gauge or sum as (attributes as text, value): for tests and
/// debugging output.
pub fn values(metric: &Metric) -> Vec<(Vec<(String, String)>, f64)> {
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
