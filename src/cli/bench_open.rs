//! `prunescope bench-open`: how long a saved document takes to show in the explorer, with no
//! model: reading it (parse, checks), then from the open command to the first frame that
//! draws its grid (an analysis or workspace) or its table (an eval run), then until its audio
//! is in the lanes. The explorer runs headless in this process (egui without a window, every
//! view drawn as on screen), a fresh one per round; medians over the rounds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use prunescope::document::{self, Opened};
use prunescope::ui::{ExplorerApp, ModelSource, Settings, Startup};
use prunescope::util::{median, TempDir};

#[derive(Args)]
pub struct BenchOpenArgs {
    /// Documents to open: analyses, workspaces, eval runs (folders or results files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Rounds per document (the median is reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Eval runs with fewer clips are opened as a run of this many, their records repeated
    /// under new ids (the table then has this many rows to score, sort and draw).
    #[arg(long)]
    clips: Option<usize>,
}

struct Row {
    name: String,
    bytes: u64,
    read: Vec<f64>,
    shown: Vec<f64>,
    audio: Vec<f64>,
}

pub fn run(a: BenchOpenArgs) -> Result<()> {
    let tmp = TempDir::new("bench-open")?;
    let mut rows = Vec::new();
    for (i, p) in a.paths.iter().enumerate() {
        let path = match (a.clips, document::open(p)?) {
            (Some(n), Opened::Run(r)) if r.records.len() < n => {
                repeat_run(&r, n, &tmp.path().join(format!("run{i}")))?
            }
            _ => p.clone(),
        };
        let mut row = Row {
            name: path.display().to_string(),
            bytes: size(&path),
            read: Vec::new(),
            shown: Vec::new(),
            audio: Vec::new(),
        };
        for _ in 0..a.rounds.max(1) {
            let t = Instant::now();
            let opened = document::open(&path)?;
            row.read.push(ms(t));
            drop(opened);
            let (shown, audio) = show(&path)?;
            row.shown.push(shown);
            if let Some(a) = audio {
                row.audio.push(a);
            }
        }
        rows.push(row);
    }
    println!(
        "Opening saved documents with no model, headless explorer, median of {} rounds:\n",
        a.rounds.max(1)
    );
    println!("| document | size | read | grid or table shown | audio in the lanes |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let audio = if r.audio.is_empty() {
            "–".to_string()
        } else {
            format!("{:.0} ms", median(r.audio.iter().copied()))
        };
        println!(
            "| {} | {:.1} MB | {:.0} ms | {:.0} ms | {audio} |",
            r.name,
            r.bytes as f64 / 1e6,
            median(r.read.iter().copied()),
            median(r.shown.iter().copied()),
        );
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// A file's size, or a folder's results files' sizes.
fn size(p: &Path) -> u64 {
    let files = if p.is_dir() {
        document::run_files(p).unwrap_or_default()
    } else {
        vec![p.to_path_buf()]
    };
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// One frame of `app`, headless, in a 1480 x 940 window.
fn frame(ctx: &egui::Context, app: &mut ExplorerApp) {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1480.0, 940.0),
        )),
        ..Default::default()
    };
    let _ = ctx.run_ui(input, |ui| app.show(ui));
}

/// Opens `path` in a fresh explorer: ms from the command to the end of the first frame that
/// shows its grid or table, and to the end of the first with its audio in (analyses).
fn show(path: &Path) -> Result<(f64, Option<f64>)> {
    let mut app = ExplorerApp::new(
        Settings::default(),
        Startup {
            clip: None,
            document: None,
            model: ModelSource::None,
            load: Default::default(),
            audio: false,
        },
    );
    let ctx = egui::Context::default();
    // Fonts and the first layout are the window's, not the document's.
    for _ in 0..3 {
        frame(&ctx, &mut app);
    }
    let t = Instant::now();
    app.open_document(path.to_path_buf());
    let mut shown = None;
    loop {
        frame(&ctx, &mut app);
        if let Some(s) = app.status_text().filter(|_| shown.is_none()) {
            if !s.starts_with("opening") && !app.showing_corpus() && app.document().is_none() {
                bail!("{s}");
            }
        }
        let grid = app.document().is_some() && app.result_count() > 0;
        if shown.is_none() && (grid || app.showing_corpus()) {
            shown = Some(ms(t));
            if app.showing_corpus() {
                return Ok((ms(t), None));
            }
        }
        if let (Some(s), Some((_, audio))) = (shown, app.document()) {
            if audio != "decoding" {
                return Ok((s, Some(ms(t))));
            }
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("{} did not show within 2 minutes", path.display());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `r`'s records repeated under new ids up to `n` clips, written as a run in `dir`.
fn repeat_run(r: &prunescope::eval::runner::Results, n: usize, dir: &Path) -> Result<PathBuf> {
    if r.records.is_empty() {
        bail!("the run has no clips to repeat");
    }
    std::fs::create_dir_all(dir)?;
    let mut header = r.header.clone();
    header.items = n;
    let mut text = serde_json::to_string(&header)? + "\n";
    for i in 0..n {
        let mut rec = r.records[i % r.records.len()].clone();
        rec.index = i;
        rec.item.id = format!("{}#{i}", rec.item.id);
        text += &(serde_json::to_string(&rec)? + "\n");
    }
    let out = dir.join("results.jsonl");
    std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(dir.to_path_buf())
}
