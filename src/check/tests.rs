//! `test` blocks: their subjects resolved and their expressions type-checked. Running them is
//! `compile::tests`.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::Declarations;
use super::expr::{self, Resolver, Type};
use super::rules::{TierResolver, concrete_tier, enum_word, parameter_type};
use super::tiers::Resolved;
use crate::ast;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::catalog;
use crate::model::customer::{Customer, Expect, Lifecycle, Subject, Test};
use crate::source::Span;

pub(super) fn tests(
    decls: &Declarations<'_>,
    resolved: &Resolved,
    customers: &[Customer],
    lifecycle: &Lifecycle,
    attributes: &BTreeMap<String, Type>,
    diags: &mut Diagnostics,
) -> Vec<Test> {
    let mut out = Vec::new();
    let mut names: FxHashMap<&str, Span> = FxHashMap::default();
    let customer_keys: Vec<&str> = customers.iter().map(|c| c.key.as_str()).collect();
    for test in &decls.tests {
        if let Some(first) = names.get(test.name.value.as_str()) {
            diags.push(
                Diagnostic::error(
                    "charter::duplicate_test",
                    format!("test `{}` is declared twice", test.name.value),
                )
                .with_label(test.name.span, "declared again here")
                .with_label(*first, "first declared here"),
            );
            continue;
        }
        names.insert(&test.name.value, test.name.span);
        let at = match &test.at {
            None => None,
            Some(value) => match &value.kind {
                ast::ValueKind::Date(d) => Some(d.unix_seconds),
                _ => {
                    diags.push(
                        Diagnostic::error("charter::wrong_kind", "`at` takes a date")
                            .with_label(value.span, "expected a date such as `2027-02-08`"),
                    );
                    continue;
                }
            },
        };
        let mut expects = Vec::new();
        let mut ok = true;
        for expect in &test.expects {
            let subject = match &expect.subject {
                ast::Subject::Tier(name) => {
                    if !concrete_tier(decls, name, diags) {
                        ok = false;
                        continue;
                    }
                    if resolved.sound(&name.name).is_none() {
                        ok = false;
                        continue;
                    }
                    Subject::Tier(name.name.clone())
                }
                ast::Subject::Customer(key) => {
                    if !customer_keys.contains(&key.name.as_str()) {
                        ok = false;
                        diags.push(
                            Diagnostic::error(
                                "charter::unknown_customer",
                                format!("unknown customer `{}`", key.name),
                            )
                            .with_label(key.span, "no sound customer has this key")
                            .with_suggestion(&key.name, customer_keys.iter().copied())
                            .with_help("a customer with errors of its own cannot be tested until they are fixed"),
                        );
                        continue;
                    }
                    Subject::Customer(key.name.clone())
                }
            };
            let mut local = Diagnostics::default();
            let ty = match &subject {
                Subject::Tier(_) => {
                    expr::type_of(&expect.expr, &TierResolver { decls }, &mut local)
                }
                Subject::Customer(_) => expr::type_of(
                    &expect.expr,
                    &CustomerResolver {
                        decls,
                        lifecycle,
                        attributes,
                    },
                    &mut local,
                ),
            };
            let typed = !local.has_errors();
            diags.extend(local);
            match ty {
                Some(Type::Bool) if typed => expects.push(Expect {
                    subject,
                    expr: expect.expr.clone(),
                    span: expect.span,
                }),
                Some(other) if typed => {
                    ok = false;
                    diags.push(
                        Diagnostic::error(
                            "charter::type_mismatch",
                            "an expectation must be a true-or-false expression",
                        )
                        .with_label(expect.expr.span, format!("this is {}", other.noun())),
                    );
                }
                _ => ok = false,
            }
        }
        if ok {
            out.push(Test {
                name: test.name.value.clone(),
                at,
                expects,
                span: test.name.span,
            });
        }
    }
    out
}

/// The fields of a customer an expectation may read, besides its license parameters and
/// attributes.
pub(crate) const CUSTOMER_FIELDS: &[(&str, Type)] = &[
    ("state", Type::Name),
    ("tier", Type::Name),
    ("owner", Type::Text),
    ("name", Type::Text),
    ("since", Type::Date),
];

/// Names in `expect customer …`: license parameters, the customer's fields and attributes,
/// state and tier names, enum words.
struct CustomerResolver<'a, 'b> {
    decls: &'a Declarations<'b>,
    lifecycle: &'a Lifecycle,
    attributes: &'a BTreeMap<String, Type>,
}

impl Resolver for CustomerResolver<'_, '_> {
    fn resolve(
        &self,
        qualifier: Option<&ast::Ident>,
        name: &ast::Ident,
    ) -> Result<Type, Diagnostic> {
        if let Some(q) = qualifier {
            return TierResolver { decls: self.decls }.resolve(Some(q), name);
        }
        let n = name.name.as_str();
        if let Some(p) = catalog::lookup(n) {
            return Ok(parameter_type(p));
        }
        if let Some((_, t)) = CUSTOMER_FIELDS.iter().find(|(f, _)| *f == n) {
            return Ok(*t);
        }
        if let Some(t) = self.attributes.get(n) {
            return Ok(*t);
        }
        if self.lifecycle.state(n).is_some() || self.decls.tier(n).is_some() {
            return Ok(Type::Name);
        }
        if enum_word(n).is_some() {
            return Ok(Type::Enum);
        }
        let mut candidates: Vec<&str> = catalog::names().collect();
        candidates.extend(CUSTOMER_FIELDS.iter().map(|(f, _)| *f));
        candidates.extend(self.attributes.keys().map(String::as_str));
        candidates.extend(self.lifecycle.states.iter().map(|s| s.name.as_str()));
        Err(
            Diagnostic::error("charter::unknown_name", format!("unknown name `{n}`"))
                .with_label(name.span, "not a parameter, field, attribute or state")
                .with_suggestion(n, candidates),
        )
    }
}
