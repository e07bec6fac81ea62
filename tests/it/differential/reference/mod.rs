//! A reference interpreter of Charter's semantics (LANGUAGE.md §3, §5, §7, §8), written apart
//! from `check`, `model` and `compile`: straight-line code over the syntax tree that shares
//! nothing with the compiler beyond the license catalog table. `tests/differential.rs` requires
//! the two to agree on random policy sets.
//!
//! It covers tiers (inheritance, every assignment operator, ranges, defaults), add-ons,
//! overrides and customers (license, owner, roles), and the lifecycle walk with its state
//! overlays. Anything outside that (rules, staff, rosters, tests) is not interpreted: the
//! generator does not write it.

use std::collections::BTreeMap;

use charter::ast::{self, AssignOp, Item, ValueKind};
use charter::model::catalog::{CATALOG, Default as CatalogDefault, FixedValue, Kind, Parameter};

/// Why the reference refuses a policy set (a short reason, for failure messages).
pub type Refusal = String;

/// A license value in API units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    Int(i64),
    Bool(bool),
    /// The index of the enum variant.
    Enum(usize),
}

/// Parameter name → value, for the parameters set so far.
pub type Values = BTreeMap<&'static str, Val>;

/// A customer at an instant: its lifecycle state, license object, owner and roles.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerOutcome {
    pub state: String,
    pub since: Option<i64>,
    pub license: serde_json::Value,
    pub owner: String,
    pub roles: BTreeMap<String, String>,
}

fn param(name: &str) -> Result<&'static Parameter, Refusal> {
    CATALOG
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("unknown parameter {name}"))
}

/// Bytes in one size unit (§2).
fn size_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    })
}

/// Seconds in one duration unit (§2).
fn duration_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1,
        "min" => 60,
        "h" => 3_600,
        "day" | "days" => 86_400,
        "week" | "weeks" => 604_800,
        _ => return None,
    })
}

fn whole(n: &ast::Number) -> Result<i64, Refusal> {
    if n.scale != 0 {
        return Err("fractional number".into());
    }
    i64::try_from(n.digits).map_err(|_| "number too large".into())
}

/// Seconds of a duration value (`90 days`).
pub fn duration_seconds(value: &ast::Value) -> Result<i64, Refusal> {
    match &value.kind {
        ValueKind::Quantity { number, unit } => {
            let per = duration_unit(&unit.name).ok_or("not a duration unit")?;
            whole(number)?
                .checked_mul(per)
                .ok_or_else(|| "overflow".into())
        }
        _ => Err("not a duration".into()),
    }
}

/// The value an assignment's right-hand side denotes for `p`, in API units.
fn operand(p: &Parameter, op: AssignOp, value: &ast::Value) -> Result<Val, Refusal> {
    if op == AssignOp::Mul {
        return match &value.kind {
            ValueKind::Number(n) => Ok(Val::Int(whole(n)?)),
            _ => Err("`*=` takes an integer".into()),
        };
    }
    match (p.kind, &value.kind) {
        (Kind::Integer, ValueKind::Number(n)) => Ok(Val::Int(whole(n)?)),
        (Kind::Size, ValueKind::Quantity { number, unit }) => {
            let per = size_unit(&unit.name).ok_or("not a size unit")?;
            Ok(Val::Int(whole(number)?.checked_mul(per).ok_or("overflow")?))
        }
        (Kind::Duration, ValueKind::Quantity { .. }) => {
            let seconds = duration_seconds(value)?;
            let per = p.unit.seconds().ok_or("duration without unit")?;
            if seconds % per != 0 {
                return Err(format!("`{}` is not a whole number of its unit", p.name));
            }
            Ok(Val::Int(seconds / per))
        }
        (Kind::Boolean, ValueKind::Bool(b)) if op == AssignOp::Set => Ok(Val::Bool(*b)),
        (Kind::Enum(variants), ValueKind::Word(w)) if op == AssignOp::Set => variants
            .iter()
            .position(|v| v.word == w || v.aliases.contains(&w.as_str()))
            .map(Val::Enum)
            .ok_or_else(|| format!("unknown word {w}")),
        _ => Err(format!("wrong kind of value for `{}`", p.name)),
    }
}

/// Applies one assignment to `values`; the result must lie in the parameter's range.
pub fn apply(values: &mut Values, a: &ast::Assignment) -> Result<(), Refusal> {
    let p = param(&a.field.name)?;
    if p.is_deprecated() {
        return Err("deprecated parameters are not generated".into());
    }
    let rhs = operand(p, a.op, &a.value)?;
    let result = match (a.op, rhs) {
        (AssignOp::Set, v) => v,
        (op, Val::Int(n)) => {
            let Some(Val::Int(old)) = values.get(p.name).copied() else {
                return Err(format!("`{}` adjusted before it is set", p.name));
            };
            let new = match op {
                AssignOp::Add => old.checked_add(n),
                AssignOp::Sub => old.checked_sub(n),
                AssignOp::Mul => old.checked_mul(n),
                AssignOp::Set => Some(n),
            };
            Val::Int(new.ok_or("overflow")?)
        }
        _ => return Err("adjusting a value that is not a number".into()),
    };
    if let Val::Int(n) = result
        && (n < p.min || p.max.is_some_and(|max| n > max))
    {
        return Err(format!("`{}` out of range: {n}", p.name));
    }
    values.insert(p.name, result);
    Ok(())
}

/// Applies one block's assignments; a parameter assigned twice in one block is refused.
fn apply_block(values: &mut Values, block: &ast::Block) -> Result<(), Refusal> {
    let mut seen: Vec<&str> = Vec::new();
    for a in &block.assignments {
        if seen.contains(&a.field.name.as_str()) {
            return Err(format!("`{}` assigned twice in one block", a.field.name));
        }
        seen.push(&a.field.name);
        apply(values, a)?;
    }
    Ok(())
}

/// The complete license object: every catalog key in order, defaults and fixed values filled.
pub fn license_json(values: &Values) -> Result<serde_json::Value, Refusal> {
    let mut map = serde_json::Map::new();
    for p in CATALOG.iter() {
        let json = match (p.kind, values.get(p.name), p.default) {
            (Kind::Fixed(FixedValue::Text(t)), _, _) => t.into(),
            (Kind::Fixed(FixedValue::Integer(n)), _, _) => n.into(),
            (Kind::Enum(variants), Some(Val::Enum(i)), _) => {
                variants.get(*i).ok_or("bad variant")?.wire.into()
            }
            (_, Some(Val::Int(n)), _) => (*n).into(),
            (_, Some(Val::Bool(b)), _) => (*b).into(),
            (_, None, Some(CatalogDefault::Integer(n))) => n.into(),
            (_, None, Some(CatalogDefault::Boolean(b))) => b.into(),
            _ => return Err(format!("`{}` is never set", p.name)),
        };
        map.insert(p.name.to_string(), json);
    }
    Ok(serde_json::Value::Object(map))
}

/// The declarations of a policy set, by name.
pub struct Decls<'a> {
    pub tiers: BTreeMap<&'a str, &'a ast::Tier>,
    pub addons: BTreeMap<&'a str, &'a ast::Addon>,
    pub groups: BTreeMap<&'a str, Vec<&'a str>>,
    pub customers: Vec<&'a ast::Customer>,
    pub lifecycle: Option<&'a ast::Lifecycle>,
    pub dummy_owner: Option<String>,
}

pub fn declarations(files: &[ast::File]) -> Result<Decls<'_>, Refusal> {
    let mut d = Decls {
        tiers: BTreeMap::new(),
        addons: BTreeMap::new(),
        groups: BTreeMap::new(),
        customers: Vec::new(),
        lifecycle: None,
        dummy_owner: None,
    };
    for item in files.iter().flat_map(|f| &f.items) {
        match item {
            Item::Tier(t) => {
                if d.tiers.insert(&t.name.name, t).is_some() {
                    return Err(format!("tier {} declared twice", t.name.name));
                }
            }
            Item::Addon(a) => {
                if d.addons.insert(&a.name.name, a).is_some() {
                    return Err(format!("add-on {} declared twice", a.name.name));
                }
            }
            Item::Group(g) => {
                let members = g.members.iter().map(|m| m.name.as_str()).collect();
                d.groups.insert(&g.name.name, members);
            }
            Item::Customer(c) => d.customers.push(c),
            Item::Lifecycle(l) => d.lifecycle = Some(l),
            Item::Instance(i) => {
                for a in &i.body.assignments {
                    if a.field.name == "dummy_owner"
                        && let ValueKind::String(s) = &a.value.kind
                    {
                        d.dummy_owner = Some(s.clone());
                    }
                }
            }
            _ => return Err("construct outside the reference".into()),
        }
    }
    for name in d.tiers.keys().chain(d.addons.keys()) {
        if d.tiers.contains_key(name) && d.addons.contains_key(name) {
            return Err(format!("{name} is both a tier and an add-on"));
        }
    }
    Ok(d)
}

/// The values of a tier: its chain from the root down, each block applied in turn.
pub fn tier_values(d: &Decls<'_>, name: &str) -> Result<Values, Refusal> {
    let mut chain: Vec<&ast::Tier> = Vec::new();
    let mut current = name;
    loop {
        let tier = d
            .tiers
            .get(current)
            .ok_or_else(|| format!("unknown tier {current}"))?;
        if chain.iter().any(|t| t.name.name == tier.name.name) {
            return Err(format!("cycle through {current}"));
        }
        chain.push(tier);
        match &tier.extends {
            Some(parent) => current = &parent.name,
            None => break,
        }
    }
    let mut values = Values::new();
    for tier in chain.iter().rev() {
        apply_block(&mut values, &tier.body)?;
    }
    Ok(values)
}

/// Checks every value an add-on writes, whether or not a customer uses it: a value of the wrong
/// kind or not a whole number of the API unit is an error where it is written (§2), and so is a
/// parameter assigned twice in one block (§5).
pub fn addons(d: &Decls<'_>) -> Result<(), Refusal> {
    for addon in d.addons.values() {
        let mut seen: Vec<&str> = Vec::new();
        for a in &addon.body.assignments {
            if seen.contains(&a.field.name.as_str()) {
                return Err(format!("`{}` assigned twice in one block", a.field.name));
            }
            seen.push(&a.field.name);
            let p = param(&a.field.name)?;
            // A range is a property of a result (§5), so it is checked where the add-on is
            // applied to a customer's license, not here.
            operand(p, a.op, &a.value)?;
        }
    }
    Ok(())
}

/// Every tier's license object (only deployable ones are kept); refuses the policy set if any
/// tier, abstract or not, is refused.
pub fn tiers(d: &Decls<'_>) -> Result<BTreeMap<String, serde_json::Value>, Refusal> {
    let mut out = BTreeMap::new();
    for (name, tier) in &d.tiers {
        let values = tier_values(d, name)?;
        if tier.extends.is_none() || !tier.is_abstract {
            // A root must be complete even when abstract (§5).
            let json = license_json(&values)?;
            if !tier.is_abstract {
                out.insert(name.to_string(), json);
            }
        }
    }
    Ok(out)
}

/// A customer's fields as the reference reads them.
pub struct CustomerFields<'a> {
    pub key: &'a str,
    pub tier: &'a str,
    pub addons: Vec<&'a str>,
    pub owner: &'a str,
    pub admins: Vec<&'a str>,
    pub members: Vec<&'a str>,
    pub attributes: BTreeMap<&'a str, &'a ast::Value>,
    pub dates: BTreeMap<&'a str, i64>,
    pub overrides: Option<&'a ast::Block>,
}

fn strings(value: &ast::Value) -> Result<Vec<&str>, Refusal> {
    match &value.kind {
        ValueKind::List(items) => items
            .iter()
            .map(|v| match &v.kind {
                ValueKind::String(s) => Ok(s.as_str()),
                _ => Err("a list of strings".into()),
            })
            .collect(),
        _ => Err("a list".into()),
    }
}

fn words(value: &ast::Value) -> Result<Vec<&str>, Refusal> {
    match &value.kind {
        ValueKind::List(items) => items
            .iter()
            .map(|v| match &v.kind {
                ValueKind::Word(s) => Ok(s.as_str()),
                _ => Err("a list of names".into()),
            })
            .collect(),
        _ => Err("a list".into()),
    }
}

pub fn customer_fields<'a>(c: &'a ast::Customer) -> Result<CustomerFields<'a>, Refusal> {
    let mut f = CustomerFields {
        key: &c.key.name,
        tier: "",
        addons: Vec::new(),
        owner: "",
        admins: Vec::new(),
        members: Vec::new(),
        attributes: BTreeMap::new(),
        dates: BTreeMap::new(),
        overrides: None,
    };
    for statement in &c.body {
        match statement {
            ast::Statement::Assign(a) => match (a.field.name.as_str(), &a.value.kind) {
                ("tier", ValueKind::Word(w)) => f.tier = w,
                ("owner", ValueKind::String(s)) => f.owner = s,
                ("name", ValueKind::String(_)) => {}
                ("addons", _) => f.addons = words(&a.value)?,
                ("admins", _) => f.admins = strings(&a.value)?,
                ("members", _) => f.members = strings(&a.value)?,
                ("contract_end", ValueKind::Date(date)) => {
                    f.dates.insert("contract_end", date.unix_seconds);
                }
                (other, _) => return Err(format!("customer field {other}")),
            },
            ast::Statement::Nested(n) => match n.keyword.name.as_str() {
                "override" => f.overrides = Some(&n.body),
                "attributes" => {
                    for a in &n.body.assignments {
                        if let ValueKind::Date(date) = &a.value.kind {
                            f.dates.insert(&a.field.name, date.unix_seconds);
                        }
                        f.attributes.insert(&a.field.name, &a.value);
                    }
                }
                other => return Err(format!("customer block {other}")),
            },
        }
    }
    let mut everyone: Vec<&str> = vec![f.owner];
    everyone.extend(&f.admins);
    everyone.extend(&f.members);
    for (i, person) in everyone.iter().enumerate() {
        if everyone.iter().skip(i + 1).any(|p| p == person) {
            return Err(format!("{person} holds two roles"));
        }
    }
    Ok(f)
}

/// A customer's license with its tier, add-ons (in order) and override (§5, §7).
pub fn customer_values(d: &Decls<'_>, f: &CustomerFields<'_>) -> Result<Values, Refusal> {
    let tier = d
        .tiers
        .get(f.tier)
        .ok_or_else(|| format!("unknown tier {}", f.tier))?;
    if tier.is_abstract {
        return Err(format!("customer {} has abstract tier {}", f.key, f.tier));
    }
    let mut values = tier_values(d, f.tier)?;
    let mut set_by_addons: BTreeMap<&str, Val> = BTreeMap::new();
    for (i, name) in f.addons.iter().enumerate() {
        // grammar/README.md: an add-on listed twice is an error.
        if f.addons.iter().skip(i + 1).any(|n| n == name) {
            return Err(format!("add-on {name} listed twice"));
        }
        let addon = d
            .addons
            .get(name)
            .ok_or_else(|| format!("unknown add-on {name}"))?;
        apply_block(&mut values, &addon.body)?;
        for a in &addon.body.assignments {
            if a.op == AssignOp::Set {
                let p = param(&a.field.name)?;
                let v = operand(p, a.op, &a.value)?;
                if let Some(earlier) = set_by_addons.insert(p.name, v)
                    && earlier != v
                {
                    return Err(format!("add-ons set `{}` to different values", p.name));
                }
            }
        }
    }
    if let Some(block) = f.overrides {
        apply_block(&mut values, block)?;
    }
    Ok(values)
}

/// A customer at instant `at` (seconds since the epoch): the lifecycle walk, then the state's
/// overlays on the customer's license, its owner and the demotions of its people.
pub fn customer(
    d: &Decls<'_>,
    l: Option<&Lifecycle<'_>>,
    f: &CustomerFields<'_>,
    history: &charter::compile::customer::History,
    at: i64,
) -> Result<CustomerOutcome, Refusal> {
    let mut values = customer_values(d, f)?;
    let (state, since) = match l {
        Some(l) => walk(l, f, history, at),
        None => ("active".to_string(), None),
    };
    let mut owner = f.owner.to_string();
    let mut roles: BTreeMap<String, String> = BTreeMap::new();
    roles.insert(f.owner.to_string(), "owner".into());
    for a in &f.admins {
        roles.insert(a.to_string(), "admin".into());
    }
    for m in &f.members {
        roles.insert(m.to_string(), "member".into());
    }
    if let Some(decl) = l.and_then(|l| l.states.get(state.as_str())) {
        let effects = state_effects(d, decl)?;
        for (p, v) in effects.overlays {
            values.insert(p.name, v);
        }
        if effects.owner_to_dummy
            && let Some(dummy) = &d.dummy_owner
        {
            // Make leaves the previous owner an Admin after a transfer (docs/make-api.md).
            roles.insert(f.owner.to_string(), "admin".into());
            roles.insert(dummy.clone(), "owner".into());
            owner = dummy.clone();
        }
        let rank = |role: &str| match role {
            "owner" => 3,
            "admin" => 2,
            _ => 1,
        };
        for (party, role) in effects.demotions {
            let people: Vec<&str> = match party {
                "owner" => vec![f.owner],
                "admins" => f.admins.clone(),
                _ => f.members.clone(),
            };
            for person in people {
                // A demotion only lowers a role, and never the organization's current owner's.
                if let Some(current) = roles.get_mut(person)
                    && *current != "owner"
                    && rank(current) > rank(role)
                {
                    *current = role.to_string();
                }
            }
        }
    }
    Ok(CustomerOutcome {
        state,
        since,
        license: license_json(&values)?,
        owner,
        roles,
    })
}

/// A lifecycle as the reference reads it (§8).
pub struct Lifecycle<'a> {
    pub initial: &'a str,
    pub states: BTreeMap<&'a str, &'a ast::StateDecl>,
    pub transitions: Vec<&'a ast::Transition>,
}

/// Reads and checks the lifecycle: one initial state, known states, unique transition names,
/// every state reachable from `initial`.
pub fn lifecycle<'a>(d: &Decls<'a>) -> Result<Option<Lifecycle<'a>>, Refusal> {
    let Some(block) = d.lifecycle else {
        return Ok(None);
    };
    let mut initial = None;
    let mut states = BTreeMap::new();
    let mut transitions: Vec<&ast::Transition> = Vec::new();
    for item in &block.items {
        match item {
            ast::LifecycleItem::Initial { state, .. } => {
                if initial.replace(state.name.as_str()).is_some() {
                    return Err("two initial states".into());
                }
            }
            ast::LifecycleItem::State(s) => {
                if states.insert(s.name.name.as_str(), s).is_some() {
                    return Err(format!("state {} declared twice", s.name.name));
                }
            }
            ast::LifecycleItem::Transition(t) => {
                if transitions.iter().any(|u| u.name.name == t.name.name) {
                    return Err(format!("transition {} declared twice", t.name.name));
                }
                transitions.push(t);
            }
        }
    }
    let initial = initial.ok_or("no initial state")?;
    for name in std::iter::once(initial).chain(
        transitions
            .iter()
            .flat_map(|t| t.from.iter().chain([&t.to]).map(|s| s.name.as_str())),
    ) {
        if !states.contains_key(name) {
            return Err(format!("unknown state {name}"));
        }
    }
    let mut reached = vec![initial];
    let mut grew = true;
    while grew {
        grew = false;
        for t in &transitions {
            if t.from.iter().any(|f| reached.contains(&f.name.as_str()))
                && !reached.contains(&t.to.name.as_str())
            {
                reached.push(&t.to.name);
                grew = true;
            }
        }
    }
    if let Some(lost) = states.keys().find(|s| !reached.contains(s)) {
        return Err(format!("state {lost} is unreachable"));
    }
    for s in states.values() {
        state_effects(d, s)?;
    }
    // Triggers and guards read attributes some customer has (or `contract_end`).
    let mut known: Vec<&str> = vec!["contract_end"];
    for c in &d.customers {
        known.extend(customer_fields(c)?.attributes.keys());
    }
    for t in &transitions {
        let mut names = Vec::new();
        if let ast::Trigger::When(e) = &t.trigger {
            references(e, &mut names);
        }
        if let Some(guard) = &t.guard {
            references(guard, &mut names);
        }
        if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
            return Err(format!("unknown attribute {unknown}"));
        }
    }
    Ok(Some(Lifecycle {
        initial,
        states,
        transitions,
    }))
}

/// The names an expression reads.
fn references<'a>(e: &'a ast::Expr, names: &mut Vec<&'a str>) {
    match &e.kind {
        ast::ExprKind::Reference { name, .. } => names.push(&name.name),
        ast::ExprKind::Paren(inner) | ast::ExprKind::Not(inner) => references(inner, names),
        ast::ExprKind::Binary { lhs, rhs, .. } => {
            references(lhs, names);
            references(rhs, names);
        }
        ast::ExprKind::Literal(_) => {}
    }
}

/// What a state does: its overlays (parameter, value), whether the dummy owner takes over, and
/// its demotions (party, role).
pub struct Effects<'a> {
    pub overlays: Vec<(&'static Parameter, Val)>,
    pub owner_to_dummy: bool,
    pub demotions: Vec<(&'a str, &'a str)>,
}

pub fn state_effects<'a>(d: &Decls<'a>, s: &'a ast::StateDecl) -> Result<Effects<'a>, Refusal> {
    let mut e = Effects {
        overlays: Vec::new(),
        owner_to_dummy: false,
        demotions: Vec::new(),
    };
    for statement in &s.body {
        match statement {
            ast::StateStatement::License { overlays, .. } => {
                for o in overlays {
                    let targets: Vec<&str> = match d.groups.get(o.target.name.as_str()) {
                        Some(members) => members.clone(),
                        None if o.target.name == "consumables" => vec!["operations", "transfer"],
                        None => vec![o.target.name.as_str()],
                    };
                    for target in targets {
                        let p = param(target)?;
                        let v = match (&o.value.kind, p.kind) {
                            // An overlay value `0` needs no unit (grammar/README.md).
                            (ValueKind::Number(n), Kind::Size | Kind::Duration)
                                if n.digits == 0 =>
                            {
                                Val::Int(0)
                            }
                            _ => operand(p, AssignOp::Set, &o.value)?,
                        };
                        if let Val::Int(n) = v
                            && (n < p.min || p.max.is_some_and(|max| n > max))
                        {
                            return Err(format!("overlay `{}` out of range", p.name));
                        }
                        e.overlays.push((p, v));
                    }
                }
            }
            ast::StateStatement::Owner { value, .. } => {
                if value.name != "dummy_owner" || d.dummy_owner.is_none() {
                    return Err("`owner = dummy_owner` without a dummy owner".into());
                }
                e.owner_to_dummy = true;
            }
            ast::StateStatement::Demote { parties, role, .. } => {
                for party in parties {
                    if party.name == "owner" && !e.owner_to_dummy {
                        // The organization always keeps one owner.
                        let later = s
                            .body
                            .iter()
                            .any(|st| matches!(st, ast::StateStatement::Owner { .. }));
                        if !later {
                            return Err("demoting the owner without `owner =`".into());
                        }
                    }
                    e.demotions.push((&party.name, &role.name));
                }
            }
        }
    }
    Ok(e)
}

fn attribute<'a>(f: &'a CustomerFields<'_>, name: &str) -> Option<&'a ast::Value> {
    f.attributes.get(name).copied()
}

/// A date expression over the customer's attributes (`contract_end + 7 days`, a literal);
/// `None` if the customer lacks an attribute it reads.
fn date_of(f: &CustomerFields<'_>, e: &ast::Expr) -> Option<i64> {
    match &e.kind {
        ast::ExprKind::Paren(inner) => date_of(f, inner),
        ast::ExprKind::Literal(v) => match &v.kind {
            ValueKind::Date(date) => Some(date.unix_seconds),
            _ => None,
        },
        ast::ExprKind::Reference {
            qualifier: None,
            name,
        } => f.dates.get(name.name.as_str()).copied(),
        ast::ExprKind::Binary { op, lhs, rhs } => {
            let base = date_of(f, lhs)?;
            let ast::ExprKind::Literal(v) = &rhs.kind else {
                return None;
            };
            let seconds = duration_seconds(v).ok()?;
            match op {
                ast::BinaryOp::Add => base.checked_add(seconds),
                ast::BinaryOp::Sub => base.checked_sub(seconds),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A guard over the customer's attributes; `None` if it reads one the customer lacks.
fn holds(f: &CustomerFields<'_>, e: &ast::Expr) -> Option<bool> {
    let text = |e: &ast::Expr| -> Option<String> {
        match &e.kind {
            ast::ExprKind::Literal(v) => match &v.kind {
                ValueKind::String(s) => Some(s.clone()),
                _ => None,
            },
            ast::ExprKind::Reference {
                qualifier: None,
                name,
            } => match &attribute(f, &name.name)?.kind {
                ValueKind::String(s) | ValueKind::Word(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    match &e.kind {
        ast::ExprKind::Paren(inner) => holds(f, inner),
        ast::ExprKind::Not(inner) => holds(f, inner).map(|b| !b),
        ast::ExprKind::Binary { op, lhs, rhs } => match op {
            ast::BinaryOp::And => Some(holds(f, lhs)? && holds(f, rhs)?),
            ast::BinaryOp::Or => Some(holds(f, lhs)? || holds(f, rhs)?),
            ast::BinaryOp::Implies => Some(!holds(f, lhs)? || holds(f, rhs)?),
            ast::BinaryOp::Eq => Some(text(lhs)? == text(rhs)?),
            ast::BinaryOp::Ne => Some(text(lhs)? != text(rhs)?),
            _ => None,
        },
        _ => None,
    }
}

/// The customer's state at `at` and when it entered it (§8): recorded transitions first, in
/// order (each where it leaves the state the customer is in), then every automatic transition
/// at the moment it falls due, the earliest first and the one declared first on a tie.
pub fn walk(
    l: &Lifecycle<'_>,
    f: &CustomerFields<'_>,
    history: &charter::compile::customer::History,
    at: i64,
) -> (String, Option<i64>) {
    let mut state = l.initial.to_string();
    let mut since: Option<i64> = None;
    // (transition, time) of everything that fired.
    let mut fired: Vec<(String, i64)> = Vec::new();
    for event in history.transitions.iter().filter(|e| e.at <= at) {
        let Some(t) = l
            .transitions
            .iter()
            .find(|t| t.name.name == event.transition)
        else {
            continue;
        };
        if t.from.iter().any(|s| s.name == state) {
            state = t.to.name.clone();
            since = Some(event.at);
            fired.push((t.name.name.clone(), event.at));
        }
    }
    let mut used_requests: Vec<usize> = Vec::new();
    for _ in 0..1_000 {
        let mut next: Option<(i64, usize, Option<usize>)> = None;
        for (index, t) in l.transitions.iter().enumerate() {
            if !t.from.iter().any(|s| s.name == state) {
                continue;
            }
            if let Some(guard) = &t.guard
                && holds(f, guard) != Some(true)
            {
                continue;
            }
            let (due, request) = match &t.trigger {
                ast::Trigger::When(e) => {
                    let Some(date) = date_of(f, e) else { continue };
                    // It fires once for its date.
                    if fired
                        .iter()
                        .any(|(n, when)| *n == t.name.name && *when >= date)
                    {
                        continue;
                    }
                    (since.map_or(date, |s| s.max(date)), None)
                }
                ast::Trigger::After(v) => {
                    let (Some(entered), Ok(seconds)) = (since, duration_seconds(v)) else {
                        continue;
                    };
                    (entered + seconds, None)
                }
                ast::Trigger::Manual(_) => {
                    // The first request for it made since the customer entered this state.
                    let Some((i, r)) = history.requests.iter().enumerate().find(|(i, r)| {
                        r.transition == t.name.name
                            && !used_requests.contains(i)
                            && since.is_none_or(|s| r.at >= s)
                    }) else {
                        continue;
                    };
                    (r.at, Some(i))
                }
            };
            if due <= at && next.is_none_or(|(d, _, _)| due < d) {
                next = Some((due, index, request));
            }
        }
        let Some((due, index, request)) = next else {
            break;
        };
        let Some(t) = l.transitions.get(index) else {
            break;
        };
        used_requests.extend(request);
        state = t.to.name.clone();
        since = Some(due);
        fired.push((t.name.name.clone(), due));
    }
    (state, since)
}
