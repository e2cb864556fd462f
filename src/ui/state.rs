//! The explorer's state: what the views draw from and only the app changes. The model the
//! worker holds, the open clip with its scores, the results cache (one [`Scope`], cells by the
//! engine's [`RunKey`], each with what it shows), what the pointer is over, the attention lane's
//! highlight, the status line and the windows. Queries here are pure; the runtime handles
//! (worker, sound device, dialogs) live in the app.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::logic::cell_view::CellView;
use super::logic::compare::{self, InFlight};
pub use super::logic::corpus::SortBy;
use super::logic::marks::Marks;
use super::logic::pool;
use super::logic::timeline::{Playback, View};
use super::logic::words::WordRef;
use super::settings::Settings;
use super::textures::LaneTextures;
use crate::engine::worker::ClipSource;
use crate::engine::{ClipReport, RunKey, RunMethod, RunResult, Unavailable};
use crate::eval::by_clip::{ByClip, Table};
use crate::eval::runner::Results;
use crate::model::AudioLanguageModel;
use crate::prune::{self, Method, Params, PruneError, Selection};
use crate::scores::{LayerScores, ScoreSource};

/// Where the model comes from at start.
pub enum ModelSource {
    Dir(PathBuf),
    Given(Box<dyn AudioLanguageModel>),
    /// A model served at the other end of this command (`prunescope serve --stdio`).
    Remote(String),
    None,
}

/// How the app starts.
pub struct Startup {
    pub clip: Option<PathBuf>,
    /// A document, workspace or eval run to open (read already: `prunescope open PATH`).
    pub document: Option<(PathBuf, crate::document::Opened)>,
    pub model: ModelSource,
    /// How local model directories are loaded (the command line's `--device`, `--batch`,
    /// ...); the dtype is the settings' standing choice.
    pub load: crate::model::LoadOptions,
    /// Try to open the sound device (tests may turn it off).
    pub audio: bool,
}

/// The model the worker holds.
#[derive(Default)]
pub struct ModelState {
    /// Its label: name, device and dtype.
    pub label: Option<String>,
    /// The directory it came from (None for a model handed over by a test).
    pub dir: Option<PathBuf>,
    /// What the engine knows of it (None until one is loaded).
    pub info: Option<crate::model::ModelInfo>,
    pub loading: bool,
    /// The command line of the remote model's host; None for the model in this process.
    pub remote: Option<String>,
    /// The link to the remote model failed: why (the cells shown stay; Reconnect is offered).
    pub lost: Option<String>,
}

impl ModelState {
    /// It takes a prompt and no silence tail (Qwen2-Audio, AF3).
    pub fn prompted(&self) -> bool {
        self.info.as_ref().is_some_and(|i| i.prefix_lm)
    }

    /// Its language model's layers (Qwen2-Audio, AF3).
    pub fn lm_layers(&self) -> Option<usize> {
        self.info.as_ref().and_then(|i| i.lm_layers)
    }
}

/// The clip's scores once encoded (the engine's report: model, clip, tokens, scores, encode
/// time), with what the lanes derive from them.
pub struct Scores {
    pub report: ClipReport,
    /// The label of the model that encoded them (name, device, dtype).
    pub encoded_by: String,
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
    /// The scores of an encoding by the model labelled `encoded_by`, with what derives from
    /// them.
    pub fn new(
        report: ClipReport,
        encoded_by: String,
        keys: Vec<f32>,
        key_dim: usize,
        windows: Vec<usize>,
        layers: Vec<LayerScores>,
    ) -> Scores {
        let mut s = Scores {
            report,
            encoded_by,
            norm: Vec::new(),
            keys,
            key_dim,
            windows,
            top: Vec::new(),
            layers,
        };
        s.derive();
        s
    }

    /// Layers of the model's encoder.
    pub fn encoder_layers(&self) -> usize {
        self.report.score_source.layers
    }

    /// Makes `source`'s scores the ones shown and ranked, when its layer was collected with
    /// that reduction over heads (a document holds one reduction, or only the last layer);
    /// whether it could.
    pub fn set_source(&mut self, source: &ScoreSource) -> bool {
        let Some(scores) = source.pick(&self.layers, self.encoder_layers()) else {
            return false;
        };
        if scores.len() != self.report.scores.len() {
            return false;
        }
        self.report.scores = scores.to_vec();
        self.report.score_source.layer = source.layer_of(self.encoder_layers());
        self.report.score_source.head_reduce = source.head_reduce;
        self.derive();
        true
    }

    /// Recomputes what derives from the scores: over their maximum, the ten best.
    pub fn derive(&mut self) {
        self.norm = pool::over_max(&self.report.scores);
        self.top = prune::rank(&self.report.scores)
            .into_iter()
            .take(10)
            .collect();
    }

    /// The received attention per token of the chosen score source (what the methods rank).
    pub fn ranked(&self) -> &[f32] {
        &self.report.scores
    }

    /// Seconds per token.
    pub fn spt(&self) -> f64 {
        self.report.tokens.seconds_per_token
    }
}

/// The audio of a clip opened from a document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocAudio {
    Decoding,
    Found,
    /// Why not (the waveform and log-mel lanes say it).
    Missing(String),
}

/// A clip opened from a document (an analysis, a workspace, a clip of an eval run): its scores
/// and cells are the document's until the host's model encodes the clip.
#[derive(Debug, Clone)]
pub struct FromDocument {
    /// The file it came from.
    pub file: PathBuf,
    /// The label of the model that computed it.
    pub label: String,
    pub audio: DocAudio,
    /// The clip went to the host, whose model encodes it.
    pub sent: bool,
}

/// The open clip.
pub struct Clip {
    /// The worker job that opened it (events of other jobs are stale).
    pub job: u64,
    pub path: PathBuf,
    /// What to send a model host to encode it (None: a document's clip whose audio is
    /// missing).
    pub source: Option<ClipSource>,
    /// Set while its scores and cells are a document's.
    pub document: Option<FromDocument>,
    pub samples: Arc<Vec<f32>>,
    pub duration: f64,
    /// The waveform's min/max per 10 ms ([`pool::wave_summary`]) and the clip's peak.
    pub summary: Vec<(f32, f32)>,
    pub peak: f32,
    pub scores: Option<Scores>,
    pub view: View,
    pub playback: Playback,
}

/// What the cached results were computed under: a change of any part makes every cell stale.
/// With the [`RunKey`] of a cell it names everything its output depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The model's label: name, device and dtype.
    pub model: String,
    /// The worker job that opened the clip.
    pub clip: u64,
    pub prompt: Option<String>,
}

/// Decoded cells kept per scope: a slider moved back shows its cells again at once, and a long
/// session on one clip holds at most this many (the oldest not on screen go first; the monkey
/// in tests/abuse found the cache growing without end).
pub const CELL_CACHE: usize = 256;

/// Finished runs of one scope by key, with what each cell shows.
#[derive(Default)]
pub struct Cells {
    pub scope: Option<Scope>,
    pub results: HashMap<RunKey, RunResult>,
    /// Word diff, WER and word links of each result, made when it or its inputs change.
    pub views: HashMap<RunKey, CellView>,
    /// The decoded cells' keys, oldest first (a document's cells are not evicted).
    order: std::collections::VecDeque<RunKey>,
}

impl Cells {
    /// A decoded cell; past [`CELL_CACHE`] cells the oldest one not in `shown` goes.
    pub fn insert(&mut self, key: RunKey, result: RunResult, shown: &[RunKey]) {
        if self.results.insert(key, result).is_none() {
            self.order.push_back(key);
        }
        let mut scan = self.order.len();
        while self.results.len() > CELL_CACHE && scan > 0 {
            scan -= 1;
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if shown.contains(&k) {
                self.order.push_back(k);
                continue;
            }
            self.results.remove(&k);
            self.views.remove(&k);
        }
    }

    /// Moves to `scope`, forgetting every cell of another one; whether it changed.
    pub fn enter(&mut self, scope: Scope) -> bool {
        if self.scope.as_ref() == Some(&scope) {
            return false;
        }
        *self = Cells {
            scope: Some(scope),
            ..Cells::default()
        };
        true
    }
}

/// What the pointer is over in the lanes: the time, and the word of the words lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanesHover {
    pub t: f64,
    pub word: Option<WordRef>,
}

/// What the pointer is over in the grid: a cell, and one of its words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridHover {
    pub cell: RunKey,
    pub word: Option<WordRef>,
}

/// What the pointer is over, each part reported by the view that draws it.
#[derive(Debug, Default)]
pub struct Hover {
    pub lanes: Option<LanesHover>,
    pub grid: Option<GridHover>,
    /// The hovered word's attention over the clip's tokens, over its maximum.
    pub overlay: Option<(WordRef, Vec<f32>)>,
}

/// What the attention lane's highlight was computed for.
#[derive(Debug, Clone, PartialEq)]
pub enum HighlightFor {
    /// A hovered grid cell: its own kept tokens.
    Cell(RunKey),
    /// The controls' method and parameters.
    Setting(Method, Params),
}

/// The selection drawn in the attention lane, cached by what it depends on.
pub struct Highlight {
    pub what: HighlightFor,
    pub result: Result<Selection, PruneError>,
    pub marks: Marks,
}

/// How long the last opened clip took to show its outputs (from the open request): the
/// slider's cell, then the whole grid (ms).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenTiming {
    pub started: Option<Instant>,
    pub slider_cell_ms: Option<f64>,
    pub grid_ms: Option<f64>,
}

/// What a typed or picked path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathTarget {
    Clip,
    Model,
    /// An analysis, a workspace or an eval results file.
    Document,
    /// An eval run's folder.
    Run,
    /// Where to save the workspace.
    SaveWorkspace,
}

/// The "open path" window.
#[derive(Debug, Clone, PartialEq)]
pub struct PathWindow {
    pub target: PathTarget,
    pub text: String,
    pub note: Option<String>,
}

/// What the central panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    /// The clip's lanes and grid.
    #[default]
    Clip,
    /// The open eval run's table of clips.
    Corpus,
}

/// An open eval run: its results, every clip's metric, and how the table is shown.
pub struct Corpus {
    /// The run's folder or results file.
    pub path: PathBuf,
    pub results: Results,
    pub table: Table,
    /// How MMAU answers naming no option were matched, when not by sentence embeddings.
    pub scorer_note: Option<String>,
    pub sort: SortBy,
    pub descending: bool,
    /// The two settings compared (indices into the run's settings).
    pub a: usize,
    pub b: usize,
    /// A against B: every clip's difference, the corpus difference and its interval (or why
    /// they cannot be compared).
    pub compare: Result<ByClip, String>,
    /// Each clip's difference A - B, aligned with `table.clips`.
    pub deltas: Vec<Option<f64>>,
    /// The table's rows (indices into `table.clips`), sorted.
    pub order: Vec<usize>,
    /// The clip opened from it last (its id).
    pub opened: Option<String>,
}

/// The windows over the main view.
#[derive(Debug, Default)]
pub struct Windows {
    pub help: bool,
    pub path: Option<PathWindow>,
    /// The export window's folder.
    pub export_dir: Option<String>,
    /// The remote-model window's command line.
    pub remote: Option<String>,
}

/// The status line.
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// Everything the views draw from.
pub struct AppState {
    pub settings: Settings,
    pub model: ModelState,
    pub clip: Option<Clip>,
    /// The clip being opened, its job and path (the old clip stays on screen until it loads;
    /// the grid asks nothing meanwhile: the model's clip is the new one).
    pub pending_clip: Option<(u64, std::path::PathBuf)>,
    pub textures: Option<LaneTextures>,
    pub cells: Cells,
    pub decoding: Option<InFlight>,
    pub hover: Hover,
    pub highlight: Option<Highlight>,
    pub status: Option<Status>,
    pub windows: Windows,
    pub open_timing: OpenTiming,
    /// CPU time of the last frames (ms), newest last.
    pub frame_ms: Vec<f32>,
    pub page: Page,
    pub corpus: Option<Corpus>,
    /// The cell the lanes show when the pointer is over no cell (a pin, or a workspace's).
    pub pinned: Option<RunKey>,
}

impl AppState {
    pub fn new(settings: Settings) -> AppState {
        AppState {
            settings,
            model: ModelState::default(),
            clip: None,
            pending_clip: None,
            textures: None,
            cells: Cells::default(),
            decoding: None,
            hover: Hover::default(),
            highlight: None,
            status: None,
            windows: Windows::default(),
            open_timing: OpenTiming::default(),
            frame_ms: Vec::new(),
            page: Page::default(),
            corpus: None,
            pinned: None,
        }
    }

    pub fn scores(&self) -> Option<&Scores> {
        self.clip.as_ref().and_then(|c| c.scores.as_ref())
    }

    /// Seconds per token of the clip's model (Whisper's 20 ms before any).
    pub fn spt(&self) -> f64 {
        self.scores().map_or(0.02, Scores::spt)
    }

    /// The controls' pruning parameters.
    pub fn params(&self) -> Params {
        self.settings.params(self.spt())
    }

    /// The scope results are cached under now (None before a model and a clip): a document's
    /// clip is its model's until the host's model encodes it.
    pub fn scope(&self) -> Option<Scope> {
        let clip = self.clip.as_ref()?;
        let model = match &clip.document {
            Some(d) => d.label.clone(),
            None => self.model.label.clone()?,
        };
        Some(Scope {
            model,
            clip: clip.job,
            prompt: self.settings.decoding().prompt,
        })
    }

    /// The clip's scores, when the model loaded now encoded them (after a model change the old
    /// scores stay on screen until the new ones come, but nothing is decoded on them; nor on a
    /// document's until the model encodes its clip).
    pub fn fresh_scores(&self) -> Option<&Scores> {
        if self.document().is_some() {
            return None;
        }
        self.scores()
            .filter(|s| self.model.label.as_deref() == Some(s.encoded_by.as_str()))
    }

    /// The document the clip on screen comes from, while its cells are the document's.
    pub fn document(&self) -> Option<&FromDocument> {
        self.clip.as_ref()?.document.as_ref()
    }

    /// Why the grid's missing cells cannot be computed now (None: they can, or are coming).
    pub fn needs_model(&self) -> Option<String> {
        let d = self.document()?;
        if d.sent || self.model.loading {
            return None;
        }
        if let DocAudio::Missing(why) = &d.audio {
            return Some(format!(
                "not in the document, and no model can compute it: {why}"
            ));
        }
        Some(match &self.model.label {
            None => "not in the document: load a model to compute it".into(),
            Some(l) => format!(
                "not in the document (made by {}): compute it with {l}, or load that model",
                d.label
            ),
        })
    }

    /// The results of the current scope (None while the cache holds another one's).
    pub fn shown_cells(&self) -> Option<&Cells> {
        let scope = self.scope()?;
        (self.cells.scope.as_ref() == Some(&scope)).then_some(&self.cells)
    }

    /// The result of a cell of the current scope.
    pub fn result(&self, key: &RunKey) -> Option<&RunResult> {
        self.shown_cells()?.results.get(key)
    }

    /// Why a method cannot run on the loaded model (None: it can, or no model yet).
    pub fn unavailable(&self, m: RunMethod) -> Option<Unavailable> {
        self.model.label.as_ref()?;
        m.unavailable(self.model.info.as_ref()?, &self.settings.decoding())
    }

    /// The grid's rows: base methods, extensions, and the peers the model can run.
    pub fn grid_methods(&self) -> Vec<RunMethod> {
        compare::methods(&self.settings.extensions, &self.settings.peers, &|m| {
            self.unavailable(m).is_none()
        })
    }

    /// The keys of the grid's cells under the current settings, in grid order.
    pub fn grid_keys(&self) -> Vec<RunKey> {
        let (params, decoding) = (self.params(), self.settings.decoding());
        compare::specs(&self.grid_methods(), self.settings.keep(), &params)
            .iter()
            .map(|s| RunKey::of(s, &params, &decoding))
            .collect()
    }

    /// The slider's own cell.
    pub fn slider_key(&self) -> RunKey {
        let params = self.params();
        let run = self.settings.current_run(&params);
        RunKey::of(&run, &params, &self.settings.decoding())
    }

    /// Whether every cell of the grid has its result.
    pub fn grid_complete(&self) -> bool {
        self.grid_keys().iter().all(|k| self.result(k).is_some())
    }

    /// The grid cell under the pointer, else the pinned one, if it has a result.
    pub fn hovered_cell(&self) -> Option<RunKey> {
        self.hover
            .grid
            .map(|g| g.cell)
            .or(self.pinned)
            .filter(|k| self.result(k).is_some())
    }

    /// The grid cell the words lane shows: the hovered one, else the pinned one, else the
    /// slider's.
    pub fn focused_cell(&self) -> RunKey {
        self.hover
            .grid
            .map(|g| g.cell)
            .or(self.pinned)
            .unwrap_or_else(|| self.slider_key())
    }

    /// The output word under the pointer, in the lanes or in a cell.
    pub fn hovered_word(&self) -> Option<WordRef> {
        let lanes = self.hover.lanes.and_then(|h| h.word);
        lanes.or_else(|| self.hover.grid.and_then(|h| h.word))
    }

    /// The hovered word's attention over the clip's tokens (when it is still hovered).
    pub fn word_overlay(&self) -> Option<&[f32]> {
        let (w, overlay) = self.hover.overlay.as_ref()?;
        (Some(*w) == self.hovered_word()).then_some(overlay.as_slice())
    }

    /// The moment the cells highlight: the time hovered in the lanes, else the playhead.
    pub fn now(&self) -> f64 {
        let playhead = self.clip.as_ref().map_or(0.0, |c| c.playback.position);
        self.hover.lanes.map_or(playhead, |h| h.t)
    }

    /// The attention lane's marks (none before the highlight is computed).
    pub fn marks(&self) -> Option<&Marks> {
        self.highlight.as_ref().map(|h| &h.marks)
    }

    /// Whether the worker is still loading or decoding.
    pub fn busy(&self) -> bool {
        self.model.loading || self.decoding.as_ref().is_some_and(|d| d.running)
    }

    /// Whether what is on screen is all in: an open document's cells and audio, an eval run's
    /// table, or a decoded grid (scripts wait for it).
    pub fn settled(&self) -> bool {
        if self.page == Page::Corpus {
            return self.corpus.is_some();
        }
        match self.document() {
            Some(d) if !d.sent => d.audio != DocAudio::Decoding,
            _ => self.scores().is_some() && !self.busy() && self.grid_complete(),
        }
    }

    /// The window's title: the clip, the model (name, device, dtype) and where it runs.
    pub fn title(&self) -> String {
        let mut t = String::from("prunescope");
        let name = |p: &std::path::Path| {
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
        };
        match (self.page, &self.corpus, &self.clip) {
            (Page::Corpus, Some(c), _) => t.push_str(&format!(" — run {}", name(&c.path))),
            (_, _, Some(c)) => t.push_str(&format!(" — {}", name(&c.path))),
            _ => {}
        }
        if let Some(d) = self.document() {
            t.push_str(&format!(" — from {} ({})", name(&d.file), d.label));
        }
        match (&self.model.label, self.model.loading) {
            (_, true) => t.push_str(" — loading model"),
            (Some(label), false) => t.push_str(&format!(" — {label}")),
            (None, false) => {}
        }
        if let Some(c) = &self.model.remote {
            t.push_str(&format!(" — on `{c}`"));
            if self.model.lost.is_some() {
                t.push_str(" (lost)");
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_forget_another_scope() {
        let scope = |model: &str| Scope {
            model: model.into(),
            clip: 1,
            prompt: None,
        };
        let mut cells = Cells::default();
        assert!(cells.enter(scope("whisper · cpu f32")));
        assert!(!cells.enter(scope("whisper · cpu f32")));
        cells.views.insert(
            RunKey::of(
                &crate::ui::logic::compare::FULL,
                &Params::default(),
                &Default::default(),
            ),
            CellView::new("a", &[], None, "", true),
        );
        assert!(cells.enter(scope("qwen2-audio · cpu bf16")));
        assert!(cells.views.is_empty());
    }

    #[test]
    fn the_cell_cache_keeps_what_is_shown_and_forgets_the_oldest() {
        let key = |i: usize| {
            let spec = crate::engine::RunSpec {
                method: crate::engine::RunMethod::Prune(crate::prune::Method::TopK),
                keep: (i + 1) as f64 / 1000.0,
            };
            RunKey::of(&spec, &Params::default(), &Default::default())
        };
        let result = |i: usize| RunResult::sample(&i.to_string());
        let mut cells = Cells::default();
        let shown: Vec<RunKey> = (0..5).map(key).collect();
        for i in 0..CELL_CACHE + 20 {
            cells.insert(key(i), result(i), &shown);
        }
        assert_eq!(cells.results.len(), CELL_CACHE);
        // The first five are on screen and stay; the next twenty, the oldest, went.
        for i in 0..5 {
            assert!(cells.results.contains_key(&key(i)), "{i}");
        }
        for i in 5..25 {
            assert!(!cells.results.contains_key(&key(i)), "{i}");
        }
        assert!(cells.results.contains_key(&key(CELL_CACHE + 19)));
    }
}
