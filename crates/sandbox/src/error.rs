//! Errors: the ones the sandbox answers with (Make's error body) and the ones that stop it.

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::wire::{ErrorBody, SubError};

/// The message Make sends with a 429.
pub const RATE_LIMIT_MESSAGE: &str =
    "Requests limit for organization exceeded, please try again later.";

/// An error answered to a client as Make's error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: StatusCode,
    pub message: &'static str,
    pub detail: String,
    pub suberrors: Vec<String>,
}

impl ErrorResponse {
    fn new(status: StatusCode, message: &'static str, detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            status,
            message,
            detail: detail.into(),
            suberrors: Vec::new(),
        }
    }

    /// 400: the request is malformed or breaks a rule.
    pub fn bad_request(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// 400 with one suberror per problem; `detail` names the first.
    pub fn invalid(problems: Vec<String>) -> ErrorResponse {
        let detail = problems.first().cloned().unwrap_or_default();
        let mut error = ErrorResponse::new(StatusCode::BAD_REQUEST, "Validation failed", detail);
        error.suberrors = problems;
        error
    }

    /// 401: no token, or one the instance does not know.
    pub fn unauthorized(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::UNAUTHORIZED, "Access denied", detail)
    }

    /// 403: the token is known but its role does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::FORBIDDEN, "Permission denied", detail)
    }

    /// 404: no such object or endpoint.
    pub fn not_found(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }

    /// 405: the endpoint exists but not with this method.
    pub fn method_not_allowed(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", detail)
    }

    /// 409: the object would duplicate an existing one.
    pub fn conflict(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    /// 429 with Make's message.
    pub fn too_many_requests(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(StatusCode::TOO_MANY_REQUESTS, RATE_LIMIT_MESSAGE, detail)
    }

    /// 500: the sandbox failed (or a fault was injected).
    pub fn internal(detail: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            detail,
        )
    }

    /// Make's error body for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            message: self.message.to_owned(),
            detail: self.detail.clone(),
            code: format!("SC{}", self.status.as_u16()),
            suberrors: (!self.suberrors.is_empty()).then(|| {
                self.suberrors
                    .iter()
                    .map(|message| SubError {
                        message: message.clone(),
                    })
                    .collect()
            }),
        }
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<rusqlite::Error> for ErrorResponse {
    fn from(error: rusqlite::Error) -> ErrorResponse {
        ErrorResponse::internal(format!("database error: {error}"))
    }
}

/// Why the sandbox could not start, run or seed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot open the sandbox database `{path}`: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the folder `{path}` for the sandbox database: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is not a charter sandbox database: {reason}")]
    NotASandbox { path: PathBuf, reason: String },
    #[error("sandbox database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot listen on `{addr}`: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the sandbox listens on loopback only, not on `{0}`")]
    NotLoopback(std::net::SocketAddr),
    #[error("cannot start the sandbox runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the sandbox stopped unexpectedly: {0}")]
    Stopped(String),
}
