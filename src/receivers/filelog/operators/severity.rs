//! The parsers' `severity` block: maps a field's value to an OpenTelemetry severity
//! number with the upstream aliases, `preset`, `mapping` (values, lists, `min`/`max`
//! ranges, `2xx`…`5xx`) and `overwrite_text`.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use serde::Deserialize;

use super::field::Field;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    pub parse_from: Field,
    /// `default` (the aliases, their numbers 1–24, and `warning`, `err`…), `otel` or
    /// `aliases` (the aliases and numbers only), or `none`.
    #[serde(default)]
    pub preset: Preset,
    /// Alias → a value, a list of values and `{min, max}` ranges, or `2xx`…`5xx`.
    #[serde(default)]
    pub mapping: BTreeMap<String, serde_json::Value>,
    /// Set the text to the standard short name (`ERROR`, `INFO3`) instead of the
    /// value read. Default false.
    #[serde(default)]
    pub overwrite_text: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    #[default]
    Default,
    #[serde(alias = "aliases")]
    Otel,
    None,
}

/// The aliases, by severity number (0 is `default`).
const ALIASES: [&str; 25] = [
    "default", "trace", "trace2", "trace3", "trace4", "debug", "debug2", "debug3", "debug4", "info", "info2", "info3",
    "info4", "warn", "warn2", "warn3", "warn4", "error", "error2", "error3", "error4", "fatal", "fatal2", "fatal3",
    "fatal4",
];

/// A compiled severity mapping.
#[derive(Clone, Debug)]
pub struct SeverityParser {
    pub parse_from: Field,
    /// The preset's values (lowercase).
    preset: HashMap<String, i32>,
    /// The mapping's values (lowercase) and ranges, which win over the preset.
    values: HashMap<String, i32>,
    ranges: Vec<(i64, i64, i32)>,
    overwrite_text: bool,
}

impl SeverityParser {
    pub fn new(config: &SeverityConfig) -> Result<SeverityParser, String> {
        let mut preset = HashMap::new();
        if config.preset != Preset::None {
            for (number, alias) in ALIASES.iter().enumerate().skip(1) {
                preset.insert(alias.to_string(), number as i32);
                preset.insert(number.to_string(), number as i32);
            }
        }
        if config.preset == Preset::Default {
            for (i, suffix) in ["", "2", "3", "4"].iter().enumerate() {
                preset.insert(format!("warning{suffix}"), 13 + i as i32);
                preset.insert(format!("err{suffix}"), 17 + i as i32);
            }
        }
        let mut values = HashMap::new();
        let mut ranges = Vec::new();
        for (alias, spec) in &config.mapping {
            let level = alias.to_lowercase();
            let number = ALIASES.iter().position(|a| *a == level).or_else(|| level.parse().ok().filter(|n| *n <= 24));
            let Some(number) = number else {
                return Err(format!("severity mapping: unknown level `{alias}`; valid: {}", ALIASES.join(", ")));
            };
            let number = number as i32;
            let items = match spec {
                serde_json::Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            for item in items {
                match item {
                    serde_json::Value::String(s) => match http_class(&s) {
                        Some((min, max)) => ranges.push((min, max, number)),
                        None => {
                            values.insert(s.to_lowercase(), number);
                        }
                    },
                    serde_json::Value::Number(n) => {
                        values.insert(n.to_string(), number);
                    }
                    serde_json::Value::Bool(b) => {
                        values.insert(b.to_string(), number);
                    }
                    serde_json::Value::Object(range) => {
                        let bound = |key: &str| range.get(key).and_then(serde_json::Value::as_i64);
                        let (Some(min), Some(max)) = (bound("min"), bound("max")) else {
                            return Err(format!("severity mapping `{alias}`: a range needs integer `min` and `max`"));
                        };
                        if range.len() != 2 {
                            return Err(format!("severity mapping `{alias}`: a range has exactly `min` and `max`"));
                        }
                        ranges.push((min.min(max), min.max(max), number));
                    }
                    other => return Err(format!("severity mapping `{alias}`: cannot map {other}")),
                }
            }
        }
        Ok(SeverityParser {
            parse_from: config.parse_from.clone(),
            preset,
            values,
            ranges,
            overwrite_text: config.overwrite_text,
        })
    }

    /// The severity number and text for a value. A value in no mapping is severity 0
    /// (unspecified) with the value as its text, as upstream.
    pub fn map(&self, value: &AnyValue) -> Result<(i32, String), String> {
        let (text, number) = match &value.value {
            Some(Value::StringValue(s)) => (s.clone(), s.trim().parse::<i64>().ok()),
            Some(Value::IntValue(n)) => (n.to_string(), Some(*n)),
            Some(Value::DoubleValue(f)) if f.fract() == 0.0 && f.abs() < 1e15 => (f.to_string(), Some(*f as i64)),
            Some(Value::DoubleValue(f)) => (f.to_string(), None),
            Some(Value::BoolValue(b)) => (b.to_string(), None),
            Some(Value::BytesValue(b)) => (String::from_utf8_lossy(b).into_owned(), None),
            _ => return Err("the severity field is not a string or a number".into()),
        };
        let lower = text.to_lowercase();
        let found = self
            .values
            .get(&lower)
            .copied()
            .or_else(|| {
                number.and_then(|n| self.ranges.iter().find(|(lo, hi, _)| (*lo..=*hi).contains(&n))).map(|r| r.2)
            })
            .or_else(|| self.preset.get(&lower).copied());
        let severity = found.unwrap_or(0);
        let text = if self.overwrite_text { short_name(severity) } else { text };
        Ok((severity, text))
    }
}

fn http_class(text: &str) -> Option<(i64, i64)> {
    match text {
        "2xx" => Some((200, 299)),
        "3xx" => Some((300, 399)),
        "4xx" => Some((400, 499)),
        "5xx" => Some((500, 599)),
        _ => None,
    }
}

/// The data model's short name: `TRACE`, `INFO3`, `FATAL4`; `DEFAULT` for 0.
fn short_name(severity: i32) -> String {
    ALIASES.get(severity as usize).map(|a| a.to_uppercase()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(yaml_mapping: serde_json::Value, preset: Preset, overwrite_text: bool) -> SeverityParser {
        let mapping = serde_json::from_value(yaml_mapping).unwrap();
        SeverityParser::new(&SeverityConfig { parse_from: Field::BODY, preset, mapping, overwrite_text }).unwrap()
    }

    fn s(text: &str) -> AnyValue {
        AnyValue { value: Some(Value::StringValue(text.into())) }
    }

    #[test]
    fn aliases_values_ranges_and_http_classes() {
        let p = parser(
            serde_json::json!({"error": ["oops", {"min": 1, "max": 5}], "warn": "5xx", "info3": "medium", "debug": 1234}),
            Preset::Default,
            false,
        );
        assert_eq!(p.map(&s("ERROR")).unwrap(), (17, "ERROR".into()));
        assert_eq!(p.map(&s("Oops")).unwrap(), (17, "Oops".into()));
        assert_eq!(p.map(&s("medium")).unwrap(), (11, "medium".into()));
        assert_eq!(p.map(&s("503")).unwrap(), (13, "503".into()));
        let int = |n| AnyValue { value: Some(Value::IntValue(n)) };
        assert_eq!(p.map(&int(3)).unwrap(), (17, "3".into()));
        assert_eq!(p.map(&int(1234)).unwrap(), (5, "1234".into()));
        assert_eq!(p.map(&s("unknown")).unwrap(), (0, "unknown".into()));
        assert_eq!(p.map(&s("trace4")).unwrap(), (4, "trace4".into()));
        assert_eq!(p.map(&s("WARNING")).unwrap(), (13, "WARNING".into()));
        assert_eq!(p.map(&s("err3")).unwrap(), (19, "err3".into()));
        assert_eq!(p.map(&s("21")).unwrap(), (21, "21".into()));
        let otel = parser(serde_json::json!({"ERROR": {"min": 9, "max": 7}}), Preset::Otel, false);
        assert_eq!(otel.map(&s("warning")).unwrap().0, 0);
        assert_eq!(otel.map(&int(8)).unwrap().0, 17);
        let none = parser(serde_json::json!({"error": "nooo!"}), Preset::None, true);
        assert_eq!(none.map(&s("ERROR")).unwrap(), (0, "DEFAULT".into()));
        assert_eq!(none.map(&s("nooo!")).unwrap(), (17, "ERROR".into()));
        assert!(p.map(&AnyValue::default()).is_err());
    }

    #[test]
    fn bad_mappings_are_refused() {
        for bad in [
            serde_json::json!({"errors": "x"}),
            serde_json::json!({"error": {"min": 5}}),
            serde_json::json!({"error": {"min": 5, "max": 1, "step": 1}}),
            serde_json::json!({"error": [null]}),
        ] {
            let mapping = serde_json::from_value(bad.clone()).unwrap();
            let config =
                SeverityConfig { parse_from: Field::BODY, preset: Preset::Default, mapping, overwrite_text: false };
            assert!(SeverityParser::new(&config).is_err(), "{bad}");
        }
    }
}
