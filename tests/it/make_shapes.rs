//! `charter apply` and `plan` through the binary against the sandbox answering Make's documented
//! shapes, and against each reading of what Make leaves undocumented: a transfer that leaves
//! the previous owner Member, a `userOrgAdmin` that makes the user Admin and the token's own user
//! the Owner, page sizes capped below the one asked for. Whatever the reading, `apply`, `apply
//! plan.json` and `run` end with exactly the policy's roles (the token's user out of the
//! organizations charter created), one owner per organization, and nothing left to plan.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use charter::api::wire::{License, OrganizationChanges};
use charter::api::{Client, ClientOptions, Observed, Token};
use charter::plan::Plan;
use charter_sandbox::{
    Behaviour, BlockingSandbox, Config, PageCap, PreviousOwner, TokenGrant, TokenRole, UserOrgAdmin,
};
use serde_json::{Value, json};

use crate::common;

const SA: &str = "sa-shapes-secret-token";
const AT: &str = "2027-01-15";

fn sandbox(behaviour: Behaviour) -> BlockingSandbox {
    BlockingSandbox::start(Config {
        tokens: vec![TokenGrant::new(SA, TokenRole::SystemAdministrator)],
        behaviour,
        ..Config::default()
    })
    .unwrap()
}

fn env(running: &BlockingSandbox) -> Vec<(&'static str, String)> {
    vec![
        ("CHARTER_INSTANCE_URL", running.url()),
        ("CHARTER_TOKEN_ENV", "SHAPES_TOKEN".to_owned()),
        ("SHAPES_TOKEN", SA.to_owned()),
    ]
}

fn run(dir: &Path, args: &[&str], running: &BlockingSandbox) -> (i32, String, String) {
    let env = env(running);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
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

fn plan(dir: &Path, running: &BlockingSandbox) -> Plan {
    plan_at(dir, running, AT)
}

fn plan_at(dir: &Path, running: &BlockingSandbox, at: &str) -> Plan {
    let (code, stdout, stderr) = run(dir, &["plan", ".", "--at", at, "--format", "json"], running);
    assert!(code == 0 || code == 2, "{stderr}");
    Plan::from_json(&stdout).unwrap()
}

fn apply(dir: &Path, running: &BlockingSandbox) -> String {
    let (code, stdout, stderr) = run(dir, &["apply", ".", "--at", AT, "--auto-approve"], running);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    stdout
}

/// Every organization has exactly one owner, and it is not the token's own user.
fn assert_one_owner_each(observed: &Observed, token_user: i64) {
    for organization in &observed.organizations {
        let owners: Vec<i64> = organization
            .members
            .iter()
            .filter(|m| m.role.as_deref() == Some("Owner"))
            .map(|m| m.user_id)
            .collect();
        assert_eq!(owners.len(), 1, "`{}`: {owners:?}", organization.name);
        assert_ne!(owners[0], token_user, "`{}`", organization.name);
    }
}

/// The token's user, made Owner by the instance on create and left a Member by the transfer
/// back, is taken out of every organization charter created (the policy names them nowhere):
/// each organization holds exactly the policy's roles.
fn assert_token_user_in_none(observed: &Observed, token_user: i64) {
    for organization in &observed.organizations {
        assert!(
            organization.members.iter().all(|m| m.user_id != token_user),
            "`{}`: {:?}",
            organization.name,
            organization.members
        );
    }
}

#[test]
fn apply_then_plan_is_empty_and_license_keys_charter_does_not_know_survive_a_license_change() {
    let running = sandbox(Behaviour::default());
    let dir = common::acme_copy("shapes", "keys");
    let stdout = apply(&dir, &running);
    assert!(
        stdout.contains("match the policy after 1 verification round"),
        "{stdout}"
    );
    assert!(plan(&dir, &running).steps.is_empty());

    // An organization is given keys outside charter's catalog, and one of charter's keys is
    // changed by hand.
    let observed = observe(&running);
    let organization = &observed.organizations[0];
    let mut license: License = organization.license.clone();
    let operations = license.get("operations").and_then(Value::as_i64).unwrap();
    let extra = json!({ "users": 7, "makeAITools": 2, "apps": ["T2", "T3"], "priority": "high" });
    for (key, value) in extra.as_object().unwrap() {
        license.0.insert(key.clone(), value.clone());
    }
    license
        .0
        .insert("operations".to_owned(), json!(operations + 1));
    block_on(async {
        client(&running)
            .update_organization(
                organization.id,
                &OrganizationChanges {
                    license: Some(license),
                    ..OrganizationChanges::default()
                },
            )
            .await
            .unwrap()
    });

    let drift = plan(&dir, &running);
    assert_eq!(
        drift.steps.len(),
        1,
        "{}",
        charter::plan::render_text(&drift)
    );
    let (_, text, _) = run(&dir, &["plan", ".", "--at", AT], &running);
    for key in ["users", "makeAITools", "apps", "priority"] {
        assert!(
            !text.contains(key),
            "the plan shows only charter's keys:\n{text}"
        );
    }
    apply(&dir, &running);

    let after = observe(&running);
    let license = &after.organization(organization.id).unwrap().license;
    for (key, value) in extra.as_object().unwrap() {
        assert_eq!(license.get(key), Some(value), "`{key}` kept its value");
    }
    assert_eq!(license.get("operations"), Some(&json!(operations)));
    assert!(plan(&dir, &running).steps.is_empty());
    running.shutdown().unwrap();
}

#[test]
fn apply_reads_back_and_corrects_what_an_instance_does_differently_from_the_plan() {
    let running = sandbox(Behaviour {
        previous_owner: PreviousOwner::Member,
        user_org_admin: UserOrgAdmin::Admin,
        page_cap: Some(PageCap {
            limit: 2,
            echoed: true,
        }),
    });
    let dir = common::acme_copy("shapes", "knobs");
    let stdout = apply(&dir, &running);
    assert!(stdout.contains("Verification round 1: "), "{stdout}");
    assert!(
        stdout.contains("match the policy after 2 verification rounds"),
        "{stdout}"
    );

    let token_user = block_on(async { client(&running).me().await.unwrap().unwrap().id });
    let observed = observe(&running);
    assert!(!observed.organizations.is_empty());
    assert_one_owner_each(&observed, token_user);
    assert_token_user_in_none(&observed, token_user);
    // Every role the policy names is in place: nothing is left to plan.
    let again = plan(&dir, &running);
    assert!(
        again.steps.is_empty(),
        "{}",
        charter::plan::render_text(&again)
    );
    running.shutdown().unwrap();
}

/// The sandbox switched to every reading Make leaves open that changes memberships.
fn undocumented_readings() -> BlockingSandbox {
    sandbox(Behaviour {
        previous_owner: PreviousOwner::Member,
        user_org_admin: UserOrgAdmin::Admin,
        page_cap: Some(PageCap {
            limit: 2,
            echoed: true,
        }),
    })
}

/// What `apply PATH` shows of its verification, `run` and `apply plan.json` show too: a round
/// that corrects, the closing line, one owner each, nothing left to plan.
fn assert_verified_and_corrected(stdout: &str, dir: &Path, running: &BlockingSandbox, at: &str) {
    assert!(stdout.contains("Verification round 1: "), "{stdout}");
    assert!(
        stdout.contains("match the policy after 2 verification rounds"),
        "{stdout}"
    );
    let token_user = block_on(async { client(running).me().await.unwrap().unwrap().id });
    let observed = observe(running);
    assert!(!observed.organizations.is_empty());
    assert_one_owner_each(&observed, token_user);
    assert_token_user_in_none(&observed, token_user);
    let again = plan_at(dir, running, at);
    assert!(
        again.steps.is_empty(),
        "{}",
        charter::plan::render_text(&again)
    );
}

#[test]
fn a_run_round_reads_back_and_corrects_like_apply() {
    let running = undocumented_readings();
    let dir = common::acme_copy("shapes", "run");
    let (code, stdout, stderr) = run(&dir, &["run", ".", "--at", AT], &running);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("round at "), "{stdout}");
    assert_verified_and_corrected(&stdout, &dir, &running, AT);
    running.shutdown().unwrap();
}

/// Applied days after it was made: the transitions it carries out are recorded at `--at`, and
/// the verification plans from there, not from the plan's earlier instant.
#[test]
fn a_saved_plan_is_read_back_and_corrected_like_apply() {
    let running = undocumented_readings();
    let dir = common::acme_copy("shapes", "saved");
    let (code, _, stderr) = run(
        &dir,
        &["plan", ".", "--at", AT, "-o", "plan.json"],
        &running,
    );
    assert!(code == 0 || code == 2, "{stderr}");
    let later = "2027-01-20";
    let (code, stdout, stderr) = run(
        &dir,
        &["apply", "plan.json", "--auto-approve", "--at", later],
        &running,
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_verified_and_corrected(&stdout, &dir, &running, later);
    running.shutdown().unwrap();
}

#[test]
fn staff_roles_match_makes_names_in_any_case_and_an_unknown_one_lists_the_instances_names() {
    let running = sandbox(Behaviour::default());
    let dir = common::acme_copy("shapes", "role-names");
    let staff = std::fs::read_to_string(dir.join("staff.charter")).unwrap();
    std::fs::write(
        dir.join("staff.charter"),
        staff
            .replace("role = \"D1\"", "role = \"d1\"")
            .replace("role = \"Admin\"", "role = \"ADMIN\""),
    )
    .unwrap();
    apply(&dir, &running);
    let observed = observe(&running);
    let role_of = |email: &str| {
        observed
            .users
            .iter()
            .find(|u| u.email == email)
            .and_then(|u| u.instance_role.clone())
    };
    assert_eq!(
        role_of("dana@acme-automation.example").as_deref(),
        Some("D1")
    );
    assert_eq!(
        role_of("ops@acme-automation.example").as_deref(),
        Some("Admin")
    );
    assert!(
        plan(&dir, &running).steps.is_empty(),
        "matched ignoring case"
    );

    std::fs::write(
        dir.join("staff.charter"),
        staff.replace("role = \"D1\"", "role = \"D9\""),
    )
    .unwrap();
    let (code, _, stderr) = run(&dir, &["plan", ".", "--at", AT], &running);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the instance has no instance role `D9`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`D1`") && stderr.contains("`SA`"),
        "the instance's names are listed: {stderr}"
    );
    running.shutdown().unwrap();
}
