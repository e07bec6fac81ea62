//! Differential test of the language core: random policy sets are compiled by charter and
//! interpreted by the independent reference in `tests/reference`, and the two must agree on
//! accepting or rejecting each set, on every deployable tier's license object, and on every
//! customer's lifecycle state, license, owner and roles at random instants.
//!
//! `cargo test --test differential` runs a fixed number of cases; `PROPTEST_CASES=5000 cargo
//! test --test differential` runs a long campaign.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod reference;

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config;

use charter::check;
use charter::compile::customer::{History, desired};
use charter::source::Sources;
use charter::syntax;

/// Every parameter but the ones the generator varies, so `base` is a complete root.
const BASE: &str = "
  operations = 1_000
  transfer = 100 MB
  restartPeriod = monthly
  interval = 15 min
  executionTime = 5 min
  fslimit = 5 MB
  iolimit = 100
  dslimit = 1
  dsslimit = 1 MiB
  dlqStorage = 10 MiB
  scenarios = 2
  teams = 1
  appslimit = 0
  apiLimit = 0
  auditLogsDays = 7 days
  premiumApps = 0
  customProperties = 0
  analyticsAccess = false
  fulltext = false
  advsched = false
  customVariables = false
  customFunctions = false
  creatingTemplates = false
  installPublicApps = false
  scenarioIO = false
";

/// One assignment over the parameters the generator varies, with every operator.
fn assignment() -> impl Strategy<Value = String> {
    // `-=` and `*=` are rarer: they push values out of range more often than not.
    let op = prop::sample::select(vec!["=", "=", "=", "+=", "+=", "-=", "*="]);
    prop_oneof![
        (op.clone(), 0u64..20_000).prop_map(|(op, n)| if op == "*=" {
            format!("operations *= {}", n % 5)
        } else {
            format!("operations {op} {}", if op == "-=" { n / 20 } else { n })
        }),
        (
            op.clone(),
            0u64..300,
            prop::sample::select(vec!["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"])
        )
            .prop_map(|(op, n, u)| if op == "*=" {
                format!("transfer *= {}", n % 4)
            } else if op == "-=" {
                format!("transfer -= {} {u}", n % 100)
            } else {
                format!("transfer {op} {n} {u}")
            }),
        (op.clone(), 0u64..40, prop::sample::select(vec!["s", "min", "h"])).prop_map(
            |(op, n, u)| if op == "*=" {
                format!("interval *= {}", n % 3)
            } else {
                format!("interval {op} {} {u}", if u == "s" { n * 30 } else { n })
            }
        ),
        (op.clone(), 0u64..200, prop::sample::select(vec!["days", "weeks", "h"])).prop_map(
            |(op, n, u)| if op == "*=" {
                format!("auditLogsDays *= {}", n % 4)
            } else {
                format!("auditLogsDays {op} {} {u}", if u == "h" { n * 24 } else { n })
            }
        ),
        (op, 0u64..4).prop_map(|(op, n)| format!("premiumApps {op} {}", if op == "=" { n } else { n % 2 })),
        any::<bool>().prop_map(|b| format!("analyticsAccess = {b}")),
        prop::sample::select(vec!["monthly", "yearly", "annual"])
            .prop_map(|w| format!("restartPeriod = {w}")),
    ]
}

fn block(assignments: &[String]) -> String {
    assignments
        .iter()
        .map(|a| format!("  {a}\n"))
        .collect::<String>()
}

#[derive(Clone, Debug)]
struct TierGen {
    is_abstract: bool,
    /// 0 is `base`, i + 1 is tier `t{i}`; past the end is an unknown tier.
    parent: usize,
    body: Vec<String>,
}

#[derive(Clone, Debug)]
struct CustomerGen {
    /// 0 is `base`, i + 1 is `t{i}`, past the end is unknown.
    tier: usize,
    addons: Vec<usize>,
    admins: usize,
    members: usize,
    overrides: Vec<String>,
}

#[derive(Clone, Debug)]
struct PolicyGen {
    base_abstract: bool,
    tiers: Vec<TierGen>,
    addons: Vec<Vec<String>>,
    customers: Vec<CustomerGen>,
}

/// A block's assignments: mostly one per parameter, sometimes one assigned twice (an error).
fn body(max: usize) -> impl Strategy<Value = Vec<String>> {
    (
        prop::collection::vec(assignment(), 0..max),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(mut assignments, keep_duplicates)| {
            if !keep_duplicates {
                let mut seen = Vec::new();
                assignments.retain(|a| {
                    let field = a.split(' ').next().unwrap_or_default().to_string();
                    let new = !seen.contains(&field);
                    seen.push(field);
                    new
                });
            }
            assignments
        })
}

/// An index below `len` mostly; now and then any of `0..len + 3` (a later tier, itself, an
/// unknown name).
fn reference_to(len: usize) -> impl Strategy<Value = usize> {
    (any::<prop::sample::Index>(), prop::bool::weighted(0.04), 0..len + 3)
        .prop_map(move |(index, odd, any)| if odd { any } else { index.index(len) })
}

fn policy() -> impl Strategy<Value = PolicyGen> {
    (1usize..6, 0usize..4, prop::bool::weighted(0.1)).prop_flat_map(|(tier_count, addon_count, base_abstract)| {
        let tiers: Vec<_> = (0..tier_count)
            .map(|i| {
                (prop::bool::weighted(0.1), reference_to(i + 1), body(5)).prop_map(
                    |(is_abstract, parent, body)| TierGen {
                        is_abstract,
                        parent,
                        body,
                    },
                )
            })
            .collect();
        let addon = (assignment(), body(2)).prop_map(|(first, mut rest)| {
            let field = first.split(' ').next().unwrap_or_default().to_string();
            rest.retain(|a| !a.starts_with(&format!("{field} ")));
            rest.insert(0, first);
            rest
        });
        let customer = (
            reference_to(tier_count + 1),
            prop::collection::vec(0..addon_count.max(1), 0..3),
            prop::bool::weighted(0.1),
            0usize..3,
            0usize..3,
            body(3),
        )
            .prop_map(move |(tier, mut addons, repeat, admins, members, overrides)| CustomerGen {
                tier,
                addons: if addon_count == 0 {
                    Vec::new()
                } else {
                    if !repeat {
                        let mut seen = Vec::new();
                        addons.retain(|a| {
                            let new = !seen.contains(a);
                            seen.push(*a);
                            new
                        });
                    }
                    addons
                },
                admins,
                members,
                overrides,
            });
        (
            Just(base_abstract),
            tiers,
            prop::collection::vec(addon, addon_count),
            prop::collection::vec(customer, 0..4),
        )
            .prop_map(|(base_abstract, tiers, addons, customers)| PolicyGen {
                base_abstract,
                tiers,
                addons,
                customers,
            })
    })
}

fn tier_name(index: usize) -> String {
    match index {
        0 => "base".to_string(),
        i => format!("t{}", i - 1),
    }
}

fn render(p: &PolicyGen) -> String {
    let mut text = String::new();
    let abstract_word = |a: bool| if a { "abstract " } else { "" };
    text.push_str(&format!(
        "{}tier base {{{BASE}}}\n",
        abstract_word(p.base_abstract)
    ));
    for (i, t) in p.tiers.iter().enumerate() {
        text.push_str(&format!(
            "{}tier t{i} extends {} {{\n{}}}\n",
            abstract_word(t.is_abstract),
            tier_name(t.parent),
            block(&t.body)
        ));
    }
    for (i, a) in p.addons.iter().enumerate() {
        text.push_str(&format!("addon a{i} {{\n{}}}\n", block(a)));
    }
    for (i, c) in p.customers.iter().enumerate() {
        let addons: Vec<String> = c.addons.iter().map(|a| format!("a{a}")).collect();
        let admins: Vec<String> = (0..c.admins)
            .map(|n| format!("\"admin{n}@c{i}.example\""))
            .collect();
        let members: Vec<String> = (0..c.members)
            .map(|n| format!("\"member{n}@c{i}.example\""))
            .collect();
        text.push_str(&format!(
            "customer c{i} {{\n  name = \"C{i}\"\n  tier = {}\n  addons = [{}]\n  owner = \"owner@c{i}.example\"\n  admins = [{}]\n  members = [{}]\n  contract_end = 2027-01-31\n",
            tier_name(c.tier),
            addons.join(", "),
            admins.join(", "),
            members.join(", "),
        ));
        if !c.overrides.is_empty() {
            text.push_str(&format!("  override {{\n{}  }}\n", block(&c.overrides)));
        }
        text.push_str("}\n");
    }
    text
}

#[derive(Debug, PartialEq)]
struct Compiled {
    tiers: BTreeMap<String, String>,
    customers: BTreeMap<String, reference::CustomerOutcome>,
}

fn roles_of(desired: &charter::compile::customer::Desired) -> BTreeMap<String, String> {
    desired
        .roles
        .iter()
        .map(|(email, role)| (email.clone(), role.as_str().to_string()))
        .collect()
}

/// charter's answer: `Err` with its diagnostics when it refuses the set.
fn compile(text: &str, at: i64, history: &History) -> Result<Compiled, String> {
    let mut sources = Sources::new();
    sources.add("policy.charter".to_string(), text.to_string());
    let parsed = syntax::parse_all(&sources).map_err(|e| format!("{e:?}"))?;
    let checked = check::check(&parsed);
    let Some(program) = checked.program else {
        let codes: Vec<&str> = checked.diagnostics.0.iter().map(|d| d.code).collect();
        return Err(format!("{codes:?}"));
    };
    let tiers = match charter::compile::all_tier_licenses(&program) {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_string(&v).unwrap()))
            .collect(),
        other => panic!("tier licenses are an object, not {other}"),
    };
    let customers = program
        .customers
        .iter()
        .map(|c| {
            let d = desired(&program, c, history, at);
            let outcome = reference::CustomerOutcome {
                state: d.walk.state.clone(),
                license: d.license.to_json(),
                owner: d.owner.clone(),
                roles: roles_of(&d),
            };
            (c.key.clone(), outcome)
        })
        .collect();
    Ok(Compiled { tiers, customers })
}

/// The reference's answer, from the same text's syntax tree.
fn interpret(text: &str, at: i64, history: &History) -> Result<Compiled, String> {
    let mut sources = Sources::new();
    let id = sources.add("policy.charter".to_string(), text.to_string());
    let file = syntax::parse(&sources, id).map_err(|e| format!("{e:?}"))?;
    let files = [file];
    let d = reference::declarations(&files)?;
    reference::addons(&d)?;
    let tiers = reference::tiers(&d)?
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_string(&v).unwrap()))
        .collect();
    let mut customers = BTreeMap::new();
    for c in &d.customers {
        let f = reference::customer_fields(c)?;
        let outcome = reference::customer(&d, &f, history, at)?;
        customers.insert(f.key.to_string(), outcome);
    }
    Ok(Compiled { tiers, customers })
}

fn agree(text: &str, at: i64, history: &History) -> Result<(), TestCaseError> {
    let compiled = compile(text, at, history);
    let interpreted = interpret(text, at, history);
    match (&compiled, &interpreted) {
        (Ok(c), Ok(r)) => prop_assert_eq!(c, r, "\n{}", text),
        (Err(_), Err(_)) => {}
        _ => prop_assert!(
            false,
            "charter and the reference disagree on accepting the policy set\n\
             charter: {:?}\nreference: {:?}\n{}",
            compiled.as_ref().map(|_| "accepted"),
            interpreted.as_ref().map(|_| "accepted"),
            text
        ),
    }
    Ok(())
}

fn config() -> Config {
    // `Config::with_cases` would override the environment, so the long mode reads it here.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    Config::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compiler_and_reference_agree_on_tiers_addons_and_overrides(p in policy()) {
        let text = render(&p);
        agree(&text, 1_800_000_000, &History::default())?;
    }
}
