//! charter's state in PostgreSQL, end to end: the commands on a state that lives in a real
//! PostgreSQL server (started by the tests, `common::postgres`), shared by folders and
//! processes — the history survives the folder, two applies take turns, two schedulers fail
//! over, a state moves between backends and back unchanged, and the password is never shown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use charter::state::{Location, Store};

use crate::common;

use common::postgres::{PASSWORD, PASSWORD_USER, database, with_password_user};

fn acme_copy(name: &str) -> common::Scratch {
    common::acme_copy("postgres", name)
}

fn charter(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    common::charter(dir, args, env)
}

fn store(url: &str) -> Store {
    Store::open(&Location::parse(url, Path::new("")).unwrap()).unwrap()
}

#[test]
fn a_state_opened_twice_keeps_what_was_recorded() {
    let url = database("reopen");
    let state = store(&url);
    state.set_organization("acme", 12).unwrap();
    state.set_user("Jane@Acme.example", 5).unwrap();
    drop(state);
    let again = store(&url);
    assert_eq!(again.organization("acme").unwrap(), Some(12));
    assert_eq!(again.user("jane@acme.example").unwrap(), Some(5));
    assert_eq!(
        again.schema_version().unwrap(),
        charter::state::schema::current_version()
    );
}

const TOKEN: &str = "postgres-test-secret-token";

/// `charter sandbox` in its own process (its data outside every policy folder), every answer
/// a little slow so that an apply takes long enough to be interrupted.
fn sandbox(name: &str) -> common::SandboxProcess {
    let dir = common::scratch("postgres-sandbox", name);
    common::SandboxProcess::start(
        &dir.join("sandbox.db"),
        TOKEN,
        &["--faults", "latency=1:30ms"],
    )
}

/// The binary in `dir`, pointed at the instance at `url` and the state at `state`.
fn against(dir: &Path, url: &str, state: &str, args: &[&str]) -> std::process::Command {
    let mut command = common::charter_command(dir, args);
    command
        .env("CHARTER_INSTANCE_URL", url)
        .env("CHARTER_TOKEN_ENV", "PG_TEST_TOKEN")
        .env("PG_TEST_TOKEN", TOKEN)
        .env("CHARTER_STATE", state);
    command
}

fn run(command: std::process::Command) -> (i32, String, String) {
    common::output(command)
}

/// The organizations' names on the instance, sorted, failing on a duplicate.
fn organizations(dir: &Path, url: &str, state: &str) -> Vec<String> {
    let (code, stdout, stderr) = run(against(
        dir,
        url,
        state,
        &["instance", ".", "--format", "json"],
    ));
    assert_eq!(code, 0, "{stderr}");
    let observed: charter::api::Observed = serde_json::from_str(&stdout).unwrap();
    let mut names: Vec<String> = observed
        .organizations
        .iter()
        .map(|o| o.name.clone())
        .collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "no organization twice: {names:?}");
    names
}

#[test]
fn the_history_outlives_the_folder_it_was_applied_from() {
    let state = database("history");
    let sandbox = sandbox("history");
    let first = acme_copy("history-first");
    let (code, _, stderr) = run(against(
        &first,
        &sandbox.url,
        &state,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stderr}");
    // A customer is frozen on schedule: history that only the state holds.
    let (code, stdout, stderr) = run(against(
        &first,
        &sandbox.url,
        &state,
        &["apply", ".", "--at", "2027-03-15", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let recorded = store(&state).histories().unwrap();
    assert!(
        recorded.values().any(|h| !h.transitions.is_empty()),
        "transitions were recorded: {recorded:?}"
    );
    std::fs::remove_dir_all(&first).unwrap();

    // A fresh copy of the policy set, as a CI runner has it: nothing beside it.
    let fresh = acme_copy("history-fresh");
    assert!(!fresh.join(".charter").exists());
    let (code, stdout, stderr) = run(against(
        &fresh,
        &sandbox.url,
        &state,
        &["plan", ".", "--at", "2027-03-15"],
    ));
    assert_eq!(code, 0, "the plan is empty: {stdout}{stderr}");
    let (code, schedule, stderr) = run(against(
        &fresh,
        &sandbox.url,
        &state,
        &["schedule", ".", "--at", "2027-03-15", "--format", "json"],
    ));
    assert_eq!(code, 0, "{stderr}");
    // What was carried out is not due again.
    let (code, without, _) = run(against(
        &fresh,
        &sandbox.url,
        &common::scratch("postgres", "history-empty")
            .join("state.db")
            .display()
            .to_string(),
        &["schedule", ".", "--at", "2027-03-15", "--format", "json"],
    ));
    assert_eq!(code, 0);
    assert_ne!(schedule, without, "the schedule reads the recorded history");
    assert!(
        !fresh.join(".charter/state.db").exists(),
        "no state file was made"
    );
}

#[test]
fn two_applies_at_once_take_turns_and_nothing_is_done_twice() {
    let state = database("two-applies");
    let sandbox = sandbox("two-applies");
    let a = acme_copy("two-applies-a");
    let b = acme_copy("two-applies-b");
    let args = ["apply", ".", "--at", "2027-01-15", "--auto-approve"];
    let first = against(&a, &sandbox.url, &state, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second starts once the first holds the lock.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store(&state).lock_holder().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, second_out, second_err) = run(against(&b, &sandbox.url, &state, &args));
    let first = first.wait_with_output().unwrap();
    let first_err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{first_err}");
    assert_eq!(code, 0, "{second_out}{second_err}");
    assert!(
        second_err.contains("waiting for the state's lock: `apply` (process `"),
        "the second said it waits: {second_err}"
    );
    assert!(
        second_out.contains("No changes"),
        "the second found nothing to do: {second_out}"
    );
    assert_eq!(organizations(&a, &sandbox.url, &state).len(), 18);
}

#[test]
fn a_held_lock_makes_apply_give_up_after_its_timeout_naming_the_holder() {
    let state = database("timeout");
    let sandbox = sandbox("timeout");
    let dir = acme_copy("timeout");
    let holder = store(&state);
    let _lock = holder.acquire_lock("run").unwrap();
    let started = Instant::now();
    let (code, stdout, stderr) = run(against(
        &dir,
        &sandbox.url,
        &state,
        &[
            "apply",
            ".",
            "--at",
            "2027-01-15",
            "--auto-approve",
            "--lock-timeout",
            "2s",
        ],
    ));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let expected = format!(
        "error: gave up waiting for the state's lock after 2 s: the state is locked by `run` (process `{}` on `{}`) since ",
        std::process::id(),
        host.trim()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

/// Starts `command` with its standard error read line by line on a thread.
fn spawn(
    mut command: std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, heard)
}

fn read_until(
    heard: &std::sync::mpsc::Receiver<String>,
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

#[test]
fn a_scheduler_killed_mid_round_is_replaced_by_the_other_which_finishes_its_work() {
    // What one uninterrupted round leaves, on an instance of its own.
    let reference = sandbox("failover-reference");
    let alone = acme_copy("failover-reference");
    let (code, _, stderr) = run(against(
        &alone,
        &reference.url,
        &alone.join("state.db").display().to_string(),
        &["run", "."],
    ));
    assert_eq!(code, 0, "{stderr}");
    let expected = organizations(
        &alone,
        &reference.url,
        &alone.join("state.db").display().to_string(),
    );
    assert!(!expected.is_empty(), "the round has work to do");

    let state = database("failover");
    let sandbox = sandbox("failover");
    let a = acme_copy("failover-a");
    let b = acme_copy("failover-b");
    let every = ["run", ".", "--every", "1 min"];
    let (mut active, heard_active) = spawn(against(&a, &sandbox.url, &state, &every));
    // Once the first is carrying out steps, the second starts and waits for the lock.
    read_until(&heard_active, Duration::from_secs(60), |l| {
        l.starts_with("done `")
    });
    let (mut standby, heard_standby) = spawn(against(&b, &sandbox.url, &state, &every));
    read_until(&heard_standby, Duration::from_secs(30), |l| {
        l.starts_with("waiting for the state's lock: `run`")
    });
    // Killed mid-round, without a chance to release anything.
    active.kill().unwrap();
    active.wait().unwrap();
    // The other takes the lock at once and finishes the round.
    read_until(&heard_standby, Duration::from_secs(90), |l| {
        l.starts_with("next round in")
    });
    let _ = standby.kill();
    let _ = standby.wait();
    assert_eq!(organizations(&b, &sandbox.url, &state), expected);
    let (code, stdout, stderr) = run(against(&b, &sandbox.url, &state, &["plan", "."]));
    assert_eq!(code, 0, "nothing is left to do: {stdout}{stderr}");
}

#[test]
fn state_copy_round_trip_from_sqlite_through_postgres_gives_identical_contents() {
    let sandbox = sandbox("copy");
    let dir = acme_copy("copy");
    let original = dir.join("original.db").display().to_string();
    for at in ["2027-01-15", "2027-03-15"] {
        let (code, _, stderr) = run(against(
            &dir,
            &sandbox.url,
            &original,
            &["apply", ".", "--at", at, "--auto-approve"],
        ));
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, stderr) = run(against(
        &dir,
        &sandbox.url,
        &original,
        &[
            "transition",
            ".",
            "globex",
            "reactivate",
            "--at",
            "2027-03-20",
        ],
    ));
    assert!(code == 0 || stderr.contains("not allowed"), "{stderr}");
    let url = database("copy");
    let back = dir.join("back.db").display().to_string();
    let (code, stdout, stderr) = charter(&dir, &["state", "copy", &original, &url], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("copied `{original}` to `{url}`: ")),
        "{stdout}"
    );
    // A target that holds something is refused without `--force`.
    let (code, _, stderr) = charter(&dir, &["state", "copy", &original, &url], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not empty"), "{stderr}");
    let (code, stdout, stderr) = charter(&dir, &["state", "copy", &url, &back], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let original = store(&original).contents().unwrap();
    assert!(!original.is_empty());
    assert_eq!(store(&url).contents().unwrap(), original);
    assert_eq!(store(&back).contents().unwrap(), original);
    // The copy on PostgreSQL goes on from where the original was: new ids follow the copied.
    let copied = store(&url);
    let recorded = copied.transitions("acme").unwrap().len();
    assert!(recorded > 0, "acme's provisioning was recorded");
    copied
        .record_transition(&charter::state::AppliedTransition {
            customer: "acme".to_owned(),
            transition: "freeze".to_owned(),
            from: "active".to_owned(),
            to: "frozen".to_owned(),
            at: 2_000_000_000,
            plan: None,
        })
        .unwrap();
    assert_eq!(copied.transitions("acme").unwrap().len(), recorded + 1);
    // `--force` replaces what the target holds.
    let (code, _, stderr) = charter(&dir, &["state", "copy", &back, &url, "--force"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(store(&url).contents().unwrap(), original);
}

#[test]
fn state_show_says_where_the_state_is_and_what_it_holds_without_the_password() {
    let url = with_password_user(&database("show"));
    let sandbox = sandbox("show");
    let dir = acme_copy("show");
    let env = [("PGPASSWORD", PASSWORD)];
    let mut apply = against(
        &dir,
        &sandbox.url,
        &url,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
    );
    apply.envs(env);
    let (code, stdout, stderr) = run(apply);
    assert_eq!(code, 0, "{stderr}");
    let mut all = stdout + &stderr;
    let mut show = against(&dir, &sandbox.url, &url, &["state", "show", "."]);
    show.envs(env);
    let (code, stdout, stderr) = run(show);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("state: {url} (PostgreSQL)\n")),
        "{stdout}"
    );
    assert!(stdout.contains("holds: 18 customers, "), "{stdout}");
    assert!(stdout.contains("\nlock: free\n"), "{stdout}");
    all += &stdout;
    all += &stderr;
    // The password in the URL itself: shown nowhere, even when it is wrong.
    let with_password = url.replacen(
        &format!("{PASSWORD_USER}@"),
        &format!("{PASSWORD_USER}:{PASSWORD}x@"),
        1,
    );
    let (code, stdout, stderr) = run(against(
        &dir,
        &sandbox.url,
        &with_password,
        &["state", "show", "."],
    ));
    assert_eq!(code, 1, "a wrong password is refused: {stdout}{stderr}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    all += &stdout;
    all += &stderr;
    // Without any password.
    let (code, stdout, stderr) = run(against(&dir, &sandbox.url, &url, &["plan", "."]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to the state database `{url}`")),
        "{stderr}"
    );
    all += &stdout;
    all += &stderr;
    assert!(!all.contains(PASSWORD), "the password was shown: {all}");
    // Written in charter.toml, it is refused.
    std::fs::write(
        dir.join("charter.toml"),
        format!("[state]\nurl = \"{with_password}\"\n"),
    )
    .unwrap();
    let (code, _, stderr) = charter(&dir, &["plan", "."], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the database password cannot be written in `charter.toml`"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

#[test]
fn the_password_comes_from_password_env_or_a_password_file_and_transition_records_there() {
    let url = with_password_user(&database("password-sources"));
    let dir = acme_copy("password-sources");
    std::fs::write(
        dir.join("charter.toml"),
        format!("[state]\nurl = \"{url}\"\npassword_env = \"ACME_DB_PASSWORD\"\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = charter(
        &dir,
        &[
            "transition",
            ".",
            "hooli",
            "reactivate",
            "--at",
            "2027-03-20",
        ],
        &[("ACME_DB_PASSWORD", PASSWORD)],
    );
    // Whether the lifecycle allows it or not, the state was reached with the password.
    assert!(
        code == 0 || stderr.contains("not allowed"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    let (code, stdout, stderr) = charter(
        &dir,
        &["state", "show", "."],
        &[("ACME_DB_PASSWORD", PASSWORD)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("state: {url} (PostgreSQL)")),
        "{stdout}"
    );
    // The variable named but not set: said, before any connection.
    let (code, _, stderr) = charter(&dir, &["state", "show", "."], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the environment variable `ACME_DB_PASSWORD` that should hold the database password is not set"),
        "{stderr}"
    );

    // A password file in PostgreSQL's format.
    std::fs::write(
        dir.join("charter.toml"),
        format!("[state]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let pgpass = dir.join("pgpass");
    let port = common::postgres::server().port;
    std::fs::write(
        &pgpass,
        format!("# comment\nother.example:5432:*:*:nope\n127.0.0.1:{port}:*:{PASSWORD_USER}:{PASSWORD}\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = charter(
        &dir,
        &["state", "show", "."],
        &[("PGPASSFILE", pgpass.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
}
