//! Loading a policy set from disk: its `.charter` files, parsed; the rosters they name, read
//! and parsed; then the whole checked. This and `source.rs` are the only places the core reads
//! files.

use std::path::Path;

use crate::ast;
use crate::check::{self, Checked};
use crate::diagnostic::Diagnostic;
use crate::input::{self, MAX_ROSTER, Refusal};
use crate::source::{FileId, LoadError, Sources, Span};
use crate::syntax::{self, roster};

/// A policy set as loaded: its sources (rosters included, for diagnostics) and the result of
/// checking it.
pub struct PolicySet {
    pub sources: Sources,
    pub checked: Checked,
    /// The rosters that could be read and parsed, each with the span of the `roster`
    /// declaration that names it.
    pub rosters: Vec<(Span, roster::Roster)>,
}

/// Why a policy set could not be checked at all.
pub enum Failure {
    /// The path could not be read.
    Load(LoadError),
    /// Syntax errors (in policy files or rosters); nothing was checked.
    Syntax(Sources, Vec<Diagnostic>),
}

/// Reads, parses and checks the policy set at `path`.
pub fn load(path: &Path) -> Result<PolicySet, Failure> {
    let (sources, warnings) = Sources::read_policy_set(path).map_err(Failure::Load)?;
    match check_sources(sources, Path::new("")) {
        Ok(mut set) => {
            set.checked.diagnostics.extend(warnings);
            set.checked.diagnostics.sort();
            Ok(set)
        }
        Err(Failure::Syntax(sources, mut errors)) => {
            errors.splice(0..0, warnings);
            Err(Failure::Syntax(sources, errors))
        }
        Err(failure) => Err(failure),
    }
}

/// Parses and checks policy files already read. Roster paths are relative to the file that
/// names them, whose name is taken relative to `root`.
pub fn check_sources(sources: Sources, root: &Path) -> Result<PolicySet, Failure> {
    let files = match syntax::parse_all(&sources) {
        Ok(files) => files,
        Err(errors) => return Err(Failure::Syntax(sources, errors)),
    };
    Ok(check_parsed(sources, &files, root, &read_roster))
}

/// Reads a roster from disk: `relative` (as written) inside `folder`, confined and capped.
pub fn read_roster(folder: &Path, relative: &Path) -> Result<String, Refusal> {
    input::read_inside(folder, relative, MAX_ROSTER)
}

/// Checks policy files already parsed, reading each roster they name through `read` (given the
/// policy set's folder — the naming file's, joined to `root` — and the path as written; usually
/// [`read_roster`]). The language server reads open editor buffers this way.
pub fn check_parsed(
    mut sources: Sources,
    files: &[(FileId, ast::File)],
    root: &Path,
    read: &dyn Fn(&Path, &Path) -> Result<String, Refusal>,
) -> PolicySet {
    let mut rosters: Vec<(Span, roster::Roster)> = Vec::new();
    let mut errors = Vec::new();
    for (file, ast) in files {
        let Some(dir) = sources.file(*file).map(|f| {
            Path::new(&f.name)
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf()
        }) else {
            continue;
        };
        for item in &ast.items {
            let crate::ast::Item::Roster(r) = item else {
                continue;
            };
            let csv_path = dir.join(&r.path.value);
            // The folder of the naming file is the policy set's folder: a roster must be in it.
            let text = match read(&root.join(&dir), Path::new(&r.path.value)) {
                Ok(text) => text,
                Err(refusal) => {
                    let mut diagnostic = Diagnostic::error(
                        roster_code(&refusal),
                        format!("cannot read roster `{}`", csv_path.display()),
                    )
                    .with_label(r.path.span, refusal.reason());
                    diagnostic = diagnostic.with_help(
                        refusal
                            .help()
                            .unwrap_or("a roster's path is relative to the file that names it"),
                    );
                    errors.push(diagnostic);
                    continue;
                }
            };
            let id = sources.add(csv_path.display().to_string(), text);
            let text = sources.file(id).map_or("", |f| f.text.as_str());
            match roster::parse(id, text) {
                Ok(table) => rosters.push((r.span, table)),
                Err(e) => errors.extend(e),
            }
        }
    }
    // A roster that cannot be read is an error like any other: the rest is still checked.
    let mut checked = check::check_with_rosters(files, &rosters);
    if !errors.is_empty() {
        checked.diagnostics.extend(errors);
        checked.diagnostics.sort();
        checked.program = None;
    }
    PolicySet {
        sources,
        checked,
        rosters,
    }
}

fn roster_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Absolute | Refusal::OutOfFolder | Refusal::SymlinkOut { .. } => {
            "charter::roster_outside_folder"
        }
        Refusal::NotAFile { .. } => "charter::roster_not_a_file",
        Refusal::TooLarge { .. } => "charter::roster_too_large",
        Refusal::NotUtf8 | Refusal::Io(_) => "charter::roster_unreadable",
    }
}
