//! Rules: `assert ladder` and `assert for`, verified against every resolved tier.

use super::Declarations;
use super::expr::{self, EvalError, Resolver, Seen, Type, Val};
use super::tiers::Resolved;
use crate::ast::{self, Scope};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::catalog::{self, Better, CATALOG, FixedValue, Kind, Parameter};
use crate::model::license::{License, LicenseValue};
use crate::model::program::Rule;

/// Checks every ladder and returns them as name lists.
pub(super) fn ladders(
    decls: &Declarations<'_>,
    resolved: &Resolved,
    diags: &mut Diagnostics,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for ladder in &decls.ladders {
        let mut ok = true;
        for name in &ladder.tiers {
            ok &= concrete_tier(decls, name, diags);
        }
        for (i, name) in ladder.tiers.iter().enumerate() {
            if ladder.tiers[..i].iter().any(|n| n.name == name.name) {
                ok = false;
                diags.push(
                    Diagnostic::error(
                        "charter::duplicate_ladder_tier",
                        format!("tier `{}` appears twice in the ladder", name.name),
                    )
                    .with_label(name.span, "listed again here"),
                );
            }
        }
        for pair in ladder.tiers.windows(2) {
            let [lower, upper] = pair else { continue };
            let (Some(a), Some(b)) = (resolved.sound(&lower.name), resolved.sound(&upper.name))
            else {
                continue;
            };
            let worse: Vec<String> = CATALOG
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let (x, y) = (a.license.value(i)?, b.license.value(i)?);
                    (!at_least_as_good(p, x, y)).then(|| {
                        format!(
                            "`{}`: {} in `{}`, {} in `{}` ({})",
                            p.name,
                            x.human(p),
                            lower.name,
                            y.human(p),
                            upper.name,
                            direction(p)
                        )
                    })
                })
                .collect();
            if worse.is_empty() {
                continue;
            }
            ok = false;
            let noun = if worse.len() == 1 {
                "parameter"
            } else {
                "parameters"
            };
            diags.push(
                Diagnostic::error(
                    "charter::ladder_broken",
                    format!(
                        "tier `{}` is worse than `{}` in {} {noun}",
                        upper.name,
                        lower.name,
                        worse.len()
                    ),
                )
                .with_label(
                    lower.span.to(upper.span),
                    format!(
                        "`{}` must be at least as good as `{}`",
                        upper.name, lower.name
                    ),
                )
                .with_help(worse.join("\n")),
            );
        }
        if ok {
            out.push(ladder.tiers.iter().map(|t| t.name.clone()).collect());
        }
    }
    out
}

fn direction(p: &Parameter) -> &'static str {
    match p.better {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
        Better::True => "`true` is better",
        Better::Unordered => "",
    }
}

/// Whether `upper` is at least as good as `lower` for the customer.
fn at_least_as_good(p: &Parameter, lower: LicenseValue, upper: LicenseValue) -> bool {
    match (p.better, lower, upper) {
        (Better::Higher, LicenseValue::Int(a), LicenseValue::Int(b)) => b >= a,
        (Better::Lower, LicenseValue::Int(a), LicenseValue::Int(b)) => b <= a,
        (Better::True, LicenseValue::Bool(a), LicenseValue::Bool(b)) => !a || b,
        _ => true,
    }
}

/// A name that must be a non-abstract tier; reports and returns false otherwise.
pub(super) fn concrete_tier(
    decls: &Declarations<'_>,
    name: &ast::Ident,
    diags: &mut Diagnostics,
) -> bool {
    match decls.tier(&name.name) {
        Some(t) if t.is_abstract => {
            diags.push(
                Diagnostic::error(
                    "charter::abstract_tier",
                    format!("tier `{}` is abstract", name.name),
                )
                .with_label(name.span, "a deployable tier is needed here")
                .with_label(t.name.span, "declared abstract here")
                .with_help(
                    "an abstract tier is only a parent; name one of the tiers that extend it",
                ),
            );
            false
        }
        Some(_) => true,
        None => {
            let mut d = Diagnostic::error(
                "charter::unknown_tier",
                format!("unknown tier `{}`", name.name),
            )
            .with_label(name.span, "no tier has this name")
            .with_suggestion(&name.name, decls.tier_names());
            if decls.is_addon(&name.name) {
                d = d.with_help(format!("`{}` is an add-on, not a tier", name.name));
            }
            diags.push(d);
            false
        }
    }
}

/// Type-checks every `assert for` and verifies it against each tier in its scope.
pub(super) fn asserts(
    decls: &Declarations<'_>,
    resolved: &Resolved,
    diags: &mut Diagnostics,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for assert in &decls.asserts {
        let scope: Option<Vec<String>> = match &assert.scope {
            Scope::All(_) => None,
            Scope::Tiers(names) => {
                let mut ok = true;
                for n in names {
                    ok &= concrete_tier(decls, n, diags);
                }
                if !ok {
                    continue;
                }
                Some(names.iter().map(|n| n.name.clone()).collect())
            }
        };
        let resolver = TierResolver { decls };
        let mut local = Diagnostics::default();
        let ty = expr::type_of(&assert.expr, &resolver, &mut local);
        let typed_ok = !local.has_errors();
        diags.extend(local);
        match ty {
            Some(Type::Bool) => {}
            Some(other) if typed_ok => {
                diags.push(
                    Diagnostic::error(
                        "charter::type_mismatch",
                        "a rule must be a true-or-false expression",
                    )
                    .with_label(assert.expr.span, format!("this is {}", other.noun())),
                );
                continue;
            }
            _ => continue,
        }
        if !typed_ok {
            continue;
        }
        let tiers: Vec<&str> = match &scope {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => resolved
                .tiers
                .iter()
                .filter(|t| !t.is_abstract)
                .map(|t| t.name.as_str())
                .collect(),
        };
        for tier in tiers {
            let Some(t) = resolved.sound(tier) else {
                continue;
            };
            let env = TierEnv {
                license: &t.license,
                resolved,
            };
            let mut seen = Vec::new();
            match expr::eval(&assert.expr, &env, &mut seen) {
                Ok(Val::Bool(true)) | Err(EvalError::Unavailable(_)) => {}
                Ok(_) => diags.push(failed(assert, tier, &seen)),
                Err(EvalError::DivisionByZero(span)) => diags.push(
                    Diagnostic::error(
                        "charter::division_by_zero",
                        format!("division by zero in a rule for tier `{tier}`"),
                    )
                    .with_label(span, seen_values(&seen)),
                ),
                Err(EvalError::Overflow(span)) => diags.push(
                    Diagnostic::error(
                        "charter::overflow",
                        format!("a rule for tier `{tier}` overflows"),
                    )
                    .with_label(span, seen_values(&seen)),
                ),
            }
        }
        rules.push(Rule {
            scope,
            expr: assert.expr.clone(),
            message: assert.message.as_ref().map(|m| m.value.clone()),
            span: assert.span,
        });
    }
    rules
}

fn seen_values(seen: &[Seen]) -> String {
    seen.iter()
        .map(|s| format!("{} = {}", s.name, s.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn failed(assert: &ast::Assert, tier: &str, seen: &[Seen]) -> Diagnostic {
    let message = match &assert.message {
        Some(m) => format!("rule failed for tier `{tier}`: {}", m.value),
        None => format!("rule failed for tier `{tier}`"),
    };
    let label = if seen.is_empty() {
        "false".to_string()
    } else {
        seen_values(seen)
    };
    Diagnostic::error("charter::assertion_failed", message)
        .with_label(assert.expr.span, label)
        .with_help(format!("the rule is `{}`", assert.expr))
}

/// Names in a tier rule: the tier's parameters, `tier.parameter`, and enum words.
pub(super) struct TierResolver<'a, 'b> {
    pub(super) decls: &'a Declarations<'b>,
}

impl Resolver for TierResolver<'_, '_> {
    fn resolve(
        &self,
        qualifier: Option<&ast::Ident>,
        name: &ast::Ident,
    ) -> Result<Type, Diagnostic> {
        if let Some(q) = qualifier
            && self.decls.tier(&q.name).is_none()
        {
            let mut d = Diagnostic::error(
                "charter::unknown_tier",
                format!("unknown tier `{}`", q.name),
            )
            .with_label(q.span, "no tier has this name")
            .with_suggestion(&q.name, self.decls.tier_names());
            if self.decls.is_addon(&q.name) {
                d = d.with_help(format!("`{}` is an add-on; rules compare tiers", q.name));
            }
            return Err(d);
        }
        if let Some(p) = catalog::lookup(&name.name) {
            return Ok(parameter_type(p));
        }
        if qualifier.is_none() && enum_word(&name.name).is_some() {
            return Ok(Type::Enum);
        }
        Err(Diagnostic::error(
            "charter::unknown_parameter",
            format!("unknown license parameter `{}`", name.name),
        )
        .with_label(name.span, "not a license parameter")
        .with_suggestion(&name.name, catalog::names()))
    }
}

pub(crate) fn parameter_type(p: &Parameter) -> Type {
    match p.kind {
        Kind::Integer | Kind::Fixed(FixedValue::Integer(_)) => Type::Int,
        Kind::Size => Type::Size,
        Kind::Duration => Type::Duration,
        Kind::Boolean => Type::Bool,
        Kind::Enum(_) => Type::Enum,
        Kind::Fixed(FixedValue::Text(_)) => Type::Text,
    }
}

/// The canonical word of an enum value written as `word` (aliases map to their word).
pub(crate) fn enum_word(word: &str) -> Option<&'static str> {
    CATALOG.iter().find_map(|p| match p.kind {
        Kind::Enum(variants) => variants
            .iter()
            .find(|v| v.word == word || v.aliases.contains(&word))
            .map(|v| v.word),
        _ => None,
    })
}

/// A parameter's value as an expression value (sizes in bytes, durations in seconds).
pub(crate) fn parameter_value(p: &Parameter, value: LicenseValue) -> Val {
    match (p.kind, value) {
        (Kind::Size, LicenseValue::Int(n)) => Val::Size(n.into()),
        (Kind::Duration, LicenseValue::Int(n)) => {
            Val::Duration(i128::from(n) * i128::from(p.unit.seconds().unwrap_or(1)))
        }
        (_, LicenseValue::Int(n)) => Val::Int(n.into()),
        (_, LicenseValue::Bool(b)) => Val::Bool(b),
        (_, LicenseValue::Enum(v)) => Val::Enum(v.word),
        (_, LicenseValue::Fixed(FixedValue::Integer(n))) => Val::Int(n.into()),
        (_, LicenseValue::Fixed(FixedValue::Text(t))) => Val::Text(t.to_string()),
    }
}

struct TierEnv<'a> {
    license: &'a License,
    resolved: &'a Resolved,
}

impl expr::Env for TierEnv<'_> {
    fn value(&self, qualifier: Option<&str>, name: &str) -> Option<Val> {
        let license = match qualifier {
            Some(tier) => &self.resolved.get(tier)?.license,
            None => self.license,
        };
        match catalog::index_of(name) {
            Some(i) => {
                let p = CATALOG.get(i)?;
                Some(parameter_value(p, license.value(i)?))
            }
            None if qualifier.is_none() => enum_word(name).map(Val::Enum),
            None => None,
        }
    }
}
