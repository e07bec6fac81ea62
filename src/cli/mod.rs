//! The command line: argument parsing, output formats and exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod sandbox;

#[derive(Debug, Parser)]
#[command(
    name = "charter",
    version,
    about = "Plans-as-code for Make White Label instances"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the JSON Schema of the license object.
    Schema,
    /// Run a local Make-compatible admin API to plan and apply against.
    Sandbox(sandbox::Args),
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            println!("{{}}");
            ExitCode::SUCCESS
        }
        Command::Sandbox(args) => sandbox::run(args),
    }
}
