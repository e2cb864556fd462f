//! The explorer app: runtime state around the persisted [`Settings`], the frame (`show`), the
//! one command handler (`apply`) and the worker's events. Panels (`panels`, `lanes`) draw and
//! *request* commands during the frame; `apply` runs them once at its end. What to decode and
//! what a cell shows are pure functions in `compare`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::background::{self, Dialog, PathTarget, Picked, Sound};
use super::commands::{self, Command};
use super::compare::{self, Ask, CellKey, CellView, InFlight};
use super::export;
use super::insight::WordRef;
use super::lanes;
use super::state::{Clip, ModelSource, Scores, Settings, Startup, Status};
use super::theme;
use super::timeline::View;
use crate::engine::worker::{Request, Worker};
use crate::engine::{Analysis, RunMethod, RunResult, RunSpec};
use crate::prune::{self, Method, Params, Selection};

/// The model the worker holds.
#[derive(Default)]
pub(super) struct ModelState {
    /// Its label: name, device and dtype.
    pub name: Option<String>,
    /// The directory it came from (None for a model handed over by a test).
    pub dir: Option<PathBuf>,
    /// It takes a prompt and no silence tail (Qwen2-Audio, AF3).
    pub prompted: bool,
    /// Its language model's layers (Qwen2-Audio, AF3).
    pub lm_layers: Option<usize>,
    pub loading: bool,
}

/// What the attention lane's highlight was computed for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum HighlightFor {
    /// A hovered grid cell: its own kept tokens.
    Cell(CellKey),
    /// The controls' method and parameters.
    Setting(Method, Params),
}

/// The selection drawn in the attention lane, cached by what it depends on.
pub(super) struct Highlight {
    pub what: HighlightFor,
    pub result: Result<Selection, prune::PruneError>,
    pub marks: compare::Marks,
}

/// How long the last opened clip took to show its outputs (from the open request): the
/// slider's cell, then the whole grid (ms).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct OpenTiming {
    pub started: Option<Instant>,
    pub slider_cell_ms: Option<f64>,
    pub grid_ms: Option<f64>,
}

/// The "open path" window's state.
pub(super) struct PathWindow {
    pub target: PathTarget,
    pub text: String,
    pub note: Option<String>,
}

pub struct ExplorerApp {
    pub settings: Settings,
    pub(super) worker: Worker,
    ctx_cell: Arc<OnceLock<egui::Context>>,
    pub(super) next_job: u64,
    pub(super) pending_clip_job: Option<u64>,
    pub(super) clip: Option<Clip>,
    /// What the lanes draw from the clip (waveform summary, textures).
    pub(super) lane_cache: Option<lanes::Cache>,
    pub(super) model: ModelState,
    pub(super) decoding: Option<InFlight>,
    /// Finished runs by cell.
    pub(super) results: HashMap<CellKey, RunResult>,
    /// What the results were computed for (model, clip job, prompt); a change clears them.
    results_for: (String, u64, Option<String>),
    pub(super) status: Option<Status>,
    pub(super) sound: Sound,
    pub(super) path_window: Option<PathWindow>,
    pub(super) export_dir: Option<String>,
    dialog: Option<Dialog>,
    pub(super) hovered_cell: Option<CellKey>,
    /// The output word under the pointer, and its attention over the clip's tokens (over its
    /// maximum) for the attention lane.
    pub(super) hovered_word: Option<WordRef>,
    pub(super) word_overlay: Option<Vec<f32>>,
    /// This frame's word under the pointer (the lanes, then the grid, set it).
    pub(super) word_hover_seen: Option<WordRef>,
    /// The time under the pointer in the lanes (the cells highlight the words said then).
    pub(super) lanes_hover_t: Option<f64>,
    /// Word diff and WER of each shown cell, recomputed only when its inputs change.
    pub(super) cell_views: HashMap<CellKey, CellView>,
    pub(super) show_help: bool,
    pub(super) highlight: Option<Highlight>,
    /// Where a primary drag on the lanes started (s).
    pub(super) drag_origin: Option<f64>,
    /// The view the lanes' plots were last given (a different one is set on them).
    pub(super) lanes_view: Option<View>,
    pub(super) pending: Vec<Command>,
    /// CPU time of the last frames' `show` (ms), newest last.
    pub frame_ms: Vec<f32>,
    pub(super) open_timing: OpenTiming,
    quit: bool,
    /// Scripts (scripts/screenshot): a file to create once every output is in, and where to
    /// put the playhead once the clip is encoded.
    pub(super) ready_file: Option<PathBuf>,
    pub(super) initial_seek: Option<f64>,
}

impl ExplorerApp {
    pub fn new(settings: Settings, startup: Startup) -> ExplorerApp {
        let ctx_cell: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let wake_cell = ctx_cell.clone();
        let wake = move |within| {
            if let Some(c) = wake_cell.get() {
                c.request_repaint_after(within);
            }
        };
        let (worker, spawn_error) = match Worker::spawn(wake) {
            Ok(w) => (w, None),
            Err(e) => {
                // Without a thread nothing works; keep the window up with the reason.
                match Worker::spawn(|_| {}) {
                    Ok(w) => (w, Some(e.to_string())),
                    Err(_) => std::process::exit(1),
                }
            }
        };
        let mut app = ExplorerApp {
            settings,
            worker,
            ctx_cell,
            next_job: 1,
            pending_clip_job: None,
            clip: None,
            lane_cache: None,
            model: ModelState::default(),
            decoding: None,
            results: HashMap::new(),
            results_for: (String::new(), 0, None),
            status: None,
            sound: Sound::new(startup.audio),
            path_window: None,
            export_dir: None,
            dialog: None,
            hovered_cell: None,
            hovered_word: None,
            open_timing: OpenTiming::default(),
            word_overlay: None,
            word_hover_seen: None,
            lanes_hover_t: None,
            cell_views: HashMap::new(),
            show_help: false,
            highlight: None,
            drag_origin: None,
            lanes_view: None,
            pending: Vec::new(),
            frame_ms: Vec::new(),
            quit: false,
            ready_file: None,
            initial_seek: None,
        };
        if let Some(e) = spawn_error {
            app.error(format!("cannot start the worker thread: {e}"));
        }
        match startup.model {
            ModelSource::Dir(d) => app.load_model(d),
            ModelSource::Given(m) => {
                app.model.loading = true;
                app.worker.send(Request::UseModel(m));
            }
            ModelSource::None => {
                app.error("no model: File > Open model directory… (or drop one on the window)")
            }
        }
        if let Some(c) = startup.clip {
            app.open_clip(c);
        }
        app
    }

    pub(super) fn info(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: false,
        });
    }

    pub(super) fn error(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: true,
        });
    }

    pub(super) fn scores(&self) -> Option<&Scores> {
        self.clip.as_ref().and_then(|c| c.scores.as_ref())
    }

    /// Seconds per token of the clip's model (Whisper's 20 ms before any).
    fn spt(&self) -> f64 {
        self.scores().map_or(0.02, |s| s.spt())
    }

    /// The controls' pruning parameters.
    pub(super) fn params(&self) -> Params {
        self.settings.params(self.spt())
    }

    /// The slider's own cell (keep 1 for a method that ignores the keep ratio, so it is the
    /// same cell as the grid's).
    pub(super) fn current_spec(&self, params: &Params) -> RunSpec {
        compare::spec(
            RunMethod::Prune(self.settings.method),
            self.settings.keep(),
            params,
        )
    }

    /// The cache keys of the grid's cells under the current settings, in grid order.
    pub(super) fn grid_keys(&self) -> Vec<CellKey> {
        let (params, decoding) = (self.params(), self.settings.decoding());
        compare::specs(&self.grid_methods(), self.settings.keep(), &params)
            .iter()
            .map(|s| compare::cell_key(s, &params, &decoding))
            .collect()
    }

    /// Asks the user's command to run at the end of the frame.
    pub(super) fn request(&mut self, c: Command) {
        self.pending.push(c);
    }

    /// Runs a command now (outside a frame: tests, scripts, start-up).
    pub(super) fn run(&mut self, c: Command) {
        let ctx = self.ctx_cell.get().cloned();
        self.apply(c, ctx.as_ref());
    }

    /// Asks the worker for the grid cells without a result, the slider's own setting first;
    /// cancels stale work.
    fn request_missing(&mut self) {
        let Some(clip) = &self.clip else { return };
        let Some(scores) = &clip.scores else { return };
        let decoding = self.settings.decoding();
        let cache_for = (
            scores.report.model.clone(),
            clip.job,
            decoding.prompt.clone(),
        );
        if self.results_for != cache_for {
            // Other model, clip or prompt: every cell is stale, and so is the record of what
            // was last asked (its cell keys do not say which prompt they were for).
            self.results.clear();
            self.results_for = cache_for;
            self.drop_request();
        }
        let params = self.params();
        let specs = compare::specs(&self.grid_methods(), self.settings.keep(), &params);
        let ask = compare::next_request(
            specs,
            &self.current_spec(&params),
            &params,
            &decoding,
            |k| self.results.contains_key(k),
            self.decoding.as_ref(),
        );
        match ask {
            Ask::Nothing => {}
            Ask::Drop => self.drop_request(),
            Ask::Decode { runs, keys, first } => {
                let job = self.next_job;
                self.next_job += 1;
                self.worker.cancel();
                self.decoding = Some(InFlight {
                    job,
                    of: runs.len(),
                    keys,
                    done: 0,
                    running: true,
                });
                self.worker.send(Request::Decode {
                    job,
                    runs,
                    first,
                    params,
                    decoding,
                });
            }
        }
    }

    /// Forgets the request in flight, cancelling it if it still runs.
    fn drop_request(&mut self) {
        if self.decoding.as_ref().is_some_and(|d| d.running) {
            self.worker.cancel();
        }
        self.decoding = None;
    }

    /// Why a method cannot run on the loaded model (None: it can, or no model yet).
    pub(super) fn unavailable(&self, m: RunMethod) -> Option<String> {
        self.model.name.as_ref()?;
        m.unavailable(self.model.lm_layers, self.settings.fastv_layer)
            .map(|why| why.to_string())
    }

    /// The grid's rows: base methods, extensions, and the peers the model can run.
    pub(super) fn grid_methods(&self) -> Vec<RunMethod> {
        compare::methods(&self.settings.extensions, &self.settings.peers, &|m| {
            self.unavailable(m).is_none()
        })
    }

    /// The grid cell the words lane shows: the hovered one, else the slider's.
    pub(super) fn focused_cell(&self) -> Option<CellKey> {
        self.hovered_cell.or_else(|| {
            let params = self.params();
            let spec = self.current_spec(&params);
            Some(compare::cell_key(&spec, &params, &self.settings.decoding()))
        })
    }

    /// A word's attention over the clip's tokens, over its maximum.
    fn word_attention(&self, w: WordRef) -> Option<Vec<f32>> {
        let r = self.results.get(&w.cell)?;
        let word = r.words.as_ref()?.get(w.word)?;
        let n = self.scores()?.raw().len();
        let mut over = r.attention.as_ref()?.over_clip(word.tokens.clone(), n)?;
        let max = over.iter().copied().fold(0f32, f32::max);
        if max > 0.0 {
            over.iter_mut().for_each(|x| *x /= max);
        }
        Some(over)
    }

    /// Recomputes the lane's selection when its inputs changed (same frame as a slider move).
    pub(super) fn update_highlight(&mut self) {
        let Some(scores) = self.scores() else { return };
        let params = self.params();
        let cell = self
            .hovered_cell
            .and_then(|k| self.results.get(&k).map(|r| (k, r)));
        let what = match &cell {
            Some((k, _)) => HighlightFor::Cell(*k),
            None => HighlightFor::Setting(self.settings.method, params.clone()),
        };
        if self.highlight.as_ref().is_some_and(|h| h.what == what) {
            return;
        }
        let result = match cell {
            Some((_, r)) => Ok(r.selection()),
            None => {
                let keys = prune::Keys {
                    data: &scores.keys,
                    dim: scores.key_dim,
                };
                prune::select(self.settings.method, scores.raw(), Some(keys), &params)
            }
        };
        let marks = match &result {
            Ok(sel) => compare::highlight(sel, scores.raw().len(), params.window_tokens),
            Err(_) => compare::Marks::default(),
        };
        self.highlight = Some(Highlight {
            what,
            result,
            marks,
        });
    }

    /// Only the lanes, without transport and grid (image snapshots: nothing time-dependent).
    pub fn show_lanes(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.prepare(&ctx);
        egui::CentralPanel::default().show(ui, |ui| {
            self.update_highlight();
            self.lanes_ui(ui, false)
        });
        self.apply_pending(&ctx);
    }

    fn script_hooks(&mut self) {
        if !self.encoded() {
            return;
        }
        if let Some(t) = self.initial_seek.take() {
            self.request(Command::Seek(t));
        }
        // Only scripts wait for the grid: nothing to check on a user's frames.
        if self.ready_file.is_none() || self.busy() {
            return;
        }
        if self
            .grid_keys()
            .iter()
            .all(|k| self.results.contains_key(k))
        {
            if let Some(p) = self.ready_file.take() {
                if let Err(e) = std::fs::write(&p, b"ready\n") {
                    self.error(format!("cannot write {}: {e}", p.display()));
                }
            }
        }
    }

    /// Everything a frame does before drawing.
    fn prepare(&mut self, ctx: &egui::Context) {
        if self.ctx_cell.get().is_none() {
            let _ = self.ctx_cell.set(ctx.clone());
            theme::apply(ctx);
        }
        if let Some(e) = self.sound.open_once(self.clip.as_ref().map(|c| &c.samples)) {
            self.error(e);
        }
        self.handle_events(ctx);
        if let Some(picked) = self.dialog.as_ref().and_then(Dialog::poll) {
            self.dialog = None;
            match picked {
                Picked::Path(c) => self.request(c),
                Picked::Unavailable(target) => {
                    self.path_window = Some(PathWindow {
                        target,
                        text: String::new(),
                        note: Some(
                            "No file dialog is available on this system: type the path.".into(),
                        ),
                    })
                }
                Picked::Nothing => {}
            }
        }
        self.pending.extend(background::dropped(ctx));
        self.pending.extend(commands::pressed(ctx));
        self.tick_playback(ctx);
        self.script_hooks();
    }

    /// One frame. Called by eframe and by the tests' harness.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        let ctx = ui.ctx().clone();
        self.prepare(&ctx);

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(250.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            // After the controls: a slider moved in this frame shows in this frame's lanes.
            self.request_missing();
            self.update_highlight();
            self.selection_summary(ui);
            self.lanes_ui(ui, true);
            ui.add_space(8.0);
            self.grid_ui(ui);
        });
        self.windows(&ctx);
        self.apply_pending(&ctx);
        // The playhead moves every frame. Background work needs no frames of its own: the
        // worker wakes the window when it has something to show (see `Worker::spawn`).
        if self.clip.as_ref().is_some_and(|c| c.playback.playing) {
            ctx.request_repaint_after(Duration::from_millis(16));
        }
        if self.quit {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.frame_ms.push(t0.elapsed().as_secs_f32() * 1e3);
        if self.frame_ms.len() > 600 {
            self.frame_ms.drain(..300);
        }
    }

    fn apply_pending(&mut self, ctx: &egui::Context) {
        for c in std::mem::take(&mut self.pending) {
            self.apply(c, Some(ctx));
        }
    }

    fn tick_playback(&mut self, ctx: &egui::Context) {
        let dt = f64::from(ctx.input(|i| i.stable_dt)).min(0.1);
        let follow = self.settings.follow;
        let Some(clip) = &mut self.clip else { return };
        let pb = &mut clip.playback;
        if !pb.playing {
            return;
        }
        match &self.sound.out {
            Some(a) => {
                let (pos, still) = a.position();
                let (lo, hi) = pb.range();
                if still {
                    pb.position = pos;
                } else {
                    pb.set_played_position(hi.max(pos));
                    if pb.playing {
                        // Looped: start the device over at the range start.
                        a.play(pb.position.max(lo), hi);
                    }
                }
            }
            None => pb.advance(dt),
        }
        if follow {
            clip.view.follow(clip.playback.position, clip.duration);
        }
    }

    /// Starts or stops the device to match the playback state.
    fn sync_audio(&self) {
        let (Some(a), Some(c)) = (&self.sound.out, &self.clip) else {
            return;
        };
        if c.playback.playing {
            let (_, hi) = c.playback.range();
            a.play(c.playback.position, hi);
        } else {
            a.stop();
        }
    }

    /// The one command handler.
    fn apply(&mut self, c: Command, ctx: Option<&egui::Context>) {
        match c {
            Command::PickClip => self.pick(PathTarget::Clip),
            Command::PickModel => self.pick(PathTarget::Model),
            Command::TypePath => {
                self.path_window = Some(PathWindow {
                    target: PathTarget::Clip,
                    text: String::new(),
                    note: None,
                })
            }
            Command::PickExportDir => {
                let dir = self
                    .clip
                    .as_ref()
                    .and_then(|c| c.path.parent())
                    .map(|p| p.join("prunescope-export").display().to_string())
                    .unwrap_or_else(|| "prunescope-export".into());
                self.export_dir = Some(dir);
            }
            Command::OpenClip(path) => {
                let job = self.next_job;
                self.next_job += 1;
                self.worker.cancel();
                self.decoding = None;
                self.info(format!("opening {}…", path.display()));
                self.open_timing = OpenTiming {
                    started: Some(Instant::now()),
                    ..OpenTiming::default()
                };
                self.worker.send(Request::OpenClip { job, path });
                // The old clip stays on screen until the new one loads; answers for `job` count.
                self.pending_clip_job = Some(job);
            }
            Command::LoadModel(dir) => {
                self.model.loading = true;
                self.info(format!("loading model {}…", dir.display()));
                self.worker.send(Request::LoadModel {
                    dir,
                    precision: self.settings.precision,
                });
            }
            Command::SetScoreSource(s) => {
                if s != self.settings.source {
                    self.settings.source = s;
                    if let Some(scores) = self.clip.as_mut().and_then(|c| c.scores.as_mut()) {
                        scores.set_source(&s);
                        if let (Some(cache), Some(ctx)) = (&mut self.lane_cache, ctx) {
                            cache.set_scores(ctx, &scores.norm);
                            cache.set_layers(ctx, &scores.layers, s.head_reduce);
                        }
                    }
                    self.highlight = None;
                }
            }
            Command::SetPrecision(p) => {
                if p != self.settings.precision {
                    self.settings.precision = p;
                    match (self.model.dir.clone(), self.model.prompted) {
                        (Some(dir), true) => self.apply(Command::LoadModel(dir), ctx),
                        _ => self.info(format!(
                            "dtype {p}: for Qwen2-Audio / AF3 models (Whisper runs in f32)"
                        )),
                    }
                }
            }
            Command::Export(dir) => match self.export(&dir) {
                Ok(files) => self.info(format!("wrote {} files to {}", files.len(), dir.display())),
                Err(e) => self.error(e.to_string()),
            },
            Command::CancelDecode => {
                if self.decoding.as_ref().is_some_and(|d| d.running) {
                    self.worker.cancel();
                }
            }
            Command::HoverCell(k) => {
                if k != self.hovered_cell {
                    self.hovered_cell = k;
                    self.highlight = None;
                }
            }
            Command::HoverWord(w) => {
                if w != self.hovered_word {
                    self.hovered_word = w;
                    self.word_overlay = w.and_then(|w| self.word_attention(w));
                }
            }
            Command::Quit => self.quit = true,
            Command::ToggleHelp => self.show_help = !self.show_help,
            Command::ToggleFollow => self.settings.follow = !self.settings.follow,
            Command::ToggleLoop => {
                self.settings.looping = !self.settings.looping;
                if let Some(c) = &mut self.clip {
                    c.playback.looping = self.settings.looping;
                }
            }
            Command::PlayPause
            | Command::PlaySelection
            | Command::ClearSelection
            | Command::Step(_)
            | Command::Seek(_)
            | Command::Select(..)
            | Command::Zoom { .. }
            | Command::Pan(_)
            | Command::SetView(_)
            | Command::ZoomFit => {
                let Some(clip) = &mut self.clip else { return };
                let (pb, duration) = (&mut clip.playback, clip.duration);
                match c {
                    Command::PlayPause => pb.toggle(),
                    Command::PlaySelection => pb.play_selection(),
                    Command::ClearSelection => pb.selection = None,
                    Command::Step(dt) => pb.step(dt),
                    Command::Seek(t) => pb.seek(t),
                    Command::Select(a, b) => pb.select(a, b),
                    Command::Zoom { factor, anchor } => {
                        let anchor = anchor.unwrap_or(pb.position);
                        clip.view.zoom(factor, anchor, duration);
                    }
                    Command::Pan(dt) => clip.view.pan(dt, duration),
                    Command::SetView(v) => clip.view.set(v, duration),
                    Command::ZoomFit => clip.view = View::full(duration),
                    _ => {}
                }
                self.sync_audio();
            }
        }
        if let Some(ctx) = ctx {
            ctx.request_repaint();
        }
    }

    /// Opens the system file dialog, or the path window when none can be started.
    fn pick(&mut self, target: PathTarget) {
        self.dialog = Dialog::open(target, self.ctx_cell.get().cloned());
        if self.dialog.is_none() {
            self.path_window = Some(PathWindow {
                target,
                text: String::new(),
                note: None,
            });
        }
    }

    /// The runs of the grid that are in, in grid order.
    fn grid_results(&self) -> Vec<RunResult> {
        self.grid_keys()
            .iter()
            .filter_map(|k| self.results.get(k).cloned())
            .collect()
    }

    /// Writes the exports into `dir`; returns the paths written.
    pub fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, export::ExportError> {
        let clip = self.clip.as_ref().ok_or(export::ExportError::NoClip)?;
        let s = clip.scores.as_ref().ok_or(export::ExportError::NoScores)?;
        let (mask, bounds): (&[bool], &[usize]) = match &self.highlight {
            Some(h) => (&h.marks.kept, &h.marks.bounds),
            None => (&[], &[]),
        };
        let lane = export::lane_image(
            &export::LaneData {
                norm: &s.norm,
                kept: mask,
                bounds,
                top: &s.top,
            },
            1600,
            300,
        );
        let runs = self.grid_results();
        let reference = self.settings.reference.clone();
        let outputs = export::outputs_csv(&runs, |r| {
            crate::eval::metrics::wer::sentence_wer(&reference, &r.text)
        });
        let scores = export::scores_csv(s.raw(), &s.norm, mask, bounds, s.spt());
        let analysis = Analysis {
            report: s.report.clone(),
            runs,
        };
        let stem = clip
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "clip".into());
        export::write_all(dir, &stem, &lane, &scores, &outputs, &analysis)
    }
}

/// The eframe shell: persistence and the frame.
pub struct EframeApp(pub ExplorerApp);

impl eframe::App for EframeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.0.settings);
    }
}
