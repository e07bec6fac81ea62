//! Diagnostics: errors and warnings with a stable code, a location and wording for humans.
//!
//! Every stage reports through [`Diagnostic`]; the CLI renders them with miette (human) or as
//! JSON lines (`--error-format json`). Wording follows STYLE.md: lowercase, no final period,
//! user values in backticks, longer explanations in `help`.

use std::fmt;

use serde::Serialize;

use crate::excerpt::{CONTEXT_LINES, Excerpt, escape_controls};
use crate::source::{Sources, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in the pipeline a problem was found. Each stage works only on what the earlier ones
/// accepted, so a problem found earlier may be the cause of one found later and never the
/// other way round: diagnostics are reported in stage order, root causes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Reading and parsing files and rosters.
    #[default]
    Syntax,
    /// Declarations, the instance block and groups: names and duplicates.
    Declarations,
    /// Each block's assignments: parameters and values.
    Values,
    /// Tier chains, completeness and flags.
    Tiers,
    /// Ladders and `assert for` rules over the resolved tiers.
    Rules,
    /// Customers and roster rows.
    Customers,
    /// The lifecycle, typed over the customers' attributes.
    Lifecycle,
    /// `test` blocks.
    Tests,
    /// `staff` blocks.
    Staff,
}

/// A span with a short note shown under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// A stable code such as `charter::unknown_tier`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary location.
    pub labels: Vec<Label>,
    pub help: Option<String>,
    /// The stage that found it (see [`Stage`]); set by [`Diagnostics::in_stage`].
    pub stage: Stage,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            stage: Stage::Syntax,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        let help = help.into();
        self.help = Some(match self.help.take() {
            Some(existing) => format!("{existing}\n{help}"),
            None => help,
        });
        self
    }

    /// Adds a "did you mean" help when a close name exists.
    pub fn with_suggestion<'a>(
        self,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Diagnostic {
        match suggest(name, candidates) {
            Some(s) => self.with_help(format!("did you mean `{s}`?")),
            None => self,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// The closest candidate to a misspelt name, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let distance = strsim::damerau_levenshtein(&lower, &c.to_lowercase());
            (distance, c)
        })
        .filter(|(distance, c)| {
            let longest = name.chars().count().max(c.chars().count());
            *distance == 0 || *distance <= (longest / 3).max(1)
        })
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// A list of diagnostics in report order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Whether an error was pushed after the first `mark` diagnostics (`mark` from [`len`]):
    /// a check of one item costs what the item found, not what the whole set found before.
    ///
    /// [`len`]: Diagnostics::len
    pub fn has_errors_since(&self, mark: usize) -> bool {
        self.0
            .get(mark..)
            .is_some_and(|new| new.iter().any(Diagnostic::is_error))
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Runs one stage of the pipeline, marking the diagnostics it reports as found there.
    pub fn in_stage<T>(&mut self, stage: Stage, run: impl FnOnce(&mut Diagnostics) -> T) -> T {
        let start = self.0.len();
        let result = run(self);
        for diagnostic in self.0.iter_mut().skip(start) {
            diagnostic.stage = stage;
        }
        result
    }

    /// Sorts by stage (root causes first), then file and position, errors before warnings at
    /// the same place, and drops exact repeats, so output is deterministic whatever order the
    /// checker found things in.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            let key =
                |d: &Diagnostic| (d.stage, d.primary_span().map(|s| (s.file, s.start, s.end)));
            key(a)
                .cmp(&key(b))
                .then(a.severity.cmp(&b.severity))
                .then(a.code.cmp(b.code))
                .then(a.message.cmp(&b.message))
        });
        self.0.dedup();
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// How to render diagnostics for humans.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> RenderOptions {
        RenderOptions {
            color: false,
            width: 100,
        }
    }
}

/// Renders one diagnostic with its source excerpt, as the user sees it on a terminal.
pub fn render_human(sources: &Sources, diagnostic: &Diagnostic, options: RenderOptions) -> String {
    let report = MietteReport::new(sources, diagnostic);
    let theme = if options.color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(options.width)
        .with_context_lines(CONTEXT_LINES)
        .with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        // The handler only fails when writing to `out` fails, which a String never does; fall
        // back to a one-line form rather than lose the diagnostic.
        out = format!("{}: {}\n", diagnostic.code, diagnostic.message);
    }
    out
}

/// One diagnostic as a JSON object (`--error-format json`).
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub help: Option<String>,
}

impl JsonDiagnostic {
    pub fn new(sources: &Sources, diagnostic: &Diagnostic) -> JsonDiagnostic {
        let location = diagnostic.primary_span().map(|s| sources.location(s));
        JsonDiagnostic {
            code: diagnostic.code,
            severity: diagnostic.severity,
            message: diagnostic.message.clone(),
            file: location.as_ref().map(|l| l.file.clone()),
            line: location.as_ref().map(|l| l.line),
            column: location.as_ref().map(|l| l.column),
            help: diagnostic.help.clone(),
        }
    }
}

/// Adapts a [`Diagnostic`] to miette. Labels in the primary file are drawn under the source;
/// labels in other files become notes in the help text, since miette draws one file per report.
/// The source is an [`Excerpt`]: the lines around the labels only, made safe to show.
struct MietteReport<'a> {
    diagnostic: &'a Diagnostic,
    message: String,
    source: Option<Excerpt>,
    labels: Vec<miette::LabeledSpan>,
    help: Option<String>,
}

impl<'a> MietteReport<'a> {
    fn new(sources: &Sources, diagnostic: &'a Diagnostic) -> MietteReport<'a> {
        let primary_file = diagnostic.primary_span().map(|s| s.file);
        let file = primary_file.and_then(|f| sources.file(f));
        let source = file.map(|f| {
            Excerpt::new(
                f,
                diagnostic
                    .labels
                    .iter()
                    .filter(|l| Some(l.span.file) == primary_file)
                    .map(|l| (l.span.start as usize, l.span.end as usize)),
            )
        });
        let mut labels = Vec::new();
        let mut notes = Vec::new();
        for (i, label) in diagnostic.labels.iter().enumerate() {
            match &source {
                Some(excerpt) if Some(label.span.file) == primary_file => {
                    let text = (!label.message.is_empty())
                        .then(|| escape_controls(&label.message).into_owned());
                    let span =
                        excerpt.shown_span(label.span.start as usize, label.span.end as usize);
                    labels.push(if i == 0 {
                        miette::LabeledSpan::new_primary_with_span(text, span)
                    } else {
                        miette::LabeledSpan::new_with_span(text, span)
                    });
                }
                _ => notes.push(format!(
                    "{} (at {})",
                    label.message,
                    sources.location(label.span)
                )),
            }
        }
        let help = diagnostic
            .help
            .as_deref()
            .map(|h| escape_controls(h).into_owned());
        let help = match (help, notes.is_empty()) {
            (help, true) => help,
            (Some(help), false) => Some(format!("{}\n{help}", notes.join("\n"))),
            (None, false) => Some(notes.join("\n")),
        };
        MietteReport {
            diagnostic,
            message: escape_controls(&diagnostic.message).into_owned(),
            source,
            labels,
            help,
        }
    }
}

impl fmt::Debug for MietteReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for MietteReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteReport<'_> {}

impl miette::Diagnostic for MietteReport<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_close_names_only() {
        let names = ["operations", "transfer", "teams"];
        assert_eq!(suggest("operation", names), Some("operations"));
        assert_eq!(suggest("Operations", names), Some("operations"));
        assert_eq!(suggest("trasnfer", names), Some("transfer"));
        assert_eq!(suggest("xyz", names), None);
    }
}
