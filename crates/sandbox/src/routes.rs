//! The HTTP surface: Make's endpoints under `/api/v2`, the sandbox's own under `/_sandbox`, and
//! the gate every request passes (token, rate limit, role, injected faults).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;

use super::behaviour::Behaviour;
use super::db::Db;
use super::error::ErrorResponse;
use super::faults::{Faults, Generator};
use super::query::{Columns, ListBody, Page, Params};
use super::ratelimit::RateLimiter;
use super::roles::{self, TokenRole};
use super::store::{self, Caller, LookupKind, OrganizationFilter, UserFilter};
use crate::wire::{
    AdminRole, AuthUser, AuthUserEnvelope, DefaultLicense, NewOrganization, NewTeam, NewUser,
    OrganizationChanges, OrganizationCreated, OrganizationEnvelope, OrganizationRoleAssignment, Pg,
    Removed, RoleAssignment, TeamCreated, UserChanges, UserEnvelope, UserLookupEnvelope,
    UserOrganizationRoleEnvelope, UserOrganizationRoleList, UserTeamRoleEnvelope, UsersRole,
};

/// Where Make's endpoints live.
pub const API_PREFIX: &str = "/api/v2";
/// Where the sandbox's own endpoints live; Make has nothing there.
pub const CONTROL_PREFIX: &str = "/_sandbox";

/// A token the sandbox accepts: its position among the grants (the rate limiter's key) and whom
/// it acts as.
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    pub index: usize,
    pub caller: Caller,
}

/// What every request can reach.
#[derive(Debug)]
pub struct Shared {
    pub db: Db,
    pub tokens: HashMap<String, Grant>,
    pub limiter: Option<RateLimiter>,
    pub faults: Faults,
    pub behaviour: Behaviour,
    pub generator: Mutex<Generator>,
}

pub(super) type AppState = Arc<Shared>;

/// Put in each request's extensions by the server: notifying it drops the request's connection
/// without a response.
#[derive(Clone, Debug)]
pub struct ConnectionKill(pub Arc<Notify>);

/// The whole application.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route(
            "/admin/organizations",
            get(list_organizations).post(create_organization),
        )
        .route(
            "/admin/organizations/{id}",
            patch(update_organization).delete(delete_organization),
        )
        .route(
            "/admin/system-settings/default-license",
            get(default_license),
        )
        .route("/organizations/{id}/usage", get(usage))
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/users/lookup", get(lookup_user))
        .route("/admin/users/admins-roles", get(admin_roles))
        .route("/admin/users/{id}", patch(update_user).delete(delete_user))
        .route("/users/roles", get(users_roles))
        .route("/users/me", get(me))
        .route(
            "/users/{id}/user-organization-roles",
            get(user_organization_roles),
        )
        .route(
            "/admin/users/{user}/user-organization-roles/{organization}",
            post(set_organization_role),
        )
        .route(
            "/admin/users/{user}/user-organization-roles/{organization}/transfer",
            post(transfer_ownership),
        )
        .route("/admin/teams", get(list_teams).post(create_team))
        .route(
            "/admin/users/{user}/user-team-roles/{team}",
            post(set_team_role),
        );
    Router::new()
        .nest(API_PREFIX, api)
        .nest(CONTROL_PREFIX, super::control::router())
        .fallback(no_endpoint)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), gate))
        .with_state(shared)
}

async fn no_endpoint(method: Method, uri: axum::http::Uri) -> ErrorResponse {
    ErrorResponse::not_found(format!("no endpoint `{method} {}`", uri.path()))
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ErrorResponse {
    ErrorResponse::method_not_allowed(format!("`{}` does not accept `{method}`", uri.path()))
}

/// The token in `Authorization: Token …` (or `Bearer …`).
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| token.trim())
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Token, rate limit, role and injected faults, in that order; then the handler; then, for a
/// successful write that drew "lost", the dropped connection.
async fn gate(State(shared): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let control = path.starts_with(CONTROL_PREFIX);
    let write = is_write(request.method());
    let Some(token) = presented_token(request.headers()) else {
        return ErrorResponse::unauthorized(
            "no API token: send `Authorization: Token <your token>`",
        )
        .into_response();
    };
    let Some(grant) = shared.tokens.get(token).copied() else {
        return ErrorResponse::unauthorized("the API token is not valid").into_response();
    };
    if !control
        && let Some(limiter) = &shared.limiter
        && !limiter.allow(grant.index)
    {
        return ErrorResponse::too_many_requests(format!(
            "this token is limited to {}",
            limiter.describe()
        ))
        .into_response();
    }
    let role = grant.caller.role;
    let admin_path = path.starts_with(&format!("{API_PREFIX}/admin/"));
    if control && role != TokenRole::SystemAdministrator {
        return ErrorResponse::forbidden(
            "the sandbox's own endpoints need a token with the `sa` role",
        )
        .into_response();
    }
    if admin_path && !role.can_read_admin() {
        return ErrorResponse::forbidden(
            "this endpoint needs a user with an instance administration role",
        )
        .into_response();
    }
    if admin_path && write && !role.can_write_admin() {
        return ErrorResponse::forbidden(format!(
            "a token with the `{}` role can read but not change the instance",
            role.word()
        ))
        .into_response();
    }
    let draw = if control || !shared.faults.any() {
        Default::default()
    } else {
        let mut generator = match shared.generator.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        generator.draw(&shared.faults)
    };
    if draw.too_many_requests {
        return ErrorResponse::too_many_requests("injected fault: 429").into_response();
    }
    if draw.server_error {
        return ErrorResponse::internal("injected fault: 500").into_response();
    }
    if draw.slow {
        tokio::time::sleep(shared.faults.latency).await;
    }
    let kill = request.extensions().get::<ConnectionKill>().cloned();
    request.extensions_mut().insert(grant.caller);
    let response = next.run(request).await;
    if draw.lost
        && write
        && response.status().is_success()
        && let Some(ConnectionKill(kill)) = kill
    {
        // The write is committed; the client never hears so. The server drops this future
        // together with the connection.
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    response
}

/// A JSON request body, parsed strictly: it must be sent as `application/json`, and a wrong
/// type or an unknown field is a 400 that names the field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ErrorResponse;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, ErrorResponse> {
        let (json, bytes) = read_body(request, state).await?;
        decode(json, &bytes).map(Body)
    }
}

/// A JSON body that may be left out: no bytes at all is `None`; anything else is read as
/// [`Body`] reads it.
pub struct MaybeBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeBody<T> {
    type Rejection = ErrorResponse;

    async fn from_request(request: Request, state: &S) -> Result<MaybeBody<T>, ErrorResponse> {
        let (json, bytes) = read_body(request, state).await?;
        if bytes.is_empty() {
            return Ok(MaybeBody(None));
        }
        decode(json, &bytes).map(|value| MaybeBody(Some(value)))
    }
}

/// Whether the body was sent as JSON, and its bytes.
async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(bool, Bytes), ErrorResponse> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|error| ErrorResponse::bad_request(format!("cannot read the body: {error}")))?;
    Ok((json, bytes))
}

/// A JSON body read strictly: errors name the field.
fn decode<T: DeserializeOwned>(json: bool, bytes: &Bytes) -> Result<T, ErrorResponse> {
    {
        if !json {
            return Err(ErrorResponse::bad_request(
                "the body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            if path == "." {
                ErrorResponse::bad_request(format!("the body is not valid: {}", error.inner()))
            } else {
                ErrorResponse::bad_request(format!("`{path}`: {}", error.inner()))
            }
        })?;
        deserializer.end().map_err(|error| {
            ErrorResponse::bad_request(format!("the body is not valid: {error}"))
        })?;
        Ok(value)
    }
}

pub(super) fn parse_id(what: &str, text: &str) -> Result<i64, ErrorResponse> {
    text.parse::<i64>()
        .map_err(|_| ErrorResponse::bad_request(format!("`{text}` is not a valid {what} id")))
}

pub(super) fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
}

pub(super) type Answer = Result<Response, ErrorResponse>;

pub(super) fn answer<T: serde::Serialize>(body: T) -> Answer {
    Ok(Json(body).into_response())
}

fn list<T: serde::Serialize>(
    name: &'static str,
    items: &[T],
    columns: &Columns,
    pg: Option<Pg>,
) -> Answer {
    answer(ListBody {
        name,
        items: columns.select(items)?,
        pg,
    })
}

// Organizations

/// What an organization in a list has without `cols[]`: the fields of Make's examples of lists
/// of organizations (`{id, name, timezoneId}`); a client asks for the rest.
const ORGANIZATION_DEFAULT_COLUMNS: &[&str] = &["id", "name", "timezoneId"];

const ORGANIZATION_COLUMNS: &[&str] = &[
    "id",
    "name",
    "timezoneId",
    "countryId",
    "license",
    "teams",
    "isPaused",
    "externalId",
    "scenarios",
    "activeScenarios",
    "deleted",
];

async fn list_organizations(State(shared): State<AppState>, params: Params) -> Answer {
    let filter = OrganizationFilter {
        id: params.id("id")?,
        name: params.get("name").map(str::to_owned),
        external_id: params.get("externalId").map(str::to_owned),
    };
    let page = Page::read(&params, store::ORGANIZATION_SORT, shared.behaviour.page_cap)?;
    let columns = Columns::read_or(&params, ORGANIZATION_COLUMNS, ORGANIZATION_DEFAULT_COLUMNS)?;
    let pg = page.echo();
    let organizations = shared
        .db
        .run(move |conn| store::organizations(conn, &filter, &page))
        .await?;
    list("organizations", &organizations, &columns, Some(pg))
}

async fn create_organization(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(new): Body<NewOrganization>,
) -> Answer {
    let user_org_admin = shared.behaviour.user_org_admin;
    let (organization, user_organization_role) = shared
        .db
        .write(move |tx| store::create_organization(tx, &new, caller, user_org_admin))
        .await?;
    answer(OrganizationCreated {
        organization: organization.into(),
        user_organization_role,
    })
}

async fn update_organization(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Body(changes): Body<OrganizationChanges>,
) -> Answer {
    let id = parse_id("organization", &id)?;
    let organization = shared
        .db
        .write(move |tx| store::update_organization(tx, id, &changes))
        .await?;
    answer(OrganizationEnvelope {
        organization: organization.into(),
    })
}

async fn delete_organization(State(shared): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = parse_id("organization", &id)?;
    shared
        .db
        .write(move |tx| store::delete_organization(tx, id))
        .await?;
    answer(json!({ "organization": id }))
}

async fn default_license(State(shared): State<AppState>) -> Answer {
    let default_license = shared.db.run(|conn| store::default_license(conn)).await?;
    answer(DefaultLicense { default_license })
}

async fn usage(State(shared): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = parse_id("organization", &id)?;
    let today = today();
    let usage = shared
        .db
        .run(move |conn| store::usage(conn, id, today))
        .await?;
    answer(usage)
}

// Users

const USER_COLUMNS: &[&str] = &[
    "id",
    "name",
    "email",
    "usersAdminsRoleId",
    "language",
    "countryId",
    "timezoneId",
    "localeId",
    "deleted",
];

async fn list_users(State(shared): State<AppState>, params: Params) -> Answer {
    let filter = UserFilter {
        organization_id: params.id("organizationId")?,
        team_id: params.id("teamId")?,
        organization_role_id: params.id("organizationRoleId")?,
        team_role_id: params.id("teamRoleId")?,
        email: params.get("email").map(str::to_owned),
        name: params.get("name").map(str::to_owned),
    };
    let page = Page::read(&params, store::USER_SORT, shared.behaviour.page_cap)?;
    let columns = Columns::read(&params, USER_COLUMNS)?;
    let pg = page.echo();
    let users = shared
        .db
        .run(move |conn| store::users(conn, &filter, &page))
        .await?;
    list("users", &users, &columns, Some(pg))
}

async fn lookup_user(State(shared): State<AppState>, params: Params) -> Answer {
    let q = params
        .get("q")
        .map(str::to_owned)
        .ok_or_else(|| ErrorResponse::bad_request("parameter `q` is required"))?;
    let kind = match params.get("type") {
        Some("email") => LookupKind::Email,
        Some("id") => LookupKind::Id,
        Some(other) => {
            return Err(ErrorResponse::bad_request(format!(
                "parameter `type` must be `email` or `id`, not `{other}`"
            )));
        }
        None => return Err(ErrorResponse::bad_request("parameter `type` is required")),
    };
    let user = shared
        .db
        .run(move |conn| store::lookup(conn, &q, kind))
        .await?;
    answer(UserLookupEnvelope { user })
}

async fn create_user(State(shared): State<AppState>, Body(new): Body<NewUser>) -> Answer {
    let user = shared
        .db
        .write(move |tx| store::create_user(tx, &new))
        .await?;
    answer(UserEnvelope { user })
}

async fn me(State(shared): State<AppState>, Extension(caller): Extension<Caller>) -> Answer {
    let user = shared
        .db
        .run(move |conn| store::user(conn, caller.user_id))
        .await?;
    answer(AuthUserEnvelope {
        auth_user: AuthUser::from(user),
    })
}

async fn update_user(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(changes): Body<UserChanges>,
) -> Answer {
    let id = parse_id("user", &id)?;
    let user = shared
        .db
        .write(move |tx| store::update_user(tx, id, &changes, caller))
        .await?;
    answer(UserEnvelope { user })
}

async fn delete_user(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Answer {
    let id = parse_id("user", &id)?;
    if params.get("confirmed") != Some("true") {
        return Err(ErrorResponse::bad_request(
            "deleting a user is permanent: confirm with `confirmed=true`",
        ));
    }
    let callers: Vec<i64> = shared.tokens.values().map(|g| g.caller.user_id).collect();
    shared
        .db
        .write(move |tx| store::delete_user(tx, id, &callers))
        .await?;
    answer(json!({ "user": id }))
}

/// What a role has without `cols[]`: Make documents `{id, name}` as the default answer of both
/// role lists.
const ROLE_DEFAULT_COLUMNS: &[&str] = &["id", "name"];

const ADMIN_ROLE_COLUMNS: &[&str] = &["id", "name", "permissions", "category", "identifier"];

async fn admin_roles(params: Params) -> Answer {
    let category = params.get("category");
    if let Some(category) = category
        && !roles::ADMIN_ROLES.iter().any(|r| r.category == category)
    {
        return Err(ErrorResponse::bad_request(format!(
            "parameter `category` must be `system`, `developers` or `support`, not `{category}`"
        )));
    }
    let columns = Columns::read_or(&params, ADMIN_ROLE_COLUMNS, ROLE_DEFAULT_COLUMNS)?;
    let users_admins_roles: Vec<AdminRole> = roles::ADMIN_ROLES
        .iter()
        .filter(|r| category.is_none_or(|c| r.category == c))
        .map(|r| AdminRole {
            id: r.id,
            name: r.name.to_owned(),
            permissions: r.permissions.iter().map(|p| (*p).to_owned()).collect(),
            category: r.category.to_owned(),
            identifier: r.identifier.to_owned(),
        })
        .collect();
    list("usersAdminsRoles", &users_admins_roles, &columns, None)
}

// Roles

const USERS_ROLE_COLUMNS: &[&str] = &["id", "name", "subsidiary", "category", "permissions"];

async fn users_roles(params: Params) -> Answer {
    let category = params.get("category");
    if let Some(category) = category
        && !matches!(category, "organization" | "team")
    {
        return Err(ErrorResponse::bad_request(format!(
            "parameter `category` must be `organization` or `team`, not `{category}`"
        )));
    }
    let columns = Columns::read_or(&params, USERS_ROLE_COLUMNS, ROLE_DEFAULT_COLUMNS)?;
    let users_roles: Vec<UsersRole> = roles::USERS_ROLES
        .iter()
        .filter(|r| category.is_none_or(|c| r.category == c))
        .map(|r| UsersRole {
            id: r.id,
            name: r.name.to_owned(),
            subsidiary: false,
            category: r.category.to_owned(),
            permissions: r.permissions.iter().map(|p| (*p).to_owned()).collect(),
        })
        .collect();
    list("usersRoles", &users_roles, &columns, None)
}

async fn user_organization_roles(State(shared): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = parse_id("user", &id)?;
    let user_organization_roles = shared
        .db
        .run(move |conn| store::organization_roles_of(conn, id))
        .await?;
    answer(UserOrganizationRoleList {
        user_organization_roles,
    })
}

async fn set_organization_role(
    State(shared): State<AppState>,
    Path((user, organization)): Path<(String, String)>,
    MaybeBody(assignment): MaybeBody<OrganizationRoleAssignment>,
) -> Answer {
    let user = parse_id("user", &user)?;
    let organization = parse_id("organization", &organization)?;
    let Some(users_role_id) = assignment.unwrap_or_default().users_role_id else {
        shared
            .db
            .write(move |tx| store::remove_from_organization(tx, user, organization))
            .await?;
        return answer(Removed {});
    };
    let user_organization_role = shared
        .db
        .write(move |tx| store::set_organization_role(tx, user, organization, users_role_id))
        .await?;
    answer(UserOrganizationRoleEnvelope {
        user_organization_role,
    })
}

async fn transfer_ownership(
    State(shared): State<AppState>,
    Path((user, organization)): Path<(String, String)>,
) -> Answer {
    let user = parse_id("user", &user)?;
    let organization = parse_id("organization", &organization)?;
    let previous_owner = shared.behaviour.previous_owner;
    let user_organization_roles = shared
        .db
        .write(move |tx| store::transfer_ownership(tx, user, organization, previous_owner))
        .await?;
    answer(UserOrganizationRoleList {
        user_organization_roles,
    })
}

// Teams

async fn list_teams(State(shared): State<AppState>, params: Params) -> Answer {
    let organization_id = params.required_id("organizationId")?;
    let page = Page::read(&params, store::TEAM_SORT, shared.behaviour.page_cap)?;
    let columns = Columns::read(&params, &["id", "name", "organizationId"])?;
    let pg = page.echo();
    let teams = shared
        .db
        .run(move |conn| store::teams(conn, organization_id, &page))
        .await?;
    list("teams", &teams, &columns, Some(pg))
}

async fn create_team(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(new): Body<NewTeam>,
) -> Answer {
    let (team, user_team_role) = shared
        .db
        .write(move |tx| store::create_team(tx, &new, caller))
        .await?;
    answer(TeamCreated {
        team,
        user_team_role,
    })
}

async fn set_team_role(
    State(shared): State<AppState>,
    Path((user, team)): Path<(String, String)>,
    Body(assignment): Body<RoleAssignment>,
) -> Answer {
    let user = parse_id("user", &user)?;
    let team = parse_id("team", &team)?;
    let user_team_role = shared
        .db
        .write(move |tx| store::set_team_role(tx, user, team, assignment.users_role_id))
        .await?;
    answer(UserTeamRoleEnvelope { user_team_role })
}
