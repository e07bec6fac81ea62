//! `charter diff`: what a change to a policy set really changes, compared on compiled objects
//! rather than text, with every change classified and the customers it reaches.
//!
//! A reformatting or a refactor (moving a value into a parent tier) compiles to the same objects
//! and shows nothing. A value that moves in a parameter's "better" direction is additive, the
//! other way breaking; enums and deprecated parameters are neutral.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::compile::customer::{self, History};
use crate::model::catalog::{Better, CATALOG, Parameter};
use crate::model::license::{LicenseObject, LicenseValue};
use crate::model::program::Program;
use crate::model::time::format_instant;

/// How a change affects customers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Takes something away: a limit lowered, a feature removed, a transition earlier.
    Breaking,
    /// Gives something: a limit raised, a feature given, a transition later.
    Additive,
    /// Neither, or not for customers: an enum, a rule, a new customer.
    Neutral,
}

impl Class {
    fn word(self) -> &'static str {
        match self {
            Class::Breaking => "breaking",
            Class::Additive => "additive",
            Class::Neutral => "neutral",
        }
    }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub class: Class,
    /// What changed: `tier pro`, `add-on analytics`, `customer acme`, `lifecycle`, `rules`.
    pub subject: String,
    /// In words: `operations: 40,000 → 30,000`.
    pub what: String,
    /// The customers this change reaches, by key.
    pub customers: Vec<String>,
}

/// Everything that changed between two checked policy sets.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Diff {
    /// The instant customers were compared at.
    pub at: String,
    pub changes: Vec<Change>,
}

impl Diff {
    pub fn is_breaking(&self) -> bool {
        self.changes.iter().any(|c| c.class == Class::Breaking)
    }

    pub fn count(&self, class: Class) -> usize {
        self.changes.iter().filter(|c| c.class == class).count()
    }
}

/// How far ahead lifecycle schedules are compared.
const SCHEDULE_HORIZON: i64 = 366 * 86_400;

/// Compares two programs; customers are compared at `at`, with empty histories.
pub fn diff(old: &Program, new: &Program, at: i64) -> Diff {
    let mut changes = Vec::new();
    let changed = customers(old, new, at, &mut changes);
    tiers(old, new, &changed, &mut changes);
    addons(old, new, &mut changes);
    lifecycle(old, new, &mut changes);
    rules(old, new, &mut changes);
    // An organization-level change that a tier change already says, for the same customers,
    // adds nothing; what remains shows add-ons and overrides at work.
    let tier_level: Vec<(Class, String, Vec<String>)> = changes
        .iter()
        .filter(|c| c.subject.starts_with("tier "))
        .map(|c| (c.class, c.what.clone(), c.customers.clone()))
        .collect();
    changes.retain(|c| {
        c.subject != "organizations"
            || !tier_level.iter().any(|(class, what, keys)| {
                *class == c.class && *what == c.what && *keys == c.customers
            })
    });
    // Tiers first (what was sold), then what organizations get, then the rest.
    let rank = |c: &Change| match c.subject.split(' ').next().unwrap_or("") {
        "tier" => 0,
        "add-on" => 1,
        "organizations" => 2,
        "customer" => 3,
        "lifecycle" => 4,
        _ => 5,
    };
    changes.sort_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then_with(|| rank(a).cmp(&rank(b)))
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.what.cmp(&b.what))
    });
    Diff {
        at: format_instant(at),
        changes,
    }
}

/// How moving a parameter from `old` to `new` affects customers.
fn classify(param: &Parameter, old: LicenseValue, new: LicenseValue) -> Class {
    match (param.better, old, new) {
        (Better::Higher, LicenseValue::Int(a), LicenseValue::Int(b))
        | (Better::Lower, LicenseValue::Int(b), LicenseValue::Int(a)) => {
            if b > a {
                Class::Additive
            } else {
                Class::Breaking
            }
        }
        (Better::True, LicenseValue::Bool(false), LicenseValue::Bool(true)) => Class::Additive,
        (Better::True, LicenseValue::Bool(true), LicenseValue::Bool(false)) => Class::Breaking,
        _ => Class::Neutral,
    }
}

/// Every parameter that differs between two license objects.
fn license_changes(
    old: &LicenseObject,
    new: &LicenseObject,
) -> Vec<(&'static Parameter, LicenseValue, LicenseValue)> {
    CATALOG
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (a, b) = (old.value(i)?, new.value(i)?);
            (a != b).then_some((p, a, b))
        })
        .collect()
}

fn customers_on_tier(program: &Program, tier: &str) -> Vec<String> {
    program
        .customers
        .iter()
        .filter(|c| c.tier == tier)
        .map(|c| c.key.clone())
        .collect()
}

/// Customer key → the parameters whose value changed in its organization's license.
type Changed = BTreeMap<String, BTreeSet<&'static str>>;

fn tiers(old: &Program, new: &Program, changed: &Changed, changes: &mut Vec<Change>) {
    let names = |p: &Program| -> BTreeMap<String, LicenseObject> {
        p.deployable_tiers()
            .into_iter()
            .filter_map(|t| Some((t.name.clone(), t.license.to_object()?)))
            .collect()
    };
    let (before, after) = (names(old), names(new));
    let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    for name in &removed {
        // A removed tier whose license reappears under a new name looks like a rename.
        let renamed = added
            .iter()
            .find(|a| after.get(a.as_str()) == before.get(name.as_str()));
        let users = customers_on_tier(old, name);
        let class = if users.is_empty() {
            Class::Neutral
        } else {
            Class::Breaking
        };
        let what = match renamed {
            Some(to) => format!("removed; looks renamed to `{to}` (same license)"),
            None => "removed".to_string(),
        };
        changes.push(Change {
            class,
            subject: format!("tier {name}"),
            what,
            customers: users,
        });
    }
    for name in &added {
        changes.push(Change {
            class: Class::Additive,
            subject: format!("tier {name}"),
            what: "added".to_string(),
            customers: customers_on_tier(new, name),
        });
    }
    for (name, a) in &before {
        let Some(b) = after.get(name) else { continue };
        for (param, x, y) in license_changes(a, b) {
            // The customers it reaches: on the tier, and not shielded by an add-on or override.
            let reached = customers_on_tier(new, name)
                .into_iter()
                .filter(|k| changed.get(k).is_some_and(|set| set.contains(param.name)))
                .collect();
            changes.push(Change {
                class: classify(param, x, y),
                subject: format!("tier {name}"),
                what: format!("{}: {} → {}", param.name, x.human(param), y.human(param)),
                customers: reached,
            });
        }
    }
}

fn addons(old: &Program, new: &Program, changes: &mut Vec<Change>) {
    // An add-on is what it does: its assignments, without where they were written.
    let effect =
        |a: &crate::model::program::Addon| -> Vec<(usize, crate::ast::AssignOp, LicenseValue)> {
            a.assignments
                .iter()
                .map(|x| (x.param, x.op, x.operand))
                .collect()
        };
    let users = |p: &Program, name: &str| -> Vec<String> {
        p.customers
            .iter()
            .filter(|c| c.addons.iter().any(|a| a == name))
            .map(|c| c.key.clone())
            .collect()
    };
    for a in &old.addons {
        match new.addon(&a.name) {
            Some(b) if effect(a) != effect(b) => changes.push(Change {
                class: Class::Neutral,
                subject: format!("add-on {}", a.name),
                what: "changed (its effect on each customer is listed under organizations)"
                    .to_string(),
                customers: users(new, &a.name),
            }),
            Some(_) => {}
            None => {
                let renamed = new
                    .addons
                    .iter()
                    .find(|b| old.addon(&b.name).is_none() && effect(b) == effect(a));
                changes.push(Change {
                    class: Class::Neutral,
                    subject: format!("add-on {}", a.name),
                    what: match renamed {
                        Some(b) => {
                            format!("removed; looks renamed to `{}` (same assignments)", b.name)
                        }
                        None => "removed".to_string(),
                    },
                    customers: users(old, &a.name),
                });
            }
        }
    }
    for b in &new.addons {
        if old.addon(&b.name).is_none() {
            changes.push(Change {
                class: Class::Neutral,
                subject: format!("add-on {}", b.name),
                what: "added".to_string(),
                customers: users(new, &b.name),
            });
        }
    }
}

fn customers(old: &Program, new: &Program, at: i64, changes: &mut Vec<Change>) -> Changed {
    let history = History::default();
    let mut changed = Changed::new();
    // Each parameter change, grouped over customers: (class, parameter, old, new) → customers.
    let mut grouped: BTreeMap<(Class, String), Vec<String>> = BTreeMap::new();
    for c in &new.customers {
        let Some(before) = old.customer(&c.key) else {
            changes.push(Change {
                class: Class::Neutral,
                subject: format!("customer {}", c.key),
                what: format!("added on tier `{}`", c.tier),
                customers: vec![c.key.clone()],
            });
            continue;
        };
        let a = customer::desired(old, before, &history, at);
        let b = customer::desired(new, c, &history, at);
        if a.walk.state != b.walk.state {
            changes.push(Change {
                class: Class::Breaking,
                subject: format!("customer {}", c.key),
                what: format!(
                    "state at {}: {} → {}",
                    format_instant(at),
                    a.walk.state,
                    b.walk.state
                ),
                customers: vec![c.key.clone()],
            });
        }
        for (param, x, y) in license_changes(&a.license, &b.license) {
            changed.entry(c.key.clone()).or_default().insert(param.name);
            let what = format!("{}: {} → {}", param.name, x.human(param), y.human(param));
            grouped
                .entry((classify(param, x, y), what))
                .or_default()
                .push(c.key.clone());
        }
        schedule_changes(old, new, before, c, at, changes);
    }
    for ((class, what), keys) in grouped {
        changes.push(Change {
            class,
            subject: "organizations".to_string(),
            what,
            customers: keys,
        });
    }
    for c in &old.customers {
        if new.customer(&c.key).is_none() {
            changes.push(Change {
                class: Class::Neutral,
                subject: format!("customer {}", c.key),
                what: "removed from the policy (its organization is kept)".to_string(),
                customers: vec![c.key.clone()],
            });
        }
    }
    changed
}

/// Transitions that come earlier (breaking), later (additive), newly or no longer by a year
/// from now.
fn schedule_changes(
    old: &Program,
    new: &Program,
    before: &crate::model::customer::Customer,
    after: &crate::model::customer::Customer,
    at: i64,
    changes: &mut Vec<Change>,
) {
    let history = History::default();
    // Everything up to a year ahead, the past included: a transition that moved from the future
    // into the past fires earlier too.
    // Both walks go a horizon further than what is reported, so that a transition that moved
    // across the end of the horizon is seen on both sides.
    let until = at.saturating_add(SCHEDULE_HORIZON);
    let beyond = until.saturating_add(SCHEDULE_HORIZON);
    let a = customer::walk(&old.lifecycle, before, &history, beyond).fired;
    let b = customer::walk(&new.lifecycle, after, &history, beyond).fired;
    let key = |f: &customer::Fired| (f.transition.clone(), f.from.clone(), f.to.clone());
    let first = |list: &[customer::Fired], k: &(String, String, String)| {
        list.iter().find(|f| key(f) == *k).map(|f| f.at)
    };
    let mut seen = BTreeSet::new();
    for f in a.iter().chain(&b) {
        let k = key(f);
        if !seen.insert(k.clone()) {
            continue;
        }
        let (x, y) = (first(&a, &k), first(&b, &k));
        if x.into_iter()
            .chain(y)
            .min()
            .is_none_or(|earliest| earliest > until)
        {
            continue;
        }
        let (class, what) = match (x, y) {
            (Some(x), Some(y)) if y < x => (
                Class::Breaking,
                format!(
                    "`{}` fires earlier: {} → {}",
                    k.0,
                    format_instant(x),
                    format_instant(y)
                ),
            ),
            (Some(x), Some(y)) if y > x => (
                Class::Additive,
                format!(
                    "`{}` fires later: {} → {}",
                    k.0,
                    format_instant(x),
                    format_instant(y)
                ),
            ),
            (Some(_), Some(_)) => continue,
            (None, Some(y)) => (
                Class::Breaking,
                format!(
                    "`{}` ({} → {}) now fires at {}",
                    k.0,
                    k.1,
                    k.2,
                    format_instant(y)
                ),
            ),
            (Some(x), None) => (
                Class::Additive,
                format!("`{}` no longer fires at {}", k.0, format_instant(x)),
            ),
            (None, None) => continue,
        };
        changes.push(Change {
            class,
            subject: format!("customer {}", after.key),
            what,
            customers: vec![after.key.clone()],
        });
    }
}

fn lifecycle(old: &Program, new: &Program, changes: &mut Vec<Change>) {
    let describe = |p: &Program| -> BTreeMap<String, String> {
        p.lifecycle
            .transitions
            .iter()
            .map(|t| {
                let guard = t
                    .guard
                    .as_ref()
                    .map(|g| format!(" if {g}"))
                    .unwrap_or_default();
                (
                    t.name.clone(),
                    format!(
                        "from {} to {} {}{guard}",
                        t.from.join(", "),
                        t.to,
                        t.trigger
                    ),
                )
            })
            .collect()
    };
    let (a, b) = (describe(old), describe(new));
    for (name, text) in &a {
        match b.get(name) {
            None => changes.push(Change {
                class: Class::Neutral,
                subject: "lifecycle".to_string(),
                what: format!("transition `{name}` removed ({text})"),
                customers: Vec::new(),
            }),
            Some(other) if other != text => changes.push(Change {
                class: Class::Neutral,
                subject: "lifecycle".to_string(),
                what: format!("transition `{name}`: {text} → {other}"),
                customers: Vec::new(),
            }),
            Some(_) => {}
        }
    }
    for (name, text) in &b {
        if !a.contains_key(name) {
            changes.push(Change {
                class: Class::Neutral,
                subject: "lifecycle".to_string(),
                what: format!("transition `{name}` added ({text})"),
                customers: Vec::new(),
            });
        }
    }
    let states = |p: &Program| -> BTreeSet<String> {
        p.lifecycle.states.iter().map(|s| s.name.clone()).collect()
    };
    let (x, y) = (states(old), states(new));
    for s in x.difference(&y) {
        changes.push(Change {
            class: Class::Neutral,
            subject: "lifecycle".to_string(),
            what: format!("state `{s}` removed"),
            customers: Vec::new(),
        });
    }
    for s in y.difference(&x) {
        changes.push(Change {
            class: Class::Neutral,
            subject: "lifecycle".to_string(),
            what: format!("state `{s}` added"),
            customers: Vec::new(),
        });
    }
}

fn rules(old: &Program, new: &Program, changes: &mut Vec<Change>) {
    let texts = |p: &Program| -> BTreeSet<String> {
        let mut set: BTreeSet<String> = p
            .rules
            .iter()
            .map(|r| {
                let scope = r.scope.as_ref().map_or("all".to_string(), |s| s.join(", "));
                format!("assert for {scope}: {}", r.expr)
            })
            .collect();
        set.extend(
            p.ladders
                .iter()
                .map(|l| format!("assert ladder {}", l.join(" < "))),
        );
        set
    };
    let (a, b) = (texts(old), texts(new));
    for r in a.difference(&b) {
        changes.push(Change {
            class: Class::Neutral,
            subject: "rules".to_string(),
            what: format!("removed `{r}`"),
            customers: Vec::new(),
        });
    }
    for r in b.difference(&a) {
        changes.push(Change {
            class: Class::Neutral,
            subject: "rules".to_string(),
            what: format!("added `{r}`"),
            customers: Vec::new(),
        });
    }
}

/// At most this many customer keys are listed per change; the count is always given.
const LISTED: usize = 10;

fn customer_list(keys: &[String]) -> String {
    let mut shown: Vec<&str> = keys.iter().take(LISTED).map(String::as_str).collect();
    if keys.len() > LISTED {
        shown.push("…");
    }
    shown.join(", ")
}

fn noun(n: usize) -> &'static str {
    if n == 1 { "customer" } else { "customers" }
}

/// The report for a terminal.
pub fn render_text(diff: &Diff) -> String {
    if diff.changes.is_empty() {
        return "no changes: both policy sets compile to the same license objects, customers and schedule\n"
            .to_string();
    }
    let mut out = String::new();
    for class in [Class::Breaking, Class::Additive, Class::Neutral] {
        let list: Vec<&Change> = diff.changes.iter().filter(|c| c.class == class).collect();
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{} ({})\n", class.word(), list.len()));
        for c in list {
            out.push_str(&format!("  {}: {}", c.subject, c.what));
            if !c.customers.is_empty() && !c.subject.starts_with("customer ") {
                out.push_str(&format!(
                    " — {} {}: {}",
                    c.customers.len(),
                    noun(c.customers.len()),
                    customer_list(&c.customers)
                ));
            } else if c.subject.starts_with("tier ") {
                out.push_str(" — no customers");
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&summary(diff));
    out.push('\n');
    out
}

fn summary(diff: &Diff) -> String {
    let affected: BTreeSet<&String> = diff
        .changes
        .iter()
        .filter(|c| c.class == Class::Breaking)
        .flat_map(|c| c.customers.iter())
        .collect();
    format!(
        "{} breaking, {} additive, {} neutral; {} {} hit by a breaking change (customers compared at {})",
        diff.count(Class::Breaking),
        diff.count(Class::Additive),
        diff.count(Class::Neutral),
        affected.len(),
        noun(affected.len()),
        diff.at
    )
}

/// The report as a pull-request comment.
pub fn render_markdown(diff: &Diff) -> String {
    let mut out = String::from("### charter diff\n\n");
    if diff.changes.is_empty() {
        out.push_str("No changes: both policy sets compile to the same license objects, customers and schedule.\n");
        return out;
    }
    let verdict = if diff.is_breaking() {
        "**Breaking**: this change takes something away from customers."
    } else {
        "Nothing breaking."
    };
    out.push_str(&format!("{verdict} {}.\n\n", summary(diff)));
    out.push_str("| | changes |\n| --- | ---: |\n");
    for class in [Class::Breaking, Class::Additive, Class::Neutral] {
        out.push_str(&format!("| {} | {} |\n", class.word(), diff.count(class)));
    }
    out.push_str("\n| class | what | change | customers |\n| --- | --- | --- | --- |\n");
    for c in &diff.changes {
        let customers = if c.customers.is_empty() {
            String::new()
        } else {
            format!("{}: {}", c.customers.len(), customer_list(&c.customers))
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.class.word(),
            c.subject.replace('|', "\\|"),
            c.what.replace('|', "\\|"),
            customers.replace('|', "\\|")
        ));
    }
    out
}

/// What the live instance says about one customer's organization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveUsage {
    /// Operations over the last 30 days.
    pub operations: i64,
    /// Bytes of data transfer over the last 30 days.
    pub transfer: i64,
    pub active_scenarios: i64,
    pub teams: i64,
}

/// One organization that a breaking change would really hit, with the numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub customer: String,
    pub what: String,
}

/// The organizations that the breaking changes of `diff` would hit, judged by their live usage:
/// usage above a new allowance, more active scenarios or teams than the new limit, a feature
/// switched off that the customer had on. Customers without usage (not on the instance) are
/// skipped.
pub fn live_impact(
    diff: &Diff,
    old: &Program,
    new: &Program,
    at: i64,
    usage: &BTreeMap<String, LiveUsage>,
) -> Vec<Impact> {
    let breaking: BTreeSet<&String> = diff
        .changes
        .iter()
        .filter(|c| c.class == Class::Breaking)
        .flat_map(|c| c.customers.iter())
        .collect();
    let history = History::default();
    let mut impacts = Vec::new();
    for key in breaking {
        let (Some(c), Some(live)) = (new.customer(key), usage.get(key)) else {
            continue;
        };
        let after = customer::desired(new, c, &history, at).license;
        let before = old
            .customer(key)
            .map(|b| customer::desired(old, b, &history, at).license);
        let limit = |name: &str| after.get(name).and_then(LicenseValue::as_int);
        let mut hit = |what: String| {
            impacts.push(Impact {
                customer: key.clone(),
                what,
            });
        };
        let grouped = crate::model::license::group_thousands;
        let size = crate::model::license::human_size;
        if let Some(max) = limit("operations")
            && live.operations > max
        {
            hit(format!(
                "{} operations in the last 30 days > new limit {}",
                grouped(live.operations),
                grouped(max)
            ));
        }
        if let Some(max) = limit("transfer")
            && live.transfer > max
        {
            hit(format!(
                "{} of data transfer in the last 30 days > new limit {}",
                size(live.transfer),
                size(max)
            ));
        }
        if let Some(max) = limit("scenarios")
            && live.active_scenarios > max
        {
            hit(format!(
                "{} active scenarios > new limit {}",
                grouped(live.active_scenarios),
                grouped(max)
            ));
        }
        if let Some(max) = limit("teams")
            && live.teams > max
        {
            hit(format!(
                "{} teams > new limit {}",
                grouped(live.teams),
                grouped(max)
            ));
        }
        if let Some(before) = &before {
            for (param, x, y) in license_changes(before, &after) {
                if x == LicenseValue::Bool(true) && y == LicenseValue::Bool(false) {
                    hit(format!(
                        "`{}` is switched off; the customer has it on",
                        param.name
                    ));
                }
            }
        }
    }
    impacts
}

/// The live impacts as report text.
pub fn render_impact_text(impacts: &[Impact], instance: &str) -> String {
    if impacts.is_empty() {
        return format!("live ({instance}): no organization is hit by the breaking changes\n");
    }
    let mut out = format!("live ({instance}): {} hit\n", impacts.len());
    for i in impacts {
        out.push_str(&format!("  {}: {}\n", i.customer, i.what));
    }
    out
}

/// The live impacts as a Markdown section.
pub fn render_impact_markdown(impacts: &[Impact], instance: &str) -> String {
    if impacts.is_empty() {
        return format!(
            "\n**Live** ({instance}): no organization is hit by the breaking changes.\n"
        );
    }
    let mut out = format!(
        "\n**Live** ({instance}): {} hit.\n\n| customer | impact |\n| --- | --- |\n",
        impacts.len()
    );
    for i in impacts {
        out.push_str(&format!(
            "| {} | {} |\n",
            i.customer,
            i.what.replace('|', "\\|")
        ));
    }
    out
}
