//! Operator inputs: the first line is an expression or a field (the config side), the
//! rest a log line run through every parser and the expression: no panic, and a
//! record is either kept or dropped, never half-built.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::filelog::operators::expr::Expr;
use ocelot::receivers::filelog::operators::field::{Entry, Field, string};
use ocelot::receivers::filelog::operators::{OperatorConfig, Operators, Report};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

const CHAIN: &str = r#"
- type: json_parser
  parse_to: attributes.json
  parse_ints: true
  on_error: send_quiet
  severity: { parse_from: attributes.json.level, mapping: { error: [5xx, {min: 1, max: 3}] } }
  timestamp: { parse_from: attributes.json.ts, layout_type: epoch, layout: s.ns }
- type: key_value_parser
  parse_to: attributes.kv
  on_error: send_quiet
- type: regex_parser
  regex: '^(?P<first>\S+)\s+(?P<rest>.*)$'
  on_error: send_quiet
  timestamp: { parse_from: attributes.first, layout: '%Y-%m-%dT%H:%M:%S%z' }
- type: move
  from: attributes.rest
  to: resource.rest
  on_error: send_quiet
- type: add
  field: attributes.len
  value: EXPR(len(body))
"#;

static CHAIN_OPERATORS: std::sync::OnceLock<Operators> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let _ = Field::parse(first);
    let operators = CHAIN_OPERATORS.get_or_init(|| {
        let node = ocelot::config::node::parse("chain.yaml", CHAIN).expect("the chain parses");
        let configs: Vec<OperatorConfig> = ocelot::config::de::from_node(&node).expect("the chain is valid");
        Operators::new(&configs).expect("the chain compiles")
    });
    let entry = Entry { record: LogRecord { body: Some(string(rest)), ..Default::default() }, resource: Cow::Borrowed(&[]) };
    let mut report = Report::default();
    let out = operators.run(entry, &mut report);
    assert!(out.is_some(), "quiet send keeps every record");
    if let (Ok(expr), Some(entry)) = (Expr::parse(first), out) {
        let _ = expr.matches(&entry);
        let _ = expr.value(&entry);
    }
});
