//! The checked program: what a policy set means once every name is resolved and every value
//! interpreted. Only the checker builds one; everything after it reads it.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::ast;
use crate::model::license::{Assignment, License};
use crate::source::Span;

/// A checked policy set with no errors.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub instance: InstanceSettings,
    /// Every tier, in declaration order (files in name order).
    pub tiers: Vec<Tier>,
    pub addons: Vec<Addon>,
    /// Group name → parameter indices, including the built-in `consumables`.
    pub groups: BTreeMap<String, Vec<usize>>,
    /// Every `assert ladder`, as tier names lowest first.
    pub ladders: Vec<Vec<String>>,
    /// Every `assert for` rule (already verified against every tier).
    pub rules: Vec<Rule>,
    /// Every customer, from blocks and rosters, in declaration order.
    pub customers: Vec<crate::model::customer::Customer>,
    pub lifecycle: crate::model::customer::Lifecycle,
    pub tests: Vec<crate::model::customer::Test>,
    /// The reseller's own people with instance roles.
    pub staff: Vec<crate::model::customer::Staff>,
    pub(crate) customer_index: FxHashMap<String, usize>,
    pub(crate) tier_index: FxHashMap<String, usize>,
}

impl Program {
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        match self.tier_index.get(name) {
            Some(&i) => self.tiers.get(i),
            // A program built by hand (in tests) may have no index.
            None if self.tier_index.is_empty() => self.tiers.iter().find(|t| t.name == name),
            None => None,
        }
    }

    pub fn customer(&self, key: &str) -> Option<&crate::model::customer::Customer> {
        match self.customer_index.get(key) {
            Some(&i) => self.customers.get(i),
            None if self.customer_index.is_empty() => self.customers.iter().find(|c| c.key == key),
            None => None,
        }
    }

    /// Rebuilds the name indexes after `tiers` or `customers` changed.
    pub fn index(&mut self) {
        self.tier_index = self
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        self.customer_index = self
            .customers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.clone(), i))
            .collect();
    }

    pub fn addon(&self, name: &str) -> Option<&Addon> {
        self.addons.iter().find(|a| a.name == name)
    }

    /// Non-abstract tiers in ladder order where the first ladder covers them, then the rest in
    /// declaration order.
    pub fn deployable_tiers(&self) -> Vec<&Tier> {
        let mut ordered: Vec<&Tier> = Vec::new();
        let mut placed: FxHashSet<&str> = FxHashSet::default();
        if let Some(ladder) = self.ladders.first() {
            for tier in ladder.iter().filter_map(|name| self.tier(name)) {
                if placed.insert(&tier.name) {
                    ordered.push(tier);
                }
            }
        }
        for tier in &self.tiers {
            if !tier.is_abstract && placed.insert(&tier.name) {
                ordered.push(tier);
            }
        }
        ordered
    }
}

/// The `instance` block.
#[derive(Clone, Debug, Default)]
pub struct InstanceSettings {
    pub flags: Vec<String>,
    pub dummy_owner: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Tier {
    pub name: String,
    pub is_abstract: bool,
    pub parent: Option<String>,
    /// The resolved license: the whole chain applied, defaults filled. Complete for every
    /// non-abstract tier.
    pub license: License,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Addon {
    pub name: String,
    pub assignments: Vec<Assignment>,
    pub span: Span,
}

/// An `assert for` rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The tiers it applies to; `None` for `for all`.
    pub scope: Option<Vec<String>>,
    pub expr: ast::Expr,
    pub message: Option<String>,
    pub span: Span,
}
