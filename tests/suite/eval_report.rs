//! The report layout rules on hand-made results: best per keep ratio in bold, at-or-better than
//! the unpruned model underlined (WER: lower is better), CSV, efficiency statistics.

use prunescope::engine::RunResult;
use prunescope::eval::datasets::Item;
use prunescope::eval::metrics::accuracy::LexicalScorer;
use prunescope::eval::report;
use prunescope::eval::runner::{Header, Record, Results};

/// A run as an eval results file stores it (what a file written before kept tokens and token
/// ids were stored holds, so it also checks those still read).
fn rr(method: &str, keep: f64, text: &str, ms: f64, tokens: usize) -> RunResult {
    serde_json::from_value(serde_json::json!({
        "method": method,
        "keep": keep,
        "segments": null,
        "k": (keep * 100.0) as usize,
        "text": text,
        "decode_ms": ms,
        "generated_tokens": tokens,
        "prefill_ms": null,
    }))
    .unwrap()
}

fn results() -> Results {
    let settings = [
        "full@1",
        "topk@0.5",
        "segmentwise@0.5",
        "topk@0.1",
        "segmentwise@0.1",
    ];
    let item = |id: &str, text: &str| Item {
        id: id.into(),
        audio: "x.wav".into(),
        refs: vec![text.into()],
        question: None,
        choices: Vec::new(),
        group: None,
    };
    let rec = |i: usize, id: &str, refs: &str, runs: Vec<RunResult>| Record {
        index: i,
        item: item(id, refs),
        duration_s: 1.0,
        encode_ms: 10.0 + i as f64,
        runs,
        clip: None,
        error: None,
    };
    Results {
        header: Header {
            prunescope_eval: 1,
            dataset: "asr".into(),
            data: "x".into(),
            model: "m".into(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
            params: String::new(),
            tail: prunescope::engine::Tail::Tokens(50),
            items: 3,
            shard: None,
            plan: None,
        },
        records: vec![
            rec(
                0,
                "a",
                "one two three four",
                vec![
                    rr("full", 1.0, "one two three four", 40.0, 4),
                    rr("topk", 0.5, "one two three four", 20.0, 4),
                    rr("segmentwise", 0.5, "one two three", 30.0, 3),
                    rr("topk", 0.1, "one", 10.0, 1),
                    rr("segmentwise", 0.1, "one two", 12.0, 2),
                ],
            ),
            rec(
                1,
                "b",
                "Five six.",
                vec![
                    rr("full", 1.0, "five six", 20.0, 2),
                    rr("topk", 0.5, "Five six.", 10.0, 2),
                    rr("segmentwise", 0.5, "Five six.", 10.0, 2),
                    rr("topk", 0.1, "", 0.0, 0),
                    // A run that looped: counted, and left out of the loop-free WER.
                    RunResult {
                        looped: true,
                        ..rr("segmentwise", 0.1, "five", 5.0, 1)
                    },
                ],
            ),
            Record {
                error: Some("cannot decode".into()),
                ..rec(2, "c", "x", Vec::new())
            },
        ],
    }
}

#[test]
fn table_marks_best_and_at_or_better_than_unpruned() {
    let t = report::score(&results(), &LexicalScorer);
    assert_eq!((t.items, t.failed), (2, 1));
    let wer: Vec<(String, f64)> = t
        .rows
        .iter()
        .map(|r| (format!("{}@{}", r.method, r.keep), r.values[0].unwrap()))
        .collect();
    // Default jiwer: case and punctuation count. full: "five six" vs "Five six." = 2 errors of 6.
    let want = [
        ("full@1", 2.0),
        ("topk@0.5", 0.0),
        ("segmentwise@0.5", 1.0),
        ("topk@0.1", 5.0),
        ("segmentwise@0.1", 4.0),
    ];
    for ((name, got), (want_name, errors)) in wer.iter().zip(want) {
        assert_eq!(name, want_name);
        assert!((got - 100.0 * errors / 6.0).abs() < 1e-9, "{name}: {got}");
    }
    // Lower-case, no punctuation: full is perfect.
    assert_eq!(t.rows[0].values[1], Some(0.0));
    let md = report::markdown(&t);
    let line = |p: &str| {
        md.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("{p}: {md}"))
            .to_string()
    };
    assert_eq!(
        line("| 100 % | full |"),
        "| 100 % | full | 33.33 | 0.00 | 33.33 | 0/2 | 0.00 to 100.00 |"
    );
    assert_eq!(
        line("| 50 % | topk |"),
        "| 50 % | topk | **<u>0.00</u>** | **<u>0.00</u>** | **<u>0.00</u>** | 0/2 | 0.00 to 0.00 |"
    );
    assert_eq!(
        line("| 50 % | segmentwise |"),
        "| 50 % | segmentwise | <u>16.67</u> | 16.67 | <u>16.67</u> | 0/2 | 0.00 to 25.00 |"
    );
    // The interval of the corpus WER over resampled clips: full is 0 % on clip a alone, 100 %
    // on clip b alone ("Five six." read "five six": 2 errors of 2).
    // Without its looped run, segmentwise at 10 % is "one two" for four words: 2 errors of 4.
    assert_eq!(
        line("| 10 % | segmentwise |"),
        "| 10 % | segmentwise | **66.67** | **50.00** | **50.00** | 1/2 | 50.00 to 100.00 |"
    );
    assert!(md.contains("1 failed and not scored"), "{md}");
    let csv = report::csv(&t);
    assert_eq!(csv.lines().nth(2).unwrap(), "topk,0.5,50.0,0,2,0,0,0,0,0");
}

#[test]
fn efficiency_is_ms_per_generated_token_over_clips() {
    let (rows, enc) = report::efficiency(&results());
    let full = &rows[0];
    // 40/4 and 20/2 ms per token.
    assert_eq!(full.decode_ms_per_token, Some((10.0, 0.0)));
    assert_eq!(full.prefill_ms, None);
    // A clip that generated nothing has no per-token time.
    let topk10 = rows
        .iter()
        .find(|r| r.method == "topk" && r.keep == 0.1)
        .unwrap();
    assert_eq!(topk10.decode_ms_per_token, Some((10.0, 0.0)));
    let (m, s) = enc.unwrap();
    assert_eq!(m, 10.5);
    assert!((s - 0.5f64.sqrt()).abs() < 1e-12);
    assert_eq!(report::mean_std(&[]), None);
}

/// An ASR run of `n` clips where `topk@0.25` drops more words than `segmentwise@0.25` on most
/// clips (and fewer on some).
fn asr_run(n: usize) -> Results {
    let words: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    let records = (0..n)
        .map(|i| {
            let say = |drop: usize| words[drop.min(10)..].join(" ");
            Record {
                index: i,
                item: Item {
                    id: format!("clip{i:02}"),
                    audio: "x.wav".into(),
                    refs: vec![words.join(" ")],
                    question: None,
                    choices: Vec::new(),
                    group: None,
                },
                duration_s: 1.0,
                encode_ms: 1.0,
                runs: vec![
                    rr("full", 1.0, &say(0), 1.0, 10),
                    rr("topk", 0.25, &say(i % 5), 1.0, 10),
                    rr("segmentwise", 0.25, &say((i + 2) % 3), 1.0, 10),
                ],
                clip: None,
                error: None,
            }
        })
        .collect();
    Results {
        header: Header {
            prunescope_eval: 1,
            dataset: "asr".into(),
            data: "x".into(),
            model: "m".into(),
            settings: vec![
                "full@1".into(),
                "topk@0.25".into(),
                "segmentwise@0.25".into(),
            ],
            params: String::new(),
            tail: prunescope::engine::Tail::Tokens(50),
            items: n,
            shard: None,
            plan: None,
        },
        records,
    }
}

#[test]
fn by_clip_ranks_clips_by_the_difference_with_the_table_s_corpus_values() {
    use prunescope::eval::by_clip;
    let r = asr_run(24);
    let c = by_clip::compare(&r, "topk@0.25", "segmentwise@0.25", &LexicalScorer, 1000, 0).unwrap();
    assert_eq!(c.metric, "WER %");
    assert_eq!(c.clips.len(), 24);
    for x in &c.clips {
        let i: usize = x.id[4..].parse().unwrap();
        // Each dropped word is one deletion of ten.
        assert!((x.a - 10.0 * (i % 5) as f64).abs() < 1e-9, "{x:?}");
        assert!((x.b - 10.0 * ((i + 2) % 3) as f64).abs() < 1e-9, "{x:?}");
        assert_eq!(x.delta, x.a - x.b);
    }
    assert!(c.clips.windows(2).all(|w| w[0].delta >= w[1].delta));
    // The corpus values are the quality table's.
    let t = report::score(&r, &LexicalScorer);
    let table = |label: &str| {
        t.rows
            .iter()
            .find(|row| format!("{}@{}", row.method, row.keep) == label)
            .and_then(|row| row.values[0])
            .unwrap()
    };
    assert!((c.mean.a - table("topk@0.25")).abs() < 1e-9);
    assert!((c.mean.b - table("segmentwise@0.25")).abs() < 1e-9);
    assert!((c.mean.delta - (c.mean.a - c.mean.b)).abs() < 1e-12);
    // The table's own interval of each setting holds its value (jiwer's WER of the corpus).
    for row in t.rows.iter().filter(|r| r.method != "full") {
        let [lo, hi] = row.ci95.unwrap();
        let v = row.values[0].unwrap();
        assert!(lo < v && v < hi, "{}: {lo} {v} {hi}", row.method);
    }
    let md = report::markdown(&t);
    assert!(
        md.lines()
            .next()
            .unwrap()
            .ends_with("| loops | 95 % CI, WER % |"),
        "{md}"
    );
    assert!(report::csv(&t).starts_with("method,keep,k_mean,loops,runs,"));
    assert!(report::csv(&t)
        .lines()
        .next()
        .unwrap()
        .ends_with(",ci95_lo,ci95_hi"));
    // The interval holds the corpus difference and has a width.
    let [lo, hi] = c.delta_ci95;
    assert!(
        lo < c.mean.delta && c.mean.delta < hi,
        "{lo} {} {hi}",
        c.mean.delta
    );
    // Seeded: the same interval every time.
    let again = by_clip::compare(&r, "topk@0.25", "segmentwise@0.25", &LexicalScorer, 1000, 0);
    assert_eq!(again.unwrap().delta_ci95, c.delta_ci95);
    assert!(matches!(
        by_clip::compare(&r, "topk@0.5", "full@1", &LexicalScorer, 10, 0),
        Err(by_clip::ByClipError::NoSetting(..))
    ));
}

#[test]
fn the_corpus_table_holds_every_clip_and_compares_as_by_clip_does() {
    use prunescope::eval::by_clip;
    let r = asr_run(24);
    let t = by_clip::table(&r, &LexicalScorer);
    assert_eq!(t.settings, r.header.settings);
    assert_eq!(t.clips.len(), 24);
    let (a, b) = (1, 2);
    assert_eq!(
        (t.settings[a].as_str(), t.settings[b].as_str()),
        ("topk@0.25", "segmentwise@0.25")
    );
    let direct = by_clip::compare(&r, "topk@0.25", "segmentwise@0.25", &LexicalScorer, 500, 3);
    assert_eq!(t.compare(a, b, 500, 3).unwrap(), direct.unwrap());
    for (i, id) in t.clips.iter().enumerate() {
        let n: usize = id[4..].parse().unwrap();
        assert_eq!(t.value(i, a), Some(10.0 * (n % 5) as f64));
    }
    // Each setting's corpus value is the quality table's.
    let q = report::score(&r, &LexicalScorer);
    for (j, setting) in t.settings.iter().enumerate() {
        let row = q
            .rows
            .iter()
            .find(|row| &format!("{}@{}", row.method, row.keep) == setting)
            .unwrap();
        assert!((t.corpus[j].unwrap() - row.values[0].unwrap()).abs() < 1e-9);
    }
    assert!(t.compare(a, 9, 10, 0).is_err());
}

#[test]
fn eval_report_by_clip_prints_the_ranking_and_its_json() {
    use crate::common::{assert_one_line_error, ok, prunescope, TempDir};
    let t = TempDir::new();
    let r = asr_run(12);
    let mut text = serde_json::to_string(&r.header).unwrap();
    for rec in &r.records {
        text.push('\n');
        text.push_str(&serde_json::to_string(rec).unwrap());
    }
    text.push('\n');
    let file = t.file("results.jsonl", text.as_bytes());
    let file = file.to_str().unwrap();
    let args = [
        "eval",
        "report",
        file,
        "--by-clip",
        "topk@0.25",
        "segmentwise@0.25",
    ];
    let (json, _) = ok(&[&args[..], &["--json", "--bootstrap", "200"]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let want = prunescope::eval::by_clip::compare(
        &r,
        "topk@0.25",
        "segmentwise@0.25",
        &LexicalScorer,
        200,
        0,
    )
    .unwrap();
    // The same object as the library's, to the last digit printed.
    assert_eq!(json.trim(), serde_json::to_string(&want).unwrap());
    assert_eq!(v["clips"].as_array().unwrap().len(), 12);
    assert_eq!(v["a"], "topk@0.25");
    let (table, _) = ok(&args);
    assert!(table.starts_with("WER %: topk@0.25 "), "{table}");
    assert_eq!(table.lines().count(), 2 + 12);
    let out = prunescope(&["eval", "report", file, "--by-clip", "topk@0.3", "full@1"]);
    assert_one_line_error(&out, "--by-clip: no setting `topk@0.3` in the results");
}
