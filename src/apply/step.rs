//! Carrying out one step: its call with every reference resolved to an id, sent through the
//! rate limiter, retried when that is safe, and looked up on the instance when its outcome is
//! unknown.
//!
//! Make has no idempotency keys. A create whose answer was lost may have been applied, so it is
//! never sent again before a read says it was not: a user is looked up by e-mail, an
//! organization by name (then confirmed by its owner, since names repeat), a team by name in
//! its organization. A transfer of ownership is checked the same way, since Make refuses a
//! transfer to the current owner. The other calls set a value (a license, a role) and are
//! harmless to repeat.
//!
//! A 429 is not a failure: it slows the shared limiter down and uses no attempt (see
//! `retry.rs`). Once the apply is asked to stop, a step sends no further call and waits out no
//! backoff: it ends [`Outcome::Interrupted`], its journal entry left in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, mpsc};
use tokio::time::Instant;

use super::Stop;
use super::limiter::{Limiter, Permit};
use super::retry::{Jitter, RetryPolicy};
use crate::api::wire::{License, NewOrganization, NewTeam, UserChanges};
use crate::api::{
    ApiError, ApiErrorKind, Client, OrganizationFilter, Pacing, RoleCategory, RoleKind, Roles,
    UserInvitation,
};

/// A step's call, every reference resolved to an id.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Call {
    CreateUser {
        email: String,
        name: String,
    },
    CreateOrganization {
        /// The customer it is for.
        customer: String,
        name: String,
        owner: i64,
        /// Complete, as sent.
        license: License,
    },
    SetLicense {
        organization: i64,
        license: License,
    },
    SetOrganizationRole {
        organization: i64,
        user: i64,
        role: i64,
    },
    TransferOwnership {
        organization: i64,
        user: i64,
    },
    RemoveFromOrganization {
        organization: i64,
        user: i64,
    },
    CreateTeam {
        organization: i64,
        name: String,
        admin: Option<i64>,
    },
    SetTeamRole {
        team: i64,
        user: i64,
        role: i64,
    },
    SetInstanceRole {
        user: i64,
        role: Option<i64>,
    },
}

impl Call {
    /// Whether reading the instance can tell that the call's effect is there already (for the
    /// calls that must not be repeated blindly).
    fn can_be_found(&self) -> bool {
        matches!(
            self,
            Call::CreateUser { .. }
                | Call::CreateOrganization { .. }
                | Call::CreateTeam { .. }
                | Call::TransferOwnership { .. }
                | Call::RemoveFromOrganization { .. }
        )
    }

    /// Whether a refusal may mean that the effect is there already: a second user with the
    /// address (409), a transfer to the current owner (400), a removal of someone no longer a
    /// member (400 or 404).
    fn refusal_may_mean_done(&self, error: &ApiError) -> bool {
        match self {
            Call::CreateUser { .. } => error.kind == ApiErrorKind::Rejected,
            Call::TransferOwnership { .. } => error.kind == ApiErrorKind::Rejected,
            Call::RemoveFromOrganization { .. } => {
                matches!(error.kind, ApiErrorKind::Rejected | ApiErrorKind::NotFound)
            }
            _ => false,
        }
    }
}

/// How a step starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Never begun: call.
    Fresh,
    /// Begun before and never finished (or finished as failed): its effect is unknown, so what
    /// can be found is looked for before any call.
    Unknown,
    /// The journal says it succeeded: only the id of what it created is read.
    Done,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    Done {
        /// The id of what it created.
        created: Option<i64>,
        /// The effect was found by reading, not confirmed by the call's answer.
        found: bool,
    },
    Failed {
        error: String,
        help: Option<String>,
    },
    /// The apply was asked to stop before the step's outcome was known: it sends nothing more,
    /// and its journal entry stays in flight for the next apply to find out by reading.
    Interrupted,
}

/// Why a read (or a lookup made of reads) gave no answer.
#[derive(Debug)]
enum Halt {
    Failed(ApiError),
    /// The apply was asked to stop.
    Stopped,
}

impl From<ApiError> for Halt {
    fn from(error: ApiError) -> Halt {
        Halt::Failed(error)
    }
}

/// What to do after a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    TryAgain,
    GiveUp,
    /// The apply was asked to stop while the call waited to be tried again.
    Stop,
}

impl Outcome {
    fn failed(error: &ApiError) -> Outcome {
        Outcome::Failed {
            error: error.to_string(),
            help: error.help(),
        }
    }
}

/// Organizations a lost create cannot have made.
#[derive(Clone, Debug, Default)]
pub(crate) struct KnownOrganizations {
    /// On the instance when the plan was made.
    pub existing: BTreeSet<i64>,
    /// Linked in the state: organization → customer.
    pub linked: BTreeMap<i64, String>,
}

impl KnownOrganizations {
    /// Whether organization `id` may be the one a create for `customer` made.
    fn may_be(&self, id: i64, customer: &str) -> bool {
        !self.existing.contains(&id) && self.linked.get(&id).is_none_or(|c| c == customer)
    }
}

/// What a step's future reports while it runs.
#[derive(Clone, Debug)]
pub(crate) enum Notice {
    Retry {
        index: usize,
        attempt: u32,
        error: String,
        wait: Duration,
    },
    /// A 429 made the shared limiter go evenly, at this many calls a minute at most.
    Slowed { per_minute: f64 },
}

/// How one call has fared so far, for the decision to try it again.
#[derive(Clone, Copy, Debug, Default)]
struct Tries {
    /// Calls sent.
    sent: u32,
    /// Failures that count against [`RetryPolicy::max_attempts`]: 5xx, timeouts, lost
    /// connections.
    failures: u32,
    /// 429s met, and when the first of them came: they count against
    /// [`RetryPolicy::patience`].
    limited: u32,
    limited_since: Option<Instant>,
}

/// What every step of one apply shares.
pub(crate) struct Context<'a> {
    pub client: &'a Client,
    /// The pacing's limiter, retry policy and jitter.
    pub limiter: Limiter,
    pub policy: RetryPolicy,
    pub jitter: Arc<Jitter>,
    /// Organizations that existed when the plan was made, and the customer the state links
    /// each linked organization to: neither is taken for one that a lost create of another
    /// customer made.
    pub known_organizations: KnownOrganizations,
    pub notices: mpsc::UnboundedSender<Notice>,
    /// Once requested, no call is sent and no wait is waited out.
    pub stop: Stop,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    owner_role: OnceCell<i64>,
}

impl<'a> Context<'a> {
    pub fn new(
        client: &'a Client,
        pacing: &Pacing,
        known_organizations: KnownOrganizations,
        notices: mpsc::UnboundedSender<Notice>,
        stop: Stop,
    ) -> Context<'a> {
        Context {
            client,
            limiter: pacing.limiter.clone(),
            policy: pacing.retry,
            jitter: Arc::clone(pacing.jitter()),
            known_organizations,
            notices,
            stop,
            retries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            owner_role: OnceCell::new(),
        }
    }

    /// Waits until a call may leave; `None` when the apply is asked to stop first (then no call
    /// leaves). The call is in flight for the limiter until the permit is dropped.
    async fn acquire(&self) -> Option<Permit> {
        tokio::select! {
            biased;
            () = self.stop.requested(1) => None,
            permit = self.limiter.acquire() => Some(permit),
        }
    }

    /// Sleeps `wait`; `false` when the apply is asked to stop meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.stop.requested(1) => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// Counts a failure of the call `permit` let out and, when the instance may take it again
    /// later, waits before the next try (at least `least`, for a failure).
    ///
    /// A 429 slows the shared limiter down and uses none of the attempts: once the limiter
    /// paces calls, it is what spaces them, and the call waits only the `Retry-After` (if any)
    /// and a little jitter before queueing for its turn; while nothing is paced yet, it backs
    /// off exponentially on its own. It gives up after [`RetryPolicy::patience`] of 429s.
    async fn back_off(
        &self,
        index: usize,
        tries: &mut Tries,
        error: &ApiError,
        permit: Permit,
        least: Duration,
    ) -> Next {
        let wait = if let ApiErrorKind::RateLimited { retry_after } = error.kind {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            let before = self.limiter.smooth_rate();
            permit.rate_limited();
            if let Some(per_minute) = self.limiter.smooth_rate()
                && before.is_none_or(|b| per_minute < b)
            {
                // The receiver lives as long as the apply; a closed one only loses a line.
                let _ = self.notices.send(Notice::Slowed { per_minute });
            }
            tries.limited += 1;
            let since = *tries.limited_since.get_or_insert_with(Instant::now);
            if !self.policy.still_patient(since.elapsed()) {
                return Next::GiveUp;
            }
            if self.limiter.is_on() {
                retry_after.unwrap_or_default() + self.jitter.up_to(self.policy.base)
            } else {
                self.policy
                    .backoff(tries.limited, retry_after, &self.jitter)
            }
        } else {
            drop(permit);
            if !error.is_retryable() {
                return Next::GiveUp;
            }
            tries.failures += 1;
            if !self.policy.allows_another(tries.failures) {
                return Next::GiveUp;
            }
            self.policy
                .backoff(tries.failures, None, &self.jitter)
                .max(least)
        };
        self.retries.fetch_add(1, Ordering::Relaxed);
        let _ = self.notices.send(Notice::Retry {
            index,
            attempt: tries.sent,
            error: error.to_string(),
            wait,
        });
        if self.pause(wait).await {
            Next::TryAgain
        } else {
            Next::Stop
        }
    }

    /// A read, retried while the instance may answer it later.
    async fn read<T>(
        &self,
        index: usize,
        op: impl AsyncFn() -> Result<T, ApiError>,
    ) -> Result<T, Halt> {
        let mut tries = Tries::default();
        loop {
            let permit = self.acquire().await.ok_or(Halt::Stopped)?;
            tries.sent += 1;
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    match self
                        .back_off(index, &mut tries, &error, permit, Duration::ZERO)
                        .await
                    {
                        Next::TryAgain => {}
                        Next::GiveUp => return Err(Halt::Failed(error)),
                        Next::Stop => return Err(Halt::Stopped),
                    }
                }
            }
        }
    }

    /// The id of the organization role "Owner", read once per apply when first needed.
    async fn owner_role(&self, index: usize) -> Result<i64, Halt> {
        self.owner_role
            .get_or_try_init(|| async {
                let listed = self
                    .read(index, async || {
                        self.client.users_roles(RoleCategory::Organization).await
                    })
                    .await?;
                let roles = Roles::from_lists(Vec::new(), listed, Vec::new());
                roles
                    .id(RoleKind::Organization, "Owner")
                    .map_err(|e| Halt::Failed(not_found_error(&e.to_string())))
            })
            .await
            .copied()
    }
}

/// An error for what a lookup needed and the instance does not have.
fn not_found_error(problem: &str) -> ApiError {
    ApiError::new(
        crate::api::Call {
            method: crate::api::Method::Get,
            path: "/users/roles".to_owned(),
            query: vec![("category".to_owned(), "organization".to_owned())],
        },
        ApiErrorKind::BadResponse {
            problem: problem.to_owned(),
        },
    )
}

/// Carries out one step (the step at `index` of the plan).
pub(crate) async fn run(
    ctx: &Context<'_>,
    index: usize,
    call: Call,
    start: Start,
) -> (u32, Outcome) {
    if start != Start::Fresh && call.can_be_found() {
        match find(ctx, index, &call).await {
            Ok(Some(id)) => return (0, found(&call, id)),
            Ok(None) if start == Start::Done => {
                let error = "the journal records this step as done, but the instance does not \
                             have what it made";
                let help = "plan again: something changed on the instance since";
                return (
                    0,
                    Outcome::Failed {
                        error: error.to_owned(),
                        help: Some(help.to_owned()),
                    },
                );
            }
            Ok(None) => {}
            Err(halt) => return (0, halted(halt)),
        }
    }
    if start == Start::Done {
        let done = Outcome::Done {
            created: None,
            found: true,
        };
        return (0, done);
    }
    if let Err(outcome) = refuse_a_second(ctx, index, &call).await {
        return (0, outcome);
    }
    let mut unknown = false;
    let mut tries = Tries::default();
    loop {
        if unknown && call.can_be_found() {
            match find(ctx, index, &call).await {
                Ok(Some(id)) => return (tries.sent, found(&call, id)),
                Ok(None) => {}
                Err(halt) => return (tries.sent, halted(halt)),
            }
        }
        let Some(permit) = ctx.acquire().await else {
            return (tries.sent, Outcome::Interrupted);
        };
        tries.sent += 1;
        match send(ctx.client, &call).await {
            Ok(created) => {
                return (
                    tries.sent,
                    Outcome::Done {
                        created,
                        found: false,
                    },
                );
            }
            Err(error) => {
                if call.refusal_may_mean_done(&error) {
                    drop(permit);
                    return match find(ctx, index, &call).await {
                        Ok(Some(id)) => (tries.sent, found(&call, id)),
                        Err(Halt::Stopped) => (tries.sent, Outcome::Interrupted),
                        Ok(None) | Err(Halt::Failed(_)) => (tries.sent, Outcome::failed(&error)),
                    };
                }
                unknown |= error.outcome_unknown();
                // A write that timed out may still be under way on the instance: give it
                // time before reading whether it happened.
                let least =
                    if call.can_be_found() && matches!(error.kind, ApiErrorKind::Timeout { .. }) {
                        ctx.policy.settle
                    } else {
                        Duration::ZERO
                    };
                match ctx.back_off(index, &mut tries, &error, permit, least).await {
                    Next::TryAgain => {}
                    Next::GiveUp => return (tries.sent, Outcome::failed(&error)),
                    Next::Stop => return (tries.sent, Outcome::Interrupted),
                }
            }
        }
    }
}

/// Right before an organization is created, reads whether one of its name appeared since the
/// plan was made (not there then, not linked to another customer) and, if so, refuses: another
/// runner — another policy set's apply, on this machine or another, or a person — made it, and
/// Make would take a second one of the name without a word.
async fn refuse_a_second(ctx: &Context<'_>, index: usize, call: &Call) -> Result<(), Outcome> {
    let Call::CreateOrganization { customer, name, .. } = call else {
        return Ok(());
    };
    let filter = OrganizationFilter {
        name: Some(name.clone()),
        ..OrganizationFilter::default()
    };
    let listed = ctx
        .read(index, async || ctx.client.list_organizations(&filter).await)
        .await
        .map_err(halted)?;
    // The name filter matches substrings: compare exactly here.
    let appeared = listed
        .iter()
        .filter(|o| o.deleted != Some(true) && o.name == *name)
        .map(|o| o.id)
        .filter(|id| ctx.known_organizations.may_be(*id, customer))
        .min();
    match appeared {
        None => Ok(()),
        Some(id) => Err(Outcome::Failed {
            error: format!(
                "organization `{name}` (id {id}) appeared on the instance after the plan was \
                 made: charter does not create a second one"
            ),
            help: Some(
                "someone else made it (another policy set's apply, or a person): plan again — a \
                 plan adopts it when its owner is the customer's, and `charter import` links it \
                 otherwise"
                    .to_owned(),
            ),
        }),
    }
}

/// How a step ends when a read it needed gave no answer.
fn halted(halt: Halt) -> Outcome {
    match halt {
        Halt::Failed(error) => Outcome::failed(&error),
        Halt::Stopped => Outcome::Interrupted,
    }
}

/// Done, as found by reading.
fn found(call: &Call, id: i64) -> Outcome {
    Outcome::Done {
        created: Some(id).filter(|_| {
            !matches!(
                call,
                Call::TransferOwnership { .. } | Call::RemoveFromOrganization { .. }
            )
        }),
        found: true,
    }
}

/// Sends the call once; the id of what it created.
async fn send(client: &Client, call: &Call) -> Result<Option<i64>, ApiError> {
    match call {
        Call::CreateUser { email, name } => {
            let user = client
                .create_user(&UserInvitation {
                    name: name.clone(),
                    email: email.clone(),
                    ..UserInvitation::default()
                })
                .await?;
            Ok(Some(user.id))
        }
        Call::CreateOrganization {
            name,
            owner,
            license,
            ..
        } => {
            let organization = client
                .create_organization(&NewOrganization {
                    name: name.clone(),
                    user_org_admin: Some(*owner),
                    license: Some(license.clone()),
                    ..NewOrganization::default()
                })
                .await?;
            Ok(Some(organization.id))
        }
        Call::SetLicense {
            organization,
            license,
        } => {
            client.set_license_keys(*organization, license).await?;
            Ok(None)
        }
        Call::SetOrganizationRole {
            organization,
            user,
            role,
        } => {
            client
                .set_organization_role(*user, *organization, *role)
                .await?;
            Ok(None)
        }
        Call::TransferOwnership { organization, user } => {
            client.transfer_ownership(*user, *organization).await?;
            Ok(None)
        }
        Call::RemoveFromOrganization { organization, user } => {
            client
                .remove_from_organization(*user, *organization)
                .await?;
            Ok(None)
        }
        Call::CreateTeam {
            organization,
            name,
            admin,
        } => {
            let team = client
                .create_team(&NewTeam {
                    name: name.clone(),
                    organization_id: *organization,
                    user_team_admin: *admin,
                })
                .await?;
            Ok(Some(team.id))
        }
        Call::SetTeamRole { team, user, role } => {
            client.set_team_role(*user, *team, *role).await?;
            Ok(None)
        }
        Call::SetInstanceRole { user, role } => {
            client
                .update_user(
                    *user,
                    &UserChanges {
                        users_admins_role_id: Some(*role),
                        ..UserChanges::default()
                    },
                )
                .await?;
            Ok(None)
        }
    }
}

/// Reads whether the call's effect is on the instance: the id of what it made (for a
/// transfer, the new owner's id) or `None`.
async fn find(ctx: &Context<'_>, index: usize, call: &Call) -> Result<Option<i64>, Halt> {
    let client = ctx.client;
    match call {
        Call::CreateUser { email, .. } => {
            let user = ctx
                .read(index, async || client.lookup_user_by_email(email).await)
                .await?;
            Ok(user
                .filter(|u| u.deleted != Some(true) && u.email.eq_ignore_ascii_case(email))
                .map(|u| u.id))
        }
        Call::CreateOrganization {
            customer,
            name,
            owner,
            ..
        } => {
            let filter = OrganizationFilter {
                name: Some(name.clone()),
                ..OrganizationFilter::default()
            };
            // The name filter matches substrings: compare exactly here.
            let candidates: BTreeSet<i64> = ctx
                .read(index, async || client.list_organizations(&filter).await)
                .await?
                .into_iter()
                .filter(|o| o.deleted != Some(true) && o.name == *name)
                .map(|o| o.id)
                .filter(|id| ctx.known_organizations.may_be(*id, customer))
                .collect();
            if candidates.is_empty() {
                return Ok(None);
            }
            // Names repeat: it is ours only if the owner is the one the step made owner.
            let owner_role = ctx.owner_role(index).await?;
            let roles = ctx
                .read(index, async || client.user_organization_roles(*owner).await)
                .await?;
            Ok(roles
                .iter()
                .filter(|r| {
                    r.users_role_id == owner_role && candidates.contains(&r.organization_id)
                })
                .map(|r| r.organization_id)
                .min())
        }
        Call::CreateTeam {
            organization, name, ..
        } => {
            let teams = ctx
                .read(index, async || client.list_teams(*organization).await)
                .await?;
            Ok(teams.iter().filter(|t| t.name == *name).map(|t| t.id).min())
        }
        Call::TransferOwnership { organization, user } => {
            let owner_role = ctx.owner_role(index).await?;
            let roles = ctx
                .read(index, async || client.user_organization_roles(*user).await)
                .await?;
            Ok(roles
                .iter()
                .any(|r| r.organization_id == *organization && r.users_role_id == owner_role)
                .then_some(*user))
        }
        Call::RemoveFromOrganization { organization, user } => {
            let roles = ctx
                .read(index, async || client.user_organization_roles(*user).await)
                .await?;
            Ok((!roles.iter().any(|r| r.organization_id == *organization)).then_some(*user))
        }
        _ => Ok(None),
    }
}
