//! `charter state show` and `charter state copy`, where a command's state is (one rule for
//! every command: `config::load`), and taking the state's lock with a visible wait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{self, InstanceArgs};
use super::policy::Output;
use super::{Outcome, usage_error};
use crate::model::license::human_duration;
use crate::model::time::format_instant;
use crate::state::{
    self, Location, LockGuard, LockOptions, StateError, Store, UrlError, is_postgres_url,
};

/// Look at or move charter's state.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print where the state is and what it holds: its instance, counts, schema version and
    /// who holds its lock.
    Show {
        /// The policy set whose state to show.
        #[arg(default_value = ".")]
        path: PathBuf,
        #[command(flatten)]
        instance: InstanceArgs,
    },
    /// Copy a state, whole, to another place or backend (a file or a `postgres://` URL):
    /// SQLite to PostgreSQL to adopt a shared state, PostgreSQL to SQLite to rehearse locally.
    Copy {
        /// The state to copy: a file or a `postgres://` URL.
        from: String,
        /// Where to copy it: a file or a `postgres://` URL (created when missing).
        to: String,
        /// Replace what the target holds (otherwise a target that is not empty is refused).
        #[arg(long)]
        force: bool,
    },
}

pub(super) fn run(args: Args, output: &Output) -> Outcome {
    match args.command {
        Command::Show { path, instance } => show(&path, &instance, output),
        Command::Copy { from, to, force } => copy(&from, &to, force),
    }
}

/// The `--lock-timeout` flag's reader.
pub(super) fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    crate::model::time::parse_duration(text)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is not a duration such as `5 min`, `30 s` or `0`"))
}

/// Takes the state's lock for `purpose`, waiting up to `wait` while another runner holds it,
/// and saying so on stderr once.
pub(super) fn lock(store: &Store, purpose: &str, wait: Duration) -> Result<LockGuard, StateError> {
    let options = LockOptions {
        wait,
        ..LockOptions::new(purpose)
    };
    store.acquire_lock_waiting(&options, &mut |holder| {
        eoutln!(
            "waiting for the state's lock: `{}` (process `{}` on `{}`) holds it since {}; \
             giving up after {} (`--lock-timeout`)",
            holder.purpose,
            holder.pid,
            holder.host,
            format_instant(holder.acquired_at),
            human_duration(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX))
        );
    })
}

/// Where a command's state is, by the rule every command follows (`--state`, `CHARTER_STATE`,
/// `[state]` in `charter.toml`, `.charter/state.db`).
pub(super) fn location(
    policy: &Path,
    flag: Option<String>,
    output: &Output,
) -> Result<Location, Outcome> {
    let env = |name: &str| std::env::var(name).ok();
    let args = InstanceArgs {
        state: flag,
        ..InstanceArgs::default()
    };
    config::load(policy, &args, &env)
        .map(|config| config.state)
        .map_err(|error| super::instance::config_failure(error, output))
}

fn show(path: &Path, instance: &InstanceArgs, output: &Output) -> Outcome {
    let env = |name: &str| std::env::var(name).ok();
    let config = match config::load(path, instance, &env) {
        Ok(config) => config,
        Err(error) => return super::instance::config_failure(error, output),
    };
    let store = match Store::open_existing(&config.state) {
        Ok(Some(store)) => store,
        Ok(None) => {
            outln!(
                "state: {} (not created yet: it holds nothing)",
                config.state
            );
            return Outcome::Success;
        }
        Err(error) => return failed(&error),
    };
    let described = (|| -> Result<(), StateError> {
        outln!(
            "state: {} ({})",
            store.shown(),
            match store.location() {
                Location::File(_) => "SQLite",
                Location::Postgres(_) => "PostgreSQL",
            }
        );
        outln!(
            "schema version: {} (this charter writes {})",
            store.schema_version()?,
            state::schema::current_version()
        );
        match store.instance()? {
            Some(bound) => outln!("instance: {}", bound.describe()),
            None => outln!("instance: none yet (bound on first use)"),
        }
        let contents = store.contents()?;
        let counts: Vec<String> = contents
            .counts()
            .into_iter()
            .filter(|(table, _)| *table != "instance")
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        outln!("holds: {}", counts.join(", "));
        let unfinished = store.unfinished_plans()?;
        if !unfinished.is_empty() {
            outln!(
                "unfinished plans: {} (the next apply or run resumes them)",
                unfinished.join(", ")
            );
        }
        match store.lock_holder()? {
            Some(holder) => outln!(
                "lock: held by `{}` (process `{}` on `{}`) since {}",
                holder.purpose,
                holder.pid,
                holder.host,
                format_instant(holder.acquired_at)
            ),
            None => outln!("lock: free"),
        }
        Ok(())
    })();
    match described {
        Ok(()) => Outcome::Success,
        Err(error) => failed(&error),
    }
}

/// A `state copy` argument: a URL (its password from the URL, `PGPASSWORD` or a password
/// file) or a file.
fn argument(text: &str) -> Result<Location, UrlError> {
    let env = |name: &str| std::env::var(name).ok();
    let location = Location::parse(text, Path::new(""))?;
    Ok(match location {
        Location::Postgres(target) if !target.has_password() => {
            let password = env(config::ENV_PGPASSWORD)
                .map(state::Password::new)
                .or_else(|| config::password_file(&target, &env));
            Location::Postgres(target.with_password(password))
        }
        other => other,
    })
}

fn copy(from: &str, to: &str, force: bool) -> Outcome {
    let (from, to) = match (argument(from), argument(to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(error), _) | (_, Err(error)) => return usage_error(&error.to_string(), None),
    };
    if from == to {
        return usage_error(&format!("`{from}` is both the source and the target"), None);
    }
    let source = match &from {
        Location::File(path) if !path.exists() && !is_postgres_url(&from.to_string()) => {
            return usage_error(&format!("there is no state at `{}`", path.display()), None);
        }
        _ => match Store::open(&from) {
            Ok(store) => store,
            Err(error) => return failed(&error),
        },
    };
    let copied = Store::open(&to).and_then(|target| {
        // Nobody may act on the source while it is read, nor on the target while written.
        let _source_lock = lock(&source, "state copy", Duration::ZERO)?;
        let _target_lock = lock(&target, "state copy", Duration::ZERO)?;
        state::copy(&source, &target, force)
    });
    match copied {
        Ok(contents) => {
            let counts: Vec<String> = contents
                .counts()
                .into_iter()
                .map(|(table, n)| format!("{n} {table}"))
                .collect();
            outln!("copied `{from}` to `{to}`: {}", counts.join(", "));
            Outcome::Success
        }
        Err(error) => failed(&error),
    }
}

fn failed(error: &StateError) -> Outcome {
    eoutln!("error: {error}");
    if let Some(help) = error.help() {
        eoutln!("  help: {help}");
    }
    Outcome::Failure
}
