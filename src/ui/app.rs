//! The explorer: persisted [`Settings`], runtime state, the frame (`show`), command handling and
//! worker events. The UI only *requests* commands during the frame; `apply` runs them once at
//! the end of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use egui::{Color32, RichText, Sense, TextureOptions};
use serde::{Deserialize, Serialize};

use super::audio_out::AudioOut;
use super::commands::{self, Command, Menu, COMMANDS};
use super::compare::{self, Diff};
use super::export;
use super::lanes;
use super::theme;
use super::timeline::{Playback, View};
use crate::engine::worker::{Event, Request, Spectrogram, Worker};
use crate::engine::{
    Analysis, ClipInfo, ClipReport, Decoding, RunMethod, RunResult, RunSpec, Tail, TokenInfo,
};
use crate::model::AudioLanguageModel;
use crate::prune::{self, Method, Params, SegmentMode, Selection};

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
    pub extensions: Vec<Method>,
    pub follow: bool,
    pub looping: bool,
    pub recent_clips: Vec<PathBuf>,
    pub recent_models: Vec<PathBuf>,
    pub last_model: Option<PathBuf>,
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
            extensions: Vec::new(),
            follow: true,
            looping: false,
            recent_clips: Vec::new(),
            recent_models: Vec::new(),
            last_model: None,
            reference: String::new(),
            prompt: String::new(),
        }
    }
}

const RECENT: usize = 8;

fn push_recent(list: &mut Vec<PathBuf>, p: &Path) {
    list.retain(|x| x != p);
    list.insert(0, p.to_path_buf());
    list.truncate(RECENT);
}

impl Settings {
    pub fn params(&self, seconds_per_token: f64) -> Params {
        Params {
            keep: (self.keep_percent / 100.0).clamp(0.01, 1.0),
            segments: self.segments.max(1),
            mode: self.mode,
            seed: self.seed,
            gamma: self.gamma.max(0.0),
            k_min: 1,
            window_tokens: ((self.window_seconds / seconds_per_token.max(1e-6)).round() as usize)
                .max(1),
            order: prune::Order::Time,
        }
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

/// The clip's scores once encoded, with what the lanes derive from them.
struct Scores {
    model: String,
    raw: Vec<f32>,
    norm: Vec<f32>,
    keys: Vec<f32>,
    key_dim: usize,
    /// First token of each 30 s window.
    windows: Vec<usize>,
    top: Vec<usize>,
    spt: f64,
    encode_ms: f64,
    analyzed_s: f64,
}

struct Clip {
    job: u64,
    path: PathBuf,
    samples: Arc<Vec<f32>>,
    summary: Vec<(f32, f32)>,
    texture: Option<egui::TextureHandle>,
    duration: f64,
    scores: Option<Scores>,
    view: View,
    playback: Playback,
}

/// The decode request in flight.
struct InFlight {
    job: u64,
    /// Cell keys in request order.
    keys: Vec<String>,
    done: usize,
    of: usize,
    running: bool,
}

/// The selection drawn in the attention lane, cached by what it depends on.
struct Highlight {
    key: String,
    result: Result<Selection, String>,
    kept_mask: Vec<bool>,
    bounds: Vec<usize>,
}

/// What a grid cell shows besides its text.
struct CellView {
    text: String,
    full: Option<String>,
    reference: String,
    /// `None` when there is nothing to compare with (the full row itself, or no full yet).
    diff: Option<Vec<Diff>>,
    wer: Option<f64>,
    /// Per word of `text`: inside a repeated loop tail (drawn dimmed).
    looped: Vec<bool>,
}

impl CellView {
    fn new(r: &RunResult, full: Option<&str>, reference: &str, is_full: bool) -> CellView {
        let text = r.text.as_str();
        CellView {
            looped: compare::looped_words(text, &r.loop_spans),
            text: text.to_owned(),
            full: full.map(str::to_owned),
            reference: reference.to_owned(),
            diff: full
                .filter(|_| !is_full)
                .map(|f| compare::word_diff(f, text)),
            wer: compare::wer(reference, text),
        }
    }

    fn is_for(&self, text: &str, full: Option<&str>, reference: &str) -> bool {
        self.text == text && self.full.as_deref() == full && self.reference == reference
    }
}

struct Status {
    text: String,
    error: bool,
}

/// Which "open path" window is showing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathTarget {
    Clip,
    Model,
}

pub struct ExplorerApp {
    pub settings: Settings,
    worker: Worker,
    ctx_cell: Arc<OnceLock<egui::Context>>,
    next_job: u64,
    pending_clip_job: Option<u64>,
    clip: Option<Clip>,
    model_name: Option<String>,
    /// The model takes a prompt and no silence tail (Qwen2-Audio, AF3).
    model_prompted: bool,
    model_loading: bool,
    decoding: Option<InFlight>,
    /// Finished runs by [`compare::cell_key`].
    results: HashMap<String, RunResult>,
    /// What the cache was computed for (model, clip job, prompt); a change clears it.
    results_for: (String, u64, Option<String>),
    status: Option<Status>,
    audio: Option<AudioOut>,
    audio_error_shown: bool,
    want_audio: bool,
    path_window: Option<(PathTarget, String, Option<String>)>,
    export_dir: Option<String>,
    dialog: Option<(
        PathTarget,
        Instant,
        crossbeam_channel::Receiver<Option<PathBuf>>,
    )>,
    hovered_cell: Option<String>,
    /// Word diff and WER of each shown cell, recomputed only when its inputs change.
    cell_views: HashMap<String, CellView>,
    show_help: bool,
    highlight: Option<Highlight>,
    drag_origin: Option<f64>,
    pending: Vec<Command>,
    /// CPU time of the last frames' `show` (ms), newest last.
    pub frame_ms: Vec<f32>,
    quit: bool,
    /// Scripts (scripts/screenshot): a file to create once every output is in, and where to
    /// put the playhead once the clip is encoded.
    ready_file: Option<PathBuf>,
    initial_seek: Option<f64>,
}

impl ExplorerApp {
    pub fn new(settings: Settings, startup: Startup) -> ExplorerApp {
        let ctx_cell: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let wake_cell = ctx_cell.clone();
        let wake = move || {
            if let Some(c) = wake_cell.get() {
                c.request_repaint();
            }
        };
        let (worker, spawn_error) = match Worker::spawn(wake) {
            Ok(w) => (w, None),
            Err(e) => {
                // Without a thread nothing works; keep the window up with the reason.
                let w = Worker::spawn(|| {});
                match w {
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
            model_name: None,
            model_prompted: false,
            model_loading: false,
            decoding: None,
            results: HashMap::new(),
            results_for: (String::new(), 0, None),
            status: None,
            audio: None,
            audio_error_shown: false,
            want_audio: startup.audio,
            path_window: None,
            export_dir: None,
            dialog: None,
            hovered_cell: None,
            cell_views: HashMap::new(),
            show_help: false,
            highlight: None,
            drag_origin: None,
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
                app.model_loading = true;
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

    /// How the grid's runs are decoded: silence tail, prompt (None: the model's default), loop
    /// guard.
    fn decoding_settings(&self) -> Decoding {
        Decoding {
            tail: self.settings.tail,
            prompt: Some(self.settings.prompt.trim())
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            stop_on_loop: self.settings.stop_on_loop,
        }
    }

    fn info(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: true,
        });
    }

    /// The status line (tests read it).
    pub fn status_text(&self) -> Option<&str> {
        self.status.as_ref().map(|s| s.text.as_str())
    }

    pub fn open_clip(&mut self, path: PathBuf) {
        let job = self.next_job;
        self.next_job += 1;
        self.worker.cancel();
        self.decoding = None;
        self.info(format!("opening {}…", path.display()));
        self.worker.send(Request::OpenClip { job, path });
        // The old clip stays on screen until the new one loads; answers for `job` count.
        self.pending_clip_job = Some(job);
    }

    pub fn load_model(&mut self, dir: PathBuf) {
        self.model_loading = true;
        self.info(format!("loading model {}…", dir.display()));
        self.worker.send(Request::LoadModel(dir));
    }

    /// Whether the worker is still decoding (tests wait on it).
    pub fn busy(&self) -> bool {
        self.model_loading || self.decoding.as_ref().is_some_and(|d| d.running)
    }

    /// Results filled in so far, by cell key.
    pub fn result_count(&self) -> usize {
        self.results.len()
    }

    /// Cells of the current grid, in grid order.
    fn grid_specs(&self) -> Vec<RunSpec> {
        let keeps = compare::keeps(self.current_keep());
        let mut specs = Vec::new();
        for m in compare::methods(&self.settings.extensions) {
            for (c, &k) in keeps.iter().enumerate() {
                if let Some(s) = compare::cell(m, k, c) {
                    specs.push(s);
                }
            }
        }
        specs
    }

    fn current_keep(&self) -> f64 {
        (self.settings.keep_percent.round() / 100.0).clamp(0.01, 1.0)
    }

    fn spt(&self) -> f64 {
        self.clip
            .as_ref()
            .and_then(|c| c.scores.as_ref())
            .map_or(0.02, |s| s.spt)
    }

    fn params(&self) -> Params {
        Params {
            keep: self.current_keep(),
            ..self.settings.params(self.spt())
        }
    }

    /// Grid cells whose result is missing; when any, cancels stale work and asks for them,
    /// the slider's own setting first.
    fn request_missing(&mut self) {
        let Some(clip) = &self.clip else { return };
        let Some(scores) = &clip.scores else { return };
        let cache_for = (
            scores.model.clone(),
            clip.job,
            self.decoding_settings().prompt,
        );
        if self.results_for != cache_for {
            // Other model, clip or prompt: every cell is stale, and so is the record of what
            // was last asked (its cell keys do not say which prompt they were for).
            self.results.clear();
            self.results_for = cache_for;
            if self.decoding.as_ref().is_some_and(|d| d.running) {
                self.worker.cancel();
            }
            self.decoding = None;
        }
        let params = self.params();
        let decoding = self.decoding_settings();
        let current = RunSpec {
            method: RunMethod::Prune(self.settings.method),
            keep: self.current_keep(),
        };
        let mut specs = self.grid_specs();
        if !specs.contains(&current) {
            specs.push(current.clone());
        }
        let missing: Vec<RunSpec> = compare::prioritise(specs, Some(&current))
            .into_iter()
            .filter(|s| {
                !self
                    .results
                    .contains_key(&compare::cell_key(s, &params, &decoding))
            })
            .collect();
        let keys: Vec<String> = missing
            .iter()
            .map(|s| compare::cell_key(s, &params, &decoding))
            .collect();
        // The request in flight covers every missing cell (it fills them in as it goes), or
        // the last one was cancelled by the user or failed: do not ask again until the
        // settings ask for something new.
        if self
            .decoding
            .as_ref()
            .is_some_and(|d| keys.iter().all(|k| d.keys.contains(k)))
        {
            return;
        }
        if missing.is_empty() {
            if self.decoding.as_ref().is_some_and(|d| d.running) {
                self.worker.cancel();
            }
            self.decoding = None;
            return;
        }
        let job = self.next_job;
        self.next_job += 1;
        self.worker.cancel();
        self.decoding = Some(InFlight {
            job,
            of: missing.len(),
            keys,
            done: 0,
            running: true,
        });
        // The slider's own setting decodes alone first, so it shows without waiting for the
        // batch of the rest.
        let first = usize::from(missing.first() == Some(&current));
        self.worker.send(Request::Decode {
            job,
            runs: missing,
            first,
            params,
            decoding,
        });
    }

    fn handle_events(&mut self, ctx: &egui::Context) {
        while let Some(e) = self.worker.try_recv() {
            match e {
                Event::ModelLoaded {
                    name,
                    dir,
                    prompted,
                } => {
                    self.model_loading = false;
                    self.info(format!("model: {name}"));
                    self.model_name = Some(name);
                    self.model_prompted = prompted;
                    if let Some(d) = dir {
                        push_recent(&mut self.settings.recent_models, &d);
                        self.settings.last_model = Some(d);
                    }
                }
                Event::ModelFailed { message, .. } => {
                    self.model_loading = false;
                    self.error(message);
                }
                Event::ClipLoaded {
                    job,
                    path,
                    samples,
                    spectrogram,
                } => {
                    if !self.is_clip_job(job) {
                        continue;
                    }
                    self.pending_clip_job = None;
                    let duration = samples.len() as f64 / f64::from(crate::SAMPLE_RATE);
                    push_recent(&mut self.settings.recent_clips, &path);
                    let texture = Some(spectrogram_texture(ctx, &spectrogram));
                    if let Some(a) = &self.audio {
                        a.set_clip(samples.clone());
                    }
                    self.info(format!("{}: {duration:.2} s", path.display()));
                    self.clip = Some(Clip {
                        job,
                        path,
                        summary: lanes::wave_summary(&samples),
                        samples,
                        texture,
                        duration,
                        scores: None,
                        view: View::full(duration),
                        playback: Playback {
                            looping: self.settings.looping,
                            ..Playback::new(duration)
                        },
                    });
                    self.highlight = None;
                }
                Event::ClipFailed { job, message, .. } => {
                    if self.is_clip_job(job) {
                        self.pending_clip_job = None;
                        self.error(message);
                    }
                }
                Event::ClipEncoded {
                    job,
                    report,
                    keys,
                    key_dim,
                    windows,
                } => {
                    let ClipReport {
                        model,
                        clip: ClipInfo { analyzed_s, .. },
                        tokens:
                            TokenInfo {
                                seconds_per_token, ..
                            },
                        scores,
                        encode_ms,
                    } = report;
                    let Some(clip) = self.clip.as_mut().filter(|c| c.job == job) else {
                        continue;
                    };
                    if analyzed_s + 1e-6 < clip.duration {
                        let msg = format!(
                            "{model} reads the first {analyzed_s:.0} s of this {:.1} s clip",
                            clip.duration
                        );
                        self.status = Some(Status {
                            text: msg,
                            error: false,
                        });
                    }
                    let max = scores
                        .iter()
                        .copied()
                        .filter(|x| x.is_finite())
                        .fold(0.0f32, f32::max);
                    let norm = scores
                        .iter()
                        .map(|&s| {
                            if max > 0.0 && s.is_finite() {
                                s / max
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let top = prune::rank(&scores).into_iter().take(10).collect();
                    clip.scores = Some(Scores {
                        model,
                        raw: scores,
                        norm,
                        keys,
                        key_dim,
                        windows: windows.iter().map(|w| w.0).collect(),
                        top,
                        spt: seconds_per_token,
                        encode_ms,
                        analyzed_s,
                    });
                    self.highlight = None;
                    self.decoding = None;
                }
                Event::Progress { job, done, of } => {
                    if let Some(d) = self.decoding.as_mut().filter(|d| d.job == job) {
                        d.done = done;
                        d.of = of;
                    }
                }
                Event::CellDone { job, index, result } => {
                    if let Some(d) = self.decoding.as_mut().filter(|d| d.job == job) {
                        if let Some(k) = d.keys.get(index) {
                            self.results.insert(k.clone(), result);
                        }
                    }
                }
                Event::DecodeFinished {
                    job,
                    cancelled,
                    elapsed_ms,
                } => {
                    if let Some(d) = self.decoding.as_mut().filter(|d| d.job == job) {
                        d.running = false;
                        if cancelled {
                            self.info("decoding cancelled");
                        } else {
                            let n = d.keys.len();
                            self.info(format!("decoded {n} setting(s) in {elapsed_ms:.0} ms"));
                        }
                    }
                }
                Event::DecodeFailed { job, message } => {
                    if let Some(d) = self.decoding.as_mut().filter(|d| d.job == job) {
                        d.running = false;
                        self.error(message);
                    }
                }
            }
        }
    }

    fn is_clip_job(&self, job: u64) -> bool {
        self.pending_clip_job == Some(job) || self.clip.as_ref().is_some_and(|c| c.job == job)
    }

    /// Recomputes the lane's selection when its inputs changed (same frame as a slider move).
    fn update_highlight(&mut self) {
        let Some(scores) = self.clip.as_ref().and_then(|c| c.scores.as_ref()) else {
            return;
        };
        let hovered = self
            .hovered_cell
            .as_ref()
            .and_then(|k| self.results.get(k).map(|r| (k.clone(), r.clone())));
        let params = self.params();
        let n = scores.raw.len();
        let (key, result) = match hovered {
            Some((k, r)) => {
                let key = format!("cell {k}");
                if self.highlight.as_ref().is_some_and(|h| h.key == key) {
                    return;
                }
                let method = Method::parse(&r.method).unwrap_or(Method::Full);
                (
                    key,
                    Ok(Selection {
                        method,
                        k: r.k,
                        segments: r.segments,
                        kept: r.kept.clone(),
                        merged: Vec::new(),
                    }),
                )
            }
            None => {
                let key = format!("{:?} {:?}", self.settings.method, params);
                if self.highlight.as_ref().is_some_and(|h| h.key == key) {
                    return;
                }
                let keys = prune::Keys {
                    data: &scores.keys,
                    dim: scores.key_dim,
                };
                let r = prune::select(self.settings.method, &scores.raw, Some(keys), &params)
                    .map_err(|e| e.to_string());
                (key, r)
            }
        };
        let mut kept_mask = vec![false; n];
        let mut bounds = Vec::new();
        if let Ok(sel) = &result {
            for &t in &sel.kept {
                if let Some(m) = kept_mask.get_mut(t) {
                    *m = true;
                }
            }
            for c in &sel.merged {
                for &(j, _) in &c.parts {
                    if let Some(m) = kept_mask.get_mut(j) {
                        *m = true;
                    }
                }
            }
            bounds = match (sel.method, sel.segments) {
                (Method::Window, Some(_)) => (0..n).step_by(params.window_tokens).collect(),
                (_, Some(s)) if s > 0 => prune::segment_bounds(n, s),
                _ => Vec::new(),
            };
        }
        self.highlight = Some(Highlight {
            key,
            result,
            kept_mask,
            bounds,
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
    }

    /// For scripts: create `path` once every output of the grid is in.
    pub fn set_ready_file(&mut self, path: PathBuf) {
        self.ready_file = Some(path);
    }

    /// For scripts: where the playhead goes once the clip is encoded.
    pub fn set_initial_seek(&mut self, t: f64) {
        self.initial_seek = Some(t);
    }

    fn script_hooks(&mut self) {
        if !self.encoded() {
            return;
        }
        if let Some(t) = self.initial_seek.take() {
            self.seek(t);
        }
        let params = self.params();
        let complete = !self.busy()
            && self.grid_specs().iter().all(|s| {
                self.results
                    .contains_key(&compare::cell_key(s, &params, &self.decoding_settings()))
            });
        if complete {
            if let Some(p) = self.ready_file.take() {
                if let Err(e) = std::fs::write(&p, b"ready\n") {
                    self.error(format!("cannot write {}: {e}", p.display()));
                }
            }
        }
    }

    /// Moves the playhead (tests, scripts).
    pub fn seek(&mut self, t: f64) {
        if let Some(c) = &mut self.clip {
            c.playback.seek(t);
        }
        self.sync_audio();
    }

    /// Sets the selection (tests, scripts).
    pub fn select_range(&mut self, a: f64, b: f64) {
        if let Some(c) = &mut self.clip {
            c.playback.select(a, b);
        }
    }

    /// Whether the clip has its scores.
    pub fn encoded(&self) -> bool {
        self.clip.as_ref().is_some_and(|c| c.scores.is_some())
    }

    /// Everything a frame does before drawing.
    fn prepare(&mut self, ctx: &egui::Context) {
        if self.ctx_cell.get().is_none() {
            let _ = self.ctx_cell.set(ctx.clone());
            theme::apply(ctx);
        }
        if self.want_audio {
            self.want_audio = false;
            match AudioOut::open() {
                Ok(a) => {
                    if let Some(c) = &self.clip {
                        a.set_clip(c.samples.clone());
                    }
                    self.audio = Some(a);
                }
                Err(e) => {
                    if !self.audio_error_shown {
                        self.audio_error_shown = true;
                        self.error(format!(
                            "audio output unavailable ({e}); everything else works"
                        ));
                    }
                }
            }
        }
        self.handle_events(ctx);
        self.poll_dialog();
        self.handle_drops(ctx);
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

        let pending = std::mem::take(&mut self.pending);
        for c in pending {
            self.apply(c, &ctx);
        }
        if self.busy() || self.clip.as_ref().is_some_and(|c| c.playback.playing) {
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

    fn tick_playback(&mut self, ctx: &egui::Context) {
        let dt = f64::from(ctx.input(|i| i.stable_dt)).min(0.1);
        let follow = self.settings.follow;
        let Some(clip) = &mut self.clip else { return };
        let pb = &mut clip.playback;
        if !pb.playing {
            return;
        }
        match &self.audio {
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
        let (Some(a), Some(c)) = (&self.audio, &self.clip) else {
            return;
        };
        if c.playback.playing {
            let (_, hi) = c.playback.range();
            a.play(c.playback.position, hi);
        } else {
            a.stop();
        }
    }

    fn apply(&mut self, c: Command, ctx: &egui::Context) {
        let duration = self.clip.as_ref().map_or(0.0, |c| c.duration);
        match c {
            Command::OpenClip => self.start_dialog(PathTarget::Clip),
            Command::OpenModel => self.start_dialog(PathTarget::Model),
            Command::OpenPath => self.path_window = Some((PathTarget::Clip, String::new(), None)),
            Command::Export => {
                let dir = self
                    .clip
                    .as_ref()
                    .and_then(|c| c.path.parent())
                    .map(|p| p.join("prunescope-export").display().to_string())
                    .unwrap_or_else(|| "prunescope-export".into());
                self.export_dir = Some(dir);
            }
            Command::CancelDecode => {
                if self.decoding.as_ref().is_some_and(|d| d.running) {
                    self.worker.cancel();
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
            _ => {
                let Some(clip) = &mut self.clip else { return };
                match c {
                    Command::PlayPause => clip.playback.toggle(),
                    Command::PlaySelection => clip.playback.play_selection(),
                    Command::ClearSelection => clip.playback.selection = None,
                    Command::StepBack => clip.playback.step(-0.5),
                    Command::StepForward => clip.playback.step(0.5),
                    Command::ZoomIn => {
                        let anchor = clip.playback.position;
                        clip.view.zoom(0.5, anchor, duration);
                    }
                    Command::ZoomOut => {
                        let anchor = clip.playback.position;
                        clip.view.zoom(2.0, anchor, duration);
                    }
                    Command::ZoomFit => clip.view = View::full(duration),
                    _ => {}
                }
                self.sync_audio();
            }
        }
        ctx.request_repaint();
    }

    /// Opens the system file dialog on a helper thread (it may block for as long as the user
    /// browses). If it returns nothing at once, there is no dialog backend: the path field
    /// takes over.
    fn start_dialog(&mut self, target: PathTarget) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ctx = self.ctx_cell.get().cloned();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let d = rfd::FileDialog::new();
                let picked = match target {
                    PathTarget::Clip => d
                        .add_filter(
                            "audio",
                            &[
                                "wav", "flac", "mp3", "ogg", "m4a", "mp4", "aac", "webm", "mkv",
                            ],
                        )
                        .pick_file(),
                    PathTarget::Model => d.pick_folder(),
                };
                let _ = tx.send(picked);
                if let Some(c) = ctx {
                    c.request_repaint();
                }
            });
        match spawned {
            Ok(_) => self.dialog = Some((target, Instant::now(), rx)),
            Err(_) => self.path_window = Some((target, String::new(), None)),
        }
    }

    fn poll_dialog(&mut self) {
        let Some((target, started, rx)) = &self.dialog else {
            return;
        };
        let Ok(picked) = rx.try_recv() else { return };
        let (target, quick) = (*target, started.elapsed() < Duration::from_millis(400));
        self.dialog = None;
        match picked {
            Some(p) => self.open_path(target, p),
            None if quick => {
                self.path_window = Some((
                    target,
                    String::new(),
                    Some("No file dialog is available on this system: type the path.".into()),
                ))
            }
            None => {}
        }
    }

    fn open_path(&mut self, target: PathTarget, p: PathBuf) {
        match target {
            PathTarget::Clip => self.open_clip(p),
            PathTarget::Model => self.load_model(p),
        }
    }

    fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for p in dropped {
            if p.is_dir() {
                self.load_model(p);
            } else {
                self.open_clip(p);
            }
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            for (menu, title) in [
                (Menu::File, "File"),
                (Menu::Playback, "Playback"),
                (Menu::View, "View"),
            ] {
                ui.menu_button(title, |ui| {
                    for c in COMMANDS.iter().filter(|c| c.menu == menu) {
                        let mut b = egui::Button::new(c.name);
                        if let Some(s) = &c.shortcut {
                            b = b.shortcut_text(ui.ctx().format_shortcut(s));
                        }
                        let checked = match c.command {
                            Command::ToggleFollow => Some(self.settings.follow),
                            Command::ToggleLoop => Some(self.settings.looping),
                            _ => None,
                        };
                        let b = match checked {
                            Some(true) => b.right_text("on"),
                            _ => b,
                        };
                        if ui.add(b).clicked() {
                            self.pending.push(c.command);
                            ui.close();
                        }
                    }
                    if menu == Menu::File {
                        ui.separator();
                        self.recent_menus(ui);
                    }
                });
            }
            ui.add_space(16.0);
            let title = self
                .clip
                .as_ref()
                .and_then(|c| c.path.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "no clip".into());
            ui.label(RichText::new(title).strong().color(theme::TEXT));
            ui.label(
                RichText::new(match (&self.model_name, self.model_loading) {
                    (_, true) => "loading model…".to_string(),
                    (Some(m), false) => m.clone(),
                    (None, false) => "no model".into(),
                })
                .color(theme::TEXT_DIM),
            );
        });
    }

    fn recent_menus(&mut self, ui: &mut egui::Ui) {
        let clips = self.settings.recent_clips.clone();
        ui.menu_button("Recent clips", |ui| {
            if clips.is_empty() {
                ui.label("none yet");
            }
            for p in clips {
                if ui.button(p.display().to_string()).clicked() {
                    self.open_clip(p);
                    ui.close();
                }
            }
        });
        let models = self.settings.recent_models.clone();
        ui.menu_button("Recent models", |ui| {
            if models.is_empty() {
                ui.label("none yet");
            }
            for p in models {
                if ui.button(p.display().to_string()).clicked() {
                    self.load_model(p);
                    ui.close();
                }
            }
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(d) = &self.decoding {
                if d.running {
                    let done = d
                        .keys
                        .iter()
                        .filter(|k| self.results.contains_key(*k))
                        .count();
                    ui.add(
                        egui::ProgressBar::new(done as f32 / d.keys.len().max(1) as f32)
                            .desired_width(160.0)
                            .text(format!("decoding {done}/{}", d.keys.len())),
                    );
                    if ui.button("Cancel").clicked() {
                        self.pending.push(Command::CancelDecode);
                    }
                }
            }
            if self.model_loading {
                ui.spinner();
            }
            if let Some(s) = &self.status {
                let colour = if s.error {
                    theme::ERROR
                } else {
                    theme::TEXT_DIM
                };
                ui.label(RichText::new(&s.text).color(colour));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let mut recent: Vec<f32> = self.frame_ms.iter().rev().take(120).copied().collect();
                recent.sort_by(f32::total_cmp);
                let median = recent.get(recent.len() / 2).copied().unwrap_or(0.0);
                let worst = recent.last().copied().unwrap_or(0.0);
                ui.label(
                    RichText::new(format!("ui frame {median:.1} ms (max {worst:.1})"))
                        .small()
                        .color(theme::TEXT_DIM),
                );
                ui.label(RichText::new("F1 shortcuts").small().color(theme::TEXT_DIM));
            });
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("Pruning");
        ui.add_space(4.0);
        egui::ComboBox::from_label("Method")
            .selected_text(self.settings.method.name())
            .show_ui(ui, |ui| {
                for m in Method::ALL {
                    ui.selectable_value(&mut self.settings.method, m, m.name());
                }
            });
        ui.add(
            egui::Slider::new(&mut self.settings.keep_percent, 1.0..=100.0)
                .step_by(1.0)
                .suffix(" %")
                .text("Keep"),
        );
        ui.add(egui::Slider::new(&mut self.settings.segments, 1..=50).text("S"));
        ui.horizontal(|ui| {
            ui.label("Segments");
            ui.selectable_value(&mut self.settings.mode, SegmentMode::Paper, "paper");
            ui.selectable_value(&mut self.settings.mode, SegmentMode::Exact, "exact");
        });
        ui.add(egui::DragValue::new(&mut self.settings.seed).prefix("seed "));
        let prompted = self.model_prompted;
        ui.add_enabled_ui(!prompted, |ui| tail_ui(ui, &mut self.settings.tail))
            .response
            .on_disabled_hover_text("Qwen2-Audio and Audio Flamingo 3 take no silence tail");
        ui.checkbox(&mut self.settings.stop_on_loop, "Stop on loop")
            .on_hover_text("End each decode where it starts repeating itself and keep the text before the repeats (the cell is still marked as a loop). Off: the plain greedy decode.");
        ui.horizontal(|ui| {
            ui.label("Prompt");
            ui.add_enabled(
                prompted,
                egui::TextEdit::singleline(&mut self.settings.prompt)
                    .hint_text("Describe the audio.")
                    .desired_width(220.0),
            )
            .on_hover_text("Text after the audio in the chat prompt, e.g. a question (empty: the model's default)")
            .on_disabled_hover_text("Whisper transcribes: only Qwen2-Audio and Audio Flamingo 3 take a prompt");
        });
        ui.add(
            egui::Slider::new(&mut self.settings.gamma, 0.0..=4.0)
                .step_by(0.1)
                .text("Adaptive γ"),
        );
        ui.add(
            egui::Slider::new(&mut self.settings.window_seconds, 0.5..=10.0)
                .step_by(0.5)
                .suffix(" s")
                .text("Window"),
        );
        ui.add_space(6.0);
        ui.label(RichText::new("Extensions in the grid").color(theme::TEXT_DIM));
        ui.horizontal_wrapped(|ui| {
            for m in compare::EXTENSIONS {
                let mut on = self.settings.extensions.contains(&m);
                if ui.checkbox(&mut on, m.name()).changed() {
                    self.settings.extensions.retain(|x| *x != m);
                    if on {
                        self.settings.extensions.push(m);
                    }
                }
            }
        });
        ui.separator();
        ui.label(RichText::new("Reference transcript (for WER)").color(theme::TEXT_DIM));
        ui.add(
            egui::TextEdit::multiline(&mut self.settings.reference)
                .desired_rows(3)
                .hint_text("optional"),
        );
        ui.separator();
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.settings.follow, "Follow playhead");
            if ui.checkbox(&mut self.settings.looping, "Loop").changed() {
                if let Some(c) = &mut self.clip {
                    c.playback.looping = self.settings.looping;
                }
            }
        });
    }

    fn selection_summary(&mut self, ui: &mut egui::Ui) {
        let n = self
            .clip
            .as_ref()
            .and_then(|c| c.scores.as_ref())
            .map_or(0, |s| s.raw.len());
        ui.horizontal(|ui| {
            ui.add_space(theme::LABEL_WIDTH);
            match self.highlight.as_ref().map(|h| &h.result) {
                Some(Ok(sel)) => {
                    ui.label(
                        RichText::new(format!("Kept {} of {n} tokens", sel.kept.len()))
                            .color(theme::KEPT)
                            .strong(),
                    );
                    ui.label(RichText::new(format!("K = {}", sel.k)).color(theme::TEXT));
                    ui.label(
                        RichText::new(match sel.segments {
                            Some(s) => format!("Segments: {s}"),
                            None => "Segments: none".into(),
                        })
                        .color(theme::SEGMENT),
                    );
                    let from = if self.hovered_cell.is_some() {
                        format!("(hovered cell: {})", sel.method.name())
                    } else {
                        format!("({}, current setting)", sel.method.name())
                    };
                    ui.label(RichText::new(from).color(theme::TEXT_DIM));
                }
                Some(Err(e)) => {
                    ui.label(RichText::new(e.as_str()).color(theme::ERROR));
                }
                None => {
                    ui.label(RichText::new("no scores yet").color(theme::TEXT_DIM));
                }
            }
        });
    }

    fn lanes_ui(&mut self, ui: &mut egui::Ui, transport: bool) {
        let Some(clip) = &mut self.clip else {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                ui.heading("Open a clip to begin");
                ui.label("File > Open clip…, drop an audio file on the window, or run `prunescope CLIP`.");
            });
            return;
        };
        let total_h = theme::WAVE_HEIGHT
            + theme::SPEC_HEIGHT
            + theme::ATTENTION_HEIGHT
            + theme::STRIP_HEIGHT
            + theme::AXIS_HEIGHT
            + 4.0 * 4.0;
        let (outer, _) =
            ui.allocate_exact_size(egui::vec2(ui.available_width(), total_h), Sense::hover());
        let lane_x = outer.left() + theme::LABEL_WIDTH;
        let width = outer.right() - lane_x;
        let mut y = outer.top();
        let mut row = |h: f32| {
            let r = egui::Rect::from_min_size(egui::pos2(lane_x, y), egui::vec2(width, h));
            let l = egui::Rect::from_min_size(
                egui::pos2(outer.left(), y),
                egui::vec2(theme::LABEL_WIDTH, h),
            );
            y += h + 4.0;
            (r, l)
        };
        let (wave_r, wave_l) = row(theme::WAVE_HEIGHT);
        let (spec_r, spec_l) = row(theme::SPEC_HEIGHT);
        let (att_r, att_l) = row(theme::ATTENTION_HEIGHT);
        let (strip_r, strip_l) = row(theme::STRIP_HEIGHT);
        let (axis_r, _) = row(theme::AXIS_HEIGHT);
        let lanes_rect = wave_r.union(strip_r);

        let id = ui.scope_id().with("lanes");
        let resp = ui.interact(lanes_rect, id, Sense::click_and_drag());
        let view = clip.view;
        let p = ui.painter_at(outer);

        lanes::lane_background(&p, wave_r, "waveform", wave_l);
        lanes::waveform(&p, wave_r, &view, &clip.samples, &clip.summary);
        lanes::lane_background(&p, spec_r, "log-mel", spec_l);
        if let Some(tex) = &clip.texture {
            lanes::spectrogram(&p, spec_r, &view, tex, clip.duration);
        }
        lanes::lane_background(&p, att_r, "attention", att_l);
        lanes::lane_background(&p, strip_r, "score", strip_l);
        let mut hovered = None;
        if let Some(s) = &clip.scores {
            let n = s.raw.len();
            if let Some(pos) = resp.hover_pos() {
                hovered = lanes::token_at(&view, att_r.union(strip_r), pos, s.spt, n);
            }
            let (mask, bounds): (&[bool], &[usize]) = match &self.highlight {
                Some(h) => (&h.kept_mask, &h.bounds),
                None => (&[], &[]),
            };
            lanes::attention(
                &p,
                att_r,
                &view,
                &lanes::Attention {
                    norm: &s.norm,
                    kept: mask,
                    bounds,
                    windows: &s.windows,
                    top: &s.top,
                    seconds_per_token: s.spt,
                    hovered,
                },
            );
            lanes::strip(&p, strip_r, &view, &s.norm, s.spt);
        } else {
            p.text(
                att_r.center(),
                egui::Align2::CENTER_CENTER,
                if self.model_loading || self.model_name.is_some() {
                    "encoding…"
                } else {
                    "no model loaded"
                },
                egui::FontId::proportional(14.0),
                theme::TEXT_DIM,
            );
        }
        lanes::axis(&p, axis_r, &view);
        lanes::overlays(
            &p,
            lanes_rect,
            &view,
            clip.playback.selection,
            clip.playback.position,
        );

        // Interaction: wheel zooms around the pointer, shift-wheel / horizontal wheel pans,
        // click seeks, primary drag selects, secondary drag pans.
        let mut changed_audio = false;
        if resp.hovered() {
            let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta, i.zoom_delta()));
            if let Some(pos) = resp.hover_pos() {
                let anchor = view.t_of(pos.x, lane_x, width);
                if zoom != 1.0 {
                    clip.view.zoom(1.0 / f64::from(zoom), anchor, clip.duration);
                } else if scroll.y != 0.0 {
                    clip.view
                        .zoom((-f64::from(scroll.y) * 0.003).exp(), anchor, clip.duration);
                }
                if scroll.x != 0.0 {
                    let dt = -f64::from(scroll.x) / f64::from(width) * view.span();
                    clip.view.pan(dt, clip.duration);
                }
            }
        }
        if resp.clicked() {
            if let Some(pos) = resp.interact_pointer_pos() {
                clip.playback.seek(view.t_of(pos.x, lane_x, width));
                clip.playback.selection = None;
                changed_audio = true;
            }
        }
        if resp.drag_started_by(egui::PointerButton::Primary) {
            self.drag_origin = resp
                .interact_pointer_pos()
                .map(|p| view.t_of(p.x, lane_x, width));
        }
        if resp.dragged_by(egui::PointerButton::Primary) {
            if let (Some(a), Some(pos)) = (self.drag_origin, resp.interact_pointer_pos()) {
                clip.playback.select(a, view.t_of(pos.x, lane_x, width));
            }
        }
        if resp.drag_stopped_by(egui::PointerButton::Primary) {
            self.drag_origin = None;
            if let Some((a, _)) = clip.playback.selection {
                clip.playback.seek(a);
                changed_audio = true;
            }
        }
        if resp.dragged_by(egui::PointerButton::Secondary)
            || resp.dragged_by(egui::PointerButton::Middle)
        {
            let dx = resp.drag_delta().x;
            clip.view.pan(
                -f64::from(dx) / f64::from(width) * view.span(),
                clip.duration,
            );
        }
        if let (Some(t), Some(s)) = (hovered, &clip.scores) {
            let kept = self
                .highlight
                .as_ref()
                .and_then(|h| h.kept_mask.get(t).copied())
                .unwrap_or(false);
            resp.on_hover_ui_at_pointer(|ui| {
                ui.label(RichText::new(format!("token {t}")).strong());
                ui.label(format!(
                    "{:.2} s – {:.2} s",
                    t as f64 * s.spt,
                    (t + 1) as f64 * s.spt
                ));
                ui.label(format!("score {:.5}", s.raw[t]));
                ui.label(format!("normalised {:.3}", s.norm[t]));
                ui.label(
                    RichText::new(if kept { "kept" } else { "dropped" }).color(if kept {
                        theme::KEPT
                    } else {
                        theme::TEXT_DIM
                    }),
                );
            });
        }
        if changed_audio {
            self.sync_audio();
        }
        if !transport {
            return;
        }
        ui.horizontal(|ui| {
            ui.add_space(theme::LABEL_WIDTH);
            self.transport(ui);
        });
    }

    fn transport(&mut self, ui: &mut egui::Ui) {
        let Some(clip) = &self.clip else { return };
        let playing = clip.playback.playing;
        if ui
            .button(if playing { "Pause" } else { "Play" })
            .on_hover_text("Space")
            .clicked()
        {
            self.pending.push(Command::PlayPause);
        }
        if clip.playback.selection.is_some() && ui.button("Play selection").clicked() {
            self.pending.push(Command::PlaySelection);
        }
        ui.label(
            RichText::new(format!(
                "{:.2} / {:.2} s",
                clip.playback.position, clip.duration
            ))
            .monospace(),
        );
        if let Some((a, b)) = clip.playback.selection {
            ui.label(RichText::new(format!("selection {a:.2}–{b:.2} s")).color(theme::TEXT_DIM));
        }
        ui.separator();
        legend(ui, theme::KEPT, "kept");
        legend(ui, theme::DROPPED, "dropped");
        legend(ui, theme::SEGMENT, "segment");
        legend(ui, theme::TOP, "top 10");
        if let Some(s) = &clip.scores {
            if s.windows.len() > 1 {
                legend(ui, theme::WINDOW, "window");
            }
            ui.label(
                RichText::new(format!(
                    "{} tokens · encoder {:.0} ms",
                    s.raw.len(),
                    s.encode_ms
                ))
                .color(theme::TEXT_DIM),
            );
        }
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui) {
        let Some(clip) = &self.clip else { return };
        if clip.scores.is_none() {
            return;
        }
        let params = self.params();
        let decoding = self.decoding_settings();
        let keeps = compare::keeps(self.current_keep());
        let full_key = compare::cell_key(
            &RunSpec {
                method: RunMethod::Prune(Method::Full),
                keep: 1.0,
            },
            &params,
            &decoding,
        );
        let full_text = self.results.get(&full_key).map(|r| r.text.clone());
        let reference = self.settings.reference.trim().to_string();
        let mut hovered = None;
        let method_w = 96.0;
        // Per column: grid spacing (6) + the frame's inner margins (12), and room for the scroll bar.
        let cell_w =
            ((ui.available_width() - method_w - 16.0) / keeps.len() as f32 - 20.0).max(120.0);
        egui::ScrollArea::vertical()
            .id_salt("grid")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::Grid::new("outputs")
                    .spacing([6.0, 6.0])
                    .min_col_width(method_w)
                    .show(ui, |ui| {
                        ui.label(RichText::new("method").strong());
                        for &k in &keeps {
                            let current = (k - self.current_keep()).abs() < 1e-9;
                            let t = format!("keep {:.0} %", k * 100.0);
                            ui.label(if current {
                                RichText::new(format!("{t} (slider)"))
                                    .strong()
                                    .color(theme::KEPT)
                            } else {
                                RichText::new(t).strong()
                            });
                        }
                        ui.end_row();
                        for m in compare::methods(&self.settings.extensions) {
                            ui.label(RichText::new(m.name()).monospace());
                            for (c, &k) in keeps.iter().enumerate() {
                                let Some(spec) = compare::cell(m, k, c) else {
                                    ui.label("");
                                    continue;
                                };
                                let key = compare::cell_key(&spec, &params, &decoding);
                                let result = self.results.get(&key);
                                let view = result.map(|r| {
                                    let full = full_text.as_deref();
                                    let fresh = self
                                        .cell_views
                                        .get(&key)
                                        .is_some_and(|v| v.is_for(&r.text, full, &reference));
                                    if !fresh {
                                        let is_full = m == RunMethod::Prune(Method::Full);
                                        self.cell_views.insert(
                                            key.clone(),
                                            CellView::new(r, full, &reference, is_full),
                                        );
                                    }
                                    (r, &self.cell_views[&key])
                                });
                                let r = cell_ui(ui, cell_w, view);
                                if r.hovered() {
                                    hovered = Some(key);
                                }
                            }
                            ui.end_row();
                        }
                    });
            });
        if hovered != self.hovered_cell {
            self.hovered_cell = hovered;
            self.highlight = None;
            ui.ctx().request_repaint();
        }
    }

    fn windows(&mut self, ctx: &egui::Context) {
        if self.show_help {
            let mut open = true;
            egui::Window::new("Keyboard shortcuts")
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    egui::Grid::new("help").striped(true).show(ui, |ui| {
                        for c in COMMANDS {
                            ui.label(c.name);
                            ui.label(
                                c.shortcut
                                    .map(|s| ctx.format_shortcut(&s))
                                    .unwrap_or_default(),
                            );
                            ui.end_row();
                        }
                        ui.label("Wheel / pinch");
                        ui.label("zoom");
                        ui.end_row();
                        ui.label("Right-drag / shift-wheel");
                        ui.label("pan");
                        ui.end_row();
                        ui.label("Click / drag on lanes");
                        ui.label("seek / select");
                        ui.end_row();
                    });
                });
            self.show_help = open;
        }
        if let Some((target, mut text, note)) = self.path_window.take() {
            let mut open = true;
            let mut submit = false;
            let title = match target {
                PathTarget::Clip => "Open clip",
                PathTarget::Model => "Open model directory",
            };
            egui::Window::new(title)
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    if let Some(n) = &note {
                        ui.label(RichText::new(n).color(theme::TEXT_DIM));
                    }
                    let r = ui.add(
                        egui::TextEdit::singleline(&mut text)
                            .desired_width(420.0)
                            .hint_text("/path/to/file"),
                    );
                    if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        submit = true;
                    }
                    if ui.button("Open").clicked() {
                        submit = true;
                    }
                });
            if submit && !text.trim().is_empty() {
                self.open_path(target, PathBuf::from(text.trim()));
            } else if open {
                self.path_window = Some((target, text, note));
            }
        }
        if let Some(mut dir) = self.export_dir.take() {
            let mut open = true;
            let mut go = false;
            egui::Window::new("Export")
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    ui.label("Writes the attention lane (PNG), scores and outputs (CSV), and the analyze --json document into:");
                    ui.add(egui::TextEdit::singleline(&mut dir).desired_width(420.0));
                    go = ui.button("Export").clicked();
                });
            if go {
                match self.export(Path::new(dir.trim())) {
                    Ok(files) => {
                        self.info(format!("wrote {} files to {}", files.len(), dir.trim()))
                    }
                    Err(e) => self.error(e),
                }
            } else if open {
                self.export_dir = Some(dir);
            }
        }
    }

    /// Writes the exports into `dir`; returns the paths written.
    pub fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        let clip = self.clip.as_ref().ok_or("no clip to export")?;
        let s = clip.scores.as_ref().ok_or("the clip has no scores yet")?;
        let (mask, bounds): (&[bool], &[usize]) = match &self.highlight {
            Some(h) => (&h.kept_mask, &h.bounds),
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
        let mut runs: Vec<RunResult> = Vec::new();
        let params = self.params();
        for spec in self.grid_specs() {
            if let Some(r) = self.results.get(&compare::cell_key(
                &spec,
                &params,
                &self.decoding_settings(),
            )) {
                runs.push(r.clone());
            }
        }
        let reference = self.settings.reference.clone();
        let outputs = export::outputs_csv(&runs, |r| compare::wer(&reference, &r.text));
        let scores = export::scores_csv(&s.raw, &s.norm, mask, bounds, s.spt);
        let analysis = Analysis {
            report: ClipReport {
                model: s.model.clone(),
                clip: ClipInfo {
                    path: clip.path.display().to_string(),
                    duration_s: clip.duration,
                    windows: s.windows.len(),
                    analyzed_s: s.analyzed_s,
                },
                tokens: TokenInfo {
                    count: s.raw.len(),
                    seconds_per_token: s.spt,
                },
                scores: s.raw.clone(),
                encode_ms: s.encode_ms,
            },
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

/// The silence-tail control: a token count, or the window's whole padding.
fn tail_ui(ui: &mut egui::Ui, tail: &mut Tail) {
    ui.horizontal(|ui| {
        let mut whole = *tail == Tail::WindowEnd;
        let mut n = match *tail {
            Tail::Tokens(n) => n,
            Tail::WindowEnd => 1500,
        };
        ui.add_enabled(!whole, egui::Slider::new(&mut n, 0..=600).text("Silence tail"))
            .on_hover_text("Padding tokens after each window's kept tokens (Whisper): the decoder sees where the audio ends. 150 (3 s) by default.");
        ui.checkbox(&mut whole, "to 30 s")
            .on_hover_text("All of the window's padding, as the unpruned model sees it");
        *tail = if whole { Tail::WindowEnd } else { Tail::Tokens(n) };
    });
}

fn legend(ui: &mut egui::Ui, colour: Color32, name: &str) {
    let (r, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), Sense::hover());
    ui.painter().rect_filled(r, 2.0, colour);
    ui.label(RichText::new(name).color(theme::TEXT_DIM));
}

/// One grid cell: text with its word diff against the full-token output, then K, time, WER.
fn cell_ui(
    ui: &mut egui::Ui,
    width: f32,
    result: Option<(&RunResult, &CellView)>,
) -> egui::Response {
    let frame = egui::Frame::new()
        .fill(theme::LANE_BG)
        .corner_radius(4.0)
        .inner_margin(6.0);
    let inner = frame.show(ui, |ui| {
        ui.set_width(width);
        ui.set_min_height(48.0);
        ui.vertical(|ui| match result {
            None => {
                ui.label(RichText::new("…").color(theme::TEXT_DIM));
            }
            Some((r, view)) => {
                let mut job = egui::text::LayoutJob::default();
                let font = egui::FontId::proportional(13.0);
                let fmt = |c: Color32, strike: bool| egui::TextFormat {
                    font_id: font.clone(),
                    color: c,
                    strikethrough: if strike {
                        egui::Stroke::new(1.0, c)
                    } else {
                        egui::Stroke::NONE
                    },
                    ..Default::default()
                };
                // Words of the output in order; those in a loop's repeated tail are dimmed.
                let mut looped = view.looped.iter().copied();
                let dim = |c: Color32, looped: bool| {
                    if looped {
                        c.gamma_multiply(0.45)
                    } else {
                        c
                    }
                };
                match &view.diff {
                    Some(diff) => {
                        for d in diff {
                            let (w, c, strike) = match d {
                                Diff::Same(w) => (w, theme::TEXT, false),
                                Diff::Added(w) => (w, theme::DIFF_ADDED, false),
                                Diff::Removed(w) => (w, theme::DIFF_REMOVED, true),
                            };
                            let in_loop = !strike && looped.next().unwrap_or(false);
                            job.append(w, 0.0, fmt(dim(c, in_loop), strike));
                            job.append(" ", 0.0, fmt(theme::TEXT, false));
                        }
                    }
                    None => {
                        for w in r.text.split_whitespace() {
                            let c = dim(theme::TEXT, looped.next().unwrap_or(false));
                            job.append(w, 0.0, fmt(c, false));
                            job.append(" ", 0.0, fmt(theme::TEXT, false));
                        }
                    }
                }
                job.wrap.max_width = width;
                if r.looped {
                    ui.horizontal(|ui| {
                        let (badge, tip) = if r.stopped_on_loop {
                            ("loop · cut", "The decoder started repeating itself; the stop-on-loop guard ended the run there and kept the text before the repeats.")
                        } else {
                            ("loop", "The decoder looped: it hit its token cap, repeated itself back to back (dimmed), or its text compresses above 2.4 as Whisper's hallucination test says.")
                        };
                        egui::Frame::new()
                            .fill(theme::ERROR.gamma_multiply(0.35))
                            .corner_radius(3.0)
                            .inner_margin(egui::Margin::symmetric(4, 0))
                            .show(ui, |ui| {
                                ui.label(RichText::new(badge).small().strong().color(theme::TEXT))
                            })
                            .response
                            .on_hover_text(tip);
                    });
                }
                ui.add(egui::Label::new(job).wrap());
                let mut meta = format!("K {} · {:.0} ms", r.k, r.decode_ms);
                if let Some(s) = r.segments {
                    meta += &format!(" · S {s}");
                }
                if let Some(w) = view.wer {
                    meta += &format!(" · WER {:.0} %", w * 100.0);
                }
                ui.label(RichText::new(meta).small().color(theme::TEXT_DIM));
            }
        });
    });
    inner.response.interact(Sense::hover())
}

/// The spectrogram as a texture, at most 4096 columns wide (max-pooled in time).
fn spectrogram_texture(ctx: &egui::Context, s: &Spectrogram) -> egui::TextureHandle {
    let cols = s.frames.clamp(1, 4096);
    let rows = s.n_mels.max(1);
    let mut pixels = vec![theme::LANE_BG; cols * rows];
    if s.frames > 0 && s.n_mels > 0 {
        for (c, px_col) in (0..cols).map(|c| (c, c * s.frames / cols)) {
            let end = ((c + 1) * s.frames / cols).max(px_col + 1);
            for m in 0..rows {
                let v = s.data[m * s.frames + px_col..m * s.frames + end]
                    .iter()
                    .fold(f32::MIN, |a, &b| a.max(b));
                // Whisper's log-mel lies in about [-1, 1.5]; low bins at the bottom.
                pixels[(rows - 1 - m) * cols + c] = theme::ramp((v + 1.0) / 2.2);
            }
        }
    }
    let img = egui::ColorImage::new([cols, rows], pixels);
    ctx.load_texture("spectrogram", img, TextureOptions::LINEAR)
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
