//! The SQL both backends speak: every query of the state is written once, with `?1`-style
//! placeholders, over the few value types the schema uses (whole numbers, text, NULL), and run
//! by either backend through [`Sql`]. Only the schema's DDL differs between SQLite and
//! PostgreSQL (`schema.rs`).
//!
//! What that asks of a query: `INSERT … ON CONFLICT … DO NOTHING` rather than `INSERT OR
//! IGNORE`, `RETURNING id` rather than the last row id, no SQLite-only functions.

use super::StateError;
use super::schema::Dialect;

/// A value in a query or a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Value {
        Value::Int(i64::from(value))
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Value {
        Value::Text(value.clone())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// A row of a query's result, with typed getters that err (never panic) on a value of another
/// type or a column that is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn value(&self, column: usize) -> Result<&Value, StateError> {
        self.0.get(column).ok_or_else(|| StateError::Malformed {
            what: format!("a row has no column {column}"),
        })
    }

    pub fn opt_int(&self, column: usize) -> Result<Option<i64>, StateError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            Value::Text(text) => Err(StateError::Malformed {
                what: format!("column {column} holds the text `{text}` where a number belongs"),
            }),
        }
    }

    pub fn int(&self, column: usize) -> Result<i64, StateError> {
        self.opt_int(column)?.ok_or_else(|| StateError::Malformed {
            what: format!("column {column} is empty where a number belongs"),
        })
    }

    pub fn opt_text(&self, column: usize) -> Result<Option<String>, StateError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text.clone())),
            Value::Int(n) => Err(StateError::Malformed {
                what: format!("column {column} holds the number `{n}` where text belongs"),
            }),
        }
    }

    pub fn text(&self, column: usize) -> Result<String, StateError> {
        self.opt_text(column)?.ok_or_else(|| StateError::Malformed {
            what: format!("column {column} is empty where text belongs"),
        })
    }
}

/// A connection or a transaction of either backend.
pub trait Sql {
    /// The backend's dialect, for the few statements that differ (`state copy`).
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StateError>;
    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StateError>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StateError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The one row a query always gives (a count, a fixed row).
    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, StateError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StateError::Malformed {
                what: "a query that always gives a row gave none".to_owned(),
            })
    }
}

/// The parameters of a query, converted: `params![a, b]`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::state::sql::Value::from($value)),*]
    };
}
pub(crate) use params;

/// `?N` placeholders as PostgreSQL writes them (`$N`). The state's queries hold no `?` in a
/// string literal, so every `?` followed by a digit is a placeholder.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn placeholders_are_renumbered_for_postgres_and_nothing_else_changes() {
        assert_eq!(
            dollar_placeholders("UPDATE t SET a = ?2, b = ?10 WHERE k = ?1 AND c <> '?'"),
            "UPDATE t SET a = $2, b = $10 WHERE k = $1 AND c <> '?'"
        );
    }

    #[test]
    fn a_value_of_another_type_is_an_error_not_a_panic() {
        let row = Row(vec![Value::Text("x".to_owned()), Value::Null]);
        assert!(row.int(0).is_err());
        assert!(row.text(1).is_err());
        assert_eq!(row.opt_text(1).unwrap(), None);
        assert!(row.text(5).is_err());
    }
}
