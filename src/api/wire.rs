//! The JSON bodies of Make's admin API as the client reads and writes them (`docs/make-api.md`).
//!
//! Field names follow Make's camelCase. Responses are read tolerantly, because Make's published
//! examples (`tests/contract/`) show that it adds fields over time and leaves out what `cols[]`
//! did not ask for: unknown fields are ignored everywhere, and only the fields every example
//! carries (`id`, `name`, …) are required; the rest are `Option`s or default to empty. The
//! client asks with `cols[]` for every field it needs. Request types are written by charter
//! only.

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

/// Make's error body: any of `message`, `detail`, `code` and `suberrors`.
///
/// Make's SDK reads `message` and, when present, `detail` and `suberrors`; bodies with only
/// `message` and `code` are quoted publicly. Every field is optional, so that the `code` is kept
/// whatever else is missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Make's error code: `SC` and the HTTP status (`SC400`), or a more specific one (`IM005`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suberrors: Vec<SubError>,
}

impl ErrorBody {
    /// Whether the body says anything at all (an empty object is not Make's error body).
    pub fn is_empty(&self) -> bool {
        self.message.is_none()
            && self.detail.is_none()
            && self.code.is_none()
            && self.suberrors.is_empty()
    }
}

/// One item of an error body's `suberrors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubError {
    #[serde(default)]
    pub message: Option<String>,
}

/// The pagination a list response echoes back; every part may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pg {
    #[serde(default)]
    pub sort_by: Option<String>,
    /// `asc` or `desc`.
    #[serde(default)]
    pub sort_dir: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u64>,
}

/// A team as listed inside its organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSummary {
    pub id: i64,
    pub name: String,
}

/// An organization. Without `cols[]` Make's list answers only `id`, `name` and `timezoneId`
/// (`tests/contract/organizations-list-sdk.json`), so everything but `id` and `name` may be
/// missing; the client asks for the columns it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub timezone_id: Option<i64>,
    #[serde(default)]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub license: Option<License>,
    #[serde(default)]
    pub teams: Option<Vec<TeamSummary>>,
    #[serde(default)]
    pub is_paused: Option<bool>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub scenarios: Option<i64>,
    #[serde(default)]
    pub active_scenarios: Option<i64>,
    #[serde(default)]
    pub deleted: Option<bool>,
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

/// `{organization: {…}}` (a create also answers `userOrganizationRole`, not read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrganizationEnvelope {
    pub organization: Organization,
}

/// `{organizations: […], pg}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrganizationList {
    pub organizations: Vec<Organization>,
    #[serde(default)]
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
    /// The user Make documents as "the admin of the organization"; whether it makes the Owner
    /// is not documented, so the executor reads the roles back after the create.
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
    /// Whether Make merges or replaces it is not documented: charter sends the organization's
    /// live license with its own keys set over it, so both work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
}

/// `{defaultLicense: {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultLicense {
    pub default_license: License,
}

/// One day of an organization's usage (Make adds `centicredits` and may add more).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    #[serde(default)]
    pub operations: i64,
    /// Bytes.
    #[serde(default)]
    pub data_transfer: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centicredits: Option<i64>,
}

/// `{data: […]}`: the daily usage of the last 30 days, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub data: Vec<DailyUsage>,
}

/// A user of the instance. `GET /users/me` has no `deleted` and no `usersAdminsRoleId`
/// (`tests/contract/users-me.json`); lists carry what `cols[]` asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// The instance-level role; `null` for a normal user, and absent when not asked for.
    #[serde(default)]
    pub users_admins_role_id: Option<i64>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub timezone_id: Option<i64>,
    #[serde(default)]
    pub locale_id: Option<i64>,
    #[serde(default)]
    pub deleted: Option<bool>,
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
    #[serde(default)]
    pub pg: Pg,
}

/// What `GET /admin/users/lookup` tells about a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLookup {
    pub id: i64,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub deleted: Option<bool>,
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

/// An instance-level role (SA, Admin, BI, developer and support roles). `category` and
/// `permissions` come only when `cols[]` asks for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRole {
    pub id: i64,
    pub name: String,
    /// `system`, `developers` or `support`.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `{usersAdminsRoles: […]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRoleList {
    pub users_admins_roles: Vec<AdminRole>,
}

/// An organization or team role. Make's documentation answers `{id, name}` unless `cols[]`
/// asks for `category`; its SDK's example has `category` without asking
/// (`tests/contract/users-roles-*.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersRole {
    pub id: i64,
    pub name: String,
    /// `organization` or `team`.
    #[serde(default)]
    pub category: Option<String>,
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

/// The `invitation` of a membership as Make sends it: `null` in Make's documentation for a
/// member, the string `"expired"` for a lapsed invitation, `false` in the transfer example
/// derived from Make's OpenAPI document (`tests/contract/`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Invitation {
    /// `null`, `false` or absent: a member, no invitation pending.
    #[default]
    None,
    /// `true` or a string (its state, such as `expired`).
    Pending(Option<String>),
}

impl<'de> Deserialize<'de> for Invitation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Invitation, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null | Value::Bool(false) => Invitation::None,
            Value::String(state) => Invitation::Pending(Some(state)),
            _ => Invitation::Pending(None),
        })
    }
}

impl Serialize for Invitation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Invitation::None => serializer.serialize_none(),
            Invitation::Pending(Some(state)) => serializer.serialize_str(state),
            Invitation::Pending(None) => serializer.serialize_bool(true),
        }
    }
}

/// A user's role in one organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRole {
    pub user_id: i64,
    pub organization_id: i64,
    pub users_role_id: i64,
    #[serde(default)]
    pub invitation: Invitation,
}

/// `{userOrganizationRole: {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleEnvelope {
    pub user_organization_role: UserOrganizationRole,
}

/// `{userOrganizationRoles: […]}`: a user's memberships, and the answer to a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationRoleList {
    pub user_organization_roles: Vec<UserOrganizationRole>,
}

/// The answer to a transfer of ownership: Make's documented list, or one object.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TransferAnswer {
    List(UserOrganizationRoleList),
    One(UserOrganizationRoleEnvelope),
}

impl TransferAnswer {
    /// The memberships the answer lists.
    pub fn into_roles(self) -> Vec<UserOrganizationRole> {
        match self {
            TransferAnswer::List(list) => list.user_organization_roles,
            TransferAnswer::One(one) => vec![one.user_organization_role],
        }
    }
}

/// A team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub organization_id: Option<i64>,
}

/// `{team: {…}}` (a create also answers `userTeamRole`, not read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamEnvelope {
    pub team: Team,
}

/// `{teams: […], pg}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamList {
    pub teams: Vec<Team>,
    #[serde(default)]
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
    fn invitation_is_read_as_make_sends_it() {
        let read = |text: &str| -> Invitation {
            serde_json::from_str::<UserOrganizationRole>(&format!(
                r#"{{"userId": 1, "organizationId": 2, "usersRoleId": 13{text}}}"#
            ))
            .unwrap()
            .invitation
        };
        assert_eq!(read(r#", "invitation": null"#), Invitation::None);
        assert_eq!(read(r#", "invitation": false"#), Invitation::None);
        assert_eq!(read(""), Invitation::None);
        assert_eq!(
            read(r#", "invitation": "expired""#),
            Invitation::Pending(Some("expired".to_owned()))
        );
        assert_eq!(read(r#", "invitation": true"#), Invitation::Pending(None));
    }

    #[test]
    fn an_error_body_may_have_any_subset_of_its_fields() {
        let only_code: ErrorBody = serde_json::from_str(r#"{"code": "IM005"}"#).unwrap();
        assert_eq!(only_code.code.as_deref(), Some("IM005"));
        let without_detail: ErrorBody =
            serde_json::from_str(r#"{"message": "Bad", "code": "SC400", "extra": 1}"#).unwrap();
        assert_eq!(without_detail.detail, None);
        assert!(serde_json::from_str::<ErrorBody>("{}").unwrap().is_empty());
    }

    #[test]
    fn users_admins_role_id_distinguishes_null_from_absent() {
        let absent: UserChanges = serde_json::from_str("{}").unwrap();
        let null: UserChanges = serde_json::from_str(r#"{"usersAdminsRoleId": null}"#).unwrap();
        assert_eq!(absent.users_admins_role_id, None);
        assert_eq!(null.users_admins_role_id, Some(None));
    }
}
