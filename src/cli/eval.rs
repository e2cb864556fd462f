//! `prunescope eval` (run a dataset, `merge` shards, `report`) and `prunescope metric` (score
//! existing predictions without a model).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use super::{build_plan, open_host, ModelArgs, PlanArgs, RemoteArgs};
use prunescope::engine::Session;
use prunescope::eval::datasets::{self, DatasetKind};
use prunescope::eval::embed::{self, SentenceScorer};
use prunescope::eval::metrics::accuracy::{self, LexicalScorer, OptionScorer};
use prunescope::eval::metrics::{self, wer};
use prunescope::eval::runner::{self, RunEvent, RunOptions, Shard};
use prunescope::eval::{plot, report};
use prunescope::model::store;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    sub: Option<EvalSub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum EvalSub {
    /// Join the results files of several shards (or processes) into one.
    Merge(MergeArgs),
    /// Score a results file and write table.md, table.csv, efficiency.md and plot.png.
    Report(ReportArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Which published set the --data path holds: asr, clotho, audiocaps, clothoaqa, mmau.
    #[arg(long, required = true, value_parser = DatasetKind::parse)]
    dataset: Option<DatasetKind>,
    /// Dataset folder (or its CSV/JSON/manifest file).
    #[arg(long, required = true)]
    data: Option<PathBuf>,
    /// Output folder: results JSONL (the resume checkpoint) and the reports.
    #[arg(long, default_value = "eval-out")]
    out: PathBuf,
    /// Run only items with index % n == i; write results.shard-i-of-n.jsonl.
    #[arg(long, value_name = "i/n")]
    shard: Option<String>,
    /// Run at most this many clips now (the rest on the next call).
    #[arg(long)]
    limit: Option<usize>,
    /// Do not write the reports after the run.
    #[arg(long)]
    no_report: bool,
    /// Store each run's words with their times in the clip, as `analyze --words` gives them,
    /// so the clips open in the explorer with their word links (`prunescope open OUT`).
    #[arg(long)]
    words: bool,
    #[command(flatten)]
    scorer: ScorerArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    plan: PlanArgs,
}

#[derive(Args)]
struct MergeArgs {
    /// Results files to join (e.g. out/results.shard-*.jsonl).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Merged file (default: results.jsonl beside the first input).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Also write the reports beside the merged file.
    #[arg(long)]
    report: bool,
    #[command(flatten)]
    scorer: ScorerArgs,
}

#[derive(Args)]
struct ReportArgs {
    /// A results JSONL (from `eval` or `eval merge`).
    results: PathBuf,
    /// Folder for the report files (default: the results file's folder).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Compare two settings clip by clip instead, each written `method@keep` (e.g. topk@0.25
    /// segmentwise@0.25): the clips ranked by the difference of the quality table's first
    /// metric, the corpus values and a paired bootstrap 95 % interval of the difference.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    by_clip: Option<Vec<String>>,
    /// With --by-clip: print one JSON object instead of the table.
    #[arg(long, requires = "by_clip")]
    json: bool,
    /// With --by-clip: bootstrap resamples (seeded, so the interval is the same every run).
    #[arg(long, default_value_t = 1000, requires = "by_clip")]
    bootstrap: usize,
    #[command(flatten)]
    scorer: ScorerArgs,
}

/// How MMAU answers that name no option (text or letter) are mapped to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScorerKind {
    /// `minilm` when the model is on disk, else `lexical` (with a note on stderr).
    Auto,
    /// Sentence-embedding similarity with all-MiniLM-L6-v2, as the MMAU paper did.
    Minilm,
    /// Bag-of-words cosine similarity (no model).
    Lexical,
}

#[derive(Args)]
struct ScorerArgs {
    /// Similarity for MMAU answers that name no option: minilm (all-MiniLM-L6-v2 from
    /// $PRUNESCOPE_MINILM or the user cache folder, fetched there when missing), lexical (bag of
    /// words), or auto (minilm when present, else lexical).
    #[arg(long, value_enum, default_value = "auto")]
    scorer: ScorerKind,
}

/// Where `--scorer minilm` finds its model: fetched into the user cache folder when missing.
fn minilm_dir() -> Result<PathBuf> {
    store::MINILM
        .ensure(&mut |line| eprintln!("{line}"))
        .map_err(|e| anyhow!("--scorer minilm: {e}"))
}

/// The option scorer `kind` asks for. `auto` never fails: without a usable model it says so on
/// stderr, once, and takes the bag-of-words scorer.
fn option_scorer(kind: ScorerKind) -> Result<Box<dyn OptionScorer>> {
    match kind {
        ScorerKind::Lexical => Ok(Box::new(LexicalScorer)),
        ScorerKind::Minilm => {
            let s = SentenceScorer::load(&minilm_dir()?)
                .map_err(|e| anyhow!("--scorer minilm: {e}"))?;
            Ok(Box::new(s))
        }
        ScorerKind::Auto => {
            let (scorer, note) = embed::auto_scorer();
            if let Some(note) = note {
                eprintln!("{note}");
            }
            Ok(scorer)
        }
    }
}

pub fn run(a: EvalArgs) -> Result<()> {
    match a.sub {
        Some(EvalSub::Merge(m)) => merge(m),
        Some(EvalSub::Report(r)) if r.by_clip.is_some() => by_clip(&r),
        Some(EvalSub::Report(r)) => {
            let dir = r
                .out
                .clone()
                .unwrap_or_else(|| parent_dir(&r.results).to_path_buf());
            write_reports(&r.results, &dir, r.scorer.scorer, true)
        }
        None => run_dataset(a.run),
    }
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A clip id short enough for the progress bar's message.
fn short(id: &str) -> String {
    let n = id.chars().count();
    if n <= 32 {
        id.to_string()
    } else {
        format!("...{}", id.chars().skip(n - 29).collect::<String>())
    }
}

fn run_dataset(a: RunArgs) -> Result<()> {
    let (Some(kind), Some(data)) = (a.dataset, a.data.as_ref()) else {
        bail!("--dataset and --data are required");
    };
    let shard = match &a.shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::ALL,
    };
    // A missing model for an explicit `--scorer minilm` fails now, not after the whole run.
    if a.scorer.scorer == ScorerKind::Minilm && report::maps_options(kind.name()) {
        embed::check_dir(&minilm_dir()?).map_err(|e| anyhow!("--scorer minilm: {e}"))?;
    }
    let dataset = datasets::load(kind, data)?;
    if !dataset.missing_audio.is_empty() {
        eprintln!(
            "{} item(s) skipped: audio not found (first: {})",
            dataset.missing_audio.len(),
            dataset.missing_audio[0].display()
        );
    }
    let host = open_host(&a.model, &a.remote)?;
    let cancel = AtomicBool::new(false);
    let mut session = Session::open(host.as_ref(), &cancel)?;
    let mut plan = build_plan(&a.plan, session.info.seconds_per_token)?;
    plan.decoding.attention = a.words;
    let out_file = a.out.join(shard.file_name());
    let opts = RunOptions {
        out: &out_file,
        shard,
        limit: a.limit,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} clips  {elapsed} elapsed, ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut progress = |e: RunEvent<'_>| match e {
        RunEvent::Start { clips } => bar.set_length(clips as u64),
        RunEvent::Clip { id } => bar.set_message(short(id)),
        RunEvent::Failed { id, error } => bar.println(format!("{id}: {error}")),
        RunEvent::Written => bar.inc(1),
        RunEvent::Finished => bar.finish_and_clear(),
    };
    let s = runner::run(
        &mut session,
        &dataset,
        data,
        &plan,
        &opts,
        &cancel,
        &mut progress,
    )?;
    eprintln!(
        "{}: {} clip(s) run now, {} already done{}{}",
        out_file.display(),
        s.ran,
        s.done_before,
        if s.failed > 0 {
            format!(", {} failed (recorded, not scored)", s.failed)
        } else {
            String::new()
        },
        if s.remaining > 0 {
            format!(", {} left for the next call", s.remaining)
        } else {
            String::new()
        }
    );
    if a.no_report || s.remaining > 0 {
        return Ok(());
    }
    if shard.of > 1 {
        eprintln!(
            "shard done; when all are: prunescope eval merge {}/results.shard-*-of-{}.jsonl --report",
            a.out.display(),
            shard.of
        );
        return Ok(());
    }
    write_reports(&out_file, &a.out, a.scorer.scorer, true)
}

fn merge(m: MergeArgs) -> Result<()> {
    let out = m
        .out
        .clone()
        .unwrap_or_else(|| parent_dir(&m.inputs[0]).join("results.jsonl"));
    if m.inputs.iter().any(|i| i == &out) {
        bail!(
            "the merged file {} is also an input: pass --out",
            out.display()
        );
    }
    let r = runner::merge(&m.inputs, &out)?;
    eprintln!(
        "merged {} file(s): {} of {} clips in {}",
        m.inputs.len(),
        r.records.len(),
        r.header.items,
        out.display()
    );
    if m.report {
        write_reports(&out, parent_dir(&out), m.scorer.scorer, true)?;
    }
    Ok(())
}

/// `eval report RESULTS --by-clip A B`.
fn by_clip(r: &ReportArgs) -> Result<()> {
    let Some([a, b]) = r.by_clip.as_deref() else {
        bail!("--by-clip takes two settings, e.g. --by-clip topk@0.25 segmentwise@0.25");
    };
    if r.bootstrap == 0 {
        bail!("--bootstrap must be at least 1");
    }
    let (results, _) = runner::read_results(&r.results)?;
    let scorer = if report::maps_options(&results.header.dataset) {
        option_scorer(r.scorer.scorer)?
    } else {
        Box::new(LexicalScorer)
    };
    let c = prunescope::eval::by_clip::compare(&results, a, b, scorer.as_ref(), r.bootstrap, 0)
        .map_err(|e| anyhow!("--by-clip: {e}"))?;
    if r.json {
        println!("{}", serde_json::to_string(&c)?);
    } else {
        print!("{}", prunescope::eval::by_clip::text(&c));
    }
    Ok(())
}

fn write_reports(results: &Path, dir: &Path, scorer: ScorerKind, print: bool) -> Result<()> {
    let (r, _) = runner::read_results(results)?;
    // Only multiple-choice sets use the scorer: others need not load (or miss) the model.
    let scorer = if report::maps_options(&r.header.dataset) {
        option_scorer(scorer)?
    } else {
        Box::new(LexicalScorer)
    };
    let (table, files) = report::render(&r, scorer.as_ref());
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in &files {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    let png = dir.join("plot.png");
    if let Err(e) = plot::plot_png(&table, 0, &png) {
        eprintln!("no plot: {e}");
    }
    if print {
        println!("{}", files[0].1);
        println!("{}", files[2].1);
        eprintln!(
            "wrote table.md, table.csv, efficiency.md, plot.png in {}",
            dir.display()
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["cider", "wer", "accuracy"])))]
pub struct MetricArgs {
    /// CIDEr-D as pycocoevalcap computes it (PTB tokenisation; corpus document frequencies).
    #[arg(long)]
    cider: bool,
    /// Word error rate as jiwer computes it (also shown lower-cased without punctuation).
    #[arg(long)]
    wer: bool,
    /// Accuracy: options chosen MMAU-style when the references list `choices`, else
    /// ClothoAQA normalised exact match.
    #[arg(long)]
    accuracy: bool,
    /// References: JSONL ({"id", "refs": [..]} / {"id", "text"} / {"id", "answer", "choices"})
    /// or text, one item per line (several CIDEr references separated by tabs).
    #[arg(long)]
    refs: PathBuf,
    /// Predictions: JSONL ({"id", "text"}) or text, one per line in the references' order.
    #[arg(long)]
    preds: PathBuf,
    #[command(flatten)]
    scorer: ScorerArgs,
}

struct RefItem {
    id: Option<String>,
    refs: Vec<String>,
    choices: Vec<String>,
}

fn is_jsonl(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("json"))
}

fn read_lines(p: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect())
}

fn json_lines(p: &Path) -> Result<Vec<serde_json::Value>> {
    read_lines(p)?
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", p.display(), i + 1))
        })
        .collect()
}

fn str_list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn id_of(v: &serde_json::Value) -> Option<String> {
    v.get("id").map(|x| match x {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn read_refs(p: &Path) -> Result<Vec<RefItem>> {
    if is_jsonl(p) {
        json_lines(p)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let refs = [
                    "refs",
                    "references",
                    "captions",
                    "text",
                    "answer",
                    "answers",
                ]
                .iter()
                .find_map(|k| v.get(*k))
                .map(str_list)
                .unwrap_or_default();
                if refs.is_empty() {
                    bail!(
                        "{}: line {}: no \"refs\", \"text\" or \"answer\"",
                        p.display(),
                        i + 1
                    );
                }
                Ok(RefItem {
                    id: id_of(v),
                    refs,
                    choices: v.get("choices").map(str_list).unwrap_or_default(),
                })
            })
            .collect()
    } else {
        Ok(read_lines(p)?
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| RefItem {
                id: None,
                refs: l.split('\t').map(str::to_string).collect(),
                choices: Vec::new(),
            })
            .collect())
    }
}

fn read_preds(p: &Path) -> Result<Vec<(Option<String>, String)>> {
    if is_jsonl(p) {
        json_lines(p)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let text = ["text", "pred", "prediction", "caption", "answer"]
                    .iter()
                    .find_map(|k| v.get(*k).and_then(|x| x.as_str()))
                    .with_context(|| format!("{}: line {}: no \"text\"", p.display(), i + 1))?;
                Ok((id_of(v), text.to_string()))
            })
            .collect()
    } else {
        // Text predictions keep empty lines: an empty prediction is a prediction.
        let mut lines = read_lines(p)?;
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        Ok(lines.into_iter().map(|l| (None, l)).collect())
    }
}

/// Pairs predictions with references: by id when both files carry ids, else by line.
fn pair(
    refs: Vec<RefItem>,
    preds: Vec<(Option<String>, String)>,
) -> Result<Vec<(RefItem, String)>> {
    let by_id = refs.iter().all(|r| r.id.is_some()) && preds.iter().all(|p| p.0.is_some());
    if by_id {
        let mut map: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for (id, t) in preds {
            if let Some(id) = id {
                map.insert(id, t);
            }
        }
        let mut out = Vec::new();
        for r in refs {
            let id = r.id.clone().unwrap_or_default();
            let Some(t) = map.remove(&id) else {
                bail!("no prediction for id `{id}`");
            };
            out.push((r, t));
        }
        if let Some(extra) = map.keys().next() {
            bail!("prediction `{extra}` has no reference");
        }
        Ok(out)
    } else {
        if refs.len() != preds.len() {
            bail!(
                "{} references but {} predictions (without ids on both sides, lines must pair up)",
                refs.len(),
                preds.len()
            );
        }
        Ok(refs
            .into_iter()
            .zip(preds.into_iter().map(|p| p.1))
            .collect())
    }
}

pub fn metric(a: MetricArgs) -> Result<()> {
    let pairs = pair(read_refs(&a.refs)?, read_preds(&a.preds)?)?;
    if pairs.is_empty() {
        bail!("no items to score");
    }
    let n = pairs.len();
    if a.wer {
        let w = |norm| {
            wer::corpus_wer(
                pairs.iter().map(|(r, p)| (r.refs[0].as_str(), p.as_str())),
                norm,
            )
        };
        let (d, b) = (w(wer::Normalization::Default), w(wer::Normalization::Basic));
        if !d.is_finite() {
            bail!("the references hold no words");
        }
        println!(
            "WER {:.2} % (jiwer default) | {:.2} % (lower-case, no punctuation) over {n} utterances",
            100.0 * d,
            100.0 * b
        );
    } else if a.cider {
        let preds: Vec<String> = pairs.iter().map(|(_, p)| p.clone()).collect();
        let refs: Vec<Vec<String>> = pairs.iter().map(|(r, _)| r.refs.clone()).collect();
        let (score, _) = metrics::cider_raw(&preds, &refs);
        println!("CIDEr-D {score:.6} over {n} items");
    } else {
        let scorer = if pairs.iter().any(|(r, _)| !r.choices.is_empty()) {
            option_scorer(a.scorer.scorer)?
        } else {
            Box::new(LexicalScorer)
        };
        let mut by_similarity = 0;
        let right = pairs
            .iter()
            .filter(|(r, p)| {
                if r.choices.is_empty() {
                    accuracy::aqa_correct(p, &r.refs)
                } else {
                    let chosen = accuracy::choose_option(p, &r.choices, scorer.as_ref());
                    if matches!(chosen, Some((_, accuracy::MatchKind::Similarity))) {
                        by_similarity += 1;
                    }
                    accuracy::is_answer(chosen, &r.choices, &r.refs[0])
                }
            })
            .count();
        println!(
            "accuracy {:.2} % ({right} of {n} items)",
            100.0 * right as f64 / n as f64
        );
        if by_similarity > 0 {
            eprintln!(
                "{by_similarity} answer(s) named no option and were mapped by similarity ({})",
                scorer.name()
            );
        }
    }
    Ok(())
}
