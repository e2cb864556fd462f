//! Models: weight readers, Whisper (its encoder with received-attention scores, its decoder),
//! Qwen2-Audio and Audio Flamingo 3 ([`alm`]), the [`AudioLanguageModel`] trait the engine, CLI
//! and GUI talk to, the CPU kernels Whisper runs on ([`kernels`]), and the sentence embedder
//! the evaluation matches answers with ([`sentence`]).

pub mod align;
pub mod alm;
pub mod ct2;
pub mod encoder_cpu;
pub mod fake;
pub mod hf;
pub mod hub;
pub mod kernels;
pub mod nn;
pub mod repetition;
pub mod scores;
pub mod sentence;
pub mod store;
pub mod whisper;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Tensor;

use crate::scores::{LayerScores, Layers};
use crate::util::{parse_name, UnknownName};

/// Everything that can go wrong while loading or running a model, one readable line each.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {0} does not exist")]
    DirMissing(PathBuf),
    #[error("{0} is not a directory (pass the model's directory, not a file inside it)")]
    NotADir(PathBuf),
    #[error("{dir} holds no model: expected model.bin (CTranslate2) or model.safetensors / model.safetensors.index.json (Hugging Face)")]
    NoWeights { dir: PathBuf },
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Ct2 {
        path: PathBuf,
        #[source]
        source: ct2::Ct2Error,
    },
    #[error("{0} is missing: the model directory needs its tokenizer.json")]
    TokenizerMissing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error(transparent)]
    Json(#[from] hf::JsonError),
    #[error("weights lack tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {got:?}, expected {want:?}")]
    Shape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Device(String),
    /// A GPU asked of a build without the `cuda` feature.
    #[error("this prunescope was built without CUDA (the `cuda` feature, which needs nvcc)")]
    NoCuda,
    /// Whisper asked to run on a device other than the CPU.
    #[error(
        "Whisper runs on the CPU in prunescope; device {0} is for Qwen2-Audio and Audio Flamingo 3"
    )]
    WhisperDevice(DeviceChoice),
    /// Whisper asked to run in an arithmetic other than f32.
    #[error(
        "Whisper runs in f32 in prunescope; dtype {0} is for Qwen2-Audio and Audio Flamingo 3"
    )]
    WhisperPrecision(Precision),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    pub(crate) fn corrupt(path: &Path, msg: impl Into<String>) -> Self {
        ModelError::Corrupt {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// What the engine needs to know about a model to cut, score and prune a clip.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// Short name for reports, e.g. "whisper-tiny.en (ctranslate2)".
    pub name: String,
    pub n_mels: usize,
    /// Encoder tokens per 30 s window (1500 for Whisper).
    pub tokens_per_window: usize,
    pub seconds_per_token: f64,
    /// Whether the decoder can take a silence tail after the kept tokens (Whisper: yes).
    pub has_tail: bool,
    /// Samples of one encoder window (480000 = 30 s for every published model).
    pub window_samples: usize,
    /// Windows the model reads at most (Qwen2-Audio 1, Audio Flamingo 3 20); the rest of a
    /// longer clip is left out and reported.
    pub max_windows: Option<usize>,
    /// An LLM-prefix model (Qwen2-Audio, AF3): each run is one sequence holding every window's
    /// kept tokens in order as prompt placeholders; vanilla is every valid token. Otherwise
    /// (Whisper) each window is decoded on its own by cross-attention.
    pub prefix_lm: bool,
    /// The prompt text used when a run has none (prefix models only).
    pub default_prompt: Option<String>,
    /// Where it runs and in which arithmetic.
    pub runtime: Runtime,
    /// Layers of its audio encoder (the rows of the layer scores).
    pub encoder_layers: usize,
    /// Layers of the language model the audio tokens are a prefix of (None: Whisper).
    pub lm_layers: Option<usize>,
    /// Whether its encoder can drop tokens part-way ([`AudioLanguageModel::encode_dropping`],
    /// `encoderdrop`).
    #[serde(default)]
    pub drops_in_encoder: bool,
}

/// Where a model runs and in which floating-point type its weights and activations are: the
/// `runtime` object of the `analyze` JSON, and the explorer's title bar.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Runtime {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32`, `bf16` or `f16`.
    pub dtype: String,
}

impl Runtime {
    pub fn new(device: &candle_core::Device, dtype: candle_core::DType) -> Runtime {
        Runtime {
            device: match device.location() {
                candle_core::DeviceLocation::Cpu => "cpu".into(),
                candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
                candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
            },
            dtype: dtype.as_str().into(),
        }
    }

    /// Whisper's: the CPU in f32.
    pub fn cpu_f32() -> Runtime {
        Runtime::new(&candle_core::Device::Cpu, candle_core::DType::F32)
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.device, self.dtype)
    }
}

/// A model's name with where and in which dtype it ran: [`ModelInfo::label`], and a
/// document's (`ClipReport::model_label`).
pub fn label(name: &str, runtime: &Runtime) -> String {
    format!("{name}, {runtime}")
}

impl ModelInfo {
    /// The name with where and in which dtype it runs, e.g. "qwen2-audio-7b (qwen2-audio), cpu
    /// bf16": what reports and the explorer's title bar show.
    pub fn label(&self) -> String {
        label(&self.name, &self.runtime)
    }

    /// Whisper-style defaults: 30 s windows, no window limit, cross-attention decoding.
    pub fn cross_attention(
        name: String,
        n_mels: usize,
        tokens_per_window: usize,
        encoder_layers: usize,
    ) -> ModelInfo {
        ModelInfo {
            name,
            n_mels,
            tokens_per_window,
            seconds_per_token: 30.0 / tokens_per_window as f64,
            has_tail: true,
            window_samples: crate::WINDOW_SAMPLES,
            max_windows: None,
            prefix_lm: false,
            default_prompt: None,
            runtime: Runtime::cpu_f32(),
            encoder_layers,
            lm_layers: None,
            drops_in_encoder: false,
        }
    }
}

/// The encoder's view of one 30 s window.
pub struct EncodedWindow {
    /// Encoder output, `(tokens_per_window, d_model)`, f32.
    pub hidden: Tensor,
    /// Valid (non-padding) tokens of this window.
    pub n_valid: usize,
    /// Last-layer keys averaged over heads, `n_valid x key_dim`, row-major (for visionzip/merge).
    pub keys: Vec<f32>,
    pub key_dim: usize,
    /// Received attention of the layers asked for ([`Layers`]), first layer first: the
    /// last one alone, or every layer; each with the mean and the max over heads.
    pub layers: Vec<LayerScores>,
}

impl EncodedWindow {
    /// Received attention `a_t` of each valid token (SPEC.md section 2): the last layer's, mean
    /// over heads.
    pub fn scores(&self) -> &[f32] {
        self.layers.last().map_or(&[], |l| &l.mean)
    }
}

/// One sequence to decode: the encoder tokens the decoder may attend to, `(len, d_model)`,
/// for prompted models (Qwen2-Audio, AF3) the user's text (None: the model's default), and
/// whether to end the decode where a loop is detected (`--stop-on-loop`).
pub struct DecodeInput {
    pub memory: Tensor,
    /// Cross-attention models: rows attended to after `memory` (a window's silence context),
    /// the same `Arc` for every input of that window, so the model computes their keys and
    /// values once for all of them.
    pub tail: Option<std::sync::Arc<Tensor>>,
    pub prompt: Option<String>,
    pub stop_on_loop: bool,
    /// Collect the attention from each chosen token to `memory` and the words of the text
    /// ([`Generation::attention`], [`Generation::words`]).
    pub attention: bool,
    /// FastV: the model keeps only the memory rows its own attention ranks first
    /// ([`Generation::kept`]).
    pub fastv: Option<FastV>,
}

/// Pruning inside the model, FastV style (docs/SPEC.md section 4): `keep` memory rows stay.
/// Prefix models run their first `layer` language-model layers on every audio token, rank the
/// audio tokens by the attention the last prompt position pays them in layer `layer` (mean
/// over heads) and drop the rest from the KV cache and the later layers. Whisper (our
/// adaptation) keeps the rows the first decoding step's cross-attention (mean over every head
/// of every layer) ranks first, and decodes the rest of the run over them; `layer` is unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastV {
    pub keep: usize,
    pub layer: usize,
}

impl DecodeInput {
    pub fn new(memory: Tensor) -> DecodeInput {
        DecodeInput {
            memory,
            tail: None,
            prompt: None,
            stop_on_loop: false,
            attention: false,
            fastv: None,
        }
    }
}

/// Why a decode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// The model produced an end token.
    #[default]
    EndToken,
    /// It reached its token cap.
    Cap,
    /// The `--stop-on-loop` guard found a repetition and cut it.
    LoopGuard,
}

impl Ending {
    /// The guard's check after a sequence grew by one token: when `ids` now ends in a loop,
    /// drop the repeated copies and say so.
    pub fn guard(ids: &mut Vec<u32>, enabled: bool) -> Option<Ending> {
        if !enabled {
            return None;
        }
        let (start, _) = repetition::repeat_at_end(ids)?;
        ids.truncate(start);
        Some(Ending::LoopGuard)
    }
}

/// What greedy decoding produced for one input.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    pub text: String,
    /// Wall time attributed to this sequence (ms). In batched decoding each step's time is
    /// shared equally among the sequences still running, so the shares add up to the wall time.
    /// Includes the prefill.
    pub decode_ms: f64,
    /// Time (ms, included in `decode_ms`) spent before the first generated token on the audio
    /// tokens: an LLM's prompt prefill; Whisper's cross-attention keys and values. None when
    /// the model does not measure it.
    pub prefill_ms: Option<f64>,
    /// Decoding steps after the prefill (each one token), for ms-per-token figures.
    pub steps: usize,
    /// Whether it looped, and where its repeated copies are in `text` ([`repetition`]).
    pub loops: repetition::LoopReport,
    /// When the input asked: the attention from each chosen token to the input's `memory`
    /// rows ([`align`]).
    pub attention: Option<align::TokenAttention>,
    /// When the input asked: the words of `token_ids`, aligned in columns of `attention` by
    /// models that align (Whisper).
    pub words: Vec<align::WordSpan>,
    /// With [`DecodeInput::fastv`]: the memory rows the model kept, ascending (`attention`'s
    /// columns are these rows).
    pub kept: Option<Vec<usize>>,
}

/// The text of token ids by a Hugging Face tokenizer, special tokens skipped (untrimmed).
pub(crate) fn decode_text(tok: &tokenizers::Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))
}

impl Generation {
    /// A finished decode: its text from `decode` (trimmed) and its loop report.
    pub fn finish(
        token_ids: Vec<u32>,
        ending: Ending,
        decode: &dyn Fn(&[u32]) -> Result<String>,
    ) -> Result<Generation> {
        let text = decode(&token_ids)?.trim().to_string();
        let prefix = |ids: &[u32]| decode(ids).unwrap_or_default();
        let loops = repetition::assess(
            &token_ids,
            &text,
            ending == Ending::Cap,
            ending == Ending::LoopGuard,
            &prefix,
        );
        Ok(Generation {
            token_ids,
            text,
            loops,
            ..Generation::default()
        })
    }
}

/// Called as sequences finish: `(input index, its generation)`.
pub type OnFinished<'a> = dyn FnMut(usize, &Generation) + Send + 'a;

/// The seam between engine and model (so UI tests can run a small fake).
pub trait AudioLanguageModel: Send {
    fn info(&self) -> &ModelInfo;
    /// Encode one window of up to 30 s of 16 kHz mono samples, with the received attention of
    /// the last encoder layer or of every layer.
    fn encode(&self, samples: &[f32], layers: Layers) -> Result<EncodedWindow>;
    /// Greedy-decode every input (batched where the model can). Checks `cancel` at every step.
    fn generate(
        &self,
        inputs: &[DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> Result<Vec<Generation>>;
    /// Prompt-aware scores (SpeechPrune style, docs/SPEC.md section 4): the attention each row of
    /// `memory` receives from the prompt text after the audio in the first language-model
    /// layer, mean over heads. None for models without a prompt (Whisper).
    fn prompt_scores(&self, _memory: &Tensor, _prompt: Option<&str>) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }
    /// SpeechPrune's two scores of each row of `memory` (docs/SPEC.md section 4): its
    /// similarity to the prompt after the audio through the language model's embeddings, and
    /// the binarized first-layer attention that prompt pays it. None for models without a
    /// prompt (Whisper).
    fn speechprune_scores(
        &self,
        _memory: &Tensor,
        _prompt: Option<&str>,
    ) -> Result<Option<SpeechPruneScores>> {
        Ok(None)
    }
    /// `encoderdrop` (docs/SPEC.md section 4) on one window: the encoder as [`encode`] runs it
    /// up to `drop.layer`; the received attention of its layer `drop.layer - 1` (mean over
    /// heads) ranks the valid tokens; then, for each budget of `drop.keeps`, the remaining
    /// layers run on that many best tokens (at their original positions) and the window's first
    /// `drop.tail` padding rows. None for a model whose encoder cannot
    /// ([`ModelInfo::drops_in_encoder`]).
    ///
    /// [`encode`]: AudioLanguageModel::encode
    fn encode_dropping(
        &self,
        _samples: &[f32],
        _drop: &EncoderDrop,
    ) -> Result<Option<Vec<DroppedWindow>>> {
        Ok(None)
    }
}

/// [`AudioLanguageModel::speechprune_scores`]: one value of each per audio token.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechPruneScores {
    /// The largest cosine between the token's input embedding (after the projector) and the
    /// embeddings of the prompt's tokens after the audio.
    pub similarity: Vec<f32>,
    /// The attention those prompt positions pay it in the language model's first layer with
    /// binarized queries and keys, summed over them, mean over heads.
    pub attention: Vec<f32>,
}

/// What [`AudioLanguageModel::encode_dropping`] is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderDrop {
    /// Layers run on every token (at least 1, below the encoder's layer count).
    pub layer: usize,
    /// Budgets: tokens of the window kept after `layer`, one encoder pass each.
    pub keeps: Vec<usize>,
    /// Padding rows after the valid ones that run with the kept tokens (the silence context).
    pub tail: usize,
}

/// One budget's window after an encoder that dropped tokens part-way.
pub struct DroppedWindow {
    /// The window's valid tokens kept, ascending.
    pub kept: Vec<usize>,
    /// Encoder output rows: the kept tokens', then the tail's, `(kept + tail, d_model)`.
    pub hidden: Tensor,
    /// The tail rows at the end of `hidden`.
    pub tail: usize,
    /// Time of this budget's encoder (ms): the shared layers before the drop plus its own
    /// layers after it.
    pub encode_ms: f64,
}

/// The `k` best of `scores` by the ordering every method shares ([`crate::prune::rank`]),
/// ascending: what FastV keeps.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut kept = crate::prune::rank(scores);
    kept.truncate(k);
    kept.sort_unstable();
    kept
}

/// Where a model runs: `cpu`, `cuda` (GPU 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    pub fn parse(s: &str) -> std::result::Result<DeviceChoice, UnknownName> {
        const NAMES: [(&str, DeviceChoice); 3] = [
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("gpu", DeviceChoice::Cuda(0)),
        ];
        let gpu = s.trim().to_ascii_lowercase();
        if let Some(n) = gpu.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            return Ok(DeviceChoice::Cuda(n));
        }
        // The table cannot list `cuda:N`, so the hint is written out.
        parse_name("device", s, &NAMES)
            .map_err(|e| UnknownName::expected(e.what, &e.got, &["cpu", "cuda", "cuda:N"]))
    }

    /// The candle device, with a clear error when this build has no CUDA or the GPU is absent.
    pub fn device(self) -> Result<candle_core::Device> {
        match self {
            DeviceChoice::Cpu => Ok(candle_core::Device::Cpu),
            DeviceChoice::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(ModelError::NoCuda);
                }
                candle_core::Device::new_cuda(n)
                    .map_err(|e| ModelError::Device(format!("cannot open CUDA device {n}: {e}")))
            }
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The floating-point type Qwen2-Audio / AF3 run in (`--dtype`): `auto` is f32 on the CPU and
/// bf16 on a GPU. Whisper runs in f32 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub const ALL: [Precision; 4] = [
        Precision::Auto,
        Precision::F32,
        Precision::Bf16,
        Precision::F16,
    ];

    /// By name or its long form (`bfloat16`); the error lists the short names.
    pub fn parse(s: &str) -> std::result::Result<Precision, UnknownName> {
        parse_name(
            "dtype",
            s,
            &[
                ("auto", Precision::Auto),
                ("f32", Precision::F32),
                ("float32", Precision::F32),
                ("bf16", Precision::Bf16),
                ("bfloat16", Precision::Bf16),
                ("f16", Precision::F16),
                ("float16", Precision::F16),
            ],
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The dtype on `device`.
    pub fn dtype(self, device: &candle_core::Device) -> candle_core::DType {
        use candle_core::DType;
        match self {
            Precision::Auto if device.is_cpu() => DType::F32,
            Precision::Auto => DType::BF16,
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to load a model, whatever its kind.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    pub precision: Precision,
    pub whisper: whisper::DecodeOptions,
    pub alm: alm::AlmOptions,
}

/// Loads any supported model directory: Qwen2-Audio or Audio Flamingo 3 when `config.json` says
/// so, else Whisper (CTranslate2 or Hugging Face).
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Box<dyn AudioLanguageModel>> {
    if alm::is_alm_dir(dir) {
        let device = opts.device.device()?;
        let mut m = alm::Alm::load(dir, &device, opts.precision.dtype(&device))?;
        m.options = opts.alm.clone();
        return Ok(Box::new(m));
    }
    // Check the directory first so a wrong path is reported as such.
    detect_format(dir)?;
    whisper_runtime(opts)?;
    let mut m = whisper::Whisper::load(dir)?;
    m.options = opts.whisper.clone();
    Ok(Box::new(m))
}

/// Whisper runs on the CPU in f32: the options' device and precision must say so (or `auto`).
pub fn whisper_runtime(opts: &LoadOptions) -> Result<()> {
    if opts.device != DeviceChoice::Cpu {
        return Err(ModelError::WhisperDevice(opts.device));
    }
    if !matches!(opts.precision, Precision::Auto | Precision::F32) {
        return Err(ModelError::WhisperPrecision(opts.precision));
    }
    Ok(())
}

/// A boxed model is a model (so `&Box<dyn AudioLanguageModel>` goes where `&dyn` does).
impl<M: AudioLanguageModel + ?Sized> AudioLanguageModel for Box<M> {
    fn info(&self) -> &ModelInfo {
        (**self).info()
    }
    fn encode(&self, samples: &[f32], layers: Layers) -> Result<EncodedWindow> {
        (**self).encode(samples, layers)
    }
    fn generate(
        &self,
        inputs: &[DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> Result<Vec<Generation>> {
        (**self).generate(inputs, cancel, on_finished)
    }
    fn prompt_scores(&self, memory: &Tensor, prompt: Option<&str>) -> Result<Option<Vec<f32>>> {
        (**self).prompt_scores(memory, prompt)
    }
    fn speechprune_scores(
        &self,
        memory: &Tensor,
        prompt: Option<&str>,
    ) -> Result<Option<SpeechPruneScores>> {
        (**self).speechprune_scores(memory, prompt)
    }
    fn encode_dropping(
        &self,
        samples: &[f32],
        drop: &EncoderDrop,
    ) -> Result<Option<Vec<DroppedWindow>>> {
        (**self).encode_dropping(samples, drop)
    }
}

/// Which format a model directory is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    CTranslate2,
    HuggingFace,
}

/// Looks at a directory and says which weight format it holds, with a clear error otherwise.
pub fn detect_format(dir: &Path) -> Result<WeightFormat> {
    if !dir.exists() {
        return Err(ModelError::DirMissing(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(ModelError::NotADir(dir.to_path_buf()));
    }
    if dir.join("model.bin").is_file() {
        Ok(WeightFormat::CTranslate2)
    } else if dir.join("model.safetensors").is_file()
        || dir.join("model.safetensors.index.json").is_file()
    {
        Ok(WeightFormat::HuggingFace)
    } else {
        Err(ModelError::NoWeights {
            dir: dir.to_path_buf(),
        })
    }
}

/// The default model's directory when the model is there: `$PRUNESCOPE_MODEL`, else the user
/// cache folder (see [`store`]).
pub fn default_dir() -> Option<PathBuf> {
    store::WHISPER_TINY_EN.present()
}
