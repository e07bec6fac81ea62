//! charter's state database: its schema and migrations, the history it gives the lifecycle
//! walk, the journal, the runner's lock, refusing files that are not charter's — and the
//! commands that read and write it (`charter transition`, `compile`, `explain`, `schedule`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use charter::compile::customer::{Cause, History, walk};
use charter::model::program::Program;
use charter::model::time::parse_instant;
use charter::state::schema::{APPLICATION_ID, MIGRATIONS, current_version};
use charter::state::{
    AppliedTransition, InstanceIdentity, Location, LockOptions, StateError, StepIntent,
    StepOutcome, Store, TokenUser, TransitionRequest, default_path,
};

const ACME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/acme");

use crate::common::{self, Run};

/// An empty scratch folder of its own for each test.
fn scratch(name: &str) -> common::Scratch {
    common::scratch("state", name)
}

/// A scratch copy of the example policy set.
fn acme_copy(name: &str) -> common::Scratch {
    common::acme_copy("state", name)
}

/// The two backends every test of the state's interface runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's state is: its [`Location`], and for SQLite the scratch folder holding the
/// file, kept as long as the place so that the folder is deleted after the test, not before.
struct Place {
    location: Location,
    _folder: Option<common::Scratch>,
}

impl std::ops::Deref for Place {
    type Target = Location;

    fn deref(&self) -> &Location {
        &self.location
    }
}

/// A new, empty state for test `name` on `backend`: a file in a scratch folder, or a database
/// of its own on the tests' PostgreSQL server.
fn place(backend: Backend, name: &str) -> Place {
    match backend {
        Backend::Sqlite => {
            let folder = scratch(name);
            Place {
                location: Location::File(folder.join("state.db")),
                _folder: Some(folder),
            }
        }
        Backend::Postgres => Place {
            location: Location::parse(&common::postgres::database(name), Path::new("")).unwrap(),
            _folder: None,
        },
    }
}

/// The tests of the state's interface, each once per backend: `sqlite::NAME`, `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
        }
    };
}

on_both_backends!(
    a_new_state_creates_its_folder_and_its_data_survives_reopening,
    an_organization_belongs_to_one_customer,
    a_recorded_freeze_two_days_late_moves_the_deprovision_date,
    a_requested_reactivation_makes_the_customer_active_at_the_request_time,
    recording_the_transition_carries_out_the_request,
    histories_give_every_customer_at_once_in_order,
    a_step_records_its_intent_then_its_outcome,
    a_finished_step_is_never_begun_or_finished_again,
    steps_in_flight_at_a_crash_are_found_unfinished_on_reopening,
    a_second_runner_is_refused_while_the_first_holds_the_lock,
    a_state_is_bound_on_first_use_and_refuses_another_instance,
    intents_begun_together_are_recorded_all_or_none
);

fn acme() -> Program {
    let set = charter::policy::load(Path::new(ACME))
        .unwrap_or_else(|_| panic!("the example policy set loads"));
    set.checked.program.expect("the example policy set checks")
}

fn t(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn applied(customer: &str, transition: &str, from: &str, to: &str, at: &str) -> AppliedTransition {
    AppliedTransition {
        customer: customer.to_owned(),
        transition: transition.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        at: t(at),
        plan: None,
    }
}

fn request(customer: &str, transition: &str, at: &str) -> TransitionRequest {
    TransitionRequest {
        customer: customer.to_owned(),
        transition: transition.to_owned(),
        at: t(at),
        by: Some("ops@reseller.example".to_owned()),
    }
}

fn step(plan: &str, id: &str) -> StepIntent {
    StepIntent {
        plan: plan.to_owned(),
        id: id.to_owned(),
        kind: "set_license".to_owned(),
        target: "acme".to_owned(),
    }
}

// ---- schema, reopening, migration, refusal ----

fn a_new_state_creates_its_folder_and_its_data_survives_reopening(backend: Backend) {
    let place = match backend {
        Backend::Sqlite => {
            let dir = scratch("reopen");
            let path = default_path(&dir);
            assert_eq!(path, dir.join(".charter").join("state.db"));
            Place {
                location: Location::File(path),
                _folder: Some(dir),
            }
        }
        Backend::Postgres => place(backend, "reopen"),
    };
    {
        let state = Store::open(&place).unwrap();
        assert_eq!(state.schema_version().unwrap(), current_version());
        state.set_organization("acme", 41).unwrap();
        state.set_user("Jane@Acme.example", 7).unwrap();
        state
            .record_transition(&applied(
                "hooli",
                "freeze",
                "active",
                "frozen",
                "2026-05-22",
            ))
            .unwrap();
        state
            .request_transition(&request("hooli", "reactivate", "2026-11-28"))
            .unwrap();
    }
    let state = Store::open(&place).unwrap();
    assert_eq!(state.organization("acme").unwrap(), Some(41));
    assert_eq!(state.organization("globex").unwrap(), None);
    assert_eq!(state.user("jane@acme.example").unwrap(), Some(7));
    let hooli = state.customer("hooli").unwrap().unwrap();
    assert_eq!(hooli.state.as_deref(), Some("frozen"));
    assert_eq!(hooli.since, Some(t("2026-05-22")));
    assert_eq!(hooli.organization_id, None);
    let history = state.history("hooli").unwrap();
    assert_eq!(history.transitions.len(), 1);
    assert_eq!(history.transitions[0].transition, "freeze");
    assert_eq!(history.requests.len(), 1);
    assert_eq!(history.requests[0].at, t("2026-11-28"));
    let requests = state.requests("hooli").unwrap();
    assert_eq!(
        requests[0].request.by.as_deref(),
        Some("ops@reseller.example")
    );
    assert_eq!(state.history("acme").unwrap(), History::default());
    let keys: Vec<String> = state
        .customers()
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(keys, ["acme", "hooli"]);
}

fn an_organization_belongs_to_one_customer(backend: Backend) {
    let place = place(backend, "organization");
    let state = Store::open(&place).unwrap();
    state.set_organization("acme", 41).unwrap();
    // Setting it again for the same customer is fine.
    state.set_organization("acme", 41).unwrap();
    let error = state.set_organization("globex", 41).unwrap_err();
    assert_eq!(
        error.to_string(),
        "organization `41` already belongs to customer `acme`"
    );
    assert_eq!(state.organization("globex").unwrap(), None);
}

#[test]
fn an_older_schema_is_migrated_and_keeps_its_data() {
    let dir = scratch("migrate");
    let path = dir.join("state.db");
    {
        // A state database as a charter of schema version 1 left it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.execute_batch(MIGRATIONS[0].sqlite).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO customers (key, organization_id, state, since) VALUES ('hooli', 9, 'frozen', ?1)",
            [t("2026-05-24")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO transitions (customer, transition, from_state, to_state, at)
             VALUES ('hooli', 'freeze', 'active', 'frozen', ?1)",
            [t("2026-05-24")],
        )
        .unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('journal', 'lock')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }
    let state = Store::open_file(&path).unwrap();
    assert_eq!(state.schema_version().unwrap(), current_version());
    assert!(current_version() > 1);
    assert_eq!(state.organization("hooli").unwrap(), Some(9));
    assert_eq!(
        state.history("hooli").unwrap().transitions[0].at,
        t("2026-05-24")
    );
    // What the new version added works.
    state.begin_step(&step("p1", "s1"), 100).unwrap();
    assert_eq!(state.unfinished_steps("p1").unwrap().len(), 1);
    drop(state.acquire_lock("test").unwrap());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = scratch("newer");
    let path = dir.join("state.db");
    drop(Store::open_file(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let error = Store::open_file(&path).unwrap_err();
    assert!(
        matches!(error, StateError::Newer { version: 99, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with(&format!("was written by a newer charter: its schema version is `99`, this charter knows up to `{}`", current_version())),
        "{error}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = scratch("corrupt");
    let path = dir.join("state.db");
    let garbage = "this is not a database, only text\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let error = Store::open_file(&path).unwrap_err();
    assert!(matches!(error, StateError::NotState { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("is not a charter state database: file is not a database"),
        "{message}"
    );
    // Left as it was.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), garbage);
}

#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = scratch("foreign");
    let path = dir.join("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)")
            .unwrap();
    }
    let error = Store::open_file(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` is not a charter state database: it holds another application's data",
            path.display()
        )
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (version, tables): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), count(*) FROM sqlite_master",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, tables), (0, 1));
}

#[test]
fn opening_an_existing_state_never_creates_one() {
    let dir = scratch("existing");
    let path = default_path(&dir);
    assert!(
        Store::open_existing(&Location::File(path.clone()))
            .unwrap()
            .is_none()
    );
    assert!(!path.exists());
    assert!(!dir.join(".charter").exists());
    drop(Store::open_file(&path).unwrap());
    assert!(
        Store::open_existing(&Location::File(path.clone()))
            .unwrap()
            .is_some()
    );
}

// ---- history into the lifecycle walk ----

fn a_recorded_freeze_two_days_late_moves_the_deprovision_date(backend: Backend) {
    let program = acme();
    let hooli = program.customer("hooli").unwrap();
    let lifecycle = &program.lifecycle;

    // Computed alone: frozen on 2026-05-22, deprovisioned 90 days later, on 2026-08-20.
    let computed = walk(lifecycle, hooli, &History::default(), t("2026-08-21"));
    assert_eq!(computed.state, "deprovisioned");
    assert_eq!(computed.since, Some(t("2026-08-20")));

    let place = place(backend, "late-freeze");
    let state = Store::open(&place).unwrap();
    state
        .record_transition(&applied(
            "hooli",
            "freeze",
            "active",
            "frozen",
            "2026-05-24",
        ))
        .unwrap();
    let history = state.history("hooli").unwrap();

    let before = walk(lifecycle, hooli, &history, t("2026-08-21"));
    assert_eq!(before.state, "frozen");
    assert_eq!(before.since, Some(t("2026-05-24")));
    assert_eq!(before.fired[0].cause, Cause::Recorded);

    let after = walk(lifecycle, hooli, &history, t("2026-08-22"));
    assert_eq!(after.state, "deprovisioned");
    assert_eq!(after.since, Some(t("2026-08-22")));
}

fn a_requested_reactivation_makes_the_customer_active_at_the_request_time(backend: Backend) {
    let program = acme();
    let hooli = program.customer("hooli").unwrap();
    let lifecycle = &program.lifecycle;
    let place = place(backend, "reactivation");
    let state = Store::open(&place).unwrap();
    state
        .request_transition(&request("hooli", "reactivate", "2026-11-28T10:00:00Z"))
        .unwrap();
    let history = state.history("hooli").unwrap();

    let before = walk(lifecycle, hooli, &history, t("2026-11-28T09:59:59Z"));
    assert_eq!(before.state, "deprovisioned");

    let after = walk(lifecycle, hooli, &history, t("2026-11-29"));
    assert_eq!(after.state, "active");
    assert_eq!(after.since, Some(t("2026-11-28T10:00:00Z")));
    let last = after.fired.last().unwrap();
    assert_eq!(last.transition, "reactivate");
    assert_eq!(
        last.cause,
        Cause::Manual {
            requested: t("2026-11-28T10:00:00Z")
        }
    );
}

fn recording_the_transition_carries_out_the_request(backend: Backend) {
    let place = place(backend, "carried-out");
    let state = Store::open(&place).unwrap();
    let id = state
        .request_transition(&request("hooli", "reactivate", "2026-11-28T10:00:00Z"))
        .unwrap();
    let transition = state
        .record_transition(&applied(
            "hooli",
            "reactivate",
            "deprovisioned",
            "active",
            "2026-11-28T10:05:00Z",
        ))
        .unwrap();
    let history = state.history("hooli").unwrap();
    assert!(history.requests.is_empty(), "{history:?}");
    assert_eq!(history.transitions.len(), 1);
    let requests = state.requests("hooli").unwrap();
    assert_eq!(requests[0].id, id);
    assert_eq!(requests[0].applied_by, Some(transition));
    let hooli = state.customer("hooli").unwrap().unwrap();
    assert_eq!(hooli.state.as_deref(), Some("active"));
    assert_eq!(hooli.since, Some(t("2026-11-28T10:05:00Z")));
}

fn histories_give_every_customer_at_once_in_order(backend: Backend) {
    let place = place(backend, "histories");
    let state = Store::open(&place).unwrap();
    state
        .record_transition(&applied(
            "hooli",
            "deprovision",
            "frozen",
            "deprovisioned",
            "2026-08-22",
        ))
        .unwrap();
    state
        .record_transition(&applied(
            "hooli",
            "freeze",
            "active",
            "frozen",
            "2026-05-24",
        ))
        .unwrap();
    state
        .request_transition(&request("umbrella", "reactivate", "2026-10-01"))
        .unwrap();
    let all = state.histories().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all["hooli"], state.history("hooli").unwrap());
    let names: Vec<&str> = all["hooli"]
        .transitions
        .iter()
        .map(|e| e.transition.as_str())
        .collect();
    assert_eq!(names, ["freeze", "deprovision"]);
    // Recorded out of order, the current state is still the latest one.
    let hooli = state.customer("hooli").unwrap().unwrap();
    assert_eq!(hooli.state.as_deref(), Some("deprovisioned"));
    assert_eq!(all["umbrella"].requests.len(), 1);
}

// ---- the journal ----

fn a_step_records_its_intent_then_its_outcome(backend: Backend) {
    let place = place(backend, "journal");
    let state = Store::open(&place).unwrap();
    assert_eq!(
        state.begin_step(&step("p1", "license acme"), 100).unwrap(),
        1
    );
    let entry = state.step("p1", "license acme").unwrap().unwrap();
    assert_eq!(entry.intent_at, 100);
    assert_eq!(entry.outcome, None);
    assert_eq!(state.unfinished_steps("p1").unwrap(), [entry]);

    state
        .finish_step("p1", "license acme", &StepOutcome::Succeeded, 101)
        .unwrap();
    assert!(state.unfinished_steps("p1").unwrap().is_empty());
    state.begin_step(&step("p1", "owner acme"), 102).unwrap();
    state
        .finish_step(
            "p1",
            "owner acme",
            &StepOutcome::Failed("the organization `41` does not exist".to_owned()),
            103,
        )
        .unwrap();
    let journal = state.journal("p1").unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].outcome, Some(StepOutcome::Succeeded));
    assert_eq!(journal[0].finished_at, Some(101));
    assert_eq!(
        journal[1].outcome,
        Some(StepOutcome::Failed(
            "the organization `41` does not exist".to_owned()
        ))
    );
}

fn a_finished_step_is_never_begun_or_finished_again(backend: Backend) {
    let place = place(backend, "journal-finished");
    let state = Store::open(&place).unwrap();
    state.begin_step(&step("p1", "s1"), 100).unwrap();
    state
        .finish_step("p1", "s1", &StepOutcome::Succeeded, 101)
        .unwrap();
    assert!(matches!(
        state.begin_step(&step("p1", "s1"), 102),
        Err(StateError::StepFinished { .. })
    ));
    let error = state
        .finish_step("p1", "s1", &StepOutcome::Succeeded, 102)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "step `s1` of plan `p1` has already finished"
    );
    let error = state
        .finish_step("p1", "s2", &StepOutcome::Succeeded, 102)
        .unwrap_err();
    assert_eq!(error.to_string(), "step `s2` of plan `p1` was never begun");
    // The same step id in another plan is another step.
    assert_eq!(state.begin_step(&step("p2", "s1"), 103).unwrap(), 1);
}

fn steps_in_flight_at_a_crash_are_found_unfinished_on_reopening(backend: Backend) {
    let place = place(backend, "journal-crash");
    {
        let state = Store::open(&place).unwrap();
        state.begin_step(&step("p1", "s1"), 100).unwrap();
        state
            .finish_step("p1", "s1", &StepOutcome::Succeeded, 101)
            .unwrap();
        state.begin_step(&step("p1", "s2"), 102).unwrap();
        state.begin_step(&step("p1", "s3"), 102).unwrap();
        state
            .finish_step("p1", "s3", &StepOutcome::Succeeded, 103)
            .unwrap();
        // The runner dies here: the handle goes without `s2` finishing.
    }
    let state = Store::open(&place).unwrap();
    assert_eq!(state.unfinished_plans().unwrap(), ["p1"]);
    let unfinished = state.unfinished_steps("p1").unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].step, step("p1", "s2"));
    assert_eq!(unfinished[0].attempts, 1);
    // The resume begins it again: a second attempt, then it finishes.
    assert_eq!(state.begin_step(&step("p1", "s2"), 200).unwrap(), 2);
    let mut changed = step("p1", "s2");
    changed.kind = "create_user".to_owned();
    assert!(matches!(
        state.begin_step(&changed, 201),
        Err(StateError::StepChanged { .. })
    ));
    state
        .finish_step("p1", "s2", &StepOutcome::Succeeded, 201)
        .unwrap();
    assert!(state.unfinished_plans().unwrap().is_empty());
}

// ---- the instance ----

fn identity_of(url: &str, user: Option<(i64, &str)>) -> InstanceIdentity {
    InstanceIdentity {
        url: url.to_owned(),
        instance_id: None,
        user: user.map(|(id, email)| TokenUser {
            id,
            email: email.to_owned(),
        }),
    }
}

fn a_state_is_bound_on_first_use_and_refuses_another_instance(backend: Backend) {
    let place = place(backend, "bind");
    let state = Store::open(&place).unwrap();
    assert_eq!(state.instance().unwrap(), None);
    let here = InstanceIdentity {
        instance_id: Some("database 1".to_owned()),
        ..identity_of("https://a.example", None)
    };
    state.bind_instance(&here).unwrap();
    // The token's user, unknown at first, is filled in when known.
    let with_user = InstanceIdentity {
        instance_id: Some("database 1".to_owned()),
        ..identity_of("https://a.example", Some((7, "ops@a.example")))
    };
    state.bind_instance(&with_user).unwrap();
    assert_eq!(state.instance().unwrap(), Some(with_user.clone()));
    // The same user in another case is the same user.
    state
        .bind_instance(&InstanceIdentity {
            user: Some(TokenUser {
                id: 7,
                email: "OPS@a.example".to_owned(),
            }),
            ..with_user.clone()
        })
        .unwrap();
    for other in [
        InstanceIdentity {
            url: "https://b.example".to_owned(),
            ..with_user.clone()
        },
        InstanceIdentity {
            user: Some(TokenUser {
                id: 8,
                email: "ops@a.example".to_owned(),
            }),
            ..with_user.clone()
        },
        InstanceIdentity {
            instance_id: Some("another database".to_owned()),
            ..with_user.clone()
        },
    ] {
        let bound = state.instance().unwrap();
        match state.bind_instance(&other) {
            Err(StateError::OtherInstance { .. }) => {}
            result => panic!("{other:?} was not refused: {result:?} (bound to {bound:?})"),
        }
    }
}

// ---- the lock ----

/// Writes a lock row as a holder that is no longer here left it.
fn plant_lock(path: &Path, pid: u32, host: &str, heartbeat_at: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute(
        "UPDATE lock SET generation = generation + 1, pid = ?1, host = ?2, purpose = 'run',
             acquired_at = ?3, heartbeat_at = ?3, lease = 120
         WHERE id = 1",
        rusqlite::params![pid, host, heartbeat_at],
    )
    .unwrap();
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap()
        .trim()
        .to_owned()
}

fn a_second_runner_is_refused_while_the_first_holds_the_lock(backend: Backend) {
    let place = place(backend, "lock");
    let first = Store::open(&place).unwrap();
    let second = Store::open(&place).unwrap();
    let guard = first.acquire_lock("apply").unwrap();
    assert!(guard.replaced().is_none());
    guard.ensure_held().unwrap();

    let error = second.acquire_lock("run").unwrap_err();
    let StateError::Locked(holder) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.purpose, "apply");
    assert!(
        error.to_string().starts_with(&format!(
            "the state is locked by `apply` (process `{}`",
            std::process::id()
        )),
        "{error}"
    );

    drop(guard);
    assert_eq!(second.lock_holder().unwrap(), None);
    let guard = second.acquire_lock("run").unwrap();
    assert!(first.acquire_lock("apply").is_err());
    guard.release().unwrap();
    first.acquire_lock("apply").unwrap();
}

#[test]
fn a_lock_without_a_heartbeat_for_its_lease_is_taken_over() {
    let dir = scratch("lock-stale");
    let path = dir.join("state.db");
    let state = Store::open_file(&path).unwrap();

    // Another machine's runner, heard from a minute ago: still within its lease.
    plant_lock(&path, 4242, "elsewhere", now() - 60);
    assert!(matches!(
        state.acquire_lock("run"),
        Err(StateError::Locked(_))
    ));

    // Silent for an hour: it is presumed dead.
    plant_lock(&path, 4242, "elsewhere", now() - 3600);
    let guard = state.acquire_lock("run").unwrap();
    let replaced = guard.replaced().unwrap();
    assert_eq!((replaced.pid, replaced.host.as_str()), (4242, "elsewhere"));
    let holder = state.lock_holder().unwrap().unwrap();
    assert_eq!(holder.pid, std::process::id());
}

#[test]
fn a_lock_whose_process_is_gone_from_this_host_is_taken_over_at_once() {
    let dir = scratch("lock-dead");
    let path = dir.join("state.db");
    let state = Store::open_file(&path).unwrap();
    if !Path::new("/proc/self").exists() {
        // Without `/proc` only the lease tells a dead holder.
        return;
    }
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();

    plant_lock(&path, dead, &this_host(), now());
    let guard = state.acquire_lock("run").unwrap();
    assert_eq!(guard.replaced().unwrap().pid, dead);

    // A live process of this host (this one, through another handle) is not.
    let other = Store::open_file(&path).unwrap();
    assert!(matches!(
        other.acquire_lock("run"),
        Err(StateError::Locked(_))
    ));
}

#[test]
fn a_holder_that_was_taken_over_knows_and_leaves_its_successor_alone() {
    let dir = scratch("lock-lost");
    let path = dir.join("state.db");
    let state = Store::open_file(&path).unwrap();
    let guard = state.acquire_lock("run").unwrap();
    // Another runner took it over, judging this one dead.
    plant_lock(&path, 4242, "elsewhere", now());
    assert!(matches!(guard.ensure_held(), Err(StateError::LockLost)));
    drop(guard);
    let holder = state.lock_holder().unwrap().unwrap();
    assert_eq!(holder.host, "elsewhere");
}

#[test]
fn the_heartbeat_keeps_a_long_held_lock_fresh() {
    let dir = scratch("lock-heartbeat");
    let path = dir.join("state.db");
    let state = Store::open_file(&path).unwrap();
    let options = LockOptions {
        purpose: "apply".to_owned(),
        lease: Duration::from_secs(3),
        wait: Duration::ZERO,
    };
    let guard = state.acquire_lock_with(&options).unwrap();
    let acquired = state.lock_holder().unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(4_500));
    let holder = state.lock_holder().unwrap().unwrap();
    assert!(
        holder.heartbeat_at > acquired.heartbeat_at,
        "{acquired:?} {holder:?}"
    );
    // Longer than the lease since it was acquired, yet not stale.
    let other = Store::open_file(&path).unwrap();
    assert!(matches!(
        other.acquire_lock("run"),
        Err(StateError::Locked(_))
    ));
    guard.ensure_held().unwrap();
}

// ---- the command line ----

/// The binary, run by the user `ops` (the paths the tests give are absolute).
fn charter(args: &[&str]) -> Run {
    let mut command = common::charter_command(Path::new(env!("CARGO_MANIFEST_DIR")), args);
    command.env("USER", "ops");
    Run::of(command)
}

fn state_of(customer_json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(customer_json).unwrap();
    value["state"].as_str().unwrap().to_owned()
}

#[test]
fn transition_records_a_request_for_the_next_plan() {
    let dir = acme_copy("cli-transition");
    let policy = dir.to_str().unwrap();
    let run = charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-11-28",
    ])
    .code(0);
    assert_eq!(
        run.stdout,
        format!(
            "recorded: customer `hooli` (Hooli) requests `reactivate` (deprovisioned → active) at 2026-11-28, by `ops`\n\
             it is kept in `{}`; the next `charter plan` or `charter run` will carry it out\n",
            dir.join(".charter/state.db").display()
        )
    );
    let state = Store::open_file(&default_path(&dir)).unwrap();
    let requests = state.requests("hooli").unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].request,
        TransitionRequest {
            customer: "hooli".to_owned(),
            transition: "reactivate".to_owned(),
            at: t("2026-11-28"),
            by: Some("ops".to_owned()),
        }
    );
    assert_eq!(requests[0].applied_by, None);
}

#[test]
fn transition_refuses_an_unknown_customer_with_a_suggestion() {
    let dir = acme_copy("cli-unknown-customer");
    let run = charter(&["transition", dir.to_str().unwrap(), "hoolie", "reactivate"]).code(1);
    assert_eq!(
        run.stderr,
        "error: unknown customer `hoolie`\n  help: did you mean `hooli`?\n"
    );
    assert!(run.stdout.is_empty());
    assert!(!dir.join(".charter").exists());
}

#[test]
fn transition_refuses_an_unknown_transition_with_a_suggestion() {
    let dir = acme_copy("cli-unknown-transition");
    let policy = dir.to_str().unwrap();
    let run = charter(&["transition", policy, "hooli", "reactivat"]).code(1);
    assert_eq!(
        run.stderr,
        "error: unknown transition `reactivat`\n  help: did you mean `reactivate`?\n"
    );
    let run = charter(&["transition", policy, "hooli", "resurrect"]).code(1);
    assert_eq!(
        run.stderr,
        "error: unknown transition `resurrect`\n  help: the manual transition is `reactivate`\n"
    );
    assert!(!dir.join(".charter").exists());
}

#[test]
fn transition_refuses_one_that_is_not_manual() {
    let dir = acme_copy("cli-not-manual");
    let run = charter(&["transition", dir.to_str().unwrap(), "acme", "freeze"]).code(1);
    assert_eq!(
        run.stderr,
        "error: transition `freeze` is not manual: it fires `when contract_end + 7 days`\n  \
         help: charter carries it out on schedule; the manual transition is `reactivate`\n"
    );
    assert!(!dir.join(".charter").exists());
}

#[test]
fn transition_refuses_one_the_current_state_does_not_allow() {
    let dir = acme_copy("cli-not-allowed");
    let policy = dir.to_str().unwrap();
    let run = charter(&[
        "transition",
        policy,
        "acme",
        "reactivate",
        "--at",
        "2026-11-28",
    ])
    .code(1);
    assert_eq!(
        run.stderr,
        "error: transition `reactivate` is not allowed from `active`, the state customer `acme` is in at 2026-11-28\n  \
         help: `reactivate` goes from `frozen`, `deprovisioned`; no manual transition is allowed from `active`\n"
    );
    assert!(!dir.join(".charter").exists());

    // Once hooli's reactivation is recorded, asking again is refused: it is active already.
    charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-11-28",
    ])
    .code(0);
    let run = charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-11-29",
    ])
    .code(1);
    assert!(
        run.stderr.starts_with(
            "error: transition `reactivate` is not allowed from `active`, the state customer `hooli` is in at 2026-11-29 (since 2026-11-28)\n"
        ),
        "{}",
        run.stderr
    );
    let state = Store::open_file(&default_path(&dir)).unwrap();
    assert_eq!(state.requests("hooli").unwrap().len(), 1);
}

#[test]
fn compile_and_explain_carry_out_a_recorded_request() {
    let dir = acme_copy("cli-compile");
    let policy = dir.to_str().unwrap();
    let at = "2026-11-28T12:00:00Z";
    let before = charter(&["compile", policy, "--customer", "hooli", "--at", at]).code(0);
    assert_eq!(state_of(&before.stdout), "deprovisioned");
    // Reading never creates the state.
    assert!(!dir.join(".charter").exists());

    charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-11-28",
    ])
    .code(0);

    let after = charter(&["compile", policy, "--customer", "hooli", "--at", at]).code(0);
    let value: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(value["state"], "active");
    assert_eq!(value["since"], "2026-11-28");
    assert_eq!(value["owner"], "gavin@hooli.example");
    // Before the request's instant, nothing changes.
    let earlier = charter(&[
        "compile",
        policy,
        "--customer",
        "hooli",
        "--at",
        "2026-11-27",
    ])
    .code(0);
    assert_eq!(state_of(&earlier.stdout), "deprovisioned");

    let all = charter(&["compile", policy, "--customers", "--at", at]).code(0);
    let hooli = all
        .stdout
        .lines()
        .find(|line| line.contains("\"customer\":\"hooli\""))
        .unwrap();
    assert_eq!(state_of(hooli), "active");

    let explain = charter(&["explain", policy, "--customer", "hooli", "--at", at]).code(0);
    assert!(
        explain.stdout.contains(
            "2026-11-28 `reactivate` deprovisioned → active: manual, requested at 2026-11-28"
        ),
        "{}",
        explain.stdout
    );
}

#[test]
fn the_state_option_names_another_database() {
    let dir = acme_copy("cli-state-option");
    let policy = dir.to_str().unwrap();
    let elsewhere = dir.join("elsewhere.db");
    let file = elsewhere.to_str().unwrap();
    let at = "2026-11-28T12:00:00Z";
    charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-11-28",
        "--state",
        file,
    ])
    .code(0);
    assert!(elsewhere.exists());
    assert!(!dir.join(".charter").exists());
    let with = charter(&[
        "compile",
        policy,
        "--customer",
        "hooli",
        "--at",
        at,
        "--state",
        file,
    ])
    .code(0);
    assert_eq!(state_of(&with.stdout), "active");
    let without = charter(&["compile", policy, "--customer", "hooli", "--at", at]).code(0);
    assert_eq!(state_of(&without.stdout), "deprovisioned");
}

#[test]
fn schedule_leaves_recorded_transitions_out_of_what_is_due() {
    let dir = acme_copy("cli-schedule");
    let policy = dir.to_str().unwrap();
    let umbrella = |run: &Run| -> serde_json::Value {
        let all: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .find(|e| e["customer"] == "umbrella")
            .unwrap()
            .clone()
    };
    let args = ["schedule", policy, "--at", "2026-11-28", "--format", "json"];
    let before = umbrella(&charter(&args).code(0));
    assert_eq!(before["due"][0]["transition"], "freeze");

    let state = Store::open_file(&default_path(&dir)).unwrap();
    state
        .record_transition(&applied(
            "umbrella",
            "freeze",
            "active",
            "frozen",
            "2026-09-09",
        ))
        .unwrap();
    let after = umbrella(&charter(&args).code(0));
    assert_eq!(after["due"], serde_json::json!([]));
    assert_eq!(after["state"], "frozen");
    assert_eq!(after["since"], "2026-09-09");
    // Ninety days from when it was really frozen.
    assert_eq!(after["upcoming"][0]["transition"], "deprovision");
    assert_eq!(after["upcoming"][0]["at"], "2026-12-08");
}

#[test]
fn a_broken_state_database_fails_the_command() {
    let dir = acme_copy("cli-broken");
    let policy = dir.to_str().unwrap();
    let path = default_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "not a database at all\n".repeat(100)).unwrap();
    let run = charter(&[
        "compile",
        policy,
        "--customer",
        "hooli",
        "--at",
        "2026-11-28",
    ])
    .code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: `{}` is not a charter state database: file is not a database\n",
            path.display()
        )
    );
    let run = charter(&["transition", policy, "hooli", "reactivate"]).code(1);
    assert!(
        run.stderr.contains("is not a charter state database"),
        "{}",
        run.stderr
    );
}

#[test]
fn charter_test_ignores_the_state() {
    let dir = acme_copy("cli-test");
    let policy = dir.to_str().unwrap();
    std::fs::write(
        dir.join("hooli.charter"),
        "test \"hooli stays deprovisioned without a request\" {\n  at 2026-12-01\n  \
         expect customer hooli: state == deprovisioned\n}\n",
    )
    .unwrap();
    charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-11-28",
    ])
    .code(0);
    // Tests are about the policy: the request recorded for the instance changes nothing.
    let run = charter(&["test", policy]).code(0);
    assert!(
        run.stdout
            .contains("test hooli stays deprovisioned without a request ... ok"),
        "{}",
        run.stdout
    );
}

#[test]
fn transition_refuses_a_request_from_before_a_recorded_transition() {
    let dir = acme_copy("cli-backdated");
    let policy = dir.to_str().unwrap();
    let state = Store::open_file(&default_path(&dir)).unwrap();
    state
        .record_transition(&applied(
            "hooli",
            "deprovision",
            "frozen",
            "deprovisioned",
            "2026-08-22",
        ))
        .unwrap();
    // At 2026-08-01 hooli was frozen, from where `reactivate` is allowed; but the walk replays
    // the recorded deprovisioning first, so a request from then would never be carried out.
    let run = charter(&[
        "transition",
        policy,
        "hooli",
        "reactivate",
        "--at",
        "2026-08-01",
    ])
    .code(1);
    assert_eq!(
        run.stderr,
        "error: customer `hooli` has a transition recorded after 2026-08-01: `deprovision` at 2026-08-22\n  \
         help: request it at 2026-08-22 or later\n"
    );
    assert!(state.requests("hooli").unwrap().is_empty());
}

fn intents_begun_together_are_recorded_all_or_none(backend: Backend) {
    let place = place(backend, "journal-batch");
    let state = Store::open(&place).unwrap();
    let attempts = state
        .begin_steps(&[step("p", "a"), step("p", "b"), step("p", "c")], 10)
        .unwrap();
    assert_eq!(attempts, [1, 1, 1]);
    state
        .finish_step("p", "a", &StepOutcome::Succeeded, 11)
        .unwrap();
    // `a` is finished: a batch naming it is refused whole, and `d` is not recorded either.
    let error = state
        .begin_steps(&[step("p", "d"), step("p", "a")], 12)
        .unwrap_err();
    assert!(
        matches!(error, StateError::StepFinished { .. }),
        "{error:?}"
    );
    assert!(state.step("p", "d").unwrap().is_none());
    // A resumed batch counts another attempt for what was in flight.
    assert_eq!(state.begin_steps(&[step("p", "b")], 13).unwrap(), [2]);
    let unfinished: Vec<String> = state
        .unfinished_steps("p")
        .unwrap()
        .into_iter()
        .map(|e| e.step.id)
        .collect();
    assert_eq!(unfinished, ["b", "c"]);
    // An outcome survives reopening (it was committed, if not synced on its own).
    state
        .finish_step("p", "b", &StepOutcome::Failed("refused".into()), 14)
        .unwrap();
    drop(state);
    let state = Store::open(&place).unwrap();
    assert_eq!(
        state.step("p", "b").unwrap().unwrap().outcome,
        Some(StepOutcome::Failed("refused".into()))
    );
}

#[test]
fn a_database_of_another_application_or_of_a_newer_charter_is_refused_untouched() {
    let foreign = common::postgres::database("foreign");
    let name = foreign.rsplit('/').next().unwrap();
    common::postgres::admin_in(name, "CREATE TABLE invoices (id BIGINT)");
    let location = Location::parse(&foreign, Path::new("")).unwrap();
    let error = Store::open(&location).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{foreign}` is not a charter state database: it holds another application's data \
             (tables without charter's)"
        )
    );

    let newer = common::postgres::database("newer");
    let location = Location::parse(&newer, Path::new("")).unwrap();
    drop(Store::open(&location).unwrap());
    let name = newer.rsplit('/').next().unwrap();
    common::postgres::admin_in(name, "UPDATE charter_schema SET version = 99");
    let error = Store::open(&location).unwrap_err();
    assert!(
        matches!(error, StateError::Newer { version: 99, .. }),
        "{error:?}"
    );
}
