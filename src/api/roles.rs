//! The instance's roles, resolved by name at run time.
//!
//! Make documents the ids of some organization and team roles but not of the others, nor of any
//! instance role, so charter never hard-codes an id: it reads the role endpoints and looks names
//! up in a [`Roles`]. A name the instance does not have is an error, never a guess.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::wire::{AdminRole, UsersRole};
use crate::diagnostic::suggest;

/// One role: its id on this instance and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
}

/// Which kind of role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKind {
    /// Instance-level (`usersAdminsRoleId`): SA, Admin, BI, developer and support roles.
    Instance,
    Organization,
    Team,
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleKind::Instance => "instance",
            RoleKind::Organization => "organization",
            RoleKind::Team => "team",
        })
    }
}

/// Every role of an instance, each list sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub instance: Vec<Role>,
    pub organization: Vec<Role>,
    pub team: Vec<Role>,
}

/// A role name the instance does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the instance has no {kind} role `{name}`")]
pub struct RoleError {
    pub kind: RoleKind,
    pub name: String,
    /// The names it has, in id order.
    pub available: Vec<String>,
}

impl RoleError {
    /// A near name, then the names there are.
    pub fn help(&self) -> String {
        let names: Vec<String> = self.available.iter().map(|n| format!("`{n}`")).collect();
        let list = if names.is_empty() {
            format!("it lists no {} roles", self.kind)
        } else {
            format!("its {} roles are {}", self.kind, names.join(", "))
        };
        match suggest(&self.name, self.available.iter().map(String::as_str)) {
            Some(near) => format!("did you mean `{near}`? {list}"),
            None => list,
        }
    }
}

impl Roles {
    /// Builds the lookup from the role endpoints' answers, each list asked for by its category.
    pub fn from_lists(
        instance: Vec<AdminRole>,
        organization: Vec<UsersRole>,
        team: Vec<UsersRole>,
    ) -> Roles {
        let mut roles = Roles {
            instance: instance
                .into_iter()
                .map(|r| Role {
                    id: r.id,
                    name: r.name,
                })
                .collect(),
            organization: organization
                .into_iter()
                .map(|r| Role {
                    id: r.id,
                    name: r.name,
                })
                .collect(),
            team: team
                .into_iter()
                .map(|r| Role {
                    id: r.id,
                    name: r.name,
                })
                .collect(),
        };
        for list in [
            &mut roles.instance,
            &mut roles.organization,
            &mut roles.team,
        ] {
            list.sort();
            list.dedup_by_key(|r| r.id);
        }
        roles
    }

    fn list(&self, kind: RoleKind) -> &[Role] {
        match kind {
            RoleKind::Instance => &self.instance,
            RoleKind::Organization => &self.organization,
            RoleKind::Team => &self.team,
        }
    }

    /// The id of the role with this name: the exact name, or else the only one equal to it
    /// ignoring case.
    pub fn id(&self, kind: RoleKind, name: &str) -> Result<i64, RoleError> {
        let list = self.list(kind);
        let wanted = name.trim();
        if let Some(role) = list.iter().find(|r| r.name == wanted) {
            return Ok(role.id);
        }
        let mut folded = list.iter().filter(|r| r.name.eq_ignore_ascii_case(wanted));
        match (folded.next(), folded.next()) {
            (Some(role), None) => Ok(role.id),
            _ => Err(RoleError {
                kind,
                name: wanted.to_owned(),
                available: list.iter().map(|r| r.name.clone()).collect(),
            }),
        }
    }

    /// The name of the role with this id, if the instance lists it.
    pub fn name(&self, kind: RoleKind, id: i64) -> Option<&str> {
        self.list(kind)
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.name.as_str())
    }

    pub fn organization_role(&self, name: &str) -> Result<i64, RoleError> {
        self.id(RoleKind::Organization, name)
    }

    pub fn team_role(&self, name: &str) -> Result<i64, RoleError> {
        self.id(RoleKind::Team, name)
    }

    pub fn instance_role(&self, name: &str) -> Result<i64, RoleError> {
        self.id(RoleKind::Instance, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        Roles::from_lists(
            vec![AdminRole {
                id: 902,
                name: "Admin".into(),
                category: None,
                permissions: vec![],
            }],
            vec![
                UsersRole {
                    id: 12,
                    name: "Admin".into(),
                    category: None,
                },
                UsersRole {
                    id: 11,
                    name: "Owner".into(),
                    category: Some("organization".into()),
                },
            ],
            vec![UsersRole {
                id: 1,
                name: "Team Admin".into(),
                category: None,
            }],
        )
    }

    #[test]
    fn names_resolve_per_kind_and_ignoring_case() {
        let roles = roles();
        assert_eq!(roles.organization_role("Owner"), Ok(11));
        assert_eq!(roles.organization_role("admin"), Ok(12));
        assert_eq!(roles.instance_role("Admin"), Ok(902));
        assert_eq!(roles.team_role("team admin"), Ok(1));
        assert_eq!(roles.name(RoleKind::Organization, 11), Some("Owner"));
        assert_eq!(roles.organization[0].id, 11, "sorted by id");
    }

    #[test]
    fn a_missing_role_is_an_error_with_a_suggestion() {
        let error = roles().organization_role("Onwer").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the instance has no organization role `Onwer`"
        );
        assert_eq!(
            error.help(),
            "did you mean `Owner`? its organization roles are `Owner`, `Admin`"
        );
    }
}
