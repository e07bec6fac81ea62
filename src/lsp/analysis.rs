//! One policy set as the editor sees it: the `.charter` files of a directory (open buffers in
//! place of what is on disk), parsed and checked with the project's own parser and checker,
//! and an index of every name that can be pointed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lsp_types::{Position, Range};

use crate::ast::{self, ExprKind, Item, LifecycleItem, StateStatement, Statement, ValueKind};
use crate::diagnostic::Diagnostic;
use crate::input;
use crate::model::catalog;
use crate::model::program::Program;
use crate::policy;
use crate::source::{FileId, SourceFile, Sources, Span};
use crate::syntax::{self, roster::Roster};

/// What a name in the policy set stands for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Symbol {
    Tier(String),
    Addon(String),
    Group(String),
    State(String),
    Transition(String),
    Customer(String),
    /// A person, by address: a staff member or one of a customer's people.
    Person(String),
    Parameter(String),
}

impl Symbol {
    pub(crate) fn name(&self) -> &str {
        match self {
            Symbol::Tier(n)
            | Symbol::Addon(n)
            | Symbol::Group(n)
            | Symbol::State(n)
            | Symbol::Transition(n)
            | Symbol::Customer(n)
            | Symbol::Person(n)
            | Symbol::Parameter(n) => n,
        }
    }
}

/// The block an occurrence stands in, where it matters (a parameter's value depends on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    None,
    Tier(String),
    Addon(String),
    /// A customer's `override { … }`.
    Override(String),
}

/// One place a name is written.
#[derive(Clone, Debug)]
pub(crate) struct Occurrence {
    pub(crate) span: Span,
    pub(crate) symbol: Symbol,
    pub(crate) definition: bool,
    pub(crate) context: Context,
}

/// A transition as written, for hovers.
#[derive(Clone, Debug)]
pub(crate) struct TransitionText {
    pub(crate) name: String,
    pub(crate) from: Vec<String>,
    pub(crate) to: String,
    /// `when contract_end + 7 days if payment == "overdue"`
    pub(crate) trigger: String,
}

/// A checked policy set.
pub(crate) struct Analysis {
    pub(crate) sources: Sources,
    /// The absolute path of each file of `sources`, by `FileId`.
    pub(crate) paths: Vec<PathBuf>,
    /// The directory of the set.
    pub(crate) dir: PathBuf,
    /// Every file that parsed.
    pub(crate) files: Vec<(FileId, ast::File)>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) program: Option<Program>,
    /// Sorted by file and position.
    pub(crate) occurrences: Vec<Occurrence>,
    pub(crate) transitions: Vec<TransitionText>,
    /// Group name → its parameters as written.
    pub(crate) groups: BTreeMap<String, Vec<String>>,
}

/// Reads a file's text: an open buffer, else the disk.
pub(crate) trait Overlay {
    fn text(&self, path: &Path) -> Option<String>;
    /// Paths of open buffers directly in `dir` with the extension `charter`.
    fn charter_files_in(&self, dir: &Path) -> Vec<PathBuf>;
}

impl Analysis {
    /// Parses and checks the policy set in `dir`; files are named relative to `root` where
    /// they are inside it (so locations read as `charter explain` run from `root` prints them).
    pub(crate) fn new(dir: &Path, root: &Path, overlay: &dyn Overlay) -> Analysis {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "charter"))
                    .collect()
            })
            .unwrap_or_default();
        paths.extend(overlay.charter_files_in(dir));
        paths.sort();
        paths.dedup();
        let root = if dir.starts_with(root) {
            root.to_path_buf()
        } else {
            PathBuf::new()
        };
        let mut sources = Sources::new();
        // Files on disk are read as `charter check` reads them: regular files inside the folder,
        // under the size cap. A refused one is checked as empty and says why.
        let mut refused = Vec::new();
        for path in &paths {
            let read = match overlay.text(path) {
                Some(text) => Ok(text),
                None => {
                    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
                    input::read_inside(dir, &name, input::MAX_POLICY_FILE)
                }
            };
            match read {
                Ok(text) => {
                    sources.add(name_of(path, &root), text);
                }
                Err(refusal) => {
                    let id = sources.add(name_of(path, &root), "");
                    let diagnostic = Diagnostic::error(
                        "charter::policy_file_refused",
                        format!("this policy file is not read: {}", refusal.reason()),
                    )
                    .with_label(Span::new(id, 0, 0), "not read");
                    refused.push(match refusal.help() {
                        Some(help) => diagnostic.with_help(help),
                        None => diagnostic,
                    });
                }
            }
        }
        // An open buffer is read as the file would be, under the same confinement.
        let read = |folder: &Path, relative: &Path| match overlay.text(&folder.join(relative)) {
            Some(text) => input::check_relative(relative).map(|()| text),
            None => policy::read_roster(folder, relative),
        };
        let (sources, files, mut diagnostics, program, rosters) = match syntax::parse_all(&sources)
        {
            Ok(files) => {
                let set = policy::check_parsed(sources, &files, &root, &read);
                (
                    set.sources,
                    files,
                    set.checked.diagnostics.0,
                    set.checked.program,
                    set.rosters,
                )
            }
            Err(errors) => {
                // Keep what parses, so that navigation still works in the other files.
                let files = sources
                    .ids()
                    .filter_map(|id| syntax::parse(&sources, id).ok().map(|f| (id, f)))
                    .collect();
                (sources, files, errors, None, Vec::new())
            }
        };
        diagnostics.extend(refused);
        let paths = sources
            .ids()
            .map(|id| {
                let name = sources.file(id).map_or("", |f| f.name.as_str());
                let path = Path::new(name);
                if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    root.join(path)
                }
            })
            .collect();
        let mut analysis = Analysis {
            sources,
            paths,
            dir: dir.to_path_buf(),
            files,
            diagnostics,
            program,
            occurrences: Vec::new(),
            transitions: Vec::new(),
            groups: BTreeMap::new(),
        };
        analysis.index(&rosters);
        analysis
    }

    pub(crate) fn file_of(&self, path: &Path) -> Option<FileId> {
        self.paths
            .iter()
            .position(|p| p == path)
            .and_then(|i| u32::try_from(i).ok())
            .map(FileId)
    }

    pub(crate) fn path_of(&self, file: FileId) -> Option<&Path> {
        self.paths.get(file.0 as usize).map(PathBuf::as_path)
    }

    pub(crate) fn ast_of(&self, file: FileId) -> Option<&ast::File> {
        self.files
            .iter()
            .find(|(id, _)| *id == file)
            .map(|(_, f)| f)
    }

    /// The occurrence under a byte offset (its end included, so a cursor just after a name
    /// still finds it).
    pub(crate) fn occurrence_at(&self, file: FileId, offset: usize) -> Option<&Occurrence> {
        self.occurrences.iter().find(|o| {
            o.span.file == file
                && (o.span.start as usize) <= offset
                && offset <= o.span.end as usize
        })
    }

    pub(crate) fn occurrences_of<'a>(
        &'a self,
        symbol: &'a Symbol,
    ) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| &o.symbol == symbol)
    }

    pub(crate) fn names(&self, kind: fn(String) -> Symbol) -> Vec<String> {
        let mut names: Vec<String> = self
            .occurrences
            .iter()
            .filter(|o| o.definition && o.symbol == kind(o.symbol.name().to_string()))
            .map(|o| o.symbol.name().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Non-abstract tiers as declared.
    pub(crate) fn deployable_tiers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .iter()
            .flat_map(|(_, f)| &f.items)
            .filter_map(|item| match item {
                Item::Tier(t) if !t.is_abstract => Some(t.name.name.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names
    }

    fn index(&mut self, rosters: &[(Span, Roster)]) {
        let mut out = Indexer {
            sources: &self.sources,
            occurrences: Vec::new(),
            transitions: Vec::new(),
            groups: BTreeMap::new(),
            states: Vec::new(),
        };
        for (_, file) in &self.files {
            for item in &file.items {
                match item {
                    Item::Group(g) => {
                        out.groups.insert(
                            g.name.name.clone(),
                            g.members.iter().map(|m| m.name.clone()).collect(),
                        );
                    }
                    Item::Lifecycle(l) => {
                        for i in &l.items {
                            if let LifecycleItem::State(s) = i {
                                out.states.push(s.name.name.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out.groups
            .entry("consumables".to_string())
            .or_insert_with(|| vec!["operations".to_string(), "transfer".to_string()]);
        for (_, file) in &self.files {
            for item in &file.items {
                out.item(item);
            }
        }
        for (_, roster) in rosters {
            out.roster(roster);
        }
        let mut occurrences = out.occurrences;
        occurrences.sort_by_key(|o| (o.span.file, o.span.start, o.span.end));
        self.transitions = out.transitions;
        self.groups = out.groups;
        self.occurrences = occurrences;
    }
}

fn name_of(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) if !root.as_os_str().is_empty() => relative.display().to_string(),
        _ => path.display().to_string(),
    }
}

struct Indexer<'a> {
    sources: &'a Sources,
    occurrences: Vec<Occurrence>,
    transitions: Vec<TransitionText>,
    groups: BTreeMap<String, Vec<String>>,
    states: Vec<String>,
}

impl Indexer<'_> {
    fn push(&mut self, span: Span, symbol: Symbol, definition: bool) {
        self.occurrences.push(Occurrence {
            span,
            symbol,
            definition,
            context: Context::None,
        });
    }

    fn ident(&mut self, ident: &ast::Ident, kind: fn(String) -> Symbol, definition: bool) {
        self.push(ident.span, kind(ident.name.clone()), definition);
    }

    fn parameters(&mut self, block: &[ast::Assignment], context: &Context) {
        for a in block {
            self.occurrences.push(Occurrence {
                span: a.field.span,
                symbol: Symbol::Parameter(a.field.name.clone()),
                definition: false,
                context: context.clone(),
            });
        }
    }

    /// The inside of a string literal's quotes.
    fn string(&mut self, s: &ast::StringLit, kind: fn(String) -> Symbol, definition: bool) {
        let span = if self.sources.slice(s.span).starts_with('"') && s.span.len() >= 2 {
            Span {
                start: s.span.start + 1,
                end: s.span.end - 1,
                ..s.span
            }
        } else {
            s.span
        };
        self.push(span, kind(s.value.clone()), definition);
    }

    /// Names in a value: a word, or each word (or string) of a list.
    fn value(&mut self, value: &ast::Value, kind: fn(String) -> Symbol) {
        match &value.kind {
            ValueKind::Word(w) => self.push(value.span, kind(w.clone()), false),
            ValueKind::String(s) => self.string(
                &ast::StringLit {
                    value: s.clone(),
                    span: value.span,
                },
                kind,
                false,
            ),
            ValueKind::List(items) => {
                for item in items {
                    self.value(item, kind);
                }
            }
            _ => {}
        }
    }

    fn expr(&mut self, expr: &ast::Expr) {
        match &expr.kind {
            ExprKind::Reference { qualifier, name } => {
                if let Some(q) = qualifier {
                    self.ident(q, Symbol::Tier, false);
                    self.ident(name, Symbol::Parameter, false);
                } else if catalog::lookup(&name.name).is_some() {
                    self.ident(name, Symbol::Parameter, false);
                } else if self.states.contains(&name.name) {
                    self.ident(name, Symbol::State, false);
                }
            }
            ExprKind::Not(inner) | ExprKind::Paren(inner) => self.expr(inner),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Literal(_) => {}
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Instance(i) => {
                for a in &i.body.assignments {
                    if a.field.name == "dummy_owner" {
                        self.value(&a.value, Symbol::Person);
                    }
                }
            }
            Item::Tier(t) => {
                self.ident(&t.name, Symbol::Tier, true);
                if let Some(parent) = &t.extends {
                    self.ident(parent, Symbol::Tier, false);
                }
                self.parameters(&t.body.assignments, &Context::Tier(t.name.name.clone()));
            }
            Item::Addon(a) => {
                self.ident(&a.name, Symbol::Addon, true);
                self.parameters(&a.body.assignments, &Context::Addon(a.name.name.clone()));
            }
            Item::Group(g) => {
                self.ident(&g.name, Symbol::Group, true);
                for m in &g.members {
                    self.ident(m, Symbol::Parameter, false);
                }
            }
            Item::Ladder(l) => {
                for t in &l.tiers {
                    self.ident(t, Symbol::Tier, false);
                }
            }
            Item::Assert(a) => {
                if let ast::Scope::Tiers(tiers) = &a.scope {
                    for t in tiers {
                        self.ident(t, Symbol::Tier, false);
                    }
                }
                self.expr(&a.expr);
            }
            Item::Customer(c) => self.customer(c),
            Item::Roster(_) => {}
            Item::Staff(s) => self.string(&s.email, Symbol::Person, true),
            Item::Lifecycle(l) => self.lifecycle(l),
            Item::Test(t) => {
                for e in &t.expects {
                    match &e.subject {
                        ast::Subject::Tier(name) => self.ident(name, Symbol::Tier, false),
                        ast::Subject::Customer(key) => self.ident(key, Symbol::Customer, false),
                    }
                    self.expr(&e.expr);
                }
            }
        }
    }

    fn customer(&mut self, c: &ast::Customer) {
        self.ident(&c.key, Symbol::Customer, true);
        for statement in &c.body {
            match statement {
                Statement::Assign(a) => match a.field.name.as_str() {
                    "tier" => self.value(&a.value, Symbol::Tier),
                    "addons" => self.value(&a.value, Symbol::Addon),
                    "owner" | "admins" | "members" => self.value(&a.value, Symbol::Person),
                    _ => {}
                },
                Statement::Nested(n) if n.keyword.name == "override" => {
                    self.parameters(&n.body.assignments, &Context::Override(c.key.name.clone()));
                }
                Statement::Nested(n) if n.keyword.name == "team" => {
                    for a in &n.body.assignments {
                        self.value(&a.value, Symbol::Person);
                    }
                }
                Statement::Nested(_) => {}
            }
        }
    }

    fn lifecycle(&mut self, l: &ast::Lifecycle) {
        for item in &l.items {
            match item {
                LifecycleItem::Initial { state, .. } => self.ident(state, Symbol::State, false),
                LifecycleItem::State(s) => {
                    self.ident(&s.name, Symbol::State, true);
                    for statement in &s.body {
                        if let StateStatement::License { overlays, .. } = statement {
                            for o in overlays {
                                let kind = if self.groups.contains_key(&o.target.name) {
                                    Symbol::Group
                                } else {
                                    Symbol::Parameter
                                };
                                self.ident(&o.target, kind, false);
                            }
                        }
                    }
                }
                LifecycleItem::Transition(t) => {
                    self.ident(&t.name, Symbol::Transition, true);
                    for from in &t.from {
                        self.ident(from, Symbol::State, false);
                    }
                    self.ident(&t.to, Symbol::State, false);
                    let mut trigger = match &t.trigger {
                        ast::Trigger::When(e) => format!("when {e}"),
                        ast::Trigger::After(v) => format!("after {v}"),
                        ast::Trigger::Manual(_) => "manual".to_string(),
                    };
                    if let Some(guard) = &t.guard {
                        trigger.push_str(&format!(" if {guard}"));
                    }
                    self.transitions.push(TransitionText {
                        name: t.name.name.clone(),
                        from: t.from.iter().map(|f| f.name.clone()).collect(),
                        to: t.to.name.clone(),
                        trigger,
                    });
                }
            }
        }
    }

    fn roster(&mut self, roster: &Roster) {
        let column = |name: &str| roster.header.iter().position(|c| c.value.trim() == name);
        // Column, the kind of name in it, whether a cell there declares the name.
        type Column = (Option<usize>, fn(String) -> Symbol, bool);
        let columns: [Column; 6] = [
            (column("key"), Symbol::Customer, true),
            (column("tier"), Symbol::Tier, false),
            (column("addons"), Symbol::Addon, false),
            (column("owner"), Symbol::Person, false),
            (column("admins"), Symbol::Person, false),
            (column("members"), Symbol::Person, false),
        ];
        for row in &roster.rows {
            for (index, kind, definition) in &columns {
                let Some(cell) = index.and_then(|i| row.get(i)) else {
                    continue;
                };
                // Lists in a cell are separated by `;`: each element at its own place.
                let raw = self.sources.slice(cell.span);
                let mut from = 0;
                for part in cell.value.split(';') {
                    let part = part.trim();
                    if part.is_empty() {
                        continue;
                    }
                    let Some(at) = raw.get(from..).and_then(|r| r.find(part)) else {
                        continue;
                    };
                    let start = cell.span.start as usize + from + at;
                    from += at + part.len();
                    let span = Span::new(cell.span.file, start, start + part.len());
                    self.push(span, kind(part.to_string()), *definition);
                }
            }
        }
    }
}

/// Converts between byte offsets and LSP positions (lines, UTF-16 code units).
pub(crate) fn position(file: &SourceFile, offset: usize) -> Position {
    let text = file.text.as_str();
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text
        .get(..offset)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let line = text
        .get(..line_start)
        .map_or(0, |t| t.matches('\n').count());
    let character = text
        .get(line_start..offset)
        .map_or(0, |t| t.encode_utf16().count());
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        character: u32::try_from(character).unwrap_or(u32::MAX),
    }
}

pub(crate) fn range(sources: &Sources, span: Span) -> Range {
    match sources.file(span.file) {
        Some(file) => Range {
            start: position(file, span.start as usize),
            end: position(file, span.end as usize),
        },
        None => Range::default(),
    }
}

/// The byte offset of an LSP position in `text` (clamped to the line and the text).
pub(crate) fn offset(text: &str, position: Position) -> usize {
    let mut line_start = 0;
    for _ in 0..position.line {
        match text.get(line_start..).and_then(|t| t.find('\n')) {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line = text.get(line_start..).unwrap_or("");
    let line = line.split('\n').next().unwrap_or("");
    let mut units = 0u32;
    for (i, c) in line.char_indices() {
        if units >= position.character {
            return line_start + i;
        }
        units += u32::try_from(c.len_utf16()).unwrap_or(2);
    }
    line_start + line.len()
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_and_round_trip() {
        let file = SourceFile::new("x", "ab\n€x𝄞y\n");
        let y = file.text.find('y').unwrap_or(0);
        let p = position(&file, y);
        assert_eq!((p.line, p.character), (1, 4));
        assert_eq!(offset(&file.text, p), y);
        assert_eq!(
            offset(
                &file.text,
                Position {
                    line: 9,
                    character: 0
                }
            ),
            file.text.len()
        );
        assert_eq!(
            offset(
                &file.text,
                Position {
                    line: 0,
                    character: 99
                }
            ),
            2
        );
    }
}
