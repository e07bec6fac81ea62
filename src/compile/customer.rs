//! A customer's desired state at an instant: where the lifecycle has taken it (and why), its
//! license with provenance, and its people's roles. Pure: the instant and the recorded history
//! are arguments, so tests can move the clock freely.

use std::collections::BTreeMap;

use crate::check::expr::{self, Env, Val};
use crate::model::catalog::CATALOG;
use crate::model::customer::{Attribute, Customer, Lifecycle, OrgRole, Party, TeamRole, Trigger};
use crate::model::license::{License, LicenseObject, Origin};
use crate::model::program::Program;
use crate::model::time::format_instant;

/// What charter's state records about a customer: transitions that really happened and manual
/// transitions requested, each with its time. Empty for a customer charter has never acted on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Oldest first.
    pub transitions: Vec<Event>,
    /// Oldest first.
    pub requests: Vec<Event>,
}

/// A named transition at an instant (seconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub transition: String,
    pub at: i64,
}

/// Why a transition fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// `when EXPR` reached its date.
    When { expr: String, date: i64 },
    /// `after DURATION` in the source state.
    After { seconds: i64 },
    /// A `manual` transition that was requested.
    Manual { requested: i64 },
    /// charter's state records that it happened.
    Recorded,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::When { expr, date } => write!(f, "when {expr} ({})", format_instant(*date)),
            Cause::After { seconds } => write!(
                f,
                "after {}",
                crate::model::license::human_duration(*seconds)
            ),
            Cause::Manual { requested } => {
                write!(f, "manual, requested at {}", format_instant(*requested))
            }
            Cause::Recorded => f.write_str("recorded in charter's state"),
        }
    }
}

/// One transition taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub transition: String,
    pub from: String,
    pub to: String,
    pub at: i64,
    pub cause: Cause,
}

/// Where the lifecycle has taken a customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    pub state: String,
    /// When the customer entered `state`; `None` if it has been there from the start.
    pub since: Option<i64>,
    pub fired: Vec<Fired>,
}

/// A bound on the transitions of one walk, against lifecycles that loop with no time passing.
const MAX_STEPS: usize = 10_000;

/// Walks the lifecycle from `initial` up to and including `at`: recorded transitions replace
/// computed ones, then each automatic transition fires at the moment it becomes due (the one
/// declared first when several are due at once), and requested manual ones at their request.
pub fn walk(lifecycle: &Lifecycle, customer: &Customer, history: &History, at: i64) -> Walk {
    let mut state = lifecycle.initial.clone();
    let mut since: Option<i64> = None;
    let mut fired: Vec<Fired> = Vec::new();
    for event in history.transitions.iter().filter(|e| e.at <= at) {
        let Some(t) = lifecycle.transition(&event.transition) else {
            continue;
        };
        if !t.from.contains(&state) {
            continue;
        }
        fired.push(Fired {
            transition: t.name.clone(),
            from: state.clone(),
            to: t.to.clone(),
            at: event.at,
            cause: Cause::Recorded,
        });
        state = t.to.clone();
        since = Some(event.at);
    }
    let mut requests: Vec<&Event> = history
        .requests
        .iter()
        .filter(|r| r.at <= at && since.is_none_or(|s| r.at >= s))
        .collect();
    let env = AttributeEnv { customer };
    for _ in 0..MAX_STEPS {
        let mut best: Option<(i64, usize, Cause, Option<usize>)> = None;
        for (index, t) in lifecycle.transitions.iter().enumerate() {
            if !t.from.contains(&state) {
                continue;
            }
            if let Some(guard) = &t.guard {
                let mut seen = Vec::new();
                if expr::eval(guard, &env, &mut seen) != Ok(Val::Bool(true)) {
                    continue;
                }
            }
            let (due, cause, request) = match &t.trigger {
                Trigger::When(e) => {
                    let mut seen = Vec::new();
                    let Ok(Val::Date(date)) = expr::eval(e, &env, &mut seen) else {
                        continue;
                    };
                    // A `when` transition fires once for its date.
                    let done = fired.iter().any(|f| {
                        f.transition == t.name
                            && (f.cause == Cause::Recorded && f.at >= date
                                || matches!(&f.cause, Cause::When { date: d, .. } if *d == date))
                    });
                    if done {
                        continue;
                    }
                    let due = since.map_or(date, |s| s.max(date));
                    (
                        due,
                        Cause::When {
                            expr: e.to_string(),
                            date,
                        },
                        None,
                    )
                }
                Trigger::After(seconds) => {
                    let Some(entered) = since else { continue };
                    let Some(due) = entered.checked_add(*seconds) else {
                        continue;
                    };
                    (due, Cause::After { seconds: *seconds }, None)
                }
                Trigger::Manual => {
                    let Some((i, r)) = requests
                        .iter()
                        .enumerate()
                        .find(|(_, r)| r.transition == t.name)
                    else {
                        continue;
                    };
                    (r.at, Cause::Manual { requested: r.at }, Some(i))
                }
            };
            if due > at {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(d, i, _, _)| (due, index) < (*d, *i))
            {
                best = Some((due, index, cause, request));
            }
        }
        let Some((due, index, cause, request)) = best else {
            break;
        };
        let Some(t) = lifecycle.transitions.get(index) else {
            break;
        };
        if let Some(i) = request {
            requests.remove(i);
        }
        // Requests made before the customer entered its new state no longer apply.
        requests.retain(|r| r.at >= due);
        fired.push(Fired {
            transition: t.name.clone(),
            from: state.clone(),
            to: t.to.clone(),
            at: due,
            cause,
        });
        state = t.to.clone();
        since = Some(due);
    }
    Walk {
        state,
        since,
        fired,
    }
}

/// The transitions that fire after `at` and up to `at + horizon`, with when and why.
pub fn upcoming(
    lifecycle: &Lifecycle,
    customer: &Customer,
    history: &History,
    at: i64,
    horizon: i64,
) -> Vec<Fired> {
    walk(lifecycle, customer, history, at.saturating_add(horizon))
        .fired
        .into_iter()
        .filter(|f| f.at > at)
        .collect()
}

/// Customer attributes as expression values (for triggers and guards).
pub(crate) struct AttributeEnv<'a> {
    pub(crate) customer: &'a Customer,
}

impl Env for AttributeEnv<'_> {
    fn value(&self, qualifier: Option<&str>, name: &str) -> Option<Val> {
        if qualifier.is_some() {
            return None;
        }
        self.customer.attributes.get(name).map(attribute_value)
    }
}

pub(crate) fn attribute_value(a: &Attribute) -> Val {
    match a {
        Attribute::Text(t) => Val::Text(t.clone()),
        Attribute::Date(d) => Val::Date(*d),
        Attribute::Int(n) => Val::Int((*n).into()),
        Attribute::Bool(b) => Val::Bool(*b),
    }
}

/// A customer's organization as it should be at an instant.
#[derive(Clone, Debug)]
pub struct Desired {
    pub customer: String,
    pub name: String,
    pub walk: Walk,
    /// The complete license object (its provenance: [`provenance`]).
    pub license: LicenseObject,
    pub owner: String,
    /// Address → role, every person of the organization (the dummy owner included when it
    /// holds the organization).
    pub roles: BTreeMap<String, OrgRole>,
    /// Team → address → role.
    pub teams: BTreeMap<String, BTreeMap<String, TeamRole>>,
}

impl Desired {
    /// The complete license object sent to the API.
    pub fn license_object(&self) -> Option<LicenseObject> {
        Some(self.license.clone())
    }

    /// `{"customer", "state", "since", "license", "owner", "roles", "teams"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let roles: serde_json::Map<String, serde_json::Value> = self
            .roles
            .iter()
            .map(|(email, role)| (email.clone(), role.as_str().into()))
            .collect();
        let teams: serde_json::Map<String, serde_json::Value> = self
            .teams
            .iter()
            .map(|(team, people)| {
                let people: serde_json::Map<String, serde_json::Value> = people
                    .iter()
                    .map(|(email, role)| (email.clone(), role.as_str().into()))
                    .collect();
                (team.clone(), serde_json::Value::Object(people))
            })
            .collect();
        serde_json::json!({
            "customer": self.customer,
            "name": self.name,
            "state": self.walk.state,
            "since": self.walk.since.map(format_instant),
            "license": self.license.to_json(),
            "owner": self.owner,
            "roles": roles,
            "teams": teams,
        })
    }
}

/// Computes a customer's desired state at `at`.
pub fn desired(program: &Program, customer: &Customer, history: &History, at: i64) -> Desired {
    let lifecycle = &program.lifecycle;
    let walk = walk(lifecycle, customer, history, at);
    let state = lifecycle.state(&walk.state);

    // Values only, from the tier's checked object: provenance is built on request.
    let mut license = program
        .tier(&customer.tier)
        .and_then(|t| t.license.to_object())
        .unwrap_or_default();
    let assignments = customer
        .addons
        .iter()
        .filter_map(|name| program.addon(name))
        .flat_map(|addon| addon.assignments.iter())
        .chain(&customer.overrides);
    for a in assignments {
        // The checker applied the same assignments to this customer without error.
        if let Some(param) = CATALOG.get(a.param)
            && let Ok(value) = a.result(param, license.value(a.param))
        {
            license.set(a.param, value);
        }
    }
    if let Some(state) = state {
        for (param, value, _) in &state.overlays {
            license.set(*param, *value);
        }
    }

    let mut roles: BTreeMap<String, OrgRole> = BTreeMap::new();
    roles.insert(customer.owner.clone(), OrgRole::Owner);
    for a in &customer.admins {
        roles.insert(a.clone(), OrgRole::Admin);
    }
    for m in &customer.members {
        roles.insert(m.clone(), OrgRole::Member);
    }
    let mut owner = customer.owner.clone();
    if let Some(state) = state {
        if state.owner_to_dummy
            && let Some(dummy) = &program.instance.dummy_owner
        {
            // Make leaves the previous owner an Admin after a transfer.
            roles.insert(customer.owner.clone(), OrgRole::Admin);
            roles.insert(dummy.clone(), OrgRole::Owner);
            owner = dummy.clone();
        }
        for (party, role) in &state.demotions {
            let people: Vec<&String> = match party {
                Party::Owner => vec![&customer.owner],
                Party::Admins => customer.admins.iter().collect(),
                Party::Members => customer.members.iter().collect(),
            };
            for person in people {
                if let Some(current) = roles.get_mut(person.as_str())
                    && *current < *role
                    && *current != OrgRole::Owner
                {
                    *current = *role;
                }
            }
        }
    }
    let teams = customer
        .teams
        .iter()
        .map(|t| (t.name.clone(), t.roles.iter().cloned().collect()))
        .collect();
    Desired {
        customer: customer.key.clone(),
        name: customer.name.clone(),
        walk,
        license,
        owner,
        roles,
        teams,
    }
}

/// A customer's license in a state with the chain behind every value: tier chain, add-ons,
/// override, state overlay (for `explain` and test failures).
pub fn provenance(program: &Program, customer: &Customer, state: &str) -> License {
    let mut license = program
        .tier(&customer.tier)
        .map(|t| t.license.clone())
        .unwrap_or_default();
    for name in &customer.addons {
        if let Some(addon) = program.addon(name) {
            let origin = Origin::Addon(addon.name.as_str().into());
            for a in &addon.assignments {
                let _ = license.apply(&origin, a);
            }
        }
    }
    for a in &customer.overrides {
        let _ = license.apply(&Origin::Override, a);
    }
    match program.lifecycle.state(state) {
        Some(state) => state.apply_to(&license),
        None => license,
    }
}
