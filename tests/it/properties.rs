//! Property tests of the language core. Each mirrors a fuzz target in `fuzz/` so that CI covers
//! the same invariants without long fuzzing runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use charter::check;
use charter::compile;
use charter::diagnostic::{RenderOptions, render_human};
use charter::source::Sources;
use charter::syntax;

const PRELUDE: &str = include_str!("../check/prelude.charter");

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

/// An assertion nested up to 90 levels (parentheses and `not`s mixed at random) around a chain
/// of up to 400 additions, or a list nested as deep: what generated or hostile input looks
/// like.
fn deep_policy() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["(", "not ", "not (", "(not "]);
    (prop::collection::vec(level, 0..90), 0usize..400, any::<bool>()).prop_map(
        |(levels, chain, in_list)| {
            let open: String = levels.concat();
            let close: String = levels
                .iter()
                .map(|l| ")".repeat(l.matches('(').count()))
                .rev()
                .collect();
            let sum = vec!["1"; chain.max(1)].join(" + ");
            if in_list {
                let depth = levels.len();
                format!(
                    "tier deep extends base {{ operations = {}1{} }}\n",
                    "[".repeat(depth),
                    "]".repeat(depth)
                )
            } else {
                format!(
                    "tier deep extends base {{}}\nassert for deep: {open}operations >= {sum}{close}\n"
                )
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// pest recurses per level of nesting and every later stage walks expressions recursively:
    /// deep input is parsed and checked, or refused with `charter::too_deep`, and never
    /// overflows the stack — here on a test thread's 2 MB, in a debug build.
    #[test]
    fn deep_nesting_and_long_chains_are_checked_or_refused_never_crash(text in deep_policy()) {
        let out = compile_all(&[
            ("base.charter".to_string(), PRELUDE.to_string()),
            ("deep.charter".to_string(), text.clone()),
        ]);
        // The tier's block is one level too, around a list.
        let lists = text.matches('[').count();
        let levels = text.matches('(').count() + text.matches("not ").count() + lists + usize::from(lists > 0);
        // The tree of `operations >= 1 + … + 1` is the chain's length plus two deep, and each
        // parenthesis or `not` adds a level.
        let tree = text.matches(" + ").count() + 2 + levels - lists;
        if levels > 64 || (lists == 0 && tree > 256) {
            prop_assert!(out.contains("charter::too_deep"), "{}", out);
        } else {
            prop_assert!(!out.contains("charter::too_deep"), "{}", out);
        }
    }
}

/// A policy set with a lifecycle and random customers: random tiers, add-ons, overrides and
/// contract ends.
fn customer_policy() -> impl Strategy<Value = String> {
    let customer = (
        prop::sample::select(vec!["small", "large"]),
        prop::collection::vec(
            prop::sample::select(vec!["more_ops", "more_transfer", "fast"]),
            0..3,
        ),
        prop::option::of(0u64..200_000),
        1_700_000_000i64..1_900_000_000,
        any::<bool>(),
    );
    prop::collection::vec(customer, 1..8).prop_map(|customers| {
        let mut text = String::from(concat!(
            "instance { dummy_owner = \"gone@reseller.example\" }\n",
            "tier small extends base {}\n",
            "tier large extends base { operations = 100_000; transfer = 10 GB; apiLimit = 120 }\n",
            "addon more_ops { operations += 5_000 }\n",
            "addon more_transfer { transfer += 1 GB }\n",
            "addon fast { interval = 1 min }\n",
            "lifecycle {\n  initial active\n  state active {\n    license = tier\n  }\n",
            "  state frozen {\n    license = tier with consumables = 0\n  }\n",
            "  state gone {\n    license = tier with consumables = 0, apiLimit = 0\n",
            "    owner = dummy_owner\n    demote owner, admins to member\n  }\n",
            "  transition freeze from active to frozen when contract_end + 7 days\n",
            "  transition expire from frozen to gone after 30 days\n",
            "  transition back from frozen, gone to active manual\n",
            "  transition overdue from active to frozen when contract_end if payment == \"late\"\n}\n",
        ));
        for (i, (tier, addons, ops, end, late)) in customers.iter().enumerate() {
            let mut unique: Vec<&str> = Vec::new();
            for a in addons {
                if !unique.contains(a) {
                    unique.push(a);
                }
            }
            let end = jiff::Timestamp::from_second(*end).unwrap().strftime("%Y-%m-%d");
            text.push_str(&format!(
                "customer c{i} {{\n  name = \"C{i}\"\n  tier = {tier}\n  addons = [{}]\n  \
                 owner = \"o{i}@c.example\"\n  admins = [\"a{i}@c.example\"]\n  contract_end = {end}\n  \
                 attributes {{ payment = \"{}\" }}\n{}}}\n",
                unique.join(", "),
                if *late { "late" } else { "ok" },
                ops.map(|n| format!("  override {{ operations = {n} }}\n")).unwrap_or_default(),
            ));
        }
        text
    })
}

fn customer_program(text: &str) -> charter::model::Program {
    let mut sources = Sources::new();
    sources.add("base.charter", PRELUDE);
    sources.add("customers.charter", text);
    let parsed = syntax::parse_all(&sources).unwrap();
    let checked = check::check(&parsed);
    checked
        .program
        .unwrap_or_else(|| panic!("{:?}", checked.diagnostics.errors().next()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn desired_state_is_deterministic(text in customer_policy(), at in 1_700_000_000i64..1_950_000_000) {
        let program = customer_program(&text);
        for c in &program.customers {
            let history = charter::compile::customer::History::default();
            let a = charter::compile::customer::desired(&program, c, &history, at).to_json();
            let b = charter::compile::customer::desired(&program, c, &history, at).to_json();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn a_frozen_or_gone_license_never_exceeds_the_active_one_on_what_it_zeroes(
        text in customer_policy(),
        at in 1_700_000_000i64..1_950_000_000,
        back in prop::option::of(1_700_000_000i64..1_950_000_000),
    ) {
        use charter::compile::customer::{desired, Event, History};
        let program = customer_program(&text);
        let history = History {
            transitions: Vec::new(),
            requests: back.map(|at| Event { transition: "back".to_string(), at }).into_iter().collect(),
        };
        for c in &program.customers {
            let now = desired(&program, c, &history, at);
            let active = desired(&program, c, &History::default(), 0);
            prop_assert_eq!(&active.walk.state, "active");
            let Some(state) = program.lifecycle.state(&now.walk.state) else { continue };
            for (param, _, _) in &state.overlays {
                let p = &charter::model::catalog::CATALOG[*param];
                let (Some(x), Some(y)) = (now.license.value(*param), active.license.value(*param)) else { continue };
                if let (Some(x), Some(y)) = (x.as_int(), y.as_int()) {
                    prop_assert!(x <= y, "{}: {} in {} > {} active", p.name, x, now.walk.state, y);
                }
            }
        }
    }

    #[test]
    fn every_customer_license_passes_the_checks_of_a_tier(
        text in customer_policy(),
        at in 1_700_000_000i64..1_950_000_000,
    ) {
        let program = customer_program(&text);
        for c in &program.customers {
            let d = charter::compile::customer::desired(&program, c, &Default::default(), at);
            let license = d.license_object().expect("complete");
            for (param, value) in license.values() {
                if let Some(n) = value.as_int() {
                    prop_assert!(charter::model::license::in_range(param, n), "{}: {}", param.name, n);
                }
            }
            prop_assert!(
                license.get("dynamicConnections") != Some(charter::model::LicenseValue::Bool(true))
                || license.get("dynamicDependencies") == Some(charter::model::LicenseValue::Bool(true))
            );
            let owners = d.roles.values().filter(|r| **r == charter::model::customer::OrgRole::Owner).count();
            prop_assert_eq!(owners, 1, "exactly one owner");
        }
    }
}

/// A roster line of random cells: quotes (closed or not), commas, blanks, control characters
/// and multi-byte letters, as a careless export or a hostile one writes them.
fn roster_line() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("a".to_string()),
        Just("Acme".to_string()),
        Just("é".to_string()),
        Just("\"".to_string()),
        Just("\"\"".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just("\r".to_string()),
        Just("\u{1b}".to_string()),
        Just("\0".to_string()),
        Just("pro".to_string()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Every line of a roster after its header is a blank line, a row (all its cells on that
    /// line) or an error located on that line — never dropped, never merged into another row.
    #[test]
    fn every_roster_row_is_a_customer_or_a_located_error(
        lines in prop::collection::vec(roster_line(), 0..20),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let text = std::iter::once("key,name,tier".to_string())
            .chain(lines)
            .collect::<Vec<_>>()
            .join(end);
        let roster = syntax::roster::parse(charter::source::FileId(0), &text)
            .unwrap_or_else(|e| panic!("the header is readable: {e:?}"));
        let line_of = |offset: u32| text[..offset as usize].matches('\n').count();
        let mut accounted = vec![0usize; text.split('\n').count()];
        for row in &roster.rows {
            let line = line_of(row[0].span.start);
            prop_assert!(row.iter().all(|c| line_of(c.span.start) == line && line_of(c.span.end) == line));
            accounted[line] += 1;
        }
        for error in &roster.errors {
            let span = error.primary_span().expect("a located error");
            accounted[line_of(span.start)] += 1;
        }
        for (i, line) in text.split('\n').enumerate().skip(1) {
            let expected = usize::from(!line.trim().is_empty());
            prop_assert_eq!(accounted[i], expected, "line {}: {:?}", i + 1, line);
        }
    }
}
