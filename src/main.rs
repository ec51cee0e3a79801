//! The `iamd` binary: parses the command line and runs the server until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use iamd::config::Flags;

#[derive(Parser)]
#[command(
    name = "iamd",
    version,
    about = "IAM policy service: gRPC, gRPC-web and JSON on one port",
    after_help = "Each setting is a flag, an environment variable and a key of the --config TOML file, \
                  taken in that order over its default; `iamd serve --help` lists them with their defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve(Flags),
    /// Print the effective settings as TOML, each with where it came from, secrets masked.
    Config(Flags),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Serve(flags) | Command::Config(flags)) = &cli.command;
    let settings = match flags.resolve(|var| std::env::var_os(var)) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Config(_) = cli.command {
        return match settings.to_toml() {
            Ok(toml) => {
                print!("{toml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("iamd: cannot print the settings: {e}");
                ExitCode::FAILURE
            }
        };
    }
    iamd::observe::init_logging(
        EnvFilter::try_from_env("IAMD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::io::stderr,
    );
    // Each connection is a file descriptor, and the connection limit is worth only as much as
    // the process may open; a soft limit below the hard one is raised to it.
    let wanted = settings.config.limits.max_connections as u64 + 1024;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => {
            tracing::warn!(
                limit = got,
                max_connections = settings.config.limits.max_connections,
                "the open-file limit is below what the connection limit needs"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("iamd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(iamd::server::run(settings.config, iamd::server::stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iamd: {e}");
            ExitCode::FAILURE
        }
    }
}
