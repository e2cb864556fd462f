//! The explorer app: owns the model host (the worker in this process, or a remote model: the
//! app does not tell them apart beyond saying where the model runs), the sound device and the
//! file dialogs around the [`AppState`]. A frame takes the worker's events ([`events`]), draws the views (which push
//! [`Command`]s), then applies the commands once ([`apply`]) and brings what derives from the
//! state up to date: the grid's next request (only when something it depends on changed), the
//! attention lane's highlight, the hovered word's attention, what each cell shows.

mod api;
mod apply;
mod documents;
mod events;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::background::{Dialog, Loader, Picked, Sound};
use super::commands::{self, Command};
use super::export;
use super::logic::cell_view::CellView;
use super::logic::compare::{self, Ask, InFlight};
use super::logic::marks;
use super::logic::pool;
use super::logic::words::WordRef;
use super::settings::Settings;
use super::state::Scores;
use super::state::{AppState, Clip, Highlight, HighlightFor, ModelSource, PathTarget, PathWindow};
use super::state::{Startup, Status};
use super::{background, theme, views};
use crate::engine::worker::{Decode, OpenClip, Request, Scoring, Worker};
use crate::engine::{Analysis, ModelHost, RunKey, RunResult};
use crate::model::LoadOptions;
use crate::prune;

/// Commands kept in the log tests and scripts read.
const LOG: usize = 64;

pub struct ExplorerApp {
    state: AppState,
    /// Where the model runs: a [`Worker`] here, or a [`crate::remote::Remote`].
    host: Box<dyn ModelHost>,
    /// How local model directories load (the command line's model options).
    load: LoadOptions,
    /// The window title last set.
    title: String,
    ctx_cell: Arc<OnceLock<egui::Context>>,
    next_job: u64,
    sound: Sound,
    dialog: Option<Dialog>,
    /// Reads documents and decodes their clips beside the frames.
    loader: Loader,
    /// The document being read (answers for other jobs are stale).
    opening: Option<u64>,
    /// Commands pushed this frame, applied at its end.
    pending: Vec<Command>,
    /// Something the grid depends on changed: ask for its missing cells.
    grid_dirty: bool,
    /// A result, the `full` row's text or the reference changed: recompute the cells' views.
    views_dirty: bool,
    /// The last commands applied, oldest first, and how many decode requests were sent.
    log: Vec<Command>,
    decode_requests: u64,
    quit: bool,
    /// Scripts (scripts/screenshot): a file to create once every output is in, and where to
    /// put the playhead once the clip is encoded.
    ready_file: Option<PathBuf>,
    initial_seek: Option<f64>,
}

impl ExplorerApp {
    pub fn new(mut settings: Settings, startup: Startup) -> ExplorerApp {
        crate::util::bound_malloc_arenas();
        // A dtype on the command line (`--dtype bf16`) is the standing choice from now on.
        if startup.load.precision != crate::model::Precision::Auto {
            settings.precision = startup.load.precision;
        }
        let ctx_cell: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let (worker, spawn_error) = match Worker::spawn(wake(&ctx_cell)) {
            Ok(w) => (w, None),
            // Without a thread nothing works; keep the window up with the reason.
            Err(e) => match Worker::spawn(|_| {}) {
                Ok(w) => (w, Some(e.to_string())),
                Err(_) => std::process::exit(1),
            },
        };
        let loader = Loader::new(wake(&ctx_cell));
        let mut app = ExplorerApp {
            state: AppState::new(settings),
            host: Box::new(worker),
            load: startup.load,
            title: String::new(),
            ctx_cell,
            next_job: 1,
            sound: Sound::new(startup.audio),
            dialog: None,
            loader,
            opening: None,
            pending: Vec::new(),
            grid_dirty: false,
            views_dirty: false,
            log: Vec::new(),
            decode_requests: 0,
            quit: false,
            ready_file: None,
            initial_seek: None,
        };
        if let Some(e) = spawn_error {
            app.error(format!("cannot start the worker thread: {e}"));
        }
        match startup.model {
            ModelSource::Dir(d) => app.run(Command::LoadModel(d)),
            ModelSource::Given(m) => {
                app.state.model.loading = true;
                app.host.send(Request::UseModel(m));
            }
            ModelSource::Remote(command) => app.run(Command::ConnectRemote(command)),
            // A document shows without one.
            ModelSource::None if startup.document.is_some() => {}
            ModelSource::None => {
                app.error("no model: File > Open model directory… (or drop one on the window)")
            }
        }
        if let Some(c) = startup.clip {
            app.run(Command::OpenClip(c));
        }
        if let Some((path, opened)) = startup.document {
            app.open_read_document(path, opened);
        }
        app
    }

    fn info(&mut self, text: impl Into<String>) {
        self.state.status = Some(Status {
            text: text.into(),
            error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.state.status = Some(Status {
            text: text.into(),
            error: true,
        });
    }

    fn new_job(&mut self) -> u64 {
        let job = self.next_job;
        self.next_job += 1;
        job
    }

    /// Runs a command now, and what follows from it (outside a frame: tests, scripts, start-up).
    fn run(&mut self, c: Command) {
        let ctx = self.ctx_cell.get().cloned();
        self.apply(c, ctx.as_ref());
        self.settle();
    }

    /// One frame. Called by eframe and by the tests' harness.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        let ctx = ui.ctx().clone();
        self.prepare(&ctx);
        views::frame(ui, &self.state, &mut self.pending);
        self.finish(&ctx);
        // The playhead moves every frame. Background work needs no frames of its own: the
        // worker wakes the window when it has something to show (see `Worker::spawn`).
        if self.state.clip.as_ref().is_some_and(|c| c.playback.playing) {
            ctx.request_repaint_after(Duration::from_millis(16));
        }
        if self.quit {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        let frame_ms = &mut self.state.frame_ms;
        frame_ms.push(t0.elapsed().as_secs_f32() * 1e3);
        if frame_ms.len() > 600 {
            frame_ms.drain(..300);
        }
    }

    /// Only the lanes, without transport and grid (image snapshots: nothing time-dependent).
    pub fn show_lanes(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.prepare(&ctx);
        views::lanes_only(ui, &self.state, &mut self.pending);
        self.finish(&ctx);
    }

    /// Everything a frame does before drawing: the worker's events, the dialog, drops,
    /// shortcuts, the playhead.
    fn prepare(&mut self, ctx: &egui::Context) {
        if self.ctx_cell.get().is_none() {
            let _ = self.ctx_cell.set(ctx.clone());
            theme::apply(ctx);
        }
        let samples = self.state.clip.as_ref().map(|c| &c.samples);
        if let Some(e) = self.sound.open_once(samples) {
            self.error(e);
        }
        while let Some(e) = self.host.try_recv() {
            self.on(e, ctx);
        }
        while let Some(l) = self.loader.try_recv() {
            self.loaded(l, ctx);
        }
        self.poll_dialog();
        self.pending.extend(background::dropped(ctx));
        self.pending.extend(commands::pressed(ctx));
        self.tick_playback(ctx);
        self.script_hooks();
        self.settle();
    }

    /// Everything after drawing: the frame's commands, once, and what follows from them.
    fn finish(&mut self, ctx: &egui::Context) {
        for c in std::mem::take(&mut self.pending) {
            self.apply(c, Some(ctx));
        }
        self.settle();
        let title = self.state.title();
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    /// Makes `host` the model's host (the old one goes: a local worker stops, a remote server's
    /// input closes). The clip on screen goes to it under its own job, so when the new host's
    /// model is the same (a reconnect) every cell shown stays.
    fn attach(&mut self, host: Box<dyn ModelHost>) {
        self.host = host;
        self.state.decoding = None;
        let m = &mut self.state.model;
        m.remote = self.host.remote().map(str::to_string);
        m.lost = None;
        m.label = None;
        m.loading = true;
        if let Some(c) = &mut self.state.clip {
            match (&mut c.document, &c.source) {
                // A document's clip goes to the new host once its model is known to be the same.
                (Some(d), _) => d.sent = false,
                (None, Some(source)) => self.host.send(Request::OpenClip(OpenClip {
                    job: c.job,
                    clip: source.clone(),
                    scoring: Scoring::every_layer(),
                })),
                (None, None) => {}
            }
        }
        // A clip being opened went to the old host: the new one opens it (after the clip on
        // screen, so it is the new host's clip, as it was the old one's).
        if let Some((job, path)) = &self.state.pending_clip {
            self.host.send(Request::OpenClip(OpenClip {
                job: *job,
                clip: crate::engine::worker::ClipSource::Path(path.clone()),
                scoring: Scoring::every_layer(),
            }));
        }
    }

    /// A worker in this process, unless one is there already.
    fn attach_local(&mut self) -> bool {
        if self.host.remote().is_none() {
            return true;
        }
        match Worker::spawn(wake(&self.ctx_cell)) {
            Ok(w) => {
                self.attach(Box::new(w));
                true
            }
            Err(e) => {
                self.error(format!("cannot start the worker thread: {e}"));
                false
            }
        }
    }

    /// The model served at the other end of `command`.
    fn attach_remote(&mut self, command: &str) {
        let options = crate::remote::RemoteOptions {
            preview: true,
            echo_stderr: false,
        };
        let remote = crate::remote::Remote::spawn(command, options, wake(&self.ctx_cell));
        self.attach(Box::new(remote));
    }

    fn poll_dialog(&mut self) {
        let Some(picked) = self.dialog.as_ref().and_then(Dialog::poll) else {
            return;
        };
        self.dialog = None;
        match picked {
            Picked::Path(c) => self.pending.push(c),
            Picked::Unavailable(target) => {
                self.state.windows.path = Some(PathWindow {
                    target,
                    text: String::new(),
                    note: Some("No file dialog is available on this system: type the path.".into()),
                })
            }
            Picked::Nothing => {}
        }
    }

    /// Opens the system file dialog, or the path window when none can be started.
    fn pick(&mut self, target: PathTarget) {
        let name = (target == PathTarget::SaveWorkspace).then(|| {
            let stem = self.state.clip.as_ref().and_then(|c| c.path.file_stem());
            let stem = stem.map_or_else(|| "clip".into(), |s| s.to_string_lossy().into_owned());
            format!("{stem}.prunescope")
        });
        self.dialog = Dialog::open(target, name, self.ctx_cell.get().cloned());
        if self.dialog.is_none() {
            self.state.windows.path = Some(PathWindow {
                target,
                text: String::new(),
                note: None,
            });
        }
    }

    /// Brings what derives from the state up to date.
    fn settle(&mut self) {
        if std::mem::take(&mut self.grid_dirty) {
            self.request_grid();
        }
        if std::mem::take(&mut self.views_dirty) {
            self.refresh_cell_views();
        }
        self.refresh_highlight();
        self.refresh_overlay();
    }

    /// Asks the worker for the grid's cells without a result, the slider's own setting first;
    /// cancels stale work. Nothing until the loaded model has encoded the clip.
    fn request_grid(&mut self) {
        let (Some(_), Some(scope)) = (self.state.fresh_scores(), self.state.scope()) else {
            return;
        };
        if self.state.model.lost.is_some() {
            // Nobody to ask: the cells shown stay until a reconnect.
            return;
        }
        if self.state.pending_clip.is_some() {
            // The model's clip is the one being opened: its runs are not this clip's.
            return;
        }
        if self.state.cells.enter(scope) {
            // Another model, clip or prompt: every cell is stale, and so is what is asked.
            self.drop_request();
        }
        let s = &self.state;
        let (params, decoding) = (s.params(), s.settings.decoding());
        let specs = compare::specs(&s.grid_methods(), s.settings.keep(), &params);
        let ask = compare::next_request(
            specs,
            &s.settings.current_run(&params),
            &params,
            &decoding,
            |k| s.cells.results.contains_key(k),
            s.decoding.as_ref(),
        );
        match ask {
            Ask::Nothing => {}
            Ask::Drop => self.drop_request(),
            Ask::Decode { runs, first } => {
                let job = self.new_job();
                self.host.cancel();
                self.state.decoding = Some(InFlight {
                    job,
                    of: runs.len(),
                    keys: runs.iter().map(|r| r.key).collect(),
                    done: 0,
                    running: true,
                });
                self.decode_requests += 1;
                self.host.send(Request::Decode(Decode {
                    job,
                    clip: self.state.clip.as_ref().map(|c| c.job),
                    runs,
                    first,
                    params,
                    decoding,
                }));
            }
        }
    }

    /// Forgets the request in flight, cancelling it if it still runs.
    fn drop_request(&mut self) {
        if self.state.decoding.as_ref().is_some_and(|d| d.running) {
            self.host.cancel();
        }
        self.state.decoding = None;
    }

    /// Recomputes each cell's diff, WER and word links whose inputs changed. Each cell is
    /// compared with the pinned cell (its diff and its WER), else with `full` (its diff) and the
    /// reference transcript (its WER).
    fn refresh_cell_views(&mut self) {
        let full_key = RunKey::of(
            &compare::FULL,
            &self.state.params(),
            &self.state.settings.decoding(),
        );
        let pinned = self
            .state
            .pinned
            .filter(|k| self.state.cells.results.contains_key(k));
        let base_key = pinned.unwrap_or(full_key);
        let cells = &mut self.state.cells;
        let full = cells.results.get(&base_key).map(|r| r.text.clone());
        let reference = match pinned {
            Some(_) => full.clone().unwrap_or_default(),
            None => self.state.settings.reference.trim().to_string(),
        };
        for (key, r) in &cells.results {
            let fresh = cells
                .views
                .get(key)
                .is_some_and(|v| v.is_for(&r.text, full.as_deref(), &reference));
            if !fresh {
                let is_full = *key == base_key;
                let view =
                    CellView::new(&r.text, &r.loop_spans, full.as_deref(), &reference, is_full)
                        .with_words(r.words.as_deref());
                cells.views.insert(*key, view);
            }
        }
    }

    /// Recomputes the attention lane's selection when its inputs changed: the hovered cell's
    /// kept tokens, else the controls' setting.
    fn refresh_highlight(&mut self) {
        let s = &self.state;
        let Some(scores) = s.scores() else { return };
        let params = s.params();
        let cell = s.hovered_cell().and_then(|k| s.result(&k).map(|r| (k, r)));
        let what = match &cell {
            Some((k, _)) => HighlightFor::Cell(*k),
            None => HighlightFor::Setting(s.settings.method, params.clone()),
        };
        if s.highlight.as_ref().is_some_and(|h| h.what == what) {
            return;
        }
        // A document's clip has no keys: its own cell of the setting is the selection.
        let own = (s.document().is_some())
            .then(|| s.result(&s.slider_key()))
            .flatten();
        let result = match cell.or(own.map(|r| (s.slider_key(), r))) {
            Some((_, r)) => Ok(r.selection()),
            None => {
                let keys = prune::Keys {
                    data: &scores.keys,
                    dim: scores.key_dim,
                };
                prune::select(s.settings.method, scores.ranked(), Some(keys), &params)
            }
        };
        let marks = match &result {
            Ok(sel) => marks::highlight(sel, scores.ranked().len(), params.window_tokens),
            Err(_) => marks::Marks::default(),
        };
        self.state.highlight = Some(Highlight {
            what,
            result,
            marks,
        });
    }

    /// Computes the hovered word's attention over the clip's tokens when the word changed.
    fn refresh_overlay(&mut self) {
        let word = self.state.hovered_word();
        if self.state.hover.overlay.as_ref().map(|(w, _)| *w) == word {
            return;
        }
        self.state.hover.overlay = word.and_then(|w| Some((w, self.word_attention(w)?)));
    }

    /// A word's attention over the clip's tokens, over its maximum.
    fn word_attention(&self, w: WordRef) -> Option<Vec<f32>> {
        let r = self.state.result(&w.cell)?;
        let word = r.words.as_ref()?.get(w.word)?;
        let n = self.state.scores()?.ranked().len();
        let over = r
            .attention
            .as_ref()?
            .over_clip(word.tokens.clone(), n, &r.merged)?;
        Some(pool::over_max(&over))
    }

    fn tick_playback(&mut self, ctx: &egui::Context) {
        let dt = f64::from(ctx.input(|i| i.stable_dt)).min(0.1);
        let follow = self.state.settings.follow;
        let Some(clip) = &mut self.state.clip else {
            return;
        };
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
        let (Some(a), Some(c)) = (&self.sound.out, &self.state.clip) else {
            return;
        };
        if c.playback.playing {
            let (_, hi) = c.playback.range();
            a.play(c.playback.position, hi);
        } else {
            a.stop();
        }
    }

    fn script_hooks(&mut self) {
        if self.state.scores().is_some() {
            if let Some(t) = self.initial_seek.take() {
                self.pending.push(Command::Seek(t));
            }
        }
        // Only scripts wait for the grid: nothing to check on a user's frames.
        if self.ready_file.is_none() || !self.state.settled() {
            return;
        }
        if let Some(p) = self.ready_file.take() {
            if let Err(e) = std::fs::write(&p, b"ready\n") {
                self.error(format!("cannot write {}: {e}", p.display()));
            }
        }
    }

    /// The runs of the grid that are in, in grid order.
    fn grid_results(&self) -> Vec<RunResult> {
        self.state
            .grid_keys()
            .iter()
            .filter_map(|k| self.state.result(k).cloned())
            .collect()
    }

    /// The open clip and its scores, or why there is nothing to export.
    fn clip_scores(&self) -> Result<(&Clip, &Scores), export::ExportError> {
        let clip = self
            .state
            .clip
            .as_ref()
            .ok_or(export::ExportError::NoClip)?;
        let s = clip.scores.as_ref().ok_or(export::ExportError::NoScores)?;
        Ok((clip, s))
    }

    /// The `analyze` document of the grid: the clip's part and every cell that is in (each
    /// cell's key is the parameters it reads: the current ones name them all).
    fn analysis(&self) -> Result<Analysis, export::ExportError> {
        let (_, s) = self.clip_scores()?;
        Ok(Analysis {
            report: s.report.clone(),
            plan: Some(crate::engine::PlanSettings {
                params: self.state.params(),
                decoding: self.state.settings.decoding(),
            }),
            runs: self.grid_results(),
        })
    }

    /// Writes the exports into `dir`; returns the paths written.
    pub fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, export::ExportError> {
        let analysis = self.analysis()?;
        let (clip, s) = self.clip_scores()?;
        let no_marks = marks::Marks::default();
        let m = self.state.marks().unwrap_or(&no_marks);
        let lane = export::lane_image(
            &export::LaneData {
                norm: &s.norm,
                kept: &m.kept,
                bounds: &m.bounds,
                top: &s.top,
            },
            1600,
            300,
        );
        let reference = self.state.settings.reference.clone();
        let outputs = export::outputs_csv(&analysis.runs, |r| {
            crate::eval::metrics::wer::sentence_wer(&reference, &r.text)
        });
        let scores = export::scores_csv(s.ranked(), &s.norm, &m.kept, &m.bounds, s.spt());
        let stem = clip
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "clip".into());
        export::write_all(dir, &stem, &lane, &scores, &outputs, &analysis)
    }
}

/// What a host calls after each event: repaint the window within that time, once it exists.
fn wake(ctx_cell: &Arc<OnceLock<egui::Context>>) -> impl Fn(Duration) + Send + Sync + 'static {
    let cell = ctx_cell.clone();
    move |within| {
        if let Some(c) = cell.get() {
            c.request_repaint_after(within);
        }
    }
}

/// The eframe shell: persistence and the frame.
pub struct EframeApp(pub ExplorerApp);

impl eframe::App for EframeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.0.state.settings);
    }
}

#[cfg(test)]
mod tests;
