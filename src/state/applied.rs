//! What a plan needs from the state ([`State::memory`]) and what applying it leaves there
//! ([`State::finish_customer`], [`State::finish_staff`]): organization ids, lifecycle
//! transitions, and the snapshot of what was applied, each customer's in one transaction.

use rusqlite::params;

use super::{State, StateError};
use crate::plan::{CustomerPlan, Memory, Snapshot, StaffPlan, StaffSnapshot};

impl State {
    /// Everything the planner reads from the state.
    pub fn memory(&self) -> Result<Memory, StateError> {
        let mut memory = Memory {
            histories: self.histories()?,
            ..Memory::default()
        };
        for record in self.customers()? {
            if let Some(id) = record.organization_id {
                memory.organizations.insert(record.key.clone(), id);
            }
            if let Some(state) = record.state {
                memory.states.insert(record.key, state);
            }
        }
        let mut statement = self
            .conn
            .prepare("SELECT key, snapshot FROM applied ORDER BY key")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let text: String = row.get(1)?;
            let corrupt = |e: serde_json::Error| StateError::NotState {
                path: self.path.clone(),
                reason: format!("the applied snapshot of `{key}` is not readable: {e}"),
            };
            if let Some(customer) = key.strip_prefix("customer:") {
                let snapshot: Snapshot = serde_json::from_str(&text).map_err(corrupt)?;
                memory.applied.insert(customer.to_owned(), snapshot);
            } else if let Some(email) = key.strip_prefix("staff:") {
                let snapshot: StaffSnapshot = serde_json::from_str(&text).map_err(corrupt)?;
                memory.staff.insert(email.to_owned(), snapshot);
            }
        }
        Ok(memory)
    }

    /// Records, in one transaction, that every step of a customer in plan `plan` succeeded:
    /// its organization's id, the transitions the plan carried out (taking effect at `at`),
    /// and the snapshot of what is now applied.
    pub fn finish_customer(
        &self,
        plan: &str,
        customer: &CustomerPlan,
        organization: Option<i64>,
        at: i64,
    ) -> Result<(), StateError> {
        let snapshot = customer
            .snapshot
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        self.write(|tx| {
            super::ensure_customer(tx, &customer.key)?;
            if let Some(organization) = organization {
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT key FROM customers WHERE organization_id = ?1 AND key <> ?2",
                        params![organization, customer.key],
                        |row| row.get(0),
                    )
                    .ok();
                if let Some(holder) = holder {
                    return Err(StateError::OrganizationTaken {
                        organization,
                        customer: holder,
                    });
                }
                tx.execute(
                    "UPDATE customers SET organization_id = ?2 WHERE key = ?1",
                    params![customer.key, organization],
                )?;
            }
            for t in &customer.transitions {
                // Recorded when it really took effect: now, or its due time if that is later
                // (a plan applied early never backdates).
                let when = at.max(t.due);
                tx.execute(
                    "INSERT INTO transitions (customer, transition, from_state, to_state, at, plan)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![customer.key, t.name, t.from, t.to, when, plan],
                )?;
                let id = tx.last_insert_rowid();
                tx.execute(
                    "UPDATE customers SET state = ?2, since = ?3
                     WHERE key = ?1 AND (since IS NULL OR since <= ?3)",
                    params![customer.key, t.to, when],
                )?;
                tx.execute(
                    "UPDATE requests SET applied_by = ?4
                     WHERE customer = ?1 AND transition = ?2 AND requested_at <= ?3
                       AND applied_by IS NULL",
                    params![customer.key, t.name, when, id],
                )?;
            }
            if let Some(snapshot) = &snapshot {
                tx.execute(
                    "INSERT INTO applied (key, snapshot, plan, at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET snapshot = ?2, plan = ?3, at = ?4",
                    params![format!("customer:{}", customer.key), snapshot, plan, at],
                )?;
            }
            Ok(())
        })
    }

    /// Records that every step of a staff member succeeded: the snapshot of what is applied,
    /// or, for one removed from the policy set, forgets them.
    pub fn finish_staff(&self, plan: &str, staff: &StaffPlan, at: i64) -> Result<(), StateError> {
        let key = format!("staff:{}", staff.email);
        self.write(|tx| {
            match &staff.snapshot {
                Some(snapshot) => {
                    let text = serde_json::to_string(snapshot).unwrap_or_default();
                    tx.execute(
                        "INSERT INTO applied (key, snapshot, plan, at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (key) DO UPDATE SET snapshot = ?2, plan = ?3, at = ?4",
                        params![key, text, plan, at],
                    )?;
                }
                None => {
                    tx.execute("DELETE FROM applied WHERE key = ?1", [key.as_str()])?;
                }
            }
            Ok(())
        })
    }

    /// Records an imported customer in one transaction: its organization, and the transitions
    /// `(name, from, to)` that lead to the state it was found in, taking effect at `at`.
    pub fn import_customer(
        &self,
        customer: &str,
        organization: i64,
        transitions: &[(String, String, String)],
        at: i64,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            super::ensure_customer(tx, customer)?;
            let holder: Option<String> = tx
                .query_row(
                    "SELECT key FROM customers WHERE organization_id = ?1 AND key <> ?2",
                    params![organization, customer],
                    |row| row.get(0),
                )
                .ok();
            if let Some(holder) = holder {
                return Err(StateError::OrganizationTaken {
                    organization,
                    customer: holder,
                });
            }
            tx.execute(
                "UPDATE customers SET organization_id = ?2 WHERE key = ?1",
                params![customer, organization],
            )?;
            for (name, from, to) in transitions {
                tx.execute(
                    "INSERT INTO transitions (customer, transition, from_state, to_state, at, plan)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'import')",
                    params![customer, name, from, to, at],
                )?;
                tx.execute(
                    "UPDATE customers SET state = ?2, since = ?3 WHERE key = ?1",
                    params![customer, to, at],
                )?;
            }
            Ok(())
        })
    }

    /// Forgets a customer's organization and what was applied to it (`charter import
    /// --relink`), keeping its lifecycle history: the next import or plan links it afresh.
    pub fn unlink_customer(&self, customer: &str) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE customers SET organization_id = NULL WHERE key = ?1",
                params![customer],
            )?;
            tx.execute(
                "DELETE FROM applied WHERE key = ?1",
                params![format!("customer:{customer}")],
            )?;
            Ok(())
        })
    }
}
