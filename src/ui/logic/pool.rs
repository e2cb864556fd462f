//! Pooling a time series into pixel columns, the one way every lane and export does it: the
//! tallest value per column (textures, the attention bars, the exported lane), the waveform's
//! min and max per column, and values over their maximum. No egui here.

use std::ops::Range;

use super::timeline::View;

/// The indices of `n` time steps that column `c` of `cols` covers: never empty while `n > 0`,
/// so every column shows something when steps are fewer than columns.
pub fn column(c: usize, n: usize, cols: usize) -> Range<usize> {
    let cols = cols.max(1);
    let a = (c * n / cols).min(n.saturating_sub(1));
    let b = ((c + 1) * n / cols).max(a + 1).min(n);
    a..b
}

/// The largest finite value of `values` in each of `cols` columns (0 where none is finite).
pub fn max_pool(values: &[f32], cols: usize) -> Vec<f32> {
    if values.is_empty() {
        return vec![0.0; cols];
    }
    (0..cols)
        .map(|c| finite_max(&values[column(c, values.len(), cols)]).unwrap_or(0.0))
        .collect()
}

/// The largest finite value, if any.
fn finite_max(values: &[f32]) -> Option<f32> {
    values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .reduce(f32::max)
}

/// `values` over their largest finite value, in [0, 1] for non-negative values (0 for
/// non-finite values, and everywhere when no value is positive).
pub fn over_max(values: &[f32]) -> Vec<f32> {
    let max = finite_max(values).unwrap_or(0.0);
    values
        .iter()
        .map(|&v| {
            if max > 0.0 && v.is_finite() {
                v / max
            } else {
                0.0
            }
        })
        .collect()
}

/// Samples per waveform summary bucket (10 ms at 16 kHz).
const BUCKET: usize = 160;

/// Min/max of every 10 ms of `samples`, so the waveform of a long clip costs one pass over the
/// visible buckets per frame.
pub fn wave_summary(samples: &[f32]) -> Vec<(f32, f32)> {
    samples
        .chunks(BUCKET)
        .map(|c| {
            c.iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
        })
        .collect()
}

/// The largest magnitude of a [`wave_summary`] (at least 1e-6: the waveform lane divides by
/// it).
pub fn wave_peak(summary: &[(f32, f32)]) -> f32 {
    summary
        .iter()
        .map(|(lo, hi)| lo.abs().max(hi.abs()))
        .fold(1e-6f32, f32::max)
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
    let bucket = BUCKET as f64;
    (0..cols)
        .map(|c| {
            let s0 = view.start * rate + c as f64 * per_col;
            let s1 = s0 + per_col;
            let (lo, hi) = if per_col >= bucket {
                let (b0, b1) = ((s0 / bucket) as usize, (s1 / bucket).ceil() as usize);
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

/// One attention bar: its centre and width (s), its height, and whether it is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub centre: f64,
    pub width: f64,
    pub height: f32,
    pub kept: bool,
}

/// The attention bars of the tokens `view` shows in `cols` pixel columns: one per token, or one
/// per column when tokens outnumber columns (the tallest, kept if any of its tokens is).
pub fn attention_bars(view: &View, cols: usize, norm: &[f32], kept: &[bool], spt: f64) -> Vec<Bar> {
    let n = norm.len();
    if n == 0 || spt <= 0.0 || cols == 0 {
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
            .map(|t| Bar {
                centre: (t as f64 + 0.5) * spt,
                width: spt * (1.0 - gap),
                height: norm[t],
                kept: is_kept(t),
            })
            .collect();
    }
    let col_s = view.span() / cols as f64;
    let mut out: Vec<Bar> = Vec::with_capacity(cols);
    for (t, &v) in norm.iter().enumerate().take(t1).skip(t0) {
        let c = (((t as f64 * spt) - view.start) / col_s).floor().max(0.0) as usize;
        let centre = view.start + (c as f64 + 0.5) * col_s;
        match out.last_mut() {
            Some(b) if (b.centre - centre).abs() < col_s * 0.5 => {
                b.height = b.height.max(v);
                b.kept |= is_kept(t);
            }
            _ => out.push(Bar {
                centre,
                width: col_s,
                height: v,
                kept: is_kept(t),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_cover_every_step_and_are_never_empty() {
        let cols: Vec<_> = (0..4).map(|c| column(c, 10, 4)).collect();
        assert_eq!(cols, vec![0..2, 2..5, 5..7, 7..10]);
        // Fewer steps than columns: each column shows the step under it.
        let cols: Vec<_> = (0..4).map(|c| column(c, 2, 4)).collect();
        assert_eq!(cols, vec![0..1, 0..1, 1..2, 1..2]);
        assert_eq!(max_pool(&[1.0, f32::NAN, 3.0, -2.0], 2), vec![1.0, 3.0]);
        assert_eq!(max_pool(&[f32::NAN], 1), vec![0.0]);
        assert_eq!(max_pool(&[], 3), vec![0.0; 3]);
    }

    #[test]
    fn over_max_scales_to_one_and_zeroes_non_finite() {
        assert_eq!(over_max(&[1.0, 4.0, f32::NAN]), vec![0.25, 1.0, 0.0]);
        assert_eq!(over_max(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

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
        assert!((b[1].centre - 0.03).abs() < 1e-12);
        assert!(b[41].kept && !b[40].kept);
        // In 10 columns: one bar per column, kept if any token of it is.
        let b = attention_bars(&view, 10, &norm, &kept, 0.02);
        assert_eq!(b.len(), 10);
        assert_eq!(b.iter().filter(|x| x.kept).count(), 1);
        assert!(b[4].kept);
        // A zoomed view only holds its tokens.
        let zoomed = View {
            start: 1.0,
            end: 1.2,
        };
        assert_eq!(attention_bars(&zoomed, 400, &norm, &kept, 0.02).len(), 10);
    }

    #[test]
    fn wave_columns_take_min_and_max() {
        let mut samples = vec![0.0f32; 16_000];
        samples[8000] = 0.9;
        samples[8001] = -0.4;
        let summary = wave_summary(&samples);
        let whole = View {
            start: 0.0,
            end: 1.0,
        };
        let cols = wave_columns(&whole, 10, &samples, &summary);
        assert_eq!(cols.len(), 10);
        assert_eq!((cols[5].1, cols[5].2), (-0.4, 0.9));
        assert_eq!((cols[4].1, cols[4].2), (0.0, 0.0));
        // Zoomed in below one summary bucket per column: the samples themselves.
        let near = View {
            start: 0.5,
            end: 0.501,
        };
        assert_eq!(wave_columns(&near, 16, &samples, &summary)[0].2, 0.9);
    }
}
