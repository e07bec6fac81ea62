//! Text to AST for customers, rosters, staff, the lifecycle and tests: each construct parses to
//! the expected shape, and spans cover exactly the tokens of their node.

use crate::ast::{
    self, Item, LifecycleItem, StateStatement, Statement, Subject, Trigger, ValueKind,
};
use crate::diagnostic::Diagnostic;
use crate::source::{Sources, Span};

/// Parses `text`, failing the test with the diagnostics when it does not parse.
#[track_caller]
fn parse(text: &str) -> Vec<Item> {
    let mut sources = Sources::new();
    let id = sources.add("test.charter", text);
    match super::super::parse(&sources, id) {
        Ok(file) => file.items,
        Err(errors) => panic!("{text:?} does not parse: {errors:#?}"),
    }
}

/// Parses `text`, which must not parse, and returns its first diagnostic.
#[track_caller]
fn parse_error(text: &str) -> Diagnostic {
    let mut sources = Sources::new();
    let id = sources.add("test.charter", text);
    match super::super::parse(&sources, id) {
        Ok(file) => panic!("{text:?} parses: {file:#?}"),
        Err(errors) => errors.into_iter().next().expect("an error is reported"),
    }
}

/// The text a span covers.
fn at(text: &str, span: Span) -> &str {
    &text[span.start as usize..span.end as usize]
}

#[track_caller]
fn only<T>(items: Vec<T>) -> T {
    assert_eq!(items.len(), 1, "expected exactly one");
    items.into_iter().next().expect("one item")
}

fn names(idents: &[ast::Ident]) -> Vec<&str> {
    idents.iter().map(|i| i.name.as_str()).collect()
}

const CUSTOMER: &str = r#"customer acme {
  name = "Acme Corp"
  tier = pro
  addons = [extra_ops]
  owner = "jane@acme.example"
  contract_end = 2027-01-31
  attributes { region = "eu"; payment = "ok" }
  override { operations = 55_000 }
  team "Marketing" { admins = ["raj@acme.example"]; members = ["li@acme.example"] }
}"#;

#[test]
fn a_customer_holds_assignments_and_nested_blocks_in_order() {
    let Item::Customer(customer) = only(parse(CUSTOMER)) else {
        panic!("not a customer");
    };
    assert_eq!(customer.key.name, "acme");
    assert_eq!(at(CUSTOMER, customer.span), CUSTOMER);
    assert!(at(CUSTOMER, customer.body_span).starts_with("{\n  name"));
    let shape: Vec<String> = customer
        .body
        .iter()
        .map(|statement| match statement {
            Statement::Assign(a) => format!("{} {} {}", a.field.name, a.op.as_str(), a.value),
            Statement::Nested(n) => format!(
                "{} {:?} {}",
                n.keyword.name,
                n.label.as_ref().map(|l| l.value.as_str()),
                names(
                    &n.body
                        .assignments
                        .iter()
                        .map(|a| a.field.clone())
                        .collect::<Vec<_>>()
                )
                .join(",")
            ),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "name = \"Acme Corp\"",
            "tier = pro",
            "addons = [extra_ops]",
            "owner = \"jane@acme.example\"",
            "contract_end = 2027-01-31",
            "attributes None region,payment",
            "override None operations",
            "team Some(\"Marketing\") admins,members",
        ]
    );
    let Some(Statement::Nested(team)) = customer.body.last() else {
        panic!("the last statement is the team");
    };
    assert!(at(CUSTOMER, team.span).starts_with("team \"Marketing\" {"));
    assert!(at(CUSTOMER, team.span).ends_with('}'));
    assert_eq!(
        at(CUSTOMER, team.label.as_ref().expect("label").span),
        "\"Marketing\""
    );
}

#[test]
fn keywords_are_field_words_in_a_customer() {
    let text = "customer c { tier = pro; owner = \"o@x.example\"; state = \"x\"; test{a=1}; customer \"x\" {} }";
    let Item::Customer(customer) = only(parse(text)) else {
        panic!("not a customer");
    };
    assert_eq!(customer.body.len(), 5);
    let Statement::Nested(nested) = &customer.body[3] else {
        panic!("`test{{…}}` is a nested block");
    };
    assert_eq!(nested.keyword.name, "test");
    assert!(nested.label.is_none());
}

#[test]
fn an_empty_customer_has_an_empty_body() {
    let Item::Customer(customer) = only(parse("customer c {\n  # nothing yet\n}")) else {
        panic!("not a customer");
    };
    assert!(customer.body.is_empty());
}

#[test]
fn a_customer_key_may_not_be_a_reserved_word() {
    let error = parse_error("customer state {}");
    assert_eq!(error.code, "charter::reserved_word");
    assert_eq!(error.message, "`state` is a reserved word");
}

#[test]
fn a_roster_names_a_file() {
    let text = "roster \"rosters/customers.csv\"  # more customers";
    let Item::Roster(roster) = only(parse(text)) else {
        panic!("not a roster");
    };
    assert_eq!(roster.path.value, "rosters/customers.csv");
    assert_eq!(at(text, roster.span), "roster \"rosters/customers.csv\"");
}

#[test]
fn staff_has_an_email_and_a_block() {
    let text = "staff \"dana@reseller.example\" {\n  name = \"Dana\"\n  role = \"D3 (restricted)\"\n  options = [private_apps]\n}";
    let Item::Staff(staff) = only(parse(text)) else {
        panic!("not staff");
    };
    assert_eq!(staff.email.value, "dana@reseller.example");
    let fields: Vec<&str> = staff
        .body
        .assignments
        .iter()
        .map(|a| a.field.name.as_str())
        .collect();
    assert_eq!(fields, ["name", "role", "options"]);
}

const LIFECYCLE: &str = r#"lifecycle {
  initial active
  state active        { license = tier }
  state frozen        { license = tier with consumables = 0 }
  state deprovisioned {
    license = tier with consumables = 0, apiLimit = 0
    owner = dummy_owner
    demote owner, admins to member
  }
  transition freeze      from active to frozen                 when contract_end + 7 days
  transition deprovision from frozen to deprovisioned          after 90 days
  transition reactivate  from frozen, deprovisioned to active  manual
  transition cancel      from active to frozen                 when contract_end if payment == "overdue"
}"#;

fn lifecycle(text: &str) -> ast::Lifecycle {
    match only(parse(text)) {
        Item::Lifecycle(lifecycle) => lifecycle,
        other => panic!("not a lifecycle: {other:?}"),
    }
}

#[test]
fn the_lifecycle_holds_its_entries_in_order() {
    let lifecycle = lifecycle(LIFECYCLE);
    assert_eq!(at(LIFECYCLE, lifecycle.keyword), "lifecycle");
    assert_eq!(at(LIFECYCLE, lifecycle.span), LIFECYCLE);
    let kinds: Vec<String> = lifecycle
        .items
        .iter()
        .map(|item| match item {
            LifecycleItem::Initial { state, .. } => format!("initial {}", state.name),
            LifecycleItem::State(state) => format!("state {}", state.name.name),
            LifecycleItem::Transition(t) => format!("transition {}", t.name.name),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "initial active",
            "state active",
            "state frozen",
            "state deprovisioned",
            "transition freeze",
            "transition deprovision",
            "transition reactivate",
            "transition cancel",
        ]
    );
}

#[test]
fn a_state_holds_license_owner_and_demote_statements() {
    let lifecycle = lifecycle(LIFECYCLE);
    let Some(LifecycleItem::State(state)) = lifecycle.items.get(3) else {
        panic!("the fourth entry is a state");
    };
    assert_eq!(state.name.name, "deprovisioned");
    assert!(at(LIFECYCLE, state.span).starts_with("state deprovisioned {"));
    assert!(at(LIFECYCLE, state.span).ends_with('}'));
    let [license, owner, demote] = state.body.as_slice() else {
        panic!("three statements: {:?}", state.body);
    };
    let StateStatement::License {
        source,
        overlays,
        span,
    } = license
    else {
        panic!("a license first");
    };
    assert_eq!(source.name, "tier");
    let overlays: Vec<String> = overlays
        .iter()
        .map(|o| format!("{} = {}", o.target.name, o.value))
        .collect();
    assert_eq!(overlays, ["consumables = 0", "apiLimit = 0"]);
    assert_eq!(
        at(LIFECYCLE, *span),
        "license = tier with consumables = 0, apiLimit = 0"
    );
    let StateStatement::Owner { value, span } = owner else {
        panic!("then the owner");
    };
    assert_eq!(value.name, "dummy_owner");
    assert_eq!(at(LIFECYCLE, *span), "owner = dummy_owner");
    let StateStatement::Demote {
        parties,
        role,
        span,
    } = demote
    else {
        panic!("then a demotion");
    };
    assert_eq!(names(parties), ["owner", "admins"]);
    assert_eq!(role.name, "member");
    assert_eq!(at(LIFECYCLE, *span), "demote owner, admins to member");
}

#[test]
fn a_license_without_overlays_has_none() {
    let lifecycle = lifecycle(LIFECYCLE);
    let Some(LifecycleItem::State(state)) = lifecycle.items.get(1) else {
        panic!("the second entry is a state");
    };
    let [StateStatement::License { overlays, span, .. }] = state.body.as_slice() else {
        panic!("one license: {:?}", state.body);
    };
    assert!(overlays.is_empty());
    assert_eq!(at(LIFECYCLE, *span), "license = tier");
}

/// Each transition as `name: from -> to trigger [if guard]`, expressions as printed.
fn transitions(lifecycle: &ast::Lifecycle, text: &str) -> Vec<String> {
    lifecycle
        .items
        .iter()
        .filter_map(|item| match item {
            LifecycleItem::Transition(t) => Some(t),
            _ => None,
        })
        .map(|t| {
            let trigger = match &t.trigger {
                Trigger::When(expr) => format!("when {expr}"),
                Trigger::After(value) => format!("after {value}"),
                Trigger::Manual(span) => at(text, *span).to_string(),
            };
            let guard = t
                .guard
                .as_ref()
                .map(|g| format!(" if {g}"))
                .unwrap_or_default();
            format!(
                "{}: {} -> {} {trigger}{guard}",
                t.name.name,
                names(&t.from).join(","),
                t.to.name
            )
        })
        .collect()
}

#[test]
fn transitions_have_sources_a_target_a_trigger_and_maybe_a_guard() {
    let lifecycle = lifecycle(LIFECYCLE);
    assert_eq!(
        transitions(&lifecycle, LIFECYCLE),
        [
            "freeze: active -> frozen when contract_end + 7 days",
            "deprovision: frozen -> deprovisioned after 90 days",
            "reactivate: frozen,deprovisioned -> active manual",
            "cancel: active -> frozen when contract_end if payment == \"overdue\"",
        ]
    );
}

#[test]
fn the_span_of_a_transition_ends_at_its_last_token() {
    let text = "lifecycle {\n  transition a from x to y manual   # why\n  transition b from y to x after 3 days  \n  transition c from x to y when d if e  # e\n}";
    let spans: Vec<&str> = lifecycle(text)
        .items
        .iter()
        .map(|item| match item {
            LifecycleItem::Transition(t) => at(text, t.span),
            _ => "",
        })
        .collect();
    assert_eq!(
        spans,
        [
            "transition a from x to y manual",
            "transition b from y to x after 3 days",
            "transition c from x to y when d if e",
        ]
    );
}

#[test]
fn a_number_before_if_is_not_read_with_a_unit_called_if() {
    let text = "lifecycle {\n  transition a from x to y after 90 if payment == \"overdue\"\n  transition b from x to y when d + 7 if e\n}";
    assert_eq!(
        transitions(&lifecycle(text), text),
        [
            "a: x -> y after 90 if payment == \"overdue\"",
            "b: x -> y when d + 7 if e",
        ]
    );
}

#[test]
fn lines_may_break_after_commas_with_and_operators() {
    let text = "lifecycle {\n  state s {\n    license = tier with # overlays:\n      consumables = 0,\n      apiLimit = 0\n    demote owner,\n      admins to member\n  }\n  transition t from a,\n    b to c when x +\n    7 days if p ==\n    \"q\"\n}";
    let lifecycle = lifecycle(text);
    assert_eq!(
        transitions(&lifecycle, text),
        ["t: a,b -> c when x + 7 days if p == \"q\""]
    );
    let Some(LifecycleItem::State(state)) = lifecycle.items.first() else {
        panic!("a state first");
    };
    let [
        StateStatement::License { overlays, .. },
        StateStatement::Demote { parties, .. },
    ] = state.body.as_slice()
    else {
        panic!("a license and a demotion: {:?}", state.body);
    };
    assert_eq!(overlays.len(), 2);
    assert_eq!(names(parties), ["owner", "admins"]);
}

#[test]
fn an_empty_lifecycle_and_an_empty_state_parse() {
    assert!(lifecycle("lifecycle {}").items.is_empty());
    let lifecycle = lifecycle("lifecycle { state s {}; initial s }");
    let Some(LifecycleItem::State(state)) = lifecycle.items.first() else {
        panic!("a state first");
    };
    assert!(state.body.is_empty());
}

#[test]
fn state_and_transition_names_may_not_be_reserved_words() {
    let error = parse_error("lifecycle { state test {} }");
    assert_eq!(error.code, "charter::reserved_word");
    let error = parse_error("lifecycle { transition all from a to b manual }");
    assert_eq!(error.message, "`all` is a reserved word");
}

const TESTS: &str = r#"test "pro gets analytics" {
  expect tier pro: analyticsAccess and operations == 40_000
}
test "acme freezes a week after its contract" {
  at 2027-02-08
  expect customer acme: state == frozen and operations == 0 and owner == "jane@acme.example"
}"#;

#[test]
fn tests_have_a_name_maybe_a_clock_and_expectations() {
    let items = parse(TESTS);
    let tests: Vec<&ast::Test> = items
        .iter()
        .filter_map(|item| match item {
            Item::Test(test) => Some(test),
            _ => None,
        })
        .collect();
    let [first, second] = tests.as_slice() else {
        panic!("two tests: {items:?}");
    };
    assert_eq!(first.name.value, "pro gets analytics");
    assert!(first.at.is_none());
    let [expect] = first.expects.as_slice() else {
        panic!("one expectation");
    };
    assert!(matches!(&expect.subject, Subject::Tier(tier) if tier.name == "pro"));
    assert_eq!(
        expect.expr.to_string(),
        "analyticsAccess and operations == 40000"
    );
    assert_eq!(
        at(TESTS, expect.span),
        "expect tier pro: analyticsAccess and operations == 40_000"
    );

    assert_eq!(
        second.at.as_ref().map(|v| &v.kind),
        Some(&ValueKind::Date(ast::Date {
            unix_seconds: 1_802_044_800,
            has_time: false
        }))
    );
    let [expect] = second.expects.as_slice() else {
        panic!("one expectation");
    };
    assert!(matches!(&expect.subject, Subject::Customer(key) if key.name == "acme"));
    assert!(at(TESTS, second.span).ends_with("\"jane@acme.example\"\n}"));
}

#[test]
fn a_test_may_be_empty_or_hold_only_its_clock() {
    let Item::Test(test) = only(parse("test \"nothing\" {}")) else {
        panic!("not a test");
    };
    assert!(test.at.is_none() && test.expects.is_empty());
    let Item::Test(test) = only(parse("test \"clock\" { at 2027-01-01T09:30Z }")) else {
        panic!("not a test");
    };
    assert!(test.at.is_some() && test.expects.is_empty());
}
