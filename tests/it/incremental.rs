//! Incremental plan reads through the built binary against the sandbox: a plan reads the
//! memberships of the organizations it changes, does not know, or whose turn in the rolling
//! verification has come, and takes the others from charter's state. A member removed by hand is
//! found and put back where the plan changes the organization, within `verify_every` by the
//! rolling verification elsewhere (time simulated with `--at`), at once with `--refresh full`;
//! a plan after a lost state verifies everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use charter::api::{Client, ClientOptions, Observed, Token};
use charter::model::time::{format_instant, parse_instant};
use charter::plan::Plan;
use charter_sandbox::{BlockingSandbox, Config, TokenGrant, TokenRole};

use crate::common;

const SA: &str = "sa-incremental-secret-token";
const AT: &str = "2027-01-15";

fn sandbox() -> BlockingSandbox {
    BlockingSandbox::start(Config {
        tokens: vec![TokenGrant::new(SA, TokenRole::SystemAdministrator)],
        ..Config::default()
    })
    .unwrap()
}

fn run(dir: &Path, args: &[&str], running: &BlockingSandbox) -> (i32, String, String) {
    let url = running.url();
    let env = [
        ("CHARTER_INSTANCE_URL", url.as_str()),
        ("CHARTER_TOKEN_ENV", "INCREMENTAL_TOKEN"),
        ("INCREMENTAL_TOKEN", SA),
    ];
    common::charter(dir, args, &env)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn client(running: &BlockingSandbox) -> Client {
    Client::new(
        &running.url(),
        Token::new(SA).unwrap(),
        ClientOptions::default(),
    )
    .unwrap()
}

fn observe(running: &BlockingSandbox) -> Observed {
    block_on(async { charter::api::observe(&client(running)).await.unwrap() })
}

/// `at` plus `seconds`, as `--at` reads it.
fn after(seconds: i64) -> String {
    format_instant(parse_instant(AT).unwrap() + seconds)
}

/// The plan at `at` (with `extra` arguments), and its exit code.
fn plan_at(dir: &Path, running: &BlockingSandbox, at: &str, extra: &[&str]) -> (i32, Plan) {
    let mut args = vec!["plan", ".", "--at", at, "--format", "json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(dir, &args, running);
    assert!(code == 0 || code == 2, "{stdout}{stderr}");
    (code, Plan::from_json(&stdout).unwrap())
}

/// The example policy set, applied to a fresh sandbox at [`AT`], with `verify_every` set.
fn provisioned(name: &str, verify_every: &str) -> (common::Scratch, BlockingSandbox) {
    let dir = common::acme_copy("incremental", name);
    std::fs::write(
        dir.join("charter.toml"),
        format!("[state]\nverify_every = \"{verify_every}\"\n"),
    )
    .unwrap();
    let running = sandbox();
    let (code, stdout, stderr) = run(
        &dir,
        &["apply", ".", "--at", AT, "--auto-approve"],
        &running,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, plan) = plan_at(&dir, &running, AT, &[]);
    assert_eq!(code, 0, "converged: {:?}", plan.steps);
    (dir, running)
}

/// The customer organization with the largest id that has a Member, and that Member: the
/// organization the rolling verification reaches last among those verified together.
fn last_with_a_member(observed: &Observed) -> (i64, i64, String) {
    observed
        .organizations
        .iter()
        .rev()
        .find_map(|o| {
            let member = o
                .members
                .iter()
                .find(|m| m.role.as_deref() == Some("Member"))?;
            Some((o.id, member.user_id, o.name.clone()))
        })
        .unwrap()
}

fn remove(running: &BlockingSandbox, user: i64, organization: i64) {
    block_on(async {
        client(running)
            .remove_from_organization(user, organization)
            .await
            .unwrap()
    });
}

/// The step putting `user` back into `organization`, if the plan has one.
fn put_back(plan: &Plan, organization: i64, email: &str) -> Option<charter::plan::Step> {
    plan.steps
        .iter()
        .find(|s| {
            s.action.kind() == "set_organization_role"
                && s.action.organization().and_then(|o| o.id) == Some(organization)
                && s.id.ends_with(&format!(":{}", email.to_lowercase()))
        })
        .cloned()
}

fn email_of(observed: &Observed, user: i64) -> String {
    observed.user(user).unwrap().email.clone()
}

#[test]
fn a_member_removed_by_hand_from_an_organization_the_plan_changes_is_found_and_put_back() {
    let (dir, running) = provisioned("changed", "7 days");
    let observed = observe(&running);
    let acme = observed
        .organizations
        .iter()
        .find(|o| o.name == "Acme Corp")
        .unwrap();
    let sam = observed
        .users
        .iter()
        .find(|u| u.email == "sam@acme.example")
        .unwrap();
    remove(&running, sam.id, acme.id);
    // The policy changes Acme's license: the plan acts on Acme, so it reads its members.
    let customers = std::fs::read_to_string(dir.join("customers.charter")).unwrap();
    std::fs::write(
        dir.join("customers.charter"),
        customers.replacen("operations = 55_000", "operations = 60_000", 1),
    )
    .unwrap();

    // At the instant of the last verification: no rolling share, only what the plan changes.
    let at = AT.to_owned();
    let (code, plan) = plan_at(&dir, &running, &at, &[]);
    assert_eq!(code, 2);
    assert!(plan.step("license:acme").is_some(), "{:?}", plan.steps);
    let step = put_back(&plan, acme.id, "sam@acme.example").expect("sam is put back");
    assert!(step.drift, "a member removed by hand is drift");
    let reading = plan.reading.as_ref().unwrap();
    assert_eq!(reading.organizations, 18);
    assert_eq!(reading.verified, 1, "{reading:?}");
    assert_eq!(reading.verified + reading.from_state, 18);

    let (code, stdout, stderr) = run(
        &dir,
        &["apply", ".", "--at", &at, "--auto-approve"],
        &running,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let after_apply = observe(&running);
    let acme = after_apply.organization(acme.id).unwrap();
    assert!(
        acme.members
            .iter()
            .any(|m| m.user_id == sam.id && m.role.as_deref() == Some("Member")),
        "{:?}",
        acme.members
    );
    let (code, plan) = plan_at(&dir, &running, &at, &[]);
    assert_eq!(code, 0, "{:?}", plan.steps);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_member_removed_where_the_plan_changes_nothing_is_found_by_the_rolling_verification_within_its_period()
 {
    let (dir, running) = provisioned("rolling", "1 day");
    let observed = observe(&running);
    let (organization, user, name) = last_with_a_member(&observed);
    let email = email_of(&observed, user);
    remove(&running, user, organization);

    // Hourly plans: 18 organizations verified once a day is one a plan, the oldest first.
    let mut found = None;
    for hour in 1..=25 {
        let (_, plan) = plan_at(&dir, &running, &after(hour * 3600), &[]);
        let reading = plan.reading.as_ref().unwrap();
        assert_eq!(reading.verified + reading.from_state, 18, "{reading:?}");
        if let Some(step) = put_back(&plan, organization, &email) {
            assert!(step.drift, "labelled as drift");
            found = Some(hour);
            break;
        }
        assert!(
            reading.verified <= 2,
            "hour {hour}: a plan verifies its share, not everything: {reading:?}"
        );
    }
    let hour = found.unwrap_or_else(|| panic!("`{email}` missing from {name} was never found"));
    assert!(hour > 1, "found by the first hourly plan: not by its turn");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_member_removed_by_hand_is_found_at_once_by_a_full_refresh() {
    let (dir, running) = provisioned("full", "7 days");
    let observed = observe(&running);
    let (organization, user, _) = last_with_a_member(&observed);
    let email = email_of(&observed, user);
    remove(&running, user, organization);

    let at = after(60);
    let (code, plan) = plan_at(&dir, &running, &at, &[]);
    assert_eq!(code, 0, "not read: nothing to do as far as the plan knows");
    assert!(put_back(&plan, organization, &email).is_none());
    let (_, stdout, _) = run(
        &dir,
        &["plan", ".", "--at", &at, "--refresh", "none"],
        &running,
    );
    assert!(
        stdout.contains(
            "Memberships not read (`--refresh none`): 18 organizations from charter's state"
        ),
        "{stdout}"
    );

    let (code, plan) = plan_at(&dir, &running, &at, &["--refresh", "full"]);
    assert_eq!(code, 2);
    let step = put_back(&plan, organization, &email).expect("found by the full refresh");
    assert!(step.drift);
    let reading = plan.reading.as_ref().unwrap();
    assert_eq!((reading.verified, reading.from_state), (18, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plan_after_a_lost_state_verifies_everything() {
    let (dir, running) = provisioned("lost", "7 days");
    let at = after(3600);
    let (_, plan) = plan_at(&dir, &running, &at, &[]);
    let reading = plan.reading.clone().unwrap();
    assert!(reading.verified < 18, "{reading:?}");
    assert!(
        reading.calls < 40,
        "a converged plan reads little: {reading:?}"
    );

    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(".charter").join(file));
    }
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", &at], &running);
    assert!(code == 0 || code == 2, "{stdout}{stderr}");
    assert!(
        stdout.contains("Memberships: 18 organizations verified now (incremental refresh)."),
        "{stdout}"
    );
    assert!(stdout.contains("Read: "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
