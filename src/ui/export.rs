//! Exports: the attention lane as PNG (drawn here, at a fixed size, independent of the window),
//! scores and outputs as CSV, and the `analyze --json` document.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::{Rgba, RgbaImage};

use super::logic::pool;
use super::logic::timeline::View;
use super::theme;
use crate::engine::{Analysis, RunResult};

/// What the attention lane shows, ready to draw or export.
pub struct LaneData<'a> {
    /// Max-normalised scores in [0, 1].
    pub norm: &'a [f32],
    pub kept: &'a [bool],
    /// Token indices where a segment starts (the first, 0, is not drawn).
    pub bounds: &'a [usize],
    pub top: &'a [usize],
}

fn px(c: egui::Color32) -> Rgba<u8> {
    Rgba([c.r(), c.g(), c.b(), 255])
}

/// The whole clip's attention lane as a `width x height` image, its bars pooled per pixel
/// column as the attention lane pools them ([`pool::attention_bars`]).
pub fn lane_image(d: &LaneData, width: u32, height: u32) -> RgbaImage {
    let mut img = RgbaImage::from_pixel(width, height, px(theme::LANE_BG));
    let n = d.norm.len();
    if n == 0 || width == 0 || height == 0 {
        return img;
    }
    let col = |t: usize| (t as u64 * u64::from(width) / n as u64) as u32;
    // One token a second: the whole clip is the view, its columns the image's.
    let whole = View {
        start: 0.0,
        end: n as f64,
    };
    let px_per_token = f64::from(width) / n as f64;
    let mut tallest = vec![(0.0f32, false); width as usize];
    for b in pool::attention_bars(&whole, width as usize, d.norm, d.kept, 1.0) {
        let w = width as usize;
        let x0 = (((b.centre - b.width / 2.0) * px_per_token).round().max(0.0) as usize).min(w - 1);
        let x1 = (((b.centre + b.width / 2.0) * px_per_token).round() as usize).clamp(x0 + 1, w);
        for c in &mut tallest[x0..x1] {
            c.0 = c.0.max(b.height);
            c.1 |= b.kept;
        }
    }
    let bar_top = 8u32;
    let usable = height.saturating_sub(bar_top) as f32;
    for (x, (v, kept)) in tallest.into_iter().enumerate() {
        let h = (v.clamp(0.0, 1.0) * usable).round() as u32;
        let colour = px(if kept { theme::KEPT } else { theme::DROPPED });
        for y in height - h.min(height)..height {
            img.put_pixel(x as u32, y, colour);
        }
    }
    for &b in d.bounds.iter().filter(|&&b| b > 0 && b < n) {
        let x = col(b).min(width - 1);
        for y in 0..height {
            img.put_pixel(x, y, px(theme::SEGMENT));
        }
    }
    for &t in d.top {
        let x = col(t).min(width - 1);
        for dy in 0..5u32 {
            for dx in 0..=(4 - dy) {
                for xx in [x.saturating_sub(dx), (x + dx).min(width - 1)] {
                    img.put_pixel(xx, dy, px(theme::TOP));
                }
            }
        }
    }
    img
}

/// Per-token CSV: `token,time_s,score,normalised,kept,segment`.
pub fn scores_csv(
    scores: &[f32],
    norm: &[f32],
    kept: &[bool],
    bounds: &[usize],
    seconds_per_token: f64,
) -> String {
    let mut s = String::from("token,time_s,score,normalised,kept,segment\n");
    for (t, (&raw, &nv)) in scores.iter().zip(norm).enumerate() {
        let segment = bounds.partition_point(|&b| b <= t).saturating_sub(1);
        let _ = writeln!(
            s,
            "{t},{:.3},{raw},{nv},{},{segment}",
            t as f64 * seconds_per_token,
            u8::from(kept.get(t).copied().unwrap_or(false))
        );
    }
    s
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Per-run CSV: `method,keep,k,segments,decode_ms,generated_tokens,wer,text`.
pub fn outputs_csv(runs: &[RunResult], wer: impl Fn(&RunResult) -> Option<f64>) -> String {
    let mut s = String::from("method,keep,k,segments,decode_ms,generated_tokens,wer,text\n");
    for r in runs {
        let _ = writeln!(
            s,
            "{},{},{},{},{:.1},{},{},{}",
            r.method,
            r.keep,
            r.k,
            r.segments.map(|x| x.to_string()).unwrap_or_default(),
            r.decode_ms,
            r.generated_tokens,
            wer(r).map(|w| format!("{w:.4}")).unwrap_or_default(),
            csv_field(&r.text)
        );
    }
    s
}

/// Why an export failed, one readable line each.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no clip to export")]
    NoClip,
    #[error("the clip has no scores yet")]
    NoScores,
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// Writes the four files into `dir` (created) as `<stem>-attention.png`, `<stem>-scores.csv`,
/// `<stem>-outputs.csv` and `<stem>.json`; returns their paths.
pub fn write_all(
    dir: &Path,
    stem: &str,
    lane: &RgbaImage,
    scores_csv: &str,
    outputs_csv: &str,
    analysis: &Analysis,
) -> Result<Vec<PathBuf>, ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let failed = |path: &Path, e: &dyn std::fmt::Display| ExportError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let png = dir.join(format!("{stem}-attention.png"));
    lane.save(&png).map_err(|e| failed(&png, &e))?;
    let mut written = vec![png];
    let json_path = dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(analysis).map_err(|e| failed(&json_path, &e))?;
    for (p, body) in [
        (dir.join(format!("{stem}-scores.csv")), scores_csv),
        (dir.join(format!("{stem}-outputs.csv")), outputs_csv),
        (json_path, json.as_str()),
    ] {
        std::fs::write(&p, body).map_err(|e| failed(&p, &e))?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_image_colours_kept_bars() {
        let norm = [1.0, 0.5, 0.0, 1.0];
        let kept = [true, false, false, false];
        let img = lane_image(
            &LaneData {
                norm: &norm,
                kept: &kept,
                bounds: &[0, 2],
                top: &[],
            },
            40,
            20,
        );
        assert_eq!(*img.get_pixel(5, 19), px(theme::KEPT));
        assert_eq!(*img.get_pixel(15, 19), px(theme::DROPPED));
        assert_eq!(*img.get_pixel(15, 9), px(theme::LANE_BG));
        assert_eq!(*img.get_pixel(20, 3), px(theme::SEGMENT));
        assert_eq!(*img.get_pixel(35, 19), px(theme::DROPPED));
    }

    #[test]
    fn csvs_have_one_row_per_item() {
        let s = scores_csv(&[2.0, 1.0], &[1.0, 0.5], &[true, false], &[0, 1], 0.02);
        assert_eq!(
            s,
            "token,time_s,score,normalised,kept,segment\n0,0.000,2,1,1,0\n1,0.020,1,0.5,0,1\n"
        );
        let r = RunResult::sample("say \"hi\"");
        let o = outputs_csv(&[r], |_| Some(0.5));
        assert!(o.ends_with("topk,0.5,1,,1.0,2,0.5000,\"say \"\"hi\"\"\"\n"));
    }
}
