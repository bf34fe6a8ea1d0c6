//! The `operators` of the `filelog` receiver, with the upstream (stanza) names and
//! options: `container` (run by the reader, which keeps its per-file state), the
//! `json_parser`, `regex_parser` and `key_value_parser` parsers with `parse_from`,
//! `parse_to`, `body`, `timestamp` and `severity`, and the `add`, `remove`, `move`
//! and `filter` transformers. Each takes `id`, `output` (the next operator only: the
//! chain is linear), `if` and `on_error`.

pub mod expr;
pub mod field;
pub mod severity;
pub mod timestamp;

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use regex::Regex;
use serde::Deserialize;

use super::container::{ContainerConfig, OnError};
use expr::Expr;
use field::{Entry, Field, string};
use severity::{SeverityConfig, SeverityParser};
use timestamp::{LayoutType, TimeParser};

/// One entry of `operators`, by its `type`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperatorConfig {
    Container(ContainerConfig),
    JsonParser(ParserConfig),
    RegexParser(ParserConfig),
    KeyValueParser(ParserConfig),
    Add(TransformerConfig),
    Remove(TransformerConfig),
    Move(TransformerConfig),
    Filter(TransformerConfig),
}

/// The options of the three parsers; those of one parser only are refused on the others.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParserConfig {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    /// Parse only entries for which this expression is true.
    #[serde(default, rename = "if")]
    pub condition: Option<Expr>,
    #[serde(default)]
    pub on_error: OnError,
    /// Field holding the text to parse. Default `body`.
    #[serde(default = "body_field")]
    pub parse_from: Field,
    /// Where the parsed map goes. Default `attributes` (merged into them).
    #[serde(default = "attributes_field")]
    pub parse_to: Field,
    /// A field to copy into the body after parsing.
    #[serde(default)]
    pub body: Option<Field>,
    #[serde(default)]
    pub timestamp: Option<TimestampConfig>,
    #[serde(default)]
    pub severity: Option<SeverityConfig>,
    /// `json_parser`: whole numbers become integers instead of doubles. Default false.
    #[serde(default)]
    pub parse_ints: Option<bool>,
    /// `regex_parser`: the expression; its named groups become fields. Required there.
    #[serde(default)]
    pub regex: Option<String>,
    /// `key_value_parser`: between a key and its value. Default `=`.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// `key_value_parser`: between pairs. Default: any run of whitespace (quotes respected).
    #[serde(default)]
    pub pair_delimiter: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    pub parse_from: Field,
    #[serde(default)]
    pub layout_type: LayoutType,
    pub layout: String,
    /// IANA zone for times without an offset. Default: the local zone, or UTC when the
    /// layout ends in `Z`.
    #[serde(default)]
    pub location: Option<String>,
}

/// The options of `add`, `remove`, `move` and `filter`; those of another type are
/// refused.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    /// Apply only to entries for which this is true.
    #[serde(default, rename = "if")]
    pub condition: Option<Expr>,
    /// `add`, `remove`, `move`. (`filter` drops the entries its expression fails on.)
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// `add`: where to write; `remove`: what to remove (`attributes` or `resource`
    /// alone removes all of them).
    #[serde(default)]
    pub field: Option<Field>,
    /// `add`: a string, number, boolean, list or map; `EXPR(...)` evaluates an expression.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// `move`: from where, to where.
    #[serde(default)]
    pub from: Option<Field>,
    #[serde(default)]
    pub to: Option<Field>,
    /// `filter`: entries for which this is true are dropped.
    #[serde(default)]
    pub expr: Option<Expr>,
    /// `filter`: share of matching entries dropped, 0 to 1. Default 1.
    #[serde(default)]
    pub drop_ratio: Option<f64>,
}

fn body_field() -> Field {
    Field::BODY
}
fn attributes_field() -> Field {
    Field::ATTRIBUTES
}

impl OperatorConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            OperatorConfig::Container(_) => "container",
            OperatorConfig::JsonParser(_) => "json_parser",
            OperatorConfig::RegexParser(_) => "regex_parser",
            OperatorConfig::KeyValueParser(_) => "key_value_parser",
            OperatorConfig::Add(_) => "add",
            OperatorConfig::Remove(_) => "remove",
            OperatorConfig::Move(_) => "move",
            OperatorConfig::Filter(_) => "filter",
        }
    }

    /// The `id` it was given.
    fn given_id(&self) -> Option<&str> {
        let id = match self {
            OperatorConfig::Container(c) => &c.id,
            OperatorConfig::JsonParser(c) | OperatorConfig::RegexParser(c) | OperatorConfig::KeyValueParser(c) => &c.id,
            OperatorConfig::Add(c)
            | OperatorConfig::Remove(c)
            | OperatorConfig::Move(c)
            | OperatorConfig::Filter(c) => &c.id,
        };
        id.as_deref()
    }

    fn output(&self) -> Option<&str> {
        match self {
            OperatorConfig::Container(_) => None,
            OperatorConfig::JsonParser(c) | OperatorConfig::RegexParser(c) | OperatorConfig::KeyValueParser(c) => {
                c.output.as_deref()
            }
            OperatorConfig::Add(c)
            | OperatorConfig::Remove(c)
            | OperatorConfig::Move(c)
            | OperatorConfig::Filter(c) => c.output.as_deref(),
        }
    }
}

/// Each operator's id: its `id`, or as upstream its type, numbered from the second of
/// a type on (`json_parser`, `json_parser1`, …).
fn ids(operators: &[OperatorConfig]) -> Vec<String> {
    let given: std::collections::HashSet<&str> = operators.iter().filter_map(OperatorConfig::given_id).collect();
    let mut taken = std::collections::HashSet::new();
    operators
        .iter()
        .map(|op| {
            if let Some(id) = op.given_id() {
                return id.to_string();
            }
            let mut n = 0;
            loop {
                let id = if n == 0 { op.type_name().to_string() } else { format!("{}{n}", op.type_name()) };
                if !given.contains(id.as_str()) && taken.insert(id.clone()) {
                    return id;
                }
                n += 1;
            }
        })
        .collect()
}

/// Checks the operator list as a whole and each operator (by compiling it).
pub fn validate(operators: &[OperatorConfig]) -> Result<(), String> {
    let ids = ids(operators);
    let mut seen = std::collections::HashSet::new();
    for (i, op) in operators.iter().enumerate() {
        if !seen.insert(&ids[i]) {
            return Err(format!("operators: two operators have the id `{}`", ids[i]));
        }
        if matches!(op, OperatorConfig::Container(_)) && i > 0 {
            return Err("operators: the container operator must come first".into());
        }
        if let Some(output) = op.output() {
            let next = ids.get(i + 1);
            if next.map(String::as_str) != Some(output) {
                return Err(format!(
                    "operators: `{}` has output `{output}`, but operators run in order: the output can only be the next operator{}",
                    ids[i],
                    next.map(|n| format!(" (`{n}`)")).unwrap_or_default()
                ));
            }
        }
    }
    Operators::new(operators).map(|_| ())
}

/// What running the operators over some entries came to.
#[derive(Debug, Default)]
pub struct Report {
    /// Operator errors (a record that did not parse, an expression that failed).
    pub errors: u64,
    /// The first error that is to be logged (not `_quiet`).
    pub first_error: Option<String>,
    /// Records dropped by `filter`.
    pub filtered: u64,
    /// Records dropped by `on_error: drop`/`drop_quiet`.
    pub dropped: u64,
}

/// The compiled chain (without `container`, which the reader runs).
#[derive(Debug)]
pub struct Operators {
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    id: String,
    condition: Option<Expr>,
    on_error: OnError,
    action: Action,
}

#[derive(Debug)]
enum Action {
    Parse(Box<Parser>),
    Add(Field, AddValue),
    Remove(Field),
    Move(Field, Field),
    Filter(Expr, f64),
}

#[derive(Debug)]
enum AddValue {
    Static(AnyValue),
    Expr(Expr),
}

#[derive(Debug)]
struct Parser {
    kind: ParserKind,
    parse_from: Field,
    parse_to: Field,
    body: Option<Field>,
    timestamp: Option<(Field, TimeParser)>,
    severity: Option<SeverityParser>,
}

#[derive(Debug)]
enum ParserKind {
    Json { parse_ints: bool },
    Regex(Regex),
    KeyValue { delimiter: String, pair_delimiter: Option<String> },
}

impl Operators {
    pub fn new(configs: &[OperatorConfig]) -> Result<Operators, String> {
        let mut steps = Vec::new();
        for (config, id) in configs.iter().zip(ids(configs)) {
            let fail = |e: String| format!("operator `{id}`: {e}");
            let (condition, on_error, action) = match config {
                OperatorConfig::Container(_) => continue,
                OperatorConfig::JsonParser(c) | OperatorConfig::RegexParser(c) | OperatorConfig::KeyValueParser(c) => {
                    let parser = Parser::new(config.type_name(), c).map_err(fail)?;
                    (c.condition.clone(), c.on_error, Action::Parse(Box::new(parser)))
                }
                OperatorConfig::Add(c)
                | OperatorConfig::Remove(c)
                | OperatorConfig::Move(c)
                | OperatorConfig::Filter(c) => {
                    let action = transformer(config.type_name(), c).map_err(fail)?;
                    // An expression that fails drops the entry, as upstream's filter does.
                    let on_error = if matches!(action, Action::Filter(..)) {
                        OnError::Drop
                    } else {
                        c.on_error.unwrap_or_default()
                    };
                    (c.condition.clone(), on_error, action)
                }
            };
            steps.push(Step { id, condition, on_error, action });
        }
        Ok(Operators { steps })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the chain over one entry; `None` when it was dropped.
    pub fn run<'r>(&self, mut entry: Entry<'r>, report: &mut Report) -> Option<Entry<'r>> {
        for step in &self.steps {
            let outcome = match &step.condition {
                Some(condition) => match condition.matches(&entry) {
                    Ok(false) => continue,
                    Ok(true) => step.apply(&mut entry),
                    Err(e) => Err(format!("`if` failed: {e}")),
                },
                None => step.apply(&mut entry),
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => {
                    report.filtered += 1;
                    return None;
                }
                Err(e) => {
                    report.errors += 1;
                    if matches!(step.on_error, OnError::Send | OnError::Drop) && report.first_error.is_none() {
                        report.first_error = Some(format!("operator `{}`: {e}", step.id));
                    }
                    if matches!(step.on_error, OnError::Drop | OnError::DropQuiet) {
                        report.dropped += 1;
                        return None;
                    }
                }
            }
        }
        Some(entry)
    }
}

impl Step {
    /// Applies the action; false when the entry is to be dropped (filtered).
    fn apply(&self, entry: &mut Entry<'_>) -> Result<bool, String> {
        match &self.action {
            Action::Parse(parser) => parser.apply(entry).map(|()| true),
            Action::Add(field, AddValue::Static(value)) => field.set(entry, value.clone()).map(|()| true),
            Action::Add(field, AddValue::Expr(expr)) => {
                let value = expr.value(entry)?;
                field.set(entry, value).map(|()| true)
            }
            Action::Remove(field) => match field.take(entry) {
                Some(_) => Ok(true),
                None => Err(format!("remove: the entry has no field `{field}`")),
            },
            Action::Move(from, to) => {
                let Some(value) = from.take(entry) else {
                    return Err(format!("move: the entry has no field `{from}`"));
                };
                to.set(entry, value).map(|()| true)
            }
            Action::Filter(expr, ratio) => match expr.matches(entry) {
                Ok(true) => Ok(*ratio < 1.0 && fastrand::f64() >= *ratio),
                Ok(false) => Ok(true),
                Err(e) => Err(format!("filter: {e}")),
            },
        }
    }
}

/// Checks a transformer's options for its type: what it needs, and nothing of another type's.
fn transformer(type_name: &str, c: &TransformerConfig) -> Result<Action, String> {
    let given = [
        ("field", c.field.is_some()),
        ("value", c.value.is_some()),
        ("from", c.from.is_some()),
        ("to", c.to.is_some()),
        ("expr", c.expr.is_some()),
        ("drop_ratio", c.drop_ratio.is_some()),
        ("on_error", c.on_error.is_some()),
    ];
    let allowed: &[&str] = match type_name {
        "add" => &["field", "value", "on_error"],
        "remove" => &["field", "on_error"],
        "move" => &["from", "to", "on_error"],
        _ => &["expr", "drop_ratio"],
    };
    if let Some((option, _)) = given.iter().find(|(option, set)| *set && !allowed.contains(option)) {
        return Err(format!("`{option}` is not an option of {type_name}"));
    }
    let required = |option: &str| format!("{type_name} needs `{option}`");
    let field = || c.field.clone().ok_or_else(|| required("field"));
    Ok(match type_name {
        "add" => Action::Add(field()?, add_value(c.value.as_ref().ok_or_else(|| required("value"))?)?),
        "remove" => Action::Remove(field()?),
        "move" => {
            Action::Move(c.from.clone().ok_or_else(|| required("from"))?, c.to.clone().ok_or_else(|| required("to"))?)
        }
        _ => {
            let expr = c.expr.clone().ok_or_else(|| required("expr"))?;
            let ratio = c.drop_ratio.unwrap_or(1.0);
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("drop_ratio must be between 0 and 1, not {ratio}"));
            }
            Action::Filter(expr, ratio)
        }
    })
}

fn add_value(value: &serde_json::Value) -> Result<AddValue, String> {
    if let serde_json::Value::String(s) = value
        && let Some(inner) = s.strip_prefix("EXPR(").and_then(|r| r.strip_suffix(')'))
    {
        return Expr::parse(inner).map(AddValue::Expr);
    }
    Ok(AddValue::Static(from_json(value.clone(), true)))
}

/// A JSON value as an OpenTelemetry value: objects become maps, whole numbers
/// integers when `ints`, other numbers doubles, `null` an empty value.
pub fn from_json(value: serde_json::Value, ints: bool) -> AnyValue {
    let value = match value {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(Value::BoolValue(b)),
        serde_json::Value::Number(n) => Some(match n.as_i64() {
            Some(i) if ints => Value::IntValue(i),
            _ => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        serde_json::Value::String(s) => Some(Value::StringValue(s)),
        serde_json::Value::Array(items) => {
            Some(Value::ArrayValue(ArrayValue { values: items.into_iter().map(|v| from_json(v, ints)).collect() }))
        }
        serde_json::Value::Object(map) => {
            return field::map(
                map.into_iter()
                    .map(|(key, v)| KeyValue { key, value: Some(from_json(v, ints)), ..Default::default() })
                    .collect(),
            );
        }
    };
    AnyValue { value }
}

impl Parser {
    fn new(type_name: &str, c: &ParserConfig) -> Result<Parser, String> {
        let only = |set: bool, option: &str, owner: &str| {
            if set && type_name != owner {
                Err(format!("`{option}` is an option of {owner}, not of {type_name}"))
            } else {
                Ok(())
            }
        };
        only(c.parse_ints.is_some(), "parse_ints", "json_parser")?;
        only(c.regex.is_some(), "regex", "regex_parser")?;
        only(c.delimiter.is_some(), "delimiter", "key_value_parser")?;
        only(c.pair_delimiter.is_some(), "pair_delimiter", "key_value_parser")?;
        if c.body.is_some() && c.parse_to.root == field::Root::Body {
            return Err("`body` cannot be used with parse_to: body".into());
        }
        let kind = match type_name {
            "json_parser" => ParserKind::Json { parse_ints: c.parse_ints.unwrap_or(false) },
            "regex_parser" => {
                let Some(pattern) = &c.regex else { return Err("`regex` is required".into()) };
                let regex = Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
                if regex.capture_names().flatten().next().is_none() {
                    return Err("the regex has no named groups, as (?P<name>...): nothing would be parsed".into());
                }
                ParserKind::Regex(regex)
            }
            _ => {
                let delimiter = c.delimiter.clone().unwrap_or_else(|| "=".into());
                if delimiter.is_empty() {
                    return Err("delimiter must not be empty".into());
                }
                if c.pair_delimiter.as_deref() == Some("") {
                    return Err("pair_delimiter must not be empty".into());
                }
                if c.pair_delimiter.as_deref() == Some(delimiter.as_str()) {
                    return Err("delimiter and pair_delimiter must differ".into());
                }
                ParserKind::KeyValue { delimiter, pair_delimiter: c.pair_delimiter.clone() }
            }
        };
        let timestamp = match &c.timestamp {
            None => None,
            Some(t) => {
                // (A layout ending in a literal `Z` reads times as UTC, as upstream.)
                let parser = TimeParser::new(t.layout_type, &t.layout, t.location.as_deref())
                    .map_err(|e| format!("timestamp: {e}"))?;
                Some((t.parse_from.clone(), parser))
            }
        };
        let severity = c.severity.as_ref().map(SeverityParser::new).transpose()?;
        Ok(Parser {
            kind,
            parse_from: c.parse_from.clone(),
            parse_to: c.parse_to.clone(),
            body: c.body.clone(),
            timestamp,
            severity,
        })
    }

    /// Parse, write `parse_to`, then `body`, timestamp and severity, in upstream's order.
    /// A timestamp or severity error comes after the parsed fields were written.
    fn apply(&self, entry: &mut Entry<'_>) -> Result<(), String> {
        let parsed = {
            let Some(value) = self.parse_from.get(entry) else {
                return Err(format!("the entry has no field `{}`", self.parse_from));
            };
            let text = match &value.value {
                Some(Value::StringValue(s)) => Cow::Borrowed(s.as_str()),
                Some(Value::BytesValue(b)) => String::from_utf8_lossy(b),
                _ => return Err(format!("`{}` is not a string", self.parse_from)),
            };
            self.kind.parse(&text)?
        };
        self.parse_to.set(entry, parsed)?;
        if let Some(body) = &self.body
            && let Some(value) = body.get(entry).cloned()
        {
            entry.record.body = Some(value);
        }
        // Both are tried; the first error is the one reported.
        let timestamp = self.timestamp.as_ref().map(|(field, parser)| {
            let value = field.get(entry).ok_or_else(|| format!("timestamp: the entry has no field `{field}`"))?;
            match &value.value {
                Some(Value::StringValue(s)) => parser.parse_str(s),
                Some(Value::IntValue(n)) => parser.parse_i64(*n),
                Some(Value::DoubleValue(f)) => parser.parse_f64(*f),
                _ => Err(format!("`{field}` is not a string or a number")),
            }
            .map_err(|e| format!("timestamp: {e}"))
        });
        let severity = self.severity.as_ref().map(|severity| {
            let value = severity
                .parse_from
                .get(entry)
                .ok_or_else(|| format!("severity: the entry has no field `{}`", severity.parse_from))?;
            severity.map(value).map_err(|e| format!("severity: {e}"))
        });
        let mut error = None;
        match timestamp {
            Some(Ok(nanos)) => entry.record.time_unix_nano = nanos,
            Some(Err(e)) => error = Some(e),
            None => {}
        }
        match severity {
            Some(Ok((number, text))) => {
                entry.record.severity_number = number;
                entry.record.severity_text = text;
            }
            Some(Err(e)) => error = error.or(Some(e)),
            None => {}
        }
        error.map_or(Ok(()), Err)
    }
}
/// Errors quote at most this much of the input.
const QUOTE: usize = 100;

fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

impl ParserKind {
    /// The parsed map.
    fn parse(&self, text: &str) -> Result<AnyValue, String> {
        match self {
            ParserKind::Json { parse_ints } => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value @ serde_json::Value::Object(_)) => Ok(from_json(value, *parse_ints)),
                Ok(_) => Err(format!("not a JSON object: {}", quote(text))),
                Err(e) => Err(format!("invalid JSON ({e}): {}", quote(text))),
            },
            ParserKind::Regex(regex) => {
                let Some(captures) = regex.captures(text) else {
                    return Err(format!("the regex does not match: {}", quote(text)));
                };
                let values = regex
                    .capture_names()
                    .enumerate()
                    .filter_map(|(i, name)| Some((i, name?)))
                    .map(|(i, name)| KeyValue {
                        key: name.to_string(),
                        // A group that took no part in the match is empty, as upstream.
                        value: Some(string(captures.get(i).map_or("", |m| m.as_str()))),
                        ..Default::default()
                    })
                    .collect();
                Ok(field::map(values))
            }
            ParserKind::KeyValue { delimiter, pair_delimiter } => {
                let pairs =
                    split_quoted(text, pair_delimiter.as_deref()).map_err(|e| format!("{e}: {}", quote(text)))?;
                if pairs.is_empty() {
                    return Err("no key-value pairs".into());
                }
                let mut parsed = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let Some((key, value)) = pair.split_once(delimiter.as_str()) else {
                        return Err(format!("`{}` has no `{delimiter}`", quote(pair)));
                    };
                    let key = unquote(key.trim());
                    if key.is_empty() {
                        return Err(format!("`{}` has an empty key", quote(pair)));
                    }
                    let value = string(unquote(value.trim()));
                    parsed.push(KeyValue { key: key.to_string(), value: Some(value), ..Default::default() });
                }
                // A repeated key keeps its last value.
                let mut values = Vec::new();
                field::merge(&mut values, parsed);
                Ok(field::map(values))
            }
        }
    }
}

/// Splits at `delimiter` (or at runs of whitespace) outside double or single quotes;
/// empty pieces are skipped. A quote left open is an error.
fn split_quoted<'t>(text: &'t str, delimiter: Option<&str>) -> Result<Vec<&'t str>, String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            continue;
        }
        let cut = match delimiter {
            Some(d) => text[i..].starts_with(d).then_some(d.len()),
            None => c.is_whitespace().then_some(c.len_utf8()),
        };
        if let Some(len) = cut {
            let piece = text[start..i].trim();
            if !piece.is_empty() {
                pieces.push(piece);
            }
            start = i + len;
            // Past the rest of a delimiter of several characters.
            for _ in 1..text[i..i + len].chars().count() {
                chars.next();
            }
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    let piece = text[start..].trim();
    if !piece.is_empty() {
        pieces.push(piece);
    }
    Ok(pieces)
}
fn unquote(text: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

#[cfg(test)]
mod tests;
