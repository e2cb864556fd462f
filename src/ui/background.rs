//! Helpers that work beside the frame: the system file dialog on its own thread, files dropped on
//! the window, and the sound device. Each turns what happened into a [`Command`] for the app's
//! one handler, or a message for the status line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::audio_out::AudioOut;
use super::commands::Command;
use super::state::PathTarget;

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
    pub fn open(target: PathTarget, ctx: Option<egui::Context>) -> Option<Dialog> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let d = rfd::FileDialog::new();
                let picked = match target {
                    PathTarget::Clip => d.add_filter("audio", &AUDIO_EXTENSIONS).pick_file(),
                    PathTarget::Model => d.pick_folder(),
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

/// Files dropped on the window this frame: a folder is a model, a file a clip.
pub fn dropped(ctx: &egui::Context) -> Vec<Command> {
    ctx.input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| {
                if p.is_dir() {
                    Command::LoadModel(p)
                } else {
                    Command::OpenClip(p)
                }
            })
            .collect()
    })
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
