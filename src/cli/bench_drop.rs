//! `prunescope bench-drop`: how much of the encoder `encoderdrop` saves. On whole 30 s windows
//! (the long-clip case: no padding), the full encoder against `encoderdrop` at each drop layer
//! and keep ratio, each the median of `--reps` in one process, the full encoder timed between
//! them so the ratios share the machine's state.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use prunescope::model::{AudioLanguageModel, EncoderDrop};
use prunescope::prune::budget;
use prunescope::scores::Layers;
use prunescope::util::median;

#[derive(Args)]
pub struct BenchDropArgs {
    /// Audio file, repeated to fill the windows (default: the bundled demo clip, jfk.wav).
    clip: Option<PathBuf>,
    #[command(flatten)]
    model: super::ModelArgs,
    /// Random Qwen2-Audio weights of this size instead of a model: mid (Qwen2-0.5B's LM behind
    /// a Whisper-small-size encoder) or tiny.
    #[arg(long, conflicts_with = "model")]
    random: Option<String>,
    /// Keep ratios to time.
    #[arg(long, default_value = "0.5,0.25,0.1")]
    keep: String,
    /// Drop layers, comma-separated (default: a quarter, half and three quarters of the
    /// encoder's layers).
    #[arg(long)]
    drop_layer: Option<String>,
    /// Repetitions per setting (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

pub fn run(mut a: BenchDropArgs) -> Result<()> {
    let keeps = super::parse_keeps(&a.keep)?;
    if a.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let asked: Option<Vec<usize>> = a
        .drop_layer
        .as_deref()
        .map(|s| super::parse_list("drop-layer", s, |x| Ok(x.trim().parse::<usize>()?)))
        .transpose()?;
    let clip = match &a.clip {
        Some(p) => prunescope::audio::load(p)?,
        None => prunescope::audio::demo()?,
    };
    // Random weights live in a temporary folder for as long as `_weights` does.
    let _weights = match &a.random {
        Some(size) => {
            let w = super::prefill::Weights::find(None, size)?;
            a.model.model = Some(w.dir.clone());
            Some(w)
        }
        None => None,
    };
    let model = super::load_model(&a.model)?;
    let info = model.info().clone();
    let layers = info.encoder_layers;
    let drop_layers = asked.unwrap_or_else(|| {
        let mut l: Vec<usize> = [layers / 4, layers / 2, 3 * layers / 4]
            .into_iter()
            .filter(|&l| l >= 1 && l < layers)
            .collect();
        l.dedup();
        l
    });
    for &layer in &drop_layers {
        let decoding = prunescope::engine::Decoding {
            drop_layer: Some(layer),
            ..Default::default()
        };
        if let Some(why) = prunescope::engine::RunMethod::EncoderDrop.unavailable(&info, &decoding)
        {
            return Err(why.into());
        }
    }
    let audio = super::prefill::filled(&clip, info.window_samples)?;
    let samples = &audio.samples[..];
    let n = model.encode(samples, Layers::Last)?.n_valid;
    let full = || -> Result<()> {
        model.encode(samples, Layers::Last)?;
        Ok(())
    };
    let full_ms = time(a.reps, full)?;
    println!(
        "prunescope bench-drop: {}, {} encoder layers, one full window ({n} tokens), median of {}, {} threads",
        info.label(),
        layers,
        a.reps,
        rayon::current_num_threads()
    );
    println!("| drop after layer | kept | K | encoder | vs full | full encoder, same round |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!("| (full) | 100 % | {n} | {full_ms:.0} ms | 1.00x | |");
    for &layer in &drop_layers {
        for &keep in &keeps {
            let drop = EncoderDrop {
                layer,
                keeps: vec![budget(keep, n)],
                tail: 0,
            };
            let dropped = || -> Result<()> {
                model
                    .encode_dropping(samples, &drop)?
                    .context("this model's encoder does not drop tokens")?;
                Ok(())
            };
            let ms = time(a.reps, dropped)?;
            // The full encoder again, so each ratio compares two medians of the same moment.
            let base = time(a.reps, full)?;
            println!(
                "| {layer} of {layers} | {:.0} % | {} | {ms:.0} ms | {:.2}x | {base:.0} ms |",
                keep * 100.0,
                drop.keeps[0],
                ms / base
            );
        }
    }
    Ok(())
}

/// The median wall time (ms) of `reps` calls after one warm-up.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}
