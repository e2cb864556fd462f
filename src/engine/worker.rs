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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use super::host::{LinkError, ModelHost};
use super::{ClipReport, Decoding, EncodedClip, Plan, Progress, RunKey, RunResult, RunSpec};
use crate::audio::{self, Audio, AudioError};
use crate::mel::MelExtractor;
use crate::model::Precision;
use crate::model::{AudioLanguageModel, DeviceChoice, LoadOptions, ModelError, ModelInfo};
use crate::prune::Params;
use crate::scores::{Layers, ScoreSource};

/// How soon the caller needs to look after an event nobody waits on: a progress tick, a cell of
/// the grid after the ones decoded first.
pub const LATER: Duration = Duration::from_millis(250);

/// What the worker is asked to do.
pub enum Request {
    /// Load a model directory (Whisper in CTranslate2 or Hugging Face format, Qwen2-Audio, Audio
    /// Flamingo 3) with these options; Whisper takes the CPU and f32 whatever they say.
    LoadModel {
        dir: PathBuf,
        options: LoadOptions,
    },
    /// Use an already built model (tests use the fake).
    UseModel(Box<dyn AudioLanguageModel>),
    OpenClip(OpenClip),
    Decode(Decode),
}

/// Decode a clip, compute its spectrogram (for the explorer), and encode it once a model is
/// there, collecting the scores `scoring` names. The remote protocol's `Open`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenClip {
    pub job: u64,
    pub clip: ClipSource,
    pub scoring: Scoring,
}

/// Decode these runs of the current clip, in this order (the caller puts what the user looks
/// at first); each result comes back with its run's key. The remote protocol's `Decode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decode {
    pub job: u64,
    /// The job of the clip these runs are of. A worker whose clip is another one (a newer
    /// clip was opened since the request was made) decodes nothing and answers
    /// [`Event::DecodeFinished`] with `cancelled`. None: the clip it has (older peers).
    #[serde(default)]
    pub clip: Option<u64>,
    pub runs: Vec<KeyedRun>,
    /// How many leading runs decode as a batch of their own before the rest (what the user
    /// looks at arrives sooner than the whole batch).
    pub first: usize,
    pub params: Params,
    pub decoding: Decoding,
}

/// Where a clip comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClipSource {
    /// A file on this machine.
    Path(PathBuf),
    /// A file's bytes: a remote client's clip. `name` is its path on the client (the clip's
    /// `path` in the document, the format hint, what errors name).
    Bytes {
        name: PathBuf,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

impl ClipSource {
    /// The path it names.
    pub fn name(&self) -> &Path {
        match self {
            ClipSource::Path(p) => p,
            ClipSource::Bytes { name, .. } => name,
        }
    }

    /// A file's bytes, read here to send elsewhere in one frame of at most `max` bytes: a
    /// larger file is [`AudioError::TooLargeToSend`], unread.
    pub fn read(path: PathBuf, max: u64) -> Result<ClipSource, AudioError> {
        match crate::limits::read_at_most(&path, max) {
            Ok(crate::limits::Capped::Read(bytes)) => Ok(ClipSource::Bytes { name: path, bytes }),
            Ok(crate::limits::Capped::TooLarge(size)) => {
                Err(AudioError::TooLargeToSend { path, size, max })
            }
            // The audio loader words a missing or unreadable file.
            Err(_) => audio::load(&path).map(|_| ClipSource::Path(path)),
        }
    }

    /// Decodes it to a clip ready for the model.
    pub fn load(self) -> Result<Audio, AudioError> {
        match self {
            ClipSource::Path(p) => audio::load(&p),
            ClipSource::Bytes { name, bytes } => audio::load_bytes(bytes, &name),
        }
    }
}

/// Which encoder layers' scores an encoding collects, and which source the report's `scores`
/// are (a source other than the last layer collects every layer in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scoring {
    pub layers: Layers,
    pub source: ScoreSource,
}

impl Scoring {
    /// The explorer's: every layer (its layer lane and score source), the paper's scores.
    pub fn every_layer() -> Scoring {
        Scoring {
            layers: Layers::All,
            source: ScoreSource::default(),
        }
    }
}

/// A run to decode and the key its result comes back with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedRun {
    pub key: RunKey,
    pub spec: RunSpec,
}

impl KeyedRun {
    /// `spec` with its key under `params` and `decoding`.
    pub fn new(spec: RunSpec, params: &Params, decoding: &Decoding) -> KeyedRun {
        KeyedRun {
            key: RunKey::of(&spec, params, decoding),
            spec,
        }
    }
}

/// Log-mel spectrogram of a whole clip, row-major `[n_mels][frames]`, 10 ms per frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spectrogram {
    pub n_mels: usize,
    pub frames: usize,
    pub data: Vec<f32>,
}

/// What the worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    ModelLoaded {
        /// What the engine knows of it: its name and runtime ([`ModelInfo::label`]), whether it
        /// takes a prompt (`prefix_lm`), its encoder's and language model's layers.
        info: ModelInfo,
        /// `None` for a model handed over with [`Request::UseModel`] or served remotely.
        dir: Option<PathBuf>,
    },
    ModelFailed {
        dir: PathBuf,
        message: String,
    },
    /// The clip decoded: its 16 kHz samples and spectrogram (no scores yet).
    ClipLoaded {
        job: u64,
        path: PathBuf,
        samples: Arc<Vec<f32>>,
        spectrogram: Arc<Spectrogram>,
    },
    ClipFailed {
        job: u64,
        path: PathBuf,
        message: String,
    },
    /// The clip went through the encoder (again after a model change).
    ClipEncoded(Encoding),
    Progress {
        job: u64,
        done: usize,
        of: usize,
    },
    /// One run of a decode request finished, with the key the request gave it.
    CellDone {
        job: u64,
        key: RunKey,
        result: RunResult,
    },
    DecodeFinished {
        job: u64,
        cancelled: bool,
        elapsed_ms: f64,
    },
    DecodeFailed {
        job: u64,
        message: String,
    },
    /// The host stopped answering: a remote model's link failed (never in this process).
    Lost(LinkError),
}

/// A clip's encoding as the explorer needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encoding {
    pub job: u64,
    /// Model name, clip (`analyzed_s`: seconds the model read; Qwen2-Audio stops at 30 s),
    /// token count and duration, scores, encode time: the `analyze` document without its runs
    /// ([`super::Analysis`] is this plus the runs).
    pub report: ClipReport,
    /// Every token's key (last layer, mean over heads), `key_dim` values each.
    #[serde(with = "crate::util::f32_bytes")]
    pub keys: Vec<f32>,
    pub key_dim: usize,
    /// `(first token, valid tokens)` of each 30 s window.
    pub windows: Vec<(usize, usize)>,
    /// The layers' scores collected (the explorer's layer lane and score source).
    pub layers: Vec<crate::scores::LayerScores>,
}

/// Handle to the worker thread. Dropping it cancels the current work and joins the thread.
pub struct Worker {
    tx: Option<Sender<Request>>,
    rx: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
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
        self.rx.try_recv().ok()
    }

    fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
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
                                samples: Arc::new(audio.samples.clone()),
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
mod tests {
    use super::*;
    use crate::engine::{RunMethod, Tail};
    use crate::model::fake::FakeModel;
    use crate::prune::Method;

    fn keyed(m: Method, keep: f64) -> KeyedRun {
        let spec = RunSpec {
            method: RunMethod::Prune(m),
            keep,
        };
        KeyedRun::new(spec, &Params::default(), &Decoding::default())
    }

    fn next(w: &Worker) -> Event {
        w.recv_timeout(Duration::from_secs(20))
            .expect("the worker answers")
    }

    #[test]
    fn stale_decode_is_cancelled_and_newest_runs() {
        let w = Worker::spawn(|_| {}).unwrap();
        w.send(Request::UseModel(Box::new(FakeModel::new(
            Duration::from_millis(20),
        ))));
        assert!(matches!(next(&w), Event::ModelLoaded { .. }));
        let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
        w.send(Request::OpenClip(OpenClip {
            job: 1,
            clip: ClipSource::Path(clip),
            scoring: Scoring::every_layer(),
        }));
        assert!(matches!(next(&w), Event::ClipLoaded { job: 1, .. }));
        let n = loop {
            if let Event::ClipEncoded(e) = next(&w) {
                break e.report.scores.len();
            }
        };
        assert_eq!(n, 550);
        let spec = |m, keep| keyed(m, keep);
        let params = Params::default();
        w.send(Request::Decode(Decode {
            job: 2,
            clip: None,
            runs: vec![spec(Method::Full, 1.0), spec(Method::TopK, 0.5)],
            first: 1,
            params: params.clone(),
            decoding: Decoding {
                tail: Tail::Tokens(0),
                ..Decoding::default()
            },
        }));
        std::thread::sleep(Duration::from_millis(30));
        w.cancel();
        w.send(Request::Decode(Decode {
            job: 3,
            clip: None,
            runs: vec![spec(Method::Segmentwise, 0.25)],
            first: 0,
            params,
            decoding: Decoding {
                tail: Tail::Tokens(0),
                ..Decoding::default()
            },
        }));
        let mut finished = Vec::new();
        let mut cells = Vec::new();
        while finished.len() < 2 {
            match next(&w) {
                Event::DecodeFinished { job, cancelled, .. } => finished.push((job, cancelled)),
                Event::CellDone { job, result, .. } => cells.push((job, result.method)),
                _ => {}
            }
        }
        assert_eq!(finished, vec![(2, true), (3, false)]);
        assert_eq!(cells, vec![(3, RunMethod::Prune(Method::Segmentwise))]);
    }

    /// A request made for a clip before another was opened decodes nothing: its cells would be
    /// the new clip's under the old clip's keys (found by the explorer's monkey, tests/abuse).
    #[test]
    fn a_decode_for_a_clip_no_longer_open_decodes_nothing() {
        let w = Worker::with_model(Box::new(FakeModel::new(Duration::ZERO))).unwrap();
        assert!(matches!(next(&w), Event::ModelLoaded { .. }));
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        for (job, clip) in [(1, "assets/jfk.wav"), (2, "tests/data/arctic_a0007.wav")] {
            w.send(Request::OpenClip(OpenClip {
                job,
                clip: ClipSource::Path(data.join(clip)),
                scoring: Scoring::every_layer(),
            }));
        }
        for (job, clip) in [(3, Some(1)), (4, Some(2)), (5, None)] {
            w.send(Request::Decode(Decode {
                job,
                clip,
                runs: vec![keyed(Method::Full, 1.0)],
                first: 0,
                params: Params::default(),
                decoding: Decoding::default(),
            }));
            let cells = loop {
                match next(&w) {
                    Event::DecodeFinished {
                        job: j, cancelled, ..
                    } if j == job => break (cancelled, 0),
                    Event::CellDone { job: j, .. } if j == job => {
                        let Event::DecodeFinished { cancelled, .. } = next(&w) else {
                            panic!("one cell, then the end")
                        };
                        break (cancelled, 1);
                    }
                    _ => {}
                }
            };
            // Only the clip the worker has now (arctic, job 2) is decoded.
            assert_eq!(
                cells,
                if job == 3 { (true, 0) } else { (false, 1) },
                "job {job}"
            );
        }
    }

    /// The worker wakes its caller at once for the scores, the cells decoded first and the end
    /// of a request, and within [`LATER`] for progress and the rest of the grid.
    #[test]
    fn wakes_at_once_only_for_what_the_user_waits_on() {
        let wakes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = wakes.clone();
        let w = Worker::spawn(move |within| log.lock().unwrap().push(within)).unwrap();
        w.send(Request::UseModel(Box::new(FakeModel::new(
            Duration::from_millis(1),
        ))));
        let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
        w.send(Request::OpenClip(OpenClip {
            job: 1,
            clip: ClipSource::Path(clip),
            scoring: Scoring::every_layer(),
        }));
        let spec = |m, keep| keyed(m, keep);
        w.send(Request::Decode(Decode {
            job: 2,
            clip: None,
            runs: vec![
                spec(Method::Segmentwise, 0.25),
                spec(Method::Full, 1.0),
                spec(Method::TopK, 0.5),
            ],
            first: 1,
            params: Params::default(),
            decoding: Decoding::default(),
        }));
        let mut events = Vec::new();
        loop {
            let e = next(&w);
            let end = matches!(e, Event::DecodeFinished { .. });
            events.push(e);
            if end {
                break;
            }
        }
        // The wake follows its event's send: give the last one a moment.
        let t0 = std::time::Instant::now();
        while wakes.lock().unwrap().len() < events.len() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let wakes = wakes.lock().unwrap().clone();
        assert_eq!(wakes.len(), events.len());
        let mut cells = 0;
        for (e, within) in events.iter().zip(&wakes) {
            let want = match e {
                Event::Progress { .. } => LATER,
                Event::CellDone { key, .. } => {
                    cells += 1;
                    if *key == keyed(Method::Segmentwise, 0.25).key {
                        Duration::ZERO
                    } else {
                        LATER
                    }
                }
                _ => Duration::ZERO,
            };
            assert_eq!(*within, want, "{e:?}");
        }
        assert_eq!(cells, 3);
    }

    #[test]
    fn bad_clip_and_bad_model_are_events() {
        let w = Worker::spawn(|_| {}).unwrap();
        w.send(Request::OpenClip(OpenClip {
            job: 7,
            clip: ClipSource::Path(PathBuf::from("/nonexistent/clip.wav")),
            scoring: Scoring::default(),
        }));
        assert!(matches!(next(&w), Event::ClipFailed { job: 7, .. }));
        w.send(Request::LoadModel {
            dir: PathBuf::from("/nonexistent/model"),
            options: LoadOptions::default(),
        });
        assert!(matches!(next(&w), Event::ModelFailed { .. }));
    }
}
