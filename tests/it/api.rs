//! The API client, `observe` and the configuration, over real loopback HTTP against the sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use charter::api::wire::{NewOrganization, NewTeam, OrganizationChanges, UserChanges};
use charter::api::{
    AdminRoleCategory, ApiError, ApiErrorKind, Client, ClientError, ClientOptions,
    OrganizationColumn, OrganizationFilter, RoleCategory, Token, UserFilter, UserInvitation,
    observe,
};
use charter::cli::config::{self, ConfigError, InstanceArgs, InstanceChoice, Origin, TokenSource};
use charter_sandbox::{
    self as sandbox, Config, RunningSandbox, SeedOptions, Storage, TokenGrant, TokenRole,
};
use serde_json::Value;

const SA: &str = "sa-4f1d0c2e-secret-token";
const MEMBER: &str = "member-9a7b-secret-token";

fn config() -> Config {
    Config {
        tokens: vec![
            TokenGrant::new(SA, TokenRole::SystemAdministrator),
            TokenGrant::new(MEMBER, TokenRole::Member),
        ],
        ..Config::default()
    }
}

fn base(running: &RunningSandbox) -> String {
    format!("http://{}", running.addr())
}

fn client_with(running: &RunningSandbox, token: &str, options: ClientOptions) -> Client {
    Client::new(&base(running), Token::new(token).unwrap(), options).unwrap()
}

fn client(running: &RunningSandbox) -> Client {
    client_with(running, SA, ClientOptions::default())
}

fn invitation(name: &str, email: &str) -> UserInvitation {
    UserInvitation {
        name: name.to_owned(),
        email: email.to_owned(),
        ..UserInvitation::default()
    }
}

/// The token must appear in no rendering of an error.
#[track_caller]
fn assert_secret(error: &ApiError) {
    for text in [
        error.to_string(),
        format!("{error:?}"),
        error.help().unwrap_or_default(),
    ] {
        assert!(!text.contains(SA) && !text.contains(MEMBER), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }
}

fn temp_dir(name: &str) -> common::Scratch {
    common::scratch("api", name)
}

// Every endpoint, successful.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_its_body() {
    let running = sandbox::start(config()).await.unwrap();
    let client = client(&running);

    let roles = client.roles().await.unwrap();
    assert_eq!(client.calls(), 5, "one call per documented role category");
    let owner = roles.organization_role("Owner").unwrap();
    let admin = roles.organization_role("Admin").unwrap();
    let member = roles.organization_role("Member").unwrap();
    let team_member = roles.team_role("Team Member").unwrap();
    let instance_admin = roles.instance_role("Admin").unwrap();
    assert!(roles.organization_role("Overlord").is_err());
    assert_eq!(
        client
            .admin_roles(AdminRoleCategory::Support)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(
        client
            .users_roles(RoleCategory::Team)
            .await
            .unwrap()
            .iter()
            .all(|r| r.category.as_deref() == Some("team"))
    );

    let ada = client
        .create_user(&invitation("Ada Novak", "ada@acme.example"))
        .await
        .unwrap();
    let bo = client
        .create_user(&invitation("Bo Berg", "bo@acme.example"))
        .await
        .unwrap();
    assert_eq!(ada.email, "ada@acme.example");
    let changed = client
        .update_user(
            bo.id,
            &UserChanges {
                name: Some("Bo Bergström".into()),
                users_admins_role_id: Some(Some(instance_admin)),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.name, "Bo Bergström");
    assert_eq!(changed.users_admins_role_id, Some(instance_admin));
    let found = client
        .lookup_user_by_email("ADA@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, ada.id);
    assert_eq!(
        client.lookup_user_by_id(bo.id).await.unwrap().unwrap().name,
        Some("Bo Bergström".to_owned())
    );
    assert_eq!(
        client
            .lookup_user_by_email("nobody@acme.example")
            .await
            .unwrap(),
        None,
        "a 404 is no user"
    );

    let mut license = client.default_license().await.unwrap();
    license.0.insert("operations".into(), Value::from(40_000));
    let acme = client
        .create_organization(&NewOrganization {
            name: "Acme".into(),
            user_org_admin: Some(ada.id),
            license: Some(license.clone()),
            ..NewOrganization::default()
        })
        .await
        .unwrap();
    assert_eq!(
        acme.license.as_ref().unwrap().get("operations"),
        Some(&Value::from(40_000))
    );
    license.0.insert("operations".into(), Value::from(0));
    let frozen = client
        .update_organization(
            acme.id,
            &OrganizationChanges {
                license: Some(license.clone()),
                name: Some("Acme Ltd".into()),
                ..OrganizationChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(frozen.license, Some(license.clone()));
    assert_eq!(frozen.name, "Acme Ltd");

    let listed = client
        .list_organizations(&OrganizationFilter {
            name: Some("acme".into()),
            ..OrganizationFilter::default()
        })
        .await
        .unwrap();
    // The list answers every column asked for; the update's answer, like Make's example, may
    // leave some out.
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id,
            &listed[0].name,
            &listed[0].license,
            &listed[0].teams
        ),
        (frozen.id, &frozen.name, &frozen.license, &frozen.teams)
    );
    assert_eq!(listed[0].deleted, Some(false));
    let narrowed = client
        .list_organization_columns(
            &OrganizationFilter::default(),
            &[OrganizationColumn::Id, OrganizationColumn::Name],
        )
        .await
        .unwrap();
    assert_eq!(narrowed.len(), 1);
    assert_eq!(narrowed[0].name.as_deref(), Some("Acme Ltd"));
    assert!(narrowed[0].license.is_none() && narrowed[0].teams.is_none());
    let usage = client.usage(acme.id).await.unwrap();
    assert_eq!(usage.data.len(), 30);

    let set = client
        .set_organization_role(bo.id, acme.id, member)
        .await
        .unwrap();
    assert_eq!(set.users_role_id, member);
    let listed_members = client
        .list_users(&UserFilter {
            organization_id: Some(acme.id),
            ..UserFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed_members.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![ada.id, bo.id]
    );
    assert_eq!(
        client
            .list_user_ids(&UserFilter {
                organization_id: Some(acme.id),
                organization_role_id: Some(owner),
                ..UserFilter::default()
            })
            .await
            .unwrap(),
        vec![ada.id]
    );
    let transferred = client.transfer_ownership(bo.id, acme.id).await.unwrap();
    assert!(
        transferred
            .iter()
            .any(|r| r.user_id == bo.id && r.users_role_id == owner)
    );
    let ada_roles = client.user_organization_roles(ada.id).await.unwrap();
    assert_eq!(ada_roles.len(), 1);
    assert_eq!(
        ada_roles[0].users_role_id, admin,
        "the previous owner is Admin"
    );

    let teams = client.list_teams(acme.id).await.unwrap();
    assert_eq!(teams.len(), 1);
    let ops = client
        .create_team(&NewTeam {
            name: "Ops".into(),
            organization_id: acme.id,
            user_team_admin: None,
        })
        .await
        .unwrap();
    let joined = client
        .set_team_role(ada.id, ops.id, team_member)
        .await
        .unwrap();
    assert_eq!(
        (joined.team_id, joined.users_role_id),
        (ops.id, team_member)
    );
    assert_eq!(client.list_teams(acme.id).await.unwrap().len(), 2);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compiled_license_is_set_over_the_live_one_keeping_keys_charter_does_not_manage() {
    let policy = charter::policy::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/acme"
    )))
    .ok()
    .unwrap();
    let program = policy.checked.program.unwrap();
    let tier = program.deployable_tiers()[0].name.clone();
    let object = charter::compile::tier_license(&program, &tier).unwrap();
    let running = sandbox::start(config()).await.unwrap();
    let client = client(&running);
    let organization = client
        .create_organization(&NewOrganization {
            name: "Compiled".into(),
            ..NewOrganization::default()
        })
        .await
        .unwrap();
    let before = organization.license.unwrap();
    let outside: Vec<(&String, &Value)> = before
        .0
        .iter()
        .filter(|(key, _)| charter::model::catalog::lookup(key).is_none())
        .collect();
    assert!(
        !outside.is_empty(),
        "the sandbox's default license has keys outside charter's catalog"
    );
    let calls = client.calls();
    let updated = client.set_license(organization.id, &object).await.unwrap();
    assert_eq!(client.calls() - calls, 2, "read, then write");
    let after = updated.license.unwrap();
    for (key, value) in object.to_json().as_object().unwrap() {
        assert_eq!(after.get(key), Some(value), "charter's `{key}`");
    }
    for (key, value) in outside {
        assert_eq!(after.get(key), Some(value), "`{key}` is kept");
    }
    running.shutdown().await.unwrap();
}

// Errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_surfaces_makes_detail_first() {
    let running = sandbox::start(config()).await.unwrap();
    let client = client(&running);
    let mut license = client.default_license().await.unwrap();
    license.0.insert("auditLogsDays".into(), Value::from(400));
    let error = client
        .create_organization(&NewOrganization {
            name: "Bad".into(),
            license: Some(license),
            ..NewOrganization::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::Rejected);
    assert_eq!(error.status, Some(400));
    assert_eq!(error.code(), Some("SC400"));
    let text = error.to_string();
    assert!(
        text.starts_with(
            "`POST /admin/organizations` was refused (400 Bad Request, SC400): license key \
             `auditLogsDays` is `400`"
        ),
        "{text}"
    );
    assert!(text.contains("(Validation failed)"), "{text}");
    assert!(!error.is_retryable() && !error.outcome_unknown());
    assert_secret(&error);

    let duplicate = client
        .create_user(&invitation("Ada", "ada@dup.example"))
        .await
        .and(
            client
                .create_user(&invitation("Ada", "ada@dup.example"))
                .await,
        )
        .unwrap_err();
    assert_eq!(duplicate.status, Some(409));
    assert!(
        duplicate.to_string().contains("already exists"),
        "{duplicate}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_license_is_not_sent() {
    let running = sandbox::start(config()).await.unwrap();
    let client = client(&running);
    let mut license = client.default_license().await.unwrap();
    license.0.remove("operations");
    let before = client.calls();
    let error = client
        .update_organization(
            1,
            &OrganizationChanges {
                license: Some(license),
                ..OrganizationChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(error.kind, ApiErrorKind::NotSent { .. }));
    assert_eq!(client.calls(), before, "no call was made");
    assert!(error.to_string().contains("lacks `operations`"), "{error}");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_gets_401_and_a_member_token_403() {
    let running = sandbox::start(config()).await.unwrap();
    let wrong = client_with(&running, "wrong-secret-token", ClientOptions::default());
    let error = wrong.list_users(&UserFilter::default()).await.unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::Unauthorized);
    assert!(
        error
            .to_string()
            .contains("not accepted (401 Unauthorized, SC401)"),
        "{error}"
    );
    assert!(error.help().unwrap().contains("token_env"));
    assert!(!error.to_string().contains("wrong-secret-token"));
    assert!(!format!("{error:?}").contains("wrong-secret-token"));

    let member = client_with(&running, MEMBER, ClientOptions::default());
    let error = member
        .create_user(&invitation("X", "x@y.example"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::Forbidden);
    assert_eq!(error.status, Some(403));
    assert!(!error.is_retryable() && !error.outcome_unknown());
    assert_secret(&error);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_gets_404() {
    let running = sandbox::start(config()).await.unwrap();
    let client = client(&running);
    let error = client.usage(4242).await.unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::NotFound);
    assert_eq!(
        error.to_string(),
        "`GET /organizations/4242/usage` found nothing (404 Not Found, SC404): organization `4242` \
         does not exist"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_is_a_retryable_429_that_changed_nothing() {
    let running = sandbox::start(Config {
        rate_limit_per_minute: Some(2),
        ..config()
    })
    .await
    .unwrap();
    let client = client(&running);
    client.default_license().await.unwrap();
    client.default_license().await.unwrap();
    let error = client
        .create_user(&invitation("Late", "late@acme.example"))
        .await
        .unwrap_err();
    assert!(matches!(error.kind, ApiErrorKind::RateLimited { .. }));
    assert_eq!(
        error.retry_after(),
        None,
        "the sandbox sends no Retry-After"
    );
    assert!(error.is_retryable());
    assert!(!error.outcome_unknown(), "a 429 applies nothing");
    assert!(
        error
            .to_string()
            .starts_with("`POST /admin/users` was rate limited (429 Too Many Requests, SC429)"),
        "{error}"
    );
    assert_secret(&error);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_a_write_leaves_its_outcome_unknown() {
    let running = sandbox::start(Config {
        faults: "500=1".parse().unwrap(),
        ..config()
    })
    .await
    .unwrap();
    let client = client(&running);
    let write = client
        .create_user(&invitation("Ada", "ada@fault.example"))
        .await
        .unwrap_err();
    assert_eq!(write.kind, ApiErrorKind::Server);
    assert!(write.is_retryable() && write.outcome_unknown());
    assert!(write.help().unwrap().contains("look the object up"));
    let read = client.default_license().await.unwrap_err();
    assert!(
        read.is_retryable() && !read.outcome_unknown(),
        "a read changes nothing"
    );
    assert_secret(&write);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_write_is_applied_but_its_outcome_unknown() {
    let running = sandbox::start(Config {
        faults: "lost=1".parse().unwrap(),
        ..config()
    })
    .await
    .unwrap();
    let client = client(&running);
    let error = client
        .create_user(&invitation("Ghost", "ghost@lost.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind, ApiErrorKind::ConnectionLost { .. }),
        "{error:?}"
    );
    assert!(error.outcome_unknown() && error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("whether it was applied is unknown")
    );
    assert_secret(&error);
    // Looking it up (reads are never lost) shows it was applied.
    let found = client
        .lookup_user_by_email("ghost@lost.example")
        .await
        .unwrap();
    assert_eq!(found.unwrap().name.as_deref(), Some("Ghost"));
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out() {
    let running = sandbox::start(Config {
        faults: "latency=1:2s".parse().unwrap(),
        ..config()
    })
    .await
    .unwrap();
    let client = client_with(
        &running,
        SA,
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        },
    );
    let started = std::time::Instant::now();
    let write = client
        .create_user(&invitation("Slow", "slow@acme.example"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        write.kind,
        ApiErrorKind::Timeout {
            after: Duration::from_millis(300)
        }
    );
    assert!(write.outcome_unknown() && write.is_retryable());
    assert_eq!(
        write.to_string(),
        "`POST /admin/users` got no answer within 300 ms; whether it was applied is unknown"
    );
    let read = client.default_license().await.unwrap_err();
    assert!(!read.outcome_unknown());
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_unreachable_and_nothing_was_sent() {
    let running = sandbox::start(config()).await.unwrap();
    let url = base(&running);
    running.shutdown().await.unwrap();
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client
        .create_user(&invitation("A", "a@b.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind, ApiErrorKind::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable() && !error.outcome_unknown());
    assert_secret(&error);
}

// Pagination.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_every_user_once() {
    let running = sandbox::start(config()).await.unwrap();
    let client = client_with(
        &running,
        SA,
        ClientOptions {
            page_size: 7,
            ..ClientOptions::default()
        },
    );
    let mut created = BTreeSet::new();
    for n in 0..30 {
        let user = client
            .create_user(&invitation(
                &format!("User {n}"),
                &format!("u{n}@page.example"),
            ))
            .await
            .unwrap();
        created.insert(user.id);
    }
    let before = client.calls();
    let users = client.list_users(&UserFilter::default()).await.unwrap();
    // 32 users (with the two tokens' own): pages of 7, 7, 7, 7, 4.
    assert_eq!(client.calls() - before, 5);
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    let listed: BTreeSet<i64> = ids.iter().copied().collect();
    assert!(created.is_subset(&listed), "no gaps");
    assert_eq!(listed.len(), 32);

    // Exactly a multiple of the page size: the last page is empty.
    let before = client.calls();
    let ids = client
        .list_user_ids(&UserFilter {
            email: Some("page.example".into()),
            ..UserFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids.len(), 30);
    assert_eq!(client.calls() - before, 5);

    // Page by page.
    let mut pages = client.pages::<Value>("/admin/users", "users", Vec::new());
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
    }
    assert_eq!(sizes, vec![7, 7, 7, 7, 4]);
    running.shutdown().await.unwrap();
}

// The HTTPS rule and the token.

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let token = || Token::new(SA).unwrap();
    for url in [
        "http://make.example.com",
        "http://10.0.0.5:8080",
        "http://[2001:db8::1]",
    ] {
        let error = Client::new(url, token(), ClientOptions::default()).unwrap_err();
        assert!(
            matches!(error, ClientError::Insecure { .. }),
            "{url}: {error}"
        );
        assert!(error.to_string().contains("loopback"), "{error}");
    }
    for url in [
        "https://make.example.com",
        "https://eu1.make.example.com/api/v2/",
        "http://127.0.0.1:7070",
        "http://127.8.9.10",
        "http://localhost:7070/api/v2",
        "http://[::1]:7070",
    ] {
        Client::new(url, token(), ClientOptions::default()).unwrap();
    }
    let client = Client::new(
        "https://eu1.make.example.com/api/v2/",
        token(),
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        client.url().api_root(),
        "https://eu1.make.example.com/api/v2"
    );
    assert!(matches!(
        Client::new("ftp://make.example.com", token(), ClientOptions::default()),
        Err(ClientError::Scheme { .. })
    ));
    let error = Client::new(
        "https://admin:hunter2@make.example.com",
        token(),
        ClientOptions::default(),
    )
    .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn the_token_is_never_shown() {
    let token = Token::new(format!("  {SA}\n")).unwrap();
    assert_eq!(token.to_string(), "<redacted>");
    assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    let client = Client::new(
        "https://make.example.com",
        token.clone(),
        ClientOptions::default(),
    )
    .unwrap();
    assert!(!format!("{client:?}").contains(SA));
    let choice = InstanceChoice::Remote {
        url: charter::api::InstanceUrl::parse("https://make.example.com").unwrap(),
        token,
    };
    assert!(!format!("{choice:?}").contains(SA));
    assert!(Token::new("  ").is_err());
    assert!(Token::new("two words").is_err());
}

// Observing.

/// Builds an instance where people hold different roles in different places, so every path
/// of `observe` is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reads_exactly_what_is_there_with_the_documented_calls() {
    let running = sandbox::start(config()).await.unwrap();
    let setup = client(&running);
    let roles = setup.roles().await.unwrap();
    let org = |name: &str| roles.organization_role(name).unwrap();
    let team = |name: &str| roles.team_role(name).unwrap();
    let user = |name: &str| invitation(name, &format!("{}@o.example", name.to_lowercase()));
    let alice = setup.create_user(&user("Alice")).await.unwrap().id;
    let bob = setup.create_user(&user("Bob")).await.unwrap().id;
    let carol = setup.create_user(&user("Carol")).await.unwrap().id;
    let dave = setup.create_user(&user("Dave")).await.unwrap().id;
    let erin = setup.create_user(&user("Erin")).await.unwrap().id;
    let create = |name: &str, owner: i64| NewOrganization {
        name: name.to_owned(),
        user_org_admin: Some(owner),
        ..NewOrganization::default()
    };
    let a = setup
        .create_organization(&create("A", alice))
        .await
        .unwrap();
    let b = setup
        .create_organization(&create("B", carol))
        .await
        .unwrap();
    let c = setup
        .create_organization(&create("C", carol))
        .await
        .unwrap();
    setup
        .set_organization_role(alice, b.id, org("Admin"))
        .await
        .unwrap();
    setup
        .set_organization_role(bob, a.id, org("Member"))
        .await
        .unwrap();
    setup
        .set_organization_role(dave, a.id, org("Member"))
        .await
        .unwrap();
    setup
        .set_organization_role(dave, b.id, org("Member"))
        .await
        .unwrap();
    let ops = setup
        .create_team(&NewTeam {
            name: "Ops".into(),
            organization_id: a.id,
            user_team_admin: None,
        })
        .await
        .unwrap();
    setup
        .set_team_role(bob, ops.id, team("Team Member"))
        .await
        .unwrap();
    setup
        .set_team_role(alice, ops.id, team("Team Member"))
        .await
        .unwrap();

    let client = client_with(
        &running,
        SA,
        ClientOptions {
            page_size: 2,
            ..ClientOptions::default()
        },
    );
    let observed = observe(&client).await.unwrap();

    let members = |id: i64| -> Vec<(i64, String)> {
        observed
            .organization(id)
            .unwrap()
            .members
            .iter()
            .map(|m| (m.user_id, m.role.clone().unwrap()))
            .collect()
    };
    let s = |t: &str| t.to_owned();
    assert_eq!(
        members(a.id),
        vec![(alice, s("Owner")), (bob, s("Member")), (dave, s("Member"))]
    );
    assert_eq!(
        members(b.id),
        vec![
            (alice, s("Admin")),
            (carol, s("Owner")),
            (dave, s("Member"))
        ]
    );
    assert_eq!(members(c.id), vec![(carol, s("Owner"))]);
    let teams = |id: i64| -> Vec<(String, Vec<(i64, String)>)> {
        observed
            .organization(id)
            .unwrap()
            .teams
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.members
                        .iter()
                        .map(|m| (m.user_id, m.role.clone().unwrap()))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(
        teams(a.id),
        vec![
            (s("My Team"), vec![(alice, s("Team Admin"))]),
            (
                s("Ops"),
                vec![(alice, s("Team Member")), (bob, s("Team Member"))]
            ),
        ]
    );
    assert_eq!(
        teams(b.id),
        vec![(s("My Team"), vec![(carol, s("Team Admin"))])]
    );
    assert_eq!(
        teams(c.id),
        vec![(s("My Team"), vec![(carol, s("Team Admin"))])]
    );
    let emails: Vec<&str> = observed.users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(
        emails,
        vec![
            "sa@sandbox.invalid",
            "member@sandbox.invalid",
            "alice@o.example",
            "bob@o.example",
            "carol@o.example",
            "dave@o.example",
            "erin@o.example"
        ]
    );
    assert_eq!(observed.user(erin).unwrap().instance_role, None);
    assert_eq!(observed.users[0].instance_role.as_deref(), Some("SA"));
    assert_eq!(
        Some(&observed.organization(a.id).unwrap().license),
        a.license.as_ref()
    );

    // The documented formula, with a page size of 2 (pages(n) = n / 2 + 1):
    // roles 5; organizations pages(3) = 2; users pages(7) = 4;
    // organization role holders: Owner {alice, carol} 2, Admin {alice} 1, Member {bob, dave} 2,
    //   Accountant 1, App developer 1 = 7;
    // memberships: M = 4 users hold a role, A = 1 (alice) holds two, N = 3; M ≤ N + A, so per
    //   user: 4;
    // team role holders: Team Admin {alice, carol} 2, Team Member {alice, bob} 2, three empty
    //   roles 1 each = 7;
    // teams: alice (two roles), bob (two teams in A) and carol (teams of B and C) need their
    //   teams listed: A/My Team 1 + its Team Admin 1; A/Ops pages(2) = 2 + Team Admin 1 + Team
    //   Member 2; B/My Team 1; C/My Team 1 = 9.
    let calls = observed.calls;
    assert!(calls.memberships_per_user);
    assert_eq!(
        (
            calls.roles,
            calls.organizations,
            calls.users,
            calls.organization_role_holders,
            calls.memberships,
            calls.team_role_holders,
            calls.team_members
        ),
        (5, 2, 4, 7, 4, 7, 9)
    );
    assert_eq!(calls.total(), 38);
    assert_eq!(client.calls(), 38);

    // Fingerprints: stable, and moved by a change.
    let again = observe(&client).await.unwrap();
    assert_eq!(again.organizations, observed.organizations);
    let print = observed.organization(a.id).unwrap().fingerprint();
    assert!(print.0.starts_with("sha256:") && print.0.len() == 7 + 64);
    assert_eq!(again.organization(a.id).unwrap().fingerprint(), print);
    setup
        .set_organization_role(erin, a.id, org("Member"))
        .await
        .unwrap();
    let changed = observe(&client).await.unwrap();
    assert_ne!(changed.organization(a.id).unwrap().fingerprint(), print);
    assert_eq!(
        changed.organization(c.id).unwrap().fingerprint(),
        observed.organization(c.id).unwrap().fingerprint()
    );
    assert_eq!(
        changed.user(bob).unwrap().fingerprint(),
        observed.user(bob).unwrap().fingerprint()
    );
    running.shutdown().await.unwrap();
}

fn pages(n: usize, size: usize) -> u64 {
    (n / size + 1) as u64
}

/// A seeded instance, read by `observe` and by brute force (every user's organization roles,
/// every team's holders of every team role): the two agree, and the calls follow the formula.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_agrees_with_brute_force_on_a_seeded_instance() {
    let dir = temp_dir("seeded");
    let db = dir.join("sandbox.db");
    sandbox::seed(
        &Storage::File(db.clone()),
        &SeedOptions {
            organizations: 25,
            seed: 7,
            today: jiff::civil::date(2026, 11, 28),
        },
    )
    .unwrap();
    let running = sandbox::start(Config {
        storage: Storage::File(db),
        ..config()
    })
    .await
    .unwrap();
    let size = 10;
    let client = client_with(
        &running,
        SA,
        ClientOptions {
            page_size: size as u32,
            ..ClientOptions::default()
        },
    );
    let observed = observe(&client).await.unwrap();
    assert_eq!(observed.organizations.len(), 25);

    let truth = client_with(&running, SA, ClientOptions::default());
    let users = truth.list_users(&UserFilter::default()).await.unwrap();
    assert_eq!(users.len(), observed.users.len());
    let mut expected: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    let mut holders: BTreeMap<i64, usize> = BTreeMap::new();
    let mut per_org: BTreeMap<i64, usize> = BTreeMap::new();
    for user in &users {
        for row in truth.user_organization_roles(user.id).await.unwrap() {
            expected
                .entry(row.organization_id)
                .or_default()
                .push((user.id, row.users_role_id));
            *per_org.entry(row.organization_id).or_default() += 1;
        }
    }
    let roles = truth.roles().await.unwrap();
    for role in &roles.organization {
        let ids = truth
            .list_user_ids(&UserFilter {
                organization_role_id: Some(role.id),
                ..UserFilter::default()
            })
            .await
            .unwrap();
        holders.insert(role.id, ids.len());
    }
    for organization in &observed.organizations {
        let got: Vec<(i64, i64)> = organization
            .members
            .iter()
            .map(|m| (m.user_id, m.role_id))
            .collect();
        assert_eq!(got, expected.remove(&organization.id).unwrap_or_default());
        for team in &organization.teams {
            let mut truth_team = Vec::new();
            for role in &roles.team {
                for user in truth
                    .list_user_ids(&UserFilter {
                        team_id: Some(team.id),
                        team_role_id: Some(role.id),
                        ..UserFilter::default()
                    })
                    .await
                    .unwrap()
                {
                    truth_team.push((user, role.id));
                }
            }
            truth_team.sort();
            let got: Vec<(i64, i64)> = team
                .members
                .iter()
                .map(|m| (m.user_id, m.role_id))
                .collect();
            assert_eq!(got, truth_team, "team `{}`", team.id);
        }
    }
    let mut team_holders = Vec::new();
    for role in &roles.team {
        let ids = truth
            .list_user_ids(&UserFilter {
                team_role_id: Some(role.id),
                ..UserFilter::default()
            })
            .await
            .unwrap();
        team_holders.push(ids.len());
    }
    // Seeded people each belong to one organization with one role, and only owners are in a
    // team (their organization's only one): memberships are read per organization, teams need
    // no call.
    let calls = observed.calls;
    assert!(!calls.memberships_per_user);
    let expected_total = 5
        + pages(25, size)
        + pages(users.len(), size)
        + holders.values().map(|&n| pages(n, size)).sum::<u64>()
        + observed
            .organizations
            .iter()
            .map(|o| pages(per_org.get(&o.id).copied().unwrap_or(0), size))
            .sum::<u64>()
        + team_holders.iter().map(|&n| pages(n, size)).sum::<u64>();
    assert_eq!(calls.team_members, 0);
    assert_eq!(calls.total(), expected_total);
    running.shutdown().await.unwrap();
}

// Configuration.

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn policy_dir(name: &str, toml: &str) -> common::Scratch {
    let dir = temp_dir(name);
    std::fs::write(dir.join("charter.toml"), toml).unwrap();
    dir
}

#[test]
fn a_good_file_is_read() {
    let dir = policy_dir(
        "good",
        r#"
[instance]
url = "https://make.example.com"
token_env = "MAKE_TOKEN"
rate_limit = 120
concurrency = 8
timeout = 20

[state]
path = "state/charter.db"
"#,
    );
    let config = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    let (url, origin) = config.url.clone().unwrap();
    assert_eq!(url.to_string(), "https://make.example.com");
    assert!(matches!(origin, Origin::File(ref at) if at.ends_with("charter.toml:3:7")));
    assert_eq!(
        config.token.as_ref().unwrap().0,
        TokenSource::Env("MAKE_TOKEN".into())
    );
    assert_eq!(config.rate_limit, Some(120));
    assert_eq!(config.concurrency, 8);
    assert_eq!(config.timeout, Duration::from_secs(20));
    assert_eq!(
        config.state,
        charter::state::Location::File(dir.join("state/charter.db"))
    );

    let choice = config::resolve_instance(&config, &env_of(&[("MAKE_TOKEN", "tok-123")])).unwrap();
    assert_eq!(
        choice,
        InstanceChoice::Remote {
            url,
            token: Token::new("tok-123").unwrap()
        }
    );
    let missing = config::resolve_instance(&config, &no_env).unwrap_err();
    assert!(
        missing.to_string().contains(
            "the environment variable `MAKE_TOKEN` that should hold the API token is not set"
        ),
        "{missing}"
    );
}

#[test]
fn the_share_of_the_rate_limit_is_a_setting_in_percent() {
    let dir = temp_dir("share-default");
    let config = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    assert_eq!(config.rate_share, 95);
    assert!((config.share() - 0.95).abs() < 1e-9);

    let dir = policy_dir("share", "[instance]\nrate_limit = 60\nrate_share = 80\n");
    let config = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    assert_eq!((config.rate_limit, config.rate_share), (Some(60), 80));
    assert!((config.share() - 0.8).abs() < 1e-9);
    // The command's limiter knows the limit (and goes at the share of it).
    assert_eq!(config.pacing().limiter.limit(), Some(60.0));
    // The environment overrides the file.
    let config = config::load(
        &dir,
        &InstanceArgs::default(),
        &env_of(&[("CHARTER_RATE_SHARE", "50")]),
    )
    .unwrap();
    assert_eq!(config.rate_share, 50);

    let dir = policy_dir("share-wrong", "[instance]\nrate_share = 120\n");
    let error = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("charter.toml:2:14: `rate_share` is 120, not a percentage from 1 to 100"),
        "{text}"
    );
    let error = config::load(
        &temp_dir("share-env"),
        &InstanceArgs::default(),
        &env_of(&[("CHARTER_RATE_SHARE", "0.9")]),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`0.9` is not a percentage from 1 to 100"),
        "{error}"
    );
}

#[test]
fn without_a_url_the_embedded_sandbox_is_used() {
    let dir = temp_dir("embedded");
    let config = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    assert_eq!(config.file, None);
    assert_eq!(
        usize::try_from(config.concurrency).unwrap(),
        charter::apply::DEFAULT_CONCURRENCY
    );
    assert_eq!(
        config.state,
        charter::state::Location::File(dir.join(".charter/state.db"))
    );
    assert_eq!(
        config::resolve_instance(&config, &no_env).unwrap(),
        InstanceChoice::EmbeddedSandbox {
            db_path: dir.join(".charter/sandbox.db")
        }
    );
    // A policy file's folder is the base.
    let file = dir.join("acme.charter");
    std::fs::write(&file, "").unwrap();
    let config = config::load(&file, &InstanceArgs::default(), &no_env).unwrap();
    assert_eq!(config.base, dir.to_path_buf());
}

#[test]
fn an_unknown_key_is_located() {
    let dir = policy_dir(
        "unknown",
        "[instance]\nurl = \"https://m.example\"\ntokn_env = \"X\"\n",
    );
    let error = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("charter.toml:3:1: unknown field `tokn_env`"),
        "{text}"
    );
    assert_eq!(error.help().as_deref(), Some("did you mean `token_env`?"));
    assert!(
        !text.contains("`token`"),
        "the refused key is not offered: {text}"
    );
    let ConfigError::File {
        sources,
        diagnostic,
    } = &error
    else {
        panic!("{error:?}")
    };
    let rendered = charter::diagnostic::render_human(sources, diagnostic, Default::default());
    assert!(rendered.contains("tokn_env"), "{rendered}");

    let dir = policy_dir("type", "[instance]\nconcurrency = \"four\"\n");
    let error = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap_err();
    assert!(error.to_string().contains("charter.toml:2:15"), "{error}");

    let dir = policy_dir(
        "insecure",
        "[instance]\nurl = \"http://make.example.com\"\n",
    );
    let error = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap_err();
    assert!(
        error.to_string().contains("charter.toml:2:7: `url`: "),
        "{error}"
    );
    assert!(error.to_string().contains("is not HTTPS"), "{error}");
}

#[test]
fn a_token_in_the_file_is_refused_and_not_shown() {
    let secret = "7c1e4b2a-90f3-4d51-a8e2-3f6b9c0d1e2f";
    for toml in [
        format!("[instance]\nurl = \"https://m.example\"\ntoken = \"{secret}\"\n"),
        format!("[instance]\ntoken_env = \"{secret}\"\n"),
    ] {
        let dir = policy_dir("token", &toml);
        let error = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap_err();
        let help = error.help().unwrap();
        assert!(help.contains("token_env"), "{help}");
        let ConfigError::File {
            sources,
            diagnostic,
        } = &error
        else {
            panic!("{error:?}")
        };
        let rendered = charter::diagnostic::render_human(sources, diagnostic, Default::default());
        for text in [error.to_string(), format!("{error:?}"), rendered, help] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let dir = policy_dir(
        "precedence",
        "[instance]\nurl = \"https://file.example\"\ntoken_env = \"FILE_TOKEN\"\nconcurrency = 2\n",
    );
    let from_file = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    assert_eq!(from_file.url.unwrap().0.to_string(), "https://file.example");

    let env = env_of(&[
        ("CHARTER_INSTANCE_URL", "https://env.example"),
        ("CHARTER_TOKEN_ENV", "ENV_TOKEN"),
        ("CHARTER_CONCURRENCY", "6"),
        ("ENV_TOKEN", "from-env"),
        ("FLAG_TOKEN", "from-flag"),
    ]);
    let from_env = config::load(&dir, &InstanceArgs::default(), &env).unwrap();
    assert_eq!(
        from_env.url.as_ref().unwrap().0.to_string(),
        "https://env.example"
    );
    assert_eq!(
        from_env.url.as_ref().unwrap().1,
        Origin::Env("CHARTER_INSTANCE_URL")
    );
    assert_eq!(
        from_env.token.as_ref().unwrap().0,
        TokenSource::Env("ENV_TOKEN".into())
    );
    assert_eq!(from_env.concurrency, 6);

    let flags = InstanceArgs {
        url: Some("https://flag.example".into()),
        token_env: Some("FLAG_TOKEN".into()),
        ..InstanceArgs::default()
    };
    let from_flags = config::load(&dir, &flags, &env).unwrap();
    assert_eq!(
        from_flags.url.as_ref().unwrap().0.to_string(),
        "https://flag.example"
    );
    let InstanceChoice::Remote { token, .. } = config::resolve_instance(&from_flags, &env).unwrap()
    else {
        panic!()
    };
    assert_eq!(token, Token::new("from-flag").unwrap());

    // A token file named by the file is relative to the file.
    let dir = policy_dir(
        "token-file",
        "[instance]\nurl = \"https://file.example\"\ntoken_file = \"secret/token\"\n",
    );
    std::fs::create_dir_all(dir.join("secret")).unwrap();
    std::fs::write(dir.join("secret/token"), "file-token\n").unwrap();
    let config = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    let InstanceChoice::Remote { token, .. } = config::resolve_instance(&config, &no_env).unwrap()
    else {
        panic!()
    };
    assert_eq!(token, Token::new("file-token").unwrap());

    // An insecure address from the environment is refused too, naming the variable.
    let env = env_of(&[("CHARTER_INSTANCE_URL", "http://make.example.com")]);
    let error = config::load(&dir, &InstanceArgs::default(), &env).unwrap_err();
    assert!(
        error.to_string().starts_with(
            "environment variable `CHARTER_INSTANCE_URL`: `http://make.example.com` is not HTTPS"
        ),
        "{error}"
    );
    // A token without an address is a mistake, not a reason to use the sandbox.
    let dir = temp_dir("token-only");
    let env = env_of(&[("CHARTER_TOKEN_ENV", "MAKE_TOKEN")]);
    let config = config::load(&dir, &InstanceArgs::default(), &env).unwrap();
    assert!(config::resolve_instance(&config, &env).is_err());
}

// The command.

use crate::common;

use common::charter;

#[test]
fn the_instance_command_reads_the_embedded_sandbox() {
    let dir = temp_dir("command");
    let (code, stdout, stderr) = charter(&dir, &["instance"], &[]);
    assert_eq!(code, 0, "{stderr}");
    // An empty sandbox: the token's own user; 5 role calls, 1 + 1 lists, 5 + 5 holder lists.
    assert!(
        stdout.starts_with("instance http://127.0.0.1:")
            && stdout.ends_with(
                " (embedded sandbox .charter/sandbox.db): 0 organizations, 1 user, 17 calls\n"
            ),
        "{stdout}"
    );
    assert!(dir.join(".charter/sandbox.db").is_file());

    let db = dir.join(".charter/sandbox.db");
    let (code, _, stderr) = charter(
        &dir,
        &[
            "sandbox",
            "seed",
            "--db",
            db.to_str().unwrap(),
            "--orgs",
            "4",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = charter(&dir, &["instance", ".", "--format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let observed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(observed["organizations"].as_array().unwrap().len(), 4);
}

#[test]
fn the_instance_command_reads_a_configured_instance_without_showing_the_token() {
    let running = sandbox::BlockingSandbox::start(config()).unwrap();
    let dir = policy_dir("remote", "[instance]\ntoken_env = \"MY_MAKE_TOKEN\"\n");
    let url = format!("http://{}", running.addr());
    let (code, stdout, stderr) = charter(
        &dir,
        &["instance"],
        &[("CHARTER_INSTANCE_URL", &url), ("MY_MAKE_TOKEN", SA)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!("instance {url}: 0 organizations, 2 users, 17 calls\n")
    );
    // A wrong token: exit 1, the call named, the token nowhere.
    let (code, stdout, stderr) = charter(
        &dir,
        &["instance"],
        &[
            ("CHARTER_INSTANCE_URL", &url),
            ("MY_MAKE_TOKEN", "not-the-secret-token"),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("(401 Unauthorized, SC401)") && stderr.contains("help:"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret-token") && !stdout.contains("not-the-secret-token"));
    // The token's variable unset: exit 2.
    let (code, _, stderr) = charter(&dir, &["instance"], &[("CHARTER_INSTANCE_URL", &url)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`MY_MAKE_TOKEN`"), "{stderr}");
    running.shutdown().unwrap();
}

#[test]
fn the_instance_command_refuses_a_token_in_the_file_and_plain_http() {
    let dir = policy_dir("refuse", "[instance]\ntoken = \"abc-secret-123\"\n");
    let (code, _, stderr) = charter(&dir, &["instance"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot be written in `charter.toml`"),
        "{stderr}"
    );
    assert!(!stderr.contains("abc-secret-123"), "{stderr}");

    let dir = temp_dir("plain");
    let (code, _, stderr) = charter(&dir, &["instance", "--url", "http://make.example.com"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not HTTPS"), "{stderr}");
}

/// A server that answers every request with this status line, these headers and this body.
async fn fake_server(status: &str, headers: &[&str], body: &str) -> String {
    let mut response = format!("HTTP/1.1 {status}\r\n");
    for header in headers {
        response.push_str(header);
        response.push_str("\r\n");
    }
    response.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 8192];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_the_expected_json_is_named() {
    let url = fake_server("200 OK", &["Content-Type: text/html"], "<html>hi</html>").await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client.default_license().await.unwrap_err();
    assert!(matches!(error.kind, ApiErrorKind::BadResponse { .. }));
    assert!(
        error.to_string().starts_with(
            "`GET /admin/system-settings/default-license` answered 200 OK with a body charter \
             cannot read: "
        ),
        "{error}"
    );
    assert!(!error.is_retryable());

    let url = fake_server(
        "200 OK",
        &["Content-Type: application/json"],
        "{\"organizations\":[{\"id\":1,\"name\":2}],\"pg\":{\"limit\":1000}}  ",
    )
    .await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client
        .list_organizations(&OrganizationFilter::default())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("`organizations[0].name`: invalid type: integer `2`"),
        "{text}"
    );
    assert!(
        text.contains("GET /admin/organizations?cols[]=id&cols[]=name"),
        "{text}"
    );
    assert!(text.contains("pg[sortBy]=id"), "{text}");

    let url = fake_server(
        "502 Bad Gateway",
        &["Content-Type: text/html"],
        "<html><body>502 Bad Gateway</body></html",
    )
    .await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client
        .create_user(&invitation("A", "a@b.example"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::Server);
    assert!(error.outcome_unknown());
    assert_eq!(
        error.to_string(),
        "`POST /admin/users` failed on the instance (502 Bad Gateway): the answer is not Make's \
         error body: \
         `<html><body>502 Bad Gateway</body></html`"
    );

    let url = fake_server("429 Too Many Requests", &["Retry-After: 17"], "").await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client.default_license().await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(17)));
    assert!(error.to_string().ends_with("; retry after 17 s"), "{error}");

    let url = fake_server(
        "301 Moved Permanently",
        &["Location: http://elsewhere.example/api/v2/users/roles"],
        "",
    )
    .await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client.users_roles(RoleCategory::Team).await.unwrap_err();
    assert!(
        matches!(error.kind, ApiErrorKind::Redirected { location: Some(ref l) } if l.contains("elsewhere")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_caps_pages_below_the_limit_is_still_read_to_the_end() {
    // The page size asked for is 10,000; this instance serves 2 and echoes `limit: 2`. The answer
    // is the same for every offset, which the client notices instead of looping.
    let url = fake_server(
        "200 OK",
        &["Content-Type: application/json"],
        "{\"users\":[{\"id\":1},{\"id\":2}],\"pg\":{\"sortBy\":\"id\",\"sortDir\":\"asc\",\"limit\":2}}",
    )
    .await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let error = client
        .list_user_ids(&UserFilter::default())
        .await
        .unwrap_err();
    assert_eq!(
        client.calls(),
        2,
        "a full page of the capped size asks for the next"
    );
    assert!(
        error.to_string().contains("ignores `pg[offset]`"),
        "{error}"
    );
}

/// An instance holding users 1 to `count` that serves at most `cap` of them a page whatever
/// `pg[limit]` asks, echoing `echo` as the limit (or no `pg` at all); it counts the pages.
async fn capping_instance(
    count: i64,
    cap: usize,
    echo: Option<u32>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let pages = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pages);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let query: Vec<(String, String)> =
                serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap();
            let offset: i64 = query
                .iter()
                .find(|(k, _)| k == "pg[offset]")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let users: Vec<Value> = (offset + 1..=count)
                .take(cap)
                .map(|id| serde_json::json!({ "id": id }))
                .collect();
            let mut body = serde_json::json!({ "users": users });
            if let Some(limit) = echo {
                body["pg"] = serde_json::json!({ "sortBy": "id", "sortDir": "asc", "limit": limit, "offset": offset });
            }
            axum::Json(body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_read_to_the_end_whatever_limit_the_instance_applies() {
    use std::sync::atomic::Ordering;

    // A cap echoed back: the page shorter than the echoed limit is the last.
    let (url, pages) = capping_instance(5, 2, Some(2)).await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let ids = client.list_user_ids(&UserFilter::default()).await.unwrap();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(pages.load(Ordering::SeqCst), 3);

    // A cap not echoed (no `pg`): read until a page comes back empty, even though the first
    // page is shorter than the 10,000 asked for.
    let (url, pages) = capping_instance(5, 2, None).await;
    let client = Client::new(&url, Token::new(SA).unwrap(), ClientOptions::default()).unwrap();
    let ids = client.list_user_ids(&UserFilter::default()).await.unwrap();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(
        pages.load(Ordering::SeqCst),
        4,
        "three pages and an empty one"
    );
}

#[test]
fn a_file_naming_both_token_sources_is_refused() {
    let dir = policy_dir(
        "both",
        "[instance]\ntoken_env = \"MAKE_TOKEN\"\ntoken_file = \"token.txt\"\n",
    );
    let error = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("charter.toml:3:14: `token_env` and `token_file` are both set"),
        "{error}"
    );
}

#[test]
fn a_config_error_is_a_json_diagnostic_on_request() {
    let dir = policy_dir("json", "[instance]\nconcurency = 4\n");
    let (code, stdout, stderr) = charter(&dir, &["instance", "--error-format", "json"], &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    let diagnostic: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(diagnostic["code"], "charter::config");
    assert_eq!(diagnostic["line"], 2);
    assert_eq!(diagnostic["column"], 1);
    assert_eq!(diagnostic["help"], "did you mean `concurrency`?");
}

/// More members than organizations: memberships are read per organization, and the one person
/// with two different roles is read per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reads_memberships_per_organization_when_that_is_cheaper() {
    let running = sandbox::start(config()).await.unwrap();
    let client = client(&running);
    let roles = client.roles().await.unwrap();
    let role = |name: &str| roles.organization_role(name).unwrap();
    let mut people = Vec::new();
    for n in 1..=8 {
        let person = client
            .create_user(&invitation(
                &format!("P{n}"),
                &format!("p{n}@per-org.example"),
            ))
            .await
            .unwrap();
        people.push(person.id);
    }
    let x = client
        .create_organization(&NewOrganization {
            name: "X".into(),
            user_org_admin: Some(people[0]),
            ..NewOrganization::default()
        })
        .await
        .unwrap();
    let y = client
        .create_organization(&NewOrganization {
            name: "Y".into(),
            user_org_admin: Some(people[7]),
            ..NewOrganization::default()
        })
        .await
        .unwrap();
    for &person in &people[1..6] {
        client
            .set_organization_role(person, x.id, role("Member"))
            .await
            .unwrap();
    }
    client
        .set_organization_role(people[6], x.id, role("Admin"))
        .await
        .unwrap();
    client
        .set_organization_role(people[6], y.id, role("Member"))
        .await
        .unwrap();

    let reader = client_with(&running, SA, ClientOptions::default());
    let observed = observe(&reader).await.unwrap();
    let members = |id: i64| -> Vec<(i64, i64)> {
        observed
            .organization(id)
            .unwrap()
            .members
            .iter()
            .map(|m| (m.user_id, m.role_id))
            .collect()
    };
    let mut expected_x = vec![(people[0], role("Owner")), (people[6], role("Admin"))];
    expected_x.extend(people[1..6].iter().map(|&p| (p, role("Member"))));
    expected_x.sort();
    assert_eq!(members(x.id), expected_x);
    assert_eq!(
        members(y.id),
        vec![(people[6], role("Member")), (people[7], role("Owner"))]
    );
    // M = 8 people hold a role, A = 1 holds two, N = 2: 8 > 2 + 1, so per organization:
    // 2 member lists + 1 per-user read. Owners are their organization's only team's admins:
    // no team call. 5 + 1 + 1 + 5 + 3 + 5 + 0.
    let calls = observed.calls;
    assert!(!calls.memberships_per_user);
    assert_eq!(calls.memberships, 3);
    assert_eq!(calls.team_members, 0);
    assert_eq!(calls.total(), 20);
    assert_eq!(
        observed.organization(x.id).unwrap().teams[0].members[0]
            .role
            .as_deref(),
        Some("Team Admin")
    );
    running.shutdown().await.unwrap();
}

/// An instance whose answers contradict each other (as when it changes while being read): user
/// 6 is listed in team 10 but under none of the team roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_answers_are_an_inconsistent_read() {
    let addr = common::contradicting_instance(std::sync::Arc::new(|| true)).await;
    let client = Client::new(
        &format!("http://{addr}"),
        Token::new(SA).unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    let error = observe(&client).await.unwrap_err();
    assert!(
        matches!(error.kind, ApiErrorKind::Inconsistent { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the instance changed while it was read (at `GET /admin/users?teamId=10`): user `6` is \
         in team `10` but holds none of its roles"
    );
    assert!(error.is_retryable() && !error.outcome_unknown());
}
