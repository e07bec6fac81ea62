//! `charter apply` and `charter run`: carry out a plan on the instance (or the embedded
//! sandbox) through the executor, with a progress bar on a terminal and plain lines otherwise.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{Config, InstanceArgs};
use super::instance::{Failure, Target, with_instance};
use super::plan::plan_with;
use super::policy::{self, Output};
use super::{Outcome, parse_at, usage_error};
use crate::api::Client;
use crate::apply::{self, Event, Options, Report, StepStatus, Stop};
use crate::model::program::Program;
use crate::plan::reading::Refresh;
use crate::plan::{Action, Plan, Step, render_text};
use crate::schedule::{changed_since, describe_changes};
use crate::state::{RoundStart, Store};

/// Carry out a plan: the policy set's, made now, or one saved by `charter plan -o`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The policy set, or a plan file saved by `charter plan -o FILE`.
    #[arg(default_value = ".")]
    target: PathBuf,
    /// The instant to plan for (`2027-02-08` or `2027-02-08T09:00:00Z`); default now. Also
    /// when the transitions it carries out are recorded as done.
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// Apply without asking (needed when standard input is not a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Steps in flight at once; default `concurrency` of `charter.toml`, or 8.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// With a plan file: the policy set it was made from, for `charter.toml`, the state and
    /// the verification after the apply; default the one recorded in the plan.
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    /// How long to wait for the state's lock while another runner holds it (`0`: not at all).
    #[arg(long, value_name = "DUR", value_parser = super::state::parse_lock_timeout, default_value = "5 min")]
    lock_timeout: Duration,
    #[command(flatten)]
    instance: InstanceArgs,
}

/// Plan and apply what is due: once (for cron), or every DUR until stopped.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The policy set; read again before every round, so changes to it are picked up.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Run a round every DUR (`1h`, `15 min`; at least `1 min`) until SIGTERM or Ctrl-C;
    /// without it, one round.
    #[arg(long, value_name = "DUR", value_parser = parse_every, conflicts_with = "at")]
    every: Option<i64>,
    /// The instant of the round (one round only); default now.
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// Steps in flight at once; default `concurrency` of `charter.toml`, or 8.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// How long to wait for the state's lock while another runner holds it (`0`: not at all).
    #[arg(long, value_name = "DUR", value_parser = super::state::parse_lock_timeout, default_value = "5 min")]
    lock_timeout: Duration,
    #[command(flatten)]
    instance: InstanceArgs,
}

/// Steps per second as the progress bar shows it: whole numbers, one decimal below ten.
fn rate(per_sec: f64) -> String {
    if per_sec < 10.0 {
        format!("{per_sec:.1} steps/s")
    } else {
        format!("{per_sec:.0} steps/s")
    }
}

/// The line that counts the customers and staff members an apply left unchanged.
fn unchanged_line((customers, staff): (usize, usize)) -> Option<String> {
    let count = |n: usize, one: &str, many: &str| match n {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    };
    let parts: Vec<String> = [
        count(customers, "customer", "customers"),
        count(staff, "staff member", "staff members"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| format!("unchanged: {}", parts.join(" and ")))
}

/// Reads `--every`; its error suggests intervals a run loop would take.
fn parse_every(text: &str) -> Result<i64, String> {
    crate::model::time::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as `1 h`, `15 min` or `1 day`"))
}

/// The shortest `--every`, in seconds: each round reads the whole instance, which costs calls
/// against the same per-minute limit the apply needs.
const SHORTEST_EVERY: i64 = 60;

/// For a plan that verifies no apply: no organization whose token-user membership is Make's
/// doing.
static NOTHING_CREATED: BTreeSet<String> = BTreeSet::new();

/// How an apply ended, for the exit code.
enum Ended {
    NoChanges,
    Cancelled,
    /// SIGTERM or Ctrl-C came before anything was applied.
    StoppedBefore,
    Applied(Box<Report>),
    /// Applied, then read back: the touched organizations match the policy (every report
    /// already printed).
    Verified,
    /// Applied, then read back: what still differs was printed.
    Unverified,
    /// Applied, then SIGTERM or Ctrl-C came while reading back: not verified.
    StoppedVerifying,
}

pub(super) fn run_apply(args: ApplyArgs, output: &Output) -> Outcome {
    let saved = args.target.is_file()
        && args
            .target
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if saved {
        return apply_saved(args, output);
    }
    let loaded = match policy::load(&args.target, output) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let at = args.at.unwrap_or_else(super::now);
    let program = &loaded.program;
    let auto_approve = args.auto_approve;
    let concurrency = args.concurrency;
    let lock_timeout = args.lock_timeout;
    let work = |client: Client, config: Config, target: Target| async move {
        // With a question to ask, Ctrl-C must still end charter at the prompt (reads only come
        // before it): the stop signal is listened for once the question is answered.
        let early = auto_approve.then(listen_for_stop);
        let state = Store::open(&config.state)?;
        let lock = super::state::lock(&state, "apply", lock_timeout)?;
        // Before planning, so that a plan made after another policy set's apply sees what
        // that apply created.
        let _instance_lock = target.lock("apply")?;
        let read = config.read_options(Refresh::Incremental);
        let planning = plan_with(
            &client,
            &state,
            program,
            at,
            &target,
            &NOTHING_CREATED,
            &read,
        );
        let prepared = match &early {
            Some(stop) => match unless_stopped(stop, planning).await {
                Some(prepared) => prepared?,
                None => return Ok(Ended::StoppedBefore),
            },
            None => planning.await?,
        };
        let plan = prepared.plan;
        out!("{}", render_text(&plan));
        if !plan.has_changes() {
            return Ok(Ended::NoChanges);
        }
        if !auto_approve && !confirm(&plan, &target.name)? {
            return Ok(Ended::Cancelled);
        }
        let stop = early.unwrap_or_else(listen_for_stop);
        let context = RoundContext {
            client: &client,
            state: &state,
            lock: &lock,
            config: &config,
            target: &target,
            concurrency,
            stop: &stop,
        };
        let ended = apply_verified(&context, program, &plan, at).await?;
        lock.release()?;
        Ok(ended)
    };
    match with_instance(&args.target, &args.instance, output, work) {
        Ok((_, ended)) => finish(ended),
        Err(outcome) => outcome,
    }
}

/// `charter apply plan.json`: only if every object the plan read is unchanged.
fn apply_saved(args: ApplyArgs, output: &Output) -> Outcome {
    let plan = match read_plan_file(&args.target) {
        Ok(plan) => plan,
        Err(outcome) => return outcome,
    };
    let Some(policy) = args
        .policy
        .clone()
        .or_else(|| plan.policy.as_ref().map(PathBuf::from))
    else {
        return usage_error(
            "the plan file does not say which policy set it was made from",
            Some("name it with `--policy PATH`".to_owned()),
        );
    };
    // The plan is carried out as it was reviewed. The policy set gives `charter.toml` and the
    // state, and, when the plan does what Make does not document, what to verify against: it is
    // read before anything is applied, so that a policy set with errors stops nothing halfway.
    let loaded = if unconfirmed(&plan).is_empty() {
        None
    } else {
        match policy::load(&policy, output) {
            Ok(loaded) => Some(loaded),
            Err(outcome) => {
                eoutln!(
                    "error: the plan creates organizations or changes their roles, which apply \
                     verifies against the policy set `{}`; nothing was applied",
                    policy.display()
                );
                return outcome;
            }
        }
    };
    let program = loaded.as_ref().map(|loaded| &loaded.program);
    let at = args.at.unwrap_or_else(super::now);
    let concurrency = args.concurrency;
    let lock_timeout = args.lock_timeout;
    let work = |client: Client, config: Config, target: Target| async move {
        let stop = listen_for_stop();
        let here = &target.name;
        if *here != plan.instance {
            return Err(Failure::new(
                format!("the plan was made for {}, not for {here}", plan.instance),
                Some("make a new plan for this instance with `charter plan -o`".to_owned()),
            ));
        }
        let state = Store::open(&config.state)?;
        let lock = super::state::lock(&state, "apply", lock_timeout)?;
        let _instance_lock = target.lock("apply")?;
        crate::schedule::bind(&client, &state, target.instance()).await?;
        let reading = crate::schedule::read_for_saved(&client, &state, &plan, at);
        let Some(observed) = unless_stopped(&stop, reading).await else {
            return Ok(Ended::StoppedBefore);
        };
        let observed = observed?;
        let changed = changed_since(&plan, &observed);
        if !changed.is_empty() {
            // Its own earlier apply is one way the instance changed: say so.
            let applied_before = !state.journal(&plan.id)?.is_empty();
            return Err(Failure::new(
                format!(
                    "the instance changed since the plan was made: {}",
                    describe_changes(&changed)
                ),
                Some(if applied_before {
                    "this plan was applied before (its steps are in the journal): make a new \
                     plan with `charter plan -o` for what is left, and review it"
                        .to_owned()
                } else {
                    "make a new plan with `charter plan -o` and review it".to_owned()
                }),
            ));
        }
        // Named as the instance names them now: the plan file's names may not be the truth.
        out!("{}", render_text(&plan.with_live_names(&observed)));
        if !plan.has_changes() {
            return Ok(Ended::NoChanges);
        }
        let context = RoundContext {
            client: &client,
            state: &state,
            lock: &lock,
            config: &config,
            target: &target,
            concurrency,
            stop: &stop,
        };
        let ended = match program {
            Some(program) => apply_verified(&context, program, &plan, at).await?,
            None => Ended::Applied(Box::new(execute_plan(&context, &plan, at).await?)),
        };
        lock.release()?;
        Ok(ended)
    };
    match with_instance(&policy, &args.instance, output, work) {
        Ok((_, ended)) => finish(ended),
        Err(outcome) => outcome,
    }
}

fn finish(ended: Ended) -> Outcome {
    match ended {
        Ended::NoChanges => Outcome::Success,
        Ended::Cancelled => {
            outln!("Apply cancelled: nothing was changed.");
            Outcome::Success
        }
        Ended::StoppedBefore => {
            eoutln!("error: stopped before applying anything: nothing was changed");
            Outcome::Failure
        }
        Ended::Applied(report) => report_outcome(&report),
        Ended::Verified => Outcome::Success,
        Ended::Unverified => Outcome::Failure,
        Ended::StoppedVerifying => {
            print_stopped_verifying();
            Outcome::Failure
        }
    }
}

/// What a stop while reading back leaves: an apply that was carried out, not verified.
fn print_stopped_verifying() {
    eoutln!(
        "error: stopped while verifying: the plan was applied, but the touched organizations \
         were not read back"
    );
    eoutln!("  help: run `charter plan` to see whether anything still differs from the policy");
}

fn report_outcome(report: &Report) -> Outcome {
    print_failures(report);
    outln!("Apply: {}.", report.summary());
    if report.stopped {
        print_stopped(report);
    }
    if report.succeeded() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

/// What a stop left undone, and what to do about it.
fn print_stopped(report: &Report) {
    let in_flight = report.interrupted();
    let not_started = report.not_run().saturating_sub(in_flight);
    eoutln!(
        "error: the apply was stopped: {not_started} {} not started, {in_flight} left in flight \
         in the journal",
        if not_started == 1 { "step" } else { "steps" }
    );
    eoutln!(
        "  help: run `charter apply` (or `charter run`) again: it reads the instance, finds what \
         was done, and carries out the rest"
    );
}

fn print_failures(report: &Report) {
    for step in &report.steps {
        if let StepStatus::Failed { error, help } = &step.status {
            eoutln!("error: step `{}` failed: {error}", step.id);
            if let Some(help) = help {
                eoutln!("  help: {help}");
            }
        }
        if let StepStatus::Skipped { because } = &step.status {
            eoutln!(
                "skipped: step `{}`, because `{because}` did not succeed",
                step.id
            );
        }
    }
}

/// The executor's options from the configuration and the flag.
/// How fast is not among them: the command's client is paced by `Config::pacing()`, whose
/// limiter its reads went through.
fn options(config: &Config, concurrency: Option<usize>, stop: &Stop) -> Options {
    Options {
        concurrency: concurrency
            .or_else(|| usize::try_from(config.concurrency).ok())
            .unwrap_or(apply::DEFAULT_CONCURRENCY)
            .max(1),
        stop: stop.clone(),
    }
}

/// Asks on the terminal; refuses when standard input is not one.
fn confirm(plan: &Plan, instance: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            "refusing to apply without confirmation: standard input is not a terminal",
            Some("review the plan, then run again with `--auto-approve`".to_owned()),
        ));
    }
    eout!(
        "Apply these {} calls to {instance}? Only `yes` is accepted: ",
        plan.calls()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    tokio::task::block_in_place(|| std::io::stdin().lock().read_line(&mut answer))
        .map_err(|e| Failure::new(format!("cannot read the answer: {e}"), None))?;
    Ok(answer.trim() == "yes")
}

/// Runs the executor with progress on stderr (a bar on a terminal, lines otherwise). It stops
/// cleanly when `options.stop` is requested (the journal lets the next apply resume); the
/// report then says `stopped`.
async fn execute(
    client: &Client,
    state: &Store,
    lock: &crate::state::LockGuard,
    plan: &Plan,
    options: &Options,
    at: i64,
) -> Result<Report, Failure> {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(u64::try_from(plan.steps.len()).unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} steps  {rate}  eta {eta}  {msg}",
            )
            .map(|style| {
                style.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate(state.per_sec()));
                    },
                )
            })
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    // Customers and staff members with nothing to change are counted, not listed one by one.
    let changed: BTreeSet<&str> = plan.steps.iter().map(|s| s.subject.as_str()).collect();
    let unchanged = std::cell::Cell::new((0_usize, 0_usize));
    let is_unchanged = |event: &Event<'_>| match event {
        Event::CustomerRecorded { customer } => {
            customer.transitions.is_empty() && !changed.contains(customer.key.as_str())
        }
        Event::StaffRecorded { staff } => {
            !changed.contains(format!("staff:{}", staff.email).as_str())
        }
        _ => false,
    };
    let mut progress = |event: &Event<'_>| match (&bar, event) {
        (_, Event::CustomerRecorded { .. }) if is_unchanged(event) => {
            let (customers, staff) = unchanged.get();
            unchanged.set((customers + 1, staff));
        }
        (_, Event::StaffRecorded { .. }) if is_unchanged(event) => {
            let (customers, staff) = unchanged.get();
            unchanged.set((customers, staff + 1));
        }
        (Some(bar), Event::StepFinished { step, .. }) => {
            bar.inc(1);
            bar.set_message(step.id.clone());
        }
        (
            Some(bar),
            Event::Retry { .. }
            | Event::Reconciled(_)
            | Event::Slowed { .. }
            | Event::Stopping { .. },
        ) => {
            if let Some(line) = event.line() {
                bar.println(line);
            }
        }
        (Some(_), _) => {}
        (None, _) => {
            if let Some(line) = event.line() {
                eoutln!("{line}");
            }
        }
    };
    let result = apply::execute(client, state, Some(lock), plan, options, at, &mut progress).await;
    if let Some(bar) = &bar {
        if result.as_ref().is_ok_and(|r| !r.stopped) {
            bar.finish_and_clear();
        } else {
            bar.abandon();
        }
    }
    if let Some(line) = unchanged_line(unchanged.get()) {
        eoutln!("{line}");
    }
    let report = result.map_err(|stopped| {
        print_failures(&stopped.report);
        Failure::new(
            format!("the apply stopped: {}", stopped.error),
            Some(format!("so far: {}", stopped.report.summary())),
        )
    })?;
    if report.stopped {
        return Ok(report);
    }
    let manual: Vec<&Action> = plan
        .steps
        .iter()
        .map(|s| &s.action)
        .filter(|a| !a.is_call())
        .collect();
    if !manual.is_empty() {
        outln!("To do by hand:");
        for action in manual {
            if let Action::Manual { what, how } = action {
                outln!("  ! {what}\n      {how}");
            }
        }
    }
    Ok(report)
}

/// Carries out a plan with the command's options.
async fn execute_plan(context: &RoundContext<'_>, plan: &Plan, at: i64) -> Result<Report, Failure> {
    let options = options(context.config, context.concurrency, context.stop);
    execute(
        context.client,
        context.state,
        context.lock,
        plan,
        &options,
        at,
    )
    .await
}

/// The one way `apply PATH`, `apply plan.json` and every round of `run` carry out a plan:
/// execute it and, if every step succeeded and the plan did what Make does not document,
/// [`verify`] the organizations it touched against `program`.
async fn apply_verified(
    context: &RoundContext<'_>,
    program: &Program,
    plan: &Plan,
    at: i64,
) -> Result<Ended, Failure> {
    let report = execute_plan(context, plan, at).await?;
    if report.stopped || !report.succeeded() {
        return Ok(Ended::Applied(Box::new(report)));
    }
    verify(context, program, at, plan, report).await
}

/// How many times `apply` reads back and corrects what Make does not document.
pub const VERIFICATION_ROUNDS: usize = 3;

/// Whether a plan changes memberships in ways whose effect Make does not document: a create
/// with `userOrgAdmin` (documented as "the admin of the organization", not as its owner), a
/// transfer (the previous owner's role after it), an organization role change.
fn unconfirmed(plan: &Plan) -> BTreeSet<&str> {
    plan.steps
        .iter()
        .filter(|s| {
            matches!(
                s.action,
                Action::CreateOrganization { .. }
                    | Action::TransferOwnership { .. }
                    | Action::SetOrganizationRole { .. }
            )
        })
        .map(|s| s.subject.as_str())
        .collect()
}

/// After an apply whose plan did what Make does not document, reads the instance back and
/// plans again: what still differs for the organizations it touched is applied in the same
/// `apply`, at most [`VERIFICATION_ROUNDS`] times; then it says that they match the policy, or
/// exactly which steps still differ. Each correction is a plan of its own, carried out by the
/// executor with all its guarantees (journal, exactly once, resume, stop).
async fn verify(
    context: &RoundContext<'_>,
    program: &Program,
    at: i64,
    plan: &Plan,
    report: Report,
) -> Result<Ended, Failure> {
    let touched: BTreeSet<String> = unconfirmed(plan).into_iter().map(str::to_owned).collect();
    if touched.is_empty() {
        return Ok(Ended::Applied(Box::new(report)));
    }
    print_failures(&report);
    outln!("Apply: {}.", report.summary());
    // Where the token's user may be a member only because Make made them one.
    let created: BTreeSet<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::CreateOrganization { organization, .. } => Some(organization.customer.clone()),
            _ => None,
        })
        .collect();
    for round in 1..=VERIFICATION_ROUNDS {
        let before = context.client.calls();
        // Not before the plan's instant (what was reviewed), nor before `at`, when the apply
        // recorded its transitions: planning earlier than a recorded transition is refused.
        let read = context.config.read_options(Refresh::Incremental);
        let planning = plan_with(
            context.client,
            context.state,
            program,
            at.max(plan.at),
            context.target,
            &created,
            &read,
        );
        let Some(prepared) = unless_stopped(context.stop, planning).await else {
            return Ok(Ended::StoppedVerifying);
        };
        let prepared = prepared?;
        let differs: Vec<&Step> = prepared
            .plan
            .steps
            .iter()
            .filter(|s| touched.contains(&s.subject))
            .collect();
        if differs.is_empty() {
            let calls = context.client.calls().saturating_sub(before);
            outln!(
                "Verified: the {} touched {} the policy after {round} verification {} \
                 ({calls} calls to read back and correct).",
                touched.len(),
                if touched.len() == 1 {
                    "organization matches"
                } else {
                    "organizations match"
                },
                if round == 1 { "round" } else { "rounds" },
            );
            return Ok(Ended::Verified);
        }
        if round == VERIFICATION_ROUNDS {
            let calls = context.client.calls().saturating_sub(before);
            eoutln!(
                "error: after {VERIFICATION_ROUNDS} verification rounds the touched \
                 organizations still differ from the policy ({calls} calls in the last round):"
            );
            for step in &differs {
                eoutln!("  {} ({})", step.id, step.subject);
            }
            return Ok(Ended::Unverified);
        }
        outln!(
            "Verification round {round}: {} {} still {} from the policy; applying {}:",
            differs.len(),
            if differs.len() == 1 { "step" } else { "steps" },
            if differs.len() == 1 {
                "differs"
            } else {
                "differ"
            },
            if differs.len() == 1 { "it" } else { "them" },
        );
        out!("{}", render_text(&prepared.plan));
        let report = execute_plan(context, &prepared.plan, at).await?;
        let calls = context.client.calls().saturating_sub(before);
        outln!(
            "Verification round {round}: {} ({calls} calls to read back and correct).",
            report.summary()
        );
        if report.stopped || !report.succeeded() {
            return Ok(Ended::Applied(Box::new(report)));
        }
    }
    Ok(Ended::Verified)
}

/// The one stop signal of a command: SIGTERM and Ctrl-C, listened for from now until the
/// command ends, each one a request to stop (the first stops cleanly, the second at once; see
/// `apply::Stop`). Listening is installed before this returns, so no signal that comes later is
/// missed, whatever the command is doing then.
fn listen_for_stop() -> Stop {
    let stop = Stop::new();
    let requests = stop.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            Some(()) = term.recv() => requests.request(),
                            Some(()) = interrupt.recv() => requests.request(),
                            else => break,
                        }
                    }
                });
            }
            (Err(error), _) | (_, Err(error)) => eoutln!(
                "warning: cannot listen for SIGTERM and Ctrl-C ({error}): either ends charter at \
                 once, leaving what was in flight to the journal"
            ),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                requests.request();
            }
        });
    }
    stop
}

/// Runs `work` unless a stop is requested first (`None`: then `work` is dropped, which is
/// safe for reads and planning).
async fn unless_stopped<T>(stop: &Stop, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = stop.requested(1) => None,
        value = work => Some(value),
    }
}

/// Reads a saved plan file.
fn read_plan_file(path: &Path) -> Result<Plan, Outcome> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        eoutln!(
            "error: cannot read the plan file `{}`: {error}",
            path.display()
        );
        Outcome::Failure
    })?;
    Plan::from_json(&text).map_err(|error| {
        eoutln!("error: `{}`: {error}", path.display());
        if let Some(help) = error.help() {
            eoutln!("  help: {help}");
        }
        Outcome::Failure
    })
}

/// `charter run`: rounds of plan + apply, unattended.
pub(super) fn run_rounds(args: RunArgs, output: &Output) -> Outcome {
    if let Some(every) = args.every
        && every < SHORTEST_EVERY
    {
        return usage_error(
            &format!(
                "`--every` must be at least {}, not `{}`",
                crate::model::license::human_duration(SHORTEST_EVERY),
                crate::model::license::human_duration(every)
            ),
            Some(
                "each round reads the whole instance, against the rate limit its apply needs \
                 too; for a single round, leave `--every` out"
                    .to_owned(),
            ),
        );
    }
    // The first load decides where the configuration is, and whether the policy set is usable
    // at all; each round reads it again.
    if let Err(outcome) = policy::load(&args.path, output) {
        return outcome;
    }
    let path = args.path.clone();
    let every = args.every;
    let at = args.at;
    let concurrency = args.concurrency;
    let lock_timeout = args.lock_timeout;
    let work = |client: Client, config: Config, target: Target| async move {
        let stop = listen_for_stop();
        let state = Store::open(&config.state)?;
        let mut failed = false;
        let mut first = true;
        loop {
            let now = at.unwrap_or_else(super::now);
            // With `--every`, rounds are due at multiples of the interval, whichever scheduler
            // carries them out.
            let due = every.map(|every| now - now.rem_euclid(every));
            // The first round says whether a full refresh would outlast the interval.
            let interval = if first { every } else { None };
            first = false;
            let result = match begin_round(&state, lock_timeout, due) {
                Ok(Some(lock)) => {
                    let context = RoundContext {
                        client: &client,
                        state: &state,
                        lock: &lock,
                        config: &config,
                        target: &target,
                        concurrency,
                        stop: &stop,
                    };
                    let done = round(&context, &path, now, output, interval).await;
                    end_round(&state, lock, due, done).map(Some)
                }
                Ok(None) => Ok(None),
                Err(failure) => Err(failure),
            };
            match result {
                Ok(Some(Round::Applied { succeeded })) => failed |= !succeeded,
                Ok(Some(Round::Stopped { left_undone })) => {
                    failed |= left_undone;
                    break;
                }
                Ok(None) => {}
                Err(failure) if every.is_some() => {
                    failed = true;
                    eoutln!("error: {}", failure.message);
                    if let Some(help) = failure.help {
                        eoutln!("  help: {help}");
                    }
                }
                Err(failure) => return Err(failure),
            }
            let (Some(every), Some(due)) = (every, due) else {
                break;
            };
            if stop.requests() > 0 {
                break;
            }
            let pause = due
                .saturating_add(every)
                .saturating_sub(super::now())
                .max(1);
            eoutln!(
                "next round in {}",
                crate::model::license::human_duration(pause)
            );
            let pause = Duration::from_secs(u64::try_from(pause).unwrap_or(3600));
            if unless_stopped(&stop, tokio::time::sleep(pause))
                .await
                .is_none()
            {
                break;
            }
        }
        if stop.requests() > 0 {
            eoutln!("stopped");
        }
        Ok(failed)
    };
    match with_instance(&args.path, &args.instance, output, work) {
        Ok((_, false)) => Outcome::Success,
        Ok((_, true)) => Outcome::Failure,
        Err(outcome) => outcome,
    }
}

/// Begins a round of `charter run` under the state's lock, taken for the round only (so that
/// an `apply` from CI gets its turn between rounds). With `due` (`--every`), the round is
/// recorded in the state, so that of several schedulers on one state exactly one carries it
/// out: `None` when another one already did.
fn begin_round(
    state: &Store,
    lock_timeout: Duration,
    due: Option<i64>,
) -> Result<Option<crate::state::LockGuard>, Failure> {
    let lock = super::state::lock(state, "run", lock_timeout)?;
    let Some(due) = due else {
        return Ok(Some(lock));
    };
    match state.begin_round(due, super::now())? {
        RoundStart::Begun => {}
        RoundStart::Resumed { host, pid } => eoutln!(
            "taking over the round due at {} from process `{pid}` on `{host}`, which did not \
             finish it",
            crate::model::time::format_instant(due)
        ),
        RoundStart::Finished {
            host,
            pid,
            finished_at,
        } => {
            outln!(
                "round due at {}: carried out by process `{pid}` on `{host}` at {}",
                crate::model::time::format_instant(due),
                crate::model::time::format_instant(finished_at)
            );
            lock.release()?;
            return Ok(None);
        }
    }
    Ok(Some(lock))
}

/// Ends a round begun by [`begin_round`]: recorded as carried out unless it was stopped or
/// failed (then the next scheduler to hold the lock carries it out), and the lock released.
fn end_round(
    state: &Store,
    lock: crate::state::LockGuard,
    due: Option<i64>,
    done: Result<Round, Failure>,
) -> Result<Round, Failure> {
    let round = done?;
    if let (Some(due), Round::Applied { .. }) = (due, &round) {
        state.finish_round(due, super::now())?;
    }
    lock.release()?;
    Ok(round)
}

/// What every round of `charter run` works with.
struct RoundContext<'a> {
    client: &'a Client,
    state: &'a Store,
    lock: &'a crate::state::LockGuard,
    config: &'a Config,
    target: &'a Target,
    concurrency: Option<usize>,
    stop: &'a Stop,
}

/// How a round ended.
enum Round {
    /// Planned, and applied if there was anything to do; `succeeded`: every step did.
    Applied { succeeded: bool },
    /// SIGTERM or Ctrl-C came first. `left_undone`: it came while applying, and steps of the
    /// plan were not carried out (the next run finishes them).
    Stopped { left_undone: bool },
}

/// One round: read the policy set, plan at `now`, apply. With `interval` (the time between
/// rounds), warns when a full refresh of the instance would take longer.
async fn round(
    context: &RoundContext<'_>,
    path: &Path,
    now: i64,
    output: &Output,
    interval: Option<i64>,
) -> Result<Round, Failure> {
    let loaded = policy::load(path, output)
        .map_err(|_| Failure::new("the policy set has errors; nothing was applied", None))?;
    let program: &Program = &loaded.program;
    // Each round takes the instance's lock for its plan and apply only, so that a daemon
    // leaves the instance to other policy sets between rounds.
    let _instance_lock = context.target.lock("run")?;
    let read = context.config.read_options(Refresh::Incremental);
    let planning = plan_with(
        context.client,
        context.state,
        program,
        now,
        context.target,
        &NOTHING_CREATED,
        &read,
    );
    let Some(prepared) = unless_stopped(context.stop, planning).await else {
        return Ok(Round::Stopped { left_undone: false });
    };
    let prepared = prepared?;
    if let Some(every) = interval
        && let Some(warning) = crate::schedule::full_refresh_warning(
            prepared.observed.organizations.len(),
            context.config.rate_limit,
            every,
        )
    {
        eoutln!("warning: {warning}");
    }
    let plan = prepared.plan;
    outln!(
        "round at {}: {}",
        crate::model::time::format_instant(now),
        crate::plan::summary(&plan)
    );
    if !plan.has_changes() {
        if let Some(reading) = &plan.reading {
            outln!("{}", crate::plan::describe_reading(reading));
        }
        return Ok(Round::Applied { succeeded: true });
    }
    out!("{}", render_text(&plan));
    Ok(match apply_verified(context, program, &plan, now).await? {
        Ended::Applied(report) => {
            let outcome = report_outcome(&report);
            if report.stopped {
                Round::Stopped { left_undone: true }
            } else {
                Round::Applied {
                    succeeded: matches!(outcome, Outcome::Success),
                }
            }
        }
        Ended::Verified => Round::Applied { succeeded: true },
        Ended::Unverified => Round::Applied { succeeded: false },
        Ended::StoppedVerifying => {
            print_stopped_verifying();
            Round::Stopped { left_undone: false }
        }
        Ended::NoChanges | Ended::Cancelled | Ended::StoppedBefore => {
            Round::Applied { succeeded: true }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{rate, unchanged_line};

    #[test]
    fn progress_rates_are_rounded() {
        assert_eq!(rate(359.3837), "359 steps/s");
        assert_eq!(rate(10.0), "10 steps/s");
        assert_eq!(rate(2.345), "2.3 steps/s");
        assert_eq!(rate(0.0), "0.0 steps/s");
    }

    #[test]
    fn unchanged_subjects_are_counted_in_one_line() {
        assert_eq!(unchanged_line((0, 0)), None);
        assert_eq!(
            unchanged_line((1, 0)).as_deref(),
            Some("unchanged: 1 customer")
        );
        assert_eq!(
            unchanged_line((16, 3)).as_deref(),
            Some("unchanged: 16 customers and 3 staff members")
        );
        assert_eq!(
            unchanged_line((0, 1)).as_deref(),
            Some("unchanged: 1 staff member")
        );
    }
}
