//! The explorer's programmatic surface: what the binary, scripts (scripts/screenshot) and the
//! GUI tests call and read, each the same path a user's action takes (a [`Command`]).

use std::path::PathBuf;

use super::app::ExplorerApp;
use super::commands::Command;

impl ExplorerApp {
    /// The status line (tests read it).
    pub fn status_text(&self) -> Option<&str> {
        self.status.as_ref().map(|s| s.text.as_str())
    }

    /// From the last clip's opening to its slider cell and to its whole grid (ms), once in.
    pub fn open_timings(&self) -> (Option<f64>, Option<f64>) {
        (self.open_timing.slider_cell_ms, self.open_timing.grid_ms)
    }

    /// Opens a clip (the same as dropping it on the window).
    pub fn open_clip(&mut self, path: PathBuf) {
        self.run(Command::OpenClip(path));
    }

    /// Loads a model directory (the same as dropping it on the window).
    pub fn load_model(&mut self, dir: PathBuf) {
        self.run(Command::LoadModel(dir));
    }

    /// Chooses Qwen2-Audio / AF3's dtype, reloading such a model in it (File > Model dtype).
    pub fn set_precision(&mut self, p: crate::model::Precision) {
        self.run(Command::SetPrecision(p));
    }

    /// Chooses the score source: an encoder layer (None: the last) and the reduction over heads.
    pub fn set_score_source(&mut self, s: crate::model::scores::ScoreSource) {
        self.run(Command::SetScoreSource(s));
    }

    /// The scores the attention lane shows and the methods rank by (tests).
    /// The hovered output word (text, start, end) and its attention over the clip's tokens.
    pub fn hovered_word(&self) -> Option<(String, f64, f64, &[f32])> {
        let w = self.hovered_word?;
        let word = self.results.get(&w.cell)?.words.as_ref()?.get(w.word)?;
        Some((
            word.word.trim().to_string(),
            word.start,
            word.end,
            self.word_overlay.as_deref()?,
        ))
    }

    /// The kept tokens of the hovered cell's run.
    pub fn hovered_cell_kept(&self) -> Option<&[usize]> {
        Some(&self.results.get(&self.hovered_cell?)?.kept)
    }

    /// The words the words lane shows (the focused cell's).
    pub fn words_lane(&self) -> Vec<String> {
        self.focused_cell()
            .and_then(|k| self.results.get(&k))
            .and_then(|r| r.words.as_ref())
            .map(|ws| ws.iter().map(|w| w.word.trim().to_string()).collect())
            .unwrap_or_default()
    }

    /// The kept tokens the attention lane shows (the hovered cell's or the slider setting's).
    pub fn lane_kept(&self) -> Vec<usize> {
        self.highlight.as_ref().map_or_else(Vec::new, |h| {
            h.marks
                .kept
                .iter()
                .enumerate()
                .filter(|(_, k)| **k)
                .map(|(t, _)| t)
                .collect()
        })
    }

    /// Where the playhead is (s).
    pub fn playhead(&self) -> Option<f64> {
        self.clip.as_ref().map(|c| c.playback.position)
    }

    pub fn shown_scores(&self) -> Option<&[f32]> {
        self.scores().map(|s| s.raw())
    }

    /// The loaded model's label as the title bar shows it: name, device and dtype.
    pub fn model_label(&self) -> Option<&str> {
        self.model.name.as_deref()
    }

    /// Moves the playhead (tests, scripts).
    pub fn seek(&mut self, t: f64) {
        self.run(Command::Seek(t));
    }

    /// Sets the selection (tests, scripts).
    pub fn select_range(&mut self, a: f64, b: f64) {
        self.run(Command::Select(a, b));
    }

    /// Whether the worker is still decoding (tests wait on it).
    pub fn busy(&self) -> bool {
        self.model.loading || self.decoding.as_ref().is_some_and(|d| d.running)
    }

    /// Results filled in so far.
    pub fn result_count(&self) -> usize {
        self.results.len()
    }

    /// Whether the clip has its scores.
    pub fn encoded(&self) -> bool {
        self.scores().is_some()
    }

    /// For scripts: create `path` once every output of the grid is in.
    pub fn set_ready_file(&mut self, path: PathBuf) {
        self.ready_file = Some(path);
    }

    /// For scripts: where the playhead goes once the clip is encoded.
    pub fn set_initial_seek(&mut self, t: f64) {
        self.initial_seek = Some(t);
    }
}
