//! Each output word linked to the audio: the attention maps of a run against transformers
//! (eager, f32; Whisper's alignment heads, the toy Qwen2-Audio / AF3's language model over the
//! audio placeholders) within 1e-4, and Whisper's word times against faster-whisper's
//! `word_timestamps=True` (fixtures by scripts/make-word-fixtures.py). Then `analyze --words`
//! and `--attention` through the binary.

use std::sync::atomic::AtomicBool;

use prunescope::audio::Audio;
use prunescope::engine::{self, Decoding, Plan, RunMethod, RunResult, RunSpec, Tail};
use prunescope::model::AudioLanguageModel;
use prunescope::prune::{Method, Params};
use serde_json::Value;

use crate::common::{data, floats, json_doc, model, root, toy_alm, toy_golden_audio};

fn fixture(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn run_method(name: &str) -> RunMethod {
    RunMethod::parse(name).unwrap()
}

/// Every run of `specs` through the engine with attention collected.
fn analyze(
    model: &dyn AudioLanguageModel,
    audio: &Audio,
    specs: &[(RunMethod, f64)],
    segments: usize,
    prompt: Option<&str>,
) -> Vec<RunResult> {
    let plan = Plan {
        runs: specs
            .iter()
            .map(|&(method, keep)| RunSpec { method, keep })
            .collect(),
        params: Params {
            segments,
            ..Params::default()
        },
        decoding: Decoding {
            tail: Tail::Tokens(50),
            prompt: prompt.map(str::to_string),
            stop_on_loop: false,
            attention: true,
            ..Decoding::default()
        },
    };
    engine::analyze(model, audio, &plan, &AtomicBool::new(false), &mut |_| {})
        .unwrap()
        .runs
}

/// A run's attention rows (one decoder input) against the fixture's `map`.
fn compare_map(what: &str, r: &RunResult, want: &Value) -> f32 {
    let att = r.attention.as_ref().expect("attention collected");
    assert_eq!(att.blocks.len(), 1, "{what}: one decoder input");
    let b = &att.blocks[0];
    let rows = want["map"].as_array().unwrap();
    assert_eq!(b.rows.len(), rows.len(), "{what}: rows (tokens chosen)");
    assert_eq!(
        b.tokens.len() as u64,
        want["cols"].as_u64().unwrap(),
        "{what}: columns"
    );
    let mut worst = 0f32;
    for (got, want) in b.rows.iter().zip(rows) {
        let want = floats(want);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
    }
    println!(
        "{what}: {} x {} map, worst |difference| {worst:.1e}",
        b.rows.len(),
        b.tokens.len()
    );
    assert!(worst < 1e-4, "{what}: {worst}");
    worst
}

#[test]
fn whisper_alignment_head_maps_match_transformers() {
    let want = fixture("tests/data/golden/token_attention.json");
    for clip in ["jfk.wav", "arctic_a0007.wav"] {
        let audio = prunescope::audio::load(&data(clip)).unwrap();
        let runs = want[clip]["runs"].as_array().unwrap();
        let specs: Vec<(RunMethod, f64)> = runs
            .iter()
            .map(|r| {
                let m = r["method"].as_str().unwrap();
                (run_method(m), r["keep"].as_f64().unwrap())
            })
            .collect();
        let got = analyze(model(), &audio, &specs, 10, None);
        for (r, w) in got.iter().zip(runs) {
            let what = format!("{clip} {} {}", r.method, r.keep);
            if let Some(kept) = w["kept"].as_array() {
                let kept: Vec<usize> = kept.iter().map(|x| x.as_u64().unwrap() as usize).collect();
                assert_eq!(r.kept, kept, "{what}: kept tokens");
            }
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{what}: greedy ids");
            compare_map(&what, r, w);
            // Every column is a kept token; the rows are weights of a softmax over more rows
            // (the tail), so each sums to at most one.
            let b = &r.attention.as_ref().unwrap().blocks[0];
            assert!(b.tokens.iter().all(|t| r.kept.contains(t)));
            assert!(b
                .rows
                .iter()
                .all(|row| row.iter().sum::<f32>() <= 1.0 + 1e-5));
        }
    }
}

#[test]
fn qwen2_audio_and_af3_language_model_maps_match_transformers() {
    let want = fixture("tests/data/alm/token_attention.json");
    for name in ["qwen2-audio-tiny", "af3-tiny"] {
        let g = fixture(&format!(
            "tests/data/alm/{}",
            want[name]["golden"].as_str().unwrap()
        ));
        let audio = toy_golden_audio(&g);
        let model = toy_alm(name);
        for w in want[name]["runs"].as_array().unwrap() {
            let m = w["method"].as_str().unwrap();
            let keep = w["keep"].as_f64().unwrap();
            let segments = w["segments"].as_u64().unwrap_or(10) as usize;
            let runs = analyze(
                &model,
                &audio,
                &[(run_method(m), keep)],
                segments,
                g["prompt"].as_str(),
            );
            let r = &runs[0];
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{name} {m}: greedy ids");
            compare_map(&format!("{name} {m} {keep}"), r, w);
            // Every word sits at the centre of the audio it read: inside the clip.
            let words = r.words.as_ref().unwrap();
            assert!(!words.is_empty());
            let end = audio.duration_s();
            assert!(words
                .iter()
                .all(|x| x.start >= 0.0 && x.start <= end && x.start == x.end));
        }
    }
}

/// Words of `analyze --words` against faster-whisper's: same words, median |start difference|.
fn median_start_diff(got: &Value, want: &Value) -> Option<f64> {
    let got = got.as_array().unwrap();
    let want = want.as_array().unwrap();
    if got.len() != want.len() {
        return None;
    }
    let mut diffs: Vec<f64> = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g["start"].as_f64().unwrap() - w["start"].as_f64().unwrap()).abs())
        .collect();
    diffs.sort_by(f64::total_cmp);
    Some(diffs[diffs.len() / 2])
}

#[test]
fn whisper_word_times_match_faster_whisper() {
    let want = fixture("tests/data/golden/words.json");
    for (clip, path) in [
        ("jfk.wav", root().join("assets/jfk.wav")),
        ("arctic_a0007.wav", data("arctic_a0007.wav")),
        ("jfk_x3.wav", data("jfk_x3.wav")),
    ] {
        let doc = json_doc(&[
            "analyze",
            path.to_str().unwrap(),
            "--method",
            "vanilla",
            "--words",
            "--json",
        ]);
        let run = &doc["runs"][0];
        let words = &run["words"];
        // faster-whisper pads the log-mel of a short window with zeros where Whisper (and
        // transformers, and prunescope) pads the audio with silence, which can change a token;
        // `padded` is faster-whisper given the silence-padded audio, the same decoder input.
        let padded = &want[clip]["padded"];
        let texts = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|w| w["word"].as_str().unwrap().trim().to_string())
                .collect()
        };
        assert_eq!(texts(words), texts(&padded["words"]), "{clip}: words");
        let same_input = median_start_diff(words, &padded["words"]).unwrap();
        let stock = median_start_diff(words, &want[clip]["words"]);
        println!(
            "{clip}: median |start difference| {same_input:.3} s (stock faster-whisper: {stock:?})"
        );
        assert!(same_input <= 0.05, "{clip}: {same_input}");
        if let Some(d) = stock {
            assert!(d <= 0.05, "{clip}: stock faster-whisper {d}");
        }
        // Words follow each other in time.
        let starts = floats(&Value::Array(
            words
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["start"].clone())
                .collect(),
        ));
        assert!(
            starts.windows(2).all(|p| p[0] <= p[1]),
            "{clip}: {starts:?}"
        );
    }
}

#[test]
fn a_pruned_runs_words_sit_on_its_kept_tokens_and_the_flags_add_their_fields() {
    let jfk = root().join("assets/jfk.wav");
    let jfk = jfk.to_str().unwrap();
    let plain = json_doc(&[
        "analyze", jfk, "--method", "topk", "--keep", "0.1", "--json",
    ]);
    assert!(plain["runs"][0].get("words").is_none());
    assert!(plain["runs"][0].get("attention").is_none());
    let doc = json_doc(&[
        "analyze",
        jfk,
        "--method",
        "topk",
        "--keep",
        "0.1",
        "--words",
        "--attention",
        "--json",
    ]);
    let run = &doc["runs"][0];
    let spt = doc["tokens"]["seconds_per_token"].as_f64().unwrap();
    let kept: Vec<f64> = floats(&run["kept"])
        .iter()
        .map(|&t| t as f64 * spt)
        .collect();
    let words = run["words"].as_array().unwrap();
    assert!(!words.is_empty());
    // DTW puts a word where a kept token starts; only faster-whisper's clean-up (a word after
    // a pause or a sentence end cut to twice the median length) moves a start off them.
    let on_kept = words
        .iter()
        .filter(|w| {
            let start = w["start"].as_f64().unwrap();
            kept.iter().any(|k| (k - start).abs() < 1e-6)
        })
        .count();
    assert!(on_kept * 10 >= words.len() * 8, "{on_kept} of {words:?}");
    let duration = doc["clip"]["duration_s"].as_f64().unwrap();
    assert!(words.iter().all(|w| {
        let (s, e) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        0.0 <= s && s <= e && e <= duration
    }));
    let blocks = run["attention"]["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    let ids = run["token_ids"].as_array().unwrap().len();
    let rows = blocks[0]["rows"].as_array().unwrap();
    assert!(
        rows.len() == ids || rows.len() == ids + 1,
        "{} rows, {ids} ids",
        rows.len()
    );
    assert_eq!(blocks[0]["tokens"], run["kept"]);
    // The table prints the words under the run.
    let (out, _) = crate::common::ok(&["analyze", jfk, "--method", "vanilla", "--words"]);
    assert!(out.contains("words: And 0.00-"), "{out}");
}

#[test]
fn every_window_of_a_long_clip_has_its_words() {
    let x3 = data("jfk_x3.wav");
    let audio = prunescope::audio::load(&x3).unwrap();
    let runs = analyze(
        model(),
        &audio,
        &[(RunMethod::Prune(Method::Segmentwise), 0.25)],
        10,
        None,
    );
    let r = &runs[0];
    let att = r.attention.as_ref().unwrap();
    assert_eq!(att.blocks.len(), 2, "two windows, two decoder inputs");
    let first = att.blocks[1].first_token;
    assert!(first > 0 && first < r.token_ids.len() && first + 1 >= att.blocks[0].rows.len());
    let words = r.words.as_ref().unwrap();
    assert!(
        words.iter().any(|w| w.start >= 30.0),
        "the second window's words: {words:?}"
    );
    // Each word's tokens are its own, in order, and cover the text's tokens.
    for p in words.windows(2) {
        assert!(p[0].tokens.end <= p[1].tokens.start);
    }
    // The attention of a word's tokens lies in its window.
    let last = words.last().unwrap();
    let over = att
        .over_clip(last.tokens.clone(), r.kept.len().max(2000), &r.merged)
        .unwrap();
    let mass_before_30s: f32 = over[..1500].iter().sum();
    assert!(mass_before_30s == 0.0, "{mass_before_30s}");
}
