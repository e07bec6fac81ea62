//! Source text of a policy set: the files, their names as the user gave them, and positions.
//!
//! Reading a policy set from disk happens here and nowhere else in the core; everything
//! downstream works on [`Sources`] and [`Span`]s into it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::input::{self, MAX_POLICY_FILE, Refusal};

/// One file of a policy set, by its position in [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// The smallest span covering both (which must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(self) -> usize {
        (self.end.saturating_sub(self.start)) as usize
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// One source file. Its `Debug` leaves out the text of a confidential file.
#[derive(Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics: the path as the user gave it.
    pub name: String,
    pub text: String,
    /// A file whose excerpts show only the values charter knows to be harmless
    /// (`charter.toml`): see [`crate::excerpt`].
    pub confidential: bool,
    line_starts: Vec<usize>,
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SourceFile");
        debug.field("name", &self.name);
        if self.confidential {
            debug.field(
                "text",
                &format_args!("<{} bytes, confidential>", self.text.len()),
            );
        } else {
            debug.field("text", &self.text);
        }
        debug
            .field("confidential", &self.confidential)
            .finish_non_exhaustive()
    }
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            text,
            confidential: false,
            line_starts,
        }
    }

    /// The number of lines (a final line without a newline counts; an empty file has one).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The 0-based line of a byte offset.
    pub fn line_index(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.line_starts.partition_point(|&s| s <= offset).max(1) - 1
    }

    /// The byte offset where a 0-based line starts.
    pub fn line_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The byte offset just after a 0-based line's newline (or the end of the text).
    pub fn line_end_with_newline(&self, line: usize) -> usize {
        self.line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_index(offset);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }
}

/// Every file of a policy set (and, later, the rosters it names), in reading order.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile::new(name, text));
        id
    }

    /// Adds a file whose excerpts mask every value that is not a known harmless setting.
    pub fn add_confidential(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = self.add(name, text);
        if let Some(file) = self.files.last_mut() {
            file.confidential = true;
        }
        id
    }

    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn ids(&self) -> impl Iterator<Item = FileId> + '_ {
        (0..self.files.len()).map(|i| FileId(u32::try_from(i).unwrap_or(u32::MAX)))
    }

    pub fn slice(&self, span: Span) -> &str {
        self.file(span.file).map_or("", |f| f.slice(span))
    }

    /// `file:line:column` of the start of a span.
    pub fn location(&self, span: Span) -> Location {
        match self.file(span.file) {
            Some(f) => {
                let (line, column) = f.line_column(span.start as usize);
                Location {
                    file: f.name.clone(),
                    line,
                    column,
                }
            }
            None => Location {
                file: String::new(),
                line: 0,
                column: 0,
            },
        }
    }

    /// Reads a policy set: one `.charter` file, or every `*.charter` file directly in a
    /// directory, in name order, with warnings for what was skipped (broken or looping
    /// symbolic links). Files are read through [`crate::input`]: regular files under
    /// [`MAX_POLICY_FILE`], and in a directory, only files whose real path is inside it.
    pub fn read_policy_set(path: &Path) -> Result<(Sources, Vec<Diagnostic>), LoadError> {
        let mut sources = Sources::new();
        let mut warnings = Vec::new();
        let meta = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
        if !meta.is_dir() {
            let text = input::read_regular(path, MAX_POLICY_FILE)
                .map_err(|refusal| LoadError::refused(path, &refusal))?;
            sources.add(path.display().to_string(), text);
            return Ok((sources, warnings));
        }
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| LoadError::io(path, e))? {
            let Ok(entry) = entry else { continue };
            let file = entry.path();
            if file.extension().is_none_or(|e| e != "charter") {
                continue;
            }
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            match std::fs::metadata(&file) {
                Ok(target) if target.is_dir() => {}
                Ok(_) => files.push(file),
                Err(error) if is_link => warnings.push(
                    Diagnostic::warning(
                        "charter::symlink_skipped",
                        format!(
                            "`{}` is a symbolic link that {}; it is skipped",
                            file.display(),
                            if error.kind() == std::io::ErrorKind::NotFound {
                                "points to nothing".to_owned()
                            } else {
                                format!(
                                    "cannot be followed ({})",
                                    input::io_refusal(&error).reason()
                                )
                            }
                        ),
                    )
                    .with_help("remove the link or make it point to a file in the folder"),
                ),
                Err(error) => return Err(LoadError::io(&file, error)),
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(LoadError::Empty(path.to_path_buf()));
        }
        for file in files {
            let name = file.file_name().map(PathBuf::from).unwrap_or_default();
            let text = input::read_inside(path, &name, MAX_POLICY_FILE)
                .map_err(|refusal| LoadError::refused(&file, &refusal))?;
            sources.add(file.display().to_string(), text);
        }
        Ok((sources, warnings))
    }
}

/// A human position: file name, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A policy set that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: PathBuf, message: String },
    #[error("`{0}` contains no `.charter` files")]
    Empty(PathBuf),
    #[error("`{0}` is not valid UTF-8")]
    NotUtf8(PathBuf),
}

impl LoadError {
    fn refused(path: &Path, refusal: &Refusal) -> LoadError {
        match refusal {
            Refusal::NotUtf8 => LoadError::NotUtf8(path.to_path_buf()),
            _ => LoadError::Io {
                path: path.to_path_buf(),
                message: refusal.reason(),
            },
        }
    }

    fn io(path: &Path, error: std::io::Error) -> LoadError {
        let message = match error.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => error.to_string().to_lowercase(),
        };
        LoadError::Io {
            path: path.to_path_buf(),
            message,
        }
    }
}
