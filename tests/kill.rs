//! The real binary applying a plan to a sandbox in another process is killed with SIGKILL at
//! many points; after each, `charter apply` again converges with no duplicate user or
//! organization and an empty plan. (Unix only: it sends signals.)

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use charter::api::{Client, ClientOptions, Token, observe};

const TOKEN: &str = "kill-test-secret-token";

/// `charter sandbox` in its own process, on a database file.
struct SandboxProcess {
    child: Child,
    url: String,
}

impl SandboxProcess {
    fn start(db: &Path) -> SandboxProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_charter"))
            .args([
                "sandbox",
                "--db",
                db.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--token",
                TOKEN,
                // Every answer a little slow, so that an apply lasts long enough to be killed
                // in many places.
                "--faults",
                "latency=1:8ms",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let start = line.find("http://").unwrap();
        let end = line[start..].find("/api/v2").unwrap();
        let url = line[start..start + end].to_owned();
        SandboxProcess { child, url }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn acme_copy(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir("policies/acme").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
}

fn charter(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("CHARTER_INSTANCE_URL", url)
        .env("CHARTER_TOKEN_ENV", "KILL_TEST_TOKEN")
        .env("KILL_TEST_TOKEN", TOKEN)
        .env_remove("CHARTER_TOKEN_FILE");
    command
}

fn observed(url: &str) -> charter::api::Observed {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client =
                Client::new(url, Token::new(TOKEN).unwrap(), ClientOptions::default()).unwrap();
            observe(&client).await.unwrap()
        })
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("charter-kill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_apply_killed_anywhere_converges_on_the_next_apply_without_duplicates() {
    let mut killed_midway = 0;
    let mut partial_counts = std::collections::BTreeSet::new();
    for (round, after_ms) in [60u64, 150, 250, 350, 450, 550, 700, 850, 1000, 1200]
        .into_iter()
        .enumerate()
    {
        let dir = scratch(&format!("round{round}"));
        let policy = dir.join("acme");
        acme_copy(&policy);
        let sandbox = SandboxProcess::start(&dir.join("sandbox.db"));
        let mut apply = charter(
            &policy,
            &sandbox.url,
            &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(after_ms));
        // SIGKILL: no chance to clean up.
        let finished = apply.try_wait().unwrap().is_some();
        let _ = apply.kill();
        let _ = apply.wait();
        if !finished {
            killed_midway += 1;
        }
        let partial = observed(&sandbox.url);
        partial_counts.insert((partial.organizations.len(), partial.users.len()));

        let output = charter(
            &policy,
            &sandbox.url,
            &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "round {round} (killed after {after_ms} ms, {} organizations then): {stdout}{stderr}",
            partial.organizations.len()
        );

        let after = observed(&sandbox.url);
        let mut emails: Vec<String> = after.users.iter().map(|u| u.email.to_lowercase()).collect();
        let users = emails.len();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), users, "round {round}: duplicate users");
        let mut names: Vec<&str> = after
            .organizations
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            after.organizations.len(),
            "round {round}: duplicate organizations"
        );
        assert_eq!(after.organizations.len(), 18, "round {round}");

        let output = charter(&policy, &sandbox.url, &["plan", ".", "--at", "2027-01-15"])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "round {round}: planning again is not empty: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        drop(sandbox);
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Most kills must have landed while the apply was running.
    assert!(
        killed_midway >= 5,
        "only {killed_midway} kills landed mid-apply"
    );
}

#[test]
fn run_every_stops_cleanly_on_sigterm_between_rounds() {
    let dir = scratch("sigterm");
    let policy = dir.join("acme");
    acme_copy(&policy);
    let sandbox = SandboxProcess::start(&dir.join("sandbox.db"));
    let mut daemon = charter(&policy, &sandbox.url, &["run", ".", "--every", "1 h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first round to end: the daemon then says when the next one is.
    let stderr = daemon.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("next round in");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l == "next round in 1 h"),
        "{seen:?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = daemon.wait().unwrap();
    assert!(exit.success(), "{exit:?} {rest:?}");
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
    // The first round provisioned everything, and the lock was released: a plan finds nothing.
    let output = charter(&policy, &sandbox.url, &["plan", "."])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&dir);
}
