//! The score strip (Figure 1 style): the scores as one row of colour over the clip's tokens.

use egui_plot::{PlotImage, PlotPoint, PlotUi};

use super::context::LaneCtx;

pub fn items(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    let (Some(tex), Some(_)) = (&c.textures.strip, c.scores) else {
        return;
    };
    let len = c.n as f64 * c.spt;
    pui.image(
        PlotImage::new(
            "score",
            tex.id(),
            PlotPoint::new(len / 2.0, 0.5),
            [len as f32, 1.0],
        )
        .allow_hover(false),
    );
}
