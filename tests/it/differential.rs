//! Differential test of the language core: random policy sets are compiled by charter and
//! interpreted by the independent reference in `tests/reference`, and the two must agree on
//! accepting or rejecting each set, on every deployable tier's license object, and on every
//! customer's lifecycle state, license, owner and roles at random instants.
//!
//! `cargo test --test differential` runs a fixed number of cases (1,024, a few seconds); `PROPTEST_CASES=5000 cargo
//! test --test differential` runs a long campaign.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod reference;

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config;

use charter::check;
use charter::compile::customer::{Event, History, desired};
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
        (
            op.clone(),
            0u64..40,
            prop::sample::select(vec!["s", "min", "h"])
        )
            .prop_map(|(op, n, u)| if op == "*=" {
                format!("interval *= {}", n % 3)
            } else {
                format!("interval {op} {} {u}", if u == "s" { n * 30 } else { n })
            }),
        (
            op.clone(),
            0u64..200,
            prop::sample::select(vec!["days", "weeks", "h"])
        )
            .prop_map(|(op, n, u)| if op == "*=" {
                format!("auditLogsDays *= {}", n % 4)
            } else {
                format!(
                    "auditLogsDays {op} {} {u}",
                    if u == "h" { n * 24 } else { n }
                )
            }),
        (op, 0u64..4)
            .prop_map(|(op, n)| format!("premiumApps {op} {}", if op == "=" { n } else { n % 2 })),
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
    /// Days after 2027-01-01 of the contract's end.
    contract_end: i64,
    region: &'static str,
    payment: &'static str,
    /// Days after 2027-01-01 of a `renewal` date attribute, if any.
    renewal: Option<i64>,
}

#[derive(Clone, Debug)]
struct PolicyGen {
    lifecycle: Option<LifecycleGen>,
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
    (
        any::<prop::sample::Index>(),
        prop::bool::weighted(0.04),
        0..len + 3,
    )
        .prop_map(move |(index, odd, any)| if odd { any } else { index.index(len) })
}

fn policy() -> impl Strategy<Value = PolicyGen> {
    (1usize..6, 0usize..4, prop::bool::weighted(0.1)).prop_flat_map(
        |(tier_count, addon_count, base_abstract)| {
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
                (
                    0i64..400,
                    prop::sample::select(vec!["eu", "us"]),
                    prop::sample::select(vec!["ok", "overdue"]),
                    prop::option::weighted(0.8, 0i64..800),
                ),
            )
                .prop_map(
                    move |(
                        tier,
                        mut addons,
                        repeat,
                        admins,
                        members,
                        overrides,
                        (contract_end, region, payment, renewal),
                    )| CustomerGen {
                        contract_end,
                        region,
                        payment,
                        renewal,
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
                    },
                );
            (
                Just(base_abstract),
                tiers,
                prop::collection::vec(addon, addon_count),
                prop::collection::vec(customer, 0..4),
                prop::option::weighted(0.7, lifecycle()),
            )
                .prop_map(|(base_abstract, tiers, addons, customers, lifecycle)| {
                    PolicyGen {
                        lifecycle,
                        base_abstract,
                        tiers,
                        addons,
                        customers,
                    }
                })
        },
    )
}

const STATES: [&str; 3] = ["active", "frozen", "deprovisioned"];

#[derive(Clone, Debug)]
struct TransitionGen {
    from: Vec<usize>,
    to: usize,
    trigger: String,
    guard: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct LifecycleGen {
    dummy_owner: bool,
    limits_group: bool,
    /// The bodies of `frozen` and `deprovisioned` (`active` is `license = tier`).
    states: [Vec<String>; 2],
    transitions: Vec<TransitionGen>,
}

fn state_body() -> impl Strategy<Value = Vec<String>> {
    let overlay = prop::sample::subsequence(
        vec![
            "consumables = 0",
            "apiLimit = 0",
            "operations = 500",
            "analyticsAccess = false",
            "limits = 0",
            "premiumApps = 2",
        ],
        0..3,
    );
    (
        overlay,
        prop::bool::weighted(0.5),
        prop::sample::select(vec![
            "",
            "demote owner, admins to member",
            "demote admins to member",
            "demote members to admin",
            "demote owner to admin",
        ]),
    )
        .prop_map(|(overlays, owner, demote)| {
            let mut body = Vec::new();
            body.push(if overlays.is_empty() {
                "license = tier".to_string()
            } else {
                format!("license = tier with {}", overlays.join(", "))
            });
            if owner {
                body.push("owner = dummy_owner".to_string());
            }
            if !demote.is_empty() {
                body.push(demote.to_string());
            }
            body
        })
}

fn transition() -> impl Strategy<Value = TransitionGen> {
    (
        prop::sample::subsequence(vec![0usize, 1, 2], 1..3),
        0usize..3,
        prop_oneof![
            (-30i64..30).prop_map(|d| if d < 0 {
                format!("when contract_end - {} days", -d)
            } else {
                format!("when contract_end + {d} days")
            }),
            Just("when renewal".to_string()),
            Just("when 2027-06-01".to_string()),
            (1i64..200).prop_map(|d| format!("after {d} days")),
            (1i64..4).prop_map(|w| format!("after {w} weeks")),
            Just("manual".to_string()),
        ],
        prop::option::weighted(
            0.3,
            prop::sample::select(vec![
                "payment == \"overdue\"",
                "region != \"eu\"",
                "payment == \"overdue\" and region == \"eu\"",
                "not (payment == \"ok\") or region == \"us\"",
            ]),
        ),
    )
        .prop_map(|(from, to, trigger, guard)| TransitionGen {
            from,
            to,
            trigger,
            guard,
        })
}

fn lifecycle() -> impl Strategy<Value = LifecycleGen> {
    (
        prop::bool::weighted(0.9),
        any::<bool>(),
        [state_body(), state_body()],
        prop::collection::vec(transition(), 1..6),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(dummy_owner, limits_group, states, mut transitions, backbone)| {
                // Mostly every state is reachable: active → frozen → deprovisioned, with random
                // triggers, before the random transitions.
                if backbone && transitions.len() >= 2 {
                    transitions[0].from = vec![0];
                    transitions[0].to = 1;
                    transitions[1].from = vec![1];
                    transitions[1].to = 2;
                }
                LifecycleGen {
                    dummy_owner,
                    limits_group,
                    states,
                    transitions,
                }
            },
        )
}

fn render_lifecycle(l: &LifecycleGen) -> String {
    let mut text = String::new();
    if l.dummy_owner {
        text.push_str("instance { dummy_owner = \"offboarded@reseller.example\" }\n");
    }
    if l.limits_group {
        text.push_str("group limits = apiLimit, premiumApps\n");
    }
    text.push_str("lifecycle {\n  initial active\n  state active { license = tier }\n");
    for (name, body) in STATES.iter().skip(1).zip(&l.states) {
        text.push_str(&format!("  state {name} {{\n"));
        for statement in body {
            text.push_str(&format!("    {statement}\n"));
        }
        text.push_str("  }\n");
    }
    for (i, t) in l.transitions.iter().enumerate() {
        let from: Vec<&str> = t.from.iter().map(|&s| STATES[s]).collect();
        text.push_str(&format!(
            "  transition x{i} from {} to {} {}",
            from.join(", "),
            STATES[t.to],
            t.trigger
        ));
        if let Some(guard) = t.guard {
            text.push_str(&format!(" if {guard}"));
        }
        text.push('\n');
    }
    text.push_str("}\n");
    text
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
            "customer c{i} {{\n  name = \"C{i}\"\n  tier = {}\n  addons = [{}]\n  owner = \"owner@c{i}.example\"\n  admins = [{}]\n  members = [{}]\n  contract_end = {}\n",
            tier_name(c.tier),
            addons.join(", "),
            admins.join(", "),
            members.join(", "),
            day(c.contract_end),
        ));
        text.push_str(&format!(
            "  attributes {{ region = \"{}\"; payment = \"{}\"",
            c.region, c.payment
        ));
        if let Some(renewal) = c.renewal {
            text.push_str(&format!("; renewal = {}", day(renewal)));
        }
        text.push_str(" }\n");
        if !c.overrides.is_empty() {
            text.push_str(&format!("  override {{\n{}  }}\n", block(&c.overrides)));
        }
        text.push_str("}\n");
    }
    if let Some(l) = &p.lifecycle {
        text.push_str(&render_lifecycle(l));
    }
    text
}

/// 2027-01-01T00:00:00Z.
const EPOCH_2027: i64 = 1_798_761_600;
const DAY: i64 = 86_400;

/// The date `days` after 2027-01-01, as written in a policy.
fn day(days: i64) -> String {
    debug_assert_eq!(EPOCH_2027 % DAY, 0);
    // Howard Hinnant's days-to-civil, on days since 1970-01-01.
    let z = (EPOCH_2027 / DAY + days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
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
                since: d.walk.since,
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
    let lifecycle = reference::lifecycle(&d)?;
    let tiers = reference::tiers(&d)?
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_string(&v).unwrap()))
        .collect();
    let mut customers = BTreeMap::new();
    for c in &d.customers {
        let f = reference::customer_fields(c)?;
        let outcome = reference::customer(&d, lifecycle.as_ref(), &f, history, at)?;
        customers.insert(f.key.to_string(), outcome);
    }
    Ok(Compiled { tiers, customers })
}

fn agree(text: &str, at: i64, history: &History) -> Result<(), TestCaseError> {
    let compiled = compile(text, at, history);
    let interpreted = interpret(text, at, history);
    match (&compiled, &interpreted) {
        (Ok(c), Ok(r)) => {
            // One item at a time, so a failure names the tier or customer that differs.
            prop_assert_eq!(
                c.tiers.keys().collect::<Vec<_>>(),
                r.tiers.keys().collect::<Vec<_>>()
            );
            for (name, license) in &c.tiers {
                prop_assert_eq!(
                    Some(license),
                    r.tiers.get(name),
                    "tier `{}`\n{}",
                    name,
                    text
                );
            }
            prop_assert_eq!(c.customers.len(), r.customers.len());
            for (key, outcome) in &c.customers {
                prop_assert_eq!(
                    Some(outcome),
                    r.customers.get(key),
                    "customer `{}` at {} with {:?}\n{}",
                    key,
                    at,
                    history,
                    text
                );
            }
        }
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
        .unwrap_or(1024);
    Config::with_cases(cases)
}

/// A recorded history: transitions that really happened and manual requests, by the names the
/// generated lifecycle uses (`x0`, `x1`, …), oldest first.
fn history() -> impl Strategy<Value = History> {
    let event = (0usize..7, -100i64..900).prop_map(|(t, days)| Event {
        transition: format!("x{t}"),
        at: EPOCH_2027 + days * DAY + 3_600,
    });
    (
        prop::collection::vec(event.clone(), 0..3),
        prop::collection::vec(event, 0..3),
    )
        .prop_map(|(mut transitions, mut requests)| {
            transitions.sort_by_key(|e| e.at);
            requests.sort_by_key(|e| e.at);
            History {
                transitions,
                requests,
            }
        })
}

/// An instant between late 2026 and 2029, sometimes exactly at midnight (when dates fall due).
fn instant() -> impl Strategy<Value = i64> {
    (
        -100i64..1_000,
        prop::sample::select(vec![0, 1, 43_200, DAY - 1]),
    )
        .prop_map(|(days, seconds)| EPOCH_2027 + days * DAY + seconds)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compiler_and_reference_agree_on_licenses_states_owners_and_roles(
        p in policy(),
        history in history(),
        instants in prop::collection::vec(instant(), 1..4),
    ) {
        let text = render(&p);
        agree(&text, instants[0], &History::default())?;
        for at in instants {
            agree(&text, at, &history)?;
        }
    }
}
