//! The evaluation runner and reports on the fake model (no weights): resume after a restart
//! or a torn line, shards + merge equal one run, settings mismatches refused, and the
//! markdown/CSV/efficiency reports and the PNG plot.

use crate::common::TempDir;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use prunescope::engine::worker::Worker;
use prunescope::engine::Session;
use prunescope::engine::{Decoding, Plan, RunMethod};
use prunescope::eval::datasets::{load, Dataset, DatasetKind};
use prunescope::eval::metrics::accuracy::LexicalScorer;
use prunescope::eval::runner::{self, read_results, RunOptions, Shard};
use prunescope::eval::{plot, report};
use prunescope::model::fake::FakeModel;
use prunescope::prune::Params;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/eval")
        .join(name)
}

fn plan(methods: &str) -> Plan {
    let m: Vec<RunMethod> = methods
        .split(',')
        .map(|m| RunMethod::parse(m).unwrap())
        .collect();
    Plan::grid(&m, &[0.5, 0.25], Params::default(), Decoding::default())
}

fn fake() -> FakeModel {
    FakeModel::new(Duration::ZERO)
}

fn dataset(kind: DatasetKind, name: &str) -> Dataset {
    load(kind, &fixture(name)).unwrap()
}

fn run(
    d: &Dataset,
    p: &Plan,
    out: &Path,
    shard: Shard,
    limit: Option<usize>,
) -> runner::Result<runner::RunSummary> {
    let opts = RunOptions { out, shard, limit };
    let host = Worker::with_model(Box::new(fake())).unwrap();
    let cancel = AtomicBool::new(false);
    let mut session = Session::open(&host, &cancel).unwrap();
    runner::run(
        &mut session,
        d,
        Path::new("fixture"),
        p,
        &opts,
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

#[test]
fn resumes_where_it_stopped_and_drops_a_torn_line() {
    let t = TempDir::new();
    let d = dataset(DatasetKind::Mmau, "mmau");
    let p = plan("vanilla,full,topk,segmentwise");
    let out = t.0.join("results.jsonl");
    let s = run(&d, &p, &out, Shard::ALL, Some(1)).unwrap();
    assert_eq!((s.ran, s.done_before, s.remaining), (1, 0, 2));
    // A process killed mid-write leaves a torn last line.
    let mut text = std::fs::read_to_string(&out).unwrap();
    text.push_str("{\"index\": 1, \"item\": {\"id\"");
    std::fs::write(&out, text).unwrap();
    let s = run(&d, &p, &out, Shard::ALL, None).unwrap();
    assert_eq!((s.ran, s.done_before, s.remaining), (2, 1, 0));
    let s = run(&d, &p, &out, Shard::ALL, None).unwrap();
    assert_eq!((s.ran, s.done_before), (0, 3));
    let (r, _) = read_results(&out).unwrap();
    let ids: Vec<&str> = r.records.iter().map(|r| r.item.id.as_str()).collect();
    assert_eq!(ids, ["mmau-1", "mmau-2", "mmau-3"]);
    // vanilla, full, then topk and segmentwise at two ratios: 6 settings per clip.
    assert!(r
        .records
        .iter()
        .all(|r| r.runs.len() == 6 && r.error.is_none()));
    assert_eq!(r.header.settings[2], "topk@0.5");
}

#[test]
fn each_clip_keeps_its_scores_and_outputs_and_opens_as_its_analysis() {
    let t = TempDir::new();
    let d = dataset(DatasetKind::Mmau, "mmau");
    let mut p = plan("full,topk,segmentwise");
    p.decoding.attention = true;
    let out = t.0.join("results.jsonl");
    run(&d, &p, &out, Shard::ALL, Some(2)).unwrap();
    let Ok(prunescope::document::Opened::Run(r)) = prunescope::document::open(&t.0) else {
        panic!("the folder does not open as a run");
    };
    assert_eq!(r.header.plan.as_ref().unwrap().params, p.params);
    for rec in &r.records {
        let a = rec.analysis(&r.header).expect("scores and runs stored");
        // The clip's prompt is its question's, as the run gave it.
        let prompt =
            runner::question_prompt(rec.item.question.as_deref().unwrap(), &rec.item.choices);
        assert_eq!(a.plan.unwrap().decoding.prompt, Some(prompt));
        assert_eq!(a.report.scores.len(), a.report.tokens.count);
        for run in &a.runs {
            // Segmentwise keeps floor(K / S) per segment: at most K.
            let n = a.report.tokens.count;
            assert!(
                !run.kept.is_empty() && run.kept.len() <= run.k.min(n),
                "{run:?}"
            );
            assert!(run.kept.iter().all(|&t| t < n));
            assert!(!run.token_ids.is_empty());
            assert!(run.words.is_some(), "words were asked for");
            assert!(run.attention.is_none(), "attention is left out");
        }
    }
}

#[test]
fn refuses_to_mix_settings_in_one_file() {
    let t = TempDir::new();
    let d = dataset(DatasetKind::Mmau, "mmau");
    let out = t.0.join("results.jsonl");
    run(&d, &plan("full,topk"), &out, Shard::ALL, Some(1)).unwrap();
    let e = run(&d, &plan("full,bottomk"), &out, Shard::ALL, None).unwrap_err();
    assert!(e.to_string().contains("methods/keep ratios"), "{e}");
}

#[test]
fn shards_then_merge_equal_one_run() {
    let t = TempDir::new();
    let d = dataset(DatasetKind::Clothoaqa, "clothoaqa");
    let p = plan("full,topk,random");
    let whole = t.0.join("whole.jsonl");
    run(&d, &p, &whole, Shard::ALL, None).unwrap();
    let mut parts = Vec::new();
    for i in 0..2 {
        let s = Shard { index: i, of: 2 };
        let f = t.0.join(s.file_name());
        run(&d, &p, &f, s, None).unwrap();
        parts.push(f);
    }
    assert_eq!(parts[1].file_name().unwrap(), "results.shard-1-of-2.jsonl");
    // Merging a shard twice keeps each clip once.
    parts.push(parts[0].clone());
    let merged = runner::merge(&parts, &t.0.join("merged.jsonl")).unwrap();
    let (one, _) = read_results(&whole).unwrap();
    let texts = |r: &runner::Results| -> Vec<(String, Vec<String>)> {
        r.records
            .iter()
            .map(|x| {
                (
                    x.item.id.clone(),
                    x.runs.iter().map(|y| y.text.clone()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(texts(&merged), texts(&one));
    assert_eq!(merged.header.shard, None);
    let (reread, _) = read_results(&t.0.join("merged.jsonl")).unwrap();
    assert_eq!(texts(&reread), texts(&one));
}

#[test]
fn shard_syntax() {
    assert_eq!(Shard::parse("2/8").unwrap(), Shard { index: 2, of: 8 });
    for bad in ["8/8", "1", "a/b", "0/0", "-1/2"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn reports_tables_csv_efficiency_and_plot() {
    let t = TempDir::new();
    let d = dataset(DatasetKind::Mmau, "mmau");
    let out = t.0.join("results.jsonl");
    run(
        &d,
        &plan("vanilla,full,topk,segmentwise,bottomk"),
        &out,
        Shard::ALL,
        None,
    )
    .unwrap();
    let (r, _) = read_results(&out).unwrap();
    let (table, files) = report::render(&r, &LexicalScorer);
    assert_eq!(table.items, 3);
    assert_eq!(table.metrics.len(), 4);
    assert_eq!(table.rows.len(), 8);
    let md = &files[0].1;
    assert!(
        md.starts_with("| kept | method | Sound % ↑ | Speech % ↑ | Music % ↑ | Total % ↑ |"),
        "{md}"
    );
    assert!(
        md.contains("| 100 % | vanilla |") && md.contains("| 25 % | segmentwise |"),
        "{md}"
    );
    assert!(
        md.contains("items per subset: sound: 1, speech: 1, music: 1"),
        "{md}"
    );
    let csv = &files[1].1;
    assert_eq!(csv.lines().count(), 9);
    assert!(
        csv.starts_with("method,keep,k_mean,loops,runs,Sound %,"),
        "{csv}"
    );
    let eff = &files[2].1;
    assert!(
        eff.contains("| 50 % | topk |") && eff.contains("n/a"),
        "{eff}"
    );
    let png = t.0.join("plot.png");
    plot::plot_png(&table, 3, &png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 5000,
        "a plot with lines and labels, {} bytes",
        bytes.len()
    );
}
