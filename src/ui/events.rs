//! The worker's events: a model loaded or failed, a clip decoded, encoded or failed, cells
//! decoded. Answers to stale jobs (an older clip, a cancelled request) are dropped here.

use super::app::ExplorerApp;
use super::compare;
use super::lanes;
use super::state::{Clip, Scores, Status};
use super::timeline::{Playback, View};
use crate::engine::worker::Event;

impl ExplorerApp {
    /// Notes when the opened clip's slider cell, then its whole grid, came in.
    fn time_open(&mut self) {
        let t = self.open_timing;
        let Some(started) = t.started.filter(|_| t.grid_ms.is_none()) else {
            return;
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let params = self.params();
        let decoding = self.settings.decoding();
        let slider = compare::cell_key(&self.current_spec(&params), &params, &decoding);
        if t.slider_cell_ms.is_none() && self.results.contains_key(&slider) {
            self.open_timing.slider_cell_ms = Some(ms);
        }
        if self
            .grid_keys()
            .iter()
            .all(|k| self.results.contains_key(k))
        {
            self.open_timing.grid_ms = Some(ms);
        }
    }

    pub(super) fn handle_events(&mut self, ctx: &egui::Context) {
        while let Some(e) = self.worker.try_recv() {
            match e {
                Event::ModelLoaded {
                    name,
                    dir,
                    prompted,
                    lm_layers,
                } => {
                    self.model.loading = false;
                    self.info(format!("model: {name}"));
                    self.model.name = Some(name);
                    self.model.prompted = prompted;
                    self.model.lm_layers = lm_layers;
                    if let Some(d) = &dir {
                        self.settings.remember_model(d);
                    }
                    self.model.dir = dir;
                }
                Event::ModelFailed { message, .. } => {
                    self.model.loading = false;
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
                    self.settings.remember_clip(&path);
                    self.lane_cache = Some(lanes::Cache::new(ctx, &samples, &spectrogram));
                    if let Some(a) = &self.sound.out {
                        a.set_clip(samples.clone());
                    }
                    self.info(format!("{}: {duration:.2} s", path.display()));
                    self.clip = Some(Clip {
                        job,
                        path,
                        samples,
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
                    layers,
                } => {
                    let Some(clip) = self.clip.as_mut().filter(|c| c.job == job) else {
                        continue;
                    };
                    let analyzed_s = report.clip.analyzed_s;
                    if analyzed_s + 1e-6 < clip.duration {
                        let msg = format!(
                            "{} reads the first {analyzed_s:.0} s of this {:.1} s clip",
                            report.model, clip.duration
                        );
                        self.status = Some(Status {
                            text: msg,
                            error: false,
                        });
                    }
                    let mut scores = Scores::new(
                        report,
                        keys,
                        key_dim,
                        windows.iter().map(|w| w.0).collect(),
                        layers,
                    );
                    scores.set_source(&self.settings.source);
                    if let Some(cache) = &mut self.lane_cache {
                        cache.set_scores(ctx, &scores.norm);
                        cache.layers = None;
                        cache.set_layers(ctx, &scores.layers, self.settings.source.head_reduce);
                    }
                    clip.scores = Some(scores);
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
                            self.results.insert(*k, result);
                        }
                    }
                    self.time_open();
                }
                Event::DecodeFinished {
                    job,
                    cancelled,
                    elapsed_ms,
                } => {
                    if let Some(d) = self.decoding.as_mut().filter(|d| d.job == job) {
                        d.running = false;
                        let n = d.keys.len();
                        if cancelled {
                            self.info("decoding cancelled");
                        } else {
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
}
