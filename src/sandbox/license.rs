//! Strict validation of wire licenses against the parameter catalog.
//!
//! Every rule comes from [`catalog::CATALOG`]: the known keys, each key's kind, its bounds, the
//! fixed values of deprecated keys and the dependencies between boolean features. System flags
//! (`needs_flags`) are deliberately not checked: Make documents a dependency, not a rejection.

use serde_json::{Map, Value};

use crate::model::catalog::{self, FixedValue, Kind, Parameter};
use crate::sandbox::wire::License;

/// Every problem with a license, unknown keys first, then in catalog order. Empty when the
/// license is complete and valid.
pub fn problems(license: &License) -> Vec<String> {
    let mut problems = Vec::new();
    for key in license.0.keys() {
        if catalog::lookup(key).is_none() {
            problems.push(format!("license key `{key}` is unknown"));
        }
    }
    for parameter in catalog::CATALOG {
        match license.get(parameter.name) {
            None => problems.push(format!(
                "license key `{}` is missing: a license replaces the whole object",
                parameter.name
            )),
            Some(value) => {
                if let Some(problem) = value_problem(parameter, value) {
                    problems.push(format!("license key `{}` {problem}", parameter.name));
                } else if let Some(problem) = dependency_problem(parameter, value, license) {
                    problems.push(problem);
                }
            }
        }
    }
    problems
}

/// What is wrong with one value, worded to follow "license key `x`".
fn value_problem(parameter: &Parameter, value: &Value) -> Option<String> {
    match parameter.kind {
        Kind::Integer | Kind::Size | Kind::Duration => {
            let Some(number) = value.as_i64() else {
                return Some(if value.is_u64() {
                    format!("is `{value}`, above the largest integer")
                } else {
                    format!("must be an integer, not `{value}`")
                });
            };
            if number < parameter.min {
                return Some(format!(
                    "is `{number}`, below the minimum `{}`",
                    parameter.min
                ));
            }
            match parameter.max {
                Some(max) if number > max => {
                    Some(format!("is `{number}`, above the maximum `{max}`"))
                }
                _ => None,
            }
        }
        Kind::Boolean => (!value.is_boolean()).then(|| format!("must be a boolean, not `{value}`")),
        Kind::Enum(variants) => {
            let known = value
                .as_str()
                .is_some_and(|text| variants.iter().any(|v| v.wire == text));
            (!known).then(|| {
                let allowed: Vec<String> =
                    variants.iter().map(|v| format!("`{}`", v.wire)).collect();
                format!("must be one of {}, not `{value}`", allowed.join(", "))
            })
        }
        Kind::Fixed(fixed) => {
            let expected = match fixed {
                FixedValue::Text(text) => Value::String(text.to_owned()),
                FixedValue::Integer(number) => Value::from(number),
            };
            (*value != expected)
                .then(|| format!("is deprecated and must be `{expected}`, not `{value}`"))
        }
    }
}

/// A boolean feature turned on without the feature it needs.
fn dependency_problem(parameter: &Parameter, value: &Value, license: &License) -> Option<String> {
    let needed = parameter.needs_parameter?;
    if *value != Value::Bool(true) || license.get(needed) == Some(&Value::Bool(true)) {
        return None;
    }
    Some(format!(
        "license key `{}` needs `{needed}` to be true",
        parameter.name
    ))
}

/// The instance default license of a new sandbox: catalog defaults where the catalog has them,
/// plausible small-plan values otherwise.
pub fn initial_default_license() -> License {
    let mut map = Map::new();
    for parameter in catalog::CATALOG {
        map.insert(parameter.name.to_owned(), plausible_value(parameter));
    }
    License(map)
}

/// A value a small plan could have, valid for the parameter.
fn plausible_value(parameter: &Parameter) -> Value {
    const MIB: i64 = 1024 * 1024;
    if let Some(default) = parameter.default {
        return match default {
            catalog::Default::Integer(number) => Value::from(number),
            catalog::Default::Boolean(flag) => Value::Bool(flag),
        };
    }
    let number = match (parameter.kind, parameter.name) {
        (Kind::Boolean, _) => return Value::Bool(false),
        (Kind::Enum(variants), _) => {
            return variants
                .first()
                .map_or(Value::Null, |v| Value::String(v.wire.to_owned()));
        }
        (Kind::Fixed(FixedValue::Text(text)), _) => return Value::String(text.to_owned()),
        (Kind::Fixed(FixedValue::Integer(number)), _) => number,
        (_, "operations") => 10_000,
        (_, "transfer") => 1024 * MIB,
        (_, "interval") => 15,
        (_, "executionTime") => 40,
        (_, "fslimit") => 5 * MIB,
        (_, "iolimit") => 1_000,
        (_, "dsslimit") => MIB,
        (_, "dlqStorage") => 10 * MIB,
        (_, "apiLimit") => 60,
        (_, "auditLogsDays") => 30,
        (Kind::Integer, _) => 2,
        _ => parameter.min,
    };
    let number = number.max(parameter.min);
    Value::from(parameter.max.map_or(number, |max| number.min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(key: &str, value: Value) -> License {
        let mut license = initial_default_license();
        license.0.insert(key.to_owned(), value);
        license
    }

    #[test]
    fn the_initial_default_license_is_valid() {
        assert_eq!(problems(&initial_default_license()), Vec::<String>::new());
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
            ("nonsense", serde_json::json!(1)),
        ];
        for (key, value) in cases {
            let found = problems(&with(key, value.clone()));
            assert_eq!(found.len(), 1, "{key} = {value}: {found:?}");
            assert!(found[0].contains(&format!("`{key}`")), "{found:?}");
        }
    }

    #[test]
    fn a_missing_key_is_a_problem() {
        let mut license = initial_default_license();
        license.0.remove("teams");
        assert_eq!(
            problems(&license),
            vec!["license key `teams` is missing: a license replaces the whole object"]
        );
    }

    /// A value of the wrong kind, or outside the bounds, for a parameter.
    fn spoilt_value(parameter: &Parameter, choice: u8) -> Value {
        match (parameter.kind, choice % 3) {
            (Kind::Boolean, 0) => Value::from(1),
            (Kind::Boolean, _) => Value::String("true".to_owned()),
            (Kind::Integer | Kind::Size | Kind::Duration, 0) => Value::from(parameter.min - 1),
            (Kind::Integer | Kind::Size | Kind::Duration, 1) => Value::from(0.5),
            (Kind::Integer | Kind::Size | Kind::Duration, _) => parameter
                .max
                .map_or(Value::String("1".to_owned()), |max| Value::from(max + 1)),
            (Kind::Enum(_), _) => Value::String("fortnightly".to_owned()),
            (Kind::Fixed(_), _) => Value::Bool(false),
        }
    }

    proptest::proptest! {
        #[test]
        fn one_spoilt_key_is_the_one_problem_named(index in 0..catalog::CATALOG.len(), choice in 0u8..3) {
            let parameter = &catalog::CATALOG[index];
            let license = with(parameter.name, spoilt_value(parameter, choice));
            let found = problems(&license);
            proptest::prop_assert_eq!(found.len(), 1, "{:?}", found);
            let named = format!("`{}`", parameter.name);
            proptest::prop_assert!(found[0].contains(&named), "{:?}", found);
        }

        #[test]
        fn any_in_bounds_value_is_accepted(index in 0..catalog::CATALOG.len(), offset in 0i64..1_000_000) {
            let parameter = &catalog::CATALOG[index];
            let value = match parameter.kind {
                Kind::Integer | Kind::Size | Kind::Duration => {
                    let top = parameter.max.unwrap_or(i64::MAX);
                    Value::from((parameter.min + offset).min(top))
                }
                Kind::Boolean => Value::Bool(offset % 2 == 0 && parameter.needs_parameter.is_none()),
                Kind::Enum(variants) => {
                    let pick = usize::try_from(offset).unwrap() % variants.len();
                    Value::String(variants[pick].wire.to_owned())
                }
                Kind::Fixed(_) => plausible_value(parameter),
            };
            let found = problems(&with(parameter.name, value));
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
