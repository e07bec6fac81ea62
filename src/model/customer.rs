//! Customers, the lifecycle and tests, as checked: what `compile` needs to compute each
//! organization's desired state at an instant.

use std::collections::BTreeMap;
use std::fmt;

use crate::ast;
use crate::model::license::{Assignment, License, LicenseValue, Origin};
use crate::source::Span;

/// A customer from a `customer` block or a roster row.
#[derive(Clone, Debug)]
pub struct Customer {
    /// The stable identity (`acme`).
    pub key: String,
    /// The organization's name on the instance.
    pub name: String,
    pub tier: String,
    pub addons: Vec<String>,
    pub owner: String,
    pub admins: Vec<String>,
    pub members: Vec<String>,
    /// Dates and other facts (`contract_end`, `region`, roster columns).
    pub attributes: BTreeMap<String, Attribute>,
    /// `override { … }`, applied after the tier and the add-ons.
    pub overrides: Vec<Assignment>,
    pub teams: Vec<Team>,
    /// The key, where it was written (a `.charter` file or a roster cell).
    pub span: Span,
}

/// A customer attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    Text(String),
    /// Seconds since the Unix epoch, UTC.
    Date(i64),
    Int(i64),
    Bool(bool),
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Text(t) => write!(f, "{t:?}"),
            Attribute::Date(d) => f.write_str(&crate::model::time::format_instant(*d)),
            Attribute::Int(n) => write!(f, "{n}"),
            Attribute::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `team "NAME" { admins = […]; members = […]; operators = […]; monitors = […] }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub name: String,
    /// Address → team role, in the order written.
    pub roles: Vec<(String, TeamRole)>,
}

/// A role in an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrgRole {
    Owner,
    Admin,
    Member,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
        }
    }
}

/// A role in a team (Make's Team Admin, Team Member, Team Operator, Team Monitoring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TeamRole {
    Admin,
    Member,
    Operator,
    Monitor,
}

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::Member => "member",
            TeamRole::Operator => "operator",
            TeamRole::Monitor => "monitor",
        }
    }
}

/// The people of a customer a `demote` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Owner,
    Admins,
    Members,
}

/// The checked lifecycle. A policy set without a `lifecycle` block has the default one: a
/// single initial state `active` with `license = tier`.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub initial: String,
    pub states: Vec<State>,
    pub transitions: Vec<Transition>,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            initial: "active".to_string(),
            states: vec![State {
                name: "active".to_string(),
                overlays: Vec::new(),
                owner_to_dummy: false,
                demotions: Vec::new(),
                span: None,
            }],
            transitions: Vec::new(),
        }
    }
}

impl Lifecycle {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.iter().find(|s| s.name == name)
    }

    pub fn transition(&self, name: &str) -> Option<&Transition> {
        self.transitions.iter().find(|t| t.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct State {
    pub name: String,
    /// `with` values, one per parameter (groups expanded), in the order written.
    pub overlays: Vec<(usize, LicenseValue, Span)>,
    /// `owner = dummy_owner`
    pub owner_to_dummy: bool,
    /// `demote PARTIES to ROLE`
    pub demotions: Vec<(Party, OrgRole)>,
    pub span: Option<Span>,
}

impl State {
    /// A customer's license in this state: the given license with the state's overlays.
    pub fn apply_to(&self, license: &License) -> License {
        let mut license = license.clone();
        let origin = Origin::State(self.name.as_str().into());
        for (param, value, span) in &self.overlays {
            license.overlay(&origin, *param, *value, *span);
        }
        license
    }
}

#[derive(Clone, Debug)]
pub struct Transition {
    pub name: String,
    pub from: Vec<String>,
    pub to: String,
    pub trigger: Trigger,
    /// `if EXPR` over the customer's attributes.
    pub guard: Option<ast::Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Trigger {
    /// Due at the date the expression gives (over the customer's attributes).
    When(ast::Expr),
    /// Due this many seconds after entering the source state.
    After(i64),
    Manual,
}

impl Trigger {
    pub fn is_automatic(&self) -> bool {
        !matches!(self, Trigger::Manual)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::When(expr) => write!(f, "when {expr}"),
            Trigger::After(seconds) => write!(
                f,
                "after {}",
                crate::model::license::human_duration(*seconds)
            ),
            Trigger::Manual => f.write_str("manual"),
        }
    }
}

/// A `test` block.
#[derive(Clone, Debug)]
pub struct Test {
    pub name: String,
    /// The instant the block's clock is fixed at.
    pub at: Option<i64>,
    pub expects: Vec<Expect>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Expect {
    pub subject: Subject,
    pub expr: ast::Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Tier(String),
    Customer(String),
}

/// A `staff` block: one of the reseller's own people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staff {
    pub email: String,
    pub name: Option<String>,
    /// The instance-level role's name (`SA`, `Admin`, `D1`, `S4 (read-only)`), resolved on the
    /// instance when planning; `None` for no instance role.
    pub role: Option<String>,
    pub options: Vec<AppOption>,
    pub span: Span,
}

/// An option of a user's "Apps and Features" tab. The admin API cannot set these, so plans list
/// them as manual steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppOption {
    AppsWithoutSuffix,
    ImlFunctions,
    CommitApprovedApps,
    PrivateApps,
    LocalNetwork,
}

impl AppOption {
    pub const ALL: &[AppOption] = &[
        AppOption::AppsWithoutSuffix,
        AppOption::ImlFunctions,
        AppOption::CommitApprovedApps,
        AppOption::PrivateApps,
        AppOption::LocalNetwork,
    ];

    pub fn word(self) -> &'static str {
        match self {
            AppOption::AppsWithoutSuffix => "apps_without_suffix",
            AppOption::ImlFunctions => "iml_functions",
            AppOption::CommitApprovedApps => "commit_approved_apps",
            AppOption::PrivateApps => "private_apps",
            AppOption::LocalNetwork => "local_network",
        }
    }

    pub fn from_word(word: &str) -> Option<AppOption> {
        AppOption::ALL.iter().copied().find(|o| o.word() == word)
    }

    /// The option's label in Make's Administration, for manual steps.
    pub fn label(self) -> &'static str {
        match self {
            AppOption::AppsWithoutSuffix => "Custom apps without the ID suffix",
            AppOption::ImlFunctions => "Custom IML functions in custom apps",
            AppOption::CommitApprovedApps => "Commit changes to approved apps",
            AppOption::PrivateApps => "See and use private apps",
            AppOption::LocalNetwork => "Local network access (on-premises only)",
        }
    }

    /// Why the option deserves a warning, if it does.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            AppOption::AppsWithoutSuffix => {
                Some("custom apps without the ID suffix may clash with the names of native apps")
            }
            AppOption::LocalNetwork => {
                Some("local network access only works on on-premises instances")
            }
            _ => None,
        }
    }
}
