//! What a plan needs from the state ([`Store::memory`]) and what applying it leaves there
//! ([`Store::finish_customer`], [`Store::finish_staff`]): organization ids, lifecycle
//! transitions, and the snapshot of what was applied, each customer's in one transaction.

use super::sql::{Sql, params};
use super::{AppliedTransition, StateError, Store};
use crate::plan::{CustomerPlan, Memory, Snapshot, StaffPlan, StaffSnapshot};

impl Store {
    /// Everything the planner reads from the state, as one moment of it.
    pub fn memory(&self) -> Result<Memory, StateError> {
        let location = self.shown();
        self.read(|sql| {
            let mut memory = Memory {
                histories: super::histories(sql)?,
                ..Memory::default()
            };
            for record in super::customers(sql)? {
                if let Some(id) = record.organization_id {
                    memory.organizations.insert(record.key.clone(), id);
                }
                if let Some(state) = record.state {
                    memory.states.insert(record.key, state);
                }
            }
            for row in sql.query("SELECT key, snapshot FROM applied ORDER BY key", &[])? {
                let key = row.text(0)?;
                let text = row.text(1)?;
                let corrupt = |e: serde_json::Error| StateError::NotState {
                    location: location.clone(),
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
        })
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
        let key = format!("customer:{}", customer.key);
        let snapshot = customer
            .snapshot
            .as_ref()
            .map(|s| serialize(&key, s))
            .transpose()?;
        self.write(|sql| {
            super::ensure_customer(sql, &customer.key)?;
            if let Some(organization) = organization {
                super::link_organization(sql, &customer.key, organization)?;
            }
            for t in &customer.transitions {
                // Recorded when it really took effect: now, or its due time if that is later
                // (a plan applied early never backdates).
                super::insert_transition(
                    sql,
                    &AppliedTransition {
                        customer: customer.key.clone(),
                        transition: t.name.clone(),
                        from: t.from.clone(),
                        to: t.to.clone(),
                        at: at.max(t.due),
                        plan: Some(plan.to_owned()),
                    },
                )?;
            }
            if let Some(snapshot) = &snapshot {
                record_snapshot(sql, &key, snapshot, plan, at)?;
            }
            Ok(())
        })
    }

    /// Records that every step of a staff member succeeded: the snapshot of what is applied,
    /// or, for one removed from the policy set, forgets them.
    pub fn finish_staff(&self, plan: &str, staff: &StaffPlan, at: i64) -> Result<(), StateError> {
        let key = format!("staff:{}", staff.email);
        let snapshot = staff
            .snapshot
            .as_ref()
            .map(|s| serialize(&key, s))
            .transpose()?;
        self.write(|sql| {
            match &snapshot {
                Some(snapshot) => record_snapshot(sql, &key, snapshot, plan, at)?,
                None => {
                    sql.execute("DELETE FROM applied WHERE key = ?1", params![&key])?;
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
        self.write(|sql| {
            super::link_organization(sql, customer, organization)?;
            for (name, from, to) in transitions {
                sql.execute(
                    "INSERT INTO transitions (customer, transition, from_state, to_state, at, plan)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'import')",
                    params![customer, name, from, to, at],
                )?;
                sql.execute(
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
        self.write(|sql| {
            sql.execute(
                "UPDATE customers SET organization_id = NULL WHERE key = ?1",
                params![customer],
            )?;
            sql.execute(
                "DELETE FROM applied WHERE key = ?1",
                params![format!("customer:{customer}")],
            )?;
            Ok(())
        })
    }
}

/// A snapshot as the state stores it; a snapshot that cannot be written is an error, never an
/// empty record.
fn serialize(key: &str, snapshot: &impl serde::Serialize) -> Result<String, StateError> {
    serde_json::to_string(snapshot).map_err(|e| StateError::Snapshot {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn record_snapshot(
    sql: &mut dyn Sql,
    key: &str,
    snapshot: &str,
    plan: &str,
    at: i64,
) -> Result<(), StateError> {
    sql.execute(
        "INSERT INTO applied (key, snapshot, plan, at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET snapshot = ?2, plan = ?3, at = ?4",
        params![key, snapshot, plan, at],
    )?;
    Ok(())
}
