//! What the endpoints do to the database, with Make's rules: checked licenses, one owner per
//! organization, unique e-mail addresses, membership before transfer.
//!
//! Every function takes the connection (or the open transaction) it works in and answers with
//! Make's error where a rule is broken; the routes only read requests and write responses.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::behaviour::{PreviousOwner, UserOrgAdmin};
use super::db::{self, DEFAULT_LICENSE};
use super::error::ErrorResponse;
use super::license;
use super::query::{Page, contains_pattern};
use super::roles::{self, TokenRole};
use crate::wire::{
    DailyUsage, License, NewOrganization, NewTeam, NewUser, Organization, OrganizationChanges,
    Team, TeamSummary, Usage, UsageDay, User, UserChanges, UserLookup, UserOrganizationRole,
    UserTeamRole,
};

/// The country of objects created without one.
pub const DEFAULT_COUNTRY_ID: i64 = 1;
/// The time zone of objects created without one.
pub const DEFAULT_TIMEZONE_ID: i64 = 113;
/// The locale of users created without one.
pub const DEFAULT_LOCALE_ID: i64 = 1;
/// The name of the team every new organization starts with.
pub const FIRST_TEAM_NAME: &str = "My Team";
/// How many days `usage` covers, ending today.
pub const USAGE_DAYS: usize = 30;

/// Who is calling: the token's role and the built-in user it acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub role: TokenRole,
    pub user_id: i64,
}

fn nonempty(field: &str, text: &str) -> Result<String, ErrorResponse> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ErrorResponse::bad_request(format!(
            "`{field}` must not be empty"
        )));
    }
    Ok(text.to_owned())
}

fn validated(license: &License) -> Result<(), ErrorResponse> {
    let problems = license::problems(license);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ErrorResponse::invalid(problems))
    }
}

// Organizations

/// Which organizations a list returns.
#[derive(Clone, Debug, Default)]
pub struct OrganizationFilter {
    pub id: Option<i64>,
    /// Matches names containing this, ignoring case.
    pub name: Option<String>,
    pub external_id: Option<String>,
}

/// Columns an organization list can be sorted by; the first is the default.
pub const ORGANIZATION_SORT: &[&str] = &["id", "name"];

/// An organization's columns, its teams gathered as JSON in the same query so that a page of
/// organizations costs one statement, not one per organization.
const ORGANIZATION_COLUMNS: &str = "id, name, timezone_id, country_id, license, is_paused, \
    external_id, scenarios, active_scenarios, \
    (SELECT json_group_array(json_object('id', t.id, 'name', t.name)) \
     FROM (SELECT id, name FROM teams WHERE organization_id = organizations.id ORDER BY id) t)";

fn organization_from_row(row: &Row<'_>) -> Result<Organization, ErrorResponse> {
    let license: String = row.get(4)?;
    let teams: String = row.get(9)?;
    Ok(Organization {
        id: row.get(0)?,
        name: row.get(1)?,
        timezone_id: row.get(2)?,
        country_id: row.get(3)?,
        license: db::read_license(&license)?,
        teams: serde_json::from_str::<Vec<TeamSummary>>(&teams).map_err(|error| {
            ErrorResponse::internal(format!("stored teams are not JSON: {error}"))
        })?,
        is_paused: row.get(5)?,
        external_id: row.get(6)?,
        scenarios: row.get(7)?,
        active_scenarios: row.get(8)?,
        deleted: false,
    })
}

/// The organization with this id, or 404.
pub fn organization(conn: &Connection, id: i64) -> Result<Organization, ErrorResponse> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = ?1"
    ))?;
    let mut rows = statement.query(params![id])?;
    match rows.next()? {
        Some(row) => organization_from_row(row),
        None => Err(organization_not_found(id)),
    }
}

fn organization_not_found(id: i64) -> ErrorResponse {
    ErrorResponse::not_found(format!("organization `{id}` does not exist"))
}

fn require_organization(conn: &Connection, id: i64) -> Result<(), ErrorResponse> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM organizations WHERE id = ?1")?
        .query_row(params![id], |row| row.get(0))
        .optional()?;
    found.map(|_| ()).ok_or_else(|| organization_not_found(id))
}

/// One page of organizations.
pub fn organizations(
    conn: &Connection,
    filter: &OrganizationFilter,
    page: &Page,
) -> Result<Vec<Organization>, ErrorResponse> {
    let mut sql = format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE 1 = 1");
    let mut values = Vec::new();
    if let Some(id) = filter.id {
        sql.push_str(" AND id = ?");
        values.push(SqlValue::Integer(id));
    }
    if let Some(name) = &filter.name {
        sql.push_str(" AND name LIKE ? ESCAPE '\\'");
        values.push(SqlValue::Text(contains_pattern(name)));
    }
    if let Some(external_id) = &filter.external_id {
        sql.push_str(" AND external_id = ?");
        values.push(SqlValue::Text(external_id.clone()));
    }
    sql.push_str(&page.sql(|column| match column {
        "name" => "name COLLATE NOCASE",
        _ => "id",
    }));
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(values))?;
    let mut organizations = Vec::new();
    while let Some(row) = rows.next()? {
        organizations.push(organization_from_row(row)?);
    }
    Ok(organizations)
}

/// The instance default license.
pub fn default_license(conn: &Connection) -> Result<License, ErrorResponse> {
    let text: String = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row(params![DEFAULT_LICENSE], |row| row.get(0))?;
    db::read_license(&text)
}

/// Replaces the instance default license (sandbox control only; Make has no such endpoint).
pub fn set_default_license(conn: &Connection, license: &License) -> Result<(), ErrorResponse> {
    validated(license)?;
    conn.execute(
        "UPDATE settings SET value = ?1 WHERE key = ?2",
        params![db::write_license(license)?, DEFAULT_LICENSE],
    )?;
    Ok(())
}

/// Creates an organization with its owner and its first team; answers it with the owner's
/// membership. The user named by `userOrgAdmin` (the caller without one) becomes the owner, or,
/// when `user_org_admin` says so, an Admin beside the caller as owner.
pub fn create_organization(
    conn: &Connection,
    new: &NewOrganization,
    caller: Caller,
    user_org_admin: UserOrgAdmin,
) -> Result<(Organization, UserOrganizationRole), ErrorResponse> {
    let name = nonempty("name", &new.name)?;
    let license = match &new.license {
        Some(license) => {
            validated(license)?;
            license.clone()
        }
        None => default_license(conn)?,
    };
    let named = new.user_org_admin.unwrap_or(caller.user_id);
    if user_row(conn, named)?.is_none() {
        return Err(ErrorResponse::bad_request(format!(
            "`userOrgAdmin` names user `{named}`, who does not exist"
        )));
    }
    let (owner, admin) = match user_org_admin {
        UserOrgAdmin::Admin if named != caller.user_id => (caller.user_id, Some(named)),
        _ => (named, None),
    };
    conn.execute(
        "INSERT INTO organizations (name, timezone_id, country_id, license) VALUES (?1, ?2, ?3, ?4)",
        params![
            name,
            new.timezone_id.unwrap_or(DEFAULT_TIMEZONE_ID),
            new.country_id.unwrap_or(DEFAULT_COUNTRY_ID),
            db::write_license(&license)?,
        ],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO organization_roles (user_id, organization_id, users_role_id) VALUES (?1, ?2, ?3)",
        params![owner, id, roles::OWNER],
    )?;
    if let Some(admin) = admin {
        conn.execute(
            "INSERT INTO organization_roles (user_id, organization_id, users_role_id) VALUES (?1, ?2, ?3)",
            params![admin, id, roles::ORGANIZATION_ADMIN],
        )?;
    }
    conn.execute(
        "INSERT INTO teams (name, organization_id) VALUES (?1, ?2)",
        params![FIRST_TEAM_NAME, id],
    )?;
    conn.execute(
        "INSERT INTO team_roles (user_id, team_id, users_role_id) VALUES (?1, ?2, ?3)",
        params![owner, conn.last_insert_rowid(), roles::TEAM_ADMIN],
    )?;
    let owner_role = UserOrganizationRole {
        user_id: owner,
        organization_id: id,
        users_role_id: roles::OWNER,
        invitation: None,
    };
    Ok((organization(conn, id)?, owner_role))
}

/// Changes an organization; a license replaces the stored license as a whole.
pub fn update_organization(
    conn: &Connection,
    id: i64,
    changes: &OrganizationChanges,
) -> Result<Organization, ErrorResponse> {
    require_organization(conn, id)?;
    if let Some(name) = &changes.name {
        let name = nonempty("name", name)?;
        conn.execute(
            "UPDATE organizations SET name = ?1 WHERE id = ?2",
            params![name, id],
        )?;
    }
    if let Some(license) = &changes.license {
        validated(license)?;
        conn.execute(
            "UPDATE organizations SET license = ?1 WHERE id = ?2",
            params![db::write_license(license)?, id],
        )?;
    }
    if let Some(timezone_id) = changes.timezone_id {
        conn.execute(
            "UPDATE organizations SET timezone_id = ?1 WHERE id = ?2",
            params![timezone_id, id],
        )?;
    }
    if let Some(country_id) = changes.country_id {
        conn.execute(
            "UPDATE organizations SET country_id = ?1 WHERE id = ?2",
            params![country_id, id],
        )?;
    }
    if let Some(next_reset) = &changes.next_reset {
        let valid = next_reset.parse::<jiff::civil::Date>().is_ok()
            || next_reset.parse::<jiff::Timestamp>().is_ok();
        if !valid {
            return Err(ErrorResponse::bad_request(format!(
                "`nextReset` must be a date or an instant, not `{next_reset}`"
            )));
        }
        conn.execute(
            "UPDATE organizations SET next_reset = ?1 WHERE id = ?2",
            params![next_reset, id],
        )?;
    }
    // `performReset` renews the period's consumption; the sandbox keeps no running counters,
    // so accepting it is all there is to do.
    organization(conn, id)
}

/// Deletes an organization and everything in it.
pub fn delete_organization(conn: &Connection, id: i64) -> Result<(), ErrorResponse> {
    require_organization(conn, id)?;
    conn.execute("DELETE FROM organizations WHERE id = ?1", params![id])?;
    Ok(())
}

/// The last [`USAGE_DAYS`] days of usage ending `today`, oldest first, zero where none was set.
pub fn usage(conn: &Connection, id: i64, today: jiff::civil::Date) -> Result<Usage, ErrorResponse> {
    require_organization(conn, id)?;
    let mut days = vec![today];
    for _ in 1..USAGE_DAYS {
        let Some(earliest) = days.last().and_then(|d| d.yesterday().ok()) else {
            break;
        };
        days.push(earliest);
    }
    days.reverse();
    let mut statement = conn.prepare_cached(
        "SELECT operations, data_transfer FROM daily_usage WHERE organization_id = ?1 AND date = ?2",
    )?;
    let mut data = Vec::with_capacity(days.len());
    for day in days {
        let date = day.to_string();
        let found: Option<(i64, i64)> = statement
            .query_row(params![id, date], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let (operations, data_transfer) = found.unwrap_or((0, 0));
        data.push(UsageDay::from(DailyUsage {
            date,
            operations,
            data_transfer,
        }));
    }
    Ok(Usage { data })
}

/// Sets an organization's scenario counts and daily usage (sandbox control and seeding).
pub fn set_usage(
    conn: &Connection,
    id: i64,
    scenarios: Option<i64>,
    active_scenarios: Option<i64>,
    data: &[DailyUsage],
) -> Result<(), ErrorResponse> {
    require_organization(conn, id)?;
    if let Some(scenarios) = scenarios {
        conn.execute(
            "UPDATE organizations SET scenarios = ?1 WHERE id = ?2",
            params![scenarios, id],
        )?;
    }
    if let Some(active) = active_scenarios {
        conn.execute(
            "UPDATE organizations SET active_scenarios = ?1 WHERE id = ?2",
            params![active, id],
        )?;
    }
    let mut statement = conn.prepare_cached(
        "INSERT INTO daily_usage (organization_id, date, operations, data_transfer)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (organization_id, date)
         DO UPDATE SET operations = excluded.operations, data_transfer = excluded.data_transfer",
    )?;
    for day in data {
        if day.date.parse::<jiff::civil::Date>().is_err() {
            return Err(ErrorResponse::bad_request(format!(
                "`date` must be a date as `YYYY-MM-DD`, not `{}`",
                day.date
            )));
        }
        statement.execute(params![id, day.date, day.operations, day.data_transfer])?;
    }
    Ok(())
}

/// Sets what only Make's own staff or its UI can set: the external id and the paused flag
/// (sandbox control only).
pub fn set_organization_attributes(
    conn: &Connection,
    id: i64,
    external_id: Option<Option<String>>,
    is_paused: Option<bool>,
) -> Result<(), ErrorResponse> {
    require_organization(conn, id)?;
    if let Some(external_id) = external_id {
        conn.execute(
            "UPDATE organizations SET external_id = ?1 WHERE id = ?2",
            params![external_id, id],
        )?;
    }
    if let Some(is_paused) = is_paused {
        conn.execute(
            "UPDATE organizations SET is_paused = ?1 WHERE id = ?2",
            params![is_paused, id],
        )?;
    }
    Ok(())
}

/// Stores a license as it is, unchecked: how a test stages drift made by hand in Make's UI.
pub fn overwrite_license(
    conn: &Connection,
    id: i64,
    license: &License,
) -> Result<(), ErrorResponse> {
    require_organization(conn, id)?;
    conn.execute(
        "UPDATE organizations SET license = ?1 WHERE id = ?2",
        params![db::write_license(license)?, id],
    )?;
    Ok(())
}

// Users

/// Which users a list returns.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    pub organization_id: Option<i64>,
    pub team_id: Option<i64>,
    pub organization_role_id: Option<i64>,
    pub team_role_id: Option<i64>,
    /// Matches addresses containing this, ignoring case.
    pub email: Option<String>,
    /// Matches names containing this, ignoring case.
    pub name: Option<String>,
}

/// Columns a user list can be sorted by; the first is the default.
pub const USER_SORT: &[&str] = &["id", "name", "email"];

const USER_COLUMNS: &str =
    "id, name, email, users_admins_role_id, language, country_id, timezone_id, locale_id";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        users_admins_role_id: row.get(3)?,
        language: row.get(4)?,
        country_id: row.get(5)?,
        timezone_id: row.get(6)?,
        locale_id: row.get(7)?,
        deleted: false,
    })
}

fn user_row(conn: &Connection, id: i64) -> Result<Option<User>, ErrorResponse> {
    let user = conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row(params![id], user_from_row)
        .optional()?;
    Ok(user)
}

fn user_not_found(id: i64) -> ErrorResponse {
    ErrorResponse::not_found(format!("user `{id}` does not exist"))
}

/// The user with this id, or 404.
pub fn user(conn: &Connection, id: i64) -> Result<User, ErrorResponse> {
    user_row(conn, id)?.ok_or_else(|| user_not_found(id))
}

/// One page of users.
pub fn users(
    conn: &Connection,
    filter: &UserFilter,
    page: &Page,
) -> Result<Vec<User>, ErrorResponse> {
    let mut sql = format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1");
    let mut values = Vec::new();
    if filter.organization_id.is_some() || filter.organization_role_id.is_some() {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM organization_roles r WHERE r.user_id = users.id \
             AND (?1 IS NULL OR r.organization_id = ?1) AND (?2 IS NULL OR r.users_role_id = ?2))",
        );
    } else {
        sql.push_str(" AND (?1 IS NULL) AND (?2 IS NULL)");
    }
    values.push(
        filter
            .organization_id
            .map_or(SqlValue::Null, SqlValue::Integer),
    );
    values.push(
        filter
            .organization_role_id
            .map_or(SqlValue::Null, SqlValue::Integer),
    );
    if filter.team_id.is_some() || filter.team_role_id.is_some() {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM team_roles t WHERE t.user_id = users.id \
             AND (?3 IS NULL OR t.team_id = ?3) AND (?4 IS NULL OR t.users_role_id = ?4))",
        );
    } else {
        sql.push_str(" AND (?3 IS NULL) AND (?4 IS NULL)");
    }
    values.push(filter.team_id.map_or(SqlValue::Null, SqlValue::Integer));
    values.push(
        filter
            .team_role_id
            .map_or(SqlValue::Null, SqlValue::Integer),
    );
    if let Some(email) = &filter.email {
        sql.push_str(" AND email_key LIKE ?5 ESCAPE '\\'");
        values.push(SqlValue::Text(contains_pattern(&email.to_lowercase())));
    } else {
        sql.push_str(" AND ?5 IS NULL");
        values.push(SqlValue::Null);
    }
    if let Some(name) = &filter.name {
        sql.push_str(" AND name LIKE ?6 ESCAPE '\\'");
        values.push(SqlValue::Text(contains_pattern(name)));
    } else {
        sql.push_str(" AND ?6 IS NULL");
        values.push(SqlValue::Null);
    }
    sql.push_str(&page.sql(|column| match column {
        "name" => "name COLLATE NOCASE",
        "email" => "email_key",
        _ => "id",
    }));
    let mut statement = conn.prepare_cached(&sql)?;
    let users = statement
        .query_map(params_from_iter(values), user_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(users)
}

/// How `lookup` reads `q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    Email,
    Id,
}

/// Finds one user by e-mail address (ignoring case) or id.
pub fn lookup(conn: &Connection, q: &str, kind: LookupKind) -> Result<UserLookup, ErrorResponse> {
    let user = match kind {
        LookupKind::Id => {
            let id = q.parse::<i64>().map_err(|_| {
                ErrorResponse::bad_request(format!(
                    "`q` must be a user id when `type` is `id`, not `{q}`"
                ))
            })?;
            user_row(conn, id)?
        }
        LookupKind::Email => conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE email_key = ?1"
            ))?
            .query_row(params![q.trim().to_lowercase()], user_from_row)
            .optional()?,
    };
    let user = user.ok_or_else(|| ErrorResponse::not_found(format!("no user matches `{q}`")))?;
    Ok(UserLookup {
        id: user.id,
        email: user.email,
        name: user.name,
        deleted: user.deleted,
    })
}

fn valid_email(email: &str) -> Result<String, ErrorResponse> {
    let email = email.trim();
    let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    }) && !email.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(ErrorResponse::bad_request(format!(
            "`email` is not an e-mail address: `{email}`"
        )));
    }
    Ok(email.to_owned())
}

fn email_taken(conn: &Connection, email: &str, except: Option<i64>) -> Result<(), ErrorResponse> {
    let other: Option<i64> = conn
        .prepare_cached("SELECT id FROM users WHERE email_key = ?1")?
        .query_row(params![email.to_lowercase()], |row| row.get(0))
        .optional()?;
    match other {
        Some(id) if Some(id) != except => Err(ErrorResponse::conflict(format!(
            "a user with the e-mail address `{email}` already exists"
        ))),
        _ => Ok(()),
    }
}

/// Make's password rule: at least 10 characters with a digit, an upper-case letter and a
/// special character.
fn password_problem(password: &str) -> Option<&'static str> {
    if password.chars().count() < 10 {
        return Some("has fewer than 10 characters");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        return Some("has no digit");
    }
    if !password.chars().any(char::is_uppercase) {
        return Some("has no upper-case letter");
    }
    if password.chars().all(char::is_alphanumeric) {
        return Some("has no special character");
    }
    None
}

/// Creates a user; e-mail addresses are unique, ignoring case.
pub fn create_user(conn: &Connection, new: &NewUser) -> Result<User, ErrorResponse> {
    let name = nonempty("name", &new.name)?;
    let email = valid_email(&new.email)?;
    if let Some(problem) = new.password.as_deref().and_then(password_problem) {
        return Err(ErrorResponse::bad_request(format!("`password` {problem}")));
    }
    email_taken(conn, &email, None)?;
    conn.execute(
        "INSERT INTO users (name, email, email_key, language, country_id, timezone_id, locale_id,
             has_password)
         VALUES (?1, ?2, ?3, 'en', ?4, ?5, ?6, ?7)",
        params![
            name,
            email,
            email.to_lowercase(),
            new.country_id.unwrap_or(DEFAULT_COUNTRY_ID),
            new.timezone_id.unwrap_or(DEFAULT_TIMEZONE_ID),
            new.locale_id.unwrap_or(DEFAULT_LOCALE_ID),
            new.password.is_some(),
        ],
    )?;
    user(conn, conn.last_insert_rowid())
}

/// Changes a user. An Admin token cannot grant SA, nor change a user who is SA.
pub fn update_user(
    conn: &Connection,
    id: i64,
    changes: &UserChanges,
    caller: Caller,
) -> Result<User, ErrorResponse> {
    let current = user(conn, id)?;
    if let Some(role) = current.users_admins_role_id
        && !caller.role.can_grant(role)
    {
        return Err(ErrorResponse::forbidden(format!(
            "a token with the `{}` role cannot change user `{id}`, whose instance role is above it",
            caller.role.word()
        )));
    }
    if let Some(role) = changes.users_admins_role_id {
        if let Some(role) = role {
            if roles::admin_role(role).is_none() {
                return Err(ErrorResponse::bad_request(format!(
                    "`usersAdminsRoleId` names no instance role: `{role}`"
                )));
            }
            if !caller.role.can_grant(role) {
                return Err(ErrorResponse::forbidden(format!(
                    "a token with the `{}` role cannot grant the instance role `{role}`",
                    caller.role.word()
                )));
            }
        }
        conn.execute(
            "UPDATE users SET users_admins_role_id = ?1 WHERE id = ?2",
            params![role, id],
        )?;
    }
    if let Some(name) = &changes.name {
        let name = nonempty("name", name)?;
        conn.execute(
            "UPDATE users SET name = ?1 WHERE id = ?2",
            params![name, id],
        )?;
    }
    if let Some(email) = &changes.email {
        let email = valid_email(email)?;
        email_taken(conn, &email, Some(id))?;
        conn.execute(
            "UPDATE users SET email = ?1, email_key = ?2 WHERE id = ?3",
            params![email, email.to_lowercase(), id],
        )?;
    }
    if let Some(language) = &changes.language {
        let language = nonempty("language", language)?;
        conn.execute(
            "UPDATE users SET language = ?1 WHERE id = ?2",
            params![language, id],
        )?;
    }
    for (column, value) in [
        ("country_id", changes.country_id),
        ("timezone_id", changes.timezone_id),
        ("locale_id", changes.locale_id),
    ] {
        if let Some(value) = value {
            conn.execute(
                &format!("UPDATE users SET {column} = ?1 WHERE id = ?2"),
                params![value, id],
            )?;
        }
    }
    user(conn, id)
}

/// Deletes a user, unless it owns an organization or a token acts as it.
pub fn delete_user(conn: &Connection, id: i64, callers: &[i64]) -> Result<(), ErrorResponse> {
    user(conn, id)?;
    if callers.contains(&id) {
        return Err(ErrorResponse::bad_request(format!(
            "user `{id}` is the user a sandbox token acts as and cannot be deleted"
        )));
    }
    let owned: Vec<i64> = conn
        .prepare_cached(
            "SELECT organization_id FROM organization_roles WHERE user_id = ?1 AND users_role_id = ?2
             ORDER BY organization_id",
        )?
        .query_map(params![id, roles::OWNER], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if let Some(first) = owned.first() {
        return Err(ErrorResponse::bad_request(format!(
            "user `{id}` owns organization `{first}`; transfer its ownership first"
        )));
    }
    conn.execute("DELETE FROM users WHERE id = ?1", params![id])?;
    Ok(())
}

// Organization and team roles

/// A user's roles in every organization they belong to.
pub fn organization_roles_of(
    conn: &Connection,
    user_id: i64,
) -> Result<Vec<UserOrganizationRole>, ErrorResponse> {
    user(conn, user_id)?;
    let roles = conn
        .prepare_cached(
            "SELECT organization_id, users_role_id FROM organization_roles WHERE user_id = ?1
             ORDER BY organization_id",
        )?
        .query_map(params![user_id], |row| {
            Ok(UserOrganizationRole {
                user_id,
                organization_id: row.get(0)?,
                users_role_id: row.get(1)?,
                invitation: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(roles)
}

fn organization_role(
    conn: &Connection,
    user_id: i64,
    organization_id: i64,
) -> Result<Option<i64>, ErrorResponse> {
    let role = conn
        .prepare_cached(
            "SELECT users_role_id FROM organization_roles WHERE user_id = ?1 AND organization_id = ?2",
        )?
        .query_row(params![user_id, organization_id], |row| row.get(0))
        .optional()?;
    Ok(role)
}

/// Adds a user to an organization or changes their role there. It cannot make an owner, nor
/// change the owner's role: ownership moves only by transfer.
pub fn set_organization_role(
    conn: &Connection,
    user_id: i64,
    organization_id: i64,
    users_role_id: i64,
) -> Result<UserOrganizationRole, ErrorResponse> {
    user(conn, user_id)?;
    require_organization(conn, organization_id)?;
    if roles::users_role(users_role_id, "organization").is_none() {
        return Err(ErrorResponse::bad_request(format!(
            "`usersRoleId` names no organization role: `{users_role_id}`"
        )));
    }
    if users_role_id == roles::OWNER {
        return Err(ErrorResponse::bad_request(
            "`usersRoleId` cannot be the Owner role; ownership moves only by transfer",
        ));
    }
    if organization_role(conn, user_id, organization_id)? == Some(roles::OWNER) {
        return Err(ErrorResponse::bad_request(format!(
            "user `{user_id}` owns organization `{organization_id}`; transfer its ownership before \
             changing their role"
        )));
    }
    conn.execute(
        "INSERT INTO organization_roles (user_id, organization_id, users_role_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, organization_id) DO UPDATE SET users_role_id = excluded.users_role_id",
        params![user_id, organization_id, users_role_id],
    )?;
    Ok(UserOrganizationRole {
        user_id,
        organization_id,
        users_role_id,
        invitation: None,
    })
}

/// Removes a user from an organization, and from its teams. The owner cannot be removed (the
/// organization would have none): their ownership is transferred first.
pub fn remove_from_organization(
    conn: &Connection,
    user_id: i64,
    organization_id: i64,
) -> Result<(), ErrorResponse> {
    user(conn, user_id)?;
    require_organization(conn, organization_id)?;
    match organization_role(conn, user_id, organization_id)? {
        None => Err(ErrorResponse::not_found(format!(
            "user `{user_id}` is not a member of organization `{organization_id}`"
        ))),
        Some(roles::OWNER) => Err(ErrorResponse::bad_request(format!(
            "user `{user_id}` owns organization `{organization_id}`; transfer its ownership \
             before removing them"
        ))),
        Some(_) => {
            conn.execute(
                "DELETE FROM team_roles WHERE user_id = ?1
                 AND team_id IN (SELECT id FROM teams WHERE organization_id = ?2)",
                params![user_id, organization_id],
            )?;
            conn.execute(
                "DELETE FROM organization_roles WHERE user_id = ?1 AND organization_id = ?2",
                params![user_id, organization_id],
            )?;
            Ok(())
        }
    }
}

/// Makes a member the organization's owner; the previous owner becomes Admin (or Member, as
/// `previous_owner` says). Answers both changed memberships, by user id.
pub fn transfer_ownership(
    conn: &Connection,
    user_id: i64,
    organization_id: i64,
    previous_owner: PreviousOwner,
) -> Result<Vec<UserOrganizationRole>, ErrorResponse> {
    user(conn, user_id)?;
    require_organization(conn, organization_id)?;
    match organization_role(conn, user_id, organization_id)? {
        None => {
            return Err(ErrorResponse::bad_request(format!(
                "user `{user_id}` is not a member of organization `{organization_id}`; add them \
                 before transferring ownership"
            )));
        }
        Some(roles::OWNER) => {
            return Err(ErrorResponse::bad_request(format!(
                "user `{user_id}` already owns organization `{organization_id}`"
            )));
        }
        Some(_) => {}
    }
    let former: i64 = conn
        .prepare_cached(
            "SELECT user_id FROM organization_roles WHERE organization_id = ?1 AND users_role_id = ?2",
        )?
        .query_row(params![organization_id, roles::OWNER], |row| row.get(0))?;
    let demoted = match previous_owner {
        PreviousOwner::Admin => roles::ORGANIZATION_ADMIN,
        PreviousOwner::Member => roles::MEMBER,
    };
    conn.execute(
        "UPDATE organization_roles SET users_role_id = ?1 WHERE organization_id = ?2 AND user_id = ?3",
        params![demoted, organization_id, former],
    )?;
    conn.execute(
        "UPDATE organization_roles SET users_role_id = ?1 WHERE organization_id = ?2 AND user_id = ?3",
        params![roles::OWNER, organization_id, user_id],
    )?;
    let mut changed = vec![
        UserOrganizationRole {
            user_id: former,
            organization_id,
            users_role_id: demoted,
            invitation: None,
        },
        UserOrganizationRole {
            user_id,
            organization_id,
            users_role_id: roles::OWNER,
            invitation: None,
        },
    ];
    changed.sort_by_key(|membership| membership.user_id);
    Ok(changed)
}

/// Columns a team list can be sorted by; the first is the default.
///
/// Make documents `name` as the only value of `pg[sortBy]` for teams; ties are broken by id.
pub const TEAM_SORT: &[&str] = &["name"];

/// One page of an organization's teams.
pub fn teams(
    conn: &Connection,
    organization_id: i64,
    page: &Page,
) -> Result<Vec<Team>, ErrorResponse> {
    require_organization(conn, organization_id)?;
    let sql = format!(
        "SELECT id, name, organization_id FROM teams WHERE organization_id = ?1{}",
        page.sql(|column| match column {
            "name" => "name COLLATE NOCASE",
            _ => "id",
        })
    );
    let teams = conn
        .prepare_cached(&sql)?
        .query_map(params![organization_id], |row| {
            Ok(Team {
                id: row.get(0)?,
                name: row.get(1)?,
                organization_id: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(teams)
}

/// Creates a team; answers it with its Team Admin's role, if it got one. The Team Admin is the
/// member named by `userTeamAdmin`; without one, the caller when they belong to the organization
/// (as Make documents), else nobody.
pub fn create_team(
    conn: &Connection,
    new: &NewTeam,
    caller: Caller,
) -> Result<(Team, Option<UserTeamRole>), ErrorResponse> {
    let name = nonempty("name", &new.name)?;
    require_organization(conn, new.organization_id).map_err(|_| {
        ErrorResponse::bad_request(format!(
            "`organizationId` names organization `{}`, which does not exist",
            new.organization_id
        ))
    })?;
    let admin = match new.user_team_admin {
        Some(admin) => {
            if organization_role(conn, admin, new.organization_id)?.is_none() {
                return Err(ErrorResponse::bad_request(format!(
                    "`userTeamAdmin` names user `{admin}`, who is not a member of organization `{}`",
                    new.organization_id
                )));
            }
            Some(admin)
        }
        None => {
            organization_role(conn, caller.user_id, new.organization_id)?.map(|_| caller.user_id)
        }
    };
    conn.execute(
        "INSERT INTO teams (name, organization_id) VALUES (?1, ?2)",
        params![name, new.organization_id],
    )?;
    let id = conn.last_insert_rowid();
    let role = match admin {
        Some(admin) => {
            conn.execute(
                "INSERT INTO team_roles (user_id, team_id, users_role_id) VALUES (?1, ?2, ?3)",
                params![admin, id, roles::TEAM_ADMIN],
            )?;
            Some(UserTeamRole {
                users_role_id: roles::TEAM_ADMIN,
                user_id: admin,
                team_id: id,
                changeable: true,
            })
        }
        None => None,
    };
    let team = Team {
        id,
        name,
        organization_id: new.organization_id,
    };
    Ok((team, role))
}

/// Adds a member of the team's organization to the team or changes their role there.
pub fn set_team_role(
    conn: &Connection,
    user_id: i64,
    team_id: i64,
    users_role_id: i64,
) -> Result<UserTeamRole, ErrorResponse> {
    user(conn, user_id)?;
    let organization_id: i64 = conn
        .prepare_cached("SELECT organization_id FROM teams WHERE id = ?1")?
        .query_row(params![team_id], |row| row.get(0))
        .optional()?
        .ok_or_else(|| ErrorResponse::not_found(format!("team `{team_id}` does not exist")))?;
    if roles::users_role(users_role_id, "team").is_none() {
        return Err(ErrorResponse::bad_request(format!(
            "`usersRoleId` names no team role: `{users_role_id}`"
        )));
    }
    if organization_role(conn, user_id, organization_id)?.is_none() {
        return Err(ErrorResponse::bad_request(format!(
            "user `{user_id}` is not a member of organization `{organization_id}`, which team \
             `{team_id}` belongs to"
        )));
    }
    conn.execute(
        "INSERT INTO team_roles (user_id, team_id, users_role_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, team_id) DO UPDATE SET users_role_id = excluded.users_role_id",
        params![user_id, team_id, users_role_id],
    )?;
    Ok(UserTeamRole {
        users_role_id,
        user_id,
        team_id,
        changeable: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Storage, open};

    /// One API call, by small numbers that pick among the objects made so far.
    #[derive(Clone, Debug)]
    enum Call {
        CreateUser,
        CreateOrganization {
            owner: usize,
        },
        SetRole {
            user: usize,
            organization: usize,
            role: i64,
        },
        Transfer {
            user: usize,
            organization: usize,
        },
        DeleteUser {
            user: usize,
        },
        DeleteOrganization {
            organization: usize,
        },
    }

    fn call() -> impl proptest::strategy::Strategy<Value = Call> {
        use proptest::prelude::*;
        let role = prop_oneof![Just(11_i64), Just(12), Just(13), Just(14), Just(3)];
        prop_oneof![
            Just(Call::CreateUser),
            (0..8_usize).prop_map(|owner| Call::CreateOrganization { owner }),
            (0..8_usize, 0..4_usize, role).prop_map(|(user, organization, role)| Call::SetRole {
                user,
                organization,
                role
            }),
            (0..8_usize, 0..4_usize)
                .prop_map(|(user, organization)| Call::Transfer { user, organization }),
            (0..8_usize).prop_map(|user| Call::DeleteUser { user }),
            (0..4_usize).prop_map(|organization| Call::DeleteOrganization { organization }),
        ]
    }

    fn owners_per_organization(conn: &Connection) -> Vec<(i64, i64)> {
        conn.prepare(
            "SELECT o.id, (SELECT count(*) FROM organization_roles r
                           WHERE r.organization_id = o.id AND r.users_role_id = 11)
             FROM organizations o",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    proptest::proptest! {
        #[test]
        fn every_organization_keeps_exactly_one_owner_under_every_reading(
            calls in proptest::collection::vec(call(), 1..60),
            member_after_transfer: bool,
            admin_by_user_org_admin: bool,
        ) {
            let previous_owner = if member_after_transfer { PreviousOwner::Member } else { PreviousOwner::Admin };
            let user_org_admin = if admin_by_user_org_admin { UserOrgAdmin::Admin } else { UserOrgAdmin::Owner };
            let mut conn = open(&Storage::Memory).unwrap();
            let caller_id = crate::db::ensure_caller(&conn, TokenRole::SystemAdministrator).unwrap();
            let caller = Caller { role: TokenRole::SystemAdministrator, user_id: caller_id };
            let mut users: Vec<i64> = Vec::new();
            let mut organizations: Vec<i64> = Vec::new();
            let pick = |ids: &[i64], n: usize| ids.get(n % ids.len().max(1)).copied().unwrap_or(999);
            for (step, call) in calls.into_iter().enumerate() {
                let tx = conn.transaction().unwrap();
                let outcome = match call {
                    Call::CreateUser => create_user(&tx, &NewUser {
                        name: "U".to_owned(),
                        email: format!("u{step}@example.com"),
                        ..NewUser::default()
                    })
                    .map(|u| users.push(u.id)),
                    Call::CreateOrganization { owner } => create_organization(&tx, &NewOrganization {
                        name: "O".to_owned(),
                        user_org_admin: Some(pick(&users, owner)),
                        ..NewOrganization::default()
                    }, caller, user_org_admin)
                    .map(|(o, _)| organizations.push(o.id)),
                    Call::SetRole { user, organization, role } => set_organization_role(
                        &tx, pick(&users, user), pick(&organizations, organization), role,
                    ).map(drop),
                    Call::Transfer { user, organization } => transfer_ownership(
                        &tx, pick(&users, user), pick(&organizations, organization), previous_owner,
                    ).map(drop),
                    Call::DeleteUser { user } => delete_user(&tx, pick(&users, user), &[caller_id]),
                    Call::DeleteOrganization { organization } => {
                        delete_organization(&tx, pick(&organizations, organization))
                    }
                };
                // A refused call changes nothing: its transaction is rolled back, as the server's
                // `Db::write` does.
                if outcome.is_ok() {
                    tx.commit().unwrap();
                } else {
                    tx.rollback().unwrap();
                }
                for (organization, owners) in owners_per_organization(&conn) {
                    proptest::prop_assert_eq!(owners, 1, "organization {} after step {}", organization, step);
                }
            }
        }
    }
}
