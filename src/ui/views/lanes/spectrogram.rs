//! The log-mel lane: the clip's spectrogram texture over its duration.

use egui_plot::{PlotImage, PlotPoint, PlotUi};

use super::context::LaneCtx;

pub fn items(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    let d = c.clip.duration;
    pui.image(
        PlotImage::new(
            "log-mel",
            c.textures.spectrogram.id(),
            PlotPoint::new(d / 2.0, 0.5),
            [d as f32, 1.0],
        )
        .allow_hover(false),
    );
}
