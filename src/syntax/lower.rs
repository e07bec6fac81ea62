//! Lowering: pest's parse tree to the AST, one `lower_<rule>` function per rule.
//!
//! The grammar guarantees the shape of every pair, so an unexpected child here is a bug in
//! this file, not a user error; it is still reported as a diagnostic rather than a panic.
//! User errors that the grammar cannot express (a number too large, an unknown escape, a
//! date that does not exist) are collected in `errors`.

use std::cell::RefCell;

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, ConstPrattParser, Op};
use pest::pratt_precedence;

use super::Rule;
use crate::ast::{self, AssignOp, BinaryOp, ExprKind, ValueKind};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

pub(super) struct Lowering {
    file: FileId,
    /// Where the parsed text starts in its file (a large file is parsed in pieces).
    offset: usize,
    pub(super) errors: Vec<Diagnostic>,
}

type P<'i> = Pair<'i, Rule>;

/// The deepest expression tree accepted (see [`Lowering::expr`]).
const MAX_EXPR_DEPTH: usize = 256;

/// The precedence of the expression language, lowest first (LANGUAGE.md §6): `implies`, `or`,
/// `and`, `not`, comparisons, `+ -`, `* /`; binary operators associate to the left.
static PRECEDENCE: ConstPrattParser<Rule, 7> = ConstPrattParser::new_const(pratt_precedence![
    Op::infix(Rule::kw_implies, Assoc::Left),
    Op::infix(Rule::kw_or, Assoc::Left),
    Op::infix(Rule::kw_and, Assoc::Left),
    Op::prefix(Rule::kw_not),
    Op::infix(Rule::cmp_op, Assoc::Left),
    Op::infix(Rule::add_op, Assoc::Left),
    Op::infix(Rule::mul_op, Assoc::Left),
]);

/// The children of a pair without the keyword and spacing tokens, which carry no information.
fn children(pair: P<'_>) -> impl Iterator<Item = P<'_>> {
    pair.into_inner().filter(|p| {
        !matches!(
            p.as_rule(),
            Rule::kw_instance
                | Rule::kw_tier
                | Rule::kw_extends
                | Rule::kw_addon
                | Rule::kw_group
                | Rule::kw_assert
                | Rule::kw_ladder
                | Rule::kw_for
                | Rule::kw_and
                | Rule::kw_or
                | Rule::kw_not
                | Rule::kw_implies
                | Rule::kw_customer
                | Rule::kw_roster
                | Rule::kw_staff
                | Rule::kw_lifecycle
                | Rule::kw_initial
                | Rule::kw_state
                | Rule::kw_transition
                | Rule::kw_from
                | Rule::kw_to
                | Rule::kw_when
                | Rule::kw_after
                | Rule::kw_if
                | Rule::kw_with
                | Rule::kw_demote
                | Rule::kw_test
                | Rule::kw_expect
                | Rule::kw_at
                | Rule::kw_license
                | Rule::kw_owner
                | Rule::open_brace
                | Rule::close_brace
                | Rule::equals
                | Rule::colon
                | Rule::block_sep
                | Rule::block_pad
        )
    })
}

impl Lowering {
    pub(super) fn new(file: FileId, offset: usize) -> Lowering {
        Lowering {
            file,
            offset,
            errors: Vec::new(),
        }
    }

    fn span(&self, pair: &P<'_>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.offset + s.start(), self.offset + s.end())
    }

    /// The span of a rule that may end with an optional or repeated part: pest's span then
    /// includes the spacing and comments it skipped before finding the part absent. The end is
    /// moved back to the last character of a real token.
    fn tight_span(&self, pair: &P<'_>) -> Span {
        let s = pair.as_span();
        let start = self.offset + s.start();
        Span::new(self.file, start, start + significant_len(s.as_str()))
    }

    fn ident(&self, pair: &P<'_>) -> ast::Ident {
        ast::Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    /// A declared or referenced name, which must not be a reserved word.
    fn name(&mut self, pair: &P<'_>) -> ast::Ident {
        let ident = self.ident(pair);
        if super::is_reserved(&ident.name) {
            self.errors.push(
                Diagnostic::error(
                    "charter::reserved_word",
                    format!("`{}` is a reserved word", ident.name),
                )
                .with_label(ident.span, "cannot be used as a name")
                .with_help("choose another name; reserved words are listed in grammar/README.md"),
            );
        }
        ident
    }

    fn bug(&mut self, pair: &P<'_>, context: &str) {
        self.errors.push(
            Diagnostic::error(
                "charter::internal",
                format!(
                    "internal error: unexpected `{:?}` in {context}",
                    pair.as_rule()
                ),
            )
            .with_label(self.span(pair), "")
            .with_help("this is a bug in charter; please report it with this file"),
        );
    }

    pub(super) fn lower_file(&mut self, pair: P<'_>) -> ast::File {
        let mut items = Vec::new();
        for child in children(pair) {
            let item = match child.as_rule() {
                Rule::instance => ast::Item::Instance(self.lower_instance(child)),
                Rule::tier => ast::Item::Tier(self.lower_tier(child)),
                Rule::addon => ast::Item::Addon(self.lower_addon(child)),
                Rule::group => ast::Item::Group(self.lower_group(child)),
                Rule::ladder_rule => ast::Item::Ladder(self.lower_ladder_rule(child)),
                Rule::for_rule => match self.lower_for_rule(child) {
                    Some(rule) => ast::Item::Assert(rule),
                    None => continue,
                },
                Rule::customer => ast::Item::Customer(self.lower_customer(child)),
                Rule::roster => match self.lower_roster(child) {
                    Some(roster) => ast::Item::Roster(roster),
                    None => continue,
                },
                Rule::staff => ast::Item::Staff(self.lower_staff(child)),
                Rule::lifecycle => ast::Item::Lifecycle(self.lower_lifecycle(child)),
                Rule::test => ast::Item::Test(self.lower_test(child)),
                Rule::EOI => continue,
                _ => {
                    self.bug(&child, "a file");
                    continue;
                }
            };
            items.push(item);
        }
        ast::File { items }
    }

    fn lower_instance(&mut self, pair: P<'_>) -> ast::Instance {
        let span = self.span(&pair);
        let keyword = pair
            .clone()
            .into_inner()
            .next()
            .map_or(span, |k| self.span(&k));
        let mut body = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::block => body = Some(self.lower_block(child)),
                _ => self.bug(&child, "an instance block"),
            }
        }
        ast::Instance {
            keyword,
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn lower_tier(&mut self, pair: P<'_>) -> ast::Tier {
        let span = self.span(&pair);
        let mut is_abstract = false;
        let mut name = None;
        let mut extends = None;
        let mut body = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::kw_abstract => is_abstract = true,
                Rule::name => name = Some(self.name(&child)),
                Rule::extends => extends = self.lower_extends(child),
                Rule::block => body = Some(self.lower_block(child)),
                _ => self.bug(&child, "a tier"),
            }
        }
        ast::Tier {
            is_abstract,
            name: name.unwrap_or_else(|| missing_ident(span)),
            extends,
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn lower_extends(&mut self, pair: P<'_>) -> Option<ast::Ident> {
        children(pair).next().map(|p| self.name(&p))
    }

    fn lower_addon(&mut self, pair: P<'_>) -> ast::Addon {
        let span = self.span(&pair);
        let mut name = None;
        let mut body = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::name => name = Some(self.name(&child)),
                Rule::block => body = Some(self.lower_block(child)),
                _ => self.bug(&child, "an add-on"),
            }
        }
        ast::Addon {
            name: name.unwrap_or_else(|| missing_ident(span)),
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn lower_group(&mut self, pair: P<'_>) -> ast::Group {
        let span = self.tight_span(&pair);
        let mut name = None;
        let mut members = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::name => name = Some(self.name(&child)),
                Rule::field => members.push(self.ident(&child)),
                _ => self.bug(&child, "a group"),
            }
        }
        ast::Group {
            name: name.unwrap_or_else(|| missing_ident(span)),
            members,
            span,
        }
    }

    fn lower_ladder_rule(&mut self, pair: P<'_>) -> ast::Ladder {
        let span = self.tight_span(&pair);
        let mut tiers = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::name => tiers.push(self.name(&child)),
                _ => self.bug(&child, "a ladder"),
            }
        }
        ast::Ladder { tiers, span }
    }

    fn lower_for_rule(&mut self, pair: P<'_>) -> Option<ast::Assert> {
        let span = self.tight_span(&pair);
        let mut scope = None;
        let mut expr = None;
        let mut message = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::scope => scope = Some(self.lower_scope(child)),
                Rule::expr => expr = self.lower_expr(child),
                Rule::message => message = self.lower_message(child),
                _ => self.bug(&child, "an assertion"),
            }
        }
        Some(ast::Assert {
            scope: scope.unwrap_or(ast::Scope::Tiers(Vec::new())),
            expr: expr?,
            message,
            span,
        })
    }

    fn lower_scope(&mut self, pair: P<'_>) -> ast::Scope {
        let mut tiers = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::kw_all => return ast::Scope::All(self.span(&child)),
                Rule::name => tiers.push(self.name(&child)),
                _ => self.bug(&child, "a rule's scope"),
            }
        }
        ast::Scope::Tiers(tiers)
    }

    fn lower_message(&mut self, pair: P<'_>) -> Option<ast::StringLit> {
        let string = children(pair).next()?;
        Some(self.string_lit(string))
    }

    /// A `string` pair as a literal with the span of its quotes.
    fn string_lit(&mut self, pair: P<'_>) -> ast::StringLit {
        let span = self.span(&pair);
        let value = self.lower_string(pair);
        ast::StringLit { value, span }
    }

    fn lower_customer(&mut self, pair: P<'_>) -> ast::Customer {
        let span = self.span(&pair);
        let mut key = None;
        let mut body = Vec::new();
        let mut body_span = span;
        for child in children(pair) {
            match child.as_rule() {
                Rule::name => key = Some(self.name(&child)),
                Rule::customer_block => {
                    body_span = self.span(&child);
                    body = self.lower_customer_block(child);
                }
                _ => self.bug(&child, "a customer"),
            }
        }
        ast::Customer {
            key: key.unwrap_or_else(|| missing_ident(span)),
            body,
            body_span,
            span,
        }
    }

    fn lower_customer_block(&mut self, pair: P<'_>) -> Vec<ast::Statement> {
        let mut body = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::assignment => {
                    if let Some(a) = self.lower_assignment(child) {
                        body.push(ast::Statement::Assign(a));
                    }
                }
                Rule::nested_block => {
                    body.push(ast::Statement::Nested(self.lower_nested_block(child)));
                }
                _ => self.bug(&child, "a customer block"),
            }
        }
        body
    }

    fn lower_nested_block(&mut self, pair: P<'_>) -> ast::NestedBlock {
        let span = self.span(&pair);
        let mut keyword = None;
        let mut label = None;
        let mut body = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::field => keyword = Some(self.ident(&child)),
                Rule::string => label = Some(self.string_lit(child)),
                Rule::block => body = Some(self.lower_block(child)),
                _ => self.bug(&child, "a nested block"),
            }
        }
        ast::NestedBlock {
            keyword: keyword.unwrap_or_else(|| missing_ident(span)),
            label,
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn lower_roster(&mut self, pair: P<'_>) -> Option<ast::Roster> {
        let span = self.span(&pair);
        let mut path = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::string => path = Some(self.string_lit(child)),
                _ => self.bug(&child, "a roster"),
            }
        }
        Some(ast::Roster { path: path?, span })
    }

    fn lower_staff(&mut self, pair: P<'_>) -> ast::Staff {
        let span = self.span(&pair);
        let mut email = None;
        let mut body = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::string => email = Some(self.string_lit(child)),
                Rule::block => body = Some(self.lower_block(child)),
                _ => self.bug(&child, "a staff block"),
            }
        }
        ast::Staff {
            email: email.unwrap_or_else(|| ast::StringLit {
                value: String::new(),
                span,
            }),
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn lower_lifecycle(&mut self, pair: P<'_>) -> ast::Lifecycle {
        let span = self.span(&pair);
        let keyword = pair
            .clone()
            .into_inner()
            .next()
            .map_or(span, |k| self.span(&k));
        let mut items = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::initial_state => items.extend(self.lower_initial_state(child)),
                Rule::state_decl => {
                    items.push(ast::LifecycleItem::State(self.lower_state_decl(child)));
                }
                Rule::transition => {
                    if let Some(t) = self.lower_transition(child) {
                        items.push(ast::LifecycleItem::Transition(t));
                    }
                }
                _ => self.bug(&child, "a lifecycle"),
            }
        }
        ast::Lifecycle {
            keyword,
            items,
            span,
        }
    }

    fn lower_initial_state(&mut self, pair: P<'_>) -> Option<ast::LifecycleItem> {
        let span = self.span(&pair);
        let mut state = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::name => state = Some(self.name(&child)),
                _ => self.bug(&child, "an initial state"),
            }
        }
        Some(ast::LifecycleItem::Initial {
            state: state?,
            span,
        })
    }

    fn lower_state_decl(&mut self, pair: P<'_>) -> ast::StateDecl {
        let span = self.span(&pair);
        let mut name = None;
        let mut body = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::name => name = Some(self.name(&child)),
                Rule::license => body.extend(self.lower_license(child)),
                Rule::owner_change => body.extend(self.lower_owner_change(child)),
                Rule::demote => body.extend(self.lower_demote(child)),
                _ => self.bug(&child, "a state"),
            }
        }
        ast::StateDecl {
            name: name.unwrap_or_else(|| missing_ident(span)),
            body,
            span,
        }
    }

    fn lower_license(&mut self, pair: P<'_>) -> Option<ast::StateStatement> {
        let span = self.tight_span(&pair);
        let mut source = None;
        let mut overlays = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::field => source = Some(self.ident(&child)),
                Rule::overlay => overlays.extend(self.lower_overlay(child)),
                _ => self.bug(&child, "a license statement"),
            }
        }
        Some(ast::StateStatement::License {
            source: source?,
            overlays,
            span,
        })
    }

    fn lower_overlay(&mut self, pair: P<'_>) -> Option<ast::Overlay> {
        let span = self.tight_span(&pair);
        let mut target = None;
        let mut value = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::field => target = Some(self.ident(&child)),
                Rule::value => value = self.lower_value(child),
                _ => self.bug(&child, "an overlay"),
            }
        }
        Some(ast::Overlay {
            target: target?,
            value: value?,
            span,
        })
    }

    fn lower_owner_change(&mut self, pair: P<'_>) -> Option<ast::StateStatement> {
        let span = self.span(&pair);
        let mut value = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::field => value = Some(self.ident(&child)),
                _ => self.bug(&child, "an owner statement"),
            }
        }
        Some(ast::StateStatement::Owner {
            value: value?,
            span,
        })
    }

    /// `demote a, b to role`: every field but the last is a party, the last is the role.
    fn lower_demote(&mut self, pair: P<'_>) -> Option<ast::StateStatement> {
        let span = self.span(&pair);
        let mut parties = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::field => parties.push(self.ident(&child)),
                _ => self.bug(&child, "a demote statement"),
            }
        }
        let role = parties.pop()?;
        Some(ast::StateStatement::Demote {
            parties,
            role,
            span,
        })
    }

    fn lower_transition(&mut self, pair: P<'_>) -> Option<ast::Transition> {
        let span = self.tight_span(&pair);
        let mut name = None;
        let mut from = Vec::new();
        let mut to = None;
        let mut trigger = None;
        let mut guard = None;
        for child in children(pair) {
            match child.as_rule() {
                // The transition's name comes before `from`, the target state after `to`.
                Rule::name if name.is_none() => name = Some(self.name(&child)),
                Rule::name => to = Some(self.name(&child)),
                Rule::from_states => {
                    for state in children(child) {
                        match state.as_rule() {
                            Rule::name => from.push(self.name(&state)),
                            _ => self.bug(&state, "the source states of a transition"),
                        }
                    }
                }
                Rule::when_trigger => {
                    let expr = children(child).next().and_then(|e| self.lower_expr(e));
                    trigger = expr.map(ast::Trigger::When);
                }
                Rule::after_trigger => {
                    let value = children(child).next().and_then(|v| self.lower_value(v));
                    trigger = value.map(ast::Trigger::After);
                }
                Rule::kw_manual => trigger = Some(ast::Trigger::Manual(self.span(&child))),
                Rule::guard => guard = children(child).next().and_then(|e| self.lower_expr(e)),
                _ => self.bug(&child, "a transition"),
            }
        }
        Some(ast::Transition {
            name: name?,
            from,
            to: to?,
            trigger: trigger?,
            guard,
            span,
        })
    }

    fn lower_test(&mut self, pair: P<'_>) -> ast::Test {
        let span = self.span(&pair);
        let mut name = None;
        let mut at = None;
        let mut expects = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::string => name = Some(self.string_lit(child)),
                Rule::test_at => at = children(child).next().and_then(|v| self.lower_value(v)),
                Rule::expect => expects.extend(self.lower_expect(child)),
                _ => self.bug(&child, "a test"),
            }
        }
        ast::Test {
            name: name.unwrap_or_else(|| ast::StringLit {
                value: String::new(),
                span,
            }),
            at,
            expects,
            span,
        }
    }

    fn lower_expect(&mut self, pair: P<'_>) -> Option<ast::Expect> {
        let span = self.tight_span(&pair);
        let mut subject = None;
        let mut expr = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::tier_subject => {
                    let tier = children(child).next().map(|n| self.name(&n));
                    subject = tier.map(ast::Subject::Tier);
                }
                Rule::customer_subject => {
                    let key = children(child).next().map(|n| self.name(&n));
                    subject = key.map(ast::Subject::Customer);
                }
                Rule::expr => expr = self.lower_expr(child),
                _ => self.bug(&child, "an expectation"),
            }
        }
        Some(ast::Expect {
            subject: subject?,
            expr: expr?,
            span,
        })
    }

    fn lower_block(&mut self, pair: P<'_>) -> ast::Block {
        let span = self.span(&pair);
        let mut assignments = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::assignment => {
                    if let Some(a) = self.lower_assignment(child) {
                        assignments.push(a);
                    }
                }
                _ => self.bug(&child, "a block"),
            }
        }
        ast::Block { assignments, span }
    }

    fn lower_assignment(&mut self, pair: P<'_>) -> Option<ast::Assignment> {
        let span = self.span(&pair);
        let mut field = None;
        let mut op = None;
        let mut value = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::field => field = Some(self.ident(&child)),
                Rule::assign_op => op = Some(self.lower_assign_op(&child)),
                Rule::value => value = self.lower_value(child),
                _ => self.bug(&child, "an assignment"),
            }
        }
        let (op, op_span) = op?;
        Some(ast::Assignment {
            field: field?,
            op,
            op_span,
            value: value?,
            span,
        })
    }

    fn lower_assign_op(&mut self, pair: &P<'_>) -> (AssignOp, Span) {
        let op = match pair.as_str() {
            "+=" => AssignOp::Add,
            "-=" => AssignOp::Sub,
            "*=" => AssignOp::Mul,
            _ => AssignOp::Set,
        };
        (op, self.span(pair))
    }

    fn lower_value(&mut self, pair: P<'_>) -> Option<ast::Value> {
        let inner = children(pair).next()?;
        let span = self.span(&inner);
        let kind = match inner.as_rule() {
            Rule::list => {
                let mut values = Vec::new();
                for child in children(inner) {
                    match child.as_rule() {
                        Rule::value => values.extend(self.lower_value(child)),
                        _ => self.bug(&child, "a list"),
                    }
                }
                ValueKind::List(values)
            }
            Rule::string => ValueKind::String(self.lower_string(inner)),
            Rule::boolean => ValueKind::Bool(inner.as_str() == "true"),
            Rule::date => ValueKind::Date(self.lower_date(&inner)?),
            Rule::quantity => return self.lower_quantity(inner),
            Rule::word => ValueKind::Word(inner.as_str().to_string()),
            _ => {
                self.bug(&inner, "a value");
                return None;
            }
        };
        Some(ast::Value { kind, span })
    }

    fn lower_quantity(&mut self, pair: P<'_>) -> Option<ast::Value> {
        let span = self.span(&pair);
        let mut number = None;
        let mut unit = None;
        for child in children(pair) {
            match child.as_rule() {
                Rule::number => number = self.lower_number(&child),
                Rule::unit => unit = Some(self.ident(&child)),
                _ => self.bug(&child, "a number"),
            }
        }
        let number = number?;
        let kind = match unit {
            Some(unit) => ValueKind::Quantity { number, unit },
            None => ValueKind::Number(number),
        };
        Some(ast::Value { kind, span })
    }

    fn lower_number(&mut self, pair: &P<'_>) -> Option<ast::Number> {
        let span = self.span(pair);
        let text = pair.as_str();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let mut digits: u128 = 0;
        for c in whole.chars().chain(fraction.chars()) {
            let Some(d) = c.to_digit(10) else { continue };
            let next = digits
                .checked_mul(10)
                .and_then(|n| n.checked_add(u128::from(d)));
            match next {
                Some(n) => digits = n,
                None => {
                    self.errors.push(
                        Diagnostic::error("charter::overflow", "number is too large")
                            .with_label(span, "does not fit in 64 bits"),
                    );
                    return None;
                }
            }
        }
        Some(ast::Number {
            digits,
            scale: u32::try_from(fraction.len()).unwrap_or(u32::MAX),
            span,
        })
    }

    fn lower_date(&mut self, pair: &P<'_>) -> Option<ast::Date> {
        let text = pair.as_str();
        let has_time = text.contains('T');
        let parsed = if has_time {
            let normalized = if text.len() == "2027-01-31T09:00Z".len() {
                format!("{}:00Z", text.trim_end_matches('Z'))
            } else {
                text.to_string()
            };
            normalized
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .map_err(|e| e.to_string())
        } else {
            format!("{text}T00:00:00Z")
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .map_err(|e| e.to_string())
        };
        match parsed {
            Ok(unix_seconds) => Some(ast::Date {
                unix_seconds,
                has_time,
            }),
            Err(_) => {
                self.errors.push(
                    Diagnostic::error(
                        "charter::invalid_date",
                        format!("`{text}` is not a valid date"),
                    )
                    .with_label(self.span(pair), "no such day or time")
                    .with_help(
                        "write a date as `2027-01-31` or an instant as `2027-01-31T09:00:00Z`",
                    ),
                );
                None
            }
        }
    }

    fn lower_string(&mut self, pair: P<'_>) -> String {
        let outer = self.span(&pair);
        let Some(inner) = pair.into_inner().next() else {
            return String::new();
        };
        let raw = inner.as_str();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                other => {
                    let start = outer.start as usize + 1 + i;
                    let len = 1 + other.map_or(0, |(_, c)| c.len_utf8());
                    self.errors.push(
                        Diagnostic::error("charter::invalid_escape", "unknown escape in string")
                            .with_label(Span::new(self.file, start, start + len), "not an escape")
                            .with_help(r#"the escapes are `\"`, `\\`, `\n` and `\t`"#),
                    );
                }
            }
        }
        out
    }

    pub(super) fn lower_expr(&mut self, pair: P<'_>) -> Option<ast::Expr> {
        self.expr(pair).map(|(expr, _)| expr)
    }

    /// An expression and the depth of its tree. Every later stage walks expressions
    /// recursively, so a tree deeper than [`MAX_EXPR_DEPTH`] (a chain of hundreds of
    /// operators) is refused here, before it is even built whole.
    ///
    /// The grammar reads an expression flat (operands joined by logical operators, each
    /// operand `not`s and terms joined by at most one comparison); the tree is built from that
    /// sequence by precedence, with pest's Pratt parser and the table [`PRECEDENCE`].
    fn expr(&mut self, pair: P<'_>) -> Option<(ast::Expr, usize)> {
        if pair.as_rule() != Rule::expr {
            self.bug(&pair, "an expression");
            return None;
        }
        let tokens: Vec<P<'_>> = pair
            .into_inner()
            .flat_map(|p| match p.as_rule() {
                Rule::operand => p.into_inner().collect(),
                _ => vec![p],
            })
            .collect();
        if tokens.is_empty() {
            return None;
        }
        // Each of the three maps lowers and reports through `self`; the Pratt parser calls
        // them one at a time, never inside one another.
        let this = RefCell::new(self);
        PRECEDENCE
            .map_primary(|atom| this.borrow_mut().atom(atom))
            .map_prefix(|not, operand| {
                let (operand, depth) = operand?;
                let mut this = this.borrow_mut();
                let span = this.span(&not).to(operand.span);
                let expr = ast::Expr {
                    kind: ExprKind::Not(Box::new(operand)),
                    span,
                };
                this.deeper(expr, depth)
            })
            .map_infix(|lhs, op_pair, rhs| {
                let mut this = this.borrow_mut();
                let op = this.binary_op(&op_pair)?;
                let ((lhs, lhs_depth), (rhs, rhs_depth)) = (lhs?, rhs?);
                let span = lhs.span.to(rhs.span);
                let expr = ast::Expr {
                    kind: ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    span,
                };
                this.deeper(expr, lhs_depth.max(rhs_depth))
            })
            .parse(tokens.into_iter())
    }

    /// An operand of an expression: a parenthesised expression, a literal or a reference.
    fn atom(&mut self, pair: P<'_>) -> Option<(ast::Expr, usize)> {
        let span = self.tight_span(&pair);
        match pair.as_rule() {
            Rule::paren => {
                let inner = children(pair).next()?;
                let (inner, depth) = self.expr(inner)?;
                let expr = ast::Expr {
                    kind: ExprKind::Paren(Box::new(inner)),
                    span,
                };
                self.deeper(expr, depth)
            }
            Rule::literal => {
                let value = self.lower_literal(pair)?;
                let expr = ast::Expr {
                    kind: ExprKind::Literal(value),
                    span,
                };
                Some((expr, 1))
            }
            Rule::reference => {
                let words: Vec<ast::Ident> = children(pair).map(|p| self.ident(&p)).collect();
                let kind = match words.as_slice() {
                    [name] => ExprKind::Reference {
                        qualifier: None,
                        name: name.clone(),
                    },
                    [qualifier, name] => ExprKind::Reference {
                        qualifier: Some(qualifier.clone()),
                        name: name.clone(),
                    },
                    _ => return None,
                };
                Some((ast::Expr { kind, span }, 1))
            }
            _ => {
                self.bug(&pair, "an expression");
                None
            }
        }
    }

    fn binary_op(&mut self, pair: &P<'_>) -> Option<BinaryOp> {
        Some(match (pair.as_rule(), pair.as_str()) {
            (Rule::kw_implies, _) => BinaryOp::Implies,
            (Rule::kw_or, _) => BinaryOp::Or,
            (Rule::kw_and, _) => BinaryOp::And,
            (_, "==") => BinaryOp::Eq,
            (_, "!=") => BinaryOp::Ne,
            (_, "<=") => BinaryOp::Le,
            (_, ">=") => BinaryOp::Ge,
            (_, "<") => BinaryOp::Lt,
            (_, ">") => BinaryOp::Gt,
            (_, "+") => BinaryOp::Add,
            (_, "-") => BinaryOp::Sub,
            (_, "*") => BinaryOp::Mul,
            (_, "/") => BinaryOp::Div,
            _ => {
                self.bug(pair, "an operator");
                return None;
            }
        })
    }

    /// `expr`, one level above a subtree `depth` deep, unless that is too deep.
    fn deeper(&mut self, expr: ast::Expr, depth: usize) -> Option<(ast::Expr, usize)> {
        if depth < MAX_EXPR_DEPTH {
            return Some((expr, depth + 1));
        }
        self.errors.push(
            Diagnostic::error("charter::too_deep", "expression is too deep")
                .with_label(
                    expr.span,
                    format!("more than {MAX_EXPR_DEPTH} levels of operators and parentheses"),
                )
                .with_help("split it into several rules"),
        );
        None
    }

    fn lower_literal(&mut self, pair: P<'_>) -> Option<ast::Value> {
        let inner = children(pair).next()?;
        let span = self.span(&inner);
        let kind = match inner.as_rule() {
            Rule::string => ValueKind::String(self.lower_string(inner)),
            Rule::boolean => ValueKind::Bool(inner.as_str() == "true"),
            Rule::date => ValueKind::Date(self.lower_date(&inner)?),
            Rule::quantity => return self.lower_quantity(inner),
            _ => {
                self.bug(&inner, "a literal");
                return None;
            }
        };
        Some(ast::Value { kind, span })
    }
}

fn missing_ident(span: Span) -> ast::Ident {
    ast::Ident {
        name: String::new(),
        span,
    }
}

fn empty_block(span: Span) -> ast::Block {
    ast::Block {
        assignments: Vec::new(),
        span,
    }
}

/// The length of `text` up to the end of its last character that is neither spacing nor part of
/// a comment (a `#` inside a string is text).
fn significant_len(text: &str) -> usize {
    let mut end = 0;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
            }
            continue;
        }
        if in_string {
            end = i + c.len_utf8();
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' => {
                in_string = true;
                end = i + c.len_utf8();
            }
            c if c.is_whitespace() => {}
            c => end = i + c.len_utf8(),
        }
    }
    end
}

#[cfg(test)]
mod tests;
