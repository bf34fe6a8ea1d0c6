//! Compiling parsed conditions into closures over a context: paths, enums and
//! functions are resolved here, once, so an unknown name is a config error at its
//! place in the text, and evaluation never looks at text again. Reading a field and
//! comparing it with a literal allocates nothing.
//!
//! A context (`log`, later `span`, `metric` …) says which paths and enums it has; the
//! compiler is shared.

use std::borrow::Cow;

use super::ast::{BoolExpr, Call, CompareOp, Key, MathOp, Path, Value};
use super::value::Val;
use super::{OttlError, Span};

/// What an evaluation failed on (a type error, an index out of bounds): handled by
/// the caller's `error_mode`.
pub type EvalError = String;

/// A compiled value: reads what it needs from the context. A context borrows its
/// record; a value read borrows no longer than the context does.
pub type Getter<C> = Box<dyn for<'c> Fn(&'c <C as Context>::Ctx<'c>) -> Result<Val<'c>, EvalError> + Send + Sync>;

type Predicate<C> = Box<dyn for<'c> Fn(&'c <C as Context>::Ctx<'c>) -> Result<bool, EvalError> + Send + Sync>;

/// Makes a getter, so a closure's signature is inferred for every lifetime.
pub fn getter<C: Context>(
    f: impl for<'c> Fn(&'c C::Ctx<'c>) -> Result<Val<'c>, EvalError> + Send + Sync + 'static,
) -> Getter<C> {
    Box::new(f)
}

fn predicate<C: Context>(
    f: impl for<'c> Fn(&'c C::Ctx<'c>) -> Result<bool, EvalError> + Send + Sync + 'static,
) -> Predicate<C> {
    Box::new(f)
}

/// The paths and enums of one OTTL context (a marker type; `Ctx` is what a record
/// looks like to it).
pub trait Context: Sized + 'static {
    type Ctx<'c>;

    /// The context's name, as paths may be prefixed with it (`log.body`).
    const NAME: &'static str;

    /// The getter of `fields` (the path with any `<NAME>.` prefix taken off), or what
    /// is wrong with it.
    fn path(path: &Path, fields: &[super::ast::Field]) -> Result<Getter<Self>, OttlError>;

    /// An enum symbol's value, or `None` if this context has no such symbol.
    fn enum_value(name: &str) -> Option<i64>;
}

/// A compiled `where` condition, or a `filter` processor's condition.
pub struct Condition<C: Context> {
    predicate: Predicate<C>,
}

impl<C: Context> Condition<C> {
    pub fn compile(expr: &BoolExpr) -> Result<Condition<C>, OttlError> {
        Ok(Condition { predicate: compile_bool(expr)? })
    }

    /// Parses and compiles `text`.
    pub fn parse(text: &str) -> Result<Condition<C>, OttlError> {
        Self::compile(&super::parse_condition(text)?)
    }

    pub fn eval<'c>(&self, ctx: &'c C::Ctx<'c>) -> Result<bool, EvalError> {
        (self.predicate)(ctx)
    }
}

fn compile_bool<C: Context>(expr: &BoolExpr) -> Result<Predicate<C>, OttlError> {
    Ok(match expr {
        BoolExpr::Or(a, b) => {
            let (a, b) = (compile_bool::<C>(a)?, compile_bool::<C>(b)?);
            predicate::<C>(move |ctx| Ok(a(ctx)? || b(ctx)?))
        }
        BoolExpr::And(a, b) => {
            let (a, b) = (compile_bool::<C>(a)?, compile_bool::<C>(b)?);
            predicate::<C>(move |ctx| Ok(a(ctx)? && b(ctx)?))
        }
        BoolExpr::Not(inner, _) => {
            let inner = compile_bool::<C>(inner)?;
            predicate::<C>(move |ctx| Ok(!inner(ctx)?))
        }
        BoolExpr::Compare { op, lhs, rhs, .. } => compile_compare::<C>(*op, lhs, rhs)?,
        BoolExpr::Value(Value::Bool(b, _)) => {
            let b = *b;
            predicate::<C>(move |_| Ok(b))
        }
        BoolExpr::Value(value) => {
            let getter = compile_value::<C>(value)?;
            predicate::<C>(move |ctx| match getter(ctx)? {
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

fn compile_compare<C: Context>(op: CompareOp, lhs: &Value, rhs: &Value) -> Result<Predicate<C>, OttlError> {
    let constant = |value: &Value| -> Result<Option<Val<'static>>, OttlError> {
        Ok(match value {
            Value::Enum(name, span) => Some(Val::Int(enum_of::<C>(name, *span)?)),
            other => literal(other),
        })
    };
    Ok(match (constant(lhs)?, constant(rhs)?) {
        (Some(a), Some(b)) => {
            let result = a.compare(op, &b);
            predicate::<C>(move |_| Ok(result))
        }
        (None, Some(b)) => {
            let lhs = compile_value::<C>(lhs)?;
            predicate::<C>(move |ctx| Ok(lhs(ctx)?.compare(op, &b)))
        }
        (Some(a), None) => {
            let rhs = compile_value::<C>(rhs)?;
            predicate::<C>(move |ctx| Ok(a.compare(op, &rhs(ctx)?)))
        }
        (None, None) => {
            let (lhs, rhs) = (compile_value::<C>(lhs)?, compile_value::<C>(rhs)?);
            predicate::<C>(move |ctx| Ok(lhs(ctx)?.compare(op, &rhs(ctx)?)))
        }
    })
}

fn enum_of<C: Context>(name: &str, span: Span) -> Result<i64, OttlError> {
    C::enum_value(name).ok_or_else(|| {
        OttlError::new(
            format!("`{name}` is not an enum of the {} context (or a converter missing its `(...)`)", C::NAME),
            span,
        )
    })
}

/// Compiles a value into a getter.
pub fn compile_value<C: Context>(value: &Value) -> Result<Getter<C>, OttlError> {
    if let Some(constant) = literal(value) {
        // A literal as an argument is built per use; comparisons avoid this path.
        return Ok(getter::<C>(move |_| Ok(constant.clone())));
    }
    Ok(match value {
        Value::Enum(name, span) => {
            let v = enum_of::<C>(name, *span)?;
            getter::<C>(move |_| Ok(Val::Int(v)))
        }
        Value::Path(path) => compile_path::<C>(path)?,
        Value::Converter(call) => {
            let getter = super::functions::converter::<C>(call)?;
            with_keys::<C>(getter, &call.keys)?
        }
        Value::Math { op, lhs, rhs, .. } => {
            let (op, lhs, rhs) = (*op, compile_value::<C>(lhs)?, compile_value::<C>(rhs)?);
            getter::<C>(move |ctx| math(op, lhs(ctx)?, rhs(ctx)?))
        }
        Value::List(..) | Value::Map(..) => {
            return Err(OttlError::new("a list or map is only an argument of a function that takes one", value.span()));
        }
        Value::Nil(_) | Value::Bool(..) | Value::Int(..) | Value::Float(..) | Value::String(..) | Value::Bytes(..) => {
            return Err(OttlError::new("unreachable literal", value.span()));
        }
    })
}

fn compile_path<C: Context>(path: &Path) -> Result<Getter<C>, OttlError> {
    let fields = match path.fields.split_first() {
        // `log.body` in the log context: the prefix names the context itself.
        Some((first, rest)) if first.name == C::NAME && first.keys.is_empty() && !rest.is_empty() => rest,
        _ => &path.fields[..],
    };
    C::path(path, fields)
}

/// Applies `[...]` keys to what `getter` gives.
pub fn with_keys<C: Context>(base: Getter<C>, keys: &[Key]) -> Result<Getter<C>, OttlError> {
    let mut getter = base;
    for key in keys {
        getter = match key {
            Key::String(k, _) => {
                let k = k.clone();
                self::getter::<C>(move |ctx| getter(ctx)?.key(&k))
            }
            Key::Int(i, _) => {
                let i = *i;
                self::getter::<C>(move |ctx| getter(ctx)?.index(i))
            }
            Key::Expr(expr) => {
                let key = compile_value::<C>(expr)?;
                self::getter::<C>(move |ctx| match key(ctx)? {
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

/// A call's arguments by position, for functions without named ones.
pub fn positional<'a>(call: &'a Call, wanted: &[&str]) -> Result<Vec<&'a Value>, OttlError> {
    if let Some(arg) = call.args.iter().find(|a| a.name.is_some()) {
        let (name, span) = arg.name.as_ref().map(|(n, s)| (n.as_str(), *s)).unwrap_or_default();
        if !wanted.contains(&name) {
            return Err(OttlError::new(
                format!("`{}` has no argument named `{name}`; it takes {}", call.name, wanted.join(", ")),
                span,
            ));
        }
    }
    let mut out: Vec<Option<&Value>> = vec![None; wanted.len()];
    for (i, arg) in call.args.iter().enumerate() {
        let slot = match &arg.name {
            Some((name, _)) => wanted.iter().position(|w| w == name).unwrap_or(usize::MAX),
            None => i,
        };
        match out.get_mut(slot) {
            Some(place) => *place = Some(&arg.value),
            None => {
                return Err(OttlError::new(
                    format!("`{}` takes {} argument(s) ({})", call.name, wanted.len(), wanted.join(", ")),
                    arg.value.span(),
                ));
            }
        }
    }
    out.into_iter()
        .zip(wanted)
        .map(|(value, name)| {
            value.ok_or_else(|| OttlError::new(format!("`{}` needs its `{name}` argument", call.name), call.span))
        })
        .collect()
}
