//! `charter import`: link an instance's existing organizations to the policy set's customers in
//! charter's state (when the state is new or was lost), with the lifecycle state each is in.

use std::path::PathBuf;

use super::config::{Config, InstanceArgs};
use super::instance::{Target, with_instance};
use super::policy::{self, Output};
use super::{Outcome, parse_at, usage_error};
use crate::api::{Client, observe};
use crate::plan::import::{Match, import};
use crate::state::Store;

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
    /// Forget the organization linked to this customer (by key) and match it again by name
    /// and owner, as for a customer never linked; its lifecycle history is kept. Repeatable.
    #[arg(long, value_name = "CUSTOMER")]
    relink: Vec<String>,
    #[command(flatten)]
    instance: InstanceArgs,
}

pub(super) fn run(args: Args, output: &Output) -> Outcome {
    let loaded = match policy::load(&args.path, output) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let program = &loaded.program;
    for key in &args.relink {
        if !program.customers.iter().any(|c| c.key == *key) {
            let near =
                crate::diagnostic::suggest(key, program.customers.iter().map(|c| c.key.as_str()));
            return usage_error(
                &format!("`--relink`: no customer `{key}` in the policy set"),
                near.map(|near| format!("did you mean `{near}`?")),
            );
        }
    }
    let at = args.at.unwrap_or_else(super::now);
    let dry_run = args.dry_run;
    let relink = &args.relink;
    let work = |client: Client, config: Config, target: Target| async move {
        let state = Store::open(&config.state)?;
        crate::schedule::bind(&client, &state, target.instance()).await?;
        let mut memory = state.memory()?;
        let mut lines = Vec::new();
        for key in relink {
            if let Some(organization) = memory.organizations.remove(key) {
                lines.push(format!(
                    "  - {key}: unlinked from organization {organization}"
                ));
                if !dry_run {
                    state.unlink_customer(key)?;
                }
            }
        }
        let observed = observe(&client).await?;
        let found = import(program, &memory, &observed);
        let mut adopted = 0usize;
        for (key, found) in &found.customers {
            match found {
                Match::Linked { organization } => {
                    // Named as the instance names it, so a link that went wrong shows.
                    let named = observed.organization(*organization).map_or_else(
                        || " (not on the instance)".to_owned(),
                        |o| format!(" \"{}\"", o.name),
                    );
                    lines.push(format!(
                        "  = {key}: already linked to organization {organization}{named}"
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
                        // A customer relinked keeps the history it has: only the link is new.
                        if !state.transitions(key)?.is_empty() {
                            transitions.clear();
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
