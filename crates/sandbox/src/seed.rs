//! `charter sandbox seed`: plausible organizations, owners, members and usage for demos and
//! benchmarks, the same for the same seed.
//!
//! It goes through the same store functions as the endpoints, so seeded data keeps every rule
//! the API keeps (valid licenses, one owner, unique e-mail addresses).

use serde_json::Value;

use super::behaviour::UserOrgAdmin;
use super::db::{self, Storage};
use super::error::{ErrorResponse, SandboxError};
use super::faults::Generator;
use super::license;
use super::roles::{self, TokenRole};
use super::store::{self, Caller};
use crate::wire::{DailyUsage, NewOrganization, NewUser};

/// What to seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedOptions {
    pub organizations: u32,
    pub seed: u64,
    /// The last day of the 30 days of usage.
    pub today: jiff::civil::Date,
}

/// What was seeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub organizations: u32,
    pub users: u32,
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Keiko", "Lars", "Maya", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tereza",
];
const LAST_NAMES: &[&str] = &[
    "Novak",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Jensen",
    "Silva",
    "Horvat",
    "Berg",
    "Costa",
    "Varga",
    "Meyer",
    "Lindqvist",
    "Moreau",
    "Svoboda",
];
const NAME_WORDS: &[&str] = &[
    "Blue",
    "Harbor",
    "Granite",
    "Northwind",
    "Maple",
    "Copper",
    "Summit",
    "Lumen",
    "Atlas",
    "Orchid",
    "Falcon",
    "Juniper",
    "Vertex",
    "Beacon",
    "Meridian",
];
const NAME_KINDS: &[&str] = &[
    "Logistics",
    "Studio",
    "Analytics",
    "Health",
    "Foods",
    "Legal",
    "Robotics",
    "Travel",
    "Energy",
    "Retail",
];
/// Operations per month of the plans seeded organizations are on.
const PLAN_OPERATIONS: &[i64] = &[10_000, 40_000, 150_000, 800_000];

fn pick<'a>(generator: &mut Generator, words: &[&'a str]) -> &'a str {
    let last = i64::try_from(words.len()).unwrap_or(1) - 1;
    let index = usize::try_from(generator.between(0, last)).unwrap_or(0);
    words.get(index).copied().unwrap_or("Acme")
}

/// Fills a sandbox database with `options.organizations` organizations, in one transaction.
pub fn seed(storage: &Storage, options: &SeedOptions) -> Result<SeedReport, SandboxError> {
    let mut conn = db::open(storage)?;
    let stopped =
        |error: ErrorResponse| SandboxError::Stopped(format!("seeding failed: {}", error.detail));
    let tx = conn.transaction()?;
    let mut generator = Generator::new(options.seed);
    let mut report = SeedReport::default();
    let template = license::initial_default_license();
    let mut days = vec![options.today];
    for _ in 1..store::USAGE_DAYS {
        if let Some(day) = days.last().and_then(|d| d.yesterday().ok()) {
            days.push(day);
        }
    }
    // Seeding may run more than once on one database: numbering people after the last
    // organization id ever given keeps e-mail addresses unique across runs.
    let base: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'organizations'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0);
    for n in 0..options.organizations {
        let number = base + i64::from(n) + 1;
        let name = format!(
            "{} {} {}",
            pick(&mut generator, NAME_WORDS),
            pick(&mut generator, NAME_WORDS),
            pick(&mut generator, NAME_KINDS)
        );
        let domain = format!("{}.example", name.to_lowercase().replace(' ', "-"));
        let person = |generator: &mut Generator, tag: String| NewUser {
            name: format!(
                "{} {}",
                pick(generator, FIRST_NAMES),
                pick(generator, LAST_NAMES)
            ),
            email: format!("{tag}@{domain}"),
            ..NewUser::default()
        };
        let owner = store::create_user(&tx, &person(&mut generator, format!("owner-{number}")))
            .map_err(stopped)?;
        report.users += 1;

        let operations = PLAN_OPERATIONS
            .get(usize::try_from(generator.between(0, 3)).unwrap_or(0))
            .copied()
            .unwrap_or(10_000);
        let mut license = template.clone();
        license
            .0
            .insert("operations".to_owned(), Value::from(operations));
        license.0.insert(
            "transfer".to_owned(),
            Value::from(operations.saturating_mul(100_000)),
        );
        license.0.insert(
            "apiLimit".to_owned(),
            Value::from(if operations > 100_000 { 240 } else { 60 }),
        );
        let (organization, _) = store::create_organization(
            &tx,
            &NewOrganization {
                name,
                user_org_admin: Some(owner.id),
                license: Some(license),
                ..NewOrganization::default()
            },
            Caller {
                role: TokenRole::SystemAdministrator,
                user_id: owner.id,
            },
            UserOrgAdmin::Owner,
        )
        .map_err(stopped)?;
        report.organizations += 1;

        for k in 0..generator.between(0, 4) {
            let member =
                store::create_user(&tx, &person(&mut generator, format!("member-{number}-{k}")))
                    .map_err(stopped)?;
            report.users += 1;
            let role = match generator.between(0, 5) {
                0 => roles::ORGANIZATION_ADMIN,
                1 => roles::ACCOUNTANT,
                _ => roles::MEMBER,
            };
            store::set_organization_role(&tx, member.id, organization.id, role).map_err(stopped)?;
        }

        let scenarios = generator.between(0, 40);
        let active = generator.between(0, scenarios);
        let busy = generator.between(10, 120);
        let data: Vec<DailyUsage> = days
            .iter()
            .map(|day| {
                let weekend = matches!(
                    day.weekday(),
                    jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
                );
                let daily = operations / 30 * busy / 100;
                let daily = if weekend { daily / 3 } else { daily };
                let operations = generator.between(daily * 8 / 10, daily * 12 / 10).max(0);
                DailyUsage {
                    date: day.to_string(),
                    operations,
                    data_transfer: operations.saturating_mul(generator.between(500, 4_000)),
                }
            })
            .collect();
        store::set_usage(&tx, organization.id, Some(scenarios), Some(active), &data)
            .map_err(stopped)?;
    }
    tx.commit()?;
    db::checkpoint(&conn)?;
    Ok(report)
}
