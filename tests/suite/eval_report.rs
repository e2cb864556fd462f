//! The report layout rules on hand-made results: best per keep ratio in bold, at-or-better than
//! the unpruned model underlined (WER: lower is better), CSV, efficiency statistics.

use prunescope::eval::datasets::Item;
use prunescope::eval::metrics::accuracy::LexicalScorer;
use prunescope::eval::report;
use prunescope::eval::runner::{Header, Record, Results, RunRecord};

fn rr(method: &str, keep: f64, text: &str, ms: f64, tokens: usize) -> RunRecord {
    RunRecord {
        method: method.into(),
        keep,
        segments: None,
        k: (keep * 100.0) as usize,
        text: text.into(),
        decode_ms: ms,
        generated_tokens: tokens,
        prefill_ms: None,
        decode_ms_per_token: None,
        looped: false,
    }
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
    let rec = |i: usize, id: &str, refs: &str, runs: Vec<RunRecord>| Record {
        index: i,
        item: item(id, refs),
        duration_s: 1.0,
        encode_ms: 10.0 + i as f64,
        runs,
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
                    RunRecord {
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
        "| 100 % | full | 33.33 | 0.00 | 33.33 | 0/2 |"
    );
    assert_eq!(
        line("| 50 % | topk |"),
        "| 50 % | topk | **<u>0.00</u>** | **<u>0.00</u>** | **<u>0.00</u>** | 0/2 |"
    );
    assert_eq!(
        line("| 50 % | segmentwise |"),
        "| 50 % | segmentwise | <u>16.67</u> | 16.67 | <u>16.67</u> | 0/2 |"
    );
    // Without its looped run, segmentwise at 10 % is "one two" for four words: 2 errors of 4.
    assert_eq!(
        line("| 10 % | segmentwise |"),
        "| 10 % | segmentwise | **66.67** | **50.00** | **50.00** | 1/2 |"
    );
    assert!(md.contains("1 failed and not scored"), "{md}");
    let csv = report::csv(&t);
    assert_eq!(csv.lines().nth(2).unwrap(), "topk,0.5,50.0,0,2,0,0,0");
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
