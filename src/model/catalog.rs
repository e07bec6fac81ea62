//! The built-in license parameter catalog (LANGUAGE.md §3).
//!
//! This is data, not logic: every later stage (the checker, the compiler, the matrix, the JSON
//! Schema and the sandbox's validation of wire licenses) reads the same table, so the order of
//! [`CATALOG`] is the order of keys in every license object charter emits.

/// What kind of value a parameter holds, in the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A plain count.
    Integer,
    /// An amount of bytes; written with a size unit (`500 MiB`).
    Size,
    /// A length of time; written with a duration unit (`15 min`).
    Duration,
    /// `true` or `false`.
    Boolean,
    /// One of a fixed set of words.
    Enum(&'static [EnumVariant]),
    /// A deprecated parameter that is always emitted with one fixed value.
    Fixed(FixedValue),
}

/// One word of an enum parameter and what it is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnumVariant {
    /// The word written in a policy (`monthly`).
    pub word: &'static str,
    /// Other words accepted for the same value (`annual` for `yearly`).
    pub aliases: &'static [&'static str],
    /// The string sent to the API (`"1 month"`).
    pub wire: &'static str,
}

/// The fixed value of a deprecated parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FixedValue {
    Text(&'static str),
    Integer(i64),
}

/// The unit a value has on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiUnit {
    Count,
    Bytes,
    Minutes,
    Days,
    RequestsPerMinute,
    Items,
    AppTier,
    None,
}

impl ApiUnit {
    /// Seconds in one API unit, for duration parameters.
    pub fn seconds(self) -> Option<i64> {
        match self {
            ApiUnit::Minutes => Some(60),
            ApiUnit::Days => Some(86_400),
            _ => None,
        }
    }

    /// How the unit is named in messages (`minutes`).
    pub fn describe(self) -> &'static str {
        match self {
            ApiUnit::Count => "count",
            ApiUnit::Bytes => "bytes",
            ApiUnit::Minutes => "minutes",
            ApiUnit::Days => "days",
            ApiUnit::RequestsPerMinute => "requests per minute",
            ApiUnit::Items => "items",
            ApiUnit::AppTier => "app tier",
            ApiUnit::None => "",
        }
    }
}

/// Which direction of a parameter is the better one for a customer (used by `ladder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    True,
    /// Enums and deprecated parameters: ignored by ladders.
    Unordered,
}

/// A default value, in API units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    Integer(i64),
    Boolean(bool),
}

/// One license parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// Make's key name, also the name in the language.
    pub name: &'static str,
    pub kind: Kind,
    pub unit: ApiUnit,
    /// Inclusive lower bound in API units.
    pub min: i64,
    /// Inclusive upper bound in API units, where there is one.
    pub max: Option<i64>,
    pub default: Option<Default>,
    pub better: Better,
    /// Instance system flags the feature needs when it is turned on.
    pub needs_flags: &'static [&'static str],
    /// Another boolean parameter that must be `true` when this one is.
    pub needs_parameter: Option<&'static str>,
    /// One line for `explain`, the matrix and the JSON Schema.
    pub description: &'static str,
}

impl Parameter {
    pub fn is_deprecated(&self) -> bool {
        matches!(self.kind, Kind::Fixed(_))
    }
}

/// The instance flag that custom variables need.
pub const FLAG_VARIABLES: &str = "feature_variables";
/// The instance flag that scenario inputs and outputs need (besides [`FLAG_VARIABLES`]).
pub const FLAG_SCENARIO_INPUTS: &str = "feature_scenario_inputs";

/// Every system flag some parameter depends on.
pub const KNOWN_FLAGS: &[&str] = &[FLAG_VARIABLES, FLAG_SCENARIO_INPUTS];

const RESTART_PERIODS: &[EnumVariant] = &[
    EnumVariant {
        word: "monthly",
        aliases: &[],
        wire: "1 month",
    },
    EnumVariant {
        word: "yearly",
        aliases: &["annual"],
        wire: "1 year",
    },
];

const fn param(
    name: &'static str,
    kind: Kind,
    unit: ApiUnit,
    description: &'static str,
) -> Parameter {
    Parameter {
        name,
        kind,
        unit,
        min: 0,
        max: None,
        default: None,
        better: match kind {
            Kind::Boolean => Better::True,
            Kind::Enum(_) | Kind::Fixed(_) => Better::Unordered,
            _ => Better::Higher,
        },
        needs_flags: &[],
        needs_parameter: None,
        description,
    }
}

/// The catalog, in the order keys appear in every emitted license object.
pub const CATALOG: &[Parameter] = &[
    param(
        "operations",
        Kind::Integer,
        ApiUnit::Count,
        "operations per restart period",
    ),
    param(
        "transfer",
        Kind::Size,
        ApiUnit::Bytes,
        "data transfer per restart period",
    ),
    param(
        "restartPeriod",
        Kind::Enum(RESTART_PERIODS),
        ApiUnit::None,
        "how often operations and transfer renew",
    ),
    Parameter {
        min: 1,
        better: Better::Lower,
        ..param(
            "interval",
            Kind::Duration,
            ApiUnit::Minutes,
            "shortest time between two scheduled runs",
        )
    },
    Parameter {
        min: 1,
        ..param(
            "executionTime",
            Kind::Duration,
            ApiUnit::Minutes,
            "longest run of one scenario",
        )
    },
    param(
        "fslimit",
        Kind::Size,
        ApiUnit::Bytes,
        "largest file a scenario may process",
    ),
    param(
        "iolimit",
        Kind::Integer,
        ApiUnit::Items,
        "webhook queue size",
    ),
    param(
        "dslimit",
        Kind::Integer,
        ApiUnit::Count,
        "number of data stores",
    ),
    param(
        "dsslimit",
        Kind::Size,
        ApiUnit::Bytes,
        "total data-store storage",
    ),
    param(
        "dlqStorage",
        Kind::Size,
        ApiUnit::Bytes,
        "storage for incomplete executions",
    ),
    param(
        "scenarios",
        Kind::Integer,
        ApiUnit::Count,
        "active scenarios",
    ),
    param(
        "teams",
        Kind::Integer,
        ApiUnit::Count,
        "teams in the organization",
    ),
    param(
        "appslimit",
        Kind::Integer,
        ApiUnit::Count,
        "connection-based apps in active scenarios",
    ),
    param(
        "apiLimit",
        Kind::Integer,
        ApiUnit::RequestsPerMinute,
        "API requests per minute; 0 disables API access",
    ),
    Parameter {
        default: Some(Default::Integer(60)),
        ..param(
            "retention",
            Kind::Duration,
            ApiUnit::Days,
            "execution log retention",
        )
    },
    Parameter {
        max: Some(365),
        ..param(
            "auditLogsDays",
            Kind::Duration,
            ApiUnit::Days,
            "audit log retention",
        )
    },
    Parameter {
        max: Some(3),
        ..param(
            "premiumApps",
            Kind::Integer,
            ApiUnit::AppTier,
            "premium app tier",
        )
    },
    param(
        "customProperties",
        Kind::Integer,
        ApiUnit::Count,
        "custom properties; 0 disables the feature",
    ),
    param(
        "analyticsAccess",
        Kind::Boolean,
        ApiUnit::None,
        "analytics dashboard",
    ),
    param(
        "fulltext",
        Kind::Boolean,
        ApiUnit::None,
        "full-text execution log search",
    ),
    param(
        "advsched",
        Kind::Boolean,
        ApiUnit::None,
        "advanced scheduling",
    ),
    Parameter {
        needs_flags: &[FLAG_VARIABLES],
        ..param(
            "customVariables",
            Kind::Boolean,
            ApiUnit::None,
            "custom variables",
        )
    },
    param(
        "customFunctions",
        Kind::Boolean,
        ApiUnit::None,
        "custom functions",
    ),
    param(
        "creatingTemplates",
        Kind::Boolean,
        ApiUnit::None,
        "creating templates",
    ),
    param(
        "installPublicApps",
        Kind::Boolean,
        ApiUnit::None,
        "installing public apps",
    ),
    Parameter {
        needs_flags: &[FLAG_VARIABLES, FLAG_SCENARIO_INPUTS],
        ..param(
            "scenarioIO",
            Kind::Boolean,
            ApiUnit::None,
            "scenario inputs and outputs",
        )
    },
    Parameter {
        default: Some(Default::Boolean(false)),
        ..param(
            "dynamicDependencies",
            Kind::Boolean,
            ApiUnit::None,
            "dynamic dependencies",
        )
    },
    Parameter {
        default: Some(Default::Boolean(false)),
        needs_parameter: Some("dynamicDependencies"),
        ..param(
            "dynamicConnections",
            Kind::Boolean,
            ApiUnit::None,
            "dynamic connections",
        )
    },
    param(
        "productManagement",
        Kind::Fixed(FixedValue::Text("salesforce")),
        ApiUnit::None,
        "deprecated; always \"salesforce\"",
    ),
    param(
        "gracePeriod",
        Kind::Fixed(FixedValue::Integer(7)),
        ApiUnit::None,
        "deprecated; always 7",
    ),
];

/// The parameter with this exact name.
pub fn lookup(name: &str) -> Option<&'static Parameter> {
    CATALOG.iter().find(|p| p.name == name)
}

/// The position of a parameter in [`CATALOG`], which is its key order on the wire.
pub fn index_of(name: &str) -> Option<usize> {
    CATALOG.iter().position(|p| p.name == name)
}

/// Every parameter name, for "did you mean" suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|p| p.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, p) in CATALOG.iter().enumerate() {
            assert_eq!(index_of(p.name), Some(i), "{} appears twice", p.name);
        }
    }

    #[test]
    fn dependencies_name_boolean_parameters() {
        for p in CATALOG {
            if let Some(dep) = p.needs_parameter {
                let dep = lookup(dep).map(|d| d.kind);
                assert_eq!(
                    dep,
                    Some(Kind::Boolean),
                    "{} depends on a non-boolean",
                    p.name
                );
            }
        }
    }
}
