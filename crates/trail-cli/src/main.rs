//! The `trail` binary: argument parsing, then calls into the library crates.
//!
//! Exit codes: 0 success, 1 failure (the command ran and something is
//! wrong), 2 usage errors (clap's own, and bad flag combinations).

mod bench;
mod client;
mod keys;
mod log_key;
mod query;
mod record;
mod retention;
mod serve;
mod settings;
mod store_arg;
mod target;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc instead of glibc malloc: the ingest path allocates on the
/// request workers and frees on the writer thread, which glibc's arenas
/// handle poorly (a fifth of the worker profile was malloc/free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// trail: a tamper-evident audit trail for AI agents.
#[derive(Parser)]
#[command(name = "trail", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (embedded sqlite by default).
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Show or change a tenant's settings (retention, content, auditing).
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Retire old records now (the server also sweeps hourly).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Erase the content of every record of one user.
    Erase(retention::EraseArgs),
    /// Record one event, from flags or as JSON on stdin.
    Record(record::RecordArgs),
    /// Query recorded events.
    Query(query::QueryArgs),
    /// Verify a log against its signed checkpoints (server, store or bundle).
    Verify(verify::VerifyArgs),
    /// Benchmarks against a running server.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// A failure that is the caller's fault: exit 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let (Command::Serve(args), Some(serve)) =
        (&mut cli.command, matches.subcommand_matches("serve"))
    {
        if let Err(error) = args.apply_config_file(serve) {
            eprintln!("trail: {error:#}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("trail: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Settings(command) => settings::run(command).await,
            Command::Retention(command) => retention::run(command).await,
            Command::Erase(args) => retention::erase(args).await,
            Command::Record(args) => record::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Bench(command) => bench::run(command).await,
            Command::Verify(args) => verify::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trail: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
