use super::*;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

/// Operators from YAML, as a config would give them.
fn operators(yaml: &str) -> Result<Operators, String> {
    let node = crate::config::node::parse("test.yaml", yaml).map_err(|e| e.to_string())?;
    let configs: Vec<OperatorConfig> = crate::config::de::from_node(&node).map_err(|e| e.to_string())?;
    validate(&configs)?;
    Operators::new(&configs)
}

fn record(body: &str) -> LogRecord {
    LogRecord { body: Some(string(body)), ..Default::default() }
}

fn run<'r>(ops: &Operators, body: &str, resource: &'r [KeyValue]) -> (Option<Entry<'r>>, Report) {
    let mut report = Report::default();
    let out = ops.run(Entry { record: record(body), resource: Cow::Borrowed(resource) }, &mut report);
    (out, report)
}

fn get<'e>(entry: &'e Entry<'_>, field: &str) -> Option<&'e AnyValue> {
    Field::parse(field).unwrap().get(entry)
}

fn text(entry: &Entry<'_>, field: &str) -> String {
    match get(entry, field).and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{field} is {other:?}"),
    }
}

#[test]
fn json_parser_fills_attributes_timestamp_and_severity() {
    let ops = operators(
        r#"
- type: json_parser
  parse_ints: true
  timestamp: { parse_from: attributes.ts, layout_type: gotime, layout: "2006-01-02T15:04:05.999999999Z07:00" }
  severity: { parse_from: attributes.level }
"#,
    )
    .unwrap();
    let (entry, report) =
        run(&ops, r#"{"msg":"hi","level":"WARN","ts":"2024-03-30T08:31:20.5Z","n":3,"f":1.5,"o":{"k":[1,null]}}"#, &[]);
    let entry = entry.unwrap();
    assert_eq!(report.errors, 0);
    assert_eq!(text(&entry, "attributes.msg"), "hi");
    assert_eq!(get(&entry, "attributes.n").unwrap().value, Some(Value::IntValue(3)));
    assert_eq!(get(&entry, "attributes.f").unwrap().value, Some(Value::DoubleValue(1.5)));
    assert!(matches!(get(&entry, "attributes.o.k").unwrap().value, Some(Value::ArrayValue(_))));
    assert_eq!(entry.record.time_unix_nano, 1_711_787_480_500_000_000);
    assert_eq!((entry.record.severity_number, entry.record.severity_text.as_str()), (13, "WARN"));
    // The body is kept (parse_from is not removed).
    assert!(text(&entry, "body").starts_with("{\"msg\""));

    // Not JSON: kept as it was (on_error: send), counted, reported.
    let (entry, report) = run(&ops, "plain text", &[]);
    assert_eq!(text(&entry.unwrap(), "body"), "plain text");
    assert_eq!(report.errors, 1);
    assert!(report.first_error.unwrap().contains("operator `json_parser`: invalid JSON"));
}

#[test]
fn regex_parser_with_strptime_and_http_severity() {
    let ops = operators(
        r#"
- type: regex_parser
  regex: '^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+)[^"]*" (?P<status>\d{3})(?: (?P<opt>x))?'
  timestamp: { parse_from: attributes.time, layout: "%d/%b/%Y:%H:%M:%S %z" }
  severity: { parse_from: attributes.status, mapping: { error: 5xx, warn: 4xx, info: [2xx, 3xx] } }
  on_error: drop_quiet
"#,
    )
    .unwrap();
    let line = r#"10.0.0.1 - - [30/Mar/2024:10:31:20 +0200] "GET /health HTTP/1.1" 503 12"#;
    let (entry, _) = run(&ops, line, &[]);
    let entry = entry.unwrap();
    assert_eq!(text(&entry, "attributes.path"), "/health");
    assert_eq!(text(&entry, "attributes.opt"), "");
    assert_eq!(entry.record.time_unix_nano, 1_711_787_480_000_000_000);
    assert_eq!(entry.record.severity_number, 17);
    // No match: dropped quietly, but counted.
    let (entry, report) = run(&ops, "garbage", &[]);
    assert!(entry.is_none());
    assert_eq!((report.errors, report.dropped, report.first_error), (1, 1, None));
}

#[test]
fn key_value_parser_splits_pairs_and_respects_quotes() {
    let ops = operators("- type: key_value_parser\n  parse_to: attributes.kv\n").unwrap();
    let (entry, _) = run(&ops, r#"level=info msg="hello world" user='a b' empty="#, &[]);
    let entry = entry.unwrap();
    assert_eq!(text(&entry, "attributes.kv.msg"), "hello world");
    assert_eq!(text(&entry, "attributes.kv.user"), "a b");
    assert_eq!(text(&entry, "attributes.kv.empty"), "");
    let (_, report) = run(&ops, "novalue here", &[]);
    assert_eq!(report.errors, 1);
    let ops = operators("- type: key_value_parser\n  delimiter: ':'\n  pair_delimiter: '|'\n").unwrap();
    let (entry, _) = run(&ops, "a: 1 | b:2|c :x=y", &[]);
    let entry = entry.unwrap();
    assert_eq!((text(&entry, "attributes.a"), text(&entry, "attributes.c")), ("1".into(), "x=y".into()));
}

#[test]
fn add_remove_move_and_conditions() {
    let ops = operators(
        r#"
- type: json_parser
- type: add
  field: resource.team
  value: payments
- type: add
  field: attributes.copy
  value: EXPR(upper(attributes.level))
- type: move
  from: attributes.msg
  to: body
- type: remove
  field: attributes.level
  if: 'attributes.level == "debug"'
- type: add
  id: tag
  field: attributes["tags.list"]
  value: [a, 1, true]
"#,
    )
    .unwrap();
    let resource = [KeyValue { key: "host".into(), value: Some(string("h")), ..Default::default() }];
    let (entry, report) = run(&ops, r#"{"msg":"moved","level":"debug"}"#, &resource);
    let entry = entry.unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    assert_eq!(text(&entry, "body"), "moved");
    assert_eq!(text(&entry, "attributes.copy"), "DEBUG");
    assert!(get(&entry, "attributes.level").is_none());
    assert!(matches!(get(&entry, "attributes[\"tags.list\"]").unwrap().value, Some(Value::ArrayValue(_))));
    assert_eq!(text(&entry, "resource.team"), "payments");
    assert_eq!(text(&entry, "resource.host"), "h");
    assert!(matches!(entry.resource, Cow::Owned(_)));
    // The condition is false: the level stays.
    let (entry, _) = run(&ops, r#"{"msg":"m","level":"info"}"#, &resource);
    assert_eq!(text(&entry.unwrap(), "attributes.level"), "info");
    // Moving a missing field is an error; the record goes on (send).
    let (entry, report) = run(&ops, r#"{"level":"info"}"#, &resource);
    assert!(entry.is_some());
    assert!(report.first_error.unwrap().contains("no field `attributes.msg`"));
}

#[test]
fn filter_drops_matching_records_and_counts_them() {
    let ops = operators("- type: filter\n  expr: 'body matches \"^DEBUG\"'\n").unwrap();
    let (kept, _) = run(&ops, "INFO up", &[]);
    assert!(kept.is_some());
    let (dropped, report) = run(&ops, "DEBUG noise", &[]);
    assert!(dropped.is_none());
    assert_eq!(report.filtered, 1);
    let none = operators("- type: filter\n  expr: 'true'\n  drop_ratio: 0\n").unwrap();
    assert!(run(&none, "x", &[]).0.is_some());
    let half = operators("- type: filter\n  expr: 'true'\n  drop_ratio: 0.5\n").unwrap();
    let kept = (0..2000).filter(|_| run(&half, "x", &[]).0.is_some()).count();
    assert!((800..1200).contains(&kept), "{kept}");
}

#[test]
fn config_mistakes_are_refused_with_the_reason() {
    let cases = [
        ("- type: json_parser\n- type: container\n", "must come first"),
        (
            "- type: json_parser\n  output: other\n- type: add\n  field: body\n  value: x\n",
            "only be the next operator (`add`)",
        ),
        (
            "- type: add\n  id: a\n  field: body\n  value: x\n- type: json_parser\n  id: a\n",
            "two operators have the id `a`",
        ),
        (
            "- type: json_parser\n- type: json_parser\n  output: x\n- type: add\n  field: body\n  value: x\n",
            "`json_parser1` has output `x`",
        ),
        ("- type: json_parser\n  regex: '(?P<a>x)'\n", "`regex` is an option of regex_parser"),
        ("- type: regex_parser\n  regex: 'x'\n", "no named groups"),
        ("- type: regex_parser\n", "`regex` is required"),
        ("- type: regex_parser\n  regex: '(?P<a>'\n", "invalid regex"),
        ("- type: key_value_parser\n  delimiter: ' '\n  pair_delimiter: ' '\n", "must differ"),
        ("- type: json_parser\n  parse_from: message\n", "must start with `body`"),
        ("- type: json_parser\n  if: 'body =='\n", "invalid expression"),
        ("- type: filter\n  expr: 'true'\n  drop_ratio: 2\n", "drop_ratio"),
        ("- type: recombine\n", "unknown variant `recombine`"),
        ("- type: json_parser\n  severity: { parse_from: body, mapping: { loud: x } }\n", "unknown level `loud`"),
        ("- type: json_parser\n  timestamp: { parse_from: body, layout_type: epoch, layout: minutes }\n", "timestamp"),
        ("- type: add\n  field: body\n", "add needs `value`"),
        ("- type: remove\n", "remove needs `field`"),
        ("- type: move\n  from: body\n", "move needs `to`"),
        ("- type: filter\n  expr: 'true'\n  field: body\n", "`field` is not an option of filter"),
        ("- type: filter\n  expr: 'true'\n  on_error: send\n", "`on_error` is not an option of filter"),
    ];
    for (yaml, want) in cases {
        let error = operators(yaml).err().unwrap_or_default();
        assert!(error.contains(want), "{yaml}: {error}");
    }
}

#[test]
fn maps_merge_into_maps_as_upstream() {
    // A Docker line parsed into the body, then its `log` parsed into the body too:
    // the second map is merged in, the first's keys stay.
    let ops = operators(
        "- type: json_parser\n  parse_to: body\n- type: json_parser\n  id: inner\n  parse_from: body.log\n  parse_to: body\n",
    )
    .unwrap();
    let (entry, report) = run(&ops, r#"{"log":"{\"level\":\"warn\"}","stream":"stdout"}"#, &[]);
    let entry = entry.unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    assert_eq!(text(&entry, "body.level"), "warn");
    assert_eq!(text(&entry, "body.stream"), "stdout");
    assert!(get(&entry, "body.log").is_some());
}

#[test]
fn a_bad_timestamp_still_sets_the_severity_and_keys_may_be_wide() {
    let ops = operators(
        "- type: json_parser\n  timestamp: { parse_from: attributes.ts, layout: '%Y' }\n  severity: { parse_from: 'attributes[\"log.level\"]' }\n- type: add\n  field: attributes.@origin\n  value: EXPR(env(\"OCELOT_TEST_UNSET_VARIABLE\") + \"\")\n",
    );
    // `+` is not part of the expression language: refused when read.
    let error = ops.unwrap_err();
    assert!(error.contains("invalid expression"), "{error}");
    let ops = operators(
        "- type: json_parser\n  timestamp: { parse_from: attributes.ts, layout: '%Y' }\n  severity: { parse_from: 'attributes[\"log.level\"]' }\n- type: add\n  field: attributes.@origin\n  value: EXPR(env(\"OCELOT_TEST_UNSET_VARIABLE\"))\n",
    )
    .unwrap();
    let (entry, report) = run(&ops, r#"{"ts":"not a year","log.level":"WARNING"}"#, &[]);
    let entry = entry.unwrap();
    assert!(report.first_error.unwrap().contains("timestamp"));
    assert_eq!(entry.record.severity_number, 13);
    assert_eq!(entry.record.time_unix_nano, 0);
    assert_eq!(text(&entry, "attributes.@origin"), "");
}

#[test]
fn key_value_quotes_hold_delimiters_and_an_open_quote_is_an_error() {
    let ops = operators("- type: key_value_parser\n  pair_delimiter: ','\n").unwrap();
    let (entry, _) = run(&ops, r#"a="x, y",b=2"#, &[]);
    let entry = entry.unwrap();
    assert_eq!((text(&entry, "attributes.a"), text(&entry, "attributes.b")), ("x, y".into(), "2".into()));
    let ops = operators("- type: key_value_parser\n").unwrap();
    let (_, report) = run(&ops, "msg=don't level=info", &[]);
    assert!(report.first_error.unwrap().contains("quote is not closed"));
    let ops = operators("- type: key_value_parser\n  pair_delimiter: ' && '\n").unwrap();
    let (entry, _) = run(&ops, "a=1 && b=2&&3", &[]);
    assert_eq!(text(&entry.unwrap(), "attributes.b"), "2&&3");
}

#[test]
fn filter_if_narrows_it_and_an_expression_error_drops() {
    let ops = operators("- type: filter\n  if: 'attributes.env == \"dev\"'\n  expr: 'body contains \"x\"'\n").unwrap();
    assert!(run(&ops, "x marks", &[]).0.is_some(), "the condition is false: kept");
    let ops = operators("- type: json_parser\n  parse_to: body\n- type: filter\n  expr: 'body matches \"^DEBUG\"'\n")
        .unwrap();
    let (entry, report) = run(&ops, r#"{"a":1}"#, &[]);
    assert!(entry.is_none());
    assert_eq!((report.errors, report.dropped), (1, 1));
}

#[test]
fn a_line_with_many_keys_is_parsed_in_linear_time() {
    let ops = operators("- type: key_value_parser\n").unwrap();
    let line: String = (0..100_000).map(|i| format!("k{i}=v ")).collect();
    let (entry, report) = run(&ops, &line, &[]);
    assert_eq!(report.errors, 0);
    assert_eq!(entry.unwrap().record.attributes.len(), 100_000);
}
