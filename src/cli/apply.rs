//! `charter apply` and `charter run`: carry out a plan on the instance (or the embedded
//! sandbox) through the executor, with a progress bar on a terminal and plain lines otherwise.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{Config, InstanceArgs};
use super::instance::{Failure, with_instance};
use super::plan::{instance_name, plan_with};
use super::policy::{self, Output};
use super::{Outcome, parse_at, usage_error};
use crate::api::{Client, observe};
use crate::apply::{self, Event, Options, Report, StepStatus};
use crate::model::program::Program;
use crate::plan::{Action, Plan, render_text};
use crate::schedule::{changed_since, describe_changes};
use crate::state::State;

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
    /// Steps in flight at once; default `concurrency` of `charter.toml`, or 4.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// With a plan file: the policy set it was made from, for `charter.toml` and the state;
    /// default the one recorded in the plan.
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    instance: InstanceArgs,
}

/// Plan and apply what is due: once (for cron), or every DUR until stopped.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The policy set; read again before every round, so changes to it are picked up.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Run a round every DUR (`1h`, `15 min`) until SIGTERM or Ctrl-C; without it, one round.
    #[arg(long, value_name = "DUR", value_parser = super::parse_horizon, conflicts_with = "at")]
    every: Option<i64>,
    /// The instant of the round (one round only); default now.
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// Steps in flight at once; default `concurrency` of `charter.toml`, or 4.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    #[command(flatten)]
    instance: InstanceArgs,
}

/// How an apply ended, for the exit code.
enum Ended {
    NoChanges,
    Cancelled,
    Applied(Box<Report>),
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
    let work = |client: Client, config: Config| async move {
        let state = State::open(&config.state_path)?;
        let lock = state.acquire_lock("apply")?;
        let prepared = plan_with(&client, &state, program, at, &config).await?;
        let plan = prepared.plan;
        print!("{}", render_text(&plan));
        if !plan.has_changes() {
            return Ok(Ended::NoChanges);
        }
        if !auto_approve && !confirm(&plan, &instance_name(&config))? {
            return Ok(Ended::Cancelled);
        }
        let options = options(&config, concurrency, prepared.observed.calls.total());
        let report = execute(&client, &state, &lock, &plan, &options, at).await?;
        lock.release()?;
        Ok(Ended::Applied(Box::new(report)))
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
    // The policy set is read only for `charter.toml` and the state: the plan is carried out as
    // it was reviewed.
    let at = args.at.unwrap_or_else(super::now);
    let concurrency = args.concurrency;
    let work = |client: Client, config: Config| async move {
        let here = instance_name(&config);
        if here != plan.instance {
            return Err(Failure::new(
                format!("the plan was made for {}, not for {here}", plan.instance),
                Some("make a new plan for this instance with `charter plan -o`".to_owned()),
            ));
        }
        let state = State::open(&config.state_path)?;
        let lock = state.acquire_lock("apply")?;
        let observed = observe(&client).await?;
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
        print!("{}", render_text(&plan));
        if !plan.has_changes() {
            return Ok(Ended::NoChanges);
        }
        let options = options(&config, concurrency, observed.calls.total());
        let report = execute(&client, &state, &lock, &plan, &options, at).await?;
        lock.release()?;
        Ok(Ended::Applied(Box::new(report)))
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
            println!("Apply cancelled: nothing was changed.");
            Outcome::Success
        }
        Ended::Applied(report) => report_outcome(&report),
    }
}

fn report_outcome(report: &Report) -> Outcome {
    print_failures(report);
    println!("Apply: {}.", report.summary());
    if report.succeeded() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

fn print_failures(report: &Report) {
    for step in &report.steps {
        if let StepStatus::Failed { error, help } = &step.status {
            eprintln!("error: step `{}` failed: {error}", step.id);
            if let Some(help) = help {
                eprintln!("  help: {help}");
            }
        }
        if let StepStatus::Skipped { because } = &step.status {
            eprintln!(
                "skipped: step `{}`, because `{because}` did not succeed",
                step.id
            );
        }
    }
}

/// The executor's options from the configuration and the flag.
fn options(config: &Config, concurrency: Option<usize>, spent: u64) -> Options {
    Options {
        concurrency: concurrency
            .or_else(|| usize::try_from(config.concurrency).ok())
            .unwrap_or(apply::DEFAULT_CONCURRENCY)
            .max(1),
        spent,
        ..Options::with_rate_limit(config.rate_limit)
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
    eprint!(
        "Apply these {} calls to {instance}? Only `yes` is accepted: ",
        plan.calls()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    tokio::task::block_in_place(|| std::io::stdin().lock().read_line(&mut answer))
        .map_err(|e| Failure::new(format!("cannot read the answer: {e}"), None))?;
    Ok(answer.trim() == "yes")
}

/// Runs the executor with progress on stderr (a bar on a terminal, lines otherwise), stopping
/// cleanly on Ctrl-C or SIGTERM (the journal lets the next apply resume).
async fn execute(
    client: &Client,
    state: &State,
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
                "{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut progress = |event: &Event<'_>| match (&bar, event) {
        (Some(bar), Event::StepFinished { step, .. }) => {
            bar.inc(1);
            bar.set_message(step.id.clone());
        }
        (Some(bar), Event::Retry { .. } | Event::Reconciled(_)) => {
            if let Some(line) = event.line() {
                bar.println(line);
            }
        }
        (Some(_), _) => {}
        (None, _) => {
            if let Some(line) = event.line() {
                eprintln!("{line}");
            }
        }
    };
    let applying = apply::execute(client, state, Some(lock), plan, options, at, &mut progress);
    let result = tokio::select! {
        result = applying => result,
        () = stop_signal() => {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            return Err(Failure::new(
                "interrupted: the steps in flight are in the journal",
                Some("run `charter apply` (or `charter run`) again: it reads the instance, \
                      finds what was done, and carries out the rest".to_owned()),
            ));
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result.map_err(|stopped| {
        print_failures(&stopped.report);
        Failure::new(
            format!("the apply stopped: {}", stopped.error),
            Some(format!("so far: {}", stopped.report.summary())),
        )
    })?;
    let manual: Vec<&Action> = plan
        .steps
        .iter()
        .map(|s| &s.action)
        .filter(|a| !a.is_call())
        .collect();
    if !manual.is_empty() {
        println!("To do by hand:");
        for action in manual {
            if let Action::Manual { what, how } = action {
                println!("  ! {what}\n      {how}");
            }
        }
    }
    Ok(report)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads a saved plan file.
fn read_plan_file(path: &Path) -> Result<Plan, Outcome> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        eprintln!(
            "error: cannot read the plan file `{}`: {error}",
            path.display()
        );
        Outcome::Failure
    })?;
    Plan::from_json(&text).map_err(|error| {
        eprintln!("error: `{}`: {error}", path.display());
        if let Some(help) = error.help() {
            eprintln!("  help: {help}");
        }
        Outcome::Failure
    })
}

/// `charter run`: rounds of plan + apply, unattended.
pub(super) fn run_rounds(args: RunArgs, output: &Output) -> Outcome {
    // The first load decides where the configuration is, and whether the policy set is usable
    // at all; each round reads it again.
    if let Err(outcome) = policy::load(&args.path, output) {
        return outcome;
    }
    let path = args.path.clone();
    let every = args.every;
    let at = args.at;
    let concurrency = args.concurrency;
    let work = |client: Client, config: Config| async move {
        let state = State::open(&config.state_path)?;
        let lock = state.acquire_lock("run")?;
        let mut failed = false;
        loop {
            let now = at.unwrap_or_else(super::now);
            match round(
                &client,
                &state,
                &lock,
                &path,
                &config,
                now,
                concurrency,
                output,
            )
            .await
            {
                Ok(ok) => failed |= !ok,
                Err(failure) => {
                    failed = true;
                    eprintln!("error: {}", failure.message);
                    if let Some(help) = failure.help {
                        eprintln!("  help: {help}");
                    }
                    if every.is_none() {
                        break;
                    }
                }
            }
            let Some(every) = every else { break };
            let pause = Duration::from_secs(u64::try_from(every).unwrap_or(3600).max(1));
            eprintln!(
                "next round in {}",
                crate::model::license::human_duration(every)
            );
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop_signal() => {
                    eprintln!("stopped");
                    failed = false;
                    break;
                }
            }
        }
        lock.release()?;
        Ok(failed)
    };
    match with_instance(&args.path, &args.instance, output, work) {
        Ok((_, false)) => Outcome::Success,
        Ok((_, true)) => Outcome::Failure,
        Err(outcome) => outcome,
    }
}

/// One round: read the policy set, plan at `now`, apply. `Ok(false)` when a step failed.
#[allow(clippy::too_many_arguments)]
async fn round(
    client: &Client,
    state: &State,
    lock: &crate::state::LockGuard,
    path: &Path,
    config: &Config,
    now: i64,
    concurrency: Option<usize>,
    output: &Output,
) -> Result<bool, Failure> {
    let loaded = policy::load(path, output)
        .map_err(|_| Failure::new("the policy set has errors; nothing was applied", None))?;
    let program: &Program = &loaded.program;
    let prepared = plan_with(client, state, program, now, config).await?;
    let plan = prepared.plan;
    println!(
        "round at {}: {}",
        crate::model::time::format_instant(now),
        crate::plan::summary(&plan)
    );
    if !plan.has_changes() {
        return Ok(true);
    }
    print!("{}", render_text(&plan));
    let options = options(config, concurrency, prepared.observed.calls.total());
    let report = execute(client, state, lock, &plan, &options, now).await?;
    print_failures(&report);
    println!("Apply: {}.", report.summary());
    Ok(report.succeeded())
}
