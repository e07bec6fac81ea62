//! The sandbox's SQLite database: opening it, its schema, and the handle the server shares.
//!
//! One connection behind a mutex serves every request, and every write runs in one transaction,
//! so invariants that span rows (one owner per organization) hold under any concurrency. A
//! partial unique index backs the one-owner rule in the schema as well.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::error::{ErrorResponse, SandboxError};
use super::license;
use super::roles::TokenRole;
use crate::wire::License;

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    users_admins_role_id INTEGER,
    language TEXT NOT NULL,
    country_id INTEGER NOT NULL,
    timezone_id INTEGER NOT NULL,
    locale_id INTEGER NOT NULL,
    has_password INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS organizations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    timezone_id INTEGER NOT NULL,
    country_id INTEGER NOT NULL,
    license TEXT NOT NULL,
    is_paused INTEGER NOT NULL DEFAULT 0,
    external_id TEXT,
    scenarios INTEGER NOT NULL DEFAULT 0,
    active_scenarios INTEGER NOT NULL DEFAULT 0,
    next_reset TEXT
);
CREATE TABLE IF NOT EXISTS organization_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    users_role_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, organization_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_owner_per_organization
    ON organization_roles(organization_id) WHERE users_role_id = 11;
CREATE INDEX IF NOT EXISTS organization_roles_by_organization
    ON organization_roles(organization_id, users_role_id);
CREATE TABLE IF NOT EXISTS teams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS teams_by_organization ON teams(organization_id);
CREATE TABLE IF NOT EXISTS team_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    users_role_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX IF NOT EXISTS team_roles_by_team ON team_roles(team_id);
CREATE TABLE IF NOT EXISTS daily_usage (
    organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    operations INTEGER NOT NULL,
    data_transfer INTEGER NOT NULL,
    PRIMARY KEY (organization_id, date)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The settings key of the instance default license.
pub const DEFAULT_LICENSE: &str = "defaultLicense";

/// The settings key of the database's own id: random, made with the database, so that a
/// database deleted and made again is another instance to whoever remembers the first.
pub const INSTANCE_ID: &str = "instanceId";

/// Where the sandbox keeps its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone when the sandbox stops.
    #[default]
    Memory,
    /// A SQLite file, created when missing; data survives restarts.
    File(PathBuf),
}

impl Storage {
    /// How the startup line names it.
    pub fn describe(&self) -> String {
        match self {
            Storage::Memory => "in memory (nothing is kept after it stops)".to_owned(),
            Storage::File(path) => format!("`{}`", path.display()),
        }
    }
}

/// Opens (creating when needed) a sandbox database and brings its schema up.
pub fn open(storage: &Storage) -> Result<Connection, SandboxError> {
    let (conn, path) = match storage {
        Storage::Memory => (Connection::open_in_memory(), PathBuf::from(":memory:")),
        Storage::File(path) => {
            // The embedded sandbox lives in `.charter/sandbox.db`, whose folder may not exist yet.
            if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|source| SandboxError::Folder {
                    path: folder.to_owned(),
                    source,
                })?;
            }
            (Connection::open(path), path.clone())
        }
    };
    let conn = conn.map_err(|source| SandboxError::Open {
        path: path.clone(),
        source,
    })?;
    prepare(&conn, &path).map_err(|error| match error {
        SandboxError::Database(source) => SandboxError::NotASandbox {
            path: path.clone(),
            reason: source.to_string(),
        },
        other => other,
    })?;
    Ok(conn)
}

fn prepare(conn: &Connection, path: &Path) -> Result<(), SandboxError> {
    // WAL keeps readers and the writer apart on a file; a committed write survives a crash of
    // the process. In memory the journal mode stays `memory`.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |row| row.get(0),
    )?;
    if version != SCHEMA_VERSION && !(version == 0 && tables == 0) {
        return Err(SandboxError::NotASandbox {
            path: path.to_owned(),
            reason: format!(
                "its schema version is `{version}`, this sandbox uses `{SCHEMA_VERSION}`"
            ),
        });
    }
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    let default_license = serde_json::to_string(&license::initial_default_license())
        .map_err(|error| SandboxError::Stopped(error.to_string()))?;
    conn.execute(
        "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)",
        params![DEFAULT_LICENSE, default_license],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, lower(hex(randomblob(16))))",
        params![INSTANCE_ID],
    )?;
    Ok(())
}

/// The database's own id ([`INSTANCE_ID`]).
pub fn instance_id(conn: &Connection) -> Result<String, rusqlite::Error> {
    conn.query_row(
        "SELECT value FROM settings WHERE key = ?1",
        params![INSTANCE_ID],
        |row| row.get(0),
    )
}

/// The e-mail address of the built-in user behind tokens of a role.
pub fn caller_email(role: TokenRole) -> String {
    format!("{}@sandbox.invalid", role.word())
}

/// Makes sure the built-in user behind tokens of this role exists; returns its id.
pub fn ensure_caller(conn: &Connection, role: TokenRole) -> Result<i64, rusqlite::Error> {
    let email = caller_email(role);
    let existing: Option<i64> = conn
        .query_row(
            "SELECT id FROM users WHERE email_key = ?1",
            params![email],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        conn.execute(
            "UPDATE users SET users_admins_role_id = ?1 WHERE id = ?2",
            params![role.admin_role_id(), id],
        )?;
        return Ok(id);
    }
    conn.execute(
        "INSERT INTO users (name, email, email_key, users_admins_role_id, language, country_id,
             timezone_id, locale_id)
         VALUES (?1, ?2, ?2, ?3, 'en', ?4, ?5, ?6)",
        params![
            format!("Sandbox {}", role.word().to_uppercase()),
            email,
            role.admin_role_id(),
            super::store::DEFAULT_COUNTRY_ID,
            super::store::DEFAULT_TIMEZONE_ID,
            super::store::DEFAULT_LOCALE_ID,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Flushes the write-ahead log into the main file, so the file alone holds everything.
pub fn checkpoint(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

/// The database as the server shares it between requests.
#[derive(Clone, Debug)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    pub fn new(conn: Connection) -> Db {
        Db {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// Runs `work` on the connection on a blocking thread.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ErrorResponse>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ErrorResponse> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = match conn.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            work(&mut guard)
        })
        .await
        .map_err(|error| ErrorResponse::internal(format!("the sandbox worker failed: {error}")))?
    }

    /// Runs `work` in one transaction, committed only when it succeeds.
    pub async fn write<T, F>(&self, work: F) -> Result<T, ErrorResponse>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, ErrorResponse> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Checkpoints the log; called once every request has finished.
    pub fn close(&self) -> Result<(), SandboxError> {
        let guard = match self.conn.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        checkpoint(&guard)?;
        Ok(())
    }
}

/// Reads a license stored as JSON text.
pub fn read_license(text: &str) -> Result<License, ErrorResponse> {
    serde_json::from_str(text)
        .map_err(|error| ErrorResponse::internal(format!("a stored license is not JSON: {error}")))
}

/// Writes a license as JSON text.
pub fn write_license(license: &License) -> Result<String, ErrorResponse> {
    serde_json::to_string(license)
        .map_err(|error| ErrorResponse::internal(format!("cannot store a license: {error}")))
}
