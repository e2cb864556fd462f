//! What the explorer remembers between runs (eframe storage): the pruning and decoding
//! controls, the recent files, the reference transcript and the prompt, and the one place the
//! explorer turns them into the engine's parameters.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::document::workspace::ExplorerView;
use crate::engine::{Decoding, PlanSettings, RunMethod, RunSpec, Tail};
use crate::model::Precision;
use crate::prune::{self, Method, Params, SegmentMode};
use crate::scores::ScoreSource;

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
    /// LTBM's merge window (`--merge-window`).
    pub merge_window: usize,
    /// DART's pivots (`--pivots`).
    pub pivots: usize,
    /// Samp's merge threshold (`--samp-threshold`).
    pub samp_threshold: f64,
    pub extensions: Vec<Method>,
    /// The other papers' methods in the grid (`fastv`, `promptaware`).
    pub peers: Vec<RunMethod>,
    /// FastV's layer for Qwen2-Audio / AF3 (`--fastv-layer`).
    pub fastv_layer: usize,
    /// encoderdrop's layer (`--drop-layer`; None: half the encoder's layers).
    pub drop_layer: Option<usize>,
    pub follow: bool,
    pub looping: bool,
    pub recent_clips: Vec<PathBuf>,
    pub recent_models: Vec<PathBuf>,
    pub last_model: Option<PathBuf>,
    /// The command lines of remote models connected to, newest first.
    pub recent_remotes: Vec<String>,
    /// Arithmetic of Qwen2-Audio / AF3 (`--dtype`); Whisper runs in f32 whatever it says.
    pub precision: Precision,
    /// Which encoder layer's scores, reduced over heads how, drive every method.
    pub source: ScoreSource,
    pub reference: String,
    /// Prompted models (Qwen2-Audio, AF3): the request after the audio; empty uses the model's
    /// default. Whisper ignores it.
    pub prompt: String,
    /// Saved workspaces carry clips up to 20 MB, so they open without the clip.
    pub embed_clips: bool,
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
            merge_window: prune::DEFAULT_MERGE_WINDOW,
            pivots: prune::DEFAULT_PIVOTS,
            samp_threshold: prune::DEFAULT_SAMP_THRESHOLD,
            extensions: Vec::new(),
            peers: Vec::new(),
            fastv_layer: 2,
            drop_layer: None,
            follow: true,
            looping: false,
            recent_clips: Vec::new(),
            recent_models: Vec::new(),
            last_model: None,
            recent_remotes: Vec::new(),
            precision: Precision::Auto,
            source: ScoreSource::default(),
            reference: String::new(),
            prompt: String::new(),
            embed_clips: true,
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
            merge_window: self.merge_window.max(1),
            pivots: self.pivots.max(1),
            samp_threshold: if self.samp_threshold.is_finite() {
                self.samp_threshold.clamp(-1.0, 1.0)
            } else {
                prune::DEFAULT_SAMP_THRESHOLD
            },
            model_window_tokens: Params::model_window_tokens_for(seconds_per_token),
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
            drop_layer: self.drop_layer,
        }
    }

    /// The slider's own run (keep 1 for a method that ignores the keep ratio, so it is the same
    /// cell as the grid's).
    pub fn current_run(&self, params: &Params) -> RunSpec {
        RunSpec {
            method: RunMethod::Prune(self.method),
            keep: self.keep(),
        }
        .normalised(params)
    }

    /// Takes the controls a document's runs were made with (the inverse of [`Self::params`]
    /// and [`Self::decoding`] for what the controls can say; `order` and `k_min` have no
    /// control, so runs made with others stay hidden).
    pub fn adopt(&mut self, plan: &PlanSettings, seconds_per_token: f64) {
        let (p, d) = (&plan.params, &plan.decoding);
        self.segments = p.segments;
        self.mode = p.mode;
        self.seed = p.seed;
        self.gamma = p.gamma;
        self.window_seconds = p.window_tokens as f64 * seconds_per_token;
        self.merge_threshold = p.merge_threshold;
        self.merge_window = p.merge_window;
        self.pivots = p.pivots;
        self.samp_threshold = p.samp_threshold;
        self.source = p.source;
        self.tail = d.tail;
        self.prompt = d.prompt.clone().unwrap_or_default();
        self.stop_on_loop = d.stop_on_loop;
        self.fastv_layer = d.fastv_layer;
        self.drop_layer = d.drop_layer;
    }

    /// What a workspace keeps of the controls beside the document's plan.
    pub fn view(&self) -> ExplorerView {
        ExplorerView {
            method: self.method,
            keep_percent: self.keep_percent,
            extensions: self.extensions.clone(),
            peers: self.peers.clone(),
            reference: self.reference.clone(),
            ..ExplorerView::default()
        }
    }

    /// Takes a workspace's controls.
    pub fn apply_view(&mut self, v: &ExplorerView) {
        self.method = v.method;
        self.keep_percent = v.keep_percent;
        self.extensions.clone_from(&v.extensions);
        self.peers.clone_from(&v.peers);
        self.reference.clone_from(&v.reference);
    }

    pub fn remember_clip(&mut self, p: &Path) {
        push_recent(&mut self.recent_clips, p);
    }

    pub fn remember_model(&mut self, p: &Path) {
        push_recent(&mut self.recent_models, p);
        self.last_model = Some(p.to_path_buf());
    }

    pub fn remember_remote(&mut self, command: &str) {
        self.recent_remotes.retain(|c| c != command);
        self.recent_remotes.insert(0, command.to_string());
        self.recent_remotes.truncate(RECENT);
    }
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
    fn adopting_a_plan_gives_back_its_parameters() {
        let plan = PlanSettings {
            params: Params {
                segments: 7,
                seed: 3,
                gamma: 0.5,
                window_tokens: 75,
                merge_threshold: Some(0.8),
                merge_window: 3,
                pivots: 6,
                samp_threshold: 0.7,
                // 30 s at 40 ms a token.
                model_window_tokens: 750,
                ..Params::default()
            },
            decoding: Decoding {
                tail: Tail::Tokens(40),
                prompt: Some("What is heard?".into()),
                stop_on_loop: true,
                attention: true,
                fastv_layer: 3,
                drop_layer: Some(3),
            },
        };
        let mut s = Settings::default();
        s.adopt(&plan, 0.04);
        let p = s.params(0.04);
        assert_eq!(
            Params {
                keep: plan.params.keep,
                ..p
            },
            plan.params
        );
        assert_eq!(s.decoding(), plan.decoding);
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
}
