//! Test support, for the planner's tests only (unit and property tests, `tests/plan.rs`); no
//! command uses it.
//!
//! An in-memory model of a Make instance that carries out plan steps with Make's rules (as
//! `MAKE-API.md` states them and the sandbox enforces them): e-mail addresses are unique, an
//! organization has exactly one owner, a role call cannot make or unmake an owner, a transfer
//! needs the new owner to be a member and leaves the previous one an Admin, team roles need
//! membership of the team's organization.
//!
//! The property tests apply plans to it — in the plan's order, or in any order the steps'
//! `depends_on` edges allow, as the concurrent executor may run them — and check that the
//! result is the desired state and that planning again finds nothing to do; it needs no
//! network and no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Plan, Step, TeamRef};
use crate::api::roles::{RoleKind, Roles};
use crate::api::wire::License;
use crate::apply::Ids;
use crate::plan::observed::{
    Membership, Observed, ObservedOrganization, ObservedTeam, ObservedUser,
};

/// A user of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub name: String,
    pub instance_role: Option<i64>,
}

/// An organization of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub name: String,
    pub license: serde_json::Map<String, serde_json::Value>,
    /// User id → organization role id.
    pub members: BTreeMap<i64, i64>,
    /// Team id → team.
    pub teams: BTreeMap<i64, Team>,
}

/// A team of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Team {
    pub name: String,
    /// User id → team role id.
    pub members: BTreeMap<i64, i64>,
}

/// An instance in memory.
#[derive(Clone, Debug)]
pub struct Instance {
    pub users: BTreeMap<i64, User>,
    pub organizations: BTreeMap<i64, Organization>,
    pub roles: Roles,
    next_id: i64,
    /// API calls carried out.
    pub calls: usize,
}

impl Instance {
    /// The model of what was observed.
    pub fn from_observed(observed: &Observed) -> Instance {
        let users = observed
            .users
            .iter()
            .filter(|u| !u.deleted)
            .map(|u| {
                (
                    u.id,
                    User {
                        email: u.email.clone(),
                        name: u.name.clone(),
                        instance_role: u.instance_role_id,
                    },
                )
            })
            .collect();
        let organizations = observed
            .organizations
            .iter()
            .filter(|o| !o.deleted)
            .map(|o| {
                (
                    o.id,
                    Organization {
                        name: o.name.clone(),
                        license: o.license.0.clone(),
                        members: o.members.iter().map(|m| (m.user_id, m.role_id)).collect(),
                        teams: o
                            .teams
                            .iter()
                            .map(|t| {
                                (
                                    t.id,
                                    Team {
                                        name: t.name.clone(),
                                        members: t
                                            .members
                                            .iter()
                                            .map(|m| (m.user_id, m.role_id))
                                            .collect(),
                                    },
                                )
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        let next_id = observed
            .users
            .iter()
            .map(|u| u.id)
            .chain(observed.organizations.iter().map(|o| o.id))
            .chain(
                observed
                    .organizations
                    .iter()
                    .flat_map(|o| o.teams.iter().map(|t| t.id)),
            )
            .max()
            .unwrap_or(0)
            + 1;
        Instance {
            users,
            organizations,
            roles: observed.roles.clone(),
            next_id,
            calls: 0,
        }
    }

    /// What observing the model would read.
    pub fn observe(&self) -> Observed {
        let membership = |kind: RoleKind, (user, role): (&i64, &i64)| Membership {
            user_id: *user,
            role_id: *role,
            role: self.roles.name(kind, *role).map(str::to_owned),
        };
        Observed {
            organizations: self
                .organizations
                .iter()
                .map(|(id, o)| ObservedOrganization {
                    id: *id,
                    name: o.name.clone(),
                    timezone_id: 0,
                    country_id: 0,
                    license: License(o.license.clone()),
                    is_paused: false,
                    external_id: None,
                    scenarios: 0,
                    active_scenarios: 0,
                    deleted: false,
                    members: o
                        .members
                        .iter()
                        .map(|m| membership(RoleKind::Organization, m))
                        .collect(),
                    teams: o
                        .teams
                        .iter()
                        .map(|(tid, t)| ObservedTeam {
                            id: *tid,
                            name: t.name.clone(),
                            members: t
                                .members
                                .iter()
                                .map(|m| membership(RoleKind::Team, m))
                                .collect(),
                        })
                        .collect(),
                    cached_fingerprint: Default::default(),
                })
                .collect(),
            users: self
                .users
                .iter()
                .map(|(id, u)| ObservedUser {
                    id: *id,
                    name: u.name.clone(),
                    email: u.email.clone(),
                    instance_role_id: u.instance_role,
                    instance_role: u
                        .instance_role
                        .and_then(|r| self.roles.name(RoleKind::Instance, r).map(str::to_owned)),
                    language: "en".to_owned(),
                    country_id: 0,
                    timezone_id: 0,
                    locale_id: 0,
                    deleted: false,
                    cached_fingerprint: Default::default(),
                })
                .collect(),
            roles: self.roles.clone(),
            calls: Default::default(),
        }
    }

    /// Carries out every step of a plan in the plan's order; fails at the first step Make would
    /// refuse, or that comes before a step it depends on.
    pub fn apply(&mut self, plan: &Plan) -> Result<Ids, String> {
        let mut ids = Self::known_ids(plan);
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for step in &plan.steps {
            if let Some(dep) = step.depends_on.iter().find(|d| !done.contains(d.as_str())) {
                return Err(format!("step `{}` runs before `{dep}`", step.id));
            }
            self.execute(step, &mut ids)
                .map_err(|e| format!("step `{}`: {e}", step.id))?;
            done.insert(step.id.as_str());
        }
        Ok(ids)
    }

    /// Carries out every step of a plan in an order its `depends_on` edges allow, as a
    /// concurrent executor may: each time, `choose(n)` picks one of the `n` steps whose
    /// dependencies are all done (any value; it is taken modulo `n`). The plan's own order
    /// plays no part, so a dependency the plan fails to list shows as a step Make refuses.
    /// Fails at the first such step, at a dependency on a step not in the plan, or when steps
    /// wait for each other. Returns the ids made and the order the steps ran in.
    pub fn apply_in_any_order(
        &mut self,
        plan: &Plan,
        mut choose: impl FnMut(usize) -> usize,
    ) -> Result<(Ids, Vec<String>), String> {
        let index: BTreeMap<&str, usize> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        if index.len() != plan.steps.len() {
            return Err("two steps of the plan have the same id".to_owned());
        }
        let mut waiting = vec![0usize; plan.steps.len()];
        let mut unlocks: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
        for (i, step) in plan.steps.iter().enumerate() {
            for dep in &step.depends_on {
                let d = *index.get(dep.as_str()).ok_or_else(|| {
                    format!(
                        "step `{}` depends on `{dep}`, which the plan does not have",
                        step.id
                    )
                })?;
                if let Some(w) = waiting.get_mut(i) {
                    *w += 1;
                }
                if let Some(u) = unlocks.get_mut(d) {
                    u.push(i);
                }
            }
        }
        let mut ready: Vec<usize> = (0..plan.steps.len())
            .filter(|i| waiting.get(*i) == Some(&0))
            .collect();
        let mut ids = Self::known_ids(plan);
        let mut order = Vec::with_capacity(plan.steps.len());
        while !ready.is_empty() {
            let pick = choose(ready.len()) % ready.len();
            let i = ready.swap_remove(pick);
            let Some(step) = plan.steps.get(i) else {
                continue;
            };
            self.execute(step, &mut ids).map_err(|e| {
                format!(
                    "step `{}` (after {}): {e}",
                    step.id,
                    if order.is_empty() {
                        "nothing".to_owned()
                    } else {
                        order.join(", ")
                    }
                )
            })?;
            order.push(step.id.clone());
            for &next in unlocks.get(i).map(Vec::as_slice).unwrap_or_default() {
                if let Some(w) = waiting.get_mut(next) {
                    *w -= 1;
                    if *w == 0 {
                        ready.push(next);
                    }
                }
            }
        }
        if order.len() != plan.steps.len() {
            return Err("some steps of the plan wait for each other".to_owned());
        }
        Ok((ids, order))
    }

    /// The ids a plan knows before it starts: the organizations that exist.
    fn known_ids(plan: &Plan) -> Ids {
        let mut ids = Ids::default();
        for c in &plan.customers {
            if let Some(id) = c.organization {
                ids.organizations.insert(c.key.clone(), id);
            }
        }
        ids
    }

    /// A user made by hand (in the Administration UI); returns its id. Refuses an address
    /// taken, ignoring case, as Make does.
    pub fn add_user(&mut self, email: &str, instance_role: Option<i64>) -> Result<i64, String> {
        self.insert_user(email, display_name(email), instance_role)
    }

    fn insert_user(
        &mut self,
        email: &str,
        name: String,
        instance_role: Option<i64>,
    ) -> Result<i64, String> {
        let key = email.to_lowercase();
        if self.users.values().any(|u| u.email.to_lowercase() == key) {
            return Err(format!("the address `{email}` is taken"));
        }
        let id = self.fresh();
        self.users.insert(
            id,
            User {
                email: email.to_owned(),
                name,
                instance_role,
            },
        );
        Ok(id)
    }

    /// An organization made by hand with `owner` as its owner; returns its id.
    pub fn add_organization(
        &mut self,
        name: &str,
        license: serde_json::Map<String, serde_json::Value>,
        owner: i64,
    ) -> Result<i64, String> {
        if !self.users.contains_key(&owner) {
            return Err(format!("no user {owner}"));
        }
        let owner_role = self.role(RoleKind::Organization, "Owner")?;
        let id = self.fresh();
        self.organizations.insert(
            id,
            Organization {
                name: name.to_owned(),
                license,
                members: BTreeMap::from([(owner, owner_role)]),
                teams: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// A team made by hand in an organization, with no members; returns its id.
    pub fn add_team(&mut self, organization: i64, name: &str) -> Result<i64, String> {
        if !self.organizations.contains_key(&organization) {
            return Err(format!("no organization {organization}"));
        }
        let id = self.fresh();
        if let Some(o) = self.organizations.get_mut(&organization) {
            o.teams.insert(
                id,
                Team {
                    name: name.to_owned(),
                    members: BTreeMap::new(),
                },
            );
        }
        Ok(id)
    }

    fn user_id(&self, ids: &Ids, user: &super::UserRef) -> Result<i64, String> {
        user.id
            .or_else(|| ids.users.get(&user.email.to_lowercase()).copied())
            .filter(|id| self.users.contains_key(id))
            .ok_or_else(|| format!("no user `{}`", user.email))
    }

    fn organization_id(&self, ids: &Ids, o: &super::OrganizationRef) -> Result<i64, String> {
        o.id.or_else(|| ids.organizations.get(&o.customer).copied())
            .filter(|id| self.organizations.contains_key(id))
            .ok_or_else(|| format!("no organization for `{}`", o.customer))
    }

    fn team_id(&self, ids: &Ids, t: &TeamRef) -> Result<(i64, i64), String> {
        let organization = self.organization_id(ids, &t.organization)?;
        let team =
            t.id.or_else(|| {
                ids.teams
                    .get(&(t.organization.customer.clone(), t.name.clone()))
                    .copied()
            })
            .ok_or_else(|| format!("no team `{}`", t.name))?;
        Ok((organization, team))
    }

    fn role(&self, kind: RoleKind, name: &str) -> Result<i64, String> {
        self.roles.id(kind, name).map_err(|e| e.to_string())
    }

    /// Carries out one step as Make would (manual steps do nothing).
    pub fn execute(&mut self, step: &Step, ids: &mut Ids) -> Result<(), String> {
        if step.action.is_call() {
            self.calls += 1;
        }
        let owner = self.role(RoleKind::Organization, "Owner")?;
        match &step.action {
            Action::CreateUser { email, name } => {
                let id = self.insert_user(email, name.clone(), None)?;
                ids.users.insert(email.to_lowercase(), id);
            }
            Action::CreateOrganization {
                organization,
                owner: owner_ref,
                license,
            } => {
                let user = self.user_id(ids, owner_ref)?;
                let id = self.add_organization(&organization.name, wire_license(license), user)?;
                ids.organizations.insert(organization.customer.clone(), id);
            }
            Action::SetLicense {
                organization,
                license,
                ..
            } => {
                let id = self.organization_id(ids, organization)?;
                if let Some(o) = self.organizations.get_mut(&id) {
                    o.license = wire_license(license);
                }
            }
            Action::SetOrganizationRole {
                organization,
                user,
                role,
                ..
            } => {
                let id = self.organization_id(ids, organization)?;
                let user = self.user_id(ids, user)?;
                if role.id == owner {
                    return Err("a role call cannot make an owner".to_owned());
                }
                let o = self.organizations.get_mut(&id).ok_or("no organization")?;
                if o.members.get(&user) == Some(&owner) {
                    return Err("a role call cannot change the owner's role".to_owned());
                }
                o.members.insert(user, role.id);
            }
            Action::RemoveFromOrganization { organization, user } => {
                let id = self.organization_id(ids, organization)?;
                let user = self.user_id(ids, user)?;
                let o = self.organizations.get_mut(&id).ok_or("no organization")?;
                match o.members.get(&user) {
                    None => return Err("the user to remove is not a member".to_owned()),
                    Some(role) if *role == owner => {
                        return Err("the owner cannot be removed".to_owned());
                    }
                    Some(_) => {
                        o.members.remove(&user);
                    }
                }
            }
            Action::TransferOwnership {
                organization, user, ..
            } => {
                let id = self.organization_id(ids, organization)?;
                let user = self.user_id(ids, user)?;
                let admin = self.role(RoleKind::Organization, "Admin")?;
                let o = self.organizations.get_mut(&id).ok_or("no organization")?;
                if !o.members.contains_key(&user) {
                    return Err("the new owner is not a member".to_owned());
                }
                for role in o.members.values_mut() {
                    if *role == owner {
                        *role = admin;
                    }
                }
                o.members.insert(user, owner);
            }
            Action::CreateTeam {
                team,
                admin,
                admin_role,
            } => {
                let organization = self.organization_id(ids, &team.organization)?;
                let admin = match admin {
                    Some(a) => Some(self.user_id(ids, a)?),
                    None => None,
                };
                let team_id = self.fresh();
                let o = self
                    .organizations
                    .get_mut(&organization)
                    .ok_or("no organization")?;
                let mut members = BTreeMap::new();
                if let Some(admin) = admin {
                    if !o.members.contains_key(&admin) {
                        return Err("the team admin is not a member of the organization".to_owned());
                    }
                    members.insert(admin, admin_role.as_ref().map_or(0, |r| r.id));
                }
                o.teams.insert(
                    team_id,
                    Team {
                        name: team.name.clone(),
                        members,
                    },
                );
                ids.teams.insert(
                    (team.organization.customer.clone(), team.name.clone()),
                    team_id,
                );
            }
            Action::SetTeamRole {
                team, user, role, ..
            } => {
                let (organization, team) = self.team_id(ids, team)?;
                let user = self.user_id(ids, user)?;
                let o = self
                    .organizations
                    .get_mut(&organization)
                    .ok_or("no organization")?;
                if !o.members.contains_key(&user) {
                    return Err("the user is not a member of the team's organization".to_owned());
                }
                let t = o.teams.get_mut(&team).ok_or("no team")?;
                t.members.insert(user, role.id);
            }
            Action::SetInstanceRole { user, role, .. } => {
                let user = self.user_id(ids, user)?;
                if let Some(u) = self.users.get_mut(&user) {
                    u.instance_role = role.as_ref().map(|r| r.id);
                }
            }
            Action::Manual { .. } => {}
        }
        Ok(())
    }

    fn fresh(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// A planned license as Make stores it.
fn wire_license(license: &super::PlanLicense) -> serde_json::Map<String, serde_json::Value> {
    match license.0.to_json() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The name Make shows for a user made without one: the address's local part.
fn display_name(email: &str) -> String {
    email.split('@').next().unwrap_or(email).to_owned()
}
