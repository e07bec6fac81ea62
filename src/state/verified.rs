//! What the state remembers of each organization's people between plans: the memberships and
//! team memberships last read from the instance, and when they were read (`plan::reading` says
//! how plans use them). An apply forgets the organizations it is about to change, so the next
//! plan (and the apply's own verification) reads them back.
//!
//! One table on both backends: the organization id as text, the memberships as JSON text, the
//! instant in integer seconds.

use std::collections::BTreeMap;

use super::sql::params;
use super::{StateError, Store};
use crate::plan::observed::Memberships;
use crate::plan::reading::Remembered;

impl Store {
    /// Every organization's remembered memberships, by organization id.
    pub fn remembered(&self) -> Result<BTreeMap<i64, Remembered>, StateError> {
        let rows = self.read(|sql| {
            sql.query(
                "SELECT organization, memberships, verified_at FROM verified",
                &[],
            )
        })?;
        let mut remembered = BTreeMap::new();
        for row in &rows {
            let key = row.text(0)?;
            let text = row.text(1)?;
            let verified_at = row.int(2)?;
            let corrupt = |reason: String| StateError::NotState {
                location: self.shown(),
                reason,
            };
            let id: i64 = key.parse().map_err(|_| {
                corrupt(format!(
                    "`{key}` in the verified memberships is not an organization id"
                ))
            })?;
            let memberships: Memberships = serde_json::from_str(&text).map_err(|e| {
                corrupt(format!(
                    "the memberships of organization `{key}` are not readable: {e}"
                ))
            })?;
            remembered.insert(
                id,
                Remembered {
                    memberships,
                    verified_at,
                },
            );
        }
        Ok(remembered)
    }

    /// Records, in one transaction, the memberships of these organizations as read at `at`.
    pub fn remember(&self, read: &BTreeMap<i64, Memberships>, at: i64) -> Result<(), StateError> {
        let mut rows = Vec::with_capacity(read.len());
        for (id, memberships) in read {
            let text = serde_json::to_string(memberships).map_err(|e| StateError::NotState {
                location: self.shown(),
                reason: format!("the memberships of organization `{id}` cannot be written: {e}"),
            })?;
            rows.push((id.to_string(), text));
        }
        self.write(|sql| {
            for (id, text) in &rows {
                sql.execute(
                    "INSERT INTO verified (organization, memberships, verified_at)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (organization) DO UPDATE SET memberships = excluded.memberships,
                                                     verified_at = excluded.verified_at",
                    params![id, text, at],
                )?;
            }
            Ok(())
        })
    }

    /// Forgets the memberships of these organizations (about to be changed): the next plan
    /// reads them from the instance.
    pub fn forget_memberships(&self, organizations: &[i64]) -> Result<(), StateError> {
        if organizations.is_empty() {
            return Ok(());
        }
        self.write(|sql| {
            for id in organizations {
                sql.execute(
                    "DELETE FROM verified WHERE organization = ?1",
                    params![id.to_string()],
                )?;
            }
            Ok(())
        })
    }
}
