//! Compiling a checked program into what Make receives: license objects (and, later, each
//! customer's desired state at an instant), plus the views derived from them: `explain` and
//! the tier matrix. Pure: no IO, no clock.

pub mod customer;
pub mod diff;
pub mod explain;
pub mod graph;
pub mod matrix;
pub mod schedule;
pub mod tests;

use crate::model::catalog::CATALOG;
use crate::model::license::LicenseObject;
use crate::model::program::{Program, Tier};

/// Why a tier could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("unknown tier `{name}`")]
    UnknownTier {
        name: String,
        suggestion: Option<String>,
    },
    #[error("tier `{0}` is abstract")]
    AbstractTier(String),
    #[error("unknown license parameter `{name}`")]
    UnknownParameter {
        name: String,
        suggestion: Option<String>,
    },
}

impl CompileError {
    /// A "did you mean" or other hint for the user.
    pub fn help(&self) -> Option<String> {
        match self {
            CompileError::UnknownTier { suggestion, .. }
            | CompileError::UnknownParameter { suggestion, .. } => {
                suggestion.as_ref().map(|s| format!("did you mean `{s}`?"))
            }
            CompileError::AbstractTier(_) => Some(
                "an abstract tier is only a parent and never compiles to a license".to_string(),
            ),
        }
    }
}

/// The tier with this name, which must be deployable.
pub fn deployable_tier<'a>(program: &'a Program, name: &str) -> Result<&'a Tier, CompileError> {
    match program.tier(name) {
        Some(t) if t.is_abstract => Err(CompileError::AbstractTier(name.to_string())),
        Some(t) => Ok(t),
        None => Err(CompileError::UnknownTier {
            name: name.to_string(),
            suggestion: crate::diagnostic::suggest(
                name,
                program
                    .tiers
                    .iter()
                    .filter(|t| !t.is_abstract)
                    .map(|t| t.name.as_str()),
            )
            .map(str::to_string),
        }),
    }
}

/// The complete license object of a deployable tier.
pub fn tier_license(program: &Program, name: &str) -> Result<LicenseObject, CompileError> {
    let tier = deployable_tier(program, name)?;
    // A checked program's deployable tiers are complete; an incomplete one would have been an
    // error, so this only fails if the checker has a bug.
    tier.license
        .to_object()
        .ok_or_else(|| CompileError::AbstractTier(name.to_string()))
}

/// Every deployable tier's license object, keyed by tier name, in ladder order.
pub fn all_tier_licenses(program: &Program) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = program
        .deployable_tiers()
        .into_iter()
        .filter_map(|t| Some((t.name.clone(), t.license.to_object()?.to_json())))
        .collect();
    serde_json::Value::Object(map)
}

/// The index of a parameter given by name on the command line.
pub fn parameter(name: &str) -> Result<usize, CompileError> {
    crate::model::catalog::index_of(name).ok_or_else(|| CompileError::UnknownParameter {
        name: name.to_string(),
        suggestion: crate::diagnostic::suggest(name, CATALOG.iter().map(|p| p.name))
            .map(str::to_string),
    })
}

/// A tier's license as aligned text in human units.
pub fn render_text(name: &str, license: &LicenseObject) -> String {
    let width = CATALOG.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut out = format!("tier {name}\n");
    for (param, value) in license.values() {
        out.push_str(&format!(
            "  {:width$}  {}\n",
            param.name,
            value.human(param)
        ));
    }
    out
}
