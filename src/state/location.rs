//! Where a state is: a SQLite file, or a PostgreSQL database named by a `postgres://` URL.
//!
//! A URL's password is kept apart from the URL as soon as it is read, in a [`Password`] that
//! shows nothing of itself: every message, and `Display` of a [`Location`], shows the URL
//! without it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a state is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    File(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresTarget),
}

/// A PostgreSQL database to keep a state in.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    /// The URL without its password.
    url: url::Url,
    /// The password, from the URL, the environment or a password file (found by `cli`).
    password: Option<Password>,
}

/// A database password: never shown (`Debug` prints `Password(…)`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Password {
        Password(text)
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("url", &self.url.as_str())
            .field("password", &self.password)
            .finish()
    }
}

/// Why a `postgres://` URL cannot be used. The wording never holds the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a PostgreSQL URL charter can use: {reason}")]
pub struct UrlError {
    pub shown: String,
    pub reason: String,
}

impl Location {
    /// Reads `--state`, `CHARTER_STATE` or `[state] url`: a `postgres://` (or
    /// `postgresql://`) URL, or a file path, taken relative to `folder` when relative.
    pub fn parse(text: &str, folder: &Path) -> Result<Location, UrlError> {
        if is_postgres_url(text) {
            return PostgresTarget::parse(text).map(Location::Postgres);
        }
        let path = PathBuf::from(text);
        Ok(Location::File(if path.is_relative() {
            folder.join(path)
        } else {
            path
        }))
    }

    /// The file, for a SQLite state.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::File(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

/// Whether `text` names a PostgreSQL database rather than a file.
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(target) => f.write_str(target.url.as_str()),
        }
    }
}

impl PostgresTarget {
    /// Reads a URL, keeping its password (if it has one) apart.
    pub fn parse(text: &str) -> Result<PostgresTarget, UrlError> {
        let mut url = url::Url::parse(text.trim()).map_err(|e| UrlError {
            shown: shown_without_password(text),
            reason: e.to_string(),
        })?;
        let password = url
            .password()
            .map(percent_decode)
            .filter(|p| !p.is_empty())
            .map(Password);
        // `set_password` fails only for URLs that cannot have one, which a parsed
        // `postgres://` URL can.
        let _ = url.set_password(None);
        let target = PostgresTarget { url, password };
        // What the client makes of it, so that a bad option is said now, not at connect.
        target.config()?;
        Ok(target)
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Whether a password is known (from the URL or given with [`Self::with_password`]).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The user the URL names, if any.
    pub fn user(&self) -> Option<&str> {
        Some(self.url.username()).filter(|u| !u.is_empty())
    }

    /// The host, port and database the URL names, with PostgreSQL's defaults, for looking up
    /// a password file's line.
    pub fn endpoint(&self) -> (String, u16, String) {
        let host = self.url.host_str().unwrap_or("localhost").to_owned();
        let port = self.url.port().unwrap_or(5432);
        let database = self.url.path().trim_start_matches('/').to_owned();
        (host, port, database)
    }

    /// The same target with this password (when the URL had none).
    pub fn with_password(mut self, password: Option<Password>) -> PostgresTarget {
        if self.password.is_none() {
            self.password = password;
        }
        self
    }

    /// The client's configuration, password included.
    pub(super) fn config(&self) -> Result<postgres::Config, UrlError> {
        let mut config: postgres::Config = self.url.as_str().parse().map_err(|e| UrlError {
            shown: self.url.to_string(),
            reason: postgres_reason(&e),
        })?;
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        if config.get_application_name().is_none() {
            config.application_name("charter");
        }
        Ok(config)
    }
}

/// A URL as shown in a message: without its password, whether or not it parses.
pub fn shown_without_password(text: &str) -> String {
    match url::Url::parse(text.trim()) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            url.to_string()
        }
        // `scheme://user:password@host…`: everything between the first `:` after the scheme's
        // `//` and the last `@` goes.
        Err(_) => match text.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((credentials, host)) => {
                    let user = credentials.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}@{host}")
                }
                None => text.to_owned(),
            },
            None => text.to_owned(),
        },
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The client's words for an error, first letter lowercase.
pub(super) fn postgres_reason(error: &postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password_and_keeps_it_apart() {
        let location = Location::parse(
            "postgres://charter:s%40cret@db.example:6543/acme",
            Path::new("."),
        )
        .unwrap();
        let Location::Postgres(target) = &location else {
            panic!("not a database: {location:?}");
        };
        assert_eq!(
            location.to_string(),
            "postgres://charter@db.example:6543/acme"
        );
        assert!(!format!("{location:?}").contains("cret"));
        assert_eq!(
            target.password.as_ref().map(Password::expose),
            Some("s@cret")
        );
        assert_eq!(
            target.endpoint(),
            ("db.example".to_owned(), 6543, "acme".to_owned())
        );
    }

    #[test]
    fn a_path_is_a_file_relative_to_the_folder_given() {
        assert_eq!(
            Location::parse("state/acme.db", Path::new("/p")).unwrap(),
            Location::File(PathBuf::from("/p/state/acme.db"))
        );
    }

    #[test]
    fn a_bad_option_is_refused_without_the_password() {
        let error = Location::parse("postgres://u:hunter2@h/d?sslmode=sometimes", Path::new("."))
            .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(error.to_string().contains("sslmode"), "{error}");
    }
}
