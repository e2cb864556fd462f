//! Helpers that work beside the frame: the system file dialog on its own thread, the reading
//! of documents and eval runs and the decoding of their clips on another ([`Loader`]), files
//! dropped on the window, and the sound device. Each turns what happened into a [`Command`]
//! for the app's one handler, a [`Loaded`] for it to install, or a message for the status line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::document::workspace::ExplorerView;
use crate::document::{self, Located, Opened};
use crate::engine::worker::{self, ClipSource, Spectrogram};
use crate::engine::Analysis;
use crate::eval::by_clip::{self, Table};
use crate::eval::runner::Results;

use super::audio_out::AudioOut;
use super::commands::Command;
use super::state::PathTarget;

/// Documents the open dialog offers: analyses, workspaces, eval results.
const DOCUMENT_EXTENSIONS: [&str; 3] = ["json", "prunescope", "jsonl"];

/// Audio files the clip dialog offers.
const AUDIO_EXTENSIONS: [&str; 9] = [
    "wav", "flac", "mp3", "ogg", "m4a", "mp4", "aac", "webm", "mkv",
];

/// A system file dialog running on a helper thread (it blocks for as long as the user browses).
pub struct Dialog {
    target: PathTarget,
    started: Instant,
    rx: crossbeam_channel::Receiver<Option<PathBuf>>,
}

/// What a dialog came back with.
pub enum Picked {
    Path(Command),
    /// It returned nothing at once: there is no dialog backend; the path window takes over.
    Unavailable(PathTarget),
    /// The user closed it.
    Nothing,
}

impl Dialog {
    /// Opens the dialog; None when no thread could be started (the path window takes over).
    /// `name`: the file name a save dialog suggests.
    pub fn open(
        target: PathTarget,
        name: Option<String>,
        ctx: Option<egui::Context>,
    ) -> Option<Dialog> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let d = rfd::FileDialog::new();
                let picked = match target {
                    PathTarget::Clip => d.add_filter("audio", &AUDIO_EXTENSIONS).pick_file(),
                    PathTarget::Document => d
                        .add_filter("analyses, workspaces, eval results", &DOCUMENT_EXTENSIONS)
                        .pick_file(),
                    PathTarget::Model | PathTarget::Run => d.pick_folder(),
                    PathTarget::SaveWorkspace => d
                        .add_filter("workspace", &["prunescope"])
                        .set_file_name(name.unwrap_or_default())
                        .save_file(),
                };
                let _ = tx.send(picked);
                if let Some(c) = ctx {
                    c.request_repaint();
                }
            })
            .ok()?;
        Some(Dialog {
            target,
            started: Instant::now(),
            rx,
        })
    }

    /// The answer once the dialog has closed.
    pub fn poll(&self) -> Option<Picked> {
        let picked = self.rx.try_recv().ok()?;
        let quick = self.started.elapsed() < Duration::from_millis(400);
        Some(match picked {
            Some(p) => Picked::Path(Command::open(self.target, p)),
            None if quick => Picked::Unavailable(self.target),
            None => Picked::Nothing,
        })
    }
}

/// Files dropped on the window this frame: an analysis, workspace or eval run (a results
/// file, or the folder that holds it) opens as a document, another folder is a model, another
/// file a clip.
pub fn dropped(ctx: &egui::Context) -> Vec<Command> {
    ctx.input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| {
                if document::is_document(&p) {
                    Command::OpenDocument(p)
                } else if p.is_dir() {
                    Command::LoadModel(p)
                } else {
                    Command::OpenClip(p)
                }
            })
            .collect()
    })
}

/// What the [`Loader`] brings back, with the job it was asked under.
pub enum Loaded {
    /// An analysis or a workspace read, its clip located (an eval run comes as
    /// [`Loaded::Run`]), or why it cannot be opened.
    Document {
        job: u64,
        path: PathBuf,
        opened: Result<Box<Shown>, String>,
    },
    /// An eval run with every clip's metric (`note`: how MMAU answers were matched, when not
    /// by sentence embeddings).
    Run {
        job: u64,
        path: PathBuf,
        results: Box<Results>,
        table: Table,
        note: Option<String>,
    },
    /// A document's clip decoded, with its log-mel, or why not.
    Audio {
        job: u64,
        audio: Result<(Arc<Vec<f32>>, Spectrogram), String>,
    },
}

/// An analysis or a workspace ready to show: the document, a workspace's own view, where its
/// clip is, and why a workspace's embedded clip could not be used (its bytes altered).
pub struct Shown {
    pub analysis: Analysis,
    pub view: Option<ExplorerView>,
    pub clip: Located,
    pub warning: Option<String>,
}

/// Reads documents and decodes their clips on helper threads, so a 10-minute clip's workspace
/// or a 1,000-clip run never stalls a frame.
pub struct Loader {
    tx: crossbeam_channel::Sender<Loaded>,
    rx: crossbeam_channel::Receiver<Loaded>,
    wake: Arc<dyn Fn(Duration) + Send + Sync>,
}

impl Loader {
    pub fn new(wake: impl Fn(Duration) + Send + Sync + 'static) -> Loader {
        let (tx, rx) = crossbeam_channel::unbounded();
        Loader {
            tx,
            rx,
            wake: Arc::new(wake),
        }
    }

    /// What came back, if anything.
    pub fn try_recv(&self) -> Option<Loaded> {
        self.rx.try_recv().ok()
    }

    /// Runs `work` on a helper thread; what it returns comes back (or, when no thread can be
    /// started, `failed` with the reason).
    fn spawn(
        &self,
        work: impl FnOnce() -> Loaded + Send + 'static,
        failed: impl FnOnce(String) -> Loaded,
    ) {
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        let started = std::thread::Builder::new()
            .name("loader".into())
            .spawn(move || {
                let _ = tx.send(work());
                wake(Duration::ZERO);
            });
        if let Err(e) = started {
            let _ = self.tx.send(failed(format!("cannot start a thread: {e}")));
        }
    }

    /// Reads `path`: an analysis, a workspace or an eval run, then what [`Self::prepare`] does.
    pub fn read(&self, job: u64, path: PathBuf) {
        let p = path.clone();
        self.spawn(
            move || match document::open(&path) {
                Ok(opened) => prepared(job, path, opened),
                Err(e) => Loaded::Document {
                    job,
                    path,
                    opened: Err(e.to_string()),
                },
            },
            move |e| Loaded::Document {
                job,
                path: p,
                opened: Err(e),
            },
        );
    }

    /// Makes a document read already (`prunescope open PATH`) ready to show: an analysis's or
    /// workspace's clip located (a workspace's embedded bytes decoded and checked, a file on
    /// disk hashed), a run's table computed.
    pub fn prepare(&self, job: u64, path: PathBuf, opened: Opened) {
        let p = path.clone();
        self.spawn(
            move || prepared(job, path, opened),
            move |e| Loaded::Document {
                job,
                path: p,
                opened: Err(e),
            },
        );
    }

    /// Decodes a document's clip and its log-mel.
    pub fn decode(&self, job: u64, source: ClipSource) {
        self.spawn(
            move || Loaded::Audio {
                job,
                audio: source
                    .load()
                    .map(|a| {
                        let mel = worker::spectrogram(&a);
                        (a.samples, mel)
                    })
                    .map_err(|e| e.to_string()),
            },
            move |e| Loaded::Audio { job, audio: Err(e) },
        );
    }
}

/// What [`Loader::prepare`] does, on the helper thread.
fn prepared(job: u64, path: PathBuf, opened: Opened) -> Loaded {
    let (analysis, view, clip, warning) = match opened {
        Opened::Run(results) => return tabulate(job, path, *results),
        Opened::Analysis(a) => {
            let clip = document::locate_clip(&path, &a.report.clip.path, None, None);
            (*a, None, clip, None)
        }
        Opened::Workspace(w) => {
            let (embedded, warning) = match w.embedded_clip(&path) {
                Ok(b) => (b, None),
                Err(e) => (None, Some(e.to_string())),
            };
            let clip = document::locate_clip(&path, &w.clip.path, Some(&w.clip.sha256), embedded);
            let w = *w;
            (w.analysis, Some(w.explorer), clip, warning)
        }
    };
    Loaded::Document {
        job,
        path,
        opened: Ok(Box::new(Shown {
            analysis,
            view,
            clip,
            warning,
        })),
    }
}

/// Every clip's metric under every setting of a run.
fn tabulate(job: u64, path: PathBuf, results: Results) -> Loaded {
    let (scorer, note) = if results.header.dataset == "mmau" {
        crate::eval::embed::auto_scorer()
    } else {
        let lexical: Box<dyn crate::eval::metrics::accuracy::OptionScorer> =
            Box::new(crate::eval::metrics::accuracy::LexicalScorer);
        (lexical, None)
    };
    let table = by_clip::table(&results, scorer.as_ref());
    Loaded::Run {
        job,
        path,
        results: Box::new(results),
        table,
        note,
    }
}

/// The sound device, opened on the first frame; without one, playback runs on the frame clock.
pub struct Sound {
    pub out: Option<AudioOut>,
    want: bool,
}

impl Sound {
    pub fn new(want: bool) -> Sound {
        Sound { out: None, want }
    }

    /// Opens the device if asked and not tried yet; the error (once) for the status line.
    pub fn open_once(&mut self, clip: Option<&std::sync::Arc<Vec<f32>>>) -> Option<String> {
        if !std::mem::take(&mut self.want) {
            return None;
        }
        match AudioOut::open() {
            Ok(a) => {
                if let Some(c) = clip {
                    a.set_clip(c.clone());
                }
                self.out = Some(a);
                None
            }
            Err(e) => Some(format!(
                "audio output unavailable ({e}); everything else works"
            )),
        }
    }
}
