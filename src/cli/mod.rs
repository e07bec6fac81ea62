//! The command line: argument parsing, loading a policy set, output formats and exit codes.
//!
//! Exit codes: 0 success (warnings allowed), 1 the policy set or an operation has errors,
//! 2 the command was used wrongly (unknown flag, unreadable path, unknown tier name).
//! Results go to stdout, diagnostics to stderr.

mod format;
mod policy;
mod sandbox;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::compile;
use crate::model::schema;

#[derive(Debug, Parser)]
#[command(
    name = "charter",
    version,
    about = "Plans-as-code for Make White Label instances",
    long_about = "charter checks license tiers, add-ons and rules written in the Charter language, \
                  compiles them into Make license objects, and explains where every value comes from."
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
    /// Parse and check a policy set; report every error and warning.
    Check {
        /// A `.charter` file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Print compiled license objects.
    Compile {
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Only this tier's license object.
        #[arg(long)]
        tier: Option<String>,
        #[arg(long, value_enum, default_value_t = CompileFormat::Json)]
        format: CompileFormat,
    },
    /// Show every value of a tier with the chain of assignments that produced it.
    Explain {
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long)]
        tier: String,
        /// Only this parameter.
        param: Option<String>,
    },
    /// Rewrite files in the canonical layout (comments kept).
    Fmt {
        /// A `.charter` file, a directory of them, or `-` for standard input to standard output.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Change nothing; list the files that are not formatted and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Print the tier comparison table.
    Matrix {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CompileFormat {
    /// Exactly what is sent to the API.
    Json,
    /// Aligned, in human units.
    Text,
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
}

/// How a command ended.
pub(crate) enum Outcome {
    Success,
    /// The input or the operation had errors (exit 1).
    Failure,
    /// The command was used wrongly (exit 2).
    Usage,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failure => ExitCode::from(1),
            Outcome::Usage => ExitCode::from(2),
        }
    }
}

/// Prints a usage error (wrong tier name, unreadable path) the way clap prints its own.
pub(crate) fn usage_error(message: &str, help: Option<String>) -> Outcome {
    eprintln!("error: {message}");
    if let Some(help) = help {
        eprintln!("  help: {help}");
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
    run(cli.command, &output).into()
}

fn run(command: Command, output: &policy::Output) -> Outcome {
    match command {
        Command::Check { path } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            println!("{}", loaded.summary());
            Outcome::Success
        }
        Command::Compile { path, tier, format } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            let program = &loaded.program;
            match (tier, format) {
                (Some(name), format) => match compile::tier_license(program, &name) {
                    Ok(license) => {
                        match format {
                            CompileFormat::Json => println!("{}", pretty(&license.to_json())),
                            CompileFormat::Text => {
                                print!("{}", compile::render_text(&name, &license))
                            }
                        }
                        Outcome::Success
                    }
                    Err(e) => usage_error(&e.to_string(), e.help()),
                },
                (None, CompileFormat::Json) => {
                    println!("{}", pretty(&compile::all_tier_licenses(program)));
                    Outcome::Success
                }
                (None, CompileFormat::Text) => {
                    let texts: Vec<String> = program
                        .deployable_tiers()
                        .into_iter()
                        .filter_map(|t| {
                            Some(compile::render_text(&t.name, &t.license.to_object()?))
                        })
                        .collect();
                    print!("{}", texts.join("\n"));
                    Outcome::Success
                }
            }
        }
        Command::Explain { path, tier, param } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            let tier = match compile::deployable_tier(&loaded.program, &tier) {
                Ok(t) => t,
                Err(e) => return usage_error(&e.to_string(), e.help()),
            };
            let param = match param.map(|p| compile::parameter(&p)).transpose() {
                Ok(p) => p,
                Err(e) => return usage_error(&e.to_string(), e.help()),
            };
            print!(
                "{}",
                compile::explain::tier(&loaded.sources, &loaded.program, tier, param)
            );
            Outcome::Success
        }
        Command::Fmt { path, check } => format::run(&path, check, output),
        Command::Matrix { path, format } => {
            let loaded = match policy::load(&path, output) {
                Ok(loaded) => loaded,
                Err(outcome) => return outcome,
            };
            match format {
                MatrixFormat::Md => print!("{}", compile::matrix::markdown(&loaded.program)),
                MatrixFormat::Html => print!("{}", compile::matrix::html(&loaded.program)),
            }
            Outcome::Success
        }
        Command::Schema { name } => {
            match name {
                SchemaName::License => println!("{}", pretty(&schema::license())),
            }
            Outcome::Success
        }
        Command::Sandbox(args) => sandbox::run(args),
    }
}

fn pretty(value: &serde_json::Value) -> String {
    // Serializing a `serde_json::Value` to a String cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}
