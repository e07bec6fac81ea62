//! The planner against an in-memory model of an instance (`plan::model`), which carries out
//! steps with Make's rules: plans respect their dependencies, reach the desired state, are
//! empty once there, and have exactly the minimal number of calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use charter::api::{Observed, Role, Roles};
use charter::compile::customer::desired;
use charter::model::program::Program;
use charter::plan::model::{Ids, Instance};
use charter::plan::{self, Action, Context, Memory, Plan};
use charter::source::Sources;
use charter::state::State;

/// The roles of the sandbox (and of Make, where documented).
fn roles() -> Roles {
    let role = |id: i64, name: &str| Role {
        id,
        name: name.to_owned(),
    };
    Roles {
        instance: vec![
            role(901, "SA"),
            role(902, "Admin"),
            role(903, "BI"),
            role(911, "D1"),
            role(921, "S1"),
            role(924, "S4"),
        ],
        organization: vec![
            role(11, "Owner"),
            role(12, "Admin"),
            role(13, "Member"),
            role(14, "Accountant"),
        ],
        team: vec![
            role(1, "Team Admin"),
            role(3, "Team Member"),
            role(4, "Team Monitoring"),
            role(6, "Team Operator"),
        ],
    }
}

fn empty() -> Observed {
    Observed {
        organizations: Vec::new(),
        users: Vec::new(),
        roles: roles(),
        calls: Default::default(),
    }
}

fn program(files: &[(&str, String)]) -> Program {
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add((*name).to_owned(), text.clone());
    }
    let set = charter::policy::check_sources(sources, Path::new("."))
        .unwrap_or_else(|_| panic!("the policy does not parse"));
    match set.checked.program {
        Some(p) => p,
        None => panic!("the policy does not check: {:?}", set.checked.diagnostics.0),
    }
}

fn acme() -> Program {
    match charter::policy::load(Path::new("policies/acme")) {
        Ok(set) => set.checked.program.unwrap(),
        Err(_) => panic!("policies/acme does not load"),
    }
}

fn at(text: &str) -> i64 {
    charter::model::time::parse_instant(text).unwrap()
}

fn make_plan(program: &Program, when: i64, memory: &Memory, observed: &Observed) -> Plan {
    plan::plan(program, when, memory, observed, &Context::default())
        .unwrap_or_else(|errors| panic!("no plan: {errors:?}"))
        .seal()
}

/// A scratch state database.
fn scratch_state(name: &str) -> (State, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "charter-plan-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let state = State::open(&dir.join("state.db")).unwrap();
    (state, dir)
}

/// Applies a plan to the model and records its bookkeeping in the state, as `apply` does once
/// every step has succeeded.
fn apply(instance: &mut Instance, state: &State, plan: &Plan, when: i64) -> Ids {
    let ids = instance.apply(plan).unwrap_or_else(|e| {
        panic!(
            "the model refuses the plan: {e}\n{}",
            plan::render_text(plan)
        )
    });
    for customer in &plan.customers {
        let organization = customer
            .organization
            .or_else(|| ids.organizations.get(&customer.key).copied());
        state
            .finish_customer(&plan.id, customer, organization, when)
            .unwrap();
    }
    for staff in &plan.staff {
        state.finish_staff(&plan.id, staff, when).unwrap();
    }
    ids
}

/// The instance holds exactly what the program wants of every customer at `when`.
fn assert_desired(instance: &Instance, program: &Program, memory: &Memory, when: i64) {
    let observed = instance.observe();
    let email = |id: i64| observed.user(id).unwrap().email.to_lowercase();
    for customer in &program.customers {
        let history = memory
            .histories
            .get(&customer.key)
            .cloned()
            .unwrap_or_default();
        let d = desired(program, customer, &history, when);
        let id = memory.organizations[&customer.key];
        let o = observed.organization(id).unwrap();
        assert_eq!(o.name, customer.name);
        assert_eq!(
            serde_json::Value::Object(o.license.0.clone()),
            d.license.to_json(),
            "license of {}",
            customer.key
        );
        let members: BTreeMap<String, String> = o
            .members
            .iter()
            .map(|m| (email(m.user_id), m.role.clone().unwrap()))
            .collect();
        for (person, role) in &d.roles {
            let want = match role {
                charter::model::customer::OrgRole::Owner => "Owner",
                charter::model::customer::OrgRole::Admin => "Admin",
                charter::model::customer::OrgRole::Member => "Member",
            };
            assert_eq!(
                members.get(&person.to_lowercase()).map(String::as_str),
                Some(want),
                "{person} in {}",
                customer.key
            );
        }
        assert_eq!(
            members.values().filter(|r| *r == "Owner").count(),
            1,
            "one owner in {}",
            customer.key
        );
        for (team, people) in &d.teams {
            let t = o.teams.iter().find(|t| &t.name == team).unwrap();
            let held: BTreeMap<String, String> = t
                .members
                .iter()
                .map(|m| (email(m.user_id), m.role.clone().unwrap()))
                .collect();
            for (person, role) in people {
                let want = match role {
                    charter::model::customer::TeamRole::Admin => "Team Admin",
                    charter::model::customer::TeamRole::Member => "Team Member",
                    charter::model::customer::TeamRole::Operator => "Team Operator",
                    charter::model::customer::TeamRole::Monitor => "Team Monitoring",
                };
                assert_eq!(
                    held.get(&person.to_lowercase()).map(String::as_str),
                    Some(want)
                );
            }
        }
    }
    for staff in &program.staff {
        let user = observed
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(&staff.email))
            .unwrap();
        assert_eq!(user.instance_role, staff.role, "{}", staff.email);
    }
    // No address has two users.
    let mut addresses: Vec<String> = observed
        .users
        .iter()
        .map(|u| u.email.to_lowercase())
        .collect();
    let total = addresses.len();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), total, "duplicate users");
}

/// Plans, applies to the model, records, and checks the result; returns the plan.
fn converge(instance: &mut Instance, state: &State, program: &Program, when: i64) -> Plan {
    let memory = state.memory().unwrap();
    let plan = make_plan(program, when, &memory, &instance.observe());
    apply(instance, state, &plan, when);
    let memory = state.memory().unwrap();
    assert_desired(instance, program, &memory, when);
    let again = make_plan(program, when, &memory, &instance.observe());
    assert!(
        !again.has_changes(),
        "planning again is not empty:\n{}",
        plan::render_text(&again)
    );
    plan
}

#[test]
fn the_example_customers_are_provisioned_and_walked_through_their_lives() {
    let program = acme();
    let (state, dir) = scratch_state("acme");
    let mut instance = Instance::from_observed(&empty());
    let first = converge(&mut instance, &state, &program, at("2027-01-15"));
    assert!(first.calls() > 50);
    // A month later: acme's contract has ended (2027-01-31): frozen a week after.
    let freeze = converge(&mut instance, &state, &program, at("2027-02-08"));
    let acme_steps: Vec<&str> = freeze
        .steps
        .iter()
        .filter(|s| s.subject == "acme")
        .map(|s| s.action.kind())
        .collect();
    assert_eq!(acme_steps, ["set_license"]);
    // Ninety days frozen: deprovisioned.
    let deprovision = converge(&mut instance, &state, &program, at("2027-05-09"));
    let kinds: Vec<&str> = deprovision
        .steps
        .iter()
        .filter(|s| s.subject == "acme")
        .map(|s| s.action.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "set_license",
            "set_organization_role",
            "set_organization_role",
            "transfer_ownership",
            "set_organization_role",
            "manual"
        ],
        "{}",
        plan::render_text(&deprovision)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The minimal number of calls from an empty instance, counted from the desired states alone:
/// one user per distinct address, one organization per customer (owner and license included),
/// one role call per other person, one team per team (its first admin included), one team
/// role call per other team member, one instance-role call per staff member with a role.
fn minimal_from_empty(program: &Program, when: i64) -> usize {
    let mut addresses = std::collections::BTreeSet::new();
    let mut calls = 0;
    for customer in &program.customers {
        let d = desired(program, customer, &Default::default(), when);
        calls += 1 + d.roles.len() - 1;
        addresses.extend(d.roles.keys().map(|e| e.to_lowercase()));
        for people in d.teams.values() {
            let admin = people
                .values()
                .any(|r| *r == charter::model::customer::TeamRole::Admin);
            calls += 1 + people.len() - usize::from(admin);
        }
    }
    for staff in &program.staff {
        addresses.insert(staff.email.to_lowercase());
        calls += usize::from(staff.role.is_some());
    }
    calls + addresses.len()
}

#[test]
fn provisioning_an_empty_instance_takes_the_minimal_number_of_calls() {
    let program = acme();
    for when in ["2026-06-01", "2027-01-15", "2027-06-01"] {
        let plan = make_plan(&program, at(when), &Memory::default(), &empty());
        assert_eq!(
            plan.calls(),
            minimal_from_empty(&program, at(when)),
            "at {when}"
        );
    }
}

#[test]
fn a_tier_change_plans_one_license_call_per_customer_of_the_tier() {
    let (state, dir) = scratch_state("tier");
    let before = acme();
    let mut instance = Instance::from_observed(&empty());
    let when = at("2027-01-15");
    converge(&mut instance, &state, &before, when);
    // pro gets more operations.
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir("policies/acme").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "charter") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.ends_with("tiers.charter") {
                text = text.replace("operations = 40_000", "operations = 45_000");
            }
            files.push((path.display().to_string(), text));
        }
    }
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add(name, text);
    }
    let after = charter::policy::check_sources(sources, Path::new(""))
        .unwrap_or_else(|_| panic!("parse"))
        .checked
        .program
        .unwrap();
    let memory = state.memory().unwrap();
    let plan = make_plan(&after, when, &memory, &instance.observe());
    // Independently: the customers whose compiled license differs between the two programs.
    let affected: Vec<String> = after
        .customers
        .iter()
        .filter(|c| {
            let h = memory.histories.get(&c.key).cloned().unwrap_or_default();
            desired(&before, before.customer(&c.key).unwrap(), &h, when).license
                != desired(&after, c, &h, when).license
        })
        .map(|c| c.key.clone())
        .collect();
    assert!(!affected.is_empty());
    assert_eq!(plan.calls(), affected.len(), "{}", plan::render_text(&plan));
    for step in &plan.steps {
        assert!(matches!(step.action, Action::SetLicense { .. }));
        assert!(affected.contains(&step.subject));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hand_edit_shows_as_drift() {
    let program = acme();
    let (state, dir) = scratch_state("drift");
    let mut instance = Instance::from_observed(&empty());
    let when = at("2027-01-15");
    converge(&mut instance, &state, &program, when);
    let memory = state.memory().unwrap();
    let id = memory.organizations["acme"];
    instance
        .organizations
        .get_mut(&id)
        .unwrap()
        .license
        .insert("operations".to_owned(), 1.into());
    let plan = make_plan(&program, when, &memory, &instance.observe());
    assert_eq!(plan.steps.len(), 1);
    let step = &plan.steps[0];
    assert!(step.drift);
    let text = plan::render_text(&plan);
    assert!(
        text.contains("operations: 1 → 55,000   # drift: changed by hand"),
        "{text}"
    );
    assert!(
        plan::summary(&plan).contains("1 step correcting drift"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unlinked_organization_of_the_same_name_is_adopted_only_with_its_owner() {
    let program = acme();
    let when = at("2027-01-15");
    let mut instance = Instance::from_observed(&empty());
    // Provision, then forget the state: the organizations are there, unlinked.
    let plan = make_plan(&program, when, &Memory::default(), &instance.observe());
    instance.apply(&plan).unwrap();
    let again = make_plan(&program, when, &Memory::default(), &instance.observe());
    assert!(
        again
            .customers
            .iter()
            .all(|c| c.adopt && c.organization.is_some())
    );
    assert_eq!(again.calls(), 0, "{}", plan::render_text(&again));
    // Someone else's organization with a customer's name is not adopted.
    let mut other = instance.clone();
    let observed = other.observe();
    let li = observed
        .users
        .iter()
        .find(|u| u.email == "li@acme.example")
        .unwrap()
        .id;
    let acme = observed
        .organizations
        .iter()
        .find(|o| o.name == "Acme Corp")
        .unwrap()
        .id;
    let org = other.organizations.get_mut(&acme).unwrap();
    for role in org.members.values_mut() {
        if *role == 11 {
            *role = 12;
        }
    }
    org.members.insert(li, 11);
    let errors = plan::plan(
        &program,
        when,
        &Memory::default(),
        &other.observe(),
        &Context::default(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("already exists"), "{errors:?}");
}

#[test]
fn staff_roles_are_granted_changed_and_removed_without_deleting_anyone() {
    let (state, dir) = scratch_state("staff");
    let base = std::fs::read_to_string("policies/acme/tiers.charter").unwrap();
    let instance_block =
        "instance {\n  flags = [feature_variables, feature_scenario_inputs]\n}\n".to_owned();
    let with_staff = |staff: &str| {
        program(&[
            ("instance.charter", instance_block.clone()),
            ("tiers.charter", base.clone()),
            ("staff.charter", staff.to_owned()),
        ])
    };
    let when = at("2027-01-15");
    let mut instance = Instance::from_observed(&empty());
    let first = converge(
        &mut instance,
        &state,
        &with_staff(
            "staff \"dana@r.example\" {\n  name = \"Dana\"\n  role = \"D1\"\n  options = [private_apps]\n}\n",
        ),
        when,
    );
    let kinds: Vec<&str> = first.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(kinds, ["create_user", "set_instance_role", "manual"]);
    // Changed: one call, no manual step again.
    let changed = converge(
        &mut instance,
        &state,
        &with_staff(
            "staff \"dana@r.example\" {\n  name = \"Dana\"\n  role = \"S1\"\n  options = [private_apps]\n}\n",
        ),
        when,
    );
    let kinds: Vec<&str> = changed.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(kinds, ["set_instance_role"]);
    // Removed: the role goes back to none; the user stays.
    let removed = with_staff("");
    let memory = state.memory().unwrap();
    let plan = make_plan(&removed, when, &memory, &instance.observe());
    assert_eq!(plan.steps.len(), 1);
    assert!(matches!(
        &plan.steps[0].action,
        Action::SetInstanceRole { role: None, .. }
    ));
    apply(&mut instance, &state, &plan, when);
    assert!(
        instance
            .users
            .values()
            .any(|u| u.email == "dana@r.example" && u.instance_role.is_none())
    );
    let memory = state.memory().unwrap();
    assert!(!make_plan(&removed, when, &memory, &instance.observe()).has_changes());
    let _ = std::fs::remove_dir_all(dir);
}

// --- The property: random policies, random instances, random hand edits. ---

const POOL: &[&str] = &[
    "ann@a.example",
    "bob@a.example",
    "cy@b.example",
    "dee@b.example",
    "eve@c.example",
    "fay@c.example",
];

#[derive(Clone, Debug)]
struct GenCustomer {
    tier: bool,
    /// Index of each person in POOL → role (0 owner, 1 admin, 2 member).
    people: Vec<(usize, u8)>,
    contract_end: i64,
    overdue: bool,
    teams: Vec<Vec<(usize, u8)>>,
}

fn gen_customer() -> impl Strategy<Value = GenCustomer> {
    (
        any::<bool>(),
        Just((0..POOL.len()).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::collection::vec(0u8..3, POOL.len()),
        1usize..POOL.len(),
        0i64..400,
        any::<bool>(),
        proptest::collection::vec(proptest::collection::vec((0usize..6, 0u8..4), 0..4), 0..3),
    )
        .prop_map(|(tier, order, roles, size, days, overdue, teams)| {
            let mut people: Vec<(usize, u8)> = Vec::new();
            for (i, &who) in order.iter().take(size).enumerate() {
                let role = if i == 0 { 0 } else { 1 + roles[i] % 2 };
                people.push((who, role));
            }
            let teams = teams
                .into_iter()
                .map(|members| {
                    let mut seen = std::collections::BTreeSet::new();
                    members
                        .into_iter()
                        .filter_map(|(i, r)| {
                            let (who, _) = people[i % people.len()];
                            seen.insert(who).then_some((who, r))
                        })
                        .collect()
                })
                .collect();
            GenCustomer {
                tier,
                people,
                contract_end: 1_790_000_000 + days * 86_400,
                overdue,
                teams,
            }
        })
}

fn policy_text(customers: &[GenCustomer], staff: &[(usize, u8)]) -> Vec<(&'static str, String)> {
    let prelude = include_str!("check/prelude.charter").replace("teams = 1", "teams = 5");
    let mut text = String::from(
        "instance {\n  dummy_owner = \"dummy@reseller.example\"\n}\n\
         tier small extends base { operations = 10_000 }\n\
         tier big extends base { operations = 50_000\n  apiLimit = 60 }\n",
    );
    text.push_str(include_str!("../policies/acme/lifecycle.charter"));
    for (i, c) in customers.iter().enumerate() {
        let list = |role: u8| -> String {
            c.people
                .iter()
                .filter(|(_, r)| *r == role)
                .map(|(who, _)| format!("\"{}\"", POOL[*who]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let owner = c
            .people
            .iter()
            .find(|(_, r)| *r == 0)
            .map(|(w, _)| POOL[*w])
            .unwrap();
        let date = charter::model::time::format_instant(
            c.contract_end - c.contract_end.rem_euclid(86_400),
        );
        text.push_str(&format!(
            "customer c{i} {{\n  name = \"Customer {i}\"\n  tier = {}\n  owner = \"{owner}\"\n  \
             admins = [{}]\n  members = [{}]\n  contract_end = {date}\n  \
             attributes {{ payment = \"{}\" }}\n",
            if c.tier { "big" } else { "small" },
            list(1),
            list(2),
            if c.overdue { "overdue" } else { "ok" }
        ));
        for (t, members) in c.teams.iter().enumerate() {
            let names = ["admins", "members", "operators", "monitors"];
            let mut lists = Vec::new();
            for (r, name) in names.iter().enumerate() {
                let who: Vec<String> = members
                    .iter()
                    .filter(|(_, role)| usize::from(*role) == r)
                    .map(|(w, _)| format!("\"{}\"", POOL[*w]))
                    .collect();
                if !who.is_empty() {
                    lists.push(format!("{name} = [{}]", who.join(", ")));
                }
            }
            text.push_str(&format!("  team \"T{t}\" {{ {} }}\n", lists.join("; ")));
        }
        text.push_str("}\n");
    }
    for (i, (_, role)) in staff.iter().enumerate() {
        let role = ["D1", "S1", "Admin"][usize::from(*role % 3)];
        text.push_str(&format!(
            "staff \"staff{i}@reseller.example\" {{\n  role = \"{role}\"\n  options = [private_apps]\n}}\n"
        ));
    }
    vec![("prelude.charter", prelude), ("policy.charter", text)]
}

/// A hand edit on the instance.
#[derive(Clone, Debug)]
enum Edit {
    License(usize, i64),
    Role(usize, usize, u8),
    Transfer(usize, usize),
    TeamRole(usize, usize, u8),
    DropTeam(usize),
    StaffRole(usize, u8),
}

fn gen_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0usize..8, 0i64..100_000).prop_map(|(o, n)| Edit::License(o, n)),
        (0usize..8, 0usize..6, 0u8..3).prop_map(|(o, u, r)| Edit::Role(o, u, r)),
        (0usize..8, 0usize..6).prop_map(|(o, u)| Edit::Transfer(o, u)),
        (0usize..8, 0usize..6, 0u8..4).prop_map(|(o, u, r)| Edit::TeamRole(o, u, r)),
        (0usize..8).prop_map(Edit::DropTeam),
        (0usize..4, 0u8..4).prop_map(|(u, r)| Edit::StaffRole(u, r)),
    ]
}

/// Applies a hand edit the way the Administration UI could.
fn edit(instance: &mut Instance, e: &Edit) {
    let org_ids: Vec<i64> = instance.organizations.keys().copied().collect();
    let user_ids: Vec<i64> = instance.users.keys().copied().collect();
    if org_ids.is_empty() || user_ids.is_empty() {
        return;
    }
    let org_roles = [11, 12, 13];
    match *e {
        Edit::License(o, n) => {
            let id = org_ids[o % org_ids.len()];
            instance
                .organizations
                .get_mut(&id)
                .unwrap()
                .license
                .insert("operations".into(), n.into());
        }
        Edit::Role(o, u, r) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            let user = user_ids[u % user_ids.len()];
            if org.members.get(&user) != Some(&11) {
                org.members.insert(user, org_roles[1 + usize::from(r) % 2]);
            }
        }
        Edit::Transfer(o, u) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            let members: Vec<i64> = org.members.keys().copied().collect();
            let target = members[u % members.len()];
            for role in org.members.values_mut() {
                if *role == 11 {
                    *role = 12;
                }
            }
            org.members.insert(target, 11);
        }
        Edit::TeamRole(o, u, r) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            let members: Vec<i64> = org.members.keys().copied().collect();
            let user = members[u % members.len()];
            if let Some(team) = org.teams.values_mut().next() {
                team.members.insert(user, [1, 3, 4, 6][usize::from(r) % 4]);
            }
        }
        Edit::DropTeam(o) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            if let Some(&team) = org.teams.keys().next() {
                org.teams.remove(&team);
            }
        }
        Edit::StaffRole(u, r) => {
            let user = user_ids[u % user_ids.len()];
            instance.users.get_mut(&user).unwrap().instance_role =
                [None, Some(911), Some(921), Some(902)][usize::from(r) % 4];
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// For random policies, random hand edits and random instants: every plan respects its
    /// dependencies and Make's rules (the model refuses anything else), reaches the desired
    /// state, and planning again finds nothing to do.
    #[test]
    fn plans_converge(
        customers in proptest::collection::vec(gen_customer(), 1..4),
        staff in proptest::collection::vec((0usize..3, 0u8..3), 0..3),
        edits in proptest::collection::vec(gen_edit(), 0..6),
        first in 0i64..500,
        later in 0i64..300,
        reactivate in any::<bool>(),
    ) {
        let program = program(&policy_text(&customers, &staff)
            .iter()
            .map(|(n, t)| (*n, t.clone()))
            .collect::<Vec<_>>());
        let (state, dir) = scratch_state("prop");
        let mut instance = Instance::from_observed(&empty());
        let t0 = 1_790_000_000 + first * 86_400;
        converge(&mut instance, &state, &program, t0);
        for e in &edits {
            edit(&mut instance, e);
        }
        let t1 = t0 + later * 86_400;
        if reactivate {
            for c in &program.customers {
                let _ = state.request_transition(&charter::state::TransitionRequest {
                    customer: c.key.clone(),
                    transition: "reactivate".to_owned(),
                    at: t1,
                    by: None,
                });
            }
        }
        converge(&mut instance, &state, &program, t1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The same inputs always give the same plan (byte for byte).
    #[test]
    fn plans_are_deterministic(
        customers in proptest::collection::vec(gen_customer(), 1..4),
        when in 0i64..500,
    ) {
        let program = program(&policy_text(&customers, &[])
            .iter()
            .map(|(n, t)| (*n, t.clone()))
            .collect::<Vec<_>>());
        let t = 1_790_000_000 + when * 86_400;
        let a = make_plan(&program, t, &Memory::default(), &empty());
        let b = make_plan(&program, t, &Memory::default(), &empty());
        prop_assert_eq!(a.to_json(), b.to_json());
        prop_assert_eq!(Plan::from_json(&a.to_json()).unwrap(), a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Reading a plan file never panics, whatever it holds, and what it accepts writes back
    /// to itself (mirrors the fuzz target `plan_file`).
    #[test]
    fn reading_any_plan_file_never_panics(
        text in ".{0,200}",
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..6),
    ) {
        let _ = Plan::from_json(&text);
        static PLAN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let json = PLAN.get_or_init(|| {
            make_plan(&acme(), at("2027-05-09"), &Memory::default(), &empty()).to_json()
        });
        let mut chars: Vec<char> = json.chars().collect();
        for (index, c) in edits {
            let i = index.index(chars.len());
            chars[i] = c;
        }
        let edited: String = chars.into_iter().collect();
        if let Ok(read) = Plan::from_json(&edited) {
            prop_assert_eq!(Plan::from_json(&read.to_json()).unwrap(), read);
        }
    }
}
