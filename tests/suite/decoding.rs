//! Whisper decoding with pruned tokens (SPEC.md section 5): the default silence context and the
//! loop rule, with the real tiny.en.
//! - Over the registry-built ASR set (scripts/fetch-asr-set, which scripts/test runs), the
//!   default `full` never loops and its corpus WER is within 2 points of `vanilla`.
//! - Every run in the JSON says whether it looped: a decode that hits the token cap, one that
//!   repeats a phrase below the cap, and a clean one.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::common::{self, model};
use prunescope::engine::{self, Decoding, Plan, RunMethod};
use prunescope::eval::datasets::{self, DatasetKind};
use prunescope::eval::metrics::wer::{corpus_wer, Normalization};
use prunescope::model::{repetition, Ending, Generation};
use prunescope::prune::{Method, Params};
use serde_json::Value;

fn analyze_json(clip: &str, extra: &[&str]) -> Value {
    let m = common::model_dir();
    let clip = common::data(clip);
    let mut args = vec![
        "analyze",
        clip.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    common::json_doc(&args)
}

#[test]
fn default_full_reads_the_asr_set_as_well_as_vanilla() {
    let manifest = common::root().join("target/asr-set/manifest.jsonl");
    assert!(
        manifest.is_file(),
        "the ASR set is missing: run scripts/fetch-asr-set (scripts/test does it)"
    );
    let set = datasets::load(DatasetKind::Asr, &manifest).unwrap();
    assert!(set.items.len() >= 30, "{} clips", set.items.len());
    let plan = Plan::grid(
        &[RunMethod::Vanilla, RunMethod::Prune(Method::Full)],
        &[1.0],
        Params::default(),
        Decoding::default(),
    );
    let cancel = AtomicBool::new(false);
    let (mut vanilla, mut full) = (Vec::new(), Vec::new());
    for item in &set.items {
        let audio = prunescope::audio::load(&PathBuf::from(&item.audio)).unwrap();
        let a = engine::analyze(model(), &audio, &plan, &cancel, &mut |_| {}).unwrap();
        let run = |m: &str| a.runs.iter().find(|r| r.method.name() == m).unwrap();
        assert!(
            !run("full").looped,
            "{}: full looped: {}",
            item.id,
            run("full").text
        );
        vanilla.push((item.refs[0].clone(), run("vanilla").text.clone()));
        full.push((item.refs[0].clone(), run("full").text.clone()));
    }
    let wer = |pairs: &[(String, String)]| {
        100.0
            * corpus_wer(
                pairs.iter().map(|(r, h)| (r.as_str(), h.as_str())),
                Normalization::Default,
            )
    };
    let (v, f) = (wer(&vanilla), wer(&full));
    eprintln!(
        "{} clips: vanilla WER {v:.2} %, full WER {f:.2} %",
        set.items.len()
    );
    assert!((f - v).abs() <= 2.0, "full {f:.2} % vs vanilla {v:.2} %");
}

#[test]
fn every_run_says_whether_it_looped() {
    // Capped: no run of jfk finishes in 4 tokens.
    let doc = analyze_json(
        "jfk.wav",
        &[
            "--method",
            "full,topk",
            "--keep",
            "0.5",
            "--max-new-tokens",
            "4",
        ],
    );
    for r in doc["runs"].as_array().unwrap() {
        assert_eq!(r["looped"], true, "{r}");
        assert_eq!(r["generated_tokens"], 4);
        assert_eq!(r["stopped_on_loop"], false);
    }
    // Clean: the whole arctic sentence, ended by <|endoftext|>.
    let doc = analyze_json("arctic_a0007.wav", &["--method", "full"]);
    let full = &doc["runs"][0];
    assert_eq!(full["looped"], false, "{full}");
    assert!(full.get("loop_spans").is_none());
}

#[test]
fn a_phrase_repeated_below_the_cap_is_a_loop() {
    // The model's own tokenizer, the model's own finishing rule: "Front left" with "left,"
    // said over and over, ended by an end token well below the cap.
    let tok = tokenizers::Tokenizer::from_file(common::model_dir().join("tokenizer.json")).unwrap();
    let text = " Front left, left, left, left, left.";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    let decode = |ids: &[u32]| {
        tok.decode(ids, true)
            .map_err(|e| prunescope::model::ModelError::Tokenizer(e.to_string()))
    };
    let g = Generation::finish(ids.clone(), Ending::EndToken, &decode).unwrap();
    assert!(g.loops.looped);
    let span = g
        .loops
        .span
        .clone()
        .expect("a back-to-back repeat has a span");
    // The first "left," stays; the repeats after it are the loop.
    assert_eq!(&g.text[..span.start], "Front left,");
    assert_eq!(&g.text[span], " left, left, left, left");
    // The same sentence said once is clean, and the guard would cut where the flag fired.
    let once = tok
        .encode(" Front left.", false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert!(
        !Generation::finish(once, Ending::EndToken, &decode)
            .unwrap()
            .loops
            .looped
    );
    let mut grown = Vec::new();
    for &t in &ids {
        grown.push(t);
        if repetition::repeat_at_end(&grown).is_some() {
            break;
        }
    }
    let mut cut = grown.clone();
    assert_eq!(Ending::guard(&mut cut, true), Some(Ending::LoopGuard));
    assert_eq!(cut.len(), repetition::first_repeat(&ids).unwrap().start);
}

#[test]
fn the_guard_cuts_a_looping_run_and_keeps_its_start() {
    // Random pruning at 10 % of jfk makes tiny.en repeat itself; find such a run with the
    // plain decode, then decode it again with the guard.
    let plain = analyze_json(
        "jfk.wav",
        &[
            "--method",
            "random,bottomk,topk,segmentwise",
            "--keep",
            "0.1,0.05",
        ],
    );
    let looping: Vec<&Value> = plain["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["looped"] == true && r.get("loop_spans").is_some())
        .collect();
    assert!(!looping.is_empty(), "no run repeated itself: {plain}");
    let r = looping[0];
    let (method, keep) = (r["method"].as_str().unwrap(), r["keep"].to_string());
    let guarded = analyze_json(
        "jfk.wav",
        &["--method", method, "--keep", &keep, "--stop-on-loop"],
    );
    let g = &guarded["runs"][0];
    assert_eq!(g["looped"], true);
    assert_eq!(g["stopped_on_loop"], true);
    let (plain_text, cut_text) = (r["text"].as_str().unwrap(), g["text"].as_str().unwrap());
    assert!(cut_text.len() < plain_text.len());
    let first_span = r["loop_spans"][0][0].as_u64().unwrap() as usize;
    assert_eq!(
        cut_text.trim_end(),
        plain_text[..first_span].trim_end(),
        "the guard keeps exactly the text before the repeats"
    );
    assert!(g["generated_tokens"].as_u64() < r["generated_tokens"].as_u64());
}
