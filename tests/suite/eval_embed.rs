//! The MMAU sentence-embedding step against sentence-transformers itself
//! (`tests/data/eval/minilm_embeddings.json`, from `scripts/make-minilm-fixtures.py`): identical
//! token ids, embeddings within 1e-4, the same option chosen for paraphrased answers; and the
//! `--scorer` choice of `prunescope metric` and of the reports. The tests that need
//! all-MiniLM-L6-v2 print a notice and pass without it (`prunescope fetch minilm`, which
//! `scripts/test` runs, fetches it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use prunescope::eval::datasets::Item;
use prunescope::eval::embed::{self, SentenceScorer};
use prunescope::eval::metrics::accuracy::{choose_option, MatchKind, OptionScorer};
use prunescope::eval::report;
use prunescope::eval::runner::{Header, Record, Results};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> Option<PathBuf> {
    embed::default_dir().filter(|d| d.join("model.safetensors").is_file())
}

/// The model, loaded once per test binary; None (with a notice) when it is not on disk.
fn scorer(test: &str) -> Option<&'static SentenceScorer> {
    static SCORER: OnceLock<Option<SentenceScorer>> = OnceLock::new();
    let s = SCORER.get_or_init(|| {
        model_dir().map(|d| SentenceScorer::load(&d).expect("all-MiniLM-L6-v2 loads"))
    });
    if s.is_none() {
        eprintln!(
            "{test}: skipped, no all-MiniLM-L6-v2 (run `cargo run -- fetch minilm` or set PRUNESCOPE_MINILM)"
        );
    }
    s.as_ref()
}

fn fixture() -> serde_json::Value {
    let p = root().join("tests/data/eval/minilm_embeddings.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn token_ids_and_embeddings_match_sentence_transformers() {
    let Some(s) = scorer("token_ids_and_embeddings_match_sentence_transformers") else {
        return;
    };
    let fx = fixture();
    let m = s.embedder();
    assert_eq!(m.dim(), 384);
    let mut worst = 0.0f64;
    let sentences = fx["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 10);
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    // All at once (stacked rows, attention per sentence) and one by one give the same vectors.
    let batch = m.embed_batch(&texts).unwrap();
    for (sent, from_batch) in sentences.iter().zip(&batch) {
        let text = sent["text"].as_str().unwrap();
        let want_ids: Vec<u32> = sent["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(m.token_ids(text).unwrap(), want_ids, "{text:?}");
        let want: Vec<f64> = sent["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let got = m.embed(text).unwrap();
        assert_eq!(got.len(), want.len());
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "{text:?}: max abs error {err}");
        worst = worst.max(err);
        let apart = got
            .iter()
            .zip(from_batch)
            .map(|(g, b)| (g - b).abs())
            .fold(0.0f32, f32::max);
        assert!(apart < 1e-5, "{text:?}: batch differs by {apart}");
    }
    // The long sentence is cut to max_seq_length, [CLS] and [SEP] included.
    let max_len = fx["max_seq_length"].as_u64().unwrap() as usize;
    let long = sentences.last().unwrap()["text"].as_str().unwrap();
    assert_eq!(m.token_ids(long).unwrap().len(), max_len);
    println!(
        "{} sentences: max abs embedding error {worst:.2e}",
        sentences.len()
    );
}

#[test]
fn paraphrased_answers_pick_the_option_sentence_transformers_picks() {
    let Some(s) = scorer("paraphrased_answers_pick_the_option_sentence_transformers_picks") else {
        return;
    };
    for c in fixture()["choices"].as_array().unwrap() {
        let pred = c["pred"].as_str().unwrap();
        let options = strings(&c["options"]);
        let expected = c["expected"].as_u64().unwrap() as usize;
        assert_eq!(
            choose_option(pred, &options, s),
            Some((expected, MatchKind::Similarity)),
            "{pred:?} -> {options:?}"
        );
        let got = s.scores(pred, &options);
        for (g, w) in got.iter().zip(c["scores"].as_array().unwrap()) {
            let w = w.as_f64().unwrap();
            assert!((g - w).abs() < 1e-4, "{pred:?}: score {g} vs {w}");
        }
    }
    // Exact text and letters still come first.
    let o: Vec<String> = ["Dog barking", "Car horn"].map(String::from).to_vec();
    assert_eq!(
        choose_option("car horn.", &o, s),
        Some((1, MatchKind::Exact))
    );
    assert_eq!(choose_option("(A)", &o, s), Some((0, MatchKind::Letter)));
}

#[test]
fn mmau_report_names_the_scorer() {
    let Some(s) = scorer("mmau_report_names_the_scorer") else {
        return;
    };
    let choices: Vec<String> = ["Dog barking", "Car horn", "Rain", "Piano"]
        .map(String::from)
        .to_vec();
    let record = |index: usize, answer: &str, text: &str| Record {
        index,
        item: Item {
            id: format!("q{index}"),
            audio: "x.wav".into(),
            refs: vec![answer.into()],
            question: Some("What is heard?".into()),
            choices: choices.clone(),
            group: Some("sound".into()),
        },
        duration_s: 1.0,
        encode_ms: 1.0,
        runs: vec![serde_json::from_value(serde_json::json!({
            "method": "full", "keep": 1.0, "segments": null, "k": 10, "text": text,
            "decode_ms": 1.0, "generated_tokens": 5, "prefill_ms": null,
        }))
        .unwrap()],
        clip: None,
        error: None,
    };
    let results = Results {
        header: Header {
            prunescope_eval: 1,
            dataset: "mmau".into(),
            data: "x".into(),
            model: "m".into(),
            settings: vec!["full@1".into()],
            params: String::new(),
            tail: prunescope::engine::Tail::Tokens(50),
            items: 2,
            shard: None,
            plan: None,
        },
        records: vec![
            record(0, "Car horn", "It is a vehicle honking"),
            record(1, "Rain", "(C)"),
        ],
    };
    assert!(report::maps_options("mmau"));
    let t = report::score(&results, s);
    assert_eq!(t.rows[0].values[0], Some(100.0), "{t:?}");
    assert!(
        t.notes.iter().any(|n| n.contains(
            "1 of 2 answers matched no option text or letter and were mapped by similarity (all-MiniLM-L6-v2 sentence embeddings)"
        )),
        "{:?}",
        t.notes
    );
}

fn prunescope(args: &[&str], minilm: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prunescope"));
    cmd.args(args);
    if let Some(d) = minilm {
        cmd.env(embed::ENV_VAR, d);
    }
    let out = cmd.output().expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    out
}

/// Two MMAU-style questions answered in words that share none with the right option.
fn qa_files(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let refs = dir.join("refs.jsonl");
    let preds = dir.join("preds.jsonl");
    let choices = r#"["Dog barking", "Car horn", "Rain", "Piano"]"#;
    std::fs::write(
        &refs,
        format!(
            "{{\"id\": 1, \"answer\": \"Dog barking\", \"choices\": {choices}}}\n{{\"id\": 2, \"answer\": \"Car horn\", \"choices\": {choices}}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &preds,
        "{\"id\": 1, \"text\": \"I can hear a canine yelping\"}\n{\"id\": 2, \"text\": \"It is a vehicle honking\"}\n",
    )
    .unwrap();
    (
        refs.to_str().unwrap().to_string(),
        preds.to_str().unwrap().to_string(),
    )
}

#[test]
fn metric_scorer_flag() {
    let tmp = crate::common::TempDir::new();
    let dir = tmp.0.clone();
    let (refs, preds) = qa_files(&dir);
    let base = ["metric", "--accuracy", "--refs", &refs, "--preds", &preds];
    let missing = Path::new("/nonexistent/all-MiniLM-L6-v2");

    // Bag of words: no overlap anywhere, so both answers fall on the first option.
    let out = prunescope(
        &[&base[..], &["--scorer", "lexical"]].concat(),
        Some(missing),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "accuracy 50.00 % (1 of 2 items)"
    );

    // auto without the model: the bag-of-words result and one line saying so.
    let out = prunescope(&base, Some(missing));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "accuracy 50.00 % (1 of 2 items)"
    );
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("bag-of-words similarity instead"))
        .collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(notes[0].contains("/nonexistent/all-MiniLM-L6-v2"), "{err}");

    // minilm without the model: one clear error line.
    let out = prunescope(
        &[&base[..], &["--scorer", "minilm"]].concat(),
        Some(missing),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--scorer minilm: sentence-embedding model directory /nonexistent/all-MiniLM-L6-v2 does not exist"),
        "{err}"
    );

    let out = prunescope(&[&base[..], &["--scorer", "bert"]].concat(), None);
    assert!(!out.status.success());

    // An MMAU run asked for minilm without it fails before decoding anything.
    let run_out = dir.join("run");
    let data = root().join("tests/data/eval/mmau");
    let out = prunescope(
        &[
            "eval",
            "--dataset",
            "mmau",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run_out.to_str().unwrap(),
            "--scorer",
            "minilm",
        ],
        Some(missing),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--scorer minilm: sentence-embedding model directory"),
        "{err}"
    );
    assert!(!run_out.join("results.jsonl").exists());

    // With the model, both paraphrases find their option.
    if let Some(model) = model_dir() {
        for scorer in ["minilm", "auto"] {
            let out = prunescope(&[&base[..], &["--scorer", scorer]].concat(), Some(&model));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "accuracy 100.00 % (2 of 2 items)",
                "{scorer}"
            );
            assert!(
                err.contains("2 answer(s) named no option and were mapped by similarity (all-MiniLM-L6-v2 sentence embeddings)"),
                "{err}"
            );
        }
    } else {
        eprintln!("metric_scorer_flag: model part skipped, no all-MiniLM-L6-v2");
    }
}
