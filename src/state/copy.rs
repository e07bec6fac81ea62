//! Moving a state between places and backends (`charter state copy`), and what a state holds
//! (`charter state show`).
//!
//! A copy is every row of every table of [`schema::TABLES`], read as one moment of the source
//! and written in one transaction of the target, ids included, so that the links between rows
//! (a request carried out by a transition) survive. The lock is not copied: it belongs to the
//! runners of the source.

use super::schema::{self, Dialect};
use super::sql::{Row, Sql};
use super::{StateError, Store};

/// Everything a state holds, table by table in [`schema::TABLES`] order, each table's rows in
/// the order of its first column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    pub tables: Vec<(&'static str, Vec<Row>)>,
}

impl Contents {
    /// How many rows each table holds.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        self.tables
            .iter()
            .map(|(table, rows)| (*table, rows.len()))
            .collect()
    }

    /// Whether it holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, rows)| rows.is_empty())
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        parts.join(", ")
    }
}

impl Store {
    /// Everything the state holds, as one moment of it.
    pub fn contents(&self) -> Result<Contents, StateError> {
        self.read(read_contents)
    }
}

fn read_contents(sql: &mut dyn Sql) -> Result<Contents, StateError> {
    let mut tables = Vec::with_capacity(schema::TABLES.len());
    for (table, columns) in schema::TABLES {
        let first = columns.split(',').next().unwrap_or(columns).trim();
        let rows = sql.query(
            &format!("SELECT {columns} FROM {table} ORDER BY {first}"),
            &[],
        )?;
        tables.push((*table, rows));
    }
    Ok(Contents { tables })
}

/// Copies everything `from` holds into `to`, in one transaction of `to`. A target that holds
/// anything is refused ([`StateError::NotEmpty`]) unless `replace`, which empties it first.
/// Returns what was copied.
pub fn copy(from: &Store, to: &Store, replace: bool) -> Result<Contents, StateError> {
    let contents = from.contents()?;
    let location = to.shown();
    to.write(|sql| {
        let existing = read_contents(sql)?;
        if !existing.is_empty() {
            if !replace {
                return Err(StateError::NotEmpty {
                    location,
                    what: existing.describe(),
                });
            }
            // Referencing tables first.
            for (table, _) in schema::TABLES.iter().rev() {
                sql.execute(&format!("DELETE FROM {table}"), &[])?;
            }
        }
        for ((table, columns), (_, rows)) in schema::TABLES.iter().zip(&contents.tables) {
            let count = columns.split(',').count();
            let placeholders: Vec<String> = (1..=count).map(|i| format!("?{i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({columns}) VALUES ({})",
                placeholders.join(", ")
            );
            for row in rows {
                sql.execute(&insert, &row.0)?;
            }
        }
        if sql.dialect() == Dialect::Postgres {
            // Rows inserted with their ids leave the identity sequences behind: the next id
            // must follow the largest copied.
            for (table, column) in [
                ("transitions", "id"),
                ("requests", "id"),
                ("journal", "seq"),
            ] {
                sql.query(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       coalesce(max({column}), 0) + 1, false) FROM {table}"
                    ),
                    &[],
                )?;
            }
        }
        Ok(())
    })?;
    Ok(contents)
}
