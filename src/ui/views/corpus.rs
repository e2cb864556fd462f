//! The corpus page: an eval run as a table of clips, one column per setting with each clip's
//! value of the run's main metric (WER %, CIDEr-D, accuracy), the corpus value of each
//! setting above, and the difference between two chosen settings with its paired bootstrap
//! 95 % interval. A header sorts by its column (again: the other way); a clip's name opens it
//! with the run's stored outputs.

use egui::RichText;

use crate::ui::commands::Command;
use crate::ui::state::{AppState, Corpus, Page, SortBy};
use crate::ui::theme;

const ID_W: f32 = 220.0;
const VALUE_W: f32 = 92.0;
const ROW_H: f32 = 22.0;

pub fn page(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let Some(c) = &s.corpus else {
        return;
    };
    summary(ui, s, c, out);
    ui.add_space(6.0);
    chooser(ui, c, out);
    ui.add_space(6.0);
    egui::ScrollArea::horizontal()
        .id_salt("corpus-x")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.vertical(|ui| {
                header(ui, c, out);
                corpus_row(ui, c);
                ui.separator();
                body(ui, c, out);
            });
        });
}

/// What the run is, and the way back to the clip.
fn summary(ui: &mut egui::Ui, s: &AppState, c: &Corpus, out: &mut Vec<Command>) {
    let h = &c.results.header;
    ui.horizontal_wrapped(|ui| {
        if s.clip.is_some() && ui.button("Back to the clip").clicked() {
            out.push(Command::ShowPage(Page::Clip));
        }
        ui.label(
            RichText::new(format!(
                "{} · {} · {}",
                h.dataset,
                h.model,
                c.path.display()
            ))
            .strong()
            .color(theme::TEXT),
        );
        let mut text = format!("{} clip(s)", c.table.clips.len());
        if c.table.failed > 0 {
            text += &format!(", {} failed to run", c.table.failed);
        }
        let better = if c.table.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        text += &format!(" · {} per clip ({better})", c.table.metric);
        ui.label(RichText::new(text).color(theme::TEXT_DIM));
        if let Some(n) = &c.scorer_note {
            ui.label(RichText::new(n).small().color(theme::TEXT_DIM));
        }
    });
}

/// The two settings compared, and the corpus difference with its interval.
fn chooser(ui: &mut egui::Ui, c: &Corpus, out: &mut Vec<Command>) {
    let settings = &c.table.settings;
    let (mut a, mut b) = (c.a, c.b);
    ui.horizontal(|ui| {
        ui.label("Compare");
        for (id, pick) in [("A", &mut a), ("B", &mut b)] {
            egui::ComboBox::from_id_salt(("compare", id))
                .selected_text(format!("{id}: {}", settings.get(*pick).map_or("", |x| x)))
                .show_ui(ui, |ui| {
                    for (j, name) in settings.iter().enumerate() {
                        ui.selectable_value(pick, j, name);
                    }
                });
        }
        match &c.compare {
            Ok(x) => {
                ui.label(
                    RichText::new(format!(
                        "{} − {}: {:+.3} (95 % paired bootstrap interval {:+.3} to {:+.3}, {} clips, {} resamples)",
                        x.a,
                        x.b,
                        x.mean.delta,
                        x.delta_ci95[0],
                        x.delta_ci95[1],
                        x.clips.len(),
                        x.resamples
                    ))
                    .color(theme::KEPT),
                );
            }
            Err(e) => {
                ui.label(RichText::new(e).color(theme::ERROR));
            }
        }
    });
    if (a, b) != (c.a, c.b) {
        out.push(Command::CompareSettings(a, b));
    }
}

/// The column heads: each sorts by its column (the current one shows its direction).
fn header(ui: &mut egui::Ui, c: &Corpus, out: &mut Vec<Command>) {
    let arrow = |by: SortBy| match (c.sort == by, c.descending) {
        (false, _) => "",
        (true, true) => " ▼",
        (true, false) => " ▲",
    };
    ui.horizontal(|ui| {
        let head = |ui: &mut egui::Ui, text: String, w: f32, strong: bool| {
            let t = if strong {
                RichText::new(text).strong().color(theme::KEPT)
            } else {
                RichText::new(text).strong()
            };
            ui.add_sized([w, ROW_H], egui::Button::new(t).frame(false))
                .clicked()
        };
        if head(ui, format!("clip{}", arrow(SortBy::Clip)), ID_W, false) {
            out.push(Command::SortCorpus(SortBy::Clip));
        }
        if head(ui, format!("A − B{}", arrow(SortBy::Delta)), VALUE_W, true) {
            out.push(Command::SortCorpus(SortBy::Delta));
        }
        for (j, name) in c.table.settings.iter().enumerate() {
            let by = SortBy::Setting(j);
            if head(
                ui,
                format!("{name}{}", arrow(by)),
                VALUE_W,
                j == c.a || j == c.b,
            ) {
                out.push(Command::SortCorpus(by));
            }
        }
    });
}

/// Each setting's corpus value (as `table.csv`), and the corpus difference.
fn corpus_row(ui: &mut egui::Ui, c: &Corpus) {
    ui.horizontal(|ui| {
        cell(ui, RichText::new("corpus").strong(), ID_W);
        let d = c.compare.as_ref().ok().map(|x| x.mean.delta);
        cell(ui, RichText::new(signed(d)).strong(), VALUE_W);
        for v in &c.table.corpus {
            cell(ui, RichText::new(value(c, *v)).strong(), VALUE_W);
        }
    });
}

/// The clips, only the rows on screen laid out (a run of thousands scrolls as fast as ten).
fn body(ui: &mut egui::Ui, c: &Corpus, out: &mut Vec<Command>) {
    let n = c.order.len();
    egui::ScrollArea::vertical()
        .id_salt("corpus-y")
        .auto_shrink([false, false])
        .show_rows(ui, ROW_H, n, |ui, rows| {
            for &i in &c.order[rows] {
                ui.horizontal(|ui| {
                    let id = &c.table.clips[i];
                    let opened = c.opened.as_deref() == Some(id.as_str());
                    let text = if opened {
                        RichText::new(id).color(theme::KEPT)
                    } else {
                        RichText::new(id)
                    };
                    let r = ui
                        .add_sized([ID_W, ROW_H], egui::Button::new(text).frame(false))
                        .on_hover_text("Open this clip with the run's outputs");
                    if r.clicked() {
                        out.push(Command::OpenRunClip(i));
                    }
                    // A better than B in the metric's direction, or worse.
                    let d = c.deltas.get(i).copied().flatten();
                    let colour = match d {
                        Some(d) if (d > 0.0) == c.table.higher_is_better && d != 0.0 => theme::KEPT,
                        Some(d) if d != 0.0 => theme::ERROR,
                        _ => theme::TEXT_DIM,
                    };
                    cell(ui, RichText::new(signed(d)).color(colour), VALUE_W);
                    for j in 0..c.table.settings.len() {
                        cell(ui, RichText::new(value(c, c.table.value(i, j))), VALUE_W);
                    }
                });
            }
        });
}

fn cell(ui: &mut egui::Ui, text: RichText, w: f32) {
    ui.add_sized([w, ROW_H], egui::Label::new(text));
}

/// A value as the metric reads: percentages with one decimal, CIDEr-D with three.
fn value(c: &Corpus, v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if c.table.metric.ends_with('%') => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn signed(d: Option<f64>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{d:+.3}"))
}
