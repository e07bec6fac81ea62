//! Property tests of the language core. Each mirrors a fuzz target in `fuzz/` so that CI covers
//! the same invariants without long fuzzing runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use charter::check;
use charter::compile;
use charter::diagnostic::{RenderOptions, render_human};
use charter::source::Sources;
use charter::syntax;

const PRELUDE: &str = include_str!("check/prelude.charter");

/// Everything a run produces, rendered: the compiled JSON and every diagnostic.
fn compile_all(files: &[(String, String)]) -> String {
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add(name.clone(), text.clone());
    }
    let options = RenderOptions::default();
    let parsed = match syntax::parse_all(&sources) {
        Ok(parsed) => parsed,
        Err(errors) => {
            return errors
                .iter()
                .map(|d| render_human(&sources, d, options))
                .collect();
        }
    };
    let checked = check::check(&parsed);
    let mut out: String = checked
        .diagnostics
        .0
        .iter()
        .map(|d| render_human(&sources, d, options))
        .collect();
    if let Some(program) = &checked.program {
        out.push_str(&serde_json::to_string_pretty(&compile::all_tier_licenses(program)).unwrap());
    }
    out
}

/// Only the compiled license objects (diagnostics point at positions, which formatting moves).
fn compile_licenses(files: &[(String, String)]) -> Option<String> {
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add(name.clone(), text.clone());
    }
    let parsed = syntax::parse_all(&sources).ok()?;
    let program = check::check(&parsed).program?;
    Some(serde_json::to_string(&compile::all_tier_licenses(&program)).unwrap())
}

fn assignment() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1_000_000).prop_map(|n| format!("operations = {n}")),
        (1u64..50).prop_map(|n| format!("operations *= {n}")),
        (0u64..10_000).prop_map(|n| format!("operations += {n}")),
        (0u64..10_000).prop_map(|n| format!("operations -= {n}")),
        (
            0u64..5000,
            prop::sample::select(vec!["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"])
        )
            .prop_map(|(n, u)| format!("transfer = {n} {u}")),
        (0u64..100, prop::sample::select(vec!["MB", "GiB"]))
            .prop_map(|(n, u)| format!("transfer += {n}{u}")),
        (0u64..120, prop::sample::select(vec!["s", "min", "h"]))
            .prop_map(|(n, u)| format!("interval = {n} {u}")),
        (0u64..500).prop_map(|n| format!("auditLogsDays = {n} days")),
        (0u64..6).prop_map(|n| format!("premiumApps = {n}")),
        any::<bool>().prop_map(|b| format!("analyticsAccess = {b}")),
        any::<bool>().prop_map(|b| format!("customVariables = {b}")),
        any::<bool>().prop_map(|b| format!("dynamicConnections = {b}")),
        any::<bool>().prop_map(|b| format!("dynamicDependencies = {b}")),
        prop::sample::select(vec!["monthly", "yearly", "annual"])
            .prop_map(|w| format!("restartPeriod = {w}")),
        (0u64..100).prop_map(|n| format!("scenarios = {n}")),
        (0u64..100).prop_map(|n| format!("retention = {n} days")),
    ]
}

/// A policy set: the complete `base`, then tiers extending earlier tiers, a ladder and rules.
fn policy_set() -> impl Strategy<Value = Vec<(String, String)>> {
    let tiers = prop::collection::vec(
        (
            prop::collection::vec(assignment(), 0..6),
            any::<prop::sample::Index>(),
        ),
        1..6,
    );
    let rules = prop::collection::vec(
        prop::sample::select(vec![
            "assert for all: operations >= 0",
            "assert for all: dynamicConnections implies dynamicDependencies",
            "assert for all: transfer >= 1 MB or not analyticsAccess",
            "assert for all: interval <= 1 h and (scenarios > 1 or operations < 50_000)",
            "assert for t0: operations * 2 >= t0.operations",
            "assert for all: transfer / 2 < 1 TB",
        ]),
        0..4,
    );
    (tiers, rules, any::<bool>(), any::<bool>()).prop_map(|(tiers, rules, ladder, flags)| {
        let mut text = String::new();
        if flags {
            text.push_str("instance { flags = [feature_variables] }\n");
        }
        for (i, (assignments, parent)) in tiers.iter().enumerate() {
            let parent = match parent.index(i + 1) {
                0 => "base".to_string(),
                p => format!("t{}", p - 1),
            };
            text.push_str(&format!("tier t{i} extends {parent} {{\n"));
            for a in assignments {
                text.push_str(&format!("  {a}\n"));
            }
            text.push_str("}\n");
        }
        if ladder && tiers.len() > 1 {
            let names: Vec<String> = (0..tiers.len()).map(|i| format!("t{i}")).collect();
            text.push_str(&format!("assert ladder {}\n", names.join(" < ")));
        }
        for r in rules {
            text.push_str(r);
            text.push('\n');
        }
        vec![
            ("base.charter".to_string(), PRELUDE.to_string()),
            ("tiers.charter".to_string(), text),
        ]
    })
}

/// Fragments of the language, glued at random: near-valid text that reaches deep into the
/// parser and checker.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "tier",
        "abstract",
        "extends",
        "addon",
        "group",
        "assert",
        "ladder",
        "for",
        "all",
        ":",
        "instance",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "=",
        "+=",
        "-=",
        "*=",
        "<",
        ">=",
        "==",
        "and",
        "or",
        "not",
        "implies",
        "+",
        "*",
        "/",
        "-",
        ",",
        ";",
        "\n",
        " ",
        "#c\n",
        "base",
        "pro",
        "operations",
        "transfer",
        "interval",
        "flags",
        "1",
        "40_000",
        "1.5",
        "GB",
        "min",
        "days",
        "true",
        "\"s\"",
        "\"a\\\"b\"",
        "2027-01-31",
        "2027-02-30",
        "monthly",
        ".",
        "x",
        "99999999999999999999999",
        "customer ",
        "roster ",
        "staff ",
        "team ",
        "attributes ",
        "lifecycle ",
        "initial ",
        "state ",
        "license ",
        "owner ",
        "demote ",
        "with ",
        "transition ",
        "from ",
        " to ",
        "when ",
        "after ",
        "manual",
        " if ",
        "test ",
        "expect ",
        "at ",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|t| t.join(""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn compiling_is_deterministic(files in policy_set()) {
        let first = compile_all(&files);
        let second = compile_all(&files);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn formatted_policy_compiles_to_the_same_objects(files in policy_set()) {
        let formatted: Vec<(String, String)> = files
            .iter()
            .map(|(name, text)| (name.clone(), syntax::format_source(name, text).unwrap()))
            .collect();
        prop_assert_eq!(compile_licenses(&files), compile_licenses(&formatted));
    }

    #[test]
    fn parser_and_checker_never_panic_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = compile_all(&[("any.charter".to_string(), text)]);
    }

    #[test]
    fn parser_and_checker_never_panic_on_token_soup(text in token_soup()) {
        let _ = compile_all(&[
            ("base.charter".to_string(), PRELUDE.to_string()),
            ("soup.charter".to_string(), text),
        ]);
    }

    #[test]
    fn every_compiled_license_is_within_the_catalog_ranges(files in policy_set()) {
        let mut sources = Sources::new();
        for (name, text) in &files {
            sources.add(name.clone(), text.clone());
        }
        let parsed = syntax::parse_all(&sources).unwrap();
        if let Some(program) = check::check(&parsed).program {
            for tier in program.deployable_tiers() {
                let license = tier.license.to_object().unwrap();
                for (param, value) in license.values() {
                    if let Some(n) = value.as_int() {
                        prop_assert!(charter::model::license::in_range(param, n),
                            "{}.{} = {}", tier.name, param.name, n);
                    }
                }
                prop_assert!(
                    license.get("dynamicConnections") != Some(charter::model::LicenseValue::Bool(true))
                    || license.get("dynamicDependencies") == Some(charter::model::LicenseValue::Bool(true))
                );
            }
        }
    }
}
