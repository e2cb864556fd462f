//! The desktop explorer (`prunescope [CLIP]`): time-aligned lanes (waveform, log-mel, received
//! attention with kept tokens and segment boundaries, words, layers, score strip), playback,
//! pruning controls, and a grid of outputs per method x keep ratio that fills in as a background
//! worker decodes.
//!
//! Rooms, each importing only those before it (docs/ARCHITECTURE.md):
//! - `theme`: every colour and size; `logic/`: pure, no egui (timeline, grid cells and
//!   requests, cell views, marks, words, layers, column pooling), unit-tested;
//! - `textures`: the lanes' textures; `settings`: what is remembered; `state`: what the views
//!   draw from (results cache, hover, highlight, windows);
//! - `commands`: the commands with their data, and the one table menus, shortcuts and help read;
//! - `views/`: functions of the state that draw it and push commands;
//! - `export` (PNG / CSV / JSON), `audio_out` (cpal playback), `background` (file dialog, drag
//!   and drop, sound device), and `app/`: owns the worker, the sound device and the dialogs;
//!   applies commands and events once per frame.

mod app;
pub mod audio_out;
mod background;
pub mod commands;
mod export;
pub mod logic;
pub mod settings;
pub mod state;
pub mod textures;
pub mod theme;
mod views;

use std::path::PathBuf;

pub use app::{EframeApp, ExplorerApp};
pub use export::{lane_image, LaneData};
pub use settings::Settings;
pub use state::{ModelSource, Startup};

/// The default model directory, if one is on disk (see [`crate::model::default_dir`]). The GUI
/// never fetches; `prunescope [CLIP]` fetches before it opens the window.
pub fn default_model_dir() -> Option<PathBuf> {
    crate::model::default_dir()
}

/// What the window opens first: a clip (None: the last one), or a document read already
/// (an analysis, a workspace, an eval run: `prunescope open PATH`).
pub enum Launch {
    Clip(Option<PathBuf>),
    Document(PathBuf, crate::document::Opened),
}

/// Opens the explorer window on `launch`, with `model` (None: the last model directory used,
/// else the default; a document opens with none unless asked), local directories loaded with
/// `load`; returns when the window closes.
pub fn run(
    launch: Launch,
    model: Option<ModelSource>,
    load: crate::model::LoadOptions,
) -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("prunescope")
            .with_inner_size([1480.0, 940.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "prunescope",
        options,
        Box::new(move |cc| {
            let settings: Settings = cc
                .storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default();
            let (clip, document) = match launch {
                Launch::Clip(clip) => (
                    clip.or_else(|| {
                        settings
                            .recent_clips
                            .first()
                            .cloned()
                            .filter(|p| p.is_file())
                    }),
                    None,
                ),
                Launch::Document(path, opened) => (None, Some((path, opened))),
            };
            let model = model.unwrap_or_else(|| {
                if document.is_some() {
                    return ModelSource::None;
                }
                settings
                    .last_model
                    .clone()
                    .filter(|d| d.is_dir())
                    .or_else(default_model_dir)
                    .map_or(ModelSource::None, ModelSource::Dir)
            });
            let mut app = ExplorerApp::new(
                settings,
                Startup {
                    clip,
                    document,
                    model,
                    load,
                    audio: true,
                },
            );
            if let Some(p) = std::env::var_os("PRUNESCOPE_READY_FILE") {
                app.set_ready_file(PathBuf::from(p));
            }
            if let Some(t) = std::env::var("PRUNESCOPE_SEEK")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                app.set_initial_seek(t);
            }
            Ok(Box::new(EframeApp(app)))
        }),
    )
}
