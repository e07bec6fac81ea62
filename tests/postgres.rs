//! charter's state in PostgreSQL, end to end: the commands on a state that lives in a real
//! PostgreSQL server (started by the tests, `common::postgres`), shared by folders and
//! processes — the history survives the folder, two applies take turns, two schedulers fail
//! over, a state moves between backends and back unchanged, and the password is never shown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use charter::state::{Location, Store};

mod common;

use common::postgres::{PASSWORD, PASSWORD_USER, database, with_password_user};

fn acme_copy(name: &str) -> std::path::PathBuf {
    common::acme_copy("postgres", name)
}

fn charter(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    common::charter(dir, args, env)
}

fn store(url: &str) -> Store {
    Store::open(&Location::parse(url, Path::new("")).unwrap()).unwrap()
}

#[test]
fn a_state_opened_twice_keeps_what_was_recorded() {
    let url = database("reopen");
    let state = store(&url);
    state.set_organization("acme", 12).unwrap();
    state.set_user("Jane@Acme.example", 5).unwrap();
    drop(state);
    let again = store(&url);
    assert_eq!(again.organization("acme").unwrap(), Some(12));
    assert_eq!(again.user("jane@acme.example").unwrap(), Some(5));
    assert_eq!(
        again.schema_version().unwrap(),
        charter::state::schema::current_version()
    );
}
