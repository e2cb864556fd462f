//! The model host's events: a model loaded or failed, a clip decoded, encoded or failed, cells
//! decoded, a remote link lost. Answers to stale jobs (an older clip, a superseded request) are
//! dropped here; a cell's result lands by the key it came back with.

use std::path::PathBuf;
use std::sync::Arc;

use super::ExplorerApp;
use crate::engine::worker::{Encoding, Event, Spectrogram};
use crate::engine::{LinkError, RunKey, RunResult};
use crate::model::ModelInfo;
use crate::ui::logic::pool;
use crate::ui::logic::timeline::{Playback, View};
use crate::ui::state::{Clip, Scores};
use crate::ui::textures::LaneTextures;

impl ExplorerApp {
    pub(super) fn on(&mut self, e: Event, ctx: &egui::Context) {
        match e {
            Event::ModelLoaded { info, dir } => self.model_loaded(&info, dir),
            Event::ModelFailed { message, .. } => {
                self.state.model.loading = false;
                self.error(message);
            }
            Event::ClipLoaded {
                job,
                path,
                samples,
                spectrogram,
            } => self.clip_loaded(job, path, samples, &spectrogram, ctx),
            Event::ClipFailed { job, message, .. } => {
                if self.is_clip_job(job) {
                    if self.state.pending_clip.take().is_some() {
                        // The clip on screen is still the model's: its grid may be asked again.
                        self.state.decoding = None;
                        self.grid_dirty = true;
                    }
                    self.error(message);
                }
            }
            Event::ClipEncoded(e) => self.clip_encoded(e, ctx),
            Event::Progress { job, done, of } => {
                if let Some(d) = self.in_flight(job) {
                    d.done = done;
                    d.of = of;
                }
            }
            Event::CellDone { job, key, result } => self.cell_done(job, key, result),
            Event::DecodeFinished {
                job,
                cancelled,
                elapsed_ms,
            } => {
                let Some(d) = self.in_flight(job) else { return };
                d.running = false;
                let n = d.keys.len();
                if cancelled {
                    self.info("decoding cancelled");
                } else {
                    self.info(format!("decoded {n} setting(s) in {elapsed_ms:.0} ms"));
                }
            }
            Event::DecodeFailed { job, message } => {
                if let Some(d) = self.in_flight(job) {
                    d.running = false;
                    self.error(message);
                }
            }
            Event::Lost(e) => self.link_lost(&e),
        }
    }

    /// The remote model is gone: every cell shown stays, nothing more is asked, and the status
    /// line says why and offers Reconnect.
    fn link_lost(&mut self, e: &LinkError) {
        self.state.model.loading = false;
        self.state.model.lost = Some(e.to_string());
        if let Some(d) = &mut self.state.decoding {
            d.running = false;
        }
        self.state.pending_clip = None;
        if self.state.model.remote.is_some() {
            self.error(format!("remote model lost: {e}"));
        } else {
            self.error(e.to_string());
        }
    }

    /// The request in flight, if `job` is it (answers to any other are stale).
    fn in_flight(&mut self, job: u64) -> Option<&mut crate::ui::logic::compare::InFlight> {
        self.state.decoding.as_mut().filter(|d| d.job == job)
    }

    fn model_loaded(&mut self, info: &ModelInfo, dir: Option<PathBuf>) {
        let label = info.label();
        let m = &mut self.state.model;
        m.loading = false;
        m.lost = None;
        m.label = Some(label.clone());
        m.info = Some(info.clone());
        if let Some(d) = &dir {
            self.state.settings.remember_model(d);
        }
        self.state.model.dir = dir;
        // The cells of another model are not shown (the scope changed) and nothing is asked
        // until this model has encoded the clip.
        self.drop_request();
        self.grid_dirty = true;
        match &self.state.model.remote {
            Some(c) => self.info(format!("model: {label}, on `{c}`")),
            None => self.info(format!("model: {label}")),
        }
        // A document made by this model: it computes what the document lacks.
        self.offer_to_host();
    }

    fn clip_loaded(
        &mut self,
        job: u64,
        path: PathBuf,
        samples: Arc<Vec<f32>>,
        spectrogram: &Spectrogram,
        ctx: &egui::Context,
    ) {
        if !self.is_clip_job(job) {
            return;
        }
        if self.state.clip.as_ref().is_some_and(|c| c.job == job) {
            // The clip on screen, sent again to a new host: it stays as it is.
            return;
        }
        self.state.pending_clip = None;
        let duration = samples.len() as f64 / f64::from(crate::SAMPLE_RATE);
        self.state.settings.remember_clip(&path);
        self.state.textures = Some(LaneTextures::new(ctx, spectrogram));
        if let Some(a) = &self.sound.out {
            a.set_clip(samples.clone());
        }
        self.info(format!("{}: {duration:.2} s", path.display()));
        let summary = pool::wave_summary(&samples);
        let peak = pool::wave_peak(&summary);
        self.state.page = crate::ui::state::Page::Clip;
        self.state.pinned = None;
        self.state.clip = Some(Clip {
            job,
            source: Some(crate::engine::worker::ClipSource::Path(path.clone())),
            document: None,
            path,
            samples,
            duration,
            summary,
            peak,
            scores: None,
            view: View::full(duration),
            playback: Playback {
                looping: self.state.settings.looping,
                ..Playback::new(duration)
            },
        });
        self.state.highlight = None;
        self.drop_request();
        self.grid_dirty = true;
    }

    fn clip_encoded(&mut self, e: Encoding, ctx: &egui::Context) {
        let Some(label) = self.state.model.label.clone() else {
            return;
        };
        let Some(clip) = self.state.clip.as_mut().filter(|c| c.job == e.job) else {
            return;
        };
        let analyzed_s = e.report.clip.analyzed_s;
        let note = (analyzed_s + 1e-6 < clip.duration).then(|| {
            format!(
                "{} reads the first {analyzed_s:.0} s of this {:.1} s clip",
                e.report.model, clip.duration
            )
        });
        // The model's own encoding: a document's cells stay only if it made them (the scope).
        clip.document = None;
        let windows = e.windows.iter().map(|w| w.0).collect();
        let mut scores = Scores::new(e.report, label, e.keys, e.key_dim, windows, e.layers);
        let source = self.state.settings.source;
        scores.set_source(&source);
        if let Some(t) = &mut self.state.textures {
            t.set_scores(ctx, &scores.norm);
            t.clear_layers();
            t.set_layers(ctx, &scores.layers, source.head_reduce);
        }
        clip.scores = Some(scores);
        if let Some(note) = note {
            self.info(note);
        }
        self.state.highlight = None;
        self.state.decoding = None;
        self.grid_dirty = true;
    }

    /// A decoded cell lands by its key, if its request is the one in flight.
    fn cell_done(&mut self, job: u64, key: RunKey, result: RunResult) {
        if self.in_flight(job).is_none() {
            return;
        }
        let mut shown = self.state.grid_keys();
        shown.extend(self.state.pinned);
        self.state.cells.insert(key, result, &shown);
        self.views_dirty = true;
        self.time_open();
    }

    /// Notes when the opened clip's slider cell, then its whole grid, came in.
    fn time_open(&mut self) {
        let t = self.state.open_timing;
        let Some(started) = t.started.filter(|_| t.grid_ms.is_none()) else {
            return;
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let slider = self.state.slider_key();
        if t.slider_cell_ms.is_none() && self.state.result(&slider).is_some() {
            self.state.open_timing.slider_cell_ms = Some(ms);
        }
        if self.state.grid_complete() {
            self.state.open_timing.grid_ms = Some(ms);
        }
    }

    fn is_clip_job(&self, job: u64) -> bool {
        self.state.pending_clip.as_ref().is_some_and(|p| p.0 == job)
            || self.state.clip.as_ref().is_some_and(|c| c.job == job)
    }
}
