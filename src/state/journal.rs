//! The journal of plan steps: the executor writes a step's intent before the API call and its
//! outcome after it. An intent is synced to disk before [`Store::begin_step`] (or
//! [`Store::begin_steps`], one transaction and one sync for steps started together) returns.
//! An outcome ([`Store::finish_step`]) is committed without a sync of its own: it survives the
//! process being killed, and the next synced write takes it to the disk, so only a power cut (or
//! an operating-system crash) before that write can lose it — and a lost outcome only makes its
//! step look in flight. After a crash, a step with an intent and no outcome was in flight: its
//! effect is unknown and must be found out by reading the instance before anything is retried;
//! a finished step is never repeated.

use super::sql::{Row, Sql, params};
use super::{StateError, Store};

/// The intent to carry out one step of a plan, as the journal records it before the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepIntent {
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
    pub step: StepIntent,
    /// When the intent was last recorded.
    pub intent_at: i64,
    /// How many times the step was begun: more than one after a resume.
    pub attempts: i64,
    /// `None` while the step is in flight (or was, when its runner stopped).
    pub outcome: Option<StepOutcome>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "plan, step, kind, target, intent_at, attempts, outcome, error, finished_at";

impl Store {
    /// Records the intent to carry out a step, before its call. Beginning again a step that was
    /// begun and never finished (a resume) counts another attempt; a finished step is refused.
    /// Returns the attempt number.
    pub fn begin_step(&self, step: &StepIntent, at: i64) -> Result<i64, StateError> {
        self.write(|sql| begin_one(sql, step, at))
    }

    /// Records the intents of several steps in one durable transaction (all or none): an
    /// executor starting steps together pays for one sync. Returns each attempt number.
    pub fn begin_steps(&self, steps: &[StepIntent], at: i64) -> Result<Vec<i64>, StateError> {
        self.write(|sql| steps.iter().map(|step| begin_one(sql, step, at)).collect())
    }

    /// Records a step's outcome, after its call.
    ///
    /// The outcome is committed without its own sync to disk: it survives the process being
    /// killed (SQLite's log, PostgreSQL's server, have it once committed), and the next durable
    /// commit — the next intent, or a customer's bookkeeping — takes it to the disk. Only a
    /// power cut in between can lose it, and a lost outcome is harmless: the step then looks in
    /// flight, and the next apply finds out what it did by reading the instance. One sync per
    /// step instead of two doubles what an apply can do on loopback.
    pub fn finish_step(
        &self,
        plan: &str,
        step: &str,
        outcome: &StepOutcome,
        at: i64,
    ) -> Result<(), StateError> {
        self.write_unsynced(|sql| {
            let existing = sql.query_opt(
                "SELECT outcome FROM journal WHERE plan = ?1 AND step = ?2",
                params![plan, step],
            )?;
            match existing {
                None => Err(StateError::StepNotBegun {
                    plan: plan.to_owned(),
                    step: step.to_owned(),
                }),
                Some(row) if row.opt_text(0)?.is_some() => Err(StateError::StepFinished {
                    plan: plan.to_owned(),
                    step: step.to_owned(),
                }),
                Some(_) => {
                    let (word, error) = match outcome {
                        StepOutcome::Succeeded => ("succeeded", None),
                        StepOutcome::Failed(error) => ("failed", Some(error.as_str())),
                    };
                    sql.execute(
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
        self.read(|sql| {
            sql.query_opt(
                &format!("SELECT {COLUMNS} FROM journal WHERE plan = ?1 AND step = ?2"),
                params![plan, step],
            )?
            .as_ref()
            .map(entry)
            .transpose()
        })
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
        self.read(|sql| {
            sql.query(
                "SELECT plan FROM journal WHERE outcome IS NULL GROUP BY plan ORDER BY min(seq)",
                &[],
            )?
            .iter()
            .map(|row| row.text(0))
            .collect()
        })
    }

    fn entries(&self, query: &str, plan: &str) -> Result<Vec<JournalEntry>, StateError> {
        self.read(|sql| sql.query(query, params![plan])?.iter().map(entry).collect())
    }
}

fn entry(row: &Row) -> Result<JournalEntry, StateError> {
    let outcome = row.opt_text(6)?;
    let error = row.opt_text(7)?;
    Ok(JournalEntry {
        step: StepIntent {
            plan: row.text(0)?,
            id: row.text(1)?,
            kind: row.text(2)?,
            target: row.text(3)?,
        },
        intent_at: row.int(4)?,
        attempts: row.int(5)?,
        outcome: match outcome.as_deref() {
            None => None,
            Some("succeeded") => Some(StepOutcome::Succeeded),
            Some("failed") => Some(StepOutcome::Failed(error.unwrap_or_default())),
            Some(other) => {
                return Err(StateError::Malformed {
                    what: format!("a journal outcome is `{other}`"),
                });
            }
        },
        finished_at: row.opt_int(8)?,
    })
}

/// Records one step's intent inside a transaction (see [`Store::begin_step`]).
fn begin_one(sql: &mut dyn Sql, step: &StepIntent, at: i64) -> Result<i64, StateError> {
    let existing = sql.query_opt(
        "SELECT kind, target, outcome, attempts FROM journal WHERE plan = ?1 AND step = ?2",
        params![&step.plan, &step.id],
    )?;
    let Some(existing) = existing else {
        sql.execute(
            "INSERT INTO journal (plan, step, kind, target, intent_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&step.plan, &step.id, &step.kind, &step.target, at],
        )?;
        return Ok(1);
    };
    if existing.opt_text(2)?.is_some() {
        return Err(StateError::StepFinished {
            plan: step.plan.clone(),
            step: step.id.clone(),
        });
    }
    let (kind, target, attempts) = (existing.text(0)?, existing.text(1)?, existing.int(3)?);
    if kind != step.kind || target != step.target {
        return Err(StateError::StepChanged {
            plan: step.plan.clone(),
            step: step.id.clone(),
            was: format!("{kind} {target}"),
            now: format!("{} {}", step.kind, step.target),
        });
    }
    sql.execute(
        "UPDATE journal SET intent_at = ?3, attempts = attempts + 1
         WHERE plan = ?1 AND step = ?2",
        params![&step.plan, &step.id, at],
    )?;
    Ok(attempts.saturating_add(1))
}
