//! Received attention in every encoder layer (one encoder pass) against transformers (eager,
//! f32; fixtures by scripts/make-layer-fixtures.py): Whisper tiny.en on two shared clips and the
//! toy Qwen2-Audio / AF3, each layer's mean and max over heads within 1e-3 relative at every
//! token. Then the score source through the binary: `--layer-scores`, `--score-layer`,
//! `--head-reduce`, and their errors.

use prunescope::model::alm::Alm;
use prunescope::model::AudioLanguageModel;
use prunescope::scores::{LayerScores, Layers};
use serde_json::Value;

use crate::common::{assert_one_line_error, data, floats, json_doc, model, prunescope, root};

fn fixture(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// Worst relative difference at any token (relative to the reference value there).
fn worst_rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "token counts differ");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1e-12))
        .fold(0.0, f32::max)
}

/// Every layer of `got` against the fixture's `layers` array.
fn compare(what: &str, got: &[LayerScores], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: layer count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.layer, i);
        let mean = worst_rel(&g.mean, &floats(&w["mean"]));
        let max = worst_rel(&g.max, &floats(&w["max"]));
        println!("{what} layer {i}: mean {mean:.1e}, max {max:.1e} (worst relative)");
        assert!(mean < 1e-3 && max < 1e-3, "{what} layer {i}");
    }
}

/// The encoder's per-layer scores of a clip, window by window, concatenated.
fn encode_layers(model: &dyn AudioLanguageModel, samples: &[f32]) -> Vec<LayerScores> {
    let window = model.info().window_samples;
    let mut all: Vec<LayerScores> = Vec::new();
    for chunk in samples.chunks(window) {
        let enc = model.encode(chunk, Layers::All).unwrap();
        assert_eq!(enc.layers.len(), model.info().encoder_layers);
        // The last layer's mean is the paper's score, the same as without the other layers.
        assert_eq!(enc.layers.last().unwrap().mean, enc.scores());
        let last = model.encode(chunk, Layers::Last).unwrap();
        assert_eq!(last.layers.len(), 1);
        assert_eq!(last.layers[0], *enc.layers.last().unwrap());
        if all.is_empty() {
            all = enc.layers;
        } else {
            for (a, w) in all.iter_mut().zip(&enc.layers) {
                a.extend(w);
            }
        }
    }
    all
}

#[test]
fn whisper_layer_scores_match_transformers() {
    let want = fixture("tests/data/golden/layer_scores.json");
    for clip in ["jfk.wav", "arctic_a0007.wav"] {
        let audio = prunescope::audio::load(&data(clip)).unwrap();
        let got = encode_layers(model(), &audio.samples);
        compare(clip, &got, &want[clip]["layers"]);
    }
}

#[test]
fn qwen2_audio_and_af3_layer_scores_match_transformers() {
    let want = fixture("tests/data/alm/layer_scores.json");
    let jfk = prunescope::audio::load(&root().join("assets/jfk.wav")).unwrap();
    for name in ["qwen2-audio-tiny", "af3-tiny"] {
        let golden = fixture(&format!(
            "tests/data/alm/{}",
            want[name]["golden"].as_str().unwrap()
        ));
        let off = golden["offset_samples"].as_u64().unwrap() as usize;
        let n = golden["n_samples"].as_u64().unwrap() as usize;
        let dir = root().join("tests/data/alm").join(name);
        let model = Alm::load(&dir, &candle_core::Device::Cpu, candle_core::DType::F32).unwrap();
        let got = encode_layers(&model, &jfk.samples[off..off + n]);
        compare(name, &got, &want[name]["layers"]);
    }
}

fn analyze_json(extra: &[&str]) -> Value {
    let clip = data("arctic_a0007.wav");
    let mut args = vec!["analyze", clip.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    json_doc(&args)
}

fn kept(doc: &Value, method: &str) -> Vec<u64> {
    doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == method)
        .unwrap()["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn score_source_drives_the_pruning_and_is_recorded() {
    let run = [
        "--method",
        "topk",
        "--keep",
        "0.25",
        "--max-new-tokens",
        "4",
    ];
    // The paper's source, with every layer's scores added: the last equals `scores`.
    let mut args = run.to_vec();
    args.push("--layer-scores");
    let doc = analyze_json(&args);
    let layers = doc["layer_scores"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "tiny.en has 4 encoder layers");
    let n = doc["tokens"]["count"].as_u64().unwrap() as usize;
    assert!(layers.iter().all(|l| l.as_array().unwrap().len() == n));
    assert_eq!(layers[3], doc["scores"]);
    assert_eq!(doc["score_source"]["layer"], 3);
    assert_eq!(doc["score_source"]["layers"], 4);
    assert_eq!(doc["score_source"]["head_reduce"], "mean");
    let paper = kept(&doc, "topk");
    // Without the flag there is no layer_scores, and the same kept set.
    let plain = analyze_json(&run);
    assert!(plain.get("layer_scores").is_none());
    assert_eq!(kept(&plain, "topk"), paper);

    // Layer 0, max over heads: `scores` is that layer's, and top-k follows it.
    let mut args = run.to_vec();
    args.extend_from_slice(&[
        "--score-layer",
        "0",
        "--head-reduce",
        "max",
        "--layer-scores",
    ]);
    let doc = analyze_json(&args);
    assert_eq!(doc["score_source"]["layer"], 0);
    assert_eq!(doc["score_source"]["head_reduce"], "max");
    assert_eq!(doc["layer_scores"][0], doc["scores"]);
    let scores = floats(&doc["scores"]);
    let k = paper.len();
    let mut want: Vec<u64> = prunescope::prune::rank(&scores)
        .into_iter()
        .take(k)
        .map(|t| t as u64)
        .collect();
    want.sort_unstable();
    assert_eq!(kept(&doc, "topk"), want);
    assert_ne!(
        want, paper,
        "layer 0's max picks other tokens than the paper's scores"
    );
}

#[test]
fn score_source_errors_are_one_line() {
    let clip = data("arctic_a0007.wav");
    let clip = clip.to_str().unwrap();
    assert_one_line_error(
        &prunescope(&["analyze", clip, "--score-layer", "4"]),
        "--score-layer 4: the encoder has 4 layers (0 to 3)",
    );
    assert_one_line_error(
        &prunescope(&["analyze", clip, "--score-layer", "first"]),
        "--score-layer must be `last` or a layer number",
    );
    assert_one_line_error(
        &prunescope(&["analyze", clip, "--head-reduce", "median"]),
        "unknown head reduction `median`",
    );
}
