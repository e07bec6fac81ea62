//! The expression language of rules (and later of tests and guards): static typing with
//! located errors, then evaluation against an environment that supplies names.

use std::fmt;

use super::values::{Dimension, Quantity, quantity};
use crate::ast::{self, BinaryOp, ExprKind, ValueKind};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::license::{group_thousands, human_duration, human_size};

/// The type of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int,
    Size,
    Duration,
    Bool,
    /// An enum word (`monthly`).
    Enum,
    Text,
    Date,
    /// The name of a state or a tier (`state == frozen`).
    Name,
}

impl Type {
    pub fn noun(self) -> &'static str {
        match self {
            Type::Int => "a number",
            Type::Size => "a size",
            Type::Duration => "a duration",
            Type::Bool => "a boolean",
            Type::Enum => "an enum word",
            Type::Text => "a string",
            Type::Date => "a date",
            Type::Name => "a name",
        }
    }

    fn is_quantity(self) -> bool {
        matches!(self, Type::Size | Type::Duration)
    }
}

/// A value during evaluation: sizes in bytes, durations in seconds, dates in Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Int(i128),
    Size(i128),
    Duration(i128),
    Bool(bool),
    Enum(&'static str),
    Text(String),
    Date(i64),
    Name(String),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clamp = |n: i128| i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX });
        match self {
            Val::Int(n) => f.write_str(&group_thousands(clamp(*n))),
            Val::Size(n) => f.write_str(&human_size(clamp(*n))),
            Val::Duration(n) => f.write_str(&human_duration(clamp(*n))),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Enum(w) => f.write_str(w),
            Val::Text(t) => write!(f, "{t:?}"),
            Val::Name(n) => f.write_str(n),
            Val::Date(d) => match jiff::Timestamp::from_second(*d) {
                Ok(t) if d % 86_400 == 0 => write!(f, "{}", t.strftime("%Y-%m-%d")),
                Ok(t) => write!(f, "{}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
                Err(_) => write!(f, "{d}"),
            },
        }
    }
}

/// Names an expression may use, and their types. Implemented per context (a tier's rule, a
/// customer's test, a transition guard).
pub trait Resolver {
    /// The type of `name` or `qualifier.name`, or a diagnostic saying why it is unknown.
    fn resolve(
        &self,
        qualifier: Option<&ast::Ident>,
        name: &ast::Ident,
    ) -> Result<Type, Diagnostic>;
}

/// The values of names at evaluation time.
pub trait Env {
    /// `None` when the name has no value here (the evaluation is then skipped, not failed).
    fn value(&self, qualifier: Option<&str>, name: &str) -> Option<Val>;
}

/// Type-checks an expression; reports every problem found and returns its type if it has one.
pub fn type_of(expr: &ast::Expr, resolver: &dyn Resolver, diags: &mut Diagnostics) -> Option<Type> {
    match &expr.kind {
        ExprKind::Paren(inner) => type_of(inner, resolver, diags),
        ExprKind::Literal(value) => literal_type(value, diags),
        ExprKind::Reference { qualifier, name } => match resolver.resolve(qualifier.as_ref(), name)
        {
            Ok(t) => Some(t),
            Err(d) => {
                diags.push(d);
                None
            }
        },
        ExprKind::Not(inner) => {
            let t = type_of(inner, resolver, diags)?;
            if t != Type::Bool {
                diags.push(mismatch_one(inner, t, "`not` needs a boolean"));
                return None;
            }
            Some(Type::Bool)
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let l = type_of(lhs, resolver, diags);
            let r = type_of(rhs, resolver, diags);
            let (l, r) = (l?, r?);
            let result = binary_type(*op, l, r);
            if result.is_none() {
                diags.push(
                    Diagnostic::error("charter::type_mismatch", binary_message(*op, l, r))
                        .with_label(lhs.span, format!("this is {}", l.noun()))
                        .with_label(rhs.span, format!("this is {}", r.noun())),
                );
            }
            result
        }
    }
}

fn mismatch_one(expr: &ast::Expr, t: Type, message: &str) -> Diagnostic {
    Diagnostic::error("charter::type_mismatch", message.to_string())
        .with_label(expr.span, format!("this is {}", t.noun()))
}

fn binary_message(op: BinaryOp, l: Type, r: Type) -> String {
    match op {
        BinaryOp::And | BinaryOp::Or | BinaryOp::Implies => {
            format!("`{}` needs booleans on both sides", op.as_str())
        }
        _ if op.is_comparison() && l != r => {
            format!("cannot compare {} with {}", l.noun(), r.noun())
        }
        _ if op.is_comparison() => format!("{} cannot be ordered with `{}`", l.noun(), op.as_str()),
        _ => format!(
            "cannot apply `{}` to {} and {}",
            op.as_str(),
            l.noun(),
            r.noun()
        ),
    }
}

fn binary_type(op: BinaryOp, l: Type, r: Type) -> Option<Type> {
    use Type::*;
    match op {
        BinaryOp::And | BinaryOp::Or | BinaryOp::Implies => {
            (l == Bool && r == Bool).then_some(Bool)
        }
        BinaryOp::Eq | BinaryOp::Ne => (l == r).then_some(Bool),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (l == r && matches!(l, Int | Size | Duration | Date)).then_some(Bool)
        }
        BinaryOp::Add => match (l, r) {
            (Int, Int) => Some(Int),
            (Size, Size) => Some(Size),
            (Duration, Duration) => Some(Duration),
            (Date, Duration) | (Duration, Date) => Some(Date),
            _ => None,
        },
        BinaryOp::Sub => match (l, r) {
            (Int, Int) => Some(Int),
            (Size, Size) => Some(Size),
            (Duration, Duration) => Some(Duration),
            (Date, Duration) => Some(Date),
            (Date, Date) => Some(Duration),
            _ => None,
        },
        BinaryOp::Mul => match (l, r) {
            (Int, Int) => Some(Int),
            (Int, q) | (q, Int) if q.is_quantity() => Some(q),
            _ => None,
        },
        BinaryOp::Div => match (l, r) {
            (Int, Int) => Some(Int),
            (q, Int) if q.is_quantity() => Some(q),
            (a, b) if a == b && a.is_quantity() => Some(Int),
            _ => None,
        },
    }
}

fn literal_type(value: &ast::Value, diags: &mut Diagnostics) -> Option<Type> {
    match &value.kind {
        ValueKind::Number(_) | ValueKind::Quantity { .. } => match quantity(value, diags)? {
            Quantity::Plain(_) => Some(Type::Int),
            Quantity::Measure(Dimension::Size, _) => Some(Type::Size),
            Quantity::Measure(Dimension::Duration, _) => Some(Type::Duration),
        },
        ValueKind::Bool(_) => Some(Type::Bool),
        ValueKind::String(_) => Some(Type::Text),
        ValueKind::Date(_) => Some(Type::Date),
        ValueKind::Word(_) | ValueKind::List(_) => {
            diags.push(
                Diagnostic::error(
                    "charter::type_mismatch",
                    "a list cannot be used in an expression",
                )
                .with_label(value.span, "not a single value"),
            );
            None
        }
    }
}

/// Why an evaluation produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// A name has no value in this environment.
    Unavailable(String),
    DivisionByZero(crate::source::Span),
    Overflow(crate::source::Span),
}

/// A name the evaluation read, with its value, for failure messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub value: Val,
}

/// Evaluates a type-checked expression, recording every name it reads.
pub fn eval(expr: &ast::Expr, env: &dyn Env, seen: &mut Vec<Seen>) -> Result<Val, EvalError> {
    match &expr.kind {
        ExprKind::Paren(inner) => eval(inner, env, seen),
        ExprKind::Literal(value) => literal_value(value).ok_or(EvalError::Overflow(expr.span)),
        ExprKind::Reference { qualifier, name } => {
            let q = qualifier.as_ref().map(|q| q.name.as_str());
            let value = env
                .value(q, &name.name)
                .ok_or_else(|| EvalError::Unavailable(reference_text(qualifier.as_ref(), name)))?;
            let text = reference_text(qualifier.as_ref(), name);
            // A word that names itself (an enum value, a state or tier name) is not a reading.
            let literal_word = match &value {
                Val::Enum(w) => *w == name.name,
                Val::Name(n) => *n == name.name,
                _ => false,
            };
            if !literal_word && !seen.iter().any(|s| s.name == text) {
                seen.push(Seen {
                    name: text,
                    value: value.clone(),
                });
            }
            Ok(value)
        }
        ExprKind::Not(inner) => match eval(inner, env, seen)? {
            Val::Bool(b) => Ok(Val::Bool(!b)),
            _ => Err(EvalError::Overflow(expr.span)),
        },
        ExprKind::Binary { op, lhs, rhs } => {
            let l = eval(lhs, env, seen)?;
            // `and`, `or` and `implies` still read their right side, so that a failure can
            // show every value involved.
            let r = eval(rhs, env, seen)?;
            binary_value(*op, l, r, expr.span)
        }
    }
}

fn reference_text(qualifier: Option<&ast::Ident>, name: &ast::Ident) -> String {
    match qualifier {
        Some(q) => format!("{}.{}", q.name, name.name),
        None => name.name.clone(),
    }
}

fn literal_value(value: &ast::Value) -> Option<Val> {
    let mut ignored = Diagnostics::default();
    Some(match &value.kind {
        ValueKind::Number(_) | ValueKind::Quantity { .. } => match quantity(value, &mut ignored)? {
            Quantity::Plain(n) => Val::Int(n.into()),
            Quantity::Measure(Dimension::Size, n) => Val::Size(n.into()),
            Quantity::Measure(Dimension::Duration, n) => Val::Duration(n.into()),
        },
        ValueKind::Bool(b) => Val::Bool(*b),
        ValueKind::String(s) => Val::Text(s.clone()),
        ValueKind::Date(d) => Val::Date(d.unix_seconds),
        ValueKind::Word(_) | ValueKind::List(_) => return None,
    })
}

fn binary_value(op: BinaryOp, l: Val, r: Val, span: crate::source::Span) -> Result<Val, EvalError> {
    use Val::*;
    let overflow = || EvalError::Overflow(span);
    let order = |l: &Val, r: &Val| -> Option<std::cmp::Ordering> {
        match (l, r) {
            (Int(a), Int(b)) | (Size(a), Size(b)) | (Duration(a), Duration(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    Ok(match op {
        BinaryOp::And => Bool(as_bool(&l)? && as_bool(&r)?),
        BinaryOp::Or => Bool(as_bool(&l)? || as_bool(&r)?),
        BinaryOp::Implies => Bool(!as_bool(&l)? || as_bool(&r)?),
        BinaryOp::Eq => Bool(l == r),
        BinaryOp::Ne => Bool(l != r),
        BinaryOp::Lt => Bool(order(&l, &r).ok_or_else(overflow)?.is_lt()),
        BinaryOp::Le => Bool(order(&l, &r).ok_or_else(overflow)?.is_le()),
        BinaryOp::Gt => Bool(order(&l, &r).ok_or_else(overflow)?.is_gt()),
        BinaryOp::Ge => Bool(order(&l, &r).ok_or_else(overflow)?.is_ge()),
        BinaryOp::Add => match (l, r) {
            (Int(a), Int(b)) => Int(a.checked_add(b).ok_or_else(overflow)?),
            (Size(a), Size(b)) => Size(a.checked_add(b).ok_or_else(overflow)?),
            (Duration(a), Duration(b)) => Duration(a.checked_add(b).ok_or_else(overflow)?),
            (Date(d), Duration(s)) | (Duration(s), Date(d)) => {
                Date(shift(d, s).ok_or_else(overflow)?)
            }
            _ => return Err(overflow()),
        },
        BinaryOp::Sub => match (l, r) {
            (Int(a), Int(b)) => Int(a.checked_sub(b).ok_or_else(overflow)?),
            (Size(a), Size(b)) => Size(a.checked_sub(b).ok_or_else(overflow)?),
            (Duration(a), Duration(b)) => Duration(a.checked_sub(b).ok_or_else(overflow)?),
            (Date(d), Duration(s)) => {
                Date(shift(d, s.checked_neg().ok_or_else(overflow)?).ok_or_else(overflow)?)
            }
            (Date(a), Date(b)) => Duration(i128::from(a) - i128::from(b)),
            _ => return Err(overflow()),
        },
        BinaryOp::Mul => match (l, r) {
            (Int(a), Int(b)) => Int(a.checked_mul(b).ok_or_else(overflow)?),
            (Int(n), Size(q)) | (Size(q), Int(n)) => Size(q.checked_mul(n).ok_or_else(overflow)?),
            (Int(n), Duration(q)) | (Duration(q), Int(n)) => {
                Duration(q.checked_mul(n).ok_or_else(overflow)?)
            }
            _ => return Err(overflow()),
        },
        BinaryOp::Div => {
            let divisor = match &r {
                Int(b) | Size(b) | Duration(b) => *b,
                _ => return Err(overflow()),
            };
            if divisor == 0 {
                return Err(EvalError::DivisionByZero(span));
            }
            match (l, r) {
                (Int(a), Int(_)) => Int(a / divisor),
                (Size(a), Int(_)) => Size(a / divisor),
                (Duration(a), Int(_)) => Duration(a / divisor),
                (Size(a), Size(_)) | (Duration(a), Duration(_)) => Int(a / divisor),
                _ => return Err(overflow()),
            }
        }
    })
}

fn shift(date: i64, seconds: i128) -> Option<i64> {
    i64::try_from(i128::from(date).checked_add(seconds)?).ok()
}

fn as_bool(v: &Val) -> Result<bool, EvalError> {
    match v {
        Val::Bool(b) => Ok(*b),
        _ => Err(EvalError::Unavailable("a boolean".to_string())),
    }
}
