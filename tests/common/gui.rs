//! The explorer under egui_kittest, as the GUI tests and the monkey drive it.

use std::path::PathBuf;
use std::time::Duration;

use egui_kittest::Harness;
use prunescope::model::fake::FakeModel;
use prunescope::model::AudioLanguageModel;
use prunescope::ui::{ExplorerApp, ModelSource, Settings, Startup};

/// The explorer with `model` handed over, on `clip`.
pub fn model_app(clip: Option<PathBuf>, model: Box<dyn AudioLanguageModel>) -> ExplorerApp {
    ExplorerApp::new(
        Settings::default(),
        Startup {
            document: None,
            clip,
            model: ModelSource::Given(model),
            audio: false,
            load: Default::default(),
        },
    )
}

/// The explorer with the fake model (each decoding step `step`), on `clip`.
pub fn fake_app(clip: Option<PathBuf>, step: Duration) -> ExplorerApp {
    model_app(clip, Box::new(FakeModel::new(step)))
}

/// A 1400 x 900 window around `app`.
pub fn harness(app: ExplorerApp) -> Harness<'static, ExplorerApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_max_steps(1000)
        .build_ui_state(|ui, app: &mut ExplorerApp| app.show(ui), app)
}
