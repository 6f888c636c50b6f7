//! `byos`: the server (`byos serve`), the client commands over its API (`byos login`, `ls`,
//! `cp`, ...), and the bucket owners' tools (`byos aws ...`).
//!
//! Exit codes: 0 on success, 1 when the command fails, 2 for a usage error, 3 when some files of
//! a transfer failed (the others moved) or `byos aws doctor` ran and a check failed.

mod aws;
mod client;
mod serve;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc: the sync engine's batches make many small allocations on several threads (tokio's
/// workers, SQLite's), which glibc's allocator serves slowly; see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "byos", version, about = "Bring your own storage: connect customers' S3 buckets to a data platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the REST API and the background workers.
    Serve(ServeArgs),
    /// Tools for bucket owners: the documents their AWS account needs, bootstrap and doctor.
    #[command(subcommand)]
    Aws(aws::AwsCommand),
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Where the SQLite database, the master key and the admin token live.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// A TOML configuration file; environment variables (BYOS__SECTION__KEY) override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Aws(command) => aws::run(command),
        Command::Client(command) => return client::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr, reason = "the last word of a failed command, for a person")]
            {
                eprintln!("byos: error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The client's options and the AWS tools' options of the same names (`--output`,
    /// `--profile`, `--quiet`) each stay in their own commands.
    #[test]
    fn client_and_aws_options_do_not_collide() {
        let aws = Cli::try_parse_from(["byos", "aws", "doctor", "--bucket", "b", "--output", "json", "--profile", "p"]);
        assert!(matches!(aws.map(|c| c.command), Ok(Command::Aws(_))));
        let client = Cli::try_parse_from(["byos", "projects", "ls", "--output", "json", "--profile", "lab"]);
        assert!(matches!(client.map(|c| c.command), Ok(Command::Client(_))));
        let client = Cli::try_parse_from(["byos", "ls", "study:/", "--output", "json", "-q"]);
        assert!(matches!(client.map(|c| c.command), Ok(Command::Client(_))));
    }
}
