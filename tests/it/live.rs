//! `charter plan`, `import`, `apply` and `run` end to end: the built binary against a sandbox
//! over loopback HTTP (in this process, or the embedded one of the binary). What the plans
//! must contain is worked out here independently — from the policy set's customers, staff
//! and lifecycle rules, never from a plan — and compared step by step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use charter::api::wire::{License, NewOrganization};
use charter::api::{Client, ClientOptions, Token, UserInvitation};
use charter::compile::customer::{desired, provenance};
use charter::model::customer::{Attribute, Customer, OrgRole, TeamRole};
use charter::model::program::Program;
use charter::model::time::{format_instant, parse_instant};
use charter::plan::{Action, Plan, Step};
use charter_sandbox::{BlockingSandbox, Config, TokenGrant, TokenRole};

use crate::common;

const SA: &str = "sa-live-secret-token";
const ADMIN: &str = "admin-live-secret-token";
const DAY: i64 = 86_400;

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
fn acme_copy(name: &str) -> common::Scratch {
    common::acme_copy("live", name)
}

fn program_in(dir: &Path) -> Program {
    charter::policy::load(dir)
        .ok()
        .and_then(|set| set.checked.program)
        .unwrap()
}

use common::charter;

/// The environment pointing the binary at `url` with `token`.
fn remote_at(url: &str, token: &str) -> Vec<(String, String)> {
    vec![
        ("CHARTER_INSTANCE_URL".to_owned(), url.to_owned()),
        ("CHARTER_TOKEN_ENV".to_owned(), "LIVE_TOKEN".to_owned()),
        ("LIVE_TOKEN".to_owned(), token.to_owned()),
    ]
}

/// The environment pointing the binary at `running` with `token`.
fn remote(running: &BlockingSandbox, token: &str) -> Vec<(String, String)> {
    remote_at(&running.url(), token)
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

fn at(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

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

/// The plan of `dir` at `at`, as JSON, checked against the plan file's JSON Schema.
fn plan_json(dir: &Path, at: &str, env: &[(String, String)]) -> Plan {
    let (code, stdout, stderr) = run(dir, &["plan", ".", "--at", at, "--format", "json"], env);
    assert!(code == 0 || code == 2, "{stderr}");
    assert_valid_plan_file(&stdout);
    Plan::from_json(&stdout).unwrap()
}

fn kinds_of<'a>(plan: &'a Plan, subject: &str) -> Vec<&'a str> {
    plan.steps
        .iter()
        .filter(|s| s.subject == subject)
        .map(|s| s.action.kind())
        .collect()
}

// --- The plan file's JSON Schema, checked by an independent validator. ---

/// `charter schema plan`, compiled once by the `jsonschema` crate.
fn plan_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let (code, stdout, stderr) = charter(Path::new("."), &["schema", "plan"], &[]);
        assert_eq!(code, 0, "{stderr}");
        let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("not a JSON Schema: {e}"))
    })
}

/// The schema's complaints about a plan file (none when it is valid).
fn schema_errors(value: &serde_json::Value) -> Vec<String> {
    plan_validator()
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn assert_valid_plan_file(text: &str) {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let errors = schema_errors(&value);
    assert!(
        errors.is_empty(),
        "the plan file breaks its schema: {errors:#?}"
    );
}

// --- What plans must contain, worked out from the policy set alone. ---

fn org_role(role: OrgRole) -> &'static str {
    match role {
        OrgRole::Owner => "Owner",
        OrgRole::Admin => "Admin",
        OrgRole::Member => "Member",
    }
}

fn team_role(role: TeamRole) -> &'static str {
    match role {
        TeamRole::Admin => "Team Admin",
        TeamRole::Member => "Team Member",
        TeamRole::Operator => "Team Operator",
        TeamRole::Monitor => "Team Monitoring",
    }
}

/// A step as a line: its kind, its customer or staff member, whom and what it changes.
fn describe(step: &Step) -> String {
    let who = |email: &str| email.to_lowercase();
    match &step.action {
        Action::CreateUser { email, .. } => format!("create_user {}", who(email)),
        Action::CreateOrganization {
            organization,
            owner,
            ..
        } => format!(
            "create_organization {} owner {}",
            organization.customer,
            who(&owner.email)
        ),
        Action::SetLicense { organization, .. } => format!("set_license {}", organization.customer),
        Action::SetOrganizationRole {
            organization,
            user,
            role,
            ..
        } => format!(
            "set_organization_role {} {} {}",
            organization.customer,
            who(&user.email),
            role.name
        ),
        Action::TransferOwnership {
            organization, user, ..
        } => format!(
            "transfer_ownership {} {}",
            organization.customer,
            who(&user.email)
        ),
        Action::RemoveFromOrganization { organization, user } => format!(
            "remove_from_organization {} {}",
            organization.customer,
            who(&user.email)
        ),
        Action::CreateTeam { team, admin, .. } => format!(
            "create_team {} {} admin {}",
            team.organization.customer,
            team.name,
            admin.as_ref().map_or("none".to_owned(), |a| who(&a.email))
        ),
        Action::SetTeamRole {
            team, user, role, ..
        } => format!(
            "set_team_role {} {} {} {}",
            team.organization.customer,
            team.name,
            who(&user.email),
            role.name
        ),
        Action::SetInstanceRole { user, role, .. } => format!(
            "set_instance_role {} {}",
            who(&user.email),
            role.as_ref().map_or("none", |r| r.name.as_str())
        ),
        Action::Manual { .. } => format!("manual {}", step.subject),
    }
}

fn described(plan: &Plan) -> Vec<String> {
    let mut lines: Vec<String> = plan.steps.iter().map(describe).collect();
    lines.sort();
    lines
}

/// The steps that provision the policy set on an empty instance at `when`, from the compiled
/// desired states and the staff blocks: one user per distinct address, one organization per
/// customer (its owner and license in the call), one role call per other person, one team per
/// team (its first admin, in address order, in the call), one team-role call per other team
/// member, one instance-role call per staff member with a role, one manual step per staff
/// member with app options.
fn provisioning(program: &Program, when: i64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut addresses = BTreeSet::new();
    for customer in &program.customers {
        let d = desired(program, customer, &Default::default(), when);
        let key = &customer.key;
        lines.push(format!(
            "create_organization {key} owner {}",
            d.owner.to_lowercase()
        ));
        for (email, role) in &d.roles {
            addresses.insert(email.to_lowercase());
            if !email.eq_ignore_ascii_case(&d.owner) {
                lines.push(format!(
                    "set_organization_role {key} {} {}",
                    email.to_lowercase(),
                    org_role(*role)
                ));
            }
        }
        for (team, people) in &d.teams {
            let first_admin = people
                .iter()
                .find(|(_, r)| **r == TeamRole::Admin)
                .map(|(e, _)| e.to_lowercase());
            lines.push(format!(
                "create_team {key} {team} admin {}",
                first_admin.clone().unwrap_or_else(|| "none".to_owned())
            ));
            for (email, role) in people {
                if Some(email.to_lowercase()) != first_admin {
                    lines.push(format!(
                        "set_team_role {key} {team} {} {}",
                        email.to_lowercase(),
                        team_role(*role)
                    ));
                }
            }
        }
    }
    for staff in &program.staff {
        addresses.insert(staff.email.to_lowercase());
        if let Some(role) = &staff.role {
            lines.push(format!(
                "set_instance_role {} {role}",
                staff.email.to_lowercase()
            ));
        }
        if !staff.options.is_empty() {
            lines.push(format!("manual staff:{}", staff.email));
        }
    }
    lines.extend(addresses.into_iter().map(|a| format!("create_user {a}")));
    lines.sort();
    lines
}

fn date_attribute(customer: &Customer, name: &str) -> i64 {
    match customer.attributes.get(name) {
        Some(Attribute::Date(d)) => *d,
        other => panic!("{}: `{name}` is {other:?}", customer.key),
    }
}

fn text_attribute<'a>(customer: &'a Customer, name: &str) -> &'a str {
    match customer.attributes.get(name) {
        Some(Attribute::Text(t)) => t,
        other => panic!("{}: `{name}` is {other:?}", customer.key),
    }
}

/// The example lifecycle's rules, as its comments state them; the test refuses to run on
/// another lifecycle rather than check it against rules it does not have.
fn assert_the_example_lifecycle(program: &Program) {
    let transitions: Vec<(&str, Vec<&str>, &str)> = program
        .lifecycle
        .transitions
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.from.iter().map(String::as_str).collect(),
                t.to.as_str(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            ("freeze", vec!["active"], "frozen"),
            ("deprovision", vec!["frozen"], "deprovisioned"),
            ("reactivate", vec!["frozen", "deprovisioned"], "active"),
            ("cancel", vec!["active"], "frozen"),
        ]
    );
}

/// Transitions as `(name, from, to)`, per customer.
type Transitions = BTreeMap<String, Vec<(String, String, String)>>;

/// One customer's life worked out by hand from the example lifecycle's rules: frozen a week
/// after `contract_end` (on the day itself when `payment` is overdue: `cancel`), deprovisioned
/// 90 days after entering `frozen`, reactivated when requested; a `when` fires once. Each round
/// — a plan made and applied at an instant — records what came due, at that instant.
#[derive(Clone, Debug)]
struct Life {
    state: &'static str,
    /// When the current state was entered, as recorded.
    since: Option<i64>,
    /// The contract's `when` transition has fired (it never fires twice for one date).
    ended: bool,
    /// A reactivation requested at this instant, not yet carried out.
    request: Option<i64>,
    /// The dummy owner is already a member of the organization (left so after a reactivation).
    dummy_member: bool,
    /// Transitions recorded: (name, when).
    recorded: Vec<(String, i64)>,
}

impl Life {
    fn new() -> Life {
        Life {
            state: "active",
            since: None,
            ended: false,
            request: None,
            dummy_member: false,
            recorded: Vec::new(),
        }
    }

    /// The transitions a round at `round` carries out, as `(name, from, to)`.
    fn round(
        &mut self,
        customer: &Customer,
        round: i64,
    ) -> Vec<(&'static str, &'static str, &'static str)> {
        let end = date_attribute(customer, "contract_end");
        let overdue = text_attribute(customer, "payment") == "overdue";
        let mut entered = self.since.unwrap_or(i64::MIN);
        let mut fired = Vec::new();
        loop {
            let automatic = match self.state {
                "active" if !self.ended && overdue => Some((end, "cancel", "frozen")),
                "active" if !self.ended => Some((end + 7 * DAY, "freeze", "frozen")),
                "frozen" => Some((entered + 90 * DAY, "deprovision", "deprovisioned")),
                _ => None,
            };
            let manual = self
                .request
                .filter(|_| matches!(self.state, "frozen" | "deprovisioned"))
                .map(|q| (q, "reactivate", "active"));
            let next = [automatic, manual]
                .into_iter()
                .flatten()
                .filter(|(due, _, _)| *due <= round)
                .min_by_key(|(due, _, _)| *due);
            let Some((due, name, to)) = next else { break };
            fired.push((name, self.state, to));
            match name {
                "freeze" | "cancel" => self.ended = true,
                "reactivate" => self.request = None,
                _ => {}
            }
            self.recorded.push((name.to_owned(), round.max(due)));
            self.since = Some(round.max(due));
            self.state = to;
            entered = due;
        }
        fired
    }
}

/// The steps that take a provisioned customer from lifecycle state `from` to `to` in the
/// example lifecycle: one license call if the two states' licenses differ; entering the
/// dummy owner's hands, the dummy made a member (unless it is one), the transfer, the owner
/// and each admin demoted to Member and the manual silencing; leaving them, the transfer back,
/// the dummy left a Member, each admin made Admin again and the manual restoring.
fn lifecycle_steps(
    program: &Program,
    customer: &Customer,
    from: &str,
    to: &str,
    dummy_member: bool,
) -> Vec<String> {
    let key = &customer.key;
    let dummy = program.instance.dummy_owner.clone().unwrap().to_lowercase();
    let owner = customer.owner.to_lowercase();
    let license = |state: &str| provenance(program, customer, state).to_object();
    let to_dummy = |state: &str| program.lifecycle.state(state).unwrap().owner_to_dummy;
    let mut lines = Vec::new();
    if license(from) != license(to) {
        lines.push(format!("set_license {key}"));
    }
    if !to_dummy(from) && to_dummy(to) {
        if !dummy_member {
            lines.push(format!("set_organization_role {key} {dummy} Member"));
        }
        lines.push(format!("transfer_ownership {key} {dummy}"));
        lines.push(format!("set_organization_role {key} {owner} Member"));
        for admin in &customer.admins {
            lines.push(format!(
                "set_organization_role {key} {} Member",
                admin.to_lowercase()
            ));
        }
        lines.push(format!("manual {key}"));
    }
    if to_dummy(from) && !to_dummy(to) {
        lines.push(format!("transfer_ownership {key} {owner}"));
        lines.push(format!("set_organization_role {key} {dummy} Member"));
        for admin in &customer.admins {
            lines.push(format!(
                "set_organization_role {key} {} Admin",
                admin.to_lowercase()
            ));
        }
        lines.push(format!("manual {key}"));
    }
    lines
}

/// `charter compile --customers --at T` (with the state beside the policy set): customer →
/// lifecycle state.
fn compiled_states(dir: &Path, when: &str) -> BTreeMap<String, String> {
    let (code, stdout, stderr) = charter(dir, &["compile", ".", "--customers", "--at", when], &[]);
    assert_eq!(code, 0, "{stderr}");
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["customer"].as_str().unwrap().to_owned(),
                v["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A round of the walk for every customer: the expected steps of its plan and the
/// transitions it records, per customer. The first round provisions.
fn expected_round(
    program: &Program,
    lives: &mut BTreeMap<String, Life>,
    round: i64,
    first: bool,
) -> (Vec<String>, Transitions) {
    let mut steps = if first {
        provisioning(program, round)
    } else {
        Vec::new()
    };
    let mut transitions = BTreeMap::new();
    for customer in &program.customers {
        let life = lives.entry(customer.key.clone()).or_insert_with(Life::new);
        let before = life.state;
        let dummy_member = life.dummy_member;
        let fired = life.round(customer, round);
        if !first {
            steps.extend(lifecycle_steps(
                program,
                customer,
                before,
                life.state,
                dummy_member,
            ));
        }
        // Once the dummy owner has held the organization, it stays a member (left a Member
        // when the customer's owner gets it back).
        let to_dummy = |state: &str| program.lifecycle.state(state).unwrap().owner_to_dummy;
        if to_dummy(before) || to_dummy(life.state) {
            life.dummy_member = true;
        }
        if !fired.is_empty() {
            let fired = fired
                .into_iter()
                .map(|(name, from, to)| (name.to_owned(), from.to_owned(), to.to_owned()))
                .collect();
            transitions.insert(customer.key.clone(), fired);
        }
    }
    steps.sort();
    (steps, transitions)
}

fn planned_transitions(plan: &Plan) -> Transitions {
    plan.customers
        .iter()
        .filter(|c| !c.transitions.is_empty())
        .map(|c| {
            (
                c.key.clone(),
                c.transitions
                    .iter()
                    .map(|t| (t.name.clone(), t.from.clone(), t.to.clone()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn an_empty_embedded_sandbox_plans_exactly_the_provisioning_counted_from_the_policy() {
    let dir = acme_copy("empty");
    let program = program_in(&dir);
    let when = at("2027-01-15");
    let (code, stdout, stderr) = charter(&dir, &["plan", ".", "--at", "2027-01-15"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.starts_with("Plan for the embedded sandbox at 2027-01-15\n"),
        "{stdout}"
    );
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
    assert_valid_plan_file(&saved);
    let plan = Plan::from_json(&saved).unwrap();
    assert_eq!(plan.version, charter::plan::PLAN_VERSION);
    assert!(plan.id.starts_with("plan-"));

    // Step for step what the policy set needs, no more and no fewer.
    let expected = provisioning(&program, when);
    assert_eq!(described(&plan), expected);
    let by_kind = |lines: &[String]| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for line in lines {
            *counts
                .entry(line.split(' ').next().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        counts
    };
    let counts = by_kind(&expected);
    for kind in [
        "create_user",
        "create_organization",
        "set_organization_role",
        "create_team",
        "set_team_role",
        "set_instance_role",
        "manual",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {counts:?}"
        );
    }
    assert_eq!(counts["create_organization"], program.customers.len());
    // One call per step, plus the read before each organization create (has one of its name
    // appeared since the plan?) and the read before each license write (read, merge, write).
    let minimal = expected
        .iter()
        .filter(|l| !l.starts_with("manual "))
        .count()
        + expected
            .iter()
            .filter(|l| l.starts_with("create_organization ") || l.starts_with("set_license "))
            .count();
    let ratio = plan.calls() as f64 / minimal as f64;
    assert!(
        (ratio - 1.0).abs() < f64::EPSILON,
        "calls / minimal = {ratio}"
    );
    // The summary says so, and every organization and staff role shows as a line.
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("Plan: ") && summary.contains(&format!("({minimal} API calls)")),
        "{summary}"
    );
    for customer in &program.customers {
        let d = desired(&program, customer, &Default::default(), when);
        let line = format!(
            "  + organization \"{}\" owned by {}, with its license\n",
            customer.name, d.owner
        );
        assert_eq!(stdout.matches(&line).count(), 1, "{line}");
    }
    for staff in &program.staff {
        let line = format!(
            "  ~ instance role of {}: none → {}\n",
            staff.email,
            staff.role.as_deref().unwrap()
        );
        assert_eq!(stdout.matches(&line).count(), 1, "{line}");
    }
    // An edited plan file is refused.
    let edited = saved.replacen("jane@acme.example", "mallory@evil.example", 1);
    assert!(matches!(
        Plan::from_json(&edited),
        Err(charter::plan::PlanFileError::Tampered)
    ));
}

#[test]
fn the_plan_schema_accepts_the_plans_charter_writes_and_refuses_broken_ones() {
    let dir = acme_copy("schema");
    let (code, stdout, _) = charter(&dir, &["schema", "plan"], &[]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["title"], "charter plan file");
    // A provisioning plan, and (in the other tests) every plan made through `plan_json`.
    let (code, json, stderr) = charter(
        &dir,
        &["plan", ".", "--at", "2027-05-09", "--format", "json"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(schema_errors(&plan), Vec::<String>::new());
    // The validator is not a yes-man: each break is caught, at its place.
    type Break = fn(&mut serde_json::Value);
    let breaks: [(&str, Break, &str); 7] = [
        (
            "an unknown top-level field",
            |p| p["extra"] = true.into(),
            "",
        ),
        (
            "no version",
            |p| drop(p.as_object_mut().unwrap().remove("version")),
            "",
        ),
        ("an older version", |p| p["version"] = 1.into(), "/version"),
        (
            "an unknown step kind",
            |p| p["steps"][0]["action"]["kind"] = "delete_user".into(),
            "/steps/0/action",
        ),
        (
            "a step without its subject",
            |p| drop(p["steps"][0].as_object_mut().unwrap().remove("subject")),
            "/steps/0",
        ),
        (
            "a license key missing",
            |p| {
                drop(
                    p["steps"]
                        .as_array_mut()
                        .unwrap()
                        .iter_mut()
                        .find(|s| s["action"]["kind"] == "create_organization")
                        .unwrap()["action"]["license"]
                        .as_object_mut()
                        .unwrap()
                        .remove("operations"),
                )
            },
            "/steps/",
        ),
        (
            "a fingerprint that is not one",
            |p| {
                let users = p["reads"]["users"].as_object_mut().unwrap();
                users.insert("1".to_owned(), "md5:nope".into());
            },
            "/reads/users/1",
        ),
    ];
    for (what, break_it, path) in breaks {
        let mut broken = plan.clone();
        break_it(&mut broken);
        let errors = schema_errors(&broken);
        assert!(!errors.is_empty(), "{what}: accepted");
        assert!(
            errors.iter().any(|e| e.contains(&format!(" at {path}"))),
            "{what}: {errors:?}"
        );
    }
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
    let state = charter::state::Store::open_file(&dir.join(".charter/state.db")).unwrap();
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
        stdout.contains("  = acme: already linked to organization 1 \"Acme Corp\"\n"),
        "{stdout}"
    );
    running.shutdown().unwrap();
}

// --- Apply and run through the binary. ---

/// Each round's plan (made and applied at its instant) against what the lifecycle's rules
/// say is due then, customer by customer: the provisioning, then one license call per
/// customer that freezes and nothing else, then for every customer deprovisioned at the
/// instant the license, the dummy owner's membership, the transfer, the demotions and the
/// manual silencing — with the transitions each records, and `compile --customers` agreeing.
#[test]
fn apply_provisions_then_plans_exactly_the_freezes_and_deprovisionings_that_are_due() {
    let running = sandbox();
    let dir = acme_copy("apply");
    let env = remote(&running, SA);
    let program = program_in(&dir);
    assert_the_example_lifecycle(&program);
    // Without a terminal and without --auto-approve, nothing happens.
    let (code, _, stderr) = run(&dir, &["apply", ".", "--at", "2027-01-15"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refusing to apply without confirmation"),
        "{stderr}"
    );
    assert_eq!(observe_sandbox(&running.url()).organizations.len(), 0);

    let mut lives = BTreeMap::new();
    let mut seen_kinds = BTreeSet::new();
    let mut deprovisioned = BTreeSet::new();
    for (i, day) in ["2027-01-15", "2027-02-08", "2027-05-09"]
        .into_iter()
        .enumerate()
    {
        let plan = plan_json(&dir, day, &env);
        let (steps, transitions) = expected_round(&program, &mut lives, at(day), i == 0);
        assert_eq!(
            described(&plan),
            steps,
            "{day}:\n{}",
            charter::plan::render_text(&plan)
        );
        assert_eq!(planned_transitions(&plan), transitions, "{day}");
        seen_kinds.extend(plan.steps.iter().map(|s| s.action.kind()));
        if i == 1 {
            // The freeze: one license call per customer that freezes, and nothing else; it
            // zeroes exactly the consumables.
            assert!(transitions.contains_key("acme"), "{transitions:?}");
            assert_eq!(plan.steps.len(), transitions.len());
            for step in &plan.steps {
                let Action::SetLicense { changes, .. } = &step.action else {
                    panic!("{step:?}");
                };
                let keys: Vec<(&str, &serde_json::Value)> =
                    changes.iter().map(|c| (c.key.name(), &c.to)).collect();
                assert_eq!(
                    keys,
                    [
                        ("operations", &serde_json::json!(0)),
                        ("transfer", &serde_json::json!(0))
                    ],
                    "{}",
                    step.subject
                );
            }
        }
        if i == 2 {
            deprovisioned = transitions
                .iter()
                .filter(|(_, t)| t.iter().any(|(name, _, _)| name == "deprovision"))
                .map(|(key, _)| key.clone())
                .collect();
            assert!(deprovisioned.len() >= 2, "{deprovisioned:?}");
            // The order Make needs: the dummy a member before the transfer, the demotion of
            // the owner and the silencing after it.
            for key in &deprovisioned {
                let transfer = format!("transfer:{key}");
                let t = plan.step(&transfer).unwrap();
                assert!(
                    t.depends_on
                        .iter()
                        .any(|d| d.starts_with(&format!("role:{key}:")))
                );
                let owner = program.customer(key).unwrap().owner.to_lowercase();
                let demote = plan.step(&format!("role:{key}:{owner}")).unwrap();
                assert!(demote.depends_on.contains(&transfer));
                let manual = plan.step(&format!("manual:{key}:notifications")).unwrap();
                assert!(manual.depends_on.contains(&transfer));
            }
        }
        let (code, stdout, stderr) =
            run(&dir, &["apply", ".", "--at", day, "--auto-approve"], &env);
        assert_eq!(code, 0, "{day}: {stderr}");
        assert!(stdout.contains(" 0 failed, 0 skipped"), "{stdout}");
        // Converged, and the walk agrees with the compiler reading the state.
        let again = plan_json(&dir, day, &env);
        assert!(
            !again.has_changes(),
            "{day}: {}",
            charter::plan::render_text(&again)
        );
        let states: BTreeMap<String, String> = lives
            .iter()
            .map(|(k, l)| (k.clone(), l.state.to_owned()))
            .collect();
        assert_eq!(compiled_states(&dir, day), states, "{day}");
        let observed = observe_sandbox(&running.url());
        assert_no_duplicates(&observed);
        assert_eq!(observed.organizations.len(), program.customers.len());
    }
    assert!(seen_kinds.contains("set_license") && seen_kinds.contains("transfer_ownership"));
    // On the instance: each deprovisioned organization is the dummy owner's, the customer's
    // people are members, and nothing of theirs was removed.
    let state = charter::state::Store::open_file(&dir.join(".charter/state.db")).unwrap();
    let observed = observe_sandbox(&running.url());
    let dummy = program.instance.dummy_owner.clone().unwrap();
    for key in &deprovisioned {
        let customer = program.customer(key).unwrap();
        let id = state
            .customer(key)
            .unwrap()
            .unwrap()
            .organization_id
            .unwrap();
        let o = observed.organization(id).unwrap();
        let roles: BTreeMap<String, String> = o
            .members
            .iter()
            .map(|m| {
                (
                    observed.user(m.user_id).unwrap().email.clone(),
                    m.role.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            roles.get(&dummy).map(String::as_str),
            Some("Owner"),
            "{key}"
        );
        for person in std::iter::once(&customer.owner)
            .chain(&customer.admins)
            .chain(&customer.members)
        {
            assert_eq!(
                roles.get(person).map(String::as_str),
                Some("Member"),
                "{key}"
            );
        }
        assert_eq!(
            o.license.get("apiLimit"),
            Some(&serde_json::json!(0)),
            "{key}"
        );
    }
    running.shutdown().unwrap();
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
    let state = charter::state::Store::open_file(&dir.join(".charter/state.db")).unwrap();
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
        plan.steps.len(),
        affected.len(),
        "{}",
        charter::plan::render_text(&plan)
    );
    assert_eq!(plan.calls(), 2 * affected.len(), "each reads, then writes");
    for step in &plan.steps {
        assert_eq!(step.action.kind(), "set_license");
        assert!(affected.contains(&step.subject.as_str()));
    }
    running.shutdown().unwrap();
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
    let state = charter::state::Store::open_file(&dir.join(".charter/state.db")).unwrap();
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
        stdout.contains(&format!("  ~ license of \"Acme Corp\" (organization {id})   # drift: changed by hand on the instance\n      operations: 7 → 55,000   # drift: changed by hand\n")),
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
}

/// Sets a user's instance role by hand on the sandbox (`None`: back to a normal user), as the
/// Administration UI would.
fn set_instance_role_by_hand(running: &BlockingSandbox, email: &str, role: Option<&str>) {
    block_on(async {
        let client = Client::new(
            &running.url(),
            Token::new(SA).unwrap(),
            ClientOptions::default(),
        )
        .unwrap();
        let roles = client.roles().await.unwrap();
        let id = role.map(|name| roles.id(charter::api::RoleKind::Instance, name).unwrap());
        let user = client.lookup_user_by_email(email).await.unwrap().unwrap();
        let response = reqwest::Client::new()
            .patch(format!("{}/admin/users/{}", running.url(), user.id))
            .header("Authorization", format!("Token {SA}"))
            .json(&serde_json::json!({ "usersAdminsRoleId": id }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    });
}

/// A hand edit of a staff member's instance role, planned back to the policy's role.
fn instance_role_drift_is_planned_back(name: &str, by_hand: Option<&str>) {
    let running = sandbox();
    let dir = acme_copy(name);
    let env = remote(&running, SA);
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let email = "dana@acme-automation.example";
    set_instance_role_by_hand(&running, email, by_hand);
    let plan = plan_json(&dir, "2027-01-15", &env);
    assert_eq!(described(&plan), [format!("set_instance_role {email} D1")]);
    let step = &plan.steps[0];
    assert!(
        step.drift,
        "a role changed by hand is drift:\n{}",
        charter::plan::render_text(&plan)
    );
    let (code, stdout, _) = run(&dir, &["plan", ".", "--at", "2027-01-15"], &env);
    assert_eq!(code, 2);
    let line = format!(
        "  ~ instance role of {email}: {} → D1   # drift: changed by hand on the instance\n",
        by_hand.unwrap_or("none")
    );
    assert!(stdout.contains(&line), "{stdout}");
    assert!(stdout.contains("1 step correcting drift"), "{stdout}");
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let observed = observe_sandbox(&running.url());
    let dana = observed.users.iter().find(|u| u.email == email).unwrap();
    assert_eq!(dana.instance_role.as_deref(), Some("D1"));
    assert!(!plan_json(&dir, "2027-01-15", &env).has_changes());
    running.shutdown().unwrap();
}

#[test]
fn an_instance_role_changed_by_hand_is_planned_back_and_labelled_drift() {
    instance_role_drift_is_planned_back("role-drift", Some("S1"));
}

#[test]
fn an_instance_role_taken_away_by_hand_is_planned_back_and_labelled_drift() {
    instance_role_drift_is_planned_back("role-removed", None);
}

/// Transitive dependents of a step in a plan, from its `depends_on` edges.
fn dependents_of(plan: &Plan, id: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![id.to_owned()];
    while let Some(current) = stack.pop() {
        for step in &plan.steps {
            if step.depends_on.contains(&current) && found.insert(step.id.clone()) {
                stack.push(step.id.clone());
            }
        }
    }
    found
}

/// A plan reviewed and saved with an SA token is applied by a job holding an Admin token:
/// Make refuses the one step granting SA (403), the apply goes on with every step that does
/// not depend on it, reports it, and exits 1; the next apply finishes the job.
#[test]
fn apply_exits_1_when_a_step_is_refused_and_still_runs_the_steps_independent_of_it() {
    let running = sandbox();
    let dir = acme_copy("refused");
    let staff = std::fs::read_to_string(dir.join("staff.charter")).unwrap();
    std::fs::write(
        dir.join("staff.charter"),
        staff.replace("role = \"D1\"", "role = \"SA\""),
    )
    .unwrap();
    let program = program_in(&dir);
    let (code, _, stderr) = run(
        &dir,
        &["plan", ".", "--at", "2027-01-15", "-o", "reviewed.json"],
        &remote(&running, SA),
    );
    assert_eq!(code, 2, "{stderr}");
    let plan =
        Plan::from_json(&std::fs::read_to_string(dir.join("reviewed.json")).unwrap()).unwrap();
    let refused = "instance-role:dana@acme-automation.example";
    assert!(plan.step(refused).is_some());
    let skipped = dependents_of(&plan, refused);
    let calls = plan.steps.iter().filter(|s| s.action.is_call()).count();
    let manual = plan.steps.len() - calls;

    let admin = remote(&running, ADMIN);
    let (code, stdout, stderr) = run(&dir, &["apply", "reviewed.json"], &admin);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("error: step `{refused}` failed: ")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "Apply: {} done, 1 failed, {} skipped, {manual} manual;",
            calls - 1 - skipped.len(),
            skipped.len()
        )),
        "{stdout}"
    );
    for id in &skipped {
        assert!(
            stderr.contains(&format!("skipped: step `{id}`")),
            "{stderr}"
        );
    }
    // Everything else happened.
    let observed = observe_sandbox(&running.url());
    assert_eq!(observed.organizations.len(), program.customers.len());
    for s in &program.staff {
        let user = observed.users.iter().find(|u| u.email == s.email).unwrap();
        let want = if s.email == "dana@acme-automation.example" {
            None
        } else {
            s.role.as_deref()
        };
        assert_eq!(user.instance_role.as_deref(), want, "{}", s.email);
    }
    // The next apply (with the right token) plans exactly what is left: the refused role,
    // and the staff member's app options again, since a staff member is recorded only once
    // all of its steps succeeded.
    let env = remote(&running, SA);
    let left = plan_json(&dir, "2027-01-15", &env);
    assert_eq!(
        described(&left),
        [
            "manual staff:dana@acme-automation.example",
            "set_instance_role dana@acme-automation.example SA"
        ]
    );
    let (code, _, stderr) = run(
        &dir,
        &["apply", ".", "--at", "2027-01-15", "--auto-approve"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!plan_json(&dir, "2027-01-15", &env).has_changes());
    running.shutdown().unwrap();
}

/// A pass-through proxy in front of the sandbox that holds every write for a while and counts
/// how many writes the client has in flight at once: what `--concurrency` bounds, observed
/// from outside the binary.
struct WriteCounter {
    url: String,
    max: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
    runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Counting {
    upstream: String,
    client: reqwest::Client,
    hold: Duration,
    in_flight: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

async fn count_and_forward(
    axum::extract::State(c): axum::extract::State<Counting>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let write = parts.method != axum::http::Method::GET;
    if write {
        let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        c.max.fetch_max(now, Ordering::SeqCst);
        c.writes.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(c.hold).await;
    }
    let response = common::forward(&c.client, &c.upstream, &parts, body).await;
    if write {
        c.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    response
}

fn write_counter(running: &BlockingSandbox, hold: Duration) -> WriteCounter {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let counting = Counting {
        upstream: format!("http://{}", running.addr()),
        client: reqwest::Client::new(),
        hold,
        in_flight: Arc::new(AtomicUsize::new(0)),
        max: Arc::new(AtomicUsize::new(0)),
        writes: Arc::new(AtomicUsize::new(0)),
    };
    let (max, writes) = (counting.max.clone(), counting.writes.clone());
    let app = axum::Router::new()
        .fallback(count_and_forward)
        .with_state(counting);
    runtime.spawn(async move { axum::serve(listener, app).await });
    WriteCounter {
        url: format!("http://{addr}/api/v2"),
        max,
        writes,
        runtime,
    }
}

/// `--concurrency N` (and the default) is the most writes charter has in flight at once,
/// and it is reached: counted by a proxy that holds each write 40 ms, with dozens of
/// independent steps ready from the start.
#[test]
fn apply_keeps_exactly_concurrency_writes_in_flight() {
    for (name, flag, want) in [
        ("one", Some("1"), 1),
        ("three", Some("3"), 3),
        ("default", None, charter::apply::DEFAULT_CONCURRENCY),
    ] {
        let running = sandbox();
        let counter = write_counter(&running, Duration::from_millis(40));
        let dir = acme_copy(&format!("concurrency-{name}"));
        let mut args = vec!["apply", ".", "--at", "2027-01-15", "--auto-approve"];
        if let Some(n) = flag {
            args.extend(["--concurrency", n]);
        }
        let (code, stdout, stderr) = run(&dir, &args, &remote_at(&counter.url, SA));
        assert_eq!(code, 0, "{stdout}{stderr}");
        // One write per call of the provisioning, no more.
        let calls = provisioning(&program_in(&dir), at("2027-01-15"))
            .iter()
            .filter(|s| !s.starts_with("manual "))
            .count();
        assert_eq!(counter.writes.load(Ordering::SeqCst), calls, "{name}");
        assert_eq!(counter.max.load(Ordering::SeqCst), want, "{name}");
        // Through the same address: the state belongs to the instance as it was reached.
        assert!(!plan_json(&dir, "2027-01-15", &remote_at(&counter.url, SA)).has_changes());
        counter.runtime.shutdown_background();
        running.shutdown().unwrap();
    }
}

/// `charter import` infers each adopted customer's state from its organization: the state
/// whose license it holds exactly; the dummy owner's; a license holding every value a state's
/// overlay sets (`frozen`: consumables 0); otherwise the initial state. Data: what is on the
/// instance, and what import must say.
#[test]
fn import_infers_each_state_from_the_owner_and_the_values_each_state_sets() {
    let running = sandbox();
    let dir = acme_copy("import-states");
    let program = program_in(&dir);
    let dummy = program.instance.dummy_owner.clone().unwrap();
    let license = |key: &str, state: &str, edits: &[(&str, serde_json::Value)]| {
        let customer = program.customer(key).unwrap();
        let serde_json::Value::Object(mut map) = provenance(&program, customer, state)
            .to_object()
            .unwrap()
            .to_json()
        else {
            unreachable!()
        };
        for (k, v) in edits {
            assert!(map.contains_key(*k));
            map.insert((*k).to_owned(), v.clone());
        }
        License(map)
    };
    let zero = || serde_json::json!(0);
    let flip = |key: &str, state: &str, parameter: &str| {
        let customer = program.customer(key).unwrap();
        let value = provenance(&program, customer, state)
            .to_object()
            .unwrap()
            .to_json();
        serde_json::Value::Bool(!value[parameter].as_bool().unwrap())
    };
    // (customer, owner, license, state, because)
    let cases: Vec<(&str, String, License, &str, String)> = vec![
        (
            "umbrella",
            "alice@umbrella.example".to_owned(),
            license("umbrella", "active", &[]),
            "active",
            "its license is exactly this state's".to_owned(),
        ),
        (
            "acme",
            "jane@acme.example".to_owned(),
            // Frozen, with a feature someone switched on by hand since.
            license(
                "acme",
                "frozen",
                &[("analyticsAccess", flip("acme", "frozen", "analyticsAccess"))],
            ),
            "frozen",
            "its license has the values this state sets: operations = 0, transfer = 0".to_owned(),
        ),
        (
            "globex",
            "hank@globex.example".to_owned(),
            // Every value deprovisioning sets, but the customer's owner still holds it: of the
            // states the owner allows, frozen's values are all there.
            license(
                "globex",
                "active",
                &[
                    ("operations", zero()),
                    ("transfer", zero()),
                    ("apiLimit", zero()),
                ],
            ),
            "frozen",
            "its license has the values this state sets: operations = 0, transfer = 0".to_owned(),
        ),
        (
            "initech",
            "bill@initech.example".to_owned(),
            // Operations zeroed by hand, transfer left: not what any state sets.
            license("initech", "active", &[("operations", zero())]),
            "active",
            "nothing says otherwise (the initial state)".to_owned(),
        ),
        (
            "hooli",
            dummy.clone(),
            license("hooli", "active", &[]),
            "deprovisioned",
            "the dummy owner holds it".to_owned(),
        ),
    ];
    block_on(async {
        let client = Client::new(
            &running.url(),
            Token::new(SA).unwrap(),
            ClientOptions::default(),
        )
        .unwrap();
        let mut users: BTreeMap<String, i64> = BTreeMap::new();
        for (key, owner, license, _, _) in &cases {
            if !users.contains_key(owner) {
                let user = client
                    .create_user(&UserInvitation {
                        name: owner.clone(),
                        email: owner.clone(),
                        ..UserInvitation::default()
                    })
                    .await
                    .unwrap();
                users.insert(owner.clone(), user.id);
            }
            client
                .create_organization(&NewOrganization {
                    name: program.customer(key).unwrap().name.clone(),
                    user_org_admin: Some(users[owner]),
                    license: Some(license.clone()),
                    ..NewOrganization::default()
                })
                .await
                .unwrap();
        }
    });
    let env = remote(&running, SA);
    let (code, stdout, stderr) = run(&dir, &["import", ".", "--at", "2027-02-10"], &env);
    assert_eq!(code, 0, "{stderr}");
    let state = charter::state::Store::open_file(&dir.join(".charter/state.db")).unwrap();
    for (i, (key, owner, _, want, because)) in cases.iter().enumerate() {
        let line = format!(
            "  + {key}: organization {} (owner {owner}), state {want} ({because})\n",
            i + 1
        );
        assert!(stdout.contains(&line), "{line}in\n{stdout}");
        let record = state.customer(key).unwrap().unwrap();
        assert_eq!(record.state.as_deref().unwrap_or("active"), *want, "{key}");
    }
    assert!(
        stdout.contains(&format!("Import: adopted {} of", cases.len())),
        "{stdout}"
    );
    running.shutdown().unwrap();
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
    let removal = plan_json(&dir, "2027-01-15", &env);
    assert_eq!(
        described(&removal),
        ["set_instance_role sid@acme-automation.example none"]
    );
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
}

/// `charter run --at` over a sequence of instants: every customer's transitions are recorded
/// once each, on the day the lifecycle's rules give (worked out here from `contract_end`,
/// `payment` and the requests), and each round makes exactly the calls those transitions need.
#[test]
fn run_at_successive_instants_walks_every_customer_through_its_life_once() {
    let running = sandbox();
    let dir = acme_copy("run");
    let env = remote(&running, SA);
    let program = program_in(&dir);
    assert_the_example_lifecycle(&program);
    let rounds: [(&str, &[&str]); 9] = [
        ("2027-01-15", &[]),
        ("2027-02-06", &[]),
        ("2027-02-07", &[]),
        ("2027-02-07T12:00:00Z", &[]),
        ("2027-05-07", &[]),
        ("2027-05-08", &[]),
        ("2027-05-09", &[]),
        ("2027-05-20", &["acme", "hooli"]),
        ("2027-05-21", &[]),
    ];
    let mut lives: BTreeMap<String, Life> = BTreeMap::new();
    let mut kinds_of_transitions = BTreeSet::new();
    for (i, (day, reactivations)) in rounds.into_iter().enumerate() {
        for key in reactivations {
            let (code, _, stderr) = run(
                &dir,
                &["transition", ".", key, "reactivate", "--at", day],
                &env,
            );
            assert_eq!(code, 0, "{stderr}");
            lives.get_mut(*key).unwrap().request = Some(at(day));
        }
        let (steps, transitions) = expected_round(&program, &mut lives, at(day), i == 0);
        kinds_of_transitions.extend(
            transitions
                .values()
                .flatten()
                .map(|(name, _, _)| name.clone()),
        );
        let done = steps.iter().filter(|s| !s.starts_with("manual ")).count();
        let manual = steps.len() - done;
        // A license change reads the live license, then writes it; an organization create is
        // preceded by a read: has one of its name appeared since the plan?
        let calls = done
            + steps
                .iter()
                .filter(|s| s.starts_with("set_license ") || s.starts_with("create_organization "))
                .count();
        let (code, stdout, stderr) = run(&dir, &["run", ".", "--at", day], &env);
        assert_eq!(code, 0, "{day}: {stdout}{stderr}");
        let round_line = stdout
            .lines()
            .find(|l| l.starts_with("round at "))
            .unwrap_or_else(|| panic!("{day}: {stdout}"));
        let recorded: usize = transitions.values().map(Vec::len).sum();
        if steps.is_empty() && recorded == 0 {
            assert!(
                round_line.ends_with("(0 API calls)."),
                "{day}: {round_line}"
            );
            assert!(!stdout.contains("Apply: "), "{day}: {stdout}");
            continue;
        }
        assert!(
            round_line.contains(&format!(
                " ({calls} API call{})",
                if calls == 1 { "" } else { "s" }
            )),
            "{day}: expected {steps:#?}\n{stdout}"
        );
        let apply_line = stdout
            .lines()
            .find(|l| l.starts_with("Apply: "))
            .unwrap_or_else(|| panic!("{day}: {stdout}"));
        assert!(
            apply_line.starts_with(&format!(
                "Apply: {done} done, 0 failed, 0 skipped, {manual} manual; 0 retries, 0 × 429; {calls} call"
            )),
            "{day}: {apply_line}"
        );
    }
    assert_eq!(
        kinds_of_transitions,
        ["cancel", "deprovision", "freeze", "reactivate"]
            .map(str::to_owned)
            .into_iter()
            .collect::<BTreeSet<String>>()
    );
    // Every customer's history: each transition once, on its day.
    let state = charter::state::Store::open_file(&dir.join(".charter/state.db")).unwrap();
    for customer in &program.customers {
        let recorded: Vec<(String, String)> = state
            .transitions(&customer.key)
            .unwrap()
            .into_iter()
            .map(|t| (t.transition, format_instant(t.at)))
            .collect();
        let expected: Vec<(String, String)> = lives[&customer.key]
            .recorded
            .iter()
            .map(|(name, when)| (name.clone(), format_instant(*when)))
            .collect();
        assert_eq!(recorded, expected, "{}", customer.key);
    }
    assert_eq!(
        lives["acme"].recorded,
        [
            ("freeze".to_owned(), at("2027-02-07")),
            ("deprovision".to_owned(), at("2027-05-08")),
            ("reactivate".to_owned(), at("2027-05-20")),
        ]
    );
    // Reactivated: the customers' owners hold their organizations again, with their tiers'
    // licenses and their admins.
    let observed = observe_sandbox(&running.url());
    for key in ["acme", "hooli"] {
        let customer = program.customer(key).unwrap();
        let id = state
            .customer(key)
            .unwrap()
            .unwrap()
            .organization_id
            .unwrap();
        let o = observed.organization(id).unwrap();
        let role_of = |email: &str| {
            o.members
                .iter()
                .find(|m| observed.user(m.user_id).unwrap().email == email)
                .and_then(|m| m.role.clone())
        };
        assert_eq!(role_of(&customer.owner).as_deref(), Some("Owner"), "{key}");
        for admin in &customer.admins {
            assert_eq!(role_of(admin).as_deref(), Some("Admin"), "{key}");
        }
        let active = provenance(&program, customer, "active")
            .to_object()
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(o.license.0.clone()),
            active.to_json(),
            "{key}"
        );
    }
    assert_no_duplicates(&observed);
    running.shutdown().unwrap();
}
