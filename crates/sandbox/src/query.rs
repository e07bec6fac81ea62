//! Query strings: filters, `pg[…]` pagination and `cols[]` column selection.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::collections::HashMap;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;

use super::behaviour::PageCap;
use super::error::ErrorResponse;
use crate::wire::Pg;

/// The page size when `pg[limit]` is absent.
pub const DEFAULT_LIMIT: u32 = 10;
/// The largest `pg[limit]` accepted.
pub const MAX_LIMIT: u32 = 10_000;

/// The decoded pairs of a query string, in order. Brackets may arrive URL-encoded.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Params, ErrorResponse> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(Params)
            .map_err(|error| ErrorResponse::bad_request(format!("malformed query string: {error}")))
    }
}

impl Params {
    /// The last value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// A whole-number parameter, if present.
    pub fn id(&self, name: &str) -> Result<Option<i64>, ErrorResponse> {
        self.get(name)
            .map(|value| {
                value.parse::<i64>().map_err(|_| {
                    ErrorResponse::bad_request(format!(
                        "parameter `{name}` must be a number, not `{value}`"
                    ))
                })
            })
            .transpose()
    }

    /// A required whole-number parameter.
    pub fn required_id(&self, name: &str) -> Result<i64, ErrorResponse> {
        self.id(name)?
            .ok_or_else(|| ErrorResponse::bad_request(format!("parameter `{name}` is required")))
    }
}

/// A list's pagination: which column sorts it, in which direction, and which slice is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub sort_by: &'static str,
    pub descending: bool,
    /// How many items the page holds at most.
    pub limit: u32,
    /// The limit the answer's `pg` says: `limit`, unless a silent cap says the one asked for.
    pub echoed_limit: u32,
    pub offset: u64,
}

impl Page {
    /// Reads `pg[…]`; `sortable` lists the columns a list can be sorted by, the first being the
    /// default. A `cap` serves at most its limit per page whatever was asked.
    pub fn read(
        params: &Params,
        sortable: &[&'static str],
        cap: Option<PageCap>,
    ) -> Result<Page, ErrorResponse> {
        let default_sort = sortable.first().copied().unwrap_or("id");
        let sort_by = match params.get("pg[sortBy]") {
            None => default_sort,
            Some(name) => sortable
                .iter()
                .copied()
                .find(|c| *c == name)
                .ok_or_else(|| {
                    let allowed: Vec<String> = sortable.iter().map(|c| format!("`{c}`")).collect();
                    ErrorResponse::bad_request(format!(
                        "`pg[sortBy]` cannot be `{name}`; it can be {}",
                        allowed.join(", ")
                    ))
                })?,
        };
        let descending = match params.get("pg[sortDir]") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ErrorResponse::bad_request(format!(
                    "`pg[sortDir]` must be `asc` or `desc`, not `{other}`"
                )));
            }
        };
        let limit = match params.get("pg[limit]") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ErrorResponse::bad_request(format!(
                        "`pg[limit]` must be a whole number from 1 to {MAX_LIMIT}, not `{text}`"
                    )));
                }
            },
        };
        let offset = match params.get("pg[offset]") {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                ErrorResponse::bad_request(format!(
                    "`pg[offset]` must be a whole number, not `{text}`"
                ))
            })?,
        };
        let (limit, echoed_limit) = match cap {
            Some(cap) if cap.limit < limit => {
                (cap.limit, if cap.echoed { cap.limit } else { limit })
            }
            _ => (limit, limit),
        };
        Ok(Page {
            sort_by,
            descending,
            limit,
            echoed_limit,
            offset,
        })
    }

    /// The `pg` object a list response echoes.
    pub fn echo(&self) -> Pg {
        Pg {
            sort_by: self.sort_by.to_owned(),
            sort_dir: if self.descending { "desc" } else { "asc" }.to_owned(),
            limit: self.echoed_limit,
            offset: self.offset,
        }
    }

    /// `ORDER BY … LIMIT … OFFSET …` for a table whose columns are named by `column`; ties are
    /// broken by id so that pages never overlap.
    pub fn sql(&self, column: impl Fn(&str) -> &'static str) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        format!(
            " ORDER BY {} {dir}, id {dir} LIMIT {} OFFSET {}",
            column(self.sort_by),
            self.limit,
            self.offset
        )
    }
}

/// The columns `cols[]` asked for, checked against what the objects have, in the objects' own
/// order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns(Option<Vec<&'static str>>);

impl Columns {
    /// The columns asked for, or every column when `cols[]` is absent.
    pub fn read(params: &Params, available: &[&'static str]) -> Result<Columns, ErrorResponse> {
        let wanted = params.all("cols[]");
        if wanted.is_empty() {
            return Ok(Columns(None));
        }
        if let Some(unknown) = wanted.iter().find(|name| !available.contains(name)) {
            let allowed: Vec<String> = available.iter().map(|c| format!("`{c}`")).collect();
            return Err(ErrorResponse::bad_request(format!(
                "`cols[]` cannot be `{unknown}`; it can be {}",
                allowed.join(", ")
            )));
        }
        Ok(Columns(Some(
            available
                .iter()
                .copied()
                .filter(|column| wanted.contains(column))
                .collect(),
        )))
    }

    /// The columns asked for, or `default` when `cols[]` is absent: what an endpoint answers
    /// that Make documents with fewer fields by default than it can give.
    pub fn read_or(
        params: &Params,
        available: &[&'static str],
        default: &[&'static str],
    ) -> Result<Columns, ErrorResponse> {
        let columns = Columns::read(params, available)?;
        Ok(match columns.0 {
            None => Columns(Some(default.to_vec())),
            some => Columns(some),
        })
    }

    /// The objects as JSON text, narrowed to the selected columns. Fields keep their order, and
    /// a license keeps its catalog order.
    pub fn select<T: Serialize>(&self, objects: &[T]) -> Result<Vec<Box<RawValue>>, ErrorResponse> {
        let failed = |error: serde_json::Error| ErrorResponse::internal(error.to_string());
        objects
            .iter()
            .map(|object| {
                let whole = serde_json::value::to_raw_value(object).map_err(failed)?;
                let Some(columns) = &self.0 else {
                    return Ok(whole);
                };
                let fields: HashMap<String, Box<RawValue>> =
                    serde_json::from_str(whole.get()).map_err(failed)?;
                let selected = Selected(
                    columns
                        .iter()
                        .filter_map(|c| fields.get(*c).map(|value| (*c, &**value)))
                        .collect(),
                );
                serde_json::value::to_raw_value(&selected).map_err(failed)
            })
            .collect()
    }
}

/// Some fields of an object, in order.
struct Selected<'a>(Vec<(&'static str, &'a RawValue)>);

impl Serialize for Selected<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A list response: `{<name>: [...], pg}`, or `{<name>: [...]}` for a list that is not paged.
pub struct ListBody {
    pub name: &'static str,
    pub items: Vec<Box<RawValue>>,
    pub pg: Option<Pg>,
}

impl Serialize for ListBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.name, &self.items)?;
        if let Some(pg) = &self.pg {
            map.serialize_entry("pg", pg)?;
        }
        map.end()
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern that matches `text` anywhere.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
