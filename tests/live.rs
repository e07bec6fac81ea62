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
