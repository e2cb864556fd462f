//! The lanes' textures, made once when a clip loads (the spectrogram) and when its scores come
//! (the score strip, the layer heat map): columns pooled the one way ([`pool`]), coloured by
//! the theme's ramp, uploaded to egui.

use egui::{Color32, TextureOptions};

use super::logic::{layers, pool};
use super::theme;
use crate::engine::worker::Spectrogram;
use crate::scores::{HeadReduce, LayerScores};

/// What the lanes draw from textures.
pub struct LaneTextures {
    pub spectrogram: egui::TextureHandle,
    /// The score strip (Figure 1 style): one texel per token, max-pooled to at most 4096.
    pub strip: Option<egui::TextureHandle>,
    /// The layer heat map and the head reduction it shows (None: one layer only).
    pub layers: Option<(HeadReduce, egui::TextureHandle)>,
}

/// How many columns a lane texture of `n` time steps gets: all of them up to 4096 (more than a
/// screen shows; longer clips are max-pooled in time), and never more than the renderer takes
/// (2048 on some GPUs and in the headless test renderer).
pub fn texture_columns(ctx: &egui::Context, n: usize) -> usize {
    let side = ctx.input(|i| i.max_texture_side).max(1);
    n.clamp(1, side.min(4096))
}

impl LaneTextures {
    pub fn new(ctx: &egui::Context, spectrogram: &Spectrogram) -> LaneTextures {
        LaneTextures {
            spectrogram: spectrogram_texture(ctx, spectrogram),
            strip: None,
            layers: None,
        }
    }

    /// Takes the clip's log-mel (a document's clip decoded after its scores showed).
    pub fn set_spectrogram(&mut self, ctx: &egui::Context, spectrogram: &Spectrogram) {
        self.spectrogram = spectrogram_texture(ctx, spectrogram);
    }

    /// Takes the clip's scores over their maximum (again when the score source changes).
    pub fn set_scores(&mut self, ctx: &egui::Context, norm: &[f32]) {
        let cols = texture_columns(ctx, norm.len());
        let pixels = pool::max_pool(norm, cols)
            .into_iter()
            .map(|v| theme::ramp(v.sqrt()))
            .collect();
        let img = egui::ColorImage::new([cols, 1], pixels);
        self.strip = (!norm.is_empty())
            .then(|| ctx.load_texture("score-strip", img, TextureOptions::NEAREST));
    }

    /// Takes every layer's scores (again when the head reduction changes).
    pub fn set_layers(&mut self, ctx: &egui::Context, layers: &[LayerScores], reduce: HeadReduce) {
        if self.layers.as_ref().is_some_and(|(r, _)| *r == reduce) {
            return;
        }
        self.layers = layer_texture(ctx, layers, reduce).map(|t| (reduce, t));
    }

    /// Forgets the layer heat map (a new encoding: its layers come next).
    pub fn clear_layers(&mut self) {
        self.layers = None;
    }
}

/// The spectrogram, low bins at the bottom, at most [`texture_columns`] wide (max-pooled in
/// time).
fn spectrogram_texture(ctx: &egui::Context, s: &Spectrogram) -> egui::TextureHandle {
    let cols = texture_columns(ctx, s.frames);
    let rows = s.n_mels.max(1);
    let mut pixels = vec![theme::LANE_BG; cols * rows];
    if s.frames > 0 && s.n_mels > 0 {
        for m in 0..rows {
            let pooled = pool::max_pool(&s.data[m * s.frames..(m + 1) * s.frames], cols);
            let line = &mut pixels[(rows - 1 - m) * cols..(rows - m) * cols];
            for (px, v) in line.iter_mut().zip(pooled) {
                // Whisper's log-mel lies in about [-1, 1.5].
                *px = theme::ramp((v + 1.0) / 2.2);
            }
        }
    }
    let img = egui::ColorImage::new([cols, rows], pixels);
    ctx.load_texture("spectrogram", img, TextureOptions::LINEAR)
}

/// The layer heat map: one row per layer (the first at the top), each over its own maximum.
fn layer_texture(
    ctx: &egui::Context,
    layers: &[LayerScores],
    reduce: HeadReduce,
) -> Option<egui::TextureHandle> {
    let n = layers.first()?.mean.len();
    let cols = texture_columns(ctx, n);
    let rows = layers::rows(layers, reduce, cols)?;
    let pixels: Vec<Color32> = rows
        .iter()
        .flatten()
        .map(|&v| theme::ramp(v.sqrt()))
        .collect();
    let img = egui::ColorImage::new([cols, rows.len()], pixels);
    Some(ctx.load_texture("layer-scores", img, TextureOptions::NEAREST))
}
