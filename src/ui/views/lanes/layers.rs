//! The layer lane: the heat map of every encoder layer's scores over the clip's tokens, the
//! selected layer outlined, each row's number at the left of the view. Rows run top (layer 0)
//! to bottom in `[0, 1]`; clicking a row makes its scores drive every method.

use egui::RichText;
use egui_plot::{Line, PlotImage, PlotPoint, PlotUi, Text};

use super::context::LaneCtx;
use crate::scores::ScoreSource;
use crate::ui::commands::Command;
use crate::ui::logic::layers;
use crate::ui::theme;

fn count(c: &LaneCtx<'_>) -> usize {
    c.scores.map_or(0, |s| s.layers.len())
}

pub fn items(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    let Some((_, tex)) = &c.textures.layers else {
        return;
    };
    let (n_layers, selected) = (count(c), c.source().layer.unwrap_or(0));
    let len_s = c.n as f64 * c.spt;
    pui.image(
        PlotImage::new(
            "layers",
            tex.id(),
            PlotPoint::new(len_s / 2.0, 0.5),
            [len_s as f32, 1.0],
        )
        .allow_hover(false),
    );
    let h = 1.0 / n_layers.max(1) as f64;
    let (top, bottom) = (1.0 - selected as f64 * h, 1.0 - (selected + 1) as f64 * h);
    let outline = vec![
        [0.0, top],
        [len_s, top],
        [len_s, bottom],
        [0.0, bottom],
        [0.0, top],
    ];
    pui.line(
        Line::new("selected layer", outline)
            .color(theme::HOVER)
            .width(1.5)
            .allow_hover(false),
    );
    // Where the focused `encoderdrop` cell dropped its tokens: between its rows L - 1 and L.
    if let Some(l) = c.drop_layer.filter(|&l| l > 0 && l < n_layers) {
        let y = 1.0 - l as f64 * h;
        pui.line(
            Line::new("drop", vec![[0.0, y], [len_s, y]])
                .color(theme::KEPT)
                .width(2.0)
                .style(egui_plot::LineStyle::dashed_loose())
                .allow_hover(false),
        );
        pui.text(
            Text::new(
                "drop",
                PlotPoint::new(c.view.end, y),
                RichText::new(format!(
                    "encoderdrop: layers {l}+ read the kept tokens only "
                ))
                .size(9.0),
            )
            .color(theme::KEPT)
            .anchor(egui::Align2::RIGHT_BOTTOM),
        );
    }
    for l in 0..n_layers {
        let y = 1.0 - (l as f64 + 0.5) * h;
        let colour = if l == selected {
            theme::HOVER
        } else {
            theme::TEXT_DIM
        };
        pui.text(
            Text::new(
                "layer",
                PlotPoint::new(c.view.start, y),
                RichText::new(format!(" {l}")).size(9.0).strong(),
            )
            .color(colour)
            .anchor(egui::Align2::LEFT_CENTER),
        );
    }
}

pub fn label(c: &LaneCtx<'_>, y: f64) -> Option<String> {
    let l = layers::layer_at(y, count(c))?;
    Some(format!("layer {l}\nclick: rank tokens by this layer"))
}

/// Ranks tokens by the clicked row's layer (the last layer is the default source, named as
/// such).
pub fn click(c: &LaneCtx<'_>, y: f64) -> Option<Command> {
    let n_layers = count(c);
    let l = layers::layer_at(y, n_layers)?;
    Some(Command::SetScoreSource(ScoreSource {
        layer: (l + 1 < n_layers).then_some(l),
        head_reduce: c.source().head_reduce,
    }))
}
