//! Policies, compiled from the config, and the final decision.
//!
//! Every per-span test (status code, attributes, trace state and flags, OTTL) is a
//! *leaf*, run once on each span as it arrives: a trace's [`Summary`] keeps one bit per
//! leaf ("some resource or span matched"), with its span count, byte size and first
//! start and last end. A decision reads only the summary, so the held spans stay
//! encoded and are decoded only when kept. Policies with state (the rate limits)
//! change only when a trace is decided.

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use regex::RegexSet;
use tokio::time::Instant;

use super::config::{PolicyConfig, PolicyType};
use crate::ottl::compile::Condition;
use crate::ottl::record::{Item, Kind, Record};
use crate::processors::ottl::ErrorMode;

/// Per-span tests a config may have in all (one bit each in a [`Summary`]).
pub(super) const MAX_LEAVES: usize = 64;

/// One policy's answer, as upstream's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Sampled,
    NotSampled,
    /// An inverted match found nothing: sampled unless another policy said no.
    InvertSampled,
    /// An inverted match found something: not sampled, whatever else says.
    InvertNotSampled,
    /// A `drop` policy matched: not sampled, whatever else says.
    Dropped,
    /// The policy could not evaluate (an OTTL error under `propagate`).
    Error,
}

impl Decision {
    pub(super) fn is_sampled(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }
}

/// What a trace's spans say so far.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    /// Leaf `i` matched some resource or span.
    pub matched: u64,
    /// Leaf `i` failed to evaluate on some span.
    pub errors: u64,
    pub min_start: u64,
    pub max_end: u64,
    pub spans: u64,
    /// Encoded bytes held.
    pub bytes: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary { matched: 0, errors: 0, min_start: u64::MAX, max_end: 0, spans: 0, bytes: 0 }
    }
}

enum Leaf {
    /// Bit per status code (0 unset, 1 ok, 2 error).
    Status(u8),
    Numeric {
        key: String,
        min: i64,
        max: i64,
    },
    Strings {
        key: String,
        values: Vec<String>,
    },
    Regex {
        key: String,
        set: RegexSet,
    },
    Boolean {
        key: String,
        value: bool,
    },
    TraceState {
        key: String,
        values: Vec<String>,
    },
    TraceFlags,
    Ottl {
        spans: Vec<Condition>,
        events: Vec<Condition>,
        errors: ErrorMode,
    },
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

impl Leaf {
    /// Tests of attributes look at the resource too, as upstream's do.
    fn matches_attributes(&self, attributes: &[KeyValue]) -> bool {
        use any_value::Value;
        match self {
            Leaf::Numeric { key, min, max } => {
                matches!(attribute(attributes, key), Some(Value::IntValue(v)) if (*min..=*max).contains(v))
            }
            Leaf::Strings { key, values } => {
                matches!(attribute(attributes, key), Some(Value::StringValue(v)) if values.iter().any(|x| x == v))
            }
            Leaf::Regex { key, set } => {
                matches!(attribute(attributes, key), Some(Value::StringValue(v)) if set.is_match(v))
            }
            Leaf::Boolean { key, value } => {
                matches!(attribute(attributes, key), Some(Value::BoolValue(v)) if v == value)
            }
            _ => false,
        }
    }

    /// Whether `span` matches: `Err` when an OTTL condition failed under `propagate`.
    fn matches_span(&self, resource: &Resource, scope: &InstrumentationScope, span: &Span) -> Result<bool, ()> {
        Ok(match self {
            Leaf::Status(codes) => {
                let code = span.status.as_ref().map_or(0, |s| s.code).clamp(0, 7);
                codes & (1 << code) != 0
            }
            Leaf::TraceFlags => span.flags & 0x01 != 0,
            Leaf::TraceState { key, values } => span.trace_state.split(',').any(|member| {
                let member = member.trim();
                // Upstream skips members of 256 characters or more.
                member.len() < 256
                    && member.split_once('=').is_some_and(|(k, v)| k == key && values.iter().any(|x| x == v))
            }),
            Leaf::Ottl { spans, events, errors } => {
                let mut failed = false;
                let mut check =
                    |condition: &Condition, item: Item<'_>| match condition.eval(&Record::new(resource, scope, item)) {
                        Ok(hit) => hit,
                        Err(_) => {
                            failed |= *errors == ErrorMode::Propagate;
                            false
                        }
                    };
                let hit = spans.iter().any(|c| check(c, Item::Span(span)))
                    || span.events.iter().any(|e| events.iter().any(|c| check(c, Item::Event(span, e))));
                if !hit && failed {
                    return Err(());
                }
                hit
            }
            _ => self.matches_attributes(&span.attributes),
        })
    }
}

/// The per-span tests of every policy, run as spans arrive.
#[derive(Default)]
pub(super) struct Leaves {
    leaves: Vec<Leaf>,
    /// Whether any leaf looks at resource attributes.
    reads_resource: bool,
    /// OTTL evaluation failures, for the caller to count.
    pub errors: u64,
}

impl Leaves {
    fn add(&mut self, leaf: Leaf) -> Result<u8, String> {
        if self.leaves.len() >= MAX_LEAVES {
            return Err(format!("tail_sampling takes at most {MAX_LEAVES} span-matching policies in all"));
        }
        self.reads_resource |=
            matches!(leaf, Leaf::Numeric { .. } | Leaf::Strings { .. } | Leaf::Regex { .. } | Leaf::Boolean { .. });
        self.leaves.push(leaf);
        Ok((self.leaves.len() - 1) as u8)
    }

    /// Bits of the leaves matching a resource's attributes.
    pub(super) fn resource_bits(&self, resource: &Resource) -> u64 {
        if !self.reads_resource {
            return 0;
        }
        let mut bits = 0;
        for (i, leaf) in self.leaves.iter().enumerate() {
            if leaf.matches_attributes(&resource.attributes) {
                bits |= 1 << i;
            }
        }
        bits
    }

    /// Bits of the leaves matching `span`, and of those that failed on it.
    pub(super) fn span_bits(&mut self, resource: &Resource, scope: &InstrumentationScope, span: &Span) -> (u64, u64) {
        let (mut hits, mut failed) = (0, 0);
        for (i, leaf) in self.leaves.iter().enumerate() {
            match leaf.matches_span(resource, scope, span) {
                Ok(true) => hits |= 1 << i,
                Ok(false) => {}
                Err(()) => {
                    failed |= 1 << i;
                    self.errors += 1;
                }
            }
        }
        (hits, failed)
    }
}

/// A token bucket, as Go's `x/time/rate`: `n` at once passes only if the bucket
/// holds `n` (so more than `burst` never does).
pub(super) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(rate: i64, burst: i64) -> Bucket {
        let burst = if burst > 0 { burst } else { rate.saturating_mul(2) } as f64;
        Bucket { rate: rate as f64, burst, tokens: burst, last: None }
    }

    fn allow(&mut self, n: u64, now: Instant) -> bool {
        if let Some(last) = self.last {
            self.tokens = (self.tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        }
        self.last = Some(now);
        let n = n as f64;
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

pub(super) struct CompositeSub {
    policy: Policy,
    /// Spans a second it may sample.
    budget: u64,
    used: u64,
}

pub(super) enum Policy {
    Always,
    Latency { lower_ns: u64, upper_ns: Option<u64> },
    Leaf { bit: u8, invert: bool },
    Probabilistic { salt: Vec<u8>, threshold: u64, all: bool },
    Spans(Bucket),
    Bytes(Bucket),
    SpanCount { min: u64, max: Option<u64> },
    And(Vec<Policy>),
    Not(Box<Policy>),
    Drop(Vec<Policy>),
    Composite { max_total: u64, subs: Vec<CompositeSub>, second: Option<Instant> },
}

/// FNV-1a, 64 bits, over the salt and then the trace id, as upstream's probabilistic
/// policy hashes.
fn fnv1a64(salt: &[u8], id: &[u8; 16]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.iter().chain(id) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Policy {
    /// Compiles a (validated) policy, adding its per-span tests to `leaves`.
    pub(super) fn compile(config: &PolicyConfig, leaves: &mut Leaves) -> Result<Policy, String> {
        let name = &config.name;
        let missing = || format!("policy `{name}` needs its `{}` block", config.kind.name());
        Ok(match config.kind {
            PolicyType::AlwaysSample => Policy::Always,
            PolicyType::Latency => {
                let c = config.latency.as_ref().ok_or_else(missing)?;
                let ns = |ms: i64| (ms.max(0) as u64).saturating_mul(1_000_000);
                Policy::Latency {
                    lower_ns: ns(c.threshold_ms),
                    upper_ns: (c.upper_threshold_ms != 0).then(|| ns(c.upper_threshold_ms)),
                }
            }
            PolicyType::StatusCode => {
                let c = config.status_code.as_ref().ok_or_else(missing)?;
                let mut bits = 0u8;
                for code in &c.status_codes {
                    bits |= match code.as_str() {
                        "UNSET" => 1,
                        "OK" => 2,
                        _ => 4,
                    };
                }
                Policy::Leaf { bit: leaves.add(Leaf::Status(bits))?, invert: false }
            }
            PolicyType::NumericAttribute => {
                let c = config.numeric_attribute.as_ref().ok_or_else(missing)?;
                let min = if c.min_value == 0 { i64::MIN } else { c.min_value };
                let max = if c.max_value == 0 { i64::MAX } else { c.max_value };
                let bit = leaves.add(Leaf::Numeric { key: c.key.clone(), min, max })?;
                Policy::Leaf { bit, invert: c.invert_match }
            }
            PolicyType::StringAttribute => {
                let c = config.string_attribute.as_ref().ok_or_else(missing)?;
                let leaf = if c.enabled_regex_matching {
                    let set = RegexSet::new(&c.values).map_err(|e| format!("policy `{name}`: {e}"))?;
                    Leaf::Regex { key: c.key.clone(), set }
                } else {
                    Leaf::Strings { key: c.key.clone(), values: c.values.clone() }
                };
                Policy::Leaf { bit: leaves.add(leaf)?, invert: c.invert_match }
            }
            PolicyType::BooleanAttribute => {
                let c = config.boolean_attribute.as_ref().ok_or_else(missing)?;
                let bit = leaves.add(Leaf::Boolean { key: c.key.clone(), value: c.value })?;
                Policy::Leaf { bit, invert: c.invert_match }
            }
            PolicyType::TraceState => {
                let c = config.trace_state.as_ref().ok_or_else(missing)?;
                let bit = leaves.add(Leaf::TraceState { key: c.key.clone(), values: c.values.clone() })?;
                Policy::Leaf { bit, invert: false }
            }
            PolicyType::TraceFlags => Policy::Leaf { bit: leaves.add(Leaf::TraceFlags)?, invert: false },
            PolicyType::OttlCondition => {
                let c = config.ottl_condition.as_ref().ok_or_else(missing)?;
                let compile = |kind: Kind, texts: &[String]| -> Result<Vec<Condition>, String> {
                    texts
                        .iter()
                        .map(|t| {
                            Condition::parse(kind, t)
                                .map_err(|e| format!("policy `{name}`: invalid OTTL condition `{t}`: {}", e.message))
                        })
                        .collect()
                };
                let leaf = Leaf::Ottl {
                    spans: compile(Kind::Span, &c.span)?,
                    events: compile(Kind::SpanEvent, &c.spanevent)?,
                    errors: c.error_mode.unwrap_or(ErrorMode::Propagate),
                };
                Policy::Leaf { bit: leaves.add(leaf)?, invert: false }
            }
            PolicyType::Probabilistic => {
                let c = config.probabilistic.as_ref().ok_or_else(missing)?;
                let ratio = c.sampling_percentage / 100.0;
                Policy::Probabilistic {
                    salt: c.hash_salt.as_bytes().to_vec(),
                    // u64::MAX × ratio, as upstream's big.Float product truncated.
                    threshold: (u64::MAX as f64 * ratio) as u64,
                    all: ratio >= 1.0,
                }
            }
            PolicyType::RateLimiting => {
                let c = config.rate_limiting.as_ref().ok_or_else(missing)?;
                Policy::Spans(Bucket::new(c.spans_per_second, c.burst_capacity))
            }
            PolicyType::BytesLimiting => {
                let c = config.bytes_limiting.as_ref().ok_or_else(missing)?;
                Policy::Bytes(Bucket::new(c.bytes_per_second, c.burst_capacity))
            }
            PolicyType::SpanCount => {
                let c = config.span_count.as_ref().ok_or_else(missing)?;
                Policy::SpanCount {
                    min: c.min_spans.max(0) as u64,
                    max: (c.max_spans > 0).then_some(c.max_spans as u64),
                }
            }
            PolicyType::And => {
                let c = config.and.as_ref().ok_or_else(missing)?;
                Policy::And(c.and_sub_policy.iter().map(|p| Policy::compile(p, leaves)).collect::<Result<_, _>>()?)
            }
            PolicyType::Drop => {
                let c = config.drop.as_ref().ok_or_else(missing)?;
                Policy::Drop(c.drop_sub_policy.iter().map(|p| Policy::compile(p, leaves)).collect::<Result<_, _>>()?)
            }
            PolicyType::Not => {
                let c = config.not.as_ref().ok_or_else(missing)?;
                Policy::Not(Box::new(Policy::compile(&c.not_sub_policy, leaves)?))
            }
            PolicyType::Composite => {
                let c = config.composite.as_ref().ok_or_else(missing)?;
                let max_total = c.max_total_spans_per_second.max(0) as u64;
                let equal = max_total / c.composite_sub_policy.len().max(1) as u64;
                let mut subs = Vec::new();
                for sub in &c.composite_sub_policy {
                    // Listed with a percent: that share; listed without: an equal share;
                    // not listed: nothing, as upstream. No allocation at all: equal shares.
                    let budget = match c.rate_allocation.iter().find(|a| a.policy == sub.name) {
                        Some(a) if a.percent > 0 => max_total * a.percent as u64 / 100,
                        Some(_) => equal,
                        None if c.rate_allocation.is_empty() => equal,
                        None => 0,
                    };
                    subs.push(CompositeSub { policy: Policy::compile(sub, leaves)?, budget, used: 0 });
                }
                Policy::Composite { max_total, subs, second: None }
            }
        })
    }

    /// Whether this is a `drop` policy (they run first).
    pub(super) fn is_drop(&self) -> bool {
        matches!(self, Policy::Drop(_))
    }

    pub(super) fn evaluate(&mut self, id: &[u8; 16], trace: &Summary, now: Instant) -> Decision {
        let yes = |b: bool| if b { Decision::Sampled } else { Decision::NotSampled };
        match self {
            Policy::Always => Decision::Sampled,
            Policy::Latency { lower_ns, upper_ns } => {
                let duration = trace.max_end.saturating_sub(trace.min_start);
                if trace.spans == 0 || trace.min_start == u64::MAX {
                    return Decision::NotSampled;
                }
                yes(match upper_ns {
                    None => duration >= *lower_ns,
                    Some(upper) => duration > *lower_ns && duration <= *upper,
                })
            }
            Policy::Leaf { bit, invert } => {
                let hit = trace.matched & (1 << *bit) != 0;
                match (*invert, hit) {
                    (false, true) => Decision::Sampled,
                    (false, false) if trace.errors & (1 << *bit) != 0 => Decision::Error,
                    (false, false) => Decision::NotSampled,
                    (true, true) => Decision::InvertNotSampled,
                    (true, false) => Decision::InvertSampled,
                }
            }
            Policy::Probabilistic { salt, threshold, all } => yes(*all || fnv1a64(salt, id) <= *threshold),
            Policy::Spans(bucket) => yes(bucket.allow(trace.spans, now)),
            Policy::Bytes(bucket) => yes(bucket.allow(trace.bytes, now)),
            Policy::SpanCount { min, max } => yes(trace.spans >= *min && max.is_none_or(|m| trace.spans <= m)),
            Policy::And(subs) => {
                for sub in subs {
                    match sub.evaluate(id, trace, now) {
                        Decision::NotSampled | Decision::InvertNotSampled | Decision::Dropped => {
                            return Decision::NotSampled;
                        }
                        Decision::Error => return Decision::Error,
                        Decision::Sampled | Decision::InvertSampled => {}
                    }
                }
                Decision::Sampled
            }
            Policy::Not(sub) => match sub.evaluate(id, trace, now) {
                Decision::Sampled | Decision::InvertSampled => Decision::NotSampled,
                Decision::NotSampled | Decision::InvertNotSampled => Decision::Sampled,
                other => other,
            },
            Policy::Drop(subs) => {
                for sub in subs {
                    match sub.evaluate(id, trace, now) {
                        Decision::Sampled | Decision::InvertSampled => {}
                        Decision::Error => return Decision::Error,
                        _ => return Decision::NotSampled,
                    }
                }
                Decision::Dropped
            }
            Policy::Composite { max_total, subs, second } => {
                // Budgets are per second, counted from the first decision in it.
                if second.is_none_or(|s| now.saturating_duration_since(s).as_secs() >= 1) {
                    *second = Some(now);
                    for sub in subs.iter_mut() {
                        sub.used = 0;
                    }
                }
                for sub in subs.iter_mut() {
                    if sub.policy.evaluate(id, trace, now).is_sampled() {
                        // The first sub-policy that samples decides; past its budget the
                        // trace is not sampled (a smaller one may still fit later).
                        let after = sub.used + trace.spans;
                        if after <= sub.budget && after <= *max_total {
                            sub.used = after;
                            return Decision::Sampled;
                        }
                        return Decision::NotSampled;
                    }
                }
                Decision::NotSampled
            }
        }
    }
}

/// The final decision over every top-level policy, in upstream's order: `drop`
/// policies first; stop at the first `Dropped` (and, with `sample_on_first_match`,
/// the first sample); then Dropped, an inverted match, a sample, an inverted
/// non-match with no "no", in that precedence.
pub(super) fn decide(
    policies: &mut [Policy],
    first_match: bool,
    id: &[u8; 16],
    trace: &Summary,
    now: Instant,
    decisions: &mut Vec<(usize, Decision)>,
) -> bool {
    decisions.clear();
    let (mut sampled, mut invert_sampled, mut not_sampled, mut invert_not) = (false, false, false, false);
    // `policies` is kept with the drop policies first (see the processor's new).
    for (i, policy) in policies.iter_mut().enumerate() {
        let decision = policy.evaluate(id, trace, now);
        decisions.push((i, decision));
        match decision {
            Decision::Dropped => return false,
            Decision::Sampled => {
                sampled = true;
                if first_match {
                    break;
                }
            }
            Decision::InvertSampled => {
                invert_sampled = true;
                if first_match {
                    break;
                }
            }
            Decision::NotSampled => not_sampled = true,
            Decision::InvertNotSampled => invert_not = true,
            Decision::Error => {}
        }
    }
    if invert_not {
        return false;
    }
    sampled || (invert_sampled && !not_sampled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(spans: u64, start: u64, end: u64, matched: u64) -> Summary {
        Summary { matched, errors: 0, min_start: start, max_end: end, spans, bytes: spans * 100 }
    }

    #[test]
    fn fnv_is_go_fnv64a() {
        // Go: fnv.New64a(); Write([]byte("a")) → 0xaf63dc4c8601ec8c.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        hash ^= u64::from(b'a');
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        assert_eq!(hash, 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a64(b"x", &[1; 16]), fnv1a64(b"y", &[1; 16]));
    }

    #[test]
    fn latency_bounds_are_upstreams() {
        let now = Instant::now();
        let mut lower = Policy::Latency { lower_ns: 500_000_000, upper_ns: None };
        assert_eq!(lower.evaluate(&[1; 16], &summary(2, 0, 500_000_000, 0), now), Decision::Sampled);
        assert_eq!(lower.evaluate(&[1; 16], &summary(2, 0, 499_999_999, 0), now), Decision::NotSampled);
        let mut band = Policy::Latency { lower_ns: 100, upper_ns: Some(200) };
        assert_eq!(band.evaluate(&[1; 16], &summary(2, 0, 100, 0), now), Decision::NotSampled);
        assert_eq!(band.evaluate(&[1; 16], &summary(2, 0, 200, 0), now), Decision::Sampled);
        assert_eq!(band.evaluate(&[1; 16], &summary(2, 0, 201, 0), now), Decision::NotSampled);
    }

    #[test]
    fn precedence_is_upstreams() {
        let now = Instant::now();
        let mut decisions = Vec::new();
        let trace = summary(1, 0, 1, 0b01);
        // An inverted match that found something beats a sample.
        let mut policies = vec![Policy::Always, Policy::Leaf { bit: 0, invert: true }];
        assert!(!decide(&mut policies, false, &[1; 16], &trace, now, &mut decisions));
        // An inverted non-match samples only if nothing said no.
        let mut policies = vec![Policy::Leaf { bit: 1, invert: true }];
        assert!(decide(&mut policies, false, &[1; 16], &trace, now, &mut decisions));
        let mut policies = vec![Policy::Leaf { bit: 1, invert: true }, Policy::Leaf { bit: 1, invert: false }];
        assert!(!decide(&mut policies, false, &[1; 16], &trace, now, &mut decisions));
        // A drop whose sub-policies all sample wins over everything.
        let mut policies = vec![Policy::Drop(vec![Policy::Leaf { bit: 0, invert: false }]), Policy::Always];
        assert!(!decide(&mut policies, false, &[1; 16], &trace, now, &mut decisions));
        assert_eq!(decisions, vec![(0, Decision::Dropped)]);
        // First match stops the evaluation (the rate limit keeps its tokens).
        let mut policies = vec![Policy::Always, Policy::Spans(Bucket::new(1, 1))];
        assert!(decide(&mut policies, true, &[1; 16], &trace, now, &mut decisions));
        assert_eq!(decisions.len(), 1);
    }

    #[test]
    fn buckets_refill_and_refuse_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, 0);
        assert!(bucket.allow(20, start));
        assert!(!bucket.allow(1, start));
        assert!(bucket.allow(5, start + std::time::Duration::from_millis(500)));
        assert!(!bucket.allow(21, start + std::time::Duration::from_secs(60)));
    }

    #[test]
    fn composite_takes_each_subs_budget() {
        let now = Instant::now();
        let sub = |budget| CompositeSub { policy: Policy::Always, budget, used: 0 };
        let mut policy = Policy::Composite { max_total: 100, subs: vec![sub(30), sub(70)], second: None };
        let trace = summary(20, 0, 1, 0);
        assert_eq!(policy.evaluate(&[1; 16], &trace, now), Decision::Sampled);
        // The first sub-policy samples, but its 30 spans a second are used up.
        assert_eq!(policy.evaluate(&[1; 16], &trace, now), Decision::NotSampled);
        assert_eq!(policy.evaluate(&[1; 16], &trace, now + std::time::Duration::from_secs(1)), Decision::Sampled);
    }
}
