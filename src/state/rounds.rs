//! The rounds of `charter run --every`: each round is due at a multiple of its interval since
//! the Unix epoch, so that every scheduler on one state agrees on when rounds are due. The
//! scheduler that holds the lock when a round is due begins it here; another that gets the
//! lock afterwards finds it finished and leaves it; one that finds it begun and never finished
//! (its scheduler died) carries it out.

use super::sql::params;
use super::{StateError, Store};

/// What the state says of a round about to be carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundStart {
    /// Nobody had begun it: it is now this runner's.
    Begun,
    /// Begun by a runner that never finished it: it is now this runner's.
    Resumed { host: String, pid: i64 },
    /// Already carried out.
    Finished {
        host: String,
        pid: i64,
        finished_at: i64,
    },
}

impl Store {
    /// Begins the round due at `due` (the caller holds the lock), unless it was carried out.
    pub fn begin_round(&self, due: i64, at: i64) -> Result<RoundStart, StateError> {
        self.write(|sql| {
            let existing = sql.query_opt(
                "SELECT host, pid, finished_at FROM rounds WHERE due = ?1",
                params![due],
            )?;
            let start = match existing {
                Some(row) => match row.opt_int(2)? {
                    Some(finished_at) => {
                        return Ok(RoundStart::Finished {
                            host: row.text(0)?,
                            pid: row.int(1)?,
                            finished_at,
                        });
                    }
                    None => RoundStart::Resumed {
                        host: row.text(0)?,
                        pid: row.int(1)?,
                    },
                },
                None => RoundStart::Begun,
            };
            sql.execute(
                "INSERT INTO rounds (due, host, pid, started_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (due) DO UPDATE SET host = ?2, pid = ?3, started_at = ?4",
                params![due, super::lock::this_host(), std::process::id(), at],
            )?;
            Ok(start)
        })
    }

    /// Records that the round due at `due` was carried out.
    pub fn finish_round(&self, due: i64, at: i64) -> Result<(), StateError> {
        self.write(|sql| {
            sql.execute(
                "UPDATE rounds SET finished_at = ?2 WHERE due = ?1",
                params![due, at],
            )?;
            Ok(())
        })
    }
}
