//! `prunescope bench-prefill`: the paper's Table 4 question for prompted models. How much of the
//! language model's prefill does pruning save? Times the prefill (and the decoding per token)
//! at each keep ratio on one 30 s window, median of `--reps`, in one process.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use prunescope::audio::Audio;
use prunescope::engine::{self, EncodedClip, RunMethod, RunSpec};
use prunescope::model::alm::{random, Alm};
use prunescope::model::{
    AudioLanguageModel, DecodeInput, DeviceChoice, FastV, ModelInfo, Precision,
};
use prunescope::prune::{Method, Params};
use prunescope::scores::Layers;
use prunescope::util::{median, TempDir};

#[derive(Args)]
pub struct PrefillArgs {
    /// Audio file, repeated to fill one window (default: the bundled demo clip, jfk.wav).
    clip: Option<PathBuf>,
    /// A Qwen2-Audio / Audio Flamingo 3 directory or hub id. Without it, random weights of
    /// `--random`'s size are written to a temporary directory and loaded from there.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Size of the random model: mid (Qwen2-0.5B's LM behind a Whisper-small-size encoder) or
    /// tiny.
    #[arg(long, default_value = "mid")]
    random: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// auto (f32 on the CPU, bf16 on CUDA), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Keep ratios to time (1 is the unpruned baseline of the ratios).
    #[arg(long, default_value = "1,0.5,0.25,0.1")]
    keep: String,
    /// Methods to time, comma-separated: those choosing the kept tokens before the language
    /// model (prefill time depends only on how many), `speechprune` (its scoring pass counted
    /// in its prefill) and `fastv`, which prunes inside it (default: segmentwise, atome, and
    /// fastv where the model has `--fastv-layer`).
    #[arg(long)]
    method: Option<String>,
    /// `fastv`: the language-model layers that read every audio token.
    #[arg(long, default_value_t = 2)]
    fastv_layer: usize,
    /// Repetitions per keep ratio (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Tokens generated to time decoding per token (0 skips it).
    #[arg(long, default_value_t = 16)]
    decode_tokens: usize,
}

pub fn run(a: PrefillArgs) -> Result<()> {
    // The cheap checks first, so a typo never waits for weights to be written or loaded.
    let device = DeviceChoice::parse(&a.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let precision = Precision::parse(&a.dtype).map_err(|e| anyhow::anyhow!("--dtype: {e}"))?;
    let keeps = super::parse_keeps(&a.keep)?;
    let methods = parse_methods(a.method.as_deref())?;
    if a.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let clip = match &a.clip {
        Some(p) => prunescope::audio::load(p)?,
        None => prunescope::audio::demo()?,
    };
    let weights = Weights::find(a.model.as_deref(), &a.random)?;
    let loaded = Loaded::load(&weights.dir, device, precision)?;
    let info = loaded.model.info().clone();
    let audio = filled(&clip, info.window_samples)?;
    let encoded = engine::encode(&loaded.model, &audio, Layers::Last, &mut |_| {})?;
    print_header(&a, &weights, &loaded, &encoded);
    let methods = without_unavailable_fastv(methods, a.method.is_some(), &info, a.fastv_layer)?;

    let mut bench = Bench {
        model: loaded.model,
        encoded: &encoded,
        prompt: info.default_prompt.clone().unwrap_or_default(),
        reps: a.reps,
        decode_tokens: a.decode_tokens,
        fastv_layer: a.fastv_layer,
        cancel: AtomicBool::new(false),
    };
    let mut base_ms = None;
    let mut inputs = Vec::new();
    for (method, keep) in settings(&keeps, &methods) {
        let (row, input) = bench.time(method, keep)?;
        print_row(&row, *base_ms.get_or_insert(row.prefill_ms));
        inputs.push(input);
    }
    if a.decode_tokens > 0 && inputs.len() > 1 {
        bench.compare_batching(&inputs)?;
    }
    Ok(())
}

/// `--method`: the methods to time (default: segmentwise, atome and fastv), each one that
/// changes how many audio tokens the language model reads.
fn parse_methods(asked: Option<&str>) -> Result<Vec<RunMethod>> {
    super::parse_list("method", asked.unwrap_or("segmentwise,atome,fastv"), |m| {
        match super::parse_method(m)? {
            RunMethod::Vanilla | RunMethod::PromptAware => {
                bail!("--method {m}: bench-prefill times the methods that change how many tokens the language model reads (a pruning method or fastv)")
            }
            RunMethod::EncoderDrop => {
                bail!("--method encoderdrop: its prefill is top-K's at the same K; `prunescope bench-drop` times what it changes, the encoder")
            }
            method => Ok(method),
        }
    })
}

/// `methods` without fastv where the model has no layer `--fastv-layer`: an error where fastv
/// was asked for by name, else a note.
fn without_unavailable_fastv(
    mut methods: Vec<RunMethod>,
    asked: bool,
    info: &ModelInfo,
    fastv_layer: usize,
) -> Result<Vec<RunMethod>> {
    let decoding = prunescope::engine::Decoding {
        fastv_layer,
        ..Default::default()
    };
    if let Some(why) = RunMethod::FastV.unavailable(info, &decoding) {
        if asked && methods.contains(&RunMethod::FastV) {
            return Err(why.into());
        }
        if methods.contains(&RunMethod::FastV) {
            eprintln!("note: no fastv rows: {}", super::errors::unavailable(&why));
            methods.retain(|m| *m != RunMethod::FastV);
        }
    }
    Ok(methods)
}

/// The settings timed, in table order: the unpruned row once, then every method at every ratio
/// below 1.
fn settings(keeps: &[f64], methods: &[RunMethod]) -> Vec<(RunMethod, f64)> {
    let full = keeps
        .iter()
        .filter(|k| **k >= 1.0)
        .map(|&keep| (RunMethod::Prune(Method::Full), keep));
    let pruned = methods.iter().flat_map(|&m| {
        keeps
            .iter()
            .filter(|k| **k < 1.0)
            .map(move |&keep| (m, keep))
    });
    full.chain(pruned).collect()
}

/// The model's weights: `--model`'s, or random ones of `--random`'s size written to a
/// temporary folder that lives as long as this.
/// The checkpoint a benchmark loads: the one named, or random weights of a chosen size in a
/// temporary folder (removed when dropped).
pub(super) struct Weights {
    pub(super) dir: PathBuf,
    /// What the header calls them.
    what: String,
    _temp: Option<TempDir>,
}

impl Weights {
    /// `model`, else random weights of size `random` (`mid` or `tiny`).
    pub(super) fn find(model: Option<&Path>, random: &str) -> Result<Weights> {
        if let Some(m) = model {
            return Ok(Weights {
                dir: super::resolve_model_dir(Some(m))?,
                what: m.display().to_string(),
                _temp: None,
            });
        }
        let shape = random::Shape::parse(random).map_err(|e| anyhow::anyhow!("--random: {e}"))?;
        let temp = TempDir::new("random").context("cannot make a temporary folder")?;
        let dir = temp.path().to_path_buf();
        let t = Instant::now();
        random::write(&dir, shape, 0).context("cannot write the random model")?;
        eprintln!(
            "wrote random {} weights to {} in {:.1} s",
            random,
            dir.display(),
            t.elapsed().as_secs_f64()
        );
        Ok(Weights {
            dir,
            what: format!("random weights ({random})"),
            _temp: Some(temp),
        })
    }
}

/// The loaded model and what its loading cost.
struct Loaded {
    model: Alm,
    load_s: f64,
    /// `, peak RSS while loading +N MB for M MB of checkpoint`, where the peak could be
    /// measured; else empty.
    load_rss: String,
}

impl Loaded {
    fn load(dir: &Path, device: DeviceChoice, precision: Precision) -> Result<Loaded> {
        // The loader's own memory: not the random model's writer before it.
        let fresh_peak = super::bench::reset_peak_rss();
        let rss_before = super::bench::peak_rss_mb();
        let t = Instant::now();
        let dev = device.device()?;
        let model = Alm::load(dir, &dev, precision.dtype(&dev))
            .with_context(|| format!("cannot load model {}", dir.display()))?;
        let load_s = t.elapsed().as_secs_f64();
        let load_rss = match (fresh_peak, rss_before, super::bench::peak_rss_mb()) {
            (true, Some(a), Some(b)) => format!(
                ", peak RSS while loading +{:.0} MB for {:.0} MB of checkpoint",
                b - a,
                checkpoint_mb(dir)
            ),
            _ => String::new(),
        };
        Ok(Loaded {
            model,
            load_s,
            load_rss,
        })
    }
}

/// `clip` repeated (and cut) to `n` samples: whole windows of audio from a short clip.
pub(super) fn filled(clip: &Audio, n: usize) -> Result<Audio> {
    let mut samples = Vec::with_capacity(n);
    while samples.len() < n {
        let need = n - samples.len();
        samples.extend_from_slice(&clip.samples[..need.min(clip.samples.len())]);
    }
    Ok(Audio::from_samples(samples, prunescope::SAMPLE_RATE)?)
}

/// The line naming the model, the clip and the machine, then the table's head.
fn print_header(a: &PrefillArgs, weights: &Weights, loaded: &Loaded, encoded: &EncodedClip) {
    let model = &loaded.model;
    println!(
        "prunescope bench-prefill: {}, {}, {} text layers x {} hidden, {} audio tokens ({}), median of {} (+1 warm-up), loaded in {:.1} s{}, encoder {:.0} ms, {} threads",
        weights.what,
        model.info().label(),
        model.config.text.layers,
        model.config.text.hidden,
        encoded.n_tokens(),
        a.clip
            .as_ref()
            .map_or_else(|| "demo clip jfk.wav".into(), |p| p.display().to_string()),
        a.reps,
        loaded.load_s,
        loaded.load_rss,
        encoded.encode_ms,
        rayon::current_num_threads()
    );
    println!(
        "| {:<11} | {:>5} | {:>12} | {:>13} | {:>11} | {:>8} | {:>15} |",
        "method",
        "keep",
        "audio tokens",
        "prompt tokens",
        "prefill ms",
        "vs 100 %",
        "decode ms/token"
    );
    println!(
        "|{:-<13}|{:->7}|{:->14}|{:->15}|{:->13}|{:->10}|{:->17}|",
        "", "", "", "", "", "", ""
    );
}

/// One row of the table: a setting and its times.
struct Row {
    method: RunMethod,
    keep: f64,
    /// The audio tokens the later layers read.
    audio_tokens: usize,
    prompt_tokens: usize,
    /// Median of the repetitions.
    prefill_ms: f64,
    /// None when not measured (`--decode-tokens 0`, or nothing generated).
    decode_ms_per_token: Option<f64>,
}

fn print_row(r: &Row, base_ms: f64) {
    println!(
        "| {:<11} | {:>5} | {:>12} | {:>13} | {:>11.1} | {:>7.2}x | {:>15} |",
        if r.keep >= 1.0 {
            "full"
        } else {
            r.method.name()
        },
        format!("{:.0} %", r.keep * 100.0),
        r.audio_tokens,
        r.prompt_tokens,
        r.prefill_ms,
        r.prefill_ms / base_ms,
        r.decode_ms_per_token
            .map_or_else(|| "-".into(), |v| format!("{v:.1}"))
    );
}

/// What every setting is timed with: the model, the encoded window and the repetitions.
struct Bench<'a> {
    model: Alm,
    encoded: &'a EncodedClip,
    prompt: String,
    reps: usize,
    decode_tokens: usize,
    fastv_layer: usize,
    cancel: AtomicBool,
}

impl Bench<'_> {
    /// Times one setting's prefill (median of the repetitions after one warm-up) and its
    /// decoding per token; also gives the setting's decoder input for the batched comparison.
    fn time(&mut self, method: RunMethod, keep: f64) -> Result<(Row, DecodeInput)> {
        let spec = RunSpec { method, keep };
        // SpeechPrune chooses with the model: its scoring pass is part of its prefill, as in
        // `analyze` (`scoring_ms` within `prefill_ms`).
        let (sel, scoring_ms) = if method == RunMethod::SpeechPrune {
            let mut times = Vec::with_capacity(self.reps);
            let mut sel = None;
            for _ in 0..=self.reps {
                let (s, ms) = engine::speechprune_selection(
                    &self.model,
                    self.encoded,
                    keep,
                    Some(&self.prompt),
                )?;
                times.push(ms);
                sel = Some(s);
            }
            // The first was the warm-up.
            (sel, median(times.into_iter().skip(1)))
        } else {
            (
                engine::select(self.encoded, &spec, &Params::default())?,
                0.0,
            )
        };
        let memory = inputs_of_run(self.encoded, sel.as_ref())?;
        let (ids, embeds) = self.model.input_embeddings(&memory, &self.prompt)?;
        let audio_at = ids
            .iter()
            .position(|&t| t == self.model.config.audio_token_id)
            .unwrap_or(0);
        let audio = audio_at..audio_at + memory.dim(0)?;
        let fastv = (method == RunMethod::FastV).then(|| FastV {
            keep: prunescope::prune::budget(keep, audio.len()),
            layer: self.fastv_layer,
        });
        let mut input = DecodeInput::new(memory);
        input.fastv = fastv;
        let time = || self.model.prefill_fastv_ms(&embeds, audio.clone(), fastv);
        time()?;
        let times = (0..self.reps)
            .map(|_| time())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let row = Row {
            method,
            keep,
            audio_tokens: fastv.map_or(audio.len(), |f| f.keep),
            prompt_tokens: ids.len(),
            prefill_ms: median(times) + scoring_ms,
            decode_ms_per_token: self.decode_ms_per_token(&input)?,
        };
        Ok((row, input))
    }

    /// The decoding time per token after the prefill, of `--decode-tokens` tokens.
    fn decode_ms_per_token(&mut self, input: &DecodeInput) -> Result<Option<f64>> {
        if self.decode_tokens == 0 {
            return Ok(None);
        }
        self.model.options.max_new_tokens = self.decode_tokens;
        self.model.options.batch = 1;
        let gens =
            self.model
                .generate(std::slice::from_ref(input), &self.cancel, &mut |_, _| {})?;
        Ok(gens.first().and_then(|g| {
            (g.steps > 0).then(|| (g.decode_ms - g.prefill_ms.unwrap_or(0.0)) / g.steps as f64)
        }))
    }

    /// Every setting decoded one by one, then as one batch (the prefills are the same), and
    /// the line comparing the two.
    fn compare_batching(&mut self, inputs: &[DecodeInput]) -> Result<()> {
        self.model.options.max_new_tokens = self.decode_tokens;
        let (one, tokens) = self.decode_all(inputs, 1)?;
        let (all, _) = self.decode_all(inputs, inputs.len())?;
        println!(
            "decoding after the prefills, {} settings, {tokens} tokens: one by one {:.2} s, batched {:.2} s ({:.1}x)",
            inputs.len(),
            one / 1e3,
            all / 1e3,
            one / all
        );
        Ok(())
    }

    /// Decodes `inputs` `batch` at a time: the ms after the prefills and the tokens generated.
    fn decode_all(&mut self, inputs: &[DecodeInput], batch: usize) -> Result<(f64, usize)> {
        self.model.options.batch = batch;
        let gens = self.model.generate(inputs, &self.cancel, &mut |_, _| {})?;
        let ms = gens
            .iter()
            .map(|g| g.decode_ms - g.prefill_ms.unwrap_or(0.0))
            .sum::<f64>();
        Ok((ms, gens.iter().map(|g| g.token_ids.len()).sum()))
    }
}

/// Size of a directory's safetensors files in MB (2^20 bytes, as the RSS figures).
fn checkpoint_mb(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes as f64 / (1024.0 * 1024.0)
}

/// The audio rows a prefix model gets for one run.
fn inputs_of_run(
    encoded: &EncodedClip,
    sel: Option<&prunescope::prune::Selection>,
) -> Result<candle_core::Tensor> {
    let mut v = engine::decoder_inputs(
        encoded,
        sel,
        engine::Tail::Tokens(0),
        true,
        &mut engine::TailRows::default(),
    )?;
    Ok(v.remove(0).1.memory)
}
