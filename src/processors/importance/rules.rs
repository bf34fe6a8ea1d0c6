//! The `importance` rules compiled: globs and OTTL conditions, per signal, each
//! marked by whether it looks only at the resource.

use globset::{Glob, GlobBuilder, GlobMatcher};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};

use super::config::{ImportanceConfig, MatchConfig};
use crate::ottl::record::{Item, Kind, Record};
use crate::ottl::{Condition, OttlError};
use crate::pdata::Signal;

/// A compiled glob. The shapes rules mostly use (a literal, `prefix*`, `*suffix`,
/// `*part*`) compare strings directly, several times faster than the general
/// matcher, which runs once per record and rule.
enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Glob(GlobMatcher),
}

impl Pattern {
    fn is_match(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(p) => text == p,
            Pattern::Prefix(p) => text.starts_with(p.as_str()),
            Pattern::Suffix(p) => text.ends_with(p.as_str()),
            Pattern::Contains(p) => text.contains(p.as_str()),
            Pattern::Glob(g) => g.is_match(text),
        }
    }
}

fn glob(pattern: &str, case_insensitive: bool) -> Result<Pattern, String> {
    let matcher = GlobBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .literal_separator(false)
        .build()
        .map(|g: Glob| g.compile_matcher())
        .map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
    let literal = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}', '\\']);
    if case_insensitive {
        return Ok(Pattern::Glob(matcher));
    }
    let inner = pattern.strip_prefix('*').unwrap_or(pattern);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    Ok(match (pattern.starts_with('*'), pattern.ends_with('*')) {
        _ if !literal(inner) || inner.is_empty() => Pattern::Glob(matcher),
        (false, false) => Pattern::Exact(inner.to_string()),
        (false, true) => Pattern::Prefix(inner.to_string()),
        (true, false) => Pattern::Suffix(inner.to_string()),
        (true, true) => Pattern::Contains(inner.to_string()),
    })
}

/// Checks a `match` block's globs.
pub fn check_match(m: &MatchConfig) -> Result<(), String> {
    Match::compile(m).map(|_| ())
}

/// A compiled `match` block: every glob given must match.
struct Match {
    resource: Vec<(String, Pattern)>,
    attributes: Vec<(String, Pattern)>,
    severity: Option<Pattern>,
    span_name: Option<Pattern>,
    span_kind: Option<Pattern>,
    span_status: Option<Pattern>,
}

impl Match {
    fn compile(m: &MatchConfig) -> Result<Match, String> {
        let pairs = |map: &std::collections::BTreeMap<String, String>| {
            map.iter().map(|(k, v)| Ok((k.clone(), glob(v, false)?))).collect::<Result<Vec<_>, String>>()
        };
        let span = m.span.as_ref();
        let compiled = Match {
            resource: pairs(&m.resource)?,
            attributes: pairs(&m.attributes)?,
            severity: m.severity.as_deref().map(|g| glob(g, true)).transpose()?,
            span_name: span.and_then(|s| s.name.as_deref()).map(|g| glob(g, false)).transpose()?,
            span_kind: span.and_then(|s| s.kind.as_deref()).map(|g| glob(g, true)).transpose()?,
            span_status: span.and_then(|s| s.status.as_deref()).map(|g| glob(g, true)).transpose()?,
        };
        if compiled.resource.is_empty() && !compiled.looks_below_resource() {
            return Err("give at least one of resource, attributes, severity, span".into());
        }
        Ok(compiled)
    }

    fn looks_below_resource(&self) -> bool {
        !self.attributes.is_empty()
            || self.severity.is_some()
            || self.span_name.is_some()
            || self.span_kind.is_some()
            || self.span_status.is_some()
    }

    /// Whether this block can match anything of `signal`.
    fn applies_to(&self, signal: Signal) -> bool {
        let spans = self.span_name.is_some() || self.span_kind.is_some() || self.span_status.is_some();
        match signal {
            Signal::Logs => !spans,
            Signal::Traces => self.severity.is_none(),
            Signal::Metrics => !spans && self.severity.is_none(),
        }
    }

    fn matches(&self, record: &Record<'_>) -> bool {
        if !self.resource.iter().all(|(k, g)| attribute_matches(&record.resource.attributes, k, g)) {
            return false;
        }
        if !self.attributes.is_empty() {
            let own = record.attributes();
            if !self.attributes.iter().all(|(k, g)| attribute_matches(own, k, g)) {
                return false;
            }
        }
        if let Some(g) = &self.severity {
            let Item::Log(log) = record.item else { return false };
            let text =
                if log.severity_text.is_empty() { severity_name(log.severity_number) } else { &log.severity_text };
            if !g.is_match(text) {
                return false;
            }
        }
        if self.span_name.is_some() || self.span_kind.is_some() || self.span_status.is_some() {
            let Item::Span(s) = record.item else { return false };
            if self.span_name.as_ref().is_some_and(|g| !g.is_match(&s.name)) {
                return false;
            }
            if self.span_kind.as_ref().is_some_and(|g| !g.is_match(span_kind_name(s.kind))) {
                return false;
            }
            let code = s.status.as_ref().map_or(0, |st| st.code);
            if self.span_status.as_ref().is_some_and(|g| !g.is_match(status_name(code))) {
                return false;
            }
        }
        true
    }
}

fn attribute_matches(attributes: &[KeyValue], key: &str, glob: &Pattern) -> bool {
    let Some(value) = attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
    else {
        return false;
    };
    match value {
        any_value::Value::StringValue(s) => glob.is_match(s),
        any_value::Value::IntValue(i) => glob.is_match(&i.to_string()),
        any_value::Value::DoubleValue(d) => glob.is_match(&d.to_string()),
        any_value::Value::BoolValue(b) => glob.is_match(if *b { "true" } else { "false" }),
        _ => false,
    }
}

fn severity_name(number: i32) -> &'static str {
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "",
    }
}

fn span_kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => "internal",
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

fn status_name(code: i32) -> &'static str {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Ok) => "ok",
        Ok(status::StatusCode::Error) => "error",
        _ => "unset",
    }
}

enum Test {
    Match(Box<Match>),
    Condition(Condition),
}

/// One rule as it runs on one signal.
pub struct Rule {
    pub score: f64,
    /// It reads nothing below the resource: the same answer for every record of one.
    pub resource_only: bool,
    test: Test,
}

impl Rule {
    /// Whether the rule matches; a condition that fails to evaluate does not.
    pub fn matches(&self, record: &Record<'_>) -> Result<bool, String> {
        match &self.test {
            Test::Match(m) => Ok(m.matches(record)),
            Test::Condition(c) => c.eval(record),
        }
    }
}

/// The rules of each signal, by [`Signal::index`], in their order.
pub struct Rules {
    pub by_signal: [Vec<Rule>; 3],
}

impl Rules {
    /// Compiles every rule for each signal it can apply to. A condition is placed in
    /// its context as the filter processor infers it; one whose paths fit no signal
    /// is an error, with its text.
    pub fn compile(config: &ImportanceConfig) -> Result<Rules, (String, OttlError)> {
        let mut by_signal: [Vec<Rule>; 3] = Default::default();
        for rule in &config.rules {
            if let Some(m) = &rule.matches {
                for signal in Signal::ALL {
                    // Checked in validate; cannot fail here.
                    let Ok(compiled) = Match::compile(m) else { continue };
                    if compiled.applies_to(signal) {
                        let resource_only = !compiled.looks_below_resource();
                        by_signal[signal.index()].push(Rule {
                            score: rule.score,
                            resource_only,
                            test: Test::Match(Box::new(compiled)),
                        });
                    }
                }
            }
            if let Some(text) = &rule.condition {
                let parsed = crate::ottl::parse_condition(text).map_err(|e| (text.clone(), e))?;
                let mut first_error = None;
                let mut placed = false;
                for signal in Signal::ALL {
                    let inferred = crate::ottl::statement::infer(signal, &[], &[&parsed], |kind| {
                        let kind =
                            if signal == Signal::Metrics && kind == Kind::Metric { Kind::DataPoint } else { kind };
                        if kind == Kind::SpanEvent {
                            return Err(OttlError::new(
                                "importance scores spans, data points and log records; span event paths cannot score them",
                                Default::default(),
                            ));
                        }
                        Condition::compile(kind, &parsed)
                    });
                    match inferred {
                        Ok((kind, condition)) => {
                            placed = true;
                            by_signal[signal.index()].push(Rule {
                                score: rule.score,
                                resource_only: kind == Kind::Resource,
                                test: Test::Condition(condition),
                            });
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                if !placed && let Some(e) = first_error {
                    return Err((text.clone(), e));
                }
            }
        }
        Ok(Rules { by_signal })
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    #[test]
    fn direct_shapes_match_as_the_glob_does() {
        let cases = [
            ("critical", ["critical", "critical2", "xcritical", ""]),
            ("loadgen*", ["loadgen", "loadgen-1", "xloadgen", "load"]),
            ("*-test", ["job-test", "-test", "job-test-2", "test"]),
            ("*sql*", ["mysqld", "sql", "postgres", "pgsql"]),
            ("*", ["", "a", "a/b", "*"]),
            ("**", ["", "a", "a/b", "*"]),
            ("kworker/*", ["kworker/0:1", "kworker", "kworker/", "x/kworker/1"]),
            ("a?c", ["abc", "ac", "abbc", "a?c"]),
            ("[ab]*", ["a1", "b", "c", ""]),
            ("*.{db,sql}", ["x.db", "x.sql", "x.txt", ".db"]),
            ("a\\*b", ["a*b", "axb", "a\\xb", "ab"]),
        ];
        for (pattern, texts) in cases {
            let reference = GlobBuilder::new(pattern).literal_separator(false).build().unwrap().compile_matcher();
            let compiled = glob(pattern, false).unwrap();
            for text in texts {
                assert_eq!(compiled.is_match(text), reference.is_match(text), "{pattern} on {text:?}");
            }
        }
        assert!(matches!(glob("critical", false).unwrap(), Pattern::Exact(_)));
        assert!(matches!(glob("loadgen*", false).unwrap(), Pattern::Prefix(_)));
        assert!(matches!(glob("*-test", false).unwrap(), Pattern::Suffix(_)));
        assert!(matches!(glob("*sql*", false).unwrap(), Pattern::Contains(_)));
        assert!(matches!(glob("a?c", false).unwrap(), Pattern::Glob(_)));
        assert!(glob("ERROR", true).unwrap().is_match("error"), "case-insensitive goes to the glob");
    }
}
