//! What goes into a Loki push: the stream label string in LogQL form, and each record's
//! line as `raw` (the body), `json` or `logfmt`, written as the upstream `loki`
//! exporter writes them.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::pdata::json::{any_to_json, hex};

/// `{a="b", c="d"}`: names sorted, values quoted as Go's `strconv.Quote` does.
pub fn label_string(labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut out = String::with_capacity(2 + labels.iter().map(|(n, v)| n.len() + v.len() + 5).sum::<usize>());
    out.push('{');
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        quote_into(&mut out, value);
    }
    out.push('}');
    out
}

/// Go's `strconv.Quote`: `"` and `\` escaped, control characters as `\n`, `\t`, `\xNN`.
fn quote_into(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The body as text: strings as they are, other values as JSON.
pub fn body_text(record: &LogRecord) -> String {
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        None => String::new(),
        Some(_) => record.body.as_ref().map(|b| any_to_json(b).to_string()).unwrap_or_default(),
    }
}

fn attributes_json(attributes: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(serde_json::Value::Null, any_to_json)))
        .collect()
}

/// The upstream `json` line: `body`, `traceid`, `spanid`, `severity`, `flags`,
/// `attributes`, `resources`, `instrumentation_scope`, each left out when empty.
pub fn json_line(
    record: &LogRecord,
    attributes: &[KeyValue],
    resource: &[KeyValue],
    scope: Option<&InstrumentationScope>,
) -> String {
    let mut line = serde_json::Map::new();
    if let Some(body) = record.body.as_ref().filter(|b| b.value.is_some()) {
        line.insert("body".into(), any_to_json(body));
    }
    if record.trace_id.iter().any(|b| *b != 0) {
        line.insert("traceid".into(), hex(&record.trace_id).into());
    }
    if record.span_id.iter().any(|b| *b != 0) {
        line.insert("spanid".into(), hex(&record.span_id).into());
    }
    if !record.severity_text.is_empty() {
        line.insert("severity".into(), record.severity_text.clone().into());
    }
    if record.flags != 0 {
        line.insert("flags".into(), record.flags.into());
    }
    if !attributes.is_empty() {
        line.insert("attributes".into(), attributes_json(attributes).into());
    }
    if !resource.is_empty() {
        line.insert("resources".into(), attributes_json(resource).into());
    }
    if let Some(scope) = scope.filter(|s| !s.name.is_empty()) {
        let mut s = serde_json::Map::new();
        s.insert("name".into(), scope.name.clone().into());
        if !scope.version.is_empty() {
            s.insert("version".into(), scope.version.clone().into());
        }
        line.insert("instrumentation_scope".into(), s.into());
    }
    // serde_json keeps insertion order only with its `preserve_order` feature; the
    // order above is the upstream one, so write the fields one by one.
    let mut out = String::from("{");
    for (i, key) in
        ["body", "traceid", "spanid", "severity", "flags", "attributes", "resources", "instrumentation_scope"]
            .iter()
            .filter(|k| line.contains_key(**k))
            .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{key}\":{}", line[*key]);
    }
    out.push('}');
    // Go's encoder escapes these; they only occur inside strings.
    out.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// A logfmt value: bare when it can be, quoted otherwise.
fn logfmt_value(out: &mut String, value: &str) {
    if !value.is_empty() && !value.chars().any(|c| c <= ' ' || c == '=' || c == '"' || c == '\u{7f}') {
        out.push_str(value);
    } else if value.is_empty() {
        // `key=` for an empty value, as go-logfmt writes it.
    } else {
        quote_into(out, value);
    }
}

fn logfmt_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    let key: String = key.chars().map(|c| if c <= ' ' || c == '=' || c == '"' { '_' } else { c }).collect();
    out.push_str(&key);
    out.push('=');
    logfmt_value(out, value);
}

/// Flattens a value into `prefix=value` pairs: maps as `prefix_key`, lists as `prefix_i`.
fn logfmt_flatten(out: &mut String, prefix: &str, value: Option<&AnyValue>) {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::KvlistValue(map)) => {
            for kv in &map.values {
                logfmt_flatten(out, &format!("{prefix}_{}", kv.key), kv.value.as_ref());
            }
        }
        Some(Value::ArrayValue(list)) => {
            for (i, item) in list.values.iter().enumerate() {
                logfmt_flatten(out, &format!("{prefix}_{i}"), Some(item));
            }
        }
        Some(Value::StringValue(s)) => logfmt_pair(out, prefix, s),
        Some(_) => logfmt_pair(out, prefix, &value.map(|v| any_to_json(v).to_string()).unwrap_or_default()),
        None => logfmt_pair(out, prefix, ""),
    }
}

/// Pairs of a logfmt text, or `None` when it is not logfmt (an open quote).
fn parse_logfmt(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            if c == '"' {
                return None;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => value.push(chars.next()?),
                        c => value.push(c),
                    }
                }
                if !closed {
                    return None;
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The upstream `logfmt` line: the body's pairs (a string body is read as logfmt, as
/// upstream does; other bodies are flattened), `traceID`, `spanID`, `severity`,
/// `flags`, then `attribute_*`, `resource_*` and `instrumentation_scope_*`.
pub fn logfmt_line(
    record: &LogRecord,
    attributes: &[KeyValue],
    resource: &[KeyValue],
    scope: Option<&InstrumentationScope>,
) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => match parse_logfmt(s) {
            Some(parsed) => pairs.extend(parsed),
            None => pairs.push(("msg".into(), s.clone())),
        },
        Some(Value::KvlistValue(_) | Value::ArrayValue(_)) => {
            let mut flat = String::new();
            logfmt_flatten(&mut flat, "body", record.body.as_ref());
            // Map keys lose the `body_` prefix, as upstream flattens the map itself.
            if let Some(parsed) = parse_logfmt(&flat) {
                let strip = matches!(record.body.as_ref().and_then(|b| b.value.as_ref()), Some(Value::KvlistValue(_)));
                pairs.extend(parsed.into_iter().map(|(k, v)| {
                    (if strip { k.strip_prefix("body_").map(str::to_string).unwrap_or(k) } else { k }, v)
                }));
            }
        }
        Some(_) => pairs.push(("msg".into(), body_text(record))),
        None => {}
    }
    let mut set = |key: &str, value: String| match pairs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => pairs.push((key.to_string(), value)),
    };
    if record.trace_id.iter().any(|b| *b != 0) {
        set("traceID", hex(&record.trace_id));
    }
    if record.span_id.iter().any(|b| *b != 0) {
        set("spanID", hex(&record.span_id));
    }
    if !record.severity_text.is_empty() {
        set("severity", record.severity_text.clone());
    }
    if record.flags != 0 {
        set("flags", record.flags.to_string());
    }
    let mut out = String::new();
    for (key, value) in &pairs {
        logfmt_pair(&mut out, key, value);
    }
    for kv in attributes {
        logfmt_flatten(&mut out, &format!("attribute_{}", kv.key), kv.value.as_ref());
    }
    for kv in resource {
        logfmt_flatten(&mut out, &format!("resource_{}", kv.key), kv.value.as_ref());
    }
    if let Some(scope) = scope.filter(|s| !s.name.is_empty()) {
        logfmt_pair(&mut out, "instrumentation_scope_name", &scope.name);
        if !scope.version.is_empty() {
            logfmt_pair(&mut out, "instrumentation_scope_version", &scope.version);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
            ..Default::default()
        }
    }

    fn record(body: &str) -> LogRecord {
        LogRecord {
            body: Some(AnyValue { value: Some(Value::StringValue(body.into())) }),
            trace_id: vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0],
            span_id: vec![5, 6, 7, 8, 0, 0, 0, 0],
            severity_text: "error".into(),
            ..Default::default()
        }
    }

    #[test]
    fn label_strings_are_sorted_and_quoted() {
        let labels = vec![("job".to_string(), "a\"b\\c\n".to_string()), ("env".to_string(), "prod".to_string())];
        assert_eq!(label_string(&labels), "{env=\"prod\", job=\"a\\\"b\\\\c\\n\"}");
        assert_eq!(label_string(&[]), "{}");
    }

    #[test]
    fn json_lines_as_upstream_writes_them() {
        let scope =
            InstrumentationScope { name: "example-logger-name".into(), version: "v1".into(), ..Default::default() };
        let line = json_line(
            &record("Example log"),
            &[kv("attr1", "1"), kv("attr2", "2")],
            &[kv("host.name", "something")],
            Some(&scope),
        );
        assert_eq!(
            line,
            r#"{"body":"Example log","traceid":"01020304050607080000000000000000","spanid":"0506070800000000","severity":"error","attributes":{"attr1":"1","attr2":"2"},"resources":{"host.name":"something"},"instrumentation_scope":{"name":"example-logger-name","version":"v1"}}"#
        );
        assert_eq!(
            json_line(&record("<a&b>"), &[], &[], None).split(',').next().unwrap(),
            r#"{"body":"\u003ca\u0026b\u003e""#
        );
    }

    #[test]
    fn logfmt_lines_as_upstream_writes_them() {
        let scope = InstrumentationScope { name: "lib".into(), ..Default::default() };
        let line =
            logfmt_line(&record("Example log"), &[kv("attr1", "1")], &[kv("host.name", "something")], Some(&scope));
        assert_eq!(
            line,
            "Example= log= traceID=01020304050607080000000000000000 spanID=0506070800000000 severity=error attribute_attr1=1 resource_host.name=something instrumentation_scope_name=lib"
        );
        let line = logfmt_line(&record(r#"msg="hello world" level=info"#), &[], &[], None);
        assert!(line.starts_with(r#"msg="hello world" level=info traceID="#), "{line}");
        // Not logfmt (an open quote): the whole body as msg.
        let line = logfmt_line(&record(r#"say "hi"#), &[], &[], None);
        assert!(line.starts_with(r#"msg="say \"hi" "#), "{line}");
    }
}
