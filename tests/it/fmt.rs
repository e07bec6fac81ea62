//! The formatter: snapshots of real and messy policy files, and the three guarantees of
//! `charter fmt` as properties over generated policy text.
//!
//! - Idempotent: formatting formatted text changes nothing.
//! - Meaning preserved: the formatted text parses to the same AST, spans aside.
//! - No comment lost: the formatted text holds the same comments, as a multiset.

#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test helpers fail the test they run in by panicking"
)]

use charter::ast::{self, ExprKind, Item, Scope, ValueKind};
use charter::source::{FileId, Sources, Span};
use charter::syntax;
use proptest::prelude::*;
use proptest::test_runner::Config;

// ---------------------------------------------------------------------------------------------
// Helpers

fn parse(text: &str) -> Result<ast::File, String> {
    let mut sources = Sources::new();
    let id = sources.add("test.charter", text);
    syntax::parse(&sources, id).map_err(|errors| format!("{errors:?}"))
}

/// Parses `text` and formats it, failing with the text when it does not parse.
fn format(text: &str) -> String {
    match syntax::format_source("test.charter", text) {
        Ok(formatted) => formatted,
        Err(errors) => panic!("does not parse: {errors:?}\n---\n{text}"),
    }
}

/// The AST of `text` with every span cleared, so that two layouts of one file compare equal.
fn meaning(text: &str) -> ast::File {
    let mut file = match parse(text) {
        Ok(file) => file,
        Err(errors) => panic!("does not parse: {errors}\n---\n{text}"),
    };
    for item in &mut file.items {
        strip_item(item);
    }
    file
}

const NOWHERE: Span = Span {
    file: FileId(0),
    start: 0,
    end: 0,
};

fn strip_ident(ident: &mut ast::Ident) {
    ident.span = NOWHERE;
}

fn strip_item(item: &mut Item) {
    match item {
        Item::Instance(instance) => {
            instance.keyword = NOWHERE;
            instance.span = NOWHERE;
            strip_block(&mut instance.body);
        }
        Item::Tier(tier) => {
            strip_ident(&mut tier.name);
            if let Some(parent) = &mut tier.extends {
                strip_ident(parent);
            }
            strip_block(&mut tier.body);
            tier.span = NOWHERE;
        }
        Item::Addon(addon) => {
            strip_ident(&mut addon.name);
            strip_block(&mut addon.body);
            addon.span = NOWHERE;
        }
        Item::Group(group) => {
            strip_ident(&mut group.name);
            group.members.iter_mut().for_each(strip_ident);
            group.span = NOWHERE;
        }
        Item::Ladder(ladder) => {
            ladder.tiers.iter_mut().for_each(strip_ident);
            ladder.span = NOWHERE;
        }
        Item::Assert(assert) => {
            match &mut assert.scope {
                Scope::All(span) => *span = NOWHERE,
                Scope::Tiers(tiers) => tiers.iter_mut().for_each(strip_ident),
            }
            strip_expr(&mut assert.expr);
            if let Some(message) = &mut assert.message {
                message.span = NOWHERE;
            }
            assert.span = NOWHERE;
        }
        Item::Customer(customer) => {
            strip_ident(&mut customer.key);
            for statement in &mut customer.body {
                match statement {
                    ast::Statement::Assign(assignment) => strip_assignment(assignment),
                    ast::Statement::Nested(nested) => {
                        strip_ident(&mut nested.keyword);
                        if let Some(label) = &mut nested.label {
                            label.span = NOWHERE;
                        }
                        strip_block(&mut nested.body);
                        nested.span = NOWHERE;
                    }
                }
            }
            customer.body_span = NOWHERE;
            customer.span = NOWHERE;
        }
        Item::Roster(roster) => {
            roster.path.span = NOWHERE;
            roster.span = NOWHERE;
        }
        Item::Staff(staff) => {
            staff.email.span = NOWHERE;
            strip_block(&mut staff.body);
            staff.span = NOWHERE;
        }
        Item::Lifecycle(lifecycle) => {
            lifecycle.keyword = NOWHERE;
            lifecycle.items.iter_mut().for_each(strip_lifecycle_item);
            lifecycle.span = NOWHERE;
        }
        Item::Test(test) => {
            test.name.span = NOWHERE;
            if let Some(at) = &mut test.at {
                strip_value(at);
            }
            for expect in &mut test.expects {
                match &mut expect.subject {
                    ast::Subject::Tier(name) | ast::Subject::Customer(name) => strip_ident(name),
                }
                strip_expr(&mut expect.expr);
                expect.span = NOWHERE;
            }
            test.span = NOWHERE;
        }
    }
}

fn strip_lifecycle_item(item: &mut ast::LifecycleItem) {
    match item {
        ast::LifecycleItem::Initial { state, span } => {
            strip_ident(state);
            *span = NOWHERE;
        }
        ast::LifecycleItem::State(state) => {
            strip_ident(&mut state.name);
            for statement in &mut state.body {
                match statement {
                    ast::StateStatement::License {
                        source,
                        overlays,
                        span,
                    } => {
                        strip_ident(source);
                        for overlay in overlays {
                            strip_ident(&mut overlay.target);
                            strip_value(&mut overlay.value);
                            overlay.span = NOWHERE;
                        }
                        *span = NOWHERE;
                    }
                    ast::StateStatement::Owner { value, span } => {
                        strip_ident(value);
                        *span = NOWHERE;
                    }
                    ast::StateStatement::Demote {
                        parties,
                        role,
                        span,
                    } => {
                        parties.iter_mut().for_each(strip_ident);
                        strip_ident(role);
                        *span = NOWHERE;
                    }
                }
            }
            state.span = NOWHERE;
        }
        ast::LifecycleItem::Transition(transition) => {
            strip_ident(&mut transition.name);
            transition.from.iter_mut().for_each(strip_ident);
            strip_ident(&mut transition.to);
            match &mut transition.trigger {
                ast::Trigger::When(expr) => strip_expr(expr),
                ast::Trigger::After(value) => strip_value(value),
                ast::Trigger::Manual(span) => *span = NOWHERE,
            }
            if let Some(guard) = &mut transition.guard {
                strip_expr(guard);
            }
            transition.span = NOWHERE;
        }
    }
}

fn strip_block(block: &mut ast::Block) {
    block.span = NOWHERE;
    block.assignments.iter_mut().for_each(strip_assignment);
}

fn strip_assignment(assignment: &mut ast::Assignment) {
    strip_ident(&mut assignment.field);
    assignment.op_span = NOWHERE;
    strip_value(&mut assignment.value);
    assignment.span = NOWHERE;
}

fn strip_value(value: &mut ast::Value) {
    value.span = NOWHERE;
    match &mut value.kind {
        ValueKind::Number(number) => number.span = NOWHERE,
        ValueKind::Quantity { number, unit } => {
            number.span = NOWHERE;
            strip_ident(unit);
        }
        ValueKind::List(values) => values.iter_mut().for_each(strip_value),
        ValueKind::Bool(_) | ValueKind::String(_) | ValueKind::Date(_) | ValueKind::Word(_) => {}
    }
}

fn strip_expr(expr: &mut ast::Expr) {
    expr.span = NOWHERE;
    match &mut expr.kind {
        ExprKind::Literal(value) => strip_value(value),
        ExprKind::Reference { qualifier, name } => {
            if let Some(qualifier) = qualifier {
                strip_ident(qualifier);
            }
            strip_ident(name);
        }
        ExprKind::Not(operand) | ExprKind::Paren(operand) => strip_expr(operand),
        ExprKind::Binary { lhs, rhs, .. } => {
            strip_expr(lhs);
            strip_expr(rhs);
        }
    }
}

/// The comments of `text`, without trailing blanks, sorted: a multiset. Written apart from
/// the formatter's own scanner so that one checks the other.
fn comments(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.split(['\n', '\r']) {
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if c == '#' {
                found.push(line[i..].trim_end().to_string());
                break;
            }
        }
    }
    found.sort();
    found
}

/// Checks the three guarantees on one text.
fn check_guarantees(text: &str) {
    let formatted = format(text);
    assert_eq!(format(&formatted), formatted, "not idempotent on\n{text}");
    assert_eq!(
        meaning(&formatted),
        meaning(text),
        "meaning changed:\n{text}\n---\n{formatted}"
    );
    assert_eq!(
        comments(&formatted),
        comments(text),
        "comments changed:\n{text}\n---\n{formatted}"
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshots

fn snapshot_file(path: &str) -> String {
    let text = std::fs::read_to_string(path).expect("the fixture is readable");
    check_guarantees(&text);
    format(&text)
}

#[test]
fn acme_instance_snapshot() {
    insta::assert_snapshot!(snapshot_file("policies/acme/instance.charter"));
}

#[test]
fn acme_tiers_snapshot() {
    insta::assert_snapshot!(snapshot_file("policies/acme/tiers.charter"));
}

#[test]
fn acme_addons_snapshot() {
    insta::assert_snapshot!(snapshot_file("policies/acme/addons.charter"));
}

#[test]
fn acme_rules_snapshot() {
    insta::assert_snapshot!(snapshot_file("policies/acme/rules.charter"));
}

#[test]
fn messy_snapshot() {
    insta::assert_snapshot!(snapshot_file("tests/fmt/messy.charter"));
}

#[test]
fn customers_and_lifecycle_snapshot() {
    insta::assert_snapshot!(snapshot_file("tests/fmt/customers.charter"));
}

#[test]
fn the_instance_example_is_already_canonical() {
    let text = std::fs::read_to_string("policies/acme/instance.charter").expect("readable");
    assert_eq!(format(&text), text);
}

/// Every `.charter` file under `dir`, at any depth, in name order.
fn charter_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the directory is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            charter_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "charter") {
            found.push(path);
        }
    }
}

#[test]
fn every_policy_file_in_the_repository_keeps_the_guarantees() {
    let mut files = Vec::new();
    charter_files(std::path::Path::new("policies"), &mut files);
    charter_files(std::path::Path::new("tests"), &mut files);
    let mut formatted = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("the file is readable");
        // Fixtures of syntax errors do not parse, and there is nothing to format.
        if parse(&text).is_ok() {
            check_guarantees(&text);
            formatted += 1;
        }
    }
    assert!(
        formatted >= 5,
        "only {formatted} of {} files parse",
        files.len()
    );
}

#[test]
fn the_comment_scanner_of_these_tests_sees_strings() {
    assert_eq!(
        comments("a = \"#no \\\"#no\\\" \\\\\" #yes  \n# two\r\nb = \"\" #three"),
        vec!["# two", "#three", "#yes"]
    );
}

// ---------------------------------------------------------------------------------------------
// Generated policy text
//
// The generator follows the grammar, so every text it makes parses (the properties fail if one
// does not): random blanks, `;` and blank-line runs as separators, comments at the end of any
// line (the only place the grammar allows one), line breaks wherever the grammar has a gap
// (lists, group and ladder members, the states of a transition, overlays and demoted parties,
// after operators and `with`, inside parentheses), and expressions built as trees and printed
// with the parentheses their shape needs plus some of their own. Every declaration of the
// language is made, customers, the lifecycle and tests included.

fn pick(options: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(options)
        .prop_map(str::to_string)
        .boxed()
}

/// Blanks, maybe none.
fn blanks() -> BoxedStrategy<String> {
    pick(&["", "", " ", "  ", "\t", " \t "])
}

/// At least one blank.
fn blanks1() -> BoxedStrategy<String> {
    pick(&[" ", " ", "  ", "\t", " \t "])
}

fn comment() -> BoxedStrategy<String> {
    "#[ \ta-z#\"{};=\\[\\]é—]{0,12}".boxed()
}

/// The end of a line: blanks, maybe a comment, a line break.
fn line_end() -> BoxedStrategy<String> {
    (
        blanks(),
        proptest::option::weighted(0.4, comment()),
        pick(&["\n", "\n", "\n", "\n", "\r\n", "\r"]),
    )
        .prop_map(|(blanks, comment, newline)| {
            format!("{blanks}{}{newline}", comment.unwrap_or_default())
        })
        .boxed()
}

/// What separates statements and declarations: `;`s and line ends, at least one.
fn sep() -> BoxedStrategy<String> {
    proptest::collection::vec(
        prop_oneof![
            (blanks(), blanks()).prop_map(|(a, b)| format!("{a};{b}")),
            line_end(),
            line_end(),
        ],
        1..4,
    )
    .prop_map(|parts| parts.concat())
    .boxed()
}

/// Where a line may break: blanks, any number of line ends, blanks.
fn gap() -> BoxedStrategy<String> {
    (
        blanks(),
        proptest::collection::vec(line_end(), 0..3),
        blanks(),
    )
        .prop_map(|(a, lines, b)| format!("{a}{}{b}", lines.concat()))
        .boxed()
}

/// A gap after an operator word, which must not run into the next word.
fn word_gap() -> BoxedStrategy<String> {
    prop_oneof![
        blanks1(),
        (
            blanks1(),
            proptest::collection::vec(line_end(), 1..3),
            blanks()
        )
            .prop_map(|(a, lines, b)| format!("{a}{}{b}", lines.concat())),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<String> {
    "[0-9]{1,3}(_[0-9]{3}){0,2}(\\.[0-9]{1,2})?".boxed()
}

fn quantity() -> BoxedStrategy<String> {
    (
        number(),
        pick(&["", " ", "  "]),
        pick(&["min", "h", "days", "MB", "GiB", "s", "weeks", "B"]),
    )
        .prop_map(|(n, space, unit)| format!("{n}{space}{unit}"))
        .boxed()
}

fn string() -> BoxedStrategy<String> {
    proptest::collection::vec(
        pick(&[
            "a", "z", " ", "#", "@", ".", "{", "}", ";", "\\\"", "\\\\", "\\n", "\\t", "\t", "é",
        ]),
        0..8,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
    .boxed()
}

fn scalar() -> BoxedStrategy<String> {
    prop_oneof![
        number(),
        quantity(),
        string(),
        pick(&["true", "false"]),
        pick(&["2027-01-31", "2027-01-31T09:00:00Z", "2027-02-28T23:59Z"]),
        pick(&[
            "monthly",
            "yearly",
            "feature_variables",
            "extra_ops",
            "a_long_enough_word_to_push_a_list_past_one_hundred_columns",
        ]),
    ]
    .boxed()
}

fn list_of(element: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (
        gap(),
        proptest::collection::vec((element, gap(), gap()), 0..6),
        proptest::option::of(gap()),
    )
        .prop_map(|(first_gap, elements, trailing_comma)| {
            let mut out = format!("[{first_gap}");
            let count = elements.len();
            for (i, (element, after, after_comma)) in elements.into_iter().enumerate() {
                out.push_str(&element);
                out.push_str(&after);
                if i + 1 < count {
                    out.push(',');
                    out.push_str(&after_comma);
                } else if let Some(gap) = &trailing_comma {
                    out.push(',');
                    out.push_str(gap);
                }
            }
            out.push(']');
            out
        })
        .boxed()
}

fn value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => scalar(),
        1 => list_of(scalar()),
        1 => list_of(prop_oneof![3 => scalar(), 1 => list_of(scalar())].boxed()),
    ]
    .boxed()
}

fn assignment() -> BoxedStrategy<String> {
    (
        pick(&[
            "operations",
            "transfer",
            "interval",
            "apiLimit",
            "flags",
            "dummy_owner",
            "tier",
            "admins",
        ]),
        blanks(),
        pick(&["=", "=", "+=", "-=", "*="]),
        blanks(),
        value(),
    )
        .prop_map(|(field, a, op, b, value)| format!("{field}{a}{op}{b}{value}"))
        .boxed()
}

fn block() -> BoxedStrategy<String> {
    block_of(assignment())
}

/// A block of `statement`s, maybe empty, with separators around and between them.
fn block_of(statement: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (
        blanks(),
        proptest::option::of(sep()),
        proptest::collection::vec((statement.clone(), sep()), 0..5),
        statement,
        proptest::option::of(sep()),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(before, open_sep, statements, last, close_sep, empty)| {
            let mut out = format!("{before}{{{}", open_sep.unwrap_or_default());
            if !empty {
                for (statement, sep) in statements {
                    out.push_str(&statement);
                    out.push_str(&sep);
                }
                out.push_str(&last);
            }
            out.push_str(&close_sep.unwrap_or_default());
            out.push('}');
            out
        })
        .boxed()
}

fn tier_name() -> BoxedStrategy<String> {
    pick(&[
        "free",
        "core",
        "pro",
        "teams",
        "enterprise",
        "base",
        "gold_2",
    ])
}

/// An expression tree, printed by [`GenExpr::print`].
#[derive(Clone, Debug)]
enum GenExpr {
    Atom(String),
    Not {
        blanks: String,
        operand: Box<GenExpr>,
    },
    Binary {
        op: &'static str,
        before: String,
        after: String,
        lhs: Box<GenExpr>,
        rhs: Box<GenExpr>,
    },
    Paren {
        open: String,
        close: String,
        inner: Box<GenExpr>,
    },
}

fn precedence_of(op: &str) -> u8 {
    match op {
        "implies" => 1,
        "or" => 2,
        "and" => 3,
        "==" | "!=" | "<" | "<=" | ">" | ">=" => 5,
        "+" | "-" => 6,
        _ => 7,
    }
}

impl GenExpr {
    fn precedence(&self) -> u8 {
        match self {
            GenExpr::Atom(_) | GenExpr::Paren { .. } => 8,
            GenExpr::Not { .. } => 4,
            GenExpr::Binary { op, .. } => precedence_of(op),
        }
    }

    /// Prints the tree, adding the parentheses that its shape needs to parse back to it.
    fn print(&self) -> String {
        match self {
            GenExpr::Atom(atom) => atom.clone(),
            GenExpr::Not { blanks, operand } => {
                format!("not{blanks}{}", operand.operand(operand.precedence() < 4))
            }
            GenExpr::Binary {
                op,
                before,
                after,
                lhs,
                rhs,
            } => {
                let p = precedence_of(op);
                let comparison = p == 5;
                let lhs =
                    lhs.operand(lhs.precedence() < p || (comparison && lhs.precedence() == 5));
                let rhs = rhs.operand(rhs.precedence() <= p);
                format!("{lhs}{before}{op}{after}{rhs}")
            }
            GenExpr::Paren { open, close, inner } => format!("({open}{}{close})", inner.print()),
        }
    }

    fn operand(&self, parenthesize: bool) -> String {
        if parenthesize {
            format!("({})", self.print())
        } else {
            self.print()
        }
    }
}

fn atom() -> BoxedStrategy<GenExpr> {
    prop_oneof![
        3 => pick(&[
            "operations",
            "transfer",
            "core.operations",
            "pro.apiLimit",
            "state",
            "frozen",
            "interval",
            "fulltext",
        ]),
        1 => number(),
        1 => quantity(),
        1 => string(),
        1 => pick(&["true", "false", "2027-01-31"]),
    ]
    .prop_map(GenExpr::Atom)
    .boxed()
}

fn expr() -> BoxedStrategy<GenExpr> {
    atom()
        .prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (
                    proptest::sample::select(&["implies", "or", "and"][..]),
                    blanks1(),
                    word_gap(),
                    inner.clone(),
                    inner.clone()
                )
                    .prop_map(|(op, before, after, lhs, rhs)| binary(op, before, after, lhs, rhs)),
                (
                    proptest::sample::select(
                        &["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"][..]
                    ),
                    blanks(),
                    gap(),
                    inner.clone(),
                    inner.clone()
                )
                    .prop_map(|(op, before, after, lhs, rhs)| binary(op, before, after, lhs, rhs)),
                (blanks1(), inner.clone()).prop_map(|(blanks, operand)| GenExpr::Not {
                    blanks,
                    operand: Box::new(operand)
                }),
                (gap(), gap(), inner).prop_map(|(open, close, inner)| GenExpr::Paren {
                    open,
                    close,
                    inner: Box::new(inner)
                }),
            ]
        })
        .boxed()
}

fn binary(op: &'static str, before: String, after: String, lhs: GenExpr, rhs: GenExpr) -> GenExpr {
    GenExpr::Binary {
        op,
        before,
        after,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn item() -> BoxedStrategy<String> {
    let tier = (
        proptest::bool::ANY,
        blanks1(),
        tier_name(),
        proptest::option::of((blanks1(), blanks1(), tier_name())),
        block(),
    )
        .prop_map(|(is_abstract, b, name, extends, block)| {
            let abstract_ = if is_abstract { "abstract " } else { "" };
            let extends = extends
                .map(|(a, b, parent)| format!("{a}extends{b}{parent}"))
                .unwrap_or_default();
            format!("{abstract_}tier{b}{name}{extends}{block}")
        });
    let addon = (blanks1(), tier_name(), block())
        .prop_map(|(b, name, block)| format!("addon{b}{name}{block}"));
    let instance = block().prop_map(|block| format!("instance{block}"));
    let group = (
        blanks1(),
        tier_name(),
        blanks(),
        gap(),
        proptest::collection::vec((gap(), gap(), tier_name()), 0..4),
    )
        .prop_map(|(b, name, before, after, members)| {
            let mut out = format!("group{b}{name}{before}={after}operations");
            for (before, after, member) in members {
                out.push_str(&format!("{before},{after}{member}"));
            }
            out
        });
    let ladder = (
        blanks1(),
        tier_name(),
        proptest::collection::vec((gap(), gap(), tier_name()), 1..4),
    )
        .prop_map(|(b, first, rest)| {
            let mut out = format!("assert{b}ladder {first}");
            for (before, after, tier) in rest {
                out.push_str(&format!("{before}<{after}{tier}"));
            }
            out
        });
    let scope = prop_oneof![
        Just("all".to_string()),
        (
            tier_name(),
            proptest::collection::vec((blanks(), gap(), tier_name()), 0..3)
        )
            .prop_map(|(first, rest)| {
                let mut out = first;
                for (before, after, tier) in rest {
                    out.push_str(&format!("{before},{after}{tier}"));
                }
                out
            }),
    ];
    let assert = (
        blanks1(),
        scope,
        blanks(),
        gap(),
        expr(),
        proptest::option::of((blanks(), string())),
    )
        .prop_map(|(b, scope, before, after, expr, message)| {
            let message = message
                .map(|(blanks, message)| format!("{blanks}{message}"))
                .unwrap_or_default();
            format!(
                "assert{b}for {scope}{before}:{after}{}{message}",
                expr.print()
            )
        });
    let customer = (
        blanks1(),
        pick(&["acme", "globex", "initech"]),
        block_of(customer_statement()),
    )
        .prop_map(|(b, key, block)| format!("customer{b}{key}{block}"));
    let roster = (blanks(), string()).prop_map(|(b, path)| format!("roster{b}{path}"));
    let staff = (blanks(), string(), block())
        .prop_map(|(b, email, block)| format!("staff{b}{email}{block}"));
    prop_oneof![
        3 => tier,
        2 => addon,
        1 => instance,
        1 => group,
        1 => ladder,
        3 => assert,
        3 => customer,
        1 => roster,
        1 => staff,
        2 => lifecycle(),
        2 => test_block(),
    ]
    .boxed()
}

fn string_label() -> BoxedStrategy<String> {
    pick(&["\"Marketing\"", "\"Sales & Ops\"", "\"\""])
}

/// A statement of a customer block: an assignment or a nested block.
fn customer_statement() -> BoxedStrategy<String> {
    let nested = (
        pick(&["attributes", "override", "team", "tier"]),
        blanks(),
        proptest::option::of((string_label(), blanks())),
        block(),
    )
        .prop_map(|(keyword, b, label, block)| {
            let label = label
                .map(|(label, b)| format!("{label}{b}"))
                .unwrap_or_default();
            format!("{keyword}{b}{label}{block}")
        });
    prop_oneof![3 => assignment(), 1 => nested].boxed()
}

fn state_name() -> BoxedStrategy<String> {
    pick(&["active", "frozen", "deprovisioned", "gone_2"])
}

/// `first, rest…` with blanks before each comma and a gap after it.
fn comma_list(
    element: BoxedStrategy<String>,
    more: std::ops::Range<usize>,
) -> BoxedStrategy<String> {
    (
        element.clone(),
        proptest::collection::vec((blanks(), gap(), element), more),
    )
        .prop_map(|(first, rest)| {
            let mut out = first;
            for (before, after, element) in rest {
                out.push_str(&format!("{before},{after}{element}"));
            }
            out
        })
        .boxed()
}

/// A block of a lifecycle, state or test, whose statements are separated like declarations.
fn statements_block(statements: BoxedStrategy<Vec<String>>) -> BoxedStrategy<String> {
    (
        blanks(),
        proptest::option::of(sep()),
        statements,
        proptest::collection::vec(sep(), 16),
        proptest::option::of(sep()),
        blanks(),
    )
        .prop_map(|(before, open_sep, statements, seps, close_sep, after)| {
            let mut out = format!("{before}{{{}", open_sep.unwrap_or_default());
            for (i, statement) in statements.iter().enumerate() {
                if i > 0 {
                    out.push_str(&seps[i % seps.len()]);
                }
                out.push_str(statement);
            }
            out.push_str(&close_sep.unwrap_or_default());
            out.push_str(&after);
            out.push('}');
            out
        })
        .boxed()
}

fn state_statement() -> BoxedStrategy<String> {
    let overlay = (
        pick(&["consumables", "apiLimit", "operations", "restartPeriod"]),
        blanks(),
        blanks(),
        value(),
    )
        .prop_map(|(target, a, b, value)| format!("{target}{a}={b}{value}"))
        .boxed();
    let license = (
        blanks(),
        blanks(),
        proptest::option::of((blanks1(), word_gap(), comma_list(overlay, 0..3))),
    )
        .prop_map(|(a, b, with)| {
            let with = with
                .map(|(before, after, overlays)| format!("{before}with{after}{overlays}"))
                .unwrap_or_default();
            format!("license{a}={b}tier{with}")
        });
    let owner = (blanks(), blanks()).prop_map(|(a, b)| format!("owner{a}={b}dummy_owner"));
    let demote = (
        blanks1(),
        comma_list(pick(&["owner", "admins", "members"]), 0..3),
        blanks1(),
        blanks1(),
        pick(&["member", "monitor"]),
    )
        .prop_map(|(a, parties, b, c, role)| format!("demote{a}{parties}{b}to{c}{role}"));
    prop_oneof![2 => license, 1 => owner, 1 => demote].boxed()
}

fn lifecycle() -> BoxedStrategy<String> {
    let initial = (blanks1(), state_name()).prop_map(|(b, state)| format!("initial{b}{state}"));
    let state = (
        blanks1(),
        state_name(),
        statements_block(proptest::collection::vec(state_statement(), 0..4).boxed()),
    )
        .prop_map(|(b, name, block)| format!("state{b}{name}{block}"));
    let trigger = prop_oneof![
        (blanks1(), expr()).prop_map(|(b, expr)| format!("when{b}{}", expr.print())),
        (blanks1(), quantity()).prop_map(|(b, duration)| format!("after{b}{duration}")),
        Just("manual".to_string()),
    ];
    let transition = (
        (
            blanks1(),
            pick(&["freeze", "thaw", "cancel"]),
            blanks1(),
            blanks1(),
        ),
        comma_list(state_name(), 0..3),
        (blanks1(), blanks1(), state_name(), blanks1()),
        trigger,
        proptest::option::of((blanks1(), blanks1(), expr())),
    )
        .prop_map(|((a, name, b, c), from, (d, e, to, f), trigger, guard)| {
            let guard = guard
                .map(|(a, b, guard)| format!("{a}if{b}{}", guard.print()))
                .unwrap_or_default();
            format!("transition{a}{name}{b}from{c}{from}{d}to{e}{to}{f}{trigger}{guard}")
        });
    let entry = prop_oneof![1 => initial, 2 => state, 2 => transition].boxed();
    statements_block(proptest::collection::vec(entry, 0..5).boxed())
        .prop_map(|block| format!("lifecycle{block}"))
        .boxed()
}

fn test_block() -> BoxedStrategy<String> {
    let at = (
        blanks1(),
        prop_oneof![pick(&["2027-02-08", "2027-02-08T12:00Z"]), quantity(),],
    )
        .prop_map(|(b, value)| format!("at{b}{value}"));
    let expect = (
        blanks1(),
        prop_oneof![
            tier_name().prop_map(|tier| format!("tier {tier}")),
            pick(&["acme", "globex"]).prop_map(|key| format!("customer {key}")),
        ],
        blanks(),
        gap(),
        expr(),
    )
        .prop_map(|(a, subject, b, c, expr)| format!("expect{a}{subject}{b}:{c}{}", expr.print()));
    let statements = (
        proptest::option::of(at),
        proptest::collection::vec(expect, 0..3),
    )
        .prop_map(|(at, expects)| at.into_iter().chain(expects).collect::<Vec<_>>())
        .boxed();
    (blanks(), string(), statements_block(statements))
        .prop_map(|(b, name, block)| format!("test{b}{name}{block}"))
        .boxed()
}

/// A whole file: separators around and between declarations, maybe a comment at the very end
/// without a line break after it.
fn policy_text() -> BoxedStrategy<String> {
    (
        proptest::option::of(sep()),
        proptest::collection::vec((item(), sep()), 0..5),
        proptest::option::of(item()),
        proptest::option::of((blanks(), comment())),
    )
        .prop_map(|(leading, items, last, final_comment)| {
            let mut out = leading.unwrap_or_default();
            for (item, sep) in items {
                out.push_str(&item);
                out.push_str(&sep);
            }
            if let Some(item) = last {
                out.push_str(&item);
            }
            if let Some((blanks, comment)) = final_comment {
                out.push_str(&blanks);
                out.push_str(&comment);
            }
            out
        })
        .boxed()
}

/// The properties only cover what the generator makes: every kind of declaration, and the
/// optional parts of the newer ones, must turn up in a few hundred texts.
#[test]
fn the_generator_makes_every_kind_of_declaration() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = policy_text();
    let mut texts = String::new();
    for _ in 0..300 {
        let tree = strategy
            .new_tree(&mut runner)
            .expect("the generator makes a text");
        texts.push_str(&tree.current());
        texts.push('\n');
    }
    for construct in [
        "tier",
        "addon",
        "instance",
        "group",
        "ladder",
        "assert",
        "customer",
        "team",
        "roster",
        "staff",
        "lifecycle",
        "initial",
        "state",
        "license",
        "with",
        "owner",
        "demote",
        "transition",
        "when",
        "after",
        "manual",
        "if",
        "test",
        "at",
        "expect",
    ] {
        let found = texts.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
        assert!(
            found.into_iter().any(|word| word == construct),
            "no generated text holds `{construct}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(Config::with_cases(256))]

    #[test]
    fn generated_policy_text_parses(text in policy_text()) {
        prop_assert!(parse(&text).is_ok(), "the generator made text that does not parse:\n{}", text);
    }

    #[test]
    fn fmt_is_idempotent(text in policy_text()) {
        let once = format(&text);
        let twice = format(&once);
        prop_assert_eq!(twice, once, "input:\n{}", text);
    }

    #[test]
    fn fmt_preserves_meaning(text in policy_text()) {
        let formatted = format(&text);
        prop_assert_eq!(meaning(&formatted), meaning(&text), "input:\n{}\noutput:\n{}", text, formatted);
    }

    #[test]
    fn fmt_keeps_every_comment(text in policy_text()) {
        let formatted = format(&text);
        prop_assert_eq!(comments(&formatted), comments(&text), "input:\n{}\noutput:\n{}", text, formatted);
    }
}

impl GenExpr {
    /// The tree as an S-expression, without parentheses (which only shape it).
    fn tree(&self) -> String {
        match self {
            GenExpr::Atom(atom) => atom.clone(),
            GenExpr::Not { operand, .. } => format!("(not {})", operand.tree()),
            GenExpr::Binary { op, lhs, rhs, .. } => {
                format!("({op} {} {})", lhs.tree(), rhs.tree())
            }
            GenExpr::Paren { inner, .. } => inner.tree(),
        }
    }
}

/// A parsed expression as an S-expression like [`GenExpr::tree`]; atoms as written.
fn tree(text: &str, expr: &ast::Expr) -> String {
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Reference { .. } => {
            text[expr.span.start as usize..expr.span.end as usize].to_string()
        }
        ExprKind::Not(operand) => format!("(not {})", tree(text, operand)),
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.as_str(), tree(text, lhs), tree(text, rhs))
        }
        ExprKind::Paren(inner) => tree(text, inner),
    }
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    /// The parser builds the tree the precedence table says: an expression printed from a
    /// random tree (with only the parentheses its shape needs) parses back to that tree.
    #[test]
    fn expressions_parse_to_the_tree_their_precedence_gives(expr in expr()) {
        let text = format!("assert for all: {}\n", expr.print());
        let file = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let [Item::Assert(assert)] = file.items.as_slice() else {
            return Err(TestCaseError::fail(format!("not one assertion:\n{text}")));
        };
        prop_assert_eq!(tree(&text, &assert.expr), expr.tree(), "{}", text);
    }
}
