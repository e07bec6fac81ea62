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

/// `{organization: …}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrganizationEnvelope {
    pub organization: Organization,
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

/// `{data: […]}`: the last 30 days, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub data: Vec<DailyUsage>,
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

/// `{authUser: …}`: who the token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUserEnvelope {
    pub auth_user: User,
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

/// An instance role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminRole {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub permissions: Vec<String>,
}

/// `{usersAdminsRoles: […]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRoleList {
    pub users_admins_roles: Vec<AdminRole>,
}

/// An organization or team role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsersRole {
    pub id: i64,
    pub name: String,
    pub category: String,
}

/// `{usersRoles: […]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersRoleList {
    pub users_roles: Vec<UsersRole>,
}

/// `{usersRoleId}`: the body that sets a role in an organization or a team.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignment {
    pub users_role_id: i64,
}

/// A user's role in an organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRole {
    pub user_id: i64,
    pub organization_id: i64,
    pub users_role_id: i64,
    pub invitation: bool,
}

/// `{userOrganizationRole: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleEnvelope {
    pub user_organization_role: UserOrganizationRole,
}

/// `{userOrganizationRoles: […]}`.
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

/// `{team: …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamEnvelope {
    pub team: Team,
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
    pub user_id: i64,
    pub team_id: i64,
    pub users_role_id: i64,
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
