//! The JSON bodies the sandbox reads and writes, as Make's API documentation describes them.
//!
//! These are the sandbox's own types: they are written from Make's documentation and its
//! official SDK's example responses, not shared with any client, so that a client's mistake about
//! Make's shapes is not mirrored here. Requests are read strictly (an unknown field is a 400 that
//! names it); responses are written with Make's camelCase names.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::license;

/// A license object as Make stores it: keys and their values in API units.
///
/// It keeps every key it is given, known to the sandbox or not. It is written in the order of
/// [`license::KEYS`], then keys the sandbox does not know, by name, so answers are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct License(pub Map<String, Value>);

impl License {
    /// The value of a key, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

impl Serialize for License {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for key in license::KEYS {
            if let Some(value) = self.0.get(key.name) {
                map.serialize_entry(key.name, value)?;
            }
        }
        let mut others: Vec<(&String, &Value)> = self
            .0
            .iter()
            .filter(|(name, _)| license::key(name).is_none())
            .collect();
        others.sort_unstable_by_key(|(name, _)| *name);
        for (name, value) in others {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Make's error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub message: String,
    pub detail: String,
    /// `SC` and the HTTP status (`SC400`).
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suberrors: Option<Vec<SubError>>,
}

/// One entry of an error body's `suberrors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubError {
    pub message: String,
}

/// The `pg` object a list answer echoes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pg {
    pub sort_by: String,
    pub sort_dir: String,
    pub limit: u32,
    pub offset: u64,
}

// Organizations

/// A team as an organization lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSummary {
    pub id: i64,
    pub name: String,
}

/// An organization as `/admin/organizations` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub timezone_id: i64,
    pub country_id: i64,
    pub license: License,
    pub teams: Vec<TeamSummary>,
    pub is_paused: bool,
    pub external_id: Option<String>,
    pub scenarios: i64,
    pub active_scenarios: i64,
    pub deleted: bool,
}

/// `{organization: …}`: the answer of `PATCH /admin/organizations/{id}` (and of the sandbox's own
/// endpoints). Make's example has the organization's settings, license and teams, not its
/// counters, external id or `deleted`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrganizationEnvelope {
    pub organization: OrganizationSettings,
}

/// An organization as a write answers it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSettings {
    pub id: i64,
    pub name: String,
    pub timezone_id: i64,
    pub country_id: i64,
    pub license: License,
    pub teams: Vec<TeamSummary>,
    pub is_paused: bool,
}

impl From<Organization> for OrganizationSettings {
    fn from(organization: Organization) -> OrganizationSettings {
        OrganizationSettings {
            id: organization.id,
            name: organization.name,
            timezone_id: organization.timezone_id,
            country_id: organization.country_id,
            license: organization.license,
            teams: organization.teams,
            is_paused: organization.is_paused,
        }
    }
}

/// `{organization, userOrganizationRole}`: the answer of `POST /admin/organizations`, which also
/// says who became what in the new organization.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationCreated {
    pub organization: OrganizationSettings,
    pub user_organization_role: UserOrganizationRole,
}

/// The body of `POST /admin/organizations`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganization {
    pub name: String,
    #[serde(default)]
    pub timezone_id: Option<i64>,
    #[serde(default)]
    pub country_id: Option<i64>,
    /// The user to put in charge of the new organization.
    #[serde(default)]
    pub user_org_admin: Option<i64>,
    /// Without it, the instance default license.
    #[serde(default)]
    pub license: Option<License>,
}

/// The body of `PATCH /admin/organizations/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationChanges {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub timezone_id: Option<i64>,
    #[serde(default)]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub next_reset: Option<String>,
    #[serde(default)]
    pub perform_reset: Option<bool>,
    #[serde(default)]
    pub license: Option<License>,
}

/// `{defaultLicense: …}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultLicense {
    pub default_license: License,
}

/// One day of an organization's consumption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub operations: i64,
    /// Bytes.
    pub data_transfer: i64,
}

/// One day of an organization's consumption as `GET /organizations/{id}/usage` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub operations: i64,
    /// Bytes.
    pub data_transfer: i64,
    /// Credits in hundredths: the sandbox counts one credit per operation.
    pub centicredits: i64,
}

impl From<DailyUsage> for UsageDay {
    fn from(day: DailyUsage) -> UsageDay {
        UsageDay {
            centicredits: day.operations.saturating_mul(100),
            date: day.date,
            operations: day.operations,
            data_transfer: day.data_transfer,
        }
    }
}

/// `{data: […]}`: the last 30 days, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub data: Vec<UsageDay>,
}

// Users

/// A user as `/admin/users` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// The instance role; `null` for a user without one.
    pub users_admins_role_id: Option<i64>,
    pub language: String,
    pub country_id: i64,
    pub timezone_id: i64,
    pub locale_id: i64,
    pub deleted: bool,
}

/// `{user: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserEnvelope {
    pub user: User,
}

/// The user a token belongs to, as `GET /users/me` shows it: Make's example has neither
/// `deleted` nor the instance role (`usersAdminsRoleId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub language: String,
    pub timezone_id: i64,
    pub locale_id: i64,
    pub country_id: i64,
    /// Feature switches of the user; the sandbox has none.
    pub features: Map<String, Value>,
}

impl From<User> for AuthUser {
    fn from(user: User) -> AuthUser {
        AuthUser {
            id: user.id,
            name: user.name,
            email: user.email,
            language: user.language,
            timezone_id: user.timezone_id,
            locale_id: user.locale_id,
            country_id: user.country_id,
            features: Map::new(),
        }
    }
}

/// `{authUser: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUserEnvelope {
    pub auth_user: AuthUser,
}

/// A user as `/admin/users/lookup` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserLookup {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub deleted: bool,
}

/// `{user: …}` from a lookup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserLookupEnvelope {
    pub user: UserLookup,
}

/// The body of `POST /admin/users`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub send_email: Option<bool>,
    #[serde(default)]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub timezone_id: Option<i64>,
    #[serde(default)]
    pub locale_id: Option<i64>,
}

/// The body of `PATCH /admin/users/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub timezone_id: Option<i64>,
    #[serde(default)]
    pub locale_id: Option<i64>,
    /// Absent: unchanged; `null`: no instance role; a number: that instance role.
    #[serde(default, deserialize_with = "present")]
    pub users_admins_role_id: Option<Option<i64>>,
}

/// Reads a field that is present, even as `null`, as `Some`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

// Roles

/// An instance role with every column; `cols[]` narrows it (`{id, name}` by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminRole {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<String>,
    pub category: String,
    /// An unchanging name for the role (`sa`).
    pub identifier: String,
}

/// An organization or team role with every column; `cols[]` narrows it (`{id, name}` by
/// default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsersRole {
    pub id: i64,
    pub name: String,
    /// Whether the role is a custom one derived from another; the sandbox has none.
    pub subsidiary: bool,
    pub category: String,
    pub permissions: Vec<String>,
}

/// `{usersRoleId}`: the body that sets a role in an organization or a team.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignment {
    pub users_role_id: i64,
}

/// The body of `POST /admin/users/{userId}/user-organization-roles/{organizationId}`:
/// `{usersRoleId}` sets the user's role (adding them if need be); an empty body — no bytes, or
/// `{}` — removes the user from the organization, as Make's API reference documents for this
/// call (with `deleteConnections` and `confirmed` for the user's connections).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationRoleAssignment {
    #[serde(default)]
    pub users_role_id: Option<i64>,
}

/// The answer to a removal from an organization. Make documents none; the sandbox answers an
/// empty object, which says nothing a client could come to rely on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Removed {}

/// A user's role in an organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRole {
    pub user_id: i64,
    pub organization_id: i64,
    pub users_role_id: i64,
    /// `null` for a member; Make shows a string (`"expired"`) for an invitation. The sandbox
    /// adds members directly, so it is always `null`.
    pub invitation: Option<String>,
}

/// `{userOrganizationRole: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleEnvelope {
    pub user_organization_role: UserOrganizationRole,
}

/// `{userOrganizationRoles: […]}`: a user's memberships, and the answer of a transfer (the
/// memberships it changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleList {
    pub user_organization_roles: Vec<UserOrganizationRole>,
}

// Teams

/// A team as `/admin/teams` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub organization_id: i64,
}

/// `{team, userTeamRole?}`: the answer of `POST /admin/teams`, with the Team Admin's role when
/// the team got one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamCreated {
    pub team: Team,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_team_role: Option<UserTeamRole>,
}

/// The body of `POST /admin/teams`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    pub organization_id: i64,
    /// The member who becomes the team's Team Admin.
    #[serde(default)]
    pub user_team_admin: Option<i64>,
}

/// A user's role in a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTeamRole {
    pub users_role_id: i64,
    pub user_id: i64,
    pub team_id: i64,
    /// Whether the role may be changed; the sandbox lets every team role change.
    pub changeable: bool,
}

/// `{userTeamRole: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTeamRoleEnvelope {
    pub user_team_role: UserTeamRole,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_license_is_written_in_key_order_then_other_keys_by_name() {
        let license: License =
            serde_json::from_str(r#"{"zeta": 1, "gracePeriod": 7, "alpha": 2, "operations": 10}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&license).unwrap(),
            r#"{"operations":10,"gracePeriod":7,"alpha":2,"zeta":1}"#
        );
    }

    #[test]
    fn a_null_instance_role_differs_from_an_absent_one() {
        let absent: UserChanges = serde_json::from_str("{}").unwrap();
        let null: UserChanges = serde_json::from_str(r#"{"usersAdminsRoleId": null}"#).unwrap();
        assert_eq!(absent.users_admins_role_id, None);
        assert_eq!(null.users_admins_role_id, Some(None));
    }
}
