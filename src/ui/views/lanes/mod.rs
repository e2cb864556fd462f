//! The time-aligned lanes: waveform, log-mel, received attention (kept tokens, segment and window
//! boundaries, top 10), the focused cell's words, the layer heat map and the score strip, one
//! egui_plot each (a file per lane: its items, its hover label, its click), with their x axes
//! and hover cursor linked and the time axis under the last. egui_plot zooms (ctrl/pinch +
//! wheel), pans (wheel, right drag) and labels; the state's [`View`] stays the one source of
//! truth: a command (zoom keys, fit, follow) sets the plots' bounds, and a user zoom or pan
//! comes back as [`Command::SetView`]. Clicks seek, primary drags select, a double click fits
//! the clip. Long clips are decimated to one element per pixel column, so a frame costs the
//! same on a 10-minute clip as on 10 s.

mod attention;
mod context;
mod layers;
mod spectrogram;
mod strip;
mod wave;
mod words;

use egui::RichText;
use egui_plot::{HoverPosition, Plot, PlotMemory, PlotPoint, PlotUi, Span, VLine};

use self::context::LaneCtx;
use crate::ui::commands::Command;
use crate::ui::logic::marks::Marks;
use crate::ui::logic::timeline::View;
use crate::ui::logic::words::WordRef;
use crate::ui::state::{AppState, Clip, DocAudio, LanesHover, Scores};
use crate::ui::theme;

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

    /// Whether the lane is drawn for this clip.
    fn shown(self, c: &LaneCtx<'_>) -> bool {
        match self {
            Lane::Layers => c.textures.layers.is_some(),
            Lane::Words => c.scores.is_some(),
            _ => true,
        }
    }

    fn items(self, pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
        if let (Lane::Wave | Lane::Spectrogram, Some(note)) = (self, &c.audio_note) {
            let (y0, y1) = self.y_range();
            let at = egui_plot::PlotPoint::new(c.view.start + c.view.span() / 2.0, (y0 + y1) / 2.0);
            pui.text(
                egui_plot::Text::new("audio", at, RichText::new(note).color(theme::TEXT_DIM))
                    .allow_hover(false),
            );
            return;
        }
        match self {
            Lane::Wave => wave::items(pui, c),
            Lane::Spectrogram => spectrogram::items(pui, c),
            Lane::Attention => attention::items(pui, c),
            Lane::Words => words::items(pui, c),
            Lane::Layers => layers::items(pui, c),
            Lane::Strip => strip::items(pui, c),
        }
    }

    /// The hover label at a point of the lane.
    fn label(self, c: &LaneCtx<'_>, at: PlotPoint) -> Option<String> {
        match self {
            Lane::Attention | Lane::Strip => attention::label(c, at.x),
            Lane::Words => words::label(c, at.x),
            Lane::Layers => layers::label(c, at.y),
            Lane::Wave | Lane::Spectrogram => None,
        }
    }

    /// What a click at a point of the lane asks.
    fn click(self, c: &LaneCtx<'_>, at: PlotPoint) -> Vec<Command> {
        let seek = |t| vec![Command::ClearSelection, Command::Seek(t)];
        match self {
            Lane::Layers => layers::click(c, at.y).into_iter().collect(),
            Lane::Words => seek(words::click(c, at.x).unwrap_or(at.x)),
            _ => seek(at.x),
        }
    }
}

/// No marks before the highlight is computed.
static NO_MARKS: std::sync::LazyLock<Marks> = std::sync::LazyLock::new(Marks::default);

pub fn lanes(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let (Some(clip), Some(textures)) = (&s.clip, &s.textures) else {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            ui.heading("Open a clip to begin");
            ui.label(
                "File > Open clip…, drop an audio file on the window, or run `prunescope CLIP`.",
            );
        });
        return;
    };
    let width = (ui.available_width() - theme::LABEL_WIDTH).max(100.0);
    let scores = clip.scores.as_ref();
    let focus = s.focused_cell();
    let c = LaneCtx {
        clip,
        textures,
        scores,
        marks: s.marks().unwrap_or(&NO_MARKS),
        view: clip.view,
        cols: width.max(1.0) as usize,
        spt: scores.map_or(0.02, Scores::spt),
        n: scores.map_or(0, |sc| sc.ranked().len()),
        focus,
        words: s
            .result(&focus)
            .and_then(|r| r.words.as_deref())
            .unwrap_or(&[]),
        hot_word: s.hovered_word().filter(|w| w.cell == focus).map(|w| w.word),
        drop_layer: s.result(&focus).and_then(|r| r.drop_layer),
        overlay: s.word_overlay(),
        waiting: if s.model.loading || s.model.label.is_some() {
            "encoding…"
        } else {
            "no model loaded"
        },
        audio_note: clip.document.as_ref().and_then(|d| match &d.audio {
            DocAudio::Found => None,
            DocAudio::Decoding => Some("decoding the audio…".to_string()),
            DocAudio::Missing(why) => Some(why.clone()),
        }),
    };
    let group = ui.scope_id().with("lanes");
    let mut hover: Option<LanesHover> = None;
    let mut new_view = None;
    for lane in Lane::ALL.into_iter().filter(|l| l.shown(&c)) {
        ui.horizontal(|ui| {
            ui.add_sized(
                [theme::LABEL_WIDTH - 8.0, lane.height()],
                egui::Label::new(RichText::new(lane.name()).size(12.0).color(theme::TEXT_DIM)),
            );
            let seen = lane_plot(ui, lane, &c, group, width, out);
            hover = hover.or(seen.hover);
            new_view = new_view.or(seen.view);
        });
    }
    if let Some(v) = new_view {
        out.push(Command::SetView(v));
    }
    if hover != s.hover.lanes {
        out.push(Command::HoverLanes(hover));
    }
}

/// What the pointer did to one lane's plot beyond its commands.
struct Seen {
    hover: Option<LanesHover>,
    /// The range the user zoomed or panned the plot to.
    view: Option<View>,
}

fn lane_plot(
    ui: &mut egui::Ui,
    lane: Lane,
    c: &LaneCtx<'_>,
    group: egui::Id,
    width: f32,
    out: &mut Vec<Command>,
) -> Seen {
    let view = c.view;
    let id = group.with(lane);
    // The plots' bounds follow the view when a command or the playhead moved it: egui_plot
    // remembers the bounds it showed last.
    let shown = PlotMemory::load(ui.ctx(), id).map(|m| {
        let b = m.bounds();
        View {
            start: b.min()[0],
            end: b.max()[0],
        }
    });
    let set_bounds = !shown.is_some_and(|s| same_range(&s, &view));
    let (y0, y1) = lane.y_range();
    let plot = Plot::new(("lane", lane))
        .id(id)
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
        .show_axes([lane == Lane::Strip, false])
        .show_background(true)
        .set_margin_fraction(egui::Vec2::ZERO)
        .cursor_color(theme::HOVER.gamma_multiply(0.5))
        .x_axis_formatter(|mark, _| time_label(mark.value, mark.step_size))
        .label_formatter(|pos: &HoverPosition<'_>| {
            let at = match pos {
                HoverPosition::NearDataPoint { position, .. }
                | HoverPosition::Elsewhere { position } => *position,
            };
            lane.label(c, at)
        });
    let resp = plot.show(ui, |pui| {
        if set_bounds {
            pui.set_plot_bounds_x(view.start..=view.end);
        }
        pui.set_plot_bounds_y(y0..=y1);
        lane.items(pui, c);
        overlays(pui, c.clip);
    });
    let b = resp.transform.bounds();
    let (x0, x1) = (b.min()[0], b.max()[0]);
    let moved = !same_range(&View { start: x0, end: x1 }, &view);
    let at = |pos: egui::Pos2| resp.transform.value_from_position(pos);
    let r = &resp.response;
    let hover = r.hover_pos().map(|pos| {
        let p = at(pos);
        let word = (lane == Lane::Words)
            .then(|| words::word_at(c, p.x))
            .flatten()
            .map(|word| WordRef {
                cell: c.focus,
                word,
            });
        LanesHover { t: p.x, word }
    });
    if r.double_clicked() {
        out.push(Command::ZoomFit);
    } else if r.clicked() {
        if let Some(pos) = r.interact_pointer_pos() {
            out.extend(lane.click(c, at(pos)));
        }
    }
    select(ui, r, &at, out);
    Seen {
        hover,
        view: moved.then_some(View { start: x0, end: x1 }),
    }
}

/// A primary drag selects from where the button went down; letting go seeks to its start.
fn select(
    ui: &egui::Ui,
    r: &egui::Response,
    at: &dyn Fn(egui::Pos2) -> PlotPoint,
    out: &mut Vec<Command>,
) {
    let Some(origin) = ui.input(|i| i.pointer.press_origin()).map(|p| at(p).x) else {
        return;
    };
    let Some(pos) = r.interact_pointer_pos() else {
        return;
    };
    let t = at(pos).x;
    if r.dragged_by(egui::PointerButton::Primary) {
        out.push(Command::Select(origin, t));
    }
    if r.drag_stopped_by(egui::PointerButton::Primary) && (t - origin).abs() >= 0.01 {
        out.push(Command::Seek(origin.min(t)));
    }
}

/// The selection and the playhead, over every lane.
fn overlays(pui: &mut PlotUi<'_>, clip: &Clip) {
    if let Some((a, b)) = clip.playback.selection {
        pui.span(
            Span::new("", a..=b)
                .fill(theme::SELECTION)
                .border_width(0.0),
        );
    }
    pui.vline(
        VLine::new("playhead", clip.playback.position)
            .color(theme::PLAYHEAD)
            .width(1.5)
            .allow_hover(false),
    );
}

/// Whether two ranges are the same but for rounding.
fn same_range(a: &View, b: &View) -> bool {
    (a.start - b.start).abs() + (a.end - b.end).abs() <= 1e-9 * b.span()
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
