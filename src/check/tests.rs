//! `test` blocks: their subjects resolved and their expressions type-checked. Running them is
//! `compile::tests`.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::Declarations;
use super::customers::LeftOut;
use super::expr::{self, Resolver, Type};
use super::rules::{TierResolver, concrete_tier, enum_word, parameter_type};
use super::tiers::Resolved;
use crate::ast;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::catalog;
use crate::model::customer::{Customer, Expect, Lifecycle, Subject, Test};
use crate::source::Span;

/// What `test` blocks are checked against.
pub(super) struct Context<'a> {
    pub(super) decls: &'a Declarations<'a>,
    pub(super) resolved: &'a Resolved,
    pub(super) customers: &'a [Customer],
    /// Declared customers that are not sound, and why.
    pub(super) left_out: &'a BTreeMap<String, LeftOut>,
    pub(super) lifecycle: &'a Lifecycle,
    pub(super) attributes: &'a BTreeMap<String, Type>,
}

pub(super) fn tests(cx: &Context<'_>, diags: &mut Diagnostics) -> Vec<Test> {
    let Context {
        decls,
        resolved,
        customers,
        left_out,
        lifecycle,
        attributes,
    } = *cx;
    let mut out = Vec::new();
    let mut names: FxHashMap<&str, Span> = FxHashMap::default();
    let customer_keys: Vec<&str> = customers.iter().map(|c| c.key.as_str()).collect();
    let mut said_left_out: FxHashSet<&str> = FxHashSet::default();
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
                    if let Some(reason) = left_out.get(&key.name) {
                        ok = false;
                        // Said once per customer: every other test of it follows from the
                        // same errors.
                        if said_left_out.insert(key.name.as_str()) {
                            diags.push(left_out_customer(&key.name, key.span, reason));
                        }
                        continue;
                    }
                    if !customer_keys.contains(&key.name.as_str()) {
                        ok = false;
                        diags.push(
                            Diagnostic::error(
                                "charter::unknown_customer",
                                format!("unknown customer `{}`", key.name),
                            )
                            .with_label(key.span, "no customer has this key")
                            .with_suggestion(&key.name, customer_keys.iter().copied()),
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

/// A test that names a customer left out for errors: it follows from them, and says so.
fn left_out_customer(key: &str, span: Span, reason: &LeftOut) -> Diagnostic {
    const CODE: &str = "charter::customer_has_errors";
    match reason {
        LeftOut::OwnErrors => Diagnostic::error(
            CODE,
            format!("customer `{key}` has errors and cannot be tested"),
        )
        .with_label(span, "tested here")
        .with_help("fix the errors reported at the customer and the test runs"),
        LeftOut::TierHasErrors {
            tier,
            span: tier_span,
        } => Diagnostic::error(
            CODE,
            format!("customer `{key}` cannot be tested: its tier `{tier}` has errors"),
        )
        .with_label(span, "tested here")
        .with_label(*tier_span, "the customer's tier")
        .with_help(format!(
            "fix the errors reported for tier `{tier}` (or a tier it extends) and the tests of \
             `{key}` run"
        )),
    }
}
