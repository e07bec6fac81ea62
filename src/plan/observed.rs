//! What a plan is made from: the instance as read, as plain sorted data (no client, no IO).
//!
//! `api::observe` fills these types from Make's answers; the planner, the saved plans'
//! fingerprints and the state's remembered memberships use them without knowing how they were
//! read. Each organization and user has a [`Fingerprint`] that a saved plan records, so that
//! `apply` can tell whether it changed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::roles::Roles;
use crate::api::wire::License;

/// A user's role in an organization or a team.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub user_id: i64,
    pub role_id: i64,
    /// The role's name, when the instance lists the role.
    pub role: Option<String>,
}

/// A team and its members, sorted by user id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTeam {
    pub id: i64,
    pub name: String,
    pub members: Vec<Membership>,
}

/// An organization as read: its attributes, license, members and teams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedOrganization {
    pub id: i64,
    pub name: String,
    pub timezone_id: i64,
    pub country_id: i64,
    pub license: License,
    pub is_paused: bool,
    pub external_id: Option<String>,
    pub scenarios: i64,
    pub active_scenarios: i64,
    pub deleted: bool,
    /// Sorted by user id.
    pub members: Vec<Membership>,
    /// Sorted by id.
    pub teams: Vec<ObservedTeam>,
    /// The fingerprint, computed once (while reading, by [`observe`]).
    #[serde(skip)]
    pub cached_fingerprint: FingerprintCache,
}

/// A user as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub instance_role_id: Option<i64>,
    /// The instance role's name, when the user has one the instance lists.
    pub instance_role: Option<String>,
    pub language: String,
    pub country_id: i64,
    pub timezone_id: i64,
    pub locale_id: i64,
    pub deleted: bool,
    /// The fingerprint, computed once (while reading, by [`observe`]).
    #[serde(skip)]
    pub cached_fingerprint: FingerprintCache,
}

/// A fingerprint computed on first use. It never takes part in comparisons: two objects that
/// are equal have equal fingerprints.
#[derive(Clone, Debug, Default)]
pub struct FingerprintCache(std::sync::OnceLock<Fingerprint>);

impl PartialEq for FingerprintCache {
    fn eq(&self, _: &FingerprintCache) -> bool {
        true
    }
}

impl Eq for FingerprintCache {}

/// How many calls each part of an observation took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveCalls {
    pub roles: u64,
    pub organizations: u64,
    pub users: u64,
    pub organization_role_holders: u64,
    /// Per-user or per-organization membership reads (see the module documentation).
    pub memberships: u64,
    pub team_role_holders: u64,
    pub team_members: u64,
    /// Whether memberships were read per user (rather than per organization).
    pub memberships_per_user: bool,
    /// Calls of earlier readings given up because the instance changed while they ran.
    #[serde(default)]
    pub reread: u64,
}

impl ObserveCalls {
    /// Adds the calls of another reading's parts (the memberships of a listing read apart).
    pub fn add(&mut self, other: &ObserveCalls) {
        self.roles += other.roles;
        self.organizations += other.organizations;
        self.users += other.users;
        self.organization_role_holders += other.organization_role_holders;
        self.memberships += other.memberships;
        self.team_role_holders += other.team_role_holders;
        self.team_members += other.team_members;
        self.memberships_per_user |= other.memberships_per_user;
        self.reread += other.reread;
    }

    pub fn total(&self) -> u64 {
        self.roles
            + self.organizations
            + self.users
            + self.organization_role_holders
            + self.memberships
            + self.team_role_holders
            + self.team_members
            + self.reread
    }
}

/// Everything charter reads from an instance, sorted by id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub organizations: Vec<ObservedOrganization>,
    pub users: Vec<ObservedUser>,
    pub roles: Roles,
    /// What reading it cost; not part of any fingerprint.
    pub calls: ObserveCalls,
}

impl Observed {
    pub fn organization(&self, id: i64) -> Option<&ObservedOrganization> {
        self.organizations
            .binary_search_by_key(&id, |o| o.id)
            .ok()
            .and_then(|i| self.organizations.get(i))
    }

    pub fn user(&self, id: i64) -> Option<&ObservedUser> {
        self.users
            .binary_search_by_key(&id, |u| u.id)
            .ok()
            .and_then(|i| self.users.get(i))
    }
}

/// A stable digest of an observed object: `sha256:` and the hex SHA-256 of its canonical JSON.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of a value's JSON, written straight into the hash (no intermediate text).
pub(crate) fn json_digest<T: Serialize>(value: &T) -> [u8; 32] {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    // Writing into a hash cannot fail, nor can serializing these plain structs.
    let _ = serde_json::to_writer(&mut hashing, value);
    hashing.0.finalize().into()
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    text
}

fn fingerprint<T: Serialize>(value: &T) -> Fingerprint {
    // Field order is the structs' and license keys are in catalog order, so the JSON is
    // canonical.
    Fingerprint(format!("sha256:{}", hex(&json_digest(value))))
}

/// What an organization's fingerprint covers: what a plan reads of it (the columns of
/// `OrganizationColumn::PLANNED`) and its members.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationPrint<'a> {
    id: i64,
    name: &'a str,
    license: &'a License,
    deleted: bool,
    members: &'a [Membership],
    teams: &'a [ObservedTeam],
}

impl ObservedOrganization {
    /// The fingerprint of everything a plan acts on: name, license, members and teams. The
    /// usage counters `scenarios` and `activeScenarios` are left out (they move without anyone
    /// changing the organization), and so are the attributes charter neither reads for a plan
    /// nor sets (time zone, country, pause, external id).
    pub fn fingerprint(&self) -> Fingerprint {
        self.cached_fingerprint
            .0
            .get_or_init(|| self.compute_fingerprint())
            .clone()
    }

    fn compute_fingerprint(&self) -> Fingerprint {
        fingerprint(&OrganizationPrint {
            id: self.id,
            name: &self.name,
            license: &self.license,
            deleted: self.deleted,
            members: &self.members,
            teams: &self.teams,
        })
    }
}

/// What a user's fingerprint covers: what a plan reads of them (no language or locale).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserPrint<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    instance_role_id: Option<i64>,
    instance_role: &'a Option<String>,
    deleted: bool,
}

impl ObservedUser {
    pub fn fingerprint(&self) -> Fingerprint {
        self.cached_fingerprint
            .0
            .get_or_init(|| {
                fingerprint(&UserPrint {
                    id: self.id,
                    name: &self.name,
                    email: &self.email,
                    instance_role_id: self.instance_role_id,
                    instance_role: &self.instance_role,
                    deleted: self.deleted,
                })
            })
            .clone()
    }
}

/// The people of one organization: its members and each team's members (by team id), sorted
/// by user id. What a reading of memberships gives, and what charter's state remembers of an
/// organization between readings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memberships {
    pub members: Vec<Membership>,
    /// Team id → members; teams without members are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub teams: BTreeMap<i64, Vec<Membership>>,
}

impl ObservedOrganization {
    /// Its members and its teams' members.
    pub fn memberships(&self) -> Memberships {
        Memberships {
            members: self.members.clone(),
            teams: self
                .teams
                .iter()
                .filter(|t| !t.members.is_empty())
                .map(|t| (t.id, t.members.clone()))
                .collect(),
        }
    }

    /// Sets its members and its teams' members (teams not listed in `memberships` have none);
    /// the fingerprint is computed afresh.
    pub fn set_memberships(&mut self, memberships: &Memberships) {
        self.members = memberships.members.clone();
        for team in &mut self.teams {
            team.members = memberships.teams.get(&team.id).cloned().unwrap_or_default();
        }
        self.cached_fingerprint = FingerprintCache::default();
    }
}
