//! `prunescope bench`: the numbers of the README's speed table, measured in one process.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use prunescope::audio::Audio;
use prunescope::engine::{self, EncodedClip, Plan, RunMethod, RunSpec};
use prunescope::mel::MelExtractor;
use prunescope::model::whisper::Whisper;
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
    // A bad baseline file fails before the minutes of measuring, not after.
    let base = a.baseline.as_deref().map(read_baseline).transpose()?;
    let mut audio = prunescope::audio::load(&a.clip)?;
    std::sync::Arc::make_mut(&mut audio.samples).truncate(prunescope::WINDOW_SAMPLES);
    let mut model = super::load_whisper(&a.model)?;
    let ours = measure(&mut model, &audio, &a)?;
    println!(
        "prunescope bench: {} (first {:.1} s), {}, {} tokens, median of {} runs, {} threads",
        a.clip.display(),
        audio.duration_s(),
        model.info().name,
        ours.audio_tokens,
        a.reps,
        rayon::current_num_threads()
    );
    print_table(&ours, base.as_ref());
    Ok(())
}

fn read_baseline(path: &Path) -> Result<Baseline> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a bench-baseline.py result", path.display()))
}

/// Our side of the table: seconds per stage (medians), what was decoded, the memory used.
struct Measured {
    mel_s: f64,
    /// The encoder with the last layer's scores, and with every layer's.
    enc_s: f64,
    enc_all_s: f64,
    /// The ten decodes, plain and with attention and words.
    dec_s: f64,
    words_s: f64,
    /// Mel, encoder and the vanilla decode: what faster-whisper does.
    transcribe_s: f64,
    /// The ten decodes one by one, when asked (`--sequential`).
    sequential_s: Option<f64>,
    /// The audio tokens of the window, and the tokens the ten decodes generated.
    audio_tokens: usize,
    tokens: usize,
    peak_rss_mb: Option<f64>,
}

/// Times every stage of the table, in the order they run.
fn measure(model: &mut Whisper, audio: &Audio, a: &BenchArgs) -> Result<Measured> {
    let info = model.info().clone();
    let mel = MelExtractor::new(info.n_mels);
    let (mel_s, features) = time(a.reps, || Ok(mel.compute(&audio.samples)))?;
    let (enc_s, enc_all_s) = time_encoder(model, &features, audio.samples.len(), a.reps)?;
    let clip = engine::encode(&*model, audio, Layers::Last, &mut |_| {})?;
    let plan = ten_decodes();
    let cancel = AtomicBool::new(false);
    let decodes = time_decodes(model, &clip, &plan, a.reps)?;
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
        let clip = engine::encode(&*model, audio, Layers::Last, &mut |_| {})?;
        Ok(engine::run(&*model, &clip, &vanilla, &cancel, &mut |_| {})?)
    })?;
    let sequential_s = if a.sequential {
        model.options.batch = 1;
        let (s, _) = time(a.reps.min(3), || {
            Ok(engine::run(&*model, &clip, &plan, &cancel, &mut |_| {})?)
        })?;
        Some(s)
    } else {
        None
    };
    Ok(Measured {
        mel_s,
        enc_s,
        enc_all_s,
        dec_s: decodes.plain_s,
        words_s: decodes.words_s,
        transcribe_s,
        sequential_s,
        audio_tokens: clip.n_tokens(),
        tokens: decodes.tokens,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// The last layer's scores, then every layer's in the same pass (the explorer's layer lane,
/// `analyze --layer-scores`), alternating so both see the same machine: the two medians.
fn time_encoder(model: &Whisper, features: &[f32], n: usize, reps: usize) -> Result<(f64, f64)> {
    let (mut last, mut all) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        last.push(time(1, || Ok(model.encode_mel(features, n, Layers::Last)?))?.0);
        all.push(time(1, || Ok(model.encode_mel(features, n, Layers::All)?))?.0);
    }
    Ok((median(last), median(all)))
}

/// The README grid's ten decodes with the 50-token tail scripts/bench-baseline.py gives
/// transformers too.
fn ten_decodes() -> Plan {
    Plan {
        runs: ten_runs(),
        params: Params::default(),
        decoding: engine::Decoding {
            tail: engine::Tail::Tokens(50),
            ..engine::Decoding::default()
        },
    }
}

/// The ten decodes' medians, plain and collecting attention and words, and the tokens the
/// plain ones generated.
struct Decodes {
    plain_s: f64,
    words_s: f64,
    tokens: usize,
}

/// The same decodes collecting the alignment heads' attention and placing the words
/// (`analyze --words`, the explorer), alternating with the plain ones.
fn time_decodes(model: &Whisper, clip: &EncodedClip, plan: &Plan, reps: usize) -> Result<Decodes> {
    let cancel = AtomicBool::new(false);
    let mut with_words = plan.clone();
    with_words.decoding.attention = true;
    let (mut plain, mut worded, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let (s, r) = time(1, || {
            Ok(engine::run(model, clip, plan, &cancel, &mut |_| {})?)
        })?;
        plain.push(s);
        results = r;
        let run = || Ok(engine::run(model, clip, &with_words, &cancel, &mut |_| {})?);
        worded.push(time(1, run)?.0);
    }
    Ok(Decodes {
        plain_s: median(plain),
        words_s: median(worded),
        tokens: results.iter().map(|r| r.generated_tokens).sum(),
    })
}

/// Issue 14's targets on this 30 s window: absolute times, or a speed-up over the baseline.
#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    SpeedUp(f64),
}

/// One stage: our time, the baseline's, the speed-up and whether the target is met.
fn row(what: &str, ours: f64, theirs: Option<f64>, target: Option<Target>) {
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
}

/// The baseline's name, the table of stages, the tokens and the memory.
fn print_table(m: &Measured, base: Option<&Baseline>) {
    match base {
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
        m.mel_s,
        base.map(|b| b.mel_s),
        None,
    );
    row(
        "encoder + scores",
        m.enc_s,
        base.map(|b| b.encoder_s),
        Some(Target::AtMost(0.32)),
    );
    row(
        "encoder + every layer's scores",
        m.enc_all_s,
        None,
        Some(Target::AtMost(0.32)),
    );
    row(
        "10 decodes (full + 3 methods x 3)",
        m.dec_s,
        base.map(|b| b.decode_s),
        Some(Target::AtMost(1.3)),
    );
    row("10 decodes + attention and words", m.words_s, None, None);
    row(
        "plain transcription (vanilla)",
        m.transcribe_s,
        base.and_then(|b| b.plain_s),
        Some(Target::SpeedUp(1.3)),
    );
    row(
        "end to end (mel + encoder + decodes)",
        m.mel_s + m.enc_s + m.dec_s,
        base.map(|b| b.mel_s + b.encoder_s + b.decode_s),
        None,
    );
    if let Some(s) = m.sequential_s {
        row("10 decodes one by one (batch 1)", s, None, None);
    }
    println!(
        "tokens generated: {}{}; {:.2} ms per token (batched)",
        m.tokens,
        base.map(|b| format!(" (baseline {})", b.tokens))
            .unwrap_or_default(),
        m.dec_s * 1e3 / m.tokens.max(1) as f64
    );
    if let Some(r) = m.peak_rss_mb {
        println!(
            "peak RSS: {r:.0} MB{}",
            base.and_then(|b| b.peak_rss_mb)
                .map(|m| format!(" (baseline {m:.0} MB)"))
                .unwrap_or_default()
        );
    }
}
