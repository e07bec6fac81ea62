//! The state database's schema, built by its migrations in order.
//!
//! A new database runs every migration from the first, so the path an old database takes to
//! the current schema is the path every new database takes too: it cannot rot unseen.
//! `PRAGMA user_version` holds the number of migrations applied; `PRAGMA application_id`
//! marks the file as charter's state, so that any other SQLite file is refused untouched.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::StateError;

/// `chst` in ASCII: the `application_id` of a charter state database.
pub const APPLICATION_ID: i32 = 0x6368_7374;

/// Migration `i` brings the schema from version `i` to version `i + 1`. A released migration is
/// never edited: a change to the schema is a new migration appended here.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: what charter knows about each customer, and its lifecycle history.
    "
    -- One row per customer charter has recorded anything about.
    CREATE TABLE customers (
        key TEXT PRIMARY KEY,
        -- The organization's id on the instance; NULL until it is created (or imported).
        organization_id INTEGER UNIQUE,
        -- The lifecycle state the last recorded transition led to, and since when (seconds
        -- since the Unix epoch); both NULL while no transition has been recorded.
        state TEXT,
        since INTEGER
    ) STRICT;

    -- Make's users are instance-wide: one id per e-mail address, whichever customers the
    -- person belongs to. `email_key` is the address in lowercase, as Make compares them.
    CREATE TABLE users (
        email_key TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        user_id INTEGER NOT NULL
    ) STRICT;

    -- Lifecycle transitions that really happened: the source of `History.transitions`.
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        customer TEXT NOT NULL REFERENCES customers(key),
        transition TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        -- When it took effect on the instance.
        at INTEGER NOT NULL,
        -- The plan that carried it out, when one did.
        plan TEXT
    ) STRICT;
    CREATE INDEX transitions_by_customer ON transitions(customer, at, id);

    -- Manual transitions requested (`charter transition`): the source of `History.requests`.
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        customer TEXT NOT NULL REFERENCES customers(key),
        transition TEXT NOT NULL,
        -- The instant the request is for.
        requested_at INTEGER NOT NULL,
        -- Who asked, when known.
        requested_by TEXT,
        -- The recorded transition that carried it out; NULL while it is pending.
        applied_by INTEGER REFERENCES transitions(id)
    ) STRICT;
    CREATE INDEX requests_by_customer ON requests(customer, requested_at, id);
    ",
    // Version 2: what the executor needs to act safely: the journal of plan steps and the
    // lock that keeps two runners from acting on one state at once.
    "
    -- One row per step of a plan that was started: the intent is written (and synced) before
    -- the call, the outcome after it. A row whose outcome is NULL was in flight when the
    -- runner stopped.
    CREATE TABLE journal (
        -- The order steps were begun in.
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        plan TEXT NOT NULL,
        step TEXT NOT NULL,
        -- What the call does (`create_user`, `set_license`, …) and what it acts on.
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        intent_at INTEGER NOT NULL,
        -- How many times the step was begun: more than one after a resume.
        attempts INTEGER NOT NULL DEFAULT 1,
        -- `succeeded` or `failed`; NULL while in flight.
        outcome TEXT CHECK (outcome IN ('succeeded', 'failed')),
        error TEXT,
        finished_at INTEGER,
        UNIQUE (plan, step)
    ) STRICT;
    CREATE INDEX journal_unfinished ON journal(plan) WHERE outcome IS NULL;

    -- At most one row. `generation` grows with every acquisition, so a holder whose lock was
    -- taken over (as stale) can tell, and never releases its successor's.
    CREATE TABLE lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL,
        -- NULL when nobody holds it.
        pid INTEGER,
        host TEXT,
        purpose TEXT,
        acquired_at INTEGER,
        heartbeat_at INTEGER,
        -- Seconds without a heartbeat after which the holder is presumed dead.
        lease INTEGER
    ) STRICT;
    INSERT INTO lock (id, generation) VALUES (1, 0);
    ",
    // Version 3: what charter last applied to each organization and staff member, as JSON,
    // so that a plan can tell a value changed by hand (drift) from a policy change.
    "
    CREATE TABLE applied (
        -- `customer:KEY` or `staff:ADDRESS`.
        key TEXT PRIMARY KEY,
        snapshot TEXT NOT NULL,
        -- The plan that applied it, and when.
        plan TEXT NOT NULL,
        at INTEGER NOT NULL
    ) STRICT;
    ",
    // Version 4: the instance the state belongs to. A state made before it has no row and is
    // bound on its next use against an instance; once bound, any other instance is refused.
    "
    CREATE TABLE instance (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        -- The instance's address (`embedded sandbox` for the embedded one).
        url TEXT NOT NULL,
        -- Something of the instance as a whole, when it has one charter can read (the
        -- embedded sandbox's database id); NULL otherwise.
        instance_id TEXT,
        -- The token's own user (`GET /users/me`), when the instance answers.
        user_id INTEGER,
        user_email TEXT
    ) STRICT;
    ",
    // Version 5: each organization's people as last read, and when, so that a plan reads
    // memberships back only where it matters. A state made before it remembers nothing: its
    // next plan verifies every organization once.
    "
    CREATE TABLE verified (
        -- The organization's id on the instance, in decimal.
        organization TEXT PRIMARY KEY,
        -- JSON: `{members: [{user_id, role_id, role}], teams: {TEAM_ID: [...]}}`.
        memberships TEXT NOT NULL,
        -- When they were read from the instance (seconds since the Unix epoch).
        verified_at INTEGER NOT NULL
    );
    ",
];

/// The schema version this charter writes: the number of migrations.
pub fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Brings the database up to the current schema in one immediate transaction, or refuses a
/// file that is not charter's state (another application's, or a newer charter's).
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let application: i32 = tx.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
    let fresh = application == 0 && version == 0 && objects == 0;
    if !fresh && application != APPLICATION_ID {
        return Err(StateError::NotState {
            path: path.to_owned(),
            reason: "it holds another application's data".to_owned(),
        });
    }
    let current = current_version();
    if version < 0 {
        return Err(StateError::NotState {
            path: path.to_owned(),
            reason: format!("its schema version `{version}` is not one charter writes"),
        });
    }
    if version > current {
        return Err(StateError::Newer {
            path: path.to_owned(),
            version,
            known: current,
        });
    }
    if fresh {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    for (reached, sql) in (1..)
        .zip(MIGRATIONS)
        .skip_while(|(reached, _)| *reached <= version)
    {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", reached)?;
    }
    tx.commit()?;
    Ok(())
}
