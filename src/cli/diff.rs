//! `charter diff OLD NEW`: policy sets given as paths or as git revisions of a path
//! (`main:policies/acme`), which are read out of git into a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::BTreeMap;

use super::config::InstanceArgs;
use super::instance::with_instance;
use super::policy::{Loaded, Output, load};
use super::{DiffFormat, Outcome, usage_error};
use crate::api::{Client, OrganizationFilter};
use crate::compile::diff;

/// Where a policy set comes from.
enum Origin {
    Path(PathBuf),
    /// A revision and a path inside the repository.
    Git {
        revision: String,
        path: String,
    },
}

impl Origin {
    fn parse(spec: &str) -> Origin {
        if Path::new(spec).exists() {
            return Origin::Path(PathBuf::from(spec));
        }
        match spec.split_once(':') {
            Some((revision, path)) if !revision.is_empty() => Origin::Git {
                revision: revision.to_string(),
                path: path
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string(),
            },
            _ => Origin::Path(PathBuf::from(spec)),
        }
    }
}

/// A temporary folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn git(args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {}", e.to_string().to_lowercase()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim().to_lowercase();
        return Err(format!("`git {}` failed: {first}", args.join(" ")));
    }
    Ok(output.stdout)
}

/// Writes the files under `path` at `revision` into a new temporary folder; returns the folder
/// and the policy set's path inside it.
fn materialize(revision: &str, path: &str, label: &str) -> Result<(Scratch, PathBuf), String> {
    let prefix = String::from_utf8_lossy(&git(&["rev-parse", "--show-prefix"])?)
        .trim()
        .to_string();
    let full = format!("{prefix}{path}");
    let listing = git(&["ls-tree", "-r", "--name-only", revision, "--", &full])?;
    let files: Vec<String> = String::from_utf8_lossy(&listing)
        .lines()
        .map(str::to_string)
        .collect();
    if files.is_empty() {
        return Err(format!("`{revision}:{path}` has no files"));
    }
    let root = std::env::temp_dir().join(format!(
        "charter-diff-{}-{label}-{}",
        std::process::id(),
        revision.replace(['/', '~', '^', ':'], "_")
    ));
    let scratch = Scratch(root.clone());
    for file in &files {
        let content = git(&["show", &format!("{revision}:{file}")])?;
        let target = root.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string().to_lowercase())?;
        }
        std::fs::write(&target, content).map_err(|e| e.to_string().to_lowercase())?;
    }
    Ok((scratch, root.join(full)))
}

fn load_origin(
    spec: &str,
    label: &str,
    output: &Output,
) -> Result<(Option<Scratch>, Loaded), Outcome> {
    match Origin::parse(spec) {
        Origin::Path(path) => {
            if !path.exists() {
                return Err(usage_error(
                    &format!("`{spec}` is neither a path nor `REVISION:PATH`"),
                    Some("give a policy set's path, or a git revision of one such as `main:policies/acme`".to_string()),
                ));
            }
            load(&path, output).map(|l| (None, l))
        }
        Origin::Git { revision, path } => match materialize(&revision, &path, label) {
            Ok((scratch, dir)) => load(&dir, output).map(|l| (Some(scratch), l)),
            Err(e) => Err(usage_error(&e, None)),
        },
    }
}

/// What `charter diff` was asked.
pub(super) struct Request<'a> {
    pub(super) old: &'a str,
    pub(super) new: &'a str,
    pub(super) at: i64,
    pub(super) format: DiffFormat,
    pub(super) allow_breaking: bool,
    /// How to reach the instance, for `--live`.
    pub(super) live: Option<&'a InstanceArgs>,
}

pub(super) fn run(request: &Request<'_>, output: &Output) -> Outcome {
    let Request {
        old,
        new,
        at,
        format,
        allow_breaking,
        live,
    } = *request;
    let (_old_scratch, before) = match load_origin(old, "old", output) {
        Ok(x) => x,
        Err(outcome) => {
            eoutln!("error: the old policy set `{old}` does not check");
            return outcome;
        }
    };
    let (_new_scratch, after) = match load_origin(new, "new", output) {
        Ok(x) => x,
        Err(outcome) => {
            eoutln!("error: the new policy set `{new}` does not check");
            return outcome;
        }
    };
    let result = diff::diff(&before.program, &after.program, at);
    let impact = match live {
        None => None,
        Some(args) => {
            // The instance is the one configured for the new policy set (the one to roll out).
            let place = match Origin::parse(new) {
                Origin::Path(path) => path,
                Origin::Git { .. } => PathBuf::from("."),
            };
            match live_usage(&place, args, &after.program, output) {
                Ok((instance, usage)) => Some((
                    instance,
                    diff::live_impact(&result, &before.program, &after.program, at, &usage),
                )),
                Err(outcome) => return outcome,
            }
        }
    };
    match format {
        DiffFormat::Text => {
            out!("{}", diff::render_text(&result));
            if let Some((instance, impacts)) = &impact {
                out!("\n{}", diff::render_impact_text(impacts, instance));
            }
        }
        DiffFormat::Md => {
            out!("{}", diff::render_markdown(&result));
            if let Some((instance, impacts)) = &impact {
                out!("{}", diff::render_impact_markdown(impacts, instance));
            }
        }
        DiffFormat::Json => {
            let mut value = serde_json::to_value(&result).unwrap_or_default();
            if let (Some((instance, impacts)), Some(map)) = (&impact, value.as_object_mut()) {
                map.insert(
                    "live".to_string(),
                    serde_json::json!({ "instance": instance, "impacts": impacts }),
                );
            }
            outln!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
    }
    if result.is_breaking() && !allow_breaking {
        Outcome::Changes
    } else {
        Outcome::Success
    }
}

/// Each customer's live usage, by key: organizations found through charter's state, or by
/// their exact name; the last 30 days of usage of each.
fn live_usage(
    place: &Path,
    args: &InstanceArgs,
    program: &crate::model::program::Program,
    output: &Output,
) -> Result<(String, BTreeMap<String, diff::LiveUsage>), Outcome> {
    let customers: Vec<(String, String)> = program
        .customers
        .iter()
        .map(|c| (c.key.clone(), c.name.clone()))
        .collect();
    let work = |client: Client, config: super::config::Config, target: super::instance::Target| async move {
        // The state where every command finds it; reading it creates no file.
        let state = crate::state::Store::open_existing(&config.state)?;
        // The state's links name organizations of its own instance only.
        let mut recorded: BTreeMap<String, i64> = BTreeMap::new();
        if let Some(state) = &state {
            crate::schedule::bind(&client, state, target.instance()).await?;
            for c in &program.customers {
                if let Some(id) = state.organization(&c.key)? {
                    recorded.insert(c.key.clone(), id);
                }
            }
        }
        let organizations = client
            .list_organizations(&OrganizationFilter::default())
            .await?;
        let mut usage = BTreeMap::new();
        for (key, name) in customers {
            let found = match recorded.get(&key) {
                Some(id) => organizations.iter().find(|o| o.id == *id),
                None => organizations.iter().find(|o| o.name == name),
            };
            let Some(org) = found else { continue };
            let days = client.usage(org.id).await?;
            usage.insert(
                key,
                diff::LiveUsage {
                    operations: days.data.iter().map(|d| d.operations).sum(),
                    transfer: days.data.iter().map(|d| d.data_transfer).sum(),
                    active_scenarios: org.active_scenarios.unwrap_or_default(),
                    teams: i64::try_from(org.teams.as_ref().map_or(0, Vec::len))
                        .unwrap_or(i64::MAX),
                },
            );
        }
        Ok(usage)
    };
    with_instance(place, args, output, work)
}
