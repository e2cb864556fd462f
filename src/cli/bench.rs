//! `prunescope bench`: the numbers of the README's speed table, measured in one process.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use prunescope::engine::{self, Plan, RunMethod, RunSpec};
use prunescope::mel::MelExtractor;
use prunescope::model::AudioLanguageModel;
use prunescope::prune::{Method, Params};
use prunescope::scores::Layers;
use prunescope::util::median;

#[derive(Args)]
pub struct BenchArgs {
    /// Audio file; its first 30 s are used.
    clip: PathBuf,
    #[command(flatten)]
    model: super::ModelArgs,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// JSON written by scripts/bench-baseline.py, printed side by side with the ratio.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Also time the ten decodes one by one (batch 1).
    #[arg(long)]
    sequential: bool,
}

fn time<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        last = Some(f()?);
        times.push(t.elapsed().as_secs_f64());
    }
    let value = last.context("no repetition ran")?;
    Ok((median(times), value))
}

/// Peak resident set size of this process in MB (Linux), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Starts the peak resident set size over from the current one (Linux: `5` written to
/// `/proc/self/clear_refs`), so a later [`peak_rss_mb`] covers only what came after. Says
/// whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The paper's grid on the README: full + topk/segmentwise/bottomk at 50/25/10 %.
fn ten_runs() -> Vec<RunSpec> {
    let mut runs = vec![RunSpec {
        method: RunMethod::Prune(Method::Full),
        keep: 1.0,
    }];
    for keep in [0.5, 0.25, 0.1] {
        for m in [Method::TopK, Method::Segmentwise, Method::BottomK] {
            runs.push(RunSpec {
                method: RunMethod::Prune(m),
                keep,
            });
        }
    }
    runs
}

#[derive(serde::Deserialize)]
struct Baseline {
    mel_s: f64,
    encoder_s: f64,
    decode_s: f64,
    tokens: usize,
    #[serde(default)]
    peak_rss_mb: Option<f64>,
    #[serde(default)]
    what: Option<String>,
    /// faster-whisper's plain transcription of the window (s), when measured.
    #[serde(default)]
    plain_s: Option<f64>,
    #[serde(default)]
    plain_what: Option<String>,
}

pub fn run(a: BenchArgs) -> Result<()> {
    let mut audio = prunescope::audio::load(&a.clip)?;
    audio.samples.truncate(prunescope::WINDOW_SAMPLES);
    let mut model = super::load_whisper(&a.model)?;
    let info = model.info().clone();
    let mel = MelExtractor::new(info.n_mels);
    let n = audio.samples.len();

    let (mel_s, features) = time(a.reps, || Ok(mel.compute(&audio.samples)))?;
    // The last layer's scores, then every layer's in the same pass (the explorer's layer lane,
    // `analyze --layer-scores`), alternating so both see the same machine.
    let (mut last, mut all) = (Vec::new(), Vec::new());
    for _ in 0..a.reps {
        last.push(time(1, || Ok(model.encode_mel(&features, n, Layers::Last)?))?.0);
        all.push(time(1, || Ok(model.encode_mel(&features, n, Layers::All)?))?.0);
    }
    let (enc_s, enc_all_s) = (median(last), median(all));
    let clip = engine::encode(&model, &audio, Layers::Last, &mut |_| {})?;
    let plan = Plan {
        runs: ten_runs(),
        params: Params::default(),
        // The 50-token tail scripts/bench-baseline.py gives transformers too.
        decoding: engine::Decoding {
            tail: engine::Tail::Tokens(50),
            ..engine::Decoding::default()
        },
    };
    let cancel = AtomicBool::new(false);
    // The same decodes collecting the alignment heads' attention and placing the words
    // (`analyze --words`, the explorer), alternating with the plain ones.
    let mut with_words = plan.clone();
    with_words.decoding.attention = true;
    let (mut plain, mut worded, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.reps.max(1) {
        let (s, r) = time(1, || {
            Ok(engine::run(&model, &clip, &plan, &cancel, &mut |_| {})?)
        })?;
        plain.push(s);
        results = r;
        let run = || {
            Ok(engine::run(
                &model,
                &clip,
                &with_words,
                &cancel,
                &mut |_| {},
            )?)
        };
        worded.push(time(1, run)?.0);
    }
    let (dec_s, words_s) = (median(plain), median(worded));
    // A plain transcription, what faster-whisper does: mel, encoder, the vanilla decode.
    let vanilla = Plan {
        runs: vec![RunSpec {
            method: RunMethod::Vanilla,
            keep: 1.0,
        }],
        params: Params::default(),
        decoding: engine::Decoding::default(),
    };
    let (transcribe_s, _) = time(a.reps, || {
        let clip = engine::encode(&model, &audio, Layers::Last, &mut |_| {})?;
        Ok(engine::run(&model, &clip, &vanilla, &cancel, &mut |_| {})?)
    })?;
    let tokens: usize = results.iter().map(|r| r.generated_tokens).sum();
    let seq = if a.sequential {
        model.options.batch = 1;
        let (s, _) = time(a.reps.min(3), || {
            Ok(engine::run(&model, &clip, &plan, &cancel, &mut |_| {})?)
        })?;
        Some(s)
    } else {
        None
    };
    let rss = peak_rss_mb();

    println!(
        "prunescope bench: {} (first {:.1} s), {}, {} tokens, median of {} runs, {} threads",
        a.clip.display(),
        audio.duration_s(),
        info.name,
        clip.n_tokens(),
        a.reps,
        rayon::current_num_threads()
    );
    let base: Option<Baseline> = match &a.baseline {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a bench-baseline.py result", p.display()))?,
        ),
        None => None,
    };
    // Issue 14's targets on this 30 s window: absolute times, or a speed-up over the baseline.
    #[derive(Clone, Copy)]
    enum Target {
        AtMost(f64),
        SpeedUp(f64),
    }
    let row = |what: &str, ours: f64, theirs: Option<f64>, target: Option<Target>| {
        let theirs_s = theirs.map_or(String::new(), |t| format!("{t:.3} s"));
        let ratio = theirs.map_or(String::new(), |t| format!("{:.2}x", t / ours));
        let target_s = match target {
            Some(Target::AtMost(t)) => {
                format!("<= {t:.2} s: {}", if ours <= t { "met" } else { "not met" })
            }
            Some(Target::SpeedUp(x)) => match theirs {
                Some(t) => format!(">= {x}x: {}", if t / ours >= x { "met" } else { "not met" }),
                None => format!(">= {x}x"),
            },
            None => String::new(),
        };
        println!(
            "| {what:<36} | {:>10.3} s | {theirs_s:>12} | {ratio:>8} | {target_s:<16} |",
            ours
        );
    };
    match &base {
        Some(b) => {
            println!(
                "baseline: {}",
                b.what.as_deref().unwrap_or("scripts/bench-baseline.py")
            );
            if let Some(w) = &b.plain_what {
                println!("plain transcription baseline: {w}");
            }
        }
        None => println!("no baseline (--baseline FILE from scripts/bench-baseline.py)"),
    }
    println!(
        "| {:<36} | {:>12} | {:>12} | {:>8} | {:<16} |",
        "stage", "prunescope", "baseline", "speed-up", "target"
    );
    println!(
        "|{:-<38}|{:->14}|{:->14}|{:->10}|{:-<18}|",
        "", "", "", "", ""
    );
    row(
        "mel (one 30 s window)",
        mel_s,
        base.as_ref().map(|b| b.mel_s),
        None,
    );
    row(
        "encoder + scores",
        enc_s,
        base.as_ref().map(|b| b.encoder_s),
        Some(Target::AtMost(0.32)),
    );
    row(
        "encoder + every layer's scores",
        enc_all_s,
        None,
        Some(Target::AtMost(0.32)),
    );
    row(
        "10 decodes (full + 3 methods x 3)",
        dec_s,
        base.as_ref().map(|b| b.decode_s),
        Some(Target::AtMost(1.3)),
    );
    row("10 decodes + attention and words", words_s, None, None);
    row(
        "plain transcription (vanilla)",
        transcribe_s,
        base.as_ref().and_then(|b| b.plain_s),
        Some(Target::SpeedUp(1.3)),
    );
    row(
        "end to end (mel + encoder + decodes)",
        mel_s + enc_s + dec_s,
        base.as_ref().map(|b| b.mel_s + b.encoder_s + b.decode_s),
        None,
    );
    if let Some(s) = seq {
        row("10 decodes one by one (batch 1)", s, None, None);
    }
    println!(
        "tokens generated: {tokens}{}; {:.2} ms per token (batched)",
        base.as_ref()
            .map(|b| format!(" (baseline {})", b.tokens))
            .unwrap_or_default(),
        dec_s * 1e3 / tokens.max(1) as f64
    );
    if let Some(r) = rss {
        println!(
            "peak RSS: {r:.0} MB{}",
            base.as_ref()
                .and_then(|b| b.peak_rss_mb)
                .map(|m| format!(" (baseline {m:.0} MB)"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
