//! `explain`: every value with the chain of assignments that produced it.

use crate::model::catalog::CATALOG;
use crate::model::license::License;
use crate::model::program::{Program, Tier};
use crate::source::Sources;

/// Renders the provenance of one parameter (or all) of a tier's license.
pub fn tier(sources: &Sources, program: &Program, tier: &Tier, param: Option<usize>) -> String {
    let mut out = String::new();
    let lineage = lineage(program, tier);
    out.push_str(&format!("tier `{}`", tier.name));
    if lineage.len() > 1 {
        let parents: Vec<String> = lineage.iter().skip(1).map(|t| format!("`{t}`")).collect();
        out.push_str(&format!(", extends {}", parents.join(" → ")));
    }
    out.push('\n');
    out.push_str(&license(sources, &tier.license, param));
    out
}

/// The tier and its ancestors, nearest first.
fn lineage<'a>(program: &'a Program, tier: &'a Tier) -> Vec<&'a str> {
    let mut out = vec![tier.name.as_str()];
    let mut current = tier.parent.as_deref();
    while let Some(name) = current {
        if out.contains(&name) {
            break;
        }
        out.push(name);
        current = program.tier(name).and_then(|t| t.parent.as_deref());
    }
    out
}

/// One block per parameter: `name = value`, then each step with where it was written.
pub fn license(sources: &Sources, license: &License, param: Option<usize>) -> String {
    let mut out = String::new();
    for (i, p) in CATALOG.iter().enumerate() {
        if param.is_some_and(|only| only != i) {
            continue;
        }
        let Some(setting) = license.get(i) else {
            out.push_str(&format!("\n{} is not set\n", p.name));
            continue;
        };
        out.push_str(&format!("\n{} = {}\n", p.name, setting.value.human(p)));
        let steps: Vec<(String, String)> = setting
            .chain
            .steps()
            .into_iter()
            .map(|step| {
                let location = step
                    .span
                    .map(|s| sources.location(s).to_string())
                    .unwrap_or_else(|| "the catalog".to_string());
                (step.describe(p), location)
            })
            .collect();
        let width = steps
            .iter()
            .map(|(d, _)| d.chars().count())
            .max()
            .unwrap_or(0);
        for (description, location) in steps {
            let pad = width - description.chars().count();
            out.push_str(&format!("  {description}{}  {location}\n", " ".repeat(pad)));
        }
    }
    out
}

/// Why a customer is in its state, and the provenance of its license values and roles.
pub fn customer(
    sources: &Sources,
    program: &Program,
    desired: &crate::compile::customer::Desired,
    param: Option<usize>,
) -> String {
    use crate::model::time::format_instant;
    let mut out = String::new();
    let Some(c) = program.customer(&desired.customer) else {
        return out;
    };
    out.push_str(&format!(
        "customer `{}` ({}), tier `{}`{}\n",
        c.key,
        c.name,
        c.tier,
        if c.addons.is_empty() {
            String::new()
        } else {
            format!(
                ", add-ons {}",
                c.addons
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    match desired.walk.since {
        Some(since) => out.push_str(&format!(
            "state `{}` since {}\n",
            desired.walk.state,
            format_instant(since)
        )),
        None => out.push_str(&format!(
            "state `{}`, the initial state; no transition has been due\n",
            desired.walk.state
        )),
    }
    for f in &desired.walk.fired {
        out.push_str(&format!(
            "  {} `{}` {} → {}: {}\n",
            format_instant(f.at),
            f.transition,
            f.from,
            f.to,
            f.cause
        ));
    }
    if param.is_none() {
        out.push_str(&format!("\nowner = {}\n", desired.owner));
        for (email, role) in &desired.roles {
            out.push_str(&format!("  {email}: {}\n", role.as_str()));
        }
        for (team, people) in &desired.teams {
            out.push_str(&format!("team \"{team}\"\n"));
            for (email, role) in people {
                out.push_str(&format!("  {email}: {}\n", role.as_str()));
            }
        }
    }
    let provenance = crate::compile::customer::provenance(program, c, &desired.walk.state);
    out.push_str(&license(sources, &provenance, param));
    out
}

/// A staff member: instance role and app-developer options, and how each is carried out.
pub fn staff(staff: &crate::model::customer::Staff) -> String {
    let mut out = format!("staff `{}`", staff.email);
    if let Some(name) = &staff.name {
        out.push_str(&format!(" ({name})"));
    }
    out.push('\n');
    match &staff.role {
        Some(role) => out.push_str(&format!(
            "instance role `{role}`: set through the admin API, resolved by name on the instance\n"
        )),
        None => out.push_str("no instance role\n"),
    }
    if staff.options.is_empty() {
        out.push_str("no Apps and Features options\n");
    } else {
        out.push_str(
            "Apps and Features options (manual: Administration → Users → the user → Apps and Features):\n",
        );
        for option in &staff.options {
            out.push_str(&format!("  {}: {}\n", option.word(), option.label()));
        }
    }
    out
}
