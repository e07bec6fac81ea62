//! Reading an instance: every organization with its license, members and teams, every user, and
//! the roles, in as few calls as Make's documented endpoints allow.
//!
//! The result, [`Observed`], is plain sorted data for a pure planner; each organization and user
//! has a [`Fingerprint`] that a saved plan records, so that `apply` can tell whether it changed.
//!
//! # Calls
//!
//! Licenses and teams come inline in the organization list. Memberships are the expensive part:
//! Make has no endpoint listing every membership. With `P` the page size and
//! `pages(n) = ⌊n / P⌋ + 1` (the last page is the first shorter than `P`), observing costs:
//!
//! 1. roles: 5 calls (instance roles of the three categories, organization roles, team roles);
//! 2. organizations: `pages(N)`; users: `pages(U)`;
//! 3. holders: for each organization role `r`, `GET /admin/users?organizationRoleId=r&cols[]=id`
//!    (`pages` of its holders): who holds `r` somewhere. A user found under exactly one role has
//!    that role in every organization they belong to;
//! 4. memberships, the cheaper of two ways, chosen from the holder lists (`M` users hold an
//!    organization role, `A` of them more than one):
//!    - per user (when `M ≤ N + A`): `GET /users/{id}/user-organization-roles` for each of the
//!      `M`, which gives their role everywhere: `M` calls;
//!    - per organization: `GET /admin/users?organizationId=o&cols[]=id` for each organization
//!      (`pages` of its members), then the per-user call for each member whose role the holder
//!      lists do not tell (the `A`, and any member found under no role);
//! 5. team holders: for each team role, `GET /admin/users?teamRoleId=r&cols[]=id`. A user whose
//!    organizations have one team between them, found under one team role, is placed without
//!    another call; otherwise each team that may hold them is listed
//!    (`GET /admin/users?teamId=t&cols[]=id`), and for members found under several team roles,
//!    `GET /admin/users?teamId=t&teamRoleId=r&cols[]=id` for each of those roles.
//!
//! An instance where each organization has one team and nobody holds two different roles costs
//! `5 + pages(N) + pages(U) + Σ pages(holders) + min(M, N)` calls: about `N + 17` with Make's
//! five organization and five team roles. (A plan reads `GET /users/me` as well, for the
//! token's own role: `N + 18`.)
//!
//! # Pacing
//!
//! Through a [paced](super::Client::paced) client every call waits for the limiter and is
//! retried as the pacing says (a 429 slows the limiter rather than failing the reading), and a
//! reading that met answers contradicting each other (`ApiErrorKind::Inconsistent`: the
//! instance changed while it was read) is made again from the start, after a backoff, while the
//! pacing's retry policy allows; its calls are counted in [`ObserveCalls::reread`]. A client
//! without pacing reads once and fails on the first error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::client::{Client, UserFilter};
use super::error::{ApiError, ApiErrorKind, Call, Method};
use super::roles::{RoleKind, Roles};
use super::wire::{License, Organization, User};

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

/// What an organization's fingerprint covers: all but the usage counters.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationPrint<'a> {
    id: i64,
    name: &'a str,
    timezone_id: i64,
    country_id: i64,
    license: &'a License,
    is_paused: bool,
    external_id: &'a Option<String>,
    deleted: bool,
    members: &'a [Membership],
    teams: &'a [ObservedTeam],
}

impl ObservedOrganization {
    /// The fingerprint of everything a plan acts on: attributes, license, members and teams.
    /// The usage counters `scenarios` and `activeScenarios` are left out: they move without
    /// anyone changing the organization.
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
            timezone_id: self.timezone_id,
            country_id: self.country_id,
            license: &self.license,
            is_paused: self.is_paused,
            external_id: &self.external_id,
            deleted: self.deleted,
            members: &self.members,
            teams: &self.teams,
        })
    }
}

/// What a user's fingerprint covers: everything read.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserPrint<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    instance_role_id: Option<i64>,
    instance_role: &'a Option<String>,
    language: &'a str,
    country_id: i64,
    timezone_id: i64,
    locale_id: i64,
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
                    language: &self.language,
                    country_id: self.country_id,
                    timezone_id: self.timezone_id,
                    locale_id: self.locale_id,
                    deleted: self.deleted,
                })
            })
            .clone()
    }
}

/// Reads the instance (see the module documentation for the calls it makes and for how a paced
/// client retries).
pub async fn observe(client: &Client) -> Result<Observed, ApiError> {
    let mut attempt = 0;
    let mut reread = 0;
    loop {
        attempt += 1;
        let before = client.calls();
        let error = match read(client).await {
            Ok(mut observed) => {
                observed.calls.reread = reread;
                return Ok(observed);
            }
            Err(error) => error,
        };
        match client.pacing() {
            Some(pacing) if pacing.read_again(attempt, &error).await => {
                reread += client.calls().saturating_sub(before);
            }
            _ => return Err(error),
        }
    }
}

/// One reading of the instance, from the start.
async fn read(client: &Client) -> Result<Observed, ApiError> {
    let mut calls = ObserveCalls::default();
    let mut mark = client.calls();
    let mut spent = |client: &Client| {
        let now = client.calls();
        let used = now - mark;
        mark = now;
        used
    };

    let roles = client.roles().await?;
    calls.roles = spent(client);
    let organizations = client.list_organizations(&Default::default()).await?;
    calls.organizations = spent(client);
    let users = client.list_users(&UserFilter::default()).await?;
    calls.users = spent(client);

    // Who holds each organization role somewhere.
    let mut organization_candidates: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for role in &roles.organization {
        let holders = client
            .list_user_ids(&UserFilter {
                organization_role_id: Some(role.id),
                ..UserFilter::default()
            })
            .await?;
        for user in holders {
            organization_candidates
                .entry(user)
                .or_default()
                .insert(role.id);
        }
    }
    calls.organization_role_holders = spent(client);

    let known: BTreeSet<i64> = organizations.iter().map(|o| o.id).collect();
    // (organization, user) → role
    let mut memberships: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let several = organization_candidates
        .values()
        .filter(|roles| roles.len() > 1)
        .count();
    let per_user = organization_candidates.len() <= organizations.len() + several;
    calls.memberships_per_user = per_user;
    let mut unresolved: BTreeSet<i64> = BTreeSet::new();
    if per_user {
        unresolved.extend(organization_candidates.keys().copied());
    } else {
        for organization in &organizations {
            let members = client
                .list_user_ids(&UserFilter {
                    organization_id: Some(organization.id),
                    ..UserFilter::default()
                })
                .await?;
            for user in members {
                match organization_candidates.get(&user) {
                    Some(roles) if roles.len() == 1 => {
                        if let Some(&role) = roles.first() {
                            memberships.insert((organization.id, user), role);
                        }
                    }
                    _ => {
                        unresolved.insert(user);
                    }
                }
            }
        }
    }
    for user in unresolved {
        // Rows of organizations created after the list was read are left out, like the
        // organizations themselves.
        for row in client.user_organization_roles(user).await? {
            if known.contains(&row.organization_id) {
                memberships.insert((row.organization_id, user), row.users_role_id);
            }
        }
    }
    calls.memberships = spent(client);

    // Team roles.
    let mut team_candidates: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for role in &roles.team {
        let holders = client
            .list_user_ids(&UserFilter {
                team_role_id: Some(role.id),
                ..UserFilter::default()
            })
            .await?;
        for user in holders {
            team_candidates.entry(user).or_default().insert(role.id);
        }
    }
    calls.team_role_holders = spent(client);

    let teams_of_organization: BTreeMap<i64, Vec<i64>> = organizations
        .iter()
        .map(|o| (o.id, o.teams.iter().flatten().map(|t| t.id).collect()))
        .collect();
    let mut organizations_of_user: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(organization, user) in memberships.keys() {
        organizations_of_user
            .entry(user)
            .or_default()
            .push(organization);
    }
    // (team, user) → role
    let mut team_memberships: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut teams_to_list: BTreeSet<i64> = BTreeSet::new();
    for (&user, team_roles) in &team_candidates {
        let teams: BTreeSet<i64> = organizations_of_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|o| teams_of_organization.get(o))
            .flatten()
            .copied()
            .collect();
        match (teams.first(), team_roles.first()) {
            (Some(&team), Some(&role)) if teams.len() == 1 && team_roles.len() == 1 => {
                team_memberships.insert((team, user), role);
            }
            _ => teams_to_list.extend(teams),
        }
    }
    let all_team_roles: BTreeSet<i64> = roles.team.iter().map(|r| r.id).collect();
    for team in teams_to_list {
        let members = client
            .list_user_ids(&UserFilter {
                team_id: Some(team),
                ..UserFilter::default()
            })
            .await?;
        let mut ambiguous: BTreeSet<i64> = BTreeSet::new();
        let mut roles_to_ask: BTreeSet<i64> = BTreeSet::new();
        for user in members {
            match team_candidates.get(&user) {
                Some(roles) if roles.len() == 1 => {
                    if let Some(&role) = roles.first() {
                        team_memberships.insert((team, user), role);
                    }
                }
                Some(roles) if !roles.is_empty() => {
                    ambiguous.insert(user);
                    roles_to_ask.extend(roles.iter().copied());
                }
                _ => {
                    ambiguous.insert(user);
                    roles_to_ask.extend(all_team_roles.iter().copied());
                }
            }
        }
        for role in roles_to_ask {
            if ambiguous.is_empty() {
                break;
            }
            let holders = client
                .list_user_ids(&UserFilter {
                    team_id: Some(team),
                    team_role_id: Some(role),
                    ..UserFilter::default()
                })
                .await?;
            for user in holders {
                if ambiguous.remove(&user) {
                    team_memberships.insert((team, user), role);
                }
            }
        }
        if let Some(user) = ambiguous.first() {
            return Err(ApiError::new(
                Call {
                    method: Method::Get,
                    path: "/admin/users".to_owned(),
                    query: vec![("teamId".to_owned(), team.to_string())],
                },
                ApiErrorKind::Inconsistent {
                    problem: format!(
                        "user `{user}` is in team `{team}` but holds none of its roles"
                    ),
                },
            ));
        }
    }
    calls.team_members = spent(client);

    let observed = Observed {
        organizations: organizations
            .into_iter()
            .map(|o| observed_organization(o, &memberships, &team_memberships, &roles))
            .collect::<Sorted<_>>()
            .0,
        users: users
            .into_iter()
            .map(|u| observed_user(u, &roles))
            .collect::<Sorted<_>>()
            .0,
        roles,
        calls,
    };
    // Fingerprints are part of reading: a plan records them, `apply` compares them.
    for o in &observed.organizations {
        o.fingerprint();
    }
    for u in &observed.users {
        u.fingerprint();
    }
    Ok(observed)
}

/// Collects and sorts by id.
struct Sorted<T>(Vec<T>);

trait HasId {
    fn id(&self) -> i64;
}

impl HasId for ObservedOrganization {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for ObservedUser {
    fn id(&self) -> i64 {
        self.id
    }
}

impl<T: HasId> FromIterator<T> for Sorted<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Sorted<T> {
        let mut items: Vec<T> = iter.into_iter().collect();
        items.sort_by_key(HasId::id);
        items.dedup_by_key(|item| item.id());
        Sorted(items)
    }
}

fn membership(user_id: i64, role_id: i64, kind: RoleKind, roles: &Roles) -> Membership {
    Membership {
        user_id,
        role_id,
        role: roles.name(kind, role_id).map(str::to_owned),
    }
}

fn observed_organization(
    organization: Organization,
    memberships: &BTreeMap<(i64, i64), i64>,
    team_memberships: &BTreeMap<(i64, i64), i64>,
    roles: &Roles,
) -> ObservedOrganization {
    let id = organization.id;
    let members = memberships
        .range((id, i64::MIN)..=(id, i64::MAX))
        .map(|(&(_, user), &role)| membership(user, role, RoleKind::Organization, roles))
        .collect();
    let mut teams: Vec<ObservedTeam> = organization
        .teams
        .unwrap_or_default()
        .into_iter()
        .map(|team| ObservedTeam {
            members: team_memberships
                .range((team.id, i64::MIN)..=(team.id, i64::MAX))
                .map(|(&(_, user), &role)| membership(user, role, RoleKind::Team, roles))
                .collect(),
            id: team.id,
            name: team.name,
        })
        .collect();
    teams.sort_by_key(|t| t.id);
    ObservedOrganization {
        id,
        name: organization.name,
        // A field the answer leaves out (Make answers what `cols[]` asked for, and may not know
        // a column) reads as its empty value: stable from one reading to the next.
        timezone_id: organization.timezone_id.unwrap_or_default(),
        country_id: organization.country_id.unwrap_or_default(),
        license: organization.license.unwrap_or_default(),
        is_paused: organization.is_paused.unwrap_or_default(),
        external_id: organization.external_id,
        scenarios: organization.scenarios.unwrap_or_default(),
        active_scenarios: organization.active_scenarios.unwrap_or_default(),
        deleted: organization.deleted.unwrap_or_default(),
        members,
        teams,
        cached_fingerprint: FingerprintCache::default(),
    }
}

fn observed_user(user: User, roles: &Roles) -> ObservedUser {
    ObservedUser {
        id: user.id,
        instance_role: user
            .users_admins_role_id
            .and_then(|id| roles.name(RoleKind::Instance, id))
            .map(str::to_owned),
        instance_role_id: user.users_admins_role_id,
        name: user.name,
        email: user.email,
        language: user.language.unwrap_or_default(),
        country_id: user.country_id.unwrap_or_default(),
        timezone_id: user.timezone_id.unwrap_or_default(),
        locale_id: user.locale_id.unwrap_or_default(),
        deleted: user.deleted.unwrap_or_default(),
        cached_fingerprint: FingerprintCache::default(),
    }
}
