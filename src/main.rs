//! The `prunescope` binary: `analyze`, `bench` and `convert` subcommands.

use std::process::ExitCode;

fn main() -> ExitCode {
    match prunescope::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the whole cause chain, no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
