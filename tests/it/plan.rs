//! The planner against an in-memory model of an instance (`plan::test_instance`), which carries
//! out steps with Make's rules: plans respect their dependencies, reach the desired state, are
//! empty once there, and have exactly the minimal number of calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common;

use proptest::prelude::*;

use charter::api::{Observed, Role, Roles};
use charter::apply::Ids;
use charter::compile::customer::desired;
use charter::model::program::Program;
use charter::plan::observed::Memberships;
use charter::plan::test_instance::Instance;
use charter::plan::{self, Action, Context, Memory, Plan, reading};
use charter::source::Sources;
use charter::state::Store;

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

/// A scratch state database, in a folder deleted with the second half.
fn scratch_state(name: &str) -> (Store, common::Scratch) {
    let dir = common::scratch("plan", name);
    let state = Store::open_file(&dir.join("state.db")).unwrap();
    (state, dir)
}

/// SplitMix64: the choices of a random order, reproducible from a seed proptest draws.
struct Choices(u64);

impl Choices {
    fn pick(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        usize::try_from(z % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

/// Every step comes after the steps it depends on, and those are steps of the plan.
fn assert_ordered(plan: &Plan) {
    let mut seen = std::collections::BTreeSet::new();
    for step in &plan.steps {
        for dep in &step.depends_on {
            assert!(
                seen.contains(dep.as_str()),
                "step `{}` comes before `{dep}`, which it depends on",
                step.id
            );
        }
        assert!(seen.insert(step.id.as_str()), "two steps `{}`", step.id);
    }
}

/// Applies a plan to the model in a random order its dependencies allow (drawn from `seed`),
/// and records its bookkeeping in the state, as `apply` does once every step has succeeded.
fn apply(instance: &mut Instance, state: &Store, plan: &Plan, when: i64, seed: u64) -> Ids {
    assert_ordered(plan);
    let mut choices = Choices(seed);
    let (ids, _) = instance
        .apply_in_any_order(plan, |n| choices.pick(n))
        .unwrap_or_else(|e| {
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

/// Plans, applies to the model in a random order its dependencies allow, records, and checks
/// the result; returns the plan.
fn converge(
    instance: &mut Instance,
    state: &Store,
    program: &Program,
    when: i64,
    seed: u64,
) -> Plan {
    let memory = state.memory().unwrap();
    let plan = make_plan(program, when, &memory, &instance.observe());
    apply(instance, state, &plan, when, seed);
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
    let (state, _dir) = scratch_state("acme");
    let mut instance = Instance::from_observed(&empty());
    let first = converge(&mut instance, &state, &program, at("2027-01-15"), 0);
    assert!(first.calls() > 50);
    // A month later: acme's contract has ended (2027-01-31): frozen a week after.
    let freeze = converge(&mut instance, &state, &program, at("2027-02-08"), 0);
    let acme_steps: Vec<&str> = freeze
        .steps
        .iter()
        .filter(|s| s.subject == "acme")
        .map(|s| s.action.kind())
        .collect();
    assert_eq!(acme_steps, ["set_license"]);
    // Ninety days frozen: deprovisioned.
    let deprovision = converge(&mut instance, &state, &program, at("2027-05-09"), 0);
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
}

/// The minimal number of calls from an empty instance, counted from the desired states alone:
/// one user per distinct address, one organization per customer (owner and license included;
/// two calls: apply first reads whether one of its name appeared since the plan),
/// one role call per other person, one team per team (its first admin included), one team
/// role call per other team member, one instance-role call per staff member with a role.
fn minimal_from_empty(program: &Program, when: i64) -> usize {
    let mut addresses = std::collections::BTreeSet::new();
    let mut calls = 0;
    for customer in &program.customers {
        let d = desired(program, customer, &Default::default(), when);
        calls += 2 + d.roles.len() - 1;
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
    let (state, _dir) = scratch_state("tier");
    let before = acme();
    let mut instance = Instance::from_observed(&empty());
    let when = at("2027-01-15");
    converge(&mut instance, &state, &before, when, 0);
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
    assert_eq!(
        plan.steps.len(),
        affected.len(),
        "{}",
        plan::render_text(&plan)
    );
    assert_eq!(plan.calls(), 2 * affected.len(), "each reads, then writes");
    for step in &plan.steps {
        assert!(matches!(step.action, Action::SetLicense { .. }));
        assert!(affected.contains(&step.subject));
    }
}

#[test]
fn a_hand_edit_shows_as_drift() {
    let program = acme();
    let (state, _dir) = scratch_state("drift");
    let mut instance = Instance::from_observed(&empty());
    let when = at("2027-01-15");
    converge(&mut instance, &state, &program, when, 0);
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
}

/// A hand edit of the provisioned example instance.
type HandEdit = fn(&mut Instance, &Ids);

/// The example customers provisioned, a hand edit, and the plan that follows: each step's id
/// with whether it is labelled drift.
fn planned_after_hand_edit(edit: HandEdit) -> Vec<(String, bool)> {
    let program = acme();
    let (state, _dir) = scratch_state("hand-edit");
    let mut instance = Instance::from_observed(&empty());
    let when = at("2027-01-15");
    converge(&mut instance, &state, &program, when, 0);
    let memory = state.memory().unwrap();
    let observed = instance.observe();
    let ids = Ids {
        users: observed
            .users
            .iter()
            .map(|u| (u.email.to_lowercase(), u.id))
            .collect(),
        organizations: memory.organizations.clone(),
        teams: BTreeMap::new(),
    };
    edit(&mut instance, &ids);
    let plan = make_plan(&program, when, &memory, &instance.observe());
    // Planned back: once carried out, nothing is left.
    apply(&mut instance, &state, &plan, when, 1);
    let memory = state.memory().unwrap();
    assert_desired(&instance, &program, &memory, when);
    plan.steps.iter().map(|s| (s.id.clone(), s.drift)).collect()
}

fn acme_org<'a>(
    instance: &'a mut Instance,
    ids: &Ids,
) -> &'a mut charter::plan::test_instance::Organization {
    instance
        .organizations
        .get_mut(&ids.organizations["acme"])
        .unwrap()
}

/// Hand edits that change a value: each planned back with one step, labelled drift.
#[test]
fn values_changed_by_hand_are_planned_back_and_labelled_drift() {
    let cases: [(&str, HandEdit, &[&str]); 5] = [
        (
            "an organization role",
            |i, ids| {
                let raj = ids.users["raj@acme.example"];
                acme_org(i, ids).members.insert(raj, 13);
            },
            &["role:acme:raj@acme.example"],
        ),
        (
            "the owner",
            |i, ids| {
                let (jane, raj) = (
                    ids.users["jane@acme.example"],
                    ids.users["raj@acme.example"],
                );
                let org = acme_org(i, ids);
                org.members.insert(jane, 12);
                org.members.insert(raj, 11);
            },
            &["transfer:acme"],
        ),
        (
            "a team role",
            |i, ids| {
                let li = ids.users["li@acme.example"];
                let team = acme_org(i, ids).teams.values_mut().next().unwrap();
                team.members.insert(li, 6);
            },
            &["team-role:acme:Marketing:li@acme.example"],
        ),
        (
            "an instance role",
            |i, ids| {
                let dana = ids.users["dana@acme-automation.example"];
                i.users.get_mut(&dana).unwrap().instance_role = Some(921);
            },
            &["instance-role:dana@acme-automation.example"],
        ),
        (
            "a license key",
            |i, ids| {
                acme_org(i, ids)
                    .license
                    .insert("operations".to_owned(), 1.into());
            },
            &["license:acme"],
        ),
    ];
    for (what, edit, steps) in cases {
        let planned = planned_after_hand_edit(edit);
        let want: Vec<(String, bool)> = steps.iter().map(|s| ((*s).to_owned(), true)).collect();
        assert_eq!(planned, want, "{what} changed by hand");
    }
}

/// Hand edits that take something away: put back, and — as drift is a live value that is not
/// what charter last applied — labelled drift.
#[test]
fn what_was_taken_away_by_hand_is_put_back_and_labelled_drift() {
    let cases: [(&str, HandEdit, &[&str]); 3] = [
        (
            "a member",
            |i, ids| {
                let sam = ids.users["sam@acme.example"];
                acme_org(i, ids).members.remove(&sam);
            },
            &["role:acme:sam@acme.example"],
        ),
        (
            "a team member",
            |i, ids| {
                let li = ids.users["li@acme.example"];
                let team = acme_org(i, ids).teams.values_mut().next().unwrap();
                team.members.remove(&li);
            },
            &["team-role:acme:Marketing:li@acme.example"],
        ),
        (
            "an instance role",
            |i, ids| {
                let dana = ids.users["dana@acme-automation.example"];
                i.users.get_mut(&dana).unwrap().instance_role = None;
            },
            &["instance-role:dana@acme-automation.example"],
        ),
    ];
    let wrong: Vec<String> = cases
        .into_iter()
        .filter_map(|(what, edit, steps)| {
            let planned = planned_after_hand_edit(edit);
            let want: Vec<(String, bool)> = steps.iter().map(|s| ((*s).to_owned(), true)).collect();
            (planned != want).then(|| format!("{what}: planned {planned:?}, want {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "taken away by hand: {wrong:#?}");
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
    let (state, _dir) = scratch_state("staff");
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
        0,
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
        0,
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
    apply(&mut instance, &state, &plan, when, 0);
    assert!(
        instance
            .users
            .values()
            .any(|u| u.email == "dana@r.example" && u.instance_role.is_none())
    );
    let memory = state.memory().unwrap();
    assert!(!make_plan(&removed, when, &memory, &instance.observe()).has_changes());
}

// --- The properties: random policies, random instances, random hand edits, any order. ---

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
    let prelude = include_str!("../check/prelude.charter").replace("teams = 1", "teams = 5");
    let mut text = String::from(
        "instance {\n  dummy_owner = \"dummy@reseller.example\"\n}\n\
         tier small extends base { operations = 10_000 }\n\
         tier big extends base { operations = 50_000\n  apiLimit = 60 }\n",
    );
    text.push_str(include_str!("../../policies/acme/lifecycle.charter"));
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

/// People the policy never names, who may be on the instance all the same.
const STRANGERS: &[&str] = &["zed@x.example", "yan@x.example"];

/// The sandbox's organization role ids by name: Admin, Member, Accountant.
const OTHER_ORG_ROLES: [i64; 3] = [12, 13, 14];
/// The team role ids: Team Admin, Team Member, Team Monitoring, Team Operator.
const TEAM_ROLES: [i64; 4] = [1, 3, 4, 6];
/// Instance roles a user may hold: none, D1, S1, Admin, SA.
const INSTANCE_ROLES: [Option<i64>; 5] = [None, Some(911), Some(921), Some(902), Some(901)];
/// Team names an organization may have: the policy's (`T0`…) and Make's default.
const TEAM_NAMES: [&str; 4] = ["T0", "T1", "T2", "My Team"];

/// A customer's organization found on the instance before the plan.
#[derive(Clone, Debug)]
struct GenOrganization {
    /// charter's state links it to the customer (otherwise it is found by name).
    linked: bool,
    /// Its owner: 0 the customer's owner, 1 the dummy owner, then an index into the
    /// customer's people, POOL and STRANGERS.
    owner: usize,
    /// Other members, indexed like the owner, with an index into OTHER_ORG_ROLES.
    members: Vec<(usize, usize)>,
    /// Its license is the one of this lifecycle state (an index), then hand-edited.
    license_state: usize,
    /// Hand edits of the license: (key index, value): an integer key set to the value, a
    /// boolean flipped, every fifth one removed.
    license_edits: Vec<(usize, i64)>,
    /// Teams: a name (index into TEAM_NAMES) and members (index into the organization's
    /// members, index into TEAM_ROLES).
    teams: Vec<(usize, Vec<(usize, usize)>)>,
}

/// An instance as it may be found: partly provisioned, by hand or by an earlier tool.
#[derive(Clone, Debug)]
struct GenObserved {
    /// For each address of POOL: (on the instance, written in capitals).
    people: Vec<(bool, bool)>,
    /// How many of STRANGERS are on the instance.
    strangers: usize,
    /// For customer i: its organization, if it has one.
    organizations: Vec<Option<GenOrganization>>,
    /// For staff member i: on the instance, with an index into INSTANCE_ROLES.
    staff: Vec<Option<usize>>,
    /// For customer i: a freeze charter's state recorded that many days before the instant.
    frozen: Vec<Option<i64>>,
}

fn gen_organization() -> impl Strategy<Value = GenOrganization> {
    (
        prop::bool::weighted(0.75),
        prop_oneof![2 => Just(0usize), 1 => Just(1usize), 3 => 2usize..20],
        proptest::collection::vec((0usize..16, 0usize..3), 0..5),
        0usize..3,
        proptest::collection::vec((0usize..40, 0i64..100_000), 0..4),
        proptest::collection::vec(
            (
                0usize..4,
                proptest::collection::vec((0usize..8, 0usize..4), 0..4),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(linked, owner, members, license_state, license_edits, teams)| GenOrganization {
                linked,
                owner,
                members,
                license_state,
                license_edits,
                teams,
            },
        )
}

fn gen_observed() -> impl Strategy<Value = GenObserved> {
    (
        proptest::collection::vec((any::<bool>(), prop::bool::weighted(0.2)), POOL.len()),
        0..=STRANGERS.len(),
        proptest::collection::vec(prop::option::weighted(0.7, gen_organization()), 4),
        proptest::collection::vec(prop::option::of(0usize..INSTANCE_ROLES.len()), 3),
        proptest::collection::vec(prop::option::weighted(0.2, 1i64..200), 4),
    )
        .prop_map(
            |(people, strangers, organizations, staff, frozen)| GenObserved {
                people,
                strangers,
                organizations,
                staff,
                frozen,
            },
        )
}

/// The user with this address in the model, made by hand if missing.
fn user_named(instance: &mut Instance, email: &str) -> i64 {
    match instance
        .users
        .iter()
        .find(|(_, u)| u.email.eq_ignore_ascii_case(email))
    {
        Some((id, _)) => *id,
        None => instance.add_user(email, None).unwrap(),
    }
}

/// A license as a hand edit leaves it.
fn edited_license(
    mut license: serde_json::Map<String, serde_json::Value>,
    edits: &[(usize, i64)],
) -> serde_json::Map<String, serde_json::Value> {
    for (i, &(key, value)) in edits.iter().enumerate() {
        let Some(name) = license.keys().nth(key % license.len().max(1)).cloned() else {
            continue;
        };
        if i % 5 == 4 {
            license.remove(&name);
            continue;
        }
        let new = match &license[&name] {
            serde_json::Value::Bool(b) => serde_json::Value::Bool(!b),
            serde_json::Value::Number(_) => value.into(),
            other => other.clone(),
        };
        license.insert(name, new);
    }
    license
}

/// Builds the instance `g` describes for `program` at `when` in the model and charter's state
/// (links and recorded freezes); returns the customers whose organization the planner must
/// refuse to adopt (unlinked, and owned by someone charter would not have made its owner).
fn observed_instance(
    g: &GenObserved,
    program: &Program,
    state: &Store,
    when: i64,
) -> (Instance, Vec<String>) {
    let mut instance = Instance::from_observed(&empty());
    for (i, &(present, capitals)) in g.people.iter().enumerate() {
        if present {
            let email = if capitals {
                POOL[i].to_uppercase()
            } else {
                POOL[i].to_owned()
            };
            instance.add_user(&email, None).unwrap();
        }
    }
    for stranger in STRANGERS.iter().take(g.strangers) {
        instance.add_user(stranger, None).unwrap();
    }
    for (i, role) in g.staff.iter().enumerate() {
        if let (Some(role), Some(_)) = (role, program.staff.get(i)) {
            instance
                .add_user(&format!("staff{i}@reseller.example"), INSTANCE_ROLES[*role])
                .unwrap();
        }
    }
    let dummy = program.instance.dummy_owner.clone().unwrap();
    let mut refused = Vec::new();
    for (i, customer) in program.customers.iter().enumerate() {
        if let Some(Some(days)) = g.frozen.get(i) {
            state
                .record_transition(&charter::state::AppliedTransition {
                    customer: customer.key.clone(),
                    transition: "freeze".to_owned(),
                    from: "active".to_owned(),
                    to: "frozen".to_owned(),
                    at: when - days * 86_400,
                    plan: None,
                })
                .unwrap();
        }
        let Some(Some(o)) = g.organizations.get(i) else {
            continue;
        };
        // Who may be found in it: the customer's people, the dummy owner, anyone.
        let mut candidates: Vec<String> = std::iter::once(customer.owner.clone())
            .chain(customer.admins.iter().cloned())
            .chain(customer.members.iter().cloned())
            .chain([dummy.clone()])
            .chain(POOL.iter().map(|e| (*e).to_owned()))
            .chain(STRANGERS.iter().map(|e| (*e).to_owned()))
            .collect();
        candidates.dedup();
        let owner_email = match o.owner {
            0 => &customer.owner,
            1 => &dummy,
            n => &candidates[(n - 2) % candidates.len()],
        };
        let owner = user_named(&mut instance, owner_email);
        let lifecycle_state =
            &program.lifecycle.states[o.license_state % program.lifecycle.states.len()];
        let license =
            match charter::compile::customer::provenance(program, customer, &lifecycle_state.name)
                .to_object()
                .unwrap()
                .to_json()
            {
                serde_json::Value::Object(map) => map,
                _ => unreachable!(),
            };
        let id = instance
            .add_organization(
                &customer.name,
                edited_license(license, &o.license_edits),
                owner,
            )
            .unwrap();
        let mut members = vec![owner];
        for &(who, role) in &o.members {
            let user = user_named(&mut instance, &candidates[who % candidates.len()]);
            if !members.contains(&user) {
                members.push(user);
                instance
                    .organizations
                    .get_mut(&id)
                    .unwrap()
                    .members
                    .insert(user, OTHER_ORG_ROLES[role]);
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (name, people) in &o.teams {
            if !names.insert(*name) {
                continue;
            }
            let team = instance.add_team(id, TEAM_NAMES[*name]).unwrap();
            let org = instance.organizations.get_mut(&id).unwrap();
            for &(who, role) in people {
                let user = members[who % members.len()];
                org.teams
                    .get_mut(&team)
                    .unwrap()
                    .members
                    .insert(user, TEAM_ROLES[role]);
            }
        }
        if o.linked {
            state.set_organization(&customer.key, id).unwrap();
        } else {
            // The planner adopts it only when its owner is one charter would have made.
            let history = state.history(&customer.key).unwrap();
            let desired_owner = desired(program, customer, &history, when).owner;
            let fits = [&customer.owner, &desired_owner, &dummy]
                .iter()
                .any(|e| e.eq_ignore_ascii_case(owner_email));
            if !fits {
                refused.push(customer.key.clone());
            }
        }
    }
    (instance, refused)
}

/// A hand edit on the instance.
#[derive(Clone, Debug)]
enum Edit {
    /// Hand edits of an organization's license (as in `GenOrganization::license_edits`).
    License(usize, Vec<(usize, i64)>),
    /// A user (any, so maybe someone the policy never names) added or moved to a role.
    Role(usize, usize, u8),
    /// A member taken out of the organization (never its owner, as in Make).
    Remove(usize, usize),
    /// Ownership handed to a member.
    Transfer(usize, usize),
    TeamRole(usize, usize, u8),
    DropTeam(usize),
    StaffRole(usize, u8),
    /// Someone the policy never names gets a user.
    Stranger(usize),
}

fn gen_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            0usize..8,
            proptest::collection::vec((0usize..40, 0i64..100_000), 1..4)
        )
            .prop_map(|(o, edits)| Edit::License(o, edits)),
        (0usize..8, 0usize..12, 0u8..3).prop_map(|(o, u, r)| Edit::Role(o, u, r)),
        (0usize..8, 0usize..12).prop_map(|(o, u)| Edit::Remove(o, u)),
        (0usize..8, 0usize..6).prop_map(|(o, u)| Edit::Transfer(o, u)),
        (0usize..8, 0usize..6, 0u8..4).prop_map(|(o, u, r)| Edit::TeamRole(o, u, r)),
        (0usize..8).prop_map(Edit::DropTeam),
        (0usize..4, 0u8..5).prop_map(|(u, r)| Edit::StaffRole(u, r)),
        (0usize..STRANGERS.len()).prop_map(Edit::Stranger),
    ]
}

/// Applies a hand edit the way the Administration UI could.
fn edit(instance: &mut Instance, e: &Edit) {
    if let Edit::Stranger(s) = e {
        let _ = instance.add_user(STRANGERS[*s], None);
        return;
    }
    let org_ids: Vec<i64> = instance.organizations.keys().copied().collect();
    let user_ids: Vec<i64> = instance.users.keys().copied().collect();
    if org_ids.is_empty() || user_ids.is_empty() {
        return;
    }
    match e {
        Edit::License(o, edits) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            org.license = edited_license(std::mem::take(&mut org.license), edits);
        }
        Edit::Role(o, u, r) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            let user = user_ids[u % user_ids.len()];
            if org.members.get(&user) != Some(&11) {
                org.members
                    .insert(user, OTHER_ORG_ROLES[usize::from(*r) % 3]);
            }
        }
        Edit::Remove(o, u) => {
            let id = org_ids[o % org_ids.len()];
            let org = instance.organizations.get_mut(&id).unwrap();
            let members: Vec<i64> = org.members.keys().copied().collect();
            let user = members[u % members.len()];
            if org.members.get(&user) != Some(&11) {
                org.members.remove(&user);
                for team in org.teams.values_mut() {
                    team.members.remove(&user);
                }
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
                team.members.insert(user, TEAM_ROLES[usize::from(*r) % 4]);
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
                INSTANCE_ROLES[usize::from(*r) % INSTANCE_ROLES.len()];
        }
        Edit::Stranger(_) => {}
    }
}

/// Carries out the first `per_mille` thousandths of a plan in a random order its dependencies
/// allow — an apply interrupted, or whose later steps failed — with the bookkeeping the
/// executor does: an organization linked as soon as it is created, a customer recorded only
/// once all its steps are done.
fn apply_partly(
    instance: &mut Instance,
    state: &Store,
    plan: &Plan,
    when: i64,
    seed: u64,
    per_mille: usize,
) {
    let mut choices = Choices(seed);
    let (_, order) = instance
        .clone()
        .apply_in_any_order(plan, |n| choices.pick(n))
        .unwrap_or_else(|e| panic!("the model refuses the plan: {e}"));
    let done = order.len() * per_mille / 1000;
    let prefix: std::collections::BTreeSet<&str> =
        order.iter().take(done).map(String::as_str).collect();
    // A prefix of an order the dependencies allow holds the dependencies of its steps.
    let part = Plan {
        steps: order
            .iter()
            .take(done)
            .map(|id| plan.step(id).unwrap().clone())
            .collect(),
        ..plan.clone()
    };
    let mut choices = Choices(seed);
    let (ids, _) = instance
        .apply_in_any_order(&part, |n| choices.pick(n))
        .unwrap_or_else(|e| panic!("the model refuses a part of the plan: {e}"));
    for (customer, id) in &ids.organizations {
        if plan
            .customers
            .iter()
            .any(|c| &c.key == customer && c.organization.is_none())
        {
            state.set_organization(customer, *id).unwrap();
        }
    }
    for customer in &plan.customers {
        let all_done = plan
            .steps
            .iter()
            .filter(|s| s.subject == customer.key)
            .all(|s| prefix.contains(s.id.as_str()));
        if all_done {
            let organization = customer
                .organization
                .or_else(|| ids.organizations.get(&customer.key).copied());
            state
                .finish_customer(&plan.id, customer, organization, when)
                .unwrap();
        }
    }
}

fn program_of(customers: &[GenCustomer], staff: &[(usize, u8)]) -> Program {
    program(
        &policy_text(customers, staff)
            .iter()
            .map(|(n, t)| (*n, t.clone()))
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For random policies and random instances found partly provisioned — some users and
    /// organizations missing, others owned by the wrong person, members in the wrong roles or
    /// not named by the policy, teams missing or wrong, licenses edited by hand, staff roles
    /// anywhere, freezes recorded — the plan, carried out in a random order its `depends_on`
    /// edges allow, is accepted step by step with Make's rules, reaches the desired state, and
    /// planning again is empty. The one refusal is an unlinked organization with a customer's
    /// name whose owner charter would not have made: exactly those are refused.
    #[test]
    fn plans_from_any_observed_state_reach_the_desired_state_in_any_order_their_dependencies_allow(
        customers in proptest::collection::vec(gen_customer(), 1..4),
        staff in proptest::collection::vec((0usize..3, 0u8..3), 0..3),
        observed in gen_observed(),
        when in 0i64..500,
        seed in any::<u64>(),
    ) {
        let program = program_of(&customers, &staff);
        let (state, _dir) = scratch_state("observed");
        let when = 1_790_000_000 + when * 86_400;
        let (mut instance, refused) = observed_instance(&observed, &program, &state, when);
        let memory = state.memory().unwrap();
        match plan::plan(&program, when, &memory, &instance.observe(), &Context::default()) {
            Err(errors) => {
                let subjects: Vec<&str> = errors.iter().map(|e| e.subject.as_str()).collect();
                prop_assert_eq!(subjects, refused.iter().map(String::as_str).collect::<Vec<_>>());
                for e in &errors {
                    prop_assert!(e.message.contains("already exists"), "{}", e);
                }
            }
            Ok(made) => {
                prop_assert!(refused.is_empty(), "{:?} not refused", refused);
                let made = made.seal();
                apply(&mut instance, &state, &made, when, seed);
                let memory = state.memory().unwrap();
                assert_desired(&instance, &program, &memory, when);
                let again = make_plan(&program, when, &memory, &instance.observe());
                prop_assert!(!again.has_changes(), "planning again:\n{}", plan::render_text(&again));
            }
        }
    }

    /// Customers walked through their lives with interruptions: an apply stopped part-way
    /// (organizations linked as created, customers recorded only when done), hand edits, a
    /// later instant and reactivation requests. Every plan, carried out in a random order
    /// its dependencies allow, reaches the desired state, and planning again is empty.
    #[test]
    fn plans_converge_after_interrupted_applies_hand_edits_and_time_in_any_order_their_dependencies_allow(
        customers in proptest::collection::vec(gen_customer(), 1..4),
        staff in proptest::collection::vec((0usize..3, 0u8..3), 0..3),
        per_mille in 0usize..=1000,
        edits in proptest::collection::vec(gen_edit(), 0..8),
        first in 0i64..500,
        later in 0i64..300,
        reactivate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let program = program_of(&customers, &staff);
        let (state, _dir) = scratch_state("prop");
        let mut instance = Instance::from_observed(&empty());
        let t0 = 1_790_000_000 + first * 86_400;
        let memory = state.memory().unwrap();
        let provisioning = make_plan(&program, t0, &memory, &instance.observe());
        apply_partly(&mut instance, &state, &provisioning, t0, seed, per_mille);
        for e in &edits {
            edit(&mut instance, e);
        }
        converge(&mut instance, &state, &program, t0, seed.rotate_left(1));
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
        converge(&mut instance, &state, &program, t1, seed.rotate_left(2));
    }

    /// The same inputs always give the same plan (byte for byte).
    #[test]
    fn plans_are_deterministic(
        customers in proptest::collection::vec(gen_customer(), 1..4),
        when in 0i64..500,
    ) {
        let program = program_of(&customers, &[]);
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

/// An instance that made the token's user the Owner of an organization charter just created
/// (and the policy's owner an Admin): the verification plan transfers the ownership back and
/// takes the token's user out — only where the create being verified put them, and only when
/// the policy does not name them.
#[test]
fn the_token_user_leaves_only_the_organizations_the_verified_apply_created() {
    let program = acme();
    let when = at("2027-01-15");
    let (state, _dir) = scratch_state("creator");
    let mut instance = Instance::from_observed(&empty());
    let plan = make_plan(
        &program,
        when,
        &state.memory().unwrap(),
        &instance.observe(),
    );
    let ids = apply(&mut instance, &state, &plan, when, 1);
    let token = user_named(&mut instance, "token@charter.example");
    let jane = user_named(&mut instance, "jane@acme.example");
    let org = acme_org(&mut instance, &ids);
    org.members.insert(jane, 12);
    org.members.insert(token, 11);
    let memory = state.memory().unwrap();
    let observed = instance.observe();
    let context = |created: &[&str]| Context {
        token_user: Some(token),
        created: created.iter().map(|c| (*c).to_owned()).collect(),
        ..Context::default()
    };
    let removals = |plan: &Plan| -> Vec<(String, Vec<String>)> {
        plan.steps
            .iter()
            .filter(|s| matches!(s.action, Action::RemoveFromOrganization { .. }))
            .map(|s| (s.id.clone(), s.depends_on.clone()))
            .collect()
    };

    // Not created by the apply being verified: the token's user is left a Member.
    let kept = plan::plan(&program, when, &memory, &observed, &context(&[])).unwrap();
    assert!(removals(&kept).is_empty(), "{}", plan::render_text(&kept));
    assert!(kept.step("role:acme:token@charter.example").is_some());

    // Created by it: the token's user leaves, after the transfer, and nothing sets their role.
    let verified = plan::plan(&program, when, &memory, &observed, &context(&["acme"]))
        .unwrap()
        .seal();
    assert_eq!(
        removals(&verified),
        vec![(
            "leave:acme:token@charter.example".to_owned(),
            vec!["transfer:acme".to_owned()]
        )],
        "{}",
        plan::render_text(&verified)
    );
    assert!(verified.step("role:acme:token@charter.example").is_none());
    let text = plan::render_text(&verified);
    assert!(text.contains("- token@charter.example leaves"), "{text}");
    instance.apply(&verified).unwrap();
    let after = instance.observe();
    let acme = after.organization(ids.organizations["acme"]).unwrap();
    assert!(acme.members.iter().all(|m| m.user_id != token));
    let again = plan::plan(&program, when, &memory, &after, &context(&["acme"])).unwrap();
    assert_eq!(again.calls(), 0, "{}", plan::render_text(&again));
}

/// The instance as the listing shows it: every organization without its members.
fn listing_of(observed: &Observed) -> Observed {
    let mut listing = observed.clone();
    for o in &mut listing.organizations {
        o.set_memberships(&Memberships::default());
    }
    listing
}

/// The steps of a plan that act on the organizations `ids`, as JSON (comparable).
fn steps_on(plan: &Plan, ids: &BTreeSet<i64>) -> BTreeSet<String> {
    plan.steps
        .iter()
        .filter(|s| {
            s.action
                .organization()
                .and_then(|o| o.id)
                .is_some_and(|id| ids.contains(&id))
        })
        .map(|s| serde_json::to_string(s).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Customers provisioned, then rounds of hand edits, time passing and plans made as
    /// `charter plan` makes them (the listing, the memberships of the organizations the
    /// incremental reading chooses, the others from charter's state), some of them applied:
    /// every incremental plan agrees with the plan of the whole instance (`--refresh full`) on
    /// every organization it verified, and acts on no organization it did not verify.
    #[test]
    fn a_full_and_an_incremental_plan_agree_on_every_organization_the_incremental_one_verified(
        customers in proptest::collection::vec(gen_customer(), 1..4),
        rounds in proptest::collection::vec(
            (proptest::collection::vec(gen_edit(), 0..4), 0i64..100, any::<bool>()),
            1..6,
        ),
        verify_days in 1i64..8,
        seed in any::<u64>(),
    ) {
        let program = program_of(&customers, &[]);
        let (state, dir) = scratch_state("incremental");
        let mut instance = Instance::from_observed(&empty());
        let mut t = 1_790_000_000;
        converge(&mut instance, &state, &program, t, seed);
        // The convergence's last reading saw everything.
        let everything: BTreeMap<i64, Memberships> = instance
            .observe()
            .organizations
            .iter()
            .map(|o| (o.id, o.memberships()))
            .collect();
        state.remember(&everything, t).unwrap();
        let context = Context::default();
        for (round, (edits, hours, apply_it)) in rounds.iter().enumerate() {
            for e in edits {
                edit(&mut instance, e);
            }
            t += hours * 3600;
            let memory = state.memory().unwrap();
            let whole = instance.observe();
            let listing = listing_of(&whole);
            let relevant = reading::relevant(&program, &memory, &listing);
            let remembered = state.remembered().unwrap();
            let choice = reading::Choice {
                program: &program,
                at: t,
                memory: &memory,
                context: &context,
                remembered: &remembered,
                refresh: reading::Refresh::Incremental,
                verify_every: verify_days * 86_400,
            };
            let chosen = reading::choose(&choice, &listing, &relevant);
            let read: BTreeMap<i64, Memberships> = whole
                .organizations
                .iter()
                .filter(|o| chosen.contains(&o.id))
                .map(|o| (o.id, o.memberships()))
                .collect();
            state.remember(&read, t).unwrap();
            let assembled = reading::assemble(&listing, &remembered, &read);
            let full = plan::plan(&program, t, &memory, &whole, &context);
            let incremental = plan::plan(&program, t, &memory, &assembled, &context);
            let (full, incremental) = match (full, incremental) {
                (Ok(full), Ok(incremental)) => (full, incremental),
                (full, incremental) => {
                    let subjects = |r: &Result<Plan, Vec<plan::PlanError>>| -> Vec<String> {
                        r.as_ref()
                            .err()
                            .map(|e| e.iter().map(|e| e.subject.clone()).collect())
                            .unwrap_or_default()
                    };
                    prop_assert_eq!(subjects(&full), subjects(&incremental), "round {}", round);
                    break;
                }
            };
            prop_assert_eq!(
                steps_on(&full, &chosen),
                steps_on(&incremental, &chosen),
                "round {}: organizations verified {:?}",
                round,
                chosen
            );
            let acted_on: BTreeSet<i64> = incremental
                .steps
                .iter()
                .filter_map(|s| s.action.organization().and_then(|o| o.id))
                .collect();
            prop_assert!(
                acted_on.is_subset(&chosen),
                "round {}: acts on {:?}, verified {:?}",
                round,
                acted_on,
                chosen
            );
            if *apply_it {
                let incremental = incremental.seal();
                state
                    .forget_memberships(&acted_on.iter().copied().collect::<Vec<_>>())
                    .unwrap();
                apply(&mut instance, &state, &incremental, t, seed.rotate_left(3));
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
