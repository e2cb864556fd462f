//! What was computed, opened again with no model: an analysis or a workspace becomes the clip
//! on screen with the document's scores and cells (its audio decoded beside, when found); an
//! eval run becomes the corpus page, whose clips open the same way from their stored outputs.
//! Saving a workspace, and handing a document's clip to a model that computes what the
//! document lacks, are here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ExplorerApp;
use crate::document::workspace::{ExplorerView, Workspace, EMBED_LIMIT};
use crate::document::{self, Located, Opened};
use crate::engine::worker::{ClipSource, OpenClip, Request, Scoring, Spectrogram};
use crate::engine::{Analysis, Decoding, PlanSettings, RunKey, RunMethod, RunSpec};
use crate::eval::by_clip::Table;
use crate::eval::runner::Results;
use crate::prune::{Method, Params};
use crate::scores::LayerScores;
use crate::ui::background::{Loaded, Shown};
use crate::ui::logic::compare;
use crate::ui::logic::corpus;
use crate::ui::logic::pool;
use crate::ui::logic::timeline::{Playback, View};
use crate::ui::state::{Clip, Corpus, DocAudio, FromDocument, Page, Scores, SortBy};
use crate::ui::textures::LaneTextures;

/// Bootstrap resamples of the corpus page's interval (as `eval report --by-clip`).
const RESAMPLES: usize = 1000;

impl ExplorerApp {
    /// Reads `path` on a helper thread; what it is decides what opens.
    pub(super) fn read_document(&mut self, path: PathBuf) {
        self.state.windows.path = None;
        let job = self.new_job();
        self.info(format!("opening {}…", path.display()));
        self.opening = Some(job);
        self.loader.read(job, path);
    }

    /// Installs what the loader brought back (answers to a superseded open are dropped).
    pub(super) fn loaded(&mut self, l: Loaded, ctx: &egui::Context) {
        match l {
            Loaded::Document { job, path, opened } => {
                if self.opening != Some(job) {
                    return;
                }
                self.opening = None;
                match opened {
                    Ok(shown) => {
                        let Shown {
                            analysis,
                            view,
                            clip,
                            warning,
                        } = *shown;
                        if let Some(w) = warning {
                            self.error(w);
                        }
                        self.show_analysis(job, path, analysis, view, clip, ctx);
                    }
                    Err(e) => self.error(e),
                }
            }
            Loaded::Run {
                job,
                path,
                results,
                table,
                note,
            } => {
                if self.opening == Some(job) {
                    self.opening = None;
                    self.show_run(path, *results, table, note);
                }
            }
            Loaded::Audio { job, audio } => self.audio_decoded(job, audio, ctx),
        }
    }

    /// Shows a document read already (`prunescope open PATH`) once the loader has made it
    /// ready (its clip located, or its table computed).
    pub(super) fn open_read_document(&mut self, path: PathBuf, opened: Opened) {
        let job = self.new_job();
        self.opening = Some(job);
        self.loader.prepare(job, path, opened);
    }

    /// Makes an analysis the clip on screen: its scores in the lanes, its runs in the grid
    /// under the controls it was made with (a workspace's own choices on top), its audio
    /// decoded beside when found.
    fn show_analysis(
        &mut self,
        job: u64,
        file: PathBuf,
        a: Analysis,
        view: Option<ExplorerView>,
        clip: Located,
        ctx: &egui::Context,
    ) {
        let label = a.report.model_label();
        let spt = a.report.tokens.seconds_per_token;
        // Documents written before the plan was recorded were made with `analyze`'s defaults.
        let plan = a.plan.clone().unwrap_or_else(|| PlanSettings {
            params: Params::default(),
            decoding: Decoding::default(),
        });
        let settings = &mut self.state.settings;
        settings.adopt(&plan, spt);
        match &view {
            Some(v) => settings.apply_view(v),
            None => slide_to_every_run(settings, &a.runs),
        }
        // Every row the document holds shows, whatever the view says (`analyze --workspace`
        // writes the default view).
        show_rows_of(settings, &a.runs);
        self.host.cancel();
        self.state.decoding = None;
        self.state.pending_clip = None;
        let duration = a.report.clip.duration_s;
        let mut scores = document_scores(a.report.clone(), label.clone());
        if !scores.set_source(&self.state.settings.source) {
            // The plan's source is the document's own; this only guards a hand-edited file.
            self.state.settings.source = plan.params.source;
        }
        let mut textures = LaneTextures::new(ctx, &Spectrogram::default());
        textures.set_scores(ctx, &scores.norm);
        textures.set_layers(ctx, &scores.layers, self.state.settings.source.head_reduce);
        let audio = match (&clip.source, &clip.note) {
            (Some(_), _) => DocAudio::Decoding,
            (None, note) => DocAudio::Missing(note.clone().unwrap_or_default()),
        };
        self.state.textures = Some(textures);
        self.state.clip = Some(Clip {
            job,
            path: PathBuf::from(&a.report.clip.path),
            source: clip.source.clone(),
            document: Some(FromDocument {
                file: file.clone(),
                label: label.clone(),
                audio,
                sent: false,
            }),
            samples: Arc::new(Vec::new()),
            duration,
            summary: Vec::new(),
            peak: 1e-6,
            scores: Some(scores),
            view: View::full(duration),
            playback: Playback {
                looping: self.state.settings.looping,
                ..Playback::new(duration)
            },
        });
        if let Some(a) = &self.sound.out {
            a.set_clip(Arc::new(Vec::new()));
        }
        let hidden = self.fill_cells(&a, &plan);
        self.restore_view(view.as_ref());
        self.state.page = Page::Clip;
        self.state.highlight = None;
        self.views_dirty = true;
        self.grid_dirty = true;
        let shown = a.runs.len() - hidden;
        let mut note = format!(
            "{}: {shown} output(s) by {label}, no model needed",
            file.display()
        );
        if hidden > 0 {
            note +=
                &format!("; {hidden} other(s) were made with settings the controls cannot show");
        }
        if let Some(n) = &clip.note {
            note += &format!("; {n}");
        }
        self.info(note);
        if let Some(source) = clip.source {
            self.loader.decode(job, source);
        }
        self.offer_to_host();
    }

    /// Puts the document's runs in the cells, each under the key the controls give it; how
    /// many cannot be (their key under the document's plan differs from the controls' one).
    fn fill_cells(&mut self, a: &Analysis, plan: &PlanSettings) -> usize {
        let Some(scope) = self.state.scope() else {
            return a.runs.len();
        };
        // A new job: a scope of its own, so no cell of another is kept.
        self.state.cells.enter(scope);
        let (params, decoding) = (self.state.params(), self.state.settings.decoding());
        let mut hidden = 0;
        for r in &a.runs {
            let spec = RunSpec {
                method: r.method,
                keep: r.keep,
            };
            let key = RunKey::of(&spec, &params, &decoding);
            if key != RunKey::of(&spec, &plan.params, &plan.decoding) {
                hidden += 1;
                continue;
            }
            self.state.cells.results.insert(key, r.clone());
        }
        hidden
    }

    /// A workspace's focused cell, view and playhead.
    fn restore_view(&mut self, view: Option<&ExplorerView>) {
        self.state.pinned = None;
        let Some(v) = view else { return };
        let (params, decoding) = (self.state.params(), self.state.settings.decoding());
        self.state.pinned = v.focused.as_deref().and_then(|f| {
            let (method, keep) = f.rsplit_once('@')?;
            let spec = RunSpec {
                method: RunMethod::parse(method).ok()?,
                keep: keep.parse().ok()?,
            };
            Some(RunKey::of(&spec, &params, &decoding))
        });
        if let Some(clip) = &mut self.state.clip {
            if let Some([start, end]) = v.view {
                clip.view.set(View { start, end }, clip.duration);
            }
            clip.playback.seek(v.playhead);
        }
    }

    /// A document's clip decoded: the waveform and log-mel lanes fill in.
    fn audio_decoded(
        &mut self,
        job: u64,
        audio: Result<(Arc<Vec<f32>>, Spectrogram), String>,
        ctx: &egui::Context,
    ) {
        let Some(clip) = self.state.clip.as_mut().filter(|c| c.job == job) else {
            return;
        };
        match audio {
            Ok((samples, mel)) => {
                clip.summary = pool::wave_summary(&samples);
                clip.peak = pool::wave_peak(&clip.summary);
                clip.samples = samples;
                if let Some(d) = &mut clip.document {
                    d.audio = DocAudio::Found;
                }
                if let Some(t) = &mut self.state.textures {
                    t.set_spectrogram(ctx, &mel);
                }
                if let Some(a) = &self.sound.out {
                    a.set_clip(clip.samples.clone());
                }
            }
            Err(e) => {
                clip.source = None;
                if let Some(d) = &mut clip.document {
                    d.audio = DocAudio::Missing(e.clone());
                }
                self.error(format!("audio missing: {e}"));
            }
        }
    }

    /// Sends a document's clip to the host when its model is the one that made the document:
    /// it encodes the clip to the same scores, and computes only the cells the document lacks.
    pub(super) fn offer_to_host(&mut self) {
        let label = self.state.model.label.clone();
        let same = self
            .state
            .document()
            .is_some_and(|d| !d.sent && Some(&d.label) == label.as_ref());
        if same {
            self.send_document_clip();
        }
    }

    /// Sends a document's clip to the host's model (`ComputeWithModel`, or its own model).
    pub(super) fn send_document_clip(&mut self) {
        if self.state.model.label.is_none() {
            self.error(
                "no model loaded: File > Open model directory… or Connect to a remote model…",
            );
            return;
        }
        let Some(clip) = self.state.clip.as_mut() else {
            return;
        };
        let Some(d) = clip.document.as_mut().filter(|d| !d.sent) else {
            return;
        };
        let Some(source) = clip.source.clone() else {
            self.error("the clip's audio is missing: no model can compute more of it");
            return;
        };
        d.sent = true;
        let job = clip.job;
        self.host.send(Request::OpenClip(OpenClip {
            job,
            clip: source,
            scoring: Scoring::every_layer(),
        }));
    }

    /// The corpus page of a run.
    fn show_run(&mut self, path: PathBuf, results: Results, table: Table, note: Option<String>) {
        let find = |want: &str| table.settings.iter().position(|s| s == want);
        let pruned: Vec<usize> = (0..table.settings.len())
            .filter(|&j| {
                let m = table.settings[j].split('@').next().unwrap_or_default();
                m != "full" && m != "vanilla"
            })
            .collect();
        let a = find("segmentwise@0.25")
            .or_else(|| pruned.first().copied())
            .unwrap_or(0);
        let b = find("topk@0.25")
            .or_else(|| pruned.iter().copied().find(|&j| j != a))
            .unwrap_or(usize::from(table.settings.len() > 1));
        let n = table.clips.len();
        let failed = table.failed;
        let mut c = Corpus {
            path: path.clone(),
            results,
            compare: Err(String::new()),
            table,
            scorer_note: note,
            sort: SortBy::Delta,
            descending: true,
            a,
            b,
            deltas: Vec::new(),
            order: Vec::new(),
            opened: None,
        };
        compare_settings(&mut c);
        self.state.corpus = Some(c);
        self.state.page = Page::Corpus;
        let mut text = format!("{}: {n} clip(s)", path.display());
        if failed > 0 {
            text += &format!(", {failed} failed to run");
        }
        self.info(text);
    }

    /// The corpus page's commands.
    pub(super) fn apply_corpus(&mut self, c: crate::ui::commands::Command, ctx: &egui::Context) {
        use crate::ui::commands::Command;
        match c {
            Command::ShowPage(p) => {
                if p == Page::Corpus && self.state.corpus.is_none() {
                    self.info("no evaluation run open: File > Open evaluation run…");
                    return;
                }
                self.state.page = p;
            }
            Command::SortCorpus(by) => {
                let Some(c) = &mut self.state.corpus else {
                    return;
                };
                if c.sort == by {
                    c.descending = !c.descending;
                } else {
                    c.sort = by;
                    c.descending = by != SortBy::Clip;
                }
                c.order = corpus::order(&c.table, &c.deltas, c.sort, c.descending);
            }
            Command::CompareSettings(a, b) => {
                let Some(c) = &mut self.state.corpus else {
                    return;
                };
                let n = c.table.settings.len();
                if a >= n || b >= n {
                    return;
                }
                (c.a, c.b) = (a, b);
                compare_settings(c);
            }
            Command::OpenRunClip(i) => self.open_run_clip(i, ctx),
            _ => {}
        }
    }

    /// Opens clip `i` of the corpus table with the run's stored outputs.
    fn open_run_clip(&mut self, i: usize, ctx: &egui::Context) {
        let Some(c) = &mut self.state.corpus else {
            return;
        };
        let Some(id) = c.table.clips.get(i).cloned() else {
            return;
        };
        c.opened = Some(id.clone());
        let Some(record) = c.results.records.iter().find(|r| r.item.id == id) else {
            return;
        };
        let file = c.path.clone();
        let audio = record.item.audio.clone();
        let Some(a) = record.analysis(&c.results.header) else {
            // Written before eval stored scores: the clip opens like any other.
            self.info(format!(
                "{id}: this run was written before eval stored each clip's scores and outputs; \
                 opening its audio for the model instead"
            ));
            self.state.page = Page::Clip;
            self.apply(crate::ui::commands::Command::OpenClip(audio), Some(ctx));
            return;
        };
        let job = self.new_job();
        let clip = document::locate_clip(&file, &audio.display().to_string(), None, None);
        self.show_analysis(job, file, a, None, clip, ctx);
    }

    /// Writes the workspace to `path` (the analysis of the grid, the controls, the clip).
    pub(super) fn write_workspace(&mut self, path: &Path) {
        match self
            .workspace()
            .and_then(|w| w.write(path).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                let size = std::fs::metadata(path).map_or(0, |m| m.len());
                self.info(format!(
                    "saved the workspace to {} ({:.1} MB)",
                    path.display(),
                    size as f64 / 1e6
                ));
            }
            Err(e) => self.error(format!("cannot save the workspace: {e}")),
        }
    }

    /// The workspace of what is on screen.
    fn workspace(&self) -> Result<Workspace, String> {
        let clip = self.state.clip.as_ref().ok_or("no clip open")?;
        let analysis = self.analysis().map_err(|e| e.to_string())?;
        let bytes = match &clip.source {
            Some(ClipSource::Path(p)) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
            }
            Some(ClipSource::Bytes { bytes, .. }) => bytes.clone(),
            None => return Err("the clip's audio is missing, so it cannot be saved with it".into()),
        };
        let mut view = self.state.settings.view();
        view.focused = self
            .state
            .hovered_cell()
            .and_then(|k| self.state.result(&k))
            .map(crate::eval::runner::setting_of);
        view.view = Some([clip.view.start, clip.view.end]);
        view.playhead = clip.playback.position;
        let embed = self.state.settings.embed_clips && bytes.len() as u64 <= EMBED_LIMIT;
        Ok(Workspace::new(analysis, view, &bytes, embed))
    }
}

/// Compares the corpus page's two settings (the same bootstrap as `eval report --by-clip`)
/// and sorts its rows again.
fn compare_settings(c: &mut Corpus) {
    c.compare = c
        .table
        .compare(c.a, c.b, RESAMPLES, 0)
        .map_err(|e| e.to_string());
    c.deltas = corpus::deltas(&c.table, c.compare.as_ref().ok());
    c.order = corpus::order(&c.table, &c.deltas, c.sort, c.descending);
}

/// The document's scores as the lanes take them: every layer it holds (one reduction over
/// heads), the windows' first tokens, no keys (VisionZip and merging read the cells' own
/// selections).
fn document_scores(report: crate::engine::ClipReport, label: String) -> Scores {
    let spt = report.tokens.seconds_per_token;
    let per_window = (30.0 / spt).round().max(1.0) as usize;
    let windows = (0..report.clip.windows.max(1))
        .map(|i| i * per_window)
        .collect();
    let reduce = report.score_source.head_reduce;
    let layer = |i: usize, v: &[f32]| {
        let mut l = LayerScores {
            layer: i,
            ..LayerScores::default()
        };
        match reduce {
            crate::scores::HeadReduce::Mean => l.mean = v.to_vec(),
            crate::scores::HeadReduce::Max => l.max = v.to_vec(),
        }
        l
    };
    let layers = match &report.layer_scores {
        Some(all) => all.iter().enumerate().map(|(i, v)| layer(i, v)).collect(),
        None => vec![layer(report.score_source.layer, &report.scores)],
    };
    Scores::new(report, label, Vec::new(), 0, windows, layers)
}

/// Adds the grid rows a document's runs need: the extensions and peers it holds.
fn show_rows_of(s: &mut crate::ui::settings::Settings, runs: &[crate::engine::RunResult]) {
    for r in runs {
        match r.method {
            RunMethod::Prune(m)
                if compare::EXTENSIONS.contains(&m) && !s.extensions.contains(&m) =>
            {
                s.extensions.push(m);
            }
            m if compare::PEERS.contains(&m) && !s.peers.contains(&m) => {
                s.peers.push(r.method);
            }
            _ => {}
        }
    }
}

/// Puts the slider where a document's runs need it: at a keep ratio the fixed columns lack (and
/// its method), if a run has one.
fn slide_to_every_run(s: &mut crate::ui::settings::Settings, runs: &[crate::engine::RunResult]) {
    let off_grid = runs.iter().find(|r| {
        matches!(r.method, RunMethod::Prune(m) if m != Method::Full)
            && !compare::FIXED_KEEPS
                .iter()
                .any(|k| (k - r.keep).abs() < 1e-9)
    });
    if let Some(r) = off_grid {
        s.keep_percent = r.keep * 100.0;
        if let RunMethod::Prune(m) = r.method {
            s.method = m;
        }
    }
}
