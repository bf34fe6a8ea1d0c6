//! The grammar on statements from upstream's documentation (ottlfuncs, the transform
//! and filter processors' READMEs) and on what must be refused, with where.

use super::ast::{BoolExpr, CompareOp, Key, MathOp, Value};
use super::*;

/// Statements as upstream's docs give them: each must parse.
const UPSTREAM_STATEMENTS: &[&str] = &[
    r#"set(attributes["test"], "pass")"#,
    r#"set(attributes["test"], "pass") where name == "operationA""#,
    r#"set(severity_text, "FAIL") where body == "operationA""#,
    r#"set(resource.attributes["test"], "pass")"#,
    r#"keep_keys(resource.attributes, ["service.name", "service.namespace", "cloud.region", "process.command_line"])"#,
    r#"replace_pattern(attributes["http.target"], "\?.*", "")"#,
    r#"replace_all_patterns(attributes, "value", "/account/\\d{4}", "/account/{accountId}")"#,
    r#"limit(attributes, 100, [])"#,
    r#"truncate_all(attributes, 4096)"#,
    r#"set(status.code, 1) where attributes["http.path"] == "/health""#,
    r#"set(name, attributes["http.route"])"#,
    r#"replace_match(attributes["http.target"], "/user/*/list/*", "/user/{userId}/list/{listId}")"#,
    r#"merge_maps(attributes, ParseJSON(body), "upsert") where IsMatch(body, "^\\{")"#,
    r#"set(attributes["test"], Concat([attributes["a"], attributes["b"]], "-"))"#,
    r#"set(body, Split(body, ",")[1])"#,
    r#"delete_key(attributes, "http.request.header.authorization")"#,
    r#"delete_matching_keys(attributes, "(?i).*password.*")"#,
    r#"set(attributes["hash"], SHA256(attributes["user.email"]))"#,
    r#"set(trace_id, TraceID(0x0102030405060708090a0b0c0d0e0f10))"#,
    r#"set(attributes["n"], Int(attributes["s"])) where IsString(attributes["s"])"#,
    r#"set(metric.description, "Sum") where metric.type == METRIC_DATA_TYPE_SUM"#,
    r#"set(severity_number, SEVERITY_NUMBER_WARN) where severity_text == "warning" or severity_text == "WARN""#,
    r#"set(attributes["duration_ms"], (end_time_unix_nano - start_time_unix_nano) / 1000000)"#,
    r#"flatten(attributes, "k8s", depth=2)"#,
    r#"merge_maps(attributes, ExtractPatterns(body, "^(?P<method>\\w+) (?P<path>\\S+)"), "insert")"#,
    r#"set(cache["parsed"], ParseKeyValue(body, "=", " "))"#,
    r#"set(attributes["level"], cache["parsed"]["level"]) where cache["parsed"]["level"] != nil"#,
    r#"set(attributes["cut"], Substring(body, 0, 10)) where Len(body) > 10"#,
    r#"set(attributes["when"], UnixNano(Now()))"#,
    r#"set(attributes["k"], {"a": 1, "b": [1.5, -2, true, nil]})"#,
    r#"set(attributes["x"], -.5)"#,
    r#"set(attributes[attributes["dyn"]], "v") where not (kind == SPAN_KIND_SERVER and status.code != STATUS_CODE_ERROR)"#,
];

/// Conditions as the filter processor's docs give them.
const UPSTREAM_CONDITIONS: &[&str] = &[
    r#"attributes["container.name"] == "app_container_1""#,
    r#"resource.attributes["host.name"] == "localhost""#,
    r#"name == "app_3""#,
    r#"spanevent.attributes["grpc"] == true"#,
    r#"IsMatch(resource.attributes["k8s.pod.name"], "^my-pod-name.*")"#,
    r#"severity_number < SEVERITY_NUMBER_WARN"#,
    r#"metric.name == "my.metric" and attributes["my_label"] == "abc123""#,
    r#"metric.type == METRIC_DATA_TYPE_HISTOGRAM"#,
    r#"attributes["http.request.method"] == nil"#,
    r#"not IsMatch(name, "^keep") or (kind == 2 and Len(attributes) > 3)"#,
    r#"(1 + 2) * 3 > 8"#,
    r#"true"#,
];

#[test]
fn upstreams_documented_statements_parse() {
    for text in UPSTREAM_STATEMENTS {
        if let Err(e) = parse_statement(text) {
            panic!("{text}\n  {e} at {:?}", e.span);
        }
    }
    for text in UPSTREAM_CONDITIONS {
        if let Err(e) = parse_condition(text) {
            panic!("{text}\n  {e} at {:?}", e.span);
        }
    }
}

#[test]
fn statements_have_their_parts() {
    let s = parse_statement(r#"set(attributes["k"], Concat(["a", name], "-")) where severity_number >= 13"#).unwrap();
    assert_eq!(s.editor.name, "set");
    assert_eq!(s.editor.args.len(), 2);
    let Value::Path(path) = &s.editor.args[0].value else { panic!() };
    assert_eq!(path.fields[0].name, "attributes");
    assert_eq!(path.fields[0].keys, vec![Key::String("k".into(), Span::new(15, 18))]);
    let Value::Converter(concat) = &s.editor.args[1].value else { panic!() };
    assert_eq!(concat.name, "Concat");
    let Some(BoolExpr::Compare { op: CompareOp::Ge, rhs: Value::Int(13, _), .. }) = &s.condition else { panic!() };

    let s = parse_statement(r#"set(resource.attributes["a"]["b"], 1)"#).unwrap();
    let Value::Path(path) = &s.editor.args[0].value else { panic!() };
    let names: Vec<&str> = path.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["resource", "attributes"]);
    assert_eq!(path.fields[1].keys.len(), 2);

    let s = parse_statement(r#"flatten(attributes, depth = 2)"#).unwrap();
    assert_eq!(s.editor.args[1].name.as_ref().map(|(n, _)| n.as_str()), Some("depth"));
}

#[test]
fn precedence_math_and_booleans() {
    let s = parse_statement("set(attributes[\"x\"], 1 + 2 * 3 - 4)").unwrap();
    // ((1 + (2 * 3)) - 4)
    let Value::Math { op: MathOp::Sub, lhs, .. } = &s.editor.args[1].value else { panic!() };
    let Value::Math { op: MathOp::Add, rhs, .. } = lhs.as_ref() else { panic!() };
    assert!(matches!(rhs.as_ref(), Value::Math { op: MathOp::Mul, .. }));

    // not > and > or
    let c = parse_condition("not a == 1 and b == 2 or c == 3").unwrap();
    let BoolExpr::Or(left, _) = c else { panic!() };
    let BoolExpr::And(not, _) = *left else { panic!() };
    assert!(matches!(*not, BoolExpr::Not(..)));

    // A parenthesised condition and a parenthesised value compared.
    assert!(matches!(parse_condition("(a == 1 or b == 2) and c == 3").unwrap(), BoolExpr::And(..)));
    assert!(matches!(parse_condition("(a + 1) > 2").unwrap(), BoolExpr::Compare { op: CompareOp::Gt, .. }));
}

#[test]
fn literals() {
    let value = |text: &str| parse_statement(&format!("set(x, {text})")).unwrap().editor.args.remove(1).value;
    assert!(matches!(value("-1"), Value::Int(-1, _)));
    assert!(matches!(value("+2"), Value::Int(2, _)));
    assert!(matches!(value("1.5e3"), Value::Float(f, _) if f == 1500.0));
    assert!(matches!(value("0x00ff"), Value::Bytes(b, _) if b == [0, 255]));
    assert!(matches!(value(r#""a\"b\\c\nd""#), Value::String(s, _) if s == "a\"b\\c\nd"));
    assert!(matches!(value("nil"), Value::Nil(_)));
    assert!(matches!(value("SPAN_KIND_SERVER"), Value::Enum(e, _) if e == "SPAN_KIND_SERVER"));
    assert!(matches!(value("{}"), Value::Map(m, _) if m.is_empty()));
    assert!(matches!(value("[]"), Value::List(l, _) if l.is_empty()));
}

/// Each bad statement, what its error says, and the text where it points.
#[test]
fn errors_say_what_and_where() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"set(attributes["a"], "x""#, "expected `,` or `)`", ""),
        (r#"set(attributes["a"], "x) where"#, "not closed", "\"x) where"),
        (r#"Set(attributes["a"], 1)"#, "`Set` is a converter", "Set"),
        (r#"set(attributes["a"], concat("a"))"#, "`concat` is an editor", "concat"),
        (r#"set(attributes["a"], 1) where"#, "expected a value, found the end", ""),
        (r#"set(attributes["a"], 1) when name == "x""#, "expected the end of the statement", "when"),
        (r#"set(attributes["a"], 1) where name = "x""#, "expected the end of the statement", "="),
        (r#"set(x, 99999999999999999999)"#, "does not fit", "99999999999999999999"),
        (r#"set(x, 0xabc)"#, "even number", "0xabc"),
        (r#"set(x, 1) where 42"#, "a condition is a comparison", "42"),
        (r#"set(x, a = 1, 2)"#, "before named ones", "2"),
        (r#"set(x, 1) # comment"#, "unexpected character `#`", "#"),
        (r#"where(x)"#, "expected an editor", "where"),
        ("", "expected an editor", ""),
    ];
    for (text, message, at) in cases {
        let e = parse_statement(text).expect_err(text);
        assert!(e.message.contains(message), "{text}: {e}");
        let pointed = &text[e.span.start.min(text.len())..e.span.end.min(text.len())];
        assert!(pointed.starts_with(at), "{text}: points at {pointed:?}, not {at:?}");
    }
    assert!(parse_condition("").unwrap_err().message.contains("empty"));
}

#[test]
fn line_and_column_inside_a_multi_line_string() {
    let text = "set(attributes[\"a\"], 1)\n  where name == \"x\" &&";
    let e = parse_statement(text).unwrap_err();
    assert_eq!(e.line_column(text), (2, 21));
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("set(x, {}1{})", "[".repeat(200), "]".repeat(200));
    assert!(parse_statement(&deep).unwrap_err().message.contains("nested more than"));
    let deep_not = format!("set(x, 1) where {}true", "not ".repeat(200));
    assert!(parse_statement(&deep_not).unwrap_err().message.contains("nested more than"));
    let long = format!("set(x, \"{}\")", "y".repeat(lexer::MAX_STATEMENT_BYTES));
    assert!(parse_statement(&long).unwrap_err().message.contains("at most"));
}

mod conditions {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, KeyValueList, any_value};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::super::{Condition, Kind, OttlError, Record};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn s(text: &str) -> any_value::Value {
        any_value::Value::StringValue(text.into())
    }

    struct Fixture {
        resource: Resource,
        scope: InstrumentationScope,
        text_body: LogRecord,
        map_body: LogRecord,
    }

    fn fixture() -> Fixture {
        let attributes = vec![kv("http.method", s("GET")), kv("count", any_value::Value::IntValue(3))];
        let text_body = LogRecord {
            severity_number: 17,
            severity_text: "error".into(),
            body: Some(AnyValue { value: Some(s("health check failed")) }),
            attributes: attributes.clone(),
            trace_id: vec![0; 16],
            ..Default::default()
        };
        let map = KeyValueList { values: vec![kv("k", s("v")), kv("n", any_value::Value::DoubleValue(1.5))] };
        let map_body = LogRecord {
            body: Some(AnyValue { value: Some(any_value::Value::KvlistValue(map)) }),
            attributes,
            ..Default::default()
        };
        Fixture {
            resource: Resource { attributes: vec![kv("service.name", s("api"))], ..Default::default() },
            scope: InstrumentationScope { name: "lib".into(), version: "1.2".into(), ..Default::default() },
            text_body,
            map_body,
        }
    }

    fn eval(text: &str, record: &LogRecord, f: &Fixture) -> Result<bool, String> {
        let condition = Condition::parse(Kind::Log, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        condition.eval(&Record::log(&f.resource, &f.scope, record))
    }

    #[test]
    fn log_conditions_read_paths_enums_and_converters() {
        let f = fixture();
        let text = &f.text_body;
        let cases: &[(&str, bool)] = &[
            ("severity_number >= SEVERITY_NUMBER_WARN", true),
            ("severity_number < SEVERITY_NUMBER_ERROR2", true),
            ("severity_number == SEVERITY_NUMBER_ERROR", true),
            (r#"attributes["http.method"] == "GET""#, true),
            (r#"resource.attributes["service.name"] == "api" and not IsMatch(body, "^health")"#, false),
            (r#"resource.attributes["service.name"] == "api" and IsMatch(body, "check")"#, true),
            (r#"attributes["missing"] == nil"#, true),
            (r#"attributes["missing"] != nil"#, false),
            (r#"attributes["count"] > 2.5"#, true),
            (r#"attributes["count"] == "3""#, false),
            (r#"attributes["count"] != "3""#, true),
            ("Len(attributes) == 2", true),
            (r#"ToUpperCase(severity_text) == "ERROR""#, true),
            (r#"(attributes["count"] + 1) * 2 == 8"#, true),
            (r#"log.severity_text == "error""#, true),
            (r#"instrumentation_scope.name == "lib" and scope.version == "1.2""#, true),
            (r#"trace_id.string == "00000000000000000000000000000000""#, true),
            (r#"Concat([resource.attributes["service.name"], severity_text], "-") == "api-error""#, true),
            (r#"IsString(body) and not IsMap(body)"#, true),
            (r#"severity_text == "warn" or (severity_number > 16 and severity_number < 21)"#, true),
            ("true and not false", true),
        ];
        for (condition, want) in cases {
            assert_eq!(eval(condition, text, &f), Ok(*want), "{condition}");
        }
        assert_eq!(eval(r#"body["k"] == "v" and body["n"] == 1.5"#, &f.map_body, &f), Ok(true));
        assert_eq!(eval(r#"IsMap(body) and Len(body) == 2"#, &f.map_body, &f), Ok(true));
    }

    #[test]
    fn runtime_errors_are_errors_not_false() {
        let f = fixture();
        let text = &f.text_body;
        let err = eval(r#"body["k"] == "v""#, text, &f).unwrap_err();
        assert!(err.contains("log bodies of type string cannot be indexed"), "{err}");
        let err = eval(r#"attributes["count"] + 1.0 == 4.0"#, text, &f).unwrap_err();
        assert!(err.contains("math on int64 and float64"), "{err}");
        let err = eval(r#"attributes["count"] / 0 == 1"#, text, &f).unwrap_err();
        assert!(err.contains("divide by 0"), "{err}");
        let err = eval(r#"ToLowerCase(attributes["count"]) == "3""#, text, &f).unwrap_err();
        assert!(err.contains("expected string but got int64"), "{err}");
        let err = eval(r#"attributes["http.method"]"#, text, &f).unwrap_err();
        assert!(err.contains("must be bool"), "{err}");
    }

    fn compile_error(text: &str) -> OttlError {
        match Condition::parse(Kind::Log, text) {
            Ok(_) => panic!("{text} compiled"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_names_are_errors_at_their_place() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"attributez["a"] == 1"#, "not a path of the log context", "attributez"),
            (r#"span.name == "x""#, "`span` paths cannot be used in the log context", "span"),
            ("severity_number > SEVERITY_NUMBER_LOUD", "not an enum of the log context", "SEVERITY_NUMBER_LOUD"),
            (r#"Frob(body) == 1"#, "unknown converter `Frob`", "Frob"),
            (r#"IsMatch(body, "(") "#, "invalid regular expression", r#""(""#),
            (r#"IsMatch(body, attributes["p"])"#, "must be a string literal", r#"attributes["p"]"#),
            (r#"IsMatch(body)"#, "needs its `pattern` argument", "IsMatch"),
            (r#"severity_text["x"] == 1"#, "cannot be indexed", "severity_text"),
            (r#"Len(attributes, 2) == 1"#, "takes at most 1 argument", "2"),
        ];
        for (text, message, at) in cases {
            let e = compile_error(text);
            assert!(e.message.contains(message), "{text}: {}", e.message);
            let pointed = &text[e.span.start..e.span.end];
            assert!(pointed.starts_with(at), "{text}: points at {pointed:?}, not {at:?}");
        }
    }
}
