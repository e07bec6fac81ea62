//! charter's own state: what Make cannot store — which organization and users belong to each
//! customer, the lifecycle transitions that really happened, the manual transitions requested —
//! and what the executor needs to act safely: the journal of plan steps and the runner's lock.
//!
//! One interface, [`Store`], over two backends with the same behaviour: a SQLite file
//! (`.charter/state.db` beside the policy set by default; `sqlite.rs`) or a PostgreSQL database
//! named by a `postgres://` URL (`postgres.rs`), for teams and CI whose runners are thrown away.
//! Every query is written once for both (`sql.rs`); the schema once per dialect (`schema.rs`).
//!
//! Every write runs in one transaction that excludes other writers, and returns once it is
//! durable — except a journal outcome, committed without its own sync and made durable by the
//! next synced write (see `journal.rs`): the journal's "intent before the call" holds across a
//! crash or a power cut, and an outcome lost to a power cut leaves its step looking in flight.
//! Time is always a parameter (seconds since the Unix epoch), except for the lock's heartbeat,
//! which is about the wall clock by nature. The API token is never stored here, and a
//! database password is never shown.

mod applied;
mod copy;
mod instance;
mod journal;
mod location;
mod lock;
mod postgres;
mod rounds;
pub mod schema;
mod sql;
mod sqlite;
mod verified;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::compile::customer::{Event, History};

pub use copy::{Contents, copy};
pub use instance::{InstanceIdentity, InstanceLock, TokenUser};
pub use journal::{JournalEntry, StepIntent, StepOutcome};
pub use location::{Location, Password, PostgresTarget, UrlError, is_postgres_url};
pub use lock::{DEFAULT_WAIT, LockGuard, LockHolder, LockOptions};
pub use rounds::RoundStart;
pub use sql::{Row, Value};

use sql::{Sql, params};

/// Where the state lives when nothing else is said: `.charter/state.db` in the policy set's
/// folder (the folder itself when `policy` is a directory, the file's folder otherwise).
pub fn default_path(policy: &Path) -> PathBuf {
    let folder = if policy.is_dir() {
        policy
    } else {
        policy.parent().unwrap_or(Path::new(""))
    };
    folder.join(".charter").join("state.db")
}

/// An error of the database itself, as its client words it.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    #[error("{}", location::postgres_reason(.0))]
    Postgres(::postgres::Error),
}

/// Why the state could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the folder `{path}` for the state database: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error("cannot open the state database `{path}`: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("cannot connect to the state database `{location}`: {reason}")]
    Connect { location: String, reason: String },
    #[error("`{location}` is not a charter state database: {reason}")]
    NotState { location: String, reason: String },
    #[error(
        "`{location}` was written by a newer charter: its schema version is `{version}`, this charter knows up to `{known}`"
    )]
    Newer {
        location: String,
        version: i64,
        known: i64,
    },
    #[error("state database error: {0}")]
    Database(#[from] DatabaseError),
    #[error("the state holds a value charter cannot read: {what}")]
    Malformed { what: String },
    #[error("cannot record what was applied to `{key}`: {reason}")]
    Snapshot { key: String, reason: String },
    #[error("organization `{organization}` already belongs to customer `{customer}`")]
    OrganizationTaken { organization: i64, customer: String },
    #[error("{}", lock::describe_locked(.0))]
    Locked(LockHolder),
    #[error("gave up waiting for the state's lock after {}: {}", crate::model::license::human_duration(*.waited), lock::describe_locked(.holder))]
    LockTimeout { holder: LockHolder, waited: i64 },
    #[error("this runner's lock on the state was taken over by another runner")]
    LockLost,
    #[error(
        "the state `{location}` belongs to another instance: it was made against {}, not {}",
        bound.describe(),
        here.describe()
    )]
    OtherInstance {
        location: String,
        bound: Box<InstanceIdentity>,
        here: Box<InstanceIdentity>,
    },
    #[error(
        "another runner of this machine is applying to `{instance}`{}",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    InstanceLocked {
        instance: String,
        holder: Option<String>,
        path: PathBuf,
    },
    #[error("the state database `{path}` was deleted or replaced while charter was using it")]
    Gone { path: PathBuf },
    #[error("step `{step}` of plan `{plan}` has already finished")]
    StepFinished { plan: String, step: String },
    #[error("step `{step}` of plan `{plan}` was never begun")]
    StepNotBegun { plan: String, step: String },
    #[error("step `{step}` of plan `{plan}` was begun as `{was}`, not `{now}`")]
    StepChanged {
        plan: String,
        step: String,
        was: String,
        now: String,
    },
    #[error("the state `{location}` is not empty: it holds {what}")]
    NotEmpty { location: String, what: String },
}

impl StateError {
    /// What to do about it, when there is something to say.
    pub fn help(&self) -> Option<String> {
        match self {
            StateError::OtherInstance { .. } => Some(
                "its links name organizations of that instance, which here are other companies': \
                 to manage this instance, give another state (`--state FILE` or `--state \
                 postgres://…`, or `[state]` in `charter.toml`) and link its organizations with \
                 `charter import --state …`; or point charter back at the instance the state \
                 belongs to"
                    .to_owned(),
            ),
            StateError::InstanceLocked { .. } => Some(
                "two policy sets applying at once could create the same organizations twice: \
                 wait for the other runner to finish, then run again"
                    .to_owned(),
            ),
            StateError::Gone { .. } => Some(
                "what this run did after that point is not recorded anywhere: restore the state \
                 file if you can, otherwise link the organizations again with `charter import`, \
                 then plan again"
                    .to_owned(),
            ),
            StateError::Locked(_) => Some(
                "wait for it to finish; a runner that died is taken over once its heartbeat is \
                 older than its lease"
                    .to_owned(),
            ),
            StateError::LockTimeout { .. } => Some(
                "run again once it has finished, or wait longer with `--lock-timeout`".to_owned(),
            ),
            StateError::NotEmpty { .. } => {
                Some("copy into an empty state, or replace what it holds with `--force`".to_owned())
            }
            StateError::Connect { .. } => Some(
                "the password is read from `PGPASSWORD`, the variable named by `password_env` in \
                 `[state]` of `charter.toml`, or a `.pgpass` file; TLS is asked for with \
                 `?sslmode=require`"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// What the state knows about one customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRecord {
    pub key: String,
    /// The organization's id on the instance, once created or imported.
    pub organization_id: Option<i64>,
    /// The lifecycle state the last recorded transition led to; `None` before any.
    pub state: Option<String>,
    /// When the customer entered `state`.
    pub since: Option<i64>,
}

/// A lifecycle transition that really happened on the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedTransition {
    pub customer: String,
    pub transition: String,
    pub from: String,
    pub to: String,
    /// When it took effect.
    pub at: i64,
    /// The plan that carried it out, when one did.
    pub plan: Option<String>,
}

/// A manual transition to carry out (what `charter transition` records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionRequest {
    pub customer: String,
    pub transition: String,
    /// The instant the request is for.
    pub at: i64,
    /// Who asked, when known.
    pub by: Option<String>,
}

/// A recorded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: i64,
    pub request: TransitionRequest,
    /// The recorded transition that carried it out; `None` while it is pending.
    pub applied_by: Option<i64>,
}

/// An open state: charter's state database, on either backend.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
    location: Location,
}

#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::Database),
    Postgres(postgres::Database),
}

impl Store {
    /// Opens the state at `location`, creating it when missing (the folder and the file, or the
    /// tables in the database), and brings its schema up to date.
    pub fn open(location: &Location) -> Result<Store, StateError> {
        let backend = match location {
            Location::File(path) => Backend::Sqlite(sqlite::Database::open(path)?),
            Location::Postgres(target) => Backend::Postgres(postgres::Database::open(target)?),
        };
        Ok(Store {
            backend,
            location: location.clone(),
        })
    }

    /// Opens the SQLite state at `path` (see [`Store::open`]).
    pub fn open_file(path: &Path) -> Result<Store, StateError> {
        Store::open(&Location::File(path.to_owned()))
    }

    /// Opens the state if it exists; `None` (and nothing created) when it is a file that does
    /// not exist. A database is always opened.
    pub fn open_existing(location: &Location) -> Result<Option<Store>, StateError> {
        match location {
            Location::File(path) if !path.exists() => Ok(None),
            _ => Store::open(location).map(Some),
        }
    }

    /// Where the state is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The database file, for a SQLite state.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// The state's place as messages show it (a URL without its password).
    pub fn shown(&self) -> String {
        match &self.backend {
            Backend::Sqlite(db) => db.path().display().to_string(),
            Backend::Postgres(db) => db.shown().to_owned(),
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StateError> {
        match &self.backend {
            Backend::Sqlite(db) => db.schema_version(),
            Backend::Postgres(db) => db.schema_version(),
        }
    }

    /// Runs `work` in one write transaction (see the module documentation), durable when it
    /// returns.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(true, work),
            Backend::Postgres(db) => db.write(true, work),
        }
    }

    /// Runs `work` in one write transaction committed without a sync of its own: it survives
    /// charter being killed, and the next durable write takes it to the disk.
    fn write_unsynced<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(false, work),
            Backend::Postgres(db) => db.write(false, work),
        }
    }

    /// Runs `work` in one read transaction: one moment of the state.
    fn read<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(work),
            Backend::Postgres(db) => db.read(work),
        }
    }

    /// Errs when the state file was deleted or replaced since it was opened (a database has
    /// no such failure: its connection fails instead).
    pub fn ensure_present(&self) -> Result<(), StateError> {
        match &self.backend {
            Backend::Sqlite(db) => db.ensure_present(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// A customer's recorded history, as the lifecycle walk reads it: every recorded transition
    /// and the requests still pending, oldest first.
    pub fn history(&self, customer: &str) -> Result<History, StateError> {
        self.read(|sql| {
            let transitions = sql
                .query(
                    "SELECT transition, at FROM transitions WHERE customer = ?1 ORDER BY at, id",
                    params![customer],
                )?
                .iter()
                .map(event)
                .collect::<Result<Vec<_>, _>>()?;
            let requests = sql
                .query(
                    "SELECT transition, requested_at FROM requests
                     WHERE customer = ?1 AND applied_by IS NULL ORDER BY requested_at, id",
                    params![customer],
                )?
                .iter()
                .map(event)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(History {
                transitions,
                requests,
            })
        })
    }

    /// Every customer's history at once (for rosters, where one query per customer would be
    /// slow). Customers with nothing recorded are absent.
    pub fn histories(&self) -> Result<BTreeMap<String, History>, StateError> {
        self.read(histories)
    }

    /// What the state knows about a customer.
    pub fn customer(&self, key: &str) -> Result<Option<CustomerRecord>, StateError> {
        self.read(|sql| {
            sql.query_opt(
                "SELECT key, organization_id, state, since FROM customers WHERE key = ?1",
                params![key],
            )?
            .as_ref()
            .map(customer_record)
            .transpose()
        })
    }

    /// Every customer the state knows about, by key.
    pub fn customers(&self) -> Result<Vec<CustomerRecord>, StateError> {
        self.read(customers)
    }

    /// Records that a customer's organization has this id on the instance.
    pub fn set_organization(&self, customer: &str, organization: i64) -> Result<(), StateError> {
        self.write(|sql| link_organization(sql, customer, organization))
    }

    /// The id of a customer's organization, once known.
    pub fn organization(&self, customer: &str) -> Result<Option<i64>, StateError> {
        Ok(self.customer(customer)?.and_then(|c| c.organization_id))
    }

    /// Records the instance's user id for an e-mail address (compared without case).
    pub fn set_user(&self, email: &str, user: i64) -> Result<(), StateError> {
        self.write(|sql| {
            sql.execute(
                "INSERT INTO users (email_key, email, user_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (email_key) DO UPDATE SET email = ?2, user_id = ?3",
                params![email.to_lowercase(), email, user],
            )?;
            Ok(())
        })
    }

    /// The instance's user id for an e-mail address, once known.
    pub fn user(&self, email: &str) -> Result<Option<i64>, StateError> {
        self.read(|sql| {
            sql.query_opt(
                "SELECT user_id FROM users WHERE email_key = ?1",
                params![email.to_lowercase()],
            )?
            .map(|row| row.int(0))
            .transpose()
        })
    }

    /// Every known user id, by e-mail address as last recorded.
    pub fn users(&self) -> Result<BTreeMap<String, i64>, StateError> {
        self.read(|sql| {
            sql.query("SELECT email, user_id FROM users", &[])?
                .iter()
                .map(|row| Ok((row.text(0)?, row.int(1)?)))
                .collect()
        })
    }

    /// Records a transition that really happened, in one transaction with its consequences:
    /// the customer's current state (when this is its latest transition) and the pending
    /// requests for it made up to then, which it carried out. Returns the record's id.
    pub fn record_transition(&self, applied: &AppliedTransition) -> Result<i64, StateError> {
        self.write(|sql| {
            ensure_customer(sql, &applied.customer)?;
            insert_transition(sql, applied)
        })
    }

    /// A customer's recorded transitions, oldest first.
    pub fn transitions(&self, customer: &str) -> Result<Vec<AppliedTransition>, StateError> {
        self.read(|sql| {
            sql.query(
                "SELECT customer, transition, from_state, to_state, at, plan FROM transitions
                 WHERE customer = ?1 ORDER BY at, id",
                params![customer],
            )?
            .iter()
            .map(|row| {
                Ok(AppliedTransition {
                    customer: row.text(0)?,
                    transition: row.text(1)?,
                    from: row.text(2)?,
                    to: row.text(3)?,
                    at: row.int(4)?,
                    plan: row.opt_text(5)?,
                })
            })
            .collect()
        })
    }

    /// Records a manual transition request; returns its id. The lifecycle decides nothing
    /// here: the caller has checked that the request makes sense.
    pub fn request_transition(&self, request: &TransitionRequest) -> Result<i64, StateError> {
        self.write(|sql| {
            ensure_customer(sql, &request.customer)?;
            sql.query_one(
                "INSERT INTO requests (customer, transition, requested_at, requested_by)
                 VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![
                    &request.customer,
                    &request.transition,
                    request.at,
                    request.by.as_deref()
                ],
            )?
            .int(0)
        })
    }

    /// A customer's requests, pending and carried out, oldest first.
    pub fn requests(&self, customer: &str) -> Result<Vec<Request>, StateError> {
        self.read(|sql| {
            sql.query(
                "SELECT id, customer, transition, requested_at, requested_by, applied_by
                 FROM requests WHERE customer = ?1 ORDER BY requested_at, id",
                params![customer],
            )?
            .iter()
            .map(|row| {
                Ok(Request {
                    id: row.int(0)?,
                    request: TransitionRequest {
                        customer: row.text(1)?,
                        transition: row.text(2)?,
                        at: row.int(3)?,
                        by: row.opt_text(4)?,
                    },
                    applied_by: row.opt_int(5)?,
                })
            })
            .collect()
        })
    }
}

fn histories(sql: &mut dyn Sql) -> Result<BTreeMap<String, History>, StateError> {
    let mut all: BTreeMap<String, History> = BTreeMap::new();
    for row in sql.query(
        "SELECT customer, transition, at FROM transitions ORDER BY customer, at, id",
        &[],
    )? {
        all.entry(row.text(0)?)
            .or_default()
            .transitions
            .push(Event {
                transition: row.text(1)?,
                at: row.int(2)?,
            });
    }
    for row in sql.query(
        "SELECT customer, transition, requested_at FROM requests
         WHERE applied_by IS NULL ORDER BY customer, requested_at, id",
        &[],
    )? {
        all.entry(row.text(0)?).or_default().requests.push(Event {
            transition: row.text(1)?,
            at: row.int(2)?,
        });
    }
    Ok(all)
}

fn customers(sql: &mut dyn Sql) -> Result<Vec<CustomerRecord>, StateError> {
    sql.query(
        "SELECT key, organization_id, state, since FROM customers ORDER BY key",
        &[],
    )?
    .iter()
    .map(customer_record)
    .collect()
}

/// Links a customer to an organization, refusing one linked to another customer.
fn link_organization(
    sql: &mut dyn Sql,
    customer: &str,
    organization: i64,
) -> Result<(), StateError> {
    let holder = sql.query_opt(
        "SELECT key FROM customers WHERE organization_id = ?1 AND key <> ?2",
        params![organization, customer],
    )?;
    if let Some(holder) = holder {
        return Err(StateError::OrganizationTaken {
            organization,
            customer: holder.text(0)?,
        });
    }
    ensure_customer(sql, customer)?;
    sql.execute(
        "UPDATE customers SET organization_id = ?2 WHERE key = ?1",
        params![customer, organization],
    )?;
    Ok(())
}

/// Records a transition with its consequences (see [`Store::record_transition`]); the
/// customer exists.
fn insert_transition(sql: &mut dyn Sql, applied: &AppliedTransition) -> Result<i64, StateError> {
    let id = sql
        .query_one(
            "INSERT INTO transitions (customer, transition, from_state, to_state, at, plan)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![
                &applied.customer,
                &applied.transition,
                &applied.from,
                &applied.to,
                applied.at,
                applied.plan.as_deref()
            ],
        )?
        .int(0)?;
    sql.execute(
        "UPDATE customers SET state = ?2, since = ?3
         WHERE key = ?1 AND (since IS NULL OR since <= ?3)",
        params![&applied.customer, &applied.to, applied.at],
    )?;
    sql.execute(
        "UPDATE requests SET applied_by = ?4
         WHERE customer = ?1 AND transition = ?2 AND requested_at <= ?3
           AND applied_by IS NULL",
        params![&applied.customer, &applied.transition, applied.at, id],
    )?;
    Ok(id)
}

fn ensure_customer(sql: &mut dyn Sql, key: &str) -> Result<(), StateError> {
    sql.execute(
        "INSERT INTO customers (key) VALUES (?1) ON CONFLICT (key) DO NOTHING",
        params![key],
    )?;
    Ok(())
}

fn event(row: &Row) -> Result<Event, StateError> {
    Ok(Event {
        transition: row.text(0)?,
        at: row.int(1)?,
    })
}

fn customer_record(row: &Row) -> Result<CustomerRecord, StateError> {
    Ok(CustomerRecord {
        key: row.text(0)?,
        organization_id: row.opt_int(1)?,
        state: row.opt_text(2)?,
        since: row.opt_int(3)?,
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The journal's promise rests on these settings of every SQLite connection.
    #[test]
    fn every_connection_is_durable_and_checks_references() {
        let dir = std::env::temp_dir().join(format!("charter-state-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = Store::open_file(&dir.join("state.db")).unwrap();
        let Backend::Sqlite(db) = &state.backend else {
            unreachable!("a file is SQLite")
        };
        let conn = db.connection();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |row| {
                row.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        // 2 is FULL: the log is synced at every commit.
        assert_eq!(pragma("synchronous"), "2");
        assert_eq!(pragma("foreign_keys"), "1");
        let error = conn
            .execute(
                "INSERT INTO transitions (customer, transition, from_state, to_state, at)
                 VALUES ('nobody', 'freeze', 'active', 'frozen', 0)",
                [],
            )
            .unwrap_err();
        assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
