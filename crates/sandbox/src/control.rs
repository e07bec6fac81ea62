//! The sandbox's own endpoints under `/_sandbox`: staging what Make's API cannot set (usage,
//! hand-edited licenses, external ids, the default license) for tests and demos. Only SA tokens
//! reach them; they are never rate-limited or faulted.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{patch, put};
use serde::{Deserialize, Serialize};

use super::routes::{Answer, AppState, Body, answer, parse_id, today};
use super::store;
use crate::wire::{DailyUsage, DefaultLicense, License, Organization};

/// The routes, relative to `/_sandbox`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/organizations/{id}", patch(set_attributes))
        .route("/organizations/{id}/usage", put(set_usage))
        .route("/organizations/{id}/license", put(overwrite_license))
        .route("/default-license", put(set_default_license))
}

/// `{organization}`: the sandbox's own endpoints show the whole organization, staged fields
/// included.
#[derive(Debug, Serialize)]
struct Staged {
    organization: Organization,
}

/// The body of `PUT /_sandbox/organizations/{id}/usage`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageChanges {
    #[serde(default)]
    pub scenarios: Option<i64>,
    #[serde(default)]
    pub active_scenarios: Option<i64>,
    #[serde(default)]
    pub data: Vec<DailyUsage>,
}

async fn set_usage(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Body(changes): Body<UsageChanges>,
) -> Answer {
    let id = parse_id("organization", &id)?;
    let today = today();
    let usage = shared
        .db
        .write(move |tx| {
            store::set_usage(
                tx,
                id,
                changes.scenarios,
                changes.active_scenarios,
                &changes.data,
            )?;
            store::usage(tx, id, today)
        })
        .await?;
    answer(usage)
}

/// The body of `PATCH /_sandbox/organizations/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeChanges {
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    pub external_id: Option<Option<String>>,
    #[serde(default)]
    pub is_paused: Option<bool>,
}

/// Reads a field that is present (even as `null`) as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

async fn set_attributes(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Body(changes): Body<AttributeChanges>,
) -> Answer {
    let id = parse_id("organization", &id)?;
    let organization = shared
        .db
        .write(move |tx| {
            store::set_organization_attributes(tx, id, changes.external_id, changes.is_paused)?;
            store::organization(tx, id)
        })
        .await?;
    answer(Staged { organization })
}

async fn overwrite_license(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Body(license): Body<License>,
) -> Answer {
    let id = parse_id("organization", &id)?;
    let organization = shared
        .db
        .write(move |tx| {
            store::overwrite_license(tx, id, &license)?;
            store::organization(tx, id)
        })
        .await?;
    answer(Staged { organization })
}

async fn set_default_license(
    State(shared): State<AppState>,
    Body(license): Body<License>,
) -> Answer {
    let default_license = shared
        .db
        .write(move |tx| {
            store::set_default_license(tx, &license)?;
            store::default_license(tx)
        })
        .await?;
    answer(DefaultLicense { default_license })
}
