//! Scores a results file and lays it out like the paper: a quality table (Table 1: methods by
//! keep ratio, one column per metric, best of each ratio in bold, at-or-better than the
//! unpruned model underlined), the same as CSV, an efficiency table (Table 4: decoding ms per
//! generated token and prefill ms, mean +- std over clips) and a PNG plot of the main metric
//! against the keep ratio.

use std::collections::HashMap;

use super::metrics::accuracy::{self, MatchKind, OptionScorer};
use super::metrics::{self, wer};
use super::runner::{setting_of, Record, Results};
use crate::engine::RunResult;

/// One column of the quality table.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub higher_is_better: bool,
    /// Shown in percent with two decimals (else three decimals).
    pub percent: bool,
}

/// One setting's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub method: String,
    pub keep: f64,
    pub values: Vec<Option<f64>>,
    /// Mean kept tokens per clip.
    pub k_mean: f64,
    /// Clips whose run looped (`model::repetition`), of `runs` clips.
    pub loops: usize,
    pub runs: usize,
    /// The bootstrap 95 % interval of the main metric's corpus value (clips resampled, seeded;
    /// [`super::by_clip::interval`]).
    pub ci95: Option<[f64; 2]>,
}

impl Row {
    /// `vanilla` and `full` keep everything: the unpruned references.
    pub fn is_unpruned(&self) -> bool {
        self.method == "vanilla" || self.method == "full"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub dataset: String,
    pub model: String,
    pub metrics: Vec<MetricDef>,
    /// The metric the rows' `ci95` is of (one of `metrics`).
    pub ci_metric: Option<&'static str>,
    pub rows: Vec<Row>,
    /// Clips scored, and clips that failed (counted apart, not scored).
    pub items: usize,
    pub failed: usize,
    /// Notes for the reader (subset sizes, how MMAU answers were matched).
    pub notes: Vec<String>,
}

fn metric(name: &str, higher_is_better: bool, percent: bool) -> MetricDef {
    MetricDef {
        name: name.into(),
        higher_is_better,
        percent,
    }
}

/// Whether scoring `dataset` maps free-text answers to options (MMAU), and so uses an
/// [`OptionScorer`].
pub fn maps_options(dataset: &str) -> bool {
    !matches!(dataset, "asr" | "clotho" | "audiocaps" | "clothoaqa")
}

/// Resamples of the quality table's intervals.
const BOOTSTRAP: usize = 1000;

/// Scores every setting of a results file.
pub fn score(results: &Results, scorer: &dyn OptionScorer) -> Table {
    let ok = results.ran();
    let failed = results.records.len() - ok.len();
    let dataset = results.header.dataset.as_str();
    let mut notes = Vec::new();
    if dataset == "clothoaqa" || dataset == "mmau" {
        notes.push(subset_sizes(&ok));
    }
    let mut mcq = McqTally::default();
    let mut rows = Vec::new();
    let mut ci_metric = None;
    for label in &results.header.settings {
        let runs = runs_of(&ok, label);
        let Some((_, first)) = runs.first() else {
            continue;
        };
        let k_mean = runs.iter().map(|(_, x)| x.k as f64).sum::<f64>() / runs.len() as f64;
        let values = match dataset {
            "asr" => asr_values(&runs),
            "clotho" | "audiocaps" => caption_values(&runs),
            "clothoaqa" => aqa_values(&runs),
            _ => mcq_values(&runs, scorer, &mut mcq),
        };
        let ci = super::by_clip::interval(results, label, scorer, BOOTSTRAP, 0);
        if let Some((m, _)) = ci {
            ci_metric = Some(m);
        }
        rows.push(Row {
            method: first.method.name().to_string(),
            keep: first.keep,
            values,
            k_mean,
            loops: runs.iter().filter(|(_, x)| x.looped).count(),
            runs: runs.len(),
            ci95: ci.map(|(_, c)| c),
        });
    }
    if mcq.answers > 0 {
        notes.push(format!(
            "{} of {} answers matched no option text or letter and were mapped by similarity ({})",
            mcq.by_similarity,
            mcq.answers,
            scorer.name()
        ));
    }
    Table {
        dataset: dataset.into(),
        model: results.header.model.clone(),
        metrics: metrics_of(dataset),
        ci_metric,
        rows,
        items: ok.len(),
        failed,
        notes,
    }
}

/// The quality table's columns for `dataset`.
fn metrics_of(dataset: &str) -> Vec<MetricDef> {
    match dataset {
        "asr" => vec![
            metric("WER %", false, true),
            metric("WER % (lower-case, no punct.)", false, true),
            metric("WER % (runs that did not loop)", false, true),
        ],
        "clotho" | "audiocaps" => vec![metric("CIDEr-D", true, false)],
        "clothoaqa" => vec![
            metric("Acc. unanimous yes/no %", true, true),
            metric("Acc. non-binary %", true, true),
        ],
        _ => vec![
            metric("Sound %", true, true),
            metric("Speech %", true, true),
            metric("Music %", true, true),
            metric("Total %", true, true),
        ],
    }
}

/// The note "items per subset: ..." (subsets in order of first appearance; `-` for none).
fn subset_sizes(ok: &[&Record]) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for r in ok {
        let g = r.item.group.clone().unwrap_or_else(|| "-".into());
        match groups.iter_mut().find(|(n, _)| *n == g) {
            Some(e) => e.1 += 1,
            None => groups.push((g, 1)),
        }
    }
    let parts: Vec<String> = groups.iter().map(|(g, n)| format!("{g}: {n}")).collect();
    format!("items per subset: {}", parts.join(", "))
}

/// A clip's record with its run of one setting.
type SettingRun<'a> = (&'a Record, &'a RunResult);

/// The (record, run) of the setting `label`, for every clip that has it.
fn runs_of<'a>(ok: &[&'a Record], label: &str) -> Vec<SettingRun<'a>> {
    ok.iter()
        .filter_map(|r| {
            r.runs
                .iter()
                .find(|x| setting_of(x) == label)
                .map(|x| (*r, x))
        })
        .collect()
}

/// Corpus WER in percent: as published, lower-case without punctuation, and over the runs that
/// did not loop.
fn asr_values(runs: &[SettingRun<'_>]) -> Vec<Option<f64>> {
    let wer_of = |n, skip_looped: bool| {
        let w = wer::corpus_wer(
            runs.iter()
                .filter(|(_, x)| !(skip_looped && x.looped))
                .map(|(r, x)| (r.item.refs[0].as_str(), x.text.as_str())),
            n,
        );
        w.is_finite().then_some(100.0 * w)
    };
    vec![
        wer_of(wer::Normalization::Default, false),
        wer_of(wer::Normalization::Basic, false),
        wer_of(wer::Normalization::Default, true),
    ]
}

/// CIDEr-D of the captions against every reference.
fn caption_values(runs: &[SettingRun<'_>]) -> Vec<Option<f64>> {
    let preds: Vec<String> = runs.iter().map(|(_, x)| x.text.clone()).collect();
    let refs: Vec<Vec<String>> = runs.iter().map(|(r, _)| r.item.refs.clone()).collect();
    vec![Some(metrics::cider_raw(&preds, &refs).0).filter(|v| v.is_finite())]
}

/// ClothoAQA accuracy in percent on the unanimous yes/no and the non-binary subsets.
fn aqa_values(runs: &[SettingRun<'_>]) -> Vec<Option<f64>> {
    ["unanimous", "nonbinary"]
        .iter()
        .map(|g| {
            let sel: Vec<bool> = runs
                .iter()
                .filter(|(r, _)| r.item.group.as_deref() == Some(g))
                .map(|(r, x)| accuracy::aqa_correct(&x.text, &r.item.refs))
                .collect();
            percent(&sel)
        })
        .collect()
}

/// MMAU answers scored so far, and how many of them only similarity mapped to an option.
#[derive(Default)]
struct McqTally {
    answers: usize,
    by_similarity: usize,
}

/// MMAU accuracy in percent on the sound, speech and music subsets and in total; each answer is
/// mapped to an option by [`accuracy::choose_option`] and counted in `tally`.
fn mcq_values(
    runs: &[SettingRun<'_>],
    scorer: &dyn OptionScorer,
    tally: &mut McqTally,
) -> Vec<Option<f64>> {
    let mut per: HashMap<String, Vec<bool>> = HashMap::new();
    let mut all = Vec::new();
    for (r, x) in runs {
        let chosen = accuracy::choose_option(&x.text, &r.item.choices, scorer);
        tally.answers += 1;
        if matches!(chosen, Some((_, MatchKind::Similarity))) {
            tally.by_similarity += 1;
        }
        let right = accuracy::is_answer(chosen, &r.item.choices, &r.item.refs[0]);
        per.entry(r.item.group.clone().unwrap_or_default())
            .or_default()
            .push(right);
        all.push(right);
    }
    let mut v: Vec<Option<f64>> = ["sound", "speech", "music"]
        .iter()
        .map(|g| per.get(*g).and_then(|x| percent(x)))
        .collect();
    v.push(percent(&all));
    v
}

fn percent(v: &[bool]) -> Option<f64> {
    (!v.is_empty()).then(|| 100.0 * v.iter().filter(|x| **x).count() as f64 / v.len() as f64)
}

fn fmt_value(v: Option<f64>, m: &MetricDef) -> String {
    match v {
        None => "n/a".into(),
        Some(x) if m.percent => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn fmt_keep(k: f64) -> String {
    let p = k * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else {
        format!("{p} %")
    }
}

/// Keep ratios in table order (1.0 first, then descending), each with its row indices.
fn by_keep(t: &Table) -> Vec<(f64, Vec<usize>)> {
    let mut keeps: Vec<f64> = Vec::new();
    for r in &t.rows {
        if !keeps.iter().any(|k| (k - r.keep).abs() < 1e-12) {
            keeps.push(r.keep);
        }
    }
    keeps.sort_by(|a, b| b.total_cmp(a));
    keeps
        .into_iter()
        .map(|k| {
            let idx = (0..t.rows.len())
                .filter(|&i| (t.rows[i].keep - k).abs() < 1e-12)
                .collect();
            (k, idx)
        })
        .collect()
}

/// The unpruned reference row: `full` (all valid tokens) if run, else `vanilla`.
pub fn baseline(t: &Table) -> Option<&Row> {
    t.rows
        .iter()
        .find(|r| r.method == "full")
        .or_else(|| t.rows.iter().find(|r| r.method == "vanilla"))
}

fn better_or_equal(a: f64, b: f64, m: &MetricDef) -> bool {
    // Compare at display precision, so "equal" means equal as printed.
    let scale = if m.percent { 100.0 } else { 1000.0 };
    let (a, b) = ((a * scale).round(), (b * scale).round());
    if m.higher_is_better {
        a >= b
    } else {
        a <= b
    }
}

/// The quality table in markdown.
pub fn markdown(t: &Table) -> String {
    let mut s = String::new();
    let base = baseline(t);
    let ci = t
        .ci_metric
        .and_then(|name| t.metrics.iter().find(|m| m.name == name));
    s.push_str(&format!(
        "| kept | method | {} | loops |{}\n|---|---|{}---:|{}\n",
        t.metrics
            .iter()
            .map(|m| format!("{} {}", m.name, if m.higher_is_better { "↑" } else { "↓" }))
            .collect::<Vec<_>>()
            .join(" | "),
        ci.map(|m| format!(" 95 % CI, {} |", m.name))
            .unwrap_or_default(),
        "---:|".repeat(t.metrics.len()),
        if ci.is_some() { "---:|" } else { "" }
    ));
    for (keep, idx) in by_keep(t) {
        let pruned: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| !t.rows[i].is_unpruned())
            .collect();
        for &i in &idx {
            let r = &t.rows[i];
            let cells: Vec<String> = t
                .metrics
                .iter()
                .enumerate()
                .map(|(c, m)| {
                    let mut cell = fmt_value(r.values[c], m);
                    let Some(v) = r.values[c] else {
                        return cell;
                    };
                    if r.is_unpruned() {
                        return cell;
                    }
                    let best = pruned
                        .iter()
                        .filter_map(|&j| t.rows[j].values[c])
                        .all(|o| better_or_equal(v, o, m));
                    let at_base = base
                        .and_then(|b| b.values[c])
                        .is_some_and(|b| better_or_equal(v, b, m));
                    if at_base {
                        cell = format!("<u>{cell}</u>");
                    }
                    if best && pruned.len() > 1 {
                        cell = format!("**{cell}**");
                    }
                    cell
                })
                .collect();
            let interval = match (ci, r.ci95) {
                (Some(m), Some([lo, hi])) => format!(
                    " {} to {} |",
                    fmt_value(Some(lo), m),
                    fmt_value(Some(hi), m)
                ),
                (Some(_), None) => " n/a |".into(),
                (None, _) => String::new(),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {}/{} |{interval}\n",
                fmt_keep(keep),
                r.method,
                cells.join(" | "),
                r.loops,
                r.runs
            ));
        }
    }
    s.push_str(&format!(
        "\n{} on {} clips ({}){}. Bold: best of its keep ratio; underlined: at or better than the unpruned model (`{}`); loops: runs that looped (hit the token cap, repeated themselves, or compressed above 2.4), of all runs; 95 % CI: a bootstrap over clips (1,000 resamples, seeded).\n",
        t.model,
        t.items,
        t.dataset,
        if t.failed > 0 {
            format!(", {} failed and not scored", t.failed)
        } else {
            String::new()
        },
        base.map(|b| b.method.as_str()).unwrap_or("none run"),
    ));
    for n in &t.notes {
        s.push_str(&format!("{n}.\n"));
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The quality table as CSV: `method,keep,k_mean,<metrics...>` (empty cell where n/a).
pub fn csv(t: &Table) -> String {
    let mut s = format!(
        "method,keep,k_mean,loops,runs,{},ci95_lo,ci95_hi\n",
        t.metrics
            .iter()
            .map(|m| csv_field(&m.name))
            .collect::<Vec<_>>()
            .join(",")
    );
    for r in &t.rows {
        let vals: Vec<String> = r
            .values
            .iter()
            .map(|v| v.map(|x| format!("{x}")).unwrap_or_default())
            .collect();
        let [lo, hi] = r
            .ci95
            .map(|c| c.map(|x| format!("{x}")))
            .unwrap_or_default();
        s.push_str(&format!(
            "{},{},{:.1},{},{},{},{lo},{hi}\n",
            csv_field(&r.method),
            r.keep,
            r.k_mean,
            r.loops,
            r.runs,
            vals.join(",")
        ));
    }
    s
}

/// Mean and sample standard deviation.
pub fn mean_std(x: &[f64]) -> Option<(f64, f64)> {
    if x.is_empty() {
        return None;
    }
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 {
        x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((m, var.sqrt()))
}

/// One row of the efficiency table.
#[derive(Debug, Clone, PartialEq)]
pub struct EffRow {
    pub method: String,
    pub keep: f64,
    pub k_mean: f64,
    pub prefill_ms: Option<(f64, f64)>,
    pub decode_ms_per_token: Option<(f64, f64)>,
    pub tokens_mean: f64,
}

/// Per setting, over clips: prefill ms (where the model measures it) and decoding ms per
/// generated token; plus the encoder time per clip, shared by every setting.
pub fn efficiency(results: &Results) -> (Vec<EffRow>, Option<(f64, f64)>) {
    let ok = results.ran();
    let mut rows = Vec::new();
    for label in &results.header.settings {
        let runs: Vec<&RunResult> = ok
            .iter()
            .filter_map(|r| r.runs.iter().find(|x| setting_of(x) == *label))
            .collect();
        let Some(first) = runs.first() else {
            continue;
        };
        let per_token: Vec<f64> = runs
            .iter()
            .filter(|x| x.generated_tokens > 0)
            .map(|x| {
                x.decode_ms_per_token
                    .unwrap_or(x.decode_ms / x.generated_tokens as f64)
            })
            .collect();
        let prefill: Vec<f64> = runs.iter().filter_map(|x| x.prefill_ms).collect();
        let n = runs.len() as f64;
        rows.push(EffRow {
            method: first.method.name().to_string(),
            keep: first.keep,
            k_mean: runs.iter().map(|x| x.k as f64).sum::<f64>() / n,
            prefill_ms: mean_std(&prefill),
            decode_ms_per_token: mean_std(&per_token),
            tokens_mean: runs.iter().map(|x| x.generated_tokens as f64).sum::<f64>() / n,
        });
    }
    let enc: Vec<f64> = ok.iter().map(|r| r.encode_ms).collect();
    (rows, mean_std(&enc))
}

/// The efficiency table in markdown.
pub fn efficiency_markdown(results: &Results) -> String {
    let (rows, enc) = efficiency(results);
    let pm = |v: Option<(f64, f64)>, d: usize| match v {
        Some((m, s)) => format!("{m:.d$} ± {s:.d$}"),
        None => "n/a".into(),
    };
    let mut s = String::from(
        "| kept | method | mean K | prefill ms | decoding ms / token | generated tokens |\n|---|---|---:|---:|---:|---:|\n",
    );
    let mut order: Vec<&EffRow> = rows.iter().collect();
    order.sort_by(|a, b| b.keep.total_cmp(&a.keep));
    for r in order {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {:.1} |\n",
            fmt_keep(r.keep),
            r.method,
            r.k_mean,
            pm(r.prefill_ms, 1),
            pm(r.decode_ms_per_token, 2),
            r.tokens_mean
        ));
    }
    s.push_str(&format!(
        "\nMean ± std over clips. Encoder (run once per clip, shared by every setting): {} ms. Prefill: the language model's pass over the prompt (Qwen2-Audio, AF3); for Whisper its share of the cross-attention keys and values over the kept tokens; n/a in results from before it was measured. Decoding per token counts the steps after the prefill. Batched decoding (Whisper) shares each step's time among the sequences still running.\n",
        pm(enc, 1)
    ));
    s
}

/// Everything `eval report` writes, as (file name, contents).
pub fn render(results: &Results, scorer: &dyn OptionScorer) -> (Table, Vec<(String, String)>) {
    let t = score(results, scorer);
    let files = vec![
        ("table.md".to_string(), markdown(&t)),
        ("table.csv".to_string(), csv(&t)),
        ("efficiency.md".to_string(), efficiency_markdown(results)),
    ];
    (t, files)
}
