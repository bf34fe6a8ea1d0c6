//! The `tail_sampling` config: upstream's options and policy types, plus ocelot's
//! `max_memory_mib`.

use serde::Deserialize;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::processors::ottl::ErrorMode;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span it is decided. Default 30s.
    #[serde(default = "default_decision_wait")]
    pub decision_wait: ConfigDuration,
    /// Once the root span (no parent) has arrived, decide this long after it, if
    /// sooner than `decision_wait`. 0 (the default) is off.
    #[serde(default)]
    pub decision_wait_after_root_received: ConfigDuration,
    /// Most traces held undecided. Default 50000. A new trace past it has the oldest
    /// decided early (upstream drops it undecided).
    #[serde(default = "default_num_traces")]
    pub num_traces: u64,
    /// Sizes the trace table up front.
    #[serde(default)]
    pub expected_new_traces_per_sec: u64,
    /// How many decided trace ids are remembered for late spans.
    #[serde(default)]
    pub decision_cache: DecisionCacheConfig,
    /// Stop at the first policy that samples.
    #[serde(default)]
    pub sample_on_first_match: bool,
    /// `trace-complete` (decide after `decision_wait`) or `span-ingest` (also decide
    /// as spans arrive, once a policy already samples or drops the trace).
    #[serde(default)]
    pub sampling_strategy: SamplingStrategy,
    /// At `num_traces`, refuse new traces (backpressure: the client retries) instead
    /// of deciding the oldest early.
    #[serde(default)]
    pub block_on_overflow: bool,
    /// A trace held past this many protobuf bytes is decided at once (upstream drops
    /// it). 0 (the default) is no limit.
    #[serde(default)]
    pub maximum_trace_size_bytes: u64,
    /// At shutdown, drop the undecided traces instead of deciding them.
    #[serde(default)]
    pub drop_pending_traces_on_shutdown: bool,
    /// ocelot: the most memory the held spans take, in MiB (spans are held encoded).
    /// Past it the oldest traces are decided early. Default 512.
    #[serde(default = "default_max_memory_mib")]
    pub max_memory_mib: u64,
    pub policies: Vec<PolicyConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecisionCacheConfig {
    /// Trace ids remembered as sampled. 0 (the default) remembers `num_traces`.
    #[serde(default)]
    pub sampled_cache_size: usize,
    /// Trace ids remembered as not sampled. 0 (the default) remembers `num_traces`.
    #[serde(default)]
    pub non_sampled_cache_size: usize,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum SamplingStrategy {
    #[default]
    #[serde(rename = "trace-complete")]
    TraceComplete,
    #[serde(rename = "span-ingest")]
    SpanIngest,
}

fn default_decision_wait() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}
fn default_num_traces() -> u64 {
    50_000
}
fn default_max_memory_mib() -> u64 {
    512
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PolicyType {
    AlwaysSample,
    Latency,
    StatusCode,
    NumericAttribute,
    StringAttribute,
    BooleanAttribute,
    Probabilistic,
    RateLimiting,
    BytesLimiting,
    SpanCount,
    TraceState,
    TraceFlags,
    OttlCondition,
    And,
    Not,
    Composite,
    Drop,
}

impl PolicyType {
    pub fn name(self) -> &'static str {
        match self {
            PolicyType::AlwaysSample => "always_sample",
            PolicyType::Latency => "latency",
            PolicyType::StatusCode => "status_code",
            PolicyType::NumericAttribute => "numeric_attribute",
            PolicyType::StringAttribute => "string_attribute",
            PolicyType::BooleanAttribute => "boolean_attribute",
            PolicyType::Probabilistic => "probabilistic",
            PolicyType::RateLimiting => "rate_limiting",
            PolicyType::BytesLimiting => "bytes_limiting",
            PolicyType::SpanCount => "span_count",
            PolicyType::TraceState => "trace_state",
            PolicyType::TraceFlags => "trace_flags",
            PolicyType::OttlCondition => "ottl_condition",
            PolicyType::And => "and",
            PolicyType::Not => "not",
            PolicyType::Composite => "composite",
            PolicyType::Drop => "drop",
        }
    }
}

/// One policy: `name`, `type`, and the block named after the type. Sub-policies of
/// `and`, `not`, `drop` and `composite` have the same shape.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PolicyType,
    #[serde(default)]
    pub latency: Option<LatencyConfig>,
    #[serde(default)]
    pub status_code: Option<StatusCodeConfig>,
    #[serde(default)]
    pub numeric_attribute: Option<NumericAttributeConfig>,
    #[serde(default)]
    pub string_attribute: Option<StringAttributeConfig>,
    #[serde(default)]
    pub boolean_attribute: Option<BooleanAttributeConfig>,
    #[serde(default)]
    pub probabilistic: Option<ProbabilisticConfig>,
    #[serde(default)]
    pub rate_limiting: Option<RateLimitingConfig>,
    #[serde(default)]
    pub bytes_limiting: Option<BytesLimitingConfig>,
    #[serde(default)]
    pub span_count: Option<SpanCountConfig>,
    #[serde(default)]
    pub trace_state: Option<TraceStateConfig>,
    #[serde(default)]
    pub ottl_condition: Option<OttlConditionConfig>,
    #[serde(default)]
    pub and: Option<AndConfig>,
    #[serde(default)]
    pub not: Option<NotConfig>,
    #[serde(default)]
    pub composite: Option<CompositeConfig>,
    #[serde(default)]
    pub drop: Option<DropConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Sampled when the trace lasts at least this long (earliest start to latest end).
    #[serde(default)]
    pub threshold_ms: i64,
    /// With it, sampled when `threshold_ms < duration <= upper_threshold_ms`.
    #[serde(default)]
    pub upper_threshold_ms: i64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusCodeConfig {
    /// `OK`, `ERROR`, `UNSET`: sampled when any span has one of them.
    pub status_codes: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributeConfig {
    pub key: String,
    /// Inclusive bounds; 0 is unset (no bound).
    #[serde(default)]
    pub min_value: i64,
    #[serde(default)]
    pub max_value: i64,
    /// Sampled when no resource or span matches (deprecated upstream for `not`).
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StringAttributeConfig {
    pub key: String,
    pub values: Vec<String>,
    /// `values` are regular expressions (unanchored).
    #[serde(default)]
    pub enabled_regex_matching: bool,
    /// Upstream's LRU of regex results; ocelot's regexes need none, so it is only read.
    #[serde(default)]
    pub cache_max_size: usize,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BooleanAttributeConfig {
    pub key: String,
    pub value: bool,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticConfig {
    /// Salt of the FNV-1a hash; policies with the same salt sample the same traces.
    #[serde(default = "default_hash_salt")]
    pub hash_salt: String,
    pub sampling_percentage: f64,
}

fn default_hash_salt() -> String {
    "default-hash-seed".into()
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    pub spans_per_second: i64,
    /// The token bucket's size in spans. Default twice `spans_per_second`.
    #[serde(default)]
    pub burst_capacity: i64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BytesLimitingConfig {
    pub bytes_per_second: i64,
    /// The token bucket's size in bytes. Default twice `bytes_per_second`.
    #[serde(default)]
    pub burst_capacity: i64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpanCountConfig {
    #[serde(default)]
    pub min_spans: i32,
    /// 0 is no upper bound.
    #[serde(default)]
    pub max_spans: i32,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TraceStateConfig {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OttlConditionConfig {
    /// Default `propagate`, as upstream: a failing condition makes the policy's
    /// decision an error, which the final decision ignores.
    #[serde(default)]
    pub error_mode: Option<ErrorMode>,
    #[serde(default)]
    pub span: Vec<String>,
    #[serde(default)]
    pub spanevent: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AndConfig {
    pub and_sub_policy: Vec<PolicyConfig>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotConfig {
    pub not_sub_policy: Box<PolicyConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    pub drop_sub_policy: Vec<PolicyConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompositeConfig {
    pub max_total_spans_per_second: i64,
    /// Upstream lists the sub-policies' names here; they run in
    /// `composite_sub_policy` order, as upstream's do.
    #[serde(default)]
    pub policy_order: Vec<String>,
    pub composite_sub_policy: Vec<PolicyConfig>,
    #[serde(default)]
    pub rate_allocation: Vec<RateAllocation>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateAllocation {
    pub policy: String,
    /// A share of `max_total_spans_per_second`; 0 or less is an equal share.
    #[serde(default)]
    pub percent: i64,
}

impl Validate for TailSamplingConfig {
    fn validate(&self) -> Result<(), String> {
        if self.policies.is_empty() {
            return Err("tail_sampling needs at least one policy in `policies`".into());
        }
        if self.decision_wait.0.is_zero() {
            return Err("decision_wait must be more than 0".into());
        }
        if self.num_traces == 0 {
            return Err("num_traces must be more than 0".into());
        }
        if self.max_memory_mib == 0 {
            return Err("max_memory_mib must be more than 0".into());
        }
        let mut names = std::collections::HashSet::new();
        for policy in &self.policies {
            if !names.insert(policy.name.as_str()) {
                return Err(format!("duplicate policy name `{}`", policy.name));
            }
            policy.validate_tree(0)?;
        }
        if self.sampling_strategy == SamplingStrategy::SpanIngest {
            for policy in &self.policies {
                if let Some(why) = policy.stateful() {
                    return Err(format!(
                        "sampling_strategy span-ingest requires all policies to be stateless; policy `{}` {why}",
                        policy.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Combinators inside combinators this deep are refused (a config typo, not a need).
const MAX_DEPTH: usize = 8;

impl PolicyConfig {
    /// The block this policy's type reads, if it has one.
    fn blocks(&self) -> [(&'static str, bool); 14] {
        [
            ("latency", self.latency.is_some()),
            ("status_code", self.status_code.is_some()),
            ("numeric_attribute", self.numeric_attribute.is_some()),
            ("string_attribute", self.string_attribute.is_some()),
            ("boolean_attribute", self.boolean_attribute.is_some()),
            ("probabilistic", self.probabilistic.is_some()),
            ("rate_limiting", self.rate_limiting.is_some()),
            ("bytes_limiting", self.bytes_limiting.is_some()),
            ("span_count", self.span_count.is_some()),
            ("trace_state", self.trace_state.is_some()),
            ("ottl_condition", self.ottl_condition.is_some()),
            ("and", self.and.is_some()),
            ("not", self.not.is_some()),
            ("composite", self.composite.is_some()),
        ]
    }

    fn validate_tree(&self, depth: usize) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() {
            return Err("every policy needs a `name`".into());
        }
        if depth > MAX_DEPTH {
            return Err(format!("policy `{name}`: sub-policies nest more than {MAX_DEPTH} deep"));
        }
        let kind = self.kind.name();
        let mut blocks = self.blocks().to_vec();
        blocks.push(("drop", self.drop.is_some()));
        for (block, present) in blocks {
            if present && block != kind {
                return Err(format!(
                    "policy `{name}` is of type {kind} but has a `{block}` block, which only a {block} policy reads"
                ));
            }
        }
        let missing = || format!("policy `{name}` of type {kind} needs its `{kind}` block");
        match self.kind {
            PolicyType::AlwaysSample | PolicyType::TraceFlags => {}
            PolicyType::Latency => {
                let c = self.latency.as_ref().ok_or_else(missing)?;
                if c.threshold_ms < 0 || c.upper_threshold_ms < 0 {
                    return Err(format!("policy `{name}`: latency thresholds cannot be negative"));
                }
                if c.upper_threshold_ms != 0 && c.upper_threshold_ms <= c.threshold_ms {
                    return Err(format!(
                        "policy `{name}`: upper_threshold_ms ({}) must be more than threshold_ms ({})",
                        c.upper_threshold_ms, c.threshold_ms
                    ));
                }
            }
            PolicyType::StatusCode => {
                let c = self.status_code.as_ref().ok_or_else(missing)?;
                if c.status_codes.is_empty() {
                    return Err(format!("policy `{name}`: status_codes must not be empty"));
                }
                for code in &c.status_codes {
                    if !matches!(code.as_str(), "OK" | "ERROR" | "UNSET") {
                        return Err(format!(
                            "policy `{name}`: unknown status code `{code}`; expected OK, ERROR or UNSET"
                        ));
                    }
                }
            }
            PolicyType::NumericAttribute => {
                let c = self.numeric_attribute.as_ref().ok_or_else(missing)?;
                if c.key.is_empty() {
                    return Err(format!("policy `{name}`: numeric_attribute needs a key"));
                }
                if c.min_value != 0 && c.max_value != 0 && c.max_value < c.min_value {
                    return Err(format!("policy `{name}`: max_value is less than min_value"));
                }
            }
            PolicyType::StringAttribute => {
                let c = self.string_attribute.as_ref().ok_or_else(missing)?;
                if c.key.is_empty() {
                    return Err(format!("policy `{name}`: string_attribute needs a key"));
                }
                if c.enabled_regex_matching {
                    for value in &c.values {
                        regex::Regex::new(value)
                            .map_err(|e| format!("policy `{name}`: invalid regular expression `{value}`: {e}"))?;
                    }
                }
            }
            PolicyType::BooleanAttribute => {
                let c = self.boolean_attribute.as_ref().ok_or_else(missing)?;
                if c.key.is_empty() {
                    return Err(format!("policy `{name}`: boolean_attribute needs a key"));
                }
            }
            PolicyType::Probabilistic => {
                let c = self.probabilistic.as_ref().ok_or_else(missing)?;
                if !(0.0..=100.0).contains(&c.sampling_percentage) {
                    return Err(format!(
                        "policy `{name}`: sampling_percentage must be between 0 and 100, not {}",
                        c.sampling_percentage
                    ));
                }
            }
            PolicyType::RateLimiting => {
                let c = self.rate_limiting.as_ref().ok_or_else(missing)?;
                if c.spans_per_second <= 0 || c.burst_capacity < 0 {
                    return Err(format!("policy `{name}`: spans_per_second must be more than 0"));
                }
            }
            PolicyType::BytesLimiting => {
                let c = self.bytes_limiting.as_ref().ok_or_else(missing)?;
                if c.bytes_per_second <= 0 || c.burst_capacity < 0 {
                    return Err(format!("policy `{name}`: bytes_per_second must be more than 0"));
                }
            }
            PolicyType::SpanCount => {
                let c = self.span_count.as_ref().ok_or_else(missing)?;
                if c.min_spans < 0 || c.max_spans < 0 || (c.max_spans != 0 && c.max_spans < c.min_spans) {
                    return Err(format!(
                        "policy `{name}`: span_count needs 0 <= min_spans <= max_spans (0: no maximum)"
                    ));
                }
            }
            PolicyType::TraceState => {
                let c = self.trace_state.as_ref().ok_or_else(missing)?;
                if c.key.is_empty() || c.values.is_empty() {
                    return Err(format!("policy `{name}`: trace_state needs a key and values"));
                }
            }
            PolicyType::OttlCondition => {
                let c = self.ottl_condition.as_ref().ok_or_else(missing)?;
                if c.span.is_empty() && c.spanevent.is_empty() {
                    return Err(format!("policy `{name}`: ottl_condition needs `span` or `spanevent` conditions"));
                }
            }
            PolicyType::And => {
                let c = self.and.as_ref().ok_or_else(missing)?;
                Self::validate_subs(name, "and_sub_policy", &c.and_sub_policy, depth)?;
            }
            PolicyType::Drop => {
                let c = self.drop.as_ref().ok_or_else(missing)?;
                Self::validate_subs(name, "drop_sub_policy", &c.drop_sub_policy, depth)?;
            }
            PolicyType::Not => {
                let c = self.not.as_ref().ok_or_else(missing)?;
                c.not_sub_policy.validate_tree(depth + 1)?;
            }
            PolicyType::Composite => {
                let c = self.composite.as_ref().ok_or_else(missing)?;
                if c.max_total_spans_per_second <= 0 {
                    return Err(format!("policy `{name}`: max_total_spans_per_second must be more than 0"));
                }
                Self::validate_subs(name, "composite_sub_policy", &c.composite_sub_policy, depth)?;
                let mut total = 0;
                for allocation in &c.rate_allocation {
                    if !c.composite_sub_policy.iter().any(|p| p.name == allocation.policy) {
                        return Err(format!(
                            "policy `{name}`: rate_allocation names `{}`, which is not one of its composite_sub_policy",
                            allocation.policy
                        ));
                    }
                    total += allocation.percent.max(0);
                }
                if total > 100 {
                    return Err(format!(
                        "policy `{name}`: rate_allocation percentages add up to {total}, more than 100"
                    ));
                }
                for order in &c.policy_order {
                    if !c.composite_sub_policy.iter().any(|p| p.name == *order) {
                        return Err(format!(
                            "policy `{name}`: policy_order names `{order}`, which is not one of its composite_sub_policy"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_subs(name: &str, field: &str, subs: &[PolicyConfig], depth: usize) -> Result<(), String> {
        if subs.is_empty() {
            return Err(format!("policy `{name}`: `{field}` must not be empty"));
        }
        for sub in subs {
            sub.validate_tree(depth + 1)?;
        }
        Ok(())
    }

    /// Why this policy depends on more than the spans seen so far, if it does
    /// (span-ingest decides on partial traces, so it takes only stateless policies).
    fn stateful(&self) -> Option<&'static str> {
        match self.kind {
            PolicyType::RateLimiting | PolicyType::BytesLimiting | PolicyType::Composite => {
                Some("is a rate limit, which depends on other traces")
            }
            PolicyType::Latency if self.latency.as_ref().is_some_and(|c| c.upper_threshold_ms != 0) => {
                Some("has upper_threshold_ms, which a later span can cross")
            }
            PolicyType::SpanCount if self.span_count.as_ref().is_some_and(|c| c.max_spans != 0) => {
                Some("has max_spans, which a later span can cross")
            }
            PolicyType::And => self.and.as_ref()?.and_sub_policy.iter().find_map(PolicyConfig::stateful),
            PolicyType::Drop => self.drop.as_ref()?.drop_sub_policy.iter().find_map(PolicyConfig::stateful),
            PolicyType::Not => {
                let _ = self.not.as_ref()?;
                Some("inverts its sub-policy, which a later span can change")
            }
            _ => None,
        }
    }
}
