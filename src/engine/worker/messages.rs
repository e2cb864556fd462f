//! What the worker is asked ([`Request`]) and what it answers ([`Event`]), with their payloads:
//! the vocabulary of every model host, here and over the remote protocol (SPEC section 9).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::super::host::LinkError;
use super::super::{ClipReport, Decoding, RunKey, RunResult, RunSpec};
use crate::audio::{self, Audio, AudioError};
use crate::model::{AudioLanguageModel, LoadOptions, ModelInfo};
use crate::prune::Params;
use crate::scores::{Layers, ScoreSource};

/// What the worker is asked to do.
pub enum Request {
    /// Load a model directory (Whisper in CTranslate2 or Hugging Face format, Qwen2-Audio, Audio
    /// Flamingo 3) with these options; Whisper takes the CPU and f32 whatever they say.
    LoadModel {
        dir: PathBuf,
        options: LoadOptions,
    },
    /// Use an already built model (tests use the fake).
    UseModel(Box<dyn AudioLanguageModel>),
    OpenClip(OpenClip),
    Decode(Decode),
}

/// Decode a clip, compute its spectrogram (for the explorer), and encode it once a model is
/// there, collecting the scores `scoring` names. The remote protocol's `Open`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenClip {
    pub job: u64,
    pub clip: ClipSource,
    pub scoring: Scoring,
}

/// Decode these runs of the current clip, in this order (the caller puts what the user looks
/// at first); each result comes back with its run's key. The remote protocol's `Decode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decode {
    pub job: u64,
    /// The job of the clip these runs are of. A worker whose clip is another one (a newer
    /// clip was opened since the request was made) decodes nothing and answers
    /// [`Event::DecodeFinished`] with `cancelled`. None: the clip it has (older peers).
    #[serde(default)]
    pub clip: Option<u64>,
    pub runs: Vec<KeyedRun>,
    /// How many leading runs decode as a batch of their own before the rest (what the user
    /// looks at arrives sooner than the whole batch).
    pub first: usize,
    pub params: Params,
    pub decoding: Decoding,
}

/// Where a clip comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClipSource {
    /// A file on this machine.
    Path(PathBuf),
    /// A file's bytes: a remote client's clip. `name` is its path on the client (the clip's
    /// `path` in the document, the format hint, what errors name).
    Bytes {
        name: PathBuf,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

impl ClipSource {
    /// The path it names.
    pub fn name(&self) -> &Path {
        match self {
            ClipSource::Path(p) => p,
            ClipSource::Bytes { name, .. } => name,
        }
    }

    /// A file's bytes, read here to send elsewhere in one frame of at most `max` bytes: a
    /// larger file is [`AudioError::TooLargeToSend`], unread.
    pub fn read(path: PathBuf, max: u64) -> Result<ClipSource, AudioError> {
        match crate::limits::read_at_most(&path, max) {
            Ok(crate::limits::Capped::Read(bytes)) => Ok(ClipSource::Bytes { name: path, bytes }),
            Ok(crate::limits::Capped::TooLarge(size)) => {
                Err(AudioError::TooLargeToSend { path, size, max })
            }
            // The audio loader words a missing or unreadable file.
            Err(_) => audio::load(&path).map(|_| ClipSource::Path(path)),
        }
    }

    /// Decodes it to a clip ready for the model.
    pub fn load(self) -> Result<Audio, AudioError> {
        match self {
            ClipSource::Path(p) => audio::load(&p),
            ClipSource::Bytes { name, bytes } => audio::load_bytes(bytes, &name),
        }
    }
}

/// Which encoder layers' scores an encoding collects, and which source the report's `scores`
/// are (a source other than the last layer collects every layer in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scoring {
    pub layers: Layers,
    pub source: ScoreSource,
}

impl Scoring {
    /// The explorer's: every layer (its layer lane and score source), the paper's scores.
    pub fn every_layer() -> Scoring {
        Scoring {
            layers: Layers::All,
            source: ScoreSource::default(),
        }
    }
}

/// A run to decode and the key its result comes back with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedRun {
    pub key: RunKey,
    pub spec: RunSpec,
}

impl KeyedRun {
    /// `spec` with its key under `params` and `decoding`.
    pub fn new(spec: RunSpec, params: &Params, decoding: &Decoding) -> KeyedRun {
        KeyedRun {
            key: RunKey::of(&spec, params, decoding),
            spec,
        }
    }
}

/// Log-mel spectrogram of a whole clip, row-major `[n_mels][frames]`, 10 ms per frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spectrogram {
    pub n_mels: usize,
    pub frames: usize,
    pub data: Vec<f32>,
}

/// What the worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    ModelLoaded {
        /// What the engine knows of it: its name and runtime ([`ModelInfo::label`]), whether it
        /// takes a prompt (`prefix_lm`), its encoder's and language model's layers.
        info: ModelInfo,
        /// `None` for a model handed over with [`Request::UseModel`] or served remotely.
        dir: Option<PathBuf>,
    },
    ModelFailed {
        dir: PathBuf,
        message: String,
    },
    /// The clip decoded: its 16 kHz samples and spectrogram (no scores yet).
    ClipLoaded {
        job: u64,
        path: PathBuf,
        samples: Arc<Vec<f32>>,
        spectrogram: Arc<Spectrogram>,
    },
    ClipFailed {
        job: u64,
        path: PathBuf,
        message: String,
    },
    /// The clip went through the encoder (again after a model change).
    ClipEncoded(Encoding),
    Progress {
        job: u64,
        done: usize,
        of: usize,
    },
    /// One run of a decode request finished, with the key the request gave it.
    CellDone {
        job: u64,
        key: RunKey,
        result: RunResult,
    },
    DecodeFinished {
        job: u64,
        cancelled: bool,
        elapsed_ms: f64,
    },
    DecodeFailed {
        job: u64,
        message: String,
    },
    /// The host stopped answering: a remote model's link failed (never in this process).
    Lost(LinkError),
}

/// A clip's encoding as the explorer needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encoding {
    pub job: u64,
    /// Model name, clip (`analyzed_s`: seconds the model read; Qwen2-Audio stops at 30 s),
    /// token count and duration, scores, encode time: the `analyze` document without its runs
    /// ([`super::Analysis`] is this plus the runs).
    pub report: ClipReport,
    /// Every token's key (last layer, mean over heads), `key_dim` values each.
    #[serde(with = "crate::util::f32_bytes")]
    pub keys: Vec<f32>,
    pub key_dim: usize,
    /// `(first token, valid tokens)` of each 30 s window.
    pub windows: Vec<(usize, usize)>,
    /// The layers' scores collected (the explorer's layer lane and score source).
    pub layers: Vec<crate::scores::LayerScores>,
}
