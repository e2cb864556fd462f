//! The field's other pruning methods against small references written in Python from the
//! papers' descriptions (transformers, eager, f32; fixtures by scripts/make-peer-fixtures.py):
//! FastV inside the toy Qwen2-Audio / AF3 language models (layers 0 and 1) and our adaptation
//! to Whisper's decoder, the prompt-aware score, and `encoderdrop` in Whisper's encoder; kept
//! sets and greedy ids identical. Then the one-line errors where a method does not apply.

use std::sync::atomic::AtomicBool;

use prunescope::audio::Audio;
use prunescope::engine::{self, Decoding, Plan, RunMethod, RunResult, RunSpec, Tail};
use prunescope::model::AudioLanguageModel;
use prunescope::prune::Params;
use serde_json::Value;

use crate::common::{
    assert_one_line_error, data, floats, model, prunescope, root, toy_alm, toy_golden_audio,
};

fn fixture(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn ints(v: &Value) -> Vec<usize> {
    floats(v).iter().map(|&x| x as usize).collect()
}

fn run(
    model: &dyn AudioLanguageModel,
    audio: &Audio,
    method: RunMethod,
    keep: f64,
    decoding: Decoding,
) -> RunResult {
    let plan = Plan {
        runs: vec![RunSpec { method, keep }],
        params: Params::default(),
        decoding,
    };
    let mut a = engine::analyze(model, audio, &plan, &AtomicBool::new(false), &mut |_| {})
        .unwrap()
        .runs;
    a.remove(0)
}

#[test]
fn whisper_fastv_keeps_what_the_first_steps_cross_attention_chose() {
    let want = fixture("tests/data/golden/fastv.json");
    for clip in ["jfk.wav", "arctic_a0007.wav"] {
        let audio = prunescope::audio::load(&data(clip)).unwrap();
        for w in want[clip]["runs"].as_array().unwrap() {
            let keep = w["keep"].as_f64().unwrap();
            // The reference decodes with a 50-token silence tail.
            let decoding = Decoding {
                tail: Tail::Tokens(50),
                ..Decoding::default()
            };
            let r = run(model(), &audio, RunMethod::FastV, keep, decoding);
            let what = format!("{clip} fastv {keep}");
            assert_eq!(r.k as u64, w["k"].as_u64().unwrap(), "{what}: K");
            assert_eq!(r.kept, ints(&w["kept"]), "{what}: kept tokens");
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{what}: greedy ids");
            assert_eq!(r.text, w["text"].as_str().unwrap());
            println!("{what}: K {} kept, {:?}", r.k, r.text);
        }
    }
}

#[test]
fn qwen2_audio_and_af3_fastv_and_promptaware_match_the_references() {
    let want = fixture("tests/data/alm/peers.json");
    for name in ["qwen2-audio-tiny", "af3-tiny"] {
        let g = fixture(&format!(
            "tests/data/alm/{}",
            want[name]["golden"].as_str().unwrap()
        ));
        let audio = toy_golden_audio(&g);
        let model = toy_alm(name);
        for w in want[name]["runs"].as_array().unwrap() {
            let method = RunMethod::parse(w["method"].as_str().unwrap()).unwrap();
            let keep = w["keep"].as_f64().unwrap();
            let layer = w["layer"].as_u64().unwrap_or(2) as usize;
            let decoding = Decoding {
                prompt: g["prompt"].as_str().map(str::to_string),
                fastv_layer: layer,
                ..Decoding::default()
            };
            let r = run(&model, &audio, method, keep, decoding);
            let what = match method {
                RunMethod::FastV => format!("{name} fastv L{layer} {keep}"),
                _ => format!("{name} {} {keep}", r.method),
            };
            assert_eq!(r.kept, ints(&w["kept"]), "{what}: kept tokens");
            // K = budget(keep, n) tokens kept, in time order.
            let n = prunescope::engine::encode(&model, &audio, Default::default(), &mut |_| {})
                .unwrap()
                .n_tokens();
            assert_eq!(r.k, prunescope::prune::budget(keep, n), "{what}: K");
            assert_eq!(r.k, r.kept.len());
            assert!(r.kept.windows(2).all(|p| p[0] < p[1]));
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{what}: greedy ids");
            assert!(r.prefill_ms.is_some_and(|p| p > 0.0));
            println!("{what}: kept {:?}…, ids {:?}", &r.kept[..4], r.token_ids);
        }
        // The prompt-aware scores themselves, token by token.
        let pa = want[name]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["method"] == "promptaware")
            .unwrap();
        let clip = engine::encode(&model, &audio, Default::default(), &mut |_| {}).unwrap();
        let memory =
            engine::decoder_inputs(&clip, None, Tail::Tokens(0), true, &mut Default::default())
                .unwrap()
                .remove(0)
                .1
                .memory;
        let scores = model
            .prompt_scores(&memory, g["prompt"].as_str())
            .unwrap()
            .unwrap();
        let err = crate::common::max_abs_diff(&scores, &floats(&pa["scores"]));
        println!("{name} prompt-aware scores: worst |difference| {err:.1e}");
        assert!(err < 1e-5, "{err}");
    }
}

/// LTBM, DART and Samp on Whisper against the reference (scripts/make-peer-prune-golden.py:
/// transformers' encoder output, scores and keys, the naive rules of
/// scripts/make-peer-prune-fixtures.py, each group's mean row, a greedy decode): kept tokens,
/// groups and greedy ids identical at keep 0.5, 0.25 and 0.1.
#[test]
fn whisper_ltbm_dart_and_samp_match_the_reference() {
    let want = fixture("tests/data/golden/peer_prune.json");
    for clip in ["jfk.wav", "arctic_a0007.wav"] {
        let audio = prunescope::audio::load(&data(clip)).unwrap();
        let runs = want[clip]["runs"].as_array().unwrap();
        let plan = Plan {
            runs: runs
                .iter()
                .map(|w| RunSpec {
                    method: RunMethod::parse(w["method"].as_str().unwrap()).unwrap(),
                    keep: w["keep"].as_f64().unwrap(),
                })
                .collect(),
            params: Params::default(),
            decoding: Decoding::default(),
        };
        let got = engine::analyze(model(), &audio, &plan, &AtomicBool::new(false), &mut |_| {})
            .unwrap()
            .runs;
        for (r, w) in got.iter().zip(runs) {
            let what = format!("{clip} {} keep {}", r.method, r.keep);
            assert_eq!(r.kept, ints(&w["kept"]), "{what}: kept tokens");
            let groups: Vec<Vec<usize>> = w["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(ints)
                .filter(|g| g.len() > 1)
                .collect();
            let ours: Vec<Vec<usize>> = r
                .merged
                .iter()
                .map(|c| c.parts.iter().map(|p| p.0).collect())
                .collect();
            assert_eq!(ours, groups, "{what}: groups");
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{what}: greedy ids");
        }
    }
}

/// LTBM, DART, Samp and SpeechPrune in the toy Qwen2-Audio and AF3 against the reference
/// (scripts/make-peer-prune-golden.py: the golden files' pooled rows, scores and keys from
/// transformers, the naive rules, each group's mean through the projector, a greedy decode;
/// SpeechPrune's similarity and binarized attention from transformers' embeddings and first
/// layer): kept tokens, groups, scores and greedy ids identical at keep 0.5 and 0.25.
#[test]
fn alm_ltbm_dart_samp_and_speechprune_match_the_reference() {
    let want = fixture("tests/data/alm/peer_prune.json");
    for name in ["qwen2-audio-tiny", "af3-tiny"] {
        let g = fixture(&format!(
            "tests/data/alm/{}",
            want[name]["golden"].as_str().unwrap()
        ));
        let audio = toy_golden_audio(&g);
        let model = toy_alm(name);
        let runs = want[name]["runs"].as_array().unwrap();
        let plan = Plan {
            runs: runs
                .iter()
                .map(|w| RunSpec {
                    method: RunMethod::parse(w["method"].as_str().unwrap()).unwrap(),
                    keep: w["keep"].as_f64().unwrap(),
                })
                .collect(),
            params: Params {
                model_window_tokens: Params::model_window_tokens_for(
                    model.info().seconds_per_token,
                ),
                ..Params::default()
            },
            decoding: Decoding {
                prompt: g["prompt"].as_str().map(str::to_string),
                ..Decoding::default()
            },
        };
        let got = engine::analyze(&model, &audio, &plan, &AtomicBool::new(false), &mut |_| {})
            .unwrap()
            .runs;
        for (r, w) in got.iter().zip(runs) {
            let what = format!("{name} {} keep {}", r.method, r.keep);
            assert_eq!(r.kept, ints(&w["kept"]), "{what}: kept tokens");
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{what}: greedy ids");
            if r.method == RunMethod::SpeechPrune {
                assert!(r.scoring_ms > 0.0);
                continue;
            }
            let groups: Vec<Vec<usize>> = w["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(ints)
                .filter(|g| g.len() > 1)
                .collect();
            let ours: Vec<Vec<usize>> = r
                .merged
                .iter()
                .map(|c| c.parts.iter().map(|p| p.0).collect())
                .collect();
            assert_eq!(ours, groups, "{what}: groups");
        }
        // SpeechPrune's two scores themselves, token by token.
        let sp = runs.iter().find(|w| w["method"] == "speechprune").unwrap();
        let clip = engine::encode(&model, &audio, Default::default(), &mut |_| {}).unwrap();
        let memory =
            engine::decoder_inputs(&clip, None, Tail::Tokens(0), true, &mut Default::default())
                .unwrap()
                .remove(0)
                .1
                .memory;
        let scores = model
            .speechprune_scores(&memory, g["prompt"].as_str())
            .unwrap()
            .unwrap();
        let sim = crate::common::max_abs_diff(&scores.similarity, &floats(&sp["similarity"]));
        let att = crate::common::max_abs_diff(&scores.attention, &floats(&sp["attention"]));
        println!(
            "{name} speechprune: worst |difference| similarity {sim:.1e}, attention {att:.1e}"
        );
        assert!(sim < 1e-5 && att < 1e-5, "{sim} {att}");
    }
}

/// `encoderdrop` on Whisper against the reference (scripts/make-encoderdrop-fixtures.py:
/// transformers' encoder with its layers after the drop run by hand on the kept rows): kept
/// tokens and greedy ids identical at drop layers 1, 2 and 3 and keep 0.5, 0.25 and 0.1.
#[test]
fn whisper_encoderdrop_matches_the_reference() {
    let want = fixture("tests/data/golden/encoderdrop.json");
    for clip in ["jfk.wav", "arctic_a0007.wav"] {
        let audio = prunescope::audio::load(&data(clip)).unwrap();
        for layer in 1..=3 {
            let runs: Vec<&Value> = want[clip]["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["layer"].as_u64() == Some(layer))
                .collect();
            let plan = Plan {
                runs: runs
                    .iter()
                    .map(|w| RunSpec {
                        method: RunMethod::EncoderDrop,
                        keep: w["keep"].as_f64().unwrap(),
                    })
                    .collect(),
                params: Params::default(),
                decoding: Decoding {
                    drop_layer: Some(layer as usize),
                    ..Decoding::default()
                },
            };
            let got = engine::analyze(model(), &audio, &plan, &AtomicBool::new(false), &mut |_| {})
                .unwrap()
                .runs;
            for (r, w) in got.iter().zip(&runs) {
                let what = format!("{clip} L{layer} keep {}", r.keep);
                assert_eq!(r.kept, ints(&w["kept"]), "{what}: kept tokens");
                assert_eq!(r.k as u64, w["k"].as_u64().unwrap(), "{what}: K");
                let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
                assert_eq!(r.token_ids, ids, "{what}: greedy ids");
                assert_eq!(r.drop_layer, Some(layer as usize));
                assert!(r.encode_ms.is_some_and(|ms| ms > 0.0));
            }
        }
    }
}

/// Over several windows: each window keeps `budget(keep, n_valid)` of its tokens, the best by
/// the drop layer's received attention in the plain encoder's pass (its first layers are the
/// same computation), and keeping every token reads exactly what `full` reads.
#[test]
fn whisper_encoderdrop_over_windows_and_keeping_everything() {
    let audio = prunescope::audio::load(&data("jfk_x3.wav")).unwrap();
    let clip = engine::encode(
        model(),
        &audio,
        prunescope::scores::Layers::All,
        &mut |_| {},
    )
    .unwrap();
    let full = run(
        model(),
        &audio,
        RunMethod::Prune(prunescope::prune::Method::Full),
        1.0,
        Decoding::default(),
    );
    let layer = 2;
    let decoding = Decoding {
        drop_layer: Some(layer),
        ..Decoding::default()
    };
    let all = run(
        model(),
        &audio,
        RunMethod::EncoderDrop,
        1.0,
        decoding.clone(),
    );
    assert_eq!(all.token_ids, full.token_ids);
    assert_eq!(all.text, full.text);
    let r = run(model(), &audio, RunMethod::EncoderDrop, 0.25, decoding);
    let mut want = Vec::new();
    for w in &clip.windows {
        let scores = &clip.layers[layer - 1].mean[w.first_token..w.first_token + w.n_valid];
        let k = prunescope::prune::budget(0.25, w.n_valid);
        want.extend(
            prunescope::model::top_k(scores, k)
                .into_iter()
                .map(|t| t + w.first_token),
        );
    }
    assert!(clip.windows.len() > 1);
    assert_eq!(r.kept, want);
    println!("jfk_x3 L2 keep 0.25: K {} {:?}", r.k, r.text);
}

/// `encoderdrop` in the toy Qwen2-Audio and AF3 against the reference
/// (scripts/make-encoderdrop-fixtures.py: transformers' audio towers, the later layer run by
/// hand on the kept tokens' frame pairs, pooled, normed and projected): kept tokens and greedy
/// ids identical at drop layer 1 and keep 0.5 and 0.25.
#[test]
fn alm_encoderdrop_matches_the_reference() {
    let want = fixture("tests/data/alm/encoderdrop.json");
    for name in ["qwen2-audio-tiny", "af3-tiny"] {
        let g = fixture(&format!(
            "tests/data/alm/{}",
            want[name]["golden"].as_str().unwrap()
        ));
        let audio = toy_golden_audio(&g);
        let model = toy_alm(name);
        let runs = want[name]["runs"].as_array().unwrap();
        let plan = Plan {
            runs: runs
                .iter()
                .map(|w| RunSpec {
                    method: RunMethod::EncoderDrop,
                    keep: w["keep"].as_f64().unwrap(),
                })
                .collect(),
            params: Params::default(),
            decoding: Decoding {
                prompt: g["prompt"].as_str().map(str::to_string),
                drop_layer: Some(1),
                ..Decoding::default()
            },
        };
        let got = engine::analyze(&model, &audio, &plan, &AtomicBool::new(false), &mut |_| {})
            .unwrap()
            .runs;
        for (r, w) in got.iter().zip(runs) {
            let what = format!("{name} encoderdrop keep {}", r.keep);
            assert_eq!(r.kept, ints(&w["kept"]), "{what}: kept tokens");
            let ids: Vec<u32> = floats(&w["ids"]).iter().map(|&x| x as u32).collect();
            assert_eq!(r.token_ids, ids, "{what}: greedy ids");
        }
    }
}

/// `encoderdrop` in the toy Qwen2-Audio and AF3 encoders, on both backends (f32: our CPU
/// encoder; bf16: candle's ops): the kept tokens are the top-K of the drop layer's pooled
/// received attention in the plain pass, the prompt holds K audio tokens, and keeping every
/// token reads what `full` reads.
#[test]
fn alm_encoderdrop_keeps_the_drop_layers_best_on_both_backends() {
    let audio = prunescope::audio::load(&data("jfk.wav")).unwrap();
    for name in ["qwen2-audio-tiny", "af3-tiny"] {
        for dtype in [candle_core::DType::F32, candle_core::DType::BF16] {
            let model = crate::common::toy_alm_in(name, dtype);
            let clip = engine::encode(&model, &audio, prunescope::scores::Layers::All, &mut |_| {})
                .unwrap();
            let what = format!("{name} {dtype:?}");
            let decoding = Decoding {
                drop_layer: Some(1),
                ..Decoding::default()
            };
            let full = run(
                &model,
                &audio,
                RunMethod::Prune(prunescope::prune::Method::Full),
                1.0,
                decoding.clone(),
            );
            let all = run(
                &model,
                &audio,
                RunMethod::EncoderDrop,
                1.0,
                decoding.clone(),
            );
            assert_eq!(all.token_ids, full.token_ids, "{what}: keep 1");
            let r = run(&model, &audio, RunMethod::EncoderDrop, 0.25, decoding);
            // Each window keeps its own best.
            let mut want = Vec::new();
            for w in &clip.windows {
                let scores = &clip.layers[0].mean[w.first_token..w.first_token + w.n_valid];
                let k = prunescope::prune::budget(0.25, w.n_valid);
                want.extend(
                    prunescope::model::top_k(scores, k)
                        .into_iter()
                        .map(|t| t + w.first_token),
                );
            }
            assert_eq!(r.kept, want, "{what}: kept");
            assert_eq!(r.drop_layer, Some(1));
            assert!(r.encode_ms.is_some_and(|ms| ms > 0.0));
            println!("{what}: K {}, ids {:?}", r.k, r.token_ids);
        }
    }
}

#[test]
fn inapplicable_peers_are_one_line_errors() {
    let jfk = root().join("assets/jfk.wav");
    let jfk = jfk.to_str().unwrap();
    let out = prunescope(&["analyze", jfk, "--method", "promptaware"]);
    assert_one_line_error(
        &out,
        "promptaware ranks audio tokens by the attention of a language model's prompt",
    );
    let out = prunescope(&["analyze", jfk, "--method", "speechprune"]);
    assert_one_line_error(
        &out,
        "speechprune weighs audio tokens by their similarity to a language model's prompt",
    );
    let qwen = root().join("tests/data/alm/qwen2-audio-tiny");
    let out = prunescope(&[
        "analyze",
        jfk,
        "--model",
        qwen.to_str().unwrap(),
        "--method",
        "fastv",
        "--fastv-layer",
        "5",
    ]);
    assert_one_line_error(
        &out,
        "--fastv-layer 5: the language model has 2 layers (0 to 1)",
    );
    let out = prunescope(&[
        "analyze",
        jfk,
        "--method",
        "encoderdrop",
        "--drop-layer",
        "0",
    ]);
    assert_one_line_error(
        &out,
        "--drop-layer 0: the encoder has 4 layers, so the drop goes after layer 1 to 3",
    );
    let out = prunescope(&[
        "analyze",
        jfk,
        "--model",
        qwen.to_str().unwrap(),
        "--method",
        "encoderdrop",
        "--drop-layer",
        "2",
    ]);
    assert_one_line_error(
        &out,
        "--drop-layer 2: the encoder has 2 layers, so the drop goes after layer 1 to 1",
    );
}

/// A clip too short for one pooled token (300 samples): `encoderdrop` keeps nothing, on both
/// backends, and the run still comes back (it used to panic in the CPU encoder's later layers
/// over no rows, which then hung the command).
#[test]
fn alm_encoderdrop_on_a_clip_too_short_for_a_token() {
    let samples: Vec<f32> = (0..300).map(|i| (i as f32 * 0.3).sin() * 0.25).collect();
    let audio = Audio::from_samples(samples, 16_000).unwrap();
    for dtype in [candle_core::DType::F32, candle_core::DType::BF16] {
        let model = crate::common::toy_alm_in("qwen2-audio-tiny", dtype);
        let r = run(
            &model,
            &audio,
            RunMethod::EncoderDrop,
            0.5,
            Decoding::default(),
        );
        assert_eq!((r.k, r.kept.len()), (0, 0), "{dtype:?}");
    }
}
