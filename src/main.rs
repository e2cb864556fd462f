//! The `prunescope` binary: the explorer (no subcommand), and `analyze`, `bench`,
//! `bench-prefill`, `convert`, `eval`, `metric` and `fetch` (see `cli`). The command-line layer
//! (clap, progress bars, anyhow) lives here, outside the library.
#![cfg_attr(test, allow(clippy::too_many_lines))]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the whole cause chain, no backtrace, flags by their names.
            eprintln!("error: {}", cli::errors::message(&e));
            ExitCode::FAILURE
        }
    }
}
