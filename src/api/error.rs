//! What can go wrong with a call to Make's admin API, worded for people and classified for the
//! executor's retry decisions.
//!
//! An [`ApiError`] names the call (method and path, never the token), says what happened
//! ([`ApiErrorKind`]) and carries Make's error body when there was one; its `Display` shows the
//! status with its reason, Make's error `code`, `detail` and `message`:
//! ``"`PATCH /admin/organizations/42` was refused (400 Bad Request, SC400): …"``. Retrying is
//! not done here: [`ApiError::is_retryable`] and [`ApiError::outcome_unknown`] tell the caller
//! what a retry would risk.

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

    /// Make's error code (`SC400`, `IM005`), when the answer's body has one.
    pub fn code(&self) -> Option<&str> {
        let code = self.body.as_ref()?.code.as_deref()?.trim();
        (!code.is_empty()).then_some(code)
    }

    /// Make's `detail` (or its `message` when `detail` is empty).
    pub fn detail(&self) -> Option<&str> {
        let body = self.body.as_ref()?;
        let detail = body.detail.as_deref().map(str::trim).unwrap_or_default();
        if detail.is_empty() {
            body.message.as_deref()
        } else {
            body.detail.as_deref()
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
                "the instance kept answering 429 although charter slowed down and waited: \
                 another client spends the same limit (the license's `apiLimit` per minute), or \
                 the limit is lower than `rate_limit`; set `rate_limit` in `charter.toml` to the \
                 share charter may use (or lower it: charter sends at 95 % of it, and after a \
                 429 at no less than half), or try again later"
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

    /// The status of the answer, or the one the kind stands for.
    fn status_or_kind(&self) -> Option<u16> {
        self.status.or(match self.kind {
            ApiErrorKind::Unauthorized => Some(401),
            ApiErrorKind::Forbidden => Some(403),
            ApiErrorKind::NotFound => Some(404),
            ApiErrorKind::RateLimited { .. } => Some(429),
            _ => None,
        })
    }

    /// The status's standard reason (`Bad Request`).
    fn reason(&self) -> Option<&'static str> {
        reqwest::StatusCode::from_u16(self.status_or_kind()?)
            .ok()?
            .canonical_reason()
    }

    /// `400 Bad Request, SC400`: the status with its reason and Make's error code, as far as
    /// the answer had them.
    fn status_words(&self) -> String {
        let mut words = match (self.status_or_kind(), self.reason()) {
            (Some(status), Some(reason)) => format!("{status} {reason}"),
            (Some(status), None) => status.to_string(),
            (None, _) => "an error".to_owned(),
        };
        if let Some(code) = self.code() {
            words.push_str(", ");
            words.push_str(code);
        }
        words
    }

    /// `: detail (message)` and the suberrors, as far as the body has them.
    fn write_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(body) = &self.body {
            let detail = body.detail.as_deref().map(str::trim).unwrap_or_default();
            let message = body.message.as_deref().map(str::trim).unwrap_or_default();
            // A message that only repeats the status's reason (`Not Found`) says nothing new.
            let repeats_status = self
                .reason()
                .is_some_and(|reason| reason.eq_ignore_ascii_case(trim_period(message)));
            if !detail.is_empty() {
                write!(f, ": {}", trim_period(detail))?;
                if !message.is_empty() && message != detail && !repeats_status {
                    write!(f, " ({})", trim_period(message))?;
                }
            } else if !message.is_empty() {
                write!(f, ": {}", trim_period(message))?;
            }
            let suberrors: Vec<&str> = body
                .suberrors
                .iter()
                .filter_map(|s| s.message.as_deref())
                .map(str::trim)
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
                write!(
                    f,
                    "`{call}` was refused: the token is not accepted ({})",
                    self.status_words()
                )?;
                self.write_body(f)
            }
            ApiErrorKind::Forbidden => {
                write!(
                    f,
                    "`{call}` was refused: the token may not do this ({})",
                    self.status_words()
                )?;
                self.write_body(f)
            }
            ApiErrorKind::NotFound => {
                write!(f, "`{call}` found nothing ({})", self.status_words())?;
                self.write_body(f)
            }
            ApiErrorKind::RateLimited { retry_after } => {
                write!(f, "`{call}` was rate limited ({})", self.status_words())?;
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
                write!(f, "`{call}` was refused ({})", self.status_words())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::SubError;

    fn call(method: Method, path: &str) -> Call {
        Call {
            method,
            path: path.to_owned(),
            query: Vec::new(),
        }
    }

    fn body(code: &str, message: &str, detail: &str, suberrors: &[&str]) -> ErrorBody {
        let given = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        ErrorBody {
            message: given(message),
            detail: given(detail),
            code: given(code),
            suberrors: suberrors
                .iter()
                .map(|m| SubError {
                    message: Some((*m).to_owned()),
                })
                .collect(),
        }
    }

    #[track_caller]
    fn check(error: ApiError, expected: &str) {
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn the_status_its_reason_and_makes_code_are_shown() {
        let patch = call(Method::Patch, "/admin/organizations/42");
        check(
            ApiError::new(patch.clone(), ApiErrorKind::Rejected)
                .with_status(400)
                .with_body(
                    Some(body(
                        "SC400",
                        "Validation failed.",
                        "license key `auditLogsDays` is `400`, above 365",
                        &["`operations` is missing"],
                    )),
                    None,
                ),
            "`PATCH /admin/organizations/42` was refused (400 Bad Request, SC400): license key \
             `auditLogsDays` is `400`, above 365 (Validation failed); also: `operations` is \
             missing",
        );
        // A code that is not `SC` and the status says more than the status alone.
        check(
            ApiError::new(call(Method::Get, "/users/me"), ApiErrorKind::Forbidden)
                .with_status(403)
                .with_body(
                    Some(body(
                        "IM005",
                        "Forbidden",
                        "the token lacks `admin:read`",
                        &[],
                    )),
                    None,
                ),
            "`GET /users/me` was refused: the token may not do this (403 Forbidden, IM005): the \
             token lacks `admin:read`",
        );
        check(
            ApiError::new(patch, ApiErrorKind::RateLimited { retry_after: None })
                .with_status(429)
                .with_body(
                    Some(body(
                        "SC429",
                        "Requests limit for organization exceeded, please try again later.",
                        "",
                        &[],
                    )),
                    None,
                ),
            "`PATCH /admin/organizations/42` was rate limited (429 Too Many Requests, SC429): \
             Requests limit for organization exceeded, please try again later",
        );
    }

    #[test]
    fn a_message_that_repeats_the_reason_is_left_out() {
        check(
            ApiError::new(
                call(Method::Get, "/organizations/7/usage"),
                ApiErrorKind::NotFound,
            )
            .with_status(404)
            .with_body(
                Some(body(
                    "SC404",
                    "Not Found",
                    "organization `7` does not exist",
                    &[],
                )),
                None,
            ),
            "`GET /organizations/7/usage` found nothing (404 Not Found, SC404): organization `7` \
             does not exist",
        );
    }

    #[test]
    fn without_a_body_or_a_known_reason_the_status_stands_alone() {
        let post = call(Method::Post, "/admin/users");
        check(
            ApiError::new(post.clone(), ApiErrorKind::Server).with_status(502),
            "`POST /admin/users` failed on the instance (502 Bad Gateway)",
        );
        check(
            ApiError::new(post.clone(), ApiErrorKind::Rejected).with_status(499),
            "`POST /admin/users` was refused (499)",
        );
        check(
            ApiError::new(post, ApiErrorKind::Unauthorized),
            "`POST /admin/users` was refused: the token is not accepted (401 Unauthorized)",
        );
    }

    #[test]
    fn a_body_with_only_some_of_its_fields_still_shows_the_code() {
        let get = call(Method::Get, "/admin/users/lookup");
        check(
            ApiError::new(get.clone(), ApiErrorKind::Rejected)
                .with_status(400)
                .with_body(Some(body("IM003", "", "", &[])), None),
            "`GET /admin/users/lookup` was refused (400 Bad Request, IM003)",
        );
        check(
            ApiError::new(get, ApiErrorKind::Rejected)
                .with_status(400)
                .with_body(Some(body("SC400", "Invalid query", "", &[])), None),
            "`GET /admin/users/lookup` was refused (400 Bad Request, SC400): Invalid query",
        );
    }
}
