//! Two settings of a results file compared clip by clip (`eval report --by-clip A B`): each
//! clip's value of the dataset's main metric under A and under B, the clips ranked by the
//! difference, the corpus values exactly as the quality table computes them, and a paired
//! bootstrap interval for the corpus difference (clips resampled with replacement, both
//! settings of a clip kept together). [`interval`] is the same bootstrap for one setting (the
//! quality table's interval column).
//!
//! The main metric is the table's WER % (jiwer's default), CIDEr-D, ClothoAQA's unanimous
//! yes/no accuracy, or MMAU's total accuracy.

use serde::Serialize;

use super::metrics::accuracy::{self, OptionScorer};
use super::metrics::{self, wer};
use super::runner::{setting_of, Record, Results};
use crate::engine::RunResult;
use crate::util::SplitMix64;

/// Why two settings cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ByClipError {
    #[error("no setting `{0}` in the results (they hold {1})")]
    NoSetting(String, String),
    #[error("no clip has both `{0}` and `{1}` (and is scored by the first metric)")]
    NoCommonClip(String, String),
}

/// One clip's values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipDelta {
    pub id: String,
    pub a: f64,
    pub b: f64,
    /// `a - b`.
    pub delta: f64,
}

/// The corpus values of A, B and their difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Means {
    pub a: f64,
    pub b: f64,
    pub delta: f64,
}

/// The comparison (`--json` prints it as it is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ByClip {
    /// The quality table's first column (e.g. `WER %`, `CIDEr-D`, `Total %`).
    pub metric: String,
    pub higher_is_better: bool,
    pub a: String,
    pub b: String,
    /// Largest `delta` first.
    pub clips: Vec<ClipDelta>,
    pub mean: Means,
    /// The paired bootstrap's 2.5 and 97.5 percentiles of the corpus `delta`.
    pub delta_ci95: [f64; 2],
    pub resamples: usize,
}

/// A clip's share of a corpus metric: the corpus value of any set of clips is
/// `100 * sum(num) / sum(den)` (WER: errors over reference words; accuracy and CIDEr-D: the
/// clip's score over 1).
#[derive(Debug, Clone, Copy)]
struct Part {
    num: f64,
    den: f64,
}

fn corpus(parts: impl Iterator<Item = Part>, scale: f64) -> f64 {
    let (n, d) = parts.fold((0.0, 0.0), |(n, d), p| (n + p.num, d + p.den));
    scale * n / d
}

/// Compares settings `a` and `b` (labels `method@keep`).
pub fn compare(
    results: &Results,
    a: &str,
    b: &str,
    scorer: &dyn OptionScorer,
    resamples: usize,
    seed: u64,
) -> Result<ByClip, ByClipError> {
    for s in [a, b] {
        if !results.header.settings.iter().any(|x| x == s) {
            return Err(ByClipError::NoSetting(
                s.into(),
                results.header.settings.join(", "),
            ));
        }
    }
    let dataset = results.header.dataset.as_str();
    let ok = results.ran();
    let pa = parts(dataset, &ok, a, scorer);
    let pb = parts(dataset, &ok, b, scorer);
    paired(main_metric(dataset), (a, &pa), (b, &pb), resamples, seed)
}

/// The comparison of two settings' clip shares: the clips both scored, ranked by the
/// difference, the corpus values and the paired bootstrap interval of their difference.
fn paired(
    (metric, higher_is_better, scale): (&str, bool, f64),
    (a, pa): (&str, &[(&str, Part)]),
    (b, pb): (&str, &[(&str, Part)]),
    resamples: usize,
    seed: u64,
) -> Result<ByClip, ByClipError> {
    let of_b: std::collections::HashMap<&str, Part> = pb.iter().copied().collect();
    let pairs: Vec<(&str, Part, Part)> = pa
        .iter()
        .filter_map(|(id, x)| of_b.get(id).map(|y| (*id, *x, *y)))
        .collect();
    if pairs.is_empty() {
        return Err(ByClipError::NoCommonClip(a.into(), b.into()));
    }
    let value = |p: Part| scale * p.num / p.den;
    let mut clips: Vec<ClipDelta> = pairs
        .iter()
        .map(|(id, x, y)| ClipDelta {
            id: (*id).to_string(),
            a: value(*x),
            b: value(*y),
            delta: value(*x) - value(*y),
        })
        .collect();
    clips.sort_by(|p, q| q.delta.total_cmp(&p.delta).then(p.id.cmp(&q.id)));
    let ma = corpus(pairs.iter().map(|p| p.1), scale);
    let mb = corpus(pairs.iter().map(|p| p.2), scale);
    let delta_ci95 = bootstrap(pairs.len(), resamples, seed, |pick| {
        corpus(pick.iter().map(|&i| pairs[i].1), scale)
            - corpus(pick.iter().map(|&i| pairs[i].2), scale)
    });
    Ok(ByClip {
        metric: metric.into(),
        higher_is_better,
        a: a.into(),
        b: b.into(),
        clips,
        mean: Means {
            a: ma,
            b: mb,
            delta: ma - mb,
        },
        delta_ci95,
        resamples: resamples.max(1),
    })
}

/// The main metric of a dataset: its name in the quality table, whether higher is better, and
/// the scale of a clip's share (percent or not).
fn main_metric(dataset: &str) -> (&'static str, bool, f64) {
    match dataset {
        "asr" => ("WER %", false, 100.0),
        "clotho" | "audiocaps" => ("CIDEr-D", true, 1.0),
        "clothoaqa" => ("Acc. unanimous yes/no %", true, 100.0),
        _ => ("Total %", true, 100.0),
    }
}

/// The 2.5 and 97.5 percentiles of `stat` over `resamples` draws of `n` clip indices with
/// replacement (seeded).
fn bootstrap(n: usize, resamples: usize, seed: u64, stat: impl Fn(&[usize]) -> f64) -> [f64; 2] {
    let mut rng = SplitMix64(seed);
    let mut values: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let pick: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
            stat(&pick)
        })
        .filter(|d| d.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((values.len() as f64 - 1.0) * q).round() as usize;
        values.get(i).copied().unwrap_or(f64::NAN)
    };
    [at(0.025), at(0.975)]
}

/// The bootstrap 95 % interval of one setting's corpus value of the main metric (None when no
/// clip scores it): the name of that metric with it.
pub fn interval(
    results: &Results,
    setting: &str,
    scorer: &dyn OptionScorer,
    resamples: usize,
    seed: u64,
) -> Option<(&'static str, [f64; 2])> {
    let dataset = results.header.dataset.as_str();
    let ok = results.ran();
    let (metric, _, scale) = main_metric(dataset);
    let p = parts(dataset, &ok, setting, scorer);
    if p.is_empty() {
        return None;
    }
    let ci = bootstrap(p.len(), resamples, seed, |pick| {
        corpus(pick.iter().map(|&i| p[i].1), scale)
    });
    Some((metric, ci))
}

/// Every setting's main metric clip by clip, and each setting's corpus value: the corpus
/// view's table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The quality table's first column (e.g. `WER %`).
    pub metric: &'static str,
    pub higher_is_better: bool,
    /// A clip's share times this is its value (percent or not).
    scale: f64,
    /// `method@keep`, in plan order.
    pub settings: Vec<String>,
    /// The ids of the clips that ran, in dataset order.
    pub clips: Vec<String>,
    /// `parts[clip][setting]`: None where the metric does not score the clip under that
    /// setting (a setting it lacks; ClothoAQA's questions other than unanimous yes/no; an ASR
    /// reference without words).
    parts: Vec<Vec<Option<Part>>>,
    /// Each setting's corpus value, as `table.csv` has it (None: no clip scored).
    pub corpus: Vec<Option<f64>>,
    /// Clips that could not be run (recorded with their error).
    pub failed: usize,
}

/// The main metric of every clip under every setting of `results`.
pub fn table(results: &Results, scorer: &dyn OptionScorer) -> Table {
    let dataset = results.header.dataset.as_str();
    let ok = results.ran();
    let (metric, higher_is_better, scale) = main_metric(dataset);
    let clips: Vec<String> = ok.iter().map(|r| r.item.id.clone()).collect();
    let row_of: std::collections::HashMap<&str, usize> = clips
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let settings = results.header.settings.clone();
    let mut by_clip = vec![vec![None; settings.len()]; clips.len()];
    let mut corpus_values = Vec::with_capacity(settings.len());
    for (j, setting) in settings.iter().enumerate() {
        let p = parts(dataset, &ok, setting, scorer);
        for (id, part) in &p {
            if let Some(&i) = row_of.get(id) {
                by_clip[i][j] = Some(*part);
            }
        }
        corpus_values.push((!p.is_empty()).then(|| corpus(p.iter().map(|x| x.1), scale)));
    }
    Table {
        metric,
        higher_is_better,
        scale,
        settings,
        clips,
        parts: by_clip,
        corpus: corpus_values,
        failed: results.records.len() - ok.len(),
    }
}

impl Table {
    /// A clip's value under a setting (indices into `clips` and `settings`).
    pub fn value(&self, clip: usize, setting: usize) -> Option<f64> {
        let p = (*self.parts.get(clip)?.get(setting)?)?;
        Some(self.scale * p.num / p.den)
    }

    /// Settings `a` and `b` (indices into `settings`) compared as [`compare`] does.
    pub fn compare(
        &self,
        a: usize,
        b: usize,
        resamples: usize,
        seed: u64,
    ) -> Result<ByClip, ByClipError> {
        let label = |j: usize| self.settings.get(j).map_or("", String::as_str);
        let column = |j: usize| -> Vec<(&str, Part)> {
            self.clips
                .iter()
                .zip(&self.parts)
                .filter_map(|(id, row)| Some((id.as_str(), (*row.get(j)?)?)))
                .collect()
        };
        for j in [a, b] {
            if j >= self.settings.len() {
                return Err(ByClipError::NoSetting(
                    format!("#{j}"),
                    self.settings.join(", "),
                ));
            }
        }
        let (pa, pb) = (column(a), column(b));
        let metric = (self.metric, self.higher_is_better, self.scale);
        paired(metric, (label(a), &pa), (label(b), &pb), resamples, seed)
    }
}

/// Each clip's share of the first metric under `setting`, by clip id.
fn parts<'a>(
    dataset: &str,
    ok: &[&'a Record],
    setting: &str,
    scorer: &dyn OptionScorer,
) -> Vec<(&'a str, Part)> {
    let runs: Vec<(&Record, &RunResult)> = ok
        .iter()
        .filter_map(|r| {
            r.runs
                .iter()
                .find(|x| setting_of(x) == setting)
                .map(|x| (*r, x))
        })
        .collect();
    let score = |right: bool| Part {
        num: f64::from(u8::from(right)),
        den: 1.0,
    };
    match dataset {
        "asr" => runs
            .iter()
            .map(|(r, x)| {
                let c = wer::counts(&r.item.refs[0], &x.text, wer::Normalization::Default);
                let part = Part {
                    num: c.errors() as f64,
                    den: c.reference_words() as f64,
                };
                (r.item.id.as_str(), part)
            })
            .filter(|(_, p)| p.den > 0.0)
            .collect(),
        "clotho" | "audiocaps" => {
            let preds: Vec<String> = runs.iter().map(|(_, x)| x.text.clone()).collect();
            let refs: Vec<Vec<String>> = runs.iter().map(|(r, _)| r.item.refs.clone()).collect();
            let (_, per_clip) = metrics::cider_raw(&preds, &refs);
            runs.iter()
                .zip(per_clip)
                .map(|((r, _), s)| (r.item.id.as_str(), Part { num: s, den: 1.0 }))
                .collect()
        }
        "clothoaqa" => runs
            .iter()
            .filter(|(r, _)| r.item.group.as_deref() == Some("unanimous"))
            .map(|(r, x)| {
                let right = accuracy::aqa_correct(&x.text, &r.item.refs);
                (r.item.id.as_str(), score(right))
            })
            .collect(),
        _ => runs
            .iter()
            .map(|(r, x)| {
                let chosen = accuracy::choose_option(&x.text, &r.item.choices, scorer);
                let right = accuracy::is_answer(chosen, &r.item.choices, &r.item.refs[0]);
                (r.item.id.as_str(), score(right))
            })
            .collect(),
    }
}

/// The comparison as a terminal table: the corpus line with the interval, then each clip.
pub fn text(c: &ByClip) -> String {
    let better = if c.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    };
    let mut s = format!(
        "{}: {} {:.3} vs {} {:.3}, delta {:+.3} (95 % paired bootstrap interval {:+.3} to {:+.3}, {} resamples; {better})\n",
        c.metric,
        c.a,
        c.mean.a,
        c.b,
        c.mean.b,
        c.mean.delta,
        c.delta_ci95[0],
        c.delta_ci95[1],
        c.resamples
    );
    let id_width = c.clips.iter().map(|x| x.id.len()).max().unwrap_or(4).max(4);
    s.push_str(&format!(
        "{:<id_width$}  {:>10}  {:>10}  {:>10}\n",
        "clip", c.a, c.b, "delta"
    ));
    for x in &c.clips {
        s.push_str(&format!(
            "{:<id_width$}  {:>10.3}  {:>10.3}  {:>+10.3}\n",
            x.id, x.a, x.b, x.delta
        ));
    }
    s
}
