//! The journal of plan steps: the executor writes a step's intent before the API call and its
//! outcome after it. An intent is synced to disk before [`State::begin_step`] (or
//! [`State::begin_steps`], one transaction and one sync for steps started together) returns.
//! An outcome ([`State::finish_step`]) is committed without a sync of its own: it survives the
//! process being killed, and the next synced write takes it to the disk, so only a power cut (or
//! an operating-system crash) before that write can lose it — and a lost outcome only makes its
//! step look in flight. After a crash, a step with an intent and no outcome was in flight: its
//! effect is unknown and must be found out by reading the instance before anything is retried;
//! a finished step is never repeated.

use rusqlite::{OptionalExtension, params};

use super::{State, StateError};

/// One step of a plan, as the journal names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The plan it belongs to.
    pub plan: String,
    /// Its id, unique within the plan.
    pub id: String,
    /// What the call does: `create_user`, `set_license`, ….
    pub kind: String,
    /// What it acts on: a customer key, an e-mail address, an organization id.
    pub target: String,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    Succeeded,
    /// With the error, as it will be shown.
    Failed(String),
}

/// A step as the journal holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub step: Step,
    /// When the intent was last recorded.
    pub intent_at: i64,
    /// How many times the step was begun: more than one after a resume.
    pub attempts: i64,
    /// `None` while the step is in flight (or was, when its runner stopped).
    pub outcome: Option<StepOutcome>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "plan, step, kind, target, intent_at, attempts, outcome, error, finished_at";

impl State {
    /// Records the intent to carry out a step, before its call. Beginning again a step that was
    /// begun and never finished (a resume) counts another attempt; a finished step is refused.
    /// Returns the attempt number.
    pub fn begin_step(&self, step: &Step, at: i64) -> Result<i64, StateError> {
        self.write(|tx| begin_one(tx, step, at))
    }

    /// Records the intents of several steps in one synced transaction (all or none): an
    /// executor starting steps together pays for one sync. Returns each attempt number.
    pub fn begin_steps(&self, steps: &[Step], at: i64) -> Result<Vec<i64>, StateError> {
        self.write(|tx| steps.iter().map(|step| begin_one(tx, step, at)).collect())
    }

    /// Records a step's outcome, after its call.
    ///
    /// The outcome is committed without its own sync to disk: it survives the process being
    /// killed (SQLite's log is in the operating system's hands once committed), and the next
    /// synced commit — the next intent, or a customer's bookkeeping — takes it to the disk.
    /// Only a power cut in between can lose it, and a lost outcome is harmless: the step then
    /// looks in flight, and the next apply finds out what it did by reading the instance. One
    /// sync per step instead of two doubles what an apply can do on loopback.
    pub fn finish_step(
        &self,
        plan: &str,
        step: &str,
        outcome: &StepOutcome,
        at: i64,
    ) -> Result<(), StateError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = self.finish_step_unsynced(plan, step, outcome, at);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        written
    }

    fn finish_step_unsynced(
        &self,
        plan: &str,
        step: &str,
        outcome: &StepOutcome,
        at: i64,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            let existing: Option<Option<String>> = tx
                .query_row(
                    "SELECT outcome FROM journal WHERE plan = ?1 AND step = ?2",
                    params![plan, step],
                    |row| row.get(0),
                )
                .optional()?;
            match existing {
                None => Err(StateError::StepNotBegun {
                    plan: plan.to_owned(),
                    step: step.to_owned(),
                }),
                Some(Some(_)) => Err(StateError::StepFinished {
                    plan: plan.to_owned(),
                    step: step.to_owned(),
                }),
                Some(None) => {
                    let (word, error) = match outcome {
                        StepOutcome::Succeeded => ("succeeded", None),
                        StepOutcome::Failed(error) => ("failed", Some(error.as_str())),
                    };
                    tx.execute(
                        "UPDATE journal SET outcome = ?3, error = ?4, finished_at = ?5
                         WHERE plan = ?1 AND step = ?2",
                        params![plan, step, word, error, at],
                    )?;
                    Ok(())
                }
            }
        })
    }

    /// One step's journal entry, if it was ever begun.
    pub fn step(&self, plan: &str, step: &str) -> Result<Option<JournalEntry>, StateError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM journal WHERE plan = ?1 AND step = ?2"),
                params![plan, step],
                entry,
            )
            .optional()?)
    }

    /// Every step of a plan that was begun, in the order they were first begun.
    pub fn journal(&self, plan: &str) -> Result<Vec<JournalEntry>, StateError> {
        self.entries(
            &format!("SELECT {COLUMNS} FROM journal WHERE plan = ?1 ORDER BY seq"),
            plan,
        )
    }

    /// The steps of a plan that were begun and never finished: in flight when their runner
    /// stopped, with an effect on the instance that only reading it can tell.
    pub fn unfinished_steps(&self, plan: &str) -> Result<Vec<JournalEntry>, StateError> {
        self.entries(
            &format!(
                "SELECT {COLUMNS} FROM journal WHERE plan = ?1 AND outcome IS NULL ORDER BY seq"
            ),
            plan,
        )
    }

    /// The plans with unfinished steps, oldest first: what a runner resumes.
    pub fn unfinished_plans(&self) -> Result<Vec<String>, StateError> {
        let mut statement = self.conn.prepare(
            "SELECT plan FROM journal WHERE outcome IS NULL GROUP BY plan ORDER BY min(seq)",
        )?;
        let plans = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(plans)
    }

    fn entries(&self, sql: &str, plan: &str) -> Result<Vec<JournalEntry>, StateError> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let entries = statement
            .query_map([plan], entry)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }
}

fn entry(row: &rusqlite::Row<'_>) -> Result<JournalEntry, rusqlite::Error> {
    let outcome: Option<String> = row.get(6)?;
    let error: Option<String> = row.get(7)?;
    Ok(JournalEntry {
        step: Step {
            plan: row.get(0)?,
            id: row.get(1)?,
            kind: row.get(2)?,
            target: row.get(3)?,
        },
        intent_at: row.get(4)?,
        attempts: row.get(5)?,
        outcome: outcome.map(|word| match word.as_str() {
            "succeeded" => StepOutcome::Succeeded,
            _ => StepOutcome::Failed(error.unwrap_or_default()),
        }),
        finished_at: row.get(8)?,
    })
}

/// Records one step's intent inside a transaction (see [`State::begin_step`]).
fn begin_one(tx: &rusqlite::Transaction<'_>, step: &Step, at: i64) -> Result<i64, StateError> {
    let existing: Option<(String, String, Option<String>, i64)> = tx
        .query_row(
            "SELECT kind, target, outcome, attempts FROM journal
             WHERE plan = ?1 AND step = ?2",
            params![step.plan, step.id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    match existing {
        None => {
            tx.execute(
                "INSERT INTO journal (plan, step, kind, target, intent_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![step.plan, step.id, step.kind, step.target, at],
            )?;
            Ok(1)
        }
        Some((_, _, Some(_), _)) => Err(StateError::StepFinished {
            plan: step.plan.clone(),
            step: step.id.clone(),
        }),
        Some((kind, target, None, attempts)) => {
            if kind != step.kind || target != step.target {
                return Err(StateError::StepChanged {
                    plan: step.plan.clone(),
                    step: step.id.clone(),
                    was: format!("{kind} {target}"),
                    now: format!("{} {}", step.kind, step.target),
                });
            }
            tx.execute(
                "UPDATE journal SET intent_at = ?3, attempts = attempts + 1
                 WHERE plan = ?1 AND step = ?2",
                params![step.plan, step.id, at],
            )?;
            Ok(attempts.saturating_add(1))
        }
    }
}
