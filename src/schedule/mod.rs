//! Planning against the live instance and the run loop: read the instance and charter's state,
//! compute the plan for an instant. The clock is never read here: the instant is a parameter
//! (the command line passes `--at` or now), so tests can travel in time.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::observe::{fingerprinted, list, read_memberships};
use crate::api::{ApiError, Client, Memberships, Observed, Scope};
use crate::model::license::human_duration;
use crate::model::program::Program;
use crate::model::time::format_instant;
use crate::plan::reading::{self, Reading, Refresh};
use crate::plan::{self, Context, Memory, Plan, PlanError};
use crate::state::{InstanceIdentity, StateError, Store, TokenUser};

/// The instance a command works on, as far as the command line knows it.
#[derive(Clone, Copy, Debug)]
pub struct Instance<'a> {
    /// How plans name it: its URL, or the embedded sandbox.
    pub name: &'a str,
    /// Its database's id, when charter can read one (the embedded sandbox's).
    pub instance_id: Option<&'a str>,
}

impl Instance<'_> {
    /// Its identity, without the token's user (known only once the instance answered).
    pub fn identity(&self) -> InstanceIdentity {
        InstanceIdentity {
            url: self.name.to_owned(),
            instance_id: self.instance_id.map(str::to_owned),
            user: None,
        }
    }
}

/// Asks the instance who the token is (`GET /users/me`) and binds the state to the instance,
/// or refuses when the state belongs to another ([`StateError::OtherInstance`]). Every command
/// that plans or links organizations goes through here before reading anything else. Returns
/// the token's user id, when the instance says.
pub async fn bind(
    client: &Client,
    state: &Store,
    instance: Instance<'_>,
) -> Result<Option<i64>, PrepareError> {
    let me = client.me().await?;
    let mut user = me.as_ref().map(|u| TokenUser {
        id: u.id,
        email: u.email.clone(),
    });
    // A token of another user: the same instance if the user the state was bound with is
    // there, with the same address (another admin's token); another instance otherwise.
    if let Some(bound) = state.instance()?.and_then(|b| b.user)
        && user.as_ref().is_some_and(|u| u.id != bound.id)
        && client
            .lookup_user_by_id(bound.id)
            .await?
            .is_some_and(|u| u.email.eq_ignore_ascii_case(&bound.email))
    {
        user = Some(bound);
    }
    let identity = InstanceIdentity {
        user,
        ..instance.identity()
    };
    state.bind_instance(&identity)?;
    Ok(me.map(|u| u.id))
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no plan can be made: {}", .0.len())]
    Plan(Vec<PlanError>),
    #[error(transparent)]
    LaterHistory(LaterHistory),
}

/// The state records a transition after the instant being planned for. A plan for the earlier
/// instant would silently undo it (a frozen customer planned back to active with no transition
/// to say why), and the next plan at the later instant would redo it: charter refuses instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot plan for {}: charter's state already records `{transition}` for customer \
     `{customer}` at {}",
    format_instant(*.at),
    format_instant(*.recorded_at)
)]
pub struct LaterHistory {
    pub customer: String,
    pub transition: String,
    pub recorded_at: i64,
    /// The instant being planned for.
    pub at: i64,
}

/// The latest transition the state records after `at`, if any.
pub fn later_history(memory: &plan::Memory, at: i64) -> Option<LaterHistory> {
    memory
        .histories
        .iter()
        .flat_map(|(customer, history)| {
            history
                .transitions
                .iter()
                .map(move |event| (event.at, customer, &event.transition))
        })
        .filter(|(recorded_at, _, _)| *recorded_at > at)
        .max()
        .map(|(recorded_at, customer, transition)| LaterHistory {
            customer: customer.clone(),
            transition: transition.clone(),
            recorded_at,
            at,
        })
}

/// A plan and what it was made from.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    pub observed: Observed,
}

/// How a plan reads the instance's memberships (`plan::reading`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    pub refresh: Refresh,
    /// Seconds after which a remembered organization's memberships are verified again.
    pub verify_every: i64,
    /// The rate limit the reading counts against, when configured (for the plan's header).
    pub rate_limit: Option<u32>,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            refresh: Refresh::Incremental,
            verify_every: reading::DEFAULT_VERIFY_EVERY,
            rate_limit: None,
        }
    }
}

/// Reads the instance (the listing of every organization, user and role, the token's own
/// user, and the memberships `read` calls for; the others from charter's state) and charter's
/// state, and plans what `program` wants at `at` (`created`: the customers whose organization
/// the apply being verified created; empty otherwise) — refused when the state records a
/// transition after `at` ([`LaterHistory`]). The state must belong to `instance` (see
/// [`bind`]); its name goes in the plan (its URL; never the token). The plan's `reading` says
/// what was read and what it cost.
pub async fn prepare(
    client: &Client,
    state: &Store,
    program: &Program,
    at: i64,
    instance: Instance<'_>,
    created: &BTreeSet<String>,
    read: &ReadOptions,
) -> Result<Prepared, PrepareError> {
    let before = client.calls();
    let token_user = bind(client, state, instance).await?;
    let memory = state.memory()?;
    if let Some(later) = later_history(&memory, at) {
        return Err(PrepareError::LaterHistory(later));
    }
    let context = Context {
        instance: instance.name.to_owned(),
        token_user,
        created: created.clone(),
    };
    let (observed, mut reading) =
        read_instance(client, state, program, at, &memory, &context, read).await?;
    reading.calls = client.calls().saturating_sub(before);
    reading.rate_limit = read.rate_limit;
    let mut plan =
        plan::plan(program, at, &memory, &observed, &context).map_err(PrepareError::Plan)?;
    plan.reading = Some(reading);
    Ok(Prepared {
        plan: plan.seal(),
        observed,
    })
}

/// The listing, with the memberships of the organizations `read.refresh` selects read now and
/// remembered, and the others' from the state.
async fn read_instance(
    client: &Client,
    state: &Store,
    program: &Program,
    at: i64,
    memory: &Memory,
    context: &Context,
    read: &ReadOptions,
) -> Result<(Observed, Reading), PrepareError> {
    let listing = list(client).await?;
    let relevant = reading::relevant(program, memory, &listing);
    let remembered = state.remembered()?;
    let choice = reading::Choice {
        program,
        at,
        memory,
        context,
        remembered: &remembered,
        refresh: read.refresh,
        verify_every: read.verify_every,
    };
    let selected = reading::choose(&choice, &listing, &relevant);
    let scope = match read.refresh {
        Refresh::Full => Scope::All,
        _ => Scope::Only(&selected),
    };
    let (all_read, calls) = read_memberships(client, &listing, scope).await?;
    // Only the organizations the plan is about are remembered.
    let read_now: BTreeMap<i64, Memberships> = all_read
        .into_iter()
        .filter(|(id, _)| relevant.contains(id))
        .collect();
    state.remember(&read_now, at)?;
    let verified: BTreeSet<i64> = read_now.keys().copied().collect();
    let counts = Reading::count(read.refresh, &relevant, &verified, &remembered);
    let mut observed = reading::assemble(&listing, &remembered, &read_now);
    observed.calls.add(&calls);
    Ok((fingerprinted(observed), counts))
}

/// What a saved plan is checked against before it is applied: the instance read as the plan
/// read it — the listing, the memberships of the organizations its steps act on read now, the
/// others' from the state.
pub async fn read_for_saved(
    client: &Client,
    state: &Store,
    plan: &Plan,
    at: i64,
) -> Result<Observed, PrepareError> {
    let listing = list(client).await?;
    let remembered = state.remembered()?;
    let acted_on: BTreeSet<i64> = plan
        .steps
        .iter()
        .filter_map(|s| s.action.organization().and_then(|o| o.id))
        .chain(
            plan.reads
                .organizations
                .keys()
                .copied()
                .filter(|id| !remembered.contains_key(id)),
        )
        .collect();
    let (read_now, calls) = read_memberships(client, &listing, Scope::Only(&acted_on)).await?;
    state.remember(&read_now, at)?;
    let mut observed = reading::assemble(&listing, &remembered, &read_now);
    observed.calls.add(&calls);
    Ok(fingerprinted(observed))
}

/// The calls of a full refresh of an instance of `organizations` organizations, about: one
/// per organization and the fixed part (`api::observe`, "Calls").
pub fn full_refresh_calls(organizations: usize) -> u64 {
    u64::try_from(organizations)
        .unwrap_or(u64::MAX)
        .saturating_add(18)
}

/// The warning for rounds every `every` seconds when a full refresh of `organizations`
/// organizations takes longer at `rate_limit` a minute (Make's lowest, 60, when not configured):
/// incremental plans still fit, but `plan --refresh full` would not, and `verify_every` is
/// what spreads the verification.
pub fn full_refresh_warning(
    organizations: usize,
    rate_limit: Option<u32>,
    every: i64,
) -> Option<String> {
    let limit = rate_limit.unwrap_or(60).max(1);
    let calls = full_refresh_calls(organizations);
    let seconds = i64::try_from(calls.saturating_mul(60) / u64::from(limit)).unwrap_or(i64::MAX);
    if seconds <= every {
        return None;
    }
    let assumed = if rate_limit.is_none() {
        " (Make's lowest limit: set `rate_limit` in `charter.toml`)"
    } else {
        ""
    };
    Some(format!(
        "a full refresh of the {organizations} organizations ({calls} calls) takes about {} at          {limit} calls a minute{assumed}, longer than the {} between rounds: rounds read          incrementally and verify memberships a share at a time (`verify_every`), but `plan          --refresh full` does not fit in a round",
        human_duration(seconds),
        human_duration(every)
    ))
}

/// Checks that a saved plan still holds on the instance: the organizations and users it read
/// are unchanged, and nothing it creates exists yet. Lists what changed — read objects first,
/// then organizations, teams and users created since — as `organization 12 ("Acme Corp")
/// changed` or `user 40 (li@acme.example) was created`; empty when the plan may be applied.
///
/// The second half is what keeps a saved plan from making duplicates: Make has no idempotency
/// keys, so a create sent for an object that someone (or another apply) made since the plan
/// would make a second one. Users are matched by address ignoring case, organizations and teams
/// by exact name, as the planner and the executor's lookups match them.
pub fn changed_since(plan: &Plan, observed: &Observed) -> Vec<String> {
    let mut changed = Vec::new();
    // A plan touches only organizations it read: a step naming another was not planned (the
    // file was edited, then sealed again).
    for step in &plan.steps {
        if let Some(id) = step.action.organization().and_then(|o| o.id)
            && !plan.reads.organizations.contains_key(&id)
        {
            changed.push(format!(
                "step `{}` touches organization {id}, which the plan did not read",
                step.id
            ));
        }
    }
    for (id, fingerprint) in &plan.reads.organizations {
        match observed.organization(*id) {
            Some(o) if o.fingerprint() == *fingerprint => {}
            Some(o) => changed.push(format!("organization {id} (\"{}\") changed", o.name)),
            None => changed.push(format!("organization {id} is gone")),
        }
    }
    for (id, fingerprint) in &plan.reads.users {
        match observed.user(*id) {
            Some(u) if u.fingerprint() == *fingerprint => {}
            Some(u) => changed.push(format!("user {id} ({}) changed", u.email)),
            None => changed.push(format!("user {id} is gone")),
        }
    }
    let absent = &plan.reads.absent;
    for o in &observed.organizations {
        if o.deleted {
            continue;
        }
        if absent
            .organizations
            .get(&o.name)
            .is_some_and(|known| !known.contains(&o.id))
        {
            changed.push(format!(
                "organization {} (\"{}\") was created",
                o.id, o.name
            ));
        }
        if let Some(names) = absent.teams.get(&o.id) {
            for t in o.teams.iter().filter(|t| names.contains(&t.name)) {
                changed.push(format!(
                    "team {} (\"{}\") of organization {} was created",
                    t.id, t.name, o.id
                ));
            }
        }
    }
    for u in &observed.users {
        if !u.deleted && absent.users.contains(&u.email.to_lowercase()) {
            changed.push(format!("user {} ({}) was created", u.id, u.email));
        }
    }
    changed
}

/// The changes [`changed_since`] found, for one line: the first ten, then how many more.
pub fn describe_changes(changed: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = changed
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if changed.len() > SHOWN {
        text.push_str(&format!("; and {} more", changed.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::api::roles::{Role, Roles};
    use crate::plan::test_instance::Instance;
    use crate::plan::{Context, Memory};

    fn roles() -> Roles {
        let role = |id: i64, name: &str| Role {
            id,
            name: name.to_owned(),
        };
        Roles {
            instance: vec![
                role(901, "SA"),
                role(902, "Admin"),
                role(911, "D1"),
                role(921, "S1"),
                role(924, "S4"),
            ],
            organization: vec![
                role(11, "Owner"),
                role(12, "Admin"),
                role(13, "Member"),
                role(14, "Accountant"),
            ],
            team: vec![
                role(1, "Team Admin"),
                role(3, "Team Member"),
                role(4, "Team Monitoring"),
                role(6, "Team Operator"),
            ],
        }
    }

    fn acme() -> Program {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/acme");
        let set = crate::policy::load(&path).unwrap_or_else(|_| panic!("policies/acme loads"));
        set.checked.program.expect("policies/acme checks")
    }

    #[test]
    fn a_full_refresh_longer_than_the_interval_is_warned_about() {
        // 10,018 calls at 60 a minute: 2 h 47 min, longer than an hour.
        let warning = full_refresh_warning(10_000, None, 3600).unwrap();
        assert!(warning.contains("10018 calls"), "{warning}");
        assert!(warning.contains("Make's lowest limit"), "{warning}");
        // At 1,000 a minute it takes 10 minutes: it fits in an hour, not in 5 minutes.
        assert_eq!(full_refresh_warning(10_000, Some(1000), 3600), None);
        assert!(full_refresh_warning(10_000, Some(1000), 300).is_some());
        assert_eq!(full_refresh_warning(18, None, 60), None);
    }

    fn plan_for(program: &Program, observed: &Observed) -> Plan {
        let at = crate::model::time::parse_instant("2027-01-15").unwrap();
        plan::plan(
            program,
            at,
            &Memory::default(),
            observed,
            &Context::default(),
        )
        .unwrap_or_else(|errors| panic!("no plan: {errors:?}"))
        .seal()
    }

    #[test]
    fn a_saved_plan_is_refused_once_what_it_creates_exists() {
        let program = acme();
        let empty = Instance::from_observed(&Observed {
            organizations: Vec::new(),
            users: Vec::new(),
            roles: roles(),
            calls: Default::default(),
        });
        let saved = plan_for(&program, &empty.observe());
        assert!(saved.steps.iter().any(|s| s.action.is_create()));
        assert!(changed_since(&saved, &empty.observe()).is_empty());
        // Every user and organization the plan creates is recorded as missing, with what it
        // found of the same name (nothing, on an empty instance).
        let creates_users = saved
            .steps
            .iter()
            .filter(|s| matches!(s.action, crate::plan::Action::CreateUser { .. }))
            .count();
        assert_eq!(saved.reads.absent.users.len(), creates_users);
        assert_eq!(
            saved.reads.absent.organizations.len(),
            program.customers.len()
        );
        assert!(
            saved
                .reads
                .absent
                .organizations
                .values()
                .all(|ids| ids.is_empty())
        );

        // Another plan, made from the same reading, is applied first: everything the saved plan
        // would create now exists, and is named.
        let mut instance = empty.clone();
        instance
            .apply(&plan_for(&program, &empty.observe()))
            .unwrap();
        let changed = changed_since(&saved, &instance.observe());
        let created = |what: &str| changed.iter().filter(|c| c.contains(what)).count();
        assert_eq!(
            created(") was created"),
            creates_users + program.customers.len()
        );
        assert!(
            changed
                .iter()
                .any(|c| c.starts_with("organization ")
                    && c.ends_with("(\"Acme Corp\") was created")),
            "{changed:?}"
        );
        assert!(
            changed
                .iter()
                .any(|c| c.starts_with("user ") && c.ends_with("(jane@acme.example) was created")),
            "{changed:?}"
        );
        let line = describe_changes(&changed);
        assert!(
            line.ends_with(&format!("; and {} more", changed.len() - 10)),
            "{line}"
        );
    }

    #[test]
    fn a_team_created_since_in_an_existing_organization_is_named() {
        let program = acme();
        let mut instance = Instance::from_observed(&Observed {
            organizations: Vec::new(),
            users: Vec::new(),
            roles: roles(),
            calls: Default::default(),
        });
        instance
            .apply(&plan_for(&program, &instance.observe()))
            .unwrap();
        // Remove one team the policy wants: the next plan creates it in an organization that
        // exists, and records that the organization had no team of that name.
        let (org_id, team_id, team) = instance
            .organizations
            .iter()
            .find_map(|(id, o)| {
                o.teams
                    .iter()
                    .find(|(_, t)| t.name != "My Team")
                    .map(|(tid, t)| (*id, *tid, t.clone()))
            })
            .expect("a customer of the example set has a team of its own");
        let org = instance.organizations.get_mut(&org_id).unwrap();
        org.teams.remove(&team_id);
        let without = instance.observe();
        let memory = Memory {
            organizations: program
                .customers
                .iter()
                .filter_map(|c| {
                    without
                        .organizations
                        .iter()
                        .find(|o| o.name == c.name)
                        .map(|o| (c.key.clone(), o.id))
                })
                .collect(),
            ..Memory::default()
        };
        let at = crate::model::time::parse_instant("2027-01-15").unwrap();
        let saved = plan::plan(&program, at, &memory, &without, &Context::default())
            .unwrap()
            .seal();
        assert_eq!(
            saved.reads.absent.teams.get(&org_id),
            Some(&std::iter::once(team.name.clone()).collect())
        );
        assert!(changed_since(&saved, &without).is_empty());
        // Someone makes the team by hand.
        instance
            .organizations
            .get_mut(&org_id)
            .unwrap()
            .teams
            .insert(team_id + 1000, team.clone());
        let changed = changed_since(&saved, &instance.observe());
        assert!(
            changed.iter().any(|c| c
                == &format!(
                    "team {} (\"{}\") of organization {org_id} was created",
                    team_id + 1000,
                    team.name
                )),
            "{changed:?}"
        );
    }
}
