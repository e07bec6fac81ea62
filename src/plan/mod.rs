//! Plans: what the policy set wants compared with what the instance has, as the admin-API
//! calls that close the gap — no more, no fewer — in an order their dependencies allow.
//!
//! Pure: [`plan`] takes the checked program, the instant, what charter's state remembers
//! ([`Memory`]) and what was read from the instance ([`Observed`]), and returns a [`Plan`]
//! or the [`PlanError`]s that keep one from being made. Nothing here does IO.
//!
//! - `build.rs` — the planner.
//! - `render.rs` — the Terraform-like text and the summary line.
//! - `test_instance.rs` — test support only: an in-memory instance that carries out steps with
//!   Make's rules, for the property tests and the minimality checks. Nothing else uses it.
//!
//! A plan is saved as versioned JSON ([`Plan::to_json`], [`Plan::from_json`]); its JSON Schema
//! is [`schema`].

mod build;
pub mod import;
pub mod observed;
pub mod reading;
mod render;
#[doc(hidden)]
pub mod test_instance;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use build::{Context, Memory, Snapshot, StaffSnapshot, plan, touched};
pub use render::{describe_reading, render_text, summary};

use crate::model::catalog::FixedValue;
use crate::model::license::{LicenseObject, LicenseValue};
use observed::Fingerprint;

/// The version of the plan file this charter writes and reads. Version 2 added `reads.absent`:
/// a version 1 file does not say what its creates found missing, so it cannot be checked and
/// is refused. Organization references may carry `live_name` (the name the organization had on
/// the instance); a file without it is read as before.
pub const PLAN_VERSION: u32 = 2;

/// A plan: ordered steps, the lifecycle bookkeeping that follows them, and the fingerprints of
/// every live object read to make it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// [`PLAN_VERSION`] when written.
    pub version: u32,
    /// A digest of everything else in the plan ([`Plan::seal`]): the journal's key for it.
    pub id: String,
    /// The instant the plan was made for (seconds since the Unix epoch).
    pub at: i64,
    /// The instance's URL (`the embedded sandbox` for the embedded one).
    pub instance: String,
    /// The policy set it was made from (for `charter apply FILE`: where `charter.toml` and
    /// the state are), when saved by the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// In an order that respects every step's `depends_on`.
    pub steps: Vec<Step>,
    /// Every customer of the policy set: what the state records once its steps succeed.
    pub customers: Vec<CustomerPlan>,
    /// Every staff member, present or removed: what the state records once their steps succeed.
    pub staff: Vec<StaffPlan>,
    /// Fingerprints of the live objects the plan was made from.
    pub reads: Reads,
    /// Things worth knowing that do not stop the plan.
    pub warnings: Vec<String>,
    /// What reading the instance cost and which memberships were read now (set by the command
    /// that read it; absent from plans of other origins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<reading::Reading>,
}

/// One admin-API call (or, for [`Action::Manual`], one thing a person must do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique in the plan and stable across plans of the same change (`license:acme`).
    pub id: String,
    /// The customer (`acme`) or staff member (`staff:dana@…`) the step is for.
    pub subject: String,
    pub action: Action,
    /// Steps that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The step puts back a value someone changed on the instance by hand.
    #[serde(default, skip_serializing_if = "is_false")]
    pub drift: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// `POST /admin/users`, without a password: Make mails an invitation.
    CreateUser { email: String, name: String },
    /// `POST /admin/organizations` with its complete license and its owner.
    CreateOrganization {
        organization: OrganizationRef,
        owner: UserRef,
        license: PlanLicense,
    },
    /// `PATCH /admin/organizations/{id}` with the complete license object.
    SetLicense {
        organization: OrganizationRef,
        license: PlanLicense,
        /// The keys that differ, for people (the call sends the whole object).
        changes: Vec<Change>,
    },
    /// `POST /admin/users/{user}/user-organization-roles/{organization}`: adds the user to the
    /// organization or changes their role.
    SetOrganizationRole {
        organization: OrganizationRef,
        user: UserRef,
        role: RoleRef,
        /// The role held before, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// `POST /admin/users/{user}/user-organization-roles/{organization}/transfer`.
    TransferOwnership {
        organization: OrganizationRef,
        user: UserRef,
        /// The owner before the transfer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// `POST /admin/users/{user}/user-organization-roles/{organization}` with an empty body:
    /// takes the token's own user out of an organization charter created, where Make put them
    /// and the policy does not name them.
    RemoveFromOrganization {
        organization: OrganizationRef,
        user: UserRef,
    },
    /// `POST /admin/teams`, with its first admin when the policy gives one.
    CreateTeam {
        team: TeamRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admin: Option<UserRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admin_role: Option<RoleRef>,
    },
    /// `POST /admin/users/{user}/user-team-roles/{team}`.
    SetTeamRole {
        team: TeamRef,
        user: UserRef,
        role: RoleRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// `PATCH /admin/users/{id}` with `usersAdminsRoleId` (`None`: back to a normal user).
    SetInstanceRole {
        user: UserRef,
        role: Option<RoleRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// What the API cannot do: a person does it in the Administration UI.
    Manual { what: String, how: String },
}

impl Action {
    /// The short name of the kind (`create_user`), as the journal records it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateUser { .. } => "create_user",
            Action::CreateOrganization { .. } => "create_organization",
            Action::SetLicense { .. } => "set_license",
            Action::SetOrganizationRole { .. } => "set_organization_role",
            Action::TransferOwnership { .. } => "transfer_ownership",
            Action::RemoveFromOrganization { .. } => "remove_from_organization",
            Action::CreateTeam { .. } => "create_team",
            Action::SetTeamRole { .. } => "set_team_role",
            Action::SetInstanceRole { .. } => "set_instance_role",
            Action::Manual { .. } => "manual",
        }
    }

    /// Whether the step is an API call (everything but manual steps).
    pub fn is_call(&self) -> bool {
        !matches!(self, Action::Manual { .. })
    }

    /// The API calls the step takes when nothing goes wrong: a license change reads the live
    /// license before writing it (`Client::set_license_keys`), an organization create first reads
    /// whether one of its name appeared since the plan was made, a manual step takes none.
    pub fn calls(&self) -> usize {
        match self {
            Action::Manual { .. } => 0,
            Action::SetLicense { .. } | Action::CreateOrganization { .. } => 2,
            _ => 1,
        }
    }

    /// Whether the step creates an object (the ones whose unknown outcome must be looked up).
    pub fn is_create(&self) -> bool {
        matches!(
            self,
            Action::CreateUser { .. }
                | Action::CreateOrganization { .. }
                | Action::CreateTeam { .. }
        )
    }
}

/// A complete license object in a plan: typed values, written as the JSON sent to Make (every
/// catalog key, in catalog order). Reading one back refuses a missing, unknown or invalid key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanLicense(pub LicenseObject);

impl Serialize for PlanLicense {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(crate::model::catalog::CATALOG.len()))?;
        for (parameter, value) in self.0.values() {
            match value {
                LicenseValue::Int(n) | LicenseValue::Fixed(FixedValue::Integer(n)) => {
                    map.serialize_entry(parameter.name, &n)?;
                }
                LicenseValue::Bool(b) => map.serialize_entry(parameter.name, &b)?,
                LicenseValue::Enum(v) => map.serialize_entry(parameter.name, v.wire)?,
                LicenseValue::Fixed(FixedValue::Text(t)) => {
                    map.serialize_entry(parameter.name, t)?;
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for PlanLicense {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PlanLicense, D::Error> {
        use serde::de::Error;
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        if let Some(unknown) = map
            .keys()
            .find(|k| crate::model::catalog::lookup(k).is_none())
        {
            return Err(D::Error::custom(format!("unknown license key `{unknown}`")));
        }
        let mut values = Vec::with_capacity(crate::model::catalog::CATALOG.len());
        for parameter in crate::model::catalog::CATALOG {
            let value = map.get(parameter.name).ok_or_else(|| {
                D::Error::custom(format!("license key `{}` is missing", parameter.name))
            })?;
            values.push(LicenseValue::from_json(parameter, value).ok_or_else(|| {
                D::Error::custom(format!(
                    "license key `{}` has a value it cannot hold: {value}",
                    parameter.name
                ))
            })?);
        }
        LicenseObject::from_values(values)
            .map(PlanLicense)
            .ok_or_else(|| D::Error::custom("incomplete license"))
    }
}

/// A user: by e-mail, with the id when the user exists when the plan is made (otherwise a
/// `create_user` step of the plan makes it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

impl Action {
    /// The organization the call acts on, if any (a team's for team calls).
    pub fn organization(&self) -> Option<&OrganizationRef> {
        match self {
            Action::CreateOrganization { organization, .. }
            | Action::SetLicense { organization, .. }
            | Action::SetOrganizationRole { organization, .. }
            | Action::TransferOwnership { organization, .. }
            | Action::RemoveFromOrganization { organization, .. } => Some(organization),
            Action::CreateTeam { team, .. } | Action::SetTeamRole { team, .. } => {
                Some(&team.organization)
            }
            Action::CreateUser { .. } | Action::SetInstanceRole { .. } | Action::Manual { .. } => {
                None
            }
        }
    }
}

/// A customer's organization: by customer key and name, with the id when it exists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationRef {
    pub customer: String,
    /// The customer's name for it (what a create names it).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Its name on the instance when it exists: what the step really touches, for a reviewer
    /// to compare with `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_name: Option<String>,
}

impl OrganizationRef {
    /// How plans show it: `"Acme Corp" (organization 12)` with its live name once it exists,
    /// `"Acme Corp"` before.
    pub fn label(&self) -> String {
        match self.id {
            Some(id) => format!(
                "\"{}\" (organization {id})",
                self.live_name.as_deref().unwrap_or(&self.name)
            ),
            None => format!("\"{}\"", self.name),
        }
    }
}

/// A team of a customer's organization.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRef {
    pub organization: OrganizationRef,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

/// A role, by its name and its id on the instance the plan was made against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    pub name: String,
    pub id: i64,
}

/// One license key that changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub key: LicenseKey,
    /// The live value; `None` when the key is missing.
    pub from: Option<serde_json::Value>,
    pub to: serde_json::Value,
    /// The live value is not what charter last applied: someone changed it by hand.
    #[serde(default, skip_serializing_if = "is_false")]
    pub drift: bool,
}

/// A license parameter, written as its key (`operations`); reading one back refuses a key the
/// catalog does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LicenseKey(pub &'static crate::model::catalog::Parameter);

impl LicenseKey {
    pub fn name(self) -> &'static str {
        self.0.name
    }
}

impl Serialize for LicenseKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for LicenseKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<LicenseKey, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        crate::model::catalog::lookup(&name)
            .map(LicenseKey)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown license key `{name}`")))
    }
}

/// A customer in a plan: where the lifecycle takes it and what the state records afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerPlan {
    pub key: String,
    pub name: String,
    /// The organization's id, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<i64>,
    /// The organization was found by name (and owner) and is not yet linked in the state.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adopt: bool,
    /// The state charter's state records (`None`: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// The lifecycle state at the plan's instant.
    pub state: String,
    /// Transitions to record once every step of this customer has succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<PlannedTransition>,
    /// What the state remembers as applied afterwards (for drift); `None` when it is what the
    /// state already remembers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
}

/// A transition the plan carries out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedTransition {
    pub name: String,
    pub from: String,
    pub to: String,
    /// When it became due.
    pub due: i64,
    /// Why (`when contract_end + 7 days (2027-02-07)`).
    pub cause: String,
}

/// A staff member in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffPlan {
    pub email: String,
    /// `None` for a staff member removed from the policy set: the state forgets them once
    /// their instance role is taken away.
    pub snapshot: Option<StaffSnapshot>,
}

/// What the plan was made from: the fingerprints of the objects it read, by id, and the absence
/// of what it creates. A saved plan is applied only while both still hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reads {
    pub organizations: BTreeMap<i64, Fingerprint>,
    pub users: BTreeMap<i64, Fingerprint>,
    pub absent: Absent,
}

/// What was not on the instance when the plan was made, for each object the plan creates:
/// should any of it exist when a saved plan is applied, its creates would make duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Absent {
    /// The lower-case addresses of the users the plan creates: no user had them.
    pub users: BTreeSet<String>,
    /// The names of the organizations the plan creates, each with the ids of the organizations
    /// of that name there were (usually none, since Make lets names repeat): any other
    /// organization of that name is new.
    pub organizations: BTreeMap<String, BTreeSet<i64>>,
    /// Organization id → the names of the teams the plan creates in it: it had none of them.
    /// (Teams of organizations the plan creates are new with their organization.)
    pub teams: BTreeMap<i64, BTreeSet<String>>,
}

/// Why no plan could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// The customer or staff member concerned.
    pub subject: String,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("the plan file is not valid JSON for a plan: {0}")]
    Invalid(String),
    #[error("the plan file has version {found}; this charter reads version {PLAN_VERSION}")]
    Version { found: u64 },
    #[error("the plan file was edited after it was made (its id does not match its content)")]
    Tampered,
}

impl PlanFileError {
    /// What to do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            PlanFileError::Invalid(_) => None,
            PlanFileError::Version { .. } | PlanFileError::Tampered => Some(
                "make the plan again with this charter (`charter plan -o FILE`) and review it"
                    .to_owned(),
            ),
        }
    }
}

impl Plan {
    /// The number of API calls (manual steps are not calls).
    pub fn calls(&self) -> usize {
        self.steps.iter().map(|s| s.action.calls()).sum()
    }

    /// Whether applying the plan would change anything: a call, a manual step, or a
    /// transition to record.
    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty() || self.customers.iter().any(|c| !c.transitions.is_empty())
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The plan with its id: the digest of its content, under which the journal records its
    /// steps and by which a saved plan shows it was not edited.
    pub fn seal(mut self) -> Plan {
        self.id = self.digest();
        self
    }

    /// The pretty JSON of the plan file.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The plan with every organization it touches named as `observed` names it now: what a
    /// saved plan really touches, whatever names its file says (the file may have been edited
    /// and sealed again). An organization no longer there keeps its recorded name.
    pub fn with_live_names(&self, observed: &observed::Observed) -> Plan {
        let mut plan = self.clone();
        for step in &mut plan.steps {
            let organization = match &mut step.action {
                Action::CreateOrganization { organization, .. }
                | Action::SetLicense { organization, .. }
                | Action::SetOrganizationRole { organization, .. }
                | Action::TransferOwnership { organization, .. }
                | Action::RemoveFromOrganization { organization, .. } => organization,
                Action::CreateTeam { team, .. } | Action::SetTeamRole { team, .. } => {
                    &mut team.organization
                }
                Action::CreateUser { .. }
                | Action::SetInstanceRole { .. }
                | Action::Manual { .. } => {
                    continue;
                }
            };
            if let Some(live) = organization.id.and_then(|id| observed.organization(id)) {
                organization.live_name = Some(live.name.clone());
            }
        }
        plan
    }

    /// Reads a plan file: the version first (so an old or new file gets a clear message),
    /// then the content, then the id against the content.
    pub fn from_json(text: &str) -> Result<Plan, PlanFileError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PlanFileError::Invalid(e.to_string()))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(PLAN_VERSION) => {}
            Some(found) => return Err(PlanFileError::Version { found }),
            None => {
                return Err(PlanFileError::Invalid(
                    "it has no numeric `version`".to_owned(),
                ));
            }
        }
        let plan: Plan = serde_path_to_error::deserialize(value)
            .map_err(|e| PlanFileError::Invalid(format!("at `{}`: {}", e.path(), e.inner())))?;
        if plan.id != plan.digest() {
            return Err(PlanFileError::Tampered);
        }
        Ok(plan)
    }

    /// The digest of everything but the id.
    pub(crate) fn digest(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            version: u32,
            at: i64,
            instance: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            policy: &'a Option<String>,
            steps: &'a [Step],
            customers: &'a [CustomerPlan],
            staff: &'a [StaffPlan],
            reads: &'a Reads,
            warnings: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            reading: &'a Option<reading::Reading>,
        }
        let digest = observed::json_digest(&Body {
            version: self.version,
            at: self.at,
            instance: &self.instance,
            policy: &self.policy,
            steps: &self.steps,
            customers: &self.customers,
            staff: &self.staff,
            reads: &self.reads,
            warnings: &self.warnings,
            reading: &self.reading,
        });
        format!(
            "plan-{}",
            observed::hex(digest.get(..8).unwrap_or_default())
        )
    }
}

/// The JSON Schema of the plan file.
pub fn schema() -> serde_json::Value {
    let string = serde_json::json!({"type": "string"});
    let integer = serde_json::json!({"type": "integer"});
    let user = serde_json::json!({
        "type": "object",
        "required": ["email"],
        "additionalProperties": false,
        "properties": {"email": string, "id": integer}
    });
    let organization = serde_json::json!({
        "type": "object",
        "required": ["customer", "name"],
        "additionalProperties": false,
        "properties": {"customer": string, "name": string, "id": integer, "live_name": string}
    });
    let team = serde_json::json!({
        "type": "object",
        "required": ["organization", "name"],
        "additionalProperties": false,
        "properties": {"organization": organization, "name": string, "id": integer}
    });
    let role = serde_json::json!({
        "type": "object",
        "required": ["name", "id"],
        "additionalProperties": false,
        "properties": {"name": string, "id": integer}
    });
    let license = serde_json::json!({"$ref": "#/$defs/license"});
    let action = |kind: &str, required: &[&str], properties: serde_json::Value| {
        let mut props = properties;
        if let Some(map) = props.as_object_mut() {
            map.insert("kind".to_owned(), serde_json::json!({"const": kind}));
        }
        let mut req = vec!["kind"];
        req.extend_from_slice(required);
        serde_json::json!({
            "type": "object",
            "required": req,
            "additionalProperties": false,
            "properties": props
        })
    };
    let actions = serde_json::json!([
        action(
            "create_user",
            &["email", "name"],
            serde_json::json!({"email": string, "name": string})
        ),
        action(
            "create_organization",
            &["organization", "owner", "license"],
            serde_json::json!({
            "organization": organization, "owner": user, "license": license})
        ),
        action(
            "set_license",
            &["organization", "license", "changes"],
            serde_json::json!({
            "organization": organization, "license": license,
            "changes": {"type": "array", "items": {
                "type": "object", "required": ["key", "to"], "additionalProperties": false,
                "properties": {"key": string, "from": {}, "to": {}, "drift": {"type": "boolean"}}}}})
        ),
        action(
            "set_organization_role",
            &["organization", "user", "role"],
            serde_json::json!({
            "organization": organization, "user": user, "role": role, "from": string})
        ),
        action(
            "transfer_ownership",
            &["organization", "user"],
            serde_json::json!({
            "organization": organization, "user": user, "from": string})
        ),
        action(
            "create_team",
            &["team"],
            serde_json::json!({
            "team": team, "admin": user, "admin_role": role})
        ),
        action(
            "set_team_role",
            &["team", "user", "role"],
            serde_json::json!({
            "team": team, "user": user, "role": role, "from": string})
        ),
        action(
            "set_instance_role",
            &["user", "role"],
            serde_json::json!({
            "user": user, "role": {"oneOf": [role, {"type": "null"}]}, "from": string})
        ),
        action(
            "manual",
            &["what", "how"],
            serde_json::json!({"what": string, "how": string})
        ),
    ]);
    let snapshot = serde_json::json!({
        "type": "object",
        "required": ["license", "owner", "roles", "teams"],
        "additionalProperties": false,
        "properties": {
            "license": {"type": "object"},
            "owner": string,
            "roles": {"type": "object", "additionalProperties": string},
            "teams": {"type": "object", "additionalProperties":
                {"type": "object", "additionalProperties": string}}
        }
    });
    let staff_snapshot = serde_json::json!({
        "type": "object",
        "required": ["role", "options"],
        "additionalProperties": false,
        "properties": {
            "role": {"type": ["string", "null"]},
            "options": {"type": "array", "items": string}
        }
    });
    let fingerprints = serde_json::json!({
        "type": "object",
        "patternProperties": {"^-?[0-9]+$": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}},
        "additionalProperties": false
    });
    let names = serde_json::json!({"type": "array", "uniqueItems": true, "items": string});
    let absent = serde_json::json!({
        "type": "object",
        "required": ["users", "organizations", "teams"],
        "additionalProperties": false,
        "properties": {
            "users": names,
            "organizations": {"type": "object", "additionalProperties":
                {"type": "array", "uniqueItems": true, "items": integer}},
            "teams": {
                "type": "object",
                "patternProperties": {"^-?[0-9]+$": names},
                "additionalProperties": false
            }
        }
    });
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "charter plan file",
        "type": "object",
        "required": ["version", "id", "at", "instance", "steps", "customers", "staff", "reads", "warnings"],
        "additionalProperties": false,
        "properties": {
            "version": {"const": PLAN_VERSION},
            "id": {"type": "string", "pattern": "^plan-[0-9a-f]{16}$"},
            "at": integer,
            "instance": string,
            "policy": string,
            "steps": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "subject", "action"],
                "additionalProperties": false,
                "properties": {
                    "id": string,
                    "subject": string,
                    "action": {"oneOf": actions},
                    "depends_on": {"type": "array", "items": string},
                    "drift": {"type": "boolean"}
                }
            }},
            "customers": {"type": "array", "items": {
                "type": "object",
                "required": ["key", "name", "state"],
                "additionalProperties": false,
                "properties": {
                    "key": string, "name": string, "organization": integer,
                    "adopt": {"type": "boolean"}, "recorded": string, "state": string,
                    "transitions": {"type": "array", "items": {
                        "type": "object",
                        "required": ["name", "from", "to", "due", "cause"],
                        "additionalProperties": false,
                        "properties": {"name": string, "from": string, "to": string,
                            "due": integer, "cause": string}
                    }},
                    "snapshot": snapshot
                }
            }},
            "staff": {"type": "array", "items": {
                "type": "object",
                "required": ["email", "snapshot"],
                "additionalProperties": false,
                "properties": {"email": string,
                    "snapshot": {"oneOf": [staff_snapshot, {"type": "null"}]}}
            }},
            "reads": {
                "type": "object",
                "required": ["organizations", "users", "absent"],
                "additionalProperties": false,
                "properties": {"organizations": fingerprints, "users": fingerprints,
                    "absent": absent}
            },
            "warnings": {"type": "array", "items": string},
            "reading": {
                "type": "object",
                "required": ["refresh", "calls", "organizations", "verified", "from_state",
                    "not_read"],
                "additionalProperties": false,
                "properties": {
                    "refresh": {"enum": ["incremental", "full", "none"]},
                    "calls": integer, "rate_limit": integer, "organizations": integer,
                    "verified": integer, "from_state": integer, "not_read": integer,
                    "oldest_verified_at": integer
                }
            }
        },
        "$defs": {"license": crate::model::schema::license()}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_file_of_version_1_is_refused_with_what_to_do() {
        // Version 1 did not record what the plan's creates found missing.
        let text = r#"{"version": 1, "id": "plan-0000000000000000", "at": 0, "instance": "x",
            "steps": [], "customers": [], "staff": [],
            "reads": {"organizations": {}, "users": {}}, "warnings": []}"#;
        let error = Plan::from_json(text).err();
        assert!(
            matches!(error, Some(PlanFileError::Version { found: 1 })),
            "{error:?}"
        );
        let error = error.map(|e| (e.to_string(), e.help()));
        assert_eq!(
            error,
            Some((
                "the plan file has version 1; this charter reads version 2".to_owned(),
                Some(
                    "make the plan again with this charter (`charter plan -o FILE`) and review it"
                        .to_owned()
                )
            ))
        );
    }

    #[test]
    fn what_a_plan_creates_found_missing_is_part_of_its_id() {
        let mut plan = Plan {
            version: PLAN_VERSION,
            id: String::new(),
            at: 0,
            instance: "x".to_owned(),
            policy: None,
            steps: Vec::new(),
            customers: Vec::new(),
            staff: Vec::new(),
            reads: Reads::default(),
            warnings: Vec::new(),
            reading: None,
        };
        plan.reads.absent.users.insert("li@acme.example".to_owned());
        plan.reads
            .absent
            .organizations
            .insert("Acme Corp".to_owned(), BTreeSet::from([4]));
        plan.reads
            .absent
            .teams
            .insert(4, BTreeSet::from(["Ops".to_owned()]));
        let plan = plan.seal();
        let json = plan.to_json();
        assert!(json.contains("\"absent\""), "{json}");
        assert_eq!(Plan::from_json(&json).ok(), Some(plan.clone()));
        // Emptying the record would let a duplicate through: the file is then refused.
        let edited = json.replacen("\"li@acme.example\"", "", 1);
        assert!(matches!(
            Plan::from_json(&edited),
            Err(PlanFileError::Tampered)
        ));
    }

    #[test]
    fn the_fuzz_seeds_are_plan_files_this_charter_reads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/plan_file");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let plan = Plan::from_json(&text);
            assert!(plan.is_ok(), "{}: {:?}", entry.path().display(), plan.err());
            read += 1;
        }
        assert!(read >= 2, "seeds in {}", dir.display());
    }
}
