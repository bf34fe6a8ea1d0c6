//! The `memory_limiter` processor: upstream's limits, and ocelot's progressive
//! degradation by importance below them.
//!
//! Upstream's part: the hard limit is `limit_mib` (or `limit_percentage` of the
//! cgroup's limit, else of the machine's memory), the soft limit `limit - spike`
//! (`spike_limit_mib`, default a fifth of the limit). From the soft limit on every
//! receiver in front of this processor's pipelines refuses new data as for a full
//! pipeline (the [`Gate`](crate::pipeline::governor::Gate) at their door), so what
//! is already accepted is never dropped for memory. Upstream measures the Go heap;
//! ocelot measures what the kernel charges the process.
//!
//! ocelot's part, `drop_levels`: below the soft limit, as memory passes each level's
//! `threshold_percent` of the limit, records are shed by their importance score
//! (`importance_attribute`, written by the `importance` processor): `drop_below: S`
//! drops records scored under S, `sample: {below: S, rate: R}` keeps the share R of
//! them (by trace id where there is one, so a trace's spans and logs share a fate),
//! `keep_only_above: S` keeps only records scored S or more, unscored ones
//! included in what goes. Levels add up as memory rises and are left with 5 points
//! of hysteresis. A shed record is a deliberate drop: its acknowledgement is done,
//! and a file tail does not read it again.
//!
//! This processor never blocks and never holds data; the governor's task does the
//! measuring.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tracing::warn;

use super::Processor;
use crate::component::Validate;
use crate::config::ComponentId;
use crate::config::types::ConfigDuration;
use crate::ottl::record::{Item, Kind, Record};
use crate::ottl::walk;
use crate::pdata::Batch;
use crate::pdata::score::{self, Score, Tier};
use crate::pipeline::governor::{Governor, Limiter, Limits};

pub const TYPE: &str = "memory_limiter";

const MIB: u64 = 1 << 20;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimiterConfig {
    /// How often memory is read. Upstream requires it (1s is its usual value);
    /// reading the kernel's figure costs one read, so ocelot defaults to 100ms.
    #[serde(default = "default_check_interval")]
    pub check_interval: ConfigDuration,
    /// The hard limit in MiB.
    #[serde(default)]
    pub limit_mib: u64,
    /// Room between the soft and the hard limit, in MiB. Default a fifth of the limit.
    #[serde(default)]
    pub spike_limit_mib: u64,
    /// The hard limit as a share of the cgroup's memory limit, else of the machine's.
    #[serde(default)]
    pub limit_percentage: u32,
    /// The spike room as a share of the same total. Default a fifth of the limit.
    #[serde(default)]
    pub spike_limit_percentage: u32,
    /// How often, at the soft limit (and, in ocelot, at a drop level), the allocator
    /// is asked to return freed memory.
    #[serde(default = "default_gc_soft")]
    pub min_gc_interval_when_soft_limited: ConfigDuration,
    /// … and at the hard limit (0: at every check).
    #[serde(default)]
    pub min_gc_interval_when_hard_limited: ConfigDuration,
    /// The attribute holding a record's importance score (record first, then resource).
    #[serde(default = "default_attribute")]
    pub importance_attribute: String,
    /// Degradation steps below the soft limit, in rising order of `threshold_percent`.
    #[serde(default)]
    pub drop_levels: Vec<DropLevel>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropLevel {
    /// The share of the hard limit (percent) from which this level applies.
    pub threshold_percent: f64,
    /// Drop records scored below this.
    #[serde(default)]
    pub drop_below: Option<f64>,
    /// Keep a share of the records scored below a score.
    #[serde(default)]
    pub sample: Option<SampleAction>,
    /// Keep only records scored this or more (unscored records go too).
    #[serde(default)]
    pub keep_only_above: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SampleAction {
    /// Records scored below this are sampled.
    pub below: f64,
    /// The share of them kept, in [0, 1].
    pub rate: f64,
}

fn default_check_interval() -> ConfigDuration {
    ConfigDuration::from_millis(100)
}

fn default_gc_soft() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn default_attribute() -> String {
    "importance".to_string()
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            check_interval: default_check_interval(),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
            min_gc_interval_when_soft_limited: default_gc_soft(),
            min_gc_interval_when_hard_limited: ConfigDuration::default(),
            importance_attribute: default_attribute(),
            drop_levels: Vec::new(),
        }
    }
}

impl Validate for MemoryLimiterConfig {
    fn validate(&self) -> Result<(), String> {
        if self.check_interval.0.is_zero() {
            return Err("'check_interval' must be greater than zero".into());
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            return Err("'limit_mib' or 'limit_percentage' must be greater than zero".into());
        }
        if self.limit_mib > 0 && self.limit_percentage > 0 {
            return Err("set 'limit_mib' or 'limit_percentage', not both".into());
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            return Err("'spike_limit_mib' must be smaller than 'limit_mib'".into());
        }
        if self.limit_percentage > 0 {
            if self.limit_percentage > 100 || self.spike_limit_percentage > 100 {
                return Err("'limit_percentage' and 'spike_limit_percentage' must be greater than zero and less than or equal to hundred".into());
            }
            if self.spike_limit_percentage >= self.limit_percentage {
                return Err("'spike_limit_percentage' must be smaller than 'limit_percentage'".into());
            }
        }
        if self.importance_attribute.is_empty() {
            return Err("'importance_attribute' must not be empty".into());
        }
        let soft = self.soft_percent();
        let mut previous = 0.0;
        for (i, level) in self.drop_levels.iter().enumerate() {
            let n = i + 1;
            let t = level.threshold_percent;
            if !(t > 0.0 && t < 100.0) {
                return Err(format!("drop_levels[{n}]: threshold_percent must be between 0 and 100, not {t}"));
            }
            if t <= previous {
                return Err(format!(
                    "drop_levels[{n}]: threshold_percent {t} must be above the level before ({previous})"
                ));
            }
            if t >= soft {
                return Err(format!(
                    "drop_levels[{n}]: threshold_percent {t} is at or above the soft limit ({soft:.1} % of the limit), where receivers refuse all new data; it would never shed anything"
                ));
            }
            previous = t;
            if level.drop_below.is_none() && level.sample.is_none() && level.keep_only_above.is_none() {
                return Err(format!("drop_levels[{n}]: give at least one of drop_below, sample, keep_only_above"));
            }
            let scores = [level.drop_below, level.keep_only_above, level.sample.as_ref().map(|s| s.below)];
            if let Some(bad) = scores.into_iter().flatten().find(|s| !(0.0..=1.0).contains(s)) {
                return Err(format!("drop_levels[{n}]: scores are in [0, 1], not {bad}"));
            }
            if let Some(sample) = &level.sample
                && !(0.0..=1.0).contains(&sample.rate)
            {
                return Err(format!("drop_levels[{n}]: sample.rate is a share in [0, 1], not {}", sample.rate));
            }
        }
        Ok(())
    }
}

impl MemoryLimiterConfig {
    /// The soft limit as a percentage of the hard limit.
    fn soft_percent(&self) -> f64 {
        let (limit, spike) = if self.limit_mib > 0 {
            (self.limit_mib as f64, self.spike_limit_mib as f64)
        } else {
            (self.limit_percentage as f64, self.spike_limit_percentage as f64)
        };
        let spike = if spike == 0.0 { limit / 5.0 } else { spike };
        (limit - spike) / limit * 100.0
    }

    /// The limits in bytes; the percentages read the cgroup's or machine's total.
    pub fn limits(&self) -> std::io::Result<Limits> {
        let (hard, spike) = if self.limit_mib > 0 {
            (self.limit_mib * MIB, self.spike_limit_mib * MIB)
        } else {
            let total = crate::pipeline::governor::total_memory()?;
            (total / 100 * u64::from(self.limit_percentage), total / 100 * u64::from(self.spike_limit_percentage))
        };
        let spike = if spike == 0 { hard / 5 } else { spike };
        Ok(Limits {
            hard,
            soft: hard - spike.min(hard),
            levels: self.drop_levels.iter().map(|l| l.threshold_percent).collect(),
            check_interval: self.check_interval.0,
            collect_when_soft: self.min_gc_interval_when_soft_limited.0,
            collect_when_hard: self.min_gc_interval_when_hard_limited.0,
        })
    }

    /// This id's limiter in the governor, made on first use.
    pub fn limiter(
        &self,
        id: &ComponentId,
        governor: &Governor,
        telemetry: &crate::telemetry::Telemetry,
    ) -> std::io::Result<Arc<Limiter>> {
        if let Some(limiter) = governor.find(id) {
            return Ok(limiter);
        }
        Ok(governor.limiter(id, self.limits()?, telemetry.memory_limiter(id)))
    }
}

/// One level's actions, checked in this order: drop, keep-only, sample.
struct Actions {
    drop_below: Option<f64>,
    keep_only_above: Option<f64>,
    sample: Option<(f64, f64)>,
}

/// Unreadable scores are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct MemoryLimiterProcessor {
    limiter: Arc<Limiter>,
    attribute: String,
    levels: Vec<Actions>,
    /// Per level: the share of sampled records owed a keep, for records with no trace id.
    owed: Vec<f64>,
    /// Per level, by [`Tier::index`].
    dropped: Vec<[Counter; 5]>,
    sampled: Vec<[Counter; 5]>,
    last_logged: Option<Instant>,
}

impl MemoryLimiterProcessor {
    pub fn new(config: &MemoryLimiterConfig, limiter: Arc<Limiter>) -> MemoryLimiterProcessor {
        let levels: Vec<Actions> = config
            .drop_levels
            .iter()
            .map(|l| Actions {
                drop_below: l.drop_below,
                keep_only_above: l.keep_only_above,
                sample: l.sample.as_ref().map(|s| (s.below, s.rate)),
            })
            .collect();
        let metrics = limiter.metrics();
        let dropped = (1..=levels.len()).map(|n| Tier::ALL.map(|t| metrics.dropped(n, t))).collect();
        let sampled = (1..=levels.len()).map(|n| Tier::ALL.map(|t| metrics.sampled(n, t))).collect();
        MemoryLimiterProcessor {
            owed: vec![0.0; levels.len()],
            limiter,
            attribute: config.importance_attribute.clone(),
            levels,
            dropped,
            sampled,
            last_logged: None,
        }
    }
}

/// A record's trace id, where it has one.
fn trace_id<'a>(record: &Record<'a>) -> &'a [u8] {
    match record.item {
        Item::Log(l) => &l.trace_id,
        Item::Span(s) => &s.trace_id,
        _ => &[],
    }
}

/// Whether a trace id falls in the kept share `rate`: its low 8 bytes are random.
fn trace_kept(trace_id: &[u8], rate: f64) -> Option<bool> {
    let tail: [u8; 8] = trace_id.get(trace_id.len().checked_sub(8)?..)?.try_into().ok()?;
    let value = u64::from_be_bytes(tail);
    if value == 0 && trace_id.iter().all(|&b| b == 0) {
        return None;
    }
    Some(((value >> 11) as f64) < rate * (1u64 << 53) as f64)
}

impl Processor for MemoryLimiterProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let active = self.limiter.drop_levels();
        if active == 0 {
            out.push(batch);
            return;
        }
        let kind = Kind::items_of(batch.signal());
        let mut dropped = vec![[0u64; 5]; active];
        let mut sampled = vec![[0u64; 5]; active];
        let (mut missing, mut invalid) = (0u64, 0u64);
        let levels = &self.levels[..active];
        let owed = &mut self.owed;
        let attribute = self.attribute.as_str();
        let _ = walk::retain(batch.payload_mut(), kind, &mut |record| {
            let found = score::read(attribute, record.attributes(), &record.resource.attributes);
            match found {
                Score::Missing => missing += 1,
                Score::Invalid => invalid += 1,
                Score::Scored(_) => {}
            }
            let value = found.value();
            let tier = Tier::of(value).index();
            for (i, level) in levels.iter().enumerate() {
                if level.drop_below.is_some_and(|s| value.is_some_and(|v| v < s))
                    || level.keep_only_above.is_some_and(|s| value.is_none_or(|v| v < s))
                {
                    dropped[i][tier] += 1;
                    return Ok(true);
                }
                if let Some((below, rate)) = level.sample
                    && value.is_some_and(|v| v < below)
                {
                    let kept = trace_kept(trace_id(record), rate).unwrap_or_else(|| {
                        owed[i] += rate;
                        if owed[i] >= 1.0 {
                            owed[i] -= 1.0;
                            true
                        } else {
                            false
                        }
                    });
                    if !kept {
                        sampled[i][tier] += 1;
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        });
        for i in 0..active {
            for tier in 0..5 {
                if dropped[i][tier] > 0 {
                    self.dropped[i][tier].inc_by(dropped[i][tier]);
                }
                if sampled[i][tier] > 0 {
                    self.sampled[i][tier].inc_by(sampled[i][tier]);
                }
            }
        }
        let metrics = self.limiter.metrics();
        if missing > 0 {
            metrics.missing.inc_by(missing);
        }
        if invalid > 0 {
            metrics.invalid.inc_by(invalid);
            if self.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                self.last_logged = Some(Instant::now());
                warn!(processor = %self.limiter.id(), attribute, records = invalid,
                    "Records carry an importance score that is not a number in [0, 1]; they are shed as unscored (logged once a minute).");
            }
        }
        if !batch.payload.is_empty() {
            out.push(batch);
        }
    }
}

#[cfg(test)]
#[path = "memory_limiter_tests.rs"]
mod tests;
