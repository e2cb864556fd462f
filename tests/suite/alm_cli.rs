//! The prompted models through the binary: `analyze --prompt` on the toy Qwen2-Audio and AF3
//! checkpoints (timings and ids in the JSON, the 30 s cut reported), device errors, hub ids,
//! and `bench-prefill` on random weights.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{assert_one_line_error, json_doc, prunescope, TempDir};

fn alm(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/alm")
        .join(name)
        .display()
        .to_string()
}

fn jfk() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/jfk.wav")
        .display()
        .to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[test]
fn analyze_qwen2_audio_with_a_prompt() {
    // jfk is 11 s: the toy model's window is 2 s and Qwen2-Audio reads one window.
    let m = alm("qwen2-audio-tiny");
    let out = prunescope(&[
        "analyze",
        &jfk(),
        "--model",
        &m,
        "--json",
        "--method",
        "vanilla,full,topk,segmentwise,visionzip",
        "--keep",
        "0.5,0.25",
        "-S",
        "4",
        "--prompt",
        "What is said?",
        "--max-new-tokens",
        "5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("analysed the first 2.0 s of this 11.0 s clip"),
        "{stderr}"
    );
    let doc = json(&out);
    assert_eq!(doc["clip"]["analyzed_s"].as_f64().unwrap(), 2.0);
    assert_eq!(doc["clip"]["windows"].as_u64().unwrap(), 1);
    let n = doc["tokens"]["count"].as_u64().unwrap();
    assert_eq!(n, 50, "a full 2 s window pools to 50 tokens");
    assert_eq!(doc["scores"].as_array().unwrap().len(), 50);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2 + 3 * 2);
    for r in runs {
        assert_eq!(r["tail_tokens"], 0);
        assert!(r["prefill_ms"].as_f64().unwrap() > 0.0, "{r}");
        let ids = r["token_ids"].as_array().unwrap();
        assert!(!ids.is_empty() && ids.len() <= 5, "{r}");
        assert_eq!(r["generated_tokens"].as_u64().unwrap() as usize, ids.len());
        if ids.len() > 1 {
            assert!(r["decode_ms_per_token"].as_f64().unwrap() > 0.0, "{r}");
        }
        let k = r["k"].as_u64().unwrap();
        assert!(r["kept"].as_array().unwrap().len() as u64 <= k, "{r}");
    }
    // vanilla and full hand the model the same tokens: the same reply.
    assert_eq!(runs[0]["token_ids"], runs[1]["token_ids"]);
    // The prompt matters: another question, another prefill input, another reply or not, but
    // the run goes through.
    let table = prunescope(&[
        "analyze",
        &jfk(),
        "--model",
        &m,
        "--method",
        "full",
        "--max-new-tokens",
        "3",
    ]);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("prefill") && text.contains("ms/tok"),
        "{text}"
    );
}

#[test]
fn analyze_af3_reads_every_window() {
    let m = alm("af3-tiny");
    let doc = json_doc(&[
        "analyze",
        &jfk(),
        "--model",
        &m,
        "--json",
        "--method",
        "full,segmentwise",
        "--keep",
        "0.25",
        "--max-new-tokens",
        "2",
    ]);
    // 11 s in 2 s windows: six windows, all read (AF3 reads up to 20).
    assert_eq!(doc["clip"]["windows"].as_u64().unwrap(), 6);
    assert!(
        (doc["clip"]["analyzed_s"].as_f64().unwrap() - doc["clip"]["duration_s"].as_f64().unwrap())
            .abs()
            < 1e-9
    );
    let seg = &doc["runs"][1];
    assert_eq!(seg["method"], "segmentwise");
    let kept: Vec<u64> = seg["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let n = doc["tokens"]["count"].as_u64().unwrap();
    // Segments span the clip: kept tokens reach its last tenth.
    assert!(kept.iter().any(|&t| t >= n * 9 / 10), "{kept:?} of {n}");
}

#[test]
fn device_and_model_errors_are_one_line() {
    let m = alm("qwen2-audio-tiny");
    if !cfg!(feature = "cuda") {
        assert_one_line_error(
            &prunescope(&["analyze", &jfk(), "--model", &m, "--device", "cuda"]),
            "built without CUDA",
        );
    }
    assert_one_line_error(
        &prunescope(&["analyze", &jfk(), "--model", &m, "--device", "tpu"]),
        "unknown device `tpu`",
    );
    assert_one_line_error(
        &prunescope(&[
            "analyze",
            &jfk(),
            "--model",
            "Nobody/no-such-model-anywhere",
        ]),
        "huggingface-cli download Nobody/no-such-model-anywhere",
    );
    assert_one_line_error(
        &prunescope(&["analyze", &jfk(), "--model", &m, "--prompt", "  "]),
        "--prompt is empty",
    );
    // A checkpoint with a shard missing, and one whose tokenizer lacks the audio token.
    let tmp = TempDir::new();
    let broken = tmp.0.join("model");
    std::fs::create_dir_all(&broken).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
    ] {
        std::fs::copy(Path::new(&m).join(f), broken.join(f)).unwrap();
    }
    assert_one_line_error(
        &prunescope(&["analyze", &jfk(), "--model", broken.to_str().unwrap()]),
        "missing",
    );
    std::fs::copy(
        Path::new(&m).join("model-00002-of-00002.safetensors"),
        broken.join("model-00002-of-00002.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(&alm("af3-tiny")).join("tokenizer.json"),
        broken.join("tokenizer.json"),
    )
    .unwrap();
    assert_one_line_error(
        &prunescope(&["analyze", &jfk(), "--model", broken.to_str().unwrap()]),
        "has no `<|AUDIO|>` token",
    );
}

#[test]
fn hub_ids_resolve_from_the_local_cache() {
    let tmp = TempDir::new();
    let snap = tmp
        .0
        .join("hub/models--Qwen--Qwen2-Audio-7B-Instruct/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    for e in std::fs::read_dir(alm("qwen2-audio-tiny")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), snap.join(e.file_name())).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_prunescope"))
        .args([
            "analyze",
            &jfk(),
            "--model",
            "Qwen/Qwen2-Audio-7B-Instruct",
            "--json",
            "--method",
            "full",
            "--max-new-tokens",
            "1",
        ])
        .env("HF_HOME", &tmp.0)
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    let doc = json(&out);
    assert!(
        doc["model"].as_str().unwrap().contains("qwen2-audio"),
        "{doc}"
    );
}

#[test]
fn bench_prefill_prints_the_ratio_table() {
    let out = prunescope(&[
        "bench-prefill",
        "--random",
        "tiny",
        "--reps",
        "1",
        "--decode-tokens",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for row in ["| 100 % |", "|  50 % |", "|  25 % |", "|  10 % |", "1.00x"] {
        assert!(text.contains(row), "{row} missing in:\n{text}");
    }
    // The tiny model has 2 language-model layers: FastV's default layer 2 does not exist, so
    // its rows are left out with a note; at layer 1 they are there, beside atome's.
    assert!(!text.contains("| fastv"), "{text}");
    assert!(
        text.contains("| atome") && text.contains("| segmentwise"),
        "{text}"
    );
    let out = prunescope(&[
        "bench-prefill",
        "--random",
        "tiny",
        "--reps",
        "1",
        "--decode-tokens",
        "0",
        "--fastv-layer",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("| fastv").count(), 3, "{text}");
    // Asked for by name, it is an error (after the line saying where the weights went).
    let out = prunescope(&["bench-prefill", "--random", "tiny", "--method", "fastv"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.trim_end().lines().last().is_some_and(
            |l| l.starts_with("error: --fastv-layer 2: the language model has 2 layers")
        ),
        "{err}"
    );
    assert_one_line_error(
        &prunescope(&["bench-prefill", "--random", "huge"]),
        "unknown shape",
    );
    // The same table in bf16, which says so in its header.
    let out = prunescope(&[
        "bench-prefill",
        "--random",
        "tiny",
        "--reps",
        "1",
        "--decode-tokens",
        "2",
        "--dtype",
        "bf16",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("cpu bf16") && text.contains("|  10 % |"));
    assert_one_line_error(
        &prunescope(&["bench-prefill", "--random", "tiny", "--dtype", "f8"]),
        "unknown dtype `f8`",
    );
}

#[test]
fn dtype_is_chosen_recorded_and_checked() {
    // bf16 and f16 on the CPU: the JSON says which, and the runs decode.
    let m = alm("qwen2-audio-tiny");
    for dtype in ["bf16", "f16", "f32", "auto"] {
        let doc = json_doc(&[
            "analyze",
            &jfk(),
            "--model",
            &m,
            "--json",
            "--method",
            "full,segmentwise",
            "--keep",
            "0.25",
            "-S",
            "4",
            "--max-new-tokens",
            "3",
            "--dtype",
            dtype,
        ]);
        let want = if dtype == "auto" { "f32" } else { dtype };
        assert_eq!(doc["runtime"]["dtype"], want, "{dtype}");
        assert_eq!(doc["runtime"]["device"], "cpu");
        assert_eq!(doc["runs"].as_array().unwrap().len(), 2);
        assert!(doc["runs"][1]["generated_tokens"].as_u64().unwrap() > 0);
    }
    assert_one_line_error(
        &prunescope(&["analyze", &jfk(), "--model", &m, "--dtype", "int8"]),
        "unknown dtype `int8`",
    );
    // Whisper runs in f32: another dtype is refused in one line; f32 and auto are its own.
    assert_one_line_error(
        &prunescope(&["analyze", &jfk(), "--dtype", "bf16"]),
        "Whisper runs in f32",
    );
    assert_one_line_error(
        &prunescope(&["bench", &jfk(), "--dtype", "f16"]),
        "Whisper runs in f32",
    );
    let doc = json_doc(&[
        "analyze",
        &jfk(),
        "--json",
        "--method",
        "full",
        "--dtype",
        "f32",
    ]);
    assert_eq!(doc["runtime"]["dtype"], "f32");
}

#[test]
fn eval_mmau_with_af3_records_prefill_and_reports_it() {
    let tmp = TempDir::new();
    let out = tmp.0.join("run");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval/mmau");
    let m = alm("af3-tiny");
    let run = prunescope(&[
        "eval",
        "--dataset",
        "mmau",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--model",
        &m,
        "--method",
        "full,segmentwise",
        "--keep",
        "0.5",
        "--max-new-tokens",
        "3",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    for r in &records {
        assert!(r["error"].is_null(), "{r}");
        for run in r["runs"].as_array().unwrap() {
            assert!(run["prefill_ms"].as_f64().unwrap() > 0.0, "{run}");
        }
    }
    let eff = std::fs::read_to_string(out.join("efficiency.md")).unwrap();
    assert!(
        eff.contains("segmentwise") && !eff.contains("| n/a |"),
        "{eff}"
    );
}
