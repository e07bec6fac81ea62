//! The SQLite backend: a file, opened with `synchronous = FULL` in WAL mode, every write one
//! immediate transaction, and every write first checking that the path still names the file
//! opened (SQLite goes on writing to a deleted file through its open handle).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::StateError;
use super::schema::{self, Dialect};
use super::sql::{Row, Sql, Value};

/// An open SQLite state.
#[derive(Debug)]
pub(super) struct Database {
    conn: Connection,
    path: PathBuf,
    /// The file opened, to notice it deleted or replaced under charter.
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

impl Database {
    /// Opens the state at `path`, creating its folder and the database when missing, and brings
    /// its schema up to date.
    pub(super) fn open(path: &Path) -> Result<Database, StateError> {
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|e| StateError::Folder {
                path: folder.to_owned(),
                reason: super::io_reason(&e),
            })?;
        }
        let conn = connect(path)?;
        migrate(&conn, path).map_err(|e| not_state(e, path))?;
        Ok(Database {
            conn,
            path: path.to_owned(),
            file: FileId::of(path),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Errs when the state file was deleted or replaced since it was opened.
    pub(super) fn ensure_present(&self) -> Result<(), StateError> {
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

    /// Runs `work` in one immediate transaction, committed only when it succeeds and only
    /// while the file is still the one opened. `durable: false` commits without a sync of its
    /// own (the next synced commit takes it to the disk).
    pub(super) fn write<T>(
        &self,
        durable: bool,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.ensure_present()?;
        if !durable {
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(database)?;
        }
        let written = (|| {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
                .map_err(database)?;
            let value = work(&mut Session(&tx))?;
            tx.commit().map_err(database)?;
            Ok(value)
        })();
        if !durable {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(database)?;
        }
        written
    }

    /// Runs `work` in one read transaction: what it reads is one moment of the state.
    pub(super) fn read<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Deferred)
            .map_err(database)?;
        let value = work(&mut Session(&tx))?;
        tx.commit().map_err(database)?;
        Ok(value)
    }

    /// The schema version of the open database.
    pub(super) fn schema_version(&self) -> Result<i64, StateError> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(database)
    }

    /// A second connection to the same file (the lock's heartbeat).
    pub(super) fn reconnect(&self) -> Result<Connection, StateError> {
        connect(&self.path)
    }

    #[cfg(test)]
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A connection or transaction, as [`Sql`].
pub(super) struct Session<'a>(pub(super) &'a Connection);

impl Sql for Session<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StateError> {
        let mut statement = self.0.prepare_cached(sql).map_err(database)?;
        let changed = statement
            .execute(rusqlite::params_from_iter(params.iter().map(to_sqlite)))
            .map_err(database)?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StateError> {
        let mut statement = self.0.prepare_cached(sql).map_err(database)?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.iter().map(to_sqlite)))
            .map_err(database)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(database)? {
            let mut values = Vec::with_capacity(columns);
            for column in 0..columns {
                values.push(match row.get_ref(column).map_err(database)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => Value::Int(n),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    other => {
                        return Err(StateError::Malformed {
                            what: format!(
                                "column {column} holds a value of type `{}`",
                                other.data_type()
                            ),
                        });
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

fn to_sqlite(value: &Value) -> rusqlite::types::Value {
    match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(n) => rusqlite::types::Value::Integer(*n),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
    }
}

pub(super) fn database(error: rusqlite::Error) -> StateError {
    StateError::Database(super::DatabaseError::Sqlite(error))
}

/// Opens a connection with the settings every handle on the state uses.
pub(super) fn connect(path: &Path) -> Result<Connection, StateError> {
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
    configure().map_err(|e| not_state(database(e), path))?;
    Ok(conn)
}

/// A file SQLite cannot read as a database is named for what it is.
fn not_state(error: StateError, path: &Path) -> StateError {
    match error {
        StateError::Database(super::DatabaseError::Sqlite(e))
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ) =>
        {
            StateError::NotState {
                location: path.display().to_string(),
                reason: e.to_string(),
            }
        }
        StateError::Database(super::DatabaseError::Sqlite(e)) => StateError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        other => other,
    }
}

/// Brings the database up to the current schema in one immediate transaction, or refuses a
/// file that is not charter's state (another application's, or a newer charter's).
/// `PRAGMA user_version` holds the number of migrations applied; `PRAGMA application_id`
/// marks the file as charter's state.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(database)?;
    let pragma = |name: &str| -> Result<i64, StateError> {
        tx.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .map_err(database)
    };
    let application = pragma("application_id")?;
    let version = pragma("user_version")?;
    let objects: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(database)?;
    let fresh = application == 0 && version == 0 && objects == 0;
    let location = path.display().to_string();
    if !fresh && application != i64::from(schema::APPLICATION_ID) {
        return Err(StateError::NotState {
            location,
            reason: "it holds another application's data".to_owned(),
        });
    }
    schema::check_version(version, &location)?;
    if fresh {
        tx.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .map_err(database)?;
    }
    for (reached, sql) in schema::pending(Dialect::Sqlite, version) {
        tx.execute_batch(sql).map_err(database)?;
        tx.pragma_update(None, "user_version", reached)
            .map_err(database)?;
    }
    tx.commit().map_err(database)?;
    Ok(())
}
