//! charter never touches what is not its customers': a state belongs to one instance, a linked
//! organization that no longer looks like the customer's is left alone until relinked, two
//! policy sets applying to one instance create nothing twice, a state deleted under an apply
//! fails it, and plans name what each step touches as the instance names it. The built binary
//! against sandboxes over loopback HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use charter::api::wire::{NewOrganization, OrganizationChanges};
use charter::api::{Client, ClientOptions, Observed, Token, UserInvitation};
use charter::plan::{Action, Plan};
use charter_sandbox::{BlockingSandbox, Config, TokenGrant, TokenRole};

use crate::common;

const SA: &str = "sa-instance-secret-token";
const AT: &str = "2027-01-15";

fn sandbox() -> BlockingSandbox {
    BlockingSandbox::start(Config {
        tokens: vec![TokenGrant::new(SA, TokenRole::SystemAdministrator)],
        ..Config::default()
    })
    .unwrap()
}

fn acme_copy(name: &str) -> common::Scratch {
    common::acme_copy("instance", name)
}

/// The environment pointing the binary at `url` with the SA token.
fn remote(url: &str) -> Vec<(String, String)> {
    vec![
        ("CHARTER_INSTANCE_URL".to_owned(), url.to_owned()),
        ("CHARTER_TOKEN_ENV".to_owned(), "INSTANCE_TOKEN".to_owned()),
        ("INSTANCE_TOKEN".to_owned(), SA.to_owned()),
    ]
}

fn run(dir: &Path, args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::charter(dir, args, &env)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn client(url: &str) -> Client {
    Client::new(url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap()
}

fn observe(url: &str) -> Observed {
    block_on(async { charter::api::observe(&client(url)).await.unwrap() })
}

/// Organizations by name, with how many there are of each.
fn organizations_by_name(observed: &Observed) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for o in observed.organizations.iter().filter(|o| !o.deleted) {
        *names.entry(o.name.clone()).or_default() += 1;
    }
    names
}

fn apply(dir: &Path, env: &[(String, String)]) {
    let (code, stdout, stderr) = run(dir, &["apply", ".", "--at", AT, "--auto-approve"], env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[test]
fn a_state_is_refused_against_another_instance_and_another_state_file_imports_it() {
    // The README's own flow: apply on the embedded sandbox, then delete its database and seed
    // a new one. The state's links now name the seeded organizations.
    let dir = acme_copy("readme-flow");
    apply(&dir, &[]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!(".charter/sandbox.db{suffix}")));
    }
    let (code, _, stderr) = run(
        &dir,
        &[
            "sandbox",
            "seed",
            "--db",
            ".charter/sandbox.db",
            "--orgs",
            "20",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", AT], &[]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("belongs to another instance"), "{stderr}");
    assert!(stderr.contains("--state FILE"), "{stderr}");
    assert!(!stdout.contains("owner of"), "nothing is planned: {stdout}");
    let (code, _, stderr) = run(&dir, &["apply", ".", "--at", AT, "--auto-approve"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("belongs to another instance"), "{stderr}");

    // Another address is another instance too.
    let first = sandbox();
    let second = sandbox();
    let dir = acme_copy("two-urls");
    apply(&dir, &remote(&first.url()));
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", AT], &remote(&second.url()));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("belongs to another instance"), "{stderr}");
    assert!(
        stderr.contains(&format!("not `http://{}`", second.addr())),
        "{stderr}"
    );
    assert!(
        observe(&second.url()).organizations.is_empty(),
        "nothing was created on the second instance"
    );

    // The way out: another state file for this instance, filled by `charter import`; the
    // first state stays bound to the first instance.
    let (code, stdout, stderr) = run(
        &dir,
        &["import", ".", "--at", AT, "--state", "second.db"],
        &remote(&second.url()),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (code, stdout, stderr) = run(
        &dir,
        &["plan", ".", "--at", AT, "--state", "second.db"],
        &remote(&second.url()),
    );
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.contains("+ organization \"Acme Corp\""), "{stdout}");
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", AT], &remote(&first.url()));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

/// An old state (made before states were bound) is bound on its first use, then refuses
/// another instance.
#[test]
fn a_state_made_before_binding_adopts_the_instance_of_its_first_use() {
    let first = sandbox();
    let second = sandbox();
    let dir = acme_copy("adopt-binding");
    apply(&dir, &remote(&first.url()));
    let state = dir.join(".charter/state.db");
    // What an older charter left: schema version 3, no instance recorded (nor anything later).
    {
        let conn = rusqlite::Connection::open(&state).unwrap();
        conn.execute_batch(
            "DROP TABLE instance; DROP TABLE rounds; DROP TABLE verified; PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", AT], &remote(&first.url()));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let bound =
        charter::state::Store::open_existing(&charter::state::Location::File(state.clone()))
            .unwrap()
            .unwrap()
            .instance()
            .unwrap()
            .unwrap();
    assert_eq!(bound.url, format!("http://{}", first.addr()));
    assert_eq!(bound.user.unwrap().email, "sa@sandbox.invalid");
    let (code, _, stderr) = run(&dir, &["plan", ".", "--at", AT], &remote(&second.url()));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("belongs to another instance"), "{stderr}");
}

/// Renames the organization and gives it to a stranger, by hand, through the API.
fn give_away(url: &str, organization: i64, name: &str, stranger: &str) {
    block_on(async {
        let client = client(url);
        let roles = client.roles().await.unwrap();
        client
            .update_organization(
                organization,
                &OrganizationChanges {
                    name: Some(name.to_owned()),
                    ..OrganizationChanges::default()
                },
            )
            .await
            .unwrap();
        let user = client
            .create_user(&UserInvitation {
                name: "Stranger".to_owned(),
                email: stranger.to_owned(),
                country_id: None,
                timezone_id: None,
                locale_id: None,
            })
            .await
            .unwrap();
        let member = roles.organization_role("Member").unwrap();
        client
            .set_organization_role(user.id, organization, member)
            .await
            .unwrap();
        client
            .transfer_ownership(user.id, organization)
            .await
            .unwrap();
    });
}

#[test]
fn a_linked_organization_that_looks_like_someone_elses_is_refused_until_relinked() {
    let running = sandbox();
    let env = remote(&running.url());
    let dir = acme_copy("foreign");
    apply(&dir, &env);
    let observed = observe(&running.url());
    let acme = observed
        .organizations
        .iter()
        .find(|o| o.name == "Acme Corp")
        .unwrap()
        .id;

    // Renamed alone, it is still the customer's (its owner is): plans name it as it is now.
    block_on(async {
        client(&running.url())
            .update_organization(
                acme,
                &OrganizationChanges {
                    name: Some("Acme Corporation".to_owned()),
                    ..OrganizationChanges::default()
                },
            )
            .await
            .unwrap();
    });
    let (code, stdout, stderr) = run(
        &dir,
        &["plan", ".", "--at", "2027-09-01", "--format", "json"],
        &env,
    );
    assert!(code == 0 || code == 2, "{stderr}");
    let plan = Plan::from_json(&stdout).unwrap();
    let named: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::SetLicense { organization, .. }
            | Action::TransferOwnership { organization, .. }
            | Action::SetOrganizationRole { organization, .. } => Some(organization),
            _ => None,
        })
        .filter(|o| o.customer == "acme")
        .collect();
    assert!(
        !named.is_empty(),
        "a step touches acme's organization: {stdout}"
    );
    for o in named {
        assert_eq!(o.id, Some(acme));
        assert_eq!(o.live_name.as_deref(), Some("Acme Corporation"));
    }
    let (_, stdout, _) = run(&dir, &["plan", ".", "--at", "2027-09-01"], &env);
    assert!(
        stdout.contains(&format!("\"Acme Corporation\" (organization {acme})")),
        "{stdout}"
    );

    // Renamed and given to a stranger, it is someone else's: nothing is planned for it.
    give_away(
        &running.url(),
        acme,
        "Elsewhere Holdings",
        "mallory@elsewhere.example",
    );
    let before = observe(&running.url());
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", AT], &env);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "organization {acme} linked to this customer is now `Elsewhere Holdings` owned by \
             `mallory@elsewhere.example`, not the customer's `Acme Corp` owned by `jane@acme.example`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("charter import --relink acme"), "{stderr}");
    let (code, _, stderr) = run(&dir, &["apply", ".", "--at", AT, "--auto-approve"], &env);
    assert_eq!(code, 1, "{stderr}");
    let after = observe(&running.url());
    assert_eq!(
        before.organization(acme).unwrap().fingerprint(),
        after.organization(acme).unwrap().fingerprint(),
        "the foreign organization was not changed"
    );

    // Relinked: the link is forgotten, no organization of the customer's name and owner is
    // found, and the plan makes the customer a new one — and leaves Elsewhere Holdings alone.
    let (code, stdout, stderr) = run(&dir, &["import", ".", "--at", AT, "--relink", "acme"], &env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("- acme: unlinked from organization {acme}")),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&dir, &["plan", ".", "--at", AT], &env);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.contains("+ organization \"Acme Corp\""), "{stdout}");
    assert!(!stdout.contains("Elsewhere"), "{stdout}");
    apply(&dir, &env);
    let observed = observe(&running.url());
    let names = organizations_by_name(&observed);
    assert_eq!(names.get("Acme Corp"), Some(&1));
    assert_eq!(names.get("Elsewhere Holdings"), Some(&1));
    assert_eq!(
        before.organization(acme).unwrap().fingerprint(),
        observed.organization(acme).unwrap().fingerprint()
    );

    // A customer key that does not exist is a usage error with a suggestion.
    let (code, _, stderr) = run(&dir, &["import", ".", "--relink", "acmee"], &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `acme`?"), "{stderr}");
}

/// Starts `charter apply` in `dir` against `env` without waiting for it.
fn spawn_apply(dir: &Path, env: &[(String, String)]) -> std::process::Child {
    let mut command = common::charter_command(dir, &["apply", ".", "--at", AT, "--auto-approve"]);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_policy_sets_applying_to_one_instance_at_once_create_nothing_twice() {
    let running = sandbox();
    let env = remote(&running.url());
    let folders = [acme_copy("race-a"), acme_copy("race-b")];
    let children: Vec<_> = folders.iter().map(|dir| spawn_apply(dir, &env)).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let stderrs: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(outputs.iter().any(|o| o.status.success()), "{stderrs:?}");
    for (output, stderr) in outputs.iter().zip(&stderrs) {
        assert!(
            output.status.success() || stderr.contains("another runner of this machine"),
            "{stderr}"
        );
    }
    let names = organizations_by_name(&observe(&running.url()));
    assert!(names.len() >= 4, "{names:?}");
    assert!(names.values().all(|n| *n == 1), "{names:?}");
    // Then each in turn: the second adopts what the first made.
    for dir in &folders {
        apply(dir, &env);
    }
    let names = organizations_by_name(&observe(&running.url()));
    assert!(names.values().all(|n| *n == 1), "{names:?}");
}

#[test]
fn a_state_deleted_while_applying_fails_the_apply() {
    let folder = common::scratch("instance", "deleted-db");
    let db = folder.join("sandbox.db");
    let process = common::SandboxProcess::start(&db, SA, &["--faults", "latency=1:150ms"]);
    let env = remote(&process.url);
    let dir = acme_copy("deleted-state");
    let child = spawn_apply(&dir, &env);
    let state = dir.join(".charter/state.db");
    // Once the apply has begun its steps, the state goes.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let begun = rusqlite::Connection::open(&state)
            .and_then(|c| c.query_row("SELECT count(*) FROM journal", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0);
        if begun > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!(".charter/state.db{suffix}")));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was deleted or replaced while charter was using it"),
        "{stderr}"
    );
}

#[test]
fn a_saved_plan_is_shown_with_the_names_the_instance_gives_what_it_touches() {
    let running = sandbox();
    let env = remote(&running.url());
    let dir = acme_copy("saved-live-names");
    apply(&dir, &env);
    let (code, _, stderr) = run(
        &dir,
        &["plan", ".", "--at", "2027-09-01", "-o", "plan.json"],
        &env,
    );
    assert_eq!(code, 2, "{stderr}");
    // The file is edited to show other names, and sealed again: still a valid plan file.
    let text = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    let mut plan = Plan::from_json(&text).unwrap();
    let mut touched = Vec::new();
    for step in &mut plan.steps {
        if let Action::SetLicense { organization, .. } = &mut step.action {
            organization.name = "Harmless Test Org".to_owned();
            organization.live_name = Some("Harmless Test Org".to_owned());
            touched.extend(organization.id);
        }
    }
    assert!(!touched.is_empty());

    // A step pointed at an organization the plan never read is refused, whatever it says.
    let stray = block_on(async {
        let client = client(&running.url());
        let me = client.me().await.unwrap().unwrap();
        client
            .create_organization(&NewOrganization {
                name: "Stray Org".to_owned(),
                user_org_admin: Some(me.id),
                ..NewOrganization::default()
            })
            .await
            .unwrap()
            .id
    });
    let mut forged = plan.clone();
    for step in &mut forged.steps {
        if let Action::SetLicense { organization, .. } = &mut step.action {
            organization.id = Some(stray);
            break;
        }
    }
    std::fs::write(dir.join("forged.json"), forged.seal().to_json()).unwrap();
    let (code, stdout, stderr) = run(&dir, &["apply", "forged.json", "--auto-approve"], &env);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "touches organization {stray}, which the plan did not read"
        )),
        "{stderr}"
    );

    let plan = plan.seal();
    std::fs::write(dir.join("plan.json"), plan.to_json()).unwrap();
    let (code, stdout, stderr) = run(&dir, &["apply", "plan.json", "--auto-approve"], &env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let observed = observe(&running.url());
    for id in touched {
        let live = &observed.organization(id).unwrap().name;
        assert!(
            stdout.contains(&format!("~ license of \"{live}\" (organization {id})")),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("Harmless Test Org"), "{stdout}");
}

/// Between runners that share no lock (two machines, or a person at the console), the executor
/// reads right before creating an organization whether one of its name appeared since the plan
/// was made, and refuses to create a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_of_the_name_made_after_the_plan_is_not_made_twice() {
    use charter::apply::{self, Options, StepStatus};
    use charter::plan::{Context, Memory};

    let running = charter_sandbox::start(Config {
        tokens: vec![TokenGrant::new(SA, TokenRole::SystemAdministrator)],
        ..Config::default()
    })
    .await
    .unwrap();
    let url = running.url();
    let client = client(&url);
    let dir = common::scratch("instance", "made-after-the-plan");
    let state = charter::state::Store::open_file(&dir.join("state.db")).unwrap();
    let program = charter::policy::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/acme"
    )))
    .ok()
    .and_then(|set| set.checked.program)
    .unwrap();
    let observed = charter::api::observe(&client).await.unwrap();
    let at = charter::model::time::parse_instant(AT).unwrap();
    let plan = charter::plan::plan(
        &program,
        at,
        &Memory::default(),
        &observed,
        &Context::default(),
    )
    .unwrap()
    .seal();
    // Someone else makes Globex after the plan was made.
    let me = client.me().await.unwrap().unwrap();
    let theirs = client
        .create_organization(&NewOrganization {
            name: "Globex".to_owned(),
            user_org_admin: Some(me.id),
            ..NewOrganization::default()
        })
        .await
        .unwrap()
        .id;
    let report = apply::execute(
        &client,
        &state,
        None,
        &plan,
        &Options::default(),
        at,
        &mut (),
    )
    .await
    .unwrap();
    let globex = report
        .steps
        .iter()
        .find(|s| s.id == "organization:globex")
        .unwrap();
    match &globex.status {
        StepStatus::Failed { error, .. } => assert!(
            error.contains(&format!(
                "organization `Globex` (id {theirs}) appeared on the instance after the plan was made"
            )),
            "{error}"
        ),
        other => panic!("created anyway: {other:?}"),
    }
    let names = organizations_by_name(&charter::api::observe(&client).await.unwrap());
    assert_eq!(names.get("Globex"), Some(&1));
    assert_eq!(names.get("Acme Corp"), Some(&1), "the rest went on");
    assert_eq!(state.organization("globex").unwrap(), None);
    drop(client);
    running.shutdown().await.unwrap();
}
