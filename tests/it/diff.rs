//! `charter diff` over pairs of policy sets: `tests/diff/<case>/old` and `new`, each loaded with
//! `tests/check/prelude.charter`. The text and Markdown reports are reviewed snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use charter::compile::diff::{self, Class};
use charter::model::program::Program;
use charter::model::time::parse_instant;
use charter::source::Sources;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diff");
const PRELUDE: &str = include_str!("../check/prelude.charter");

fn program(dir: &Path) -> Program {
    let mut sources = Sources::new();
    sources.add("prelude.charter", PRELUDE);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        sources.add(
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap(),
        );
    }
    let set = charter::policy::check_sources(sources, Path::new(""))
        .unwrap_or_else(|_| panic!("{} does not parse", dir.display()));
    set.checked.program.unwrap_or_else(|| {
        panic!(
            "{} does not check: {:?}",
            dir.display(),
            set.checked.diagnostics
        )
    })
}

fn run(case: &str) -> diff::Diff {
    let dir = Path::new(ROOT).join(case);
    let at = parse_instant("2027-01-01").unwrap();
    diff::diff(&program(&dir.join("old")), &program(&dir.join("new")), at)
}

fn snapshot(case: &str, d: &diff::Diff) {
    let report = format!(
        "{}\n--- markdown ---\n{}",
        diff::render_text(d),
        diff::render_markdown(d)
    );
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(format!("diff__{case}"), report);
    });
}

fn has(d: &diff::Diff, class: Class, subject: &str, what: &str) -> bool {
    d.changes
        .iter()
        .any(|c| c.class == class && c.subject == subject && c.what.contains(what))
}

#[test]
fn a_refactor_and_a_reformat_show_nothing() {
    let d = run("refactor_shows_nothing");
    assert!(d.changes.is_empty(), "{:#?}", d.changes);
    snapshot("refactor_shows_nothing", &d);
}

#[test]
fn every_change_is_classified_with_the_customers_it_reaches() {
    let d = run("classifications");
    assert!(has(
        &d,
        Class::Breaking,
        "tier pro",
        "operations: 40,000 → 30,000"
    ));
    assert!(has(
        &d,
        Class::Breaking,
        "tier pro",
        "analyticsAccess: true → false"
    ));
    assert!(has(
        &d,
        Class::Breaking,
        "tier pro",
        "interval: 5 min → 10 min"
    ));
    assert!(has(&d, Class::Additive, "tier pro", "teams: 2 → 5"));
    assert!(has(
        &d,
        Class::Neutral,
        "tier pro",
        "restartPeriod: monthly → yearly"
    ));
    assert!(has(&d, Class::Neutral, "customer newco", "added"));
    assert!(has(
        &d,
        Class::Neutral,
        "rules",
        "added `assert for pro: teams >= 5`"
    ));
    let ops = d
        .changes
        .iter()
        .find(|c| c.subject == "tier pro" && c.what.starts_with("operations"))
        .unwrap();
    assert_eq!(ops.customers, ["acme"], "the override shields `shielded`");
    assert!(d.is_breaking());
    snapshot("classifications", &d);
}

#[test]
fn removing_a_tier_that_customers_use_is_breaking() {
    let d = run("tier_removed");
    let removed = d
        .changes
        .iter()
        .find(|c| c.subject == "tier legacy")
        .unwrap();
    assert_eq!(removed.class, Class::Breaking);
    assert_eq!(removed.customers, ["oldie"]);
    assert!(has(&d, Class::Additive, "tier starter", "added"));
    assert!(has(
        &d,
        Class::Neutral,
        "add-on boost",
        "removed; looks renamed to `extra`"
    ));
    assert!(has(&d, Class::Neutral, "add-on extra", "added"));
    assert!(has(
        &d,
        Class::Additive,
        "organizations",
        "operations: 5,000 → 40,000"
    ));
    snapshot("tier_removed", &d);
}

#[test]
fn a_transition_that_fires_earlier_is_breaking() {
    let d = run("transition_earlier");
    assert!(has(
        &d,
        Class::Breaking,
        "customer acme",
        "`freeze` fires earlier: 2027-04-14 → 2027-04-07"
    ));
    assert!(has(
        &d,
        Class::Additive,
        "customer later",
        "`freeze` fires later: 2027-07-14 → 2027-08-07"
    ));
    assert!(has(&d, Class::Neutral, "lifecycle", "transition `freeze`"));
    snapshot("transition_earlier", &d);
}

use crate::common;

fn charter(dir: &Path, args: &[&str]) -> (i32, String, String) {
    common::charter(dir, args, &[])
}

/// A case's two sides as complete policy sets in a scratch folder (prelude included).
fn scratch_case(case: &str, name: &str) -> common::Scratch {
    let dir = common::scratch("diff", name);
    for side in ["old", "new"] {
        let target = dir.join(side);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("base.charter"), PRELUDE).unwrap();
        for entry in std::fs::read_dir(Path::new(ROOT).join(case).join(side)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn the_command_exits_2_on_breaking_changes_unless_allowed() {
    let dir = scratch_case("classifications", "exit");
    let (code, stdout, _) = charter(&dir, &["diff", "old", "new", "--at", "2027-01-01"]);
    assert_eq!(code, 2);
    assert!(stdout.contains("breaking ("));
    let (code, _, _) = charter(
        &dir,
        &[
            "diff",
            "old",
            "new",
            "--at",
            "2027-01-01",
            "--allow-breaking",
        ],
    );
    assert_eq!(code, 0);
    let (code, stdout, _) = charter(&dir, &["diff", "old", "old"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("no changes"));
    let (code, stdout, _) = charter(
        &dir,
        &[
            "diff",
            "old",
            "new",
            "--at",
            "2027-01-01",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 2);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["at"], "2027-01-01");
    assert!(
        json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["class"] == "breaking")
    );
}

#[test]
fn the_command_exits_1_when_a_side_does_not_check() {
    let dir = scratch_case("classifications", "broken");
    std::fs::write(
        dir.join("new/broken.charter"),
        "tier broken extends nowhere {}\n",
    )
    .unwrap();
    let (code, _, stderr) = charter(&dir, &["diff", "old", "new"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unknown tier `nowhere`"));
    assert!(stderr.contains("the new policy set `new` does not check"));
}

#[test]
fn git_revisions_are_read_without_a_checkout() {
    let dir = scratch_case("classifications", "git");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(&dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t.example")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t.example")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.join("policy")).unwrap();
    for f in ["base.charter", "policy.charter"] {
        std::fs::copy(dir.join("old").join(f), dir.join("policy").join(f)).unwrap();
    }
    git(&["add", "policy"]);
    git(&["commit", "-q", "-m", "old"]);
    std::fs::copy(
        dir.join("new/policy.charter"),
        dir.join("policy/policy.charter"),
    )
    .unwrap();
    git(&["commit", "-q", "-am", "new"]);
    let (code, stdout, stderr) = charter(
        &dir,
        &["diff", "main~1:policy", "main:policy", "--at", "2027-01-01"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.contains("tier pro: operations: 40,000 → 30,000"),
        "{stdout}"
    );
    // A working-tree path against a revision works too.
    let (code, stdout, _) = charter(&dir, &["diff", "main:policy", "policy"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("no changes"));
    let (code, _, stderr) = charter(&dir, &["diff", "nosuchrev:policy", "policy"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("git"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_names_the_organizations_a_breaking_change_would_hit() {
    use charter::api::wire::NewOrganization;
    use charter::api::{Client, ClientOptions, Token};
    use charter_sandbox::{self as sandbox, Config, TokenGrant, TokenRole};

    const TOKEN: &str = "diff-live-test-token";
    let running = sandbox::start(Config {
        tokens: vec![TokenGrant::new(TOKEN, TokenRole::SystemAdministrator)],
        ..Config::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr());
    let client = Client::new(&base, Token::new(TOKEN).unwrap(), ClientOptions::default()).unwrap();
    let license = client.default_license().await.unwrap();
    let http = reqwest::Client::new();
    // Acme used 35,000 operations in 30 days: more than `pro`'s new 30,000. Shielded used as
    // many, but its override keeps 50,000.
    for (name, daily) in [("Acme", 1_000), ("Shielded", 1_000)] {
        let org = client
            .create_organization(&NewOrganization {
                name: name.into(),
                license: Some(license.clone()),
                ..NewOrganization::default()
            })
            .await
            .unwrap();
        // The sandbox reports the 30 days ending today.
        let today = jiff::Timestamp::now().as_second();
        let days: Vec<serde_json::Value> = (0..30i64)
            .map(|d| {
                let date = jiff::Timestamp::from_second(today - d * 86_400).unwrap();
                serde_json::json!({
                    "date": date.strftime("%Y-%m-%d").to_string(),
                    "operations": if d < 5 { daily * 2 } else { daily },
                    "dataTransfer": 0,
                })
            })
            .collect();
        let status = http
            .put(format!("{base}/_sandbox/organizations/{}/usage", org.id))
            .header("Authorization", format!("Token {TOKEN}"))
            .json(&serde_json::json!({ "activeScenarios": 1, "data": days }))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }

    let dir = scratch_case("classifications", "live");
    let out = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        let base = base.clone();
        move || {
            let args = [
                "diff",
                "old",
                "new",
                "--at",
                "2027-01-01",
                "--live",
                "--url",
                &base,
            ];
            common::charter_command(&dir, &args)
                .args(["--token-env", "CHARTER_DIFF_TEST_TOKEN"])
                .env("CHARTER_DIFF_TEST_TOKEN", TOKEN)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("  acme: 35,000 operations in the last 30 days > new limit 30,000\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  acme: `analyticsAccess` is switched off; the customer has it on\n"));
    assert!(stdout.contains("  shielded: `analyticsAccess` is switched off"));
    assert!(
        !stdout.contains("shielded: 35,000 operations"),
        "its override keeps 50,000"
    );
    assert!(!stdout.contains(TOKEN), "the token is never printed");
    running.shutdown().await.unwrap();
}
