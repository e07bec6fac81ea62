//! The runner's lock: two runners (`apply`, `run`, `transition`, `import`) never act on one
//! state at once. A runner that finds it held waits for it up to a timeout
//! ([`Store::acquire_lock_waiting`]), or fails at once ([`Store::acquire_lock`]) saying who
//! holds it.
//!
//! On PostgreSQL the lock is a session advisory lock, held by a connection of its own for as
//! long as the [`LockGuard`] lives: a holder that dies — killed, or its machine gone — loses its
//! connection, and the server releases the lock with it. The key is the state's (its database
//! and schema), and a state belongs to one instance, so it is the instance's lock for everyone
//! who uses that state, on any machine. Who holds it (host, process, command, since) is written
//! in the `lock` row for the message another runner sees.
//!
//! On SQLite the lock is that row, with a heartbeat that a thread of the holder refreshes every
//! third of the lease; acquiring it is one immediate transaction, so two acquirers cannot both
//! win. Stale rule: a held lock is taken over when its heartbeat is older than its lease (the
//! holder stopped heartbeating: it died, or its machine did), or at once when its holder ran on
//! this host and that process no longer exists (checked through `/proc` where there is one).
//!
//! On both, every acquisition increases the lock's generation, so a holder that was taken over
//! notices ([`LockGuard::ensure_held`]) and never releases its successor's lock. Reading the
//! state needs no lock: each read is one transaction.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::sql::{Row, Sql, params};
use super::{Backend, Location, StateError, Store, postgres, sqlite};
use crate::model::time::format_instant;

/// Who holds the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// What it is doing (`apply`, `run`).
    pub purpose: String,
    pub acquired_at: i64,
    /// The last sign of life (on PostgreSQL, where the connection is the sign of life, the
    /// time it was acquired).
    pub heartbeat_at: i64,
    /// Seconds without a heartbeat after which it is presumed dead (SQLite).
    pub lease: i64,
}

/// How to acquire the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// What the holder is doing, for the message another runner sees.
    pub purpose: String,
    /// How long the lock outlives its holder's last heartbeat (SQLite).
    pub lease: Duration,
    /// How long to wait for a held lock ([`Store::acquire_lock_waiting`]).
    pub wait: Duration,
}

impl LockOptions {
    /// The default lease (two minutes) and wait (five minutes).
    pub fn new(purpose: &str) -> LockOptions {
        LockOptions {
            purpose: purpose.to_owned(),
            lease: Duration::from_secs(120),
            wait: DEFAULT_WAIT,
        }
    }
}

/// How long a runner waits for the lock by default (`--lock-timeout`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// How often a waiting runner tries again.
const POLL: Duration = Duration::from_millis(250);

pub(super) fn describe_locked(holder: &LockHolder) -> String {
    format!(
        "the state is locked by `{}` (process `{}` on `{}`) since {}",
        holder.purpose,
        holder.pid,
        holder.host,
        format_instant(holder.acquired_at),
    )
}

impl Store {
    /// Acquires the runner's lock with the default lease, or says who holds it.
    pub fn acquire_lock(&self, purpose: &str) -> Result<LockGuard, StateError> {
        self.acquire_lock_with(&LockOptions::new(purpose))
    }

    /// Acquires the runner's lock at once (on SQLite, taking over a stale one: see the module's
    /// stale rule), or says who holds it ([`StateError::Locked`]).
    pub fn acquire_lock_with(&self, options: &LockOptions) -> Result<LockGuard, StateError> {
        self.acquire_lock_waiting(
            &LockOptions {
                wait: Duration::ZERO,
                ..options.clone()
            },
            &mut |_| {},
        )
    }

    /// Acquires the runner's lock, waiting up to `options.wait` while another runner holds it;
    /// `waiting` is told who, once, when the wait begins. Gives up with
    /// [`StateError::LockTimeout`] (or [`StateError::Locked`] when there is no wait).
    pub fn acquire_lock_waiting(
        &self,
        options: &LockOptions,
        waiting: &mut dyn FnMut(&LockHolder),
    ) -> Result<LockGuard, StateError> {
        let started = Instant::now();
        let mut told = false;
        let mut wait = |holder: LockHolder| -> Result<(), StateError> {
            let waited = started.elapsed();
            if waited >= options.wait {
                return Err(if options.wait.is_zero() {
                    StateError::Locked(holder)
                } else {
                    StateError::LockTimeout {
                        holder,
                        waited: i64::try_from(waited.as_secs()).unwrap_or(i64::MAX),
                    }
                });
            }
            if !told {
                waiting(&holder);
                told = true;
            }
            std::thread::sleep(POLL.min(options.wait.saturating_sub(waited)));
            Ok(())
        };
        match (&self.backend, &self.location) {
            (Backend::Postgres(_), Location::Postgres(target)) => {
                let session = postgres::Database::connect(target)?;
                let key = lock_key(&mut postgres::Session(&session))?;
                loop {
                    let row = postgres::Session(&session)
                        .query_one("SELECT pg_try_advisory_lock(?1)", params![key])?;
                    if row.int(0)? == 1 {
                        break;
                    }
                    wait(self.holder_row()?.unwrap_or_else(unknown_holder))?;
                }
                let (generation, replaced) = session.write(true, |sql| take(sql, options))?;
                Ok(LockGuard {
                    held: Held::Postgres { session, key },
                    generation,
                    replaced,
                })
            }
            (Backend::Sqlite(db), _) => loop {
                match acquire_sqlite(db, options) {
                    Err(StateError::Locked(holder)) => wait(holder)?,
                    other => break other,
                }
            },
            (Backend::Postgres(_), Location::File(_)) => Err(StateError::Malformed {
                what: "a database state opened from a file path".to_owned(),
            }),
        }
    }

    /// Who holds the lock now, if anyone (on SQLite, stale or not).
    pub fn lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        match &self.backend {
            Backend::Sqlite(_) => self.holder_row(),
            Backend::Postgres(_) => {
                let held = self.read(|sql| {
                    let key = lock_key(sql)?;
                    let row = sql.query_one(
                        "SELECT count(*) FROM pg_locks
                         WHERE locktype = 'advisory' AND granted
                           AND database = (SELECT oid FROM pg_database
                                           WHERE datname = current_database())
                           AND classid::bigint = ?1 AND objid::bigint = ?2 AND objsubid = 1",
                        params![key_high(key), key_low(key)],
                    )?;
                    row.int(0)
                })?;
                if held == 0 {
                    return Ok(None);
                }
                Ok(Some(self.holder_row()?.unwrap_or_else(unknown_holder)))
            }
        }
    }

    /// The holder the `lock` row names.
    fn holder_row(&self) -> Result<Option<LockHolder>, StateError> {
        self.read(|sql| Ok(read_lock(sql)?.1))
    }
}

/// The SQLite lock: one immediate transaction, then a heartbeat thread.
fn acquire_sqlite(db: &sqlite::Database, options: &LockOptions) -> Result<LockGuard, StateError> {
    let host = this_host();
    let now = wall_clock();
    let (generation, replaced) = db.write(true, |sql| {
        let (_, holder) = read_lock(sql)?;
        if let Some(holder) = &holder
            && !is_stale(holder, &host, now)
        {
            return Err(StateError::Locked(holder.clone()));
        }
        take(sql, options)
    })?;
    let conn = Arc::new(Mutex::new(db.reconnect()?));
    let (stop, stopped) = mpsc::channel::<()>();
    let interval = (options.lease / 3).max(Duration::from_millis(100));
    let heartbeat_conn = Arc::clone(&conn);
    let thread = std::thread::Builder::new()
        .name("charter-state-lock".to_owned())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                // Taken over: nothing more to refresh. (A busy database is retried at the
                // next beat.)
                if let Ok(false) = heartbeat(&lock_conn(&heartbeat_conn), generation) {
                    break;
                }
            }
        })
        .map_err(|e| StateError::Open {
            path: db.path().to_owned(),
            reason: format!("cannot start the lock's heartbeat: {e}"),
        });
    let thread = match thread {
        Ok(thread) => thread,
        Err(error) => {
            let _ = release_sqlite(&lock_conn(&conn), generation);
            return Err(error);
        }
    };
    Ok(LockGuard {
        held: Held::Sqlite {
            conn,
            stop: Some(stop),
            thread: Some(thread),
        },
        generation,
        replaced,
    })
}

/// Writes this runner into the `lock` row with the next generation; returns it and the holder
/// it replaces (a stale one, or on PostgreSQL one that died holding it).
fn take(sql: &mut dyn Sql, options: &LockOptions) -> Result<(i64, Option<LockHolder>), StateError> {
    let (generation, replaced) = read_lock(sql)?;
    let generation = generation.saturating_add(1);
    let lease = i64::try_from(options.lease.as_secs().max(1)).unwrap_or(i64::MAX);
    sql.execute(
        "UPDATE lock SET generation = ?1, pid = ?2, host = ?3, purpose = ?4,
             acquired_at = ?5, heartbeat_at = ?5, lease = ?6
         WHERE id = 1",
        params![
            generation,
            std::process::id(),
            this_host(),
            &options.purpose,
            wall_clock(),
            lease
        ],
    )?;
    Ok((generation, replaced))
}

/// The lock, held until dropped (or [`LockGuard::release`]d).
#[derive(Debug)]
pub struct LockGuard {
    held: Held,
    generation: i64,
    replaced: Option<LockHolder>,
}

#[derive(Debug)]
enum Held {
    Sqlite {
        conn: Arc<Mutex<Connection>>,
        stop: Option<Sender<()>>,
        thread: Option<JoinHandle<()>>,
    },
    /// The session that holds the advisory lock `key`.
    Postgres {
        session: postgres::Database,
        key: i64,
    },
    Released,
}

impl LockGuard {
    /// This acquisition's generation: greater than every earlier one.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The holder this acquisition took the lock over from, if any: a stale one (SQLite), or
    /// one that died holding it (PostgreSQL).
    pub fn replaced(&self) -> Option<&LockHolder> {
        self.replaced.as_ref()
    }

    /// Errs when the lock is no longer this runner's: taken over by another runner (this one
    /// was presumed dead), or its session lost. The executor checks before each step and
    /// stops.
    pub fn ensure_held(&self) -> Result<(), StateError> {
        match &self.held {
            Held::Sqlite { conn, .. } => {
                let conn = lock_conn(conn);
                let current: Option<(i64, Option<u32>)> = conn
                    .query_row("SELECT generation, pid FROM lock WHERE id = 1", [], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                    .map_err(sqlite::database)?;
                match current {
                    Some((generation, Some(_))) if generation == self.generation => Ok(()),
                    _ => Err(StateError::LockLost),
                }
            }
            Held::Postgres { session, key } => {
                let held = postgres::Session(session)
                    .query_one(
                        "SELECT count(*) FROM pg_locks
                         WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                           AND classid::bigint = ?1 AND objid::bigint = ?2 AND objsubid = 1",
                        params![key_high(*key), key_low(*key)],
                    )
                    .and_then(|row| row.int(0));
                match held {
                    Ok(1) => Ok(()),
                    _ => Err(StateError::LockLost),
                }
            }
            Held::Released => Err(StateError::LockLost),
        }
    }

    /// Releases the lock now, reporting a failure that dropping would ignore.
    pub fn release(mut self) -> Result<(), StateError> {
        self.release_now()
    }

    fn release_now(&mut self) -> Result<(), StateError> {
        match std::mem::replace(&mut self.held, Held::Released) {
            Held::Sqlite {
                conn,
                mut stop,
                mut thread,
            } => {
                // Dropping the sender wakes the thread at once.
                stop.take();
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
                release_sqlite(&lock_conn(&conn), self.generation)
            }
            Held::Postgres { session, key } => {
                let generation = self.generation;
                session.write(true, |sql| clear(sql, generation))?;
                postgres::Session(&session)
                    .query_one("SELECT pg_advisory_unlock(?1)", params![key])?;
                // Dropping the session closes it, which would release the lock anyway.
                Ok(())
            }
            Held::Released => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // If this fails the lock goes with the session (PostgreSQL) or goes stale when its
        // lease runs out (SQLite).
        let _ = self.release_now();
    }
}

fn lock_conn(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The lock row: its generation and its holder, if any.
fn read_lock(sql: &mut dyn Sql) -> Result<(i64, Option<LockHolder>), StateError> {
    let row = sql.query_one(
        "SELECT generation, pid, host, purpose, acquired_at, heartbeat_at, lease
         FROM lock WHERE id = 1",
        &[],
    )?;
    Ok((row.int(0)?, holder(&row)?))
}

fn holder(row: &Row) -> Result<Option<LockHolder>, StateError> {
    let Some(pid) = row.opt_int(1)? else {
        return Ok(None);
    };
    Ok(Some(LockHolder {
        pid: u32::try_from(pid).unwrap_or(0),
        host: row.opt_text(2)?.unwrap_or_default(),
        purpose: row.opt_text(3)?.unwrap_or_default(),
        acquired_at: row.opt_int(4)?.unwrap_or_default(),
        heartbeat_at: row.opt_int(5)?.unwrap_or_default(),
        lease: row.opt_int(6)?.unwrap_or_default(),
    }))
}

/// A holder the row does not name (it had not written itself in yet).
fn unknown_holder() -> LockHolder {
    LockHolder {
        pid: 0,
        host: UNKNOWN_HOST.to_owned(),
        purpose: "another runner".to_owned(),
        acquired_at: wall_clock(),
        heartbeat_at: wall_clock(),
        lease: 0,
    }
}

/// The advisory lock's key: the state's database and schema.
fn lock_key(sql: &mut dyn Sql) -> Result<i64, StateError> {
    let row = sql.query_one("SELECT current_database(), current_schema()", &[])?;
    let digest = Sha256::digest(format!(
        "charter state lock\n{}\n{}",
        row.text(0)?,
        row.opt_text(1)?.unwrap_or_default()
    ));
    let mut bytes = [0u8; 8];
    for (to, from) in bytes.iter_mut().zip(digest.iter()) {
        *to = *from;
    }
    Ok(i64::from_be_bytes(bytes))
}

/// A 64-bit advisory key as `pg_locks` shows it: `classid` the high half, `objid` the low.
fn key_high(key: i64) -> i64 {
    (key >> 32) & 0xffff_ffff
}

fn key_low(key: i64) -> i64 {
    key & 0xffff_ffff
}

/// The stale rule (see the module documentation).
fn is_stale(holder: &LockHolder, host: &str, now: i64) -> bool {
    if now.saturating_sub(holder.heartbeat_at) > holder.lease {
        return true;
    }
    holder.host == host && host != UNKNOWN_HOST && process_alive(holder.pid) == Some(false)
}

/// Refreshes the heartbeat; `false` when the lock is no longer this generation's.
fn heartbeat(conn: &Connection, generation: i64) -> Result<bool, rusqlite::Error> {
    let changed = conn.execute(
        "UPDATE lock SET heartbeat_at = ?2 WHERE id = 1 AND generation = ?1 AND pid IS NOT NULL",
        rusqlite::params![generation, wall_clock()],
    )?;
    Ok(changed == 1)
}

fn release_sqlite(conn: &Connection, generation: i64) -> Result<(), StateError> {
    clear(&mut sqlite::Session(conn), generation)
}

/// Empties the lock row, if it is still this generation's.
fn clear(sql: &mut dyn Sql, generation: i64) -> Result<(), StateError> {
    sql.execute(
        "UPDATE lock SET pid = NULL, host = NULL, purpose = NULL, acquired_at = NULL,
             heartbeat_at = NULL, lease = NULL
         WHERE id = 1 AND generation = ?1",
        params![generation],
    )?;
    Ok(())
}

const UNKNOWN_HOST: &str = "unknown host";

/// This machine's name, as the kernel knows it.
pub(crate) fn this_host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(Path::new(path)).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| UNKNOWN_HOST.to_owned())
}

/// Whether a process of this host exists; `None` where that cannot be told.
fn process_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new(&format!("/proc/{pid}")).exists())
}

/// The wall clock, in seconds since the Unix epoch: the lock's heartbeat is about real time.
pub(crate) fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
