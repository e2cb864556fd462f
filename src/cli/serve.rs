//! `prunescope serve --stdio`: a model for `--remote` clients, spoken to over stdin and stdout
//! (docs/SPEC.md section 9). Standard output carries only the protocol's frames; messages go
//! to standard error, which the client shows when the link ends.

use anyhow::{bail, Result};
use clap::Args;

use super::{load_model, ModelArgs};

#[derive(Args)]
pub struct ServeArgs {
    /// Speak the protocol on stdin and stdout (the only transport: the client's command, such
    /// as ssh, carries it; nothing listens on a port).
    #[arg(long)]
    stdio: bool,
    /// A fake model that answers without weights, each decode step taking this many
    /// milliseconds (the test suite's server).
    #[arg(long, hide = true, value_name = "MS")]
    fake_model: Option<u64>,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(a: ServeArgs) -> Result<()> {
    if !a.stdio {
        bail!("`serve` speaks over stdin and stdout: pass --stdio (and start it through --remote \"COMMAND\")");
    }
    let load = || {
        if let Some(ms) = a.fake_model {
            let step = std::time::Duration::from_millis(ms);
            return Ok(Box::new(prunescope::model::fake::FakeModel::new(step)) as Box<_>);
        }
        load_model(&a.model).map_err(|e| super::errors::message(&e))
    };
    // Frames are flushed one by one; the buffers only spare system calls inside a frame.
    let stdin = std::io::BufReader::with_capacity(1 << 20, std::io::stdin());
    let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    prunescope::remote::serve(stdin, stdout, load)?;
    Ok(())
}
