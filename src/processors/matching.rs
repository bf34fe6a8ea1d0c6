//! Upstream's match properties (`filterconfig.MatchProperties`): the `include` and
//! `exclude` blocks of the `attributes` processor and the legacy match blocks of the
//! `filter` processor. Every property that is set must match (AND); within one, any
//! entry may (OR), except `attributes` and `resources`, which must all match.
//! `match_type` is `strict` (equality) or `regexp` (RE2-style, unanchored).
//! Properties of another signal (`log_bodies` on a span) never match.

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use regex::Regex;
use serde::Deserialize;

use crate::ottl::value::Val;
use crate::pdata::Signal;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    Strict,
    Regexp,
}

/// `{key, value}`: the key must be there and, if a value is given, equal it (strict)
/// or match it (regexp).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    pub key: String,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LibraryMatch {
    pub name: String,
    /// Absent: any version; `""`: only an empty one.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeverityMatch {
    /// `1`–`24` or `TRACE` … `FATAL4`: records at this severity or above match.
    pub min: serde_json::Value,
    /// Whether records without a severity (0) match too.
    #[serde(default)]
    pub match_undefined: bool,
}

/// The properties, as both the `attributes` processor and the legacy filter blocks
/// spell them (`record_attributes`, `severity_texts`, `bodies` … are the filter's).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    pub match_type: MatchType,
    /// `service.name` of the resource, any of.
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub span_names: Vec<String>,
    /// `SPAN_KIND_SERVER` …, any of.
    #[serde(default)]
    pub span_kinds: Vec<String>,
    #[serde(default)]
    pub metric_names: Vec<String>,
    /// The item's attributes, all of.
    #[serde(default, alias = "record_attributes")]
    pub attributes: Vec<AttributeMatch>,
    /// The resource's attributes, all of.
    #[serde(default, alias = "resource_attributes")]
    pub resources: Vec<AttributeMatch>,
    /// The instrumentation scope, any of.
    #[serde(default)]
    pub libraries: Vec<LibraryMatch>,
    #[serde(default, alias = "bodies")]
    pub log_bodies: Vec<String>,
    #[serde(default, alias = "severity_texts")]
    pub log_severity_texts: Vec<String>,
    #[serde(default, alias = "severity_number")]
    pub log_severity_number: Option<SeverityMatch>,
}

/// One string pattern.
enum Pattern {
    Strict(String),
    Regexp(Regex),
}

impl Pattern {
    fn new(match_type: MatchType, text: &str) -> Result<Pattern, String> {
        Ok(match match_type {
            MatchType::Strict => Pattern::Strict(text.to_string()),
            MatchType::Regexp => {
                Pattern::Regexp(Regex::new(text).map_err(|e| format!("invalid regexp `{text}`: {e}"))?)
            }
        })
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Strict(p) => p == s,
            Pattern::Regexp(r) => r.is_match(s),
        }
    }
}

/// An attribute match, compiled.
struct AttributeRule {
    key: String,
    value: Option<ValueRule>,
}

enum ValueRule {
    /// Strict: the value, as OTLP would carry it.
    Equal(AnyValue),
    /// Regexp: the attribute's string value matches.
    Matches(Regex),
}

use crate::ottl::paths::DEPRECATED_KIND_NAMES as SPAN_KINDS;

/// Compiled match properties.
pub struct Matcher {
    services: Vec<Pattern>,
    span_names: Vec<Pattern>,
    span_kinds: Vec<i32>,
    metric_names: Vec<Pattern>,
    attributes: Vec<AttributeRule>,
    resources: Vec<AttributeRule>,
    libraries: Vec<(Pattern, Option<Pattern>)>,
    log_bodies: Vec<Pattern>,
    log_severity_texts: Vec<Pattern>,
    log_severity: Option<(i32, bool)>,
}

/// What one item looks like to a matcher.
pub enum Subject<'a> {
    Span(&'a Span),
    Log(&'a LogRecord),
    Metric(&'a Metric),
}

impl Matcher {
    pub fn new(config: &MatchConfig) -> Result<Matcher, String> {
        let t = config.match_type;
        let patterns = |list: &[String]| list.iter().map(|p| Pattern::new(t, p)).collect::<Result<Vec<_>, _>>();
        let rules = |list: &[AttributeMatch]| {
            list.iter()
                .map(|a| {
                    let value = match (&a.value, t) {
                        (None, _) => None,
                        (Some(v), MatchType::Strict) => Some(ValueRule::Equal(json_value(v))),
                        (Some(serde_json::Value::String(p)), MatchType::Regexp) => {
                            Some(ValueRule::Matches(Regex::new(p).map_err(|e| format!("invalid regexp `{p}`: {e}"))?))
                        }
                        (Some(_), MatchType::Regexp) => {
                            return Err(format!("attribute `{}`: a regexp value must be a string", a.key));
                        }
                    };
                    Ok(AttributeRule { key: a.key.clone(), value })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let span_kinds =
            config
                .span_kinds
                .iter()
                .map(|k| {
                    SPAN_KINDS.iter().position(|n| n == k).map(|i| i as i32).ok_or_else(|| {
                        format!("span_kinds: `{k}` is not a span kind; kinds: {}", SPAN_KINDS.join(", "))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        let libraries = config
            .libraries
            .iter()
            .map(|l| Ok((Pattern::new(t, &l.name)?, l.version.as_deref().map(|v| Pattern::new(t, v)).transpose()?)))
            .collect::<Result<Vec<_>, String>>()?;
        let log_severity = match &config.log_severity_number {
            None => None,
            Some(s) => Some((severity(&s.min)?, s.match_undefined)),
        };
        let matcher = Matcher {
            services: patterns(&config.services)?,
            span_names: patterns(&config.span_names)?,
            span_kinds,
            metric_names: patterns(&config.metric_names)?,
            attributes: rules(&config.attributes)?,
            resources: rules(&config.resources)?,
            libraries,
            log_bodies: patterns(&config.log_bodies)?,
            log_severity_texts: patterns(&config.log_severity_texts)?,
            log_severity,
        };
        if matcher.is_empty() {
            return Err("a match block needs at least one property (services, span_names, attributes, resources, libraries, log_bodies, metric_names …)".into());
        }
        Ok(matcher)
    }

    fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.span_names.is_empty()
            && self.span_kinds.is_empty()
            && self.metric_names.is_empty()
            && self.attributes.is_empty()
            && self.resources.is_empty()
            && self.libraries.is_empty()
            && self.log_bodies.is_empty()
            && self.log_severity_texts.is_empty()
            && self.log_severity.is_none()
    }

    /// Whether the properties match the item.
    pub fn matches(&self, resource: &Resource, scope: &InstrumentationScope, subject: &Subject<'_>) -> bool {
        let signal = match subject {
            Subject::Span(_) => Signal::Traces,
            Subject::Log(_) => Signal::Logs,
            Subject::Metric(_) => Signal::Metrics,
        };
        let span_only = !self.services.is_empty() || !self.span_names.is_empty() || !self.span_kinds.is_empty();
        let log_only =
            !self.log_bodies.is_empty() || !self.log_severity_texts.is_empty() || self.log_severity.is_some();
        let foreign = match signal {
            Signal::Traces => log_only || !self.metric_names.is_empty(),
            Signal::Logs => span_only || !self.metric_names.is_empty(),
            Signal::Metrics => span_only || log_only || !self.attributes.is_empty(),
        };
        if foreign {
            return false;
        }
        if !self.resources.iter().all(|r| rule_matches(r, &resource.attributes)) {
            return false;
        }
        if !self.libraries.is_empty()
            && !self.libraries.iter().any(|(name, version)| {
                name.matches(&scope.name) && version.as_ref().is_none_or(|v| v.matches(&scope.version))
            })
        {
            return false;
        }
        let any = |patterns: &[Pattern], s: &str| patterns.is_empty() || patterns.iter().any(|p| p.matches(s));
        match subject {
            Subject::Span(span) => {
                let service = resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| match Val::of(kv.value.as_ref()) {
                        Val::Str(s) => Some(s.into_owned()),
                        _ => None,
                    })
                    .unwrap_or_default();
                any(&self.services, &service)
                    && any(&self.span_names, &span.name)
                    && (self.span_kinds.is_empty() || self.span_kinds.contains(&span.kind))
                    && self.attributes.iter().all(|r| rule_matches(r, &span.attributes))
            }
            Subject::Log(record) => {
                let body = || crate::ottl::paths::body_string(record.body.as_ref());
                (self.log_bodies.is_empty() || self.log_bodies.iter().any(|p| p.matches(&body())))
                    && any(&self.log_severity_texts, &record.severity_text)
                    && self.log_severity.is_none_or(|(min, undefined)| {
                        record.severity_number >= min || (undefined && record.severity_number == 0)
                    })
                    && self.attributes.iter().all(|r| rule_matches(r, &record.attributes))
            }
            Subject::Metric(metric) => any(&self.metric_names, &metric.name),
        }
    }
}

fn rule_matches(rule: &AttributeRule, attributes: &[KeyValue]) -> bool {
    let Some(kv) = attributes.iter().find(|kv| kv.key == rule.key) else { return false };
    match &rule.value {
        None => true,
        Some(ValueRule::Equal(want)) => kv.value.as_ref() == Some(want),
        Some(ValueRule::Matches(regex)) => match Val::of(kv.value.as_ref()) {
            Val::Str(s) => regex.is_match(&s),
            _ => false,
        },
    }
}

/// A YAML value as the OTLP value it stands for.
pub fn json_value(value: &serde_json::Value) -> AnyValue {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList, any_value::Value as V};
    let value = match value {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(V::BoolValue(*b)),
        serde_json::Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        serde_json::Value::String(s) => Some(V::StringValue(s.clone())),
        serde_json::Value::Array(a) => Some(V::ArrayValue(ArrayValue { values: a.iter().map(json_value).collect() })),
        serde_json::Value::Object(o) => Some(V::KvlistValue(KeyValueList {
            values: o
                .iter()
                .map(|(k, v)| KeyValue { key: k.clone(), value: Some(json_value(v)), ..Default::default() })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// `9`, `"INFO"`, `"warn2"`: a severity number.
fn severity(min: &serde_json::Value) -> Result<i32, String> {
    let number = match min {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => {
            crate::ottl::Kind::Log.enum_value(&format!("SEVERITY_NUMBER_{}", s.to_ascii_uppercase()))
        }
        _ => None,
    };
    number
        .filter(|n| (1..=24).contains(n))
        .map(|n| n as i32)
        .ok_or_else(|| format!("severity_number.min: `{min}` is not 1–24 or TRACE … FATAL4"))
}
