//! `charter plan`, `import`, `apply` and `run` end to end: the built binary against a sandbox
//! over loopback HTTP (in this process, or the embedded one of the binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use charter::api::wire::NewOrganization;
use charter::api::{Client, ClientOptions, Token, UserInvitation};
use charter::sandbox::{BlockingSandbox, Config, TokenGrant, TokenRole};

const SA: &str = "sa-live-secret-token";
const ADMIN: &str = "admin-live-secret-token";

fn sandbox() -> BlockingSandbox {
    BlockingSandbox::start(Config {
        tokens: vec![
            TokenGrant::new(SA, TokenRole::SystemAdministrator),
            TokenGrant::new(ADMIN, TokenRole::Admin),
        ],
        ..Config::default()
    })
    .unwrap()
}

/// A copy of the example policy set in a fresh folder.
fn acme_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("charter-live-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir("policies/acme").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Runs the binary in `dir`; `(exit code, stdout, stderr)`.
fn charter(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
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
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The environment pointing the binary at `running` with `token`.
fn remote(running: &BlockingSandbox, token: &str) -> Vec<(String, String)> {
    vec![
        ("CHARTER_INSTANCE_URL".to_owned(), running.url()),
        ("CHARTER_TOKEN_ENV".to_owned(), "LIVE_TOKEN".to_owned()),
        ("LIVE_TOKEN".to_owned(), token.to_owned()),
    ]
}

fn run(dir: &Path, args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    charter(dir, args, &env)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn an_empty_embedded_sandbox_plans_the_whole_provisioning() {
    let dir = acme_copy("empty");
    let (code, stdout, stderr) = charter(&dir, &["plan", ".", "--at", "2027-01-15"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.starts_with("Plan for the embedded sandbox at 2027-01-15\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  + organization \"Acme Corp\" owned by jane@acme.example, with its license\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("  ~ instance role of dana@acme-automation.example: none → D1\n"));
    let summary = stdout.lines().last().unwrap();
    assert!(summary.starts_with("Plan: "), "{summary}");
    // The saved plan reads back, and its JSON is what `--format json` prints.
    let (code, json, _) = charter(
        &dir,
        &[
            "plan",
            ".",
            "--at",
            "2027-01-15",
            "--format",
            "json",
            "-o",
            "saved.json",
        ],
        &[],
    );
    assert_eq!(code, 2);
    let saved = std::fs::read_to_string(dir.join("saved.json")).unwrap();
    assert_eq!(saved.trim_end(), json.trim_end());
    let plan = charter::plan::Plan::from_json(&saved).unwrap();
    assert_eq!(plan.version, charter::plan::PLAN_VERSION);
    assert!(plan.id.starts_with("plan-"));
    // An edited plan file is refused.
    let edited = saved.replacen("jane@acme.example", "mallory@evil.example", 1);
    assert!(matches!(
        charter::plan::Plan::from_json(&edited),
        Err(charter::plan::PlanFileError::Tampered)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_plan_schema_is_printed() {
    let dir = acme_copy("schema");
    let (code, stdout, _) = charter(&dir, &["schema", "plan"], &[]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["title"], "charter plan file");
    assert!(schema["properties"]["steps"]["items"]["properties"]["action"]["oneOf"].is_array());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_adopts_organizations_by_name_and_owner_and_infers_their_states() {
    let running = sandbox();
    let dir = acme_copy("import");
    let program = charter::policy::load(&dir)
        .ok()
        .unwrap()
        .checked
        .program
        .unwrap();
    let acme = program.customer("acme").unwrap();
    let frozen = charter::compile::customer::provenance(&program, acme, "frozen")
        .to_object()
        .unwrap();
    block_on(async {
        let client = Client::new(
            &running.url(),
            Token::new(SA).unwrap(),
            ClientOptions::default(),
        )
        .unwrap();
        let user = |email: &str| UserInvitation {
            name: email.to_owned(),
            email: email.to_owned(),
            ..UserInvitation::default()
        };
        let jane = client
            .create_user(&user("jane@acme.example"))
            .await
            .unwrap();
        let dummy = client
            .create_user(&user("offboarded@acme-automation.example"))
            .await
            .unwrap();
        let stranger = client
            .create_user(&user("x@elsewhere.example"))
            .await
            .unwrap();
        for (name, owner, license) in [
            ("Acme Corp", jane.id, Some((&frozen).into())),
            ("Globex", dummy.id, None),
            ("Initech", stranger.id, None),
            ("Stray Org", stranger.id, None),
        ] {
            client
                .create_organization(&NewOrganization {
                    name: name.to_owned(),
                    user_org_admin: Some(owner),
                    license,
                    ..NewOrganization::default()
                })
                .await
                .unwrap();
        }
    });
    let env = remote(&running, SA);
    let (code, stdout, stderr) = run(&dir, &["import", ".", "--at", "2027-02-10"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("  + acme: organization 1 (owner jane@acme.example), state frozen (its license is exactly this state's)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  + globex: organization 2 (owner offboarded@acme-automation.example), state deprovisioned (the dummy owner holds it)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  ? initech: not matched: organization 3 is owned by x@elsewhere.example, not by bill@initech.example or offboarded@acme-automation.example\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  ! organization 4 \"Stray Org\" belongs to no customer of the policy set\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("Import: adopted 2 of"), "{stdout}");
    let state = charter::state::State::open(&dir.join(".charter/state.db")).unwrap();
    let acme = state.customer("acme").unwrap().unwrap();
    assert_eq!(acme.organization_id, Some(1));
    assert_eq!(acme.state.as_deref(), Some("frozen"));
    assert_eq!(
        state.customer("globex").unwrap().unwrap().state.as_deref(),
        Some("deprovisioned")
    );
    // Initech's name is taken by someone else's organization: no plan is made until a person
    // decides.
    let (code, _, stderr) = run(&dir, &["plan", ".", "--at", "2027-02-10"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: initech: organization `Initech` (id 3) already exists on the instance, but charter's state does not link it to this customer and its owner is not `bill@initech.example`\n  help: link it with `charter import`"),
        "{stderr}"
    );
    // Importing again changes nothing.
    let (code, stdout, _) = run(&dir, &["import", ".", "--at", "2027-02-10"], &env);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("  = acme: already linked to organization 1\n"),
        "{stdout}"
    );
    running.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

// --- Apply and run through the binary. ---

/// Observes the sandbox with the SA token.
fn observe_sandbox(url: &str) -> charter::api::Observed {
    block_on(async {
        let client = Client::new(url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
        charter::api::observe(&client).await.unwrap()
    })
}

/// No address has two users and no name two organizations.
fn assert_no_duplicates(observed: &charter::api::Observed) {
    let mut emails: Vec<String> = observed
        .users
        .iter()
        .map(|u| u.email.to_lowercase())
        .collect();
    let users = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), users, "duplicate users");
    let mut names: Vec<&str> = observed
        .organizations
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    let organizations = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), organizations, "duplicate organizations");
}

/// The plan of `dir` at `at`, as JSON.
fn plan_json(dir: &Path, at: &str, env: &[(String, String)]) -> charter::plan::Plan {
    let (code, stdout, stderr) = run(dir, &["plan", ".", "--at", at, "--format", "json"], env);
    assert!(code == 0 || code == 2, "{stderr}");
    charter::plan::Plan::from_json(&stdout).unwrap()
}

fn kinds_of<'a>(plan: &'a charter::plan::Plan, subject: &str) -> Vec<&'a str> {
    plan.steps
        .iter()
        .filter(|s| s.subject == subject)
        .map(|s| s.action.kind())
        .collect()
}

#[test]
fn apply_provisions_then_plans_follow_the_policy_and_the_lifecycle() {
    let running = sandbox();
    let dir = acme_copy("apply");
    let env = remote(&running, SA);
    // Without a terminal and without --auto-approve, nothing happens.
    let (code, _, stderr) = run(&dir, &["apply", ".", "--at", "2027-01-15"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refusing to apply without confirmation"),
        "{stderr}"
    );
    assert_eq!(observe_sandbox(&running.url()).organizations.len(), 0);

    let (code, stdout, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Apply: "), "{stdout}");
    assert!(stdout.contains(" 0 failed, 0 skipped"), "{stdout}");
    let observed = observe_sandbox(&running.url());
    assert_no_duplicates(&observed);
    assert_eq!(observed.organizations.len(), 18);

    // A provisioned instance plans nothing.
    let (code, stdout, _) = run(&dir, &["plan", ".", "--at", "2027-01-15"], &env);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("No changes"), "{stdout}");

    // A freeze: one license call for each customer that freezes, nothing else.
    let plan = plan_json(&dir, "2027-02-08", &env);
    let freezing: Vec<&str> = plan
        .customers
        .iter()
        .filter(|c| c.transitions.iter().any(|t| t.to == "frozen"))
        .map(|c| c.key.as_str())
        .collect();
    assert!(freezing.contains(&"acme"), "{freezing:?}");
    assert_eq!(plan.calls(), freezing.len());
    for key in &freezing {
        assert_eq!(kinds_of(&plan, key), ["set_license"], "{key}");
    }
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-02-08", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");

    // A deprovision: license, the dummy owner made a member, the transfer, the demotions, and
    // the manual step — counted independently from the customer's people.
    let plan = plan_json(&dir, "2027-05-09", &env);
    assert_eq!(
        kinds_of(&plan, "acme"),
        [
            "set_license",
            "set_organization_role",
            "set_organization_role",
            "transfer_ownership",
            "set_organization_role",
            "manual"
        ]
    );
    let acme = charter::policy::load(&dir)
        .ok()
        .unwrap()
        .checked
        .program
        .unwrap();
    let customer = acme.customer("acme").unwrap();
    // 1 license + 1 dummy membership + 1 transfer + the previous owner + each admin demoted.
    let minimal = 1 + 1 + 1 + 1 + customer.admins.len();
    let acme_calls = plan
        .steps
        .iter()
        .filter(|s| s.subject == "acme" && s.action.is_call())
        .count();
    assert_eq!(acme_calls, minimal);
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-05-09", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!plan_json(&dir, "2027-05-09", &env).has_changes());
    assert_no_duplicates(&observe_sandbox(&running.url()));
    running.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tier_change_plans_one_license_call_per_affected_organization() {
    let running = sandbox();
    let dir = acme_copy("tier");
    let env = remote(&running, SA);
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let before = charter::policy::load(&dir)
        .ok()
        .unwrap()
        .checked
        .program
        .unwrap();
    let tiers = std::fs::read_to_string(dir.join("tiers.charter")).unwrap();
    std::fs::write(
        dir.join("tiers.charter"),
        tiers.replace("operations = 40_000", "operations = 45_000"),
    )
    .unwrap();
    let after = charter::policy::load(&dir)
        .ok()
        .unwrap()
        .checked
        .program
        .unwrap();
    let state = charter::state::State::open(&dir.join(".charter/state.db")).unwrap();
    let histories = state.histories().unwrap();
    let at = charter::model::time::parse_instant("2027-01-15").unwrap();
    // Independently: the customers whose compiled license differs between the two versions.
    let affected: Vec<&str> = after
        .customers
        .iter()
        .filter(|c| {
            let h = histories.get(&c.key).cloned().unwrap_or_default();
            let old = charter::compile::customer::desired(
                &before,
                before.customer(&c.key).unwrap(),
                &h,
                at,
            );
            let new = charter::compile::customer::desired(&after, c, &h, at);
            old.license != new.license
        })
        .map(|c| c.key.as_str())
        .collect();
    assert!(affected.len() >= 2, "{affected:?}");
    let plan = plan_json(&dir, "2027-01-15", &env);
    assert_eq!(
        plan.calls(),
        affected.len(),
        "{}",
        charter::plan::render_text(&plan)
    );
    for step in &plan.steps {
        assert_eq!(step.action.kind(), "set_license");
        assert!(affected.contains(&step.subject.as_str()));
    }
    running.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hand_edit_shows_as_drift_and_a_saved_plan_is_refused_once_the_instance_changed() {
    let running = sandbox();
    let dir = acme_copy("drift");
    let env = remote(&running, SA);
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let state = charter::state::State::open(&dir.join(".charter/state.db")).unwrap();
    let id = state
        .customer("acme")
        .unwrap()
        .unwrap()
        .organization_id
        .unwrap();
    let observed = observe_sandbox(&running.url());
    let mut license = observed.organization(id).unwrap().license.0.clone();
    license.insert("operations".to_owned(), 7.into());
    // A hand edit through the sandbox's control endpoint (as the Administration UI would).
    block_on(async {
        let response = reqwest::Client::new()
            .put(format!(
                "{}/organizations/{id}/license",
                running.control_url()
            ))
            .header("Authorization", format!("Token {SA}"))
            .json(&license)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    });
    let (code, stdout, _) = run(
        &dir,
        &["plan", ".", "--at", "2027-01-15", "-o", "fix.json"],
        &env,
    );
    assert_eq!(code, 2);
    assert!(
        stdout.contains("  ~ license of \"Acme Corp\"   # drift: changed by hand on the instance\n      operations: 7 → 55,000   # drift: changed by hand\n"),
        "{stdout}"
    );
    assert!(stdout.contains("1 step correcting drift"), "{stdout}");
    // Someone changes the organization again: the saved plan is refused, naming it.
    license.insert("operations".to_owned(), 8.into());
    block_on(async {
        reqwest::Client::new()
            .put(format!(
                "{}/organizations/{id}/license",
                running.control_url()
            ))
            .header("Authorization", format!("Token {SA}"))
            .json(&license)
            .send()
            .await
            .unwrap();
    });
    let (code, _, stderr) = run(&dir, &["apply", "fix.json"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("the instance changed since the plan was made: organization {id} (\"Acme Corp\") changed")),
        "{stderr}"
    );
    // A fresh plan applies, and the drift is gone.
    let (code, _, stderr) = run(
        &dir,
        &["plan", ".", "--at", "2027-01-15", "-o", "fix.json"],
        &env,
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, stdout, stderr) = run(&dir, &["apply", "fix.json"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 done"), "{stdout}");
    assert!(!plan_json(&dir, "2027-01-15", &env).has_changes());
    running.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn staff_roles_are_granted_changed_removed_and_sa_is_refused_to_an_admin_token() {
    let running = sandbox();
    let dir = acme_copy("staff");
    let env = remote(&running, SA);
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let role_of = |email: &str| {
        observe_sandbox(&running.url())
            .users
            .into_iter()
            .find(|u| u.email == email)
            .and_then(|u| u.instance_role)
    };
    assert_eq!(
        role_of("dana@acme-automation.example").as_deref(),
        Some("D1")
    );
    assert_eq!(
        role_of("sid@acme-automation.example").as_deref(),
        Some("S4")
    );
    // Changed: one call; the app options are not listed again.
    let staff = std::fs::read_to_string(dir.join("staff.charter")).unwrap();
    std::fs::write(
        dir.join("staff.charter"),
        staff.replace("role = \"D1\"", "role = \"D2\""),
    )
    .unwrap();
    let plan = plan_json(&dir, "2027-01-15", &env);
    assert_eq!(
        kinds_of(&plan, "staff:dana@acme-automation.example"),
        ["set_instance_role"]
    );
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        role_of("dana@acme-automation.example").as_deref(),
        Some("D2")
    );
    // Removed from the policy set: the role goes, the account stays.
    let staff = std::fs::read_to_string(dir.join("staff.charter")).unwrap();
    let without_sid = staff
        .split("\n\n")
        .filter(|block| !block.contains("sid@acme-automation.example"))
        .collect::<Vec<_>>()
        .join("\n\n");
    std::fs::write(dir.join("staff.charter"), without_sid).unwrap();
    let (code, stdout, _) = run(&dir, &["plan", ".", "--at", "2027-01-15"], &env);
    assert_eq!(code, 2);
    assert!(
        stdout.contains("staff sid@acme-automation.example (removed from the policy set)\n  ~ instance role of sid@acme-automation.example: S4 → none\n"),
        "{stdout}"
    );
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(role_of("sid@acme-automation.example"), None);
    // Converged: nothing to do.
    assert!(!plan_json(&dir, "2027-01-15", &env).has_changes());
    // Granting SA with an Admin token is refused when planning, before any call.
    let staff = std::fs::read_to_string(dir.join("staff.charter")).unwrap();
    std::fs::write(
        dir.join("staff.charter"),
        staff.replace("role = \"D2\"", "role = \"SA\""),
    )
    .unwrap();
    let admin = remote(&running, ADMIN);
    let (code, _, stderr) = run(&dir, &["plan", ".", "--at", "2027-01-15"], &admin);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: staff:dana@acme-automation.example: the instance role `SA` is above this token's own (`Admin`): Make refuses to grant it or take it away"),
        "{stderr}"
    );
    let (code, _, _) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &admin,
    );
    assert_eq!(code, 1);
    assert_eq!(
        role_of("dana@acme-automation.example").as_deref(),
        Some("D2")
    );
    running.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_at_successive_instants_walks_the_customers_through_their_lives_once() {
    let running = sandbox();
    let dir = acme_copy("run");
    let env = remote(&running, SA);
    let mut days = vec![
        "2027-01-15",
        "2027-02-06",
        "2027-02-07",
        "2027-02-07T12:00:00Z",
        "2027-05-07",
        "2027-05-08",
        "2027-05-09",
    ];
    for day in days.drain(..) {
        let (code, stdout, stderr) = run(&dir, &["run", ".", "--at", day], &env);
        assert_eq!(code, 0, "{day}: {stdout}{stderr}");
    }
    let (code, _, stderr) = run(
        &dir,
        &[
            "transition",
            ".",
            "acme",
            "reactivate",
            "--at",
            "2027-05-20",
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    for day in ["2027-05-20", "2027-05-21"] {
        let (code, stdout, stderr) = run(&dir, &["run", ".", "--at", day], &env);
        assert_eq!(code, 0, "{day}: {stdout}{stderr}");
    }
    let state = charter::state::State::open(&dir.join(".charter/state.db")).unwrap();
    let recorded: Vec<(String, String)> = state
        .transitions("acme")
        .unwrap()
        .into_iter()
        .map(|t| (t.transition, charter::model::time::format_instant(t.at)))
        .collect();
    assert_eq!(
        recorded,
        [
            ("freeze".to_owned(), "2027-02-07".to_owned()),
            ("deprovision".to_owned(), "2027-05-08".to_owned()),
            ("reactivate".to_owned(), "2027-05-20".to_owned()),
        ]
    );
    // Reactivated: the customer's owner holds the organization again, with its tier's license.
    let observed = observe_sandbox(&running.url());
    let id = state
        .customer("acme")
        .unwrap()
        .unwrap()
        .organization_id
        .unwrap();
    let o = observed.organization(id).unwrap();
    let owner = o
        .members
        .iter()
        .find(|m| m.role.as_deref() == Some("Owner"))
        .unwrap();
    assert_eq!(
        observed.user(owner.user_id).unwrap().email,
        "jane@acme.example"
    );
    assert_eq!(
        o.license.get("operations"),
        Some(&serde_json::json!(55_000))
    );
    assert_no_duplicates(&observed);
    running.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
