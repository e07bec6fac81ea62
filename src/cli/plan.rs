//! `charter plan`: read the instance (or the embedded sandbox) and charter's state, and print
//! the calls that would bring the instance to what the policy set describes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::config::{Config, InstanceArgs};
use super::instance::{Failure, Target, with_instance};
use super::policy::{self, Output};
use super::{Outcome, parse_at};
use crate::api::Client;
use crate::plan::reading::Refresh;
use crate::plan::{PlanError, render_text};
use crate::schedule::{PrepareError, Prepared, ReadOptions, prepare};
use crate::state::Store;

/// Show the admin-API calls that would bring the instance to the policy set.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy set (a `.charter` file or a folder); `charter.toml` and `.charter/` are beside
    /// it.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// The instant to plan for (`2027-02-08` or `2027-02-08T09:00:00Z`); default now.
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// Also save the plan to this file, for `charter apply FILE`.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// `text` for people, `json`: the plan file's content.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which memberships to read back: `incremental` (what can have changed and a rolling
    /// share), `full` (every organization's), `none` (all from charter's state).
    #[arg(long, value_enum, default_value_t = RefreshArg::Incremental)]
    refresh: RefreshArg,
    #[command(flatten)]
    instance: InstanceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RefreshArg {
    Incremental,
    Full,
    None,
}

impl From<RefreshArg> for Refresh {
    fn from(refresh: RefreshArg) -> Refresh {
        match refresh {
            RefreshArg::Incremental => Refresh::Incremental,
            RefreshArg::Full => Refresh::Full,
            RefreshArg::None => Refresh::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Runs `charter plan`: exit 0 when there is nothing to do, 2 when there are changes, 1 on
/// errors.
pub(super) fn run(args: Args, output: &Output) -> Outcome {
    let loaded = match policy::load(&args.path, output) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let at = args.at.unwrap_or_else(super::now);
    let program = &loaded.program;
    let refresh = Refresh::from(args.refresh);
    let work = |client: Client, config: Config, target: Target| async move {
        let state = Store::open(&config.state)?;
        let read = config.read_options(refresh);
        plan_with(
            &client,
            &state,
            program,
            at,
            &target,
            &BTreeSet::new(),
            &read,
        )
        .await
    };
    let (_, prepared) = match with_instance(&args.path, &args.instance, output, work) {
        Ok(done) => done,
        Err(outcome) => return outcome,
    };
    let mut plan = prepared.plan;
    if args.out.is_some() || args.format == Format::Json {
        // Where the configuration and the state are, for `charter apply FILE`.
        let policy = std::fs::canonicalize(&args.path).unwrap_or_else(|_| args.path.clone());
        plan.policy = Some(policy.display().to_string());
        plan = plan.seal();
    }
    match args.format {
        Format::Text => out!("{}", render_text(&plan)),
        Format::Json => outln!("{}", plan.to_json()),
    }
    if let Some(out) = &args.out {
        if let Err(error) = std::fs::write(out, plan.to_json() + "\n") {
            eoutln!(
                "error: cannot write the plan to `{}`: {error}",
                out.display()
            );
            return Outcome::Failure;
        }
        eoutln!(
            "Saved the plan to {}; `charter apply {}` carries it out if the instance has not \
             changed since.",
            out.display(),
            out.display()
        );
    }
    if plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    }
}

/// Reads and plans; plan errors are printed here, one by one.
pub(super) async fn plan_with(
    client: &Client,
    state: &Store,
    program: &crate::model::program::Program,
    at: i64,
    target: &Target,
    created: &BTreeSet<String>,
    read: &ReadOptions,
) -> Result<Prepared, Failure> {
    match prepare(client, state, program, at, target.instance(), created, read).await {
        Ok(prepared) => Ok(prepared),
        Err(PrepareError::Plan(errors)) => {
            print_plan_errors(&errors);
            Err(Failure::new(
                format!(
                    "no plan can be made: {} {}",
                    errors.len(),
                    if errors.len() == 1 {
                        "problem"
                    } else {
                        "problems"
                    }
                ),
                None,
            ))
        }
        Err(PrepareError::LaterHistory(later)) => {
            let elsewhere = if target.rehearsal {
                "or start the rehearsal over by deleting `.charter/rehearsal/`"
            } else {
                "or rehearse other instants with `--rehearse`, which keeps a state and an \
                 embedded sandbox of their own in `.charter/rehearsal/`"
            };
            let help = format!(
                "planning for an earlier instant would undo what was recorded; plan at or after \
                 it (`--at {}`), {elsewhere}",
                crate::model::time::format_instant(later.recorded_at)
            );
            Err(Failure::new(later.to_string(), Some(help)))
        }
        Err(PrepareError::Api(error)) => Err(error.into()),
        Err(PrepareError::State(error)) => Err(error.into()),
    }
}

pub(super) fn print_plan_errors(errors: &[PlanError]) {
    for error in errors {
        eoutln!("error: {}: {}", error.subject, error.message);
        if let Some(help) = &error.help {
            eoutln!("  help: {help}");
        }
    }
}
