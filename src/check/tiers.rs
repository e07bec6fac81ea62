//! Tier inheritance: parents, cycles, applying each chain, completeness, flags and the
//! dependencies between parameters.

use rustc_hash::{FxHashMap, FxHashSet};

use super::Declarations;
use crate::ast::AssignOp;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::catalog::{CATALOG, Parameter};
use crate::model::license::{ApplyError, Assignment, License, LicenseValue, Origin, Setting};
use crate::model::program::{InstanceSettings, Tier};
use crate::source::Span;

/// The tiers with their licenses resolved, and which of them could not be (their own or an
/// ancestor's errors), so later checks skip them instead of repeating those errors.
pub(crate) struct Resolved {
    pub(crate) tiers: Vec<Tier>,
    pub(crate) broken: FxHashSet<String>,
    index: FxHashMap<String, usize>,
}

impl Resolved {
    pub(crate) fn get(&self, name: &str) -> Option<&Tier> {
        self.index.get(name).and_then(|&i| self.tiers.get(i))
    }

    /// A tier whose license is complete and trustworthy.
    pub(crate) fn sound(&self, name: &str) -> Option<&Tier> {
        if self.broken.contains(name) {
            return None;
        }
        self.get(name)
    }
}

enum State {
    Pending,
    InProgress,
    Done(License),
    Broken,
}

pub(super) fn resolve(
    decls: &Declarations<'_>,
    blocks: Vec<Vec<Assignment>>,
    blocks_with_errors: &[bool],
    instance: &InstanceSettings,
    diags: &mut Diagnostics,
) -> Resolved {
    let index: FxHashMap<&str, usize> = decls
        .tiers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.name.as_str(), i))
        .collect();

    // Parents, with unknown names and add-ons reported once per tier.
    let mut parents: Vec<Option<usize>> = Vec::with_capacity(decls.tiers.len());
    // Tiers left out of resolution, with every tier that extends them: those whose parent is
    // unknown, and those whose own block has errors (their license would be a guess, and
    // every check of it a knock-on error).
    let mut broken_parent: Vec<bool> = (0..decls.tiers.len())
        .map(|i| blocks_with_errors.get(i).copied().unwrap_or(false))
        .collect();
    for (i, tier) in decls.tiers.iter().enumerate() {
        let Some(parent) = &tier.extends else {
            parents.push(None);
            continue;
        };
        match index.get(parent.name.as_str()) {
            Some(&p) => parents.push(Some(p)),
            None => {
                parents.push(None);
                if let Some(flag) = broken_parent.get_mut(i) {
                    *flag = true;
                }
                let diagnostic = if decls.is_addon(&parent.name) {
                    Diagnostic::error(
                        "charter::extends_addon",
                        format!("tier `{}` extends add-on `{}`", tier.name.name, parent.name),
                    )
                    .with_label(parent.span, "this is an add-on")
                    .with_help(
                        "a tier can only extend another tier; add-ons are chosen per customer",
                    )
                } else {
                    Diagnostic::error(
                        "charter::unknown_tier",
                        format!("unknown tier `{}`", parent.name),
                    )
                    .with_label(parent.span, "no tier has this name")
                    .with_suggestion(&parent.name, decls.tier_names())
                };
                diags.push(diagnostic);
            }
        }
    }

    report_cycles(decls, &parents, diags);

    let mut states: Vec<State> = decls.tiers.iter().map(|_| State::Pending).collect();
    let mut blocks: Vec<Option<Vec<Assignment>>> = blocks.into_iter().map(Some).collect();
    for i in 0..decls.tiers.len() {
        evaluate(
            i,
            decls,
            &parents,
            &broken_parent,
            &mut blocks,
            &mut states,
            diags,
        );
    }

    let mut tiers = Vec::new();
    let mut broken = FxHashSet::default();
    let mut reported_spans = FxHashSet::default();
    for (tier, state) in decls.tiers.iter().zip(states) {
        let name = tier.name.name.clone();
        let mut license = match state {
            State::Done(license) => license,
            _ => {
                broken.insert(name.clone());
                License::new()
            }
        };
        if !broken.contains(&name) {
            license.fill_defaults();
            let owner = || format!("tier `{name}`");
            check_flags(&owner, &license, instance, &mut reported_spans, diags);
            if !tier.is_abstract {
                let sound = check_complete(decls, &name, &license, tier.name.span, diags)
                    && check_dependencies(
                        &owner,
                        &license,
                        tier.name.span,
                        &mut reported_spans,
                        diags,
                    );
                if !sound {
                    broken.insert(name.clone());
                }
            }
        }
        tiers.push(Tier {
            name,
            is_abstract: tier.is_abstract,
            parent: tier.extends.as_ref().map(|p| p.name.clone()),
            license,
            span: tier.name.span,
        });
    }
    let index = tiers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    Resolved {
        tiers,
        broken,
        index,
    }
}

/// Reports each `extends` cycle once, at its first tier in declaration order.
fn report_cycles(decls: &Declarations<'_>, parents: &[Option<usize>], diags: &mut Diagnostics) {
    // Each tier is walked once: a walk stops at a tier an earlier walk finished, and finds a
    // cycle when it meets a tier of its own path (linear in the number of tiers, however long
    // the chains).
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut mark = vec![UNSEEN; parents.len()];
    for start in 0..parents.len() {
        let mut path = Vec::new();
        let mut current = Some(start);
        while let Some(tier) = current {
            match mark.get(tier).copied() {
                Some(UNSEEN) => {
                    if let Some(m) = mark.get_mut(tier) {
                        *m = ON_PATH;
                    }
                    path.push(tier);
                    current = parents.get(tier).copied().flatten();
                }
                Some(ON_PATH) => {
                    let pos = path.iter().position(|&p| p == tier).unwrap_or(0);
                    report_cycle(decls, path.get(pos..).unwrap_or(&[]), diags);
                    break;
                }
                _ => break,
            }
        }
        for tier in path {
            if let Some(m) = mark.get_mut(tier) {
                *m = DONE;
            }
        }
    }
}

/// Reports one cycle of `extends`, at its first tier in declaration order.
fn report_cycle(decls: &Declarations<'_>, cycle: &[usize], diags: &mut Diagnostics) {
    let Some(first) = cycle.iter().min().and_then(|&c| decls.tiers.get(c)) else {
        return;
    };
    let names: Vec<&str> = rotate_from_min(cycle)
        .iter()
        .filter_map(|&c| decls.tiers.get(c).map(|t| t.name.name.as_str()))
        .collect();
    let mut shown = names.join(" → ");
    if let Some(head) = names.first() {
        shown.push_str(&format!(" → {head}"));
    }
    let mut d = Diagnostic::error(
        "charter::extends_cycle",
        format!("tier `{}` extends itself through a cycle", first.name.name),
    )
    .with_label(
        first.extends.as_ref().map_or(first.name.span, |e| e.span),
        format!("the chain is {shown}"),
    )
    .with_help("every chain of `extends` must end at a tier without `extends`");
    for &c in rotate_from_min(cycle).iter().skip(1) {
        if let Some(t) = decls.tiers.get(c)
            && let Some(e) = &t.extends
        {
            d = d.with_label(e.span, "");
        }
    }
    diags.push(d);
}

fn rotate_from_min(cycle: &[usize]) -> Vec<usize> {
    let Some(pos) = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| **c)
        .map(|(i, _)| i)
    else {
        return Vec::new();
    };
    cycle[pos..].iter().chain(&cycle[..pos]).copied().collect()
}

/// Resolves one tier's license: its parent's, then its own block. Iterative over the chain so
/// that a long chain cannot overflow the stack.
fn evaluate(
    start: usize,
    decls: &Declarations<'_>,
    parents: &[Option<usize>],
    broken_parent: &[bool],
    blocks: &mut [Option<Vec<Assignment>>],
    states: &mut [State],
    diags: &mut Diagnostics,
) {
    // Walk up to the first resolved (or root) ancestor, then resolve downwards.
    let mut chain = vec![start];
    let mut current = start;
    loop {
        match states.get(current) {
            Some(State::Pending) => {}
            _ => {
                chain.pop();
                break;
            }
        }
        if let Some(s) = states.get_mut(current) {
            *s = State::InProgress;
        }
        match parents.get(current).copied().flatten() {
            Some(parent) => {
                chain.push(parent);
                current = parent;
            }
            None => break,
        }
    }
    // `chain` ends with the topmost tier still to resolve; its parent (if any) is settled.
    for &i in chain.iter().rev() {
        let inherited = match parents.get(i).copied().flatten() {
            _ if broken_parent.get(i).copied().unwrap_or(false) => None,
            None => Some(License::new()),
            Some(p) => match states.get(p) {
                Some(State::Done(l)) => Some(l.clone()),
                _ => None,
            },
        };
        let (Some(mut license), Some(tier)) = (inherited, decls.tiers.get(i)) else {
            if let Some(s) = states.get_mut(i) {
                *s = State::Broken;
            }
            continue;
        };
        let origin = Origin::Tier(tier.name.name.as_str().into());
        let block = blocks.get_mut(i).and_then(Option::take).unwrap_or_default();
        let mut ok = true;
        for assignment in &block {
            if let Err(error) = license.apply(&origin, assignment) {
                ok = false;
                diags.push(apply_error(
                    &format!("tier `{}`", tier.name.name),
                    &license,
                    assignment,
                    &error,
                ));
            }
        }
        if let Some(s) = states.get_mut(i) {
            *s = if ok {
                State::Done(license)
            } else {
                State::Broken
            };
        }
    }
}

/// The diagnostic for an assignment that could not be applied, naming the whole chain.
pub(crate) fn apply_error(
    owner: &str,
    license: &License,
    assignment: &Assignment,
    error: &ApplyError,
) -> Diagnostic {
    let Some(param) = CATALOG.get(assignment.param) else {
        return Diagnostic::error("charter::internal", "internal error: unknown parameter");
    };
    let existing = license.get(assignment.param);
    match error {
        ApplyError::Unset => {
            let mut d = Diagnostic::error(
                "charter::unset_parameter",
                format!(
                    "`{} {}` in {owner} adjusts a value that nothing before it sets",
                    param.name,
                    assignment.op.as_str()
                ),
            )
            .with_label(assignment.span, "no inherited value to adjust");
            d = match param.default {
                Some(_) => d.with_help(format!(
                    "`{}` only has a default, which applies after all tiers; set it with `=`",
                    param.name
                )),
                None => d.with_help("set it with `=` here or in a tier this one extends"),
            };
            d
        }
        ApplyError::Overflow => Diagnostic::error(
            "charter::overflow",
            format!("`{}` overflows in {owner}", param.name),
        )
        .with_label(assignment.span, "the result does not fit in 64 bits")
        .with_help(chain_help(param, existing, assignment, None)),
        ApplyError::OutOfRange { value } => {
            let shown = LicenseValue::Int(*value).human(param);
            let (message, bound) = if *value < param.min {
                (
                    format!(
                        "`{}` in {owner} is {shown}, below the minimum of {}",
                        param.name,
                        LicenseValue::Int(param.min).human(param)
                    ),
                    "too low",
                )
            } else {
                let max = param.max.unwrap_or(i64::MAX);
                (
                    format!(
                        "`{}` in {owner} is {shown}, above the maximum of {}",
                        param.name,
                        LicenseValue::Int(max).human(param)
                    ),
                    "too high",
                )
            };
            let mut d = Diagnostic::error("charter::out_of_range", message)
                .with_label(assignment.span, bound);
            if assignment.op != AssignOp::Set {
                d = d.with_help(chain_help(param, existing, assignment, Some(*value)));
            }
            d
        }
    }
}

/// `base sets 1,000; core adds 2,000 → 3,000; pro subtracts 5,000 → -2,000`.
fn chain_help(
    param: &Parameter,
    existing: Option<&Setting>,
    assignment: &Assignment,
    result: Option<i64>,
) -> String {
    let mut steps: Vec<String> = existing
        .map(|s| {
            s.chain
                .steps()
                .iter()
                .map(|step| step.describe(param))
                .collect()
        })
        .unwrap_or_default();
    let operand = match assignment.op {
        AssignOp::Mul => assignment.operand.as_int().unwrap_or(0).to_string(),
        _ => assignment.operand.human(param),
    };
    let verb = match assignment.op {
        AssignOp::Set => "sets",
        AssignOp::Add => "adds",
        AssignOp::Sub => "subtracts",
        AssignOp::Mul => "multiplies by",
    };
    let tail = match result {
        Some(v) => format!(" → {}", LicenseValue::Int(v).human(param)),
        None => " → overflow".to_string(),
    };
    steps.push(format!("then {verb} {operand}{tail}"));
    format!("the chain: {}", steps.join("; "))
}

/// Every parameter without a default must be set somewhere in a deployable tier's chain.
fn check_complete(
    decls: &Declarations<'_>,
    name: &str,
    license: &License,
    span: Span,
    diags: &mut Diagnostics,
) -> bool {
    let missing = license.missing();
    if missing.is_empty() {
        return true;
    }
    let list: Vec<String> = missing.iter().map(|p| format!("`{}`", p.name)).collect();
    let ancestors = ancestors(decls, name);
    let help = if ancestors.is_empty() {
        "a tier without `extends` must set every parameter that has no default".to_string()
    } else {
        format!(
            "set them in `{name}` or in a tier it extends ({})",
            ancestors
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let noun = if missing.len() == 1 {
        "parameter"
    } else {
        "parameters"
    };
    diags.push(
        Diagnostic::error(
            "charter::missing_parameter",
            format!("tier `{name}` does not set {} {noun}", missing.len()),
        )
        .with_label(span, format!("{} {noun} missing", missing.len()))
        .with_help(format!("missing: {}\n{help}", list.join(", "))),
    );
    false
}

fn ancestors<'a>(decls: &Declarations<'a>, name: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let mut current = decls.tier(name).and_then(|t| t.extends.as_ref());
    while let Some(parent) = current {
        if out.contains(&parent.name.as_str()) {
            break;
        }
        out.push(&parent.name);
        current = decls.tier(&parent.name).and_then(|t| t.extends.as_ref());
    }
    out
}

/// A feature turned on needs its instance flags; reported once at the assignment that turns
/// it on.
pub(crate) fn check_flags(
    owner: &dyn Fn() -> String,
    license: &License,
    instance: &InstanceSettings,
    reported: &mut FxHashSet<Span>,
    diags: &mut Diagnostics,
) {
    for (i, param) in CATALOG.iter().enumerate() {
        if param.needs_flags.is_empty() {
            continue;
        }
        let Some(setting) = license.get(i) else {
            continue;
        };
        if setting.value != LicenseValue::Bool(true) {
            continue;
        }
        let missing: Vec<&str> = param
            .needs_flags
            .iter()
            .copied()
            .filter(|f| !instance.flags.iter().any(|g| g == f))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let Some(span) = setting.chain.last().and_then(|s| s.span) else {
            continue;
        };
        if !reported.insert(span) {
            continue;
        }
        let list: Vec<String> = missing.iter().map(|f| format!("`{f}`")).collect();
        diags.push(
            Diagnostic::error(
                "charter::missing_flag",
                format!(
                    "`{}` in {} needs the instance flag {}",
                    param.name,
                    owner(),
                    list.join(" and ")
                ),
            )
            .with_label(span, "turned on here")
            .with_help(format!(
                "add {} to `flags` in the `instance` block if the instance has it enabled",
                list.join(" and ")
            )),
        );
    }
}

/// A boolean that needs another one (`dynamicConnections` needs `dynamicDependencies`).
pub(crate) fn check_dependencies(
    owner: &dyn Fn() -> String,
    license: &License,
    tier_span: Span,
    reported: &mut FxHashSet<Span>,
    diags: &mut Diagnostics,
) -> bool {
    let mut sound = true;
    for (i, param) in CATALOG.iter().enumerate() {
        let Some(needed) = param.needs_parameter else {
            continue;
        };
        let Some(setting) = license.get(i) else {
            continue;
        };
        if setting.value != LicenseValue::Bool(true)
            || license.value_of(needed) == Some(LicenseValue::Bool(true))
        {
            continue;
        }
        sound = false;
        let span = setting
            .chain
            .last()
            .and_then(|s| s.span)
            .unwrap_or(tier_span);
        if !reported.insert(span) {
            continue;
        }
        let owner = owner();
        diags.push(
            Diagnostic::error(
                "charter::needs_parameter",
                format!("`{}` needs `{needed} = true` in {owner}", param.name),
            )
            .with_label(span, "turned on here")
            .with_help(format!(
                "Make rejects `{}` without `{needed}`; set `{needed} = true` in {owner} or a tier it extends",
                param.name
            )),
        );
    }
    sound
}
