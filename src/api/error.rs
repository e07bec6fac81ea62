//! What can go wrong with a call to Make's admin API, worded for people and classified for the
//! executor's retry decisions.
//!
//! An [`ApiError`] names the call (method and path, never the token), says what happened
//! ([`ApiErrorKind`]) and carries Make's error body when there was one. Retrying is not done
//! here: [`ApiError::is_retryable`] and [`ApiError::outcome_unknown`] tell the caller what a
//! retry would risk.

use std::fmt;
use std::time::Duration;

use crate::api::wire::ErrorBody;

/// An HTTP method charter uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }

    /// Whether the call changes the instance.
    pub fn is_write(self) -> bool {
        self != Method::Get
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call: its method, its path under `/api/v2` and its query, as a person reads them
/// (`GET /admin/users?organizationId=5`). It never holds the token, which travels only in a
/// header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    /// The path under `/api/v2`, as `/admin/organizations/5`.
    pub path: String,
    /// The query pairs, unencoded.
    pub query: Vec<(String, String)>,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        for (index, (key, value)) in self.query.iter().enumerate() {
            let separator = if index == 0 { '?' } else { '&' };
            write!(f, "{separator}{key}={value}")?;
        }
        Ok(())
    }
}

/// What happened to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 401: no token, or one the instance does not accept.
    Unauthorized,
    /// 403: the token's user may not do this.
    Forbidden,
    /// 404: no such object or endpoint.
    NotFound,
    /// 429: over the instance's rate limit; nothing was done.
    RateLimited {
        /// From `Retry-After`, when the instance sent one.
        retry_after: Option<Duration>,
    },
    /// A 5xx answer: the instance failed. For a write, it may have failed after the change.
    Server,
    /// Another 4xx answer (400 validation, 409 conflict, …): the instance refused the call and
    /// changed nothing.
    Rejected,
    /// A 3xx answer: charter follows no redirects, since they could carry the token elsewhere.
    Redirected { location: Option<String> },
    /// No complete answer within the request timeout.
    Timeout { after: Duration },
    /// The connection could not be made: the request was never sent.
    Unreachable { reason: String },
    /// The connection failed after the request was sent, before a complete answer.
    ConnectionLost { reason: String },
    /// The answer was not the JSON that the call returns.
    BadResponse { problem: String },
    /// charter refused to send the call (it would have sent something Make must not get).
    NotSent { reason: String },
    /// The answers of several calls contradict each other: the instance changed while it was
    /// being read.
    Inconsistent { problem: String },
}

/// A failed call to Make's admin API (boxed: it travels in every `Result` of the client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError(Box<Failure>);

/// What an [`ApiError`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub call: Call,
    pub kind: ApiErrorKind,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Make's error body, when the answer had one.
    pub body: Option<ErrorBody>,
    /// The start of an answer that was not Make's error body (an HTML page from a proxy).
    pub excerpt: Option<String>,
}

impl std::ops::Deref for ApiError {
    type Target = Failure;

    fn deref(&self) -> &Failure {
        &self.0
    }
}

impl ApiError {
    pub(crate) fn new(call: Call, kind: ApiErrorKind) -> ApiError {
        ApiError(Box::new(Failure {
            call,
            kind,
            status: None,
            body: None,
            excerpt: None,
        }))
    }

    pub(crate) fn with_status(mut self, status: u16) -> ApiError {
        self.0.status = Some(status);
        self
    }

    pub(crate) fn with_body(
        mut self,
        body: Option<ErrorBody>,
        excerpt: Option<String>,
    ) -> ApiError {
        self.0.body = body;
        self.0.excerpt = excerpt;
        self
    }

    /// Whether the same call may succeed if it is made again later: rate limits, server errors,
    /// timeouts, connection failures and a read that met a changing instance. For a write,
    /// check [`ApiError::outcome_unknown`] first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ApiErrorKind::RateLimited { .. }
                | ApiErrorKind::Server
                | ApiErrorKind::Timeout { .. }
                | ApiErrorKind::Unreachable { .. }
                | ApiErrorKind::ConnectionLost { .. }
                | ApiErrorKind::Inconsistent { .. }
        )
    }

    /// Whether a write may have been applied although no success came back: a 5xx, a timeout or
    /// a connection lost after sending. Make has no idempotency keys, so the caller must look the
    /// object up (a user by e-mail, an organization by name) before trying again. Always false
    /// for reads and for calls that were refused or never sent.
    pub fn outcome_unknown(&self) -> bool {
        self.call.method.is_write()
            && matches!(
                self.kind,
                ApiErrorKind::Server
                    | ApiErrorKind::Timeout { .. }
                    | ApiErrorKind::ConnectionLost { .. }
            )
    }

    /// How long the instance asked to wait, for a 429 with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ApiErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }

    /// Make's `detail` (or its `message` when `detail` is empty).
    pub fn detail(&self) -> Option<&str> {
        let body = self.body.as_ref()?;
        if body.detail.trim().is_empty() {
            Some(body.message.as_str())
        } else {
            Some(body.detail.as_str())
        }
    }

    /// What to do about it, where there is something to say.
    pub fn help(&self) -> Option<String> {
        let write = self.call.method.is_write();
        match &self.kind {
            ApiErrorKind::Unauthorized => Some(
                "check the API token: the variable named by `token_env` (or the file named by \
                 `token_file`) must hold a token the instance accepts"
                    .to_owned(),
            ),
            ApiErrorKind::Forbidden => Some(
                "the token's user needs an instance administration role (`SA` or `Admin`; `BI` \
                 can only read) and the token the `admin:read` and `admin:write` scopes"
                    .to_owned(),
            ),
            ApiErrorKind::RateLimited { .. } => Some(
                "the instance's rate limit (the license's `apiLimit` per minute) was reached; \
                 lower `rate_limit` in `charter.toml` or try again later"
                    .to_owned(),
            ),
            ApiErrorKind::Unreachable { .. } => Some(
                "check the instance's `url` and that it can be reached from this machine"
                    .to_owned(),
            ),
            ApiErrorKind::Redirected { .. } => Some(
                "set `url` to the address the instance answers on itself; charter follows no \
                 redirects"
                    .to_owned(),
            ),
            kind if write && self.outcome_unknown() => Some(match kind {
                ApiErrorKind::Server => "the change may or may not have been applied; look the \
                                         object up before trying again"
                    .to_owned(),
                _ => "no answer came, so the change may or may not have been applied; look the \
                      object up before trying again"
                    .to_owned(),
            }),
            ApiErrorKind::Inconsistent { .. } => {
                Some("the instance changed while charter read it; read it again".to_owned())
            }
            _ => None,
        }
    }

    fn status_words(&self) -> String {
        match self.status {
            Some(status) => format!("{status}"),
            None => "an error".to_owned(),
        }
    }

    /// `: detail (message)` and the suberrors, as far as the body has them.
    fn write_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(body) = &self.body {
            let detail = body.detail.trim();
            let message = body.message.trim();
            if !detail.is_empty() {
                write!(f, ": {}", trim_period(detail))?;
                if !message.is_empty() && message != detail {
                    write!(f, " ({})", trim_period(message))?;
                }
            } else if !message.is_empty() {
                write!(f, ": {}", trim_period(message))?;
            }
            let suberrors: Vec<&str> = body
                .suberrors
                .iter()
                .flatten()
                .map(|s| s.message.trim())
                .filter(|s| !s.is_empty() && *s != detail)
                .collect();
            if !suberrors.is_empty() {
                write!(f, "; also: {}", suberrors.join("; "))?;
            }
        } else if let Some(excerpt) = &self.excerpt {
            write!(f, ": the answer is not Make's error body: `{excerpt}`")?;
        }
        Ok(())
    }
}

fn trim_period(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = &self.call;
        match &self.kind {
            ApiErrorKind::Unauthorized => {
                write!(f, "`{call}` was refused: the token is not accepted (401)")?;
                self.write_body(f)
            }
            ApiErrorKind::Forbidden => {
                write!(f, "`{call}` was refused: the token may not do this (403)")?;
                self.write_body(f)
            }
            ApiErrorKind::NotFound => {
                write!(f, "`{call}` found nothing (404)")?;
                self.write_body(f)
            }
            ApiErrorKind::RateLimited { retry_after } => {
                write!(f, "`{call}` was rate limited (429)")?;
                self.write_body(f)?;
                if let Some(after) = retry_after {
                    write!(f, "; retry after {} s", after.as_secs())?;
                }
                Ok(())
            }
            ApiErrorKind::Server => {
                write!(
                    f,
                    "`{call}` failed on the instance ({})",
                    self.status_words()
                )?;
                self.write_body(f)
            }
            ApiErrorKind::Rejected => {
                write!(f, "`{call}` was rejected ({})", self.status_words())?;
                self.write_body(f)
            }
            ApiErrorKind::Redirected { location } => {
                write!(f, "`{call}` was redirected ({})", self.status_words())?;
                if let Some(location) = location {
                    write!(f, " to `{location}`")?;
                }
                Ok(())
            }
            ApiErrorKind::Timeout { after } => {
                write!(
                    f,
                    "`{call}` got no answer within {}",
                    human_duration(*after)
                )?;
                if call.method.is_write() {
                    f.write_str("; whether it was applied is unknown")?;
                }
                Ok(())
            }
            ApiErrorKind::Unreachable { reason } => {
                write!(f, "`{call}` could not reach the instance: {reason}")
            }
            ApiErrorKind::ConnectionLost { reason } => {
                write!(
                    f,
                    "`{call}` lost its connection before the answer: {reason}"
                )?;
                if call.method.is_write() {
                    f.write_str("; whether it was applied is unknown")?;
                }
                Ok(())
            }
            ApiErrorKind::BadResponse { problem } => {
                write!(
                    f,
                    "`{call}` answered {} with a body charter cannot read: {problem}",
                    self.status_words()
                )
            }
            ApiErrorKind::NotSent { reason } => write!(f, "`{call}` was not sent: {reason}"),
            ApiErrorKind::Inconsistent { problem } => {
                write!(
                    f,
                    "the instance changed while it was read (at `{call}`): {problem}"
                )
            }
        }
    }
}

impl std::error::Error for ApiError {}

fn human_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{millis} ms")
    }
}
