//! The lifecycle block: states, their overlays and role changes, transitions and triggers, and
//! the graph checks (one initial state, every state reachable, a way back).

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};

use super::expr::{self, Resolver, Type, Val};
use super::values;
use crate::ast::{self, LifecycleItem, StateStatement, ValueKind};
use crate::compile::customer::AttributeEnv;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::catalog::{self, CATALOG, Kind};
use crate::model::customer::{Customer, Lifecycle, OrgRole, Party, State, Transition, Trigger};
use crate::model::license::{LicenseValue, in_range};
use crate::model::program::InstanceSettings;

/// Checks the lifecycle block (at most one); the default lifecycle when there is none.
pub(super) fn lifecycle(
    blocks: &[&ast::Lifecycle],
    instance: &InstanceSettings,
    groups: &BTreeMap<String, Vec<usize>>,
    attributes: &BTreeMap<String, Type>,
    customers: &[Customer],
    diags: &mut Diagnostics,
) -> Lifecycle {
    let Some((first, rest)) = blocks.split_first() else {
        return Lifecycle::default();
    };
    for extra in rest {
        diags.push(
            Diagnostic::error(
                "charter::duplicate_definition",
                "more than one `lifecycle` block",
            )
            .with_label(extra.keyword, "second `lifecycle` block")
            .with_label(first.keyword, "first `lifecycle` block")
            .with_help("a policy set has one lifecycle; merge them"),
        );
    }
    let block = first;

    let mut initial: Option<(&ast::Ident, crate::source::Span)> = None;
    let mut states: Vec<State> = Vec::new();
    let mut state_spans: FxHashMap<String, crate::source::Span> = FxHashMap::default();
    for item in &block.items {
        match item {
            LifecycleItem::Initial { state, span } => match initial {
                Some((_, first)) => diags.push(
                    Diagnostic::error(
                        "charter::duplicate_initial",
                        "the lifecycle has two `initial` states",
                    )
                    .with_label(*span, "second `initial`")
                    .with_label(first, "first `initial`"),
                ),
                None => initial = Some((state, *span)),
            },
            LifecycleItem::State(decl) => {
                if let Some(first) = state_spans.get(&decl.name.name) {
                    diags.push(
                        Diagnostic::error(
                            "charter::duplicate_definition",
                            format!("state `{}` is declared twice", decl.name.name),
                        )
                        .with_label(decl.name.span, "declared again here")
                        .with_label(*first, "first declared here"),
                    );
                    continue;
                }
                state_spans.insert(decl.name.name.clone(), decl.name.span);
                states.push(state(decl, instance, groups, diags));
            }
            LifecycleItem::Transition(_) => {}
        }
    }
    let state_names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
    let known = |name: &ast::Ident, diags: &mut Diagnostics| -> bool {
        if state_names.contains(&name.name.as_str()) {
            return true;
        }
        diags.push(
            Diagnostic::error(
                "charter::unknown_state",
                format!("unknown state `{}`", name.name),
            )
            .with_label(name.span, "no state has this name")
            .with_suggestion(&name.name, state_names.iter().copied()),
        );
        false
    };

    let initial_name = match initial {
        Some((name, _)) if known(name, diags) => Some(name.name.clone()),
        Some(_) => None,
        None => {
            diags.push(
                Diagnostic::error(
                    "charter::no_initial",
                    "the lifecycle has no `initial` state",
                )
                .with_label(block.keyword, "needs `initial STATE`")
                .with_help("name the state every new customer starts in, e.g. `initial active`"),
            );
            None
        }
    };

    let resolver = AttributeResolver { attributes };
    let mut transitions: Vec<Transition> = Vec::new();
    let mut all_sound = true;
    let mut names: FxHashMap<&str, crate::source::Span> = FxHashMap::default();
    for item in &block.items {
        let LifecycleItem::Transition(t) = item else {
            continue;
        };
        if let Some(first) = names.get(t.name.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    "charter::duplicate_transition",
                    format!("transition `{}` is declared twice", t.name.name),
                )
                .with_label(t.name.span, "declared again here")
                .with_label(*first, "first declared here")
                .with_help("transitions are requested and journaled by name, so names are unique"),
            );
            continue;
        }
        names.insert(&t.name.name, t.name.span);
        let mut ok = true;
        for from in &t.from {
            ok &= known(from, diags);
        }
        ok &= known(&t.to, diags);
        let trigger = match &t.trigger {
            ast::Trigger::Manual(_) => Some(Trigger::Manual),
            ast::Trigger::After(value) => after(value, diags).map(Trigger::After),
            ast::Trigger::When(e) => {
                let mut local = Diagnostics::default();
                let ty = expr::type_of(e, &resolver, &mut local);
                let typed = !local.has_errors();
                diags.extend(local);
                match ty {
                    Some(Type::Date) => Some(Trigger::When(e.clone())),
                    Some(other) if typed => {
                        diags.push(
                            Diagnostic::error(
                                "charter::when_not_a_date",
                                format!("`when` needs a date, not {}", other.noun()),
                            )
                            .with_label(e.span, format!("this is {}", other.noun()))
                            .with_help("use a date attribute such as `contract_end`, optionally `± duration`"),
                        );
                        None
                    }
                    _ => None,
                }
            }
        };
        let guard = match &t.guard {
            None => Some(None),
            Some(g) => {
                let mut local = Diagnostics::default();
                let ty = expr::type_of(g, &resolver, &mut local);
                let typed = !local.has_errors();
                diags.extend(local);
                match ty {
                    Some(Type::Bool) => Some(Some(g.clone())),
                    Some(other) if typed => {
                        diags.push(
                            Diagnostic::error(
                                "charter::type_mismatch",
                                "a guard must be a true-or-false expression",
                            )
                            .with_label(g.span, format!("this is {}", other.noun())),
                        );
                        None
                    }
                    _ => None,
                }
            }
        };
        if !(ok && trigger.is_some() && guard.is_some()) {
            all_sound = false;
        }
        if let (true, Some(trigger), Some(guard)) = (ok, trigger, guard) {
            transitions.push(Transition {
                name: t.name.name.clone(),
                from: t.from.iter().map(|f| f.name.clone()).collect(),
                to: t.to.name.clone(),
                trigger,
                guard,
                span: t.name.span,
            });
        }
    }

    // With a transition left out for its own error, the graph would be judged wrongly.
    if let (Some(initial), true) = (&initial_name, all_sound) {
        graph_checks(initial, &states, &transitions, &state_spans, diags);
    }
    overlaps(&transitions, customers, diags);

    Lifecycle {
        initial: initial_name.unwrap_or_else(|| "active".to_string()),
        states,
        transitions,
    }
}

fn state(
    decl: &ast::StateDecl,
    instance: &InstanceSettings,
    groups: &BTreeMap<String, Vec<usize>>,
    diags: &mut Diagnostics,
) -> State {
    let mut state = State {
        name: decl.name.name.clone(),
        overlays: Vec::new(),
        owner_to_dummy: false,
        demotions: Vec::new(),
        span: Some(decl.name.span),
    };
    let mut demoted_owner = None;
    let mut names_owner = false;
    for statement in &decl.body {
        match statement {
            StateStatement::License {
                source, overlays, ..
            } => {
                if source.name != "tier" {
                    diags.push(
                        Diagnostic::error(
                            "charter::unknown_license_source",
                            format!("`license = {}` is not supported", source.name),
                        )
                        .with_label(source.span, "expected `tier`")
                        .with_help(
                            "a state's license is the customer's own: `license = tier [with …]`",
                        ),
                    );
                    continue;
                }
                for overlay in overlays {
                    overlay_values(overlay, groups, &mut state, diags);
                }
            }
            StateStatement::Owner { value, span } => {
                names_owner = true;
                if value.name != "dummy_owner" {
                    diags.push(
                        Diagnostic::error(
                            "charter::unknown_owner",
                            format!("`owner = {}` is not supported", value.name),
                        )
                        .with_label(value.span, "expected `dummy_owner`"),
                    );
                } else if instance.dummy_owner.is_none() {
                    diags.push(
                        Diagnostic::error(
                            "charter::no_dummy_owner",
                            "`owner = dummy_owner` needs a dummy owner",
                        )
                        .with_label(*span, "no `dummy_owner` is set")
                        .with_help("set `dummy_owner = \"…\"` in the `instance` block"),
                    );
                } else {
                    state.owner_to_dummy = true;
                }
            }
            StateStatement::Demote {
                parties,
                role,
                span,
            } => {
                let role_value = match role.name.as_str() {
                    "member" => Some(OrgRole::Member),
                    "admin" => Some(OrgRole::Admin),
                    other => {
                        diags.push(
                            Diagnostic::error(
                                "charter::unknown_role",
                                format!("unknown role `{other}`"),
                            )
                            .with_label(role.span, "expected `member` or `admin`")
                            .with_suggestion(other, ["member", "admin"]),
                        );
                        None
                    }
                };
                for party in parties {
                    let p = match party.name.as_str() {
                        "owner" => Party::Owner,
                        "admins" => Party::Admins,
                        "members" => Party::Members,
                        other => {
                            diags.push(
                                Diagnostic::error(
                                    "charter::unknown_party",
                                    format!("`{other}` is not a party"),
                                )
                                .with_label(party.span, "expected `owner`, `admins` or `members`")
                                .with_suggestion(other, ["owner", "admins", "members"]),
                            );
                            continue;
                        }
                    };
                    if p == Party::Owner {
                        demoted_owner = Some(*span);
                    }
                    if let Some(r) = role_value {
                        state.demotions.push((p, r));
                    }
                }
            }
        }
    }
    if let Some(span) = demoted_owner
        && !names_owner
    {
        diags.push(
            Diagnostic::error(
                "charter::demoted_owner",
                format!(
                    "state `{}` demotes the owner but keeps no other owner",
                    state.name
                ),
            )
            .with_label(span, "the owner is demoted here")
            .with_help("every organization has exactly one owner; add `owner = dummy_owner`"),
        );
    }
    state
}

fn overlay_values(
    overlay: &ast::Overlay,
    groups: &BTreeMap<String, Vec<usize>>,
    state: &mut State,
    diags: &mut Diagnostics,
) {
    let params: Vec<usize> = match catalog::index_of(&overlay.target.name) {
        Some(i) => vec![i],
        None => match groups.get(&overlay.target.name) {
            Some(members) => members.clone(),
            None => {
                diags.push(
                    Diagnostic::error(
                        "charter::unknown_parameter",
                        format!("unknown parameter or group `{}`", overlay.target.name),
                    )
                    .with_label(overlay.target.span, "not a license parameter or group")
                    .with_suggestion(&overlay.target.name, {
                        let mut names: Vec<&str> = catalog::names().collect();
                        names.extend(groups.keys().map(String::as_str));
                        names
                    }),
                );
                return;
            }
        },
    };
    for i in params {
        let Some(param) = CATALOG.get(i) else {
            continue;
        };
        // A plain `0` fits every number, size and duration; it needs no unit.
        let zero = matches!(&overlay.value.kind, ValueKind::Number(n) if n.digits == 0);
        let numeric = matches!(param.kind, Kind::Integer | Kind::Size | Kind::Duration);
        let value = if zero && numeric {
            Some(LicenseValue::Int(0))
        } else {
            values::operand(param, ast::AssignOp::Set, &overlay.value, diags)
        };
        let Some(value) = value else { continue };
        if let LicenseValue::Int(n) = value
            && !in_range(param, n)
        {
            diags.push(
                Diagnostic::error(
                    "charter::out_of_range",
                    format!(
                        "`{}` in state `{}` would be {}, outside its range",
                        param.name,
                        state.name,
                        value.human(param)
                    ),
                )
                .with_label(overlay.span, "out of range")
                .with_help(format!(
                    "`{}` must be at least {}",
                    param.name,
                    LicenseValue::Int(param.min).human(param)
                )),
            );
            continue;
        }
        state.overlays.retain(|(p, _, _)| *p != i);
        state.overlays.push((i, value, overlay.span));
    }
}

fn after(value: &ast::Value, diags: &mut Diagnostics) -> Option<i64> {
    match values::quantity(value, diags) {
        Some(values::Quantity::Measure(values::Dimension::Duration, seconds)) if seconds > 0 => {
            Some(seconds)
        }
        Some(_) => {
            diags.push(
                Diagnostic::error("charter::wrong_kind", "`after` takes a positive duration")
                    .with_label(value.span, "expected a duration such as `90 days`"),
            );
            None
        }
        None => None,
    }
}

/// Every state reachable from `initial` (an error otherwise), and a way back to `initial`
/// from each (a warning otherwise: that state's data could never be given back).
fn graph_checks(
    initial: &str,
    states: &[State],
    transitions: &[Transition],
    spans: &FxHashMap<String, crate::source::Span>,
    diags: &mut Diagnostics,
) {
    let forward = reach(initial, transitions, false);
    let backward = reach(initial, transitions, true);
    for s in states {
        let Some(span) = spans.get(&s.name) else {
            continue;
        };
        if !forward.contains(s.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    "charter::unreachable_state",
                    format!("state `{}` can never be reached", s.name),
                )
                .with_label(*span, format!("no transition leads here from `{initial}`"))
                .with_help("add a transition into it, or remove the state"),
            );
        } else if !backward.contains(s.name.as_str()) {
            diags.push(
                Diagnostic::warning(
                    "charter::no_way_back",
                    format!("a customer in state `{}` can never return to `{initial}`", s.name),
                )
                .with_label(*span, "no transition leads back")
                .with_help(format!(
                    "add a `manual` transition to `{initial}` so the customer can be given back what this state takes"
                )),
            );
        }
    }
}

fn reach<'a>(start: &'a str, transitions: &'a [Transition], reverse: bool) -> FxHashSet<&'a str> {
    let mut seen: FxHashSet<&str> = FxHashSet::from_iter([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(state) = queue.pop_front() {
        for t in transitions {
            let next: Vec<&str> = if reverse {
                if t.to == state {
                    t.from.iter().map(String::as_str).collect()
                } else {
                    Vec::new()
                }
            } else if t.from.iter().any(|f| f == state) {
                vec![t.to.as_str()]
            } else {
                Vec::new()
            };
            for n in next {
                if seen.insert(n) {
                    queue.push_back(n);
                }
            }
        }
    }
    seen
}

/// Two automatic transitions out of one state with the same trigger are due at the same moment
/// for every customer: the first declared wins, which is worth a warning.
fn overlaps(transitions: &[Transition], customers: &[Customer], diags: &mut Diagnostics) {
    for (i, a) in transitions.iter().enumerate() {
        for b in transitions.iter().skip(i + 1) {
            let shared: Vec<&String> = a.from.iter().filter(|f| b.from.contains(f)).collect();
            if shared.is_empty() || !a.trigger.is_automatic() || !b.trigger.is_automatic() {
                continue;
            }
            // `Some(None)`: always together; `Some(Some(…))`: together for this customer.
            let together = match (&a.trigger, &b.trigger) {
                (Trigger::After(x), Trigger::After(y)) => (x == y).then_some(None),
                (Trigger::When(x), Trigger::When(y)) if x.to_string() == y.to_string() => {
                    Some(None)
                }
                (Trigger::When(x), Trigger::When(y)) => customers
                    .iter()
                    .find_map(|c| same_date(x, y, a, b, c).map(|d| Some((c.key.as_str(), d)))),
                _ => None,
            };
            if let Some(example) = together {
                let help = match example {
                    Some((key, date)) => format!(
                        "for customer `{key}` both are due at {}; give them guards that exclude each other",
                        crate::model::time::format_instant(date)
                    ),
                    None => "give them different triggers, or guards that exclude each other"
                        .to_string(),
                };
                diags.push(
                    Diagnostic::warning(
                        "charter::overlapping_transitions",
                        format!(
                            "transitions `{}` and `{}` are due at the same moment from `{}`",
                            a.name, b.name, shared[0]
                        ),
                    )
                    .with_label(b.span, "never fires unless its guard stops the first")
                    .with_label(a.span, "declared first, so it wins")
                    .with_help(help),
                );
            }
        }
    }
}

/// Names in `when` and guards: the customer's attributes.
struct AttributeResolver<'a> {
    attributes: &'a BTreeMap<String, Type>,
}

impl Resolver for AttributeResolver<'_> {
    fn resolve(
        &self,
        qualifier: Option<&ast::Ident>,
        name: &ast::Ident,
    ) -> Result<Type, Diagnostic> {
        if let Some(q) = qualifier {
            return Err(Diagnostic::error(
                "charter::unknown_attribute",
                format!("`{}.{}` is not an attribute", q.name, name.name),
            )
            .with_label(
                q.span.to(name.span),
                "triggers and guards read the customer's attributes",
            ));
        }
        match self.attributes.get(&name.name) {
            Some(t) => Ok(*t),
            None => Err(Diagnostic::error(
                "charter::unknown_attribute",
                format!("unknown attribute `{}`", name.name),
            )
            .with_label(name.span, "no customer has this attribute")
            .with_suggestion(&name.name, self.attributes.keys().map(String::as_str))
            .with_help("attributes are `contract_end`, the `attributes { … }` of customers and extra roster columns")),
        }
    }
}

/// The instant two `when` transitions (both allowed by their guards) share for a customer.
fn same_date(
    x: &ast::Expr,
    y: &ast::Expr,
    a: &Transition,
    b: &Transition,
    customer: &Customer,
) -> Option<i64> {
    let env = AttributeEnv { customer };
    let allowed = |t: &Transition| {
        t.guard
            .as_ref()
            .is_none_or(|g| expr::eval(g, &env, &mut Vec::new()) == Ok(Val::Bool(true)))
    };
    let date = |e: &ast::Expr| match expr::eval(e, &env, &mut Vec::new()) {
        Ok(Val::Date(d)) => Some(d),
        _ => None,
    };
    let day = date(x)?;
    (allowed(a) && allowed(b) && date(y) == Some(day)).then_some(day)
}
