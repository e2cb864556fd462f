//! `prunescope bench-prefill`: the paper's Table 4 question for prompted models. How much of the
//! language model's prefill does pruning save? Times the prefill (and the decoding per token)
//! at each keep ratio on one 30 s window, median of `--reps`, in one process.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use prunescope::engine::{self, RunMethod, RunSpec};
use prunescope::model::alm::{random, Alm};
use prunescope::model::{AudioLanguageModel, DeviceChoice, Precision};
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
    /// model (prefill time depends only on how many) and `fastv`, which prunes inside it
    /// (default: segmentwise, atome, and fastv where the model has `--fastv-layer`).
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
    let device = DeviceChoice::parse(&a.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let precision = Precision::parse(&a.dtype).map_err(|e| anyhow::anyhow!("--dtype: {e}"))?;
    let keeps = super::parse_keeps(&a.keep)?;
    let asked = a.method.is_some();
    let mut methods: Vec<RunMethod> = a
        .method
        .as_deref()
        .unwrap_or("segmentwise,atome,fastv")
        .split(',')
        .map(|m| match RunMethod::parse(m) {
            Ok(RunMethod::Vanilla) | Ok(RunMethod::PromptAware) => {
                bail!("--method {m}: bench-prefill times the methods that change how many tokens the language model reads (a pruning method or fastv)")
            }
            Ok(m) => Ok(m),
            Err(e) => bail!("--method: {e}"),
        })
        .collect::<Result<_>>()?;
    if a.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let clip = match &a.clip {
        Some(p) => prunescope::audio::load(p)?,
        None => prunescope::audio::demo()?,
    };

    let mut _temp = None;
    let (dir, what) = match &a.model {
        Some(m) => (super::resolve_model_dir(Some(m))?, m.display().to_string()),
        None => {
            let shape =
                random::Shape::parse(&a.random).map_err(|e| anyhow::anyhow!("--random: {e}"))?;
            let temp = TempDir::new("random").context("cannot make a temporary folder")?;
            let dir = temp.path().to_path_buf();
            let t = Instant::now();
            random::write(&dir, shape, 0).context("cannot write the random model")?;
            eprintln!(
                "wrote random {} weights to {} in {:.1} s",
                a.random,
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            _temp = Some(temp);
            (dir, format!("random weights ({})", a.random))
        }
    };
    // The loader's own memory: not the random model's writer before it.
    let fresh_peak = super::bench::reset_peak_rss();
    let rss_before = super::bench::peak_rss_mb();
    let t = Instant::now();
    let dev = device.device()?;
    let mut model = Alm::load(&dir, &dev, precision.dtype(&dev))
        .with_context(|| format!("cannot load model {}", dir.display()))?;
    let load_s = t.elapsed().as_secs_f64();
    let load_rss = match (fresh_peak, rss_before, super::bench::peak_rss_mb()) {
        (true, Some(a), Some(b)) => format!(
            ", peak RSS while loading +{:.0} MB for {:.0} MB of checkpoint",
            b - a,
            checkpoint_mb(&dir)
        ),
        _ => String::new(),
    };
    let info = model.info().clone();

    // One full window of audio: the clip repeated.
    let mut samples = Vec::with_capacity(info.window_samples);
    while samples.len() < info.window_samples {
        let need = info.window_samples - samples.len();
        samples.extend_from_slice(&clip.samples[..need.min(clip.samples.len())]);
    }
    let audio = prunescope::audio::Audio::from_samples(samples, prunescope::SAMPLE_RATE)?;
    let encoded = engine::encode(&model, &audio, Layers::Last, &mut |_| {})?;
    let n = encoded.n_tokens();
    let prompt = info.default_prompt.clone().unwrap_or_default();
    let cancel = AtomicBool::new(false);

    println!(
        "prunescope bench-prefill: {what}, {}, {} text layers x {} hidden, {n} audio tokens ({}), median of {} (+1 warm-up), loaded in {load_s:.1} s{load_rss}, encoder {:.0} ms, {} threads",
        info.label(),
        model.config.text.layers,
        model.config.text.hidden,
        a.clip
            .as_ref()
            .map_or_else(|| "demo clip jfk.wav".into(), |p| p.display().to_string()),
        a.reps,
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
    if let Some(why) = RunMethod::FastV.unavailable(info.lm_layers, a.fastv_layer) {
        if asked && methods.contains(&RunMethod::FastV) {
            return Err(why.into());
        }
        if methods.contains(&RunMethod::FastV) {
            eprintln!("note: no fastv rows: {}", super::errors::unavailable(&why));
            methods.retain(|m| *m != RunMethod::FastV);
        }
    }
    // The unpruned row once, then every method at every ratio below 1.
    let mut specs = Vec::new();
    for &keep in &keeps {
        if keep >= 1.0 {
            specs.push((RunMethod::Prune(Method::Full), keep));
        }
    }
    for &m in &methods {
        for &keep in keeps.iter().filter(|k| **k < 1.0) {
            specs.push((m, keep));
        }
    }
    let mut base = None;
    let mut inputs = Vec::new();
    for (method, keep) in specs {
        let spec = RunSpec { method, keep };
        let sel = engine::select(&encoded, &spec, &Params::default())?;
        let memory = inputs_of_run(&encoded, sel.as_ref())?;
        let (ids, embeds) = model.input_embeddings(&memory, &prompt)?;
        let audio_at = ids
            .iter()
            .position(|&t| t == model.config.audio_token_id)
            .unwrap_or(0);
        let audio = audio_at..audio_at + memory.dim(0)?;
        let fastv = (method == RunMethod::FastV).then(|| prunescope::model::FastV {
            keep: prunescope::prune::budget(keep, audio.len()),
            layer: a.fastv_layer,
        });
        // The audio tokens the later layers read.
        let k = fastv.map_or(audio.len(), |f| f.keep);
        let mut input = prunescope::model::DecodeInput::new(memory);
        input.fastv = fastv;
        inputs.push(input);
        let time = || model.prefill_fastv_ms(&embeds, audio.clone(), fastv);
        time()?;
        let times = (0..a.reps)
            .map(|_| time())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ms = median(times);
        let per_token = if a.decode_tokens > 0 {
            model.options.max_new_tokens = a.decode_tokens;
            model.options.batch = 1;
            let g = model.generate(
                std::slice::from_ref(inputs.last().unwrap()),
                &cancel,
                &mut |_, _| {},
            )?;
            let g = &g[0];
            (g.steps > 0).then(|| (g.decode_ms - g.prefill_ms.unwrap_or(0.0)) / g.steps as f64)
        } else {
            None
        };
        let base_ms = *base.get_or_insert(ms);
        println!(
            "| {:<11} | {:>5} | {:>12} | {:>13} | {:>11.1} | {:>7.2}x | {:>15} |",
            if keep >= 1.0 { "full" } else { method.name() },
            format!("{:.0} %", keep * 100.0),
            k,
            ids.len(),
            ms,
            ms / base_ms,
            per_token.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
        );
    }
    if a.decode_tokens > 0 && inputs.len() > 1 {
        // Every setting decoded one by one, then as one batch (the prefills are the same).
        model.options.max_new_tokens = a.decode_tokens;
        let mut decode_phase = |batch: usize| -> Result<(f64, usize)> {
            model.options.batch = batch;
            let gens = model.generate(&inputs, &cancel, &mut |_, _| {})?;
            let ms = gens
                .iter()
                .map(|g| g.decode_ms - g.prefill_ms.unwrap_or(0.0))
                .sum::<f64>();
            Ok((ms, gens.iter().map(|g| g.token_ids.len()).sum()))
        };
        let (one, tokens) = decode_phase(1)?;
        let (all, _) = decode_phase(inputs.len())?;
        println!(
            "decoding after the prefills, {} settings, {tokens} tokens: one by one {:.2} s, batched {:.2} s ({:.1}x)",
            inputs.len(),
            one / 1e3,
            all / 1e3,
            one / all
        );
    }
    Ok(())
}

/// Size of a directory's safetensors files in MB (2^20 bytes, as the RSS figures).
fn checkpoint_mb(dir: &std::path::Path) -> f64 {
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
    encoded: &engine::EncodedClip,
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
