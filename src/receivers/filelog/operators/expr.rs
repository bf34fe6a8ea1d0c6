//! The expressions of the operators' `if` and the `filter` operator's `expr`: the part
//! of the expr language that log pipelines use. Fields (`body`, `attributes.level`,
//! `attributes["log.iostream"]`, `resource.host`), string, number, `true`, `false`,
//! `nil` and list literals, `==`, `!=`, `<`, `<=`, `>`, `>=`, `matches` (a regular
//! expression literal), `contains`, `startsWith`, `endsWith`, `in`, `not in`, `and`/`&&`,
//! `or`/`||`, `not`/`!`, parentheses, and `len()`, `lower()`, `upper()`, `trim()`,
//! `env("NAME")`.
//! Anything else is refused when the config is read.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use regex::Regex;

use super::field::{Entry, Field};

/// A compiled expression.
#[derive(Clone, Debug)]
pub struct Expr {
    node: Node,
    source: String,
}

#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Field(Field),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Compare(Cmp, Box<Node>, Box<Node>),
    Matches(Box<Node>, Regex),
    Call(Func, Box<Node>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
    In,
    NotIn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Len,
    Lower,
    Upper,
    Trim,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.source == other.source
    }
}

impl<'de> serde::Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Expr, D::Error> {
        let text = String::deserialize(deserializer)?;
        Expr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Nesting deeper than this is refused (it would only be a mistake or an attack).
const MAX_DEPTH: usize = 64;

impl Expr {
    pub fn parse(source: &str) -> Result<Expr, String> {
        let tokens = lex(source).map_err(|e| format!("invalid expression `{source}`: {e}"))?;
        let mut parser = Parser { tokens, pos: 0, depth: 0 };
        let node = parser.or().map_err(|e| format!("invalid expression `{source}`: {e}"))?;
        if let Some(token) = parser.tokens.get(parser.pos) {
            return Err(format!("invalid expression `{source}`: unexpected {}", token.describe()));
        }
        Ok(Expr { node, source: source.to_string() })
    }

    /// Evaluates to a value (for `add`'s `EXPR(...)`).
    pub fn value(&self, entry: &Entry<'_>) -> Result<AnyValue, String> {
        Ok(eval(&self.node, entry)?.into_any())
    }

    /// Evaluates to a boolean; any other result is an error.
    pub fn matches(&self, entry: &Entry<'_>) -> Result<bool, String> {
        match eval(&self.node, entry)? {
            V::Bool(b) => Ok(b),
            other => Err(format!("`{}` gave {}, not true or false", self.source, other.type_name())),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Str(String),
    Int(i64),
    Float(f64),
    Word(String),
    Field(Field),
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Str(s) => format!("string \"{s}\""),
            Token::Int(n) => format!("number {n}"),
            Token::Float(n) => format!("number {n}"),
            Token::Word(w) => format!("`{w}`"),
            Token::Field(f) => format!("field `{f}`"),
            Token::Op(op) => format!("`{op}`"),
        }
    }
}

const OPS: [&str; 15] = ["==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", "-"];

fn lex(source: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' || c == '\'' {
            let (text, used) = string_literal(rest, c)?;
            tokens.push(Token::Str(text));
            rest = &rest[used..];
            continue;
        }
        if c.is_ascii_digit() {
            let len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(rest.len());
            let text = rest[..len].replace('_', "");
            let token = match text.parse::<i64>() {
                Ok(n) => Token::Int(n),
                Err(_) => Token::Float(text.parse::<f64>().map_err(|_| format!("invalid number `{}`", &rest[..len]))?),
            };
            tokens.push(token);
            rest = &rest[len..];
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let word = &rest[..len];
            if matches!(word, "body" | "attributes" | "resource") {
                let (field, used) = Field::parse_prefix(rest)?;
                tokens.push(Token::Field(field));
                rest = &rest[used..];
            } else {
                tokens.push(Token::Word(word.to_string()));
                rest = &rest[len..];
            }
            continue;
        }
        let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
            return Err(format!("unexpected character `{c}`"));
        };
        tokens.push(Token::Op(op));
        rest = &rest[op.len()..];
    }
    Ok(tokens)
}

/// A quoted string at the start of `text`, with `\"`, `\'`, `\\`, `\n`, `\t`, `\r` escapes.
fn string_literal(text: &str, quote: char) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, c @ ('\\' | '"' | '\''))) => out.push(c),
                // Regular expressions keep their escapes: `\d` stays `\d`.
                Some((_, c)) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w == word) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(token) => format!("expected `{op}`, found {}", token.describe()),
            None => format!("expected `{op}` at the end"),
        })
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Parser) -> Result<T, String>) -> Result<T, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} deep"));
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut left = self.and()?;
        while self.eat_word("or") || self.eat_op("||") {
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut left = self.unary()?;
        while self.eat_word("and") || self.eat_op("&&") {
            let right = self.unary()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        if self.eat_word("not") || self.eat_op("!") {
            return self.nested(|p| Ok(Node::Not(Box::new(p.unary()?))));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Node, String> {
        let left = self.value()?;
        let cmp = match self.peek() {
            Some(Token::Op("==")) => Cmp::Eq,
            Some(Token::Op("!=")) => Cmp::Ne,
            Some(Token::Op("<")) => Cmp::Lt,
            Some(Token::Op("<=")) => Cmp::Le,
            Some(Token::Op(">")) => Cmp::Gt,
            Some(Token::Op(">=")) => Cmp::Ge,
            Some(Token::Word(w)) => match w.as_str() {
                "contains" => Cmp::Contains,
                "startsWith" => Cmp::StartsWith,
                "endsWith" => Cmp::EndsWith,
                "in" => Cmp::In,
                "matches" => {
                    self.pos += 1;
                    let Some(Token::Str(pattern)) = self.next() else {
                        return Err("`matches` needs a string literal (the regular expression) on its right".into());
                    };
                    let regex = Regex::new(&pattern).map_err(|e| format!("invalid regular expression: {e}"))?;
                    return Ok(Node::Matches(Box::new(left), regex));
                }
                "not" if matches!(self.tokens.get(self.pos + 1), Some(Token::Word(w)) if w == "in") => {
                    self.pos += 1;
                    Cmp::NotIn
                }
                _ => return Ok(left),
            },
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.value()?;
        Ok(Node::Compare(cmp, Box::new(left), Box::new(right)))
    }

    fn value(&mut self) -> Result<Node, String> {
        let Some(token) = self.next() else {
            return Err("unexpected end".into());
        };
        Ok(match token {
            Token::Str(s) => Node::Str(s),
            Token::Int(n) => Node::Int(n),
            Token::Float(n) => Node::Float(n),
            Token::Field(f) => Node::Field(f),
            Token::Op("-") => match self.next() {
                Some(Token::Int(n)) => Node::Int(-n),
                Some(Token::Float(n)) => Node::Float(-n),
                _ => return Err("`-` must be followed by a number".into()),
            },
            Token::Op("(") => {
                let inner = self.nested(Parser::or)?;
                self.expect_op(")")?;
                inner
            }
            Token::Op("[") => {
                let mut items = Vec::new();
                if !self.eat_op("]") {
                    loop {
                        items.push(self.nested(Parser::or)?);
                        if self.eat_op("]") {
                            break;
                        }
                        self.expect_op(",")?;
                    }
                }
                Node::List(items)
            }
            Token::Word(w) => match w.as_str() {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                "nil" => Node::Null,
                // The agent's environment, read once when the config is: "" when unset, as upstream.
                "env" => {
                    self.expect_op("(")?;
                    let Some(Token::Str(name)) = self.next() else {
                        return Err("env() takes the variable's name as a string".into());
                    };
                    self.expect_op(")")?;
                    Node::Str(std::env::var(name).unwrap_or_default())
                }
                "len" | "lower" | "upper" | "trim" => {
                    let func = match w.as_str() {
                        "len" => Func::Len,
                        "lower" => Func::Lower,
                        "upper" => Func::Upper,
                        _ => Func::Trim,
                    };
                    self.expect_op("(")?;
                    let arg = self.nested(Parser::or)?;
                    self.expect_op(")")?;
                    Node::Call(func, Box::new(arg))
                }
                other => {
                    return Err(format!(
                        "unknown name `{other}` (fields start with body, attributes or resource; functions: len, lower, upper, trim, env)"
                    ));
                }
            },
            other => return Err(format!("unexpected {}", other.describe())),
        })
    }
}

/// A value during evaluation, borrowing from the entry where it can.
#[derive(Clone, Debug)]
enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bytes(&'a [u8]),
    List(Vec<V<'a>>),
    Map(&'a [KeyValue]),
}

impl<'a> V<'a> {
    fn from_any(value: Option<&'a AnyValue>) -> V<'a> {
        match value.and_then(|v| v.value.as_ref()) {
            // A dictionary-encoded string (profiles only) has no text here.
            None | Some(Value::StringValueStrindex(_)) => V::Null,
            Some(Value::StringValue(s)) => V::Str(Cow::Borrowed(s)),
            Some(Value::BoolValue(b)) => V::Bool(*b),
            Some(Value::IntValue(n)) => V::Int(*n),
            Some(Value::DoubleValue(n)) => V::Float(*n),
            Some(Value::BytesValue(b)) => V::Bytes(b),
            Some(Value::ArrayValue(a)) => V::List(a.values.iter().map(|v| V::from_any(Some(v))).collect()),
            Some(Value::KvlistValue(m)) => V::Map(&m.values),
        }
    }

    fn into_any(self) -> AnyValue {
        let value = match self {
            V::Null => None,
            V::Bool(b) => Some(Value::BoolValue(b)),
            V::Int(n) => Some(Value::IntValue(n)),
            V::Float(n) => Some(Value::DoubleValue(n)),
            V::Str(s) => Some(Value::StringValue(s.into_owned())),
            V::Bytes(b) => Some(Value::BytesValue(b.to_vec())),
            V::List(items) => Some(Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: items.into_iter().map(V::into_any).collect(),
            })),
            V::Map(map) => {
                Some(Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList { values: map.to_vec() }))
            }
        };
        AnyValue { value }
    }

    fn type_name(&self) -> &'static str {
        match self {
            V::Null => "nil",
            V::Bool(_) => "a boolean",
            V::Int(_) | V::Float(_) => "a number",
            V::Str(_) => "a string",
            V::Bytes(_) => "bytes",
            V::List(_) => "a list",
            V::Map(_) => "a map",
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            V::Int(n) => Some(*n as f64),
            V::Float(n) => Some(*n),
            _ => None,
        }
    }

    fn equals(&self, other: &V<'_>) -> bool {
        match (self, other) {
            (V::Null, V::Null) => true,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Int(a), V::Int(b)) => a == b,
            (V::Str(a), V::Str(b)) => a == b,
            (V::Bytes(a), V::Bytes(b)) => a == b,
            (V::List(a), V::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y)),
            (a, b) => match (a.number(), b.number()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }
}

fn eval<'a>(node: &Node, entry: &'a Entry<'_>) -> Result<V<'a>, String> {
    Ok(match node {
        Node::Null => V::Null,
        Node::Bool(b) => V::Bool(*b),
        Node::Int(n) => V::Int(*n),
        Node::Float(n) => V::Float(*n),
        Node::Str(s) => V::Str(Cow::Owned(s.clone())),
        Node::List(items) => V::List(items.iter().map(|n| eval(n, entry)).collect::<Result<_, _>>()?),
        Node::Field(field) => {
            if field.is_root() && field.root != super::field::Root::Body {
                V::Map(match field.root {
                    super::field::Root::Attributes => &entry.record.attributes,
                    _ => &entry.resource,
                })
            } else {
                V::from_any(field.get(entry))
            }
        }
        Node::Not(inner) => V::Bool(!truth(eval(inner, entry)?)?),
        Node::And(a, b) => V::Bool(truth(eval(a, entry)?)? && truth(eval(b, entry)?)?),
        Node::Or(a, b) => V::Bool(truth(eval(a, entry)?)? || truth(eval(b, entry)?)?),
        Node::Matches(value, regex) => match eval(value, entry)? {
            V::Str(s) => V::Bool(regex.is_match(&s)),
            other => return Err(format!("`matches` needs a string, not {}", other.type_name())),
        },
        Node::Compare(cmp, a, b) => compare(*cmp, eval(a, entry)?, eval(b, entry)?)?,
        Node::Call(func, arg) => call(*func, eval(arg, entry)?)?,
    })
}

fn truth(value: V<'_>) -> Result<bool, String> {
    match value {
        V::Bool(b) => Ok(b),
        other => Err(format!("expected true or false, not {}", other.type_name())),
    }
}

fn compare(cmp: Cmp, a: V<'_>, b: V<'_>) -> Result<V<'static>, String> {
    let order = |a: &V<'_>, b: &V<'_>| -> Result<std::cmp::Ordering, String> {
        if let (Some(x), Some(y)) = (a.number(), b.number()) {
            return x.partial_cmp(&y).ok_or_else(|| "cannot order NaN".to_string());
        }
        match (a, b) {
            (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
            _ => Err(format!("cannot order {} and {}", a.type_name(), b.type_name())),
        }
    };
    let strings = |a: &V<'_>, b: &V<'_>, op: &str| -> Result<(String, String), String> {
        match (a, b) {
            (V::Str(x), V::Str(y)) => Ok((x.to_string(), y.to_string())),
            _ => Err(format!("`{op}` needs two strings, not {} and {}", a.type_name(), b.type_name())),
        }
    };
    let membership = |a: &V<'_>, b: &V<'_>| -> Result<bool, String> {
        match b {
            V::List(items) => Ok(items.iter().any(|item| item.equals(a))),
            V::Map(map) => match a {
                V::Str(key) => Ok(map.iter().any(|kv| kv.key == *key)),
                other => Err(format!("a map key must be a string, not {}", other.type_name())),
            },
            other => Err(format!("`in` needs a list or a map on its right, not {}", other.type_name())),
        }
    };
    Ok(V::Bool(match cmp {
        Cmp::Eq => a.equals(&b),
        Cmp::Ne => !a.equals(&b),
        Cmp::Lt => order(&a, &b)?.is_lt(),
        Cmp::Le => order(&a, &b)?.is_le(),
        Cmp::Gt => order(&a, &b)?.is_gt(),
        Cmp::Ge => order(&a, &b)?.is_ge(),
        Cmp::Contains => {
            let (x, y) = strings(&a, &b, "contains")?;
            x.contains(&y)
        }
        Cmp::StartsWith => {
            let (x, y) = strings(&a, &b, "startsWith")?;
            x.starts_with(&y)
        }
        Cmp::EndsWith => {
            let (x, y) = strings(&a, &b, "endsWith")?;
            x.ends_with(&y)
        }
        Cmp::In => membership(&a, &b)?,
        Cmp::NotIn => !membership(&a, &b)?,
    }))
}

fn call(func: Func, arg: V<'_>) -> Result<V<'static>, String> {
    Ok(match (func, arg) {
        (Func::Len, V::Str(s)) => V::Int(s.chars().count() as i64),
        (Func::Len, V::List(items)) => V::Int(items.len() as i64),
        (Func::Len, V::Map(map)) => V::Int(map.len() as i64),
        (Func::Len, V::Bytes(b)) => V::Int(b.len() as i64),
        (Func::Lower, V::Str(s)) => V::Str(Cow::Owned(s.to_lowercase())),
        (Func::Upper, V::Str(s)) => V::Str(Cow::Owned(s.to_uppercase())),
        (Func::Trim, V::Str(s)) => V::Str(Cow::Owned(s.trim().to_string())),
        (func, other) => return Err(format!("{func:?} cannot take {}", other.type_name()).to_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::field::{map, string};
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue { key: key.into(), value: Some(value), ..Default::default() }
    }

    fn check(source: &str, entry: &Entry<'_>) -> Result<bool, String> {
        Expr::parse(source)?.matches(entry)
    }

    #[test]
    fn evaluates_what_log_pipelines_write() {
        let resource = [kv("host", string("web-1"))];
        let entry = Entry {
            record: LogRecord {
                body: Some(map(vec![
                    kv("msg", string("GET /health 200")),
                    kv("status", AnyValue { value: Some(Value::IntValue(503)) }),
                ])),
                attributes: vec![kv("log.iostream", string("stderr")), kv("level", string("DEBUG"))],
                ..Default::default()
            },
            resource: Cow::Borrowed(&resource),
        };
        let yes = [
            r#"attributes["log.iostream"] == "stderr""#,
            r#"body.msg matches "^GET /health""#,
            r#"body.msg contains "health" and body.status >= 500"#,
            r#"lower(attributes.level) == 'debug' && resource.host startsWith "web""#,
            r#"not (body.status < 500) || false"#,
            r#"attributes.level in ["DEBUG", "TRACE"]"#,
            r#"attributes.missing == nil"#,
            r#"'level' in attributes"#,
            r#"body.status != 503.5 and body.status == 503.0"#,
            r#"len(body.msg) == 15 and "x" not in ["y"]"#,
            r#"body.msg endsWith '200' and !(body.msg startsWith "POST")"#,
            r#"body.msg matches "\\d{3}$""#,
        ];
        for source in yes {
            assert_eq!(check(source, &entry), Ok(true), "{source}");
        }
        let no = [r#"attributes.level == "debug""#, r#"body.status > 600"#, "false and nil == nil"];
        for source in no {
            assert_eq!(check(source, &entry), Ok(false), "{source}");
        }
        // Errors at run time: wrong types.
        for source in [r#"body.msg > 3"#, r#"body.status matches "5""#, "body.msg", r#"attributes.level contains 1"#] {
            assert!(check(source, &entry).is_err(), "{source}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_know_when_read() {
        for source in [
            "",
            "body ==",
            "body == 'x",
            "foo == 1",
            "body matches attributes.x",
            "body matches \"(\"",
            "body = 1",
            "(body == 1",
            "body == 1)",
            "env(X) == 1",
            "body ?? 1",
        ] {
            assert!(Expr::parse(source).is_err(), "{source}");
        }
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert!(Expr::parse(&deep).unwrap_err().contains("nested"));
        let deep_not = format!("{}true", "!".repeat(100));
        assert!(Expr::parse(&deep_not).is_err());
    }
}
