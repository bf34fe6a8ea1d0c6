//! The parsed form of an OTTL statement or condition, before names are resolved: what
//! the grammar says, with the span of every part for errors.

use super::Span;

/// `editor(args) where condition`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub editor: Call,
    pub condition: Option<BoolExpr>,
}

/// An editor (lowercase) or converter (uppercase) invocation; converters may be
/// indexed (`Split(body, ",")[1]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: String,
    pub name_span: Span,
    pub args: Vec<Arg>,
    pub keys: Vec<Key>,
    pub span: Span,
}

/// One argument, named (`pattern = "x"`) or by position.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<(String, Span)>,
    pub value: Value,
}

/// `["key"]`, `[0]`, or a value computed per record (`[attributes["k"]]`).
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    String(String, Span),
    Int(i64, Span),
    Expr(Box<Value>),
}

/// `resource.attributes["k"]`: dotted fields, each with its keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub fields: Vec<Field>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub span: Span,
    pub keys: Vec<Key>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MathOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil(Span),
    Bool(bool, Span),
    Int(i64, Span),
    Float(f64, Span),
    String(String, Span),
    Bytes(Vec<u8>, Span),
    /// An uppercase name alone: an enum (`SPAN_KIND_SERVER`), or a function name
    /// passed as an argument; the compiler decides which.
    Enum(String, Span),
    Path(Path),
    Converter(Call),
    List(Vec<Value>, Span),
    Map(Vec<(String, Value)>, Span),
    Math {
        op: MathOp,
        lhs: Box<Value>,
        rhs: Box<Value>,
        span: Span,
    },
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Nil(s)
            | Value::Bool(_, s)
            | Value::Int(_, s)
            | Value::Float(_, s)
            | Value::String(_, s)
            | Value::Bytes(_, s)
            | Value::Enum(_, s)
            | Value::List(_, s)
            | Value::Map(_, s)
            | Value::Math { span: s, .. } => *s,
            Value::Path(p) => p.span,
            Value::Converter(c) => c.span,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `where` conditions: `not` binds tightest, then `and`, then `or`.
#[derive(Clone, Debug, PartialEq)]
pub enum BoolExpr {
    Or(Box<BoolExpr>, Box<BoolExpr>),
    And(Box<BoolExpr>, Box<BoolExpr>),
    Not(Box<BoolExpr>, Span),
    Compare {
        op: CompareOp,
        lhs: Value,
        rhs: Value,
        span: Span,
    },
    /// `true`, `false`, or a converter (or path) that returns a boolean.
    Value(Value),
}

impl BoolExpr {
    pub fn span(&self) -> Span {
        match self {
            BoolExpr::Or(a, b) | BoolExpr::And(a, b) => a.span().to(b.span()),
            BoolExpr::Not(_, s) | BoolExpr::Compare { span: s, .. } => *s,
            BoolExpr::Value(v) => v.span(),
        }
    }
}
