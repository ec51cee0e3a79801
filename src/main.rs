//! The `iamd` binary: parses the command line and runs the server until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "iamd", version, about = "IAM policy service: gRPC, gRPC-web and JSON on one port")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve(iamd::config::Config),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    iamd::observe::init_logging(
        EnvFilter::try_from_env("IAMD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::io::stderr,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("iamd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Command::Serve(config) = cli.command;
    match runtime.block_on(iamd::server::run(config, iamd::server::stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iamd: {e}");
            ExitCode::FAILURE
        }
    }
}
