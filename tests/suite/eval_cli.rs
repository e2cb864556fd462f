//! `prunescope eval` and `prunescope metric` as a user runs them, with the default model on
//! the MMAU fixture folder: run, resume, report files, shards + merge, and scoring files.

use crate::common::{ok, prunescope, TempDir};

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const PLAN: [&str; 4] = [
    "--method",
    "vanilla,full,topk,segmentwise",
    "--keep",
    "0.5,0.1",
];

#[test]
fn run_resume_report_and_shards() {
    let t = TempDir::new();
    let data = root().join("tests/data/eval/mmau");
    let (data, out) = (data.to_str().unwrap(), t.0.join("whole"));
    let out_s = out.to_str().unwrap();
    let mut args = vec!["eval", "--dataset", "mmau", "--data", data, "--out", out_s];
    args.extend(PLAN);
    let (stdout, stderr) = ok(&[&args[..], &["--limit", "2"]].concat());
    assert!(
        stderr.contains("2 clip(s) run now, 0 already done, 1 left"),
        "{stderr}"
    );
    assert!(
        stdout.is_empty(),
        "no report before the last clip: {stdout}"
    );
    let (stdout, stderr) = ok(&args);
    assert!(
        stderr.contains("1 clip(s) run now, 2 already done"),
        "{stderr}"
    );
    assert!(stdout.contains("| 10 % | segmentwise |"), "{stdout}");
    assert!(stdout.contains("decoding ms / token"), "{stdout}");
    for f in [
        "results.jsonl",
        "table.md",
        "table.csv",
        "efficiency.md",
        "plot.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // Two shards through GNU-parallel-style separate processes, then merge.
    let sharded = t.0.join("sharded");
    for i in 0..2 {
        let shard = format!("{i}/2");
        let mut a = vec!["eval", "--dataset", "mmau", "--data", data, "--out"];
        a.push(sharded.to_str().unwrap());
        a.extend(["--shard", &shard]);
        a.extend(PLAN);
        let (_, e) = ok(&a);
        assert!(e.contains("shard done"), "{e}");
    }
    let s0 = sharded.join("results.shard-0-of-2.jsonl");
    let s1 = sharded.join("results.shard-1-of-2.jsonl");
    let (stdout, _) = ok(&[
        "eval",
        "merge",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--report",
    ]);
    let whole_table = std::fs::read_to_string(out.join("table.md")).unwrap();
    let merged_table = std::fs::read_to_string(sharded.join("table.md")).unwrap();
    assert_eq!(
        merged_table, whole_table,
        "sharded and whole runs must score the same"
    );
    assert!(stdout.contains("| 100 % | vanilla |"), "{stdout}");

    // A finished run reruns nothing; the report can be rebuilt from the file alone.
    let (_, stderr) = ok(&args);
    assert!(
        stderr.contains("0 clip(s) run now, 3 already done"),
        "{stderr}"
    );
    let rep = t.0.join("rep");
    ok(&[
        "eval",
        "report",
        out.join("results.jsonl").to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(rep.join("table.md")).unwrap(),
        whole_table
    );
}

#[test]
fn readable_errors() {
    let t = TempDir::new();
    let out = prunescope(&[
        "eval",
        "--dataset",
        "clotho",
        "--data",
        "/nonexistent/clotho",
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("/nonexistent/clotho"),
        "{e}"
    );
    let data = root().join("tests/data/eval/mmau");
    let o = t.0.to_str().unwrap();
    let out = prunescope(&[
        "eval",
        "--dataset",
        "mmau",
        "--data",
        data.to_str().unwrap(),
        "--out",
        o,
        "--shard",
        "2/2",
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("shard must be i/n"),
        "{e}"
    );
    let out = prunescope(&["eval"]);
    assert!(!out.status.success());
}

#[test]
fn metric_scores_files_without_a_model() {
    let t = TempDir::new();
    let w = |name: &str, text: &str| {
        let p = t.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let refs = w("refs.txt", "front center\nthe cat sat on the mat\n");
    let preds = w("preds.txt", "Front center.\nthe cat sat mat\n");
    let (o, _) = ok(&["metric", "--wer", "--refs", &refs, "--preds", &preds]);
    // Default jiwer: 2 + 2 errors over 8 words; lower-cased without punctuation: 2 of 8.
    assert_eq!(
        o.trim(),
        "WER 50.00 % (jiwer default) | 25.00 % (lower-case, no punctuation) over 2 utterances"
    );
    let refs = w(
        "refs.jsonl",
        "{\"id\": \"a\", \"refs\": [\"A dog barks.\", \"A dog is barking loudly.\"]}\n{\"id\": \"b\", \"refs\": [\"Rain falls on a roof.\", \"Heavy rain.\"]}\n",
    );
    let preds = w(
        "preds.jsonl",
        "{\"id\": \"b\", \"text\": \"birds sing\"}\n{\"id\": \"a\", \"text\": \"a dog barks\"}\n",
    );
    let (o, _) = ok(&["metric", "--cider", "--refs", &refs, "--preds", &preds]);
    assert!(
        o.starts_with("CIDEr-D ") && o.contains("over 2 items"),
        "{o}"
    );
    let refs = w(
        "qa.jsonl",
        "{\"id\": 1, \"answer\": \"Piano\", \"choices\": [\"Piano\", \"Drums\"]}\n{\"id\": 2, \"answer\": \"yes\"}\n",
    );
    let preds = w(
        "qa_preds.jsonl",
        "{\"id\": 1, \"text\": \"(B)\"}\n{\"id\": 2, \"text\": \"Yes, it is.\"}\n",
    );
    let (o, _) = ok(&["metric", "--accuracy", "--refs", &refs, "--preds", &preds]);
    assert_eq!(o.trim(), "accuracy 50.00 % (1 of 2 items)");
    let out = prunescope(&["metric", "--wer", "--refs", &refs]);
    assert!(!out.status.success());
}
