//! `charter import`: link an instance's existing organizations to the policy set's customers in
//! charter's state (when the state is new or was lost), with the lifecycle state each is in.

use std::path::PathBuf;

use super::config::{Config, InstanceArgs};
use super::instance::with_instance;
use super::policy::{self, Output};
use super::{Outcome, parse_at};
use crate::api::{Client, observe};
use crate::plan::import::{Match, import};
use crate::state::State;

/// Adopt the instance's existing organizations into charter's state.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy set; `charter.toml` and `.charter/` are beside it.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// When the inferred lifecycle states take effect; default now.
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// Show what would be recorded, record nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    instance: InstanceArgs,
}

pub(super) fn run(args: Args, output: &Output) -> Outcome {
    let loaded = match policy::load(&args.path, output) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let program = &loaded.program;
    let at = args.at.unwrap_or_else(super::now);
    let dry_run = args.dry_run;
    let work = |client: Client, config: Config| async move {
        let state = State::open(&config.state_path)?;
        let memory = state.memory()?;
        let observed = observe(&client).await?;
        let found = import(program, &memory, &observed);
        let mut lines = Vec::new();
        let mut adopted = 0usize;
        for (key, found) in &found.customers {
            match found {
                Match::Linked { organization } => {
                    lines.push(format!(
                        "  = {key}: already linked to organization {organization}"
                    ));
                }
                Match::Adopt {
                    organization,
                    owner,
                    state: lifecycle_state,
                    because,
                    path,
                } => {
                    adopted += 1;
                    lines.push(format!(
                        "  + {key}: organization {organization} (owner {owner}), state \
                         {lifecycle_state} ({because})"
                    ));
                    if !dry_run {
                        let mut transitions = Vec::new();
                        let mut from = program.lifecycle.initial.clone();
                        for name in path {
                            if let Some(t) = program.lifecycle.transition(name) {
                                transitions.push((name.clone(), from.clone(), t.to.clone()));
                                from = t.to.clone();
                            }
                        }
                        state.import_customer(key, *organization, &transitions, at)?;
                    }
                }
                Match::Unmatched { reason } => {
                    lines.push(format!("  ? {key}: not matched: {reason}"));
                }
            }
        }
        for (id, name) in &found.unclaimed {
            lines.push(format!(
                "  ! organization {id} \"{name}\" belongs to no customer of the policy set"
            ));
        }
        let verb = if dry_run { "would adopt" } else { "adopted" };
        lines.push(format!(
            "Import: {verb} {adopted} of {} customers; {} organizations belong to none.",
            found.customers.len(),
            found.unclaimed.len()
        ));
        Ok(lines)
    };
    let (described, lines) = match with_instance(&args.path, &args.instance, output, work) {
        Ok(done) => done,
        Err(outcome) => return outcome,
    };
    outln!("Import from {described}:");
    for line in lines {
        outln!("{line}");
    }
    Outcome::Success
}
