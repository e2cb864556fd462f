//! The model's thread (the explorer's, the command line's, a server's): one thread owns the
//! model, the decoded clip and its encoder output, and answers [`Request`]s with [`Event`]s
//! over crossbeam channels. It is the in-process [`ModelHost`]; `crate::remote` is the other.
//!
//! Every clip and decode request carries a job id chosen by the caller; the events it causes
//! carry the same id, so a caller that has moved on (a new clip, a slider moved) drops stale
//! answers by comparing ids. [`Worker::cancel`] raises the shared cancel flag the decoder checks
//! at every step; the worker lowers it when it starts the next request. Of several decode
//! requests waiting in the queue only the newest runs. `wake(within)` is called after every
//! event (the GUI passes `ctx.request_repaint_after`), so the caller never has to poll or block:
//! `within` is zero for an event the user waits for (the scores, the cells decoded first, the end
//! of a request, an error) and [`LATER`] for the rest (progress ticks, the grid's other cells), so
//! a burst of them costs the GUI one frame, not one each: on a machine that draws in software,
//! every frame is CPU time the decode does not get.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::host::{LinkError, ModelHost};
use super::{EncodedClip, Plan, Progress, RunResult};
use crate::audio::{self, Audio};
use crate::mel::MelExtractor;
use crate::model::Precision;
use crate::model::{AudioLanguageModel, DeviceChoice, LoadOptions, ModelError};

/// How soon the caller needs to look after an event nobody waits on: a progress tick, a cell of
/// the grid after the ones decoded first.
pub const LATER: Duration = Duration::from_millis(250);

mod messages;
pub use messages::*;

/// Handle to the worker thread. Dropping it cancels the current work and joins the thread.
pub struct Worker {
    tx: Option<Sender<Request>>,
    rx: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Its thread's end was reported ([`LinkError::Stopped`], once).
    stopped: AtomicBool,
}

impl Worker {
    /// Starts the worker thread; `wake(within)` is called after each event is sent: the caller
    /// should look within that time (see the module's note).
    pub fn spawn(wake: impl Fn(Duration) + Send + Sync + 'static) -> std::io::Result<Worker> {
        Worker::start(true, Box::new(wake))
    }

    /// A worker holding `model` for the command line or a server: it answers
    /// [`Request::OpenClip`] without a [`Event::ClipLoaded`] (no samples copied, no
    /// spectrogram: nobody draws them).
    pub fn with_model(model: Box<dyn AudioLanguageModel>) -> std::io::Result<Worker> {
        let w = Worker::start(false, Box::new(|_| {}))?;
        w.send(Request::UseModel(model));
        Ok(w)
    }

    fn start(preview: bool, wake: Box<dyn Fn(Duration) + Send + Sync>) -> std::io::Result<Worker> {
        let (tx, requests) = crossbeam_channel::unbounded();
        let (events, rx) = crossbeam_channel::unbounded();
        let cancel = Arc::new(AtomicBool::new(false));
        let state = State {
            model: None,
            clip: None,
            cancel: cancel.clone(),
            events,
            wake,
            preview,
        };
        let thread = std::thread::Builder::new()
            .name("prunescope-worker".into())
            .spawn(move || state.serve(requests))?;
        Ok(Worker {
            tx: Some(tx),
            rx,
            cancel,
            thread: Some(thread),
            stopped: AtomicBool::new(false),
        })
    }
}

impl ModelHost for Worker {
    fn send(&self, request: Request) {
        if let Some(tx) = &self.tx {
            // The worker only stops when this handle drops, so a send cannot fail before.
            let _ = tx.send(request);
        }
    }

    fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    fn try_recv(&self) -> Option<Event> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => self.stopped(),
        }
    }

    fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                self.stopped().or_else(|| {
                    // Reported already: wait as asked instead of spinning.
                    std::thread::sleep(timeout);
                    None
                })
            }
        }
    }
}

impl Worker {
    /// The thread is gone while the worker lives (only a panic ends it early): one
    /// [`Event::Lost`] saying so, then nothing.
    fn stopped(&self) -> Option<Event> {
        (!self.stopped.swap(true, Ordering::SeqCst)).then_some(Event::Lost(LinkError::Stopped))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct LoadedClip {
    job: u64,
    audio: Audio,
    scoring: Scoring,
    encoded: Option<EncodedClip>,
}

struct State {
    /// Send each clip's samples and spectrogram ([`Event::ClipLoaded`]): the explorer's.
    preview: bool,
    model: Option<Box<dyn AudioLanguageModel>>,
    clip: Option<LoadedClip>,
    cancel: Arc<AtomicBool>,
    events: Sender<Event>,
    wake: Box<dyn Fn(Duration) + Send + Sync>,
}

impl State {
    fn emit(&self, e: Event) {
        send(&self.events, &self.wake, e, Duration::ZERO);
    }

    fn serve(mut self, requests: Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            batch.extend(requests.try_iter());
            // Only the newest decode request is worth running.
            let last_decode = batch.iter().rposition(|r| matches!(r, Request::Decode(_)));
            for (i, r) in batch.into_iter().enumerate() {
                if matches!(r, Request::Decode(_)) && Some(i) != last_decode {
                    continue;
                }
                self.cancel.store(false, Ordering::SeqCst);
                self.handle(r);
            }
        }
    }

    fn handle(&mut self, r: Request) {
        match r {
            Request::LoadModel { dir, options } => {
                // The explorer's device and dtype are standing choices for the prompted
                // models; Whisper takes the CPU and f32 without an error.
                let options = if crate::model::alm::is_alm_dir(&dir) {
                    options
                } else {
                    LoadOptions {
                        device: DeviceChoice::Cpu,
                        precision: Precision::Auto,
                        ..options
                    }
                };
                match crate::model::load(&dir, &options) {
                    Ok(m) => self.use_model(m, Some(dir)),
                    Err(e) => self.emit(Event::ModelFailed {
                        message: format!("cannot load model {}: {e}", dir.display()),
                        dir,
                    }),
                }
            }
            Request::UseModel(m) => self.use_model(m, None),
            Request::OpenClip(OpenClip { job, clip, scoring }) => {
                let path = clip.name().to_path_buf();
                match clip.load() {
                    Ok(audio) => {
                        if self.preview {
                            self.emit(Event::ClipLoaded {
                                job,
                                path,
                                samples: audio.samples.clone(),
                                spectrogram: Arc::new(spectrogram(&audio)),
                            });
                        }
                        self.clip = Some(LoadedClip {
                            job,
                            audio,
                            scoring,
                            encoded: None,
                        });
                        self.encode_clip();
                    }
                    Err(e) => self.emit(Event::ClipFailed {
                        job,
                        path,
                        message: e.to_string(),
                    }),
                }
            }
            Request::Decode(d) => self.decode(d),
        }
    }

    fn use_model(&mut self, model: Box<dyn AudioLanguageModel>, dir: Option<PathBuf>) {
        let info = model.info().clone();
        self.model = Some(model);
        self.emit(Event::ModelLoaded { info, dir });
        self.encode_clip();
    }

    /// Encodes the current clip with the current model, when both are there.
    fn encode_clip(&mut self) {
        let (Some(model), Some(clip)) = (&self.model, &mut self.clip) else {
            return;
        };
        let job = clip.job;
        let scoring = clip.scoring;
        let events = self.events.clone();
        let wake = &self.wake;
        let mut progress = |p: Progress| {
            if let Progress::Encoded { window, of } = p {
                let e = Event::Progress {
                    job,
                    done: window,
                    of,
                };
                send(&events, wake, e, LATER);
            }
        };
        // The explorer asks for every layer's scores, in the same pass: the layer lane shows
        // them and a click makes one the score source without encoding again.
        let encoded = super::encode_described(
            model.as_ref(),
            &clip.audio,
            scoring.layers,
            &scoring.source,
            &mut progress,
        );
        match encoded {
            Ok((enc, report)) => {
                let event = Event::ClipEncoded(Encoding {
                    job,
                    report,
                    layers: enc.layers.clone(),
                    keys: enc.keys.clone(),
                    key_dim: enc.key_dim,
                    windows: enc
                        .windows
                        .iter()
                        .map(|w| (w.first_token, w.n_valid))
                        .collect(),
                });
                clip.encoded = Some(enc);
                self.emit(event);
            }
            Err(e) => {
                let path = clip.audio.path.clone().unwrap_or_default();
                let message = match e {
                    // The score source asks for a layer the model lacks: nothing was encoded.
                    super::EngineError::ScoreLayer { .. } => e.to_string(),
                    e => format!("the model failed on this clip: {e}"),
                };
                self.emit(Event::ClipFailed { job, path, message })
            }
        }
    }

    fn decode(&mut self, d: Decode) {
        let Decode {
            job,
            clip,
            runs,
            first,
            params,
            decoding,
        } = d;
        let t0 = Instant::now();
        if let (Some(want), Some(have)) = (clip, &self.clip) {
            if want != have.job {
                // Asked for a clip this worker no longer has: its runs would be another's.
                self.emit(Event::DecodeFinished {
                    job,
                    cancelled: true,
                    elapsed_ms: 0.0,
                });
                return;
            }
        }
        let (
            Some(model),
            Some(LoadedClip {
                encoded: Some(enc), ..
            }),
        ) = (&self.model, &self.clip)
        else {
            self.emit(Event::DecodeFailed {
                job,
                message: "nothing to decode yet: open a clip and a model first".into(),
            });
            return;
        };
        let events = self.events.clone();
        let wake = &self.wake;
        let send = |e: Event, within: Duration| send(&events, wake, e, within);
        let first = first.min(runs.len());
        let (head, rest) = runs.split_at(first);
        let mut result = Ok(());
        for (part, at_once) in [(head, true), (rest, false)] {
            if part.is_empty() {
                continue;
            }
            let plan = Plan {
                runs: part.iter().map(|r| r.spec.clone()).collect(),
                params: params.clone(),
                decoding: decoding.clone(),
            };
            let mut progress = |p: Progress| {
                if let Progress::Decoded { done, of } = p {
                    send(Event::Progress { job, done, of }, LATER);
                }
            };
            // The cells decoded first are what the user looks at; the rest fill the grid.
            let within = if at_once { Duration::ZERO } else { LATER };
            let mut on_run = |index: usize, r: &RunResult| {
                if let Some(run) = part.get(index) {
                    let e = Event::CellDone {
                        job,
                        key: run.key,
                        result: r.clone(),
                    };
                    send(e, within);
                }
            };
            result = super::run_with(
                model.as_ref(),
                enc,
                &plan,
                &self.cancel,
                &mut progress,
                &mut on_run,
            )
            .map(|_| ());
            if result.is_err() {
                break;
            }
        }
        let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(()) => self.emit(Event::DecodeFinished {
                job,
                cancelled: false,
                elapsed_ms,
            }),
            Err(super::EngineError::Model(ModelError::Cancelled)) => {
                self.emit(Event::DecodeFinished {
                    job,
                    cancelled: true,
                    elapsed_ms,
                })
            }
            Err(e) => self.emit(Event::DecodeFailed {
                job,
                message: format!("decoding failed: {e}"),
            }),
        }
    }
}

/// Sends an event and asks the caller to look within `within`.
fn send(
    events: &Sender<Event>,
    wake: &(dyn Fn(Duration) + Send + Sync),
    e: Event,
    within: Duration,
) {
    let _ = events.send(e);
    wake(within);
}

/// The clip's log-mel, window by window, valid frames only.
pub fn spectrogram(audio: &Audio) -> Spectrogram {
    let n_mels = 80;
    let mel = MelExtractor::new(n_mels);
    let ranges = audio.windows();
    let per_window: Vec<(Vec<f32>, usize)> = ranges
        .iter()
        .map(|r| {
            let frames = audio::valid_frames(r.len());
            (mel.compute(&audio.samples[r.clone()]), frames)
        })
        .collect();
    let frames: usize = per_window.iter().map(|(_, f)| f).sum();
    let mut data = vec![0.0f32; n_mels * frames];
    let mut offset = 0;
    for (m, f) in &per_window {
        for b in 0..n_mels {
            let src = &m[b * crate::WINDOW_FRAMES..b * crate::WINDOW_FRAMES + f];
            data[b * frames + offset..b * frames + offset + f].copy_from_slice(src);
        }
        offset += f;
    }
    Spectrogram {
        n_mels,
        frames,
        data,
    }
}

#[cfg(test)]
mod tests;
