//! The time-aligned lanes: waveform, log-mel, received attention (kept tokens, segment and window
//! boundaries, top 10) and the score strip, one egui_plot each, with their x axes and hover
//! cursor linked, and the time axis under the last. egui_plot zooms (ctrl/pinch + wheel), pans
//! (wheel, right drag) and labels; the app's [`View`] stays the one source of truth: a command
//! (zoom keys, fit, follow) sets the plots' bounds, and a user zoom or pan comes back as
//! [`Command::SetView`]. Clicks seek, primary drags select, a double click fits the clip.
//!
//! Drawn as egui_plot items: the waveform as one line through each pixel column's min and max,
//! the spectrogram and the score strip as images, the attention as bars, boundaries as vertical
//! lines, the selection as a span, the playhead as a line. Long clips are decimated to one
//! element per pixel column, so a frame costs the same on a 10-minute clip as on 10 s.

use egui::{RichText, TextureOptions};
use egui_plot::{
    Bar, BarChart, HLine, HoverPosition, MarkerShape, Plot, PlotImage, PlotPoint, PlotUi, Points,
    Span, Text, VLine,
};

use super::app::ExplorerApp;
use super::commands::Command;
use super::insight::{self, WordRef};
use super::theme;
use super::timeline::View;
use crate::engine::worker::Spectrogram;
use crate::model::scores::{HeadReduce, LayerScores, ScoreSource};

/// What the lanes draw from the clip, computed once when it loads (and when its scores come).
pub struct Cache {
    /// Min/max per 10 ms.
    pub summary: Vec<(f32, f32)>,
    /// Peak of the clip, so quiet clips stay readable.
    pub peak: f32,
    pub spectrogram: egui::TextureHandle,
    /// The score strip (Figure 1 style): one texel per token, max-pooled to at most 4096.
    pub strip: Option<egui::TextureHandle>,
    /// The layer heat map and the head reduction it shows (None: one layer only).
    pub layers: Option<(HeadReduce, egui::TextureHandle)>,
}

/// Min/max of every 160 samples (10 ms), so the waveform of a long clip costs one pass over
/// the visible buckets per frame.
pub fn wave_summary(samples: &[f32]) -> Vec<(f32, f32)> {
    samples
        .chunks(160)
        .map(|c| {
            c.iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
        })
        .collect()
}

impl Cache {
    pub fn new(ctx: &egui::Context, samples: &[f32], spectrogram: &Spectrogram) -> Cache {
        let summary = wave_summary(samples);
        let peak = summary
            .iter()
            .map(|(lo, hi)| lo.abs().max(hi.abs()))
            .fold(1e-6f32, f32::max);
        Cache {
            summary,
            peak,
            spectrogram: spectrogram_texture(ctx, spectrogram),
            strip: None,
            layers: None,
        }
    }

    /// Takes every layer's scores (again when the head reduction changes).
    pub fn set_layers(&mut self, ctx: &egui::Context, layers: &[LayerScores], reduce: HeadReduce) {
        if self.layers.as_ref().is_some_and(|(r, _)| *r == reduce) {
            return;
        }
        self.layers = insight::layer_texture(ctx, layers, reduce).map(|t| (reduce, t));
    }

    /// Takes the clip's normalised scores once encoded.
    pub fn set_scores(&mut self, ctx: &egui::Context, norm: &[f32]) {
        let cols = texture_columns(ctx, norm.len());
        let pixels = (0..cols)
            .map(|c| {
                let (a, b) = (c * norm.len() / cols, ((c + 1) * norm.len() / cols));
                let v = norm[a..b.max(a + 1).min(norm.len())]
                    .iter()
                    .fold(0.0f32, |m, &x| m.max(x));
                theme::ramp(v.sqrt())
            })
            .collect();
        let img = egui::ColorImage::new([cols, 1], pixels);
        self.strip = (!norm.is_empty())
            .then(|| ctx.load_texture("score-strip", img, TextureOptions::NEAREST));
    }
}

/// How many columns a lane texture of `n` time steps gets: all of them up to 4096 (more than a
/// screen shows; longer clips are max-pooled in time), and never more than the renderer takes
/// (2048 on some GPUs and in the headless test renderer).
pub(super) fn texture_columns(ctx: &egui::Context, n: usize) -> usize {
    let side = ctx.input(|i| i.max_texture_side).max(1);
    n.clamp(1, side.min(4096))
}

/// The spectrogram as a texture, at most [`texture_columns`] wide (max-pooled in time).
fn spectrogram_texture(ctx: &egui::Context, s: &Spectrogram) -> egui::TextureHandle {
    let cols = texture_columns(ctx, s.frames);
    let rows = s.n_mels.max(1);
    let mut pixels = vec![theme::LANE_BG; cols * rows];
    if s.frames > 0 && s.n_mels > 0 {
        for (c, px_col) in (0..cols).map(|c| (c, c * s.frames / cols)) {
            let end = ((c + 1) * s.frames / cols).max(px_col + 1);
            for m in 0..rows {
                let v = s.data[m * s.frames + px_col..m * s.frames + end]
                    .iter()
                    .fold(f32::MIN, |a, &b| a.max(b));
                // Whisper's log-mel lies in about [-1, 1.5]; low bins at the bottom.
                pixels[(rows - 1 - m) * cols + c] = theme::ramp((v + 1.0) / 2.2);
            }
        }
    }
    let img = egui::ColorImage::new([cols, rows], pixels);
    ctx.load_texture("spectrogram", img, TextureOptions::LINEAR)
}

/// The waveform's min and max per pixel column of the view: `(time, lo, hi)`.
pub fn wave_columns(
    view: &View,
    cols: usize,
    samples: &[f32],
    summary: &[(f32, f32)],
) -> Vec<(f64, f32, f32)> {
    let rate = f64::from(crate::SAMPLE_RATE);
    let per_col = view.span() * rate / cols.max(1) as f64;
    (0..cols)
        .map(|c| {
            let s0 = view.start * rate + c as f64 * per_col;
            let s1 = s0 + per_col;
            let (lo, hi) = if per_col >= 160.0 {
                let (b0, b1) = ((s0 / 160.0) as usize, (s1 / 160.0).ceil() as usize);
                summary
                    .get(b0.min(summary.len())..b1.min(summary.len()))
                    .unwrap_or(&[])
                    .iter()
                    .fold((0.0f32, 0.0f32), |(a, b), &(lo, hi)| (a.min(lo), b.max(hi)))
            } else {
                let (a, b) = (s0 as usize, (s1.ceil() as usize).max(s0 as usize + 1));
                samples
                    .get(a.min(samples.len())..b.min(samples.len()))
                    .unwrap_or(&[])
                    .iter()
                    .fold((0.0f32, 0.0f32), |(a, b), &x| (a.min(x), b.max(x)))
            };
            ((s0 + per_col / 2.0) / rate, lo, hi)
        })
        .collect()
}

/// One attention bar: `(centre s, width s, height, kept)`.
pub type BarSpec = (f64, f64, f32, bool);

/// The attention bars of the visible tokens: one per token, or one per pixel column when
/// tokens outnumber pixels (the tallest, kept if any is).
pub fn attention_bars(
    view: &View,
    cols: usize,
    norm: &[f32],
    kept: &[bool],
    spt: f64,
) -> Vec<BarSpec> {
    let n = norm.len();
    if n == 0 || spt <= 0.0 {
        return Vec::new();
    }
    let t0 = ((view.start / spt).floor().max(0.0) as usize).min(n);
    let t1 = ((view.end / spt).ceil().max(0.0) as usize).min(n);
    let is_kept = |t: usize| kept.get(t).copied().unwrap_or(false);
    let px_per_token = cols as f64 * spt / view.span();
    if px_per_token >= 1.0 {
        // A one-pixel gap between bars once they are wide enough to show it.
        let gap = if px_per_token > 4.0 {
            1.0 / px_per_token
        } else {
            0.0
        };
        return (t0..t1)
            .map(|t| {
                (
                    (t as f64 + 0.5) * spt,
                    spt * (1.0 - gap),
                    norm[t],
                    is_kept(t),
                )
            })
            .collect();
    }
    let col_s = view.span() / cols as f64;
    let mut out: Vec<BarSpec> = Vec::with_capacity(cols);
    for (t, &v) in norm.iter().enumerate().take(t1).skip(t0) {
        let c = (((t as f64 * spt) - view.start) / col_s).floor().max(0.0) as usize;
        let centre = view.start + (c as f64 + 0.5) * col_s;
        match out.last_mut() {
            Some(b) if (b.0 - centre).abs() < col_s * 0.5 => {
                b.2 = b.2.max(v);
                b.3 |= is_kept(t);
            }
            _ => out.push((centre, col_s, v, is_kept(t))),
        }
    }
    out
}

/// The lanes, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Wave,
    Spectrogram,
    Attention,
    /// The focused cell's words at their times.
    Words,
    /// Every encoder layer's scores, one row each (models with several layers).
    Layers,
    Strip,
}

impl Lane {
    const ALL: [Lane; 6] = [
        Lane::Wave,
        Lane::Spectrogram,
        Lane::Attention,
        Lane::Words,
        Lane::Layers,
        Lane::Strip,
    ];

    fn name(self) -> &'static str {
        match self {
            Lane::Wave => "waveform",
            Lane::Spectrogram => "log-mel",
            Lane::Attention => "attention",
            Lane::Words => "words",
            Lane::Layers => "layers",
            Lane::Strip => "score",
        }
    }

    fn height(self) -> f32 {
        match self {
            Lane::Wave => theme::WAVE_HEIGHT,
            Lane::Spectrogram => theme::SPEC_HEIGHT,
            Lane::Attention => theme::ATTENTION_HEIGHT,
            Lane::Words => theme::WORDS_HEIGHT,
            Lane::Layers => theme::LAYERS_HEIGHT,
            // The last lane carries the time axis.
            Lane::Strip => theme::STRIP_HEIGHT + theme::AXIS_HEIGHT,
        }
    }

    /// The lane's fixed y range.
    fn y_range(self) -> (f64, f64) {
        match self {
            Lane::Wave => (-1.0, 1.0),
            // Room above the tallest bar for the top-10 markers.
            Lane::Attention => (0.0, 1.16),
            Lane::Spectrogram | Lane::Strip | Lane::Words | Lane::Layers => (0.0, 1.0),
        }
    }
}

/// A time-axis label with as many decimals as the tick step needs.
fn time_label(t: f64, step: f64) -> String {
    if step < 0.1 {
        format!("{t:.2} s")
    } else if step < 1.0 {
        format!("{t:.1} s")
    } else {
        format!("{t:.0} s")
    }
}

impl ExplorerApp {
    pub(super) fn lanes_ui(&mut self, ui: &mut egui::Ui, transport: bool) {
        let (Some(clip), Some(cache)) = (&self.clip, &self.lane_cache) else {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                ui.heading("Open a clip to begin");
                ui.label("File > Open clip…, drop an audio file on the window, or run `prunescope CLIP`.");
            });
            return;
        };
        let view = clip.view;
        // The plots' bounds follow the view when a command or the playhead moved it.
        let set_bounds = self.lanes_view != Some(view);
        let group = ui.scope_id().with("lanes");
        let width = (ui.available_width() - theme::LABEL_WIDTH).max(100.0);
        let cols = width.max(1.0) as usize;
        let (mask, bounds, spans): (&[bool], &[usize], &[(usize, usize)]) = match &self.highlight {
            Some(h) => (&h.marks.kept, &h.marks.bounds, &h.marks.spans),
            None => (&[], &[], &[]),
        };
        let scores = clip.scores.as_ref();
        let spt = scores.map_or(0.02, |s| s.spt());
        let n = scores.map_or(0, |s| s.raw().len());
        let token_at = |x: f64| {
            let i = (x / spt).floor();
            (i >= 0.0 && (i as usize) < n).then_some(i as usize)
        };
        let status = if self.model.loading || self.model.name.is_some() {
            "encoding…"
        } else {
            "no model loaded"
        };
        let (selection, playhead) = (clip.playback.selection, clip.playback.position);
        // The focused cell's words (hovered cell, else the slider's), the hovered word's
        // attention, the layer heat map.
        let focus = self.focused_cell();
        let words = focus
            .and_then(|k| self.results.get(&k))
            .and_then(|r| r.words.as_deref())
            .unwrap_or(&[]);
        let hot_word = self
            .hovered_word
            .filter(|w| Some(w.cell) == focus)
            .map(|w| w.word);
        let overlay = self.word_overlay.as_deref();
        let layer_tex = cache.layers.as_ref().map(|(_, t)| t);
        let (n_layers, source) = scores.map_or((0, ScoreSource::default()), |s| {
            let src = &s.report.score_source;
            (
                s.layers.len(),
                ScoreSource {
                    layer: Some(src.layer),
                    head_reduce: src.head_reduce,
                },
            )
        });
        let px_per_s = cols as f64 / view.span().max(1e-9);
        let word_slack = 6.0 / px_per_s;
        let mut word_hover: Option<WordRef> = None;
        let mut hover_t: Option<f64> = None;
        let mut events: Vec<Command> = Vec::new();
        let mut new_view: Option<View> = None;
        let shown = Lane::ALL.into_iter().filter(|l| match l {
            Lane::Layers => layer_tex.is_some(),
            Lane::Words => scores.is_some(),
            _ => true,
        });
        for lane in shown {
            ui.horizontal(|ui| {
                ui.add_sized(
                    [theme::LABEL_WIDTH - 8.0, lane.height()],
                    egui::Label::new(RichText::new(lane.name()).size(12.0).color(theme::TEXT_DIM)),
                );
                let (y0, y1) = lane.y_range();
                let axis = lane == Lane::Strip;
                let mut plot = Plot::new(("lane", lane))
                    .width(width)
                    .height(lane.height())
                    .link_axis(group, [true, false])
                    .link_cursor(group, [true, false])
                    .allow_zoom([true, false])
                    .allow_scroll([true, false])
                    .allow_drag([true, false])
                    .pan_pointer_button(egui::PointerButton::Secondary)
                    .allow_boxed_zoom(false)
                    .allow_double_click_reset(false)
                    .allow_axis_zoom_drag(false)
                    .show_grid(false)
                    .show_axes([axis, false])
                    .show_background(true)
                    .set_margin_fraction(egui::Vec2::ZERO)
                    .cursor_color(theme::HOVER.gamma_multiply(0.5))
                    .x_axis_formatter(|mark, _| time_label(mark.value, mark.step_size));
                plot = match (lane, scores) {
                    (Lane::Attention | Lane::Strip, Some(s)) => {
                        plot.label_formatter(move |pos: &HoverPosition<'_>| {
                            let x = match pos {
                                HoverPosition::NearDataPoint { position, .. }
                                | HoverPosition::Elsewhere { position } => position.x,
                            };
                            let t = token_at(x)?;
                            let kept = mask.get(t).copied().unwrap_or(false);
                            Some(format!(
                                "token {t}\n{:.2} s – {:.2} s\nscore {:.5}\nnormalised {:.3}\n{}",
                                t as f64 * spt,
                                (t + 1) as f64 * spt,
                                s.raw()[t],
                                s.norm[t],
                                if kept { "kept" } else { "dropped" }
                            ))
                        })
                    }
                    (Lane::Words, _) => plot.label_formatter(move |pos: &HoverPosition<'_>| {
                        let x = match pos {
                            HoverPosition::NearDataPoint { position, .. }
                            | HoverPosition::Elsewhere { position } => position.x,
                        };
                        let w = &words[insight::word_at(words, x, word_slack)?];
                        Some(format!(
                            "{}\n{:.2} s – {:.2} s\nclick: play from here",
                            w.word.trim(),
                            w.start,
                            w.end
                        ))
                    }),
                    (Lane::Layers, _) => plot.label_formatter(move |pos: &HoverPosition<'_>| {
                        let y = match pos {
                            HoverPosition::NearDataPoint { position, .. }
                            | HoverPosition::Elsewhere { position } => position.y,
                        };
                        let l = insight::layer_at(y, n_layers)?;
                        Some(format!("layer {l}\nclick: rank tokens by this layer"))
                    }),
                    _ => plot.label_formatter(|_| None),
                };
                let resp = plot.show(ui, |pui| {
                    if set_bounds {
                        pui.set_plot_bounds_x(view.start..=view.end);
                    }
                    pui.set_plot_bounds_y(y0..=y1);
                    match lane {
                        Lane::Wave => {
                            let pts: Vec<[f64; 2]> =
                                wave_columns(&view, cols, &clip.samples, &cache.summary)
                                    .into_iter()
                                    .flat_map(|(t, lo, hi)| {
                                        [
                                            [t, f64::from(hi / cache.peak) * 0.9],
                                            [t, f64::from(lo / cache.peak) * 0.9],
                                        ]
                                    })
                                    .collect();
                            pui.line(
                                egui_plot::Line::new("waveform", pts)
                                    .color(theme::WAVE)
                                    .width(1.0)
                                    .allow_hover(false),
                            );
                        }
                        Lane::Spectrogram => pui.image(
                            PlotImage::new(
                                "log-mel",
                                cache.spectrogram.id(),
                                PlotPoint::new(clip.duration / 2.0, 0.5),
                                [clip.duration as f32, 1.0],
                            )
                            .allow_hover(false),
                        ),
                        Lane::Attention => match scores {
                            Some(s) => attention_items(
                                pui,
                                &AttentionView {
                                    bars: attention_bars(&view, cols, &s.norm, mask, spt),
                                    norm: &s.norm,
                                    bounds,
                                    spans,
                                    windows: &s.windows,
                                    top: &s.top,
                                    spt,
                                    overlay: overlay
                                        .map(|o| attention_bars(&view, cols, o, &[], spt)),
                                },
                            ),
                            None => pui.text(
                                Text::new(
                                    "status",
                                    PlotPoint::new(view.start + view.span() / 2.0, 0.58),
                                    status,
                                )
                                .color(theme::TEXT_DIM),
                            ),
                        },
                        Lane::Words if words.is_empty() => pui.text(
                            Text::new(
                                "hint",
                                PlotPoint::new(view.start + view.span() / 2.0, 0.5),
                                RichText::new(
                                    "the words of the hovered cell (or the slider's) show here",
                                )
                                .size(11.0),
                            )
                            .color(theme::TEXT_DIM),
                        ),
                        Lane::Words => {
                            insight::words_items(pui, words, hot_word, playhead, &view, px_per_s)
                        }
                        Lane::Layers => {
                            if let Some(tex) = layer_tex {
                                insight::layer_items(
                                    pui,
                                    tex,
                                    n_layers,
                                    source.layer.unwrap_or(0),
                                    n as f64 * spt,
                                    &view,
                                );
                            }
                        }
                        Lane::Strip => {
                            if let (Some(tex), Some(_)) = (&cache.strip, scores) {
                                let len = n as f64 * spt;
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
                        }
                    }
                    if let Some((a, b)) = selection {
                        pui.span(
                            Span::new("", a..=b)
                                .fill(theme::SELECTION)
                                .border_width(0.0),
                        );
                    }
                    pui.vline(
                        VLine::new("playhead", playhead)
                            .color(theme::PLAYHEAD)
                            .width(1.5)
                            .allow_hover(false),
                    );
                });
                let r = &resp.response;
                let b = resp.transform.bounds();
                let (x0, x1) = (b.min()[0], b.max()[0]);
                if (x0 - view.start).abs() + (x1 - view.end).abs() > 1e-9 * view.span() {
                    new_view = Some(View { start: x0, end: x1 });
                }
                let t_at = |pos: egui::Pos2| resp.transform.value_from_position(pos).x;
                let word_under = |pos: egui::Pos2| insight::word_at(words, t_at(pos), word_slack);
                if let Some(pos) = r.hover_pos() {
                    hover_t = Some(t_at(pos));
                    if lane == Lane::Words {
                        word_hover = focus
                            .zip(word_under(pos))
                            .map(|(cell, word)| WordRef { cell, word });
                    }
                }
                if r.double_clicked() {
                    events.push(Command::ZoomFit);
                } else if r.clicked() {
                    if let Some(pos) = r.interact_pointer_pos() {
                        match lane {
                            Lane::Layers => {
                                let y = resp.transform.value_from_position(pos).y;
                                if let Some(l) = insight::layer_at(y, n_layers) {
                                    // The last layer is the default source, named as such.
                                    let layer = (l + 1 < n_layers).then_some(l);
                                    events.push(Command::SetScoreSource(ScoreSource {
                                        layer,
                                        head_reduce: source.head_reduce,
                                    }));
                                }
                            }
                            _ => {
                                let t = match (lane, word_under(pos)) {
                                    (Lane::Words, Some(i)) => words[i].start,
                                    _ => t_at(pos),
                                };
                                events.push(Command::ClearSelection);
                                events.push(Command::Seek(t));
                            }
                        }
                    }
                }
                if r.drag_started_by(egui::PointerButton::Primary) {
                    self.drag_origin = r.interact_pointer_pos().map(t_at);
                }
                if let (Some(a), Some(pos)) = (self.drag_origin, r.interact_pointer_pos()) {
                    if r.dragged_by(egui::PointerButton::Primary) {
                        events.push(Command::Select(a, t_at(pos)));
                    }
                    if r.drag_stopped_by(egui::PointerButton::Primary) {
                        self.drag_origin = None;
                        let t = t_at(pos);
                        if (t - a).abs() >= 0.01 {
                            events.push(Command::Seek(a.min(t)));
                        }
                    }
                }
            });
        }
        self.lanes_view = Some(view);
        self.lanes_hover_t = hover_t;
        if word_hover.is_some() {
            self.word_hover_seen = word_hover;
        }
        if let Some(v) = new_view {
            events.push(Command::SetView(v));
        }
        for c in events {
            self.request(c);
        }
        if transport {
            ui.horizontal(|ui| {
                ui.add_space(theme::LABEL_WIDTH);
                self.transport(ui);
            });
        }
    }
}

/// What the attention lane shows.
struct AttentionView<'a> {
    bars: Vec<BarSpec>,
    norm: &'a [f32],
    bounds: &'a [usize],
    /// Merged groups of adjacent tokens, first and last.
    spans: &'a [(usize, usize)],
    windows: &'a [usize],
    top: &'a [usize],
    spt: f64,
    /// The hovered word's attention over the tokens, as bars.
    overlay: Option<Vec<BarSpec>>,
}

fn attention_items(pui: &mut PlotUi<'_>, a: &AttentionView<'_>) {
    // Neighbouring groups alternate in shade, so where one ends and the next begins shows.
    for (i, &(lo, hi)) in a.spans.iter().enumerate() {
        let shade = if i % 2 == 0 { 0.08 } else { 0.2 };
        pui.span(
            Span::new("", lo as f64 * a.spt..=(hi + 1) as f64 * a.spt)
                .fill(theme::KEPT.gamma_multiply(shade))
                .border_width(0.0),
        );
    }
    for q in 1..4 {
        pui.hline(
            HLine::new("guide", f64::from(q) / 4.0)
                .color(theme::GRID)
                .width(1.0)
                .allow_hover(false),
        );
    }
    let bars = a
        .bars
        .iter()
        .map(|&(x, w, h, kept)| {
            Bar::new(x, f64::from(h.clamp(0.0, 1.0)))
                .width(w)
                .fill(if kept { theme::KEPT } else { theme::DROPPED })
                .stroke(egui::Stroke::NONE)
        })
        .collect();
    pui.bar_chart(BarChart::new("attention", bars).allow_hover(false));
    if let Some(overlay) = &a.overlay {
        let bars = overlay
            .iter()
            .filter(|b| b.2 > 0.0)
            .map(|&(x, w, h, _)| {
                Bar::new(x, f64::from(h.clamp(0.0, 1.0)))
                    .width(w)
                    .fill(theme::WORD_HOVER.gamma_multiply(0.8))
                    .stroke(egui::Stroke::NONE)
            })
            .collect();
        pui.bar_chart(BarChart::new("word attention", bars).allow_hover(false));
    }
    let n = a.norm.len();
    for &b in a.bounds.iter().filter(|&&b| b > 0 && b < n) {
        pui.vline(
            VLine::new("segment", b as f64 * a.spt)
                .color(theme::SEGMENT)
                .width(1.0)
                .allow_hover(false),
        );
    }
    for &w in a.windows.iter().filter(|&&w| w > 0) {
        let x = w as f64 * a.spt;
        pui.vline(
            VLine::new("window", x)
                .color(theme::WINDOW)
                .width(2.0)
                .allow_hover(false),
        );
        pui.text(
            Text::new(
                "window",
                PlotPoint::new(x, 1.14),
                RichText::new(" window").size(10.0),
            )
            .color(theme::WINDOW)
            .anchor(egui::Align2::LEFT_TOP),
        );
    }
    let marks: Vec<[f64; 2]> = a
        .top
        .iter()
        .map(|&t| {
            [
                (t as f64 + 0.5) * a.spt,
                f64::from(a.norm[t].clamp(0.0, 1.0)) + 0.05,
            ]
        })
        .collect();
    for (rank, p) in marks.iter().enumerate().take(3) {
        pui.text(
            Text::new(
                "rank",
                PlotPoint::new(p[0], p[1] + 0.03),
                RichText::new(format!("{}", rank + 1)).size(10.0),
            )
            .color(theme::TOP)
            .anchor(egui::Align2::CENTER_BOTTOM),
        );
    }
    pui.points(
        Points::new("top 10", marks)
            .shape(MarkerShape::Down)
            .filled(true)
            .radius(4.0)
            .color(theme::TOP)
            .allow_hover(false),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_per_token_or_per_column() {
        let norm = vec![0.5f32; 100];
        let mut kept = vec![false; 100];
        kept[41] = true;
        let view = View {
            start: 0.0,
            end: 2.0,
        };
        // 100 tokens of 20 ms in 400 columns: one bar per token.
        let b = attention_bars(&view, 400, &norm, &kept, 0.02);
        assert_eq!(b.len(), 100);
        assert!((b[1].0 - 0.03).abs() < 1e-12);
        assert!(b[41].3 && !b[40].3);
        // In 10 columns: one bar per column, kept if any token of it is.
        let b = attention_bars(&view, 10, &norm, &kept, 0.02);
        assert_eq!(b.len(), 10);
        assert_eq!(b.iter().filter(|x| x.3).count(), 1);
        assert!(b[4].3);
        // A zoomed view only holds its tokens.
        let b = attention_bars(
            &View {
                start: 1.0,
                end: 1.2,
            },
            400,
            &norm,
            &kept,
            0.02,
        );
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn wave_columns_take_min_and_max() {
        let mut samples = vec![0.0f32; 16_000];
        samples[8000] = 0.9;
        samples[8001] = -0.4;
        let summary = wave_summary(&samples);
        let cols = wave_columns(
            &View {
                start: 0.0,
                end: 1.0,
            },
            10,
            &samples,
            &summary,
        );
        assert_eq!(cols.len(), 10);
        assert_eq!((cols[5].1, cols[5].2), (-0.4, 0.9));
        assert_eq!((cols[4].1, cols[4].2), (0.0, 0.0));
        // Zoomed in below one summary bucket per column: the samples themselves.
        let cols = wave_columns(
            &View {
                start: 0.5,
                end: 0.501,
            },
            16,
            &samples,
            &summary,
        );
        assert_eq!(cols[0].2, 0.9);
    }
}
