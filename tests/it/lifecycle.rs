//! A customer's whole life on a moving clock, against the example policy set: active, frozen on
//! the right day (not a day early), deprovisioned after the delay, reactivated on request, with
//! its license and roles right at each step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use charter::compile::customer::{Cause, Event, History, desired, upcoming, walk};
use charter::model::customer::OrgRole;
use charter::model::program::Program;
use charter::model::time::parse_instant;

fn acme() -> Program {
    let set = charter::policy::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/acme"
    )))
    .unwrap_or_else(|_| panic!("the example policy set loads"));
    assert!(
        !set.checked.diagnostics.has_errors(),
        "{:?}",
        set.checked.diagnostics
    );
    set.checked.program.expect("the example policy set checks")
}

fn t(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

fn operations(program: &Program, key: &str, history: &History, at: &str) -> i64 {
    let c = program.customer(key).unwrap();
    desired(program, c, history, t(at))
        .license_object()
        .unwrap()
        .get("operations")
        .and_then(|v| v.as_int())
        .unwrap()
}

#[test]
fn acme_walks_through_its_whole_life() {
    let program = acme();
    let acme = program.customer("acme").unwrap();
    let none = History::default();
    let at = |when: &str, history: &History| desired(&program, acme, history, t(when));

    // Active, with its override, up to the last second before the week after its contract.
    let d = at("2027-02-06T23:59:59Z", &none);
    assert_eq!(d.walk.state, "active");
    assert_eq!(d.walk.since, None);
    assert_eq!(
        operations(&program, "acme", &none, "2027-02-06T23:59:59Z"),
        55_000
    );
    assert_eq!(d.owner, "jane@acme.example");
    assert_eq!(d.roles.get("raj@acme.example"), Some(&OrgRole::Admin));

    // Frozen at midnight on the seventh day, not a day early.
    let d = at("2027-02-07", &none);
    assert_eq!(d.walk.state, "frozen");
    assert_eq!(d.walk.since, Some(t("2027-02-07")));
    let fired = d.walk.fired.last().unwrap();
    assert_eq!(fired.transition, "freeze");
    assert!(matches!(&fired.cause, Cause::When { date, .. } if *date == t("2027-02-07")));
    let license = d.license_object().unwrap();
    assert_eq!(license.get("operations").unwrap().as_int(), Some(0));
    assert_eq!(license.get("transfer").unwrap().as_int(), Some(0));
    assert_eq!(
        license.get("apiLimit").unwrap().as_int(),
        Some(120),
        "frozen keeps the API"
    );
    assert_eq!(
        d.owner, "jane@acme.example",
        "a frozen customer keeps its owner"
    );

    // Deprovisioned 90 days after it was frozen, not a day early.
    assert_eq!(at("2027-05-07T23:59:59Z", &none).walk.state, "frozen");
    let d = at("2027-05-08", &none);
    assert_eq!(d.walk.state, "deprovisioned");
    assert_eq!(d.walk.since, Some(t("2027-05-08")));
    let license = d.license_object().unwrap();
    assert_eq!(license.get("apiLimit").unwrap().as_int(), Some(0));
    assert_eq!(
        license.get("dsslimit").unwrap().as_int(),
        Some(100 * (1 << 20)),
        "data stays"
    );
    assert_eq!(d.owner, "offboarded@acme-automation.example");
    assert_eq!(
        d.roles.get("offboarded@acme-automation.example"),
        Some(&OrgRole::Owner)
    );
    assert_eq!(d.roles.get("jane@acme.example"), Some(&OrgRole::Member));
    assert_eq!(d.roles.get("raj@acme.example"), Some(&OrgRole::Member));
    assert_eq!(d.roles.get("li@acme.example"), Some(&OrgRole::Member));

    // Reactivated on request: the tier license, the owner and the roles come back.
    let reactivated = History {
        transitions: Vec::new(),
        requests: vec![Event {
            transition: "reactivate".to_string(),
            at: t("2027-06-01T10:00:00Z"),
        }],
    };
    assert_eq!(
        at("2027-06-01T09:59:59Z", &reactivated).walk.state,
        "deprovisioned"
    );
    let d = at("2027-06-01T10:00:00Z", &reactivated);
    assert_eq!(d.walk.state, "active");
    assert_eq!(d.walk.since, Some(t("2027-06-01T10:00:00Z")));
    assert_eq!(
        operations(&program, "acme", &reactivated, "2027-06-01T10:00:00Z"),
        55_000
    );
    assert_eq!(d.owner, "jane@acme.example");
    assert_eq!(d.roles.get("raj@acme.example"), Some(&OrgRole::Admin));
    assert!(!d.roles.contains_key("offboarded@acme-automation.example"));

    // The freeze fired once for its date: a reactivated customer is not frozen again.
    assert_eq!(at("2028-01-01", &reactivated).walk.state, "active");
}

#[test]
fn a_recorded_transition_replaces_the_computed_time() {
    let program = acme();
    let acme = program.customer("acme").unwrap();
    // charter really froze acme two days late; deprovisioning counts from then.
    let history = History {
        transitions: vec![Event {
            transition: "freeze".to_string(),
            at: t("2027-02-09"),
        }],
        requests: Vec::new(),
    };
    let w = walk(&program.lifecycle, acme, &history, t("2027-05-09"));
    assert_eq!(
        w.state, "frozen",
        "90 days from the recorded freeze is May 10"
    );
    let w = walk(&program.lifecycle, acme, &history, t("2027-05-10"));
    assert_eq!(w.state, "deprovisioned");
    assert_eq!(w.fired[0].cause, Cause::Recorded);
}

#[test]
fn a_guard_chooses_the_transition() {
    let program = acme();
    // initech's payment is overdue: cancelled on the day its contract ends.
    let initech = program.customer("initech").unwrap();
    let w = walk(
        &program.lifecycle,
        initech,
        &History::default(),
        t("2026-12-31"),
    );
    assert_eq!(w.state, "frozen");
    assert_eq!(w.fired[0].transition, "cancel");
    // stark pays: nothing happens at its contract's end, only a week later.
    let stark = program.customer("stark").unwrap();
    assert_eq!(
        walk(
            &program.lifecycle,
            stark,
            &History::default(),
            t("2029-12-31")
        )
        .state,
        "active"
    );
    assert_eq!(
        walk(
            &program.lifecycle,
            stark,
            &History::default(),
            t("2030-01-07")
        )
        .state,
        "frozen"
    );
}

#[test]
fn a_customer_whose_date_has_long_passed_starts_where_the_walk_leads() {
    let program = acme();
    // hooli's contract ended 2026-05-15: frozen 05-22, deprovisioned 08-20.
    let hooli = program.customer("hooli").unwrap();
    let w = walk(
        &program.lifecycle,
        hooli,
        &History::default(),
        t("2026-11-28"),
    );
    assert_eq!(w.state, "deprovisioned");
    assert_eq!(w.since, Some(t("2026-08-20")));
    let names: Vec<&str> = w.fired.iter().map(|f| f.transition.as_str()).collect();
    assert_eq!(names, ["freeze", "deprovision"]);
}

#[test]
fn upcoming_lists_what_the_horizon_holds() {
    let program = acme();
    let acme = program.customer("acme").unwrap();
    let next = upcoming(
        &program.lifecycle,
        acme,
        &History::default(),
        t("2027-02-01"),
        100 * 86_400,
    );
    let names: Vec<(&str, i64)> = next.iter().map(|f| (f.transition.as_str(), f.at)).collect();
    assert_eq!(
        names,
        [
            ("freeze", t("2027-02-07")),
            ("deprovision", t("2027-05-08"))
        ]
    );
}

#[test]
fn roster_customers_compile_like_blocks() {
    let program = acme();
    let wonka = program.customer("wonka").unwrap();
    assert_eq!(wonka.addons, ["extra_ops", "analytics"]);
    assert_eq!(
        wonka.members,
        ["charlie@wonka.example", "oompa@wonka.example"]
    );
    let d = desired(&program, wonka, &History::default(), t("2027-01-01"));
    let license = d.license_object().unwrap();
    assert_eq!(license.get("operations").unwrap().as_int(), Some(50_000));
    assert_eq!(license.get("auditLogsDays").unwrap().as_int(), Some(90));
}
