//! The command line: argument parsing, loading a policy set, output formats and exit codes.
//!
//! Exit codes: 0 success (warnings allowed), 1 the policy set or an operation has errors,
//! 2 the command was used wrongly (unknown flag, unreadable path, unknown tier name).
//! Results go to stdout, diagnostics to stderr.

/// Prints to standard output through `out`, which ends quietly when the reader goes away.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))
    };
}

/// `out!` with a newline.
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints to standard error through `out`, which ends quietly when the reader goes away.
macro_rules! eout {
    ($($arg:tt)*) => {
        $crate::cli::out::write_err(format_args!($($arg)*))
    };
}

/// `eout!` with a newline.
macro_rules! eoutln {
    () => {
        $crate::cli::out::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod apply;
pub mod config;
mod diff;
mod format;
mod import;
mod init;
mod instance;
mod lifecycle;
mod out;
mod plan;
mod policy;
mod sandbox;
mod state;
mod tiers;
mod transition;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::compile;

#[derive(Debug, Parser)]
#[command(
    name = "charter",
    version,
    about = "Plans-as-code for Make White Label instances",
    long_about = "Plans-as-code for Make White Label instances.\n\n\
                  A policy set (`.charter` files) declares license tiers, add-ons and the rules \
                  they keep, customers and their lifecycle, and staff. charter checks it \
                  (`check`, `test`), compiles it into the license objects and roles Make's \
                  admin API takes (`compile`, `explain`, `matrix`), shows what a change really \
                  changes (`diff`), plans the admin-API calls that bring an instance to it \
                  (`plan`) and carries them out under the instance's rate limit, journaled and \
                  resumable (`apply`, `run`); lifecycle transitions come due on their own \
                  (`schedule`, `transition`). With no instance configured, commands use an \
                  embedded Make-compatible sandbox (`sandbox` runs one on its own).\n\n\
                  Start with `charter init` (a small policy set to edit) or the example set \
                  `policies/acme`."
)]
struct Cli {
    /// How diagnostics are printed on stderr.
    #[arg(long, global = true, value_enum, default_value_t = ErrorFormat::Human)]
    error_format: ErrorFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ErrorFormat {
    /// Source excerpts with labels, for people.
    Human,
    /// One JSON object per line: code, severity, message, file, line, column, help.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a small policy set to start from: an instance, two tiers, a lifecycle, a
    /// customer and its tests.
    Init(init::Args),
    /// Parse and check a policy set; report every error and warning.
    Check {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Print compiled license objects (tiers), or customers' desired state.
    Compile {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Only this tier's license object.
        #[arg(long, conflicts_with_all = ["customer", "customers"])]
        tier: Option<String>,
        /// This customer's desired state: lifecycle state, license, owner, roles, teams.
        #[arg(long, conflicts_with = "customers")]
        customer: Option<String>,
        /// Every customer's desired state, one JSON object per line.
        #[arg(long)]
        customers: bool,
        /// The instant for customers (`2027-02-08` or `2027-02-08T09:00:00Z`); default now.
        #[arg(long, value_parser = parse_at)]
        at: Option<i64>,
        #[arg(long, value_enum, default_value_t = CompileFormat::Json)]
        format: CompileFormat,
        /// charter's state (a file or a `postgres://` URL), for customers' recorded
        /// transitions and requests; default as for `plan` (a missing file is empty history).
        #[arg(long, value_name = "FILE|URL")]
        state: Option<String>,
    },
    /// Show every value with the chain that produced it; for a customer, also why it is in its state.
    #[command(group = clap::ArgGroup::new("subject").required(true).args(["tier", "customer", "staff"]))]
    Explain {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        /// A staff member, by address: instance role and app-developer options.
        #[arg(long)]
        staff: Option<String>,
        /// The instant for a customer; default now.
        #[arg(long, value_parser = parse_at)]
        at: Option<i64>,
        /// Only this license parameter (`operations`).
        param: Option<String>,
        /// charter's state (a file or a `postgres://` URL), for customers' recorded
        /// transitions and requests; default as for `plan` (a missing file is empty history).
        #[arg(long, value_name = "FILE|URL")]
        state: Option<String>,
    },
    /// What a change to a policy set really changes: additive, breaking or neutral, and whom it hits.
    Diff {
        /// The policy set before: a path, or a git revision of one (`main:policies/acme`).
        old: String,
        /// The policy set after: a path, or a git revision of one.
        new: String,
        /// The instant customers are compared at; default now.
        #[arg(long, value_parser = parse_at)]
        at: Option<i64>,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Exit 0 even when something is breaking (the report still says so).
        #[arg(long)]
        allow_breaking: bool,
        /// Also read the instance (or the embedded sandbox) and name the organizations a
        /// breaking change would really hit, with their usage.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        instance: config::InstanceArgs,
    },
    /// Run the policy set's `test` blocks.
    Test {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// The clock for test blocks without `at`; default now.
        #[arg(long, value_parser = parse_at)]
        at: Option<i64>,
    },
    /// List the lifecycle transitions due at an instant and those coming within a horizon.
    Schedule {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Default now.
        #[arg(long, value_parser = parse_at)]
        at: Option<i64>,
        /// How far ahead to look (`30 days`, `2 weeks`, `12 h`).
        #[arg(long, value_parser = parse_horizon, default_value = "30 days")]
        horizon: i64,
        #[arg(long, value_enum, default_value_t = ScheduleFormat::Text)]
        format: ScheduleFormat,
        /// charter's state (a file or a `postgres://` URL), for customers' recorded
        /// transitions and requests; default as for `plan` (a missing file is empty history).
        #[arg(long, value_name = "FILE|URL")]
        state: Option<String>,
    },
    /// Request a `manual` lifecycle transition for a customer; the next plan or run carries it out.
    Transition(transition::Args),
    /// Print the lifecycle as a state diagram.
    Graph {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Rewrite files in the canonical layout (comments kept).
    Fmt {
        /// A `.charter` file, a directory of them, or `-` for standard input to standard output.
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Change nothing; list the files that are not formatted and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Print the tier comparison table.
    Matrix {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long, value_enum, default_value_t = MatrixFormat::Md)]
        format: MatrixFormat,
    },
    /// Print the JSON Schema of what charter emits.
    Schema {
        #[arg(value_enum, default_value_t = SchemaName::License)]
        name: SchemaName,
    },
    /// Run a local Make-compatible admin API to plan and apply against.
    Sandbox(sandbox::Args),
    /// Read the configured Make instance (or the embedded sandbox) and summarise it.
    Instance(instance::Args),
    /// Show the admin-API calls that would bring the instance to the policy set (exit 2 when
    /// there are any).
    Plan(plan::Args),
    /// Link the instance's existing organizations to the policy set's customers (match by
    /// name, confirm by owner) and infer their lifecycle states.
    Import(import::Args),
    /// Carry out a plan (made now, or saved by `charter plan -o`), under the instance's rate
    /// limit, journaled and resumable.
    Apply(apply::ApplyArgs),
    /// Plan and apply what is due — scheduled transitions, new customers, policy changes,
    /// drift — once (for cron) or every DUR.
    Run(apply::RunArgs),
    /// Show charter's state (where it is, what it holds, who holds its lock), or copy it to
    /// another place or backend.
    State(state::Args),
    /// Run the language server on stdin and stdout (for editors; see docs/lsp.md).
    Lsp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CompileFormat {
    /// Exactly what is sent to the API.
    Json,
    /// Aligned, in human units.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DiffFormat {
    /// A readable report.
    Text,
    /// A pull-request comment with a summary table.
    Md,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScheduleFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    Mermaid,
    Dot,
}

fn parse_at(text: &str) -> Result<i64, String> {
    crate::model::time::parse_instant(text).ok_or_else(|| {
        format!("`{text}` is not a date (`2027-02-08`) or an instant (`2027-02-08T09:00:00Z`)")
    })
}

fn parse_horizon(text: &str) -> Result<i64, String> {
    crate::model::time::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as `30 days`, `2 weeks` or `12 h`"))
}

/// The current instant: the one place the command line reads the clock.
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MatrixFormat {
    Md,
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemaName {
    /// The license object sent to Make.
    License,
    /// The plan file written by `charter plan -o`.
    Plan,
}

/// How a command ended.
pub(crate) enum Outcome {
    Success,
    /// The input or the operation had errors (exit 1).
    Failure,
    /// The command was used wrongly (exit 2).
    Usage,
    /// The command found something to act on: a breaking change, a plan with changes (exit 2).
    Changes,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failure => ExitCode::from(1),
            Outcome::Usage | Outcome::Changes => ExitCode::from(2),
        }
    }
}

/// Prints a usage error (wrong tier name, unreadable path) the way clap prints its own.
pub(crate) fn usage_error(message: &str, help: Option<String>) -> Outcome {
    eoutln!("error: {message}");
    if let Some(help) = help {
        eoutln!("  help: {help}");
    }
    Outcome::Usage
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = policy::Output {
        error_format: cli.error_format,
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let outcome = run(cli.command, &output);
    out::flush();
    if out::failed() {
        return ExitCode::from(1);
    }
    outcome.into()
}

fn run(command: Command, output: &policy::Output) -> Outcome {
    match command {
        Command::Check { path } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            outln!("{}", loaded.summary());
            // The process exits next: freeing a large policy set's syntax tree and program
            // object by object would only delay that.
            std::mem::forget(loaded);
            Outcome::Success
        }
        Command::Compile {
            path,
            tier,
            customer,
            customers,
            at,
            format,
            state,
        } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            let program = &loaded.program;
            let at = at.unwrap_or_else(now);
            let state = match state::location(&path, state, output) {
                Ok(state) => state,
                Err(outcome) => return outcome,
            };
            if let Some(key) = customer {
                return lifecycle::compile_customer(
                    program,
                    &key,
                    at,
                    format == CompileFormat::Text,
                    &state,
                );
            }
            if customers {
                return lifecycle::compile_customers(program, at, &state);
            }
            tiers::compile(program, tier.as_deref(), format == CompileFormat::Text)
        }
        Command::Explain {
            path,
            tier,
            customer,
            staff,
            at,
            param,
            state,
        } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            let param = match param.map(|p| compile::parameter(&p)).transpose() {
                Ok(p) => p,
                Err(e) => return usage_error(&e.to_string(), e.help()),
            };
            if let Some(email) = staff {
                return tiers::explain_staff(&loaded.program, &email);
            }
            if let Some(key) = customer {
                let state = match state::location(&path, state, output) {
                    Ok(state) => state,
                    Err(outcome) => return outcome,
                };
                return lifecycle::explain_customer(
                    &loaded,
                    &key,
                    at.unwrap_or_else(now),
                    param,
                    &state,
                );
            }
            let Some(tier) = tier else {
                return usage_error("give `--tier NAME` or `--customer KEY`", None);
            };
            tiers::explain(&loaded, &tier, param)
        }
        Command::Fmt { path, check } => format::run(&path, check, output),
        Command::Diff {
            old,
            new,
            at,
            format,
            allow_breaking,
            live,
            instance,
        } => diff::run(
            &diff::Request {
                old: &old,
                new: &new,
                at: at.unwrap_or_else(now),
                format,
                allow_breaking,
                live: live.then_some(&instance),
            },
            output,
        ),
        Command::Test { path, junit, at } => match policy::load(&path, output) {
            Ok(loaded) => lifecycle::test(&loaded, &path, at.unwrap_or_else(now), junit.as_deref()),
            Err(outcome) => outcome,
        },
        Command::Schedule {
            path,
            at,
            horizon,
            format,
            state,
        } => match policy::load(&path, output) {
            Ok(loaded) => match state::location(&path, state, output) {
                Ok(state) => lifecycle::schedule(
                    &loaded.program,
                    at.unwrap_or_else(now),
                    horizon,
                    format,
                    &state,
                ),
                Err(outcome) => outcome,
            },
            Err(outcome) => outcome,
        },
        Command::Transition(args) => transition::run(args, output),
        Command::Graph { path, format } => match policy::load(&path, output) {
            Ok(loaded) => lifecycle::graph(&loaded.program, format),
            Err(outcome) => outcome,
        },
        Command::Matrix { path, format } => match policy::load(&path, output) {
            Ok(loaded) => tiers::matrix(&loaded.program, format == MatrixFormat::Html),
            Err(outcome) => outcome,
        },
        Command::Schema { name } => match name {
            SchemaName::License => tiers::schema(),
            SchemaName::Plan => tiers::plan_schema(),
        },
        Command::Init(args) => init::run(&args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Instance(args) => instance::run(args, output),
        Command::Plan(args) => plan::run(args, output),
        Command::Import(args) => import::run(args, output),
        Command::Apply(args) => apply::run_apply(args, output),
        Command::Run(args) => apply::run_rounds(args, output),
        Command::State(args) => state::run(args, output),
        Command::Lsp => match crate::lsp::run() {
            Ok(crate::lsp::Exit::Clean) => Outcome::Success,
            Ok(crate::lsp::Exit::Abrupt) => Outcome::Failure,
            Err(e) => {
                eprintln!("error: the editor connection failed: {e}");
                Outcome::Failure
            }
        },
    }
}
