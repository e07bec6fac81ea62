//! Applying a plan to the instance: bounded concurrency, a client-side rate limiter, retries,
//! exactly-once creates without idempotency keys, the journal, and the lifecycle bookkeeping.
//!
//! # Using it
//!
//! ```no_run
//! # async fn example(
//! #     client: &charter::api::Client,
//! #     state: &charter::state::Store,
//! #     plan: &charter::plan::Plan,
//! #     at: i64,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use charter::apply::{self, Event, Options};
//!
//! let lock = state.acquire_lock("apply")?;
//! // The client's pacing (`Client::paced`) says how fast and how patiently; without one, the
//! // apply learns the instance's limit from its first 429 (`Pacing::default`).
//! let options = Options {
//!     concurrency: 4,
//!     ..Options::default()
//! };
//! let mut progress = |event: &Event<'_>| {
//!     if let Some(line) = event.line() {
//!         eprintln!("{line}");
//!     }
//! };
//! let report = apply::execute(client, state, Some(&lock), plan, &options, at, &mut progress)
//!     .await
//!     .map_err(|stopped| stopped.error)?;
//! println!("{}", report.summary());
//! let exit_code = if report.succeeded() { 0 } else { 1 };
//! # let _ = exit_code;
//! # Ok(())
//! # }
//! ```
//!
//! [`execute`] carries out `plan` and returns a [`Report`]: every step's [`StepStatus`], the
//! previous plans' interrupted steps it reconciled, the customers and staff whose bookkeeping
//! it recorded, and the calls, retries, 429s and time it took. It fails ([`Stopped`], with the
//! report so far) only when the state cannot be written or the lock was taken over: without a
//! durable journal no further call may be made.
//!
//! The future is not `Send` (the state's connection is not shared between threads): run it
//! with `block_on`, not with `tokio::spawn`. To stop it, request [`Options::stop`] (a signal
//! handler does): the first request lets the calls in flight get their answers and starts
//! nothing more, the second stops at once; either way the report says `stopped`, and what was
//! in flight stays in the journal for the next apply. Dropping the future is safe too, for the
//! same reason: calls in flight are in the journal as begun, and the next apply reconciles them.
//!
//! # What it does
//!
//! - **Order.** A step starts once every step it depends on succeeded, at most
//!   [`Options::concurrency`] at a time, earliest in the plan first. A step that fails makes
//!   every step waiting on it (directly or not) skipped; the others go on.
//! - **Rate.** Every call — lookups and retries included — goes through the limiter of the
//!   client's [pacing](Client::paced) ([`Pacing::default`](crate::api::Pacing::default) for a
//!   client without one), so that
//!   the reads before the apply and the apply spend one minute's budget. It lets a share of the
//!   instance's limit out in any window of a minute, as fast as the calls come, then waits for
//!   the window to roll ([`limiter`]). A 429 makes it fall back to even pacing for every call,
//!   at what the instance accepted (with no limit configured, that sets one); the report says
//!   so. The steps call through [`Client::without_pacing`]: the executor paces and retries
//!   them itself, with the same pacing's limiter, retry policy and jitter.
//! - **Retries.** 5xx, timeouts and lost connections are tried again with full-jitter
//!   exponential backoff, up to [`RetryPolicy::max_attempts`]. A 429 is flow control: it uses
//!   no attempt, and the call waits for the slower limiter (and `Retry-After`, when the instance
//!   sends one), giving up only after [`RetryPolicy::patience`] of 429s. Other refusals fail
//!   the step at once.
//! - **Exactly once.** A create whose outcome is unknown is looked up before it is sent again,
//!   and a transfer of ownership is checked; the other calls set values and are repeated
//!   safely (see `step.rs`).
//! - **Journal.** Each step's intent is written and synced before its first call (the steps
//!   started together in one transaction), its outcome after (committed at once, synced with
//!   the next synced write). Manual steps are journaled as done when listed. Ids of created objects go
//!   to the later steps' references, and organizations' ids to the state at once.
//! - **Bookkeeping.** When every step of a customer (or staff member) has succeeded —
//!   immediately for one without steps — [`Store::finish_customer`] (or
//!   [`Store::finish_staff`]) records its organization, the transitions the plan carries out
//!   and the snapshot of what is applied, at the apply's instant `at`.
//! - **Stop.** Once [`Options::stop`] is requested, no step starts and no step sends another
//!   call or waits out a backoff; a step whose last answer does not finish it ends
//!   [`StepStatus::Interrupted`], its journal entry left in flight. A second request leaves
//!   the calls still in flight the same way.
//! - **Resume.** The caller plans again after an interruption (observing anew), so finished
//!   work is not in the new plan. Steps of earlier plans still in flight in the journal are
//!   closed as reconciled by reading: done if the new plan no longer has them, planned again if
//!   it does. Applying the same plan again (same id) skips what its journal says succeeded and
//!   treats what was in flight as of unknown outcome.

// The rate limiter and the backoff live in `api/`, where a paced client's reads use them too;
// they are re-exported here under their old paths.
pub use crate::api::{limiter, retry};
mod step;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use limiter::{Limiter, RateLimit};
pub use retry::{Jitter, RetryPolicy};

use crate::api::Client;
use crate::api::wire::License;
use crate::plan::{Action, CustomerPlan, OrganizationRef, Plan, StaffPlan, Step, TeamRef, UserRef};
use crate::state::{self, LockGuard, StateError, StepOutcome, Store};
use step::{Call, Context, KnownOrganizations, Notice, Outcome, Start};

/// Steps in flight at once when nothing else is said: with 200 ms a call, enough to send a
/// minute's allowance of a few thousand calls within the minute (`benches/README.md`).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A request to stop an apply, shared between whoever asks (a signal handler) and the
/// executor. The first request stops it cleanly: no step starts any more and no step sends
/// another call; the calls in flight get their answers, and a step that an answer does not
/// finish is left in flight in the journal, for the next apply to find out by reading. A
/// second request stops it at once, leaving the calls in flight to the journal too.
#[derive(Clone, Debug)]
pub struct Stop(Arc<watch::Sender<u32>>);

impl Stop {
    /// A stop not requested yet.
    pub fn new() -> Stop {
        Stop(Arc::new(watch::channel(0).0))
    }

    /// Asks to stop (once more).
    pub fn request(&self) {
        self.0.send_modify(|n| *n = n.saturating_add(1));
    }

    /// How many times stopping was asked for.
    pub fn requests(&self) -> u32 {
        *self.0.borrow()
    }

    /// Waits until stopping has been asked for `times` times.
    pub async fn requested(&self, times: u32) {
        let mut requests = self.0.subscribe();
        if requests.wait_for(|n| *n >= times).await.is_err() {
            // The sender lives in `self`: it cannot be gone. Were it, no request could come.
            std::future::pending::<()>().await;
        }
    }
}

impl Default for Stop {
    fn default() -> Stop {
        Stop::new()
    }
}

/// Two stops are equal when they are the same one.
impl PartialEq for Stop {
    fn eq(&self, other: &Stop) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How to apply. How fast and how patiently is the client's [pacing](Client::paced).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Steps in flight at once (at least one).
    pub concurrency: usize,
    /// Asked for, it stops the apply (see [`Stop`]); by default nobody asks.
    pub stop: Stop,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: DEFAULT_CONCURRENCY,
            stop: Stop::new(),
        }
    }
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// Carried out. `found`: its effect was found by reading the instance (an answer was lost,
    /// or the step was in flight when an earlier apply stopped), not confirmed by its answer.
    Done { found: bool },
    /// The journal of this same plan says an earlier apply carried it out.
    AlreadyDone,
    /// A manual step: listed for a person, and journaled as done.
    Manual,
    /// The instance refused it, or kept failing until the attempts ran out.
    Failed { error: String, help: Option<String> },
    /// Not tried, because the step it waited for (named) failed or was skipped.
    Skipped { because: String },
    /// Not reached: the apply stopped first.
    NotRun,
    /// Begun, and the apply was asked to stop before its outcome was known: the journal has it
    /// in flight, and the next apply finds out by reading what it did.
    Interrupted,
}

impl StepStatus {
    /// Whether the step's effect is on the instance (or, for a manual step, was listed).
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            StepStatus::Done { .. } | StepStatus::AlreadyDone | StepStatus::Manual
        )
    }
}

/// One step in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    pub id: String,
    pub subject: String,
    pub kind: &'static str,
    pub status: StepStatus,
    /// Calls sent for the step itself (lookups not counted).
    pub attempts: u32,
}

/// A step of an earlier plan that was in flight when its apply stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciled {
    pub plan: String,
    pub step: String,
    pub kind: String,
    pub target: String,
    /// The new plan, made from a fresh reading of the instance, carries it out again: its
    /// effect was not there. Otherwise nothing of it is left to do.
    pub planned_again: bool,
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub plan: String,
    /// Every step, in plan order.
    pub steps: Vec<StepReport>,
    /// Earlier plans' interrupted steps, closed in the journal.
    pub reconciled: Vec<Reconciled>,
    /// Customers whose bookkeeping was recorded (every step succeeded).
    pub customers: Vec<String>,
    /// Transitions recorded, as (customer, transition).
    pub transitions: Vec<(String, String)>,
    /// Staff members whose bookkeeping was recorded.
    pub staff: Vec<String>,
    /// Calls made, lookups and retries included.
    pub calls: u64,
    /// Calls tried again.
    pub retries: u64,
    /// 429 answers met.
    pub rate_limited: u64,
    /// Once a 429 made the limiter fall back from spending each minute's allowance at once to
    /// even pacing: the calls a minute it let out at the end. `None` when it never did.
    pub smooth_rate: Option<f64>,
    pub elapsed: Duration,
    /// The apply was asked to stop ([`Options::stop`]) and left steps not run or in flight.
    pub stopped: bool,
}

impl Report {
    fn count(&self, f: impl Fn(&StepStatus) -> bool) -> usize {
        self.steps.iter().filter(|s| f(&s.status)).count()
    }

    /// Steps carried out now or by an earlier apply of the same plan (manual ones not counted).
    pub fn done(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Done { .. } | StepStatus::AlreadyDone))
    }

    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Failed { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Skipped { .. }))
    }

    /// Steps the apply did not carry out because it stopped: not started, or left in flight.
    pub fn not_run(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::NotRun | StepStatus::Interrupted))
    }

    /// Steps begun and left in flight in the journal by a stop.
    pub fn interrupted(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Interrupted))
    }

    pub fn manual(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Manual))
    }

    /// Steps whose effect was found by reading rather than confirmed by an answer.
    pub fn found(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Done { found: true }))
    }

    /// Whether every step succeeded (the exit code is 1 otherwise).
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(|s| s.status.succeeded())
    }

    /// The final line: `12 done, 1 failed, 2 skipped, 1 manual; 3 retries, 0 × 429; 58 calls in
    /// 6.1 s` (with `, 20 not run` after `manual` when steps were not carried out, and
    /// `(then evenly, 570 calls a minute at most)` after the 429s when the limiter fell back to
    /// even pacing).
    pub fn summary(&self) -> String {
        let not_run = match self.not_run() {
            0 => String::new(),
            n => format!(", {n} not run"),
        };
        let evenly = match self.smooth_rate {
            // Rounded down: a rate between 1 and a few thousand calls a minute.
            Some(rate) => format!(
                " (then evenly, {} calls a minute at most)",
                rate.floor() as u64
            ),
            None => String::new(),
        };
        let mut text = format!(
            "{} done, {} failed, {} skipped, {} manual{not_run}; {} {}, {} × 429{evenly}; {} {} in {:.1} s",
            self.done(),
            self.failed(),
            self.skipped(),
            self.manual(),
            self.retries,
            if self.retries == 1 {
                "retry"
            } else {
                "retries"
            },
            self.rate_limited,
            self.calls,
            if self.calls == 1 { "call" } else { "calls" },
            self.elapsed.as_secs_f64()
        );
        if !self.reconciled.is_empty() {
            text.push_str(&format!(
                "; {} interrupted {} of an earlier apply reconciled by reading",
                self.reconciled.len(),
                if self.reconciled.len() == 1 {
                    "step"
                } else {
                    "steps"
                }
            ));
        }
        text
    }
}

/// Why an apply stopped before its end: the state could not be written (or the lock was
/// lost), so no further call could be journaled.
#[derive(Debug)]
pub struct Stopped {
    pub error: StateError,
    /// What was done until then.
    pub report: Box<Report>,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the apply stopped: {}", self.error)
    }
}

impl std::error::Error for Stopped {}

/// What the executor tells its caller while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Before anything else.
    Start { plan: &'a Plan },
    /// An earlier plan's interrupted step was closed in the journal.
    Reconciled(&'a Reconciled),
    /// A step's first call is about to be made.
    StepStarted { step: &'a Step },
    /// A call failed and is tried again after `wait`.
    Retry {
        step: &'a Step,
        attempt: u32,
        error: &'a str,
        wait: Duration,
    },
    /// The instance answered 429: every call now goes evenly, at `per_minute` calls a minute
    /// at most.
    Slowed { per_minute: f64 },
    /// The apply was asked to stop: no step starts any more, and the `in_flight` steps get
    /// the answers to the calls they made.
    Stopping { in_flight: usize },
    /// A step ended (done, failed, skipped, manual).
    StepFinished {
        step: &'a Step,
        status: &'a StepStatus,
    },
    /// Every step of a customer succeeded and the state recorded it.
    CustomerRecorded { customer: &'a CustomerPlan },
    /// Every step of a staff member succeeded and the state recorded it.
    StaffRecorded { staff: &'a StaffPlan },
}

impl Event<'_> {
    /// A plain log line for the event, for output that is not a terminal; `None` for events
    /// not worth a line.
    pub fn line(&self) -> Option<String> {
        match self {
            Event::Start { plan } => Some(format!(
                "applying {}: {} steps, {} calls",
                plan.id,
                plan.steps.len(),
                plan.calls()
            )),
            Event::Reconciled(r) => Some(format!(
                "reconciled by reading: `{}` of {} ({} {}) {}",
                r.step,
                r.plan,
                r.kind,
                r.target,
                if r.planned_again {
                    "was not applied and is planned again"
                } else {
                    "has nothing left to do"
                }
            )),
            Event::StepStarted { .. } => None,
            Event::Retry {
                step,
                attempt,
                error,
                wait,
            } => Some(format!(
                "retry `{}` (attempt {} failed: {error}) in {:.1} s",
                step.id,
                attempt,
                wait.as_secs_f64()
            )),
            Event::Slowed { per_minute } => Some(format!(
                "the instance answered 429: calls now go at {} a minute at most, evenly",
                // Rounded down: a rate between 1 and a few thousand calls a minute.
                per_minute.floor() as u64
            )),
            Event::Stopping { in_flight } => Some(format!(
                "stopping: no step starts any more; {} in flight {} for {} answer (ask again \
                 to stop at once)",
                in_flight,
                if *in_flight == 1 { "waits" } else { "wait" },
                if *in_flight == 1 { "its" } else { "their" }
            )),
            Event::StepFinished { step, status } => Some(match status {
                StepStatus::Done { found: false } => format!("done `{}`", step.id),
                StepStatus::Done { found: true } => {
                    format!("done `{}` (found on the instance by reading)", step.id)
                }
                StepStatus::AlreadyDone => format!("done `{}` (by an earlier apply)", step.id),
                StepStatus::Manual => match &step.action {
                    Action::Manual { what, how } => format!("manual `{}`: {what} ({how})", step.id),
                    _ => format!("manual `{}`", step.id),
                },
                StepStatus::Failed { error, .. } => format!("failed `{}`: {error}", step.id),
                StepStatus::Skipped { because } => {
                    format!("skipped `{}`: it waits for `{because}`", step.id)
                }
                StepStatus::NotRun => format!("not run `{}`", step.id),
                StepStatus::Interrupted => {
                    format!("interrupted `{}`: left in flight in the journal", step.id)
                }
            }),
            Event::CustomerRecorded { customer } => {
                let mut line = format!("recorded `{}`", customer.key);
                for t in &customer.transitions {
                    line.push_str(&format!("; {} {} → {}", t.name, t.from, t.to));
                }
                Some(line)
            }
            Event::StaffRecorded { staff } => Some(format!("recorded staff `{}`", staff.email)),
        }
    }
}

/// Receives the executor's events: a progress bar, log lines, or nothing (`()`).
pub trait Progress {
    fn event(&mut self, event: &Event<'_>);
}

impl<F: FnMut(&Event<'_>)> Progress for F {
    fn event(&mut self, event: &Event<'_>) {
        self(event)
    }
}

impl Progress for () {
    fn event(&mut self, _: &Event<'_>) {}
}

/// The journal's name for what a step acts on: from the plan's references only, so that it is
/// the same for the same step in every apply.
fn target(step: &Step) -> String {
    let team = |t: &TeamRef| format!("{}/{}", t.organization.customer, t.name);
    match &step.action {
        Action::CreateUser { email, .. } => email.clone(),
        Action::CreateOrganization { organization, .. }
        | Action::SetLicense { organization, .. } => organization.customer.clone(),
        Action::SetOrganizationRole {
            organization, user, ..
        }
        | Action::TransferOwnership {
            organization, user, ..
        }
        | Action::RemoveFromOrganization { organization, user } => {
            format!("{} {}", organization.customer, user.email)
        }
        Action::CreateTeam { team: t, .. } => team(t),
        Action::SetTeamRole { team: t, user, .. } => format!("{} {}", team(t), user.email),
        Action::SetInstanceRole { user, .. } => user.email.clone(),
        Action::Manual { .. } => step.subject.clone(),
    }
}

/// The journal key of a step, and how it starts, from what this plan's journal holds: a step
/// finished as failed is begun again under `id~2`, `id~3`, … (a finished entry is final).
fn journal_key(id: &str, journal: &HashMap<String, Option<StepOutcome>>) -> (String, Start) {
    let mut key = id.to_owned();
    let mut n = 1;
    loop {
        match journal.get(&key) {
            None if n == 1 => return (key, Start::Fresh),
            // The one before failed: its effect may be there all the same.
            None => return (key, Start::Unknown),
            Some(None) => return (key, Start::Unknown),
            Some(Some(StepOutcome::Succeeded)) => return (key, Start::Done),
            Some(Some(StepOutcome::Failed(_))) => {
                n += 1;
                key = format!("{id}~{n}");
            }
        }
    }
}

/// The step id a journal key was made from.
fn step_of_key(key: &str) -> &str {
    match key.rsplit_once('~') {
        Some((id, n)) if n.parse::<u32>().is_ok() => id,
        _ => key,
    }
}

/// The ids objects got, as the executor learns them: what later steps' references resolve to.
#[derive(Clone, Debug, Default)]
pub struct Ids {
    /// Lower-case address → user id.
    pub users: BTreeMap<String, i64>,
    /// Customer key → organization id.
    pub organizations: BTreeMap<String, i64>,
    /// (customer key, team name) → team id.
    pub teams: BTreeMap<(String, String), i64>,
}

struct Resolver<'p> {
    ids: Ids,
    plan: &'p Plan,
}

impl Resolver<'_> {
    fn user(&self, user: &UserRef) -> Result<i64, String> {
        user.id
            .or_else(|| self.ids.users.get(&user.email.to_lowercase()).copied())
            .ok_or_else(|| format!("the id of user `{}` is not known", user.email))
    }

    fn organization(&self, organization: &OrganizationRef) -> Result<i64, String> {
        organization
            .id
            .or_else(|| self.ids.organizations.get(&organization.customer).copied())
            .or_else(|| {
                self.plan
                    .customers
                    .iter()
                    .find(|c| c.key == organization.customer)
                    .and_then(|c| c.organization)
            })
            .ok_or_else(|| {
                format!(
                    "the id of organization `{}` of customer `{}` is not known",
                    organization.name, organization.customer
                )
            })
    }

    fn team(&self, team: &TeamRef) -> Result<i64, String> {
        team.id
            .or_else(|| {
                self.ids
                    .teams
                    .get(&(team.organization.customer.clone(), team.name.clone()))
                    .copied()
            })
            .ok_or_else(|| {
                format!(
                    "the id of team `{}` of customer `{}` is not known",
                    team.name, team.organization.customer
                )
            })
    }

    /// The call a step makes; `None` for a manual step.
    fn call(&self, action: &Action) -> Result<Option<Call>, String> {
        Ok(Some(match action {
            Action::CreateUser { email, name } => Call::CreateUser {
                email: email.clone(),
                name: name.clone(),
            },
            Action::CreateOrganization {
                organization,
                owner,
                license,
            } => Call::CreateOrganization {
                customer: organization.customer.clone(),
                name: organization.name.clone(),
                owner: self.user(owner)?,
                license: License::from(&license.0),
            },
            Action::SetLicense {
                organization,
                license,
                ..
            } => Call::SetLicense {
                organization: self.organization(organization)?,
                license: License::from(&license.0),
            },
            Action::SetOrganizationRole {
                organization,
                user,
                role,
                ..
            } => Call::SetOrganizationRole {
                organization: self.organization(organization)?,
                user: self.user(user)?,
                role: role.id,
            },
            Action::TransferOwnership {
                organization, user, ..
            } => Call::TransferOwnership {
                organization: self.organization(organization)?,
                user: self.user(user)?,
            },
            Action::RemoveFromOrganization { organization, user } => Call::RemoveFromOrganization {
                organization: self.organization(organization)?,
                user: self.user(user)?,
            },
            Action::CreateTeam { team, admin, .. } => Call::CreateTeam {
                organization: self.organization(&team.organization)?,
                name: team.name.clone(),
                admin: admin.as_ref().map(|a| self.user(a)).transpose()?,
            },
            Action::SetTeamRole {
                team, user, role, ..
            } => Call::SetTeamRole {
                team: self.team(team)?,
                user: self.user(user)?,
                role: role.id,
            },
            Action::SetInstanceRole { user, role, .. } => Call::SetInstanceRole {
                user: self.user(user)?,
                role: role.as_ref().map(|r| r.id),
            },
            Action::Manual { .. } => return Ok(None),
        }))
    }
}

/// Where one step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Ended,
}

/// The executor's bookkeeping for one apply.
struct Run<'a> {
    state: &'a Store,
    lock: Option<&'a LockGuard>,
    plan: &'a Plan,
    at: i64,
    resolver: Resolver<'a>,
    report: Report,
    phase: Vec<Phase>,
    /// For each step, the steps that wait for it.
    dependents: Vec<Vec<usize>>,
    /// For each step, how many of its prerequisites have not succeeded yet.
    waiting_for: Vec<usize>,
    /// Steps ready to start, by position in the plan.
    ready: BTreeSet<usize>,
    /// For each subject (customer key or `staff:…`), its steps not yet succeeded; `None` once
    /// one of them failed or was skipped.
    open: BTreeMap<String, Option<usize>>,
    /// This plan's journal: key → outcome (`None` while in flight).
    journal: HashMap<String, Option<StepOutcome>>,
    /// Each running step's journal key.
    keys: HashMap<usize, String>,
}

/// Carries out `plan` against the instance behind `client`, journaling in `state` under the
/// plan's id (a plan not [sealed](Plan::seal) is sealed first); `at` is the apply's instant
/// (what the journal and the bookkeeping record). See the module's documentation.
pub async fn execute(
    client: &Client,
    state: &Store,
    lock: Option<&LockGuard>,
    plan: &Plan,
    options: &Options,
    at: i64,
    progress: &mut dyn Progress,
) -> Result<Report, Stopped> {
    let started = Instant::now();
    let calls_before = client.calls();
    // The journal keys steps by the plan's id: a plan not yet sealed gets its id here.
    let sealed;
    let plan = if plan.id.is_empty() {
        sealed = plan.clone().seal();
        &sealed
    } else {
        plan
    };
    let mut run = Run::new(state, lock, plan, at);
    progress.event(&Event::Start { plan });

    // The client's pacing brings the limiter its reads went through: the apply spends the
    // same minute's budget, in which those reads are counted already. Its steps are paced and
    // retried here, so they call through the client without its pacing.
    let pacing = client.pacing().cloned().unwrap_or_default();
    let unpaced = client.without_pacing();
    let client = &unpaced;
    let (notices, mut heard) = mpsc::unbounded_channel();
    // What the state remembers of the people of the organizations about to change is stale
    // from the first call on: forgotten, so the next plan reads them back.
    let touched: Vec<i64> = plan
        .steps
        .iter()
        .filter_map(|s| s.action.organization().and_then(|o| o.id))
        .collect::<std::collections::BTreeSet<i64>>()
        .into_iter()
        .collect();
    if let Err(error) = state.forget_memberships(&touched) {
        return Err(run.stop(error, client, calls_before, started, None));
    }
    let known = match run.prepare(progress) {
        Ok(known) => known,
        Err(error) => return Err(run.stop(error, client, calls_before, started, None)),
    };
    let stop = &options.stop;
    let ctx = Context::new(client, &pacing, known, notices, stop.clone());

    let mut running = FuturesUnordered::new();
    let concurrency = options.concurrency.max(1);
    let mut stopping = false;
    let result: Result<(), StateError> = async {
        loop {
            if !stopping && stop.requests() > 0 {
                stopping = true;
                progress.event(&Event::Stopping {
                    in_flight: running.len(),
                });
            }
            // Steps started together have their intents journaled in one synced
            // transaction, before any of their calls.
            let mut batch = Vec::new();
            let mut intents = Vec::new();
            // A stop asked for while this batch is launched holds back the rest of it.
            while stop.requests() == 0 && running.len() + batch.len() < concurrency {
                let Some(index) = run.ready.pop_first() else {
                    break;
                };
                if let Some((call, start, intent)) = run.launch(index, progress)? {
                    intents.extend(intent);
                    batch.push((index, call, start));
                }
            }
            run.begin(&intents)?;
            for (index, call, start) in batch {
                let ctx = &ctx;
                running.push(async move { (index, step::run(ctx, index, call, start).await) });
            }
            if running.is_empty() {
                if stopping || run.ready.is_empty() {
                    return Ok(());
                }
                continue;
            }
            tokio::select! {
                () = stop.requested(1), if !stopping => {}
                () = stop.requested(2), if stopping => {
                    // Asked again: the calls in flight are left to the journal as well.
                    run.abandon(progress);
                    return Ok(());
                }
                Some((index, (attempts, outcome))) = running.next() => {
                    while let Ok(notice) = heard.try_recv() {
                        run.notice(&notice, progress);
                    }
                    run.ended(index, attempts, outcome, progress)?;
                    // Others that ended meanwhile too, so that the steps they free start
                    // together (one journal sync for them all).
                    while let Some(Some((index, (attempts, outcome)))) =
                        running.next().now_or_never()
                    {
                        run.ended(index, attempts, outcome, progress)?;
                    }
                }
                Some(notice) = heard.recv() => run.notice(&notice, progress),
            }
        }
    }
    .await;
    drop(running);
    let counters = Some((&ctx.retries, &ctx.rate_limited));
    run.report.smooth_rate = ctx.limiter.smooth_rate();
    match result {
        Ok(()) => {
            run.finish_report(client, calls_before, started, counters);
            run.report.stopped = stopping && run.report.not_run() > 0;
            Ok(run.report)
        }
        Err(error) => Err(run.stop(error, client, calls_before, started, counters)),
    }
}

impl<'a> Run<'a> {
    fn new(state: &'a Store, lock: Option<&'a LockGuard>, plan: &'a Plan, at: i64) -> Run<'a> {
        let index: HashMap<&str, usize> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut dependents = vec![Vec::new(); plan.steps.len()];
        let mut waiting_for = vec![0; plan.steps.len()];
        for (i, step) in plan.steps.iter().enumerate() {
            for dep in &step.depends_on {
                if let Some(&d) = index.get(dep.as_str()) {
                    if let Some(list) = dependents.get_mut(d) {
                        list.push(i);
                    }
                    if let Some(w) = waiting_for.get_mut(i) {
                        *w += 1;
                    }
                }
            }
        }
        let ready = waiting_for
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| i)
            .collect();
        let mut open: BTreeMap<String, Option<usize>> = BTreeMap::new();
        for c in &plan.customers {
            open.insert(c.key.clone(), Some(0));
        }
        for s in &plan.staff {
            open.insert(format!("staff:{}", s.email), Some(0));
        }
        for step in &plan.steps {
            if let Some(Some(n)) = open.get_mut(&step.subject) {
                *n += 1;
            }
        }
        let mut ids = Ids::default();
        for c in &plan.customers {
            if let Some(id) = c.organization {
                ids.organizations.insert(c.key.clone(), id);
            }
        }
        Run {
            state,
            lock,
            plan,
            at,
            resolver: Resolver { ids, plan },
            report: Report {
                plan: plan.id.clone(),
                steps: plan
                    .steps
                    .iter()
                    .map(|s| StepReport {
                        id: s.id.clone(),
                        subject: s.subject.clone(),
                        kind: s.action.kind(),
                        status: StepStatus::NotRun,
                        attempts: 0,
                    })
                    .collect(),
                reconciled: Vec::new(),
                customers: Vec::new(),
                transitions: Vec::new(),
                staff: Vec::new(),
                calls: 0,
                retries: 0,
                rate_limited: 0,
                smooth_rate: None,
                elapsed: Duration::ZERO,
                stopped: false,
            },
            phase: vec![Phase::Waiting; plan.steps.len()],
            dependents,
            waiting_for,
            ready,
            open,
            journal: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Before the first call: closes earlier plans' interrupted steps, reads this plan's
    /// journal, records the subjects without steps. Returns the organizations a lost create
    /// cannot have made.
    fn prepare(&mut self, progress: &mut dyn Progress) -> Result<KnownOrganizations, StateError> {
        for other in self.state.unfinished_plans()? {
            if other == self.plan.id {
                continue;
            }
            for entry in self.state.unfinished_steps(&other)? {
                let id = step_of_key(&entry.step.id);
                let planned_again = self.plan.step(id).is_some();
                let outcome = if planned_again {
                    StepOutcome::Failed(format!(
                        "interrupted; reading the instance found it not applied, and plan `{}` \
                         carries it out again",
                        self.plan.id
                    ))
                } else {
                    StepOutcome::Succeeded
                };
                self.ensure_lock()?;
                self.state
                    .finish_step(&other, &entry.step.id, &outcome, self.at)?;
                let reconciled = Reconciled {
                    plan: other.clone(),
                    step: entry.step.id.clone(),
                    kind: entry.step.kind.clone(),
                    target: entry.step.target.clone(),
                    planned_again,
                };
                progress.event(&Event::Reconciled(&reconciled));
                self.report.reconciled.push(reconciled);
            }
        }
        self.journal = self
            .state
            .journal(&self.plan.id)?
            .into_iter()
            .map(|e| (e.step.id, e.outcome))
            .collect();
        let mut known = KnownOrganizations::default();
        for c in self.state.customers()? {
            if let Some(id) = c.organization_id {
                known.linked.insert(id, c.key);
            }
        }
        known.existing = self
            .plan
            .customers
            .iter()
            .filter_map(|c| c.organization)
            .chain(self.plan.reads.organizations.keys().copied())
            .chain(
                self.plan
                    .reads
                    .absent
                    .organizations
                    .values()
                    .flatten()
                    .copied(),
            )
            .collect();
        let empty: Vec<String> = self
            .open
            .iter()
            .filter(|(_, n)| **n == Some(0))
            .map(|(s, _)| s.clone())
            .collect();
        for subject in empty {
            self.record(&subject, progress)?;
        }
        Ok(known)
    }

    fn ensure_lock(&self) -> Result<(), StateError> {
        match self.lock {
            Some(lock) => lock.ensure_held(),
            None => Ok(()),
        }
    }

    /// Journals the intents of steps about to start, in one synced transaction.
    fn begin(&self, intents: &[state::StepIntent]) -> Result<(), StateError> {
        if intents.is_empty() {
            return Ok(());
        }
        self.ensure_lock()?;
        self.state.begin_steps(intents, self.at)?;
        Ok(())
    }

    /// Starts a step: returns its call and the intent to journal before it ([`Run::begin`]),
    /// or ends it at once (manual, already done without an id to read, unresolvable).
    fn launch(
        &mut self,
        index: usize,
        progress: &mut dyn Progress,
    ) -> Result<Option<(Call, Start, Option<state::StepIntent>)>, StateError> {
        let plan = self.plan;
        let Some(step) = plan.steps.get(index) else {
            return Ok(None);
        };
        let (key, start) = journal_key(&step.id, &self.journal);
        if start == Start::Done && !step.action.is_create() {
            self.end(index, StepStatus::AlreadyDone, progress)?;
            return Ok(None);
        }
        let call = match self.resolver.call(&step.action) {
            Ok(call) => call,
            Err(problem) => {
                self.end(
                    index,
                    StepStatus::Failed {
                        error: format!("{problem}: the step that makes it did not run"),
                        help: Some("this is a bug in the plan's dependencies".to_owned()),
                    },
                    progress,
                )?;
                return Ok(None);
            }
        };
        let journal_step = state::StepIntent {
            plan: plan.id.clone(),
            id: key.clone(),
            kind: step.action.kind().to_owned(),
            target: target(step),
        };
        let Some(call) = call else {
            // A manual step: listed, and done as far as the plan is concerned.
            if start != Start::Done {
                self.ensure_lock()?;
                self.state.begin_step(&journal_step, self.at)?;
                self.state
                    .finish_step(&plan.id, &key, &StepOutcome::Succeeded, self.at)?;
            }
            self.end(index, StepStatus::Manual, progress)?;
            return Ok(None);
        };
        let intent = (start != Start::Done).then_some(journal_step);
        self.keys.insert(index, key);
        if let Some(phase) = self.phase.get_mut(index) {
            *phase = Phase::Running;
        }
        progress.event(&Event::StepStarted { step });
        Ok(Some((call, start, intent)))
    }

    fn notice(&self, notice: &Notice, progress: &mut dyn Progress) {
        match notice {
            Notice::Retry {
                index,
                attempt,
                error,
                wait,
            } => {
                if let Some(step) = self.plan.steps.get(*index) {
                    progress.event(&Event::Retry {
                        step,
                        attempt: *attempt,
                        error,
                        wait: *wait,
                    });
                }
            }
            Notice::Slowed { per_minute } => progress.event(&Event::Slowed {
                per_minute: *per_minute,
            }),
        }
    }

    /// A running step's future ended: journal its outcome, learn the id it made, move on.
    fn ended(
        &mut self,
        index: usize,
        attempts: u32,
        outcome: Outcome,
        progress: &mut dyn Progress,
    ) -> Result<(), StateError> {
        let plan = self.plan;
        let Some(step) = plan.steps.get(index) else {
            return Ok(());
        };
        if let Some(report) = self.report.steps.get_mut(index) {
            report.attempts = attempts;
        }
        let key = self.keys.remove(&index).unwrap_or_else(|| step.id.clone());
        let already = self.journal.get(&key) == Some(&Some(StepOutcome::Succeeded));
        let status = match outcome {
            Outcome::Done { created, found } => {
                if !already {
                    self.state
                        .finish_step(&plan.id, &key, &StepOutcome::Succeeded, self.at)?;
                }
                if let Some(id) = created {
                    self.learn(&step.action, id)?;
                }
                if already {
                    StepStatus::AlreadyDone
                } else {
                    StepStatus::Done { found }
                }
            }
            Outcome::Failed { error, help } => {
                if !already {
                    self.state.finish_step(
                        &plan.id,
                        &key,
                        &StepOutcome::Failed(error.clone()),
                        self.at,
                    )?;
                }
                StepStatus::Failed { error, help }
            }
            Outcome::Interrupted => {
                self.interrupted(index, progress);
                return Ok(());
            }
        };
        self.end(index, status, progress)
    }

    /// A running step was cut short by a stop: its journal entry stays in flight, and neither
    /// its dependents nor its subject's bookkeeping follow.
    fn interrupted(&mut self, index: usize, progress: &mut dyn Progress) {
        let plan = self.plan;
        let Some(step) = plan.steps.get(index) else {
            return;
        };
        self.keys.remove(&index);
        if let Some(phase) = self.phase.get_mut(index) {
            *phase = Phase::Ended;
        }
        let status = StepStatus::Interrupted;
        progress.event(&Event::StepFinished {
            step,
            status: &status,
        });
        if let Some(report) = self.report.steps.get_mut(index) {
            report.status = status;
        }
        if let Some(open) = self.open.get_mut(&step.subject) {
            *open = None;
        }
    }

    /// Asked to stop at once: every step still running is left in flight.
    fn abandon(&mut self, progress: &mut dyn Progress) {
        let mut running: Vec<usize> = self.keys.keys().copied().collect();
        running.sort_unstable();
        for index in running {
            self.interrupted(index, progress);
        }
    }

    /// Remembers the id a create made, for later steps and in the state.
    fn learn(&mut self, action: &Action, id: i64) -> Result<(), StateError> {
        let ids = &mut self.resolver.ids;
        match action {
            // The user's id is not written to the state: plans find users by e-mail on the
            // instance, and one synced write fewer per user counts on a large apply.
            Action::CreateUser { email, .. } => {
                ids.users.insert(email.to_lowercase(), id);
            }
            Action::CreateOrganization { organization, .. } => {
                ids.organizations.insert(organization.customer.clone(), id);
                // Linked at once, so that a later plan finds it even if this apply stops
                // before the customer's other steps.
                self.state.set_organization(&organization.customer, id)?;
            }
            Action::CreateTeam { team, .. } => {
                ids.teams
                    .insert((team.organization.customer.clone(), team.name.clone()), id);
            }
            _ => {}
        }
        Ok(())
    }

    /// A step ended with `status`: its dependents become ready or are skipped, and its subject
    /// is recorded when it was the last one.
    fn end(
        &mut self,
        index: usize,
        status: StepStatus,
        progress: &mut dyn Progress,
    ) -> Result<(), StateError> {
        let plan = self.plan;
        let Some(step) = plan.steps.get(index) else {
            return Ok(());
        };
        if let Some(phase) = self.phase.get_mut(index) {
            *phase = Phase::Ended;
        }
        let succeeded = status.succeeded();
        progress.event(&Event::StepFinished {
            step,
            status: &status,
        });
        if let Some(report) = self.report.steps.get_mut(index) {
            report.status = status;
        }
        if succeeded {
            for &d in self
                .dependents
                .get(index)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let Some(w) = self.waiting_for.get_mut(d) {
                    *w = w.saturating_sub(1);
                    if *w == 0 && self.phase.get(d) == Some(&Phase::Waiting) {
                        self.ready.insert(d);
                    }
                }
            }
            let last = match self.open.get_mut(&step.subject) {
                Some(Some(n)) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                _ => false,
            };
            if last {
                self.record(&step.subject, progress)?;
            }
        } else {
            if let Some(open) = self.open.get_mut(&step.subject) {
                *open = None;
            }
            self.skip_dependents(index, progress);
        }
        Ok(())
    }

    /// Skips every step that waits, directly or not, for a step that did not succeed.
    fn skip_dependents(&mut self, failed: usize, progress: &mut dyn Progress) {
        let plan = self.plan;
        let because = plan
            .steps
            .get(failed)
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let mut stack: Vec<usize> = self.dependents.get(failed).cloned().unwrap_or_default();
        while let Some(d) = stack.pop() {
            if self.phase.get(d) != Some(&Phase::Waiting) {
                continue;
            }
            self.ready.remove(&d);
            if let Some(phase) = self.phase.get_mut(d) {
                *phase = Phase::Ended;
            }
            let Some(step) = plan.steps.get(d) else {
                continue;
            };
            let status = StepStatus::Skipped {
                because: because.clone(),
            };
            progress.event(&Event::StepFinished {
                step,
                status: &status,
            });
            if let Some(report) = self.report.steps.get_mut(d) {
                report.status = status;
            }
            if let Some(open) = self.open.get_mut(&step.subject) {
                *open = None;
            }
            stack.extend(self.dependents.get(d).cloned().unwrap_or_default());
        }
    }

    /// Every step of `subject` succeeded: the state records the customer or staff member.
    fn record(&mut self, subject: &str, progress: &mut dyn Progress) -> Result<(), StateError> {
        let plan = self.plan;
        if let Some(email) = subject.strip_prefix("staff:")
            && let Some(staff) = plan.staff.iter().find(|s| s.email == email)
        {
            self.ensure_lock()?;
            self.state.finish_staff(&plan.id, staff, self.at)?;
            self.report.staff.push(staff.email.clone());
            progress.event(&Event::StaffRecorded { staff });
            return Ok(());
        }
        if let Some(customer) = plan.customers.iter().find(|c| c.key == subject) {
            // An earlier apply of this same plan may have recorded the customer already:
            // its transitions are recorded once.
            if !customer.transitions.is_empty()
                && self
                    .state
                    .transitions(&customer.key)?
                    .iter()
                    .any(|t| t.plan.as_deref() == Some(plan.id.as_str()))
            {
                return Ok(());
            }
            let organization = self
                .resolver
                .ids
                .organizations
                .get(&customer.key)
                .copied()
                .or(customer.organization);
            self.ensure_lock()?;
            self.state
                .finish_customer(&plan.id, customer, organization, self.at)?;
            self.report.customers.push(customer.key.clone());
            self.report.transitions.extend(
                customer
                    .transitions
                    .iter()
                    .map(|t| (customer.key.clone(), t.name.clone())),
            );
            progress.event(&Event::CustomerRecorded { customer });
        }
        Ok(())
    }

    fn finish_report(
        &mut self,
        client: &Client,
        calls_before: u64,
        started: Instant,
        counters: Option<(&std::sync::atomic::AtomicU64, &std::sync::atomic::AtomicU64)>,
    ) {
        use std::sync::atomic::Ordering;
        self.report.calls = client.calls().saturating_sub(calls_before);
        if let Some((retries, rate_limited)) = counters {
            self.report.retries = retries.load(Ordering::Relaxed);
            self.report.rate_limited = rate_limited.load(Ordering::Relaxed);
        }
        self.report.elapsed = started.elapsed();
    }

    fn stop(
        mut self,
        error: StateError,
        client: &Client,
        calls_before: u64,
        started: Instant,
        counters: Option<(&std::sync::atomic::AtomicU64, &std::sync::atomic::AtomicU64)>,
    ) -> Stopped {
        self.finish_report(client, calls_before, started, counters);
        Stopped {
            error,
            report: Box::new(self.report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(entries: &[(&str, Option<StepOutcome>)]) -> HashMap<String, Option<StepOutcome>> {
        entries
            .iter()
            .map(|(k, o)| ((*k).to_owned(), o.clone()))
            .collect()
    }

    #[test]
    fn a_failed_step_is_begun_again_under_a_new_key_as_of_unknown_outcome() {
        let failed = Some(StepOutcome::Failed("500".to_owned()));
        assert_eq!(
            journal_key("user:a", &journal(&[])),
            ("user:a".to_owned(), Start::Fresh)
        );
        assert_eq!(
            journal_key("user:a", &journal(&[("user:a", None)])),
            ("user:a".to_owned(), Start::Unknown)
        );
        assert_eq!(
            journal_key(
                "user:a",
                &journal(&[("user:a", Some(StepOutcome::Succeeded))])
            ),
            ("user:a".to_owned(), Start::Done)
        );
        assert_eq!(
            journal_key("user:a", &journal(&[("user:a", failed.clone())])),
            ("user:a~2".to_owned(), Start::Unknown)
        );
        assert_eq!(
            journal_key(
                "user:a",
                &journal(&[("user:a", failed.clone()), ("user:a~2", failed)])
            ),
            ("user:a~3".to_owned(), Start::Unknown)
        );
        assert_eq!(step_of_key("user:a~3"), "user:a");
        assert_eq!(step_of_key("team:acme:R~D"), "team:acme:R~D");
    }
}
