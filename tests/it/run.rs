//! `charter apply` and `charter run` through the built binary, for what the other end-to-end
//! tests do not cover: a saved plan whose creates were carried out since it was made, and the
//! runner's stop signal (SIGTERM mid-round and between rounds, the exit code after a stop, the
//! shortest `--every`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use crate::common;

use common::charter_command as charter;

/// A copy of the example policy set in a fresh folder.
fn acme_copy(name: &str) -> common::Scratch {
    common::acme_copy("run", name)
}

/// Runs the binary to its end: `(exit code, stdout, stderr)`.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    common::output(charter(dir, args))
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
}

#[test]
fn run_every_refuses_rounds_closer_than_a_minute() {
    let dir = acme_copy("every-short");
    for every in ["0s", "30 s", "59s"] {
        let (code, stdout, stderr) = run(&dir, &["run", ".", "--every", every]);
        assert_eq!(code, 2, "{every}: {stdout}{stderr}");
        assert!(
            stderr.starts_with("error: `--every` must be at least 1 min, not `"),
            "{stderr}"
        );
        assert!(
            stderr.contains("\n  help: each round reads the whole instance"),
            "{stderr}"
        );
        assert!(stdout.is_empty(), "nothing ran: {stdout}");
    }
    assert!(
        !dir.join(".charter/state.db").exists(),
        "refused before anything"
    );
}

#[cfg(unix)]
mod signals {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, Command, ExitStatus, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::common::SandboxProcess;
    use super::{acme_copy, charter};

    const TOKEN: &str = "run-test-secret-token";

    /// `charter sandbox` in its own process, on a database file, every answer a little slow.
    fn sandbox(db: &Path) -> SandboxProcess {
        SandboxProcess::start(db, TOKEN, &["--faults", "latency=1:30ms"])
    }

    /// The binary in `dir`, pointed at the instance at `url`.
    fn against(dir: &Path, url: &str, args: &[&str]) -> Command {
        let mut command = charter(dir, args);
        command
            .env("CHARTER_INSTANCE_URL", url)
            .env("CHARTER_TOKEN_ENV", "RUN_TEST_TOKEN")
            .env("RUN_TEST_TOKEN", TOKEN);
        command
    }

    fn sigterm(child: &Child) {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Starts `command` with its standard error read line by line on a thread.
    fn spawn(mut command: Command) -> (Child, mpsc::Receiver<String>) {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, heard) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        (child, heard)
    }

    /// Reads lines until one satisfies `until` (within `within`); every line read.
    fn read_until(
        heard: &mpsc::Receiver<String>,
        within: Duration,
        until: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match heard.recv_timeout(left) {
                Ok(line) => {
                    let done = until(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no such line within {within:?}: {seen:#?}");
    }

    /// Waits for the process to end (killing it, and failing, after `within`).
    fn exit_within(child: &mut Child, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("still running {within:?} after the signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn rest(heard: &mpsc::Receiver<String>) -> Vec<String> {
        heard.iter().collect()
    }

    /// `charter apply` at the provisioning instant succeeds, leaves one organization per
    /// customer, and planning again is empty.
    fn the_next_apply_converges(dir: &Path, url: &str) {
        let args = ["apply", ".", "--at", "2027-01-15", "--auto-approve"];
        let output = against(dir, url, &args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = against(dir, url, &["instance", ".", "--format", "json"])
            .output()
            .unwrap();
        let observed: charter::api::Observed = serde_json::from_slice(&output.stdout).unwrap();
        let mut names: Vec<&str> = observed
            .organizations
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), observed.organizations.len(), "no duplicates");
        assert_eq!(names.len(), 18, "one organization per customer");
        let output = against(dir, url, &["plan", ".", "--at", "2027-01-15"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "planning again is empty");
    }

    #[test]
    fn sigterm_mid_apply_stops_the_daemon_between_steps_and_the_next_apply_finishes() {
        let dir = acme_copy("sigterm-mid-apply");
        let sandbox = sandbox(&dir.join("sandbox.db"));
        let (mut daemon, heard) = spawn(against(
            &dir,
            &sandbox.url,
            &["run", ".", "--at", "2027-01-15"],
        ));
        // Once steps are being carried out, one SIGTERM.
        let seen = read_until(&heard, Duration::from_secs(60), |l| l.starts_with("done `"));
        sigterm(&daemon);
        let exit = exit_within(&mut daemon, Duration::from_secs(20));
        let rest = rest(&heard);
        let all = [seen, rest.clone()].concat();
        // The apply stopped between steps: nothing started after the signal, the steps in
        // flight got their answers, and the run said what it left.
        assert!(
            rest.iter()
                .any(|l| l.starts_with("stopping: no step starts any more;")),
            "{all:#?}"
        );
        let stopped = rest
            .iter()
            .find(|l| l.starts_with("error: the apply was stopped: "))
            .unwrap_or_else(|| panic!("{all:#?}"));
        assert!(
            stopped.ends_with("left in flight in the journal"),
            "{stopped}"
        );
        assert!(!stopped.contains(": 0 steps not started"), "{stopped}");
        assert_eq!(rest.last().map(String::as_str), Some("stopped"), "{all:#?}");
        // Steps were left undone: exit 1.
        assert_eq!(exit.code(), Some(1), "{all:#?}");

        // The lock was released, and the next apply carries out the rest.
        the_next_apply_converges(&dir, &sandbox.url);
        drop(sandbox);
    }

    #[test]
    fn sigterm_mid_apply_stops_a_daemon_with_every_instead_of_waiting_for_the_next_round() {
        let dir = acme_copy("sigterm-every");
        let sandbox = sandbox(&dir.join("sandbox.db"));
        let (mut daemon, heard) =
            spawn(against(&dir, &sandbox.url, &["run", ".", "--every", "1 h"]));
        let seen = read_until(&heard, Duration::from_secs(60), |l| l.starts_with("done `"));
        sigterm(&daemon);
        let exit = exit_within(&mut daemon, Duration::from_secs(20));
        let rest = rest(&heard);
        assert!(
            !rest.iter().any(|l| l.starts_with("next round in")),
            "{seen:#?}{rest:#?}"
        );
        assert_eq!(
            rest.last().map(String::as_str),
            Some("stopped"),
            "{rest:#?}"
        );
        assert_eq!(exit.code(), Some(1), "{rest:#?}");
        drop(sandbox);
    }

    #[test]
    fn apply_stopped_twice_mid_apply_exits_1_and_the_next_apply_converges() {
        let dir = acme_copy("sigterm-apply");
        let sandbox = sandbox(&dir.join("sandbox.db"));
        let args = ["apply", ".", "--at", "2027-01-15", "--auto-approve"];
        let (mut apply, heard) = spawn(against(&dir, &sandbox.url, &args));
        let seen = read_until(&heard, Duration::from_secs(60), |l| l.starts_with("done `"));
        // The second signal does not wait for the answers in flight.
        sigterm(&apply);
        std::thread::sleep(Duration::from_millis(5));
        sigterm(&apply);
        let exit = exit_within(&mut apply, Duration::from_secs(20));
        let rest = rest(&heard);
        assert!(
            rest.iter()
                .any(|l| l.starts_with("error: the apply was stopped: ")),
            "{seen:#?}{rest:#?}"
        );
        assert_eq!(exit.code(), Some(1), "{rest:#?}");
        the_next_apply_converges(&dir, &sandbox.url);
        drop(sandbox);
    }

    #[test]
    fn a_daemon_stopped_after_a_failed_round_exits_1() {
        let dir = acme_copy("sigterm-after-failure");
        // Nothing listens there: the round cannot read the instance.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let (mut daemon, heard) = spawn(against(&dir, &url, &["run", ".", "--every", "1 h"]));
        let seen = read_until(&heard, Duration::from_secs(60), |l| {
            l.starts_with("next round in")
        });
        assert!(
            seen.iter().any(|l| l.starts_with("error: ")),
            "the round failed: {seen:#?}"
        );
        sigterm(&daemon);
        let exit = exit_within(&mut daemon, Duration::from_secs(20));
        let rest = rest(&heard);
        assert_eq!(rest, vec!["stopped".to_owned()]);
        assert_eq!(exit.code(), Some(1), "{seen:#?}");
    }
}
