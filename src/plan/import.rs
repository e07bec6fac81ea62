//! `charter import`: adopting an instance's existing organizations when charter's state is new
//! or lost. Pure: what to record, from the program, the state's memory and what was read.
//!
//! A customer is matched to the one organization with its name that no other customer holds,
//! confirmed by the organization's owner: the customer's owner, or the dummy owner. Its
//! lifecycle state is inferred from the organization: the state whose license it holds
//! exactly; failing that, the dummy owner means a state that hands ownership to the dummy
//! owner, and a license holding every value a state's overlay sets (`frozen`'s zeroed
//! consumables: `operations` and `transfer` both 0) that state — the one setting the most
//! keys; otherwise the initial state. The
//! state is recorded as the shortest chain of transitions from the initial state, taking effect
//! at the import's instant (so `after 90 days` counts from the import).

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::observed::{Observed, ObservedOrganization};
use crate::api::roles::RoleKind;
use crate::compile::customer::provenance;
use crate::model::customer::{Customer, Lifecycle};
use crate::model::program::Program;

use super::Memory;

/// What `import` found for one customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Already linked in the state.
    Linked { organization: i64 },
    /// Matched: record the link and the transitions leading to `state`.
    Adopt {
        organization: i64,
        owner: String,
        state: String,
        /// Why this state.
        because: String,
        /// Transitions from the initial state to `state`, in order.
        path: Vec<String>,
    },
    /// Not matched, and why.
    Unmatched { reason: String },
}

/// The result of matching every customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Import {
    /// Per customer, in the policy's order.
    pub customers: Vec<(String, Match)>,
    /// Organizations on the instance no customer holds or matched: `(id, name)`.
    pub unclaimed: Vec<(i64, String)>,
}

/// Matches the program's customers with the instance's organizations.
pub fn import(program: &Program, memory: &Memory, observed: &Observed) -> Import {
    let owner_role = observed.roles.id(RoleKind::Organization, "Owner").ok();
    let owner_of = |o: &ObservedOrganization| -> Option<String> {
        let role = owner_role?;
        o.members
            .iter()
            .find(|m| m.role_id == role)
            .and_then(|m| observed.user(m.user_id))
            .map(|u| u.email.clone())
    };
    let linked: BTreeSet<i64> = memory.organizations.values().copied().collect();
    let mut by_name: HashMap<&str, Vec<&ObservedOrganization>> = HashMap::new();
    for o in &observed.organizations {
        if !o.deleted && !linked.contains(&o.id) {
            by_name.entry(o.name.as_str()).or_default().push(o);
        }
    }
    let dummy = program.instance.dummy_owner.as_deref();
    let mut claimed: BTreeSet<i64> = linked.clone();
    let mut customers = Vec::new();
    for customer in &program.customers {
        if let Some(&organization) = memory.organizations.get(&customer.key) {
            customers.push((customer.key.clone(), Match::Linked { organization }));
            continue;
        }
        let candidates = by_name
            .get(customer.name.as_str())
            .cloned()
            .unwrap_or_default();
        let confirmed: Vec<(&ObservedOrganization, String)> = candidates
            .iter()
            .filter(|o| !claimed.contains(&o.id))
            .filter_map(|o| {
                let owner = owner_of(o)?;
                let ok = owner.eq_ignore_ascii_case(&customer.owner)
                    || dummy.is_some_and(|d| owner.eq_ignore_ascii_case(d));
                ok.then_some((*o, owner))
            })
            .collect();
        let found = match confirmed.as_slice() {
            [(o, owner)] => {
                let (state, because, path) = infer_state(program, customer, o, owner);
                Match::Adopt {
                    organization: o.id,
                    owner: owner.clone(),
                    state,
                    because,
                    path,
                }
            }
            [] if candidates.is_empty() => Match::Unmatched {
                reason: format!("no organization is named \"{}\"", customer.name),
            },
            [] => {
                let owners: Vec<String> = candidates
                    .iter()
                    .map(|o| {
                        format!(
                            "organization {} is owned by {}",
                            o.id,
                            owner_of(o).unwrap_or_else(|| "nobody".to_owned())
                        )
                    })
                    .collect();
                Match::Unmatched {
                    reason: format!(
                        "{}, not by {}{}",
                        owners.join("; "),
                        customer.owner,
                        dummy.map(|d| format!(" or {d}")).unwrap_or_default()
                    ),
                }
            }
            several => Match::Unmatched {
                reason: format!(
                    "{} organizations named \"{}\" are owned by {}: link one by hand",
                    several.len(),
                    customer.name,
                    customer.owner
                ),
            },
        };
        if let Match::Adopt { organization, .. } = &found {
            claimed.insert(*organization);
        }
        customers.push((customer.key.clone(), found));
    }
    let unclaimed = observed
        .organizations
        .iter()
        .filter(|o| !o.deleted && !claimed.contains(&o.id))
        .map(|o| (o.id, o.name.clone()))
        .collect();
    Import {
        customers,
        unclaimed,
    }
}

/// The state an adopted organization is in (see the module documentation), why, and the
/// transitions that lead there.
fn infer_state(
    program: &Program,
    customer: &Customer,
    o: &ObservedOrganization,
    owner: &str,
) -> (String, String, Vec<String>) {
    let lifecycle = &program.lifecycle;
    let dummy = program
        .instance
        .dummy_owner
        .as_deref()
        .is_some_and(|d| owner.eq_ignore_ascii_case(d));
    let holds = |state: &str| -> bool {
        let license = provenance(program, customer, state);
        license.to_object().is_some_and(|object| {
            object
                .values()
                .all(|(parameter, value)| o.license.get(parameter.name) == Some(&value.to_json()))
        })
    };
    let owner_fits =
        |state: &str| lifecycle.state(state).is_some_and(|s| s.owner_to_dummy) == dummy;
    // A state's overlay (`with consumables = 0`): the organization holds every value it sets.
    let overlay_held = |state: &str| -> Option<usize> {
        let overlays = &lifecycle.state(state)?.overlays;
        let held = overlays.iter().all(|(param, value, _)| {
            crate::model::catalog::CATALOG
                .get(*param)
                .is_some_and(|p| o.license.get(p.name) == Some(&value.to_json()))
        });
        (held && !overlays.is_empty()).then_some(overlays.len())
    };
    let names: Vec<&str> = lifecycle.states.iter().map(|s| s.name.as_str()).collect();
    // The state whose overlay sets the most keys wins; the first declared among equals.
    let by_overlay = names
        .iter()
        .filter(|s| owner_fits(s))
        .filter_map(|s| overlay_held(s).map(|n| (n, *s)))
        .fold(None::<(usize, &str)>, |best, (n, s)| match best {
            Some((m, _)) if m >= n => best,
            _ => Some((n, s)),
        });
    let (state, because) = if let Some(s) = names.iter().find(|s| owner_fits(s) && holds(s)) {
        (
            s.to_string(),
            "its license is exactly this state's".to_owned(),
        )
    } else if dummy
        && let Some(s) = names
            .iter()
            .find(|s| lifecycle.state(s).is_some_and(|st| st.owner_to_dummy))
    {
        (s.to_string(), "the dummy owner holds it".to_owned())
    } else if let Some((_, s)) = by_overlay {
        let values: Vec<String> = lifecycle
            .state(s)
            .map(|st| st.overlays.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|(param, value, _)| {
                crate::model::catalog::CATALOG
                    .get(*param)
                    .map(|p| format!("{} = {}", p.name, value.to_json()))
            })
            .collect();
        (
            s.to_string(),
            format!(
                "its license has the values this state sets: {}",
                values.join(", ")
            ),
        )
    } else {
        (
            lifecycle.initial.clone(),
            "nothing says otherwise (the initial state)".to_owned(),
        )
    };
    let path = path_to(lifecycle, &state).unwrap_or_default();
    (state, because, path)
}

/// The shortest chain of transitions from the initial state to `target`.
fn path_to(lifecycle: &Lifecycle, target: &str) -> Option<Vec<String>> {
    let mut queue: VecDeque<(String, Vec<String>)> = VecDeque::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    queue.push_back((lifecycle.initial.clone(), Vec::new()));
    seen.insert(lifecycle.initial.clone());
    while let Some((state, path)) = queue.pop_front() {
        if state == target {
            return Some(path);
        }
        for t in &lifecycle.transitions {
            if t.from.contains(&state) && seen.insert(t.to.clone()) {
                let mut next = path.clone();
                next.push(t.name.clone());
                queue.push_back((t.to.clone(), next));
            }
        }
    }
    None
}
