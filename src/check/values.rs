//! Values with units: interpreting a literal for a parameter, exactly, in the API's unit.

use crate::ast::{self, AssignOp, ValueKind};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::catalog::{FixedValue, Kind, Parameter};
use crate::model::license::{LicenseValue, human_duration, human_size, unit_words};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dimension {
    Size,
    Duration,
}

impl Dimension {
    fn noun(self) -> &'static str {
        match self {
            Dimension::Size => "a size",
            Dimension::Duration => "a duration",
        }
    }
}

/// Every unit word, with what it measures and its size in bytes or seconds.
const UNITS: &[(&str, Dimension, u128)] = &[
    ("B", Dimension::Size, 1),
    ("KB", Dimension::Size, 1_000),
    ("MB", Dimension::Size, 1_000_000),
    ("GB", Dimension::Size, 1_000_000_000),
    ("TB", Dimension::Size, 1_000_000_000_000),
    ("KiB", Dimension::Size, 1 << 10),
    ("MiB", Dimension::Size, 1 << 20),
    ("GiB", Dimension::Size, 1 << 30),
    ("TiB", Dimension::Size, 1 << 40),
    ("s", Dimension::Duration, 1),
    ("min", Dimension::Duration, 60),
    ("h", Dimension::Duration, 3_600),
    ("day", Dimension::Duration, 86_400),
    ("days", Dimension::Duration, 86_400),
    ("week", Dimension::Duration, 604_800),
    ("weeks", Dimension::Duration, 604_800),
];

/// A number with its unit interpreted: bytes, seconds, or a plain count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quantity {
    Plain(i64),
    Measure(Dimension, i64),
}

/// Interprets `number [unit]` exactly. A fraction must come out whole in bytes or seconds; a
/// bare number must be whole.
pub(crate) fn quantity(value: &ast::Value, diags: &mut Diagnostics) -> Option<Quantity> {
    let (number, unit) = match &value.kind {
        ValueKind::Number(n) => (n, None),
        ValueKind::Quantity { number, unit } => (number, Some(unit)),
        _ => return None,
    };
    let Some(unit) = unit else {
        if number.scale > 0 {
            diags.push(
                Diagnostic::error(
                    "charter::not_whole",
                    "a number without a unit must be whole",
                )
                .with_label(value.span, "has a fractional part")
                .with_help("give it a unit (`1.5 GB`) or write a whole number"),
            );
            return None;
        }
        return whole(number.digits, value, diags).map(Quantity::Plain);
    };
    let Some(&(_, dimension, factor)) = UNITS.iter().find(|(name, _, _)| *name == unit.name) else {
        diags.push(
            Diagnostic::error(
                "charter::unknown_unit",
                format!("unknown unit `{}`", unit.name),
            )
            .with_label(unit.span, "not a unit")
            .with_suggestion(&unit.name, UNITS.iter().map(|(n, _, _)| *n))
            .with_help(
                "sizes: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB; durations: s, min, h, days, weeks",
            ),
        );
        return None;
    };
    let scaled = number.digits.checked_mul(factor);
    let divisor = 10u128.checked_pow(number.scale);
    let base = match (scaled, divisor) {
        (Some(scaled), Some(divisor)) if scaled % divisor == 0 => scaled / divisor,
        (Some(_), Some(_)) => {
            let base_unit = match dimension {
                Dimension::Size => "bytes",
                Dimension::Duration => "seconds",
            };
            diags.push(
                Diagnostic::error(
                    "charter::not_whole",
                    format!(
                        "`{}` is not a whole number of {base_unit}",
                        slice_text(value)
                    ),
                )
                .with_label(value.span, "fraction does not come out whole"),
            );
            return None;
        }
        _ => {
            overflow(value, diags);
            return None;
        }
    };
    whole(base, value, diags).map(|n| Quantity::Measure(dimension, n))
}

fn whole(n: u128, value: &ast::Value, diags: &mut Diagnostics) -> Option<i64> {
    match i64::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            overflow(value, diags);
            None
        }
    }
}

fn overflow(value: &ast::Value, diags: &mut Diagnostics) {
    diags.push(
        Diagnostic::error("charter::overflow", "number is too large")
            .with_label(value.span, "does not fit in 64 bits"),
    );
}

fn slice_text(value: &ast::Value) -> String {
    value.to_string()
}

/// What kind of literal a value is, in words, for "expected X, found Y".
pub(crate) fn describe_value(value: &ast::Value) -> &'static str {
    match &value.kind {
        ValueKind::Number(_) => "a number",
        ValueKind::Quantity { unit, .. } => match UNITS.iter().find(|(n, _, _)| *n == unit.name) {
            Some((_, d, _)) => d.noun(),
            None => "a number with a unit",
        },
        ValueKind::Bool(_) => "a boolean",
        ValueKind::String(_) => "a string",
        ValueKind::Date(_) => "a date",
        ValueKind::Word(_) => "a word",
        ValueKind::List(_) => "a list",
    }
}

/// What a parameter takes, in words.
pub(crate) fn describe_kind(param: &Parameter) -> &'static str {
    match param.kind {
        Kind::Integer => "a whole number",
        Kind::Size => "a size",
        Kind::Duration => "a duration",
        Kind::Boolean => "`true` or `false`",
        Kind::Enum(_) => "one of its words",
        Kind::Fixed(_) => "its fixed value",
    }
}

/// Interprets the right-hand side of `param OP value`, in the parameter's API unit. Reports
/// and returns `None` when the value does not fit the parameter.
pub(crate) fn operand(
    param: &Parameter,
    op: AssignOp,
    value: &ast::Value,
    diags: &mut Diagnostics,
) -> Option<LicenseValue> {
    let numeric = matches!(param.kind, Kind::Integer | Kind::Size | Kind::Duration);
    if op != AssignOp::Set && !numeric {
        diags.push(
            Diagnostic::error(
                "charter::invalid_operator",
                format!("`{}` cannot be used on `{}`", op.as_str(), param.name),
            )
            .with_label(
                value.span,
                format!("`{}` takes {}", param.name, describe_kind(param)),
            )
            .with_help("only numbers, sizes and durations can be adjusted; use `=`"),
        );
        return None;
    }
    if op == AssignOp::Mul {
        return match (&value.kind, quantity(value, diags)) {
            (ValueKind::Number(_), Some(Quantity::Plain(n))) => Some(LicenseValue::Int(n)),
            (ValueKind::Number(_), None) => None,
            _ => {
                diags.push(
                    Diagnostic::error(
                        "charter::wrong_kind",
                        format!(
                            "`*=` multiplies by a plain number, not {}",
                            describe_value(value)
                        ),
                    )
                    .with_label(value.span, "expected a whole number without a unit"),
                );
                None
            }
        };
    }
    match param.kind {
        Kind::Integer => match &value.kind {
            ValueKind::Number(_) => match quantity(value, diags)? {
                Quantity::Plain(n) => Some(LicenseValue::Int(n)),
                Quantity::Measure(..) => None,
            },
            _ => wrong_kind(param, value, diags),
        },
        Kind::Size | Kind::Duration => measure(param, value, diags),
        Kind::Boolean => match value.kind {
            ValueKind::Bool(b) => Some(LicenseValue::Bool(b)),
            _ => wrong_kind(param, value, diags),
        },
        Kind::Enum(variants) => {
            let word = match &value.kind {
                ValueKind::Word(w) => w,
                ValueKind::String(s) => {
                    let mut d = wrong_kind_diagnostic(param, value);
                    if variants
                        .iter()
                        .any(|v| v.word == s || v.aliases.contains(&s.as_str()))
                    {
                        d = d.with_help(format!("write `{s}` without quotes"));
                    }
                    diags.push(d);
                    return None;
                }
                _ => return wrong_kind(param, value, diags),
            };
            if let Some(v) = variants
                .iter()
                .find(|v| v.word == word || v.aliases.contains(&word.as_str()))
            {
                return Some(LicenseValue::Enum(v));
            }
            let words = variants.iter().map(|v| v.word).collect::<Vec<_>>();
            diags.push(
                Diagnostic::error(
                    "charter::unknown_value",
                    format!("`{word}` is not a value of `{}`", param.name),
                )
                .with_label(value.span, format!("expected {}", words_list(&words)))
                .with_suggestion(
                    word,
                    variants
                        .iter()
                        .flat_map(|v| std::iter::once(v.word).chain(v.aliases.iter().copied())),
                ),
            );
            None
        }
        Kind::Fixed(fixed) => {
            let matches = match (fixed, &value.kind) {
                (FixedValue::Text(t), ValueKind::String(s) | ValueKind::Word(s)) => t == s,
                (FixedValue::Integer(n), ValueKind::Number(num)) => {
                    num.as_whole() == u128::try_from(n).ok()
                }
                _ => false,
            };
            let shown = match fixed {
                FixedValue::Text(t) => format!("\"{t}\""),
                FixedValue::Integer(n) => n.to_string(),
            };
            if matches {
                diags.push(
                    Diagnostic::warning(
                        "charter::deprecated_parameter",
                        format!("`{}` has no effect on White Label instances", param.name),
                    )
                    .with_label(value.span, "deprecated")
                    .with_help(format!(
                        "remove it; charter always sends `{}` as `{shown}`",
                        param.name
                    )),
                );
                Some(LicenseValue::Fixed(fixed))
            } else {
                diags.push(
                    Diagnostic::error(
                        "charter::fixed_value",
                        format!("`{}` can only be `{shown}`", param.name),
                    )
                    .with_label(value.span, "not the fixed value")
                    .with_help(format!(
                        "`{}` is deprecated and always sent as `{shown}`; remove the line",
                        param.name
                    )),
                );
                None
            }
        }
    }
}

fn words_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A size or duration parameter: a quantity of the right dimension, exact in the API unit.
fn measure(param: &Parameter, value: &ast::Value, diags: &mut Diagnostics) -> Option<LicenseValue> {
    let expected = if param.kind == Kind::Size {
        Dimension::Size
    } else {
        Dimension::Duration
    };
    if !matches!(
        value.kind,
        ValueKind::Number(_) | ValueKind::Quantity { .. }
    ) {
        return wrong_kind(param, value, diags);
    }
    match quantity(value, diags)? {
        Quantity::Plain(n) => {
            let explicit = match expected {
                Dimension::Size => human_size(n),
                Dimension::Duration => {
                    human_duration(n.saturating_mul(param.unit.seconds().unwrap_or(1)))
                }
            };
            diags.push(
                Diagnostic::warning(
                    "charter::bare_number",
                    format!("`{n}` has no unit; it is read as {n} {}", unit_words(param)),
                )
                .with_label(value.span, "no unit")
                .with_help(format!("write `{explicit}` to say so")),
            );
            Some(LicenseValue::Int(n))
        }
        Quantity::Measure(dimension, amount) if dimension == expected => {
            let per_unit = param.unit.seconds().unwrap_or(1);
            if amount % per_unit != 0 {
                let lower = amount / per_unit;
                let unit = unit_words(param);
                diags.push(
                    Diagnostic::error(
                        "charter::not_whole",
                        format!("`{}` is not a whole number of {unit}", slice_text(value)),
                    )
                    .with_label(
                        value.span,
                        format!("the API counts `{}` in {unit}", param.name),
                    )
                    .with_help(format!(
                        "write `{}` or `{}`",
                        human_duration(lower * per_unit),
                        human_duration((lower + 1) * per_unit)
                    )),
                );
                return None;
            }
            Some(LicenseValue::Int(amount / per_unit))
        }
        Quantity::Measure(dimension, _) => {
            diags.push(
                Diagnostic::error(
                    "charter::wrong_kind",
                    format!(
                        "`{}` is {}, not {}",
                        param.name,
                        expected.noun(),
                        dimension.noun()
                    ),
                )
                .with_label(value.span, format!("this is {}", dimension.noun()))
                .with_help(match expected {
                    Dimension::Size => "write a size such as `500 MB` or `2 GiB`",
                    Dimension::Duration => "write a duration such as `15 min` or `90 days`",
                }),
            );
            None
        }
    }
}

fn wrong_kind(
    param: &Parameter,
    value: &ast::Value,
    diags: &mut Diagnostics,
) -> Option<LicenseValue> {
    diags.push(wrong_kind_diagnostic(param, value));
    None
}

fn wrong_kind_diagnostic(param: &Parameter, value: &ast::Value) -> Diagnostic {
    Diagnostic::error(
        "charter::wrong_kind",
        format!(
            "`{}` takes {}, not {}",
            param.name,
            describe_kind(param),
            describe_value(value)
        ),
    )
    .with_label(value.span, format!("this is {}", describe_value(value)))
}
