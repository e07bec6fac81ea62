//! Make's license keys as the sandbox knows them, the checks it makes on their values, and the
//! initial default license of a new sandbox.
//!
//! The list is the sandbox's own, gathered from Make's public material (the official SDK's
//! organization type and example responses, the White Label documentation), not from any
//! client. A license may hold any subset of these keys and keys the sandbox does not know: Make's
//! own example licenses are partial, so the sandbox checks the values of the keys it knows and
//! stores every other key as it came.

use serde_json::{Map, Value};

use crate::wire::License;

/// What values a key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number within inclusive bounds.
    Integer {
        min: i64,
        max: Option<i64>,
    },
    Boolean,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A string or a list of strings (`apps`: the app tiers the organization may use; Make's
    /// examples show both `"T2"` and `["T2", "T3"]`).
    Strings,
    /// A deprecated key Make keeps at one value.
    Fixed(Sample),
}

/// A value of a key, for the initial default license and for deprecated keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    Integer(i64),
    Boolean(bool),
    Text(&'static str),
    Strings(&'static [&'static str]),
}

impl Sample {
    pub fn to_json(self) -> Value {
        match self {
            Sample::Integer(number) => Value::from(number),
            Sample::Boolean(flag) => Value::Bool(flag),
            Sample::Text(text) => Value::String(text.to_owned()),
            Sample::Strings(items) => Value::Array(
                items
                    .iter()
                    .map(|item| Value::String((*item).to_owned()))
                    .collect(),
            ),
        }
    }
}

/// One license key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// Make's name for it.
    pub name: &'static str,
    pub kind: Kind,
    /// Another boolean key that must be `true` when this one is.
    pub needs: Option<&'static str>,
    /// Its value in the initial default license: what a small plan could have.
    pub sample: Sample,
}

const MIB: i64 = 1024 * 1024;

const fn count(name: &'static str, sample: i64) -> Key {
    bounded(name, 0, None, sample)
}

const fn bounded(name: &'static str, min: i64, max: Option<i64>, sample: i64) -> Key {
    Key {
        name,
        kind: Kind::Integer { min, max },
        needs: None,
        sample: Sample::Integer(sample),
    }
}

const fn flag(name: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Boolean,
        needs: None,
        sample: Sample::Boolean(false),
    }
}

/// Every key the sandbox knows, in the order it writes them.
pub const KEYS: &[Key] = &[
    count("operations", 10_000),
    count("transfer", 1024 * MIB),
    Key {
        name: "restartPeriod",
        kind: Kind::OneOf(&["1 month", "1 year"]),
        needs: None,
        sample: Sample::Text("1 month"),
    },
    // Minutes.
    bounded("interval", 1, None, 15),
    bounded("executionTime", 1, None, 40),
    count("fslimit", 5 * MIB),
    count("iolimit", 1_000),
    count("dslimit", 2),
    count("dsslimit", MIB),
    count("dlqStorage", 10 * MIB),
    count("scenarios", 2),
    count("teams", 2),
    count("appslimit", 2),
    // Requests per minute.
    count("apiLimit", 60),
    // Days.
    count("retention", 60),
    bounded("auditLogsDays", 0, Some(365), 30),
    bounded("premiumApps", 0, Some(3), 2),
    count("customProperties", 2),
    flag("analyticsAccess"),
    flag("fulltext"),
    flag("advsched"),
    flag("customVariables"),
    flag("customFunctions"),
    flag("creatingTemplates"),
    flag("installPublicApps"),
    flag("scenarioIO"),
    flag("dynamicDependencies"),
    Key {
        needs: Some("dynamicDependencies"),
        ..flag("dynamicConnections")
    },
    Key {
        name: "productManagement",
        kind: Kind::Fixed(Sample::Text("salesforce")),
        needs: None,
        sample: Sample::Text("salesforce"),
    },
    Key {
        name: "gracePeriod",
        kind: Kind::Fixed(Sample::Integer(7)),
        needs: None,
        sample: Sample::Integer(7),
    },
    // Keys Make's SDK lists beyond the ones above.
    Key {
        name: "apps",
        kind: Kind::Strings,
        needs: None,
        sample: Sample::Strings(&["T1", "T2"]),
    },
    count("users", 5),
    flag("portal"),
    Key {
        name: "priority",
        kind: Kind::OneOf(&["low", "medium", "high"]),
        needs: None,
        sample: Sample::Text("medium"),
    },
    count("makeAITools", 1),
    flag("onPremAgent"),
    flag("dedicatedSso"),
    flag("onDemandScheduling"),
    flag("portalModuleBridge"),
    flag("scenarioRelationTree"),
    flag("teamOperationsLimits"),
    count("webhookLogRetentionDays", 30),
];

/// The key with this exact name.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Every problem with the values of the keys the sandbox knows, in [`KEYS`] order. Empty when
/// the license is valid; keys the sandbox does not know are never a problem.
pub fn problems(license: &License) -> Vec<String> {
    let mut problems = Vec::new();
    for key in KEYS {
        let Some(value) = license.get(key.name) else {
            continue;
        };
        if let Some(problem) = value_problem(key, value) {
            problems.push(format!("license key `{}` {problem}", key.name));
        } else if let Some(needed) = key.needs
            && *value == Value::Bool(true)
            && license.get(needed) != Some(&Value::Bool(true))
        {
            problems.push(format!(
                "license key `{}` needs `{needed}` to be true",
                key.name
            ));
        }
    }
    problems
}

/// What is wrong with one value, worded to follow "license key `x`".
fn value_problem(key: &Key, value: &Value) -> Option<String> {
    match key.kind {
        Kind::Integer { min, max } => {
            let Some(number) = value.as_i64() else {
                return Some(if value.is_u64() {
                    format!("is `{value}`, above the largest integer")
                } else {
                    format!("must be an integer, not `{value}`")
                });
            };
            if number < min {
                return Some(format!("is `{number}`, below the minimum `{min}`"));
            }
            match max {
                Some(max) if number > max => {
                    Some(format!("is `{number}`, above the maximum `{max}`"))
                }
                _ => None,
            }
        }
        Kind::Boolean => (!value.is_boolean()).then(|| format!("must be a boolean, not `{value}`")),
        Kind::OneOf(words) => {
            let known = value.as_str().is_some_and(|text| words.contains(&text));
            (!known).then(|| {
                let allowed: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("must be one of {}, not `{value}`", allowed.join(", "))
            })
        }
        Kind::Strings => {
            let strings = value.is_string()
                || value
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_string));
            (!strings).then(|| format!("must be a string or a list of strings, not `{value}`"))
        }
        Kind::Fixed(fixed) => {
            let expected = fixed.to_json();
            (*value != expected)
                .then(|| format!("is deprecated and must be `{expected}`, not `{value}`"))
        }
    }
}

/// The instance default license of a new sandbox: every key the sandbox knows, at its sample.
pub fn initial_default_license() -> License {
    let mut map = Map::new();
    for key in KEYS {
        map.insert(key.name.to_owned(), key.sample.to_json());
    }
    License(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: Value) -> License {
        let mut license = initial_default_license();
        license.0.insert(name.to_owned(), value);
        license
    }

    #[test]
    fn the_initial_default_license_is_valid() {
        assert_eq!(problems(&initial_default_license()), Vec::<String>::new());
    }

    #[test]
    fn names_are_unique_and_dependencies_name_boolean_keys() {
        for (index, k) in KEYS.iter().enumerate() {
            assert_eq!(
                KEYS.iter().position(|other| other.name == k.name),
                Some(index),
                "{} appears twice",
                k.name
            );
            if let Some(needed) = k.needs {
                assert_eq!(
                    key(needed).map(|n| n.kind),
                    Some(Kind::Boolean),
                    "{}",
                    k.name
                );
            }
        }
    }

    #[test]
    fn each_problem_names_its_key() {
        let cases = [
            ("auditLogsDays", serde_json::json!(366)),
            ("operations", serde_json::json!("10")),
            ("operations", serde_json::json!(1.5)),
            ("interval", serde_json::json!(0)),
            ("fulltext", serde_json::json!(1)),
            ("restartPeriod", serde_json::json!("2 weeks")),
            ("gracePeriod", serde_json::json!(8)),
            ("productManagement", serde_json::json!("hubspot")),
            ("dynamicConnections", serde_json::json!(true)),
            ("apps", serde_json::json!(["T1", 2])),
            ("priority", serde_json::json!("urgent")),
            ("users", serde_json::json!(-1)),
        ];
        for (name, value) in cases {
            let found = problems(&with(name, value.clone()));
            assert_eq!(found.len(), 1, "{name} = {value}: {found:?}");
            assert!(found[0].contains(&format!("`{name}`")), "{found:?}");
        }
    }

    #[test]
    fn keys_the_sandbox_does_not_know_and_missing_keys_are_not_problems() {
        let mut license = with("someFutureKey", serde_json::json!({ "any": "thing" }));
        license.0.remove("teams");
        assert_eq!(problems(&license), Vec::<String>::new());
    }

    /// A value of the wrong kind, or outside the bounds, for a key.
    fn spoilt_value(key: &Key, choice: u8) -> Value {
        match (key.kind, choice % 3) {
            (Kind::Boolean, 0) => Value::from(1),
            (Kind::Boolean, _) => Value::String("true".to_owned()),
            (Kind::Integer { min, .. }, 0) => Value::from(min - 1),
            (Kind::Integer { .. }, 1) => Value::from(0.5),
            (Kind::Integer { max, .. }, _) => {
                max.map_or(Value::String("1".to_owned()), |max| Value::from(max + 1))
            }
            (Kind::OneOf(_), _) => Value::String("fortnightly".to_owned()),
            (Kind::Strings, 0) => Value::from(1),
            (Kind::Strings, _) => serde_json::json!([1]),
            (Kind::Fixed(_), _) => Value::Bool(false),
        }
    }

    proptest::proptest! {
        #[test]
        fn one_spoilt_key_is_the_one_problem_named(index in 0..KEYS.len(), choice in 0u8..3) {
            let key = &KEYS[index];
            let found = problems(&with(key.name, spoilt_value(key, choice)));
            proptest::prop_assert_eq!(found.len(), 1, "{:?}", found);
            let named = format!("`{}`", key.name);
            proptest::prop_assert!(found[0].contains(&named), "{:?}", found);
        }

        #[test]
        fn any_in_bounds_value_is_accepted(index in 0..KEYS.len(), offset in 0i64..1_000_000) {
            let key = &KEYS[index];
            let value = match key.kind {
                Kind::Integer { min, max } => Value::from((min + offset).min(max.unwrap_or(i64::MAX))),
                Kind::Boolean => Value::Bool(offset % 2 == 0 && key.needs.is_none()),
                Kind::OneOf(words) => {
                    let pick = usize::try_from(offset).unwrap() % words.len();
                    Value::String(words[pick].to_owned())
                }
                Kind::Strings if offset % 2 == 0 => Value::String(format!("T{offset}")),
                Kind::Strings => serde_json::json!([format!("T{offset}")]),
                Kind::Fixed(fixed) => fixed.to_json(),
            };
            let found = problems(&with(key.name, value));
            proptest::prop_assert!(found.is_empty(), "{:?}", found);
        }
    }

    #[test]
    fn dynamic_connections_with_dynamic_dependencies_is_valid() {
        let mut license = with("dynamicConnections", Value::Bool(true));
        license
            .0
            .insert("dynamicDependencies".to_owned(), Value::Bool(true));
        assert_eq!(problems(&license), Vec::<String>::new());
    }
}
