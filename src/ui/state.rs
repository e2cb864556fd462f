//! The explorer's state, apart from the runtime handles the app holds (worker, audio device,
//! dialogs): the [`Settings`] remembered between runs, how the app starts, and the clip with
//! what the lanes derive from its scores. No egui widgets here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::timeline::{Playback, View};
use crate::engine::{ClipReport, Decoding, RunMethod, Tail};
use crate::model::scores::{LayerScores, ScoreSource};
use crate::model::{AudioLanguageModel, Precision};
use crate::prune::{self, Method, Params, SegmentMode};

/// Everything remembered between runs (eframe storage).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub method: Method,
    pub segments: usize,
    pub keep_percent: f64,
    pub seed: u64,
    pub tail: Tail,
    /// End each decode where it starts repeating itself (`--stop-on-loop`).
    pub stop_on_loop: bool,
    pub mode: SegmentMode,
    pub gamma: f64,
    pub window_seconds: f64,
    /// Atome's threshold mode (`--merge-threshold`): None merges down to the keep ratio.
    pub merge_threshold: Option<f64>,
    pub extensions: Vec<Method>,
    /// The other papers' methods in the grid (`fastv`, `promptaware`).
    pub peers: Vec<RunMethod>,
    /// FastV's layer for Qwen2-Audio / AF3 (`--fastv-layer`).
    pub fastv_layer: usize,
    pub follow: bool,
    pub looping: bool,
    pub recent_clips: Vec<PathBuf>,
    pub recent_models: Vec<PathBuf>,
    pub last_model: Option<PathBuf>,
    /// Arithmetic of Qwen2-Audio / AF3 (`--dtype`); Whisper runs in f32 whatever it says.
    pub precision: Precision,
    /// Which encoder layer's scores, reduced over heads how, drive every method.
    pub source: ScoreSource,
    pub reference: String,
    /// Prompted models (Qwen2-Audio, AF3): the request after the audio; empty uses the model's
    /// default. Whisper ignores it.
    pub prompt: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            method: Method::Segmentwise,
            segments: 10,
            keep_percent: 25.0,
            seed: 0,
            tail: Tail::DEFAULT,
            stop_on_loop: false,
            mode: SegmentMode::Paper,
            gamma: 1.0,
            window_seconds: 3.0,
            merge_threshold: None,
            extensions: Vec::new(),
            peers: Vec::new(),
            fastv_layer: 2,
            follow: true,
            looping: false,
            recent_clips: Vec::new(),
            recent_models: Vec::new(),
            last_model: None,
            precision: Precision::Auto,
            source: ScoreSource::default(),
            reference: String::new(),
            prompt: String::new(),
        }
    }
}

/// Entries of each recent-files menu.
const RECENT: usize = 8;

fn push_recent(list: &mut Vec<PathBuf>, p: &Path) {
    list.retain(|x| x != p);
    list.insert(0, p.to_path_buf());
    list.truncate(RECENT);
}

impl Settings {
    /// The keep slider's ratio, rounded to whole percent (what the grid's extra column shows).
    pub fn keep(&self) -> f64 {
        (self.keep_percent.round() / 100.0).clamp(0.01, 1.0)
    }

    /// The pruning parameters the controls set, at the model's token rate: the one place the
    /// explorer builds them.
    pub fn params(&self, seconds_per_token: f64) -> Params {
        Params {
            keep: self.keep(),
            segments: self.segments.max(1),
            mode: self.mode,
            seed: self.seed,
            gamma: self.gamma.max(0.0),
            k_min: 1,
            window_tokens: Params::window_tokens_for(self.window_seconds, seconds_per_token),
            order: prune::Order::Time,
            merge_threshold: self.merge_threshold.map(|t| t.clamp(-1.0, 1.0)),
            source: self.source,
        }
    }

    /// How the grid's runs are decoded: silence tail, prompt (None: the model's default), loop
    /// guard.
    pub fn decoding(&self) -> Decoding {
        Decoding {
            tail: self.tail,
            prompt: Some(self.prompt.trim())
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            stop_on_loop: self.stop_on_loop,
            // The grid links every word to the audio it read.
            attention: true,
            fastv_layer: self.fastv_layer,
        }
    }

    pub fn remember_clip(&mut self, p: &Path) {
        push_recent(&mut self.recent_clips, p);
    }

    pub fn remember_model(&mut self, p: &Path) {
        push_recent(&mut self.recent_models, p);
        self.last_model = Some(p.to_path_buf());
    }
}

/// Where the model comes from at start.
pub enum ModelSource {
    Dir(PathBuf),
    Given(Box<dyn AudioLanguageModel>),
    None,
}

/// How the app starts.
pub struct Startup {
    pub clip: Option<PathBuf>,
    pub model: ModelSource,
    /// Try to open the sound device (tests may turn it off).
    pub audio: bool,
}

/// The clip's scores once encoded (the engine's report: model, clip, tokens, scores, encode
/// time), with what the lanes derive from them.
pub struct Scores {
    pub report: ClipReport,
    /// Scores over their maximum, in [0, 1] (0 for non-finite ones).
    pub norm: Vec<f32>,
    /// Keys of every token (VisionZip, merge), `key_dim` wide.
    pub keys: Vec<f32>,
    pub key_dim: usize,
    /// First token of each 30 s window.
    pub windows: Vec<usize>,
    /// The ten best tokens, best first.
    pub top: Vec<usize>,
    /// Every encoder layer's scores (the score source picks one).
    pub layers: Vec<LayerScores>,
}

impl Scores {
    pub fn new(
        report: ClipReport,
        keys: Vec<f32>,
        key_dim: usize,
        windows: Vec<usize>,
        layers: Vec<LayerScores>,
    ) -> Scores {
        let (norm, top) = normalise(&report.scores);
        Scores {
            report,
            norm,
            keys,
            key_dim,
            windows,
            top,
            layers,
        }
    }

    /// Layers of the model's encoder.
    pub fn encoder_layers(&self) -> usize {
        self.report.score_source.layers
    }

    /// Makes `source`'s scores the ones shown and ranked (when its layer was collected).
    pub fn set_source(&mut self, source: &ScoreSource) {
        let Some(scores) = source.pick(&self.layers, self.encoder_layers()) else {
            return;
        };
        self.report.scores = scores.to_vec();
        self.report.score_source.layer = source.layer_of(self.encoder_layers());
        self.report.score_source.head_reduce = source.head_reduce;
        (self.norm, self.top) = normalise(&self.report.scores);
    }

    /// Received attention per token.
    pub fn raw(&self) -> &[f32] {
        &self.report.scores
    }

    /// Seconds per token.
    pub fn spt(&self) -> f64 {
        self.report.tokens.seconds_per_token
    }
}

/// Scores over their maximum, in [0, 1] (0 for non-finite ones), and the ten best tokens.
pub fn normalise(raw: &[f32]) -> (Vec<f32>, Vec<usize>) {
    let max = raw
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0f32, f32::max);
    let norm = raw
        .iter()
        .map(|&s| {
            if max > 0.0 && s.is_finite() {
                s / max
            } else {
                0.0
            }
        })
        .collect();
    (norm, prune::rank(raw).into_iter().take(10).collect())
}

/// The open clip.
pub struct Clip {
    /// The worker job that opened it (events of other jobs are stale).
    pub job: u64,
    pub path: PathBuf,
    pub samples: Arc<Vec<f32>>,
    pub duration: f64,
    pub scores: Option<Scores>,
    pub view: View,
    pub playback: Playback,
}

/// The status line.
pub struct Status {
    pub text: String,
    pub error: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_the_controls_and_clamp() {
        let s = Settings {
            keep_percent: 37.4,
            segments: 0,
            window_seconds: 3.0,
            gamma: -1.0,
            ..Settings::default()
        };
        let p = s.params(0.02);
        assert_eq!(p.keep, 0.37);
        assert_eq!(p.segments, 1);
        assert_eq!(p.window_tokens, 150);
        assert_eq!(p.gamma, 0.0);
        assert_eq!(s.params(0.04).window_tokens, 75);
    }

    #[test]
    fn recent_lists_move_to_front_without_duplicates() {
        let mut s = Settings::default();
        for i in 0..10 {
            s.remember_clip(Path::new(&format!("/c{i}.wav")));
        }
        s.remember_clip(Path::new("/c5.wav"));
        assert_eq!(s.recent_clips.len(), RECENT);
        assert_eq!(s.recent_clips[0], Path::new("/c5.wav"));
        assert_eq!(
            s.recent_clips
                .iter()
                .filter(|p| p.ends_with("c5.wav"))
                .count(),
            1
        );
        s.remember_model(Path::new("/m"));
        assert_eq!(s.last_model.as_deref(), Some(Path::new("/m")));
    }

    #[test]
    fn scores_normalise_to_the_maximum() {
        let (norm, top) = normalise(&[1.0, 4.0, f32::NAN]);
        assert_eq!(norm, vec![0.25, 1.0, 0.0]);
        assert_eq!(top[0], 1);
    }
}
