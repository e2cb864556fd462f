//! The `analyze` document of docs/SPEC.md section 7 apart from its runs: the clip, its tokens,
//! the scores of the score source (and every layer's when asked), where the model ran.

use serde::{Deserialize, Serialize};

use super::{EncodedClip, Result, RunResult};
use crate::audio::Audio;
use crate::model::ModelInfo;
use crate::scores::{HeadReduce, ScoreSource};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClipInfo {
    pub path: String,
    pub duration_s: f64,
    pub windows: usize,
    /// Seconds the model read (less than `duration_s` when it reads at most a number of
    /// windows: Qwen2-Audio 30 s, Audio Flamingo 3 10 min).
    pub analyzed_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub count: usize,
    pub seconds_per_token: f64,
}

/// The clip-level part of the `analyze` document: what encoding a clip gives, before any run.
/// Built by [`describe`] (the CLI's document and the explorer's export share it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClipReport {
    pub model: String,
    /// Where the model ran and in which dtype (`runtime.dtype`).
    pub runtime: crate::model::Runtime,
    pub clip: ClipInfo,
    pub tokens: TokenInfo,
    pub scores: Vec<f32>,
    /// Which layer's received attention `scores` is, and how it was reduced over heads.
    pub score_source: ScoreSourceReport,
    /// Every encoder layer's scores, first layer first, reduced like `scores` (`--layer-scores`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_scores: Option<Vec<Vec<f32>>>,
    pub encode_ms: f64,
}

impl ClipReport {
    /// The label of the model that computed it (name, device, dtype), as
    /// [`ModelInfo::label`] gives it.
    pub fn model_label(&self) -> String {
        crate::model::label(&self.model, &self.runtime)
    }
}

/// The `score_source` object of the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreSourceReport {
    /// Encoder layer, 0 for the first.
    pub layer: usize,
    /// Layers of the encoder (the last is `layers - 1`).
    pub layers: usize,
    pub head_reduce: HeadReduce,
}

/// The `analyze --json` document (SPEC.md section 7): the clip-level part, the settings the
/// runs were made with, and every run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    #[serde(flatten)]
    pub report: ClipReport,
    /// The pruning parameters and decoding options every run shared (None in documents written
    /// before they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSettings>,
    pub runs: Vec<RunResult>,
}

/// What a document's runs shared besides their method and keep ratio: with a run's method and
/// keep they name its output (the explorer's cell key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    /// Segments, mode, seed, gamma, window, threshold, order, score source (`keep` is each
    /// run's own).
    pub params: crate::prune::Params,
    /// Silence tail, prompt, loop guard, attention, FastV layer.
    pub decoding: super::Decoding,
}

impl PlanSettings {
    pub fn of(plan: &super::Plan) -> PlanSettings {
        PlanSettings {
            params: plan.params.clone(),
            decoding: plan.decoding.clone(),
        }
    }
}

/// The clip-level part of the document for `audio` encoded by the model described by `info`,
/// its scores those of `source` (and every layer's, reduced the same way, when the clip has
/// them).
pub fn describe(
    info: &ModelInfo,
    audio: &Audio,
    clip: &EncodedClip,
    source: &ScoreSource,
) -> Result<ClipReport> {
    let layer_scores = clip.has_all_layers().then(|| {
        clip.layers
            .iter()
            .map(|l| l.get(source.head_reduce).to_vec())
            .collect()
    });
    Ok(ClipReport {
        model: info.name.clone(),
        runtime: info.runtime.clone(),
        clip: ClipInfo {
            path: audio
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            duration_s: audio.duration_s(),
            windows: clip.windows.len(),
            analyzed_s: clip.analyzed_samples as f64 / f64::from(crate::SAMPLE_RATE),
        },
        tokens: TokenInfo {
            count: clip.n_tokens(),
            seconds_per_token: info.seconds_per_token,
        },
        scores: clip.scores_for(source)?.to_vec(),
        score_source: ScoreSourceReport {
            layer: source.layer_of(clip.encoder_layers),
            layers: clip.encoder_layers,
            head_reduce: source.head_reduce,
        },
        layer_scores,
        encode_ms: clip.encode_ms,
    })
}
