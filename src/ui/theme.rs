//! Every colour and size the explorer paints with, in one place (dark theme).

use egui::Color32;

/// Panel and lane backgrounds.
pub const BG: Color32 = Color32::from_rgb(0x16, 0x18, 0x1d);
pub const LANE_BG: Color32 = Color32::from_rgb(0x1e, 0x21, 0x28);
pub const GRID: Color32 = Color32::from_rgb(0x2e, 0x33, 0x3d);
pub const TEXT: Color32 = Color32::from_rgb(0xd8, 0xdc, 0xe4);
pub const TEXT_DIM: Color32 = Color32::from_rgb(0x8a, 0x91, 0x9e);

/// Kept tokens (the highlight colour) and dropped ones.
pub const KEPT: Color32 = Color32::from_rgb(0xff, 0xa9, 0x3a);
pub const DROPPED: Color32 = Color32::from_rgb(0x4a, 0x52, 0x60);
/// Segment boundaries.
pub const SEGMENT: Color32 = Color32::from_rgb(0x5c, 0xc8, 0xe6);
/// 30 s window boundaries of long clips.
pub const WINDOW: Color32 = Color32::from_rgb(0xb0, 0x7c, 0xff);
/// Top-10 markers.
pub const TOP: Color32 = Color32::from_rgb(0xff, 0x5d, 0x73);
pub const WAVE: Color32 = Color32::from_rgb(0x6e, 0xb5, 0xff);
pub const PLAYHEAD: Color32 = Color32::from_rgb(0xf4, 0xf4, 0xf4);
pub const SELECTION: Color32 = Color32::from_rgba_premultiplied(0x30, 0x48, 0x66, 0x60);
pub const HOVER: Color32 = Color32::from_rgb(0xff, 0xff, 0xff);

/// Word diff against the full-token output.
pub const DIFF_ADDED: Color32 = Color32::from_rgb(0x7d, 0xd3, 0x7d);
pub const DIFF_REMOVED: Color32 = Color32::from_rgb(0xf0, 0x6a, 0x6a);
/// The hovered word, its span in the words lane and its attention over the audio.
pub const WORD_HOVER: Color32 = Color32::from_rgb(0x4d, 0xe3, 0xc1);
/// The words being said at the playhead (or the hovered time) in every cell.
pub const WORD_NOW: Color32 = Color32::from_rgba_premultiplied(0x5a, 0x48, 0x1c, 0xc0);
pub const ERROR: Color32 = Color32::from_rgb(0xf0, 0x6a, 0x6a);
pub const OK: Color32 = Color32::from_rgb(0x7d, 0xd3, 0x7d);

/// Lane heights in points.
pub const WAVE_HEIGHT: f32 = 70.0;
pub const SPEC_HEIGHT: f32 = 90.0;
pub const ATTENTION_HEIGHT: f32 = 150.0;
pub const STRIP_HEIGHT: f32 = 14.0;
pub const WORDS_HEIGHT: f32 = 24.0;
/// The layer heat map (its rows share it).
pub const LAYERS_HEIGHT: f32 = 60.0;
/// A cell's text scrolls past this height (long clips' paragraphs).
pub const CELL_TEXT_HEIGHT: f32 = 120.0;
pub const AXIS_HEIGHT: f32 = 18.0;
/// Width of the lane name column left of the lanes.
pub const LABEL_WIDTH: f32 = 86.0;

/// A perceptual-ish colour ramp (dark blue -> teal -> yellow) for scores and the spectrogram;
/// `v` in [0, 1].
pub fn ramp(v: f32) -> Color32 {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.07, 0.06, 0.20]),
        (0.25, [0.23, 0.18, 0.55]),
        (0.5, [0.13, 0.55, 0.60]),
        (0.75, [0.45, 0.82, 0.38]),
        (1.0, [0.99, 0.91, 0.15]),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let i = STOPS.iter().rposition(|(p, _)| *p <= v).unwrap_or(0).min(3);
    let (p0, c0) = STOPS[i];
    let (p1, c1) = STOPS[i + 1];
    let t = (v - p0) / (p1 - p0);
    let ch = |k: usize| ((c0[k] + (c1[k] - c0[k]) * t) * 255.0).round() as u8;
    Color32::from_rgb(ch(0), ch(1), ch(2))
}

/// Applies the palette to egui's visuals.
pub fn apply(ctx: &egui::Context) {
    let mut v = egui::Visuals::dark();
    v.panel_fill = BG;
    v.window_fill = LANE_BG;
    v.extreme_bg_color = Color32::from_rgb(0x10, 0x12, 0x16);
    v.selection.bg_fill = Color32::from_rgb(0x8a, 0x5a, 0x1c);
    v.selection.stroke.color = KEPT;
    v.hyperlink_color = SEGMENT;
    ctx.set_visuals(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_ends_and_nan() {
        assert_eq!(ramp(0.0), ramp(-3.0));
        assert_eq!(ramp(1.0), ramp(7.0));
        assert_eq!(ramp(f32::NAN), ramp(0.0));
        assert_ne!(ramp(0.0), ramp(1.0));
    }
}
