//! `charter instance`: connect to the configured instance (or the embedded sandbox), read it,
//! and say what is there.

use std::path::{Path, PathBuf};

use super::config::{self, Config, ConfigError, InstanceArgs, InstanceChoice};
use super::policy::{Output, report};
use super::{Outcome, usage_error};
use crate::api::{ApiError, Client, InstanceUrl, Observed, Token, observe};
use charter_sandbox::{self as sandbox, Storage, TokenGrant, TokenRole};

/// Read the configured instance (or the embedded sandbox) and summarise it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy set (a `.charter` file or a folder); `charter.toml` and `.charter/` are beside
    /// it.
    #[arg(default_value = ".")]
    path: PathBuf,
    #[command(flatten)]
    instance: InstanceArgs,
    /// `text`: one summary line; `json`: everything read, as the planner sees it.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Runs `charter instance`.
pub(super) fn run(args: Args, output: &Output) -> Outcome {
    let work = |client: Client, _: Config, _: Target| async move {
        let observed = observe(&client).await?;
        let refused = client.pacing().map_or(0, |p| p.rate_limited());
        Ok((observed, refused))
    };
    let (described, (observed, refused)) =
        match with_instance(&args.path, &args.instance, output, work) {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
    match args.format {
        Format::Text => outln!("instance {described}: {}", summary(&observed, refused)),
        Format::Json => match serde_json::to_string_pretty(&observed) {
            Ok(text) => outln!("{text}"),
            Err(error) => {
                eoutln!("error: cannot write the observation: {error}");
                return Outcome::Failure;
            }
        },
    }
    Outcome::Success
}

/// Why the work done against an instance failed: printed as `error: …` with its help.
#[derive(Debug)]
pub(super) struct Failure {
    pub message: String,
    pub help: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>, help: Option<String>) -> Failure {
        Failure {
            message: message.into(),
            help,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Failure {
        Failure::new(error.to_string(), error.help())
    }
}

impl From<crate::state::StateError> for Failure {
    fn from(error: crate::state::StateError) -> Failure {
        Failure::new(error.to_string(), error.help())
    }
}

impl From<crate::schedule::PrepareError> for Failure {
    fn from(error: crate::schedule::PrepareError) -> Failure {
        use crate::schedule::PrepareError;
        match error {
            PrepareError::Api(error) => error.into(),
            PrepareError::State(error) => error.into(),
            other => Failure::new(other.to_string(), None),
        }
    }
}

/// The instance a command works on: how plans name it (its URL, or the embedded sandbox) and,
/// for the embedded sandbox, its database's id — what a state is bound to.
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub name: String,
    pub instance_id: Option<String>,
    /// A rehearsal (`--rehearse`): its own state and embedded sandbox.
    pub rehearsal: bool,
}

impl Target {
    /// As the library takes it.
    pub fn instance(&self) -> crate::schedule::Instance<'_> {
        crate::schedule::Instance {
            name: &self.name,
            instance_id: self.instance_id.as_deref(),
        }
    }

    /// Takes this machine's lock on the instance (see `state::InstanceLock`), for a command
    /// that may create organizations.
    pub fn lock(&self, purpose: &str) -> Result<crate::state::InstanceLock, Failure> {
        let holder = format!(
            "`{purpose}` in process `{}` since {}",
            std::process::id(),
            crate::model::time::format_instant(super::now())
        );
        Ok(crate::state::InstanceLock::acquire(
            &lock_folder(),
            &self.instance().identity(),
            &holder,
        )?)
    }
}

/// Where the instance locks of this machine live: `$XDG_RUNTIME_DIR/charter`, or
/// `charter-locks` in the temporary folder.
fn lock_folder() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("charter"),
        None => std::env::temp_dir().join("charter-locks"),
    }
}

/// How a plan names the instance of a configuration: its URL, the embedded sandbox, or a
/// rehearsal's.
pub(super) fn instance_name(config: &Config) -> String {
    // A rehearsal's plan names its own sandbox, so that it is never applied outside one.
    if config.rehearsal {
        return "the rehearsal sandbox".to_owned();
    }
    match &config.url {
        Some((url, _)) => url.to_string(),
        None => "the embedded sandbox".to_owned(),
    }
}

/// Connects to the instance configured for the policy set at `path` — or starts the embedded
/// sandbox on its database when none is — runs `work` with a client for it and the
/// configuration in force, and stops the sandbox. The client is paced ([`Config::pacing`]):
/// every read waits for the limiter and survives 429s, and an apply made with it shares the
/// limiter. Returns a description of the instance (never
/// the token) and what `work` returned; errors are printed, and the outcome to exit with is
/// returned.
pub(super) fn with_instance<T, F, Fut>(
    path: &Path,
    args: &InstanceArgs,
    output: &Output,
    work: F,
) -> Result<(String, T), Outcome>
where
    F: FnOnce(Client, Config, Target) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    if !path.exists() {
        return Err(usage_error(
            &format!(
                "cannot read `{}`: no such file or directory",
                path.display()
            ),
            None,
        ));
    }
    let env = |name: &str| std::env::var(name).ok();
    let config = config::load(path, args, &env).map_err(|e| config_failure(e, output))?;
    let choice = config::resolve_instance(&config, &env).map_err(|e| config_failure(e, output))?;
    if let Some(warning) = config::token_file_warning(&config) {
        eprintln!("warning: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| {
            eoutln!("error: cannot start the runtime: {error}");
            Outcome::Failure
        })?;
    let options = config.client_options();
    let result = runtime.block_on(async move {
        match choice {
            InstanceChoice::Remote { url, token } => {
                let described = url.to_string();
                let target = Target {
                    name: instance_name(&config),
                    instance_id: None,
                    rehearsal: config.rehearsal,
                };
                let client = Client::for_instance(url, token, options)
                    .map_err(|error| Failure::new(error.to_string(), None))?
                    .paced(config.pacing());
                let value = work(client, config, target).await?;
                Ok((described, value))
            }
            InstanceChoice::EmbeddedSandbox { db_path } => {
                let (url, value) = embedded(&db_path, options, config, work).await?;
                Ok((
                    format!("{url} (embedded sandbox {})", shown(&db_path)),
                    value,
                ))
            }
        }
    });
    result.map_err(|failure: Failure| {
        eoutln!("error: {}", failure.message);
        if let Some(help) = failure.help {
            eoutln!("  help: {help}");
        }
        Outcome::Failure
    })
}

/// Starts the embedded sandbox on its database, runs `work` against it, and stops it.
async fn embedded<T, F, Fut>(
    db_path: &Path,
    options: crate::api::ClientOptions,
    config: Config,
    work: F,
) -> Result<(String, T), Failure>
where
    F: FnOnce(Client, Config, Target) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    if let Some(folder) = db_path.parent() {
        std::fs::create_dir_all(folder).map_err(|error| {
            Failure::new(
                format!("cannot create the folder `{}`: {error}", folder.display()),
                None,
            )
        })?;
    }
    // A token of this run only: another process on this machine cannot use the sandbox while it
    // runs.
    let secret = one_time_token();
    let running = sandbox::start(sandbox::Config {
        storage: Storage::File(db_path.to_path_buf()),
        tokens: vec![TokenGrant::new(
            secret.clone(),
            TokenRole::SystemAdministrator,
        )],
        ..sandbox::Config::default()
    })
    .await
    .map_err(|error| Failure::new(error.to_string(), None))?;
    let base = format!("http://{}", running.addr());
    let value = async {
        let url =
            InstanceUrl::parse(&base).map_err(|error| Failure::new(error.to_string(), None))?;
        let token = Token::new(secret).map_err(|error| Failure::new(error.to_string(), None))?;
        let client = Client::for_instance(url, token, options)
            .map_err(|error| Failure::new(error.to_string(), None))?
            .paced(config.pacing());
        let target = Target {
            name: instance_name(&config),
            instance_id: Some(running.instance_id().to_owned()),
            rehearsal: config.rehearsal,
        };
        work(client, config, target).await
    }
    .await;
    let stopped = running.shutdown().await;
    let value = value?;
    stopped.map_err(|error| Failure::new(error.to_string(), None))?;
    Ok((base, value))
}

/// 128 bits from the standard library's per-process random hash keys.
fn one_time_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut parts = Vec::new();
    for salt in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        parts.push(format!("{:016x}", hasher.finish()));
    }
    format!("embedded-{}", parts.join(""))
}

/// A path as the user would write it: without a leading `./`.
fn shown(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

/// `12 organizations, 40 users, 3 calls`, and the 429s waited out if there were any.
fn summary(observed: &Observed, refused: u64) -> String {
    let count = |n: usize, noun: &str| {
        if n == 1 {
            format!("1 {noun}")
        } else {
            format!("{n} {noun}s")
        }
    };
    let calls = observed.calls.total();
    let mut text = format!(
        "{}, {}, {}",
        count(observed.organizations.len(), "organization"),
        count(observed.users.len(), "user"),
        count(usize::try_from(calls).unwrap_or(usize::MAX), "call")
    );
    if refused > 0 {
        text.push_str(&format!(" ({refused} × 429 waited out)"));
    }
    text
}

/// Prints a configuration error: a located one like a policy diagnostic (exit 1), the others
/// like a usage error (exit 2).
pub(super) fn config_failure(error: ConfigError, output: &Output) -> Outcome {
    match error {
        ConfigError::File {
            sources,
            diagnostic,
        } => {
            report(&sources, std::slice::from_ref(&*diagnostic), output);
            Outcome::Failure
        }
        other => usage_error(&other.to_string(), other.help()),
    }
}
