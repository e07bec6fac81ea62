//! `charter lsp`: a Language Server Protocol server over stdio.
//!
//! The server is one loop on one thread (a second only reads frames): take a frame
//! ([`transport`]), act on it, answer. A policy set is the directory of an open file; it is
//! parsed and checked by the project's own parser and checker ([`analysis`]), with open
//! buffers in place of the files on disk, once one of its buffers has changed, and its
//! diagnostics are published as soon as no other message is waiting (a burst of keystrokes is
//! checked once). Requests are answered from that analysis ([`features`], [`completion`]). Nothing a client sends ends the loop but
//! `exit` or the end of the stream: malformed frames, unknown methods and bad parameters get
//! JSON-RPC errors.

mod analysis;
mod completion;
mod features;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::TryRecvError;

use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CodeActionOrCommand, CodeActionProviderCapability, CompletionOptions, GotoDefinitionResponse,
    Hover, HoverContents, HoverProviderCapability, InitializeParams, InitializeResult,
    MarkupContent, MarkupKind, OneOf, PositionEncodingKind, PrepareRenameResponse,
    PublishDiagnosticsParams, RenameOptions, ServerCapabilities, ServerInfo,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit, Url,
};
use serde::de::DeserializeOwned;

use analysis::{Analysis, Overlay};

/// How the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit` after `shutdown`.
    Clean,
    /// `exit` without `shutdown`, or the stream ended (LSP: exit code 1).
    Abrupt,
}

/// Runs the server on stdin and stdout.
pub fn run() -> io::Result<Exit> {
    serve(io::BufReader::new(io::stdin()), io::stdout().lock())
}

/// The message loop: reads frames from `input` until `exit` or its end, writes to `output`.
/// Only an error of the streams themselves is an `Err`.
///
/// Frames are read on a thread of their own, so that the loop sees what is already waiting:
/// diagnostics are published once nothing is, and a burst of keystrokes is checked once.
pub fn serve(input: impl BufRead + Send + 'static, mut output: impl Write) -> io::Result<Exit> {
    let (frames, incoming) = std::sync::mpsc::sync_channel(16);
    std::thread::Builder::new()
        .name("lsp-reader".to_string())
        .spawn(move || {
            let mut input = input;
            loop {
                let frame = transport::read(&mut input);
                let last = matches!(frame, Ok(transport::Frame::End) | Err(_));
                if frames.send(frame).is_err() || last {
                    return;
                }
            }
        })?;
    let mut server = Server::default();
    loop {
        let frame = match incoming.try_recv() {
            Ok(frame) => frame,
            Err(TryRecvError::Empty) => {
                for message in server.publish() {
                    send(&mut output, message)?;
                }
                match incoming.recv() {
                    Ok(frame) => frame,
                    Err(_) => return Ok(Exit::Abrupt),
                }
            }
            Err(TryRecvError::Disconnected) => return Ok(Exit::Abrupt),
        };
        let message = match frame? {
            transport::Frame::End => return Ok(Exit::Abrupt),
            transport::Frame::Invalid { id, code, message } => {
                match id {
                    Some(id) => send(
                        &mut output,
                        Response::new_err(id, code as i32, message).into(),
                    )?,
                    None => transport::write_error_without_id(&mut output, code, &message)?,
                }
                continue;
            }
            transport::Frame::Message(message) => message,
        };
        match message {
            Message::Request(request) => send(&mut output, server.request(request).into())?,
            Message::Notification(n) if n.method == note::Exit::METHOD => {
                return Ok(if server.shut_down {
                    Exit::Clean
                } else {
                    Exit::Abrupt
                });
            }
            // A bug while reading a buffer costs its diagnostics, not the session.
            Message::Notification(n) => {
                let _ = catch_unwind(AssertUnwindSafe(|| server.notification(n)));
            }
            // The server sends no requests, so a response answers nothing.
            Message::Response(_) => {}
        }
    }
}

fn send(output: &mut impl Write, message: Message) -> io::Result<()> {
    transport::write(output, &message)
}

/// An open buffer.
struct Document {
    text: String,
}

#[derive(Default)]
struct Server {
    initialized: bool,
    shut_down: bool,
    /// Files are named relative to this in hovers and related information.
    root: PathBuf,
    documents: BTreeMap<PathBuf, Document>,
    /// Analyses by policy-set directory; dropped when one of the set's buffers changes.
    analyses: HashMap<PathBuf, Rc<Analysis>>,
    /// Policy sets whose diagnostics the editor shows, and the files it shows them for.
    published: BTreeMap<PathBuf, Vec<Url>>,
    /// Whether a buffer changed since diagnostics were last published.
    unpublished: bool,
}

/// A request that failed, as its error response.
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl Overlay for BTreeMap<PathBuf, Document> {
    fn text(&self, path: &Path) -> Option<String> {
        self.get(path).map(|d| d.text.clone())
    }

    fn charter_files_in(&self, dir: &Path) -> Vec<PathBuf> {
        self.keys()
            .filter(|p| p.parent() == Some(dir) && p.extension().is_some_and(|e| e == "charter"))
            .cloned()
            .collect()
    }
}

fn params<P: DeserializeOwned>(value: serde_json::Value) -> Result<P, Failure> {
    serde_json::from_value(value)
        .map_err(|e| Failure::new(ErrorCode::InvalidParams, format!("invalid parameters: {e}")))
}

fn path_of(uri: &Url) -> Result<PathBuf, Failure> {
    if uri.scheme() != "file" {
        return Err(Failure::new(
            ErrorCode::InvalidParams,
            format!("`{uri}` is not a file"),
        ));
    }
    uri.to_file_path().map_err(|()| {
        Failure::new(
            ErrorCode::InvalidParams,
            format!("`{uri}` is not a file path"),
        )
    })
}

/// The clock, read where every command reads it.
fn now() -> i64 {
    crate::cli::now()
}

impl Server {
    fn request(&mut self, request: Request) -> Response {
        let id = request.id.clone();
        if !self.initialized && request.method != req::Initialize::METHOD {
            return error(
                id,
                ErrorCode::ServerNotInitialized,
                "the server is not initialized",
            );
        }
        if self.shut_down {
            return error(id, ErrorCode::InvalidRequest, "the server is shutting down");
        }
        // A bug in a handler answers that request with an error instead of ending the session.
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(request)));
        match result {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err(failure)) => error(id, failure.code, &failure.message),
            Err(_) => error(
                id,
                ErrorCode::InternalError,
                "internal error while answering",
            ),
        }
    }

    fn dispatch(&mut self, request: Request) -> Result<serde_json::Value, Failure> {
        let p = request.params;
        let json = |v: serde_json::Value| Ok(v);
        match request.method.as_str() {
            req::Initialize::METHOD => json(to_json(self.initialize(params(p)?)?)),
            req::Shutdown::METHOD => {
                self.shut_down = true;
                Ok(serde_json::Value::Null)
            }
            req::HoverRequest::METHOD => json(to_json(self.hover(params(p)?)?)),
            req::GotoDefinition::METHOD => json(to_json(self.definition(params(p)?)?)),
            req::References::METHOD => json(to_json(self.references(params(p)?)?)),
            req::Completion::METHOD => json(to_json(self.completion(params(p)?)?)),
            req::CodeActionRequest::METHOD => json(to_json(self.code_action(params(p)?)?)),
            req::Formatting::METHOD => json(to_json(self.formatting(params(p)?)?)),
            req::DocumentSymbolRequest::METHOD => json(to_json(self.symbols(params(p)?)?)),
            req::PrepareRenameRequest::METHOD => json(to_json(self.prepare_rename(params(p)?)?)),
            req::Rename::METHOD => json(to_json(self.rename(params(p)?)?)),
            req::SemanticTokensFullRequest::METHOD => {
                json(to_json(self.semantic_tokens(params(p)?)?))
            }
            method => Err(Failure::new(
                ErrorCode::MethodNotFound,
                format!("unknown method `{method}`"),
            )),
        }
    }

    fn notification(&mut self, n: Notification) {
        if !self.initialized {
            return;
        }
        let changed = match n.method.as_str() {
            note::DidOpenTextDocument::METHOD => {
                params::<lsp_types::DidOpenTextDocumentParams>(n.params)
                    .ok()
                    .and_then(|p| {
                        let path = path_of(&p.text_document.uri).ok()?;
                        self.documents.insert(
                            path.clone(),
                            Document {
                                text: p.text_document.text,
                            },
                        );
                        Some(path)
                    })
            }
            note::DidChangeTextDocument::METHOD => {
                params::<lsp_types::DidChangeTextDocumentParams>(n.params)
                    .ok()
                    .and_then(|p| {
                        let path = path_of(&p.text_document.uri).ok()?;
                        // Full synchronisation: the last change holds the whole text.
                        let text = p.content_changes.into_iter().last()?.text;
                        self.documents.insert(path.clone(), Document { text });
                        Some(path)
                    })
            }
            note::DidCloseTextDocument::METHOD => {
                params::<lsp_types::DidCloseTextDocumentParams>(n.params)
                    .ok()
                    .and_then(|p| {
                        let path = path_of(&p.text_document.uri).ok()?;
                        self.documents.remove(&path);
                        Some(path)
                    })
            }
            note::DidSaveTextDocument::METHOD | note::DidChangeWatchedFiles::METHOD => {
                self.analyses.clear();
                self.unpublished = true;
                return;
            }
            _ => None,
        };
        if let Some(path) = changed {
            self.changed(&path);
        }
    }

    fn initialize(&mut self, p: InitializeParams) -> Result<InitializeResult, Failure> {
        if self.initialized {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                "already initialized",
            ));
        }
        self.initialized = true;
        #[expect(deprecated, reason = "older clients send only `rootUri`")]
        let root = p
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .map(|f| f.uri.clone())
            .or(p.root_uri);
        self.root = root
            .and_then(|u| u.to_file_path().ok())
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(PositionEncodingKind::UTF16),
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::FULL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![" ".into(), ".".into(), "[".into()]),
                    ..CompletionOptions::default()
                }),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                document_symbol_provider: Some(OneOf::Left(true)),
                semantic_tokens_provider: Some(
                    lsp_types::SemanticTokensOptions {
                        legend: lsp_types::SemanticTokensLegend {
                            token_types: features::TOKEN_TYPES.to_vec(),
                            token_modifiers: features::TOKEN_MODIFIERS.to_vec(),
                        },
                        full: Some(lsp_types::SemanticTokensFullOptions::Bool(true)),
                        ..lsp_types::SemanticTokensOptions::default()
                    }
                    .into(),
                ),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: Default::default(),
                })),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "charter".to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            }),
        })
    }

    /// The policy set a file belongs to: its directory for a `.charter` file; for any other
    /// file (a roster), the set that reads it, else its directory.
    fn set_of(&mut self, path: &Path) -> Option<PathBuf> {
        let dir = path.parent()?.to_path_buf();
        if path.extension().is_some_and(|e| e == "charter") {
            return Some(dir);
        }
        let known: Vec<PathBuf> = self.published.keys().cloned().collect();
        for set in known {
            if self.analysis(&set).file_of(path).is_some() {
                return Some(set);
            }
        }
        let has_policies = !self.documents.charter_files_in(&dir).is_empty()
            || std::fs::read_dir(&dir).is_ok_and(|mut entries| {
                entries
                    .any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "charter")))
            });
        has_policies.then_some(dir)
    }

    fn analysis(&mut self, set: &Path) -> Rc<Analysis> {
        if let Some(a) = self.analyses.get(set) {
            return Rc::clone(a);
        }
        let a = Rc::new(Analysis::new(set, &self.root, &self.documents));
        self.analyses.insert(set.to_path_buf(), Rc::clone(&a));
        a
    }

    /// A buffer changed: its set (every set, for a roster) is to be checked again.
    fn changed(&mut self, path: &Path) {
        if path.extension().is_some_and(|e| e == "charter") {
            if let Some(dir) = path.parent() {
                self.analyses.remove(dir);
            }
        } else {
            self.analyses.clear();
        }
        if let Some(set) = self.set_of(path) {
            self.published.entry(set).or_default();
        }
        self.unpublished = true;
    }

    /// The diagnostics of every known set, if something changed since they were published.
    fn publish(&mut self) -> Vec<Message> {
        if !std::mem::take(&mut self.unpublished) {
            return Vec::new();
        }
        catch_unwind(AssertUnwindSafe(|| self.publish_all())).unwrap_or_default()
    }

    fn publish_all(&mut self) -> Vec<Message> {
        let sets: Vec<PathBuf> = self.published.keys().cloned().collect();
        let mut out = Vec::new();
        for set in sets {
            let analysis = self.analysis(&set);
            let lists = features::diagnostics(&analysis);
            let now: Vec<Url> = lists.iter().map(|(u, _)| u.clone()).collect();
            // Files that left the set get an empty list, so the editor forgets them.
            let gone: Vec<Url> = self
                .published
                .get(&set)
                .map(|before| {
                    before
                        .iter()
                        .filter(|u| !now.contains(u))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for (uri, diagnostics) in lists
                .into_iter()
                .chain(gone.into_iter().map(|u| (u, Vec::new())))
            {
                out.push(
                    Notification::new(
                        note::PublishDiagnostics::METHOD.to_string(),
                        PublishDiagnosticsParams {
                            uri,
                            diagnostics,
                            version: None,
                        },
                    )
                    .into(),
                );
            }
            self.published.insert(set, now);
        }
        out
    }

    /// The analysis, file and byte offset of a position in a document.
    fn locate(
        &mut self,
        position: &lsp_types::TextDocumentPositionParams,
    ) -> Result<(Rc<Analysis>, crate::source::FileId, usize), Failure> {
        let path = path_of(&position.text_document.uri)?;
        let set = self.set_of(&path).ok_or_else(|| {
            Failure::new(
                ErrorCode::InvalidParams,
                "the file belongs to no policy set",
            )
        })?;
        let analysis = self.analysis(&set);
        let file = analysis.file_of(&path).ok_or_else(|| {
            Failure::new(
                ErrorCode::InvalidParams,
                "the file is not part of its policy set",
            )
        })?;
        let text = analysis.sources.file(file).map_or("", |f| f.text.as_str());
        let offset = analysis::offset(text, position.position);
        Ok((analysis, file, offset))
    }

    fn hover(&mut self, p: lsp_types::HoverParams) -> Result<Option<Hover>, Failure> {
        let (analysis, file, offset) = self.locate(&p.text_document_position_params)?;
        let Some(occurrence) = analysis.occurrence_at(file, offset) else {
            return Ok(None);
        };
        Ok(
            features::hover(&analysis, occurrence, now()).map(|value| Hover {
                contents: HoverContents::Markup(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value,
                }),
                range: Some(analysis::range(&analysis.sources, occurrence.span)),
            }),
        )
    }

    fn definition(
        &mut self,
        p: lsp_types::GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>, Failure> {
        let (analysis, file, offset) = self.locate(&p.text_document_position_params)?;
        Ok(analysis
            .occurrence_at(file, offset)
            .map(|o| GotoDefinitionResponse::Array(features::definition(&analysis, o))))
    }

    fn references(
        &mut self,
        p: lsp_types::ReferenceParams,
    ) -> Result<Option<Vec<lsp_types::Location>>, Failure> {
        let (analysis, file, offset) = self.locate(&p.text_document_position)?;
        Ok(analysis
            .occurrence_at(file, offset)
            .map(|o| features::references(&analysis, o, p.context.include_declaration)))
    }

    fn completion(
        &mut self,
        p: lsp_types::CompletionParams,
    ) -> Result<Option<lsp_types::CompletionResponse>, Failure> {
        let (analysis, file, offset) = self.locate(&p.text_document_position)?;
        let text = analysis.sources.file(file).map_or("", |f| f.text.as_str());
        let items = completion::completion(Some(&analysis), text, offset);
        Ok(Some(lsp_types::CompletionResponse::Array(items)))
    }

    fn code_action(
        &mut self,
        p: lsp_types::CodeActionParams,
    ) -> Result<Option<Vec<CodeActionOrCommand>>, Failure> {
        let actions = features::code_actions(&p.text_document.uri, &p.context.diagnostics);
        Ok(Some(
            actions
                .into_iter()
                .map(CodeActionOrCommand::CodeAction)
                .collect(),
        ))
    }

    fn formatting(
        &mut self,
        p: lsp_types::DocumentFormattingParams,
    ) -> Result<Option<Vec<TextEdit>>, Failure> {
        let path = path_of(&p.text_document.uri)?;
        if path.extension().is_none_or(|e| e != "charter") {
            return Ok(None);
        }
        let text = match self.documents.get(&path) {
            Some(d) => d.text.clone(),
            None => std::fs::read_to_string(&path).map_err(|e| {
                Failure::new(
                    ErrorCode::RequestFailed,
                    format!("cannot read the file: {e}"),
                )
            })?,
        };
        // A file that does not parse is left as it is; its syntax errors are already shown.
        let Ok(formatted) = crate::syntax::format_source(&path.display().to_string(), &text) else {
            return Ok(None);
        };
        if formatted == text {
            return Ok(Some(Vec::new()));
        }
        let file = crate::source::SourceFile::new("", text.as_str());
        Ok(Some(vec![TextEdit {
            range: lsp_types::Range {
                start: lsp_types::Position::default(),
                end: analysis::position(&file, text.len()),
            },
            new_text: formatted,
        }]))
    }

    fn symbols(
        &mut self,
        p: lsp_types::DocumentSymbolParams,
    ) -> Result<Option<lsp_types::DocumentSymbolResponse>, Failure> {
        let path = path_of(&p.text_document.uri)?;
        let Some(set) = self.set_of(&path) else {
            return Ok(None);
        };
        let analysis = self.analysis(&set);
        let Some(file) = analysis.file_of(&path) else {
            return Ok(None);
        };
        Ok(Some(lsp_types::DocumentSymbolResponse::Nested(
            features::symbols(&analysis, file),
        )))
    }

    fn semantic_tokens(
        &mut self,
        p: lsp_types::SemanticTokensParams,
    ) -> Result<Option<lsp_types::SemanticTokensResult>, Failure> {
        let path = path_of(&p.text_document.uri)?;
        let Some(set) = self.set_of(&path) else {
            return Ok(None);
        };
        let analysis = self.analysis(&set);
        let Some(file) = analysis.file_of(&path) else {
            return Ok(None);
        };
        Ok(Some(
            lsp_types::SemanticTokens {
                result_id: None,
                data: features::semantic_tokens(&analysis, file),
            }
            .into(),
        ))
    }

    fn prepare_rename(
        &mut self,
        p: lsp_types::TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>, Failure> {
        let (analysis, file, offset) = self.locate(&p)?;
        let Some(occurrence) = analysis.occurrence_at(file, offset) else {
            return Ok(None);
        };
        if !features::renameable(&occurrence.symbol) {
            return Err(Failure::new(
                ErrorCode::RequestFailed,
                "only tiers, add-ons and states can be renamed",
            ));
        }
        Ok(Some(PrepareRenameResponse::RangeWithPlaceholder {
            range: analysis::range(&analysis.sources, occurrence.span),
            placeholder: occurrence.symbol.name().to_string(),
        }))
    }

    fn rename(
        &mut self,
        p: lsp_types::RenameParams,
    ) -> Result<Option<lsp_types::WorkspaceEdit>, Failure> {
        let (analysis, file, offset) = self.locate(&p.text_document_position)?;
        let Some(occurrence) = analysis.occurrence_at(file, offset) else {
            return Ok(None);
        };
        if let Some(refusal) = features::rename_refusal(&analysis, &occurrence.symbol, &p.new_name)
        {
            return Err(Failure::new(ErrorCode::RequestFailed, refusal));
        }
        Ok(Some(features::rename(
            &analysis,
            &occurrence.symbol,
            &p.new_name,
        )))
    }
}

fn to_json(value: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn error(id: RequestId, code: ErrorCode, message: &str) -> Response {
    Response::new_err(id, code as i32, message.to_string())
}
