//! Compiling parsed conditions into closures over a context: paths, enums and
//! functions are resolved here, once, so an unknown name is a config error at its
//! place in the text, and evaluation never looks at text again. Reading a field and
//! comparing it with a literal allocates nothing.
//!
//! A context ([`Kind`]) says which paths and enums there are; the compiler is shared.

use std::borrow::Cow;

use super::ast::{BoolExpr, Call, CompareOp, Key, MathOp, Value};
use super::record::{Kind, Record};
use super::value::Val;
use super::{OttlError, Span};

/// What an evaluation failed on (a type error, an index out of bounds): handled by
/// the caller's `error_mode`.
pub type EvalError = String;

/// A compiled value: reads what it needs from the item. A value read borrows no
/// longer than the record does.
pub type Getter = Box<dyn for<'c> Fn(&'c Record<'c>) -> Result<Val<'c>, EvalError> + Send + Sync>;

type Predicate = Box<dyn for<'c> Fn(&'c Record<'c>) -> Result<bool, EvalError> + Send + Sync>;

/// Makes a getter, so a closure's signature is inferred for every lifetime.
pub fn getter(f: impl for<'c> Fn(&'c Record<'c>) -> Result<Val<'c>, EvalError> + Send + Sync + 'static) -> Getter {
    Box::new(f)
}

fn predicate(f: impl for<'c> Fn(&'c Record<'c>) -> Result<bool, EvalError> + Send + Sync + 'static) -> Predicate {
    Box::new(f)
}

/// An absent argument, for the errors of optional ones.
pub static NIL_VALUE: Value = Value::Nil(Span { start: 0, end: 0 });

/// A compiled `where` condition, or a `filter` processor's condition.
pub struct Condition {
    predicate: Predicate,
}

impl Condition {
    pub fn compile(kind: Kind, expr: &BoolExpr) -> Result<Condition, OttlError> {
        Ok(Condition { predicate: compile_bool(kind, expr)? })
    }

    /// Parses and compiles `text` in the `kind` context.
    pub fn parse(kind: Kind, text: &str) -> Result<Condition, OttlError> {
        Self::compile(kind, &super::parse_condition(text)?)
    }

    pub fn eval<'c>(&self, record: &'c Record<'c>) -> Result<bool, EvalError> {
        (self.predicate)(record)
    }
}

pub(super) fn compile_bool(kind: Kind, expr: &BoolExpr) -> Result<Predicate, OttlError> {
    Ok(match expr {
        BoolExpr::Or(a, b) => {
            let (a, b) = (compile_bool(kind, a)?, compile_bool(kind, b)?);
            predicate(move |ctx| Ok(a(ctx)? || b(ctx)?))
        }
        BoolExpr::And(a, b) => {
            let (a, b) = (compile_bool(kind, a)?, compile_bool(kind, b)?);
            predicate(move |ctx| Ok(a(ctx)? && b(ctx)?))
        }
        BoolExpr::Not(inner, _) => {
            let inner = compile_bool(kind, inner)?;
            predicate(move |ctx| Ok(!inner(ctx)?))
        }
        BoolExpr::Compare { op, lhs, rhs, .. } => compile_compare(kind, *op, lhs, rhs)?,
        BoolExpr::Value(Value::Bool(b, _)) => {
            let b = *b;
            predicate(move |_| Ok(b))
        }
        BoolExpr::Value(value) => {
            let getter = compile_value(kind, value)?;
            predicate(move |ctx| match getter(ctx)? {
                Val::Bool(b) => Ok(b),
                other => Err(format!("a condition must be bool but got {}", other.type_name())),
            })
        }
    })
}

/// A literal's value, for comparing without building it per record.
fn literal(value: &Value) -> Option<Val<'static>> {
    Some(match value {
        Value::Nil(_) => Val::Nil,
        Value::Bool(b, _) => Val::Bool(*b),
        Value::Int(i, _) => Val::Int(*i),
        Value::Float(f, _) => Val::Float(*f),
        Value::String(s, _) => Val::Str(Cow::Owned(s.clone())),
        Value::Bytes(b, _) => Val::Bytes(Cow::Owned(b.clone())),
        _ => return None,
    })
}

fn compile_compare(kind: Kind, op: CompareOp, lhs: &Value, rhs: &Value) -> Result<Predicate, OttlError> {
    let constant = |value: &Value| -> Result<Option<Val<'static>>, OttlError> {
        Ok(match value {
            Value::Enum(name, span) => Some(Val::Int(enum_of(kind, name, *span)?)),
            other => literal(other),
        })
    };
    Ok(match (constant(lhs)?, constant(rhs)?) {
        (Some(a), Some(b)) => {
            let result = a.compare(op, &b);
            predicate(move |_| Ok(result))
        }
        (None, Some(b)) => {
            let lhs = compile_value(kind, lhs)?;
            predicate(move |ctx| Ok(lhs(ctx)?.compare(op, &b)))
        }
        (Some(a), None) => {
            let rhs = compile_value(kind, rhs)?;
            predicate(move |ctx| Ok(a.compare(op, &rhs(ctx)?)))
        }
        (None, None) => {
            let (lhs, rhs) = (compile_value(kind, lhs)?, compile_value(kind, rhs)?);
            predicate(move |ctx| Ok(lhs(ctx)?.compare(op, &rhs(ctx)?)))
        }
    })
}

fn enum_of(kind: Kind, name: &str, span: Span) -> Result<i64, OttlError> {
    kind.enum_value(name).ok_or_else(|| {
        OttlError::new(
            format!("`{name}` is not an enum of the {} context (or a converter missing its `(...)`)", kind.name()),
            span,
        )
    })
}

/// Compiles a value into a getter.
pub fn compile_value(kind: Kind, value: &Value) -> Result<Getter, OttlError> {
    if let Some(constant) = literal(value) {
        // A literal as an argument is built per use; comparisons avoid this path.
        return Ok(getter(move |_| Ok(constant.clone())));
    }
    Ok(match value {
        Value::Enum(name, span) => {
            let v = enum_of(kind, name, *span)?;
            getter(move |_| Ok(Val::Int(v)))
        }
        Value::Path(path) => super::paths::resolve(kind, path)?.get,
        Value::Converter(call) => {
            let getter = super::functions::converter(kind, call)?;
            with_keys(kind, getter, &call.keys)?
        }
        Value::Math { op, lhs, rhs, .. } => {
            let (op, lhs, rhs) = (*op, compile_value(kind, lhs)?, compile_value(kind, rhs)?);
            getter(move |ctx| math(op, lhs(ctx)?, rhs(ctx)?))
        }
        Value::List(..) | Value::Map(..) => {
            return Err(OttlError::new("a list or map is only an argument of a function that takes one", value.span()));
        }
        Value::Nil(_) | Value::Bool(..) | Value::Int(..) | Value::Float(..) | Value::String(..) | Value::Bytes(..) => {
            return Err(OttlError::new("unreachable literal", value.span()));
        }
    })
}

/// Applies `[...]` keys to what `getter` gives.
pub fn with_keys(kind: Kind, base: Getter, keys: &[Key]) -> Result<Getter, OttlError> {
    let mut getter = base;
    for key in keys {
        getter = match key {
            Key::String(k, _) => {
                let k = k.clone();
                self::getter(move |ctx| getter(ctx)?.key(&k))
            }
            Key::Int(i, _) => {
                let i = *i;
                self::getter(move |ctx| getter(ctx)?.index(i))
            }
            Key::Expr(expr) => {
                let key = compile_value(kind, expr)?;
                self::getter(move |ctx| match key(ctx)? {
                    Val::Str(k) => getter(ctx)?.key(&k),
                    Val::Int(i) => getter(ctx)?.index(i),
                    other => Err(format!("could not resolve key of type {}", other.type_name())),
                })
            }
        };
    }
    Ok(getter)
}

/// `+ - * /` as upstream: int with int, float with float; mixing them, or anything
/// else, is an error; integer division by zero is an error.
fn math(op: MathOp, a: Val<'_>, b: Val<'_>) -> Result<Val<'static>, EvalError> {
    match (a, b) {
        (Val::Int(a), Val::Int(b)) => Ok(Val::Int(match op {
            MathOp::Add => a.wrapping_add(b),
            MathOp::Sub => a.wrapping_sub(b),
            MathOp::Mul => a.wrapping_mul(b),
            MathOp::Div if b == 0 => return Err("attempted to divide by 0".into()),
            MathOp::Div => a.wrapping_div(b),
        })),
        (Val::Float(a), Val::Float(b)) => Ok(Val::Float(match op {
            MathOp::Add => a + b,
            MathOp::Sub => a - b,
            MathOp::Mul => a * b,
            MathOp::Div if b == 0.0 => return Err("attempted to divide by 0".into()),
            MathOp::Div => a / b,
        })),
        (a, b) => Err(format!("math on {} and {} is not supported", a.type_name(), b.type_name())),
    }
}

/// A call's arguments, by position or by name (`depth=2`), every one of `wanted`.
pub fn positional<'a>(call: &'a Call, wanted: &[&str]) -> Result<Vec<&'a Value>, OttlError> {
    Ok(arguments(call, wanted, wanted.len())?.into_iter().flatten().collect())
}

/// A call's arguments, by position or by name; the first `required` must be there,
/// the rest are optional.
pub fn arguments<'a>(call: &'a Call, wanted: &[&str], required: usize) -> Result<Vec<Option<&'a Value>>, OttlError> {
    let mut out: Vec<Option<&Value>> = vec![None; wanted.len()];
    for (i, arg) in call.args.iter().enumerate() {
        let slot = match &arg.name {
            Some((name, span)) => wanted.iter().position(|w| w == name).ok_or_else(|| {
                OttlError::new(
                    format!("`{}` has no argument named `{name}`; it takes {}", call.name, wanted.join(", ")),
                    *span,
                )
            })?,
            None => i,
        };
        match out.get_mut(slot) {
            Some(place @ None) => *place = Some(&arg.value),
            Some(Some(_)) => {
                return Err(OttlError::new(
                    format!("`{}`: argument `{}` given twice", call.name, wanted[slot]),
                    arg.value.span(),
                ));
            }
            None => {
                return Err(OttlError::new(
                    format!("`{}` takes at most {} argument(s) ({})", call.name, wanted.len(), wanted.join(", ")),
                    arg.value.span(),
                ));
            }
        }
    }
    if let Some(missing) = out.iter().take(required).position(Option::is_none) {
        return Err(OttlError::new(format!("`{}` needs its `{}` argument", call.name, wanted[missing]), call.span));
    }
    Ok(out)
}
