//! The waveform lane: one line through each pixel column's min and max.

use egui_plot::{Line, PlotUi};

use super::context::LaneCtx;
use crate::ui::logic::pool;
use crate::ui::theme;

pub fn items(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    let clip = c.clip;
    let pts: Vec<[f64; 2]> = pool::wave_columns(&c.view, c.cols, &clip.samples, &clip.summary)
        .into_iter()
        .flat_map(|(t, lo, hi)| {
            [
                [t, f64::from(hi / clip.peak) * 0.9],
                [t, f64::from(lo / clip.peak) * 0.9],
            ]
        })
        .collect();
    pui.line(
        Line::new("waveform", pts)
            .color(theme::WAVE)
            .width(1.0)
            .allow_hover(false),
    );
}
