//! The runner's lock: two runners (`apply`, `run`, `import`) never act on one state at once.
//!
//! The lock is a row in the state database naming its holder (process id, host, purpose) with a
//! heartbeat that a thread of the holder refreshes every third of the lease. Acquiring it is
//! one immediate transaction, so two acquirers cannot both win.
//!
//! Stale rule: a held lock is taken over when its heartbeat is older than its lease (the
//! holder stopped heartbeating: it died, or its machine did), or at once when its holder ran on
//! this host and that process no longer exists (checked through `/proc` where there is one).
//! Every acquisition increases the lock's generation, so a holder that was taken over notices
//! ([`LockGuard::ensure_held`]) and never releases its successor's lock.
//!
//! Recording a manual request and reading the state need no lock: each is one transaction.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{State, StateError, connect};
use crate::model::time::format_instant;

/// Who holds the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// What it is doing (`apply`, `run`).
    pub purpose: String,
    pub acquired_at: i64,
    pub heartbeat_at: i64,
    /// Seconds without a heartbeat after which it is presumed dead.
    pub lease: i64,
}

/// How to acquire the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// What the holder is doing, for the message another runner sees.
    pub purpose: String,
    /// How long the lock outlives its holder's last heartbeat.
    pub lease: Duration,
}

impl LockOptions {
    /// The default lease: two minutes.
    pub fn new(purpose: &str) -> LockOptions {
        LockOptions {
            purpose: purpose.to_owned(),
            lease: Duration::from_secs(120),
        }
    }
}

pub(super) fn describe_locked(holder: &LockHolder) -> String {
    format!(
        "the state is locked by `{}` (process `{}` on `{}`) since {}, last heartbeat {}",
        holder.purpose,
        holder.pid,
        holder.host,
        format_instant(holder.acquired_at),
        format_instant(holder.heartbeat_at)
    )
}

impl State {
    /// Acquires the runner's lock with the default lease, or says who holds it.
    pub fn acquire_lock(&self, purpose: &str) -> Result<LockGuard, StateError> {
        self.acquire_lock_with(&LockOptions::new(purpose))
    }

    /// Acquires the runner's lock, taking over a stale one (see the module's stale rule).
    pub fn acquire_lock_with(&self, options: &LockOptions) -> Result<LockGuard, StateError> {
        let host = this_host();
        let pid = std::process::id();
        let lease = i64::try_from(options.lease.as_secs().max(1)).unwrap_or(i64::MAX);
        let now = wall_clock();
        let (generation, replaced) = self.write(|tx| {
            let (generation, holder) = read_lock(tx)?;
            if let Some(holder) = &holder
                && !is_stale(holder, &host, now)
            {
                return Err(StateError::Locked(holder.clone()));
            }
            let generation = generation.saturating_add(1);
            tx.execute(
                "UPDATE lock SET generation = ?1, pid = ?2, host = ?3, purpose = ?4,
                     acquired_at = ?5, heartbeat_at = ?5, lease = ?6
                 WHERE id = 1",
                params![generation, pid, host, options.purpose, now, lease],
            )?;
            Ok((generation, holder))
        })?;
        let conn = Arc::new(Mutex::new(connect(&self.path)?));
        let (stop, stopped) = mpsc::channel::<()>();
        let interval = (options.lease / 3).max(Duration::from_millis(100));
        let heartbeat_conn = Arc::clone(&conn);
        let thread = std::thread::Builder::new()
            .name("charter-state-lock".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    // Taken over: nothing more to refresh. (A busy database is retried at
                    // the next beat.)
                    if let Ok(false) = heartbeat(&lock_conn(&heartbeat_conn), generation) {
                        break;
                    }
                }
            })
            .map_err(|e| StateError::Open {
                path: self.path.clone(),
                reason: format!("cannot start the lock's heartbeat: {e}"),
            });
        let thread = match thread {
            Ok(thread) => thread,
            Err(error) => {
                let _ = release(&lock_conn(&conn), generation);
                return Err(error);
            }
        };
        Ok(LockGuard {
            conn,
            generation,
            replaced,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Who holds the lock now, if anyone (stale or not).
    pub fn lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Deferred)?;
        let (_, holder) = read_lock(&tx)?;
        tx.commit()?;
        Ok(holder)
    }
}

/// The lock, held until dropped (or [`LockGuard::release`]d).
#[derive(Debug)]
pub struct LockGuard {
    conn: Arc<Mutex<Connection>>,
    generation: i64,
    replaced: Option<LockHolder>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// This acquisition's generation: greater than every earlier one.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The stale holder this acquisition took the lock over from, if any.
    pub fn replaced(&self) -> Option<&LockHolder> {
        self.replaced.as_ref()
    }

    /// Errs when the lock was taken over by another runner (this one was presumed dead): the
    /// executor checks before each step and stops.
    pub fn ensure_held(&self) -> Result<(), StateError> {
        let conn = lock_conn(&self.conn);
        let current: Option<(i64, Option<u32>)> = conn
            .query_row("SELECT generation, pid FROM lock WHERE id = 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        match current {
            Some((generation, Some(_))) if generation == self.generation => Ok(()),
            _ => Err(StateError::LockLost),
        }
    }

    /// Releases the lock now, reporting a failure that dropping would ignore.
    pub fn release(mut self) -> Result<(), StateError> {
        self.stop_heartbeat();
        release(&lock_conn(&self.conn), self.generation)
    }

    fn stop_heartbeat(&mut self) {
        // Dropping the sender wakes the thread at once.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        self.stop_heartbeat();
        // If this fails the lock goes stale when its lease runs out.
        let _ = release(&lock_conn(&self.conn), self.generation);
    }
}

fn lock_conn(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn read_lock(tx: &Transaction<'_>) -> Result<(i64, Option<LockHolder>), rusqlite::Error> {
    tx.query_row(
        "SELECT generation, pid, host, purpose, acquired_at, heartbeat_at, lease
         FROM lock WHERE id = 1",
        [],
        |row| {
            let generation: i64 = row.get(0)?;
            let pid: Option<u32> = row.get(1)?;
            let holder = match pid {
                None => None,
                Some(pid) => Some(LockHolder {
                    pid,
                    host: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    purpose: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    acquired_at: row.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                    heartbeat_at: row.get::<_, Option<i64>>(5)?.unwrap_or_default(),
                    lease: row.get::<_, Option<i64>>(6)?.unwrap_or_default(),
                }),
            };
            Ok((generation, holder))
        },
    )
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
        params![generation, wall_clock()],
    )?;
    Ok(changed == 1)
}

fn release(conn: &Connection, generation: i64) -> Result<(), StateError> {
    conn.execute(
        "UPDATE lock SET pid = NULL, host = NULL, purpose = NULL, acquired_at = NULL,
             heartbeat_at = NULL, lease = NULL
         WHERE id = 1 AND generation = ?1",
        params![generation],
    )?;
    Ok(())
}

const UNKNOWN_HOST: &str = "unknown host";

/// This machine's name, as the kernel knows it.
fn this_host() -> String {
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
fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
