//! charter's own state: a SQLite database (`.charter/state.db` beside the policy set by default)
//! holding what Make cannot store — which organization and users belong to each customer, the
//! lifecycle transitions that really happened, the manual transitions requested — and what the
//! executor needs to act safely: the journal of plan steps and the runner's lock.
//!
//! Every write runs in one immediate transaction, and the database is opened with
//! `synchronous = FULL` in WAL mode, so a write that returned is on disk — except a journal
//! outcome, committed without its own sync and taken to the disk by the next synced write (see
//! `journal.rs`): the journal's "intent before the call" holds across a crash or a power cut,
//! and an outcome lost to a power cut leaves its step looking in flight. Time is always a
//! parameter (seconds since the Unix epoch), except for the lock's heartbeat, which is about
//! the wall clock by nature. The API token is never stored here.
//!
//! The tables are described in [`schema`].

mod applied;
mod instance;
mod journal;
mod lock;
pub mod schema;
mod verified;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::compile::customer::{Event, History};

pub use instance::{InstanceIdentity, InstanceLock, TokenUser};
pub use journal::{JournalEntry, Step, StepOutcome};
pub use lock::{LockGuard, LockHolder, LockOptions};

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

/// Why the state could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the folder `{path}` for the state database: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error("cannot open the state database `{path}`: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("`{path}` is not a charter state database: {reason}")]
    NotState { path: PathBuf, reason: String },
    #[error(
        "`{path}` was written by a newer charter: its schema version is `{version}`, this charter knows up to `{known}`"
    )]
    Newer {
        path: PathBuf,
        version: i64,
        known: i64,
    },
    #[error("state database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("organization `{organization}` already belongs to customer `{customer}`")]
    OrganizationTaken { organization: i64, customer: String },
    #[error("{}", lock::describe_locked(.0))]
    Locked(LockHolder),
    #[error("this runner's lock on the state was taken over by another runner")]
    LockLost,
    #[error(
        "the state `{path}` belongs to another instance: it was made against {}, not {}",
        bound.describe(),
        here.describe()
    )]
    OtherInstance {
        path: PathBuf,
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
}

impl StateError {
    /// What to do about it, when there is something to say.
    pub fn help(&self) -> Option<String> {
        match self {
            StateError::OtherInstance { .. } => Some(
                "its links name organizations of that instance, which here are other companies': \
                 to manage this instance, give another state file (`--state FILE`, or `[state] \
                 path` in `charter.toml`) and link its organizations with `charter import \
                 --state FILE`; or point charter back at the instance the state belongs to"
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

/// An open state database.
#[derive(Debug)]
pub struct State {
    conn: Connection,
    path: PathBuf,
    /// The file opened, to notice it deleted or replaced under charter (see [`State::write`]).
    file: Option<FileId>,
}

/// A file as the file system knows it (device and inode on Unix), whatever its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).ok().map(|m| FileId {
            device: m.dev(),
            inode: m.ino(),
        })
    }

    #[cfg(not(unix))]
    fn of(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|_| FileId {
            device: 0,
            inode: 0,
        })
    }
}

impl State {
    /// Opens the state at `path`, creating its folder and the database when missing, and brings
    /// its schema up to date.
    pub fn open(path: &Path) -> Result<State, StateError> {
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|e| StateError::Folder {
                path: folder.to_owned(),
                reason: io_reason(&e),
            })?;
        }
        let conn = connect(path)?;
        schema::migrate(&conn, path).map_err(|e| not_state(e, path))?;
        Ok(State {
            conn,
            path: path.to_owned(),
            file: FileId::of(path),
        })
    }

    /// Opens the state at `path` if the file exists; `None` (and nothing created) otherwise.
    pub fn open_existing(path: &Path) -> Result<Option<State>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        State::open(path).map(Some)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StateError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Runs `work` in one immediate transaction, committed only when it succeeds — and only
    /// while the file is still the one opened: SQLite goes on writing to a deleted file (its
    /// open handle keeps it), so without this check a state deleted under a running apply
    /// would record the apply into the void and no one would know.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.ensure_present()?;
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let value = work(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Errs when the state file was deleted or replaced since it was opened.
    pub fn ensure_present(&self) -> Result<(), StateError> {
        match (self.file, FileId::of(&self.path)) {
            (Some(opened), Some(now)) if opened != now => Err(StateError::Gone {
                path: self.path.clone(),
            }),
            (Some(_), None) => Err(StateError::Gone {
                path: self.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// A customer's recorded history, as the lifecycle walk reads it: every recorded transition
    /// and the requests still pending, oldest first.
    pub fn history(&self, customer: &str) -> Result<History, StateError> {
        let mut transitions = self.conn.prepare_cached(
            "SELECT transition, at FROM transitions WHERE customer = ?1 ORDER BY at, id",
        )?;
        let transitions = transitions
            .query_map([customer], event)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut requests = self.conn.prepare_cached(
            "SELECT transition, requested_at FROM requests
             WHERE customer = ?1 AND applied_by IS NULL ORDER BY requested_at, id",
        )?;
        let requests = requests
            .query_map([customer], event)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(History {
            transitions,
            requests,
        })
    }

    /// Every customer's history at once (for rosters, where one query per customer would be
    /// slow). Customers with nothing recorded are absent.
    pub fn histories(&self) -> Result<BTreeMap<String, History>, StateError> {
        let mut all: BTreeMap<String, History> = BTreeMap::new();
        let mut transitions = self.conn.prepare(
            "SELECT customer, transition, at FROM transitions ORDER BY customer, at, id",
        )?;
        let mut rows = transitions.query([])?;
        while let Some(row) = rows.next()? {
            let customer: String = row.get(0)?;
            all.entry(customer).or_default().transitions.push(Event {
                transition: row.get(1)?,
                at: row.get(2)?,
            });
        }
        let mut requests = self.conn.prepare(
            "SELECT customer, transition, requested_at FROM requests
             WHERE applied_by IS NULL ORDER BY customer, requested_at, id",
        )?;
        let mut rows = requests.query([])?;
        while let Some(row) = rows.next()? {
            let customer: String = row.get(0)?;
            all.entry(customer).or_default().requests.push(Event {
                transition: row.get(1)?,
                at: row.get(2)?,
            });
        }
        Ok(all)
    }

    /// What the state knows about a customer.
    pub fn customer(&self, key: &str) -> Result<Option<CustomerRecord>, StateError> {
        Ok(self
            .conn
            .query_row(
                "SELECT key, organization_id, state, since FROM customers WHERE key = ?1",
                [key],
                customer_record,
            )
            .optional()?)
    }

    /// Every customer the state knows about, by key.
    pub fn customers(&self) -> Result<Vec<CustomerRecord>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT key, organization_id, state, since FROM customers ORDER BY key")?;
        let records = statement
            .query_map([], customer_record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(records)
    }

    /// Records that a customer's organization has this id on the instance.
    pub fn set_organization(&self, customer: &str, organization: i64) -> Result<(), StateError> {
        self.write(|tx| {
            let holder: Option<String> = tx
                .query_row(
                    "SELECT key FROM customers WHERE organization_id = ?1 AND key <> ?2",
                    params![organization, customer],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(holder) = holder {
                return Err(StateError::OrganizationTaken {
                    organization,
                    customer: holder,
                });
            }
            ensure_customer(tx, customer)?;
            tx.execute(
                "UPDATE customers SET organization_id = ?2 WHERE key = ?1",
                params![customer, organization],
            )?;
            Ok(())
        })
    }

    /// The id of a customer's organization, once known.
    pub fn organization(&self, customer: &str) -> Result<Option<i64>, StateError> {
        Ok(self.customer(customer)?.and_then(|c| c.organization_id))
    }

    /// Records the instance's user id for an e-mail address (compared without case).
    pub fn set_user(&self, email: &str, user: i64) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO users (email_key, email, user_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (email_key) DO UPDATE SET email = ?2, user_id = ?3",
                params![email.to_lowercase(), email, user],
            )?;
            Ok(())
        })
    }

    /// The instance's user id for an e-mail address, once known.
    pub fn user(&self, email: &str) -> Result<Option<i64>, StateError> {
        Ok(self
            .conn
            .query_row(
                "SELECT user_id FROM users WHERE email_key = ?1",
                [email.to_lowercase()],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Every known user id, by e-mail address as last recorded.
    pub fn users(&self) -> Result<BTreeMap<String, i64>, StateError> {
        let mut statement = self.conn.prepare("SELECT email, user_id FROM users")?;
        let users = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(users)
    }

    /// Records a transition that really happened, in one transaction with its consequences:
    /// the customer's current state (when this is its latest transition) and the pending
    /// requests for it made up to then, which it carried out. Returns the record's id.
    pub fn record_transition(&self, applied: &AppliedTransition) -> Result<i64, StateError> {
        self.write(|tx| {
            ensure_customer(tx, &applied.customer)?;
            tx.execute(
                "INSERT INTO transitions (customer, transition, from_state, to_state, at, plan)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    applied.customer,
                    applied.transition,
                    applied.from,
                    applied.to,
                    applied.at,
                    applied.plan
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE customers SET state = ?2, since = ?3
                 WHERE key = ?1 AND (since IS NULL OR since <= ?3)",
                params![applied.customer, applied.to, applied.at],
            )?;
            tx.execute(
                "UPDATE requests SET applied_by = ?4
                 WHERE customer = ?1 AND transition = ?2 AND requested_at <= ?3
                   AND applied_by IS NULL",
                params![applied.customer, applied.transition, applied.at, id],
            )?;
            Ok(id)
        })
    }

    /// A customer's recorded transitions, oldest first.
    pub fn transitions(&self, customer: &str) -> Result<Vec<AppliedTransition>, StateError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT customer, transition, from_state, to_state, at, plan FROM transitions
             WHERE customer = ?1 ORDER BY at, id",
        )?;
        let transitions = statement
            .query_map([customer], |row| {
                Ok(AppliedTransition {
                    customer: row.get(0)?,
                    transition: row.get(1)?,
                    from: row.get(2)?,
                    to: row.get(3)?,
                    at: row.get(4)?,
                    plan: row.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(transitions)
    }

    /// Records a manual transition request; returns its id. The lifecycle decides nothing
    /// here: the caller has checked that the request makes sense.
    pub fn request_transition(&self, request: &TransitionRequest) -> Result<i64, StateError> {
        self.write(|tx| {
            ensure_customer(tx, &request.customer)?;
            tx.execute(
                "INSERT INTO requests (customer, transition, requested_at, requested_by)
                 VALUES (?1, ?2, ?3, ?4)",
                params![request.customer, request.transition, request.at, request.by],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// A customer's requests, pending and carried out, oldest first.
    pub fn requests(&self, customer: &str) -> Result<Vec<Request>, StateError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, customer, transition, requested_at, requested_by, applied_by
             FROM requests WHERE customer = ?1 ORDER BY requested_at, id",
        )?;
        let requests = statement
            .query_map([customer], |row| {
                Ok(Request {
                    id: row.get(0)?,
                    request: TransitionRequest {
                        customer: row.get(1)?,
                        transition: row.get(2)?,
                        at: row.get(3)?,
                        by: row.get(4)?,
                    },
                    applied_by: row.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(requests)
    }
}

/// Opens a connection with the settings every handle on the state uses.
fn connect(path: &Path) -> Result<Connection, StateError> {
    let conn = Connection::open(path).map_err(|e| StateError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let configure = || -> Result<(), rusqlite::Error> {
        conn.busy_timeout(Duration::from_secs(10))?;
        // WAL keeps readers and the writer apart; `FULL` syncs the log at every commit, so a
        // committed write survives a power cut, not only a crash of the process.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // macOS only honours a sync to the platter with `F_FULLFSYNC`; elsewhere this is a no-op.
        conn.pragma_update(None, "fullfsync", "ON")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    };
    configure().map_err(|e| not_state(StateError::Database(e), path))?;
    Ok(conn)
}

/// A file SQLite cannot read as a database is named for what it is.
fn not_state(error: StateError, path: &Path) -> StateError {
    match error {
        StateError::Database(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ) =>
        {
            StateError::NotState {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        }
        StateError::Database(e) => StateError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        other => other,
    }
}

fn ensure_customer(tx: &Transaction<'_>, key: &str) -> Result<(), rusqlite::Error> {
    tx.execute("INSERT OR IGNORE INTO customers (key) VALUES (?1)", [key])?;
    Ok(())
}

fn event(row: &rusqlite::Row<'_>) -> Result<Event, rusqlite::Error> {
    Ok(Event {
        transition: row.get(0)?,
        at: row.get(1)?,
    })
}

fn customer_record(row: &rusqlite::Row<'_>) -> Result<CustomerRecord, rusqlite::Error> {
    Ok(CustomerRecord {
        key: row.get(0)?,
        organization_id: row.get(1)?,
        state: row.get(2)?,
        since: row.get(3)?,
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
    use super::*;

    /// The journal's promise rests on these settings of every connection.
    #[test]
    fn every_connection_is_durable_and_checks_references() {
        let dir = std::env::temp_dir().join(format!("charter-state-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = State::open(&dir.join("state.db")).unwrap();
        let pragma = |name: &str| -> String {
            state
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |row| {
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
        let error = state
            .conn
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
