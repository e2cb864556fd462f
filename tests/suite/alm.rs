//! Qwen2-Audio and Audio Flamingo 3 against transformers, on toy models with random weights
//! (tests/data/alm, made by scripts/make-alm-fixtures.py): pooled encoder output, scores and
//! keys, merged input embeddings and last-position logits within 1e-4; greedy ids identical
//! for full and pruned inputs. Qwen2-Audio: a padded (1.3 s of 2 s) window, hub weight names;
//! AF3: two windows, transformers-5 names.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use prunescope::audio::Audio;
use prunescope::engine::{self, Decoding, Plan, RunMethod, RunSpec, Tail};
use prunescope::model::alm::Alm;
use prunescope::model::AudioLanguageModel;
use prunescope::prune::{self, Method, Params};
use prunescope::scores::Layers;
use serde_json::Value;

use crate::common::{floats, max_abs_diff};

const TOL: f32 = 1e-4;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/alm")
        .join(p)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The fixture's clip: `n_samples` of jfk.wav from `offset_samples`.
fn clip(g: &Value) -> Vec<f32> {
    crate::common::toy_golden_audio(g).samples.to_vec()
}

fn method(name: &str) -> Method {
    Method::parse(name).unwrap()
}

/// Golden ids up to (not including) the first end token: greedy decoding stops there.
fn until_end(model: &Alm, golden: &[u32]) -> Vec<u32> {
    golden
        .iter()
        .copied()
        .take_while(|&t| !model.is_end_token(t))
        .collect()
}

/// The golden test's clip through the model's encoder, window by window: `(hidden rows of the
/// valid tokens, scores, keys)`.
fn encode_clip(model: &Alm, g: &Value) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let samples = clip(g);
    let window = g["window_samples"].as_u64().unwrap() as usize;
    assert_eq!(model.info().window_samples, window);
    let d = g["d_model"].as_u64().unwrap() as usize;
    let (mut hidden, mut scores, mut keys, mut n_valid) = (vec![], vec![], vec![], vec![]);
    for chunk in samples.chunks(window) {
        let enc = model.encode(chunk, Layers::Last).unwrap();
        let rows: Vec<f32> = enc.hidden.flatten_all().unwrap().to_vec1().unwrap();
        hidden.extend_from_slice(&rows[..enc.n_valid * d]);
        scores.extend_from_slice(enc.scores());
        keys.extend_from_slice(&enc.keys);
        n_valid.push(enc.n_valid);
    }
    assert_eq!(
        n_valid,
        ids(&g["n_valid"])
            .iter()
            .map(|&x| x as usize)
            .collect::<Vec<_>>()
    );
    (hidden, scores, keys)
}

/// Where the reduced-precision tests run: the CPU, or `$PRUNESCOPE_TEST_DEVICE` (`cuda`, on a
/// machine with a GPU and a build with `--features cuda`).
fn test_device() -> Device {
    match std::env::var("PRUNESCOPE_TEST_DEVICE") {
        Ok(d) => prunescope::model::DeviceChoice::parse(&d)
            .unwrap()
            .device()
            .unwrap(),
        Err(_) => Device::Cpu,
    }
}

/// The engine's plan for the golden runs: the prompt, a 50-token tail (which prefix models do
/// not take) and the greedy decode.
fn plan(runs: Vec<RunSpec>, segments: usize, prompt: &str) -> Plan {
    Plan {
        runs,
        params: Params {
            segments,
            ..Params::default()
        },
        decoding: Decoding {
            tail: Tail::Tokens(50),
            prompt: Some(prompt.to_string()),
            stop_on_loop: false,
            attention: false,
            ..Decoding::default()
        },
    }
}

fn load(model_dir: &str, dtype: DType) -> Alm {
    let device = if dtype == DType::F32 {
        Device::Cpu
    } else {
        test_device()
    };
    let mut model = Alm::load(&data(model_dir), &device, dtype).unwrap();
    model.options.max_new_tokens = 12;
    model
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(name)).unwrap()).unwrap()
}

fn check(model_dir: &str, golden_name: &str) {
    let g = golden(golden_name);
    let model = load(model_dir, DType::F32);
    let samples = clip(&g);
    let d = g["d_model"].as_u64().unwrap() as usize;

    // Encoder, window by window.
    let (hidden, scores, keys) = encode_clip(&model, &g);
    let e_hidden = max_abs_diff(&hidden, &floats(&g["hidden"]));
    let e_scores = max_abs_diff(&scores, &floats(&g["scores"]));
    let e_keys = max_abs_diff(&keys, &floats(&g["keys"]));
    println!("{golden_name}: hidden {e_hidden:.2e}, scores {e_scores:.2e}, keys {e_keys:.2e}");
    assert!(e_hidden < TOL && e_scores < TOL && e_keys < TOL);

    let n = scores.len();
    let prompt = g["prompt"].as_str().unwrap();
    let cancel = AtomicBool::new(false);
    let mut specs = Vec::new();
    for run in g["runs"].as_array().unwrap() {
        let name = run["method"].as_str().unwrap();
        let keep = run["keep"].as_f64().unwrap();
        let segments = run["segments"].as_u64().map(|s| s as usize).unwrap_or(10);
        let params = Params {
            keep,
            segments,
            ..Params::default()
        };
        let sel = prune::select(method(name), &scores, None, &params).unwrap();
        let want_kept: Vec<usize> = ids(&run["kept"]).iter().map(|&x| x as usize).collect();
        assert_eq!(sel.kept, want_kept, "{name} {keep}: kept tokens");
        let rows: Vec<f32> = sel
            .kept
            .iter()
            .flat_map(|&t| hidden[t * d..(t + 1) * d].to_vec())
            .collect();
        let audio = Tensor::from_vec(rows, (sel.kept.len(), d), &Device::Cpu).unwrap();
        let (got_ids, embeds) = model.input_embeddings(&audio, prompt).unwrap();
        assert_eq!(got_ids, ids(&run["input_ids"]), "{name}: prompt ids");
        let embeds: Vec<f32> = embeds.flatten_all().unwrap().to_vec1().unwrap();
        let e_emb = max_abs_diff(&embeds, &floats(&run["embeds"]));
        let (gen, logits, prefill_ms, _) = model
            .greedy(
                &Tensor::from_vec(
                    embeds,
                    (got_ids.len(), model.config.text.hidden),
                    &Device::Cpu,
                )
                .unwrap(),
                &cancel,
            )
            .unwrap();
        let e_logits = max_abs_diff(&logits, &floats(&run["last_logits"]));
        println!(
            "  {name} {keep}: K {} of {n}, embeds {e_emb:.2e}, logits {e_logits:.2e}, prefill {prefill_ms:.2} ms, ids {gen:?}",
            sel.kept.len()
        );
        assert!(e_emb < TOL && e_logits < TOL);
        let want = until_end(&model, &ids(&run["generated"]));
        assert_eq!(gen, want, "{name} {keep}: greedy ids");
        let m = if name == "full" {
            RunMethod::Prune(Method::Full)
        } else {
            RunMethod::Prune(method(name))
        };
        specs.push((RunSpec { method: m, keep }, segments, want_kept, want));
    }

    // The same through the engine, from the clip's samples, as `analyze` runs it: each run
    // alone, then all of them in one plan, whose decoding steps run as one batch.
    let audio = Audio::from_samples(samples, 16_000).unwrap();
    let batched = plan(
        specs.iter().map(|s| s.0.clone()).collect(),
        specs.iter().map(|s| s.1).min().unwrap_or(10),
        prompt,
    );
    let all = engine::analyze(&model, &audio, &batched, &cancel, &mut |_| {}).unwrap();
    for (r, (spec, segments, kept, want)) in all.runs.iter().zip(&specs) {
        if spec.method == RunMethod::Prune(Method::Segmentwise)
            && *segments != batched.params.segments
        {
            continue;
        }
        assert_eq!(&r.kept, kept);
        assert_eq!(&r.token_ids, want, "{}: batched greedy ids", r.method);
    }
    for (spec, segments, kept, want) in specs {
        let plan = plan(vec![spec], segments, prompt);
        let a = engine::analyze(&model, &audio, &plan, &cancel, &mut |_| {}).unwrap();
        let r = &a.runs[0];
        assert_eq!(r.kept, kept);
        assert_eq!(r.token_ids, want);
        assert_eq!(r.tail_tokens, 0, "prefix models take no silence tail");
        assert!(r.prefill_ms.is_some_and(|p| p > 0.0));
        assert_eq!(a.report.tokens.count, n);
    }
}

#[test]
fn qwen2_audio_padded_window_matches_transformers() {
    check("qwen2-audio-tiny", "qwen2_audio_padded.json");
}

#[test]
fn audio_flamingo_3_two_windows_match_transformers() {
    check("af3-tiny", "af3_two_windows.json");
}

/// Largest error relative to the largest magnitude among the golden values.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    max_abs_diff(got, want) / scale
}

/// The tokens a selection keeps that the golden one does not, each exchanged for one the golden
/// selection keeps: every such swap must be between two tokens whose golden scores differ by at
/// most `slack` (rounding reordered two near-equal scores). Returns the number of swaps.
fn swaps(got: &[usize], want: &[usize], golden: &[f32], slack: f32, what: &str) -> usize {
    let mut added: Vec<usize> = got.iter().copied().filter(|t| !want.contains(t)).collect();
    let mut dropped: Vec<usize> = want.iter().copied().filter(|t| !got.contains(t)).collect();
    assert_eq!(added.len(), dropped.len(), "{what}: K differs");
    let n = added.len();
    added.sort_by(|a, b| golden[*a].total_cmp(&golden[*b]));
    dropped.sort_by(|a, b| golden[*a].total_cmp(&golden[*b]));
    for (a, d) in added.iter().zip(&dropped) {
        let gap = (golden[*a] - golden[*d]).abs();
        assert!(
            gap <= slack,
            "{what}: token {a} replaced {d} although their scores differ by {gap:.2e} (> {slack:.2e})"
        );
    }
    n
}

/// Index of the first id where two greedy outputs differ (their common length when none).
fn divergence(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The f32 goldens against a reduced-precision run of the same model on the CPU (or the GPU of
/// [`test_device`]): the same code as on a GPU. Encoder outputs and logits within `rel` of the golden values' largest
/// magnitude; kept sets at 50/25/10 % equal to those of the golden scores but for swaps of
/// tokens whose scores differ by less than twice the largest score error (the count is
/// printed); greedy ids equal to the golden ones for at least `same_ids` tokens (the point where
/// they part is printed); the engine's runs, alone and batched, equal to the same steps done by
/// hand in this dtype.
fn check_reduced(model_dir: &str, golden_name: &str, dtype: DType, rel: f32, same_ids: usize) {
    let g = golden(golden_name);
    let model = load(model_dir, dtype);
    assert!(model.info().label().ends_with(dtype.as_str()));
    assert_eq!(model.info().runtime.dtype, dtype.as_str());
    let d = g["d_model"].as_u64().unwrap() as usize;
    let (hidden, scores, keys) = encode_clip(&model, &g);
    let want_scores = floats(&g["scores"]);
    let e_hidden = rel_err(&hidden, &floats(&g["hidden"]));
    let e_scores = rel_err(&scores, &want_scores);
    let e_keys = rel_err(&keys, &floats(&g["keys"]));
    let slack = 2.0 * max_abs_diff(&scores, &want_scores);
    println!(
        "{golden_name} {}: relative errors: hidden {e_hidden:.2e}, scores {e_scores:.2e}, keys {e_keys:.2e}",
        dtype.as_str()
    );
    assert!(e_hidden < rel && e_scores < rel && e_keys < rel);

    let mut swapped = Vec::new();
    for name in ["topk", "segmentwise", "bottomk", "random"] {
        for keep in [0.5, 0.25, 0.1] {
            let params = Params {
                keep,
                segments: 4,
                ..Params::default()
            };
            let want = prune::select(method(name), &want_scores, None, &params).unwrap();
            let got = prune::select(method(name), &scores, None, &params).unwrap();
            let what = format!("{} {name} {keep}", dtype.as_str());
            let n = swaps(&got.kept, &want.kept, &want_scores, slack, &what);
            swapped.push(format!("{name}@{keep}: {n}"));
        }
    }
    println!(
        "  swaps against the golden kept sets: {}",
        swapped.join(", ")
    );

    let prompt = g["prompt"].as_str().unwrap();
    let cancel = AtomicBool::new(false);
    let rows_of = |kept: &[usize]| {
        let rows: Vec<f32> = kept
            .iter()
            .flat_map(|&t| hidden[t * d..(t + 1) * d].to_vec())
            .collect();
        Tensor::from_vec(rows, (kept.len(), d), &Device::Cpu).unwrap()
    };
    let mut specs = Vec::new();
    for run in g["runs"].as_array().unwrap() {
        let name = run["method"].as_str().unwrap();
        let keep = run["keep"].as_f64().unwrap();
        let segments = run["segments"].as_u64().map(|s| s as usize).unwrap_or(10);
        // The golden kept set, so the language model's arithmetic is compared on its own.
        let golden_kept: Vec<usize> = ids(&run["kept"]).iter().map(|&x| x as usize).collect();
        let (got_ids, embeds) = model
            .input_embeddings(&rows_of(&golden_kept), prompt)
            .unwrap();
        assert_eq!(got_ids, ids(&run["input_ids"]), "{name}: prompt ids");
        let e_emb = rel_err(
            &embeds
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            &floats(&run["embeds"]),
        );
        let (gen, logits, _, _) = model.greedy(&embeds, &cancel).unwrap();
        let e_logits = rel_err(&logits, &floats(&run["last_logits"]));
        let want = until_end(&model, &ids(&run["generated"]));
        let same = divergence(&gen, &want);
        println!(
            "  {name} {keep}: embeds {e_emb:.2e}, logits {e_logits:.2e}, greedy ids equal for {same} of {} tokens",
            want.len()
        );
        assert!(e_emb < rel && e_logits < rel, "{name} {keep}");
        assert!(
            same >= same_ids.min(want.len()),
            "{name} {keep}: ids part at {same}: {gen:?} vs {want:?}"
        );
        // This dtype's own selection and decode, for the engine below.
        let params = Params {
            keep,
            segments,
            ..Params::default()
        };
        let m = if name == "full" {
            Method::Full
        } else {
            method(name)
        };
        let own = prune::select(m, &scores, None, &params).unwrap();
        let (_, own_embeds) = model.input_embeddings(&rows_of(&own.kept), prompt).unwrap();
        let (own_ids, ..) = model.greedy(&own_embeds, &cancel).unwrap();
        specs.push((
            RunSpec {
                method: RunMethod::Prune(m),
                keep,
            },
            segments,
            own.kept,
            own_ids,
        ));
    }

    // The engine, from the samples, each run alone and all in one batch.
    let audio = Audio::from_samples(clip(&g), 16_000).unwrap();
    for (spec, segments, kept, want) in &specs {
        let a = engine::analyze(
            &model,
            &audio,
            &plan(vec![spec.clone()], *segments, prompt),
            &cancel,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(a.report.runtime.dtype, dtype.as_str());
        assert_eq!(&a.runs[0].kept, kept);
        assert_eq!(
            &a.runs[0].token_ids, want,
            "{}: engine ids",
            a.runs[0].method
        );
    }
    let segments = specs.iter().map(|s| s.1).min().unwrap_or(10);
    let all = engine::analyze(
        &model,
        &audio,
        &plan(
            specs.iter().map(|s| s.0.clone()).collect(),
            segments,
            prompt,
        ),
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    for (r, (spec, seg, kept, want)) in all.runs.iter().zip(&specs) {
        if spec.method == RunMethod::Prune(Method::Segmentwise) && *seg != segments {
            continue;
        }
        assert_eq!(&r.kept, kept);
        assert_eq!(&r.token_ids, want, "{}: batched greedy ids", r.method);
    }
}

// Tolerances of the reduced-precision runs: bf16 keeps 8 significant bits (a rounding step of
// 2^-8 = 3.9e-3 relative), f16 11 (4.9e-4); errors add up over the layers, so encoder outputs,
// embeddings and logits are held to about five rounding steps of the largest value (measured on
// these checkpoints: bf16 at most 7.0e-3, f16 at most 9.4e-4). Random weights give near-equal
// scores (all close to 1): one swap at most per kept set in bf16 (topk 50 % on AF3, bottomk
// 25 % on Qwen2-Audio), none in f16. Greedy ids: every golden id agreed in both dtypes; the
// bound asks the first ones to (random weights give near-tied logits).

#[test]
fn qwen2_audio_bf16_on_the_cpu_matches_the_f32_goldens() {
    check_reduced(
        "qwen2-audio-tiny",
        "qwen2_audio_padded.json",
        DType::BF16,
        0.02,
        4,
    );
}

#[test]
fn audio_flamingo_3_bf16_on_the_cpu_matches_the_f32_goldens() {
    check_reduced("af3-tiny", "af3_two_windows.json", DType::BF16, 0.02, 4);
}

#[test]
fn qwen2_audio_f16_on_the_cpu_matches_the_f32_goldens() {
    check_reduced(
        "qwen2-audio-tiny",
        "qwen2_audio_padded.json",
        DType::F16,
        0.004,
        6,
    );
}

#[test]
fn audio_flamingo_3_f16_on_the_cpu_matches_the_f32_goldens() {
    check_reduced("af3-tiny", "af3_two_windows.json", DType::F16, 0.004, 6);
}
