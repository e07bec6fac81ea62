//! `charter diff OLD NEW`: policy sets given as paths or as git revisions of a path
//! (`main:policies/acme`), which are read out of git into a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::policy::{Loaded, Output, load};
use super::{DiffFormat, Outcome, usage_error};
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

pub(super) fn run(
    old: &str,
    new: &str,
    at: i64,
    format: DiffFormat,
    allow_breaking: bool,
    output: &Output,
) -> Outcome {
    let (_old_scratch, before) = match load_origin(old, "old", output) {
        Ok(x) => x,
        Err(outcome) => {
            eprintln!("error: the old policy set `{old}` does not check");
            return outcome;
        }
    };
    let (_new_scratch, after) = match load_origin(new, "new", output) {
        Ok(x) => x,
        Err(outcome) => {
            eprintln!("error: the new policy set `{new}` does not check");
            return outcome;
        }
    };
    let result = diff::diff(&before.program, &after.program, at);
    match format {
        DiffFormat::Text => print!("{}", diff::render_text(&result)),
        DiffFormat::Md => print!("{}", diff::render_markdown(&result)),
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        ),
    }
    if result.is_breaking() && !allow_breaking {
        Outcome::Changes
    } else {
        Outcome::Success
    }
}
