//! The explorer's programmatic surface: what the binary, scripts (scripts/screenshot) and the
//! GUI tests call and read, each the same path a user's action takes (a [`Command`]).

use std::path::PathBuf;

use super::ExplorerApp;
use crate::engine::worker::KeyedRun;
use crate::engine::Decoding;
use crate::model::Precision;
use crate::prune::Params;
use crate::scores::ScoreSource;
use crate::ui::commands::Command;
use crate::ui::logic::compare;
use crate::ui::settings::Settings;
use crate::ui::state::{DocAudio, Page};

impl ExplorerApp {
    /// What is remembered between runs (the window saves it).
    pub fn settings(&self) -> &Settings {
        &self.state.settings
    }

    /// The status line (tests read it).
    pub fn status_text(&self) -> Option<&str> {
        self.state.status.as_ref().map(|s| s.text.as_str())
    }

    /// From the last clip's opening to its slider cell and to its whole grid (ms), once in.
    pub fn open_timings(&self) -> (Option<f64>, Option<f64>) {
        let t = self.state.open_timing;
        (t.slider_cell_ms, t.grid_ms)
    }

    /// CPU time of the last frames (ms), newest last.
    pub fn frame_ms(&self) -> &[f32] {
        &self.state.frame_ms
    }

    /// Forgets the frame times (a measurement starts).
    pub fn clear_frame_ms(&mut self) {
        self.state.frame_ms.clear();
    }

    /// Runs a command as if the user gave it (menus, shortcuts, controls).
    pub fn command(&mut self, c: Command) {
        self.run(c);
    }

    /// Opens a clip (the same as dropping it on the window).
    pub fn open_clip(&mut self, path: PathBuf) {
        self.run(Command::OpenClip(path));
    }

    /// Opens an analysis, a workspace or an eval run (the same as dropping it on the window).
    pub fn open_document(&mut self, path: PathBuf) {
        self.run(Command::OpenDocument(path));
    }

    /// Saves the workspace (File > Save workspace…).
    pub fn save_workspace(&mut self, path: PathBuf) {
        self.run(Command::SaveWorkspace(path));
    }

    /// Where the clip on screen comes from while its cells are a document's: the model that
    /// made them, and its audio (`decoding`, `found`, or `missing: why`).
    pub fn document(&self) -> Option<(String, String)> {
        let d = self.state.document()?;
        let audio = match &d.audio {
            DocAudio::Decoding => "decoding".into(),
            DocAudio::Found => "found".into(),
            DocAudio::Missing(why) => format!("missing: {why}"),
        };
        Some((d.label.clone(), audio))
    }

    /// Whether the corpus page is shown.
    pub fn showing_corpus(&self) -> bool {
        self.state.page == Page::Corpus && self.state.corpus.is_some()
    }

    /// The corpus page's clip ids in the order shown, with A − B of each.
    pub fn corpus_rows(&self) -> Vec<(String, Option<f64>)> {
        self.state.corpus.as_ref().map_or_else(Vec::new, |c| {
            c.order
                .iter()
                .map(|&i| (c.table.clips[i].clone(), c.deltas[i]))
                .collect()
        })
    }

    /// The corpus page's comparison: A − B over the corpus and its 95 % interval.
    pub fn corpus_delta(&self) -> Option<(f64, [f64; 2])> {
        let c = self.state.corpus.as_ref()?.compare.as_ref().ok()?;
        Some((c.mean.delta, c.delta_ci95))
    }

    /// The pinned cell: its method and keep ratio.
    pub fn pinned(&self) -> Option<(String, f64)> {
        let r = self.state.result(&self.state.pinned?)?;
        Some((r.method.name().to_string(), r.keep))
    }

    /// What the cell of `key` shows besides its text: whether it has a word diff, and its WER
    /// (against the pinned cell when one is pinned, else the reference transcript).
    pub fn cell_comparison(&self, key: &crate::engine::RunKey) -> Option<(bool, Option<f64>)> {
        let v = self.state.shown_cells()?.views.get(key)?;
        Some((v.diff.is_some(), v.wer))
    }

    /// Loads a model directory (the same as dropping it on the window).
    pub fn load_model(&mut self, dir: PathBuf) {
        self.run(Command::LoadModel(dir));
    }

    /// Chooses Qwen2-Audio / AF3's dtype, reloading such a model in it (File > Model dtype).
    pub fn set_precision(&mut self, p: Precision) {
        self.run(Command::SetPrecision(p));
    }

    /// Chooses the score source: an encoder layer (None: the last) and the reduction over heads.
    pub fn set_score_source(&mut self, s: ScoreSource) {
        self.run(Command::SetScoreSource(s));
    }

    /// The hovered output word (text, start, end) and its attention over the clip's tokens.
    pub fn hovered_word(&self) -> Option<(String, f64, f64, &[f32])> {
        let w = self.state.hovered_word()?;
        let word = self.state.result(&w.cell)?.words.as_ref()?.get(w.word)?;
        Some((
            word.word.trim().to_string(),
            word.start,
            word.end,
            self.state.word_overlay()?,
        ))
    }

    /// The kept tokens of the hovered cell's run.
    pub fn hovered_cell_kept(&self) -> Option<&[usize]> {
        Some(&self.state.result(&self.state.hovered_cell()?)?.kept)
    }

    /// The words the words lane shows (the focused cell's).
    pub fn words_lane(&self) -> Vec<String> {
        self.state
            .result(&self.state.focused_cell())
            .and_then(|r| r.words.as_ref())
            .map(|ws| ws.iter().map(|w| w.word.trim().to_string()).collect())
            .unwrap_or_default()
    }

    /// The kept tokens the attention lane shows (the hovered cell's or the slider setting's).
    pub fn lane_kept(&self) -> Vec<usize> {
        self.state.marks().map_or_else(Vec::new, |m| {
            m.kept
                .iter()
                .enumerate()
                .filter(|(_, k)| **k)
                .map(|(t, _)| t)
                .collect()
        })
    }

    /// Where the playhead is (s).
    pub fn playhead(&self) -> Option<f64> {
        self.state.clip.as_ref().map(|c| c.playback.position)
    }

    /// The scores the attention lane shows and the methods rank by.
    pub fn shown_scores(&self) -> Option<&[f32]> {
        self.state.scores().map(|s| s.ranked())
    }

    /// The loaded model's label as the title bar shows it: name, device and dtype.
    pub fn model_label(&self) -> Option<&str> {
        self.state.model.label.as_deref()
    }

    /// Moves the playhead (tests, scripts).
    pub fn seek(&mut self, t: f64) {
        self.run(Command::Seek(t));
    }

    /// Sets the selection (tests, scripts).
    pub fn select_range(&mut self, a: f64, b: f64) {
        self.run(Command::Select(a, b));
    }

    /// Whether the worker is still loading or decoding (tests wait on it).
    pub fn busy(&self) -> bool {
        self.state.busy()
    }

    /// Results of the current model, clip and prompt filled in so far.
    pub fn result_count(&self) -> usize {
        self.state.shown_cells().map_or(0, |c| c.results.len())
    }

    /// The grid's outputs that are in, in grid order: method, keep ratio, text.
    pub fn grid_texts(&self) -> Vec<(String, f64, String)> {
        self.grid_results()
            .into_iter()
            .map(|r| (r.method.name().to_string(), r.keep, r.text))
            .collect()
    }

    /// The grid's cells as runs (each keyed under the parameters and decoding returned, which
    /// reproduce it) with the text each shows (None: not in yet); the slider's own setting
    /// first. Tests check the shown text against the engine.
    pub fn grid_runs(&self) -> (Vec<(KeyedRun, Option<String>)>, Params, Decoding) {
        let s = &self.state;
        let (params, decoding) = (s.params(), s.settings.decoding());
        let mut specs = vec![s.settings.current_run(&params)];
        for spec in compare::specs(&s.grid_methods(), s.settings.keep(), &params) {
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
        let runs = specs
            .into_iter()
            .map(|spec| {
                let run = KeyedRun::new(spec, &params, &decoding);
                let text = s.result(&run.key).map(|r| r.text.clone());
                (run, text)
            })
            .collect();
        (runs, params, decoding)
    }

    /// The clip on screen: its path, and whether its cells are a document's.
    pub fn clip_path(&self) -> Option<(PathBuf, bool)> {
        let c = self.state.clip.as_ref()?;
        Some((c.path.clone(), c.document.is_some()))
    }

    /// Whether what is on screen is all in (see `AppState::settled`).
    pub fn settled(&self) -> bool {
        self.state.settled()
    }

    /// Whether a document or a clip's audio is still being read beside the frames.
    pub fn loading(&self) -> bool {
        self.opening.is_some()
            || self
                .state
                .document()
                .is_some_and(|d| d.audio == DocAudio::Decoding)
    }

    /// The window's title: clip, model and where it runs.
    pub fn title(&self) -> String {
        self.state.title()
    }

    /// Why the remote model's link was lost, while it is.
    pub fn lost_link(&self) -> Option<&str> {
        self.state.model.lost.as_deref()
    }

    /// The last commands applied, oldest first (at most 64).
    pub fn command_log(&self) -> &[Command] {
        &self.log
    }

    /// How many decode requests the grid has sent the worker.
    pub fn decode_requests(&self) -> u64 {
        self.decode_requests
    }

    /// Whether the clip has its scores.
    pub fn encoded(&self) -> bool {
        self.state.scores().is_some()
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
