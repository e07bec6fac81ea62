//! `charter apply` and `charter run` through the built binary, for what the other end-to-end
//! tests do not cover: a saved plan whose creates were carried out since it was made, and the
//! runner's stop signal (SIGTERM mid-round and between rounds, the exit code after a stop, the
//! shortest `--every`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy of the example policy set in a fresh folder.
fn acme_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("charter-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/acme")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// The binary in `dir`, with no instance configured in the environment (so the embedded
/// sandbox, unless `env` says otherwise).
fn charter(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    for name in [
        "CHARTER_INSTANCE_URL",
        "CHARTER_TOKEN_ENV",
        "CHARTER_TOKEN_FILE",
        "CHARTER_TOKEN",
    ] {
        command.env_remove(name);
    }
    command
}

/// Runs the binary to its end: `(exit code, stdout, stderr)`.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = charter(dir, args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// What the embedded sandbox of the policy set in `dir` holds.
fn observed(dir: &Path) -> charter::api::Observed {
    let (code, stdout, stderr) = run(dir, &["instance", ".", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn a_saved_plan_whose_creates_were_carried_out_since_is_refused_and_creates_nothing() {
    let dir = acme_copy("saved-creates");
    let (code, _, stderr) = run(&dir, &["plan", ".", "--at", "2027-01-15", "-o", "p.json"]);
    assert_eq!(code, 2, "{stderr}");
    // The same provisioning, applied from the policy set before the saved plan.
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
    );
    assert_eq!(code, 0, "{stderr}");
    let before = observed(&dir);
    assert_eq!(before.organizations.len(), 18);

    let (code, stdout, stderr) = run(&dir, &["apply", "p.json"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let acme = before
        .organizations
        .iter()
        .find(|o| o.name == "Acme Corp")
        .unwrap();
    assert!(
        stderr.starts_with("error: the instance changed since the plan was made: "),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "organization {} (\"Acme Corp\") was created",
            acme.id
        )),
        "{stderr}"
    );
    assert!(stderr.contains("  help: make a new plan with `charter plan -o`"));
    assert!(!stdout.contains("Apply:"), "nothing was applied: {stdout}");

    // Nothing was sent: the instance is as it was, one organization per customer.
    let after = observed(&dir);
    assert_eq!(after.organizations.len(), 18);
    assert_eq!(after.users.len(), before.users.len());
    let (code, stdout, _) = run(&dir, &["plan", ".", "--at", "2027-01-15"]);
    assert_eq!(code, 0, "planning again is empty: {stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
