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
        }
    }
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
