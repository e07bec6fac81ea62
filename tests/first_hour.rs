//! What a new user meets in the first hour: output into a pipe that closes early, `charter
//! init`, the way out of a folder without policies, usage errors, rehearsing the future, and
//! the README's own console examples run against the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;

mod common;

use common::{charter, charter_command};

/// Runs the binary in `dir` with its standard output closed before it writes anything, as
/// `| head -0` does: `(exit code, stderr)`.
fn with_stdout_closed(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut command = charter_command(dir, args);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn every_printing_command_ends_quietly_when_the_reader_goes_away() {
    let dir = common::acme_copy("first-hour", "pipe");
    let diff_copy = dir.join("after");
    common::copy_acme_into(&diff_copy);
    // (arguments, the command's own exit code)
    let commands: &[(&[&str], i32)] = &[
        (&["--help"], 0),
        (&["--version"], 0),
        (&["compile", "-h"], 0),
        (&["check", "."], 0),
        (&["compile", "."], 0),
        (&["compile", ".", "--tier", "pro", "--format", "text"], 0),
        (&["compile", ".", "--customers", "--at", "2027-01-15"], 0),
        (&["compile", ".", "--customer", "acme", "--at", "2027-01-15"], 0),
        (&["explain", ".", "--tier", "pro"], 0),
        (&["explain", ".", "--customer", "acme", "--at", "2027-01-15"], 0),
        (&["explain", ".", "--staff", "ops@acme-automation.example"], 0),
        (&["diff", ".", "after"], 0),
        (&["test", ".", "--at", "2027-01-15"], 0),
        (&["schedule", ".", "--at", "2027-01-15"], 0),
        (&["graph", "."], 0),
        (&["graph", ".", "--format", "dot"], 0),
        (&["matrix", "."], 0),
        (&["matrix", ".", "--format", "html"], 0),
        (&["schema", "license"], 0),
        (&["schema", "plan"], 0),
        (&["fmt", ".", "--check"], 0),
        (&["instance", "."], 0),
        (&["plan", ".", "--at", "2027-01-15"], 2),
        (&["plan", ".", "--at", "2027-01-15", "--format", "json"], 2),
        (&["import", "."], 0),
        (&["apply", ".", "--at", "2027-01-15", "--auto-approve"], 0),
        (&["run", ".", "--at", "2027-01-15"], 0),
        (&["transition", ".", "initech", "reactivate", "--at", "2027-01-16"], 0),
        (&["sandbox", "seed", "--db", "seeded.db", "--orgs", "3"], 0),
    ];
    for (args, code) in commands {
        let (actual, stderr) = with_stdout_closed(&dir, args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "`charter {}` with stdout closed:\n{stderr}",
            args.join(" ")
        );
        assert_eq!(
            actual,
            *code,
            "`charter {}` with stdout closed:\n{stderr}",
            args.join(" ")
        );
    }
}
