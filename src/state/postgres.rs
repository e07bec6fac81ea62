//! The PostgreSQL backend, through the `postgres` crate (rust-postgres) with rustls for TLS.
//!
//! The client is synchronous, but runs its own small tokio runtime, which cannot be entered
//! from a thread that is driving charter's runtime. So each connection lives on a thread of
//! its own ([`Database`]), and the state's calls reach it as jobs over a channel: the caller
//! blocks as it does on SQLite, from any thread, async or not.
//!
//! Writers are kept in line as SQLite's immediate transactions keep them: every write
//! transaction first takes a transaction-scoped advisory lock ([`WRITE_KEY`]), so two writers of
//! one state run one after the other. A journal outcome is committed with `synchronous_commit
//! = off`, as SQLite's is without its own sync.

use std::collections::HashMap;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Statement};

use super::location::{PostgresTarget, postgres_reason};
use super::schema::{self, Dialect};
use super::sql::{Row, Sql, Value, dollar_placeholders};
use super::{DatabaseError, StateError};

/// The advisory lock every write transaction takes: `chst` and `w` in ASCII.
const WRITE_KEY: i64 = 0x6368_7374_0000_0077;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// One connection to a PostgreSQL state, on a thread of its own.
#[derive(Debug)]
pub(super) struct Database {
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    /// The URL without its password, for messages.
    shown: String,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What the connection's thread owns.
struct Worker {
    client: Client,
    /// Statements prepared on this connection, by their text.
    statements: HashMap<String, Statement>,
}

impl Database {
    /// Connects, on a new thread.
    pub(super) fn connect(target: &PostgresTarget) -> Result<Database, StateError> {
        let shown = target.url().to_owned();
        let mut config = target.config().map_err(|e| StateError::Connect {
            location: shown.clone(),
            reason: e.reason,
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        // A machine that vanishes without closing its connection is noticed by the server
        // within about a minute, which releases its locks.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let tls = tls()?;
        let (ready, connected) = mpsc::channel::<Result<(), String>>();
        let (jobs, incoming) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("charter-state-postgres".to_owned())
            .spawn(move || {
                let client = match config.connect(tls) {
                    Ok(client) => client,
                    Err(error) => {
                        let _ = ready.send(Err(postgres_reason(&error)));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let mut worker = Worker {
                    client,
                    statements: HashMap::new(),
                };
                while let Ok(job) = incoming.recv() {
                    job(&mut worker);
                }
            })
            .map_err(|e| StateError::Connect {
                location: shown.clone(),
                reason: format!("cannot start the connection's thread: {e}"),
            })?;
        let failed = match connected.recv() {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_) => Some("the connection's thread stopped".to_owned()),
        };
        if let Some(reason) = failed {
            let _ = worker.join();
            return Err(StateError::Connect {
                location: shown,
                reason,
            });
        }
        Ok(Database {
            jobs: Some(jobs),
            worker: Some(worker),
            shown,
        })
    }

    /// Connects and brings the schema up to date.
    pub(super) fn open(target: &PostgresTarget) -> Result<Database, StateError> {
        let database = Database::connect(target)?;
        database.migrate()?;
        Ok(database)
    }

    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `job` on the connection's thread and waits for its result.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Worker) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let lost = || StateError::Connect {
            location: self.shown.clone(),
            reason: "the connection was lost".to_owned(),
        };
        let (reply, answer) = mpsc::channel();
        let jobs = self.jobs.as_ref().ok_or_else(lost)?;
        jobs.send(Box::new(move |worker: &mut Worker| {
            let _ = reply.send(job(worker));
        }))
        .map_err(|_| lost())?;
        answer.recv().map_err(|_| lost())?
    }

    /// Runs `work` in one transaction that holds the write lock, committed only when it
    /// succeeds. `durable: false` commits without waiting for the log to reach the disk.
    pub(super) fn write<T>(
        &self,
        durable: bool,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let begin = if durable {
            format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_KEY})")
        } else {
            format!(
                "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({WRITE_KEY})"
            )
        };
        self.transaction(&begin, work)
    }

    /// Runs `work` in one read-only transaction that sees one moment of the state.
    pub(super) fn read<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", work)
    }

    fn transaction<T>(
        &self,
        begin: &str,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.batch(begin)?;
        match work(&mut Session(self)) {
            Ok(value) => {
                self.batch("COMMIT")?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Runs statements without parameters.
    pub(super) fn batch(&self, sql: &str) -> Result<(), StateError> {
        let sql = sql.to_owned();
        self.call(move |worker| worker.client.batch_execute(&sql).map_err(database))
    }

    /// The schema version: the number of migrations applied.
    pub(super) fn schema_version(&self) -> Result<i64, StateError> {
        self.read(|sql| {
            Ok(sql
                .query_opt("SELECT version FROM charter_schema WHERE id = 1", &[])?
                .map(|row| row.int(0))
                .transpose()?
                .unwrap_or(0))
        })
    }

    /// Brings the schema up to date in one transaction, or refuses a database that holds
    /// another application's tables, or a newer charter's state. Two charters migrating at once
    /// take turns (the write lock).
    fn migrate(&self) -> Result<(), StateError> {
        let location = self.shown.clone();
        self.write(true, |sql| {
            let ours = sql
                .query_one(
                    "SELECT count(*) FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_name = 'charter_schema'",
                    &[],
                )?
                .int(0)?;
            let version = if ours == 0 {
                let others = sql
                    .query_one(
                        "SELECT count(*) FROM information_schema.tables
                         WHERE table_schema = current_schema()",
                        &[],
                    )?
                    .int(0)?;
                if others > 0 {
                    return Err(StateError::NotState {
                        location: location.clone(),
                        reason: "it holds another application's data (tables without charter's)"
                            .to_owned(),
                    });
                }
                sql.execute(
                    "CREATE TABLE charter_schema (
                        id BIGINT PRIMARY KEY CHECK (id = 1),
                        application BIGINT NOT NULL,
                        version BIGINT NOT NULL
                    )",
                    &[],
                )?;
                sql.execute(
                    "INSERT INTO charter_schema (id, application, version) VALUES (1, ?1, 0)",
                    super::sql::params![i64::from(schema::APPLICATION_ID)],
                )?;
                0
            } else {
                let row = sql.query_one(
                    "SELECT application, version FROM charter_schema WHERE id = 1",
                    &[],
                )?;
                if row.int(0)? != i64::from(schema::APPLICATION_ID) {
                    return Err(StateError::NotState {
                        location: location.clone(),
                        reason: "it holds another application's data".to_owned(),
                    });
                }
                row.int(1)?
            };
            schema::check_version(version, &location)?;
            for (reached, ddl) in schema::pending(Dialect::Postgres, version) {
                let ddl = ddl.to_owned();
                // Several statements at once: the simple protocol.
                sql_batch(sql, ddl)?;
                sql.execute(
                    "UPDATE charter_schema SET version = ?1 WHERE id = 1",
                    super::sql::params![reached],
                )?;
            }
            Ok(())
        })
    }
}

/// Runs several statements inside the current transaction of a [`Session`].
fn sql_batch(sql: &mut dyn Sql, ddl: String) -> Result<(), StateError> {
    // Statements of the migrations are separated by `;` at the end of a line, and hold no
    // `;` elsewhere.
    for statement in ddl.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        sql.execute(statement.trim_end_matches(';'), &[])?;
    }
    Ok(())
}

impl Drop for Database {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which closes the connection (and with it every
        // session lock it held).
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A connection or transaction, as [`Sql`].
pub(super) struct Session<'a>(pub(super) &'a Database);

impl Sql for Session<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StateError> {
        let sql = dollar_placeholders(sql);
        let params = params.to_vec();
        self.0.call(move |worker| {
            let statement = worker.prepare(&sql)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            worker.client.execute(&statement, &refs).map_err(database)
        })
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StateError> {
        let sql = dollar_placeholders(sql);
        let params = params.to_vec();
        self.0.call(move |worker| {
            let statement = worker.prepare(&sql)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let rows = worker.client.query(&statement, &refs).map_err(database)?;
            rows.iter().map(row).collect()
        })
    }
}

impl Worker {
    fn prepare(&mut self, sql: &str) -> Result<Statement, StateError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(database)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// A row, in the values the state's SQL uses.
fn row(row: &postgres::Row) -> Result<Row, StateError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let get_err = |e: postgres::Error| StateError::Malformed {
            what: format!("column `{}`: {}", column.name(), postgres_reason(&e)),
        };
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, |n| Value::Int(i64::from(n)))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, |n| Value::Int(i64::from(n)))
        } else if *ty == Type::OID {
            row.try_get::<_, Option<u32>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, |n| Value::Int(i64::from(n)))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, |b| Value::Int(i64::from(b)))
        } else {
            row.try_get::<_, Option<String>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, Value::Text)
        };
        values.push(value);
    }
    Ok(Row(values))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) if *ty == Type::INT8 => n.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) => Err(format!("the number `{n}` where `{ty}` belongs").into()),
            Value::Text(text) => text.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::INT4,
            Type::INT2,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

fn database(error: postgres::Error) -> StateError {
    StateError::Database(DatabaseError::Postgres(error))
}

/// TLS with rustls (as the API client): the server's certificate is checked against the
/// platform's roots. Used when the URL asks for it (`sslmode=require`) or allows it (`prefer`,
/// the default).
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StateError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| StateError::Connect {
            location: String::new(),
            reason: format!("cannot set up TLS: {e}"),
        })?
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
