//! The role tables the sandbox serves: instance roles, organization roles and team roles.
//!
//! Organization and team roles carry Make's documented ids. Make does not document the ids of
//! instance roles, App developer or Team restricted member; the sandbox gives them ids that fall
//! in no documented range, so a client that guesses ids instead of resolving names fails here.

/// Organization role: Owner.
pub const OWNER: i64 = 11;
/// Organization role: Admin, the role a previous owner keeps after a transfer.
pub const ORGANIZATION_ADMIN: i64 = 12;
/// Organization role: Member.
pub const MEMBER: i64 = 13;
/// Organization role: Accountant.
pub const ACCOUNTANT: i64 = 14;
/// Team role: Team Admin, given to a new organization's owner in its first team.
pub const TEAM_ADMIN: i64 = 1;

/// Instance role: System Administrator.
pub const SYSTEM_ADMINISTRATOR: i64 = 901;
/// Instance role: Admin.
pub const INSTANCE_ADMIN: i64 = 902;
/// Instance role: BI (read-only).
pub const BUSINESS_INTELLIGENCE: i64 = 903;

/// An organization or team role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsersRole {
    pub id: i64,
    pub name: &'static str,
    pub category: &'static str,
    /// What the role may do, in the words of Make's role listings.
    pub permissions: &'static [&'static str],
}

const TEAM_MANAGE: &[&str] = &["team view", "team edit", "scenarios view", "scenarios edit"];
const TEAM_EDIT: &[&str] = &["team view", "scenarios view", "scenarios edit"];
const TEAM_VIEW: &[&str] = &["team view", "scenarios view"];
const TEAM_RUN: &[&str] = &["team view", "scenarios view", "scenarios run"];
const ORGANIZATION_MANAGE: &[&str] = &[
    "organizations view",
    "organizations edit",
    "users view",
    "users edit",
];
const ORGANIZATION_VIEW: &[&str] = &["organizations view", "users view"];
const ORGANIZATION_BILLING: &[&str] = &["organizations view", "billing view", "billing edit"];
const ORGANIZATION_APPS: &[&str] = &["organizations view", "apps view", "apps edit"];

/// Organization and team roles, in the order they are listed.
pub const USERS_ROLES: &[UsersRole] = &[
    UsersRole {
        id: TEAM_ADMIN,
        name: "Team Admin",
        permissions: TEAM_MANAGE,
        category: "team",
    },
    UsersRole {
        id: 3,
        name: "Team Member",
        permissions: TEAM_EDIT,
        category: "team",
    },
    UsersRole {
        id: 4,
        name: "Team Monitoring",
        permissions: TEAM_VIEW,
        category: "team",
    },
    UsersRole {
        id: 6,
        name: "Team Operator",
        permissions: TEAM_RUN,
        category: "team",
    },
    UsersRole {
        id: 57,
        name: "Team restricted member",
        permissions: TEAM_VIEW,
        category: "team",
    },
    UsersRole {
        id: OWNER,
        name: "Owner",
        permissions: ORGANIZATION_MANAGE,
        category: "organization",
    },
    UsersRole {
        id: ORGANIZATION_ADMIN,
        name: "Admin",
        permissions: ORGANIZATION_MANAGE,
        category: "organization",
    },
    UsersRole {
        id: MEMBER,
        name: "Member",
        permissions: ORGANIZATION_VIEW,
        category: "organization",
    },
    UsersRole {
        id: ACCOUNTANT,
        name: "Accountant",
        permissions: ORGANIZATION_BILLING,
        category: "organization",
    },
    UsersRole {
        id: 58,
        name: "App developer",
        permissions: ORGANIZATION_APPS,
        category: "organization",
    },
];

/// The organization or team role with this id, if it is of this category.
pub fn users_role(id: i64, category: &str) -> Option<&'static UsersRole> {
    USERS_ROLES
        .iter()
        .find(|r| r.id == id && r.category == category)
}

/// An instance-level role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminRole {
    pub id: i64,
    pub name: &'static str,
    /// An unchanging name for the role.
    pub identifier: &'static str,
    pub category: &'static str,
    pub permissions: &'static [&'static str],
}

const ADMIN_READ: &[&str] = &["admin:read"];
const ADMIN_WRITE: &[&str] = &["admin:read", "admin:write"];
const DEVELOPER: &[&str] = &["apps:read", "apps:write"];
const SUPPORT: &[&str] = &["support:read"];

/// Instance roles, in the order they are listed.
pub const ADMIN_ROLES: &[AdminRole] = &[
    AdminRole {
        id: SYSTEM_ADMINISTRATOR,
        name: "SA",
        identifier: "sa",
        category: "system",
        permissions: ADMIN_WRITE,
    },
    AdminRole {
        id: INSTANCE_ADMIN,
        name: "Admin",
        identifier: "admin",
        category: "system",
        permissions: ADMIN_WRITE,
    },
    AdminRole {
        id: BUSINESS_INTELLIGENCE,
        name: "BI",
        identifier: "bi",
        category: "system",
        permissions: ADMIN_READ,
    },
    AdminRole {
        id: 911,
        name: "D1",
        identifier: "d1",
        category: "developers",
        permissions: DEVELOPER,
    },
    AdminRole {
        id: 912,
        name: "External Developer",
        identifier: "external_developer",
        category: "developers",
        permissions: DEVELOPER,
    },
    AdminRole {
        id: 913,
        name: "D2",
        identifier: "d2",
        category: "developers",
        permissions: DEVELOPER,
    },
    AdminRole {
        id: 914,
        name: "D3",
        identifier: "d3",
        category: "developers",
        permissions: DEVELOPER,
    },
    AdminRole {
        id: 915,
        name: "D4",
        identifier: "d4",
        category: "developers",
        permissions: DEVELOPER,
    },
    AdminRole {
        id: 916,
        name: "Developer app manager",
        identifier: "developer_app_manager",
        category: "developers",
        permissions: DEVELOPER,
    },
    AdminRole {
        id: 921,
        name: "S1",
        identifier: "s1",
        category: "support",
        permissions: SUPPORT,
    },
    AdminRole {
        id: 922,
        name: "S2",
        identifier: "s2",
        category: "support",
        permissions: SUPPORT,
    },
    AdminRole {
        id: 923,
        name: "S3",
        identifier: "s3",
        category: "support",
        permissions: SUPPORT,
    },
    AdminRole {
        id: 924,
        name: "S4",
        identifier: "s4",
        category: "support",
        permissions: SUPPORT,
    },
];

/// The instance role with this id.
pub fn admin_role(id: i64) -> Option<&'static AdminRole> {
    ADMIN_ROLES.iter().find(|r| r.id == id)
}

/// What a token may do on the instance: the instance role of the user it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenRole {
    /// A user without an instance role: `/admin/…` answers 403.
    Member,
    /// BI: reads everything under `/admin/…`, writes nothing.
    BusinessIntelligence,
    /// Admin: reads and writes, but cannot grant SA or change an SA.
    Admin,
    /// SA: everything.
    SystemAdministrator,
}

impl TokenRole {
    /// The word used on the command line (`--token T:admin`).
    pub fn word(self) -> &'static str {
        match self {
            TokenRole::Member => "member",
            TokenRole::BusinessIntelligence => "bi",
            TokenRole::Admin => "admin",
            TokenRole::SystemAdministrator => "sa",
        }
    }

    /// The role for a command-line word.
    pub fn from_word(word: &str) -> Option<TokenRole> {
        [
            TokenRole::Member,
            TokenRole::BusinessIntelligence,
            TokenRole::Admin,
            TokenRole::SystemAdministrator,
        ]
        .into_iter()
        .find(|r| r.word() == word)
    }

    /// The instance role id of the user behind the token.
    pub fn admin_role_id(self) -> Option<i64> {
        match self {
            TokenRole::Member => None,
            TokenRole::BusinessIntelligence => Some(BUSINESS_INTELLIGENCE),
            TokenRole::Admin => Some(INSTANCE_ADMIN),
            TokenRole::SystemAdministrator => Some(SYSTEM_ADMINISTRATOR),
        }
    }

    /// Whether the token may read `/admin/…`.
    pub fn can_read_admin(self) -> bool {
        self != TokenRole::Member
    }

    /// Whether the token may write through `/admin/…`.
    pub fn can_write_admin(self) -> bool {
        matches!(self, TokenRole::Admin | TokenRole::SystemAdministrator)
    }

    /// Whether the token may grant, or take away, this instance role.
    pub fn can_grant(self, admin_role_id: i64) -> bool {
        match self {
            TokenRole::SystemAdministrator => true,
            TokenRole::Admin => admin_role_id != SYSTEM_ADMINISTRATOR,
            TokenRole::Member | TokenRole::BusinessIntelligence => false,
        }
    }
}
