//! The planner: desired state (from the program at an instant) against observed state (from
//! the instance) → the fewest steps that close the gap, ordered by their dependencies.
//!
//! Per customer, with `O` its organization on the instance:
//! - every person the customer needs who has no user on the instance: one `create_user`
//!   (shared by every customer and staff member naming the address);
//! - no `O`: one `create_organization` (its license and owner in the same call), one
//!   `set_organization_role` per other person, one `create_team` per team (its first admin in
//!   the same call) and one `set_team_role` per other team member;
//! - `O` exists: one `set_license` when any key differs (the complete object, once); when the
//!   owner differs, the new owner made a member (if not one), one `transfer_ownership`, then the
//!   previous owner's role put right (Make leaves them Admin); one `set_organization_role` per
//!   person whose role differs; missing teams and team roles as above.
//!
//! People on the instance the policy does not name are left alone (charter never removes
//! anyone), except a previous owner no longer named, who is left a Member after the transfer.
//! Nothing is ever deleted.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use super::observed::{Observed, ObservedOrganization, ObservedUser};
use super::{
    Action, Change, CustomerPlan, OrganizationRef, Plan, PlanError, PlanLicense, PlannedTransition,
    Reads, RoleRef, StaffPlan, Step, TeamRef, UserRef,
};
use crate::api::roles::RoleKind;
use crate::compile::customer::{Cause, Desired, History, desired};
use crate::model::customer::{Customer, OrgRole, TeamRole};
use crate::model::license::LicenseValue;
use crate::model::program::Program;

/// What charter's state remembers, as the planner needs it.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Customer key → organization id.
    pub organizations: BTreeMap<String, i64>,
    /// Customer key → the lifecycle state last recorded.
    pub states: BTreeMap<String, String>,
    /// Customer key → recorded transitions and pending requests.
    pub histories: BTreeMap<String, History>,
    /// Customer key → what charter last applied.
    pub applied: BTreeMap<String, Snapshot>,
    /// Staff address → what charter last applied.
    pub staff: BTreeMap<String, StaffSnapshot>,
}

/// What charter last applied to a customer's organization: how drift is told from a policy
/// change (a live value that is not the one applied was changed by hand).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub license: PlanLicense,
    pub owner: String,
    /// Address → Make's organization role name.
    pub roles: BTreeMap<String, String>,
    /// Team → address → Make's team role name.
    pub teams: BTreeMap<String, BTreeMap<String, String>>,
}

/// What charter last applied to a staff member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffSnapshot {
    pub role: Option<String>,
    /// Option words, sorted.
    pub options: Vec<String>,
}

/// Make's name for an organization role.
pub(crate) fn organization_role_name(role: OrgRole) -> &'static str {
    match role {
        OrgRole::Owner => "Owner",
        OrgRole::Admin => "Admin",
        OrgRole::Member => "Member",
    }
}

/// Make's name for a team role.
pub(crate) fn team_role_name(role: TeamRole) -> &'static str {
    match role {
        TeamRole::Admin => "Team Admin",
        TeamRole::Member => "Team Member",
        TeamRole::Operator => "Team Operator",
        TeamRole::Monitor => "Team Monitoring",
    }
}

/// The instance-level role that only a system administrator may grant.
const SYSTEM_ADMINISTRATOR: &str = "SA";

/// Where steps go, by kind, when several are ready at once (people read plans in this order).
fn rank(action: &Action) -> u8 {
    match action {
        Action::CreateUser { .. } => 0,
        Action::CreateOrganization { .. } => 1,
        Action::SetLicense { .. } => 2,
        Action::SetOrganizationRole { .. } => 3,
        Action::TransferOwnership { .. } | Action::RemoveFromOrganization { .. } => 4,
        Action::CreateTeam { .. } => 5,
        Action::SetTeamRole { .. } => 6,
        Action::SetInstanceRole { .. } => 7,
        Action::Manual { .. } => 8,
    }
}

/// Who is asking: the instance's URL for the plan and the token's user (to foresee Make's
/// refusals of instance roles above the token's own).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub instance: String,
    pub token_user: Option<i64>,
    /// Customers whose organization was created by the apply this plan verifies: where the
    /// token's user is a member because Make put them there, not because anyone chose to.
    pub created: BTreeSet<String>,
}

struct Planner<'a> {
    program: &'a Program,
    observed: &'a Observed,
    context: &'a Context,
    /// Lower-case address → user (deleted users left out).
    users: HashMap<String, &'a ObservedUser>,
    steps: Vec<Step>,
    /// Lower-case addresses with a `create_user` step.
    creating: BTreeSet<String>,
    errors: Vec<PlanError>,
    reads: Reads,
}

/// Makes the plan that takes the instance from `observed` to what `program` wants at `at`. Its
/// `id` is empty until [`Plan::seal`] (a digest of a large plan costs more than the diff).
pub fn plan(
    program: &Program,
    at: i64,
    memory: &Memory,
    observed: &Observed,
    context: &Context,
) -> Result<Plan, Vec<PlanError>> {
    let draft = draft(program, at, memory, observed, context);
    if !draft.errors.is_empty() {
        return Err(draft.errors);
    }
    Ok(Plan {
        version: super::PLAN_VERSION,
        id: String::new(),
        at,
        instance: context.instance.clone(),
        policy: None,
        steps: order(draft.steps),
        customers: draft.customers,
        staff: draft.staff,
        reads: draft.reads,
        warnings: draft.warnings,
        reading: None,
    })
}

/// The organizations a plan of `observed` would act on, or could not plan: those of the
/// customers with a step, a transition or an error (their linked organization, or the
/// organizations of their name), and linked organizations no longer named as their customer
/// (renamed by hand, or someone else's now: whether charter may touch them depends on who owns
/// them). A plan made from remembered memberships reads these back before it is made for good.
pub fn touched(
    program: &Program,
    at: i64,
    memory: &Memory,
    observed: &Observed,
    context: &Context,
) -> BTreeSet<i64> {
    let draft = draft(program, at, memory, observed, context);
    let with_steps: BTreeSet<&str> = draft.steps.iter().map(|s| s.subject.as_str()).collect();
    let mut touched: BTreeSet<i64> = draft
        .customers
        .iter()
        .filter(|c| with_steps.contains(c.key.as_str()) || !c.transitions.is_empty())
        .filter_map(|c| c.organization)
        .collect();
    for customer in &program.customers {
        if let Some(&id) = memory.organizations.get(&customer.key)
            && observed
                .organization(id)
                .is_some_and(|o| o.name != customer.name)
        {
            touched.insert(id);
        }
    }
    let failed: BTreeSet<&str> = draft.errors.iter().map(|e| e.subject.as_str()).collect();
    for customer in program
        .customers
        .iter()
        .filter(|c| failed.contains(c.key.as_str()))
    {
        match memory.organizations.get(&customer.key) {
            Some(&id) => {
                touched.insert(id);
            }
            None => touched.extend(
                observed
                    .organizations
                    .iter()
                    .filter(|o| o.name == customer.name)
                    .map(|o| o.id),
            ),
        }
    }
    touched
}

/// What planning gives before its errors decide: the steps (unordered), each customer's and
/// staff member's bookkeeping, the reads, the warnings, and the errors.
struct Draft {
    steps: Vec<Step>,
    customers: Vec<CustomerPlan>,
    staff: Vec<StaffPlan>,
    reads: Reads,
    warnings: Vec<String>,
    errors: Vec<PlanError>,
}

fn draft(
    program: &Program,
    at: i64,
    memory: &Memory,
    observed: &Observed,
    context: &Context,
) -> Draft {
    let users = observed
        .users
        .iter()
        .filter(|u| !u.deleted)
        .map(|u| (u.email.to_lowercase(), u))
        .collect();
    let mut planner = Planner {
        program,
        observed,
        context,
        users,
        steps: Vec::new(),
        creating: BTreeSet::new(),
        errors: Vec::new(),
        reads: Reads::default(),
    };
    if let Some(id) = context.token_user
        && let Some(user) = observed.user(id)
    {
        planner.reads.users.insert(user.id, user.fingerprint());
    }

    // Organizations not linked to any customer, by name: candidates for adoption.
    let linked: BTreeSet<i64> = memory.organizations.values().copied().collect();
    let mut unlinked: HashMap<&str, Vec<&ObservedOrganization>> = HashMap::new();
    for o in &observed.organizations {
        if !o.deleted && !linked.contains(&o.id) {
            unlinked.entry(o.name.as_str()).or_default().push(o);
        }
    }

    let empty = History::default();
    let mut customers = Vec::with_capacity(program.customers.len());
    let mut warnings = Vec::new();
    for customer in &program.customers {
        let history = memory.histories.get(&customer.key).unwrap_or(&empty);
        let desired = desired(program, customer, history, at);
        let (organization, adopt) = match memory.organizations.get(&customer.key) {
            Some(&id) => match observed.organization(id).filter(|o| !o.deleted) {
                Some(o) => {
                    let applied = memory.applied.get(&customer.key);
                    if !planner.looks_like(customer, &desired, o, applied) {
                        planner.errors.push(planner.foreign(customer, o));
                        continue;
                    }
                    (Some(o), false)
                }
                None => {
                    warnings.push(format!(
                        "organization {id} of customer `{}` is no longer on the instance; the \
                         plan creates it again",
                        customer.key
                    ));
                    (None, false)
                }
            },
            None => match unlinked.get(customer.name.as_str()).map(Vec::as_slice) {
                None | Some([]) => (None, false),
                Some([o]) => {
                    if planner.adoptable(customer, &desired, o) {
                        (Some(*o), true)
                    } else {
                        planner.errors.push(PlanError {
                            subject: customer.key.clone(),
                            message: format!(
                                "organization `{}` (id {}) already exists on the instance, but \
                                 charter's state does not link it to this customer and its owner \
                                 is not `{}`",
                                o.name, o.id, customer.owner
                            ),
                            help: Some(
                                "link it with `charter import`, or rename the customer's \
                                 organization"
                                    .to_owned(),
                            ),
                        });
                        continue;
                    }
                }
                Some(several) => {
                    let ids: Vec<String> = several.iter().map(|o| o.id.to_string()).collect();
                    planner.errors.push(PlanError {
                        subject: customer.key.clone(),
                        message: format!(
                            "{} organizations on the instance are named `{}` (ids {}), and \
                             charter's state links none of them to this customer",
                            several.len(),
                            customer.name,
                            ids.join(", ")
                        ),
                        help: Some("link the right one with `charter import`".to_owned()),
                    });
                    continue;
                }
            },
        };
        if let Some(o) = organization {
            planner.reads.organizations.insert(o.id, o.fingerprint());
        }
        let recorded = memory.states.get(&customer.key).cloned();
        let previous = memory.applied.get(&customer.key);
        let snapshot = planner.customer(customer, &desired, organization, previous);
        planner.notifications(customer, &desired, recorded.as_deref(), organization);
        let transitions = desired
            .walk
            .fired
            .iter()
            .filter(|f| f.cause != Cause::Recorded)
            .map(|f| PlannedTransition {
                name: f.transition.clone(),
                from: f.from.clone(),
                to: f.to.clone(),
                due: f.at,
                cause: f.cause.to_string(),
            })
            .collect();
        customers.push(CustomerPlan {
            key: customer.key.clone(),
            name: customer.name.clone(),
            organization: organization.map(|o| o.id),
            adopt,
            recorded,
            state: desired.walk.state.clone(),
            transitions,
            snapshot: (previous != Some(&snapshot)).then_some(snapshot),
        });
    }

    let staff = planner.staff(memory, context);
    Draft {
        steps: planner.steps,
        customers,
        staff,
        reads: planner.reads,
        warnings,
        errors: planner.errors,
    }
}

/// Orders steps so that each comes after what it depends on; among the steps ready at once,
/// by kind, then in the order they were planned. Dependencies on steps not in the plan are
/// dropped (they name nothing to wait for).
fn order(steps: Vec<Step>) -> Vec<Step> {
    let index: HashMap<String, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let mut waiting: Vec<usize> = vec![0; steps.len()];
    let mut unlocks: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for dep in &step.depends_on {
            if let Some(&d) = index.get(dep) {
                if let Some(w) = waiting.get_mut(i) {
                    *w += 1;
                }
                if let Some(u) = unlocks.get_mut(d) {
                    u.push(i);
                }
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<(u8, usize)>> = steps
        .iter()
        .enumerate()
        .filter(|(i, _)| waiting.get(*i) == Some(&0))
        .map(|(i, s)| Reverse((rank(&s.action), i)))
        .collect();
    let mut sequence = Vec::with_capacity(steps.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        sequence.push(i);
        for &next in unlocks.get(i).map(Vec::as_slice).unwrap_or_default() {
            if let Some(w) = waiting.get_mut(next) {
                *w -= 1;
                if *w == 0
                    && let Some(s) = steps.get(next)
                {
                    ready.push(Reverse((rank(&s.action), next)));
                }
            }
        }
    }
    // The planner never makes a cycle; were one there, its steps would be left out here, so
    // keep them (at the end) rather than lose them.
    let placed: BTreeSet<usize> = sequence.iter().copied().collect();
    sequence.extend((0..steps.len()).filter(|i| !placed.contains(i)));
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    sequence
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .map(|mut s| {
            s.depends_on.retain(|d| index.contains_key(d));
            s
        })
        .collect()
}

/// A name for a user charter creates: the staff name when the policy gives one, otherwise the
/// address's local part.
fn display_name(email: &str) -> String {
    email.split('@').next().unwrap_or(email).to_owned()
}

/// An ownership transfer in the plan: its step, and the previous owner (lower case), whom Make
/// leaves an Admin.
#[derive(Default)]
struct Transfer {
    step: Option<String>,
    previous_owner: Option<String>,
}

impl Transfer {
    /// The transfer step, as a dependency of a step that must come after it (`after`).
    fn after(&self, after: bool) -> Option<String> {
        if after { self.step.clone() } else { None }
    }
}

/// Whether the policy names `email` (lower case) in the organization: its owner or a role.
fn named(desired: &Desired, email: &str) -> bool {
    email == desired.owner.to_lowercase()
        || desired.roles.keys().any(|e| e.eq_ignore_ascii_case(email))
}

impl<'a> Planner<'a> {
    fn role(&mut self, subject: &str, kind: RoleKind, name: &str) -> RoleRef {
        match self.observed.roles.id(kind, name) {
            Ok(id) => RoleRef {
                // Make's spelling of the name, whatever case the policy wrote it in.
                name: self
                    .observed
                    .roles
                    .name(kind, id)
                    .unwrap_or(name)
                    .to_owned(),
                id,
            },
            Err(e) => {
                let error = PlanError {
                    subject: subject.to_owned(),
                    message: e.to_string(),
                    help: Some(e.help()),
                };
                if !self.errors.contains(&error) {
                    self.errors.push(error);
                }
                RoleRef {
                    name: name.to_owned(),
                    id: 0,
                }
            }
        }
    }

    fn observed_user(&self, email: &str) -> Option<&'a ObservedUser> {
        self.users.get(&email.to_lowercase()).copied()
    }

    /// The user with this address, and the step creating it when it does not exist yet.
    fn user(
        &mut self,
        subject: &str,
        email: &str,
        name: Option<&str>,
    ) -> (UserRef, Option<String>) {
        if let Some(user) = self.observed_user(email) {
            self.reads.users.insert(user.id, user.fingerprint());
            return (
                UserRef {
                    email: user.email.clone(),
                    id: Some(user.id),
                },
                None,
            );
        }
        let key = email.to_lowercase();
        let id = format!("user:{key}");
        if self.creating.insert(key.clone()) {
            self.reads.absent.users.insert(key);
            self.steps.push(Step {
                id: id.clone(),
                subject: subject.to_owned(),
                action: Action::CreateUser {
                    email: email.to_owned(),
                    name: name.map_or_else(|| display_name(email), str::to_owned),
                },
                depends_on: Vec::new(),
                drift: false,
            });
        }
        (
            UserRef {
                email: email.to_owned(),
                id: None,
            },
            Some(id),
        )
    }

    fn push(
        &mut self,
        id: String,
        subject: &str,
        action: Action,
        depends_on: Vec<Option<String>>,
        drift: bool,
    ) {
        self.steps.push(Step {
            id,
            subject: subject.to_owned(),
            action,
            depends_on: depends_on.into_iter().flatten().collect(),
            drift,
        });
    }

    /// An organization found by name may be adopted when its owner is one charter would have
    /// made: the customer's owner or the dummy owner.
    fn adoptable(&self, customer: &Customer, desired: &Desired, o: &ObservedOrganization) -> bool {
        let owner = self.owner_of(o);
        owner.is_some_and(|owner| {
            let owner = owner.email.to_lowercase();
            owner == customer.owner.to_lowercase()
                || owner == desired.owner.to_lowercase()
                || self
                    .program
                    .instance
                    .dummy_owner
                    .as_ref()
                    .is_some_and(|d| d.to_lowercase() == owner)
        })
    }

    /// A linked organization still looks like the customer's when it has the customer's name,
    /// or an owner charter would have made (see [`Planner::adoptable`]) or last applied. One
    /// that has neither is not changed: after a state was pointed at another instance, or an
    /// organization was given away by hand, its id names someone else's organization.
    fn looks_like(
        &self,
        customer: &Customer,
        desired: &Desired,
        o: &ObservedOrganization,
        applied: Option<&Snapshot>,
    ) -> bool {
        o.name == customer.name
            || self.adoptable(customer, desired, o)
            || applied.is_some_and(|a| {
                self.owner_of(o)
                    .is_some_and(|owner| owner.email.eq_ignore_ascii_case(&a.owner))
            })
    }

    /// The refusal of a linked organization that no longer looks like the customer's.
    fn foreign(&self, customer: &Customer, o: &ObservedOrganization) -> PlanError {
        let owner = self
            .owner_of(o)
            .map_or_else(|| "nobody".to_owned(), |u| format!("`{}`", u.email));
        PlanError {
            subject: customer.key.clone(),
            message: format!(
                "organization {} linked to this customer is now `{}` owned by {owner}, not the \
                 customer's `{}` owned by `{}`: nothing in it is changed",
                o.id, o.name, customer.name, customer.owner
            ),
            help: Some(format!(
                "if the state belongs to another instance, use another state file (`--state \
                 FILE`) and `charter import`; if the link is stale, forget it and match the \
                 customer by name and owner again with `charter import --relink {}`",
                customer.key
            )),
        }
    }

    fn owner_of(&self, o: &ObservedOrganization) -> Option<&'a ObservedUser> {
        let owner_role = self
            .observed
            .roles
            .id(RoleKind::Organization, "Owner")
            .ok()?;
        o.members
            .iter()
            .find(|m| m.role_id == owner_role)
            .and_then(|m| self.observed.user(m.user_id))
    }

    /// Plans one customer; returns what the state records as applied once it is done.
    fn customer(
        &mut self,
        customer: &Customer,
        desired: &Desired,
        organization: Option<&ObservedOrganization>,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let key = customer.key.as_str();
        let license = license_json(desired);
        let snapshot = Snapshot {
            license: license.clone(),
            owner: desired.owner.clone(),
            roles: desired
                .roles
                .iter()
                .map(|(email, role)| (email.clone(), organization_role_name(*role).to_owned()))
                .collect(),
            teams: desired
                .teams
                .iter()
                .map(|(team, people)| {
                    let people = people
                        .iter()
                        .map(|(email, role)| (email.clone(), team_role_name(*role).to_owned()))
                        .collect();
                    (team.clone(), people)
                })
                .collect(),
        };
        let org_ref = OrganizationRef {
            customer: key.to_owned(),
            name: customer.name.clone(),
            id: organization.map(|o| o.id),
            live_name: organization.map(|o| o.name.clone()),
        };
        // The step (if any) that makes each address a member of the organization.
        let mut membership: BTreeMap<String, String> = BTreeMap::new();
        match organization {
            None => self.new_organization(key, desired, &license, &org_ref, &mut membership),
            Some(o) => self.existing_organization(
                key,
                desired,
                &license,
                &org_ref,
                o,
                previous,
                &mut membership,
            ),
        }
        self.teams(key, desired, &org_ref, organization, previous, &membership);
        snapshot
    }

    fn new_organization(
        &mut self,
        key: &str,
        desired: &Desired,
        license: &PlanLicense,
        org_ref: &OrganizationRef,
        membership: &mut BTreeMap<String, String>,
    ) {
        let (owner, owner_step) = self.user(key, &desired.owner, None);
        // Make lets names repeat: those of this name there are now (linked to another customer,
        // say) are known, and any other would be new.
        let homonyms = self
            .observed
            .organizations
            .iter()
            .filter(|o| !o.deleted && o.name == org_ref.name)
            .map(|o| o.id);
        self.reads
            .absent
            .organizations
            .entry(org_ref.name.clone())
            .or_default()
            .extend(homonyms);
        let create = format!("organization:{key}");
        self.push(
            create.clone(),
            key,
            Action::CreateOrganization {
                organization: org_ref.clone(),
                owner,
                license: license.clone(),
            },
            vec![owner_step],
            false,
        );
        membership.insert(desired.owner.to_lowercase(), create.clone());
        for (email, role) in &desired.roles {
            if email.eq_ignore_ascii_case(&desired.owner) {
                continue;
            }
            let (user, user_step) = self.user(key, email, None);
            let role = self.role(key, RoleKind::Organization, organization_role_name(*role));
            let id = format!("role:{key}:{}", email.to_lowercase());
            self.push(
                id.clone(),
                key,
                Action::SetOrganizationRole {
                    organization: org_ref.clone(),
                    user,
                    role,
                    from: None,
                },
                vec![Some(create.clone()), user_step],
                false,
            );
            membership.insert(email.to_lowercase(), id);
        }
    }

    /// Plans an organization that exists: its license, its owner, everyone's role, and who
    /// leaves (see the module documentation). `membership` gets the step (if any) that makes
    /// each address a member.
    #[allow(clippy::too_many_arguments)]
    fn existing_organization(
        &mut self,
        key: &str,
        desired: &Desired,
        license: &PlanLicense,
        org_ref: &OrganizationRef,
        o: &ObservedOrganization,
        previous: Option<&Snapshot>,
        membership: &mut BTreeMap<String, String>,
    ) {
        self.license_step(key, license, org_ref, o, previous);
        let mut current = self.current_roles(o);
        let owner_now = self.owner_of(o).map(|u| u.email.clone());
        let transfer = self.ownership(
            key,
            desired,
            org_ref,
            owner_now.as_deref(),
            previous,
            &mut current,
            membership,
        );
        self.other_roles(
            key, desired, org_ref, &current, previous, &transfer, membership,
        );
        let leaving = self.creator_leaves(key, desired, org_ref, &current, &transfer);
        self.previous_owner_stays_member(key, desired, org_ref, &transfer, leaving.as_deref());
    }

    /// The license: one call with the complete object when any key differs.
    fn license_step(
        &mut self,
        key: &str,
        license: &PlanLicense,
        org_ref: &OrganizationRef,
        o: &ObservedOrganization,
        previous: Option<&Snapshot>,
    ) {
        let changes = license_changes(license, &o.license.0, previous.map(|p| &p.license));
        if changes.is_empty() {
            return;
        }
        let drift = changes.iter().all(|c| c.drift);
        self.push(
            format!("license:{key}"),
            key,
            Action::SetLicense {
                organization: org_ref.clone(),
                license: license.clone(),
                changes,
            },
            Vec::new(),
            drift,
        );
    }

    /// Who holds which role now: lower-case address → Make's role name.
    fn current_roles(&self, o: &ObservedOrganization) -> BTreeMap<String, String> {
        let mut current: BTreeMap<String, String> = BTreeMap::new();
        for m in &o.members {
            if let Some(user) = self.observed.user(m.user_id) {
                let name = m
                    .role
                    .clone()
                    .or_else(|| {
                        self.observed
                            .roles
                            .name(RoleKind::Organization, m.role_id)
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                current.insert(user.email.to_lowercase(), name);
            }
        }
        current
    }

    /// Ownership: when the owner differs, the new owner made a member (if not one) and the
    /// transfer; `current` then says what Make leaves (the previous owner an Admin).
    #[allow(clippy::too_many_arguments)]
    fn ownership(
        &mut self,
        key: &str,
        desired: &Desired,
        org_ref: &OrganizationRef,
        owner_now: Option<&str>,
        previous: Option<&Snapshot>,
        current: &mut BTreeMap<String, String>,
        membership: &mut BTreeMap<String, String>,
    ) -> Transfer {
        let owner_key = desired.owner.to_lowercase();
        if owner_now.map(str::to_lowercase) == Some(owner_key.clone()) {
            return Transfer::default();
        }
        let (user, user_step) = self.user(key, &desired.owner, None);
        let mut deps = vec![user_step];
        if !current.contains_key(&owner_key) {
            let role = self.role(key, RoleKind::Organization, "Member");
            let id = format!("role:{key}:{owner_key}");
            self.push(
                id.clone(),
                key,
                Action::SetOrganizationRole {
                    organization: org_ref.clone(),
                    user: user.clone(),
                    role,
                    from: None,
                },
                deps.clone(),
                false,
            );
            membership.insert(owner_key.clone(), id.clone());
            deps.push(Some(id));
        }
        let id = format!("transfer:{key}");
        let drift = previous
            .is_some_and(|p| Some(p.owner.to_lowercase()) != owner_now.map(str::to_lowercase));
        self.push(
            id.clone(),
            key,
            Action::TransferOwnership {
                organization: org_ref.clone(),
                user,
                from: owner_now.map(str::to_owned),
            },
            deps,
            drift,
        );
        let mut previous_owner = None;
        if let Some(before) = owner_now {
            // Make leaves the previous owner an Admin.
            current.insert(before.to_lowercase(), "Admin".to_owned());
            previous_owner = Some(before.to_lowercase());
        }
        current.insert(owner_key, "Owner".to_owned());
        Transfer {
            step: Some(id),
            previous_owner,
        }
    }

    /// Everyone else's role: one call per person whose role differs.
    #[allow(clippy::too_many_arguments)]
    fn other_roles(
        &mut self,
        key: &str,
        desired: &Desired,
        org_ref: &OrganizationRef,
        current: &BTreeMap<String, String>,
        previous: Option<&Snapshot>,
        transfer: &Transfer,
        membership: &mut BTreeMap<String, String>,
    ) {
        let owner_key = desired.owner.to_lowercase();
        let was_drift = |email: &str, role: Option<&str>| {
            previous.is_some_and(|p| {
                p.roles
                    .iter()
                    .find(|(e, _)| e.eq_ignore_ascii_case(email))
                    .map(|(_, r)| r.as_str())
                    != role
            })
        };
        for (email, role) in &desired.roles {
            let email_key = email.to_lowercase();
            if email_key == owner_key {
                continue;
            }
            let want = organization_role_name(*role);
            let now = current.get(&email_key).map(String::as_str);
            if now == Some(want) {
                continue;
            }
            let (user, user_step) = self.user(key, email, None);
            let role = self.role(key, RoleKind::Organization, want);
            let id = format!("role:{key}:{email_key}");
            let after_transfer = transfer.previous_owner.as_deref() == Some(email_key.as_str());
            // Drift: the live role (or its absence: a member removed by hand) is not the one
            // charter last applied.
            let drift = !after_transfer && was_drift(email, now);
            let from = if after_transfer {
                Some("Owner".to_owned())
            } else {
                now.map(str::to_owned)
            };
            self.push(
                id.clone(),
                key,
                Action::SetOrganizationRole {
                    organization: org_ref.clone(),
                    user,
                    role,
                    from,
                },
                vec![user_step, transfer.after(after_transfer)],
                drift,
            );
            if now.is_none() {
                membership.insert(email_key, id);
            }
        }
    }

    /// The token's own user in an organization this apply created: a member because Make made
    /// them one (its Owner, when `userOrgAdmin` makes the user an Admin). Unless the policy
    /// names them, they leave — there only: anywhere else the membership may be someone's
    /// choice, and charter removes no one. Returns the lower-case address of who leaves.
    fn creator_leaves(
        &mut self,
        key: &str,
        desired: &Desired,
        org_ref: &OrganizationRef,
        current: &BTreeMap<String, String>,
        transfer: &Transfer,
    ) -> Option<String> {
        let user = self
            .context
            .token_user
            .filter(|_| self.context.created.contains(key))
            .and_then(|id| self.observed.user(id))
            .filter(|u| !named(desired, &u.email.to_lowercase()))?;
        let email = user.email.to_lowercase();
        if current.get(&email).is_none_or(|role| role == "Owner") {
            return None;
        }
        let after_transfer = transfer.previous_owner.as_deref() == Some(email.as_str());
        self.push(
            format!("leave:{key}:{email}"),
            key,
            Action::RemoveFromOrganization {
                organization: org_ref.clone(),
                user: UserRef {
                    email: user.email.clone(),
                    id: Some(user.id),
                },
            },
            vec![transfer.after(after_transfer)],
            false,
        );
        Some(email)
    }

    /// A previous owner the policy no longer names is left a Member.
    fn previous_owner_stays_member(
        &mut self,
        key: &str,
        desired: &Desired,
        org_ref: &OrganizationRef,
        transfer: &Transfer,
        leaving: Option<&str>,
    ) {
        let Some(before) = &transfer.previous_owner else {
            return;
        };
        if named(desired, before) || leaving == Some(before.as_str()) {
            return;
        }
        let Some(user) = self.observed_user(before) else {
            return;
        };
        let role = self.role(key, RoleKind::Organization, "Member");
        self.push(
            format!("role:{key}:{before}"),
            key,
            Action::SetOrganizationRole {
                organization: org_ref.clone(),
                user: UserRef {
                    email: user.email.clone(),
                    id: Some(user.id),
                },
                role,
                from: Some("Owner".to_owned()),
            },
            vec![transfer.step.clone()],
            false,
        );
    }

    fn teams(
        &mut self,
        key: &str,
        desired: &Desired,
        org_ref: &OrganizationRef,
        organization: Option<&ObservedOrganization>,
        previous: Option<&Snapshot>,
        membership: &BTreeMap<String, String>,
    ) {
        let org_step = if organization.is_none() {
            Some(format!("organization:{key}"))
        } else {
            None
        };
        for (team_name, people) in &desired.teams {
            let observed_team =
                organization.and_then(|o| o.teams.iter().find(|t| &t.name == team_name));
            let team_ref = TeamRef {
                organization: org_ref.clone(),
                name: team_name.clone(),
                id: observed_team.map(|t| t.id),
            };
            let mut current: BTreeMap<String, String> = BTreeMap::new();
            let mut team_step = None;
            let mut admin_in_create: Option<String> = None;
            match observed_team {
                Some(t) => {
                    for m in &t.members {
                        if let Some(user) = self.observed.user(m.user_id) {
                            let name = m
                                .role
                                .clone()
                                .or_else(|| {
                                    self.observed
                                        .roles
                                        .name(RoleKind::Team, m.role_id)
                                        .map(str::to_owned)
                                })
                                .unwrap_or_default();
                            current.insert(user.email.to_lowercase(), name);
                        }
                    }
                }
                None => {
                    // The first team admin comes with the team, in the same call.
                    let first_admin = people
                        .iter()
                        .find(|(_, role)| **role == TeamRole::Admin)
                        .map(|(email, _)| email.clone());
                    let (admin, admin_role, mut deps) = match &first_admin {
                        Some(email) => {
                            let (user, user_step) = self.user(key, email, None);
                            let role =
                                self.role(key, RoleKind::Team, team_role_name(TeamRole::Admin));
                            (
                                Some(user),
                                Some(role),
                                vec![user_step, membership.get(&email.to_lowercase()).cloned()],
                            )
                        }
                        None => (None, None, Vec::new()),
                    };
                    deps.push(org_step.clone());
                    if let Some(o) = organization {
                        self.reads
                            .absent
                            .teams
                            .entry(o.id)
                            .or_default()
                            .insert(team_name.clone());
                    }
                    let id = format!("team:{key}:{team_name}");
                    self.push(
                        id.clone(),
                        key,
                        Action::CreateTeam {
                            team: team_ref.clone(),
                            admin,
                            admin_role,
                        },
                        deps,
                        false,
                    );
                    team_step = Some(id);
                    admin_in_create = first_admin.map(|e| e.to_lowercase());
                }
            }
            for (email, role) in people {
                let email_key = email.to_lowercase();
                if admin_in_create.as_deref() == Some(email_key.as_str()) {
                    continue;
                }
                let want = team_role_name(*role);
                let now = current.get(&email_key).map(String::as_str);
                if now == Some(want) {
                    continue;
                }
                let drift = previous.is_some_and(|p| {
                    p.teams
                        .get(team_name)
                        .and_then(|t| t.iter().find(|(e, _)| e.eq_ignore_ascii_case(email)))
                        .map(|(_, r)| r.as_str())
                        != now
                });
                let (user, user_step) = self.user(key, email, None);
                let role = self.role(key, RoleKind::Team, want);
                self.push(
                    format!("team-role:{key}:{team_name}:{email_key}"),
                    key,
                    Action::SetTeamRole {
                        team: team_ref.clone(),
                        user,
                        role,
                        from: now.map(str::to_owned),
                    },
                    vec![
                        user_step,
                        team_step.clone(),
                        org_step.clone(),
                        membership.get(&email_key).cloned(),
                    ],
                    drift,
                );
            }
        }
    }

    /// The manual step of the deprovisioning recipe: silencing the former customer's
    /// notifications when ownership moves to the dummy owner, restoring them when it comes back.
    fn notifications(
        &mut self,
        customer: &Customer,
        desired: &Desired,
        recorded: Option<&str>,
        organization: Option<&ObservedOrganization>,
    ) {
        if organization.is_none() {
            return;
        }
        let lifecycle = &self.program.lifecycle;
        let from = recorded.unwrap_or(&lifecycle.initial);
        let to = desired.walk.state.as_str();
        if from == to {
            return;
        }
        let dummy = |state: &str| lifecycle.state(state).is_some_and(|s| s.owner_to_dummy);
        let people: Vec<&str> = std::iter::once(customer.owner.as_str())
            .chain(customer.admins.iter().map(String::as_str))
            .chain(customer.members.iter().map(String::as_str))
            .collect();
        let (what, verb) = match (dummy(from), dummy(to)) {
            (false, true) => ("silence", "turn off every e-mail notification"),
            (true, false) => ("restore", "turn the e-mail notifications back on"),
            _ => return,
        };
        let key = customer.key.as_str();
        let transfer = format!("transfer:{key}");
        // This customer's steps are the last ones planned.
        let planned = self
            .steps
            .iter()
            .rev()
            .take_while(|s| s.subject == key)
            .any(|s| s.id == transfer);
        let depends_on = if planned { vec![transfer] } else { Vec::new() };
        self.steps.push(Step {
            id: format!("manual:{key}:notifications"),
            subject: key.to_owned(),
            action: Action::Manual {
                what: format!(
                    "{what} the notifications of {} ({})",
                    customer.name,
                    people.join(", ")
                ),
                how: format!(
                    "Administration → Users → each of them → Login as user → Profile → \
                     Notifications: {verb}"
                ),
            },
            depends_on,
            drift: false,
        });
    }

    /// Plans the staff: users, instance roles, and the app options as manual steps.
    fn staff(&mut self, memory: &Memory, context: &Context) -> Vec<StaffPlan> {
        let token_role: Option<String> = context
            .token_user
            .and_then(|id| self.observed.user(id))
            .and_then(|u| {
                u.instance_role.clone().or_else(|| {
                    u.instance_role_id.and_then(|r| {
                        self.observed
                            .roles
                            .name(RoleKind::Instance, r)
                            .map(str::to_owned)
                    })
                })
            });
        let token_known = context
            .token_user
            .is_some_and(|id| self.observed.user(id).is_some());
        let mut plans = Vec::new();
        let program = self.program;
        for staff in &program.staff {
            let subject = format!("staff:{}", staff.email);
            let (user, user_step) = self.user(&subject, &staff.email, staff.name.as_deref());
            let observed = self.observed_user(&staff.email);
            let now: Option<String> = observed.and_then(|u| {
                u.instance_role.clone().or_else(|| {
                    u.instance_role_id.and_then(|r| {
                        self.observed
                            .roles
                            .name(RoleKind::Instance, r)
                            .map(str::to_owned)
                    })
                })
            });
            let previous = memory.staff.get(&staff.email);
            // A staff rule names a role as Make does, in any case: compare what it resolves to.
            let same = staff.role == now
                || match (
                    staff.role.as_deref(),
                    observed.and_then(|u| u.instance_role_id),
                ) {
                    (Some(name), Some(id)) => {
                        self.observed.roles.id(RoleKind::Instance, name) == Ok(id)
                    }
                    _ => false,
                };
            if !same {
                let role = staff
                    .role
                    .as_deref()
                    .map(|name| self.role(&subject, RoleKind::Instance, name));
                if token_known {
                    self.check_grant(
                        &subject,
                        token_role.as_deref(),
                        staff.role.as_deref(),
                        now.as_deref(),
                    );
                }
                let drift = previous.is_some_and(|p| p.role != now);
                self.push(
                    format!("instance-role:{}", staff.email.to_lowercase()),
                    &subject,
                    Action::SetInstanceRole {
                        user,
                        role,
                        from: now.clone(),
                    },
                    vec![user_step.clone()],
                    drift,
                );
            }
            let options: Vec<String> = {
                let mut o: Vec<String> =
                    staff.options.iter().map(|o| o.word().to_owned()).collect();
                o.sort();
                o.dedup();
                o
            };
            let before: Vec<String> = previous.map(|p| p.options.clone()).unwrap_or_default();
            let on: Vec<&str> = staff
                .options
                .iter()
                .filter(|o| !before.iter().any(|b| b == o.word()))
                .map(|o| o.label())
                .collect();
            let off: Vec<&str> = before
                .iter()
                .filter(|b| !options.contains(b))
                .filter_map(|b| crate::model::customer::AppOption::from_word(b))
                .map(|o| o.label())
                .collect();
            if !on.is_empty() || !off.is_empty() {
                let mut what = Vec::new();
                if !on.is_empty() {
                    what.push(format!("turn on {}", on.join(", ")));
                }
                if !off.is_empty() {
                    what.push(format!("turn off {}", off.join(", ")));
                }
                self.push(
                    format!("manual:staff:{}:options", staff.email.to_lowercase()),
                    &subject,
                    Action::Manual {
                        what: format!("{} for {}", what.join("; "), staff.email),
                        how: "Administration → Users → the user → Apps and Features".to_owned(),
                    },
                    vec![user_step],
                    false,
                );
            }
            plans.push(StaffPlan {
                email: staff.email.clone(),
                snapshot: Some(StaffSnapshot {
                    role: staff.role.clone(),
                    options,
                }),
            });
        }
        // Staff removed from the policy set: their instance role is taken away, their account
        // kept.
        for (email, _) in memory.staff.iter().filter(|(email, _)| {
            !program
                .staff
                .iter()
                .any(|s| s.email.eq_ignore_ascii_case(email))
        }) {
            let subject = format!("staff:{email}");
            if let Some(user) = self.observed_user(email) {
                self.reads.users.insert(user.id, user.fingerprint());
                if let Some(role_id) = user.instance_role_id {
                    let now = user.instance_role.clone().or_else(|| {
                        self.observed
                            .roles
                            .name(RoleKind::Instance, role_id)
                            .map(str::to_owned)
                    });
                    if token_known {
                        self.check_grant(&subject, token_role.as_deref(), None, now.as_deref());
                    }
                    self.push(
                        format!("instance-role:{}", email.to_lowercase()),
                        &subject,
                        Action::SetInstanceRole {
                            user: UserRef {
                                email: user.email.clone(),
                                id: Some(user.id),
                            },
                            role: None,
                            from: now,
                        },
                        Vec::new(),
                        false,
                    );
                }
            }
            plans.push(StaffPlan {
                email: email.clone(),
                snapshot: None,
            });
        }
        plans
    }

    /// Make lets a token grant or take away only instance roles up to its own: an Admin token
    /// cannot touch SA, and a token with neither role cannot touch any.
    fn check_grant(
        &mut self,
        subject: &str,
        token: Option<&str>,
        want: Option<&str>,
        now: Option<&str>,
    ) {
        let token_name = token.unwrap_or("no instance role");
        let refused = match token {
            Some(SYSTEM_ADMINISTRATOR) => None,
            Some("Admin") => [want, now]
                .into_iter()
                .flatten()
                .find(|r| *r == SYSTEM_ADMINISTRATOR),
            _ => want.or(now),
        };
        if let Some(role) = refused {
            self.errors.push(PlanError {
                subject: subject.to_owned(),
                message: format!(
                    "the instance role `{role}` is above this token's own (`{token_name}`): Make \
                     refuses to grant it or take it away"
                ),
                help: Some(
                    "use a token of a user with the SA role for this change, or grant the role \
                     by hand"
                        .to_owned(),
                ),
            });
        }
    }
}

/// The desired license as planned.
fn license_json(desired: &Desired) -> PlanLicense {
    PlanLicense(desired.license.clone())
}

/// The keys whose live value differs from the desired one, in catalog order; a change is drift
/// when the live value is not the one charter last applied.
fn license_changes(
    desired: &PlanLicense,
    live: &serde_json::Map<String, serde_json::Value>,
    applied: Option<&PlanLicense>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    // Make answers with the keys in catalog order: walk both in step, and look a key up only
    // where the order differs.
    let mut entries = live.iter();
    for (index, (parameter, want)) in desired.0.values().enumerate() {
        let have = match entries.next() {
            Some((key, value)) if key == parameter.name => Some(value),
            _ => live.get(parameter.name),
        };
        let have_value = have.and_then(|h| LicenseValue::from_json(parameter, h));
        if have_value == Some(want) {
            continue;
        }
        let drift = applied
            .and_then(|a| a.0.value(index))
            .is_some_and(|a| have_value != Some(a));
        changes.push(Change {
            key: super::LicenseKey(parameter),
            from: have.cloned(),
            to: want.to_json(),
            drift,
        });
    }
    changes
}
