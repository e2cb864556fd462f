//! Models: weight readers, the Whisper encoder (with received-attention scores) and decoder, and
//! the [`AudioLanguageModel`] trait the engine, CLI and GUI talk to.

pub mod ct2;
pub mod fake;
pub mod hf;
pub mod kernels;
pub mod whisper;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Tensor;

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
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// Short name for reports, e.g. "whisper-tiny.en (ctranslate2)".
    pub name: String,
    pub n_mels: usize,
    /// Encoder tokens per 30 s window (1500 for Whisper).
    pub tokens_per_window: usize,
    pub seconds_per_token: f64,
    /// Whether the decoder can take a silence tail after the kept tokens (Whisper: yes).
    pub has_tail: bool,
}

/// The encoder's view of one 30 s window.
pub struct EncodedWindow {
    /// Encoder output, `(tokens_per_window, d_model)`, f32.
    pub hidden: Tensor,
    /// Valid (non-padding) tokens of this window.
    pub n_valid: usize,
    /// Received attention `a_t` of each valid token (SPEC.md section 2).
    pub scores: Vec<f32>,
    /// Last-layer keys averaged over heads, `n_valid x key_dim`, row-major (for visionzip/merge).
    pub keys: Vec<f32>,
    pub key_dim: usize,
}

/// One sequence to decode: the encoder tokens the decoder may attend to, `(len, d_model)`.
pub struct DecodeInput {
    pub memory: Tensor,
}

/// What greedy decoding produced for one input.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    pub text: String,
    /// Wall time attributed to this sequence (ms). In batched decoding each step's time is
    /// shared equally among the sequences still running, so the shares add up to the wall time.
    pub decode_ms: f64,
}

/// Called as sequences finish: `(input index, its generation)`.
pub type OnFinished<'a> = dyn FnMut(usize, &Generation) + 'a;

/// The seam between engine and model (so UI tests can run a small fake).
pub trait AudioLanguageModel: Send {
    fn info(&self) -> &ModelInfo;
    /// Encode one window of up to 30 s of 16 kHz mono samples.
    fn encode(&self, samples: &[f32]) -> Result<EncodedWindow>;
    /// Greedy-decode every input (batched where the model can). Checks `cancel` at every step.
    fn generate(
        &self,
        inputs: &[DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> Result<Vec<Generation>>;
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

/// The default model directory if one is on disk: `$PRUNESCOPE_MODEL`, then
/// `models/whisper-tiny.en` in the current directory, then in this checkout.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PRUNESCOPE_MODEL") {
        return Some(PathBuf::from(p));
    }
    let rel = Path::new("models").join("whisper-tiny.en");
    [rel.clone(), checkout_default_dir()]
        .into_iter()
        .find(|c| c.is_dir())
}

/// Where `scripts/fetch-models` puts the default model in this checkout.
pub fn checkout_default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/whisper-tiny.en")
}
