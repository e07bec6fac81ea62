//! What a new user meets in the first hour: output into a pipe that closes early, `charter
//! init`, the way out of a folder without policies, usage errors, rehearsing the future, and
//! the README's own console examples run against the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;

use crate::common;

use common::{charter, charter_command};

const NO_ENV: &[(&str, &str)] = &[];

/// Runs the binary in `dir` with its standard output closed before it writes anything, as
/// `| head -0` does, and with its standard error into the same closed pipe when `stderr_too`
/// (`2>&1 | head -0`): `(exit code, stderr)` — stderr empty when it went to the closed pipe.
fn with_stdout_closed(dir: &Path, args: &[&str], stderr_too: bool) -> (i32, String) {
    let mut command = charter_command(dir, args);
    command.stdin(Stdio::null());
    if stderr_too {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        command.stdout(writer.try_clone().unwrap()).stderr(writer);
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = command.spawn().unwrap();
    // Closing our copies of the pipe's ends leaves the child's writes without a reader.
    drop(child.stdout.take());
    drop(command);
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
        (
            &["compile", ".", "--customer", "acme", "--at", "2027-01-15"],
            0,
        ),
        (&["explain", ".", "--tier", "pro"], 0),
        (
            &["explain", ".", "--customer", "acme", "--at", "2027-01-15"],
            0,
        ),
        (
            &["explain", ".", "--staff", "ops@acme-automation.example"],
            0,
        ),
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
        (
            &[
                "transition",
                ".",
                "initech",
                "reactivate",
                "--at",
                "2027-01-16",
            ],
            0,
        ),
        (&["sandbox", "seed", "--db", "seeded.db", "--orgs", "3"], 0),
        // Diagnostics and usage errors, which go to stderr.
        (&["check", "broken"], 1),
        (&["compile", ".", "--tier", "gold"], 2),
        (&["no-such-command"], 2),
    ];
    std::fs::create_dir_all(dir.join("broken")).unwrap();
    std::fs::write(
        dir.join("broken/tiers.charter"),
        "tier teams extends por {}\ntier pro { operatoins = 1 }\n",
    )
    .unwrap();
    for (args, code) in commands {
        let (actual, stderr) = with_stdout_closed(&dir, args, false);
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
        // `2>&1 | head -0`: a panic cannot be read then, but its exit code (101) can.
        let (actual, _) = with_stdout_closed(&dir, args, true);
        assert_eq!(
            actual,
            *code,
            "`charter {}` with stdout and stderr closed",
            args.join(" ")
        );
    }
}

#[test]
fn init_writes_a_policy_set_that_checks_tests_and_applies() {
    let dir = common::scratch("first-hour", "init");
    let (code, stdout, stderr) = charter(&dir, &["init", "new"], NO_ENV);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("charter check new"), "{stdout}");
    let (code, stdout, stderr) = charter(&dir, &["check", "new"], NO_ENV);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("2 tiers") && stdout.contains("1 customer"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("no problems\n"),
        "warnings:\n{stdout}{stderr}"
    );
    let (code, stdout, stderr) = charter(&dir, &["test", "new"], NO_ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 passed; 0 failed"), "{stdout}");
    let (code, stdout, stderr) = charter(&dir, &["apply", "new", "--auto-approve"], NO_ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    // Applied, the instance is what the policy set says.
    let (code, stdout, stderr) = charter(&dir, &["plan", "new"], NO_ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A second init never overwrites a policy set.
    let (code, _, stderr) = charter(&dir, &["init", "new"], NO_ENV);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("already holds `.charter` files"),
        "{stderr}"
    );
}

#[test]
fn a_folder_without_policies_points_to_init_and_the_example() {
    let dir = common::scratch("first-hour", "empty");
    for command in ["check", "test", "plan"] {
        let (code, _, stderr) = charter(&dir, &[command], NO_ENV);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("contains no `.charter` files"), "{stderr}");
        assert!(
            stderr.contains("`charter init .`") && stderr.contains("`policies/acme`"),
            "{stderr}"
        );
    }
}

/// The README's tour applies the example set at two instants in 2027; planning "now" (before
/// them) afterwards must not undo what they recorded, and each later plan must agree.
#[test]
fn planning_before_recorded_history_is_refused_with_a_way_out() {
    let dir = common::acme_copy("first-hour", "time-travel");
    for at in ["2027-01-15", "2027-02-08"] {
        let (code, stdout, stderr) =
            charter(&dir, &["apply", ".", "--at", at, "--auto-approve"], NO_ENV);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    for command in ["plan", "run", "apply"] {
        let mut args = vec![command, "."];
        if command == "apply" {
            args.push("--auto-approve");
        }
        let (code, stdout, stderr) = charter(&dir, &args, NO_ENV);
        assert_eq!(code, 1, "`charter {command}` now:\n{stdout}{stderr}");
        assert!(
            stderr.contains("charter's state already records")
                && stderr.contains("at 2027-02-08")
                && stderr.contains("`--at 2027-02-08`")
                && stderr.contains("`--rehearse`"),
            "{stderr}"
        );
        assert!(stdout.is_empty(), "nothing is planned:\n{stdout}");
    }
    // At the last recorded instant there is nothing to undo or redo, however often asked.
    for _ in 0..2 {
        let (code, stdout, stderr) = charter(&dir, &["run", ".", "--at", "2027-02-08"], NO_ENV);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let (code, stdout, stderr) = charter(&dir, &["plan", ".", "--at", "2027-02-08"], NO_ENV);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
}

/// `--rehearse` keeps a state and a sandbox of its own: the future rehearsed there leaves the
/// state of "now" untouched, so a plain plan afterwards is not refused.
#[test]
fn a_rehearsal_never_touches_the_state_of_now() {
    let dir = common::acme_copy("first-hour", "rehearse");
    for at in ["2027-01-15", "2027-02-08"] {
        let args = ["apply", ".", "--rehearse", "--at", at, "--auto-approve"];
        let (code, stdout, stderr) = charter(&dir, &args, NO_ENV);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    let (code, stdout, stderr) = charter(
        &dir,
        &["plan", ".", "--rehearse", "--at", "2027-05-09"],
        NO_ENV,
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains("customer acme (\"Acme Corp\"): frozen → deprovisioned"),
        "{stdout}"
    );
    assert!(
        stdout.starts_with("Plan for the rehearsal sandbox at 2027-05-09"),
        "{stdout}"
    );
    assert!(dir.join(".charter/rehearsal/state.db").is_file());
    // A rehearsal's saved plan is never applied outside the rehearsal.
    let args = [
        "plan",
        ".",
        "--rehearse",
        "--at",
        "2027-05-09",
        "-o",
        "rehearsed.json",
    ];
    let (code, _, stderr) = charter(&dir, &args, NO_ENV);
    assert_eq!(code, 2, "{stderr}");
    let args = ["apply", "rehearsed.json", "--auto-approve"];
    let (code, stdout, stderr) = charter(&dir, &args, NO_ENV);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("made for the rehearsal sandbox"),
        "{stderr}"
    );
    // Now: nothing was provisioned on the real (embedded) instance, and nothing is refused.
    let (code, stdout, stderr) = charter(&dir, &["plan", "."], NO_ENV);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.contains("to create"), "{stdout}");
    // Within the rehearsal, going back is refused like anywhere else, with its own way out.
    let (code, _, stderr) = charter(
        &dir,
        &["plan", ".", "--rehearse", "--at", "2027-01-20"],
        NO_ENV,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("deleting `.charter/rehearsal/`"),
        "{stderr}"
    );
}

#[test]
fn apply_lists_what_changed_and_counts_the_rest() {
    let dir = common::acme_copy("first-hour", "noise");
    let args = ["apply", ".", "--at", "2027-01-15", "--auto-approve"];
    let (code, stdout, stderr) = charter(&dir, &args, NO_ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // acme and oscorp freeze on 2027-02-08: two license calls, two transitions.
    let args = ["apply", ".", "--at", "2027-02-08", "--auto-approve"];
    let (code, stdout, stderr) = charter(&dir, &args, NO_ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("recorded `acme`; freeze active → frozen"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unchanged: 16 customers and 3 staff members"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("recorded").count(), 2, "{stderr}");
}

#[test]
fn junit_names_the_file_each_test_is_in() {
    let dir = common::acme_copy("first-hour", "junit");
    std::fs::write(
        dir.join("zz_more_tests.charter"),
        "test \"free has a thousand operations\" {\n  expect tier free: operations == 1_000\n}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = charter(&dir, &["test", ".", "--junit", "junit.xml"], NO_ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let classes: Vec<&str> = xml
        .split("classname=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(classes.len(), 9, "{xml}");
    assert_eq!(
        classes
            .iter()
            .filter(|c| c.ends_with("zz_more_tests.charter"))
            .count(),
        1,
        "{xml}"
    );
    assert_eq!(
        classes
            .iter()
            .filter(|c| c.ends_with("/tests.charter") || **c == "tests.charter")
            .count(),
        8,
        "{xml}"
    );
}

#[test]
fn every_bad_flag_value_is_a_usage_error() {
    let dir = common::acme_copy("first-hour", "usage");
    let cases: &[(&[&str], &str)] = &[
        (&["sandbox", "--listen", "0.0.0.0"], "the port is missing"),
        (&["sandbox", "--listen", "0.0.0.0:7070"], "loopback only"),
        (&["sandbox", "--listen", "10.1.2.3:0"], "loopback only"),
        (&["run", ".", "--every", "1hour"], "`1 h`"),
        (&["run", ".", "--every", "30 s"], "at least"),
        (&["schedule", ".", "--horizon", "soon"], "`30 days`"),
        (&["plan", ".", "--at", "tomorrow"], "not a date"),
        (&["apply", ".", "--concurrency", "none"], "invalid value"),
        (&["compile", ".", "--tier", "gold"], "gold"),
    ];
    for (args, says) in cases {
        let (code, _, stderr) = charter(&dir, args, NO_ENV);
        assert_eq!(code, 2, "`charter {}`:\n{stderr}", args.join(" "));
        assert!(
            stderr.contains(says),
            "`charter {}`:\n{stderr}",
            args.join(" ")
        );
    }
    let (_, _, stderr) = charter(&dir, &["run", ".", "--every", "1hour"], NO_ENV);
    assert!(!stderr.contains("30 days"), "{stderr}");
}

#[test]
fn help_describes_the_whole_tool_and_every_argument() {
    let dir = common::scratch("first-hour", "help");
    let (code, help, _) = charter(&dir, &["--help"], NO_ENV);
    assert_eq!(code, 0);
    for word in ["`plan`", "`apply`", "`test`", "sandbox", "`charter init`"] {
        assert!(
            help.contains(word),
            "`--help` says nothing of {word}:\n{help}"
        );
    }
    let commands: Vec<String> = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect();
    assert!(commands.len() > 15, "{commands:?}");
    for command in &commands {
        let (code, short, _) = charter(&dir, &[command, "-h"], NO_ENV);
        assert_eq!(code, 0, "{command}");
        let Some(arguments) = short.split("Arguments:\n").nth(1) else {
            continue;
        };
        for line in arguments.lines().take_while(|line| !line.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words.len() > 1,
                "`charter {command} -h` does not describe `{}`:\n{short}",
                line.trim()
            );
        }
    }
}

/// One `$ command` of a README console block and the output shown under it.
struct Example {
    command: String,
    expected: Vec<String>,
}

/// The README's console blocks marked for this test (```` ```console test ````), in order.
fn readme_examples() -> Vec<Example> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut examples = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        if !in_block {
            in_block = line.trim_end() == "```console test";
            continue;
        }
        if line.starts_with("```") {
            in_block = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            examples.push(Example {
                command: command.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(example) = examples.last_mut() {
            example.expected.push(line.to_owned());
        }
    }
    // A blank line after an example's output only separates it from the next command.
    for example in &mut examples {
        while example
            .expected
            .last()
            .is_some_and(|line| line.trim().is_empty())
        {
            example.expected.pop();
        }
    }
    examples
}

/// Whether an output line is what the README shows: equal, or with `…` standing for any text.
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    if parts.len() == 1 {
        return expected.trim_end() == actual.trim_end();
    }
    let mut rest = actual;
    for (i, part) in parts.iter().enumerate() {
        let found = if i == 0 {
            rest.starts_with(part).then_some(0)
        } else if i == parts.len() - 1 {
            rest.ends_with(part).then(|| rest.len() - part.len())
        } else {
            rest.find(part)
        };
        let Some(at) = found else { return false };
        rest = &rest[at + part.len()..];
    }
    true
}

/// Whether `actual` shows what `expected` says: lines in order, a line of only `...` or `…`
/// standing for any number of lines, and every other run of lines contiguous.
fn output_matches(expected: &[String], actual: &[&str]) -> bool {
    let is_gap = |line: &str| matches!(line.trim(), "..." | "…");
    // Runs of lines, each with whether a gap comes before it.
    let mut runs: Vec<(bool, Vec<&str>)> = vec![(false, Vec::new())];
    for line in expected {
        if is_gap(line) {
            runs.push((true, Vec::new()));
        } else if let Some((_, run)) = runs.last_mut() {
            run.push(line);
        }
    }
    let mut position = 0;
    for (after_gap, run) in &runs {
        let fits = |start: usize| {
            run.len() + start <= actual.len()
                && run
                    .iter()
                    .zip(&actual[start..])
                    .all(|(e, a)| line_matches(e, a))
        };
        let found = if *after_gap {
            (position..=actual.len()).find(|start| fits(*start))
        } else {
            fits(position).then_some(position)
        };
        let Some(start) = found else { return false };
        position = start + run.len();
    }
    // Output past the last line shown is allowed only after a trailing gap (or when the
    // README shows no output at all).
    let shown_to_the_end = runs
        .last()
        .is_some_and(|(after_gap, run)| !(*after_gap && run.is_empty()));
    expected.is_empty() || !shown_to_the_end || position == actual.len()
}

/// The new user's path: every marked console example of the README, top to bottom, run by a
/// shell in a folder holding a copy of `policies/acme`, with `charter` on the `PATH`.
#[test]
fn the_readme_console_examples_print_what_the_readme_shows() {
    let examples = readme_examples();
    assert!(
        examples
            .iter()
            .any(|e| e.command.starts_with("charter init")),
        "the README has no marked console example of `charter init`"
    );
    let dir = common::scratch("first-hour", "readme");
    common::copy_acme_into(&dir.join("policies/acme"));
    let bin = Path::new(env!("CARGO_BIN_EXE_charter")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for example in &examples {
        let mut shell = std::process::Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("{} 2>&1", example.command))
            .current_dir(&dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1");
        common::without_charter_settings(&mut shell);
        let output = shell.output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let mut actual: Vec<&str> = text.lines().collect();
        while actual.last().is_some_and(|line| line.trim().is_empty()) {
            actual.pop();
        }
        assert!(
            output_matches(&example.expected, &actual),
            "`$ {}` printed:\n{text}\nthe README shows:\n{}",
            example.command,
            example.expected.join("\n")
        );
    }
}

#[test]
fn readme_output_matching_rules() {
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    let actual = ["a", "b", "c", "Apply: 6 done in 0.2 s."];
    assert!(output_matches(
        &lines("a\nb\nc\nApply: 6 done in …"),
        &actual
    ));
    assert!(output_matches(
        &lines("a\n...\nApply: 6 done in … s."),
        &actual
    ));
    assert!(output_matches(&lines("...\nc\n…"), &actual));
    assert!(!output_matches(&lines("a\nc\n..."), &actual));
    assert!(!output_matches(&lines("a\nb"), &actual));
    assert!(!output_matches(&lines("...\nApply: 7 done in …"), &actual));
}
