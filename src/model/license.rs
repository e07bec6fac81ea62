//! License values, their provenance, and the complete license object sent to Make.

use std::fmt;
use std::sync::Arc;

use crate::ast::AssignOp;
use crate::model::catalog::{self, ApiUnit, CATALOG, EnumVariant, FixedValue, Kind, Parameter};
use crate::source::Span;

/// A value of one license parameter, in the API's units (bytes, minutes, days, counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LicenseValue {
    /// Integers, sizes (bytes) and durations (minutes or days, per the parameter).
    Int(i64),
    Bool(bool),
    Enum(&'static EnumVariant),
    Fixed(FixedValue),
}

impl LicenseValue {
    pub fn as_int(self) -> Option<i64> {
        match self {
            LicenseValue::Int(n) => Some(n),
            LicenseValue::Fixed(FixedValue::Integer(n)) => Some(n),
            _ => None,
        }
    }

    pub fn as_bool(self) -> Option<bool> {
        match self {
            LicenseValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as sent on the wire.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            LicenseValue::Int(n) | LicenseValue::Fixed(FixedValue::Integer(n)) => n.into(),
            LicenseValue::Bool(b) => b.into(),
            LicenseValue::Enum(v) => v.wire.into(),
            LicenseValue::Fixed(FixedValue::Text(t)) => t.into(),
        }
    }

    /// The value of `param` as read from the wire, when it is one the parameter can hold
    /// (its kind, its range); `None` otherwise.
    pub fn from_json(param: &Parameter, value: &serde_json::Value) -> Option<LicenseValue> {
        match (param.kind, value) {
            (Kind::Integer | Kind::Size | Kind::Duration, serde_json::Value::Number(n)) => {
                let n = n.as_i64()?;
                in_range(param, n).then_some(LicenseValue::Int(n))
            }
            (Kind::Boolean, serde_json::Value::Bool(b)) => Some(LicenseValue::Bool(*b)),
            (Kind::Enum(variants), serde_json::Value::String(s)) => variants
                .iter()
                .find(|v| v.wire == s)
                .map(LicenseValue::Enum),
            (Kind::Fixed(fixed), _) => (LicenseValue::Fixed(fixed).to_json() == *value)
                .then_some(LicenseValue::Fixed(fixed)),
            _ => None,
        }
    }

    /// The value in the units a person would write it in (`100 MB`, `15 min`, `40,000`).
    pub fn human(self, param: &Parameter) -> String {
        match self {
            LicenseValue::Int(n) => match param.kind {
                Kind::Size => human_size(n),
                Kind::Duration => {
                    human_duration(n.saturating_mul(param.unit.seconds().unwrap_or(1)))
                }
                _ => group_thousands(n),
            },
            LicenseValue::Bool(b) => b.to_string(),
            LicenseValue::Enum(v) => v.word.to_string(),
            LicenseValue::Fixed(FixedValue::Integer(n)) => n.to_string(),
            LicenseValue::Fixed(FixedValue::Text(t)) => format!("\"{t}\""),
        }
    }
}

/// `40000` → `40,000`.
pub fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in the largest unit that divides them exactly, decimal or binary, whichever gives the
/// smaller number (`104857600` → `100 MiB`, `5000000000` → `5 GB`).
pub fn human_size(bytes: i64) -> String {
    const UNITS: &[(&str, i64)] = &[
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    if bytes == 0 {
        return "0 B".to_string();
    }
    let best = UNITS
        .iter()
        .filter(|(_, f)| bytes % f == 0)
        .min_by_key(|(_, f)| bytes / f);
    match best {
        Some((unit, factor)) => format!("{} {unit}", group_thousands(bytes / factor)),
        None => format!("{} B", group_thousands(bytes)),
    }
}

/// Seconds in the largest of weeks, days, hours, minutes that divides them exactly.
pub fn human_duration(seconds: i64) -> String {
    const UNITS: &[(&str, &str, i64)] = &[
        ("week", "weeks", 604_800),
        ("day", "days", 86_400),
        ("h", "h", 3_600),
        ("min", "min", 60),
    ];
    if seconds == 0 {
        return "0 min".to_string();
    }
    for (one, many, factor) in UNITS {
        if seconds % factor == 0 {
            let n = seconds / factor;
            return format!("{} {}", group_thousands(n), if n == 1 { one } else { many });
        }
    }
    format!("{} s", group_thousands(seconds))
}

/// Where one step of a value's chain came from. Names are shared (`Arc<str>`): every step
/// of a block points at its block's name instead of copying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Tier(Arc<str>),
    Addon(Arc<str>),
    Override,
    /// A lifecycle state's `with` overlay.
    State(Arc<str>),
    /// The catalog's default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Tier(t) => write!(f, "tier `{t}`"),
            Origin::Addon(a) => write!(f, "add-on `{a}`"),
            Origin::Override => f.write_str("override"),
            Origin::State(s) => write!(f, "state `{s}`"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One assignment that contributed to a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub origin: Origin,
    pub op: AssignOp,
    /// The right-hand side, in API units.
    pub operand: LicenseValue,
    /// The value after this step.
    pub result: LicenseValue,
    /// The assignment in the source; `None` for defaults.
    pub span: Option<Span>,
}

impl Step {
    /// `base sets 1,000`, `teams multiplies by 3 → 120,000`.
    pub fn describe(&self, param: &Parameter) -> String {
        let operand = match self.op {
            AssignOp::Mul => self.operand.as_int().unwrap_or(0).to_string(),
            _ => self.operand.human(param),
        };
        match self.op {
            AssignOp::Set => format!("{} sets {operand}", self.origin),
            AssignOp::Add => format!(
                "{} adds {operand} → {}",
                self.origin,
                self.result.human(param)
            ),
            AssignOp::Sub => format!(
                "{} subtracts {operand} → {}",
                self.origin,
                self.result.human(param)
            ),
            AssignOp::Mul => format!(
                "{} multiplies by {operand} → {}",
                self.origin,
                self.result.human(param)
            ),
        }
    }
}

/// A parameter's value with the chain of steps that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub value: LicenseValue,
    pub chain: Chain,
}

/// The steps that produced a value, oldest first. A persistent list: a tier that inherits a
/// value shares its parent's steps instead of copying them, so resolving thousands of tiers
/// costs one allocation per assignment, not per inherited value.
#[derive(Clone, Default)]
pub struct Chain(Option<Arc<Link>>);

struct Link {
    step: Step,
    previous: Chain,
}

impl Chain {
    fn pushed(&self, step: Step) -> Chain {
        Chain(Some(Arc::new(Link {
            step,
            previous: self.clone(),
        })))
    }

    /// The most recent step.
    pub fn last(&self) -> Option<&Step> {
        self.0.as_ref().map(|link| &link.step)
    }

    /// Every step, oldest first.
    pub fn steps(&self) -> Vec<&Step> {
        let mut steps = Vec::new();
        let mut current = self;
        while let Some(link) = &current.0 {
            steps.push(&link.step);
            current = &link.previous;
        }
        steps.reverse();
        steps
    }
}

impl PartialEq for Chain {
    fn eq(&self, other: &Chain) -> bool {
        self.steps() == other.steps()
    }
}

impl Eq for Chain {}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.steps()).finish()
    }
}

impl Drop for Chain {
    /// Unlinks iteratively: a chain as long as a tier hierarchy is deep must not recurse.
    fn drop(&mut self) {
        let mut next = self.0.take();
        while let Some(link) = next {
            match Arc::try_unwrap(link) {
                Ok(mut link) => next = link.previous.0.take(),
                Err(_) => break,
            }
        }
    }
}

/// An assignment, checked: a known parameter, an operator valid for it and an operand in API
/// units. Tiers, add-ons, overrides and state overlays are lists of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub param: usize,
    pub op: AssignOp,
    pub operand: LicenseValue,
    pub span: Span,
}

impl Assignment {
    /// The value after this assignment, given the value before it (`None` if unset).
    pub fn result(
        &self,
        param: &Parameter,
        current: Option<LicenseValue>,
    ) -> Result<LicenseValue, ApplyError> {
        let result = match (self.op, current, self.operand) {
            (AssignOp::Set, _, operand) => operand,
            (_, None, _) => return Err(ApplyError::Unset),
            (AssignOp::Add, Some(LicenseValue::Int(a)), LicenseValue::Int(b)) => {
                LicenseValue::Int(a.checked_add(b).ok_or(ApplyError::Overflow)?)
            }
            (AssignOp::Sub, Some(LicenseValue::Int(a)), LicenseValue::Int(b)) => {
                LicenseValue::Int(a.checked_sub(b).ok_or(ApplyError::Overflow)?)
            }
            (AssignOp::Mul, Some(LicenseValue::Int(a)), LicenseValue::Int(b)) => {
                LicenseValue::Int(a.checked_mul(b).ok_or(ApplyError::Overflow)?)
            }
            // The checker only lets arithmetic through for numeric parameters.
            (_, Some(_), _) => return Err(ApplyError::Overflow),
        };
        if let LicenseValue::Int(n) = result
            && !in_range(param, n)
        {
            return Err(ApplyError::OutOfRange { value: n });
        }
        Ok(result)
    }
}

/// Why an assignment could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// `+=`, `-=` or `*=` on a parameter nothing has set yet.
    Unset,
    /// The arithmetic left 64 bits.
    Overflow,
    /// The result is outside the parameter's range.
    OutOfRange { value: i64 },
}

/// Values of some or all parameters, each with its provenance, indexed like [`CATALOG`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct License {
    settings: Vec<Option<Setting>>,
}

impl Default for License {
    fn default() -> License {
        License::new()
    }
}

impl License {
    pub fn new() -> License {
        License {
            settings: vec![None; CATALOG.len()],
        }
    }

    pub fn get(&self, param: usize) -> Option<&Setting> {
        self.settings.get(param).and_then(Option::as_ref)
    }

    pub fn value(&self, param: usize) -> Option<LicenseValue> {
        self.get(param).map(|s| s.value)
    }

    pub fn value_of(&self, name: &str) -> Option<LicenseValue> {
        catalog::index_of(name).and_then(|i| self.value(i))
    }

    /// Applies one assignment on top of what is there.
    pub fn apply(&mut self, origin: &Origin, assignment: &Assignment) -> Result<(), ApplyError> {
        let Some(param) = CATALOG.get(assignment.param) else {
            return Err(ApplyError::Unset);
        };
        let Some(slot) = self.settings.get_mut(assignment.param) else {
            return Err(ApplyError::Unset);
        };
        let result = assignment.result(param, slot.as_ref().map(|s| s.value))?;
        let step = Step {
            origin: origin.clone(),
            op: assignment.op,
            operand: assignment.operand,
            result,
            span: Some(assignment.span),
        };
        match slot {
            Some(setting) => {
                setting.value = result;
                setting.chain = setting.chain.pushed(step);
            }
            None => {
                *slot = Some(Setting {
                    value: result,
                    chain: Chain::default().pushed(step),
                });
            }
        }
        Ok(())
    }

    /// Sets an overlay value (a lifecycle state's `with`), keeping the chain.
    pub fn overlay(&mut self, origin: &Origin, param: usize, value: LicenseValue, span: Span) {
        let assignment = Assignment {
            param,
            op: AssignOp::Set,
            operand: value,
            span,
        };
        // A plain set cannot fail except on range, which the checker verified for the overlay.
        let _ = self.apply(origin, &assignment);
    }

    /// Fills every unset parameter that has a default, and the fixed deprecated ones.
    pub fn fill_defaults(&mut self) {
        for (i, param) in CATALOG.iter().enumerate() {
            let Some(slot) = self.settings.get_mut(i) else {
                continue;
            };
            if slot.is_some() {
                continue;
            }
            let value = match (param.default, param.kind) {
                (Some(catalog::Default::Integer(n)), _) => LicenseValue::Int(n),
                (Some(catalog::Default::Boolean(b)), _) => LicenseValue::Bool(b),
                (None, Kind::Fixed(f)) => LicenseValue::Fixed(f),
                (None, _) => continue,
            };
            *slot = Some(Setting {
                value,
                chain: Chain::default().pushed(Step {
                    origin: Origin::Default,
                    op: AssignOp::Set,
                    operand: value,
                    result: value,
                    span: None,
                }),
            });
        }
    }

    /// The parameters without a value, in catalog order.
    pub fn missing(&self) -> Vec<&'static Parameter> {
        CATALOG
            .iter()
            .zip(&self.settings)
            .filter(|(_, s)| s.is_none())
            .map(|(p, _)| p)
            .collect()
    }

    /// The complete license object, if every parameter has a value.
    pub fn to_object(&self) -> Option<LicenseObject> {
        let values = self
            .settings
            .iter()
            .map(|s| s.as_ref().map(|s| s.value))
            .collect::<Option<Vec<_>>>()?;
        Some(LicenseObject { values })
    }
}

/// Whether an integer value (API units) is within a parameter's range.
pub fn in_range(param: &Parameter, value: i64) -> bool {
    value >= param.min && param.max.is_none_or(|max| value <= max)
}

/// A complete Make license object: every catalog key, in catalog order, in API units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LicenseObject {
    values: Vec<LicenseValue>,
}

impl LicenseObject {
    pub fn value(&self, param: usize) -> Option<LicenseValue> {
        self.values.get(param).copied()
    }

    /// Replaces one value (the caller has checked it).
    pub fn set(&mut self, param: usize, value: LicenseValue) {
        if let Some(slot) = self.values.get_mut(param) {
            *slot = value;
        }
    }

    pub fn get(&self, name: &str) -> Option<LicenseValue> {
        catalog::index_of(name).and_then(|i| self.values.get(i).copied())
    }

    /// A complete object from one value per catalog parameter, in catalog order.
    pub fn from_values(values: Vec<LicenseValue>) -> Option<LicenseObject> {
        (values.len() == CATALOG.len()).then_some(LicenseObject { values })
    }

    pub fn values(&self) -> impl Iterator<Item = (&'static Parameter, LicenseValue)> + '_ {
        CATALOG.iter().zip(self.values.iter().copied())
    }

    /// The JSON object sent to the API, keys in catalog order.
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .values()
            .map(|(p, v)| (p.name.to_string(), v.to_json()))
            .collect();
        serde_json::Value::Object(map)
    }
}

/// How a parameter's unit reads in a sentence (`minutes`), for messages.
pub fn unit_words(param: &Parameter) -> &'static str {
    match param.unit {
        ApiUnit::None => "",
        unit => unit.describe(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units_pick_the_exact_largest_unit() {
        assert_eq!(human_size(100 * (1 << 20)), "100 MiB");
        assert_eq!(human_size(5_000_000_000), "5 GB");
        assert_eq!(human_size(1_500), "1,500 B");
        assert_eq!(human_duration(15 * 60), "15 min");
        assert_eq!(human_duration(90 * 86_400), "90 days");
        assert_eq!(human_duration(14 * 86_400), "2 weeks");
        assert_eq!(group_thousands(1_000_000), "1,000,000");
    }
}
