//! The surface syntax of Charter, with spans and no meaning.
//!
//! The parser (`syntax`) produces it and the checker (`check`) and the formatter read it. Names
//! are not resolved and values are not interpreted beyond what the grammar says (a number is
//! digits, a unit is a word); every node keeps the span it came from.

use crate::source::Span;

/// A name as written, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Instance(Instance),
    Tier(Tier),
    Addon(Addon),
    Group(Group),
    Ladder(Ladder),
    Assert(Assert),
    Customer(Customer),
    Roster(Roster),
    Staff(Staff),
    Lifecycle(Lifecycle),
    Test(Test),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Instance(i) => i.span,
            Item::Tier(t) => t.span,
            Item::Addon(a) => a.span,
            Item::Group(g) => g.span,
            Item::Ladder(l) => l.span,
            Item::Assert(a) => a.span,
            Item::Customer(c) => c.span,
            Item::Roster(r) => r.span,
            Item::Staff(s) => s.span,
            Item::Lifecycle(l) => l.span,
            Item::Test(t) => t.span,
        }
    }
}

/// `customer KEY { … }`: fields (`name = "…"`, `tier = pro`, `owner = "…"`, dates, lists) and
/// nested blocks (`attributes { … }`, `override { … }`, `team "NAME" { … }`), in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub key: Ident,
    pub body: Vec<Statement>,
    /// The braces.
    pub body_span: Span,
    pub span: Span,
}

/// A statement of a customer (or staff) block.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// `field = value` (any operator; the checker says which are allowed where).
    Assign(Assignment),
    /// `attributes { … }`, `override { … }` or `team "NAME" { … }`.
    Nested(NestedBlock),
}

/// `KEYWORD ["LABEL"] { assignments }` inside a customer.
#[derive(Clone, Debug, PartialEq)]
pub struct NestedBlock {
    /// `attributes`, `override` or `team` (any word; the checker refuses others).
    pub keyword: Ident,
    /// The team's name in `team "Marketing" { … }`.
    pub label: Option<StringLit>,
    pub body: Block,
    pub span: Span,
}

/// `roster "customers.csv"`: more customers from a CSV file, relative to this file.
#[derive(Clone, Debug, PartialEq)]
pub struct Roster {
    pub path: StringLit,
    pub span: Span,
}

/// `staff "EMAIL" { name = "…"; role = "D1"; options = […] }`
#[derive(Clone, Debug, PartialEq)]
pub struct Staff {
    pub email: StringLit,
    pub body: Block,
    pub span: Span,
}

/// `lifecycle { initial …; state …; transition … }`
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    pub keyword: Span,
    pub items: Vec<LifecycleItem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a lifecycle holds a handful of entries; boxing transitions would only add indirection"
)]
pub enum LifecycleItem {
    /// `initial STATE`
    Initial {
        state: Ident,
        span: Span,
    },
    State(StateDecl),
    Transition(Transition),
}

/// `state NAME { license = tier [with …]; owner = dummy_owner; demote … to … }`
#[derive(Clone, Debug, PartialEq)]
pub struct StateDecl {
    pub name: Ident,
    pub body: Vec<StateStatement>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StateStatement {
    /// `license = tier [with p = v, group = v, …]`; `source` is the word after `=` (`tier`).
    License {
        source: Ident,
        overlays: Vec<Overlay>,
        span: Span,
    },
    /// `owner = dummy_owner`; `value` is the word after `=`.
    Owner { value: Ident, span: Span },
    /// `demote owner, admins to member`
    Demote {
        parties: Vec<Ident>,
        role: Ident,
        span: Span,
    },
}

/// `p = v` or `group = v` in a `with` overlay.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    pub target: Ident,
    pub value: Value,
    pub span: Span,
}

/// `transition NAME from A, B to C (when EXPR | after DURATION | manual) [if EXPR]`
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub name: Ident,
    pub from: Vec<Ident>,
    pub to: Ident,
    pub trigger: Trigger,
    pub guard: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// `when EXPR`: due once the date the expression gives has passed.
    When(Expr),
    /// `after DURATION`: due that long after the customer entered the source state.
    After(Value),
    /// `manual`: only on request.
    Manual(Span),
}

/// `test "NAME" { [at DATE] expect SUBJECT: EXPR … }`
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    pub name: StringLit,
    pub at: Option<Value>,
    pub expects: Vec<Expect>,
    pub span: Span,
}

/// `expect tier NAME: EXPR` or `expect customer KEY: EXPR`
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub subject: Subject,
    pub expr: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    Tier(Ident),
    Customer(Ident),
}

/// `instance { flags = […]; dummy_owner = "…" }`
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub keyword: Span,
    pub body: Block,
    pub span: Span,
}

/// `[abstract] tier NAME [extends PARENT] { … }`
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    pub is_abstract: bool,
    pub name: Ident,
    pub extends: Option<Ident>,
    pub body: Block,
    pub span: Span,
}

/// `addon NAME { … }`
#[derive(Clone, Debug, PartialEq)]
pub struct Addon {
    pub name: Ident,
    pub body: Block,
    pub span: Span,
}

/// `group NAME = p1, p2, …`
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: Ident,
    pub members: Vec<Ident>,
    pub span: Span,
}

/// `assert ladder a < b < …`
#[derive(Clone, Debug, PartialEq)]
pub struct Ladder {
    pub tiers: Vec<Ident>,
    pub span: Span,
}

/// `assert for SCOPE: EXPR ["message"]`
#[derive(Clone, Debug, PartialEq)]
pub struct Assert {
    pub scope: Scope,
    pub expr: Expr,
    pub message: Option<StringLit>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    /// `for all:` — every non-abstract tier.
    All(Span),
    /// `for a, b:`
    Tiers(Vec<Ident>),
}

/// `{ statement; … }` with the span of the braces.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub assignments: Vec<Assignment>,
    pub span: Span,
}

/// `field OP value`
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub field: Ident,
    pub op: AssignOp,
    pub op_span: Span,
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignOp {
    Set,
    Add,
    Sub,
    Mul,
}

impl AssignOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// A number without a unit (`40_000`, `1.5`).
    Number(Number),
    /// A number with a unit word (`500 MiB`); the unit is not yet interpreted.
    Quantity {
        number: Number,
        unit: Ident,
    },
    Bool(bool),
    String(String),
    Date(Date),
    /// A bare word: an enum value, a flag, a name in a list.
    Word(String),
    List(Vec<Value>),
}

/// A decimal number as written: `digits / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Number {
    pub digits: u128,
    pub scale: u32,
    pub span: Span,
}

impl Number {
    /// The value as a whole number, if it has no fractional part.
    pub fn as_whole(&self) -> Option<u128> {
        (self.scale == 0).then_some(self.digits)
    }
}

/// A date or instant, as seconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub unix_seconds: i64,
    /// Whether a time of day was written (`2027-01-31T09:00:00Z`).
    pub has_time: bool,
}

/// A string literal, unescaped, with the span of the quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringLit {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Literal(Value),
    /// `parameter` or `tier.parameter`.
    Reference {
        qualifier: Option<Ident>,
        name: Ident,
    },
    Not(Box<Expr>),
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// Parentheses as written, kept so the formatter can keep them.
    Paren(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Implies,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Implies => "implies",
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }

    /// Binding strength, higher binds tighter (LANGUAGE.md §6).
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Implies => 1,
            BinaryOp::Or => 2,
            BinaryOp::And => 3,
            // `not` is 4.
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 5,
            BinaryOp::Add | BinaryOp::Sub => 6,
            BinaryOp::Mul | BinaryOp::Div => 7,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 5
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.digits.to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{whole}.{fraction}")
    }
}

/// Writes a string literal with its quotes and the language's escapes.
pub fn write_string(f: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ValueKind::Number(n) => write!(f, "{n}"),
            ValueKind::Quantity { number, unit } => write!(f, "{number} {}", unit.name),
            ValueKind::Bool(b) => write!(f, "{b}"),
            ValueKind::String(s) => write_string(f, s),
            ValueKind::Date(d) => match jiff::Timestamp::from_second(d.unix_seconds) {
                Ok(t) if d.has_time => write!(f, "{}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
                Ok(t) => write!(f, "{}", t.strftime("%Y-%m-%d")),
                Err(_) => write!(f, "{}", d.unix_seconds),
            },
            ValueKind::Word(w) => f.write_str(w),
            ValueKind::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// An expression on one line, with single spaces around operators and parentheses as written.
impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ExprKind::Literal(v) => write!(f, "{v}"),
            ExprKind::Reference {
                qualifier: Some(q),
                name,
            } => write!(f, "{}.{}", q.name, name.name),
            ExprKind::Reference {
                qualifier: None,
                name,
            } => f.write_str(&name.name),
            ExprKind::Not(inner) => write!(f, "not {inner}"),
            ExprKind::Binary { op, lhs, rhs } => write!(f, "{lhs} {} {rhs}", op.as_str()),
            ExprKind::Paren(inner) => write!(f, "({inner})"),
        }
    }
}
