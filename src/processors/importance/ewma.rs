//! The EWMA state: per identity key (a process name), the exponentially weighted
//! averages of its CPU and memory readings, and when it was last seen. Kept across
//! restarts in one state file, written atomically; forgotten after `ttl`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, metric, number_data_point};
use serde::{Deserialize, Serialize};

use super::config::EwmaConfig;

/// Keys kept at most: past this the least recently seen are forgotten first, so a
/// host that churns through unique names cannot grow the state without bound.
pub const MAX_KEYS: usize = 100_000;

const MIB: f64 = 1048576.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Average {
    /// The utilization ratio's average (0..1 of the machine).
    pub cpu: f64,
    /// Bytes.
    pub memory: f64,
    /// Seconds since the Unix epoch.
    pub seen: u64,
}

/// What one batch said about one key: the largest reading among its resources.
#[derive(Clone, Copy, Debug, Default)]
struct Reading {
    cpu: Option<f64>,
    memory: Option<f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    keys: Vec<(String, Average)>,
}

#[derive(Default)]
pub struct State {
    averages: HashMap<String, Average>,
    /// Changed since the last checkpoint.
    pub dirty: bool,
}

pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Which unit a metric feeds: `1` is a utilization ratio (CPU), `By` bytes (memory).
enum Feeds {
    Cpu,
    Memory,
}

fn feeds(unit: &str) -> Option<Feeds> {
    match unit {
        "1" => Some(Feeds::Cpu),
        "By" => Some(Feeds::Memory),
        _ => None,
    }
}

impl State {
    pub fn new() -> State {
        State { averages: HashMap::new(), dirty: false }
    }

    pub fn is_empty(&self) -> bool {
        self.averages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.averages.len()
    }

    pub fn get(&self, key: &str) -> Option<&Average> {
        self.averages.get(key)
    }

    /// Folds one batch's readings in: for each key, the sum over its data points of a
    /// metric (the CPU states add up to the process's use), the largest over the
    /// resources that carry the key. Returns the data points that held no number.
    pub fn observe(&mut self, config: &EwmaConfig, resources: &[ResourceMetrics], now: u64) -> u64 {
        let mut readings: HashMap<&str, Reading> = HashMap::new();
        let mut not_numeric = 0;
        for r in resources {
            let Some(key) = r.resource.as_ref().and_then(|res| string_attribute(&res.attributes, &config.key)) else {
                continue;
            };
            let mut cpu = None::<f64>;
            let mut memory = None::<f64>;
            for m in r.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if !config.metrics.iter().any(|name| name == &m.name) {
                    continue;
                }
                let Some(target) = feeds(&m.unit) else { continue };
                let points = match &m.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => &s.data_points,
                    _ => {
                        not_numeric += 1;
                        continue;
                    }
                };
                let mut sum = 0.0;
                for p in points {
                    match p.value {
                        Some(number_data_point::Value::AsDouble(d)) if d.is_finite() => sum += d,
                        Some(number_data_point::Value::AsInt(i)) => sum += i as f64,
                        _ => not_numeric += 1,
                    }
                }
                let slot = match target {
                    Feeds::Cpu => &mut cpu,
                    Feeds::Memory => &mut memory,
                };
                *slot = Some(slot.unwrap_or(0.0) + sum);
            }
            if cpu.is_none() && memory.is_none() {
                continue;
            }
            let entry = readings.entry(key).or_default();
            entry.cpu = max(entry.cpu, cpu);
            entry.memory = max(entry.memory, memory);
        }
        let alpha = config.alpha;
        for (key, reading) in readings {
            // A new key starts from nothing: one reading moves it by alpha only, so
            // a spike does not raise it; sustained use does.
            let average = self.averages.entry(key.to_string()).or_default();
            if let Some(cpu) = reading.cpu {
                average.cpu = alpha * cpu + (1.0 - alpha) * average.cpu;
            }
            if let Some(memory) = reading.memory {
                average.memory = alpha * memory + (1.0 - alpha) * average.memory;
            }
            average.seen = now;
            self.dirty = true;
        }
        if self.averages.len() > MAX_KEYS {
            self.evict_to(MAX_KEYS);
        }
        not_numeric
    }

    /// The highest raise score the key's averages reach.
    pub fn raise(&self, config: &EwmaConfig, key: &str) -> Option<f64> {
        let average = self.averages.get(key)?;
        config
            .raise
            .iter()
            .filter(|r| {
                r.cpu_percent.is_some_and(|t| average.cpu * 100.0 >= t)
                    || r.memory_mib.is_some_and(|t| average.memory / MIB >= t)
            })
            .map(|r| r.score)
            .fold(None, |best, s| Some(best.map_or(s, |b: f64| b.max(s))))
    }

    /// Forgets keys not seen within `ttl` of `now`.
    pub fn expire(&mut self, ttl: Duration, now: u64) {
        let before = self.averages.len();
        let ttl = ttl.as_secs();
        self.averages.retain(|_, a| now.saturating_sub(a.seen) <= ttl);
        if self.averages.len() != before {
            self.dirty = true;
        }
    }

    fn evict_to(&mut self, keep: usize) {
        let mut seen: Vec<u64> = self.averages.values().map(|a| a.seen).collect();
        seen.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&cutoff) = seen.get(keep) else { return };
        self.averages.retain(|_, a| a.seen > cutoff);
        self.dirty = true;
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut keys: Vec<(String, Average)> = self.averages.iter().map(|(k, a)| (k.clone(), *a)).collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        serde_json::to_vec(&Stored { version: 1, keys }).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<State, String> {
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| format!("not the EWMA state: {e}"))?;
        if stored.version != 1 {
            return Err(format!("unknown EWMA state version {}", stored.version));
        }
        let averages: HashMap<String, Average> = stored
            .keys
            .into_iter()
            .filter(|(_, a)| a.cpu.is_finite() && a.memory.is_finite() && a.cpu >= 0.0 && a.memory >= 0.0)
            .collect();
        Ok(State { averages, dirty: false })
    }
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub fn string_attribute<'a>(
    attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<&'a str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}
