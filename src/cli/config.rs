//! `charter.toml`, the environment and the flags: which instance to talk to and how.
//!
//! Each setting is taken from the first of: a flag, an environment variable, `charter.toml`
//! beside the policy set. The token itself is never in the file: `token_env` names the
//! environment variable that holds it, or `token_file` a file that does. Without an instance
//! `url`, commands use the embedded sandbox in `.charter/sandbox.db` beside the policy set.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::api::limiter::DEFAULT_SHARE_PERCENT;
use crate::api::pacing::DEFAULT_SEED;
use crate::api::{ClientOptions, InstanceUrl, Limiter, Pacing, RateLimit, RetryPolicy, Token};
use crate::apply::DEFAULT_CONCURRENCY;
use crate::diagnostic::{Diagnostic, suggest};
use crate::input::{self, MAX_CONFIG_FILE, MAX_TOKEN_FILE};
use crate::source::{Sources, Span};
use crate::state::{Location, Password, PostgresTarget};

/// The configuration file's name.
pub const FILE_NAME: &str = "charter.toml";
/// The environment variable read for the token when no `token_env` or `token_file` is set.
pub const DEFAULT_TOKEN_ENV: &str = "CHARTER_TOKEN";
/// The instance's address.
pub const ENV_URL: &str = "CHARTER_INSTANCE_URL";
/// The name of the variable holding the token.
pub const ENV_TOKEN_ENV: &str = "CHARTER_TOKEN_ENV";
/// A file holding the token.
pub const ENV_TOKEN_FILE: &str = "CHARTER_TOKEN_FILE";
/// Requests per minute.
pub const ENV_RATE_LIMIT: &str = "CHARTER_RATE_LIMIT";
/// The share of the limit charter uses, in percent.
pub const ENV_RATE_SHARE: &str = "CHARTER_RATE_SHARE";
/// Calls in flight at once.
pub const ENV_CONCURRENCY: &str = "CHARTER_CONCURRENCY";
/// Where charter's state is: a file path or a `postgres://` URL.
pub const ENV_STATE: &str = "CHARTER_STATE";
/// charter's state database file (read after `CHARTER_STATE`).
pub const ENV_STATE_PATH: &str = "CHARTER_STATE_PATH";
/// The database password, as PostgreSQL's own tools read it.
pub const ENV_PGPASSWORD: &str = "PGPASSWORD";
/// A password file in PostgreSQL's format, instead of `~/.pgpass`.
pub const ENV_PGPASSFILE: &str = "PGPASSFILE";

use crate::schedule::ReadOptions;

const CODE: &str = "charter::config";

// The file, as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    instance: InstanceSection,
    #[serde(default)]
    state: StateSection,
    /// Only read to refuse it with a useful message.
    token: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceSection {
    url: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    rate_limit: Option<Spanned<u32>>,
    /// Percent of `rate_limit` charter uses.
    rate_share: Option<Spanned<u32>>,
    concurrency: Option<Spanned<u32>>,
    /// Seconds one call may take.
    timeout: Option<Spanned<u64>>,
    /// Seconds a connection may take.
    connect_timeout: Option<Spanned<u64>>,
    /// Only read to refuse it with a useful message.
    token: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    path: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    /// How often a plan reads back each organization's memberships (`7 days`).
    verify_every: Option<Spanned<String>>,
}

const KEYS: &[&str] = &[
    "instance",
    "state",
    "url",
    "token_env",
    "token_file",
    "rate_limit",
    "rate_share",
    "concurrency",
    "timeout",
    "connect_timeout",
    "path",
    "password_env",
    "verify_every",
];

// The settings, resolved.

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, as `--url`.
    Flag(&'static str),
    /// An environment variable, as `CHARTER_INSTANCE_URL`.
    Env(&'static str),
    /// `charter.toml`, at this place.
    File(String),
    /// charter's default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag `{flag}`"),
            Origin::Env(name) => write!(f, "environment variable `{name}`"),
            Origin::File(location) => write!(f, "`{location}`"),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// Where the token comes from; never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The environment variable of this name.
    Env(String),
    /// This file (its content, without surrounding whitespace).
    File(PathBuf),
}

/// The flags that override the environment and the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct InstanceArgs {
    /// The configuration file; default `charter.toml` beside the policy set.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The instance's address (`https://make.example.com`); overrides `[instance] url`.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The environment variable that holds the API token; overrides `token_env`.
    #[arg(long, value_name = "NAME", conflicts_with = "token_file")]
    pub token_env: Option<String>,
    /// A file that holds the API token; overrides `token_file`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// charter's state: a file, or a PostgreSQL database (`postgres://user@host/db`);
    /// overrides `CHARTER_STATE` and `[state]` in `charter.toml` (default `.charter/state.db`
    /// beside the policy set). A state belongs to one instance.
    #[arg(long, value_name = "FILE|URL", conflicts_with = "rehearse")]
    pub state: Option<String>,
    /// Rehearse: use a state and an embedded sandbox of their own (`.charter/rehearsal/`),
    /// never the configured instance or charter's state, so that any `--at` may be tried.
    #[arg(long)]
    pub rehearse: bool,
}

/// The configuration in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file read, if there was one.
    pub file: Option<PathBuf>,
    /// The policy set's folder: where `charter.toml` and `.charter/` are.
    pub base: PathBuf,
    pub url: Option<(InstanceUrl, Origin)>,
    pub token: Option<(TokenSource, Origin)>,
    /// Requests per minute, when limited.
    pub rate_limit: Option<u32>,
    /// The share of the limit charter uses, in percent (1 to 100).
    pub rate_share: u32,
    pub concurrency: u32,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Where charter's state is.
    pub state: Location,
    /// Seconds after which a plan reads an organization's remembered memberships back
    /// (`plan::reading`).
    pub verify_every: i64,
    /// A rehearsal (`--rehearse`): the state and the embedded sandbox in
    /// `.charter/rehearsal/`, no instance.
    pub rehearsal: bool,
}

impl Config {
    /// The client options these settings give.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            connect_timeout: self.connect_timeout,
            request_timeout: self.timeout,
            ..ClientOptions::default()
        }
    }

    /// How the client paces its calls: at `rate_share` of `rate_limit` when there is one,
    /// otherwise learning the limit from the instance's 429s. One command makes one: its reads
    /// and its apply share the limiter.
    pub fn pacing(&self) -> Pacing {
        match self.rate_limit {
            Some(per_minute) => Pacing::new(
                Limiter::new(RateLimit {
                    per_minute,
                    share: self.share(),
                }),
                RetryPolicy::default(),
                DEFAULT_SEED,
            ),
            None => Pacing::default(),
        }
    }

    /// How plans read the instance with `refresh`.
    pub fn read_options(&self, refresh: crate::plan::reading::Refresh) -> ReadOptions {
        ReadOptions {
            refresh,
            verify_every: self.verify_every,
            rate_limit: self.rate_limit,
        }
    }

    /// `rate_share` as a fraction.
    pub fn share(&self) -> f64 {
        f64::from(self.rate_share.clamp(1, 100)) / 100.0
    }

    /// Where the embedded sandbox keeps its data.
    pub fn sandbox_path(&self) -> PathBuf {
        if self.rehearsal {
            return rehearsal_folder(&self.base).join("sandbox.db");
        }
        self.base.join(".charter").join("sandbox.db")
    }
}

/// Which instance commands talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceChoice {
    /// A configured instance, with its token (whose `Debug` shows nothing of it).
    Remote { url: InstanceUrl, token: Token },
    /// No instance is configured: the sandbox embedded in charter, with its data here.
    EmbeddedSandbox { db_path: PathBuf },
}

/// A configuration that cannot be used.
#[derive(Clone, Debug)]
pub enum ConfigError {
    /// A file that cannot be read.
    Read { path: PathBuf, message: String },
    /// A problem at a place in `charter.toml`; the file's text is kept (with any token blanked
    /// out) for rendering.
    File {
        sources: Sources,
        diagnostic: Box<Diagnostic>,
    },
    /// A flag or an environment variable with a value that cannot be used.
    Setting {
        origin: Origin,
        message: String,
        help: Option<String>,
    },
}

impl ConfigError {
    pub fn help(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::File { diagnostic, .. } => diagnostic.help.clone(),
            ConfigError::Setting { help, .. } => help.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, message } => {
                write!(f, "cannot read `{}`: {message}", path.display())
            }
            ConfigError::File {
                sources,
                diagnostic,
            } => match diagnostic.primary_span() {
                Some(span) => write!(f, "{}: {}", sources.location(span), diagnostic.message),
                None => f.write_str(&diagnostic.message),
            },
            ConfigError::Setting {
                origin: Origin::Default,
                message,
                ..
            } => f.write_str(message),
            ConfigError::Setting {
                origin, message, ..
            } => write!(f, "{origin}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The policy set's folder: the path itself when it is a folder, else the file's folder.
pub fn base_folder(policy_path: &Path) -> PathBuf {
    if policy_path.is_dir() {
        return policy_path.to_path_buf();
    }
    match policy_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads the configuration for the policy set at `policy_path`: flags, then the environment
/// (read through `env`, so tests can give their own), then `charter.toml`.
pub fn load(
    policy_path: &Path,
    flags: &InstanceArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let base = base_folder(policy_path);
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (path, required) = match &flags.config {
        Some(path) => (path.clone(), true),
        None => (base.join(FILE_NAME), false),
    };
    let text = match std::fs::metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => None,
        _ => match input::read_regular(&path, MAX_CONFIG_FILE) {
            Ok(text) => Some(text),
            Err(refusal) => {
                return Err(ConfigError::Read {
                    path,
                    message: refusal.reason(),
                });
            }
        },
    };
    let (file, parsed) = match text {
        Some(text) => {
            let parsed = parse(&path, &text)?;
            (Some(path.clone()), Some(parsed))
        }
        None => (None, None),
    };
    let folder = file
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| base.clone(), Path::to_path_buf);
    let from_file = parsed.unwrap_or_default();

    // The address.
    let url = if let Some(url) = &flags.url {
        Some((
            parse_url(url, Origin::Flag("--url"))?,
            Origin::Flag("--url"),
        ))
    } else if let Some(url) = env(ENV_URL) {
        Some((parse_url(&url, Origin::Env(ENV_URL))?, Origin::Env(ENV_URL)))
    } else {
        from_file.url
    };

    // The token's source: the first level that names one.
    let token = if let Some(name) = &flags.token_env {
        let origin = Origin::Flag("--token-env");
        check_variable_name(name, &origin)?;
        Some((TokenSource::Env(name.clone()), origin))
    } else if let Some(file) = &flags.token_file {
        Some((
            TokenSource::File(file.clone()),
            Origin::Flag("--token-file"),
        ))
    } else {
        match (env(ENV_TOKEN_ENV), env(ENV_TOKEN_FILE)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Setting {
                    origin: Origin::Env(ENV_TOKEN_ENV),
                    message: format!("both `{ENV_TOKEN_ENV}` and `{ENV_TOKEN_FILE}` are set"),
                    help: Some("set one of them".to_owned()),
                });
            }
            (Some(name), None) => {
                let origin = Origin::Env(ENV_TOKEN_ENV);
                check_variable_name(&name, &origin)?;
                Some((TokenSource::Env(name), origin))
            }
            (None, Some(file)) => Some((
                TokenSource::File(PathBuf::from(file)),
                Origin::Env(ENV_TOKEN_FILE),
            )),
            (None, None) => from_file.token.map(|(source, origin)| match source {
                TokenSource::File(file) if file.is_relative() => {
                    (TokenSource::File(folder.join(file)), origin)
                }
                other => (other, origin),
            }),
        }
    };

    let rate_limit = match env(ENV_RATE_LIMIT) {
        Some(text) => Some(positive(&text, Origin::Env(ENV_RATE_LIMIT))?),
        None => from_file.rate_limit,
    };
    let rate_share = match env(ENV_RATE_SHARE) {
        Some(text) => percent(&text, Origin::Env(ENV_RATE_SHARE))?,
        None => from_file.rate_share.unwrap_or(DEFAULT_SHARE_PERCENT),
    };
    let concurrency = match env(ENV_CONCURRENCY) {
        Some(text) => positive(&text, Origin::Env(ENV_CONCURRENCY))?,
        None => from_file
            .concurrency
            .unwrap_or(u32::try_from(DEFAULT_CONCURRENCY).unwrap_or(u32::MAX)),
    };
    let state = if flags.rehearse {
        // A rehearsal touches neither the instance nor charter's state.
        Location::File(rehearsal_folder(&base).join("state.db"))
    } else {
        state_location(
            flags.state.as_deref(),
            &env,
            from_file.state,
            &folder,
            &base,
        )?
    };
    let (url, token) = if flags.rehearse {
        (None, None)
    } else {
        (url, token)
    };
    let defaults = ClientOptions::default();
    Ok(Config {
        file,
        base,
        url,
        token,
        rate_limit,
        rate_share,
        concurrency,
        timeout: from_file.timeout.unwrap_or(defaults.request_timeout),
        connect_timeout: from_file
            .connect_timeout
            .unwrap_or(defaults.connect_timeout),
        state,
        verify_every: from_file
            .verify_every
            .unwrap_or(crate::plan::reading::DEFAULT_VERIFY_EVERY),
        rehearsal: flags.rehearse,
    })
}

/// A warning when the configured token file can be read by users other than its owner.
pub fn token_file_warning(config: &Config) -> Option<String> {
    match &config.token {
        Some((TokenSource::File(path), _)) if input::readable_by_others(path) => Some(format!(
            "the token file `{}` can be read by other users\n  help: make it readable by its \
             owner only: `chmod 600 {}`",
            path.display(),
            path.display()
        )),
        _ => None,
    }
}

/// Where `--rehearse` keeps its state and its embedded sandbox.
fn rehearsal_folder(base: &Path) -> PathBuf {
    base.join(".charter").join("rehearsal")
}

/// Chooses the instance: the configured one with its token, or the embedded sandbox when no
/// `url` is set anywhere.
pub fn resolve_instance(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<InstanceChoice, ConfigError> {
    let Some((url, _)) = &config.url else {
        if let Some((_, origin)) = &config.token {
            return Err(ConfigError::Setting {
                origin: origin.clone(),
                message: "a token is configured but no instance `url`".to_owned(),
                help: Some(format!(
                    "set `url` in `[instance]` of `{FILE_NAME}` or `{ENV_URL}`; or remove the \
                     token setting to use the embedded sandbox"
                )),
            });
        }
        return Ok(InstanceChoice::EmbeddedSandbox {
            db_path: config.sandbox_path(),
        });
    };
    let (source, origin) = config.token.clone().unwrap_or((
        TokenSource::Env(DEFAULT_TOKEN_ENV.to_owned()),
        Origin::Default,
    ));
    let token_help = format!(
        "charter reads the API token from the environment variable named by `token_env` \
         (default `{DEFAULT_TOKEN_ENV}`) or from the file named by `token_file`"
    );
    let text = match &source {
        TokenSource::Env(name) => env(name).ok_or_else(|| ConfigError::Setting {
            origin: origin.clone(),
            message: format!(
                "the environment variable `{name}` that should hold the API token is not set"
            ),
            help: Some(token_help.clone()),
        })?,
        TokenSource::File(path) => {
            input::read_regular(path, MAX_TOKEN_FILE).map_err(|refusal| ConfigError::Setting {
                origin: origin.clone(),
                message: format!(
                    "cannot read the token file `{}`: {}",
                    path.display(),
                    refusal.reason()
                ),
                help: Some(token_help.clone()),
            })?
        }
    };
    let token = Token::new(text).map_err(|error| ConfigError::Setting {
        origin,
        message: match &source {
            TokenSource::Env(name) => format!("the environment variable `{name}`: {error}"),
            TokenSource::File(path) => format!("the token file `{}`: {error}", path.display()),
        },
        help: None,
    })?;
    Ok(InstanceChoice::Remote {
        url: url.clone(),
        token,
    })
}

/// The file's settings, checked, with their origins.
#[derive(Debug, Default)]
struct FileSettings {
    url: Option<(InstanceUrl, Origin)>,
    token: Option<(TokenSource, Origin)>,
    rate_limit: Option<u32>,
    rate_share: Option<u32>,
    concurrency: Option<u32>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    state: FileState,
    verify_every: Option<i64>,
}

/// `[state]` of the file, checked.
#[derive(Debug, Default)]
struct FileState {
    /// `url` or `path`, as written, with its origin.
    place: Option<(String, Origin)>,
    /// `password_env`: the variable holding the database password.
    password_env: Option<(String, Origin)>,
}

fn parse(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    let name = path.display().to_string();
    let located = |text: &str, range: std::ops::Range<usize>, diagnostic: Diagnostic| {
        // Excerpts of `charter.toml` show only the values of settings charter knows.
        let mut sources = Sources::new();
        let file = sources.add_confidential(name.clone(), text.to_owned());
        ConfigError::File {
            sources,
            diagnostic: Box::new(
                diagnostic.with_label(Span::new(file, range.start, range.end), "here".to_owned()),
            ),
        }
    };
    let config: FileConfig = toml::from_str(text).map_err(|error| {
        // The `token` keys exist only to be refused: they are not offered as expected keys.
        let message = error
            .message()
            .trim()
            .trim_end_matches('.')
            .replace(", `token`", "")
            .replace("`token`, ", "");
        let mut diagnostic =
            Diagnostic::error(CODE, first_lowercase(&without_quoted_values(&message)));
        if let Some(unknown) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            && let Some(near) = suggest(unknown, KEYS.iter().copied())
        {
            diagnostic = diagnostic.with_help(format!("did you mean `{near}`?"));
        }
        let range = error.span().unwrap_or(0..0);
        located(text, range, diagnostic)
    })?;
    let location = |range: &std::ops::Range<usize>| {
        let file = crate::source::SourceFile::new(name.clone(), text.to_owned());
        let (line, column) = file.line_column(range.start);
        Origin::File(format!("{name}:{line}:{column}"))
    };

    // A token written in the file is refused, and not shown back: its value is blanked out of
    // the excerpt.
    if let Some(token) = config.instance.token.as_ref().or(config.token.as_ref()) {
        let range = token.span();
        return Err(located(
            text,
            range,
            Diagnostic::error(
                CODE,
                format!("the API token cannot be written in `{FILE_NAME}`"),
            )
            .with_help(format!(
                "a file in a repository is read by everyone who reads the repository: put the \
                     token in an environment variable and name the variable with `token_env = \
                     \"MAKE_TOKEN\"` (default `{DEFAULT_TOKEN_ENV}`), or in a file outside the \
                     repository named by `token_file`"
            )),
        ));
    }
    let instance = config.instance;
    let token = match (instance.token_env, instance.token_file) {
        (Some(_), Some(file)) => {
            let range = file.span();
            return Err(located(
                text,
                range,
                Diagnostic::error(CODE, "`token_env` and `token_file` are both set")
                    .with_help("keep one of them"),
            ));
        }
        (Some(env), None) => {
            let range = env.span();
            let origin = location(&range);
            let value = env.into_inner();
            if !is_variable_name(&value) {
                return Err(located(
                    text,
                    range,
                    Diagnostic::error(
                        CODE,
                        "`token_env` must name an environment variable, not hold the token",
                    )
                    .with_help(
                        "write the variable's name (letters, digits and `_`), as `token_env = \
                         \"MAKE_TOKEN\"`, and put the token in that variable",
                    ),
                ));
            }
            Some((TokenSource::Env(value), origin))
        }
        (None, Some(file)) => {
            let origin = location(&file.span());
            Some((TokenSource::File(PathBuf::from(file.into_inner())), origin))
        }
        (None, None) => None,
    };
    let url = match instance.url {
        Some(url) => {
            let range = url.span();
            let origin = location(&range);
            match InstanceUrl::parse(url.get_ref()) {
                Ok(parsed) => Some((parsed, origin)),
                Err(error) => {
                    return Err(located(
                        text,
                        range,
                        Diagnostic::error(CODE, format!("`url`: {error}")),
                    ));
                }
            }
        }
        None => None,
    };
    let positive_in_file = |value: Option<Spanned<u32>>, key: &str| match value {
        Some(v) if *v.get_ref() == 0 => Err(located(
            text,
            v.span(),
            Diagnostic::error(CODE, format!("`{key}` must be at least 1")),
        )),
        Some(v) => Ok(Some(v.into_inner())),
        None => Ok(None),
    };
    let rate_limit = positive_in_file(instance.rate_limit, "rate_limit")?;
    let rate_share = match instance.rate_share {
        Some(v) if !(1..=100).contains(v.get_ref()) => {
            return Err(located(
                text,
                v.span(),
                Diagnostic::error(
                    CODE,
                    format!("`rate_share` is {}, not a percentage from 1 to 100", v.get_ref()),
                )
                .with_help(format!(
                    "the share of `rate_limit` charter uses, in percent (default {DEFAULT_SHARE_PERCENT})"
                )),
            ));
        }
        Some(v) => Some(v.into_inner()),
        None => None,
    };
    let concurrency = positive_in_file(instance.concurrency, "concurrency")?;
    let seconds = |value: Option<Spanned<u64>>, key: &str| match value {
        Some(v) if *v.get_ref() == 0 => Err(located(
            text,
            v.span(),
            Diagnostic::error(CODE, format!("`{key}` must be at least 1 second")),
        )),
        Some(v) => Ok(Some(Duration::from_secs(v.into_inner()))),
        None => Ok(None),
    };
    let verify_every = match config.state.verify_every.as_ref() {
        Some(v) => match crate::model::time::parse_duration(v.get_ref()) {
            Some(seconds) if seconds >= 3600 => Some(seconds),
            _ => {
                return Err(located(
                    text,
                    v.span(),
                    Diagnostic::error(
                        CODE,
                        format!(
                            "`verify_every` is `{}`, not a duration of an hour or more",
                            v.get_ref()
                        ),
                    )
                    .with_help(
                        "how often a plan reads back each organization's memberships, as `7 \
                         days` (the default) or `1 day`",
                    ),
                ));
            }
        },
        None => None,
    };
    Ok(FileSettings {
        verify_every,
        url,
        token,
        rate_limit,
        rate_share,
        concurrency,
        timeout: seconds(instance.timeout, "timeout")?,
        connect_timeout: seconds(instance.connect_timeout, "connect_timeout")?,
        state: file_state(config.state, text, &located, &location)?,
    })
}

/// `[state]`: `url` (a `postgres://` URL or a file) or `path` (a file), never with a password,
/// and `password_env`.
fn file_state(
    section: StateSection,
    text: &str,
    located: &dyn Fn(&str, std::ops::Range<usize>, Diagnostic) -> ConfigError,
    location: &dyn Fn(&std::ops::Range<usize>) -> Origin,
) -> Result<FileState, ConfigError> {
    let place = match (section.url, section.path) {
        (Some(_), Some(path)) => {
            return Err(located(
                text,
                path.span(),
                Diagnostic::error(CODE, "`url` and `path` are both set in `[state]`")
                    .with_help("keep one of them"),
            ));
        }
        (Some(url), None) => {
            let range = url.span();
            let value = url.into_inner();
            if crate::state::is_postgres_url(&value)
                && PostgresTarget::parse(&value).is_ok_and(|t| t.has_password())
            {
                return Err(located(
                    text,
                    range,
                    Diagnostic::error(
                        CODE,
                        "the database password cannot be written in `charter.toml`",
                    )
                    .with_help(format!(
                        "a file in a repository is read by everyone who reads the repository: \
                         leave the password out of `url` and put it in `{ENV_PGPASSWORD}`, in \
                         a variable named by `password_env`, or in a `.pgpass` file"
                    )),
                ));
            }
            if let Err(error) = crate::state::Location::parse(&value, Path::new(".")) {
                return Err(located(
                    text,
                    range,
                    Diagnostic::error(CODE, format!("`url`: {}", error.reason)),
                ));
            }
            Some((value, location(&range)))
        }
        (None, Some(path)) => {
            let range = path.span();
            Some((path.into_inner(), location(&range)))
        }
        (None, None) => None,
    };
    let password_env = match section.password_env {
        Some(name) => {
            let range = name.span();
            let value = name.into_inner();
            if !is_variable_name(&value) {
                return Err(located(
                    text,
                    range,
                    Diagnostic::error(
                        CODE,
                        "`password_env` must name an environment variable, not hold the password",
                    )
                    .with_help("write the variable's name (letters, digits and `_`)"),
                ));
            }
            Some((value, location(&range)))
        }
        None => None,
    };
    Ok(FileState {
        place,
        password_env,
    })
}

/// Where the state is: `--state`, else `CHARTER_STATE` (else `CHARTER_STATE_PATH`), else
/// `[state]` in the file (relative to the file's folder), else `.charter/state.db` beside the
/// policy set. A database's password comes from its URL (flag or environment only), the
/// variable `password_env` names, `PGPASSWORD`, or a password file.
fn state_location(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    file: FileState,
    folder: &Path,
    base: &Path,
) -> Result<Location, ConfigError> {
    let here = Path::new("");
    let parse = |text: &str, relative_to: &Path, origin: Origin| {
        Location::parse(text, relative_to).map_err(|error| ConfigError::Setting {
            origin,
            message: error.to_string(),
            help: None,
        })
    };
    let location = if let Some(text) = flag {
        parse(text, here, Origin::Flag("--state"))?
    } else if let Some(text) = env(ENV_STATE) {
        parse(&text, here, Origin::Env(ENV_STATE))?
    } else if let Some(text) = env(ENV_STATE_PATH) {
        Location::File(PathBuf::from(text))
    } else if let Some((text, origin)) = &file.place {
        parse(text, folder, origin.clone())?
    } else {
        Location::File(base.join(".charter").join("state.db"))
    };
    Ok(match location {
        Location::Postgres(target) if !target.has_password() => {
            let password = match &file.password_env {
                Some((name, origin)) => Some(env(name).map(Password::new).ok_or_else(|| {
                    ConfigError::Setting {
                        origin: origin.clone(),
                        message: format!(
                            "the environment variable `{name}` that should hold the database \
                             password is not set"
                        ),
                        help: None,
                    }
                })?),
                None => env(ENV_PGPASSWORD)
                    .map(Password::new)
                    .or_else(|| password_file(&target, env)),
            };
            Location::Postgres(target.with_password(password))
        }
        other => other,
    })
}

/// The password for `target` from a password file in PostgreSQL's format (`PGPASSFILE`, else
/// `~/.pgpass`): the first line `host:port:database:user:password` that matches, `*` matching
/// anything.
pub fn password_file(
    target: &PostgresTarget,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Password> {
    let path = env(ENV_PGPASSFILE)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let text = input::read_regular(&path, MAX_TOKEN_FILE).ok()?;
    let (host, port, database) = target.endpoint();
    let user = target
        .user()
        .map(str::to_owned)
        .or_else(|| env("USER"))
        .unwrap_or_default();
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(h, &host) && matches(p, &port) && matches(d, &database) && matches(u, &user))
                .then(|| Password::new(password.clone()))
        })
}

/// A `.pgpass` line's fields: `:` separates, `\` escapes.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

/// A TOML error message with the values it quotes (`invalid type: string "…"`) masked: the
/// value may be the token written under the wrong key.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        out.push_str(if i % 2 == 0 { "…" } else { part });
    }
    out
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_variable_name(name: &str, origin: &Origin) -> Result<(), ConfigError> {
    if is_variable_name(name) {
        return Ok(());
    }
    // The value is not echoed: it may be the token itself.
    Err(ConfigError::Setting {
        origin: origin.clone(),
        message: "must name an environment variable (letters, digits and `_`), not hold the token"
            .to_owned(),
        help: Some("put the token in a variable and give the variable's name".to_owned()),
    })
}

fn parse_url(text: &str, origin: Origin) -> Result<InstanceUrl, ConfigError> {
    InstanceUrl::parse(text).map_err(|error| ConfigError::Setting {
        origin,
        message: error.to_string(),
        help: None,
    })
}

fn percent(text: &str, origin: Origin) -> Result<u32, ConfigError> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(ConfigError::Setting {
            origin,
            message: format!("`{}` is not a percentage from 1 to 100", text.trim()),
            help: Some(format!(
                "the share of the rate limit charter uses (default {DEFAULT_SHARE_PERCENT})"
            )),
        }),
    }
}

fn positive(text: &str, origin: Origin) -> Result<u32, ConfigError> {
    match text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Setting {
            origin,
            message: format!("`{}` is not a whole number of at least 1", text.trim()),
            help: None,
        }),
    }
}

fn first_lowercase(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if !text.starts_with("TOML") => first.to_lowercase().chain(chars).collect(),
        _ => text.to_owned(),
    }
}
