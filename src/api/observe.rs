//! Reading an instance: every organization with its license and teams, every user, the roles,
//! and the memberships of every organization or of a chosen few, in as few calls as Make's
//! documented endpoints allow.
//!
//! The result is [`Observed`] (`plan::observed`: plain sorted data for the pure planner); this
//! module only fills it. A plan reads in two parts ([`list`] then [`read_memberships`] for the
//! organizations it verifies, `schedule::prepare` chooses which); [`observe`] reads everything.
//!
//! # Calls
//!
//! Licenses and teams come inline in the organization list. Memberships are the expensive part:
//! Make has no endpoint listing every membership. With `P` the page size (the lists ask for
//! [`DEFAULT_PAGE_SIZE`](super::client::DEFAULT_PAGE_SIZE), the largest Make has been seen to
//! serve, and then for the limit the instance echoes) and `pages(n) = ⌊n / P⌋ + 1` (the last page is the first shorter than `P`):
//!
//! 1. the listing ([`list`]): roles, 5 calls (instance roles of the three categories,
//!    organization roles, team roles); organizations `pages(N)`; users `pages(U)`;
//! 2. holders: for each organization role `r`, `GET /admin/users?organizationRoleId=r&cols[]=id`
//!    (`pages` of its holders): who holds `r` somewhere. A user found under exactly one role has
//!    that role in every organization they belong to;
//! 3. memberships of the `S` organizations read, the cheaper of two ways, chosen from the holder
//!    lists (`M` users hold an organization role, `A` of them more than one):
//!    - per user (when `M ≤ S + A`): `GET /users/{id}/user-organization-roles` for each of the
//!      `M`, which gives their role everywhere: `M` calls;
//!    - per organization: `GET /admin/users?organizationId=o&cols[]=id` for each of the `S`
//!      (`pages` of its members), then the per-user call for each member whose role the holder
//!      lists do not tell (the `A`, and any member found under no role);
//! 4. team holders: for each team role, `GET /admin/users?teamRoleId=r&cols[]=id`. Reading every
//!    organization, a user whose organizations have one team between them, found under one team
//!    role, is placed without another call; otherwise (and always when reading a few) each team
//!    that may hold them is listed (`GET /admin/users?teamId=t&cols[]=id`), and for members found
//!    under several team roles, `GET /admin/users?teamId=t&teamRoleId=r&cols[]=id` for each of
//!    those roles.
//!
//! Reading everything where each organization has one team and nobody holds two different roles
//! costs `5 + pages(N) + pages(U) + Σ pages(holders) + min(M, N)` calls: about `N + 17` with
//! Make's five organization and five team roles. Reading `S` organizations (without teams) costs
//! `5 + pages(N) + pages(U) + Σ pages(holders) + S`.
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
use std::future::Future;

use super::client::{Client, OrganizationColumn, UserFilter};
use super::error::{ApiError, ApiErrorKind, Call, Method};
use super::roles::{Role, RoleKind, Roles};
use super::wire::{Organization, User};
use crate::plan::observed::FingerprintCache;
pub use crate::plan::observed::{
    Fingerprint, Membership, Memberships, ObserveCalls, Observed, ObservedOrganization,
    ObservedTeam, ObservedUser,
};

/// Which organizations' memberships a reading reads.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every organization of the instance.
    All,
    /// These organizations only (ids the listing does not have are ignored).
    Only(&'a BTreeSet<i64>),
}

impl Scope<'_> {
    fn contains(&self, organization: i64) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(ids) => ids.contains(&organization),
        }
    }
}

/// Reads the whole instance, every column charter knows (see the module documentation for the
/// calls it makes and for how a paced client retries).
pub async fn observe(client: &Client) -> Result<Observed, ApiError> {
    again(client, || async {
        let mut calls = ObserveCalls::default();
        let mut listing = read_listing(client, &OrganizationColumn::ALL, &mut calls).await?;
        let memberships = read_scope(client, &listing, Scope::All, &mut calls).await?;
        for o in &mut listing.organizations {
            o.set_memberships(memberships.get(&o.id).unwrap_or(&Memberships::default()));
        }
        listing.calls = calls;
        Ok(fingerprinted(listing))
    })
    .await
}

/// What the list endpoints give a plan, in `pages(N) + pages(U) + 5` calls: the roles, every
/// organization with the columns a plan reads (its license and teams) and every user. No
/// memberships: every organization's members and teams' members are empty.
pub async fn list(client: &Client) -> Result<Observed, ApiError> {
    again(client, || async {
        let mut calls = ObserveCalls::default();
        let mut listing = read_listing(client, &OrganizationColumn::PLANNED, &mut calls).await?;
        listing.calls = calls;
        Ok(listing)
    })
    .await
}

/// The memberships of the organizations of `listing` that `scope` names, by organization id
/// (every organization in the scope has an entry), and the calls it took (in `memberships`,
/// the holder lists and the team members of the returned [`ObserveCalls`]).
pub async fn read_memberships(
    client: &Client,
    listing: &Observed,
    scope: Scope<'_>,
) -> Result<(BTreeMap<i64, Memberships>, ObserveCalls), ApiError> {
    let mut reread = 0;
    let memberships = again_counting(client, &mut reread, || async {
        let mut calls = ObserveCalls::default();
        let memberships = read_scope(client, listing, scope, &mut calls).await?;
        Ok((memberships, calls))
    })
    .await?;
    let (memberships, mut calls) = memberships;
    calls.reread = reread;
    Ok((memberships, calls))
}

/// Fingerprints are part of reading: a plan records them, `apply` compares them.
pub fn fingerprinted(observed: Observed) -> Observed {
    for o in &observed.organizations {
        o.fingerprint();
    }
    for u in &observed.users {
        u.fingerprint();
    }
    observed
}

/// Runs a reading, and again from the start while the pacing allows after an `Inconsistent`
/// answer; the calls of given-up readings are counted in `calls.reread`.
async fn again<F, Fut>(client: &Client, reading: F) -> Result<Observed, ApiError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Observed, ApiError>>,
{
    let mut reread = 0;
    let mut observed = again_counting(client, &mut reread, reading).await?;
    observed.calls.reread = reread;
    Ok(observed)
}

async fn again_counting<T, F, Fut>(
    client: &Client,
    reread: &mut u64,
    reading: F,
) -> Result<T, ApiError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = client.calls();
        let error = match reading().await {
            Ok(read) => return Ok(read),
            Err(error) => error,
        };
        match client.pacing() {
            Some(pacing) if pacing.read_again(attempt, &error).await => {
                *reread += client.calls().saturating_sub(before);
            }
            _ => return Err(error),
        }
    }
}

/// Counts the calls a part of a reading took.
struct Meter {
    mark: u64,
}

impl Meter {
    fn start(client: &Client) -> Meter {
        Meter {
            mark: client.calls(),
        }
    }

    fn spent(&mut self, client: &Client) -> u64 {
        let now = client.calls();
        let used = now.saturating_sub(self.mark);
        self.mark = now;
        used
    }
}

/// Step 1: roles, organizations (with `columns`) and users; no memberships.
async fn read_listing(
    client: &Client,
    columns: &[OrganizationColumn],
    calls: &mut ObserveCalls,
) -> Result<Observed, ApiError> {
    let mut meter = Meter::start(client);
    let roles = client.roles().await?;
    calls.roles = meter.spent(client);
    let everything = columns == OrganizationColumn::ALL;
    let organizations = if everything {
        client.list_organizations(&Default::default()).await?
    } else {
        client.list_organizations_with(columns).await?
    };
    calls.organizations = meter.spent(client);
    let users = if everything {
        client.list_users(&UserFilter::default()).await?
    } else {
        client.list_planned_users().await?
    };
    calls.users = meter.spent(client);
    let empty = BTreeMap::new();
    Ok(Observed {
        organizations: organizations
            .into_iter()
            .map(|o| observed_organization(o, &empty, &empty, &roles))
            .collect::<Sorted<_>>()
            .0,
        users: users
            .into_iter()
            .map(|u| observed_user(u, &roles))
            .collect::<Sorted<_>>()
            .0,
        roles,
        calls: ObserveCalls::default(),
    })
}

/// Steps 2 to 4 for the organizations in `scope`.
async fn read_scope(
    client: &Client,
    listing: &Observed,
    scope: Scope<'_>,
    calls: &mut ObserveCalls,
) -> Result<BTreeMap<i64, Memberships>, ApiError> {
    let organizations: Vec<&ObservedOrganization> = listing
        .organizations
        .iter()
        .filter(|o| scope.contains(o.id))
        .collect();
    let mut result: BTreeMap<i64, Memberships> = organizations
        .iter()
        .map(|o| (o.id, Memberships::default()))
        .collect();
    // Reading a few organizations, none is nothing to read; reading all, the holder lists are
    // read even of an empty instance (a reading of everything always has the same shape).
    if organizations.is_empty() && matches!(scope, Scope::Only(_)) {
        return Ok(result);
    }
    let roles = &listing.roles;
    let mut meter = Meter::start(client);
    let holders = role_holders(client, &roles.organization, |role| UserFilter {
        organization_role_id: Some(role),
        ..UserFilter::default()
    })
    .await?;
    calls.organization_role_holders = meter.spent(client);
    let (memberships, per_user) =
        organization_memberships(client, &organizations, &holders).await?;
    calls.memberships = meter.spent(client);
    calls.memberships_per_user = per_user;
    let team_holders = role_holders(client, &roles.team, |role| UserFilter {
        team_role_id: Some(role),
        ..UserFilter::default()
    })
    .await?;
    calls.team_role_holders = meter.spent(client);
    let team_memberships = team_memberships(
        client,
        &organizations,
        &memberships,
        &team_holders,
        roles,
        matches!(scope, Scope::All),
    )
    .await?;
    calls.team_members = meter.spent(client);

    let team_owner: BTreeMap<i64, i64> = organizations
        .iter()
        .flat_map(|o| o.teams.iter().map(|t| (t.id, o.id)))
        .collect();
    for (&(organization, user), &role) in &memberships {
        if let Some(entry) = result.get_mut(&organization) {
            entry
                .members
                .push(membership(user, role, RoleKind::Organization, roles));
        }
    }
    for (&(team, user), &role) in &team_memberships {
        if let Some(entry) = team_owner
            .get(&team)
            .and_then(|organization| result.get_mut(organization))
        {
            entry.teams.entry(team).or_default().push(membership(
                user,
                role,
                RoleKind::Team,
                roles,
            ));
        }
    }
    Ok(result)
}

/// Step 2 (and the first half of 4): who holds each of `roles` somewhere, as user → roles;
/// `filter` is the user filter of one role.
async fn role_holders(
    client: &Client,
    roles: &[Role],
    filter: fn(i64) -> UserFilter,
) -> Result<BTreeMap<i64, BTreeSet<i64>>, ApiError> {
    let mut holders: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for role in roles {
        for user in client.list_user_ids(&filter(role.id)).await? {
            holders.entry(user).or_default().insert(role.id);
        }
    }
    Ok(holders)
}

/// Step 3: (organization, user) → role for the organizations given, per user or per
/// organization, whichever costs fewer calls; and whether it was per user.
async fn organization_memberships(
    client: &Client,
    organizations: &[&ObservedOrganization],
    holders: &BTreeMap<i64, BTreeSet<i64>>,
) -> Result<(BTreeMap<(i64, i64), i64>, bool), ApiError> {
    let known: BTreeSet<i64> = organizations.iter().map(|o| o.id).collect();
    let mut memberships: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let several = holders.values().filter(|roles| roles.len() > 1).count();
    let per_user = holders.len() <= organizations.len() + several;
    let mut unresolved: BTreeSet<i64> = BTreeSet::new();
    if per_user {
        unresolved.extend(holders.keys().copied());
    } else {
        for organization in organizations {
            let members = client
                .list_user_ids(&UserFilter {
                    organization_id: Some(organization.id),
                    ..UserFilter::default()
                })
                .await?;
            for user in members {
                match holders.get(&user) {
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
        // Rows of organizations created after the list was read (or not read this time) are
        // left out, like the organizations themselves.
        for row in client.user_organization_roles(user).await? {
            if known.contains(&row.organization_id) {
                memberships.insert((row.organization_id, user), row.users_role_id);
            }
        }
    }
    Ok((memberships, per_user))
}

/// Step 4: (team, user) → role for the teams of the organizations given. `complete`: the
/// organization memberships are every organization's, so a user's teams are known from them.
async fn team_memberships(
    client: &Client,
    organizations: &[&ObservedOrganization],
    memberships: &BTreeMap<(i64, i64), i64>,
    holders: &BTreeMap<i64, BTreeSet<i64>>,
    roles: &Roles,
    complete: bool,
) -> Result<BTreeMap<(i64, i64), i64>, ApiError> {
    let teams_of_organization: BTreeMap<i64, Vec<i64>> = organizations
        .iter()
        .map(|o| (o.id, o.teams.iter().map(|t| t.id).collect()))
        .collect();
    let mut team_memberships: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut teams_to_list: BTreeSet<i64> = BTreeSet::new();
    if complete {
        let mut organizations_of_user: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for &(organization, user) in memberships.keys() {
            organizations_of_user
                .entry(user)
                .or_default()
                .push(organization);
        }
        for (&user, team_roles) in holders {
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
    } else if !holders.is_empty() {
        // A user's other organizations are not known: each team that may hold anyone is listed.
        teams_to_list.extend(teams_of_organization.values().flatten().copied());
    }
    let all_team_roles: BTreeSet<i64> = roles.team.iter().map(|r| r.id).collect();
    for team in teams_to_list {
        list_team(
            client,
            team,
            holders,
            &all_team_roles,
            &mut team_memberships,
        )
        .await?;
    }
    Ok(team_memberships)
}

/// The members of one team with their roles: from the holder lists when a member holds one
/// team role, by role otherwise.
async fn list_team(
    client: &Client,
    team: i64,
    holders: &BTreeMap<i64, BTreeSet<i64>>,
    all_team_roles: &BTreeSet<i64>,
    team_memberships: &mut BTreeMap<(i64, i64), i64>,
) -> Result<(), ApiError> {
    let members = client
        .list_user_ids(&UserFilter {
            team_id: Some(team),
            ..UserFilter::default()
        })
        .await?;
    let mut ambiguous: BTreeSet<i64> = BTreeSet::new();
    let mut roles_to_ask: BTreeSet<i64> = BTreeSet::new();
    for user in members {
        match holders.get(&user) {
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
    match ambiguous.first() {
        Some(user) => Err(ApiError::new(
            Call {
                method: Method::Get,
                path: "/admin/users".to_owned(),
                query: vec![("teamId".to_owned(), team.to_string())],
            },
            ApiErrorKind::Inconsistent {
                problem: format!("user `{user}` is in team `{team}` but holds none of its roles"),
            },
        )),
        None => Ok(()),
    }
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
