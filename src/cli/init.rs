//! `charter init [DIR]`: writes a small policy set to start from — an instance, two tiers, a
//! lifecycle, one customer and its tests — that checks, tests and applies as written.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Outcome, usage_error};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The folder to write into (created when missing); it must hold no `.charter` files yet.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// The files written, by name.
const FILES: &[(&str, &str)] = &[
    ("instance.charter", include_str!("init/instance.charter")),
    ("tiers.charter", include_str!("init/tiers.charter")),
    ("lifecycle.charter", include_str!("init/lifecycle.charter")),
    ("customers.charter", include_str!("init/customers.charter")),
    ("tests.charter", include_str!("init/tests.charter")),
];

pub(super) fn run(args: &Args) -> Outcome {
    let dir = &args.dir;
    match has_policies(dir) {
        Ok(false) => {}
        Ok(true) => {
            return usage_error(
                &format!("`{}` already holds `.charter` files", dir.display()),
                Some("`charter init` starts a new policy set; give it an empty folder".into()),
            );
        }
        Err(error) => {
            return usage_error(
                &format!("cannot read `{}`: {}", dir.display(), words(&error)),
                None,
            );
        }
    }
    if let Err(error) = std::fs::create_dir_all(dir) {
        eoutln!(
            "error: cannot create `{}`: {}",
            dir.display(),
            words(&error)
        );
        return Outcome::Failure;
    }
    for (name, text) in FILES {
        let path = dir.join(name);
        // `create_new`: a file that appeared since the check above is never overwritten.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(error) = written {
            eoutln!(
                "error: cannot write `{}`: {}",
                path.display(),
                words(&error)
            );
            return Outcome::Failure;
        }
    }
    let names: Vec<&str> = FILES.iter().map(|(name, _)| *name).collect();
    let shown = dir.display();
    outln!(
        "wrote a starting policy set to `{shown}`: {}",
        names.join(", ")
    );
    outln!("next:");
    outln!("  charter check {shown}                  # read and check it");
    outln!("  charter test {shown}                   # run its tests");
    outln!("  charter apply {shown} --auto-approve   # apply it to the embedded sandbox");
    Outcome::Success
}

/// Whether `dir` holds `.charter` files (a missing folder holds none).
fn has_policies(dir: &Path) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "charter") {
            return Ok(true);
        }
    }
    Ok(false)
}

fn words(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string().to_lowercase(),
    }
}
