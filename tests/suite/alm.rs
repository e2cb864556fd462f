//! Qwen2-Audio and Audio Flamingo 3 against transformers, on toy models with random weights
//! (tests/data/alm, made by scripts/make-alm-fixtures.py): pooled encoder output, scores and
//! keys, merged input embeddings and last-position logits within 1e-4; greedy ids identical
//! for full and pruned inputs. Qwen2-Audio: a padded (1.3 s of 2 s) window, hub weight names;
//! AF3: two windows, transformers-5 names.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use prunescope::audio::Audio;
use prunescope::engine::{self, Decoding, Plan, RunMethod, RunSpec, Tail};
use prunescope::model::alm::Alm;
use prunescope::model::AudioLanguageModel;
use prunescope::prune::{self, Method, Params};
use serde_json::Value;

const TOL: f32 = 1e-4;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/alm")
        .join(p)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The fixture's clip: `n_samples` of jfk.wav from `offset_samples`.
fn clip(g: &Value) -> Vec<f32> {
    let audio =
        prunescope::audio::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav"))
            .unwrap();
    let off = g["offset_samples"].as_u64().unwrap() as usize;
    let n = g["n_samples"].as_u64().unwrap() as usize;
    audio.samples[off..off + n].to_vec()
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

fn check(model_dir: &str, golden: &str) {
    let g: Value = serde_json::from_str(&std::fs::read_to_string(data(golden)).unwrap()).unwrap();
    let mut model = Alm::load(&data(model_dir), &Device::Cpu).unwrap();
    model.options.max_new_tokens = 12;
    let samples = clip(&g);
    let window = g["window_samples"].as_u64().unwrap() as usize;
    assert_eq!(model.info().window_samples, window);
    let d = g["d_model"].as_u64().unwrap() as usize;

    // Encoder, window by window.
    let (mut hidden, mut scores, mut keys, mut n_valid) = (vec![], vec![], vec![], vec![]);
    for chunk in samples.chunks(window) {
        let enc = model.encode(chunk).unwrap();
        let rows: Vec<f32> = enc.hidden.flatten_all().unwrap().to_vec1().unwrap();
        hidden.extend_from_slice(&rows[..enc.n_valid * d]);
        scores.extend_from_slice(&enc.scores);
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
    let e_hidden = max_abs(&hidden, &floats(&g["hidden"]));
    let e_scores = max_abs(&scores, &floats(&g["scores"]));
    let e_keys = max_abs(&keys, &floats(&g["keys"]));
    println!("{golden}: hidden {e_hidden:.2e}, scores {e_scores:.2e}, keys {e_keys:.2e}");
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
        let e_emb = max_abs(&embeds, &floats(&run["embeds"]));
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
        let e_logits = max_abs(&logits, &floats(&run["last_logits"]));
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
    let batched = Plan {
        runs: specs.iter().map(|s| s.0.clone()).collect(),
        params: Params {
            segments: specs.iter().map(|s| s.1).min().unwrap_or(10),
            ..Params::default()
        },
        decoding: Decoding {
            tail: Tail::Tokens(50),
            prompt: Some(prompt.to_string()),
            stop_on_loop: false,
        },
    };
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
        let plan = Plan {
            runs: vec![spec],
            params: Params {
                segments,
                ..Params::default()
            },
            decoding: Decoding {
                tail: Tail::Tokens(50),
                prompt: Some(prompt.to_string()),
                stop_on_loop: false,
            },
        };
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
