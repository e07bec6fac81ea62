//! JSON Schemas of what charter emits, generated from the catalog so they cannot drift from it.

use serde_json::{Map, Value, json};

use crate::model::catalog::{CATALOG, FixedValue, Kind};

/// The JSON Schema (draft 2020-12) of a complete Make license object.
pub fn license() -> Value {
    let mut properties = Map::new();
    for p in CATALOG {
        let unit = p.unit.describe();
        let description = if unit.is_empty() {
            p.description.to_string()
        } else {
            format!("{}, in {unit}", p.description)
        };
        let mut schema = match p.kind {
            Kind::Integer | Kind::Size | Kind::Duration => {
                let mut s = json!({ "type": "integer", "minimum": p.min });
                if let (Some(max), Some(obj)) = (p.max, s.as_object_mut()) {
                    obj.insert("maximum".into(), max.into());
                }
                s
            }
            Kind::Boolean => json!({ "type": "boolean" }),
            Kind::Enum(variants) => json!({
                "type": "string",
                "enum": variants.iter().map(|v| v.wire).collect::<Vec<_>>(),
            }),
            Kind::Fixed(FixedValue::Text(t)) => json!({ "const": t, "deprecated": true }),
            Kind::Fixed(FixedValue::Integer(n)) => json!({ "const": n, "deprecated": true }),
        };
        if let Some(obj) = schema.as_object_mut() {
            obj.insert("description".into(), description.into());
        }
        properties.insert(p.name.to_string(), schema);
    }
    let dependencies: Vec<Value> = CATALOG
        .iter()
        .filter_map(|p| {
            let needed = p.needs_parameter?;
            Some(json!({
                "if": { "properties": { p.name: { "const": true } } },
                "then": { "properties": { needed: { "const": true } } },
            }))
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Make White Label license object",
        "description": "The license object charter sends to Make's admin API: every key, in API units.",
        "type": "object",
        "properties": properties,
        "required": CATALOG.iter().map(|p| p.name).collect::<Vec<_>>(),
        "additionalProperties": false,
        "allOf": dependencies,
    })
}
