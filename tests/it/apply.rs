//! The executor against the sandbox over loopback HTTP: every fault kind at a high rate, a step
//! that fails for good, the lifecycle bookkeeping, and applies interrupted half-way.
//!
//! Each test runs two sandboxes on one database file: a faulty one that the executor applies
//! through, and a clean one that observes and plans (observing takes dozens of calls and does
//! not retry, so under a 30 % fault rate it would almost never get through).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use charter::api::limiter::{DEFAULT_SHARE, Limiter, RateLimit};
use charter::api::pacing::{DEFAULT_SEED, Pacing};
use charter::api::{Client, ClientOptions, Observed, Token, observe};
use charter::apply::{self, Event, Options, Report, RetryPolicy, StepStatus, Stop};
use charter::model::license::LicenseValue;
use charter::model::program::Program;
use charter::model::time::parse_instant;
use charter::plan::{self, Action, Plan};
use charter::state::Store;
use charter_sandbox::{self as sandbox, Config, Faults, RunningSandbox, Storage};

const ACME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/acme");

fn acme() -> Program {
    let set = charter::policy::load(Path::new(ACME))
        .unwrap_or_else(|_| panic!("the example policy set loads"));
    set.checked.program.expect("the example policy set checks")
}

/// The sandbox's counting window (and charter's) in the rate-limit test: a minute, shortened.
const WINDOW: Duration = Duration::from_secs(6);

fn t(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

fn scratch(name: &str) -> common::Scratch {
    common::scratch("apply", name)
}

/// A faulty sandbox and a clean one on the same database, and charter's state.
struct World {
    dir: common::Scratch,
    faulty: RunningSandbox,
    clean: RunningSandbox,
    applier: Client,
    reader: Client,
    state: Store,
    program: Program,
}

impl World {
    async fn new(name: &str, faults: Faults, client: ClientOptions) -> World {
        let dir = scratch(name);
        let storage = Storage::File(dir.join("sandbox.db"));
        let clean = sandbox::start(Config {
            storage: storage.clone(),
            ..Config::default()
        })
        .await
        .unwrap();
        let faulty = sandbox::start(Config {
            storage,
            faults,
            seed: 7,
            ..Config::default()
        })
        .await
        .unwrap();
        let token = || Token::new(sandbox::DEFAULT_TOKEN).unwrap();
        let applier = Client::new(&format!("http://{}", faulty.addr()), token(), client)
            .unwrap()
            .paced(pacing());
        let reader = Client::new(
            &format!("http://{}", clean.addr()),
            token(),
            ClientOptions::default(),
        )
        .unwrap();
        let state = Store::open_file(&dir.join("state.db")).unwrap();
        World {
            dir,
            faulty,
            clean,
            applier,
            reader,
            state,
            program: acme(),
        }
    }

    async fn observe(&self) -> Observed {
        observe(&self.reader).await.unwrap()
    }

    async fn plan(&self, at: i64) -> Plan {
        let observed = self.observe().await;
        let memory = self.state.memory().unwrap();
        let context = plan::Context {
            instance: self.reader.url().to_string(),
            token_user: None,
            ..plan::Context::default()
        };
        plan::plan(&self.program, at, &memory, &observed, &context)
            .unwrap_or_else(|errors| panic!("no plan: {errors:?}"))
            .seal()
    }

    async fn apply(&self, plan: &Plan, options: &Options, at: i64) -> Report {
        let lock = self.state.acquire_lock("apply test").unwrap();
        let report = apply::execute(
            &self.applier,
            &self.state,
            Some(&lock),
            plan,
            options,
            at,
            &mut (),
        )
        .await
        .unwrap();
        lock.release().unwrap();
        report
    }

    /// The instance is what the policy wants at `at`: planning again finds nothing to do, no
    /// address or organization is there twice, and the journal has nothing in flight.
    async fn assert_converged(&self, at: i64) {
        let again = self.plan(at).await;
        assert!(
            !again.has_changes(),
            "planning again finds changes:\n{}",
            plan::render_text(&again)
        );
        let observed = self.observe().await;
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &observed.organizations {
            *names.entry(o.name.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = names.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "duplicate organizations: {twice:?}");
        assert_eq!(
            observed.organizations.len(),
            self.program.customers.len(),
            "one organization per customer"
        );
        let mut emails: Vec<String> = observed
            .users
            .iter()
            .map(|u| u.email.to_lowercase())
            .collect();
        let all = emails.len();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), all, "duplicate users");
        assert!(self.state.unfinished_plans().unwrap().is_empty());
        for c in &self.program.customers {
            let linked = self.state.organization(&c.key).unwrap();
            let on_instance = observed
                .organizations
                .iter()
                .find(|o| o.name == c.name)
                .map(|o| o.id);
            assert_eq!(linked, on_instance, "customer `{}` is linked", c.key);
        }
    }

    async fn shutdown(self) {
        drop(self.applier);
        drop(self.reader);
        self.faulty.shutdown().await.unwrap();
        self.clean.shutdown().await.unwrap();
    }
}

/// How the applier paces its calls: quick retries, patient enough for a 30 % fault rate
/// (0.3¹² is one in two million), and a limit well above what the sandbox answers, as a user
/// configures their plan's `apiLimit`: injected 429s then slow the limiter to half of it at
/// most, rather than to the 60 a minute that a charter told no limit assumes after its first
/// 429.
fn pacing() -> Pacing {
    let limiter = Limiter::new(RateLimit {
        per_minute: 60_000,
        share: DEFAULT_SHARE,
    });
    let retry = RetryPolicy {
        max_attempts: 12,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(200),
        settle: Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    Pacing::new(limiter, retry, DEFAULT_SEED)
}

fn options() -> Options {
    Options {
        concurrency: 4,
        ..Options::default()
    }
}

fn faults(spec: &str) -> Faults {
    spec.parse().unwrap()
}

/// Applies the first plan through the faults and checks that one apply was enough.
async fn one_apply_converges(name: &str, spec: &str, client: ClientOptions) -> Report {
    let world = World::new(name, faults(spec), client).await;
    let at = t("2026-03-01");
    let plan = world.plan(at).await;
    assert!(plan.calls() > 100, "the example plan is a real one");
    let report = world.apply(&plan, &options(), at).await;
    assert!(
        report.succeeded(),
        "every step succeeds: {:#?}",
        report
            .steps
            .iter()
            .filter(|s| !s.status.succeeded())
            .collect::<Vec<_>>()
    );
    assert_eq!(report.done() + report.manual(), plan.steps.len());
    world.assert_converged(at).await;
    // Every customer and staff member was recorded, once.
    assert_eq!(report.customers.len(), world.program.customers.len());
    assert_eq!(report.staff.len(), world.program.staff.len());
    world.shutdown().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_ends_in_the_desired_state() {
    let report = one_apply_converges("429", "429=0.3", ClientOptions::default()).await;
    assert!(report.rate_limited > 10, "{}", report.summary());
    assert!(report.retries >= report.rate_limited);
}

/// A real rate limit, which charter is not told: the sandbox takes `calls − 10` calls a
/// minute, counted over a sliding minute, so the last steps meet a full minute of 429s —
/// longer than ten attempts of backoff capped at 20 s last, which is how steps used to fail. A
/// 429 now uses no attempt, and the first one sets the shared bucket to what the instance
/// took: the remaining calls wait for the minute to slide and go through. The minute is
/// shortened to [`WINDOW`], for the sandbox and charter alike (a `charter` command paces its
/// client the same way, with Make's minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_rate_limit_charter_was_not_told_ends_in_the_desired_state() {
    let world = World::new("real-limit", Faults::default(), ClientOptions::default()).await;
    let at = t("2026-03-01");
    let plan = world.plan(at).await;
    let calls = u32::try_from(plan.calls()).unwrap();
    assert!(calls > 100, "the example plan is a real one");
    let limit = calls - 10;
    let limited = sandbox::start(Config {
        storage: Storage::File(world.dir.join("sandbox.db")),
        rate_limit_per_minute: Some(limit),
        rate_limit_window: WINDOW,
        ..Config::default()
    })
    .await
    .unwrap();
    // charter's defaults, and no limit given: what `charter apply` does with no `rate_limit`.
    let limiter = Limiter::adaptive().with_window(WINDOW);
    let applier = Client::new(
        &format!("http://{}", limited.addr()),
        Token::new(sandbox::DEFAULT_TOKEN).unwrap(),
        ClientOptions::default(),
    )
    .unwrap()
    .paced(Pacing::new(limiter, RetryPolicy::default(), 7));
    let options = Options::default();
    let mut slowed = Vec::new();
    let mut progress = |event: &Event<'_>| {
        if let Event::Slowed { .. } = event {
            slowed.push(event.line().unwrap_or_default());
        }
    };
    let lock = world.state.acquire_lock("apply test").unwrap();
    let report = apply::execute(
        &applier,
        &world.state,
        Some(&lock),
        &plan,
        &options,
        at,
        &mut progress,
    )
    .await
    .unwrap();
    lock.release().unwrap();
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(report.succeeded(), "{}", report.summary());
    assert_eq!(report.done() + report.manual(), plan.steps.len());
    // The instance did refuse calls, and charter slowed down rather than hammer it: a few 429s
    // (the first, and the calls in flight with it), not a storm.
    assert!(report.rate_limited >= 1, "{}", report.summary());
    assert!(report.rate_limited < 20, "{}", report.summary());
    assert!(!slowed.is_empty(), "{}", report.summary());
    assert!(
        slowed
            .iter()
            .all(|line| line.starts_with("the instance answered 429: calls now go at")),
        "{slowed:?}"
    );
    // The minute has to slide once, and then the last calls go at the learned rate.
    assert!(
        report.elapsed > WINDOW.mul_f64(0.9) && report.elapsed < WINDOW * 3,
        "{}",
        report.summary()
    );
    world.assert_converged(at).await;
    drop(applier);
    limited.shutdown().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_burst_ends_in_the_desired_state_without_duplicates() {
    let report = one_apply_converges("500", "500=0.3", ClientOptions::default()).await;
    assert!(report.retries > 10, "{}", report.summary());
    // A 500 on a create leaves its outcome unknown: the lookups that follow find nothing
    // (the sandbox fails before carrying the call out) and the create is sent again.
    assert_eq!(report.found(), 0, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_but_lost_answers_are_found_by_reading_not_sent_twice() {
    let report = one_apply_converges("lost", "lost=0.3", ClientOptions::default()).await;
    // Lost answers of creates and transfers were found on the instance; the convergence check
    // has shown that none was made twice.
    assert!(report.found() > 5, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_and_timeouts_end_in_the_desired_state() {
    // A third of the calls take 400 ms, past the client's 250 ms timeout: whether a write that
    // timed out was carried out is unknown, so creates are looked up (after `settle`, in case
    // the instance is still at it) before being sent again.
    let client = ClientOptions {
        request_timeout: Duration::from_millis(250),
        ..ClientOptions::default()
    };
    let report = one_apply_converges("latency", "latency=0.3:400ms", client).await;
    assert!(report.retries > 10, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_once_ends_in_the_desired_state() {
    let report = one_apply_converges(
        "all",
        "429=0.15,500=0.15,latency=0.1:20ms,lost=0.15",
        ClientOptions::default(),
    )
    .await;
    assert!(
        report.rate_limited > 0 && report.found() > 0,
        "{}",
        report.summary()
    );
}

/// Makes the license of one step invalid (the sandbox refuses `auditLogsDays` over 365), so
/// that the step fails for good.
fn break_license(plan: &mut Plan, step_id: &str) {
    let step = plan
        .steps
        .iter_mut()
        .find(|s| s.id == step_id)
        .unwrap_or_else(|| panic!("no step `{step_id}`"));
    match &mut step.action {
        Action::CreateOrganization { license, .. } | Action::SetLicense { license, .. } => {
            let index = charter::model::catalog::index_of("auditLogsDays").unwrap();
            license.0.set(index, LicenseValue::Int(9999));
        }
        other => panic!("`{step_id}` is {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_skips_its_dependents_and_nothing_else() {
    let world = World::new("dependency", Faults::default(), ClientOptions::default()).await;
    let at = t("2026-03-01");
    let mut plan = world.plan(at).await;
    break_license(&mut plan, "organization:acme");
    let mut lines = Vec::new();
    let mut progress = |event: &Event<'_>| {
        if let Some(line) = event.line() {
            lines.push(line);
        }
    };
    let report = apply::execute(
        &world.applier,
        &world.state,
        None,
        &plan,
        &options(),
        at,
        &mut progress,
    )
    .await
    .unwrap();
    assert!(!report.succeeded());
    assert_eq!(report.failed(), 1, "{}", report.summary());
    let status = |id: &str| {
        report
            .steps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.status.clone())
            .unwrap_or_else(|| panic!("no step `{id}`"))
    };
    match status("organization:acme") {
        StepStatus::Failed { error, .. } => {
            assert!(error.contains("auditLogsDays"), "{error}");
            assert!(error.contains("400"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // Everything that needs Acme's organization is skipped, naming the step it waited for.
    let acme_dependents: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.subject == "acme" && !s.id.starts_with("user:"))
        .filter(|s| s.id != "organization:acme")
        .collect();
    assert!(acme_dependents.len() >= 4);
    for s in &acme_dependents {
        assert_eq!(
            status(&s.id),
            StepStatus::Skipped {
                because: "organization:acme".to_owned()
            },
            "{}",
            s.id
        );
    }
    // Acme's people were still created, and every other customer was carried out in full.
    assert_eq!(
        status("user:jane@acme.example"),
        StepStatus::Done { found: false }
    );
    assert_eq!(
        report.skipped(),
        acme_dependents.len(),
        "{}",
        report.summary()
    );
    assert!(!report.customers.contains(&"acme".to_owned()));
    assert_eq!(report.customers.len(), world.program.customers.len() - 1);
    assert!(world.state.organization("acme").unwrap().is_none());
    assert!(!world.state.memory().unwrap().applied.contains_key("acme"));
    assert!(world.state.memory().unwrap().applied.contains_key("globex"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("skipped `role:acme:") && l.contains("`organization:acme`")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed `organization:acme`"))
    );

    // The next plan holds only Acme's part, and carries it out.
    let next = world.plan(at).await;
    assert!(
        next.steps.iter().all(|s| s.subject == "acme"),
        "{}",
        plan::render_text(&next)
    );
    let report = world.apply(&next, &options(), at).await;
    assert!(report.succeeded(), "{}", report.summary());
    world.assert_converged(at).await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_are_recorded_once_and_only_after_every_step_succeeded() {
    let world = World::new(
        "lifecycle",
        faults("500=0.2,lost=0.2"),
        ClientOptions::default(),
    )
    .await;
    let start = t("2026-03-01");
    let first = world.plan(start).await;
    let report = world.apply(&first, &options(), start).await;
    assert!(report.succeeded(), "{}", report.summary());
    assert!(world.state.transitions("hooli").unwrap().is_empty());

    // Hooli's contract ends on 2026-05-15; a week later it freezes: a new license.
    let frozen = t("2026-06-01");
    let mut plan = world.plan(frozen).await;
    let hooli = plan.customers.iter().find(|c| c.key == "hooli").unwrap();
    assert_eq!(hooli.transitions.len(), 1);
    assert_eq!(hooli.transitions[0].name, "freeze");
    assert!(plan.step("license:hooli").is_some());
    // The license step fails for good: the transition must not be recorded.
    break_license(&mut plan, "license:hooli");
    let report = world.apply(&plan, &options(), frozen).await;
    assert_eq!(report.failed(), 1, "{}", report.summary());
    assert!(!report.transitions.iter().any(|(c, _)| c == "hooli"));
    assert!(world.state.transitions("hooli").unwrap().is_empty());
    assert_eq!(world.state.customer("hooli").unwrap().unwrap().state, None);
    // Customers whose transitions did go through are recorded.
    for (customer, _) in &report.transitions {
        assert_eq!(world.state.transitions(customer).unwrap().len(), 1);
    }

    // Planned again, the freeze is carried out and recorded once, at the apply's instant.
    let plan = world.plan(frozen).await;
    let report = world.apply(&plan, &options(), frozen).await;
    assert!(report.succeeded(), "{}", report.summary());
    assert!(
        report
            .transitions
            .contains(&("hooli".to_owned(), "freeze".to_owned()))
    );
    let recorded = world.state.transitions("hooli").unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].transition, "freeze");
    assert_eq!(recorded[0].at, frozen);
    assert_eq!(recorded[0].plan.as_deref(), Some(plan.id.as_str()));
    assert_eq!(
        world
            .state
            .customer("hooli")
            .unwrap()
            .unwrap()
            .state
            .as_deref(),
        Some("frozen")
    );

    // The same plan applied again finds everything done and records nothing twice.
    let again = world.apply(&plan, &options(), frozen).await;
    assert!(again.succeeded(), "{}", again.summary());
    assert!(
        again
            .steps
            .iter()
            .all(|s| s.status == StepStatus::AlreadyDone)
    );
    assert!(again.transitions.is_empty(), "{:?}", again.transitions);
    assert_eq!(world.state.transitions("hooli").unwrap().len(), 1);

    // Nothing left: a further apply records nothing again.
    world.assert_converged(frozen).await;
    let plan = world.plan(frozen).await;
    let report = world.apply(&plan, &options(), frozen).await;
    assert!(report.transitions.is_empty());
    assert_eq!(world.state.transitions("hooli").unwrap().len(), 1);
    world.shutdown().await;
}

/// Runs an apply and drops it (as a kill would stop it) once `after` steps have started.
async fn interrupted(world: &World, plan: &Plan, options: &Options, at: i64, after: usize) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut started = 0;
    let notify = stop.clone();
    let mut progress = |event: &Event<'_>| {
        if let Event::StepStarted { .. } = event {
            started += 1;
            if started == after {
                notify.notify_one();
            }
        }
    };
    tokio::select! {
        report = apply::execute(&world.applier, &world.state, None, plan, options, at, &mut progress) => {
            panic!("the apply ended before it was stopped: {}", report.unwrap().summary());
        }
        () = stop.notified() => {}
    }
    // Let the calls that reached the sandbox finish there, as they would after a kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_apply_resumes_by_planning_again() {
    let world = World::new("resume", faults("lost=0.2"), ClientOptions::default()).await;
    let at = t("2026-03-01");
    let options = options();
    let mut stopped = Vec::new();
    for (round, after) in [10, 30, 30].into_iter().enumerate() {
        let plan = world.plan(at).await;
        assert!(!stopped.contains(&plan.id), "each round plans anew");
        stopped.push(plan.id.clone());
        assert!(plan.has_changes(), "round {round}");
        interrupted(&world, &plan, &options, at, after).await;
        assert!(
            world.state.unfinished_plans().unwrap().contains(&plan.id),
            "the stopped apply left steps in flight"
        );
    }
    let plan = world.plan(at).await;
    let report = world.apply(&plan, &options, at).await;
    assert!(report.succeeded(), "{}", report.summary());
    // The steps the last stopped apply left in flight were closed by this one (those of the
    // rounds before by the round after them), and nothing is left in flight.
    assert!(!report.reconciled.is_empty());
    assert!(
        report
            .reconciled
            .iter()
            .all(|r| Some(&r.plan) == stopped.last()),
        "{:#?}",
        report.reconciled
    );
    assert!(world.state.unfinished_plans().unwrap().is_empty());
    for id in &stopped {
        assert!(world.state.unfinished_steps(id).unwrap().is_empty());
    }
    world.assert_converged(at).await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_plan_applied_again_repeats_nothing_finished() {
    let world = World::new("same-plan", faults("lost=0.2"), ClientOptions::default()).await;
    let at = t("2026-03-01");
    let options = options();
    let plan = world.plan(at).await;
    interrupted(&world, &plan, &options, at, 60).await;
    let journal = world.state.journal(&plan.id).unwrap();
    let finished = journal.iter().filter(|e| e.outcome.is_some()).count();
    assert!(finished > 20 && finished < plan.steps.len());
    let report = world.apply(&plan, &options, at).await;
    assert!(
        report.succeeded(),
        "{}: {:#?}",
        report.summary(),
        report
            .steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Failed { .. }))
            .collect::<Vec<_>>()
    );
    let again = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::AlreadyDone)
        .count();
    assert_eq!(again, finished, "finished steps are not carried out again");
    // Their creates were read back for their ids, never sent.
    for s in &report.steps {
        if s.status == StepStatus::AlreadyDone {
            assert_eq!(s.attempts, 0, "{}", s.id);
        }
    }
    world.assert_converged(at).await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_starts_no_step_leaves_what_it_cut_short_in_flight_and_the_next_apply_finishes() {
    let world = World::new("stop", faults("500=0.2"), ClientOptions::default()).await;
    let at = t("2026-03-01");
    let plan = world.plan(at).await;
    let stop = Stop::new();
    let stoppable = Options {
        stop: stop.clone(),
        ..options()
    };
    let mut started = 0;
    let mut started_after_stop = 0;
    let mut stopping = 0;
    let mut progress = |event: &Event<'_>| match event {
        Event::StepStarted { .. } => {
            if stop.requests() > 0 {
                started_after_stop += 1;
            }
            started += 1;
            if started == 20 {
                stop.request();
            }
        }
        Event::Stopping { .. } => stopping += 1,
        _ => {}
    };
    let report = apply::execute(
        &world.applier,
        &world.state,
        None,
        &plan,
        &stoppable,
        at,
        &mut progress,
    )
    .await
    .unwrap();
    assert!(report.stopped, "{}", report.summary());
    assert_eq!(started_after_stop, 0, "no step starts after the stop");
    assert_eq!(stopping, 1);
    assert_eq!(
        report.failed(),
        0,
        "a stop fails nothing: {}",
        report.summary()
    );
    assert!(report.not_run() > 50, "{}", report.summary());
    assert!(!report.succeeded());
    // What the stop cut short is in flight in the journal, and only that: the steps that got
    // their answers were journaled.
    let in_flight: Vec<String> = world
        .state
        .unfinished_steps(&plan.id)
        .unwrap()
        .into_iter()
        .map(|e| e.step.id)
        .collect();
    let interrupted: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Interrupted)
        .map(|s| s.id.clone())
        .collect();
    let mut sorted = in_flight.clone();
    sorted.sort();
    let mut expected = interrupted.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    assert!(
        report.summary().contains(" not run; "),
        "{}",
        report.summary()
    );

    // The next apply plans what is left and finishes it.
    let next = world.plan(at).await;
    let report = world.apply(&next, &options(), at).await;
    assert!(report.succeeded(), "{}", report.summary());
    world.assert_converged(at).await;
    world.shutdown().await;
}
