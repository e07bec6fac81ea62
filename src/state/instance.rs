//! The instance a state belongs to, and the lock two states share on one instance.
//!
//! A state's links (customer → organization id) mean something on one instance only: applied
//! to another, the same ids name other companies' organizations. So the state records the
//! instance it was first used against ([`Store::bind_instance`]) and refuses every other one:
//! another address, another database behind the embedded sandbox, or another user behind the
//! token.
//!
//! Two policy sets (two states) applying to one instance must not both create what neither
//! finds yet: the state's own lock cannot see the other state, so runners also take an
//! [`InstanceLock`], a file lock keyed by the instance, in a folder every runner of this
//! machine shares. It holds on one machine only; across machines, the executor's check that
//! no organization of the name exists right before creating one narrows the race to the
//! moment between that read and the create.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::sql::{Row, params};
use super::{StateError, Store, io_reason};

/// How an instance is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// Its address, or `embedded sandbox`.
    pub url: String,
    /// An id of the instance as a whole, when charter can read one (the embedded sandbox's
    /// database id).
    pub instance_id: Option<String>,
    /// The token's own user, when the instance says (`GET /users/me`).
    pub user: Option<TokenUser>,
}

/// The user behind the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUser {
    pub id: i64,
    pub email: String,
}

impl InstanceIdentity {
    /// The identity as one line, for messages: `https://eu1.make.com (user 7, ops@acme.example)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(id) = &self.instance_id {
            parts.push(format!("database {id}"));
        }
        if let Some(user) = &self.user {
            parts.push(format!("token user {} <{}>", user.id, user.email));
        }
        if parts.is_empty() {
            format!("`{}`", self.url)
        } else {
            format!("`{}` ({})", self.url, parts.join(", "))
        }
    }

    /// Whether `self` (the bound instance) and `other` (the one at hand) are the same: the same
    /// address, and the same instance id and token user wherever both are known.
    fn same_as(&self, other: &InstanceIdentity) -> bool {
        let agree = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.url == other.url
            && agree(self.instance_id.as_deref(), other.instance_id.as_deref())
            && match (&self.user, &other.user) {
                (Some(a), Some(b)) => a.id == b.id && a.email.eq_ignore_ascii_case(&b.email),
                _ => true,
            }
    }

    /// The key of the instance's lock: the address and the instance id, not the token's user
    /// (two tokens of one instance are one instance).
    fn lock_key(&self) -> String {
        let digest = Sha256::digest(format!(
            "{}\n{}",
            self.url,
            self.instance_id.as_deref().unwrap_or("")
        ));
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The columns `url, instance_id, user_id, user_email` of the `instance` row.
fn identity_from_row(row: &Row) -> Result<InstanceIdentity, StateError> {
    let user_id = row.opt_int(2)?;
    let email = row.opt_text(3)?;
    Ok(InstanceIdentity {
        url: row.text(0)?,
        instance_id: row.opt_text(1)?,
        user: user_id
            .zip(email)
            .map(|(id, email)| TokenUser { id, email }),
    })
}

const SELECT_INSTANCE: &str =
    "SELECT url, instance_id, user_id, user_email FROM instance WHERE id = 1";

impl Store {
    /// The instance this state is bound to, if it was ever used against one.
    pub fn instance(&self) -> Result<Option<InstanceIdentity>, StateError> {
        self.read(|sql| {
            sql.query_opt(SELECT_INSTANCE, &[])?
                .as_ref()
                .map(identity_from_row)
                .transpose()
        })
    }

    /// Binds the state to `here` on its first use (a new state, or one made before states were
    /// bound), and afterwards refuses any other instance ([`StateError::OtherInstance`]). What
    /// was unknown at binding (the token's user) is filled in when it becomes known.
    pub fn bind_instance(&self, here: &InstanceIdentity) -> Result<(), StateError> {
        let location = self.shown();
        self.write(|sql| {
            let bound = sql
                .query_opt(SELECT_INSTANCE, &[])?
                .as_ref()
                .map(identity_from_row)
                .transpose()?;
            if let Some(bound) = &bound
                && !bound.same_as(here)
            {
                return Err(StateError::OtherInstance {
                    location,
                    bound: Box::new(bound.clone()),
                    here: Box::new(here.clone()),
                });
            }
            let instance_id = bound
                .as_ref()
                .and_then(|b| b.instance_id.clone())
                .or_else(|| here.instance_id.clone());
            let user = bound
                .as_ref()
                .and_then(|b| b.user.clone())
                .or_else(|| here.user.clone());
            sql.execute(
                "INSERT INTO instance (id, url, instance_id, user_id, user_email)
                 VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET instance_id = ?2, user_id = ?3, user_email = ?4",
                params![
                    &here.url,
                    instance_id,
                    user.as_ref().map(|u| u.id),
                    user.as_ref().map(|u| u.email.clone())
                ],
            )?;
            Ok(())
        })
    }
}

/// A lock on one instance, shared by every state of this machine: held until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    /// The locked file; the lock goes with it.
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock on `instance` in `folder` (created when missing), or says who holds it.
    /// The lock is the operating system's (`flock`), so it is released when its holder ends,
    /// however it ends.
    pub fn acquire(
        folder: &Path,
        instance: &InstanceIdentity,
        holder: &str,
    ) -> Result<InstanceLock, StateError> {
        std::fs::create_dir_all(folder).map_err(|e| StateError::Folder {
            path: folder.to_owned(),
            reason: io_reason(&e),
        })?;
        let path = folder.join(format!("instance-{}.lock", instance.lock_key()));
        let cannot = |e: &std::io::Error| StateError::Open {
            path: path.clone(),
            reason: io_reason(e),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| cannot(&e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let held_by = std::fs::read_to_string(&path)
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty());
                return Err(StateError::InstanceLocked {
                    instance: instance.url.clone(),
                    holder: held_by,
                    path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(cannot(&e)),
        }
        // Who holds it, for the message another runner sees (the lock itself is the flock).
        let _ = file.set_len(0);
        let _ = writeln!(file, "{holder}");
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "charter-instance-unit-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn identity(url: &str, user: Option<(i64, &str)>) -> InstanceIdentity {
        InstanceIdentity {
            url: url.to_owned(),
            instance_id: None,
            user: user.map(|(id, email)| TokenUser {
                id,
                email: email.to_owned(),
            }),
        }
    }

    #[test]
    fn an_instance_is_locked_once_whatever_the_state_and_the_token() {
        let dir = scratch("lock");
        let a = identity("https://a.example", Some((7, "ops@a.example")));
        let first = InstanceLock::acquire(&dir, &a, "first").unwrap();
        let same_instance_other_user = identity("https://a.example", Some((9, "x@a.example")));
        match InstanceLock::acquire(&dir, &same_instance_other_user, "second") {
            Err(StateError::InstanceLocked { holder, .. }) => {
                assert_eq!(holder.as_deref(), Some("first"));
            }
            other => panic!("not refused: {other:?}"),
        }
        let b = identity("https://b.example", None);
        let _other_instance = InstanceLock::acquire(&dir, &b, "third").unwrap();
        drop(first);
        let _again = InstanceLock::acquire(&dir, &a, "fourth").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
