//! The desktop explorer (`prunescope [CLIP]`): time-aligned lanes (waveform, log-mel, received
//! attention with kept tokens and segment boundaries, score strip), playback, pruning controls,
//! and a grid of outputs per method x keep ratio that fills in as a background worker decodes.
//!
//! - `app`: state, frame, command handling and worker events;
//! - `timeline`, `compare`: pure logic (view/playback, grid cells, word diff, WER) with tests;
//! - `lanes`: painting; `theme`: every colour; `commands`: the command table;
//! - `audio_out`: cpal playback; `export`: PNG / CSV / JSON.

mod app;
pub mod audio_out;
pub mod commands;
pub mod compare;
mod export;
mod lanes;
pub mod theme;
pub mod timeline;

use std::path::PathBuf;

pub use app::{EframeApp, ExplorerApp, ModelSource, Settings, Startup};
pub use export::{lane_image, LaneData};

/// The default model directory, if one is on disk (see [`crate::model::default_dir`]). The GUI
/// never fetches; `prunescope [CLIP]` fetches before it opens the window.
pub fn default_model_dir() -> Option<PathBuf> {
    crate::model::default_dir()
}

/// Opens the explorer window, optionally with a clip; returns when the window closes.
pub fn run(clip: Option<PathBuf>) -> eframe::Result {
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
            let model = settings
                .last_model
                .clone()
                .filter(|d| d.is_dir())
                .or_else(default_model_dir)
                .map_or(ModelSource::None, ModelSource::Dir);
            let clip = clip.or_else(|| {
                settings
                    .recent_clips
                    .first()
                    .cloned()
                    .filter(|p| p.is_file())
            });
            let mut app = ExplorerApp::new(
                settings,
                Startup {
                    clip,
                    model,
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
