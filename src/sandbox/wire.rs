//! The sandbox's JSON bodies of Make's admin API (`MAKE-API.md`, "Endpoints charter uses"): its
//! own copy, apart from the client's tolerant `api::wire`, so that the two can disagree.
//!
//! Field names follow Make's camelCase. Response types describe the full objects; a response
//! narrowed with `cols[]` carries only the requested fields and is read as plain JSON. Request
//! types refuse unknown fields so that the sandbox rejects a misspelt field instead of ignoring
//! it, as strictly as the public facts allow.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::catalog;

/// A license object: Make's license keys and their values in API units.
///
/// It holds whatever keys a body carries, known or not, so that a validator can name an unknown
/// key instead of failing to parse. It is written in catalog order, then any unknown keys in
/// name order.
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
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for parameter in catalog::CATALOG {
            if let Some(value) = self.0.get(parameter.name) {
                map.serialize_entry(parameter.name, value)?;
            }
        }
        let mut unknown: Vec<(&String, &Value)> = self
            .0
            .iter()
            .filter(|(key, _)| catalog::lookup(key).is_none())
            .collect();
        unknown.sort_unstable_by_key(|(key, _)| *key);
        for (key, value) in unknown {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl From<&crate::model::LicenseObject> for License {
    /// The complete license object as it is sent: every catalog key.
    fn from(object: &crate::model::LicenseObject) -> License {
        License(
            object
                .values()
                .map(|(parameter, value)| (parameter.name.to_owned(), value.to_json()))
                .collect(),
        )
    }
}

/// Make's error body: `{message, detail, code, suberrors?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    pub detail: String,
    /// Make's error code: `SC` and the HTTP status (`SC400`), or a more specific one (`IM005`).
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suberrors: Option<Vec<SubError>>,
}

/// One item of an error body's `suberrors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubError {
    pub message: String,
}

/// The pagination a list response echoes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pg {
    pub sort_by: String,
    /// `asc` or `desc`.
    pub sort_dir: String,
    pub limit: u32,
    pub offset: u64,
}

/// A team as listed inside its organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSummary {
    pub id: i64,
    pub name: String,
}

/// An organization with its license.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// An organization narrowed by `cols[]`: only the selected fields are present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialOrganization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<TeamSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_paused: Option<bool>,
    /// Absent when not selected; `Some(None)` when selected and `null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_scenarios: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// An object narrowed to its id by `cols[]=id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdOnly {
    pub id: i64,
}

/// `{organization: {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrganizationEnvelope {
    pub organization: Organization,
}

/// `{organizations: […], pg}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrganizationList {
    pub organizations: Vec<Organization>,
    pub pg: Pg,
}

/// The body of `POST /admin/organizations`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganization {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_id: Option<i64>,
    /// The user who becomes the owner; without it, the caller does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_org_admin: Option<i64>,
    /// Without it, the instance default license applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
}

/// The body of `PATCH /admin/organizations/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perform_reset: Option<bool>,
    /// Replaces the whole license: every key must be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
}

/// `{defaultLicense: {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultLicense {
    pub default_license: License,
}

/// One day of an organization's usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub operations: i64,
    /// Bytes.
    pub data_transfer: i64,
}

/// `{data: […]}`: the daily usage of the last 30 days, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub data: Vec<DailyUsage>,
}

/// A user of the instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// The instance-level role; `null` for a normal user.
    pub users_admins_role_id: Option<i64>,
    pub language: String,
    pub country_id: i64,
    pub timezone_id: i64,
    pub locale_id: i64,
    pub deleted: bool,
}

/// `{user: {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEnvelope {
    pub user: User,
}

/// `GET /users/me` → `{authUser: {…}}`: the user the token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUserEnvelope {
    pub auth_user: User,
}

/// `{users: […], pg}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<User>,
    pub pg: Pg,
}

/// What `GET /admin/users/lookup` tells about a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLookup {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub deleted: bool,
}

/// `{user: {id, email, name, deleted}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLookupEnvelope {
    pub user: UserLookup,
}

/// The body of `POST /admin/users`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_email: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_id: Option<i64>,
}

/// The body of `PATCH /admin/users/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_id: Option<i64>,
    /// Absent: unchanged; `null`: back to a normal user; a number: that instance role.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub users_admins_role_id: Option<Option<i64>>,
}

/// Reads a field that is present (even as `null`) as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// An instance-level role (SA, Admin, BI, developer and support roles).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRole {
    pub id: i64,
    pub name: String,
    /// `system`, `developers` or `support`.
    pub category: String,
    pub permissions: Vec<String>,
}

/// `{usersAdminsRoles: […]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRoleList {
    pub users_admins_roles: Vec<AdminRole>,
}

/// An organization or team role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersRole {
    pub id: i64,
    pub name: String,
    /// `organization` or `team`.
    pub category: String,
}

/// `{usersRoles: […]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersRoleList {
    pub users_roles: Vec<UsersRole>,
}

/// The body that sets a user's role in an organization or a team: `{usersRoleId}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignment {
    pub users_role_id: i64,
}

/// A user's role in one organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRole {
    pub user_id: i64,
    pub organization_id: i64,
    pub users_role_id: i64,
    /// Whether the membership is a pending invitation; the sandbox never has any.
    pub invitation: bool,
}

/// `{userOrganizationRole: {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleEnvelope {
    pub user_organization_role: UserOrganizationRole,
}

/// `{userOrganizationRoles: […]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleList {
    pub user_organization_roles: Vec<UserOrganizationRole>,
}

/// A team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub organization_id: i64,
}

/// `{team: {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamEnvelope {
    pub team: Team,
}

/// `{teams: […], pg}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamList {
    pub teams: Vec<Team>,
    pub pg: Pg,
}

/// The body of `POST /admin/teams`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    pub organization_id: i64,
    /// The member who becomes the team's Team Admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_team_admin: Option<i64>,
}

/// A user's role in one team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTeamRole {
    pub user_id: i64,
    pub team_id: i64,
    pub users_role_id: i64,
}

/// `{userTeamRole: {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTeamRoleEnvelope {
    pub user_team_role: UserTeamRole,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_is_written_in_catalog_order_then_unknown_keys() {
        let license: License =
            serde_json::from_str(r#"{"zeta": 1, "gracePeriod": 7, "alpha": 2, "operations": 10}"#)
                .unwrap();
        let text = serde_json::to_string(&license).unwrap();
        assert_eq!(
            text,
            r#"{"operations":10,"gracePeriod":7,"alpha":2,"zeta":1}"#
        );
    }

    #[test]
    fn users_admins_role_id_distinguishes_null_from_absent() {
        let absent: UserChanges = serde_json::from_str("{}").unwrap();
        let null: UserChanges = serde_json::from_str(r#"{"usersAdminsRoleId": null}"#).unwrap();
        assert_eq!(absent.users_admins_role_id, None);
        assert_eq!(null.users_admins_role_id, Some(None));
    }
}
