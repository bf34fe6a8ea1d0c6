//! The `probabilistic_sampler` processor, with upstream's options: keeps
//! `sampling_percentage` of spans and log records, consistently, so every span of a
//! trace (and every log of it) is kept or dropped alike wherever it is sampled.
//!
//! Modes as upstream: `hash_seed` (FNV-1a of the seed and the trace id, 14 bits
//! against the percentage; the default when `hash_seed` is set or logs are sampled by
//! a record attribute), and the OpenTelemetry consistent-probability modes
//! `proportional` (the default otherwise) and `equalizing`, which take the trace's
//! randomness from its id (or `rv` in the `ot` tracestate) and write the threshold
//! they applied (`th`) into the span's tracestate, so a later stage can count what
//! each kept span stands for. Logs are sampled by trace id or, with
//! `attribute_source: record`, by the value of `from_attribute`;
//! `sampling_priority` names a record attribute that overrides the percentage.
//! When no randomness can be found, `fail_closed` (default true) drops the item.
//!
//! Metrics are ocelot's addition: a resource's data points in one scrape are kept or
//! dropped together (hashed by the resource and its first timestamp), so a sampled
//! pipeline keeps that share of scrapes of each series, not that share of series.
//! A dropped item is a deliberate drop: its acknowledgement is done.

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use serde::Deserialize;

use super::Processor;
use crate::component::Validate;
use crate::ottl::record::{Item, Kind, Point};
use crate::ottl::walk;
use crate::pdata::{Batch, Payload};

pub const TYPE: &str = "probabilistic_sampler";

const NUM_HASH_BUCKETS: u32 = 0x4000;
const MAX_THRESHOLD: u64 = 1 << 56;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticSamplerConfig {
    /// The share kept, in percent.
    #[serde(default)]
    pub sampling_percentage: f64,
    /// The seed of the `hash_seed` mode's hash.
    #[serde(default)]
    pub hash_seed: u32,
    /// hash_seed, proportional or equalizing.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Hex digits of the threshold written to tracestate (1–14). Default 4.
    #[serde(default = "default_precision")]
    pub sampling_precision: u8,
    /// Drop an item whose randomness cannot be found. Default true.
    #[serde(default = "default_true")]
    pub fail_closed: bool,
    /// Logs: `traceID` (default) or `record` (the `from_attribute` value).
    #[serde(default)]
    pub attribute_source: AttributeSource,
    #[serde(default)]
    pub from_attribute: String,
    /// Logs: a record attribute whose number is that record's percentage.
    #[serde(default)]
    pub sampling_priority: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    HashSeed,
    Proportional,
    Equalizing,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AttributeSource {
    #[default]
    #[serde(rename = "traceID")]
    TraceId,
    #[serde(rename = "record")]
    Record,
}

fn default_precision() -> u8 {
    4
}

fn default_true() -> bool {
    true
}

impl Validate for ProbabilisticSamplerConfig {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.sampling_percentage) {
            return Err(format!("sampling rate is out of range: {}", self.sampling_percentage));
        }
        if !(1..=14).contains(&self.sampling_precision) {
            return Err(format!("sampling precision must be between 1 and 14, not {}", self.sampling_precision));
        }
        if self.attribute_source == AttributeSource::Record && self.from_attribute.is_empty() {
            return Err("attribute_source: record needs from_attribute".into());
        }
        if self.attribute_source == AttributeSource::Record && self.mode() != Mode::HashSeed {
            return Err("attribute_source: record works in the hash_seed mode only".into());
        }
        Ok(())
    }
}

impl ProbabilisticSamplerConfig {
    /// Upstream's default: hash_seed when a seed or record attributes are used.
    fn mode(&self) -> Mode {
        self.mode.unwrap_or(if self.hash_seed != 0 || self.attribute_source == AttributeSource::Record {
            Mode::HashSeed
        } else {
            Mode::Proportional
        })
    }
}

/// FNV-1a over the seed (little endian) and `bytes`, as upstream.
fn fnv(seed: u32, bytes: &[u8]) -> u32 {
    fnv1a(seed.to_le_bytes().iter().chain(bytes))
}

fn fnv1a<'a>(bytes: impl Iterator<Item = &'a u8>) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The `ot` tracestate entry's `th` and `rv`, as 56-bit numbers.
fn ot_values(tracestate: &str) -> (Option<u64>, Option<u64>) {
    let Some(ot) = tracestate.split(',').map(str::trim).find_map(|e| e.strip_prefix("ot=")) else {
        return (None, None);
    };
    let (mut th, mut rv) = (None, None);
    for field in ot.split(';') {
        if let Some(v) = field.strip_prefix("th:") {
            th = parse_threshold(v);
        } else if let Some(v) = field.strip_prefix("rv:")
            && v.len() == 14
        {
            rv = u64::from_str_radix(v, 16).ok();
        }
    }
    (th, rv)
}

/// A `th` value: up to 14 hex digits, zeros implied on the right.
fn parse_threshold(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 14 {
        return None;
    }
    let n = u64::from_str_radix(v, 16).ok()?;
    Some(n << (4 * (14 - v.len())))
}

fn format_threshold(t: u64) -> String {
    if t == 0 {
        return "0".into();
    }
    let text = format!("{t:014x}");
    text.trim_end_matches('0').to_string()
}

/// `tracestate` with `th:<t>` set in its `ot` entry.
fn with_threshold(tracestate: &str, t: u64) -> String {
    let th = format!("th:{}", format_threshold(t));
    let mut entries: Vec<String> =
        tracestate.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
    match entries.iter_mut().find(|e| e.starts_with("ot=")) {
        Some(ot) => {
            let fields: Vec<&str> = ot[3..].split(';').filter(|f| !f.starts_with("th:") && !f.is_empty()).collect();
            let rest = fields.join(";");
            *ot = if rest.is_empty() { format!("ot={th}") } else { format!("ot={th};{rest}") };
        }
        None => entries.insert(0, format!("ot={th}")),
    }
    entries.join(",")
}

pub struct ProbabilisticSampler {
    mode: Mode,
    percentage: f64,
    seed: u32,
    precision: u8,
    fail_closed: bool,
    source: AttributeSource,
    from_attribute: String,
    priority: String,
    /// [kept, dropped] by signal index.
    counts: [[Counter; 2]; 3],
}

impl ProbabilisticSampler {
    pub fn new(config: &ProbabilisticSamplerConfig, counts: [[Counter; 2]; 3]) -> ProbabilisticSampler {
        ProbabilisticSampler {
            mode: config.mode(),
            percentage: config.sampling_percentage,
            seed: config.hash_seed,
            precision: config.sampling_precision,
            fail_closed: config.fail_closed,
            source: config.attribute_source,
            from_attribute: config.from_attribute.clone(),
            priority: config.sampling_priority.clone(),
            counts,
        }
    }

    /// The threshold for `percentage` under this mode given an existing one, rounded
    /// up to `precision` hex digits so the written `th` is what was applied.
    fn threshold(&self, percentage: f64, existing: Option<u64>) -> u64 {
        let wanted = percentage / 100.0;
        let before = existing.map_or(1.0, |t| 1.0 - t as f64 / MAX_THRESHOLD as f64);
        let p = match self.mode {
            Mode::Proportional => before * wanted,
            _ => before.min(wanted),
        };
        let t = ((1.0 - p) * MAX_THRESHOLD as f64).round().clamp(0.0, MAX_THRESHOLD as f64) as u64;
        let unit = 1u64 << (4 * (14 - u32::from(self.precision)));
        t.div_ceil(unit).saturating_mul(unit).min(MAX_THRESHOLD)
    }

    fn hash_keep(&self, id: &[u8], percentage: f64) -> bool {
        let scaled = (percentage / 100.0 * f64::from(NUM_HASH_BUCKETS)) as u32;
        fnv(self.seed, id) & (NUM_HASH_BUCKETS - 1) < scaled
    }

    /// A span's fate and the tracestate to write if kept (consistent modes).
    fn span(&self, trace_id: &[u8], tracestate: &str) -> (bool, Option<String>) {
        let valid = trace_id.len() == 16 && trace_id.iter().any(|&b| b != 0);
        if self.mode == Mode::HashSeed {
            return match valid {
                true => (self.hash_keep(trace_id, self.percentage), None),
                false => (!self.fail_closed, None),
            };
        }
        let (th, rv) = ot_values(tracestate);
        let randomness =
            rv.or_else(|| valid.then(|| trace_id[9..].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))));
        let Some(r) = randomness else { return (!self.fail_closed, None) };
        let t = self.threshold(self.percentage, th);
        if t >= MAX_THRESHOLD || r < t {
            return (false, None);
        }
        (true, (th != Some(t)).then(|| with_threshold(tracestate, t)))
    }

    fn log_percentage(&self, attributes: &[KeyValue]) -> f64 {
        if self.priority.is_empty() {
            return self.percentage;
        }
        let value =
            attributes.iter().find(|kv| kv.key == self.priority).and_then(|kv| kv.value.as_ref()?.value.as_ref());
        match value {
            Some(any_value::Value::DoubleValue(d)) => d.clamp(0.0, 100.0),
            Some(any_value::Value::IntValue(i)) => (*i as f64).clamp(0.0, 100.0),
            _ => self.percentage,
        }
    }

    fn log(&self, record: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> bool {
        let percentage = self.log_percentage(&record.attributes);
        if percentage <= 0.0 {
            return false;
        }
        if percentage >= 100.0 {
            return true;
        }
        let id: Option<Vec<u8>> = match self.source {
            AttributeSource::TraceId => {
                Some(record.trace_id.clone()).filter(|t| t.len() == 16 && t.iter().any(|&b| b != 0))
            }
            AttributeSource::Record => record
                .attributes
                .iter()
                .find(|kv| kv.key == self.from_attribute)
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    any_value::Value::StringValue(s) => s.as_bytes().to_vec(),
                    any_value::Value::BytesValue(b) => b.clone(),
                    other => format!("{other:?}").into_bytes(),
                }),
        };
        let Some(id) = id else { return !self.fail_closed };
        match self.mode {
            Mode::HashSeed => self.hash_keep(&id, percentage),
            _ => {
                let r = id[9..].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                let t = self.threshold(percentage, None);
                t < MAX_THRESHOLD && r >= t
            }
        }
    }
}

impl Processor for ProbabilisticSampler {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let signal = batch.signal();
        let before = batch.payload.item_count() as u64;
        if self.percentage >= 100.0 && self.priority.is_empty() && self.mode == Mode::HashSeed {
            self.counts[signal.index()][0].inc_by(before);
            out.push(batch);
            return;
        }
        match batch.payload_mut() {
            Payload::Traces(request) => {
                for r in &mut request.resource_spans {
                    for s in &mut r.scope_spans {
                        s.spans.retain_mut(|span| {
                            let (keep, state) = self.span(&span.trace_id, &span.trace_state);
                            if let Some(state) = state {
                                span.trace_state = state;
                            }
                            keep
                        });
                    }
                    r.scope_spans.retain(|s| !s.spans.is_empty());
                }
                request.resource_spans.retain(|r| !r.scope_spans.is_empty());
            }
            payload @ Payload::Logs(_) => {
                let _ = walk::retain(payload, Kind::Log, &mut |record| match record.item {
                    Item::Log(l) => Ok(!self.log(l)),
                    _ => Ok(false),
                });
            }
            Payload::Metrics(request) => {
                let percentage = self.percentage;
                request.resource_metrics.retain(|r| {
                    let mut key = r.resource.as_ref().map(Message::encode_to_vec).unwrap_or_default();
                    let first = r.scope_metrics.iter().flat_map(|s| &s.metrics).find_map(|m| {
                        crate::ottl::record::point(m, 0).map(|p| match p {
                            Point::Number(p) => p.time_unix_nano,
                            Point::Histogram(p) => p.time_unix_nano,
                            Point::Exponential(p) => p.time_unix_nano,
                            Point::Summary(p) => p.time_unix_nano,
                        })
                    });
                    key.extend_from_slice(&first.unwrap_or(0).to_le_bytes());
                    self.hash_keep(&key, percentage)
                });
            }
        }
        let after = batch.payload.item_count() as u64;
        self.counts[signal.index()][0].inc_by(after);
        self.counts[signal.index()][1].inc_by(before - after);
        if after > 0 {
            out.push(batch);
        }
    }
}

/// For the fuzz target: decides a span at `percentage` in each consistent mode and
/// checks the tracestate written reads back with the threshold that was applied.
pub fn fuzz_decide(percentage: f64, trace_id: &[u8], tracestate: &str) {
    for mode in [Mode::Proportional, Mode::Equalizing, Mode::HashSeed] {
        let config = ProbabilisticSamplerConfig {
            sampling_percentage: percentage.clamp(0.0, 100.0),
            hash_seed: 0,
            mode: Some(mode),
            sampling_precision: 4,
            fail_closed: true,
            attribute_source: AttributeSource::TraceId,
            from_attribute: String::new(),
            sampling_priority: String::new(),
        };
        let sampler = ProbabilisticSampler::new(&config, Default::default());
        let (kept, written) = sampler.span(trace_id, tracestate);
        if let Some(written) = written {
            assert!(kept, "a tracestate is written only for a kept span");
            let (th, _) = ot_values(&written);
            assert!(th.is_some_and(|t| t < MAX_THRESHOLD), "{written}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(yaml: &str) -> ProbabilisticSampler {
        let node = crate::config::node::parse("p.yaml", yaml).unwrap();
        let config: ProbabilisticSamplerConfig = crate::component::parse_config(&node).unwrap();
        ProbabilisticSampler::new(&config, Default::default())
    }

    fn ids(n: u64) -> impl Iterator<Item = [u8; 16]> {
        (1..=n).map(|i| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            id[8..].copy_from_slice(&i.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).to_be_bytes());
            id
        })
    }

    #[test]
    fn fnv_is_upstreams() {
        // The published FNV-1a 32 test vectors.
        assert_eq!(fnv1a(b"a".iter()), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar".iter()), 0xbf9c_f968);
        // The seed goes first, little endian.
        assert_eq!(fnv(0x0403_0201, b"a"), fnv1a([1u8, 2, 3, 4, b'a'].iter()));
    }

    #[test]
    fn modes_keep_about_the_share() {
        for yaml in [
            "sampling_percentage: 10\nhash_seed: 22",
            "sampling_percentage: 10",
            "sampling_percentage: 10\nmode: equalizing",
        ] {
            let s = sampler(yaml);
            let kept = ids(20_000).filter(|id| s.span(id, "").0).count();
            assert!((1700..2300).contains(&kept), "{yaml}: {kept}");
        }
        let s = sampler("sampling_percentage: 0");
        assert_eq!(ids(1000).filter(|id| s.span(id, "").0).count(), 0);
        let s = sampler("sampling_percentage: 100");
        assert_eq!(ids(1000).filter(|id| s.span(id, "").0).count(), 1000);
    }

    #[test]
    fn proportional_writes_the_threshold_and_multiplies() {
        let s = sampler("sampling_percentage: 50");
        let id = ids(100).find(|id| s.span(id, "").0).unwrap();
        let (kept, state) = s.span(&id, "vendor=x");
        assert!(kept);
        assert_eq!(state.as_deref(), Some("ot=th:8,vendor=x"));
        // Sampled again at 50 %: 25 % overall, th 0xc.
        let t = s.threshold(50.0, parse_threshold("8"));
        assert_eq!(format_threshold(t), "c");
        assert_eq!(with_threshold("ot=rv:abcdef01234567;th:8", t), "ot=th:c;rv:abcdef01234567");
        // Equalizing keeps a lower probability as it is.
        let e = sampler("sampling_percentage: 50\nmode: equalizing");
        assert_eq!(format_threshold(e.threshold(50.0, parse_threshold("c"))), "c");
        assert_eq!(ot_values("ot=th:c;rv:00000000000001").1, Some(1));
    }

    #[test]
    fn no_trace_id_fails_closed_unless_told() {
        assert!(!sampler("sampling_percentage: 50").span(&[0; 16], "").0);
        assert!(sampler("sampling_percentage: 50\nfail_closed: false").span(&[], "").0);
    }

    #[test]
    fn config_checks() {
        let err = |yaml: &str| {
            let node = crate::config::node::parse("p.yaml", yaml).unwrap();
            crate::component::parse_config::<ProbabilisticSamplerConfig>(&node).unwrap_err().message
        };
        assert!(err("sampling_percentage: 101").contains("out of range"));
        assert!(err("sampling_percentage: 1\nattribute_source: record").contains("from_attribute"));
        assert!(err("sampling_percentage: 1\nsampling_precision: 15").contains("precision"));
    }
}
