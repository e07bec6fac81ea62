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
            .iter()
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
